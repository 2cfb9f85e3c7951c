/*
 * api.c -- the /v1 routes (api.h, docs/api.md).
 *
 * Each request that needs the store gets an `op`: it holds the request
 * until the store answers, and forgets it when the client goes away first
 * (the request's gone hook), so a late answer is dropped, never written to
 * freed memory. Definitions are parsed once per hash and kept; a saga
 * name's current hash is remembered for a second (NAME_TTL_MS), so that a
 * submit costs one Redis call in the steady state.
 *
 * Long-polls (GET /v1/sagas/{id}?wait=...) cost a timer (their deadline)
 * and an entry in the group of their saga; nothing polls. Redis pushes the
 * id of each saga that settles (completed, compensated or stuck:
 * store/settled.h), and the group of that id is answered. A waiter is
 * registered before its saga's state is first read, so a settlement between
 * the read and the registration cannot be missed; after each (re)start of
 * the subscription every waiting saga is read once more, since what was
 * published while it was down is lost. A deadline answers with the state
 * as it is then.
 */
#include "http/api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/stored_def.h"
#include "core/summary.h"
#include "http/api_body.h"
#include "openapi_json.h"
#include "saga/errors.h"
#include "saga/state.h"
#include "store/gauges.h"
#include "store/operator.h"
#include "store/settled.h"
#include "store/store_redis.h"
#include "util/log.h"
#include "util/strmap.h"

#define NAME_TTL_MS 1000u
#define WAIT_MAX_MS 60000u
#define LIST_DEFAULT 50u
#define LIST_MAX 1000u

typedef struct name_entry_s {
    char hash[SAGA_DEF_HASH_LEN + 1];
    uint64_t at_ms;
} name_entry_t;

typedef struct waiter_s waiter_t;
typedef struct wgroup_s wgroup_t;

struct saga_api_s {
    uv_loop_t *loop;
    saga_store_t *store;
    char *who;
    uint64_t retention_ms;
    saga_http_server_t *server;
    saga_strmap_t defs;    /* hash -> saga_def_t */
    saga_strmap_t names;   /* name -> name_entry_t (keys owned) */
    saga_strmap_t groups;  /* saga id -> wgroup_t: the long-polls */
    size_t nwaiters;
    size_t pending;        /* ops waiting on the store + waiters */
    saga_settled_t *settled; /* settlements pushed by Redis, or NULL */
    uv_timer_t reread;     /* a read of waiting sagas failed: again soon */
    bool stopping;
    bool abandoned;        /* saga_api_abandon(): requests waiting on the
                              store were answered 503; new ones are too */
    struct op_s *ops;      /* every op alive, doubly linked */
    saga_http_route_t routes[14];
    saga_gauges_t gauges;  /* the last reading, for a second */
    uint64_t gauges_at_ms;
    bool have_gauges;
    void (*done)(void *);
    void *done_data;
};

/* ---------------------------------------------------------------------- */
/* Common                                                                  */
/* ---------------------------------------------------------------------- */

static uint64_t now_ms(const saga_api_t *api) { return uv_now(api->loop); }

/* The HTTP answer to a store status that is not success. */
static void answer_store_error(saga_http_req_t *r, int status, const char *why,
                               const char *what) {
    switch (status) {
    case SAGA_ENOTFOUND:
        saga_http_respond_error(r, 404, "not_found", "%s: %s", what, why ? why : "not found");
        break;
    case SAGA_ESTATE:
        saga_http_respond_error(r, 409, "conflict", "%s: %s", what, why ? why : "not allowed now");
        break;
    case SAGA_EUNAVAILABLE:
        saga_http_respond_error(r, 503, "store_unavailable",
                                "%s: Redis is unreachable right now (%s); try again", what,
                                why ? why : saga_strerror(status));
        break;
    case SAGA_ECORRUPT:
        saga_http_respond_error(r, 500, "corrupt_record", "%s: %s", what,
                                why ? why : saga_strerror(status));
        break;
    default:
        saga_http_respond_error(r, 500, "store_error", "%s: %s", what,
                                why ? why : saga_strerror(status));
        break;
    }
}

/* A store call that returned an error at once (its callback never runs). */
static void answer_call_failed(saga_http_req_t *r, int rc, const char *what) {
    if (rc == SAGA_EUNAVAILABLE || rc == -ENOTCONN)
        saga_http_respond_error(r, 503, "store_unavailable",
                                "%s: Redis is unreachable right now; try again", what);
    else if (rc == -ENOMEM)
        saga_http_respond_error(r, 500, "internal", "%s: out of memory", what);
    else
        saga_http_respond_error(r, 500, "store_error", "%s: %s", what, saga_strerror(rc));
}

/* True (with 503 answered) when Redis is away: a request sent now would
 * wait in the store until it is back, and the API answers at once instead. */
static bool store_away(saga_api_t *api, saga_http_req_t *r) {
    if (saga_store_redis_available(api->store))
        return false;
    saga_http_respond_error(r, 503, "store_unavailable",
                            "Redis is unreachable right now; try again");
    return true;
}

/* An id from the path: valid, or a 400 answered. */
static const char *path_id(saga_http_req_t *r) {
    const char *id = saga_http_req_param(r, 0);
    if (id == NULL || !saga_id_valid(id)) {
        saga_http_respond_error(r, 400, "invalid_id",
                                "a saga id is 1 to %d letters, digits, '.', '_', ':' or '-'",
                                SAGA_ID_MAX);
        return NULL;
    }
    return id;
}

/* A pending operation on behalf of one request. */
typedef struct op_s {
    struct op_s *prev, *next;    /* in api->ops */
    saga_api_t *api;
    saga_http_req_t *r;          /* NULL once the client went away */
    char id[SAGA_ID_MAX + 1];
    char name[130];
    char hash[SAGA_DEF_HASH_LEN + 1];
    json_t *input;
    saga_record_t rec;           /* a copy, for status */
    bool have_rec;
    bool fresh;
    int status;
    uint64_t wait_ms;            /* POST /v1/sagas?wait=: then a long-poll */
    const char *kind;            /* "cancel" / "retry" */
    struct defs_walk_s *walk;    /* GET /v1/definitions */
    json_t *workers;             /* GET /v1/definitions/{name}: who serves it */
} op_t;

static void op_gone(void *data) {
    op_t *op = data;
    op->r = NULL;
}

#define ABANDONED_MESSAGE "Redis did not answer before the server stopped; try again"

static op_t *op_new(saga_api_t *api, saga_http_req_t *r) {
    if (api->abandoned) { /* stopping, and Redis does not answer */
        saga_http_respond_error(r, 503, "store_unavailable", ABANDONED_MESSAGE);
        return NULL;
    }
    op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        saga_http_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    op->api = api;
    op->r = r;
    op->next = api->ops;
    if (api->ops != NULL)
        api->ops->prev = op;
    api->ops = op;
    saga_http_req_on_gone(r, op_gone, op);
    api->pending++;
    return op;
}

static void op_free(op_t *op) {
    if (op->r != NULL)
        saga_http_req_on_gone(op->r, NULL, NULL);
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        op->api->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->api->pending--;
    json_decref(op->input);
    json_decref(op->workers);
    if (op->have_rec)
        saga_record_free(&op->rec);
    free(op);
}

/* Ends an op with the answer to a store status that is not success. */
static void op_fail(op_t *op, int status, const char *why, const char *what) {
    if (op->r != NULL)
        answer_store_error(op->r, status, why, what);
    op_free(op);
}

/* Ends an op whose store call returned an error at once. */
static void op_call_failed(op_t *op, int rc, const char *what) {
    if (op->r != NULL)
        answer_call_failed(op->r, rc, what);
    op_free(op);
}

/* The op of a request on the saga named by the path: NULL (with the answer
 * given) when Redis is away, the id is not an id, or memory is short. */
static op_t *op_for_saga(saga_api_t *api, saga_http_req_t *r) {
    if (store_away(api, r))
        return NULL;
    const char *id = path_id(r);
    if (id == NULL)
        return NULL;
    op_t *op = op_new(api, r);
    if (op != NULL)
        snprintf(op->id, sizeof(op->id), "%s", id);
    return op;
}

/* ---------------------------------------------------------------------- */
/* Definitions by hash, names by time                                      */
/* ---------------------------------------------------------------------- */

typedef void (*def_cb)(op_t *op, int status, const saga_def_t *def);

typedef struct def_fetch_s {
    op_t *op;
    def_cb cb;
} def_fetch_t;

static void on_stored_def(int status, const char *why, saga_def_t *nd, saga_diags_t *diags,
                          void *data) {
    def_fetch_t *f = data;
    saga_api_t *api = f->op->api;
    const saga_def_t *def = NULL;
    if (status != 0) {
        if (status == SAGA_ECORRUPT)
            saga_warn("http: a stored definition cannot be used: %s", why ? why : "corrupt");
    } else if ((def = saga_strmap_get(&api->defs, nd->hash)) != NULL) {
        saga_def_free(nd); /* another request parsed it meanwhile */
    } else if (saga_strmap_put(&api->defs, nd->hash, nd, NULL) != 0) {
        saga_def_free(nd);
        status = -ENOMEM;
    } else {
        def = nd;
    }
    op_t *op = f->op;
    def_cb cb = f->cb;
    free(f);
    cb(op, def != NULL ? 0 : status, def);
}

/* Runs cb with the parsed definition of `hash` (now when known). */
static void with_def(op_t *op, const char *hash, def_cb cb) {
    saga_api_t *api = op->api;
    const saga_def_t *def = saga_strmap_get(&api->defs, hash);
    if (def != NULL) {
        cb(op, 0, def);
        return;
    }
    def_fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        cb(op, -ENOMEM, NULL);
        return;
    }
    f->op = op;
    f->cb = cb;
    int rc = saga_stored_def_load(api->store, hash, on_stored_def, f);
    if (rc != 0) {
        free(f);
        cb(op, rc, NULL);
    }
}

static void names_clear(saga_api_t *api) {
    size_t pos = 0;
    const char *k;
    void *v;
    while (saga_strmap_next(&api->names, &pos, &k, &v)) {
        free((char *)k);
        free(v);
    }
    saga_strmap_close(&api->names);
    saga_strmap_init(&api->names);
}

static void name_remember(saga_api_t *api, const char *name, const char *hash) {
    name_entry_t *e = saga_strmap_get(&api->names, name);
    if (e == NULL) {
        if (api->names.count >= 4096)
            names_clear(api); /* many names: start over rather than grow */
        char *k = strdup(name);
        e = calloc(1, sizeof(*e));
        if (k == NULL || e == NULL || saga_strmap_put(&api->names, k, e, NULL) != 0) {
            free(k);
            free(e);
            return;
        }
    }
    snprintf(e->hash, sizeof(e->hash), "%s", hash);
    e->at_ms = now_ms(api);
}

/* ---------------------------------------------------------------------- */
/* The status document                                                     */
/* ---------------------------------------------------------------------- */

/* Answers `status` with the saga's status document (+ "finished"). */
static void status_doc_def(op_t *op, int st, const saga_def_t *def) {
    if (op->r != NULL) {
        json_t *doc = saga_summary_status(&op->rec, st == 0 ? def : NULL);
        if (doc != NULL) {
            saga_state_t s;
            const char *state = json_string_value(json_object_get(doc, "state"));
            bool fin = state != NULL && saga_state_parse(state, &s) == 0 && saga_state_terminal(s);
            json_object_set_new(doc, "finished", json_boolean(fin));
        }
        saga_http_respond_json(op->r, op->status, doc);
    }
    op_free(op);
}

static void on_submitted_state(int status, const char *why, const saga_operator_state_t *st,
                               void *data);

static void on_status_record(int status, const saga_record_t *rec, void *data) {
    op_t *op = data;
    if (op->r == NULL) {
        op_free(op);
        return;
    }
    if (status == SAGA_ENOTFOUND) {
        /* no record: submitted and waiting for a worker, or unknown */
        int rc = saga_operator_state(op->api->store, op->id, on_submitted_state, op);
        if (rc != 0) {
            op_call_failed(op, rc, op->id);
        }
        return;
    }
    if (status != 0) {
        op_fail(op, status, NULL, op->id);
        return;
    }
    if (saga_record_copy(&op->rec, rec) != 0) {
        saga_http_respond_error(op->r, 500, "internal", "out of memory");
        op_free(op);
        return;
    }
    op->have_rec = true;
    size_t hl;
    const char *hash = saga_record_get(&op->rec, "def", &hl);
    if (hash == NULL || hl != SAGA_DEF_HASH_LEN) {
        status_doc_def(op, SAGA_ENOTFOUND, NULL);
        return;
    }
    char h[SAGA_DEF_HASH_LEN + 1];
    memcpy(h, hash, hl);
    h[hl] = '\0';
    with_def(op, h, status_doc_def);
}

static void on_submitted_state(int status, const char *why, const saga_operator_state_t *st,
                               void *data) {
    op_t *op = data;
    if (op->r != NULL) {
        if (status == 0 && !st->created && st->submitted) {
            saga_http_respond_json(op->r, op->status,
                                   json_pack("{s:s, s:s, s:b}", "id", op->id, "state",
                                             "submitted", "finished", 0));
        } else if (status == 0 && st->created) {
            /* created meanwhile: read it again */
            int rc = op->api->store->ops->load(op->api->store, op->id, on_status_record, op);
            if (rc == 0)
                return;
            answer_call_failed(op->r, rc, op->id);
        } else if (status == 0 || status == SAGA_ENOTFOUND) {
            saga_http_respond_error(op->r, 404, "not_found", "no saga %s", op->id);
        } else {
            answer_store_error(op->r, status, why, op->id);
        }
    }
    op_free(op);
}

/* Answers op's request with the status document of op->id and `http`. */
static void answer_status(op_t *op, int http) {
    op->status = http;
    int rc = op->api->store->ops->load(op->api->store, op->id, on_status_record, op);
    if (rc != 0) {
        op_call_failed(op, rc, op->id);
    }
}

/* ---------------------------------------------------------------------- */
/* Long-polls                                                              */
/* ---------------------------------------------------------------------- */

/* The waiters of one saga. Freed once it has none and no read in flight. */
struct wgroup_s {
    char id[SAGA_ID_MAX + 1];   /* the key in api->groups */
    saga_api_t *api;
    waiter_t *head;             /* its waiters, doubly linked */
    bool reading;               /* a state read for them is in flight */
    bool reread;                /* read again when it answers: a waiter
                                   joined, or the subscription restarted,
                                   after it was sent */
    bool answering;             /* group_answer() is at work on it */
};

struct waiter_s {
    waiter_t *prev, *next;      /* in its group */
    wgroup_t *g;                /* NULL once answered or gone */
    saga_api_t *api;
    saga_http_req_t *r;         /* NULL once answered or gone */
    int http;                   /* the answer's status: 200, or 201 for a
                                   saga the request created */
    uv_timer_t deadline;        /* freed in its close callback */
};

static void group_read(wgroup_t *g, saga_api_t *api);
static void reread_later(saga_api_t *api);

static void group_maybe_free(saga_api_t *api, wgroup_t *g) {
    if (g->head != NULL || g->reading || g->answering)
        return;
    saga_strmap_del(&api->groups, g->id);
    free(g);
}

static void on_deadline_closed(uv_handle_t *h) {
    waiter_t *w = h->data;
    w->api->pending--;
    free(w);
}

/* Takes `w` out of its group and closes its timer (which frees it). */
static void waiter_end(waiter_t *w) {
    saga_api_t *api = w->api;
    wgroup_t *g = w->g;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        g->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->g = NULL;
    api->nwaiters--;
    uv_close((uv_handle_t *)&w->deadline, on_deadline_closed);
    group_maybe_free(api, g);
}

static void waiter_gone(void *data) {
    waiter_t *w = data;
    w->r = NULL;
    waiter_end(w);
}

/* Answers a waiter with the saga's status document now. */
static void waiter_answer(waiter_t *w) {
    saga_http_req_t *r = w->r;
    saga_api_t *api = w->api;
    int http = w->http;
    w->r = NULL;
    saga_http_req_on_gone(r, NULL, NULL);
    char id[SAGA_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", w->g->id);
    waiter_end(w);
    if (store_away(api, r)) /* answered 503 now: a read would wait for Redis */
        return;
    op_t *op = op_new(api, r);
    if (op != NULL) {
        snprintf(op->id, sizeof(op->id), "%s", id);
        answer_status(op, http);
    }
}

/* Answers every waiter of a group (which may be freed). */
static void group_answer(saga_api_t *api, wgroup_t *g) {
    g->answering = true; /* keeps g while its waiters go */
    while (g->head != NULL)
        waiter_answer(g->head);
    g->answering = false;
    group_maybe_free(api, g);
}

static void on_group_state(int status, const char *why, const saga_operator_state_t *st,
                           void *data) {
    wgroup_t *g = data;
    saga_api_t *api = g->api;
    g->reading = false;
    api->pending--;
    if (g->head == NULL) { /* every waiter went meanwhile */
        group_maybe_free(api, g);
        return;
    }
    bool settled = status == 0 && st->created &&
                   (saga_state_terminal(st->state) || st->state == SAGA_STATE_STUCK);
    if (settled) {
        group_answer(api, g);
        return;
    }
    if (status == SAGA_EUNAVAILABLE)
        reread_later(api); /* the connection went: ask again once it is back */
    else if (g->reread) { /* (another failure: the deadline answers with it) */
        g->reread = false;
        group_read(g, api);
    }
}

/* Reads the saga's state for its waiters: settled already, or not yet. */
static void group_read(wgroup_t *g, saga_api_t *api) {
    if (g->reading) {
        g->reread = true;
        return;
    }
    if (saga_operator_state(api->store, g->id, on_group_state, g) == 0) {
        g->reading = true;
        api->pending++;
    } else {
        reread_later(api); /* Redis is away */
    }
}

/* Reads every waiting saga again (those with a read in flight once more
 * after it). */
static void reread_all(saga_api_t *api) {
    size_t pos = 0;
    const char *k;
    void *v;
    while (saga_strmap_next(&api->groups, &pos, &k, &v))
        group_read(v, api);
}

#define REREAD_MS 100u

static void on_reread(uv_timer_t *t) {
    saga_api_t *api = t->data;
    if (!saga_store_redis_available(api->store)) {
        uv_timer_start(&api->reread, on_reread, REREAD_MS, 0);
        return;
    }
    reread_all(api);
}

/* A read of a waiting saga could not be made or answered (Redis away, or
 * its connection not back yet while the subscription already is): read
 * them all again once the store is connected, checked every REREAD_MS by
 * one timer. Until then a settlement may have been missed; the deadline
 * answers regardless. */
static void reread_later(saga_api_t *api) {
    if (!api->stopping && !uv_is_active((uv_handle_t *)&api->reread))
        uv_timer_start(&api->reread, on_reread, REREAD_MS, 0);
}

/* A saga settled (id), or the subscription (re)started (NULL): what was
 * published before it is lost, so every waiting saga is read again. A
 * message is a hint, not the state: the saga is read, and its waiters are
 * answered only if it has settled (a message published for an earlier
 * settlement, before a retry, can arrive after a new wait began). */
static void on_settled(const char *id, void *data) {
    saga_api_t *api = data;
    if (id != NULL) {
        wgroup_t *g = saga_strmap_get(&api->groups, id);
        if (g != NULL && g->head != NULL)
            group_read(g, api);
        return;
    }
    reread_all(api);
}

static void on_deadline(uv_timer_t *t) {
    /* the wait is over: answer with the state as it is */
    waiter_answer(t->data);
}

/* A wait as definitions write durations ("500ms", "2s", "1m"), at most
 * WAIT_MAX_MS. Returns 0 or -EINVAL. */
static int parse_wait(const char *s, uint64_t *out) {
    uint64_t ms;
    if (saga_duration_parse(s, &ms) != 0 || ms > WAIT_MAX_MS)
        return -EINVAL;
    *out = ms;
    return 0;
}

/* Parks the request until the saga settles or the wait ends, then answers
 * its status document with `http`. The waiter is registered before the
 * first read of the state, so a settlement published after that read is
 * not missed. */
static void wait_for(saga_api_t *api, saga_http_req_t *r, const char *id, uint64_t wait_ms,
                     int http) {
    wgroup_t *g = saga_strmap_get(&api->groups, id);
    bool fresh = g == NULL;
    waiter_t *w = calloc(1, sizeof(*w));
    if (fresh && w != NULL && (g = calloc(1, sizeof(*g))) != NULL) {
        snprintf(g->id, sizeof(g->id), "%s", id);
        g->api = api;
        if (saga_strmap_put(&api->groups, g->id, g, NULL) != 0) {
            free(g);
            g = NULL;
        }
    }
    if (w == NULL || g == NULL) {
        free(w);
        saga_http_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    uv_timer_init(api->loop, &w->deadline); /* cannot fail */
    w->deadline.data = w;
    uv_timer_start(&w->deadline, on_deadline, wait_ms, 0);
    w->api = api;
    w->r = r;
    w->http = http;
    w->g = g;
    w->next = g->head;
    if (g->head != NULL)
        g->head->prev = w;
    g->head = w;
    api->nwaiters++;
    api->pending++;
    saga_http_req_on_gone(r, waiter_gone, w);
    saga_http_req_park(r);
    group_read(g, api);
}

/* ---------------------------------------------------------------------- */
/* Routes                                                                  */
/* ---------------------------------------------------------------------- */

static void h_healthz(saga_http_req_t *r, void *data) {
    saga_http_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void on_ready_state(int status, const char *why, const saga_operator_state_t *st,
                           void *data) {
    op_t *op = data;
    if (op->r != NULL) {
        if (status == 0 || status == SAGA_ENOTFOUND)
            saga_http_respond_json(op->r, 200, json_pack("{s:s}", "status", "ready"));
        else
            saga_http_respond_error(op->r, 503, "store_unavailable", "Redis: %s",
                                    why ? why : saga_strerror(status));
    }
    op_free(op);
}

/* Ready when Redis answers a call of the function library. */
static void h_readyz(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (!saga_store_redis_available(api->store)) {
        saga_http_respond_error(r, 503, "store_unavailable",
                                "Redis: not connected, or its function library is not loaded");
        return;
    }
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    int rc = saga_operator_state(api->store, "readyz-probe", on_ready_state, op);
    if (rc != 0) {
        saga_http_respond_error(r, 503, "store_unavailable", "Redis: %s",
                                rc == SAGA_EUNAVAILABLE ? "not connected" : saga_strerror(rc));
        op_free(op);
    }
}

#define GAUGES_TTL_MS 1000u

/* The metrics text: the server's, the long-polls, and the store's gauges
 * (g NULL: Redis could not be read, saga_store_up 0). */
typedef struct metrics_src_s {
    saga_api_t *api;
    const saga_gauges_t *g;
} metrics_src_t;

static int metrics_write(FILE *f, void *data) {
    const metrics_src_t *src = data;
    saga_api_t *api = src->api;
    const saga_gauges_t *g = src->g;
    if (api->server != NULL)
        saga_http_server_metrics(api->server, f);
    fprintf(f,
            "# HELP saga_http_long_polls Requests waiting for a saga to settle.\n"
            "# TYPE saga_http_long_polls gauge\n"
            "saga_http_long_polls %zu\n"
            "# HELP saga_http_settled_subscribed Whether Redis pushes settlements of sagas "
            "to this server now (else long-polls answer at their deadline).\n"
            "# TYPE saga_http_settled_subscribed gauge\n"
            "saga_http_settled_subscribed %d\n"
            "# HELP saga_store_up Whether Redis answered this scrape's reading.\n"
            "# TYPE saga_store_up gauge\n"
            "saga_store_up %d\n",
            api->nwaiters, saga_settled_live(api->settled), g != NULL);
    if (g != NULL) {
        fprintf(f,
                "# HELP saga_sagas Unfinished sagas by state, read from their records.\n"
                "# TYPE saga_sagas gauge\n"
                "saga_sagas{state=\"running\"} %llu\n"
                "saga_sagas{state=\"compensating\"} %llu\n"
                "saga_sagas{state=\"stuck\"} %llu\n"
                "# HELP saga_sagas_states_partial 1 when more sagas are unfinished than one "
                "reading looks at (%d): saga_sagas then counts the newest of them.\n"
                "# TYPE saga_sagas_states_partial gauge\n"
                "saga_sagas_states_partial %d\n"
                "# HELP saga_sagas_unfinished Sagas running, compensating or stuck.\n"
                "# TYPE saga_sagas_unfinished gauge\n"
                "saga_sagas_unfinished %llu\n"
                "# HELP saga_sagas_finished_retained Finished sagas still retained.\n"
                "# TYPE saga_sagas_finished_retained gauge\n"
                "saga_sagas_finished_retained %llu\n"
                "# HELP saga_workers_live Workers whose lease is live.\n"
                "# TYPE saga_workers_live gauge\n"
                "saga_workers_live %llu\n"
                "# HELP saga_intake_backlog Start requests submitted and not yet handled by a "
                "worker.\n"
                "# TYPE saga_intake_backlog gauge\n"
                "saga_intake_backlog %llu\n",
                (unsigned long long)g->running, (unsigned long long)g->compensating,
                (unsigned long long)g->stuck, SAGA_GAUGES_SCAN_MAX, g->partial,
                (unsigned long long)g->unfinished, (unsigned long long)g->finished,
                (unsigned long long)g->workers, (unsigned long long)g->intake_backlog);
    }
    return 0;
}

static void metrics_answer(saga_api_t *api, saga_http_req_t *r, const saga_gauges_t *g) {
    metrics_src_t src = {api, g};
    saga_http_respond_prometheus(r, metrics_write, &src);
}

/* GET /v1/stats: the gauges of /metrics as JSON (the console's overview). */
static json_t *stats_json(const saga_gauges_t *g) {
    return json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:b}, s:I, s:I}", "sagas", "running",
                     (json_int_t)g->running, "compensating", (json_int_t)g->compensating,
                     "stuck", (json_int_t)g->stuck, "unfinished", (json_int_t)g->unfinished,
                     "finished", (json_int_t)g->finished, "partial", g->partial,
                     "workers_live", (json_int_t)g->workers, "intake_backlog",
                     (json_int_t)g->intake_backlog);
}

static void on_gauges(int status, const char *why, const saga_gauges_t *g, void *data) {
    op_t *op = data;
    saga_api_t *api = op->api;
    if (status == 0) {
        api->gauges = *g;
        api->gauges_at_ms = now_ms(api);
        api->have_gauges = true;
    } else {
        saga_warn("http: %s: the store's gauges cannot be read: %s",
                  op->kind != NULL ? "/v1/stats" : "/metrics", why ? why : saga_strerror(status));
    }
    if (op->kind != NULL && strcmp(op->kind, "stats") == 0) {
        if (status != 0) {
            op_fail(op, status, why, "stats");
            return;
        }
        if (op->r != NULL)
            saga_http_respond_json(op->r, 200, stats_json(g));
    } else if (op->r != NULL) {
        metrics_answer(api, op->r, status == 0 ? g : NULL);
    }
    op_free(op);
}

static void h_metrics(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (api->have_gauges && now_ms(api) - api->gauges_at_ms < GAUGES_TTL_MS) {
        metrics_answer(api, r, &api->gauges);
        return;
    }
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    int rc = saga_store_gauges(api->store, on_gauges, op);
    if (rc != 0) {
        metrics_answer(api, r, NULL);
        op_free(op);
    }
}

static void h_stats(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (api->have_gauges && now_ms(api) - api->gauges_at_ms < GAUGES_TTL_MS) {
        saga_http_respond_json(r, 200, stats_json(&api->gauges));
        return;
    }
    if (store_away(api, r))
        return;
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    op->kind = "stats";
    int rc = saga_store_gauges(api->store, on_gauges, op);
    if (rc != 0)
        op_call_failed(op, rc, "stats");
}

static void h_openapi(saga_http_req_t *r, void *data) {
    saga_http_respond_text(r, 200, "application/json", openapi_json, sizeof(openapi_json) - 1);
}

const char *saga_api_openapi(size_t *len) {
    *len = sizeof(openapi_json) - 1;
    return openapi_json;
}

/* ---- POST /v1/sagas ---- */

static void on_submit(int status, const char *why, bool fresh, void *data) {
    op_t *op = data;
    if (op->r == NULL) {
        op_free(op);
        return;
    }
    if (status != 0) {
        op_fail(op, status, why, "submit");
        return;
    }
    if (op->wait_ms > 0 && !op->api->stopping) {
        /* ?wait=: the answer is the saga's status once it settled (or the
         * wait ended), 201 for the saga this request created */
        saga_api_t *api = op->api;
        saga_http_req_t *r = op->r;
        uint64_t wait_ms = op->wait_ms;
        char id[SAGA_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", op->id);
        if (fresh) {
            char loc[SAGA_ID_MAX + 16];
            snprintf(loc, sizeof(loc), "/v1/sagas/%s", id);
            saga_http_req_add_header(r, "location", loc);
        }
        op_free(op);
        wait_for(api, r, id, wait_ms, fresh ? 201 : 200);
        return;
    }
    if (fresh) {
        char loc[SAGA_ID_MAX + 16];
        snprintf(loc, sizeof(loc), "/v1/sagas/%s", op->id);
        saga_http_req_add_header(op->r, "location", loc);
        saga_http_respond_json(op->r, 201, json_pack("{s:s, s:s, s:s}", "id", op->id, "saga",
                                                     op->name, "state", "submitted"));
        op_free(op);
        return;
    }
    /* the same id again: nothing enqueued; its current status */
    answer_status(op, 200);
}

static void submit_def(op_t *op, int status, const saga_def_t *def) {
    if (op->r == NULL) {
        op_free(op);
        return;
    }
    if (status != 0) {
        op_fail(op, status, "the definition cannot be read", op->name);
        return;
    }
    char err[512];
    if (saga_def_check_input(def, op->input, err, sizeof(err)) != 0) {
        saga_http_respond_error(op->r, 422, "invalid_input", "saga '%s': %s", op->name, err);
        op_free(op);
        return;
    }
    char *input = json_dumps(op->input, JSON_COMPACT);
    if (input == NULL) {
        saga_http_respond_error(op->r, 500, "internal", "out of memory");
        op_free(op);
        return;
    }
    saga_operator_submit_t req = {.id = op->id, .name = op->name, .hash = op->hash,
                                  .input = input, .retention_ms = op->api->retention_ms};
    int rc = saga_operator_submit(op->api->store, &req, on_submit, op);
    free(input);
    if (rc != 0) {
        op_call_failed(op, rc, "submit");
    }
}

/* The name's current definition and its live workers: a name no live
 * worker serves is refused (a start request would wait for nobody). */
static void on_submit_definition(int status, const char *why, const saga_operator_def_t *defs,
                                 size_t n, void *data) {
    op_t *op = data;
    if (op->r == NULL) {
        op_free(op);
        return;
    }
    if (status == SAGA_ENOTFOUND || (status == 0 && (n == 0 || defs[0].nworkers == 0))) {
        saga_http_respond_error(op->r, 404, "unknown_saga",
                                "no live worker serves a saga named '%s' (GET /v1/definitions "
                                "lists the served ones)", op->name);
        op_free(op);
        return;
    }
    if (status != 0) {
        op_fail(op, status, why, "submit");
        return;
    }
    snprintf(op->hash, sizeof(op->hash), "%s", defs[0].hash);
    name_remember(op->api, op->name, op->hash);
    with_def(op, op->hash, submit_def);
}

/* ?wait= of a request: 0 when absent; false (answered 400) when it is not
 * a duration of at most WAIT_MAX_MS. */
static bool wait_query(saga_http_req_t *r, uint64_t *wait_ms) {
    bool bad = false;
    const char *wait = saga_http_req_query(r, "wait", &bad);
    *wait_ms = 0;
    if (bad || (wait != NULL && parse_wait(wait, wait_ms) != 0)) {
        saga_http_respond_error(r, 400, "invalid_wait",
                                "wait is a duration of at most 60s: 500ms, 10s, 1m");
        return false;
    }
    return true;
}

static void h_submit(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (store_away(api, r))
        return;
    uint64_t wait_ms;
    if (!wait_query(r, &wait_ms))
        return;
    size_t len;
    const char *body = saga_http_req_body(r, &len);
    saga_api_submit_t sub;
    saga_api_problem_t p;
    if (saga_api_submit_parse(body, len, saga_http_req_header(r, "idempotency-key"), &sub, &p) !=
        0) {
        saga_http_respond_error(r, p.status, p.code, "%s", p.message);
        return;
    }
    op_t *op = op_new(api, r);
    if (op == NULL) {
        saga_api_submit_clear(&sub);
        return;
    }
    snprintf(op->name, sizeof(op->name), "%s", sub.saga);
    op->wait_ms = wait_ms;
    if (sub.id[0] != '\0')
        snprintf(op->id, sizeof(op->id), "%s", sub.id);
    else
        saga_id_new(op->id);
    op->input = sub.input; /* the reference moves to op */
    sub.input = NULL;

    name_entry_t *e = saga_strmap_get(&api->names, op->name);
    if (e != NULL && now_ms(api) - e->at_ms < NAME_TTL_MS) {
        snprintf(op->hash, sizeof(op->hash), "%s", e->hash);
        with_def(op, op->hash, submit_def);
        return;
    }
    int rc = saga_operator_definition(api->store, op->name, on_submit_definition, op);
    if (rc != 0) {
        op_call_failed(op, rc, "submit");
    }
}

/* ---- GET /v1/sagas/{id} ---- */

static void h_status(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (store_away(api, r))
        return;
    const char *id = path_id(r);
    if (id == NULL)
        return;
    uint64_t wait_ms;
    if (!wait_query(r, &wait_ms))
        return;
    if (wait_ms > 0 && !api->stopping) {
        wait_for(api, r, id, wait_ms, 200);
        return;
    }
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    snprintf(op->id, sizeof(op->id), "%s", id);
    answer_status(op, 200);
}

/* ---- GET /v1/sagas ---- */

static void on_list(int status, const char *why, const saga_operator_page_t *page, void *data) {
    op_t *op = data;
    if (op->r != NULL) {
        if (status != 0) {
            answer_store_error(op->r, status, why, "list");
        } else {
            json_t *arr = json_array();
            for (size_t i = 0; i < page->n; i++) {
                const saga_operator_item_t *it = &page->items[i];
                json_t *o = json_pack("{s:s, s:s, s:s}", "id", it->id, "saga", it->saga,
                                      "state", saga_state_name(it->state));
                if (o == NULL)
                    continue;
                if (it->created_ms >= 0) {
                    char ts[40];
                    saga_iso_time(it->created_ms, ts, sizeof(ts));
                    json_object_set_new(o, "created", json_string(ts));
                } else {
                    json_object_set_new(o, "created", json_null());
                }
                json_object_set_new(o, "reason", it->reason ? json_string(it->reason) : json_null());
                json_object_set_new(o, "owner", it->owner ? json_string(it->owner) : json_null());
                json_array_append_new(arr, o);
            }
            saga_http_respond_json(op->r, 200,
                                   json_pack("{s:o, s:s?}", "sagas", arr, "next", page->next));
        }
    }
    op_free(op);
}

static void h_list(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (store_away(api, r))
        return;
    bool bad = false;
    const char *state = saga_http_req_query(r, "state", &bad);
    const char *saga = saga_http_req_query(r, "saga", &bad);
    const char *limit = saga_http_req_query(r, "limit", &bad);
    const char *cursor = saga_http_req_query(r, "cursor", &bad);
    if (bad) {
        saga_http_respond_error(r, 400, "invalid_query", "the query string cannot be decoded");
        return;
    }
    saga_state_t st;
    if (state != NULL && saga_state_parse(state, &st) != 0) {
        saga_http_respond_error(r, 400, "invalid_state",
                                "state is one of running, compensating, completed, compensated, "
                                "stuck");
        return;
    }
    size_t lim = LIST_DEFAULT;
    if (limit != NULL) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(limit, &end, 10);
        if (errno != 0 || *end != '\0' || limit[0] < '0' || limit[0] > '9' || v < 1 ||
            v > LIST_MAX) {
            saga_http_respond_error(r, 400, "invalid_limit", "limit is a number from 1 to %u",
                                    LIST_MAX);
            return;
        }
        lim = v;
    }
    char why[160];
    if (cursor != NULL && cursor[0] != '\0' &&
        saga_operator_cursor_check(cursor, why, sizeof(why)) != 0) {
        saga_http_respond_error(r, 400, "invalid_cursor", "%s", why);
        return;
    }
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    saga_operator_list_query_t q = {.state = state != NULL ? &st : NULL,
                                    .saga = saga != NULL && saga[0] != '\0' ? saga : NULL,
                                    .limit = lim,
                                    .cursor = cursor != NULL && cursor[0] != '\0' ? cursor : NULL};
    int rc = saga_operator_list(api->store, &q, on_list, op);
    if (rc == -EINVAL) {
        saga_http_respond_error(r, 400, "invalid_cursor",
                                "cursor must be a `next` value of an earlier page");
        op_free(op);
    } else if (rc != 0) {
        op_call_failed(op, rc, "list");
    }
}

/* ---- GET /v1/sagas/{id}/history ---- */

static void on_history(int status, const saga_history_entry_t *h, size_t n, void *data) {
    op_t *op = data;
    if (op->r != NULL) {
        if (status == 0 && n == 0)
            status = SAGA_ENOTFOUND;
        if (status != 0) {
            answer_store_error(op->r, status, status == SAGA_ENOTFOUND ? "no such saga" : NULL,
                               op->id);
        } else {
            json_t *arr = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, saga_summary_history_entry(&h[i]));
            saga_http_respond_json(op->r, 200, json_pack("{s:o}", "transitions", arr));
        }
    }
    op_free(op);
}

static void h_history(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    op_t *op = op_for_saga(api, r);
    if (op == NULL)
        return;
    int rc = api->store->ops->history(api->store, op->id, on_history, op);
    if (rc != 0) {
        op_call_failed(op, rc, op->id);
    }
}

/* ---- POST /v1/sagas/{id}/cancel, /retry ---- */

static void on_request_state(int status, const char *why, const saga_operator_state_t *st,
                             void *data) {
    op_t *op = data;
    if (op->r != NULL) {
        json_t *j = json_pack("{s:s, s:s}", "id", op->id, "state",
                              status == 0 && st->created ? saga_state_name(st->state)
                                                         : "unknown");
        if (j != NULL && strcmp(op->kind, "cancel") == 0)
            json_object_set_new(j, "cancel_requested", json_true());
        saga_http_respond_json(op->r, 202, j);
    }
    op_free(op);
}

static void on_request(int status, const char *why, const saga_operator_request_t *res,
                       void *data) {
    op_t *op = data;
    if (op->r == NULL) {
        op_free(op);
        return;
    }
    /* recorded but not woken: a worker still sees it when it next reads */
    if (status == SAGA_EUNAVAILABLE && res != NULL)
        status = 0;
    if (status == SAGA_ESTATE) {
        bool cancel = strcmp(op->kind, "cancel") == 0;
        saga_http_respond_error(op->r, 409, cancel ? "not_cancellable" : "not_stuck", "%s",
                                why ? why : (cancel ? "finished or compensating already"
                                                    : "the saga is not stuck"));
        op_free(op);
        return;
    }
    if (status == SAGA_ENOTFOUND) {
        saga_http_respond_error(op->r, 404, "not_found", "no saga %s", op->id);
        op_free(op);
        return;
    }
    if (status != 0) {
        op_fail(op, status, why, op->kind);
        return;
    }
    int rc = saga_operator_state(op->api->store, op->id, on_request_state, op);
    if (rc != 0)
        on_request_state(rc, NULL, NULL, op);
}

static void operator_request(saga_http_req_t *r, saga_api_t *api, const char *kind) {
    op_t *op = op_for_saga(api, r);
    if (op == NULL)
        return;
    op->kind = kind;
    int rc = strcmp(kind, "cancel") == 0
                 ? saga_operator_cancel(api->store, op->id, api->who, on_request, op)
                 : saga_operator_retry(api->store, op->id, api->who, on_request, op);
    if (rc != 0) {
        op_call_failed(op, rc, kind);
    }
}

static void h_cancel(saga_http_req_t *r, void *data) { operator_request(r, data, "cancel"); }
static void h_retry(saga_http_req_t *r, void *data) { operator_request(r, data, "retry"); }

/* ---- GET /v1/definitions, /v1/definitions/{name} ---- */

/* The live workers serving a definition, as a JSON array. */
static json_t *workers_json(const saga_operator_def_t *d) {
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < d->nworkers; i++)
        json_array_append_new(a, json_string(d->workers[i]));
    return a;
}

/* `workers` (an array of names) is taken in every case. */
static json_t *def_json(const char *name, const char *hash, json_t *workers,
                        const saga_def_t *def, bool text) {
    json_t *o = json_pack("{s:s, s:s, s:o}", "name", name, "hash", hash, "workers",
                          workers != NULL ? workers : json_array());
    if (o == NULL || def == NULL)
        return o;
    json_object_set_new(o, "recovery",
                        json_string(def->recovery == SAGA_RECOVERY_FORWARD ? "forward"
                                                                          : "backward"));
    json_object_set_new(o, "version", json_integer(def->version));
    if (def->description != NULL)
        json_object_set_new(o, "description", json_string(def->description));
    json_t *req = json_array();
    for (size_t i = 0; i < def->n_required_inputs; i++)
        json_array_append_new(req, json_string(def->required_inputs[i]));
    json_object_set_new(o, "required_inputs", req);
    json_t *steps = json_array();
    for (size_t i = 0; i < def->n_steps; i++) {
        const saga_step_def_t *sd = &def->steps[i];
        json_t *after = json_array();
        for (size_t k = 0; k < sd->n_after; k++)
            json_array_append_new(after, json_string(def->steps[sd->after[k]].name));
        if (def->mode == SAGA_MODE_TCC) /* its phases by their names */
            json_array_append_new(
                steps, json_pack("{s:s, s:o, s:s, s:s, s:s}", "name", sd->name, "after", after,
                                 "try", sd->action.handler, "confirm", sd->confirm.handler,
                                 "cancel", sd->compensation.handler));
        else
            json_array_append_new(
                steps, json_pack("{s:s, s:o, s:s, s:s?, s:b}", "name", sd->name, "after", after,
                                 "action", sd->action.handler, "compensation",
                                 sd->has_compensation ? sd->compensation.handler : NULL,
                                 "pivot", sd->pivot));
    }
    json_object_set_new(o, "mode", json_string(def->mode == SAGA_MODE_TCC ? "tcc" : "saga"));
    json_object_set_new(o, "steps", steps);
    if (text)
        json_object_set_new(o, "yaml", json_stringn(def->text, def->text_len));
    return o;
}

/* GET /v1/definitions: one op walks the list, fetching unknown definitions
 * one after the other. */
typedef struct defs_walk_s {
    op_t *op;
    saga_operator_def_t *defs; /* copies (name, hash; workers unset) */
    json_t **workers;          /* workers[i]: who serves defs[i] */
    size_t n, next;
    json_t *out;
} defs_walk_t;

static void defs_walk_free(defs_walk_t *w) {
    for (size_t i = 0; i < w->n; i++) {
        free((char *)w->defs[i].name);
        free((char *)w->defs[i].hash);
        json_decref(w->workers[i]);
    }
    free(w->defs);
    free(w->workers);
    json_decref(w->out);
    free(w);
}

static void defs_step(defs_walk_t *w);

static void defs_got(op_t *op, int status, const saga_def_t *def) {
    defs_walk_t *w = op->walk;
    const saga_operator_def_t *d = &w->defs[w->next - 1];
    json_t *workers = w->workers[w->next - 1];
    w->workers[w->next - 1] = NULL;
    json_array_append_new(w->out,
                          def_json(d->name, d->hash, workers, status == 0 ? def : NULL, false));
    defs_step(w);
}

static void defs_step(defs_walk_t *w) {
    op_t *op = w->op;
    while (op->r != NULL && w->next < w->n) {
        const saga_operator_def_t *d = &w->defs[w->next++];
        with_def(op, d->hash, defs_got);
        return;
    }
    if (op->r != NULL)
        saga_http_respond_json(op->r, 200, json_pack("{s:O}", "definitions", w->out));
    op->walk = NULL;
    defs_walk_free(w);
    op_free(op);
}

static void on_definitions(int status, const char *why, const saga_operator_def_t *defs,
                           size_t n, void *data) {
    op_t *op = data;
    if (op->r == NULL || status != 0) {
        op_fail(op, status, why, "definitions");
        return;
    }
    defs_walk_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (n > 0 && (w->defs = calloc(n, sizeof(*w->defs))) == NULL) ||
        (n > 0 && (w->workers = calloc(n, sizeof(*w->workers))) == NULL) ||
        (w->out = json_array()) == NULL) {
        if (w != NULL)
            defs_walk_free(w);
        saga_http_respond_error(op->r, 500, "internal", "out of memory");
        op_free(op);
        return;
    }
    w->op = op;
    for (size_t i = 0; i < n; i++) {
        w->defs[i].name = strdup(defs[i].name);
        w->defs[i].hash = strdup(defs[i].hash);
        w->workers[i] = workers_json(&defs[i]);
        w->n = i + 1;
        if (w->defs[i].name == NULL || w->defs[i].hash == NULL || w->workers[i] == NULL) {
            defs_walk_free(w);
            saga_http_respond_error(op->r, 500, "internal", "out of memory");
            op_free(op);
            return;
        }
    }
    op->walk = w;
    defs_step(w);
}

static void h_definitions(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (store_away(api, r))
        return;
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    int rc = saga_operator_definitions(api->store, on_definitions, op);
    if (rc != 0) {
        op_call_failed(op, rc, "definitions");
    }
}

static void definition_got(op_t *op, int status, const saga_def_t *def) {
    if (op->r != NULL) {
        if (status != 0)
            answer_store_error(op->r, status, "the definition cannot be read", op->name);
        else {
            json_t *workers = op->workers;
            op->workers = NULL;
            saga_http_respond_json(op->r, 200, def_json(op->name, op->hash, workers, def, true));
        }
    }
    op_free(op);
}

static void on_definition_resolved(int status, const char *why,
                                   const saga_operator_def_t *defs, size_t n, void *data) {
    op_t *op = data;
    if (op->r == NULL || status != 0) {
        if (op->r != NULL) {
            if (status == SAGA_ENOTFOUND)
                saga_http_respond_error(op->r, 404, "unknown_saga",
                                        "no worker serves a saga named '%s'", op->name);
            else
                answer_store_error(op->r, status, why, op->name);
        }
        op_free(op);
        return;
    }
    (void)n; /* 1 on status 0 */
    snprintf(op->hash, sizeof(op->hash), "%s", defs[0].hash);
    if ((op->workers = workers_json(&defs[0])) == NULL) {
        saga_http_respond_error(op->r, 500, "internal", "out of memory");
        op_free(op);
        return;
    }
    with_def(op, op->hash, definition_got);
}

static void h_definition(saga_http_req_t *r, void *data) {
    saga_api_t *api = data;
    if (store_away(api, r))
        return;
    const char *name = saga_http_req_param(r, 0);
    if (name == NULL || strlen(name) > 128) {
        saga_http_respond_error(r, 400, "invalid_name", "a saga name is 1 to 128 bytes");
        return;
    }
    op_t *op = op_new(api, r);
    if (op == NULL)
        return;
    snprintf(op->name, sizeof(op->name), "%s", name);
    int rc = saga_operator_definition(api->store, op->name, on_definition_resolved, op);
    if (rc != 0) {
        op_call_failed(op, rc, name);
    }
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */
/* ---------------------------------------------------------------------- */

saga_api_t *saga_api_new(uv_loop_t *loop, const saga_api_options_t *opt) {
    saga_api_t *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return NULL;
    api->who = strdup(opt->who != NULL ? opt->who : "http");
    if (api->who == NULL) {
        free(api);
        return NULL;
    }
    int rc = saga_settled_new(loop, opt->store, on_settled, api, &api->settled);
    if (rc == -ENOMEM) {
        free(api->who);
        free(api);
        return NULL;
    }
    uv_timer_init(loop, &api->reread); /* cannot fail */
    api->reread.data = api;
    if (rc != 0 && opt->store != NULL)
        saga_warn("http: this store pushes no settlements of sagas (%s): a long-poll "
                  "answers at the end of its wait", saga_strerror(rc));
    api->loop = loop;
    api->store = opt->store;
    api->retention_ms = opt->retention_ms;
    saga_strmap_init(&api->defs);
    saga_strmap_init(&api->names);
    saga_strmap_init(&api->groups);
    const saga_http_route_t routes[] = {
        {"GET", "/healthz", SAGA_HTTP_OPEN, h_healthz, api},
        {"GET", "/readyz", SAGA_HTTP_OPEN, h_readyz, api},
        {"GET", "/metrics", SAGA_HTTP_READ, h_metrics, api},
        {"POST", "/v1/sagas", SAGA_HTTP_WRITE, h_submit, api},
        {"GET", "/v1/sagas", SAGA_HTTP_READ, h_list, api},
        {"GET", "/v1/sagas/{id}", SAGA_HTTP_READ, h_status, api},
        {"GET", "/v1/sagas/{id}/history", SAGA_HTTP_READ, h_history, api},
        {"POST", "/v1/sagas/{id}/cancel", SAGA_HTTP_WRITE, h_cancel, api},
        {"POST", "/v1/sagas/{id}/retry", SAGA_HTTP_WRITE, h_retry, api},
        {"GET", "/v1/definitions", SAGA_HTTP_READ, h_definitions, api},
        {"GET", "/v1/definitions/{name}", SAGA_HTTP_READ, h_definition, api},
        {"GET", "/v1/openapi.json", SAGA_HTTP_READ, h_openapi, api},
        {"GET", "/v1/stats", SAGA_HTTP_READ, h_stats, api},
    };
    memcpy(api->routes, routes, sizeof(routes));
    return api;
}

const saga_http_route_t *saga_api_routes(saga_api_t *api, size_t *n) {
    *n = 13;
    return api->routes;
}

void saga_api_set_server(saga_api_t *api, saga_http_server_t *server) { api->server = server; }

size_t saga_api_pending(const saga_api_t *api) { return api->pending; }

static void api_stop_polls(saga_api_t *api);

size_t saga_api_abandon(saga_api_t *api) {
    api->abandoned = true;
    size_t n = 0;
    for (op_t *op = api->ops; op != NULL; op = op->next) {
        saga_http_req_t *r = op->r;
        if (r == NULL)
            continue;
        op->r = NULL; /* the store's late answer is dropped */
        saga_http_req_on_gone(r, NULL, NULL);
        saga_http_respond_error(r, 503, "store_unavailable", ABANDONED_MESSAGE);
        n++;
    }
    return n;
}

bool saga_api_abandoned(const saga_api_t *api) { return api->abandoned; }

void saga_api_stop(saga_api_t *api) {
    api_stop_polls(api);
    /* Redis is away: what waits on the store would wait until it is back */
    if (api->store == NULL || !saga_store_redis_available(api->store))
        saga_api_abandon(api);
}

/* Answers every long-poll with the saga's state as it is now. */
static void api_stop_polls(saga_api_t *api) {
    api->stopping = true;
    uv_timer_stop(&api->reread);
    /* Answering a group frees it (and moves others in the map): collect
     * them first. */
    size_t n = 0, pos = 0;
    const char *k;
    void *v;
    wgroup_t **gs = api->groups.count > 0 ? calloc(api->groups.count, sizeof(*gs)) : NULL;
    if (api->groups.count > 0 && gs == NULL) {
        /* out of memory: one at a time, starting over after each */
        for (bool more = true; more;) {
            more = false;
            pos = 0;
            while (saga_strmap_next(&api->groups, &pos, &k, &v)) {
                if (((wgroup_t *)v)->head != NULL) {
                    group_answer(api, v);
                    more = true;
                    break;
                }
            }
        }
        return;
    }
    while (saga_strmap_next(&api->groups, &pos, &k, &v))
        gs[n++] = v;
    for (size_t i = 0; i < n; i++)
        if (gs[i]->head != NULL)
            group_answer(api, gs[i]);
    free(gs);
}

bool saga_api_subscribed(const saga_api_t *api) { return saga_settled_live(api->settled); }

static void on_reread_closed(uv_handle_t *h) {
    saga_api_t *api = h->data;
    void (*done)(void *) = api->done;
    void *dd = api->done_data;
    free(api);
    if (done != NULL)
        done(dd);
}

static void on_settled_freed(void *data);

void saga_api_free(saga_api_t *api, void (*done)(void *), void *data) {
    if (api == NULL) {
        if (done != NULL)
            done(data);
        return;
    }
    size_t pos = 0;
    const char *k;
    void *v;
    while (saga_strmap_next(&api->defs, &pos, &k, &v))
        saga_def_free(v);
    saga_strmap_close(&api->defs);
    names_clear(api);
    saga_strmap_close(&api->names);
    saga_strmap_close(&api->groups); /* empty: nothing is pending */
    free(api->who);
    api->done = done;
    api->done_data = data;
    saga_settled_free(api->settled, on_settled_freed, api);
}

static void on_settled_freed(void *data) {
    saga_api_t *api = data;
    uv_close((uv_handle_t *)&api->reread, on_reread_closed);
}
