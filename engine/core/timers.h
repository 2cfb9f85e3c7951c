/*
 * timers.h -- many deadlines on one uv_timer_t.
 *
 * Every in-flight attempt has a timeout and every waiting retry a wake-up
 * time; with tens of thousands of sagas a uv_timer_t each would cost ~150
 * bytes and an async close per use. Instead a deadline is a small struct the
 * caller embeds; they sit in a binary min-heap and one uv timer is armed for
 * the earliest.
 */
#ifndef SAGA_TIMERS_H
#define SAGA_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct saga_deadline_s saga_deadline_t;
typedef void (*saga_deadline_cb)(saga_deadline_t *d);

struct saga_deadline_s {
    uint64_t when;        /* loop time (uv_now), ms */
    size_t idx;           /* position in the heap; SIZE_MAX: not armed */
    saga_deadline_cb cb;
};

typedef struct saga_timers_s {
    uv_timer_t timer;
    saga_deadline_t **heap;
    size_t count;
    size_t cap;
    uint64_t armed_at;    /* `when` the uv timer is set for; 0: stopped */
} saga_timers_t;

/* Initializes `t` (embedded by the caller) on `loop`. Returns 0 or a libuv
 * error code. */
int saga_timers_init(uv_loop_t *loop, saga_timers_t *t);

/* Closes the uv timer; `t` may be freed in `close_cb`. Pending deadlines are
 * dropped without their callbacks running. */
void saga_timers_close(saga_timers_t *t, uv_close_cb close_cb);

/* Prepares a deadline for use (not armed). */
static inline void saga_deadline_init(saga_deadline_t *d) {
    d->when = 0;
    d->idx = SIZE_MAX;
    d->cb = NULL;
}

static inline bool saga_deadline_armed(const saga_deadline_t *d) {
    return d->idx != SIZE_MAX;
}

/* Arms `d` to run `cb` `delay_ms` from now (re-arms it when armed). The
 * callback runs from the loop, never from inside this call. Returns 0 or
 * -ENOMEM (then `d` is not armed). */
int saga_deadline_arm(saga_timers_t *t, saga_deadline_t *d, uint64_t delay_ms,
                      saga_deadline_cb cb);

/* Disarms `d`; harmless when not armed. */
void saga_deadline_cancel(saga_timers_t *t, saga_deadline_t *d);

#endif
