/*
 * hist.c -- see hist.h.
 */
#include "hist.h"

#include <string.h>

void bench_hist_reset(bench_hist_t *h) { memset(h, 0, sizeof(*h)); }

static unsigned bucket_of(uint64_t v) {
    if (v < 2 * BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 7u; /* v >> shift is in [128, 255] */
    return (shift + 1u) * BENCH_HIST_SUB + (unsigned)((v >> shift) - BENCH_HIST_SUB);
}

/* The smallest value of a bucket and its width. */
static void bucket_range(unsigned b, uint64_t *lo, uint64_t *width) {
    if (b < 2 * BENCH_HIST_SUB) {
        *lo = b;
        *width = 1;
        return;
    }
    unsigned shift = b / BENCH_HIST_SUB - 1u;
    *lo = ((uint64_t)(b % BENCH_HIST_SUB) + BENCH_HIST_SUB) << shift;
    *width = (uint64_t)1 << shift;
}

void bench_hist_record(bench_hist_t *h, uint64_t v) {
    unsigned b = bucket_of(v);
    if (b >= BENCH_HIST_BUCKETS)
        b = BENCH_HIST_BUCKETS - 1;
    h->buckets[b]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t bench_hist_percentile(const bench_hist_t *h, double p) {
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* The rank of the sample at percentile p (1-based, nearest rank). */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t lo, w;
            bucket_range(b, &lo, &w);
            uint64_t mid = lo + w / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
