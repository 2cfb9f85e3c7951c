/*
 * store_timed.h -- a store that times the writes of another.
 *
 * A decorator over any store (saga/store.h): every operation goes to the
 * store it wraps, unchanged; each write's time from its submission to its
 * acknowledgement (its callback) is handed to a hook with the write's
 * status, before the caller's callback runs. The worker uses it for its
 * checkpoint-write latency histogram and its count of fenced writes
 * (docs/operations.md, "Metrics").
 *
 * The wrapped store is borrowed: closing the timed store through its ops
 * closes the wrapped one too (and frees the timed store once it closed);
 * saga_store_timed_free() frees only the decorator, leaving the wrapped
 * store open. Loop thread only, as every store.
 */
#ifndef SAGA_STORE_TIMED_H
#define SAGA_STORE_TIMED_H

#include <stdint.h>

#include "saga/store.h"

/* status: the write's result as its callback gets it; elapsed_ns: from
 * the write call to its acknowledgement (uv_hrtime()). */
typedef void (*saga_store_timed_hook)(int status, uint64_t elapsed_ns, void *data);

/* Wraps `inner` (borrowed: it must outlive the timed store). Returns NULL
 * when out of memory. */
saga_store_t *saga_store_timed_new(saga_store_t *inner, saga_store_timed_hook hook,
                                   void *data);

/* The store it wraps (for calls outside the store interface), or NULL when
 * `s` is not a timed store. */
saga_store_t *saga_store_timed_inner(saga_store_t *s);

/* Frees the decorator without closing the wrapped store. Writes still in
 * flight are passed on to their callers when they complete, without the
 * hook; the decorator is freed then, after the last of them. Accepts
 * NULL. */
void saga_store_timed_free(saga_store_t *s);

#endif
