/*
 * sample_service.c -- `saga-sample-service`: the small loopback HTTP service
 * that the examples and the http plugin's tests talk to.
 *
 * It plays the services of the example sagas (order, inventory, payment;
 * flight, hotel, tickets), remembers what it was asked, answers a replayed
 * Idempotency-Key with the stored answer instead of applying the request
 * twice, and can be told to refuse, delay, fail with Retry-After or send a
 * huge body. Everything is in memory. Endpoints and knobs: docs/steps.md.
 *
 * Two services keep real state for TCC sagas (definitions/examples/
 * tcc-order.yaml): `account` (balances; POST /account/freeze, /deduct,
 * /unfreeze) and `stock` (POST /stock/hold, /commit, /release), each
 * reservation keyed by its order; GET /_tcc shows balances, frozen amounts,
 * stock held and every reservation.
 *
 *   saga-sample-service [--port N] [--refuse SERVICE[/ACTION]=STATUS]...
 *                       [--verbose]
 *
 * It listens on 127.0.0.1 only (port 0, the default, picks a free one) and
 * prints "listening on 127.0.0.1:PORT" on stdout once ready. SIGINT and
 * SIGTERM stop it cleanly.
 *
 * HTTP/1.1 subset: keep-alive, Content-Length bodies (no chunked requests),
 * Expect: 100-continue, one request at a time per connection (pipelined
 * requests wait their turn).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "http_reason.h"

#define MAX_HEAD (16u * 1024u)            /* request line + headers */
#define MAX_BODY (8u * 1024u * 1024u)     /* request body */
#define MAX_BYTES_KNOB (64u * 1024u * 1024u)
#define MAX_DELAY_MS (10u * 60u * 1000u)
#define MAX_CALLS 100000u                 /* oldest dropped beyond */
#define MAX_IDEM_KEYS 1000000u
#define MAX_REFUSE 32

static const char *const services[] = {"order", "inventory", "payment",
                                       "flight", "hotel", "tickets",
                                       "account", "stock", NULL};

/* What an account and an item start with when first named. */
#define TCC_BALANCE 1000
#define TCC_STOCK 100

typedef struct refuse_s {
    char service[64];
    char action[64]; /* "" = every action of the service */
    int status;
} refuse_t;

/* The service's memory. */
static struct {
    uv_loop_t *loop;
    uv_tcp_t server;
    uv_signal_t sigint, sigterm;
    uint64_t start_ms;
    json_t *calls;     /* array of recorded requests */
    json_t *idem;      /* Idempotency-Key -> stored answer */
    json_t *records;   /* id -> record */
    json_t *accounts;  /* TCC: account -> {balance, frozen} */
    json_t *items;     /* TCC: sku -> {available, held} */
    json_t *reserved;  /* TCC: "<service>:<order>" -> reservation */
    uint64_t seq;      /* request sequence number */
    uint64_t next_id;
    uint64_t conn_seq;
    size_t open_conns;
    refuse_t refuse[MAX_REFUSE];
    size_t nrefuse;
    bool verbose;
    bool stopping;
} S;

typedef struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t delay;
    uint64_t id;
    char *buf;
    size_t len, cap;
    bool busy;          /* a response is pending (delayed or writing) */
    bool close_after;
    bool closing;
    bool continue_sent; /* 100 Continue already sent for this request */
    int open_handles;
    char *pending;      /* the delayed response */
    size_t pending_len;
} conn_t;

typedef struct wreq_s {
    uv_write_t req;
    conn_t *c;
    char *data;
    bool close_after;
} wreq_t;

/* One parsed request. */
typedef struct request_s {
    char method[16];
    char *path;
    char *query_raw;
    json_t *query;   /* decoded key -> value */
    json_t *headers; /* lowercased name -> value */
    const char *body;
    size_t body_len;
    bool keep_alive;
} request_t;

/* A response being built. */
typedef struct response_s {
    int status;
    const char *content_type;
    char *body; /* owned */
    size_t body_len;
    char extra[512]; /* extra header lines, each ending in \r\n */
} response_t;

static void conn_process(conn_t *c);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void logv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logv(const char *fmt, ...) {
    if (!S.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sample-service: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}


static bool is_service(const char *s) {
    for (size_t i = 0; services[i]; i++)
        if (strcmp(services[i], s) == 0)
            return true;
    return false;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes (and '+' -> ' ') n bytes into a new string. */
static char *url_decode(const char *s, size_t n) {
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
            hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* A query string into an object of strings (invalid UTF-8 is dropped). */
static json_t *parse_query(const char *q) {
    json_t *obj = json_object();
    while (obj && q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        char *k = url_decode(q, eq ? (size_t)(eq - q) : n);
        char *v = eq ? url_decode(eq + 1, n - (size_t)(eq - q) - 1) : strdup("");
        if (k && v && *k)
            json_object_set_new(obj, k, json_string(v));
        free(k);
        free(v);
        q = amp ? amp + 1 : NULL;
    }
    return obj;
}

/* A query knob as a non-negative integer; -1 when absent or invalid. */
static long long knob(const request_t *rq, const char *name) {
    const char *v = json_string_value(json_object_get(rq->query, name));
    if (v == NULL || *v == '\0')
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end != '\0' || errno != 0 || n < 0)
        return -1;
    return n;
}

static const char *header(const request_t *rq, const char *name) {
    return json_string_value(json_object_get(rq->headers, name));
}

static void set_json(response_t *rs, int status, json_t *body) {
    rs->status = status;
    rs->content_type = "application/json";
    free(rs->body);
    rs->body = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    rs->body_len = rs->body ? strlen(rs->body) : 0;
    json_decref(body);
}

static void add_extra(response_t *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_extra(response_t *rs, const char *fmt, ...) {
    size_t off = strlen(rs->extra);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs->extra + off, sizeof(rs->extra) - off, fmt, ap);
    va_end(ap);
}

static json_t *error_body(int status, const char *msg) {
    return json_pack("{s:i, s:s}", "status", status, "error", msg);
}

/* ------------------------------------------------------------------------ */
/* The services                                                             */
/* ------------------------------------------------------------------------ */

static int refused(const char *service, const char *action) {
    for (size_t i = 0; i < S.nrefuse; i++)
        if (strcmp(S.refuse[i].service, service) == 0 &&
            (S.refuse[i].action[0] == '\0' ||
             strcmp(S.refuse[i].action, action) == 0))
            return S.refuse[i].status;
    return 0;
}

static json_t *parsed_body(const request_t *rq) {
    if (rq->body_len == 0)
        return json_null();
    json_error_t e;
    json_t *v = json_loadb(rq->body, rq->body_len, JSON_DECODE_ANY, &e);
    if (v != NULL)
        return v;
    v = json_stringn(rq->body, rq->body_len);
    return v ? v : json_string("(body is not UTF-8)");
}

/* Marks a record cancelled; returns its id or NULL when unknown. */
static const char *cancel_record(const char *id) {
    json_t *rec = id ? json_object_get(S.records, id) : NULL;
    if (rec == NULL)
        return NULL;
    json_object_set_new(rec, "state", json_string("cancelled"));
    json_object_set_new(rec, "cancelled_seq", json_integer((json_int_t)S.seq));
    return json_string_value(json_object_get(rec, "id"));
}

/* The record created by the same saga step (by Saga-Id and Saga-Step), for
 * a compensation that does not name the id. */
static const char *record_of_step(const request_t *rq, const char *service) {
    const char *saga = header(rq, "saga-id"), *step = header(rq, "saga-step");
    if (saga == NULL || step == NULL)
        return NULL;
    const char *id;
    json_t *rec;
    json_object_foreach(S.records, id, rec) {
        const char *rs = json_string_value(json_object_get(rec, "saga_id"));
        const char *rt = json_string_value(json_object_get(rec, "saga_step"));
        const char *sv = json_string_value(json_object_get(rec, "service"));
        if (rs && rt && sv && strcmp(rs, saga) == 0 && strcmp(rt, step) == 0 &&
            strcmp(sv, service) == 0)
            return id;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* TCC services with real state                                             */
/* ------------------------------------------------------------------------ */

/* An integer field of the JSON counter object `o`. */
static json_int_t count_of(json_t *o, const char *key) {
    return json_integer_value(json_object_get(o, key));
}

static void count_add(json_t *o, const char *key, json_int_t d) {
    json_object_set_new(o, key, json_integer(count_of(o, key) + d));
}

/* The account or item `name`, created with its starting amount. */
static json_t *holding(bool account, const char *name) {
    json_t *all = account ? S.accounts : S.items;
    json_t *h = json_object_get(all, name);
    if (h == NULL) {
        h = account ? json_pack("{s:i, s:i}", "balance", TCC_BALANCE, "frozen", 0)
                    : json_pack("{s:i, s:i}", "available", TCC_STOCK, "held", 0);
        json_object_set_new(all, name, h);
    }
    return h;
}

static void tcc_answer(response_t *rs, int status, json_t *resv, const char *note) {
    json_t *b = resv ? json_deep_copy(resv) : json_object();
    if (note != NULL)
        json_object_set_new(b, status < 300 ? "note" : "error", json_string(note));
    set_json(rs, status, b);
}

/* POST /account/{freeze,deduct,unfreeze} and /stock/{hold,commit,release}:
 * Try, Confirm and Cancel of one reservation per order. Each is idempotent
 * by the reservation's state as well as by Idempotency-Key: a Confirm of a
 * confirmed one or a Cancel of a cancelled one changes nothing; a Cancel
 * that comes before its Try leaves a mark that refuses the late Try; a
 * Cancel after a Confirm (or a Confirm after a Cancel) is refused (409). */
static void serve_tcc(const request_t *rq, const char *svc, const char *act,
                      response_t *rs) {
    bool account = strcmp(svc, "account") == 0;
    static const char *const acts[2][3] = {{"hold", "commit", "release"},
                                           {"freeze", "deduct", "unfreeze"}};
    static const char *const states[2][3] = {{"held", "committed", "released"},
                                             {"frozen", "deducted", "unfrozen"}};
    int phase = -1;
    for (int k = 0; k < 3; k++)
        if (strcmp(act, acts[account][k]) == 0)
            phase = k;
    if (strcmp(rq->method, "POST") != 0 || phase < 0) {
        set_json(rs, 404, error_body(404, "no such endpoint"));
        return;
    }
    const char *what = account ? "account" : "sku";
    const char *qty = account ? "amount" : "qty";
    const char *held = account ? "frozen" : "held";
    json_t *in = parsed_body(rq);
    const char *order = json_string_value(json_object_get(in, "order"));
    if (order == NULL || order[0] == '\0') {
        set_json(rs, 400, error_body(400, "body needs \"order\" (a string)"));
        json_decref(in);
        return;
    }
    char key[512];
    snprintf(key, sizeof(key), "%s:%s", svc, order);
    json_t *resv = json_object_get(S.reserved, key);
    const char *st = resv ? json_string_value(json_object_get(resv, "state")) : NULL;

    if (phase == 0) { /* Try */
        const char *name = json_string_value(json_object_get(in, what));
        json_t *n = json_object_get(in, qty);
        if (st != NULL && strcmp(st, states[account][2]) == 0) {
            tcc_answer(rs, 409, resv, "cancelled before it was tried: refused");
        } else if (st != NULL) {
            tcc_answer(rs, 200, resv, "tried already");
        } else if (name == NULL || !json_is_integer(n) || json_integer_value(n) <= 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "body needs \"%s\" (a string) and \"%s\" (> 0)", what,
                     qty);
            set_json(rs, 400, error_body(400, msg));
        } else {
            json_t *h = holding(account, name);
            json_int_t want = json_integer_value(n);
            json_int_t free_now = account ? count_of(h, "balance") - count_of(h, "frozen")
                                          : count_of(h, "available");
            if (free_now < want) {
                tcc_answer(rs, 409, NULL, account ? "insufficient funds" : "out of stock");
            } else {
                count_add(h, held, want);
                if (!account)
                    count_add(h, "available", -want);
                resv = json_pack("{s:s, s:s, s:s, s:s, s:I}", "service", svc, "order", order,
                                 "state", states[account][0], what, name, qty,
                                 (json_int_t)want);
                json_object_set_new(S.reserved, key, resv);
                tcc_answer(rs, 200, resv, NULL);
            }
        }
        json_decref(in);
        return;
    }
    if (phase == 1) { /* Confirm */
        if (st == NULL || strcmp(st, states[account][2]) == 0) {
            tcc_answer(rs, 409, resv, st ? "cancelled: cannot confirm" : "nothing tried");
        } else if (strcmp(st, states[account][1]) == 0) {
            tcc_answer(rs, 200, resv, "confirmed already");
        } else {
            json_t *h = holding(account, json_string_value(json_object_get(resv, what)));
            json_int_t n = count_of(resv, qty);
            count_add(h, held, -n);
            if (account)
                count_add(h, "balance", -n);
            json_object_set_new(resv, "state", json_string(states[account][1]));
            tcc_answer(rs, 200, resv, NULL);
        }
        json_decref(in);
        return;
    }
    /* Cancel */
    if (st == NULL) {
        /* The Try never arrived (or not yet): remember the cancel, so that
         * a Try arriving late is refused instead of hanging for ever. */
        resv = json_pack("{s:s, s:s, s:s, s:i}", "service", svc, "order", order, "state",
                         states[account][2], qty, 0);
        json_object_set_new(S.reserved, key, resv);
        tcc_answer(rs, 200, resv, "nothing was tried: cancel recorded");
    } else if (strcmp(st, states[account][1]) == 0) {
        tcc_answer(rs, 409, resv, "confirmed: cannot cancel");
    } else if (strcmp(st, states[account][2]) == 0) {
        tcc_answer(rs, 200, resv, "cancelled already");
    } else {
        json_t *h = holding(account, json_string_value(json_object_get(resv, what)));
        json_int_t n = count_of(resv, qty);
        count_add(h, held, -n);
        if (!account)
            count_add(h, "available", n);
        json_object_set_new(resv, "state", json_string(states[account][2]));
        tcc_answer(rs, 200, resv, NULL);
    }
    json_decref(in); /* `order` points into it */
}

/* POST /<svc>/<action>, POST /<svc>/<action>/cancel, GET and DELETE
 * /<svc>/<id>. `seg` holds the path's segments. */
static void serve_service(const request_t *rq, char **seg, size_t nseg,
                          response_t *rs) {
    const char *svc = seg[0];
    bool post = strcmp(rq->method, "POST") == 0;
    if (strcmp(svc, "account") == 0 || strcmp(svc, "stock") == 0) {
        int st = nseg == 2 ? refused(svc, seg[1]) : 0;
        if (st) {
            json_t *b = json_pack("{s:i, s:s, s:s, s:s}", "status", st, "error",
                                  "refused", "service", svc, "action", seg[1]);
            set_json(rs, st, b);
        } else if (nseg == 2) {
            serve_tcc(rq, svc, seg[1], rs);
        } else {
            set_json(rs, 404, error_body(404, "no such endpoint"));
        }
        return;
    }
    if (post && nseg == 2) {
        int st = refused(svc, seg[1]);
        if (st) {
            json_t *b = json_pack("{s:i, s:s, s:s, s:s}", "status", st, "error",
                                  "refused", "service", svc, "action", seg[1]);
            set_json(rs, st, b);
            return;
        }
        char id[96];
        snprintf(id, sizeof(id), "%s-%" PRIu64, svc, ++S.next_id);
        json_t *rec = json_pack(
            "{s:s, s:s, s:s, s:s, s:O?, s:O?, s:o, s:I}", "id", id, "service",
            svc, "action", seg[1], "state", "done", "saga_id",
            json_object_get(rq->headers, "saga-id"), "saga_step",
            json_object_get(rq->headers, "saga-step"), "input", parsed_body(rq),
            "seq", (json_int_t)S.seq);
        json_object_set(S.records, id, rec);
        set_json(rs, 201, rec);
        return;
    }
    if (post && nseg == 3 && strcmp(seg[2], "cancel") == 0) {
        json_t *in = parsed_body(rq);
        const char *id = json_string_value(json_object_get(in, "id"));
        if (id == NULL)
            id = record_of_step(rq, svc);
        const char *done = cancel_record(id);
        json_t *b = json_pack("{s:s, s:s, s:s?, s:s}", "service", svc, "action",
                              seg[1], "cancelled", done, "state",
                              done ? "cancelled" : "nothing to cancel");
        json_decref(in);
        set_json(rs, 200, b);
        return;
    }
    if (nseg == 2 && strcmp(rq->method, "DELETE") == 0) {
        const char *done = cancel_record(seg[1]);
        json_t *b = json_pack("{s:s, s:s?, s:s}", "service", svc, "cancelled",
                              done, "state",
                              done ? "cancelled" : "nothing to cancel");
        set_json(rs, 200, b);
        return;
    }
    if (nseg == 2 && strcmp(rq->method, "GET") == 0) {
        json_t *rec = json_object_get(S.records, seg[1]);
        if (rec == NULL)
            set_json(rs, 404, error_body(404, "no such record"));
        else
            set_json(rs, 200, json_incref(rec));
        return;
    }
    set_json(rs, nseg == 2 || nseg == 3 ? 405 : 404,
             error_body(nseg == 2 || nseg == 3 ? 405 : 404,
                        "no such endpoint"));
}

/* Status knobs that answer without applying anything: ?status=, ?fail=,
 * ?bytes=, ?format=. Returns true when one applied. */
static bool serve_knobs(const request_t *rq, response_t *rs) {
    long long st = knob(rq, "status");
    long long fail = knob(rq, "fail");
    long long bytes = knob(rq, "bytes");
    const char *format = json_string_value(json_object_get(rq->query, "format"));
    if (st < 0 && fail >= 100 && fail <= 599)
        st = fail;
    if (st >= 100 && st <= 599) {
        if (st == 204 || st == 304) {
            rs->status = (int)st;
            rs->content_type = NULL;
        } else {
            set_json(rs, (int)st, json_pack("{s:i, s:s}", "status", (int)st,
                                            "path", rq->path));
        }
        const char *ra = json_string_value(json_object_get(rq->query,
                                                           "retry_after"));
        if (ra != NULL && strncmp(ra, "date:", 5) == 0) {
            time_t t = time(NULL) + atol(ra + 5);
            struct tm tm;
            char date[64];
            gmtime_r(&t, &tm);
            strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
            add_extra(rs, "Retry-After: %s\r\n", date);
        } else if (ra != NULL && *ra) {
            add_extra(rs, "Retry-After: %s\r\n", ra);
        }
        if (st >= 300 && st <= 399)
            add_extra(rs, "Location: /_health\r\n");
        return true;
    }
    if (bytes >= 0) {
        size_t n = (size_t)(bytes > MAX_BYTES_KNOB ? MAX_BYTES_KNOB : bytes);
        rs->status = 200;
        rs->content_type = "application/json";
        free(rs->body);
        rs->body = malloc(n + 16);
        if (rs->body == NULL) {
            set_json(rs, 500, error_body(500, "out of memory"));
            return true;
        }
        /* {"pad":"xxx..."} padded to exactly n bytes when n >= 10. */
        if (n >= 10) {
            memcpy(rs->body, "{\"pad\":\"", 8);
            memset(rs->body + 8, 'x', n - 10);
            memcpy(rs->body + n - 2, "\"}", 2);
            rs->body_len = n;
        } else {
            memcpy(rs->body, "{}", 2);
            rs->body_len = 2;
        }
        return true;
    }
    if (format != NULL && strcmp(format, "text") == 0) {
        rs->status = 200;
        rs->content_type = "text/plain; charset=utf-8";
        free(rs->body);
        rs->body = strdup("plain text, not JSON\n");
        rs->body_len = rs->body ? strlen(rs->body) : 0;
        return true;
    }
    if (format != NULL && strcmp(format, "badjson") == 0) {
        rs->status = 200;
        rs->content_type = "application/json";
        free(rs->body);
        rs->body = strdup("{\"truncated\": ");
        rs->body_len = rs->body ? strlen(rs->body) : 0;
        return true;
    }
    if (format != NULL && strcmp(format, "problem") == 0) {
        set_json(rs, 200, json_pack("{s:s}", "type", "about:blank"));
        rs->content_type = "application/problem+json";
        return true;
    }
    return false;
}

/* The static content type equal to `ct` (the ones this service sends). */
static const char *known_type(const char *ct) {
    static const char *const types[] = {"application/json",
                                        "application/problem+json",
                                        "text/plain; charset=utf-8", NULL};
    for (size_t i = 0; ct && types[i]; i++)
        if (strcmp(types[i], ct) == 0)
            return types[i];
    return NULL;
}

/* Records the request in /_calls and returns the entry (borrowed). */
static json_t *record_call(conn_t *c, const request_t *rq) {
    if (json_array_size(S.calls) >= MAX_CALLS)
        json_array_remove(S.calls, 0);
    json_t *e = json_pack(
        "{s:I, s:I, s:I, s:s, s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O, "
        "s:o}",
        "seq", (json_int_t)S.seq, "time_ms",
        (json_int_t)(uv_now(S.loop) - S.start_ms), "conn", (json_int_t)c->id,
        "method", rq->method, "path", rq->path, "query",
        rq->query_raw ? rq->query_raw : "", "idempotency_key",
        json_object_get(rq->headers, "idempotency-key"), "saga_id",
        json_object_get(rq->headers, "saga-id"), "saga_step",
        json_object_get(rq->headers, "saga-step"), "saga_phase",
        json_object_get(rq->headers, "saga-phase"), "saga_attempt",
        json_object_get(rq->headers, "saga-attempt"), "headers", rq->headers,
        "body", parsed_body(rq));
    if (e == NULL)
        return NULL;
    json_array_append_new(S.calls, e);
    return e;
}

/* Decides the response to one request. */
static void serve(conn_t *c, const request_t *rq, response_t *rs) {
    S.seq++;
    /* Admin endpoints: not recorded, not deduplicated. */
    if (strncmp(rq->path, "/_", 2) == 0) {
        bool get = strcmp(rq->method, "GET") == 0;
        if (strcmp(rq->path, "/_health") == 0 && get) {
            set_json(rs, 200, json_pack("{s:b, s:I, s:I}", "ok", 1,
                                        "connections", (json_int_t)S.open_conns,
                                        "calls",
                                        (json_int_t)json_array_size(S.calls)));
        } else if (strcmp(rq->path, "/_calls") == 0 && get) {
            set_json(rs, 200, json_incref(S.calls));
        } else if (strcmp(rq->path, "/_calls") == 0 &&
                   strcmp(rq->method, "DELETE") == 0) {
            json_t *b = json_pack("{s:I}", "cleared",
                                  (json_int_t)json_array_size(S.calls));
            json_array_clear(S.calls);
            set_json(rs, 200, b);
        } else if (strcmp(rq->path, "/_state") == 0 && get) {
            set_json(rs, 200, json_pack("{s:O, s:I}", "records", S.records,
                                        "idempotency_keys",
                                        (json_int_t)json_object_size(S.idem)));
        } else if (strcmp(rq->path, "/_tcc") == 0 && get) {
            set_json(rs, 200, json_pack("{s:O, s:O, s:O}", "accounts", S.accounts,
                                        "stock", S.items, "reservations", S.reserved));
        } else if (strcmp(rq->path, "/_reset") == 0 &&
                   strcmp(rq->method, "POST") == 0) {
            json_array_clear(S.calls);
            json_object_clear(S.idem);
            json_object_clear(S.records);
            json_object_clear(S.accounts);
            json_object_clear(S.items);
            json_object_clear(S.reserved);
            set_json(rs, 200, json_pack("{s:b}", "reset", 1));
        } else {
            set_json(rs, 404, error_body(404, "no such admin endpoint"));
        }
        return;
    }

    json_t *call = record_call(c, rq);
    const char *key = header(rq, "idempotency-key");
    bool dedup = key != NULL && strcmp(rq->method, "GET") != 0 &&
                 strcmp(rq->method, "HEAD") != 0;
    json_t *stored = dedup ? json_object_get(S.idem, key) : NULL;
    bool replayed = false;
    if (stored != NULL) {
        const char *m = json_string_value(json_object_get(stored, "method"));
        const char *p = json_string_value(json_object_get(stored, "path"));
        if (strcmp(m, rq->method) != 0 || strcmp(p, rq->path) != 0) {
            set_json(rs, 422, error_body(422, "Idempotency-Key reused for a "
                                              "different request"));
        } else {
            rs->status = (int)json_integer_value(json_object_get(stored, "status"));
            rs->content_type = known_type(
                json_string_value(json_object_get(stored, "type")));
            const char *b = json_string_value(json_object_get(stored, "body"));
            free(rs->body);
            rs->body = b ? strdup(b) : NULL;
            rs->body_len = rs->body ? strlen(rs->body) : 0;
            add_extra(rs, "Idempotent-Replayed: true\r\n");
            replayed = true;
        }
    } else if (!serve_knobs(rq, rs)) {
        char *path = strdup(rq->path + 1), *seg[8], *save = NULL;
        size_t nseg = 0;
        for (char *t = path ? strtok_r(path, "/", &save) : NULL;
             t != NULL && nseg < 8; t = strtok_r(NULL, "/", &save))
            seg[nseg++] = t;
        if (nseg == 0 || !is_service(seg[0]))
            set_json(rs, 404, error_body(404, "no such service"));
        else
            serve_service(rq, seg, nseg, rs);
        free(path);
        /* Store final answers; transient ones (408, 425, 429, 5xx) are not,
         * so that a retry can succeed. */
        bool transient = rs->status == 408 || rs->status == 425 ||
                         rs->status == 429 || rs->status >= 500;
        if (dedup && !transient) {
            if (json_object_size(S.idem) >= MAX_IDEM_KEYS) {
                set_json(rs, 507, error_body(507, "idempotency store full"));
            } else {
                json_t *st = json_pack(
                    "{s:s, s:s, s:i, s:s?, s:s?}", "method", rq->method, "path",
                    rq->path, "status", rs->status, "type", rs->content_type,
                    "body", rs->body);
                if (st != NULL)
                    json_object_set_new(S.idem, key, st);
            }
        }
    }
    if (call != NULL) {
        json_object_set_new(call, "status", json_integer(rs->status));
        json_object_set_new(call, "replayed", json_boolean(replayed));
    }
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->buf);
    free(c->pending);
    free(c);
    S.open_conns--;
}

static void conn_close(conn_t *c) {
    if (c->closing)
        return;
    c->closing = true;
    logv("conn %" PRIu64 " closed", c->id);
    uv_timer_stop(&c->delay);
    uv_close((uv_handle_t *)&c->delay, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *w, int status) {
    wreq_t *wr = (wreq_t *)w;
    conn_t *c = wr->c;
    bool close_after = wr->close_after;
    free(wr->data);
    free(wr);
    if (c->closing)
        return;
    if (status != 0 || close_after) {
        conn_close(c);
        return;
    }
    c->busy = false;
    conn_process(c); /* a pipelined request may be waiting */
}

static void conn_send(conn_t *c, char *data, size_t len, bool close_after) {
    wreq_t *wr = calloc(1, sizeof(*wr));
    if (wr == NULL) {
        free(data);
        conn_close(c);
        return;
    }
    wr->c = c;
    wr->data = data;
    wr->close_after = close_after;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(data);
        free(wr);
        conn_close(c);
    }
}

static void on_delay(uv_timer_t *t) {
    conn_t *c = t->data;
    char *data = c->pending;
    c->pending = NULL;
    conn_send(c, data, c->pending_len, c->close_after);
}

/* Serializes a response into one buffer. */
static char *render(const response_t *rs, bool keep_alive, size_t *len) {
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s%s"
                     "%s"
                     "Connection: %s\r\n\r\n",
                     rs->status, saga_http_reason(rs->status), rs->body_len,
                     rs->content_type ? "Content-Type: " : "",
                     rs->content_type ? rs->content_type : "",
                     rs->content_type ? "\r\n" : "", rs->extra,
                     keep_alive ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= sizeof(head))
        return NULL;
    char *out = malloc((size_t)n + rs->body_len);
    if (out == NULL)
        return NULL;
    memcpy(out, head, (size_t)n);
    if (rs->body_len)
        memcpy(out + n, rs->body, rs->body_len);
    *len = (size_t)n + rs->body_len;
    return out;
}

static void send_error(conn_t *c, int status, const char *msg) {
    response_t rs;
    memset(&rs, 0, sizeof(rs));
    set_json(&rs, status, error_body(status, msg));
    size_t len;
    char *data = render(&rs, false, &len);
    free(rs.body);
    c->busy = true;
    c->close_after = true;
    if (data == NULL)
        conn_close(c);
    else
        conn_send(c, data, len, true);
}

/* Parses the head (head_len bytes, NUL-terminated, ending with the CRLF of
 * the last header line); writes NULs into it. Returns 0, or an HTTP status for
 * a malformed request. */
static int parse_head(char *head, size_t head_len, request_t *rq,
                      size_t *content_length) {
    char *line = head, *end = head + head_len;
    char *eol = strstr(line, "\r\n");
    *eol = '\0';
    char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || (size_t)(sp1 - line) >= sizeof(rq->method))
        return 400;
    memcpy(rq->method, line, (size_t)(sp1 - line));
    rq->method[sp1 - line] = '\0';
    *sp2 = '\0';
    char *target = sp1 + 1, *version = sp2 + 1;
    if (target[0] != '/' || strncmp(version, "HTTP/1.", 7) != 0)
        return 400;
    rq->keep_alive = strcmp(version, "HTTP/1.1") == 0;
    char *q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';
    rq->path = url_decode(target, strlen(target));
    rq->query_raw = q ? strdup(q) : NULL;
    rq->query = parse_query(q);
    rq->headers = json_object();
    if (!rq->path || !rq->query || !rq->headers)
        return 500;
    *content_length = 0;
    for (line = eol + 2; line < end;) {
        eol = strstr(line, "\r\n");
        if (eol == NULL || eol == line)
            break;
        *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            return 400;
        *colon = '\0';
        for (char *p = line; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        json_t *old = json_object_get(rq->headers, line);
        json_t *nv;
        if (json_is_string(old)) {
            size_t n = json_string_length(old) + vl + 3;
            char *j = malloc(n);
            if (j == NULL)
                return 500;
            snprintf(j, n, "%s, %s", json_string_value(old), v);
            nv = json_string(j);
            free(j);
        } else {
            nv = json_string(v);
        }
        if (nv == NULL)
            return 400; /* not UTF-8 */
        json_object_set_new(rq->headers, line, nv);
        line = eol + 2;
    }
    if (header(rq, "transfer-encoding") != NULL)
        return 501;
    const char *cl = header(rq, "content-length");
    if (cl != NULL) {
        char *e;
        errno = 0;
        unsigned long long n = strtoull(cl, &e, 10);
        if (*cl < '0' || *cl > '9' || *e != '\0' || errno != 0)
            return 400;
        if (n > MAX_BODY)
            return 413;
        *content_length = (size_t)n;
    }
    const char *conn = header(rq, "connection");
    if (conn != NULL && strcasecmp(conn, "close") == 0)
        rq->keep_alive = false;
    if (conn != NULL && strcasecmp(conn, "keep-alive") == 0)
        rq->keep_alive = true;
    return 0;
}

static void request_free(request_t *rq) {
    free(rq->path);
    free(rq->query_raw);
    json_decref(rq->query);
    json_decref(rq->headers);
}

/* Handles the next complete request in the buffer, if any and if no
 * response is pending. */
static void conn_process(conn_t *c) {
    if (c->busy || c->closing || c->len == 0)
        return;
    char *hend = NULL;
    for (size_t i = 0; i + 3 < c->len; i++) {
        if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
            hend = c->buf + i;
            break;
        }
    }
    if (hend == NULL) {
        if (c->len > MAX_HEAD)
            send_error(c, 431, "request head too large");
        return;
    }
    size_t head_len = (size_t)(hend - c->buf) + 2; /* keeps the last CRLF */
    if (head_len > MAX_HEAD) {
        send_error(c, 431, "request head too large");
        return;
    }
    /* Parse a copy of the head: parsing writes NULs into it. */
    char *copy = malloc(head_len + 1);
    if (copy == NULL) {
        conn_close(c);
        return;
    }
    memcpy(copy, c->buf, head_len);
    copy[head_len] = '\0';
    request_t rq;
    memset(&rq, 0, sizeof(rq));
    size_t clen = 0;
    int bad = parse_head(copy, head_len, &rq, &clen);
    free(copy);
    if (bad) {
        request_free(&rq);
        send_error(c, bad, "malformed or unsupported request");
        return;
    }
    size_t total = head_len + 2 + clen;
    if (c->len < total) {
        const char *expect = header(&rq, "expect");
        if (expect && strcasecmp(expect, "100-continue") == 0 &&
            !c->continue_sent) {
            c->continue_sent = true;
            char *cont = strdup("HTTP/1.1 100 Continue\r\n\r\n");
            if (cont) {
                wreq_t *wr = calloc(1, sizeof(*wr));
                if (wr) {
                    wr->c = c;
                    wr->data = cont;
                    uv_buf_t b = uv_buf_init(cont, (unsigned)strlen(cont));
                    c->busy = true; /* on_written clears it */
                    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1,
                                 on_written) != 0) {
                        free(cont);
                        free(wr);
                        conn_close(c);
                    }
                } else {
                    free(cont);
                }
            }
        }
        request_free(&rq);
        return;
    }
    c->continue_sent = false;
    rq.body = c->buf + head_len + 2;
    rq.body_len = clen;

    response_t rs;
    memset(&rs, 0, sizeof(rs));
    serve(c, &rq, &rs);
    logv("conn %" PRIu64 ": %s %s%s%s -> %d", c->id, rq.method, rq.path,
         rq.query_raw ? "?" : "", rq.query_raw ? rq.query_raw : "", rs.status);
    long long delay = strncmp(rq.path, "/_", 2) == 0 ? -1 : knob(&rq, "delay_ms");
    bool keep = rq.keep_alive && knob(&rq, "close") != 1;
    size_t len = 0;
    char *data = render(&rs, keep, &len);
    free(rs.body);
    request_free(&rq);

    /* Consume the request from the buffer. */
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    if (data == NULL) {
        conn_close(c);
        return;
    }
    c->busy = true;
    c->close_after = !keep;
    if (delay > 0) {
        c->pending = data;
        c->pending_len = len;
        uv_timer_start(&c->delay, on_delay,
                       (uint64_t)(delay > MAX_DELAY_MS ? MAX_DELAY_MS : delay), 0);
    } else {
        conn_send(c, data, len, !keep);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *c = h->data;
    if (c->cap - c->len < 16384) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        char *p = realloc(c->buf, cap + 1);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = p;
        c->cap = cap;
    }
    (void)suggested;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    conn_t *c = s->data;
    if (n < 0) { /* EOF or error: the peer is gone */
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (c->len > MAX_HEAD + MAX_BODY + 4096) {
        send_error(c, 413, "request too large");
        uv_read_stop(s);
        return;
    }
    conn_process(c);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(S.loop, &c->tcp);
    uv_timer_init(S.loop, &c->delay);
    c->tcp.data = c->delay.data = c;
    c->open_handles = 2;
    c->id = ++S.conn_seq;
    S.open_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    logv("conn %" PRIu64 " open", c->id);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&S.server) {
        conn_close(h->data);
        return;
    }
    if (h->type == UV_TIMER && h->data != NULL &&
        h != (uv_handle_t *)&S.sigint && h != (uv_handle_t *)&S.sigterm)
        return; /* a connection's timer: closed with its connection */
    uv_close(h, NULL);
}

static void on_signal(uv_signal_t *sig, int signum) {
    (void)sig;
    logv("signal %d: stopping", signum);
    S.stopping = true;
    uv_walk(S.loop, close_walk, NULL);
}

static void usage(FILE *f) {
    fprintf(f, "usage: saga-sample-service [--port N] "
               "[--refuse SERVICE[/ACTION]=STATUS]... [--verbose]\n"
               "services: order inventory payment flight hotel tickets\n");
}

int main(int argc, char **argv) {
    long port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "saga-sample-service: bad --port '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--refuse") == 0 && i + 1 < argc) {
            const char *spec = argv[++i], *eq = strchr(spec, '=');
            refuse_t *r = &S.refuse[S.nrefuse];
            if (S.nrefuse >= MAX_REFUSE || eq == NULL) {
                fprintf(stderr, "saga-sample-service: bad --refuse '%s' "
                        "(write SERVICE[/ACTION]=STATUS)\n", spec);
                return 2;
            }
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(eq - spec), spec);
            char *slash = strchr(name, '/');
            if (slash)
                *slash = '\0';
            snprintf(r->service, sizeof(r->service), "%s", name);
            snprintf(r->action, sizeof(r->action), "%s", slash ? slash + 1 : "");
            r->status = atoi(eq + 1);
            if (!is_service(r->service) || r->status < 100 || r->status > 599) {
                fprintf(stderr, "saga-sample-service: bad --refuse '%s' "
                        "(unknown service or status)\n", spec);
                return 2;
            }
            S.nrefuse++;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            S.verbose = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    S.loop = uv_default_loop();
    S.start_ms = uv_now(S.loop);
    S.calls = json_array();
    S.idem = json_object();
    S.records = json_object();
    S.accounts = json_object();
    S.items = json_object();
    S.reserved = json_object();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", (int)port, &addr);
    uv_tcp_init(S.loop, &S.server);
    int rc = uv_tcp_bind(&S.server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&S.server, 1024, on_connection);
    if (rc != 0) {
        fprintf(stderr, "saga-sample-service: cannot listen on 127.0.0.1:%ld: "
                "%s\n", port, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&S.server, (struct sockaddr *)&bound, &blen);
    int real_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_signal_init(S.loop, &S.sigint);
    uv_signal_init(S.loop, &S.sigterm);
    uv_signal_start(&S.sigint, on_signal, SIGINT);
    uv_signal_start(&S.sigterm, on_signal, SIGTERM);
    printf("listening on 127.0.0.1:%d\n", real_port);
    fflush(stdout);

    uv_run(S.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(S.loop);
    json_decref(S.calls);
    json_decref(S.idem);
    json_decref(S.records);
    json_decref(S.accounts);
    json_decref(S.items);
    json_decref(S.reserved);
    return rc == 0 ? 0 : 1;
}
