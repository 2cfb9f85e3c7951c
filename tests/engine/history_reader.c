/* history_reader.c -- see history_reader.h */
#include "history_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

static void copy_field(char *dst, size_t cap, const char *src, size_t len, int unescape) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        char ch = src[i];
        if (unescape && ch == '\\' && i + 1 < len) {
            ch = src[++i];
            ch = ch == 't' ? '\t' : ch == 'n' ? '\n' : ch == 'r' ? '\r' : ch;
        }
        dst[o++] = ch;
    }
    dst[o] = '\0';
}

size_t hist_read(redisContext *c, const char *id, hist_ev_t **out) {
    redisReply *r = redisCommand(c, "LRANGE saga:{%s}:history 0 -1", id);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "history of %s is not a list", id);
    size_t cap = 16, n = 0;
    hist_ev_t *ev = calloc(cap, sizeof(*ev));
    for (size_t i = 0; i < r->elements; i++) {
        const char *s = r->element[i]->str, *f[400];
        size_t len[400], nf = 0;
        const char *p = s;
        for (;;) {
            const char *t = strchr(p, '\t');
            cr_assert_lt(nf, 400);
            f[nf] = p;
            len[nf++] = t ? (size_t)(t - p) : strlen(p);
            if (t == NULL)
                break;
            p = t + 1;
        }
        cr_assert(nf >= 3 && (nf - 3) % 5 == 0, "saga %s: malformed history entry '%s'", id, s);
        for (size_t k = 3; k < nf; k += 5) {
            if (n == cap)
                ev = realloc(ev, (cap *= 2) * sizeof(*ev));
            hist_ev_t *e = &ev[n++];
            memset(e, 0, sizeof(*e));
            e->ts = atoll(f[0]);
            e->seq = atoll(f[1]);
            copy_field(e->worker, sizeof(e->worker), f[2], len[2], 0);
            copy_field(e->type, sizeof(e->type), f[k], len[k], 0);
            copy_field(e->step, sizeof(e->step), f[k + 1], len[k + 1], 0);
            copy_field(e->phase, sizeof(e->phase), f[k + 2], len[k + 2], 0);
            e->attempt = atoi(f[k + 3]);
            copy_field(e->detail, sizeof(e->detail), f[k + 4], len[k + 4], 1);
        }
    }
    freeReplyObject(r);
    *out = ev;
    return n;
}
