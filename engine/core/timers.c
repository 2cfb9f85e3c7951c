#include "core/timers.h"

#include <errno.h>
#include <stdlib.h>

static void swap(saga_timers_t *t, size_t a, size_t b) {
    saga_deadline_t *x = t->heap[a];
    t->heap[a] = t->heap[b];
    t->heap[b] = x;
    t->heap[a]->idx = a;
    t->heap[b]->idx = b;
}

static void sift_up(saga_timers_t *t, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->when <= t->heap[i]->when)
            break;
        swap(t, i, parent);
        i = parent;
    }
}

static void sift_down(saga_timers_t *t, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->count && t->heap[l]->when < t->heap[m]->when)
            m = l;
        if (r < t->count && t->heap[r]->when < t->heap[m]->when)
            m = r;
        if (m == i)
            return;
        swap(t, i, m);
        i = m;
    }
}

static void remove_at(saga_timers_t *t, size_t i) {
    saga_deadline_t *d = t->heap[i];
    t->count--;
    if (i != t->count) {
        t->heap[i] = t->heap[t->count];
        t->heap[i]->idx = i;
        sift_down(t, i);
        sift_up(t, i);
    }
    d->idx = SIZE_MAX;
}

static void on_timer(uv_timer_t *h);

/* Points the uv timer at the earliest deadline, or stops it. */
static void rearm(saga_timers_t *t) {
    if (t->count == 0) {
        if (t->armed_at != 0)
            uv_timer_stop(&t->timer);
        t->armed_at = 0;
        return;
    }
    uint64_t when = t->heap[0]->when;
    if (t->armed_at == when)
        return;
    uint64_t now = uv_now(t->timer.loop);
    uv_timer_start(&t->timer, on_timer, when > now ? when - now : 0, 0);
    t->armed_at = when;
}

static void on_timer(uv_timer_t *h) {
    saga_timers_t *t = h->data;
    uint64_t now = uv_now(h->loop);
    t->armed_at = 0;
    /* Callbacks may arm or cancel other deadlines: re-read the top each time. */
    while (t->count > 0 && t->heap[0]->when <= now) {
        saga_deadline_t *d = t->heap[0];
        remove_at(t, 0);
        d->cb(d);
    }
    rearm(t);
}

int saga_timers_init(uv_loop_t *loop, saga_timers_t *t) {
    t->heap = NULL;
    t->count = t->cap = 0;
    t->armed_at = 0;
    int rc = uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    return rc;
}

void saga_timers_close(saga_timers_t *t, uv_close_cb close_cb) {
    for (size_t i = 0; i < t->count; i++)
        t->heap[i]->idx = SIZE_MAX;
    free(t->heap);
    t->heap = NULL;
    t->count = t->cap = 0;
    uv_close((uv_handle_t *)&t->timer, close_cb);
}

int saga_deadline_arm(saga_timers_t *t, saga_deadline_t *d, uint64_t delay_ms,
                      saga_deadline_cb cb) {
    if (saga_deadline_armed(d))
        remove_at(t, d->idx);
    if (t->count == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        saga_deadline_t **nh = realloc(t->heap, ncap * sizeof(*nh));
        if (nh == NULL)
            return -ENOMEM;
        t->heap = nh;
        t->cap = ncap;
    }
    d->when = uv_now(t->timer.loop) + delay_ms;
    d->cb = cb;
    d->idx = t->count;
    t->heap[t->count++] = d;
    sift_up(t, d->idx);
    rearm(t);
    return 0;
}

void saga_deadline_cancel(saga_timers_t *t, saga_deadline_t *d) {
    if (!saga_deadline_armed(d))
        return;
    remove_at(t, d->idx);
    rearm(t);
}
