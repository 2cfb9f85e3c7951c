/*
 * console.h -- the saga console: the web page `saga serve` serves at `/`
 * (docs/console.md). Its files (console/: HTML, CSS, ES modules) are
 * compiled into the binary; this module answers them from memory, with an
 * ETag, a Content-Security-Policy that allows no inline script, and
 * `X-Content-Type-Options: nosniff`. The page's own routes (/, /sagas,
 * /sagas/{id}, /definitions, /definitions/{name}) all answer index.html,
 * so that a deep link works on reload. The page reads and acts only through
 * the /v1 API; the static files hold no data and need no token.
 */
#ifndef SAGA_HTTP_CONSOLE_H
#define SAGA_HTTP_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http_server.h"

/* One compiled-in file. */
typedef struct saga_console_file_s {
    const char *name;         /* "app.js", served at /assets/app.js
                                 (index.html at the page's routes) */
    const char *type;         /* Content-Type */
    const char *data;
    size_t len;
    const char *sha256;       /* hex; its first 32 digits are the ETag */
} saga_console_file_t;

/* The Content-Security-Policy of every console answer. */
#define SAGA_CONSOLE_CSP                                                                \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* The console's routes, to append to the API's for saga_http_server_new():
 * static, valid for the life of the program; every one is GET and OPEN
 * (no token: the files hold no data). */
const saga_http_route_t *saga_console_routes(size_t *n);

/* True when the If-None-Match header value `inm` (NUL-terminated,
 * untrusted; NULL: no header) names `etag` ("\"hex\"", quotes included),
 * weak or strong, or is "*". Pure: fuzzed with the routing helpers. */
bool saga_console_etag_match(const char *inm, const char *etag);

/* The compiled-in file `name` ("index.html", "app.js"), or NULL. */
const saga_console_file_t *saga_console_file(const char *name);

#endif
