/*
 * store_memory.h -- the in-process store (not durable; see store.h).
 */
#ifndef SAGA_STORE_MEMORY_H
#define SAGA_STORE_MEMORY_H

#include <stdbool.h>

#include <uv.h>

#include "saga/store.h"

typedef struct saga_store_memory_options_s {
    bool keep_finished; /* keep records of finished sagas (saga run), each
                           until its retention runs out, as Redis does */
    bool keep_history;  /* keep history events (saga run, tests) */
    uint64_t retention_ms; /* finished sagas kept, when a write does not
                              say; 0: SAGA_DEFAULT_RETENTION_MS */
} saga_store_memory_options_t;

/* Creates a memory store on `loop` (opt may be NULL: keep nothing extra).
 * Returns NULL when out of memory. Release with store->ops->close(). */
saga_store_t *saga_store_memory_new(uv_loop_t *loop,
                                    const saga_store_memory_options_t *opt);

/* When the finished saga `id` expires (Unix ms), as Redis's index score
 * says it: its finish time plus the retention its last write carried (or
 * the store's). Returns 0, SAGA_ENOTFOUND (no such saga, or expired and
 * removed) or SAGA_ESTATE (not finished, or finished sagas are not kept). */
int saga_store_memory_expiry(saga_store_t *store, const char *id,
                             int64_t *expire_at);

#endif
