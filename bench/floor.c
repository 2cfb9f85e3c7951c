/*
 * floor.c -- `saga-floor`: the protocol floor of a saga on one Redis.
 *
 * What no engine can beat with our write shape: a minimal hiredis-async
 * client on one connection, one FCALL per transition whose function runs
 * HSET of 3 fields on the record and XADD of 2 fields on the history, 4
 * transitions per saga (a 3-step saga: create, 2 steps, finish), C sagas
 * in flight, each saga's writes in order. It loads its own tiny function
 * library (saga_floor) and touches no key of saga's.
 *
 *   saga-floor --redis unix:///path/sock [-n SAGAS] [-c IN_FLIGHT] [--writes W]
 *
 * Prints one JSON object: sagas, seconds (first send to last reply),
 * sagas_per_s, fcall_per_s. scripts/bench.sh (scenario round2) runs it
 * against a fresh server per run; docs/benchmarks.md says what it means.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#define ID_LEN 26 /* like a ULID, as the engine's ids */

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
} slot_t;

struct floor_s {
    uv_loop_t *loop;
    redisAsyncContext *ac;
    uint64_t sagas, started, finished, writes_per_saga;
    uint64_t t0, t1;
    int failed;
};

static void send_write(slot_t *s);

static void on_reply(redisAsyncContext *ac, void *r, void *data) {
    slot_t *s = data;
    floor_t *f = s->f;
    redisReply *reply = r;
    (void)ac;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (!f->failed)
            fprintf(stderr, "saga-floor: FCALL failed: %s\n",
                    reply ? reply->str : f->ac->errstr);
        f->failed = 1;
        redisAsyncDisconnect(f->ac);
        return;
    }
    if (++s->write < (int)f->writes_per_saga) {
        send_write(s);
        return;
    }
    f->finished++;
    if (f->finished == f->sagas) {
        f->t1 = uv_hrtime();
        redisAsyncDisconnect(f->ac);
        return;
    }
    if (f->started < f->sagas) {
        snprintf(s->id, sizeof(s->id), "%0*" PRIu64, ID_LEN, f->started++);
        s->write = 0;
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
    if (redisAsyncCommandArgv(s->f->ac, on_reply, s, 15, argv, NULL) != REDIS_OK) {
        fprintf(stderr, "saga-floor: cannot send\n");
        s->f->failed = 1;
    }
}

static void on_loaded(redisAsyncContext *ac, void *r, void *data) {
    floor_t *f = ac->data;
    slot_t *slots = data;
    redisReply *reply = r;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "saga-floor: FUNCTION LOAD: %s\n", reply ? reply->str : ac->errstr);
        f->failed = 1;
        redisAsyncDisconnect(ac);
        return;
    }
    f->t0 = uv_hrtime();
    uint64_t c = f->started; /* the in-flight count, set by main */
    f->started = 0;
    for (uint64_t i = 0; i < c && f->started < f->sagas; i++) {
        snprintf(slots[i].id, sizeof(slots[i].id), "%0*" PRIu64, ID_LEN, f->started++);
        send_write(&slots[i]);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    floor_t *f = ac->data;
    if (status != REDIS_OK && f->finished < f->sagas && !f->failed) {
        fprintf(stderr, "saga-floor: connection lost: %s\n", ac->errstr);
        f->failed = 1;
    }
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
    redisAsyncContext *ac;
    if (strncmp(url, "unix://", 7) == 0) {
        ac = redisAsyncConnectUnix(url + 7);
    } else if (strncmp(url, "redis://", 8) == 0) {
        char host[256];
        int port = 6379;
        const char *h = url + 8, *colon = strrchr(h, ':');
        size_t hl = colon ? (size_t)(colon - h) : strlen(h);
        if (hl >= sizeof(host)) {
            fprintf(stderr, "saga-floor: --redis: host too long\n");
            return 2;
        }
        memcpy(host, h, hl);
        host[hl] = '\0';
        if (colon)
            port = atoi(colon + 1);
        ac = redisAsyncConnect(host, port);
    } else {
        fprintf(stderr, "saga-floor: --redis: expected unix:///PATH or redis://HOST:PORT, got %s\n",
                url);
        return 2;
    }
    if (ac == NULL || ac->err) {
        fprintf(stderr, "saga-floor: cannot connect to %s: %s\n", url,
                ac ? ac->errstr : "out of memory");
        return 1;
    }
    slot_t *slots = calloc(c, sizeof(*slots));
    if (slots == NULL) {
        fprintf(stderr, "saga-floor: out of memory\n");
        return 1;
    }
    floor_t f = {.loop = uv_default_loop(), .ac = ac, .sagas = n, .started = c,
                 .writes_per_saga = writes};
    for (uint64_t i = 0; i < c; i++)
        slots[i].f = &f;
    ac->data = &f;
    redisLibuvAttach(ac, f.loop);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    const char *load[] = {"FUNCTION", "LOAD", "REPLACE", LIBRARY};
    redisAsyncCommandArgv(ac, on_loaded, slots, 4, load, NULL);
    uv_run(f.loop, UV_RUN_DEFAULT);
    uv_loop_close(f.loop);
    free(slots);
    if (f.failed || f.finished != n)
        return 1;
    double secs = (double)(f.t1 - f.t0) / 1e9;
    printf("{\"kind\":\"floor\",\"sagas\":%" PRIu64 ",\"concurrency\":%" PRIu64
           ",\"writes_per_saga\":%" PRIu64 ",\"seconds\":%.3f,\"sagas_per_s\":%.0f,"
           "\"fcall_per_s\":%.0f}\n",
           n, c, writes, secs, (double)n / secs, (double)(n * writes) / secs);
    return 0;
}
