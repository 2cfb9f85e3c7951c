/*
 * hello.c -- a complete small step plugin, the example of docs/plugin-abi.md.
 *
 *   hello.greet  non-blocking, completes at once.
 *                with {name: STRING} -> {"greeting": "Hello, NAME", "key": KEY}
 *   hello.wait   non-blocking, completes later from a libuv timer; has a
 *                cancel hook, used when the wait outlasts the step's timeout.
 *                with {ms: INTEGER >= 0} -> {"waited_ms": MS}
 *   hello.hash   blocking: runs on the libuv thread pool.
 *                with {text: STRING, rounds: 1..10000000 (default 1)}
 *                -> {"fnv1a64": "HEX", "rounds": N}
 *
 * Bad input is a BUSINESS failure (retrying cannot fix it); running out of
 * memory is a TECHNICAL failure (a retry may succeed).
 *
 * It is built against saga/plugin.h alone, as a plugin written outside this
 * tree is: it does not link steps/lib, whose step_call_complete() and
 * step_call_with() do for the built-in plugins what complete_str() and
 * input_object() do here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "saga/plugin.h"

#define HASH_MAX_ROUNDS 10000000

/* The plugin's state: one per engine, made by init(). Only the loop thread
 * writes it; hello.hash (on the pool) reads `host` alone. */
typedef struct hello_s {
    const saga_host_t *host;
    uv_loop_t *loop;
    unsigned open_timers; /* hello.wait timers not closed yet */
    bool closing;         /* close() ran: free once open_timers is 0 */
    uint64_t greetings;
} hello_t;

/* One hello.wait call in flight: the call's data while its timer runs. */
typedef struct wait_s {
    uv_timer_t timer;
    hello_t *hello;
    saga_call_t *call;
    uint64_t ms;
} wait_t;

static void complete_str(const saga_host_t *host, saga_call_t *call,
                         saga_outcome_t outcome, const char *text) {
    host->complete(call, outcome, text, strlen(text));
}

/* Completes the call OK with `out` as compact JSON. Takes the reference to
 * `out`; NULL (a failed json_pack) completes it as a technical failure. */
static void complete_json(const saga_host_t *host, saga_call_t *call, json_t *out) {
    char *text = out != NULL ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(out);
    if (text == NULL) {
        complete_str(host, call, SAGA_OUTCOME_TECHNICAL, "hello: out of memory");
        return;
    }
    complete_str(host, call, SAGA_OUTCOME_OK, text);
    free(text);
}

/* Returns the call's input as a JSON object (the caller owns it), or NULL
 * after completing the call with a business failure. */
static json_t *input_object(const saga_host_t *host, saga_call_t *call,
                            const saga_call_info_t *info, const char *handler) {
    json_t *in = json_loadb(info->input, info->input_len, JSON_DECODE_ANY, NULL);
    if (!json_is_object(in)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s: `with` must be a mapping", handler);
        complete_str(host, call, SAGA_OUTCOME_BUSINESS, msg);
        json_decref(in);
        return NULL;
    }
    return in;
}

/* ---------------------------------------------------------------------- */
/* hello.greet: completes inside the handler                               */
/* ---------------------------------------------------------------------- */

static void greet_call(void *state, saga_call_t *call, const saga_call_info_t *info) {
    hello_t *h = state;
    json_t *in = input_object(h->host, call, info, "hello.greet");
    if (in == NULL)
        return;
    json_t *name = json_object_get(in, "name");
    if (!json_is_string(name)) {
        complete_str(h->host, call, SAGA_OUTCOME_BUSINESS,
                     "hello.greet: with.name must be a string");
        json_decref(in);
        return;
    }
    /* The key is the same on every retry and resume of this step: a real
     * service would use it to do the work once. */
    json_t *out = json_pack("{s:o, s:s}", "greeting",
                            json_sprintf("Hello, %s", json_string_value(name)),
                            "key", info->idempotency_key);
    json_decref(in);
    h->greetings++;
    complete_json(h->host, call, out);
}

/* ---------------------------------------------------------------------- */
/* hello.wait: completes later; cancellable                                */
/* ---------------------------------------------------------------------- */

/* Frees the state once close() ran and the last timer is closed. */
static void hello_release(hello_t *h) {
    if (h->closing && h->open_timers == 0)
        free(h);
}

static void wait_closed(uv_handle_t *handle) {
    wait_t *w = handle->data;
    hello_t *h = w->hello;
    free(w);
    h->open_timers--;
    hello_release(h);
}

/* Detaches `w` from its call and closes its timer (which frees `w`).
 * Returns the call, still to be completed. */
static saga_call_t *wait_detach(wait_t *w) {
    saga_call_t *call = w->call;
    w->hello->host->set_call_data(call, NULL);
    uv_close((uv_handle_t *)&w->timer, wait_closed);
    return call;
}

static void wait_fired(uv_timer_t *timer) {
    wait_t *w = timer->data;
    const saga_host_t *host = w->hello->host;
    char out[48];
    snprintf(out, sizeof(out), "{\"waited_ms\":%" PRIu64 "}", w->ms);
    saga_call_t *call = wait_detach(w);
    /* complete() comes last: the call is freed inside it. */
    complete_str(host, call, SAGA_OUTCOME_OK, out);
}

static void wait_call(void *state, saga_call_t *call, const saga_call_info_t *info) {
    hello_t *h = state;
    json_t *in = input_object(h->host, call, info, "hello.wait");
    if (in == NULL)
        return;
    json_t *ms = json_object_get(in, "ms");
    json_int_t delay = json_is_integer(ms) ? json_integer_value(ms) : -1;
    json_decref(in);
    if (delay < 0) {
        complete_str(h->host, call, SAGA_OUTCOME_BUSINESS,
                     "hello.wait: with.ms must be an integer >= 0");
        return;
    }
    wait_t *w = calloc(1, sizeof(*w));
    if (w == NULL || uv_timer_init(h->loop, &w->timer) != 0) {
        free(w);
        complete_str(h->host, call, SAGA_OUTCOME_TECHNICAL, "hello.wait: cannot set up a timer");
        return;
    }
    w->timer.data = w;
    w->hello = h;
    w->call = call;
    w->ms = (uint64_t)delay;
    h->open_timers++;
    h->host->set_call_data(call, w);
    uv_timer_start(&w->timer, wait_fired, w->ms, 0);
}

/* The engine stopped waiting (timeout, shutdown): release the call's timer
 * and complete it now; the engine ignores the outcome. */
static void wait_cancel(void *state, saga_call_t *call) {
    hello_t *h = state;
    wait_t *w = h->host->call_data(call);
    if (w == NULL)
        return; /* not ours any more */
    wait_detach(w);
    complete_str(h->host, call, SAGA_OUTCOME_TECHNICAL, "hello.wait: cancelled");
}

/* ---------------------------------------------------------------------- */
/* hello.hash: blocking, on a thread-pool thread                           */
/* ---------------------------------------------------------------------- */

static void hash_call(void *state, saga_call_t *call, const saga_call_info_t *info) {
    const saga_host_t *host = ((const hello_t *)state)->host;
    json_t *in = input_object(host, call, info, "hello.hash");
    if (in == NULL)
        return;
    json_t *text = json_object_get(in, "text"), *r = json_object_get(in, "rounds");
    json_int_t rounds = r == NULL ? 1 : json_is_integer(r) ? json_integer_value(r) : 0;
    if (!json_is_string(text) || rounds < 1 || rounds > HASH_MAX_ROUNDS) {
        complete_str(host, call, SAGA_OUTCOME_BUSINESS, "hello.hash: with.text must "
                     "be a string and with.rounds an integer from 1 to 10000000");
        json_decref(in);
        return;
    }
    const unsigned char *s = (const unsigned char *)json_string_value(text);
    size_t len = json_string_length(text);
    uint64_t x = 14695981039346656037u; /* FNV-1a, 64 bits */
    for (json_int_t i = 0; i < rounds; i++)
        for (size_t k = 0; k < len; k++)
            x = (x ^ s[k]) * 1099511628211u;
    json_decref(in);
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, x);
    /* Complete before returning: a blocking handler that returns without
     * completing is a technical failure. */
    complete_json(host, call, json_pack("{s:s, s:I}", "fnv1a64", hex, "rounds", rounds));
}

/* ---------------------------------------------------------------------- */
/* Lifecycle and descriptor                                                */
/* ---------------------------------------------------------------------- */

static int hello_init(const saga_host_t *host, struct uv_loop_s *loop, void **state) {
    /* An engine built from an older header may offer fewer host functions. */
    if (host->struct_size < sizeof(saga_host_t))
        return -ENOTSUP;
    hello_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->host = host;
    h->loop = loop;
    *state = h;
    host->log(SAGA_LOG_DEBUG, "hello", "ready");
    return 0;
}

/* Every call has completed; timers of hello.wait may still be closing. */
static void hello_close(void *state) {
    hello_t *h = state;
    h->host->log(SAGA_LOG_DEBUG, "hello", "closing after %" PRIu64 " greeting(s)",
                 h->greetings);
    h->closing = true;
    hello_release(h);
}

static const saga_handler_t hello_handlers[] = {
    {.name = "greet", .flags = 0, .call = greet_call, .cancel = NULL},
    {.name = "wait", .flags = 0, .call = wait_call, .cancel = wait_cancel},
    {.name = "hash", .flags = SAGA_HANDLER_BLOCKING, .call = hash_call, .cancel = NULL},
};

/* The one exported symbol. */
SAGA_PLUGIN_EXPORT const saga_plugin_t saga_plugin = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_plugin_t),
    .name = "hello",
    .version = "1.0.0",
    .init = hello_init,
    .close = hello_close,
    .handlers = hello_handlers,
    .handler_count = sizeof(hello_handlers) / sizeof(hello_handlers[0]),
};
