/*
 * test_relay_metrics.c -- `saga relay --metrics` end to end
 * (docs/outbox.md, "Metrics"): a real PostgreSQL with the outbox, a real
 * Redis and `saga worker`, this build's `saga relay` serving /metrics and
 * /healthz on the port it chose (the first line it prints), libcurl as the
 * client. The counters must say what the relay did, the delay histogram
 * must have counted every delivered row from its created_at, the backlog
 * gauges must show rows the relay cannot take (locked by another holder,
 * or while Redis is away), and `promtool check metrics` must accept the
 * text. promtool (Debian package `prometheus`, scripts/deps.sh) is
 * required: without it the test fails.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "http_client.h"
#include "prom_text.h"
#include "relay_env.h"
#include "saga_proc.h"
#include "test_poll.h"

#define DELIVERED "SELECT count(*) FROM saga_outbox WHERE delivered_at IS NOT NULL"
#define ERRORED "SELECT count(*) FROM saga_outbox WHERE error IS NOT NULL"
#define READ_TOKEN "relay-metrics-read-token-0123456789"

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    env_setup(NULL, NULL);
}

static void teardown(void) {
    env_teardown();
    curl_global_cleanup();
}

TestSuite(relay_metrics, .init = setup, .fini = teardown, .timeout = 300);

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

static char addr[300]; /* http://127.0.0.1:PORT of the relay's metrics */

/* Starts a relay with --metrics 127.0.0.1:0 and `extra`; returns once it
 * printed its address. */
static pid_t start_relay(const char *const *extra) {
    const char *args[16] = {"--metrics", "127.0.0.1:0", "--poll", "100ms", "--batch", "5"};
    int n = 6;
    for (; extra != NULL && *extra != NULL; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    pid_t pid = env_relay_out("relay.log", "relay.out", args);
    char out[700], log[700];
    snprintf(out, sizeof(out), "%s/relay.out", env_dir);
    snprintf(log, sizeof(log), "%s/relay.log", env_dir);
    saga_proc_first_line(out, log, addr, sizeof(addr), 15000);
    cr_assert(strncmp(addr, "http://127.0.0.1:", 17) == 0, "address %s", addr);
    return pid;
}

static void get(const char *path, const char *token, http_resp_t *out) {
    prom_get(addr, path, token, out);
}

static double sample(const char *text, const char *series) { return prom_sample(text, series); }

/* Series and the value each must have in a text. */
typedef struct want_s {
    const char *series;
    double value;
} want_t;

static void assert_samples(const char *text, const want_t *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sample(text, w[i].series), w[i].value, "%s is %g, not %g:\n%s",
                     w[i].series, sample(text, w[i].series), w[i].value, text);
}

#define ASSERT_SAMPLES(text, ...)                                                          \
    do {                                                                                   \
        const want_t w_[] = {__VA_ARGS__};                                                 \
        assert_samples(text, w_, sizeof(w_) / sizeof(w_[0]));                              \
    } while (0)

/* Polls /metrics until `series` is within [lo, hi]; returns the text
 * (caller frees). */
static char *wait_sample(const char *series, double lo, double hi) {
    test_poll_t p = test_poll_start(30000);
    for (;;) {
        http_resp_t r;
        get("/metrics", NULL, &r);
        double v = r.status == 200 ? sample(r.body, series) : -1;
        if (v >= lo && v <= hi) {
            json_decref(r.json); /* the text is the caller's */
            return r.body;
        }
        if (!test_poll_next(&p)) {
            char path[700];
            snprintf(path, sizeof(path), "%s/relay.log", env_dir);
            char *log = saga_proc_slurp(path);
            cr_assert_fail("%s is %g, not in [%g, %g], after 30 s; /metrics (%ld):\n%s\nlog:\n%s",
                           series, v, lo, hi, r.status, r.body, log);
        }
        http_resp_free(&r);
    }
}

static void promtool_check(const char *text) { prom_check(env_dir, "the relay", text); }

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */
/* ---------------------------------------------------------------------- */

/* Four rows inserted 90 s "ago" are held (FOR UPDATE) by another
 * transaction, as another relay's batch would hold them: the relay skips
 * them, and its backlog gauges show them. Good and refused rows are
 * delivered meanwhile and counted; once the holder lets go, the held rows
 * are delivered too and the histogram has them beyond a minute. */
Test(relay_metrics, counts_rows_delays_and_backlog_and_passes_promtool) {
    PGconn *holder = env_db();
    env_exec(holder, "INSERT INTO saga_outbox (id, saga, input, created_at) SELECT "
                     "'held-' || i, 'noop', jsonb_build_object('n', i), "
                     "now() - interval '90 seconds' FROM generate_series(1, 4) AS i");
    env_exec(holder, "BEGIN");
    cr_assert_eq(env_long(holder, "SELECT count(*) FROM (SELECT id FROM saga_outbox WHERE "
                                  "id LIKE 'held-%' FOR UPDATE) AS h"), 4);
    start_relay(NULL);

    http_resp_t r;
    get("/healthz", NULL, &r);
    cr_assert_eq(r.status, 200, "/healthz: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(wait_sample("saga_relay_postgres_up", 1, 1));
    char *t = wait_sample("saga_relay_backlog_rows", 4, 4);
    cr_assert_geq(sample(t, "saga_relay_backlog_oldest_seconds"), 90, "%s", t);
    cr_assert_lt(sample(t, "saga_relay_backlog_oldest_seconds"), 400, "%s", t);
    free(t);

    PGconn *c = env_db();
    env_insert_noop(c, "good", 0, 7);
    env_exec(c, "INSERT INTO saga_outbox (id, saga, input) VALUES "
                "('unknown-saga', 'nosuchsaga', '{\"n\": 1}'),"
                "('array-input', 'noop', '[1, 2]'),"
                "('missing-key', 'noop', '{\"m\": 1}')");
    env_wait_count(c, DELIVERED, 7, 30000, "good rows delivered");
    env_wait_count(c, ERRORED, 3, 30000, "bad rows refused");
    t = wait_sample("saga_relay_rows_delivered_total", 7, 7);
    cr_assert_geq(sample(t, "saga_relay_batches_total"), 2, "10 rows, batches of 5: %s", t);
    ASSERT_SAMPLES(t, {"saga_relay_sagas_started_total", 7},
                   {"saga_relay_rows_refused_total", 3},
                   {"saga_relay_delivery_delay_seconds_count", 7},
                   {"saga_relay_delivery_delay_seconds_bucket{le=\"60\"}", 7},
                   {"saga_relay_batches_failed_total{cause=\"postgres\"}", 0},
                   {"saga_relay_batches_failed_total{cause=\"redis\"}", 0},
                   {"saga_relay_batches_failed_total{cause=\"internal\"}", 0});
    promtool_check(t);
    free(t);
    /* the held rows are still the backlog */
    t = wait_sample("saga_relay_backlog_rows", 4, 4);
    free(t);

    env_exec(holder, "ROLLBACK"); /* the lock goes; the rows stay */
    env_wait_count(c, DELIVERED, 11, 30000, "held rows delivered");
    t = wait_sample("saga_relay_rows_delivered_total", 11, 11);
    /* the held rows waited 90 s: beyond the 60 s bucket */
    ASSERT_SAMPLES(t, {"saga_relay_delivery_delay_seconds_count", 11},
                   {"saga_relay_delivery_delay_seconds_bucket{le=\"60\"}", 7},
                   {"saga_relay_delivery_delay_seconds_bucket{le=\"+Inf\"}", 11});
    cr_assert_geq(sample(t, "saga_relay_delivery_delay_seconds_sum"), 4 * 90, "%s", t);
    free(t);
    t = wait_sample("saga_relay_backlog_rows", 0, 0);
    cr_assert_eq(sample(t, "saga_relay_backlog_oldest_seconds"), 0, "%s", t);
    promtool_check(t);
    free(t);
    json_decref(env_wait_completed(11, 60000));
    PQfinish(c);
    PQfinish(holder);
    env_finish();
}

/* Redis away: the batches are cut short (cause redis), the rows stay
 * pending and the backlog shows them; once Redis is back they are
 * delivered and the backlog is empty again. */
Test(relay_metrics, redis_away_counts_failed_batches_and_the_backlog) {
    start_relay(NULL);
    PGconn *c = env_db();
    env_insert_noop(c, "before", 0, 2);
    env_wait_count(c, DELIVERED, 2, 30000, "rows delivered");
    redis_server_kill(&R, SIGKILL);
    env_insert_noop(c, "during", 0, 12);
    char *t = wait_sample("saga_relay_batches_failed_total{cause=\"redis\"}", 1, 1e9);
    free(t);
    t = wait_sample("saga_relay_backlog_rows", 12, 12);
    cr_assert_gt(sample(t, "saga_relay_backlog_oldest_seconds"), 0, "%s", t);
    ASSERT_SAMPLES(t, {"saga_relay_rows_delivered_total", 2}, {"saga_relay_rows_refused_total", 0},
                   {"saga_relay_postgres_up", 1});
    promtool_check(t);
    free(t);
    cr_assert_eq(redis_server_restart(&R), 0);
    env_wait_count(c, DELIVERED, 14, 60000, "rows delivered after Redis came back");
    t = wait_sample("saga_relay_rows_delivered_total", 14, 14);
    cr_assert_eq(sample(t, "saga_relay_delivery_delay_seconds_count"), 14, "%s", t);
    free(t);
    free(wait_sample("saga_relay_backlog_rows", 0, 0));
    PQfinish(c);
    env_finish();
}

Test(relay_metrics, bad_metrics_flags_are_usage_errors) {
    static const char *const cases[][4] = {
        {"--metrics", "not-an-address", NULL,
         "relay: --metrics 'not-an-address': expected HOST:PORT"},
        {"--metrics", "0.0.0.0:0", NULL, "without --metrics-token-file"},
        {"--metrics-token-file", "/nonexistent/tokens", NULL,
         "--metrics-token-file needs --metrics"},
    };
    char out[700];
    snprintf(out, sizeof(out), "%s/usage.out", env_dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[] = {"relay", "--postgres", P.conninfo, "--redis", R.url,
                              cases[i][0], cases[i][1], NULL};
        saga_proc_io_t io = {.out = out, .err = out};
        int st = saga_proc_run(args, &io);
        char *text = saga_proc_slurp(out);
        cr_assert_eq(st, 2, "%s %s: exit 2 (usage), got %d: %s", cases[i][0], cases[i][1], st,
                     text);
        cr_assert_not_null(strstr(text, cases[i][3]), "%s %s: the error says '%s': %s",
                           cases[i][0], cases[i][1], cases[i][3], text);
        free(text);
        saga_proc_assert_clean(out); /* no sanitizer report on the way out */
    }
}

Test(relay_metrics, a_token_file_guards_metrics_but_not_healthz) {
    char tokens[700];
    snprintf(tokens, sizeof(tokens), "%s/tokens", env_dir);
    saga_proc_write_file(tokens, READ_TOKEN " read\n");
    const char *extra[] = {"--metrics-token-file", tokens, NULL};
    start_relay(extra);
    prom_assert_guarded(addr);
    http_resp_t r;
    test_poll_t p = test_poll_start(30000);
    for (;;) { /* 503 until the relay runs (Redis reached), then 200 */
        get("/metrics", READ_TOKEN, &r);
        if (r.status == 200)
            break;
        cr_assert_eq(r.status, 503, "a read token: %ld %s", r.status, r.body);
        http_resp_free(&r);
        cr_assert(test_poll_next(&p), "/metrics still 503 after 30 s");
    }
    cr_assert_not_null(strstr(r.body, "# TYPE saga_relay_backlog_rows gauge"), "%s", r.body);
    http_resp_free(&r);
    env_finish();
}

/* Redis paused (SIGSTOP) while the relay starts: its store is not ready,
 * so there is no relay yet: /healthz is 200, /metrics 503 `starting`;
 * once Redis runs again the relay starts and /metrics answers. */
Test(relay_metrics, metrics_answer_503_until_the_relay_runs) {
    cr_assert_eq(kill(R.pid, SIGSTOP), 0);
    start_relay(NULL);
    http_resp_t r;
    get("/healthz", NULL, &r);
    cr_assert_eq(r.status, 200, "/healthz: %ld %s", r.status, r.body);
    http_resp_free(&r);
    get("/metrics", NULL, &r);
    cr_assert_eq(r.status, 503, "/metrics before the relay runs: %ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "starting"), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(kill(R.pid, SIGCONT), 0);
    free(wait_sample("saga_relay_postgres_up", 1, 1));
    env_finish();
}
