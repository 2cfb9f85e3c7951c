/*
 * test_redis_sub.c -- redis_sub against a real redis-server: messages
 * arrive in order, a restarted server is subscribed to again (LOST, then
 * SUBSCRIBED), closing leaves no handle behind.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "redis/redis_conn.h"
#include "redis/redis_sub.h"
#include "redis_server.h"

typedef struct t_s {
    uv_loop_t loop;
    redis_server_t srv;
    saga_redis_sub_t *sub;
    saga_redis_t *pub;      /* publishes, on a connection of its own */
    int subscribed, lost, failed, closed, pub_closed;
    char got[8][32];
    int ngot;
    bool restarted;
    bool pub_ready;
    bool want_c;            /* publish "c" once both are up again */
    uv_timer_t guard;
} t_t;

static t_t T;

static void finish(void);

static void publish(const char *m) {
    cr_assert_eq(saga_redis_command(T.pub, NULL, NULL, "PUBLISH ch %s", m), 0);
}

static void maybe_publish_c(void) {
    if (T.want_c && T.pub_ready && saga_redis_sub_live(T.sub)) {
        T.want_c = false;
        publish("c");
    }
}

static void on_pub_event(saga_redis_t *r, saga_redis_event_t ev, const char *err, void *d) {
    (void)r, (void)err, (void)d;
    T.pub_ready = ev == SAGA_REDIS_READY;
    if (T.pub_ready && T.subscribed == 1 && T.ngot == 0) {
        publish("a");
        publish("b");
    }
    maybe_publish_c();
}

static void on_event(saga_redis_sub_t *s, saga_redis_sub_event_t ev, const char *err, void *d) {
    (void)d;
    cr_assert_eq(s, T.sub);
    switch (ev) {
    case SAGA_REDIS_SUB_SUBSCRIBED:
        cr_assert(saga_redis_sub_live(s));
        T.subscribed++;
        if (T.subscribed == 1 && T.pub_ready) {
            publish("a");
            publish("b");
        }
        maybe_publish_c();
        break;
    case SAGA_REDIS_SUB_LOST:
        cr_assert_not(saga_redis_sub_live(s));
        cr_assert_not_null(err);
        T.lost++;
        break;
    case SAGA_REDIS_SUB_CONNECT_FAILED:
        T.failed++;
        break;
    }
}

static void on_message(saga_redis_sub_t *s, const char *msg, size_t len, void *d) {
    (void)s, (void)d;
    cr_assert_lt(T.ngot, 8);
    snprintf(T.got[T.ngot++], sizeof(T.got[0]), "%.*s", (int)len, msg);
    if (T.ngot == 2 && !T.restarted) {
        /* a crash of the server, then a new one on the same socket */
        T.restarted = true;
        T.want_c = true;
        redis_server_kill(&T.srv, SIGKILL);
        cr_assert_eq(redis_server_restart(&T.srv), 0);
    } else if (T.ngot == 3) {
        finish();
    }
}

static void on_sub_closed(void *d) { (void)d; T.closed++; }
static void on_pub_closed(void *d) { (void)d; T.pub_closed++; }

static void finish(void) {
    saga_redis_sub_close(T.sub, on_sub_closed, NULL);
    saga_redis_close(T.pub, on_pub_closed, NULL);
    uv_close((uv_handle_t *)&T.guard, NULL);
}

static void on_guard(uv_timer_t *t) {
    (void)t;
    finish();
}

Test(redis_sub, messages_in_order_and_subscribed_again_after_a_restart, .timeout = 60) {
    signal(SIGPIPE, SIG_IGN);
    memset(&T, 0, sizeof(T));
    cr_assert_eq(uv_loop_init(&T.loop), 0);
    cr_assert_eq(redis_server_start(&T.srv, NULL), 0);
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(T.srv.url, &u, err, sizeof(err)), 0, "%s", err);
    saga_redis_options_t o = {.reconnect_min_ms = 10, .reconnect_max_ms = 100,
                              .retry_first_connect = true};
    T.sub = saga_redis_sub_new(&T.loop, &u, &o, NULL, "ch", on_event, on_message, NULL);
    cr_assert_not_null(T.sub);
    cr_assert_not(saga_redis_sub_live(T.sub), "live only once Redis confirmed");
    T.pub = saga_redis_new(&T.loop, &u, &o, on_pub_event, NULL);
    cr_assert_not_null(T.pub);
    cr_assert_eq(saga_redis_start(T.pub), 0);
    saga_redis_url_close(&u);
    uv_timer_init(&T.loop, &T.guard);
    uv_timer_start(&T.guard, on_guard, 30000, 0);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&T.loop), 0, "a handle was left open");
    redis_server_stop(&T.srv);
    cr_assert_eq(T.ngot, 3, "messages: %d", T.ngot);
    cr_assert_str_eq(T.got[0], "a");
    cr_assert_str_eq(T.got[1], "b");
    cr_assert_str_eq(T.got[2], "c");
    cr_assert_eq(T.subscribed, 2, "subscribed at start and after the restart");
    cr_assert_eq(T.lost, 1);
    cr_assert_eq(T.closed, 1);
    cr_assert_eq(T.pub_closed, 1);
}

/* ---- a SUBSCRIBE the ACL refuses ---- */

static int acl_failed, acl_subscribed, acl_closed;
static char acl_err[512];
static saga_redis_sub_t *acl_sub;

static void acl_closed_cb(void *d) { (void)d; acl_closed++; }

static void acl_event(saga_redis_sub_t *s, saga_redis_sub_event_t ev, const char *err, void *d) {
    (void)d;
    if (ev == SAGA_REDIS_SUB_SUBSCRIBED)
        acl_subscribed++;
    if (ev == SAGA_REDIS_SUB_CONNECT_FAILED && strstr(err, "NOPERM") != NULL) {
        acl_failed++;
        snprintf(acl_err, sizeof(acl_err), "%s", err);
        saga_redis_sub_close(s, acl_closed_cb, NULL);
    }
}

static void acl_message(saga_redis_sub_t *s, const char *msg, size_t len, void *d) {
    (void)s, (void)msg, (void)len, (void)d;
}

/* A refused SUBSCRIBE (hiredis 0.14 drops the connection on it) is
 * reported with Redis's reason, not retried in silence. */
Test(redis_sub, a_subscribe_the_acl_refuses_is_reported, .timeout = 60) {
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    redis_server_t srv;
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(redis_server_start(&srv, NULL), 0);
    redisContext *c = redis_server_connect(&srv);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "ACL SETUSER nosub on >pw ~* +@all resetchannels");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(r);
    redisFree(c);
    char url[600];
    snprintf(url, sizeof(url), "unix://nosub:pw@%s", srv.socket);
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    saga_redis_options_t o = {.connect_timeout_ms = 300};
    acl_sub = saga_redis_sub_new(&loop, &u, &o, NULL, "ch", acl_event, acl_message, NULL);
    saga_redis_url_close(&u);
    cr_assert_not_null(acl_sub);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
    redis_server_stop(&srv);
    cr_assert_eq(acl_failed, 1, "the refusal was not reported");
    cr_assert_eq(acl_subscribed, 0);
    cr_assert_eq(acl_closed, 1);
    cr_assert(strstr(acl_err, "no permissions") != NULL, "%s", acl_err);
}
