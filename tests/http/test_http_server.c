/*
 * test_http_server.c -- the HTTP layer (engine/http/http_server.c and
 * http_auth.c) on a real loop in a thread of its own, with libcurl as the
 * client over loopback (a port chosen by the kernel) or a unix socket.
 */
#define _GNU_SOURCE 1 /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "http/http_auth.h"
#include "http/http_server.h"

#define FULL_TOKEN "full-access-token-0123456789"
#define READ_TOKEN "read-only-token-0123456789ab"

/* ---------------------------------------------------------------------- */
/* A server in a thread                                                    */
/* ---------------------------------------------------------------------- */

typedef struct slow_s {
    uv_timer_t t;
    saga_http_req_t *r;
} slow_t;

static int gone_calls;      /* loop thread only, read after join */
static int slow_answered;

static void h_ping(saga_http_req_t *r, void *data) {
    saga_http_respond_text(r, 200, "text/plain", "pong\n", 5);
}

static void h_item(saga_http_req_t *r, void *data) {
    bool bad = false;
    const char *q = saga_http_req_query(r, "q", &bad);
    if (bad) {
        saga_http_respond_error(r, 400, "bad_query", "the query cannot be decoded");
        return;
    }
    saga_http_respond_json(r, 200, json_pack("{s:s, s:s?}", "id", saga_http_req_param(r, 0),
                                             "q", q));
}

static void h_post(saga_http_req_t *r, void *data) {
    size_t len;
    saga_http_req_body(r, &len);
    const char *k = saga_http_req_header(r, "idempotency-key");
    saga_http_req_add_header(r, "location", "/v1/items/new");
    saga_http_respond_json(r, 201, json_pack("{s:I, s:s?}", "bytes", (json_int_t)len, "key", k));
}

static void slow_closed(uv_handle_t *h) { free(h); }

static void slow_fire(uv_timer_t *t) {
    slow_t *s = t->data;
    if (s->r != NULL) {
        slow_answered++;
        saga_http_respond_text(s->r, 200, "text/plain", "late\n", 5);
    }
    uv_close((uv_handle_t *)&s->t, slow_closed);
}

static void slow_gone(void *data) {
    slow_t *s = data;
    gone_calls++;
    s->r = NULL;
}

/* Answers 300 ms later, unless the client went away. */
static void h_slow(saga_http_req_t *r, void *data) {
    slow_t *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    s->r = r;
    uv_timer_init(data, &s->t);
    s->t.data = s;
    uv_timer_start(&s->t, slow_fire, 300, 0);
    saga_http_req_on_gone(r, slow_gone, s);
}

/* A parked request (saga_http_req_park), answered by the next /v1/release
 * with what it reads of itself then: its headers, path and query must have
 * moved with it, though its old buffer went back to h2o and the release
 * request's bytes were read into a buffer since. */
static saga_http_req_t *parked;
static int parked_count; /* loop thread writes, test thread reads */

static void parked_gone(void *data) { parked = NULL; }

static void h_park(saga_http_req_t *r, void *data) {
    saga_http_req_on_gone(r, parked_gone, NULL);
    saga_http_req_park(r);
    parked = r;
    __atomic_add_fetch(&parked_count, 1, __ATOMIC_SEQ_CST);
}

static void h_release(saga_http_req_t *r, void *data) {
    if (parked != NULL) {
        saga_http_req_t *p = parked;
        parked = NULL;
        saga_http_req_on_gone(p, NULL, NULL);
        bool bad = false;
        size_t plen;
        const char *path = saga_http_req_path(p, &plen);
        saga_http_respond_json(
            p, 200,
            json_pack("{s:s?, s:s?, s:s%, s:s?, s:s?}", "probe", saga_http_req_header(p, "x-probe"),
                      "accept", saga_http_req_header(p, "accept"), "path", path, plen, "q",
                      saga_http_req_query(p, "q", &bad), "id", saga_http_req_param(p, 0)));
    }
    saga_http_respond_text(r, 200, "text/plain", "released\n", 9);
}

static saga_http_route_t routes[] = {
    {"GET", "/ping", SAGA_HTTP_OPEN, h_ping, NULL},
    {"GET", "/v1/items/{id}", SAGA_HTTP_READ, h_item, NULL},
    {"POST", "/v1/items", SAGA_HTTP_WRITE, h_post, NULL},
    {"GET", "/v1/slow", SAGA_HTTP_READ, h_slow, NULL},
    {"GET", "/v1/park/{id}", SAGA_HTTP_READ, h_park, NULL},
    {"GET", "/v1/release", SAGA_HTTP_READ, h_release, NULL},
};

typedef struct srv_s {
    pthread_t thread;
    sem_t ready;
    uv_loop_t loop;
    uv_async_t stop;
    saga_http_server_t *http;
    saga_http_server_options_t opt;
    saga_http_tokens_t *tokens;
    char address[300];
    char err[512];
    int loop_close;
    char *metrics;
} srv_t;

static srv_t S;

static void on_stopped(bool clean, void *data) {
    cr_assert(clean, "every connection closed within the grace period");
}

static void on_stop(uv_async_t *a) {
    srv_t *s = a->data;
    size_t len;
    FILE *f = open_memstream(&s->metrics, &len);
    saga_http_server_metrics(s->http, f);
    fclose(f);
    saga_http_server_stop(s->http, 1000, on_stopped, s);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run(void *arg) {
    srv_t *s = arg;
    uv_loop_init(&s->loop);
    routes[3].data = &s->loop;
    saga_http_server_new(&s->loop, &s->opt, routes, sizeof(routes) / sizeof(routes[0]), &s->http,
                         s->err, sizeof(s->err));
    if (s->http != NULL)
        snprintf(s->address, sizeof(s->address), "%s", saga_http_server_address(s->http));
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    sem_post(&s->ready);
    if (s->http == NULL)
        uv_close((uv_handle_t *)&s->stop, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    s->loop_close = uv_loop_close(&s->loop);
    return NULL;
}

static void start(const char *listen, bool with_tokens, size_t max_body) {
    memset(&S, 0, sizeof(S));
    gone_calls = slow_answered = 0;
    if (with_tokens) {
        const char *text = "# tokens\n" FULL_TOKEN "\n  " READ_TOKEN " read\n\n";
        S.tokens = saga_http_tokens_parse("tokens", text, strlen(text), S.err, sizeof(S.err));
        cr_assert_not_null(S.tokens, "%s", S.err);
    }
    S.opt.listen = listen;
    S.opt.tokens = S.tokens;
    S.opt.max_body = max_body;
    S.opt.request_timeout_ms = 2000;
    sem_init(&S.ready, 0, 0);
    pthread_create(&S.thread, NULL, run, &S);
    sem_wait(&S.ready);
    cr_assert_not_null(S.http, "server did not start: %s", S.err);
}

static void stop(void) {
    uv_async_send(&S.stop);
    pthread_join(S.thread, NULL);
    cr_assert_eq(S.loop_close, 0, "handles left on the loop");
    saga_http_tokens_free(S.tokens);
}

/* ---------------------------------------------------------------------- */
/* A client                                                                */
/* ---------------------------------------------------------------------- */

typedef struct resp_s {
    long status;
    char body[8192];
    size_t len;
    char headers[4096];
    size_t hlen;
} resp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    resp_t *r = ud;
    size_t k = sz * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    resp_t *r = ud;
    size_t k = sz * n;
    size_t room = sizeof(r->headers) - 1 - r->hlen;
    memcpy(r->headers + r->hlen, p, k < room ? k : room);
    r->hlen += k < room ? k : room;
    r->headers[r->hlen] = '\0';
    return k;
}

/* Sends a request; returns curl's code. `hdr` may be NULL. */
static CURLcode request(const char *method, const char *path, const char *hdr, const char *body,
                        long timeout_ms, resp_t *out) {
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    char url[512];
    if (strncmp(S.address, "unix:", 5) == 0) {
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, S.address + 5);
        snprintf(url, sizeof(url), "http://localhost%s", path);
    } else {
        snprintf(url, sizeof(url), "%s%s", S.address, path);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    struct curl_slist *h = NULL;
    if (hdr != NULL)
        h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static void expect_error(const resp_t *r, long status, const char *code) {
    cr_assert_eq(r->status, status, "status %ld, body %s", r->status, r->body);
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    cr_assert_not_null(j, "not JSON: %s", r->body);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    cr_assert_not_null(c, "no error.code in %s", r->body);
    cr_assert_str_eq(c, code);
    cr_assert_not_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    json_decref(j);
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */
/* ---------------------------------------------------------------------- */

TestSuite(http_server, .timeout = 60);

Test(http_server, routes_params_and_json_errors) {
    start("127.0.0.1:0", false, 0);
    resp_t r;
    cr_assert_eq(request("GET", "/ping", NULL, NULL, 5000, &r), CURLE_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "pong\n");

    cr_assert_eq(request("GET", "/v1/items/abc-1?x=1&q=a%20b+c", NULL, NULL, 5000, &r), CURLE_OK);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"id\":\"abc-1\",\"q\":\"a b c\"}\n");
    cr_assert(strstr(r.headers, "content-type: application/json") != NULL, "%s", r.headers);

    request("GET", "/v1/items/x?q=%zz", NULL, NULL, 5000, &r);
    expect_error(&r, 400, "bad_query");
    request("GET", "/nothing/here", NULL, NULL, 5000, &r);
    expect_error(&r, 404, "not_found");
    request("GET", "/v1/items/", NULL, NULL, 5000, &r); /* an empty segment is no id */
    expect_error(&r, 404, "not_found");
    request("DELETE", "/v1/items/abc", NULL, NULL, 5000, &r);
    expect_error(&r, 405, "method_not_allowed");
    cr_assert(strstr(r.headers, "allow: GET") != NULL, "%s", r.headers);

    cr_assert_eq(request("POST", "/v1/items", "Idempotency-Key: k-1", "{\"a\":1}", 5000, &r),
                 CURLE_OK);
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.body, "{\"bytes\":7,\"key\":\"k-1\"}\n");
    cr_assert(strstr(r.headers, "location: /v1/items/new") != NULL, "%s", r.headers);
    stop();

    cr_assert(strstr(S.metrics, "saga_http_requests_total{route=\"/v1/items/{id}\",code=\"200\"} 1\n") != NULL,
              "%s", S.metrics);
    cr_assert(strstr(S.metrics, "saga_http_requests_total{route=\"other\",code=\"404\"} 2\n") != NULL,
              "%s", S.metrics);
    cr_assert(strstr(S.metrics, "saga_http_request_duration_seconds_count{route=\"/ping\"} 1\n") != NULL,
              "%s", S.metrics);
    free(S.metrics);
}

/* Every answer keeps the connection (h2o closes one after a non-200 whose
 * length it does not know): a 404 then a 201 on one connection. */
Test(http_server, connections_are_kept_alive_after_any_status) {
    start("127.0.0.1:0", false, 0);
    CURL *c = curl_easy_init();
    char url[512];
    resp_t r;
    memset(&r, 0, sizeof(r));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    const char *paths[] = {"/nothing", "/v1/items", "/v1/items/a", "/v1/items"};
    const char *methods[] = {"GET", "POST", "DELETE", "POST"};
    for (int i = 0; i < 4; i++) {
        snprintf(url, sizeof(url), "%s%s", S.address, paths[i]);
        curl_easy_setopt(c, CURLOPT_URL, url);
        if (strcmp(methods[i], "POST") == 0)
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
        else
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, methods[i]);
        r.len = 0;
        cr_assert_eq(curl_easy_perform(c), CURLE_OK);
        long connects = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
        cr_assert_eq(connects, i == 0 ? 1 : 0, "request %d opened %ld connection(s)", i, connects);
    }
    curl_easy_cleanup(c);
    stop();
    free(S.metrics);
}

Test(http_server, bearer_tokens_full_read_and_none) {
    start("127.0.0.1:0", true, 0);
    resp_t r;
    request("GET", "/ping", NULL, NULL, 5000, &r);
    cr_assert_eq(r.status, 200, "open routes need no token");

    request("GET", "/v1/items/a", NULL, NULL, 5000, &r);
    expect_error(&r, 401, "unauthorized");
    cr_assert(strstr(r.headers, "www-authenticate: Bearer") != NULL, "%s", r.headers);
    request("GET", "/v1/items/a", "Authorization: Bearer wrong-token-0123456789", NULL, 5000, &r);
    expect_error(&r, 401, "unauthorized");
    request("GET", "/v1/items/a", "Authorization: Basic " FULL_TOKEN, NULL, 5000, &r);
    expect_error(&r, 401, "unauthorized");
    /* a prefix of a token is not the token */
    request("GET", "/v1/items/a", "Authorization: Bearer full-access-token", NULL, 5000, &r);
    expect_error(&r, 401, "unauthorized");

    request("GET", "/v1/items/a", "Authorization: Bearer " READ_TOKEN, NULL, 5000, &r);
    cr_assert_eq(r.status, 200);
    request("POST", "/v1/items", "Authorization: Bearer " READ_TOKEN, "{}", 5000, &r);
    expect_error(&r, 403, "forbidden");
    request("POST", "/v1/items", "Authorization: bearer " FULL_TOKEN, "{}", 5000, &r);
    cr_assert_eq(r.status, 201);
    stop();
    free(S.metrics);
}

Test(http_server, body_over_the_limit_is_refused) {
    start("127.0.0.1:0", false, 100);
    resp_t r;
    char big[201];
    memset(big, 'x', 200);
    big[200] = '\0';
    request("POST", "/v1/items", NULL, big, 5000, &r);
    expect_error(&r, 413, "body_too_large");
    cr_assert(strstr(r.headers, "content-type: application/json") != NULL, "%s", r.headers);
    cr_assert(strstr(r.body, "100 bytes") != NULL, "names the limit: %s", r.body);
    request("POST", "/v1/items", NULL, "{}", 5000, &r);
    cr_assert_eq(r.status, 201, "a small body after a refused one");
    stop();
    free(S.metrics);
}

/* A connected TCP socket to the server (S.address is http://127.0.0.1:P). */
static int raw_connect(void) {
    unsigned port = 0;
    cr_assert_eq(sscanf(S.address, "http://127.0.0.1:%u", &port), 1, "%s", S.address);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const char *s) {
    size_t n = strlen(s);
    cr_assert_eq(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads an answer up to the end of its body (Content-Length) or EOF. */
static void raw_answer(int fd, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "content-length:");
        if (end != NULL && cl != NULL && cl < end &&
            len >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            break;
    }
    buf[len] = '\0';
}

/* The JSON body of a raw answer, checked as an error with `code`. */
static void raw_expect_error(const char *ans, const char *status_line, const char *code) {
    cr_assert(strncmp(ans, status_line, strlen(status_line)) == 0, "%s", ans);
    cr_assert(strcasestr(ans, "content-type: application/json") != NULL, "%s", ans);
    const char *body = strstr(ans, "\r\n\r\n");
    cr_assert_not_null(body, "%s", ans);
    resp_t r = {.status = strtol(ans + 9, NULL, 10)};
    snprintf(r.body, sizeof(r.body), "%s", body + 4);
    expect_error(&r, r.status, code);
}

/* A Content-Length over the limit is refused as soon as the headers are
 * read, before any of the body is sent; a chunked body as soon as what
 * was decoded passes it. Both answer our JSON error, not h2o's text. */
Test(http_server, oversized_bodies_are_refused_as_json_without_reading_them) {
    start("127.0.0.1:0", false, 100);
    char ans[4096];
    int fd = raw_connect();
    raw_send(fd, "POST /v1/items HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n");
    raw_answer(fd, ans, sizeof(ans));
    raw_expect_error(ans, "HTTP/1.1 413", "body_too_large");
    close(fd);

    fd = raw_connect();
    raw_send(fd, "POST /v1/items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[64];
    memset(chunk, 0, sizeof(chunk));
    snprintf(chunk, sizeof(chunk), "28\r\n%040d\r\n", 0); /* 40 bytes a chunk */
    for (int i = 0; i < 3; i++)
        raw_send(fd, chunk); /* 120 bytes: over the limit, and not the end */
    raw_answer(fd, ans, sizeof(ans));
    raw_expect_error(ans, "HTTP/1.1 413", "body_too_large");
    close(fd);

    fd = raw_connect();
    raw_send(fd, "POST /v1/items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "zz\r\n");
    raw_answer(fd, ans, sizeof(ans));
    raw_expect_error(ans, "HTTP/1.1 400", "bad_request");
    close(fd);

    /* a chunked body within the limit still reaches the handler */
    fd = raw_connect();
    raw_send(fd, "POST /v1/items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    raw_send(fd, chunk);
    raw_send(fd, "0\r\n\r\n");
    raw_answer(fd, ans, sizeof(ans));
    cr_assert(strncmp(ans, "HTTP/1.1 201", 12) == 0, "%s", ans);
    cr_assert(strstr(ans, "\"bytes\":40") != NULL, "%s", ans);
    close(fd);
    stop();
    free(S.metrics);
}

Test(http_server, unix_socket) {
    char path[64];
    snprintf(path, sizeof(path), "/tmp/saga-http-%d.sock", (int)getpid());
    unlink(path);
    char listen[80];
    snprintf(listen, sizeof(listen), "unix:%s", path);
    start(listen, false, 0);
    cr_assert_str_eq(S.address, listen);
    resp_t r;
    cr_assert_eq(request("GET", "/ping", NULL, NULL, 5000, &r), CURLE_OK);
    cr_assert_eq(r.status, 200);
    stop();
    free(S.metrics);
    unlink(path);
}

Test(http_server, listen_values_refused_with_reasons) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512];
    saga_http_server_options_t o = {.listen = "0.0.0.0:0"};
    saga_http_server_t *srv;
    cr_assert_eq(saga_http_server_new(&loop, &o, routes, 1, &srv, err, sizeof(err)), -EPERM);
    cr_assert_null(srv);
    cr_assert(strstr(err, "without --token-file") != NULL, "%s", err);
    const char *bad[] = {"8080", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:80a",
                         "example.com:80", "[::1:80", "unix:", "[zz]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.listen = bad[i];
        err[0] = '\0';
        cr_assert_eq(saga_http_server_new(&loop, &o, routes, 1, &srv, err, sizeof(err)), -EINVAL,
                     "%s", bad[i]);
        cr_assert(strstr(err, bad[i]) != NULL, "the error names the value: %s", err);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http_server, token_file_errors_name_the_line) {
    char err[256];
    const char *cases[][2] = {
        {"short\n", "tokens:1: error: a token is 16 to 256"},
        {"# c\n" FULL_TOKEN " write\n", "tokens:2: error: after the token"},
        {FULL_TOKEN "\n" FULL_TOKEN " read\n", "tokens:2: error: the same token is listed twice"},
        {"\n# nothing\n", "tokens: error: no token"},
        {"tab\tinside-token-0123456789\n", "tokens:1: error: a token is 16 to 256"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        cr_assert_null(saga_http_tokens_parse("tokens", cases[i][0], strlen(cases[i][0]), err,
                                              sizeof(err)));
        cr_assert(strstr(err, cases[i][1]) != NULL, "case %zu: %s", i, err);
        cr_assert(strstr(err, FULL_TOKEN) == NULL, "a token never shows in an error");
    }
    const char *ok = FULL_TOKEN "\r\n" READ_TOKEN "   read\r\n";
    saga_http_tokens_t *t = saga_http_tokens_parse("tokens", ok, strlen(ok), err, sizeof(err));
    cr_assert_not_null(t, "%s", err);
    cr_assert_eq(saga_http_tokens_count(t), 2);
    cr_assert_eq(saga_http_tokens_check(t, FULL_TOKEN, strlen(FULL_TOKEN)), SAGA_HTTP_GRANT_FULL);
    cr_assert_eq(saga_http_tokens_check(t, READ_TOKEN, strlen(READ_TOKEN)), SAGA_HTTP_GRANT_READ);
    cr_assert_eq(saga_http_tokens_check(t, FULL_TOKEN, strlen(FULL_TOKEN) - 1), SAGA_HTTP_GRANT_NONE);
    char longer[SAGA_HTTP_TOKEN_MAX + 10];
    memset(longer, 'a', sizeof(longer));
    cr_assert_eq(saga_http_tokens_check(t, longer, sizeof(longer)), SAGA_HTTP_GRANT_NONE);
    saga_http_tokens_free(t);
}

Test(http_server, client_gone_before_the_answer) {
    start("127.0.0.1:0", false, 0);
    resp_t r;
    /* the client gives up after 50 ms; the handler answers at 300 ms */
    cr_assert_eq(request("GET", "/v1/slow", NULL, NULL, 50, &r), CURLE_OPERATION_TIMEDOUT);
    /* a later request still works, and waits for its own slow answer */
    cr_assert_eq(request("GET", "/v1/slow", NULL, NULL, 5000, &r), CURLE_OK);
    cr_assert_eq(r.status, 200);
    stop();
    /* h2o 2.2 stops reading while a request is in flight, so a client that
     * leaves is noticed when the answer is written (then into the void) or
     * when the connection is closed: either way the handler's state is
     * never used after the request is gone, and each request ends once. */
    cr_assert_eq(gone_calls + slow_answered, 2, "gone %d, answered %d", gone_calls, slow_answered);
    free(S.metrics);
}

/* 500 connections that send their headers a byte at a time do not keep a
 * normal request from being answered within 1 s. */
Test(http_server, slow_headers_do_not_starve_others, .timeout = 120) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2048 && rl.rlim_max >= 2048) {
        rl.rlim_cur = 2048;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    start("127.0.0.1:0", false, 0);
    unsigned port = (unsigned)atoi(strrchr(S.address, ':') + 1);
    enum { N = 500 };
    static int fds[N];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
    }
    const char *head = "GET /ping HTTP/1.1\r\nHost: x\r\n";
    for (size_t k = 0; k < 4; k++) {
        for (int i = 0; i < N; i++)
            cr_assert_eq(send(fds[i], head + k, 1, MSG_NOSIGNAL), 1);
        resp_t r;
        cr_assert_eq(request("GET", "/ping", NULL, NULL, 1000, &r), CURLE_OK,
                     "answered within 1 s with %d slow connections open", N);
        cr_assert_eq(r.status, 200);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop();
    free(S.metrics);
}

static void *park_client(void *arg) {
    resp_t *r = arg;
    request("GET", "/v1/park/p-1?q=first%20value&x=1", "X-Probe: parked-probe-value", NULL, 10000,
            r);
    return NULL;
}

/* A parked request keeps its headers, path and query: they moved out of
 * the connection's input buffer, which h2o reuses for the next request. */
Test(http_server, a_parked_request_keeps_what_it_reads) {
    start("127.0.0.1:0", false, 0);
    parked_count = 0;
    static resp_t pr;
    pthread_t t;
    pthread_create(&t, NULL, park_client, &pr);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 10;
    while (__atomic_load_n(&parked_count, __ATOMIC_SEQ_CST) == 0) {
        struct timespec now, nap = {0, 1000000};
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert(now.tv_sec < deadline.tv_sec, "the request was never parked");
        nanosleep(&nap, NULL);
    }
    resp_t r;
    cr_assert_eq(request("GET", "/v1/release?q=other", "X-Probe: the-release-request-"
                         "overwrites-whatever-buffer-it-reuses", NULL, 10000, &r), CURLE_OK);
    cr_assert_eq(r.status, 200, "%s", r.body);
    pthread_join(t, NULL);
    cr_assert_eq(pr.status, 200, "%s", pr.body);
    json_error_t e;
    json_t *j = json_loads(pr.body, 0, &e);
    cr_assert_not_null(j, "%s", pr.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "probe")), "parked-probe-value", "%s",
                     pr.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "q")), "first value", "%s", pr.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "path")), "/v1/park/p-1", "%s", pr.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "p-1", "%s", pr.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "accept")), "*/*", "%s", pr.body);
    json_decref(j);
    stop();
    free(S.metrics);
}
