/*
 * ping_probe.c -- see ping_probe.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "ping_probe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ping_probe_s {
    redisContext *conn;
    unsigned period_us;
    atomic_bool stop;
    pthread_t thread;
    unsigned long failed;
    bench_hist_t rtt;  /* written by the thread until it is joined */
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *probe_main(void *arg) {
    ping_probe_t *p = arg;
    struct timespec pause = {0, (long)p->period_us * 1000};
    while (!atomic_load(&p->stop)) {
        uint64_t t0 = mono_ns();
        redisReply *r = redisCommand(p->conn, "PING");
        uint64_t t1 = mono_ns();
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            p->failed++;
            if (r == NULL)
                break; /* the connection is unusable */
        } else {
            bench_hist_record(&p->rtt, t1 - t0);
        }
        freeReplyObject(r);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

ping_probe_t *ping_probe_start(redisContext *conn, unsigned period_us) {
    ping_probe_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        redisFree(conn);
        return NULL;
    }
    memset(p, 0, sizeof(*p));
    p->conn = conn;
    p->period_us = period_us;
    atomic_init(&p->stop, false);
    bench_hist_reset(&p->rtt);
    if (pthread_create(&p->thread, NULL, probe_main, p) != 0) {
        redisFree(conn);
        free(p);
        return NULL;
    }
    return p;
}

unsigned long ping_probe_stop(ping_probe_t *p, bench_hist_t *out) {
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    *out = p->rtt;
    unsigned long failed = p->failed;
    redisFree(p->conn);
    free(p);
    return failed;
}
