/*
 * gauges.c -- counts for /metrics (gauges.h). Key names: keys.h and
 * store/shards.h: the index of sagas and the intake exist once per shard,
 * and their counts are summed over the shards.
 */
#include "store/gauges.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "redis/redis_conn.h"
#include "saga/errors.h"
#include "store/keys.h"
#include "store/shards.h"
#include "store/store_redis.h"

#define KEY_MAX 256

typedef struct gauges_rq_s {
    saga_gauges_cb cb;
    void *data;
    saga_gauges_t g;
    unsigned outstanding;
    uint64_t shard_scan;  /* unfinished sagas looked at per shard, at most */
    int status;
    char why[200];
} gauges_rq_t;

/* One command of a reading: the request and the key it read (named in
 * messages). */
typedef struct gauge_cmd_s {
    gauges_rq_t *rq;
    char key[KEY_MAX];
} gauge_cmd_t;

static void fail(gauges_rq_t *rq, int status, const char *why) {
    if (rq->status == 0) {
        rq->status = status;
        snprintf(rq->why, sizeof(rq->why), "%s", why);
    }
}

static void done_one(gauges_rq_t *rq) {
    if (--rq->outstanding > 0)
        return;
    rq->cb(rq->status, rq->status == 0 ? NULL : rq->why, rq->status == 0 ? &rq->g : NULL,
           rq->data);
    free(rq);
}

/* The end of one command: its context freed, the request counted down. */
static void cmd_done(gauge_cmd_t *gc) {
    gauges_rq_t *rq = gc->rq;
    free(gc);
    done_one(rq);
}

/* Sends a command counted in rq->outstanding, whose key is argv[1] (a
 * FCALL's: argv[3]); a failed send is an error. */
static void send_cmd(gauges_rq_t *rq, saga_redis_t *c, saga_redis_reply_cb cb, int argc,
                     const char **argv) {
    gauge_cmd_t *gc = malloc(sizeof(*gc));
    if (gc == NULL) {
        fail(rq, -ENOMEM, "out of memory");
        return;
    }
    gc->rq = rq;
    snprintf(gc->key, sizeof(gc->key), "%s", strcmp(argv[0], "FCALL") == 0 ? argv[3] : argv[1]);
    rq->outstanding++;
    if (saga_redis_command_argv(c, cb, gc, argc, argv, NULL) != 0) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
        rq->outstanding--;
        free(gc);
    }
}

/* A count reply added to *sum; returns it in *n. */
static bool integer(gauge_cmd_t *gc, const redisReply *r, uint64_t *sum, uint64_t *n) {
    gauges_rq_t *rq = gc->rq;
    if (r == NULL) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
        return false;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        char why[200];
        snprintf(why, sizeof(why), "%s: expected a count, got %s", gc->key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "another reply");
        fail(rq, SAGA_ESTORE, why);
        return false;
    }
    *sum += (uint64_t)r->integer;
    if (n != NULL)
        *n = (uint64_t)r->integer;
    return true;
}

static void on_unfinished(saga_redis_t *c, redisReply *r, void *data) {
    gauge_cmd_t *gc = data;
    gauges_rq_t *rq = gc->rq;
    uint64_t n = 0;
    (void)c;
    /* More in a shard than its states read: the states are of a part. */
    if (integer(gc, r, &rq->g.unfinished, &n) && n > rq->shard_scan)
        rq->g.partial = true;
    cmd_done(gc);
}

static void on_finished(saga_redis_t *c, redisReply *r, void *data) {
    gauge_cmd_t *gc = data;
    (void)c;
    integer(gc, r, &gc->rq->g.finished, NULL);
    cmd_done(gc);
}

static void on_workers(saga_redis_t *c, redisReply *r, void *data) {
    gauge_cmd_t *gc = data;
    (void)c;
    integer(gc, r, &gc->rq->g.workers, NULL);
    cmd_done(gc);
}

static void on_backlog(saga_redis_t *c, redisReply *r, void *data) {
    gauge_cmd_t *gc = data;
    (void)c;
    integer(gc, r, &gc->rq->g.intake_backlog, NULL);
    cmd_done(gc);
}

static void on_state(saga_redis_t *c, redisReply *r, void *data) {
    gauge_cmd_t *gc = data;
    gauges_rq_t *rq = gc->rq;
    (void)c;
    if (r == NULL) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
    } else if (r->type == REDIS_REPLY_STRING) {
        if (strcmp(r->str, "running") == 0 || strcmp(r->str, "confirming") == 0)
            rq->g.running++; /* a TCC saga's Confirm phase runs too */
        else if (strcmp(r->str, "compensating") == 0)
            rq->g.compensating++;
        else if (strcmp(r->str, "stuck") == 0)
            rq->g.stuck++;
        /* finished meanwhile: counted nowhere by this reading */
    } else if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "%s: %s", gc->key, r->str);
        fail(rq, SAGA_ESTORE, why);
    }
    /* nil: the record expired meanwhile */
    cmd_done(gc);
}

static void on_ids(saga_redis_t *c, redisReply *r, void *data) {
    gauge_cmd_t *gc = data;
    gauges_rq_t *rq = gc->rq;
    char why[200];
    if (r == NULL) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
    } else if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(why, sizeof(why), "%s: expected a list of ids", gc->key);
        fail(rq, SAGA_ESTORE, why);
    } else {
        for (size_t i = 0; i < r->elements && rq->status == 0; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 200) {
                snprintf(why, sizeof(why), "%s: an id that is not a string", gc->key);
                fail(rq, SAGA_ESTORE, why);
                break;
            }
            char key[KEY_MAX];
            snprintf(key, sizeof(key), SAGA_KEY_RECORD_FMT, e->str);
            const char *argv[] = {"HGET", key, "state"};
            send_cmd(rq, c, on_state, 3, argv);
        }
    }
    cmd_done(gc);
}

int saga_store_gauges(saga_store_t *s, saga_gauges_cb cb, void *data) {
    saga_redis_t *c = saga_store_redis_conn(s);
    if (c == NULL)
        return -ENOTSUP;
    const saga_shards_t *sh = saga_store_redis_shards(s);
    if (!saga_redis_ready(c) || sh == NULL)
        return SAGA_EUNAVAILABLE;
    gauges_rq_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    rq->cb = cb;
    rq->data = data;
    rq->outstanding = 1; /* this function's own, released below */
    /* The states of SAGA_GAUGES_SCAN_MAX unfinished sagas at most, the
     * newest of each shard in equal parts (a saga's shard is a hash of its
     * id: the shards fill evenly). */
    rq->shard_scan = (SAGA_GAUGES_SCAN_MAX + sh->k - 1) / sh->k;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char now[24], limit[24];
    snprintf(now, sizeof(now), "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    snprintf(limit, sizeof(limit), "%llu", (unsigned long long)rq->shard_scan);
    const char *workers[] = {"ZCOUNT", SAGA_KEY_WORKERS, now, "+inf"};
    send_cmd(rq, c, on_workers, 4, workers);
    for (unsigned i = 0; i < sh->k; i++) {
        char sagas[KEY_MAX], intake[KEY_MAX];
        if (saga_shards_key(sh, i, SAGA_SHARD_SAGAS, NULL, sagas, sizeof(sagas)) < 0 ||
            saga_shards_key(sh, i, SAGA_SHARD_INTAKE, NULL, intake, sizeof(intake)) < 0) {
            fail(rq, -EINVAL, "a shard's key does not fit");
            break;
        }
        const char *unfinished[] = {"ZCOUNT", sagas, "-inf", "(0"};
        const char *finished[] = {"ZCOUNT", sagas, "0", "+inf"};
        /* pending + not yet delivered: the stream also holds requests
         * handled while an older one is pending (saga.lua) */
        const char *backlog[] = {"FCALL", "saga_intake_backlog", "1", intake, SAGA_INTAKE_GROUP};
        /* the newest unfinished first: their scores are -created */
        const char *ids[] = {"ZRANGEBYSCORE", sagas, "-inf", "(0", "LIMIT", "0", limit};
        send_cmd(rq, c, on_unfinished, 4, unfinished);
        send_cmd(rq, c, on_finished, 4, finished);
        send_cmd(rq, c, on_backlog, 5, backlog);
        send_cmd(rq, c, on_ids, 7, ids);
    }
    if (rq->outstanding == 1) {
        /* nothing was sent: no callback */
        int status = rq->status != 0 ? rq->status : SAGA_EUNAVAILABLE;
        free(rq);
        return status;
    }
    /* callbacks never run inside the calls above, so this cannot finish */
    rq->outstanding--;
    return 0;
}
