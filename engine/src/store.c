/* store.c -- helpers shared by every store backend. */
#include "store.h"

#include <string.h>

const char *saga_record_get(const saga_record_t *r, const char *key,
                            size_t *len) {
    size_t kl = strlen(key);
    for (size_t i = 0; i < r->nfields; i++) {
        if (r->fields[i].klen == kl && memcmp(r->fields[i].key, key, kl) == 0) {
            if (len != NULL)
                *len = r->fields[i].vlen;
            return r->fields[i].val;
        }
    }
    return NULL;
}
