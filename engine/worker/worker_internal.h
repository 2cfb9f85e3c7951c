/*
 * worker_internal.h -- what worker.c (intake, life cycle) and claim.c
 * (claims, sweep, takeover, releases) share. Private to engine/worker/.
 *
 * Every store call whose callback gets the worker is counted in `calls`
 * (saga__worker_call / saga__worker_answered): a stopping worker closes
 * only once they are all answered, so that no answer reaches a freed worker.
 */
#ifndef SAGA_WORKER_INTERNAL_H
#define SAGA_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "saga/engine.h"
#include "saga/worker.h"
#include "store/intake.h"
#include "store/shards.h"
#include "util/metrics.h"
#include "util/strmap.h"

/* A definition's name to publish at start (name -> hash). */
typedef struct saga__pub_s {
    saga_worker_t *w;
    int state;                /* PUB_UNSENT, PUB_SENT, PUB_DONE */
    char hash[65];
    char name[];
} saga__pub_t;

/* The worker's metrics (worker_metrics.c). */
typedef struct saga__worker_metrics_s saga__worker_metrics_t;

struct saga_worker_s {
    uv_loop_t *loop;
    saga_store_t *store;
    saga_intake_t *intake;    /* ours: the intake stream and its blocking reads */
    saga_engine_t *engine;
    char *name;
    size_t concurrency;
    uint64_t lease_ms;
    uint64_t scan_ms;
    uv_timer_t hb_timer;
    uv_timer_t scan_timer;
    uv_timer_t intake_timer;
    uv_timer_t stop_timer;    /* the stop's deadline: grace + hand-back */
    uv_check_t ack_check;     /* sends the acknowledgements of a loop turn */
    struct saga__ack_s *acks; /* intake entries to acknowledge */
    size_t nacks;             /* ... how many (at most SAGA_INTAKE_DONE_MAX) */
    /* The blocking read of each shard of the intake (store/shards.h) and
     * the requests the reads in flight may bring, together. */
    struct saga__read_s {
        struct saga_worker_s *w;
        unsigned shard;
        bool reading;
        size_t count;         /* what the read in flight asked for */
    } reads[SAGA_SHARDS_MAX];
    size_t read_out;
    unsigned read_next;       /* the shard whose turn comes first */
    /* Start requests read ahead, to start the moment a saga finishes
     * (delivered to us, unacknowledged: pending under our name). */
    struct saga__request_s *ready_head, *ready_tail;
    size_t nready;
    bool starting_ready;      /* start_ready() runs (no recursion) */
    saga_strmap_t owned;      /* id -> owned_t, sagas running here */
    saga_strmap_t pending;    /* id -> pend_t, creations awaiting their ack */
    saga_strmap_t claiming;   /* id -> claim_t, claims in flight */
    saga_strmap_t unrunnable; /* hash -> hash, definitions we cannot run */
    saga_strmap_t dead;       /* name -> name: workers whose lease expired,
                                 as of the last scan */
    saga_strmap_t leased;     /* name -> name: owners of candidates found to
                                 hold a lease, since the last scan (claim.c) */
    saga_strmap_t cursors;    /* set -> cursor_t: where SSCAN resumes */
    saga__pub_t **pubs;       /* definitions' names to publish at start */
    size_t npubs;
    size_t pubs_left;         /* not yet published */
    size_t sweep_offset;      /* next page of the unfinished sagas to sweep */
    unsigned sweep_shard;     /* ... in this shard of the index (claim.c) */
    size_t batch_left;        /* claims of the current scan batches in flight */
    size_t loading;           /* requests waiting for a definition */
    size_t calls;             /* store calls in flight that call us back */
    bool sweeping;
    bool closing_handles;
    bool start_called;
    bool lease_ok;            /* a heartbeat was answered */
    bool grouping;            /* the intake group's creation is in flight */
    bool regrouping;          /* the group is being created again (it was gone) */
    bool intake_failing;      /* an intake connection failed to connect: warned
                               * once, until one connects again */
    bool engine_down;         /* the engine's shutdown completed */
    /* The hand-back at stop (releases and the lease's drop). */
    size_t handback_sent;     /* releases sent */
    size_t handback_ok;       /* ... that Redis acknowledged */
    size_t handback_failed;   /* ... refused, unsent or unanswered */
    bool lease_dropped;       /* Redis acknowledged the lease's drop */
    bool gave_up;             /* the stop's deadline passed with Redis
                                 unanswered: the stop ended without it */
    bool start_failed;
    bool started;             /* serving: intake, claims, wake-ups */
    bool stopping;
    bool scanning;
    int open_handles;
    saga_worker_started_cb started_cb; /* until it ran */
    void *started_data;
    void (*done)(void *);
    void *done_data;
    saga_store_t *timed;      /* the engine's store: `store` with its writes
                                 timed (store/store_timed.h) */
    saga__worker_metrics_t *m;
};

/* Sagas this worker can take on now (running, loading and being claimed
 * count against its concurrency). */
size_t saga__worker_capacity(const saga_worker_t *w);

/* A saga running here: map values embed their key (and the saga's name),
 * so a delete frees one block. */
typedef struct saga__owned_s {
    uint64_t fence;
    bool live;                /* exists in the store under us: created here
                                 durably, or taken over (metrics count it) */
    const char *saga;         /* its definition's name, in the block */
    char id[];
} saga__owned_t;

/* Notes that saga `id` (of definition `saga`, may be NULL) runs here under
 * `fence`; `live` as above. Returns 0 or -ENOMEM. */
int saga__worker_own(saga_worker_t *w, const char *id, const char *saga, uint64_t fence,
                     bool live);

/* Asks for as many start requests as there is room for. */
void saga__worker_read_intake(saga_worker_t *w);

/* The scan timer: wake-ups, takeover scans, the intake's autoclaim. */
void saga__worker_scan(uv_timer_t *t);

/* Counts a store call that will call the worker back, and its answer; the
 * answer of the last one lets a stopping worker close. */
void saga__worker_call(saga_worker_t *w);
void saga__worker_answered(saga_worker_t *w);

/* `cb` gets the registered definition with `hash`, loaded from the store if
 * need be, or NULL when this worker cannot run it (unknown, invalid, a
 * plugin or handler missing). It may run inside this call. */
typedef void (*saga__def_cb)(saga_worker_t *w, saga_engine_def_t *d, void *data);
void saga__worker_ensure_def(saga_worker_t *w, const char *hash, saga__def_cb cb,
                             void *data);

/* ---- worker_metrics.c ---- */

/* Creates the worker's registry and families into w->m. Returns 0 or
 * -ENOMEM (w->m NULL). */
int saga__worker_metrics_init(saga_worker_t *w);

/* Frees w->m. Accepts a worker without. */
void saga__worker_metrics_free(saga_worker_t *w);

/* What the engine reports (its on_progress), and the worker's own events.
 * Each does nothing when w->m is NULL. */
void saga__worker_metrics_progress(const saga_progress_t *p, void *data);
void saga__worker_metrics_started(saga_worker_t *w, const char *saga);
void saga__worker_metrics_finished(saga_worker_t *w, const char *saga, const char *state);
void saga__worker_metrics_takeover(saga_worker_t *w);

/* The timed store's hook: a checkpoint write acknowledged. */
void saga__worker_metrics_write(int status, uint64_t elapsed_ns, void *data);

/* ---- claim.c ---- */

/* Gives saga `id` up (see saga_lease_release): unowned, and (to_orphans)
 * listed for others to claim. Fire and forget, except for a stopping
 * worker, which counts the outcome (handback_ok, handback_failed).
 * Returns 0 when it was sent, or the reason it was not (the store cannot
 * reach Redis, out of memory). */
int saga__worker_release(saga_worker_t *w, const char *id, uint64_t fence,
                         bool to_orphans);

/* One round of takeover: the dead workers' sets and the orphans, and a page
 * of the sweep. Returns false when no round was begun (no room, or the
 * last one is still being read). */
bool saga__worker_takeover(saga_worker_t *w);

/* Frees what claim.c keeps in the worker. */
void saga__worker_claims_free(saga_worker_t *w);

#endif
