/*
 * store_redis.h -- the durable store: checkpoints in Redis 7.
 *
 * Each transition is one FCALL of the `saga_write` function (saga.lua),
 * which checks the record's sequence and fencing token and then updates the
 * record and appends to the history list atomically. Writes are pipelined
 * on one connection (or several: `connections` below).
 *
 * While the connection is down, every request waits (the engine pauses);
 * after reconnecting, requests that were in flight are sent again. A resent
 * write that had been applied is recognised by its token and acknowledged
 * without being applied twice.
 *
 * Key layout and guarantees: docs/redis-layout.md, docs/durability.md.
 */
#ifndef SAGA_STORE_REDIS_H
#define SAGA_STORE_REDIS_H

#include <stdint.h>

#include <uv.h>

#include "redis/redis_conn.h"
#include "redis/redis_url.h"
#include "saga/store.h"
#include "store/shards.h"

typedef struct saga_store_redis_options_s {
    uint64_t retention_ms;          /* finished sagas kept; 0: 7 days */
    saga_redis_options_t conn;      /* connection options */
    /* Update the index of sagas (and owners' sets) with separate commands
     * instead of inside the transition's function call: needed on Redis
     * Cluster, where they live in another slot; costs one or two more
     * commands per create and finish. */
    bool split_index;
    /* Connections the store spreads sagas over (a saga always uses the
     * same one); 0: 1, at most 16. With appendfsync always, 4 make Redis's
     * group commits bigger (it reads at most 16 KiB per connection per
     * turn); with everysec one keeps saturation tails shorter. */
    unsigned connections;
    /* Replicas that must have a transition before it counts as written: a
     * write's answer is held until a WAIT sent after it (one per batch of
     * answers, on the same connection; on Redis Cluster to every primary)
     * confirms this many; after a WAIT that falls short they wait for the
     * next one, and after a lost connection they are sent again (they are
     * recognised as applied), so the engine never acts on a transition a
     * failover could take back.
     * 0: none (a zeroed struct); SAGA_STORE_MIN_REPLICAS_AUTO: 1 on a
     * Redis Cluster whose primaries have replicas, else 0. */
    int min_replicas;
    uint64_t wait_timeout_ms;       /* a WAIT's timeout; 0: 1000 */
    /* Shards of the global keys to record on a Redis Cluster that has none
     * recorded yet (store/shards.h; the first engine to start decides):
     * 0: 4 per primary (CLUSTER INFO's cluster_size), at most
     * SAGA_SHARDS_MAX. Ignored on a single Redis (always 1) and once
     * recorded. */
    unsigned shards;
    /* Leave out the start-up advice about the server's configuration
     * (persistence or AOF off, appendfsync always over one connection, the
     * automatic --min-replicas): for short commands that make one request
     * and exit, which would print it every time; engines and servers say it
     * once when they start. Errors and warnings about what is happening
     * (a lost connection, a WAIT that fell short) are not advice. */
    bool no_advice;
} saga_store_redis_options_t;

#define SAGA_STORE_MIN_REPLICAS_AUTO (-1)

/* The connections advised with appendfsync always (docs/redis-layout.md). */
#define SAGA_STORE_REDIS_ALWAYS_CONNECTIONS 4

/* status 0: connected, the library loaded and the server checked
 * (maxmemory-policy noeviction, Redis >= 7). Otherwise status < 0 and `msg`
 * says why (naming the URL, never the password); close the store then. */
typedef void (*saga_store_ready_cb)(saga_store_t *s, int status,
                                    const char *msg, void *data);

/* Creates the store and starts connecting to `url` (copied). `ready` runs
 * once, later. Requests made before it are queued. Returns NULL when out of
 * memory (then `ready` never runs). */
saga_store_t *saga_store_redis_new(uv_loop_t *loop, const saga_redis_url_t *url,
                                   const saga_store_redis_options_t *opt,
                                   saga_store_ready_cb ready, void *data);

/* The store's connection, for the other modules of engine/store/ (operator,
 * intake, lease, gauges): no layer above the store sends a command. NULL
 * for a store that is not a Redis store. */
saga_redis_t *saga_store_redis_conn(saga_store_t *s);

/* The shards of the global keys (store/shards.h), once the store is ready
 * (its ready callback ran with status 0); NULL before, and for a store
 * that is not a Redis store. */
const saga_shards_t *saga_store_redis_shards(saga_store_t *s);

/* True for a Redis store whose index is split (split_index: Redis Cluster). */
bool saga_store_redis_split_index(saga_store_t *s);

/* True when every connection of the store is up and runs saga's function
 * library: a request made now is sent at once, not held until Redis is
 * back (requests made while it is away wait; see the top of this file).
 * What a caller that must answer "unavailable" at once asks first. False
 * for a store that is not a Redis store. */
bool saga_store_redis_available(saga_store_t *s);

/* Counters for benchmarks and metrics: commands sent (resends included),
 * replies, reconnects. */
typedef struct saga_store_redis_stats_s {
    uint64_t commands;
    uint64_t writes;
    uint64_t resent;
    uint64_t gc_removed;  /* finished sagas whose retention ran out, removed */
    uint64_t reconnects;  /* a connection that had been up came up again */
    uint64_t waits;       /* WAITs sent (min_replicas > 0) */
    uint64_t waits_short; /* WAITs that confirmed fewer replicas than asked */
    int min_replicas;     /* in force, once ready */
    unsigned connections;
} saga_store_redis_stats_t;

void saga_store_redis_stats(saga_store_t *s, saga_store_redis_stats_t *out);

#endif
