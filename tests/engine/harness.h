/*
 * harness.h -- runs sagas on a real engine and loop for the engine tests,
 * and reads their durable summaries back from the store.
 */
#ifndef SAGA_TEST_HARNESS_H
#define SAGA_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "saga/engine.h"
#include "util/strmap.h"

typedef struct th_s {
    uv_loop_t loop;
    saga_store_t *store;
    bool own_store;
    saga_engine_t *engine;
    const saga_def_t *def;     /* the last definition registered */
    size_t started;
    size_t finished;
    size_t by_state[SAGA_STATE_COUNT];        /* finished sagas per final state */
    size_t lost;               /* on_finished with status < 0 */
    size_t summaries_pending;
    bool keep_summaries;       /* read every finished saga back */
    saga_strmap_t summaries;   /* id -> json_t summary */
    size_t stop_after;         /* shut down once this many finished */
    bool stop_armed;           /* th_run_until() set stop_after */
    bool stopping;
    size_t progress_events;
    int store_status;          /* th_init_redis: the ready status */
    bool store_ready;
    bool phase_only;           /* th_run_phase(): keep the store open */
    /* Called with every progress report when set (from inside the engine:
     * defer anything that re-enters it). */
    void (*progress_hook)(struct th_s *t, const saga_progress_t *p);
    void *hook_data;
} th_t;

/* A loop, a memory store (or `store` when not NULL: the harness then does
 * not close it) and an engine with the test plugin dir on its path. */
void th_init(th_t *t, saga_store_t *store);

/* The same on a Redis store at `url` (waits until the store is ready and
 * fails the test otherwise). The harness closes the store at the end. */
void th_init_redis(th_t *t, const char *url);
/* ... with a command timeout (ms) on the store's connection. */
void th_init_redis_timeout(th_t *t, const char *url, uint64_t command_timeout_ms);
/* ... with the global indexes updated by separate commands (Redis Cluster). */
void th_init_redis_split(th_t *t, const char *url);
/* ... with that many connections in the store (0: its default). */
void th_init_redis_conns(th_t *t, const char *url, unsigned connections);

/* Creates the engine of th_init*() again after a th_run_until(): a new
 * process life on the same store (the old engine must be shut down). */
void th_restart_engine(th_t *t);

/* Loads YAML text and registers it; fails the test on any diagnostic. */
saga_engine_def_t *th_define(th_t *t, const char *yaml);

/* Same, but returns NULL and leaves the diagnostics in `diags`. */
saga_engine_def_t *th_try_define(th_t *t, const char *yaml, saga_diags_t *diags);

/* Starts one saga (input: JSON text or NULL); fails the test on error.
 * Returns its id (static buffer per call: copy it). */
const char *th_start(th_t *t, saga_engine_def_t *d, const char *input);

/* Runs the loop until `n` sagas finished, then shuts everything down and
 * asserts the loop closes with no handle left. */
void th_run_until(th_t *t, size_t n);

/* Like th_run_until(), but only the engine shuts down: the store stays
 * open for th_restart_engine(). */
void th_run_phase(th_t *t, size_t n);

/* The summary (record + history) of a finished saga (kept by the harness). */
json_t *th_summary(th_t *t, const char *id);

/* The steps of events of `type` (and `phase` when not NULL) in history
 * order, comma-joined: e.g. "c,b,a". Caller frees. */
char *th_order(json_t *summary, const char *type, const char *phase);

/* A step's field from the summary ("status", "attempts", ...). */
json_t *th_step(json_t *summary, const char *step);

/* Frees the harness state left after th_run_until(). */
void th_free(th_t *t);

#endif
