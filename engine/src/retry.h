/*
 * retry.h -- backoff delays and a small PRNG for jitter and ids.
 */
#ifndef SAGA_RETRY_H
#define SAGA_RETRY_H

#include <stdint.h>

#include "saga/definition.h"

/* xorshift64* state; never 0. Not for secrets. */
typedef struct saga_rng_s {
    uint64_t s;
} saga_rng_t;

/* Seeds from the OS (getrandom) when seed == 0, else from `seed`. */
void saga_rng_seed(saga_rng_t *r, uint64_t seed);
uint64_t saga_rng_next(saga_rng_t *r);
/* Uniform in [0, bound]. */
uint64_t saga_rng_upto(saga_rng_t *r, uint64_t bound);

/* The delay (ms) before the next attempt after `attempts` attempts failed
 * (attempts >= 1), jitter applied, never above p->max_delay_ms. */
uint64_t saga_retry_delay(const saga_retry_policy_t *p, uint32_t attempts,
                          saga_rng_t *rng);

#endif
