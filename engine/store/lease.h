/*
 * lease.h -- how workers share sagas in Redis: leases, ownership, takeover
 * (docs/operations.md, docs/redis-layout.md).
 *
 * A worker holds a lease (renewed by heartbeats) in the index of workers;
 * the sagas it owns are listed in its owned set, and each record names the
 * owner and its fencing token. A worker whose lease expired is dead: others
 * scan its owned set and claim its sagas (which bumps the fence, so the old
 * owner's writes are refused). A worker that stops releases what it owns to
 * the orphans, which any worker claims. A slow sweep over the unfinished
 * sagas finds those missing from every set. Operators wake a worker up
 * through its wake list.
 *
 * Every operation here goes out on the Redis store's first connection, in
 * the order the calls were made, and its answer comes in that order: a
 * caller that waits for the answer of its last command has had the answers
 * of all the earlier ones.
 *
 * Callbacks: a call that returns an error never runs its callback;
 * otherwise the callback runs exactly once, later, never from inside the
 * call. status is 0; SAGA_EUNAVAILABLE (no answer: the connection was lost,
 * timed out or closed; the command may or may not have been applied);
 * SAGA_ESTORE when Redis refused (its error text in `why`) or answered
 * something that is not the reply the command has (`why` says what was
 * wrong); or a code an operation names. `why` and every decoded string are
 * valid only during the callback. Calls return 0, -EINVAL (a Redis store
 * is needed; bad arguments), SAGA_EUNAVAILABLE (not connected) or -ENOMEM.
 *
 * A set of sagas is named by its owner: `owner` is the name of the worker
 * whose owned set is meant, or NULL for the orphans. Each set exists once
 * per shard of the global keys (store/shards.h): a saga's entry is in the
 * set of its own shard, so an operation on one saga finds the set itself;
 * a walk over a whole set (scan, size) or over the unfinished sagas
 * (sweep) names the shard, 0 .. saga_lease_shards() - 1.
 */
#ifndef SAGA_STORE_LEASE_H
#define SAGA_STORE_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "saga/state.h"
#include "saga/store.h"

/* The number of shards of the global keys (1 .. SAGA_SHARDS_MAX) once the
 * store is ready; 0 before, and for a store that is not a Redis store. */
unsigned saga_lease_shards(saga_store_t *s);

/* status 0 or an error (above). */
typedef void (*saga_lease_done_cb)(int status, const char *why, void *data);

/* Names or ids: names[0..n) on status 0. */
typedef void (*saga_lease_names_cb)(int status, const char *const *names, size_t n,
                                    const char *why, void *data);

/* ---- Leases ----------------------------------------------------------- */

/* status 0 with `expired` true when the lease had expired before this
 * renewal (others may have taken the worker's sagas over meanwhile), and
 * `unlisted` true when nothing records the worker as serving a saga: it
 * published nothing yet, or others forgot it while its lease had lapsed
 * (saga_lease_deregister(), which deletes what it serves): a running
 * worker then publishes its names again. */
typedef void (*saga_lease_heartbeat_cb)(int status, bool expired, bool unlisted,
                                        const char *why, void *data);

/* Renews the lease of `worker` for `lease_ms` from now (server time):
 * FCALL saga_heartbeat. */
int saga_lease_heartbeat(saga_store_t *s, const char *worker, uint64_t lease_ms,
                         saga_lease_heartbeat_cb cb, void *data);

/* The workers whose lease expired (server time): FCALL saga_dead_workers. */
int saga_lease_dead_workers(saga_store_t *s, saga_lease_names_cb cb, void *data);

/* status 0 with `held` true when `worker` holds a lease in the index of
 * workers (running or expired), false when it holds none: it never had
 * one, stopped, or was forgotten (saga_lease_deregister()). */
typedef void (*saga_lease_held_cb)(int status, bool held, const char *why, void *data);

/* Whether `worker` holds a lease: ZSCORE of the index of workers. A saga
 * whose record names an owner without one is nobody's: a worker that is
 * gone for good (claim.c takes it over). */
int saga_lease_held(saga_store_t *s, const char *worker, saga_lease_held_cb cb, void *data);

/* Removes `worker` from the index of workers and from the record of who
 * serves which saga (a stopping worker, or a dead one whose owned sets are
 * empty in every shard): FCALL saga_deregister. `cb` may be NULL. */
int saga_lease_deregister(saga_store_t *s, const char *worker, saga_lease_done_cb cb,
                          void *data);

/* ---- Ownership -------------------------------------------------------- */

/* status 0 with the new fence; SAGA_EFENCED (the record's owner is not the
 * one expected: another worker claimed it first); SAGA_ESTATE (the saga is
 * finished, or not run by workers); SAGA_ENOTFOUND (no such saga). */
typedef void (*saga_lease_claim_cb)(int status, uint64_t fence, const char *why,
                                    void *data);

/* Takes saga `id` over for `worker` from `expected` (its owner, known to be
 * gone; "" for a saga nobody owns): FCALL saga_claim, which bumps the fence
 * and records the claim in the history. The owned sets are not touched:
 * saga_lease_list_owned() lists it under its new owner. */
int saga_lease_claim(saga_store_t *s, const char *id, const char *expected,
                     const char *worker, saga_lease_claim_cb cb, void *data);

/* Gives saga `id` up: the record is left unowned if `worker` owns it under
 * `fence` (FCALL saga_release), then the id leaves the worker's owned set,
 * for the orphans when `to_orphans` (others claim it at once) or for no
 * set (a saga parked stuck for an operator). `cb` runs after the last
 * answer: status 0 (released, or the saga was gone); SAGA_EFENCED (not the
 * owner under that fence any more: nothing changed); an error of either
 * command. `cb` may be NULL. */
int saga_lease_release(saga_store_t *s, const char *id, const char *worker, uint64_t fence,
                       bool to_orphans, saga_lease_done_cb cb, void *data);

/* Lists saga `id` in the owned set of `worker`: moved there from the set of
 * `from` (a worker's name, NULL for the orphans) when `listed`, else added.
 * `cb` may be NULL. */
int saga_lease_list_owned(saga_store_t *s, const char *id, const char *worker, bool listed,
                          const char *from, saga_lease_done_cb cb, void *data);

/* Removes saga `id` from the set of `owner` (NULL: the orphans), where it
 * has nothing to do any more. `cb` may be NULL. */
int saga_lease_unlist(saga_store_t *s, const char *owner, const char *id,
                      saga_lease_done_cb cb, void *data);

/* Moves saga `id`, finished, to the finished part of the index of sagas
 * when the index still lists it as unfinished (ZADD XX GT with the current
 * time: the GC trims it next; an entry that already says finished, or none,
 * is left as it is). On Redis Cluster a finish's index update is sent only
 * once the finish is confirmed (store_redis.c), so a worker killed between
 * the two leaves such an entry. `cb` may be NULL. */
int saga_lease_index_finished(saga_store_t *s, const char *id, saga_lease_done_cb cb,
                              void *data);

/* ---- Finding sagas to take over ---------------------------------------- */

/* What a worker reads of a saga before claiming it. Strings point into the
 * reply. When `exists` is false the record is gone (or holds no state) and
 * the other fields are unset. */
typedef struct saga_lease_candidate_s {
    bool exists;
    bool managed;          /* run by workers: the record has a fence */
    const char *owner;     /* "" when nobody owns it */
    uint64_t fence;        /* when managed */
    saga_state_t state;
    const char *def;       /* the definition's hash: 64 characters */
    bool cancel;           /* an operator asked to cancel it */
} saga_lease_candidate_t;

/* status 0 with the candidate; SAGA_ECORRUPT when a field cannot be read
 * (`why` names it and quotes its value). */
typedef void (*saga_lease_candidate_cb)(int status, const saga_lease_candidate_t *c,
                                        const char *why, void *data);

/* Reads owner, fence, state, definition and cancel flag of saga `id`. */
int saga_lease_candidate(saga_store_t *s, const char *id, saga_lease_candidate_cb cb,
                         void *data);

/* A page of a set: ids[0..n) and where the walk resumes (`next`, "0" when
 * the pass is complete). */
typedef void (*saga_lease_scan_cb)(int status, const char *next, const char *const *ids,
                                   size_t n, const char *why, void *data);

/* Reads about `count` ids of the set of `owner` (NULL: the orphans) in
 * shard `shard` from `cursor` ("0" to begin a pass): SSCAN, which never
 * offers the same id twice in a pass, unlike random sampling. -EINVAL for a
 * shard out of range. */
int saga_lease_scan(saga_store_t *s, unsigned shard, const char *owner, const char *cursor,
                    size_t count, saga_lease_scan_cb cb, void *data);

/* status 0 with the number of sagas in the set. */
typedef void (*saga_lease_count_cb)(int status, uint64_t n, const char *why, void *data);

/* Counts the sagas in the set of `owner` (NULL: the orphans) in shard
 * `shard`. -EINVAL for a shard out of range. */
int saga_lease_set_size(saga_store_t *s, unsigned shard, const char *owner,
                        saga_lease_count_cb cb, void *data);

/* Reads up to `count` ids of unfinished sagas from position `offset` of
 * shard `shard`'s index (newest first), for the sweep that finds sagas
 * missing from every set. Fewer than `count` means the end of that shard
 * was reached. -EINVAL for a shard out of range. */
int saga_lease_sweep(saga_store_t *s, unsigned shard, uint64_t offset, size_t count,
                     saga_lease_names_cb cb, void *data);

/* ---- Wake-ups and definitions ---------------------------------------- */

/* Takes up to `count` ids from the wake list of `worker` (sagas an
 * operator asked it to look at: cancels). */
int saga_lease_wake_list(saga_store_t *s, const char *worker, size_t count,
                         saga_lease_names_cb cb, void *data);

/* Publishes that saga `name` is now served under definition `hash` (what
 * `saga submit NAME` starts) and that `worker` serves it (listed by
 * saga_operator_definitions() while its lease runs, until
 * saga_lease_deregister()): FCALL saga_publish. -EINVAL for a name with a
 * newline. Publishing a name twice is harmless. */
int saga_lease_publish_definition(saga_store_t *s, const char *worker, const char *name,
                                  const char *hash, saga_lease_done_cb cb, void *data);

#endif
