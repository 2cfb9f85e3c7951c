/*
 * strmap.h -- a hash map from C strings to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups stay short after many deletions). The map does not
 * own keys or values: a key must stay valid and unchanged while it is in the
 * map (the usual pattern: the key is a field of the value).
 */
#ifndef SAGA_STRMAP_H
#define SAGA_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct saga_strmap_slot_s {
    const char *key; /* NULL: empty */
    void *value;
    uint64_t hash;
} saga_strmap_slot_t;

typedef struct saga_strmap_s {
    saga_strmap_slot_t *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
} saga_strmap_t;

void saga_strmap_init(saga_strmap_t *m);
void saga_strmap_close(saga_strmap_t *m); /* frees the table only */

/* The value stored under `key`, or NULL. */
void *saga_strmap_get(const saga_strmap_t *m, const char *key);

/* Stores `value` under `key`, replacing any previous value (returned in
 * *old when old != NULL, else NULL). Returns 0 or -ENOMEM (map unchanged). */
int saga_strmap_put(saga_strmap_t *m, const char *key, void *value, void **old);

/* Removes `key`; returns its value, or NULL when absent. */
void *saga_strmap_del(saga_strmap_t *m, const char *key);

/* Iteration: for (size_t i = 0; saga_strmap_next(m, &i, &k, &v);) ...
 * Do not insert or delete while iterating. */
int saga_strmap_next(const saga_strmap_t *m, size_t *pos, const char **key,
                     void **value);

uint64_t saga_strhash(const char *s);

#endif
