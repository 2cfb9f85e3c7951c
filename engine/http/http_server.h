/*
 * http_server.h -- an HTTP/1.1 server on the engine's libuv loop.
 *
 * HTTP is parsed by h2o 2.2 (Debian's libh2o, built for libuv): this module
 * listens (TCP or a unix socket), caps connections and request bodies, checks
 * bearer tokens, routes each request to a handler, answers errors as JSON
 * ({"error": {"code", "message"}}), counts requests per route and status
 * with a latency histogram for /metrics, and stops gracefully. It knows
 * nothing of sagas: the API (http_api.c) registers the routes.
 *
 * Everything runs on the loop thread. A handler answers at once or later
 * (a store call, a long-poll); when the client goes away before the answer,
 * the request's `gone` hook runs and the request must not be used again.
 */
#ifndef SAGA_HTTP_SERVER_H
#define SAGA_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <uv.h>

#include "http/http_auth.h"

typedef struct saga_http_server_s saga_http_server_t;
typedef struct saga_http_req_s saga_http_req_t;

/* Who may call a route: anyone (health checks), any valid token (GET), or
 * a full-access token. Without a token file every request is allowed. */
typedef enum saga_http_access_e {
    SAGA_HTTP_OPEN = 0,
    SAGA_HTTP_READ = 1,
    SAGA_HTTP_WRITE = 2
} saga_http_access_t;

typedef void (*saga_http_handler_fn)(saga_http_req_t *r, void *data);

/* A route: `path` is matched segment by segment; a segment "{...}" matches
 * any one non-empty segment (its text is a parameter, in order). `path` is
 * also the route's label in metrics. */
typedef struct saga_http_route_s {
    const char *method;          /* "GET", "POST" */
    const char *path;            /* "/v1/sagas/{id}/cancel" */
    saga_http_access_t access;
    saga_http_handler_fn handle;
    void *data;
} saga_http_route_t;

typedef struct saga_http_server_options_s {
    const char *listen;          /* "HOST:PORT" (numeric IP, [v6], or
                                    localhost) or "unix:PATH"; port 0: any */
    size_t max_body;             /* bytes; 0: 1 MiB */
    size_t max_connections;      /* 0: 4096 */
    uint64_t request_timeout_ms; /* headers and body, and keep-alive idle;
                                    0: 10 s */
    const saga_http_tokens_t *tokens; /* NULL: no authentication (then only
                                    loopback or a unix socket is allowed) */
    const char *listen_flag;     /* the command's flag for `listen`, named in
                                    messages; NULL: "--listen" */
    const char *tokens_flag;     /* ... for the token file; NULL: "--token-file" */
} saga_http_server_options_t;

/* Creates a server on `loop` and starts listening; *out gets it. `routes`
 * (n of them) is kept by reference: it must outlive the server. Returns 0,
 * or with the reason in `err`: -EINVAL (a malformed --listen value),
 * -EPERM (not loopback and no tokens), -ENOMEM, or libuv's bind/listen
 * error. On error *out is NULL and what was opened is closing (run the
 * loop to finish closing it). */
int saga_http_server_new(uv_loop_t *loop, const saga_http_server_options_t *opt,
                         const saga_http_route_t *routes, size_t n,
                         saga_http_server_t **out, char *err, size_t errlen);

/* Where the server listens, as a URL ("http://127.0.0.1:8080",
 * "unix:/path"): the real port when 0 was asked for. */
const char *saga_http_server_address(const saga_http_server_t *s);

/* Connections open now. */
size_t saga_http_server_connections(const saga_http_server_t *s);

/* Stops taking connections and asks every connection to close after its
 * current request. `done` runs once: with clean = true when every
 * connection is gone and the server is freed; with clean = false when
 * `grace_ms` passed first: h2o 2.2 cannot cut a connection from outside, so
 * the server is left as it is (its handles stay on the loop) for the
 * process to exit. */
void saga_http_server_stop(saga_http_server_t *s, uint64_t grace_ms,
                           void (*done)(bool clean, void *data), void *data);

/* Appends the server's own metrics (requests by route and code, latency
 * histograms, open connections) in Prometheus text format. Returns 0 or
 * -ENOMEM. */
int saga_http_server_metrics(const saga_http_server_t *s, FILE *out);

/* ---- the request, inside a handler ---- */

/* The method and the path without the query. Not NUL-terminated. */
const char *saga_http_req_path(const saga_http_req_t *r, size_t *len);

/* The i-th "{...}" segment of the route (NUL-terminated copy owned by the
 * request), or NULL. */
const char *saga_http_req_param(const saga_http_req_t *r, size_t i);

/* The value of query parameter `name`, percent-decoded, NUL-terminated and
 * owned by the request; NULL when absent. *bad is set when the query cannot
 * be decoded. */
const char *saga_http_req_query(saga_http_req_t *r, const char *name, bool *bad);

/* A request header's value (name in lower case), NUL-terminated copy owned
 * by the request, or NULL. */
const char *saga_http_req_header(saga_http_req_t *r, const char *name);

/* The request body (may be empty). */
const char *saga_http_req_body(const saga_http_req_t *r, size_t *len);

/* Adds a response header (copied). Before responding. */
void saga_http_req_add_header(saga_http_req_t *r, const char *name,
                              const char *value);

/* The hook that runs when the client goes away before the answer: after it
 * returns, `r` is freed. Cleared by every respond call. */
void saga_http_req_on_gone(saga_http_req_t *r, void (*gone)(void *data),
                           void *data);

/* Tells the server that `r` will wait long for its answer (a long-poll),
 * so that it gives back what it can do without meanwhile: h2o 2.2 keeps
 * the request's bytes in the connection's 8 KiB input buffer until the
 * answer; they move to an allocation of their own size (the headers and
 * the path stay readable). Does nothing for a request with a body, a
 * large one, or when memory is short. */
void saga_http_req_park(saga_http_req_t *r);

/* Answers with `body` as JSON (the reference is stolen; NULL answers 500).
 * Exactly one respond call per request. */
void saga_http_respond_json(saga_http_req_t *r, int status, json_t *body);

/* Answers {"error": {"code": code, "message": ...}} with `status`. */
void saga_http_respond_error(saga_http_req_t *r, int status, const char *code,
                             const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Answers `len` bytes of `body` with `content_type`. */
void saga_http_respond_text(saga_http_req_t *r, int status, const char *content_type,
                            const char *body, size_t len);

/* Answers 200 with the Prometheus text format (version 0.0.4) that
 * `write` writes to `out` (a memory stream). Returns 0 when it answered
 * (500 when out of memory); when `write` returns a code, nothing is sent
 * and that code is returned: the caller answers. */
int saga_http_respond_prometheus(saga_http_req_t *r, int (*write)(FILE *out, void *data),
                                 void *data);

#endif
