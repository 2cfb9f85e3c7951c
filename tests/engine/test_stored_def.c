/*
 * test_stored_def.c -- core/stored_def.c: a definition read back by hash
 * and parsed, on a memory store: found, missing, not loading, and stored
 * under a hash it does not have.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "core/stored_def.h"
#include "saga/errors.h"
#include "store/store_memory.h"

static uv_loop_t loop;
static saga_store_t *store;

static const char YAML[] =
    "saga: order\n"
    "steps:\n"
    "  - {name: pay, action: {handler: demo.noop}, compensation: none}\n";

static void setup(void) {
    uv_loop_init(&loop);
    store = saga_store_memory_new(&loop, NULL);
    cr_assert_not_null(store);
}

static void on_closed(void *data) { *(int *)data = 1; }

static void teardown(void) {
    int closed = 0;
    store->ops->close(store, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(closed);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

TestSuite(stored_def, .init = setup, .fini = teardown);

typedef struct got_s {
    int calls;
    int status;
    char why[512];
    char name[64];
    size_t ndiags;
} got_t;

static void on_def(int status, const char *why, saga_def_t *def, saga_diags_t *diags,
                   void *data) {
    got_t *g = data;
    g->calls++;
    g->status = status;
    snprintf(g->why, sizeof(g->why), "%s", why ? why : "");
    snprintf(g->name, sizeof(g->name), "%s", def ? def->name : "");
    g->ndiags = diags->count;
    cr_assert_eq(def != NULL, status == 0);
    saga_def_free(def);
}

static void on_put(int status, void *data) {
    cr_assert_eq(status, 0);
    (*(int *)data)++;
}

/* Stores `text` under `hash`. */
static void put(const char *hash, const char *text) {
    int done = 0;
    cr_assert_eq(store->ops->put_definition(store, hash, text, strlen(text), on_put, &done), 0);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
}

static void load(const char *hash, got_t *g) {
    memset(g, 0, sizeof(*g));
    cr_assert_eq(saga_stored_def_load(store, hash, on_def, g), 0);
    cr_assert_eq(g->calls, 0, "never from inside the call");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(g->calls, 1, "exactly once");
}

/* The hash this build gives YAML. */
static void hash_of(const char *text, char *out) {
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer("t", text, strlen(text), &d);
    cr_assert_not_null(def);
    memcpy(out, def->hash, 65);
    saga_def_free(def);
    saga_diags_close(&d);
}

Test(stored_def, found_parsed_and_owned_by_the_callback) {
    char h[65];
    hash_of(YAML, h);
    put(h, YAML);
    got_t g;
    load(h, &g);
    cr_assert_eq(g.status, 0, "%s", g.why);
    cr_assert_str_eq(g.name, "order");
}

Test(stored_def, missing_text_is_not_found) {
    got_t g;
    load("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &g);
    cr_assert_eq(g.status, SAGA_ENOTFOUND);
    cr_assert(strstr(g.why, "is not in the store") != NULL, "%s", g.why);
}

Test(stored_def, a_text_that_does_not_load_is_corrupt_with_its_diagnostics) {
    const char *h = "1111111111111111111111111111111111111111111111111111111111111111";
    put(h, "saga: [unclosed\n");
    got_t g;
    load(h, &g);
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_gt(g.ndiags, 0);
    cr_assert(strstr(g.why, "does not load") != NULL, "%s", g.why);
}

Test(stored_def, a_text_stored_under_another_hash_is_refused) {
    const char *h = "2222222222222222222222222222222222222222222222222222222222222222";
    put(h, YAML);
    got_t g;
    load(h, &g);
    cr_assert_eq(g.status, SAGA_ECORRUPT);
    cr_assert_eq(g.ndiags, 0);
    cr_assert(strstr(g.why, "hashes to") != NULL, "%s", g.why);
}

Test(stored_def, a_malformed_hash_is_refused_without_a_callback) {
    got_t g;
    memset(&g, 0, sizeof(g));
    cr_assert_eq(saga_stored_def_load(store, "abc", on_def, &g), -EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(g.calls, 0);
}
