/*
 * lease.c -- see lease.h.
 *
 * Each operation is one command (a release is two, in sequence) whose
 * reply is decoded strictly into C values before the caller sees it: a
 * reply of another shape is SAGA_ESTORE saying what was expected, a record
 * field that cannot be read is SAGA_ECORRUPT naming the field and quoting
 * its value.
 */
#include "store/lease.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis/redis_conn.h"
#include "saga/errors.h"
#include "store/call.h"
#include "store/keys.h"
#include "store/redis_replies.h"
#include "store/shards.h"
#include "store/store_redis.h"
#include "util/bytes.h"

#define KEY_MAX 256

typedef enum kind_e {
    K_DONE,       /* any non-error reply */
    K_INTEGER,    /* an integer reply */
    K_HEARTBEAT,
    K_NAMES,      /* an array of strings (nil: none) */
    K_CLAIM,
    K_RELEASE,    /* FCALL saga_release, then the set command */
    K_CANDIDATE,
    K_SCAN,
    K_COUNT,
    K_HELD,       /* ZSCORE: a score or nil */
} kind_t;

typedef struct call_s {
    kind_t kind;
    union {
        saga_lease_done_cb done;
        saga_lease_heartbeat_cb heartbeat;
        saga_lease_names_cb names;
        saga_lease_claim_cb claim;
        saga_lease_candidate_cb candidate;
        saga_lease_scan_cb scan;
        saga_lease_count_cb count;
        saga_lease_held_cb held;
    } cb;
    void *data;
    saga_redis_t *conn;
    /* A release: the set command that follows saga_release. */
    bool to_orphans;
    char id[SAGA_ID_MAX + 1];
    char owned[KEY_MAX];
    char orphans[KEY_MAX];
} call_t;

unsigned saga_lease_shards(saga_store_t *s) {
    const saga_shards_t *sh = s != NULL ? saga_store_redis_shards(s) : NULL;
    return sh != NULL ? sh->k : 0;
}

/* The key of the set of `owner` (NULL: the orphans) in shard `shard` into
 * buf. Returns 0, -EINVAL when the name is empty or does not fit or the
 * shard is out of range, SAGA_EUNAVAILABLE when the store is not ready
 * (its shards are not known yet). */
static int set_key(saga_store_t *s, unsigned shard, char *buf, size_t size,
                   const char *owner) {
    const saga_shards_t *sh = saga_store_redis_shards(s);
    if (sh == NULL)
        return saga_store_redis_conn(s) != NULL ? SAGA_EUNAVAILABLE : -EINVAL;
    if (owner != NULL && owner[0] == '\0')
        return -EINVAL;
    int n = owner != NULL ? saga_shards_key(sh, shard, SAGA_SHARD_OWNED, owner, buf, size)
                          : saga_shards_key(sh, shard, SAGA_SHARD_ORPHANS, NULL, buf, size);
    return n < 0 ? -EINVAL : 0;
}

/* The same for the set that holds saga `id`: its own shard's. */
static int id_set_key(saga_store_t *s, const char *id, char *buf, size_t size,
                      const char *owner) {
    const saga_shards_t *sh = saga_store_redis_shards(s);
    return set_key(s, sh != NULL ? saga_shards_of(sh, id) : 0, buf, size, owner);
}

static bool id_ok(const char *id) { return id != NULL && id[0] != '\0' && strlen(id) <= SAGA_ID_MAX; }

static bool name_ok(const char *name) { return name != NULL && name[0] != '\0' && strlen(name) < 200; }

/* ---------------------------------------------------------------------- */
/* Replies                                                                 */
/* ---------------------------------------------------------------------- */

/* An array of strings (or nil: none) as a NULL-terminated vector of
 * pointers into the reply. Returns 0, SAGA_ESTORE or -ENOMEM. */
static int names_of(const redisReply *r, const char ***out, size_t *n, const char **why) {
    *out = NULL;
    *n = 0;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY || !saga_redis_all_strings(r)) {
        *why = "expected an array of strings";
        return SAGA_ESTORE;
    }
    const char **v = calloc(r->elements + 1, sizeof(*v));
    if (v == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->elements; i++)
        v[i] = r->element[i]->str;
    *out = v;
    *n = r->elements;
    return 0;
}

static void finish_names(call_t *c, int status, const redisReply *r, const char *why) {
    const char **v = NULL;
    size_t n = 0;
    if (status == 0)
        status = names_of(r, &v, &n, &why);
    c->cb.names(status, status == 0 ? v : NULL, n, status == 0 ? NULL : why, c->data);
    free(v);
}

static void finish_heartbeat(call_t *c, int status, const redisReply *r, const char *why) {
    bool expired = false, unlisted = false;
    if (status == 0) {
        /* {now, 1 when the previous lease had expired else 0, 1 when the
         * worker serves nothing on record else 0} */
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[0]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[2]->type != REDIS_REPLY_INTEGER ||
            (r->element[1]->integer != 0 && r->element[1]->integer != 1) ||
            (r->element[2]->integer != 0 && r->element[2]->integer != 1)) {
            status = SAGA_ESTORE;
            why = "expected [now, 0 or 1, 0 or 1]";
        } else {
            expired = r->element[1]->integer == 1;
            unlisted = r->element[2]->integer == 1;
        }
    }
    c->cb.heartbeat(status, expired, unlisted, status == 0 ? NULL : why, c->data);
}

static void finish_claim(call_t *c, int status, const redisReply *r, const char *why) {
    uint64_t fence = 0;
    if (status == 0) {
        if (r->type != REDIS_REPLY_INTEGER || r->integer < 1) {
            status = SAGA_ESTORE;
            why = "expected the new fence (an integer from 1)";
        } else {
            fence = (uint64_t)r->integer;
        }
    }
    c->cb.claim(status, fence, status == 0 ? NULL : why, c->data);
}

static void finish_count(call_t *c, int status, const redisReply *r, const char *why) {
    uint64_t n = 0;
    if (status == 0) {
        if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
            status = SAGA_ESTORE;
            why = "expected a count";
        } else {
            n = (uint64_t)r->integer;
        }
    }
    c->cb.count(status, n, status == 0 ? NULL : why, c->data);
}

static void finish_held(call_t *c, int status, const redisReply *r, const char *why) {
    bool held = false;
    if (status == 0) {
        if (r->type == REDIS_REPLY_STRING)
            held = true;
        else if (r->type != REDIS_REPLY_NIL)
            status = SAGA_ESTORE, why = "expected a score or nil";
    }
    c->cb.held(status, held, status == 0 ? NULL : why, c->data);
}

static void finish_scan(call_t *c, int status, const redisReply *r, const char *why) {
    const char **v = NULL;
    size_t n = 0;
    const char *next = NULL;
    if (status == 0) {
        /* [cursor, [id...]] */
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            status = SAGA_ESTORE;
            why = "expected [cursor, [id...]]";
        } else {
            uint64_t cursor;
            next = r->element[0]->str;
            if (saga_parse_u64(next, (size_t)r->element[0]->len, &cursor) != 0 &&
                strcmp(next, "0") != 0) {
                status = SAGA_ESTORE;
                why = "the cursor is not a number";
            } else {
                status = names_of(r->element[1], &v, &n, &why);
            }
        }
    }
    c->cb.scan(status, status == 0 ? next : NULL, status == 0 ? v : NULL, n,
               status == 0 ? NULL : why, c->data);
    free(v);
}

/* The candidate's fields [owner, fence, state, def, cancel]. */
static int decode_candidate(const redisReply *r, saga_lease_candidate_t *cd, char *why,
                            size_t whylen) {
    memset(cd, 0, sizeof(*cd));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        snprintf(why, whylen, "expected [owner, fence, state, def, cancel]");
        return SAGA_ESTORE;
    }
    for (size_t i = 0; i < 5; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING && r->element[i]->type != REDIS_REPLY_NIL) {
            snprintf(why, whylen, "expected [owner, fence, state, def, cancel] as strings or nil");
            return SAGA_ESTORE;
        }
    const redisReply *owner = r->element[0], *fence = r->element[1], *state = r->element[2],
                     *def = r->element[3], *cancel = r->element[4];
    if (state->type == REDIS_REPLY_NIL)
        return 0; /* gone (or never created) */
    cd->exists = true;
    if (saga_state_parse(state->str, &cd->state) != 0) {
        snprintf(why, whylen, "field 'state' is '%.40s', not a state", state->str);
        return SAGA_ECORRUPT;
    }
    if (def->type != REDIS_REPLY_STRING || def->len != 64) {
        snprintf(why, whylen, "field 'def' is '%.80s', not a definition hash",
                 def->type == REDIS_REPLY_STRING ? def->str : "(missing)");
        return SAGA_ECORRUPT;
    }
    cd->def = def->str;
    cd->managed = fence->type == REDIS_REPLY_STRING;
    if (cd->managed && saga_parse_u64(fence->str, (size_t)fence->len, &cd->fence) != 0) {
        snprintf(why, whylen, "field 'fence' is '%.40s', not a number", fence->str);
        return SAGA_ECORRUPT;
    }
    cd->owner = owner->type == REDIS_REPLY_STRING ? owner->str : "";
    cd->cancel = cancel->type == REDIS_REPLY_STRING && strcmp(cancel->str, "1") == 0;
    return 0;
}

static void finish_candidate(call_t *c, int status, const redisReply *r, const char *why) {
    saga_lease_candidate_t cd;
    char buf[200];
    if (status == 0 && (status = decode_candidate(r, &cd, buf, sizeof(buf))) != 0)
        why = buf;
    c->cb.candidate(status, status == 0 ? &cd : NULL, status == 0 ? NULL : why, c->data);
}

static void on_reply(saga_redis_t *conn, redisReply *r, void *data);

/* The answer to saga_release: 1 released, 0 gone; then the set command. */
static bool release_then_unlist(call_t *c, int *status, const redisReply *r,
                                const char **why) {
    if (*status != 0)
        return false;
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1)) {
        *status = SAGA_ESTORE;
        *why = "expected 0 or 1";
        return false;
    }
    c->kind = K_DONE;
    int rc = c->to_orphans
                 ? saga_redis_command(c->conn, on_reply, c, "SMOVE %s %s %s", c->owned,
                                      c->orphans, c->id)
                 : saga_redis_command(c->conn, on_reply, c, "SREM %s %s", c->owned, c->id);
    if (rc == 0)
        return true;
    *status = saga__call_send_status(rc);
    *why = "cannot send the set command";
    return false;
}

static void on_reply(saga_redis_t *conn, redisReply *r, void *data) {
    call_t *c = data;
    (void)conn;
    const char *why;
    int status = saga__call_status(r, &why);
    switch (c->kind) {
    case K_RELEASE:
        if (release_then_unlist(c, &status, r, &why))
            return; /* c goes on */
        if (c->cb.done != NULL)
            c->cb.done(status, status == 0 ? NULL : why, c->data);
        break;
    case K_DONE:
        if (c->cb.done != NULL)
            c->cb.done(status, status == 0 ? NULL : why, c->data);
        break;
    case K_INTEGER:
        if (status == 0 && r->type != REDIS_REPLY_INTEGER)
            status = SAGA_ESTORE, why = "expected an integer";
        if (c->cb.done != NULL)
            c->cb.done(status, status == 0 ? NULL : why, c->data);
        break;
    case K_HEARTBEAT: finish_heartbeat(c, status, r, why); break;
    case K_NAMES: finish_names(c, status, r, why); break;
    case K_CLAIM: finish_claim(c, status, r, why); break;
    case K_CANDIDATE: finish_candidate(c, status, r, why); break;
    case K_SCAN: finish_scan(c, status, r, why); break;
    case K_COUNT: finish_count(c, status, r, why); break;
    case K_HELD: finish_held(c, status, r, why); break;
    }
    free(c);
}

/* ---------------------------------------------------------------------- */
/* Sending                                                                 */
/* ---------------------------------------------------------------------- */

/* A call of `kind` on the store's connection; NULL with *rc set when the
 * store is not a Redis store or memory is short. `cb` is any callback. */
static call_t *call_new(saga_store_t *s, kind_t kind, void *data, int *rc) {
    saga_redis_t *conn = saga__call_conn(s);
    if (conn == NULL) {
        *rc = -EINVAL;
        return NULL;
    }
    call_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    c->kind = kind;
    c->data = data;
    c->conn = conn;
    return c;
}

/* What a send returned: 0, or the call's status (c freed). */
static int sent(call_t *c, int rc) {
    if (rc != 0)
        free(c);
    return saga__call_send_status(rc);
}

#define CALL(kind, field, cbv)                 \
    int rc = 0;                                \
    call_t *c = call_new(s, kind, data, &rc);  \
    if (c == NULL)                             \
        return rc;                             \
    c->cb.field = cbv

int saga_lease_heartbeat(saga_store_t *s, const char *worker, uint64_t lease_ms,
                         saga_lease_heartbeat_cb cb, void *data) {
    if (!name_ok(worker) || lease_ms == 0 || cb == NULL)
        return -EINVAL;
    CALL(K_HEARTBEAT, heartbeat, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "FCALL saga_heartbeat 2 %s %s %s %llu",
                                      SAGA_KEY_WORKERS, SAGA_KEY_SERVING, worker,
                                      (unsigned long long)lease_ms));
}

int saga_lease_dead_workers(saga_store_t *s, saga_lease_names_cb cb, void *data) {
    if (cb == NULL)
        return -EINVAL;
    CALL(K_NAMES, names, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "FCALL saga_dead_workers 1 %s",
                                      SAGA_KEY_WORKERS));
}

int saga_lease_deregister(saga_store_t *s, const char *worker, saga_lease_done_cb cb,
                          void *data) {
    if (!name_ok(worker))
        return -EINVAL;
    CALL(K_INTEGER, done, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "FCALL saga_deregister 2 %s %s %s",
                                      SAGA_KEY_WORKERS, SAGA_KEY_SERVING, worker));
}

int saga_lease_held(saga_store_t *s, const char *worker, saga_lease_held_cb cb, void *data) {
    if (!name_ok(worker) || cb == NULL)
        return -EINVAL;
    CALL(K_HELD, held, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "ZSCORE %s %s", SAGA_KEY_WORKERS,
                                      worker));
}

int saga_lease_claim(saga_store_t *s, const char *id, const char *expected,
                     const char *worker, saga_lease_claim_cb cb, void *data) {
    if (!id_ok(id) || expected == NULL || !name_ok(worker) || cb == NULL)
        return -EINVAL;
    CALL(K_CLAIM, claim, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c,
                                      "FCALL saga_claim 2 " SAGA_KEY_RECORD_FMT
                                      " " SAGA_KEY_HISTORY_FMT " %s %s",
                                      id, id, expected, worker));
}

int saga_lease_release(saga_store_t *s, const char *id, const char *worker, uint64_t fence,
                       bool to_orphans, saga_lease_done_cb cb, void *data) {
    if (!id_ok(id) || !name_ok(worker))
        return -EINVAL;
    CALL(K_RELEASE, done, cb);
    c->to_orphans = to_orphans;
    snprintf(c->id, sizeof(c->id), "%s", id);
    if ((rc = id_set_key(s, id, c->owned, sizeof(c->owned), worker)) != 0 ||
        (rc = id_set_key(s, id, c->orphans, sizeof(c->orphans), NULL)) != 0) {
        free(c);
        return rc;
    }
    return sent(c, saga_redis_command(c->conn, on_reply, c,
                                      "FCALL saga_release 2 " SAGA_KEY_RECORD_FMT
                                      " " SAGA_KEY_HISTORY_FMT " %s %llu",
                                      id, id, worker, (unsigned long long)fence));
}

int saga_lease_list_owned(saga_store_t *s, const char *id, const char *worker, bool listed,
                          const char *from, saga_lease_done_cb cb, void *data) {
    char to[KEY_MAX], src[KEY_MAX];
    if (!id_ok(id) || !name_ok(worker))
        return -EINVAL;
    int krc = id_set_key(s, id, to, sizeof(to), worker);
    if (krc == 0 && listed)
        krc = id_set_key(s, id, src, sizeof(src), from);
    if (krc != 0)
        return krc;
    CALL(K_INTEGER, done, cb);
    return sent(c, listed ? saga_redis_command(c->conn, on_reply, c, "SMOVE %s %s %s", src, to,
                                               id)
                          : saga_redis_command(c->conn, on_reply, c, "SADD %s %s", to, id));
}

int saga_lease_unlist(saga_store_t *s, const char *owner, const char *id,
                      saga_lease_done_cb cb, void *data) {
    char set[KEY_MAX];
    if (!id_ok(id))
        return -EINVAL;
    int krc = id_set_key(s, id, set, sizeof(set), owner);
    if (krc != 0)
        return krc;
    CALL(K_INTEGER, done, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "SREM %s %s", set, id));
}

int saga_lease_index_finished(saga_store_t *s, const char *id, saga_lease_done_cb cb,
                              void *data) {
    if (!id_ok(id))
        return -EINVAL;
    /* the index of the saga's shard */
    const saga_shards_t *sh = saga_store_redis_shards(s);
    char sagas[64];
    if (sh == NULL)
        return saga_store_redis_conn(s) != NULL ? SAGA_EUNAVAILABLE : -EINVAL;
    if (saga_shards_key(sh, saga_shards_of(sh, id), SAGA_SHARD_SAGAS, NULL, sagas,
                        sizeof(sagas)) < 0)
        return -EINVAL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    CALL(K_INTEGER, done, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "ZADD %s XX GT %lld %s", sagas,
                                      now, id));
}

int saga_lease_candidate(saga_store_t *s, const char *id, saga_lease_candidate_cb cb,
                         void *data) {
    if (!id_ok(id) || cb == NULL)
        return -EINVAL;
    CALL(K_CANDIDATE, candidate, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c,
                                      "HMGET " SAGA_KEY_RECORD_FMT
                                      " owner fence state def cancel",
                                      id));
}

int saga_lease_scan(saga_store_t *s, unsigned shard, const char *owner, const char *cursor,
                    size_t count, saga_lease_scan_cb cb, void *data) {
    char set[KEY_MAX];
    if (cursor == NULL || cursor[0] == '\0' || count == 0 || cb == NULL)
        return -EINVAL;
    int krc = set_key(s, shard, set, sizeof(set), owner);
    if (krc != 0)
        return krc;
    CALL(K_SCAN, scan, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "SSCAN %s %s COUNT %llu", set,
                                      cursor, (unsigned long long)count));
}

int saga_lease_set_size(saga_store_t *s, unsigned shard, const char *owner,
                        saga_lease_count_cb cb, void *data) {
    char set[KEY_MAX];
    if (cb == NULL)
        return -EINVAL;
    int krc = set_key(s, shard, set, sizeof(set), owner);
    if (krc != 0)
        return krc;
    CALL(K_COUNT, count, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "SCARD %s", set));
}

int saga_lease_sweep(saga_store_t *s, unsigned shard, uint64_t offset, size_t count,
                     saga_lease_names_cb cb, void *data) {
    char sagas[KEY_MAX];
    if (count == 0 || cb == NULL)
        return -EINVAL;
    const saga_shards_t *sh = saga_store_redis_shards(s);
    if (sh == NULL)
        return saga_store_redis_conn(s) != NULL ? SAGA_EUNAVAILABLE : -EINVAL;
    if (saga_shards_key(sh, shard, SAGA_SHARD_SAGAS, NULL, sagas, sizeof(sagas)) < 0)
        return -EINVAL;
    CALL(K_NAMES, names, cb);
    /* The unfinished sagas: the index's scores below 0 (keys.h). */
    return sent(c, saga_redis_command(c->conn, on_reply, c,
                                      "ZRANGEBYSCORE %s -inf (0 LIMIT %llu %llu", sagas,
                                      (unsigned long long)offset, (unsigned long long)count));
}

int saga_lease_wake_list(saga_store_t *s, const char *worker, size_t count,
                         saga_lease_names_cb cb, void *data) {
    if (!name_ok(worker) || count == 0 || cb == NULL)
        return -EINVAL;
    CALL(K_NAMES, names, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "LPOP " SAGA_KEY_WAKE "%s %llu",
                                      worker, (unsigned long long)count));
}

int saga_lease_publish_definition(saga_store_t *s, const char *worker, const char *name,
                                  const char *hash, saga_lease_done_cb cb, void *data) {
    if (!name_ok(worker) || name == NULL || name[0] == '\0' || strchr(name, '\n') != NULL ||
        hash == NULL || strlen(hash) != 64)
        return -EINVAL;
    CALL(K_INTEGER, done, cb);
    return sent(c, saga_redis_command(c->conn, on_reply, c, "FCALL saga_publish 2 %s %s %s %s %s",
                                      SAGA_KEY_DEFS, SAGA_KEY_SERVING, name, hash, worker));
}
