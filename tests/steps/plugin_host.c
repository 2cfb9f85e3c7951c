/*
 * plugin_host.c -- the strict test host for one step plugin. See
 * plugin_host.h.
 */
#include "plugin_host.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "plugin_loader.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

struct plugin_host_s {
    saga_host_t host;
    uv_loop_t *loop;
    saga_plugins_t *plugins;
    saga_loaded_plugin_t *owner;
    char name[64];
    saga_call_t *calls;
    size_t ncalls, ncompleted;
    uv_timer_t timer;
    bool timer_fired;
    size_t nlog;
    char last_log[1024];
};

/* The host functions get no host pointer for log(): one host per test. */
static plugin_host_t *current;

static void host_complete(saga_call_t *call, saga_outcome_t outcome,
                          const char *data, size_t len) {
    cr_assert_not_null(call);
    cr_assert_eq(call->ncomplete, 0,
                 "complete() called twice for step %s (first: %d %s, now: "
                 "%d %.*s)", call->step, call->outcome,
                 call->data ? call->data : "", outcome, (int)len, data);
    cr_assert(outcome == SAGA_OUTCOME_OK || outcome == SAGA_OUTCOME_TECHNICAL ||
              outcome == SAGA_OUTCOME_BUSINESS, "bad outcome %d", outcome);
    cr_assert(data != NULL || len == 0);
    call->ncomplete++;
    call->outcome = outcome;
    call->data = malloc(len + 1);
    cr_assert_not_null(call->data);
    if (len)
        memcpy(call->data, data, len);
    call->data[len] = '\0';
    call->len = len;
    call->completed_ms = uv_now(call->host->loop);
    if (outcome == SAGA_OUTCOME_OK) {
        json_error_t e;
        call->output = json_loadb(data, len, JSON_DECODE_ANY, &e);
        cr_assert_not_null(call->output, "OK output is not JSON (%s): %.*s",
                           e.text, (int)len, data);
    } else {
        cr_assert(len > 0, "a failure must carry a message");
        cr_assert_null(memchr(data, '\n', len), "message is not one line: %.*s",
                       (int)len, data);
    }
    call->host->ncompleted++;
    /* ph_wait() runs the loop one turn at a time; without this, a turn in
     * which the last call completed before the poll phase would block in
     * that poll until the next timer. */
    if (ph_pending(call->host) == 0)
        uv_stop(call->host->loop);
}

static void host_set_retry_after(saga_call_t *call, uint64_t delay_ms) {
    cr_assert_eq(call->ncomplete, 0, "set_retry_after() after complete()");
    call->has_retry_after = true;
    call->retry_after_ms = delay_ms;
}

static void host_set_call_data(saga_call_t *call, void *data) {
    cr_assert_eq(call->ncomplete, 0, "set_call_data() after complete()");
    call->call_data = data;
}

static void *host_call_data(const saga_call_t *call) {
    /* cancel() may legitimately ask after completion; it must get NULL. */
    return call->ncomplete ? NULL : call->call_data;
}

static void host_log(saga_log_level_t level, const char *plugin,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s %d] %s\n", plugin, (int)level, line);
    if (current != NULL) {
        current->nlog++;
        snprintf(current->last_log, sizeof(current->last_log), "%s", line);
    }
}

plugin_host_t *ph_new(uv_loop_t *loop, const char *name) {
    plugin_host_t *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    h->host.abi_version = SAGA_PLUGIN_ABI_VERSION;
    h->host.struct_size = sizeof(saga_host_t);
    h->host.complete = host_complete;
    h->host.set_retry_after = host_set_retry_after;
    h->host.set_call_data = host_set_call_data;
    h->host.call_data = host_call_data;
    h->host.log = host_log;
    h->loop = loop;
    snprintf(h->name, sizeof(h->name), "%s", name);
    current = h;
    h->plugins = saga_plugins_new(&h->host, loop);
    cr_assert_not_null(h->plugins);
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build, "SAGA_BUILD_DIR is not set (run through ctest)");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/lib/saga/plugins", build);
    cr_assert_eq(saga_plugins_add_dir(h->plugins, dir), 0);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    return h;
}

static const saga_handler_t *resolve(plugin_host_t *h, const char *handler) {
    char err[1024];
    const saga_handler_t *hd =
        saga_plugins_resolve(h->plugins, h->name, handler, &h->owner, err,
                             sizeof(err));
    cr_assert_not_null(hd, "cannot resolve %s.%s: %s", h->name, handler, err);
    return hd;
}

void ph_load(plugin_host_t *h, const char *handler) {
    resolve(h, handler);
}

saga_call_t *ph_call(plugin_host_t *h, const char *handler, const char *with,
                     const ph_opts_t *opts) {
    ph_opts_t o;
    memset(&o, 0, sizeof(o));
    if (opts != NULL)
        o = *opts;
    const saga_handler_t *hd = resolve(h, handler);
    saga_call_t *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->host = h;
    c->handler = hd;
    c->input = strdup(with);
    c->saga_id = strdup(o.saga_id ? o.saga_id : "saga-1");
    c->saga_name = strdup(o.saga_name ? o.saga_name : "test-saga");
    c->step = strdup(o.step ? o.step : "step");
    const char *phase =
        o.phase == SAGA_PHASE_COMPENSATION ? "compensation" : "action";
    if (o.idempotency_key != NULL) {
        c->key = strdup(o.idempotency_key);
    } else {
        size_t n = strlen(c->saga_id) + strlen(c->step) + strlen(phase) + 3;
        c->key = malloc(n);
        snprintf(c->key, n, "%s/%s/%s", c->saga_id, c->step, phase);
    }
    c->info.struct_size = sizeof(saga_call_info_t);
    c->info.input = c->input;
    c->info.input_len = strlen(c->input);
    c->info.saga_id = c->saga_id;
    c->info.saga_name = c->saga_name;
    c->info.step = c->step;
    c->info.phase = o.phase;
    c->info.attempt = o.attempt ? o.attempt : 1;
    c->info.timeout_ms = o.timeout_ms ? o.timeout_ms : 10000;
    c->info.deadline_ms = 0;
    c->info.idempotency_key = c->key;
    c->info.loop = h->loop;
    c->started_ms = uv_now(h->loop);
    c->next = h->calls;
    h->calls = c;
    h->ncalls++;
    hd->call(h->owner->state, c, &c->info);
    return c;
}

/* vprintf into a new string. */
static char *vstrf(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    cr_assert(n >= 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

saga_call_t *ph_callf(plugin_host_t *h, const char *handler,
                      const ph_opts_t *opts, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *with = vstrf(fmt, ap);
    va_end(ap);
    saga_call_t *c = ph_call(h, handler, with, opts);
    free(with);
    return c;
}

saga_call_t *ph_run1(plugin_host_t *h, const char *handler,
                     const ph_opts_t *opts, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *with = vstrf(fmt, ap);
    va_end(ap);
    saga_call_t *c = ph_call(h, handler, with, opts);
    free(with);
    cr_assert(ph_wait(h, 20000), "call did not complete within 20 s");
    cr_assert_eq(c->ncomplete, 1);
    return c;
}

void ph_cancel(plugin_host_t *h, saga_call_t *call) {
    cr_assert_not_null(call->handler->cancel, "handler has no cancel hook");
    call->handler->cancel(h->owner->state, call);
}

size_t ph_pending(const plugin_host_t *h) {
    return h->ncalls - h->ncompleted;
}

size_t ph_log_count(const plugin_host_t *h) {
    return h->nlog;
}

const char *ph_last_log(const plugin_host_t *h) {
    return h->last_log;
}

static void on_timer(uv_timer_t *t) {
    plugin_host_t *h = t->data;
    h->timer_fired = true;
}

bool ph_wait(plugin_host_t *h, uint64_t timeout_ms) {
    h->timer_fired = false;
    uv_timer_start(&h->timer, on_timer, timeout_ms, 0);
    while (ph_pending(h) > 0 && !h->timer_fired)
        uv_run(h->loop, UV_RUN_ONCE);
    uv_timer_stop(&h->timer);
    return ph_pending(h) == 0;
}

void ph_run_for(plugin_host_t *h, uint64_t ms) {
    h->timer_fired = false;
    uv_timer_start(&h->timer, on_timer, ms, 0);
    while (!h->timer_fired)
        uv_run(h->loop, UV_RUN_ONCE);
}

static void on_watchdog(uv_timer_t *t) {
    (void)t;
    cr_assert_fail("the plugin's handles were not closed within 10 s of "
                   "close()");
}

void ph_free(plugin_host_t *h) {
    cr_assert_eq(ph_pending(h), 0, "%zu call(s) never completed",
                 ph_pending(h));
    saga_plugins_close_all(h->plugins);
    /* The plugin's handles keep the loop alive until they are closed; the
     * watchdog does not (unref'd) but fails the test if they never are. */
    uv_timer_t watchdog;
    uv_timer_init(h->loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 10000, 0);
    uv_unref((uv_handle_t *)&watchdog);
    uv_close((uv_handle_t *)&h->timer, NULL);
    uv_run(h->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(h->loop, UV_RUN_DEFAULT);
    saga_plugins_free(h->plugins);
    for (saga_call_t *c = h->calls, *next; c != NULL; c = next) {
        next = c->next;
        cr_assert_eq(c->ncomplete, 1, "step %s completed %d times", c->step,
                     c->ncomplete);
        free(c->data);
        json_decref(c->output);
        free(c->input);
        free(c->saga_id);
        free(c->saga_name);
        free(c->step);
        free(c->key);
        free(c);
    }
    if (current == h)
        current = NULL;
    free(h);
}

int ph_count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

void ph_check_leaks(void) {
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
                 "LeakSanitizer found leaks (see stderr)");
#endif
}
