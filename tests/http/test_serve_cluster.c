/*
 * test_serve_cluster.c -- `saga serve` on a Redis Cluster, end to end: a
 * real loopback cluster (tests/support/redis_cluster.c: 3 primaries, 3
 * replicas), a real `saga worker` and a real `saga serve` (this build's
 * binary) given a node's URL, libcurl as the client. Submit, status,
 * history, list, cancel, retry, /metrics, /readyz, and long-polls answered
 * by the settlement's push (PUBLISH on a cluster reaches every node),
 * also after kill -9 of the node serve's subscriber is connected to.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include "http_client.h"
#include "redis_cluster.h"
#include "saga_proc.h"
#include "test_poll.h"

static redis_cluster_t C;
static int seed;            /* the node (a primary) whose URL serve and the worker get */
static char dir[512];
static char api[300];       /* http://127.0.0.1:PORT */
static pid_t worker_pid, serve_pid;
static char serve_out[600], serve_err[600], worker_log[600];

typedef http_resp_t resp_t;

static void write_defs(void) {
    char path[700];
    snprintf(path, sizeof(path), "%s/defs", dir);
    mkdir(path, 0700);
    /* brief: 3 s, to cancel while it runs and to long-poll */
    snprintf(path, sizeof(path), "%s/defs/brief.yaml", dir);
    saga_proc_write_file(path, "saga: brief\n"
                               "steps:\n"
                               "  - name: wait\n"
                               "    action: {handler: demo.sleep, with: {ms: 3000}}\n"
                               "    compensation: {handler: demo.noop}\n");
    snprintf(path, sizeof(path), "%s/defs/quick.yaml", dir);
    saga_proc_write_file(path, "saga: quick\n"
                               "steps:\n"
                               "  - name: one\n"
                               "    action: {handler: demo.echo}\n"
                               "    compensation: {handler: demo.noop}\n");
    snprintf(path, sizeof(path), "%s/defs/stuck.yaml", dir);
    saga_proc_write_file(path, "saga: stuck\n"
                               "recovery: forward\n"
                               "steps:\n"
                               "  - name: boom\n"
                               "    action: {handler: demo.fail, with: {message: no luck}}\n");
}

static void setup(void) {
    cr_assert_eq(redis_cluster_start(&C, NULL), 0, "the loopback cluster did not start");
    int prim[REDIS_CLUSTER_NODES];
    cr_assert_gt(redis_cluster_primaries(&C, prim), 0);
    seed = prim[0];
    snprintf(dir, sizeof(dir), "%s/work", C.node[0].srv.dir);
    mkdir(dir, 0700);
    write_defs();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char defs[700];
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    snprintf(worker_log, sizeof(worker_log), "%s/worker.log", dir);
    /* --min-replicas 0: the kill -9 below leaves a primary without a
     * replica, and this test is about settlements, not durability */
    const char *wargs[] = {"worker", "--redis", C.node[seed].url, "--defs", defs,
                           "--name", "w1", "--lease", "2s", "--grace", "1s",
                           "--min-replicas", "0", NULL};
    saga_proc_io_t wio = {.out = worker_log, .err = worker_log};
    worker_pid = saga_proc_spawn(wargs, &wio);

    snprintf(serve_out, sizeof(serve_out), "%s/serve.out", dir);
    snprintf(serve_err, sizeof(serve_err), "%s/serve.err", dir);
    const char *sargs[] = {"serve", "--redis", C.node[seed].url, "--listen", "127.0.0.1:0",
                           NULL};
    saga_proc_io_t sio = {.out = serve_out, .err = serve_err};
    serve_pid = saga_proc_spawn(sargs, &sio);
    saga_proc_first_line(serve_out, serve_err, api, sizeof(api), 20000);
    cr_assert(strncmp(api, "http://127.0.0.1:", 17) == 0, "address %s", api);
}

static void teardown(void) {
    int s = saga_proc_stop(&serve_pid);
    saga_proc_stop(&worker_pid);
    saga_proc_assert_clean(serve_err);
    saga_proc_assert_clean(worker_log);
    cr_expect_eq(s, 0, "serve exits 0 on SIGTERM");
    redis_cluster_stop(&C);
    curl_global_cleanup();
}

TestSuite(serve_cluster, .init = setup, .fini = teardown, .timeout = 300);

static const char *jstr(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static void do_call(const char *method, const char *path, const char *body, resp_t *r) {
    cr_assert_eq(http_call(api, method, path, body, NULL, 70000L, r), CURLE_OK, "%s %s",
                 method, path);
}

static void expect(resp_t *r, long status, const char *code) {
    cr_assert_eq(r->status, status, "status %ld (want %ld): %s", r->status, status,
                 r->body ? r->body : "");
    if (code != NULL) {
        cr_assert_not_null(r->json, "not JSON: %s", r->body ? r->body : "");
        cr_assert_str_eq(jstr(json_object_get(r->json, "error"), "code"), code, "%s", r->body);
    }
}

static void submit(const char *saga, const char *id) {
    char body[200];
    snprintf(body, sizeof(body), "{\"saga\":\"%s\",\"id\":\"%s\"}", saga, id);
    resp_t r;
    do_call("POST", "/v1/sagas", body, &r);
    expect(&r, 201, NULL);
    http_resp_free(&r);
}

/* Polls `path` until its body holds `want` (20 s at most). */
static void wait_body(const char *path, const char *want) {
    test_poll_t p = test_poll_start(20000);
    for (;;) {
        resp_t r;
        do_call("GET", path, NULL, &r);
        bool ok = r.body != NULL && strstr(r.body, want) != NULL;
        char last[300];
        snprintf(last, sizeof(last), "%ld %s", r.status, r.body ? r.body : "");
        http_resp_free(&r);
        if (ok)
            return;
        if (!test_poll_next(&p))
            cr_assert_fail("%s never held %s; last: %.250s", path, want, last);
    }
}

static void wait_state(const char *id, const char *state) {
    char path[200], want[100];
    snprintf(path, sizeof(path), "/v1/sagas/%s", id);
    snprintf(want, sizeof(want), "\"state\":\"%s\"", state);
    wait_body(path, want);
}

/* Serve's settlements subscription is live (so a push can answer). */
static void wait_subscribed(void) {
    wait_body("/metrics", "saga_http_settled_subscribed 1\n");
}

/* Submits `saga` as `id` once a live worker serves it again (after a
 * failover its heartbeat may have lapsed for a moment). */
static void submit_when_served(const char *saga, const char *id) {
    char body[200];
    snprintf(body, sizeof(body), "{\"saga\":\"%s\",\"id\":\"%s\"}", saga, id);
    test_poll_t p = test_poll_start(30000);
    for (;;) {
        resp_t r;
        do_call("POST", "/v1/sagas", body, &r);
        long st = r.status;
        char last[300];
        snprintf(last, sizeof(last), "%ld %s", r.status, r.body ? r.body : "");
        http_resp_free(&r);
        if (st == 201)
            return;
        if (!test_poll_next(&p))
            cr_assert_fail("submit of %s never accepted; last: %.250s", id, last);
    }
}

/* A long-poll of `id` with a 60 s wait, answered with `state` well before
 * its wait: by the settlement's push, not at its deadline. */
static void long_poll(const char *id, const char *state) {
    char path[200];
    snprintf(path, sizeof(path), "/v1/sagas/%s?wait=60s", id);
    resp_t r;
    do_call("GET", path, NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(r.json, "state"), state, "%s", r.body);
    cr_assert_lt(r.secs, 40.0, "answered after %.1f s: at its deadline, not by a push", r.secs);
    http_resp_free(&r);
}

/* The node serve's subscriber is connected to (CLIENT LIST of every live
 * node names the client "saga-settled"), or -1. */
static int subscriber_node(void) {
    for (int i = 0; i < C.nnodes; i++) {
        if (C.node[i].srv.pid == 0)
            continue;
        redisContext *c = redis_cluster_connect(&C, i);
        if (c == NULL)
            continue;
        redisReply *r = redisCommand(c, "CLIENT LIST");
        bool here = r != NULL && r->type == REDIS_REPLY_STRING &&
                    strstr(r->str, "name=saga-settled ") != NULL;
        if (r != NULL)
            freeReplyObject(r);
        redisFree(c);
        if (here)
            return i;
    }
    return -1;
}

Test(serve_cluster, submit_status_list_long_poll_cancel_retry_metrics) {
    wait_body("/v1/definitions/brief", "\"saga\"");
    wait_subscribed();
    resp_t r;

    /* a long-poll answered by the push when the 3 s saga settles */
    submit("brief", "c-1");
    long_poll("c-1", "completed");
    do_call("GET", "/v1/sagas/c-1/history", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "transitions"), 0), "type"),
                     "saga.created");
    http_resp_free(&r);

    /* sagas on every shard of the split index, listed once each */
    for (int k = 0; k < 6; k++) {
        char id[32];
        snprintf(id, sizeof(id), "q-%d", k);
        submit("quick", id);
    }
    for (int k = 0; k < 6; k++) {
        char id[32];
        snprintf(id, sizeof(id), "q-%d", k);
        wait_state(id, "completed");
    }
    do_call("GET", "/v1/sagas?saga=quick&limit=50", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "sagas")), 6, "%s", r.body);
    http_resp_free(&r);

    /* cancel while it runs: compensated, the long-poll answered by it */
    submit("brief", "c-2");
    wait_state("c-2", "running");
    do_call("POST", "/v1/sagas/c-2/cancel", NULL, &r);
    expect(&r, 202, NULL);
    http_resp_free(&r);
    long_poll("c-2", "compensated");

    /* a stuck saga settles too; a retry is accepted once it is parked */
    submit("stuck", "c-3");
    long_poll("c-3", "stuck");
    test_poll_t pr = test_poll_start(10000);
    for (;;) {
        do_call("POST", "/v1/sagas/c-3/retry", NULL, &r);
        if (r.status != 409 || strstr(r.body, "try again") == NULL)
            break;
        http_resp_free(&r);
        cr_assert(test_poll_next(&pr), "the stuck saga was never parked for good");
    }
    expect(&r, 202, NULL);
    http_resp_free(&r);
    /* stuck again (after its retry): a second settlement, a second push */
    wait_body("/v1/sagas/c-3/history", "saga.retried");
    long_poll("c-3", "stuck");

    do_call("GET", "/readyz", NULL, &r);
    expect(&r, 200, NULL);
    http_resp_free(&r);
    do_call("GET", "/metrics", NULL, &r);
    expect(&r, 200, NULL);
    cr_assert(strstr(r.body, "saga_store_up 1\n") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "saga_workers_live 1\n") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "saga_http_settled_subscribed 1\n") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "saga_http_long_polls 0\n") != NULL, "%s", r.body);
    http_resp_free(&r);
    /* serve no longer says a long-poll answers only at its deadline */
    char *err = saga_proc_slurp(serve_err);
    cr_assert(strstr(err, "pushes no settlements") == NULL, "%s", err);
    free(err);
}

/* kill -9 of the node the subscriber is on: it moves to another node of
 * the cluster, subscribes there, and long-polls are answered by pushes
 * again (and /readyz turns ready once the replica took over). */
Test(serve_cluster, long_poll_answered_after_the_subscribers_node_is_killed) {
    wait_body("/v1/definitions/brief", "\"saga\"");
    wait_subscribed();
    int node = subscriber_node();
    cr_assert_geq(node, 0, "no node has serve's subscriber");
    int prim[REDIS_CLUSTER_NODES];
    int np = redis_cluster_primaries(&C, prim);
    bool primary = false;
    for (int k = 0; k < np; k++)
        primary = primary || prim[k] == node;
    if (primary) {
        cr_assert_geq(redis_cluster_kill_primary(&C, node, 30000), 0,
                      "no replica took over from node %d", node);
    } else {
        redis_server_kill(&C.node[node].srv, SIGKILL);
    }
    /* the subscriber is on another node now */
    test_poll_t p = test_poll_start(20000);
    int now;
    while ((now = subscriber_node()) < 0 || now == node)
        cr_assert(test_poll_next(&p), "the subscriber never moved off node %d", node);
    wait_subscribed();
    wait_body("/readyz", "ready");
    submit_when_served("brief", "k-1");
    long_poll("k-1", "completed");
}
