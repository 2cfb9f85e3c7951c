/*
 * test_pg_conn.c -- the asynchronous PostgreSQL client (engine/postgres/
 * pg_conn.c) against a real server: results in order, the server's
 * refusals with their SQLSTATE, several statements in one query,
 * notifications (one right behind a query's answer too), a server killed
 * under a query (answered as unavailable, then reconnected), the query
 * timeout, close with queries queued, callbacks never run inside the call
 * that registered them, host names with several addresses and a port per
 * host. Every test ends with the loop closing cleanly.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "postgres/pg_conn.h"
#include "postgres_server.h"
#include "saga/errors.h"

static postgres_server_t P;
static uv_loop_t loop;

typedef struct ctx_s {
    saga_pg_t *pg;
    int ready, lost, failed;
    char last_event[256];
    int answered;
    int status[16];
    char value[16][64];
    char sqlstate[16][8];
    bool in_call;          /* set around saga_pg_query() */
    bool answered_in_call;
    bool multiline;        /* a message with a line break */
    int notified;
    char channel[64], payload[64];
    bool closed;
} ctx_t;

static void setup(void) {
    cr_assert_eq(postgres_server_start(&P), 0);
    cr_assert_eq(uv_loop_init(&loop), 0);
}

static void teardown(void) {
    postgres_server_stop(&P);
}

TestSuite(pg_conn, .init = setup, .fini = teardown, .timeout = 120);

static void on_event(saga_pg_t *pg, saga_pg_event_t ev, const char *errstr, void *data) {
    ctx_t *c = data;
    (void)pg;
    snprintf(c->last_event, sizeof(c->last_event), "%s", errstr ? errstr : "");
    if (errstr != NULL && strpbrk(errstr, "\n\t") != NULL)
        c->multiline = true;
    if (ev == SAGA_PG_READY)
        c->ready++;
    else if (ev == SAGA_PG_LOST)
        c->lost++;
    else
        c->failed++;
}

static void on_notify(saga_pg_t *pg, const char *channel, const char *payload, void *data) {
    ctx_t *c = data;
    (void)pg;
    c->notified++;
    snprintf(c->channel, sizeof(c->channel), "%s", channel);
    snprintf(c->payload, sizeof(c->payload), "%s", payload);
}

static void on_result(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                      void *data) {
    ctx_t *c = data;
    (void)pg;
    if (errstr != NULL && strpbrk(errstr, "\n\t") != NULL)
        c->multiline = true;
    if (c->in_call)
        c->answered_in_call = true;
    int i = c->answered++;
    if (i >= 16)
        return; /* counted; the first 16 are kept for the checks */
    c->status[i] = status;
    c->value[i][0] = c->sqlstate[i][0] = '\0';
    if (res != NULL && status == 0 && PQntuples(res) > 0)
        snprintf(c->value[i], sizeof(c->value[i]), "%s", PQgetvalue(res, 0, 0));
    if (res != NULL && status != 0) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(c->sqlstate[i], sizeof(c->sqlstate[i]), "%s", st ? st : "");
    }
}

static void query(ctx_t *c, const char *sql, int n, const char *const *params) {
    c->in_call = true;
    int rc = saga_pg_query(c->pg, sql, n, params, on_result, c);
    c->in_call = false;
    cr_assert_eq(rc, 0, "saga_pg_query(%s): %d", sql, rc);
}

static void on_deadline(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs the loop until `*counter` reaches `want` (at most `ms`). */
static void run_until(int *counter, int want, long ms, const char *what) {
    uv_timer_t t;
    bool late = false;
    uv_timer_init(&loop, &t);
    t.data = &late;
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    while (*counter < want && !late)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_geq(*counter, want, "%s: %d, not %d, after %ld ms", what, *counter, want, ms);
}

static void on_closed(void *data) { ((ctx_t *)data)->closed = true; }

/* Closes the connection and checks that the loop ends with no handle. */
static void close_and_finish(ctx_t *c) {
    cr_assert_not(c->multiline, "a message with a line break: %s", c->last_event);
    saga_pg_close(c->pg, on_closed, c);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(c->closed);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
}

static void open_ready(ctx_t *c, const saga_pg_options_t *opt) {
    memset(c, 0, sizeof(*c));
    c->pg = saga_pg_new(&loop, P.conninfo, opt, on_event, on_notify, c);
    cr_assert_not_null(c->pg);
    cr_assert_eq(saga_pg_query(c->pg, "SELECT 1", 0, NULL, on_result, c), -ENOTCONN,
                 "no query before READY");
    cr_assert_eq(saga_pg_start(c->pg), 0);
    cr_assert_eq(saga_pg_start(c->pg), -EALREADY);
    cr_assert_eq(c->ready, 0, "no event inside saga_pg_start");
    run_until(&c->ready, 1, 10000, "READY");
}

Test(pg_conn, results_in_order_and_refusals) {
    ctx_t c;
    open_ready(&c, NULL);
    const char *p41[] = {"41"};
    const char *pnull[] = {NULL};
    query(&c, "SELECT 1", 0, NULL);
    query(&c, "SELECT $1::int + 1", 1, p41);
    query(&c, "SELECT nope", 0, NULL);
    query(&c, "SELECT coalesce($1::text, 'was null')", 1, pnull);
    query(&c, "SELECT 1; SELECT 1/0; SELECT 3", 0, NULL);
    query(&c, "BEGIN; SELECT 7; COMMIT", 0, NULL);
    query(&c, "", 0, NULL);
    run_until(&c.answered, 7, 10000, "answers");
    cr_assert_not(c.answered_in_call, "a callback ran inside saga_pg_query");
    cr_assert_eq(c.status[0], 0);
    cr_assert_str_eq(c.value[0], "1");
    cr_assert_str_eq(c.value[1], "42");
    cr_assert_eq(c.status[2], SAGA_ESTORE);
    cr_assert_str_eq(c.sqlstate[2], "42703", "undefined column");
    cr_assert_str_eq(c.value[3], "was null");
    cr_assert_eq(c.status[4], SAGA_ESTORE, "the first error of several statements");
    cr_assert_str_eq(c.sqlstate[4], "22012", "division by zero");
    cr_assert_eq(c.status[5], 0, "the last statement's result (COMMIT)");
    cr_assert_eq(c.status[6], 0, "an empty query");
    cr_assert_eq(c.lost + c.failed, 0);
    close_and_finish(&c);
}

Test(pg_conn, notifications) {
    ctx_t c;
    open_ready(&c, NULL);
    query(&c, "LISTEN \"some.channel\"", 0, NULL);
    run_until(&c.answered, 1, 10000, "LISTEN");
    PGconn *other = postgres_server_connect(&P);
    cr_assert_eq(postgres_exec(other, "NOTIFY \"some.channel\", 'hello'"), 0);
    cr_assert_eq(postgres_exec(other, "BEGIN; NOTIFY \"some.channel\", 'rolled back'; "
                                      "ROLLBACK"), 0);
    cr_assert_eq(postgres_exec(other, "SELECT pg_notify('some.channel', '')"), 0);
    PQfinish(other);
    run_until(&c.notified, 2, 10000, "notifications");
    cr_assert_str_eq(c.channel, "some.channel");
    cr_assert_str_eq(c.payload, "", "the last one, without payload");
    cr_assert_eq(c.notified, 2, "the rolled-back one never comes");
    close_and_finish(&c);
}

/* The test's end of the connection `c` holds (before any other is made):
 * the unix socket whose peer is the server's socket in P.dir. */
static int pg_socket(void) {
    int found = -1;
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_un a;
        socklen_t len = sizeof(a);
        memset(&a, 0, sizeof(a));
        if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 && a.sun_family == AF_UNIX &&
            strncmp(a.sun_path, P.dir, strlen(P.dir)) == 0) {
            cr_assert_eq(found, -1, "two connections to the server");
            found = fd;
        }
    }
    cr_assert_geq(found, 0, "no connection to the server's socket");
    return found;
}

/* What the server sent that nobody read yet (left unread). */
static ssize_t peek(int fd, unsigned char *buf, size_t size) {
    ssize_t n = recv(fd, buf, size, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 ? 0 : n;
}

static long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Polls the unread bytes (every millisecond, at most 10 s) until they
 * hold more than `after` bytes and, when `ending` is given, end with it. */
static ssize_t wait_unread(int fd, unsigned char *buf, size_t size, ssize_t after,
                           const unsigned char *ending, size_t elen, const char *what) {
    long deadline = mono_ms() + 10000;
    for (;;) {
        ssize_t n = peek(fd, buf, size);
        if (n > after && (ending == NULL ||
                          (n >= (ssize_t)elen && memcmp(buf + n - elen, ending, elen) == 0)))
            return n;
        cr_assert_lt(mono_ms(), deadline, "%s never came on the socket", what);
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A notification that arrives right behind a query's answer, so that the
 * same read takes both: libpq parses it while the answer is collected
 * (after ReadyForQuery, in PQisBusy/PQgetResult), and it must be
 * delivered then, not left in libpq's queue until the socket is readable
 * again (a relay with a long --poll would sleep on a row). The loop is
 * not run while the server answers, then sends the notification. */
Test(pg_conn, notification_right_behind_an_answer) {
    ctx_t c;
    open_ready(&c, NULL);
    query(&c, "LISTEN ch", 0, NULL);
    run_until(&c.answered, 1, 10000, "LISTEN");
    int fd = pg_socket();
    PGconn *other = postgres_server_connect(&P);
    cr_assert_not_null(other);
    static const unsigned char ready[6] = {'Z', 0, 0, 0, 5, 'I'};
    unsigned char buf[4096];
    bool staged = false;
    for (int tries = 0; tries < 50 && !staged; tries++) {
        int before = c.answered;
        /* the server waits a little before it answers, so that the kick
         * (which may also read) is over before the answer comes */
        query(&c, "SELECT pg_sleep(0.02), 'answer'", 0, NULL);
        uv_run(&loop, UV_RUN_NOWAIT); /* the kick: the query is written */
        if (c.answered != before)
            continue; /* it was read at once: try again */
        /* the whole answer, unread */
        ssize_t answer = wait_unread(fd, buf, sizeof(buf), 0, ready, sizeof(ready), "the answer");
        cr_assert_eq(postgres_exec(other, "NOTIFY ch, 'behind'"), 0);
        wait_unread(fd, buf, sizeof(buf), answer, NULL, 0, "the notification");
        cr_assert_eq(buf[answer], 'A', "the notification follows the answer");
        staged = true;
        run_until(&c.answered, before + 1, 10000, "the answer");
    }
    cr_assert(staged, "the answer was always read before the notification came");
    run_until(&c.notified, 1, 3000, "the notification behind the answer");
    cr_assert_str_eq(c.payload, "behind");
    PQfinish(other);
    close_and_finish(&c);
}

/* The server killed under a query: the query is answered as unavailable,
 * LOST fires, attempts fail while it is down, and once it is back the
 * connection is READY again. */
Test(pg_conn, server_killed_under_a_query) {
    ctx_t c;
    saga_pg_options_t opt = {.reconnect_min_ms = 20, .reconnect_max_ms = 100};
    open_ready(&c, &opt);
    query(&c, "SELECT pg_sleep(30)", 0, NULL);
    query(&c, "SELECT 2", 0, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    postgres_server_kill(&P, SIGKILL);
    run_until(&c.answered, 2, 10000, "answers after the kill");
    cr_assert_eq(c.status[0], SAGA_EUNAVAILABLE);
    cr_assert_eq(c.status[1], SAGA_EUNAVAILABLE);
    run_until(&c.lost, 1, 10000, "LOST");
    run_until(&c.failed, 1, 10000, "a failed attempt while the server is down");
    cr_assert_eq(postgres_server_restart(&P), 0);
    run_until(&c.ready, 2, 20000, "READY again");
    query(&c, "SELECT 'back'", 0, NULL);
    run_until(&c.answered, 3, 10000, "an answer after the reconnection");
    cr_assert_str_eq(c.value[2], "back");
    close_and_finish(&c);
}

Test(pg_conn, query_timeout_drops_the_connection) {
    ctx_t c;
    saga_pg_options_t opt = {.query_timeout_ms = 300, .reconnect_min_ms = 20};
    open_ready(&c, &opt);
    query(&c, "SELECT pg_sleep(20)", 0, NULL);
    run_until(&c.answered, 1, 10000, "the timed-out query's answer");
    cr_assert_eq(c.status[0], SAGA_EUNAVAILABLE);
    cr_assert(strstr(c.last_event, "no answer to a query within 300 ms") != NULL, "%s",
              c.last_event);
    run_until(&c.ready, 2, 10000, "READY again");
    close_and_finish(&c);
}

Test(pg_conn, close_answers_queued_queries) {
    ctx_t c;
    open_ready(&c, NULL);
    query(&c, "SELECT pg_sleep(10)", 0, NULL);
    query(&c, "SELECT 1", 0, NULL);
    query(&c, "SELECT 2", 0, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    saga_pg_close(c.pg, on_closed, &c);
    cr_assert_eq(c.answered, 3, "answered at close");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(c.status[i], SAGA_ECLOSING);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(c.closed);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(pg_conn, unreachable_server_is_retried_until_closed) {
    ctx_t c;
    memset(&c, 0, sizeof(c));
    saga_pg_options_t opt = {.reconnect_min_ms = 10, .reconnect_max_ms = 20};
    c.pg = saga_pg_new(&loop, "host=/nonexistent-dir port=5432 dbname=x", &opt, on_event,
                       NULL, &c);
    cr_assert_eq(saga_pg_start(c.pg), 0);
    run_until(&c.failed, 3, 10000, "failed attempts");
    cr_assert(strstr(c.last_event, "/nonexistent-dir") != NULL, "%s", c.last_event);
    cr_assert_eq(c.ready, 0);
    close_and_finish(&c);
}

Test(pg_conn, conninfo_check) {
    char err[256];
    cr_assert_eq(saga_pg_conninfo_check("host=/tmp dbname=x", err, sizeof(err)), 0);
    cr_assert_eq(saga_pg_conninfo_check("postgresql://u@h:5/db?sslmode=disable", err,
                                        sizeof(err)), 0);
    cr_assert_eq(saga_pg_conninfo_check("host=/tmp bogus=1", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "bogus") != NULL, "%s", err);
    cr_assert_eq(saga_pg_conninfo_check("postgresql://[::1/db", err, sizeof(err)),
                 -EINVAL);
    cr_assert_eq(saga_pg_conninfo_check("host='unterminated", err, sizeof(err)), -EINVAL);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---------------------------------------------------------------------- */
/* Host names (resolved off the loop, every address handed to libpq)      */
/* ---------------------------------------------------------------------- */

static void setup_tcp(void) {
    cr_assert_eq(postgres_server_start_tcp(&P), 0);
    cr_assert_eq(uv_loop_init(&loop), 0);
}

TestSuite(pg_conn_names, .init = setup_tcp, .fini = teardown, .timeout = 120);

/* A port on 127.0.0.1 that refuses connections: bound, never listening
 * (kept bound by the caller until the test ends). */
static int refusing_port(int *fd) {
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(*fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* localhost by name (on Debian ::1 and 127.0.0.1; the server listens on
 * 127.0.0.1 only), with a port list of one port per host whose first
 * refuses: every address of the first entry fails with its own port,
 * then the second entry's addresses are tried with theirs. */
Test(pg_conn_names, every_address_of_every_host_with_its_port) {
    int fd;
    int closed = refusing_port(&fd);
    char conninfo[200];
    snprintf(conninfo, sizeof(conninfo),
             "host=localhost,localhost port=%d,%d dbname=postgres user=postgres", closed,
             P.port);
    ctx_t c;
    memset(&c, 0, sizeof(c));
    c.pg = saga_pg_new(&loop, conninfo, NULL, on_event, on_notify, &c);
    cr_assert_not_null(c.pg);
    cr_assert_eq(saga_pg_start(c.pg), 0);
    run_until(&c.ready, 1, 20000, "READY by host name");
    cr_assert_eq(c.failed, 0, "no failed attempt: %s", c.last_event);
    query(&c, "SELECT inet_server_port()", 0, NULL);
    run_until(&c.answered, 1, 10000, "the answer");
    char want[16];
    snprintf(want, sizeof(want), "%d", P.port);
    cr_assert_str_eq(c.value[0], want);
    close_and_finish(&c);
    close(fd);
}
