/*
 * test_scalar.c -- YAML 1.2 core schema resolution of scalars to JSON.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "scalar.h"

static json_t *resolve(const char *s, bool plain, char *err)
{
    return saga__scalar_resolve(s, strlen(s), plain, err, 256);
}

static void expect(const char *s, const char *json)
{
    char err[256] = "";
    json_t *v = resolve(s, true, err);
    cr_assert_not_null(v, "'%s' did not resolve: %s", s, err);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    cr_assert_str_eq(text, json, "'%s' resolved to %s, expected %s", s, text, json);
    free(text);
    json_decref(v);
}

static void expect_refused(const char *s, const char *needle)
{
    char err[256] = "";
    json_t *v = resolve(s, true, err);
    cr_assert_null(v, "'%s' should be refused", s);
    cr_assert(strstr(err, needle) != NULL, "'%s': reason '%s' lacks '%s'", s, err, needle);
}

Test(scalar, nulls)
{
    expect("", "null");
    expect("~", "null");
    expect("null", "null");
    expect("Null", "null");
    expect("NULL", "null");
    expect("nULL", "\"nULL\"");
}

Test(scalar, booleans_of_the_core_schema_only)
{
    expect("true", "true");
    expect("True", "true");
    expect("TRUE", "true");
    expect("false", "false");
    expect("False", "false");
    expect("FALSE", "false");
    /* YAML 1.1 booleans are strings in 1.2. */
    expect("yes", "\"yes\"");
    expect("no", "\"no\"");
    expect("on", "\"on\"");
    expect("tRUE", "\"tRUE\"");
}

Test(scalar, integers)
{
    expect("0", "0");
    expect("42", "42");
    expect("-17", "-17");
    expect("+5", "5");
    expect("007", "7");
    expect("0x1F", "31");
    expect("0xff", "255");
    expect("0o17", "15");
    expect("9223372036854775807", "9223372036854775807");
    expect("-9223372036854775808", "-9223372036854775808");
    expect("0x7FFFFFFFFFFFFFFF", "9223372036854775807");
    /* Not integers of the core schema: strings. */
    expect("0b101", "\"0b101\"");
    expect("1_000", "\"1_000\"");
    expect("0x", "\"0x\"");
    expect("-0x10", "\"-0x10\"");
    expect("0o8", "\"0o8\"");
}

Test(scalar, integers_out_of_range_are_errors)
{
    expect_refused("9223372036854775808", "does not fit in 64 bits");
    expect_refused("-9223372036854775809", "does not fit in 64 bits");
    expect_refused("0x8000000000000000", "does not fit in 64 bits");
    expect_refused("123456789012345678901234567890123456789012345678901234567890",
                   "...");
}

Test(scalar, reals)
{
    expect("1.5", "1.5");
    expect("-0.25", "-0.25");
    expect(".5", "0.5");
    expect("1.", "1.0");
    expect("1e3", "1000.0");
    expect("2.5E-1", "0.25");
    expect("+1.0", "1.0");
    expect("1e", "\"1e\"");
    expect(".", "\".\"");
    expect("1.2.3", "\"1.2.3\"");
}

Test(scalar, infinities_nan_and_overflow_are_errors)
{
    expect_refused(".inf", "cannot be represented in JSON");
    expect_refused("-.Inf", "cannot be represented in JSON");
    expect_refused("+.INF", "cannot be represented in JSON");
    expect_refused(".nan", "cannot be represented in JSON");
    expect_refused(".NaN", "cannot be represented in JSON");
    expect_refused("1e999", "out of range");
    expect_refused("-1e999", "out of range");
    /* Underflow to a tiny number or zero is fine. */
    expect("1e-999", "0.0");
}

Test(scalar, quoted_scalars_are_always_strings)
{
    const char *words[] = {"null", "true", "42", "1.5", ".inf", "", "~"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        char err[256];
        json_t *v = resolve(words[i], false, err);
        cr_assert(json_is_string(v), "'%s' quoted must be a string", words[i]);
        cr_assert_str_eq(json_string_value(v), words[i]);
        json_decref(v);
    }
}

Test(scalar, other_plain_text_is_a_string)
{
    expect("hello world", "\"hello world\"");
    expect("${input.a}", "\"${input.a}\"");
    expect("demo.echo", "\"demo.echo\"");
    expect("250ms", "\"250ms\"");
}
