/*
 * timeline.h -- when the slow samples of a run happened, not only how many.
 *
 * The run is cut into windows of a fixed width; each window counts its
 * samples, those over a threshold, and keeps its maximum. A tail spread
 * evenly over the windows is the system's steady state; one packed into a
 * few windows is an event (a stall, a rehash, a neighbour on the host),
 * which a histogram alone cannot tell apart.
 */
#ifndef SAGA_BENCH_TIMELINE_H
#define SAGA_BENCH_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench_window_s {
    uint32_t n;      /* samples */
    uint32_t over;   /* samples above over_ns */
    uint64_t max_ns;
} bench_window_t;

typedef struct bench_timeline_s {
    uint64_t t0_ns;     /* the start of window 0 */
    uint64_t width_ns;
    uint64_t over_ns;
    bench_window_t *w;
    size_t len;         /* windows up to the last one with a sample */
    size_t cap;
    bool incomplete;    /* a window could not be allocated: samples lost */
} bench_timeline_t;

/* Starts an empty timeline at t0_ns. */
void bench_timeline_init(bench_timeline_t *t, uint64_t t0_ns, uint64_t width_ns,
                         uint64_t over_ns);

/* Records value v_ns observed at now_ns (>= t0_ns; earlier ones count in
 * window 0). Allocates as the run grows; on failure sets `incomplete`. */
void bench_timeline_record(bench_timeline_t *t, uint64_t now_ns, uint64_t v_ns);

/* Frees the windows; the timeline is empty again. */
void bench_timeline_free(bench_timeline_t *t);

#endif
