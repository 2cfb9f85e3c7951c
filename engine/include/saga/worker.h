/*
 * worker.h -- a long-running worker: one of many processes sharing a Redis.
 *
 * A worker takes start requests from the intake stream (a consumer group,
 * so each request goes to one worker), runs up to `concurrency` sagas at
 * once under a lease it renews with heartbeats, claims the sagas of workers
 * whose lease expired (or that were released), and on stop lets attempts in
 * flight finish, then releases what it still owns so others take it over at
 * once. See docs/operations.md.
 */
#ifndef SAGA_WORKER_H
#define SAGA_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "saga/engine.h"
#include "redis/redis_url.h"
#include "saga/store.h"

typedef struct saga_worker_s saga_worker_t;

typedef struct saga_worker_options_s {
    const char *name;               /* unique among live workers */
    size_t concurrency;             /* sagas at once; 0: 1000 */
    uint64_t lease_ms;              /* 0: 10000 */
    uint64_t scan_ms;               /* claim/wake-up scan period; 0: lease/8, <= 500 */
    const char *const *plugin_dirs; /* NULL-terminated, or NULL */
    const saga_redis_url_t *url;    /* for the intake connection */
    bool metrics;                   /* count for saga_worker_metrics() (saga
                                       worker --metrics); off, the saga path
                                       pays nothing for it */
} saga_worker_options_t;

/* Creates a worker on a ready Redis store (`store` is borrowed and must
 * outlive the worker). Nothing is sent to Redis yet. Returns NULL with the
 * reason in `err` when an option is invalid (no Redis store, no intake URL
 * or one without host or socket, a bad name), the engine cannot be created
 * or memory is short; then whatever it had created is freed or closing
 * (handles close on the loop's next run, as with any libuv handle). */
saga_worker_t *saga_worker_new(uv_loop_t *loop, saga_store_t *store,
                               const saga_worker_options_t *opt, char *err,
                               size_t errlen);

/* Registers a definition to serve (takes ownership of `def` in every
 * case): its handlers are resolved here; its name is published (name ->
 * hash, what `saga submit NAME` starts) by saga_worker_start(), which
 * reports a failure to publish. Returns 0; -EINVAL with positioned
 * diagnostics appended (a handler or plugin missing); -EBUSY after
 * saga_worker_start(); -ENOMEM. */
int saga_worker_add_definition(saga_worker_t *w, saga_def_t *def,
                               saga_diags_t *diags);

/* The outcome of a start: status 0 once the worker serves (its
 * definitions' names are published, its lease is held, the intake group
 * exists); or the reason it does not, in `msg` (valid during the call):
 * SAGA_ESTORE when Redis refused to publish a name or to create the intake
 * group (the worker holds its lease but takes no work: stop it), or
 * SAGA_ECLOSING when the worker was stopped first. While Redis cannot be
 * reached the worker keeps trying, and the callback waits. */
typedef void (*saga_worker_started_cb)(saga_worker_t *w, int status,
                                       const char *msg, void *data);

/* Starts serving: publishes the definitions' names, takes the lease (first
 * heartbeat), then the intake, claims and wake-ups. Returns 0 and runs
 * `started` (may be NULL) once, later; or a negative code (-EALREADY:
 * started before; SAGA_ECLOSING: stopping; the intake connection's code),
 * and then `started` never runs. */
int saga_worker_start(saga_worker_t *w, saga_worker_started_cb started,
                      void *data);

/* How long a stopping worker waits for Redis after its grace period to
 * take its hand-back (releases, the lease's drop, results in flight). */
#define SAGA_WORKER_HANDBACK_MS 2000

/* Stops (a worker started or not): no new work; attempts in flight get
 * `grace_ms`; results are written; what the worker still owns is released;
 * its lease is dropped. `done` runs once, later, when every command the
 * worker sent is answered and everything of it is closed (the store
 * stays). A second call does nothing.
 *
 * Bounded whatever Redis does: when Redis has not answered everything
 * SAGA_WORKER_HANDBACK_MS after the grace (unreachable: its connections
 * retrying, writes pending), the stop ends without it and `done` runs with
 * calls still outstanding in the store. What did not reach Redis is lost
 * for this worker (saga_worker_stop_status() says so, the log says what):
 * its sagas stay owned under its lease, and other workers take them over
 * from their last checkpoint once it expires. The caller then closes the
 * store, which answers those calls (SAGA_ECLOSING), before
 * saga_worker_free(). (Only handler calls that never complete can hold the
 * stop longer: the engine waits for them, and says so.) */
void saga_worker_stop(saga_worker_t *w, uint64_t grace_ms,
                      void (*done)(void *data), void *data);

/* After the stop's `done`: 0 when everything was handed back (every
 * release and the lease's drop acknowledged by Redis), SAGA_EUNAVAILABLE
 * when Redis could not be reached for some of it (logged). */
int saga_worker_stop_status(const saga_worker_t *w);

/* Frees a worker after its stop's `done` ran (and, when the stop gave up
 * on Redis, after the store closed). Accepts NULL. */
void saga_worker_free(saga_worker_t *w);

/* Sagas running in this worker now. */
size_t saga_worker_active(const saga_worker_t *w);

/* Writes the worker's metrics in the Prometheus text format (0.0.4):
 * sagas started, finished (by saga and final state, `lost` included), in
 * flight; step attempts (by saga, step, phase, outcome) and their
 * durations; checkpoint-write latency; takeovers, fenced writes, Redis
 * reconnects (docs/operations.md, "Metrics"). Loop thread only. Returns 0,
 * -EIO when `out` failed, or -ENOTSUP when the worker was created without
 * `metrics`. */
int saga_worker_metrics(saga_worker_t *w, FILE *out);

#endif
