/*
 * test_console.c -- the saga console (docs/console.md) against a real
 * redis-server, `saga worker` and `saga serve` of this build (the ASan
 * build's in the sanitized run).
 *
 * console.files_*: how serve answers the console's own files (types, ETag
 * and 304, the security headers, deep links, unknown files), with libcurl.
 * console.browser: console.test.mjs in Debian's chromium, headless, driven
 * by playwright-core; it submits the sagas it looks at (completed,
 * compensated, stuck, running a slow step), clicks Retry and Cancel,
 * checks the XSS case, the token prompt, a phone's width, and saves
 * screenshots. It exits 0 when every check passed.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include "http/console.h"
#include "http_client.h"
#include "redis_server.h"
#include "saga_proc.h"
#include "test_poll.h"

#define FULL_TOKEN "console-full-token-0123456789"
#define READ_TOKEN "console-read-token-0123456789"
#define CHROMIUM "/usr/bin/chromium"

extern char **environ;

static redis_server_t R;
static char dir[512];
static char api[300];
static pid_t worker_pid, serve_pid;
static char serve_out[600], serve_err[600], worker_log[600], flag[600];

/* ---------------------------------------------------------------------- */
/* Set-up                                                                  */
/* ---------------------------------------------------------------------- */

static void write_file(const char *name, const char *text) {
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    saga_proc_write_file(path, text);
}

/* The definitions the browser test submits; docs/console.md shows them. */
static void write_defs(void) {
    char path[700];
    snprintf(path, sizeof(path), "%s/defs", dir);
    mkdir(path, 0700);
    /* completed; two branches side by side, joined by `charge` */
    write_file("defs/trip.yaml",
               "saga: trip\n"
               "description: Books a flight and a hotel side by side, then charges once.\n"
               "input:\n  required: [trip]\n"
               "steps:\n"
               "  - name: book_flight\n"
               "    action: {handler: demo.echo, with: {flight: \"FL-${input.trip}\"}}\n"
               "    compensation: {handler: demo.noop}\n"
               "  - name: book_hotel\n"
               "    after: []\n"
               "    action: {handler: demo.echo, with: {hotel: \"HT-${input.trip}\"}}\n"
               "    compensation: {handler: demo.noop}\n"
               "  - name: charge\n"
               "    after: [book_flight, book_hotel]\n"
               "    action: {handler: demo.echo, with: {flight: "
               "\"${steps.book_flight.output.flight}\", amount: 420}}\n"
               "    compensation: {handler: demo.noop}\n"
               "  - name: send_receipt\n"
               "    action: {handler: demo.noop}\n"
               "    compensation: none\n");
    /* compensated: `ship` fails with a message that is HTML */
    write_file("defs/order.yaml",
               "saga: order\n"
               "steps:\n"
               "  - name: reserve_stock\n"
               "    action: {handler: demo.echo, with: {sku: \"${input.sku}\", note: "
               "\"${input.note}\"}}\n"
               "    compensation: {handler: demo.noop}\n"
               "  - name: charge_card\n"
               "    action: {handler: demo.echo, with: {amount: 42}}\n"
               "    compensation: {handler: demo.noop}\n"
               "  - name: ship\n"
               "    action: {handler: demo.fail, with: {message: \"<img src=x "
               "onerror=alert(1)>\"}}\n"
               "    compensation: {handler: demo.noop}\n");
    /* stuck (forward recovery) until the file `flag` exists: then a retry
     * completes it */
    snprintf(flag, sizeof(flag), "%s/supplier-up", dir);
    char text[2048];
    snprintf(text, sizeof(text),
             "saga: restock\n"
             "recovery: forward\n"
             "steps:\n"
             "  - name: order_parts\n"
             "    action: {handler: demo.echo, with: {parts: 3}}\n"
             "  - name: call_supplier\n"
             "    action:\n"
             "      handler: exec.run\n"
             "      with:\n"
             "        argv: [/bin/sh, -c, 'echo \"supplier offline\" >&2; test -e \"%s\"']\n"
             "    retry: {max_attempts: 2, initial_delay: 300ms}\n",
             flag);
    write_file("defs/restock.yaml", text);
    /* running: a step of 20 s, to cancel while it runs */
    write_file("defs/slow.yaml",
               "saga: slow\n"
               "steps:\n"
               "  - name: prepare\n"
               "    action: {handler: demo.noop}\n"
               "    compensation: {handler: demo.noop}\n"
               "  - name: long_wait\n"
               "    action: {handler: demo.sleep, with: {ms: 20000}}\n"
               "    compensation: {handler: demo.noop}\n"
               "    timeout: 60s\n"
               "  - name: finish\n"
               "    action: {handler: demo.noop}\n"
               "    compensation: {handler: demo.noop}\n");
    write_file("tokens", FULL_TOKEN "\n" READ_TOKEN " read\n");
}

static CURLcode get(const char *path, const char *hdr, http_resp_t *out) {
    char a[200];
    snprintf(a, sizeof(a), "Authorization: Bearer %s", FULL_TOKEN);
    const char *headers[] = {a, hdr, NULL};
    return http_call(api, "GET", path, NULL, headers, 30000L, out);
}

static void setup(void) {
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    snprintf(dir, sizeof(dir), "%s/work", R.dir);
    mkdir(dir, 0700);
    write_defs();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char defs[700], tokens[700];
    snprintf(defs, sizeof(defs), "%s/defs", dir);
    snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
    snprintf(worker_log, sizeof(worker_log), "%s/worker.log", dir);
    const char *wargs[] = {"worker", "--redis", R.url, "--defs", defs, "--name", "w1",
                           "--lease", "2s", "--grace", "1s", NULL};
    saga_proc_io_t wio = {.out = worker_log, .err = worker_log};
    worker_pid = saga_proc_spawn(wargs, &wio);

    snprintf(serve_out, sizeof(serve_out), "%s/serve.out", dir);
    snprintf(serve_err, sizeof(serve_err), "%s/serve.err", dir);
    const char *sargs[] = {"serve", "--redis", R.url, "--listen", "127.0.0.1:0",
                           "--token-file", tokens, NULL};
    saga_proc_io_t sio = {.out = serve_out, .err = serve_err};
    serve_pid = saga_proc_spawn(sargs, &sio);
    saga_proc_first_line(serve_out, serve_err, api, sizeof(api), 15000);
    cr_assert(strncmp(api, "http://127.0.0.1:", 17) == 0, "address %s", api);

    /* the worker has published its definitions */
    test_poll_t p = test_poll_start(20000);
    for (;;) {
        http_resp_t r;
        cr_assert_eq(get("/v1/definitions", NULL, &r), CURLE_OK);
        json_t *defs_json = r.json != NULL ? json_object_get(r.json, "definitions") : NULL;
        bool ok = r.status == 200 && json_array_size(defs_json) == 4;
        http_resp_free(&r);
        if (ok)
            break;
        if (!test_poll_next(&p)) {
            char *log = saga_proc_slurp(worker_log);
            cr_assert_fail("the worker did not publish its 4 definitions; log: %s", log);
        }
    }
}

static void teardown(void) {
    int s = saga_proc_stop(&serve_pid);
    saga_proc_stop(&worker_pid);
    saga_proc_assert_clean(serve_err);
    saga_proc_assert_clean(worker_log);
    cr_expect_eq(s, 0, "serve exits 0 on SIGTERM");
    redis_server_stop(&R);
    curl_global_cleanup();
}

TestSuite(console, .init = setup, .fini = teardown, .timeout = 540);

/* ---------------------------------------------------------------------- */
/* The files                                                               */
/* ---------------------------------------------------------------------- */

/* The value of response header `name` (lower case) in r, or "". */
static const char *header(const http_resp_t *r, const char *name, char *buf, size_t n) {
    buf[0] = '\0';
    size_t nl = strlen(name);
    for (const char *line = r->headers; *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            end = line + strlen(line);
        if ((size_t)(end - line) > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, n, "%.*s", (int)(end - v), v);
            return buf;
        }
        line = *end != '\0' ? end + 2 : end;
    }
    return buf;
}

static void expect_console_headers(const http_resp_t *r, const char *path) {
    char v[1024];
    header(r, "content-security-policy", v, sizeof(v));
    cr_expect(strstr(v, "script-src 'self'") != NULL, "%s: CSP '%s'", path, v);
    cr_expect(strstr(v, "unsafe-inline") == NULL && strstr(v, "unsafe-eval") == NULL,
              "%s: CSP allows inline code: '%s'", path, v);
    cr_expect(strstr(v, "default-src 'none'") != NULL, "%s: CSP '%s'", path, v);
    cr_expect_str_eq(header(r, "x-content-type-options", v, sizeof(v)), "nosniff", "%s", path);
}

Test(console, files_have_types_etags_and_security_headers) {
    static const struct {
        const char *path, *type;
    } files[] = {
        {"/assets/app.js", "text/javascript; charset=utf-8"},
        {"/assets/style.css", "text/css; charset=utf-8"},
        {"/assets/graph.js", "text/javascript; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        http_resp_t r;
        cr_assert_eq(http_call(api, "GET", files[i].path, NULL, NULL, 30000L, &r), CURLE_OK);
        cr_assert_eq(r.status, 200, "%s: %ld (static files need no token)", files[i].path,
                     r.status);
        char v[512], etag[128];
        cr_expect_str_eq(header(&r, "content-type", v, sizeof(v)), files[i].type, "%s",
                         files[i].path);
        expect_console_headers(&r, files[i].path);
        header(&r, "etag", etag, sizeof(etag));
        cr_assert(strlen(etag) == 34 && etag[0] == '"', "%s: ETag '%s'", files[i].path, etag);
        cr_expect_str_eq(header(&r, "cache-control", v, sizeof(v)), "no-cache", "%s",
                         files[i].path);
        cr_expect(r.len > 100, "%s: %zu bytes", files[i].path, r.len);
        http_resp_free(&r);

        /* revalidation: the same ETag answers 304 without a body */
        char inm[200];
        snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
        const char *h304[] = {inm, NULL};
        cr_assert_eq(http_call(api, "GET", files[i].path, NULL, h304, 30000L, &r), CURLE_OK);
        cr_expect_eq(r.status, 304, "%s with its ETag: %ld", files[i].path, r.status);
        cr_expect_eq(r.len, 0);
        http_resp_free(&r);
        const char *hother[] = {"If-None-Match: \"0123\"", NULL};
        cr_assert_eq(http_call(api, "GET", files[i].path, NULL, hother, 30000L, &r), CURLE_OK);
        cr_expect_eq(r.status, 200, "%s with another ETag: %ld", files[i].path, r.status);
        http_resp_free(&r);
    }
}

Test(console, every_page_route_answers_the_page_for_deep_links) {
    const char *pages[] = {"/", "/sagas", "/sagas/order-1042", "/definitions",
                           "/definitions/trip"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        http_resp_t r;
        cr_assert_eq(http_call(api, "GET", pages[i], NULL, NULL, 30000L, &r), CURLE_OK);
        cr_assert_eq(r.status, 200, "%s: %ld", pages[i], r.status);
        char v[256];
        cr_expect_str_eq(header(&r, "content-type", v, sizeof(v)), "text/html; charset=utf-8");
        cr_expect(strstr(r.body, "<script type=\"module\" src=\"/assets/app.js\">") != NULL,
                  "%s: not the console's page", pages[i]);
        expect_console_headers(&r, pages[i]);
        http_resp_free(&r);
    }
    /* what is neither a page nor a file is not found, as JSON */
    const char *missing[] = {"/assets/nope.js", "/assets/index.html", "/sagas/a/b", "/favicon.ico"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        http_resp_t r;
        cr_assert_eq(http_call(api, "GET", missing[i], NULL, NULL, 30000L, &r), CURLE_OK);
        cr_expect_eq(r.status, 404, "%s: %ld", missing[i], r.status);
        cr_expect_not_null(r.json, "%s: %s", missing[i], r.body);
        http_resp_free(&r);
    }
    /* the API still wants its token */
    http_resp_t r;
    cr_assert_eq(http_call(api, "GET", "/v1/stats", NULL, NULL, 30000L, &r), CURLE_OK);
    cr_expect_eq(r.status, 401);
    http_resp_free(&r);
}

/* ---------------------------------------------------------------------- */
/* Without servers                                                         */
/* ---------------------------------------------------------------------- */

/* Every file of console/ is compiled in, byte for byte (a file added there
 * and not to SAGA_CONSOLE_FILES would be missing from the binary). */
Test(console_files, every_file_of_console_dir_is_compiled_in) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    cr_assert_not_null(src);
    char path[700];
    snprintf(path, sizeof(path), "%s/console", src);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: %s", path, strerror(errno));
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        const saga_console_file_t *f = saga_console_file(e->d_name);
        cr_assert_not_null(f, "console/%s is not compiled in: add it to SAGA_CONSOLE_FILES",
                           e->d_name);
        snprintf(path, sizeof(path), "%s/console/%s", src, e->d_name);
        char *text = saga_proc_slurp(path);
        cr_expect_eq(strlen(text), f->len, "console/%s", e->d_name);
        cr_expect(memcmp(text, f->data, f->len) == 0, "console/%s differs", e->d_name);
        free(text);
        files++;
    }
    closedir(d);
    cr_expect_geq(files, 8);
    cr_expect_null(saga_console_file("../CMakeLists.txt"));
}

Test(console_files, if_none_match_lists_weak_tags_and_star) {
    const char *etag = "\"abc\"";
    cr_expect(saga_console_etag_match("\"abc\"", etag));
    cr_expect(saga_console_etag_match("W/\"abc\"", etag));
    cr_expect(saga_console_etag_match("\"x\", \"abc\"", etag));
    cr_expect(saga_console_etag_match("\"x\",W/\"abc\" ", etag));
    cr_expect(saga_console_etag_match("*", etag));
    cr_expect_not(saga_console_etag_match(NULL, etag));
    cr_expect_not(saga_console_etag_match("", etag));
    cr_expect_not(saga_console_etag_match("\"abcd\"", etag));
    cr_expect_not(saga_console_etag_match("\"ab\"", etag));
    cr_expect_not(saga_console_etag_match("abc", etag));
    cr_expect_not(saga_console_etag_match("\"x\" \"abc", etag));
}

/* ---------------------------------------------------------------------- */
/* The browser                                                             */
/* ---------------------------------------------------------------------- */

Test(console, browser) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(src);
    cr_assert_not_null(build);
    char script[700], modules[700], shots[700];
    snprintf(script, sizeof(script), "%s/tests/console/console.test.mjs", src);
    snprintf(modules, sizeof(modules), "%s/tests/console/node_modules/playwright-core", src);
    snprintf(shots, sizeof(shots), "%s/tests/console-shots", build);
    struct stat st;
    cr_assert_eq(stat(CHROMIUM, &st), 0,
                 CHROMIUM " is missing: run scripts/deps.sh --tests (it installs chromium)");
    cr_assert_eq(stat(modules, &st), 0,
                 "%s is missing: run scripts/deps.sh --tests (it runs npm ci in tests/console)",
                 modules);
    mkdir(shots, 0755);

    setenv("SAGA_CONSOLE_URL", api, 1);
    setenv("SAGA_CONSOLE_TOKEN", FULL_TOKEN, 1);
    setenv("SAGA_CONSOLE_READ_TOKEN", READ_TOKEN, 1);
    setenv("SAGA_CONSOLE_FLAG", flag, 1);
    setenv("SAGA_CONSOLE_SHOTS", shots, 1);
    setenv("SAGA_CHROMIUM", CHROMIUM, 1);
    const char *argv[] = {"node", script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "node", NULL, NULL, (char *const *)argv, environ);
    cr_assert_eq(rc, 0, "cannot start node: %s (scripts/deps.sh --tests installs it)",
                 strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        cr_assert_eq(errno, EINTR);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "console.test.mjs failed (exit %d): see its output above",
              WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}
