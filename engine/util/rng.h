/*
 * rng.h -- a small, fast PRNG for retry jitter and saga ids. Not for secrets.
 */
#ifndef SAGA_RNG_H
#define SAGA_RNG_H

#include <stdint.h>

/* xorshift64* state; never 0. Not for secrets. */
typedef struct saga_rng_s {
    uint64_t s;
} saga_rng_t;

/* Seeds from the OS (getrandom) when seed == 0, else from `seed`. */
void saga_rng_seed(saga_rng_t *r, uint64_t seed);
uint64_t saga_rng_next(saga_rng_t *r);
/* Uniform in [0, bound]. */
uint64_t saga_rng_upto(saga_rng_t *r, uint64_t bound);

#endif
