/*
 * test_validate.c -- every validation rule of the model, each error with its
 * exact line and column, and what a valid definition holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "def_testing.h"

/* A step that is valid on its own, written at lines N..N+2. */
#define STEP(name) \
    "  - name: " name "\n" \
    "    action: {handler: demo.noop}\n" \
    "    compensation: none\n"

/* ------------------------------------------------------------------------ */
/* A valid definition                                                        */
/* ------------------------------------------------------------------------ */

Test(validate, a_full_definition_fills_the_model)
{
    const char *y =
        "saga: order\n"                                   /* 1 */
        "version: 3\n"                                    /* 2 */
        "description: Create and charge.\n"               /* 3 */
        "recovery: backward\n"                            /* 4 */
        "input:\n"                                        /* 5 */
        "  required: [order_id, amount]\n"                /* 6 */
        "steps:\n"                                        /* 7 */
        "  - name: create\n"                              /* 8 */
        "    action:\n"                                   /* 9 */
        "      handler: demo.echo\n"                      /* 10 */
        "      with: {id: 1}\n"                           /* 11 */
        "    compensation:\n"                             /* 12 */
        "      handler: demo.noop\n"                      /* 13 */
        "  - name: notify\n"                              /* 14 */
        "    action: {handler: demo.echo}\n"              /* 15 */
        "    compensation: none\n";                       /* 16 */
    saga_def_t *def = load_ok(y);
    cr_assert_str_eq(def->name, "order");
    cr_assert_eq(def->version, 3);
    cr_assert_str_eq(def->description, "Create and charge.");
    cr_assert_eq(def->recovery, SAGA_RECOVERY_BACKWARD);
    cr_assert_eq(def->n_required_inputs, 2);
    cr_assert_str_eq(def->required_inputs[0], "order_id");
    cr_assert_str_eq(def->required_inputs[1], "amount");
    cr_assert_eq(def->n_steps, 2);
    cr_assert_str_eq(def->source, "test.yaml");
    cr_assert_eq(def->text_len, strlen(y));
    cr_assert_str_eq(def->text, y);

    const saga_step_def_t *c = &def->steps[0];
    cr_assert_str_eq(c->name, "create");
    cr_assert_eq(c->index, 0);
    cr_assert_eq(c->pos.line, 8);
    cr_assert_eq(c->pos.column, 5);
    cr_assert_str_eq(c->action.handler, "demo.echo");
    cr_assert_str_eq(c->action.plugin, "demo");
    cr_assert_str_eq(c->action.function, "echo");
    cr_assert_eq(c->action.pos.line, 10);
    cr_assert_eq(c->action.pos.column, 16);
    cr_assert(c->has_compensation);
    cr_assert_str_eq(c->compensation.handler, "demo.noop");
    cr_assert_eq(c->compensation.pos.line, 13);
    cr_assert_not_null(c->compensation.with);
    size_t len;
    cr_assert_str_eq(saga_template_constant(c->action.with, &len), "{\"id\":1}");
    cr_assert_eq(len, 8);
    cr_assert_str_eq(saga_template_constant(c->compensation.with, NULL), "null");

    const saga_step_def_t *n = &def->steps[1];
    cr_assert_not(n->has_compensation);
    cr_assert_eq(n->n_after, 1);
    cr_assert_eq(n->after[0], 0);
    cr_assert_eq(saga_def_find_step(def, "notify"), n);
    cr_assert_null(saga_def_find_step(def, "nope"));
    saga_def_free(def);
}

Test(validate, optional_keys_have_their_defaults)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a"));
    cr_assert_eq(def->version, 0);
    cr_assert_null(def->description);
    cr_assert_eq(def->recovery, SAGA_RECOVERY_BACKWARD);
    cr_assert_eq(def->n_required_inputs, 0);
    cr_assert_eq(def->steps[0].timeout_ms, SAGA_DEFAULT_TIMEOUT_MS);
    saga_def_free(def);
}

Test(validate, quoted_and_plain_strings_mean_the_same)
{
    saga_def_t *def = load_ok("\"saga\": 's'\nsteps:\n"
                              "  - name: \"a\"\n"
                              "    action: {handler: 'demo.noop'}\n"
                              "    compensation: \"none\"\n");
    cr_assert_str_eq(def->name, "s");
    cr_assert_not(def->steps[0].has_compensation);
    saga_def_free(def);
}

/* ------------------------------------------------------------------------ */
/* Top level                                                                 */
/* ------------------------------------------------------------------------ */

Test(validate, top_level_must_be_a_mapping)
{
    expect_error("- a\n- b\n", 1, 1,
                 "a saga definition must be a mapping with 'saga' and 'steps', found a sequence");
    expect_error("just text\n", 1, 1, "found a string ('just text')");
}

Test(validate, unknown_top_level_key_with_suggestion)
{
    expect_error("saga: s\nstesp:\n" STEP("a"), 2, 1, "unknown key 'stesp' (did you mean 'steps'?)");
    expect_error("saga: s\nversoin: 1\nsteps:\n" STEP("a"), 2, 1,
                 "unknown key 'versoin' (did you mean 'version'?)");
}

Test(validate, unknown_top_level_key_without_suggestion_lists_the_keys)
{
    expect_error("saga: s\nowner: me\nsteps:\n" STEP("a"), 2, 1,
                 "unknown key 'owner' (expected 'saga', 'version', 'description', "
                 "'mode', 'recovery', 'retention', 'defaults', 'input' or 'steps')");
}

Test(validate, missing_saga_and_steps)
{
    expect_error("version: 1\nsteps:\n" STEP("a"), 1, 1, "missing required key 'saga'");
    expect_error("\n\nsaga: s\n", 3, 1, "missing required key 'steps'");
}

Test(validate, saga_name_must_be_an_identifier)
{
    expect_error("saga: 9lives\nsteps:\n" STEP("a"), 1, 7,
                 "'saga' must be a name made of letters, digits, '_' and '-'");
    expect_error("saga: my saga\nsteps:\n" STEP("a"), 1, 7, "found 'my saga'");
    expect_error("saga: -x\nsteps:\n" STEP("a"), 1, 7, "not starting with a digit or '-'");
    expect_error("saga: 42\nsteps:\n" STEP("a"), 1, 7, "'saga' must be a name, found an integer (42)");
    expect_error("saga: [a]\nsteps:\n" STEP("a"), 1, 7, "'saga' must be a name, found a sequence");
    expect_error("saga:\nsteps:\n" STEP("a"), 1, 6, "'saga' must be a name, found null");
}

Test(validate, identifiers_are_at_most_128_characters)
{
    char y[512];
    char name[130];
    memset(name, 'n', 128);
    name[128] = '\0';
    snprintf(y, sizeof(y), "saga: %s\nsteps:\n" STEP("a"), name);
    saga_def_t *def = load_ok(y);
    saga_def_free(def);
    memset(name, 'n', 129);
    name[129] = '\0';
    snprintf(y, sizeof(y), "saga: %s\nsteps:\n" STEP("a"), name);
    expect_error(y, 1, 7, "'saga' is longer than 128 characters");
}

Test(validate, identifiers_accept_underscore_dash_and_digits)
{
    saga_def_t *def = load_ok("saga: _My-saga_2\nsteps:\n" STEP("step-1_b"));
    cr_assert_str_eq(def->steps[0].name, "step-1_b");
    saga_def_free(def);
}

Test(validate, version_must_be_a_non_negative_integer)
{
    expect_error("saga: s\nversion: one\nsteps:\n" STEP("a"), 2, 10,
                 "'version' must be an integer from 0 to 9223372036854775807, found a string ('one')");
    expect_error("saga: s\nversion: -1\nsteps:\n" STEP("a"), 2, 10, "found an integer (-1)");
    expect_error("saga: s\nversion: 1.5\nsteps:\n" STEP("a"), 2, 10, "found a number (1.5)");
    expect_error("saga: s\nversion: \"2\"\nsteps:\n" STEP("a"), 2, 10, "found a string ('2')");
}

Test(validate, description_must_be_a_string)
{
    expect_error("saga: s\ndescription: 12\nsteps:\n" STEP("a"), 2, 14,
                 "'description' must be a string, found an integer (12)");
    expect_error("saga: s\ndescription: {a: 1}\nsteps:\n" STEP("a"), 2, 14,
                 "'description' must be a string, found a mapping");
}

Test(validate, recovery_is_backward_or_forward)
{
    expect_error("saga: s\nrecovery: forwrad\nsteps:\n" STEP("a"), 2, 11,
                 "'recovery' must be 'backward' or 'forward', found 'forwrad' (did you mean 'forward'?)");
    expect_error("saga: s\nrecovery: sideways\nsteps:\n" STEP("a"), 2, 11,
                 "'recovery' must be 'backward' or 'forward', found a string ('sideways')");
    expect_error("saga: s\nrecovery: true\nsteps:\n" STEP("a"), 2, 11, "found a boolean (true)");
}

/* ------------------------------------------------------------------------ */
/* defaults and input                                                        */
/* ------------------------------------------------------------------------ */

Test(validate, defaults_must_be_a_mapping_of_known_keys)
{
    expect_error("saga: s\ndefaults: 5s\nsteps:\n" STEP("a"), 2, 11,
                 "'defaults' must be a mapping, found a string ('5s')");
    expect_error("saga: s\ndefaults:\n  timeuot: 5s\nsteps:\n" STEP("a"), 3, 3,
                 "unknown key 'timeuot' (did you mean 'timeout'?)");
    expect_error("saga: s\ndefaults:\n  retries: {}\nsteps:\n" STEP("a"), 3, 3,
                 "unknown key 'retries' (did you mean 'retry'?)");
}

Test(validate, input_required_is_a_list_of_distinct_keys)
{
    expect_error("saga: s\ninput: [a]\nsteps:\n" STEP("a"), 2, 8,
                 "'input' must be a mapping, found a sequence");
    expect_error("saga: s\ninput:\n  requried: [a]\nsteps:\n" STEP("a"), 3, 3,
                 "unknown key 'requried' (did you mean 'required'?)");
    expect_error("saga: s\ninput:\n  required: a\nsteps:\n" STEP("a"), 3, 13,
                 "'required' must be a sequence, found a string ('a')");
    expect_error("saga: s\ninput:\n  required: [a, 1]\nsteps:\n" STEP("a"), 3, 17,
                 "each entry of 'required' must be a string, found an integer (1)");
    expect_error("saga: s\ninput:\n  required: [a, b, a]\nsteps:\n" STEP("a"), 3, 20,
                 "'a' is listed twice in 'required'");
    expect_error("saga: s\ninput:\n  required: [a, '']\nsteps:\n" STEP("a"), 3, 17,
                 "each entry of 'required' must not be empty");
}

/* ------------------------------------------------------------------------ */
/* steps                                                                     */
/* ------------------------------------------------------------------------ */

Test(validate, steps_must_be_a_non_empty_list)
{
    expect_error("saga: s\nsteps: {a: 1}\n", 2, 8, "'steps' must be a sequence, found a mapping");
    expect_error("saga: s\nsteps: []\n", 2, 8, "'steps' must hold at least one step");
    expect_error("saga: s\nsteps:\n", 2, 7, "'steps' must be a sequence, found null");
}

Test(validate, at_most_1024_steps)
{
    size_t n = SAGA_DEF_MAX_STEPS + 1;
    size_t per = 80;
    char *y = malloc(64 + n * per);
    cr_assert_not_null(y);
    size_t o = (size_t)sprintf(y, "saga: s\nsteps:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(y + o, "  - {name: s%zu, action: {handler: demo.noop}, compensation: none}\n", i);
    expect_error(y, 3, 3, "too many steps (1025; at most 1024)");

    /* Exactly 1024 is fine: cut the last line. */
    y[o - 1] = '\0';
    char *last = strrchr(y, '\n');
    *last = '\0';
    saga_def_t *def = load_ok(y);
    cr_assert_eq(def->n_steps, 1024);
    saga_def_free(def);
    free(y);
}

Test(validate, each_step_must_be_a_mapping)
{
    expect_error("saga: s\nsteps:\n  - just_a_name\n", 3, 5,
                 "each step must be a mapping, found a string ('just_a_name')");
}

Test(validate, unknown_step_key_suggests_the_near_one)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    retyr: {max_attempts: 2}\n", 6, 5,
                 "unknown key 'retyr' (did you mean 'retry'?)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    compensaton_retry: {}\n", 6, 5,
                 "unknown key 'compensaton_retry' (did you mean 'compensation_retry'?)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    afer: []\n", 6, 5,
                 "unknown key 'afer' (did you mean 'after'?)");
}

Test(validate, step_name_is_required_and_an_identifier)
{
    expect_error("saga: s\nsteps:\n  - action: {handler: demo.noop}\n    compensation: none\n",
                 3, 5, "missing required key 'name'");
    expect_error("saga: s\nsteps:\n" STEP("book flight"), 3, 11,
                 "a step name must be a name made of letters, digits, '_' and '-'");
    expect_error("saga: s\nsteps:\n" STEP("7up"), 3, 11, "found '7up'");
}

Test(validate, duplicate_step_names)
{
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("b") STEP("a"), 9, 11,
                 "duplicate step name 'a' (first used at line 3)");
}

Test(validate, action_is_required_and_a_mapping_with_a_handler)
{
    expect_error("saga: s\nsteps:\n  - name: a\n    compensation: none\n", 3, 5,
                 "missing required key 'action'");
    expect_error("saga: s\nsteps:\n  - name: a\n    action: demo.noop\n    compensation: none\n",
                 4, 13, "'action' must be a mapping, found a string ('demo.noop')");
    expect_error("saga: s\nsteps:\n  - name: a\n    action: {with: 1}\n    compensation: none\n",
                 4, 13, "missing required key 'handler'");
    expect_error("saga: s\nsteps:\n  - name: a\n    action:\n      handler: demo.noop\n"
                 "      wiht: 1\n    compensation: none\n",
                 6, 7, "unknown key 'wiht' (did you mean 'with'?)");
}

Test(validate, handler_is_plugin_dot_handler)
{
    const char *bad[] = {"demoecho", "demo.", ".echo", "demo.echo.x", "1demo.echo",
                         "demo.e cho", "demo..echo"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char y[256];
        snprintf(y, sizeof(y), "saga: s\nsteps:\n  - name: a\n    action: {handler: '%s'}\n"
                 "    compensation: none\n", bad[i]);
        char needle[128];
        snprintf(needle, sizeof(needle), "'handler' must be 'plugin.handler' (two names joined "
                 "by a dot, like 'demo.echo'), found '%s'", bad[i]);
        expect_error(y, 4, 23, needle);
    }
    expect_error("saga: s\nsteps:\n  - name: a\n    action: {handler: 3}\n    compensation: none\n",
                 4, 23, "'handler' must be a string, found an integer (3)");
}

Test(validate, compensation_is_a_call_or_none)
{
    expect_error("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                 "    compensation: nothing\n",
                 5, 19, "'compensation' must be a mapping with 'handler' (and optional 'with'), "
                 "or 'none'; found a string ('nothing')");
    expect_error("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                 "    compensation:\n",
                 5, 18, "found null");
    expect_error("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                 "    compensation: {with: 1}\n",
                 5, 19, "missing required key 'handler'");
    expect_error("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                 "    compensation: {handler: nope}\n",
                 5, 29, "'handler' must be 'plugin.handler'");
}

Test(validate, backward_recovery_needs_a_compensation_or_none)
{
    expect_error("saga: s\nsteps:\n  - name: pay\n    action: {handler: demo.noop}\n", 3, 5,
                 "step 'pay' has no compensation; add one or write `compensation: none`");
}

Test(validate, forward_recovery_makes_compensation_optional)
{
    saga_def_t *def = load_ok("saga: s\nrecovery: forward\nsteps:\n"
                              "  - name: a\n    action: {handler: demo.noop}\n"
                              "  - name: b\n    action: {handler: demo.noop}\n"
                              "    compensation: {handler: demo.noop}\n");
    cr_assert_eq(def->recovery, SAGA_RECOVERY_FORWARD);
    cr_assert_not(def->steps[0].has_compensation);
    cr_assert(def->steps[1].has_compensation);
    saga_def_free(def);
}

/* ------------------------------------------------------------------------ */
/* after                                                                     */
/* ------------------------------------------------------------------------ */

Test(validate, after_must_be_a_list_of_step_names)
{
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("b") "    after: a\n", 9, 12,
                 "'after' must be a sequence, found a string ('a')");
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("b") "    after: [a, 3]\n", 9, 16,
                 "each entry of 'after' must be a string, found an integer (3)");
}

Test(validate, after_names_an_unknown_step)
{
    expect_error("saga: s\nsteps:\n" STEP("reserve") STEP("b") "    after: [reserv]\n", 9, 13,
                 "'after' names unknown step 'reserv' (did you mean 'reserve'?)");
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("b") "    after: [zzz]\n", 9, 13,
                 "'after' names unknown step 'zzz'");
}

Test(validate, a_step_cannot_come_after_itself)
{
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("b") "    after: [a, b]\n", 9, 16,
                 "step 'b' cannot come after itself");
}

Test(validate, a_step_listed_twice_in_after)
{
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("b") "    after: [a, a]\n", 9, 16,
                 "'a' is listed twice in 'after'");
}

Test(validate, cycles_are_named)
{
    /* a waits for c, b (implicitly) for a, c (implicitly) for b. */
    expect_error("saga: s\nsteps:\n" STEP("a") "    after: [c]\n" STEP("b") STEP("c"), 6, 13,
                 "cycle in step graph: a -> b -> c -> a");
    /* Two independent cycles are both reported. */
    const char *y = "saga: s\nsteps:\n"
                    STEP("a") "    after: [b]\n"     /* 3..6 */
                    STEP("b") "    after: [a]\n"     /* 7..10 */
                    STEP("c") "    after: [d]\n"     /* 11..14 */
                    STEP("d") "    after: [c]\n";    /* 15..18 */
    expect_error(y, 6, 13, "cycle in step graph: a -> b -> a");
    expect_error(y, 14, 13, "cycle in step graph: c -> d -> c");
    expect_error_count(y, 2);
}

/* ------------------------------------------------------------------------ */
/* Durations and retry values                                                */
/* ------------------------------------------------------------------------ */

Test(validate, bad_durations)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    timeout: 30\n", 6, 14,
                 "'timeout' must be a duration such as '250ms', '2s', '1m', '1h' or '1m30s', "
                 "found an integer (30) (add a unit)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    timeout: 1.5s\n", 6, 14,
                 "found a string ('1.5s')");
    expect_error("saga: s\nsteps:\n" STEP("a") "    timeout: 25h\n", 6, 14,
                 "'timeout' is longer than the 24h limit ('25h')");
    expect_error("saga: s\nsteps:\n" STEP("a") "    timeout: 0s\n", 6, 14,
                 "'timeout' must be more than 0");
    expect_error("saga: s\ndefaults: {timeout: 0}\nsteps:\n" STEP("a"), 2, 21,
                 "'timeout' must be more than 0");
}

Test(validate, retry_must_be_a_mapping_of_known_keys)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: 3\n", 6, 12,
                 "'retry' must be a mapping, found an integer (3)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    compensation_retry: [1]\n", 6, 25,
                 "'compensation_retry' must be a mapping, found a sequence");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {max_attempt: 3}\n", 6, 13,
                 "unknown key 'max_attempt' (did you mean 'max_attempts'?)");
}

Test(validate, bad_retry_values)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {max_attempts: 0}\n", 6, 27,
                 "'max_attempts' must be an integer from 1 to 1000000, found an integer (0)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {max_attempts: 1000001}\n", 6, 27,
                 "found an integer (1000001)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {max_attempts: many}\n", 6, 27,
                 "found a string ('many')");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {backoff: linear}\n", 6, 22,
                 "'backoff' must be 'fixed' or 'exponential', found a string ('linear')");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {backoff: exponentail}\n", 6, 22,
                 "(did you mean 'exponential'?)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {jitter: half}\n", 6, 21,
                 "'jitter' must be 'none', 'full' or 'equal', found a string ('half')");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {jitter: ~}\n", 6, 21, "found null");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {multiplier: 0.5}\n", 6, 25,
                 "'multiplier' must be a number from 1 to 1000, found a number (0.5)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {multiplier: 1001}\n", 6, 25,
                 "found an integer (1001)");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {multiplier: x2}\n", 6, 25,
                 "found a string ('x2')");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {initial_delay: soon}\n", 6, 28,
                 "'initial_delay' must be a duration");
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {max_delay: 48h}\n", 6, 24,
                 "'max_delay' is longer than the 24h limit");
}

Test(validate, zero_delays_are_allowed)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a")
                              "    retry: {initial_delay: 0, max_delay: 0ms, backoff: fixed}\n");
    cr_assert_eq(def->steps[0].retry.initial_delay_ms, 0);
    cr_assert_eq(def->steps[0].retry.max_delay_ms, 0);
    saga_def_free(def);
}

Test(validate, max_delay_must_not_be_less_than_initial_delay)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {initial_delay: 2s, max_delay: 1s}\n",
                 6, 43, "'max_delay' (1s) must not be less than 'initial_delay' (2s)");
    /* Against the built-in max_delay (30s), reported at initial_delay. */
    expect_error("saga: s\nsteps:\n" STEP("a") "    retry: {initial_delay: 1m}\n", 6, 28,
                 "'max_delay' (30s) must not be less than 'initial_delay' (1m)");
    /* A step's max_delay below the defaults' initial_delay. */
    expect_error("saga: s\ndefaults:\n  retry: {initial_delay: 5s, max_delay: 1m}\nsteps:\n"
                 STEP("a") "    retry: {max_delay: 1s}\n", 8, 24,
                 "'max_delay' (1s) must not be less than 'initial_delay' (5s)");
    /* In defaults, reported once, not once per step. */
    const char *y = "saga: s\ndefaults:\n  compensation_retry: {initial_delay: 2m}\nsteps:\n"
                    STEP("a") STEP("b");
    expect_error(y, 3, 39, "'max_delay' (30s) must not be less than 'initial_delay' (2m)");
    expect_error_count(y, 1);
}

/* ------------------------------------------------------------------------ */
/* All errors at once                                                        */
/* ------------------------------------------------------------------------ */

Test(validate, every_error_is_reported_in_one_load)
{
    const char *y =
        "saga: 1bad\n"                              /* 1: bad identifier */
        "recovery: backwards\n"                     /* 2: bad enum */
        "steps:\n"
        "  - name: a\n"                             /* 4: no compensation */
        "    action: {handler: demo}\n"             /* 5: bad handler */
        "    timeout: 5\n"                          /* 6: no unit */
        "  - name: b\n"
        "    action: {handler: demo.noop}\n"
        "    compensation: none\n"
        "    after: [x]\n";                         /* 10: unknown step */
    expect_error(y, 1, 7, "'saga' must be a name");
    expect_error(y, 2, 11, "did you mean 'backward'");
    expect_error(y, 4, 5, "step 'a' has no compensation");
    expect_error(y, 5, 23, "'handler' must be 'plugin.handler'");
    expect_error(y, 6, 14, "'timeout' must be a duration");
    expect_error(y, 10, 13, "'after' names unknown step 'x'");
    expect_error_count(y, 6);
}

/* ------------------------------------------------------------------------ */
/* TCC sagas (mode: tcc)                                                     */
/* ------------------------------------------------------------------------ */

/* A TCC step that is valid on its own, written at lines N..N+3. */
#define TCC_STEP(name) \
    "  - name: " name "\n" \
    "    try: {handler: demo.echo}\n" \
    "    confirm: {handler: demo.noop}\n" \
    "    cancel: {handler: demo.noop}\n"

Test(validate, tcc_mode_fills_the_three_phases)
{
    const char *y =
        "saga: order\n"                                             /* 1 */
        "mode: tcc\n"                                               /* 2 */
        "defaults:\n"                                               /* 3 */
        "  cancel_retry: {max_attempts: 7}\n"                       /* 4 */
        "steps:\n"                                                  /* 5 */
        "  - name: account\n"                                       /* 6 */
        "    try: {handler: demo.echo, with: {n: 1}}\n"             /* 7 */
        "    confirm: {handler: demo.echo, with: '${steps.stock.output}'}\n"
        "    cancel: {handler: demo.noop, with: '${steps.account.output}'}\n"
        "    confirm_retry: {max_attempts: 9}\n"                    /* 10 */
        "  - name: stock\n"
        "    after: []\n"
        "    try: {handler: demo.echo}\n"
        "    confirm: {handler: demo.noop}\n"
        "    cancel: {handler: demo.noop}\n";
    saga_def_t *def = load_ok(y);
    cr_assert_eq(def->mode, SAGA_MODE_TCC);
    cr_assert_eq(def->pivot, SIZE_MAX);
    const saga_step_def_t *a = &def->steps[0];
    cr_assert_str_eq(a->action.handler, "demo.echo");
    cr_assert_str_eq(a->confirm.handler, "demo.echo");
    cr_assert_eq(a->confirm.pos.line, 8);
    cr_assert(a->has_compensation);
    cr_assert_str_eq(a->compensation.handler, "demo.noop");
    cr_assert_eq(a->confirm_retry.max_attempts, 9);
    cr_assert_eq(a->compensation_retry.max_attempts, 7);
    cr_assert_eq(a->retry.max_attempts, SAGA_DEFAULT_ACTION_ATTEMPTS);
    /* A Confirm must not give up: its default budget is (nearly) endless. */
    cr_assert_eq(def->steps[1].confirm_retry.max_attempts, SAGA_DEFAULT_CONFIRM_ATTEMPTS);
    cr_assert_eq(def->steps[1].n_after, 0);
    saga_def_free(def);
}

Test(validate, mode_is_saga_or_tcc)
{
    saga_def_t *def = load_ok("saga: s\nmode: saga\nsteps:\n" STEP("a"));
    cr_assert_eq(def->mode, SAGA_MODE_SAGA);
    saga_def_free(def);
    expect_error("saga: s\nmode: tc\nsteps:\n" TCC_STEP("a"), 2, 7,
                 "'mode' must be 'saga' or 'tcc', found 'tc' (did you mean 'tcc'?)");
}

Test(validate, tcc_refuses_saga_keys_with_a_hint)
{
    expect_error("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a")
                 "    action: {handler: demo.noop}\n", 8, 5,
                 "'action' is not allowed in a TCC saga (mode: tcc): a TCC step has "
                 "'try', 'confirm' and 'cancel'; write 'try'");
    expect_error("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a")
                 "    compensation: none\n", 8, 5,
                 "'compensation' is not allowed in a TCC saga (mode: tcc): a TCC step "
                 "is undone by its 'cancel'; write 'cancel'");
    expect_error("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a")
                 "    pivot: true\n", 8, 5,
                 "'pivot' is not allowed in a TCC saga (mode: tcc)");
    expect_error("saga: s\nmode: tcc\nrecovery: forward\nsteps:\n" TCC_STEP("a"), 3, 1,
                 "'recovery' is not allowed in a TCC saga (mode: tcc)");
    expect_error("saga: s\nmode: tcc\ndefaults:\n  compensation_retry: {}\nsteps:\n"
                 TCC_STEP("a"), 4, 3, "write 'cancel_retry'");
}

Test(validate, tcc_needs_every_phase)
{
    expect_error("saga: s\nmode: tcc\nsteps:\n"
                 "  - name: pay\n"
                 "    try: {handler: demo.noop}\n"
                 "    cancel: {handler: demo.noop}\n", 4, 5,
                 "step 'pay' has no 'confirm': in a TCC saga (mode: tcc) every step "
                 "has 'try', 'confirm' and 'cancel'");
    expect_error("saga: s\nmode: tcc\nsteps:\n"
                 "  - name: pay\n"
                 "    try: {handler: demo.noop}\n"
                 "    confirm: {handler: demo.noop}\n", 4, 5, "step 'pay' has no 'cancel'");
    expect_error("saga: s\nmode: tcc\nsteps:\n"
                 "  - name: pay\n"
                 "    confirm: {handler: demo.noop}\n"
                 "    cancel: {handler: demo.noop}\n", 4, 5, "step 'pay' has no 'try'");
    expect_error("saga: s\nmode: tcc\nsteps:\n"
                 "  - name: pay\n"
                 "    try: {handler: demo.noop}\n"
                 "    confirm: none\n"
                 "    cancel: {handler: demo.noop}\n", 6, 14,
                 "'confirm' must be a mapping, found a string ('none')");
}

Test(validate, tcc_keys_are_refused_in_a_saga)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    try: {handler: demo.noop}\n", 6, 5,
                 "'try' is not allowed in a saga: 'try' is a phase of TCC sagas: add "
                 "`mode: tcc` at the top, or write 'action'");
    expect_error("saga: s\nsteps:\n" STEP("a") "    confirm: {handler: demo.noop}\n", 6, 5,
                 "'confirm' is not allowed in a saga");
    expect_error("saga: s\nsteps:\n" STEP("a") "    cancel_retry: {}\n", 6, 5,
                 "or write 'compensation_retry'");
}

Test(validate, tcc_templates_confirm_sees_every_try_output)
{
    /* A Try may use only its ancestors' outputs, a Confirm any. */
    expect_error("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a")
                 "  - name: b\n    after: []\n"
                 "    try: {handler: demo.noop, with: '${steps.a.output}'}\n"
                 "    confirm: {handler: demo.noop, with: '${steps.a.output}'}\n"
                 "    cancel: {handler: demo.noop}\n", 10, 37,
                 "step 'a' is not guaranteed to finish before step 'b'");
    expect_error_count("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a")
                       "  - name: b\n    after: []\n"
                       "    try: {handler: demo.noop, with: '${steps.a.output}'}\n"
                       "    confirm: {handler: demo.noop, with: '${steps.a.output}'}\n"
                       "    cancel: {handler: demo.noop}\n", 1);
}

/* ------------------------------------------------------------------------ */
/* Pivot steps                                                               */
/* ------------------------------------------------------------------------ */

Test(validate, a_pivot_with_steps_before_and_after)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n"
                              "  - name: reserve\n"
                              "    action: {handler: demo.noop}\n"
                              "    compensation: {handler: demo.noop}\n"
                              "  - name: charge\n"
                              "    pivot: true\n"
                              "    action: {handler: demo.noop}\n"
                              "    compensation: none\n"
                              "  - name: ship\n"
                              "    action: {handler: demo.noop}\n"
                              "  - name: mail\n"
                              "    after: [charge]\n"
                              "    action: {handler: demo.noop}\n"
                              "    compensation: none\n");
    cr_assert_eq(def->pivot, 1);
    cr_assert(def->steps[1].pivot);
    cr_assert_not(def->steps[0].pivot);
    cr_assert_not(def->steps[2].has_compensation);
    cr_assert_not(def->steps[3].has_compensation);
    saga_def_free(def);
}

Test(validate, pivot_false_is_no_pivot)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a") "    pivot: false\n");
    cr_assert_eq(def->pivot, SIZE_MAX);
    saga_def_free(def);
    expect_error("saga: s\nsteps:\n" STEP("a") "    pivot: yes please\n", 6, 12,
                 "'pivot' must be true or false, found a string ('yes please')");
}

Test(validate, at_most_one_pivot)
{
    expect_error("saga: s\nsteps:\n" STEP("a") "    pivot: true\n" STEP("b")
                 "    pivot: true\n", 10, 12,
                 "step 'b' is a second pivot (the first is 'a' at line 3): a saga has at most one");
}

Test(validate, a_pivot_needs_backward_recovery)
{
    expect_error("saga: s\nrecovery: forward\nsteps:\n" STEP("a") "    pivot: true\n", 7, 12,
                 "step 'a' cannot be a pivot in a saga with `recovery: forward`");
}

Test(validate, every_step_runs_before_or_after_the_pivot)
{
    expect_error("saga: s\nsteps:\n" STEP("a") STEP("p") "    pivot: true\n"
                 STEP("beside") "    after: [a]\n", 10, 5,
                 "step 'beside' runs beside the pivot step 'p' (neither before nor after "
                 "it); list 'p' in the 'after' of 'beside', or 'beside' in the 'after' of 'p'");
}

Test(validate, steps_after_the_pivot_take_no_compensation)
{
    expect_error("saga: s\nsteps:\n" STEP("p") "    pivot: true\n"
                 "  - name: ship\n"
                 "    action: {handler: demo.noop}\n"
                 "    compensation: {handler: demo.noop}\n", 9, 5,
                 "step 'ship' comes after the pivot step 'p', so it is never compensated");
    /* Before the pivot, a compensation (or none) is still required. */
    expect_error("saga: s\nsteps:\n"
                 "  - name: a\n    action: {handler: demo.noop}\n"
                 STEP("p") "    pivot: true\n", 3, 5, "step 'a' has no compensation");
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                 */
/* ------------------------------------------------------------------------ */

Test(validate, retention_by_outcome)
{
    saga_def_t *def = load_ok("saga: s\nretention: {completed: 1d, compensated: 30d12h}\n"
                              "steps:\n" STEP("a"));
    cr_assert_eq(def->retention_completed_ms, 86400000ull);
    cr_assert_eq(def->retention_compensated_ms, 30 * 86400000ull + 12 * 3600000ull);
    saga_def_free(def);
    def = load_ok("saga: s\nretention: {compensated: 2h}\nsteps:\n" STEP("a"));
    cr_assert_eq(def->retention_completed_ms, 0);
    cr_assert_eq(def->retention_compensated_ms, 2 * 3600000ull);
    saga_def_free(def);
}

Test(validate, bad_retention)
{
    expect_error("saga: s\nretention: 1d\nsteps:\n" STEP("a"), 2, 12,
                 "'retention' must be a mapping");
    expect_error("saga: s\nretention: {complete: 1d}\nsteps:\n" STEP("a"), 2, 13,
                 "unknown key 'complete' (did you mean 'completed'?)");
    expect_error("saga: s\nretention: {completed: 7}\nsteps:\n" STEP("a"), 2, 24,
                 "'retention' of completed sagas must be a duration such as '30d', '12h' "
                 "or '1d12h', found an integer (7) (add a unit)");
    expect_error("saga: s\nretention: {compensated: 3651d}\nsteps:\n" STEP("a"), 2, 26,
                 "longer than the 3650d limit");
    expect_error("saga: s\nretention: {completed: 0}\nsteps:\n" STEP("a"), 2, 24,
                 "must be more than 0");
    expect_error("saga: s\nretention: {completed: 1h1d}\nsteps:\n" STEP("a"), 2, 24,
                 "must be a duration");
}

Test(validate, unknown_keys_are_judged_by_the_mode)
{
    /* A TCC step suggests among its own keys... */
    expect_error("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a") "    confrim_retry: {}\n", 8, 5,
                 "unknown key 'confrim_retry' (did you mean 'confirm_retry'?)");
    expect_error("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a") "    owner: me\n", 8, 5,
                 "unknown key 'owner' (expected 'name', 'try', 'confirm', 'cancel', 'after', "
                 "'timeout', 'retry', 'confirm_retry' or 'cancel_retry')");
    /* ...and a key no `defaults` takes is unknown in either mode. */
    expect_error("saga: s\nmode: tcc\ndefaults: {action: 1}\nsteps:\n" TCC_STEP("a"), 3, 12,
                 "unknown key 'action'");
    expect_error("saga: s\ndefaults: {confirm_retry: {}}\nsteps:\n" STEP("a"), 2, 12,
                 "'confirm_retry' is not allowed in a saga");
    expect_error_count("saga: s\nmode: tcc\nsteps:\n" TCC_STEP("a") "    action: {handler: demo.noop}\n",
                       1);
}
