/*
 * operator.c -- see operator.h. Key names: keys.h; functions: saga.lua;
 * both described in docs/redis-layout.md.
 *
 * Each operation is a small request object that lives from the call to its
 * callback. Commands go out on the store's first connection; a follow-up
 * command (a list's records, a cancel's wake-up) is sent from the reply
 * callback of the previous one, on the connection that answered it, so
 * nothing here holds a connection across loop turns.
 */
#include "store/operator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis/redis_conn.h"
#include "saga/errors.h"
#include "store/keys.h"
#include "store/redis_replies.h"
#include "store/shards.h"
#include "store/store_redis.h"
#include "util/bytes.h"

#define LIST_PAGE 200       /* ids read from the index per round trip */
#define LIST_SCAN_MAX 1000  /* ids one call looks at, at most */
#define WHY_MAX 512
#define LOST "lost the connection to Redis"

/* ---------------------------------------------------------------------- */
/* Common                                                                  */
/* ---------------------------------------------------------------------- */

/* The store's connection when it can take a command now, else NULL with
 * the code to return in *rc. */
static saga_redis_t *conn_of(saga_store_t *s, int *rc) {
    saga_redis_t *c = saga_store_redis_conn(s);
    if (c == NULL) {
        *rc = -ENOTSUP;
        return NULL;
    }
    if (!saga_redis_ready(c)) {
        *rc = SAGA_EUNAVAILABLE;
        return NULL;
    }
    return c;
}

/* The store's shards of the global keys (store/shards.h) once it is
 * ready, else NULL with the code to return in *rc. */
static const saga_shards_t *shards_of(saga_store_t *s, int *rc) {
    const saga_shards_t *sh = saga_store_redis_shards(s);
    if (sh == NULL)
        *rc = SAGA_EUNAVAILABLE;
    return sh;
}

#define SHARD_KEY_MAX (SAGA_SHARD_TAG_MAX + 24) /* "saga:{TAG}:submitted" */

/* A send that failed: what the caller is told. */
static int send_failed(int rc) {
    return rc == -ENOTCONN || rc == -ECANCELED ? SAGA_EUNAVAILABLE : rc;
}

/* The status of a reply that is not the answer itself: 0 for an answer;
 * SAGA_EUNAVAILABLE for none; a mapped code for an error reply, with the
 * message in *why (saga.lua's errors read "SAGA<CODE> message": the
 * message alone). */
static int reply_status(const redisReply *r, const char **why) {
    if (r == NULL) {
        *why = LOST;
        return SAGA_EUNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    const char *msg = r->str, *sp = strchr(msg, ' ');
    *why = msg;
    if (strncmp(msg, "SAGA", 4) != 0 || sp == NULL)
        return SAGA_ESTORE;
    *why = sp + 1;
    size_t n = (size_t)(sp - msg) - 4;
    if (n == 8 && strncmp(msg + 4, "NOTFOUND", 8) == 0)
        return SAGA_ENOTFOUND;
    if (n == 5 && strncmp(msg + 4, "STATE", 5) == 0)
        return SAGA_ESTATE;
    return SAGA_ESTORE;
}

static bool is_hash(const char *s, size_t len) {
    if (len != SAGA_DEF_HASH_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* At most 40 bytes of untrusted text for a message, control characters as
 * '?'. */
static void quote(char *out, size_t outlen, const char *s, size_t len) {
    size_t n = len < 40 ? len : 40, k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++)
        out[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (len > n && k + 3 < outlen) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Definitions                                                             */
/* ---------------------------------------------------------------------- */

typedef struct defs_rq_s {
    saga_operator_defs_cb cb;
    void *data;
    char *name; /* the one name asked for, or NULL for all */
} defs_rq_t;

/* Whether `r` has saga_serving's shape, [name, hash, [worker...]] per
 * name; *nw counts the workers. */
static bool serving_shape(const redisReply *r, size_t *nw) {
    *nw = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0)
        return false;
    for (size_t i = 0; i < r->elements; i += 3) {
        const redisReply *ws = r->element[i + 2];
        if (r->element[i]->type != REDIS_REPLY_STRING ||
            r->element[i + 1]->type != REDIS_REPLY_STRING || ws->type != REDIS_REPLY_ARRAY ||
            !saga_redis_all_strings(ws))
            return false;
        *nw += ws->elements;
    }
    return true;
}

/* saga_serving's answer into defs (pointers into the reply) and one
 * vector holding every worker list. Returns 0, SAGA_ESTORE, SAGA_ECORRUPT
 * or -ENOMEM with *why set. */
static int decode_serving(const redisReply *r, saga_operator_def_t **out, size_t *nout,
                          const char ***wv, const char **why, char *buf, size_t buflen) {
    *out = NULL;
    *wv = NULL;
    *nout = 0;
    size_t nw;
    if (!serving_shape(r, &nw)) {
        *why = "saga_serving: expected [name, hash, [worker...]] per name";
        return SAGA_ESTORE;
    }
    saga_operator_def_t *defs = calloc(r->elements / 3 + 1, sizeof(*defs));
    const char **v = calloc(nw + 1, sizeof(*v));
    if (defs == NULL || v == NULL) {
        free(defs);
        free(v);
        *why = "out of memory";
        return -ENOMEM;
    }
    size_t n = 0, k = 0;
    for (size_t i = 0; i < r->elements; i += 3) {
        const redisReply *name = r->element[i], *hash = r->element[i + 1],
                         *ws = r->element[i + 2];
        if (!is_hash(hash->str, (size_t)hash->len)) {
            char q[64], h[64];
            quote(q, sizeof(q), name->str, (size_t)name->len);
            quote(h, sizeof(h), hash->str, (size_t)hash->len);
            snprintf(buf, buflen, SAGA_KEY_DEFS ": the hash of '%s' is '%s', not %d hex digits",
                     q, h, SAGA_DEF_HASH_LEN);
            *why = buf;
            free(defs);
            free(v);
            return SAGA_ECORRUPT;
        }
        defs[n] = (saga_operator_def_t){name->str, hash->str, v + k, ws->elements};
        for (size_t j = 0; j < ws->elements; j++)
            v[k++] = ws->element[j]->str;
        n++;
    }
    *out = defs;
    *nout = n;
    *wv = v;
    return 0;
}

static void on_defs(saga_redis_t *c, redisReply *r, void *data) {
    defs_rq_t *rq = data;
    (void)c;
    const char *why = NULL;
    char buf[WHY_MAX];
    saga_operator_def_t *defs = NULL;
    const char **workers = NULL;
    size_t n = 0;
    int status = reply_status(r, &why);
    if (status == 0)
        status = decode_serving(r, &defs, &n, &workers, &why, buf, sizeof(buf));
    if (status == 0 && rq->name != NULL && n != 1) {
        char q[64];
        quote(q, sizeof(q), rq->name, strlen(rq->name));
        if (n == 0)
            snprintf(buf, sizeof(buf), "no worker serves saga '%s'", q);
        else
            snprintf(buf, sizeof(buf), "saga_serving: %zu names for '%s'", n, q);
        why = buf;
        status = n == 0 ? SAGA_ENOTFOUND : SAGA_ESTORE;
    }
    rq->cb(status, status == 0 ? NULL : why, status == 0 ? defs : NULL,
           status == 0 ? n : 0, rq->data);
    free(defs);
    free(workers);
    free(rq->name);
    free(rq);
}

/* FCALL saga_serving over every name, or `name` alone. */
static int serving(saga_store_t *s, const char *name, saga_operator_defs_cb cb, void *data) {
    int rc = 0;
    saga_redis_t *c = conn_of(s, &rc);
    if (c == NULL)
        return rc;
    defs_rq_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL || (name != NULL && (rq->name = strdup(name)) == NULL)) {
        free(rq);
        return -ENOMEM;
    }
    rq->cb = cb;
    rq->data = data;
    const char *argv[] = {"FCALL", "saga_serving", "3", SAGA_KEY_DEFS, SAGA_KEY_WORKERS,
                          SAGA_KEY_SERVING, name};
    size_t len[] = {5, 12, 1, sizeof(SAGA_KEY_DEFS) - 1, sizeof(SAGA_KEY_WORKERS) - 1,
                    sizeof(SAGA_KEY_SERVING) - 1, name != NULL ? strlen(name) : 0};
    if ((rc = saga_redis_command_argv(c, on_defs, rq, name != NULL ? 7 : 6, argv, len)) != 0) {
        free(rq->name);
        free(rq);
        return send_failed(rc);
    }
    return 0;
}

int saga_operator_definitions(saga_store_t *s, saga_operator_defs_cb cb, void *data) {
    if (cb == NULL)
        return -EINVAL;
    return serving(s, NULL, cb, data);
}

int saga_operator_definition(saga_store_t *s, const char *name, saga_operator_defs_cb cb,
                             void *data) {
    if (name == NULL || name[0] == '\0' || cb == NULL)
        return -EINVAL;
    return serving(s, name, cb, data);
}

typedef struct resolve_rq_s {
    saga_operator_resolve_cb cb;
    void *data;
    char *name;
} resolve_rq_t;

static void on_resolve(saga_redis_t *c, redisReply *r, void *data) {
    resolve_rq_t *rq = data;
    (void)c;
    const char *why = NULL;
    char buf[WHY_MAX], q[64], h[64];
    int status = reply_status(r, &why);
    quote(q, sizeof(q), rq->name, strlen(rq->name));
    if (status != 0) {
        /* as is */
    } else if (r->type == REDIS_REPLY_NIL) {
        snprintf(buf, sizeof(buf), "no worker serves saga '%s'", q);
        why = buf;
        status = SAGA_ENOTFOUND;
    } else if (r->type != REDIS_REPLY_STRING) {
        why = SAGA_KEY_DEFS ": expected a definition hash";
        status = SAGA_ESTORE;
    } else if (!is_hash(r->str, (size_t)r->len)) {
        quote(h, sizeof(h), r->str, (size_t)r->len);
        snprintf(buf, sizeof(buf), SAGA_KEY_DEFS ": the hash of '%s' is '%s', not %d hex "
                 "digits", q, h, SAGA_DEF_HASH_LEN);
        why = buf;
        status = SAGA_ECORRUPT;
    }
    rq->cb(status, status == 0 ? NULL : why, status == 0 ? r->str : NULL, rq->data);
    free(rq->name);
    free(rq);
}

int saga_operator_resolve(saga_store_t *s, const char *name, saga_operator_resolve_cb cb,
                          void *data) {
    if (name == NULL || name[0] == '\0')
        return -EINVAL;
    int rc = 0;
    saga_redis_t *c = conn_of(s, &rc);
    if (c == NULL)
        return rc;
    resolve_rq_t *rq = malloc(sizeof(*rq));
    if (rq == NULL || (rq->name = strdup(name)) == NULL) {
        free(rq);
        return -ENOMEM;
    }
    rq->cb = cb;
    rq->data = data;
    const char *argv[] = {"HGET", SAGA_KEY_DEFS, name};
    size_t len[] = {4, sizeof(SAGA_KEY_DEFS) - 1, strlen(name)};
    if ((rc = saga_redis_command_argv(c, on_resolve, rq, 3, argv, len)) != 0) {
        free(rq->name);
        free(rq);
        return send_failed(rc);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Submit                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct submit_rq_s {
    saga_operator_submit_cb cb;
    void *data;
} submit_rq_t;

static void on_submit(saga_redis_t *c, redisReply *r, void *data) {
    submit_rq_t *rq = data;
    (void)c;
    const char *why = NULL;
    int status = reply_status(r, &why);
    if (status == 0 && (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))) {
        why = "saga_submit: expected 0 or 1";
        status = SAGA_ESTORE;
    }
    rq->cb(status, status == 0 ? NULL : why, status == 0 && r->integer == 1, rq->data);
    free(rq);
}

int saga_operator_submit(saga_store_t *s, const saga_operator_submit_t *req,
                         saga_operator_submit_cb cb, void *data) {
    if (req->id == NULL || !saga_id_valid(req->id) || req->name == NULL ||
        req->name[0] == '\0' || req->hash == NULL || !is_hash(req->hash, strlen(req->hash)) ||
        req->input == NULL)
        return -EINVAL;
    int rc = 0;
    saga_redis_t *c = conn_of(s, &rc);
    if (c == NULL)
        return rc;
    const saga_shards_t *sh = shards_of(s, &rc);
    if (sh == NULL)
        return rc;
    /* The intake and the submitted set of the saga's shard: one hash tag. */
    char intake[SHARD_KEY_MAX], submitted[SHARD_KEY_MAX];
    unsigned shard = saga_shards_of(sh, req->id);
    int il = saga_shards_key(sh, shard, SAGA_SHARD_INTAKE, NULL, intake, sizeof(intake));
    int sl = saga_shards_key(sh, shard, SAGA_SHARD_SUBMITTED, NULL, submitted, sizeof(submitted));
    if (il < 0 || sl < 0)
        return -EINVAL;
    submit_rq_t *rq = malloc(sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    *rq = (submit_rq_t){cb, data};
    char retention[24];
    size_t rlen = saga_fmt_u64(retention, req->retention_ms ? req->retention_ms
                                                            : SAGA_DEFAULT_RETENTION_MS);
    const char *argv[] = {"FCALL", "saga_submit", "2", intake, submitted,
                          req->id, req->name, req->hash, req->input, retention};
    size_t len[] = {5, 11, 1, (size_t)il, (size_t)sl,
                    strlen(req->id), strlen(req->name), SAGA_DEF_HASH_LEN,
                    strlen(req->input), rlen};
    if ((rc = saga_redis_command_argv(c, on_submit, rq, 10, argv, len)) != 0) {
        free(rq);
        return send_failed(rc);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* State                                                                   */
/* ---------------------------------------------------------------------- */

typedef struct state_rq_s {
    saga_operator_state_cb cb;
    void *data;
    char id[SAGA_ID_MAX + 1];
    char submitted[SHARD_KEY_MAX]; /* the submitted set of the saga's shard */
} state_rq_t;

static void state_done(state_rq_t *rq, int status, const char *why,
                       const saga_operator_state_t *st) {
    rq->cb(status, status == 0 ? NULL : why, status == 0 ? st : NULL, rq->data);
    free(rq);
}

static void on_submitted(saga_redis_t *c, redisReply *r, void *data) {
    state_rq_t *rq = data;
    (void)c;
    const char *why = NULL;
    char buf[WHY_MAX];
    int status = reply_status(r, &why);
    saga_operator_state_t st = {false, SAGA_STATE_RUNNING, NULL, false};
    if (status != 0) {
        /* as is */
    } else if (r->type == REDIS_REPLY_NIL) {
        snprintf(buf, sizeof(buf), "no saga %s", rq->id);
        why = buf;
        status = SAGA_ENOTFOUND;
    } else if (r->type == REDIS_REPLY_STRING) {
        st.submitted = true;
    } else {
        snprintf(buf, sizeof(buf), "%s: expected a score", rq->submitted);
        why = buf;
        status = SAGA_ESTORE;
    }
    state_done(rq, status, why, &st);
}

static void on_state(saga_redis_t *c, redisReply *r, void *data) {
    state_rq_t *rq = data;
    const char *why = NULL;
    char buf[WHY_MAX];
    int status = reply_status(r, &why);
    saga_operator_state_t st = {false, SAGA_STATE_RUNNING, NULL, false};
    if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                        (r->element[0]->type != REDIS_REPLY_STRING &&
                         r->element[0]->type != REDIS_REPLY_NIL) ||
                        (r->element[1]->type != REDIS_REPLY_STRING &&
                         r->element[1]->type != REDIS_REPLY_NIL))) {
        why = "saga_state: expected {state, reason}";
        status = SAGA_ESTORE;
    }
    if (status != 0) {
        state_done(rq, status, why, NULL);
        return;
    }
    const redisReply *state = r->element[0], *reason = r->element[1];
    if (state->type == REDIS_REPLY_NIL) {
        /* No record (yet): submitted, or nothing. The two reads are two
         * commands (one hash tag per function, docs/redis-layout.md): a
         * saga is in the submitted set before its record exists and stays
         * there for the retention, so the answer is at worst one poll old. */
        const char *argv[] = {"ZSCORE", rq->submitted, rq->id};
        size_t len[] = {6, strlen(rq->submitted), strlen(rq->id)};
        int rc = saga_redis_command_argv(c, on_submitted, rq, 3, argv, len);
        if (rc != 0)
            state_done(rq, send_failed(rc), LOST, NULL);
        return;
    }
    if (memchr(state->str, '\0', (size_t)state->len) != NULL ||
        saga_state_parse(state->str, &st.state) != 0) {
        char q[64];
        quote(q, sizeof(q), state->str, (size_t)state->len);
        snprintf(buf, sizeof(buf), "saga %s: field 'state' is '%s', not a state", rq->id, q);
        state_done(rq, SAGA_ECORRUPT, buf, NULL);
        return;
    }
    st.created = true;
    if (reason->type == REDIS_REPLY_STRING && reason->len > 0)
        st.reason = reason->str;
    state_done(rq, 0, NULL, &st);
}

int saga_operator_state(saga_store_t *s, const char *id, saga_operator_state_cb cb,
                        void *data) {
    if (id == NULL || !saga_id_valid(id))
        return -EINVAL;
    int rc = 0;
    saga_redis_t *c = conn_of(s, &rc);
    if (c == NULL)
        return rc;
    const saga_shards_t *sh = shards_of(s, &rc);
    if (sh == NULL)
        return rc;
    state_rq_t *rq = malloc(sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    rq->cb = cb;
    rq->data = data;
    snprintf(rq->id, sizeof(rq->id), "%s", id);
    if (saga_shards_key(sh, saga_shards_of(sh, id), SAGA_SHARD_SUBMITTED, NULL, rq->submitted,
                        sizeof(rq->submitted)) < 0) {
        free(rq);
        return -EINVAL;
    }
    char key[SAGA_ID_MAX + 16];
    int klen = snprintf(key, sizeof(key), SAGA_KEY_RECORD_FMT, id);
    const char *argv[] = {"FCALL", "saga_state", "1", key};
    size_t len[] = {5, 10, 1, (size_t)klen};
    if ((rc = saga_redis_command_argv(c, on_state, rq, 4, argv, len)) != 0) {
        free(rq);
        return send_failed(rc);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* List                                                                    */
/* ---------------------------------------------------------------------- */

/* The index has two parts: the unfinished sagas (scores below 0,
 * ascending: newest first) and the finished ones (scores from 0,
 * descending: the last finished first). The cursor is a keyset:
 * "U<score>:<id>" / "F<score>:<id>", strictly after that entry of the
 * unfinished / finished part (saga_list_page in saga.lua finds where, even
 * when the entry is gone), or "U" / "F" alone for the start of the part. The
 * old positional "u:N" / "f:N" are refused (see saga_operator_cursor_check).
 *
 * The index exists once per shard (store/shards.h). A round asks every
 * shard for R entries after the cursor, merges the answers in the part's
 * order (score, then id bytewise, as Redis orders a zset; reversed in the
 * finished part) and keeps the first R: those are the next R entries of
 * the whole index, so one cursor serves every shard. The part is over when
 * the merge holds fewer than R (then every shard answered fewer). R is
 * LIST_PAGE when a filter may drop records, else the items the page still
 * needs (at most LIST_PAGE): a page of 20 reads 20 x K index entries and
 * 20 records, not 200 x K and 200. The records of the kept ids are then read, one
 * HMGET each; on Redis Cluster they live on several nodes, whose answers
 * come in any order: each lands in its own slot, and the page is built
 * from the slots in the merged order once all have answered. */
#define SCORE_MAX 20 /* "-" and 19 digits */

/* One entry of the index, as a shard answered it. */
typedef struct entry_s {
    char *id;
    char *score;     /* the text, as Redis wrote it (the cursor quotes it) */
    long long value; /* ... as a number, for the merge */
} entry_t;

/* The answer for one record of the round. */
typedef struct slot_s {
    struct list_rq_s *rq;
    int status;               /* 0, or the record's failure */
    bool keep;                /* `it` holds an item that passed the filters */
    saga_operator_item_t it;
    char *why;                /* on failure (NULL: out of memory) */
} slot_t;

typedef struct list_rq_s {
    saga_operator_list_cb cb;
    void *data;
    const saga_shards_t *sh; /* the store's: valid while it is open */
    bool has_state;
    saga_state_t state;
    char *saga;
    size_t limit;
    bool finished_part;
    char pos_score[SCORE_MAX + 1]; /* after this entry; "" at the part's start */
    char pos_id[SAGA_ID_MAX + 1];
    size_t scanned;
    saga_operator_item_t *items;
    size_t n;
    /* The round in flight: the shards' answers, merged into `entries`. */
    entry_t *entries;
    size_t nentries;
    size_t round;        /* entries asked of each shard, kept of the merge */
    unsigned asked;      /* shards asked */
    unsigned answered;   /* ... that answered */
    /* Then the records of entries[0..nids). */
    slot_t *slots;
    size_t nids;
    size_t sent;         /* records asked for */
    size_t got;          /* records answered */
    int status;          /* the round's first failure */
    char why[WHY_MAX];
    char next[SAGA_OPERATOR_CURSOR_MAX + 1];
} list_rq_t;

static void item_free(saga_operator_item_t *it) {
    free((char *)it->id);
    free((char *)it->saga);
    free((char *)it->reason);
    free((char *)it->owner);
}

static void round_clear(list_rq_t *rq) {
    for (size_t i = 0; i < rq->nentries; i++) {
        free(rq->entries[i].id);
        free(rq->entries[i].score);
    }
    free(rq->entries);
    rq->entries = NULL;
    if (rq->slots != NULL)
        for (size_t i = 0; i < rq->nids; i++) {
            if (rq->slots[i].keep)
                item_free(&rq->slots[i].it);
            free(rq->slots[i].why);
        }
    free(rq->slots);
    rq->slots = NULL;
    rq->nentries = rq->nids = rq->sent = rq->got = 0;
    rq->asked = rq->answered = 0;
    rq->status = 0;
}

static void list_done(list_rq_t *rq, int status, const char *why) {
    saga_operator_page_t page = {rq->items, rq->n, rq->next[0] ? rq->next : NULL};
    rq->cb(status, status == 0 ? NULL : why, status == 0 ? &page : NULL, rq->data);
    round_clear(rq);
    for (size_t i = 0; i < rq->n; i++)
        item_free(&rq->items[i]);
    free(rq->items);
    free(rq->saga);
    free(rq);
}

/* Only sagas in a finished state can be in the finished part, and only
 * unfinished ones in the other. */
static bool part_wanted(const list_rq_t *rq, bool finished_part) {
    return !rq->has_state || saga_state_terminal(rq->state) == finished_part;
}

static int list_fetch(list_rq_t *rq, saga_redis_t *c);
static bool score_valid(const char *p, size_t n, bool finished_part);

static char *dup_str(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING && r->len > 0 ? saga_memdup(r->str, (size_t)r->len)
                                                       : NULL;
}

/* Decodes the record of saga `id` (HMGET state saga created reason owner)
 * into *it (*keep: it passed the filters; then the caller owns its
 * strings). Returns 0, or a status with the message in buf. */
static int take_record(const list_rq_t *rq, const char *id, const redisReply *r,
                       saga_operator_item_t *out, bool *keep, char *buf, size_t buflen) {
    const char *why = NULL;
    *keep = false;
    int status = reply_status(r, &why);
    if (status != 0) {
        snprintf(buf, buflen, "saga %s: %s", id, why);
        return status == SAGA_ESTORE ? SAGA_ECORRUPT : status; /* WRONGTYPE */
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        snprintf(buf, buflen, "saga %s: expected the 5 fields asked for", id);
        return SAGA_ESTORE;
    }
    for (size_t k = 0; k < 5; k++)
        if (r->element[k]->type != REDIS_REPLY_STRING && r->element[k]->type != REDIS_REPLY_NIL) {
            snprintf(buf, buflen, "saga %s: expected strings", id);
            return SAGA_ESTORE;
        }
    const redisReply *state = r->element[0], *saga = r->element[1], *created = r->element[2];
    if (state->type == REDIS_REPLY_NIL)
        return 0; /* expired meanwhile: the index lags until the next gc */
    saga_operator_item_t it = {NULL, NULL, SAGA_STATE_RUNNING, -1, NULL, NULL};
    char q[64];
    if (memchr(state->str, '\0', (size_t)state->len) != NULL ||
        saga_state_parse(state->str, &it.state) != 0) {
        quote(q, sizeof(q), state->str, (size_t)state->len);
        snprintf(buf, buflen, "saga %s: field 'state' is '%s', not a state", id, q);
        return SAGA_ECORRUPT;
    }
    if (created->type == REDIS_REPLY_STRING) {
        uint64_t ms;
        if (saga_parse_u64(created->str, (size_t)created->len, &ms) != 0 || ms > INT64_MAX) {
            quote(q, sizeof(q), created->str, (size_t)created->len);
            snprintf(buf, buflen, "saga %s: field 'created' is '%s', not Unix ms", id, q);
            return SAGA_ECORRUPT;
        }
        it.created_ms = (int64_t)ms;
    }
    const char *name = saga->type == REDIS_REPLY_STRING ? saga->str : "";
    if ((rq->has_state && it.state != rq->state) ||
        (rq->saga != NULL && strcmp(name, rq->saga) != 0))
        return 0;
    const redisReply *reason = r->element[3], *owner = r->element[4];
    it.id = strdup(id);
    it.saga = saga_memdup(name, saga->type == REDIS_REPLY_STRING ? (size_t)saga->len : 0);
    it.reason = dup_str(reason);
    it.owner = dup_str(owner);
    if (it.id == NULL || it.saga == NULL ||
        (reason->type == REDIS_REPLY_STRING && reason->len > 0 && it.reason == NULL) ||
        (owner->type == REDIS_REPLY_STRING && owner->len > 0 && it.owner == NULL)) {
        item_free(&it);
        snprintf(buf, buflen, "out of memory");
        return -ENOMEM;
    }
    *out = it;
    *keep = true;
    return 0;
}

/* Every record of the round answered: the slots in the merged order make
 * the page (up to the limit); then move on, or answer. */
static void page_done(list_rq_t *rq, saga_redis_t *c) {
    size_t taken = 0;
    for (; taken < rq->nids && rq->n < rq->limit; taken++) {
        slot_t *sl = &rq->slots[taken];
        if (sl->status != 0) {
            list_done(rq, sl->status, sl->why != NULL ? sl->why : "out of memory");
            return;
        }
        if (sl->keep) {
            rq->items[rq->n++] = sl->it;
            sl->keep = false; /* the page owns it now */
        }
    }
    bool part_over = taken == rq->nids && rq->nids < rq->round;
    if (taken > 0) {
        snprintf(rq->pos_score, sizeof(rq->pos_score), "%s", rq->entries[taken - 1].score);
        snprintf(rq->pos_id, sizeof(rq->pos_id), "%s", rq->entries[taken - 1].id);
    }
    rq->scanned += taken;
    round_clear(rq);
    if (part_over) {
        if (!rq->finished_part && part_wanted(rq, true)) {
            rq->finished_part = true;
            rq->pos_score[0] = rq->pos_id[0] = '\0';
        } else {
            rq->next[0] = '\0';
            list_done(rq, 0, NULL);
            return;
        }
    }
    if (rq->pos_id[0] == '\0')
        snprintf(rq->next, sizeof(rq->next), "%c", rq->finished_part ? 'F' : 'U');
    else
        snprintf(rq->next, sizeof(rq->next), "%c%s:%s", rq->finished_part ? 'F' : 'U',
                 rq->pos_score, rq->pos_id);
    if (rq->n == rq->limit || rq->scanned >= LIST_SCAN_MAX) {
        list_done(rq, 0, NULL);
        return;
    }
    int rc = list_fetch(rq, c);
    if (rc != 0)
        list_done(rq, send_failed(rc), LOST);
}

static void on_list_record(saga_redis_t *c, redisReply *r, void *data) {
    slot_t *sl = data;
    list_rq_t *rq = sl->rq;
    char buf[WHY_MAX];
    const entry_t *e = &rq->entries[sl - rq->slots];
    sl->status = take_record(rq, e->id, r, &sl->it, &sl->keep, buf, sizeof(buf));
    if (sl->status != 0)
        sl->why = strdup(buf);
    if (++rq->got == rq->sent)
        page_done(rq, c);
}

/* The merge order of the part: unfinished ascending by (score, id),
 * finished descending. */
static int entry_cmp_asc(const void *pa, const void *pb) {
    const entry_t *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return strcmp(a->id, b->id); /* bytewise: compares as unsigned char */
}

static int entry_cmp_desc(const void *pa, const void *pb) { return entry_cmp_asc(pb, pa); }

/* The merged round: the first rq->round entries of every shard's answers,
 * their records asked for. */
static void round_merged(list_rq_t *rq, saga_redis_t *c) {
    qsort(rq->entries, rq->nentries, sizeof(*rq->entries),
          rq->finished_part ? entry_cmp_desc : entry_cmp_asc);
    size_t n = rq->nentries < rq->round ? rq->nentries : rq->round;
    if (n == 0) {
        page_done(rq, c);
        return;
    }
    if ((rq->slots = calloc(n, sizeof(*rq->slots))) == NULL) {
        list_done(rq, -ENOMEM, "out of memory");
        return;
    }
    rq->nids = n;
    for (size_t i = 0; i < n; i++) {
        rq->slots[i].rq = rq;
        rq->slots[i].status = SAGA_EUNAVAILABLE; /* until answered */
    }
    for (size_t i = 0; i < n; i++, rq->sent++) {
        char key[SAGA_ID_MAX + 16];
        int klen = snprintf(key, sizeof(key), SAGA_KEY_RECORD_FMT, rq->entries[i].id);
        const char *argv[] = {"HMGET", key, "state", "saga", "created", "reason", "owner"};
        size_t len[] = {5, (size_t)klen, 5, 4, 7, 6, 5};
        int rc = saga_redis_command_argv(c, on_list_record, &rq->slots[i], 7, argv, len);
        if (rc != 0) {
            /* Those sent are answered; the rest stay failed (their slots'
             * status), which fails the page if it gets that far. */
            for (size_t j = i; j < n; j++)
                rq->slots[j].why = strdup(LOST);
            if (i == 0) {
                list_done(rq, send_failed(rc), LOST);
                return;
            }
            break;
        }
    }
}

/* Checks one shard's answer (the key named in messages) and adds its
 * entries to the round. Returns 0, or a status with *why set. */
static int take_ids(list_rq_t *rq, const redisReply *r, const char *key, const char **why,
                    char *buf, size_t buflen) {
    int status = reply_status(r, why);
    if (status != 0)
        return status;
    if (r->type != REDIS_REPLY_ARRAY || !saga_redis_all_strings(r) || r->elements % 2 != 0 ||
        r->elements / 2 > rq->round) {
        snprintf(buf, buflen, "%s: expected an array of ids and scores", key);
        *why = buf;
        return SAGA_ESTORE;
    }
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *e = r->element[i], *sc = r->element[i + 1];
        char q[64];
        if (memchr(e->str, '\0', (size_t)e->len) != NULL || !saga_id_valid(e->str)) {
            quote(q, sizeof(q), e->str, (size_t)e->len);
            snprintf(buf, buflen, "%s holds '%s', not a saga id", key, q);
            *why = buf;
            return SAGA_ECORRUPT;
        }
        if (!score_valid(sc->str, (size_t)sc->len, rq->finished_part)) {
            quote(q, sizeof(q), sc->str, (size_t)sc->len);
            snprintf(buf, buflen, "%s holds saga %s with score '%s', not Unix ms", key, e->str,
                     q);
            *why = buf;
            return SAGA_ECORRUPT;
        }
    }
    size_t n = r->elements / 2;
    entry_t *grown = realloc(rq->entries, (rq->nentries + n + 1) * sizeof(*grown));
    if (grown == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    rq->entries = grown;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[2 * i], *sc = r->element[2 * i + 1];
        entry_t *en = &rq->entries[rq->nentries];
        en->id = strdup(e->str);
        en->score = strdup(sc->str);
        en->value = strtoll(sc->str, NULL, 10); /* checked by score_valid */
        if (en->id == NULL || en->score == NULL) {
            free(en->id);
            free(en->score);
            *why = "out of memory";
            return -ENOMEM;
        }
        rq->nentries++;
    }
    return 0;
}

/* What a shard's answer belongs to: the request, and the shard's key
 * (named in messages). */
typedef struct shard_ask_s {
    list_rq_t *rq;
    char key[SHARD_KEY_MAX];
} shard_ask_t;

static void on_list_ids(saga_redis_t *c, redisReply *r, void *data) {
    shard_ask_t *ask = data;
    list_rq_t *rq = ask->rq;
    const char *why = NULL;
    char buf[WHY_MAX];
    if (rq->status == 0) {
        int status = take_ids(rq, r, ask->key, &why, buf, sizeof(buf));
        if (status != 0) {
            rq->status = status;
            snprintf(rq->why, sizeof(rq->why), "%s", why);
        }
    }
    free(ask);
    if (++rq->answered < rq->asked)
        return;
    if (rq->status != 0) {
        list_done(rq, rq->status, rq->why);
        return;
    }
    round_merged(rq, c);
}

/* Entries a round asks of each shard: LIST_PAGE when a filter may drop
 * records, else what the page still needs. */
static size_t round_size(const list_rq_t *rq) {
    if (rq->has_state || rq->saga != NULL)
        return LIST_PAGE;
    size_t want = rq->limit > rq->n ? rq->limit - rq->n : 1;
    return want < LIST_PAGE ? want : LIST_PAGE;
}

/* Asks every shard for the next round_size() entries of the current part
 * after the current position. Returns 0 (the answers will come), or the
 * failure to send the first (nothing will call back). */
static int list_fetch(list_rq_t *rq, saga_redis_t *c) {
    char count[24];
    rq->round = round_size(rq);
    size_t cl = saga_fmt_u64(count, rq->round);
    for (unsigned s = 0; s < rq->sh->k; s++) {
        shard_ask_t *ask = malloc(sizeof(*ask));
        int kl = ask != NULL ? saga_shards_key(rq->sh, s, SAGA_SHARD_SAGAS, NULL, ask->key,
                                               sizeof(ask->key))
                             : -ENOMEM;
        int rc = kl < 0 ? kl : 0;
        if (rc == 0) {
            ask->rq = rq;
            const char *argv[] = {"FCALL", "saga_list_page", "1", ask->key,
                                  rq->finished_part ? "f" : "u", rq->pos_score, rq->pos_id,
                                  count};
            size_t len[] = {5, 14, 1, (size_t)kl, 1, strlen(rq->pos_score), strlen(rq->pos_id),
                            cl};
            rc = saga_redis_command_argv(c, on_list_ids, ask, 8, argv, len);
        }
        if (rc != 0) {
            free(ask);
            if (rq->asked == 0)
                return rc;
            /* The shards asked answer; the round fails then. */
            rq->status = send_failed(rc);
            snprintf(rq->why, sizeof(rq->why), "%s", LOST);
            return 0;
        }
        rq->asked++;
    }
    return 0;
}

/* A score of the part as the index holds it, in ms: below 0 in the
 * unfinished part, from 0 in the finished one; integer digits only. */
static bool score_valid(const char *p, size_t n, bool finished_part) {
    bool neg = n > 0 && p[0] == '-';
    size_t digits = n - (neg ? 1 : 0);
    if (digits < 1 || digits > SCORE_MAX - 1 || neg == finished_part)
        return false;
    for (size_t i = neg ? 1 : 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    if (digits > 1 && p[neg ? 1 : 0] == '0')
        return false; /* one spelling per score */
    return !(neg && digits == 1 && p[1] == '0'); /* "-0" is not below 0 */
}

/* Splits a cursor into the part and the position; see the top of List. */
static int parse_cursor(const char *cur, bool *finished, char *score, char *id, char *why,
                        size_t whylen) {
    size_t n = strlen(cur);
    if (n > SAGA_OPERATOR_CURSOR_MAX) {
        snprintf(why, whylen, "cursor is %zu bytes, longer than any cursor (%d)", n,
                 SAGA_OPERATOR_CURSOR_MAX);
        return -EINVAL;
    }
    if ((cur[0] == 'u' || cur[0] == 'f') && cur[1] == ':') {
        snprintf(why, whylen, "cursor '%.24s' is a position cursor of an older saga, no longer "
                 "taken: list again from the first page", cur);
        return -EINVAL;
    }
    if (cur[0] != 'U' && cur[0] != 'F') {
        snprintf(why, whylen, "cursor must be a `next` value of an earlier page (it starts "
                 "with U or F)");
        return -EINVAL;
    }
    *finished = cur[0] == 'F';
    score[0] = id[0] = '\0';
    if (n == 1)
        return 0; /* the start of the part */
    const char *colon = strchr(cur + 1, ':');
    size_t sl = colon ? (size_t)(colon - cur - 1) : 0;
    if (colon == NULL || !score_valid(cur + 1, sl, *finished)) {
        snprintf(why, whylen, "cursor: expected %s then ':' and a saga id after '%c'",
                 *finished ? "a score from 0" : "a score below 0", cur[0]);
        return -EINVAL;
    }
    if (!saga_id_valid(colon + 1)) {
        snprintf(why, whylen, "cursor: the part after the score is not a saga id");
        return -EINVAL;
    }
    memcpy(score, cur + 1, sl);
    score[sl] = '\0';
    snprintf(id, SAGA_ID_MAX + 1, "%s", colon + 1);
    return 0;
}

int saga_operator_cursor_check(const char *cursor, char *why, size_t whylen) {
    bool finished;
    char score[SCORE_MAX + 1], id[SAGA_ID_MAX + 1], buf[160];
    int rc = parse_cursor(cursor, &finished, score, id, buf, sizeof(buf));
    if (whylen > 0)
        snprintf(why, whylen, "%s", rc == 0 ? "" : buf);
    return rc;
}

int saga_operator_list(saga_store_t *s, const saga_operator_list_query_t *q,
                       saga_operator_list_cb cb, void *data) {
    if (q->limit < 1 || q->limit > SAGA_OPERATOR_LIST_MAX)
        return -EINVAL;
    bool finished = q->state != NULL && saga_state_terminal(*q->state);
    char score[SCORE_MAX + 1] = "", id[SAGA_ID_MAX + 1] = "", why[160];
    if (q->cursor != NULL &&
        parse_cursor(q->cursor, &finished, score, id, why, sizeof(why)) != 0)
        return -EINVAL;
    int rc = 0;
    saga_redis_t *c = conn_of(s, &rc);
    if (c == NULL)
        return rc;
    const saga_shards_t *sh = shards_of(s, &rc);
    if (sh == NULL)
        return rc;
    list_rq_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    rq->cb = cb;
    rq->data = data;
    rq->sh = sh;
    rq->has_state = q->state != NULL;
    rq->state = q->state ? *q->state : SAGA_STATE_RUNNING;
    rq->limit = q->limit;
    rq->finished_part = finished;
    memcpy(rq->pos_score, score, sizeof(score));
    memcpy(rq->pos_id, id, sizeof(id));
    rq->items = calloc(q->limit, sizeof(*rq->items));
    if (rq->items == NULL || (q->saga != NULL && (rq->saga = strdup(q->saga)) == NULL)) {
        free(rq->items);
        free(rq);
        return -ENOMEM;
    }
    if ((rc = list_fetch(rq, c)) != 0) {
        free(rq->items);
        free(rq->saga);
        free(rq);
        return send_failed(rc);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Cancel, retry                                                           */
/* ---------------------------------------------------------------------- */

typedef struct request_rq_s {
    saga_operator_request_cb cb;
    void *data;
    saga_operator_request_t res;
    char *owner;
    char id[SAGA_ID_MAX + 1];
    char orphans[SHARD_KEY_MAX]; /* the orphans of the saga's shard */
} request_rq_t;

static void request_done(request_rq_t *rq, int status, const char *why) {
    rq->cb(status, status == 0 ? NULL : why, status == 0 ? &rq->res : NULL, rq->data);
    free(rq->owner);
    free(rq);
}

static void on_woken(saga_redis_t *c, redisReply *r, void *data) {
    request_rq_t *rq = data;
    (void)c;
    const char *why = NULL;
    int status = reply_status(r, &why);
    if (status == 0 && r->type != REDIS_REPLY_INTEGER) {
        why = "the wake-up: expected an integer";
        status = SAGA_ESTORE;
    }
    request_done(rq, status, why);
}

static void on_request(saga_redis_t *c, redisReply *r, void *data) {
    request_rq_t *rq = data;
    const char *why = NULL;
    int status = reply_status(r, &why);
    if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                        r->element[0]->type != REDIS_REPLY_STRING ||
                        r->element[1]->type != REDIS_REPLY_INTEGER ||
                        (r->element[1]->integer != 0 && r->element[1]->integer != 1))) {
        why = "unexpected answer from Redis";
        status = SAGA_ESTORE;
    }
    if (status != 0) {
        request_done(rq, status, why);
        return;
    }
    const redisReply *owner = r->element[0];
    if (owner->len > 0) {
        if ((rq->owner = saga_memdup(owner->str, (size_t)owner->len)) == NULL) {
            request_done(rq, -ENOMEM, "out of memory");
            return;
        }
        rq->res.owner = rq->owner;
    }
    if (r->element[1]->integer == 0) {
        rq->res.next = SAGA_OPERATOR_UNMANAGED; /* nobody to tell */
        request_done(rq, 0, NULL);
        return;
    }
    /* Its owner looks at its wake-up list a few times a second; a saga
     * without one goes to the orphans any worker claims. */
    char *key;
    size_t klen;
    if (owner->len > 0) {
        rq->res.next = SAGA_OPERATOR_OWNER;
        klen = sizeof(SAGA_KEY_WAKE) - 1 + (size_t)owner->len;
        if ((key = malloc(klen + 1)) == NULL) {
            request_done(rq, -ENOMEM, "out of memory");
            return;
        }
        memcpy(key, SAGA_KEY_WAKE, sizeof(SAGA_KEY_WAKE) - 1);
        memcpy(key + sizeof(SAGA_KEY_WAKE) - 1, owner->str, (size_t)owner->len + 1);
    } else {
        rq->res.next = SAGA_OPERATOR_ORPHAN;
        klen = strlen(rq->orphans);
        if ((key = strdup(rq->orphans)) == NULL) {
            request_done(rq, -ENOMEM, "out of memory");
            return;
        }
    }
    const char *argv[] = {rq->res.next == SAGA_OPERATOR_OWNER ? "RPUSH" : "SADD", key, rq->id};
    size_t len[] = {strlen(argv[0]), klen, strlen(rq->id)};
    int rc = saga_redis_command_argv(c, on_woken, rq, 3, argv, len);
    free(key);
    if (rc != 0) {
        char buf[WHY_MAX];
        snprintf(buf, sizeof(buf), "recorded, but the worker could not be told: %s",
                 strerror(-rc));
        request_done(rq, send_failed(rc), buf);
    }
}

/* Who asked goes into a history entry, whose fields are tab-separated:
 * printable text only, and short. */
static bool who_valid(const char *who) {
    size_t n = strlen(who);
    if (n > SAGA_OPERATOR_WHO_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)who[i] < 0x20 || who[i] == 0x7f)
            return false;
    return true;
}

static int request(saga_store_t *s, const char *fn, const char *id, const char *who,
                   saga_operator_request_cb cb, void *data) {
    if (id == NULL || !saga_id_valid(id) || (who != NULL && !who_valid(who)))
        return -EINVAL;
    int rc = 0;
    saga_redis_t *c = conn_of(s, &rc);
    if (c == NULL)
        return rc;
    const saga_shards_t *sh = shards_of(s, &rc);
    if (sh == NULL)
        return rc;
    request_rq_t *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    rq->cb = cb;
    rq->data = data;
    snprintf(rq->id, sizeof(rq->id), "%s", id);
    if (saga_shards_key(sh, saga_shards_of(sh, id), SAGA_SHARD_ORPHANS, NULL, rq->orphans,
                        sizeof(rq->orphans)) < 0) {
        free(rq);
        return -EINVAL;
    }
    if (who == NULL || who[0] == '\0')
        who = "operator";
    char rec[SAGA_ID_MAX + 16], hist[SAGA_ID_MAX + 24];
    int rl = snprintf(rec, sizeof(rec), SAGA_KEY_RECORD_FMT, id);
    int hl = snprintf(hist, sizeof(hist), SAGA_KEY_HISTORY_FMT, id);
    const char *argv[] = {"FCALL", fn, "2", rec, hist, who};
    size_t len[] = {5, strlen(fn), 1, (size_t)rl, (size_t)hl, strlen(who)};
    if ((rc = saga_redis_command_argv(c, on_request, rq, 6, argv, len)) != 0) {
        free(rq);
        return send_failed(rc);
    }
    return 0;
}

int saga_operator_cancel(saga_store_t *s, const char *id, const char *who,
                         saga_operator_request_cb cb, void *data) {
    return request(s, "saga_cancel", id, who, cb, data);
}

int saga_operator_retry(saga_store_t *s, const char *id, const char *who,
                        saga_operator_request_cb cb, void *data) {
    return request(s, "saga_retry", id, who, cb, data);
}
