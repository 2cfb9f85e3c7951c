/*
 * http_client.h -- test harness: one blocking HTTP request with libcurl,
 * to a base "http://host:port" or "unix:PATH" (the forms `saga serve` and
 * `saga worker --metrics` print). Tests only.
 */
#ifndef SAGA_TEST_HTTP_CLIENT_H
#define SAGA_TEST_HTTP_CLIENT_H

#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

typedef struct http_resp_s {
    long status;
    char *body;          /* NUL-terminated ("" when none) */
    size_t len;
    char headers[4096];  /* the response's header lines, as received */
    size_t hlen;
    json_t *json;        /* the body parsed, or NULL */
    double secs;         /* the whole request's time */
} http_resp_t;

/* Sends METHOD base+path with `body` (or none) and the header lines in
 * `headers` (NULL-terminated, or NULL); waits at most `timeout_ms`.
 * Returns curl's code; `out` is filled either way (free it with
 * http_resp_free). */
CURLcode http_call(const char *base, const char *method, const char *path, const char *body,
                   const char *const *headers, long timeout_ms, http_resp_t *out);

void http_resp_free(http_resp_t *r);

#endif
