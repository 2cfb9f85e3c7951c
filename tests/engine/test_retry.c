/*
 * test_retry.c -- saga_retry_delay() (engine/core/retry.c): fixed and
 * exponential backoff, the multiplier, the cap, and the bounds of `full`
 * and `equal` jitter. Jitter is checked statistically: over many draws
 * every delay lies within its bounds and both ends are approached.
 */
#include <criterion/criterion.h>

#include "core/retry.h"

static saga_retry_policy_t policy(saga_backoff_t b, uint64_t initial, double mult,
                                  uint64_t max, saga_jitter_t j) {
    saga_retry_policy_t p = {.max_attempts = 100, .backoff = b, .initial_delay_ms = initial,
                             .multiplier = mult, .max_delay_ms = max, .jitter = j};
    return p;
}

Test(retry, fixed_is_the_initial_delay_every_time) {
    saga_rng_t r;
    saga_rng_seed(&r, 1);
    saga_retry_policy_t p = policy(SAGA_BACKOFF_FIXED, 250, 3.0, 10000, SAGA_JITTER_NONE);
    for (uint32_t n = 1; n <= 20; n++)
        cr_assert_eq(saga_retry_delay(&p, n, &r), 250, "attempt %u", n);
}

Test(retry, exponential_multiplies_from_the_initial_delay) {
    saga_rng_t r;
    saga_rng_seed(&r, 1);
    saga_retry_policy_t p = policy(SAGA_BACKOFF_EXPONENTIAL, 100, 2.0, 1000000, SAGA_JITTER_NONE);
    uint64_t want[] = {100, 200, 400, 800, 1600, 3200};
    for (uint32_t n = 1; n <= 6; n++)
        cr_assert_eq(saga_retry_delay(&p, n, &r), want[n - 1], "attempt %u", n);
    p.multiplier = 1.5;
    uint64_t want15[] = {100, 150, 225, 337, 506};
    for (uint32_t n = 1; n <= 5; n++)
        cr_assert_eq(saga_retry_delay(&p, n, &r), want15[n - 1], "x1.5 attempt %u", n);
    p.multiplier = 1.0; /* exponential with 1.0 is fixed */
    cr_assert_eq(saga_retry_delay(&p, 30, &r), 100);
}

Test(retry, exponential_stops_at_the_cap_and_never_overflows) {
    saga_rng_t r;
    saga_rng_seed(&r, 1);
    saga_retry_policy_t p = policy(SAGA_BACKOFF_EXPONENTIAL, 100, 2.0, 1000, SAGA_JITTER_NONE);
    cr_assert_eq(saga_retry_delay(&p, 4, &r), 800);
    cr_assert_eq(saga_retry_delay(&p, 5, &r), 1000, "1600 capped");
    cr_assert_eq(saga_retry_delay(&p, 6, &r), 1000);
    /* Far past any double or uint64 range of the plain formula. */
    cr_assert_eq(saga_retry_delay(&p, UINT32_MAX, &r), 1000);
    p.multiplier = 1e9;
    cr_assert_eq(saga_retry_delay(&p, 3, &r), 1000);
    /* The cap applies to fixed backoff too (initial == max). */
    saga_retry_policy_t f = policy(SAGA_BACKOFF_FIXED, 500, 2.0, 500, SAGA_JITTER_NONE);
    cr_assert_eq(saga_retry_delay(&f, 9, &r), 500);
}

/* Draws `n` delays and returns their min and max; fails on any outside
 * [lo, hi]. */
static void draw(const saga_retry_policy_t *p, uint32_t attempt, uint64_t lo, uint64_t hi,
                 uint64_t *min, uint64_t *max) {
    saga_rng_t r;
    saga_rng_seed(&r, 42);
    *min = UINT64_MAX;
    *max = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t d = saga_retry_delay(p, attempt, &r);
        cr_assert(d >= lo && d <= hi, "delay %llu outside [%llu, %llu]",
                  (unsigned long long)d, (unsigned long long)lo, (unsigned long long)hi);
        if (d < *min)
            *min = d;
        if (d > *max)
            *max = d;
    }
}

Test(retry, full_jitter_is_uniform_between_zero_and_the_delay) {
    saga_retry_policy_t p = policy(SAGA_BACKOFF_EXPONENTIAL, 100, 2.0, 100000, SAGA_JITTER_FULL);
    uint64_t min, max;
    draw(&p, 4, 0, 800, &min, &max); /* base 800 */
    cr_assert_leq(min, 8, "the low end (0) is approached: min %llu", (unsigned long long)min);
    cr_assert_geq(max, 792, "the high end (800) is approached: max %llu", (unsigned long long)max);
    /* With the cap: within [0, cap]. */
    p.max_delay_ms = 300;
    draw(&p, 10, 0, 300, &min, &max);
    cr_assert_leq(min, 3);
    cr_assert_geq(max, 297);
}

Test(retry, equal_jitter_keeps_at_least_half_the_delay) {
    saga_retry_policy_t p = policy(SAGA_BACKOFF_EXPONENTIAL, 100, 2.0, 100000, SAGA_JITTER_EQUAL);
    uint64_t min, max;
    draw(&p, 4, 400, 800, &min, &max); /* base 800: [400, 800] */
    cr_assert_leq(min, 404, "min %llu", (unsigned long long)min);
    cr_assert_geq(max, 796, "max %llu", (unsigned long long)max);
    /* An odd delay: [floor(d/2), d]. */
    saga_retry_policy_t f = policy(SAGA_BACKOFF_FIXED, 101, 1.0, 101, SAGA_JITTER_EQUAL);
    draw(&f, 1, 50, 101, &min, &max);
    cr_assert_eq(min, 50);
    cr_assert_eq(max, 101);
}

Test(retry, jitter_of_a_zero_delay_is_zero) {
    saga_rng_t r;
    saga_rng_seed(&r, 7);
    saga_retry_policy_t p = policy(SAGA_BACKOFF_FIXED, 0, 1.0, 0, SAGA_JITTER_FULL);
    cr_assert_eq(saga_retry_delay(&p, 1, &r), 0);
    p.jitter = SAGA_JITTER_EQUAL;
    cr_assert_eq(saga_retry_delay(&p, 1, &r), 0);
}
