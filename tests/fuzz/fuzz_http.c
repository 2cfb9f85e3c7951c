/*
 * fuzz_http.c -- libFuzzer target for what `saga serve` does with a
 * request before any handler runs: matching the path against every route
 * pattern of the API, reading query parameters, and parsing the body of a
 * submit (engine/http/http_route.c, api_body.c). HTTP itself is parsed by
 * h2o.
 *
 * Input: the first byte picks what the rest is: 0 a path, 1 a query
 * string (a `cursor` in it checked as GET /v1/sagas does), 2 a submit
 * body (the Idempotency-Key taken from its last line
 * when it starts with "K:"), 3 an If-None-Match header for the console's
 * files (engine/http/console.c).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/api_body.h"
#include "http/console.h"
#include "http/http_route.h"
#include "store/operator.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const patterns[] = {
    "/healthz", "/readyz", "/metrics", "/v1/sagas", "/v1/sagas/{id}",
    "/v1/sagas/{id}/history", "/v1/sagas/{id}/cancel", "/v1/sagas/{id}/retry",
    "/v1/definitions", "/v1/definitions/{name}", "/v1/openapi.json", "/v1/stats",
    "/{a}/{b}/{c}/{d}", "/", "/sagas", "/sagas/{id}", "/definitions", "/definitions/{name}",
    "/assets/{file}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] == 3) {
        /* the header as the server hands it over: NUL-terminated */
        char *inm = malloc(n + 1);
        if (inm == NULL)
            return 0;
        memcpy(inm, s, n);
        inm[n] = '\0';
        static const char etag[] = "\"0123456789abcdef0123456789abcdef\"";
        bool m = saga_console_etag_match(inm, etag);
        if (strncmp(inm, etag, sizeof(etag) - 1) == 0 && strlen(inm) == sizeof(etag) - 1 && !m)
            abort(); /* the exact ETag must match */
        free(inm);
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
            saga_http_params_t p;
            if (saga_http_path_match(patterns[i], s, n, &p)) {
                for (size_t k = 0; k < p.n; k++) {
                    if (p.len[k] == 0 || p.s[k] < s || p.s[k] + p.len[k] > s + n ||
                        memchr(p.s[k], '/', p.len[k]) != NULL)
                        abort(); /* a parameter is one non-empty segment of the path */
                }
            }
        }
        break;
    case 1: {
        static const char *const names[] = {"state", "saga", "limit", "cursor", "wait", ""};
        char out[64];
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            int rc = saga_http_query_get(s, n, names[i], out, sizeof(out));
            if (rc == 0 && strlen(out) >= sizeof(out))
                abort();
        }
        /* a list cursor: taken only when short enough, refused saying why */
        char cur[2 * SAGA_OPERATOR_CURSOR_MAX], why[200];
        if (saga_http_query_get(s, n, "cursor", cur, sizeof(cur)) == 0) {
            int rc = saga_operator_cursor_check(cur, why, sizeof(why));
            if (rc == 0 ? strlen(cur) > SAGA_OPERATOR_CURSOR_MAX || why[0] != '\0'
                        : rc != -EINVAL || why[0] == '\0')
                abort();
        }
        break;
    }
    default: {
        char key[160];
        const char *k = NULL;
        const char *nl = memchr(s, '\n', n);
        const char *last = s;
        while (nl != NULL && (size_t)(nl + 1 - s) < n) {
            last = nl + 1;
            nl = memchr(last, '\n', n - (size_t)(last - s));
        }
        size_t ll = n - (size_t)(last - s);
        if (last != s && ll > 2 && ll < sizeof(key) + 2 && memcmp(last, "K:", 2) == 0) {
            memcpy(key, last + 2, ll - 2);
            key[ll - 2] = '\0';
            if (strlen(key) == ll - 2)
                k = key;
            n = (size_t)(last - s);
        }
        saga_api_submit_t sub;
        saga_api_problem_t p;
        if (saga_api_submit_parse(s, n, k, &sub, &p) == 0) {
            if (sub.saga[0] == '\0' || !json_is_object(sub.input) ||
                (sub.id[0] != '\0' && !saga_id_valid(sub.id)))
                abort();
            saga_api_submit_clear(&sub);
        } else if (p.status != 400 && p.status != 422 && p.status != 500) {
            abort();
        }
        break;
    }
    }
    return 0;
}
