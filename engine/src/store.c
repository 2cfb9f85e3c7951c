/* store.c -- helpers shared by every store backend. */
#include "store.h"

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

size_t saga_fmt_u64(char *buf, uint64_t v) {
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

int saga_parse_u64(const char *s, size_t len, uint64_t *out) {
    if (len == 0 || len > 20 || (s[0] == '0' && len > 1))
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

char *saga_memdup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
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
