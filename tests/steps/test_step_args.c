/*
 * test_step_args.c -- the `with` helpers shared by the built-in steps.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "step_args.h"

static int dur(const char *json, uint64_t *ms, char *err, size_t errlen) {
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    cr_assert_not_null(v, "%s", json);
    int rc = step_args_duration(v, "x.y", "timeout", ms, err, errlen);
    json_decref(v);
    return rc;
}

Test(step_args, durations) {
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {{"\"250ms\"", 250}, {"\"2s\"", 2000}, {"\"1m\"", 60000},
              {"\"1h\"", 3600000}, {"1500", 1500}, {"\"24h\"", 86400000}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t ms = 0;
        char err[256];
        cr_expect_eq(dur(ok[i].in, &ms, err, sizeof(err)), 0, "%s: %s",
                     ok[i].in, err);
        cr_expect_eq(ms, ok[i].ms, "%s", ok[i].in);
    }
    static const char *const bad[] = {"\"\"", "\"2\"", "\"s\"", "\"2 s\"",
                                      "\"-1s\"", "\"0s\"", "0", "-5",
                                      "\"25h\"", "1.5", "true", "null",
                                      "\"1.5s\"", "\"99999999999999999999ms\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 0;
        char err[256] = "";
        cr_expect_eq(dur(bad[i], &ms, err, sizeof(err)), -EINVAL, "%s", bad[i]);
        cr_expect(strstr(err, "x.y: `timeout`") == err, "%s", err);
    }
}

Test(step_args, format_duration) {
    char b[32];
    step_args_format_duration(250, b, sizeof(b));
    cr_expect_str_eq(b, "250ms");
    step_args_format_duration(2000, b, sizeof(b));
    cr_expect_str_eq(b, "2s");
    step_args_format_duration(1500, b, sizeof(b));
    cr_expect_str_eq(b, "1500ms");
    step_args_format_duration(120000, b, sizeof(b));
    cr_expect_str_eq(b, "2m");
    step_args_format_duration(7200000, b, sizeof(b));
    cr_expect_str_eq(b, "2h");
}

Test(step_args, utf8_and_one_line) {
    char *s = step_text_utf8("ok\xff\xc3\xa9\xed\xa0\x80!", 9, false);
    cr_expect_str_eq(s, "ok\xEF\xBF\xBD\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!");
    free(s);
    s = step_text_utf8("line 1\r\nline 2\n\tend\n\n", 21, true);
    cr_expect_str_eq(s, "line 1 | line 2 |  end");
    free(s);
    s = step_text_utf8("a\0b", 3, false);
    cr_expect_str_eq(s, "a\xEF\xBF\xBD" "b");
    free(s);
    s = step_text_utf8("ends with | bar", 15, true);
    cr_expect_str_eq(s, "ends with | bar");
    free(s);
}

Test(step_args, lists_and_keys) {
    json_t *v = json_loads("[500, 503]", 0, NULL);
    int out[4];
    size_t n = 0;
    char err[256];
    cr_expect_eq(step_args_int_list(v, "h", "retry_status", 100, 599, out, 4,
                                    &n, err, sizeof(err)), 0);
    cr_expect_eq(n, 2);
    cr_expect(step_args_in_list(out, n, 503));
    cr_expect_not(step_args_in_list(out, n, 502));
    json_decref(v);
    v = json_loads("{\"url\":1,\"tiemout\":2}", 0, NULL);
    const char *const known[] = {"url", "timeout", NULL};
    cr_expect_eq(step_args_known_keys(v, known, "h", err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "h: unknown field `tiemout` (known fields: url, "
                          "timeout)");
    json_decref(v);
}

Test(step_args, unsigned_integers_in_range) {
    char err[256];
    uint64_t out = 0;
    json_t *v = json_integer(4096);
    cr_expect_eq(step_args_uint(v, "h", "max_body", 1, 8192, &out, err,
                                sizeof(err)), 0);
    cr_expect_eq(out, 4096);
    cr_expect_eq(step_args_uint(v, "h", "max_body", 1, 100, &out, err,
                                sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "h: `max_body`: 4096 is out of range (1 to 100)");
    cr_expect_eq(out, 4096, "untouched on failure");
    json_decref(v);
    v = json_integer(-1);
    cr_expect_eq(step_args_uint(v, "h", "max_body", 0, 100, &out, err,
                                sizeof(err)), -EINVAL);
    json_decref(v);
    v = json_string("big");
    cr_expect_eq(step_args_uint(v, "h", "max_body", 1, 100, &out, err,
                                sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "h: `max_body`: expected an integer, got a string");
    json_decref(v);
}

Test(step_args, scalars_as_text) {
    char err[256];
    static const char *const cases[][2] = {
        {"\"abc\"", "abc"}, {"12", "12"}, {"12.5", "12.5"},
        {"true", "true"}, {"false", "false"}, {"\"\"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i][0], JSON_DECODE_ANY, NULL);
        char *t = step_args_scalar_text(v, "h", "headers", "X", err, sizeof(err));
        cr_assert_not_null(t, "%s: %s", cases[i][0], err);
        cr_expect_str_eq(t, cases[i][1]);
        free(t);
        json_decref(v);
    }
    json_t *v = json_loads("[1]", 0, NULL);
    cr_expect_null(step_args_scalar_text(v, "h", "env", "PATH", err, sizeof(err)));
    cr_expect_str_eq(err, "h: `env.PATH`: expected a string, got a list");
    json_decref(v);
    v = json_null();
    cr_expect_null(step_args_scalar_text(v, "h", "env", "PATH", err, sizeof(err)));
    cr_expect_str_eq(err, "h: `env.PATH`: expected a string, got null");
}

Test(step_args, type_names_for_messages) {
    static const char *const cases[][2] = {
        {"{}", "a mapping"}, {"[]", "a list"}, {"\"s\"", "a string"},
        {"1", "an integer"}, {"1.5", "a number with a fraction"},
        {"true", "a boolean"}, {"false", "a boolean"}, {"null", "null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i][0], JSON_DECODE_ANY, NULL);
        cr_expect_str_eq(step_args_type_name(v), cases[i][1], "%s", cases[i][0]);
        json_decref(v);
    }
}
