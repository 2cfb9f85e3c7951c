/*
 * engine_internal.h -- what the engine's modules share: the engine object,
 * a running saga (instance.c), a handler call (call.c), and the checkpoint
 * encoding (checkpoint.c). Private to engine/core (tests/layers/check_layers.sh).
 */
#ifndef SAGA_ENGINE_INTERNAL_H
#define SAGA_ENGINE_INTERNAL_H

#include "core/checkpoint.h"
#include "saga/engine.h"
#include "plugin_loader.h"
#include "core/retry.h"
#include "util/strmap.h"
#include "core/timers.h"

/* ---------------------------------------------------------------------- */
/* Step statuses, as held in memory and written in records                 */
/* ---------------------------------------------------------------------- */

/* Dirty bits: what changed since the last write was built. (An action's
 * output goes into the pending write buffer as it arrives.) */
#define SAGA__DIRTY_ACT  0x01u
#define SAGA__DIRTY_COMP 0x02u
#define SAGA__DIRTY_ERR  0x08u /* action error */
#define SAGA__DIRTY_CERR 0x10u /* compensation error */
#define SAGA__DIRTY_CONF 0x20u /* a TCC step's Confirm */
#define SAGA__DIRTY_FERR 0x40u /* Confirm error */

/* Effects: what to do once the write carrying the decision is durable. */
#define SAGA__FX_CALL_ACT   0x01u
#define SAGA__FX_CALL_COMP  0x02u
#define SAGA__FX_TIMER      0x04u
#define SAGA__FX_CALL_CONF  0x08u

typedef struct saga_inst_s saga_inst_t;

/* A step's phases as the engine keeps them: a saga's action and a TCC
 * step's Try share the action's checkpoint ("act:NAME"), a compensation and
 * a Cancel the compensation's ("comp:NAME"); a Confirm has its own
 * ("conf:NAME"). */
static inline bool saga__phase_fwd(saga_phase_t p) {
    return p == SAGA_PHASE_ACTION || p == SAGA_PHASE_TRY;
}
static inline bool saga__phase_undo(saga_phase_t p) {
    return p == SAGA_PHASE_COMPENSATION || p == SAGA_PHASE_CANCEL;
}

typedef struct saga__step_s {
    saga_inst_t *inst;
    saga_ckpt_phase_t act;  /* the action; a TCC step's Try */
    saga_ckpt_phase_t comp; /* the compensation; a TCC step's Cancel */
    saga_ckpt_phase_t conf; /* a TCC step's Confirm */
    uint8_t dirty;
    uint8_t fx_pending;  /* decided, not yet in a write */
    uint8_t fx_inflight; /* in the write in flight */
    uint8_t fx_run;      /* being executed now */
    json_t *output;      /* the action's output, NULL when none */
    char *error;         /* last action error */
    char *cerror;        /* last compensation error */
    char *ferror;        /* last Confirm error */
    char *input;         /* rendered input of the attempt about to be
                            called (NULL: constant, or not rendered yet) */
    saga_call_t *call;   /* the attempt in flight, NULL when none */
    saga_deadline_t wait; /* retry timer */
} saga__step_t;

/* A write being built or in flight: one block of bytes plus the arrays the
 * store reads. Offsets are kept while building (the arena moves). */
typedef struct saga__wbuf_s {
    char *arena;
    size_t len;
    size_t cap;
    size_t (*kv)[4];       /* key off, key len, val off, val len */
    size_t nkv;
    size_t capkv;
    struct saga__evoff_s *ev;
    size_t nev;
    size_t capev;
    saga_kv_t *fields;     /* built at send time */
    saga_event_t *events;
    saga_store_write_t w;
} saga__wbuf_t;

typedef struct saga__evoff_s {
    const char *type;   /* static */
    const char *step;   /* owned by the definition */
    const char *phase;  /* static */
    uint32_t attempt;
    size_t detail_off;  /* SIZE_MAX: none */
    size_t detail_len;
} saga__evoff_t;

/* A saga running in this engine. */
struct saga_inst_s {
    saga_engine_t *engine;
    saga_engine_def_t *edef;
    json_t *input;
    char *reason;             /* why it is compensating / stuck */
    bool reason_dirty;        /* differs from the reason the record holds */
    saga_state_t state;
    saga_state_t stuck_in;    /* running, compensating or confirming, when
                                 stuck */
    uint64_t seq;             /* seq of the last acknowledged write */
    uint64_t fence;
    int64_t created_ms;
    uint32_t calls_in_flight;
    uint32_t holds;           /* >0: do not free (a loop over it runs) */
    bool created;             /* the record exists in the store */
    bool writing;             /* a write is in flight */
    bool state_dirty;         /* saga-level fields changed */
    bool cancel_requested;
    bool cancel_ignored;      /* a cancel that came too late was logged */
    bool pivoted;             /* the pivot's action succeeded (durable with
                                 it: field "pivoted"): forward from here */
    bool resumed;             /* came from the store */
    bool finished;            /* on_finished reported; free when unheld */
    bool lost;                /* the store refused us: stop everything */
    bool timing_out;          /* the result being handled is a timeout's */
    int lost_status;          /* why it was lost (a negative code) */
    bool quiet;               /* do not report (failure returned instead) */
    saga__wbuf_t *pending;    /* decided since the last write; NULL: nothing
                                 (a saga holds buffers only while it has
                                 something to write: idle sagas cost none) */
    saga__wbuf_t *inflight;
    saga_inst_t *wait_prev;   /* its definition's list of sagas whose */
    saga_inst_t *wait_next;   /* creation waits for the text (engine.c) */
    bool text_waiting;        /* on that list */
    saga_inst_t *all_prev;    /* the engine's list of every allocated saga */
    saga_inst_t *all_next;
    char id[SAGA_ID_MAX + 1];
    saga__step_t steps[];
};

/* ---------------------------------------------------------------------- */
/* The engine                                                              */
/* ---------------------------------------------------------------------- */

typedef struct saga__handler_ref_s {
    const saga_handler_t *h;
    void *state;           /* the plugin's state */
    const char *plugin;    /* plugin name, for logs */
} saga__handler_ref_t;

/* A step's record field names, built once per definition. */
typedef struct saga__step_keys_s {
    char act[SAGA_NAME_MAX + 8];
    char comp[SAGA_NAME_MAX + 8];
    char out[SAGA_NAME_MAX + 8];
    char err[SAGA_NAME_MAX + 8];
    char cerr[SAGA_NAME_MAX + 8];
    char conf[SAGA_NAME_MAX + 8];
    char ferr[SAGA_NAME_MAX + 8];
} saga__step_keys_t;

struct saga_engine_def_s {
    saga_def_t *def;
    saga__step_keys_t *keys;      /* by step index */
    saga__handler_ref_t *action;  /* by step index */
    saga__handler_ref_t *comp;    /* by step index; h NULL when none */
    saga__handler_ref_t *conf;    /* by step index; TCC sagas only */
    uint32_t refs;                /* the engine's map + every user */
    /* The definition's text in the store: SAGA__TEXT_STORED, _STORING (a
     * put_definition in flight), or the negative code it failed with. No
     * saga is created under a definition before its text is stored, so that
     * any worker can resume it (engine.h, saga_engine_register()). */
    int text;
    saga_inst_t *text_waiters;    /* created once the text is stored */
};

#define SAGA__TEXT_STORED 0
#define SAGA__TEXT_STORING 1

struct saga_engine_s {
    uv_loop_t *loop;
    saga_store_t *store;
    saga_plugins_t *plugins;
    saga_timers_t timers;
    saga_rng_t rng;
    saga_strmap_t sagas;   /* id -> saga_inst_t */
    saga_inst_t *all;      /* every allocated saga, finished ones until they
                              are freed (walked at shutdown, no copy) */
    saga_strmap_t defs;    /* hash -> saga_engine_def_t */
    char *worker;
    size_t max_output;
    uint32_t live_calls;   /* calls not yet completed by their plugin */
    saga_call_t *calls;    /* those calls (call.c), for shutdown's log */
    bool closing;
    bool released;         /* shutdown finished; handles closing */
    bool release_armed;    /* release() is due on the next loop turn */
    uint32_t pool_calls;   /* blocking handlers running on the pool */
    saga__wbuf_t **wbufs;  /* spare write buffers, kept with their capacity */
    size_t nwbufs;
    size_t capwbufs;
    int closed_timers;     /* engine handles still closing */
    uint64_t grace_ms;
    uv_timer_t grace_timer;
    void (*shutdown_done)(void *);
    void *shutdown_data;
    saga_engine_options_t opt;
};

/* engine.c */
void saga__engine_def_release(saga_engine_def_t *d);
/* Called by flush() for a saga not created yet: 0 when its definition's
 * text is stored (the creation may be written), 1 when the saga was put
 * on the definition's waiting list (flushed again once the text is
 * stored), or the negative code the text failed with. */
int saga__engine_def_ready(saga_inst_t *inst);
/* Takes a saga off its definition's waiting list (saga__inst_free). */
void saga__engine_def_unwait(saga_inst_t *inst);
void saga__engine_progress(saga_engine_t *e, const saga_progress_t *p);
/* Removes a saga from the engine; runs on_finished when `report`. */
void saga__engine_forget(saga_engine_t *e, saga_inst_t *inst, bool report,
                         int status);
int64_t saga__now_ms(void);
/* Called by call.c and instance.c when the engine may have become idle
 * during shutdown. */
void saga__engine_check_drained(saga_engine_t *e);

/* instance.c */
saga_inst_t *saga__inst_new(saga_engine_t *e, saga_engine_def_t *d,
                            const char *id);
/* Frees a saga (call only when it is finished and unheld). */
void saga__inst_free(saga_inst_t *inst);
/* Keeps a saga allocated across a callback that may finish it; unhold
 * frees it when it finished meanwhile. */
void saga__inst_hold(saga_inst_t *inst);
void saga__inst_unhold(saga_inst_t *inst);
/* Starts a new saga: creation + first steps in one write. Returns 0, or
 * the code that made the first write impossible (the store's refusal to
 * take it, -ENOMEM); the saga is then freed and was never reported. */
int saga__inst_begin(saga_inst_t *inst, json_t *input);
/* The definition's text was stored (status 0: write the creation) or
 * could not be (the saga fails with `status`: on_created, on_finished). */
void saga__inst_text_stored(saga_inst_t *inst, int status);
/* Continues a saga decoded from the store. */
int saga__inst_continue(saga_inst_t *inst);
/* A handler call finished (or timed out: outcome TECHNICAL) after
 * `elapsed_us` microseconds. */
void saga__inst_on_result(saga_inst_t *inst, size_t step, saga_phase_t phase,
                          saga_outcome_t outcome, const char *data, size_t len,
                          uint64_t retry_after_ms, bool has_retry_after,
                          uint64_t elapsed_us);
void saga__inst_request_cancel(saga_inst_t *inst);
/* Shutdown: stop starting attempts; finish with what is in flight. */
void saga__inst_drain(saga_inst_t *inst);
/* Shutdown grace over: abandon calls, forget the saga (store keeps it). */
void saga__inst_abandon(saga_inst_t *inst);

/* Renders the `with` of a call against the saga. Returns compact JSON text
 * (caller frees), or NULL with the reason in `err`. */
char *saga__inst_render(saga_inst_t *inst, const saga_call_def_t *cd,
                        char *err, size_t errlen);

/* call.c */
extern const saga_host_t saga__host;
/* Calls the handler of `step`'s `phase` for the attempt recorded. */
void saga__call_start(saga_inst_t *inst, size_t step, saga_phase_t phase);
/* Stops waiting for a call: the engine will not hear of it again; the
 * plugin's cancel hook runs when it has one. */
void saga__call_abandon(saga_call_t *call);
/* Logs (error level) up to `max` calls their plugins have not completed:
 * plugin, handler, saga, step, phase and attempt of each. */
void saga__call_log_outstanding(saga_engine_t *e, size_t max);

/* checkpoint.c (the value formats are in checkpoint.h). */
/* Fills a new instance from a loaded record. Returns 0, or SAGA_ECORRUPT
 * or -ENOMEM with the reason in `err`; what was filled in before the failure
 * is freed with the instance (saga__inst_free). */
int saga__ckpt_decode(saga_inst_t *inst, const saga_record_t *rec, char *err,
                      size_t errlen);

/* Write buffers (instance.c): taken from and returned to the engine's pool,
 * so that steady-state transitions allocate nothing. */
saga__wbuf_t *saga__wbuf_get(saga_engine_t *e);
void saga__wbuf_put(saga_engine_t *e, saga__wbuf_t *b);
void saga__wbuf_pool_free(saga_engine_t *e);

#endif
