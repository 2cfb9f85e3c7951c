/*
 * shards.c -- see shards.h.
 */
#include "store/shards.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "redis/redis_conn.h"
#include "util/bytes.h"

#define SLOTS 16384u

void saga_shards_single(saga_shards_t *sh) {
    sh->k = 1;
    snprintf(sh->tag[0], sizeof(sh->tag[0]), "idx");
}

int saga_shards_spread(saga_shards_t *sh, unsigned k) {
    if (k < 1 || k > SAGA_SHARDS_MAX)
        return -EINVAL;
    if (k == 1) {
        saga_shards_single(sh);
        return 0;
    }
    sh->k = k;
    for (unsigned s = 0; s < k; s++) {
        unsigned lo = (unsigned)((uint64_t)s * SLOTS / k);
        unsigned hi = (unsigned)((uint64_t)(s + 1) * SLOTS / k);
        /* A range of SLOTS/K >= 256 slots: found within a few thousand
         * tries (CRC16 spreads consecutive names over every slot). */
        for (unsigned n = 0;; n++) {
            char *t = sh->tag[s];
            int len = n == 0 ? snprintf(t, SAGA_SHARD_TAG_MAX, "idx:%u", s)
                             : snprintf(t, SAGA_SHARD_TAG_MAX, "idx:%u.%u", s, n);
            unsigned slot = saga_redis_key_slot(t, (size_t)len);
            if (slot >= lo && slot < hi)
                break;
        }
    }
    return 0;
}

static bool tag_char_ok(unsigned char c) { return c > ' ' && c < 0x7f && c != '{' && c != '}'; }

int saga_shards_parse(saga_shards_t *sh, const char *text, size_t len, char *err,
                      size_t errlen) {
    unsigned k = 0;
    size_t i = 0;
    if (len == 0) {
        snprintf(err, errlen, "no shard tags");
        return -EINVAL;
    }
    while (i <= len) {
        size_t start = i;
        while (i < len && text[i] != ' ') {
            if (!tag_char_ok((unsigned char)text[i])) {
                snprintf(err, errlen, "byte %zu: a shard tag holds a brace, a space or a "
                         "control character", i + 1);
                return -EINVAL;
            }
            i++;
        }
        size_t n = i - start;
        if (n == 0) {
            snprintf(err, errlen, "byte %zu: an empty shard tag", start + 1);
            return -EINVAL;
        }
        if (n >= SAGA_SHARD_TAG_MAX) {
            snprintf(err, errlen, "byte %zu: a shard tag of %zu characters (at most %d)",
                     start + 1, n, SAGA_SHARD_TAG_MAX - 1);
            return -EINVAL;
        }
        if (k == SAGA_SHARDS_MAX) {
            snprintf(err, errlen, "more than %d shard tags", SAGA_SHARDS_MAX);
            return -EINVAL;
        }
        memcpy(sh->tag[k], text + start, n);
        sh->tag[k][n] = '\0';
        for (unsigned j = 0; j < k; j++)
            if (strcmp(sh->tag[j], sh->tag[k]) == 0) {
                snprintf(err, errlen, "shard tag '%s' is there twice", sh->tag[k]);
                return -EINVAL;
            }
        k++;
        i++; /* past the space (or the end) */
    }
    sh->k = k;
    return 0;
}

int saga_shards_format(const saga_shards_t *sh, char *buf, size_t size) {
    size_t n = 0;
    for (unsigned s = 0; s < sh->k; s++) {
        int w = snprintf(buf + n, size - n, s == 0 ? "%s" : " %s", sh->tag[s]);
        if (w < 0 || (size_t)w >= size - n)
            return -ENOSPC;
        n += (size_t)w;
    }
    return (int)n;
}

unsigned saga_shards_of(const saga_shards_t *sh, const char *id) {
    if (sh->k <= 1)
        return 0;
    return saga_fnv1a(id) % sh->k;
}

int saga_shards_key(const saga_shards_t *sh, unsigned s, const char *name, const char *suffix,
                    char *buf, size_t size) {
    if (s >= sh->k)
        return -EINVAL;
    int n = snprintf(buf, size, "saga:{%s}:%s%s", sh->tag[s], name, suffix ? suffix : "");
    return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}
