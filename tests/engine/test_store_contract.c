/*
 * test_store_contract.c -- the store interface's contract (saga/store.h),
 * one set of tests run on both backends: the memory store
 * (store_memory.c) and the Redis store (store_redis.c) on a real
 * redis-server.
 *
 * Every test body is written once (CONTRACT below) and registered in five
 * suites, whose set-up opens that backend: store_memory, store_redis,
 * store_redis_split (the Redis store as on Redis Cluster: the index of
 * sagas kept by separate commands around the writes), store_redis_cluster
 * (the Redis store on a loopback Redis Cluster of 3 primaries and 3
 * replicas, tests/support/redis_cluster.c), and store_timed (the
 * timing decorator, store_timed.c, over a memory store: it must keep the
 * contract of the store it wraps).
 * Every call goes through CALL(), which marks the time spent inside the
 * store's function: a callback that runs then fails the test (callbacks
 * never run from inside the call that registered them). Waits poll the
 * loop under a deadline and say what they were waiting for when it passes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "redis_cluster.h"
#include "redis_server.h"
#include "saga/errors.h"
#include "saga/state.h"
#include "saga/store.h"
#include "store/store_memory.h"
#include "store/store_redis.h"
#include "store/store_timed.h"

#define DEADLINE_MS 10000

static uv_loop_t loop;
static saga_store_t *S;
static redis_server_t R;
static redis_cluster_t RC;
static bool cluster;     /* store_redis_cluster */
static bool redis;
static bool split;       /* store_redis_split */
static uv_timer_t deadline;
static bool expired;
static bool in_call;

/* ---------------------------------------------------------------------- */
/* Waiting                                                                 */
/* ---------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t) {
    (void)t;
    expired = true;
}

/* Runs the loop until *count reaches `want`; fails the test after
 * DEADLINE_MS, naming `what` it waited for and how far it got. */
static void run_until(const int *count, int want, const char *what) {
    expired = false;
    uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
    while (*count < want && !expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&deadline);
    cr_assert_geq(*count, want, "%s store: still waiting for %s after %d ms (%d of %d "
                  "callbacks ran)", redis ? "redis" : "memory", what, DEADLINE_MS,
                  *count, want);
}

/* Calls the store; a callback that runs before this returns fails. */
static int call_end(int rc) {
    in_call = false;
    return rc;
}
#define CALL(expr) (in_call = true, call_end(expr))

#define NOT_IN_CALL(what)                                                      \
    cr_assert(!in_call, "%s callback ran from inside the call that registered it", what)

/* ---------------------------------------------------------------------- */
/* Opening and closing the stores                                          */
/* ---------------------------------------------------------------------- */

static int ready_calls, ready_status;
static char ready_msg[512];

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    (void)data;
    ready_calls++;
    ready_status = status;
    snprintf(ready_msg, sizeof(ready_msg), "%s", msg ? msg : "");
}

/* A Redis store at `url`, ready. */
static saga_store_t *open_redis(const char *url) {
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    saga_store_redis_options_t opt = {0};
    opt.split_index = split;
    opt.conn.reconnect_min_ms = 10;
    opt.conn.reconnect_max_ms = 50;
    ready_calls = 0;
    saga_store_t *s = saga_store_redis_new(&loop, &u, &opt, on_ready, NULL);
    saga_redis_url_close(&u);
    cr_assert_not_null(s);
    run_until(&ready_calls, 1, "the store to be ready");
    cr_assert_eq(ready_status, 0, "store not ready: %s", ready_msg);
    return s;
}

static void common_setup(void) {
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &deadline);
}

static void memory_setup(void) {
    common_setup();
    redis = false;
    /* Kept like Redis keeps them (retention): finished records, history. */
    saga_store_memory_options_t opt = {.keep_finished = true, .keep_history = true};
    S = saga_store_memory_new(&loop, &opt);
    cr_assert_not_null(S);
}

/* What the timed store's hook saw. */
static int timed_hooks;
static int timed_last_status;
static uint64_t timed_last_ns;
static void on_timed(int status, uint64_t elapsed_ns, void *data) {
    (void)data;
    timed_hooks++;
    timed_last_status = status;
    timed_last_ns = elapsed_ns;
}

static void timed_setup(void) {
    memory_setup();
    timed_hooks = 0;
    S = saga_store_timed_new(S, on_timed, NULL);
    cr_assert_not_null(S);
}

static void redis_setup(void) {
    common_setup();
    redis = true;
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    S = open_redis(R.url);
}

static void redis_split_setup(void) {
    split = true;
    redis_setup();
}

/* The store finds out by itself that it runs on a cluster (and splits the
 * index): it is given one node's URL, as a user would. */
static void redis_cluster_setup(void) {
    common_setup();
    redis = true;
    cluster = true;
    cr_assert_eq(redis_cluster_start(&RC, NULL), 0);
    S = open_redis(RC.node[0].url);
}

static int closed_calls;
static void on_closed(void *data) {
    (void)data;
    closed_calls++;
}

/* Closes `s` and runs the loop until it is freed. */
static void close_store(saga_store_t *s) {
    closed_calls = 0;
    s->ops->close(s, on_closed, NULL);
    run_until(&closed_calls, 1, "the store to close");
}

static saga_store_t *S2;          /* a second store (the resend test) */
static void (*teardown_more)(void); /* closes what else a test opened */

static void teardown(void) {
    if (S != NULL)
        close_store(S);
    S = NULL;
    if (S2 != NULL)
        close_store(S2);
    S2 = NULL;
    if (teardown_more != NULL)
        teardown_more();
    teardown_more = NULL;
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
    if (cluster)
        redis_cluster_stop(&RC);
    else if (redis)
        redis_server_stop(&R);
}

TestSuite(store_memory, .init = memory_setup, .fini = teardown, .timeout = 60);
TestSuite(store_redis, .init = redis_setup, .fini = teardown, .timeout = 60);
TestSuite(store_redis_split, .init = redis_split_setup, .fini = teardown, .timeout = 60);
TestSuite(store_redis_cluster, .init = redis_cluster_setup, .fini = teardown, .timeout = 60);
TestSuite(store_timed, .init = timed_setup, .fini = teardown, .timeout = 60);

/* One body, registered in every suite. */
#define CONTRACT(name)                                                         \
    static void body_##name(void);                                             \
    Test(store_memory, name) { body_##name(); }                                \
    Test(store_redis, name) { body_##name(); }                                 \
    Test(store_redis_split, name) { body_##name(); }                           \
    Test(store_redis_cluster, name) { body_##name(); }                         \
    Test(store_timed, name) { body_##name(); }                                 \
    static void body_##name(void)

/* ---------------------------------------------------------------------- */
/* Calls that wait for their callback                                      */
/* ---------------------------------------------------------------------- */

typedef struct wres_s {
    int calls;
    int status;
    unsigned signals;
} wres_t;

static void on_write(int status, unsigned signals, void *data) {
    NOT_IN_CALL("write");
    wres_t *r = data;
    r->calls++;
    r->status = status;
    r->signals = signals;
}

static saga_event_t event(const char *type, const char *detail) {
    return (saga_event_t){type, NULL, NULL, 0, detail, detail ? strlen(detail) : 0};
}

static saga_kv_t kv(const char *k, const char *v) {
    return (saga_kv_t){k, strlen(k), v, strlen(v)};
}

/* Writes `w` and waits for its status. */
static int write_w(const saga_store_write_t *w) {
    wres_t r = {0, 0, 0};
    int rc = CALL(S->ops->write(S, w, on_write, &r));
    cr_assert_eq(rc, 0, "write of %s seq %llu refused at once: %s", w->id,
                 (unsigned long long)w->seq, saga_strerror(rc));
    run_until(&r.calls, 1, "a write's callback");
    cr_assert_eq(r.calls, 1, "the write callback ran %d times", r.calls);
    return r.status;
}

/* A write of one field and one event ("test.write" with `detail`). */
static int write1(const char *id, uint64_t seq, uint64_t fence, unsigned flags,
                  const char *field, const char *value) {
    saga_kv_t f = kv(field, value);
    saga_event_t ev = event("test.write", value);
    saga_store_write_t w = {id, seq, fence, flags, "tester", &f, 1, &ev, 1, 0};
    return write_w(&w);
}

typedef struct lres_s {
    int calls;
    int status;
    bool rec_null;
    saga_record_t rec;  /* a copy */
} lres_t;

static void on_load(int status, const saga_record_t *rec, void *data) {
    NOT_IN_CALL("load");
    lres_t *r = data;
    r->calls++;
    r->status = status;
    r->rec_null = rec == NULL;
    if (rec != NULL)
        cr_assert_eq(saga_record_copy(&r->rec, rec), 0);
}

/* Loads `id`; returns the status, the record in *out (free it). */
static int load(const char *id, saga_record_t *out) {
    lres_t r = {0};
    cr_assert_eq(CALL(S->ops->load(S, id, on_load, &r)), 0);
    run_until(&r.calls, 1, "a load's callback");
    cr_assert_eq(r.status == 0, !r.rec_null, "a record exactly when the status is 0");
    *out = r.rec;
    return r.status;
}

/* The field `key` of a loaded record as a string ("" when absent). */
static const char *field(const saga_record_t *rec, const char *key) {
    static char buf[4][256];
    static int k;
    size_t len;
    const char *v = saga_record_get(rec, key, &len);
    char *b = buf[k++ % 4];
    snprintf(b, sizeof(buf[0]), "%.*s", v ? (int)len : 0, v ? v : "");
    return b;
}

/* The record's field `key` (loads it); "" when absent. */
static const char *field_of(const char *id, const char *key) {
    saga_record_t rec = {0};
    cr_assert_eq(load(id, &rec), 0, "saga %s is there", id);
    const char *v = field(&rec, key);
    saga_record_free(&rec);
    return v;
}

#define HMAX 32

typedef struct hist_s {
    int64_t ts;
    uint64_t seq;
    uint32_t attempt;
    char type[32], step[32], phase[16], detail[64], worker[32];
    bool step_null, phase_null, detail_null;
} hist_t;

typedef struct hres_s {
    int calls;
    int status;
    size_t n;
    hist_t h[HMAX];
} hres_t;

static void on_history(int status, const saga_history_entry_t *e, size_t n, void *data) {
    NOT_IN_CALL("history");
    hres_t *r = data;
    r->calls++;
    r->status = status;
    r->n = n;
    cr_assert_leq(n, HMAX);
    for (size_t i = 0; i < n; i++) {
        hist_t *h = &r->h[i];
        h->ts = e[i].ts_ms;
        h->seq = e[i].seq;
        h->attempt = e[i].ev.attempt;
        snprintf(h->type, sizeof(h->type), "%s", e[i].ev.type);
        snprintf(h->step, sizeof(h->step), "%s", e[i].ev.step ? e[i].ev.step : "");
        snprintf(h->phase, sizeof(h->phase), "%s", e[i].ev.phase ? e[i].ev.phase : "");
        snprintf(h->detail, sizeof(h->detail), "%.*s", (int)e[i].ev.detail_len,
                 e[i].ev.detail ? e[i].ev.detail : "");
        snprintf(h->worker, sizeof(h->worker), "%s", e[i].worker);
        h->step_null = e[i].ev.step == NULL;
        h->phase_null = e[i].ev.phase == NULL;
        h->detail_null = e[i].ev.detail == NULL;
    }
}

static int history(const char *id, hres_t *r) {
    memset(r, 0, sizeof(*r));
    cr_assert_eq(CALL(S->ops->history(S, id, on_history, r)), 0);
    run_until(&r->calls, 1, "a history's callback");
    return r->status;
}

typedef struct tres_s {
    int calls;
    int status;
    bool text_null;
    char text[256];
    size_t len;
} tres_t;

static void on_text(int status, const char *text, size_t len, void *data) {
    NOT_IN_CALL("get_definition");
    tres_t *r = data;
    r->calls++;
    r->status = status;
    r->text_null = text == NULL;
    r->len = len;
    if (text != NULL && len < sizeof(r->text)) {
        memcpy(r->text, text, len);
        r->text[len] = '\0';
    }
}

static void on_done(int status, void *data) {
    NOT_IN_CALL("put_definition");
    wres_t *r = data;
    r->calls++;
    r->status = status;
}

typedef struct ires_s {
    int calls;
    int status;
    size_t n;
    char ids[16][64];
} ires_t;

static void on_ids(int status, const char *const *ids, size_t n, void *data) {
    NOT_IN_CALL("list_unfinished");
    ires_t *r = data;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(r->ids[i], sizeof(r->ids[i]), "%s", ids[i]);
}

static bool listed(const ires_t *r, const char *id) {
    for (size_t i = 0; i < r->n && i < 16; i++)
        if (strcmp(r->ids[i], id) == 0)
            return true;
    return false;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------- */
/* Writes                                                                  */
/* ---------------------------------------------------------------------- */

CONTRACT(a_create_and_writes_in_sequence_are_loaded_and_listed_in_history) {
    int64_t t0 = now_ms();
    saga_kv_t f1[] = {kv("state", "running"), kv("input", "{\"a\": 1}")};
    saga_event_t e1[] = {
        event("saga.created", NULL),
        {"step.started", "pay", "action", 1, "first\ttry\n", 10},
    };
    saga_store_write_t w1 = {"seq-1", 1, 0, SAGA_WRITE_CREATE, "w-a", f1, 2, e1, 2, 0};
    cr_assert_eq(write_w(&w1), 0);
    cr_assert_eq(write1("seq-1", 2, 0, 0, "state", "compensating"), 0);
    cr_assert_eq(write1("seq-1", 3, 0, 0, "act:pay", "succeeded"), 0);
    int64_t t1 = now_ms();

    saga_record_t rec = {0};
    cr_assert_eq(load("seq-1", &rec), 0);
    cr_assert_str_eq(field(&rec, "seq"), "3", "the record holds its seq");
    cr_assert_str_eq(field(&rec, "state"), "compensating", "a later write wins");
    cr_assert_str_eq(field(&rec, "input"), "{\"a\": 1}");
    cr_assert_str_eq(field(&rec, "act:pay"), "succeeded");
    saga_record_free(&rec);

    hres_t h;
    cr_assert_eq(history("seq-1", &h), 0);
    cr_assert_eq(h.n, 4, "one entry per event: %zu", h.n);
    static const char *const types[] = {"saga.created", "step.started", "test.write",
                                        "test.write"};
    static const uint64_t seqs[] = {1, 1, 2, 3};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(h.h[i].type, types[i], "event %zu", i);
        cr_assert_eq(h.h[i].seq, seqs[i], "event %zu: seq %llu", i,
                     (unsigned long long)h.h[i].seq);
        cr_assert(h.h[i].ts >= t0 && h.h[i].ts <= t1, "event %zu: time %lld not in [%lld, %lld]",
                  i, (long long)h.h[i].ts, (long long)t0, (long long)t1);
    }
    cr_assert_str_eq(h.h[0].worker, "w-a");
    cr_assert(h.h[0].step_null && h.h[0].phase_null && h.h[0].detail_null,
              "absent strings read back as NULL");
    cr_assert_eq(h.h[0].attempt, 0);
    cr_assert_str_eq(h.h[1].step, "pay");
    cr_assert_str_eq(h.h[1].phase, "action");
    cr_assert_eq(h.h[1].attempt, 1);
    cr_assert_str_eq(h.h[1].detail, "first\ttry\n", "the detail's bytes, tabs and newlines kept");
    cr_assert_str_eq(h.h[2].worker, "tester");
    cr_assert_str_eq(h.h[3].detail, "succeeded");
}

CONTRACT(a_create_of_an_existing_record_is_refused_and_changes_nothing) {
    cr_assert_eq(write1("dup-1", 1, 0, SAGA_WRITE_CREATE, "input", "first"), 0);
    /* The same id again, as a second saga would (seq 1 too). */
    cr_assert_eq(write1("dup-1", 1, 0, SAGA_WRITE_CREATE, "input", "second"), SAGA_EEXIST);
    /* Also once the first saga moved on. */
    cr_assert_eq(write1("dup-1", 2, 0, 0, "state", "running"), 0);
    cr_assert_eq(write1("dup-1", 1, 0, SAGA_WRITE_CREATE, "input", "third"), SAGA_EEXIST);
    cr_assert_str_eq(field_of("dup-1", "input"), "first");
    cr_assert_str_eq(field_of("dup-1", "seq"), "2");
    hres_t h;
    cr_assert_eq(history("dup-1", &h), 0);
    cr_assert_eq(h.n, 2, "the refused creates appended nothing: %zu entries", h.n);
}

/* A resend is the store's own business (after a lost connection, see
 * store_redis.h); a caller that makes the same write twice made two
 * writes, and the second finds the record moved on. */
CONTRACT(a_write_made_twice_by_the_caller_is_a_conflict) {
    cr_assert_eq(write1("twice-1", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    saga_kv_t f = kv("act:a", "succeeded");
    saga_event_t ev = event("step.succeeded", NULL);
    saga_store_write_t w = {"twice-1", 2, 0, 0, "one", &f, 1, &ev, 1, 0};
    cr_assert_eq(write_w(&w), 0);
    /* Another writer at the same seq, with other fields: it must learn
     * that its write was not applied. */
    saga_kv_t g = kv("act:a", "failed");
    saga_store_write_t w2 = {"twice-1", 2, 0, 0, "two", &g, 1, &ev, 1, 0};
    cr_assert_eq(write_w(&w2), SAGA_ECONFLICT);
    cr_assert_eq(write_w(&w), SAGA_ECONFLICT);
    cr_assert_str_eq(field_of("twice-1", "act:a"), "succeeded");
    hres_t h;
    cr_assert_eq(history("twice-1", &h), 0);
    cr_assert_eq(h.n, 2, "applied once: %zu entries", h.n);
}

CONTRACT(a_write_out_of_sequence_is_a_conflict) {
    cr_assert_eq(write1("oos-1", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(write1("oos-1", 3, 0, 0, "state", "ahead"), SAGA_ECONFLICT, "a gap");
    cr_assert_eq(write1("oos-1", 2, 0, 0, "state", "next"), 0);
    cr_assert_eq(write1("oos-1", 1, 0, 0, "state", "behind"), SAGA_ECONFLICT, "stale");
    cr_assert_str_eq(field_of("oos-1", "state"), "next");
    cr_assert_str_eq(field_of("oos-1", "seq"), "2");
}

CONTRACT(a_write_to_no_record_is_not_found) {
    cr_assert_eq(write1("ghost-1", 2, 0, 0, "state", "running"), SAGA_ENOTFOUND);
    saga_record_t rec = {0};
    cr_assert_eq(load("ghost-1", &rec), SAGA_ENOTFOUND, "nothing was created");
}

/* The record's fence is its field "fence" (written by the owner's create,
 * bumped by a claim); a write must carry that token, or it is refused. */
CONTRACT(a_write_with_another_fence_is_refused) {
    saga_kv_t f[] = {kv("owner", "w1"), kv("fence", "4")};
    saga_event_t ev = event("saga.created", NULL);
    saga_store_write_t w = {"fenced-1", 1, 4, SAGA_WRITE_CREATE, "w1", f, 2, &ev, 1, 0};
    cr_assert_eq(write_w(&w), 0);
    cr_assert_eq(write1("fenced-1", 2, 3, 0, "state", "old owner"), SAGA_EFENCED);
    cr_assert_eq(write1("fenced-1", 2, 5, 0, "state", "new owner?"), SAGA_EFENCED);
    cr_assert_eq(write1("fenced-1", 2, 0, 0, "state", "no lease"), SAGA_EFENCED,
                 "a writer without a lease cannot write an owned saga");
    cr_assert_eq(write1("fenced-1", 2, 4, 0, "state", "owner"), 0);
    /* Taken over: the record's fence becomes 5 (as a claim does). */
    cr_assert_eq(write1("fenced-1", 3, 4, 0, "fence", "5"), 0);
    cr_assert_eq(write1("fenced-1", 4, 4, 0, "state", "old owner"), SAGA_EFENCED);
    cr_assert_eq(write1("fenced-1", 4, 5, 0, "state", "new owner"), 0);
    cr_assert_str_eq(field_of("fenced-1", "state"), "new owner");
    cr_assert_str_eq(field_of("fenced-1", "seq"), "4");
}

/* A record with no fence field (saga run, resume) is owned by nobody:
 * any token is accepted, and carrying one does not fence the record. */
CONTRACT(a_record_without_a_fence_takes_any_write) {
    cr_assert_eq(write1("free-1", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(write1("free-1", 2, 7, 0, "state", "with a token"), 0);
    cr_assert_eq(write1("free-1", 3, 0, 0, "state", "without"), 0);
    cr_assert_eq(write1("free-1", 4, 9, 0, "fence", ""), 0);
    cr_assert_eq(write1("free-1", 5, 0, 0, "state", "an empty fence is none"), 0);
    cr_assert_str_eq(field_of("free-1", "seq"), "5");
}

/* ---------------------------------------------------------------------- */
/* Reads                                                                   */
/* ---------------------------------------------------------------------- */

CONTRACT(an_unknown_saga_loads_as_not_found_and_has_no_history) {
    saga_record_t rec = {0};
    cr_assert_eq(load("nobody", &rec), SAGA_ENOTFOUND);
    hres_t h;
    cr_assert_eq(history("nobody", &h), 0);
    cr_assert_eq(h.n, 0);
}

CONTRACT(definitions_are_stored_by_hash_once) {
    tres_t t = {0};
    cr_assert_eq(CALL(S->ops->get_definition(S, "abc123", on_text, &t)), 0);
    run_until(&t.calls, 1, "get_definition's callback");
    cr_assert_eq(t.status, SAGA_ENOTFOUND);
    cr_assert(t.text_null);
    static const char text[] = "saga: x\nsteps: []\n";
    wres_t d = {0};
    cr_assert_eq(CALL(S->ops->put_definition(S, "abc123", text, sizeof(text) - 1, on_done, &d)), 0);
    run_until(&d.calls, 1, "put_definition's callback");
    cr_assert_eq(d.status, 0);
    /* Storing it twice is fine; the first text stays. */
    d.calls = 0;
    cr_assert_eq(CALL(S->ops->put_definition(S, "abc123", "other", 5, on_done, &d)), 0);
    run_until(&d.calls, 1, "put_definition's callback");
    cr_assert_eq(d.status, 0);
    t = (tres_t){0};
    cr_assert_eq(CALL(S->ops->get_definition(S, "abc123", on_text, &t)), 0);
    run_until(&t.calls, 1, "get_definition's callback");
    cr_assert_eq(t.status, 0);
    cr_assert_eq(t.len, sizeof(text) - 1);
    cr_assert_str_eq(t.text, text);
}

CONTRACT(list_unfinished_names_every_saga_not_finished) {
    cr_assert_eq(write1("u-run", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(write1("u-stuck", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(write1("u-stuck", 2, 0, 0, "state", "stuck"), 0);
    cr_assert_eq(write1("u-done", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(write1("u-done", 2, 0, SAGA_WRITE_TERMINAL, "state", "completed"), 0);
    ires_t r = {0};
    cr_assert_eq(CALL(S->ops->list_unfinished(S, on_ids, &r)), 0);
    run_until(&r.calls, 1, "list_unfinished's callback");
    cr_assert_eq(r.status, 0);
    cr_assert_eq(r.n, 2, "%zu ids", r.n);
    cr_assert(listed(&r, "u-run") && listed(&r, "u-stuck") && !listed(&r, "u-done"));
    /* A finished saga stays loadable (retention). */
    cr_assert_str_eq(field_of("u-done", "state"), "completed");
}

/* ---------------------------------------------------------------------- */
/* Callbacks and closing                                                   */
/* ---------------------------------------------------------------------- */

/* Every kind of call, answered with success and with an error: no
 * callback runs inside its call (CALL/NOT_IN_CALL check each), and each
 * runs exactly once. */
CONTRACT(callbacks_never_run_inside_the_call) {
    static saga_event_t ev = {"saga.created", NULL, NULL, 0, NULL, 0};
    static saga_store_write_t ok = {"cb-1", 1, 0, SAGA_WRITE_CREATE, "t", NULL, 0, &ev, 1, 0};
    static saga_store_write_t dup = {"cb-1", 1, 0, SAGA_WRITE_CREATE, "t", NULL, 0, &ev, 1, 0};
    static saga_store_write_t none = {"cb-none", 5, 0, 0, "t", NULL, 0, &ev, 1, 0};
    wres_t w[3] = {{0}}, d = {0};
    lres_t l[2] = {{0}};
    hres_t *h = calloc(2, sizeof(*h));
    tres_t t[2] = {{0}};
    ires_t i = {0};
    int calls = 0;
    cr_assert_eq(CALL(S->ops->write(S, &ok, on_write, &w[0])), 0);
    cr_assert_eq(CALL(S->ops->write(S, &dup, on_write, &w[1])), 0);
    cr_assert_eq(CALL(S->ops->write(S, &none, on_write, &w[2])), 0);
    cr_assert_eq(CALL(S->ops->load(S, "cb-1", on_load, &l[0])), 0);
    cr_assert_eq(CALL(S->ops->load(S, "cb-none", on_load, &l[1])), 0);
    cr_assert_eq(CALL(S->ops->history(S, "cb-1", on_history, &h[0])), 0);
    cr_assert_eq(CALL(S->ops->history(S, "cb-none", on_history, &h[1])), 0);
    cr_assert_eq(CALL(S->ops->put_definition(S, "h1", "x", 1, on_done, &d)), 0);
    cr_assert_eq(CALL(S->ops->get_definition(S, "h1", on_text, &t[0])), 0);
    cr_assert_eq(CALL(S->ops->get_definition(S, "h2", on_text, &t[1])), 0);
    cr_assert_eq(CALL(S->ops->list_unfinished(S, on_ids, &i)), 0);
    /* Nothing ran yet: every callback comes from the loop. */
    int *counts[] = {&w[0].calls, &w[1].calls, &w[2].calls, &l[0].calls, &l[1].calls,
                     &h[0].calls, &h[1].calls, &d.calls, &t[0].calls, &t[1].calls, &i.calls};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
        calls += *counts[k];
    cr_assert_eq(calls, 0);
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
        run_until(counts[k], 1, "every callback");
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
        cr_assert_eq(*counts[k], 1, "callback %zu ran %d times", k, *counts[k]);
    /* In call order, each request of a saga saw the ones before it. */
    cr_assert_eq(w[0].status, 0);
    cr_assert_eq(w[1].status, SAGA_EEXIST);
    cr_assert_eq(w[2].status, SAGA_ENOTFOUND);
    cr_assert_eq(l[0].status, 0);
    cr_assert_eq(l[1].status, SAGA_ENOTFOUND);
    cr_assert_eq(h[0].status, 0);
    cr_assert_eq(h[0].n, 1);
    cr_assert_eq(t[0].status, 0);
    cr_assert_eq(t[1].status, SAGA_ENOTFOUND);
    saga_record_free(&l[0].rec);
    free(h);
}

/* Closing with requests outstanding: each callback runs once, before
 * `closed`, with its result or an error; then the store is gone and the
 * loop closes with nothing left (teardown checks). */
static int order_closed;
static int order_seen;
static void on_write_before_close(int status, unsigned signals, void *data) {
    NOT_IN_CALL("write");
    (void)signals;
    wres_t *r = data;
    cr_assert_eq(order_closed, 0, "a callback ran after `closed`");
    r->calls++;
    r->status = status;
    order_seen++;
}

static void on_closed_order(void *data) {
    (void)data;
    cr_assert_eq(order_closed, 0, "`closed` ran twice");
    order_closed++;
    closed_calls++;
}

CONTRACT(close_runs_every_outstanding_callback_first) {
    cr_assert_eq(write1("cl-1", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    enum { N = 20 };
    static saga_kv_t f[N];
    static saga_event_t ev = {"test.write", NULL, NULL, 0, NULL, 0};
    static saga_store_write_t w[N];
    wres_t r[N] = {{0}};
    lres_t l = {0};
    tres_t t = {0};
    order_closed = order_seen = 0;
    for (int i = 0; i < N; i++) {
        f[i] = kv("state", "next");
        w[i] = (saga_store_write_t){"cl-1", 2 + (uint64_t)i, 0, 0, "t", &f[i], 1, &ev, 1, 0};
        cr_assert_eq(CALL(S->ops->write(S, &w[i], on_write_before_close, &r[i])), 0);
    }
    cr_assert_eq(CALL(S->ops->load(S, "cl-1", on_load, &l)), 0);
    cr_assert_eq(CALL(S->ops->get_definition(S, "none", on_text, &t)), 0);
    saga_store_t *s = S;
    S = NULL;
    closed_calls = 0;
    s->ops->close(s, on_closed_order, NULL);
    run_until(&closed_calls, 1, "the store to close");
    cr_assert_eq(order_seen, N, "every write's callback ran before `closed`");
    /* The memory store has every result; Redis answered none of them. */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(r[i].calls, 1, "write %d: %d callbacks", i, r[i].calls);
        cr_assert_eq(r[i].status, redis ? SAGA_ECLOSING : 0, "write %d: %s", i,
                     saga_strerror(r[i].status));
    }
    cr_assert_eq(l.calls, 1, "the load's callback ran");
    cr_assert_eq(l.status, redis ? SAGA_ECLOSING : 0, "load: %s", saga_strerror(l.status));
    cr_assert_eq(t.calls, 1, "the get_definition's callback ran");
    cr_assert_eq(t.status, redis ? SAGA_ECLOSING : SAGA_ENOTFOUND, "get_definition: %s",
                 saga_strerror(t.status));
    if (l.status == 0)
        saga_record_free(&l.rec);
}

/* ---------------------------------------------------------------------- */
/* Resends (Redis only: the memory store has no connection to lose)         */
/* ---------------------------------------------------------------------- */

/* A proxy on a unix socket between the store and redis-server, on the
 * test's loop. Armed, it drops the connection, both sides, at the first
 * reply it would pass on: the server ran the command, the store never
 * learns how it went and must send it again on its next connection. */
typedef struct proxy_s {
    uv_pipe_t listener;
    char path[320];
    char url[340];
    bool armed;
    int cuts;
    int open;            /* handles not yet closed */
} proxy_t;

typedef struct pconn_s {
    proxy_t *p;
    uv_pipe_t client;
    uv_pipe_t server;
    uv_connect_t creq;
    int open;
    bool closing;
} pconn_t;

typedef struct pwrite_s {
    uv_write_t req;
    char data[];
} pwrite_t;

static void pconn_handle_closed(uv_handle_t *h) {
    pconn_t *c = h->data;
    c->p->open--;
    if (--c->open == 0)
        free(c);
}

static void pconn_close(pconn_t *c) {
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->client, pconn_handle_closed);
    uv_close((uv_handle_t *)&c->server, pconn_handle_closed);
}

static void p_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(want);
    buf->len = buf->base ? want : 0;
}

static void p_written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void forward(pconn_t *c, uv_stream_t *to, const char *data, size_t n) {
    pwrite_t *w = malloc(sizeof(*w) + n);
    cr_assert_not_null(w);
    memcpy(w->data, data, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, to, &b, 1, p_written) != 0) {
        free(w);
        pconn_close(c);
    }
}

static void from_client(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    pconn_t *c = s->data;
    if (n > 0 && !c->closing)
        forward(c, (uv_stream_t *)&c->server, buf->base, (size_t)n);
    else if (n < 0)
        pconn_close(c);
    free(buf->base);
}

static void from_server(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    pconn_t *c = s->data;
    if (n > 0 && !c->closing) {
        if (c->p->armed) {
            c->p->armed = false;
            c->p->cuts++;
            pconn_close(c);
        } else {
            forward(c, (uv_stream_t *)&c->client, buf->base, (size_t)n);
        }
    } else if (n < 0) {
        pconn_close(c);
    }
    free(buf->base);
}

static void on_server_connected(uv_connect_t *req, int status) {
    pconn_t *c = req->data;
    if (status != 0 || c->closing) {
        pconn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->server, p_alloc, from_server);
    uv_read_start((uv_stream_t *)&c->client, p_alloc, from_client);
}

static void on_proxy_conn(uv_stream_t *l, int status) {
    proxy_t *p = l->data;
    cr_assert_eq(status, 0);
    pconn_t *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->p = p;
    uv_pipe_init(&loop, &c->client, 0);
    uv_pipe_init(&loop, &c->server, 0);
    c->client.data = c->server.data = c->creq.data = c;
    c->open = 2;
    p->open += 2;
    cr_assert_eq(uv_accept(l, (uv_stream_t *)&c->client), 0);
    uv_pipe_connect(&c->creq, &c->server, R.socket, on_server_connected);
}

static void proxy_start(proxy_t *p) {
    memset(p, 0, sizeof(*p));
    snprintf(p->path, sizeof(p->path), "%s/proxy.sock", R.dir);
    snprintf(p->url, sizeof(p->url), "unix://%s", p->path);
    uv_pipe_init(&loop, &p->listener, 0);
    p->listener.data = p;
    p->open = 1;
    cr_assert_eq(uv_pipe_bind(&p->listener, p->path), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&p->listener, 8, on_proxy_conn), 0);
}

static void proxy_listener_closed(uv_handle_t *h) {
    ((proxy_t *)h->data)->open--;
}

/* Closes the listener; the connections end when the store closes them. */
static void proxy_stop(proxy_t *p) {
    uv_close((uv_handle_t *)&p->listener, proxy_listener_closed);
}

/* A create and a write whose replies are lost after Redis applied them:
 * the store sends them again with the same token, saga_write recognises
 * them as applied, and they are acknowledged (0), not EEXIST/ECONFLICT,
 * and applied once. */
static void resend_body(void);
Test(store_redis, a_resent_create_and_write_are_recognised_as_applied) { resend_body(); }
Test(store_redis_split, a_resent_create_and_write_are_recognised_as_applied) { resend_body(); }

static proxy_t P;

/* Stops the proxy: its connections end with the store's (closed first). */
static void resend_teardown(void) {
    proxy_stop(&P);
}

static void resend_body(void) {
    proxy_t *const p = &P;
    proxy_start(p);
    teardown_more = resend_teardown;
    S2 = S; /* the direct store; the test's goes through the proxy */
    S = open_redis(p->url);

    p->armed = true;
    cr_assert_eq(write1("resend-1", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0,
                 "a resent create is acknowledged");
    cr_assert_eq(p->cuts, 1, "the create's reply was cut");
    p->armed = true;
    cr_assert_eq(write1("resend-1", 2, 0, 0, "state", "compensating"), 0,
                 "a resent write is acknowledged");
    cr_assert_eq(p->cuts, 2, "the write's reply was cut");
    saga_store_redis_stats_t stats;
    saga_store_redis_stats(S, &stats);
    cr_assert_geq(stats.resent, 2, "the store counted its resends (%llu)",
                  (unsigned long long)stats.resent);
    cr_assert_str_eq(field_of("resend-1", "seq"), "2");
    cr_assert_str_eq(field_of("resend-1", "state"), "compensating");
    hres_t h;
    cr_assert_eq(history("resend-1", &h), 0);
    cr_assert_eq(h.n, 2, "each applied once: %zu history entries", h.n);
    cr_assert_eq(h.h[0].seq, 1);
    cr_assert_eq(h.h[1].seq, 2);
    /* A write the caller makes again is still a conflict. */
    cr_assert_eq(write1("resend-1", 2, 0, 0, "state", "again"), SAGA_ECONFLICT);
}

/* A call that returns an error never runs its callback: an id longer
 * than SAGA_ID_MAX is refused at once by the Redis store (it cannot name
 * its keys); the memory store takes it. Either way, once a later write's
 * callback ran, the refused one's has not and never will. */
CONTRACT(a_call_that_fails_never_runs_its_callback) {
    static char id[SAGA_ID_MAX + 2];
    memset(id, 'x', SAGA_ID_MAX + 1);
    static saga_event_t ev = {"saga.created", NULL, NULL, 0, NULL, 0};
    static saga_store_write_t w = {id, 1, 0, SAGA_WRITE_CREATE, "t", NULL, 0, &ev, 1, 0};
    wres_t r = {0};
    int rc = CALL(S->ops->write(S, &w, on_write, &r));
    if (redis)
        cr_assert_eq(rc, -EINVAL, "%s", saga_strerror(rc));
    cr_assert_eq(write1("after-1", 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(r.calls, rc != 0 ? 0 : 1, "call returned %d, its callback ran %d times",
                 rc, r.calls);
}

/* ---------------------------------------------------------------------- */
/* The timed store's own part: its hook                                    */
/* ---------------------------------------------------------------------- */

Test(store_timed, the_hook_sees_every_answered_write_with_its_status_before_the_caller) {
    cr_assert_eq(write1("t-1", 1, 0, SAGA_WRITE_CREATE, "input", "{}"), 0);
    cr_assert_eq(timed_hooks, 1, "one hook per write: %d", timed_hooks);
    cr_assert_eq(timed_last_status, 0);
    cr_assert(timed_last_ns > 0 && timed_last_ns < 10000000000ull,
              "elapsed %llu ns", (unsigned long long)timed_last_ns);
    cr_assert_eq(write1("t-1", 1, 0, SAGA_WRITE_CREATE, "input", "{}"), SAGA_EEXIST);
    cr_assert_eq(timed_hooks, 2);
    cr_assert_eq(timed_last_status, SAGA_EEXIST, "the hook gets the refusal");
    cr_assert(saga_store_timed_inner(S) != NULL);
    cr_assert_null(saga_store_timed_inner(saga_store_timed_inner(S)),
                   "a memory store is not a timed one");
}

Test(store_timed, freeing_the_decorator_with_a_write_in_flight_passes_the_answer_on) {
    saga_store_t *inner = saga_store_timed_inner(S);
    saga_kv_t f[] = {kv("input", "{}")};
    saga_store_write_t w = {"t-2", 1, 0, SAGA_WRITE_CREATE, "w", f, 1, NULL, 0, 0};
    wres_t r = {0};
    cr_assert_eq(S->ops->write(S, &w, on_write, &r), 0);
    saga_store_timed_free(S); /* freed once the write is answered */
    S = inner;
    run_until(&r.calls, 1, "the write's answer");
    cr_assert_eq(r.status, 0);
    cr_assert_eq(timed_hooks, 0, "no hook after the decorator was freed");
}

/* ---------------------------------------------------------------------- */
/* Settlements pushed (SAGA_WRITE_SETTLED)                                 */
/* ---------------------------------------------------------------------- */

/* The next pub/sub message on `c`: its payload, in `out`. */
static void next_message(redisContext *c, char *out, size_t len) {
    void *rep = NULL;
    cr_assert_eq(redisGetReply(c, &rep), REDIS_OK, "no message: %s", c->errstr);
    redisReply *r = rep;
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              r->element[2]->type == REDIS_REPLY_STRING, "not a message");
    snprintf(out, len, "%s", r->element[2]->str);
    freeReplyObject(r);
}

/* A write that settles a saga publishes its id, once; other writes, and a
 * refused one, publish nothing. On saga:{idx}:settled, with the split
 * index (Redis Cluster) too: a PUBLISH there reaches every node. */
static void settled_body(void) {
    const char *id = "settle-1";
    const char *channel = "saga:{idx}:settled";
    const char *sub = "SUBSCRIBE";
    const char *pub = "PUBLISH";
    redisContext *c = redis_server_connect(&R);
    cr_assert_not_null(c);
    redisReply *r = redisCommand(c, "%s %s", sub, channel);
    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY, "%s refused", sub);
    freeReplyObject(r);

    cr_assert_eq(write1(id, 1, 0, SAGA_WRITE_CREATE, "state", "running"), 0);
    cr_assert_eq(write1(id, 2, 0, 0, "state", "stuck"), 0);
    cr_assert_eq(write1(id, 2, 0, SAGA_WRITE_SETTLED, "state", "stuck"), SAGA_ECONFLICT,
                 "a stale write is refused (and publishes nothing)");
    cr_assert_eq(write1(id, 3, 0, SAGA_WRITE_TERMINAL | SAGA_WRITE_SETTLED, "state",
                        "completed"), 0);
    /* a sentinel of our own: what comes before it is all the store sent */
    redisContext *p = redis_server_connect(&R);
    cr_assert_not_null(p);
    r = redisCommand(p, "%s %s sentinel", pub, channel);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    redisFree(p);
    char msg[200];
    next_message(c, msg, sizeof(msg));
    cr_assert_str_eq(msg, id, "the settling write publishes the saga's id");
    next_message(c, msg, sizeof(msg));
    cr_assert_str_eq(msg, "sentinel", "one message per settlement, none for other writes");
    redisFree(c);
}

Test(store_redis, a_settling_write_publishes_the_id_once) { settled_body(); }
Test(store_redis_split, a_settling_write_publishes_the_id_on_the_one_channel) {
    settled_body();
}
