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
 *   conf:NAME  a TCC step's Confirm, as act:NAME (its Try is act:NAME, its
 *              Cancel comp:NAME)
 *   ferr:NAME  the Confirm's last error
 *
 * and "pivoted" ("1") once a pivot step's action succeeded, written with
 * that result: the store refuses a cancel from then on.
 *
 * Everything read back is checked: a record this engine cannot decode is
 * refused with the field named, never half-used.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "saga/errors.h"
#include "util/bytes.h"

#define PHASE_FORMAT "<status> <attempts> <base> <retry_at>"

static const char *const status_names[] = {"pending", "running", "waiting",
                                           "succeeded", "failed", "skipped"};

const char *saga_ckpt_status_name(saga_phase_t phase, uint8_t status) {
    if (phase == SAGA_PHASE_COMPENSATION && status == SAGA_CKPT_SUCCEEDED)
        return "compensated";
    if (phase == SAGA_PHASE_CANCEL && status == SAGA_CKPT_SUCCEEDED)
        return "cancelled";
    if (phase == SAGA_PHASE_CONFIRM && status == SAGA_CKPT_SUCCEEDED)
        return "confirmed";
    return status <= SAGA_CKPT_SKIPPED ? status_names[status] : "?";
}

size_t saga_ckpt_phase_format(char *buf, size_t len, const saga_ckpt_phase_t *p) {
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

int saga_ckpt_phase_parse(const char *s, size_t len, saga_ckpt_phase_t *p) {
    /* Exactly what saga_ckpt_phase_format() writes, as saga.lua's
     * phase_parse() reads it: single spaces, plain decimal numbers. */
    const char *end = s + len, *sp = memchr(s, ' ', len);
    if (sp == NULL)
        return -EINVAL;
    uint8_t st = 0;
    while (st <= SAGA_CKPT_SKIPPED && !(strlen(status_names[st]) == (size_t)(sp - s) &&
                                 memcmp(s, status_names[st], (size_t)(sp - s)) == 0))
        st++;
    if (st > SAGA_CKPT_SKIPPED)
        return -EINVAL;
    uint64_t num[3];
    const char *f = sp + 1;
    for (int k = 0; k < 3; k++) {
        const char *e = k < 2 ? memchr(f, ' ', (size_t)(end - f)) : end;
        if (e == NULL || saga_parse_u64(f, (size_t)(e - f), &num[k]) != 0)
            return -EINVAL;
        f = e + 1;
    }
    if (num[0] > UINT32_MAX || num[1] > num[0] || num[2] > INT64_MAX)
        return -EINVAL;
    p->status = st;
    p->attempts = (uint32_t)num[0];
    p->base = (uint32_t)num[1];
    p->retry_at = (int64_t)num[2];
    return 0;
}

/* The field NAME of `step` with a prefix ("act:", "out:", ...). */
static const char *field(char *buf, size_t len, const char *prefix,
                         const char *step) {
    snprintf(buf, len, "%s%s", prefix, step);
    return buf;
}

/* A state field: exactly one of the names saga_state_name() writes. */
static int state_parse(const char *v, size_t len, saga_state_t *out) {
    char st[16];
    if (len >= sizeof(st) || memchr(v, '\0', len) != NULL)
        return -EINVAL;
    memcpy(st, v, len);
    st[len] = '\0';
    return saga_state_parse(st, out);
}

/* A record value as an error message quotes it: at most SHOWN_MAX bytes,
 * anything but printable ASCII as '?'. A record may hold any bytes; the
 * message stays one readable line (logs are one line per message). */
#define SHOWN_MAX 40
static const char *shown(char *buf, const char *v, size_t len) {
    size_t n = len < SHOWN_MAX ? len : SHOWN_MAX;
    for (size_t i = 0; i < n; i++)
        buf[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    memcpy(buf + n, len > n ? "..." : "", len > n ? 4 : 1);
    return buf;
}

/* The same for a whole message (jansson's error text quotes the input). */
static void printable(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

int saga__ckpt_decode(saga_inst_t *inst, const saga_record_t *rec, char *err,
                      size_t errlen) {
    const saga_def_t *def = inst->edef->def;
    size_t len;
    const char *v;
    char fname[SAGA_NAME_MAX + 16];
    char q[SHOWN_MAX + 4];

#define CORRUPT(...)                                                         \
    do {                                                                     \
        snprintf(err, errlen, __VA_ARGS__);                                  \
        printable(err);                                                      \
        return SAGA_ECORRUPT;                                                \
    } while (0)
#define NOMEM()                                                              \
    do {                                                                     \
        snprintf(err, errlen, "saga %s: out of memory decoding its record",  \
                 inst->id);                                                  \
        return -ENOMEM;                                                      \
    } while (0)

    if ((v = saga_record_get(rec, "state", &len)) == NULL)
        CORRUPT("saga %s: record has no 'state'", inst->id);
    if (state_parse(v, len, &inst->state) != 0)
        CORRUPT("saga %s: field 'state' is '%s', not a saga state", inst->id, shown(q, v, len));
    if ((v = saga_record_get(rec, "seq", &len)) == NULL)
        CORRUPT("saga %s: record has no 'seq'", inst->id);
    if (saga_parse_u64(v, len, &inst->seq) != 0)
        CORRUPT("saga %s: field 'seq' is '%s', not a number", inst->id, shown(q, v, len));
    /* Written when the saga is parked, and left behind by a retry. */
    inst->stuck_in = SAGA_STATE_RUNNING;
    if ((v = saga_record_get(rec, "stuck_in", &len)) != NULL &&
        (state_parse(v, len, &inst->stuck_in) != 0 ||
         (inst->stuck_in != SAGA_STATE_RUNNING && inst->stuck_in != SAGA_STATE_COMPENSATING &&
          inst->stuck_in != SAGA_STATE_CONFIRMING)))
        CORRUPT("saga %s: field 'stuck_in' is '%s', not 'running', 'compensating' or "
                "'confirming'", inst->id, shown(q, v, len));
    bool tcc = def->mode == SAGA_MODE_TCC;
    if (!tcc && (inst->state == SAGA_STATE_CONFIRMING || inst->stuck_in == SAGA_STATE_CONFIRMING))
        CORRUPT("saga %s: its state is confirming, but its definition is not a TCC saga",
                inst->id);
    if ((v = saga_record_get(rec, "pivoted", &len)) != NULL && len == 1 && v[0] == '1') {
        if (def->pivot == SIZE_MAX)
            CORRUPT("saga %s: field 'pivoted' is set, but its definition has no pivot step",
                    inst->id);
        inst->pivoted = true;
    }
    if ((v = saga_record_get(rec, "reason", &len)) != NULL &&
        (inst->reason = saga_memdup(v, len)) == NULL)
        NOMEM();
    if ((v = saga_record_get(rec, "cancel", &len)) != NULL && len == 1 && v[0] == '1')
        inst->cancel_requested = true;
    uint64_t num = 0;
    if ((v = saga_record_get(rec, "created", &len)) != NULL &&
        (saga_parse_u64(v, len, &num) != 0 || num > INT64_MAX))
        CORRUPT("saga %s: field 'created' is '%s', not a time in Unix ms", inst->id,
                shown(q, v, len));
    inst->created_ms = (int64_t)num;
    /* An empty fence is no fence (saga.lua checks none then). */
    num = 0;
    if ((v = saga_record_get(rec, "fence", &len)) != NULL && len > 0 &&
        saga_parse_u64(v, len, &num) != 0)
        CORRUPT("saga %s: field 'fence' is '%s', not a number", inst->id, shown(q, v, len));
    inst->fence = num;

    json_error_t jerr;
    if ((v = saga_record_get(rec, "input", &len)) == NULL)
        CORRUPT("saga %s: record has no 'input'", inst->id);
    if ((inst->input = json_loadb(v, len, JSON_DECODE_ANY, &jerr)) == NULL)
        CORRUPT("saga %s: field 'input' is not JSON: %s", inst->id, jerr.text);

    for (size_t i = 0; i < def->n_steps; i++) {
        saga__step_t *s = &inst->steps[i];
        const char *name = def->steps[i].name;
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "act:", name), &len)) != NULL &&
            saga_ckpt_phase_parse(v, len, &s->act) != 0)
            CORRUPT("saga %s: field '%s' is '%s', not '" PHASE_FORMAT "'", inst->id, fname,
                    shown(q, v, len));
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "comp:", name), &len)) != NULL &&
            saga_ckpt_phase_parse(v, len, &s->comp) != 0)
            CORRUPT("saga %s: field '%s' is '%s', not '" PHASE_FORMAT "'", inst->id, fname,
                    shown(q, v, len));
        /* `skipped` is what a step without a compensation gets instead of
         * one; a compensation recorded as started for such a step would
         * call a handler that does not exist. */
        if (def->steps[i].has_compensation ? s->comp.status == SAGA_CKPT_SKIPPED
                                           : s->comp.status != SAGA_CKPT_PENDING &&
                                                 s->comp.status != SAGA_CKPT_SKIPPED)
            CORRUPT("saga %s: field '%s' is '%s', but step '%s' has %s compensation", inst->id,
                    fname, status_names[s->comp.status], name,
                    def->steps[i].has_compensation ? "a" : "no");
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "out:", name), &len)) != NULL &&
            (s->output = json_loadb(v, len, JSON_DECODE_ANY, &jerr)) == NULL)
            CORRUPT("saga %s: field '%s' is not JSON: %s", inst->id, fname, jerr.text);
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "err:", name), &len)) != NULL &&
            (s->error = saga_memdup(v, len)) == NULL)
            NOMEM();
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "cerr:", name), &len)) != NULL &&
            (s->cerror = saga_memdup(v, len)) == NULL)
            NOMEM();
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "conf:", name), &len)) != NULL) {
            if (!tcc)
                CORRUPT("saga %s: field '%s' is set, but step '%s' has no Confirm (not a "
                        "TCC saga)", inst->id, fname, name);
            if (saga_ckpt_phase_parse(v, len, &s->conf) != 0 ||
                s->conf.status == SAGA_CKPT_SKIPPED)
                CORRUPT("saga %s: field '%s' is '%s', not '" PHASE_FORMAT "'", inst->id,
                        fname, shown(q, v, len));
        }
        if ((v = saga_record_get(rec, field(fname, sizeof(fname), "ferr:", name), &len)) != NULL &&
            (s->ferror = saga_memdup(v, len)) == NULL)
            NOMEM();
        if (s->act.status == SAGA_CKPT_SKIPPED)
            CORRUPT("saga %s: field 'act:%s' is 'skipped': an action cannot be", inst->id, name);
    }
#undef CORRUPT
#undef NOMEM
    return 0;
}
