/*
 * test_engine.c -- execution semantics, observed from the outside: the
 * saga's final state, its steps, and the order of its durable history.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "harness.h"

static th_t T;

static void teardown(void) { th_free(&T); }

TestSuite(engine, .fini = teardown);

static const char *state_of(json_t *s) {
    return json_string_value(json_object_get(s, "state"));
}

static json_int_t attempts_of(json_t *s, const char *step) {
    return json_integer_value(json_object_get(th_step(s, step), "attempts"));
}

static const char *status_of(json_t *s, const char *step) {
    return json_string_value(json_object_get(th_step(s, step), "status"));
}

/* The time (Unix ms) of the action event `type` of `step` in the history,
 * from its ISO 8601 timestamp ("2026-12-06T05:23:06.123Z"). */
static int64_t event_ms(json_t *s, const char *type, const char *step) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *st = json_string_value(json_object_get(e, "step"));
        const char *ph = json_string_value(json_object_get(e, "phase"));
        if (!ty || !st || !ph || strcmp(ty, type) || strcmp(st, step) || strcmp(ph, "action"))
            continue;
        const char *ts = json_string_value(json_object_get(e, "ts"));
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        int ms = 0;
        cr_assert_eq(sscanf(ts, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms), 7,
                     "timestamp '%s'", ts);
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm) * 1000 + ms;
    }
    cr_assert_fail("no %s event for step %s", type, step);
    return 0;
}

#define ASSERT_ORDER(summary, type, phase, expected)                          \
    do {                                                                      \
        char *o_ = th_order(summary, type, phase);                            \
        cr_assert_str_eq(o_, expected, "%s/%s order", type, phase ? phase : "*"); \
        free(o_);                                                             \
    } while (0)

Test(engine, sequential_success) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: seq\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.echo, with: {n: 1}}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.echo, with: {n: 2}}, compensation: {handler: demo.noop}}\n"
        "  - {name: c, action: {handler: demo.noop}, compensation: none}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    ASSERT_ORDER(s, "step.started", "action", "a,b,c");
    ASSERT_ORDER(s, "step.succeeded", "action", "a,b,c");
    ASSERT_ORDER(s, "step.started", "compensation", "");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(th_step(s, "b"), "output"), "n")), 2);
    cr_assert_eq(T.by_state[SAGA_STATE_COMPLETED], 1);
}

/* A call's duration is reported to the microsecond (the monotonic clock),
 * not in the loop's whole milliseconds: five 20 ms sleeps each last more
 * than 5,000 us (not 20,000: a libuv timer counts from the loop's cached
 * clock, which lags the real start by what the loop turn did before it;
 * under ASan a 2 ms timer fired 1.1 ms after its start), the millisecond
 * figure is the same duration truncated, and they do not all fall on
 * whole milliseconds (the loop's clock gave nothing else). */
static uint64_t durations_us[8];
static size_t ndurations;

static void on_call_done(th_t *t, const saga_progress_t *p) {
    (void)t;
    if (p->kind != SAGA_PROGRESS_CALL_SUCCEEDED || ndurations >= 8)
        return;
    cr_assert_eq(p->elapsed_ms, p->elapsed_us / 1000, "%llu ms for %llu us",
                 (unsigned long long)p->elapsed_ms, (unsigned long long)p->elapsed_us);
    durations_us[ndurations++] = p->elapsed_us;
}

Test(engine, call_durations_to_the_microsecond) {
    th_init(&T, NULL);
    T.progress_hook = on_call_done;
    ndurations = 0;
    saga_engine_def_t *d = th_define(&T,
        "saga: timed\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n"
        "  - {name: b, after: [a], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n"
        "  - {name: c, after: [b], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n"
        "  - {name: d, after: [c], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n"
        "  - {name: e, after: [d], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n");
    th_start(&T, d, NULL);
    th_run_until(&T, 1);
    cr_assert_eq(ndurations, 5);
    size_t whole = 0;
    for (size_t i = 0; i < ndurations; i++) {
        cr_assert_geq(durations_us[i], 5000, "call %zu: %llu us", i,
                      (unsigned long long)durations_us[i]);
        whole += durations_us[i] % 1000 == 0;
    }
    cr_assert_lt(whole, 5, "every duration a whole number of milliseconds");
}

/* A 4-step saga whose step k fails for good compensates exactly k..1. */
ParameterizedTestParameters(engine, backward_at_each_position) {
    static int ks[] = {1, 2, 3, 4};
    return cr_make_param_array(int, ks, 4);
}

ParameterizedTest(int *k, engine, backward_at_each_position) {
    char yaml[2048];
    size_t off = (size_t)snprintf(yaml, sizeof(yaml), "saga: backward%d\nsteps:\n", *k);
    for (int i = 1; i <= 4; i++)
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
            "  - name: s%d\n"
            "    action: {handler: %s, with: {message: \"s%d refused\"}}\n"
            "    compensation: {handler: demo.noop}\n",
            i, i == *k ? "demo.fail" : "demo.echo", i);
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, yaml);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    char expected_started[64] = "", expected_comp[64] = "";
    for (int i = 1; i <= *k; i++)
        sprintf(expected_started + strlen(expected_started), "%ss%d", i > 1 ? "," : "", i);
    for (int i = *k; i >= 1; i--)
        sprintf(expected_comp + strlen(expected_comp), "%ss%d", i < *k ? "," : "", i);
    ASSERT_ORDER(s, "step.started", "action", expected_started);
    ASSERT_ORDER(s, "step.started", "compensation", expected_comp);
    ASSERT_ORDER(s, "step.succeeded", "compensation", expected_comp);
    char failed[16];
    sprintf(failed, "s%d", *k);
    cr_assert_eq(attempts_of(s, failed), 1, "a business failure is not retried");
    cr_assert_str_eq(status_of(s, failed), "compensated");
    char refused[32];
    sprintf(refused, "s%d refused", *k);
    const char *reason = json_string_value(json_object_get(s, "reason"));
    cr_assert(reason && strstr(reason, refused) != NULL, "reason: %s", reason);
    for (int i = *k + 1; i <= 4; i++) {
        char nm[16];
        sprintf(nm, "s%d", i);
        cr_assert_str_eq(status_of(s, nm), "pending", "step after the failure never starts");
    }
}

Test(engine, technical_failures_retried_then_success) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: flaky\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.flaky, with: {failures: 2}}\n"
        "    retry: {max_attempts: 3, backoff: fixed, initial_delay: 5ms, jitter: none}\n"
        "    compensation: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    cr_assert_eq(attempts_of(s, "a"), 3);
    ASSERT_ORDER(s, "step.retrying", "action", "a,a");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(th_step(s, "a"), "output"), "calls")), 3);
}

/* A step.retrying entry records the delay chosen and the next attempt of
 * the budget, last in its detail (docs/redis-layout.md): exponential
 * backoff without jitter waits 10 then 20 ms. */
Test(engine, retrying_entry_records_the_delay_chosen) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: delays\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.flaky, with: {failures: 2}}\n"
        "    retry: {max_attempts: 3, backoff: exponential, initial_delay: 10ms,\n"
        "            multiplier: 2, jitter: none}\n"
        "    compensation: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    static const char *const want[] = {"; retry in 10 ms (attempt 2 of 3)",
                                       "; retry in 20 ms (attempt 3 of 3)"};
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "type")), "step.retrying") != 0)
            continue;
        cr_assert_lt(n, 2, "more than two retries");
        const char *detail = json_string_value(json_object_get(e, "detail"));
        cr_assert_not_null(detail);
        size_t dl = strlen(detail), wl = strlen(want[n]);
        cr_assert(strncmp(detail, "technical: ", 11) == 0 && dl > wl &&
                      strcmp(detail + dl - wl, want[n]) == 0,
                  "retry %zu: detail '%s' does not end with '%s'", n + 1, detail, want[n]);
        n++;
    }
    cr_assert_eq(n, 2, "two step.retrying entries");
}

Test(engine, retries_exhausted_compensates) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: exhausted\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - name: b\n"
        "    action: {handler: demo.flaky, with: {failures: 10}}\n"
        "    retry: {max_attempts: 3, initial_delay: 1ms, max_delay: 5ms}\n"
        "    compensation: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    cr_assert_eq(attempts_of(s, "b"), 3);
    ASSERT_ORDER(s, "step.started", "compensation", "b,a");
    cr_assert(strstr(json_string_value(json_object_get(s, "reason")), "attempt 3 of 3") != NULL);
}

Test(engine, business_failure_not_retried) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: biz\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.fail, with: {message: no funds}}\n"
        "    retry: {max_attempts: 5, initial_delay: 1ms}\n"
        "    compensation: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    cr_assert_eq(attempts_of(s, "a"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(th_step(s, "a"), "error")), "no funds");
}

Test(engine, timeouts_are_technical_failures) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: slow\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - name: b\n"
        "    timeout: 30ms\n"
        "    action: {handler: demo.sleep, with: {ms: 5000}}\n"
        "    retry: {max_attempts: 2, initial_delay: 1ms}\n"
        "    compensation: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    cr_assert_eq(attempts_of(s, "b"), 2);
    const char *err = json_string_value(json_object_get(json_object_get(th_step(s, "b"), "action"), "error"));
    cr_assert(strstr(err, "timed out after 30 ms") != NULL, "error: %s", err);
}

Test(engine, late_completion_after_timeout_is_ignored) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: late\n"
        "recovery: forward\n"
        "steps:\n"
        "  - name: a\n"
        "    timeout: 20ms\n"
        "    action: {handler: testkit.late, with: {ms: 60}}\n"
        "    retry: {max_attempts: 1}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "stuck");
    cr_assert_str_eq(status_of(s, "a"), "failed");
    cr_assert(json_is_null(json_object_get(th_step(s, "a"), "output")),
              "the late output must not be recorded");
}

Test(engine, forward_recovery_completes_through_flaky_steps) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: fwd\n"
        "recovery: forward\n"
        "defaults:\n"
        "  retry: {max_attempts: 5, initial_delay: 1ms, max_delay: 4ms}\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.flaky, with: {failures: 3}}}\n"
        "  - {name: b, action: {handler: demo.flaky, with: {failures: 4}}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    cr_assert_eq(attempts_of(s, "a"), 4);
    cr_assert_eq(attempts_of(s, "b"), 5);
}

Test(engine, forward_business_failure_is_stuck) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: fwdstuck\n"
        "recovery: forward\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.fail, with: {message: address invalid}}}\n"
        "  - {name: c, action: {handler: demo.noop}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "stuck");
    cr_assert(strstr(json_string_value(json_object_get(s, "reason")), "address invalid") != NULL);
    cr_assert_str_eq(status_of(s, "c"), "pending");
    ASSERT_ORDER(s, "step.started", "compensation", "");
    cr_assert_eq(T.by_state[SAGA_STATE_STUCK], 1);
}

Test(engine, compensation_failing_for_good_is_stuck) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: compstuck\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: {handler: demo.flaky, with: {failures: 100}}\n"
        "    compensation_retry: {max_attempts: 3, initial_delay: 1ms}\n"
        "  - {name: b, action: {handler: demo.fail}, compensation: {handler: demo.noop}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "stuck");
    cr_assert_str_eq(status_of(s, "a"), "compensation_failed");
    json_t *comp = json_object_get(th_step(s, "a"), "compensation");
    cr_assert_eq(json_integer_value(json_object_get(comp, "attempts")), 3);
    cr_assert(strstr(json_string_value(json_object_get(s, "reason")), "compensation of step 'a'") != NULL);
}

Test(engine, compensation_business_failure_is_stuck_at_once) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: compbiz\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: {handler: demo.fail, with: {message: cannot refund}}\n"
        "  - {name: b, action: {handler: demo.fail}, compensation: none}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "stuck");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(th_step(s, "a"), "compensation"), "attempts")), 1);
}

/* a -> (b, c) -> d: b and c run at the same time; d fails; compensation
 * undoes d, then b and c, then a (after both). */
Test(engine, parallel_branches_run_concurrently_and_compensate_in_reverse) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: diamond\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, after: [a], action: {handler: demo.sleep, with: {ms: 80}}, compensation: {handler: demo.sleep, with: {ms: 30}}}\n"
        "  - {name: c, after: [a], action: {handler: demo.sleep, with: {ms: 80}}, compensation: {handler: demo.sleep, with: {ms: 30}}}\n"
        "  - {name: d, after: [b, c], action: {handler: demo.fail}, compensation: {handler: demo.noop}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    /* They overlapped: each branch started (its attempt was recorded as
     * started) before the other one ended (its result was recorded), by the
     * store's timestamps. Run one after the other, one would start only at
     * or after the other's end. */
    int64_t b0 = event_ms(s, "step.started", "b"), b1 = event_ms(s, "step.succeeded", "b");
    int64_t c0 = event_ms(s, "step.started", "c"), c1 = event_ms(s, "step.succeeded", "c");
    cr_assert(b0 < c1 && c0 < b1, "b ran %lld..%lld ms, c ran %lld..%lld ms: no overlap",
              (long long)b0, (long long)b1, (long long)c0, (long long)c1);
    /* And each really took its 80 ms (the timestamps measure the calls). */
    cr_assert_geq(b1 - b0, 80);
    cr_assert_geq(c1 - c0, 80);
    char *comp = th_order(s, "step.started", "compensation");
    cr_assert(strcmp(comp, "d,b,c,a") == 0 || strcmp(comp, "d,c,b,a") == 0, "order %s", comp);
    free(comp);
    /* a is undone only after both b and c were undone. */
    char *done = th_order(s, "step.succeeded", "compensation");
    cr_assert(strcmp(done + strlen(done) - 1, "a") == 0, "a undone last: %s", done);
    free(done);
}

Test(engine, independent_roots_all_start_at_once) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: roots\n"
        "steps:\n"
        "  - {name: a, after: [], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n"
        "  - {name: b, after: [], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n"
        "  - {name: c, after: [], action: {handler: demo.sleep, with: {ms: 20}}, compensation: none}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    /* All three were recorded as started in the saga's first write. */
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e)
        if (strcmp(json_string_value(json_object_get(e, "type")), "step.started") == 0)
            cr_assert_eq(json_integer_value(json_object_get(e, "seq")), 1);
}

Test(engine, data_flows_from_output_to_input) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: flow\n"
        "input: {required: [order]}\n"
        "steps:\n"
        "  - name: reserve\n"
        "    action: {handler: demo.echo, with: {reservation: \"r-${input.order.id}\", qty: \"${input.order.qty}\"}}\n"
        "    compensation: {handler: demo.echo, with: {release: \"${steps.reserve.output.reservation}\"}}\n"
        "  - name: charge\n"
        "    action: {handler: demo.echo, with: {for: \"${steps.reserve.output.reservation}\", units: \"${steps.reserve.output.qty}\", saga: \"${saga.name}\"}}\n"
        "    compensation: none\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, "{\"order\": {\"id\": 7, \"qty\": 3}}"));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    json_t *out = json_object_get(th_step(s, "charge"), "output");
    cr_assert_str_eq(json_string_value(json_object_get(out, "for")), "r-7");
    cr_assert(json_is_integer(json_object_get(out, "units")), "a whole-string expression keeps its type");
    cr_assert_eq(json_integer_value(json_object_get(out, "units")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(out, "saga")), "flow");
}

Test(engine, missing_input_key_refused_before_start) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: needs\n"
        "input: {required: [order_id]}\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: none}\n");
    char err[256], id[SAGA_ID_MAX + 1];
    json_t *in = json_pack("{s:i}", "other", 1);
    int rc = saga_engine_start(T.engine, d, NULL, in, id, err, sizeof(err));
    json_decref(in);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "order_id") != NULL, "err: %s", err);
    th_run_until(&T, 0);
}

Test(engine, missing_handler_refused_with_position) {
    th_init(&T, NULL);
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_engine_def_t *d = th_try_define(&T,
        "saga: missing\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.nosuch}\n"
        "    compensation: {handler: nosuchplugin.undo}\n", &diags);
    cr_assert_null(d);
    cr_assert_eq(diags.count, 2);
    cr_assert_eq(diags.items[0].line, 4);
    cr_assert_eq(diags.items[0].column, 23);
    cr_assert(strstr(diags.items[0].message, "has no handler 'nosuch'") != NULL, "%s", diags.items[0].message);
    cr_assert_eq(diags.items[1].line, 5);
    cr_assert(strstr(diags.items[1].message, "plugin 'nosuchplugin' not found") != NULL, "%s", diags.items[1].message);
    saga_diags_close(&diags);
    th_run_until(&T, 0);
}

Test(engine, wrong_abi_refused) {
    th_init(&T, NULL);
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_engine_def_t *d = th_try_define(&T,
        "saga: abi\n"
        "steps:\n"
        "  - {name: a, action: {handler: wrongabi.noop}, compensation: none}\n", &diags);
    cr_assert_null(d);
    cr_assert_eq(diags.count, 1);
    cr_assert(strstr(diags.items[0].message, "plugin ABI version 999") != NULL, "%s", diags.items[0].message);
    saga_diags_close(&diags);
    th_run_until(&T, 0);
}

Test(engine, blocking_handler_runs_on_the_pool) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: block\n"
        "steps:\n"
        "  - {name: a, action: {handler: testkit.block, with: {ms: 20}}, compensation: none}\n"
        "  - name: b\n"
        "    action: {handler: testkit.block_nocomplete}\n"
        "    retry: {max_attempts: 1}\n"
        "    compensation: none\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(th_step(s, "a"), "output"), "thread")), "pool");
    cr_assert_str_eq(state_of(s), "compensated");
    cr_assert(strstr(json_string_value(json_object_get(th_step(s, "b"), "error")), "without completing") != NULL);
}

Test(engine, misbehaving_handlers_are_contained) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: misbehave\n"
        "recovery: forward\n"
        "steps:\n"
        "  - {name: twice, action: {handler: testkit.twice}}\n"
        "  - name: bad\n"
        "    action: {handler: testkit.badjson}\n"
        "    retry: {max_attempts: 2, initial_delay: 1ms}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    json_t *out = json_object_get(th_step(s, "twice"), "output");
    cr_assert_eq(json_integer_value(json_object_get(out, "n")), 1, "the first completion wins");
    cr_assert_str_eq(state_of(s), "stuck");
    cr_assert_eq(attempts_of(s, "bad"), 2, "invalid output JSON is a technical failure");
    cr_assert(strstr(json_string_value(json_object_get(th_step(s, "bad"), "error")), "invalid JSON") != NULL);
}

Test(engine, retry_after_hint_delays_the_next_attempt) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: ra\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: testkit.retry_after, with: {ms: 150}}\n"
        "    retry: {max_attempts: 2, backoff: fixed, initial_delay: 1ms, max_delay: 10s, jitter: none}\n"
        "    compensation: none\n");
    uint64_t t0 = uv_hrtime();
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    cr_assert_geq(ms, 140, "retry came after %llu ms, before the 150 ms asked for",
                  (unsigned long long)ms);
}

Test(engine, oversized_output_fails_the_attempt) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: big\n"
        "recovery: forward\n"
        "steps:\n"
        "  - {name: a, action: {handler: testkit.big, with: {bytes: 2000000}}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "stuck");
    cr_assert_eq(attempts_of(s, "a"), 1, "too large an output is not retried");
    cr_assert(strstr(json_string_value(json_object_get(th_step(s, "a"), "error")), "exceeds") != NULL);
}

Test(engine, ten_thousand_concurrent_sagas_on_one_loop) {
    th_init(&T, NULL);
    T.keep_summaries = false;
    saga_engine_def_t *d = th_define(&T,
        "saga: many\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.sleep, with: {ms: 50}}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.echo, with: {id: \"${saga.id}\"}}, compensation: {handler: demo.noop}}\n"
        "  - {name: c, action: {handler: demo.noop}, compensation: none}\n");
    for (int i = 0; i < 10000; i++)
        th_start(&T, d, NULL);
    cr_assert_eq(saga_engine_active(T.engine), 10000);
    th_run_until(&T, 10000);
    cr_assert_eq(T.by_state[SAGA_STATE_COMPLETED], 10000);
    cr_assert_eq(T.lost, 0);
}

Test(engine, cancel_turns_a_running_saga_to_compensating) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: cancel\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.sleep, with: {ms: 100}}, compensation: {handler: demo.noop}}\n"
        "  - {name: c, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    /* Let a finish and b start (3 progress events), then cancel while b
     * sleeps. */
    for (int i = 0; i < 50 && T.progress_events < 3; i++)
        uv_run(&T.loop, UV_RUN_ONCE);
    cr_assert_eq(saga_engine_cancel(T.engine, id), 0);
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    ASSERT_ORDER(s, "step.started", "compensation", "b,a");
    cr_assert_str_eq(status_of(s, "c"), "pending");
    cr_assert_str_eq(json_string_value(json_object_get(s, "reason")), "cancelled by operator");
}

/* A `with` that cannot be rendered fails the step before it starts: its
 * handler is never called, so there is nothing of it to compensate. */
Test(engine, render_failure_fails_the_step_without_starting_it) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T,
        "saga: render\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.echo, with: {x: \"${input.missing}\"}}, compensation: {handler: demo.noop}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    cr_assert_eq(attempts_of(s, "b"), 0);
    cr_assert_str_eq(status_of(s, "b"), "failed");
    ASSERT_ORDER(s, "step.started", "compensation", "a");
    cr_assert(strstr(json_string_value(json_object_get(th_step(s, "b"), "error")), "input.missing") != NULL);
}
