/*
 * test_shard_layout.c -- the shards of the global keys on a loopback Redis
 * Cluster (3 primaries, 3 replicas): what the first engine records and the
 * others read, the index and owners' sets of a saga in its shard, the list
 * of unfinished sagas over every shard, the intake read from every shard;
 * and one shard, the keys of before, on a single Redis.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "loop_wait.h"
#include "redis_cluster.h"
#include "redis_server.h"
#include "saga/errors.h"
#include "saga/store.h"
#include "store/intake.h"
#include "store/shards.h"
#include "store/store_redis.h"

static uv_loop_t loop;
static uv_timer_t tick;
static redis_cluster_t RC;
static int ready_calls, ready_status, closed;
static char ready_msg[512];

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    (void)data;
    ready_calls++;
    ready_status = status;
    snprintf(ready_msg, sizeof(ready_msg), "%s", msg ? msg : "");
}

static void on_tick(uv_timer_t *t) { (void)t; }

static void on_closed(void *data) {
    (void)data;
    closed++;
}

/* A store on `url` asking for `shards`; waits for its ready callback (the
 * status is left in ready_status). */
static saga_store_t *open_store(const char *url, unsigned shards) {
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    saga_store_redis_options_t o;
    memset(&o, 0, sizeof(o));
    o.shards = shards;
    ready_calls = 0;
    saga_store_t *s = saga_store_redis_new(&loop, &u, &o, on_ready, NULL);
    saga_redis_url_close(&u);
    cr_assert_not_null(s);
    cr_assert(loop_wait(&loop, &ready_calls, 1, 20000), "no ready callback");
    return s;
}

static void close_store(saga_store_t *s) {
    closed = 0;
    s->ops->close(s, on_closed, NULL);
    cr_assert(loop_wait(&loop, &closed, 1, 10000));
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
}

static void teardown(void) {
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
    redis_cluster_stop(&RC);
}

TestSuite(shard_layout, .init = setup, .fini = teardown, .timeout = 180);

static redisReply *ccmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static redisReply *ccmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_cluster_vcmd(&RC, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "no node answered %s", fmt);
    return r;
}

/* `cmd` KEY [MEMBER]: an integer reply. */
static long long ccmd_int(const char *cmd, const char *key, const char *member) {
    redisReply *r = member ? ccmd("%s %s %s", cmd, key, member) : ccmd("%s %s", cmd, key);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s %s: %s", cmd, key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not an integer");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

Test(shard_layout, the_first_engine_records_them_and_the_others_read_them) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    saga_store_t *a = open_store(RC.node[0].url, 6);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    const saga_shards_t *sh = saga_store_redis_shards(a);
    cr_assert_not_null(sh);
    cr_assert_eq(sh->k, 6);
    /* Two shards on each primary (each holds a third of the slots). */
    int per_primary[REDIS_CLUSTER_NODES] = {0};
    for (unsigned s = 0; s < sh->k; s++) {
        char key[64];
        saga_shards_key(sh, s, SAGA_SHARD_SAGAS, NULL, key, sizeof(key));
        int p = redis_cluster_primary_of(&RC, redis_cluster_key_slot(key));
        cr_assert_geq(p, 0);
        per_primary[p]++;
    }
    int primaries[REDIS_CLUSTER_NODES];
    int np = redis_cluster_primaries(&RC, primaries);
    cr_assert_eq(np, 3);
    for (int i = 0; i < np; i++)
        cr_assert_eq(per_primary[primaries[i]], 2, "primary %d holds %d shards", primaries[i],
                     per_primary[primaries[i]]);
    redisReply *r = ccmd("GET %s", SAGA_KEY_SHARDS);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    char text[SAGA_SHARDS_MAX * SAGA_SHARD_TAG_MAX];
    saga_shards_format(sh, text, sizeof(text));
    cr_assert_str_eq(r->str, text);
    freeReplyObject(r);

    /* Another engine asking for another number uses what is recorded. */
    saga_store_t *b = open_store(RC.node[4].url, 3);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    cr_assert_eq(saga_store_redis_shards(b)->k, 6);
    cr_assert_str_eq(saga_store_redis_shards(b)->tag[5], sh->tag[5]);
    close_store(b);
    close_store(a);

    /* A recorded value that is not a list of tags: the start fails and
     * says where; nothing is overwritten. */
    freeReplyObject(ccmd("SET %s %s", SAGA_KEY_SHARDS, "idx:0 {idx:1}"));
    saga_store_t *c = open_store(RC.node[1].url, 0);
    cr_assert_eq(ready_status, SAGA_ESTORE);
    cr_assert(strstr(ready_msg, "saga:{idx}:shards is not a list of shard tags: byte 7") != NULL,
              "%s", ready_msg);
    close_store(c);
    r = ccmd("GET %s", SAGA_KEY_SHARDS);
    cr_assert_str_eq(r->str, "idx:0 {idx:1}");
    freeReplyObject(r);

    /* A cluster that holds sagas of the layout before shards keeps one. */
    freeReplyObject(ccmd("DEL %s", SAGA_KEY_SHARDS));
    freeReplyObject(ccmd("ZADD %s -1 old-saga", "saga:{idx}:sagas"));
    saga_store_t *d = open_store(RC.node[2].url, 8);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    cr_assert_eq(saga_store_redis_shards(d)->k, 1);
    cr_assert_str_eq(saga_store_redis_shards(d)->tag[0], "idx");
    r = ccmd("GET %s", SAGA_KEY_SHARDS);
    cr_assert_str_eq(r->str, "idx");
    freeReplyObject(r);
    close_store(d);

    /* Unasked, a fresh cluster gets 4 shards per primary. */
    freeReplyObject(ccmd("DEL %s", SAGA_KEY_SHARDS));
    freeReplyObject(ccmd("DEL %s", "saga:{idx}:sagas"));
    saga_store_t *e = open_store(RC.node[3].url, 0);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    cr_assert_eq(saga_store_redis_shards(e)->k, 12);
    close_store(e);
}

typedef struct wres_s {
    int calls;
    int status;
} wres_t;

static void on_write(int status, unsigned signals, void *data) {
    (void)signals;
    wres_t *r = data;
    r->calls++;
    r->status = status;
}

static void write_one(saga_store_t *s, const char *id, uint64_t seq, unsigned flags) {
    static saga_kv_t f = {"state", 5, "running", 7};
    static saga_event_t ev = {"saga.created", NULL, NULL, 0, NULL, 0};
    saga_store_write_t w = {id, seq, 1, flags, "w1", &f, 1, &ev, 1, 0};
    wres_t r = {0, 0};
    cr_assert_eq(s->ops->write(s, &w, on_write, &r), 0);
    cr_assert(loop_wait(&loop, &r.calls, 1, 20000), "no answer to the write of %s", id);
    cr_assert_eq(r.status, 0, "%s: %s", id, saga_strerror(r.status));
}

static int listed_calls;
static size_t listed_n;
static char listed[64][32];

static void on_list(int status, const char *const *ids, size_t n, void *data) {
    (void)data;
    cr_assert_eq(status, 0, "%s", saga_strerror(status));
    listed_n = n;
    for (size_t i = 0; i < n && i < 64; i++)
        snprintf(listed[i], sizeof(listed[i]), "%s", ids[i]);
    listed_calls++;
}

static bool was_listed(const char *id) {
    for (size_t i = 0; i < listed_n; i++)
        if (strcmp(listed[i], id) == 0)
            return true;
    return false;
}

static int reqs_calls, reqs_status;
static size_t reqs_n;
static char reqs_id[16][32], reqs_entry[16][64];
static unsigned reqs_shard[16];

static void on_requests(int status, const saga_intake_request_t *reqs, size_t n,
                        const char *why, void *data) {
    (void)data;
    reqs_status = status;
    cr_assert_eq(status, 0, "%s", why ? why : "");
    reqs_n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        snprintf(reqs_id[i], sizeof(reqs_id[i]), "%s", reqs[i].id ? reqs[i].id : "");
        snprintf(reqs_entry[i], sizeof(reqs_entry[i]), "%s", reqs[i].entry);
        reqs_shard[i] = reqs[i].shard;
    }
    reqs_calls++;
}

static int done_calls, done_status;

static void on_done(int status, const char *why, void *data) {
    (void)data;
    (void)why;
    done_status = status;
    done_calls++;
}

static int intake_events;

static void on_intake_event(saga_intake_t *in, saga_intake_event_t ev, const char *errstr,
                            void *data) {
    (void)in;
    (void)errstr;
    (void)data;
    if (ev == SAGA_INTAKE_READY)
        intake_events++;
}

Test(shard_layout, a_saga_lives_in_its_shard_and_the_intake_reads_them_all) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    saga_store_t *s = open_store(RC.node[0].url, 4);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    const saga_shards_t *sh = saga_store_redis_shards(s);
    cr_assert_eq(sh->k, 4);

    /* Twelve sagas: created (unfinished, in w1's set), then half finished. */
    char ids[12][16];
    bool used[4] = {false};
    for (int i = 0; i < 12; i++) {
        snprintf(ids[i], sizeof(ids[i]), "sh-%d", i);
        used[saga_shards_of(sh, ids[i])] = true;
        write_one(s, ids[i], 1, SAGA_WRITE_CREATE);
    }
    for (unsigned k = 0; k < 4; k++)
        cr_assert(used[k], "twelve ids leave shard %u empty: pick others", k);
    for (int i = 0; i < 12; i++) {
        char sagas[64], owned[64], other[64];
        unsigned mine = saga_shards_of(sh, ids[i]);
        saga_shards_key(sh, mine, SAGA_SHARD_SAGAS, NULL, sagas, sizeof(sagas));
        saga_shards_key(sh, mine, SAGA_SHARD_OWNED, "w1", owned, sizeof(owned));
        saga_shards_key(sh, (mine + 1) % 4, SAGA_SHARD_SAGAS, NULL, other, sizeof(other));
        redisReply *r = ccmd("ZSCORE %s %s", sagas, ids[i]);
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s not in %s", ids[i], sagas);
        cr_assert_lt(atoll(r->str), 0, "unfinished: a negative score");
        freeReplyObject(r);
        cr_assert_eq(ccmd_int("SISMEMBER", owned, ids[i]), 1, "%s not in %s", ids[i], owned);
        r = ccmd("ZSCORE %s %s", other, ids[i]);
        cr_assert_eq(r->type, REDIS_REPLY_NIL, "%s in another shard too", ids[i]);
        freeReplyObject(r);
    }
    cr_assert_eq(ccmd_int("EXISTS", "saga:{idx}:sagas", NULL), 0, "nothing in {idx} any more");
    for (int i = 0; i < 12; i += 2)
        write_one(s, ids[i], 2, SAGA_WRITE_TERMINAL);

    /* The unfinished sagas of every shard, each once. */
    listed_calls = 0;
    cr_assert_eq(s->ops->list_unfinished(s, on_list, NULL), 0);
    cr_assert(loop_wait(&loop, &listed_calls, 1, 10000));
    cr_assert_eq(listed_n, 6);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(was_listed(ids[i]), i % 2 == 1, "%s", ids[i]);

    /* The intake: one stream per shard, every one read. */
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(RC.node[0].url, &u, err, sizeof(err)), 0);
    saga_intake_t *in = NULL;
    cr_assert_eq(saga_intake_new(&loop, s, &u, "w1", on_intake_event, NULL, &in, err,
                                 sizeof(err)), 0, "%s", err);
    saga_redis_url_close(&u);
    cr_assert_eq(saga_intake_shards(in), 4);
    cr_assert_eq(saga_intake_read_new(in, 4, 10, 10, on_requests, NULL), -EINVAL);
    done_calls = 0;
    cr_assert_eq(saga_intake_create_group(in, on_done, NULL), 0);
    cr_assert(loop_wait(&loop, &done_calls, 1, 10000));
    cr_assert_eq(done_status, 0);
    intake_events = 0;
    cr_assert_eq(saga_intake_connect(in), 0);
    cr_assert(loop_wait(&loop, &intake_events, 4, 20000), "every shard's connection ready");
    for (unsigned k = 0; k < 4; k++) {
        char stream[64];
        saga_shards_key(sh, k, SAGA_SHARD_INTAKE, NULL, stream, sizeof(stream));
        char id[16], hash[65];
        snprintf(id, sizeof(id), "req-%u", k);
        memset(hash, 'a', 64);
        hash[64] = '\0';
        freeReplyObject(ccmd("XADD %s * id %s name demo hash %s input {} ts 1", stream, id, hash));
    }
    for (unsigned k = 0; k < 4; k++) {
        cr_assert(saga_intake_ready(in, k));
        reqs_calls = 0;
        cr_assert_eq(saga_intake_read_new(in, k, 10, 2000, on_requests, NULL), 0);
        cr_assert(loop_wait(&loop, &reqs_calls, 1, 10000));
        cr_assert_eq(reqs_n, 1, "shard %u", k);
        char want[16];
        snprintf(want, sizeof(want), "req-%u", k);
        cr_assert_str_eq(reqs_id[0], want);
        cr_assert_eq(reqs_shard[0], k);
        const char *e = reqs_entry[0];
        done_calls = 0;
        cr_assert_eq(saga_intake_done_many(in, k, &e, 1, on_done, NULL), 0);
        cr_assert(loop_wait(&loop, &done_calls, 1, 10000));
        cr_assert_eq(done_status, 0);
        char stream[64];
        saga_shards_key(sh, k, SAGA_SHARD_INTAKE, NULL, stream, sizeof(stream));
        cr_assert_eq(ccmd_int("XLEN", stream, NULL), 0, "%s acknowledged and deleted", stream);
    }
    closed = 0;
    saga_intake_close(in, on_closed, NULL);
    cr_assert(loop_wait(&loop, &closed, 1, 10000));
    close_store(s);
}

Test(shard_layout, a_single_redis_has_one_shard_and_records_nothing) {
    redis_server_t srv;
    cr_assert_eq(redis_server_start(&srv, NULL), 0);
    saga_store_t *s = open_store(srv.url, 8);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    cr_assert_eq(saga_store_redis_shards(s)->k, 1);
    cr_assert_str_eq(saga_store_redis_shards(s)->tag[0], "idx");
    write_one(s, "single-1", 1, SAGA_WRITE_CREATE);
    redisContext *c = redisConnectUnix(srv.socket);
    redisReply *r = redisCommand(c, "ZSCORE saga:{idx}:sagas single-1");
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "the index of before");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS " SAGA_KEY_SHARDS);
    cr_assert_eq(r->integer, 0);
    freeReplyObject(r);
    redisFree(c);
    close_store(s);
    redis_server_stop(&srv);
}

/* The GC takes the shards of the index in turn, one call each (an idle
 * engine asks one shard per second, not all of them): finished sagas
 * whose retention ran out are removed from every shard, and a shard's
 * backlog larger than one call (32) drains by itself. The retention "runs
 * out" by moving the finished sagas' index scores (their expiry) into the
 * past. */
Test(shard_layout, the_gc_trims_every_shard_in_turn) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    saga_store_t *s = open_store(RC.node[0].url, 4);
    cr_assert_eq(ready_status, 0, "%s", ready_msg);
    const saga_shards_t *sh = saga_store_redis_shards(s);
    cr_assert_eq(sh->k, 4);
    /* 40 sagas on shard 0 (more than a call takes), 3 on each other one */
    enum { N = 49 };
    static char ids[N][16];
    int per[4] = {0}, n = 0;
    for (int i = 0; n < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "gc-%d", i);
        unsigned k = saga_shards_of(sh, id);
        if (per[k] >= (k == 0 ? 40 : 3))
            continue;
        per[k]++;
        snprintf(ids[n++], sizeof(ids[0]), "%s", id);
    }
    for (int i = 0; i < N; i++) {
        write_one(s, ids[i], 1, SAGA_WRITE_CREATE);
        write_one(s, ids[i], 2, SAGA_WRITE_TERMINAL);
    }
    saga_store_redis_stats_t before;
    saga_store_redis_stats(s, &before);
    long long past = (long long)time(NULL) * 1000 - 1000;
    for (int i = 0; i < N; i++) {
        char sagas[64];
        saga_shards_key(sh, saga_shards_of(sh, ids[i]), SAGA_SHARD_SAGAS, NULL, sagas,
                        sizeof(sagas));
        redisReply *r = ccmd("ZADD %s XX CH %lld %s", sagas, past, ids[i]);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        cr_assert_eq(r->integer, 1, "%s was not in %s", ids[i], sagas);
        freeReplyObject(r);
    }
    /* Every shard is asked within 4 s (one a second); 15 s of margin. */
    saga_store_redis_stats_t now = before;
    static int never;
    for (int tries = 0; tries < 200 && now.gc_removed - before.gc_removed < N; tries++) {
        loop_wait(&loop, &never, 1, 100);
        saga_store_redis_stats(s, &now);
    }
    cr_assert_eq(now.gc_removed - before.gc_removed, N, "removed %llu of %d",
                 (unsigned long long)(now.gc_removed - before.gc_removed), N);
    for (unsigned k = 0; k < 4; k++) {
        char sagas[64];
        saga_shards_key(sh, k, SAGA_SHARD_SAGAS, NULL, sagas, sizeof(sagas));
        cr_assert_eq(ccmd_int("ZCARD", sagas, NULL), 0, "%s trimmed", sagas);
    }
    close_store(s);
}
