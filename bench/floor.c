/*
 * floor.c -- `saga-floor`: the protocol floor of a saga on one Redis or on
 * a Redis Cluster.
 *
 * What no engine can beat with our write shape: a minimal hiredis-async
 * client, one FCALL per transition whose function runs HSET of 3 fields on
 * the record and XADD of 2 fields on the history, 4 transitions per saga
 * (a 3-step saga: create, 2 steps, finish), C sagas in flight, each saga's
 * writes in order. It loads its own tiny function library (saga_floor) and
 * touches no key of saga's.
 *
 * On one Redis: one connection. On a Redis Cluster node (INFO cluster says
 * cluster_enabled:1): the primaries and their slots from CLUSTER SLOTS, the
 * library loaded on every primary, one pipelined hiredis-async connection
 * per primary, and every saga's writes (its two keys share the saga's hash
 * tag) sent to the primary of that tag's slot (saga_redis_key_slot, the
 * engine's own CRC16). No MOVED/ASK handling: the floor runs on a stable
 * cluster, and a redirection fails the run.
 *
 *   saga-floor --redis unix:///path/sock | redis://HOST:PORT
 *              [-n SAGAS] [-c IN_FLIGHT] [--writes W]
 *
 * Prints one JSON object: sagas, primaries, seconds (first send to last
 * reply), sagas_per_s, fcall_per_s. scripts/bench.sh (scenario round2)
 * runs it against a fresh server or cluster per run; docs/benchmarks.md
 * says what it means.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis/redis_conn.h"

#define ID_LEN 26 /* like a ULID, as the engine's ids */
#define SLOTS 16384
#define MAX_NODES 64

static const char LIBRARY[] =
    "#!lua name=saga_floor\n"
    "redis.register_function('floor_write', function(keys, args)\n"
    "  redis.call('HSET', keys[1], args[1], args[2], args[3], args[4], args[5], args[6])\n"
    "  redis.call('XADD', keys[2], '*', args[7], args[8], args[9], args[10])\n"
    "  return 0\n"
    "end)\n";

typedef struct floor_s floor_t;

typedef struct slot_s {
    floor_t *f;
    char id[ID_LEN + 1];
    int write; /* writes done for the current saga */
    int node;  /* the connection of the saga's primary */
} slot_t;

typedef struct node_s {
    char host[256];
    int port;        /* 0: the unix socket `host` */
    redisAsyncContext *ac;
} node_t;

struct floor_s {
    uv_loop_t *loop;
    node_t node[MAX_NODES];
    int nodes, ready;
    unsigned char owner[SLOTS]; /* slot -> node (all 0 on one Redis) */
    int cluster;
    slot_t *slots;
    uint64_t sagas, started, finished, writes_per_saga, in_flight;
    uint64_t t0, t1;
    int failed;
};

static void send_write(slot_t *s);

static void disconnect_all(floor_t *f) {
    for (int i = 0; i < f->nodes; i++)
        if (f->node[i].ac != NULL)
            redisAsyncDisconnect(f->node[i].ac);
}

static void fail(floor_t *f, const char *what, const char *why) {
    if (!f->failed)
        fprintf(stderr, "saga-floor: %s: %s\n", what, why);
    f->failed = 1;
    disconnect_all(f);
}

/* The next saga's id, and the node of its hash tag. */
static void begin_saga(slot_t *s) {
    floor_t *f = s->f;
    char rec[64];
    snprintf(s->id, sizeof(s->id), "%0*" PRIu64, ID_LEN, f->started++);
    s->write = 0;
    int n = snprintf(rec, sizeof(rec), "fl:{%s}", s->id);
    s->node = f->cluster ? f->owner[saga_redis_key_slot(rec, (size_t)n)] : 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *data) {
    slot_t *s = data;
    floor_t *f = s->f;
    redisReply *reply = r;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fail(f, "FCALL failed", reply ? reply->str : ac->errstr);
        return;
    }
    if (++s->write < (int)f->writes_per_saga) {
        send_write(s);
        return;
    }
    f->finished++;
    if (f->finished == f->sagas) {
        f->t1 = uv_hrtime();
        disconnect_all(f);
        return;
    }
    if (f->started < f->sagas) {
        begin_saga(s);
        send_write(s);
    }
}

static void send_write(slot_t *s) {
    char rec[64], hist[64], seq[24], step[48], entry[96];
    snprintf(rec, sizeof(rec), "fl:{%s}", s->id);
    snprintf(hist, sizeof(hist), "fl:{%s}:history", s->id);
    snprintf(seq, sizeof(seq), "%d", s->write + 1);
    snprintf(step, sizeof(step), "act:%d", s->write);
    snprintf(entry, sizeof(entry), "step %d succeeded after 1 attempt", s->write);
    const char *state = s->write + 1 == (int)s->f->writes_per_saga ? "completed" : "running";
    const char *argv[] = {"FCALL", "floor_write", "2", rec, hist,
                          "seq", seq, "state", state, step, "done 1 0 0",
                          "type", "step.succeeded", "detail", entry};
    if (redisAsyncCommandArgv(s->f->node[s->node].ac, on_reply, s, 15, argv, NULL) != REDIS_OK)
        fail(s->f, "cannot send", "the connection is closing");
}

/* Every connection answered its PING: the clock starts, C sagas go out. */
static void on_ready(redisAsyncContext *ac, void *r, void *data) {
    floor_t *f = data;
    redisReply *reply = r;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fail(f, "PING", reply ? reply->str : ac->errstr);
        return;
    }
    if (++f->ready < f->nodes)
        return;
    f->t0 = uv_hrtime();
    for (uint64_t i = 0; i < f->in_flight && f->started < f->sagas; i++) {
        begin_saga(&f->slots[i]);
        send_write(&f->slots[i]);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    floor_t *f = ac->data;
    for (int i = 0; i < f->nodes; i++)
        if (f->node[i].ac == ac)
            f->node[i].ac = NULL;
    if (status != REDIS_OK && f->finished < f->sagas && !f->failed) {
        fprintf(stderr, "saga-floor: connection lost: %s\n", ac->errstr);
        f->failed = 1;
        disconnect_all(f);
    }
}

/* A blocking connection for the set-up (discovery, FUNCTION LOAD). */
static redisContext *connect_sync(const node_t *n) {
    struct timeval tv = {5, 0};
    redisContext *c = n->port == 0 ? redisConnectUnixWithTimeout(n->host, tv)
                                   : redisConnectWithTimeout(n->host, n->port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "saga-floor: cannot connect to %s%s%d: %s\n", n->host,
                n->port ? ":" : " port ", n->port, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Reads CLUSTER SLOTS into f's nodes and slot owners; the URL's host
 * stands in for a primary that reports no address. Returns 0 or 1. */
static int discover(floor_t *f, redisContext *c, const char *url_host) {
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "saga-floor: CLUSTER SLOTS: %s\n",
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        freeReplyObject(r);
        return 1;
    }
    size_t covered = 0;
    f->nodes = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
            fprintf(stderr, "saga-floor: CLUSTER SLOTS: entry %zu is malformed\n", i);
            freeReplyObject(r);
            return 1;
        }
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        redisReply *host = e->element[2]->element[0], *port = e->element[2]->element[1];
        const char *h = host->type == REDIS_REPLY_STRING && host->len > 0 ? host->str : url_host;
        int p = (int)port->integer, k;
        for (k = 0; k < f->nodes; k++)
            if (f->node[k].port == p && strcmp(f->node[k].host, h) == 0)
                break;
        if (k == f->nodes) {
            if (f->nodes == MAX_NODES || strlen(h) >= sizeof(f->node[k].host)) {
                fprintf(stderr, "saga-floor: CLUSTER SLOTS: more than %d primaries or a "
                                "host too long\n", MAX_NODES);
                freeReplyObject(r);
                return 1;
            }
            snprintf(f->node[k].host, sizeof(f->node[k].host), "%s", h);
            f->node[k].port = p;
            f->nodes++;
        }
        for (long long s = lo; s <= hi && s < SLOTS; s++, covered++)
            f->owner[s] = (unsigned char)k;
    }
    freeReplyObject(r);
    if (covered != SLOTS) {
        fprintf(stderr, "saga-floor: CLUSTER SLOTS covers %zu of %d slots\n", covered, SLOTS);
        return 1;
    }
    return 0;
}

static int load_library(const node_t *n) {
    redisContext *c = connect_sync(n);
    if (c == NULL)
        return 1;
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", LIBRARY};
    redisReply *r = redisCommandArgv(c, 4, argv, NULL);
    int rc = r == NULL || r->type == REDIS_REPLY_ERROR;
    if (rc)
        fprintf(stderr, "saga-floor: FUNCTION LOAD on %s:%d: %s\n", n->host, n->port,
                r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* Finds the nodes (one Redis, or every primary of a cluster) and loads the
 * library on each. Returns 0, 1 (failure, said on stderr) or 2 (bad URL). */
static int set_up(floor_t *f, const char *url) {
    node_t *n0 = &f->node[0];
    if (strncmp(url, "unix://", 7) == 0) {
        if (strlen(url + 7) >= sizeof(n0->host)) {
            fprintf(stderr, "saga-floor: --redis: path too long\n");
            return 2;
        }
        snprintf(n0->host, sizeof(n0->host), "%s", url + 7);
        n0->port = 0;
    } else if (strncmp(url, "redis://", 8) == 0) {
        const char *h = url + 8, *colon = strrchr(h, ':');
        size_t hl = colon ? (size_t)(colon - h) : strlen(h);
        if (hl >= sizeof(n0->host)) {
            fprintf(stderr, "saga-floor: --redis: host too long\n");
            return 2;
        }
        memcpy(n0->host, h, hl);
        n0->host[hl] = '\0';
        n0->port = 6379;
        if (colon) {
            char *end;
            long p = strtol(colon + 1, &end, 10);
            if (*end != '\0' || p < 1 || p > 65535) {
                fprintf(stderr, "saga-floor: --redis: bad port in %s\n", url);
                return 2;
            }
            n0->port = (int)p;
        }
    } else {
        fprintf(stderr, "saga-floor: --redis: expected unix:///PATH or redis://HOST:PORT, got %s\n",
                url);
        return 2;
    }
    f->nodes = 1;
    redisContext *c = connect_sync(n0);
    if (c == NULL)
        return 1;
    redisReply *r = redisCommand(c, "INFO cluster");
    f->cluster = r != NULL && r->type == REDIS_REPLY_STRING &&
                 strstr(r->str, "cluster_enabled:1") != NULL;
    freeReplyObject(r);
    char url_host[256];
    snprintf(url_host, sizeof(url_host), "%s", n0->host);
    int rc = f->cluster ? discover(f, c, url_host) : 0;
    redisFree(c);
    for (int i = 0; rc == 0 && i < f->nodes; i++)
        rc = load_library(&f->node[i]);
    return rc;
}

static void usage(FILE *to) {
    fprintf(to, "usage: saga-floor --redis unix:///PATH | --redis redis://HOST:PORT "
                "[-n SAGAS] [-c IN_FLIGHT] [--writes PER_SAGA]\n");
}

int main(int argc, char **argv) {
    const char *url = NULL;
    uint64_t n = 100000, c = 1000, writes = 4;
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'R'},  {"sagas", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {"writes", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "n:c:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 'R': url = optarg; break;
        case 'n': n = strtoull(optarg, &end, 10); break;
        case 'c': c = strtoull(optarg, &end, 10); break;
        case 'w': writes = strtoull(optarg, &end, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end != NULL && (*end != '\0' || end == optarg)) {
            fprintf(stderr, "saga-floor: -%c: not a number: %s\n", o, optarg);
            return 2;
        }
    }
    if (url == NULL || n == 0 || c == 0 || writes == 0) {
        usage(stderr);
        return 2;
    }
    floor_t *f = calloc(1, sizeof(*f));
    slot_t *slots = calloc(c, sizeof(*slots));
    if (f == NULL || slots == NULL) {
        fprintf(stderr, "saga-floor: out of memory\n");
        free(f);
        free(slots);
        return 1;
    }
    int rc = set_up(f, url);
    if (rc != 0) {
        free(f);
        free(slots);
        return rc;
    }
    f->loop = uv_default_loop();
    f->slots = slots;
    f->sagas = n;
    f->in_flight = c;
    f->writes_per_saga = writes;
    for (uint64_t i = 0; i < c; i++)
        slots[i].f = f;
    for (int i = 0; i < f->nodes; i++) {
        node_t *nd = &f->node[i];
        nd->ac = nd->port == 0 ? redisAsyncConnectUnix(nd->host)
                               : redisAsyncConnect(nd->host, nd->port);
        if (nd->ac == NULL || nd->ac->err) {
            fprintf(stderr, "saga-floor: cannot connect to %s:%d: %s\n", nd->host, nd->port,
                    nd->ac ? nd->ac->errstr : "out of memory");
            if (nd->ac != NULL)
                redisAsyncFree(nd->ac);
            nd->ac = NULL;
            f->failed = 1;
            break;
        }
        nd->ac->data = f;
        redisLibuvAttach(nd->ac, f->loop);
        redisAsyncSetDisconnectCallback(nd->ac, on_disconnect);
        redisAsyncCommand(nd->ac, on_ready, f, "PING");
    }
    if (f->failed)
        disconnect_all(f);
    uv_run(f->loop, UV_RUN_DEFAULT);
    uv_loop_close(f->loop);
    free(slots);
    int ok = !f->failed && f->finished == n;
    double secs = (double)(f->t1 - f->t0) / 1e9;
    int nodes = f->nodes;
    free(f);
    if (!ok)
        return 1;
    printf("{\"kind\":\"floor\",\"sagas\":%" PRIu64 ",\"concurrency\":%" PRIu64
           ",\"writes_per_saga\":%" PRIu64 ",\"primaries\":%d,\"seconds\":%.3f,"
           "\"sagas_per_s\":%.0f,\"fcall_per_s\":%.0f}\n",
           n, c, writes, nodes, secs, (double)n / secs, (double)(n * writes) / secs);
    return 0;
}
