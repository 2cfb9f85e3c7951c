/*
 * test_tcc.c -- TCC sagas (mode: tcc), pivot steps and retention by
 * outcome, each rule on the memory store and on a real redis-server: the
 * final state, which phases ran in which order (the durable history), the
 * refusals of a cancel that comes too late, an operator's retry of a stuck
 * saga, and the expiry a finished saga is given.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "redis_cmd.h"
#include "redis_server.h"
#include "saga/errors.h"
#include "store/operator.h"
#include "store/store_memory.h"

static redis_server_t R;
static bool redis_up;
static th_t T;

static void teardown(void) {
    th_free(&T);
    if (redis_up)
        redis_server_stop(&R);
}

TestSuite(tcc, .fini = teardown);

/* The harness on the store a test variant names. */
static void init(bool redis) {
    if (!redis) {
        th_init(&T, NULL);
        return;
    }
    signal(SIGPIPE, SIG_IGN);
    static const char *const args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    cr_assert_eq(redis_server_start(&R, args), 0);
    redis_up = true;
    th_init_redis(&T, R.url);
}

/* Each rule runs on both stores. */
#define BOTH(name)                                   \
    static void name(bool redis);                    \
    Test(tcc, name##_memory) { name(false); }        \
    Test(tcc, name##_redis) { name(true); }          \
    static void name(bool redis)

static redisReply *redis_q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static redisReply *redis_q(const char *fmt, ...) {
    static redisContext *c;
    if (c == NULL) {
        c = redis_server_connect(&R);
        cr_assert_not_null(c);
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

static const char *state_of(json_t *s) {
    return json_string_value(json_object_get(s, "state"));
}

/* A phase object of a step in the summary ("try", "confirm", "cancel"). */
static json_t *phase_of(json_t *s, const char *step, const char *phase) {
    return json_object_get(th_step(s, step), phase);
}

static json_int_t phase_attempts(json_t *s, const char *step, const char *phase) {
    return json_integer_value(json_object_get(phase_of(s, step, phase), "attempts"));
}

#define ASSERT_ORDER(summary, type, phase, expected)                               \
    do {                                                                           \
        char *o_ = th_order(summary, type, phase);                                 \
        cr_assert_str_eq(o_, expected, "%s/%s order", type, phase ? phase : "*");  \
        free(o_);                                                                  \
    } while (0)

/* Index in the history of the first event of `type` (and `phase`), or -1. */
static long first_event(json_t *s, const char *type, const char *phase) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *ph = json_string_value(json_object_get(e, "phase"));
        if (ty && strcmp(ty, type) == 0 && (phase == NULL || (ph && strcmp(ph, phase) == 0)))
            return (long)i;
    }
    return -1;
}

/* How many events of `type` for (`step`, `phase`) the history holds. */
static int count_events(json_t *s, const char *type, const char *step, const char *phase) {
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *st = json_string_value(json_object_get(e, "step"));
        const char *ph = json_string_value(json_object_get(e, "phase"));
        n += ty && st && ph && strcmp(ty, type) == 0 && strcmp(st, step) == 0 &&
             strcmp(ph, phase) == 0;
    }
    return n;
}

/* Runs the loop until `n` sagas finished, leaving the engine running. */
static void run_until_finished(size_t n) {
    while (T.finished < n)
        cr_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0 || T.finished >= n, "loop ran dry");
}

/* ---------------------------------------------------------------------- */
/* Operator requests from inside a test (cancel, retry)                    */
/* ---------------------------------------------------------------------- */

/* A cancel or retry asked on the loop, later than the progress report that
 * triggers it (the engine must not be re-entered from its callback). */
typedef struct op_s {
    uv_timer_t timer;
    bool redis;
    bool retry;
    char id[SAGA_ID_MAX + 1];
    int status;      /* the answer: 0 or a SAGA_E code */
    char why[512];
    bool done;
} op_t;

static op_t OP;

static void on_op(int status, const char *why, const saga_operator_request_t *res, void *data) {
    (void)res;
    op_t *op = data;
    op->status = status;
    snprintf(op->why, sizeof(op->why), "%s", why ? why : "");
    op->done = true;
}

static void op_fire(uv_timer_t *t) {
    op_t *op = t->data;
    uv_close((uv_handle_t *)&op->timer, NULL);
    if (!op->redis) {
        op->status = op->retry ? -ENOTSUP : saga_engine_cancel(T.engine, op->id);
        op->done = true;
        return;
    }
    int rc = op->retry ? saga_operator_retry(T.store, op->id, "test", on_op, op)
                       : saga_operator_cancel(T.store, op->id, "test", on_op, op);
    cr_assert_eq(rc, 0);
}

static void op_ask(bool redis, bool retry, const char *id) {
    memset(&OP, 0, sizeof(OP));
    OP.redis = redis;
    OP.retry = retry;
    snprintf(OP.id, sizeof(OP.id), "%s", id);
    cr_assert_eq(uv_timer_init(&T.loop, &OP.timer), 0);
    OP.timer.data = &OP;
    cr_assert_eq(uv_timer_start(&OP.timer, op_fire, 0, 0), 0);
}

/* Cancels when the first call of (step, phase) starts. */
static struct {
    bool redis;
    const char *step;
    saga_phase_t phase;
    bool asked;
} HOOK;

static void cancel_hook(th_t *t, const saga_progress_t *p) {
    (void)t;
    if (HOOK.asked || p->kind != SAGA_PROGRESS_CALL_STARTED || p->phase != HOOK.phase ||
        strcmp(p->step, HOOK.step) != 0)
        return;
    HOOK.asked = true;
    op_ask(HOOK.redis, false, p->saga_id);
}

static void cancel_when(bool redis, const char *step, saga_phase_t phase) {
    HOOK.redis = redis;
    HOOK.step = step;
    HOOK.phase = phase;
    HOOK.asked = false;
    T.progress_hook = cancel_hook;
}

static void on_resumed(int status, const char *msg, void *data) {
    cr_assert_eq(status, 0, "resume: %s", msg ? msg : "");
    *(bool *)data = true;
}

/* `saga retry` of a stuck saga, then its resume in this engine. */
static void retry_and_resume(const char *id) {
    op_ask(true, true, id);
    while (!OP.done)
        uv_run(&T.loop, UV_RUN_ONCE);
    cr_assert_eq(OP.status, 0, "retry refused: %s", OP.why);
    static bool resumed; /* set after this function returned */
    resumed = false;
    cr_assert_eq(saga_engine_resume(T.engine, id, on_resumed, &resumed), 0);
}

/* ---------------------------------------------------------------------- */
/* TCC                                                                     */
/* ---------------------------------------------------------------------- */

/* account and stock are tried side by side; each Confirm fails once
 * (technical) before it succeeds. */
static const char *const TCC_OK =
    "saga: place_order\n"
    "mode: tcc\n"
    "defaults:\n"
    "  confirm_retry: {backoff: fixed, initial_delay: 5ms, jitter: none}\n"
    "steps:\n"
    "  - name: account\n"
    "    try: {handler: demo.echo, with: {frozen: 30}}\n"
    "    confirm: {handler: demo.flaky, with: {failures: 1, amount: '${steps.account.output.frozen}'}}\n"
    "    cancel: {handler: demo.noop}\n"
    "  - name: stock\n"
    "    after: []\n"
    "    try: {handler: demo.echo, with: {held: 2}}\n"
    "    confirm: {handler: demo.flaky, with: {failures: 1}}\n"
    "    cancel: {handler: demo.noop}\n";

BOTH(all_trys_succeed_then_each_confirm_runs_once) {
    init(redis);
    saga_engine_def_t *d = th_define(&T, TCC_OK);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    cr_assert_str_eq(json_string_value(json_object_get(s, "mode")), "tcc");
    ASSERT_ORDER(s, "step.started", "try", "account,stock");
    static const char *const steps[] = {"account", "stock"};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(count_events(s, "step.succeeded", steps[k], "try"), 1);
        cr_assert_eq(count_events(s, "step.retrying", steps[k], "confirm"), 1,
                     "%s: one technical failure", steps[k]);
        cr_assert_eq(count_events(s, "step.succeeded", steps[k], "confirm"), 1,
                     "%s: confirmed once", steps[k]);
    }
    ASSERT_ORDER(s, "step.started", "cancel", "");
    cr_assert_eq(phase_attempts(s, "account", "confirm"), 2, "one technical failure, one retry");
    cr_assert_eq(phase_attempts(s, "stock", "try"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(th_step(s, "account"), "status")),
                     "confirmed");
    cr_assert(json_is_null(phase_of(s, "account", "cancel")));
    /* Each phase shows the arguments it was called with, rendered from the
     * Try's output; each step its place in the graph. */
    json_t *conf_in = json_object_get(phase_of(s, "account", "confirm"), "input");
    cr_assert_eq(json_integer_value(json_object_get(conf_in, "amount")), 30, "confirm input");
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(phase_of(s, "stock", "try"), "input"), "held")), 2);
    cr_assert(json_is_array(json_object_get(th_step(s, "stock"), "after")));
    cr_assert_eq(json_array_size(json_object_get(th_step(s, "stock"), "after")), 0);
    /* The decision is durable before any Confirm starts, and after every
     * Try succeeded. */
    long decided = first_event(s, "saga.confirming", NULL);
    cr_assert_geq(decided, 0);
    cr_assert_lt(decided, first_event(s, "step.started", "confirm"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *ph = json_string_value(json_object_get(e, "phase"));
        if (ty && ph && strcmp(ty, "step.succeeded") == 0 && strcmp(ph, "try") == 0)
            cr_assert_lt((long)i, decided, "a Try finished after the decision");
    }
    if (redis) {
        redisReply *r = redis_q("HMGET saga:{%s} conf:account act:stock comp:stock", id);
        cr_assert_str_eq(r->element[0]->str, "succeeded 2 0 0");
        cr_assert_str_eq(r->element[1]->str, "succeeded 1 0 0");
        cr_assert_eq(r->element[2]->type, REDIS_REPLY_NIL, "no Cancel was recorded");
        freeReplyObject(r);
    }
}

BOTH(a_failed_try_cancels_what_was_tried_in_reverse) {
    init(redis);
    saga_engine_def_t *d = th_define(&T,
        "saga: tcc_fail\n"
        "mode: tcc\n"
        "steps:\n"
        "  - name: a\n"
        "    after: []\n"
        "    try: {handler: demo.echo, with: {n: 1}}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.echo, with: '${steps.a.output}'}\n"
        "  - name: b\n"
        "    after: []\n"
        "    try: {handler: demo.sleep, with: {ms: 40}}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n"
        "  - name: c\n"
        "    after: [a]\n"
        "    try: {handler: demo.fail, with: {message: no stock}}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.echo, with: {own: '${steps.c.output}'}}\n"
        "  - name: d\n"
        "    after: [c]\n"
        "    try: {handler: demo.noop}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    const char *reason = json_string_value(json_object_get(s, "reason"));
    cr_assert(reason && strstr(reason, "no stock"), "reason: %s", reason);
    ASSERT_ORDER(s, "step.started", "try", "a,b,c");
    /* Reverse graph order, the failed Try's own step included; d never
     * started, so it is not cancelled. */
    ASSERT_ORDER(s, "step.started", "cancel", "c,b,a");
    cr_assert_eq(count_events(s, "step.succeeded", "a", "cancel"), 1);
    cr_assert_eq(count_events(s, "step.succeeded", "b", "cancel"), 1);
    cr_assert_eq(count_events(s, "step.succeeded", "c", "cancel"), 1);
    ASSERT_ORDER(s, "step.started", "confirm", "");
    cr_assert_eq(first_event(s, "saga.confirming", NULL), -1, "no decision to confirm");
    /* The Try in flight (b) finished before any Cancel started. */
    long b_done = -1, first_cancel = first_event(s, "step.started", "cancel");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "history"), i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *st = json_string_value(json_object_get(e, "step"));
        const char *ph = json_string_value(json_object_get(e, "phase"));
        if (ty && st && ph && strcmp(ty, "step.succeeded") == 0 && strcmp(st, "b") == 0 &&
            strcmp(ph, "try") == 0)
            b_done = (long)i;
    }
    cr_assert_geq(b_done, 0);
    cr_assert_lt(b_done, first_cancel);
    cr_assert_str_eq(json_string_value(json_object_get(th_step(s, "a"), "status")), "cancelled");
    cr_assert_str_eq(json_string_value(json_object_get(th_step(s, "d"), "status")), "pending");
}

/* The Confirm of stock fails twice (technical) with a budget of two. */
static const char *const TCC_STUCK =
    "saga: tcc_stuck\n"
    "mode: tcc\n"
    "steps:\n"
    "  - name: account\n"
    "    try: {handler: demo.echo}\n"
    "    confirm: {handler: demo.noop}\n"
    "    cancel: {handler: demo.noop}\n"
    "  - name: stock\n"
    "    try: {handler: demo.echo}\n"
    "    confirm: {handler: demo.flaky, with: {failures: 2}}\n"
    "    confirm_retry: {max_attempts: 2, backoff: fixed, initial_delay: 5ms, jitter: none}\n"
    "    cancel: {handler: demo.noop}\n";

BOTH(a_confirm_that_fails_for_good_leaves_the_saga_stuck_never_cancelled) {
    init(redis);
    saga_engine_def_t *d = th_define(&T, TCC_STUCK);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    run_until_finished(1);
    cr_assert_eq(T.by_state[SAGA_STATE_STUCK], 1);
    if (redis) {
        redisReply *r = redis_q("HMGET saga:{%s} state stuck_in conf:stock comp:account", id);
        cr_assert_str_eq(r->element[0]->str, "stuck");
        cr_assert_str_eq(r->element[1]->str, "confirming");
        cr_assert_str_eq(r->element[2]->str, "failed 2 0 0");
        cr_assert_eq(r->element[3]->type, REDIS_REPLY_NIL, "never cancelled");
        freeReplyObject(r);
        /* A stuck TCC saga cannot be cancelled: the store refuses. */
        op_ask(true, false, id);
        while (!OP.done)
            uv_run(&T.loop, UV_RUN_ONCE);
        cr_assert_eq(OP.status, SAGA_ESTATE);
        cr_assert(strstr(OP.why, "confirming"), "why: %s", OP.why);
        /* `saga retry` retries the failed Confirm: attempt 3 succeeds. */
        retry_and_resume(id);
    }
    th_run_until(&T, redis ? 2 : 1);
    json_t *s = th_summary(&T, id);
    ASSERT_ORDER(s, "step.started", "cancel", "");
    cr_assert_eq(first_event(s, "saga.compensating", NULL), -1);
    if (!redis) {
        cr_assert_str_eq(state_of(s), "stuck");
        const char *reason = json_string_value(json_object_get(s, "reason"));
        cr_assert(reason && strstr(reason, "confirm of step 'stock' failed"), "reason: %s",
                  reason);
        cr_assert_str_eq(json_string_value(json_object_get(th_step(s, "stock"), "status")),
                         "confirm_failed");
        return;
    }
    cr_assert_str_eq(state_of(s), "completed");
    cr_assert_eq(phase_attempts(s, "stock", "confirm"), 3);
    cr_assert_eq(count_events(s, "step.succeeded", "stock", "confirm"), 1);
    cr_assert_eq(count_events(s, "step.succeeded", "account", "confirm"), 1);
    cr_assert_geq(first_event(s, "saga.retried", NULL), 0);
}

BOTH(cancel_during_the_trys_cancels) {
    init(redis);
    saga_engine_def_t *d = th_define(&T,
        "saga: tcc_cancel\n"
        "mode: tcc\n"
        "steps:\n"
        "  - name: a\n"
        "    try: {handler: demo.echo}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n"
        "  - name: b\n"
        "    try: {handler: demo.sleep, with: {ms: 80}}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n"
        "  - name: c\n"
        "    try: {handler: demo.echo}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n");
    cancel_when(redis, "b", SAGA_PHASE_TRY);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    cr_assert(OP.done);
    cr_assert_eq(OP.status, 0, "cancel in phase 1 accepted: %s", OP.why);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    /* In memory the cancel takes effect at once; through Redis at the
     * engine's next write, which may already start c's Try. Either way
     * exactly the tried steps are cancelled, newest first. */
    char *tried = th_order(s, "step.started", "try");
    const char *want = strcmp(tried, "a,b") == 0 ? "b,a" : "c,b,a";
    cr_assert(strcmp(tried, "a,b") == 0 || (redis && strcmp(tried, "a,b,c") == 0),
              "tried: %s", tried);
    free(tried);
    ASSERT_ORDER(s, "step.succeeded", "cancel", want);
    ASSERT_ORDER(s, "step.started", "confirm", "");
}

BOTH(cancel_once_confirming_is_refused) {
    init(redis);
    saga_engine_def_t *d = th_define(&T,
        "saga: tcc_late_cancel\n"
        "mode: tcc\n"
        "steps:\n"
        "  - name: a\n"
        "    try: {handler: demo.echo}\n"
        "    confirm: {handler: demo.sleep, with: {ms: 60}}\n"
        "    cancel: {handler: demo.noop}\n");
    cancel_when(redis, "a", SAGA_PHASE_CONFIRM);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    cr_assert(OP.done);
    cr_assert_eq(OP.status, SAGA_ESTATE, "refused once confirming");
    if (redis)
        cr_assert(strstr(OP.why, "confirming"), "why: %s", OP.why);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    ASSERT_ORDER(s, "step.started", "cancel", "");
    cr_assert_eq(first_event(s, "saga.cancel_requested", NULL), -1, "nothing recorded");
}

/* ---------------------------------------------------------------------- */
/* Pivot steps                                                             */
/* ---------------------------------------------------------------------- */

/* reserve -> charge (the pivot) -> ship; ship's handler is a parameter. */
static const char *const PIVOT_FMT =
    "saga: pivot_%s\n"
    "steps:\n"
    "  - name: reserve\n"
    "    action: {handler: demo.echo, with: {n: 1}}\n"
    "    compensation: {handler: demo.noop}\n"
    "  - name: charge\n"
    "    pivot: true\n"
    "    action: {handler: %s, with: {message: card declined, ms: 60}}\n"
    "    compensation: none\n"
    "  - name: ship\n"
    "    action: {handler: %s, with: {failures: 2, message: no truck, ms: 60}}\n"
    "    retry: {max_attempts: 2, backoff: fixed, initial_delay: 5ms, jitter: none}\n";

static saga_engine_def_t *pivot_def(const char *tag, const char *charge, const char *ship) {
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), PIVOT_FMT, tag, charge, ship);
    return th_define(&T, yaml);
}

BOTH(pivot_failure_before_it_compensates) {
    init(redis);
    saga_engine_def_t *d = pivot_def("before", "demo.fail", "demo.noop");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "compensated");
    ASSERT_ORDER(s, "step.succeeded", "compensation", "reserve");
    ASSERT_ORDER(s, "step.skipped", "compensation", "charge");
    ASSERT_ORDER(s, "step.started", "action", "reserve,charge");
    cr_assert(json_is_false(json_object_get(s, "pivoted")));
    cr_assert_eq(first_event(s, "saga.pivoted", NULL), -1);
}

BOTH(pivot_failure_after_it_goes_forward_never_compensates) {
    init(redis);
    saga_engine_def_t *d = pivot_def("after", "demo.echo", "demo.flaky");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    run_until_finished(1);
    cr_assert_eq(T.by_state[SAGA_STATE_STUCK], 1, "ship's budget spent: stuck");
    if (redis) {
        redisReply *r = redis_q("HMGET saga:{%s} state stuck_in pivoted act:ship", id);
        cr_assert_str_eq(r->element[0]->str, "stuck");
        cr_assert_str_eq(r->element[1]->str, "running");
        cr_assert_str_eq(r->element[2]->str, "1");
        cr_assert_str_eq(r->element[3]->str, "failed 2 0 0");
        freeReplyObject(r);
        op_ask(true, false, id);
        while (!OP.done)
            uv_run(&T.loop, UV_RUN_ONCE);
        cr_assert_eq(OP.status, SAGA_ESTATE, "cancel refused after the pivot");
        cr_assert(strstr(OP.why, "pivot"), "why: %s", OP.why);
        retry_and_resume(id);
    }
    th_run_until(&T, redis ? 2 : 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), redis ? "completed" : "stuck");
    cr_assert(json_is_true(json_object_get(s, "pivoted")));
    cr_assert_str_eq(json_string_value(json_object_get(s, "pivot")), "charge");
    ASSERT_ORDER(s, "step.started", "compensation", "");
    cr_assert_eq(first_event(s, "saga.compensating", NULL), -1);
    /* The pivot's success and its durable mark went out in one write. */
    long piv = first_event(s, "saga.pivoted", NULL);
    cr_assert_geq(piv, 0);
    json_t *hist = json_object_get(s, "history");
    json_t *ok = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(hist, i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *st = json_string_value(json_object_get(e, "step"));
        if (ty && st && strcmp(ty, "step.succeeded") == 0 && strcmp(st, "charge") == 0)
            ok = e;
    }
    cr_assert_not_null(ok);
    cr_assert_eq(json_integer_value(json_object_get(ok, "seq")),
                 json_integer_value(json_object_get(json_array_get(hist, (size_t)piv), "seq")));
    if (redis)
        cr_assert_eq(json_integer_value(json_object_get(th_step(s, "ship"), "attempts")), 3);
}

BOTH(cancel_after_the_pivot_is_refused) {
    init(redis);
    saga_engine_def_t *d = pivot_def("cancel_after", "demo.echo", "demo.sleep");
    cancel_when(redis, "ship", SAGA_PHASE_ACTION);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    cr_assert(OP.done);
    cr_assert_eq(OP.status, SAGA_ESTATE);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    ASSERT_ORDER(s, "step.started", "compensation", "");
}

/* A cancel that arrives while the pivot's action is in flight waits for
 * its outcome: it succeeds, so the cancel is too late (and logged). */
BOTH(cancel_while_the_pivot_runs_waits_for_it) {
    init(redis);
    saga_engine_def_t *d = pivot_def("cancel_during", "demo.sleep", "demo.noop");
    cancel_when(redis, "charge", SAGA_PHASE_ACTION);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    cr_assert(OP.done);
    cr_assert_eq(OP.status, 0, "accepted before the pivot succeeded: %s", OP.why);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "completed");
    ASSERT_ORDER(s, "step.started", "compensation", "");
    long ignored = first_event(s, "saga.cancel_ignored", NULL);
    cr_assert_geq(ignored, 0);
    cr_assert_gt(ignored, first_event(s, "saga.pivoted", NULL));
    if (redis) {
        /* Withdrawn: no worker would claim the saga to act on it. */
        redisReply *r = redis_q("HGET saga:{%s} cancel", id);
        cr_assert_str_eq(r->str, "0");
        freeReplyObject(r);
    }
}

/* ---------------------------------------------------------------------- */
/* Retention by outcome                                                    */
/* ---------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When a finished saga expires: its index score in Redis, the memory
 * store's equivalent. */
static long long expiry_of(bool redis, const char *id) {
    if (!redis) {
        int64_t at = 0;
        cr_assert_eq(saga_store_memory_expiry(T.store, id, &at), 0, "saga %s kept", id);
        return at;
    }
    redisReply *r = redis_q("ZSCORE saga:{idx}:sagas %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "saga %s is in the index", id);
    long long v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

BOTH(retention_per_outcome_is_the_expiry) {
    init(redis);
    const char *fmt =
        "saga: kept_%s\n"
        "%s"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: %s, with: {message: refused}}\n"
        "    compensation: {handler: demo.noop}\n";
    const char *ret = "retention: {completed: 1d, compensated: 30d}\n";
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), fmt, "ok", ret, "demo.echo");
    saga_engine_def_t *ok = th_define(&T, yaml);
    snprintf(yaml, sizeof(yaml), fmt, "undone", ret, "demo.fail");
    saga_engine_def_t *undone = th_define(&T, yaml);
    snprintf(yaml, sizeof(yaml), fmt, "default", "", "demo.echo");
    saga_engine_def_t *dflt = th_define(&T, yaml);
    /* Only compensated sagas get a retention: completed ones the store's. */
    snprintf(yaml, sizeof(yaml), fmt, "half", "retention: {compensated: 2h}\n", "demo.echo");
    saga_engine_def_t *half = th_define(&T, yaml);
    char ids[4][SAGA_ID_MAX + 1];
    strcpy(ids[0], th_start(&T, ok, NULL));
    strcpy(ids[1], th_start(&T, undone, NULL));
    strcpy(ids[2], th_start(&T, dflt, NULL));
    strcpy(ids[3], th_start(&T, half, NULL));
    /* Read while the store is open (the memory store closes with it). */
    run_until_finished(4);
    long long now = now_ms(), day = 86400000LL, slack = 5000;
    long long want[4] = {day, 30 * day, 7 * day, 7 * day};
    for (int k = 0; k < 4; k++) {
        long long at = expiry_of(redis, ids[k]);
        cr_assert(llabs(at - (now + want[k])) < slack, "saga %d expires at %lld, want ~%lld", k,
                  at, now + want[k]);
    }
    th_run_until(&T, 4);
    cr_assert_str_eq(state_of(th_summary(&T, ids[1])), "compensated");
    cr_assert_str_eq(state_of(th_summary(&T, ids[0])), "completed");
}

/* The memory store removes a saga whose retention ran out, as saga_gc
 * does in Redis. */
static void on_written(int status, unsigned signals, void *data) {
    (void)signals;
    cr_assert_eq(status, 0);
    ++*(int *)data;
}

Test(tcc, memory_store_forgets_an_expired_saga) {
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    saga_store_memory_options_t mo = {.keep_finished = true};
    saga_store_t *m = saga_store_memory_new(&loop, &mo);
    saga_kv_t f = {"state", 5, "completed", 9};
    saga_event_t ev = {"saga.completed", NULL, NULL, 0, NULL, 0};
    saga_store_write_t brief = {"brief", 1, 0, SAGA_WRITE_CREATE | SAGA_WRITE_TERMINAL,
                                "t", &f, 1, &ev, 1, 1};
    saga_store_write_t kept = {"kept", 1, 0, SAGA_WRITE_CREATE | SAGA_WRITE_TERMINAL,
                               "t", &f, 1, &ev, 1, 0};
    int written = 0;
    cr_assert_eq(m->ops->write(m, &brief, on_written, &written), 0);
    cr_assert_eq(m->ops->write(m, &kept, on_written, &written), 0);
    while (written < 2)
        uv_run(&loop, UV_RUN_ONCE);
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL); /* the 1 ms retention is certainly over */
    int64_t at;
    cr_assert_eq(saga_store_memory_expiry(m, "brief", &at), SAGA_ENOTFOUND);
    cr_assert_eq(saga_store_memory_expiry(m, "kept", &at), 0);
    cr_assert(llabs(at - (now_ms() + (long long)SAGA_DEFAULT_RETENTION_MS)) < 5000);
    m->ops->close(m, NULL, NULL);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        ;
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* A Cancel that fails for good leaves the TCC saga stuck while
 * cancelling; the Confirms never run. */
BOTH(a_cancel_that_fails_for_good_leaves_the_saga_stuck) {
    init(redis);
    saga_engine_def_t *d = th_define(&T,
        "saga: tcc_cancel_fails\n"
        "mode: tcc\n"
        "steps:\n"
        "  - name: a\n"
        "    try: {handler: demo.echo}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.fail, with: {message: ledger closed}}\n"
        "  - name: b\n"
        "    try: {handler: demo.fail, with: {message: no stock}}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(state_of(s), "stuck");
    const char *reason = json_string_value(json_object_get(s, "reason"));
    cr_assert(reason && strstr(reason, "cancel of step 'a' failed"), "reason: %s", reason);
    cr_assert_str_eq(json_string_value(json_object_get(th_step(s, "a"), "status")),
                     "cancel_failed");
    ASSERT_ORDER(s, "step.succeeded", "cancel", "b");
    ASSERT_ORDER(s, "step.started", "confirm", "");
    if (redis) {
        redisReply *r = redis_q("HGET saga:{%s} stuck_in", id);
        cr_assert_str_eq(r->str, "compensating");
        freeReplyObject(r);
    }
}

/* On Redis Cluster the index is updated by a command of its own and the
 * record expires by its TTL: both carry the outcome's retention. */
Test(tcc, retention_with_a_split_index) {
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    redis_up = true;
    th_init_redis_split(&T, R.url);
    saga_engine_def_t *d = th_define(&T,
        "saga: kept_split\n"
        "retention: {completed: 2d}\n"
        "steps:\n  - {name: a, action: {handler: demo.echo}, compensation: none}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    long long want = now_ms() + 2 * 86400000LL;
    long long at = expiry_of(true, id);
    cr_assert(llabs(at - want) < 5000, "index score %lld, want ~%lld", at, want);
    redisReply *r = redis_q("PTTL saga:{%s}", id);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert(llabs(r->integer - 2 * 86400000LL) < 5000, "record TTL %lld", r->integer);
    freeReplyObject(r);
}
