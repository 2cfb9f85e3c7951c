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
    cr_assert_eq(cmd("EXISTS saga:{idx}:intake")->integer, 1, "the intake group exists");

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
    cr_assert_eq(cmd("EXISTS saga:{idx}:intake")->integer, 0, "it takes no work");
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
