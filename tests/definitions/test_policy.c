/*
 * test_policy.c -- timeouts and retry policies: built-in values, resolution
 * order and field-by-field merging.
 */
#include <criterion/criterion.h>

#include "def_testing.h"

#define STEP(name) \
    "  - name: " name "\n" \
    "    action: {handler: demo.noop}\n" \
    "    compensation: {handler: demo.noop}\n"

static void assert_policy(const saga_retry_policy_t *p, uint32_t attempts,
                          saga_backoff_t backoff, uint64_t initial, double mult,
                          uint64_t max, saga_jitter_t jitter)
{
    cr_assert_eq(p->max_attempts, attempts);
    cr_assert_eq(p->backoff, backoff);
    cr_assert_eq(p->initial_delay_ms, initial);
    cr_assert_float_eq(p->multiplier, mult, 1e-12);
    cr_assert_eq(p->max_delay_ms, max);
    cr_assert_eq(p->jitter, jitter);
}

Test(policy, built_in_defaults)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a"));
    const saga_step_def_t *s = &def->steps[0];
    cr_assert_eq(s->timeout_ms, SAGA_DEFAULT_TIMEOUT_MS);
    assert_policy(&s->retry, SAGA_DEFAULT_ACTION_ATTEMPTS, SAGA_BACKOFF_EXPONENTIAL,
                  SAGA_DEFAULT_INITIAL_DELAY_MS, SAGA_DEFAULT_MULTIPLIER,
                  SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_FULL);
    assert_policy(&s->compensation_retry, SAGA_DEFAULT_COMPENSATION_ATTEMPTS,
                  SAGA_BACKOFF_EXPONENTIAL, SAGA_DEFAULT_INITIAL_DELAY_MS,
                  SAGA_DEFAULT_MULTIPLIER, SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_FULL);
    saga_def_free(def);
}

Test(policy, timeout_step_over_defaults_over_built_in)
{
    saga_def_t *def = load_ok("saga: s\ndefaults: {timeout: 1m30s}\nsteps:\n"
                              STEP("a") STEP("b") "    timeout: 250ms\n");
    cr_assert_eq(def->steps[0].timeout_ms, 90000);
    cr_assert_eq(def->steps[1].timeout_ms, 250);
    saga_def_free(def);
}

Test(policy, every_retry_field_is_read)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a")
                              "    retry:\n"
                              "      max_attempts: 7\n"
                              "      backoff: fixed\n"
                              "      initial_delay: 2s\n"
                              "      multiplier: 1.5\n"
                              "      max_delay: 1m\n"
                              "      jitter: equal\n");
    assert_policy(&def->steps[0].retry, 7, SAGA_BACKOFF_FIXED, 2000, 1.5, 60000,
                  SAGA_JITTER_EQUAL);
    saga_def_free(def);
}

Test(policy, a_partial_step_retry_keeps_the_defaults_other_fields)
{
    saga_def_t *def = load_ok("saga: s\n"
                              "defaults:\n"
                              "  retry: {backoff: fixed, initial_delay: 1s, jitter: none}\n"
                              "steps:\n" STEP("a") "    retry: {max_attempts: 5}\n" STEP("b"));
    assert_policy(&def->steps[0].retry, 5, SAGA_BACKOFF_FIXED, 1000, SAGA_DEFAULT_MULTIPLIER,
                  SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_NONE);
    assert_policy(&def->steps[1].retry, SAGA_DEFAULT_ACTION_ATTEMPTS, SAGA_BACKOFF_FIXED, 1000,
                  SAGA_DEFAULT_MULTIPLIER, SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_NONE);
    saga_def_free(def);
}

Test(policy, compensation_retry_order)
{
    /* step.compensation_retry > defaults.compensation_retry > defaults.retry
     * > built-in compensation policy; a step's `retry` is not in the chain. */
    saga_def_t *def = load_ok(
        "saga: s\n"
        "defaults:\n"
        "  retry: {max_attempts: 4, initial_delay: 300ms, jitter: none}\n"
        "  compensation_retry: {max_attempts: 9}\n"
        "steps:\n"
        STEP("a") "    retry: {max_attempts: 2, backoff: fixed}\n"
        STEP("b") "    compensation_retry: {jitter: equal}\n");
    /* a: defaults.compensation_retry over defaults.retry over built-in. */
    assert_policy(&def->steps[0].compensation_retry, 9, SAGA_BACKOFF_EXPONENTIAL, 300,
                  SAGA_DEFAULT_MULTIPLIER, SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_NONE);
    assert_policy(&def->steps[0].retry, 2, SAGA_BACKOFF_FIXED, 300, SAGA_DEFAULT_MULTIPLIER,
                  SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_NONE);
    /* b: its own block over all of that. */
    assert_policy(&def->steps[1].compensation_retry, 9, SAGA_BACKOFF_EXPONENTIAL, 300,
                  SAGA_DEFAULT_MULTIPLIER, SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_EQUAL);
    assert_policy(&def->steps[1].retry, 4, SAGA_BACKOFF_EXPONENTIAL, 300,
                  SAGA_DEFAULT_MULTIPLIER, SAGA_DEFAULT_MAX_DELAY_MS, SAGA_JITTER_NONE);
    saga_def_free(def);
}

Test(policy, defaults_retry_applies_to_compensations_without_their_own)
{
    saga_def_t *def = load_ok("saga: s\ndefaults:\n  retry: {max_attempts: 6}\nsteps:\n"
                              STEP("a"));
    cr_assert_eq(def->steps[0].retry.max_attempts, 6);
    cr_assert_eq(def->steps[0].compensation_retry.max_attempts, 6);
    saga_def_free(def);
}

Test(policy, an_integer_multiplier_is_accepted)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a") "    retry: {multiplier: 3}\n");
    cr_assert_float_eq(def->steps[0].retry.multiplier, 3.0, 1e-12);
    saga_def_free(def);
}
