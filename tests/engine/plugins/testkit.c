/*
 * testkit.c -- a step plugin for the engine's tests: handlers that misbehave
 * on purpose, and one that blocks.
 *
 *   testkit.block        BLOCKING: sleeps with.ms on a pool thread, then OK
 *                        {"thread": "pool"}
 *   testkit.block_nocomplete  BLOCKING: returns without completing
 *   testkit.late         completes OK after with.ms, has no cancel hook (a
 *                        timed-out call completes late)
 *   testkit.twice        completes twice
 *   testkit.badjson      OK with output that is not JSON
 *   testkit.big          OK with an output of with.bytes bytes (a JSON string)
 *   testkit.retry_after  technical failure asking for with.ms before a retry
 *                        the first time per key, then OK
 *
 * It also checks the engine's side of the contract: close() must run only
 * after every call it was given was completed (plugin.h). It aborts the
 * process otherwise, which fails the test that shut the engine down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "saga/plugin.h"

typedef struct kit_s {
    const saga_host_t *host;
    uv_loop_t *loop;
    json_t *seen; /* keys seen by retry_after */
    long outstanding; /* calls given and not completed yet (atomic: blocking
                         handlers complete on pool threads) */
} kit_t;

/* Every handler starts with this, and completes through done(). */
static void given(kit_t *k) { __atomic_add_fetch(&k->outstanding, 1, __ATOMIC_SEQ_CST); }

static void done(kit_t *k, saga_call_t *c, saga_outcome_t o, const char *s, size_t n) {
    __atomic_sub_fetch(&k->outstanding, 1, __ATOMIC_SEQ_CST);
    k->host->complete(c, o, s, n);
}

typedef struct late_s {
    uv_timer_t t;
    kit_t *kit;
    saga_call_t *call;
} late_t;

static json_int_t with_int(const saga_call_info_t *info, const char *key, json_int_t dflt) {
    json_t *in = json_loadb(info->input, info->input_len, JSON_DECODE_ANY, NULL);
    json_t *v = json_is_object(in) ? json_object_get(in, key) : NULL;
    json_int_t r = json_is_integer(v) ? json_integer_value(v) : dflt;
    json_decref(in);
    return r;
}

static void ok(kit_t *k, saga_call_t *c, const char *s) {
    done(k, c, SAGA_OUTCOME_OK, s, strlen(s));
}

static void h_block(void *st, saga_call_t *c, const saga_call_info_t *info) {
    given(st);
    json_int_t ms = with_int(info, "ms", 10);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    ok(st, c, "{\"thread\":\"pool\"}");
}

static void h_block_nocomplete(void *st, saga_call_t *c, const saga_call_info_t *info) {
    (void)st; (void)c; (void)info;
}

static void late_closed(uv_handle_t *h) { free(h->data); }

static void late_fire(uv_timer_t *t) {
    late_t *l = t->data;
    ok(l->kit, l->call, "{\"late\":true}");
    uv_close((uv_handle_t *)&l->t, late_closed);
}

static void h_late(void *st, saga_call_t *c, const saga_call_info_t *info) {
    kit_t *k = st;
    given(k);
    late_t *l = calloc(1, sizeof(*l));
    l->kit = k;
    l->call = c;
    uv_timer_init(k->loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, late_fire, (uint64_t)with_int(info, "ms", 100), 0);
}

static void h_twice(void *st, saga_call_t *c, const saga_call_info_t *info) {
    kit_t *k = st;
    (void)info;
    given(k);
    ok(k, c, "{\"n\":1}");
    k->host->complete(c, SAGA_OUTCOME_OK, "{\"n\":2}", 7); /* ignored by the engine */
}

static void h_badjson(void *st, saga_call_t *c, const saga_call_info_t *info) {
    (void)info;
    given(st);
    ok(st, c, "{not json");
}

static void h_big(void *st, saga_call_t *c, const saga_call_info_t *info) {
    given(st);
    size_t n = (size_t)with_int(info, "bytes", 16);
    char *s = malloc(n + 3);
    s[0] = '"';
    memset(s + 1, 'x', n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    ok(st, c, s);
    free(s);
}

static void h_retry_after(void *st, saga_call_t *c, const saga_call_info_t *info) {
    kit_t *k = st;
    given(k);
    if (json_object_get(k->seen, info->idempotency_key) == NULL) {
        json_object_set_new(k->seen, info->idempotency_key, json_true());
        k->host->set_retry_after(c, (uint64_t)with_int(info, "ms", 100));
        done(k, c, SAGA_OUTCOME_TECHNICAL, "busy, come back later", 21);
        return;
    }
    ok(st, c, "{}");
}

static int kit_init(const saga_host_t *host, struct uv_loop_s *loop, void **state) {
    kit_t *k = calloc(1, sizeof(*k));
    k->host = host;
    k->loop = loop;
    k->seen = json_object();
    *state = k;
    return 0;
}

static void kit_close(void *state) {
    kit_t *k = state;
    long n = __atomic_load_n(&k->outstanding, __ATOMIC_SEQ_CST);
    if (n != 0) {
        fprintf(stderr, "testkit: close() ran with %ld call(s) not completed\n", n);
        abort();
    }
    json_decref(k->seen);
    free(k);
}

static const saga_handler_t handlers[] = {
    {"block", SAGA_HANDLER_BLOCKING, h_block, NULL},
    {"block_nocomplete", SAGA_HANDLER_BLOCKING, h_block_nocomplete, NULL},
    {"late", 0, h_late, NULL},
    {"twice", 0, h_twice, NULL},
    {"badjson", 0, h_badjson, NULL},
    {"big", 0, h_big, NULL},
    {"retry_after", 0, h_retry_after, NULL},
};

SAGA_PLUGIN_EXPORT const saga_plugin_t saga_plugin = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_plugin_t),
    .name = "testkit",
    .version = "1",
    .init = kit_init,
    .close = kit_close,
    .handlers = handlers,
    .handler_count = sizeof(handlers) / sizeof(handlers[0]),
};
