/*
 * pg_conn.c -- one asynchronous PostgreSQL connection on a libuv loop (see
 * pg_conn.h).
 *
 * States: IDLE (not started), CONNECTING (PQconnectPoll steps, under the
 * connect timeout), READY (queries flow), WAITING (the backoff before the
 * next attempt), CLOSED.
 *
 * The socket: libpq may replace its socket between two PQconnectPoll
 * steps (another host, an SSL retry), and libuv must never watch a
 * descriptor that was closed under it. So the poll handle is stopped
 * before every PQconnectPoll call (which takes the descriptor out of
 * epoll while it is still open), and afterwards a socket with another
 * number gets a new handle (the old one is closed first). Once connected
 * the socket does not change. A connection is torn down in the same
 * order: the handle is closed, then PQfinish closes the socket.
 */
#include "postgres/pg_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/errors.h"
#include "util/log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_QUERY_TIMEOUT_MS 30000
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 5000
#define MAX_ADDRS_PER_HOST 16 /* of one name's addresses, the first are tried */

typedef enum { ST_IDLE, ST_CONNECTING, ST_READY, ST_WAITING, ST_CLOSED } state_t;

typedef struct query_s {
    struct query_s *next;
    char *sql;
    int nparams;
    char **params;
    saga_pg_result_cb cb;
    void *data;
} query_t;

struct saga_pg_s {
    uv_loop_t *loop;
    char *conninfo;
    char *appname;
    char display[256];
    saga_pg_options_t opt;
    saga_pg_event_cb on_event;
    saga_pg_notify_cb on_notify;
    void *data;

    state_t state;
    PGconn *conn;
    uv_poll_t *poll;     /* watches poll_fd; NULL when none */
    int poll_fd;
    uv_timer_t timer;    /* connect timeout, reconnect delay */
    uv_timer_t qtimer;   /* the query in flight's timeout */
    uv_timer_t kick;     /* sends a query queued by saga_pg_query() from the
                            loop, so that a failure to send never answers
                            it inside that call */
    uint64_t backoff_ms;

    query_t *head, *tail; /* the queue; head is in flight when `inflight` */
    bool inflight;
    PGresult *last;       /* the in-flight query's result so far */

    /* Host names, resolved with uv_getaddrinfo before each attempt (libpq
     * would resolve them with a blocking getaddrinfo inside
     * PQconnectPoll) and handed to libpq as `hostaddr`. A name with
     * several addresses (localhost: ::1 and 127.0.0.1) becomes as many
     * entries of libpq's host list, so that libpq tries each in turn, as
     * it does with the names it resolves itself. */
    size_t nhosts;        /* entries of the conninfo's host list; 0: none to resolve */
    char **hosts;         /* each host, or NULL when it needs no lookup
                             (a socket directory, an IP address) */
    char **entries;       /* each entry of the host list as written */
    char **ports;         /* each entry's port when the port list has one
                             per host; NULL when one port (or none) serves all */
    char **addrs;         /* this attempt's addresses of each host, "a,b" */
    size_t *naddrs;       /* how many addresses addrs[i] holds */
    struct resolve_s **lookups; /* the lookups in flight, by host */
    size_t pending;       /* lookups of this attempt not answered yet */
    unsigned attempt;     /* counts attempts: a late answer is ignored */
    char resolve_err[256];

    int handles;          /* open libuv handles and lookups in flight */
    bool closing;
    void (*closed)(void *);
    void *closed_data;
};

static void connect_attempt(saga_pg_t *pg);
static void send_next(saga_pg_t *pg);
static void cancel_lookups(saga_pg_t *pg);

static void on_reconnect_timer(uv_timer_t *t) { connect_attempt(t->data); }

static void on_kick(uv_timer_t *t) { send_next(t->data); }

/* libpq's messages end with a newline and some span lines ("server closed
 * the connection unexpectedly\n\tThis probably means..."): one line for
 * log lines and callers' messages. */
static void one_line(char *msg, size_t size, const char *why, const char *dflt) {
    snprintf(msg, size, "%s", why != NULL && why[0] ? why : dflt);
    size_t o = 0;
    for (size_t i = 0; msg[i] != '\0'; i++) {
        char c = msg[i] == '\n' || msg[i] == '\t' || msg[i] == '\r' ? ' ' : msg[i];
        if (c == ' ' && (o == 0 || msg[o - 1] == ' '))
            continue;
        msg[o++] = c;
    }
    while (o > 0 && msg[o - 1] == ' ')
        o--;
    msg[o] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Handles                                                                 */
/* ---------------------------------------------------------------------- */

static void hosts_free(saga_pg_t *pg) {
    for (size_t i = 0; i < pg->nhosts; i++) {
        free(pg->hosts[i]);
        free(pg->entries[i]);
        free(pg->addrs[i]);
        if (pg->ports != NULL)
            free(pg->ports[i]);
    }
    free(pg->hosts);
    free(pg->entries);
    free(pg->ports);
    free(pg->addrs);
    free(pg->naddrs);
    free(pg->lookups);
}

static void maybe_free(saga_pg_t *pg) {
    if (!pg->closing || pg->handles > 0)
        return;
    void (*closed)(void *) = pg->closed;
    void *data = pg->closed_data;
    hosts_free(pg);
    free(pg->conninfo);
    free(pg->appname);
    free(pg);
    if (closed != NULL)
        closed(data);
}

static void on_handle_closed(uv_handle_t *h) {
    saga_pg_t *pg = h->data;
    if (h->type == UV_POLL)
        free(h);
    pg->handles--;
    maybe_free(pg);
}

static void poll_drop(saga_pg_t *pg) {
    if (pg->poll == NULL)
        return;
    uv_close((uv_handle_t *)pg->poll, on_handle_closed);
    pg->poll = NULL;
    pg->poll_fd = -1;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches libpq's current socket for `events`. Returns 0 or a negative
 * libuv code. */
static int watch(saga_pg_t *pg, int events) {
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return UV_EBADF;
    if (pg->poll != NULL && pg->poll_fd != fd)
        poll_drop(pg);
    if (pg->poll == NULL) {
        uv_poll_t *p = malloc(sizeof(*p));
        if (p == NULL)
            return UV_ENOMEM;
        int rc = uv_poll_init(pg->loop, p, fd);
        if (rc != 0) {
            free(p);
            return rc;
        }
        p->data = pg;
        pg->handles++;
        pg->poll = p;
        pg->poll_fd = fd;
    }
    return uv_poll_start(pg->poll, events, on_poll);
}

/* Closes the connection (the handle first, then the socket). */
static void teardown(saga_pg_t *pg) {
    poll_drop(pg);
    if (pg->last != NULL) {
        PQclear(pg->last);
        pg->last = NULL;
    }
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    uv_timer_stop(&pg->qtimer);
}

/* ---------------------------------------------------------------------- */
/* Queries                                                                 */
/* ---------------------------------------------------------------------- */

static void query_free(query_t *q) {
    if (q == NULL)
        return;
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

static query_t *pop(saga_pg_t *pg) {
    query_t *q = pg->head;
    if (q != NULL) {
        pg->head = q->next;
        if (pg->head == NULL)
            pg->tail = NULL;
    }
    pg->inflight = false;
    return q;
}

/* Answers every queued query with `status` (the queue is emptied first:
 * a callback may queue again, which is refused in the states this runs
 * in). */
static void fail_all(saga_pg_t *pg, int status, const char *why) {
    query_t *q = pg->head;
    pg->head = pg->tail = NULL;
    pg->inflight = false;
    while (q != NULL) {
        query_t *next = q->next;
        q->cb(pg, status, NULL, why, q->data);
        query_free(q);
        q = next;
    }
}

/* ---------------------------------------------------------------------- */
/* Connection life                                                         */
/* ---------------------------------------------------------------------- */

static void schedule_reconnect(saga_pg_t *pg) {
    pg->state = ST_WAITING;
    uint64_t d = pg->backoff_ms;
    pg->backoff_ms = d * 2 > pg->opt.reconnect_max_ms ? pg->opt.reconnect_max_ms : d * 2;
    uv_timer_start(&pg->timer, on_reconnect_timer, d, 0);
}

/* A ready connection broke: answer what was asked, report, reconnect. */
static void lost(saga_pg_t *pg, const char *why) {
    char msg[512];
    one_line(msg, sizeof(msg), why, "connection lost");
    teardown(pg);
    schedule_reconnect(pg);
    fail_all(pg, SAGA_EUNAVAILABLE, msg);
    if (!pg->closing)
        pg->on_event(pg, SAGA_PG_LOST, msg, pg->data);
}

static void connect_failed(saga_pg_t *pg, const char *why) {
    char msg[512];
    one_line(msg, sizeof(msg), why, "cannot connect");
    uv_timer_stop(&pg->timer);
    cancel_lookups(pg);
    teardown(pg);
    schedule_reconnect(pg);
    pg->on_event(pg, SAGA_PG_CONNECT_FAILED, msg, pg->data);
}

static void on_connect_timeout(uv_timer_t *t) {
    saga_pg_t *pg = t->data;
    if (pg->state != ST_CONNECTING)
        return;
    char msg[96];
    snprintf(msg, sizeof(msg), "no connection within %llu ms",
             (unsigned long long)pg->opt.connect_timeout_ms);
    connect_failed(pg, msg);
}

static void connected(saga_pg_t *pg) {
    uv_timer_stop(&pg->timer);
    if (PQsetnonblocking(pg->conn, 1) != 0) {
        connect_failed(pg, PQerrorMessage(pg->conn));
        return;
    }
    int rc = watch(pg, UV_READABLE);
    if (rc != 0) {
        connect_failed(pg, uv_strerror(rc));
        return;
    }
    pg->state = ST_READY;
    pg->backoff_ms = pg->opt.reconnect_min_ms;
    pg->on_event(pg, SAGA_PG_READY, NULL, pg->data);
}

/* One PQconnectPoll step, then wait for what libpq asked for. */
static void connect_step(saga_pg_t *pg) {
    if (pg->poll != NULL)
        uv_poll_stop(pg->poll); /* the socket may be closed inside PQconnectPoll */
    PostgresPollingStatusType st = PQconnectPoll(pg->conn);
    int rc;
    switch (st) {
    case PGRES_POLLING_OK:
        connected(pg);
        return;
    case PGRES_POLLING_READING:
        rc = watch(pg, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        rc = watch(pg, UV_WRITABLE);
        break;
    default:
        connect_failed(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (rc != 0)
        connect_failed(pg, uv_strerror(rc));
}

/* The server's notices and the messages libpq receives outside a query
 * ("FATAL: terminating connection due to administrator command" before a
 * shutdown): libpq's default prints them raw on stderr; they go to our
 * log as one line instead. */
static void on_notice(void *arg, const char *message) {
    saga_pg_t *pg = arg;
    char line[512];
    one_line(line, sizeof(line), message, "(empty notice)");
    saga_info("postgres (%s): %s", pg->display, line);
}

/* Starts libpq's connection, with `host`, `hostaddr` and `port` lists
 * of one length (port NULL: the conninfo's) when names were resolved. */
static void connect_start(saga_pg_t *pg, const char *host, const char *hostaddr,
                          const char *port) {
    const char *kw[6], *val[6];
    int n = 0;
    if (pg->appname != NULL) {
        kw[n] = "fallback_application_name";
        val[n++] = pg->appname;
    }
    kw[n] = "dbname"; /* expanded: the whole conninfo */
    val[n++] = pg->conninfo;
    if (hostaddr != NULL) {
        kw[n] = "host"; /* after the conninfo: they win */
        val[n++] = host;
        kw[n] = "hostaddr";
        val[n++] = hostaddr;
        if (port != NULL) {
            kw[n] = "port";
            val[n++] = port;
        }
    }
    kw[n] = val[n] = NULL;
    pg->conn = PQconnectStartParams(kw, val, 1);
    if (pg->conn == NULL) {
        connect_failed(pg, "out of memory");
        return;
    }
    PQsetNoticeProcessor(pg->conn, on_notice, pg);
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        connect_failed(pg, PQerrorMessage(pg->conn));
        return;
    }
    /* PQconnectStart's state asks for a writable socket first */
    int rc = watch(pg, UV_WRITABLE);
    if (rc != 0)
        connect_failed(pg, uv_strerror(rc));
}

typedef struct resolve_s {
    uv_getaddrinfo_t req;
    saga_pg_t *pg;
    size_t idx;
    unsigned attempt;
} resolve_t;

/* Every lookup of the attempt answered: connect, or fail the attempt. */
static void resolved_all(saga_pg_t *pg) {
    if (pg->resolve_err[0] != '\0') {
        connect_failed(pg, pg->resolve_err);
        return;
    }
    /* entry i repeated once per address (an entry without a lookup once,
     * with an empty hostaddr: libpq uses the entry itself) */
    size_t hlen = 1, alen = 1, plen = 1;
    for (size_t i = 0; i < pg->nhosts; i++) {
        size_t k = pg->addrs[i] != NULL ? pg->naddrs[i] : 1;
        hlen += k * (strlen(pg->entries[i]) + 1);
        alen += (pg->addrs[i] != NULL ? strlen(pg->addrs[i]) : 0) + 1;
        if (pg->ports != NULL)
            plen += k * (strlen(pg->ports[i]) + 1);
    }
    char *hosts = malloc(hlen), *addrs = malloc(alen);
    char *ports = pg->ports != NULL ? malloc(plen) : NULL;
    if (hosts == NULL || addrs == NULL || (pg->ports != NULL && ports == NULL)) {
        free(hosts);
        free(addrs);
        free(ports);
        connect_failed(pg, "out of memory");
        return;
    }
    size_t ho = 0, ao = 0, po = 0;
    for (size_t i = 0; i < pg->nhosts; i++) {
        size_t k = pg->addrs[i] != NULL ? pg->naddrs[i] : 1;
        if (i > 0)
            addrs[ao++] = ',';
        if (pg->addrs[i] != NULL) {
            memcpy(addrs + ao, pg->addrs[i], strlen(pg->addrs[i]));
            ao += strlen(pg->addrs[i]);
        }
        for (size_t j = 0; j < k; j++) {
            if (ho > 0)
                hosts[ho++] = ',';
            memcpy(hosts + ho, pg->entries[i], strlen(pg->entries[i]));
            ho += strlen(pg->entries[i]);
            if (ports != NULL) {
                if (po > 0)
                    ports[po++] = ',';
                memcpy(ports + po, pg->ports[i], strlen(pg->ports[i]));
                po += strlen(pg->ports[i]);
            }
        }
    }
    hosts[ho] = '\0';
    addrs[ao] = '\0';
    if (ports != NULL)
        ports[po] = '\0';
    connect_start(pg, hosts, addrs, ports);
    free(hosts);
    free(addrs);
    free(ports);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    resolve_t *r = (resolve_t *)req;
    saga_pg_t *pg = r->pg;
    pg->handles--;
    bool current = !pg->closing && r->attempt == pg->attempt && pg->state == ST_CONNECTING;
    if (current) {
        pg->lookups[r->idx] = NULL;
        free(pg->addrs[r->idx]);
        pg->addrs[r->idx] = NULL;
        /* every address, in getaddrinfo's order (libpq tries them so) */
        char list[MAX_ADDRS_PER_HOST * (INET6_ADDRSTRLEN + 1)] = "";
        size_t n = 0, o = 0;
        for (struct addrinfo *a = status == 0 ? res : NULL; a != NULL && n < MAX_ADDRS_PER_HOST;
             a = a->ai_next) {
            char ip[INET6_ADDRSTRLEN] = "";
            if (a->ai_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, ip, sizeof(ip));
            else if (a->ai_family == AF_INET)
                uv_ip4_name((struct sockaddr_in *)a->ai_addr, ip, sizeof(ip));
            if (ip[0] == '\0')
                continue;
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", n ? "," : "", ip);
            n++;
        }
        if (n > 0) {
            if ((pg->addrs[r->idx] = strdup(list)) == NULL)
                snprintf(pg->resolve_err, sizeof(pg->resolve_err), "out of memory");
            pg->naddrs[r->idx] = n;
        } else if (pg->resolve_err[0] == '\0') {
            snprintf(pg->resolve_err, sizeof(pg->resolve_err), "cannot resolve host '%s': %s",
                     pg->hosts[r->idx], status != 0 ? uv_strerror(status) : "no address");
        }
    }
    uv_freeaddrinfo(res);
    free(r);
    if (current && --pg->pending == 0)
        resolved_all(pg);
    else
        maybe_free(pg);
}

/* Cancels the lookups still queued (those already running answer late
 * and are ignored). */
static void cancel_lookups(saga_pg_t *pg) {
    for (size_t i = 0; i < pg->nhosts; i++) {
        if (pg->lookups != NULL && pg->lookups[i] != NULL) {
            uv_cancel((uv_req_t *)&pg->lookups[i]->req);
            pg->lookups[i] = NULL;
        }
    }
    pg->pending = 0;
}

static void connect_attempt(saga_pg_t *pg) {
    if (pg->closing)
        return;
    pg->state = ST_CONNECTING;
    pg->attempt++;
    uv_timer_start(&pg->timer, on_connect_timeout, pg->opt.connect_timeout_ms, 0);
    size_t need = 0;
    for (size_t i = 0; i < pg->nhosts; i++)
        need += pg->hosts[i] != NULL;
    if (need == 0) {
        connect_start(pg, NULL, NULL, NULL);
        return;
    }
    pg->resolve_err[0] = '\0';
    pg->pending = 1; /* held while the lookups start */
    for (size_t i = 0; i < pg->nhosts; i++) {
        if (pg->hosts[i] == NULL)
            continue;
        resolve_t *r = calloc(1, sizeof(*r));
        if (r == NULL) {
            snprintf(pg->resolve_err, sizeof(pg->resolve_err), "out of memory");
            break;
        }
        r->pg = pg;
        r->idx = i;
        r->attempt = pg->attempt;
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = uv_getaddrinfo(pg->loop, &r->req, on_resolved, pg->hosts[i], NULL, &hints);
        if (rc != 0) {
            free(r);
            snprintf(pg->resolve_err, sizeof(pg->resolve_err), "cannot resolve host '%s': %s",
                     pg->hosts[i], uv_strerror(rc));
            break;
        }
        pg->lookups[i] = r;
        pg->handles++;
        pg->pending++;
    }
    if (--pg->pending == 0)
        resolved_all(pg);
}

/* ---------------------------------------------------------------------- */
/* Reading and writing                                                     */
/* ---------------------------------------------------------------------- */

static void on_query_timeout(uv_timer_t *t) {
    saga_pg_t *pg = t->data;
    if (pg->state != ST_READY || !pg->inflight)
        return;
    char msg[96];
    snprintf(msg, sizeof(msg), "no answer to a query within %llu ms",
             (unsigned long long)pg->opt.query_timeout_ms);
    lost(pg, msg);
}

/* Writes what libpq has buffered; watches for writable while some is
 * left. Returns false when the connection was lost. */
static bool flush(saga_pg_t *pg) {
    int r = PQflush(pg->conn);
    if (r < 0) {
        lost(pg, PQerrorMessage(pg->conn));
        return false;
    }
    int rc = watch(pg, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    if (rc != 0) {
        lost(pg, uv_strerror(rc));
        return false;
    }
    return true;
}

static void send_next(saga_pg_t *pg) {
    if (pg->closing || pg->state != ST_READY || pg->inflight || pg->head == NULL)
        return;
    query_t *q = pg->head;
    int ok = q->nparams > 0
             ? PQsendQueryParams(pg->conn, q->sql, q->nparams, NULL,
                                 (const char *const *)q->params, NULL, NULL, 0)
             : PQsendQuery(pg->conn, q->sql);
    if (!ok) {
        lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    pg->inflight = true;
    uv_timer_start(&pg->qtimer, on_query_timeout, pg->opt.query_timeout_ms, 0);
    flush(pg);
}

/* The in-flight query's results are all in: answer it, send the next. */
static void finish_query(saga_pg_t *pg) {
    uv_timer_stop(&pg->qtimer);
    query_t *q = pop(pg);
    PGresult *res = pg->last;
    pg->last = NULL;
    int status = 0;
    const char *why = NULL;
    char buf[512];
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (res == NULL) {
        status = SAGA_ESTORE;
        why = "the server sent no result";
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        status = SAGA_ESTORE;
        /* the server's own words, without the query's text around the
         * error position ("LINE 1: ...") */
        const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
        const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
        char text[600];
        if (primary != NULL)
            snprintf(text, sizeof(text), "%s: %s (SQLSTATE %s)%s%s", sev ? sev : "ERROR",
                     primary, code ? code : "?", hint ? "; hint: " : "", hint ? hint : "");
        else
            snprintf(text, sizeof(text), "%s", PQresultErrorMessage(res));
        one_line(buf, sizeof(buf), text, PQresStatus(st));
        why = buf;
    }
    q->cb(pg, status, res, why, q->data);
    PQclear(res);
    query_free(q);
    if (!pg->closing)
        send_next(pg);
}

/* Hands over the notifications libpq has parsed. */
static void deliver_notifications(saga_pg_t *pg) {
    PGnotify *n;
    while (pg->state == ST_READY && (n = PQnotifies(pg->conn)) != NULL) {
        if (pg->on_notify != NULL && !pg->closing)
            pg->on_notify(pg, n->relname, n->extra ? n->extra : "", pg->data);
        PQfreemem(n);
    }
}

/* Reads what arrived: notifications, the in-flight query's results, then
 * the notifications parsed while the results were collected (one that
 * came right behind a ReadyForQuery in the same read is parsed only then,
 * and no further input would bring it out of libpq's queue). */
static void read_input(saga_pg_t *pg) {
    if (!PQconsumeInput(pg->conn)) {
        lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    deliver_notifications(pg);
    while (pg->state == ST_READY && !pg->closing && pg->inflight && !PQisBusy(pg->conn)) {
        PGresult *res = PQgetResult(pg->conn);
        if (res == NULL) {
            finish_query(pg);
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(res);
            lost(pg, "COPY is not supported on this connection");
            return;
        }
        /* Several statements: the first error is the answer (the server
         * runs nothing after it); else the last result. */
        if (pg->last != NULL && PQresultStatus(pg->last) == PGRES_FATAL_ERROR) {
            PQclear(res);
        } else {
            PQclear(pg->last);
            pg->last = res;
        }
    }
    if (pg->state == ST_READY && !pg->closing && PQstatus(pg->conn) == CONNECTION_BAD) {
        lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (pg->state == ST_READY && !pg->closing)
        deliver_notifications(pg);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    saga_pg_t *pg = h->data;
    if (pg->closing || h != pg->poll)
        return;
    if (pg->state == ST_CONNECTING) {
        connect_step(pg);
        return;
    }
    if (pg->state != ST_READY)
        return;
    if (status < 0) {
        /* an error on the socket: let libpq read it and say what it was */
        if (PQconsumeInput(pg->conn) && PQstatus(pg->conn) != CONNECTION_BAD)
            lost(pg, uv_strerror(status));
        else
            lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    if ((events & UV_WRITABLE) && !flush(pg))
        return;
    if (events & UV_READABLE)
        read_input(pg);
}

/* ---------------------------------------------------------------------- */
/* Public                                                                  */
/* ---------------------------------------------------------------------- */

int saga_pg_conninfo_check(const char *conninfo, char *err, size_t errlen) {
    char *msg = NULL;
    if (conninfo == NULL) {
        snprintf(err, errlen, "no connection string");
        return -EINVAL;
    }
    PQconninfoOption *o = PQconninfoParse(conninfo, &msg);
    if (o == NULL) {
        size_t n;
        snprintf(err, errlen, "%s", msg != NULL ? msg : "out of memory");
        n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        PQfreemem(msg);
        return msg != NULL ? -EINVAL : -ENOMEM;
    }
    PQconninfoFree(o);
    return 0;
}

/* "host=H port=P dbname=D user=U" with what the conninfo says. */
static void make_display(saga_pg_t *pg) {
    PQconninfoOption *o = PQconninfoParse(pg->conninfo, NULL);
    size_t off = 0;
    pg->display[0] = '\0';
    for (PQconninfoOption *p = o; p != NULL && p->keyword != NULL; p++) {
        if (p->val == NULL || p->val[0] == '\0')
            continue;
        if (strcmp(p->keyword, "host") && strcmp(p->keyword, "hostaddr") &&
            strcmp(p->keyword, "port") && strcmp(p->keyword, "dbname") &&
            strcmp(p->keyword, "user"))
            continue;
        if (off < sizeof(pg->display))
            off += (size_t)snprintf(pg->display + off, sizeof(pg->display) - off, "%s%s=%s",
                                    off ? " " : "", p->keyword, p->val);
    }
    if (pg->display[0] == '\0')
        snprintf(pg->display, sizeof(pg->display), "(libpq defaults)");
    PQconninfoFree(o);
}

static bool ip_literal(const char *h) {
    unsigned char buf[16];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* The conninfo's host list (else $PGHOST, as libpq reads it): the entries
 * that need a DNS lookup, and the port list when it has one port per host
 * (else $PGPORT's). None when the conninfo gives `hostaddr` itself.
 * Returns 0 or -ENOMEM. */
static int hosts_parse(saga_pg_t *pg) {
    PQconninfoOption *o = PQconninfoParse(pg->conninfo, NULL);
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    for (PQconninfoOption *p = o; p != NULL && p->keyword != NULL; p++) {
        if (strcmp(p->keyword, "host") == 0)
            host = p->val;
        else if (strcmp(p->keyword, "hostaddr") == 0)
            hostaddr = p->val;
        else if (strcmp(p->keyword, "port") == 0)
            port = p->val;
    }
    int rc = 0;
    if (host == NULL || host[0] == '\0')
        host = getenv("PGHOST");
    if (port == NULL || port[0] == '\0')
        port = getenv("PGPORT");
    if ((hostaddr != NULL && hostaddr[0] != '\0') || host == NULL || host[0] == '\0')
        goto out;
    size_t n = 1, need = 0;
    for (const char *c = host; *c; c++)
        n += *c == ',';
    size_t nports = 1;
    for (const char *c = port != NULL ? port : ""; *c; c++)
        nports += *c == ',';
    pg->hosts = calloc(n, sizeof(char *));
    pg->entries = calloc(n, sizeof(char *));
    pg->addrs = calloc(n, sizeof(char *));
    pg->naddrs = calloc(n, sizeof(size_t));
    pg->lookups = calloc(n, sizeof(resolve_t *));
    if (n > 1 && nports == n)
        pg->ports = calloc(n, sizeof(char *));
    if (pg->hosts == NULL || pg->entries == NULL || pg->addrs == NULL || pg->naddrs == NULL ||
        pg->lookups == NULL || (n > 1 && nports == n && pg->ports == NULL)) {
        hosts_free(pg);
        pg->hosts = pg->entries = pg->ports = pg->addrs = NULL;
        pg->naddrs = NULL;
        pg->lookups = NULL;
        rc = -ENOMEM;
        goto out;
    }
    pg->nhosts = n;
    const char *start = host, *pstart = port;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, ',');
        size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
        if ((pg->entries[i] = strndup(start, len)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        if (pg->ports != NULL) {
            const char *pend = strchr(pstart, ',');
            size_t plen = pend != NULL ? (size_t)(pend - pstart) : strlen(pstart);
            if ((pg->ports[i] = strndup(pstart, plen)) == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            pstart = pend != NULL ? pend + 1 : pstart + plen;
        }
        char *h = strndup(start, len);
        if (h == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        if (len == 0 || h[0] == '/' || h[0] == '@' || ip_literal(h)) {
            free(h); /* a socket, an address, or libpq's default: no lookup */
        } else {
            pg->hosts[i] = h;
            need++;
        }
        start = end != NULL ? end + 1 : start + len;
    }
    if (need == 0) {
        hosts_free(pg);
        pg->hosts = pg->entries = pg->ports = pg->addrs = NULL;
        pg->naddrs = NULL;
        pg->lookups = NULL;
        pg->nhosts = 0;
    }
out:
    PQconninfoFree(o);
    return rc;
}

saga_pg_t *saga_pg_new(uv_loop_t *loop, const char *conninfo, const saga_pg_options_t *opt,
                       saga_pg_event_cb on_event, saga_pg_notify_cb on_notify, void *data) {
    saga_pg_t *pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        return NULL;
    if (opt != NULL)
        pg->opt = *opt;
    pg->conninfo = strdup(conninfo != NULL ? conninfo : "");
    pg->appname = pg->opt.application_name ? strdup(pg->opt.application_name) : NULL;
    if (pg->conninfo == NULL || (pg->opt.application_name && pg->appname == NULL)) {
        free(pg->conninfo);
        free(pg->appname);
        free(pg);
        return NULL;
    }
    pg->opt.application_name = NULL;
    if (pg->opt.connect_timeout_ms == 0)
        pg->opt.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (pg->opt.query_timeout_ms == 0)
        pg->opt.query_timeout_ms = DEFAULT_QUERY_TIMEOUT_MS;
    if (pg->opt.reconnect_min_ms == 0)
        pg->opt.reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    if (pg->opt.reconnect_max_ms == 0)
        pg->opt.reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    if (pg->opt.reconnect_max_ms < pg->opt.reconnect_min_ms)
        pg->opt.reconnect_max_ms = pg->opt.reconnect_min_ms;
    pg->backoff_ms = pg->opt.reconnect_min_ms;
    pg->loop = loop;
    pg->on_event = on_event;
    pg->on_notify = on_notify;
    pg->data = data;
    pg->poll_fd = -1;
    make_display(pg);
    if (hosts_parse(pg) != 0) {
        hosts_free(pg);
        free(pg->conninfo);
        free(pg->appname);
        free(pg);
        return NULL;
    }
    uv_timer_init(loop, &pg->timer);
    uv_timer_init(loop, &pg->qtimer);
    uv_timer_init(loop, &pg->kick);
    pg->timer.data = pg->qtimer.data = pg->kick.data = pg;
    pg->handles = 3;
    return pg;
}

int saga_pg_start(saga_pg_t *pg) {
    if (pg->closing)
        return -ECANCELED;
    if (pg->state != ST_IDLE)
        return -EALREADY;
    pg->state = ST_WAITING;
    /* the first attempt from the loop: no event inside this call */
    uv_timer_start(&pg->timer, on_reconnect_timer, 0, 0);
    return 0;
}

bool saga_pg_ready(const saga_pg_t *pg) { return pg->state == ST_READY && !pg->closing; }

const char *saga_pg_display(const saga_pg_t *pg) { return pg->display; }

int saga_pg_query(saga_pg_t *pg, const char *sql, int nparams, const char *const *params,
                  saga_pg_result_cb cb, void *data) {
    if (pg->closing)
        return -ECANCELED;
    if (sql == NULL || cb == NULL || nparams < 0 || (nparams > 0 && params == NULL))
        return -EINVAL;
    if (pg->state != ST_READY)
        return -ENOTCONN;
    query_t *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->sql = strdup(sql)) == NULL)
        goto nomem;
    if (nparams > 0) {
        if ((q->params = calloc((size_t)nparams, sizeof(char *))) == NULL)
            goto nomem;
        q->nparams = nparams;
        for (int i = 0; i < nparams; i++)
            if (params[i] != NULL && (q->params[i] = strdup(params[i])) == NULL)
                goto nomem;
    }
    q->cb = cb;
    q->data = data;
    if (pg->tail != NULL)
        pg->tail->next = q;
    else
        pg->head = q;
    pg->tail = q;
    if (!pg->inflight)
        uv_timer_start(&pg->kick, on_kick, 0, 0);
    return 0;
nomem:
    query_free(q);
    return -ENOMEM;
}

void saga_pg_close(saga_pg_t *pg, void (*closed)(void *data), void *data) {
    if (pg == NULL || pg->closing)
        return;
    pg->closing = true;
    pg->closed = closed;
    pg->closed_data = data;
    pg->state = ST_CLOSED;
    cancel_lookups(pg);
    teardown(pg);
    fail_all(pg, SAGA_ECLOSING, "the connection is closing");
    uv_close((uv_handle_t *)&pg->timer, on_handle_closed);
    uv_close((uv_handle_t *)&pg->qtimer, on_handle_closed);
    uv_close((uv_handle_t *)&pg->kick, on_handle_closed);
}
