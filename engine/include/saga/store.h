/*
 * store.h -- where sagas are checkpointed.
 *
 * Every transition of a saga is one store write: a set of field updates to
 * the saga's record plus the events appended to its history, applied
 * atomically. The engine never acts on a transition before its write was
 * acknowledged (write-ahead), and keeps at most one write per saga in flight,
 * so a write's `seq` (the record's transition counter after the write)
 * orders them and lets a store recognise a write it already applied when it
 * has to resend it after a lost connection. Only the store's own resends
 * are recognised: a write the caller makes twice is two writes, and the
 * second is refused (SAGA_ECONFLICT; SAGA_EEXIST for a create).
 *
 * Writes of different sagas are independent and may be pipelined.
 *
 * Backends: store_memory.c (in process, not durable) and store_redis.c.
 * All calls are made on the engine's loop thread; callbacks run on it too,
 * never from inside the call that registered them. A call that returns an
 * error never runs its callback.
 */
#ifndef SAGA_STORE_H
#define SAGA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A field of a saga record: bytes, not necessarily NUL-terminated. */
typedef struct saga_kv_s {
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
} saga_kv_t;

/* One history event. Strings are NUL-terminated; NULL when not relevant. */
typedef struct saga_event_s {
    const char *type;    /* "saga.created", "step.started", ... */
    const char *step;    /* step name or NULL */
    const char *phase;   /* "action" | "compensation" | "try" | "confirm" |
                            "cancel" | NULL */
    uint32_t attempt;    /* 0 when not relevant */
    const char *detail;  /* message, reason, outcome; may be NULL */
    size_t detail_len;
} saga_event_t;

/* A history entry as read back. */
typedef struct saga_history_entry_s {
    int64_t ts_ms;       /* store time, Unix ms */
    uint64_t seq;        /* the write that appended it */
    saga_event_t ev;
    const char *worker;  /* who wrote it, or "" */
} saga_history_entry_t;

/* How long a store keeps a finished saga unless told otherwise. */
#define SAGA_DEFAULT_RETENTION_MS (7ull * 24 * 3600 * 1000)

#define SAGA_WRITE_CREATE   0x1u /* the record must not exist yet */
#define SAGA_WRITE_TERMINAL 0x2u /* the saga is finished: start retention */
#define SAGA_WRITE_SETTLED  0x4u /* the saga reaches completed, compensated or
                                    stuck with this write: stores that can
                                    tell those waiting on it do (Redis:
                                    store/settled.h) */

typedef struct saga_store_write_s {
    const char *id;
    uint64_t seq;        /* the record's seq after this write (create: 1) */
    /* The writer's fencing token (0: it holds none). A record whose field
     * "fence" holds a token (its owner's create writes it, a takeover bumps
     * it) accepts only writes carrying that token, others get SAGA_EFENCED;
     * a record without one (empty or absent) accepts any. */
    uint64_t fence;
    unsigned flags;      /* SAGA_WRITE_* */
    const char *worker;  /* recorded with the events */
    const saga_kv_t *fields;
    size_t nfields;
    const saga_event_t *events;
    size_t nevents;
    /* With SAGA_WRITE_TERMINAL: how long the finished saga is kept (its
     * definition's `retention` of this outcome); 0: the store's default. */
    uint64_t retention_ms;
} saga_store_write_t;

/* Signals a store may return with an acknowledged write. */
#define SAGA_SIGNAL_CANCEL 0x1u /* an operator asked to cancel the saga */

/* status: 0 (applied, or found already applied), SAGA_EFENCED (another
 * owner), SAGA_ECONFLICT (seq mismatch), SAGA_EEXIST (create of an existing
 * record), or another negative code. */
typedef void (*saga_store_write_cb)(int status, unsigned signals, void *data);

/* A saga record as loaded: fields in no particular order. */
typedef struct saga_record_s {
    saga_kv_t *fields;
    size_t nfields;
    void *priv;          /* backend-owned storage */
} saga_record_t;

/* status 0 with a record (valid until the callback returns), or
 * SAGA_ENOTFOUND / a negative code with rec == NULL. */
typedef void (*saga_store_load_cb)(int status, const saga_record_t *rec,
                                   void *data);
/* status 0 with the saga's entries in order (valid until the callback
 * returns). A saga the store does not hold has none (status 0, n 0): a
 * store need not tell it from one whose history was not kept. */
typedef void (*saga_store_history_cb)(int status,
                                      const saga_history_entry_t *entries,
                                      size_t n, void *data);
typedef void (*saga_store_text_cb)(int status, const char *text, size_t len,
                                   void *data);
typedef void (*saga_store_ids_cb)(int status, const char *const *ids, size_t n,
                                  void *data);
typedef void (*saga_store_done_cb)(int status, void *data);

typedef struct saga_store_s saga_store_t;

typedef struct saga_store_ops_s {
    const char *name;
    /* `w` and everything it points to stay valid until `cb` runs. */
    int (*write)(saga_store_t *s, const saga_store_write_t *w,
                 saga_store_write_cb cb, void *data);
    int (*load)(saga_store_t *s, const char *id, saga_store_load_cb cb,
                void *data);
    int (*history)(saga_store_t *s, const char *id, saga_store_history_cb cb,
                   void *data);
    /* Definitions are stored by content hash; storing one twice is fine. */
    int (*put_definition)(saga_store_t *s, const char *hash, const char *text,
                          size_t len, saga_store_done_cb cb, void *data);
    int (*get_definition)(saga_store_t *s, const char *hash,
                          saga_store_text_cb cb, void *data);
    /* Ids of every saga that is not finished (running, compensating, stuck). */
    int (*list_unfinished)(saga_store_t *s, saga_store_ids_cb cb, void *data);
    /* Stops the store; `closed` runs once every handle is closed, and then
     * the store is freed. Outstanding callbacks run first, each once: with
     * their result when the store has it (the memory store), else with an
     * error (SAGA_ECLOSING: a write's outcome is then unknown). */
    void (*close)(saga_store_t *s, void (*closed)(void *data), void *data);
} saga_store_ops_t;

struct saga_store_s {
    const saga_store_ops_t *ops;
};

/* Deep-copies a record (one that outlives its callback). Returns 0, or
 * -ENOMEM with `dst` holding nothing to free. */
int saga_record_copy(saga_record_t *dst, const saga_record_t *src);

/* Frees what saga_record_copy() allocated. Accepts an empty record. */
void saga_record_free(saga_record_t *r);

/* Convenience: the field `key` of a record, or NULL (len set when found). */
const char *saga_record_get(const saga_record_t *r, const char *key,
                            size_t *len);

#endif
