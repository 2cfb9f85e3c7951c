/*
 * test_operator.c -- store/operator.c on a real redis-server: submit, the
 * served definitions, a saga's state, the list and its paging, cancel and
 * retry in each state, and data in Redis that cannot be read (a clear
 * error, nothing stored changed). Data is written with a blocking client,
 * as workers and engines would have left it (docs/redis-layout.md).
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis/redis_url.h"
#include "redis_server.h"
#include "saga/errors.h"
#include "store/lease.h"
#include "store/operator.h"
#include "store/store_memory.h"
#include "store/store_redis.h"

static redis_server_t R;
static redisContext *rc;
static uv_loop_t loop;
static saga_store_t *store;

static const char HASH_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char HASH_B[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    int *st = data;
    cr_assert_eq(status, 0, "store: %s", msg ? msg : "?");
    *st = 1;
}

/* Runs the loop until *flag is set (bounded). */
static void run_until(const int *flag) {
    for (int i = 0; i < 100000 && !*flag; i++)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert(*flag, "the callback ran");
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    static const char *const args[] = {"--enable-debug-command", "yes", NULL};
    cr_assert_eq(redis_server_start(&R, args), 0);
    rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    uv_loop_init(&loop);
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(R.url, &u, err, sizeof(err)), 0, "%s", err);
    saga_store_redis_options_t o;
    memset(&o, 0, sizeof(o));
    int ready = 0;
    store = saga_store_redis_new(&loop, &u, &o, on_ready, &ready);
    saga_redis_url_close(&u);
    cr_assert_not_null(store);
    run_until(&ready);
}

static void on_closed(void *data) { *(int *)data = 1; }

/* Closes the store and checks that the loop ends clean. */
static void close_store(void) {
    if (store == NULL)
        return;
    int closed = 0;
    store->ops->close(store, on_closed, &closed);
    store = NULL;
    run_until(&closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "no handle left behind");
}

static void teardown(void) {
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    redis_server_stop(&R);
}

TestSuite(operator, .init = setup, .fini = teardown);

/* A blocking command for seeding and assertions. */
static redisReply *cmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "redis: %s", rc->errstr);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "redis: %s", r->str);
    return r;
}

static void cmd_ok(const char *fmt, const char *a, const char *b, const char *c) {
    freeReplyObject(cmd(fmt, a, b, c));
}

static long long cmd_int(const char *fmt, const char *arg) {
    redisReply *r = cmd(fmt, arg);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The digest of every key: equal digests, nothing stored changed. */
static char *digest(void) {
    redisReply *r = cmd("DEBUG DIGEST");
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    char *d = strdup(r->str);
    freeReplyObject(r);
    return d;
}

/* A saga record and its index entry, as an engine writes them; more
 * fields as NULL-terminated name, value pairs. */
static void put_saga(const char *id, const char *saga, const char *state, long long created,
                     ...) {
    redisReply *r = cmd("HSET saga:{%s} id %s saga %s state %s created %lld seq 3 def %s",
                        id, id, saga, state, created, HASH_A);
    freeReplyObject(r);
    const char *argv[32];
    char key[160];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    argv[0] = "HSET";
    argv[1] = key;
    int argc = 2;
    va_list ap;
    va_start(ap, created);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 32;)
        argv[argc++] = a;
    va_end(ap);
    if (argc > 2) {
        r = redisCommandArgv(rc, argc, argv, NULL);
        cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    bool finished = strcmp(state, "completed") == 0 || strcmp(state, "compensated") == 0;
    freeReplyObject(cmd("ZADD saga:{idx}:sagas %lld %s", finished ? created + 1000000 : -created,
                        id));
}

/* ---------------------------------------------------------------------- */
/* Callback recorders                                                      */
/* ---------------------------------------------------------------------- */

typedef struct got_s {
    int calls;
    int status;
    char why[512];
    char hash[65];
    bool fresh;
    saga_operator_state_t st;
    char reason[128];
    char names[1024];
    /* list */
    char ids[2048][40];
    size_t n;
    saga_state_t states[2048];
    char next[SAGA_OPERATOR_CURSOR_MAX + 1];
    bool has_next;
    /* cancel / retry */
    char owner[64];
    saga_operator_next_t nxt;
} got_t;

static void got_status(got_t *g, int status, const char *why) {
    g->calls++;
    g->status = status;
    snprintf(g->why, sizeof(g->why), "%s", why ? why : "");
    if (status == 0)
        cr_assert_null(why);
    else
        cr_assert(why != NULL && why[0] != '\0', "a failure says why");
}

static void on_resolve(int status, const char *why, const char *hash, void *data) {
    got_t *g = data;
    got_status(g, status, why);
    snprintf(g->hash, sizeof(g->hash), "%s", hash ? hash : "");
}

static void on_defs(int status, const char *why, const saga_operator_def_t *d, size_t n,
                    void *data) {
    got_t *g = data;
    got_status(g, status, why);
    g->names[0] = '\0';
    if (status != 0)
        cr_assert_null(d);
    /* name=hash4[w1,w2]; per definition */
    for (size_t i = 0; i < n; i++) {
        strcat(g->names, d[i].name);
        strcat(g->names, "=");
        strncat(g->names, d[i].hash, 4);
        strcat(g->names, "[");
        for (size_t k = 0; k < d[i].nworkers; k++) {
            if (k > 0)
                strcat(g->names, ",");
            strcat(g->names, d[i].workers[k]);
        }
        strcat(g->names, "];");
    }
}

static void on_lease(int status, const char *why, void *data) {
    got_t *g = data;
    got_status(g, status, why);
}

static void on_heartbeat(int status, bool expired, bool unlisted, const char *why,
                         void *data) {
    (void)expired;
    (void)unlisted;
    on_lease(status, why, data);
}

static void on_pause(uv_timer_t *t) { *(int *)t->data = 1; }

/* Lets the loop run for `ms` between two checks of a poll. */
static void pause_ms(uint64_t ms) {
    uv_timer_t t;
    int done = 0;
    uv_timer_init(&loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_pause, ms, 0);
    run_until(&done);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void on_submit(int status, const char *why, bool fresh, void *data) {
    got_t *g = data;
    got_status(g, status, why);
    g->fresh = fresh;
}

static void on_state(int status, const char *why, const saga_operator_state_t *st, void *data) {
    got_t *g = data;
    got_status(g, status, why);
    if (status == 0) {
        g->st = *st;
        snprintf(g->reason, sizeof(g->reason), "%s", st->reason ? st->reason : "");
        g->st.reason = NULL;
    } else {
        cr_assert_null(st);
    }
}

static void on_list(int status, const char *why, const saga_operator_page_t *p, void *data) {
    got_t *g = data;
    got_status(g, status, why);
    if (status != 0) {
        cr_assert_null(p);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        cr_assert_lt(g->n, 2048);
        snprintf(g->ids[g->n], sizeof(g->ids[0]), "%s", p->items[i].id);
        g->states[g->n++] = p->items[i].state;
    }
    g->has_next = p->next != NULL;
    snprintf(g->next, sizeof(g->next), "%s", p->next ? p->next : "");
}

static void on_request(int status, const char *why, const saga_operator_request_t *res,
                       void *data) {
    got_t *g = data;
    got_status(g, status, why);
    if (status == 0) {
        snprintf(g->owner, sizeof(g->owner), "%s", res->owner ? res->owner : "");
        g->nxt = res->next;
    }
}

/* Each call: its callback has not run when the call returns, then runs
 * exactly once. */
#define CALL(g, expr)                                                        \
    do {                                                                     \
        memset(&(g), 0, sizeof(g));                                          \
        cr_assert_eq((expr), 0, "%s", #expr);                                \
        cr_assert_eq((g).calls, 0, "never from inside the call");            \
        run_until(&(g).calls);                                               \
        uv_run(&loop, UV_RUN_NOWAIT);                                        \
        cr_assert_eq((g).calls, 1, "exactly once");                          \
    } while (0)

/* ---------------------------------------------------------------------- */
/* Submit and definitions                                                  */
/* ---------------------------------------------------------------------- */

Test(operator, submit_new_then_dup_and_names_resolved) {
    static got_t g;
    freeReplyObject(cmd("HSET saga:{idx}:defs order %s pay %s", HASH_A, HASH_B));

    CALL(g, saga_operator_resolve(store, "order", on_resolve, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_str_eq(g.hash, HASH_A);

    CALL(g, saga_operator_resolve(store, "nosuch", on_resolve, &g));
    cr_assert_eq(g.status, SAGA_ENOTFOUND);
    cr_assert_str_eq(g.why, "no worker serves saga 'nosuch'");

    CALL(g, saga_operator_definitions(store, on_defs, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_str_eq(g.names, "order=aaaa[];pay=0123[];", "sorted; no worker serves them");

    saga_operator_submit_t req = {"sub-1", "order", HASH_A, "{\"n\":1}", 0};
    CALL(g, saga_operator_submit(store, &req, on_submit, &g));
    cr_assert_eq(g.status, 0);
    cr_assert(g.fresh, "enqueued");
    cr_assert_eq(cmd_int("XLEN %s", "saga:{idx}:intake"), 1);

    /* The same id again: nothing new, whatever else differs. */
    saga_operator_submit_t again = {"sub-1", "pay", HASH_B, "{}", 0};
    CALL(g, saga_operator_submit(store, &again, on_submit, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_not(g.fresh, "submitted before");
    cr_assert_eq(cmd_int("XLEN %s", "saga:{idx}:intake"), 1);
    redisReply *r = cmd("XRANGE saga:{idx}:intake - +");
    cr_assert_eq(r->elements, 1);
    redisReply *f = r->element[0]->element[1];
    cr_assert_str_eq(f->element[1]->str, "sub-1");
    cr_assert_str_eq(f->element[3]->str, "order");
    cr_assert_str_eq(f->element[5]->str, HASH_A);
    cr_assert_str_eq(f->element[7]->str, "{\"n\":1}");
    freeReplyObject(r);

    /* Refused outright: no callback. */
    memset(&g, 0, sizeof(g));
    saga_operator_submit_t bad_id = {"bad id", "order", HASH_A, "{}", 0};
    saga_operator_submit_t bad_hash = {"sub-2", "order", "abc", "{}", 0};
    cr_assert_eq(saga_operator_submit(store, &bad_id, on_submit, &g), -EINVAL);
    cr_assert_eq(saga_operator_submit(store, &bad_hash, on_submit, &g), -EINVAL);
    cr_assert_eq(saga_operator_resolve(store, "", on_resolve, &g), -EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(g.calls, 0);
    close_store();
}

/* Who serves a saga: the workers that published its name, while their
 * lease runs. One stops (gone at once), one dies without a word (listed
 * until its lease expires, then not, though nobody forgot it yet). */
Test(operator, definitions_list_the_live_workers_serving_each_name) {
    static got_t g;
    CALL(g, saga_lease_publish_definition(store, "w1", "order", HASH_A, on_lease, &g));
    CALL(g, saga_lease_publish_definition(store, "w1", "pay", HASH_B, on_lease, &g));
    CALL(g, saga_lease_publish_definition(store, "w2", "order", HASH_A, on_lease, &g));
    CALL(g, saga_lease_publish_definition(store, "w3", "order", HASH_A, on_lease, &g));
    CALL(g, saga_lease_publish_definition(store, "w3", "ship", HASH_B, on_lease, &g));
    /* published, never heartbeating: never live */
    CALL(g, saga_lease_publish_definition(store, "w4", "pay", HASH_B, on_lease, &g));
    CALL(g, saga_lease_heartbeat(store, "w1", 60000, on_heartbeat, &g));
    CALL(g, saga_lease_heartbeat(store, "w2", 60000, on_heartbeat, &g));
    CALL(g, saga_lease_heartbeat(store, "w3", 3000, on_heartbeat, &g));
    cr_assert_eq(g.status, 0, "%s", g.why);

    CALL(g, saga_operator_definitions(store, on_defs, &g));
    cr_assert_eq(g.status, 0, "%s", g.why);
    cr_assert_str_eq(g.names, "order=aaaa[w1,w2,w3];pay=0123[w1];ship=0123[w3];");
    CALL(g, saga_operator_definition(store, "order", on_defs, &g));
    cr_assert_str_eq(g.names, "order=aaaa[w1,w2,w3];");

    /* w2 stops: gone at once, lease and all */
    CALL(g, saga_lease_deregister(store, "w2", on_lease, &g));
    cr_assert_eq(g.status, 0, "%s", g.why);
    cr_assert_eq(cmd_int("HEXISTS saga:{idx}:serving %s", "w2"), 0);
    CALL(g, saga_operator_definitions(store, on_defs, &g));
    cr_assert_str_eq(g.names, "order=aaaa[w1,w3];pay=0123[w1];ship=0123[w3];");

    /* w3 dies: no more heartbeats, nobody deregisters it */
    uint64_t deadline = uv_hrtime() + 15000000000ull;
    for (;;) {
        CALL(g, saga_operator_definitions(store, on_defs, &g));
        cr_assert_eq(g.status, 0, "%s", g.why);
        if (strstr(g.names, "w3") == NULL)
            break;
        cr_assert(uv_hrtime() < deadline, "w3 still listed 15 s after its lease: %s", g.names);
        pause_ms(50);
    }
    cr_assert_str_eq(g.names, "order=aaaa[w1];pay=0123[w1];ship=0123[];");
    cr_assert_eq(cmd_int("HEXISTS saga:{idx}:serving %s", "w3"), 1, "nobody forgot it yet");
    CALL(g, saga_operator_definition(store, "ship", on_defs, &g));
    cr_assert_str_eq(g.names, "ship=0123[];");

    /* a live worker forgets it: its traces are gone */
    CALL(g, saga_lease_deregister(store, "w3", on_lease, &g));
    cr_assert_eq(cmd_int("HEXISTS saga:{idx}:serving %s", "w3"), 0);
    redisReply *r = cmd("ZSCORE saga:{idx}:workers w3");
    cr_assert_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    CALL(g, saga_operator_definition(store, "nosuch", on_defs, &g));
    cr_assert_eq(g.status, SAGA_ENOTFOUND);
    cr_assert_str_eq(g.why, "no worker serves saga 'nosuch'");
    cr_assert_eq(saga_operator_definition(store, "", on_defs, &g), -EINVAL);
    close_store();
}

/* ---------------------------------------------------------------------- */
/* State                                                                   */
/* ---------------------------------------------------------------------- */

Test(operator, state_of_unknown_submitted_running_and_stuck_sagas) {
    static got_t g;
    CALL(g, saga_operator_state(store, "st-1", on_state, &g));
    cr_assert_eq(g.status, SAGA_ENOTFOUND);
    cr_assert_str_eq(g.why, "no saga st-1");

    saga_operator_submit_t req = {"st-1", "order", HASH_A, "{}", 0};
    CALL(g, saga_operator_submit(store, &req, on_submit, &g));
    CALL(g, saga_operator_state(store, "st-1", on_state, &g));
    cr_assert_eq(g.status, 0);
    cr_assert(!g.st.created && g.st.submitted, "submitted, no record yet");

    put_saga("st-1", "order", "running", 1000, NULL);
    CALL(g, saga_operator_state(store, "st-1", on_state, &g));
    cr_assert(g.st.created && !g.st.submitted);
    cr_assert_eq(g.st.state, SAGA_STATE_RUNNING);
    cr_assert_str_eq(g.reason, "");

    cmd_ok("HSET saga:{%s} state %s reason %s", "st-1", "stuck", "pay: card declined");
    CALL(g, saga_operator_state(store, "st-1", on_state, &g));
    cr_assert_eq(g.st.state, SAGA_STATE_STUCK);
    cr_assert_str_eq(g.reason, "pay: card declined");

    /* A record `saga run` wrote has no submission: found all the same. */
    put_saga("run-1", "order", "completed", 2000, NULL);
    CALL(g, saga_operator_state(store, "run-1", on_state, &g));
    cr_assert_eq(g.st.state, SAGA_STATE_COMPLETED);

    memset(&g, 0, sizeof(g));
    cr_assert_eq(saga_operator_state(store, "no/such", on_state, &g), -EINVAL);
    close_store();
}

/* ---------------------------------------------------------------------- */
/* List                                                                    */
/* ---------------------------------------------------------------------- */

/* Lists everything with pages of `limit`, following the cursors. */
static void list_all(got_t *all, const saga_state_t *state, const char *saga, size_t limit,
                     int *pages) {
    static got_t g;
    char cursor[SAGA_OPERATOR_CURSOR_MAX + 1] = "";
    memset(all, 0, sizeof(*all));
    *pages = 0;
    for (;;) {
        saga_operator_list_query_t q = {state, saga, limit, cursor[0] ? cursor : NULL};
        CALL(g, saga_operator_list(store, &q, on_list, &g));
        cr_assert_eq(g.status, 0, "%s", g.why);
        cr_assert_leq(g.n, limit);
        (*pages)++;
        for (size_t i = 0; i < g.n; i++) {
            memcpy(all->ids[all->n], g.ids[i], sizeof(g.ids[i]));
            all->states[all->n++] = g.states[i];
        }
        if (!g.has_next)
            break;
        cr_assert_lt(*pages, 1000, "the cursors end");
        snprintf(cursor, sizeof(cursor), "%s", g.next);
    }
}

Test(operator, list_pages_unfinished_newest_first_then_finished_last_first) {
    /* 450 unfinished (more than two index pages), 30 finished, 1 expired
     * (index entry without record), names alternating. */
    char id[40];
    for (int i = 0; i < 450; i++) {
        snprintf(id, sizeof(id), "u-%04d", i);
        put_saga(id, i % 2 ? "odd" : "even", i % 3 == 0 ? "stuck" : "running", 10000 + i, NULL);
    }
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "f-%04d", i);
        put_saga(id, i % 2 ? "odd" : "even", i % 5 == 0 ? "compensated" : "completed",
                 20000 + i, NULL);
    }
    freeReplyObject(cmd("ZADD saga:{idx}:sagas -15000 gone-1"));
    char *before = digest();

    static got_t all;
    int pages;
    list_all(&all, NULL, NULL, 7, &pages);
    cr_assert_eq(all.n, 480, "every saga once, the expired one skipped");
    cr_assert_str_eq(all.ids[0], "u-0449", "newest unfinished first");
    cr_assert_str_eq(all.ids[449], "u-0000");
    cr_assert_str_eq(all.ids[450], "f-0029", "then the last finished");
    cr_assert_str_eq(all.ids[479], "f-0000");
    cr_assert_geq(pages, 480 / 7);

    /* One big page: bounded work per call, the cursor goes on. */
    list_all(&all, NULL, NULL, 10000, &pages);
    cr_assert_eq(all.n, 480);
    cr_assert_eq(pages, 1, "1000 ids scanned per call at most: 481 fit");

    saga_state_t stuck = SAGA_STATE_STUCK, compensated = SAGA_STATE_COMPENSATED;
    list_all(&all, &stuck, NULL, 50, &pages);
    cr_assert_eq(all.n, 150);
    for (size_t i = 0; i < all.n; i++)
        cr_assert_eq(all.states[i], SAGA_STATE_STUCK);
    list_all(&all, &compensated, "even", 50, &pages);
    cr_assert_eq(all.n, 3, "f-0020, f-0010, f-0000: even and compensated");
    cr_assert_str_eq(all.ids[0], "f-0020");
    cr_assert_str_eq(all.ids[2], "f-0000");
    list_all(&all, NULL, "odd", 100, &pages);
    cr_assert_eq(all.n, 240);

    /* Cursors are checked. */
    static got_t g;
    char longest[SAGA_OPERATOR_CURSOR_MAX + 2];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[0] = 'F';
    longest[1] = '1';
    longest[2] = ':';
    longest[sizeof(longest) - 1] = '\0';
    const char *bad[] = {"", "x", "x:1", "u", "u:5", "f:0", "U:", "U5:a", "U0:a", "U-0:a",
                         "F-1:a", "U-1", "U-1:", "U-01:a", "F01:a", "F1x:a", "U-1:bad/id",
                         "F12345678901234567890:a", "U-:a", longest};
    char why[200];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        saga_operator_list_query_t q = {NULL, NULL, 10, bad[i]};
        cr_assert_eq(saga_operator_list(store, &q, on_list, &g), -EINVAL, "'%s'", bad[i]);
        cr_assert_eq(saga_operator_cursor_check(bad[i], why, sizeof(why)), -EINVAL);
        cr_assert_neq(why[0], '\0', "'%s' says why", bad[i]);
    }
    cr_assert_eq(saga_operator_cursor_check("u:14", why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "older") != NULL, "an old cursor is named so: %s", why);
    const char *good[] = {"U", "F", "U-1:a", "F0:a", "F1234567890123456789:a.b_c:d-e"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert_eq(saga_operator_cursor_check(good[i], why, sizeof(why)), 0, "'%s': %s",
                     good[i], why);
    saga_operator_list_query_t zero = {NULL, NULL, 0, NULL};
    cr_assert_eq(saga_operator_list(store, &zero, on_list, &g), -EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(g.calls, 0);

    char *after = digest();
    cr_assert_str_eq(before, after, "listing changes nothing");
    free(before);
    free(after);
    close_store();
}

/* Pages through everything with pages of `limit` while the index changes:
 * after page k, `change(k)` runs. What was listed is left in `walked`. */
typedef void (*change_fn)(int page, const got_t *listed);
static got_t walked;

static void page_while_changing(size_t limit, change_fn change) {
    static got_t g;
    char cursor[SAGA_OPERATOR_CURSOR_MAX + 1] = "";
    memset(&walked, 0, sizeof(walked));
    for (int page = 0;; page++) {
        saga_operator_list_query_t q = {NULL, NULL, limit, cursor[0] ? cursor : NULL};
        CALL(g, saga_operator_list(store, &q, on_list, &g));
        cr_assert_eq(g.status, 0, "%s", g.why);
        for (size_t i = 0; i < g.n; i++) {
            cr_assert_lt(walked.n, 2048);
            memcpy(walked.ids[walked.n++], g.ids[i], sizeof(g.ids[i]));
        }
        if (!g.has_next)
            break;
        cr_assert_lt(page, 1000, "the cursors end");
        cr_assert_leq(strlen(g.next), SAGA_OPERATOR_CURSOR_MAX);
        snprintf(cursor, sizeof(cursor), "%s", g.next);
        change(page, &walked);
    }
}

/* Removed sagas (ZREM + DEL, as the gc does), remembered so that they do
 * not count as stable. */
static char removed[512][40];
static size_t nremoved;

static void remove_saga(const char *id) {
    freeReplyObject(cmd("ZREM saga:{idx}:sagas %s", id));
    freeReplyObject(cmd("DEL saga:{%s}", id));
    cr_assert_lt(nremoved, 512);
    snprintf(removed[nremoved++], sizeof(removed[0]), "%s", id);
}

static bool was_removed(const char *id) {
    for (size_t i = 0; i < nremoved; i++)
        if (strcmp(removed[i], id) == 0)
            return true;
    return false;
}

/* Even pages: sagas added before the cursor (a newer unfinished one, a
 * newer finished one, and into the runs of equal scores the ids that sort
 * before the cursor's); odd pages: the last 3 listed removed (the cursor's
 * own entry among them), and the first listed one finishes (moves to the
 * front of the finished part). Positions shift by +4 and -3 or -4. */
static void churn(int page, const got_t *listed) {
    char id[40];
    if (page % 2 == 0) {
        snprintf(id, sizeof(id), "n-%04d", page);
        put_saga(id, "order", "running", 90000 + page, NULL);
        snprintf(id, sizeof(id), "m-%04d", page);
        put_saga(id, "order", "completed", 90000 + page, NULL);
        snprintf(id, sizeof(id), "d-%04d", page); /* before e-* in the run (ascending) */
        put_saga(id, "order", "running", 7000, NULL);
        snprintf(id, sizeof(id), "h-%04d", page); /* before g-* in the run (descending) */
        put_saga(id, "order", "completed", 7000, NULL);
        return;
    }
    for (size_t i = listed->n >= 3 ? listed->n - 3 : 0; i < listed->n; i++)
        if (!was_removed(listed->ids[i]))
            remove_saga(listed->ids[i]);
    if (listed->n > 0 && !was_removed(listed->ids[0])) {
        cr_assert_lt(nremoved, 512);
        snprintf(removed[nremoved++], sizeof(removed[0]), "%s", listed->ids[0]);
        freeReplyObject(cmd("HSET saga:{%s} state completed", listed->ids[0]));
        freeReplyObject(cmd("ZADD saga:{idx}:sagas 99000000 %s", listed->ids[0]));
    }
}

/* Every saga of `order` (in the order they must be listed) that churn did
 * not touch was listed exactly once, in that order; nothing churn left
 * alone was listed twice. Returns how many were stable. */
static size_t expect_stable(char order[][40], size_t n) {
    for (size_t i = 0; i < walked.n; i++)
        for (size_t j = i + 1; j < walked.n && !was_removed(walked.ids[i]); j++)
            cr_assert_str_neq(walked.ids[i], walked.ids[j], "%s listed twice (at %zu and %zu)",
                              walked.ids[i], i, j);
    size_t k = 0, stable = 0;
    for (size_t i = 0; i < n; i++) {
        if (was_removed(order[i]))
            continue;
        stable++;
        while (k < walked.n && strcmp(walked.ids[k], order[i]) != 0)
            k++;
        cr_assert_lt(k, walked.n, "stable saga %s not listed, or out of order", order[i]);
    }
    return stable;
}

static char order[2048][40];

Test(operator, paging_lists_every_saga_that_stays_exactly_once_while_others_come_and_go) {
    nremoved = 0;
    size_t n = 0;
    for (int i = 59; i >= 0; i--) { /* newest first */
        snprintf(order[n], sizeof(order[0]), "s-%04d", i);
        put_saga(order[n++], "order", "running", 10000 + i, NULL);
    }
    for (int i = 59; i >= 0; i--) { /* the last finished first */
        snprintf(order[n], sizeof(order[0]), "t-%04d", i);
        put_saga(order[n++], "order", "completed", 20000 + i, NULL);
    }
    page_while_changing(5, churn);
    size_t stable = expect_stable(order, n);
    cr_assert(stable > 40 && stable < n, "churn removed some, not all: %zu", stable);
    close_store();
}

/* Runs of equal scores longer than a page (and than one read of the index,
 * 200 ids): the cursor's place in the run is its id, not a position. */
Test(operator, paging_through_runs_of_equal_scores_while_they_change) {
    nremoved = 0;
    size_t n = 0;
    snprintf(order[n], sizeof(order[0]), "a-newest");
    put_saga(order[n++], "order", "running", 8000, NULL);
    for (int i = 0; i < 250; i++) { /* equal scores: ascending ids */
        snprintf(order[n], sizeof(order[0]), "e-%04d", i);
        put_saga(order[n++], "order", "running", 7000, NULL);
    }
    snprintf(order[n], sizeof(order[0]), "z-oldest");
    put_saga(order[n++], "order", "running", 6000, NULL);
    snprintf(order[n], sizeof(order[0]), "a-last-finished");
    put_saga(order[n++], "order", "completed", 8000, NULL);
    for (int i = 249; i >= 0; i--) { /* equal scores, reversed: descending ids */
        snprintf(order[n], sizeof(order[0]), "g-%04d", i);
        put_saga(order[n++], "order", "completed", 7000, NULL);
    }
    snprintf(order[n], sizeof(order[0]), "z-first-finished");
    put_saga(order[n++], "order", "completed", 6000, NULL);

    /* unchanged, with pages of 7 and of more than a read */
    static got_t all;
    int pages;
    list_all(&all, NULL, NULL, 7, &pages);
    cr_assert_eq(all.n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(all.ids[i], order[i], "at %zu", i);
    list_all(&all, NULL, NULL, 300, &pages);
    cr_assert_eq(all.n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(all.ids[i], order[i], "at %zu", i);

    page_while_changing(7, churn);
    size_t stable = expect_stable(order, n);
    cr_assert(stable > 300 && stable < n, "churn removed some, not all: %zu", stable);
    close_store();
}

/* A call reads a bounded part of the index: a filter that matches
 * nothing in the first 1,000 ids answers an empty page that is not the
 * last, and the next one finds the match. */
Test(operator, a_page_is_bounded_and_may_be_short_without_being_the_last) {
    for (int i = 0; i < 1100; i++) {
        char id[40];
        snprintf(id, sizeof(id), "b-%04d", i);
        redisAppendCommand(rc, "HSET saga:{%s} state running saga %s created %d", id,
                           i == 0 ? "rare" : "common", 1000 + i);
        redisAppendCommand(rc, "ZADD saga:{idx}:sagas %d %s", -(1000 + i), id);
    }
    for (int i = 0; i < 2200; i++) {
        redisReply *r;
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    static got_t g;
    saga_operator_list_query_t q = {NULL, "rare", 10, NULL};
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.n, 0);
    cr_assert(g.has_next, "not the end: %s", g.next);
    char next[SAGA_OPERATOR_CURSOR_MAX + 1];
    snprintf(next, sizeof(next), "%s", g.next);
    q.cursor = next;
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.ids[0], "b-0000", "the oldest, last of the unfinished");
    cr_assert_not(g.has_next);

    saga_operator_list_query_t big = {NULL, NULL, SAGA_OPERATOR_LIST_MAX + 1, NULL};
    memset(&g, 0, sizeof(g));
    cr_assert_eq(saga_operator_list(store, &big, on_list, &g), -EINVAL);
    close_store();
}

Test(operator, list_of_an_empty_store) {
    static got_t g;
    saga_operator_list_query_t q = {NULL, NULL, 10, NULL};
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.n, 0);
    cr_assert_not(g.has_next);
    close_store();
}

/* ---------------------------------------------------------------------- */
/* Cancel, retry                                                           */
/* ---------------------------------------------------------------------- */

Test(operator, cancel_in_each_state_wakes_whoever_runs_it) {
    static got_t g;
    put_saga("c-owned", "order", "running", 1,
             "fence", "4", "owner", "w1", NULL);
    put_saga("c-orphan", "order", "running", 2,
             "fence", "4", "owner", "", NULL);
    put_saga("c-run", "order", "running", 3, NULL);
    put_saga("c-done", "order", "completed", 4,
             "fence", "4", NULL);
    put_saga("c-comp", "order", "compensating", 5,
             "fence", "4", NULL);
    put_saga("c-stuckc", "order", "stuck", 6,
             "fence", "4", "stuck_in", "compensating", NULL);

    CALL(g, saga_operator_cancel(store, "c-owned", "ops-alice", on_request, &g));
    cr_assert_eq(g.status, 0, "%s", g.why);
    cr_assert_eq(g.nxt, SAGA_OPERATOR_OWNER);
    cr_assert_str_eq(g.owner, "w1");
    redisReply *r = cmd("LRANGE saga:{idx}:wake:w1 0 -1");
    cr_assert_eq(r->elements, 1);
    cr_assert_str_eq(r->element[0]->str, "c-owned");
    freeReplyObject(r);
    r = cmd("HGET saga:{c-owned} cancel");
    cr_assert_str_eq(r->str, "1");
    freeReplyObject(r);
    r = cmd("LRANGE saga:{c-owned}:history 0 -1");
    cr_assert_eq(r->elements, 1);
    cr_assert(strstr(r->element[0]->str, "saga.cancel_requested") != NULL);
    cr_assert(strstr(r->element[0]->str, "by ops-alice") != NULL, "%s", r->element[0]->str);
    freeReplyObject(r);

    /* Asking twice is fine: recorded once. */
    CALL(g, saga_operator_cancel(store, "c-owned", NULL, on_request, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_eq(cmd_int("LLEN %s", "saga:{c-owned}:history"), 1);

    CALL(g, saga_operator_cancel(store, "c-orphan", NULL, on_request, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.nxt, SAGA_OPERATOR_ORPHAN);
    cr_assert_str_eq(g.owner, "");
    cr_assert_eq(cmd_int("SISMEMBER saga:{idx}:orphans %s", "c-orphan"), 1);

    CALL(g, saga_operator_cancel(store, "c-run", NULL, on_request, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.nxt, SAGA_OPERATOR_UNMANAGED);

    char *before = digest();
    /* Who asked lands in a tab-separated history entry: checked first. */
    memset(&g, 0, sizeof(g));
    char longwho[SAGA_OPERATOR_WHO_MAX + 2];
    memset(longwho, 'w', sizeof(longwho) - 1);
    longwho[sizeof(longwho) - 1] = '\0';
    cr_assert_eq(saga_operator_cancel(store, "c-run", "ops\tbob", on_request, &g), -EINVAL);
    cr_assert_eq(saga_operator_retry(store, "c-run", "ops\nbob", on_request, &g), -EINVAL);
    cr_assert_eq(saga_operator_cancel(store, "c-run", longwho, on_request, &g), -EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(g.calls, 0);
    CALL(g, saga_operator_cancel(store, "c-done", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ESTATE);
    cr_assert_str_eq(g.why, "the saga is completed: nothing to cancel");
    CALL(g, saga_operator_cancel(store, "c-comp", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ESTATE);
    cr_assert_str_eq(g.why, "the saga is compensating already");
    CALL(g, saga_operator_cancel(store, "c-stuckc", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ESTATE);
    CALL(g, saga_operator_cancel(store, "c-none", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ENOTFOUND);
    cr_assert_str_eq(g.why, "no such saga");
    char *after = digest();
    cr_assert_str_eq(before, after, "a refused cancel changes nothing");
    free(before);
    free(after);
    close_store();
}

Test(operator, retry_in_each_state) {
    static got_t g;
    put_saga("r-stuck", "order", "stuck", 1,
             "fence", "2", "owner", "", "stuck_in", "running", "act:pay",
             "failed 3 0 5", "act:ship", "pending 0 0 0", NULL);
    put_saga("r-owned", "order", "stuck", 2,
             "fence", "2", "owner", "w2", "stuck_in", "running", "act:pay",
             "failed 3 0 5", NULL);
    put_saga("r-run", "order", "stuck", 3,
             "stuck_in", "compensating", "comp:pay", "failed 9 0 5", NULL);
    put_saga("r-running", "order", "running", 4,
             "fence", "2", NULL);
    put_saga("r-nofail", "order", "stuck", 5,
             "fence", "2", "owner", "", "act:pay", "succeeded 1 0 0",
             NULL);

    CALL(g, saga_operator_retry(store, "r-stuck", NULL, on_request, &g));
    cr_assert_eq(g.status, 0, "%s", g.why);
    cr_assert_eq(g.nxt, SAGA_OPERATOR_ORPHAN);
    redisReply *r = cmd("HMGET saga:{r-stuck} state act:pay act:ship");
    cr_assert_str_eq(r->element[0]->str, "running");
    cr_assert(strncmp(r->element[1]->str, "waiting 3 3 ", 12) == 0, "%s", r->element[1]->str);
    cr_assert_str_eq(r->element[2]->str, "pending 0 0 0");
    freeReplyObject(r);
    cr_assert_eq(cmd_int("SISMEMBER saga:{idx}:orphans %s", "r-stuck"), 1);

    /* Still being parked by its owner: refused, nothing changed. */
    char *before = digest();
    CALL(g, saga_operator_retry(store, "r-owned", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ESTATE);
    cr_assert(strstr(g.why, "still being parked by w2") != NULL, "%s", g.why);
    CALL(g, saga_operator_retry(store, "r-running", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ESTATE);
    cr_assert_str_eq(g.why, "the saga is running, not stuck");
    CALL(g, saga_operator_retry(store, "r-nofail", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ESTATE);
    cr_assert_str_eq(g.why, "no failed step to retry");
    CALL(g, saga_operator_retry(store, "r-none", NULL, on_request, &g));
    cr_assert_eq(g.status, SAGA_ENOTFOUND);
    char *after = digest();
    cr_assert_str_eq(before, after, "a refused retry changes nothing");
    free(before);
    free(after);

    /* Not run by workers: nobody to wake; it compensates again. */
    CALL(g, saga_operator_retry(store, "r-run", NULL, on_request, &g));
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.nxt, SAGA_OPERATOR_UNMANAGED);
    r = cmd("HGET saga:{r-run} state");
    cr_assert_str_eq(r->str, "compensating");
    freeReplyObject(r);
    close_store();
}

/* ---------------------------------------------------------------------- */
/* What cannot be read                                                     */
/* ---------------------------------------------------------------------- */

Test(operator, malformed_data_is_a_clear_error_and_nothing_changes) {
    static got_t g;
    freeReplyObject(cmd("HSET saga:{idx}:defs order not-a-hash"));
    put_saga("m-state", "order", "finished", 10, NULL);
    char *before = digest();

    CALL(g, saga_operator_resolve(store, "order", on_resolve, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_str_eq(g.why, "saga:{idx}:defs: the hash of 'order' is 'not-a-hash', not 64 hex "
                            "digits");
    CALL(g, saga_operator_definitions(store, on_defs, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert(strstr(g.why, "'not-a-hash'") != NULL, "%s", g.why);

    CALL(g, saga_operator_state(store, "m-state", on_state, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_str_eq(g.why, "saga m-state: field 'state' is 'finished', not a state");

    saga_operator_list_query_t q = {NULL, NULL, 10, NULL};
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_str_eq(g.why, "saga m-state: field 'state' is 'finished', not a state");

    cmd_ok("HSET saga:{%s} state %s created %s", "m-state", "running", "yesterday");
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_str_eq(g.why, "saga m-state: field 'created' is 'yesterday', not Unix ms");
    cmd_ok("HSET saga:{%s} created %s%s", "m-state", "10", "");

    /* A key of the wrong type where a record should be. */
    freeReplyObject(cmd("SET saga:{m-string} x"));
    freeReplyObject(cmd("ZADD saga:{idx}:sagas -5 m-string"));
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert(strncmp(g.why, "saga m-string: WRONGTYPE", 24) == 0, "%s", g.why);
    CALL(g, saga_operator_state(store, "m-string", on_state, &g));
    cr_assert_neq(g.status, 0);
    cr_assert(strstr(g.why, "WRONGTYPE") != NULL, "%s", g.why);
    CALL(g, saga_operator_cancel(store, "m-string", NULL, on_request, &g));
    cr_assert_neq(g.status, 0);
    freeReplyObject(cmd("DEL saga:{m-string}"));
    freeReplyObject(cmd("ZREM saga:{idx}:sagas m-string"));

    /* An index entry that cannot be a saga id. */
    freeReplyObject(cmd("ZADD saga:{idx}:sagas -1 %s", "bad}id"));
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_str_eq(g.why, "saga:{idx}:sagas holds 'bad}id', not a saga id");
    freeReplyObject(cmd("ZREM saga:{idx}:sagas %s", "bad}id"));

    /* An index score that is not whole ms (the cursor carries it). */
    freeReplyObject(cmd("ZADD saga:{idx}:sagas 1.5 %s", "m-frac"));
    CALL(g, saga_operator_list(store, &q, on_list, &g));
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_str_eq(g.why, "saga:{idx}:sagas holds saga m-frac with score '1.5', not Unix ms");
    freeReplyObject(cmd("ZREM saga:{idx}:sagas %s", "m-frac"));

    /* Back to how it was, by hand: the calls above wrote nothing. */
    cmd_ok("HSET saga:{%s} state %s%s", "m-state", "finished", "");
    char *after = digest();
    cr_assert_str_eq(before, after, "nothing stored changed");
    free(before);
    free(after);
    close_store();
}

/* ---------------------------------------------------------------------- */
/* The contract around the store                                           */
/* ---------------------------------------------------------------------- */

Test(operator, closing_the_store_answers_what_is_in_flight) {
    static got_t g, h;
    memset(&g, 0, sizeof(g));
    memset(&h, 0, sizeof(h));
    put_saga("cl-1", "order", "running", 1, NULL);
    cr_assert_eq(saga_operator_state(store, "cl-1", on_state, &g), 0);
    saga_operator_list_query_t q = {NULL, NULL, 10, NULL};
    cr_assert_eq(saga_operator_list(store, &q, on_list, &h), 0);
    close_store();
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(h.calls, 1);
    cr_assert_eq(g.status, SAGA_EUNAVAILABLE);
    cr_assert_str_eq(g.why, "lost the connection to Redis");
    cr_assert_eq(h.status, SAGA_EUNAVAILABLE);
}

Test(operator, a_memory_store_is_refused) {
    close_store();
    uv_loop_init(&loop);
    saga_store_memory_options_t mo = {0};
    saga_store_t *m = saga_store_memory_new(&loop, &mo);
    cr_assert_not_null(m);
    static got_t g;
    memset(&g, 0, sizeof(g));
    cr_assert_eq(saga_operator_state(m, "x-1", on_state, &g), -ENOTSUP);
    cr_assert_eq(saga_operator_cancel(m, "x-1", NULL, on_request, &g), -ENOTSUP);
    store = m;
    close_store();
    cr_assert_eq(g.calls, 0);
}
