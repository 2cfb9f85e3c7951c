/*
 * saga/plugin.h -- the step plugin ABI. The only header a plugin includes.
 *
 * A plugin is a shared object named <plugin>.so that exports one symbol,
 * `saga_plugin` (SAGA_PLUGIN_SYMBOL), of type saga_plugin_t. The engine
 * dlopen()s it, checks abi_version and struct_size, calls init() once with a
 * table of host functions, and then calls handlers by name: the YAML handler
 * "demo.sleep" is the handler "sleep" of the plugin "demo".
 *
 * A plugin never links against engine symbols: everything it may ask of the
 * engine is in saga_host_t. Every struct that crosses this boundary starts
 * with its ABI version or size, so that either side can tell an old peer.
 *
 * Threading: init(), close(), handlers and cancel run on the engine's event
 * loop thread, except handlers flagged SAGA_HANDLER_BLOCKING, which run on
 * the libuv thread pool. A non-blocking handler must never block: it starts
 * its work (timers, sockets, child processes on `info->loop`) and completes
 * later.
 *
 * JSON crosses the boundary as UTF-8 text: the input is the call's rendered
 * `with` value, compact JSON, NUL-terminated. An OK result carries output
 * JSON text (any JSON value); the engine validates it.
 */
#ifndef SAGA_PLUGIN_H
#define SAGA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change to the structs below. A plugin built
 * for another version is refused at load with a message naming both. */
#define SAGA_PLUGIN_ABI_VERSION 1u

/* The name of the descriptor symbol every plugin exports. */
#define SAGA_PLUGIN_SYMBOL "saga_plugin"

#if defined(__GNUC__)
#define SAGA_PLUGIN_EXPORT __attribute__((visibility("default")))
#define SAGA_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define SAGA_PLUGIN_EXPORT
#define SAGA_PRINTF_LIKE(f, a)
#endif

struct uv_loop_s; /* libuv's uv_loop_t; include <uv.h> to use it */

/* One handler call in flight. Opaque; owned by the engine. It stays valid
 * until the plugin completes it, even after the engine gave up on it (a
 * timeout): a late completion is accepted, logged and ignored. */
typedef struct saga_call_s saga_call_t;

/* The phases of a saga's step (action, compensation) and of a TCC saga's
 * step (try, confirm, cancel; `mode: tcc`). The TCC values were added
 * within ABI version 1: they reach only handlers named in a TCC saga, and
 * a plugin that does not know them may treat them as it treats an action
 * (the idempotency key and X-Saga-Phase still tell them apart). */
typedef enum saga_phase_e {
    SAGA_PHASE_ACTION = 0,
    SAGA_PHASE_COMPENSATION = 1,
    SAGA_PHASE_TRY = 2,
    SAGA_PHASE_CONFIRM = 3,
    SAGA_PHASE_CANCEL = 4
} saga_phase_t;

/* The phase's name as records, history, logs and the X-Saga-Phase header
 * spell it: "action", "compensation", "try", "confirm" or "cancel". A
 * header-only helper: plugins and the engine share the one spelling
 * without linking anything. */
static inline const char *saga_phase_name(saga_phase_t phase) {
    switch (phase) {
    case SAGA_PHASE_COMPENSATION: return "compensation";
    case SAGA_PHASE_TRY: return "try";
    case SAGA_PHASE_CONFIRM: return "confirm";
    case SAGA_PHASE_CANCEL: return "cancel";
    default: return "action";
    }
}

typedef enum saga_outcome_e {
    SAGA_OUTCOME_OK = 0,        /* data: output JSON text */
    SAGA_OUTCOME_TECHNICAL = 1, /* data: message; the engine may retry */
    SAGA_OUTCOME_BUSINESS = 2   /* data: message; never retried */
} saga_outcome_t;

typedef enum saga_log_level_e {
    SAGA_LOG_DEBUG = 0,
    SAGA_LOG_INFO = 1,
    SAGA_LOG_WARN = 2,
    SAGA_LOG_ERROR = 3
} saga_log_level_t;

/* What a handler is called with. Every pointer stays valid until the call is
 * completed (the engine keeps the strings alive that long). */
typedef struct saga_call_info_s {
    uint32_t struct_size;        /* sizeof(saga_call_info_t) of the engine */
    const char *input;           /* rendered `with`, compact JSON */
    size_t input_len;
    const char *saga_id;
    const char *saga_name;
    const char *step;
    saga_phase_t phase;
    uint32_t attempt;            /* 1 for the first attempt */
    uint64_t timeout_ms;         /* this attempt's budget */
    int64_t deadline_ms;         /* Unix time (ms) when the attempt times out */
    const char *idempotency_key; /* "<saga-id>/<step>/<phase name>",
                                    the same across retries and resumes */
    struct uv_loop_s *loop;      /* the engine's loop (non-blocking handlers) */
} saga_call_info_t;

/* The functions the engine offers to plugins. */
typedef struct saga_host_s {
    uint32_t abi_version; /* SAGA_PLUGIN_ABI_VERSION of the engine */
    uint32_t struct_size; /* sizeof(saga_host_t) of the engine */

    /* Completes a call with its outcome, exactly once. `data` (len bytes,
     * need not be NUL-terminated) is copied: output JSON for OK, a one-line
     * message for failures. Call it on the loop thread; a blocking handler
     * calls it on its pool thread before it returns. Calling it from inside
     * the handler itself is allowed. */
    void (*complete)(saga_call_t *call, saga_outcome_t outcome,
                     const char *data, size_t len);

    /* Asks for the next attempt to start no sooner than delay_ms from now
     * (an HTTP Retry-After). Call before complete() with a TECHNICAL
     * outcome; the engine still caps the delay by the step's max_delay. */
    void (*set_retry_after)(saga_call_t *call, uint64_t delay_ms);

    /* One pointer of plugin data per call, e.g. to find the request when
     * cancel() arrives. NULL until set. */
    void (*set_call_data)(saga_call_t *call, void *data);
    void *(*call_data)(const saga_call_t *call);

    /* Logs one line through the engine's logger. */
    void (*log)(saga_log_level_t level, const char *plugin, const char *fmt,
                ...) SAGA_PRINTF_LIKE(3, 4);
} saga_host_t;

/* The handler may block: the engine runs it on the libuv thread pool. */
#define SAGA_HANDLER_BLOCKING 0x1u

typedef struct saga_handler_s {
    const char *name; /* the part after "plugin." in YAML */
    uint32_t flags;   /* SAGA_HANDLER_* */

    /* Starts the call. It must complete it exactly once through
     * host->complete(), now or later. */
    void (*call)(void *plugin_state, saga_call_t *call,
                 const saga_call_info_t *info);

    /* Optional (NULL allowed). Asks the plugin to abandon a call the engine
     * no longer waits for (its attempt timed out, or the engine is shutting
     * down). The plugin should release the call's resources soon and must
     * still complete it (the outcome is then ignored). Never called for
     * blocking handlers. */
    void (*cancel)(void *plugin_state, saga_call_t *call);
} saga_handler_t;

/* The descriptor a plugin exports as `saga_plugin`. */
typedef struct saga_plugin_s {
    uint32_t abi_version; /* SAGA_PLUGIN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(saga_plugin_t); the engine accepts any
                             size from version 1's up, so fields added at
                             the end later read as zero for older plugins */
    const char *name;     /* must equal the file's base name */
    const char *version;  /* the plugin's own version, for logs */

    /* Optional. Called once per engine before any handler; may keep `host`
     * and `loop`. Returns 0, or a negative errno value to refuse to load. */
    int (*init)(const saga_host_t *host, struct uv_loop_s *loop,
                void **plugin_state);

    /* Optional. Called once at shutdown, only after every call of every
     * plugin completed, abandoned ones included: the engine waits for them
     * however long it takes (it never closes a plugin with a call still
     * outstanding). The plugin starts closing its libuv handles; the engine
     * keeps running the loop until they are closed, then unloads it. */
    void (*close)(void *plugin_state);

    const saga_handler_t *handlers;
    size_t handler_count;
} saga_plugin_t;

#ifdef __cplusplus
}
#endif

#endif /* SAGA_PLUGIN_H */
