/*
 * call.c -- calling step handlers, and the host functions plugins use.
 *
 * A call lives from the moment its handler is invoked until the plugin
 * completes it. The engine may stop waiting earlier (the attempt timed out,
 * the saga was lost, the engine shut down): the call is then "abandoned":
 * detached from its saga, the plugin's cancel hook asked to wrap up, and its
 * eventual completion logged and dropped. Either way the call is freed when
 * its completion has been handled, so a plugin may use it until then.
 *
 * A call owns copies of everything its saga_call_info_t points to, so a late
 * completion never touches a freed saga.
 *
 * Completion may happen inside the handler call itself (demo.noop does);
 * its delivery is then deferred until the handler returns, so the engine is
 * never re-entered from inside a plugin.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "util/log.h"

struct saga_call_s {
    saga_engine_t *engine;
    saga_inst_t *inst;             /* NULL once abandoned */
    saga_engine_def_t *edef;       /* kept alive for info strings */
    const saga__handler_ref_t *ref;
    size_t step;
    saga_phase_t phase;
    saga_call_info_t info;
    saga_deadline_t timeout;
    uint64_t started_ns;           /* uv_hrtime at the call: its duration */
    void *plugin_data;
    uint64_t retry_after_ms;
    bool has_retry_after;
    bool completed;
    bool in_handler;               /* the handler function is on the stack */
    bool deliver_when_returned;
    bool in_pool;                  /* a blocking handler runs on the pool */
    bool blocking;
    bool cancelled;                /* abandoned by the engine */
    bool timed_out;                /* ... because its attempt timed out */
    saga_outcome_t outcome;
    char *result;
    size_t result_len;
    char *input_owned;             /* rendered input, when not constant */
    uv_work_t *work;               /* blocking handlers only: most calls never
                                      need one, and it is ~130 bytes */
    saga_call_t *live_prev;        /* the engine's calls not completed yet */
    saga_call_t *live_next;
    char strs[];                   /* saga id, then the idempotency key */
};

static void call_free(saga_call_t *c) {
    saga_engine_t *e = c->engine;
    saga_deadline_cancel(&e->timers, &c->timeout);
    free(c->work);
    free(c->result);
    free(c->input_owned);
    saga__engine_def_release(c->edef);
    if (c->live_prev != NULL)
        c->live_prev->live_next = c->live_next;
    else
        e->calls = c->live_next;
    if (c->live_next != NULL)
        c->live_next->live_prev = c->live_prev;
    free(c);
    e->live_calls--;
    saga__engine_check_drained(e);
}

/* Hands the outcome to the saga (or drops it when abandoned), then frees
 * the call. */
static void deliver(saga_call_t *c) {
    saga_inst_t *inst = c->inst;
    if (inst == NULL) {
        /* A late success after a timeout matters to an operator: the
         * service applied what the saga counted as failed (the retry, or
         * the compensation, will meet it through the idempotency key). A
         * cancelled call wrapping up is expected. */
        saga_log(c->timed_out && c->outcome == SAGA_OUTCOME_OK ? SAGA_LOG_WARN
                                                               : SAGA_LOG_DEBUG,
                 "saga %s: step %s %s attempt %u completed (%s) after the engine "
                 "stopped waiting%s; ignored", c->info.saga_id, c->info.step,
                 saga_phase_name(c->phase),
                 c->info.attempt,
                 c->outcome == SAGA_OUTCOME_OK ? "ok"
                 : c->outcome == SAGA_OUTCOME_BUSINESS ? "business failure"
                                                       : "technical failure",
                 c->timed_out ? " (timed out)" : "");
        call_free(c);
        return;
    }
    uint64_t elapsed_us = (uv_hrtime() - c->started_ns) / 1000;
    saga__step_t *s = &inst->steps[c->step];
    s->call = NULL;
    inst->calls_in_flight--;
    c->inst = NULL;
    size_t step = c->step;
    saga_phase_t phase = c->phase;
    saga_outcome_t outcome = c->outcome;
    uint64_t ra = c->retry_after_ms;
    bool has_ra = c->has_retry_after;
    /* The result bytes move out of the call before it is freed. */
    char *result = c->result;
    size_t rlen = c->result_len;
    c->result = NULL;
    call_free(c);
    saga__inst_hold(inst);
    saga__inst_on_result(inst, step, phase, outcome, result ? result : "",
                         rlen, ra, has_ra, elapsed_us);
    saga__inst_unhold(inst);
    free(result);
}

void saga__call_log_outstanding(saga_engine_t *e, size_t max) {
    size_t n = 0;
    for (const saga_call_t *c = e->calls; c != NULL && n < max; c = c->live_next, n++)
        saga_error("shutdown: waiting for plugin %s: handler %s, saga %s, step %s %s "
                   "attempt %u%s", c->ref->plugin, c->ref->h->name, c->info.saga_id,
                   c->info.step, saga_phase_name(c->phase), c->info.attempt,
                   c->in_pool ? " (running on the thread pool)" : "");
    if (e->live_calls > n)
        saga_error("shutdown: ... and %u more call(s)", (unsigned)(e->live_calls - n));
}

/* ---------------------------------------------------------------------- */
/* Host functions                                                          */
/* ---------------------------------------------------------------------- */

static void host_complete(saga_call_t *c, saga_outcome_t outcome,
                          const char *data, size_t len) {
    if (c->completed) {
        saga_error("plugin %s: handler %s completed a call twice (saga %s, "
                   "step %s); the second completion is ignored",
                   c->ref->plugin, c->ref->h->name, c->info.saga_id, c->info.step);
        return;
    }
    c->completed = true;
    if (outcome != SAGA_OUTCOME_OK && outcome != SAGA_OUTCOME_TECHNICAL &&
        outcome != SAGA_OUTCOME_BUSINESS) {
        static const char bad[] = "handler completed with an unknown outcome";
        outcome = SAGA_OUTCOME_TECHNICAL;
        data = bad;
        len = sizeof(bad) - 1;
    }
    c->outcome = outcome;
    if (data == NULL)
        len = 0;
    c->result = malloc(len + 1);
    if (c->result != NULL) {
        if (len > 0)
            memcpy(c->result, data, len);
        c->result[len] = '\0';
        c->result_len = len;
    } else {
        c->outcome = SAGA_OUTCOME_TECHNICAL;
        c->result_len = 0;
    }
    if (c->in_pool)
        return; /* the after-work callback delivers on the loop */
    if (c->in_handler) {
        c->deliver_when_returned = true;
        return;
    }
    deliver(c);
}

static void host_set_retry_after(saga_call_t *c, uint64_t delay_ms) {
    c->retry_after_ms = delay_ms;
    c->has_retry_after = true;
}

static void host_set_call_data(saga_call_t *c, void *data) {
    c->plugin_data = data;
}

static void *host_call_data(const saga_call_t *c) { return c->plugin_data; }

static void host_log(saga_log_level_t level, const char *plugin,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    saga_vlog(level, plugin, fmt, ap);
    va_end(ap);
}

const saga_host_t saga__host = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_host_t),
    .complete = host_complete,
    .set_retry_after = host_set_retry_after,
    .set_call_data = host_set_call_data,
    .call_data = host_call_data,
    .log = host_log,
};

/* ---------------------------------------------------------------------- */
/* Calling                                                                 */
/* ---------------------------------------------------------------------- */

static void on_timeout(saga_deadline_t *d) {
    saga_call_t *c = (saga_call_t *)((char *)d - offsetof(saga_call_t, timeout));
    saga_inst_t *inst = c->inst;
    if (inst == NULL)
        return;
    size_t step = c->step;
    saga_phase_t phase = c->phase;
    uint64_t timeout = c->info.timeout_ms;
    uint64_t elapsed_us = (uv_hrtime() - c->started_ns) / 1000;
    saga_warn("saga %s: step %s %s attempt %u timed out after %llu ms",
              c->info.saga_id, c->info.step,
              saga_phase_name(phase),
              c->info.attempt, (unsigned long long)timeout);
    c->timed_out = true;
    saga__call_abandon(c); /* c may be freed now */
    char msg[96];
    snprintf(msg, sizeof(msg), "timed out after %llu ms", (unsigned long long)timeout);
    saga__inst_hold(inst);
    inst->timing_out = true; /* for the progress report (metrics) */
    saga__inst_on_result(inst, step, phase, SAGA_OUTCOME_TECHNICAL, msg,
                         strlen(msg), 0, false, elapsed_us);
    inst->timing_out = false;
    saga__inst_unhold(inst);
}

void saga__call_abandon(saga_call_t *c) {
    saga_inst_t *inst = c->inst;
    if (inst == NULL)
        return;
    inst->steps[c->step].call = NULL;
    inst->calls_in_flight--;
    c->inst = NULL;
    c->cancelled = true;
    saga_deadline_cancel(&c->engine->timers, &c->timeout);
    if (!c->blocking && c->ref->h->cancel != NULL && !c->in_handler) {
        c->in_handler = true;
        c->ref->h->cancel(c->ref->state, c);
        c->in_handler = false;
        if (c->deliver_when_returned)
            deliver(c); /* frees it */
    }
}

static void work_cb(uv_work_t *w) {
    saga_call_t *c = w->data;
    c->ref->h->call(c->ref->state, c, &c->info);
}

static void after_work_cb(uv_work_t *w, int status) {
    saga_call_t *c = w->data;
    c->in_pool = false;
    c->engine->pool_calls--;
    if (!c->completed) {
        static const char msg[] = "blocking handler returned without completing the call";
        c->completed = true;
        c->outcome = SAGA_OUTCOME_TECHNICAL;
        c->result = strdup(status == UV_ECANCELED ? "engine shutting down" : msg);
        c->result_len = c->result ? strlen(c->result) : 0;
    }
    deliver(c);
}

/* Fails a call the engine could not hand to its handler: completes it
 * with `outcome` and `msg` as a handler would, and delivers the result at
 * once (the caller is the engine, not a plugin). Frees the call. */
static void fail_now(saga_call_t *c, saga_outcome_t outcome, const char *msg) {
    c->in_handler = true; /* completion is recorded, delivered below */
    host_complete(c, outcome, msg, strlen(msg));
    c->in_handler = false;
    deliver(c);
}

/* The call's input: the constant text when the template has no
 * expression; else the text rendered when the attempt was decided (taken
 * over by the call); else (a resumed attempt) rendered now. */
static int call_input(saga_call_t *c, saga_inst_t *inst,
                      const saga_call_def_t *cd, char *err, size_t errlen) {
    size_t len;
    const char *k = saga_template_constant(cd->with, &len);
    if (k != NULL) {
        c->info.input = k;
        c->info.input_len = len;
        return 0;
    }
    saga__step_t *s = &inst->steps[c->step];
    c->input_owned = s->input;
    s->input = NULL;
    if (c->input_owned == NULL &&
        (c->input_owned = saga__inst_render(inst, cd, err, errlen)) == NULL)
        return -EINVAL;
    c->info.input = c->input_owned;
    c->info.input_len = strlen(c->input_owned);
    return 0;
}

void saga__call_start(saga_inst_t *inst, size_t i, saga_phase_t phase) {
    saga_engine_t *e = inst->engine;
    saga_engine_def_t *d = inst->edef;
    const saga_step_def_t *sd = &d->def->steps[i];
    bool fwd = saga__phase_fwd(phase), undo = saga__phase_undo(phase);
    const saga__handler_ref_t *ref = fwd ? &d->action[i] : undo ? &d->comp[i] : &d->conf[i];
    const saga_call_def_t *cd = fwd ? &sd->action : undo ? &sd->compensation : &sd->confirm;
    const char *pname = saga_phase_name(phase);
    uint32_t attempt = fwd    ? inst->steps[i].act.attempts
                       : undo ? inst->steps[i].comp.attempts
                              : inst->steps[i].conf.attempts;

    size_t idlen = strlen(inst->id);
    size_t keylen = idlen + 1 + strlen(sd->name) + 1 + strlen(pname);
    saga_call_t *c = calloc(1, sizeof(*c) + idlen + 1 + keylen + 1);
    if (c == NULL) {
        static const char oom[] = "out of memory starting the call";
        saga__inst_hold(inst);
        saga__inst_on_result(inst, i, phase, SAGA_OUTCOME_TECHNICAL, oom,
                             sizeof(oom) - 1, 0, false, 0);
        saga__inst_unhold(inst);
        return;
    }
    e->live_calls++;
    c->live_next = e->calls;
    if (e->calls != NULL)
        e->calls->live_prev = c;
    e->calls = c;
    c->engine = e;
    c->inst = inst;
    c->edef = d;
    d->refs++;
    c->ref = ref;
    c->step = i;
    c->phase = phase;
    c->blocking = (ref->h->flags & SAGA_HANDLER_BLOCKING) != 0;
    saga_deadline_init(&c->timeout);
    char *id = c->strs, *key = c->strs + idlen + 1;
    memcpy(id, inst->id, idlen + 1);
    snprintf(key, keylen + 1, "%s/%s/%s", inst->id, sd->name, pname);

    c->info.struct_size = sizeof(saga_call_info_t);
    c->info.saga_id = id;
    c->info.saga_name = d->def->name;
    c->info.step = sd->name;
    c->info.phase = phase;
    c->info.attempt = attempt;
    c->info.timeout_ms = sd->timeout_ms;
    c->info.deadline_ms = saga__now_ms() + (int64_t)sd->timeout_ms;
    c->info.idempotency_key = key;
    c->info.loop = e->loop;
    c->started_ns = uv_hrtime();

    inst->steps[i].call = c;
    inst->calls_in_flight++;

    saga_progress_t p = {
        .kind = SAGA_PROGRESS_CALL_STARTED, .saga_id = inst->id,
        .saga_name = d->def->name, .step = sd->name, .phase = phase,
        .attempt = attempt, .state = inst->state,
    };
    saga__engine_progress(e, &p);

    char err[512];
    if (call_input(c, inst, cd, err, sizeof(err)) != 0) {
        /* Rendering is deterministic: retrying cannot help. */
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot render `with`: %s", err);
        fail_now(c, SAGA_OUTCOME_BUSINESS, msg);
        return;
    }

    if (saga_deadline_arm(&e->timers, &c->timeout, sd->timeout_ms, on_timeout) != 0) {
        fail_now(c, SAGA_OUTCOME_TECHNICAL, "out of memory");
        return;
    }

    if (c->blocking) {
        int rc = (c->work = malloc(sizeof(*c->work))) == NULL ? UV_ENOMEM : 0;
        if (rc == 0) {
            c->work->data = c;
            c->in_pool = true;
            e->pool_calls++;
            rc = uv_queue_work(e->loop, c->work, work_cb, after_work_cb);
        }
        if (rc != 0) {
            if (c->in_pool) {
                c->in_pool = false;
                e->pool_calls--;
            }
            char msg[128];
            snprintf(msg, sizeof(msg), "cannot queue blocking handler: %s", uv_strerror(rc));
            fail_now(c, SAGA_OUTCOME_TECHNICAL, msg);
        }
        return;
    }
    c->in_handler = true;
    ref->h->call(ref->state, c, &c->info);
    c->in_handler = false;
    if (c->deliver_when_returned)
        deliver(c);
}
