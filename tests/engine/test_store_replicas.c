/*
 * test_store_replicas.c -- the Redis store's min_replicas on a loopback
 * Redis Cluster (3 primaries, 3 replicas): a write is acknowledged only
 * once a WAIT after it confirms a replica has it; with the replica of its
 * primary stopped (SIGSTOP) the write is held, WAIT asked again, and it is
 * never acknowledged until the replica is back. AUTO turns it on on a cluster
 * with replicas and off on a single Redis. And the index of sagas, kept on
 * another primary than the records: a finish moves it only once the
 * finish is written (and confirmed), never for a refused one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "loop_wait.h"
#include "test_poll.h"
#include "redis_cluster.h"
#include "redis_server.h"
#include "saga/errors.h"
#include "saga/store.h"
#include "store/store_redis.h"

static uv_loop_t loop;
static uv_timer_t tick;
static redis_cluster_t RC;
static saga_store_t *S;
static int ready_calls, ready_status, closed;

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    (void)data;
    ready_calls++;
    ready_status = status;
    if (status != 0)
        fprintf(stderr, "store: %s\n", msg);
}

static void on_tick(uv_timer_t *t) { (void)t; }

static saga_store_t *open_store(const char *url, int min_replicas) {
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    saga_store_redis_options_t o;
    memset(&o, 0, sizeof(o));
    o.min_replicas = min_replicas;
    o.wait_timeout_ms = 200;
    /* One shard of the global keys: the index on one primary, which the
     * finish tests keep apart from the record's (a list of K shards would
     * also ask the record's primary, paused there). */
    o.shards = 1;
    ready_calls = 0;
    saga_store_t *s = saga_store_redis_new(&loop, &u, &o, on_ready, NULL);
    saga_redis_url_close(&u);
    cr_assert_not_null(s);
    cr_assert(loop_wait(&loop, &ready_calls, 1, 20000), "store not ready");
    cr_assert_eq(ready_status, 0);
    return s;
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
}

static void on_closed(void *data) {
    (void)data;
    closed++;
}

static void teardown(void) {
    if (S != NULL) {
        S->ops->close(S, on_closed, NULL);
        S = NULL;
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
    for (int i = 0; i < RC.nnodes; i++)
        redis_server_kill(&RC.node[i].srv, SIGCONT);
    redis_cluster_stop(&RC);
}

TestSuite(store_replicas, .init = setup, .fini = teardown, .timeout = 120);

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

/* Starts the create of saga `id` (one field, one event). */
static void create(const char *id, wres_t *r) {
    static saga_kv_t f = {"state", 5, "running", 7};
    static saga_event_t ev = {"saga.created", NULL, NULL, 0, NULL, 0};
    static saga_store_write_t w;
    w = (saga_store_write_t){id, 1, 0, SAGA_WRITE_CREATE, "tester", &f, 1, &ev, 1, 0};
    memset(r, 0, sizeof(*r));
    cr_assert_eq(S->ops->write(S, &w, on_write, r), 0);
}

/* The replica of the primary serving saga `id`. */
static int replica_of_saga(const char *id) {
    char key[128];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    int primary = redis_cluster_primary_of(&RC, redis_cluster_key_slot(key));
    cr_assert_geq(primary, 0);
    redisContext *c = redis_cluster_connect(&RC, primary);
    redisReply *r = redisCommand(c, "INFO replication");
    cr_assert_not_null(r);
    const char *p = strstr(r->str, "slave0:ip=");
    cr_assert_not_null(p, "primary %d has no replica", primary);
    const char *port = strstr(p, "port=");
    int replica = -1;
    for (int i = 0; i < RC.nnodes; i++)
        if (RC.node[i].port == atoi(port + 5))
            replica = i;
    freeReplyObject(r);
    redisFree(c);
    cr_assert_geq(replica, 0);
    return replica;
}

Test(store_replicas, a_write_waits_for_its_replica) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    S = open_store(RC.node[0].url, 1);
    wres_t r;
    create("rep-1", &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000), "no answer with every replica up");
    cr_assert_eq(r.status, 0);

    /* Its primary's replica stops: the write is applied on the primary but
     * never acknowledged while no replica confirms it. */
    int replica = replica_of_saga("rep-2");
    saga_store_redis_stats_t st;
    redis_server_kill(&RC.node[replica].srv, SIGSTOP);
    create("rep-2", &r);
    cr_assert_not(loop_wait(&loop, &r.calls, 1, 1500), "acknowledged while its replica was stopped");
    saga_store_redis_stats(S, &st);
    cr_assert_gt(st.waits_short, 1, "WAIT is asked again while the replica is away");
    redis_server_kill(&RC.node[replica].srv, SIGCONT);
    cr_assert(loop_wait(&loop, &r.calls, 1, 15000), "no answer once the replica is back");
    cr_assert_eq(r.status, 0, "the resent create is recognised as applied: %s",
                 saga_strerror(r.status));
    saga_store_redis_stats(S, &st);
    cr_assert_eq(st.min_replicas, 1);
    cr_assert_gt(st.waits, 0);
}

Test(store_replicas, auto_is_one_on_a_cluster_with_replicas) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    S = open_store(RC.node[1].url, SAGA_STORE_MIN_REPLICAS_AUTO);
    saga_store_redis_stats_t st;
    saga_store_redis_stats(S, &st);
    cr_assert_eq(st.min_replicas, 1);
    wres_t r;
    create("auto-1", &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000));
    cr_assert_eq(r.status, 0);
    saga_store_redis_stats(S, &st);
    cr_assert_gt(st.waits, 0);
}

Test(store_replicas, auto_is_zero_on_a_single_redis) {
    redis_server_t srv;
    cr_assert_eq(redis_server_start(&srv, NULL), 0);
    S = open_store(srv.url, SAGA_STORE_MIN_REPLICAS_AUTO);
    saga_store_redis_stats_t st;
    saga_store_redis_stats(S, &st);
    cr_assert_eq(st.min_replicas, 0);
    wres_t r;
    create("single-1", &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000));
    cr_assert_eq(r.status, 0);
    saga_store_redis_stats(S, &st);
    cr_assert_eq(st.waits, 0);
    S->ops->close(S, on_closed, NULL);
    S = NULL;
    uv_run(&loop, UV_RUN_NOWAIT);
    loop_wait(&loop, &closed, 1, 5000);
    redis_server_stop(&srv);
}

typedef struct ids_res_s {
    int calls;
    int status;
    bool listed;         /* the id looked for was among the unfinished */
    const char *id;
} ids_res_t;

static void on_ids(int status, const char *const *ids, size_t n, void *data) {
    ids_res_t *r = data;
    r->calls++;
    r->status = status;
    r->listed = false;
    for (size_t i = 0; status == 0 && i < n; i++)
        r->listed = r->listed || strcmp(ids[i], r->id) == 0;
}

/* Whether the store's list of unfinished sagas (read from the index, on
 * the primary of {idx}, after every request made before it on the same
 * connection) shows saga `id`. */
static bool listed_unfinished(const char *id) {
    ids_res_t r = {.id = id};
    cr_assert_eq(S->ops->list_unfinished(S, on_ids, &r), 0);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000), "the list was not answered");
    cr_assert_eq(r.status, 0);
    return r.listed;
}

/* Starts the finish of saga `id` (seq `seq`, state completed). */
static void finish_saga(const char *id, uint64_t seq, wres_t *r) {
    static saga_kv_t f = {"state", 5, "completed", 9};
    static saga_event_t ev = {"saga.completed", NULL, NULL, 0, NULL, 0};
    static saga_store_write_t w;
    w = (saga_store_write_t){id, seq, 0, SAGA_WRITE_TERMINAL, "tester", &f, 1, &ev, 1, 0};
    memset(r, 0, sizeof(*r));
    cr_assert_eq(S->ops->write(S, &w, on_write, r), 0);
}

/* The node serving `key`'s slot now. */
static int primary_of_key(const char *key) {
    int i = redis_cluster_primary_of(&RC, redis_cluster_key_slot(key));
    cr_assert_geq(i, 0, "no primary serves %s", key);
    return i;
}

/* The index (saga:{idx}:sagas) lives on another primary than the records:
 * a finish's index update, sent along with the write, reached it whatever
 * became of the write. A refused finish (a stale seq) moved the saga to the
 * finished part of the index, and a finish held up on its own primary was
 * listed finished while its record still said running (a worker killed
 * then leaves a running saga that no takeover and no sweep ever finds). */
static void finish_index_body(int min_replicas) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    S = open_store(RC.node[0].url, min_replicas);
    int idx = primary_of_key("saga:{idx}:sagas");
    char id[32];
    /* A saga whose record is on another primary than the index. */
    for (int n = 0;; n++) {
        char key[64];
        snprintf(id, sizeof(id), "fin-%d", n);
        snprintf(key, sizeof(key), "saga:{%s}", id);
        if (primary_of_key(key) != idx)
            break;
    }
    char key[64];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    int home = primary_of_key(key);
    wres_t r;
    create(id, &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000), "the create was not answered");
    cr_assert_eq(r.status, 0);
    cr_assert(listed_unfinished(id), "a created saga is listed unfinished");

    /* Refused (it expects seq 5): the index stays as it is. */
    finish_saga(id, 6, &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000), "the refused finish was not answered");
    cr_assert_eq(r.status, SAGA_ECONFLICT, "%s", saga_strerror(r.status));
    cr_assert(listed_unfinished(id), "a refused finish moved the saga out of the unfinished");

    /* The record's primary holds writes: the finish waits there, and the
     * index must not say finished meanwhile. The list goes to the index's
     * primary after the finish (and whatever it sent there). */
    redisContext *c = redis_cluster_connect(&RC, home);
    cr_assert_not_null(c);
    redisReply *p = redisCommand(c, "CLIENT PAUSE 60000 WRITE");
    cr_assert(p != NULL && p->type == REDIS_REPLY_STATUS, "CLIENT PAUSE refused");
    freeReplyObject(p);
    finish_saga(id, 2, &r);
    bool listed = listed_unfinished(id);
    p = redisCommand(c, "HGET saga:{%s} state", id);
    cr_assert(p != NULL && p->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(p->str, "running", "the finish was applied during the pause");
    freeReplyObject(p);
    cr_assert_eq(r.calls, 0, "the finish was acknowledged during the pause");
    cr_assert(listed, "the index says finished while the record says running");
    p = redisCommand(c, "CLIENT UNPAUSE");
    cr_assert_not_null(p);
    freeReplyObject(p);
    redisFree(c);
    cr_assert(loop_wait(&loop, &r.calls, 1, 15000), "the finish was not answered after the pause");
    cr_assert_eq(r.status, 0, "%s", saga_strerror(r.status));
    /* Then the index follows (sent before the finish was reported). */
    cr_assert_not(listed_unfinished(id), "the finished saga is still listed unfinished");
}

Test(store_replicas, a_finish_moves_the_index_only_once_written) { finish_index_body(1); }
Test(store_replicas, a_finish_moves_the_index_only_once_written_min_replicas_0) {
    finish_index_body(0);
}

/* A create's index entries go to another primary than its record, over
 * another connection: the record may be written first. The create is
 * reported written only once the index lists it too; before, a worker
 * acknowledged the start request of a saga that, if it died then, no list,
 * sweep or takeover would ever find. */
static void create_index_body(int min_replicas) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    S = open_store(RC.node[0].url, min_replicas);
    int idx = primary_of_key("saga:{idx}:sagas");
    char id[32], key[64];
    for (int n = 0;; n++) {
        snprintf(id, sizeof(id), "cre-%d", n);
        snprintf(key, sizeof(key), "saga:{%s}", id);
        if (primary_of_key(key) != idx)
            break;
    }
    int home = primary_of_key(key);
    /* The index's primary holds writes: the record is written, the index
     * entry waits. */
    redisContext *c = redis_cluster_connect(&RC, idx);
    cr_assert_not_null(c);
    redisReply *p = redisCommand(c, "CLIENT PAUSE 60000 WRITE");
    cr_assert(p != NULL && p->type == REDIS_REPLY_STATUS, "CLIENT PAUSE refused");
    freeReplyObject(p);
    wres_t r;
    create(id, &r);
    redisContext *h = redis_cluster_connect(&RC, home);
    cr_assert_not_null(h);
    test_poll_t poll = test_poll_start(10000);
    for (;;) { /* the record is there */
        uv_run(&loop, UV_RUN_NOWAIT);
        p = redisCommand(h, "HGET saga:{%s} state", id);
        cr_assert_not_null(p);
        bool there = p->type == REDIS_REPLY_STRING;
        freeReplyObject(p);
        if (there)
            break;
        cr_assert(test_poll_next(&poll), "the create never reached its record's primary");
    }
    redisFree(h);
    cr_assert_not(loop_wait(&loop, &r.calls, 1, 1000),
                  "the create was reported written while its index entry was not");
    p = redisCommand(c, "CLIENT UNPAUSE");
    cr_assert_not_null(p);
    freeReplyObject(p);
    redisFree(c);
    cr_assert(loop_wait(&loop, &r.calls, 1, 15000), "the create was not answered after the pause");
    cr_assert_eq(r.status, 0, "%s", saga_strerror(r.status));
    cr_assert(listed_unfinished(id), "a created saga is listed unfinished");
}

Test(store_replicas, a_create_counts_once_the_index_lists_it) { create_index_body(1); }
Test(store_replicas, a_create_counts_once_the_index_lists_it_min_replicas_0) {
    create_index_body(0);
}

/* Starts the create of saga `id` owned by `owner` under fence 1, as a
 * worker's engine writes it (owner and fence among the record's fields). */
static void create_owned(const char *id, const char *owner, wres_t *r) {
    static saga_kv_t f[3];
    static saga_event_t ev = {"saga.created", NULL, NULL, 0, NULL, 0};
    static saga_store_write_t w;
    f[0] = (saga_kv_t){"state", 5, "running", 7};
    f[1] = (saga_kv_t){"owner", 5, owner, strlen(owner)};
    f[2] = (saga_kv_t){"fence", 5, "1", 1};
    w = (saga_store_write_t){id, 1, 1, SAGA_WRITE_CREATE, owner, f, 3, &ev, 1, 0};
    memset(r, 0, sizeof(*r));
    cr_assert_eq(S->ops->write(S, &w, on_write, r), 0);
}

/* A reply of the node serving `key` to a command on it. */
static redisReply *on_key(const char *key, const char *fmt, const char *a, const char *b) {
    redisContext *c = redis_cluster_connect(&RC, primary_of_key(key));
    cr_assert_not_null(c);
    redisReply *p = redisCommand(c, fmt, a, b);
    cr_assert_not_null(p);
    redisFree(c);
    return p;
}

/* A record whose create's index entries never arrived (its worker killed
 * between the two sends, or the index's primary failed over before its
 * replica had them): its start request, read again by another worker,
 * gets SAGA_EEXIST and is acknowledged. That create's own index entry
 * (sent before it, ZADD NX) lists the saga again, so that the sweep finds
 * it (claim.c then takes it over from an owner that holds no lease). */
Test(store_replicas, a_create_refused_as_existing_lists_the_saga_in_the_index) {
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    S = open_store(RC.node[0].url, 0);
    int idx = primary_of_key("saga:{idx}:sagas");
    char id[32], key[64];
    for (int n = 0;; n++) {
        snprintf(id, sizeof(id), "gap-%d", n);
        snprintf(key, sizeof(key), "saga:{%s}", id);
        if (primary_of_key(key) != idx)
            break;
    }
    wres_t r;
    create_owned(id, "ghost", &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000), "the create was not answered");
    cr_assert_eq(r.status, 0, "%s", saga_strerror(r.status));
    /* The gap: the record without its index entries. */
    freeReplyObject(on_key("saga:{idx}:sagas", "ZREM %s %s", "saga:{idx}:sagas", id));
    freeReplyObject(on_key("saga:{idx}:owned:ghost", "SREM %s %s", "saga:{idx}:owned:ghost", id));
    cr_assert_not(listed_unfinished(id), "the gap left in place");

    create_owned(id, "second", &r);
    cr_assert(loop_wait(&loop, &r.calls, 1, 10000), "the second create was not answered");
    cr_assert_eq(r.status, SAGA_EEXIST, "%s", saga_strerror(r.status));
    cr_assert(listed_unfinished(id), "a saga whose create was refused as existing is listed");
    redisReply *p = on_key(key, "HMGET %s owner %s", key, "fence");
    cr_assert(p->type == REDIS_REPLY_ARRAY && p->elements == 2 &&
              p->element[0]->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(p->element[0]->str, "ghost", "the record is left as it was");
    freeReplyObject(p);
}
