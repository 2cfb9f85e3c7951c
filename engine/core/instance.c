/*
 * instance.c -- one saga running in an engine: its state machine.
 *
 * The pattern everywhere: decide in memory, write, then act.
 *
 *   1. Something happens (a call's result, a retry timer, a cancel). The
 *      saga updates its in-memory state, appends history events to
 *      `pending`, marks the changed fields dirty, and records the effects
 *      the decision implies (call a handler, arm a retry timer) as
 *      fx_pending. Nothing outside the process sees any of it yet.
 *   2. flush() turns everything pending into ONE store write (fields +
 *      events, atomically applied by the store). At most one write per saga
 *      is in flight; what is decided meanwhile waits and goes out together
 *      in the next one (a per-saga group commit).
 *   3. When the store acknowledges the write, the effects it carried run:
 *      handlers are called, timers armed. A transition is therefore always
 *      durable before the engine acts on it (write-ahead).
 *
 * If the store refuses a write (fenced, conflict, error) the saga is "lost"
 * for this engine: in-flight calls are abandoned and the saga is forgotten;
 * the store still holds its last durable state for a resume.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "saga/errors.h"
#include "util/log.h"
#include "util/bytes.h"

#define MESSAGE_MAX 4096 /* error messages kept per step */

static void flush(saga_inst_t *inst);
static void advance(saga_inst_t *inst);
static void try_free(saga_inst_t *inst);

static const saga_def_t *def_of(const saga_inst_t *inst) {
    return inst->edef->def;
}

/* ---------------------------------------------------------------------- */
/* Write buffers                                                           */
/* ---------------------------------------------------------------------- */

#define WBUF_POOL_MAX 4096
#define WBUF_KEEP_BYTES 16384 /* buffers grown past this are not pooled */

static void wbuf_release(saga__wbuf_t *b) {
    free(b->arena);
    free(b->kv);
    free(b->ev);
    free(b->fields);
    free(b->events);
    free(b);
}

saga__wbuf_t *saga__wbuf_get(saga_engine_t *e) {
    if (e->nwbufs > 0)
        return e->wbufs[--e->nwbufs];
    return calloc(1, sizeof(saga__wbuf_t));
}

void saga__wbuf_put(saga_engine_t *e, saga__wbuf_t *b) {
    if (b == NULL)
        return;
    if (b->cap > WBUF_KEEP_BYTES || b->capkv > 256 || e->nwbufs >= WBUF_POOL_MAX) {
        wbuf_release(b);
        return;
    }
    if (e->nwbufs == e->capwbufs) {
        size_t ncap = e->capwbufs ? e->capwbufs * 2 : 64;
        saga__wbuf_t **nw = realloc(e->wbufs, ncap * sizeof(*nw));
        if (nw == NULL) {
            wbuf_release(b);
            return;
        }
        e->wbufs = nw;
        e->capwbufs = ncap;
    }
    b->len = 0;
    b->nkv = 0;
    b->nev = 0;
    memset(&b->w, 0, sizeof(b->w));
    e->wbufs[e->nwbufs++] = b;
}

void saga__wbuf_pool_free(saga_engine_t *e) {
    for (size_t i = 0; i < e->nwbufs; i++)
        wbuf_release(e->wbufs[i]);
    free(e->wbufs);
    e->wbufs = NULL;
    e->nwbufs = e->capwbufs = 0;
}

/* Copies n bytes into the arena; returns their offset or SIZE_MAX. */
static size_t wb_bytes(saga__wbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *na = realloc(b->arena, ncap);
        if (na == NULL)
            return SIZE_MAX;
        b->arena = na;
        b->cap = ncap;
    }
    size_t off = b->len;
    if (n > 0)
        memcpy(b->arena + off, s, n);
    b->arena[off + n] = '\0';
    b->len += n + 1;
    return off;
}

static int wb_kv(saga__wbuf_t *b, const char *k, const char *v, size_t vl) {
    if (b == NULL)
        return -ENOMEM;
    if (b->nkv == b->capkv) {
        size_t ncap = b->capkv ? b->capkv * 2 : 8;
        void *nk = realloc(b->kv, ncap * sizeof(*b->kv));
        if (nk == NULL)
            return -ENOMEM;
        b->kv = nk;
        b->capkv = ncap;
    }
    size_t kl = strlen(k);
    size_t ko = wb_bytes(b, k, kl), vo = wb_bytes(b, v, vl);
    if (ko == SIZE_MAX || vo == SIZE_MAX)
        return -ENOMEM;
    size_t *e = b->kv[b->nkv++];
    e[0] = ko;
    e[1] = kl;
    e[2] = vo;
    e[3] = vl;
    return 0;
}

static int wb_event(saga__wbuf_t *b, const char *type, const char *step,
                    const char *phase, uint32_t attempt, const char *detail,
                    size_t dlen) {
    if (b == NULL)
        return -ENOMEM;
    if (b->nev == b->capev) {
        size_t ncap = b->capev ? b->capev * 2 : 4;
        saga__evoff_t *ne = realloc(b->ev, ncap * sizeof(*ne));
        if (ne == NULL)
            return -ENOMEM;
        b->ev = ne;
        b->capev = ncap;
    }
    size_t doff = SIZE_MAX;
    if (detail != NULL && (doff = wb_bytes(b, detail, dlen)) == SIZE_MAX)
        return -ENOMEM;
    b->ev[b->nev++] = (saga__evoff_t){type, step, phase, attempt, doff, dlen};
    return 0;
}

/* Resolves offsets into the arrays the store reads. */
static int wb_finish(saga__wbuf_t *b) {
    /* fields and events have the capacity of kv and ev (capkv, capev) */
    saga_kv_t *nf = realloc(b->fields, (b->capkv + 1) * sizeof(*b->fields));
    if (nf == NULL)
        return -ENOMEM;
    b->fields = nf;
    saga_event_t *ne = realloc(b->events, (b->capev + 1) * sizeof(*b->events));
    if (ne == NULL)
        return -ENOMEM;
    b->events = ne;
    for (size_t i = 0; i < b->nkv; i++)
        b->fields[i] = (saga_kv_t){b->arena + b->kv[i][0], b->kv[i][1],
                                   b->arena + b->kv[i][2], b->kv[i][3]};
    for (size_t i = 0; i < b->nev; i++) {
        saga__evoff_t *e = &b->ev[i];
        b->events[i] = (saga_event_t){
            e->type, e->step, e->phase, e->attempt,
            e->detail_off == SIZE_MAX ? NULL : b->arena + e->detail_off,
            e->detail_len};
    }
    b->w.fields = b->fields;
    b->w.nfields = b->nkv;
    b->w.events = b->events;
    b->w.nevents = b->nev;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */
/* ---------------------------------------------------------------------- */

saga_inst_t *saga__inst_new(saga_engine_t *e, saga_engine_def_t *d,
                            const char *id) {
    size_t n = d->def->n_steps;
    saga_inst_t *inst = calloc(1, sizeof(*inst) + n * sizeof(saga__step_t));
    if (inst == NULL)
        return NULL;
    inst->engine = e;
    inst->edef = d;
    d->refs++;
    snprintf(inst->id, sizeof(inst->id), "%s", id);
    for (size_t i = 0; i < n; i++) {
        inst->steps[i].inst = inst;
        saga_deadline_init(&inst->steps[i].wait);
    }
    inst->all_next = e->all;
    if (e->all != NULL)
        e->all->all_prev = inst;
    e->all = inst;
    return inst;
}

void saga__inst_free(saga_inst_t *inst) {
    if (inst == NULL)
        return;
    size_t n = def_of(inst)->n_steps;
    for (size_t i = 0; i < n; i++) {
        saga__step_t *s = &inst->steps[i];
        saga_deadline_cancel(&inst->engine->timers, &s->wait);
        json_decref(s->output);
        free(s->error);
        free(s->cerror);
        free(s->ferror);
        free(s->input);
    }
    json_decref(inst->input);
    free(inst->reason);
    saga__wbuf_put(inst->engine, inst->pending);
    saga__wbuf_put(inst->engine, inst->inflight);
    saga__engine_def_unwait(inst);
    saga__engine_def_release(inst->edef);
    if (inst->all_prev != NULL)
        inst->all_prev->all_next = inst->all_next;
    else
        inst->engine->all = inst->all_next;
    if (inst->all_next != NULL)
        inst->all_next->all_prev = inst->all_prev;
    free(inst);
}

/* Frees the saga once it is finished and nothing refers to it any more. */
static void try_free(saga_inst_t *inst) {
    if (inst->finished && !inst->writing && inst->holds == 0) {
        saga_engine_t *e = inst->engine;
        saga__inst_free(inst);
        saga__engine_check_drained(e);
    }
}

void saga__inst_hold(saga_inst_t *inst) { inst->holds++; }

void saga__inst_unhold(saga_inst_t *inst) {
    inst->holds--;
    try_free(inst);
}

/* Reports the end of the saga in this engine (report: on_finished runs) and
 * frees it when nothing refers to it. */
static void finish(saga_inst_t *inst, int status, bool report) {
    if (inst->finished)
        return;
    inst->finished = true;
    size_t n = def_of(inst)->n_steps;
    for (size_t i = 0; i < n; i++)
        saga_deadline_cancel(&inst->engine->timers, &inst->steps[i].wait);
    saga__engine_forget(inst->engine, inst, report && !inst->quiet, status);
    try_free(inst);
}

/* The store refused us, or we could not build a write: stop everything. */
static void lose(saga_inst_t *inst, int status) {
    if (inst->lost)
        return;
    inst->lost = true;
    inst->lost_status = status;
    if (!inst->created && status == SAGA_EEXIST)
        /* Not a failure: a start request read again after a crash, or one
         * id started twice; the saga runs (or ran) where it was created. */
        saga_info("saga %s exists already; not started again here", inst->id);
    else
        saga_error("saga %s: checkpoint failed (%s); this worker stops running "
                   "it, the store keeps its last durable state",
                   inst->id, saga_strerror(status));
    size_t n = def_of(inst)->n_steps;
    for (size_t i = 0; i < n; i++) {
        saga__step_t *s = &inst->steps[i];
        if (s->call != NULL)
            saga__call_abandon(s->call);
    }
    finish(inst, status, true);
}

/* ---------------------------------------------------------------------- */
/* Decisions                                                               */
/* ---------------------------------------------------------------------- */

static void emit(saga_inst_t *inst, const char *type, size_t step,
                 saga_phase_t phase, bool has_phase, uint32_t attempt,
                 const char *detail) {
    const char *sname = step == SIZE_MAX ? NULL : def_of(inst)->steps[step].name;
    if (inst->pending == NULL)
        inst->pending = saga__wbuf_get(inst->engine);
    if (wb_event(inst->pending, type, sname,
                 has_phase ? saga_phase_name(phase) : NULL, attempt, detail,
                 detail ? strlen(detail) : 0) != 0)
        lose(inst, -ENOMEM);
}

static void progress(saga_inst_t *inst, saga_progress_kind_t kind,
                     size_t step, saga_phase_t phase, uint32_t attempt,
                     saga_outcome_t outcome, const char *detail,
                     uint64_t elapsed_us, bool will_retry, uint64_t retry_in) {
    saga_progress_t p = {
        .kind = kind,
        .saga_id = inst->id,
        .saga_name = def_of(inst)->name,
        .step = step == SIZE_MAX ? NULL : def_of(inst)->steps[step].name,
        .phase = phase,
        .attempt = attempt,
        .outcome = outcome,
        .detail = detail,
        .elapsed_ms = elapsed_us / 1000,
        .elapsed_us = elapsed_us,
        .will_retry = will_retry,
        .retry_in_ms = retry_in,
        .state = inst->state,
        .timed_out = kind == SAGA_PROGRESS_CALL_FAILED && inst->timing_out,
    };
    saga__engine_progress(inst->engine, &p);
}

static void set_state(saga_inst_t *inst, saga_state_t st, const char *reason) {
    if (st == SAGA_STATE_STUCK)
        inst->stuck_in = inst->state;
    inst->state = st;
    /* An unchanged reason is not written again: most sagas never have one,
     * and a compensated one keeps the reason it compensated for. */
    if (strcmp(inst->reason ? inst->reason : "", reason ? reason : "") != 0)
        inst->reason_dirty = true;
    free(inst->reason);
    inst->reason = reason ? strdup(reason) : NULL;
    inst->state_dirty = true;
    /* Event types must outlive the write: static strings. */
    static const char *const types[SAGA_STATE_COUNT] = {
        "saga.running", "saga.compensating", "saga.completed",
        "saga.compensated", "saga.stuck", "saga.confirming"};
    emit(inst, types[st], SIZE_MAX, SAGA_PHASE_ACTION, false, 0, reason);
    progress(inst, SAGA_PROGRESS_STATE, SIZE_MAX, SAGA_PHASE_ACTION, 0,
             SAGA_OUTCOME_OK, reason, 0, false, 0);
}

/* ---- A step's phases --------------------------------------------------
 * A saga's steps have an action and a compensation; a TCC saga's a Try (in
 * the action's place), a Cancel (in the compensation's) and a Confirm. These
 * helpers give each phase's checkpoint, error, dirty bits, effect, call,
 * policy, and the saga state in which it runs. */

static bool is_tcc(const saga_inst_t *inst) {
    return def_of(inst)->mode == SAGA_MODE_TCC;
}

/* The phase that does a step's work: action, or a TCC step's Try. */
static saga_phase_t fwd_phase(const saga_inst_t *inst) {
    return is_tcc(inst) ? SAGA_PHASE_TRY : SAGA_PHASE_ACTION;
}

/* The phase that undoes it: compensation, or a TCC step's Cancel. */
static saga_phase_t undo_phase(const saga_inst_t *inst) {
    return is_tcc(inst) ? SAGA_PHASE_CANCEL : SAGA_PHASE_COMPENSATION;
}

static saga_ckpt_phase_t *phase_of(saga__step_t *s, saga_phase_t phase) {
    return saga__phase_fwd(phase) ? &s->act : saga__phase_undo(phase) ? &s->comp : &s->conf;
}

static char **error_of(saga__step_t *s, saga_phase_t phase) {
    return saga__phase_fwd(phase) ? &s->error : saga__phase_undo(phase) ? &s->cerror : &s->ferror;
}

static uint8_t dirty_bit(saga_phase_t phase) {
    return saga__phase_fwd(phase) ? SAGA__DIRTY_ACT
           : saga__phase_undo(phase) ? SAGA__DIRTY_COMP : SAGA__DIRTY_CONF;
}

static uint8_t error_bit(saga_phase_t phase) {
    return saga__phase_fwd(phase) ? SAGA__DIRTY_ERR
           : saga__phase_undo(phase) ? SAGA__DIRTY_CERR : SAGA__DIRTY_FERR;
}

static uint8_t call_fx(saga_phase_t phase) {
    return saga__phase_fwd(phase) ? SAGA__FX_CALL_ACT
           : saga__phase_undo(phase) ? SAGA__FX_CALL_COMP : SAGA__FX_CALL_CONF;
}

static const saga_call_def_t *call_def(const saga_step_def_t *sd, saga_phase_t phase) {
    return saga__phase_fwd(phase) ? &sd->action
           : saga__phase_undo(phase) ? &sd->compensation : &sd->confirm;
}

static const saga_retry_policy_t *policy_of(const saga_step_def_t *sd, saga_phase_t phase) {
    return saga__phase_fwd(phase) ? &sd->retry
           : saga__phase_undo(phase) ? &sd->compensation_retry : &sd->confirm_retry;
}

/* The saga state in which a phase's attempts run (and may be retried). */
static saga_state_t live_state(saga_phase_t phase) {
    return saga__phase_fwd(phase) ? SAGA_STATE_RUNNING
           : saga__phase_undo(phase) ? SAGA_STATE_COMPENSATING : SAGA_STATE_CONFIRMING;
}

char *saga__inst_render(saga_inst_t *inst, const saga_call_def_t *cd,
                        char *err, size_t errlen) {
    const saga_def_t *def = def_of(inst);
    const json_t *outs_small[16];
    const json_t **outs = def->n_steps <= 16 ? outs_small
                                             : malloc(def->n_steps * sizeof(*outs));
    if (outs == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < def->n_steps; i++)
        outs[i] = inst->steps[i].output;
    saga_render_ctx_t ctx = {inst->input, inst->id, def->name, outs};
    json_t *v = saga_template_render(cd->with, &ctx, err, errlen);
    if (outs != outs_small)
        free(outs);
    if (v == NULL)
        return NULL;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL)
        snprintf(err, errlen, "out of memory");
    return text;
}

static void fail_for_good(saga_inst_t *inst, size_t i, saga_phase_t phase,
                          const char *detail);

/* Records a new attempt as started; its handler is called once the write
 * carrying this decision is durable. The input is rendered first: when it
 * cannot be (a missing value), the step fails without having started. */
static void start_attempt(saga_inst_t *inst, size_t i, saga_phase_t phase) {
    saga__step_t *s = &inst->steps[i];
    saga_ckpt_phase_t *p = phase_of(s, phase);
    const saga_step_def_t *sd = &def_of(inst)->steps[i];
    const saga_call_def_t *cd = call_def(sd, phase);
    if (!saga_template_is_constant(cd->with)) {
        char err[512];
        free(s->input);
        if ((s->input = saga__inst_render(inst, cd, err, sizeof(err))) == NULL) {
            char msg[600];
            snprintf(msg, sizeof(msg), "cannot render `with`: %s", err);
            char **slot = error_of(s, phase);
            free(*slot);
            *slot = strdup(msg);
            s->dirty |= error_bit(phase);
            p->status = SAGA_CKPT_FAILED;
            s->dirty |= dirty_bit(phase);
            char detail[640];
            snprintf(detail, sizeof(detail), "business: %s", msg);
            emit(inst, "step.failed", i, phase, true, p->attempts, detail);
            progress(inst, SAGA_PROGRESS_CALL_FAILED, i, phase, p->attempts,
                     SAGA_OUTCOME_BUSINESS, msg, 0, false, 0);
            fail_for_good(inst, i, phase, detail);
            return;
        }
    }
    p->status = SAGA_CKPT_RUNNING;
    p->attempts++;
    p->retry_at = 0;
    s->dirty |= dirty_bit(phase);
    s->fx_pending |= call_fx(phase);
    emit(inst, "step.started", i, phase, true, p->attempts, NULL);
}

/* Backward recovery begins: no new action starts; waiting retries are
 * given up (their steps started, so they will be compensated). */
static void enter_compensating(saga_inst_t *inst, const char *reason) {
    set_state(inst, SAGA_STATE_COMPENSATING, reason);
    size_t n = def_of(inst)->n_steps;
    for (size_t i = 0; i < n; i++) {
        saga__step_t *s = &inst->steps[i];
        if (s->act.status == SAGA_CKPT_WAITING) {
            saga_deadline_cancel(&inst->engine->timers, &s->wait);
            s->fx_pending &= (uint8_t)~SAGA__FX_TIMER;
            s->act.status = SAGA_CKPT_FAILED;
            s->act.retry_at = 0;
            s->dirty |= SAGA__DIRTY_ACT;
            emit(inst, "step.abandoned", i, fwd_phase(inst), true,
                 s->act.attempts, "retry given up: the saga is compensating");
        }
    }
}

static bool comp_done(const saga__step_t *s) {
    return s->comp.status == SAGA_CKPT_SUCCEEDED || s->comp.status == SAGA_CKPT_SKIPPED;
}

/* A cancel asked of a saga that can no longer be cancelled (its TCC
 * decision or its pivot is durable; the store refuses new ones, but one
 * accepted just before arrives with the write that made it so) is logged
 * once and withdrawn. */
static void ignore_cancel(saga_inst_t *inst, const char *why) {
    if (inst->cancel_ignored)
        return;
    inst->cancel_ignored = true;
    emit(inst, "saga.cancel_ignored", SIZE_MAX, SAGA_PHASE_ACTION, false, 0, why);
    /* The request is withdrawn in the record too: workers claim a parked
     * saga that an operator asked to cancel, and this one never will be. */
    if (inst->pending != NULL && wb_kv(inst->pending, "cancel", "0", 1) != 0)
        lose(inst, -ENOMEM);
}

/* Acts on a cancel request; true when the saga began to compensate. */
static bool handle_cancel(saga_inst_t *inst) {
    const saga_def_t *def = def_of(inst);
    saga_state_t st = inst->state == SAGA_STATE_STUCK ? inst->stuck_in : inst->state;
    if (st == SAGA_STATE_CONFIRMING) {
        ignore_cancel(inst, "too late: every Try succeeded and the decision to "
                            "confirm is written");
        return false;
    }
    if (st != SAGA_STATE_RUNNING)
        return false;
    if (inst->pivoted) {
        ignore_cancel(inst, "too late: the pivot step succeeded, the saga only "
                            "goes forward");
        return false;
    }
    /* The pivot's action in flight decides: if it succeeds the saga goes
     * forward (and the cancel is too late), if it fails it compensates. */
    if (def->pivot != SIZE_MAX &&
        inst->steps[def->pivot].act.status == SAGA_CKPT_RUNNING)
        return false;
    enter_compensating(inst, "cancelled by operator");
    return true;
}

/* Runs the recovery policy to a fixed point: starts what may start,
 * changes state when the saga is done. */
static void advance(saga_inst_t *inst) {
    if (inst->lost || inst->finished)
        return;
    const saga_def_t *def = def_of(inst);
    bool may_start = !inst->engine->closing;
    for (;;) {
        if (inst->cancel_requested && handle_cancel(inst))
            continue;
        if (inst->state == SAGA_STATE_RUNNING) {
            bool all_done = true;
            for (size_t k = 0; k < def->n_steps; k++) {
                size_t i = def->topo_order[k];
                saga__step_t *s = &inst->steps[i];
                if (s->act.status != SAGA_CKPT_SUCCEEDED)
                    all_done = false;
                if (s->act.status != SAGA_CKPT_PENDING || !may_start)
                    continue;
                bool ready = true;
                for (size_t j = 0; j < def->steps[i].n_after && ready; j++)
                    ready = inst->steps[def->steps[i].after[j]].act.status == SAGA_CKPT_SUCCEEDED;
                if (ready)
                    start_attempt(inst, i, fwd_phase(inst));
            }
            if (!all_done)
                return;
            if (!is_tcc(inst)) {
                set_state(inst, SAGA_STATE_COMPLETED, NULL);
                return;
            }
            /* TCC: the decision. It goes out in the write that records the
             * first Confirms as started, so it is durable before any
             * Confirm is called (write-ahead). */
            set_state(inst, SAGA_STATE_CONFIRMING, NULL);
            continue;
        }
        if (inst->state == SAGA_STATE_CONFIRMING) {
            bool all_done = true;
            for (size_t k = 0; k < def->n_steps; k++) {
                size_t i = def->topo_order[k];
                saga__step_t *s = &inst->steps[i];
                if (s->conf.status != SAGA_CKPT_SUCCEEDED)
                    all_done = false;
                if (s->conf.status != SAGA_CKPT_PENDING || !may_start)
                    continue;
                bool ready = true;
                for (size_t j = 0; j < def->steps[i].n_after && ready; j++)
                    ready = inst->steps[def->steps[i].after[j]].conf.status == SAGA_CKPT_SUCCEEDED;
                if (ready)
                    start_attempt(inst, i, SAGA_PHASE_CONFIRM);
            }
            if (all_done)
                set_state(inst, SAGA_STATE_COMPLETED, NULL);
            return;
        }
        if (inst->state != SAGA_STATE_COMPENSATING)
            return;
        /* Actions in flight finish first. */
        for (size_t i = 0; i < def->n_steps; i++)
            if (inst->steps[i].act.status == SAGA_CKPT_RUNNING)
                return;
        bool all_done = true, changed = false;
        for (size_t k = def->n_steps; k-- > 0;) {
            size_t i = def->topo_order[k];
            saga__step_t *s = &inst->steps[i];
            if (s->act.attempts == 0 || comp_done(s))
                continue; /* never started, or undone already */
            all_done = false;
            if (s->comp.status != SAGA_CKPT_PENDING)
                continue; /* running, waiting or failed */
            /* A step is undone after every step that depended on it. */
            bool ready = true;
            for (size_t j = 0; j < def->steps[i].n_dependents && ready; j++) {
                const saga__step_t *d = &inst->steps[def->steps[i].dependents[j]];
                ready = d->act.attempts == 0 || comp_done(d);
            }
            if (!ready)
                continue;
            if (!def->steps[i].has_compensation) {
                s->comp.status = SAGA_CKPT_SKIPPED;
                s->dirty |= SAGA__DIRTY_COMP;
                emit(inst, "step.skipped", i, SAGA_PHASE_COMPENSATION, true, 0,
                     "compensation: none");
                progress(inst, SAGA_PROGRESS_STEP_SKIPPED, i,
                         SAGA_PHASE_COMPENSATION, 0, SAGA_OUTCOME_OK, NULL, 0,
                         false, 0);
                changed = true;
            } else if (may_start) {
                start_attempt(inst, i, undo_phase(inst));
            }
        }
        if (all_done) {
            /* Keep saying why it had to compensate. */
            char *why = inst->reason ? strdup(inst->reason) : NULL;
            set_state(inst, SAGA_STATE_COMPENSATED, why);
            free(why);
            return;
        }
        if (!changed)
            return;
    }
}

/* Copies a handler message, bounded, newlines turned into spaces so that
 * it stays one line in logs and listings. */
static char *message_dup(const char *data, size_t len) {
    if (len > MESSAGE_MAX)
        len = MESSAGE_MAX;
    char *m = malloc(len + 1);
    if (m == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        m[i] = (data[i] == '\n' || data[i] == '\r') ? ' ' : data[i];
    m[len] = '\0';
    return m;
}

void saga__inst_on_result(saga_inst_t *inst, size_t i, saga_phase_t phase,
                          saga_outcome_t outcome, const char *data, size_t len,
                          uint64_t retry_after_ms, bool has_retry_after,
                          uint64_t elapsed_us) {
    if (inst->lost || inst->finished)
        return;
    saga_engine_t *e = inst->engine;
    const saga_def_t *def = def_of(inst);
    const saga_step_def_t *sd = &def->steps[i];
    saga__step_t *s = &inst->steps[i];
    saga_ckpt_phase_t *p = phase_of(s, phase);
    json_t *out = NULL;
    char why[256];

    bool fwd = saga__phase_fwd(phase);
    if (outcome == SAGA_OUTCOME_OK && fwd) {
        json_error_t jerr;
        if (len > e->max_output) {
            snprintf(why, sizeof(why), "handler output of %zu bytes exceeds "
                     "the %zu-byte limit", len, e->max_output);
            outcome = SAGA_OUTCOME_BUSINESS;
            data = why;
            len = strlen(why);
        } else if ((out = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                                      &jerr)) == NULL) {
            snprintf(why, sizeof(why), "handler returned invalid JSON output "
                     "(line %d, column %d: %s)", jerr.line, jerr.column, jerr.text);
            outcome = SAGA_OUTCOME_TECHNICAL;
            data = why;
            len = strlen(why);
        }
    }

    if (outcome == SAGA_OUTCOME_OK) {
        p->status = SAGA_CKPT_SUCCEEDED;
        s->dirty |= dirty_bit(phase);
        if (fwd) {
            json_decref(s->output);
            s->output = out;
            /* Recorded as the handler gave it (valid JSON): no re-encoding. */
            if (inst->pending == NULL)
                inst->pending = saga__wbuf_get(e);
            if (wb_kv(inst->pending, inst->edef->keys[i].out, data, len) != 0) {
                lose(inst, -ENOMEM);
                return;
            }
        }
        emit(inst, "step.succeeded", i, phase, true, p->attempts, NULL);
        if (fwd && def->pivot == i && inst->state == SAGA_STATE_RUNNING) {
            /* Durable in the same write as the pivot's result: from here
             * the saga goes forward only, and the store refuses a cancel. */
            inst->pivoted = true;
            if (wb_kv(inst->pending, "pivoted", "1", 1) != 0) {
                lose(inst, -ENOMEM);
                return;
            }
            emit(inst, "saga.pivoted", i, phase, true, p->attempts,
                 "the pivot step succeeded: from now on the saga only goes forward");
        }
        progress(inst, SAGA_PROGRESS_CALL_SUCCEEDED, i, phase, p->attempts,
                 outcome, NULL, elapsed_us, false, 0);
        advance(inst);
        flush(inst);
        return;
    }

    char *msg = message_dup(data, len);
    char **slot = error_of(s, phase);
    free(*slot);
    *slot = msg;
    s->dirty |= error_bit(phase);

    const saga_retry_policy_t *pol = policy_of(sd, phase);
    saga_state_t live = live_state(phase);
    bool retry = outcome == SAGA_OUTCOME_TECHNICAL &&
                 p->attempts - p->base < pol->max_attempts && inst->state == live;
    const char *kind = outcome == SAGA_OUTCOME_TECHNICAL ? "technical" : "business";
    char detail[MESSAGE_MAX + 128];
    snprintf(detail, sizeof(detail), "%s: %s", kind, msg ? msg : "");

    if (retry) {
        uint64_t delay = saga_retry_delay(pol, p->attempts - p->base, &e->rng);
        if (has_retry_after) {
            uint64_t ra = retry_after_ms < pol->max_delay_ms ? retry_after_ms
                                                             : pol->max_delay_ms;
            if (ra > delay)
                delay = ra;
        }
        /* The delay chosen (backoff, jitter, Retry-After) is recorded: the
         * history says when the next attempt was due, not only when it
         * ran. Always last in the detail (docs/redis-layout.md). */
        snprintf(detail, sizeof(detail),
                 "%s: %s; retry in %" PRIu64 " ms (attempt %" PRIu32 " of %" PRIu32 ")", kind,
                 msg ? msg : "", delay, p->attempts - p->base + 1, pol->max_attempts);
        p->status = SAGA_CKPT_WAITING;
        p->retry_at = saga__now_ms() + (int64_t)delay;
        s->fx_pending |= SAGA__FX_TIMER;
        s->dirty |= dirty_bit(phase);
        emit(inst, "step.retrying", i, phase, true, p->attempts, detail);
        progress(inst, SAGA_PROGRESS_CALL_FAILED, i, phase, p->attempts,
                 outcome, msg, elapsed_us, true, delay);
        advance(inst);
        flush(inst);
        return;
    }

    p->status = SAGA_CKPT_FAILED;
    s->dirty |= dirty_bit(phase);
    if (outcome == SAGA_OUTCOME_TECHNICAL && inst->state == live)
        snprintf(detail, sizeof(detail), "technical: %s (attempt %" PRIu32 " of %" PRIu32 ")",
                 msg ? msg : "", p->attempts - p->base, pol->max_attempts);
    emit(inst, "step.failed", i, phase, true, p->attempts, detail);
    progress(inst, SAGA_PROGRESS_CALL_FAILED, i, phase, p->attempts, outcome,
             msg, elapsed_us, false, 0);

    fail_for_good(inst, i, phase, detail);
    advance(inst);
    flush(inst);
}

/* A step's phase failed for good: the recovery policy takes over. */
static void fail_for_good(saga_inst_t *inst, size_t i, saga_phase_t phase,
                          const char *detail) {
    const saga_step_def_t *sd = &def_of(inst)->steps[i];
    char reason[MESSAGE_MAX + 128];
    if (saga__phase_fwd(phase) && inst->state == SAGA_STATE_RUNNING) {
        snprintf(reason, sizeof(reason), "step '%s' failed: %s", sd->name, detail);
        /* A TCC saga's failed Try cancels; a backward saga compensates
         * until its pivot succeeded, and goes forward after it. */
        if (is_tcc(inst) ||
            (def_of(inst)->recovery == SAGA_RECOVERY_BACKWARD && !inst->pivoted))
            enter_compensating(inst, reason);
        else
            set_state(inst, SAGA_STATE_STUCK, reason);
    } else if (saga__phase_undo(phase) && inst->state == SAGA_STATE_COMPENSATING) {
        snprintf(reason, sizeof(reason), "%s of step '%s' failed: %s",
                 is_tcc(inst) ? "cancel" : "compensation", sd->name, detail);
        set_state(inst, SAGA_STATE_STUCK, reason);
    } else if (phase == SAGA_PHASE_CONFIRM && inst->state == SAGA_STATE_CONFIRMING) {
        /* Never cancelled after the decision: an operator retries it. */
        snprintf(reason, sizeof(reason), "confirm of step '%s' failed: %s",
                 sd->name, detail);
        set_state(inst, SAGA_STATE_STUCK, reason);
    }
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                 */
/* ---------------------------------------------------------------------- */

static bool has_pending(const saga_inst_t *inst) {
    if ((inst->pending != NULL && (inst->pending->nev > 0 || inst->pending->nkv > 0)) ||
        inst->state_dirty)
        return true;
    size_t n = def_of(inst)->n_steps;
    for (size_t i = 0; i < n; i++)
        if (inst->steps[i].dirty != 0)
            return true;
    return false;
}

/* Nothing is pending or in flight: is the saga done here? */
static void maybe_finish(saga_inst_t *inst) {
    if (inst->finished || inst->writing || inst->calls_in_flight > 0)
        return;
    if (saga_state_terminal(inst->state) || inst->state == SAGA_STATE_STUCK) {
        finish(inst, 0, true);
        return;
    }
    if (inst->engine->closing)
        finish(inst, SAGA_ECLOSING, false); /* drained: the store keeps it */
}

static int build_fields(saga_inst_t *inst, saga__wbuf_t *b, uint64_t seq) {
    const saga_def_t *def = def_of(inst);
    char num[32], ph[96];
    int rc = 0;
    if (!inst->created) {
        char *input = json_is_object(inst->input) && json_object_size(inst->input) == 0
                          ? strdup("{}") /* the common case, without jansson's encoder */
                          : json_dumps(inst->input, JSON_COMPACT | JSON_ENCODE_ANY);
        if (input == NULL)
            return -ENOMEM;
        saga_fmt_u64(num, (uint64_t)inst->created_ms);
        rc |= wb_kv(b, "id", inst->id, strlen(inst->id));
        rc |= wb_kv(b, "saga", def->name, strlen(def->name));
        rc |= wb_kv(b, "def", def->hash, strlen(def->hash));
        rc |= wb_kv(b, "input", input, strlen(input));
        rc |= wb_kv(b, "created", num, strlen(num));
        free(input);
        if (inst->fence != 0) {
            const char *owner = inst->engine->worker;
            saga_fmt_u64(num, inst->fence);
            rc |= wb_kv(b, "owner", owner, strlen(owner));
            rc |= wb_kv(b, "fence", num, strlen(num));
        }
    }
    if (inst->state_dirty) {
        const char *st = saga_state_name(inst->state);
        rc |= wb_kv(b, "state", st, strlen(st));
        if (inst->reason_dirty) {
            const char *reason = inst->reason ? inst->reason : "";
            rc |= wb_kv(b, "reason", reason, strlen(reason));
            inst->reason_dirty = false;
        }
        if (inst->state == SAGA_STATE_STUCK) {
            st = saga_state_name(inst->stuck_in);
            rc |= wb_kv(b, "stuck_in", st, strlen(st));
        }
        inst->state_dirty = false;
    }
    (void)seq; /* the store records the write's seq itself */
    const saga__step_keys_t *keys = inst->edef->keys;
    for (size_t i = 0; i < def->n_steps; i++) {
        saga__step_t *s = &inst->steps[i];
        if (s->dirty & SAGA__DIRTY_ACT)
            rc |= wb_kv(b, keys[i].act, ph, saga_ckpt_phase_format(ph, sizeof(ph), &s->act));
        if (s->dirty & SAGA__DIRTY_COMP)
            rc |= wb_kv(b, keys[i].comp, ph, saga_ckpt_phase_format(ph, sizeof(ph), &s->comp));
        if ((s->dirty & SAGA__DIRTY_ERR) && s->error != NULL)
            rc |= wb_kv(b, keys[i].err, s->error, strlen(s->error));
        if ((s->dirty & SAGA__DIRTY_CERR) && s->cerror != NULL)
            rc |= wb_kv(b, keys[i].cerr, s->cerror, strlen(s->cerror));
        if (s->dirty & SAGA__DIRTY_CONF)
            rc |= wb_kv(b, keys[i].conf, ph, saga_ckpt_phase_format(ph, sizeof(ph), &s->conf));
        if ((s->dirty & SAGA__DIRTY_FERR) && s->ferror != NULL)
            rc |= wb_kv(b, keys[i].ferr, s->ferror, strlen(s->ferror));
        s->dirty = 0;
        s->fx_inflight |= s->fx_pending;
        s->fx_pending = 0;
    }
    return rc != 0 ? -ENOMEM : 0;
}

static void on_written(int status, unsigned signals, void *data);

/* Sends everything pending as one write, unless a write is in flight (then
 * the ack sends it). With nothing to write, checks whether the saga is done. */
static void flush(saga_inst_t *inst) {
    if (inst->writing || inst->lost || inst->finished)
        return;
    if (!has_pending(inst)) {
        maybe_finish(inst);
        return;
    }
    if (!inst->created) {
        /* Never a saga whose definition's text is not in the store. */
        int rc = saga__engine_def_ready(inst);
        if (rc == 1)
            return; /* flushed again by saga__inst_text_stored() */
        if (rc != 0) {
            lose(inst, rc);
            return;
        }
    }
    saga_engine_t *e = inst->engine;
    /* The events (and outputs) decided so far are this write. */
    saga__wbuf_t *b = inst->pending ? inst->pending : saga__wbuf_get(e);
    inst->pending = NULL;
    if (b == NULL) {
        lose(inst, -ENOMEM);
        return;
    }
    uint64_t seq = inst->seq + 1;
    /* The state written now settles the saga (build_fields clears
     * state_dirty): once per transition, however often it is resent. */
    bool settles = inst->state_dirty && (saga_state_terminal(inst->state) ||
                                         inst->state == SAGA_STATE_STUCK);
    int rc = build_fields(inst, b, seq);
    if (rc == 0)
        rc = wb_finish(b);
    if (rc != 0) {
        saga__wbuf_put(e, b);
        lose(inst, rc);
        return;
    }
    b->w.id = inst->id;
    b->w.seq = seq;
    b->w.fence = inst->fence;
    b->w.worker = e->worker;
    b->w.flags = (inst->created ? 0 : SAGA_WRITE_CREATE) |
                 (saga_state_terminal(inst->state) ? SAGA_WRITE_TERMINAL : 0) |
                 (settles ? SAGA_WRITE_SETTLED : 0);
    /* The definition's retention of this outcome (0: the store's). */
    b->w.retention_ms = inst->state == SAGA_STATE_COMPLETED
                            ? def_of(inst)->retention_completed_ms
                        : inst->state == SAGA_STATE_COMPENSATED
                            ? def_of(inst)->retention_compensated_ms
                            : 0;
    inst->inflight = b;
    inst->writing = true;
    rc = e->store->ops->write(e->store, &b->w, on_written, inst);
    if (rc != 0) {
        inst->writing = false;
        inst->inflight = NULL;
        saga__wbuf_put(e, b);
        lose(inst, rc);
    }
}

static void on_retry_due(saga_deadline_t *d);

/* Runs the effects of the write that was just acknowledged. */
static void run_effects(saga_inst_t *inst) {
    saga_engine_t *e = inst->engine;
    const saga_def_t *def = def_of(inst);
    for (size_t i = 0; i < def->n_steps; i++) {
        inst->steps[i].fx_run = inst->steps[i].fx_inflight;
        inst->steps[i].fx_inflight = 0;
    }
    int64_t now = saga__now_ms();
    for (size_t k = 0; k < def->n_steps && !inst->lost; k++) {
        size_t i = def->topo_order[k];
        saga__step_t *s = &inst->steps[i];
        uint8_t fx = s->fx_run;
        s->fx_run = 0;
        if (fx == 0 || e->closing)
            continue; /* draining: the record says what a resume must do */
        if (fx & SAGA__FX_TIMER) {
            const saga_ckpt_phase_t *p = s->comp.status == SAGA_CKPT_WAITING   ? &s->comp
                                         : s->conf.status == SAGA_CKPT_WAITING ? &s->conf
                                                                               : &s->act;
            if (p->status == SAGA_CKPT_WAITING) {
                int64_t delay = p->retry_at - now;
                if (saga_deadline_arm(&e->timers, &s->wait,
                                      delay > 0 ? (uint64_t)delay : 0,
                                      on_retry_due) != 0) {
                    lose(inst, -ENOMEM);
                    break;
                }
            }
        }
        if ((fx & SAGA__FX_CALL_ACT) && s->act.status == SAGA_CKPT_RUNNING && s->call == NULL)
            saga__call_start(inst, i, fwd_phase(inst));
        if ((fx & SAGA__FX_CALL_COMP) && s->comp.status == SAGA_CKPT_RUNNING && s->call == NULL &&
            !inst->lost)
            saga__call_start(inst, i, undo_phase(inst));
        if ((fx & SAGA__FX_CALL_CONF) && s->conf.status == SAGA_CKPT_RUNNING && s->call == NULL &&
            !inst->lost)
            saga__call_start(inst, i, SAGA_PHASE_CONFIRM);
    }
}

static void on_written(int status, unsigned signals, void *data) {
    saga_inst_t *inst = data;
    saga__wbuf_t *b = inst->inflight;
    inst->inflight = NULL;
    inst->writing = false;
    saga__wbuf_put(inst->engine, b);
    if (inst->lost || inst->finished) {
        try_free(inst);
        return;
    }
    if (!inst->created && inst->engine->opt.on_created != NULL)
        inst->engine->opt.on_created(inst->engine, inst->id, status,
                                     inst->engine->opt.data);
    if (status != 0) {
        lose(inst, status);
        return;
    }
    inst->seq++;
    inst->created = true;
    if ((signals & SAGA_SIGNAL_CANCEL) && !inst->cancel_requested) {
        inst->cancel_requested = true;
        emit(inst, "saga.cancel_requested", SIZE_MAX, SAGA_PHASE_ACTION, false,
             0, NULL);
    }
    inst->holds++;
    run_effects(inst);
    inst->holds--;
    if (inst->finished) {
        try_free(inst);
        return;
    }
    advance(inst);
    flush(inst);
}

static void on_retry_due(saga_deadline_t *d) {
    saga__step_t *s = (saga__step_t *)((char *)d - offsetof(saga__step_t, wait));
    saga_inst_t *inst = s->inst;
    size_t i = (size_t)(s - inst->steps);
    if (inst->lost || inst->finished || inst->engine->closing)
        return;
    if (s->act.status == SAGA_CKPT_WAITING && inst->state == SAGA_STATE_RUNNING)
        start_attempt(inst, i, fwd_phase(inst));
    else if (s->comp.status == SAGA_CKPT_WAITING &&
             inst->state == SAGA_STATE_COMPENSATING)
        start_attempt(inst, i, undo_phase(inst));
    else if (s->conf.status == SAGA_CKPT_WAITING &&
             inst->state == SAGA_STATE_CONFIRMING)
        start_attempt(inst, i, SAGA_PHASE_CONFIRM);
    flush(inst);
}

/* ---------------------------------------------------------------------- */
/* Entry points                                                            */
/* ---------------------------------------------------------------------- */

int saga__inst_begin(saga_inst_t *inst, json_t *input) {
    inst->input = json_incref(input);
    inst->state = SAGA_STATE_RUNNING;
    inst->state_dirty = true;
    inst->created_ms = saga__now_ms();
    emit(inst, "saga.created", SIZE_MAX, SAGA_PHASE_ACTION, false, 0,
         def_of(inst)->hash);
    /* A failure inside this call is returned, not reported. */
    inst->quiet = true;
    inst->holds++;
    advance(inst);
    flush(inst);
    inst->holds--;
    inst->quiet = false;
    if (inst->lost) {
        int rc = inst->lost_status != 0 ? inst->lost_status : -ENOMEM;
        try_free(inst); /* already removed from the engine by finish() */
        return rc;
    }
    return 0;
}

void saga__inst_text_stored(saga_inst_t *inst, int status) {
    if (inst->lost || inst->finished)
        return;
    if (status == 0) {
        flush(inst);
        return;
    }
    /* As if the creation write had been refused (on_written). */
    if (inst->engine->opt.on_created != NULL)
        inst->engine->opt.on_created(inst->engine, inst->id, status,
                                     inst->engine->opt.data);
    lose(inst, status);
}

int saga__inst_continue(saga_inst_t *inst) {
    const saga_def_t *def = def_of(inst);
    inst->created = true;
    if (saga_state_terminal(inst->state)) {
        flush(inst); /* nothing pending: reports it finished */
        return 0;
    }
    /* Calls that were in flight when the previous owner stopped are made
     * again, same attempt, same idempotency key; timers are re-armed from
     * the recorded schedule. */
    for (size_t i = 0; i < def->n_steps; i++) {
        saga__step_t *s = &inst->steps[i];
        if (s->act.status == SAGA_CKPT_RUNNING)
            s->fx_pending |= SAGA__FX_CALL_ACT;
        if (s->comp.status == SAGA_CKPT_RUNNING)
            s->fx_pending |= SAGA__FX_CALL_COMP;
        if (s->conf.status == SAGA_CKPT_RUNNING)
            s->fx_pending |= SAGA__FX_CALL_CONF;
        if (s->act.status == SAGA_CKPT_WAITING || s->comp.status == SAGA_CKPT_WAITING ||
            s->conf.status == SAGA_CKPT_WAITING)
            s->fx_pending |= SAGA__FX_TIMER;
    }
    emit(inst, "saga.resumed", SIZE_MAX, SAGA_PHASE_ACTION, false, 0,
         inst->engine->worker);
    advance(inst);
    flush(inst);
    return 0;
}

void saga__inst_request_cancel(saga_inst_t *inst) {
    if (inst->cancel_requested || inst->lost || inst->finished)
        return;
    inst->cancel_requested = true;
    emit(inst, "saga.cancel_requested", SIZE_MAX, SAGA_PHASE_ACTION, false, 0,
         NULL);
    advance(inst);
    flush(inst);
}

void saga__inst_drain(saga_inst_t *inst) {
    size_t n = def_of(inst)->n_steps;
    for (size_t i = 0; i < n; i++)
        saga_deadline_cancel(&inst->engine->timers, &inst->steps[i].wait);
    flush(inst);
}

void saga__inst_abandon(saga_inst_t *inst) {
    if (inst->finished)
        return;
    size_t n = def_of(inst)->n_steps;
    inst->lost = true; /* no more decisions */
    for (size_t i = 0; i < n; i++)
        if (inst->steps[i].call != NULL)
            saga__call_abandon(inst->steps[i].call);
    finish(inst, SAGA_ECLOSING, false);
}
