/*
 * http_server.c -- h2o on our libuv loop (http_server.h).
 *
 * h2o 2.2 parses HTTP and buffers each request body whole (bounded by
 * max_request_entity_size, which we set); we accept connections ourselves
 * (to count and cap them) and hand each socket to h2o. One h2o handler
 * receives every request and routes it through the table the caller gave.
 */
#define H2O_USE_LIBUV 1
#include "http/http_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>

#include "http/http_route.h"
#include "util/log.h"

#define DEFAULT_MAX_BODY (1024u * 1024u)
#define DEFAULT_MAX_CONNECTIONS 4096u
#define DEFAULT_REQUEST_TIMEOUT_MS 10000u
#define MAX_CODES 24 /* distinct status codes counted per route */
#define ADDRESS_MAX 300

/* Latency buckets (seconds): up to a minute, for long-polls. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10,
                                 30,     60};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct route_metrics_s {
    struct {
        int status;
        uint64_t n;
    } codes[MAX_CODES];
    size_t ncodes;
    uint64_t bucket[NBUCKETS]; /* not cumulative; summed when written */
    uint64_t count;
    double sum;
} route_metrics_t;

typedef struct handler_s {
    h2o_handler_t super;
    saga_http_server_t *srv;
} handler_t;

/* A connection's handle; h2o owns the socket built on it. */
typedef struct conn_s {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    saga_http_server_t *srv;
} conn_t;

struct saga_http_server_s {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    bool ctx_ready;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_handle_t handle;
    } listener;
    bool is_unix;
    bool listening;
    char address[ADDRESS_MAX];
    size_t conns;
    size_t max_conns;
    uint64_t refused;
    const saga_http_route_t *routes;
    size_t nroutes;
    route_metrics_t *metrics; /* nroutes + 1: the last counts unrouted */
    const saga_http_tokens_t *tokens;
    bool stopping;
    uv_timer_t grace;
    bool grace_init;
    int closing;
    void (*done)(bool clean, void *);
    void *done_data;
};

struct saga_http_req_s {
    saga_http_server_t *srv;
    h2o_req_t *req;
    size_t route;
    uint64_t start_ns;
    char *params[SAGA_HTTP_MAX_PARAMS];
    size_t nparams;
    void (*gone)(void *);
    void *gone_data;
    bool responded;
};

/* ---------------------------------------------------------------------- */
/* Listening address                                                       */
/* ---------------------------------------------------------------------- */

static int parse_port(const char *s, unsigned *out) {
    if (*s == '\0' || strlen(s) > 5)
        return -EINVAL;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *out = v;
    return 0;
}

/* "HOST:PORT" into a socket address. Hosts: a numeric IPv4 address, an
 * IPv6 one in brackets, or "localhost" (127.0.0.1): no name lookup. */
static int parse_inet(const char *flag, const char *listen, struct sockaddr_storage *sa,
                      char *err, size_t errlen) {
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen) {
        snprintf(err, errlen, "%s '%s': expected HOST:PORT or unix:PATH", flag, listen);
        return -EINVAL;
    }
    unsigned port;
    if (parse_port(colon + 1, &port) != 0) {
        snprintf(err, errlen, "%s '%s': the port must be a number from 0 to 65535", flag,
                 listen);
        return -EINVAL;
    }
    char host[INET6_ADDRSTRLEN + 2];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof(host)) {
        snprintf(err, errlen, "%s '%s': the host is not an IP address", flag, listen);
        return -EINVAL;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof(*sa));
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']') {
            snprintf(err, errlen, "%s '%s': an IPv6 address goes in brackets: [::1]:PORT",
                     flag, listen);
            return -EINVAL;
        }
        host[hl - 1] = '\0';
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)sa) != 0) {
            snprintf(err, errlen, "%s '%s': '%s' is not an IPv6 address", flag, listen,
                     host + 1);
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    if (strchr(host, ':') != NULL || uv_ip4_addr(host, (int)port, in4) != 0 ||
        inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
        snprintf(err, errlen,
                 "%s '%s': the host must be an IP address (127.0.0.1, [::1]) or "
                 "localhost; names are not looked up",
                 flag, listen);
        return -EINVAL;
    }
    return 0;
}

static bool is_loopback(const struct sockaddr_storage *sa) {
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

/* ---------------------------------------------------------------------- */
/* Metrics                                                                 */
/* ---------------------------------------------------------------------- */

static void count_request(saga_http_server_t *s, size_t route, int status, double secs) {
    route_metrics_t *m = &s->metrics[route];
    size_t i;
    for (i = 0; i < m->ncodes && m->codes[i].status != status; i++)
        ;
    if (i == m->ncodes && m->ncodes < MAX_CODES) {
        m->codes[i].status = status;
        m->codes[i].n = 0;
        m->ncodes++;
    }
    if (i < m->ncodes)
        m->codes[i].n++;
    for (size_t b = 0; b < NBUCKETS; b++) {
        if (secs <= buckets[b]) {
            m->bucket[b]++;
            break;
        }
    }
    m->count++;
    m->sum += secs;
}

static const char *route_label(const saga_http_server_t *s, size_t i) {
    return i < s->nroutes ? s->routes[i].path : "other";
}

int saga_http_server_metrics(const saga_http_server_t *s, FILE *out) {
    fputs("# HELP saga_http_requests_total HTTP requests answered, by route and status code.\n"
          "# TYPE saga_http_requests_total counter\n", out);
    for (size_t i = 0; i <= s->nroutes; i++) {
        const route_metrics_t *m = &s->metrics[i];
        for (size_t c = 0; c < m->ncodes; c++)
            fprintf(out, "saga_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                    route_label(s, i), m->codes[c].status, (unsigned long long)m->codes[c].n);
    }
    fputs("# HELP saga_http_request_duration_seconds Time from a request's arrival to its "
          "answer, by route.\n"
          "# TYPE saga_http_request_duration_seconds histogram\n", out);
    for (size_t i = 0; i <= s->nroutes; i++) {
        const route_metrics_t *m = &s->metrics[i];
        if (m->count == 0)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += m->bucket[b];
            fprintf(out, "saga_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route_label(s, i), buckets[b], (unsigned long long)cum);
        }
        fprintf(out, "saga_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                route_label(s, i), (unsigned long long)m->count);
        fprintf(out, "saga_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                route_label(s, i), m->sum);
        fprintf(out, "saga_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                route_label(s, i), (unsigned long long)m->count);
    }
    fprintf(out,
            "# HELP saga_http_connections Open HTTP connections.\n"
            "# TYPE saga_http_connections gauge\n"
            "saga_http_connections %zu\n"
            "# HELP saga_http_connections_refused_total Connections closed at once because "
            "--max-connections were open.\n"
            "# TYPE saga_http_connections_refused_total counter\n"
            "saga_http_connections_refused_total %llu\n",
            s->conns, (unsigned long long)s->refused);
    return ferror(out) ? -ENOMEM : 0;
}

/* ---------------------------------------------------------------------- */
/* Responses                                                               */
/* ---------------------------------------------------------------------- */

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void saga_http_req_add_header(saga_http_req_t *r, const char *name, const char *value) {
    h2o_req_t *req = r->req;
    size_t nl = strlen(name), vl = strlen(value);
    char *n = h2o_mem_alloc_pool(&req->pool, nl + 1);
    char *v = h2o_mem_alloc_pool(&req->pool, vl + 1);
    memcpy(n, name, nl + 1);
    memcpy(v, value, vl + 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, nl, 1, NULL, v, vl);
}

void saga_http_req_on_gone(saga_http_req_t *r, void (*gone)(void *), void *data) {
    r->gone = gone;
    r->gone_data = data;
}

int saga_http_respond_prometheus(saga_http_req_t *r, int (*write)(FILE *out, void *data),
                                 void *data) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        saga_http_respond_error(r, 500, "internal", "out of memory");
        return 0;
    }
    int rc = write(f, data);
    if (fclose(f) != 0 || text == NULL) {
        free(text);
        if (rc == 0)
            saga_http_respond_error(r, 500, "internal", "out of memory");
        return rc;
    }
    if (rc == 0)
        saga_http_respond_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

void saga_http_respond_text(saga_http_req_t *r, int status, const char *content_type,
                            const char *body, size_t len) {
    if (r->responded) {
        saga_error("http: a second answer to one request (route %s) was dropped",
                   route_label(r->srv, r->route));
        return;
    }
    r->responded = true;
    r->gone = NULL;
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    /* API answers are never cached; a handler that says otherwise (the
     * console's files) added its own Cache-Control. */
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) < 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("no-store"));
    /* A known length keeps the connection alive: without one, h2o 2.2
     * chunks a 200 and closes the connection after any other status
     * (lib/handler/chunked.c), so every 201 or 404 cost a new connection. */
    req->res.content_length = len;
    /* Stopping: h2o 2.2 leaves an HTTP/1.1 connection whose request was in
     * flight at h2o_context_request_shutdown() alive after the answer, so
     * a keep-alive client would hold it until the grace ran out. */
    if (r->srv->stopping)
        req->http1_is_persistent = 0;
    double secs = (double)(uv_hrtime() - r->start_ns) / 1e9;
    count_request(r->srv, r->route, status, secs);
    h2o_send_inline(req, body, len);
}

void saga_http_respond_json(saga_http_req_t *r, int status, json_t *body) {
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
        saga_http_respond_text(r, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    size_t len = strlen(text);
    text[len] = '\0';
    /* one trailing newline, for people reading with curl */
    char *nl = realloc(text, len + 2);
    if (nl != NULL) {
        text = nl;
        text[len++] = '\n';
        text[len] = '\0';
    }
    saga_http_respond_text(r, status, "application/json", text, len);
    free(text);
}

void saga_http_respond_error(saga_http_req_t *r, int status, const char *code,
                             const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    saga_http_respond_json(r, status,
                           json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

/* ---------------------------------------------------------------------- */
/* h2o's own errors as JSON                                                */
/* ---------------------------------------------------------------------- */

/* h2o answers a few requests itself, before our handler runs: a body over
 * max_request_entity_size (413: by its Content-Length as soon as the
 * headers are read, or while a chunked body is decoded, before more than
 * the limit and one read are buffered), a malformed body framing (400) and
 * an unknown Expect (417). It binds such a request to the host's fallback
 * path and answers text/plain through the output filters of that path; the
 * filter below, registered there, turns the answer into our JSON error.
 * (A request line or headers that cannot be parsed at all get a raw 400
 * written straight to the socket, which no filter sees.) */
typedef struct error_filter_s {
    h2o_filter_t super;
    saga_http_server_t *srv;
} error_filter_t;

typedef struct error_ostream_s {
    h2o_ostream_t super;
    saga_http_server_t *srv;
    bool sent;
} error_ostream_t;

static const char *h2o_error_code(int status) {
    switch (status) {
    case 413: return "body_too_large";
    case 417: return "expectation_failed";
    case 400: return "bad_request";
    default: return "http_error";
    }
}

static void error_ostream_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                               size_t bufcnt, h2o_send_state_t state) {
    error_ostream_t *o = (error_ostream_t *)self;
    if (bufcnt == 0 || o->sent) { /* HEAD, or what follows our body */
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    o->sent = true;
    char msg[300];
    if (req->res.status == 413) {
        snprintf(msg, sizeof(msg), "the request body is over the server's limit of %zu bytes "
                 "(saga serve --max-body)", o->srv->config.max_request_entity_size);
    } else {
        /* h2o's own words ("broken chunked-encoding"), at most 200 bytes */
        size_t k = 0;
        char text[201];
        for (size_t i = 0; i < bufcnt && k < sizeof(text) - 1; i++) {
            size_t c = bufs[i].len < sizeof(text) - 1 - k ? bufs[i].len : sizeof(text) - 1 - k;
            memcpy(text + k, bufs[i].base, c);
            k += c;
        }
        text[k] = '\0';
        snprintf(msg, sizeof(msg), "the request cannot be read: %s", text);
    }
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", h2o_error_code(req->res.status),
                          "message", msg);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    h2o_iovec_t body = h2o_iovec_init(H2O_STRLIT("{\"error\":{\"code\":\"internal\","
                                                 "\"message\":\"out of memory\"}}\n"));
    if (text != NULL) {
        size_t len = strlen(text);
        body.base = h2o_mem_alloc_pool(&req->pool, len + 1);
        memcpy(body.base, text, len);
        body.base[len] = '\n';
        body.len = len + 1;
        free(text);
    }
    /* the headers are written by the last stream, after this */
    req->res.content_length = body.len;
    h2o_ostream_send_next(self, req, &body, 1, state);
}

static void error_filter_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot) {
    error_filter_t *f = (error_filter_t *)self;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && ct >= 0 &&
        h2o_memis(req->res.headers.entries[ct].value.base,
                  req->res.headers.entries[ct].value.len < 10 ? req->res.headers.entries[ct].value.len
                                                             : 10,
                  H2O_STRLIT("text/plain"))) {
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        error_ostream_t *o = (error_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = error_ostream_send;
        o->srv = f->srv;
        o->sent = false;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */
/* ---------------------------------------------------------------------- */

const char *saga_http_req_path(const saga_http_req_t *r, size_t *len) {
    *len = r->req->path_normalized.len;
    return r->req->path_normalized.base;
}

const char *saga_http_req_param(const saga_http_req_t *r, size_t i) {
    return i < r->nparams ? r->params[i] : NULL;
}

const char *saga_http_req_body(const saga_http_req_t *r, size_t *len) {
    *len = r->req->entity.base != NULL ? r->req->entity.len : 0;
    return r->req->entity.base != NULL ? r->req->entity.base : "";
}

const char *saga_http_req_header(saga_http_req_t *r, const char *name) {
    ssize_t i = h2o_find_header_by_str(&r->req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = r->req->headers.entries[i].value;
    char *s = h2o_mem_alloc_pool(&r->req->pool, v.len + 1);
    memcpy(s, v.base, v.len);
    s[v.len] = '\0';
    return s;
}

const char *saga_http_req_query(saga_http_req_t *r, const char *name, bool *bad) {
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX)
        return NULL;
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    char *out = h2o_mem_alloc_pool(&req->pool, qlen + 1);
    int rc = saga_http_query_get(q, qlen, name, out, qlen + 1);
    if (rc == -ENOENT)
        return NULL;
    if (rc != 0) {
        *bad = true;
        return NULL;
    }
    return out;
}

/* ---- Parking: what a waiting request gives back ---- */

/* h2o 2.2's HTTP/1 connection begins with these two members (lib/http1.c,
 * struct st_h2o_http1_conn_t); checked below before it is relied on. */
#if !(H2O_LIBRARY_VERSION_MAJOR == 0 && H2O_LIBRARY_VERSION_MINOR == 13)
#error "saga_http_req_park() knows the HTTP/1 connection of h2o 2.2 (libh2o 0.13) only"
#endif
struct http1_conn_head {
    h2o_conn_t super;
    h2o_socket_t *sock;
};

#define PARK_MAX_REQUEST 2048u /* larger requests keep their buffer */

/* Moves `v` from the old buffer [from, from + n) to `to`. */
static void rebase(h2o_iovec_t *v, const char *from, size_t n, char *to) {
    if (v->base != NULL && v->base >= from && v->base < from + n)
        v->base = to + (v->base - from);
}

void saga_http_req_park(saga_http_req_t *r) {
    h2o_req_t *req = r->req;
    /* HTTP/1 only, and no body (which would point into the buffer too) */
    if (req->version >= 0x200 || req->entity.base != NULL)
        return;
    h2o_socket_t *sock = ((struct http1_conn_head *)req->conn)->sock;
    if (sock == NULL || sock->data != req->conn || sock->ssl != NULL)
        return;
    h2o_buffer_t *old = sock->input;
    size_t n = old->size;
    if (old->bytes == NULL || n == 0 || n > PARK_MAX_REQUEST ||
        n == old->_prototype->_initial_buf.capacity)
        return; /* (a buffer of the prototype's size would be recycled as one) */
    h2o_buffer_t *nb = malloc(offsetof(h2o_buffer_t, _buf) + n);
    if (nb == NULL)
        return;
    nb->capacity = n;
    nb->size = n;
    nb->bytes = nb->_buf;
    nb->_prototype = old->_prototype;
    nb->_fd = -1;
    memcpy(nb->_buf, old->bytes, n);
    /* what points into the request's bytes: the fields h2o itself copies
     * out of the buffer when a body may move it (fixup_request() in
     * lib/http1.c), and those derived from them */
    const char *from = old->bytes;
    rebase(&req->input.authority, from, n, nb->_buf);
    rebase(&req->input.method, from, n, nb->_buf);
    rebase(&req->input.path, from, n, nb->_buf);
    rebase(&req->authority, from, n, nb->_buf);
    rebase(&req->method, from, n, nb->_buf);
    rebase(&req->path, from, n, nb->_buf);
    rebase(&req->path_normalized, from, n, nb->_buf);
    rebase(&req->upgrade, from, n, nb->_buf);
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (!h2o_iovec_is_token(h->name))
            rebase(h->name, from, n, nb->_buf);
        rebase(&h->value, from, n, nb->_buf);
    }
    /* the old buffer goes back to h2o's allocator; h2o consumes the new
     * one when the answer is written (capacity != the prototype's: a plain
     * free then) */
    sock->input = nb;
    h2o_buffer__do_free(old);
}

static void req_dispose(void *p) {
    saga_http_req_t *r = p;
    if (!r->responded && r->gone != NULL) {
        void (*gone)(void *) = r->gone;
        r->gone = NULL;
        gone(r->gone_data);
    }
}

static bool method_is(const h2o_req_t *req, const char *m) {
    size_t n = strlen(m);
    return req->method.len == n && memcmp(req->method.base, m, n) == 0;
}

/* The token of an "Authorization: Bearer TOKEN" header. */
static bool bearer(const h2o_req_t *req, const char **tok, size_t *len) {
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len < 7 || strncasecmp(v.base, "bearer ", 7) != 0)
        return false;
    size_t k = 7;
    while (k < v.len && v.base[k] == ' ')
        k++;
    *tok = v.base + k;
    *len = v.len - k;
    return *len > 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
    saga_http_server_t *s = ((handler_t *)self)->srv;
    saga_http_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), req_dispose);
    memset(r, 0, sizeof(*r));
    r->srv = s;
    r->req = req;
    r->route = s->nroutes;
    r->start_ns = uv_hrtime();

    const char *path = req->path_normalized.base;
    size_t plen = req->path_normalized.len;
    bool path_known = false;
    const saga_http_route_t *rt = NULL;
    for (size_t i = 0; i < s->nroutes; i++) {
        saga_http_params_t pm;
        if (!saga_http_path_match(s->routes[i].path, path, plen, &pm))
            continue;
        path_known = true;
        if (!method_is(req, s->routes[i].method))
            continue;
        for (size_t k = 0; k < pm.n; k++) {
            r->params[k] = h2o_mem_alloc_pool(&req->pool, pm.len[k] + 1);
            memcpy(r->params[k], pm.s[k], pm.len[k]);
            r->params[k][pm.len[k]] = '\0';
        }
        r->nparams = pm.n;
        r->route = i;
        rt = &s->routes[i];
        break;
    }
    if (rt == NULL) {
        if (path_known) {
            char allow[64] = "";
            for (size_t i = 0; i < s->nroutes; i++) {
                if (saga_http_path_match(s->routes[i].path, path, plen, NULL) &&
                    strstr(allow, s->routes[i].method) == NULL &&
                    strlen(allow) + strlen(s->routes[i].method) + 3 < sizeof(allow)) {
                    if (allow[0] != '\0')
                        strcat(allow, ", ");
                    strcat(allow, s->routes[i].method);
                }
            }
            saga_http_req_add_header(r, "allow", allow);
            saga_http_respond_error(r, 405, "method_not_allowed", "%.*s is not allowed here (allowed: %s)",
                                    (int)(req->method.len > 16 ? 16 : req->method.len),
                                    req->method.base, allow);
        } else {
            saga_http_respond_error(r, 404, "not_found", "no such resource");
        }
        return 0;
    }
    if (s->tokens != NULL && rt->access != SAGA_HTTP_OPEN) {
        const char *tok;
        size_t tlen;
        saga_http_grant_t g = SAGA_HTTP_GRANT_NONE;
        if (bearer(req, &tok, &tlen))
            g = saga_http_tokens_check(s->tokens, tok, tlen);
        if (g == SAGA_HTTP_GRANT_NONE) {
            saga_http_req_add_header(r, "www-authenticate", "Bearer");
            saga_http_respond_error(r, 401, "unauthorized",
                                    "this request needs the header Authorization: Bearer TOKEN "
                                    "with a token of the server's token file");
            return 0;
        }
        if (rt->access == SAGA_HTTP_WRITE && g != SAGA_HTTP_GRANT_FULL) {
            saga_http_respond_error(r, 403, "forbidden", "this token may only read (GET)");
            return 0;
        }
    }
    rt->handle(r, rt->data);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Connections                                                             */
/* ---------------------------------------------------------------------- */

static void finish_stop(saga_http_server_t *s);

static void on_conn_closed(uv_handle_t *h) {
    conn_t *c = (conn_t *)h;
    saga_http_server_t *s = c->srv;
    free(c);
    s->conns--;
    if (s->stopping && s->conns == 0)
        finish_stop(s);
}

static void on_refused_closed(uv_handle_t *h) { free(h); }

static void on_accept(uv_stream_t *listener, int status) {
    saga_http_server_t *s = listener->data;
    if (status < 0) {
        saga_warn("http: accept: %s", uv_strerror(status));
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return; /* the connection waits in the backlog */
    c->srv = s;
    int rc = s->is_unix ? uv_pipe_init(s->loop, &c->h.pipe, 0)
                        : uv_tcp_init(s->loop, &c->h.tcp);
    if (rc != 0) {
        free(c);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->h) != 0) {
        uv_close((uv_handle_t *)&c->h, on_refused_closed);
        return;
    }
    if (s->stopping || s->conns >= s->max_conns) {
        s->refused++;
        uv_close((uv_handle_t *)&c->h, on_refused_closed);
        return;
    }
    if (!s->is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    s->conns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->h, on_conn_closed);
    if (sock == NULL) {
        s->conns--;
        uv_close((uv_handle_t *)&c->h, on_refused_closed);
        return;
    }
    h2o_accept(&s->accept_ctx, sock);
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */
/* ---------------------------------------------------------------------- */

static int listen_on(saga_http_server_t *s, const saga_http_server_options_t *opt,
                     char *err, size_t errlen) {
    const char *listen = opt->listen;
    const char *flag = opt->listen_flag != NULL ? opt->listen_flag : "--listen";
    const char *tflag = opt->tokens_flag != NULL ? opt->tokens_flag : "--token-file";
    bool open = opt->tokens == NULL;
    int rc;
    if (strncmp(listen, "unix:", 5) == 0) {
        const char *path = listen + 5;
        if (*path == '\0' || strlen(path) >= 100) {
            snprintf(err, errlen, "%s '%s': a unix socket path of 1 to 99 bytes", flag,
                     listen);
            return -EINVAL;
        }
        s->is_unix = true;
        if ((rc = uv_pipe_init(s->loop, &s->listener.pipe, 0)) != 0)
            goto uv_fail;
        s->listening = true;
        s->listener.handle.data = s;
        if ((rc = uv_pipe_bind(&s->listener.pipe, path)) != 0)
            goto uv_fail;
        snprintf(s->address, sizeof(s->address), "unix:%s", path);
    } else {
        struct sockaddr_storage sa;
        if (parse_inet(flag, listen, &sa, err, errlen) != 0)
            return -EINVAL;
        if (open && !is_loopback(&sa)) {
            snprintf(err, errlen,
                     "%s '%s': without %s, the server listens only on loopback "
                     "(127.0.0.1, [::1]) or a unix socket; give a token file to listen on '%s'",
                     flag, listen, tflag, listen);
            return -EPERM;
        }
        if ((rc = uv_tcp_init(s->loop, &s->listener.tcp)) != 0)
            goto uv_fail;
        s->listening = true;
        s->listener.handle.data = s;
        if ((rc = uv_tcp_bind(&s->listener.tcp, (struct sockaddr *)&sa, 0)) != 0)
            goto uv_fail;
        int n = sizeof(sa);
        if ((rc = uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&sa, &n)) != 0)
            goto uv_fail;
        char ip[INET6_ADDRSTRLEN];
        if (sa.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&sa;
            uv_ip4_name(in, ip, sizeof(ip));
            snprintf(s->address, sizeof(s->address), "http://%s:%u", ip, ntohs(in->sin_port));
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
            uv_ip6_name(in6, ip, sizeof(ip));
            snprintf(s->address, sizeof(s->address), "http://[%s]:%u", ip, ntohs(in6->sin6_port));
        }
    }
    if ((rc = uv_listen((uv_stream_t *)&s->listener, 511, on_accept)) != 0)
        goto uv_fail;
    return 0;
uv_fail:
    snprintf(err, errlen, "%s '%s': %s", flag, listen, uv_strerror(rc));
    return rc;
}

/* Frees the server, then tells its owner (clean: every handle closed). */
static void server_free(saga_http_server_t *s) {
    void (*done)(bool, void *) = s->done;
    void *data = s->done_data;
    free(s->metrics);
    free(s);
    if (done != NULL)
        done(true, data);
}

static void on_closed_free(uv_handle_t *h) {
    saga_http_server_t *s = h->data;
    if (--s->closing == 0)
        server_free(s);
}

static void release(saga_http_server_t *s) {
    if (s->ctx_ready) {
        /* request_shutdown() left HTTP/2's GOAWAY timer linked, and 2.2's
         * dispose asserts that every timeout is empty. (dispose runs the
         * loop once, NOWAIT, to free its timer handles: it is called from
         * a callback, which libuv tolerates for UV_RUN_NOWAIT.) */
        h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
        h2o_context_dispose(&s->ctx);
        s->ctx_ready = false;
    }
    h2o_config_dispose(&s->config);
    s->closing = 1; /* this function's own reference */
    if (s->listening) {
        s->closing++;
        s->listener.handle.data = s;
        uv_close(&s->listener.handle, on_closed_free);
    }
    if (s->grace_init) {
        s->closing++;
        s->grace.data = s;
        uv_close((uv_handle_t *)&s->grace, on_closed_free);
    }
    if (--s->closing == 0)
        server_free(s);
}

int saga_http_server_new(uv_loop_t *loop, const saga_http_server_options_t *opt,
                         const saga_http_route_t *routes, size_t n, saga_http_server_t **out,
                         char *err, size_t errlen) {
    *out = NULL;
    saga_http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->metrics = calloc(n + 1, sizeof(*s->metrics))) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->routes = routes;
    s->nroutes = n;
    s->tokens = opt->tokens;
    s->max_conns = opt->max_connections ? opt->max_connections : DEFAULT_MAX_CONNECTIONS;

    h2o_config_init(&s->config);
    s->config.max_request_entity_size = opt->max_body ? opt->max_body : DEFAULT_MAX_BODY;
    s->config.http1.req_timeout =
        opt->request_timeout_ms ? opt->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
    s->config.http2.idle_timeout = s->config.http1.req_timeout;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->srv = s;
    h->super.on_req = on_req;
    error_filter_t *ef = (error_filter_t *)h2o_create_filter(&host->fallback_path, sizeof(*ef));
    ef->srv = s;
    ef->super.on_setup_ostream = error_filter_setup;

    int rc = listen_on(s, opt, err, errlen);
    if (rc != 0) {
        s->done = NULL;
        release(s);
        return rc;
    }
    h2o_context_init(&s->ctx, loop, &s->config);
    s->ctx_ready = true;
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    *out = s;
    return 0;
}

const char *saga_http_server_address(const saga_http_server_t *s) { return s->address; }

size_t saga_http_server_connections(const saga_http_server_t *s) { return s->conns; }

static void finish_stop(saga_http_server_t *s) {
    if (s->grace_init)
        uv_timer_stop(&s->grace);
    release(s);
}

static void on_grace(uv_timer_t *t) {
    saga_http_server_t *s = t->data;
    saga_warn("http: %zu connection(s) still open after the grace period; closing", s->conns);
    /* h2o 2.2 offers no way to cut a connection from outside: what is left
     * is idle keep-alive or stuck clients; the process is about to exit. */
    void (*done)(bool, void *) = s->done;
    void *data = s->done_data;
    s->done = NULL;
    if (done != NULL)
        done(false, data);
}

void saga_http_server_stop(saga_http_server_t *s, uint64_t grace_ms,
                           void (*done)(bool clean, void *), void *data) {
    /* The listener stays open until the end (closing it here would race
     * with release()): while stopping, on_accept closes what it accepts. */
    s->stopping = true;
    s->done = done;
    s->done_data = data;
    if (s->ctx_ready)
        h2o_context_request_shutdown(&s->ctx);
    if (s->conns == 0) {
        finish_stop(s);
        return;
    }
    if (uv_timer_init(s->loop, &s->grace) == 0) {
        s->grace_init = true;
        s->grace.data = s;
        uv_timer_start(&s->grace, on_grace, grace_ms, 0);
    }
}
