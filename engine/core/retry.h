/*
 * retry.h -- the delay before a step's next attempt: backoff, cap, jitter.
 */
#ifndef SAGA_RETRY_H
#define SAGA_RETRY_H

#include <stdint.h>

#include "saga/definition.h"
#include "util/rng.h"

/* The delay (ms) before the next attempt after `attempts` attempts failed
 * (attempts >= 1), jitter applied, never above p->max_delay_ms. */
uint64_t saga_retry_delay(const saga_retry_policy_t *p, uint32_t attempts,
                          saga_rng_t *rng);

#endif
