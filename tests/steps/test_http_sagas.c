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
