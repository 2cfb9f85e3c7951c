/*
 * test_worker_store.c -- the store's operations for workers (store/lease.h,
 * store/intake.h) against a real redis-server: what each one sends, what
 * it decodes, and how it fails (refused, malformed, unreachable, bad
 * arguments, not a Redis store).
 *
 * Malformed replies come from the real server: keys of the wrong type,
 * records edited by hand, and a stand-in `saga` function library whose
 * functions answer replies of the wrong shape.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis_server.h"
#include "store_fixture.h"
#include "saga/errors.h"
#include "store/intake.h"
#include "store/lease.h"
#include "store/operator.h"
#include "store/store_memory.h"
#include "store/store_redis.h"

static const char HASH[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void setup(void) { fixture_setup(2000); }

TestSuite(worker_store, .init = setup, .fini = fixture_teardown);


static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A saga record as saga_write leaves it. */
static void record(const char *id, const char *owner, const char *fence, const char *state) {
    cmd("HSET saga:{%s} id %s seq 3 state %s def %s saga demo", id, id, state, HASH);
    if (owner != NULL)
        cmd("HSET saga:{%s} owner %s", id, owner);
    if (fence != NULL)
        cmd("HSET saga:{%s} fence %s", id, fence);
}

/* Replaces the `saga` library with functions that answer replies of the
 * wrong shape (saga_gc stays harmless, so that the store does not reload
 * the real library meanwhile). */
static void load_bad_library(void) {
    redisReply *r = cmd("FUNCTION LOAD REPLACE %s",
        "#!lua name=saga\n"
        "redis.register_function('saga_gc', function(k, a) return 0 end)\n"
        "redis.register_function('saga_heartbeat', function(k, a) return {1, 7} end)\n"
        "redis.register_function('saga_dead_workers', function(k, a) return {'a', 3} end)\n"
        "redis.register_function('saga_claim', function(k, a) return 'fence' end)\n"
        "redis.register_function('saga_release', function(k, a) return 5 end)\n"
        "redis.register_function('saga_intake_done', function(k, a) "
        "  return redis.error_reply('ERR refused') end)\n");
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s", r->str);
}

/* ---------------------------------------------------------------------- */
/* What the callbacks got                                                  */
/* ---------------------------------------------------------------------- */

static struct got_s {
    int calls;
    int status;
    char why[256];
    bool expired, unlisted;
    uint64_t u;              /* fence, count */
    size_t n;
    char names[8][160];
    char next[32];
    saga_lease_candidate_t cand;
    char owner[160], def[80];
    saga_intake_request_t reqs[8];
    char req_text[8][4][160];
} G;

static void reset(void) { memset(&G, 0, sizeof(G)); }

static void note(int status, const char *why) {
    G.calls++;
    G.status = status;
    cr_assert((status == 0) == (why == NULL), "why is set exactly on failure (%d)", status);
    if (why != NULL)
        snprintf(G.why, sizeof(G.why), "%s", why);
}

static void on_done(int status, const char *why, void *data) {
    (void)data;
    note(status, why);
}

static void on_heartbeat(int status, bool exp, bool unlisted, const char *why, void *data) {
    (void)data;
    note(status, why);
    G.expired = exp;
    G.unlisted = unlisted;
}

static void on_names(int status, const char *const *names, size_t n, const char *why,
                     void *data) {
    (void)data;
    note(status, why);
    G.n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(G.names[i], sizeof(G.names[i]), "%s", names[i]);
}

static void on_claim(int status, uint64_t fence, const char *why, void *data) {
    (void)data;
    note(status, why);
    G.u = fence;
}

static void on_held(int status, bool held, const char *why, void *data) {
    (void)data;
    note(status, why);
    G.u = held;
}

static void on_count(int status, uint64_t n, const char *why, void *data) {
    (void)data;
    note(status, why);
    G.u = n;
}

static void on_scan(int status, const char *next, const char *const *ids, size_t n,
                    const char *why, void *data) {
    on_names(status, ids, n, why, data);
    if (next != NULL)
        snprintf(G.next, sizeof(G.next), "%s", next);
}

static void on_candidate(int status, const saga_lease_candidate_t *c, const char *why,
                         void *data) {
    (void)data;
    note(status, why);
    cr_assert((status == 0) == (c != NULL));
    if (c != NULL) {
        G.cand = *c;
        if (c->exists) {
            snprintf(G.owner, sizeof(G.owner), "%s", c->owner);
            snprintf(G.def, sizeof(G.def), "%s", c->def);
        }
    }
}

static void on_requests(int status, const saga_intake_request_t *reqs, size_t n,
                        const char *why, void *data) {
    (void)data;
    note(status, why);
    G.n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        const char *f[4] = {reqs[i].entry, reqs[i].id, reqs[i].hash, reqs[i].malformed};
        for (int j = 0; j < 4; j++)
            snprintf(G.req_text[i][j], sizeof(G.req_text[i][j]), "%s", f[j] ? f[j] : "");
        G.reqs[i] = reqs[i];
        G.reqs[i].input = NULL; /* only valid during the callback */
        if (reqs[i].input != NULL)
            cr_assert_eq(strlen(reqs[i].input), reqs[i].input_len);
    }
}

/* Runs one call that must succeed and waits for its callback, which must
 * not have run inside the call. */
#define CALL(expr)                                                           \
    do {                                                                     \
        reset();                                                             \
        int rc_ = (expr);                                                    \
        cr_assert_eq(rc_, 0, "%s returned %d", #expr, rc_);                  \
        cr_assert_eq(G.calls, 0, "the callback ran inside the call");        \
        run_until(&G.calls, 1);                                              \
        cr_assert_eq(G.calls, 1);                                            \
    } while (0)

/* ---------------------------------------------------------------------- */
/* Leases                                                                  */
/* ---------------------------------------------------------------------- */

Test(worker_store, heartbeat_renews_and_reports_an_expired_lease) {
    CALL(saga_lease_heartbeat(S, "w1", 10000, on_heartbeat, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_not(G.expired, "a first lease had not expired");
    cr_assert(G.unlisted, "w1 published nothing yet");
    redisReply *r = cmd("ZSCORE saga:{idx}:workers w1");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    long long until = strtoll(r->str, NULL, 10);
    cr_assert(llabs(until - (now_ms() + 10000)) < 2000, "lease until now + 10 s: %lld", until);

    cmd("ZADD saga:{idx}:workers %lld w1", now_ms() - 5000);
    CALL(saga_lease_heartbeat(S, "w1", 10000, on_heartbeat, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert(G.expired, "the lease had expired before this renewal");
    CALL(saga_lease_publish_definition(S, "w1", "orders", HASH, on_done, NULL));
    CALL(saga_lease_heartbeat(S, "w1", 10000, on_heartbeat, NULL));
    cr_assert_not(G.expired, "renewed in time");
    cr_assert_not(G.unlisted, "w1 serves orders");

    /* Forgotten by others (its lease had lapsed): the next heartbeat says
     * so, for the worker to publish its names again. */
    CALL(saga_lease_deregister(S, "w1", on_done, NULL));
    CALL(saga_lease_heartbeat(S, "w1", 10000, on_heartbeat, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_not(G.expired);
    cr_assert(G.unlisted, "what w1 served went with its lease");
    fixture_finish();
}

Test(worker_store, heartbeat_failures) {
    cr_assert_eq(saga_lease_heartbeat(S, "", 1000, on_heartbeat, NULL), -EINVAL);
    cr_assert_eq(saga_lease_heartbeat(S, "w1", 0, on_heartbeat, NULL), -EINVAL);
    cmd("SET saga:{idx}:workers not-a-zset");
    CALL(saga_lease_heartbeat(S, "w1", 1000, on_heartbeat, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert(strstr(G.why, "WRONGTYPE") != NULL, "why: %s", G.why);
    cmd("DEL saga:{idx}:workers");
    load_bad_library();
    CALL(saga_lease_heartbeat(S, "w1", 1000, on_heartbeat, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE, "a reply of the wrong shape is an error");
    cr_assert_str_eq(G.why, "expected [now, 0 or 1, 0 or 1]");
    fixture_finish();
}

Test(worker_store, dead_workers_and_deregister) {
    cmd("ZADD saga:{idx}:workers %lld gone %lld alive", now_ms() - 1000, now_ms() + 60000);
    CALL(saga_lease_dead_workers(S, on_names, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.n, 1);
    cr_assert_str_eq(G.names[0], "gone");

    CALL(saga_lease_publish_definition(S, "gone", "orders", HASH, on_done, NULL));
    CALL(saga_lease_publish_definition(S, "alive", "orders", HASH, on_done, NULL));
    CALL(saga_lease_deregister(S, "gone", on_done, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(cmd("ZSCORE saga:{idx}:workers gone")->type, REDIS_REPLY_NIL);
    cr_assert_eq(cmd("HGET saga:{idx}:serving gone")->type, REDIS_REPLY_NIL,
                 "what it served went with it");
    cr_assert_str_eq(cmd("HGET saga:{idx}:serving alive")->str, "orders");
    cr_assert_eq(cmd("ZSCORE saga:{idx}:workers alive")->type, REDIS_REPLY_STRING);
    CALL(saga_lease_dead_workers(S, on_names, NULL));
    cr_assert_eq(G.n, 0);

    cr_assert_eq(saga_lease_deregister(S, NULL, on_done, NULL), -EINVAL);
    load_bad_library();
    CALL(saga_lease_dead_workers(S, on_names, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_str_eq(G.why, "expected an array of strings");
    fixture_finish();
}

/* Whether a worker holds a lease, running or expired; none once
 * forgotten, or never. */
Test(worker_store, held_says_whether_a_worker_holds_a_lease) {
    cmd("ZADD saga:{idx}:workers %lld gone %lld alive", now_ms() - 1000, now_ms() + 60000);
    CALL(saga_lease_held(S, "alive", on_held, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.u, 1, "a running lease");
    CALL(saga_lease_held(S, "gone", on_held, NULL));
    cr_assert_eq(G.u, 1, "an expired lease is held until the worker is forgotten");
    CALL(saga_lease_deregister(S, "gone", on_done, NULL));
    CALL(saga_lease_held(S, "gone", on_held, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.u, 0, "forgotten");
    CALL(saga_lease_held(S, "ghost", on_held, NULL));
    cr_assert_eq(G.u, 0, "never had one");

    cr_assert_eq(saga_lease_held(S, "", on_held, NULL), -EINVAL);
    cr_assert_eq(saga_lease_held(S, NULL, on_held, NULL), -EINVAL);
    cr_assert_eq(saga_lease_held(S, "alive", NULL, NULL), -EINVAL);
    cmd("DEL saga:{idx}:workers");
    cmd("SET saga:{idx}:workers not-a-zset");
    CALL(saga_lease_held(S, "alive", on_held, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert(strstr(G.why, "WRONGTYPE") != NULL, "why: %s", G.why);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* Ownership                                                               */
/* ---------------------------------------------------------------------- */

Test(worker_store, claim_takes_over_from_the_expected_owner_only) {
    record("s1", "dead", "4", "running");
    CALL(saga_lease_claim(S, "s1", "other", "me", on_claim, NULL));
    cr_assert_eq(G.status, SAGA_EFENCED, "owned by someone else than expected");
    cr_assert(strstr(G.why, "owned by dead") != NULL, "why: %s", G.why);

    CALL(saga_lease_claim(S, "s1", "dead", "me", on_claim, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.u, 5, "the fence is bumped");
    cr_assert_str_eq(cmd("HGET saga:{s1} owner")->str, "me");
    cr_assert_str_eq(cmd("HGET saga:{s1} fence")->str, "5");
    cr_assert_eq(cmd_int("LLEN saga:{s1}:history"), 1, "the claim is in the history");

    record("s2", "", "1", "completed");
    CALL(saga_lease_claim(S, "s2", "", "me", on_claim, NULL));
    cr_assert_eq(G.status, SAGA_ESTATE, "a finished saga");
    record("s3", NULL, NULL, "running");
    CALL(saga_lease_claim(S, "s3", "", "me", on_claim, NULL));
    cr_assert_eq(G.status, SAGA_ESTATE, "a saga no worker runs");
    CALL(saga_lease_claim(S, "nosuch", "", "me", on_claim, NULL));
    cr_assert_eq(G.status, SAGA_ENOTFOUND);

    cr_assert_eq(saga_lease_claim(S, "s1", NULL, "me", on_claim, NULL), -EINVAL);
    cr_assert_eq(saga_lease_claim(S, "", "", "me", on_claim, NULL), -EINVAL);
    load_bad_library();
    CALL(saga_lease_claim(S, "s1", "me", "you", on_claim, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_eq(G.u, 0);
    fixture_finish();
}

/* The sharded global keys of a saga (store/shards.h): its own shard's. */
#define OWNED(worker, id) shard_key(SAGA_SHARD_OWNED, worker, id)
#define ORPHANS(id) shard_key(SAGA_SHARD_ORPHANS, NULL, id)
#define SAGAS(id) shard_key(SAGA_SHARD_SAGAS, NULL, id)

/* The members of a sharded set, summed over every shard. */
static long long set_total(const char *name, const char *suffix) {
    long long n = 0;
    for (unsigned s = 0; s < fixture_shards()->k; s++)
        n += cmd_int("SCARD %s", shard_key_n(s, name, suffix));
    return n;
}

Test(worker_store, release_to_the_orphans_or_to_nobody) {
    record("s1", "me", "3", "running");
    cmd("SADD %s s1", OWNED("me", "s1"));
    cmd("SADD %s s2", OWNED("me", "s2"));
    CALL(saga_lease_release(S, "s1", "me", 3, true, on_done, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_str_eq(cmd("HGET saga:{s1} owner")->str, "", "unowned");
    cr_assert_eq(cmd_int("SISMEMBER %s s1", ORPHANS("s1")), 1, "listed for others");
    cr_assert_eq(cmd_int("SISMEMBER %s s1", OWNED("me", "s1")), 0);

    record("s2", "me", "3", "stuck");
    CALL(saga_lease_release(S, "s2", "me", 3, false, on_done, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(cmd_int("SISMEMBER %s s2", OWNED("me", "s2")), 0);
    cr_assert_eq(cmd_int("SISMEMBER %s s2", ORPHANS("s2")), 0, "parked: nobody's");

    record("s3", "you", "9", "running");
    cmd("SADD %s s3", OWNED("me", "s3"));
    CALL(saga_lease_release(S, "s3", "me", 3, true, on_done, NULL));
    cr_assert_eq(G.status, SAGA_EFENCED, "not ours any more");
    cr_assert_str_eq(cmd("HGET saga:{s3} owner")->str, "you", "nothing changed");
    cr_assert_eq(cmd_int("SISMEMBER %s s3", OWNED("me", "s3")), 1, "nothing changed");

    CALL(saga_lease_release(S, "gone", "me", 3, true, on_done, NULL));
    cr_assert_eq(G.status, 0, "a saga that is gone is released");

    /* Without a callback: sent all the same, before what follows. */
    record("s4", "me", "1", "running");
    cmd("SADD %s s4", OWNED("me", "s4"));
    unsigned s4 = saga_shards_of(fixture_shards(), "s4");
    uint64_t before = s4 == saga_shards_of(fixture_shards(), "s1") ? 1 : 0; /* s1 there? */
    reset();
    cr_assert_eq(saga_lease_release(S, "s4", "me", 1, true, NULL, NULL), 0);
    CALL(saga_lease_set_size(S, s4, NULL, on_count, NULL));
    cr_assert_eq(G.u, before, "s4 not yet in the orphans");
    /* Then s4, released in the background: on one connection at once; on
     * a cluster the SMOVE follows saga_release's answer from another node. */
    for (int i = 0; i < 100; i++) {
        CALL(saga_lease_set_size(S, s4, NULL, on_count, NULL));
        if (G.u == before + 1 || !fixture_cluster())
            break;
    }
    cr_assert_eq(G.u, before + 1, "then s4, released in the background");
    cr_assert_eq(set_total(SAGA_SHARD_ORPHANS, NULL), 2, "s1 and s4, each in its shard");
    fixture_finish();
}

Test(worker_store, release_failures) {
    cmd("SET %s not-a-set", OWNED("me", "s1"));
    record("s1", "me", "3", "running");
    CALL(saga_lease_release(S, "s1", "me", 3, true, on_done, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE, "the set command's error");
    cr_assert(strstr(G.why, "WRONGTYPE") != NULL, "why: %s", G.why);
    load_bad_library();
    CALL(saga_lease_release(S, "s1", "me", 3, true, on_done, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_str_eq(G.why, "expected 0 or 1");
    cr_assert_eq(saga_lease_release(S, "s1", "", 3, true, on_done, NULL), -EINVAL);
    fixture_finish();
}

Test(worker_store, list_owned_and_unlist) {
    cmd("SADD %s s1", OWNED("dead", "s1"));
    cmd("SADD %s s2", ORPHANS("s2"));
    CALL(saga_lease_list_owned(S, "s1", "me", true, "dead", on_done, NULL));
    CALL(saga_lease_list_owned(S, "s2", "me", true, NULL, on_done, NULL));
    CALL(saga_lease_list_owned(S, "s3", "me", false, NULL, on_done, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(set_total(SAGA_SHARD_OWNED, "me"), 3);
    cr_assert_eq(cmd_int("SISMEMBER %s s3", OWNED("me", "s3")), 1, "in its own shard");
    cr_assert_eq(set_total(SAGA_SHARD_OWNED, "dead"), 0);
    cr_assert_eq(set_total(SAGA_SHARD_ORPHANS, NULL), 0);

    CALL(saga_lease_unlist(S, "me", "s1", on_done, NULL));
    cr_assert_eq(cmd_int("SISMEMBER %s s1", OWNED("me", "s1")), 0);
    cmd("SADD %s s9", ORPHANS("s9"));
    CALL(saga_lease_unlist(S, NULL, "s9", on_done, NULL));
    cr_assert_eq(set_total(SAGA_SHARD_ORPHANS, NULL), 0);

    cmd("SET %s x", ORPHANS("s9"));
    CALL(saga_lease_unlist(S, NULL, "s9", on_done, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_eq(saga_lease_unlist(S, "", "s9", on_done, NULL), -EINVAL, "no worker ''");
    cr_assert_eq(saga_lease_list_owned(S, "s1", "me", true, "", on_done, NULL), -EINVAL);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* Finding sagas                                                           */
/* ---------------------------------------------------------------------- */

Test(worker_store, candidate_decodes_the_record) {
    record("s1", "w9", "12", "stuck");
    cmd("HSET saga:{s1} cancel 1");
    CALL(saga_lease_candidate(S, "s1", on_candidate, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert(G.cand.exists && G.cand.managed && G.cand.cancel);
    cr_assert_str_eq(G.owner, "w9");
    cr_assert_eq(G.cand.fence, 12);
    cr_assert_eq(G.cand.state, SAGA_STATE_STUCK);
    cr_assert_str_eq(G.def, HASH);

    record("s2", NULL, NULL, "running");
    CALL(saga_lease_candidate(S, "s2", on_candidate, NULL));
    cr_assert(G.cand.exists && !G.cand.managed && !G.cand.cancel);
    cr_assert_str_eq(G.owner, "", "nobody's");

    CALL(saga_lease_candidate(S, "gone", on_candidate, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_not(G.cand.exists);
    fixture_finish();
}

Test(worker_store, candidate_refuses_a_corrupt_record) {
    record("s1", "w9", "twelve", "running");
    CALL(saga_lease_candidate(S, "s1", on_candidate, NULL));
    cr_assert_eq(G.status, SAGA_ECORRUPT);
    cr_assert_str_eq(G.why, "field 'fence' is 'twelve', not a number");

    record("s2", "w9", "1", "sleeping");
    CALL(saga_lease_candidate(S, "s2", on_candidate, NULL));
    cr_assert_eq(G.status, SAGA_ECORRUPT);
    cr_assert_str_eq(G.why, "field 'state' is 'sleeping', not a state");

    record("s3", "w9", "1", "running");
    cmd("HSET saga:{s3} def short");
    CALL(saga_lease_candidate(S, "s3", on_candidate, NULL));
    cr_assert_eq(G.status, SAGA_ECORRUPT);
    cr_assert_str_eq(G.why, "field 'def' is 'short', not a definition hash");

    cmd("SET saga:{s4} not-a-hash");
    CALL(saga_lease_candidate(S, "s4", on_candidate, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert(strstr(G.why, "WRONGTYPE") != NULL, "why: %s", G.why);
    cr_assert_eq(saga_lease_candidate(S, "x", NULL, NULL), -EINVAL);
    fixture_finish();
}

Test(worker_store, scan_walks_a_set_in_pages) {
    char id[16];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        cmd("SADD %s %s", OWNED("dead", id), id);
    }
    unsigned k = fixture_shards()->k;
    size_t seen = 0;
    int pages = 0;
    for (unsigned sh = 0; sh < k; sh++) {
        char cursor[32] = "0";
        int shard_pages = 0;
        do {
            CALL(saga_lease_scan(S, sh, "dead", cursor, 100, on_scan, NULL));
            cr_assert_eq(G.status, 0);
            for (size_t i = 0; i < G.n && i < 8; i++)
                cr_assert_eq(saga_shards_of(fixture_shards(), G.names[i]), sh,
                             "%s comes from its own shard", G.names[i]);
            seen += G.n;
            snprintf(cursor, sizeof(cursor), "%s", G.next);
            shard_pages++;
        } while (strcmp(cursor, "0") != 0 && shard_pages < 50);
        cr_assert_eq(strcmp(cursor, "0"), 0, "the pass over shard %u completes", sh);
        pages += shard_pages;
    }
    cr_assert_geq(seen, 300, "every member is offered");
    cr_assert_gt(pages, 1, "in pages");

    cmd("SADD %s o1", ORPHANS("o1"));
    unsigned o1 = saga_shards_of(fixture_shards(), "o1");
    CALL(saga_lease_scan(S, o1, NULL, "0", 10, on_scan, NULL));
    cr_assert_eq(G.n, 1);
    cr_assert_str_eq(G.names[0], "o1");
    cr_assert_str_eq(G.next, "0");

    uint64_t total = 0;
    for (unsigned sh = 0; sh < k; sh++) {
        CALL(saga_lease_set_size(S, sh, "dead", on_count, NULL));
        total += G.u;
    }
    cr_assert_eq(total, 300);
    CALL(saga_lease_set_size(S, 0, "nobody", on_count, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.u, 0);

    cmd("SET %s x", shard_key_n(0, SAGA_SHARD_ORPHANS, NULL));
    CALL(saga_lease_scan(S, 0, NULL, "0", 10, on_scan, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    CALL(saga_lease_set_size(S, 0, NULL, on_count, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_eq(saga_lease_scan(S, 0, NULL, "", 10, on_scan, NULL), -EINVAL);
    cr_assert_eq(saga_lease_scan(S, 0, NULL, "0", 0, on_scan, NULL), -EINVAL);
    cr_assert_eq(saga_lease_scan(S, k, NULL, "0", 10, on_scan, NULL), -EINVAL, "no shard k");
    cr_assert_eq(saga_lease_set_size(S, k, NULL, on_count, NULL), -EINVAL);
    fixture_finish();
}

Test(worker_store, sweep_pages_through_the_unfinished) {
    char id[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "u%d", i);
        cmd("ZADD %s %d %s", SAGAS(id), -i * 1000, id); /* unfinished: -created */
    }
    cmd("ZADD %s %lld done", SAGAS("done"), now_ms() + 60000); /* finished: expiry */
    unsigned k = fixture_shards()->k;
    bool found[6] = {false};
    int pages = 0;
    for (unsigned sh = 0; sh < k; sh++) {
        int last = 6; /* newest first: u5 .. u1 */
        for (uint64_t offset = 0;; offset += 3) {
            CALL(saga_lease_sweep(S, sh, offset, 3, on_names, NULL));
            cr_assert_eq(G.status, 0);
            pages++;
            for (size_t i = 0; i < G.n; i++) {
                int n = atoi(G.names[i] + 1);
                cr_assert(G.names[i][0] == 'u' && n >= 1 && n <= 5 && !found[n],
                          "%s: an unfinished saga, once", G.names[i]);
                cr_assert_lt(n, last, "newest first within the shard");
                cr_assert_eq(saga_shards_of(fixture_shards(), G.names[i]), sh);
                found[n] = true;
                last = n;
            }
            if (G.n < 3)
                break; /* the end of this shard's unfinished ones */
        }
    }
    for (int n = 1; n <= 5; n++)
        cr_assert(found[n], "u%d swept", n);
    cr_assert_geq(pages, 2, "in pages");
    cmd("SET %s x", shard_key_n(0, SAGA_SHARD_SAGAS, NULL));
    CALL(saga_lease_sweep(S, 0, 0, 3, on_names, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_eq(saga_lease_sweep(S, k, 0, 3, on_names, NULL), -EINVAL, "no shard k");
    fixture_finish();
}

Test(worker_store, wake_list_and_definition_names) {
    CALL(saga_lease_wake_list(S, "me", 100, on_names, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.n, 0, "an empty list");
    cmd("RPUSH saga:{idx}:wake:me a b c");
    CALL(saga_lease_wake_list(S, "me", 2, on_names, NULL));
    cr_assert_eq(G.n, 2);
    cr_assert_str_eq(G.names[0], "a");
    cr_assert_eq(cmd_int("LLEN saga:{idx}:wake:me"), 1, "taken from the list");

    CALL(saga_lease_publish_definition(S, "me", "orders", HASH, on_done, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_str_eq(cmd("HGET saga:{idx}:defs orders")->str, HASH);
    cr_assert_str_eq(cmd("HGET saga:{idx}:serving me")->str, "orders");
    CALL(saga_lease_publish_definition(S, "me", "pay", HASH, on_done, NULL));
    CALL(saga_lease_publish_definition(S, "me", "orders", HASH, on_done, NULL));
    cr_assert_eq(G.status, 0, "publishing twice is harmless");
    cr_assert_str_eq(cmd("HGET saga:{idx}:serving me")->str, "orders\npay");
    cr_assert_eq(saga_lease_publish_definition(S, "me", "orders", "abc", on_done, NULL), -EINVAL);
    cr_assert_eq(saga_lease_publish_definition(S, "", "orders", HASH, on_done, NULL), -EINVAL);
    cr_assert_eq(saga_lease_publish_definition(S, "me", "a\nb", HASH, on_done, NULL), -EINVAL);
    cmd("SET saga:{idx}:defs x");
    CALL(saga_lease_publish_definition(S, "me", "orders", HASH, on_done, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert(strstr(G.why, "WRONGTYPE") != NULL, "why: %s", G.why);
    fixture_finish();
}

Test(worker_store, not_a_redis_store_and_not_connected) {
    saga_store_t *mem = saga_store_memory_new(&L, NULL);
    cr_assert_eq(saga_lease_heartbeat(mem, "w", 1000, on_heartbeat, NULL), -EINVAL);
    cr_assert_eq(saga_lease_candidate(mem, "s", on_candidate, NULL), -EINVAL);
    saga_intake_t *in = (saga_intake_t *)1;
    char err[128];
    cr_assert_eq(saga_intake_new(&L, mem, &U, "w", NULL, NULL, &in, err, sizeof(err)), -EINVAL);
    cr_assert_null(in);
    cr_assert_str_eq(err, "the intake needs a Redis store");
    closed = 0;
    mem->ops->close(mem, on_closed, NULL);
    run_until(&closed, 1);

    /* A command in flight when the server dies: no answer. */
    reset();
    cr_assert_eq(saga_lease_dead_workers(S, on_names, NULL), 0);
    fixture_kill_redis();
    run_until(&G.calls, 1);
    cr_assert(G.status == SAGA_EUNAVAILABLE || G.status == 0, "status %d", G.status);
    /* Not connected any more: refused at once, no callback. */
    fixture_deadline_start(5000);
    int rc = 0;
    while (!fixture_expired() && (rc = saga_lease_heartbeat(S, "w", 1000, on_heartbeat, NULL)) == 0) {
        run_until(&G.calls, G.calls + 1);
        uv_run(&L, UV_RUN_NOWAIT);
    }
    fixture_deadline_stop();
    cr_assert_eq(rc, SAGA_EUNAVAILABLE);
    if (C != NULL)
        redisFree(C);
    C = NULL;
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* The intake                                                              */
/* ---------------------------------------------------------------------- */

/* The intake tests use one shard's stream: the last one (with one shard,
 * the stream of before). */
static unsigned IS(void) { return fixture_shards()->k - 1; }
static const char *IK(void) { return shard_key_n(IS(), SAGA_SHARD_INTAKE, NULL); }

static int events[3];
static void on_event(saga_intake_t *in, saga_intake_event_t ev, const char *errstr,
                     void *data) {
    (void)in;
    (void)errstr;
    (void)data;
    events[ev]++;
}

static saga_intake_t *intake(const char *consumer) {
    saga_intake_t *in = NULL;
    char err[128];
    cr_assert_eq(saga_intake_new(&L, S, &U, consumer, on_event, NULL, &in, err, sizeof(err)),
                 0, "%s", err);
    return in;
}

static void intake_close(saga_intake_t *in) {
    closed = 0;
    saga_intake_close(in, on_closed, NULL);
    run_until(&closed, 1);
}

static void submit(const char *id, const char *hash, const char *input) {
    redisReply *r = cmd("XADD %s * id %s name demo hash %s input %s ts 1", IK(), id,
                        hash, input);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
}

Test(worker_store, intake_new_refuses_bad_options) {
    saga_intake_t *in = (saga_intake_t *)1;
    char err[128];
    cr_assert_eq(saga_intake_new(&L, S, NULL, "w", NULL, NULL, &in, err, sizeof(err)), -EINVAL);
    cr_assert_null(in);
    cr_assert_str_eq(err, "the intake needs a Redis URL with a host or a socket");
    saga_redis_url_t bad = U;
    bad.transport = SAGA_REDIS_UNIX;
    bad.path = NULL;
    cr_assert_eq(saga_intake_new(&L, S, &bad, "w", NULL, NULL, &in, err, sizeof(err)), -EINVAL);
    cr_assert_eq(saga_intake_new(&L, S, &U, "", NULL, NULL, &in, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "the intake needs a consumer name");
    in = intake("w");
    intake_close(in);
    fixture_finish();
}

Test(worker_store, intake_group_read_ack) {
    saga_intake_t *in = intake("w1");
    CALL(saga_intake_create_group(in, on_done, NULL));
    cr_assert_eq(G.status, 0);
    CALL(saga_intake_create_group(in, on_done, NULL));
    cr_assert_eq(G.status, 0, "a group that exists is fine");

    memset(events, 0, sizeof(events));
    cr_assert_eq(saga_intake_read_new(in, IS(), 10, 100, on_requests, NULL), SAGA_EUNAVAILABLE,
                 "not connected yet");
    cr_assert_eq(saga_intake_connect(in), 0);
    run_until(&events[SAGA_INTAKE_READY], (int)fixture_shards()->k);
    cr_assert(saga_intake_ready(in, IS()));

    submit("s1", HASH, "{\"a\":1}");
    submit("s2", "short", "{}");
    cmd("XADD %s * id s3 hash %s", IK(), HASH);
    CALL(saga_intake_read_new(in, IS(), 10, 1000, on_requests, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.n, 3);
    cr_assert_str_eq(G.req_text[0][1], "s1");
    cr_assert_str_eq(G.req_text[0][2], HASH);
    cr_assert_eq(G.reqs[0].input_len, 7);
    cr_assert_null(G.reqs[0].malformed);
    cr_assert_str_eq(G.req_text[1][3], "its hash is not 64 characters");
    cr_assert_str_eq(G.req_text[1][1], "", "a malformed request has no id");
    cr_assert_str_eq(G.req_text[2][3], "no field 'input'");
    char entry[64];
    snprintf(entry, sizeof(entry), "%s", G.req_text[0][0]);

    /* Nothing new: the read waits, then answers none. */
    CALL(saga_intake_read_new(in, IS(), 10, 50, on_requests, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.n, 0);

    /* Delivered, unacknowledged: read again as our own pending ones. */
    CALL(saga_intake_read_pending(in, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.n, 3);
    CALL(saga_intake_done(in, IS(), entry, on_done, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(cmd_int("XLEN %s", IK()), 2, "deleted");
    CALL(saga_intake_read_pending(in, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.n, 2, "acknowledged");

    /* An entry deleted while pending is left out. */
    cmd("XTRIM %s MAXLEN 0", IK());
    CALL(saga_intake_read_pending(in, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.n, 0);
    intake_close(in);
    fixture_finish();
}

/* A worker acknowledges the requests it finished in one loop turn with one
 * call: every entry given is acknowledged and deleted, the others stay. */
Test(worker_store, intake_done_many_acknowledges_and_deletes_them_all) {
    saga_intake_t *in = intake("w1");
    CALL(saga_intake_create_group(in, on_done, NULL));
    cr_assert_eq(saga_intake_connect(in), 0);
    run_until(&events[SAGA_INTAKE_READY], (int)fixture_shards()->k);
    submit("m1", HASH, "{}");
    submit("m2", HASH, "{}");
    submit("m3", HASH, "{}");
    submit("m4", HASH, "{}");
    CALL(saga_intake_read_new(in, IS(), 10, 1000, on_requests, NULL));
    cr_assert_eq(G.n, 4);
    char entries[3][64];
    const char *v[SAGA_INTAKE_DONE_MAX + 1];
    for (int i = 0; i < 3; i++) {
        snprintf(entries[i], sizeof(entries[i]), "%s", G.req_text[i][0]);
        v[i] = entries[i];
    }
    cr_assert_eq(saga_intake_done_many(in, IS(), v, 0, on_done, NULL), -EINVAL);
    for (int i = 3; i <= SAGA_INTAKE_DONE_MAX; i++)
        v[i] = entries[0];
    cr_assert_eq(saga_intake_done_many(in, IS(), v, SAGA_INTAKE_DONE_MAX + 1, on_done, NULL), -EINVAL);
    CALL(saga_intake_done_many(in, IS(), v, 3, on_done, NULL));
    cr_assert_eq(G.status, 0, "%s", G.why);
    cr_assert_eq(cmd_int("XLEN %s", IK()), 1, "three deleted");
    CALL(saga_intake_read_pending(in, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.n, 1, "three acknowledged");
    cr_assert_str_eq(G.req_text[0][1], "m4");
    redisReply *r = cmd("FCALL saga_intake_done 1 %s workers %s %s %s", IK(),
                        entries[0], entries[1], G.req_text[0][0]);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_eq(r->integer, 1, "only the entry still there counts");
    freeReplyObject(r);
    cr_assert_eq(cmd_int("XLEN %s", IK()), 0);
    intake_close(in);
    fixture_finish();
}

/* The stream is trimmed, not deleted from entry by entry: up to the oldest
 * request still pending (any consumer's), or up to the last one delivered.
 * A request handled while an older one is pending stays until that one is
 * handled; one not delivered yet is never touched. The backlog counts the
 * requests not handled, whatever the stream still holds. */
static long long backlog(void) {
    redisReply *r = cmd("FCALL saga_intake_backlog 1 %s workers", IK());
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    return r->integer; /* r is freed by the next cmd() */
}

Test(worker_store, intake_is_trimmed_up_to_the_oldest_request_not_handled) {
    saga_intake_t *in = intake("w1");
    cr_assert_eq(saga_intake_connect(in), 0);
    run_until(&events[SAGA_INTAKE_READY], (int)fixture_shards()->k);
    cr_assert_eq(backlog(), 0, "no stream yet");
    CALL(saga_intake_create_group(in, on_done, NULL));
    submit("t1", HASH, "{}");
    submit("t2", HASH, "{}");
    submit("t3", HASH, "{}");
    cr_assert_eq(backlog(), 3, "none delivered");
    CALL(saga_intake_read_new(in, IS(), 3, 1000, on_requests, NULL));
    cr_assert_eq(G.n, 3);
    char e[3][64];
    for (int i = 0; i < 3; i++)
        snprintf(e[i], sizeof(e[i]), "%s", G.req_text[i][0]);
    submit("t4", HASH, "{}"); /* not delivered */
    cr_assert_eq(backlog(), 4, "three pending, one not delivered");

    /* The newest delivered one handled first: the older two are pending. */
    CALL(saga_intake_done(in, IS(), e[2], on_done, NULL));
    cr_assert_eq(G.status, 0, "%s", G.why);
    cr_assert_eq(cmd_int("XLEN %s", IK()), 4, "nothing before the oldest pending");
    cr_assert_eq(backlog(), 3, "the handled one is not counted");
    /* The oldest: the stream starts at the next pending one. */
    CALL(saga_intake_done(in, IS(), e[0], on_done, NULL));
    cr_assert_eq(cmd_int("XLEN %s", IK()), 3);
    cr_assert_eq(backlog(), 2);
    /* The last pending one: everything delivered goes, the undelivered stays. */
    CALL(saga_intake_done(in, IS(), e[1], on_done, NULL));
    cr_assert_eq(cmd_int("XLEN %s", IK()), 1, "t4 was never delivered");
    cr_assert_eq(backlog(), 1);
    CALL(saga_intake_read_new(in, IS(), 10, 1000, on_requests, NULL));
    cr_assert_eq(G.n, 1);
    cr_assert_str_eq(G.req_text[0][1], "t4", "the request left is read as new");
    snprintf(e[0], sizeof(e[0]), "%s", G.req_text[0][0]); /* CALL clears G */
    CALL(saga_intake_done(in, IS(), e[0], on_done, NULL));
    cr_assert_eq(G.status, 0, "%s", G.why);
    cr_assert_eq(cmd_int("XLEN %s", IK()), 0);
    cr_assert_eq(backlog(), 0);
    intake_close(in);
    fixture_finish();
}

Test(worker_store, intake_autoclaim_takes_what_a_dead_consumer_left) {
    saga_intake_t *a = intake("a"), *b = intake("b");
    CALL(saga_intake_create_group(a, on_done, NULL));
    submit("s1", HASH, "{}");
    CALL(saga_intake_read_pending(a, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.n, 0, "nothing delivered to a yet");
    redisReply *r = cmd("XREADGROUP GROUP workers a COUNT 10 STREAMS %s >", IK());
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    CALL(saga_intake_autoclaim(b, IS(), 60000, 10, on_requests, NULL));
    cr_assert_eq(G.n, 0, "not idle long enough");
    CALL(saga_intake_autoclaim(b, IS(), 0, 10, on_requests, NULL));
    cr_assert_eq(G.status, 0);
    cr_assert_eq(G.n, 1);
    cr_assert_str_eq(G.req_text[0][1], "s1");
    CALL(saga_intake_read_pending(b, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.n, 1, "b's now");
    intake_close(a);
    intake_close(b);
    fixture_finish();
}

Test(worker_store, intake_failures) {
    saga_intake_t *in = intake("w1");
    cr_assert_eq(saga_intake_read_pending(in, IS(), 0, on_requests, NULL), -EINVAL);
    CALL(saga_intake_read_pending(in, IS(), 10, on_requests, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE, "no group yet");
    cr_assert(strstr(G.why, "NOGROUP") != NULL, "why: %s", G.why);

    cmd("SET %s x", IK());
    CALL(saga_intake_create_group(in, on_done, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    CALL(saga_intake_autoclaim(in, IS(), 0, 10, on_requests, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    load_bad_library();
    CALL(saga_intake_done(in, IS(), "1-0", on_done, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert_str_eq(G.why, "ERR refused");
    cmd("DEL %s", IK());

    /* One blocking read at a time; closing ends it. */
    CALL(saga_intake_create_group(in, on_done, NULL));
    memset(events, 0, sizeof(events));
    cr_assert_eq(saga_intake_connect(in), 0);
    run_until(&events[SAGA_INTAKE_READY], (int)fixture_shards()->k);
    reset();
    cr_assert_eq(saga_intake_read_new(in, IS(), 10, 5000, on_requests, NULL), 0);
    cr_assert_eq(saga_intake_read_new(in, IS(), 10, 5000, on_requests, NULL), -EBUSY);
    closed = 0;
    saga_intake_close(in, on_closed, NULL);
    run_until(&closed, 1);
    cr_assert_eq(G.calls, 1, "the read was answered");
    cr_assert_eq(G.status, SAGA_ECLOSING);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* The list's keyset cursors, here also on Redis Cluster                   */
/* ---------------------------------------------------------------------- */

typedef struct {
    int calls, status;
    char ids[64][16];
    size_t n;
    char next[SAGA_OPERATOR_CURSOR_MAX + 1];
} listed_t;

static void on_listed(int status, const char *why, const saga_operator_page_t *p, void *data) {
    (void)why;
    listed_t *l = data;
    l->status = status;
    l->next[0] = '\0';
    if (status == 0) {
        for (size_t i = 0; i < p->n && l->n < 64; i++)
            snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", p->items[i].id);
        snprintf(l->next, sizeof(l->next), "%s", p->next ? p->next : "");
    }
    l->calls++;
}

/* Pages of 2 through unfinished and finished sagas, runs of equal scores
 * among them, while listed ones are removed (the cursor's own too): each
 * saga that stays comes once, in order (with K shards the index is K
 * keys, merged by the list). */
Test(worker_store, list_pages_with_keyset_cursors) {
    /* in the order listed: unfinished newest first (equal scores by id),
     * then finished, the last first (equal scores by id, reversed) */
    static const char *const order[] = {"k-new", "k-a", "k-b", "k-c", "k-d", "k-old",
                                        "k-late", "k-z", "k-y", "k-x", "k-w", "k-early"};
    static const long long score[] = {-9000, -8000, -8000, -8000, -8000, -7000,
                                      3000, 2000, 2000, 2000, 2000, 1000};
    for (size_t i = 0; i < 12; i++) {
        cmd("HSET saga:{%s} id %s saga listed state %s created 1", order[i], order[i],
            score[i] < 0 ? "running" : "completed");
        cmd("ZADD %s %lld %s", SAGAS(order[i]), score[i], order[i]);
    }
    static listed_t l;
    memset(&l, 0, sizeof(l));
    bool removed[12] = {false};
    char cursor[SAGA_OPERATOR_CURSOR_MAX + 1] = "";
    for (int page = 0; page < 40; page++) {
        saga_operator_list_query_t q = {NULL, NULL, 2, cursor[0] ? cursor : NULL};
        int want = l.calls + 1;
        cr_assert_eq(saga_operator_list(S, &q, on_listed, &l), 0);
        run_until(&l.calls, want);
        cr_assert_eq(l.status, 0);
        if (l.next[0] == '\0')
            break;
        snprintf(cursor, sizeof(cursor), "%s", l.next);
        if (page % 3 == 1) { /* the last listed goes: it is the cursor's */
            for (size_t i = 0; i < 12; i++)
                if (strcmp(order[i], l.ids[l.n - 1]) == 0 && !removed[i]) {
                    removed[i] = true;
                    cmd("ZREM %s %s", SAGAS(order[i]), order[i]);
                }
        }
    }
    cr_assert_eq(l.next[0], '\0', "the cursors end");
    size_t k = 0;
    for (size_t i = 0; i < 12; i++) {
        if (removed[i])
            continue;
        size_t times = 0;
        for (size_t j = 0; j < l.n; j++)
            times += strcmp(l.ids[j], order[i]) == 0;
        cr_assert_eq(times, 1, "%s listed %zu times", order[i], times);
        while (k < l.n && strcmp(l.ids[k], order[i]) != 0)
            k++;
        cr_assert_lt(k, l.n, "%s out of order", order[i]);
    }
    cr_assert_eq(l.n, 12, "removed only after being listed: all 12 listed once");
    fixture_finish();
}
