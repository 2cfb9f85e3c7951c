/*
 * console.c -- the console's files from memory (console.h).
 *
 * Every answer carries the same security headers. Files are revalidated on
 * each use (Cache-Control: no-cache) against a strong ETag taken from
 * their SHA-256, so a browser re-downloads nothing unchanged and never
 * runs a stale module after an upgrade: the asset names carry no hash.
 */
#include "http/console.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "console_files.h"

#define NFILES (sizeof(console_files) / sizeof(console_files[0]))
#define ETAG_HEX 32

const saga_console_file_t *saga_console_file(const char *name) {
    for (size_t i = 0; i < NFILES; i++)
        if (strcmp(console_files[i].name, name) == 0)
            return &console_files[i];
    return NULL;
}

bool saga_console_etag_match(const char *inm, const char *etag) {
    if (inm == NULL)
        return false;
    size_t el = strlen(etag);
    for (const char *p = inm; *p != '\0';) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, el) == 0 && (p[el] == '\0' || p[el] == ',' || p[el] == ' '))
            return true;
        while (*p != '\0' && *p != ',')
            p++;
    }
    return false;
}

static void send_file(saga_http_req_t *r, const saga_console_file_t *f) {
    char etag[ETAG_HEX + 3];
    snprintf(etag, sizeof(etag), "\"%.*s\"", ETAG_HEX, f->sha256);
    saga_http_req_add_header(r, "content-security-policy", SAGA_CONSOLE_CSP);
    saga_http_req_add_header(r, "x-content-type-options", "nosniff");
    saga_http_req_add_header(r, "x-frame-options", "DENY");
    saga_http_req_add_header(r, "referrer-policy", "no-referrer");
    saga_http_req_add_header(r, "cache-control", "no-cache");
    saga_http_req_add_header(r, "etag", etag);
    if (saga_console_etag_match(saga_http_req_header(r, "if-none-match"), etag)) {
        saga_http_respond_text(r, 304, f->type, "", 0);
        return;
    }
    saga_http_respond_text(r, 200, f->type, f->data, f->len);
}

/* The page's routes: index.html, whichever view the path names. */
static void h_page(saga_http_req_t *r, void *data) {
    (void)data;
    send_file(r, saga_console_file("index.html"));
}

static void h_asset(saga_http_req_t *r, void *data) {
    (void)data;
    const char *name = saga_http_req_param(r, 0);
    const saga_console_file_t *f = name != NULL ? saga_console_file(name) : NULL;
    if (f == NULL || strcmp(name, "index.html") == 0) {
        saga_http_req_add_header(r, "x-content-type-options", "nosniff");
        saga_http_respond_error(r, 404, "not_found", "the console has no file named '%.100s'",
                                name != NULL ? name : "");
        return;
    }
    send_file(r, f);
}

static const saga_http_route_t routes[] = {
    {"GET", "/", SAGA_HTTP_OPEN, h_page, NULL},
    {"GET", "/sagas", SAGA_HTTP_OPEN, h_page, NULL},
    {"GET", "/sagas/{id}", SAGA_HTTP_OPEN, h_page, NULL},
    {"GET", "/definitions", SAGA_HTTP_OPEN, h_page, NULL},
    {"GET", "/definitions/{name}", SAGA_HTTP_OPEN, h_page, NULL},
    {"GET", "/assets/{file}", SAGA_HTTP_OPEN, h_asset, NULL},
};

const saga_http_route_t *saga_console_routes(size_t *n) {
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}
