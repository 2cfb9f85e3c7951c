/*
 * test_step_call.c -- reading a call's `with` and completing a call with a
 * text (steps/lib/step_call.c), the beginning and the end that the built-in
 * handlers share.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "step_call.h"

/* A host table whose complete() records what it was given: the helper's
 * only contact with the engine is this table. */
static struct {
    int calls;
    saga_call_t *call;
    saga_outcome_t outcome;
    char data[256];
    size_t len;
} got;

static void record_complete(saga_call_t *call, saga_outcome_t outcome,
                            const char *data, size_t len) {
    got.calls++;
    got.call = call;
    got.outcome = outcome;
    got.len = len;
    snprintf(got.data, sizeof(got.data), "%.*s", (int)len, data);
}

static const saga_host_t host = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_host_t),
    .complete = record_complete,
};

static const char *const known[] = {"url", "method", NULL};

static json_t *with(const char *text, const char *const *keys, char *err,
                    size_t errlen) {
    return step_call_with(text, strlen(text), "x.run", keys, err, errlen);
}

Test(step_call, with_a_mapping_of_known_fields) {
    char err[256] = "untouched";
    json_t *w = with("{\"url\":\"http://a\",\"method\":\"GET\"}", known, err,
                     sizeof(err));
    cr_assert_not_null(w, "%s", err);
    cr_expect(json_is_object(w));
    cr_expect_str_eq(json_string_value(json_object_get(w, "url")), "http://a");
    cr_expect_eq(w->refcount, 1, "a new reference, the caller's");
    json_decref(w);
    /* Only `len` bytes are read: the text need not end there. */
    const char *text = "{}garbage";
    w = step_call_with(text, 2, "x.run", known, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    json_decref(w);
}

Test(step_call, any_field_when_no_list_is_given) {
    char err[256];
    json_t *w = with("{\"anything\":1}", NULL, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    json_decref(w);
}

Test(step_call, refuses_what_is_not_a_mapping) {
    static const char *const cases[][2] = {
        {"[1,2]", "x.run: `with` must be a mapping, got a list"},
        {"\"ls\"", "x.run: `with` must be a mapping, got a string"},
        {"7", "x.run: `with` must be a mapping, got an integer"},
        {"null", "x.run: `with` must be a mapping, got null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        cr_expect_null(with(cases[i][0], known, err, sizeof(err)), "%s",
                       cases[i][0]);
        cr_expect_str_eq(err, cases[i][1]);
    }
}

Test(step_call, invalid_json_is_reported_with_its_position) {
    char err[256] = "";
    cr_expect_null(with("{\"url\":\n  tru}", known, err, sizeof(err)));
    cr_expect(strncmp(err, "x.run: `with` is not valid JSON (line 2, column ",
                      48) == 0, "%s", err);
    cr_expect_null(strchr(err, '\n'), "one line: %s", err);
    cr_expect_null(step_call_with(NULL, 0, "x.run", known, err, sizeof(err)));
    cr_expect(strstr(err, "`with` is not valid JSON") != NULL, "%s", err);
}

Test(step_call, names_the_first_unknown_field) {
    char err[256] = "";
    cr_expect_null(with("{\"url\":\"u\",\"shell\":true}", known, err,
                        sizeof(err)));
    cr_expect_str_eq(err, "x.run: unknown field `shell` (known fields: url, "
                          "method)");
}

Test(step_call, a_short_buffer_still_gets_a_terminated_message) {
    char err[12];
    memset(err, 'z', sizeof(err));
    cr_expect_null(with("[]", known, err, sizeof(err)));
    cr_expect_eq(strlen(err), sizeof(err) - 1);
    cr_expect_str_eq(err, "x.run: `wit");
}

Test(step_call, complete_hands_the_text_over) {
    saga_call_t *call = (saga_call_t *)&got; /* any address: opaque */
    memset(&got, 0, sizeof(got));
    step_call_complete(&host, call, SAGA_OUTCOME_BUSINESS, "x.run: no", "x.run");
    cr_expect_eq(got.calls, 1);
    cr_expect_eq(got.call, call);
    cr_expect_eq(got.outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect_eq(got.len, strlen("x.run: no"), "without the NUL");
    cr_expect_str_eq(got.data, "x.run: no");
    step_call_complete(&host, call, SAGA_OUTCOME_OK, "{\"a\":1}", "x.run");
    cr_expect_eq(got.calls, 2);
    cr_expect_eq(got.outcome, SAGA_OUTCOME_OK);
    cr_expect_str_eq(got.data, "{\"a\":1}");
}

Test(step_call, no_text_is_a_technical_out_of_memory) {
    memset(&got, 0, sizeof(got));
    step_call_complete(&host, NULL, SAGA_OUTCOME_OK, NULL, "http.request");
    cr_expect_eq(got.calls, 1);
    cr_expect_eq(got.outcome, SAGA_OUTCOME_TECHNICAL, "never OK without output");
    cr_expect_str_eq(got.data, "http.request: out of memory");
}

Test(step_call, a_failure_message_leaves_as_one_line_of_utf8) {
    memset(&got, 0, sizeof(got));
    step_call_complete(&host, NULL, SAGA_OUTCOME_BUSINESS,
                       "x.run: `env`: \"A=\r\nB\" is bad\tvalue\n", "x.run");
    cr_expect_eq(got.outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect_str_eq(got.data, "x.run: `env`: \"A= | B\" is bad value");
    step_call_complete(&host, NULL, SAGA_OUTCOME_TECHNICAL, "cut \xC3", "x.run");
    cr_expect_eq(got.outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect_str_eq(got.data, "cut \xEF\xBF\xBD", "invalid UTF-8 becomes U+FFFD");
}

Test(step_call, ok_output_is_passed_as_it_is) {
    memset(&got, 0, sizeof(got));
    step_call_complete(&host, NULL, SAGA_OUTCOME_OK, "{\n  \"a\": 1\n}", "x.run");
    cr_expect_eq(got.outcome, SAGA_OUTCOME_OK);
    cr_expect_str_eq(got.data, "{\n  \"a\": 1\n}");
}
