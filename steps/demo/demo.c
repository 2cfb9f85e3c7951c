/*
 * demo.c -- the built-in `demo` plugin, for examples, tests and benchmarks.
 *
 *   demo.noop   OK, output {}
 *   demo.echo   OK, output = its input
 *   demo.fail   business failure, message from with.message (as it is)
 *   demo.flaky  technical failure for the first with.failures calls with the
 *               same idempotency key, then OK with output {"calls": n}
 *   demo.sleep  OK with output {} after with.ms milliseconds (libuv timer)
 *
 * demo.flaky counts calls per idempotency key in this process; the count is
 * dropped once the key succeeds, so memory stays bounded by the number of
 * keys currently failing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "saga/plugin.h"
#include "step_call.h"

#define PLUGIN "demo"

typedef struct flaky_key_s {
    struct flaky_key_s *next;
    uint64_t calls;
    char key[];
} flaky_key_t;

#define FLAKY_BUCKETS 1024u

typedef struct demo_s {
    const saga_host_t *host;
    uv_loop_t *loop;
    flaky_key_t *flaky[FLAKY_BUCKETS];
} demo_t;

/* A demo.sleep call in flight. */
typedef struct sleeper_s {
    uv_timer_t timer;
    demo_t *demo;
    saga_call_t *call;
} sleeper_t;

/* Returns the call's `with` as a mapping (the caller owns it), or NULL
 * after completing the call as a business failure (bad input will not get
 * better on retry). */
static json_t *parse_object(demo_t *d, saga_call_t *call,
                            const saga_call_info_t *info, const char *handler) {
    char err[256];
    json_t *v = step_call_with(info->input, info->input_len, handler, NULL, err,
                               sizeof(err));
    if (v == NULL)
        step_call_complete(d->host, call, SAGA_OUTCOME_BUSINESS, err, handler);
    return v;
}

static void h_noop(void *state, saga_call_t *call, const saga_call_info_t *info) {
    demo_t *d = state;
    (void)info;
    step_call_complete(d->host, call, SAGA_OUTCOME_OK, "{}", PLUGIN);
}

static void h_echo(void *state, saga_call_t *call, const saga_call_info_t *info) {
    demo_t *d = state;
    d->host->complete(call, SAGA_OUTCOME_OK, info->input, info->input_len);
}

static void h_fail(void *state, saga_call_t *call, const saga_call_info_t *info) {
    demo_t *d = state;
    const char *msg = "demo.fail: failed on purpose";
    json_t *in = NULL;
    json_error_t jerr;
    if (info->input_len > 0)
        in = json_loadb(info->input, info->input_len, JSON_DECODE_ANY, &jerr);
    json_t *m = json_is_object(in) ? json_object_get(in, "message") : NULL;
    if (json_is_string(m))
        msg = json_string_value(m);
    /* The message exactly as written, control characters included: tests
     * use demo.fail to check the engine's own defences against such
     * messages, which step_call_complete() would smooth away. */
    d->host->complete(call, SAGA_OUTCOME_BUSINESS, msg, strlen(msg));
    json_decref(in);
}

static uint32_t hash_key(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void h_flaky(void *state, saga_call_t *call, const saga_call_info_t *info) {
    demo_t *d = state;
    json_t *in = parse_object(d, call, info, "demo.flaky");
    if (in == NULL)
        return;
    json_t *f = json_object_get(in, "failures");
    json_int_t failures = json_is_integer(f) ? json_integer_value(f) : 1;
    json_decref(in);

    flaky_key_t **slot = &d->flaky[hash_key(info->idempotency_key) % FLAKY_BUCKETS];
    flaky_key_t *k = *slot;
    while (k != NULL && strcmp(k->key, info->idempotency_key) != 0)
        k = k->next;
    if (k == NULL) {
        size_t n = strlen(info->idempotency_key) + 1;
        if ((k = calloc(1, sizeof(*k) + n)) == NULL) {
            /* NULL: "demo.flaky: out of memory", a technical failure. */
            step_call_complete(d->host, call, SAGA_OUTCOME_TECHNICAL, NULL,
                               "demo.flaky");
            return;
        }
        memcpy(k->key, info->idempotency_key, n);
        k->next = *slot;
        *slot = k;
    }
    uint64_t calls = ++k->calls;
    if ((json_int_t)calls <= failures) {
        char msg[96];
        snprintf(msg, sizeof(msg), "demo.flaky: planned failure %llu of %lld",
                 (unsigned long long)calls, (long long)failures);
        step_call_complete(d->host, call, SAGA_OUTCOME_TECHNICAL, msg, PLUGIN);
        return;
    }
    /* Succeeded: forget the key. */
    for (flaky_key_t **pp = slot; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    }
    free(k);
    char out[64];
    snprintf(out, sizeof(out), "{\"calls\":%llu}", (unsigned long long)calls);
    step_call_complete(d->host, call, SAGA_OUTCOME_OK, out, PLUGIN);
}

static void sleeper_closed(uv_handle_t *h) {
    free(h->data);
}

static void sleeper_fire(uv_timer_t *t) {
    sleeper_t *s = t->data;
    s->demo->host->set_call_data(s->call, NULL);
    step_call_complete(s->demo->host, s->call, SAGA_OUTCOME_OK, "{}", PLUGIN);
    uv_close((uv_handle_t *)&s->timer, sleeper_closed);
}

static void h_sleep(void *state, saga_call_t *call, const saga_call_info_t *info) {
    demo_t *d = state;
    json_t *in = parse_object(d, call, info, "demo.sleep");
    if (in == NULL)
        return;
    json_t *ms = json_object_get(in, "ms");
    json_int_t delay = json_is_integer(ms) ? json_integer_value(ms) : 0;
    json_decref(in);
    if (delay < 0) {
        step_call_complete(d->host, call, SAGA_OUTCOME_BUSINESS,
                           "demo.sleep: `ms` must be >= 0", PLUGIN);
        return;
    }
    sleeper_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        step_call_complete(d->host, call, SAGA_OUTCOME_TECHNICAL, NULL,
                           "demo.sleep");
        return;
    }
    s->demo = d;
    s->call = call;
    uv_timer_init(d->loop, &s->timer);
    s->timer.data = s;
    d->host->set_call_data(call, s);
    uv_timer_start(&s->timer, sleeper_fire, (uint64_t)delay, 0);
}

/* The engine gave up on a sleeping call: stop the timer and complete now. */
static void c_sleep(void *state, saga_call_t *call) {
    demo_t *d = state;
    sleeper_t *s = d->host->call_data(call);
    if (s == NULL)
        return;
    d->host->set_call_data(call, NULL);
    uv_timer_stop(&s->timer);
    step_call_complete(d->host, call, SAGA_OUTCOME_TECHNICAL,
                       "demo.sleep: cancelled", PLUGIN);
    uv_close((uv_handle_t *)&s->timer, sleeper_closed);
}

static int demo_init(const saga_host_t *host, struct uv_loop_s *loop, void **state) {
    demo_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->host = host;
    d->loop = loop;
    *state = d;
    return 0;
}

static void demo_close(void *state) {
    demo_t *d = state;
    for (size_t i = 0; i < FLAKY_BUCKETS; i++) {
        flaky_key_t *k = d->flaky[i];
        while (k != NULL) {
            flaky_key_t *next = k->next;
            free(k);
            k = next;
        }
    }
    free(d);
}

static const saga_handler_t demo_handlers[] = {
    {"noop", 0, h_noop, NULL},
    {"echo", 0, h_echo, NULL},
    {"fail", 0, h_fail, NULL},
    {"flaky", 0, h_flaky, NULL},
    {"sleep", 0, h_sleep, c_sleep},
};

SAGA_PLUGIN_EXPORT const saga_plugin_t saga_plugin = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_plugin_t),
    .name = "demo",
    .version = "1.0.0",
    .init = demo_init,
    .close = demo_close,
    .handlers = demo_handlers,
    .handler_count = sizeof(demo_handlers) / sizeof(demo_handlers[0]),
};
