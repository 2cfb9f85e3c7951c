/*
 * store_redis.c -- the Redis store (see store_redis.h, saga.lua).
 *
 * Every request is kept in one FIFO until Redis answered it. A request is
 * "sent" while hiredis holds it; when the connection is lost its reply
 * callback gets NULL, it goes back to "unsent" in place, and once the
 * connection is READY again (and the function library reloaded) every
 * unsent request is sent again in FIFO order. Everything we send is safe to
 * send twice: writes carry a token and a sequence number (saga_write
 * recognises its own applied write), index updates and SET NX are
 * idempotent, reads have no effect.
 *
 * Replies are checked before use: a reply of the wrong shape fails the
 * request with SAGA_ESTORE and a log line that says what was expected.
 */
#include "store/store_redis.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "saga/errors.h"
#include "saga/state.h"
#include "saga_lua.h"
#include "store/call.h"
#include "store/keys.h"
#include "store/redis_replies.h"
#include "util/bytes.h"
#include "util/log.h"
#include "util/rng.h"

/* Retention: the store asks saga_gc to remove up to GC_BATCH finished
 * sagas whose retention ran out, one shard of the index per call, the
 * shards in turn (from one chosen at random, so that engines spread over
 * them), and paces itself by the answer: a full batch brings the next call
 * on the same shard GC_BUSY_MS later, a partial one the next shard
 * GC_SOME_MS later, none the next shard GC_INTERVAL_MS later. An idle
 * engine so costs one call per second whatever the number of shards (a
 * shard is looked at every K seconds: retention is not precise to the
 * second anyway), a steady stream of expiring sagas is deleted in small
 * calls spread over time, and a shard's backlog drains at up to GC_BATCH
 * per GC_BUSY_MS (16,000 sagas/s per engine). The batch is small
 * because a call holds the server: every write that arrives meanwhile
 * waits for it. 32 take ~0.13 ms; 200 took ~0.7 ms and made ~1 % of the
 * steps of a busy engine wait long enough to count in its p99
 * (docs/redis-layout.md, "Retention"). */
#define GC_INTERVAL_MS 1000
#define GC_SOME_MS 100
#define GC_BUSY_MS 2
#define GC_BATCH 32
#define TRANSIENT_RETRY_MS 200
#define SAGA_ID_KEY_MAX (SAGA_ID_MAX + 32)
#define KEY_MAX_OWNED 256
#define LANES_MAX 16
#define DEFAULT_LANES 1

#define KEY_SAGAS SAGA_KEY_SAGAS
#define KEY_OWNED SAGA_KEY_OWNED

typedef enum rq_kind_e {
    RQ_WRITE,
    RQ_INDEX,
    RQ_LOAD,
    RQ_HISTORY,
    RQ_PUTDEF,
    RQ_GETDEF,
    RQ_LIST,
} rq_kind_t;

struct lane_s;

/* The caller's callback, by request kind: ISO C converts no function
 * pointer to void *, so each kind keeps its own type. */
typedef union rq_cb_u {
    saga_store_write_cb write;   /* RQ_WRITE */
    saga_store_load_cb load;     /* RQ_LOAD */
    saga_store_history_cb history; /* RQ_HISTORY */
    saga_store_done_cb done;     /* RQ_PUTDEF (NULL: lanes but the first) */
    saga_store_text_cb text;     /* RQ_GETDEF */
    saga_store_ids_cb ids;       /* RQ_LIST */
} rq_cb_t;

typedef struct rq_s {
    struct rq_s *prev;
    struct rq_s *next;
    struct lane_s *lane;
    rq_kind_t kind;
    bool sent;
    bool lost;                   /* its connection was lost: the next send
                                    is a resend (stats.resent) */
    rq_cb_t cb;                  /* RQ_INDEX: none */
    void *data;
    const saga_store_write_t *w; /* RQ_WRITE; valid until cb */
    char wtok[17];
    int64_t score;               /* RQ_INDEX */
    const char *op;              /* RQ_INDEX: static */
    uint64_t need;               /* RQ_WRITE held: the WAIT that confirms it */
    long long held;              /* RQ_WRITE held: its reply's integer */
    bool tentative;              /* RQ_INDEX made before the start-up checks
                                    knew whether the index is split: sent
                                    only if it is */
    struct rq_s *after;          /* RQ_WRITE of a finish: its RQ_INDEX,
                                    queued once the write is acknowledged
                                    (dropped if it is refused) */
    struct rq_s *pair;           /* a create's RQ_WRITE and its RQ_INDEX,
                                    while both are unanswered: the create
                                    counts as written once both are */
    bool deferred;               /* RQ_WRITE answered, its index not yet */
    long long deferred_integer;
    size_t len;                  /* bytes of `text` (RQ_PUTDEF) */
    unsigned shard;              /* RQ_LIST: the shard asked next */
    char **acc;                  /* RQ_LIST: ids of the shards before */
    size_t nacc;
    char *text;                  /* RQ_PUTDEF */
    char key[];                  /* saga id or definition hash */
} rq_t;

/* One connection and its FIFO. A saga's requests always go through the
 * same lane (chosen by its id), so they reach Redis in the order they were
 * made; different sagas' requests spread over the lanes. Why several: Redis
 * reads at most 16 KiB from a connection per event-loop turn and then
 * writes (and with appendfsync always, fsyncs) the AOF once for all the
 * connections it served, so the commands of one connection get at most
 * ~30 writes per AOF write; several connections make its group commits
 * bigger (docs/redis-layout.md). */
typedef struct lane_s {
    struct store_redis_s *st;
    saga_redis_t *conn;  /* NULL once closed */
    rq_t *head;
    rq_t *tail;
    size_t unsent;       /* requests in the queue not handed to hiredis */
    rq_t *held_head;     /* writes answered, waiting for their WAIT */
    rq_t *held_tail;
    uint64_t wait_gen;   /* WAITs issued on this lane */
    bool wait_due;       /* held writes wait for the next WAIT */
    bool wait_short_warned;
    bool was_ready;      /* READY since the store became ready */
    bool lib_ok;         /* the server runs our saga.lua: requests may go */
} lane_t;

typedef struct store_redis_s {
    saga_store_t base;
    uv_loop_t *loop;
    lane_t lanes[LANES_MAX]; /* lanes[0] also runs the checks, the GC and
                                what belongs to no saga */
    unsigned nlanes;
    unsigned open_conns;
    saga_store_redis_options_t opt;
    char retention[24];
    saga_store_ready_cb ready_cb;
    void *ready_data;
    bool ready;          /* checks passed; requests may be sent */
    bool checking;       /* start-up checks in flight */
    bool failed;         /* start-up failed: nothing will be sent */
    int checks_left;
    char check_error[512];
    bool persistence_off[2]; /* appendonly no, save "" */
    bool fsync_always;       /* appendfsync always */
    uint64_t migrated;       /* index entries moved from layout 1 */
    saga_shards_t shards;    /* the global keys' shards, once ready */
    bool shards_probed;      /* saga:{idx}:shards was absent: recorded once */
    saga_rng_t rng;
    uv_timer_t gc_timer;
    unsigned gc_busy;        /* saga_gc calls in flight (0 or 1) */
    unsigned gc_shard;       /* the shard the next saga_gc call asks */
    bool gc_failing;         /* the last saga_gc call failed (warned once) */
    uv_timer_t retry_timer;
    uv_prepare_t wait_prepare; /* issues the WAITs of a loop turn's answers */
    int open_handles;
    bool closing;
    void (*closed)(void *);
    void *closed_data;
    saga_store_redis_stats_t stats;
} store_redis_t;

static void send_unsent(lane_t *ln);
static int history_entry(const saga_store_write_t *w, int64_t now, char **out,
                         size_t *outlen);

/* ---------------------------------------------------------------------- */
/* Queue                                                                   */
/* ---------------------------------------------------------------------- */

/* The connection used for the server checks and in log lines. */
static saga_redis_t *main_conn(const store_redis_t *st) { return st->lanes[0].conn; }

/* The lane of a saga (FNV-1a of its id). */
static lane_t *lane_of(store_redis_t *st, const char *id) {
    if (st->nlanes == 1)
        return &st->lanes[0];
    return &st->lanes[saga_fnv1a(id) % st->nlanes];
}

static void unlink_rq(lane_t *ln, rq_t *rq) {
    if (!rq->sent)
        ln->unsent--;
    if (rq->prev) rq->prev->next = rq->next; else ln->head = rq->next;
    if (rq->next) rq->next->prev = rq->prev; else ln->tail = rq->prev;
    rq->prev = rq->next = NULL;
}

static rq_t *rq_new(lane_t *ln, rq_kind_t kind, const char *key,
                    rq_cb_t cb, void *data) {
    size_t kl = key ? strlen(key) : 0;
    rq_t *rq = calloc(1, sizeof(*rq) + kl + 1);
    if (rq == NULL)
        return NULL;
    rq->lane = ln;
    rq->kind = kind;
    rq->cb = cb;
    rq->data = data;
    if (key)
        memcpy(rq->key, key, kl + 1);
    return rq;
}

static void rq_free(rq_t *rq) {
    for (size_t i = 0; i < rq->nacc; i++)
        free(rq->acc[i]);
    free(rq->acc);
    if (rq->after != NULL)
        rq_free(rq->after);
    free(rq->text);
    free(rq);
}

static int send_rq(lane_t *ln, rq_t *rq);

/* Appends a request to its lane and sends it when the store is ready.
 * While nothing queued before it waits to be sent, it goes out at once;
 * otherwise the next resend (READY, retry timer) sends everything in order. */
static void enqueue(rq_t *rq) {
    lane_t *ln = rq->lane;
    rq->prev = ln->tail;
    if (ln->tail) ln->tail->next = rq; else ln->head = rq;
    ln->tail = rq;
    ln->unsent++;
    if (ln->unsent == 1 && ln->st->ready && ln->lib_ok && saga_redis_ready(ln->conn)) {
        if (send_rq(ln, rq) != 0)
            send_unsent(ln); /* fails it properly, or waits for READY */
    }
}

/* ---------------------------------------------------------------------- */
/* Completing requests                                                     */
/* ---------------------------------------------------------------------- */

static int bad_reply(const rq_t *rq, const char *what) {
    saga_error("redis store: unexpected reply to %s request for '%s': %s",
               rq->kind == RQ_LOAD ? "load" : rq->kind == RQ_HISTORY ? "history"
               : rq->kind == RQ_LIST ? "list" : rq->kind == RQ_GETDEF ? "get-definition"
               : "write", rq->key, what);
    return SAGA_ESTORE;
}

static void finish_load(rq_t *rq, int status, const redisReply *r) {
    saga_store_load_cb cb = rq->cb.load;
    saga_record_t rec = {NULL, 0, NULL};
    const char *why = NULL;
    if (status == 0) {
        status = saga_redis_reply_record(r, &rec, &why);
        if (status == SAGA_ESTORE)
            bad_reply(rq, why);
    }
    cb(status, status == 0 ? &rec : NULL, rq->data);
    free(rec.fields);
}

static void finish_history(rq_t *rq, int status, const redisReply *r) {
    saga_store_history_cb cb = rq->cb.history;
    saga_redis_history_t h = {NULL, 0, NULL};
    char why[160];
    if (status == 0) {
        status = saga_redis_reply_history(r, &h, why, sizeof(why));
        if (status == SAGA_ESTORE)
            bad_reply(rq, why);
    }
    cb(status, status == 0 ? h.events : NULL, h.n, rq->data);
    saga_redis_history_free(&h);
}

static void finish_list(rq_t *rq, int status, const redisReply *r) {
    saga_store_ids_cb cb = rq->cb.ids;
    if (status == 0 && (r->type != REDIS_REPLY_ARRAY || !saga_redis_all_strings(r)))
        status = bad_reply(rq, "expected an array of ids");
    if (status != 0) {
        cb(status, NULL, 0, rq->data);
        return;
    }
    const char **ids = calloc(rq->nacc + r->elements + 1, sizeof(*ids));
    if (ids == NULL) {
        cb(-ENOMEM, NULL, 0, rq->data);
        return;
    }
    for (size_t i = 0; i < rq->nacc; i++)
        ids[i] = rq->acc[i];
    for (size_t i = 0; i < r->elements; i++)
        ids[rq->nacc + i] = r->element[i]->str;
    cb(0, ids, rq->nacc + r->elements, rq->data);
    free(ids);
}

/* The list of unfinished sagas walks the shards one after the other: keeps
 * the ids of a shard's answer and returns 1 when another shard follows
 * (the request goes again, for it); 0 for the last shard, or a reply that
 * finish_list() refuses; -ENOMEM. */
static int list_next_shard(rq_t *rq, const redisReply *r) {
    const store_redis_t *st = rq->lane->st;
    if (rq->shard + 1 >= st->shards.k || r->type != REDIS_REPLY_ARRAY ||
        !saga_redis_all_strings(r))
        return 0;
    if (r->elements > 0) {
        char **acc = realloc(rq->acc, (rq->nacc + r->elements) * sizeof(*acc));
        if (acc == NULL)
            return -ENOMEM;
        rq->acc = acc;
        for (size_t i = 0; i < r->elements; i++) {
            if ((acc[rq->nacc] = strdup(r->element[i]->str)) == NULL)
                return -ENOMEM;
            rq->nacc++;
        }
    }
    rq->shard++;
    return 1;
}

/* Runs the request's callback with `status` (and the reply when 0), then
 * frees it. The request must already be unlinked. A finish's index update
 * (rq->after) is queued before the finish is reported, and only if the
 * write was acknowledged (with min_replicas, confirmed by its WAIT). */
static void finish(rq_t *rq, int status, const redisReply *r) {
    if (rq->pair != NULL && rq->kind == RQ_WRITE && status == 0 &&
        r->type == REDIS_REPLY_INTEGER) {
        /* A create written before its index entries were: reported once
         * they are (below), so that nothing acts on a saga that no list,
         * sweep or takeover could find. */
        rq->deferred = true;
        rq->deferred_integer = r->integer;
        return;
    }
    if (rq->pair != NULL) {
        rq_t *w = rq->pair;
        rq->pair = w->pair = NULL;
        if (rq->kind == RQ_INDEX && w->deferred) {
            /* the create's index entries were the last: it is written now
             * (or, if they failed, not to be acted on) */
            redisReply ok;
            memset(&ok, 0, sizeof(ok));
            ok.type = REDIS_REPLY_INTEGER;
            ok.integer = w->deferred_integer;
            w->deferred = false;
            finish(w, status, status == 0 ? &ok : NULL);
        }
    }
    rq_t *after = rq->after;
    rq->after = NULL;
    if (after != NULL && status == 0 && r->type == REDIS_REPLY_INTEGER)
        enqueue(after);
    else if (after != NULL)
        rq_free(after); /* refused or not written: the index stays as it is */
    switch (rq->kind) {
    case RQ_WRITE: {
        unsigned signals = 0;
        if (status == 0) {
            if (r->type != REDIS_REPLY_INTEGER)
                status = bad_reply(rq, "expected an integer");
            else if (r->integer == 1)
                signals = SAGA_SIGNAL_CANCEL;
        }
        rq->cb.write(status, signals, rq->data);
        break;
    }
    case RQ_INDEX:
        if (status != 0 && status != SAGA_ECLOSING)
            saga_error("redis store: index update for saga %s failed: %s",
                       rq->key, saga_strerror(status));
        break;
    case RQ_PUTDEF:
        if (rq->cb.done != NULL)
            rq->cb.done(status, rq->data);
        else if (status != 0 && status != SAGA_ECLOSING)
            saga_error("redis store: storing definition %s failed: %s", rq->key,
                       saga_strerror(status));
        break;
    case RQ_GETDEF: {
        saga_store_text_cb cb = rq->cb.text;
        if (status == 0 && r->type == REDIS_REPLY_NIL)
            status = SAGA_ENOTFOUND;
        else if (status == 0 && r->type != REDIS_REPLY_STRING)
            status = bad_reply(rq, "expected a string");
        cb(status, status == 0 ? r->str : NULL, status == 0 ? (size_t)r->len : 0,
           rq->data);
        break;
    }
    case RQ_LOAD:
        finish_load(rq, status, r);
        break;
    case RQ_HISTORY:
        finish_history(rq, status, r);
        break;
    case RQ_LIST:
        finish_list(rq, status, r);
        break;
    }
    rq_free(rq);
}

/* Maps an error reply. Returns 1 when the error is transient (send again
 * later), else 0 with *status set. */
static int classify_error(const redisReply *r, int *status) {
    if (saga__call_transient(r))
        return 1;
    if (strstr(r->str, "Function not found") != NULL || strncmp(r->str, "NOSCRIPT", 8) == 0)
        return 1; /* the library is reloaded before the resend */
    if (strncmp(r->str, "SAGAFENCED", 10) == 0) *status = SAGA_EFENCED;
    else if (strncmp(r->str, "SAGACONFLICT", 12) == 0) *status = SAGA_ECONFLICT;
    else if (strncmp(r->str, "SAGAEXISTS", 10) == 0) *status = SAGA_EEXIST;
    else if (strncmp(r->str, "SAGANOTFOUND", 12) == 0) *status = SAGA_ENOTFOUND;
    else *status = SAGA_ESTORE;
    return 0;
}

static void load_library(lane_t *ln, saga_redis_reply_cb cb, void *data);
static void retry_soon(store_redis_t *st);
static void on_wait_prepare(uv_prepare_t *h);

/* ---------------------------------------------------------------------- */
/* Replicas: a write counts once WAIT confirms it (min_replicas > 0)       */
/* ---------------------------------------------------------------------- */

/* A write Redis applied, held until the next WAIT issued on its lane
 * (after this answer, so after the write) confirms it. WAITs go out from
 * wait_prepare, once per loop turn for all the answers of that turn. */
static void hold(lane_t *ln, rq_t *rq, long long integer) {
    rq->held = integer;
    rq->need = ln->wait_gen + 1;
    rq->prev = ln->held_tail;
    rq->next = NULL;
    if (ln->held_tail) ln->held_tail->next = rq; else ln->held_head = rq;
    ln->held_tail = rq;
    ln->wait_due = true;
    uv_prepare_start(&ln->st->wait_prepare, on_wait_prepare);
}

static void unhold(lane_t *ln, rq_t *rq) {
    if (rq->prev) rq->prev->next = rq->next; else ln->held_head = rq->next;
    if (rq->next) rq->next->prev = rq->prev; else ln->held_tail = rq->prev;
    rq->prev = rq->next = NULL;
}

/* Ends (ok) or sends again (!ok) the held writes that WAIT `gen` was for
 * (or ends every held write with `status`).
 * Sent again: back to the front of the FIFO, in their order, as writes
 * whose answer was lost (saga_write recognises them as applied). */
static void release_held(lane_t *ln, uint64_t gen, bool ok, int status) {
    rq_t *rq = ln->held_head, *after = NULL;
    while (rq != NULL) {
        rq_t *next = rq->next;
        if (rq->need == gen || status != 0) {
            unhold(ln, rq);
            if (status != 0) {
                finish(rq, status, NULL);
            } else if (ok) {
                redisReply r;
                memset(&r, 0, sizeof(r));
                r.type = REDIS_REPLY_INTEGER;
                r.integer = rq->held;
                finish(rq, 0, &r);
            } else {
                rq->lost = true;
                rq->sent = false;
                rq->prev = after;
                rq->next = after ? after->next : ln->head;
                if (rq->next) rq->next->prev = rq; else ln->tail = rq;
                if (after) after->next = rq; else ln->head = rq;
                ln->unsent++;
                after = rq;
            }
        }
        rq = next;
    }
}

typedef struct wait_ctx_s {
    lane_t *ln;
    uint64_t gen;
} wait_ctx_t;

static void on_wait(saga_redis_t *conn, redisReply *r, void *data) {
    wait_ctx_t *w = data;
    lane_t *ln = w->ln;
    store_redis_t *st = ln->st;
    uint64_t gen = w->gen;
    free(w);
    if (st->closing)
        return; /* rs_close ended the held writes */
    bool ok = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= st->opt.min_replicas;
    if (!ok && r != NULL) {
        st->stats.waits_short++;
        if (!ln->wait_short_warned)
            saga_warn("redis %s: WAIT confirmed %s of the %d replicas asked; the "
                      "transitions wait until replicas have them",
                      saga_redis_display(conn),
                      r->type == REDIS_REPLY_INTEGER ? (r->integer == 0 ? "none" : "fewer")
                                                     : r->type == REDIS_REPLY_ERROR ? r->str : "?",
                      st->opt.min_replicas);
        ln->wait_short_warned = true;
    } else if (ok && ln->wait_short_warned) {
        saga_info("redis %s: replicas confirm the transitions again", saga_redis_display(conn));
        ln->wait_short_warned = false;
    }
    if (!ok && r != NULL && r->type == REDIS_REPLY_INTEGER) {
        /* The replicas lag (or one is away): the primary has the writes,
         * so they wait for the next WAIT rather than being sent again. */
        for (rq_t *rq = ln->held_head; rq != NULL; rq = rq->next)
            if (rq->need == gen)
                rq->need = ln->wait_gen + 1;
        ln->wait_due = true;
        uv_prepare_start(&st->wait_prepare, on_wait_prepare);
        return;
    }
    /* The connection was lost (NULL: READY sends them again, to whichever
     * primary serves them then) or the WAIT failed (an error reply: sent
     * again shortly). */
    release_held(ln, gen, ok, 0);
    if (!ok && r != NULL)
        retry_soon(st);
}

/* Before the loop waits for I/O: one WAIT per lane for the writes answered
 * in this turn. */
static void on_wait_prepare(uv_prepare_t *h) {
    store_redis_t *st = h->data;
    bool due = false;
    for (unsigned i = 0; i < st->nlanes; i++) {
        lane_t *ln = &st->lanes[i];
        if (!ln->wait_due)
            continue;
        ln->wait_due = false;
        uint64_t gen = ++ln->wait_gen;
        wait_ctx_t *w = malloc(sizeof(*w));
        int rc = -ENOMEM;
        if (w != NULL) {
            w->ln = ln;
            w->gen = gen;
            rc = saga_redis_command(ln->conn, on_wait, w, "WAIT %d %llu", st->opt.min_replicas,
                                    (unsigned long long)(st->opt.wait_timeout_ms
                                                             ? st->opt.wait_timeout_ms : 1000));
        }
        if (rc == 0) {
            st->stats.waits++;
            st->stats.commands++;
            continue;
        }
        free(w);
        /* Not sent (connection down, no memory): sent again with the rest. */
        release_held(ln, gen, false, 0);
        if (rc == -ENOMEM)
            retry_soon(st);
        due = due || ln->wait_due;
    }
    if (!due)
        uv_prepare_stop(h);
}

static void on_reply(saga_redis_t *conn, redisReply *r, void *data) {
    rq_t *rq = data;
    lane_t *ln = rq->lane;
    store_redis_t *st = ln->st;
    (void)conn;
    rq->sent = false;
    ln->unsent++;
    if (st->closing) {
        unlink_rq(ln, rq);
        finish(rq, SAGA_ECLOSING, NULL);
        return;
    }
    if (r == NULL) {
        rq->lost = true;
        return; /* connection lost: stays queued, resent when READY */
    }
    int status = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (classify_error(r, &status)) {
            saga_warn("redis %s: %s; retrying", saga_redis_display(ln->conn), r->str);
            if (strstr(r->str, "Function not found") != NULL)
                load_library(ln, NULL, NULL);
            retry_soon(st);
            return;
        }
        if (status == SAGA_ESTORE)
            saga_error("redis %s: error reply to a store request for '%s': %s",
                       saga_redis_display(ln->conn), rq->key, r->str);
        else
            saga_debug("redis store: '%s': %s", rq->key, r->str);
    }
    unlink_rq(ln, rq);
    if (status == 0 && rq->kind == RQ_LIST) {
        int more = list_next_shard(rq, r);
        if (more > 0) {
            enqueue(rq);
            return;
        }
        status = more;
    }
    if (status == 0 && (rq->kind == RQ_WRITE || rq->kind == RQ_INDEX) &&
        st->opt.min_replicas > 0 && r->type == REDIS_REPLY_INTEGER) {
        hold(ln, rq, r->integer);
        return;
    }
    finish(rq, status, r);
}

/* ---------------------------------------------------------------------- */
/* Sending                                                                 */
/* ---------------------------------------------------------------------- */

/* One command's arguments. A write has 30-odd, so they live on the stack
 * (no allocation per write); a write with many fields spills to the heap. */
#define ARGV_INLINE 64
#define NUMS_INLINE 1280 /* a write needs 3 * SAGA_ID_KEY_MAX + KEY_MAX_OWNED + 320 */

typedef struct argv_s {
    const char **v;
    size_t *len;
    int n;
    int cap;
    char *nums;      /* number strings live here */
    size_t nums_len;
    size_t nums_cap;
    const char *v_inline[ARGV_INLINE];
    size_t len_inline[ARGV_INLINE];
    char nums_inline[NUMS_INLINE];
} argv_t;

_Static_assert(3 * SAGA_ID_KEY_MAX + KEY_MAX_OWNED + 320 <= NUMS_INLINE,
               "a write's numbers and keys fit the inline area");

static int argv_init(argv_t *a, int cap, size_t nums) {
    bool big = cap > ARGV_INLINE;
    a->v = big ? malloc((size_t)cap * sizeof(*a->v)) : a->v_inline;
    a->len = big ? malloc((size_t)cap * sizeof(*a->len)) : a->len_inline;
    a->nums = nums > NUMS_INLINE ? malloc(nums) : a->nums_inline;
    a->n = 0;
    a->cap = cap;
    a->nums_len = 0;
    a->nums_cap = nums;
    return (a->v && a->len && a->nums) ? 0 : -ENOMEM;
}

static void argv_free(argv_t *a) {
    if (a->v != a->v_inline)
        free(a->v);
    if (a->len != a->len_inline)
        free(a->len);
    if (a->nums != a->nums_inline)
        free(a->nums);
}

static void arg(argv_t *a, const char *s, size_t len) {
    a->v[a->n] = s;
    a->len[a->n] = len;
    a->n++;
}

static void arg_str(argv_t *a, const char *s) { arg(a, s ? s : "", s ? strlen(s) : 0); }

/* Number and key arguments without printf: they are formatted on every
 * write (vsnprintf was the engine's first user-space cost at half load). */
static void arg_u64(argv_t *a, uint64_t v) {
    char *p = a->nums + a->nums_len;
    size_t n = saga_fmt_u64(p, v);
    a->nums_len += n + 1;
    arg(a, p, n);
}

/* prefix + id + suffix, e.g. "saga:{" ID "}:history". The caller checked
 * the lengths (rs_write); one that does not fit is sent empty. */
static void arg_key(argv_t *a, const char *prefix, const char *id, const char *suffix) {
    char *p = a->nums + a->nums_len, *q = p;
    size_t lp = strlen(prefix), li = strlen(id), ls = strlen(suffix);
    if (lp + li + ls + 1 > a->nums_cap - a->nums_len) {
        arg(a, "", 0);
        return;
    }
    memcpy(q, prefix, lp);
    memcpy(q += lp, id, li);
    memcpy(q += li, suffix, ls);
    q[ls] = '\0';
    a->nums_len += lp + li + ls + 1;
    arg(a, p, lp + li + ls);
}

/* Sends the command in the protocol's form, formatted here in one pass
 * (hiredis's generic formatter, sdscatfmt per argument with reallocations,
 * was the next cost): "*N\r\n" then "$LEN\r\n" BYTES "\r\n" each. */
#define RESP_INLINE 8192

static int send_argv(lane_t *ln, rq_t *rq, const argv_t *a) {
    size_t cap = 23;
    for (int i = 0; i < a->n; i++)
        cap += 25 + a->len[i];
    char inline_buf[RESP_INLINE];
    char *buf = cap <= sizeof(inline_buf) ? inline_buf : malloc(cap), *p = buf;
    if (buf == NULL)
        return -ENOMEM;
    /* saga_fmt_u64's NUL lands where the "\r" goes. */
    *p++ = '*';
    p += saga_fmt_u64(p, (uint64_t)a->n);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < a->n; i++) {
        *p++ = '$';
        p += saga_fmt_u64(p, a->len[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, a->v[i], a->len[i]);
        p += a->len[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    int rc = saga_redis_command_resp(ln->conn, on_reply, rq, buf, (size_t)(p - buf));
    if (buf != inline_buf)
        free(buf);
    return rc;
}

/* A create or a finish in the global indexes: plain idempotent commands,
 * pipelined with the saga's write (before a create, after a finish; see
 * docs/redis-layout.md). Only the last one carries the request's callback;
 * after a lost connection all of them are sent again. */
static int send_index(lane_t *ln, rq_t *rq) {
    store_redis_t *st = ln->st;
    if (rq->tentative && !st->opt.split_index) {
        /* A single Redis: the write updates the index itself. */
        unlink_rq(ln, rq);
        finish(rq, 0, NULL);
        return 0;
    }
    char score[24], owned[KEY_MAX_OWNED + SAGA_SHARD_TAG_MAX], sagas[64];
    snprintf(score, sizeof(score), "%" PRId64, rq->score);
    bool created = strcmp(rq->op, "created") == 0;
    const char *owner = rq->text;
    saga_redis_reply_cb last_cb = owner ? NULL : on_reply;
    void *last_data = owner ? NULL : rq;
    /* The saga's shard's index and owner's set (store/shards.h). */
    unsigned shard = saga_shards_of(&st->shards, rq->key);
    if (saga_shards_key(&st->shards, shard, SAGA_SHARD_SAGAS, NULL, sagas, sizeof(sagas)) < 0 ||
        (owner != NULL && saga_shards_key(&st->shards, shard, SAGA_SHARD_OWNED, owner, owned,
                                          sizeof(owned)) < 0))
        return -EINVAL;
    /* Unfinished: -created; finished: the expiry (saga.lua). */
    int rc = saga_redis_command(ln->conn, last_cb, last_data, created ? "ZADD %s NX -%s %s"
                                : "ZADD %s %s %s", sagas, score, rq->key);
    if (rc == 0 && owner != NULL)
        rc = saga_redis_command(ln->conn, on_reply, rq, "%s %s %s", created ? "SADD" : "SREM",
                                owned, rq->key);
    if (rc == 0) {
        rq->sent = true;
        ln->unsent--;
        st->stats.commands += owner ? 2 : 1;
    }
    return rc;
}

static int send_rq(lane_t *ln, rq_t *rq) {
    store_redis_t *st = ln->st;
    argv_t a;
    int rc;
    switch (rq->kind) {
    case RQ_WRITE: {
        const saga_store_write_t *w = rq->w;
        /* A create or a finish passes the index key (and the owner's set)
         * when the call updates them itself; the steps between carry
         * nothing they do not need (each argument costs Redis CPU). */
        const char *owner = w->fence != 0 && w->worker ? w->worker : "";
        bool indexed = !st->opt.split_index &&
                       (w->flags & (SAGA_WRITE_CREATE | SAGA_WRITE_TERMINAL));
        int n = 20 + 2 * (int)w->nfields;
        if (argv_init(&a, n, 3 * SAGA_ID_KEY_MAX + KEY_MAX_OWNED + 320) != 0)
            goto oom;
        arg_str(&a, "FCALL");
        arg_str(&a, "saga_write");
        arg_str(&a, !indexed ? "2" : owner[0] ? "4" : "3");
        arg_key(&a, SAGA_KEY_PREFIX, w->id, SAGA_KEY_RECORD_END);
        arg_key(&a, SAGA_KEY_PREFIX, w->id, SAGA_KEY_HISTORY_END);
        if (indexed) {
            arg_str(&a, KEY_SAGAS);
            if (owner[0])
                arg_key(&a, KEY_OWNED, owner, "");
        }
        /* Strings only: the function compares, it does not convert. */
        arg_u64(&a, w->seq);
        arg_u64(&a, w->seq - 1);
        arg_u64(&a, w->fence);
        arg_str(&a, rq->wtok);
        arg_u64(&a, (uint64_t)rq->score);
        char *flags = a.nums + a.nums_len;
        flags[0] = (w->flags & SAGA_WRITE_CREATE) ? 'c' : '-';
        flags[1] = (w->flags & SAGA_WRITE_TERMINAL) ? 't' : '-';
        flags[2] = w->seq % 1000 == 0 ? 'r' : '-';
        /* publish the settlement on the one channel (on Redis Cluster a
         * PUBLISH reaches every node, where `saga serve` listens) */
        flags[3] = (w->flags & SAGA_WRITE_SETTLED) ? 'p' : '-';
        a.nums_len += 4;
        arg(&a, flags, 4);
        if (w->retention_ms != 0)
            arg_u64(&a, w->retention_ms); /* the definition's, by outcome */
        else
            arg_str(&a, st->retention);
        arg_u64(&a, w->nfields);
        for (size_t i = 0; i < w->nfields; i++) {
            arg(&a, w->fields[i].key, w->fields[i].klen);
            arg(&a, w->fields[i].val, w->fields[i].vlen);
        }
        arg(&a, rq->text, rq->len);
        if (indexed)
            arg_str(&a, w->id);
        st->stats.writes++;
        break;
    }
    case RQ_INDEX:
        return send_index(ln, rq);
    case RQ_LOAD:
    case RQ_HISTORY:
        if (argv_init(&a, 5, SAGA_ID_KEY_MAX + 32) != 0)
            goto oom;
        if (rq->kind == RQ_LOAD) {
            arg_str(&a, "HGETALL");
            arg_key(&a, SAGA_KEY_PREFIX, rq->key, SAGA_KEY_RECORD_END);
        } else {
            arg_str(&a, "LRANGE");
            arg_key(&a, SAGA_KEY_PREFIX, rq->key, SAGA_KEY_HISTORY_END);
            arg_str(&a, "0");
            arg_str(&a, "-1");
        }
        break;
    case RQ_PUTDEF:
    case RQ_GETDEF:
        if (argv_init(&a, 4, 128) != 0)
            goto oom;
        arg_str(&a, rq->kind == RQ_PUTDEF ? "SET" : "GET");
        arg_key(&a, SAGA_KEY_DEF_PREFIX, rq->key, SAGA_KEY_DEF_END);
        if (rq->kind == RQ_PUTDEF) {
            arg(&a, rq->text, rq->len);
            arg_str(&a, "NX");
        }
        break;
    case RQ_LIST: {
        char sagas[64];
        if (argv_init(&a, 4, 8) != 0 ||
            saga_shards_key(&st->shards, rq->shard, SAGA_SHARD_SAGAS, NULL, sagas,
                            sizeof(sagas)) < 0)
            goto oom;
        arg_str(&a, "ZRANGEBYSCORE");
        arg_str(&a, sagas);
        arg_str(&a, "-inf");
        arg_str(&a, "(0");
        rc = send_argv(ln, rq, &a); /* before `sagas` goes out of scope */
        goto sent;
    }
    default:
        return -EINVAL;
    }
    rc = send_argv(ln, rq, &a);
sent:
    argv_free(&a);
    if (rc == 0) {
        rq->sent = true;
        ln->unsent--;
        st->stats.commands++;
        if (rq->lost) {
            st->stats.resent++;
            rq->lost = false;
        }
    }
    return rc;
oom:
    argv_free(&a);
    return -ENOMEM;
}

static void send_unsent(lane_t *ln) {
    rq_t *next;
    for (rq_t *rq = ln->head; rq != NULL && ln->unsent > 0; rq = next) {
        next = rq->next;
        if (rq->sent)
            continue;
        int rc = send_rq(ln, rq);
        if (rc == -ENOTCONN)
            return; /* lost again meanwhile: READY will resend */
        if (rc != 0) {
            /* Cannot even format it (out of memory): fail just this one. */
            unlink_rq(ln, rq);
            finish(rq, rc, NULL);
        }
    }
}

static void on_retry_timer(uv_timer_t *t) {
    store_redis_t *st = t->data;
    if (!st->ready)
        return;
    for (unsigned i = 0; i < st->nlanes; i++)
        if (st->lanes[i].lib_ok && saga_redis_ready(st->lanes[i].conn))
            send_unsent(&st->lanes[i]);
}

/* A transient error (a replica, a server loading, a busy script): send
 * what is unsent again a little later. */
static void retry_soon(store_redis_t *st) {
    if (!uv_is_active((uv_handle_t *)&st->retry_timer))
        uv_timer_start(&st->retry_timer, on_retry_timer, TRANSIENT_RETRY_MS, 0);
}

/* ---------------------------------------------------------------------- */
/* Connection: start-up checks, library, reconnects                        */
/* ---------------------------------------------------------------------- */

static void library_loaded(saga_redis_t *conn, redisReply *r, void *data) {
    (void)data;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        saga_error("redis %s: cannot load saga's function library: %s",
                   saga_redis_display(conn), r->str);
}

/* FUNCTION LOAD REPLACE of this build's saga.lua. The pipeline keeps the
 * order: what is sent after it on the connection runs with it. */
static void load_library(lane_t *ln, saga_redis_reply_cb cb, void *data) {
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", saga_lua};
    size_t len[] = {8, 4, 7, sizeof(saga_lua) - 1};
    if (saga_redis_command_argv(ln->conn, cb ? cb : library_loaded, cb ? data : ln->st,
                                4, argv, len) == 0)
        ln->st->stats.commands++;
}

/* Every connection makes sure the server runs this build's library before
 * anything else goes out on it: saga_library answers the hash of the
 * library loaded, and only when it is not ours (another build, or none:
 * an error reply) is the text sent. A load is written to the AOF and
 * replicated: 15 KB per connection if it were sent every time. */
static void check_library(lane_t *ln, saga_redis_reply_cb cb, void *data) {
    if (saga_redis_command(ln->conn, cb, data, "FCALL saga_library 0") == 0)
        ln->st->stats.commands++;
}

static bool library_is_ours(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING && strcmp(r->str, saga_lua_sha256) == 0;
}

/* The server runs another build's library (not none): this build's is
 * about to replace it. Engines of that build still running would call
 * this build's functions, and replace them back when they reconnect:
 * said, because an upgrade is done by stopping every worker first. */
static void library_replacing(saga_redis_t *conn, const redisReply *r) {
    if (r->type != REDIS_REPLY_STRING)
        return; /* no library (an error reply): a first start or a flush */
    saga_warn("redis %s: the server runs saga's function library of another build "
              "(%.12s); loading this build's (%.12s). Engines of the other build still "
              "running call this build's functions from now on: upgrade by stopping every "
              "worker first (docs/operations.md, \"Upgrading\")",
              saga_redis_display(conn), r->str, saga_lua_sha256);
}

/* After a reconnect (or a lane connecting once the store is ready): its
 * requests go once the library is there. A lost connection on the way
 * ends here with NULL; the next READY starts again. */
static void lane_library_ok(lane_t *ln) {
    ln->lib_ok = true;
    send_unsent(ln);
}

static void on_lane_loaded(saga_redis_t *conn, redisReply *r, void *data) {
    lane_t *ln = data;
    if (r == NULL)
        return;
    library_loaded(conn, r, ln->st);
    lane_library_ok(ln); /* if the load failed, the requests' errors say so */
}

static void on_lane_library(saga_redis_t *conn, redisReply *r, void *data) {
    lane_t *ln = data;
    (void)conn;
    if (r == NULL)
        return;
    if (library_is_ours(r)) {
        lane_library_ok(ln);
    } else {
        library_replacing(conn, r);
        load_library(ln, on_lane_loaded, ln);
    }
}

static void checks_done(store_redis_t *st) {
    if (--st->checks_left > 0)
        return;
    st->checking = false;
    if (st->check_error[0] != '\0') {
        st->failed = true;
        st->ready_cb(&st->base, SAGA_ESTORE, st->check_error, st->ready_data);
        return;
    }
    if (st->opt.no_advice)
        ; /* a short command: the engines and servers say it */
    else if (st->persistence_off[0] && st->persistence_off[1])
        saga_warn("redis %s: persistence is off (no AOF, no RDB snapshots): a "
                  "restart of Redis loses every saga; see docs/durability.md",
                  saga_redis_display(main_conn(st)));
    else if (st->persistence_off[0])
        saga_warn("redis %s: AOF is off: a crash of Redis loses the sagas' "
                  "transitions since the last RDB snapshot; see docs/durability.md",
                  saga_redis_display(main_conn(st)));
    if (!st->opt.no_advice && !st->persistence_off[0] && st->fsync_always &&
        st->nlanes == 1)
        saga_info("redis %s: appendfsync always over one connection: Redis fsyncs for "
                  "at most ~30 writes at a time; SAGA_REDIS_CONNECTIONS=%d makes its "
                  "group commits bigger (docs/redis-layout.md)",
                  saga_redis_display(main_conn(st)), SAGA_STORE_REDIS_ALWAYS_CONNECTIONS);
    st->ready = true;
    st->ready_cb(&st->base, 0, NULL, st->ready_data);
    /* Lane 0 checked the library; the others' connections reach the same
     * server. A lane that connects later checks it itself (READY). */
    for (unsigned i = 0; i < st->nlanes && !st->closing; i++) {
        lane_t *ln = &st->lanes[i];
        if (saga_redis_ready(ln->conn)) {
            ln->was_ready = true;
            ln->lib_ok = true;
            send_unsent(ln);
        }
    }
}

/* The value of a CONFIG GET reply ([name, value]) or NULL. */
static const char *config_value(const redisReply *r) {
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[1]->str;
}

static void check_failed(store_redis_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void check_failed(store_redis_t *st, const char *fmt, ...) {
    if (st->check_error[0] != '\0')
        return; /* the first problem is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->check_error, sizeof(st->check_error), fmt, ap);
    va_end(ap);
}

static void check_lost(store_redis_t *st) {
    check_failed(st, "redis %s: connection lost during start-up checks",
                 saga_redis_display(main_conn(st)));
}

static void on_check_info(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    (void)conn;
    if (r == NULL) {
        check_lost(st);
    } else if (r->type == REDIS_REPLY_STRING) {
        const char *v = strstr(r->str, "redis_version:");
        int major = v ? atoi(v + 14) : 0;
        if (major < 7)
            check_failed(st, "redis %s: Redis %.*s is too old: saga needs Redis 7.0 "
                         "or newer (functions)", saga_redis_display(main_conn(st)),
                         v ? (int)strcspn(v + 14, "\r\n") : 1, v ? v + 14 : "?");
    }
    checks_done(st);
}


static void on_check_policy(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    (void)conn;
    const char *v = config_value(r);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        saga_warn("redis %s: cannot read maxmemory-policy (%s); make sure it is "
                  "noeviction", saga_redis_display(main_conn(st)), r->str);
    } else if (v == NULL) {
        check_failed(st, "redis %s: unexpected answer to CONFIG GET maxmemory-policy",
                     saga_redis_display(main_conn(st)));
    } else if (strcmp(v, "noeviction") != 0) {
        check_failed(st, "redis %s: maxmemory-policy is '%s'; saga requires "
                     "'noeviction' (an evicted key would silently lose a saga). "
                     "Run: CONFIG SET maxmemory-policy noeviction",
                     saga_redis_display(main_conn(st)), v);
    }
    checks_done(st);
}

static void on_check_aof(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    (void)conn;
    const char *v = config_value(r);
    st->persistence_off[0] = v != NULL && strcmp(v, "no") == 0;
    checks_done(st);
}

static void on_check_fsync(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    (void)conn;
    const char *v = config_value(r);
    st->fsync_always = v != NULL && strcmp(v, "always") == 0;
    checks_done(st);
}

static void on_check_save(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    (void)conn;
    const char *v = config_value(r);
    st->persistence_off[1] = v != NULL && v[0] == '\0';
    checks_done(st);
}

/* Layout 1 (before 2026-11) kept three indexes; saga_migrate moves their
 * entries into saga:{idx}:sagas a batch per call until none is left. On a
 * server that never saw layout 1 it answers 0 at once. */
#define MIGRATE_BATCH "1000"
#define MIGRATE_CMD "FCALL saga_migrate 4 " KEY_SAGAS " saga:{idx}:active saga:{idx}:all " \
                    "saga:{idx}:expiry " MIGRATE_BATCH

static void on_check_migrate(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        if (st->migrated == 0)
            saga_info("redis %s: moving the indexes of saga's earlier key layout into "
                      KEY_SAGAS, saga_redis_display(conn));
        st->migrated += (uint64_t)r->integer;
        if (saga_redis_command(conn, on_check_migrate, st, MIGRATE_CMD) == 0) {
            st->stats.commands++;
            return;
        }
        /* Not sent: the connection is gone. The moves done are kept; the
         * next start-up goes on with the rest. */
        check_failed(st, "redis %s: connection lost while moving the indexes of saga's "
                     "earlier key layout; start again to finish", saga_redis_display(conn));
    } else if (r == NULL) {
        check_lost(st);
    } else if (r->type == REDIS_REPLY_INTEGER) {
        if (st->migrated > 0)
            saga_info("redis %s: %" PRIu64 " index entries moved into " KEY_SAGAS,
                      saga_redis_display(conn), st->migrated);
    } else {
        check_failed(st, "redis %s: cannot move the indexes of saga's earlier key layout: %s",
                     saga_redis_display(conn),
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
    }
    checks_done(st);
}

/* The library check of the start-up: saga_library, a load if needed, then
 * the migration, which counts the check done. */
static void start_migrate(store_redis_t *st) {
    if (saga_redis_command(main_conn(st), on_check_migrate, st, MIGRATE_CMD) == 0) {
        st->stats.commands++;
        return;
    }
    check_lost(st);
    checks_done(st);
}

static void on_check_loaded(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r == NULL)
            check_lost(st);
        else
            check_failed(st, "redis %s: cannot load saga's function library: %s",
                         saga_redis_display(conn), r->str);
        checks_done(st);
        return;
    }
    start_migrate(st);
}

static void on_check_library(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    if (r == NULL) {
        check_lost(st);
        checks_done(st);
    } else if (library_is_ours(r)) {
        start_migrate(st);
    } else {
        library_replacing(conn, r);
        load_library(&st->lanes[0], on_check_loaded, st);
    }
}

/* The shards of the global keys (store/shards.h). A single Redis has one,
 * the keys of before. On Redis Cluster they are read from saga:{idx}:shards;
 * when absent, the first engine records them (SET NX, then read back: of
 * two engines starting at once, both use what the first recorded): one
 * shard when the cluster holds data of the layout before shards, else
 * opt.shards, else 4 per primary. */
#define SHARDS_LEGACY "EXISTS saga:{idx}:sagas saga:{idx}:intake saga:{idx}:submitted"

static void shards_get(store_redis_t *st);

static void on_shards_set(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    (void)conn;
    if (r == NULL) {
        check_lost(st);
        checks_done(st);
        return;
    }
    shards_get(st); /* ours, or what another engine recorded first */
}

/* cluster_size from CLUSTER INFO: the primaries that serve slots. */
static unsigned cluster_size(const redisReply *r) {
    const char *v = r != NULL && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cluster_size:")
                                                               : NULL;
    long n = v != NULL ? atol(v + 13) : 0;
    return n > 0 && n < 1000 ? (unsigned)n : 1;
}

static void on_shards_probe(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    /* The reply to EXISTS, then (this same callback) to CLUSTER INFO. */
    if (r == NULL) {
        check_lost(st);
        checks_done(st);
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer > 0) {
            saga_shards_single(&st->shards);
            saga_info("redis %s: the cluster holds sagas of the layout before shards: "
                      "its global keys stay in one shard, {idx}", saga_redis_display(conn));
        } else if (st->opt.shards > 0) {
            saga_shards_spread(&st->shards, st->opt.shards > SAGA_SHARDS_MAX ? SAGA_SHARDS_MAX
                                                                             : st->opt.shards);
        } else if (saga_redis_command(conn, on_shards_probe, st, "CLUSTER INFO") == 0) {
            st->stats.commands++;
            return;
        } else {
            check_lost(st);
            checks_done(st);
            return;
        }
    } else if (r->type == REDIS_REPLY_STRING) {
        unsigned k = 4 * cluster_size(r);
        saga_shards_spread(&st->shards, k > SAGA_SHARDS_MAX ? SAGA_SHARDS_MAX : k);
    } else {
        check_failed(st, "redis %s: cannot probe for saga's key layout: %s",
                     saga_redis_display(conn),
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
        checks_done(st);
        return;
    }
    char text[SAGA_SHARDS_MAX * SAGA_SHARD_TAG_MAX];
    if (saga_shards_format(&st->shards, text, sizeof(text)) < 0 ||
        saga_redis_command(conn, on_shards_set, st, "SET %s %s NX", SAGA_KEY_SHARDS, text) != 0) {
        check_lost(st);
        checks_done(st);
        return;
    }
    st->stats.commands++;
}

static void on_shards_get(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    char why[160];
    if (r == NULL) {
        check_lost(st);
    } else if (r->type == REDIS_REPLY_STRING) {
        if (saga_shards_parse(&st->shards, r->str, (size_t)r->len, why, sizeof(why)) != 0)
            check_failed(st, "redis %s: " SAGA_KEY_SHARDS " is not a list of shard tags: %s",
                         saga_redis_display(conn), why);
        else
            saga_debug("redis %s: %u shard%s of the global keys", saga_redis_display(conn),
                       st->shards.k, st->shards.k == 1 ? "" : "s");
    } else if (r->type == REDIS_REPLY_NIL && !st->shards_probed) {
        st->shards_probed = true;
        if (saga_redis_command(conn, on_shards_probe, st, SHARDS_LEGACY) == 0) {
            st->stats.commands++;
            return;
        }
        check_lost(st);
    } else {
        check_failed(st, "redis %s: cannot read " SAGA_KEY_SHARDS ": %s",
                     saga_redis_display(conn),
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
    }
    checks_done(st);
}

static void shards_get(store_redis_t *st) {
    if (saga_redis_command(main_conn(st), on_shards_get, st, "GET %s", SAGA_KEY_SHARDS) == 0) {
        st->stats.commands++;
        return;
    }
    check_lost(st);
    checks_done(st);
}

static void start_shards(store_redis_t *st) {
    st->shards_probed = false;
    if (!saga_redis_is_cluster(main_conn(st))) {
        saga_shards_single(&st->shards);
        checks_done(st);
        return;
    }
    shards_get(st);
}

/* How many replicas the primary has (one primary on Redis Cluster: they
 * are set up alike), for min_replicas: AUTO becomes 1 on a cluster with
 * replicas, else 0; an explicit count above what is connected is warned
 * about (every write would wait). */
static void on_check_replication(saga_redis_t *conn, redisReply *r, void *data) {
    store_redis_t *st = data;
    long slaves = 0;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        const char *v = strstr(r->str, "connected_slaves:");
        slaves = v ? atol(v + 17) : 0;
    }
    if (st->opt.min_replicas < 0) {
        st->opt.min_replicas = saga_redis_is_cluster(conn) && slaves > 0 ? 1 : 0;
        if (st->opt.min_replicas > 0 && !st->opt.no_advice)
            saga_info("redis %s: a transition counts once 1 replica has it (WAIT; "
                      "--min-replicas 0 turns this off, docs/durability.md)",
                      saga_redis_display(conn));
    } else if (st->opt.min_replicas > slaves) {
        saga_warn("redis %s: --min-replicas %d but the primary has %ld replica%s connected: "
                  "transitions wait until enough replicas are", saga_redis_display(conn),
                  st->opt.min_replicas, slaves, slaves == 1 ? "" : "s");
    }
    st->stats.min_replicas = st->opt.min_replicas;
    checks_done(st);
}

static void start_checks(store_redis_t *st) {
    /* On Redis Cluster the index lives in another slot than the sagas'
     * records: it is updated by separate commands (split_index). */
    if (saga_redis_is_cluster(main_conn(st)) && !st->opt.split_index) {
        st->opt.split_index = true;
        saga_info("redis %s: Redis Cluster: the index of sagas is kept by separate "
                  "commands (docs/redis-layout.md)", saga_redis_display(main_conn(st)));
    }
    st->checking = true;
    st->checks_left = 7;
    st->check_error[0] = '\0';
    int rc = saga_redis_command(main_conn(st), on_check_info, st, "INFO server");
    check_library(&st->lanes[0], on_check_library, st);
    rc |= saga_redis_command(main_conn(st), on_check_policy, st, "CONFIG GET maxmemory-policy");
    rc |= saga_redis_command(main_conn(st), on_check_aof, st, "CONFIG GET appendonly");
    rc |= saga_redis_command(main_conn(st), on_check_fsync, st, "CONFIG GET appendfsync");
    rc |= saga_redis_command(main_conn(st), on_check_save, st, "CONFIG GET save");
    st->stats.commands += 5;
    start_shards(st);
    if (st->opt.min_replicas != 0) {
        st->checks_left++;
        rc |= saga_redis_command(main_conn(st), on_check_replication, st, "INFO replication");
        st->stats.commands++;
    }
    (void)rc; /* a failed send means LOST, whose callbacks count down too */
}

static void on_conn_event(saga_redis_t *conn, saga_redis_event_t ev,
                          const char *errstr, void *data) {
    lane_t *ln = data;
    store_redis_t *st = ln->st;
    bool first = ln == &st->lanes[0];
    (void)conn;
    switch (ev) {
    case SAGA_REDIS_READY:
        if (st->failed || st->closing)
            return;
        if (!st->ready) {
            /* Lane 0 checks the server; the others wait for the result. */
            if (first && !st->checking)
                start_checks(st);
            return;
        }
        if (ln->was_ready) {
            st->stats.reconnects++;
            saga_info("redis %s: connected again; resending %s",
                      saga_redis_display(ln->conn),
                      ln->head ? "pending transitions" : "nothing");
        }
        ln->was_ready = true;
        ln->lib_ok = false;
        check_library(ln, on_lane_library, ln);
        break;
    case SAGA_REDIS_LOST:
        ln->lib_ok = false;
        if (st->nlanes == 1)
            saga_warn("redis %s: connection lost; transitions wait until it is back",
                      saga_redis_display(ln->conn));
        else
            saga_warn("redis %s: connection %u of %u lost; its sagas' transitions wait "
                      "until it is back", saga_redis_display(ln->conn),
                      (unsigned)(ln - st->lanes) + 1, st->nlanes);
        break;
    case SAGA_REDIS_CONNECT_FAILED:
        if (first && !st->ready && !st->checking && !st->failed) {
            /* The first connection failed: nothing was ever possible. */
            st->failed = true;
            char msg[600];
            snprintf(msg, sizeof(msg), "%s", errstr ? errstr : "cannot connect");
            st->ready_cb(&st->base, SAGA_EUNAVAILABLE, msg, st->ready_data);
        } else if (first || st->ready) {
            /* Every failed attempt of every lane: a lane that cannot connect
             * holds its sagas, which must not go unnoticed. */
            saga_warn("%s; retrying", errstr ? errstr : "redis: cannot connect");
        } else {
            /* Before the checks, lane 0 speaks for the server. */
            saga_debug("%s; retrying", errstr ? errstr : "redis: cannot connect");
        }
        break;
    }
}

/* ---------------------------------------------------------------------- */
/* The store interface                                                     */
/* ---------------------------------------------------------------------- */

static int refuse(store_redis_t *st) {
    if (st->closing)
        return SAGA_ECLOSING;
    if (st->failed)
        return SAGA_EUNAVAILABLE;
    return 0;
}

static int rs_write(saga_store_t *s, const saga_store_write_t *w,
                    saga_store_write_cb cb, void *data) {
    store_redis_t *st = (store_redis_t *)s;
    int rc = refuse(st);
    if (rc != 0)
        return rc;
    if (strlen(w->id) > SAGA_ID_MAX ||
        (w->worker != NULL && strlen(w->worker) >= KEY_MAX_OWNED - sizeof(KEY_OWNED)))
        return -EINVAL;
    lane_t *ln = lane_of(st, w->id);
    rq_t *rq = rq_new(ln, RQ_WRITE, w->id, (rq_cb_t){.write = cb}, data);
    rq_t *ix = NULL;
    if (rq == NULL)
        return -ENOMEM;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    rq->score = now; /* the write's time: `updated`, history, index scores */
    /* Before the start-up checks, whether the index is split (Redis
     * Cluster) is not known yet: the index request is made, and dropped
     * when it is sent to a single Redis. */
    if ((st->opt.split_index || !st->ready) &&
        (w->flags & (SAGA_WRITE_CREATE | SAGA_WRITE_TERMINAL))) {
        if ((ix = rq_new(ln, RQ_INDEX, w->id, (rq_cb_t){.done = NULL}, NULL)) == NULL) {
            rq_free(rq);
            return -ENOMEM;
        }
        ix->tentative = !st->opt.split_index;
        if (w->flags & SAGA_WRITE_CREATE) {
            ix->op = "created";
            ix->score = now;
        } else {
            ix->op = "finished";
            ix->score = now + (int64_t)(w->retention_ms != 0 ? w->retention_ms
                                                             : st->opt.retention_ms);
        }
        /* An owned saga (fenced) is listed in its owner's set too. */
        if (w->fence != 0 && w->worker != NULL) {
            if ((ix->text = strdup(w->worker)) == NULL) {
                rq_free(ix);
                rq_free(rq);
                return -ENOMEM;
            }
            ix->len = strlen(ix->text);
        }
    }
    rq->w = w;
    uint64_t tok = saga_rng_next(&st->rng);
    for (int i = 15; i >= 0; i--, tok >>= 4) /* 16 hex digits, no printf */
        rq->wtok[i] = "0123456789abcdef"[tok & 15];
    rq->wtok[16] = '\0';
    if (history_entry(w, now, &rq->text, &rq->len) != 0) {
        rq_free(ix);
        rq_free(rq);
        return -ENOMEM;
    }
    /* Index before a create (never a record nobody can find), after a
     * finish (never a finished-looking index entry of an unfinished saga).
     * On Redis Cluster the index lives on another primary, reached over
     * another connection, so sending it after the write would not keep
     * that order: a finish's index update is sent only once the write is
     * acknowledged (rq->after; docs/redis-layout.md). For the same reason
     * a create's index entries are sent before it but may be applied
     * after it: the create is reported written only once both are
     * answered (rq->pair), so that no saga is acted on (its intake entry
     * acknowledged, its steps called) before the index and its owner's set
     * list it. */
    if (ix != NULL && (w->flags & SAGA_WRITE_CREATE)) {
        rq->pair = ix; /* (a tentative one on a single Redis ends at once) */
        ix->pair = rq;
        enqueue(ix);
    } else {
        rq->after = ix;
    }
    enqueue(rq);
    return 0;
}

/* The history entry of a write: "<ms>\t<seq>\t<worker>" then "\t<type>\t
 * <step>\t<phase>\t<attempt>\t<detail>" per event, the detail escaped
 * (\\ \t \n \r) so that tabs only ever separate fields. `ms` is this
 * engine's clock when the transition was handed to the store. */
static char *put_str(char *p, const char *s) {
    size_t n = s ? strlen(s) : 0;
    memcpy(p, s ? s : "", n);
    return p + n;
}

static int history_entry(const saga_store_write_t *w, int64_t now, char **out,
                         size_t *outlen) {
    size_t cap = 64 + (w->worker ? strlen(w->worker) : 0);
    for (size_t i = 0; i < w->nevents; i++) {
        const saga_event_t *e = &w->events[i];
        cap += 48 + strlen(e->type) + (e->step ? strlen(e->step) : 0) +
               (e->phase ? strlen(e->phase) : 0) + 2 * e->detail_len;
    }
    char *b = malloc(cap), *p = b;
    if (b == NULL)
        return -ENOMEM;
    /* Built by hand: it runs on every write (cap above bounds it). */
    p += saga_fmt_u64(p, (uint64_t)now);
    *p++ = '\t';
    p += saga_fmt_u64(p, w->seq);
    *p++ = '\t';
    p = put_str(p, w->worker);
    for (size_t i = 0; i < w->nevents; i++) {
        const saga_event_t *e = &w->events[i];
        *p++ = '\t';
        p = put_str(p, e->type);
        *p++ = '\t';
        p = put_str(p, e->step);
        *p++ = '\t';
        p = put_str(p, e->phase);
        *p++ = '\t';
        p += saga_fmt_u64(p, e->attempt);
        *p++ = '\t';
        for (size_t j = 0; j < e->detail_len; j++) {
            char c = e->detail[j];
            switch (c) {
            case '\\': *p++ = '\\'; *p++ = '\\'; break;
            case '\t': *p++ = '\\'; *p++ = 't'; break;
            case '\n': *p++ = '\\'; *p++ = 'n'; break;
            case '\r': *p++ = '\\'; *p++ = 'r'; break;
            default: *p++ = c;
            }
        }
    }
    *p = '\0';
    *out = b;
    *outlen = (size_t)(p - b);
    return 0;
}

/* A saga's load and history go through its lane, behind its writes; the
 * rest (definitions, the list of unfinished sagas) through lane 0. */
static int simple(store_redis_t *st, rq_kind_t kind, const char *key, rq_cb_t cb,
                  void *data) {
    int rc = refuse(st);
    if (rc != 0)
        return rc;
    lane_t *ln = kind == RQ_LOAD || kind == RQ_HISTORY ? lane_of(st, key) : &st->lanes[0];
    rq_t *rq = rq_new(ln, kind, key, cb, data);
    if (rq == NULL)
        return -ENOMEM;
    enqueue(rq);
    return 0;
}

static int rs_load(saga_store_t *s, const char *id, saga_store_load_cb cb, void *data) {
    return simple((store_redis_t *)s, RQ_LOAD, id, (rq_cb_t){.load = cb}, data);
}

static int rs_history(saga_store_t *s, const char *id, saga_store_history_cb cb,
                      void *data) {
    return simple((store_redis_t *)s, RQ_HISTORY, id, (rq_cb_t){.history = cb}, data);
}

static int rs_get_definition(saga_store_t *s, const char *hash,
                             saga_store_text_cb cb, void *data) {
    return simple((store_redis_t *)s, RQ_GETDEF, hash, (rq_cb_t){.text = cb}, data);
}

static int rs_list_unfinished(saga_store_t *s, saga_store_ids_cb cb, void *data) {
    return simple((store_redis_t *)s, RQ_LIST, "(active)", (rq_cb_t){.ids = cb}, data);
}

/* A definition must be stored before any saga that uses it: its text is
 * queued on every lane (SET NX, so the copies are harmless), ahead of every
 * later write whatever its lane. Lane 0's copy carries the callback. */
static int rs_put_definition(saga_store_t *s, const char *hash, const char *text,
                             size_t len, saga_store_done_cb cb, void *data) {
    store_redis_t *st = (store_redis_t *)s;
    int rc = refuse(st);
    if (rc != 0)
        return rc;
    rq_t *rqs[LANES_MAX] = {NULL};
    for (unsigned i = 0; i < st->nlanes; i++) {
        rq_t *rq = rq_new(&st->lanes[i], RQ_PUTDEF, hash,
                          (rq_cb_t){.done = i == 0 ? cb : NULL}, i == 0 ? data : NULL);
        rqs[i] = rq;
        if (rq == NULL || (rq->text = malloc(len + 1)) == NULL) {
            for (unsigned j = 0; j <= i; j++)
                if (rqs[j] != NULL)
                    rq_free(rqs[j]);
            return -ENOMEM;
        }
        memcpy(rq->text, text, len);
        rq->text[len] = '\0';
        rq->len = len;
    }
    for (unsigned i = 0; i < st->nlanes; i++)
        enqueue(rqs[i]);
    return 0;
}

static void maybe_freed(store_redis_t *st) {
    if (st->open_handles > 0 || st->open_conns > 0)
        return;
    void (*closed)(void *) = st->closed;
    void *data = st->closed_data;
    free(st);
    if (closed != NULL)
        closed(data);
}

static void on_handle_closed(uv_handle_t *h) {
    store_redis_t *st = h->data;
    st->open_handles--;
    maybe_freed(st);
}

static void on_conn_closed(void *data) {
    lane_t *ln = data;
    store_redis_t *st = ln->st;
    ln->conn = NULL;
    st->open_conns--;
    maybe_freed(st);
}

static void rs_close(saga_store_t *s, void (*closed)(void *), void *data) {
    store_redis_t *st = (store_redis_t *)s;
    if (st->closing)
        return;
    st->closing = true;
    st->closed = closed;
    st->closed_data = data;
    /* Unsent requests end now; sent ones end when the connection closes. */
    for (unsigned i = 0; i < st->nlanes; i++) {
        lane_t *ln = &st->lanes[i];
        rq_t *rq = ln->head;
        while (rq != NULL) {
            rq_t *next = rq->next;
            if (!rq->sent) {
                unlink_rq(ln, rq);
                finish(rq, SAGA_ECLOSING, NULL);
            }
            rq = next;
        }
    }
    for (unsigned i = 0; i < st->nlanes; i++)
        release_held(&st->lanes[i], 0, false, SAGA_ECLOSING);
    uv_close((uv_handle_t *)&st->gc_timer, on_handle_closed);
    uv_close((uv_handle_t *)&st->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&st->wait_prepare, on_handle_closed);
    for (unsigned i = 0; i < st->nlanes; i++)
        saga_redis_close(st->lanes[i].conn, on_conn_closed, &st->lanes[i]);
}

static void on_gc(uv_timer_t *t);

static void on_gc_reply(saga_redis_t *r, redisReply *reply, void *data) {
    store_redis_t *st = data;
    st->gc_busy--;
    if (reply == NULL || st->closing)
        return; /* the next tick asks again */
    if (reply->type != REDIS_REPLY_INTEGER) {
        /* Once until a call succeeds again, not every second. */
        if (!st->gc_failing)
            saga_warn("redis %s: saga_gc: %s; finished sagas are not deleted until it works",
                      saga_redis_display(r),
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        st->gc_failing = true;
        return;
    }
    if (st->gc_failing)
        saga_info("redis %s: saga_gc works again", saga_redis_display(r));
    st->gc_failing = false;
    st->stats.gc_removed += reply->integer > 0 ? (uint64_t)reply->integer : 0;
    if (reply->integer >= GC_BATCH) {
        uv_timer_start(&st->gc_timer, on_gc, GC_BUSY_MS, GC_INTERVAL_MS); /* more here */
        return;
    }
    st->gc_shard = st->shards.k > 0 ? (st->gc_shard + 1) % st->shards.k : 0;
    uv_timer_start(&st->gc_timer, on_gc, reply->integer > 0 ? GC_SOME_MS : GC_INTERVAL_MS,
                   GC_INTERVAL_MS);
}

/* On a single Redis saga_gc deletes the sagas' keys with their index
 * entries ('d'); on Redis Cluster those keys expire on their own. One call
 * on one shard of the index (st->gc_shard). */
static void gc_send(store_redis_t *st) {
    char batch[24], sagas[64];
    batch[saga_fmt_u64(batch, GC_BATCH)] = '\0';
    if (st->gc_shard >= st->shards.k)
        st->gc_shard = (unsigned)saga_rng_upto(&st->rng, st->shards.k - 1);
    if (saga_shards_key(&st->shards, st->gc_shard, SAGA_SHARD_SAGAS, NULL, sagas,
                        sizeof(sagas)) < 0)
        return;
    const char *argv[] = {"FCALL", "saga_gc", "1", sagas, batch,
                          st->opt.split_index ? "-" : "d", SAGA_KEY_PREFIX,
                          SAGA_KEY_RECORD_END, SAGA_KEY_HISTORY_END};
    if (saga_redis_command_argv(main_conn(st), on_gc_reply, st,
                                (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL) == 0) {
        st->gc_busy++;
        st->stats.commands++;
    }
}

static void on_gc(uv_timer_t *t) {
    store_redis_t *st = t->data;
    if (!st->ready || st->gc_busy || st->shards.k == 0 || !saga_redis_ready(main_conn(st)))
        return;
    gc_send(st);
}

static const saga_store_ops_t redis_ops = {
    .name = "redis",
    .write = rs_write,
    .load = rs_load,
    .history = rs_history,
    .put_definition = rs_put_definition,
    .get_definition = rs_get_definition,
    .list_unfinished = rs_list_unfinished,
    .close = rs_close,
};

saga_store_t *saga_store_redis_new(uv_loop_t *loop, const saga_redis_url_t *url,
                                   const saga_store_redis_options_t *opt,
                                   saga_store_ready_cb ready, void *data) {
    store_redis_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->base.ops = &redis_ops;
    st->loop = loop;
    if (opt != NULL)
        st->opt = *opt;
    if (st->opt.retention_ms == 0)
        st->opt.retention_ms = SAGA_DEFAULT_RETENTION_MS;
    snprintf(st->retention, sizeof(st->retention), "%" PRIu64, st->opt.retention_ms);
    st->ready_cb = ready;
    st->ready_data = data;
    saga_rng_seed(&st->rng, 0);
    st->gc_shard = UINT_MAX; /* chosen at random at the first call */
    st->nlanes = st->opt.connections == 0 ? DEFAULT_LANES
                 : st->opt.connections > LANES_MAX ? LANES_MAX : st->opt.connections;
    for (unsigned i = 0; i < st->nlanes; i++) {
        lane_t *ln = &st->lanes[i];
        ln->st = st;
        ln->conn = saga_redis_new(loop, url, &st->opt.conn, on_conn_event, ln);
        int rc = ln->conn == NULL ? -ENOMEM : saga_redis_start(ln->conn);
        if (rc != 0) {
            if (ln->conn != NULL)
                saga_error("redis %s: cannot start connecting: %s",
                           saga_redis_display(ln->conn), strerror(-rc));
            /* Closing a connection that never ran frees it without callbacks. */
            for (unsigned j = 0; j <= i; j++)
                saga_redis_close(st->lanes[j].conn, NULL, NULL);
            free(st);
            return NULL;
        }
        st->open_conns++;
    }
    st->stats.connections = st->nlanes;
    uv_timer_init(loop, &st->gc_timer);
    uv_timer_init(loop, &st->retry_timer);
    uv_prepare_init(loop, &st->wait_prepare);
    uv_unref((uv_handle_t *)&st->wait_prepare);
    st->gc_timer.data = st->retry_timer.data = st->wait_prepare.data = st;
    st->open_handles = 3;
    uv_timer_start(&st->gc_timer, on_gc, GC_INTERVAL_MS, GC_INTERVAL_MS);
    uv_unref((uv_handle_t *)&st->gc_timer);
    return &st->base;
}

saga_redis_t *saga_store_redis_conn(saga_store_t *s) {
    return s->ops == &redis_ops ? main_conn((store_redis_t *)s) : NULL;
}

const saga_shards_t *saga_store_redis_shards(saga_store_t *s) {
    if (s->ops != &redis_ops || !((store_redis_t *)s)->ready)
        return NULL;
    return &((store_redis_t *)s)->shards;
}

bool saga_store_redis_split_index(saga_store_t *s) {
    return s->ops == &redis_ops && ((store_redis_t *)s)->opt.split_index;
}

bool saga_store_redis_available(saga_store_t *s) {
    if (s->ops != &redis_ops)
        return false;
    const store_redis_t *st = (const store_redis_t *)s;
    for (unsigned i = 0; i < st->nlanes; i++) {
        const lane_t *ln = &st->lanes[i];
        if (ln->conn == NULL || !saga_redis_ready(ln->conn) || !ln->lib_ok)
            return false;
    }
    return true;
}

void saga_store_redis_stats(saga_store_t *s, saga_store_redis_stats_t *out) {
    if (s->ops == &redis_ops)
        *out = ((store_redis_t *)s)->stats;
    else
        memset(out, 0, sizeof(*out));
}
