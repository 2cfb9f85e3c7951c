/*
 * claim.c -- how a worker takes sagas over and gives them up: releases,
 * claims of the sagas of dead workers and of the orphans, the sweep of the
 * unfinished sagas that finds those missing from every set (worker.h,
 * docs/operations.md). Through the store's lease operations
 * (store/lease.h) only.
 *
 * A candidate is read (owner, fence, state, definition), checked (its
 * owner dead, or nobody's; a definition this worker can run), claimed (the
 * fence bumped: the old owner's writes are refused from then on), listed
 * under our name and resumed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/errors.h"
#include "store/lease.h"
#include "util/log.h"
#include "util/strmap.h"
#include "worker/worker_internal.h"

#define NAME_MAX_LEN 256
#define SWEEP_PAGE 100
#define SCAN_PAGE_MAX 1000

/* ---------------------------------------------------------------------- */
/* Releasing                                                               */
/* ---------------------------------------------------------------------- */

typedef struct release_s {
    saga_worker_t *w;
    bool handback;            /* sent by a stopping worker: counted */
    char id[SAGA_ID_MAX + 1];
} release_t;

static void on_released(int status, const char *why, void *data) {
    release_t *rl = data;
    saga_worker_t *w = rl->w;
    /* After the stop gave up on Redis, the answers are the store's close
     * (SAGA_ECLOSING): the summary said what was not handed back. */
    if (status != 0 && status != SAGA_EUNAVAILABLE && !w->gave_up)
        saga_warn("worker %s: releasing saga %s: %s", w->name, rl->id, why);
    if (rl->handback && !w->gave_up) {
        if (status == 0)
            w->handback_ok++;
        else
            w->handback_failed++;
    }
    free(rl);
    saga__worker_answered(w);
}

int saga__worker_release(saga_worker_t *w, const char *id, uint64_t fence, bool to_orphans) {
    release_t *rl = calloc(1, sizeof(*rl));
    int rc = rl != NULL ? 0 : -ENOMEM;
    if (rl != NULL) {
        rl->w = w;
        rl->handback = w->stopping;
        snprintf(rl->id, sizeof(rl->id), "%s", id);
        rc = saga_lease_release(w->store, id, w->name, fence, to_orphans, on_released, rl);
    }
    if (w->stopping)
        w->handback_sent++;
    if (rc != 0) {
        free(rl);
        if (w->stopping)
            w->handback_failed++;
        return rc;
    }
    saga__worker_call(w);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Claims                                                                  */
/* ---------------------------------------------------------------------- */

/* Where a candidate was found, which says who may take it. */
typedef enum from_e {
    FROM_DEAD,     /* the owned set of a worker whose lease expired */
    FROM_ORPHANS,  /* released, retried or cancelled by an operator */
    FROM_SWEEP     /* the slow sweep of the unfinished sagas */
} from_t;

typedef struct claim_s {
    saga_worker_t *w;
    from_t from;
    bool batch;                      /* part of a scan batch (batch_left) */
    char id[SAGA_ID_MAX + 1];
    char dead[NAME_MAX_LEN];         /* FROM_DEAD: whose set it was found in */
    char expected[NAME_MAX_LEN];     /* owner expected in the record */
    char hash[65];                   /* its definition's */
    uint64_t fence;
} claim_t;

/* The set a candidate was found in, as lease.h names sets: a worker's
 * name, or NULL for the orphans. */
static const char *from_set(const claim_t *cl) {
    return cl->from == FROM_DEAD ? cl->dead : NULL;
}

static void claim_end(claim_t *cl) {
    saga_worker_t *w = cl->w;
    bool batch = cl->batch;
    saga_strmap_del(&w->claiming, cl->id);
    free(cl);
    /* A finished batch asks for the next one at once: taking over a dead
     * worker's sagas goes as fast as claims complete, not one batch per
     * scan period. */
    if (batch && --w->batch_left == 0 && !w->stopping)
        uv_timer_start(&w->scan_timer, saga__worker_scan, 0, w->scan_ms);
    saga__worker_read_intake(w);
}

/* The saga was found somewhere it has nothing to do any more. */
static void unlist(claim_t *cl) {
    if (cl->from != FROM_SWEEP)
        saga_lease_unlist(cl->w->store, from_set(cl), cl->id, NULL, NULL);
}

static void on_claim_resumed(int status, const char *msg, void *data) {
    claim_t *cl = data;
    saga_worker_t *w = cl->w;
    if (status == 0) {
        const saga_def_t *def = saga_engine_lookup(w->engine, cl->hash);
        saga__worker_own(w, cl->id, def ? def->name : NULL, cl->fence, true);
        saga__worker_metrics_takeover(w);
        saga_info("worker %s: took over saga %s (fence %" PRIu64 ")", w->name, cl->id, cl->fence);
    } else if (status != SAGA_EEXIST) {
        saga_error("worker %s: claimed saga %s but cannot resume it: %s", w->name, cl->id,
                   msg ? msg : saga_strerror(status));
    }
    claim_end(cl);
}

static void resume_claimed(claim_t *cl) {
    saga_worker_t *w = cl->w;
    /* It is ours now: list it under our name. */
    saga_lease_list_owned(w->store, cl->id, w->name, cl->from != FROM_SWEEP, from_set(cl),
                          NULL, NULL);
    if (w->stopping ||
        saga_engine_resume_fenced(w->engine, cl->id, cl->fence, on_claim_resumed, cl) != 0) {
        /* Stopping: give it straight back. */
        saga__worker_release(w, cl->id, cl->fence, true);
        claim_end(cl);
    }
}

static void on_claimed(int status, uint64_t fence, const char *why, void *data) {
    claim_t *cl = data;
    saga_worker_t *w = cl->w;
    saga__worker_answered(w);
    if (status != 0) {
        /* Lost, taken by another worker first, or finished meanwhile. */
        if (status == SAGA_ESTATE)
            unlist(cl);
        else if (status != SAGA_EFENCED && status != SAGA_EUNAVAILABLE &&
                 status != SAGA_ENOTFOUND)
            saga_warn("worker %s: claiming saga %s: %s", w->name, cl->id, why);
        claim_end(cl);
        return;
    }
    cl->fence = fence;
    resume_claimed(cl);
}

static void claim_with_def(saga_worker_t *w, saga_engine_def_t *d, void *data) {
    claim_t *cl = data;
    if (d == NULL || w->stopping) {
        claim_end(cl); /* a worker never claims what it cannot run */
        return;
    }
    if (saga_lease_claim(w->store, cl->id, cl->expected, w->name, on_claimed, cl) != 0) {
        claim_end(cl);
        return;
    }
    saga__worker_call(w);
}

/* Sets of worker names (w->dead, w->leased): name -> the same string. */
static void names_clear(saga_strmap_t *m) {
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(m, &pos, &k, &v);)
        free(v);
    saga_strmap_close(m);
    saga_strmap_init(m);
}

/* Adds `name` once (out of memory: left out, asked about again later). */
static void names_add(saga_strmap_t *m, const char *name) {
    if (saga_strmap_get(m, name) != NULL)
        return;
    char *copy = strdup(name);
    if (copy != NULL && saga_strmap_put(m, copy, copy, NULL) != 0)
        free(copy);
}

/* Whether the owner of a candidate (cl->expected, neither dead nor known
 * to hold a lease) holds one: if not, it is gone and its saga ours to take. */
static void on_owner_lease(int status, bool held, const char *why, void *data) {
    claim_t *cl = data;
    saga_worker_t *w = cl->w;
    saga__worker_answered(w);
    if (status != 0 || w->stopping) {
        if (status != 0 && status != SAGA_EUNAVAILABLE)
            saga_warn("worker %s: reading the lease of %s, owner of saga %s: %s", w->name,
                      cl->expected, cl->id, why);
        claim_end(cl);
        return;
    }
    if (held) {
        /* once: candidates of one owner may be answered together */
        names_add(&w->leased, cl->expected);
        claim_end(cl);
        return;
    }
    saga_info("worker %s: saga %s belongs to %s, which holds no lease: taking it over",
              w->name, cl->id, cl->expected);
    saga__worker_ensure_def(w, cl->hash, claim_with_def, cl);
}

static void on_candidate(int status, const saga_lease_candidate_t *c, const char *why,
                         void *data) {
    claim_t *cl = data;
    saga_worker_t *w = cl->w;
    saga__worker_answered(w);
    if (status != 0 || w->stopping) {
        if (status == SAGA_ECORRUPT)
            saga_error("worker %s: saga %s: %s; left as it is", w->name, cl->id, why);
        else if (status != 0 && status != SAGA_EUNAVAILABLE)
            saga_warn("worker %s: reading saga %s: %s", w->name, cl->id, why);
        claim_end(cl);
        return;
    }
    if (!c->exists || !c->managed || saga_state_terminal(c->state)) {
        /* Gone, finished, or not a worker's saga: nothing to claim. A
         * finished one may still be indexed as unfinished (its finisher
         * died before the index update): moved to the finished part. */
        unlist(cl);
        if (c->exists && saga_state_terminal(c->state))
            saga_lease_index_finished(w->store, cl->id, NULL, NULL);
        claim_end(cl);
        return;
    }
    snprintf(cl->hash, sizeof(cl->hash), "%s", c->def);
    if (strcmp(c->owner, w->name) == 0) {
        /* Ours already (a claim whose answer was lost): resume it. */
        cl->fence = c->fence;
        resume_claimed(cl);
        return;
    }
    /* Only a saga whose owner is gone may be taken; a parked (stuck) saga
     * nobody owns waits for an operator, unless one listed it. */
    const char *o = c->owner;
    bool owner_dead = o[0] != '\0' && saga_strmap_get(&w->dead, o) != NULL;
    bool parked = c->state == SAGA_STATE_STUCK && !c->cancel;
    bool take = owner_dead || (o[0] == '\0' && (cl->from != FROM_SWEEP || !parked));
    if (strlen(o) >= sizeof(cl->expected) || (!take && cl->from == FROM_ORPHANS)) {
        if (cl->from == FROM_ORPHANS && o[0] != '\0')
            unlist(cl);
        claim_end(cl);
        return;
    }
    snprintf(cl->expected, sizeof(cl->expected), "%s", o);
    if (!take && o[0] != '\0' && saga_strmap_get(&w->leased, o) == NULL) {
        /* An owner neither dead nor known to hold a lease: one without any
         * (forgotten, or gone before its saga was listed anywhere: a
         * create whose index entries never arrived) is gone for good, and
         * only the sweep can find its sagas. One found to hold a lease is
         * not asked about again until the next scan. */
        if (saga_lease_held(w->store, o, on_owner_lease, cl) != 0) {
            claim_end(cl);
            return;
        }
        saga__worker_call(w);
        return;
    }
    if (!take) {
        claim_end(cl);
        return;
    }
    saga__worker_ensure_def(w, c->def, claim_with_def, cl);
}

/* Looks at one saga, found in the set of `dead` (FROM_DEAD), the orphans,
 * or by the sweep, as possibly ours to take. */
static void candidate(saga_worker_t *w, const char *id, from_t from, const char *dead) {
    if (saga__worker_capacity(w) == 0 || saga_strmap_get(&w->owned, id) != NULL ||
        saga_strmap_get(&w->claiming, id) != NULL || strlen(id) > SAGA_ID_MAX)
        return;
    claim_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return;
    cl->w = w;
    cl->from = from;
    snprintf(cl->id, sizeof(cl->id), "%s", id);
    if (from == FROM_DEAD)
        snprintf(cl->dead, sizeof(cl->dead), "%s", dead);
    if (saga_strmap_put(&w->claiming, cl->id, cl, NULL) != 0) {
        free(cl);
        return;
    }
    if (from != FROM_SWEEP) {
        cl->batch = true;
        w->batch_left++;
    }
    if (saga_lease_candidate(w->store, id, on_candidate, cl) != 0) {
        claim_end(cl);
        return;
    }
    saga__worker_call(w);
}

/* ---------------------------------------------------------------------- */
/* Sets: the dead workers' and the orphans                                 */
/* ---------------------------------------------------------------------- */

/* Where the walk over one set stands: a set exists once per shard of the
 * global keys (store/lease.h), walked one shard after the other. Keyed by
 * "w:" + the dead worker's name, or "orphans". */
typedef struct cursor_s {
    unsigned shard;
    char cursor[24];
    char key[];
} cursor_t;

typedef struct set_scan_s {
    saga_worker_t *w;
    bool orphans;
    unsigned shard;             /* the shard this page comes from */
    char worker[NAME_MAX_LEN];  /* the dead worker the set belongs to */
    char key[NAME_MAX_LEN + 2]; /* its cursor's key */
} set_scan_t;

static const char *scan_owner(const set_scan_t *ss) { return ss->orphans ? NULL : ss->worker; }

static void scan_set(saga_worker_t *w, const char *worker);

static void on_forgotten(int status, const char *why, void *data) {
    saga_worker_t *w = data;
    if (status != 0 && status != SAGA_EUNAVAILABLE)
        saga_warn("worker %s: forgetting a dead worker: %s", w->name, why);
    saga__worker_answered(w);
}

/* Counting a dead worker's sets in every shard: it is forgotten only when
 * all of them are empty. */
typedef struct empty_check_s {
    saga_worker_t *w;
    unsigned left;              /* answers still to come */
    bool keep;                  /* a set is not empty, or was not counted */
    char worker[NAME_MAX_LEN];
} empty_check_t;

static void empty_check_answered(empty_check_t *ec) {
    saga_worker_t *w = ec->w;
    if (--ec->left > 0)
        return;
    /* A dead worker with nothing left in any shard: forget it. */
    if (!ec->keep && !w->stopping &&
        saga_lease_deregister(w->store, ec->worker, on_forgotten, w) == 0)
        saga__worker_call(w);
    free(ec);
}

static void on_set_size(int status, uint64_t n, const char *why, void *data) {
    empty_check_t *ec = data;
    saga_worker_t *w = ec->w;
    saga__worker_answered(w);
    if (status != 0 && status != SAGA_EUNAVAILABLE)
        saga_warn("worker %s: counting the sagas of %s: %s", w->name, ec->worker, why);
    if (status != 0 || n > 0)
        ec->keep = true;
    empty_check_answered(ec);
}

/* Counts the sets of dead worker `worker` in every shard, then forgets it
 * when they are all empty. */
static void check_empty(saga_worker_t *w, const char *worker) {
    unsigned k = saga_lease_shards(w->store);
    empty_check_t *ec = calloc(1, sizeof(*ec));
    if (ec == NULL || k == 0) {
        free(ec);
        return;
    }
    ec->w = w;
    snprintf(ec->worker, sizeof(ec->worker), "%s", worker);
    ec->left = k + 1; /* one more, dropped below: no answer frees it early */
    for (unsigned s = 0; s < k; s++) {
        if (saga_lease_set_size(w->store, s, worker, on_set_size, ec) == 0) {
            saga__worker_call(w);
        } else {
            ec->keep = true;
            ec->left--;
        }
    }
    empty_check_answered(ec);
}

/* One page of a set. A cursor walk, unlike random sampling, never offers
 * the same id twice in a pass. */
static void on_set_members(int status, const char *next, const char *const *ids, size_t n,
                           const char *why, void *data) {
    set_scan_t *ss = data;
    saga_worker_t *w = ss->w;
    saga__worker_answered(w);
    unsigned k = saga_lease_shards(w->store);
    bool last_shard = ss->shard + 1 >= k;
    cursor_t *cur = saga_strmap_get(&w->cursors, ss->key);
    if (status != 0 || w->stopping) {
        if (status != 0 && status != SAGA_EUNAVAILABLE) {
            saga_warn("worker %s: scanning %s in shard %u: %s", w->name,
                      ss->orphans ? "the orphans" : ss->worker, ss->shard, why);
            /* A shard's set that cannot be read (a key of the wrong type):
             * the next shard's, so that it hides no other. */
            if (cur != NULL && cur->shard == ss->shard) {
                cur->shard = last_shard ? 0 : ss->shard + 1;
                strcpy(cur->cursor, "0");
            }
        }
        free(ss);
        return;
    }
    bool pass_done = strcmp(next, "0") == 0;
    if (cur != NULL && cur->shard == ss->shard) {
        if (!pass_done) {
            snprintf(cur->cursor, sizeof(cur->cursor), "%s", next);
        } else {
            /* This shard's pass is over: the next shard's begins. */
            cur->shard = last_shard ? 0 : ss->shard + 1;
            strcpy(cur->cursor, "0");
        }
    }
    for (size_t i = 0; i < n; i++)
        candidate(w, ids[i], ss->orphans ? FROM_ORPHANS : FROM_DEAD, ss->worker);
    if (pass_done && last_shard && !ss->orphans)
        check_empty(w, ss->worker);
    else if (pass_done && !last_shard && n == 0 && saga__worker_capacity(w) > 0)
        /* Nothing offered (an empty shard): the next shard at once, not one
         * shard per scan period. */
        scan_set(w, scan_owner(ss));
    free(ss);
}

/* Reads the next page of the set of `worker` (NULL: the orphans). */
static void scan_set(saga_worker_t *w, const char *worker) {
    unsigned k = saga_lease_shards(w->store);
    set_scan_t *ss = calloc(1, sizeof(*ss));
    if (ss == NULL || k == 0 || (worker != NULL && strlen(worker) >= sizeof(ss->worker))) {
        free(ss);
        return;
    }
    ss->w = w;
    ss->orphans = worker == NULL;
    if (worker != NULL) {
        snprintf(ss->worker, sizeof(ss->worker), "%s", worker);
        snprintf(ss->key, sizeof(ss->key), "w:%s", worker);
    } else {
        snprintf(ss->key, sizeof(ss->key), "orphans");
    }
    cursor_t *cur = saga_strmap_get(&w->cursors, ss->key);
    if (cur == NULL) {
        size_t n = strlen(ss->key) + 1;
        if ((cur = malloc(sizeof(*cur) + n)) == NULL) {
            free(ss);
            return;
        }
        memcpy(cur->key, ss->key, n);
        cur->shard = 0;
        strcpy(cur->cursor, "0");
        if (saga_strmap_put(&w->cursors, cur->key, cur, NULL) != 0) {
            free(cur);
            free(ss);
            return;
        }
    }
    if (cur->shard >= k) {
        cur->shard = 0;
        strcpy(cur->cursor, "0");
    }
    ss->shard = cur->shard;
    size_t room = saga__worker_capacity(w);
    if (saga_lease_scan(w->store, ss->shard, scan_owner(ss), cur->cursor,
                        room > SCAN_PAGE_MAX ? SCAN_PAGE_MAX : room, on_set_members, ss) != 0) {
        free(ss);
        return;
    }
    saga__worker_call(w);
}

static void on_dead(int status, const char *const *names, size_t n, const char *why,
                    void *data) {
    saga_worker_t *w = data;
    w->scanning = false;
    saga__worker_answered(w);
    if (status != 0 && status != SAGA_EUNAVAILABLE)
        saga_warn("worker %s: reading the dead workers: %s", w->name, why);
    if (status != 0 || w->stopping)
        return;
    /* Remember who is dead: candidates found anywhere are checked against it. */
    names_clear(&w->dead);
    /* Who held a lease then may have lost it since: asked again. */
    names_clear(&w->leased);
    for (size_t i = 0; i < n; i++)
        names_add(&w->dead, names[i]);
    for (size_t i = 0; i < n && saga__worker_capacity(w) > 0; i++)
        if (strcmp(names[i], w->name) != 0 && names[i][0] != '\0')
            scan_set(w, names[i]);
    if (saga__worker_capacity(w) > 0)
        scan_set(w, NULL);
}

/* ---------------------------------------------------------------------- */
/* The sweep                                                               */
/* ---------------------------------------------------------------------- */

/* The sweep reads the unfinished sagas of the index a page per scan, one
 * shard after the other, so that a saga missing from every set (a crash
 * between two of our commands, which cannot be one atomic call across hash
 * slots) is still found. */
static void sweep(saga_worker_t *w);

static void on_sweep_page(int status, const char *const *ids, size_t n, const char *why,
                          void *data) {
    saga_worker_t *w = data;
    w->sweeping = false;
    saga__worker_answered(w);
    unsigned k = saga_lease_shards(w->store);
    if (status != 0 && status != SAGA_EUNAVAILABLE) {
        saga_warn("worker %s: sweeping the unfinished sagas of shard %u: %s", w->name,
                  w->sweep_shard, why);
        /* An index that cannot be read: the next shard's, so that it hides
         * no other. */
        w->sweep_offset = 0;
        w->sweep_shard = k > 0 ? (w->sweep_shard + 1) % k : 0;
    }
    if (status != 0 || w->stopping)
        return;
    bool next_shard = n < SWEEP_PAGE;
    if (next_shard) {
        w->sweep_offset = 0;
        w->sweep_shard = k > 0 ? (w->sweep_shard + 1) % k : 0;
    } else {
        w->sweep_offset += n;
    }
    for (size_t i = 0; i < n && saga__worker_capacity(w) > 0; i++)
        candidate(w, ids[i], FROM_SWEEP, NULL);
    /* An empty shard: the next one at once, up to the end of the pass (at
     * most one pass per scan period). */
    if (n == 0 && next_shard && w->sweep_shard != 0)
        sweep(w);
}

static void sweep(saga_worker_t *w) {
    unsigned k = saga_lease_shards(w->store);
    if (w->sweeping || saga__worker_capacity(w) == 0 || k == 0)
        return;
    if (w->sweep_shard >= k) {
        w->sweep_shard = 0;
        w->sweep_offset = 0;
    }
    if (saga_lease_sweep(w->store, w->sweep_shard, w->sweep_offset, SWEEP_PAGE, on_sweep_page,
                         w) == 0) {
        w->sweeping = true;
        saga__worker_call(w);
    }
}

bool saga__worker_takeover(saga_worker_t *w) {
    if (saga__worker_capacity(w) == 0 || w->scanning)
        return false;
    if (saga_lease_dead_workers(w->store, on_dead, w) == 0) {
        w->scanning = true;
        saga__worker_call(w);
    }
    sweep(w);
    return true;
}

void saga__worker_claims_free(saga_worker_t *w) {
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&w->claiming, &pos, &k, &v);)
        free(v);
    saga_strmap_close(&w->claiming);
}
