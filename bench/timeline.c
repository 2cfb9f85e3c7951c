/*
 * timeline.c -- see timeline.h.
 */
#include "timeline.h"

#include <stdlib.h>
#include <string.h>

void bench_timeline_init(bench_timeline_t *t, uint64_t t0_ns, uint64_t width_ns,
                         uint64_t over_ns) {
    memset(t, 0, sizeof(*t));
    t->t0_ns = t0_ns;
    t->width_ns = width_ns > 0 ? width_ns : 1;
    t->over_ns = over_ns;
}

void bench_timeline_record(bench_timeline_t *t, uint64_t now_ns, uint64_t v_ns) {
    size_t i = now_ns > t->t0_ns ? (size_t)((now_ns - t->t0_ns) / t->width_ns) : 0;
    if (i >= t->cap) {
        size_t cap = t->cap > 0 ? t->cap : 256;
        while (cap <= i)
            cap *= 2;
        bench_window_t *w = realloc(t->w, cap * sizeof(*w));
        if (w == NULL) {
            t->incomplete = true;
            return;
        }
        memset(w + t->cap, 0, (cap - t->cap) * sizeof(*w));
        t->w = w;
        t->cap = cap;
    }
    bench_window_t *w = &t->w[i];
    w->n++;
    if (v_ns > t->over_ns)
        w->over++;
    if (v_ns > w->max_ns)
        w->max_ns = v_ns;
    if (i + 1 > t->len)
        t->len = i + 1;
}

void bench_timeline_free(bench_timeline_t *t) {
    free(t->w);
    t->w = NULL;
    t->len = t->cap = 0;
}
