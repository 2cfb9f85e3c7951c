/*
 * summary.c -- see summary.h. Reads only what the store holds, so that the
 * summary of `saga run` and of `saga status` show the durable truth.
 */
#include "core/summary.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/checkpoint.h"
#include "saga/state.h"
#include "util/bytes.h"

static json_t *str_or_null(const char *s, size_t len) {
    return s ? json_stringn(s, len) : json_null();
}

/* A record field as a JSON string (or null). */
static json_t *field_str(const saga_record_t *rec, const char *key) {
    size_t len;
    const char *v = saga_record_get(rec, key, &len);
    return str_or_null(v, len);
}

static json_t *field_prefixed(const saga_record_t *rec, const char *prefix,
                              const char *step, size_t *len) {
    char key[SAGA_NAME_MAX + 16];
    snprintf(key, sizeof(key), "%s%s", prefix, step);
    const char *v = saga_record_get(rec, key, len);
    return v ? json_stringn(v, *len) : NULL;
}

void saga_iso_time(int64_t ms, char *buf, size_t len) {
    /* Rounded down, also before 1970: -1 ms is 23:59:59.999 the day before. */
    int64_t secs = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)milli);
}

int saga_summary_time_field(const saga_record_t *rec, const char *key, char *buf,
                            size_t len) {
    size_t vlen;
    const char *v = saga_record_get(rec, key, &vlen);
    uint64_t ms;
    if (v == NULL || saga_parse_u64(v, vlen, &ms) != 0 || ms > INT64_MAX)
        return -EINVAL;
    saga_iso_time((int64_t)ms, buf, len);
    return 0;
}

/* A phase field that cannot be read: shown as such, not as pending. */
#define ST_MALFORMED 0xffu

/* {status, attempts, error, retry_at} of one phase, or NULL when absent. */
static json_t *phase_json(const saga_record_t *rec, const char *prefix,
                          const char *errprefix, const char *step,
                          saga_phase_t phase, saga_ckpt_phase_t *out) {
    char key[SAGA_NAME_MAX + 16];
    size_t len;
    snprintf(key, sizeof(key), "%s%s", prefix, step);
    const char *v = saga_record_get(rec, key, &len);
    memset(out, 0, sizeof(*out));
    if (v == NULL)
        return NULL;
    json_t *o = json_object();
    if (saga_ckpt_phase_parse(v, len, out) != 0) {
        memset(out, 0, sizeof(*out));
        out->status = ST_MALFORMED;
        char msg[SAGA_NAME_MAX + 96];
        snprintf(msg, sizeof(msg), "record field '%s' is not "
                 "'<status> <attempts> <base> <retry_at>'", key);
        json_object_set_new(o, "status", json_string("malformed"));
        json_object_set_new(o, "attempts", json_integer(0));
        json_object_set_new(o, "error", json_string(msg));
        return o;
    }
    json_object_set_new(o, "status", json_string(saga_ckpt_status_name(phase, out->status)));
    json_object_set_new(o, "attempts", json_integer(out->attempts));
    json_t *err = field_prefixed(rec, errprefix, step, &len);
    json_object_set_new(o, "error", err ? err : json_null());
    if (out->status == SAGA_CKPT_WAITING) {
        char ts[40];
        saga_iso_time(out->retry_at, ts, sizeof(ts));
        json_object_set_new(o, "retry_at", json_string(ts));
    }
    return o;
}

/* The one-word status of a step, both phases considered. */
static const char *step_status(const saga_ckpt_phase_t *a, const saga_ckpt_phase_t *c,
                               bool has_comp) {
    if (a->status == ST_MALFORMED || (has_comp && c->status == ST_MALFORMED))
        return "malformed";
    if (has_comp) {
        switch (c->status) {
        case SAGA_CKPT_SUCCEEDED: return "compensated";
        case SAGA_CKPT_RUNNING:
        case SAGA_CKPT_WAITING: return "compensating";
        case SAGA_CKPT_FAILED: return "compensation_failed";
        default: break;
        }
    }
    return saga_ckpt_status_name(SAGA_PHASE_ACTION, a->status);
}

static json_t *pending_phase(void) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("pending"));
    json_object_set_new(o, "attempts", json_integer(0));
    json_object_set_new(o, "error", json_null());
    return o;
}

/* The arguments a call was given: its `with` rendered as the engine renders
 * it (from the start input and the outputs the record holds), into the
 * phase object `o`. Null when it cannot be rendered (a reference to an
 * output the record lacks). */
static void phase_input(json_t *o, const saga_call_def_t *call, const saga_render_ctx_t *ctx) {
    char err[256];
    json_t *v = saga_template_render(call->with, ctx, err, sizeof(err));
    json_object_set_new(o, "input", v != NULL ? v : json_null());
}

/* The one-word status of a TCC step: its Cancel's, else its Confirm's,
 * else its Try's ("succeeded": tried, not confirmed yet). */
static const char *tcc_status(const saga_ckpt_phase_t *t, const saga_ckpt_phase_t *f,
                              bool has_conf, const saga_ckpt_phase_t *c, bool has_cancel) {
    if (t->status == ST_MALFORMED || (has_conf && f->status == ST_MALFORMED) ||
        (has_cancel && c->status == ST_MALFORMED))
        return "malformed";
    const saga_ckpt_phase_t *p = has_cancel ? c : has_conf ? f : NULL;
    if (p != NULL) {
        bool cancel = has_cancel;
        switch (p->status) {
        case SAGA_CKPT_SUCCEEDED: return cancel ? "cancelled" : "confirmed";
        case SAGA_CKPT_RUNNING:
        case SAGA_CKPT_WAITING: return cancel ? "cancelling" : "confirming";
        case SAGA_CKPT_FAILED: return cancel ? "cancel_failed" : "confirm_failed";
        default: break;
        }
    }
    return saga_ckpt_status_name(SAGA_PHASE_TRY, t->status);
}

/* The names of the steps `sd` runs after: the step graph. */
static json_t *after_json(const saga_def_t *def, const saga_step_def_t *sd) {
    json_t *after = json_array();
    for (size_t k = 0; k < sd->n_after; k++)
        json_array_append_new(after, json_string(def->steps[sd->after[k]].name));
    return after;
}

/* A step of a TCC saga: its phases as "try", "confirm" and "cancel"; `def`,
 * `sd` and `ctx` as for step_json(), never NULL. */
static json_t *tcc_step_json(const saga_record_t *rec, const char *name, const saga_def_t *def,
                             const saga_step_def_t *sd, const saga_render_ctx_t *ctx) {
    saga_ckpt_phase_t t, f, c;
    json_t *tr = phase_json(rec, "act:", "err:", name, SAGA_PHASE_TRY, &t);
    json_t *conf = phase_json(rec, "conf:", "ferr:", name, SAGA_PHASE_CONFIRM, &f);
    json_t *cancel = phase_json(rec, "comp:", "cerr:", name, SAGA_PHASE_CANCEL, &c);
    if (tr != NULL && t.status != ST_MALFORMED)
        phase_input(tr, &sd->action, ctx);
    if (conf != NULL && f.status != ST_MALFORMED)
        phase_input(conf, &sd->confirm, ctx);
    if (cancel != NULL && c.status != ST_MALFORMED && sd->has_compensation)
        phase_input(cancel, &sd->compensation, ctx);
    if (tr == NULL)
        tr = pending_phase();
    json_t *s = json_object();
    json_object_set_new(s, "name", json_string(name));
    json_object_set_new(s, "status",
                        json_string(tcc_status(&t, &f, conf != NULL, &c, cancel != NULL)));
    json_object_set_new(s, "attempts", json_integer(t.attempts));
    size_t len;
    char key[SAGA_NAME_MAX + 16];
    snprintf(key, sizeof(key), "out:%s", name);
    const char *out = saga_record_get(rec, key, &len);
    json_t *outv = out ? json_loadb(out, len, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(s, "output", outv ? outv : json_null());
    json_t *failed = tr;
    if (cancel != NULL && (c.status == SAGA_CKPT_FAILED || c.status == ST_MALFORMED))
        failed = cancel;
    else if (conf != NULL && (f.status == SAGA_CKPT_FAILED || f.status == ST_MALFORMED ||
                              f.status == SAGA_CKPT_WAITING))
        failed = conf;
    json_t *err = json_object_get(failed, "error");
    json_object_set(s, "error", err ? err : json_null());
    json_object_set_new(s, "try", tr);
    json_object_set_new(s, "confirm", conf ? conf : json_null());
    json_object_set_new(s, "cancel", cancel ? cancel : json_null());
    json_object_set_new(s, "after", after_json(def, sd));
    return s;
}

/* One step; `sd` and `ctx` are NULL when the definition is unknown. */
static json_t *step_json(const saga_record_t *rec, const char *name, const saga_def_t *def,
                         const saga_step_def_t *sd, const saga_render_ctx_t *ctx) {
    saga_ckpt_phase_t a, c;
    json_t *act = phase_json(rec, "act:", "err:", name, SAGA_PHASE_ACTION, &a);
    json_t *comp = phase_json(rec, "comp:", "cerr:", name, SAGA_PHASE_COMPENSATION, &c);
    if (sd != NULL && act != NULL && a.status != ST_MALFORMED)
        phase_input(act, &sd->action, ctx);
    if (sd != NULL && comp != NULL && c.status != ST_MALFORMED && sd->has_compensation)
        phase_input(comp, &sd->compensation, ctx);
    if (act == NULL)
        act = pending_phase();
    json_t *s = json_object();
    json_object_set_new(s, "name", json_string(name));
    json_object_set_new(s, "status", json_string(step_status(&a, &c, comp != NULL)));
    json_object_set_new(s, "attempts", json_integer(a.attempts));
    size_t len;
    char key[SAGA_NAME_MAX + 16];
    snprintf(key, sizeof(key), "out:%s", name);
    const char *out = saga_record_get(rec, key, &len);
    json_t *outv = out ? json_loadb(out, len, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(s, "output", outv ? outv : json_null());
    bool comp_err = comp != NULL && (c.status == SAGA_CKPT_FAILED || c.status == ST_MALFORMED);
    json_t *err = json_object_get(comp_err ? comp : act, "error");
    json_object_set(s, "error", err ? err : json_null());
    json_object_set_new(s, "action", act);
    json_object_set_new(s, "compensation", comp ? comp : json_null());
    if (sd != NULL)
        json_object_set_new(s, "after", after_json(def, sd));
    return s;
}

/* The start input and each step's output, parsed from the record, for
 * rendering the steps' arguments. */
typedef struct render_data_s {
    json_t *input;
    json_t **outputs;
    char id[SAGA_ID_MAX + 1];
    saga_render_ctx_t ctx;
} render_data_t;

static int render_data_init(render_data_t *d, const saga_record_t *rec, const saga_def_t *def) {
    memset(d, 0, sizeof(*d));
    size_t len;
    const char *v = saga_record_get(rec, "input", &len);
    d->input = v != NULL ? json_loadb(v, len, JSON_DECODE_ANY, NULL) : NULL;
    if (d->input == NULL)
        d->input = json_object();
    d->outputs = calloc(def->n_steps > 0 ? def->n_steps : 1, sizeof(*d->outputs));
    if (d->input == NULL || d->outputs == NULL) {
        json_decref(d->input);
        free(d->outputs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < def->n_steps; i++) {
        char key[SAGA_NAME_MAX + 16];
        snprintf(key, sizeof(key), "out:%s", def->steps[i].name);
        v = saga_record_get(rec, key, &len);
        d->outputs[i] = v != NULL ? json_loadb(v, len, JSON_DECODE_ANY, NULL) : NULL;
    }
    /* the record's values are not NUL-terminated: the id is copied */
    const char *id = saga_record_get(rec, "id", &len);
    snprintf(d->id, sizeof(d->id), "%.*s", id != NULL && len < sizeof(d->id) ? (int)len : 0,
             id != NULL ? id : "");
    d->ctx.input = d->input;
    d->ctx.saga_id = d->id;
    d->ctx.saga_name = def->name;
    d->ctx.outputs = (const json_t *const *)d->outputs;
    return 0;
}

static void render_data_close(render_data_t *d, const saga_def_t *def) {
    for (size_t i = 0; i < def->n_steps; i++)
        json_decref(d->outputs[i]);
    free(d->outputs);
    json_decref(d->input);
}

json_t *saga_summary_history_entry(const saga_history_entry_t *h) {
    char ts[40];
    saga_iso_time(h->ts_ms, ts, sizeof(ts));
    json_t *e = json_object();
    json_object_set_new(e, "ts", json_string(ts));
    json_object_set_new(e, "seq", json_integer((json_int_t)h->seq));
    json_object_set_new(e, "type", json_string(h->ev.type ? h->ev.type : ""));
    json_object_set_new(e, "step", h->ev.step ? json_string(h->ev.step) : json_null());
    json_object_set_new(e, "phase", h->ev.phase ? json_string(h->ev.phase) : json_null());
    json_object_set_new(e, "attempt", h->ev.attempt ? json_integer(h->ev.attempt) : json_null());
    json_object_set_new(e, "detail", str_or_null(h->ev.detail, h->ev.detail_len));
    json_object_set_new(e, "worker", json_string(h->worker ? h->worker : ""));
    return e;
}

json_t *saga_summary_build(const saga_record_t *rec, const saga_def_t *def,
                           const saga_history_entry_t *hist, size_t nhist) {
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "id", field_str(rec, "id"));
    json_object_set_new(o, "saga", field_str(rec, "saga"));
    json_object_set_new(o, "definition", field_str(rec, "def"));
    json_object_set_new(o, "state", field_str(rec, "state"));
    size_t len;
    const char *reason = saga_record_get(rec, "reason", &len);
    json_object_set_new(o, "reason", reason && len ? json_stringn(reason, len) : json_null());
    /* what a stuck saga was doing (running, confirming or compensating): the record
     * keeps the field after a retry, so it is shown only while stuck */
    size_t slen;
    const char *state = saga_record_get(rec, "state", &slen);
    const char *stuck_in = saga_record_get(rec, "stuck_in", &len);
    bool stuck = state != NULL && slen == 5 && memcmp(state, "stuck", 5) == 0;
    json_object_set_new(o, "stuck_in",
                        stuck && stuck_in && len ? json_stringn(stuck_in, len) : json_null());
    char ts[40];
    if (saga_summary_time_field(rec, "created", ts, sizeof(ts)) == 0)
        json_object_set_new(o, "created", json_string(ts));
    const char *owner = saga_record_get(rec, "owner", &len);
    json_object_set_new(o, "owner", owner && len ? json_stringn(owner, len) : json_null());
    size_t ilen;
    const char *input = saga_record_get(rec, "input", &ilen);
    json_t *iv = input != NULL ? json_loadb(input, ilen, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "input", iv != NULL ? iv : json_null());
    bool tcc = def != NULL && def->mode == SAGA_MODE_TCC;
    json_object_set_new(o, "mode", json_string(tcc ? "tcc" : "saga"));
    if (def != NULL && def->pivot != SIZE_MAX) {
        const char *pv = saga_record_get(rec, "pivoted", &len);
        json_object_set_new(o, "pivot", json_string(def->steps[def->pivot].name));
        json_object_set_new(o, "pivoted", json_boolean(pv != NULL && len == 1 && pv[0] == '1'));
    }
    json_t *steps = json_array();
    render_data_t rd;
    if (def != NULL && render_data_init(&rd, rec, def) == 0) {
        for (size_t i = 0; i < def->n_steps; i++) {
            const saga_step_def_t *sd = &def->steps[i];
            json_array_append_new(steps, tcc ? tcc_step_json(rec, sd->name, def, sd, &rd.ctx)
                                             : step_json(rec, sd->name, def, sd, &rd.ctx));
        }
        render_data_close(&rd, def);
    } else if (def != NULL) {
        json_decref(steps);
        json_decref(o);
        return NULL;
    } else {
        /* Each step looks its fields up in the record: at most as many as a
         * definition may have, so that a record stuffed with act: fields
         * costs linear time, not quadratic. */
        for (size_t i = 0; i < rec->nfields && json_array_size(steps) < SAGA_DEF_MAX_STEPS; i++) {
            const saga_kv_t *kv = &rec->fields[i];
            if (kv->klen > 4 && memcmp(kv->key, "act:", 4) == 0) {
                char name[SAGA_NAME_MAX + 1];
                snprintf(name, sizeof(name), "%.*s", (int)(kv->klen - 4), kv->key + 4);
                json_array_append_new(steps, step_json(rec, name, NULL, NULL, NULL));
            }
        }
    }
    json_object_set_new(o, "steps", steps);
    if (hist != NULL) {
        json_t *h = json_array();
        for (size_t i = 0; i < nhist; i++)
            json_array_append_new(h, saga_summary_history_entry(&hist[i]));
        json_object_set_new(o, "history", h);
    }
    return o;
}

json_t *saga_summary_status(const saga_record_t *rec, const saga_def_t *def) {
    json_t *s = saga_summary_build(rec, def, NULL, 0);
    if (s == NULL)
        return NULL;
    json_t *cur = json_array();
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(s, "steps"), i, st) {
        const char *status = json_string_value(json_object_get(st, "status"));
        if (status != NULL && (strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0 ||
                               strcmp(status, "compensating") == 0 ||
                               strcmp(status, "confirming") == 0 ||
                               strcmp(status, "cancelling") == 0))
            json_array_append_new(cur, json_pack("{s:O, s:s}", "step",
                                                 json_object_get(st, "name"), "status", status));
    }
    json_object_set_new(s, "current", cur);
    char ts[40];
    if (saga_summary_time_field(rec, "updated", ts, sizeof(ts)) == 0)
        json_object_set_new(s, "updated", json_string(ts));
    return s;
}
