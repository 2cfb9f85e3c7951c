/* store.c -- helpers shared by every store backend. */
#include "saga/store.h"
#include "util/bytes.h"

#include <errno.h>
#include <stdlib.h>
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

void saga_record_free(saga_record_t *r) {
    for (size_t i = 0; i < r->nfields; i++) {
        free((char *)r->fields[i].key);
        free((char *)r->fields[i].val);
    }
    free(r->fields);
    r->fields = NULL;
    r->nfields = 0;
}

int saga_record_copy(saga_record_t *dst, const saga_record_t *src) {
    dst->priv = NULL;
    dst->nfields = 0;
    if ((dst->fields = calloc(src->nfields + 1, sizeof(*dst->fields))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < src->nfields; i++) {
        const saga_kv_t *kv = &src->fields[i];
        char *k = saga_memdup(kv->key, kv->klen), *v = saga_memdup(kv->val, kv->vlen);
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            saga_record_free(dst);
            return -ENOMEM;
        }
        dst->fields[dst->nfields++] = (saga_kv_t){k, kv->klen, v, kv->vlen};
    }
    return 0;
}
