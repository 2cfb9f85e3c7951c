/*
 * store_fixture.c -- test harness: see store_fixture.h.
 */
#include "store_fixture.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store/store_redis.h"

redis_server_t R;
redis_cluster_t RC;
uv_loop_t L;
saga_store_t *S;
saga_redis_url_t U;
redisContext *C;
int closed;

static uv_timer_t deadline;
static bool expired;
static int store_status = 1;
static bool finished;

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    (void)data;
    store_status = status;
    if (status != 0)
        fprintf(stderr, "store: %s\n", msg);
}

static void on_deadline(uv_timer_t *t) {
    (void)t;
    expired = true;
}

void fixture_deadline_start(uint64_t ms) {
    expired = false;
    uv_timer_start(&deadline, on_deadline, ms, 0);
}

bool fixture_expired(void) { return expired; }

void fixture_deadline_stop(void) { uv_timer_stop(&deadline); }

void run_until(const int *n, int want) {
    fixture_deadline_start(5000);
    while (*n < want && !expired)
        uv_run(&L, UV_RUN_ONCE);
    fixture_deadline_stop();
    cr_assert_geq(*n, want, "timed out waiting for a callback");
}

bool fixture_cluster(void) {
    const char *v = getenv("SAGA_TEST_REDIS");
    return v != NULL && strcmp(v, "cluster") == 0;
}

const char *fixture_dir(void) { return fixture_cluster() ? RC.node[0].srv.dir : R.dir; }

void fixture_kill_redis(void) {
    if (!fixture_cluster()) {
        redis_server_kill(&R, SIGKILL);
        return;
    }
    for (int i = 0; i < RC.nnodes; i++)
        redis_server_kill(&RC.node[i].srv, SIGKILL);
}

void fixture_setup(uint64_t command_timeout_ms) {
    signal(SIGPIPE, SIG_IGN);
    if (fixture_cluster())
        cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    else
        cr_assert_eq(redis_server_start(&R, NULL), 0);
    cr_assert_eq(uv_loop_init(&L), 0);
    uv_timer_init(&L, &deadline);
    char err[256];
    cr_assert_eq(saga_redis_url_parse(fixture_cluster() ? RC.node[0].url : R.url, &U, err,
                                      sizeof(err)), 0, "%s", err);
    saga_store_redis_options_t o;
    memset(&o, 0, sizeof(o));
    o.conn.reconnect_max_ms = 100;
    o.conn.command_timeout_ms = command_timeout_ms;
    const char *shards = getenv("SAGA_TEST_SHARDS");
    if (shards != NULL)
        o.shards = (unsigned)atoi(shards);
    store_status = 1;
    S = saga_store_redis_new(&L, &U, &o, on_ready, NULL);
    cr_assert_not_null(S);
    fixture_deadline_start(5000);
    while (store_status == 1 && !expired)
        uv_run(&L, UV_RUN_ONCE);
    fixture_deadline_stop();
    cr_assert_eq(store_status, 0, "the store is ready");
    if (shards != NULL && fixture_cluster())
        cr_assert_eq(fixture_shards()->k, (unsigned)atoi(shards), "the shards asked for");
    if (fixture_cluster())
        return;
    C = redis_server_connect(&R);
    cr_assert_not_null(C);
}

void on_closed(void *data) {
    (void)data;
    closed++;
}

static void on_handle_closed(uv_handle_t *h) { (void)h; }

void fixture_finish(void) {
    if (C != NULL)
        redisFree(C);
    C = NULL;
    closed = 0;
    S->ops->close(S, on_closed, NULL);
    uv_close((uv_handle_t *)&deadline, on_handle_closed);
    uv_run(&L, UV_RUN_DEFAULT);
    finished = true;
    cr_assert_eq(closed, 1);
    cr_assert_eq(uv_loop_close(&L), 0, "no handle left in the loop");
}

void fixture_teardown(void) {
    if (!finished && C != NULL)
        redisFree(C);
    saga_redis_url_close(&U);
    redis_server_stop(&R);
    redis_cluster_stop(&RC);
}

const saga_shards_t *fixture_shards(void) {
    const saga_shards_t *sh = saga_store_redis_shards(S);
    cr_assert_not_null(sh, "the store is ready");
    return sh;
}

const char *shard_key_n(unsigned s, const char *name, const char *suffix) {
    static char ring[16][256];
    static unsigned next;
    char *buf = ring[next++ % 16];
    cr_assert_geq(saga_shards_key(fixture_shards(), s, name, suffix, buf, sizeof(ring[0])), 0,
                  "shard %u of %u", s, fixture_shards()->k);
    return buf;
}

const char *shard_key(const char *name, const char *suffix, const char *id) {
    return shard_key_n(saga_shards_of(fixture_shards(), id), name, suffix);
}

redisReply *cmd(const char *fmt, ...) {
    static redisReply *last;
    if (last != NULL)
        freeReplyObject(last);
    va_list ap;
    va_start(ap, fmt);
    last = fixture_cluster() ? redis_cluster_vcmd(&RC, fmt, ap) : redisvCommand(C, fmt, ap);
    va_end(ap);
    cr_assert_not_null(last, "redis: %s", C != NULL ? C->errstr : "no node answered");
    return last;
}

long long cmd_int(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = fixture_cluster() ? redis_cluster_vcmd(&RC, fmt, ap) : redisvCommand(C, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "an integer reply (%s)",
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}
