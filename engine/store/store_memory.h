/*
 * store_memory.h -- the in-process store (not durable; see store.h).
 */
#ifndef SAGA_STORE_MEMORY_H
#define SAGA_STORE_MEMORY_H

#include <stdbool.h>

#include <uv.h>

#include "saga/store.h"

typedef struct saga_store_memory_options_s {
    bool keep_finished; /* keep records of finished sagas (saga run) */
    bool keep_history;  /* keep history events (saga run, tests) */
} saga_store_memory_options_t;

/* Creates a memory store on `loop` (opt may be NULL: keep nothing extra).
 * Returns NULL when out of memory. Release with store->ops->close(). */
saga_store_t *saga_store_memory_new(uv_loop_t *loop,
                                    const saga_store_memory_options_t *opt);

#endif
