/*
 * checkpoint.c -- how a saga is written in its record, and read back.
 *
 * A record is a flat map of fields (a Redis hash). Saga-level fields:
 *
 *   id, saga (name), def (definition hash), input (JSON), state, reason,
 *   stuck_in, created (Unix ms), seq (transition counter), cancel ("1" when
 *   an operator asked), owner, fence
 *
 * and per step NAME:
 *
 *   act:NAME   "<status> <attempts> <base> <retry_at>" of the action
 *   comp:NAME  the same for the compensation
 *   out:NAME   the action's output (JSON)
 *   err:NAME   the action's last error
 *   cerr:NAME  the compensation's last error
 *
 * Everything read back is checked: a record this engine cannot decode is
 * refused with the field named, never half-used.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "errors.h"

static const char *const status_names[] = {"pending", "running", "waiting",
                                           "succeeded", "failed", "skipped"};

const char *saga__ckpt_status_name(saga_phase_t phase, uint8_t status) {
    if (phase == SAGA_PHASE_COMPENSATION && status == ST_SUCCEEDED)
        return "compensated";
    return status <= ST_SKIPPED ? status_names[status] : "?";
}

size_t saga__ckpt_phase_format(char *buf, size_t len, const saga__phase_t *p) {
    (void)len; /* callers pass at least 64 bytes: 11 + 3 * 21 max */
    const char *name = status_names[p->status];
    size_t n = strlen(name);
    memcpy(buf, name, n);
    buf[n++] = ' ';
    n += saga_fmt_u64(buf + n, p->attempts);
    buf[n++] = ' ';
    n += saga_fmt_u64(buf + n, p->base);
    buf[n++] = ' ';
    n += saga_fmt_u64(buf + n, p->retry_at > 0 ? (uint64_t)p->retry_at : 0);
    return n;
}

int saga__ckpt_phase_parse(const char *s, size_t len, saga__phase_t *p) {
    char buf[96], name[16];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    unsigned long a, b;
    long long at;
    int used = 0;
    if (sscanf(buf, "%15s %lu %lu %lld%n", name, &a, &b, &at, &used) != 4 ||
        (size_t)used != len || a > UINT32_MAX || b > a || at < 0)
        return -EINVAL;
    for (uint8_t i = 0; i <= ST_SKIPPED; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            p->status = i;
            p->attempts = (uint32_t)a;
            p->base = (uint32_t)b;
            p->retry_at = at;
            return 0;
        }
    }
    return -EINVAL;
}

/* The field NAME of `step` with a prefix ("act:", "out:", ...). */
static const char *field(char *buf, size_t len, const char *prefix,
                         const char *step) {
    snprintf(buf, len, "%s%s", prefix, step);
    return buf;
}

static int parse_u64(const char *s, size_t len, uint64_t *out) {
    if (len == 0 || len > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        uint64_t nv = v * 10 + (uint64_t)(s[i] - '0');
        if (nv / 10 != v)
            return -EINVAL;
        v = nv;
    }
    *out = v;
    return 0;
}

int saga__ckpt_decode(saga_inst_t *inst, const saga_record_t *rec, char *err,
                      size_t errlen) {
    const saga_def_t *def = inst->edef->def;
    size_t len;
    const char *v;
    char fname[SAGA_NAME_MAX + 16];

#define CORRUPT(...)                                                         \
    do {                                                                     \
        snprintf(err, errlen, __VA_ARGS__);                                  \
        return SAGA_ECORRUPT;                                                \
    } while (0)

    if ((v = saga_record_get(rec, "state", &len)) == NULL)
        CORRUPT("saga %s: record has no 'state'", inst->id);
    char st[32];
    snprintf(st, sizeof(st), "%.*s", (int)(len < 31 ? len : 31), v);
    if (saga_state_parse(st, &inst->state) != 0)
        CORRUPT("saga %s: unknown state '%s'", inst->id, st);
    if ((v = saga_record_get(rec, "seq", &len)) == NULL ||
        parse_u64(v, len, &inst->seq) != 0)
        CORRUPT("saga %s: record has no valid 'seq'", inst->id);
    inst->stuck_in = SAGA_STATE_RUNNING;
    if ((v = saga_record_get(rec, "stuck_in", &len)) != NULL) {
        snprintf(st, sizeof(st), "%.*s", (int)(len < 31 ? len : 31), v);
        if (saga_state_parse(st, &inst->stuck_in) != 0)
            CORRUPT("saga %s: bad 'stuck_in' '%s'", inst->id, st);
    }
    if ((v = saga_record_get(rec, "reason", &len)) != NULL)
        inst->reason = saga_memdup(v, len);
    if ((v = saga_record_get(rec, "cancel", &len)) != NULL && len == 1 && v[0] == '1')
        inst->cancel_requested = true;
    uint64_t created = 0;
    if ((v = saga_record_get(rec, "created", &len)) != NULL)
        parse_u64(v, len, &created);
    inst->created_ms = (int64_t)created;
    uint64_t fence = 0;
    if ((v = saga_record_get(rec, "fence", &len)) != NULL)
        parse_u64(v, len, &fence);
    inst->fence = fence;

    json_error_t jerr;
    if ((v = saga_record_get(rec, "input", &len)) == NULL)
        CORRUPT("saga %s: record has no 'input'", inst->id);
    if ((inst->input = json_loadb(v, len, JSON_DECODE_ANY, &jerr)) == NULL)
        CORRUPT("saga %s: field 'input' is not JSON: %s", inst->id, jerr.text);

    for (size_t i = 0; i < def->n_steps; i++) {
        saga__step_t *s = &inst->steps[i];
        const char *name = def->steps[i].name;
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "act:", name), &len)) != NULL &&
            saga__ckpt_phase_parse(v, len, &s->act) != 0)
            CORRUPT("saga %s: field '%s' is malformed", inst->id, fname);
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "comp:", name), &len)) != NULL &&
            saga__ckpt_phase_parse(v, len, &s->comp) != 0)
            CORRUPT("saga %s: field '%s' is malformed", inst->id, fname);
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "out:", name), &len)) != NULL &&
            (s->output = json_loadb(v, len, JSON_DECODE_ANY, &jerr)) == NULL)
            CORRUPT("saga %s: field '%s' is not JSON: %s", inst->id, fname, jerr.text);
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "err:", name), &len)) != NULL)
            s->error = saga_memdup(v, len);
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "cerr:", name), &len)) != NULL)
            s->cerror = saga_memdup(v, len);
        if (s->act.status == ST_SKIPPED)
            CORRUPT("saga %s: action of step '%s' cannot be 'skipped'", inst->id, name);
    }
#undef CORRUPT
    return 0;
}
