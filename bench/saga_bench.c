/*
 * saga_bench.c -- `saga-bench`: an in-process load generator for the engine.
 *
 * Runs N sagas of S sequential steps (demo.noop, or demo.sleep) at
 * concurrency C on one libuv loop, against the memory store or a Redis
 * store, and prints one JSON object on stdout with throughput, latency,
 * CPU, Redis and memory figures. docs/benchmarks.md defines each figure;
 * scripts/bench.sh runs the whole benchmark.
 *
 * Measurement stays out of the engine's way: timestamps are uv_hrtime()
 * taken in the engine's own callbacks (on_progress, on_finished), each
 * saga's id carries its slot number (no lookup table), latencies go to
 * fixed log-bucket histograms (hist.h), and everything that blocks (INFO
 * over a second, blocking Redis connection; /proc reads) happens outside
 * the measured window.
 *
 * Phases: warm-up (--warmup sagas, not measured), then the measured run,
 * then a report. With --inflight-rss the run instead starts C sagas whose
 * first step sleeps, measures the resident memory once all C are in flight,
 * reports it and stops.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <malloc.h>
#include <uv.h>
#ifdef SAGA_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "saga/engine.h"
#include "saga/errors.h"
#include "hist.h"
#include "util/log.h"
#include "ping_probe.h"
#include "timeline.h"
#include "redis/redis_url.h"
#include "saga/store.h"
#include "store/store_memory.h"
#include "store/store_redis.h"

#define MAX_STEPS 10
#define ID_LEN 26          /* like a ULID, so keys have their real size */
#define SLOT_DIGITS 9
#define PING_PERIOD_US 1000 /* --ping-probe: a PING per ms */
#define WINDOW_MS 50        /* open-loop runs: the step timeline's windows */
#define SLOW_STEP_MS 1      /* ... and what counts as a slow step (the target) */
#define SETTLE_MS 100      /* lets trailing index commands reach Redis */
/* --inflight-rss: the RSS is read this long after the last saga went in
 * flight, twice jemalloc's decay time (src/malloc_conf.c). */
#define INFLIGHT_SETTLE_MS 3000
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define MAX_CMDSTATS 256

/* ---------------------------------------------------------------------- */
/* Redis server counters (INFO), read over a blocking connection           */
/* ---------------------------------------------------------------------- */

typedef struct cmdstat_s {
    char name[64];
    uint64_t calls;
    uint64_t usec;
    uint64_t failed;
} cmdstat_t;

typedef struct redis_snap_s {
    cmdstat_t cmd[MAX_CMDSTATS];
    size_t ncmd;
    uint64_t total_commands;
    uint64_t total_reads;
    uint64_t net_input_bytes;
    double cpu_user;
    double cpu_sys;
} redis_snap_t;

/* ---------------------------------------------------------------------- */
/* The run                                                                 */
/* ---------------------------------------------------------------------- */

typedef enum phase_e { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DONE } phase_t;

typedef struct slot_s {
    uint64_t t_start;    /* saga_engine_start() called */
    uint64_t t_last;     /* last CALL_STARTED (0: none yet) */
} slot_t;

typedef struct bench_s {
    uv_loop_t loop;
    /* options */
    const char *store_kind;
    const char *redis_url;
    unsigned redis_conns;    /* --redis-connections; 0: the store's default */
    int min_replicas;        /* --min-replicas; -1: automatic */
    uint64_t retention_ms;   /* --retention-ms; 0: the store's default */
    uint64_t sagas;
    uint64_t warmup;
    unsigned steps;
    size_t conc;
    uint64_t sleep_ms;
    double rate;             /* sagas/s; 0: closed loop */
    double duration_s;       /* stop starting after this (0: no limit) */
    double max_s;            /* hard bound of the whole process */
    bool inflight_rss;
    bool ping_probe;         /* --ping-probe */
    const char *label;
    /* engine */
    saga_redis_url_t url;
    bool have_url;
    saga_store_t *store;
    saga_engine_t *engine;
    saga_engine_def_t *def;
    redisContext *info;      /* blocking, for INFO between phases */
    char appendfsync[32];
    char appendonly[8];
    /* saga slots */
    slot_t *slots;
    size_t *free_slots;
    size_t nfree;
    char tag[8];
    uint64_t seq;
    /* the current phase */
    phase_t phase;
    uint64_t target;
    uint64_t started;
    uint64_t finished;
    uint64_t failed;
    uint64_t first_calls;
    bool stop_starting;
    uint64_t t0;
    uint64_t t_end;
    uint64_t t_last_finish; /* the latest on_finished */
    uv_timer_t tick;
    uv_timer_t settle;
    uv_timer_t deadline;
    uv_timer_t stopper;      /* shutdown, outside engine callbacks */
    bool timers_on;
    bool timed_out;
    int exit_code;
    bool shutting_down;
    /* measurements */
    bench_hist_t e2e;
    bench_hist_t step;
    bench_timeline_t timeline; /* open loop: when the slow steps were */
    bench_hist_t create;
    ping_probe_t *probe;     /* PINGs during the measured phase */
    bench_hist_t ping;
    bool have_ping;
    unsigned long ping_failed;
    struct rusage ru0, ru1;
    long long steal0, steal1;  /* the host's steal time, clock ticks (-1: unknown) */
    saga_store_redis_stats_t st0, st1;
    redis_snap_t rs0, rs1;
    long rss_before;
    long rss_at_once;        /* the moment the last first step was called */
    long rss_inflight;       /* INFLIGHT_SETTLE_MS later */
    long heap_before;        /* bytes malloc'ed and not freed */
    long heap_inflight;
    long rss_trimmed;        /* then after the allocator returned free pages */
    uv_timer_t inflight_settle;
} bench_t;

static bench_t B;

static void fatal_stop(bench_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void shutdown_all(bench_t *b);

/* Resident memory now (bytes), from /proc/self/statm. */
static long rss_now(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = 0;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

/* CPU time the hypervisor gave to others while this VM's CPUs wanted it
 * (all CPUs, clock ticks: the 8th figure of /proc/stat's "cpu" line), or
 * -1 where the kernel does not tell. */
static long long steal_now(void) {
    FILE *f = fopen("/proc/stat", "r");
    long long v[8];
    if (f == NULL)
        return -1;
    int n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    return n == 8 ? v[7] : -1;
}

/* Bytes allocated and not freed, or -1. Unlike the RSS it leaves out
 * fragmentation and the free pages the allocator keeps. */
static long heap_now(void) {
#ifdef SAGA_WITH_JEMALLOC
    uint64_t epoch = 1;
    size_t allocated = 0, sz = sizeof(allocated), esz = sizeof(epoch);
    if (mallctl("epoch", &epoch, &esz, &epoch, esz) != 0 ||
        mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0)
        return -1;
    return (long)allocated;
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
#else
    return -1;
#endif
}

/* Makes the allocator return the free pages it keeps to the system: what
 * is left in the RSS is live data and fragmentation. */
static void return_free_pages(void) {
#ifdef SAGA_WITH_JEMALLOC
    (void)mallctl("arena." STRINGIFY(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
#elif defined(__GLIBC__)
    malloc_trim(0);
#endif
}

static const char *allocator_name(void) {
#ifdef SAGA_WITH_JEMALLOC
    return "jemalloc";
#elif defined(__GLIBC__)
    return "glibc";
#else
    return "libc";
#endif
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static double cpu_s(const struct rusage *a, const struct rusage *b) {
    return tv_s(b->ru_utime) - tv_s(a->ru_utime) + tv_s(b->ru_stime) - tv_s(a->ru_stime);
}

/* ---------------------------------------------------------------------- */
/* INFO                                                                    */
/* ---------------------------------------------------------------------- */

/* A blocking connection to the server under test, authenticated; `what`
 * names it in errors. NULL with a message printed. */
static redisContext *blocking_connect(const bench_t *b, const char *what) {
    struct timeval tv = {5, 0};
    redisContext *c = b->url.transport == SAGA_REDIS_UNIX
                          ? redisConnectUnixWithTimeout(b->url.path, tv)
                          : redisConnectWithTimeout(b->url.host, b->url.port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "saga-bench: %s connection to %s: %s\n", what, b->url.display,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    if (b->url.password != NULL) {
        redisReply *r = b->url.user
            ? redisCommand(c, "AUTH %s %s", b->url.user, b->url.password)
            : redisCommand(c, "AUTH %s", b->url.password);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok) {
            fprintf(stderr, "saga-bench: AUTH on %s failed (%s connection)\n", b->url.display,
                    what);
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Connects the blocking INFO connection (outside the measured window).
 * Returns 0 or -1 with a message printed. */
static int info_connect(bench_t *b) {
    if ((b->info = blocking_connect(b, "INFO")) == NULL)
        return -1;
    const char *names[] = {"appendonly", "appendfsync"};
    char *outs[] = {b->appendonly, b->appendfsync};
    size_t lens[] = {sizeof(b->appendonly), sizeof(b->appendfsync)};
    for (int i = 0; i < 2; i++) {
        redisReply *r = redisCommand(b->info, "CONFIG GET %s", names[i]);
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            snprintf(outs[i], lens[i], "%s", r->element[1]->str);
        freeReplyObject(r);
    }
    return 0;
}

static uint64_t info_u64(const char *text, const char *field) {
    const char *p = strstr(text, field);
    return p ? strtoull(p + strlen(field), NULL, 10) : 0;
}

static double info_double(const char *text, const char *field) {
    const char *p = strstr(text, field);
    return p ? strtod(p + strlen(field), NULL) : 0.0;
}

static void info_snapshot(bench_t *b, redis_snap_t *s) {
    memset(s, 0, sizeof(*s));
    if (b->info == NULL)
        return;
    redisReply *r = redisCommand(b->info, "INFO commandstats");
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        /* cmdstat_fcall:calls=12,usec=345,usec_per_call=28.75,rejected_calls=0,failed_calls=0 */
        for (const char *p = strstr(r->str, "cmdstat_"); p != NULL && s->ncmd < MAX_CMDSTATS;
             p = strstr(p + 1, "cmdstat_")) {
            cmdstat_t *c = &s->cmd[s->ncmd];
            const char *n = p + 8, *colon = strchr(n, ':');
            if (colon == NULL || (size_t)(colon - n) >= sizeof(c->name))
                continue;
            memcpy(c->name, n, (size_t)(colon - n));
            c->name[colon - n] = '\0';
            const char *eol = strchr(colon, '\r');
            char line[256];
            size_t ll = eol ? (size_t)(eol - colon) : strlen(colon);
            if (ll >= sizeof(line))
                ll = sizeof(line) - 1;
            memcpy(line, colon, ll);
            line[ll] = '\0';
            c->calls = info_u64(line, "calls=");
            c->usec = info_u64(line, "usec=");
            c->failed = info_u64(line, "failed_calls=");
            s->ncmd++;
        }
    }
    freeReplyObject(r);
    r = redisCommand(b->info, "INFO stats");
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        s->total_commands = info_u64(r->str, "total_commands_processed:");
        s->total_reads = info_u64(r->str, "total_reads_processed:");
        s->net_input_bytes = info_u64(r->str, "total_net_input_bytes:");
    }
    freeReplyObject(r);
    r = redisCommand(b->info, "INFO cpu");
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        s->cpu_user = info_double(r->str, "used_cpu_user:");
        s->cpu_sys = info_double(r->str, "used_cpu_sys:");
    }
    freeReplyObject(r);
}

static const cmdstat_t *snap_find(const redis_snap_t *s, const char *name) {
    for (size_t i = 0; i < s->ncmd; i++)
        if (strcmp(s->cmd[i].name, name) == 0)
            return &s->cmd[i];
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* The definition                                                          */
/* ---------------------------------------------------------------------- */

/* The YAML of S sequential steps s0..s{S-1}: demo.noop, or demo.sleep for
 * sleep_ms; each compensated by demo.noop. Returns a malloc'ed text. */
static char *definition_yaml(unsigned steps, uint64_t sleep_ms) {
    size_t cap = 512 + steps * 256;
    char *y = malloc(cap);
    if (y == NULL)
        return NULL;
    size_t off = (size_t)snprintf(y, cap, "saga: bench_s%u_%s\nsteps:\n", steps,
                                  sleep_ms ? "sleep" : "noop");
    for (unsigned i = 0; i < steps; i++) {
        if (sleep_ms)
            off += (size_t)snprintf(y + off, cap - off,
                                    "  - name: s%u\n"
                                    "    action: {handler: demo.sleep, with: {ms: %" PRIu64 "}}\n"
                                    "    compensation: {handler: demo.noop}\n"
                                    "    timeout: %" PRIu64 "ms\n",
                                    i, sleep_ms, 2 * sleep_ms + 60000);
        else
            off += (size_t)snprintf(y + off, cap - off,
                                    "  - name: s%u\n"
                                    "    action: {handler: demo.noop}\n"
                                    "    compensation: {handler: demo.noop}\n", i);
    }
    return y;
}

/* ---------------------------------------------------------------------- */
/* Starting and finishing sagas                                            */
/* ---------------------------------------------------------------------- */

/* The slot a saga id carries in its last digits. */
static size_t slot_of(const char *id) {
    size_t v = 0;
    for (const char *p = id + ID_LEN - SLOT_DIGITS; *p; p++)
        v = v * 10 + (size_t)(*p - '0');
    return v;
}

static int start_one(bench_t *b, uint64_t now) {
    size_t slot = b->free_slots[--b->nfree];
    char id[ID_LEN + 1], err[256];
    snprintf(id, sizeof(id), "b%s%010" PRIu64 "%09zu", b->tag, (uint64_t)(b->seq++ % 10000000000ull), slot);
    b->slots[slot] = (slot_t){now, 0};
    int rc = saga_engine_start(b->engine, b->def, id, NULL, NULL, err, sizeof(err));
    if (rc != 0) {
        b->free_slots[b->nfree++] = slot;
        fatal_stop(b, "saga_engine_start: %s (%s)", saga_strerror(rc), err);
        return rc;
    }
    b->started++;
    return 0;
}

static bool may_start(bench_t *b, uint64_t now) {
    if (b->stop_starting || b->started >= b->target || b->nfree == 0)
        return false;
    if (b->duration_s > 0 && b->phase == PH_MEASURE &&
        (double)(now - b->t0) / 1e9 >= b->duration_s) {
        b->stop_starting = true;
        return false;
    }
    return true;
}

static void fill(bench_t *b);

static void on_fill_tick(uv_timer_t *t) { fill(t->data); }

/* Closed loop: keep C sagas in flight. The in-flight memory run starts them
 * 500 per loop turn, as a worker takes them from its intake (at most 500 per
 * read), instead of 100,000 in one turn. */
static void fill(bench_t *b) {
    uint64_t now = uv_hrtime();
    size_t batch = 0;
    while (may_start(b, now)) {
        if (b->inflight_rss && batch++ == 500) {
            uv_timer_start(&b->tick, on_fill_tick, 0, 0);
            return;
        }
        if (start_one(b, now) != 0)
            return;
    }
}

static void end_phase(bench_t *b);

/* Open loop: start sagas at --rate (capped by C in flight). */
static void on_tick(uv_timer_t *t) {
    bench_t *b = t->data;
    if (b->phase != PH_WARMUP && b->phase != PH_MEASURE)
        return;
    uint64_t now = uv_hrtime();
    double due = b->rate * (double)(now - b->t0) / 1e9;
    while ((double)b->started < due && may_start(b, now))
        if (start_one(b, now) != 0)
            return;
    /* The end of --duration may come after the last saga in flight
     * finished: nothing else would notice it then. */
    if (b->finished == b->started && !may_start(b, now) && b->stop_starting) {
        b->t_end = b->t_last_finish;
        end_phase(b);
    }
}

static void begin_phase(bench_t *b, phase_t ph);
static void report(bench_t *b);

static void on_settled(uv_timer_t *t) {
    bench_t *b = t->data;
    if (b->phase == PH_WARMUP) {
        begin_phase(b, PH_MEASURE);
        return;
    }
    /* PH_MEASURE ended SETTLE_MS ago. */
    if (b->have_url)
        info_snapshot(b, &b->rs1);
    report(b);
    shutdown_all(b);
}

/* The PING probe covers the measured phase only. */
static void start_probe(bench_t *b) {
    if (!b->ping_probe)
        return;
    redisContext *c = blocking_connect(b, "PING probe");
    if (c == NULL || (b->probe = ping_probe_start(c, PING_PERIOD_US)) == NULL)
        fatal_stop(b, "cannot start the PING probe");
}

static void stop_probe(bench_t *b) {
    if (b->probe == NULL)
        return;
    b->ping_failed = ping_probe_stop(b->probe, &b->ping);
    b->probe = NULL;
    b->have_ping = true;
}

static void end_phase(bench_t *b) {
    if (b->phase == PH_MEASURE) {
        getrusage(RUSAGE_SELF, &b->ru1);
        b->steal1 = steal_now();
        saga_store_redis_stats(b->store, &b->st1);
        stop_probe(b);
    }
    uv_timer_stop(&b->tick);
    uv_timer_start(&b->settle, on_settled, SETTLE_MS, 0);
}

/* --inflight-rss: INFLIGHT_SETTLE_MS after every saga went in flight. */
static void on_inflight_settled(uv_timer_t *t) {
    bench_t *b = t->data;
    b->rss_inflight = rss_now();
    return_free_pages();
    b->rss_trimmed = rss_now();
    report(b);
    shutdown_all(b);
}

/* One step's overhead, measured at `now`. */
static void record_step(bench_t *b, uint64_t now, uint64_t v) {
    bench_hist_record(&b->step, v);
    if (b->rate > 0)
        bench_timeline_record(&b->timeline, now, v);
}

static void on_progress(const saga_progress_t *p, void *data) {
    bench_t *b = data;
    if (p->kind != SAGA_PROGRESS_CALL_STARTED || p->phase != SAGA_PHASE_ACTION ||
        b->phase == PH_DONE)
        return;
    uint64_t now = uv_hrtime();
    slot_t *s = &b->slots[slot_of(p->saga_id)];
    bool first = p->step[1] == '0' && p->step[2] == '\0';
    if (first) {
        if (b->phase == PH_MEASURE)
            bench_hist_record(&b->create, now - s->t_start);
        b->first_calls++;
    } else if (b->phase == PH_MEASURE && s->t_last != 0) {
        record_step(b, now, now - s->t_last);
    }
    s->t_last = now;
    if (b->inflight_rss && b->phase == PH_MEASURE && b->first_calls == b->target) {
        /* Every saga is in flight, sleeping in its first step. */
        b->t_end = now;
        getrusage(RUSAGE_SELF, &b->ru1);
        b->steal1 = steal_now();
        b->rss_at_once = rss_now();
        b->heap_inflight = heap_now();
        saga_store_redis_stats(b->store, &b->st1);
        if (b->have_url)
            info_snapshot(b, &b->rs1);
        /* The start burst's buffers (requests, replies, the output buffer)
         * are free by now but still resident; the allocator returns them
         * within its decay time. The figure is the RSS once it has. */
        uv_timer_start(&b->inflight_settle, on_inflight_settled, INFLIGHT_SETTLE_MS, 0);
    }
}

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state, int status,
                        void *data) {
    bench_t *b = data;
    (void)e;
    if (b->phase != PH_WARMUP && b->phase != PH_MEASURE)
        return;
    uint64_t now = uv_hrtime();
    size_t slot = slot_of(id);
    slot_t *s = &b->slots[slot];
    if (status != 0 || state != SAGA_STATE_COMPLETED) {
        b->failed++;
        if (b->failed <= 5)
            fprintf(stderr, "saga-bench: saga %s ended %s (%s)\n", id, saga_state_name(state),
                    status ? saga_strerror(status) : "ok");
    } else if (b->phase == PH_MEASURE) {
        bench_hist_record(&b->e2e, now - s->t_start);
        if (s->t_last != 0)
            record_step(b, now, now - s->t_last);
    }
    b->free_slots[b->nfree++] = slot;
    b->finished++;
    b->t_last_finish = now;
    if (b->rate <= 0)
        fill(b);
    else
        may_start(b, now); /* notices the end of --duration */
    if (b->finished == b->started && (b->started == b->target || b->stop_starting)) {
        b->t_end = now;
        end_phase(b);
    }
}

static void begin_phase(bench_t *b, phase_t ph) {
    b->phase = ph;
    b->target = ph == PH_WARMUP ? b->warmup : b->sagas;
    b->started = b->finished = b->failed = b->first_calls = 0;
    b->stop_starting = false;
    if (ph == PH_MEASURE) {
        bench_hist_reset(&b->e2e);
        bench_hist_reset(&b->step);
        bench_timeline_free(&b->timeline);
        bench_timeline_init(&b->timeline, uv_hrtime(), WINDOW_MS * 1000000ull,
                            SLOW_STEP_MS * 1000000ull);
        bench_hist_reset(&b->create);
        b->rss_before = rss_now();
        b->heap_before = heap_now();
        if (b->have_url)
            info_snapshot(b, &b->rs0);
        saga_store_redis_stats(b->store, &b->st0);
        getrusage(RUSAGE_SELF, &b->ru0);
        b->steal0 = steal_now();
        start_probe(b);
    }
    b->t0 = uv_hrtime();
    if (b->rate > 0)
        uv_timer_start(&b->tick, on_tick, 0, 1);
    else
        fill(b);
}

/* ---------------------------------------------------------------------- */
/* Report                                                                  */
/* ---------------------------------------------------------------------- */

static double r3(double v) { return round(v * 1000.0) / 1000.0; }

/* {window_ms, over_ms, incomplete, windows: [[steps, over, max_ms]...]},
 * window i starting i * window_ms after the measured phase began. */
static json_t *timeline_json(const bench_timeline_t *t) {
    json_t *o = json_object(), *ws = json_array();
    json_object_set_new(o, "window_ms", json_integer(WINDOW_MS));
    json_object_set_new(o, "over_ms", json_integer(SLOW_STEP_MS));
    json_object_set_new(o, "incomplete", json_boolean(t->incomplete));
    for (size_t i = 0; i < t->len; i++) {
        const bench_window_t *w = &t->w[i];
        json_array_append_new(ws, json_pack("[I, I, f]", (json_int_t)w->n, (json_int_t)w->over,
                                            r3((double)w->max_ns / 1e6)));
    }
    json_object_set_new(o, "windows", ws);
    return o;
}

static json_t *lat_json(const bench_hist_t *h) {
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    json_object_set_new(o, "p50", json_real(r3((double)bench_hist_percentile(h, 50) / 1e6)));
    json_object_set_new(o, "p99", json_real(r3((double)bench_hist_percentile(h, 99) / 1e6)));
    json_object_set_new(o, "p999", json_real(r3((double)bench_hist_percentile(h, 99.9) / 1e6)));
    json_object_set_new(o, "max", json_real(r3((double)h->max / 1e6)));
    json_object_set_new(o, "mean",
                        json_real(h->count ? r3((double)h->sum / (double)h->count / 1e6) : 0));
    return o;
}

static json_t *redis_json(const bench_t *b, double done, double transitions) {
    const redis_snap_t *a = &b->rs0, *z = &b->rs1;
    json_t *o = json_object();
    json_object_set_new(o, "appendonly", json_string(b->appendonly));
    json_object_set_new(o, "appendfsync", json_string(b->appendfsync));
    json_object_set_new(o, "connections", json_integer(b->st1.connections));
    double client_cmds = (double)(b->st1.commands - b->st0.commands);
    double writes = (double)(b->st1.writes - b->st0.writes);
    json_object_set_new(o, "client_commands_per_saga", json_real(r3(client_cmds / done)));
    json_object_set_new(o, "round_trips_per_saga", json_real(r3(writes / done)));
    json_object_set_new(o, "resent", json_integer((json_int_t)(b->st1.resent - b->st0.resent)));
    json_object_set_new(o, "min_replicas", json_integer(b->st1.min_replicas));
    json_object_set_new(o, "waits_per_saga",
                        json_real(r3((double)(b->st1.waits - b->st0.waits) / done)));
    /* Finished sagas the store's GC deleted while measuring (--retention-ms). */
    json_object_set_new(o, "gc_removed_per_saga",
                        json_real(r3((double)(b->st1.gc_removed - b->st0.gc_removed) / done)));
    const cmdstat_t *f1 = snap_find(z, "fcall"), *f0 = snap_find(a, "fcall");
    double fcalls = f1 ? (double)(f1->calls - (f0 ? f0->calls : 0)) : 0;
    double fcall_usec = f1 ? (double)(f1->usec - (f0 ? f0->usec : 0)) : 0;
    json_object_set_new(o, "fcall_per_saga", json_real(r3(fcalls / done)));
    json_object_set_new(o, "fcall_usec_per_call", json_real(fcalls ? r3(fcall_usec / fcalls) : 0));
    /* Every command the server executed (FCALL's inner calls included:
     * Redis 7 counts them too, and FCALL's own time includes theirs). */
    double all = 0;
    json_t *cs = json_object();
    for (size_t i = 0; i < z->ncmd; i++) {
        const cmdstat_t *c = &z->cmd[i], *c0 = snap_find(a, c->name);
        double calls = (double)(c->calls - (c0 ? c0->calls : 0));
        double usec = (double)(c->usec - (c0 ? c0->usec : 0));
        if (calls <= 0 || strcmp(c->name, "info") == 0)
            continue;
        all += calls;
        json_t *e = json_object();
        json_object_set_new(e, "calls_per_saga", json_real(r3(calls / done)));
        json_object_set_new(e, "usec_per_call", json_real(r3(usec / calls)));
        json_object_set_new(e, "failed", json_integer((json_int_t)(c->failed - (c0 ? c0->failed : 0))));
        json_object_set_new(cs, c->name, e);
    }
    json_object_set_new(o, "server_commands_per_saga", json_real(r3(all / done)));
    json_object_set_new(o, "fcall_usec_per_saga", json_real(r3(fcall_usec / done)));
    /* Commands the engine sent per read(2) Redis made: the pipeline depth
     * Redis saw (the INFO connection's own few reads are negligible). */
    double reads = (double)(z->total_reads - a->total_reads);
    json_object_set_new(o, "commands_per_read", json_real(reads ? r3(client_cmds / reads) : 0));
    json_object_set_new(o, "input_bytes_per_saga",
                        json_real(r3((double)(z->net_input_bytes - a->net_input_bytes) / done)));
    double rcpu = (z->cpu_user - a->cpu_user) + (z->cpu_sys - a->cpu_sys);
    json_object_set_new(o, "cpu_s", json_real(r3(rcpu)));
    json_object_set_new(o, "cpu_us_per_saga", json_real(r3(rcpu / done * 1e6)));
    json_object_set_new(o, "cpu_s_per_1000_transitions",
                        json_real(transitions ? round(rcpu / transitions * 1000.0 * 1e5) / 1e5 : 0));
    json_object_set_new(o, "commandstats", cs);
    return o;
}

static void report(bench_t *b) {
    b->phase = PH_DONE;
    double elapsed = (double)(b->t_end - b->t0) / 1e9;
    double done = b->inflight_rss ? (double)b->first_calls : (double)b->finished;
    if (done < 1)
        done = 1;
    bool redis = b->have_url;
    double transitions = redis ? (double)(b->st1.writes - b->st0.writes)
                               : (b->inflight_rss ? done : done * (b->steps + 1));
    double cpu = cpu_s(&b->ru0, &b->ru1);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    json_t *o = json_object();
    if (b->label)
        json_object_set_new(o, "label", json_string(b->label));
    json_object_set_new(o, "store", json_string(b->store_kind));
    json_object_set_new(o, "allocator", json_string(allocator_name()));
    json_object_set_new(o, "mode", json_string(b->inflight_rss ? "inflight-rss"
                                               : b->rate > 0 ? "rate" : "closed-loop"));
    json_object_set_new(o, "sagas", json_integer((json_int_t)done));
    json_object_set_new(o, "failed", json_integer((json_int_t)b->failed));
    json_object_set_new(o, "steps", json_integer(b->steps));
    json_object_set_new(o, "handler", json_string(b->sleep_ms ? "demo.sleep" : "demo.noop"));
    json_object_set_new(o, "sleep_ms", json_integer((json_int_t)b->sleep_ms));
    json_object_set_new(o, "concurrency", json_integer((json_int_t)b->conc));
    json_object_set_new(o, "retention_ms",
                        b->retention_ms > 0 ? json_integer((json_int_t)b->retention_ms) : json_null());
    json_object_set_new(o, "rate_limit", b->rate > 0 ? json_real(b->rate) : json_null());
    json_object_set_new(o, "warmup", json_integer((json_int_t)b->warmup));
    json_object_set_new(o, "elapsed_s", json_real(r3(elapsed)));
    json_object_set_new(o, "sagas_per_s", json_real(round(done / elapsed)));
    json_object_set_new(o, "steps_per_s",
                        json_real(round(done * (b->inflight_rss ? 1 : b->steps) / elapsed)));
    json_object_set_new(o, "transitions_per_s", json_real(round(transitions / elapsed)));
    json_object_set_new(o, "transitions_per_saga", json_real(r3(transitions / done)));
    json_object_set_new(o, "transitions_source",
                        json_string(redis ? "store writes (saga_store_redis_stats)"
                                          : "computed: steps + 1 per saga"));
    json_t *lat = json_object();
    json_object_set_new(lat, "end_to_end_ms", lat_json(&b->e2e));
    json_object_set_new(lat, "step_overhead_ms", lat_json(&b->step));
    json_object_set_new(lat, "create_ms", lat_json(&b->create));
    json_object_set_new(o, "latency", lat);
    if (b->rate > 0)
        json_object_set_new(o, "step_timeline", timeline_json(&b->timeline));
    json_object_set_new(o, "cpu_s", json_real(r3(cpu)));
    json_object_set_new(o, "cpu_s_per_1000_transitions",
                        json_real(round(cpu / transitions * 1000.0 * 1e5) / 1e5));
    json_object_set_new(o, "peak_rss_kib", json_integer(ru.ru_maxrss));
    /* The share of the machine's CPU time the hypervisor kept from it. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN), tck = sysconf(_SC_CLK_TCK);
    json_object_set_new(o, "host_steal_pct",
                        b->steal0 >= 0 && b->steal1 >= b->steal0 && cpus > 0 && tck > 0
                            ? json_real(round((double)(b->steal1 - b->steal0) /
                                              ((double)tck * elapsed * (double)cpus) * 1e4) / 100)
                            : json_null());
    if (b->inflight_rss) {
        json_object_set_new(o, "rss_before_kib", json_integer(b->rss_before / 1024));
        json_object_set_new(o, "rss_inflight_kib", json_integer(b->rss_inflight / 1024));
        json_object_set_new(o, "rss_settle_ms", json_integer(INFLIGHT_SETTLE_MS));
        json_object_set_new(o, "rss_per_inflight_saga_bytes",
                            json_real(round((double)(b->rss_inflight - b->rss_before) / done)));
        json_object_set_new(o, "rss_per_inflight_saga_at_once_bytes",
                            json_real(round((double)(b->rss_at_once - b->rss_before) / done)));
        json_object_set_new(o, "rss_per_inflight_saga_after_trim_bytes",
                            json_real(round((double)(b->rss_trimmed - b->rss_before) / done)));
        if (b->heap_before >= 0 && b->heap_inflight >= 0)
            json_object_set_new(o, "heap_per_inflight_saga_bytes",
                                json_real(round((double)(b->heap_inflight - b->heap_before) / done)));
    }
    if (redis)
        json_object_set_new(o, "redis", redis_json(b, done, transitions));
    if (b->have_ping) {
        json_t *pp = lat_json(&b->ping);
        json_object_set_new(pp, "period_us", json_integer(PING_PERIOD_US));
        json_object_set_new(pp, "failed", json_integer((json_int_t)b->ping_failed));
        json_object_set_new(o, "redis_ping_ms", pp);
    }
    char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (txt != NULL) {
        puts(txt);
        fflush(stdout);
    }
    free(txt);
    json_decref(o);
    if (b->failed > 0)
        b->exit_code = 1;
}

/* ---------------------------------------------------------------------- */
/* Setup and teardown                                                      */
/* ---------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void on_store_closed(void *data) {
    bench_t *b = data;
    b->store = NULL;
    if (b->timers_on) {
        uv_close((uv_handle_t *)&b->tick, on_handle_closed);
        uv_close((uv_handle_t *)&b->settle, on_handle_closed);
        uv_close((uv_handle_t *)&b->deadline, on_handle_closed);
        uv_close((uv_handle_t *)&b->stopper, on_handle_closed);
        uv_close((uv_handle_t *)&b->inflight_settle, on_handle_closed);
        b->timers_on = false;
    }
}

static void on_engine_down(void *data) {
    bench_t *b = data;
    b->store->ops->close(b->store, on_store_closed, b);
}

static void on_stopper(uv_timer_t *t) {
    bench_t *b = t->data;
    if (b->engine != NULL)
        saga_engine_shutdown(b->engine, 0, on_engine_down, b);
    else if (b->store != NULL)
        b->store->ops->close(b->store, on_store_closed, b);
    else
        on_store_closed(b);
}

/* Stops everything; the engine is shut down from a timer, never from
 * inside one of its callbacks. */
static void shutdown_all(bench_t *b) {
    if (b->shutting_down)
        return;
    b->shutting_down = true;
    b->phase = PH_DONE;
    uv_timer_stop(&b->tick);
    uv_timer_stop(&b->settle);
    uv_timer_stop(&b->deadline);
    uv_timer_start(&b->stopper, on_stopper, 0, 0);
}

static void fatal_stop(bench_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("saga-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    b->exit_code = 1;
    b->stop_starting = true;
    shutdown_all(b);
}

static void on_deadline(uv_timer_t *t) {
    bench_t *b = t->data;
    b->timed_out = true;
    fatal_stop(b, "--max-seconds %.0f reached (phase %d: %" PRIu64 " of %" PRIu64
               " started, %" PRIu64 " finished); stopping", b->max_s, (int)b->phase,
               b->started, b->target, b->finished);
}

static void setup(bench_t *b) {
    char err[512];
    saga_engine_options_t eo = {
        .store = b->store,
        .on_progress = on_progress,
        .on_finished = on_finished,
        .data = b,
    };
    b->engine = saga_engine_new(&b->loop, &eo, err, sizeof(err));
    if (b->engine == NULL) {
        fatal_stop(b, "saga_engine_new: %s", err);
        return;
    }
    char *yaml = definition_yaml(b->steps, b->sleep_ms);
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_def_t *def = yaml ? saga_def_load_buffer("bench.yaml", yaml, strlen(yaml), &diags) : NULL;
    free(yaml);
    if (def != NULL)
        b->def = saga_engine_register(b->engine, def, &diags);
    if (b->def == NULL) {
        saga_diags_print(&diags, stderr);
        saga_diags_close(&diags);
        fatal_stop(b, "cannot register the benchmark definition");
        return;
    }
    saga_diags_close(&diags);
    begin_phase(b, b->warmup > 0 && !b->inflight_rss ? PH_WARMUP : PH_MEASURE);
}

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    bench_t *b = data;
    (void)s;
    if (status != 0) {
        fatal_stop(b, "redis store: %s", msg ? msg : saga_strerror(status));
        return;
    }
    setup(b);
}

static void on_kick(uv_timer_t *t) { setup(t->data); }

static void usage(FILE *out) {
    fputs("usage: saga-bench [OPTIONS]\n"
          "\n"
          "Runs sagas of S sequential steps at concurrency C in this process and\n"
          "prints one JSON object with the figures (docs/benchmarks.md).\n"
          "\n"
          "  --store memory|redis   the store (default memory)\n"
          "  --redis URL            redis://host:port or unix:///socket (--store redis)\n"
          "  --redis-connections N  connections of the Redis store (default: the store's, 1)\n"
          "  --min-replicas N       a transition counts once N replicas have it (WAIT;\n"
          "                         default: 1 on a Redis Cluster with replicas, else 0)\n"
          "  --retention-ms MS      finished sagas kept MS, then deleted by the store's GC\n"
          "                         (default: the store's, 7 days)\n"
          "  -n, --sagas N          sagas to measure (default 10000)\n"
          "  -s, --steps S          steps per saga, 1..10 (default 3)\n"
          "  -c, --concurrency C    sagas in flight (default 100)\n"
          "      --sleep-ms MS      steps are demo.sleep MS (default 0: demo.noop)\n"
          "      --warmup W         sagas run before measuring (default 0)\n"
          "      --rate R           start R sagas/s (open loop, at most C in flight)\n"
          "      --duration SEC     stop starting new sagas after SEC measured seconds\n"
          "      --max-seconds SEC  hard bound on the whole run (default 300): exit 1\n"
          "      --inflight-rss     start C sagas, measure RSS once all are in flight\n"
          "                         (use with --sleep-ms), report and stop\n"
          "      --ping-probe       while measuring, PING Redis every ms from a thread\n"
          "                         of its own and report the round trips (--store redis)\n"
          "      --label TEXT       copied into the report\n", out);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"store", required_argument, NULL, 'S'},
        {"redis", required_argument, NULL, 'R'},
        {"redis-connections", required_argument, NULL, 'k'},
        {"min-replicas", required_argument, NULL, 'W'},
        {"retention-ms", required_argument, NULL, 'e'},
        {"sagas", required_argument, NULL, 'n'},
        {"steps", required_argument, NULL, 's'},
        {"concurrency", required_argument, NULL, 'c'},
        {"sleep-ms", required_argument, NULL, 'z'},
        {"warmup", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"max-seconds", required_argument, NULL, 'm'},
        {"inflight-rss", no_argument, NULL, 'i'},
        {"ping-probe", no_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_t *b = &B;
    b->store_kind = "memory";
    b->sagas = 10000;
    b->steps = 3;
    b->conc = 100;
    b->max_s = 300;
    b->min_replicas = SAGA_STORE_MIN_REPLICAS_AUTO;
    int c;
    while ((c = getopt_long(argc, argv, "n:s:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'S': b->store_kind = optarg; break;
        case 'R': b->redis_url = optarg; break;
        case 'k': b->redis_conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'W': b->min_replicas = (int)strtol(optarg, NULL, 10); break;
        case 'e': b->retention_ms = strtoull(optarg, NULL, 10); break;
        case 'n': b->sagas = strtoull(optarg, NULL, 10); break;
        case 's': b->steps = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': b->conc = strtoull(optarg, NULL, 10); break;
        case 'z': b->sleep_ms = strtoull(optarg, NULL, 10); break;
        case 'w': b->warmup = strtoull(optarg, NULL, 10); break;
        case 'r': b->rate = strtod(optarg, NULL); break;
        case 'd': b->duration_s = strtod(optarg, NULL); break;
        case 'm': b->max_s = strtod(optarg, NULL); break;
        case 'i': b->inflight_rss = true; break;
        case 'p': b->ping_probe = true; break;
        case 'l': b->label = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    bool redis = strcmp(b->store_kind, "redis") == 0;
    if (optind != argc || b->steps < 1 || b->steps > MAX_STEPS || b->sagas < 1 ||
        b->conc < 1 || b->conc >= 1000000000u ||
        (!redis && strcmp(b->store_kind, "memory") != 0) || (redis && b->redis_url == NULL) ||
        (b->inflight_rss && b->sleep_ms == 0) || (b->ping_probe && !redis)) {
        usage(stderr);
        return 2;
    }
    if (b->inflight_rss)
        b->sagas = b->conc;
    signal(SIGPIPE, SIG_IGN);
    saga_log_set_level(SAGA_LOG_WARN);
    snprintf(b->tag, sizeof(b->tag), "%06x",
             (unsigned)((uint64_t)getpid() * 2654435761u ^ (uint64_t)time(NULL)) & 0xffffffu);

    /* Written once now, so that these pages are resident before the
     * "RSS before" reading and never count as the engine's memory. */
    b->slots = malloc(b->conc * sizeof(*b->slots));
    if (b->slots != NULL)
        memset(b->slots, 0, b->conc * sizeof(*b->slots));
    b->free_slots = malloc(b->conc * sizeof(*b->free_slots));
    if (b->slots == NULL || b->free_slots == NULL) {
        fprintf(stderr, "saga-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < b->conc; i++)
        b->free_slots[b->nfree++] = b->conc - 1 - i;

    uv_loop_init(&b->loop);
    uv_timer_init(&b->loop, &b->tick);
    uv_timer_init(&b->loop, &b->settle);
    uv_timer_init(&b->loop, &b->deadline);
    uv_timer_init(&b->loop, &b->stopper);
    uv_timer_init(&b->loop, &b->inflight_settle);
    b->tick.data = b->settle.data = b->deadline.data = b->stopper.data = b;
    b->inflight_settle.data = b;
    b->timers_on = true;
    uv_timer_start(&b->deadline, on_deadline, (uint64_t)(b->max_s * 1000), 0);

    if (redis) {
        char err[256];
        if (saga_redis_url_parse(b->redis_url, &b->url, err, sizeof(err)) != 0) {
            fprintf(stderr, "saga-bench: --redis: %s\n", err);
            return 2;
        }
        b->have_url = true;
        if (info_connect(b) != 0)
            return 1;
        saga_store_redis_options_t ro = {0};
        ro.conn.client_name = "saga-bench";
        ro.connections = b->redis_conns;
        ro.retention_ms = b->retention_ms;
        ro.min_replicas = b->min_replicas;
        b->store = saga_store_redis_new(&b->loop, &b->url, &ro, on_ready, b);
    } else {
        saga_store_memory_options_t mo = {.keep_finished = false, .keep_history = false};
        b->store = saga_store_memory_new(&b->loop, &mo);
        if (b->store != NULL)
            uv_timer_start(&b->settle, on_kick, 0, 0);
    }
    if (b->store == NULL) {
        fprintf(stderr, "saga-bench: cannot create the store\n");
        return 1;
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    stop_probe(b); /* a run stopped while measuring */
    saga_engine_free(b->engine);
    if (uv_loop_close(&b->loop) != 0)
        fprintf(stderr, "saga-bench: a libuv handle was left open\n");
    if (b->info)
        redisFree(b->info);
    if (b->have_url)
        saga_redis_url_close(&b->url);
    free(b->slots);
    free(b->free_slots);
    bench_timeline_free(&b->timeline);
    return b->timed_out ? 1 : b->exit_code;
}
