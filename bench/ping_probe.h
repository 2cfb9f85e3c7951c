/*
 * ping_probe.h -- how long Redis itself keeps a client waiting during a
 * run: a thread with its own blocking connection sends PING every period
 * and records each round trip. Set beside the engine's per-step latency it
 * tells what the engine adds from what any client of that server gets
 * (docs/benchmarks.md). Costs Redis one trivial command per period.
 */
#ifndef SAGA_BENCH_PING_PROBE_H
#define SAGA_BENCH_PING_PROBE_H

#include <hiredis/hiredis.h>

#include "hist.h"

typedef struct ping_probe_s ping_probe_t;

/* Starts probing over `conn` (connected, authenticated; the probe owns it
 * from now on and frees it) every `period_us`. NULL when the thread
 * cannot start (the connection is freed then too). */
ping_probe_t *ping_probe_start(redisContext *conn, unsigned period_us);

/* Stops the thread (waits at most one round trip and one period), copies
 * the round trips recorded into `out` and frees the probe. Returns the
 * number of PINGs that failed (no reply or an error reply). */
unsigned long ping_probe_stop(ping_probe_t *p, bench_hist_t *out);

#endif
