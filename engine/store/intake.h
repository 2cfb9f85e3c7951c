/*
 * intake.h -- the start requests of workers: the intake stream read through
 * its consumer group (docs/operations.md, docs/redis-layout.md).
 *
 * `saga submit` appends a request (id, definition hash, input) to the
 * stream; each request is delivered to one consumer (a worker, by name) of
 * the group. A consumer reads its own unacknowledged requests (a previous
 * life under the same name), new ones, and those of consumers that died
 * before acknowledging (autoclaim); once a request is handled (its saga
 * created, or the request refused), it is acknowledged, and the stream
 * trimmed up to the oldest request still pending, in one call (saga.lua,
 * saga_intake_done).
 *
 * The stream exists once per shard of the global keys (store/shards.h): a
 * request goes to the shard of its saga's id, and a consumer reads every
 * shard. An intake object belongs to one consumer. It owns a connection per
 * shard for the blocking read of new requests (a blocking command on the
 * store's connection would stall the pipelined checkpoints behind it, and
 * one command reads the streams of one slot only); every other
 * command goes out on the store's first connection, in the order the calls
 * were made, and is answered in that order.
 *
 * Callbacks: a call that returns an error never runs its callback;
 * otherwise the callback runs exactly once, later, never from inside the
 * call. status is 0, SAGA_EUNAVAILABLE (no answer: connection lost, timed
 * out or closed), SAGA_ECLOSING (the intake is being closed), or SAGA_ESTORE
 * (Redis refused, or answered something that is not the reply expected),
 * with `why` saying what was wrong; `why` and every decoded string are
 * valid only during the callback.
 */
#ifndef SAGA_STORE_INTAKE_H
#define SAGA_STORE_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "redis/redis_url.h"
#include "saga/store.h"

typedef struct saga_intake_s saga_intake_t;

#define SAGA_INTAKE_ENTRY_MAX 63

/* One request as read from the stream. `entry` is always set (the stream
 * entry to acknowledge: "<ms>-<seq>", at most SAGA_INTAKE_ENTRY_MAX
 * characters). A request is either well formed (malformed NULL:
 * id of 1 to SAGA_ID_MAX bytes, hash of 64 characters, input present) or
 * malformed (malformed says what is wrong; the other fields NULL): a
 * request written by hand or by a foreign client, to acknowledge and drop. */
typedef struct saga_intake_request_s {
    const char *entry;
    const char *id;
    const char *hash;
    const char *input;       /* the start input's text (JSON, unchecked) */
    size_t input_len;
    const char *malformed;
    unsigned shard;          /* the shard whose stream holds it */
} saga_intake_request_t;

/* Requests read: `reqs[0..n)` on status 0 (n may be 0). Entries the stream
 * no longer holds (deleted while pending) are left out. */
typedef void (*saga_intake_requests_cb)(int status, const saga_intake_request_t *reqs,
                                        size_t n, const char *why, void *data);

/* status 0 or an error as above. */
typedef void (*saga_intake_done_cb)(int status, const char *why, void *data);

/* Events of the blocking connection. */
typedef enum saga_intake_event_e {
    SAGA_INTAKE_READY = 0,          /* connected: saga_intake_read_new() may go */
    SAGA_INTAKE_LOST = 1,           /* the connection was lost; reconnecting */
    SAGA_INTAKE_CONNECT_FAILED = 2  /* an attempt failed (`errstr`); retrying */
} saga_intake_event_t;

typedef void (*saga_intake_event_cb)(saga_intake_t *in, saga_intake_event_t ev,
                                     const char *errstr, void *data);

/* Creates the intake of consumer `consumer` (copied) on the Redis store `s`
 * (borrowed: it must outlive the intake), its blocking connections going to
 * `url` (copied). `on_event` (may be NULL) reports the blocking
 * connections' events (any shard's). Returns 0 with *out set; -EINVAL when
 * `s` is not a Redis store, `url` is NULL or names no host or socket, or
 * `consumer` is empty; -ENOMEM; on error, *out is NULL, `err` says why,
 * and nothing was created. */
int saga_intake_new(uv_loop_t *loop, saga_store_t *s, const saga_redis_url_t *url,
                    const char *consumer, saga_intake_event_cb on_event, void *data,
                    saga_intake_t **out, char *err, size_t errlen);

/* Starts the blocking connections, one per shard of the intake (retried
 * until they succeed): at once when the store knows its shards (it is
 * ready), else when a later call finds it ready. Returns 0, -EALREADY, or
 * a negative code (then no event fires). */
int saga_intake_connect(saga_intake_t *in);

/* The shards of the intake (store/shards.h: one stream each), or 0 while
 * the store is not ready. Every call below that takes a shard takes one
 * below this number (-EINVAL otherwise). */
unsigned saga_intake_shards(saga_intake_t *in);

/* True while shard `shard`'s blocking connection is connected. */
bool saga_intake_ready(saga_intake_t *in, unsigned shard);

/* Creates the consumer group (and the stream) of every shard if missing:
 * XGROUP CREATE ... MKSTREAM; a group that exists already is fine. `cb`
 * runs once, when every shard answered, with the first failure.
 * SAGA_EUNAVAILABLE while the store is not ready. */
int saga_intake_create_group(saga_intake_t *in, saga_intake_done_cb cb, void *data);

/* Reads up to `count` requests of shard `shard` delivered to this consumer
 * and not yet acknowledged (XREADGROUP ... 0), on the store's connection. */
int saga_intake_read_pending(saga_intake_t *in, unsigned shard, size_t count,
                             saga_intake_requests_cb cb, void *data);

/* Reads up to `count` new requests of shard `shard`, waiting up to
 * `block_ms` for one (XREADGROUP ... BLOCK ... >), on the shard's blocking
 * connection: one read at a time per shard. Returns SAGA_EUNAVAILABLE when
 * that connection is not ready, -EBUSY while its read is in flight. */
int saga_intake_read_new(saga_intake_t *in, unsigned shard, size_t count, uint64_t block_ms,
                         saga_intake_requests_cb cb, void *data);

/* Takes over up to `count` requests of shard `shard` that other consumers
 * left unacknowledged for `idle_ms` or more (XAUTOCLAIM from the start). */
int saga_intake_autoclaim(saga_intake_t *in, unsigned shard, uint64_t idle_ms, size_t count,
                          saga_intake_requests_cb cb, void *data);

/* A request was handled: acknowledges `entry` of shard `shard` and trims
 * the stream up to the oldest request still pending (or, none pending, up
 * to the last one delivered) in one call (saga.lua, saga_intake_done), so
 * that the stream never keeps handled requests for good. `cb` may be NULL
 * (nobody waits for the answer). */
int saga_intake_done(saga_intake_t *in, unsigned shard, const char *entry,
                     saga_intake_done_cb cb, void *data);

/* The most entries saga_intake_done_many() takes at once. */
#define SAGA_INTAKE_DONE_MAX 500

/* Several requests of one shard were handled: acknowledges
 * `entries[0..n)` (1 <= n <= SAGA_INTAKE_DONE_MAX, each as
 * saga_intake_done's) in one call, one XACK for all of them (and the trim).
 * The strings are copied before it returns. -EINVAL for n out of range;
 * otherwise as saga_intake_done. */
int saga_intake_done_many(saga_intake_t *in, unsigned shard, const char *const *entries,
                          size_t n, saga_intake_done_cb cb, void *data);

/* Hands requests of shard `shard` delivered to this consumer but not
 * handled back to the others: `entries[0..n)` (1 <= n <=
 * SAGA_INTAKE_DONE_MAX) stay pending, with an idle time of years, so that
 * any consumer's next saga_intake_autoclaim() takes them (XCLAIM ... IDLE
 * ... JUSTID). Returns as saga_intake_done_many. */
int saga_intake_release(saga_intake_t *in, unsigned shard, const char *const *entries,
                        size_t n, saga_intake_done_cb cb, void *data);

/* Closes the intake: blocking reads in flight complete with SAGA_ECLOSING,
 * no event fires any more, and once the blocking connections are closed
 * `closed` (may be NULL) runs, never from inside this call, and the intake
 * is freed. Commands sent on the store's connection complete on their own.
 * Accepts NULL. */
void saga_intake_close(saga_intake_t *in, void (*closed)(void *data), void *data);

#endif
