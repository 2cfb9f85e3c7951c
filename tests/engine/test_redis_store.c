/*
 * test_redis_store.c -- the engine on a real redis-server: key layout,
 * retention, reconnection, resume, fencing and refusals.
 */
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "history_reader.h"
#include "util/log.h"
#include "redis_cmd.h"
#include "redis_server.h"
#include "store/store_redis.h"

static redis_server_t R;
static th_t T;

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    static const char *const args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    cr_assert_eq(redis_server_start(&R, args), 0);
}

static void teardown(void) {
    th_free(&T);
    redis_server_stop(&R);
}

TestSuite(redis_store, .init = setup, .fini = teardown);

/* A blocking command for assertions, on a connection opened again after
 * the server restarted. */
static redisReply *cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static redisReply *cmd(const char *fmt, ...) {
    static redisContext *c;
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        c = redis_server_connect(&R);
        cr_assert_not_null(c);
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

static long long cmd_int(const char *fmt, const char *arg) {
    redisReply *r = cmd(fmt, arg);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "reply type %d", r->type);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A saga's score in saga:{idx}:sagas (-created while unfinished, its
 * expiry once finished); fails when it is not listed. */
static long long index_score(const char *id) {
    redisReply *r = cmd("ZSCORE saga:{idx}:sagas %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "saga %s is in the index", id);
    long long v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static const char *const LINEAR =
    "saga: linear\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.echo, with: {v: \"a-${saga.id}\"}}, compensation: {handler: demo.noop}}\n"
    "  - {name: b, action: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}, compensation: {handler: demo.noop}}\n"
    "  - {name: c, action: {handler: demo.echo, with: {v: \"c-${saga.id}\"}}, compensation: {handler: demo.noop}}\n";

Test(redis_store, backward_saga_and_key_layout) {
    th_init_redis(&T, R.url);
    saga_engine_def_t *d = th_define(&T,
        "saga: layout\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.echo, with: {n: 1}}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.fail, with: {message: refused}}, compensation: {handler: demo.noop}}\n");
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "compensated");
    char *order = th_order(s, "step.succeeded", "compensation");
    cr_assert_str_eq(order, "b,a");
    free(order);

    char key[256];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    redisReply *r = cmd("HGET %s state", key);
    cr_assert_str_eq(r->str, "compensated");
    freeReplyObject(r);
    /* On a single Redis no saga key has a TTL: saga_gc deletes a finished
     * saga with its index entry once the retention (7 days) ran out. */
    cr_assert_eq(cmd_int("PTTL %s", key), -1, "the record carries no TTL");
    snprintf(key, sizeof(key), "saga:{%s}:history", id);
    cr_assert_gt(cmd_int("LLEN %s", key), 3);
    cr_assert_eq(cmd_int("PTTL %s", key), -1, "the history carries no TTL");
    long long expires = index_score(id), week = 7LL * 24 * 3600 * 1000;
    cr_assert(llabs(expires - (now_ms() + week)) < 1000,
              "a finished saga's index score is when it expires: %lld", expires);
    snprintf(key, sizeof(key), "sagadef:{%s}", T.def->hash);
    r = cmd("GET %s", key);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, T.def->text, "the definition text is stored by hash");
    freeReplyObject(r);
}

/* How many times the AOF (appendfsync always: on disk before the reply)
 * carries an HSET of `field` on the record of saga `id`. */
static int aof_field_writes(const char *id, const char *field) {
    char pattern[512], key[128], arg[64];
    snprintf(pattern, sizeof(pattern), "%s/appendonlydir/*.incr.aof", R.dir);
    int klen = snprintf(key, sizeof(key), "$%zu\r\nsaga:{%s}\r\n", strlen(id) + 7, id);
    int alen = snprintf(arg, sizeof(arg), "$%zu\r\n%s\r\n", strlen(field), field);
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no AOF under %s", R.dir);
    int n = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        FILE *f = fopen(g.gl_pathv[i], "rb");
        cr_assert_not_null(f);
        static char buf[1 << 20];
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* Each command is "*N\r\n$4\r\nHSET\r\n<key>..." up to the next "*". */
        for (char *p = strstr(buf, "$4\r\nHSET\r\n"); p != NULL; p = strstr(p + 1, "$4\r\nHSET\r\n")) {
            char *cmd = p + 10, *end = strstr(cmd, "\r\n*");
            if (strncmp(cmd, key, (size_t)klen) != 0)
                continue;
            for (char *q = cmd; (q = strstr(q, arg)) != NULL && (end == NULL || q < end); q += alen)
                n++;
        }
    }
    globfree(&g);
    return n;
}

/* The record's `reason` is written when it changes, not with every state:
 * a completed saga never had one, a compensated one keeps the reason it
 * compensated for, a stuck one gets its own. */
Test(redis_store, a_reason_is_written_only_when_it_changes) {
    th_init_redis(&T, R.url);
    saga_engine_def_t *ok = th_define(&T,
        "saga: fine\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n");
    saga_engine_def_t *back = th_define(&T,
        "saga: back\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.fail, with: {message: refused}}, compensation: {handler: demo.noop}}\n");
    saga_engine_def_t *stuck = th_define(&T,
        "saga: stuck\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: {handler: demo.fail, with: {message: cannot}}\n"
        "  - {name: b, action: {handler: demo.fail, with: {message: refused}}, compensation: {handler: demo.noop}}\n");
    char a[SAGA_ID_MAX + 1], b[SAGA_ID_MAX + 1], c[SAGA_ID_MAX + 1];
    strcpy(a, th_start(&T, ok, NULL));
    strcpy(b, th_start(&T, back, NULL));
    strcpy(c, th_start(&T, stuck, NULL));
    th_run_until(&T, 3);

    json_t *s = th_summary(&T, a);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    cr_assert(json_is_null(json_object_get(s, "reason")));
    cr_assert_eq(cmd_int("HEXISTS saga:{%s} reason", a), 0, "a completed saga has no reason field");
    cr_assert_eq(aof_field_writes(a, "reason"), 0);
    cr_assert_eq(aof_field_writes(a, "state"), 2, "created running, then completed");

    s = th_summary(&T, b);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "compensated");
    cr_assert(strstr(json_string_value(json_object_get(s, "reason")), "refused") != NULL);
    cr_assert_eq(aof_field_writes(b, "reason"), 1, "written when it compensates, kept after");
    cr_assert_eq(aof_field_writes(b, "state"), 3);

    s = th_summary(&T, c);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "stuck");
    cr_assert(strstr(json_string_value(json_object_get(s, "reason")), "compensation of step 'a'") != NULL);
    cr_assert_eq(aof_field_writes(c, "reason"), 2, "compensating, then stuck: two reasons");
}

/* One write may decide any number of events: after its root, 70 steps
 * start at once, one history entry of 71 events (the reader once had room
 * for 64 and refused the history). */
Test(redis_store, a_history_entry_of_many_events_reads_back) {
    th_init_redis(&T, R.url);
    char yaml[16384];
    size_t off = (size_t)snprintf(yaml, sizeof(yaml),
        "saga: fan\nsteps:\n  - {name: root, action: {handler: demo.noop}, compensation: none}\n");
    for (int i = 0; i < 70; i++)
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
            "  - {name: s%02d, after: [root], action: {handler: demo.noop}, compensation: none}\n", i);
    saga_engine_def_t *d = th_define(&T, yaml);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, NULL));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    char *order = th_order(s, "step.started", "action");
    size_t started = 0;
    for (char *p = order; *p; p++)
        started += *p == ',';
    cr_assert_eq(started + 1, 71, "started: %s", order);
    free(order);
}

/* Counts the outcome of a resume_all. */
static size_t resumed_n, resume_failed;
static void on_resumed_all(int status, size_t n, size_t failed, size_t managed,
                           void *data) {
    (void)data;
    cr_assert_eq(status, 0);
    cr_assert_eq(managed, 0, "no saga here is run by workers");
    resumed_n = n;
    resume_failed = failed;
}

static void stop_loop(void *data) { uv_stop(data); }

/* Shuts the engine down with no grace: calls in flight are abandoned, as
 * in a crash (their results never reach the store). The store stays. */
static void stop_engine_now(th_t *t) {
    t->phase_only = true;
    t->stopping = true;
    saga_engine_shutdown(t->engine, 0, stop_loop, &t->loop);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    t->phase_only = false;
}

static void run_until_progress(th_t *t, size_t events) {
    for (int i = 0; i < 2000 && t->progress_events < events; i++)
        uv_run(&t->loop, UV_RUN_ONCE);
    cr_assert_geq(t->progress_events, events);
}

/* The Redis Cluster path: indexes kept by separate commands, same result. */
Test(redis_store, indexes_by_separate_commands) {
    th_init_redis_split(&T, R.url);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, "{\"ms\": 1}"));
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    cr_assert_gt(index_score(id), now_ms(), "a finished saga is due to expire");
    /* Its keys live in another slot than the index on a Cluster: saga_gc
     * cannot delete them, so they expire on their own. */
    char key[256];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    cr_assert_gt(cmd_int("PTTL %s", key), 0, "the record expires on its own");
    snprintf(key, sizeof(key), "saga:{%s}:history", id);
    cr_assert_gt(cmd_int("PTTL %s", key), 0, "the history expires on its own");
}

/* Retention on a single Redis: once it ran out, the store's GC deletes the
 * finished sagas' keys with their index entries, a backlog larger than one
 * call (32) in one go (the next call 2 ms after a full one, not 32 per
 * second), and leaves running sagas alone. The retention "runs out" by
 * moving the finished sagas' index scores (their expiry) into the past. */
Test(redis_store, retention_ends_with_the_gc_deleting_finished_sagas) {
    th_init_redis(&T, R.url);
    T.keep_summaries = false;
    saga_engine_def_t *d = th_define(&T,
        "saga: short\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: none}\n");
    enum { N = 1000 };
    static char ids[N][SAGA_ID_MAX + 1];
    for (int i = 0; i < N; i++)
        strcpy(ids[i], th_start(&T, d, NULL));
    th_run_phase(&T, N);
    cr_assert_eq(T.by_state[SAGA_STATE_COMPLETED], N);

    /* A running saga (its step sleeps) is never due. */
    th_restart_engine(&T);
    saga_engine_def_t *slow = th_define(&T, LINEAR);
    char running[SAGA_ID_MAX + 1];
    strcpy(running, th_start(&T, slow, "{\"ms\": 60000}"));
    run_until_progress(&T, T.progress_events + 3); /* b sleeps */
    cr_assert_eq(cmd_int("ZCARD %s", "saga:{idx}:sagas"), N + 1);

    for (int i = 0; i < N; i++) {
        redisReply *r = cmd("ZADD saga:{idx}:sagas XX %lld %s", now_ms() - 1000, ids[i]);
        freeReplyObject(r);
    }
    /* A GC tick comes every second: five ticks' work without chaining. */
    long long until = now_ms() + 2500;
    saga_store_redis_stats_t stats;
    saga_store_redis_stats(T.store, &stats);
    while (stats.gc_removed < N && now_ms() < until) {
        uv_run(&T.loop, UV_RUN_ONCE);
        saga_store_redis_stats(T.store, &stats);
    }
    cr_assert_eq(stats.gc_removed, N, "the %d finished sagas were removed within 2.5 s (%llu)",
                 N, (unsigned long long)stats.gc_removed);
    cr_assert_eq(cmd_int("ZCARD %s", "saga:{idx}:sagas"), 1, "only the running saga is listed");
    char key[256];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "saga:{%s}", ids[i]);
        cr_assert_eq(cmd_int("EXISTS %s", key), 0, "record %s deleted", ids[i]);
        snprintf(key, sizeof(key), "saga:{%s}:history", ids[i]);
        cr_assert_eq(cmd_int("EXISTS %s", key), 0, "history %s deleted", ids[i]);
    }
    snprintf(key, sizeof(key), "saga:{%s}", running);
    cr_assert_eq(cmd_int("EXISTS %s", key), 1, "the running saga is kept");
    snprintf(key, sizeof(key), "saga:{%s}:history", running);
    cr_assert_eq(cmd_int("EXISTS %s", key), 1);
    cr_assert_lt(index_score(running), 0);
    stop_engine_now(&T);
}


/* Stop the engine while a step sleeps, start a new engine on the same
 * store: the saga is resumed, the interrupted step is called again with the
 * same attempt, the finished one is not called again. */
Test(redis_store, resume_after_the_engine_stopped) {
    th_init_redis(&T, R.url);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, "{\"ms\": 300}"));
    run_until_progress(&T, 3); /* a started, a succeeded, b started */
    char key[256];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    cr_assert_eq(cmd_int("PTTL %s", key), -1, "a running saga never expires");
    long long created = -index_score(id);
    cr_assert(created > 0 && created <= now_ms(), "unfinished: score -created (%lld)", created);
    stop_engine_now(&T);
    redisReply *r = cmd("HGET %s act:b", key);
    cr_assert_str_eq(r->str, "running 1 0 0", "b is recorded as started, not finished");
    freeReplyObject(r);

    th_restart_engine(&T);
    cr_assert_eq(saga_engine_resume_all(T.engine, on_resumed_all, NULL), 0);
    th_run_until(&T, 1);
    cr_assert_eq(resumed_n, 1);
    cr_assert_eq(resume_failed, 0);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    char *started = th_order(s, "step.started", "action");
    cr_assert_str_eq(started, "a,b,c", "b's attempt was not recorded twice");
    free(started);
    char *succeeded = th_order(s, "step.succeeded", "action");
    cr_assert_str_eq(succeeded, "a,b,c", "no step finished twice");
    free(succeeded);
    json_t *b = th_step(s, "b");
    cr_assert_eq(json_integer_value(json_object_get(b, "attempts")), 1);
}

/* kill -9 of redis-server (AOF always) while sagas run, restarted on the
 * same data: the engine waits, reconnects, resends, and every saga
 * finishes; no acknowledged transition is lost (the history's sequence
 * numbers run 1..seq without a gap). */
static void kill_redis(uv_timer_t *t) {
    (void)t;
    redis_server_kill(&R, SIGKILL);
}

static void restart_redis(uv_timer_t *t) {
    (void)t;
    cr_assert_eq(redis_server_restart(&R), 0);
}

static void closed_timer(uv_handle_t *h) { (void)h; }

Test(redis_store, redis_killed_and_restarted_mid_run) {
    th_init_redis(&T, R.url);
    T.keep_summaries = false;
    saga_engine_def_t *d = th_define(&T, LINEAR);
    enum { N = 200 };
    char ids[N][SAGA_ID_MAX + 1];
    for (int i = 0; i < N; i++)
        strcpy(ids[i], th_start(&T, d, "{\"ms\": 150}"));
    uv_timer_t k, r;
    uv_timer_init(&T.loop, &k);
    uv_timer_init(&T.loop, &r);
    uv_timer_start(&k, kill_redis, 60, 0);
    uv_timer_start(&r, restart_redis, 400, 0);
    th_run_phase(&T, N);
    cr_assert_eq(T.by_state[SAGA_STATE_COMPLETED], N, "lost: %zu", T.lost);
    uv_close((uv_handle_t *)&k, closed_timer);
    uv_close((uv_handle_t *)&r, closed_timer);
    th_restart_engine(&T);
    th_run_until(&T, 0);
    for (int i = 0; i < N; i++) {
        char key[256];
        snprintf(key, sizeof(key), "saga:{%s}", ids[i]);
        redisReply *st = cmd("HMGET %s state seq", key);
        cr_assert_str_eq(st->element[0]->str, "completed");
        long long seq = atoll(st->element[1]->str);
        freeReplyObject(st);
        hist_ev_t *ev;
        redisContext *c = redis_server_connect(&R);
        size_t nev = hist_read(c, ids[i], &ev);
        redisFree(c);
        long long expect = 1;
        for (size_t j = 0; j < nev; j++) {
            long long v = ev[j].seq;
            cr_assert(v == expect || v == expect + 1, "saga %s: seq %lld after %lld",
                      ids[i], v, expect);
            expect = v;
        }
        free(ev);
        cr_assert_eq(expect, seq, "saga %s: history ends at seq %lld, record at %lld",
                     ids[i], expect, seq);
    }
}

/* Commands sent to a frozen server are answered after the client gave up
 * on them (the command timeout); resent, they are recognised as applied. */
static void freeze(uv_timer_t *t) {
    (void)t;
    redis_server_kill(&R, SIGSTOP);
}

static void thaw(uv_timer_t *t) {
    (void)t;
    redis_server_kill(&R, SIGCONT);
}

Test(redis_store, writes_resent_after_a_timeout_are_applied_once) {
    th_init_redis_timeout(&T, R.url, 150);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    enum { N = 50 };
    char ids[N][SAGA_ID_MAX + 1];
    for (int i = 0; i < N; i++)
        strcpy(ids[i], th_start(&T, d, "{\"ms\": 100}"));
    uv_timer_t f, c;
    uv_timer_init(&T.loop, &f);
    uv_timer_init(&T.loop, &c);
    uv_timer_start(&f, freeze, 20, 0);
    uv_timer_start(&c, thaw, 12000, 0);
    th_run_phase(&T, N);
    uv_close((uv_handle_t *)&f, closed_timer);
    uv_close((uv_handle_t *)&c, closed_timer);
    th_restart_engine(&T);
    th_run_until(&T, 0);
    for (int i = 0; i < N; i++) {
        json_t *s = th_summary(&T, ids[i]);
        cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
        char *ok = th_order(s, "step.succeeded", "action");
        cr_assert_str_eq(ok, "a,b,c", "saga %s: %s", ids[i], ok);
        free(ok);
    }
}

/* A worker whose fencing token is no longer the record's can write
 * nothing: the saga is dropped from it and the record is untouched. */
Test(redis_store, a_fenced_write_is_refused) {
    th_init_redis(&T, R.url);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, "{\"ms\": 200}"));
    run_until_progress(&T, 3);
    char key[256];
    snprintf(key, sizeof(key), "saga:{%s}", id);
    freeReplyObject(cmd("HSET %s fence 777", key));
    redisReply *before = cmd("HGET %s seq", key);
    long long seq = atoll(before->str);
    freeReplyObject(before);
    th_run_until(&T, 1);
    cr_assert_eq(T.lost, 1, "the saga was dropped");
    redisReply *after = cmd("HMGET %s seq state", key);
    cr_assert_eq(atoll(after->element[0]->str), seq, "nothing was written");
    cr_assert_str_eq(after->element[1]->str, "running");
    freeReplyObject(after);
}

Test(redis_store, a_second_saga_with_the_same_id_is_refused) {
    th_init_redis(&T, R.url);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    char err[256], id[SAGA_ID_MAX + 1];
    json_t *in = json_pack("{s:i}", "ms", 1);
    cr_assert_eq(saga_engine_start(T.engine, d, "order-42", in, id, err, sizeof(err)), 0);
    th_run_phase(&T, 1);
    th_restart_engine(&T);
    d = th_define(&T, LINEAR); /* definitions belong to an engine */
    cr_assert_eq(saga_engine_start(T.engine, d, "order-42", in, id, err, sizeof(err)), 0);
    json_decref(in);
    th_run_until(&T, 1);
    cr_assert_eq(T.lost, 1, "the duplicate create was refused by the store");
    redisReply *r = cmd("HGET saga:{order-42} state");
    cr_assert_str_eq(r->str, "completed", "the first saga is untouched");
    freeReplyObject(r);
}

static int ready_status;
static char ready_msg[512];
static bool ready_seen;
static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    (void)data;
    ready_seen = true;
    ready_status = status;
    snprintf(ready_msg, sizeof(ready_msg), "%s", msg ? msg : "");
}

static void store_closed(void *data) { (void)data; }

/* Opens a store at `url` and returns the ready status (message kept). */
/* Clients connected to the server, this test's own connection left out. */
static long long store_clients(void) {
    redisReply *r = cmd("INFO clients");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "connected_clients:");
    cr_assert_not_null(p);
    long long n = atoll(p + strlen("connected_clients:")) - 1;
    freeReplyObject(r);
    return n;
}

/* The store spreads sagas over its connections (chosen by id); each saga's
 * requests stay on one, in order: every saga completes with its history at
 * seq 1, 2, ... and no conflict, though the definition was stored in the
 * same loop turn as the creates (its text goes ahead of them on every
 * connection). */
Test(redis_store, sagas_spread_over_connections_each_in_order) {
    th_init_redis_conns(&T, R.url, 3);
    cr_assert_eq(store_clients(), 3);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    enum { N = 60 };
    char ids[N][SAGA_ID_MAX + 1];
    for (int i = 0; i < N; i++)
        strcpy(ids[i], th_start(&T, d, "{\"ms\": 1}"));
    th_run_phase(&T, N); /* the store stays open */
    /* Each connection carried sagas' requests: the last one on each was a
     * saga's history read (the harness reads every finished saga's), which
     * goes through the saga's own connection. */
    redisReply *r = cmd("CLIENT LIST");
    int reads = 0;
    for (const char *p = r->str; (p = strstr(p, "cmd=lrange")) != NULL; p++)
        reads++;
    cr_assert_eq(reads, 3, "connections whose last command was a history read: %d in\n%s",
                 reads, r->str);
    freeReplyObject(r);
    th_restart_engine(&T);
    th_run_until(&T, 0); /* closes everything */
    redisContext *hc = redis_server_connect(&R);
    cr_assert_not_null(hc);
    for (int i = 0; i < N; i++) {
        json_t *s = th_summary(&T, ids[i]);
        cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed", "%s",
                         ids[i]);
        /* One history entry per write, seq 1, 2, ... (an event's seq is
         * its write's); the record stands at the last one. */
        hist_ev_t *ev = NULL;
        size_t nev = hist_read(hc, ids[i], &ev);
        cr_assert_gt(nev, 0);
        long long seq = 1;
        cr_assert_eq(ev[0].seq, 1);
        for (size_t k = 1; k < nev; k++) {
            cr_assert(ev[k].seq == seq || ev[k].seq == seq + 1, "%s: event %zu has seq %lld after %lld",
                      ids[i], k, ev[k].seq, seq);
            seq = ev[k].seq;
        }
        free(ev);
        redisReply *rs = cmd("HGET saga:{%s} seq", ids[i]);
        cr_assert_eq(rs->type, REDIS_REPLY_STRING);
        cr_assert_eq(atoll(rs->str), seq);
        freeReplyObject(rs);
    }
    redisFree(hc);
    /* The definition's text went over every connection, stored once. */
    r = cmd("KEYS sagadef:*");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1);
    freeReplyObject(r);
}

Test(redis_store, one_connection_when_configured) {
    th_init_redis_conns(&T, R.url, 1);
    cr_assert_eq(store_clients(), 1);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, "{\"ms\": 1}"));
    th_run_until(&T, 1);
    cr_assert_str_eq(json_string_value(json_object_get(th_summary(&T, id), "state")),
                     "completed");
}

static int open_store(const char *url) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof(err)), 0);
    ready_seen = false;
    saga_store_t *s = saga_store_redis_new(&loop, &u, NULL, on_ready, NULL);
    saga_redis_url_close(&u);
    while (!ready_seen)
        uv_run(&loop, UV_RUN_ONCE);
    s->ops->close(s, store_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    return ready_status;
}

/* saga_write called by hand with malformed arguments: an error that names
 * the function, and nothing written. The library is loaded by a store. */
Test(redis_store, malformed_writes_are_refused_and_change_nothing) {
    cr_assert_eq(open_store(R.url), 0, "%s", ready_msg);
    static const char *const bad[] = {
        /* too few arguments */
        "FCALL saga_write 2 saga:{m} saga:{m}:history 1 0 0 tok 1000 c-- 604800000",
        /* nfields says 2, one pair given */
        "FCALL saga_write 2 saga:{m} saga:{m}:history 1 0 0 tok 1000 c-- 604800000 2 a b entry",
        /* flags not three characters */
        "FCALL saga_write 2 saga:{m} saga:{m}:history 1 0 0 tok 1000 c 604800000 1 a b entry",
        /* a finish with a retention that is not a number */
        "FCALL saga_write 2 saga:{m} saga:{m}:history 1 0 0 tok 1000 ct- week 1 a b entry",
        /* a finish with a time that is not a number */
        "FCALL saga_write 2 saga:{m} saga:{m}:history 1 0 0 tok now ct- 604800000 1 a b entry",
        /* nfields not a number */
        "FCALL saga_write 2 saga:{m} saga:{m}:history 1 0 0 tok 1000 c-- 604800000 x a b entry",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = cmd(bad[i]);
        cr_assert_eq(r->type, REDIS_REPLY_ERROR, "refused: %s", bad[i]);
        cr_assert(strstr(r->str, "SAGABADARGS") != NULL, "%s: %s", bad[i], r->str);
        freeReplyObject(r);
        cr_assert_eq(cmd_int("EXISTS %s", "saga:{m}"), 0, "nothing written: %s", bad[i]);
        cr_assert_eq(cmd_int("EXISTS %s", "saga:{m}:history"), 0);
    }
    /* The same write well formed is applied, index included. */
    redisReply *r = cmd("FCALL saga_write 3 saga:{m} saga:{m}:history saga:{idx}:sagas "
                        "1 0 0 tok 1000 c-- 604800000 1 a b entry m");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    cr_assert_eq(index_score("m"), -1000);
    r = cmd("HMGET saga:{m} seq wtok updated a");
    cr_assert_str_eq(r->element[0]->str, "1");
    cr_assert_str_eq(r->element[1]->str, "tok");
    cr_assert_str_eq(r->element[2]->str, "1000");
    cr_assert_str_eq(r->element[3]->str, "b");
    freeReplyObject(r);
}

/* FUNCTION LOAD calls the server has run (INFO commandstats). */
static long long library_loads(void) {
    redisReply *r = cmd("INFO commandstats");
    const char *p = strstr(r->str, "cmdstat_function|load:calls=");
    long long n = p ? atoll(p + strlen("cmdstat_function|load:calls=")) : 0;
    freeReplyObject(r);
    return n;
}

/* The library is sent only to a server that does not run this build's
 * (each load goes to the AOF): once for two start-ups, and again after
 * the server lost it while sagas ran (their writes wait for it). */
Test(redis_store, the_library_is_loaded_only_when_the_server_lacks_it) {
    cr_assert_eq(open_store(R.url), 0, "%s", ready_msg);
    cr_assert_eq(open_store(R.url), 0, "%s", ready_msg);
    cr_assert_eq(library_loads(), 1, "loaded once for two start-ups");

    th_init_redis(&T, R.url);
    saga_engine_def_t *d = th_define(&T, LINEAR);
    char id[SAGA_ID_MAX + 1];
    strcpy(id, th_start(&T, d, "{\"ms\": 300}"));
    run_until_progress(&T, 3); /* b is running */
    cr_assert_eq(library_loads(), 1, "the engine's store found it loaded");
    freeReplyObject(cmd("FUNCTION FLUSH"));
    freeReplyObject(cmd("CLIENT KILL TYPE normal")); /* not this one (SKIPME) */
    th_run_until(&T, 1);
    json_t *s = th_summary(&T, id);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    cr_assert_eq(library_loads(), 2, "loaded again on the new connection");

    /* Another build's library under the same name is replaced, and the
     * log says so (engines of that build may still run). */
    freeReplyObject(cmd("FUNCTION LOAD REPLACE %s",
                        "#!lua name=saga\nredis.register_function('saga_library', "
                        "function() return 'another build' end)"));
    FILE *log = tmpfile();
    cr_assert_not_null(log);
    saga_log_set_output(log);
    int opened = open_store(R.url);
    saga_log_set_output(stderr);
    cr_assert_eq(opened, 0, "%s", ready_msg);
    cr_assert_eq(library_loads(), 4, "the other build's and ours");
    rewind(log);
    char line[1024];
    bool said = false;
    while (fgets(line, sizeof(line), log) != NULL)
        said = said || strstr(line, "function library of another build (another buil)") != NULL;
    fclose(log);
    cr_assert(said, "the replacement of another build's library was not logged");
    redisReply *r = cmd("FCALL saga_write 0");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_assert(strstr(r->str, "SAGABADARGS") != NULL, "ours answers: %s", r->str);
    freeReplyObject(r);
}

/* A server written by a build of key layout 1 (three indexes): the store
 * moves their entries into saga:{idx}:sagas at start-up, in batches, and
 * the unfinished sagas stay unfinished. */
Test(redis_store, indexes_of_layout_1_are_moved_at_start_up) {
    redisContext *c = redis_server_connect(&R);
    cr_assert_not_null(c);
    enum { UNFINISHED = 2500 };
    for (int i = 0; i < UNFINISHED; i++) {
        redisAppendCommand(c, "ZADD saga:{idx}:active %d u%d", 1000 + i, i);
        redisAppendCommand(c, "ZADD saga:{idx}:all %d u%d", 1000 + i, i);
    }
    redisAppendCommand(c, "ZADD saga:{idx}:all 500 f1");
    redisAppendCommand(c, "ZADD saga:{idx}:expiry 99999999999999 f1");
    for (int i = 0; i < 2 * UNFINISHED + 2; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    redisFree(c);

    cr_assert_eq(open_store(R.url), 0, "%s", ready_msg);
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{idx}:active"), 0);
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{idx}:all"), 0);
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{idx}:expiry"), 0);
    redisReply *r = cmd("ZCOUNT saga:{idx}:sagas -inf (0");
    cr_assert_eq(r->integer, UNFINISHED, "every unfinished saga is moved");
    freeReplyObject(r);
    cr_assert_eq(index_score("u7"), -1007);
    cr_assert_eq(index_score("f1"), 99999999999999LL, "a finished saga keeps its expiry");
    cr_assert_eq(open_store(R.url), 0, "a second start-up finds nothing to move");
}

Test(redis_store, eviction_policy_other_than_noeviction_is_refused) {
    freeReplyObject(cmd("CONFIG SET maxmemory-policy allkeys-lru"));
    cr_assert_neq(open_store(R.url), 0);
    cr_assert(strstr(ready_msg, "maxmemory-policy is 'allkeys-lru'") != NULL, "%s", ready_msg);
    cr_assert(strstr(ready_msg, "noeviction") != NULL);
    freeReplyObject(cmd("CONFIG SET maxmemory-policy noeviction"));
    cr_assert_eq(open_store(R.url), 0);
}

Test(redis_store, unreachable_redis_is_a_clear_error) {
    char url[600];
    snprintf(url, sizeof(url), "unix://%s/nothing-here.sock", R.dir);
    cr_assert_neq(open_store(url), 0);
    cr_assert(strstr(ready_msg, "nothing-here.sock") != NULL, "names the URL: %s", ready_msg);
}

/* saga_gc called by hand with malformed arguments is refused. */
Test(redis_store, malformed_gc_calls_are_refused) {
    cr_assert_eq(open_store(R.url), 0, "%s", ready_msg);
    static const char *const bad[] = {
        "FCALL saga_gc 1 saga:{idx}:sagas",             /* no limit */
        "FCALL saga_gc 1 saga:{idx}:sagas 0",           /* limit below 1 */
        "FCALL saga_gc 1 saga:{idx}:sagas ten",         /* not a number */
        "FCALL saga_gc 1 saga:{idx}:sagas 10 d saga:{", /* deletes, key names missing */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = cmd(bad[i]);
        cr_assert_eq(r->type, REDIS_REPLY_ERROR, "refused: %s", bad[i]);
        cr_assert(strstr(r->str, "SAGABADARGS") != NULL, "%s: %s", bad[i], r->str);
        freeReplyObject(r);
    }
}

/* saga_gc by hand: due ids (score <= now) leave the index; with 'd' their
 * record and history go too, without it (Redis Cluster) they stay for
 * their own TTL; ids not due, and unfinished ones (score < 0), stay. */
Test(redis_store, gc_deletes_the_keys_only_when_told) {
    cr_assert_eq(open_store(R.url), 0, "%s", ready_msg);
    long long now = now_ms();
    redisReply *r = cmd("ZADD saga:{idx}:sagas 1 due1 %lld later -5 running 2 due2", now + 3600000);
    freeReplyObject(r);
    const char *ids[] = {"due1", "later", "running", "due2"};
    char key[64];
    for (size_t i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "saga:{%s}", ids[i]);
        freeReplyObject(cmd("HSET %s state x", key));
        snprintf(key, sizeof(key), "saga:{%s}:history", ids[i]);
        freeReplyObject(cmd("RPUSH %s e", key));
    }
    r = cmd("FCALL saga_gc 1 saga:{idx}:sagas 1 -");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 1, "one id per call when the limit is 1");
    freeReplyObject(r);
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{due1}"), 1, "without 'd' the keys stay");
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{due1}:history"), 1);
    cr_assert_eq(cmd_int("ZCARD %s", "saga:{idx}:sagas"), 3);

    r = cmd("FCALL saga_gc 1 saga:{idx}:sagas 10 d saga:{ } }:history");
    cr_assert_eq(r->integer, 1, "due2 only: later is not due, running is unfinished");
    freeReplyObject(r);
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{due2}"), 0, "with 'd' the record goes");
    cr_assert_eq(cmd_int("EXISTS %s", "saga:{due2}:history"), 0, "and the history");
    for (size_t i = 1; i < 3; i++) {
        snprintf(key, sizeof(key), "saga:{%s}", ids[i]);
        cr_assert_eq(cmd_int("EXISTS %s", key), 1, "%s is kept", ids[i]);
    }
    cr_assert_eq(cmd_int("ZCARD %s", "saga:{idx}:sagas"), 2);
    r = cmd("FCALL saga_gc 1 saga:{idx}:sagas 10 d saga:{ } }:history");
    cr_assert_eq(r->integer, 0, "nothing else is due");
    freeReplyObject(r);
}

/* The value of `key=` in an INFO line, or 0. */
static long long info_field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p != NULL ? atoll(p + strlen(key)) : 0;
}

/* FCALLs the server ran or refused (INFO commandstats). */
static long long fcalls(void) {
    redisReply *r = cmd("INFO commandstats");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    const char *line = strstr(r->str, "cmdstat_fcall:");
    long long n = line ? info_field(line, "calls=") + info_field(line, "rejected_calls=") : 0;
    freeReplyObject(r);
    return n;
}

static long long gc_calls_wanted;
static bool gc_wait_expired;

static void check_gc_calls(uv_timer_t *t) {
    if (fcalls() >= gc_calls_wanted)
        uv_stop(t->loop);
}

static void gc_wait_deadline(uv_timer_t *t) {
    gc_wait_expired = true;
    uv_stop(t->loop);
}

/* A GC that keeps failing (here: the function library deleted behind the
 * store's back) says so once, not once a second. */
Test(redis_store, a_failing_gc_warns_once) {
    th_init_redis(&T, R.url);
    FILE *log = tmpfile();
    cr_assert_not_null(log);
    saga_log_set_output(log);
    freeReplyObject(cmd("FUNCTION DELETE saga"));
    /* Until the store called saga_gc three times (a tick a second), polled
     * every 50 ms; nothing else calls a function meanwhile. */
    long long before = fcalls();
    gc_calls_wanted = before + 3;
    gc_wait_expired = false;
    uv_timer_t poll, deadline;
    uv_timer_init(&T.loop, &poll);
    uv_timer_init(&T.loop, &deadline);
    uv_timer_start(&poll, check_gc_calls, 50, 50);
    uv_timer_start(&deadline, gc_wait_deadline, 10000, 0);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&poll, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&T.loop, UV_RUN_NOWAIT);
    saga_log_set_output(stderr);
    cr_assert(!gc_wait_expired, "the store called saga_gc %lld times in 10 s, not 3",
              fcalls() - before);
    rewind(log);
    char line[1024];
    int warnings = 0;
    while (fgets(line, sizeof(line), log) != NULL)
        warnings += strstr(line, "saga_gc:") != NULL;
    fclose(log);
    cr_assert_eq(warnings, 1, "one warning for three failed calls, not %d", warnings);
}
