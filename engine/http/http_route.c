/*
 * http_route.c -- path patterns and query parameters (http_route.h).
 */
#include "http/http_route.h"

#include <errno.h>
#include <string.h>

#include "util/bytes.h"

bool saga_http_path_match(const char *pattern, const char *path, size_t len,
                          saga_http_params_t *out) {
    const char *p = pattern, *s = path, *end = path + len;
    size_t np = 0;
    while (*p != '\0' && s < end) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        const char *pe = strchr(p, '/');
        if (pe == NULL)
            pe = p + strlen(p);
        const char *se = memchr(s, '/', (size_t)(end - s));
        if (se == NULL)
            se = end;
        if (*p == '{') {
            if (se == s || np == SAGA_HTTP_MAX_PARAMS)
                return false;
            if (out != NULL) {
                out->s[np] = s;
                out->len[np] = (size_t)(se - s);
            }
            np++;
        } else if ((size_t)(pe - p) != (size_t)(se - s) ||
                   memcmp(p, s, (size_t)(se - s)) != 0) {
            return false;
        }
        p = pe;
        s = se;
    }
    if (*p != '\0' || s != end)
        return false;
    if (out != NULL)
        out->n = np;
    return true;
}

/* Decodes s[0..n) into out (outlen bytes, NUL-terminated). Returns the
 * decoded length, -EINVAL or -ENOSPC. */
static long decode(const char *s, size_t n, char *out, size_t outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = saga_hex_value((unsigned char)s[i + 1])) < 0 || (lo = saga_hex_value((unsigned char)s[i + 2])) < 0)
                return -EINVAL;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -EINVAL;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        } else if (c == '\0') {
            return -EINVAL;
        }
        if (o + 1 >= outlen)
            return -ENOSPC;
        out[o++] = c;
    }
    if (outlen == 0)
        return -ENOSPC;
    out[o] = '\0';
    return (long)o;
}

int saga_http_query_get(const char *q, size_t qlen, const char *name, char *out,
                        size_t outlen) {
    const char *end = q + qlen;
    size_t nl = strlen(name);
    char key[64];
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(e - q));
        const char *ke = eq != NULL ? eq : e;
        long kl = decode(q, (size_t)(ke - q), key, sizeof(key));
        if (kl == -EINVAL)
            return -EINVAL;
        if (kl >= 0 && (size_t)kl == nl && memcmp(key, name, nl) == 0) {
            const char *vs = eq != NULL ? eq + 1 : e;
            long vl = decode(vs, (size_t)(e - vs), out, outlen);
            return vl < 0 ? (int)vl : 0;
        }
        q = amp != NULL ? amp + 1 : end;
    }
    return -ENOENT;
}
