/*
 * test_redis_conn.c -- redis_conn (and redis_uv under it) against real
 * redis-server processes started by the harness: no mocks.
 *
 * Every test runs its loop to the end, asserts the callback counts
 * afterwards and asserts uv_loop_close() == 0 (no handle left behind).
 * Callbacks also check they are not called from inside the call that
 * registered them (t->in_call).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "redis/redis_conn.h"
#include "redis_server.h"

/* ------------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------------ */

#define MAX_RECS 64

typedef struct rec_s {
    int type;  /* 0: NULL reply */
    long long integer;
    char str[128];
} rec_t;

typedef struct t_s t_t;

struct t_s {
    uv_loop_t loop;
    saga_redis_t *r;
    redis_server_t srv;
    bool have_srv;
    int in_call;

    int ready, lost, failed, closed;
    int replies, nulls;
    char first_err[512];
    char last_err[512];
    rec_t recs[MAX_RECS];

    /* per-test behaviour */
    void (*on_event)(t_t *t, saga_redis_event_t ev, const char *err);
    void (*on_reply)(t_t *t, redisReply *reply, int idx);
    long long counter;
    int step;
    int nulls_at_lost;
    uv_timer_t timer;
};

static void sigpipe_off(void)
{
    /* A write to a dead server must fail with EPIPE, not kill the test;
     * the engine's main() must do the same (hiredis 0.14 uses write()). */
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(redis_conn, .init = sigpipe_off, .timeout = 60);

static void t_init(t_t *t)
{
    memset(t, 0, sizeof *t);
    cr_assert_eq(uv_loop_init(&t->loop), 0);
}

static void t_server(t_t *t, const char *const *extra)
{
    cr_assert_eq(redis_server_start(&t->srv, extra), 0,
                 "cannot start redis-server");
    t->have_srv = true;
}

static void on_closed(void *data)
{
    t_t *t = data;
    t->closed++;
}

static void t_close(t_t *t)
{
    saga_redis_close(t->r, on_closed, t);
}

static void event_cb(saga_redis_t *r, saga_redis_event_t ev, const char *err,
                     void *data)
{
    t_t *t = data;

    cr_assert_eq(r, t->r);
    cr_assert_eq(t->in_call, 0, "event from inside a registering call");
    switch (ev) {
    case SAGA_REDIS_READY:
        t->ready++;
        cr_assert_null(err);
        cr_assert(saga_redis_ready(r));
        break;
    case SAGA_REDIS_LOST:
        t->lost++;
        t->nulls_at_lost = t->nulls;
        cr_assert_not(saga_redis_ready(r));
        break;
    case SAGA_REDIS_CONNECT_FAILED:
        t->failed++;
        cr_assert_not(saga_redis_ready(r));
        break;
    }
    if (err != NULL) {
        if (t->first_err[0] == '\0')
            snprintf(t->first_err, sizeof t->first_err, "%s", err);
        snprintf(t->last_err, sizeof t->last_err, "%s", err);
    }
    if (t->on_event != NULL)
        t->on_event(t, ev, err);
}

static void reply_cb(saga_redis_t *r, redisReply *reply, void *data)
{
    t_t *t = data;
    int idx = t->replies++;
    rec_t *rec = &t->recs[idx < MAX_RECS ? idx : MAX_RECS - 1];

    cr_assert_eq(r, t->r);
    cr_assert_eq(t->in_call, 0, "reply from inside a registering call");
    memset(rec, 0, sizeof *rec);
    if (reply == NULL) {
        t->nulls++;
    } else {
        rec->type = reply->type;
        rec->integer = reply->integer;
        if (reply->str != NULL)
            snprintf(rec->str, sizeof rec->str, "%.*s", (int)reply->len,
                     reply->str);
    }
    if (t->on_reply != NULL)
        t->on_reply(t, reply, idx);
}

/* Sends the NULL-terminated argument list; returns what the call did. */
static int issue(t_t *t, const char *a0, ...)
{
    const char *argv[16];
    int argc = 0, rc;
    va_list ap;

    argv[argc++] = a0;
    va_start(ap, a0);
    while (argc < 16 && (argv[argc] = va_arg(ap, const char *)) != NULL)
        argc++;
    va_end(ap);
    t->in_call++;
    rc = saga_redis_command_argv(t->r, reply_cb, t, argc, argv, NULL);
    t->in_call--;
    return rc;
}

static void t_open(t_t *t, const char *url, const saga_redis_options_t *opt)
{
    saga_redis_url_t u;
    char err[256];
    int rc;

    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof err), 0,
                 "%s: %s", url, err);
    t->r = saga_redis_new(&t->loop, &u, opt, event_cb, t);
    saga_redis_url_close(&u);
    cr_assert_not_null(t->r);
    t->in_call++;
    rc = saga_redis_start(t->r);
    t->in_call--;
    cr_assert_eq(rc, 0);
    cr_assert_not(saga_redis_ready(t->r));
    /* Not ready yet: refused, and the callback never runs. */
    cr_assert_eq(issue(t, "PING", NULL), -ENOTCONN);
}

/* Runs the loop dry and checks nothing was left behind. */
static void t_finish(t_t *t)
{
    cr_assert_eq(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(t->closed, 1, "closed_cb ran %d times", t->closed);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "a handle was left open");
    if (t->have_srv)
        redis_server_stop(&t->srv);
}

static char *url_with(char *buf, size_t len, const char *userinfo,
                      const redis_server_t *s, const char *query)
{
    snprintf(buf, len, "unix://%s%s%s", userinfo ? userinfo : "", s->socket,
             query ? query : "");
    return buf;
}

static void expect_in(const char *hay, const char *needle)
{
    cr_expect(strstr(hay, needle) != NULL, "'%s' does not contain '%s'", hay,
              needle);
}

/* ------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

static void rt_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    static const char bin[] = {'a', '\0', 'b'};
    static const char resp_get[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    static const char inline_get[] = "GET k\r\n";
    const char *argv[3] = {"SET", "bin", bin};
    size_t lens[3] = {3, 3, sizeof bin};
    int rc;

    if (ev != SAGA_REDIS_READY)
        return;
    cr_assert_eq(issue(t, "SET", "k", "v", NULL), 0);
    cr_assert_eq(issue(t, "GET", "k", NULL), 0);
    t->in_call++;
    rc = saga_redis_command_argv(t->r, reply_cb, t, 3, argv, lens);
    cr_assert_eq(rc, 0);
    rc = saga_redis_command(t->r, reply_cb, t, "STRLEN %s", "bin");
    cr_assert_eq(rc, 0);
    rc = saga_redis_command(t->r, NULL, NULL, "SET %s %d", "n", 42);
    cr_assert_eq(rc, 0);
    rc = saga_redis_command(t->r, reply_cb, t, "GET %b", "nX", (size_t)1);
    cr_assert_eq(rc, 0);
    /* Already in the protocol's form; one that is not is refused. */
    rc = saga_redis_command_resp(t->r, reply_cb, t, resp_get, sizeof resp_get - 1);
    cr_assert_eq(rc, 0);
    rc = saga_redis_command_resp(t->r, reply_cb, t, inline_get, sizeof inline_get - 1);
    cr_assert_eq(rc, -EINVAL);
    t->in_call--;
    cr_assert_eq(saga_redis_pending(t->r), 7);
}

static void rt_reply(t_t *t, redisReply *reply, int idx)
{
    cr_assert_not_null(reply);
    if (idx == 5)
        t_close(t);
}

Test(redis_conn, round_trip_over_unix_socket)
{
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = rt_event;
    t.on_reply = rt_reply;
    t_open(&t, t.srv.url, NULL);
    cr_expect_str_eq(saga_redis_display(t.r), t.srv.url);
    t_finish(&t);

    cr_expect_eq(t.ready, 1);
    cr_expect_eq(t.failed + t.lost, 0);
    cr_expect_eq(t.replies, 6);
    cr_expect_eq(t.nulls, 0);
    cr_expect_eq(t.recs[0].type, REDIS_REPLY_STATUS);
    cr_expect_str_eq(t.recs[0].str, "OK");
    cr_expect_str_eq(t.recs[1].str, "v");
    cr_expect_str_eq(t.recs[2].str, "OK");
    cr_expect_eq(t.recs[3].integer, 3, "binary-safe argv");
    cr_expect_str_eq(t.recs[4].str, "42", "fire-and-forget SET ran first");
    cr_expect_str_eq(t.recs[5].str, "v", "a command already in RESP form");
}

static void pipe_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    int i;

    if (ev != SAGA_REDIS_READY)
        return;
    t->in_call++;
    for (i = 0; i < 10000; i++)
        cr_assert_eq(saga_redis_command(t->r, reply_cb, t, "INCR %s", "ctr"),
                     0);
    t->in_call--;
    cr_assert_eq(saga_redis_pending(t->r), 10000);
}

static void pipe_reply(t_t *t, redisReply *reply, int idx)
{
    cr_assert_not_null(reply);
    cr_assert_eq(reply->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(reply->integer, idx + 1, "reply %d out of order", idx);
    cr_assert_eq(saga_redis_pending(t->r), (size_t)(10000 - idx - 1));
    if (idx == 9999)
        t_close(t);
}

Test(redis_conn, pipelines_ten_thousand_commands_in_order)
{
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = pipe_event;
    t.on_reply = pipe_reply;
    t_open(&t, t.srv.url, NULL);
    t_finish(&t);

    cr_expect_eq(t.ready, 1);
    cr_expect_eq(t.replies, 10000);
    cr_expect_eq(t.nulls, 0);
}

static void ping_then_close_event(t_t *t, saga_redis_event_t ev,
                                  const char *err)
{
    if (ev == SAGA_REDIS_READY)
        cr_assert_eq(issue(t, "CLIENT", "GETNAME", NULL), 0);
}

static void close_after_first_reply(t_t *t, redisReply *reply, int idx)
{
    if (idx == 0)
        t_close(t);
}

Test(redis_conn, client_setname)
{
    saga_redis_options_t opt = {.client_name = "saga-test"};
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = ping_then_close_event;
    t.on_reply = close_after_first_reply;
    t_open(&t, t.srv.url, &opt);
    t_finish(&t);
    cr_expect_eq(t.replies, 1);
    cr_expect_str_eq(t.recs[0].str, "saga-test");
}

Test(redis_conn, bad_client_name_fails_the_connect)
{
    saga_redis_options_t opt = {.client_name = "has space"};
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t_open(&t, t.srv.url, &opt);
    t.on_event = NULL;
    cr_assert_eq(uv_run(&t.loop, UV_RUN_DEFAULT), 0, "no retry: loop idles");
    t_close(&t);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
    cr_expect_eq(t.ready, 0);
    expect_in(t.last_err, "CLIENT SETNAME failed");
}

/* ------------------------------------------------------------------------
 * Databases, TCP, host names
 * ------------------------------------------------------------------------ */

static void set_where_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY)
        cr_assert_eq(issue(t, "SET", "where", "here", NULL), 0);
}

/* Checks with a blocking client that "where" is in `db` and not in 0. */
static void check_db(const redis_server_t *s, int db)
{
    redisContext *c = redis_server_connect(s);
    redisReply *r;

    cr_assert_not_null(c);
    r = redisCommand(c, "SELECT %d", db);
    cr_assert_not_null(r);
    freeReplyObject(r);
    r = redisCommand(c, "GET where");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    cr_expect_str_eq(r->str, "here");
    freeReplyObject(r);
    r = redisCommand(c, "SELECT 0");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS where");
    cr_assert_not_null(r);
    cr_expect_eq(r->integer, 0, "the key landed in db 0");
    freeReplyObject(r);
    redisFree(c);
}

Test(redis_conn, select_db_over_unix)
{
    char url[400];
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = set_where_event;
    t.on_reply = close_after_first_reply;
    t_open(&t, url_with(url, sizeof url, NULL, &t.srv, "?db=7"), NULL);
    cr_assert_eq(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&t.loop), 0);
    cr_expect_eq(t.closed, 1);
    cr_expect_eq(t.ready, 1);
    cr_expect_str_eq(t.recs[0].str, "OK");
    check_db(&t.srv, 7);
    redis_server_stop(&t.srv);
}

static void start_tcp_server(t_t *t, int *port, const char *bind1,
                             const char *bind2)
{
    char p[16];
    const char *extra[] = {"--port", p, "--bind", bind1, bind2, NULL};
    int tries;

    /* The port was free a moment ago; another process may grab it. */
    for (tries = 0; tries < 5; tries++) {
        *port = redis_server_free_port();
        cr_assert(*port > 0);
        snprintf(p, sizeof p, "%d", *port);
        if (redis_server_start(&t->srv, extra) == 0) {
            t->have_srv = true;
            return;
        }
    }
    cr_assert_fail("cannot start a TCP redis-server");
}

Test(redis_conn, tcp_by_host_name_resolved_off_the_loop)
{
    char url[128];
    int port;
    t_t t;

    t_init(&t);
    start_tcp_server(&t, &port, "127.0.0.1", NULL);
    t.on_event = set_where_event;
    t.on_reply = close_after_first_reply;
    snprintf(url, sizeof url, "redis://localhost:%d/3", port);
    t_open(&t, url, NULL);
    cr_assert_eq(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&t.loop), 0);
    cr_expect_eq(t.closed, 1);
    cr_expect_eq(t.ready, 1);
    cr_expect_eq(t.failed, 0, "%s", t.last_err);
    cr_expect_str_eq(t.recs[0].str, "OK");
    check_db(&t.srv, 3);
    redis_server_stop(&t.srv);
}

static bool ipv6_loopback_works(void)
{
    struct sockaddr_in6 a;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool ok;

    if (fd < 0)
        return false;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

Test(redis_conn, tcp_ipv6_literal)
{
    char url[128];
    int port;
    t_t t;

    if (!ipv6_loopback_works())
        cr_skip_test("no IPv6 loopback here");
    t_init(&t);
    start_tcp_server(&t, &port, "::1", NULL);
    t.on_event = set_where_event;
    t.on_reply = close_after_first_reply;
    snprintf(url, sizeof url, "redis://[::1]:%d/2", port);
    t_open(&t, url, NULL);
    cr_assert_eq(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&t.loop), 0);
    cr_expect_eq(t.closed, 1);
    cr_expect_eq(t.ready, 1, "%s", t.last_err);
    check_db(&t.srv, 2);
    redis_server_stop(&t.srv);
}

/* ------------------------------------------------------------------------
 * Failed connections
 * ------------------------------------------------------------------------ */

static void close_soon_cb(uv_timer_t *timer)
{
    t_t *t = timer->data;
    t_close(t);
    uv_close((uv_handle_t *)timer, NULL);
}

/* After the failure, wait a while (many backoff periods) to see that no
 * second attempt is made, then close. */
static void wait_then_close_event(t_t *t, saga_redis_event_t ev,
                                  const char *err)
{
    if (ev != SAGA_REDIS_CONNECT_FAILED || t->failed != 1)
        return;
    uv_timer_init(&t->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, close_soon_cb, 200, 0);
}

static const saga_redis_options_t no_retry = {
    .reconnect_min_ms = 5, .reconnect_max_ms = 10,
    .retry_first_connect = false};

Test(redis_conn, refused_unix_socket_fails_without_retry)
{
    char want[400];
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    redis_server_kill(&t.srv, SIGKILL); /* the socket file stays */
    t.on_event = wait_then_close_event;
    t_open(&t, t.srv.url, &no_retry);
    snprintf(want, sizeof want, "redis %s: connection refused", t.srv.url);
    t_finish(&t);

    cr_expect_eq(t.failed, 1, "retried: %d failures", t.failed);
    cr_expect_eq(t.ready + t.lost, 0);
    cr_expect_str_eq(t.first_err, want);
}

Test(redis_conn, missing_socket_fails_without_retry)
{
    char url[400], dir[256];
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    snprintf(dir, sizeof dir, "%s", t.srv.dir);
    snprintf(url, sizeof url, "unix://%s/nothing-here.sock", dir);
    t.on_event = wait_then_close_event;
    t_open(&t, url, &no_retry);
    t_finish(&t);

    cr_expect_eq(t.failed, 1);
    expect_in(t.first_err, url);
    expect_in(t.first_err, "no such file or directory");
}

Test(redis_conn, refused_tcp_connect_reaches_the_connect_callback)
{
    char url[128];
    int port = redis_server_free_port();
    t_t t;

    cr_assert(port > 0);
    t_init(&t);
    t.on_event = wait_then_close_event;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    t_open(&t, url, &no_retry);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
    expect_in(t.first_err, url);
    expect_in(t.first_err, "connection refused");
}

Test(redis_conn, refused_by_host_name_names_the_address)
{
    char url[128];
    int port = redis_server_free_port();
    t_t t;

    cr_assert(port > 0);
    t_init(&t);
    t.on_event = wait_then_close_event;
    snprintf(url, sizeof url, "redis://localhost:%d", port);
    t_open(&t, url, &no_retry);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
    expect_in(t.first_err, "connection refused (at ");
}

Test(redis_conn, unknown_host)
{
    saga_redis_options_t opt = no_retry;
    t_t t;

    opt.connect_timeout_ms = 3000;
    t_init(&t);
    t.on_event = wait_then_close_event;
    t_open(&t, "redis://no-such-host.invalid:6379", &opt);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
    expect_in(t.first_err, "no-such-host.invalid");
    cr_expect(strstr(t.first_err, "cannot resolve host") != NULL ||
                  strstr(t.first_err, "timed out resolving") != NULL,
              "%s", t.first_err);
}

static void close_on_failure(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_CONNECT_FAILED)
        t_close(t);
}

static void close_on_fourth_failure(t_t *t, saga_redis_event_t ev,
                                    const char *err)
{
    if (ev == SAGA_REDIS_CONNECT_FAILED && t->failed == 4)
        t_close(t);
}

Test(redis_conn, retries_with_backoff_when_asked)
{
    saga_redis_options_t opt = {.reconnect_min_ms = 5, .reconnect_max_ms = 20,
                                .retry_first_connect = true};
    uint64_t t0;
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    redis_server_kill(&t.srv, SIGKILL);
    t.on_event = close_on_fourth_failure;
    t_open(&t, t.srv.url, &opt);
    t0 = uv_hrtime();
    t_finish(&t);
    cr_expect_eq(t.failed, 4);
    cr_expect_eq(t.ready, 0);
    /* Three backoff delays: at least 3/4 of 5 + 10 + 20 ms. */
    cr_expect_geq((uv_hrtime() - t0) / 1000000, 26);
}

Test(redis_conn, connect_timeout_covers_the_handshake)
{
    saga_redis_options_t opt = no_retry;
    t_t t;

    opt.connect_timeout_ms = 200;
    t_init(&t);
    t_server(&t, NULL);
    /* A frozen server still accepts the connection (backlog) but never
     * answers the handshake. */
    redis_server_kill(&t.srv, SIGSTOP);
    t.on_event = close_on_failure;
    t_open(&t, t.srv.url, &opt);
    t_finish(&t); /* stop sends SIGCONT */
    cr_expect_eq(t.failed, 1);
    expect_in(t.first_err, "connect timed out after 200 ms");
}

/* ------------------------------------------------------------------------
 * AUTH
 * ------------------------------------------------------------------------ */

static const char *const acl_args[] = {
    "--user", "default", "off", "--user", "app", "on", ">secret", "~*", "&*",
    "+@all", NULL};

static void whoami_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY)
        cr_assert_eq(issue(t, "ACL", "WHOAMI", NULL), 0);
}

Test(redis_conn, auth_with_acl_user_and_password)
{
    char url[400];
    t_t t;

    t_init(&t);
    t_server(&t, acl_args);
    t.on_event = whoami_event;
    t.on_reply = close_after_first_reply;
    t_open(&t, url_with(url, sizeof url, "app:secret@", &t.srv, "?db=1"),
           NULL);
    cr_expect(strstr(saga_redis_display(t.r), "secret") == NULL);
    expect_in(saga_redis_display(t.r), "unix://app:***@");
    t_finish(&t);
    cr_expect_eq(t.ready, 1, "%s", t.last_err);
    cr_expect_str_eq(t.recs[0].str, "app");
}

Test(redis_conn, wrong_password_fails_without_leaking_it)
{
    char url[400], want[400];
    t_t t;

    t_init(&t);
    t_server(&t, acl_args);
    t.on_event = wait_then_close_event;
    t_open(&t, url_with(url, sizeof url, "app:wrong-pw-123@", &t.srv, NULL),
           &no_retry);
    snprintf(want, sizeof want,
             "redis unix://app:***@%s: authentication failed: WRONGPASS",
             t.srv.socket);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
    cr_expect_eq(t.ready, 0);
    expect_in(t.first_err, want);
    cr_expect(strstr(t.first_err, "wrong-pw-123") == NULL, "leak: %s",
              t.first_err);
}

Test(redis_conn, missing_password_says_authentication_required)
{
    t_t t;

    t_init(&t);
    t_server(&t, acl_args);
    t.on_event = wait_then_close_event;
    t_open(&t, t.srv.url, &no_retry);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
    expect_in(t.first_err, "authentication required");
}

Test(redis_conn, auth_with_password_only)
{
    const char *extra[] = {"--requirepass", "pw2", NULL};
    char url[400];
    t_t t;

    t_init(&t);
    t_server(&t, extra);
    t.on_event = whoami_event;
    t.on_reply = close_after_first_reply;
    t_open(&t, url_with(url, sizeof url, ":pw2@", &t.srv, NULL), NULL);
    t_finish(&t);
    cr_expect_eq(t.ready, 1, "%s", t.last_err);
    cr_expect_str_eq(t.recs[0].str, "default");
}

/* ------------------------------------------------------------------------
 * Losing the connection
 * ------------------------------------------------------------------------ */

static void kill_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY && t->ready == 1) {
        cr_assert_eq(issue(t, "SET", "a", "1", NULL), 0);
    } else if (ev == SAGA_REDIS_LOST) {
        cr_assert_eq(issue(t, "PING", NULL), -ENOTCONN);
        cr_assert_eq(saga_redis_pending(t->r), 0);
        cr_assert_eq(redis_server_restart(&t->srv), 0);
    } else if (ev == SAGA_REDIS_READY && t->ready == 2) {
        cr_assert_eq(issue(t, "GET", "a", NULL), 0);
    }
}

static void kill_reply(t_t *t, redisReply *reply, int idx)
{
    int i;

    if (idx == 0) {
        /* Answered: now kill the server with five commands on the way. */
        cr_assert_not_null(reply);
        redis_server_kill(&t->srv, SIGKILL);
        for (i = 0; i < 5; i++)
            cr_assert_eq(issue(t, "INCR", "x", NULL), 0);
    } else if (idx >= 1 && idx <= 5) {
        cr_assert_null(reply);
        cr_assert_not(saga_redis_ready(t->r));
        cr_assert_eq(issue(t, "PING", NULL), -ENOTCONN);
    } else if (idx == 6) {
        t_close(t);
    }
}

Test(redis_conn, server_killed_then_restarted_reconnects_by_itself)
{
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", "always",
                           NULL};
    saga_redis_options_t opt = {.reconnect_min_ms = 10,
                                .reconnect_max_ms = 50};
    t_t t;

    t_init(&t);
    t_server(&t, extra);
    t.on_event = kill_event;
    t.on_reply = kill_reply;
    t_open(&t, t.srv.url, &opt);
    t_finish(&t);

    cr_expect_eq(t.ready, 2);
    cr_expect_eq(t.lost, 1);
    cr_expect_eq(t.nulls, 5);
    cr_expect_eq(t.nulls_at_lost, 5, "NULL replies come before LOST");
    cr_expect_eq(t.replies, 7);
    cr_expect_str_eq(t.recs[6].str, "1", "acknowledged write survived");
    expect_in(t.first_err, "connection lost");
}

static void timeout_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY && t->ready == 1) {
        redis_server_kill(&t->srv, SIGSTOP);
        cr_assert_eq(issue(t, "GET", "x", NULL), 0);
    } else if (ev == SAGA_REDIS_LOST) {
        cr_assert_eq(t->nulls, 1);
        redis_server_kill(&t->srv, SIGCONT);
    } else if (ev == SAGA_REDIS_READY && t->ready == 2) {
        t_close(t);
    }
}

Test(redis_conn, command_timeout_drops_and_reconnects)
{
    saga_redis_options_t opt = {.command_timeout_ms = 200,
                                .connect_timeout_ms = 1000,
                                .reconnect_min_ms = 10,
                                .reconnect_max_ms = 50};
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = timeout_event;
    t_open(&t, t.srv.url, &opt);
    t_finish(&t);

    cr_expect_eq(t.nulls, 1);
    cr_expect_eq(t.replies, 1);
    cr_expect_eq(t.lost, 1);
    cr_expect_eq(t.ready, 2);
    expect_in(t.first_err, "command timed out: no reply within 200 ms");
}

/* ------------------------------------------------------------------------
 * Closing from everywhere
 * ------------------------------------------------------------------------ */

static void three_pings_event(t_t *t, saga_redis_event_t ev, const char *err)
{
    int i;

    if (ev == SAGA_REDIS_READY)
        for (i = 0; i < 3; i++)
            cr_assert_eq(issue(t, "PING", NULL), 0);
}

static void close_in_first_reply(t_t *t, redisReply *reply, int idx)
{
    if (idx == 0) {
        cr_assert_not_null(reply);
        t_close(t);
        t_close(t); /* a second call is ignored */
        cr_assert_not(saga_redis_ready(t->r));
        cr_assert_eq(issue(t, "PING", NULL), -ENOTCONN);
    } else {
        cr_assert_null(reply);
    }
}

Test(redis_conn, close_from_inside_a_reply_callback)
{
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = three_pings_event;
    t.on_reply = close_in_first_reply;
    t_open(&t, t.srv.url, NULL);
    t_finish(&t);
    cr_expect_eq(t.replies, 3);
    cr_expect_eq(t.nulls, 2);
    cr_expect_eq(t.recs[0].type, REDIS_REPLY_STATUS);
    cr_expect_eq(t.lost + t.failed, 0);
}

static void close_in_ready(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY) {
        cr_assert_eq(issue(t, "PING", NULL), 0);
        t_close(t);
    }
}

Test(redis_conn, close_from_inside_the_ready_event)
{
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = close_in_ready;
    t_open(&t, t.srv.url, NULL);
    t_finish(&t);
    cr_expect_eq(t.ready, 1);
    cr_expect_eq(t.replies, 1);
    cr_expect_eq(t.nulls, 1, "pending command gets NULL on close");
}

Test(redis_conn, close_from_inside_the_connect_failed_event)
{
    saga_redis_options_t opt = {.reconnect_min_ms = 1,
                                .retry_first_connect = true};
    int port = redis_server_free_port();
    char url[128];
    t_t t;

    t_init(&t);
    t.on_event = close_on_failure;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    t_open(&t, url, &opt);
    t_finish(&t);
    cr_expect_eq(t.failed, 1);
}

static void close_in_lost(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY)
        redis_server_kill(&t->srv, SIGKILL);
    else if (ev == SAGA_REDIS_LOST)
        t_close(t);
}

Test(redis_conn, close_from_inside_the_lost_event)
{
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = close_in_lost;
    t_open(&t, t.srv.url, NULL);
    t_finish(&t);
    cr_expect_eq(t.ready, 1);
    cr_expect_eq(t.lost, 1);
    cr_expect_eq(t.failed, 0);
}

static void close_in_null_reply(t_t *t, redisReply *reply, int idx)
{
    if (reply == NULL)
        t_close(t);
}

static void freeze_and_send(t_t *t, saga_redis_event_t ev, const char *err)
{
    if (ev == SAGA_REDIS_READY) {
        redis_server_kill(&t->srv, SIGSTOP);
        cr_assert_eq(issue(t, "PING", NULL), 0);
        cr_assert_eq(issue(t, "PING", NULL), 0);
    }
}

Test(redis_conn, close_from_a_null_reply_during_a_timeout_drop)
{
    saga_redis_options_t opt = {.command_timeout_ms = 100};
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = freeze_and_send;
    t.on_reply = close_in_null_reply;
    t_open(&t, t.srv.url, &opt);
    t_finish(&t);
    cr_expect_eq(t.nulls, 2);
    cr_expect_eq(t.lost, 0, "no event after close");
}

static void many_then_close(t_t *t, saga_redis_event_t ev, const char *err)
{
    int i;

    if (ev != SAGA_REDIS_READY)
        return;
    for (i = 0; i < 100; i++)
        cr_assert_eq(issue(t, "PING", NULL), 0);
    t_close(t);
}

Test(redis_conn, close_with_many_pending_commands)
{
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    t.on_event = many_then_close;
    t_open(&t, t.srv.url, NULL);
    t_finish(&t);
    cr_expect_eq(t.replies, 100);
    cr_expect_eq(t.nulls, 100);
}

Test(redis_conn, close_before_start)
{
    saga_redis_url_t u;
    char err[128];
    t_t t;

    t_init(&t);
    cr_assert_eq(saga_redis_url_parse("unix:///nonexistent/redis.sock", &u,
                                      err, sizeof err), 0);
    t.r = saga_redis_new(&t.loop, &u, NULL, event_cb, &t);
    saga_redis_url_close(&u);
    cr_assert_not_null(t.r);
    t_close(&t);
    cr_expect_eq(saga_redis_start(t.r), -ECANCELED);
    t_finish(&t);
    cr_expect_eq(t.failed + t.ready + t.lost, 0);
    saga_redis_close(NULL, NULL, NULL);
}

Test(redis_conn, close_right_after_start_while_resolving)
{
    char url[128];
    t_t t;

    t_init(&t);
    snprintf(url, sizeof url, "redis://localhost:%d",
             redis_server_free_port());
    t_open(&t, url, NULL);
    cr_expect_eq(saga_redis_start(t.r), -EALREADY);
    t_close(&t);
    t_finish(&t);
    cr_expect_eq(t.failed + t.ready + t.lost, 0, "no event after close");
}

Test(redis_conn, start_again_after_a_failed_first_attempt)
{
    saga_redis_url_t u;
    char err[128];
    t_t t;

    t_init(&t);
    t_server(&t, NULL);
    redis_server_kill(&t.srv, SIGKILL);
    cr_assert_eq(saga_redis_url_parse(t.srv.url, &u, err, sizeof err), 0);
    t.r = saga_redis_new(&t.loop, &u, &no_retry, event_cb, &t);
    saga_redis_url_close(&u);
    cr_assert_eq(saga_redis_start(t.r), 0);
    cr_assert_eq(uv_run(&t.loop, UV_RUN_DEFAULT), 0, "idle after failing");
    cr_assert_eq(t.failed, 1);

    cr_assert_eq(redis_server_restart(&t.srv), 0);
    t.on_event = close_in_ready;
    cr_assert_eq(saga_redis_start(t.r), 0);
    t_finish(&t);
    cr_expect_eq(t.ready, 1);
    cr_expect_eq(t.failed, 1);
}
