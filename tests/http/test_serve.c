/*
 * test_serve.c -- `saga serve` end to end: a real redis-server, a real
 * `saga worker` and a real `saga serve` (this build's binary), libcurl as
 * the client on the port serve chose. Every route and error code of
 * docs/api.md, auth, idempotent submit, long-polls, Redis restarted under
 * requests, SIGTERM with long-polls open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include "http_client.h"
#include "redis_cmd.h"
#include "redis_server.h"
#include "saga_proc.h"
#include "test_poll.h"

#define FULL_TOKEN "test-full-token-0123456789"
#define READ_TOKEN "test-read-token-0123456789"

static redis_server_t R;
static char dir[512];
static char api[300];      /* http://127.0.0.1:PORT */
static pid_t worker_pid, serve_pid;
static char serve_out[600], serve_err[600], worker_log[600];

/* ---------------------------------------------------------------------- */
/* Set-up                                                                  */
/* ---------------------------------------------------------------------- */

static void write_defs(void) {
    char path[700];
    snprintf(path, sizeof(path), "%s/defs", dir);
    mkdir(path, 0700);
    /* slow: 600 ms, so that a long-poll waits for it */
    snprintf(path, sizeof(path), "%s/defs/slow.yaml", dir);
    saga_proc_write_file(path, "saga: slow\n"
                     "input:\n  required: [n]\n"
                     "steps:\n"
                     "  - name: nap\n"
                     "    action: {handler: demo.sleep, with: {ms: 600}}\n"
                     "    compensation: {handler: demo.noop}\n");
    /* stuck: forward recovery whose step fails for good */
    snprintf(path, sizeof(path), "%s/defs/stuck.yaml", dir);
    saga_proc_write_file(path, "saga: stuck\n"
                     "recovery: forward\n"
                     "steps:\n"
                     "  - name: boom\n"
                     "    action: {handler: demo.fail, with: {message: no luck}}\n");
    /* brief: runs 3 s, to cancel while it runs (a cancelled saga compensates
     * once its action in flight has finished) */
    snprintf(path, sizeof(path), "%s/defs/brief.yaml", dir);
    saga_proc_write_file(path, "saga: brief\n"
                     "steps:\n"
                     "  - name: wait\n"
                     "    action: {handler: demo.sleep, with: {ms: 3000}}\n"
                     "    compensation: {handler: demo.noop}\n");
    /* confirming: a TCC saga whose Confirm takes 3 s, to cancel too late */
    snprintf(path, sizeof(path), "%s/defs/confirming.yaml", dir);
    saga_proc_write_file(path, "saga: confirming\n"
                     "mode: tcc\n"
                     "steps:\n"
                     "  - name: hold\n"
                     "    try: {handler: demo.echo}\n"
                     "    confirm: {handler: demo.sleep, with: {ms: 3000}}\n"
                     "    cancel: {handler: demo.noop}\n");
    /* long: a saga that runs for a while, for long-polls that must wait */
    snprintf(path, sizeof(path), "%s/defs/long.yaml", dir);
    saga_proc_write_file(path, "saga: long\n"
                     "steps:\n"
                     "  - name: wait\n"
                     "    action: {handler: demo.sleep, with: {ms: 20000}}\n"
                     "    compensation: {handler: demo.noop}\n"
                     "    timeout: 30s\n");
}

static void start_worker(void) {
    char defs[700];
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    snprintf(worker_log, sizeof(worker_log), "%s/worker.log", dir);
    const char *args[] = {"worker", "--redis", R.url, "--defs", defs, "--name", "w1",
                          "--lease", "2s", "--grace", "1s", NULL};
    saga_proc_io_t io = {.out = worker_log, .err = worker_log};
    worker_pid = saga_proc_spawn(args, &io);
}

/* Starts serve with `extra` arguments; reads the address it prints. */
static void start_serve(const char *const *extra) {
    snprintf(serve_out, sizeof(serve_out), "%s/serve.out", dir);
    snprintf(serve_err, sizeof(serve_err), "%s/serve.err", dir);
    const char *args[16] = {"serve", "--redis", R.url, "--listen", "127.0.0.1:0"};
    int n = 5;
    for (; extra != NULL && *extra != NULL; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    saga_proc_io_t io = {.out = serve_out, .err = serve_err};
    serve_pid = saga_proc_spawn(args, &io);
    saga_proc_first_line(serve_out, serve_err, api, sizeof(api), 10000);
    cr_assert(strncmp(api, "http://127.0.0.1:", 17) == 0, "address %s", api);
}

static void setup(void) {
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    snprintf(dir, sizeof(dir), "%s/work", R.dir);
    mkdir(dir, 0700);
    write_defs();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_worker();
}

static void teardown(void) {
    int s = saga_proc_stop(&serve_pid);
    saga_proc_stop(&worker_pid);
    saga_proc_assert_clean(serve_err);
    saga_proc_assert_clean(worker_log);
    cr_expect_eq(s, 0, "serve exits 0 on SIGTERM");
    redis_server_stop(&R);
    curl_global_cleanup();
}

/* ---------------------------------------------------------------------- */
/* The client                                                              */
/* ---------------------------------------------------------------------- */

typedef http_resp_t resp_t;

static void resp_free(resp_t *r) { http_resp_free(r); }

/* One request; `auth` is a token or NULL; `hdr` one more header or NULL. */
static CURLcode call(const char *method, const char *path, const char *body, const char *auth,
                     const char *hdr, resp_t *out) {
    char a[300];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (auth != NULL) {
        snprintf(a, sizeof(a), "Authorization: Bearer %s", auth);
        headers[n++] = a;
    }
    if (hdr != NULL)
        headers[n++] = hdr;
    return http_call(api, method, path, body, headers, 70000L, out);
}

static const char *jstr(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static void expect(resp_t *r, long status, const char *code) {
    cr_assert_eq(r->status, status, "status %ld (want %ld): %s", r->status, status,
                 r->body ? r->body : "");
    if (code != NULL) {
        cr_assert_not_null(r->json, "not JSON: %s", r->body ? r->body : "");
        json_t *e = json_object_get(r->json, "error");
        cr_assert_str_eq(jstr(e, "code"), code, "%s", r->body);
        cr_assert_not_null(jstr(e, "message"));
    }
}

static void do_call(const char *method, const char *path, const char *body, resp_t *r) {
    cr_assert_eq(call(method, path, body, NULL, NULL, r), CURLE_OK, "%s %s", method, path);
}

/* Waits until the worker serves the definitions (the API knows them). */
static void wait_served(void) {
    test_poll_t p = test_poll_start(15000);
    for (;;) {
        resp_t r;
        do_call("GET", "/v1/definitions/slow", NULL, &r);
        bool ok = r.status == 200;
        resp_free(&r);
        if (ok)
            return;
        if (!test_poll_next(&p)) {
            char *log = saga_proc_slurp(worker_log);
            cr_assert_fail("the worker did not publish its definitions; log: %s", log);
        }
    }
}

/* Polls GET /v1/sagas/ID until its state is `state`. */
static void wait_state(const char *id, const char *state) {
    char path[200];
    snprintf(path, sizeof(path), "/v1/sagas/%s", id);
    test_poll_t p = test_poll_start(20000);
    for (;;) {
        resp_t r;
        do_call("GET", path, NULL, &r);
        bool ok = r.status == 200 && r.json != NULL && strcmp(jstr(r.json, "state"), state) == 0;
        char last[300];
        snprintf(last, sizeof(last), "%ld %s", r.status, r.body ? r.body : "");
        resp_free(&r);
        if (ok)
            return;
        if (!test_poll_next(&p))
            cr_assert_fail("saga %s not %s after 20 s; last: %.200s", id, state, last);
    }
}

TestSuite(serve, .init = setup, .fini = teardown, .timeout = 240);

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */
/* ---------------------------------------------------------------------- */

Test(serve, submit_idempotent_status_history_and_list) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1},\"id\":\"s-1\"}", &r);
    expect(&r, 201, NULL);
    cr_assert(strstr(r.headers, "location: /v1/sagas/s-1") != NULL, "%s", r.headers);
    cr_assert_str_eq(jstr(r.json, "id"), "s-1");
    cr_assert_str_eq(jstr(r.json, "state"), "submitted");
    resp_free(&r);

    /* the same id again (from the header this time): 200, nothing enqueued */
    cr_assert_eq(call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1}}", NULL,
                      "Idempotency-Key: s-1", &r), CURLE_OK);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "id"), "s-1");
    resp_free(&r);

    wait_state("s-1", "completed");
    do_call("GET", "/v1/sagas/s-1", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert(json_is_true(json_object_get(r.json, "finished")));
    cr_assert_str_eq(jstr(r.json, "saga"), "slow");
    cr_assert_eq(json_array_size(json_object_get(r.json, "steps")), 1);
    resp_free(&r);

    do_call("GET", "/v1/sagas/s-1/history", NULL, &r);
    expect(&r, 200, NULL);
    json_t *tr = json_object_get(r.json, "transitions");
    cr_assert_gt(json_array_size(tr), 2);
    cr_assert_str_eq(jstr(json_array_get(tr, 0), "type"), "saga.created");
    size_t created = 0, i;
    json_t *e;
    json_array_foreach(tr, i, e) created += strcmp(jstr(e, "type"), "saga.created") == 0;
    cr_assert_eq(created, 1, "one saga for two POSTs with one id");
    resp_free(&r);

    /* a few more, then page through them two at a time */
    for (int k = 2; k <= 5; k++) {
        char body[100];
        snprintf(body, sizeof(body), "{\"saga\":\"slow\",\"input\":{\"n\":%d},\"id\":\"s-%d\"}", k, k);
        do_call("POST", "/v1/sagas", body, &r);
        expect(&r, 201, NULL);
        resp_free(&r);
    }
    for (int k = 2; k <= 5; k++) {
        char id[16];
        snprintf(id, sizeof(id), "s-%d", k);
        wait_state(id, "completed");
    }
    char path[400] = "/v1/sagas?saga=slow&limit=2";
    size_t seen = 0;
    for (int pages = 0; pages < 20; pages++) {
        do_call("GET", path, NULL, &r);
        expect(&r, 200, NULL);
        seen += json_array_size(json_object_get(r.json, "sagas"));
        const char *next = jstr(r.json, "next");
        if (next == NULL) {
            resp_free(&r);
            break;
        }
        char *esc = curl_easy_escape(NULL, next, 0);
        snprintf(path, sizeof(path), "/v1/sagas?saga=slow&limit=2&cursor=%s", esc);
        curl_free(esc);
        resp_free(&r);
    }
    cr_assert_eq(seen, 5, "every saga once across the pages");
    do_call("GET", "/v1/sagas?state=completed&limit=10", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "sagas")), 5);
    resp_free(&r);
}

/* A saga record and its index entry as an engine writes them (unfinished:
 * score -created; finished: a score from 0, here 10^9 + created). */
static void put_record(redisContext *rc, const char *id, const char *state, long long created) {
    bool finished = strcmp(state, "completed") == 0;
    freeReplyObject(redis_cmd(rc, "HSET saga:{%s} id %s saga listed state %s created %lld", id,
                              id, state, created));
    freeReplyObject(redis_cmd(rc, "ZADD saga:{idx}:sagas %lld %s",
                              finished ? 1000000000LL + created : -created, id));
}

/* GET /v1/sagas pages with keyset cursors: while sagas are added before
 * the cursor and listed ones removed (the cursor's own among them), every
 * saga that stays is listed exactly once, in order. Offsets would shift. */
Test(serve, paging_lists_every_saga_that_stays_exactly_once) {
    start_serve(NULL);
    redisContext *rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    char order[60][16];
    size_t n = 0;
    for (int i = 29; i >= 0; i--) {
        snprintf(order[n], sizeof(order[0]), "p-%02d", i);
        put_record(rc, order[n++], "running", 10000 + i);
    }
    for (int i = 29; i >= 0; i--) {
        snprintf(order[n], sizeof(order[0]), "q-%02d", i);
        put_record(rc, order[n++], "completed", 10000 + i);
    }
    static char listed[400][16], removed[400][16];
    size_t nl = 0, nr = 0;
    char path[600] = "/v1/sagas?saga=listed&limit=4";
    for (int page = 0;; page++) {
        cr_assert_lt(page, 100, "the cursors end");
        resp_t r;
        do_call("GET", path, NULL, &r);
        expect(&r, 200, NULL);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r.json, "sagas"), i, e) {
            cr_assert_lt(nl, 400);
            snprintf(listed[nl++], sizeof(listed[0]), "%s", jstr(e, "id"));
        }
        const char *next = jstr(r.json, "next");
        if (next == NULL) {
            resp_free(&r);
            break;
        }
        char *esc = curl_easy_escape(NULL, next, 0);
        snprintf(path, sizeof(path), "/v1/sagas?saga=listed&limit=4&cursor=%s", esc);
        curl_free(esc);
        resp_free(&r);
        if (page % 2 == 0) { /* two newer ones, one in each part: before the cursor */
            char id[16];
            snprintf(id, sizeof(id), "n-%02d", page);
            put_record(rc, id, "running", 90000 + page);
            snprintf(id, sizeof(id), "m-%02d", page);
            put_record(rc, id, "completed", 90000 + page);
        } else { /* the last three listed go */
            for (size_t k = nl >= 3 ? nl - 3 : 0; k < nl; k++) {
                freeReplyObject(redis_cmd(rc, "ZREM saga:{idx}:sagas %s", listed[k]));
                freeReplyObject(redis_cmd(rc, "DEL saga:{%s}", listed[k]));
                snprintf(removed[nr++], sizeof(removed[0]), "%s", listed[k]);
            }
        }
    }
    size_t k = 0, stable = 0;
    for (size_t i = 0; i < n; i++) {
        bool gone = false;
        for (size_t j = 0; j < nr; j++)
            gone = gone || strcmp(removed[j], order[i]) == 0;
        if (gone)
            continue;
        stable++;
        size_t times = 0;
        for (size_t j = 0; j < nl; j++)
            times += strcmp(listed[j], order[i]) == 0;
        cr_assert_eq(times, 1, "%s listed %zu times", order[i], times);
        while (k < nl && strcmp(listed[k], order[i]) != 0)
            k++;
        cr_assert_lt(k, nl, "%s listed out of order", order[i]);
    }
    cr_assert(stable > 20 && stable < n, "removed some, not all: %zu", stable);

    /* An old positional cursor, and one too long, are refused saying why. */
    resp_t r;
    do_call("GET", "/v1/sagas?cursor=u:4", NULL, &r);
    expect(&r, 400, "invalid_cursor");
    cr_assert(strstr(r.body, "older") != NULL, "%s", r.body);
    resp_free(&r);
    char longpath[400] = "/v1/sagas?cursor=F1:";
    for (size_t l = strlen(longpath); l < 300; l++)
        longpath[l] = 'a';
    longpath[300] = '\0';
    do_call("GET", longpath, NULL, &r);
    expect(&r, 400, "invalid_cursor");
    cr_assert(strstr(r.body, "longer") != NULL, "%s", r.body);
    resp_free(&r);
    redisFree(rc);
}

Test(serve, every_refusal_has_its_code) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\": \"slow\",\n \"input\": {,}}", &r);
    expect(&r, 400, "malformed_json");
    cr_assert(strstr(jstr(json_object_get(r.json, "error"), "message"), "2:") != NULL, "%s", r.body);
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\": 5}", &r);
    expect(&r, 400, "invalid_field");
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\": \"nobody\"}", &r);
    expect(&r, 404, "unknown_saga");
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\": \"slow\", \"input\": {}}", &r);
    expect(&r, 422, "invalid_input");
    cr_assert(strstr(r.body, "'n'") != NULL, "names the missing key: %s", r.body);
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\": \"slow\", \"input\": [1]}", &r);
    expect(&r, 422, "invalid_input");
    resp_free(&r);
    char *big = malloc(2 * 1024 * 1024 + 1);
    memset(big, ' ', 2 * 1024 * 1024);
    big[2 * 1024 * 1024] = '\0';
    /* as a client that waits for 100 Continue sends it: the 413 comes
     * before the body (sending it without the wait races with the server
     * closing the connection) */
    cr_assert_eq(call("POST", "/v1/sagas", big, NULL, "Expect: 100-continue", &r), CURLE_OK);
    expect(&r, 413, "body_too_large");
    resp_free(&r);
    free(big);

    do_call("GET", "/v1/sagas/none-such", NULL, &r);
    expect(&r, 404, "not_found");
    resp_free(&r);
    do_call("GET", "/v1/sagas/bad%20id", NULL, &r);
    expect(&r, 400, "invalid_id");
    resp_free(&r);
    do_call("GET", "/v1/sagas/x?wait=2h", NULL, &r);
    expect(&r, 400, "invalid_wait");
    resp_free(&r);
    do_call("GET", "/v1/sagas?state=sleeping", NULL, &r);
    expect(&r, 400, "invalid_state");
    resp_free(&r);
    do_call("GET", "/v1/sagas?limit=0", NULL, &r);
    expect(&r, 400, "invalid_limit");
    resp_free(&r);
    do_call("GET", "/v1/sagas?cursor=not-a-cursor", NULL, &r);
    expect(&r, 400, "invalid_cursor");
    resp_free(&r);
    do_call("GET", "/v1/sagas/none-such/history", NULL, &r);
    expect(&r, 404, "not_found");
    resp_free(&r);
    do_call("POST", "/v1/sagas/none-such/cancel", NULL, &r);
    expect(&r, 404, "not_found");
    resp_free(&r);
    do_call("POST", "/v1/sagas/none-such/retry", NULL, &r);
    expect(&r, 404, "not_found");
    resp_free(&r);
    do_call("GET", "/v1/definitions/nobody", NULL, &r);
    expect(&r, 404, "unknown_saga");
    resp_free(&r);
    do_call("DELETE", "/v1/sagas", NULL, &r);
    expect(&r, 405, "method_not_allowed");
    resp_free(&r);
    do_call("GET", "/v2/nothing", NULL, &r);
    expect(&r, 404, "not_found");
    resp_free(&r);
}

/* Once a TCC saga's decision to confirm is written, the store refuses a
 * cancel: 409 not_cancellable, saying why. */
Test(serve, cancel_of_a_confirming_tcc_saga_is_409) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"confirming\",\"id\":\"tcc-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("tcc-1", "confirming");
    do_call("GET", "/v1/sagas/tcc-1", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "mode"), "tcc");
    json_t *step = json_array_get(json_object_get(r.json, "steps"), 0);
    cr_assert_str_eq(jstr(json_object_get(step, "confirm"), "status"), "running", "%s", r.body);
    cr_assert_str_eq(jstr(json_object_get(step, "try"), "status"), "succeeded");
    resp_free(&r);
    do_call("GET", "/v1/definitions/confirming", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "mode"), "tcc");
    step = json_array_get(json_object_get(r.json, "steps"), 0);
    cr_assert_str_eq(jstr(step, "try"), "demo.echo");
    cr_assert_str_eq(jstr(step, "confirm"), "demo.sleep");
    cr_assert_str_eq(jstr(step, "cancel"), "demo.noop");
    resp_free(&r);
    do_call("POST", "/v1/sagas/tcc-1/cancel", NULL, &r);
    expect(&r, 409, "not_cancellable");
    cr_assert(strstr(r.body, "confirming") != NULL, "%s", r.body);
    resp_free(&r);
    wait_state("tcc-1", "completed");
}

Test(serve, cancel_retry_definitions_health) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"brief\",\"id\":\"l-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("l-1", "running");
    do_call("POST", "/v1/sagas/l-1/retry", NULL, &r);
    expect(&r, 409, "not_stuck");
    resp_free(&r);
    do_call("POST", "/v1/sagas/l-1/cancel", NULL, &r);
    expect(&r, 202, NULL);
    cr_assert_str_eq(jstr(r.json, "id"), "l-1");
    cr_assert(json_is_true(json_object_get(r.json, "cancel_requested")));
    resp_free(&r);
    wait_state("l-1", "compensated");
    do_call("POST", "/v1/sagas/l-1/cancel", NULL, &r);
    expect(&r, 409, "not_cancellable");
    resp_free(&r);

    do_call("POST", "/v1/sagas", "{\"saga\":\"stuck\",\"id\":\"k-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("k-1", "stuck");
    /* "stuck" shows before its worker has finished parking it: a retry
     * then is refused with "try again in a moment", which it does */
    test_poll_t pr = test_poll_start(10000);
    for (;;) {
        do_call("POST", "/v1/sagas/k-1/retry", NULL, &r);
        if (r.status != 409 || strstr(r.body, "try again") == NULL)
            break;
        resp_free(&r);
        cr_assert(test_poll_next(&pr), "the stuck saga was never parked for good");
    }
    expect(&r, 202, NULL);
    resp_free(&r);

    do_call("GET", "/v1/definitions", NULL, &r);
    expect(&r, 200, NULL);
    json_t *defs = json_object_get(r.json, "definitions");
    cr_assert_eq(json_array_size(defs), 5);
    for (size_t i = 0; i < 5; i++) {
        /* every one served by the running worker, and by it alone */
        json_t *ws = json_object_get(json_array_get(defs, i), "workers");
        cr_assert_eq(json_array_size(ws), 1, "%s", r.body);
        cr_assert_str_eq(json_string_value(json_array_get(ws, 0)), "w1");
    }
    resp_free(&r);
    do_call("GET", "/v1/definitions/slow", NULL, &r);
    expect(&r, 200, NULL);
    json_t *ws = json_object_get(r.json, "workers");
    cr_assert_eq(json_array_size(ws), 1, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(ws, 0)), "w1");
    cr_assert_str_eq(jstr(r.json, "recovery"), "backward");
    cr_assert(strstr(jstr(r.json, "yaml"), "demo.sleep") != NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "steps"), 0), "action"),
                     "demo.sleep");
    resp_free(&r);

    /* Another worker forgets w1, as it forgets a dead one (lease lapsed,
     * nothing left to take over): w1's next heartbeat finds no lease, and
     * it publishes what it serves again. */
    redisContext *rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    redisReply *fr = redis_cmd(rc, "FCALL saga_deregister 2 saga:{idx}:workers "
                                   "saga:{idx}:serving w1");
    cr_assert_eq(fr->type, REDIS_REPLY_INTEGER, "%s", fr->type == REDIS_REPLY_ERROR ? fr->str : "");
    freeReplyObject(fr);
    redisFree(rc);
    test_poll_t fp = test_poll_start(10000);
    for (;;) {
        do_call("GET", "/v1/definitions/slow", NULL, &r);
        expect(&r, 200, NULL);
        bool back = json_array_size(json_object_get(r.json, "workers")) == 1;
        resp_free(&r);
        if (back)
            break;
        cr_assert(test_poll_next(&fp), "w1 never said again that it serves 'slow'");
    }

    do_call("GET", "/v1/openapi.json", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "openapi"), "3.1.0");
    resp_free(&r);
    do_call("GET", "/healthz", NULL, &r);
    expect(&r, 200, NULL);
    resp_free(&r);
    do_call("GET", "/readyz", NULL, &r);
    expect(&r, 200, NULL);
    resp_free(&r);
    do_call("GET", "/metrics", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert(strstr(r.body, "saga_workers_live 1\n") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "saga_store_up 1\n") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "saga_http_requests_total{route=\"/v1/sagas/{id}/cancel\",code=\"202\"} 1\n") != NULL,
              "%s", r.body);
    resp_free(&r);
}

/* A name whose workers are all gone is refused (within the second the API
 * remembers a name), not enqueued for nobody. */
Test(serve, submit_refused_once_no_live_worker_serves_the_saga) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1}}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    cr_assert_eq(saga_proc_stop(&worker_pid), 0, "the worker stops cleanly");
    test_poll_t p = test_poll_start(10000);
    for (;;) {
        do_call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1}}", &r);
        long st = r.status;
        if (st == 404) {
            expect(&r, 404, "unknown_saga");
            cr_assert(strstr(r.body, "no live worker") != NULL, "%s", r.body);
            resp_free(&r);
            break;
        }
        resp_free(&r);
        cr_assert_eq(st, 201, "accepted until the API notices (at most a second)");
        cr_assert(test_poll_next(&p), "a saga nobody serves is still accepted");
    }
}

Test(serve, long_poll_answers_when_the_saga_finishes) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1},\"id\":\"w-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    do_call("GET", "/v1/sagas/w-1?wait=50s", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "state"), "completed", "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "finished")));
    /* the saga takes 0.6 s: the answer came when it finished, well before 50 s */
    cr_assert_lt(r.secs, 20.0, "answered after %.1f s", r.secs);
    resp_free(&r);
    /* a wait on a saga that does not settle ends with its current state */
    do_call("POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"w-2\"}", &r);
    resp_free(&r);
    do_call("GET", "/v1/sagas/w-2?wait=1s", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert(!json_is_true(json_object_get(r.json, "finished")), "%s", r.body);
    resp_free(&r);
}

/* POST /v1/sagas?wait=: start and wait in one request. The answer is the
 * saga's status document once it settled, 201 for the saga the request
 * created, 200 for an id started before; a wait that ends first answers
 * the current state; a bad wait is refused before anything is started. */
Test(serve, submit_and_wait_answers_the_outcome) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas?wait=50s", "{\"saga\":\"slow\",\"input\":{\"n\":1},"
            "\"id\":\"sw-1\"}", &r);
    expect(&r, 201, NULL);
    cr_assert_str_eq(jstr(r.json, "id"), "sw-1", "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "state"), "completed", "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "finished")), "%s", r.body);
    cr_assert_lt(r.secs, 20.0, "answered after %.1f s", r.secs);
    resp_free(&r);
    /* the same id again: nothing started, its outcome at once */
    do_call("POST", "/v1/sagas?wait=5s", "{\"saga\":\"slow\",\"input\":{\"n\":1},"
            "\"id\":\"sw-1\"}", &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "state"), "completed", "%s", r.body);
    resp_free(&r);
    /* a saga that does not settle within the wait: its current state */
    do_call("POST", "/v1/sagas?wait=1s", "{\"saga\":\"long\",\"id\":\"sw-2\"}", &r);
    expect(&r, 201, NULL);
    cr_assert(!json_is_true(json_object_get(r.json, "finished")), "%s", r.body);
    resp_free(&r);
    /* a stuck saga settles too */
    do_call("POST", "/v1/sagas?wait=50s", "{\"saga\":\"stuck\",\"id\":\"sw-3\"}", &r);
    expect(&r, 201, NULL);
    cr_assert_str_eq(jstr(r.json, "state"), "stuck", "%s", r.body);
    resp_free(&r);
    /* a wait over 60 s, or not a duration: 400, and nothing started */
    const char *bad[] = {"/v1/sagas?wait=2m", "/v1/sagas?wait=soon", "/v1/sagas?wait=%zz"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        do_call("POST", bad[i], "{\"saga\":\"slow\",\"input\":{\"n\":1},"
                "\"id\":\"sw-4\"}", &r);
        expect(&r, 400, "invalid_wait");
        resp_free(&r);
    }
    do_call("GET", "/v1/sagas/sw-4", NULL, &r);
    expect(&r, 404, NULL);
    resp_free(&r);
}

/* Long-polls on saga `id` from `n` child processes (wait `wait`): each
 * exits 0 when answered 200 with `state` and finished == `finished`, or
 * with `state` NULL, when answered 503 store_unavailable. */
static void polls_start(const char *id, const char *wait, int n, const char *state,
                        bool finished, pid_t *kids) {
    char path[200];
    snprintf(path, sizeof(path), "/v1/sagas/%s?wait=%s", id, wait);
    for (int k = 0; k < n; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0) {
            resp_t kr;
            CURLcode rc = call("GET", path, NULL, NULL, NULL, &kr);
            bool ok = rc == CURLE_OK && kr.json != NULL &&
                      (state == NULL
                           ? kr.status == 503 &&
                                 strcmp(jstr(json_object_get(kr.json, "error"), "code"),
                                        "store_unavailable") == 0
                           : kr.status == 200 && strcmp(jstr(kr.json, "state"), state) == 0 &&
                                 json_is_true(json_object_get(kr.json, "finished")) == finished);
            if (!ok)
                fprintf(stderr, "long-poll %s: curl %d, %ld %s\n", path, (int)rc, kr.status,
                        kr.body ? kr.body : "");
            _exit(ok ? 0 : 1);
        }
    }
}

static void polls_wait_open(int n) {
    char want[64];
    snprintf(want, sizeof(want), "saga_http_long_polls %d\n", n);
    test_poll_t p = test_poll_start(10000);
    for (;;) {
        resp_t r;
        do_call("GET", "/metrics", NULL, &r);
        bool there = strstr(r.body, want) != NULL;
        resp_free(&r);
        if (there)
            return;
        cr_assert(test_poll_next(&p), "the long-polls never arrived (want %d)", n);
    }
}

static void polls_reap(int n, pid_t *kids) {
    for (int k = 0; k < n; k++) {
        int st;
        cr_assert_eq(waitpid(kids[k], &st, 0), kids[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "long-poll %d was not answered as expected (see stderr)", k);
    }
}

/* Waits until serve's subscription to settlements is live. */
static void wait_subscribed(void) {
    test_poll_t p = test_poll_start(20000);
    for (;;) {
        resp_t r;
        do_call("GET", "/metrics", NULL, &r);
        bool live = r.body != NULL && strstr(r.body, "saga_http_settled_subscribed 1\n") != NULL;
        resp_free(&r);
        if (live)
            return;
        cr_assert(test_poll_next(&p), "serve never subscribed to settlements");
    }
}

/* Several long-polls of one saga: all answered when it settles, well
 * before their wait (the saga runs 3 s), from one push. */
Test(serve, every_long_poll_of_a_saga_is_answered_when_it_settles) {
    start_serve(NULL);
    wait_served();
    wait_subscribed();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"brief\",\"id\":\"m-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    pid_t kids[4];
    polls_start("m-1", "60s", 4, "completed", true, kids);
    polls_wait_open(4);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    polls_reap(4, kids);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt((double)(t1.tv_sec - t0.tv_sec), 45.0, "answered at the deadline, not when "
                 "the saga settled");
    /* a stuck saga settles too */
    do_call("POST", "/v1/sagas", "{\"saga\":\"stuck\",\"id\":\"m-2\"}", &r);
    resp_free(&r);
    do_call("GET", "/v1/sagas/m-2?wait=50s", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "state"), "stuck", "%s", r.body);
    cr_assert_lt(r.secs, 45.0);
    resp_free(&r);
    do_call("GET", "/metrics", NULL, &r);
    cr_assert(strstr(r.body, "saga_http_long_polls 0\n") != NULL, "%s", r.body);
    resp_free(&r);
}

/* A settlement message is a hint, not the state: a waiter is answered when
 * the saga it waits on has settled, read afresh, never because a message
 * named it (one published for an earlier settlement, or by anyone else,
 * came late). */
Test(serve, a_settlement_message_of_an_unsettled_saga_answers_nobody) {
    start_serve(NULL);
    wait_served();
    wait_subscribed();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"h-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\":\"brief\",\"id\":\"h-2\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("h-1", "running");
    pid_t stale[1], real[1];
    polls_start("h-1", "60s", 1, "running", false, stale);
    polls_wait_open(1);
    polls_start("h-2", "60s", 1, "completed", true, real);
    polls_wait_open(2);
    /* h-1 named on the channel while it runs; then h-2 settles for real,
     * published after it on the same channel */
    redisContext *rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    freeReplyObject(redis_cmd(rc, "PUBLISH saga:{idx}:settled h-1"));
    redisFree(rc);
    polls_reap(1, real);
    do_call("GET", "/metrics", NULL, &r);
    cr_assert(strstr(r.body, "saga_http_long_polls 1\n") != NULL,
              "h-1's poll was answered by a message while the saga ran: %s", r.body);
    resp_free(&r);
    kill(stale[0], SIGKILL);
    waitpid(stale[0], NULL, 0);
}

/* Redis restarted while long-polls wait: what was published while serve
 * was not subscribed is lost, so it reads every waiting saga again once
 * subscribed; the polls are answered when the saga settles, not at their
 * deadline. */
Test(serve, long_polls_survive_a_redis_restart) {
    start_serve(NULL);
    wait_served();
    wait_subscribed();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"brief\",\"id\":\"rr-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("rr-1", "running");
    pid_t kids[3];
    polls_start("rr-1", "60s", 3, "completed", true, kids);
    polls_wait_open(3);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* serve frozen, so that the saga settles while serve is not subscribed
     * (its push is lost); then a snapshot and a crash of Redis: the
     * restarted server has the saga running */
    cr_assert_eq(kill(serve_pid, SIGSTOP), 0);
    redisContext *rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    redisReply *sv = redis_cmd(rc, "SAVE");
    cr_assert(sv != NULL && sv->type == REDIS_REPLY_STATUS, "SAVE failed");
    freeReplyObject(sv);
    redisFree(rc);
    redis_server_kill(&R, SIGKILL);
    cr_assert_eq(redis_server_restart(&R), 0);
    /* the worker finishes the saga on the restarted server */
    rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    test_poll_t p = test_poll_start(30000);
    for (;;) {
        redisReply *st = redis_cmd(rc, "HGET saga:{rr-1} state");
        bool done = st != NULL && st->type == REDIS_REPLY_STRING && strcmp(st->str, "completed") == 0;
        freeReplyObject(st);
        if (done)
            break;
        cr_assert(test_poll_next(&p), "the worker did not finish rr-1 after the restart");
    }
    redisFree(rc);
    cr_assert_eq(kill(serve_pid, SIGCONT), 0);
    polls_reap(3, kids);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt((double)(t1.tv_sec - t0.tv_sec), 45.0, "answered at the deadline, not when "
                 "the saga settled");
    wait_subscribed();
}

Test(serve, tokens_none_wrong_read_full) {
    char tokens[700];
    snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
    saga_proc_write_file(tokens, "# test tokens\n" FULL_TOKEN "\n" READ_TOKEN " read\n");
    const char *extra[] = {"--token-file", tokens, NULL};
    start_serve(extra);
    resp_t r;
    cr_assert_eq(call("GET", "/healthz", NULL, NULL, NULL, &r), CURLE_OK);
    expect(&r, 200, NULL);
    resp_free(&r);
    cr_assert_eq(call("GET", "/v1/sagas", NULL, NULL, NULL, &r), CURLE_OK);
    expect(&r, 401, "unauthorized");
    cr_assert(strstr(r.headers, "www-authenticate: Bearer") != NULL, "%s", r.headers);
    resp_free(&r);
    cr_assert_eq(call("GET", "/metrics", NULL, NULL, NULL, &r), CURLE_OK);
    expect(&r, 401, "unauthorized");
    resp_free(&r);
    cr_assert_eq(call("GET", "/v1/sagas", NULL, "wrong-token-0123456789", NULL, &r), CURLE_OK);
    expect(&r, 401, "unauthorized");
    resp_free(&r);
    cr_assert_eq(call("GET", "/v1/sagas", NULL, READ_TOKEN, NULL, &r), CURLE_OK);
    expect(&r, 200, NULL);
    resp_free(&r);
    cr_assert_eq(call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1}}", READ_TOKEN,
                      NULL, &r), CURLE_OK);
    expect(&r, 403, "forbidden");
    resp_free(&r);
    test_poll_t p = test_poll_start(15000);
    for (;;) {
        cr_assert_eq(call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1}}", FULL_TOKEN,
                          NULL, &r), CURLE_OK);
        long st = r.status;
        resp_free(&r);
        if (st == 201)
            break;
        cr_assert_eq(st, 404, "only unknown_saga while the worker starts");
        cr_assert(test_poll_next(&p), "the worker never served 'slow'");
    }
    char *err = saga_proc_slurp(serve_err);
    cr_assert(strstr(err, FULL_TOKEN) == NULL && strstr(err, READ_TOKEN) == NULL,
              "a token in the log: %s", err);
    free(err);
}

Test(serve, no_token_file_means_loopback_only) {
    snprintf(serve_err, sizeof(serve_err), "%s/serve0.err", dir);
    char out[700];
    snprintf(out, sizeof(out), "%s/serve0.out", dir);
    const char *args[] = {"serve", "--redis", R.url, "--listen", "0.0.0.0:0", NULL};
    saga_proc_io_t io = {.out = out, .err = serve_err};
    cr_assert_eq(saga_proc_run(args, &io), 2);
    char *err = saga_proc_slurp(serve_err);
    cr_assert(strstr(err, "--token-file") != NULL, "%s", err);
    free(err);
    const char *bad[] = {"serve", "--redis", R.url, "--listen", "127.0.0.1:0", "--max-body", "0",
                         NULL};
    cr_assert_eq(saga_proc_run(bad, &io), 2);
    const char *none[] = {"serve", "--redis", R.url, NULL};
    cr_assert_eq(saga_proc_run(none, &io), 2);
}

Test(serve, redis_restarted_under_requests) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    redis_server_kill(&R, SIGKILL);
    /* at once, not after a hang */
    test_poll_t p = test_poll_start(10000);
    for (;;) {
        do_call("GET", "/v1/sagas/any", NULL, &r);
        long st = r.status;
        resp_free(&r);
        if (st == 503)
            break;
        cr_assert(test_poll_next(&p), "no 503 while Redis is down (got %ld)", st);
    }
    do_call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"input\":{\"n\":1}}", &r);
    expect(&r, 503, "store_unavailable");
    cr_assert_lt(r.secs, 5.0);
    resp_free(&r);
    do_call("GET", "/readyz", NULL, &r);
    expect(&r, 503, "store_unavailable");
    resp_free(&r);
    do_call("GET", "/healthz", NULL, &r);
    expect(&r, 200, NULL);
    resp_free(&r);
    cr_assert_eq(redis_server_restart(&R), 0);
    p = test_poll_start(20000);
    for (;;) {
        do_call("GET", "/readyz", NULL, &r);
        long st = r.status;
        resp_free(&r);
        if (st == 200)
            break;
        cr_assert(test_poll_next(&p), "not ready again after Redis came back");
    }
    do_call("GET", "/v1/sagas?limit=5", NULL, &r);
    expect(&r, 200, NULL);
    resp_free(&r);
}

Test(serve, sigterm_answers_open_long_polls) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"t-1\"}", &r);
    resp_free(&r);
    wait_state("t-1", "running");
    /* two long-polls from child processes, then SIGTERM to serve */
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0) {
            resp_t kr;
            CURLcode rc = call("GET", "/v1/sagas/t-1?wait=60s", NULL, NULL, NULL, &kr);
            _exit(rc == CURLE_OK && kr.status == 200 && kr.json != NULL &&
                          strcmp(jstr(kr.json, "state"), "running") == 0
                      ? 0
                      : 1);
        }
    }
    /* both are waiting once the gauge says so */
    test_poll_t p = test_poll_start(10000);
    for (;;) {
        do_call("GET", "/metrics", NULL, &r);
        bool both = strstr(r.body, "saga_http_long_polls 2\n") != NULL;
        resp_free(&r);
        if (both)
            break;
        cr_assert(test_poll_next(&p), "the long-polls never arrived");
    }
    cr_assert_eq(saga_proc_stop(&serve_pid), 0, "serve exits 0");
    for (int k = 0; k < 2; k++) {
        int st;
        cr_assert_eq(waitpid(kids[k], &st, 0), kids[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "long-poll %d got the current state at SIGTERM", k);
    }
}

/* GET /v1/stats: the gauges of /metrics as JSON (the console's overview),
 * and what the status document says of a stuck saga and its graph. */
Test(serve, stats_count_sagas_by_state_workers_and_backlog) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("GET", "/v1/stats", NULL, &r);
    expect(&r, 200, NULL);
    json_t *sg = json_object_get(r.json, "sagas");
    cr_assert_eq(json_integer_value(json_object_get(sg, "unfinished")), 0, "%s", r.body);
    cr_assert(json_is_false(json_object_get(sg, "partial")), "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "workers_live")), 1, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "intake_backlog")), 0, "%s", r.body);
    resp_free(&r);

    do_call("POST", "/v1/sagas", "{\"saga\":\"stuck\",\"id\":\"st-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"st-2\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    do_call("POST", "/v1/sagas", "{\"saga\":\"slow\",\"id\":\"st-3\",\"input\":{\"n\":1}}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("st-1", "stuck");
    wait_state("st-2", "running");
    wait_state("st-3", "completed");
    /* the counts are read at most once a second: poll */
    test_poll_t p = test_poll_start(10000);
    for (;;) {
        do_call("GET", "/v1/stats", NULL, &r);
        expect(&r, 200, NULL);
        sg = json_object_get(r.json, "sagas");
        bool ok = json_integer_value(json_object_get(sg, "stuck")) == 1 &&
                  json_integer_value(json_object_get(sg, "running")) == 1 &&
                  json_integer_value(json_object_get(sg, "compensating")) == 0 &&
                  json_integer_value(json_object_get(sg, "unfinished")) == 2 &&
                  json_integer_value(json_object_get(sg, "finished")) == 1;
        char last[400];
        snprintf(last, sizeof(last), "%s", r.body);
        resp_free(&r);
        if (ok)
            break;
        if (!test_poll_next(&p))
            cr_assert_fail("/v1/stats never counted 1 stuck, 1 running, 1 finished: %s", last);
    }

    /* a stuck saga says what it was doing; steps carry the graph and the
     * arguments they were given */
    do_call("GET", "/v1/sagas/st-1", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "stuck_in"), "running", "%s", r.body);
    json_t *step = json_array_get(json_object_get(r.json, "steps"), 0);
    cr_assert(json_is_array(json_object_get(step, "after")), "%s", r.body);
    json_t *in = json_object_get(json_object_get(step, "action"), "input");
    cr_assert_str_eq(jstr(in, "message"), "no luck", "%s", r.body);
    resp_free(&r);
    do_call("GET", "/v1/sagas/st-3", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "input"), "n")), 1,
                 "%s", r.body);
    cr_assert(json_is_null(json_object_get(r.json, "stuck_in")), "%s", r.body);
    resp_free(&r);
}

/* SIGTERM with long-polls open while Redis is down: they are answered 503
 * at once (their state cannot be read) and serve exits 0, rather than
 * waiting for Redis forever. */
Test(serve, sigterm_with_redis_down_answers_long_polls_and_exits) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"d-1\"}", &r);
    resp_free(&r);
    wait_state("d-1", "running");
    pid_t kids[2];
    polls_start("d-1", "60s", 2, NULL, false, kids);
    polls_wait_open(2);
    redis_server_kill(&R, SIGKILL);
    cr_assert_eq(saga_proc_stop(&serve_pid), 0, "serve exits 0");
    polls_reap(2, kids);
}

/* ---------------------------------------------------------------------- */
/* Requests in flight when Redis stops answering                           */
/* ---------------------------------------------------------------------- */

/* Waits until process `pid` is stopped (state T in /proc/PID/stat). */
static void wait_process_stopped(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    test_poll_t p = test_poll_start(10000);
    for (;;) {
        char buf[512], state = 0;
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        if (fgets(buf, sizeof(buf), f) != NULL) {
            char *e = strrchr(buf, ')');
            state = e != NULL && e[1] == ' ' ? e[2] : 0;
        }
        fclose(f);
        if (state == 'T')
            return;
        cr_assert(test_poll_next(&p), "process %d not stopped (state %c)", (int)pid, state);
    }
}

/* One connection to serve with one whole request written on it; *port
 * gets the connection's local port. */
static int raw_request(const char *method, const char *path, const char *body, int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(api + strlen("http://127.0.0.1:")))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect %s: %s", api,
                 strerror(errno));
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, strlen(body), body);
    cr_assert_eq(write(fd, req, (size_t)n), n, "write: %s", strerror(errno));
    struct sockaddr_in l;
    socklen_t ll = sizeof(l);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&l, &ll), 0);
    *port = ntohs(l.sin_port);
    return fd;
}

/* True when serve has read everything sent on the connection from local
 * port `port`: in /proc/net/tcp (ports in hex), the client's side has
 * nothing unacknowledged (the bytes reached serve's socket) and serve's
 * side has nothing unread. */
static bool request_read(int port) {
    int sport = atoi(api + strlen("http://127.0.0.1:"));
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert_not_null(f);
    char line[512];
    bool client_sent = false, server_read = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned laddr, lport, raddr, rport, st;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %x:%x %x:%x %x %lx:%lx", &laddr, &lport, &raddr, &rport, &st,
                   &tx, &rx) != 7)
            continue; /* the header */
        if ((int)lport == port && (int)rport == sport)
            client_sent = tx == 0;
        else if ((int)lport == sport && (int)rport == port)
            server_read = rx == 0;
    }
    fclose(f);
    return client_sent && server_read;
}

/* Reads the whole answer on `fd` (serve closes the connection after it,
 * since it is stopping) by the deadline of `p`. */
static char *raw_answer(int fd, test_poll_t *p, const char *what) {
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long left = test_poll_left(p);
        cr_assert_gt(left, 0, "%s: no answer from serve after SIGTERM; got so far: %.*s", what,
                     (int)len, buf);
        int pr = poll(&pfd, 1, (int)left);
        cr_assert_geq(pr, 0);
        if (pr == 0)
            continue;
        if (len + 1 == cap)
            cr_assert_not_null(buf = realloc(buf, cap *= 2));
        ssize_t n = read(fd, buf + len, cap - len - 1);
        cr_assert_geq(n, 0, "%s: %s", what, strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* Redis stops answering (SIGSTOP: its connections stay open, so requests
 * really wait) while ordinary requests wait on the store: a read, a
 * history, a submit, a cancel, and a long-poll that SIGTERM answers by
 * reading its state. SIGTERM answers every one 503 store_unavailable and
 * serve exits 0, instead of waiting for Redis forever. */
Test(serve, sigterm_with_redis_stopped_answers_requests_in_flight_and_exits) {
    start_serve(NULL);
    wait_served();
    resp_t r;
    do_call("POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"f-1\"}", &r);
    expect(&r, 201, NULL);
    resp_free(&r);
    wait_state("f-1", "running");

    redis_server_kill(&R, SIGSTOP);
    wait_process_stopped(R.pid);
    static const struct {
        const char *method, *path, *body;
    } rq[] = {
        {"GET", "/v1/sagas/f-1", ""},
        {"GET", "/v1/sagas/f-1/history", ""},
        {"POST", "/v1/sagas", "{\"saga\":\"long\",\"id\":\"f-2\"}"},
        {"POST", "/v1/sagas/f-1/cancel", ""},
        {"GET", "/v1/sagas/f-1?wait=60s", ""},
    };
    enum { N = sizeof(rq) / sizeof(rq[0]) };
    int fds[N], ports[N];
    for (int i = 0; i < N; i++)
        fds[i] = raw_request(rq[i].method, rq[i].path, rq[i].body, &ports[i]);
    /* each request is in serve's hands, waiting on Redis */
    test_poll_t p = test_poll_start(10000);
    for (int i = 0; i < N; i++)
        while (!request_read(ports[i]))
            cr_assert(test_poll_next(&p), "serve did not read %s %s", rq[i].method,
                      rq[i].path);

    cr_assert_eq(kill(serve_pid, SIGTERM), 0);
    /* the grace is 10 s: a generous bound, so that a hang fails here */
    p = test_poll_start(40000);
    for (int i = 0; i < N; i++) {
        char what[200];
        snprintf(what, sizeof(what), "%s %s", rq[i].method, rq[i].path);
        char *ans = raw_answer(fds[i], &p, what);
        close(fds[i]);
        cr_expect(strncmp(ans, "HTTP/1.1 503 ", 13) == 0 &&
                      strstr(ans, "\"store_unavailable\"") != NULL,
                  "%s: want 503 store_unavailable, got: %s", what, ans);
        free(ans);
    }
    int st = 0;
    pid_t w;
    while ((w = waitpid(serve_pid, &st, WNOHANG)) == 0)
        cr_assert(test_poll_next(&p), "serve did not exit after SIGTERM");
    cr_assert_eq(w, serve_pid);
    serve_pid = 0;
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve exits 0 (status %d)", st);
    /* and it closed each connection after its answer */
    char *log = saga_proc_slurp(serve_err);
    cr_expect(strstr(log, "still open") == NULL, "serve's log: %s", log);
    free(log);
    redis_server_kill(&R, SIGCONT);
}
