/* harness.c -- see harness.h */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store/store_memory.h"
#include "store/store_redis.h"
#include "cli/summary.h"

typedef struct fetch_s {
    th_t *t;
    json_t *summary;
    char id[SAGA_ID_MAX + 1];
} fetch_t;

static void maybe_stop(th_t *t);

static void on_history(int status, const saga_history_entry_t *h, size_t n, void *data) {
    fetch_t *f = data;
    th_t *t = f->t;
    if (status == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, saga_summary_history_entry(&h[i]));
        json_object_set_new(f->summary, "history", arr);
    }
    /* A saga that finished twice (stuck, then retried) keeps its last
     * summary; the map holds our copy of the key: free both. */
    if (saga_strmap_get(&t->summaries, f->id) != NULL) {
        const char *k;
        void *v;
        for (size_t pos = 0; saga_strmap_next(&t->summaries, &pos, &k, &v);)
            if (strcmp(k, f->id) == 0) {
                saga_strmap_del(&t->summaries, f->id);
                json_decref(v);
                free((char *)k);
                break;
            }
    }
    char *key = strdup(f->id);
    saga_strmap_put(&t->summaries, key, f->summary, NULL);
    free(f);
    t->summaries_pending--;
    maybe_stop(t);
}

static void on_record(int status, const saga_record_t *rec, void *data) {
    fetch_t *f = data;
    cr_assert_eq(status, 0, "cannot load saga %s back: %d", f->id, status);
    size_t hl;
    const char *hash = saga_record_get(rec, "def", &hl);
    char h[65] = "";
    if (hash != NULL && hl == 64)
        memcpy(h, hash, 64);
    f->summary = saga_summary_build(rec, saga_engine_lookup(f->t->engine, h), NULL, 0);
    cr_assert_eq(f->t->store->ops->history(f->t->store, f->id, on_history, f), 0);
}

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state,
                        int status, void *data) {
    th_t *t = data;
    (void)e;
    t->finished++;
    if (status < 0)
        t->lost++;
    else
        t->by_state[state]++;
    if (t->keep_summaries && status == 0) {
        fetch_t *f = calloc(1, sizeof(*f));
        f->t = t;
        snprintf(f->id, sizeof(f->id), "%s", id);
        t->summaries_pending++;
        cr_assert_eq(t->store->ops->load(t->store, id, on_record, f), 0);
    }
    maybe_stop(t);
}

static void on_progress(const saga_progress_t *p, void *data) {
    th_t *t = data;
    t->progress_events++;
    if (t->progress_hook != NULL)
        t->progress_hook(t, p);
}

static void on_store_closed(void *data) { (void)data; }

static void on_engine_down(void *data) {
    th_t *t = data;
    if (t->phase_only) {
        uv_stop(&t->loop); /* the store stays open for the next engine */
        return;
    }
    if (t->own_store)
        t->store->ops->close(t->store, on_store_closed, NULL);
}

static void maybe_stop(th_t *t) {
    if (t->stopping || !t->stop_armed || t->finished < t->stop_after ||
        t->summaries_pending > 0)
        return;
    t->stopping = true;
    saga_engine_shutdown(t->engine, 1000, on_engine_down, t);
}

static void new_engine(th_t *t);

void th_init(th_t *t, saga_store_t *store) {
    memset(t, 0, sizeof(*t));
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    saga_strmap_init(&t->summaries);
    t->keep_summaries = true;
    if (store == NULL) {
        saga_store_memory_options_t mo = {.keep_finished = true, .keep_history = true};
        store = saga_store_memory_new(&t->loop, &mo);
        t->own_store = true;
    }
    t->store = store;
    new_engine(t);
}

static void on_redis_ready(saga_store_t *s, int status, const char *msg, void *data) {
    th_t *t = data;
    (void)s;
    t->store_ready = true;
    t->store_status = status;
    if (status != 0)
        fprintf(stderr, "redis store: %s\n", msg);
}

static void init_redis(th_t *t, const char *url, uint64_t command_timeout_ms, bool split,
                       unsigned connections);

void th_init_redis(th_t *t, const char *url) { init_redis(t, url, 0, false, 0); }

void th_init_redis_timeout(th_t *t, const char *url, uint64_t command_timeout_ms) {
    init_redis(t, url, command_timeout_ms, false, 0);
}

void th_init_redis_split(th_t *t, const char *url) { init_redis(t, url, 0, true, 0); }

void th_init_redis_conns(th_t *t, const char *url, unsigned connections) {
    init_redis(t, url, 0, false, connections);
}

static void init_redis(th_t *t, const char *url, uint64_t command_timeout_ms, bool split,
                       unsigned connections) {
    memset(t, 0, sizeof(*t));
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    saga_strmap_init(&t->summaries);
    t->keep_summaries = true;
    saga_redis_url_t u;
    char err[256];
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    saga_store_redis_options_t o;
    memset(&o, 0, sizeof(o));
    o.conn.reconnect_max_ms = 200;
    o.conn.command_timeout_ms = command_timeout_ms;
    o.split_index = split;
    o.connections = connections;
    t->store = saga_store_redis_new(&t->loop, &u, &o, on_redis_ready, t);
    saga_redis_url_close(&u);
    cr_assert_not_null(t->store);
    t->own_store = true;
    while (!t->store_ready)
        uv_run(&t->loop, UV_RUN_ONCE);
    cr_assert_eq(t->store_status, 0, "redis store not ready");
    new_engine(t);
}

void th_restart_engine(th_t *t) {
    cr_assert(t->stopping, "shut the previous engine down first");
    saga_engine_free(t->engine);
    t->engine = NULL;
    t->def = NULL; /* it belonged to the old engine */
    t->stopping = false;
    t->stop_armed = false;
    t->finished = 0;
    memset(t->by_state, 0, sizeof(t->by_state));
    t->lost = 0;
    new_engine(t);
}

static void new_engine(th_t *t) {
    saga_store_t *store = t->store;
    static char plugdir[1024];
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build, "SAGA_BUILD_DIR is not set (run through ctest)");
    snprintf(plugdir, sizeof(plugdir), "%s/tests/plugins", build);
    static const char *dirs[2];
    dirs[0] = plugdir;
    dirs[1] = NULL;
    saga_engine_options_t o = {
        .store = store,
        .plugin_dirs = dirs,
        .worker = "test-worker",
        .on_finished = on_finished,
        .on_progress = on_progress,
        .data = t,
    };
    char err[256];
    t->engine = saga_engine_new(&t->loop, &o, err, sizeof(err));
    cr_assert_not_null(t->engine, "engine: %s", err);
}

saga_engine_def_t *th_try_define(th_t *t, const char *yaml, saga_diags_t *diags) {
    saga_def_t *def = saga_def_load_buffer("test.yaml", yaml, strlen(yaml), diags);
    if (def == NULL)
        return NULL;
    saga_engine_def_t *d = saga_engine_register(t->engine, def, diags);
    if (d != NULL)
        t->def = saga_engine_def(d);
    return d;
}

saga_engine_def_t *th_define(th_t *t, const char *yaml) {
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_engine_def_t *d = th_try_define(t, yaml, &diags);
    if (d == NULL) {
        saga_diags_print(&diags, stderr);
        cr_assert_fail("definition refused (%zu diagnostics)", diags.count);
    }
    saga_diags_close(&diags);
    return d;
}

const char *th_start(th_t *t, saga_engine_def_t *d, const char *input) {
    static char id[SAGA_ID_MAX + 1];
    char err[256];
    json_t *in = input ? json_loads(input, 0, NULL) : NULL;
    cr_assert(input == NULL || in != NULL, "bad test input JSON");
    int rc = saga_engine_start(t->engine, d, NULL, in, id, err, sizeof(err));
    json_decref(in);
    cr_assert_eq(rc, 0, "start: %s", err);
    t->started++;
    return id;
}

void th_run_until(th_t *t, size_t n) {
    t->stop_after = n;
    t->stop_armed = true;
    maybe_stop(t);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert_eq(t->finished, n, "%zu sagas finished, expected %zu", t->finished, n);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "a libuv handle was left open");
}

void th_run_phase(th_t *t, size_t n) {
    t->phase_only = true;
    t->stop_after = n;
    t->stop_armed = true;
    maybe_stop(t);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    t->phase_only = false;
    cr_assert_eq(t->finished, n, "%zu sagas finished, expected %zu", t->finished, n);
}

json_t *th_summary(th_t *t, const char *id) {
    json_t *s = saga_strmap_get(&t->summaries, id);
    cr_assert_not_null(s, "no summary for saga %s", id);
    return s;
}

char *th_order(json_t *summary, const char *type, const char *phase) {
    size_t cap = 256, len = 0, i;
    char *out = calloc(1, cap);
    json_t *e;
    json_array_foreach(json_object_get(summary, "history"), i, e) {
        const char *ty = json_string_value(json_object_get(e, "type"));
        const char *ph = json_string_value(json_object_get(e, "phase"));
        const char *st = json_string_value(json_object_get(e, "step"));
        if (strcmp(ty, type) != 0 || (phase && (!ph || strcmp(ph, phase) != 0)) || !st)
            continue;
        size_t need = len + strlen(st) + 2;
        if (need > cap)
            out = realloc(out, cap = need * 2);
        len += (size_t)sprintf(out + len, "%s%s", len ? "," : "", st);
    }
    return out;
}

json_t *th_step(json_t *summary, const char *step) {
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(summary, "steps"), i, s)
        if (strcmp(json_string_value(json_object_get(s, "name")), step) == 0)
            return s;
    cr_assert_fail("no step %s in summary", step);
    return NULL;
}

void th_free(th_t *t) {
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&t->summaries, &pos, &k, &v);) {
        json_decref(v);
        free((char *)k);
    }
    saga_strmap_close(&t->summaries);
    saga_engine_free(t->engine);
    t->engine = NULL;
}
