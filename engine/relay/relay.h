/*
 * relay.h -- `saga relay`: delivers a PostgreSQL outbox into running sagas
 * (docs/outbox.md).
 *
 * A service writes a row (id, saga, input) into its outbox table in the
 * same transaction as its own data. The relay takes undelivered rows in
 * batches, oldest first, with FOR UPDATE SKIP LOCKED (so any number of
 * relays share the table without taking one row twice at once), submits
 * each as a saga whose id is the row's id through the store's operator API
 * (idempotent by id: a row submitted again after a crash starts nothing
 * new), then marks the rows delivered and commits, in that order.
 *
 * A row the engine refuses for good (its id is not a saga id, its saga is
 * empty or unknown, its input is not a JSON object or lacks a required key,
 * the saga's stored definition does not load) gets `error` set and is not
 * taken again. A transient failure (Redis or PostgreSQL unreachable, a
 * query refused) leaves the row undelivered and the relay backs off
 * (doubling, capped) before the next batch.
 *
 * The relay wakes on LISTEN/NOTIFY (the table's trigger notifies the
 * channel named like the table at each insert's commit) and also polls
 * every poll_ms, so a missed notification delays a row, never loses it.
 *
 * Everything runs on the caller's loop; no call blocks.
 */
#ifndef SAGA_RELAY_H
#define SAGA_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "saga/store.h"

#define SAGA_RELAY_TABLE_DEFAULT "saga_outbox"
#define SAGA_RELAY_BATCH_DEFAULT 100
#define SAGA_RELAY_BATCH_MAX 10000
#define SAGA_RELAY_POLL_DEFAULT_MS 1000
#define SAGA_RELAY_INPUT_MAX (1u << 20) /* bytes of a row's input, as JSON text */
#define SAGA_RELAY_ERROR_MAX 1000       /* bytes of the message written to `error` */

typedef struct saga_relay_s saga_relay_t;

typedef struct saga_relay_options_s {
    const char *postgres;     /* libpq connection string or URI (required) */
    const char *table;        /* NULL: SAGA_RELAY_TABLE_DEFAULT; [schema.]table */
    size_t batch;             /* rows per transaction; 0: SAGA_RELAY_BATCH_DEFAULT */
    uint64_t poll_ms;         /* look without a notification this often; 0: default */
    uint64_t retention_ms;    /* how long a submitted id is remembered; 0: the store's */
    uint64_t backoff_max_ms;  /* cap of the backoff after a transient failure; 0: 5000 */
    const char *name;         /* for log lines; NULL: "relay" */
    bool metrics;             /* keep the counters of saga_relay_metrics() and count
                                 the backlog between batches */
} saga_relay_options_t;

/* What a relay did since it started. */
typedef struct saga_relay_stats_s {
    uint64_t delivered;   /* rows marked delivered */
    uint64_t fresh;       /* of which started a saga now (not submitted before) */
    uint64_t refused;     /* rows that got `error` */
    uint64_t batches;     /* transactions committed */
    uint64_t transient;   /* batches cut short by a transient failure */
} saga_relay_stats_t;

/* True when `table` is a table name the relay takes: `name` or
 * `schema.name`, each 1 to 55 lower-case letters, digits or '_', not
 * starting with a digit (55 leaves room for the trigger's and index's
 * suffixes within PostgreSQL's 63). */
bool saga_relay_table_valid(const char *table);

/* The DDL a service runs once: the outbox table `table` (valid), its index
 * of pending rows, its NOTIFY trigger, and the barrier table and function
 * (saga_barrier). Returns a new string (free() it), or NULL when out of
 * memory or `table` is not valid. */
char *saga_relay_schema(const char *table);

/* Creates a relay on `loop` that submits through `store` (a Redis store,
 * open; it must outlive the relay). Options are checked and copied.
 * Returns NULL with the reason in `err` (a bad connection string or table,
 * a batch out of 1..SAGA_RELAY_BATCH_MAX, out of memory). */
saga_relay_t *saga_relay_new(uv_loop_t *loop, saga_store_t *store,
                             const saga_relay_options_t *opt, char *err, size_t errlen);

/* Starts connecting to PostgreSQL and relaying (and reconnecting, until
 * stopped). Returns 0, or -EALREADY. */
int saga_relay_start(saga_relay_t *r);

/* Stops taking batches; a batch in flight finishes (its submits are
 * answered, then it commits) or is cut when the connection goes; then the
 * connection closes and `stopped` runs (once, later). Free the relay
 * after that. */
void saga_relay_stop(saga_relay_t *r, void (*stopped)(void *data), void *data);

/* What it did so far. */
saga_relay_stats_t saga_relay_stats(const saga_relay_t *r);

/* Writes the relay's metrics in the Prometheus text format (0.0.4) to
 * `out`: its counters, the delivery delay histogram, the backlog as last
 * counted and whether PostgreSQL is connected (docs/outbox.md, "Metrics").
 * Returns 0, -ENOTSUP when the relay was made without `metrics`, or -EIO
 * when `out` reports a write error. */
int saga_relay_metrics(const saga_relay_t *r, FILE *out);

/* Frees a relay once its `stopped` callback ran; accepts NULL. A relay
 * never started is stopped too (saga_relay_stop works before
 * saga_relay_start): its timers and connection are on the loop from
 * saga_relay_new on. */
void saga_relay_free(saga_relay_t *r);

#endif
