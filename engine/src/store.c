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
