/*
 * hist.h -- a latency histogram with bounded relative error (HDR-like).
 *
 * Values (nanoseconds) below 256 have their own bucket; above, each power
 * of two is split into 128 buckets, so a reported percentile is within
 * 1/128 (0.8%) of the true value. Recording is a few instructions and never
 * allocates: the histogram is a fixed array, embedded by the caller.
 */
#ifndef SAGA_BENCH_HIST_H
#define SAGA_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB 128u
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB * 58u)

typedef struct bench_hist_s {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist_t;

/* Empties the histogram. */
void bench_hist_reset(bench_hist_t *h);

/* Records one value (ns). Cannot fail. */
void bench_hist_record(bench_hist_t *h, uint64_t v);

/* The value at percentile `p` (0..100], in ns: the midpoint of the bucket
 * that holds it (the exact maximum for p = 100). 0 when empty. */
uint64_t bench_hist_percentile(const bench_hist_t *h, double p);

#endif
