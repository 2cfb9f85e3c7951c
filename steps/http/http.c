/*
 * http.c -- the built-in `http` plugin: the handler `http.request`.
 *
 * One call is one HTTP request made with libcurl's multi-socket interface,
 * driven by the engine's libuv loop: one CURLM per plugin instance (so
 * connections are cached and reused across calls), one uv_timer_t for
 * libcurl's timeouts and one uv_poll_t per socket libcurl asks us to watch.
 * Nothing blocks the loop: sockets are non-blocking and host names are
 * resolved by libcurl's threaded resolver (Debian's libcurl is built with
 * AsynchDNS; init() warns when it is not).
 *
 * The outcome mapping, the `with` fields and the headers sent are documented
 * in docs/steps.md; the code below follows that text.
 */
/* dladdr() is a GNU extension (see http_init). */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "saga/plugin.h"
#include "http_reason.h"
#include "step_args.h"
#include "step_call.h"

#define PLUGIN "http"
#define HANDLER "http.request"

#define DEFAULT_MAX_BODY (1024u * 1024u)        /* response body cap */
#define MAX_MAX_BODY (256u * 1024u * 1024u)     /* the cap's own limit */
#define MAX_HEADER_BYTES (64u * 1024u)          /* all response headers */
#define MAX_URL_LEN 8192u
#define MAX_STATUS_LIST 128u
#define MAX_REDIRECTS 5L
#define DEFAULT_MAX_CONNECTIONS 256L
#define SNIPPET_BYTES 200u    /* response body quoted in failure messages */
#define MAX_RETRY_AFTER_S (24 * 3600)

typedef struct http_s http_t;

/* A socket libcurl asked us to watch. */
typedef struct sock_s {
    uv_poll_t poll;
    http_t *h;
    curl_socket_t fd;
    struct sock_s *prev, *next;
} sock_t;

/* One request in flight. */
typedef struct req_s {
    http_t *h;
    saga_call_t *call;
    CURL *easy;
    struct curl_slist *headers;
    char method[33];
    char *url;       /* given to libcurl */
    char *shown_url; /* for messages: without a password */
    char *body;      /* request body (JSON text), or NULL */
    uint64_t timeout_ms;
    uint64_t max_body;
    bool follow;     /* follow_redirects */
    int business[MAX_STATUS_LIST];
    size_t nbusiness;
    int retry[MAX_STATUS_LIST];
    size_t nretry;

    /* The response. */
    char *resp;
    size_t resp_len, resp_cap;
    bool body_too_large;
    bool headers_too_large;
    json_t *resp_headers; /* lowercased name -> value */
    size_t resp_header_bytes;
    char reason[64];
    char errbuf[CURL_ERROR_SIZE];

    struct req_s *prev, *next;
} req_t;

struct http_s {
    const saga_host_t *host;
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    sock_t *socks;
    req_t *reqs;
    size_t open_handles; /* uv handles not yet closed: timer + sockets */
    bool closing;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* printf into a new heap string; NULL when out of memory. */
static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *strf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* RFC 9110 token characters (method and header names). */
static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* A header value must not smuggle a line break (header injection). */
static bool header_value_ok(const char *s) {
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}


/* ------------------------------------------------------------------------ */
/* libcurl callbacks: response headers and body                             */
/* ------------------------------------------------------------------------ */

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    req_t *r = ud;
    size_t len = size * nitems;
    r->resp_header_bytes += len;
    if (r->resp_header_bytes > MAX_HEADER_BYTES) {
        r->headers_too_large = true;
        return 0; /* aborts the transfer */
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A status line starts a new response (after a 1xx or a redirect
         * that is followed): forget the previous one's headers. */
        json_object_clear(r->resp_headers);
        r->reason[0] = '\0';
        const char *p = memchr(buf, ' ', len), *end = buf + len;
        if (p != NULL) {
            while (p < end && *p == ' ')
                p++;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            while (p < end && *p == ' ')
                p++;
            size_t n = (size_t)(end - p);
            char *reason = step_text_utf8(p, n, true);
            if (reason != NULL)
                snprintf(r->reason, sizeof(r->reason), "%s", reason);
            free(reason);
        }
        return size * nitems;
    }
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL || colon == buf || buf[0] == ' ' || buf[0] == '\t')
        return size * nitems; /* blank line, folded line, or junk */
    char *name = step_text_utf8(buf, (size_t)(colon - buf), true);
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    char *value = step_text_utf8(v, (size_t)(end - v), true);
    if (name == NULL || value == NULL) {
        free(name);
        free(value);
        return 0;
    }
    for (char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    /* A repeated header is joined with ", " (RFC 9110, 5.3). */
    json_t *old = json_object_get(r->resp_headers, name);
    json_t *nv;
    if (json_is_string(old)) {
        char *joined = strf("%s, %s", json_string_value(old), value);
        nv = joined ? json_string(joined) : NULL;
        free(joined);
    } else {
        nv = json_string(value);
    }
    int rc = nv ? json_object_set_new(r->resp_headers, name, nv) : -1;
    free(name);
    free(value);
    return rc == 0 ? size * nitems : 0;
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *ud) {
    req_t *r = ud;
    size_t len = size * nitems;
    if (len > r->max_body - r->resp_len) {
        r->body_too_large = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (r->resp_len + len + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap : 4096;
        while (cap < r->resp_len + len + 1)
            cap *= 2;
        char *p = realloc(r->resp, cap);
        if (p == NULL)
            return 0;
        r->resp = p;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, buf, len);
    r->resp_len += len;
    r->resp[r->resp_len] = '\0';
    return len;
}

/* ------------------------------------------------------------------------ */
/* Requests: build, finish, release                                         */
/* ------------------------------------------------------------------------ */

/* Frees a request and everything it owns. The easy handle must already be
 * out of the multi (or never added). */
static void req_free(req_t *r) {
    if (r == NULL)
        return;
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->shown_url);
    free(r->body);
    free(r->resp);
    json_decref(r->resp_headers);
    free(r);
}

/* Detaches a request from its call, the multi and the plugin's list, and
 * frees it. Returns the call, which the caller then completes. */
static saga_call_t *req_release(req_t *r) {
    http_t *h = r->h;
    saga_call_t *call = r->call;
    h->host->set_call_data(call, NULL);
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    curl_multi_remove_handle(h->multi, r->easy);
    req_free(r);
    return call;
}

/* True when the response's Content-Type says JSON: application/json or any
 * type with a +json suffix (application/problem+json...). */
static bool is_json_type(json_t *headers) {
    const char *ct = json_string_value(json_object_get(headers, "content-type"));
    if (ct == NULL)
        return false;
    char type[128];
    size_t n = 0;
    while (*ct == ' ')
        ct++;
    for (; *ct && *ct != ';' && *ct != ' ' && n + 1 < sizeof(type); ct++)
        type[n++] = (char)((*ct >= 'A' && *ct <= 'Z') ? *ct - 'A' + 'a' : *ct);
    type[n] = '\0';
    return strcmp(type, "application/json") == 0 ||
           (n > 5 && strcmp(type + n - 5, "+json") == 0);
}

/* The Retry-After of the response in milliseconds (delta-seconds or an
 * HTTP-date), or 0 when absent, unparsable or in the past. */
static uint64_t retry_after_ms(json_t *headers) {
    const char *v = json_string_value(json_object_get(headers, "retry-after"));
    if (v == NULL || *v == '\0')
        return 0;
    long long secs = 0;
    const char *p = v;
    if (*p >= '0' && *p <= '9') {
        for (; *p >= '0' && *p <= '9'; p++)
            if (secs <= MAX_RETRY_AFTER_S)
                secs = secs * 10 + (*p - '0');
        if (*p != '\0')
            return 0;
    } else {
        time_t t = curl_getdate(v, NULL);
        if (t == (time_t)-1)
            return 0;
        secs = (long long)(t - time(NULL));
    }
    if (secs <= 0)
        return 0;
    if (secs > MAX_RETRY_AFTER_S)
        secs = MAX_RETRY_AFTER_S;
    return (uint64_t)secs * 1000u;
}

/* "<status> <reason>" plus, when the response had a body, its first bytes. */
static char *status_message(req_t *r, long status, const char *note) {
    const char *reason = r->reason[0] ? r->reason : saga_http_reason(status);
    char *snippet = NULL;
    if (r->resp_len > 0) {
        size_t n = r->resp_len < SNIPPET_BYTES ? r->resp_len : SNIPPET_BYTES;
        snippet = step_text_utf8(r->resp, n, true);
        if (snippet == NULL)
            return NULL;
    }
    char *m = strf("%s %s: %ld%s%s%s%s%s%s", r->method, r->shown_url, status,
                   reason[0] ? " " : "", reason, snippet ? ": " : "",
                   snippet ? snippet : "",
                   snippet && r->resp_len > SNIPPET_BYTES ? "..." : "",
                   note ? note : "");
    free(snippet);
    return m;
}

/* The OK output {"status", "headers", "body"}; NULL with *why set when the
 * body claims JSON and is not. */
static char *ok_output(req_t *r, long status, char **why) {
    json_t *body;
    if (is_json_type(r->resp_headers)) {
        if (r->resp_len == 0) {
            body = json_null();
        } else {
            json_error_t jerr;
            body = json_loadb(r->resp, r->resp_len, JSON_DECODE_ANY, &jerr);
            if (body == NULL) {
                char *m = status_message(r, status, NULL);
                *why = strf("%s: the body says it is JSON but does not parse "
                            "(line %d, column %d: %s)",
                            m ? m : "", jerr.line, jerr.column, jerr.text);
                free(m);
                return NULL;
            }
        }
    } else {
        char *text = step_text_utf8(r->resp ? r->resp : "", r->resp_len, false);
        body = text ? json_string(text) : NULL;
        free(text);
    }
    json_t *out = json_pack("{s:i, s:O, s:o*}", "status", (json_int_t)status,
                            "headers", r->resp_headers, "body", body);
    char *s = out ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(out);
    return s;
}

/* Maps a finished transfer to an outcome and completes its call. */
static void req_finish(req_t *r, CURLcode res) {
    http_t *h = r->h;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    saga_outcome_t outcome = SAGA_OUTCOME_TECHNICAL;
    uint64_t retry_after = 0;
    char *data = NULL;
    bool too_large = r->body_too_large || res == CURLE_FILESIZE_EXCEEDED;

    if (res == CURLE_OK || (too_large && status >= 100 &&
                            (status < 200 || status > 299))) {
        /* A response arrived: its status decides (a too-large error page
         * still tells us its status). */
        const char *note = too_large ? " (body over max_body, not read)" : NULL;
        if (step_args_in_list(r->business, r->nbusiness, (int)status))
            outcome = SAGA_OUTCOME_BUSINESS;
        else if (step_args_in_list(r->retry, r->nretry, (int)status))
            outcome = SAGA_OUTCOME_TECHNICAL;
        else if (status >= 200 && status <= 299)
            outcome = SAGA_OUTCOME_OK;
        else if (status == 408 || status == 425 || status == 429 ||
                 status >= 500)
            outcome = SAGA_OUTCOME_TECHNICAL;
        else
            outcome = SAGA_OUTCOME_BUSINESS;
        if (outcome == SAGA_OUTCOME_OK) {
            char *why = NULL;
            data = ok_output(r, status, &why);
            if (data == NULL && why != NULL) {
                outcome = SAGA_OUTCOME_TECHNICAL;
                data = why;
            }
        } else {
            data = status_message(r, status, note);
            if (outcome == SAGA_OUTCOME_TECHNICAL)
                retry_after = retry_after_ms(r->resp_headers);
        }
    } else if (too_large) {
        outcome = SAGA_OUTCOME_BUSINESS;
        data = strf("%s %s: response body exceeds max_body (%" PRIu64
                    " bytes); raise `max_body` if this answer is expected",
                    r->method, r->shown_url, r->max_body);
    } else if (r->headers_too_large) {
        outcome = SAGA_OUTCOME_BUSINESS;
        data = strf("%s %s: response headers exceed %u bytes", r->method,
                    r->shown_url, MAX_HEADER_BYTES);
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        char d[32];
        step_args_format_duration(r->timeout_ms, d, sizeof(d));
        data = strf("%s %s: timed out after %s", r->method, r->shown_url, d);
    } else if (res == CURLE_COULDNT_CONNECT) {
        long oserr = 0;
        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
        if (oserr == ECONNREFUSED)
            data = strf("%s %s: connection refused", r->method, r->shown_url);
        else
            data = strf("%s %s: cannot connect: %s", r->method, r->shown_url,
                        r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
    } else if (res == CURLE_COULDNT_RESOLVE_HOST) {
        data = strf("%s %s: cannot resolve the host name (%s)", r->method,
                    r->shown_url,
                    r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
    } else {
        data = strf("%s %s: %s%s%s", r->method, r->shown_url,
                    curl_easy_strerror(res), r->errbuf[0] ? ": " : "",
                    r->errbuf);
    }

    saga_call_t *call = req_release(r);
    if (retry_after > 0 && outcome == SAGA_OUTCOME_TECHNICAL)
        h->host->set_retry_after(call, retry_after);
    step_call_complete(h->host, call, outcome, data, HANDLER);
    free(data);
}

/* Reads every finished transfer and completes its call. */
static void check_done(http_t *h) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        req_t *r = NULL;
        CURLcode res = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        req_finish(r, res);
    }
}

/* ------------------------------------------------------------------------ */
/* libcurl multi on libuv                                                   */
/* ------------------------------------------------------------------------ */

static void maybe_free(http_t *h) {
    if (h->closing && h->open_handles == 0) {
        curl_global_cleanup();
        free(h);
    }
}

static void on_handle_closed(uv_handle_t *handle) {
    http_t *h = handle->data;
    h->open_handles--;
    maybe_free(h);
}

static void on_sock_closed(uv_handle_t *handle) {
    sock_t *s = handle->data;
    http_t *h = s->h;
    free(s);
    h->open_handles--;
    maybe_free(h);
}

static void sock_close(sock_t *s) {
    http_t *h = s->h;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *poll, int status, int events) {
    sock_t *s = poll->data;
    http_t *h = s->h;
    int flags = 0, running = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* `s` may be closed by the socket callback during this call. */
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    check_done(h);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp) {
    (void)easy;
    http_t *h = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl forgets the socket right after this call. */
        if (s != NULL)
            sock_close(s);
        return 0;
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return -1;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->h = h;
        s->fd = fd;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        h->open_handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t) {
    http_t *h = t->data;
    int running = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

/* libcurl asks for one timer: -1 stops it, 0 means "as soon as possible"
 * (still from the loop, never from inside this callback). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    http_t *h = userp;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The handler                                                              */
/* ------------------------------------------------------------------------ */

static const char *const known_fields[] = {
    "method", "url", "headers", "body", "timeout", "business_status",
    "retry_status", "max_body", "follow_redirects", NULL};

/* Headers the plugin sets itself (or that would corrupt the framing). */
static const char *const reserved_headers[] = {
    "Idempotency-Key", "Saga-Id", "Saga-Step", "Saga-Phase", "Saga-Attempt",
    "Content-Length", "Transfer-Encoding", NULL};

static int add_header(req_t *r, const char *name, const char *value) {
    /* libcurl drops "Name:" with an empty value; "Name;" sends it empty. */
    char *line = value[0] ? strf("%s: %s", name, value) : strf("%s;", name);
    if (line == NULL)
        return -1;
    struct curl_slist *l = curl_slist_append(r->headers, line);
    free(line);
    if (l == NULL)
        return -1;
    r->headers = l;
    return 0;
}

/* Checks `url` and fills r->url and r->shown_url. */
static int parse_url(req_t *r, json_t *v, char *err, size_t errlen) {
    if (v == NULL) {
        snprintf(err, errlen, "%s: `url` is required", HANDLER);
        return -1;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: `url`: expected a string, got %s", HANDLER,
                 step_args_type_name(v));
        return -1;
    }
    const char *url = json_string_value(v);
    if (strlen(url) > MAX_URL_LEN) {
        snprintf(err, errlen, "%s: `url` is longer than %u bytes", HANDLER,
                 MAX_URL_LEN);
        return -1;
    }
    CURLU *u = curl_url();
    char *scheme = NULL, *password = NULL, *shown = NULL;
    int rc = -1;
    if (u == NULL) {
        snprintf(err, errlen, "%s: out of memory", HANDLER);
        return -1;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        snprintf(err, errlen, "%s: `url`: \"%.200s\" is not a valid URL (%s)",
                 HANDLER, url, curl_url_strerror(uc));
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (scheme == NULL ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "%s: `url`: only http:// and https:// URLs are "
                 "allowed, got \"%.200s\"", HANDLER, url);
        goto out;
    }
    /* Messages and logs must not carry a password written in the URL. */
    if (curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_get(u, CURLUPART_URL, &shown, 0);
    }
    r->url = strdup(url);
    r->shown_url = strdup(shown ? shown : url);
    if (r->url == NULL || r->shown_url == NULL) {
        snprintf(err, errlen, "%s: out of memory", HANDLER);
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(password);
    curl_free(shown);
    curl_url_cleanup(u);
    return rc;
}

/* `method`: an RFC 9110 token, upper-cased; GET when absent. */
static int parse_method(req_t *r, json_t *v, char *err, size_t errlen) {
    snprintf(r->method, sizeof(r->method), "GET");
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || !is_token(json_string_value(v), 32)) {
        snprintf(err, errlen, "%s: `method`: expected an HTTP method like "
                 "\"POST\", got %s", HANDLER,
                 json_is_string(v) ? "a string that is not a token"
                                   : step_args_type_name(v));
        return -1;
    }
    snprintf(r->method, sizeof(r->method), "%s", json_string_value(v));
    for (char *c = r->method; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    return 0;
}

/* `timeout` (the step's budget when absent) and `max_body`. */
static int parse_limits(req_t *r, const saga_call_info_t *info, json_t *with,
                        char *err, size_t errlen) {
    json_t *v;
    r->timeout_ms = info->timeout_ms;
    if ((v = json_object_get(with, "timeout")) != NULL &&
        step_args_duration(v, HANDLER, "timeout", &r->timeout_ms, err,
                           errlen) != 0)
        return -1;
    r->max_body = DEFAULT_MAX_BODY;
    if ((v = json_object_get(with, "max_body")) != NULL &&
        step_args_uint(v, HANDLER, "max_body", 1, MAX_MAX_BODY, &r->max_body,
                       err, errlen) != 0)
        return -1;
    return 0;
}

/* `business_status` and `retry_status`: lists of statuses, disjoint. */
static int parse_status_lists(req_t *r, json_t *with, char *err,
                              size_t errlen) {
    json_t *v;
    if ((v = json_object_get(with, "business_status")) != NULL &&
        step_args_int_list(v, HANDLER, "business_status", 100, 599,
                           r->business, MAX_STATUS_LIST, &r->nbusiness, err,
                           errlen) != 0)
        return -1;
    if ((v = json_object_get(with, "retry_status")) != NULL &&
        step_args_int_list(v, HANDLER, "retry_status", 100, 599, r->retry,
                           MAX_STATUS_LIST, &r->nretry, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < r->nretry; i++) {
        if (step_args_in_list(r->business, r->nbusiness, r->retry[i])) {
            snprintf(err, errlen, "%s: status %d is in both `business_status` "
                     "and `retry_status`", HANDLER, r->retry[i]);
            return -1;
        }
    }
    return 0;
}

/* `follow_redirects`: a boolean, false when absent. */
static int parse_follow(req_t *r, json_t *v, char *err, size_t errlen) {
    r->follow = false;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "%s: `follow_redirects`: expected true or "
                 "false, got %s", HANDLER, step_args_type_name(v));
        return -1;
    }
    r->follow = json_is_true(v);
    return 0;
}

/* `headers`: the author's headers, each a valid name that the plugin does
 * not set itself, with a scalar value without line breaks. Sets
 * *has_content_type when one of them is Content-Type. */
static int parse_headers(req_t *r, json_t *v, bool *has_content_type,
                         char *err, size_t errlen) {
    *has_content_type = false;
    if (v == NULL)
        return 0;
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s: `headers`: expected a mapping of header "
                 "names to strings, got %s", HANDLER, step_args_type_name(v));
        return -1;
    }
    const char *name;
    json_t *hv;
    json_object_foreach(v, name, hv) {
        if (!is_token(name, 256)) {
            snprintf(err, errlen, "%s: `headers`: \"%.100s\" is not a valid "
                     "header name", HANDLER, name);
            return -1;
        }
        for (size_t i = 0; reserved_headers[i] != NULL; i++) {
            if (strcasecmp(name, reserved_headers[i]) == 0) {
                snprintf(err, errlen, "%s: `headers.%s` cannot be set: "
                         "http.request sets it itself", HANDLER, name);
                return -1;
            }
        }
        char *text = step_args_scalar_text(hv, HANDLER, "headers", name, err,
                                           errlen);
        if (text == NULL)
            return -1;
        if (!header_value_ok(text)) {
            free(text);
            snprintf(err, errlen, "%s: `headers.%s`: a header value cannot "
                     "hold a line break", HANDLER, name);
            return -1;
        }
        int rc = add_header(r, name, text);
        free(text);
        if (rc != 0) {
            snprintf(err, errlen, "%s: out of memory", HANDLER);
            return -1;
        }
        if (strcasecmp(name, "Content-Type") == 0)
            *has_content_type = true;
    }
    return 0;
}

/* `body`: any JSON value, sent as compact JSON text (null: no body), with
 * Content-Type: application/json unless the author set a Content-Type. */
static int parse_body(req_t *r, json_t *v, bool has_content_type, char *err,
                      size_t errlen) {
    if (v == NULL || json_is_null(v))
        return 0;
    r->body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (r->body == NULL) {
        snprintf(err, errlen, "%s: `body` cannot be encoded", HANDLER);
        return -1;
    }
    if (!has_content_type &&
        add_header(r, "Content-Type", "application/json") != 0) {
        snprintf(err, errlen, "%s: out of memory", HANDLER);
        return -1;
    }
    return 0;
}

/* Fills `r` from the call's `with`, a mapping of known fields (as
 * step_call_with() returns it), field by field in the order of the docs.
 * On a bad value, returns -1 with the reason in `err`. */
static int req_parse(req_t *r, const saga_call_info_t *info, json_t *with,
                     char *err, size_t errlen) {
    bool has_content_type;
    if (parse_url(r, json_object_get(with, "url"), err, errlen) != 0 ||
        parse_method(r, json_object_get(with, "method"), err, errlen) != 0 ||
        parse_limits(r, info, with, err, errlen) != 0 ||
        parse_status_lists(r, with, err, errlen) != 0 ||
        parse_follow(r, json_object_get(with, "follow_redirects"), err,
                     errlen) != 0 ||
        parse_headers(r, json_object_get(with, "headers"), &has_content_type,
                      err, errlen) != 0 ||
        parse_body(r, json_object_get(with, "body"), has_content_type, err,
                   errlen) != 0)
        return -1;
    return 0;
}

/* Adds the headers that make the call idempotent and traceable (the
 * Idempotency-Key and the Saga-* headers of docs/steps.md), and turns off
 * the "Expect: 100-continue" round trip. -1 with the reason in `err` when
 * a value holds a line break or memory runs out. */
static int add_saga_headers(req_t *r, const saga_call_info_t *info, char *err,
                            size_t errlen) {
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%" PRIu32, info->attempt);
    const char *phase = saga_phase_name(info->phase);
    const char *std[][2] = {
        {"Idempotency-Key", info->idempotency_key ? info->idempotency_key : ""},
        {"Saga-Id", info->saga_id ? info->saga_id : ""},
        {"Saga-Step", info->step ? info->step : ""},
        {"Saga-Phase", phase},
        {"Saga-Attempt", attempt},
        /* No "Expect: 100-continue" round trip for larger bodies. */
        {"Expect", NULL},
    };
    for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++) {
        int rc;
        if (std[i][1] == NULL) {
            char line[64];
            snprintf(line, sizeof(line), "%s:", std[i][0]);
            struct curl_slist *l = curl_slist_append(r->headers, line);
            rc = l ? 0 : -1;
            if (l)
                r->headers = l;
        } else if (!header_value_ok(std[i][1])) {
            snprintf(err, errlen, "%s: the %s \"%.100s\" holds a line break",
                     HANDLER, std[i][0], std[i][1]);
            return -1;
        } else {
            rc = add_header(r, std[i][0], std[i][1]);
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s: out of memory", HANDLER);
            return -1;
        }
    }
    return 0;
}

/* Sets the easy handle's options from a parsed request: URL, protocols,
 * redirects, timeout, headers, limits, callbacks and the method's body
 * handling. */
static void req_setup_curl(req_t *r) {
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, r->follow ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Removing a transfer that is still resolving must not wait for the
     * resolver thread (it would block the loop). */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "saga-http/1.0");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "POST") == 0 || r->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(r->body ? strlen(r->body) : 0));
        if (strcmp(r->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

static void h_request(void *state, saga_call_t *call,
                      const saga_call_info_t *info) {
    http_t *h = state;
    char err[1024];
    if (info->struct_size < sizeof(saga_call_info_t)) {
        step_call_complete(h->host, call, SAGA_OUTCOME_TECHNICAL,
                           HANDLER ": the engine's call info is too old for "
                           "this plugin", HANDLER);
        return;
    }
    req_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->resp_headers = json_object()) == NULL ||
        (r->easy = curl_easy_init()) == NULL) {
        req_free(r);
        /* NULL: "<handler>: out of memory", a technical failure. */
        step_call_complete(h->host, call, SAGA_OUTCOME_TECHNICAL, NULL, HANDLER);
        return;
    }
    r->h = h;
    r->call = call;
    json_t *with = step_call_with(info->input, info->input_len, HANDLER,
                                  known_fields, err, sizeof(err));
    int rc = with != NULL ? req_parse(r, info, with, err, sizeof(err)) : -1;
    json_decref(with);
    if (rc == 0)
        rc = add_saga_headers(r, info, err, sizeof(err));
    if (rc != 0) {
        req_free(r);
        step_call_complete(h->host, call, SAGA_OUTCOME_BUSINESS, err, HANDLER);
        return;
    }
    req_setup_curl(r);
    CURLMcode mc = curl_multi_add_handle(h->multi, r->easy);
    if (mc != CURLM_OK) {
        snprintf(err, sizeof(err), "%s %s: cannot start: %s", r->method,
                 r->shown_url, curl_multi_strerror(mc));
        req_free(r);
        step_call_complete(h->host, call, SAGA_OUTCOME_TECHNICAL, err, HANDLER);
        return;
    }
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->host->set_call_data(call, r);
}

/* The engine no longer waits for this call: drop the transfer (libcurl
 * closes its connection, since the response was not read to the end) and
 * complete the call. */
static void h_cancel(void *state, saga_call_t *call) {
    http_t *h = state;
    req_t *r = h->host->call_data(call);
    if (r == NULL)
        return;
    char *msg = strf("%s %s: cancelled", r->method, r->shown_url);
    req_release(r);
    step_call_complete(h->host, call, SAGA_OUTCOME_TECHNICAL, msg, HANDLER);
    free(msg);
}

/* ------------------------------------------------------------------------ */
/* Plugin life cycle                                                        */
/* ------------------------------------------------------------------------ */

static int http_init(const saga_host_t *host, struct uv_loop_s *loop,
                     void **state) {
    if (host->abi_version != SAGA_PLUGIN_ABI_VERSION ||
        host->struct_size < sizeof(saga_host_t))
        return -EPROTO;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    http_t *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->multi = curl_multi_init()) == NULL) {
        free(h);
        curl_global_cleanup();
        return -ENOMEM;
    }
    h->host = host;
    h->loop = loop;

    /* A transfer cancelled while its host name is being resolved leaves
     * libcurl's resolver thread to finish on its own (CURLOPT_QUICK_EXIT).
     * Such a thread runs libcurl's code: keep libcurl mapped even after the
     * engine dlclose()s this plugin, its only user. */
    Dl_info dli;
    if (dladdr((void *)curl_easy_init, &dli) != 0 && dli.dli_fname != NULL)
        (void)dlopen(dli.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);

    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (!(vi->features & CURL_VERSION_ASYNCHDNS))
        host->log(SAGA_LOG_WARN, PLUGIN,
                  "libcurl %s resolves host names synchronously (no "
                  "AsynchDNS): a slow DNS lookup blocks the event loop; use "
                  "IP addresses in URLs", vi->version);

    long max_conn = DEFAULT_MAX_CONNECTIONS;
    const char *env = getenv("SAGA_HTTP_MAX_CONNECTIONS");
    if (env != NULL && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n > 0 && n <= 100000)
            max_conn = n;
        else
            host->log(SAGA_LOG_WARN, PLUGIN,
                      "ignoring SAGA_HTTP_MAX_CONNECTIONS=%s (expected 1 to "
                      "100000)", env);
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conn);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, max_conn);

    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    *state = h;
    return 0;
}

/* Shutdown: every call has completed (the ABI says so; any straggler is
 * completed here as a technical failure). Closes the cached connections,
 * then the poll handles and the timer; the state is freed by the last close
 * callback. */
static void http_close(void *state) {
    http_t *h = state;
    while (h->reqs != NULL) {
        req_t *r = h->reqs;
        h->host->log(SAGA_LOG_WARN, PLUGIN,
                     "closing with a request still in flight: %s %s",
                     r->method, r->shown_url);
        char *msg = strf("%s %s: the http plugin is shutting down", r->method,
                         r->shown_url);
        saga_call_t *call = req_release(r);
        step_call_complete(h->host, call, SAGA_OUTCOME_TECHNICAL, msg, HANDLER);
        free(msg);
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    h->closing = true;
    while (h->socks != NULL)
        sock_close(h->socks);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}

static const saga_handler_t http_handlers[] = {
    {"request", 0, h_request, h_cancel},
};

SAGA_PLUGIN_EXPORT const saga_plugin_t saga_plugin = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_plugin_t),
    .name = "http",
    .version = "1.0.0",
    .init = http_init,
    .close = http_close,
    .handlers = http_handlers,
    .handler_count = sizeof(http_handlers) / sizeof(http_handlers[0]),
};
