/*
 * plugin_host.h -- test scaffolding: a small, strict host for one step
 * plugin, so that plugins can be tested without the engine.
 *
 * It loads a built plugin through the real loader (saga_plugins_*) from
 * $SAGA_BUILD_DIR/lib/saga/plugins, provides a real saga_host_t, starts
 * calls with a saga_call_info_t it builds and keeps alive, runs the loop,
 * and records what the plugin did. It enforces the ABI contract with
 * Criterion assertions: complete() exactly once per call, with valid JSON
 * for OK; no host function used on a call after its completion;
 * set_retry_after() only before complete().
 *
 * Tests only: it asserts instead of returning errors. The engine has its own
 * host.
 */
#ifndef SAGA_TEST_PLUGIN_HOST_H
#define SAGA_TEST_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "saga/plugin.h"

typedef struct plugin_host_s plugin_host_t;

/* One call, as the test sees it. Owned by the host until ph_free(). */
struct saga_call_s {
    plugin_host_t *host;
    int ncomplete;            /* must end at exactly 1 */
    saga_outcome_t outcome;
    char *data;               /* copy of what complete() got, NUL-ended */
    size_t len;
    json_t *output;           /* parsed data when the outcome is OK */
    bool has_retry_after;
    uint64_t retry_after_ms;
    void *call_data;
    uint64_t started_ms, completed_ms; /* uv_now() */
    saga_call_info_t info;
    char *input, *saga_id, *saga_name, *step, *key;
    const saga_handler_t *handler;
    struct saga_call_s *next;
};

/* What a call is started with; zeroed fields take the defaults shown. */
typedef struct ph_opts_s {
    const char *saga_id;         /* "saga-1" */
    const char *saga_name;       /* "test-saga" */
    const char *step;            /* "step" */
    saga_phase_t phase;          /* action */
    uint32_t attempt;            /* 1 */
    uint64_t timeout_ms;         /* 10000 */
    const char *idempotency_key; /* "<saga_id>/<step>/<action|compensation>" */
} ph_opts_t;

/* Loads and initializes plugin `name` for `loop` (asserts on failure). */
plugin_host_t *ph_new(uv_loop_t *loop, const char *name);

/* Loads the plugin now (it is loaded on first use otherwise) and checks
 * that it has `handler`. */
void ph_load(plugin_host_t *h, const char *handler);

/* Starts handler `handler` of the plugin with the rendered `with` JSON text
 * (`opts` may be NULL). Returns the call, owned by the host. */
saga_call_t *ph_call(plugin_host_t *h, const char *handler, const char *with,
                     const ph_opts_t *opts);

/* Same, with the JSON built by printf. */
saga_call_t *ph_callf(plugin_host_t *h, const char *handler,
                      const ph_opts_t *opts, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Asks the plugin to cancel a call (the handler's cancel hook). */
void ph_cancel(plugin_host_t *h, saga_call_t *call);

/* Runs the loop until every call started so far has completed, or
 * `timeout_ms` passed. Returns true when all completed. */
bool ph_wait(plugin_host_t *h, uint64_t timeout_ms);

/* Runs the loop for `ms` milliseconds (calls keep running). */
void ph_run_for(plugin_host_t *h, uint64_t ms);

/* Calls not yet completed. */
size_t ph_pending(const plugin_host_t *h);

/* Log lines the plugin wrote, and the last one. */
size_t ph_log_count(const plugin_host_t *h);
const char *ph_last_log(const plugin_host_t *h);

/* Closes the plugin, runs the loop until its handles are closed, unloads
 * it, asserts every call was completed exactly once, and frees everything.
 * The caller then asserts uv_loop_close(loop) == 0. */
void ph_free(plugin_host_t *h);

/* Starts a call and waits for it (asserts it completes within 20 s). */
saga_call_t *ph_run1(plugin_host_t *h, const char *handler,
                     const ph_opts_t *opts, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Under AddressSanitizer, runs LeakSanitizer now and fails the test on any
 * leak (Criterion does not fail a test whose worker leaks at exit). A no-op
 * in other builds. */
void ph_check_leaks(void);

/* Number of open file descriptors of this process. */
int ph_count_fds(void);

#endif
