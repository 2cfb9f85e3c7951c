/*
 * redis_url.c -- parse Redis connection URLs (see redis_url.h).
 *
 * Accepted forms:
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   unix://[[user]:password@]/absolute/path[?db=N]
 *
 * Scheme names are case-insensitive. The credentials end at the LAST '@' of
 * the URL, so a password that contains a raw '@' or '/' still parses (a
 * host, port or db never contains '@'). A socket path may contain '@', so
 * unix:// credentials are only recognised when the text after "unix://"
 * does not start with '/', and they end at the first "@/". User and
 * password are percent-decoded.
 *
 * Error messages never quote the URL: the password could be anywhere in a
 * malformed one. They quote only what is known not to be secret (the
 * scheme when it looks like one, digits of a port or db).
 */
#include "redis/redis_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util/bytes.h"

#define DEFAULT_PORT 6379
#define MAX_DB (1 << 20)
#define MAX_URL_LEN 4096

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}


/* Percent-decodes s[0..n) into a new string. Returns 0, -EINVAL for a
 * malformed escape or an encoded NUL, -ENOMEM. */
static int pct_decode(const char *s, size_t n, char **out)
{
    char *p = malloc(n + 1);
    size_t i, j = 0;

    if (p == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        int h, l;

        if (s[i] != '%') {
            p[j++] = s[i];
            continue;
        }
        if (n - i < 3) {
            free(p);
            return -EINVAL;
        }
        h = saga_hex_value((unsigned char)s[i + 1]);
        l = saga_hex_value((unsigned char)s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            free(p);
            return -EINVAL;
        }
        p[j++] = (char)(h * 16 + l);
        i += 2;
    }
    p[j] = '\0';
    *out = p;
    return 0;
}

/* Parses s[0..n) as a decimal number in [lo, hi]. Returns 0 or -1. */
static int parse_num(const char *s, size_t n, long lo, long hi, long *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static bool all_digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* Appends the user name to `b`, percent-encoding what would not survive a
 * round trip through the parser. */
static void append_user(char *b, size_t blen, const char *user)
{
    static const char keep[] = "-._~!$&'()*+,;=";
    size_t used = strlen(b);
    const unsigned char *u;

    for (u = (const unsigned char *)user; *u != '\0'; u++) {
        char tmp[4];
        if (isalnum(*u) || strchr(keep, *u) != NULL) {
            tmp[0] = (char)*u;
            tmp[1] = '\0';
        } else {
            snprintf(tmp, sizeof tmp, "%%%02X", *u);
        }
        if (used + strlen(tmp) + 1 > blen)
            return;
        memcpy(b + used, tmp, strlen(tmp) + 1);
        used += strlen(tmp);
    }
}

/* Builds u->display from the parsed fields. Returns 0 or -ENOMEM. */
static int build_display(saga_redis_url_t *u)
{
    size_t cap = 64 + (u->host ? strlen(u->host) : 0) +
                 (u->path ? strlen(u->path) : 0) +
                 (u->user ? 3 * strlen(u->user) : 0);
    char *b = malloc(cap);
    char tail[48];

    if (b == NULL)
        return -ENOMEM;
    strcpy(b, u->transport == SAGA_REDIS_TCP ? "redis://" : "unix://");
    if (u->user != NULL || u->password != NULL) {
        if (u->user != NULL)
            append_user(b, cap, u->user);
        strcat(b, u->password != NULL ? ":***@" : ":@");
    }
    if (u->transport == SAGA_REDIS_TCP) {
        bool v6 = strchr(u->host, ':') != NULL;
        if (v6)
            strcat(b, "[");
        strcat(b, u->host);
        if (v6)
            strcat(b, "]");
        snprintf(tail, sizeof tail, ":%u", (unsigned)u->port);
        strcat(b, tail);
        if (u->db != 0) {
            snprintf(tail, sizeof tail, "/%d", u->db);
            strcat(b, tail);
        }
    } else {
        strcat(b, u->path);
        if (u->db != 0) {
            snprintf(tail, sizeof tail, "?db=%d", u->db);
            strcat(b, tail);
        }
    }
    u->display = b;
    return 0;
}

/* ------------------------------------------------------------------------
 * Pieces of the grammar
 * ------------------------------------------------------------------------ */

/* Parses "[user]:password" (s[0..n), the part before '@'). */
static int parse_userinfo(const char *s, size_t n, saga_redis_url_t *u,
                          char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen, plen;
    int rc;

    if (colon == NULL)
        return fail(err, errlen,
                    "credentials need a ':' (use user:password@ or "
                    ":password@)");
    ulen = (size_t)(colon - s);
    plen = n - ulen - 1;
    if (ulen > 0) {
        rc = pct_decode(s, ulen, &u->user);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            return fail(err, errlen, "bad percent-escape in user name");
        if (u->user[0] == '\0')
            return fail(err, errlen, "empty user name");
    }
    if (plen > 0 || ulen > 0) {
        /* A user with an empty password is kept as "" (AUTH user "" works
         * for `nopass` users); no user and no password means none. */
        rc = pct_decode(colon + 1, plen, &u->password);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            return fail(err, errlen, "bad percent-escape in password");
    }
    return 0;
}

static int parse_host_port(const char *s, size_t n, saga_redis_url_t *u,
                           char *err, size_t errlen)
{
    const char *port = NULL;
    size_t portlen = 0, hostlen;
    const char *host;

    if (n == 0)
        return fail(err, errlen, "empty host");
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        char tmp[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;

        if (close == NULL)
            return fail(err, errlen, "IPv6 address without closing ']'");
        host = s + 1;
        hostlen = (size_t)(close - host);
        if (hostlen == 0)
            return fail(err, errlen, "empty host");
        if (hostlen >= sizeof tmp)
            return fail(err, errlen, "invalid IPv6 address");
        memcpy(tmp, host, hostlen);
        tmp[hostlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return fail(err, errlen, "invalid IPv6 address");
        if (close + 1 < s + n) {
            if (close[1] != ':')
                return fail(err, errlen,
                            "unexpected character after IPv6 address");
            port = close + 2;
            portlen = (size_t)(s + n - port);
        }
    } else {
        const char *colon = memchr(s, ':', n);
        size_t i;

        host = s;
        hostlen = colon != NULL ? (size_t)(colon - s) : n;
        if (colon != NULL) {
            port = colon + 1;
            portlen = (size_t)(s + n - port);
            if (memchr(port, ':', portlen) != NULL)
                return fail(err, errlen,
                            "IPv6 addresses must be in brackets: "
                            "redis://[addr]:port");
        }
        if (hostlen == 0)
            return fail(err, errlen, "empty host");
        if (hostlen > 253)
            return fail(err, errlen, "host name too long");
        for (i = 0; i < hostlen; i++) {
            unsigned char c = (unsigned char)host[i];
            if (!isalnum(c) && c != '-' && c != '.' && c != '_')
                return fail(err, errlen, "invalid character in host name");
        }
    }
    u->port = DEFAULT_PORT;
    if (port != NULL) {
        long v;
        if (portlen == 0)
            return fail(err, errlen, "empty port after ':'");
        if (!all_digits(port, portlen))
            return fail(err, errlen, "port is not a number");
        if (parse_num(port, portlen, 1, 65535, &v) < 0)
            return fail(err, errlen, "port %.*s out of range (1..65535)",
                        (int)(portlen > 9 ? 9 : portlen), port);
        u->port = (uint16_t)v;
    }
    u->host = dup_range(host, hostlen);
    return u->host == NULL ? -ENOMEM : 0;
}

static int parse_db(const char *s, size_t n, saga_redis_url_t *u, char *err,
                    size_t errlen)
{
    long v;

    if (!all_digits(s, n))
        return fail(err, errlen, "db is not a number");
    if (parse_num(s, n, 0, MAX_DB, &v) < 0)
        return fail(err, errlen, "db out of range (0..%d)", MAX_DB);
    u->db = (int)v;
    return 0;
}

static int parse_tcp(const char *rest, saga_redis_url_t *u, char *err,
                     size_t errlen)
{
    const char *at = strrchr(rest, '@');
    const char *hp, *slash, *bad;
    int rc;

    if (at != NULL) {
        rc = parse_userinfo(rest, (size_t)(at - rest), u, err, errlen);
        if (rc < 0)
            return rc;
        hp = at + 1;
    } else {
        hp = rest;
    }
    bad = strpbrk(hp, "?#");
    if (bad != NULL)
        return fail(err, errlen, "unexpected '%c' in redis:// URL "
                                 "(no query or fragment is supported)", *bad);
    slash = strchr(hp, '/');
    rc = parse_host_port(hp, slash ? (size_t)(slash - hp) : strlen(hp), u,
                         err, errlen);
    if (rc < 0)
        return rc;
    if (slash != NULL && slash[1] != '\0') {
        rc = parse_db(slash + 1, strlen(slash + 1), u, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_unix(const char *rest, saga_redis_url_t *u, char *err,
                      size_t errlen)
{
    const char *path = rest, *q;
    size_t plen;
    int rc;

    if (rest[0] == '\0')
        return fail(err, errlen, "empty socket path");
    if (rest[0] != '/') {
        /* Credentials end at the first "@/": a socket path may contain
         * '@', a password containing "@/" must be percent-encoded. */
        const char *at = strstr(rest, "@/");
        if (at == NULL)
            at = strrchr(rest, '@');
        if (at == NULL)
            return fail(err, errlen,
                        "relative socket path (use unix:///absolute/path)");
        rc = parse_userinfo(rest, (size_t)(at - rest), u, err, errlen);
        if (rc < 0)
            return rc;
        path = at + 1;
        if (path[0] != '/')
            return fail(err, errlen,
                        path[0] == '\0' ? "empty socket path"
                                        : "relative socket path (use "
                                          "unix://user:password@/absolute/"
                                          "path)");
    }
    q = strchr(path, '?');
    plen = q != NULL ? (size_t)(q - path) : strlen(path);
    if (plen < 2)
        return fail(err, errlen, "socket path is just '/'");
    if (plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(err, errlen, "socket path too long (at most %zu bytes)",
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    if (q != NULL) {
        const char *param = q + 1;
        if (strncmp(param, "db=", 3) != 0)
            return fail(err, errlen, "unknown parameter in unix:// URL "
                                     "(only ?db=N is supported)");
        rc = parse_db(param + 3, strlen(param + 3), u, err, errlen);
        if (rc < 0)
            return rc;
    }
    u->path = dup_range(path, plen);
    return u->path == NULL ? -ENOMEM : 0;
}

/* ------------------------------------------------------------------------
 * Public functions
 * ------------------------------------------------------------------------ */

/* Fills `out` (zeroed first) with strings it owns. Returns 0; -EINVAL with
 * a one-line reason in `err` (never the password, never the URL itself);
 * -ENOMEM. On error `out` is zeroed and holds nothing to free. `err` may be
 * NULL. */
int saga_redis_url_parse(const char *url, saga_redis_url_t *out, char *err,
                         size_t errlen)
{
    const char *sep;
    size_t slen;
    int rc;

    memset(out, 0, sizeof *out);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (url == NULL || url[0] == '\0')
        return fail(err, errlen, "empty Redis URL");
    if (strlen(url) > MAX_URL_LEN)
        return fail(err, errlen, "Redis URL too long (at most %d bytes)",
                    MAX_URL_LEN);
    for (sep = url; *sep != '\0'; sep++)
        if ((unsigned char)*sep < 0x21 || (unsigned char)*sep == 0x7f)
            return fail(err, errlen,
                        "Redis URL contains a space or control character");

    sep = strstr(url, "://");
    if (sep == NULL)
        return fail(err, errlen, "not a URL: expected redis://host[:port][/db]"
                                 " or unix:///path");
    slen = (size_t)(sep - url);
    if (slen == 5 && strncasecmp(url, "redis", 5) == 0) {
        out->transport = SAGA_REDIS_TCP;
        rc = parse_tcp(sep + 3, out, err, errlen);
    } else if (slen == 4 && strncasecmp(url, "unix", 4) == 0) {
        out->transport = SAGA_REDIS_UNIX;
        rc = parse_unix(sep + 3, out, err, errlen);
    } else if (slen == 6 && strncasecmp(url, "rediss", 6) == 0) {
        rc = fail(err, errlen, "TLS (rediss://) is not supported");
    } else {
        size_t i;
        bool plain = slen > 0 && slen <= 16;
        for (i = 0; i < slen && plain; i++)
            plain = isalnum((unsigned char)url[i]) || url[i] == '+' ||
                    url[i] == '-' || url[i] == '.';
        if (plain)
            rc = fail(err, errlen, "unknown scheme '%.*s' (expected redis:// "
                                   "or unix://)", (int)slen, url);
        else
            rc = fail(err, errlen, "unknown scheme (expected redis:// or "
                                   "unix://)");
    }
    if (rc == 0)
        rc = build_display(out);
    if (rc < 0) {
        if (rc == -ENOMEM)
            fail(err, errlen, "out of memory");
        saga_redis_url_close(out);
        return rc == -ENOMEM ? -ENOMEM : -EINVAL;
    }
    return 0;
}

/* Frees the strings (wiping the password first) and zeroes `u`. Accepts
 * NULL, a zeroed struct, or one closed before. */
void saga_redis_url_close(saga_redis_url_t *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->path);
    free(u->user);
    if (u->password != NULL) {
        /* Do not leave the secret lying around in freed memory. */
        volatile char *p = u->password;
        while (*p != '\0')
            *p++ = '\0';
        free(u->password);
    }
    free(u->display);
    memset(u, 0, sizeof *u);
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst == NULL ? -ENOMEM : 0;
}

/* Deep copy into `dst` (not closed first: it must hold nothing). Returns 0
 * or -ENOMEM, then `dst` is zeroed. */
int saga_redis_url_copy(saga_redis_url_t *dst, const saga_redis_url_t *src)
{
    memset(dst, 0, sizeof *dst);
    dst->transport = src->transport;
    dst->port = src->port;
    dst->db = src->db;
    if (dup_opt(&dst->host, src->host) < 0 ||
        dup_opt(&dst->path, src->path) < 0 ||
        dup_opt(&dst->user, src->user) < 0 ||
        dup_opt(&dst->password, src->password) < 0 ||
        dup_opt(&dst->display, src->display) < 0) {
        saga_redis_url_close(dst);
        return -ENOMEM;
    }
    return 0;
}
