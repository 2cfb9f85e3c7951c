/*
 * fuzz_record.c -- libFuzzer target for what the engine decodes from Redis:
 * a saga's record (the reply to HGETALL saga:{ID}) and its history (the
 * reply to LRANGE saga:{ID}:history), against a fixed definition.
 *
 * Input (text, so that seeds are records dumped from a real Redis):
 *
 *   FIELD=VALUE     one record field per line; the first '=' splits it (a
 *                   line without one is a field with an empty value)
 *   --              a line of its own: the lines after it are history
 *   ENTRY           entries, one per line
 *
 * A 0x1f byte stands for a line break, so that fields and entries can hold
 * one. Every string of the replies is allocated at its exact size, not
 * NUL-terminated (store.h: record values are bytes), so that a decoder
 * that reads past a value is caught by AddressSanitizer.
 *
 * Each input goes through the store's reply decoders
 * (engine/store/redis_replies.c, called as store_redis.c calls them) and
 * then through every decoder of stored data: saga__ckpt_decode() into a
 * fresh instance (what a resume does), saga_summary_build() with and
 * without the definition and its text printing (saga status, saga run),
 * and the history entries as saga history shows them. Broken invariants
 * abort, so that the fuzzer reports them like crashes.
 *
 * Seed corpus: tests/fuzz/record-seeds/. See scripts/fuzz.sh.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "saga/errors.h"
#include "util/log.h"
#include "store/redis_replies.h"
#include "store/store_memory.h"
#include "cli/summary.h"
#include "util/bytes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ID "fuzz-id"

/* The definition the records are decoded against (the seeds were run
 * under it): a compensation with its own retry policy, exponential
 * backoff, and a step with `compensation: none`. */
static const char fuzz_yaml[] =
    "saga: fuzz\n"
    "version: 1\n"
    "description: The definition the record fuzzer decodes against.\n"
    "steps:\n"
    "  - name: a\n"
    "    action: {handler: demo.echo, with: {n: \"${input.n}\"}}\n"
    "    compensation: {handler: demo.flaky, with: {failures: \"${input.comp_failures}\"}}\n"
    "    retry: {max_attempts: 2, initial_delay: 1ms}\n"
    "    compensation_retry: {max_attempts: 3, initial_delay: 1ms}\n"
    "  - name: b\n"
    "    action: {handler: demo.flaky, with: {failures: \"${input.failures}\"}}\n"
    "    compensation: {handler: demo.noop}\n"
    "    retry: {max_attempts: 3, backoff: exponential, initial_delay: 1ms, max_delay: 5ms}\n"
    "  - name: c\n"
    "    action: {handler: demo.echo, with: {done: true, note: \"tab\\there\"}}\n"
    "    compensation: none\n";

static struct {
    FILE *sink;
    uv_loop_t loop;
    saga_engine_t *engine;
    saga_engine_def_t *edef; /* built here: no handlers are resolved */
} F;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        abort();
    }
}

static void setup(void) {
    F.sink = fopen("/dev/null", "w");
    check(F.sink != NULL, "open /dev/null");
    saga_log_set_output(F.sink);
    check(uv_loop_init(&F.loop) == 0, "loop");
    saga_store_t *store = saga_store_memory_new(&F.loop, NULL);
    saga_engine_options_t o = {.store = store, .no_default_plugin_dirs = true,
                               .worker = "fuzz"};
    char err[256];
    F.engine = saga_engine_new(&F.loop, &o, err, sizeof(err));
    check(store != NULL && F.engine != NULL, "engine");
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer("fuzz.yaml", fuzz_yaml, sizeof(fuzz_yaml) - 1, &d);
    if (def == NULL)
        saga_diags_print(&d, stderr);
    saga_diags_close(&d);
    check(def != NULL && def->n_steps == 3, "the fuzz definition loads");
    /* The decoders need the definition only; saga_engine_register() would
     * resolve handlers (dlopen). The fuzzer keeps one reference forever. */
    F.edef = calloc(1, sizeof(*F.edef));
    check(F.edef != NULL, "alloc");
    F.edef->def = def;
    F.edef->refs = 1;
}

/* ---------------------------------------------------------------------- */
/* The input as Redis replies                                              */
/* ---------------------------------------------------------------------- */

typedef struct reply_s {
    redisReply top;
    redisReply *elems;
    redisReply **ptrs;
} reply_t;

/* A string element: an exact-size copy of s[0..n) with 0x1f read as '\n'. */
static void set_string(redisReply *e, const uint8_t *s, size_t n) {
    e->type = REDIS_REPLY_STRING;
    e->len = n;
    e->str = malloc(n ? n : 1);
    check(e->str != NULL, "alloc");
    for (size_t i = 0; i < n; i++)
        e->str[i] = s[i] == 0x1f ? '\n' : (char)s[i];
}

static void reply_init(reply_t *r, size_t cap) {
    memset(r, 0, sizeof(*r));
    r->top.type = REDIS_REPLY_ARRAY;
    r->elems = calloc(cap + 1, sizeof(*r->elems));
    r->ptrs = calloc(cap + 1, sizeof(*r->ptrs));
    check(r->elems != NULL && r->ptrs != NULL, "alloc");
    r->top.element = r->ptrs;
}

static void reply_add(reply_t *r, const uint8_t *s, size_t n) {
    redisReply *e = &r->elems[r->top.elements];
    set_string(e, s, n);
    r->ptrs[r->top.elements++] = e;
}

static void reply_free(reply_t *r) {
    for (size_t i = 0; i < r->top.elements; i++)
        free(r->elems[i].str);
    free(r->elems);
    free(r->ptrs);
}

/* Splits the input into the record's field/value pairs and the history's
 * entries (see the top of the file). */
static void split_input(const uint8_t *data, size_t size, reply_t *rec, reply_t *hist) {
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    reply_init(rec, 2 * lines);
    reply_init(hist, lines);
    bool in_history = false;
    for (size_t at = 0; at < size;) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - data) : size;
        const uint8_t *line = data + at;
        size_t len = end - at;
        at = end + 1;
        if (in_history) {
            reply_add(hist, line, len);
        } else if (len == 2 && line[0] == '-' && line[1] == '-') {
            in_history = true;
        } else {
            const uint8_t *eq = memchr(line, '=', len);
            size_t klen = eq ? (size_t)(eq - line) : len;
            reply_add(rec, line, klen);
            reply_add(rec, eq ? eq + 1 : line + len, eq ? len - klen - 1 : 0);
        }
    }
}

/* ---------------------------------------------------------------------- */
/* The decoders                                                            */
/* ---------------------------------------------------------------------- */

static bool no_control_chars(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* A record field is exactly `text`. */
static bool field_is(const saga_record_t *rec, const char *key, const char *text) {
    size_t len;
    const char *v = saga_record_get(rec, key, &len);
    return v != NULL && len == strlen(text) && memcmp(v, text, len) == 0;
}

static void check_phase(const saga_record_t *rec, const char *key, const saga_ckpt_phase_t *p) {
    check(p->status <= SAGA_CKPT_SKIPPED, "phase status in range");
    check(p->base <= p->attempts, "base <= attempts");
    check(p->retry_at >= 0, "retry_at >= 0");
    size_t len;
    if (saga_record_get(rec, key, &len) != NULL) {
        /* Only what saga_ckpt_phase_format() writes is accepted. */
        char buf[96];
        saga_ckpt_phase_format(buf, sizeof(buf), p);
        check(field_is(rec, key, buf), "a decoded phase is written back as it was");
    } else {
        check(p->status == SAGA_CKPT_PENDING && p->attempts == 0, "an absent phase is pending");
    }
}

static void decode_instance(const saga_record_t *rec) {
    const saga_def_t *def = F.edef->def;
    saga_inst_t *inst = saga__inst_new(F.engine, F.edef, FUZZ_ID);
    check(inst != NULL, "alloc");
    char err[512] = "";
    int rc = saga__ckpt_decode(inst, rec, err, sizeof(err));
    if (rc != 0) {
        check(rc == SAGA_ECORRUPT, "a record that cannot be decoded is SAGA_ECORRUPT");
        check(strncmp(err, "saga " FUZZ_ID ": ", strlen("saga " FUZZ_ID ": ")) == 0,
              "the error names the saga");
        check(strchr(err, '\'') != NULL, "the error names the field");
        check(no_control_chars(err), "the error is one printable line");
    } else {
        check(inst->state < SAGA_STATE_COUNT, "state in range");
        check(field_is(rec, "state", saga_state_name(inst->state)), "state is exact");
        check(inst->stuck_in == SAGA_STATE_RUNNING || inst->stuck_in == SAGA_STATE_COMPENSATING ||
                  (inst->stuck_in == SAGA_STATE_CONFIRMING && def->mode == SAGA_MODE_TCC),
              "stuck_in is running or compensating (or confirming, in a TCC saga)");
        check(inst->state != SAGA_STATE_CONFIRMING || def->mode == SAGA_MODE_TCC,
              "only a TCC saga confirms");
        check(inst->input != NULL, "input");
        char num[24];
        saga_fmt_u64(num, inst->seq);
        check(field_is(rec, "seq", num), "seq is exact");
        for (size_t i = 0; i < def->n_steps; i++) {
            const saga_step_def_t *sd = &def->steps[i];
            const saga__step_t *s = &inst->steps[i];
            char key[SAGA_NAME_MAX + 16];
            snprintf(key, sizeof(key), "act:%s", sd->name);
            check_phase(rec, key, &s->act);
            snprintf(key, sizeof(key), "comp:%s", sd->name);
            check_phase(rec, key, &s->comp);
            check(s->act.status != SAGA_CKPT_SKIPPED, "an action is never skipped");
            if (sd->has_compensation)
                check(s->comp.status != SAGA_CKPT_SKIPPED, "a compensation is skipped only when none");
            else
                check(s->comp.status == SAGA_CKPT_PENDING || s->comp.status == SAGA_CKPT_SKIPPED,
                      "no compensation: nothing to run");
            snprintf(key, sizeof(key), "out:%s", sd->name);
            check((saga_record_get(rec, key, NULL) != NULL) == (s->output != NULL),
                  "output decoded when present");
        }
    }
    saga__inst_free(inst);
}

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static void summarize(const saga_record_t *rec, const saga_def_t *def,
                      const saga_history_entry_t *hist, size_t nhist) {
    json_t *s = saga_summary_build(rec, def, hist, nhist);
    check(s != NULL, "summary");
    json_t *steps = json_object_get(s, "steps");
    check(json_is_array(steps), "steps");
    if (def != NULL)
        check(json_array_size(steps) == def->n_steps, "one entry per step");
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st) {
        /* saga status reads these without checking (cli_ops.c decorate). */
        check(jstr(st, "status") != NULL, "a step's status is a string");
        check(json_is_integer(json_object_get(st, "attempts")), "attempts");
        if (def != NULL)
            check(jstr(st, "name") && strcmp(jstr(st, "name"), def->steps[i].name) == 0,
                  "steps in definition order");
    }
    if (hist != NULL)
        check(json_array_size(json_object_get(s, "history")) == nhist, "history entries");
    saga_summary_print_text(s, F.sink);
    char *text = json_dumps(s, JSON_COMPACT);
    check(text != NULL, "the summary serializes");
    free(text);
    json_decref(s);
}

typedef struct ctx_s {
    const reply_t *rec;
    const saga_history_entry_t *hist;
    size_t nhist;
    bool loaded;
} ctx_t;

static void on_record(int status, const saga_record_t *rec, void *data) {
    ctx_t *c = data;
    c->loaded = true;
    if (c->rec->top.elements == 0) {
        check(status == SAGA_ENOTFOUND && rec == NULL, "no fields: not found");
        return;
    }
    check(status == 0 && rec != NULL && rec->nfields == c->rec->top.elements / 2, "record");
    decode_instance(rec);
    summarize(rec, F.edef->def, c->hist, c->nhist);
    summarize(rec, NULL, NULL, 0); /* its definition is not in the store */
}

/* The store's reply decoders with the store's callbacks around them, as
 * store_redis.c's finish_load/finish_history run them. A refusal always
 * says why. */
static void fuzz_redis_load(const redisReply *r, saga_store_load_cb cb, void *data) {
    saga_record_t rec;
    const char *why = NULL;
    int status = saga_redis_reply_record(r, &rec, &why);
    check(status != SAGA_ESTORE || (why != NULL && why[0] != '\0'), "a refused record says why");
    cb(status, status == 0 ? &rec : NULL, data);
    free(rec.fields);
}

static void fuzz_redis_history(const redisReply *r, saga_store_history_cb cb, void *data) {
    saga_redis_history_t h;
    char why[160] = "";
    int status = saga_redis_reply_history(r, &h, why, sizeof(why));
    check(status != SAGA_ESTORE || why[0] != '\0', "a refused history says why");
    cb(status, status == 0 ? h.events : NULL, h.n, data);
    saga_redis_history_free(&h);
}

/* "...T..:..:..ddd.Z" as saga_iso_time() writes it. */
static void check_time(const char *ts) {
    size_t n = strlen(ts);
    check(n >= 24 && ts[n - 1] == 'Z' && ts[n - 5] == '.' && ts[n - 14] == 'T', "time format");
    for (size_t i = n - 4; i < n - 1; i++)
        check(ts[i] >= '0' && ts[i] <= '9', "milliseconds");
}

/* What `saga history` prints, and the times in it. */
static void print_history(const saga_history_entry_t *h, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char ts[40];
        saga_iso_time(h[i].ts_ms, ts, sizeof(ts));
        check_time(ts);
    }
    saga_history_print_text(h, n, F.sink);
}

static void on_history(int status, const saga_history_entry_t *h, size_t n, void *data) {
    ctx_t *c = data;
    check(status == 0 || status == SAGA_ESTORE, "history status");
    if (status == 0) {
        for (size_t i = 0; i < n; i++) {
            check(h[i].ev.type != NULL && h[i].worker != NULL, "type and worker");
            check(h[i].ev.detail == NULL || strlen(h[i].ev.detail) == h[i].ev.detail_len,
                  "detail length");
            json_t *e = saga_summary_history_entry(&h[i]);
            check(e != NULL, "history entry");
            json_decref(e);
        }
        print_history(h, n);
        c->hist = h;
        c->nhist = n;
    }
    /* The entries are valid during this callback only. */
    fuzz_redis_load(&c->rec->top, on_record, c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (F.engine == NULL)
        setup();
    reply_t rec, hist;
    split_input(data, size, &rec, &hist);
    ctx_t c = {.rec = &rec};
    fuzz_redis_history(&hist.top, on_history, &c);
    check(c.loaded, "the callbacks ran before returning");
    reply_free(&rec);
    reply_free(&hist);
    return 0;
}
