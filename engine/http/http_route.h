/*
 * http_route.h -- the pure parts of request routing: matching a path
 * against a route pattern and reading a query parameter. No allocation, no
 * I/O: the server calls them on every request, the fuzzer calls them on
 * anything.
 */
#ifndef SAGA_HTTP_ROUTE_H
#define SAGA_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define SAGA_HTTP_MAX_PARAMS 4

/* The "{...}" segments a path matched: pointers into the path. */
typedef struct saga_http_params_s {
    const char *s[SAGA_HTTP_MAX_PARAMS];
    size_t len[SAGA_HTTP_MAX_PARAMS];
    size_t n;
} saga_http_params_t;

/* True when `path` (len bytes, no query) matches `pattern`: the same
 * segments, where a pattern segment "{...}" matches any one non-empty
 * segment (at most SAGA_HTTP_MAX_PARAMS of them). `out` may be NULL. */
bool saga_http_path_match(const char *pattern, const char *path, size_t len,
                          saga_http_params_t *out);

/* Finds parameter `name` in the query string q[0..qlen) (without '?'),
 * percent-decoding keys and values ('+' is a space). On success the value
 * is written NUL-terminated into out (outlen bytes) and 0 is returned.
 * -ENOENT: absent; -EINVAL: the query cannot be decoded (a bad escape or
 * an encoded NUL) up to the parameter; -ENOSPC: the value does not fit. */
int saga_http_query_get(const char *q, size_t qlen, const char *name, char *out,
                        size_t outlen);

#endif
