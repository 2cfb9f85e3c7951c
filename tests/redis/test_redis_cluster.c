/*
 * test_redis_cluster.c -- the cluster client (redis_conn + redis_cluster)
 * against a real Redis Cluster on loopback (tests/support/redis_cluster.c):
 * detection from any node, routing by hash slot, broadcasts, MOVED and ASK
 * during a slot migration driven with CLUSTER SETSLOT, TRYAGAIN, the loss
 * of a primary and its replica's promotion, close with commands in flight.
 *
 * The tests drive the loop until what they wait for happened, under a
 * deadline, and end with uv_loop_close() == 0.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis/redis_conn.h"
#include "redis_cluster.h"
#include "redis_cmd.h"

static redis_cluster_t cl;

typedef struct t_s {
    uv_loop_t loop;
    uv_timer_t tick;
    saga_redis_t *r;
    int ready, lost, failed, closed;
    char last_err[512];
} t_t;

typedef struct res_s {
    bool done;
    bool null;
    int type;
    long long integer;
    char str[512];
    size_t elements;
    char el[4][128];
} res_t;

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(redis_cluster_start(&cl, NULL), 0, "cluster did not start");
}

static void teardown(void)
{
    redis_cluster_stop(&cl);
}

TestSuite(redis_cluster, .init = setup, .fini = teardown, .timeout = 120);

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void on_event(saga_redis_t *r, saga_redis_event_t ev, const char *err,
                     void *data)
{
    t_t *t = data;

    cr_assert_eq(r, t->r);
    if (ev == SAGA_REDIS_READY) {
        t->ready++;
        cr_assert(saga_redis_ready(r));
    } else if (ev == SAGA_REDIS_LOST) {
        t->lost++;
        cr_assert_not(saga_redis_ready(r));
    } else {
        t->failed++;
    }
    if (err != NULL)
        snprintf(t->last_err, sizeof t->last_err, "%s", err);
}

static void on_tick(uv_timer_t *h)
{
    (void)h;  /* keeps uv_run(ONCE) from sleeping past a deadline */
}

/* Runs the loop until *flag is true (or `cond` says so), 20 s at most. */
static void run_until(t_t *t, bool (*cond)(t_t *t, void *arg), void *arg,
                      const char *what)
{
    long end = mono_ms() + 20000;

    while (!cond(t, arg)) {
        cr_assert_lt(mono_ms(), end, "timed out waiting for %s (last error: %s)",
                     what, t->last_err);
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

static bool is_ready(t_t *t, void *arg)
{
    (void)arg;
    return saga_redis_ready(t->r);
}

static bool res_done(t_t *t, void *arg)
{
    (void)t;
    return ((res_t *)arg)->done;
}

static void t_open(t_t *t, const char *url)
{
    saga_redis_url_t u;
    char err[256];

    memset(t, 0, sizeof *t);
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->tick);
    uv_timer_start(&t->tick, on_tick, 10, 10);
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof err), 0, "%s", err);
    t->r = saga_redis_new(&t->loop, &u, NULL, on_event, t);
    saga_redis_url_close(&u);
    cr_assert_not_null(t->r);
    cr_assert_eq(saga_redis_start(t->r), 0);
    run_until(t, is_ready, NULL, "READY");
    cr_assert(saga_redis_is_cluster(t->r));
}

static void on_closed(void *data)
{
    ((t_t *)data)->closed++;
}

static void t_close(t_t *t)
{
    saga_redis_close(t->r, on_closed, t);
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert_eq(t->closed, 1);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "a handle was left open");
}

static void on_res(saga_redis_t *r, redisReply *reply, void *data)
{
    res_t *x = data;
    size_t i;

    (void)r;
    cr_assert_not(x->done, "a reply callback ran twice");
    x->done = true;
    if (reply == NULL) {
        x->null = true;
        return;
    }
    x->type = reply->type;
    x->integer = reply->integer;
    if (reply->str != NULL)
        snprintf(x->str, sizeof x->str, "%s", reply->str);
    x->elements = reply->elements;
    for (i = 0; i < reply->elements && i < 4; i++)
        if (reply->element[i]->str != NULL)
            snprintf(x->el[i], sizeof x->el[i], "%s", reply->element[i]->str);
}

/* One command through the client, its reply waited for. */
static res_t cmd(t_t *t, const char *fmt, ...)
{
    res_t x;
    va_list ap;
    char *buf = NULL;
    int len;

    memset(&x, 0, sizeof x);
    va_start(ap, fmt);
    len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    cr_assert_gt(len, 0);
    cr_assert_eq(saga_redis_command_resp(t->r, on_res, &x, buf, (size_t)len),
                 0, "command refused: %s", fmt);
    redisFreeCommand(buf);
    cr_assert_not(x.done, "callback from inside the call");
    run_until(t, res_done, &x, fmt);
    return x;
}

/* A key whose slot is served by node `want` (by the harness's map). */
static void key_on(char *out, size_t len, const char *prefix, int want)
{
    int i;

    for (i = 0; i < 100000; i++) {
        snprintf(out, len, "%s{k%d}", prefix, i);
        if (redis_cluster_primary_of(&cl, redis_cluster_key_slot(out)) == want)
            return;
    }
    cr_assert_fail("no key for node %d", want);
}

/* errorstat_<NAME> count of node i. */
static long long errorstat(int i, const char *name)
{
    redisContext *c = redis_cluster_connect(&cl, i);
    redisReply *r = redis_cmd(c, "INFO errorstats");
    char pat[64];
    const char *p;
    long long n = 0;

    snprintf(pat, sizeof pat, "errorstat_%s:count=", name);
    p = strstr(r->str, pat);
    if (p != NULL)
        n = atoll(p + strlen(pat));
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* ------------------------------------------------------------------------ */

Test(redis_cluster, key_slot_matches_the_server)
{
    const char *keys[] = {"", "a", "saga:{abc}", "saga:{abc}:history", "{}x",
                          "x{}y", "{a}{b}", "a{b", "saga:{idx:7}:intake",
                          "\xff\xfe"};
    redisContext *c = redis_cluster_connect(&cl, 0);
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect_eq(saga_redis_key_slot(keys[i], strlen(keys[i])),
                     (unsigned)redis_cmd_int(c, "CLUSTER KEYSLOT %s", keys[i]),
                     "key '%s'", keys[i]);
    redisFree(c);
}

Test(redis_cluster, detected_from_a_replica_and_routes_every_key)
{
    int prim[REDIS_CLUSTER_NODES], i, replica = -1;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    for (i = 0; i < cl.nnodes && replica < 0; i++)
        if (!cl.node[i].primary)
            replica = i;
    t_open(&t, cl.node[replica].url);
    for (i = 0; i < 300; i++) {
        res_t x = cmd(&t, "SET key:%d v%d", i, i);
        cr_assert_eq(x.type, REDIS_REPLY_STATUS, "SET key:%d: %s", i, x.str);
    }
    for (i = 0; i < 300; i++) {
        char key[32], want[32];
        redisContext *c;
        redisReply *r;
        int owner;

        snprintf(key, sizeof key, "key:%d", i);
        snprintf(want, sizeof want, "v%d", i);
        owner = redis_cluster_primary_of(&cl, redis_cluster_key_slot(key));
        c = redis_cluster_connect(&cl, owner);
        r = redis_cmd(c, "GET %s", key);
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s not on node %d", key,
                     owner);
        cr_expect_str_eq(r->str, want);
        freeReplyObject(r);
        redisFree(c);
    }
    /* No key made a detour: every command went to its primary. */
    for (i = 0; i < 3; i++)
        cr_expect_eq(errorstat(prim[i], "MOVED"), 0);
    cr_expect_eq(saga_redis_pending(t.r), 0);
    t_close(&t);
}

Test(redis_cluster, subcommands_route_by_the_key_after_them)
{
    int prim[REDIS_CLUSTER_NODES], i;
    char key[32];
    res_t x;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    t_open(&t, cl.node[prim[0]].url);
    for (i = 0; i < 3; i++) {
        key_on(key, sizeof key, "stream", prim[i]);
        x = cmd(&t, "XGROUP CREATE %s g 0 MKSTREAM", key);
        cr_assert_eq(x.type, REDIS_REPLY_STATUS, "XGROUP on node %d: %s",
                     prim[i], x.str);
        x = cmd(&t, "XINFO STREAM %s", key);
        cr_assert_eq(x.type, REDIS_REPLY_ARRAY, "XINFO: %s", x.str);
        x = cmd(&t, "OBJECT ENCODING %s", key);
        cr_assert_eq(x.type, REDIS_REPLY_STRING, "OBJECT: %s", x.str);
    }
    /* Straight to the key's node, never by way of a MOVED. */
    for (i = 0; i < 3; i++)
        cr_expect_eq(errorstat(prim[i], "MOVED"), 0, "node %d", prim[i]);
    t_close(&t);
}

Test(redis_cluster, a_key_elsewhere_in_the_command_is_found_by_moved)
{
    int prim[REDIS_CLUSTER_NODES], op_node, i;
    char tag[32], dst[48], src[48];
    res_t x;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    /* BITOP's first key is argv[2]: the client routes by "AND" and the
     * server's MOVED names the key's slot. */
    op_node = redis_cluster_primary_of(&cl, redis_cluster_key_slot("AND"));
    for (i = 0; i < 3 && prim[i] == op_node; i++)
        ;
    key_on(tag, sizeof tag, "", prim[i]);
    snprintf(dst, sizeof dst, "%s:dst", tag);
    snprintf(src, sizeof src, "%s:src", tag);
    t_open(&t, cl.node[prim[0]].url);
    cr_assert_eq(cmd(&t, "SET %s abc", src).type, REDIS_REPLY_STATUS);
    x = cmd(&t, "BITOP AND %s %s", dst, src);
    cr_assert_eq(x.type, REDIS_REPLY_INTEGER, "%s", x.str);
    cr_expect_eq(x.integer, 3);
    x = cmd(&t, "GET %s", dst);
    cr_expect_str_eq(x.str, "abc");
    t_close(&t);
}

Test(redis_cluster, pipelined_commands_keep_their_order_per_key)
{
    res_t x[200];
    t_t t;
    int i;

    t_open(&t, cl.node[0].url);
    memset(x, 0, sizeof x);
    for (i = 0; i < 200; i++)
        cr_assert_eq(saga_redis_command(t.r, on_res, &x[i], "RPUSH list:{%d} %d",
                                        i % 7, i), 0);
    cr_expect_eq(saga_redis_pending(t.r), 200);
    /* Different nodes answer in their own order: wait for each. */
    for (i = 0; i < 200; i++) {
        run_until(&t, res_done, &x[i], "an RPUSH");
        cr_assert_eq(x[i].type, REDIS_REPLY_INTEGER, "%s", x[i].str);
    }
    for (i = 0; i < 7; i++) {
        res_t l = cmd(&t, "LRANGE list:{%d} 0 1", i);
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", i);
        snprintf(b, sizeof b, "%d", i + 7);
        cr_assert_eq(l.elements, 2);
        cr_expect_str_eq(l.el[0], a);
        cr_expect_str_eq(l.el[1], b);
    }
    t_close(&t);
}

Test(redis_cluster, functions_go_to_every_primary)
{
    const char *lib = "#!lua name=tlib\n"
                      "redis.register_function('tver', function() return 'one' end)\n"
                      "redis.register_function('tget', function(k) "
                      "return redis.call('GET', k[1]) end)";
    const char *other = "#!lua name=tlib\n"
                        "redis.register_function('tver', function() return 'two' end)";
    int prim[REDIS_CLUSTER_NODES], i;
    char key[32];
    res_t x;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    t_open(&t, cl.node[prim[1]].url);
    x = cmd(&t, "FUNCTION LOAD %s", lib);
    cr_assert_eq(x.type, REDIS_REPLY_STRING, "%s", x.str);
    cr_expect_str_eq(x.str, "tlib");
    for (i = 0; i < 3; i++) {
        redisContext *c = redis_cluster_connect(&cl, prim[i]);
        redisReply *r = redis_cmd(c, "FCALL tver 0");
        cr_expect_eq(r->type, REDIS_REPLY_STRING, "primary %d lacks it", i);
        freeReplyObject(r);
        redisFree(c);
    }
    x = cmd(&t, "FCALL tver 0");
    cr_expect_str_eq(x.str, "one");
    /* With a key, one call on the key's primary. */
    for (i = 0; i < 3; i++) {
        key_on(key, sizeof key, "f", prim[i]);
        cr_assert_eq(cmd(&t, "SET %s val%d", key, i).type, REDIS_REPLY_STATUS);
        x = cmd(&t, "FCALL tget 1 %s", key);
        cr_assert_eq(x.type, REDIS_REPLY_STRING, "%s", x.str);
    }
    /* A primary that runs another version: the caller learns it. */
    {
        redisContext *c = redis_cluster_connect(&cl, prim[2]);
        freeReplyObject(redis_cmd(c, "FUNCTION LOAD REPLACE %s", other));
        redisFree(c);
    }
    x = cmd(&t, "FCALL tver 0");
    cr_expect_eq(x.type, REDIS_REPLY_ERROR);
    cr_expect(strncmp(x.str, "CLUSTERMIXED", 12) == 0, "%s", x.str);
    /* A failure on any primary is the caller's error. */
    x = cmd(&t, "FUNCTION LOAD %s", lib);
    cr_expect_eq(x.type, REDIS_REPLY_ERROR);
    cr_expect(strstr(x.str, "already exists") != NULL, "%s", x.str);
    t_close(&t);
}

/* Drives the migration of `slot` from node a to node b: both sides set. */
static void setslot_migrating(int slot, int a, int b)
{
    redisContext *ca = redis_cluster_connect(&cl, a);
    redisContext *cb = redis_cluster_connect(&cl, b);
    redisReply *r;

    r = redis_cmd(cb, "CLUSTER SETSLOT %d IMPORTING %s", slot, cl.node[a].id);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s", r->str);
    freeReplyObject(r);
    r = redis_cmd(ca, "CLUSTER SETSLOT %d MIGRATING %s", slot, cl.node[b].id);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s", r->str);
    freeReplyObject(r);
    redisFree(ca);
    redisFree(cb);
}

static void migrate_key(int a, int b, const char *key)
{
    redisContext *ca = redis_cluster_connect(&cl, a);
    redisReply *r = redis_cmd(ca, "MIGRATE 127.0.0.1 %d %s 0 5000",
                              cl.node[b].port, key);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "MIGRATE %s: %s", key, r->str);
    freeReplyObject(r);
    redisFree(ca);
}

/* Ends the migration: every node learns that b serves the slot. */
static void setslot_node(int slot, int b)
{
    int i;

    for (i = 0; i < cl.nnodes; i++) {
        redisContext *c = redis_cluster_connect(&cl, i);
        redisReply *r;
        if (c == NULL)
            continue;
        r = redis_cmd(c, "CLUSTER SETSLOT %d NODE %s", slot, cl.node[b].id);
        freeReplyObject(r);
        redisFree(c);
    }
}

Test(redis_cluster, moved_updates_the_map_once)
{
    int prim[REDIS_CLUSTER_NODES], a, b, slot, i;
    long long moved;
    char key[32];
    res_t x;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    a = prim[0];
    b = prim[1];
    key_on(key, sizeof key, "m", a);
    slot = redis_cluster_key_slot(key);
    t_open(&t, cl.node[a].url);
    cr_assert_eq(cmd(&t, "SET %s before", key).type, REDIS_REPLY_STATUS);
    /* The slot moves to b behind the client's back. */
    setslot_migrating(slot, a, b);
    migrate_key(a, b, key);
    setslot_node(slot, b);
    moved = errorstat(a, "MOVED");
    x = cmd(&t, "GET %s", key);
    cr_assert_eq(x.type, REDIS_REPLY_STRING, "%s", x.str);
    cr_expect_str_eq(x.str, "before");
    cr_expect_eq(errorstat(a, "MOVED"), moved + 1);
    for (i = 0; i < 5; i++) {
        x = cmd(&t, "SET %s after%d", key, i);
        cr_assert_eq(x.type, REDIS_REPLY_STATUS, "%s", x.str);
    }
    /* The map learnt it: no more detours. */
    cr_expect_eq(errorstat(a, "MOVED"), moved + 1);
    {
        redisContext *c = redis_cluster_connect(&cl, b);
        redisReply *r = redis_cmd(c, "GET %s", key);
        cr_expect_str_eq(r->str, "after4");
        freeReplyObject(r);
        redisFree(c);
    }
    t_close(&t);
}

Test(redis_cluster, ask_follows_a_migrating_slot_without_changing_the_map)
{
    int prim[REDIS_CLUSTER_NODES], a, b, slot, i;
    char moved_key[40], stays[40], fresh[40], tag[32];
    long long asks;
    res_t x;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    a = prim[2];
    b = prim[0];
    key_on(tag, sizeof tag, "", a);  /* "{kN}": a tag served by a */
    snprintf(moved_key, sizeof moved_key, "%s:moved", tag);
    snprintf(stays, sizeof stays, "%s:stays", tag);
    snprintf(fresh, sizeof fresh, "%s:fresh", tag);
    slot = redis_cluster_key_slot(tag);
    t_open(&t, cl.node[a].url);
    cr_assert_eq(cmd(&t, "SET %s m", moved_key).type, REDIS_REPLY_STATUS);
    cr_assert_eq(cmd(&t, "SET %s s", stays).type, REDIS_REPLY_STATUS);
    setslot_migrating(slot, a, b);
    migrate_key(a, b, moved_key);
    asks = errorstat(a, "ASK");
    for (i = 0; i < 3; i++) {
        x = cmd(&t, "GET %s", moved_key);
        cr_assert_eq(x.type, REDIS_REPLY_STRING, "%s", x.str);
        cr_expect_str_eq(x.str, "m");
    }
    /* Each one asked a again: an ASK does not change the map. */
    cr_expect_eq(errorstat(a, "ASK"), asks + 3);
    x = cmd(&t, "GET %s", stays);
    cr_expect_str_eq(x.str, "s");
    /* A new key of a migrating slot is created on the importing node. */
    x = cmd(&t, "SET %s f", fresh);
    cr_assert_eq(x.type, REDIS_REPLY_STATUS, "%s", x.str);
    {
        redisContext *c = redis_cluster_connect(&cl, b);
        redisReply *r;
        freeReplyObject(redis_cmd(c, "ASKING"));
        r = redis_cmd(c, "GET %s", fresh);
        cr_expect_eq(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
        redisFree(c);
    }
    cr_expect_eq(errorstat(a, "MOVED"), 0);
    t_close(&t);
}

typedef struct finish_s {
    int slot, a, b;
    char key[40];
    bool done;
} finish_t;

static void on_finish_migration(uv_timer_t *h)
{
    finish_t *f = h->data;

    migrate_key(f->a, f->b, f->key);
    setslot_node(f->slot, f->b);
    f->done = true;
}

Test(redis_cluster, tryagain_is_retried_until_the_migration_ends)
{
    int prim[REDIS_CLUSTER_NODES], a, b;
    char tag[32], k1[40];
    long long tries;
    finish_t f;
    uv_timer_t timer;
    res_t x;
    t_t t;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    a = prim[1];
    b = prim[2];
    key_on(tag, sizeof tag, "", a);
    snprintf(k1, sizeof k1, "%s:1", tag);
    snprintf(f.key, sizeof f.key, "%s:2", tag);
    f.slot = redis_cluster_key_slot(tag);
    f.a = a;
    f.b = b;
    f.done = false;
    t_open(&t, cl.node[a].url);
    cr_assert_eq(cmd(&t, "MSET %s one %s two", k1, f.key).type,
                 REDIS_REPLY_STATUS);
    setslot_migrating(f.slot, a, b);
    migrate_key(a, b, k1);  /* the slot's keys are split: TRYAGAIN */
    tries = errorstat(a, "TRYAGAIN");
    /* The test ends the migration 300 ms later, from the loop. */
    uv_timer_init(&t.loop, &timer);
    timer.data = &f;
    uv_timer_start(&timer, on_finish_migration, 300, 0);
    memset(&x, 0, sizeof x);
    cr_assert_eq(saga_redis_command(t.r, on_res, &x, "MGET %s %s", k1, f.key),
                 0);
    run_until(&t, res_done, &x, "MGET");
    cr_assert(f.done, "answered before the migration ended: %s", x.str);
    cr_assert_eq(x.type, REDIS_REPLY_ARRAY, "%s", x.str);
    cr_expect_str_eq(x.el[0], "one");
    cr_expect_str_eq(x.el[1], "two");
    cr_expect_gt(errorstat(a, "TRYAGAIN"), tries);
    uv_close((uv_handle_t *)&timer, NULL);
    t_close(&t);
}

static bool was_lost_and_ready(t_t *t, void *arg)
{
    (void)arg;
    return t->lost > 0 && saga_redis_ready(t->r);
}

Test(redis_cluster, a_lost_primary_is_replaced_by_its_replica)
{
    int victim, promoted, i, slot;
    char key[32];
    res_t inflight[50], x;
    t_t t;

    victim = redis_cluster_primary_of(&cl, 0);
    key_on(key, sizeof key, "f", victim);
    slot = redis_cluster_key_slot(key);
    /* Connect through another node: the victim is not the seed. */
    t_open(&t, cl.node[victim == 0 ? 1 : 0].url);
    cr_assert_eq(cmd(&t, "SET %s v0", key).type, REDIS_REPLY_STATUS);
    {
        redisContext *c = redis_cluster_connect(&cl, victim);
        /* WAIT: the replica has v0 before the primary dies. WAIT counts
         * only the writes of its own connection (one that wrote nothing
         * returns at once), so v0 is written again on this one first. */
        redisReply *w = redis_cmd(c, "SET %s v0", key);
        cr_assert(w != NULL && w->type == REDIS_REPLY_STATUS);
        freeReplyObject(w);
        cr_assert_eq(redis_cmd_int(c, "WAIT 1 5000"), 1);
        redisFree(c);
    }
    memset(inflight, 0, sizeof inflight);
    for (i = 0; i < 50; i++)
        cr_assert_eq(saga_redis_command(t.r, on_res, &inflight[i], "INCR n%s",
                                        key), 0);
    promoted = redis_cluster_kill_primary(&cl, victim, 30000);
    cr_assert_geq(promoted, 0);
    run_until(&t, was_lost_and_ready, NULL, "LOST then READY");
    for (i = 0; i < 50; i++) {
        run_until(&t, res_done, &inflight[i], "an in-flight INCR");
        cr_expect(inflight[i].null || inflight[i].type == REDIS_REPLY_INTEGER,
                  "INCR %d: %s", i, inflight[i].str);
    }
    x = cmd(&t, "GET %s", key);
    cr_assert_eq(x.type, REDIS_REPLY_STRING, "%s", x.str);
    cr_expect_str_eq(x.str, "v0");
    x = cmd(&t, "SET %s v1", key);
    cr_assert_eq(x.type, REDIS_REPLY_STATUS, "%s", x.str);
    cr_expect_eq(redis_cluster_primary_of(&cl, slot), promoted);
    {
        redisContext *c = redis_cluster_connect(&cl, promoted);
        redisReply *r = redis_cmd(c, "GET %s", key);
        cr_expect_str_eq(r->str, "v1");
        freeReplyObject(r);
        redisFree(c);
    }
    t_close(&t);
}

Test(redis_cluster, close_with_commands_in_flight)
{
    res_t x[100];
    t_t t;
    int i;

    t_open(&t, cl.node[3].url);
    memset(x, 0, sizeof x);
    for (i = 0; i < 100; i++)
        cr_assert_eq(saga_redis_command(t.r, on_res, &x[i], "INCR c{%d}", i),
                     0);
    t_close(&t);
    for (i = 0; i < 100; i++)
        cr_expect(x[i].done, "command %d never answered", i);
}

Test(redis_cluster, unix_socket_seed)
{
    t_t t;
    res_t x;

    t_open(&t, cl.node[1].srv.url);
    x = cmd(&t, "SET %s %s", "over", "unix");
    cr_assert_eq(x.type, REDIS_REPLY_STATUS, "%s", x.str);
    x = cmd(&t, "GET %s", "over");
    cr_expect_str_eq(x.str, "unix");
    t_close(&t);
}

Test(redis_cluster, a_single_redis_is_not_a_cluster)
{
    redis_server_t s;
    saga_redis_url_t u;
    char err[256];
    t_t t;

    cr_assert_eq(redis_server_start(&s, NULL), 0);
    memset(&t, 0, sizeof t);
    cr_assert_eq(uv_loop_init(&t.loop), 0);
    uv_timer_init(&t.loop, &t.tick);
    uv_timer_start(&t.tick, on_tick, 10, 10);
    cr_assert_eq(saga_redis_url_parse(s.url, &u, err, sizeof err), 0);
    t.r = saga_redis_new(&t.loop, &u, NULL, on_event, &t);
    saga_redis_url_close(&u);
    cr_assert_eq(saga_redis_start(t.r), 0);
    run_until(&t, is_ready, NULL, "READY");
    cr_expect_not(saga_redis_is_cluster(t.r));
    cr_expect_eq(cmd(&t, "SET a b").type, REDIS_REPLY_STATUS);
    t_close(&t);
    redis_server_stop(&s);
}
