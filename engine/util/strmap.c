#include "util/strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t saga_strhash(const char *s) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a, then a final mix */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void saga_strmap_init(saga_strmap_t *m) { memset(m, 0, sizeof(*m)); }

void saga_strmap_close(saga_strmap_t *m) {
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static size_t find_slot(const saga_strmap_t *m, const char *key, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const saga_strmap_slot_t *s = &m->slots[i];
        if (s->key == NULL || (s->hash == h && strcmp(s->key, key) == 0))
            return i;
    }
}

void *saga_strmap_get(const saga_strmap_t *m, const char *key) {
    if (m->count == 0)
        return NULL;
    size_t i = find_slot(m, key, saga_strhash(key));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

static int grow(saga_strmap_t *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    saga_strmap_slot_t *ns = calloc(ncap, sizeof(*ns));
    if (ns == NULL)
        return -ENOMEM;
    saga_strmap_t n = {ns, ncap, m->count};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != NULL)
            ns[find_slot(&n, m->slots[i].key, m->slots[i].hash)] = m->slots[i];
    free(m->slots);
    *m = n;
    return 0;
}

int saga_strmap_put(saga_strmap_t *m, const char *key, void *value, void **old) {
    if (old != NULL)
        *old = NULL;
    /* Keep the load factor under 3/4. */
    if ((m->count + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc != 0)
            return rc;
    }
    uint64_t h = saga_strhash(key);
    size_t i = find_slot(m, key, h);
    saga_strmap_slot_t *s = &m->slots[i];
    if (s->key != NULL) {
        if (old != NULL)
            *old = s->value;
        s->key = key;
        s->value = value;
        return 0;
    }
    s->key = key;
    s->value = value;
    s->hash = h;
    m->count++;
    return 0;
}

void *saga_strmap_del(saga_strmap_t *m, const char *key) {
    if (m->count == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key, saga_strhash(key));
    if (m->slots[i].key == NULL)
        return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift: pull later entries of the cluster into the hole when
     * their home slot does not lie cyclically in (hole, j]. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        int in_range = (hole <= j) ? (home > hole && home <= j)
                                   : (home > hole || home <= j);
        if (!in_range) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = NULL;
    m->slots[hole].value = NULL;
    m->count--;
    return value;
}

int saga_strmap_next(const saga_strmap_t *m, size_t *pos, const char **key,
                     void **value) {
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->slots[i].key != NULL) {
            *key = m->slots[i].key;
            if (value != NULL)
                *value = m->slots[i].value;
            *pos = i + 1;
            return 1;
        }
    }
    *pos = m->cap;
    return 0;
}
