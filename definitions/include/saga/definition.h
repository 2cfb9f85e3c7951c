/*
 * saga/definition.h -- the saga model: YAML text in, validated definition out.
 *
 * This library knows YAML and the saga model and nothing else: it does not
 * depend on libuv, Redis or the engine. It depends on jansson for JSON values
 * (the `with` blocks, the start input, step outputs).
 *
 * Loading never stops at the first problem: every error found is appended to a
 * saga_diags_t, each with its file, line and column (1-based), and printed as
 *
 *     FILE:LINE:COL: error: MESSAGE
 *
 * A definition is immutable once loaded; the engine shares one definition
 * between all the sagas that run under it.
 */
#ifndef SAGA_DEFINITION_H
#define SAGA_DEFINITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on untrusted input. Loading refuses anything larger or deeper. */
#define SAGA_DEF_MAX_BYTES   (1024u * 1024u) /* whole file */
#define SAGA_DEF_MAX_DEPTH   64u             /* nesting of YAML collections */
#define SAGA_DEF_MAX_STEPS   1024u           /* steps in one saga */
#define SAGA_NAME_MAX        128u            /* saga and step identifiers */

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */
/* ------------------------------------------------------------------------ */

typedef struct saga_diag_s {
    char *file;       /* as given to the loader */
    uint32_t line;    /* 1-based; 0 when the problem has no position */
    uint32_t column;  /* 1-based; 0 when the problem has no position */
    char *message;    /* one line, no trailing newline */
} saga_diag_t;

typedef struct saga_diags_s {
    saga_diag_t *items;
    size_t count;
    size_t cap;
} saga_diags_t;

/* Initializes an empty list (the caller embeds it). */
void saga_diags_init(saga_diags_t *d);

/* Frees every diagnostic; the list may be reused after saga_diags_init(). */
void saga_diags_close(saga_diags_t *d);

/* Appends one diagnostic (printf-style message). Returns 0, or -ENOMEM, in
 * which case the list is unchanged. */
int saga_diags_add(saga_diags_t *d, const char *file, uint32_t line,
                   uint32_t column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Prints every diagnostic as "FILE:LINE:COL: error: MESSAGE\n", sorted by
 * position (file, line, column; stable otherwise). A diagnostic without a
 * position prints as "FILE: error: MESSAGE". */
void saga_diags_print(const saga_diags_t *d, FILE *out);

/* ------------------------------------------------------------------------ */
/* The model                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum saga_recovery_e {
    SAGA_RECOVERY_BACKWARD = 0, /* default: compensate what started */
    SAGA_RECOVERY_FORWARD = 1   /* retry until done, else stuck */
} saga_recovery_t;

/* What kind of transaction a definition describes. */
typedef enum saga_mode_e {
    SAGA_MODE_SAGA = 0, /* default: actions, compensations, a recovery */
    SAGA_MODE_TCC = 1   /* Try-Confirm-Cancel: every step has three phases */
} saga_mode_t;

typedef enum saga_backoff_e {
    SAGA_BACKOFF_FIXED = 0,
    SAGA_BACKOFF_EXPONENTIAL = 1
} saga_backoff_t;

typedef enum saga_jitter_e {
    SAGA_JITTER_NONE = 0,
    SAGA_JITTER_FULL = 1,  /* uniform in [0, delay] */
    SAGA_JITTER_EQUAL = 2  /* delay/2 + uniform in [0, delay/2] */
} saga_jitter_t;

/* A retry policy, fully resolved (defaults applied). The delay before
 * attempt n+1 (n >= 1) is, before jitter:
 *   fixed:       initial_delay_ms
 *   exponential: min(max_delay_ms, initial_delay_ms * multiplier^(n-1))
 * and never more than max_delay_ms. */
typedef struct saga_retry_policy_s {
    uint32_t max_attempts;     /* total attempts, first included; >= 1 */
    saga_backoff_t backoff;
    uint64_t initial_delay_ms;
    double multiplier;         /* >= 1.0; used by exponential */
    uint64_t max_delay_ms;     /* >= initial_delay_ms */
    saga_jitter_t jitter;
} saga_retry_policy_t;

/* Built-in defaults, used where neither the step nor `defaults:` says. */
#define SAGA_DEFAULT_TIMEOUT_MS            30000u
#define SAGA_DEFAULT_ACTION_ATTEMPTS       3u
#define SAGA_DEFAULT_COMPENSATION_ATTEMPTS 50u
#define SAGA_DEFAULT_INITIAL_DELAY_MS      100u
#define SAGA_DEFAULT_MULTIPLIER            2.0
#define SAGA_DEFAULT_MAX_DELAY_MS          30000u
/* A Confirm must not give up: a million attempts at the capped delay are
 * about a year of retries. */
#define SAGA_DEFAULT_CONFIRM_ATTEMPTS      1000000u
/* The longest `retention` accepted: ten years. */
#define SAGA_RETENTION_MAX_MS              (3650ull * 24 * 60 * 60 * 1000)

/* A position in the definition's text, 1-based. */
typedef struct saga_pos_s {
    uint32_t line;
    uint32_t column;
} saga_pos_t;

/* The compiled form of a `with` value: a JSON value in which strings may hold
 * ${...} expressions. Opaque; see the template functions below. */
typedef struct saga_template_s saga_template_t;

/* One handler call: an action or a compensation (in a TCC saga: a Try, a
 * Confirm or a Cancel). */
typedef struct saga_call_def_s {
    char *handler;            /* "plugin.handler", as written */
    char *plugin;             /* the part before the first '.' */
    char *function;           /* the part after it */
    saga_template_t *with;    /* never NULL; an absent `with` is JSON null */
    saga_pos_t pos;           /* position of the handler's value */
} saga_call_def_t;

/* In a TCC saga (mode: tcc) a step's `try` is held as its action, its
 * `cancel` as its compensation (has_compensation is always true) and its
 * `confirm` in `confirm`; the policies likewise: `retry` (the Try),
 * `compensation_retry` (the Cancel, from `cancel_retry`), `confirm_retry`.
 * The engine runs the Trys as a backward saga runs its actions and the
 * Cancels as it runs compensations; the Confirms are a phase of their own. */
typedef struct saga_step_def_s {
    char *name;
    size_t index;                 /* position in the steps list */
    saga_pos_t pos;               /* position of the step's mapping */
    saga_call_def_t action;       /* the action; a TCC step's Try */
    bool has_compensation;        /* false for `compensation: none` (and for
                                     a forward saga's step that has none, and
                                     a step after the pivot) */
    saga_call_def_t compensation; /* valid only when has_compensation; a TCC
                                     step's Cancel */
    saga_call_def_t confirm;      /* a TCC step's Confirm; else unset */
    bool pivot;                   /* `pivot: true` (def->pivot is its index) */
    size_t *after;                /* direct predecessors (step indexes) */
    size_t n_after;
    size_t *dependents;           /* direct successors (step indexes) */
    size_t n_dependents;
    uint64_t timeout_ms;          /* per attempt, actions and compensations */
    saga_retry_policy_t retry;              /* for the action */
    saga_retry_policy_t compensation_retry; /* for the compensation */
    saga_retry_policy_t confirm_retry;      /* for a TCC step's Confirm */
} saga_step_def_t;

typedef struct saga_def_s {
    char *name;
    int64_t version;          /* 0 when absent */
    char *description;        /* NULL when absent */
    saga_mode_t mode;
    saga_recovery_t recovery; /* a TCC saga's is BACKWARD (its Trys) */
    size_t pivot;             /* the pivot step's index; SIZE_MAX: none */
    uint64_t retention_completed_ms;   /* `retention`; 0: the store's */
    uint64_t retention_compensated_ms; /* default (7 days) */
    char **required_inputs;   /* top-level keys the start input must have */
    size_t n_required_inputs;
    saga_step_def_t *steps;   /* in list order */
    size_t n_steps;
    size_t *topo_order;       /* every step index once, predecessors first;
                                 among independent steps, list order */
    char hash[65];            /* hex SHA-256 of the canonical form, NUL-ended */
    char *source;             /* file name used in diagnostics */
    char *text;               /* the exact text that was loaded, NUL-ended */
    size_t text_len;
    uint64_t *ancestors;      /* private: n_steps x words bitsets */
    size_t ancestor_words;    /* private */
} saga_def_t;

/* Loads and validates a definition from a file. The file is read with plain
 * blocking I/O (call it before the event loop runs, or off the loop).
 * Returns the definition, or NULL when any error was found, in which case
 * every error has been appended to `diags` and nothing else is allocated.
 * Files over SAGA_DEF_MAX_BYTES are refused without being read whole. */
saga_def_t *saga_def_load_file(const char *path, saga_diags_t *diags);

/* Same as saga_def_load_file() for text already in memory; `source` is the
 * name used in diagnostics. `text` need not be NUL-terminated; it is copied. */
saga_def_t *saga_def_load_buffer(const char *source, const char *text,
                                 size_t len, saga_diags_t *diags);

/* Frees a definition. Accepts NULL. */
void saga_def_free(saga_def_t *def);

/* The step named `name`, or NULL. */
const saga_step_def_t *saga_def_find_step(const saga_def_t *def,
                                          const char *name);

/* True when step `anc` is a (transitive) predecessor of step `step`, that is,
 * `anc` is guaranteed to have completed before `step` starts. */
bool saga_def_is_ancestor(const saga_def_t *def, size_t anc, size_t step);

/* Checks a start input against the definition: it must be a JSON object that
 * holds every required key. Returns 0, or -EINVAL with a one-line reason
 * in `err` (e.g. "input is missing required key 'order_id'"). */
int saga_def_check_input(const saga_def_t *def, const json_t *input,
                         char *err, size_t errlen);

/* Parses a duration as written in definitions ("250ms", "2s", "1m30s",
 * "0"), for command-line flags. Returns 0, -EINVAL (not a duration) or
 * -ERANGE (over 24 hours); *ms is set only on success. */
int saga_duration_parse(const char *text, uint64_t *ms);

/* ------------------------------------------------------------------------ */
/* Templates (`with` values and their ${...} expressions)                    */
/* ------------------------------------------------------------------------ */

/* What an expression may read while a call is rendered. */
typedef struct saga_render_ctx_s {
    const json_t *input;          /* the saga's start input */
    const char *saga_id;
    const char *saga_name;
    const json_t *const *outputs; /* by step index; NULL where a step has no
                                     output (not finished, or failed) */
} saga_render_ctx_t;

/* True when the template holds no expression: its value is the same for
 * every saga and saga_template_constant() returns it. */
bool saga_template_is_constant(const saga_template_t *t);

/* The template's value as compact JSON text (NUL-terminated, owned by the
 * template) when it is constant; NULL otherwise. */
const char *saga_template_constant(const saga_template_t *t, size_t *len);

/* Renders the template against `ctx`. Returns a new reference, or NULL with a
 * one-line reason in `err` (e.g. "${steps.reserve.output.id}: no key 'id'").
 *
 * Rules: a string that is exactly one expression takes the JSON value the
 * expression names (a number stays a number); an expression inside a longer
 * string is rendered as text (strings as-is, other values as compact JSON).
 * Inside a compensation, a reference to the compensation's own step output
 * that cannot be resolved (the action failed, or the path is absent) renders
 * as null instead of failing. Any other unresolved reference fails. */
json_t *saga_template_render(const saga_template_t *t,
                             const saga_render_ctx_t *ctx,
                             char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* SAGA_DEFINITION_H */
