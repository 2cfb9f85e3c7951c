/*
 * engine.h -- runs sagas on one libuv loop.
 *
 * The engine owns the plugin registry, the deadline heap and the sagas it is
 * running; it writes every transition through a store (store.h) before it
 * acts on it. One engine per loop; many sagas per engine.
 *
 * A saga's life in the engine: saga_engine_start() (or _resume()) ->
 * attempts, retries, recovery -> a final state, reported once through
 * on_finished. `stuck` is reported when the saga is parked for an operator
 * and nothing of it is in flight any more.
 */
#ifndef SAGA_ENGINE_H
#define SAGA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "saga/definition.h"
#include "saga/plugin.h"
#include "saga/state.h"
#include "saga/store.h"

typedef struct saga_engine_s saga_engine_t;

/* A definition registered with an engine: handlers resolved, stored. */
typedef struct saga_engine_def_s saga_engine_def_t;

/* What happened, for progress output (saga run) and metrics. Strings are
 * valid during the callback only. */
typedef enum saga_progress_kind_e {
    SAGA_PROGRESS_CALL_STARTED,   /* an attempt's handler is being called */
    SAGA_PROGRESS_CALL_SUCCEEDED,
    SAGA_PROGRESS_CALL_FAILED,    /* retry_in_ms set when a retry follows */
    SAGA_PROGRESS_STEP_SKIPPED,   /* compensation: none */
    SAGA_PROGRESS_STATE           /* the saga changed state */
} saga_progress_kind_t;

typedef struct saga_progress_s {
    saga_progress_kind_t kind;
    const char *saga_id;
    const char *saga_name;
    const char *step;        /* NULL for STATE */
    saga_phase_t phase;
    uint32_t attempt;
    saga_outcome_t outcome;  /* CALL_FAILED: TECHNICAL or BUSINESS */
    const char *detail;      /* error message or state reason, may be NULL */
    uint64_t elapsed_ms;     /* CALL_SUCCEEDED/FAILED: the attempt's time */
    uint64_t elapsed_us;     /* ... in microseconds (the monotonic clock, not
                                the loop's: sub-millisecond steps measured) */
    bool will_retry;
    uint64_t retry_in_ms;
    saga_state_t state;      /* STATE: the new state */
    bool timed_out;          /* CALL_FAILED: the attempt timed out (outcome
                                TECHNICAL); false for other failures */
} saga_progress_t;

typedef struct saga_engine_options_s {
    saga_store_t *store;          /* required; not owned */
    const char *const *plugin_dirs; /* --plugins DIRs, NULL-terminated, or NULL */
    bool no_default_plugin_dirs;  /* skip $SAGA_PLUGIN_PATH and built-ins */
    const char *worker;           /* recorded in history; default host:pid */
    uint64_t seed;                /* jitter/id randomness; 0: from the OS */
    size_t max_output_bytes;      /* handler output cap; 0: 1 MiB */
    void (*on_progress)(const saga_progress_t *p, void *data);
    /* A saga reached completed/compensated, was parked stuck, or was lost
     * (status < 0: its store write failed or it was fenced; state is then
     * the last one known). The engine forgets the saga after this returns. */
    void (*on_finished)(saga_engine_t *e, const char *id, saga_state_t state,
                        int status, void *data);
    /* Optional: a saga's creation (its first write) is durable (status 0)
     * or was refused (SAGA_EEXIST: the id exists; other codes). */
    void (*on_created)(saga_engine_t *e, const char *id, int status, void *data);
    /* Sagas created here are owned by `worker` under a fencing token: the
     * record says owner and fence, and every write carries the fence. */
    bool owned;
    void *data;
} saga_engine_options_t;

/* Creates an engine on `loop`. Returns NULL with a reason in `err` when the
 * options are invalid or memory is short. */
saga_engine_t *saga_engine_new(uv_loop_t *loop, const saga_engine_options_t *opt,
                               char *err, size_t errlen);

/* Registers a definition: resolves every handler it names (loading plugins)
 * and stores its text under its hash. Takes ownership of `def` in every
 * case. Returns the registered definition (the existing one when the same
 * hash was registered before), or NULL with diagnostics appended to `diags`:
 * one positioned diagnostic per unresolvable handler, or one saying that the
 * store refused to take the text. Blocking (dlopen): call before the loop
 * serves sagas.
 *
 * The text's write completes later. No saga is created under a definition
 * before its text is stored (a resume on any worker needs it): a saga
 * started meanwhile waits for the write, and if the store refuses it, the
 * saga fails as a refused creation does (on_created and on_finished with
 * the store's code) and is not in the store. The next saga_engine_start()
 * under that definition writes the text again. */
saga_engine_def_t *saga_engine_register(saga_engine_t *e, saga_def_t *def,
                                        saga_diags_t *diags);

/* The definition of a registered one. */
const saga_def_t *saga_engine_def(const saga_engine_def_t *d);

/* The registered definition with content hash `hash`, or NULL. */
saga_engine_def_t *saga_engine_find(saga_engine_t *e, const char *hash);
const saga_def_t *saga_engine_lookup(const saga_engine_t *e, const char *hash);

/* Starts a saga. `id` may be NULL (a new ULID is generated) and is copied;
 * the chosen id is written to `id_out` (SAGA_ID_MAX + 1 bytes) when not
 * NULL. `input` is borrowed (a reference is taken); NULL means {}.
 * Returns 0, or -EINVAL (bad id or input; reason in err), SAGA_EEXIST (a saga
 * with that id runs here), SAGA_ECLOSING (the engine or its store is shutting
 * down), -ENOMEM, or the code with which the store refused to take the
 * creation write (SAGA_EUNAVAILABLE: unreachable; SAGA_ESTORE; another
 * negative code), reason in err. On 0, on_finished fires later. Creation is
 * the saga's first store write; a refusal that arrives later is reported
 * through on_created and on_finished (status < 0). */
int saga_engine_start(saga_engine_t *e, saga_engine_def_t *d, const char *id,
                      json_t *input, char *id_out, char *err, size_t errlen);

/* Resumes the saga `id` from the store: loads its record and the definition
 * it started under, and continues where it stood (see docs/durability.md).
 * `done` runs once the saga is running here again (status 0; on_finished
 * fires later), or with an error: SAGA_ENOTFOUND, SAGA_EEXIST (already here),
 * SAGA_ECORRUPT (record or definition cannot be used: reason in `msg`),
 * SAGA_EMANAGED (an unfinished saga that workers run: only a claim resumes
 * it, through saga_engine_resume_fenced).
 * A finished saga reports status 0 and on_finished at once. */
typedef void (*saga_engine_resume_cb)(int status, const char *msg, void *data);
int saga_engine_resume(saga_engine_t *e, const char *id,
                       saga_engine_resume_cb done, void *data);

/* Same, for a saga this engine has just claimed under fencing token
 * `fence` (its writes carry it; the record's own is not trusted). */
int saga_engine_resume_fenced(saga_engine_t *e, const char *id, uint64_t fence,
                              saga_engine_resume_cb done, void *data);

/* Resumes every unfinished saga in the store. `done` gets the number of
 * sagas resumed, failed, and left alone because workers run them. */
typedef void (*saga_engine_resume_all_cb)(int status, size_t resumed,
                                          size_t failed, size_t managed,
                                          void *data);
int saga_engine_resume_all(saga_engine_t *e, saga_engine_resume_all_cb done,
                           void *data);

/* Asks a saga running here to turn to backward recovery. Returns 0,
 * SAGA_ENOTFOUND (not running here) or SAGA_ESTATE (already finished or
 * compensating, or no longer cancellable: a TCC saga that is confirming, a
 * saga whose pivot step succeeded). A cancel asked while the pivot's action
 * is in flight waits for its outcome. */
int saga_engine_cancel(saga_engine_t *e, const char *id);

/* Number of sagas this engine is running now. */
size_t saga_engine_active(const saga_engine_t *e);

/* Stops the engine: no saga starts, no new attempt starts; attempts in
 * flight get `grace_ms` to finish and have their results written; then the
 * rest are abandoned (a later resume calls them again with the same key).
 * Once every call completed (abandoned ones included: the engine waits for
 * them, logging an error when they are still outstanding grace_ms + 1 s
 * later), the plugins are closed and `done` runs. Unfinished sagas stay in
 * the store. After `done`, free the engine with saga_engine_free(). */
void saga_engine_shutdown(saga_engine_t *e, uint64_t grace_ms,
                          void (*done)(void *data), void *data);

/* Frees an engine after its shutdown completed. Accepts NULL. */
void saga_engine_free(saga_engine_t *e);

/* The engine's loop (for plugins and tools). */
uv_loop_t *saga_engine_loop(const saga_engine_t *e);

#endif
