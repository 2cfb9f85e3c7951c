/*
 * gauges.h -- how many sagas, workers and start requests a Redis store
 * holds now: what `saga serve` exports at /metrics, read at scrape time.
 */
#ifndef SAGA_STORE_GAUGES_H
#define SAGA_STORE_GAUGES_H

#include <stdbool.h>
#include <stdint.h>

#include "saga/store.h"

/* Unfinished sagas whose states one reading looks at, at most. */
#define SAGA_GAUGES_SCAN_MAX 10000

typedef struct saga_gauges_s {
    uint64_t unfinished;       /* running, compensating or stuck (index) */
    uint64_t finished;         /* completed or compensated, still retained */
    uint64_t running;          /* the states of the unfinished, read from */
    uint64_t compensating;     /* their records (with K shards, the newest */
    uint64_t stuck;            /* SCAN_MAX/K of a shard that holds more: */
    bool partial;              /* then `partial`) */
    uint64_t workers;          /* workers whose lease is live */
    uint64_t intake_backlog;   /* start requests not yet handled (entries
                                  of every shard's intake stream) */
} saga_gauges_t;

/* status 0 with the gauges, or SAGA_EUNAVAILABLE (the connection was
 * lost) / SAGA_ESTORE (an unexpected reply: `why` says which) with g NULL. */
typedef void (*saga_gauges_cb)(int status, const char *why, const saga_gauges_t *g,
                               void *data);

/* Reads the gauges with a few pipelined commands per shard of the global
 * keys (store/shards.h; the counts summed over the shards) and one read of
 * the state of each unfinished saga, up to SAGA_GAUGES_SCAN_MAX. Returns 0
 * (then `cb` runs once, later), -ENOTSUP for a store that is not a Redis
 * store, SAGA_EUNAVAILABLE when not connected, -ENOMEM. */
int saga_store_gauges(saga_store_t *s, saga_gauges_cb cb, void *data);

#endif
