/*
 * worker.c -- see worker.h.
 *
 * Everything a worker says to Redis outside of saga transitions goes
 * through the store's connection, except the blocking XREADGROUP on the
 * intake stream, which has a connection of its own (a blocking command
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/errors.h"
#include "store/keys.h"
#include "util/log.h"
#include "redis/redis_conn.h"
#include "store/store_redis.h"
#include "util/strmap.h"
#include "util/bytes.h"

#define DEFAULT_CONCURRENCY 1000
#define DEFAULT_LEASE_MS 10000
#define INTAKE_BLOCK_MS "1000"
#define INTAKE_RETRY_MS 200
#define KEY_MAX 256

struct saga_worker_s {
    uv_loop_t *loop;
    saga_store_t *store;
    saga_redis_t *conn;       /* the store's, borrowed */
    saga_redis_t *intake;     /* ours: blocking reads */
    saga_engine_t *engine;
    char *name;
    char owned_key[KEY_MAX];
    char wake_key[KEY_MAX];
    size_t concurrency;
    uint64_t lease_ms;
    uint64_t scan_ms;
    uv_timer_t hb_timer;
    uv_timer_t scan_timer;
    uv_timer_t intake_timer;
    saga_strmap_t owned;      /* id -> owned_t, sagas running here */
    saga_strmap_t pending;    /* id -> pend_t, creations awaiting their ack */
    saga_strmap_t claiming;   /* id -> claim_t, claims in flight */
    saga_strmap_t unrunnable; /* hash -> hash, definitions we cannot run */
    saga_strmap_t dead;       /* name -> name: workers whose lease expired,
                                 as of the last scan */
    size_t sweep_offset;      /* next page of the unfinished sagas to sweep */
    saga_strmap_t cursors;    /* set key -> cursor_t: where SSCAN resumes */
    size_t batch_left;        /* claims of the current scan batches in flight */
    bool sweeping;
    bool closing_handles;
    size_t loading;           /* requests waiting for a definition */
    bool started;
    bool stopping;
    bool reading;
    bool scanning;
    int open_handles;
    size_t stop_waits;        /* releases and deregistration in flight */
    void (*done)(void *);
    void *done_data;
};

static void read_intake(saga_worker_t *w);

static size_t capacity(const saga_worker_t *w) {
    size_t busy = saga_engine_active(w->engine) + w->loading + w->claiming.count;
    return busy >= w->concurrency ? 0 : w->concurrency - busy;
}

/* Map values embed their key, so a delete frees one block. */
typedef struct owned_s {
    uint64_t fence;
    char id[];
} owned_t;

typedef struct pend_s {
    char entry[64];  /* the intake stream entry to acknowledge */
    char id[];
} pend_t;

static int own(saga_worker_t *w, const char *id, uint64_t fence) {
    size_t n = strlen(id) + 1;
    owned_t *o = malloc(sizeof(*o) + n);
    if (o == NULL)
        return -ENOMEM;
    o->fence = fence;
    memcpy(o->id, id, n);
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

typedef void (*def_cb)(saga_worker_t *w, saga_engine_def_t *d, void *data);

typedef struct def_req_s {
    saga_worker_t *w;
    def_cb cb;
    void *data;
    char hash[65];
} def_req_t;

static void on_def_text(int status, const char *text, size_t len, void *data) {
    def_req_t *r = data;
    saga_worker_t *w = r->w;
    saga_engine_def_t *d = NULL;
    if (status == 0 && !w->stopping) {
        saga_diags_t diags;
        saga_diags_init(&diags);
        char source[96];
        snprintf(source, sizeof(source), "sagadef:%s", r->hash);
        saga_def_t *def = saga_def_load_buffer(source, text, len, &diags);
        if (def != NULL)
            d = saga_engine_register(w->engine, def, &diags);
        if (d == NULL && diags.count > 0)
            saga_warn("worker %s: definition %.12s cannot run here: %s", w->name, r->hash,
                      diags.items[0].message);
        saga_diags_close(&diags);
    } else if (status != 0) {
        saga_warn("worker %s: definition %.12s: %s", w->name, r->hash, saga_strerror(status));
    }
    if (d == NULL && status != SAGA_ECLOSING && !w->stopping) {
        char *h = strdup(r->hash);
        if (h != NULL && saga_strmap_put(&w->unrunnable, h, h, NULL) != 0)
            free(h);
    }
    r->cb(w, d, r->data);
    free(r);
}

/* Finds or loads the definition with `hash`; `cb` gets NULL when this
 * worker cannot run it (unknown, invalid, a plugin or handler missing). */
static void ensure_def(saga_worker_t *w, const char *hash, def_cb cb, void *data) {
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
    if (w->store->ops->get_definition(w->store, hash, on_def_text, r) != 0) {
        free(r);
        cb(w, NULL, data);
    }
}

/* ---------------------------------------------------------------------- */
/* Intake                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct request_s {
    char entry[64];
    char id[SAGA_ID_MAX + 1];
    char hash[65];
    char *input;
} request_t;

/* One call: a crash cannot fall between the acknowledgement and the
 * deletion (saga.lua, saga_intake_done). */
static void ack_entry(saga_worker_t *w, const char *entry) {
    saga_redis_command(w->conn, NULL, NULL, "FCALL saga_intake_done 1 %s %s %s",
                       SAGA_KEY_INTAKE, SAGA_INTAKE_GROUP, entry);
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
            ack_entry(w, rq->entry);
        } else {
            /* Noted before the start: the creation's ack may come at once. */
            size_t n = strlen(rq->id) + 1;
            pend_t *p = malloc(sizeof(*p) + n);
            if (p != NULL) {
                memcpy(p->entry, rq->entry, sizeof(p->entry));
                memcpy(p->id, rq->id, n);
                if (saga_strmap_put(&w->pending, p->id, p, NULL) != 0) {
                    free(p);
                    p = NULL;
                }
            }
            int rc = p ? saga_engine_start(w->engine, d, rq->id, input, NULL, err, sizeof(err))
                       : -ENOMEM;
            if (rc == 0) {
                own(w, rq->id, 1); /* the first owner's fence */
            } else {
                if (p != NULL)
                    free(saga_strmap_del(&w->pending, rq->id));
                if (rc == SAGA_EEXIST) {
                    ack_entry(w, rq->entry); /* running here already */
                } else if (rc == -EINVAL) {
                    saga_error("worker %s: start request for saga %s refused: %s; "
                               "dropped", w->name, rq->id, err);
                    ack_entry(w, rq->entry);
                } else if (rc != 0) {
                    saga_error("worker %s: cannot start saga %s: %s", w->name, rq->id, err);
                }
            }
        }
        json_decref(input);
    }
    free(rq->input);
    free(rq);
    read_intake(w);
}

static const redisReply *field_of(const redisReply *fields, const char *name) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

/* Handles one stream entry [entry-id, [field, value...]]. */
static void handle_entry(saga_worker_t *w, const redisReply *e) {
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return; /* a deleted entry (nil) or garbage */
    const char *entry = e->element[0]->str;
    const redisReply *id = field_of(e->element[1], "id");
    const redisReply *hash = field_of(e->element[1], "hash");
    const redisReply *input = field_of(e->element[1], "input");
    if (id == NULL || hash == NULL || input == NULL || id->len > SAGA_ID_MAX ||
        hash->len != 64 || strlen(entry) >= 64) {
        saga_error("worker %s: malformed start request %s; dropped", w->name, entry);
        ack_entry(w, entry);
        return;
    }
    if (saga_strmap_get(&w->pending, id->str) != NULL)
        return; /* being created already (delivered twice) */
    request_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL || (rq->input = saga_memdup(input->str, (size_t)input->len)) == NULL) {
        free(rq);
        return;
    }
    snprintf(rq->entry, sizeof(rq->entry), "%s", entry);
    memcpy(rq->id, id->str, (size_t)id->len + 1);
    memcpy(rq->hash, hash->str, 65);
    w->loading++;
    ensure_def(w, rq->hash, start_request, rq);
}

/* Entries of an XREADGROUP reply: [[stream, [entry...]]] (or nil). */
static void handle_read(saga_worker_t *w, const redisReply *r) {
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *st = r->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
            st->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t i = 0; i < st->element[1]->elements; i++)
            handle_entry(w, st->element[1]->element[i]);
    }
}

static void on_intake_timer(uv_timer_t *t) { read_intake(t->data); }

static void on_intake(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    w->reading = false;
    if (w->stopping)
        return;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r != NULL)
            saga_warn("worker %s: reading the intake: %s", w->name, r->str);
        uv_timer_start(&w->intake_timer, on_intake_timer, INTAKE_RETRY_MS, 0);
        return;
    }
    handle_read(w, r);
    read_intake(w);
}

/* Asks for as many start requests as there is room for, waiting up to a
 * second for new ones. */
static void read_intake(saga_worker_t *w) {
    if (!w->started || w->stopping || w->reading || !saga_redis_ready(w->intake))
        return;
    size_t room = capacity(w);
    if (room == 0)
        return; /* a finishing saga calls us again */
    if (room > 500)
        room = 500;
    char count[24];
    snprintf(count, sizeof(count), "%zu", room);
    const char *argv[] = {"XREADGROUP", "GROUP", SAGA_INTAKE_GROUP, w->name, "COUNT",
                          count, "BLOCK", INTAKE_BLOCK_MS, "STREAMS", SAGA_KEY_INTAKE, ">"};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    if (saga_redis_command_argv(w->intake, on_intake, w, 11, argv, lens) == 0)
        w->reading = true;
    else
        uv_timer_start(&w->intake_timer, on_intake_timer, INTAKE_RETRY_MS, 0);
}

/* Our own unacknowledged requests (a previous life of this worker name). */
static void on_own_pending(saga_redis_t *c, redisReply *r, void *data) {
    (void)c;
    handle_read(data, r);
}

static void on_group(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        saga_error("worker %s: cannot create the intake group: %s", w->name, r->str);
    /* (hiredis's formatter knows no %zu: numbers go through %llu.) */
    saga_redis_command(w->conn, on_own_pending, w, "XREADGROUP GROUP %s %s COUNT %llu "
                       "STREAMS %s 0", SAGA_INTAKE_GROUP, w->name,
                       (unsigned long long)w->concurrency, SAGA_KEY_INTAKE);
    read_intake(w);
}

static void on_intake_event(saga_redis_t *r, saga_redis_event_t ev, const char *errstr,
                            void *data) {
    saga_worker_t *w = data;
    (void)r;
    if (ev == SAGA_REDIS_READY) {
        read_intake(w);
    } else if (ev == SAGA_REDIS_CONNECT_FAILED && !w->stopping) {
        saga_warn("worker %s: intake connection: %s", w->name, errstr ? errstr : "failed");
    }
}

/* ---------------------------------------------------------------------- */
/* Engine events                                                           */
/* ---------------------------------------------------------------------- */

static void on_created(saga_engine_t *e, const char *id, int status, void *data) {
    saga_worker_t *w = data;
    (void)e;
    pend_t *p = saga_strmap_del(&w->pending, id);
    if (p == NULL)
        return;
    /* The request is done once its saga exists durably (or existed). */
    if (status == 0 || status == SAGA_EEXIST)
        ack_entry(w, p->entry);
    free(p);
}

static void release(saga_worker_t *w, const char *id, uint64_t fence, bool to_orphans);

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state, int status,
                        void *data) {
    saga_worker_t *w = data;
    (void)e;
    owned_t *o = saga_strmap_get(&w->owned, id);
    uint64_t fence = o ? o->fence : 0;
    if (status == SAGA_EEXIST) {
        /* Submitted twice: the first one runs (or ran) somewhere. */
    } else if (status != 0) {
        saga_warn("worker %s: saga %s dropped: %s", w->name, id, saga_strerror(status));
    } else if (state == SAGA_STATE_STUCK && fence != 0) {
        /* Parked for an operator: nobody owns it until `saga retry`. */
        release(w, id, fence, false);
    }
    disown(w, id);
    read_intake(w);
}

/* ---------------------------------------------------------------------- */
/* Releasing                                                               */
/* ---------------------------------------------------------------------- */

typedef struct release_s {
    saga_worker_t *w;
    bool to_orphans;
    bool counted;
    char id[SAGA_ID_MAX + 1];
} release_t;

static void stop_step(saga_worker_t *w);

/* The last answer of a release: a stopping worker closes only after it. */
static void on_release_listed(saga_redis_t *c, redisReply *r, void *data) {
    release_t *rl = data;
    saga_worker_t *w = rl->w;
    (void)c;
    (void)r;
    if (rl->counted) {
        w->stop_waits--;
        stop_step(w);
    }
    free(rl);
}

static void on_released(saga_redis_t *c, redisReply *r, void *data) {
    release_t *rl = data;
    saga_worker_t *w = rl->w;
    (void)c;
    int rc = -1;
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        saga_warn("worker %s: releasing saga %s: %s", w->name, rl->id, r->str);
    } else if (r != NULL && rl->to_orphans) {
        rc = saga_redis_command(w->conn, on_release_listed, rl, "SMOVE %s %s %s",
                                w->owned_key, SAGA_KEY_ORPHANS, rl->id);
    } else if (r != NULL) {
        rc = saga_redis_command(w->conn, on_release_listed, rl, "SREM %s %s", w->owned_key,
                                rl->id);
    }
    if (rc != 0)
        on_release_listed(c, NULL, rl);
}

/* Gives a saga up: unowned, and (to_orphans) listed for others to claim. */
static void release(saga_worker_t *w, const char *id, uint64_t fence, bool to_orphans) {
    release_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return;
    rl->w = w;
    rl->to_orphans = to_orphans;
    rl->counted = w->stopping;
    snprintf(rl->id, sizeof(rl->id), "%s", id);
    char fs[24];
    snprintf(fs, sizeof(fs), "%" PRIu64, fence);
    if (saga_redis_command(w->conn, on_released, rl, "FCALL saga_release 2 "
                           SAGA_KEY_RECORD_FMT " " SAGA_KEY_HISTORY_FMT " %s %s", id, id,
                           w->name, fs) != 0) {
        free(rl);
        return;
    }
    if (rl->counted)
        w->stop_waits++;
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
    char from_set[KEY_MAX];          /* "" for the sweep */
    char expected[SAGA_ID_MAX + 1];  /* owner expected in the record */
    uint64_t fence;
} claim_t;

static void on_scan(uv_timer_t *t);

static void claim_end(claim_t *cl) {
    saga_worker_t *w = cl->w;
    bool batch = cl->batch;
    saga_strmap_del(&w->claiming, cl->id);
    free(cl);
    /* A finished batch asks for the next one at once: taking over a dead
     * worker's sagas goes as fast as claims complete, not one batch per
     * scan period. */
    if (batch && --w->batch_left == 0 && !w->stopping)
        uv_timer_start(&w->scan_timer, on_scan, 0, w->scan_ms);
    read_intake(w);
}

static void on_claim_resumed(int status, const char *msg, void *data) {
    claim_t *cl = data;
    saga_worker_t *w = cl->w;
    if (status == 0) {
        own(w, cl->id, cl->fence);
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
    if (cl->from_set[0] != '\0')
        saga_redis_command(w->conn, NULL, NULL, "SMOVE %s %s %s", cl->from_set, w->owned_key,
                           cl->id);
    else
        saga_redis_command(w->conn, NULL, NULL, "SADD %s %s", w->owned_key, cl->id);
    if (w->stopping ||
        saga_engine_resume_fenced(w->engine, cl->id, cl->fence, on_claim_resumed, cl) != 0) {
        /* Stopping: give it straight back. */
        release(w, cl->id, cl->fence, true);
        claim_end(cl);
    }
}

static void on_claimed(saga_redis_t *c, redisReply *r, void *data) {
    claim_t *cl = data;
    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        /* Lost, taken by another worker first, or finished meanwhile. */
        if (r != NULL && r->type == REDIS_REPLY_ERROR && cl->from_set[0] != '\0' &&
            strncmp(r->str, "SAGAFINISHED", 12) == 0)
            saga_redis_command(cl->w->conn, NULL, NULL, "SREM %s %s", cl->from_set, cl->id);
        claim_end(cl);
        return;
    }
    cl->fence = (uint64_t)r->integer;
    resume_claimed(cl);
}

static void claim_with_def(saga_worker_t *w, saga_engine_def_t *d, void *data) {
    claim_t *cl = data;
    if (d == NULL || w->stopping) {
        claim_end(cl); /* a worker never claims what it cannot run */
        return;
    }
    if (saga_redis_command(w->conn, on_claimed, cl, "FCALL saga_claim 2 " SAGA_KEY_RECORD_FMT
                           " " SAGA_KEY_HISTORY_FMT " %s %s", cl->id, cl->id, cl->expected,
                           w->name) != 0)
        claim_end(cl);
}

/* [owner, fence, state, def, cancel] of a candidate. */
static void on_candidate(saga_redis_t *c, redisReply *r, void *data) {
    claim_t *cl = data;
    saga_worker_t *w = cl->w;
    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 5 || w->stopping) {
        claim_end(cl);
        return;
    }
    const redisReply *owner = r->element[0], *fence = r->element[1], *state = r->element[2],
                     *def = r->element[3], *cancel = r->element[4];
    if (state->type != REDIS_REPLY_STRING || def->type != REDIS_REPLY_STRING ||
        fence->type != REDIS_REPLY_STRING ||
        strcmp(state->str, "completed") == 0 || strcmp(state->str, "compensated") == 0) {
        /* Gone, finished, or not a worker's saga: nothing to claim. */
        if (cl->from_set[0] != '\0')
            saga_redis_command(w->conn, NULL, NULL, "SREM %s %s", cl->from_set, cl->id);
        claim_end(cl);
        return;
    }
    const char *o = owner->type == REDIS_REPLY_STRING ? owner->str : "";
    if (strcmp(o, w->name) == 0) {
        /* Ours already (a claim whose answer was lost): resume it. */
        if (saga_parse_u64(fence->str, (size_t)fence->len, &cl->fence) != 0) {
            saga_error("worker %s: saga %s: its record's fence is not a number; left as it is",
                       w->name, cl->id);
            claim_end(cl);
            return;
        }
        resume_claimed(cl);
        return;
    }
    /* Only a saga whose owner is gone may be taken; a parked (stuck) saga
     * nobody owns waits for an operator, unless one listed it. */
    bool owner_dead = o[0] != '\0' && saga_strmap_get(&w->dead, o) != NULL;
    bool parked = strcmp(state->str, "stuck") == 0 &&
                  !(cancel->type == REDIS_REPLY_STRING && strcmp(cancel->str, "1") == 0);
    bool take = owner_dead || (o[0] == '\0' && (cl->from != FROM_SWEEP || !parked));
    if (!take) {
        if (cl->from == FROM_ORPHANS && o[0] != '\0')
            saga_redis_command(w->conn, NULL, NULL, "SREM %s %s", cl->from_set, cl->id);
        claim_end(cl);
        return;
    }
    snprintf(cl->expected, sizeof(cl->expected), "%s", o);
    ensure_def(w, def->str, claim_with_def, cl);
}

/* Looks at one saga, found in `set` (or by the sweep: set ""), as
 * possibly ours to take. */
static void candidate(saga_worker_t *w, const char *id, from_t from, const char *set) {
    if (capacity(w) == 0 || saga_strmap_get(&w->owned, id) != NULL ||
        saga_strmap_get(&w->claiming, id) != NULL || strlen(id) > SAGA_ID_MAX)
        return;
    claim_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return;
    cl->w = w;
    cl->from = from;
    snprintf(cl->id, sizeof(cl->id), "%s", id);
    if (saga_strmap_put(&w->claiming, cl->id, cl, NULL) != 0) {
        free(cl);
        return;
    }
    snprintf(cl->from_set, sizeof(cl->from_set), "%s", set);
    if (from != FROM_SWEEP) {
        cl->batch = true;
        w->batch_left++;
    }
    if (saga_redis_command(w->conn, on_candidate, cl, "HMGET " SAGA_KEY_RECORD_FMT
                           " owner fence state def cancel", id) != 0)
        claim_end(cl);
}

/* Where the walk over one set (a dead worker's, or the orphans) stands. */
typedef struct cursor_s {
    char cursor[24];
    char key[];
} cursor_t;

typedef struct set_scan_s {
    saga_worker_t *w;
    char set[KEY_MAX];
    char worker[KEY_MAX];  /* the dead worker the set belongs to, or "" */
} set_scan_t;

static void on_set_size(saga_redis_t *c, redisReply *r, void *data) {
    set_scan_t *ss = data;
    (void)c;
    /* A dead worker with nothing left: forget it. */
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        saga_redis_command(ss->w->conn, NULL, NULL, "ZREM %s %s", SAGA_KEY_WORKERS, ss->worker);
    free(ss);
}

/* One SSCAN page: [cursor, [id...]]. A cursor walk, unlike random
 * sampling, never offers the same id twice in a pass. */
static void on_set_members(saga_redis_t *c, redisReply *r, void *data) {
    set_scan_t *ss = data;
    saga_worker_t *w = ss->w;
    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        free(ss);
        return;
    }
    cursor_t *cur = saga_strmap_get(&w->cursors, ss->set);
    if (cur != NULL)
        snprintf(cur->cursor, sizeof(cur->cursor), "%s", r->element[0]->str);
    const redisReply *ids = r->element[1];
    for (size_t i = 0; i < ids->elements; i++)
        if (ids->element[i]->type == REDIS_REPLY_STRING)
            candidate(w, ids->element[i]->str, ss->worker[0] ? FROM_DEAD : FROM_ORPHANS,
                      ss->set);
    bool pass_done = strcmp(r->element[0]->str, "0") == 0;
    if (pass_done && ss->worker[0] != '\0' &&
        saga_redis_command(w->conn, on_set_size, ss, "SCARD %s", ss->set) == 0)
        return; /* ss freed by on_set_size */
    free(ss);
}

static void scan_set(saga_worker_t *w, const char *set, const char *worker) {
    cursor_t *cur = saga_strmap_get(&w->cursors, set);
    if (cur == NULL) {
        size_t n = strlen(set) + 1;
        if ((cur = malloc(sizeof(*cur) + n)) == NULL)
            return;
        memcpy(cur->key, set, n);
        strcpy(cur->cursor, "0");
        if (saga_strmap_put(&w->cursors, cur->key, cur, NULL) != 0) {
            free(cur);
            return;
        }
    }
    set_scan_t *ss = calloc(1, sizeof(*ss));
    if (ss == NULL)
        return;
    ss->w = w;
    snprintf(ss->set, sizeof(ss->set), "%s", set);
    snprintf(ss->worker, sizeof(ss->worker), "%s", worker);
    size_t room = capacity(w);
    if (saga_redis_command(w->conn, on_set_members, ss, "SSCAN %s %s COUNT %llu", set,
                           cur->cursor, (unsigned long long)(room > 1000 ? 1000 : room)) != 0)
        free(ss);
}

static void on_dead(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    w->scanning = false;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || w->stopping)
        return;
    /* Remember who is dead: candidates found anywhere are checked against it. */
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&w->dead, &pos, &k, &v);)
        free(v);
    saga_strmap_close(&w->dead);
    saga_strmap_init(&w->dead);
    for (size_t i = 0; i < r->elements; i++) {
        char *name = r->element[i]->type == REDIS_REPLY_STRING ? strdup(r->element[i]->str) : NULL;
        if (name != NULL && saga_strmap_put(&w->dead, name, name, NULL) != 0)
            free(name);
    }
    for (size_t i = 0; i < r->elements && capacity(w) > 0; i++) {
        const redisReply *name = r->element[i];
        if (name->type != REDIS_REPLY_STRING || strcmp(name->str, w->name) == 0)
            continue;
        char set[KEY_MAX];
        snprintf(set, sizeof(set), SAGA_KEY_OWNED "%s", name->str);
        scan_set(w, set, name->str);
    }
    if (capacity(w) > 0)
        scan_set(w, SAGA_KEY_ORPHANS, "");
}

/* Start requests delivered to workers that died before acknowledging. */
static void on_autoclaim(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || w->stopping)
        return;
    const redisReply *entries = r->element[1];
    if (entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++)
        handle_entry(w, entries->element[i]);
}

/* The sweep reads the unfinished sagas of the index a page per scan, so that a saga
 * missing from every set (a crash between two of our commands, which
 * cannot be one atomic call across hash slots) is still found. */
#define SWEEP_PAGE 100

static void on_sweep_page(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    w->sweeping = false;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || w->stopping)
        return;
    w->sweep_offset = r->elements < SWEEP_PAGE ? 0 : w->sweep_offset + r->elements;
    for (size_t i = 0; i < r->elements && capacity(w) > 0; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            candidate(w, r->element[i]->str, FROM_SWEEP, "");
}

static void sweep(saga_worker_t *w) {
    if (w->sweeping || capacity(w) == 0)
        return;
    w->sweeping = true;
    /* The unfinished sagas: the index's scores below 0 (keys.h). */
    if (saga_redis_command(w->conn, on_sweep_page, w, "ZRANGEBYSCORE %s -inf (0 LIMIT %llu %d",
                           SAGA_KEY_SAGAS, (unsigned long long)w->sweep_offset,
                           SWEEP_PAGE) != 0)
        w->sweeping = false;
}

static void on_wake(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        /* Only cancels wake a worker up today; the engine checks the saga. */
        int rc = saga_engine_cancel(w->engine, r->element[i]->str);
        if (rc == 0)
            saga_info("worker %s: saga %s: cancel requested by an operator", w->name,
                      r->element[i]->str);
    }
}

static void on_scan(uv_timer_t *t) {
    saga_worker_t *w = t->data;
    if (w->stopping || !saga_redis_ready(w->conn))
        return;
    saga_redis_command(w->conn, on_wake, w, "LPOP %s 100", w->wake_key);
    if (capacity(w) == 0 || w->scanning)
        return;
    w->scanning = true;
    if (saga_redis_command(w->conn, on_dead, w, "FCALL saga_dead_workers 1 %s",
                           SAGA_KEY_WORKERS) != 0)
        w->scanning = false;
    sweep(w);
    char idle[24];
    snprintf(idle, sizeof(idle), "%" PRIu64, w->lease_ms);
    saga_redis_command(w->conn, on_autoclaim, w, "XAUTOCLAIM %s %s %s %s 0-0 COUNT %llu",
                       SAGA_KEY_INTAKE, SAGA_INTAKE_GROUP, w->name, idle,
                       (unsigned long long)(capacity(w) > 100 ? 100 : capacity(w)));
}

/* ---------------------------------------------------------------------- */
/* Lease                                                                   */
/* ---------------------------------------------------------------------- */

static void on_heartbeat(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        saga_error("worker %s: heartbeat refused: %s", w->name, r->str);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 1)
        saga_warn("worker %s: our lease had expired (paused or cut off for too long); "
                  "sagas taken over meanwhile are dropped at their next write",
                  w->name);
    if (!w->started && !w->stopping) {
        w->started = true;
        saga_redis_command(w->conn, on_group, w, "XGROUP CREATE %s %s 0 MKSTREAM",
                           SAGA_KEY_INTAKE, SAGA_INTAKE_GROUP);
        uv_timer_start(&w->scan_timer, on_scan, 0, w->scan_ms);
    }
}

static void heartbeat(saga_worker_t *w) {
    char lease[24];
    snprintf(lease, sizeof(lease), "%" PRIu64, w->lease_ms);
    saga_redis_command(w->conn, on_heartbeat, w, "FCALL saga_heartbeat 1 %s %s %s",
                       SAGA_KEY_WORKERS, w->name, lease);
}

static void on_hb_timer(uv_timer_t *t) {
    saga_worker_t *w = t->data;
    if (!w->stopping)
        heartbeat(w);
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */
/* ---------------------------------------------------------------------- */

saga_worker_t *saga_worker_new(uv_loop_t *loop, saga_store_t *store,
                               const saga_worker_options_t *opt, char *err,
                               size_t errlen) {
    saga_redis_t *conn = saga_store_redis_conn(store);
    if (conn == NULL) {
        snprintf(err, errlen, "a worker needs a Redis store");
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
    w->conn = conn;
    w->concurrency = opt->concurrency ? opt->concurrency : DEFAULT_CONCURRENCY;
    w->lease_ms = opt->lease_ms ? opt->lease_ms : DEFAULT_LEASE_MS;
    w->scan_ms = opt->scan_ms ? opt->scan_ms : w->lease_ms / 8;
    if (w->scan_ms > 500)
        w->scan_ms = 500;
    if (w->scan_ms < 20)
        w->scan_ms = 20;
    snprintf(w->owned_key, sizeof(w->owned_key), SAGA_KEY_OWNED "%s", w->name);
    snprintf(w->wake_key, sizeof(w->wake_key), SAGA_KEY_WAKE "%s", w->name);
    saga_strmap_init(&w->owned);
    saga_strmap_init(&w->pending);
    saga_strmap_init(&w->claiming);
    saga_strmap_init(&w->unrunnable);
    saga_strmap_init(&w->dead);
    saga_strmap_init(&w->cursors);
    saga_engine_options_t eo = {
        .store = store,
        .plugin_dirs = opt->plugin_dirs,
        .worker = w->name,
        .on_finished = on_finished,
        .on_created = on_created,
        .owned = true,
        .data = w,
    };
    w->engine = saga_engine_new(loop, &eo, err, errlen);
    saga_redis_options_t io;
    memset(&io, 0, sizeof(io));
    io.retry_first_connect = true;
    io.client_name = "saga-intake";
    if (w->engine == NULL) { /* err says why */
        saga_worker_free(w);
        return NULL;
    }
    if ((w->intake = saga_redis_new(loop, opt->url, &io, on_intake_event, w)) == NULL) {
        snprintf(err, errlen, "out of memory");
        saga_worker_free(w);
        return NULL;
    }
    uv_timer_init(loop, &w->hb_timer);
    uv_timer_init(loop, &w->scan_timer);
    uv_timer_init(loop, &w->intake_timer);
    w->hb_timer.data = w->scan_timer.data = w->intake_timer.data = w;
    w->open_handles = 3;
    return w;
}

int saga_worker_add_definition(saga_worker_t *w, saga_def_t *def, saga_diags_t *diags) {
    char name[SAGA_NAME_MAX + 1], hash[65];
    snprintf(name, sizeof(name), "%s", def->name);
    memcpy(hash, def->hash, 65);
    if (saga_engine_register(w->engine, def, diags) == NULL)
        return -1;
    saga_redis_command(w->conn, NULL, NULL, "HSET %s %s %s", SAGA_KEY_DEFS, name, hash);
    return 0;
}

int saga_worker_start(saga_worker_t *w) {
    int rc = saga_redis_start(w->intake);
    if (rc != 0)
        return rc;
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

static void on_deregistered(saga_redis_t *c, redisReply *r, void *data) {
    saga_worker_t *w = data;
    (void)c;
    (void)r;
    w->stop_waits--;
    stop_step(w);
}

/* Ends the stop once the releases are answered. */
static void stop_step(saga_worker_t *w) {
    if (w->stop_waits > 0 || w->closing_handles)
        return;
    w->closing_handles = true;
    uv_close((uv_handle_t *)&w->hb_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->scan_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->intake_timer, on_handle_closed);
    saga_redis_close(w->intake, on_intake_closed, w);
}

static void on_engine_down(void *data) {
    saga_worker_t *w = data;
    /* What is still ours goes to others at once, not after our lease. */
    const char *k;
    void *v;
    size_t n = 0;
    for (size_t pos = 0; saga_strmap_next(&w->owned, &pos, &k, &v);) {
        release(w, k, ((owned_t *)v)->fence, true);
        n++;
    }
    if (n > 0)
        saga_info("worker %s: released %zu unfinished saga(s) to other workers", w->name, n);
    w->stop_waits++;
    if (saga_redis_command(w->conn, on_deregistered, w, "ZREM %s %s", SAGA_KEY_WORKERS,
                           w->name) != 0)
        w->stop_waits--;
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
    saga_engine_shutdown(w->engine, grace_ms, on_engine_down, w);
}

/* Frees every value of a map whose values own their keys (or are them). */
static void free_map(saga_strmap_t *m) {
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(m, &pos, &k, &v);)
        free(v);
    saga_strmap_close(m);
}

void saga_worker_free(saga_worker_t *w) {
    if (w == NULL)
        return;
    saga_engine_free(w->engine);
    free_map(&w->owned); /* values hold their keys */
    free_map(&w->pending);
    free_map(&w->claiming);
    free_map(&w->unrunnable);
    free_map(&w->dead);
    free_map(&w->cursors);
    free(w->name);
    free(w);
}
