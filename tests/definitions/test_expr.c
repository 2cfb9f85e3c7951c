/*
 * test_expr.c -- ${...} expressions in `with`: typed and in-string values,
 * escaping, render errors, what a compensation may reference, and the
 * checks made at load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "def_testing.h"

/* Loads a saga whose step `a` (a root) has the action `with` given, and
 * whose later steps `b` and `c` exist for references. */
static saga_def_t *load_with(const char *with_yaml)
{
    char y[4096];
    snprintf(y, sizeof(y),
             "saga: s\n"
             "steps:\n"
             "  - name: first\n"
             "    action: {handler: demo.noop}\n"
             "    compensation: none\n"
             "  - name: a\n"
             "    action:\n"
             "      handler: demo.echo\n"
             "      with:\n%s"
             "    compensation: none\n",
             with_yaml);
    return load_ok(y);
}

/* Renders step a's action against input/first's output. */
static char *render_a(saga_def_t *def, const char *input, const char *first_out,
                      char *err)
{
    const char *outs[] = {first_out, NULL};
    saga_render_ctx_t *ctx = make_ctx(input, outs, 2);
    char *text = render_text(def->steps[1].action.with, ctx, err, 256);
    free_ctx(ctx, 2);
    return text;
}

static void expect_render(const char *with_yaml, const char *input,
                          const char *first_out, const char *want)
{
    saga_def_t *def = load_with(with_yaml);
    char err[256] = "";
    char *got = render_a(def, input, first_out, err);
    cr_assert_not_null(got, "render failed: %s", err);
    cr_assert_str_eq(got, want);
    free(got);
    saga_def_free(def);
}

static void expect_render_error(const char *with_yaml, const char *input,
                                const char *first_out, const char *want)
{
    saga_def_t *def = load_with(with_yaml);
    char err[256] = "";
    char *got = render_a(def, input, first_out, err);
    cr_assert_null(got, "render should fail, gave %s", got);
    cr_assert_str_eq(err, want);
    saga_def_free(def);
}

/* ------------------------------------------------------------------------ */
/* Typed and in-string values                                                */
/* ------------------------------------------------------------------------ */

Test(expr, a_whole_string_expression_keeps_the_json_type)
{
    const char *in = "{\"n\": 5, \"f\": 1.5, \"b\": true, \"z\": null, \"s\": \"x\","
                     " \"o\": {\"k\": [1, 2]}}";
    expect_render("        n: ${input.n}\n", in, NULL, "{\"n\":5}");
    expect_render("        f: \"${input.f}\"\n", in, NULL, "{\"f\":1.5}");
    expect_render("        b: ${input.b}\n", in, NULL, "{\"b\":true}");
    expect_render("        z: ${input.z}\n", in, NULL, "{\"z\":null}");
    expect_render("        s: ${input.s}\n", in, NULL, "{\"s\":\"x\"}");
    expect_render("        o: ${input.o}\n", in, NULL, "{\"o\":{\"k\":[1,2]}}");
    expect_render("        all: ${input}\n", "[1]", NULL, "{\"all\":[1]}");
}

Test(expr, the_whole_with_may_be_one_expression)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n  - name: a\n"
                              "    action: {handler: demo.echo, with: '${input}'}\n"
                              "    compensation: none\n");
    saga_render_ctx_t *ctx = make_ctx("{\"x\": [true]}", NULL, 0);
    char err[256];
    char *got = render_text(def->steps[0].action.with, ctx, err, sizeof(err));
    cr_assert_str_eq(got, "{\"x\":[true]}");
    free(got);
    free_ctx(ctx, 0);
    saga_def_free(def);
}

Test(expr, expressions_inside_text_render_as_text)
{
    const char *in = "{\"n\": 5, \"s\": \"abc\", \"o\": {\"k\": [1, \"two\"]}, \"z\": null,"
                     " \"t\": false}";
    expect_render("        m: \"id-${input.n}\"\n", in, NULL, "{\"m\":\"id-5\"}");
    expect_render("        m: \"<${input.s}>\"\n", in, NULL, "{\"m\":\"<abc>\"}");
    expect_render("        m: \"o=${input.o}\"\n", in, NULL, "{\"m\":\"o={\\\"k\\\":[1,\\\"two\\\"]}\"}");
    expect_render("        m: \"${input.z} ${input.t}\"\n", in, NULL, "{\"m\":\"null false\"}");
    expect_render("        m: \"${input.s}${input.n}\"\n", in, NULL, "{\"m\":\"abc5\"}");
    expect_render("        m: ${input.s} and ${input.n}\n", in, NULL, "{\"m\":\"abc and 5\"}");
}

Test(expr, spaces_inside_the_braces_are_ignored)
{
    expect_render("        m: \"${ input.n }\"\n", "{\"n\": 5}", NULL, "{\"m\":5}");
}

Test(expr, saga_id_and_name)
{
    expect_render("        id: ${saga.id}\n        t: \"${saga.name}/${saga.id}\"\n", "{}", NULL,
                  "{\"id\":\"saga-123\",\"t\":\"demo_saga/saga-123\"}");
}

Test(expr, step_outputs_and_array_indexes)
{
    const char *out = "{\"items\": [{\"id\": \"i0\"}, {\"id\": \"i1\"}], \"m\": {\"0\": \"zero\"}}";
    expect_render("        id: ${steps.first.output.items.1.id}\n", "{}", out,
                  "{\"id\":\"i1\"}");
    expect_render("        all: ${steps.first.output}\n", "{}", "42", "{\"all\":42}");
    /* A number segment on an object names a key. */
    expect_render("        z: ${steps.first.output.m.0}\n", "{}", out, "{\"z\":\"zero\"}");
}

Test(expr, escaping_a_dollar_brace)
{
    expect_render("        m: \"$${input.n}\"\n", "{\"n\": 5}", NULL, "{\"m\":\"${input.n}\"}");
    expect_render("        m: \"cost $${x} is ${input.n}\"\n", "{\"n\": 5}", NULL,
                  "{\"m\":\"cost ${x} is 5\"}");
    /* A lone $ and $$ without a brace are literal. */
    expect_render("        m: \"$5 and $$ and $\"\n", "{}", NULL, "{\"m\":\"$5 and $$ and $\"}");
}

Test(expr, nested_values_and_literal_keys)
{
    expect_render("        list: [\"${input.n}\", 2, {deep: \"v${input.n}\"}]\n"
                  "        \"${input.n}\": key-is-literal\n",
                  "{\"n\": 7}", NULL,
                  "{\"${input.n}\":\"key-is-literal\",\"list\":[7,2,{\"deep\":\"v7\"}]}");
}

/* ------------------------------------------------------------------------ */
/* Constant templates                                                        */
/* ------------------------------------------------------------------------ */

Test(expr, a_template_without_expressions_is_constant_text)
{
    saga_def_t *def = load_with("        a: 1\n        b: [x, 2.5, null, true]\n"
                                "        c: \"$${not_an_expr}\"\n");
    const saga_template_t *t = def->steps[1].action.with;
    cr_assert(saga_template_is_constant(t));
    size_t len = 0;
    const char *text = saga_template_constant(t, &len);
    const char *want = "{\"a\":1,\"b\":[\"x\",2.5,null,true],\"c\":\"${not_an_expr}\"}";
    cr_assert_str_eq(text, want);
    cr_assert_eq(len, strlen(want));
    /* Rendering a constant gives the same value, as a fresh copy. */
    char err[256];
    saga_render_ctx_t *ctx = make_ctx(NULL, NULL, 0);
    json_t *v = saga_template_render(t, ctx, err, sizeof(err));
    cr_assert_not_null(v);
    json_object_set_new(v, "a", json_integer(99));
    json_decref(v);
    cr_assert_str_eq(saga_template_constant(t, NULL), want);
    v = saga_template_render(t, ctx, err, sizeof(err));
    cr_assert_eq(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
    free_ctx(ctx, 0);
    saga_def_free(def);
}

Test(expr, an_absent_with_is_constant_null)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                              "    compensation: none\n");
    const saga_template_t *t = def->steps[0].action.with;
    cr_assert_not_null(t);
    cr_assert(saga_template_is_constant(t));
    cr_assert_str_eq(saga_template_constant(t, NULL), "null");
    saga_def_free(def);
}

Test(expr, a_template_with_expressions_is_not_constant)
{
    saga_def_t *def = load_with("        a: 1\n        b: [x, \"${input}\"]\n");
    const saga_template_t *t = def->steps[1].action.with;
    cr_assert_not(saga_template_is_constant(t));
    size_t len = 77;
    cr_assert_null(saga_template_constant(t, &len));
    cr_assert_eq(len, 0);
    saga_def_free(def);
}

/* ------------------------------------------------------------------------ */
/* Render errors                                                             */
/* ------------------------------------------------------------------------ */

Test(expr, render_errors_name_the_expression_and_the_missing_part)
{
    const char *in = "{\"a\": {\"b\": 1}, \"l\": [1, 2], \"s\": \"x\"}";
    expect_render_error("        v: ${input.a.c}\n", in, NULL, "${input.a.c}: no key 'c'");
    expect_render_error("        v: \"x ${input.l.5}\"\n", in, NULL,
                        "${input.l.5}: no index 5 (the array has 2 items)");
    expect_render_error("        v: ${input.l.k}\n", in, NULL,
                        "${input.l.k}: 'k' is not an index into an array");
    expect_render_error("        v: ${input.s.k}\n", in, NULL,
                        "${input.s.k}: cannot look up 'k' in a string");
    expect_render_error("        v: ${steps.first.output}\n", in, NULL,
                        "${steps.first.output}: step 'first' has no output");
    expect_render_error("        v: [\"${steps.first.output.id}\"]\n", in, "{}",
                        "${steps.first.output.id}: no key 'id'");
}

Test(expr, render_without_input_or_saga_id)
{
    saga_def_t *def = load_with("        v: ${input.x}\n        w: ${saga.id}\n");
    saga_render_ctx_t ctx = {NULL, NULL, NULL, NULL};
    char err[256];
    cr_assert_null(saga_template_render(def->steps[1].action.with, &ctx, err, sizeof(err)));
    cr_assert_str_eq(err, "${input.x}: the saga has no input");
    json_t *in = json_pack("{s:i}", "x", 1);
    ctx.input = in;
    cr_assert_null(saga_template_render(def->steps[1].action.with, &ctx, err, sizeof(err)));
    cr_assert_str_eq(err, "${saga.id}: no saga id");
    json_decref(in);
    saga_def_free(def);
}

Test(expr, render_errors_fit_a_small_buffer)
{
    saga_def_t *def = load_with("        v: ${input.some_long_key}\n");
    saga_render_ctx_t *ctx = make_ctx("{}", NULL, 0);
    char err[8];
    cr_assert_null(saga_template_render(def->steps[1].action.with, ctx, err, sizeof(err)));
    cr_assert_str_eq(err, "${input");
    /* No buffer at all is allowed too. */
    cr_assert_null(saga_template_render(def->steps[1].action.with, ctx, NULL, 0));
    free_ctx(ctx, 0);
    saga_def_free(def);
}

/* ------------------------------------------------------------------------ */
/* Compensations and their own step's output                                 */
/* ------------------------------------------------------------------------ */

static const char *COMP_SAGA =
    "saga: s\n"
    "steps:\n"
    "  - name: first\n"
    "    action: {handler: demo.noop}\n"
    "    compensation: none\n"
    "  - name: pay\n"
    "    action: {handler: demo.echo, with: {amount: 5}}\n"
    "    compensation:\n"
    "      handler: demo.echo\n"
    "      with:\n"
    "        refund: ${steps.pay.output.amount}\n"
    "        note: \"refund ${steps.pay.output.amount}\"\n"
    "        from: ${steps.first.output.account}\n";

Test(expr, compensation_self_reference_renders_null_when_the_action_failed)
{
    saga_def_t *def = load_ok(COMP_SAGA);
    const char *outs[] = {"{\"account\": \"acc-1\"}", NULL};
    saga_render_ctx_t *ctx = make_ctx("{}", outs, 2);
    char err[256] = "";
    char *got = render_text(def->steps[1].compensation.with, ctx, err, sizeof(err));
    cr_assert_not_null(got, "%s", err);
    cr_assert_str_eq(got, "{\"from\":\"acc-1\",\"note\":\"refund null\",\"refund\":null}");
    free(got);
    free_ctx(ctx, 2);
    saga_def_free(def);
}

Test(expr, compensation_self_reference_renders_null_when_the_path_is_absent)
{
    saga_def_t *def = load_ok(COMP_SAGA);
    const char *outs[] = {"{\"account\": \"acc-1\"}", "{\"other\": 1}"};
    saga_render_ctx_t *ctx = make_ctx("{}", outs, 2);
    char err[256] = "";
    char *got = render_text(def->steps[1].compensation.with, ctx, err, sizeof(err));
    cr_assert_str_eq(got, "{\"from\":\"acc-1\",\"note\":\"refund null\",\"refund\":null}");
    free(got);
    free_ctx(ctx, 2);
    saga_def_free(def);
}

Test(expr, compensation_self_reference_uses_the_output_when_there_is_one)
{
    saga_def_t *def = load_ok(COMP_SAGA);
    const char *outs[] = {"{\"account\": \"acc-1\"}", "{\"amount\": 5}"};
    saga_render_ctx_t *ctx = make_ctx("{}", outs, 2);
    char err[256] = "";
    char *got = render_text(def->steps[1].compensation.with, ctx, err, sizeof(err));
    cr_assert_str_eq(got, "{\"from\":\"acc-1\",\"note\":\"refund 5\",\"refund\":5}");
    free(got);
    free_ctx(ctx, 2);
    saga_def_free(def);
}

Test(expr, compensation_reference_to_another_step_still_fails_when_missing)
{
    saga_def_t *def = load_ok(COMP_SAGA);
    const char *outs[] = {"{}", NULL};
    saga_render_ctx_t *ctx = make_ctx("{}", outs, 2);
    char err[256] = "";
    cr_assert_null(render_text(def->steps[1].compensation.with, ctx, err, sizeof(err)));
    cr_assert_str_eq(err, "${steps.first.output.account}: no key 'account'");
    free_ctx(ctx, 2);
    saga_def_free(def);
}

/* ------------------------------------------------------------------------ */
/* Checks at load                                                            */
/* ------------------------------------------------------------------------ */

/* Line 9 holds `v:` of step a's action (column 12 is its value). */
static void expect_with_error(const char *value, unsigned column, const char *needle)
{
    char y[1024];
    snprintf(y, sizeof(y),
             "saga: s\n"                                       /* 1 */
             "steps:\n"                                        /* 2 */
             "  - name: first\n"                               /* 3 */
             "    action: {handler: demo.noop}\n"              /* 4 */
             "    compensation: none\n"                        /* 5 */
             "  - name: a\n"                                   /* 6 */
             "    action:\n"                                   /* 7 */
             "      handler: demo.echo\n"                      /* 8 */
             "      with: {v: %s}\n"                           /* 9 */
             "    compensation: none\n"                        /* 10 */
             "  - name: later\n"                               /* 11 */
             "    action: {handler: demo.noop}\n"              /* 12 */
             "    compensation: none\n"                        /* 13 */
             "  - name: side\n"                                /* 14 */
             "    after: []\n"                                 /* 15 */
             "    action: {handler: demo.noop}\n"              /* 16 */
             "    compensation: none\n",                       /* 17 */
             value);
    expect_error(y, 9, column, needle);
}

Test(expr, malformed_expressions_are_refused_at_load)
{
    expect_with_error("\"${}\"", 17, "bad expression '${}': it is empty");
    expect_with_error("\"${input..a}\"", 17, "bad expression '${input..a}': empty path segment");
    expect_with_error("\"${input.a b}\"", 17,
                      "bad expression '${input.a b}': unexpected character ' '");
    expect_with_error("\"x ${input.a\"", 17, "bad expression '${input.a': no closing '}'");
    expect_with_error("\"${input.a[0]}\"", 17, "unexpected character '['");
    expect_with_error("\"${input.${x}}\"", 17, "unexpected character '$'");
}

Test(expr, unknown_roots_are_refused_with_a_suggestion)
{
    expect_with_error("\"${inptu.a}\"", 17,
                      "bad expression '${inptu.a}': unknown root 'inptu' (did you mean 'input'?)");
    expect_with_error("\"${env.HOME}\"", 17,
                      "unknown root 'env' (expected input, steps or saga)");
    expect_with_error("\"${saga.owner}\"", 17, "expected '${saga.id}' or '${saga.name}'");
    expect_with_error("\"${saga.id.x}\"", 17, "expected '${saga.id}' or '${saga.name}'");
    expect_with_error("\"${steps.first}\"", 17,
                      "expected 'steps.NAME.output' followed by an optional path");
    expect_with_error("\"${steps.first.result}\"", 17, "expected 'steps.NAME.output'");
    expect_with_error("\"${steps.9x.output}\"", 17, "'9x' is not a step name");
}

Test(expr, references_to_unknown_steps)
{
    expect_with_error("\"${steps.frist.output}\"", 17,
                      "'${steps.frist.output}' refers to unknown step 'frist' (did you mean 'first'?)");
    expect_with_error("\"${steps.nothing.output}\"", 17, "refers to unknown step 'nothing'");
}

Test(expr, references_to_steps_that_may_not_have_finished)
{
    expect_with_error("\"${steps.later.output}\"", 17,
                      "'${steps.later.output}': step 'later' is not guaranteed to finish before "
                      "step 'a'");
    expect_with_error("\"${steps.side.output}\"", 17,
                      "step 'side' is not guaranteed to finish before step 'a'");
    expect_with_error("\"${steps.a.output}\"", 17,
                      "an action cannot use its own step's output");
}

Test(expr, the_error_points_at_the_string_holding_the_expression)
{
    expect_with_error("\"ok ${input} then ${steps.later.output}\"", 17,
                      "step 'later' is not guaranteed to finish");
}

Test(expr, a_compensation_may_reference_ancestors_and_itself_only)
{
    const char *y =
        "saga: s\n"
        "steps:\n"
        "  - name: first\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: {handler: demo.echo, with: {x: '${steps.second.output}'}}\n"
        "  - name: second\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: {handler: demo.echo, with: {x: '${steps.first.output}'}}\n";
    expect_error(y, 5, 50, "step 'second' is not guaranteed to finish before step 'first'");
    expect_error_count(y, 1);
}

Test(expr, references_through_a_join_are_fine)
{
    saga_def_t *def = load_ok(
        "saga: s\nsteps:\n"
        "  - {name: r, action: {handler: demo.noop}, compensation: none}\n"
        "  - {name: x, after: [r], action: {handler: demo.noop}, compensation: none}\n"
        "  - {name: y, after: [r], action: {handler: demo.noop}, compensation: none}\n"
        "  - name: j\n"
        "    after: [x, y]\n"
        "    action: {handler: demo.echo, with: ['${steps.r.output}', '${steps.x.output}',"
        " '${steps.y.output}']}\n"
        "    compensation: none\n");
    saga_def_free(def);
}

Test(expr, several_bad_expressions_in_one_string_are_all_reported)
{
    const char *y =
        "saga: s\nsteps:\n"
        "  - name: a\n"
        "    action: {handler: demo.echo, with: '${nope} ${steps.zz.output} ${saga.x}'}\n"
        "    compensation: none\n";
    expect_error_count(y, 3);
}

Test(expr, with_is_checked_even_when_the_handler_is_bad)
{
    const char *y =
        "saga: s\nsteps:\n"
        "  - name: a\n"
        "    action: {handler: nodot, with: '${nope}'}\n"
        "    compensation: {with: '${input.$}'}\n";
    expect_error(y, 4, 23, "'handler' must be 'plugin.handler'");
    expect_error(y, 4, 36, "bad expression '${nope}': unknown root 'nope'");
    expect_error(y, 5, 19, "missing required key 'handler'");
    expect_error(y, 5, 26, "bad expression '${input.$}'");
    expect_error_count(y, 4);
}
