/*
 * test_http_sagas.c -- sagas over HTTP through the engine itself, against
 * the real sample service on loopback: what the services receive, in which
 * order, with which idempotency keys.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "service_proc.h"

static th_t T;
static service_proc_t S;
static bool service_up;

static void setup(void) { signal(SIGPIPE, SIG_IGN); }

static void teardown(void) {
    th_free(&T);
    if (service_up)
        service_stop(&S);
    service_up = false;
}

TestSuite(http_sagas, .init = setup, .fini = teardown);

static char *example(const char *name) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/definitions/examples/%s", getenv("SAGA_SOURCE_DIR"), name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The trip booking example over HTTP; the tickets service refuses (409):
 * the flight and hotel services receive their compensations, hotel first,
 * each with its own stable key; tickets (whose action started) too. */
Test(http_sagas, backward_saga_compensates_the_services_in_reverse_order) {
    static const char *const refuse[] = {"--refuse", "tickets=409", NULL};
    service_start(&S, refuse);
    service_up = true;
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, example("trip-booking-http.yaml"));
    char input[256], id[SAGA_ID_MAX + 1];
    snprintf(input, sizeof(input), "{\"base_url\": \"%s\", \"trip_id\": \"T-9\", "
             "\"traveller\": \"Ada\", \"city\": \"Oslo\"}", S.base);
    strcpy(id, th_start(&T, d, input));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "compensated");

    json_t *calls = service_get(&S, "/_calls");
    char seen[1024] = "";
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        const char *key = json_string_value(json_object_get(c, "idempotency_key"));
        const char *phase = json_string_value(json_object_get(c, "saga_phase"));
        const char *step = json_string_value(json_object_get(c, "saga_step"));
        char want[256];
        snprintf(want, sizeof(want), "%s/%s/%s", id, step, phase);
        cr_assert_str_eq(key, want, "each call carries its own stable key");
        snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%s%s:%s",
                 seen[0] ? "," : "", step, phase);
    }
    cr_assert_str_eq(seen,
                     "book_flight:action,book_hotel:action,book_tickets:action,"
                     "book_tickets:compensation,book_hotel:compensation,"
                     "book_flight:compensation");
    json_decref(calls);
}

/* 1,000 sagas at once, each making HTTP calls, on one loop. */
Test(http_sagas, a_thousand_concurrent_sagas_over_http) {
    service_start(&S, NULL);
    service_up = true;
    th_init(&T, NULL);
    T.keep_summaries = false;
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
        "saga: many_http\n"
        "steps:\n"
        "  - name: reserve\n"
        "    action: {handler: http.request, with: {method: POST, url: \"%s/inventory/reserve\","
        " body: {saga: \"${saga.id}\"}}}\n"
        "    compensation: {handler: http.request, with: {method: POST, url: \"%s/inventory/reserve/cancel\"}}\n"
        "  - name: charge\n"
        "    action: {handler: http.request, with: {method: POST, url: \"%s/payment/charge\","
        " body: {for: \"${steps.reserve.output.body.id}\"}}}\n"
        "    compensation: none\n", S.base, S.base, S.base);
    saga_engine_def_t *d = th_define(&T, yaml);
    for (int i = 0; i < 1000; i++)
        th_start(&T, d, NULL);
    th_run_until(&T, 1000);
    cr_assert_eq(T.by_state[SAGA_STATE_COMPLETED], 1000, "completed %zu, lost %zu",
                 T.by_state[SAGA_STATE_COMPLETED], T.lost);
    json_t *calls = service_get(&S, "/_calls");
    cr_assert_eq(json_array_size(calls), 2000, "two calls per saga");
    json_decref(calls);
}

/* ---------------------------------------------------------------------- */
/* The TCC example (tcc-order.yaml) against the sample service's balances  */
/* ---------------------------------------------------------------------- */

/* How many calls the service received on `path` in `phase`. */
static int calls_to(json_t *calls, const char *path, const char *phase) {
    int n = 0;
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        const char *p = json_string_value(json_object_get(c, "path"));
        const char *ph = json_string_value(json_object_get(c, "saga_phase"));
        n += p && ph && strcmp(p, path) == 0 && strcmp(ph, phase) == 0;
    }
    return n;
}

static json_int_t tcc_count(json_t *tcc, const char *kind, const char *name, const char *key) {
    json_t *h = json_object_get(json_object_get(tcc, kind), name);
    cr_assert_not_null(h, "%s %s is known to the service", kind, name);
    return json_integer_value(json_object_get(h, key));
}

static const char *run_tcc_order(void) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, example("tcc-order.yaml"));
    char input[512];
    snprintf(input, sizeof(input), "{\"base\": \"%s\", \"order\": \"O-42\", \"account\": "
             "\"acct-7\", \"amount\": 300, \"sku\": \"book-1\", \"qty\": 2}", S.base);
    static char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, input));
    th_run_until(&T, 1);
    return id;
}

/* Both Trys succeed: the amount is deducted exactly once and the items
 * committed; nothing stays frozen or held; no Cancel was sent. */
Test(http_sagas, tcc_order_confirms_deducting_exactly_once) {
    service_start(&S, NULL);
    service_up = true;
    const char *id = run_tcc_order();
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    json_t *tcc = service_get(&S, "/_tcc");
    cr_assert_eq(tcc_count(tcc, "accounts", "acct-7", "balance"), 700);
    cr_assert_eq(tcc_count(tcc, "accounts", "acct-7", "frozen"), 0);
    cr_assert_eq(tcc_count(tcc, "stock", "book-1", "available"), 98);
    cr_assert_eq(tcc_count(tcc, "stock", "book-1", "held"), 0);
    json_t *r = json_object_get(json_object_get(tcc, "reservations"), "account:O-42");
    cr_assert_str_eq(json_string_value(json_object_get(r, "state")), "deducted");
    json_decref(tcc);
    json_t *calls = service_get(&S, "/_calls");
    cr_assert_eq(calls_to(calls, "/account/freeze", "try"), 1);
    cr_assert_eq(calls_to(calls, "/stock/hold", "try"), 1);
    cr_assert_eq(calls_to(calls, "/account/deduct", "confirm"), 1);
    cr_assert_eq(calls_to(calls, "/stock/commit", "confirm"), 1);
    cr_assert_eq(calls_to(calls, "/account/unfreeze", "cancel"), 0);
    cr_assert_eq(calls_to(calls, "/stock/release", "cancel"), 0);
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        char want[256];
        snprintf(want, sizeof(want), "%s/%s/%s", id,
                 json_string_value(json_object_get(c, "saga_step")),
                 json_string_value(json_object_get(c, "saga_phase")));
        cr_assert_str_eq(json_string_value(json_object_get(c, "idempotency_key")), want);
    }
    json_decref(calls);
}

/* The stock refuses its hold: the frozen amount returns to zero (and the
 * balance is untouched); no Confirm was sent. */
Test(http_sagas, tcc_order_cancels_returning_frozen_amounts_to_zero) {
    static const char *const refuse[] = {"--refuse", "stock/hold=409", NULL};
    service_start(&S, refuse);
    service_up = true;
    const char *id = run_tcc_order();
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "compensated");
    json_t *tcc = service_get(&S, "/_tcc");
    cr_assert_eq(tcc_count(tcc, "accounts", "acct-7", "frozen"), 0);
    cr_assert_eq(tcc_count(tcc, "accounts", "acct-7", "balance"), 1000);
    json_t *r = json_object_get(json_object_get(tcc, "reservations"), "account:O-42");
    cr_assert_str_eq(json_string_value(json_object_get(r, "state")), "unfrozen");
    /* The refused hold is cancelled too (its Try started): nothing to
     * release, and a late hold would now be refused. */
    r = json_object_get(json_object_get(tcc, "reservations"), "stock:O-42");
    cr_assert_str_eq(json_string_value(json_object_get(r, "state")), "released");
    json_decref(tcc);
    json_t *calls = service_get(&S, "/_calls");
    cr_assert_eq(calls_to(calls, "/account/unfreeze", "cancel"), 1);
    cr_assert_eq(calls_to(calls, "/stock/release", "cancel"), 1);
    cr_assert_eq(calls_to(calls, "/account/deduct", "confirm"), 0);
    cr_assert_eq(calls_to(calls, "/stock/commit", "confirm"), 0);
    json_decref(calls);
}

/* ---------------------------------------------------------------------- */
/* The pivot example (pivot-order.yaml)                                    */
/* ---------------------------------------------------------------------- */

static json_t *run_pivot_order(const char *const *args) {
    service_start(&S, args);
    service_up = true;
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, example("pivot-order.yaml"));
    char input[512];
    snprintf(input, sizeof(input), "{\"base_url\": \"%s\", \"order_id\": \"O-7\", "
             "\"amount\": 990}", S.base);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, input));
    th_run_until(&T, 1);
    return th_summary(&T, id);
}

/* The charge is refused: before the pivot, the saga compensates. */
Test(http_sagas, pivot_order_refused_charge_compensates) {
    static const char *const refuse[] = {"--refuse", "payment=402", NULL};
    json_t *s = run_pivot_order(refuse);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "compensated");
    json_t *calls = service_get(&S, "/_calls");
    cr_assert_eq(calls_to(calls, "/inventory/reserve/cancel", "compensation"), 1);
    cr_assert_eq(calls_to(calls, "/order/ship", "action"), 0);
    json_decref(calls);
}

/* Shipping is refused after the charge: the saga is stuck for an operator,
 * and nothing is compensated (the stock stays reserved for the paid
 * order). */
Test(http_sagas, pivot_order_failure_after_the_charge_is_stuck_not_compensated) {
    static const char *const refuse[] = {"--refuse", "order/ship=409", NULL};
    json_t *s = run_pivot_order(refuse);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "stuck");
    cr_assert(json_is_true(json_object_get(s, "pivoted")));
    json_t *calls = service_get(&S, "/_calls");
    cr_assert_eq(calls_to(calls, "/payment/charge", "action"), 1);
    cr_assert_eq(calls_to(calls, "/order/ship", "action"), 1, "a 409 is not retried");
    cr_assert_eq(calls_to(calls, "/inventory/reserve/cancel", "compensation"), 0);
    cr_assert_eq(calls_to(calls, "/order/notify", "action"), 0);
    json_decref(calls);
}

Test(http_sagas, pivot_order_completes) {
    json_t *s = run_pivot_order(NULL);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
}
