/* retry.c -- backoff delays (retry.h). */
#include "core/retry.h"

uint64_t saga_retry_delay(const saga_retry_policy_t *p, uint32_t attempts,
                          saga_rng_t *rng) {
    double d = (double)p->initial_delay_ms;
    if (p->backoff == SAGA_BACKOFF_EXPONENTIAL) {
        for (uint32_t i = 1; i < attempts && d < (double)p->max_delay_ms; i++)
            d *= p->multiplier;
    }
    uint64_t delay = d >= (double)p->max_delay_ms ? p->max_delay_ms : (uint64_t)d;
    switch (p->jitter) {
    case SAGA_JITTER_FULL:
        delay = saga_rng_upto(rng, delay);
        break;
    case SAGA_JITTER_EQUAL:
        delay = delay / 2 + saga_rng_upto(rng, delay - delay / 2);
        break;
    case SAGA_JITTER_NONE:
        break;
    }
    return delay;
}
