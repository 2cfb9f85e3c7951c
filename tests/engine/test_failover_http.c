/*
 * test_failover_http.c -- failover of a Redis Cluster primary under a load
 * of HTTP sagas (issue 20): real `saga worker` processes, the real sample
 * service, a loopback cluster of 3 primaries and 3 replicas.
 *
 * Each run starts 3 workers on the cluster's URL and 2,000 sagas of three
 * HTTP steps against the sample service; a seeded share of them is refused
 * by the service (at step b or at step c, 409: not retried) and
 * compensates. Once a seeded number of calls has reached the service, a
 * primary gets kill -9 (run 0: the one holding {idx}, the leases, and
 * with one shard the intake and the index;
 * the other runs: a seeded choice of the two others), its replica is
 * promoted, and the killed node comes back as a replica. Then every saga
 * must reach its expected state, and the service's own log of calls must
 * show:
 *   - no completed saga was compensated;
 *   - compensations came in reverse order, for exactly the steps whose
 *     action was called;
 *   - every (saga, step, phase) used one idempotency key, the documented
 *     "<saga>/<step>/<phase>".
 * Five runs (seeds) with --min-replicas automatic (1 here), five with
 * --min-replicas 0. With 0 a transition acknowledged by the dying primary
 * may be lost (docs/durability.md): what was lost (sagas a worker dropped
 * on a conflict, sagas missing, unfinished or ended otherwise) is printed,
 * not failed; the idempotency keys and the order and shape of the calls
 * still must hold.
 *
 * SAGA_TEST_SEED=<n> replays: run k uses seed n + k (printed). Under ASan
 * (SAGA_TEST_SAGAS, set by CMake) the runs use fewer sagas.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "../steps/service_proc.h"
#include "redis_cluster.h"
#include "redis_cmd.h"
#include "saga_proc.h"
#include "store/shards.h"
#include "test_poll.h"

#define NWORKERS 3
#define MAX_SAGAS 2000

static redis_cluster_t RC;
static service_proc_t S;
static bool service_up;
static redisContext *node_ctx[REDIS_CLUSTER_NODES];
static char dir[512];
static pid_t workers[NWORKERS];

/* What each saga was given and should end as. */
typedef enum { OK = 0, REFUSED_B, REFUSED_C } fate_t;
static fate_t fate[MAX_SAGAS];
static int nsagas;

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    memset(workers, 0, sizeof(workers));
}

static void teardown(void) {
    for (int i = 0; i < NWORKERS; i++)
        if (workers[i] > 0) {
            kill(workers[i], SIGKILL);
            saga_proc_wait(workers[i]);
            workers[i] = 0;
        }
    for (int i = 0; i < REDIS_CLUSTER_NODES; i++)
        if (node_ctx[i] != NULL) {
            redisFree(node_ctx[i]);
            node_ctx[i] = NULL;
        }
    redis_cluster_stop(&RC);
    if (service_up)
        service_stop(&S);
    service_up = false;
}

/* The killed primary and the replica promoted in its place: a node
 * restarted after a kill -9 may still describe itself as the primary of
 * its slots until gossip tells it otherwise, and redis_cluster_primary_of()
 * may ask it first. */
static int killed = -1, promoted_for_killed = -1;

/* A blocking connection to the primary serving `key` now. */
static redisContext *ctx_for(const char *key) {
    int i = redis_cluster_primary_of(&RC, redis_cluster_key_slot(key));
    cr_assert_geq(i, 0, "no primary serves %s", key);
    if (i == killed)
        i = promoted_for_killed;
    if (node_ctx[i] != NULL && node_ctx[i]->err) {
        redisFree(node_ctx[i]);
        node_ctx[i] = NULL;
    }
    if (node_ctx[i] == NULL)
        node_ctx[i] = redis_cluster_connect(&RC, i);
    cr_assert_not_null(node_ctx[i]);
    return node_ctx[i];
}

/* The shards of the global keys (store/shards.h) the first worker recorded
 * in saga:{idx}:shards; read once a worker started. */
static const saga_shards_t *shards(void) {
    static saga_shards_t sh;
    static bool known;
    if (known)
        return &sh;
    redisReply *r = redis_cmd(ctx_for("saga:{idx}:shards"), "GET saga:{idx}:shards");
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "saga:{idx}:shards is recorded");
    char err[160];
    cr_assert_eq(saga_shards_parse(&sh, r->str, (size_t)r->len, err, sizeof(err)), 0,
                 "saga:{idx}:shards: %s", err);
    freeReplyObject(r);
    known = true;
    return &sh;
}

/* Key `name` (SAGA_SHARD_...) of shard `s`, in a ring of 8 buffers. */
static const char *skey(unsigned s, const char *name) {
    static char ring[8][256];
    static unsigned next;
    char *buf = ring[next++ % 8];
    cr_assert_geq(saga_shards_key(shards(), s, name, NULL, buf, sizeof(ring[0])), 0);
    return buf;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The definition: three HTTP steps, each undone by a cancel of its record.
 * ${input.b} / ${input.c} name the action called, "decline" being refused
 * (409) by the service. Each action answers after ${input.ms} ms. */
static void write_def(void) {
    char path[700];
    snprintf(path, sizeof(path), "%s/defs/fo_http.yaml", dir);
    saga_proc_write_file(path,
        "saga: fo_http\n"
        "defaults:\n"
        "  timeout: 20s\n"
        "  retry: {max_attempts: 5, initial_delay: 100ms}\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: http.request, with: {method: POST,"
        " url: \"${input.base_url}/order/create?delay_ms=${input.ms}\", body: {saga: \"${saga.id}\"}}}\n"
        "    compensation: {handler: http.request, with: {method: POST,"
        " url: \"${input.base_url}/order/create/cancel\", body: {id: \"${steps.a.output.body.id}\"}}}\n"
        "  - name: b\n"
        "    action: {handler: http.request, with: {method: POST,"
        " url: \"${input.base_url}/inventory/${input.b}?delay_ms=${input.ms}\"}}\n"
        "    compensation: {handler: http.request, with: {method: POST,"
        " url: \"${input.base_url}/inventory/${input.b}/cancel\", body: {id: \"${steps.b.output.body.id}\"}}}\n"
        "  - name: c\n"
        "    action: {handler: http.request, with: {method: POST,"
        " url: \"${input.base_url}/payment/${input.c}?delay_ms=${input.ms}\"}}\n"
        "    compensation: {handler: http.request, with: {method: POST,"
        " url: \"${input.base_url}/payment/${input.c}/cancel\", body: {id: \"${steps.c.output.body.id}\"}}}\n");
}

static void start_worker(int i, const char *min_replicas) {
    char log[700], name[16], defs[600];
    snprintf(log, sizeof(log), "%s/w%d.log", dir, i);
    snprintf(name, sizeof(name), "w%d", i);
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    const char *argv[] = {"worker", "--redis", RC.node[0].url, "--defs", defs, "--name", name,
                          "--lease", "2s", "--concurrency", "400", "--grace", "5s",
                          "--min-replicas", min_replicas, NULL};
    saga_proc_io_t io = {.out = log, .err = log, .append = true};
    workers[i] = saga_proc_spawn(argv, &io);
    test_poll_t p = test_poll_start(20000);
    for (;;) {
        redisReply *r = redis_cmd(ctx_for("saga:{idx}:workers"), "ZSCORE saga:{idx}:workers %s", name);
        bool up = r->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
        if (up)
            break;
        if (!test_poll_next(&p)) {
            char *l = saga_proc_slurp(log);
            cr_assert_fail("worker %s did not register within 20 s; its log:\n%s", name, l);
        }
    }
}

static int stop_worker(int i) {
    kill(workers[i], SIGTERM);
    int status = saga_proc_wait(workers[i]);
    workers[i] = 0;
    char log[700];
    snprintf(log, sizeof(log), "%s/w%d.log", dir, i);
    saga_proc_assert_clean(log);
    return status;
}

/* Enqueues the start requests straight into Redis, as `saga submit` does. */
static void submit_all(int ms) {
    redisReply *h = redis_cmd(ctx_for("saga:{idx}:defs"), "HGET saga:{idx}:defs fo_http");
    cr_assert_eq(h->type, REDIS_REPLY_STRING, "fo_http not published");
    char hash[65];
    snprintf(hash, sizeof(hash), "%s", h->str);
    freeReplyObject(h);
    for (int i = 0; i < nsagas; i++) {
        char id[32], input[256];
        snprintf(id, sizeof(id), "fo-%d", i);
        snprintf(input, sizeof(input),
                 "{\"base_url\": \"%s\", \"ms\": %d, \"b\": \"%s\", \"c\": \"%s\"}", S.base,
                 ms, fate[i] == REFUSED_B ? "decline" : "reserve",
                 fate[i] == REFUSED_C ? "decline" : "charge");
        /* To its shard's intake, on the connection of that slot (each
         * answers in order). */
        unsigned s = saga_shards_of(shards(), id);
        redisAppendCommand(ctx_for(skey(s, SAGA_SHARD_INTAKE)),
                           "FCALL saga_submit 2 %s %s %s %s %s %s 604800000",
                           skey(s, SAGA_SHARD_INTAKE), skey(s, SAGA_SHARD_SUBMITTED), id,
                           "fo_http", hash, input);
    }
    for (int i = 0; i < nsagas; i++) {
        char id[32];
        snprintf(id, sizeof(id), "fo-%d", i);
        redisReply *r;
        cr_assert_eq(redisGetReply(ctx_for(skey(saga_shards_of(shards(), id),
                                                SAGA_SHARD_INTAKE)), (void **)&r),
                     REDIS_OK);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "submit: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
}

/* Sagas unfinished (the index) plus start requests still waiting, over
 * every shard. */
static long long pending(void) {
    long long n = 0;
    for (unsigned s = 0; s < shards()->k; s++) {
        const char *sagas = skey(s, SAGA_SHARD_SAGAS), *intake = skey(s, SAGA_SHARD_INTAKE);
        n += redis_cmd_int(ctx_for(sagas), "ZCOUNT %s -inf (0", sagas) +
             redis_cmd_int(ctx_for(intake), "XLEN %s", intake);
    }
    return n;
}

/* Waits until nothing is pending. With `strict`, fails after `secs`;
 * otherwise returns how many are still pending once the count has not
 * moved for 30 s (or after `secs`). */
static long long wait_done(int secs, bool strict) {
    test_poll_t p = test_poll_every(secs * 1000L, 100);
    long long last = -1, since = now_ms(), n;
    while ((n = pending()) > 0) {
        if (n != last) {
            last = n;
            since = now_ms();
        }
        if (!strict && now_ms() - since > 30000)
            return n;
        if (!test_poll_next(&p)) {
            cr_assert(!strict, "%lld sagas or requests still pending after %d s", n, secs);
            return n;
        }
    }
    return 0;
}

static void state_of(int i, char *buf, size_t len) {
    char key[48];
    snprintf(key, sizeof(key), "saga:{fo-%d}", i);
    redisReply *r = redis_cmd(ctx_for(key), "HGET %s state", key);
    snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* A call's place in a saga's run: actions a, b, c (0..2), then
 * compensations c, b, a (3..5); -1 when unknown. */
static int place_of(const char *step, const char *phase) {
    if (step == NULL || phase == NULL || strlen(step) != 1 || step[0] < 'a' || step[0] > 'c')
        return -1;
    int s = step[0] - 'a';
    if (strcmp(phase, "action") == 0)
        return s;
    if (strcmp(phase, "compensation") == 0)
        return 5 - s;
    return -1;
}

/* Prints saga `id`'s calls (from the service's log) and its history. */
static void dump_saga(json_t *calls, const char *id) {
    size_t k;
    json_t *c;
    json_array_foreach(calls, k, c) {
        const char *saga = json_string_value(json_object_get(c, "saga_id"));
        if (saga == NULL || strcmp(saga, id) != 0)
            continue;
        fprintf(stderr, "  call seq %lld t %lld ms conn %lld: %s %s attempt %s status %lld%s\n",
                (long long)json_integer_value(json_object_get(c, "seq")),
                (long long)json_integer_value(json_object_get(c, "time_ms")),
                (long long)json_integer_value(json_object_get(c, "conn")),
                json_string_value(json_object_get(c, "saga_step")),
                json_string_value(json_object_get(c, "saga_phase")),
                json_string_value(json_object_get(c, "saga_attempt")),
                (long long)json_integer_value(json_object_get(c, "status")),
                json_is_true(json_object_get(c, "replayed")) ? " (replayed)" : "");
    }
    char key[64];
    snprintf(key, sizeof(key), "saga:{%s}:history", id);
    redisReply *r = redis_cmd(ctx_for(key), "LRANGE %s 0 -1", key);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        fprintf(stderr, "  history %zu: %s\n", i, r->element[i]->str);
    freeReplyObject(r);
}

typedef struct {
    int last_place;      /* the latest place called, -1 before the first call */
    unsigned called;     /* bit per place */
} saga_calls_t;

typedef struct {
    long long total_calls, repeated_calls, replayed;
    int late_repeats;       /* calls repeating an earlier place after a later one */
    int missing;            /* sagas with no record, or unfinished */
    int wrong_state;        /* sagas ended otherwise than expected */
    int conflicts;          /* drops of a saga on a conflict: a lost write */
    int fenced;             /* drops of a saga taken over by another worker */
} report_t;

/* Counts lines holding `what` in the workers' logs. */
static int in_worker_logs(const char *what) {
    int n = 0;
    for (int i = 0; i < NWORKERS; i++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/w%d.log", dir, i);
        char *text = saga_proc_slurp(path);
        for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
            n++;
        free(text);
    }
    return n;
}

/* Reads the service's log and checks every saga against it. `strict`
 * (--min-replicas 1): a saga missing, unfinished or in another state than
 * expected fails the test; otherwise (0) it is counted as lost. */
static void check_calls(report_t *rep, bool strict) {
    static saga_calls_t sc[MAX_SAGAS];
    memset(sc, 0, sizeof(sc));
    for (int i = 0; i < nsagas; i++)
        sc[i].last_place = -1;
    json_t *calls = service_get(&S, "/_calls");
    size_t k;
    json_t *c;
    json_array_foreach(calls, k, c) {
        const char *saga = json_string_value(json_object_get(c, "saga_id"));
        const char *step = json_string_value(json_object_get(c, "saga_step"));
        const char *phase = json_string_value(json_object_get(c, "saga_phase"));
        const char *key = json_string_value(json_object_get(c, "idempotency_key"));
        int i = -1, place = place_of(step, phase);
        cr_assert(saga != NULL && sscanf(saga, "fo-%d", &i) == 1 && i >= 0 && i < nsagas &&
                  place >= 0, "call %zu names no saga of this run (%s %s %s)", k,
                  saga ? saga : "-", step ? step : "-", phase ? phase : "-");
        char want[96];
        snprintf(want, sizeof(want), "%s/%s/%s", saga, step, phase);
        cr_assert(key != NULL && strcmp(key, want) == 0,
                  "call %zu (%s) used idempotency key '%s'", k, want, key ? key : "(none)");
        rep->total_calls++;
        rep->replayed += json_is_true(json_object_get(c, "replayed"));
        /* The first call of each place comes in the saga's order: actions
         * a, b, c, then compensations c, b, a. A call repeating a place
         * (same key) may come later: an owner that wrote "started" just
         * before a takeover makes its call once the write is confirmed,
         * a resume after a lost write calls again; the service answers it
         * from its idempotency store. Counted, not failed. */
        saga_calls_t *s = &sc[i];
        if (s->called & (1u << place)) {
            rep->repeated_calls++;
            if (place < s->last_place)
                rep->late_repeats++;
        } else if (place < s->last_place) {
            dump_saga(calls, saga);
            cr_assert_fail("saga %s: %s's %s first called after a later step's call (place "
                           "%d): out of order (its calls and history above)", saga, step,
                           phase, s->last_place);
        }
        s->called |= 1u << place;
        if (place > s->last_place)
            s->last_place = place;
    }
    json_decref(calls);

    for (int i = 0; i < nsagas; i++) {
        char st[32];
        state_of(i, st, sizeof(st));
        const char *want = fate[i] == OK ? "completed" : "compensated";
        if (strcmp(st, want) != 0) {
            bool lost = st[0] == '\0' || (strcmp(st, "completed") != 0 &&
                                          strcmp(st, "compensated") != 0);
            if (lost)
                rep->missing++;
            else
                rep->wrong_state++;
            fprintf(stderr, "failover_http: saga fo-%d is '%s', expected %s\n", i, st, want);
            cr_assert(!strict, "saga fo-%d is '%s', expected %s", i, st, want);
            continue;
        }
        unsigned called = sc[i].called, actions = called & 7u, comps = 0;
        /* Compensation of step s is place 5 - s: its bit, as a step bit. */
        for (int s = 0; s < 3; s++)
            if (called & (1u << (5 - s)))
                comps |= 1u << s;
        if (fate[i] == OK) {
            cr_assert_eq(actions, 7u, "completed saga fo-%d: actions called %#x", i, actions);
            cr_assert_eq(comps, 0u, "completed saga fo-%d was compensated (steps %#x)", i, comps);
        } else {
            unsigned expect = fate[i] == REFUSED_B ? 3u : 7u; /* a, b (, c) */
            cr_assert_eq(actions, expect, "compensated saga fo-%d: actions called %#x, "
                         "expected %#x", i, actions, expect);
            cr_assert_eq(comps, actions, "compensated saga fo-%d: compensations of steps %#x, "
                         "actions of steps %#x", i, comps, actions);
        }
    }
}

/* One run: `run` 0..4 (run 0 kills the primary of {idx}), `min_replicas`
 * 1 (what the automatic default gives here) or 0. */
static void failover_run(int run, int min_replicas) {
    const char *seed_env = getenv("SAGA_TEST_SEED");
    unsigned base = seed_env != NULL ? (unsigned)strtoul(seed_env, NULL, 10)
                                     : (unsigned)time(NULL);
    unsigned seed = base + (unsigned)run;
    const char *n_env = getenv("SAGA_TEST_SAGAS");
    nsagas = n_env != NULL ? atoi(n_env) : MAX_SAGAS;
    if (nsagas <= 0 || nsagas > MAX_SAGAS)
        nsagas = MAX_SAGAS;
    srand(seed);
    const char *mr = min_replicas ? "1" : "0";
    fprintf(stderr, "failover_http: run %d, --min-replicas %s, %d sagas, seed %u "
            "(SAGA_TEST_SEED=%u to replay)\n", run, mr, nsagas, seed, base);

    static const char *const args[] = {"--appendonly", "yes", NULL};
    cr_assert_eq(redis_cluster_start(&RC, args), 0, "the cluster did not start");
    snprintf(dir, sizeof(dir), "%s/work", RC.node[0].srv.dir);
    mkdir(dir, 0700);
    char defs[600];
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    mkdir(defs, 0700);
    write_def();
    static const char *const refuse[] = {"--refuse", "inventory/decline=409",
                                         "--refuse", "payment/decline=409", NULL};
    service_start(&S, refuse);
    service_up = true;

    /* Half complete, a quarter refused at b, a quarter at c. */
    int nfate[3] = {0};
    for (int i = 0; i < nsagas; i++) {
        int r = rand() % 4;
        fate[i] = r < 2 ? OK : r == 2 ? REFUSED_B : REFUSED_C;
        nfate[fate[i]]++;
    }
    for (int i = 0; i < NWORKERS; i++)
        start_worker(i, mr);
    submit_all(150);

    /* The kill comes once a seeded number of calls (10% to 50% of about
     * 5 per saga) reached the service. */
    long long kill_at = (long long)nsagas * 5 * (10 + rand() % 41) / 100;
    test_poll_t p = test_poll_start(120000);
    long long seen;
    for (;;) {
        json_t *h = service_get(&S, "/_health");
        seen = json_integer_value(json_object_get(h, "calls"));
        json_decref(h);
        if (seen >= kill_at)
            break;
        cr_assert(test_poll_next(&p), "only %lld calls after 120 s, waiting for %lld",
                  seen, kill_at);
    }
    int idx = redis_cluster_primary_of(&RC, redis_cluster_key_slot("saga:{idx}:workers"));
    cr_assert_geq(idx, 0);
    int victim = idx;
    if (run != 0) {
        /* One of the two others, which do not hold {idx}. */
        int prim[REDIS_CLUSTER_NODES], others[2], n = 0;
        cr_assert_eq(redis_cluster_primaries(&RC, prim), 3);
        for (int i = 0; i < 3; i++)
            if (prim[i] != idx)
                others[n++] = prim[i];
        cr_assert_eq(n, 2);
        victim = others[rand() % 2];
    }
    bool holds_idx = victim == idx;
    long long pending_at_kill = pending();
    long long t0 = now_ms();
    int promoted = redis_cluster_kill_primary(&RC, victim, 60000);
    cr_assert_geq(promoted, 0, "no replica of node %d took over", victim);
    killed = victim;
    promoted_for_killed = promoted;
    if (node_ctx[victim] != NULL) { /* its peer is gone */
        redisFree(node_ctx[victim]);
        node_ctx[victim] = NULL;
    }
    long long took = now_ms() - t0;
    cr_assert_eq(redis_server_restart(&RC.node[victim].srv), 0, "the killed node restarts");

    bool strict = min_replicas > 0;
    long long left = wait_done(300, strict);
    long long t_done = now_ms() - t0;
    report_t rep = {0};
    check_calls(&rep, strict);
    /* The load overlapped the failover, or the run proves nothing. */
    cr_assert_gt(pending_at_kill, 0, "every saga had finished before the kill");
    cr_assert_gt(rep.total_calls, seen, "no call reached the service after the kill");
    for (int i = 0; i < NWORKERS; i++)
        cr_assert_eq(stop_worker(i), 0, "worker w%d stops cleanly", i);
    /* A worker whose write finds the record older than its own (a
     * transition lost with the primary) drops the saga: "conflict". */
    rep.conflicts = in_worker_logs("dropped: conflict");
    rep.fenced = in_worker_logs("dropped: fenced");

    fprintf(stderr, "failover_http: run %d --min-replicas %s seed %u: node %d%s killed after "
            "%lld calls (%lld sagas/requests pending), node %d promoted after %lld ms, all "
            "done %lld ms after the kill; %d sagas (%d complete, %d refused at b, %d at c); "
            "%lld calls, %lld repeated (same key), %lld answered from the idempotency store\n",
            run, mr, seed, victim, holds_idx ? " (holding {idx})" : "", seen,
            pending_at_kill, promoted, took, t_done, nsagas, nfate[OK], nfate[REFUSED_B],
            nfate[REFUSED_C], rep.total_calls, rep.repeated_calls, rep.replayed);
    fprintf(stderr, "failover_http: run %d --min-replicas %s seed %u: %d drops of a saga taken "
            "over (fenced), %d calls repeated after a later step's call; lost: %d drops of "
            "a saga on a conflict (a transition lost with the primary), %d sagas missing or "
            "unfinished (%lld still pending), %d ended otherwise than expected\n", run, mr, seed,
            rep.fenced, rep.late_repeats, rep.conflicts, rep.missing, left, rep.wrong_state);
    if (strict)
        cr_assert_eq(rep.conflicts, 0, "--min-replicas 1: an acknowledged transition was lost");
}

TestSuite(failover_http, .init = setup, .fini = teardown, .timeout = 600);

Test(failover_http, seed0_primary_of_idx) { failover_run(0, 1); }
Test(failover_http, seed1) { failover_run(1, 1); }
Test(failover_http, seed2) { failover_run(2, 1); }
Test(failover_http, seed3) { failover_run(3, 1); }
Test(failover_http, seed4) { failover_run(4, 1); }
Test(failover_http, min_replicas_0_seed0_primary_of_idx) { failover_run(0, 0); }
Test(failover_http, min_replicas_0_seed1) { failover_run(1, 0); }
Test(failover_http, min_replicas_0_seed2) { failover_run(2, 0); }
Test(failover_http, min_replicas_0_seed3) { failover_run(3, 0); }
Test(failover_http, min_replicas_0_seed4) { failover_run(4, 0); }
