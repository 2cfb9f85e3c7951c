/*
 * test_store_shards.c -- the store's operations over the shards of the
 * global keys (store/shards.h): the list of sagas merged over every shard's
 * index, a submit into its shard's intake once, the gauges summed over the
 * shards, an orphan listed in its shard, and `saga list|status|cancel|
 * retry` reading the shards the store recorded. On one Redis (one shard, the keys
 * of before) and, as store_shards_cluster, on a loopback Redis Cluster with
 * 8 shards (SAGA_TEST_REDIS=cluster SAGA_TEST_SHARDS=8: store_fixture.h).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "saga_proc.h"
#include "store_fixture.h"
#include "saga/errors.h"
#include "store/gauges.h"
#include "store/operator.h"
#include "store/shards.h"
#include "store/store_redis.h"

static const char HASH[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void setup(void) { fixture_setup(0); }

TestSuite(store_shards, .init = setup, .fini = fixture_teardown);

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The sum of `count` (a command on a sharded key, "%s" for it) over every
 * shard of key `name`. */
static long long sum_over_shards(const char *count, const char *name) {
    long long n = 0;
    char fmt[64];
    snprintf(fmt, sizeof(fmt), "%s", count);
    for (unsigned s = 0; s < fixture_shards()->k; s++) {
        redisReply *r = cmd(fmt, shard_key_n(s, name, NULL));
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        n += r->integer;
    }
    return n;
}

/* How many shards ids[0..n) belong to. */
static unsigned shards_used(char (*ids)[24], size_t n) {
    bool used[SAGA_SHARDS_MAX] = {false};
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned s = saga_shards_of(fixture_shards(), ids[i]);
        k += !used[s];
        used[s] = true;
    }
    return k;
}

/* ---------------------------------------------------------------------- */
/* The list                                                                */
/* ---------------------------------------------------------------------- */

#define NSAGAS 450
#define NUNFINISHED 230

typedef struct saga_s {
    char id[24];
    long long score;  /* in the index: -created, or the expiry */
    bool even;        /* its name: "even" or "odd" */
} saga_t;

static saga_t sagas[NSAGAS];

/* The list's order: the unfinished ascending by (score, id bytewise), then
 * the finished descending by (score, id). */
static int list_order(const void *pa, const void *pb) {
    const saga_t *a = pa, *b = pb;
    bool fa = a->score >= 0, fb = b->score >= 0;
    if (fa != fb)
        return fa ? 1 : -1;
    int c = a->score != b->score ? (a->score < b->score ? -1 : 1) : strcmp(a->id, b->id);
    return fa ? -c : c;
}

/* NSAGAS records and index entries, each in its own shard: runs of equal
 * scores (three sagas created in the same ms, three finished sagas of the
 * same expiry) so that the merge orders by id too. Each record's reason
 * names its own id: an item shown with another saga's record is caught. */
static void put_sagas(void) {
    long long base = now_ms();
    for (int i = 0; i < NSAGAS; i++) {
        saga_t *s = &sagas[i];
        bool finished = i >= NUNFINISHED;
        /* ids whose bytes do not sort as their numbers: "l-10" < "l-9" */
        snprintf(s->id, sizeof(s->id), "l-%d", (i * 7919) % NSAGAS);
        s->even = i % 2 == 0;
        long long created = 1000000 + i / 3;
        s->score = finished ? base + 3600000 + (i / 3) : -created;
        cmd("HSET saga:{%s} id %s saga %s state %s created %lld reason r-%s seq 3 def %s",
            s->id, s->id, s->even ? "even" : "odd", finished ? "completed" : "running", created,
            s->id, HASH);
        cmd("ZADD %s %lld %s", shard_key(SAGA_SHARD_SAGAS, NULL, s->id), s->score, s->id);
    }
    qsort(sagas, NSAGAS, sizeof(sagas[0]), list_order);
}

typedef struct listed_s {
    int calls;
    int status;
    char why[256];
    size_t n;
    char ids[NSAGAS + 8][24];
    char next[SAGA_OPERATOR_CURSOR_MAX + 1];
    size_t pages;
} listed_t;

static void on_listed(int status, const char *why, const saga_operator_page_t *p, void *data) {
    listed_t *l = data;
    l->calls++;
    l->status = status;
    l->next[0] = '\0';
    if (status != 0) {
        snprintf(l->why, sizeof(l->why), "%s", why);
        return;
    }
    l->pages++;
    for (size_t i = 0; i < p->n; i++) {
        const saga_operator_item_t *it = &p->items[i];
        char reason[40];
        snprintf(reason, sizeof(reason), "r-%s", it->id);
        cr_assert(it->reason != NULL && strcmp(it->reason, reason) == 0,
                  "item %s shows the record of another saga (reason %s)", it->id,
                  it->reason ? it->reason : "none");
        cr_assert_lt(l->n, NSAGAS + 8, "more items than sagas");
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", it->id);
    }
    snprintf(l->next, sizeof(l->next), "%s", p->next ? p->next : "");
}

/* Every page of the list (`saga` NULL or a name), `limit` items a page. */
static void list_all(listed_t *l, const char *saga, size_t limit) {
    memset(l, 0, sizeof(*l));
    char cursor[SAGA_OPERATOR_CURSOR_MAX + 1] = "";
    for (int page = 0; page < NSAGAS + 10; page++) {
        saga_operator_list_query_t q = {NULL, saga, limit, cursor[0] ? cursor : NULL};
        int want = l->calls + 1;
        cr_assert_eq(saga_operator_list(S, &q, on_listed, l), 0);
        run_until(&l->calls, want);
        cr_assert_eq(l->status, 0, "%s", l->why);
        if (l->next[0] == '\0')
            return;
        snprintf(cursor, sizeof(cursor), "%s", l->next);
    }
    cr_assert_fail("the cursors never end");
}

/* Pages through more sagas than one read of the index (200) and than one
 * call looks at (1,000 ids: with a filter), spread over every shard: each
 * saga comes exactly once, in the order of the whole index. */
Test(store_shards, list_pages_merge_every_shard_in_order) {
    put_sagas();
    char ids[NSAGAS][24];
    for (int i = 0; i < NSAGAS; i++)
        memcpy(ids[i], sagas[i].id, sizeof(ids[i]));
    cr_assert_eq(shards_used(ids, NSAGAS), fixture_shards()->k, "in every shard");
    static listed_t l;
    size_t limits[] = {70, 1, 450, 10000};
    for (size_t t = 0; t < sizeof(limits) / sizeof(limits[0]); t++) {
        if (limits[t] == 1 && fixture_shards()->k == 1)
            continue; /* 450 calls: once, on the shards, is enough */
        list_all(&l, NULL, limits[t]);
        cr_assert_eq(l.n, NSAGAS, "limit %zu: every saga listed (%zu)", limits[t], l.n);
        for (size_t i = 0; i < NSAGAS; i++)
            cr_assert_str_eq(l.ids[i], sagas[i].id, "limit %zu: item %zu", limits[t], i);
        if (limits[t] == 70)
            cr_assert_geq(l.pages, 7, "in pages");
    }
    /* Filtered: the even ones, in the same order. */
    list_all(&l, "even", 40);
    size_t k = 0;
    for (size_t i = 0; i < NSAGAS; i++)
        if (sagas[i].even) {
            cr_assert_lt(k, l.n);
            cr_assert_str_eq(l.ids[k], sagas[i].id, "even item %zu", k);
            k++;
        }
    cr_assert_eq(l.n, k, "only the even ones");
    fixture_finish();
}

/* A shard whose index holds something that is not a saga id fails the
 * page, naming that shard's key. */
Test(store_shards, a_bad_entry_in_a_shard_names_its_key) {
    unsigned last = fixture_shards()->k - 1;
    const char *key = shard_key_n(last, SAGA_SHARD_SAGAS, NULL);
    cmd("ZADD %s -5 %s", key, "bad}id");
    static listed_t l;
    memset(&l, 0, sizeof(l));
    saga_operator_list_query_t q = {NULL, NULL, 10, NULL};
    cr_assert_eq(saga_operator_list(S, &q, on_listed, &l), 0);
    run_until(&l.calls, 1);
    cr_assert_eq(l.status, SAGA_ECORRUPT);
    char want[200];
    snprintf(want, sizeof(want), "%s holds 'bad}id', not a saga id", key);
    cr_assert_str_eq(l.why, want);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* Submit, state, orphans                                                  */
/* ---------------------------------------------------------------------- */

static struct {
    int calls;
    int status;
    char why[256];
    bool fresh;
    saga_operator_state_t st;
    saga_operator_next_t next;
    saga_gauges_t g;
} G;

static void on_submit(int status, const char *why, bool fresh, void *data) {
    (void)data;
    G.calls++;
    G.status = status;
    G.fresh = fresh;
    snprintf(G.why, sizeof(G.why), "%s", why ? why : "");
}

static void on_state(int status, const char *why, const saga_operator_state_t *st,
                     void *data) {
    (void)data;
    G.calls++;
    G.status = status;
    snprintf(G.why, sizeof(G.why), "%s", why ? why : "");
    if (st != NULL)
        G.st = *st;
}

static void on_request(int status, const char *why, const saga_operator_request_t *res,
                       void *data) {
    (void)data;
    G.calls++;
    G.status = status;
    snprintf(G.why, sizeof(G.why), "%s", why ? why : "");
    if (res != NULL)
        G.next = res->next;
}

static void on_gauges(int status, const char *why, const saga_gauges_t *g, void *data) {
    (void)data;
    G.calls++;
    G.status = status;
    snprintf(G.why, sizeof(G.why), "%s", why ? why : "");
    if (g != NULL)
        G.g = *g;
}

#define CALL(expr)                               \
    do {                                         \
        int want_ = G.calls + 1;                 \
        cr_assert_eq((expr), 0, "%s", #expr);    \
        run_until(&G.calls, want_);              \
    } while (0)

#define NSUB 16

/* Each start request goes to its own shard's intake, once per id; the
 * state of a saga without a record is read from its shard's submitted set. */
Test(store_shards, submit_goes_to_its_shard_once) {
    char ids[NSUB][24];
    for (int i = 0; i < NSUB; i++) {
        snprintf(ids[i], sizeof(ids[i]), "sub-%d", i);
        saga_operator_submit_t rq = {ids[i], "demo", HASH, "{}", 0};
        CALL(saga_operator_submit(S, &rq, on_submit, NULL));
        cr_assert_eq(G.status, 0, "%s", G.why);
        cr_assert(G.fresh, "%s enqueued", ids[i]);
        CALL(saga_operator_submit(S, &rq, on_submit, NULL));
        cr_assert_eq(G.status, 0, "%s", G.why);
        cr_assert_not(G.fresh, "%s twice: nothing new", ids[i]);
        cr_assert_eq(cmd("ZSCORE %s %s", shard_key(SAGA_SHARD_SUBMITTED, NULL, ids[i]),
                         ids[i])->type, REDIS_REPLY_STRING, "%s in its shard's set", ids[i]);
        CALL(saga_operator_state(S, ids[i], on_state, NULL));
        cr_assert_eq(G.status, 0, "%s", G.why);
        cr_assert(!G.st.created && G.st.submitted, "%s: submitted", ids[i]);
    }
    cr_assert_eq(sum_over_shards("XLEN %s", SAGA_SHARD_INTAKE), NSUB, "one request per id");
    cr_assert_eq(sum_over_shards("ZCARD %s", SAGA_SHARD_SUBMITTED), NSUB);
    for (int i = 0; i < NSUB; i++) {
        redisReply *r = cmd("XRANGE %s - +", shard_key(SAGA_SHARD_INTAKE, NULL, ids[i]));
        int found = 0;
        for (size_t e = 0; e < r->elements; e++) {
            const redisReply *f = r->element[e]->element[1];
            found += f->elements >= 2 && strcmp(f->element[1]->str, ids[i]) == 0;
        }
        cr_assert_eq(found, 1, "%s once in its shard's intake", ids[i]);
    }
    cr_assert_geq(shards_used(ids, NSUB), fixture_shards()->k > 1 ? 2 : 1, "several shards");
    CALL(saga_operator_state(S, "never-submitted", on_state, NULL));
    cr_assert_eq(G.status, SAGA_ENOTFOUND);
    fixture_finish();
}

/* A cancel of a worker's saga that nobody owns lists it in the orphans of
 * its shard, where a worker's claim (an SMOVE within the slot) finds it. */
Test(store_shards, an_orphan_goes_to_its_shard) {
    char ids[8][24];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof(ids[i]), "orph-%d", i);
        cmd("HSET saga:{%s} id %s saga demo state running created 1 seq 3 def %s fence 4 "
            "owner %s", ids[i], ids[i], HASH, "");
        CALL(saga_operator_cancel(S, ids[i], NULL, on_request, NULL));
        cr_assert_eq(G.status, 0, "%s", G.why);
        cr_assert_eq(G.next, SAGA_OPERATOR_ORPHAN);
        cr_assert_eq(cmd_int("SISMEMBER %s %s", shard_key(SAGA_SHARD_ORPHANS, NULL, ids[i]),
                             ids[i]), 1, "%s in its shard's orphans", ids[i]);
    }
    cr_assert_eq(sum_over_shards("SCARD %s", SAGA_SHARD_ORPHANS), 8);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* Gauges                                                                  */
/* ---------------------------------------------------------------------- */

Test(store_shards, gauges_sum_every_shard) {
    static const char *const states[] = {"running", "stuck", "compensating", "confirming"};
    char ids[40][24];
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof(ids[i]), "g-%d", i);
        bool finished = i >= 30;
        cmd("HSET saga:{%s} id %s state %s", ids[i], ids[i],
            finished ? "completed" : states[i % 4]);
        cmd("ZADD %s %lld %s", shard_key(SAGA_SHARD_SAGAS, NULL, ids[i]),
            finished ? now_ms() + 3600000 : -(1000LL + i), ids[i]);
    }
    for (int i = 0; i < 7; i++)
        cmd("XADD %s * id q-%d", shard_key(SAGA_SHARD_INTAKE, NULL, ids[i * 5]), i);
    cmd("ZADD saga:{idx}:workers %lld alive 1 dead", now_ms() + 60000);
    CALL(saga_store_gauges(S, on_gauges, NULL));
    cr_assert_eq(G.status, 0, "%s", G.why);
    cr_assert_eq(G.g.unfinished, 30);
    cr_assert_eq(G.g.finished, 10);
    cr_assert_eq(G.g.running, 8 + 7, "running and confirming"); /* i%4 = 0 or 3 */
    cr_assert_eq(G.g.stuck, 8);
    cr_assert_eq(G.g.compensating, 7);
    cr_assert_not(G.g.partial);
    cr_assert_eq(G.g.workers, 1, "the live one");
    cr_assert_eq(G.g.intake_backlog, 7, "every shard's intake");

    /* A shard's index that is not a zset: the error names it. */
    unsigned last = fixture_shards()->k - 1;
    const char *key = shard_key_n(last, SAGA_SHARD_SAGAS, NULL);
    cmd("DEL %s", key);
    cmd("SET %s x", key);
    CALL(saga_store_gauges(S, on_gauges, NULL));
    cr_assert_eq(G.status, SAGA_ESTORE);
    cr_assert(strstr(G.why, key) != NULL, "why: %s", G.why);
    fixture_finish();
}

/* ---------------------------------------------------------------------- */
/* The operator commands of the CLI                                        */
/* ---------------------------------------------------------------------- */

/* `saga ARGS... --redis URL` (ARGS NULL-terminated): its exit status, its
 * stdout in *out and its stderr in *err (caller frees both). */
static int saga_cmd(char **out, char **err, ...) {
    char path[700], errpath[700];
    snprintf(path, sizeof(path), "%s/cmd.out", fixture_dir());
    snprintf(errpath, sizeof(errpath), "%s/cmd.err", fixture_dir());
    const char *argv[16];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 12;)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "--redis";
    argv[n++] = fixture_cluster() ? RC.node[0].url : R.url;
    argv[n] = NULL;
    saga_proc_io_t io = {.out = path, .err = errpath};
    int status = saga_proc_run(argv, &io);
    *out = saga_proc_slurp(path);
    *err = saga_proc_slurp(errpath);
    return status;
}

/* saga list, status, cancel and retry read the shards the store recorded:
 * the list merges them (every saga once, in order), a cancel or a retry of
 * a saga nobody owns lists it in the orphans of its shard. */
Test(store_shards, cli_list_status_cancel_retry_over_the_shards) {
    put_sagas();
    char *out, *err;
    cr_assert_eq(saga_cmd(&out, &err, "list", "--limit", "100000", "--json", NULL), 0, "%s",
                 err);
    json_error_t je;
    json_t *all = json_loads(out, 0, &je);
    cr_assert_not_null(all, "%s: %s", je.text, out);
    cr_assert_eq(json_array_size(all), NSAGAS);
    for (size_t i = 0; i < NSAGAS; i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, i), "id")),
                         sagas[i].id, "item %zu", i);
    json_decref(all);
    free(out);
    free(err);

    cmd("HSET saga:{c-orphan} id c-orphan saga demo state running created 1 seq 3 def %s "
        "fence 4 owner %s", HASH, "");
    cmd("ZADD %s -1 c-orphan", shard_key(SAGA_SHARD_SAGAS, NULL, "c-orphan"));
    cmd("HSET saga:{r-stuck} id r-stuck saga demo state stuck stuck_in running created 2 "
        "seq 3 def %s fence 4 owner %s act:pay %s", HASH, "", "failed 3 0 5");
    cmd("ZADD %s -2 r-stuck", shard_key(SAGA_SHARD_SAGAS, NULL, "r-stuck"));

    cr_assert_eq(saga_cmd(&out, &err, "status", "c-orphan", "--json", NULL), 0, "%s", err);
    cr_assert(strstr(out, "\"running\"") != NULL, "%s", out);
    /* a short command does not repeat the engines' advice (this Redis runs
     * without persistence) */
    cr_assert(strstr(err, "persistence is off") == NULL, "advice from saga status: %s", err);
    free(out);
    free(err);
    cr_assert_eq(saga_cmd(&out, &err, "cancel", "c-orphan", NULL), 0, "%s", err);
    cr_assert(strstr(out, "cancel requested") != NULL, "%s", out);
    free(out);
    free(err);
    cr_assert_eq(cmd_int("SISMEMBER %s c-orphan", shard_key(SAGA_SHARD_ORPHANS, NULL,
                                                             "c-orphan")), 1);
    cr_assert_eq(saga_cmd(&out, &err, "retry", "r-stuck", NULL), 0, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(cmd_int("SISMEMBER %s r-stuck", shard_key(SAGA_SHARD_ORPHANS, NULL,
                                                            "r-stuck")), 1);
    cr_assert_eq(sum_over_shards("SCARD %s", SAGA_SHARD_ORPHANS), 2, "nowhere else");
    fixture_finish();
}
