/*
 * test_http.c -- the `http.request` handler against the real sample service
 * on a loopback port, through the strict test host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "plugin_host.h"
#include "service_proc.h"

static uv_loop_t loop;
static service_proc_t svc;
static plugin_host_t *host;

static void start(const char *const *service_args) {
    cr_assert_eq(uv_loop_init(&loop), 0);
    service_start(&svc, service_args);
    host = ph_new(&loop, "http");
    ph_load(host, "request");
}

/* Every test ends here: plugin closed, loop closes clean, service stops. */
static void finish(void) {
    ph_free(host);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left on the loop");
    service_stop(&svc);
    ph_check_leaks();
}

static ph_opts_t opts_for(const char *saga_id, const char *step) {
    ph_opts_t o;
    memset(&o, 0, sizeof(o));
    o.saga_id = saga_id;
    o.step = step;
    return o;
}

static const char *body_str(const saga_call_t *c, const char *key) {
    return json_string_value(
        json_object_get(json_object_get(c->output, "body"), key));
}

/* Waits (up to 2 s) until the service sees `n` open connections besides
 * the one asking; returns the last count. */
static int wait_connections(int n) {
    int seen = -1;
    for (int i = 0; i < 100; i++) {
        if ((seen = service_connections(&svc)) == n)
            break;
        usleep(20000);
    }
    return seen;
}

static json_t *calls(void) {
    return service_get(&svc, "/_calls");
}

Test(http, status_classes_map_to_outcomes) {
    start(NULL);
    static const struct {
        int status;
        saga_outcome_t outcome;
    } cases[] = {
        {200, SAGA_OUTCOME_OK},        {201, SAGA_OUTCOME_OK},
        {202, SAGA_OUTCOME_OK},        {204, SAGA_OUTCOME_OK},
        {301, SAGA_OUTCOME_BUSINESS},  {302, SAGA_OUTCOME_BUSINESS},
        {304, SAGA_OUTCOME_BUSINESS},  {400, SAGA_OUTCOME_BUSINESS},
        {404, SAGA_OUTCOME_BUSINESS},  {409, SAGA_OUTCOME_BUSINESS},
        {422, SAGA_OUTCOME_BUSINESS},  {408, SAGA_OUTCOME_TECHNICAL},
        {425, SAGA_OUTCOME_TECHNICAL}, {429, SAGA_OUTCOME_TECHNICAL},
        {500, SAGA_OUTCOME_TECHNICAL}, {502, SAGA_OUTCOME_TECHNICAL},
        {503, SAGA_OUTCOME_TECHNICAL}, {504, SAGA_OUTCOME_TECHNICAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[32];
        snprintf(id, sizeof(id), "saga-%zu", i);
        ph_opts_t o = opts_for(id, "pay");
        saga_call_t *c = ph_run1(
            host, "request", &o,
            "{\"method\":\"POST\",\"url\":\"%s/payment/charge?status=%d\","
            "\"body\":{\"amount\":10}}",
            svc.base, cases[i].status);
        cr_expect_eq(c->outcome, cases[i].outcome, "status %d: got %d (%s)",
                     cases[i].status, c->outcome, c->data);
        if (c->outcome == SAGA_OUTCOME_OK)
            cr_expect_eq(json_integer_value(json_object_get(c->output, "status")),
                         cases[i].status);
    }
    /* The message names method, URL and status with its reason. */
    ph_opts_t o = opts_for("saga-msg", "pay");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"post\",\"url\":\"%s/payment/charge"
                             "?status=503\"}", svc.base);
    char want[256];
    snprintf(want, sizeof(want),
             "POST %s/payment/charge?status=503: 503 Service Unavailable",
             svc.base);
    cr_expect(strncmp(c->data, want, strlen(want)) == 0, "message: %s", c->data);
    cr_expect_not(c->has_retry_after);
    /* 3xx is not followed: the service saw exactly one call per case. */
    json_t *all = calls();
    cr_expect_eq(json_array_size(all), sizeof(cases) / sizeof(cases[0]) + 1);
    json_decref(all);
    finish();
}

Test(http, ok_json_output_and_saga_headers) {
    start(NULL);
    ph_opts_t o = opts_for("s-42", "create_order");
    o.attempt = 2;
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/order/create\","
                             "\"body\":{\"item\":\"book\",\"qty\":2}}",
                             svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_eq(json_integer_value(json_object_get(c->output, "status")), 201);
    json_t *hdrs = json_object_get(c->output, "headers");
    cr_expect_str_eq(json_string_value(json_object_get(hdrs, "content-type")),
                     "application/json");
    const char *id = body_str(c, "id");
    cr_assert_not_null(id);
    cr_expect(strncmp(id, "order-", 6) == 0);
    json_t *input = json_object_get(json_object_get(c->output, "body"), "input");
    cr_expect_str_eq(json_string_value(json_object_get(input, "item")), "book");
    cr_expect_eq(json_integer_value(json_object_get(input, "qty")), 2);

    json_t *all = calls();
    cr_assert_eq(json_array_size(all), 1);
    json_t *e = json_array_get(all, 0);
    cr_expect_str_eq(json_string_value(json_object_get(e, "idempotency_key")),
                     "s-42/create_order/action");
    cr_expect_str_eq(json_string_value(json_object_get(e, "saga_id")), "s-42");
    cr_expect_str_eq(json_string_value(json_object_get(e, "saga_step")),
                     "create_order");
    cr_expect_str_eq(json_string_value(json_object_get(e, "saga_phase")),
                     "action");
    cr_expect_str_eq(json_string_value(json_object_get(e, "saga_attempt")), "2");
    json_t *sent = json_object_get(e, "headers");
    cr_expect_str_eq(json_string_value(json_object_get(sent, "content-type")),
                     "application/json");
    cr_expect_null(json_object_get(sent, "expect"));
    json_decref(all);
    finish();
}

Test(http, compensation_phase_headers) {
    start(NULL);
    ph_opts_t o = opts_for("s-7", "reserve");
    o.phase = SAGA_PHASE_COMPENSATION;
    o.attempt = 3;
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/inventory/"
                             "reserve/cancel\",\"body\":{\"id\":null}}",
                             svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    json_t *all = calls();
    json_t *e = json_array_get(all, 0);
    cr_expect_str_eq(json_string_value(json_object_get(e, "idempotency_key")),
                     "s-7/reserve/compensation");
    cr_expect_str_eq(json_string_value(json_object_get(e, "saga_phase")),
                     "compensation");
    cr_expect_str_eq(json_string_value(json_object_get(e, "saga_attempt")), "3");
    json_decref(all);
    finish();
}

Test(http, retry_sends_same_key_and_is_applied_once) {
    start(NULL);
    ph_opts_t o = opts_for("s-1", "charge");
    saga_call_t *a = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/payment/charge\","
                             "\"body\":{\"amount\":99}}", svc.base);
    o.attempt = 2;
    saga_call_t *b = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/payment/charge\","
                             "\"body\":{\"amount\":99}}", svc.base);
    cr_assert_eq(a->outcome, SAGA_OUTCOME_OK, "%s", a->data);
    cr_assert_eq(b->outcome, SAGA_OUTCOME_OK, "%s", b->data);
    cr_expect_str_eq(body_str(a, "id"), body_str(b, "id"));
    json_t *hb = json_object_get(b->output, "headers");
    cr_expect_str_eq(
        json_string_value(json_object_get(hb, "idempotent-replayed")), "true");

    json_t *all = calls();
    cr_assert_eq(json_array_size(all), 2);
    for (size_t i = 0; i < 2; i++)
        cr_expect_str_eq(json_string_value(json_object_get(
                             json_array_get(all, i), "idempotency_key")),
                         "s-1/charge/action");
    cr_expect(json_is_true(json_object_get(json_array_get(all, 1), "replayed")));
    json_decref(all);
    json_t *state = service_get(&svc, "/_state");
    cr_expect_eq(json_object_size(json_object_get(state, "records")), 1,
                 "the charge was applied more than once");
    json_decref(state);
    finish();
}

Test(http, retry_after_reaches_the_host) {
    start(NULL);
    ph_opts_t o = opts_for("s-ra", "pay");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/payment/charge"
                             "?status=503&retry_after=2\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(c->has_retry_after);
    cr_expect_eq(c->retry_after_ms, 2000);

    o.saga_id = "s-ra2";
    c = ph_run1(host, "request", &o,
                "{\"method\":\"POST\",\"url\":\"%s/payment/charge"
                "?status=429&retry_after=date:30\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(c->has_retry_after);
    cr_expect(c->retry_after_ms >= 28000 && c->retry_after_ms <= 31000,
              "HTTP-date Retry-After gave %llu ms",
              (unsigned long long)c->retry_after_ms);

    /* A business answer never asks for a retry. */
    o.saga_id = "s-ra3";
    c = ph_run1(host, "request", &o,
                "{\"method\":\"POST\",\"url\":\"%s/payment/charge"
                "?status=409&retry_after=5\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect_not(c->has_retry_after);
    finish();
}

Test(http, status_overrides) {
    start(NULL);
    ph_opts_t o = opts_for("s-ov", "pay");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/payment/charge"
                             "?status=503\",\"business_status\":[503]}",
                             svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS, "%s", c->data);
    o.saga_id = "s-ov2";
    c = ph_run1(host, "request", &o,
                "{\"method\":\"POST\",\"url\":\"%s/payment/charge?fail=409\","
                "\"retry_status\":[409]}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL, "%s", c->data);
    cr_expect(strstr(c->data, "409 Conflict") != NULL, "%s", c->data);
    o.saga_id = "s-ov3";
    c = ph_run1(host, "request", &o,
                "{\"method\":\"POST\",\"url\":\"%s/payment/charge?status=202\","
                "\"retry_status\":[202]}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL, "%s", c->data);
    finish();
}

Test(http, timeout_is_technical_and_connection_is_closed) {
    start(NULL);
    int fds = ph_count_fds();
    ph_opts_t o = opts_for("s-to", "slow");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"%s/hotel/book"
                             "?delay_ms=5000\",\"timeout\":\"200ms\"}",
                             svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    char want[256];
    snprintf(want, sizeof(want),
             "POST %s/hotel/book?delay_ms=5000: timed out after 200ms",
             svc.base);
    cr_expect_str_eq(c->data, want);
    cr_expect(c->completed_ms - c->started_ms < 2000);
    cr_expect_eq(ph_count_fds(), fds, "a descriptor was leaked");
    cr_expect_eq(wait_connections(0), 0, "the service still sees a connection");

    /* Without `timeout`, the attempt's budget applies. */
    o.saga_id = "s-to2";
    o.timeout_ms = 300;
    c = ph_run1(host, "request", &o,
                "{\"url\":\"%s/hotel/h-1?delay_ms=5000\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(strstr(c->data, "timed out after 300ms") != NULL, "%s", c->data);
    cr_expect_eq(ph_count_fds(), fds);
    finish();
}

Test(http, cancel_drops_the_transfer) {
    start(NULL);
    int fds = ph_count_fds();
    ph_opts_t o = opts_for("s-c", "slow");
    saga_call_t *c = ph_call(host, "request",
                             "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:1/\"}",
                             &o);
    cr_assert(ph_wait(host, 5000));
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);

    o.saga_id = "s-c2";
    char with[256];
    snprintf(with, sizeof(with),
             "{\"method\":\"POST\",\"url\":\"%s/flight/book?delay_ms=5000\"}",
             svc.base);
    c = ph_call(host, "request", with, &o);
    ph_run_for(host, 300);
    cr_assert_eq(c->ncomplete, 0);
    cr_expect_eq(wait_connections(1), 1);
    ph_cancel(host, c);
    cr_assert_eq(c->ncomplete, 1);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(strstr(c->data, "cancelled") != NULL, "%s", c->data);
    /* A second cancel after completion is a no-op. */
    ph_cancel(host, c);
    cr_expect_eq(ph_count_fds(), fds, "a descriptor was leaked");
    cr_expect_eq(wait_connections(0), 0, "the service still sees a connection");
    finish();
}

Test(http, huge_body_is_refused) {
    start(NULL);
    ph_opts_t o = opts_for("s-big", "get");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"url\":\"%s/order/o-1?bytes=3000000\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect(strstr(c->data, "exceeds max_body (1048576 bytes)") != NULL, "%s",
              c->data);
    o.saga_id = "s-big2";
    c = ph_run1(host, "request", &o,
                "{\"url\":\"%s/order/o-1?bytes=500\",\"max_body\":100}",
                svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect(strstr(c->data, "exceeds max_body (100 bytes)") != NULL, "%s",
              c->data);
    o.saga_id = "s-big3";
    c = ph_run1(host, "request", &o,
                "{\"url\":\"%s/order/o-1?bytes=2000000\",\"max_body\":2000000}",
                svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_eq(strlen(body_str(c, "pad")), 2000000 - 10);
    finish();
}

Test(http, unreachable_port_is_technical) {
    start(NULL);
    int port = unused_port();
    ph_opts_t o = opts_for("s-u", "pay");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"method\":\"POST\",\"url\":\"http://127.0.0.1:%d"
                             "/pay\"}", port);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    char want[128];
    snprintf(want, sizeof(want), "POST http://127.0.0.1:%d/pay: connection "
             "refused", port);
    cr_expect_str_eq(c->data, want);
    /* A password in the URL never reaches a message. */
    o.saga_id = "s-u2";
    c = ph_run1(host, "request", &o,
                "{\"url\":\"http://user:s3cret@127.0.0.1:%d/pay\"}", port);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(strstr(c->data, "s3cret") == NULL, "%s", c->data);
    cr_expect(strstr(c->data, "connection refused") != NULL, "%s", c->data);
    finish();
}

Test(http, json_and_other_bodies) {
    start(NULL);
    ph_opts_t o = opts_for("s-b", "get");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"url\":\"%s/order/x?format=text\"}", svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(json_string_value(json_object_get(c->output, "body")),
                     "plain text, not JSON\n");
    c = ph_run1(host, "request", &o,
                "{\"url\":\"%s/order/x?format=problem\"}", svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(body_str(c, "type"), "about:blank");
    c = ph_run1(host, "request", &o,
                "{\"url\":\"%s/order/x?format=badjson\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(strstr(c->data, "does not parse") != NULL, "%s", c->data);
    c = ph_run1(host, "request", &o, "{\"url\":\"%s/order/x?status=204\"}",
                svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(json_string_value(json_object_get(c->output, "body")), "");
    finish();
}

Test(http, methods_and_templated_headers_arrive) {
    start(NULL);
    ph_opts_t o = opts_for("s-h", "create");
    saga_call_t *c = ph_run1(
        host, "request", &o,
        "{\"method\":\"POST\",\"url\":\"%s/tickets/buy\",\"headers\":"
        "{\"X-Order\":\"o-42\",\"X-Amount\":12.5,\"X-Count\":3,"
        "\"X-Flag\":true,\"X-Empty\":\"\",\"Content-Type\":"
        "\"application/merge-patch+json\"},\"body\":[1,\"two\",null]}",
        svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    char path[128];
    snprintf(path, sizeof(path), "/tickets/%s", body_str(c, "id"));

    o.step = "read";
    saga_call_t *g = ph_run1(host, "request", &o, "{\"url\":\"%s%s\"}",
                             svc.base, path);
    cr_assert_eq(g->outcome, SAGA_OUTCOME_OK, "%s", g->data);
    cr_expect_str_eq(body_str(g, "state"), "done");
    o.step = "undo";
    saga_call_t *d = ph_run1(host, "request", &o,
                             "{\"method\":\"DELETE\",\"url\":\"%s%s\"}",
                             svc.base, path);
    cr_assert_eq(d->outcome, SAGA_OUTCOME_OK, "%s", d->data);
    cr_expect_str_eq(body_str(d, "state"), "cancelled");
    o.step = "put";
    saga_call_t *p = ph_run1(host, "request", &o,
                             "{\"method\":\"PUT\",\"url\":\"%s%s\",\"body\":{}}",
                             svc.base, path);
    cr_expect_eq(p->outcome, SAGA_OUTCOME_BUSINESS, "%s", p->data);
    cr_expect(strstr(p->data, "405 Method Not Allowed") != NULL, "%s", p->data);

    json_t *all = calls();
    cr_assert_eq(json_array_size(all), 4);
    json_t *e = json_array_get(all, 0);
    json_t *h = json_object_get(e, "headers");
    cr_expect_str_eq(json_string_value(json_object_get(h, "x-order")), "o-42");
    cr_expect_str_eq(json_string_value(json_object_get(h, "x-amount")), "12.5");
    cr_expect_str_eq(json_string_value(json_object_get(h, "x-count")), "3");
    cr_expect_str_eq(json_string_value(json_object_get(h, "x-flag")), "true");
    cr_expect_str_eq(json_string_value(json_object_get(h, "x-empty")), "");
    cr_expect_str_eq(json_string_value(json_object_get(h, "content-type")),
                     "application/merge-patch+json");
    json_t *body = json_object_get(e, "body");
    cr_expect(json_is_array(body) && json_array_size(body) == 3);
    const char *methods[] = {"POST", "GET", "DELETE", "PUT"};
    for (size_t i = 0; i < 4; i++)
        cr_expect_str_eq(json_string_value(json_object_get(
                             json_array_get(all, i), "method")), methods[i]);
    json_decref(all);
    finish();
}

Test(http, bad_with_is_business_and_sends_nothing) {
    start(NULL);
    static const char *const cases[][2] = {
        {"[1,2]", "`with` must be a mapping, got a list"},
        {"{\"url\":", "`with` is not valid JSON (line 1, column 7"},
        {"{}", "`url` is required"},
        {"{\"url\":5}", "`url`: expected a string"},
        {"{\"url\":\"ftp://127.0.0.1/x\"}", "only http:// and https://"},
        {"{\"url\":\"/relative\"}", "not a valid URL"},
        {"{\"url\":\"%s\",\"method\":\"PO ST\"}", "`method`"},
        {"{\"url\":\"%s\",\"method\":7}", "`method`"},
        {"{\"url\":\"%s\",\"headers\":[]}", "`headers`"},
        {"{\"url\":\"%s\",\"headers\":{\"X\":{}}}", "`headers.X`"},
        {"{\"url\":\"%s\",\"headers\":{\"Bad Name\":\"x\"}}", "header name"},
        {"{\"url\":\"%s\",\"headers\":{\"Bad\\nName\":\"x\"}}", "header name"},
        {"{\"url\":\"http://a\\n.example/\"}", "`url`"},
        {"{\"url\":\"ftp://a.example/\\nx\"}", "`url`"},
        {"{\"url\":\"%s\",\"headers\":{\"idempotency-key\":\"x\"}}",
         "`headers.idempotency-key` cannot be set"},
        {"{\"url\":\"%s\",\"headers\":{\"X\":\"a\\r\\nB: c\"}}", "line break"},
        {"{\"url\":\"%s\",\"timeout\":\"soon\"}", "`timeout`"},
        {"{\"url\":\"%s\",\"timeout\":0}", "`timeout`"},
        {"{\"url\":\"%s\",\"max_body\":\"big\"}", "`max_body`"},
        {"{\"url\":\"%s\",\"business_status\":[700]}", "`business_status[0]`"},
        {"{\"url\":\"%s\",\"retry_status\":\"500\"}", "`retry_status`"},
        {"{\"url\":\"%s\",\"retry_status\":[500],\"business_status\":[500]}",
         "both"},
        {"{\"url\":\"%s\",\"follow_redirects\":\"yes\"}", "`follow_redirects`"},
        {"{\"url\":\"%s\",\"bogus\":1}", "unknown field `bogus`"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char with[512];
        snprintf(with, sizeof(with), cases[i][0], svc.base);
        saga_call_t *c = ph_call(host, "request", with, NULL);
        /* Refused synchronously, before anything is sent. */
        cr_assert_eq(c->ncomplete, 1, "case %zu", i);
        cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS, "case %zu: %s", i,
                     c->data);
        cr_expect(strstr(c->data, cases[i][1]) != NULL,
                  "case %zu: '%s' not in '%s'", i, cases[i][1], c->data);
        cr_expect(strncmp(c->data, "http.request: ", 14) == 0, "%s", c->data);
    }
    json_t *all = calls();
    cr_expect_eq(json_array_size(all), 0);
    json_decref(all);
    finish();
}

Test(http, saga_header_with_a_line_break_is_refused_and_sends_nothing) {
    start(NULL);
    /* The message must stay one line (the test host checks it): the value
     * is quoted with its line break shown as " | ". */
    ph_opts_t o = {.step = "s\r\nX-Injected: 1", .idempotency_key = "k-1"};
    saga_call_t *c = ph_callf(host, "request", &o, "{\"url\":\"%s/order/x\"}",
                              svc.base);
    cr_assert_eq(c->ncomplete, 1, "refused synchronously");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS, "%s", c->data);
    cr_expect(strstr(c->data, "http.request: the Saga-Step \"s | X-Injected: "
                              "1\" holds a line break") != NULL, "%s", c->data);
    json_t *all = calls();
    cr_expect_eq(json_array_size(all), 0);
    json_decref(all);
    finish();
}

Test(http, redirects_only_when_asked) {
    start(NULL);
    ph_opts_t o = opts_for("s-r", "get");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"url\":\"%s/order/x?status=302\"}", svc.base);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect(strstr(c->data, "302 Found") != NULL, "%s", c->data);
    c = ph_run1(host, "request", &o,
                "{\"url\":\"%s/order/x?status=302\",\"follow_redirects\":true}",
                svc.base);
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect(json_is_true(json_object_get(json_object_get(c->output, "body"),
                                           "ok")));
    finish();
}

Test(http, connections_are_reused) {
    start(NULL);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s-%d", i);
        ph_opts_t o = opts_for(id, "reserve");
        saga_call_t *c = ph_run1(host, "request", &o,
                                 "{\"method\":\"POST\",\"url\":\"%s/inventory/"
                                 "reserve\"}", svc.base);
        cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    }
    json_t *all = calls();
    cr_assert_eq(json_array_size(all), 5);
    json_int_t conn = json_integer_value(
        json_object_get(json_array_get(all, 0), "conn"));
    for (size_t i = 1; i < 5; i++)
        cr_expect_eq(json_integer_value(
                         json_object_get(json_array_get(all, i), "conn")),
                     conn, "call %zu used a new connection", i);
    json_decref(all);
    finish();
}

Test(http, host_names_resolve_without_blocking) {
    start(NULL);
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    cr_expect(vi->features & CURL_VERSION_ASYNCHDNS,
              "libcurl %s has no AsynchDNS", vi->version);
    ph_opts_t o = opts_for("s-dns", "get");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"url\":\"http://localhost:%d/_health\"}",
                             svc.port);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    finish();
}

/* A host name that cannot be resolved is a technical failure (a retry may
 * meet a working resolver) whose message names the URL. A 64-character
 * label is refused by the resolver itself, so no name server is asked:
 * the same answer with or without a network. */
Test(http, an_unresolvable_host_is_technical_and_named) {
    start(NULL);
    char label[65];
    memset(label, 'a', 64);
    label[64] = '\0';
    ph_opts_t o = opts_for("s-nx", "get");
    saga_call_t *c = ph_run1(host, "request", &o,
                             "{\"url\":\"http://%s.invalid/orders\"}", label);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL, "%s", c->data);
    char want[160];
    snprintf(want, sizeof(want), "GET http://%s.invalid/orders: cannot resolve the host name", label);
    cr_expect(strncmp(c->data, want, strlen(want)) == 0, "%s", c->data);
    finish();
}

Test(http, a_thousand_concurrent_requests_on_one_loop) {
    start(NULL);
    enum { N = 1000 };
    static saga_call_t *cs[N];
    char with[256];
    snprintf(with, sizeof(with),
             "{\"method\":\"POST\",\"url\":\"%s/inventory/reserve\","
             "\"body\":{\"sku\":\"a\"}}", svc.base);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "saga-%d", i);
        ph_opts_t o = opts_for(id, "reserve");
        o.timeout_ms = 30000;
        cs[i] = ph_call(host, "request", with, &o);
    }
    cr_assert(ph_wait(host, 60000), "%zu calls still pending",
              ph_pending(host));
    for (int i = 0; i < N; i++)
        cr_assert_eq(cs[i]->outcome, SAGA_OUTCOME_OK, "call %d: %s", i,
                     cs[i]->data);
    json_t *state = service_get(&svc, "/_state");
    cr_expect_eq(json_object_size(json_object_get(state, "records")), N);
    json_decref(state);
    finish();
}
