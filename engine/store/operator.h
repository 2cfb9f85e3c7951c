/*
 * operator.h -- the saga-level operations of services and operators on a
 * Redis store: submit a start request, the definitions workers serve, the
 * state of one saga, the list of sagas (paged), cancel and retry.
 *
 * What `saga submit|wait|list|cancel|retry` and the HTTP API need beyond
 * the store interface (saga/store.h: load, history, get_definition), so
 * that no layer above store/ knows a Redis key or a function of saga.lua.
 *
 * Every call is asynchronous and follows store.h's rules: made on the
 * store's loop thread; a call that returns an error (a negative code) never
 * runs its callback; otherwise the callback runs exactly once, later, never
 * from inside the call. Callbacks get decoded C values, valid until they
 * return (copy what you keep), and on failure a status with `why`, a
 * message for people (the server's own words for refusals, "lost the
 * connection to Redis" when the outcome is unknown).
 *
 * Statuses: 0; SAGA_ENOTFOUND (no such saga / name); SAGA_ESTATE (not in
 * the saga's current state: cancel of a finished saga, retry of one that is
 * not stuck); SAGA_EUNAVAILABLE (the connection was lost: the operation may
 * or may not have happened); SAGA_ECORRUPT (what Redis holds cannot be
 * read: `why` names the key and the field); SAGA_ESTORE (an unexpected
 * reply or error); -ENOMEM.
 *
 * Calls return -ENOTSUP for a store that is not a Redis store, -EINVAL for
 * a malformed argument, SAGA_EUNAVAILABLE when the store's connection is
 * not ready, -ENOMEM.
 *
 * The store must stay open until every callback ran; closing it runs the
 * outstanding callbacks with SAGA_EUNAVAILABLE.
 */
#ifndef SAGA_STORE_OPERATOR_H
#define SAGA_STORE_OPERATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "saga/state.h"
#include "saga/store.h"

/* ---------------------------------------------------------------------- */
/* Definitions served by workers                                           */
/* ---------------------------------------------------------------------- */

#define SAGA_DEF_HASH_LEN 64 /* hex SHA-256 of a definition's text */

/* A served definition: the current hash of a saga name, and the live
 * workers that serve it (those whose lease runs, by the server's clock; a
 * dead worker nobody has forgotten yet is not one), sorted by name. */
typedef struct saga_operator_def_s {
    const char *name;
    const char *hash;                /* SAGA_DEF_HASH_LEN hex digits */
    const char *const *workers;      /* workers[0..nworkers) */
    size_t nworkers;                 /* 0: no live worker serves it now */
} saga_operator_def_t;

typedef void (*saga_operator_defs_cb)(int status, const char *why,
                                      const saga_operator_def_t *defs, size_t n,
                                      void *data);

/* Every saga name some worker published, with its current definition hash
 * and the live workers that serve it, sorted by name (one call: FCALL
 * saga_serving). SAGA_ECORRUPT when a hash is not 64 hex digits. */
int saga_operator_definitions(saga_store_t *s, saga_operator_defs_cb cb, void *data);

/* The same for saga `name` alone: n is 1 on status 0. SAGA_ENOTFOUND when
 * no worker ever published it. */
int saga_operator_definition(saga_store_t *s, const char *name, saga_operator_defs_cb cb,
                             void *data);

typedef void (*saga_operator_resolve_cb)(int status, const char *why,
                                         const char *hash, void *data);

/* The current definition hash of saga `name`: what a submit of that name
 * starts. SAGA_ENOTFOUND when no worker serves it. */
int saga_operator_resolve(saga_store_t *s, const char *name,
                          saga_operator_resolve_cb cb, void *data);

/* ---------------------------------------------------------------------- */
/* Submit                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct saga_operator_submit_s {
    const char *id;          /* a valid saga id (saga_id_valid) */
    const char *name;        /* the saga's name */
    const char *hash;        /* its definition (saga_operator_resolve) */
    const char *input;       /* the input, JSON text (an object) */
    uint64_t retention_ms;   /* how long the id is remembered; 0: 7 days */
} saga_operator_submit_t;

/* `fresh`: true when enqueued now, false when that id was submitted
 * before (nothing new enqueued: a submit is idempotent by id). */
typedef void (*saga_operator_submit_cb)(int status, const char *why, bool fresh,
                                        void *data);

/* Enqueues a start request for the workers, once per id. Everything `req`
 * points to is copied before the call returns. The caller checked the input
 * against the definition: the workers refuse (and log) a bad one. */
int saga_operator_submit(saga_store_t *s, const saga_operator_submit_t *req,
                         saga_operator_submit_cb cb, void *data);

/* ---------------------------------------------------------------------- */
/* The state of one saga                                                   */
/* ---------------------------------------------------------------------- */

typedef struct saga_operator_state_s {
    bool created;        /* a record exists: `state` and `reason` hold */
    saga_state_t state;
    const char *reason;  /* NULL when none */
    bool submitted;      /* !created: submitted, no worker took it yet */
} saga_operator_state_t;

typedef void (*saga_operator_state_cb)(int status, const char *why,
                                       const saga_operator_state_t *st, void *data);

/* Where saga `id` stands, cheaply (what `saga wait` polls). SAGA_ENOTFOUND
 * when it neither exists nor was submitted; SAGA_ECORRUPT when its state
 * is not a state's name. */
int saga_operator_state(saga_store_t *s, const char *id, saga_operator_state_cb cb,
                        void *data);

/* ---------------------------------------------------------------------- */
/* List                                                                    */
/* ---------------------------------------------------------------------- */

/* A cursor: the part, the last entry's score (up to 20 characters) and id */
#define SAGA_OPERATOR_CURSOR_MAX (SAGA_ID_MAX + 24)
#define SAGA_OPERATOR_LIST_MAX 10000 /* items per page, at most */

typedef struct saga_operator_list_query_s {
    const saga_state_t *state; /* only sagas in this state, or NULL */
    const char *saga;          /* only sagas of this name, or NULL */
    size_t limit;              /* at most this many items: 1..SAGA_OPERATOR_LIST_MAX */
    const char *cursor;        /* where the previous page stopped, or NULL */
} saga_operator_list_query_t;

typedef struct saga_operator_item_s {
    const char *id;
    const char *saga;     /* "" when the record has no name */
    saga_state_t state;
    int64_t created_ms;   /* Unix ms; -1 when the record has none */
    const char *reason;   /* NULL when none */
    const char *owner;    /* NULL when none */
} saga_operator_item_t;

typedef struct saga_operator_page_s {
    const saga_operator_item_t *items;
    size_t n;
    /* Where the next page starts (pass it as `cursor`), or NULL at the end.
     * A page may hold fewer than `limit` items and still not be the last:
     * a call reads a bounded part of the index. */
    const char *next;
} saga_operator_page_t;

typedef void (*saga_operator_list_cb)(int status, const char *why,
                                      const saga_operator_page_t *page, void *data);

/* Sagas, the unfinished ones first (newest first), then the finished ones
 * (the last finished first), filtered. The cursor is opaque text of at
 * most SAGA_OPERATOR_CURSOR_MAX bytes; a malformed one is -EINVAL
 * (saga_operator_cursor_check says why). Sagas whose record expired
 * meanwhile are skipped; a record that cannot be read fails the page with
 * SAGA_ECORRUPT naming it. The cursor is a keyset (the part, the last
 * entry's score and id): the next page starts strictly after that entry,
 * wherever it is now, so every saga that stays in its part of the index
 * for the whole paging is listed exactly once; a saga that moves between
 * the parts meanwhile (it finishes, it is retried, it is submitted, it
 * expires) may be listed twice or not at all. */
int saga_operator_list(saga_store_t *s, const saga_operator_list_query_t *q,
                       saga_operator_list_cb cb, void *data);

/* 0 when `cursor` is a cursor saga_operator_list takes; else -EINVAL with
 * the reason (for a person, naming what is wrong) written to `why` (always
 * terminated when whylen > 0). */
int saga_operator_cursor_check(const char *cursor, char *why, size_t whylen);

/* ---------------------------------------------------------------------- */
/* Cancel, retry                                                           */
/* ---------------------------------------------------------------------- */

typedef enum saga_operator_next_e {
    SAGA_OPERATOR_UNMANAGED = 0, /* no worker runs it: `saga resume` does */
    SAGA_OPERATOR_OWNER = 1,     /* its owner was woken up */
    SAGA_OPERATOR_ORPHAN = 2     /* no owner: listed for any worker to take */
} saga_operator_next_t;

typedef struct saga_operator_request_s {
    const char *owner;           /* NULL when none (the record's owner field) */
    saga_operator_next_t next;
} saga_operator_request_t;

typedef void (*saga_operator_request_cb)(int status, const char *why,
                                         const saga_operator_request_t *res,
                                         void *data);

#define SAGA_OPERATOR_WHO_MAX 128

/* Asks that a running saga turn to backward recovery (recorded in its
 * record and history as asked "by `who`": NULL or "" for "operator", else
 * at most SAGA_OPERATOR_WHO_MAX bytes without control characters, or
 * -EINVAL), then wakes whoever runs it. SAGA_ESTATE
 * when it is finished or compensating already; asking twice is fine. When
 * the request was recorded but the wake-up could not be sent, status is
 * SAGA_EUNAVAILABLE and `why` says so (a worker still sees it when it next
 * reads the saga). */
int saga_operator_cancel(saga_store_t *s, const char *id, const char *who,
                         saga_operator_request_cb cb, void *data);

/* Tries a stuck saga's failed steps again (their attempt budget restarts),
 * recorded as by `who` (as for cancel), then wakes whoever runs it.
 * SAGA_ESTATE when it is not stuck. */
int saga_operator_retry(saga_store_t *s, const char *id, const char *who,
                        saga_operator_request_cb cb, void *data);

#endif
