/*
 * store_memory.c -- the in-process store: fast, not durable.
 *
 * Writes are applied at once and acknowledged from a uv_idle_t on the next
 * loop iteration (callbacks never run inside the call). Finished sagas are
 * kept (with their history) unless the options say otherwise, so that
 * `saga run --store memory` can print its summary and a benchmark can run
 * millions of sagas in bounded memory.
 */
#include "store/store_memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga/errors.h"
#include "util/strmap.h"
#include "util/bytes.h"

/* A field: one block "key\0value\0". A record has a dozen or two fields,
 * so a linear search beats hashing and spares an allocation per field. */
typedef struct mem_field_s {
    char *buf;
    uint32_t klen;
    uint32_t vlen;
    uint32_t vcap;     /* bytes available for the value, NUL included */
} mem_field_t;

typedef struct mem_hist_s {
    saga_history_entry_t e;  /* strings point into `buf` */
    char *buf;
} mem_hist_t;

typedef struct mem_saga_s {
    char *id;
    mem_field_t *fields;
    size_t nfields;
    size_t capfields;
    uint64_t seq;
    uint64_t fence;
    bool terminal;
    int64_t expire_at;   /* terminal: when its retention runs out (ms) */
    mem_hist_t *hist;
    size_t nhist;
    size_t caphist;
} mem_saga_t;

typedef enum op_kind_e { OP_WRITE, OP_LOAD, OP_HISTORY, OP_PUTDEF, OP_GETDEF,
                         OP_LIST } op_kind_t;

/* The caller's callback, by kind: ISO C converts no function pointer to
 * void *, so each kind keeps its own type. */
typedef union mem_cb_u {
    saga_store_write_cb write;     /* OP_WRITE */
    saga_store_load_cb load;       /* OP_LOAD */
    saga_store_history_cb history; /* OP_HISTORY */
    saga_store_done_cb done;       /* OP_PUTDEF */
    saga_store_text_cb text;       /* OP_GETDEF */
    saga_store_ids_cb ids;         /* OP_LIST */
} mem_cb_t;

typedef struct mem_op_s {
    struct mem_op_s *next;
    op_kind_t kind;
    int status;
    unsigned signals;
    mem_cb_t cb;
    void *data;
    char key[]; /* saga id or definition hash */
} mem_op_t;

typedef struct mem_def_s {
    size_t len;
    char *text;
    char hash[];
} mem_def_t;

typedef struct store_memory_s {
    saga_store_t base;
    saga_store_memory_options_t opt;
    uv_idle_t idle;
    saga_strmap_t sagas;
    saga_strmap_t defs;
    mem_op_t *head;
    mem_op_t *tail;
    bool closing;
    int64_t next_gc;     /* when expired sagas are swept next (ms) */
    void (*closed)(void *);
    void *closed_data;
} store_memory_t;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void saga_free_rec(struct mem_saga_s *s);

/* The saga `id` when the store holds it and its retention has not run out;
 * an expired one is removed here (as saga_gc removes it from Redis). */
static mem_saga_t *live_saga(store_memory_t *m, const char *id, int64_t now) {
    mem_saga_t *s = saga_strmap_get(&m->sagas, id);
    if (s != NULL && s->terminal && s->expire_at <= now) {
        saga_strmap_del(&m->sagas, s->id);
        saga_free_rec(s);
        return NULL;
    }
    return s;
}

/* Removes every finished saga whose retention ran out, at most once a
 * second (a walk over all of them): what saga_gc does in Redis. */
static void gc(store_memory_t *m, int64_t now) {
    if (now < m->next_gc)
        return;
    m->next_gc = now + 1000;
    /* Collected first: deleting from the map moves entries under a walk. */
    size_t n = 0, k = 0;
    const char *key;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&m->sagas, &pos, &key, &v);)
        n += ((mem_saga_t *)v)->terminal && ((mem_saga_t *)v)->expire_at <= now;
    mem_saga_t **doomed = n > 0 ? malloc(n * sizeof(*doomed)) : NULL;
    if (doomed == NULL)
        return; /* nothing due, or no memory: the next sweep does it */
    for (size_t pos = 0; k < n && saga_strmap_next(&m->sagas, &pos, &key, &v);)
        if (((mem_saga_t *)v)->terminal && ((mem_saga_t *)v)->expire_at <= now)
            doomed[k++] = v;
    for (size_t i = 0; i < k; i++) {
        saga_strmap_del(&m->sagas, doomed[i]->id);
        saga_free_rec(doomed[i]);
    }
    free(doomed);
}

/* ---------------------------------------------------------------------- */
/* Callback queue                                                          */
/* ---------------------------------------------------------------------- */

static void run_queue(uv_idle_t *h);

static int enqueue(store_memory_t *m, op_kind_t kind, int status,
                   unsigned signals, mem_cb_t cb, void *data, const char *key) {
    size_t klen = key ? strlen(key) + 1 : 1;
    mem_op_t *op = malloc(sizeof(*op) + klen);
    if (op == NULL)
        return -ENOMEM;
    op->next = NULL;
    op->kind = kind;
    op->status = status;
    op->signals = signals;
    op->cb = cb;
    op->data = data;
    memcpy(op->key, key ? key : "", klen);
    if (m->tail != NULL)
        m->tail->next = op;
    else
        m->head = op;
    m->tail = op;
    if (!uv_is_active((uv_handle_t *)&m->idle))
        uv_idle_start(&m->idle, run_queue);
    return 0;
}

static void deliver_load(store_memory_t *m, mem_op_t *op) {
    saga_store_load_cb cb = op->cb.load;
    mem_saga_t *s = live_saga(m, op->key, now_ms());
    if (s == NULL) {
        cb(SAGA_ENOTFOUND, NULL, op->data);
        return;
    }
    saga_record_t rec = {NULL, 0, NULL};
    rec.fields = malloc((s->nfields + 1) * sizeof(*rec.fields));
    if (rec.fields == NULL) {
        cb(-ENOMEM, NULL, op->data);
        return;
    }
    for (size_t i = 0; i < s->nfields; i++) {
        const mem_field_t *f = &s->fields[i];
        rec.fields[rec.nfields++] = (saga_kv_t){f->buf, f->klen, f->buf + f->klen + 1, f->vlen};
    }
    cb(0, &rec, op->data);
    free(rec.fields);
}

static void deliver_history(store_memory_t *m, mem_op_t *op) {
    saga_store_history_cb cb = op->cb.history;
    mem_saga_t *s = live_saga(m, op->key, now_ms());
    if (s == NULL) {
        cb(0, NULL, 0, op->data); /* none, as Redis answers (store.h) */
        return;
    }
    saga_history_entry_t *e = malloc((s->nhist + 1) * sizeof(*e));
    if (e == NULL) {
        cb(-ENOMEM, NULL, 0, op->data);
        return;
    }
    for (size_t i = 0; i < s->nhist; i++)
        e[i] = s->hist[i].e;
    cb(0, e, s->nhist, op->data);
    free(e);
}

static void deliver_list(store_memory_t *m, mem_op_t *op) {
    saga_store_ids_cb cb = op->cb.ids;
    const char **ids = malloc((m->sagas.count + 1) * sizeof(*ids));
    size_t n = 0;
    if (ids == NULL) {
        cb(-ENOMEM, NULL, 0, op->data);
        return;
    }
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&m->sagas, &pos, &k, &v);)
        if (!((mem_saga_t *)v)->terminal)
            ids[n++] = k;
    cb(0, ids, n, op->data);
    free(ids);
}

static void deliver(store_memory_t *m, mem_op_t *op) {
    switch (op->kind) {
    case OP_WRITE:
        op->cb.write(op->status, op->signals, op->data);
        break;
    case OP_PUTDEF:
        op->cb.done(op->status, op->data);
        break;
    case OP_LOAD:
        deliver_load(m, op);
        break;
    case OP_HISTORY:
        deliver_history(m, op);
        break;
    case OP_GETDEF: {
        mem_def_t *d = saga_strmap_get(&m->defs, op->key);
        op->cb.text(d ? 0 : SAGA_ENOTFOUND, d ? d->text : NULL,
                    d ? d->len : 0, op->data);
        break;
    }
    case OP_LIST:
        deliver_list(m, op);
        break;
    }
}

static void run_queue(uv_idle_t *h) {
    store_memory_t *m = h->data;
    /* Deliver only what was queued before this pass: callbacks that queue
     * more wait for the next iteration, so I/O keeps being polled. */
    mem_op_t *op = m->head, *last = m->tail;
    m->head = m->tail = NULL;
    while (op != NULL) {
        mem_op_t *next = op->next;
        deliver(m, op);
        free(op);
        if (op == last)
            break;
        op = next;
    }
    if (m->head == NULL)
        uv_idle_stop(&m->idle);
}

/* ---------------------------------------------------------------------- */
/* Records                                                                 */
/* ---------------------------------------------------------------------- */

static void saga_free_rec(mem_saga_t *s) {
    for (size_t i = 0; i < s->nfields; i++)
        free(s->fields[i].buf);
    free(s->fields);
    for (size_t i = 0; i < s->nhist; i++)
        free(s->hist[i].buf);
    free(s->hist);
    free(s->id);
    free(s);
}

static int set_field(mem_saga_t *s, const saga_kv_t *kv) {
    if (kv->klen > UINT32_MAX / 2 || kv->vlen > UINT32_MAX / 2)
        return -EINVAL;
    mem_field_t *f = NULL;
    for (size_t i = 0; i < s->nfields; i++) {
        if (s->fields[i].klen == kv->klen && memcmp(s->fields[i].buf, kv->key, kv->klen) == 0) {
            f = &s->fields[i];
            break;
        }
    }
    if (f == NULL) {
        if (s->nfields == s->capfields) {
            size_t ncap = s->capfields ? s->capfields * 2 : 16;
            mem_field_t *nf = realloc(s->fields, ncap * sizeof(*nf));
            if (nf == NULL)
                return -ENOMEM;
            s->fields = nf;
            s->capfields = ncap;
        }
        f = &s->fields[s->nfields];
        uint32_t vcap = (uint32_t)kv->vlen + 16; /* room for a status to grow */
        if ((f->buf = malloc(kv->klen + 1 + vcap)) == NULL)
            return -ENOMEM;
        memcpy(f->buf, kv->key, kv->klen);
        f->buf[kv->klen] = '\0';
        f->klen = (uint32_t)kv->klen;
        f->vcap = vcap;
        s->nfields++;
    } else if (kv->vlen + 1 > f->vcap) {
        char *nb = realloc(f->buf, f->klen + 1 + kv->vlen + 1);
        if (nb == NULL)
            return -ENOMEM;
        f->buf = nb;
        f->vcap = (uint32_t)kv->vlen + 1;
    }
    char *v = f->buf + f->klen + 1;
    memcpy(v, kv->val, kv->vlen);
    v[kv->vlen] = '\0';
    f->vlen = (uint32_t)kv->vlen;
    return 0;
}

static int append_event(mem_saga_t *s, const saga_event_t *ev, uint64_t seq,
                        const char *worker, int64_t ts) {
    if (s->nhist == s->caphist) {
        size_t ncap = s->caphist ? s->caphist * 2 : 8;
        mem_hist_t *nh = realloc(s->hist, ncap * sizeof(*nh));
        if (nh == NULL)
            return -ENOMEM;
        s->hist = nh;
        s->caphist = ncap;
    }
    const char *strs[4] = {ev->type, ev->step, ev->phase, worker ? worker : ""};
    size_t lens[4], total = ev->detail_len + 1;
    for (int i = 0; i < 4; i++)
        total += (lens[i] = strs[i] ? strlen(strs[i]) + 1 : 0);
    char *buf = malloc(total), *p = buf;
    if (buf == NULL)
        return -ENOMEM;
    const char *out[4];
    for (int i = 0; i < 4; i++) {
        out[i] = strs[i] ? memcpy(p, strs[i], lens[i]) : NULL;
        p += lens[i];
    }
    const char *detail = NULL;
    if (ev->detail != NULL) {
        memcpy(p, ev->detail, ev->detail_len);
        p[ev->detail_len] = '\0';
        detail = p;
    }
    mem_hist_t *h = &s->hist[s->nhist++];
    h->buf = buf;
    h->e = (saga_history_entry_t){ts, seq,
                                  {out[0], out[1], out[2], ev->attempt, detail,
                                   ev->detail_len},
                                  out[3]};
    return 0;
}

/* The record's fencing token is its field "fence", as in Redis (written
 * by the owner's create, bumped by a claim): empty or not a number is no
 * fence (0). */
static uint64_t fence_of(const saga_kv_t *kv) {
    uint64_t v;
    return saga_parse_u64(kv->val, kv->vlen, &v) == 0 ? v : 0;
}

static int mem_write(saga_store_t *base, const saga_store_write_t *w,
                     saga_store_write_cb cb, void *data) {
    store_memory_t *m = (store_memory_t *)base;
    if (m->closing)
        return SAGA_ECLOSING;
    int64_t ts = now_ms();
    mem_saga_t *s = live_saga(m, w->id, ts);
    int status = 0;
    /* Nothing here is ever sent twice (no connection to lose), so a write
     * whose seq the record already has is another writer's: a conflict,
     * never "already applied" (store.h). */
    if (w->flags & SAGA_WRITE_CREATE) {
        if (s != NULL)
            return enqueue(m, OP_WRITE, SAGA_EEXIST, 0, (mem_cb_t){.write = cb}, data, NULL);
        if ((s = calloc(1, sizeof(*s))) == NULL || (s->id = strdup(w->id)) == NULL) {
            free(s);
            return -ENOMEM;
        }
        if (saga_strmap_put(&m->sagas, s->id, s, NULL) != 0) {
            saga_free_rec(s);
            return -ENOMEM;
        }
    } else if (s == NULL) {
        status = SAGA_ENOTFOUND;
    } else if (s->fence != 0 && w->fence != s->fence) {
        status = SAGA_EFENCED; /* 0 too: a writer without a lease */
    } else if (s->seq + 1 != w->seq) {
        status = SAGA_ECONFLICT;
    }
    if (status != 0)
        return enqueue(m, OP_WRITE, status, 0, (mem_cb_t){.write = cb}, data, NULL);

    char seqbuf[24];
    saga_kv_t seqkv = {"seq", 3, seqbuf, saga_fmt_u64(seqbuf, w->seq)};
    status = set_field(s, &seqkv);
    for (size_t i = 0; i < w->nfields && status == 0; i++) {
        status = set_field(s, &w->fields[i]);
        if (status == 0 && w->fields[i].klen == 5 && memcmp(w->fields[i].key, "fence", 5) == 0)
            s->fence = fence_of(&w->fields[i]);
    }
    if (m->opt.keep_history)
        for (size_t i = 0; i < w->nevents && status == 0; i++)
            status = append_event(s, &w->events[i], w->seq, w->worker, ts);
    if (status != 0)
        return status; /* out of memory half-way: not durable anyway */
    s->seq = w->seq;
    if (w->flags & SAGA_WRITE_TERMINAL) {
        s->terminal = true;
        uint64_t keep = w->retention_ms != 0 ? w->retention_ms : m->opt.retention_ms;
        s->expire_at = ts + (int64_t)keep;
        if (!m->opt.keep_finished) {
            saga_strmap_del(&m->sagas, s->id);
            saga_free_rec(s);
        } else {
            gc(m, ts); /* only finished sagas kept can be due */
        }
    }
    return enqueue(m, OP_WRITE, 0, 0, (mem_cb_t){.write = cb}, data, NULL);
}

static int mem_load(saga_store_t *base, const char *id, saga_store_load_cb cb,
                    void *data) {
    store_memory_t *m = (store_memory_t *)base;
    return m->closing ? SAGA_ECLOSING : enqueue(m, OP_LOAD, 0, 0, (mem_cb_t){.load = cb}, data, id);
}

static int mem_history(saga_store_t *base, const char *id,
                       saga_store_history_cb cb, void *data) {
    store_memory_t *m = (store_memory_t *)base;
    return m->closing ? SAGA_ECLOSING
                      : enqueue(m, OP_HISTORY, 0, 0, (mem_cb_t){.history = cb}, data, id);
}

static int mem_put_definition(saga_store_t *base, const char *hash,
                              const char *text, size_t len,
                              saga_store_done_cb cb, void *data) {
    store_memory_t *m = (store_memory_t *)base;
    if (m->closing)
        return SAGA_ECLOSING;
    if (saga_strmap_get(&m->defs, hash) == NULL) {
        size_t hl = strlen(hash) + 1;
        mem_def_t *d = malloc(sizeof(*d) + hl);
        if (d == NULL || (d->text = malloc(len + 1)) == NULL) {
            free(d);
            return -ENOMEM;
        }
        memcpy(d->hash, hash, hl);
        memcpy(d->text, text, len);
        d->text[len] = '\0';
        d->len = len;
        if (saga_strmap_put(&m->defs, d->hash, d, NULL) != 0) {
            free(d->text);
            free(d);
            return -ENOMEM;
        }
    }
    return enqueue(m, OP_PUTDEF, 0, 0, (mem_cb_t){.done = cb}, data, NULL);
}

static int mem_get_definition(saga_store_t *base, const char *hash,
                              saga_store_text_cb cb, void *data) {
    store_memory_t *m = (store_memory_t *)base;
    return m->closing ? SAGA_ECLOSING
                      : enqueue(m, OP_GETDEF, 0, 0, (mem_cb_t){.text = cb}, data, hash);
}

static int mem_list_unfinished(saga_store_t *base, saga_store_ids_cb cb,
                               void *data) {
    store_memory_t *m = (store_memory_t *)base;
    return m->closing ? SAGA_ECLOSING : enqueue(m, OP_LIST, 0, 0, (mem_cb_t){.ids = cb}, data, NULL);
}

static void mem_free_all(store_memory_t *m) {
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&m->sagas, &pos, &k, &v);)
        saga_free_rec(v);
    saga_strmap_close(&m->sagas);
    for (size_t pos = 0; saga_strmap_next(&m->defs, &pos, &k, &v);) {
        free(((mem_def_t *)v)->text);
        free(v);
    }
    saga_strmap_close(&m->defs);
}

static void mem_idle_closed(uv_handle_t *h) {
    store_memory_t *m = h->data;
    void (*closed)(void *) = m->closed;
    void *data = m->closed_data;
    mem_free_all(m);
    free(m);
    if (closed != NULL)
        closed(data);
}

static void mem_close(saga_store_t *base, void (*closed)(void *), void *data) {
    store_memory_t *m = (store_memory_t *)base;
    m->closing = true;
    m->closed = closed;
    m->closed_data = data;
    /* Outstanding callbacks run now, in order (the store's contract). */
    while (m->head != NULL) {
        mem_op_t *op = m->head;
        m->head = op->next;
        if (m->head == NULL)
            m->tail = NULL;
        deliver(m, op);
        free(op);
    }
    uv_idle_stop(&m->idle);
    uv_close((uv_handle_t *)&m->idle, mem_idle_closed);
}

int saga_store_memory_expiry(saga_store_t *base, const char *id,
                             int64_t *expire_at) {
    store_memory_t *m = (store_memory_t *)base;
    mem_saga_t *s = live_saga(m, id, now_ms());
    if (s == NULL)
        return SAGA_ENOTFOUND;
    if (!s->terminal)
        return SAGA_ESTATE;
    *expire_at = s->expire_at;
    return 0;
}

static const saga_store_ops_t memory_ops = {
    .name = "memory",
    .write = mem_write,
    .load = mem_load,
    .history = mem_history,
    .put_definition = mem_put_definition,
    .get_definition = mem_get_definition,
    .list_unfinished = mem_list_unfinished,
    .close = mem_close,
};

saga_store_t *saga_store_memory_new(uv_loop_t *loop,
                                    const saga_store_memory_options_t *opt) {
    store_memory_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->base.ops = &memory_ops;
    if (opt != NULL)
        m->opt = *opt;
    if (m->opt.retention_ms == 0)
        m->opt.retention_ms = SAGA_DEFAULT_RETENTION_MS;
    saga_strmap_init(&m->sagas);
    saga_strmap_init(&m->defs);
    uv_idle_init(loop, &m->idle);
    m->idle.data = m;
    return &m->base;
}
