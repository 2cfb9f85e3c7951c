/*
 * relay.c -- the outbox relay (see relay.h and docs/outbox.md).
 *
 * One batch at a time, each one PostgreSQL transaction:
 *
 *   1. BEGIN; SELECT the oldest `batch` pending rows FOR UPDATE SKIP LOCKED
 *      (other relays skip them; a relay that dies releases them).
 *   2. Check every row; resolve each saga name to its current definition
 *      (a cache of one second) and load that definition (cached by hash);
 *      check the input against it; submit the good rows, all at once, each
 *      under its row's id (idempotent: an id submitted before enqueues
 *      nothing new and counts as delivered).
 *   3. One UPDATE marks the submitted rows delivered and writes `error` on
 *      the refused ones; COMMIT.
 *
 * Submit before mark, in that order: a relay that dies between the two
 * leaves rows undelivered and locked by nobody, and the next batch submits
 * them again, which starts nothing new. A row whose submit failed for a
 * transient reason is left out of the UPDATE (still pending) and the relay
 * backs off before the next batch.
 *
 * Wake-ups: a notification on the table's channel, the poll timer, the
 * connection becoming ready, a full batch (there may be more), the end of
 * a backoff. A wake-up during a batch runs another batch after it.
 *
 * With metrics (saga_relay_metrics()), the relay also counts its backlog
 * on its own connection every BACKLOG_EVERY_MS: never inside a batch's
 * transaction (a tick during a batch leaves the count for the batch's
 * end), one bounded query that a batch starting meanwhile waits behind.
 */
#include "relay/relay.h"
#include "relay/relay_metrics.h"
#include "relay/relay_row.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/stored_def.h"
#include "postgres/pg_conn.h"
#include "saga/errors.h"
#include "saga/state.h"
#include "store/operator.h"
#include "util/log.h"
#include "util/strmap.h"

#define NAME_TTL_MS 1000       /* how long a saga name's hash is trusted */
#define DEF_CACHE_MAX 256      /* definitions kept by hash */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_DEFAULT_MS 5000
#define BACKLOG_EVERY_MS 2000   /* the backlog is counted this often (metrics) */

typedef enum { R_PENDING, R_DELIVERED, R_REFUSED, R_TRANSIENT } row_outcome_t;

typedef struct row_s {
    char *id;
    char *saga;
    char *input;          /* JSON text of an object, or NULL when refused early */
    json_t *json;
    row_outcome_t outcome;
    bool fresh;
    double age_s;         /* its age when read, by PostgreSQL's clock */
    char *error;          /* R_REFUSED: why */
    struct batch_s *b;
} row_t;

/* What this batch learnt of one saga name. */
typedef struct bname_s {
    char *name;
    int status;               /* 0 ok, SAGA_ENOTFOUND unknown, SAGA_ECORRUPT bad
                                 definition, another code: transient */
    char hash[SAGA_DEF_HASH_LEN + 1];
    char why[256];
    struct batch_s *b;
} bname_t;

typedef struct batch_s {
    saga_relay_t *r;
    row_t *rows;
    size_t n;
    saga_strmap_t names;  /* name -> bname_t */
    size_t outstanding;   /* store calls not yet answered */
    bool transient;
    saga__relay_cause_t transient_cause;
    char transient_why[300];
    uint64_t read_ns;     /* when its rows were read (uv_hrtime) */
    bool aborted;         /* PostgreSQL went away: the transaction is gone */
    int phase;            /* 1: names and definitions; 2: submits */
} batch_t;

typedef struct name_cache_s {
    char *name;
    char hash[SAGA_DEF_HASH_LEN + 1];
    uint64_t at_ms;
} name_cache_t;

typedef struct def_cache_s {
    char hash[SAGA_DEF_HASH_LEN + 1];
    saga_def_t *def;
} def_cache_t;

typedef enum { S_IDLE, S_BUSY, S_BACKOFF } relay_state_t;

struct saga_relay_s {
    uv_loop_t *loop;
    saga_store_t *store;
    saga_pg_t *pg;
    char *conninfo;
    char *table;
    char *name;
    size_t batch_size;
    uint64_t poll_ms;
    uint64_t retention_ms;
    uint64_t backoff_max_ms;
    uint64_t backoff_ms;
    char *select_sql;
    char *update_sql;
    char *listen_sql;
    char *backlog_sql;    /* with metrics */
    uv_timer_t poll;      /* the periodic look */
    uv_timer_t backoff;   /* after a transient failure */
    uv_timer_t backlog;   /* metrics: count the backlog */
    int handles;

    relay_state_t state;
    bool listening;       /* LISTEN done on this connection */
    bool again;           /* a wake-up came during a batch */
    bool started;
    bool stopping;
    batch_t *batch;       /* the batch in flight, or NULL */
    void (*stopped)(void *);
    void *stopped_data;
    bool pg_closed;

    saga_strmap_t names;  /* name -> name_cache_t */
    saga_strmap_t defs;   /* hash -> def_cache_t */
    saga_relay_stats_t stats;
    saga__relay_metrics_t *metrics; /* NULL without opt->metrics */
    bool backlog_busy;    /* the backlog count in flight */
    bool backlog_due;     /* a count is wanted once the batch is over */
    bool warned_down;     /* "PostgreSQL unreachable" said once per outage */
};

static void fetch(saga_relay_t *r);
static void batch_write(batch_t *b);
static void on_backoff_timer(uv_timer_t *t);

static uint64_t now_ms(saga_relay_t *r) { return uv_now(r->loop); }

static const char *name_of(const saga_relay_t *r) { return r->name; }

/* ---------------------------------------------------------------------- */
/* Caches                                                                  */
/* ---------------------------------------------------------------------- */

static void defs_clear(saga_relay_t *r) {
    const char *k;
    void *v;
    for (size_t i = 0; saga_strmap_next(&r->defs, &i, &k, &v);) {
        def_cache_t *d = v;
        saga_def_free(d->def);
        free(d);
    }
    saga_strmap_close(&r->defs);
    saga_strmap_init(&r->defs);
}

static void names_clear(saga_relay_t *r) {
    const char *k;
    void *v;
    for (size_t i = 0; saga_strmap_next(&r->names, &i, &k, &v);) {
        name_cache_t *n = v;
        free(n->name);
        free(n);
    }
    saga_strmap_close(&r->names);
    saga_strmap_init(&r->names);
}

static void name_remember(saga_relay_t *r, const char *name, const char *hash) {
    name_cache_t *n = saga_strmap_get(&r->names, name);
    if (n == NULL) {
        if (r->names.count >= 4096)
            names_clear(r);
        if ((n = calloc(1, sizeof(*n))) == NULL || (n->name = strdup(name)) == NULL ||
            saga_strmap_put(&r->names, n->name, n, NULL) != 0) {
            if (n != NULL)
                free(n->name);
            free(n);
            return; /* not cached: asked again next time */
        }
    }
    memcpy(n->hash, hash, sizeof(n->hash));
    n->at_ms = now_ms(r);
}

static void def_remember(saga_relay_t *r, const char *hash, saga_def_t *def) {
    if (saga_strmap_get(&r->defs, hash) != NULL) {
        saga_def_free(def);
        return;
    }
    if (r->defs.count >= DEF_CACHE_MAX)
        defs_clear(r);
    def_cache_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        saga_def_free(def);
        return;
    }
    memcpy(d->hash, hash, sizeof(d->hash));
    d->def = def;
    if (saga_strmap_put(&r->defs, d->hash, d, NULL) != 0) {
        saga_def_free(def);
        free(d);
    }
}

/* ---------------------------------------------------------------------- */
/* Batches                                                                 */
/* ---------------------------------------------------------------------- */

static void batch_free(batch_t *b) {
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->rows[i].id);
        free(b->rows[i].saga);
        free(b->rows[i].input);
        free(b->rows[i].error);
        json_decref(b->rows[i].json);
    }
    free(b->rows);
    const char *k;
    void *v;
    for (size_t i = 0; saga_strmap_next(&b->names, &i, &k, &v);) {
        bname_t *bn = v;
        free(bn->name);
        free(bn);
    }
    saga_strmap_close(&b->names);
    free(b);
}

static void refuse(row_t *row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void transient(batch_t *b, row_t *row, saga__relay_cause_t cause, const char *why);

static void refuse(row_t *row, const char *fmt, ...) {
    char msg[SAGA_RELAY_ERROR_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    row->outcome = R_REFUSED;
    free(row->error);
    row->error = strdup(msg);
    if (row->error == NULL) {
        /* cannot even say why: leave it pending for the next batch */
        transient(row->b, row, SAGA__RELAY_CAUSE_INTERNAL, "out of memory");
    }
}

static void transient(batch_t *b, row_t *row, saga__relay_cause_t cause, const char *why) {
    if (row != NULL)
        row->outcome = R_TRANSIENT;
    if (!b->transient) {
        snprintf(b->transient_why, sizeof(b->transient_why), "%s", why);
        b->transient_cause = cause;
    }
    b->transient = true;
}

/* A row as read: checks what can be checked without the store. */
static void row_check(row_t *row, const char *size_text) {
    char err[SAGA_RELAY_ERROR_MAX + 1];
    int rc = saga_relay_row_check(row->id, row->saga, row->input, size_text, &row->json, err,
                                  sizeof(err));
    if (rc == -EINVAL)
        refuse(row, "%s", err);
    else if (rc != 0)
        transient(row->b, row, SAGA__RELAY_CAUSE_INTERNAL, "out of memory");
}

static void batch_done_if(batch_t *b);

/* ---- submit ---- */

static void on_submitted(int status, const char *why, bool fresh, void *data) {
    row_t *row = data;
    batch_t *b = row->b;
    b->outstanding--;
    if (status == 0) {
        row->outcome = R_DELIVERED;
        row->fresh = fresh;
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg), "submit of row '%s': %s", row->id,
                 why != NULL ? why : saga_strerror(status));
        transient(b, row, SAGA__RELAY_CAUSE_REDIS, msg);
    }
    batch_done_if(b);
}

static void submit_rows(batch_t *b) {
    saga_relay_t *r = b->r;
    for (size_t i = 0; i < b->n; i++) {
        row_t *row = &b->rows[i];
        if (row->outcome != R_PENDING)
            continue;
        bname_t *bn = saga_strmap_get(&b->names, row->saga);
        char q[200];
        saga_relay_quote(q, sizeof(q), row->saga);
        if (bn == NULL) {
            transient(b, row, SAGA__RELAY_CAUSE_INTERNAL, "out of memory");
            continue;
        }
        if (bn->status == SAGA_ENOTFOUND) {
            refuse(row, "unknown saga '%s': no worker ever served a saga of that name", q);
            continue;
        }
        if (bn->status == SAGA_ECORRUPT) {
            refuse(row, "the definition of saga '%s' (%.12s) cannot be used: %s", q, bn->hash,
                   bn->why);
            continue;
        }
        if (bn->status != 0) {
            transient(b, row, bn->status == -ENOMEM ? SAGA__RELAY_CAUSE_INTERNAL
                                         : SAGA__RELAY_CAUSE_REDIS, bn->why);
            continue;
        }
        def_cache_t *d = saga_strmap_get(&r->defs, bn->hash);
        if (d == NULL) {
            transient(b, row, SAGA__RELAY_CAUSE_INTERNAL,
                      "the definition went out of the cache");
            continue;
        }
        char err[512];
        if (saga_def_check_input(d->def, row->json, err, sizeof(err)) != 0) {
            refuse(row, "saga '%s': %s", q, err);
            continue;
        }
        saga_operator_submit_t req = {.id = row->id, .name = row->saga, .hash = bn->hash,
                                      .input = row->input, .retention_ms = r->retention_ms};
        int rc = saga_operator_submit(r->store, &req, on_submitted, row);
        if (rc != 0) {
            char msg[300];
            snprintf(msg, sizeof(msg), "submit of row '%s': %s", row->id, saga_strerror(rc));
            transient(b, row, SAGA__RELAY_CAUSE_REDIS, msg);
            continue;
        }
        b->outstanding++;
    }
}

/* ---- resolve names, load definitions ---- */

static void on_def(int status, const char *why, saga_def_t *def, saga_diags_t *diags,
                   void *data) {
    bname_t *bn = data;
    batch_t *b = bn->b;
    (void)diags;
    b->outstanding--;
    if (status == 0) {
        def_remember(b->r, bn->hash, def);
        if (saga_strmap_get(&b->r->defs, bn->hash) == NULL) {
            bn->status = -ENOMEM;
            snprintf(bn->why, sizeof(bn->why), "out of memory");
        }
    } else {
        bn->status = status == SAGA_ECORRUPT ? SAGA_ECORRUPT : status;
        snprintf(bn->why, sizeof(bn->why), "%s", why != NULL ? why : saga_strerror(status));
        if (status == SAGA_ENOTFOUND) /* a hash whose text is gone: not the name's fault */
            bn->status = SAGA_ECORRUPT;
    }
    batch_done_if(b);
}

static void want_def(bname_t *bn) {
    batch_t *b = bn->b;
    if (saga_strmap_get(&b->r->defs, bn->hash) != NULL)
        return;
    int rc = saga_stored_def_load(b->r->store, bn->hash, on_def, bn);
    if (rc != 0) {
        bn->status = rc;
        snprintf(bn->why, sizeof(bn->why), "cannot read the definition: %s", saga_strerror(rc));
        return;
    }
    b->outstanding++;
}

static void on_resolved(int status, const char *why, const char *hash, void *data) {
    bname_t *bn = data;
    batch_t *b = bn->b;
    b->outstanding--;
    bn->status = status;
    if (status == 0) {
        snprintf(bn->hash, sizeof(bn->hash), "%s", hash);
        name_remember(b->r, bn->name, bn->hash);
        want_def(bn);
    } else {
        snprintf(bn->why, sizeof(bn->why), "%s", why != NULL ? why : saga_strerror(status));
    }
    batch_done_if(b);
}

/* The names of the batch's pending rows: from the cache, or asked. */
static void resolve_names(batch_t *b) {
    saga_relay_t *r = b->r;
    for (size_t i = 0; i < b->n; i++) {
        row_t *row = &b->rows[i];
        if (row->outcome != R_PENDING || saga_strmap_get(&b->names, row->saga) != NULL)
            continue;
        bname_t *bn = calloc(1, sizeof(*bn));
        if (bn == NULL || (bn->name = strdup(row->saga)) == NULL ||
            saga_strmap_put(&b->names, bn->name, bn, NULL) != 0) {
            if (bn != NULL)
                free(bn->name);
            free(bn);
            transient(b, row, SAGA__RELAY_CAUSE_INTERNAL, "out of memory");
            continue;
        }
        bn->b = b;
        name_cache_t *c = saga_strmap_get(&r->names, row->saga);
        if (c != NULL && now_ms(r) - c->at_ms < NAME_TTL_MS) {
            memcpy(bn->hash, c->hash, sizeof(bn->hash));
            want_def(bn);
            continue;
        }
        int rc = saga_operator_resolve(r->store, bn->name, on_resolved, bn);
        if (rc != 0) {
            bn->status = rc;
            snprintf(bn->why, sizeof(bn->why), "cannot resolve saga '%s': %s", bn->name,
                     saga_strerror(rc));
            continue;
        }
        b->outstanding++;
    }
}

/* Every store call of a phase answered: on to the next phase. Phase one
 * resolves names and loads definitions; phase two submits. */
static void batch_done_if(batch_t *b) {
    if (b->outstanding > 0)
        return;
    if (b->phase == 1) {
        b->phase = 2;
        submit_rows(b);
        if (b->outstanding > 0)
            return;
        for (size_t i = 0; i < b->n; i++)
            if (b->rows[i].outcome == R_PENDING) /* cannot happen; never deliver unsaid */
                transient(b, &b->rows[i], SAGA__RELAY_CAUSE_INTERNAL,
                          "internal: a row was neither submitted nor refused");
    }
    batch_write(b);
}

/* ---------------------------------------------------------------------- */
/* The transaction                                                         */
/* ---------------------------------------------------------------------- */

/* ---- the backlog, for the metrics ---- */

static void on_backlog(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                       void *data) {
    saga_relay_t *r = data;
    (void)pg;
    r->backlog_busy = false;
    if (status != 0) {
        if (status != SAGA_ECLOSING && status != SAGA_EUNAVAILABLE)
            saga_debug("%s: counting the pending rows of %s: %s", name_of(r), r->table,
                       errstr != NULL ? errstr : saga_strerror(status));
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 2)
        return;
    saga__relay_metrics_backlog(r->metrics, strtod(PQgetvalue(res, 0, 0), NULL),
                                strtod(PQgetvalue(res, 0, 1), NULL));
}

/* Counts the pending rows when a count is due. Called only between
 * batches (idle or backing off, no transaction open: a batch's ROLLBACK or
 * COMMIT is queued before it), so the count never runs inside a batch's
 * transaction; a batch that starts meanwhile is queued behind it by the
 * connection (one query at a time). The count is bounded
 * (SAGA_RELAY_BACKLOG_COUNT_MAX) and walks the partial index of pending
 * rows, as does the oldest row's lookup. */
static void backlog_count(saga_relay_t *r) {
    if (r->metrics == NULL || !r->backlog_due || r->backlog_busy || r->stopping ||
        r->state == S_BUSY || r->batch != NULL || !saga_pg_ready(r->pg))
        return;
    if (saga_pg_query(r->pg, r->backlog_sql, 0, NULL, on_backlog, r) != 0)
        return;
    r->backlog_busy = true;
    r->backlog_due = false;
}

static void schedule_next(saga_relay_t *r, bool transient_failure, const char *why) {
    r->state = S_IDLE;
    if (r->stopping)
        return;
    backlog_count(r); /* one due while the batch ran */
    if (transient_failure) {
        uint64_t d = r->backoff_ms ? r->backoff_ms : BACKOFF_MIN_MS;
        saga_warn("%s: %s; next batch in %llu ms", name_of(r), why, (unsigned long long)d);
        r->backoff_ms = d * 2 > r->backoff_max_ms ? r->backoff_max_ms : d * 2;
        r->state = S_BACKOFF;
        r->again = false;
        uv_timer_start(&r->backoff, on_backoff_timer, d, 0);
        return;
    }
    r->backoff_ms = 0;
    if (r->again) {
        r->again = false;
        fetch(r);
    }
}

/* The batch is over (committed, rolled back or cut): free it, say what
 * the relay does next. */
static void batch_end(saga_relay_t *r, bool full, bool transient_failure,
                      saga__relay_cause_t cause, const char *why) {
    batch_free(r->batch);
    r->batch = NULL;
    if (transient_failure) {
        r->stats.transient++;
        saga__relay_metrics_transient(r->metrics, cause);
    }
    if (full && !transient_failure)
        r->again = true; /* there may be more */
    schedule_next(r, transient_failure, why);
}

static void on_rollback(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                        void *data) {
    (void)pg;
    (void)status;
    (void)res;
    (void)errstr;
    (void)data;
}

/* The batch cannot go on (a query failed, or memory ran out): roll back
 * when the connection still stands (else the server did), back off. */
static void batch_failed_for(saga_relay_t *r, saga__relay_cause_t cause, const char *what,
                             const char *errstr) {
    char why[600];
    snprintf(why, sizeof(why), "%s: %s", what, errstr != NULL ? errstr : "failed");
    size_t n = strlen(why);
    while (n > 0 && why[n - 1] == '\n')
        why[--n] = '\0';
    if (saga_pg_ready(r->pg))
        saga_pg_query(r->pg, "ROLLBACK", 0, NULL, on_rollback, r);
    batch_end(r, false, true, cause, why);
}

/* A query of the batch failed or could not be sent. */
static void batch_failed(saga_relay_t *r, const char *what, const char *errstr) {
    batch_failed_for(r, SAGA__RELAY_CAUSE_POSTGRES, what, errstr);
}

static void on_commit(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                      void *data) {
    saga_relay_t *r = data;
    batch_t *b = r->batch;
    (void)pg;
    (void)res;
    if (status != 0) {
        batch_failed(r, "COMMIT", errstr);
        return;
    }
    size_t delivered = 0, fresh = 0, refused = 0;
    double since_read_s = (double)(uv_hrtime() - b->read_ns) / 1e9;
    for (size_t i = 0; i < b->n; i++) {
        row_t *row = &b->rows[i];
        if (row->outcome == R_DELIVERED) {
            delivered++;
            fresh += row->fresh;
            saga__relay_metrics_delay(r->metrics, row->age_s + since_read_s);
            saga_debug("%s: row %s delivered (saga %s%s)", name_of(r), row->id, row->saga,
                       row->fresh ? "" : ", submitted before");
        } else if (row->outcome == R_REFUSED) {
            refused++;
            char q[200];
            saga_relay_quote(q, sizeof(q), row->id);
            saga_warn("%s: row '%s' refused: %s", name_of(r), q, row->error);
        }
    }
    r->stats.delivered += delivered;
    r->stats.fresh += fresh;
    r->stats.refused += refused;
    r->stats.batches++;
    saga__relay_metrics_batch(r->metrics, delivered, fresh, refused);
    bool full = b->n == r->batch_size;
    char why[400];
    snprintf(why, sizeof(why), "%s", b->transient_why);
    batch_end(r, full, b->transient, b->transient_cause, why);
}

static void on_update(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                      void *data) {
    saga_relay_t *r = data;
    (void)res;
    if (status != 0) {
        batch_failed(r, "marking the batch's rows", errstr);
        return;
    }
    int rc = saga_pg_query(pg, "COMMIT", 0, NULL, on_commit, r);
    if (rc != 0)
        batch_failed(r, "COMMIT", saga_strerror(rc));
}

/* Marks the delivered rows and the refused ones (one UPDATE), commits. */
static void batch_write(batch_t *b) {
    saga_relay_t *r = b->r;
    if (b->aborted || !saga_pg_ready(r->pg)) {
        batch_end(r, false, true, SAGA__RELAY_CAUSE_POSTGRES,
                  "the connection to PostgreSQL was lost during the batch; its rows are "
                  "taken again");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < b->n; i++) {
        row_t *row = &b->rows[i];
        if (row->outcome != R_DELIVERED && row->outcome != R_REFUSED)
            continue;
        json_t *o = json_pack("{s:s, s:s?}", "id", row->id, "error",
                              row->outcome == R_REFUSED ? row->error : NULL);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    char *text = arr != NULL ? json_dumps(arr, JSON_COMPACT) : NULL;
    size_t marked = json_array_size(arr);
    json_decref(arr);
    if (text == NULL) {
        batch_failed_for(r, SAGA__RELAY_CAUSE_INTERNAL, "marking the batch's rows",
                         "out of memory");
        return;
    }
    int rc;
    if (marked == 0)
        rc = saga_pg_query(r->pg, "COMMIT", 0, NULL, on_commit, r);
    else
        rc = saga_pg_query(r->pg, r->update_sql, 1, (const char *const *)&text, on_update, r);
    free(text);
    if (rc != 0)
        batch_failed(r, "marking the batch's rows", saga_strerror(rc));
}

static void on_rows(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                    void *data) {
    saga_relay_t *r = data;
    (void)pg;
    if (status != 0) {
        char what[200];
        snprintf(what, sizeof(what), "reading %s", r->table);
        batch_failed(r, what, errstr);
        return;
    }
    int n = PQntuples(res);
    batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL || (n > 0 && (b->rows = calloc((size_t)n, sizeof(row_t))) == NULL)) {
        free(b);
        batch_failed_for(r, SAGA__RELAY_CAUSE_INTERNAL, "reading rows", "out of memory");
        return;
    }
    b->r = r;
    b->read_ns = uv_hrtime();
    saga_strmap_init(&b->names);
    r->batch = b;
    for (int i = 0; i < n; i++) {
        row_t *row = &b->rows[i];
        row->b = b;
        row->id = strdup(PQgetvalue(res, i, 0));
        row->saga = strdup(PQgetvalue(res, i, 1));
        row->age_s = strtod(PQgetvalue(res, i, 4), NULL);
        if (!PQgetisnull(res, i, 3))
            row->input = strdup(PQgetvalue(res, i, 3));
        b->n++;
        if (row->id == NULL || row->saga == NULL || (!PQgetisnull(res, i, 3) && !row->input)) {
            batch_failed_for(r, SAGA__RELAY_CAUSE_INTERNAL, "reading rows",
                             "out of memory");
            return;
        }
        row_check(row, PQgetvalue(res, i, 2));
    }
    if (n == 0) {
        int rc = saga_pg_query(r->pg, "COMMIT", 0, NULL, on_commit, r);
        if (rc != 0)
            batch_failed(r, "COMMIT", saga_strerror(rc));
        return;
    }
    b->phase = 1;
    b->outstanding++; /* held while the calls are made */
    resolve_names(b);
    b->outstanding--;
    batch_done_if(b);
}

static void fetch(saga_relay_t *r) {
    if (r->stopping || r->state != S_IDLE || !r->listening || !saga_pg_ready(r->pg))
        return;
    r->state = S_BUSY;
    int rc = saga_pg_query(r->pg, r->select_sql, 0, NULL, on_rows, r);
    if (rc != 0) {
        r->state = S_IDLE;
        saga_warn("%s: cannot read %s: %s", name_of(r), r->table, saga_strerror(rc));
    }
}

/* A wake-up: now when idle, after the batch when busy. */
static void wake(saga_relay_t *r) {
    if (r->state == S_BUSY)
        r->again = true;
    else if (r->state == S_IDLE)
        fetch(r);
}

/* ---------------------------------------------------------------------- */
/* Timers, connection events                                               */
/* ---------------------------------------------------------------------- */

static void on_poll_timer(uv_timer_t *t) { wake(t->data); }

/* A count is due: now when no batch runs, else at the batch's end. */
static void on_backlog_timer(uv_timer_t *t) {
    saga_relay_t *r = t->data;
    r->backlog_due = true;
    backlog_count(r);
}

static void on_backoff_timer(uv_timer_t *t) {
    saga_relay_t *r = t->data;
    if (r->state == S_BACKOFF) {
        r->state = S_IDLE;
        fetch(r);
    }
}

static void on_listen(saga_pg_t *pg, int status, const PGresult *res, const char *errstr,
                      void *data) {
    saga_relay_t *r = data;
    (void)pg;
    (void)res;
    if (status != 0) {
        if (status != SAGA_ECLOSING && status != SAGA_EUNAVAILABLE)
            saga_error("%s: LISTEN on %s: %s", name_of(r), r->table, errstr);
        return; /* the next READY tries again */
    }
    r->listening = true;
    if (r->state == S_IDLE)
        fetch(r);
}

static void on_notify(saga_pg_t *pg, const char *channel, const char *payload, void *data) {
    saga_relay_t *r = data;
    (void)pg;
    (void)payload;
    if (strcmp(channel, r->table) == 0)
        wake(r);
}

static void on_pg_event(saga_pg_t *pg, saga_pg_event_t ev, const char *errstr, void *data) {
    saga_relay_t *r = data;
    switch (ev) {
    case SAGA_PG_READY:
        saga_info("%s: connected to PostgreSQL (%s)", name_of(r), saga_pg_display(pg));
        r->warned_down = false;
        r->listening = false;
        saga__relay_metrics_connected(r->metrics, true);
        if (saga_pg_query(pg, r->listen_sql, 0, NULL, on_listen, r) != 0)
            saga_error("%s: cannot send LISTEN", name_of(r));
        break;
    case SAGA_PG_LOST:
        saga_warn("%s: lost PostgreSQL (%s): %s; reconnecting", name_of(r),
                  saga_pg_display(pg), errstr);
        r->listening = false;
        saga__relay_metrics_connected(r->metrics, false);
        if (r->batch != NULL)
            r->batch->aborted = true;
        break;
    case SAGA_PG_CONNECT_FAILED:
        if (!r->warned_down)
            saga_warn("%s: cannot connect to PostgreSQL (%s): %s; retrying", name_of(r),
                      saga_pg_display(pg), errstr);
        r->warned_down = true;
        break;
    }
}

/* ---------------------------------------------------------------------- */
/* Public                                                                  */
/* ---------------------------------------------------------------------- */

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s != NULL) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

saga_relay_t *saga_relay_new(uv_loop_t *loop, saga_store_t *store,
                             const saga_relay_options_t *opt, char *err, size_t errlen) {
    char perr[400];
    const char *table = opt->table != NULL ? opt->table : SAGA_RELAY_TABLE_DEFAULT;
    if (opt->postgres == NULL) {
        snprintf(err, errlen, "no PostgreSQL connection string");
        return NULL;
    }
    int rc = saga_pg_conninfo_check(opt->postgres, perr, sizeof(perr));
    if (rc != 0) {
        snprintf(err, errlen, "the PostgreSQL connection string: %s", perr);
        return NULL;
    }
    if (!saga_relay_table_valid(table)) {
        snprintf(err, errlen, "table '%s' is not a table name this relay takes (name or "
                 "schema.name, lower-case letters, digits and '_', at most 55 each)", table);
        return NULL;
    }
    if (opt->batch > SAGA_RELAY_BATCH_MAX) {
        snprintf(err, errlen, "batch %zu is over %d", opt->batch, SAGA_RELAY_BATCH_MAX);
        return NULL;
    }
    saga_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto nomem;
    r->loop = loop;
    r->store = store;
    r->batch_size = opt->batch ? opt->batch : SAGA_RELAY_BATCH_DEFAULT;
    r->poll_ms = opt->poll_ms ? opt->poll_ms : SAGA_RELAY_POLL_DEFAULT_MS;
    r->retention_ms = opt->retention_ms;
    r->backoff_max_ms = opt->backoff_max_ms ? opt->backoff_max_ms : BACKOFF_MAX_DEFAULT_MS;
    saga_strmap_init(&r->names);
    saga_strmap_init(&r->defs);
    r->conninfo = strdup(opt->postgres);
    r->table = strdup(table);
    r->name = strdup(opt->name != NULL ? opt->name : "relay");
    r->select_sql = fmt_alloc(
        "BEGIN; SELECT id, saga, octet_length(input::text), "
        "CASE WHEN octet_length(input::text) <= %u THEN input::text END, "
        "extract(epoch FROM clock_timestamp() - created_at) "
        "FROM %s WHERE delivered_at IS NULL AND error IS NULL "
        "ORDER BY created_at, id LIMIT %zu FOR UPDATE SKIP LOCKED",
        SAGA_RELAY_INPUT_MAX, table, r->batch_size);
    r->update_sql = fmt_alloc(
        "UPDATE %s AS t SET delivered_at = CASE WHEN m.error IS NULL THEN clock_timestamp() "
        "END, error = m.error FROM jsonb_to_recordset($1::jsonb) AS m(id text, error text) "
        "WHERE t.id = m.id", table);
    r->listen_sql = fmt_alloc("LISTEN \"%s\"", table);
    if (!r->conninfo || !r->table || !r->name || !r->select_sql || !r->update_sql ||
        !r->listen_sql)
        goto nomem;
    if (opt->metrics) {
        r->backlog_sql = fmt_alloc(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM %s WHERE delivered_at IS NULL "
            "AND error IS NULL LIMIT %d) AS p), "
            "coalesce((SELECT extract(epoch FROM clock_timestamp() - min(created_at)) "
            "FROM %s WHERE delivered_at IS NULL AND error IS NULL), 0)",
            table, SAGA_RELAY_BACKLOG_COUNT_MAX, table);
        if (r->backlog_sql == NULL || (r->metrics = saga__relay_metrics_new()) == NULL)
            goto nomem;
    }
    saga_pg_options_t po = {.application_name = "saga relay"};
    r->pg = saga_pg_new(loop, r->conninfo, &po, on_pg_event, on_notify, r);
    if (r->pg == NULL)
        goto nomem;
    uv_timer_init(loop, &r->poll);
    uv_timer_init(loop, &r->backoff);
    uv_timer_init(loop, &r->backlog);
    r->poll.data = r->backoff.data = r->backlog.data = r;
    r->handles = 3;
    return r;
nomem:
    snprintf(err, errlen, "out of memory");
    if (r != NULL) {
        free(r->conninfo);
        free(r->table);
        free(r->name);
        free(r->select_sql);
        free(r->update_sql);
        free(r->listen_sql);
        free(r->backlog_sql);
        saga__relay_metrics_free(r->metrics);
        free(r);
    }
    return NULL;
}

int saga_relay_start(saga_relay_t *r) {
    if (r->started)
        return -EALREADY;
    r->started = true;
    int rc = saga_pg_start(r->pg);
    if (rc != 0)
        return rc;
    uv_timer_start(&r->poll, on_poll_timer, r->poll_ms, r->poll_ms);
    if (r->metrics != NULL)
        uv_timer_start(&r->backlog, on_backlog_timer, 0, BACKLOG_EVERY_MS);
    saga_info("%s: relaying %s from PostgreSQL (%s), batches of %zu, polling every %llu ms",
              name_of(r), r->table, saga_pg_display(r->pg), r->batch_size,
              (unsigned long long)r->poll_ms);
    return 0;
}

static void stop_finish_if(saga_relay_t *r) {
    if (r->handles > 0 || !r->pg_closed)
        return;
    void (*cb)(void *) = r->stopped;
    r->stopped = NULL;
    if (cb != NULL)
        cb(r->stopped_data);
}

static void on_timer_closed(uv_handle_t *h) {
    saga_relay_t *r = h->data;
    r->handles--;
    stop_finish_if(r);
}

static void on_pg_closed(void *data) {
    saga_relay_t *r = data;
    r->pg = NULL;
    r->pg_closed = true;
    stop_finish_if(r);
}

/* Once no batch is in flight: close the connection and the timers. */
static void stop_close(saga_relay_t *r) {
    if (r->batch != NULL || r->state == S_BUSY || r->pg == NULL || r->pg_closed)
        return;
    saga_pg_t *pg = r->pg;
    uv_close((uv_handle_t *)&r->poll, on_timer_closed);
    uv_close((uv_handle_t *)&r->backoff, on_timer_closed);
    uv_close((uv_handle_t *)&r->backlog, on_timer_closed);
    saga_pg_close(pg, on_pg_closed, r);
}

static void on_stop_check(uv_timer_t *t) {
    saga_relay_t *r = t->data;
    if (r->batch == NULL && r->state != S_BUSY)
        stop_close(r);
}

void saga_relay_stop(saga_relay_t *r, void (*stopped)(void *data), void *data) {
    if (r->stopping)
        return;
    r->stopping = true;
    r->stopped = stopped;
    r->stopped_data = data;
    uv_timer_stop(&r->backoff);
    uv_timer_stop(&r->backlog);
    if (r->state == S_BACKOFF)
        r->state = S_IDLE;
    /* the poll timer now checks, from the loop, whether the batch is over */
    uv_timer_start(&r->poll, on_stop_check, 0, 10);
}

saga_relay_stats_t saga_relay_stats(const saga_relay_t *r) { return r->stats; }

int saga_relay_metrics(const saga_relay_t *r, FILE *out) {
    if (r->metrics == NULL)
        return -ENOTSUP;
    return saga__relay_metrics_write(r->metrics, out);
}

void saga_relay_free(saga_relay_t *r) {
    if (r == NULL)
        return;
    batch_free(r->batch);
    defs_clear(r);
    names_clear(r);
    saga_strmap_close(&r->defs);
    saga_strmap_close(&r->names);
    free(r->conninfo);
    free(r->table);
    free(r->name);
    free(r->select_sql);
    free(r->update_sql);
    free(r->listen_sql);
    free(r->backlog_sql);
    saga__relay_metrics_free(r->metrics);
    free(r);
}
