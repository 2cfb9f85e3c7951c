/*
 * worker.c -- see worker.h: the life cycle (start, lease, stop), the
 * intake of start requests, and what the engine reports. Claims, the sweep
 * and takeover are in claim.c.
 *
 * The worker speaks to Redis only through the store's operations
 * (store/intake.h, store/lease.h). They go out on the store's first
 * connection, in order, except the blocking read of new start requests,
 * which the intake sends on a connection of its own (a blocking command
 * would stall the pipelined checkpoints behind it).
 *
 * Coordination commands are not resent after a lost connection: each one is
 * either idempotent or repeated by the next scan. The one that matters, a
 * claim whose answer was lost, is recovered by the scan too: it finds the
 * saga owned by this worker but not running here, and resumes it.
 */
#include "saga/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stored_def.h"
#include "saga/errors.h"
#include "store/intake.h"
#include "store/lease.h"
#include "store/store_timed.h"
#include "util/bytes.h"
#include "util/log.h"
#include "util/strmap.h"
#include "worker/worker_internal.h"

#define DEFAULT_CONCURRENCY 1000
#define DEFAULT_LEASE_MS 10000
#define INTAKE_BLOCK_MS 1000
#define INTAKE_RETRY_MS 200
#define INTAKE_READ_MAX 500

enum { PUB_UNSENT, PUB_SENT, PUB_DONE };

size_t saga__worker_capacity(const saga_worker_t *w) {
    size_t busy = saga_engine_active(w->engine) + w->loading + w->claiming.count;
    return busy >= w->concurrency ? 0 : w->concurrency - busy;
}

static void stop_step(saga_worker_t *w);

void saga__worker_call(saga_worker_t *w) { w->calls++; }

void saga__worker_answered(saga_worker_t *w) {
    w->calls--;
    if (w->stopping)
        stop_step(w);
}

typedef struct pend_s {
    char entry[SAGA_INTAKE_ENTRY_MAX + 1]; /* the intake entry to acknowledge */
    unsigned shard;                        /* ... in this shard's stream */
    char id[];
} pend_t;

/* An intake entry to acknowledge. */
typedef struct saga__ack_s {
    unsigned shard;
    char entry[SAGA_INTAKE_ENTRY_MAX + 1];
} ack_t;

int saga__worker_own(saga_worker_t *w, const char *id, const char *saga, uint64_t fence,
                     bool live) {
    size_t n = strlen(id) + 1;
    size_t sn = strlen(saga ? saga : "") + 1;
    saga__owned_t *o = malloc(sizeof(*o) + n + sn);
    if (o == NULL)
        return -ENOMEM;
    o->fence = fence;
    o->live = live;
    memcpy(o->id, id, n);
    memcpy(o->id + n, saga ? saga : "", sn);
    o->saga = o->id + n;
    void *old = NULL;
    if (saga_strmap_put(&w->owned, o->id, o, &old) != 0) {
        free(o);
        return -ENOMEM;
    }
    free(old);
    return 0;
}

static void disown(saga_worker_t *w, const char *id) {
    free(saga_strmap_del(&w->owned, id));
}

/* ---------------------------------------------------------------------- */
/* Definitions by hash                                                     */
/* ---------------------------------------------------------------------- */

typedef struct def_req_s {
    saga_worker_t *w;
    saga__def_cb cb;
    void *data;
    char hash[65];
} def_req_t;

static void on_stored_def(int status, const char *why, saga_def_t *def, saga_diags_t *diags,
                          void *data) {
    def_req_t *r = data;
    saga_worker_t *w = r->w;
    saga_engine_def_t *d = NULL;
    /* Only a definition that cannot run (its text does not load or hash,
     * is not stored, or names handlers this worker lacks) is remembered as
     * unrunnable; a store that failed this time is asked again next time. */
    bool permanent = status == SAGA_ECORRUPT || status == SAGA_ENOTFOUND;
    if (status == 0 && !w->stopping) {
        d = saga_engine_register(w->engine, def, diags); /* takes `def` */
        def = NULL;
        permanent = d == NULL && diags->count > 0;
        if (d == NULL)
            saga_warn("worker %s: definition %.12s cannot run here: %s", w->name, r->hash,
                      diags->count > 0 ? diags->items[0].message : "out of memory");
    } else if (status != 0) {
        saga_warn("worker %s: definition %.12s: %s", w->name, r->hash,
                  why != NULL ? why : saga_strerror(status));
    }
    saga_def_free(def);
    if (d == NULL && permanent && !w->stopping) {
        char *h = strdup(r->hash);
        if (h != NULL && saga_strmap_put(&w->unrunnable, h, h, NULL) != 0)
            free(h);
    }
    r->cb(w, d, r->data);
    free(r);
    saga__worker_answered(w);
}

void saga__worker_ensure_def(saga_worker_t *w, const char *hash, saga__def_cb cb,
                             void *data) {
    saga_engine_def_t *d = saga_engine_find(w->engine, hash);
    if (d != NULL || saga_strmap_get(&w->unrunnable, hash) != NULL || strlen(hash) != 64) {
        cb(w, d, data);
        return;
    }
    def_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        cb(w, NULL, data);
        return;
    }
    r->w = w;
    r->cb = cb;
    r->data = data;
    memcpy(r->hash, hash, 65);
    if (saga_stored_def_load(w->store, hash, on_stored_def, r) != 0) {
        free(r);
        cb(w, NULL, data);
        return;
    }
    saga__worker_call(w);
}

/* ---------------------------------------------------------------------- */
/* Intake                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct saga__request_s {
    struct saga__request_s *next; /* in w->ready */
    unsigned shard;
    char entry[SAGA_INTAKE_ENTRY_MAX + 1];
    char id[SAGA_ID_MAX + 1];
    char hash[65];
    char *input;
} request_t;

/* Sends the acknowledgements collected so far: one call per shard for all
 * of them (saga_intake_done_many). Fire and forget: one that is lost leaves
 * its entries pending, and whoever reads them again finds their sagas
 * created (SAGA_EEXIST) and acknowledges them then. */
static void flush_acks(saga_worker_t *w) {
    if (w->nacks == 0)
        return;
    const char *v[SAGA_INTAKE_DONE_MAX];
    bool sent[SAGA_SHARDS_MAX] = {false};
    for (size_t i = 0; i < w->nacks; i++) {
        unsigned s = w->acks[i].shard;
        if (sent[s])
            continue;
        size_t n = 0;
        for (size_t j = i; j < w->nacks; j++)
            if (w->acks[j].shard == s)
                v[n++] = w->acks[j].entry;
        saga_intake_done_many(w->intake, s, v, n, NULL, NULL);
        sent[s] = true;
    }
    w->nacks = 0;
    if (!w->closing_handles)
        uv_check_stop(&w->ack_check);
}

static void on_ack_check(uv_check_t *h) { flush_acks(h->data); }

/* The request is done with: acknowledged (the stream trimmed), with the others done
 * in the same turn of the loop (after its I/O: uv_check), in one call. */
static void ack_entry(saga_worker_t *w, unsigned shard, const char *entry) {
    if (w->closing_handles ||
        (w->acks == NULL && (w->acks = malloc(SAGA_INTAKE_DONE_MAX * sizeof(*w->acks))) == NULL)) {
        saga_intake_done(w->intake, shard, entry, NULL, NULL);
        return;
    }
    w->acks[w->nacks].shard = shard;
    snprintf(w->acks[w->nacks++].entry, sizeof(w->acks[0].entry), "%s", entry);
    if (w->nacks == SAGA_INTAKE_DONE_MAX)
        flush_acks(w);
    else if (w->nacks == 1)
        uv_check_start(&w->ack_check, on_ack_check);
}

static void start_request(saga_worker_t *w, saga_engine_def_t *d, void *data) {
    request_t *rq = data;
    w->loading--;
    if (w->stopping) {
        /* Not acknowledged: another worker (or our next life) takes it. */
    } else if (d == NULL) {
        saga_warn("worker %s: cannot run saga %s (definition %.12s): left for another "
                  "worker", w->name, rq->id, rq->hash);
    } else {
        json_error_t je;
        json_t *input = json_loads(rq->input, JSON_REJECT_DUPLICATES, &je);
        char err[512];
        if (input == NULL || !json_is_object(input)) {
            saga_error("worker %s: start request %s for saga %s has invalid input "
                       "(%s); dropped", w->name, rq->entry, rq->id,
                       input ? "not an object" : je.text);
            ack_entry(w, rq->shard, rq->entry);
        } else {
            /* Noted before the start: the creation's ack may come at once. */
            size_t n = strlen(rq->id) + 1;
            pend_t *p = malloc(sizeof(*p) + n);
            if (p != NULL) {
                memcpy(p->entry, rq->entry, sizeof(p->entry));
                p->shard = rq->shard;
                memcpy(p->id, rq->id, n);
                if (saga_strmap_put(&w->pending, p->id, p, NULL) != 0) {
                    free(p);
                    p = NULL;
                }
            }
            int rc = p ? saga_engine_start(w->engine, d, rq->id, input, NULL, err, sizeof(err))
                       : -ENOMEM;
            if (rc == 0) {
                /* The first owner's fence; live once the creation is durable. */
                saga__worker_own(w, rq->id, saga_engine_def(d)->name, 1, false);
            } else {
                if (p != NULL)
                    free(saga_strmap_del(&w->pending, rq->id));
                if (rc == SAGA_EEXIST) {
                    ack_entry(w, rq->shard, rq->entry); /* running here already */
                } else if (rc == -EINVAL) {
                    saga_error("worker %s: start request for saga %s refused: %s; "
                               "dropped", w->name, rq->id, err);
                    ack_entry(w, rq->shard, rq->entry);
                } else {
                    saga_error("worker %s: cannot start saga %s: %s", w->name, rq->id,
                               rc == -ENOMEM ? "out of memory" : err);
                }
            }
        }
        json_decref(input);
    }
    free(rq->input);
    free(rq);
    saga__worker_read_intake(w);
}

/* Handles one start request read from the intake. */
static void handle_request(saga_worker_t *w, const saga_intake_request_t *q) {
    if (q->malformed != NULL) {
        saga_error("worker %s: malformed start request %s (%s); dropped", w->name, q->entry,
                   q->malformed);
        ack_entry(w, q->shard, q->entry);
        return;
    }
    if (saga_strmap_get(&w->pending, q->id) != NULL)
        return; /* being created already (delivered twice) */
    request_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL || (rq->input = saga_memdup(q->input, q->input_len)) == NULL) {
        free(rq);
        return;
    }
    snprintf(rq->entry, sizeof(rq->entry), "%s", q->entry);
    rq->shard = q->shard;
    snprintf(rq->id, sizeof(rq->id), "%s", q->id);
    snprintf(rq->hash, sizeof(rq->hash), "%s", q->hash);
    if (saga__worker_capacity(w) > 0) {
        w->loading++;
        saga__worker_ensure_def(w, rq->hash, start_request, rq);
        return;
    }
    /* No room now: ready for the first saga that finishes. */
    if (w->ready_tail != NULL)
        w->ready_tail->next = rq;
    else
        w->ready_head = rq;
    w->ready_tail = rq;
    w->nready++;
}

/* Starts requests read ahead while there is room. */
static void start_ready(saga_worker_t *w) {
    if (w->starting_ready)
        return; /* a start that completed at once: the loop below goes on */
    w->starting_ready = true;
    while (w->ready_head != NULL && !w->stopping && saga__worker_capacity(w) > 0) {
        request_t *rq = w->ready_head;
        if ((w->ready_head = rq->next) == NULL)
            w->ready_tail = NULL;
        w->nready--;
        rq->next = NULL;
        w->loading++;
        saga__worker_ensure_def(w, rq->hash, start_request, rq);
    }
    w->starting_ready = false;
}

/* Forgets the requests read ahead, unacknowledged. With `release` (a
 * stopping worker), hands them to the other workers first: they stay
 * pending, made to look idle for years, and the next XAUTOCLAIM of any
 * worker takes them; without (or when that is lost), whoever claims our
 * pending requests after our lease does, or our next life. */
static void drop_ready(saga_worker_t *w, bool release) {
    const char *v[SAGA_INTAKE_DONE_MAX];
    request_t *next;
    unsigned shards = release && w->intake != NULL ? saga_intake_shards(w->intake) : 0;
    for (unsigned s = 0; s < shards; s++) {
        size_t n = 0;
        for (request_t *rq = w->ready_head; rq != NULL; rq = rq->next) {
            if (rq->shard == s)
                v[n++] = rq->entry;
            if (n > 0 && (n == SAGA_INTAKE_DONE_MAX || rq->next == NULL)) {
                saga_intake_release(w->intake, s, v, n, NULL, NULL);
                n = 0;
            }
        }
    }
    for (request_t *rq = w->ready_head; rq != NULL; rq = next) {
        next = rq->next;
        free(rq->input);
        free(rq);
    }
    w->ready_head = w->ready_tail = NULL;
    w->nready = 0;
}

static void handle_requests(saga_worker_t *w, const saga_intake_request_t *reqs, size_t n) {
    for (size_t i = 0; i < n; i++)
        handle_request(w, &reqs[i]);
}

static void on_intake_timer(uv_timer_t *t) { saga__worker_read_intake(t->data); }

/* The end of shard rd->shard's read. */
static void read_done(struct saga__read_s *rd) {
    rd->w->read_out -= rd->count;
    rd->count = 0;
    rd->reading = false;
}

/* The intake group answered for once it is created again. */
static void on_regroup(int status, const char *why, void *data) {
    saga_worker_t *w = data;
    w->regrouping = false;
    saga__worker_answered(w);
    if (w->stopping)
        return;
    if (status != 0)
        saga_warn("worker %s: creating the intake group again: %s", w->name, why);
    else
        saga_info("worker %s: the intake group exists again", w->name);
    saga__worker_read_intake(w);
}

/* A read answered NOGROUP: the stream or its group is gone (Redis restarted
 * without its data, a failover to a replica that never had them, a
 * FLUSHALL). Without the group no request is ever read again: it is
 * created again (XGROUP CREATE ... MKSTREAM on every shard; one that
 * exists is fine), once at a time. True when `why` was that and the
 * creation is in flight (the reads go on once it is answered); false
 * otherwise (the caller retries as after any failed read). */
static bool regroup_if_gone(saga_worker_t *w, const char *why) {
    if (why == NULL || strncmp(why, "NOGROUP", 7) != 0 || w->stopping)
        return false;
    if (w->regrouping)
        return true;
    if (saga_intake_create_group(w->intake, on_regroup, w) != 0)
        return false;
    w->regrouping = true;
    saga__worker_call(w);
    saga_warn("worker %s: the intake group is gone (Redis lost its data?): "
              "creating it again", w->name);
    return true;
}

static void on_new_requests(int status, const saga_intake_request_t *reqs, size_t n,
                            const char *why, void *data) {
    struct saga__read_s *rd = data;
    saga_worker_t *w = rd->w;
    if (w->stopping) {
        read_done(rd);
        return;
    }
    if (status != 0) {
        read_done(rd);
        if (regroup_if_gone(w, why))
            return; /* read again once the group exists (on_regroup) */
        if (status != SAGA_EUNAVAILABLE)
            saga_warn("worker %s: reading the intake: %s", w->name, why);
        uv_timer_start(&w->intake_timer, on_intake_timer, INTAKE_RETRY_MS, 0);
        return;
    }
    /* Still counted as reading while the batch is handled: a start that
     * completes at once asks for more (start_request), and a read sent
     * then would count the room before the rest of this batch took its
     * share of it (the worker ran up to half again its concurrency). */
    handle_requests(w, reqs, n);
    read_done(rd);
    saga__worker_read_intake(w);
}

/* Asks every shard of the intake for as many start requests as there is
 * room for, waiting up to a second for new ones. */
void saga__worker_read_intake(saga_worker_t *w) {
    start_ready(w); /* what was read ahead first */
    if (!w->started || w->stopping)
        return;
    /* Room for what may start now, and for as many again as the read ahead
     * holds: half the concurrency, at most a read's worth. Without it the
     * sagas finishing while a read is on its way waited for the next one
     * (issue 21: about 750 of 1,000 in flight). The reads in flight hold
     * their share of it; the shards not reading share the rest. */
    size_t ahead = w->concurrency / 2 < INTAKE_READ_MAX ? w->concurrency / 2 : INTAKE_READ_MAX;
    size_t room = saga__worker_capacity(w) + ahead;
    if (room <= w->nready + w->read_out)
        return; /* a finishing saga calls us again */
    room -= w->nready + w->read_out;
    unsigned shards = saga_intake_shards(w->intake), idle = 0;
    for (unsigned s = 0; s < shards; s++)
        idle += !w->reads[s].reading && saga_intake_ready(w->intake, s);
    /* Every idle shard gets a read, of one at least: a shard left without
     * one would wait for a read elsewhere to end (up to a second) before
     * its requests were seen, and with less room than shards the same
     * shards would always come first. So the read ahead may exceed its
     * share by one per shard; the concurrency is never exceeded (a start
     * waits for room). The shards take turns at coming first. */
    bool retry = false;
    unsigned first = w->read_next;
    for (unsigned i = 0; i < shards && idle > 0; i++) {
        unsigned s = (first + i) % shards;
        struct saga__read_s *rd = &w->reads[s];
        if (rd->reading || !saga_intake_ready(w->intake, s))
            continue;
        size_t count = (room + idle - 1) / idle;
        if (count == 0)
            count = 1;
        if (count > INTAKE_READ_MAX)
            count = INTAKE_READ_MAX;
        room -= count < room ? count : room;
        idle--;
        rd->w = w;
        rd->shard = s;
        /* Not counted in w->calls: closing the intake ends it (SAGA_ECLOSING). */
        if (saga_intake_read_new(w->intake, s, count, INTAKE_BLOCK_MS, on_new_requests, rd) ==
            0) {
            rd->reading = true;
            rd->count = count;
            w->read_out += count;
            w->read_next = (s + 1) % shards;
        } else {
            retry = true;
        }
    }
    if (retry)
        uv_timer_start(&w->intake_timer, on_intake_timer, INTAKE_RETRY_MS, 0);
}

/* Our own unacknowledged requests (a previous life of this worker name),
 * and those that workers which died before acknowledging left behind. */
static void on_old_requests(int status, const saga_intake_request_t *reqs, size_t n,
                            const char *why, void *data) {
    saga_worker_t *w = data;
    saga__worker_answered(w);
    if (status != 0 && status != SAGA_EUNAVAILABLE && !regroup_if_gone(w, why))
        saga_warn("worker %s: reading unacknowledged start requests: %s", w->name, why);
    if (status == 0 && !w->stopping)
        handle_requests(w, reqs, n);
}

static void on_intake_event(saga_intake_t *in, saga_intake_event_t ev, const char *errstr,
                            void *data) {
    saga_worker_t *w = data;
    (void)in;
    if (ev == SAGA_INTAKE_READY) {
        if (w->intake_failing)
            saga_info("worker %s: intake connection made again", w->name);
        w->intake_failing = false;
        saga__worker_read_intake(w);
    } else if (ev == SAGA_INTAKE_CONNECT_FAILED && !w->stopping && !w->intake_failing) {
        /* Once, not at every retry of every shard's connection (several a
         * second each while Redis is down); the store logs its own. */
        w->intake_failing = true;
        saga_warn("worker %s: intake connection: %s; retrying", w->name,
                  errstr ? errstr : "failed");
    }
}

/* ---------------------------------------------------------------------- */
/* Engine events                                                           */
/* ---------------------------------------------------------------------- */

static void on_created(saga_engine_t *e, const char *id, int status, void *data) {
    saga_worker_t *w = data;
    (void)e;
    if (status == 0) {
        saga__owned_t *o = saga_strmap_get(&w->owned, id);
        if (o != NULL && !o->live) {
            o->live = true;
            saga__worker_metrics_started(w, o->saga);
        }
    }
    pend_t *p = saga_strmap_del(&w->pending, id);
    if (p == NULL)
        return;
    /* The request is done once its saga exists durably (or existed). */
    if (status == 0 || status == SAGA_EEXIST)
        ack_entry(w, p->shard, p->entry);
    free(p);
}

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state, int status,
                        void *data) {
    saga_worker_t *w = data;
    (void)e;
    saga__owned_t *o = saga_strmap_get(&w->owned, id);
    uint64_t fence = o ? o->fence : 0;
    /* Counted once per saga that existed under this worker: a creation
     * refused (a duplicate id included) never started here. */
    if (o != NULL && o->live)
        saga__worker_metrics_finished(w, o->saga, status != 0 ? "lost" : saga_state_name(state));
    if (status == SAGA_EEXIST) {
        /* Submitted twice: the first one runs (or ran) somewhere. */
    } else if (status != 0) {
        saga_warn("worker %s: saga %s dropped: %s", w->name, id, saga_strerror(status));
    } else if (state == SAGA_STATE_STUCK && fence != 0) {
        /* Parked for an operator: nobody owns it until `saga retry`. */
        saga__worker_release(w, id, fence, false);
    }
    disown(w, id);
    saga__worker_read_intake(w);
}

/* ---------------------------------------------------------------------- */
/* Scans                                                                   */
/* ---------------------------------------------------------------------- */

static void on_wake(int status, const char *const *ids, size_t n, const char *why,
                    void *data) {
    saga_worker_t *w = data;
    saga__worker_answered(w);
    if (status != 0 && status != SAGA_EUNAVAILABLE)
        saga_warn("worker %s: reading its wake list: %s", w->name, why);
    for (size_t i = 0; status == 0 && !w->stopping && i < n; i++) {
        /* Only cancels wake a worker up today; the engine checks the saga. */
        if (saga_engine_cancel(w->engine, ids[i]) == 0)
            saga_info("worker %s: saga %s: cancel requested by an operator", w->name, ids[i]);
    }
}

void saga__worker_scan(uv_timer_t *t) {
    saga_worker_t *w = t->data;
    if (w->stopping)
        return;
    if (saga_lease_wake_list(w->store, w->name, 100, on_wake, w) != 0)
        return; /* not connected: the next scan */
    saga__worker_call(w);
    if (!saga__worker_takeover(w))
        return;
    /* Start requests delivered to workers that died before acknowledging,
     * shared out over the shards. */
    size_t room = saga__worker_capacity(w);
    unsigned shards = saga_intake_shards(w->intake);
    if (room > 100)
        room = 100;
    for (unsigned s = 0; s < shards && room > 0; s++) {
        size_t count = (room + shards - 1) / shards;
        if (saga_intake_autoclaim(w->intake, s, w->lease_ms, count, on_old_requests, w) == 0)
            saga__worker_call(w);
    }
}

/* ---------------------------------------------------------------------- */
/* Start: names, lease, intake group                                       */
/* ---------------------------------------------------------------------- */

/* Runs the start's callback once, with status and a message. */
static void report_start(saga_worker_t *w, int status, const char *msg) {
    saga_worker_started_cb cb = w->started_cb;
    w->started_cb = NULL;
    if (cb != NULL)
        cb(w, status, msg, w->started_data);
}

static void start_failed(saga_worker_t *w, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void start_failed(saga_worker_t *w, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->start_failed = true;
    saga_error("worker %s: %s", w->name, msg);
    report_start(w, status, msg);
}

static void on_group(int status, const char *why, void *data) {
    saga_worker_t *w = data;
    w->grouping = false;
    saga__worker_answered(w);
    if (w->stopping)
        return;
    if (status == SAGA_EUNAVAILABLE)
        return; /* asked again after the next heartbeat */
    if (status != 0) {
        start_failed(w, status, "cannot create the intake group: %s", why);
        return;
    }
    w->started = true;
    for (unsigned s = 0; s < saga_intake_shards(w->intake); s++)
        if (saga_intake_read_pending(w->intake, s, w->concurrency, on_old_requests, w) == 0)
            saga__worker_call(w);
    saga__worker_read_intake(w);
    uv_timer_start(&w->scan_timer, saga__worker_scan, 0, w->scan_ms);
    report_start(w, 0, NULL);
}

/* Serves once the lease is held, every name is published and the intake
 * group exists. */
static void maybe_begin(saga_worker_t *w) {
    if (w->started || w->grouping || w->stopping || w->start_failed || !w->lease_ok ||
        w->pubs_left > 0)
        return;
    if (saga_intake_create_group(w->intake, on_group, w) == 0) {
        w->grouping = true;
        saga__worker_call(w);
    }
}

static void on_published(int status, const char *why, void *data) {
    saga__pub_t *p = data;
    saga_worker_t *w = p->w;
    saga__worker_answered(w);
    if (status == SAGA_EUNAVAILABLE) {
        p->state = PUB_UNSENT; /* sent again with the next heartbeat */
        return;
    }
    p->state = PUB_DONE;
    w->pubs_left--;
    if (status != 0) {
        if (!w->start_failed && !w->stopping)
            start_failed(w, status, "cannot publish saga %s (definition %.12s): %s", p->name,
                         p->hash, why);
        return;
    }
    maybe_begin(w);
}

static void publish(saga_worker_t *w) {
    for (size_t i = 0; i < w->npubs; i++) {
        saga__pub_t *p = w->pubs[i];
        if (p->state != PUB_UNSENT)
            continue;
        if (saga_lease_publish_definition(w->store, w->name, p->name, p->hash,
                                          on_published, p) == 0) {
            p->state = PUB_SENT;
            saga__worker_call(w);
        }
    }
}

/* Nothing records us as serving a saga (others forgot us while our lease
 * had lapsed, and what we serve with us): publish every name again. */
static void republish(saga_worker_t *w) {
    size_t n = 0;
    for (size_t i = 0; i < w->npubs; i++)
        if (w->pubs[i]->state == PUB_DONE) {
            w->pubs[i]->state = PUB_UNSENT;
            w->pubs_left++;
            n++;
        }
    if (n > 0)
        saga_warn("worker %s: others had forgotten us (our lease had lapsed): publishing "
                  "the %zu saga(s) we serve again", w->name, n);
    publish(w);
}

static void on_heartbeat(int status, bool expired, bool unlisted, const char *why,
                         void *data) {
    saga_worker_t *w = data;
    saga__worker_answered(w);
    if (status == SAGA_EUNAVAILABLE)
        return;
    if (status != 0) {
        saga_error("worker %s: heartbeat refused: %s", w->name, why);
        return;
    }
    if (expired)
        saga_warn("worker %s: our lease had expired (paused or cut off for too long); "
                  "sagas taken over meanwhile are dropped at their next write",
                  w->name);
    if (unlisted && w->lease_ok && !w->start_failed && !w->stopping)
        republish(w);
    w->lease_ok = true;
    maybe_begin(w);
}

static void heartbeat(saga_worker_t *w) {
    if (saga_lease_heartbeat(w->store, w->name, w->lease_ms, on_heartbeat, w) == 0)
        saga__worker_call(w);
}

static void on_hb_timer(uv_timer_t *t) {
    saga_worker_t *w = t->data;
    if (w->stopping)
        return;
    if (w->pubs_left > 0 && !w->start_failed)
        publish(w);
    heartbeat(w);
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */
/* ---------------------------------------------------------------------- */

static void free_pubs(saga_worker_t *w) {
    for (size_t i = 0; i < w->npubs; i++)
        free(w->pubs[i]);
    free(w->pubs);
    w->pubs = NULL;
    w->npubs = 0;
}

/* Frees every value of a map whose values own their keys (or are them). */
static void free_map(saga_strmap_t *m) {
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(m, &pos, &k, &v);)
        free(v);
    saga_strmap_close(m);
}

static void free_maps(saga_worker_t *w) {
    free_map(&w->owned); /* values hold their keys */
    free_map(&w->pending);
    saga__worker_claims_free(w);
    free_map(&w->unrunnable);
    free_map(&w->dead);
    free_map(&w->leased);
    free_map(&w->cursors);
}

saga_worker_t *saga_worker_new(uv_loop_t *loop, saga_store_t *store,
                               const saga_worker_options_t *opt, char *err,
                               size_t errlen) {
    if (loop == NULL || store == NULL || opt == NULL) {
        snprintf(err, errlen, "a worker needs a loop, a store and options");
        return NULL;
    }
    if (opt->name == NULL || opt->name[0] == '\0' || strlen(opt->name) > 128 ||
        strpbrk(opt->name, " {}\t\r\n") != NULL) {
        snprintf(err, errlen, "invalid worker name '%s' (1 to 128 characters, no "
                 "spaces or braces)", opt->name ? opt->name : "");
        return NULL;
    }
    saga_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->name = strdup(opt->name)) == NULL) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->store = store;
    w->concurrency = opt->concurrency ? opt->concurrency : DEFAULT_CONCURRENCY;
    w->lease_ms = opt->lease_ms ? opt->lease_ms : DEFAULT_LEASE_MS;
    w->scan_ms = opt->scan_ms ? opt->scan_ms : w->lease_ms / 8;
    if (w->scan_ms > 500)
        w->scan_ms = 500;
    if (w->scan_ms < 20)
        w->scan_ms = 20;
    saga_strmap_init(&w->owned);
    saga_strmap_init(&w->pending);
    saga_strmap_init(&w->claiming);
    saga_strmap_init(&w->unrunnable);
    saga_strmap_init(&w->dead);
    saga_strmap_init(&w->leased);
    saga_strmap_init(&w->cursors);
    /* The intake first, the engine last: a failure after the engine exists
     * would leave its timers in the loop. The intake's connection is
     * closed (not just freed) when the engine cannot be created. */
    /* With metrics, the engine writes through a store that times each write
     * and the engine reports each attempt; without, neither runs. */
    if (opt->metrics &&
        (saga__worker_metrics_init(w) != 0 ||
         (w->timed = saga_store_timed_new(store, saga__worker_metrics_write, w)) == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (saga_intake_new(loop, store, opt->url, w->name, on_intake_event, w, &w->intake, err,
                        errlen) != 0)
        goto fail;
    saga_engine_options_t eo = {
        .store = w->timed != NULL ? w->timed : store,
        .on_progress = opt->metrics ? saga__worker_metrics_progress : NULL,
        .plugin_dirs = opt->plugin_dirs,
        .worker = w->name,
        .on_finished = on_finished,
        .on_created = on_created,
        .owned = true,
        .data = w,
    };
    if ((w->engine = saga_engine_new(loop, &eo, err, errlen)) == NULL) /* err says why */
        goto fail;
    uv_timer_init(loop, &w->hb_timer);
    uv_timer_init(loop, &w->scan_timer);
    uv_timer_init(loop, &w->intake_timer);
    uv_timer_init(loop, &w->stop_timer);
    uv_check_init(loop, &w->ack_check);
    w->hb_timer.data = w->scan_timer.data = w->intake_timer.data = w->ack_check.data = w;
    w->stop_timer.data = w;
    w->open_handles = 5;
    return w;
fail:
    saga_intake_close(w->intake, NULL, NULL);
    free_maps(w);
    saga_store_timed_free(w->timed);
    saga__worker_metrics_free(w);
    free(w->name);
    free(w);
    return NULL;
}

int saga_worker_add_definition(saga_worker_t *w, saga_def_t *def, saga_diags_t *diags) {
    if (w->start_called) {
        saga_def_free(def);
        return -EBUSY;
    }
    size_t n = strlen(def->name) + 1;
    saga__pub_t *p = calloc(1, sizeof(*p) + n);
    saga__pub_t **v = p ? realloc(w->pubs, (w->npubs + 1) * sizeof(*v)) : NULL;
    if (v == NULL) {
        free(p);
        saga_def_free(def);
        return -ENOMEM;
    }
    w->pubs = v;
    p->w = w;
    p->state = PUB_UNSENT;
    memcpy(p->name, def->name, n);
    memcpy(p->hash, def->hash, 65);
    if (saga_engine_register(w->engine, def, diags) == NULL) {
        free(p);
        return -EINVAL;
    }
    /* A name served twice: the last definition added wins, as it would in
     * Redis (the hash is what the engine registered under). */
    for (size_t i = 0; i < w->npubs; i++)
        if (strcmp(w->pubs[i]->name, p->name) == 0) {
            free(w->pubs[i]);
            w->pubs[i] = p;
            return 0;
        }
    w->pubs[w->npubs++] = p;
    w->pubs_left++;
    return 0;
}

int saga_worker_start(saga_worker_t *w, saga_worker_started_cb started, void *data) {
    if (w->stopping)
        return SAGA_ECLOSING;
    if (w->start_called)
        return -EALREADY;
    int rc = saga_intake_connect(w->intake);
    if (rc != 0)
        return rc;
    w->start_called = true;
    w->started_cb = started;
    w->started_data = data;
    publish(w);
    heartbeat(w);
    uv_timer_start(&w->hb_timer, on_hb_timer, w->lease_ms / 3, w->lease_ms / 3);
    return 0;
}

size_t saga_worker_active(const saga_worker_t *w) { return saga_engine_active(w->engine); }

static void on_handle_closed(uv_handle_t *h) {
    saga_worker_t *w = h->data;
    if (--w->open_handles == 0 && w->intake == NULL && w->done != NULL)
        w->done(w->done_data);
}

static void on_intake_closed(void *data) {
    saga_worker_t *w = data;
    w->intake = NULL;
    if (w->open_handles == 0 && w->done != NULL)
        w->done(w->done_data);
}

/* True when the stop leaves the lease in Redis: one was held (a heartbeat
 * was answered) and its drop was not acknowledged. */
static bool lease_kept(const saga_worker_t *w) { return w->lease_ok && !w->lease_dropped; }

/* Says how the hand-back went: what was released, or, when Redis could
 * not be reached for all of it, what stays under the lease and when the
 * others take it. */
static void log_handback(saga_worker_t *w) {
    if (saga_worker_stop_status(w) == 0) {
        if (w->handback_ok > 0)
            saga_info("worker %s: released %zu unfinished saga(s) to other workers", w->name,
                      w->handback_ok);
        return;
    }
    size_t kept = w->handback_sent - w->handback_ok;
    const char *why = w->gave_up ? "Redis did not answer within the grace period"
                                 : "Redis could not be reached";
    if (lease_kept(w))
        saga_error("worker %s: stopped without reaching Redis (%s): %zu saga(s) stay owned "
                   "under its lease and results not yet written are lost here; they are "
                   "taken over by other workers once its lease expires (%" PRIu64 " ms "
                   "after its last heartbeat), each from its last checkpoint", w->name, why,
                   kept, w->lease_ms);
    else
        saga_error("worker %s: stopped without reaching Redis (%s): %zu saga(s) were not "
                   "released and results not yet written are lost here; its lease is "
                   "dropped, so other workers take them over at their next scan, each from "
                   "its last checkpoint", w->name, why, kept);
}

/* Ends the stop once every call is answered (releases, deregistration and
 * whatever was in flight), or once its deadline gave up on Redis. */
static void stop_step(saga_worker_t *w) {
    if ((w->calls > 0 && !w->gave_up) || w->closing_handles || !w->engine_down)
        return;
    flush_acks(w); /* before the intake closes */
    w->closing_handles = true;
    log_handback(w);
    uv_close((uv_handle_t *)&w->ack_check, on_handle_closed);
    uv_close((uv_handle_t *)&w->hb_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->scan_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->intake_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->stop_timer, on_handle_closed);
    saga_intake_close(w->intake, on_intake_closed, w);
}

/* The stop's deadline (its grace, then SAGA_WORKER_HANDBACK_MS): Redis has
 * not answered everything (its connections retrying, writes and releases
 * pending). The stop ends without it; the calls still out are answered
 * when the store closes (SAGA_ECLOSING), which the worker outlives. An
 * engine that is not down yet waits for handler calls, not for Redis (it
 * said so at its grace): the hand-back gets its time once it is. */
static void on_stop_deadline(uv_timer_t *t) {
    saga_worker_t *w = t->data;
    if (w->closing_handles || !w->engine_down)
        return;
    if (w->calls > 0) {
        w->gave_up = true;
        saga_warn("worker %s: Redis has not answered %zu call(s) of the stop %" PRIu64
                  " ms after its grace: stopping without them", w->name, w->calls,
                  (uint64_t)SAGA_WORKER_HANDBACK_MS);
    }
    stop_step(w);
}

static void on_deregistered(int status, const char *why, void *data) {
    saga_worker_t *w = data;
    if (status != 0 && status != SAGA_EUNAVAILABLE && !w->gave_up)
        saga_warn("worker %s: dropping its lease: %s", w->name, why);
    if (status == 0 && !w->gave_up)
        w->lease_dropped = true;
    saga__worker_answered(w);
}

static void on_engine_down(void *data) {
    saga_worker_t *w = data;
    /* What is still ours goes to others at once, not after our lease
     * (how it went is said once answered: log_handback()). */
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&w->owned, &pos, &k, &v);)
        saga__worker_release(w, k, ((saga__owned_t *)v)->fence, true);
    if (saga_lease_deregister(w->store, w->name, on_deregistered, w) == 0)
        saga__worker_call(w);
    w->engine_down = true;
    /* The engine came down after the deadline (handler calls held it):
     * the hand-back still gets its time. */
    if (!w->closing_handles && !uv_is_active((uv_handle_t *)&w->stop_timer))
        uv_timer_start(&w->stop_timer, on_stop_deadline, SAGA_WORKER_HANDBACK_MS, 0);
    report_start(w, SAGA_ECLOSING, "the worker was stopped before it served");
    stop_step(w);
}

void saga_worker_stop(saga_worker_t *w, uint64_t grace_ms, void (*done)(void *), void *data) {
    if (w->stopping)
        return;
    w->stopping = true;
    w->done = done;
    w->done_data = data;
    uv_timer_stop(&w->scan_timer);
    uv_timer_stop(&w->intake_timer);
    /* Bounded whatever Redis does: see on_stop_deadline(). */
    uint64_t deadline = grace_ms + SAGA_WORKER_HANDBACK_MS;
    uv_timer_start(&w->stop_timer, on_stop_deadline,
                   deadline < grace_ms ? UINT64_MAX : deadline, 0);
    drop_ready(w, true);
    saga_engine_shutdown(w->engine, grace_ms, on_engine_down, w);
}

int saga_worker_stop_status(const saga_worker_t *w) {
    bool all = w->handback_ok == w->handback_sent && w->handback_failed == 0;
    return w->gave_up || lease_kept(w) || !all ? SAGA_EUNAVAILABLE : 0;
}

void saga_worker_free(saga_worker_t *w) {
    if (w == NULL)
        return;
    saga_engine_free(w->engine);
    free_maps(w);
    drop_ready(w, false);
    free(w->acks);
    free_pubs(w);
    saga_store_timed_free(w->timed);
    saga__worker_metrics_free(w);
    free(w->name);
    free(w);
}
