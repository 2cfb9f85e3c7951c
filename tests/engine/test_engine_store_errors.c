/*
 * test_engine_store_errors.c -- what the engine's callers see when the store
 * refuses: saga_engine_start() returns the store's code (not "out of
 * memory"), and a definition whose text cannot be stored is an error the
 * caller of saga_engine_register() sees (engine.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "saga/engine.h"
#include "saga/errors.h"
#include "store/store_memory.h"

static uv_loop_t loop;
static saga_store_t *store;
static saga_engine_t *engine;
static size_t finished, lost;

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state, int status,
                        void *data) {
    (void)e, (void)id, (void)state, (void)data;
    finished++;
    if (status < 0)
        lost++;
}

static void setup(void) {
    cr_assert_eq(uv_loop_init(&loop), 0);
    saga_store_memory_options_t mo = {.keep_finished = true, .keep_history = true};
    store = saga_store_memory_new(&loop, &mo);
    cr_assert_not_null(store);
    saga_engine_options_t o = {
        .store = store,
        .no_default_plugin_dirs = false,
        .worker = "test-worker",
        .on_finished = on_finished,
    };
    char err[256];
    engine = saga_engine_new(&loop, &o, err, sizeof(err));
    cr_assert_not_null(engine, "engine: %s", err);
}

static void teardown(void) {
    saga_engine_free(engine);
    engine = NULL;
}

TestSuite(engine_store_errors, .init = setup, .fini = teardown);

static const char yaml[] =
    "saga: one\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.noop}, compensation: none}\n";

static saga_engine_def_t *try_define(saga_diags_t *diags) {
    saga_def_t *def = saga_def_load_buffer("one.yaml", yaml, strlen(yaml), diags);
    cr_assert_not_null(def);
    return saga_engine_register(engine, def, diags);
}

static saga_engine_def_t *define(void) {
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_engine_def_t *d = try_define(&diags);
    if (d == NULL)
        saga_diags_print(&diags, stderr);
    saga_diags_close(&diags);
    cr_assert_not_null(d);
    return d;
}

static bool engine_down, store_closed;
static void on_engine_down(void *data) { (void)data; engine_down = true; }
static void on_store_closed(void *data) { (void)data; store_closed = true; }

/* Shuts the engine down, closes the store unless `store_closing`, and runs
 * the loop until every handle is closed. */
static void finish_test(bool store_closing) {
    saga_engine_shutdown(engine, 0, on_engine_down, NULL);
    if (!store_closing)
        store->ops->close(store, on_store_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(engine_down);
    cr_assert(store_closed);
    cr_assert_eq(uv_loop_close(&loop), 0, "a libuv handle was left open");
}

/* The store refuses the creation write at once (it is closing): start
 * reports SAGA_ECLOSING, which it used to turn into -ENOMEM. */
Test(engine_store_errors, start_returns_the_stores_refusal) {
    saga_engine_def_t *d = define();
    uv_run(&loop, UV_RUN_NOWAIT); /* the definition's text is stored */
    store->ops->close(store, on_store_closed, NULL);
    char err[256] = "", id[SAGA_ID_MAX + 1];
    int rc = saga_engine_start(engine, d, NULL, NULL, id, err, sizeof(err));
    cr_assert_eq(rc, SAGA_ECLOSING, "start returned %d (%s): %s", rc, saga_strerror(rc), err);
    cr_assert(strstr(err, "out of memory") == NULL, "err: %s", err);
    cr_assert_eq(saga_engine_active(engine), 0);
    finish_test(true);
    cr_assert_eq(finished, 0, "a saga that start refused is never reported");
}

/* The store refuses the definition's text at once: register fails with a
 * diagnostic that says so (it used to log it and return the definition, and
 * sagas then ran under a text no other worker could load). */
Test(engine_store_errors, register_fails_when_the_text_cannot_be_stored) {
    store->ops->close(store, on_store_closed, NULL);
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_engine_def_t *d = try_define(&diags);
    cr_assert_null(d, "registered a definition whose text the store refused");
    cr_assert_eq(diags.count, 1);
    cr_assert(strstr(diags.items[0].message, "cannot store the definition's text") != NULL,
              "%s", diags.items[0].message);
    saga_diags_close(&diags);
    finish_test(true);
}

/* Sagas started right after the registration wait for the text's write
 * and are created once it is stored. */
Test(engine_store_errors, sagas_started_before_the_text_is_stored_run) {
    saga_engine_def_t *d = define();
    char err[256];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(saga_engine_start(engine, d, NULL, NULL, NULL, err, sizeof(err)), 0,
                     "%s", err);
    uint64_t deadline = uv_now(&loop) + 10000;
    while (finished < 3 && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(finished, 3);
    cr_assert_eq(lost, 0);
    finish_test(false);
}
