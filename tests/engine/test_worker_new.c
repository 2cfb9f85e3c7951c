/*
 * test_worker_new.c -- a worker's life cycle on a real redis-server:
 * saga_worker_new()'s refusals (each leaving nothing in the loop),
 * saga_worker_add_definition(), a start that reports whether the worker
 * serves (a definition's name it cannot publish is a failure, not a log
 * line), and a stop that leaves the loop clean.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis_server.h"
#include "store_fixture.h"
#include "saga/errors.h"
#include "saga/worker.h"
#include "store/keys.h"
#include "store/store_memory.h"
#include "store/store_redis.h"

static const char *const DEF =
    "saga: orders\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n";

static void setup(void) { fixture_setup(0); }

TestSuite(worker_new, .init = setup, .fini = fixture_teardown);


static saga_worker_options_t options(const char *name) {
    saga_worker_options_t o;
    memset(&o, 0, sizeof(o));
    o.name = name;
    o.url = &U;
    o.lease_ms = 3000;
    return o;
}

static saga_def_t *def(const char *yaml) {
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_def_t *d = saga_def_load_buffer("test.yaml", yaml, strlen(yaml), &diags);
    cr_assert_not_null(d, "%s", diags.count ? diags.items[0].message : "?");
    saga_diags_close(&diags);
    return d;
}

/* ---------------------------------------------------------------------- */
/* saga_worker_new                                                         */
/* ---------------------------------------------------------------------- */

/* Expects saga_worker_new to refuse, with `why` in its message. */
static void refused(saga_store_t *store, const saga_worker_options_t *o, const char *why) {
    char err[256] = "";
    saga_worker_t *w = saga_worker_new(&L, store, o, err, sizeof(err));
    cr_assert_null(w, "refused (%s)", why);
    cr_assert(strstr(err, why) != NULL, "'%s' says '%s'", err, why);
}

Test(worker_new, refuses_bad_options_and_leaves_nothing_behind) {
    saga_worker_options_t o = options("w1");
    refused(S, NULL, "needs a loop, a store and options");
    refused(NULL, &o, "needs a loop, a store and options");
    const char *names[] = {"", "a b", "x{1}", "tab\there"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        o.name = names[i];
        refused(S, &o, "invalid worker name");
    }
    char long_name[200];
    memset(long_name, 'n', 129);
    long_name[129] = '\0';
    o.name = long_name;
    refused(S, &o, "invalid worker name");
    o.name = NULL;
    refused(S, &o, "invalid worker name");

    /* The intake cannot be set up: nothing of the worker may stay in the
     * loop (its engine's timers were left there, freed, before). */
    o = options("w1");
    o.url = NULL;
    refused(S, &o, "Redis URL with a host or a socket");
    saga_redis_url_t bad = U;
    bad.transport = SAGA_REDIS_UNIX;
    bad.path = NULL;
    o.url = &bad;
    refused(S, &o, "Redis URL with a host or a socket");
    bad.transport = SAGA_REDIS_TCP;
    bad.host = NULL;
    refused(S, &o, "Redis URL with a host or a socket");

    saga_store_t *mem = saga_store_memory_new(&L, NULL);
    o = options("w1");
    refused(mem, &o, "needs a Redis store");
    mem->ops->close(mem, on_closed, NULL);
    run_until(&closed, 1);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* Start and stop                                                          */
/* ---------------------------------------------------------------------- */

static struct {
    int started;
    int status;
    char msg[512];
    int stopped;
} G;

static void on_started(saga_worker_t *w, int status, const char *msg, void *data) {
    (void)w;
    (void)data;
    G.started++;
    G.status = status;
    cr_assert((status == 0) == (msg == NULL), "a message exactly on failure");
    snprintf(G.msg, sizeof(G.msg), "%s", msg ? msg : "");
}

static void on_stopped(void *data) {
    (void)data;
    G.stopped++;
}

static saga_worker_t *worker(const char *name) {
    memset(&G, 0, sizeof(G));
    saga_worker_options_t o = options(name);
    char err[256];
    saga_worker_t *w = saga_worker_new(&L, S, &o, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    return w;
}

static void stop(saga_worker_t *w) {
    saga_worker_stop(w, 0, on_stopped, NULL);
    run_until(&G.stopped, 1);
    saga_worker_free(w);
}

/* How many shards' intake streams exist (each made with its group). */
static unsigned intake_streams(void) {
    unsigned n = 0;
    for (unsigned k = 0; k < fixture_shards()->k; k++)
        n += cmd("EXISTS %s", shard_key_n(k, SAGA_SHARD_INTAKE, NULL))->integer == 1;
    return n;
}

Test(worker_new, start_publishes_the_names_then_serves) {
    saga_worker_t *w = worker("w1");
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_def_t *d = def(DEF);
    char hash[65];
    memcpy(hash, d->hash, 65);
    cr_assert_eq(saga_worker_add_definition(w, d, &diags), 0);
    cr_assert_eq(saga_worker_start(w, on_started, NULL), 0);
    cr_assert_eq(G.started, 0, "never from inside the call");
    cr_assert_eq(saga_worker_start(w, on_started, NULL), -EALREADY);
    run_until(&G.started, 1);
    cr_assert_eq(G.status, 0, "%s", G.msg);
    cr_assert_str_eq(cmd("HGET saga:{idx}:defs orders")->str, hash, "the name is published");
    cr_assert_eq(cmd("ZSCORE saga:{idx}:workers w1")->type, REDIS_REPLY_STRING, "leased");
    cr_assert_eq(intake_streams(), fixture_shards()->k, "every shard's intake group exists");

    cr_assert_eq(saga_worker_add_definition(w, def(DEF), &diags), -EBUSY, "after start");
    saga_diags_close(&diags);
    stop(w);
    cr_assert_eq(G.started, 1, "the start was reported once");
    cr_assert_eq(cmd("ZSCORE saga:{idx}:workers w1")->type, REDIS_REPLY_NIL, "lease dropped");
    fixture_finish();
}

Test(worker_new, a_name_it_cannot_publish_fails_the_start) {
    cmd("SET saga:{idx}:defs not-a-hash");
    saga_worker_t *w = worker("w1");
    saga_diags_t diags;
    saga_diags_init(&diags);
    cr_assert_eq(saga_worker_add_definition(w, def(DEF), &diags), 0);
    saga_diags_close(&diags);
    cr_assert_eq(saga_worker_start(w, on_started, NULL), 0);
    run_until(&G.started, 1);
    cr_assert_eq(G.status, SAGA_ESTORE, "the caller is told");
    cr_assert(strstr(G.msg, "cannot publish saga orders") != NULL, "msg: %s", G.msg);
    cr_assert(strstr(G.msg, "WRONGTYPE") != NULL, "msg: %s", G.msg);
    cr_assert_eq(intake_streams(), 0, "it takes no work");
    stop(w);
    cr_assert_eq(G.started, 1);
    fixture_finish();
}

Test(worker_new, add_definition_refuses_what_it_cannot_run) {
    saga_worker_t *w = worker("w1");
    saga_diags_t diags;
    saga_diags_init(&diags);
    cr_assert_eq(saga_worker_add_definition(
                     w, def("saga: x\nsteps:\n  - {name: a, action: {handler: nosuch.fn}, compensation: none}\n"),
                     &diags),
                 -EINVAL);
    cr_assert_gt(diags.count, 0, "with its diagnostics");
    saga_diags_close(&diags);
    stop(w);
    cr_assert_eq(G.started, 0, "never started: no start callback");
    fixture_finish();
}

Test(worker_new, stopped_before_it_serves) {
    saga_worker_t *w = worker("w1");
    cr_assert_eq(saga_worker_start(w, on_started, NULL), 0);
    saga_worker_stop(w, 0, on_stopped, NULL);
    cr_assert_eq(saga_worker_start(w, on_started, NULL), SAGA_ECLOSING);
    run_until(&G.stopped, 1);
    cr_assert_eq(G.started, 1);
    cr_assert_eq(G.status, SAGA_ECLOSING);
    saga_worker_free(w);
    fixture_finish();
}

Test(worker_new, an_unreachable_intake_is_retried_and_the_worker_stops_cleanly) {
    memset(&G, 0, sizeof(G));
    saga_redis_url_t gone = U;
    char path[400];
    snprintf(path, sizeof(path), "%s/nosuch.sock", fixture_dir());
    gone.transport = SAGA_REDIS_UNIX;
    gone.path = path;
    saga_worker_options_t o = options("w1");
    o.url = &gone;
    char err[256];
    saga_worker_t *w = saga_worker_new(&L, S, &o, err, sizeof(err));
    cr_assert_not_null(w, "the intake connects later: %s", err);
    cr_assert_eq(saga_worker_start(w, on_started, NULL), 0);
    run_until(&G.started, 1);
    cr_assert_eq(G.status, 0, "leased and serving claims: %s", G.msg);
    stop(w);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* Takeover over the shards                                                */
/* ---------------------------------------------------------------------- */

#define DEAD_SAGAS 24

static const char *const SLOW_DEF =
    "saga: slow\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.sleep, with: {ms: 300}}, compensation: {handler: demo.noop}}\n"
    "  - {name: b, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n";

static int dead_created, dead_down;

static void on_dead_created(saga_engine_t *e, const char *id, int status, void *data) {
    (void)e;
    (void)data;
    cr_assert_eq(status, 0, "saga %s created", id);
    dead_created++;
}

static void on_dead_down(void *data) {
    (void)data;
    dead_down++;
}

/* The members of dead worker `name`'s owned sets, over every shard; how
 * many shards hold some in *shards. */
static long long owned_total(const char *name, unsigned *shards) {
    long long n = 0;
    *shards = 0;
    for (unsigned s = 0; s < fixture_shards()->k; s++) {
        long long m = cmd_int("SCARD %s", shard_key_n(s, SAGA_SHARD_OWNED, name));
        n += m;
        *shards += m > 0;
    }
    return n;
}

/* A worker `owner` (an engine that owns its sagas) creates DEAD_SAGAS
 * sagas t-0.. (in every shard) and stops without a word in the middle of
 * their first step. */
static void owned_sagas(const char *owner, char (*ids)[16]) {
    saga_engine_options_t eo;
    memset(&eo, 0, sizeof(eo));
    eo.store = S;
    eo.worker = owner;
    eo.owned = true;
    eo.on_created = on_dead_created;
    char err[256];
    saga_engine_t *e = saga_engine_new(&L, &eo, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_engine_def_t *d = saga_engine_register(e, def(SLOW_DEF), &diags);
    cr_assert_not_null(d, "%s", diags.count ? diags.items[0].message : "?");
    saga_diags_close(&diags);
    for (int i = 0; i < DEAD_SAGAS; i++) {
        snprintf(ids[i], 16, "t-%d", i);
        cr_assert_eq(saga_engine_start(e, d, ids[i], NULL, NULL, err, sizeof(err)), 0,
                     "%s", err);
    }
    run_until(&dead_created, DEAD_SAGAS);
    /* It stops in the middle of step a: the results are not written. */
    saga_engine_shutdown(e, 0, on_dead_down, NULL);
    run_until(&dead_down, 1);
    saga_engine_free(e);
}

/* A worker "dead" creates DEAD_SAGAS sagas t-0.. and stops without a word,
 * its lease long expired. */
static void dead_worker_sagas(char (*ids)[16]) {
    owned_sagas("dead", ids);
    cmd("ZADD saga:{idx}:workers 1 dead"); /* its lease ran out long ago */
}

/* A worker "live" serving SLOW_DEF, started. */
static saga_worker_t *live_worker(void) {
    saga_worker_options_t o = options("live");
    o.scan_ms = 50;
    char err[256];
    saga_worker_t *w = saga_worker_new(&L, S, &o, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    saga_diags_t diags;
    saga_diags_init(&diags);
    cr_assert_eq(saga_worker_add_definition(w, def(SLOW_DEF), &diags), 0);
    saga_diags_close(&diags);
    cr_assert_eq(saga_worker_start(w, on_started, NULL), 0);
    run_until(&G.started, 1);
    cr_assert_eq(G.status, 0, "%s", G.msg);
    return w;
}

/* How many of ids[0..DEAD_SAGAS) completed. */
static int completed_of(char (*ids)[16]) {
    int completed = 0;
    for (int i = 0; i < DEAD_SAGAS; i++) {
        redisReply *r = cmd("HGET saga:{%s} state", ids[i]);
        completed += r->type == REDIS_REPLY_STRING && strcmp(r->str, "completed") == 0;
    }
    return completed;
}

/* The dead worker's sagas, in every shard, are taken over from each
 * shard's owned set; the dead worker is forgotten only once all of those
 * sets are empty. */
Test(worker_new, a_dead_workers_sagas_in_every_shard_are_taken_over_then_it_is_forgotten) {
    memset(&G, 0, sizeof(G));
    char ids[DEAD_SAGAS][16];
    dead_worker_sagas(ids);
    unsigned shards;
    cr_assert_eq(owned_total("dead", &shards), DEAD_SAGAS, "listed as its own");
    cr_assert_eq(shards, fixture_shards()->k > 1 ? fixture_shards()->k : 1,
                 "in every shard (%u of %u)", shards, fixture_shards()->k);
    saga_worker_t *w = live_worker();

    /* Until every saga completed and the dead worker is forgotten; never
     * forgotten while one of its sets still holds a saga. */
    fixture_deadline_start(30000);
    int completed = 0;
    bool forgotten = false;
    while (!fixture_expired() && (completed < DEAD_SAGAS || !forgotten)) {
        uv_run(&L, UV_RUN_ONCE);
        bool gone = cmd("ZSCORE saga:{idx}:workers dead")->type == REDIS_REPLY_NIL;
        long long left = owned_total("dead", &shards);
        cr_assert(!gone || left == 0, "forgotten with %lld sagas left in its sets", left);
        forgotten = gone;
        completed = completed_of(ids);
    }
    fixture_deadline_stop();
    cr_assert_eq(completed, DEAD_SAGAS, "every saga taken over and completed");
    cr_assert(forgotten, "the dead worker forgotten");
    for (int i = 0; i < DEAD_SAGAS; i++)
        cr_assert_str_eq(cmd("HGET saga:{%s} owner", ids[i])->str, "live", "%s", ids[i]);
    stop(w);
    fixture_finish();
}

/* Sagas missing from every set are found by the sweep of the unfinished
 * sagas, shard after shard: a shard whose index cannot be read (a key of
 * the wrong type) is passed over, not swept again and again while the
 * others wait; and the dead worker, whose set in that shard cannot be
 * counted, is not forgotten. */
Test(worker_new, the_sweep_passes_a_shard_it_cannot_read) {
    if (fixture_shards()->k < 2)
        cr_skip_test("needs several shards (worker_new_shards)");
    memset(&G, 0, sizeof(G));
    char ids[DEAD_SAGAS][16];
    dead_worker_sagas(ids);
    unsigned k = fixture_shards()->k;
    for (unsigned s = 0; s < k; s++)
        cmd("DEL %s", shard_key_n(s, SAGA_SHARD_OWNED, "dead")); /* in no set */
    const char *bad = shard_key_n(0, SAGA_SHARD_SAGAS, NULL);
    cmd("DEL %s", bad);
    cmd("SET %s not-an-index", bad);
    cmd("SET %s not-a-set", shard_key_n(0, SAGA_SHARD_OWNED, "dead"));
    int want = 0;
    for (int i = 0; i < DEAD_SAGAS; i++)
        want += saga_shards_of(fixture_shards(), ids[i]) != 0;
    cr_assert_gt(want, 0);
    saga_worker_t *w = live_worker();
    fixture_deadline_start(30000);
    int completed = 0;
    while (!fixture_expired() && completed < want) {
        uv_run(&L, UV_RUN_ONCE);
        completed = completed_of(ids);
    }
    fixture_deadline_stop();
    cr_assert_eq(completed, want, "every saga outside shard 0 swept, taken over, completed");
    cr_assert_eq(cmd("ZSCORE saga:{idx}:workers dead")->type, REDIS_REPLY_STRING,
                 "not forgotten: its set in shard 0 cannot be counted");
    stop(w);
    fixture_finish();
}

/* On Redis Cluster a create's index entries go to another primary than its
 * record: a worker killed between the two sends (or the index's primary
 * failing over before its replica had them) leaves a record listed in no
 * index and no set. Its start request is then read again by another
 * worker, whose create gets SAGA_EEXIST (its own index entry lists the
 * saga) and which acknowledges it. The owner named by the record may hold
 * no lease at all (forgotten, its empty sets walked): the sweep takes such
 * a saga over all the same, and it finishes. */
Test(worker_new, a_saga_created_without_its_index_entries_is_taken_over_and_finishes) {
    if (!fixture_cluster())
        cr_skip_test("the index is updated with the record on one Redis (no gap)");
    memset(&G, 0, sizeof(G));
    char ids[DEAD_SAGAS][16];
    owned_sagas("ghost", ids);
    cr_assert_eq(cmd("ZSCORE saga:{idx}:workers ghost")->type, REDIS_REPLY_NIL,
                 "the owner never had a lease");
    for (unsigned s = 0; s < fixture_shards()->k; s++)
        cmd("DEL %s", shard_key_n(s, SAGA_SHARD_OWNED, "ghost"));
    char hash[65];
    snprintf(hash, sizeof(hash), "%s", cmd("HGET saga:{%s} def", ids[0])->str);
    for (int i = 0; i < DEAD_SAGAS; i++) {
        /* The gap, then the start request still pending in the intake. */
        cmd("ZREM %s %s", shard_key(SAGA_SHARD_SAGAS, NULL, ids[i]), ids[i]);
        cmd("XADD %s * id %s name slow hash %s input {} ts 1",
            shard_key(SAGA_SHARD_INTAKE, NULL, ids[i]), ids[i], hash);
    }
    saga_worker_t *w = live_worker();
    /* Until every saga completed and the index lists it as finished (the
     * index's update follows the finish: then the worker is done with it). */
    fixture_deadline_start(30000);
    int completed = 0, indexed = 0;
    while (!fixture_expired() && (completed < DEAD_SAGAS || indexed < DEAD_SAGAS)) {
        uv_run(&L, UV_RUN_ONCE);
        completed = completed_of(ids);
        indexed = 0;
        for (int i = 0; i < DEAD_SAGAS; i++) {
            redisReply *r = cmd("ZSCORE %s %s", shard_key(SAGA_SHARD_SAGAS, NULL, ids[i]), ids[i]);
            indexed += r->type == REDIS_REPLY_STRING && atof(r->str) > 0;
        }
    }
    fixture_deadline_stop();
    cr_assert_eq(completed, DEAD_SAGAS, "every saga taken over and completed (%d)", completed);
    cr_assert_eq(indexed, DEAD_SAGAS, "every saga indexed as finished (%d)", indexed);
    for (int i = 0; i < DEAD_SAGAS; i++)
        cr_assert_str_eq(cmd("HGET saga:{%s} owner", ids[i])->str, "live", "%s", ids[i]);
    for (unsigned s = 0; s < fixture_shards()->k; s++) {
        redisReply *p = cmd("XPENDING %s " SAGA_INTAKE_GROUP,
                            shard_key_n(s, SAGA_SHARD_INTAKE, NULL));
        cr_assert(p->type == REDIS_REPLY_ARRAY && p->elements >= 1 &&
                  p->element[0]->type == REDIS_REPLY_INTEGER);
        cr_assert_eq(p->element[0]->integer, 0, "every start request acknowledged");
    }
    stop(w);
    fixture_finish();
}
