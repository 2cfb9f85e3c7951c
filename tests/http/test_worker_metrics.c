/*
 * test_worker_metrics.c -- `saga worker --metrics` end to end: a real
 * redis-server, this build's `saga worker` serving /metrics and /healthz on
 * the port it chose (the first line it prints), sagas submitted with `saga
 * submit`, libcurl as the client. The counters must say what happened
 * (started, finished by state, attempts by outcome, durations, checkpoint
 * writes, Redis reconnects), and `promtool check metrics` must accept the
 * worker's /metrics and `saga serve`'s. promtool (Debian package
 * `prometheus`, scripts/deps.sh) is required: without it the test fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "http_client.h"
#include "prom_text.h"
#include "redis_server.h"
#include "saga_proc.h"
#include "test_poll.h"

#define READ_TOKEN "metrics-read-token-0123456789"

static redis_server_t R;
static char dir[512];
/* A worker process and where its metrics are. */
typedef struct wk_s {
    pid_t pid;
    char name[16];
    char out[600], err[600];
    char addr[300];        /* http://127.0.0.1:PORT of its metrics */
} wk_t;

static wk_t W[2];          /* w1 (every test), w2 (takeover) */
static pid_t serve_pid;

static void write_defs(void) {
    char path[700];
    snprintf(path, sizeof(path), "%s/defs", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/defs/quick.yaml", dir);
    saga_proc_write_file(path, "saga: quick\n"
                     "steps:\n"
                     "  - name: one\n"
                     "    action: {handler: demo.noop}\n"
                     "    compensation: {handler: demo.noop}\n");
    /* Business failure of `two`: `one` is compensated. */
    snprintf(path, sizeof(path), "%s/defs/refused.yaml", dir);
    saga_proc_write_file(path, "saga: refused\n"
                     "steps:\n"
                     "  - name: one\n"
                     "    action: {handler: demo.noop}\n"
                     "    compensation: {handler: demo.noop}\n"
                     "  - name: two\n"
                     "    action: {handler: demo.fail, with: {message: no}}\n"
                     "    compensation: {handler: demo.noop}\n");
    /* A step that times out, once: compensated. */
    snprintf(path, sizeof(path), "%s/defs/late.yaml", dir);
    saga_proc_write_file(path, "saga: late\n"
                     "steps:\n"
                     "  - name: nap\n"
                     "    action: {handler: demo.sleep, with: {ms: 5000}}\n"
                     "    compensation: {handler: demo.noop}\n"
                     "    timeout: 100ms\n"
                     "    retry: {max_attempts: 1}\n");
    /* Long enough for a takeover while its attempt is in flight. */
    snprintf(path, sizeof(path), "%s/defs/long.yaml", dir);
    saga_proc_write_file(path, "saga: long\n"
                     "steps:\n"
                     "  - name: nap\n"
                     "    action: {handler: demo.sleep, with: {ms: 3000}}\n"
                     "    compensation: {handler: demo.noop}\n"
                     "    timeout: 30s\n");
    /* Forward recovery that cannot go forward: stuck. */
    snprintf(path, sizeof(path), "%s/defs/stuck.yaml", dir);
    saga_proc_write_file(path, "saga: stuck\n"
                     "recovery: forward\n"
                     "steps:\n"
                     "  - name: boom\n"
                     "    action: {handler: demo.fail, with: {message: no luck}}\n");
}

/* Starts worker `name` with --metrics 127.0.0.1:0 and `extra` arguments;
 * returns once it serves. */
static void start_worker_as(wk_t *k, const char *name, const char *const *extra) {
    char defs[700];
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    snprintf(k->name, sizeof(k->name), "%s", name);
    snprintf(k->out, sizeof(k->out), "%s/%s.out", dir, name);
    snprintf(k->err, sizeof(k->err), "%s/%s.err", dir, name);
    const char *args[24] = {"worker", "--redis", R.url, "--defs", defs, "--name", name,
                            "--lease", "2s", "--grace", "1s", "--metrics", "127.0.0.1:0"};
    int n = 13;
    for (; extra != NULL && *extra != NULL; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    saga_proc_io_t io = {.out = k->out, .err = k->err};
    k->pid = saga_proc_spawn(args, &io);
    saga_proc_first_line(k->out, k->err, k->addr, sizeof(k->addr), 10000);
    cr_assert(strncmp(k->addr, "http://127.0.0.1:", 17) == 0 ||
              strncmp(k->addr, "unix:/", 6) == 0, "address %s", k->addr);
    /* Submits find the sagas once the worker has published them. */
    char running[64];
    snprintf(running, sizeof(running), "worker %s: running", name);
    test_poll_t p = test_poll_start(15000);
    for (;;) {
        char *log = saga_proc_slurp(k->err);
        bool ok = strstr(log, running) != NULL;
        if (ok) {
            free(log);
            return;
        }
        if (!test_poll_next(&p))
            cr_assert_fail("worker %s is not running after 15 s: %s", name, log);
        free(log);
    }
}

static void start_worker(const char *const *extra) { start_worker_as(&W[0], "w1", extra); }

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    /* AOF on: a restart keeps the published names and the intake. */
    const char *const aof[] = {"--appendonly", "yes", NULL};
    cr_assert_eq(redis_server_start(&R, aof), 0);
    snprintf(dir, sizeof(dir), "%s/work", R.dir);
    mkdir(dir, 0700);
    write_defs();
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void) {
    int s = saga_proc_stop(&serve_pid);
    for (int i = 0; i < 2; i++) {
        if (W[i].pid > 0)
            kill(W[i].pid, SIGCONT); /* a test may have stopped it */
        int w = saga_proc_stop(&W[i].pid);
        saga_proc_assert_clean(W[i].err);
        cr_expect_eq(w, 0, "worker %s exits 0 on SIGTERM", W[i].name);
    }
    cr_expect_eq(s, 0, "serve exits 0 on SIGTERM");
    redis_server_stop(&R);
    curl_global_cleanup();
}

TestSuite(worker_metrics, .init = setup, .fini = teardown, .timeout = 120);

/* ---------------------------------------------------------------------- */
/* The client                                                              */
/* ---------------------------------------------------------------------- */

typedef http_resp_t resp_t;

static void get(const char *base, const char *path, const char *token, resp_t *out) {
    prom_get(base, path, token, out);
}

static double sample(const char *text, const char *series) { return prom_sample(text, series); }

/* Polls worker k's /metrics until `series` reaches `want`; returns the
 * last text (caller frees). */
static char *wait_sample_of(const wk_t *k, const char *series, double want) {
    test_poll_t p = test_poll_start(20000);
    for (;;) {
        resp_t r;
        get(k->addr, "/metrics", NULL, &r);
        if (r.status == 200 && sample(r.body, series) >= want) {
            json_decref(r.json); /* the text is the caller's */
            return r.body;
        }
        if (!test_poll_next(&p)) {
            char *err = saga_proc_slurp(k->err);
            cr_assert_fail("%s: %s did not reach %g within 20 s; metrics:\n%s\nlog:\n%s",
                           k->name, series, want, r.body, err);
        }
        http_resp_free(&r);
    }
}

static char *wait_sample(const char *series, double want) {
    return wait_sample_of(&W[0], series, want);
}

static void submit(const char *saga) {
    char out[700];
    snprintf(out, sizeof(out), "%s/submit.out", dir);
    const char *args[] = {"submit", saga, "--redis", R.url, NULL};
    saga_proc_io_t io = {.out = out, .err = out};
    int st = saga_proc_run(args, &io);
    char *text = saga_proc_slurp(out);
    cr_assert_eq(st, 0, "saga submit %s: exit %d: %s", saga, st, text);
    free(text);
}

static void promtool_check(const char *what, const char *text) { prom_check(dir, what, text); }

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */
/* ---------------------------------------------------------------------- */

Test(worker_metrics, counts_what_the_worker_did_and_passes_promtool) {
    start_worker(NULL);
    resp_t r;
    get(W[0].addr, "/healthz", NULL, &r);
    cr_assert_eq(r.status, 200, "/healthz: %ld %s", r.status, r.body);
    http_resp_free(&r);

    submit("quick");
    submit("quick");
    submit("refused");
    submit("late");
    submit("stuck");
    char *t = wait_sample("saga_worker_sagas_finished_total{saga=\"quick\",state=\"completed\"}",
                          2);
    free(t);
    t = wait_sample("saga_worker_sagas_finished_total{saga=\"refused\",state=\"compensated\"}", 1);
    free(t);
    t = wait_sample("saga_worker_sagas_finished_total{saga=\"late\",state=\"compensated\"}", 1);
    free(t);
    t = wait_sample("saga_worker_sagas_finished_total{saga=\"stuck\",state=\"stuck\"}", 1);

    cr_assert_eq(sample(t, "saga_worker_sagas_started_total{saga=\"quick\"}"), 2, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_sagas_started_total{saga=\"late\"}"), 1, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_step_attempts_total{saga=\"quick\",step=\"one\","
                           "phase=\"action\",outcome=\"ok\"}"), 2, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_step_attempts_total{saga=\"refused\",step=\"two\","
                           "phase=\"action\",outcome=\"business\"}"), 1, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_step_attempts_total{saga=\"refused\",step=\"one\","
                           "phase=\"compensation\",outcome=\"ok\"}"), 1, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_step_attempts_total{saga=\"late\",step=\"nap\","
                           "phase=\"action\",outcome=\"timeout\"}"), 1, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_step_duration_seconds_count{saga=\"quick\","
                           "step=\"one\",phase=\"action\"}"), 2, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_step_duration_seconds_bucket{saga=\"late\","
                           "step=\"nap\",phase=\"action\",le=\"0.05\"}"), 0,
                 "a 100 ms timeout is not under 50 ms: %s", t);
    cr_assert_eq(sample(t, "saga_worker_step_duration_seconds_bucket{saga=\"late\","
                           "step=\"nap\",phase=\"action\",le=\"+Inf\"}"), 1, "%s", t);
    /* Every saga: a creation and at least one more write. */
    cr_assert_geq(sample(t, "saga_worker_checkpoint_write_seconds_count"), 10, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_sagas_in_flight"), 0, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_fenced_writes_total"), 0, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_takeovers_total"), 0, "%s", t);
    cr_assert_eq(sample(t, "saga_worker_redis_reconnects_total"), 0, "%s", t);
    promtool_check("the worker", t);
    free(t);

    /* Redis goes away and comes back: the store's connection is counted. */
    redis_server_kill(&R, SIGTERM);
    cr_assert_eq(redis_server_restart(&R), 0);
    submit("quick"); /* reaches the worker once it is connected again */
    t = wait_sample("saga_worker_redis_reconnects_total", 1);
    free(t);
    t = wait_sample("saga_worker_sagas_finished_total{saga=\"quick\",state=\"completed\"}", 3);
    promtool_check("the worker", t);
    free(t);
}

Test(worker_metrics, serve_metrics_pass_promtool_too) {
    start_worker(NULL);
    char out[700], err[700], api[300];
    snprintf(out, sizeof(out), "%s/serve.out", dir);
    snprintf(err, sizeof(err), "%s/serve.err", dir);
    const char *args[] = {"serve", "--redis", R.url, "--listen", "127.0.0.1:0", NULL};
    saga_proc_io_t io = {.out = out, .err = err};
    serve_pid = saga_proc_spawn(args, &io);
    saga_proc_first_line(out, err, api, sizeof(api), 10000);
    submit("quick");
    char *t = wait_sample("saga_worker_sagas_finished_total{saga=\"quick\",state=\"completed\"}",
                          1);
    free(t);
    resp_t r;
    get(api, "/v1/sagas?limit=5", NULL, &r); /* a request of each kind in its histogram */
    http_resp_free(&r);
    get(api, "/metrics", NULL, &r);
    cr_assert_eq(r.status, 200, "serve /metrics: %ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "saga_http_request_duration_seconds_bucket"), "%s",
                       r.body);
    promtool_check("saga serve", r.body);
    http_resp_free(&r);
    saga_proc_assert_clean(err);
}

Test(worker_metrics, a_token_file_guards_metrics_but_not_healthz) {
    char tokens[700];
    snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
    saga_proc_write_file(tokens, READ_TOKEN " read\n");
    const char *extra[] = {"--metrics-token-file", tokens, NULL};
    start_worker(extra);
    prom_assert_guarded(W[0].addr);
    resp_t r;
    get(W[0].addr, "/metrics", READ_TOKEN, &r);
    cr_assert_eq(r.status, 200, "a read token: %ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "# TYPE saga_worker_sagas_in_flight gauge"), "%s", r.body);
    http_resp_free(&r);
}

Test(worker_metrics, without_a_token_file_only_loopback_is_taken) {
    char defs[700], out[700];
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    snprintf(out, sizeof(out), "%s/refused.out", dir);
    const char *args[] = {"worker", "--redis", R.url, "--defs", defs,
                          "--metrics", "0.0.0.0:0", NULL};
    saga_proc_io_t io = {.out = out, .err = out};
    int st = saga_proc_run(args, &io);
    char *text = saga_proc_slurp(out);
    cr_assert_eq(st, 2, "exit 2 (usage), got %d: %s", st, text);
    cr_assert_not_null(strstr(text, "worker: --metrics '0.0.0.0:0': without "
                                    "--metrics-token-file"),
                       "the error names the flags: %s", text);
    free(text);
    const char *args2[] = {"worker", "--redis", R.url, "--defs", defs,
                           "--metrics", "not-an-address", NULL};
    st = saga_proc_run(args2, &io);
    cr_assert_eq(st, 2, "a malformed address is a usage error: %d", st);
}

/* w1 pauses (SIGSTOP, as a long GC-like pause or a cut-off would) with an
 * attempt in flight; its lease runs out and w2 takes the saga over and
 * finishes it; w1, continued, finds its next write fenced and drops the
 * saga. */
Test(worker_metrics, a_takeover_and_the_fenced_write_of_the_worker_taken_for_dead) {
    start_worker(NULL);
    submit("long");
    free(wait_sample("saga_worker_sagas_started_total{saga=\"long\"}", 1));
    cr_assert_eq(kill(W[0].pid, SIGSTOP), 0);
    start_worker_as(&W[1], "w2", NULL);
    free(wait_sample_of(&W[1], "saga_worker_takeovers_total", 1));
    char *t = wait_sample_of(
        &W[1], "saga_worker_sagas_finished_total{saga=\"long\",state=\"completed\"}", 1);
    cr_assert_eq(sample(t, "saga_worker_sagas_started_total{saga=\"long\"}"), -1,
                 "w2 did not create it: %s", t);
    cr_assert_eq(sample(t, "saga_worker_step_attempts_total{saga=\"long\",step=\"nap\","
                           "phase=\"action\",outcome=\"ok\"}"), 1, "%s", t);
    promtool_check("w2", t);
    free(t);
    cr_assert_eq(kill(W[0].pid, SIGCONT), 0);
    free(wait_sample("saga_worker_fenced_writes_total", 1));
    t = wait_sample("saga_worker_sagas_finished_total{saga=\"long\",state=\"lost\"}", 1);
    cr_assert_eq(sample(t, "saga_worker_sagas_finished_total{saga=\"long\",state=\"completed\"}"),
                 -1, "w1 did not complete it: %s", t);
    cr_assert_eq(sample(t, "saga_worker_takeovers_total"), 0, "%s", t);
    promtool_check("w1", t);
    free(t);
}

Test(worker_metrics, metrics_on_a_unix_socket) {
    char sock[700];
    snprintf(sock, sizeof(sock), "unix:%s/metrics.sock", dir);
    const char *extra[] = {"--metrics", sock, NULL};
    start_worker(extra);
    cr_assert_str_eq(W[0].addr, sock, "the address printed is the socket's");
    submit("quick");
    char *t = wait_sample("saga_worker_sagas_finished_total{saga=\"quick\",state=\"completed\"}",
                          1);
    promtool_check("the worker (unix socket)", t);
    free(t);
}
