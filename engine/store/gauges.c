/*
 * gauges.c -- counts for /metrics (gauges.h). Key names: keys.h.
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
#include "store/store_redis.h"

typedef struct gauges_rq_s {
    saga_gauges_cb cb;
    void *data;
    saga_gauges_t g;
    unsigned outstanding;
    int status;
    char why[200];
} gauges_rq_t;

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

/* Sends a command counted in rq->outstanding; a failed send is an error. */
static void send_cmd(gauges_rq_t *rq, saga_redis_t *c, saga_redis_reply_cb cb, int argc,
                     const char **argv) {
    rq->outstanding++;
    if (saga_redis_command_argv(c, cb, rq, argc, argv, NULL) != 0) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
        rq->outstanding--;
    }
}

static bool integer(gauges_rq_t *rq, const redisReply *r, const char *what, uint64_t *out) {
    if (r == NULL) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
        return false;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        char why[160];
        snprintf(why, sizeof(why), "%s: expected a count, got %s", what,
                 r->type == REDIS_REPLY_ERROR ? r->str : "another reply");
        fail(rq, SAGA_ESTORE, why);
        return false;
    }
    *out = (uint64_t)r->integer;
    return true;
}

static void on_unfinished(saga_redis_t *c, redisReply *r, void *data) {
    gauges_rq_t *rq = data;
    integer(rq, r, SAGA_KEY_SAGAS, &rq->g.unfinished);
    if (rq->status == 0 && rq->g.unfinished > SAGA_GAUGES_SCAN_MAX)
        rq->g.partial = true;
    done_one(rq);
}

static void on_finished(saga_redis_t *c, redisReply *r, void *data) {
    gauges_rq_t *rq = data;
    integer(rq, r, SAGA_KEY_SAGAS, &rq->g.finished);
    done_one(rq);
}

static void on_workers(saga_redis_t *c, redisReply *r, void *data) {
    gauges_rq_t *rq = data;
    integer(rq, r, SAGA_KEY_WORKERS, &rq->g.workers);
    done_one(rq);
}

static void on_backlog(saga_redis_t *c, redisReply *r, void *data) {
    gauges_rq_t *rq = data;
    integer(rq, r, SAGA_KEY_INTAKE, &rq->g.intake_backlog);
    done_one(rq);
}

static void on_state(saga_redis_t *c, redisReply *r, void *data) {
    gauges_rq_t *rq = data;
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
        fail(rq, SAGA_ESTORE, r->str);
    }
    /* nil: the record expired meanwhile */
    done_one(rq);
}

static void on_ids(saga_redis_t *c, redisReply *r, void *data) {
    gauges_rq_t *rq = data;
    if (r == NULL) {
        fail(rq, SAGA_EUNAVAILABLE, "lost the connection to Redis");
    } else if (r->type != REDIS_REPLY_ARRAY) {
        fail(rq, SAGA_ESTORE, SAGA_KEY_SAGAS ": expected a list of ids");
    } else {
        for (size_t i = 0; i < r->elements && rq->status == 0; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 200) {
                fail(rq, SAGA_ESTORE, SAGA_KEY_SAGAS ": an id that is not a string");
                break;
            }
            char key[256];
            snprintf(key, sizeof(key), SAGA_KEY_RECORD_FMT, e->str);
            const char *argv[] = {"HGET", key, "state"};
            send_cmd(rq, c, on_state, 3, argv);
        }
    }
    done_one(rq);
}

int saga_store_gauges(saga_store_t *s, saga_gauges_cb cb, void *data) {
    saga_redis_t *c = saga_store_redis_conn(s);
    if (c == NULL)
        return -ENOTSUP;
    if (!saga_redis_ready(c))
        return SAGA_EUNAVAILABLE;
    gauges_rq_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    rq->cb = cb;
    rq->data = data;
    rq->outstanding = 1; /* this function's own, released below */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char now[24], limit[24];
    snprintf(now, sizeof(now), "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    snprintf(limit, sizeof(limit), "%d", SAGA_GAUGES_SCAN_MAX);
    const char *unfinished[] = {"ZCOUNT", SAGA_KEY_SAGAS, "-inf", "(0"};
    const char *finished[] = {"ZCOUNT", SAGA_KEY_SAGAS, "0", "+inf"};
    const char *workers[] = {"ZCOUNT", SAGA_KEY_WORKERS, now, "+inf"};
    const char *backlog[] = {"XLEN", SAGA_KEY_INTAKE};
    /* the newest unfinished first: their scores are -created */
    const char *ids[] = {"ZRANGEBYSCORE", SAGA_KEY_SAGAS, "-inf", "(0", "LIMIT", "0", limit};
    send_cmd(rq, c, on_unfinished, 4, unfinished);
    send_cmd(rq, c, on_finished, 4, finished);
    send_cmd(rq, c, on_workers, 4, workers);
    send_cmd(rq, c, on_backlog, 2, backlog);
    send_cmd(rq, c, on_ids, 7, ids);
    if (rq->outstanding == 1) {
        /* nothing was sent: no callback */
        free(rq);
        return SAGA_EUNAVAILABLE;
    }
    /* callbacks never run inside the calls above, so this cannot finish */
    rq->outstanding--;
    return 0;
}
