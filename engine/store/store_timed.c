/*
 * store_timed.c -- see store_timed.h.
 */
#include "store/store_timed.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <uv.h>

typedef struct write_ctx_s write_ctx_t;

typedef struct timed_s {
    saga_store_t base;
    saga_store_t *inner;
    saga_store_timed_hook hook;
    void *data;
    size_t in_flight;     /* writes whose callback has not run */
    bool freed;           /* saga_store_timed_free() was called */
    void (*closed)(void *data);
    void *closed_data;
    write_ctx_t *spare;   /* contexts of answered writes, for the next ones:
                             no allocation per write in the steady state */
} timed_t;

struct write_ctx_s {
    timed_t *t;
    uint64_t start_ns;
    saga_store_write_cb cb;
    void *data;
    write_ctx_t *next;    /* in t->spare */
};

static void timed_release(timed_t *t) {
    while (t->spare != NULL) {
        write_ctx_t *c = t->spare;
        t->spare = c->next;
        free(c);
    }
    free(t);
}

static void on_write(int status, unsigned signals, void *data) {
    write_ctx_t *w = data;
    timed_t *t = w->t;
    saga_store_write_cb cb = w->cb;
    void *cb_data = w->data;
    uint64_t elapsed = uv_hrtime() - w->start_ns;
    w->next = t->spare;
    t->spare = w;
    t->in_flight--;
    if (!t->freed && t->hook != NULL)
        t->hook(status, elapsed, t->data);
    bool last = t->freed && t->in_flight == 0;
    cb(status, signals, cb_data);
    if (last)
        timed_release(t);
}

static int t_write(saga_store_t *s, const saga_store_write_t *w, saga_store_write_cb cb,
                   void *data) {
    timed_t *t = (timed_t *)s;
    write_ctx_t *c = t->spare;
    if (c != NULL)
        t->spare = c->next;
    else if ((c = malloc(sizeof(*c))) == NULL)
        return -ENOMEM;
    c->t = t;
    c->cb = cb;
    c->data = data;
    c->start_ns = uv_hrtime();
    int rc = t->inner->ops->write(t->inner, w, on_write, c);
    if (rc != 0) {
        c->next = t->spare; /* no callback will run */
        t->spare = c;
        return rc;
    }
    t->in_flight++;
    return 0;
}

static int t_load(saga_store_t *s, const char *id, saga_store_load_cb cb, void *data) {
    timed_t *t = (timed_t *)s;
    return t->inner->ops->load(t->inner, id, cb, data);
}

static int t_history(saga_store_t *s, const char *id, saga_store_history_cb cb, void *data) {
    timed_t *t = (timed_t *)s;
    return t->inner->ops->history(t->inner, id, cb, data);
}

static int t_put_definition(saga_store_t *s, const char *hash, const char *text, size_t len,
                            saga_store_done_cb cb, void *data) {
    timed_t *t = (timed_t *)s;
    return t->inner->ops->put_definition(t->inner, hash, text, len, cb, data);
}

static int t_get_definition(saga_store_t *s, const char *hash, saga_store_text_cb cb,
                            void *data) {
    timed_t *t = (timed_t *)s;
    return t->inner->ops->get_definition(t->inner, hash, cb, data);
}

static int t_list_unfinished(saga_store_t *s, saga_store_ids_cb cb, void *data) {
    timed_t *t = (timed_t *)s;
    return t->inner->ops->list_unfinished(t->inner, cb, data);
}

/* The wrapped store ran every outstanding callback before this one. */
static void on_inner_closed(void *data) {
    timed_t *t = data;
    void (*closed)(void *) = t->closed;
    void *closed_data = t->closed_data;
    timed_release(t);
    if (closed != NULL)
        closed(closed_data);
}

static void t_close(saga_store_t *s, void (*closed)(void *data), void *data) {
    timed_t *t = (timed_t *)s;
    t->closed = closed;
    t->closed_data = data;
    t->hook = NULL; /* nothing is recorded while closing */
    t->inner->ops->close(t->inner, on_inner_closed, t);
}

static const saga_store_ops_t timed_ops = {
    .name = "timed",
    .write = t_write,
    .load = t_load,
    .history = t_history,
    .put_definition = t_put_definition,
    .get_definition = t_get_definition,
    .list_unfinished = t_list_unfinished,
    .close = t_close,
};

saga_store_t *saga_store_timed_new(saga_store_t *inner, saga_store_timed_hook hook,
                                   void *data) {
    timed_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->base.ops = &timed_ops;
    t->inner = inner;
    t->hook = hook;
    t->data = data;
    return &t->base;
}

saga_store_t *saga_store_timed_inner(saga_store_t *s) {
    return s != NULL && s->ops == &timed_ops ? ((timed_t *)s)->inner : NULL;
}

void saga_store_timed_free(saga_store_t *s) {
    if (s == NULL)
        return;
    timed_t *t = (timed_t *)s;
    t->freed = true;
    if (t->in_flight == 0)
        timed_release(t);
}
