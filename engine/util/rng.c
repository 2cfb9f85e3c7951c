/* rng.c -- xorshift64*, seeded through splitmix64 (rng.h). */
#include "util/rng.h"

#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

void saga_rng_seed(saga_rng_t *r, uint64_t seed) {
    if (seed == 0) {
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                   (uint64_t)getpid() << 40;
        }
    }
    /* splitmix64 spreads a small or structured seed over all 64 bits. */
    seed += 0x9e3779b97f4a7c15ull;
    seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ull;
    seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebull;
    seed ^= seed >> 31;
    r->s = seed ? seed : 0x2545f4914f6cdd1dull;
}

uint64_t saga_rng_next(saga_rng_t *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t saga_rng_upto(saga_rng_t *r, uint64_t bound) {
    if (bound == UINT64_MAX)
        return saga_rng_next(r);
    return saga_rng_next(r) % (bound + 1);
}
