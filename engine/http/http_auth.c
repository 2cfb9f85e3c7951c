/*
 * http_auth.c -- the token file and constant-time checks (http_auth.h).
 */
#include "http/http_auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct token_s {
    char value[SAGA_HTTP_TOKEN_MAX];
    size_t len;
    saga_http_grant_t grant;
} token_t;

struct saga_http_tokens_s {
    token_t *v;
    size_t n;
};

static bool token_char(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* Constant time in `len` and in where the bytes differ. */
static unsigned ct_differs(const char *a, const char *b, size_t len) {
    unsigned char d = 0;
    for (size_t i = 0; i < len; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d;
}

static void wipe(volatile char *p, size_t n) {
    while (n--)
        *p++ = 0;
}

void saga_http_tokens_free(saga_http_tokens_t *t) {
    if (t == NULL)
        return;
    if (t->v != NULL)
        wipe((volatile char *)t->v, t->n * sizeof(*t->v));
    free(t->v);
    free(t);
}

size_t saga_http_tokens_count(const saga_http_tokens_t *t) { return t->n; }

/* One line [s, e): the token, then optionally "read". Returns 0, or -EINVAL
 * with the reason in `why`. */
static int parse_line(const char *s, const char *e, token_t *out, const char **why) {
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    const char *t = s;
    while (s < e && *s != ' ' && *s != '\t') {
        if (!token_char((unsigned char)*s)) {
            *why = "a token holds only printable ASCII characters";
            return -EINVAL;
        }
        s++;
    }
    size_t tl = (size_t)(s - t);
    if (tl < SAGA_HTTP_TOKEN_MIN || tl > SAGA_HTTP_TOKEN_MAX) {
        *why = "a token is 16 to 256 characters long";
        return -EINVAL;
    }
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    out->grant = SAGA_HTTP_GRANT_FULL;
    if (s < e) {
        if ((size_t)(e - s) == 4 && memcmp(s, "read", 4) == 0) {
            out->grant = SAGA_HTTP_GRANT_READ;
        } else {
            *why = "after the token, only the word `read` may follow";
            return -EINVAL;
        }
    }
    memcpy(out->value, t, tl);
    out->len = tl;
    return 0;
}

saga_http_tokens_t *saga_http_tokens_parse(const char *path, const char *text,
                                           size_t len, char *err, size_t errlen) {
    saga_http_tokens_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "%s: error: out of memory", path);
        return NULL;
    }
    size_t cap = 0;
    const char *p = text, *end = text + len;
    for (unsigned line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        const char *s = p;
        p = nl != NULL ? nl + 1 : end;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        if (s == e || *s == '#')
            continue;
        if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
            snprintf(err, errlen, "%s:%u: error: a NUL byte", path, line);
            goto fail;
        }
        token_t tok;
        memset(&tok, 0, sizeof(tok)); /* compared over its whole size */
        const char *why = NULL;
        if (parse_line(s, e, &tok, &why) != 0) {
            snprintf(err, errlen, "%s:%u: error: %s", path, line, why);
            wipe((volatile char *)&tok, sizeof(tok));
            goto fail;
        }
        for (size_t i = 0; i < t->n; i++) {
            if (t->v[i].len == tok.len && memcmp(t->v[i].value, tok.value, tok.len) == 0) {
                snprintf(err, errlen, "%s:%u: error: the same token is listed twice", path, line);
                wipe((volatile char *)&tok, sizeof(tok));
                goto fail;
            }
        }
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 4;
            token_t *nv = calloc(nc, sizeof(*nv));
            if (nv == NULL) {
                snprintf(err, errlen, "%s: error: out of memory", path);
                wipe((volatile char *)&tok, sizeof(tok));
                goto fail;
            }
            if (t->v != NULL) {
                memcpy(nv, t->v, t->n * sizeof(*nv));
                wipe((volatile char *)t->v, t->n * sizeof(*nv));
                free(t->v);
            }
            t->v = nv;
            cap = nc;
        }
        t->v[t->n++] = tok;
        wipe((volatile char *)&tok, sizeof(tok));
    }
    if (t->n == 0) {
        snprintf(err, errlen, "%s: error: no token in the file (one per line: TOKEN or TOKEN read)",
                 path);
        goto fail;
    }
    return t;
fail:
    saga_http_tokens_free(t);
    return NULL;
}

saga_http_tokens_t *saga_http_tokens_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: error: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= (size_t)1 << 20) {
                snprintf(err, errlen, "%s: error: larger than 1 MiB", path);
                goto fail;
            }
            size_t nc = cap ? cap * 2 : 4096;
            char *nb = malloc(nc);
            if (nb == NULL) {
                snprintf(err, errlen, "%s: error: out of memory", path);
                goto fail;
            }
            if (buf != NULL) {
                memcpy(nb, buf, len);
                wipe(buf, len);
                free(buf);
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: error: cannot be read", path);
        goto fail;
    }
    fclose(f);
    saga_http_tokens_t *t = saga_http_tokens_parse(path, buf, len, err, errlen);
    wipe(buf, len);
    free(buf);
    return t;
fail:
    fclose(f);
    if (buf != NULL)
        wipe(buf, len);
    free(buf);
    return NULL;
}

saga_http_grant_t saga_http_tokens_check(const saga_http_tokens_t *t,
                                         const char *presented, size_t len) {
    /* Every token is compared over SAGA_HTTP_TOKEN_MAX bytes whatever the
     * lengths, with no early exit: the time says neither which token
     * matched nor how much of one did. */
    char in[SAGA_HTTP_TOKEN_MAX];
    memset(in, 0, sizeof(in));
    bool fits = len <= SAGA_HTTP_TOKEN_MAX;
    memcpy(in, presented, fits ? len : 0);
    unsigned grant = SAGA_HTTP_GRANT_NONE;
    for (size_t i = 0; i < t->n; i++) {
        unsigned d = ct_differs(in, t->v[i].value, SAGA_HTTP_TOKEN_MAX);
        d |= (unsigned)(t->v[i].len ^ len);
        /* mask: all ones when d == 0 */
        unsigned eq = (unsigned)((((uint64_t)d | (uint64_t)-(int64_t)d) >> 63) ^ 1u);
        grant |= (unsigned)t->v[i].grant & (0u - eq);
    }
    wipe(in, sizeof(in));
    return fits ? (saga_http_grant_t)grant : SAGA_HTTP_GRANT_NONE;
}
