/*
 * test_summary.c -- what saga status and saga run show of a stored record
 * (summary.c), when the record is not what the engine wrote. Several
 * cases came from the record fuzzer (tests/fuzz).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "saga/definition.h"
#include "cli/summary.h"
#include "util/text.h"

/* A record whose values sit in one buffer, each right after the previous
 * one and not NUL-terminated, as store.h allows: a reader that runs past
 * a value reads the next one. */
typedef struct rec_s {
    saga_record_t rec;
    saga_kv_t *kv;
    char *buf;
} rec_t;

static void rec_build(rec_t *r, const char *const *kv) {
    size_t n = 0, bytes = 0;
    while (kv[2 * n] != NULL)
        bytes += strlen(kv[2 * n + 1]), n++;
    r->kv = calloc(n + 1, sizeof(*r->kv));
    r->buf = malloc(bytes + 1);
    cr_assert(r->kv && r->buf);
    char *p = r->buf;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(kv[2 * i + 1]);
        memcpy(p, kv[2 * i + 1], len);
        r->kv[i] = (saga_kv_t){kv[2 * i], strlen(kv[2 * i]), p, len};
        p += len;
    }
    r->rec = (saga_record_t){r->kv, n, NULL};
}

static void rec_free(rec_t *r) {
    free(r->kv);
    free(r->buf);
}

static const char *str(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

/* Found by the fuzzer: strtoll() read `created` past its end (into the
 * next value here, past the allocation under AddressSanitizer). */
Test(summary, created_is_read_within_its_field) {
    rec_t r;
    rec_build(&r, (const char *const[]){"state", "running", "created", "1795500056093",
                                         "seq", "42", NULL});
    json_t *s = saga_summary_build(&r.rec, NULL, NULL, 0);
    cr_assert_str_eq(str(s, "created"), "2026-11-24T06:00:56.093Z");
    json_decref(s);
    rec_free(&r);
}

Test(summary, a_time_that_is_not_a_number_is_left_out) {
    static const char *const bad[] = {"abc", "-1", "17955x", "", "9223372036854775808"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rec_t r;
        rec_build(&r, (const char *const[]){"state", "running", "created", bad[i], NULL});
        json_t *s = saga_summary_build(&r.rec, NULL, NULL, 0);
        cr_assert_null(json_object_get(s, "created"), "created '%s' shown", bad[i]);
        json_decref(s);
        rec_free(&r);
    }
}

/* Milliseconds were printed as "-01" for times before 1970. */
Test(summary, times_before_1970_round_down) {
    char ts[40];
    saga_iso_time(-1, ts, sizeof(ts));
    cr_assert_str_eq(ts, "1969-12-31T23:59:59.999Z");
    saga_iso_time(-1000, ts, sizeof(ts));
    cr_assert_str_eq(ts, "1969-12-31T23:59:59.000Z");
    saga_iso_time(0, ts, sizeof(ts));
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
}

/* A phase field that cannot be read showed as "pending". */
Test(summary, a_malformed_phase_is_shown_as_such) {
    rec_t r;
    rec_build(&r, (const char *const[]){"state", "running", "act:a", "succeeded 1 0 0",
                                         "act:b", "succeeded one 0 0", NULL});
    json_t *s = saga_summary_build(&r.rec, NULL, NULL, 0);
    json_t *steps = json_object_get(s, "steps");
    cr_assert_eq(json_array_size(steps), 2);
    cr_assert_str_eq(str(json_array_get(steps, 0), "status"), "succeeded");
    json_t *b = json_array_get(steps, 1);
    cr_assert_str_eq(str(b, "status"), "malformed");
    cr_assert_str_eq(str(b, "error"), "record field 'act:b' is not "
                                      "'<status> <attempts> <base> <retry_at>'");
    cr_assert_str_eq(str(json_object_get(b, "action"), "status"), "malformed");
    json_decref(s);
    rec_free(&r);
}

/* docs/api.md promised `stuck_in` in the status document and it was never
 * there: the console needs it to know whether a stuck saga can be
 * cancelled. The record keeps the field after a retry: shown only while
 * the saga is stuck. */
Test(summary, stuck_in_is_shown_while_stuck) {
    rec_t r;
    rec_build(&r, (const char *const[]){"state", "stuck", "stuck_in", "compensating", NULL});
    json_t *s = saga_summary_build(&r.rec, NULL, NULL, 0);
    cr_assert_str_eq(str(s, "stuck_in"), "compensating");
    json_decref(s);
    rec_free(&r);
    rec_build(&r, (const char *const[]){"state", "running", "stuck_in", "running", NULL});
    s = saga_summary_build(&r.rec, NULL, NULL, 0);
    cr_assert(json_is_null(json_object_get(s, "stuck_in")));
    json_decref(s);
    rec_free(&r);
}

/* With its definition, each step names the steps it runs after (the
 * console's graph) and each phase that started the arguments it was
 * given, rendered from the start input and the stored outputs. */
Test(summary, steps_carry_their_graph_and_rendered_inputs) {
    static const char yaml[] =
        "saga: trip\n"
        "steps:\n"
        "  - name: a\n"
        "    action: {handler: demo.echo, with: {x: \"${input.x}\"}}\n"
        "    compensation: {handler: demo.echo, with: {undo: \"${steps.a.output.x}\"}}\n"
        "  - name: b\n"
        "    after: []\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: none\n"
        "  - name: c\n"
        "    after: [a, b]\n"
        "    action: {handler: demo.echo, with: {from_a: \"${steps.a.output.x}\", n: 2}}\n"
        "    compensation: none\n";
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_def_t *def = saga_def_load_buffer("trip.yaml", yaml, sizeof(yaml) - 1, &diags);
    cr_assert_not_null(def);
    saga_diags_close(&diags);
    rec_t r;
    rec_build(&r, (const char *const[]){"id", "t-1", "state", "compensating",
                                         "input", "{\"x\": \"<b>7</b>\"}",
                                         "act:a", "succeeded 1 0 0", "out:a", "{\"x\": \"<b>7</b>\"}",
                                         "comp:a", "running 1 0 0",
                                         "act:c", "failed 1 0 0", NULL});
    json_t *s = saga_summary_build(&r.rec, def, NULL, 0);
    cr_assert_str_eq(str(json_object_get(s, "input"), "x"), "<b>7</b>");
    json_t *steps = json_object_get(s, "steps");
    json_t *a = json_array_get(steps, 0), *b = json_array_get(steps, 1),
           *c = json_array_get(steps, 2);
    cr_assert_eq(json_array_size(json_object_get(a, "after")), 0);
    cr_assert_eq(json_array_size(json_object_get(b, "after")), 0);
    json_t *ca = json_object_get(c, "after");
    cr_assert_eq(json_array_size(ca), 2);
    cr_assert_str_eq(json_string_value(json_array_get(ca, 0)), "a");
    cr_assert_str_eq(json_string_value(json_array_get(ca, 1)), "b");
    json_t *ain = json_object_get(json_object_get(a, "action"), "input");
    cr_assert_str_eq(str(ain, "x"), "<b>7</b>");
    json_t *cin = json_object_get(json_object_get(a, "compensation"), "input");
    cr_assert_str_eq(str(cin, "undo"), "<b>7</b>");
    json_t *cc = json_object_get(json_object_get(c, "action"), "input");
    cr_assert_str_eq(str(cc, "from_a"), "<b>7</b>");
    cr_assert_eq(json_integer_value(json_object_get(cc, "n")), 2);
    /* b never started: no input */
    cr_assert_null(json_object_get(json_object_get(b, "action"), "input"));
    json_decref(s);
    rec_free(&r);
    saga_def_free(def);
}

/* Without its definition a record's steps are its act: fields; each one
 * looks its fields up, so their number is capped (no valid saga has
 * more): a record stuffed with them costs linear time. */
Test(summary, steps_listed_from_the_record_are_bounded) {
    size_t n = SAGA_DEF_MAX_STEPS + 500;
    const char **kv = calloc(2 * n + 1, sizeof(*kv));
    char (*keys)[16] = calloc(n, sizeof(*keys));
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "act:s%zu", i);
        kv[2 * i] = keys[i];
        kv[2 * i + 1] = "running 1 0 0";
    }
    rec_t r;
    rec_build(&r, kv);
    json_t *s = saga_summary_build(&r.rec, NULL, NULL, 0);
    cr_assert_eq(json_array_size(json_object_get(s, "steps")), SAGA_DEF_MAX_STEPS);
    json_decref(s);
    rec_free(&r);
    free(keys);
    free(kv);
}

/* What saga_text_put() writes into a memory stream, and its columns. */
static char *text_of(const char *s, size_t len, size_t max, size_t *cols) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    cr_assert_not_null(f);
    *cols = saga_text_put(f, s, len, max);
    fclose(f);
    return buf;
}

Test(summary, stored_text_is_shown_on_one_line_without_control_characters) {
    static const struct {
        const char *in, *out;
        size_t cols;
    } cases[] = {
        {"plain text", "plain text", 10},
        {"a\tb\r\nc", "a\\tb\\r\\nc", 9},
        {"\x1b[2J", "\\x1b[2J", 7},
        {"del\x7f", "del\\x7f", 7},
        {"csi \xc2\x9b" "31m", "csi \\u009b31m", 13},
        {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac", 6}, /* UTF-8: one column each */
        {"back\\slash", "back\\slash", 10},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t cols;
        char *got = text_of(cases[i].in, strlen(cases[i].in), SIZE_MAX, &cols);
        cr_assert_str_eq(got, cases[i].out, "case %zu", i);
        cr_assert_eq(cols, cases[i].cols, "case %zu: %zu columns", i, cols);
        free(got);
    }
    /* A NUL inside a value is a control character like any other. */
    size_t cols;
    char *got = text_of("a\0b", 3, SIZE_MAX, &cols);
    cr_assert_str_eq(got, "a\\x00b");
    free(got);
    /* At most `max` bytes, then "...". */
    got = text_of("0123456789", 10, 4, &cols);
    cr_assert_str_eq(got, "0123...");
    cr_assert_eq(cols, 7);
    free(got);
}

Test(summary, a_padded_column_counts_what_was_written) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    cr_assert_not_null(f);
    saga_text_pad(f, "a\nb", 6);
    fputc('|', f);
    saga_text_pad(f, "longer than the column", 4);
    fputc('|', f);
    fclose(f);
    cr_assert_str_eq(buf, "a\\nb  |longer than the column|");
    free(buf);
}
