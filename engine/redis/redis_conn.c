/*
 * redis_conn.c -- one asynchronous Redis connection on a libuv loop
 * (see redis_conn.h).
 *
 * Life of a connection attempt:
 *
 *   WAITING --retry_timer--> [RESOLVING] --> CONNECTING --onConnect-->
 *   HANDSHAKE (AUTH, SELECT, CLIENT SETNAME, PING pipelined) --> READY
 *
 * Every attempt starts from retry_timer (never from inside saga_redis_start
 * or a hiredis callback). A host name is resolved with uv_getaddrinfo; each
 * address is tried in turn (next one from retry_timer, delay 0). The
 * connect timer covers the whole attempt, handshake included.
 *
 * hiredis 0.14.1 rules this file lives by:
 *  - redisAsyncFree() is only ever called from our own timer callbacks
 *    (teardown()), never from inside a hiredis callback: in the connect and
 *    disconnect callbacks hiredis frees the context itself, and a context
 *    freed there would be freed twice.
 *  - a failed context is never reused: each attempt makes a new one.
 *  - a reply is only valid during the callback.
 *  - a NULL reply means hiredis is tearing the context down; from then on
 *    the connection is not ready (new commands get -ENOTCONN).
 *
 * Our own FIFO of commands mirrors hiredis's reply queue (replies come in
 * order), which gives the oldest unanswered command for the command timeout
 * and the pending count.
 */
#include "redis/redis_conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/async.h>

#include "redis/redis_cluster.h"
#include "redis/redis_uv.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_COMMAND_TIMEOUT_MS 10000
#define DEFAULT_RECONNECT_MIN_MS 50
#define DEFAULT_RECONNECT_MAX_MS 2000
#define MAX_ADDRS 8
#define MSG_LEN 512
#define EARLY_FLUSH_MAX_PENDING 32 /* see flush_early() */

typedef enum state_e {
    ST_IDLE,       /* created, not started */
    SAGA_CKPT_WAITING,    /* retry_timer armed: next attempt or next address */
    ST_RESOLVING,  /* uv_getaddrinfo in flight */
    ST_CONNECTING, /* hiredis context exists, connect(2) in progress */
    ST_HANDSHAKE,  /* connected; AUTH/SELECT/SETNAME/PING in flight */
    ST_READY,
    ST_LOSING,     /* hiredis is tearing a ready connection down */
    ST_DROPPING,   /* a handshake failed; defer_timer drops the context */
    ST_CLUSTER,    /* a cluster node: the router (r->cluster) took over */
    SAGA_CKPT_FAILED      /* first attempt failed, no retry wanted */
} state_t;

typedef enum cmd_kind_e {
    CMD_USER,
    CMD_AUTH,
    CMD_SELECT,
    CMD_SETNAME,
    CMD_PING,
    CMD_INFO
} cmd_kind_t;

/* One command hiredis holds a callback for. */
typedef struct cmd_s {
    struct cmd_s *next;
    saga_redis_t *r;
    saga_redis_reply_cb cb;
    void *data;
    uint64_t sent;  /* uv_now() when issued */
    cmd_kind_t kind;
} cmd_t;

/* A getaddrinfo request; outlives an attempt that timed out. */
typedef struct resolve_s {
    uv_getaddrinfo_t req;
    saga_redis_t *r;
} resolve_t;

struct saga_redis_s {
    uv_loop_t *loop;
    saga_redis_url_t url;
    uint64_t connect_timeout;
    uint64_t command_timeout;
    uint64_t backoff_min;
    uint64_t backoff_max;
    bool retry_first;
    char *client_name;
    saga_redis_options_t opt;  /* as given (client_name: ours) */
    bool single_node;
    bool cluster_seen;         /* the handshake's INFO said cluster_enabled:1 */
    saga_redis_cluster_t *cluster;
    saga_redis_event_cb on_event;
    void *data;

    state_t state;
    redisAsyncContext *ac;  /* NULL when no context exists */
    bool dropping;          /* inside our own redisAsyncFree() */
    bool ever_ready;
    unsigned failures;      /* consecutive failed attempts (backoff) */
    uint64_t rng;

    uv_timer_t connect_timer;
    uv_timer_t command_timer;
    uv_timer_t retry_timer;
    uv_timer_t defer_timer;
    unsigned open_handles;  /* timers and poll handles not closed yet */
    unsigned open_reqs;     /* getaddrinfo requests not completed yet */
    resolve_t *resolving;   /* the current attempt's request, or NULL */

    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    int naddrs;
    int addr_idx;
    bool named_host;        /* the addresses came from a resolver */

    cmd_t *head;
    cmd_t *tail;
    size_t pending;         /* user commands in the FIFO */
    bool unflushed;         /* a user command was queued since flush_early() */
    int handshake_left;

    char drop_msg[MSG_LEN]; /* why ST_DROPPING */

    bool closing;
    bool close_started;
    void (*closed_cb)(void *data);
    void *closed_data;
};

static void on_retry(uv_timer_t *t);
static void on_next_address(uv_timer_t *t);
static void on_defer(uv_timer_t *t);
static void on_command_timeout(uv_timer_t *t);
static void on_connect_timeout(uv_timer_t *t);
static void on_poll_closed(void *arg);
static void maybe_finish(saga_redis_t *r);

/* ------------------------------------------------------------------------
 * Messages, events, backoff
 * ------------------------------------------------------------------------ */

/* "redis <display>: <text>". */
static void format_msg(const saga_redis_t *r, char *buf, size_t len,
                       const char *fmt, ...)
{
    int n = snprintf(buf, len, "redis %s: ", r->url.display);
    va_list ap;

    if (n < 0 || (size_t)n >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
}

/* hiredis's errstr ("Connection refused") in the style of our messages. */
static void lower_first(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src != NULL && *src != '\0' ? src : "unknown error");
    if (isupper((unsigned char)dst[0]) &&
        !(dst[1] != '\0' && isupper((unsigned char)dst[1])))
        dst[0] = (char)tolower((unsigned char)dst[0]);
}

static void emit(saga_redis_t *r, saga_redis_event_t ev, const char *msg)
{
    if (!r->closing && r->on_event != NULL)
        r->on_event(r, ev, msg, r->data);
}

static uint64_t next_random(saga_redis_t *r)
{
    /* xorshift64*: jitter only, no need for more. */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

/* Delay before the next attempt: reconnect_min_ms doubled per consecutive
 * failure, capped at reconnect_max_ms, then drawn from [3/4, 1] of that. */
static uint64_t backoff_delay(saga_redis_t *r)
{
    uint64_t base = r->backoff_min;
    unsigned i;

    for (i = 0; i < r->failures && base < r->backoff_max; i++)
        base *= 2;
    if (base > r->backoff_max)
        base = r->backoff_max;
    if (r->failures < 64)
        r->failures++;
    base = base - base / 4 + next_random(r) % (base / 4 + 1);
    return base > 0 ? base : 1;
}

/* ------------------------------------------------------------------------
 * The command FIFO
 * ------------------------------------------------------------------------ */

static cmd_t *cmd_new(saga_redis_t *r, cmd_kind_t kind, saga_redis_reply_cb cb,
                      void *data)
{
    cmd_t *c = malloc(sizeof *c);

    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->r = r;
    c->cb = cb;
    c->data = data;
    c->sent = uv_now(r->loop);
    c->kind = kind;
    return c;
}

static void cmd_push(saga_redis_t *r, cmd_t *c)
{
    if (r->tail != NULL)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    if (c->kind == CMD_USER) {
        r->pending++;
        r->unflushed = true;
        if (!uv_is_active((uv_handle_t *)&r->command_timer))
            uv_timer_start(&r->command_timer, on_command_timeout,
                           r->command_timeout, 0);
    }
}

/* ------------------------------------------------------------------------
 * Outcomes of an attempt
 * ------------------------------------------------------------------------ */

/* The attempt failed: report it and schedule the next one (or stop when the
 * first attempt failed and retry_first_connect is false). */
static void attempt_failed(saga_redis_t *r, const char *msg)
{
    uv_timer_stop(&r->connect_timer);
    if (r->ever_ready || r->retry_first) {
        r->state = SAGA_CKPT_WAITING;
        uv_timer_start(&r->retry_timer, on_retry, backoff_delay(r), 0);
    } else {
        r->state = SAGA_CKPT_FAILED;
    }
    emit(r, SAGA_REDIS_CONNECT_FAILED, msg);
}

/* One address failed: try the next one of this attempt, if any. */
static void address_failed(saga_redis_t *r, const char *msg)
{
    if (r->addr_idx + 1 < r->naddrs) {
        r->addr_idx++;
        r->state = SAGA_CKPT_WAITING;
        uv_timer_start(&r->retry_timer, on_next_address, 0, 0);
        return;
    }
    attempt_failed(r, msg);
}

/* A ready connection is gone: report it and reconnect with backoff. */
static void connection_lost(saga_redis_t *r, const char *msg)
{
    uv_timer_stop(&r->command_timer);
    r->state = SAGA_CKPT_WAITING;
    r->failures = 0;
    uv_timer_start(&r->retry_timer, on_retry, backoff_delay(r), 0);
    emit(r, SAGA_REDIS_LOST, msg);
}

/* Frees the hiredis context from outside hiredis (a timer callback): every
 * pending callback runs with a NULL reply, the adapter closes its poll
 * handle. */
static void teardown(saga_redis_t *r)
{
    redisAsyncContext *ac = r->ac;

    uv_timer_stop(&r->command_timer);
    if (ac == NULL)
        return;
    assert(!(ac->c.flags & REDIS_IN_CALLBACK));
    r->dropping = true;
    redisAsyncFree(ac);
    r->dropping = false;
    r->ac = NULL;
}

/* A handshake reply failed: drop the context from defer_timer, not from
 * inside the hiredis reply callback we are in. */
static void request_drop(saga_redis_t *r, const char *msg)
{
    uv_timer_stop(&r->connect_timer);
    r->state = ST_DROPPING;
    snprintf(r->drop_msg, sizeof r->drop_msg, "%s", msg);
    uv_timer_start(&r->defer_timer, on_defer, 0, 0);
}

/* ------------------------------------------------------------------------
 * hiredis callbacks
 * ------------------------------------------------------------------------ */

static void handshake_reply(saga_redis_t *r, cmd_kind_t kind,
                            const redisReply *reply)
{
    char msg[MSG_LEN];

    if (reply == NULL || r->closing || r->state != ST_HANDSHAKE)
        return;  /* teardown reports why */
    if (kind == CMD_INFO) {
        /* A server that refuses INFO (ACL, renamed) is taken as a single
         * Redis: its other answers say whether it is usable. */
        if (reply->type == REDIS_REPLY_STRING && reply->str != NULL &&
            strstr(reply->str, "cluster_enabled:1") != NULL)
            r->cluster_seen = true;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        const char *e = reply->str != NULL ? reply->str : "";
        if (strncmp(e, "NOAUTH", 6) == 0)
            format_msg(r, msg, sizeof msg,
                       "authentication required (the URL has no "
                       "password): %s", e);
        else if (kind == CMD_AUTH)
            format_msg(r, msg, sizeof msg, "authentication failed: %s", e);
        else if (kind == CMD_SELECT)
            format_msg(r, msg, sizeof msg, "SELECT %d failed: %s",
                       r->url.db, e);
        else if (kind == CMD_SETNAME)
            format_msg(r, msg, sizeof msg, "CLIENT SETNAME failed: %s", e);
        else
            format_msg(r, msg, sizeof msg, "server not ready: %s", e);
        request_drop(r, msg);
        return;
    }
    if (--r->handshake_left > 0)
        return;
    uv_timer_stop(&r->connect_timer);
    if (r->cluster_seen) {
        /* The router takes over from defer_timer (this connection is
         * dropped there, outside hiredis's callback). */
        r->state = ST_CLUSTER;
        uv_timer_start(&r->defer_timer, on_defer, 0, 0);
        return;
    }
    r->state = ST_READY;
    r->failures = 0;
    r->ever_ready = true;
    emit(r, SAGA_REDIS_READY, NULL);
}

/* Sends what a reply callback queued without waiting for the end of the
 * read. hiredis runs every reply of one read(2) before it returns to the
 * loop, and only then would the commands those callbacks queued go out: the
 * server would sit idle while we work through a batch, then we would wait
 * while it works through the next one. While few commands are outstanding
 * (EARLY_FLUSH_MAX_PENDING, about what one 16 KiB read of the server holds
 * of our writes) the server may well be idle, so each reply's commands go
 * out at once and both sides work at the same time. With more outstanding
 * the server has a backlog: writing early would not start it sooner, only
 * split its reads, so the commands wait for the last reply of the read,
 * which writes everything at once rather than one loop turn later.
 *
 * Runs inside a reply callback, where hiredis must not free the context:
 * redisBufferWrite() only writes and records an error in c->err, which the
 * next redisAsyncHandleRead/Write (the poll handle watches the socket) turns
 * into the usual disconnect. */
static void flush_early(saga_redis_t *r)
{
    redisContext *c;
    bool last;
    int done;

    if (r->ac == NULL || !r->unflushed)
        return;
    c = &r->ac->c;
    last = c->reader == NULL || c->reader->pos >= c->reader->len;
    if (!last && r->pending > EARLY_FLUSH_MAX_PENDING)
        return;
    r->unflushed = false;
    if (c->err == 0 && !(c->flags & (REDIS_DISCONNECTING | REDIS_FREEING)) &&
        sdslen(c->obuf) > 0 && redisBufferWrite(c, &done) == REDIS_OK && done &&
        r->ac->ev.delWrite != NULL)
        r->ac->ev.delWrite(r->ac->ev.data); /* nothing left for the poll handle */
}

/* The one callback hiredis knows: pops our FIFO and dispatches. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    cmd_t *c = privdata;
    saga_redis_t *r = c->r;

    (void)ac;
    assert(r->head == c);
    r->head = c->next;
    if (r->head == NULL)
        r->tail = NULL;
    if (reply == NULL && r->state == ST_READY)
        r->state = ST_LOSING;  /* hiredis is freeing the context */
    if (c->kind == CMD_USER) {
        r->pending--;
        if (r->pending == 0)
            uv_timer_stop(&r->command_timer);
        if (c->cb != NULL)
            c->cb(r, r->closing ? NULL : reply, c->data);
        if (reply != NULL && !r->closing)
            flush_early(r);
    } else {
        handshake_reply(r, c->kind, reply);
    }
    free(c);
}

static int send_internal(saga_redis_t *r, cmd_kind_t kind, int argc,
                         const char **argv)
{
    cmd_t *c = cmd_new(r, kind, NULL, NULL);

    if (c == NULL)
        return -ENOMEM;
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, NULL) !=
        REDIS_OK) {
        free(c);
        return -ENOMEM;
    }
    cmd_push(r, c);
    r->handshake_left++;
    return 0;
}

static void start_handshake(saga_redis_t *r)
{
    char db[16];
    char msg[MSG_LEN];
    int rc = 0;

    r->state = ST_HANDSHAKE;
    r->handshake_left = 0;
    if (r->url.password != NULL) {
        const char *a[3] = {"AUTH", NULL, NULL};
        int n = 1;
        if (r->url.user != NULL)
            a[n++] = r->url.user;
        a[n++] = r->url.password;
        rc = send_internal(r, CMD_AUTH, n, a);
    }
    if (rc == 0 && r->url.db != 0) {
        const char *a[2] = {"SELECT", db};
        snprintf(db, sizeof db, "%d", r->url.db);
        rc = send_internal(r, CMD_SELECT, 2, a);
    }
    if (rc == 0 && r->client_name != NULL) {
        const char *a[3] = {"CLIENT", "SETNAME", r->client_name};
        rc = send_internal(r, CMD_SETNAME, 3, a);
    }
    if (rc == 0 && !r->single_node) {
        const char *a[2] = {"INFO", "cluster"};
        rc = send_internal(r, CMD_INFO, 2, a);
    }
    if (rc == 0) {
        /* PING last: the server answers commands (not -LOADING). */
        const char *a[1] = {"PING"};
        rc = send_internal(r, CMD_PING, 1, a);
    }
    if (rc < 0) {
        format_msg(r, msg, sizeof msg, "out of memory");
        request_drop(r, msg);
    }
}

static void format_socket_error(saga_redis_t *r, char *msg, size_t len,
                                const char *errstr)
{
    char e[256];

    lower_first(e, sizeof e, errstr);
    if (r->named_host)
        format_msg(r, msg, len, "%s (at %s)", e, r->addrs[r->addr_idx]);
    else
        format_msg(r, msg, len, "%s", e);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    saga_redis_t *r = ac->data;
    char msg[MSG_LEN];

    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns. */
        r->ac = NULL;
        if (r->closing)
            return;
        format_socket_error(r, msg, sizeof msg, ac->c.errstr);
        address_failed(r, msg);
        return;
    }
    if (r->closing)
        return;  /* on_defer frees it */
    start_handshake(r);
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    saga_redis_t *r = ac->data;
    char msg[MSG_LEN];
    char e[256];

    /* hiredis frees the context when this returns. */
    r->ac = NULL;
    if (r->dropping || r->closing || r->state == ST_DROPPING)
        return;  /* whoever started it reports */
    uv_timer_stop(&r->command_timer);
    lower_first(e, sizeof e,
                status == REDIS_OK || ac->errstr == NULL
                    ? "server closed the connection"
                    : ac->errstr);
    if (r->state == ST_READY || r->state == ST_LOSING) {
        format_msg(r, msg, sizeof msg, "connection lost: %s", e);
        connection_lost(r, msg);
    } else {
        format_msg(r, msg, sizeof msg, "connection closed during handshake: %s",
                   e);
        attempt_failed(r, msg);
    }
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

static void connect_current(saga_redis_t *r)
{
    redisAsyncContext *ac;
    char msg[MSG_LEN];
    int rc;

    r->state = ST_CONNECTING;
    if (r->url.transport == SAGA_REDIS_UNIX)
        ac = redisAsyncConnectUnix(r->url.path);
    else
        ac = redisAsyncConnect(r->addrs[r->addr_idx], r->url.port);
    if (ac == NULL) {
        format_msg(r, msg, sizeof msg, "out of memory");
        address_failed(r, msg);
        return;
    }
    if (ac->err) {
        /* Failed at once (e.g. no socket file, refused unix socket): not
         * inside a hiredis callback, so freeing it here is fine. */
        format_socket_error(r, msg, sizeof msg, ac->errstr);
        redisAsyncFree(ac);
        address_failed(r, msg);
        return;
    }
    ac->data = r;
    rc = saga_redis_uv_attach(ac, r->loop, on_poll_closed, r);
    if (rc < 0) {
        format_msg(r, msg, sizeof msg, "cannot watch the socket: %s",
                   uv_strerror(rc));
        redisAsyncFree(ac);
        address_failed(r, msg);
        return;
    }
    r->open_handles++;
    r->ac = ac;
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    /* Also asks for the first write event, which completes the connect. */
    redisAsyncSetConnectCallback(ac, on_connected);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *q = (resolve_t *)req;
    saga_redis_t *r = q->r;
    bool current = q == r->resolving;
    struct addrinfo *ai;
    char msg[MSG_LEN];

    free(q);
    r->open_reqs--;
    if (current)
        r->resolving = NULL;
    if (!current || r->closing) {
        /* The attempt timed out, or the object is being closed. */
        uv_freeaddrinfo(res);
        maybe_finish(r);
        return;
    }
    if (status < 0) {
        format_msg(r, msg, sizeof msg, "cannot resolve host %s: %s",
                   r->url.host, uv_strerror(status));
        attempt_failed(r, msg);
        return;
    }
    r->naddrs = 0;
    for (ai = res; ai != NULL && r->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        const void *a;
        int i, dup = 0;

        if (ai->ai_family == AF_INET)
            a = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
        else if (ai->ai_family == AF_INET6)
            a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        else
            continue;
        if (inet_ntop(ai->ai_family, a, ip, sizeof ip) == NULL)
            continue;
        for (i = 0; i < r->naddrs; i++)
            dup |= strcmp(r->addrs[i], ip) == 0;
        if (!dup)
            memcpy(r->addrs[r->naddrs++], ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (r->naddrs == 0) {
        format_msg(r, msg, sizeof msg, "host %s has no IPv4 or IPv6 address",
                   r->url.host);
        attempt_failed(r, msg);
        return;
    }
    r->addr_idx = 0;
    connect_current(r);
}

static bool is_numeric_host(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* Starts one attempt (from retry_timer). */
static void start_attempt(saga_redis_t *r)
{
    struct addrinfo hints;
    char msg[MSG_LEN];
    resolve_t *q;
    int rc;

    r->naddrs = 0;
    r->addr_idx = 0;
    r->named_host = false;
    uv_timer_start(&r->connect_timer, on_connect_timeout, r->connect_timeout,
                   0);
    if (r->url.transport == SAGA_REDIS_UNIX) {
        connect_current(r);
        return;
    }
    if (is_numeric_host(r->url.host)) {
        snprintf(r->addrs[0], sizeof r->addrs[0], "%s", r->url.host);
        r->naddrs = 1;
        connect_current(r);
        return;
    }
    /* A name: resolve off the loop (hiredis would block in getaddrinfo). */
    r->named_host = true;
    q = malloc(sizeof *q);
    if (q == NULL) {
        format_msg(r, msg, sizeof msg, "out of memory");
        attempt_failed(r, msg);
        return;
    }
    q->r = r;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = uv_getaddrinfo(r->loop, &q->req, on_resolved, r->url.host, NULL,
                        &hints);
    if (rc < 0) {
        free(q);
        format_msg(r, msg, sizeof msg, "cannot resolve host %s: %s",
                   r->url.host, uv_strerror(rc));
        attempt_failed(r, msg);
        return;
    }
    r->resolving = q;
    r->open_reqs++;
    r->state = ST_RESOLVING;
}

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

static void on_retry(uv_timer_t *t)
{
    saga_redis_t *r = t->data;

    if (!r->closing)
        start_attempt(r);
}

static void on_next_address(uv_timer_t *t)
{
    saga_redis_t *r = t->data;

    if (!r->closing)
        connect_current(r);
}

static void on_connect_timeout(uv_timer_t *t)
{
    saga_redis_t *r = t->data;
    char msg[MSG_LEN];

    if (r->closing)
        return;
    if (r->state == ST_RESOLVING) {
        /* The request cannot be stopped; on_resolved ignores it. */
        r->resolving = NULL;
        format_msg(r, msg, sizeof msg,
                   "connect timed out after %llu ms resolving host %s",
                   (unsigned long long)r->connect_timeout, r->url.host);
    } else {
        format_msg(r, msg, sizeof msg, "connect timed out after %llu ms",
                   (unsigned long long)r->connect_timeout);
    }
    teardown(r);
    attempt_failed(r, msg);
}

static void on_command_timeout(uv_timer_t *t)
{
    saga_redis_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    char msg[MSG_LEN];
    uint64_t age;

    if (r->closing || r->state != ST_READY || r->head == NULL)
        return;
    age = now - r->head->sent;
    if (age < r->command_timeout) {
        uv_timer_start(&r->command_timer, on_command_timeout,
                       r->command_timeout - age, 0);
        return;
    }
    format_msg(r, msg, sizeof msg,
               "command timed out: no reply within %llu ms",
               (unsigned long long)r->command_timeout);
    r->state = ST_LOSING;
    teardown(r);  /* pending callbacks get NULL; they may close us */
    if (r->closing)
        return;
    connection_lost(r, msg);
}

/* ------------------------------------------------------------------------
 * Closing
 * ------------------------------------------------------------------------ */

static void maybe_finish(saga_redis_t *r)
{
    void (*cb)(void *);
    void *data;

    if (!r->close_started || r->open_handles > 0 || r->open_reqs > 0)
        return;
    cb = r->closed_cb;
    data = r->closed_data;
    saga_redis_url_close(&r->url);
    free(r->client_name);
    free(r);
    if (cb != NULL)
        cb(data);
}

static void on_poll_closed(void *arg)
{
    saga_redis_t *r = arg;

    r->open_handles--;
    maybe_finish(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    saga_redis_t *r = h->data;

    r->open_handles--;
    maybe_finish(r);
}

static void on_cluster_closed(void *arg)
{
    saga_redis_t *r = arg;

    r->cluster = NULL;
    r->open_handles--;
    maybe_finish(r);
}

static void do_close(saga_redis_t *r)
{
    if (r->close_started)
        return;
    r->close_started = true;
    if (r->resolving != NULL) {
        /* Succeeds only if the request has not started; either way its
         * callback runs (UV_ECANCELED or a result) and is ignored. */
        (void)uv_cancel((uv_req_t *)&r->resolving->req);
        r->resolving = NULL;
    }
    teardown(r);
    assert(r->head == NULL && r->pending == 0);
    if (r->cluster != NULL) {
        r->open_handles++;
        saga__redis_cluster_close(r->cluster, on_cluster_closed, r);
    }
    uv_close((uv_handle_t *)&r->connect_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->command_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->retry_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->defer_timer, on_timer_closed);
}

static void on_defer(uv_timer_t *t)
{
    saga_redis_t *r = t->data;

    if (r->closing) {
        do_close(r);
        return;
    }
    if (r->state == ST_DROPPING) {
        teardown(r);
        attempt_failed(r, r->drop_msg);
    }
    if (r->state == ST_CLUSTER && r->cluster == NULL) {
        char msg[MSG_LEN];

        teardown(r);
        r->cluster = saga__redis_cluster_new(r, r->loop, &r->url, &r->opt);
        if (r->cluster == NULL) {
            r->cluster_seen = false;
            format_msg(r, msg, sizeof msg, "out of memory");
            attempt_failed(r, msg);
        }
    }
}

/* The router's events, as this object's. */
void saga__redis_facade_event(saga_redis_t *r, saga_redis_event_t ev,
                              const char *msg)
{
    if (ev == SAGA_REDIS_READY)
        r->ever_ready = true;
    emit(r, ev, msg);
}

/* ------------------------------------------------------------------------
 * Public functions (contracts in redis_conn.h)
 * ------------------------------------------------------------------------ */

/* Creates the object; nothing happens on the loop until saga_redis_start().
 * Returns NULL on allocation failure (nothing to free then). Owns a copy of
 * `url` and of opt->client_name. The object is freed by saga_redis_close()
 * only (it owns uv timers). */
saga_redis_t *saga_redis_new(uv_loop_t *loop, const saga_redis_url_t *url,
                             const saga_redis_options_t *opt,
                             saga_redis_event_cb on_event, void *data)
{
    saga_redis_options_t none;
    saga_redis_t *r;

    assert(loop != NULL && url != NULL);
    if (opt == NULL) {
        memset(&none, 0, sizeof none);
        opt = &none;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if (saga_redis_url_copy(&r->url, url) < 0)
        goto err;
    if (opt->client_name != NULL) {
        r->client_name = strdup(opt->client_name);
        if (r->client_name == NULL)
            goto err;
    }
    r->loop = loop;
    r->connect_timeout = opt->connect_timeout_ms ? opt->connect_timeout_ms
                                                 : DEFAULT_CONNECT_TIMEOUT_MS;
    r->command_timeout = opt->command_timeout_ms ? opt->command_timeout_ms
                                                 : DEFAULT_COMMAND_TIMEOUT_MS;
    r->backoff_min = opt->reconnect_min_ms ? opt->reconnect_min_ms
                                           : DEFAULT_RECONNECT_MIN_MS;
    r->backoff_max = opt->reconnect_max_ms ? opt->reconnect_max_ms
                                           : DEFAULT_RECONNECT_MAX_MS;
    if (r->backoff_max < r->backoff_min)
        r->backoff_max = r->backoff_min;
    r->retry_first = opt->retry_first_connect;
    r->single_node = opt->single_node;
    r->opt = *opt;
    r->opt.client_name = r->client_name;
    r->on_event = on_event;
    r->data = data;
    r->state = ST_IDLE;
    r->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ULL;
    if (r->rng == 0)
        r->rng = 1;

    /* uv_timer_init() cannot fail. */
    uv_timer_init(loop, &r->connect_timer);
    uv_timer_init(loop, &r->command_timer);
    uv_timer_init(loop, &r->retry_timer);
    uv_timer_init(loop, &r->defer_timer);
    r->connect_timer.data = r;
    r->command_timer.data = r;
    r->retry_timer.data = r;
    r->defer_timer.data = r;
    r->open_handles = 4;
    return r;

err:
    saga_redis_url_close(&r->url);
    free(r->client_name);
    free(r);
    return NULL;
}

/* Schedules the first attempt (from a timer: no event fires inside this
 * call). Returns 0; -EALREADY when already started (a start after the
 * first attempt failed without retry is allowed and makes a new attempt);
 * -ECANCELED after saga_redis_close(). */
int saga_redis_start(saga_redis_t *r)
{
    if (r->closing)
        return -ECANCELED;
    if (r->state != ST_IDLE && r->state != SAGA_CKPT_FAILED)
        return -EALREADY;
    r->state = SAGA_CKPT_WAITING;
    r->failures = 0;
    uv_timer_start(&r->retry_timer, on_retry, 0, 0);
    return 0;
}

/* True between READY and the next LOST (false once closing). */
bool saga_redis_ready(const saga_redis_t *r)
{
    if (r != NULL && r->cluster != NULL)
        return !r->closing && saga__redis_cluster_ready(r->cluster);
    return r != NULL && !r->closing && r->state == ST_READY &&
           r->ac != NULL &&
           !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

/* Queues one command. Returns 0 (cb runs exactly once, later), -ENOTCONN
 * when not ready, -EINVAL for argc < 1, -ENOMEM; on error cb never runs.
 * The arguments are copied. */
int saga_redis_command_argv(saga_redis_t *r, saga_redis_reply_cb cb,
                            void *data, int argc, const char **argv,
                            const size_t *argvlen)
{
    cmd_t *c;

    if (!saga_redis_ready(r))
        return -ENOTCONN;
    if (argc < 1 || argv == NULL)
        return -EINVAL;
    if (r->cluster != NULL) {
        char *buf = NULL;
        long long len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
        int rc;

        if (len < 0)
            return -ENOMEM;
        rc = saga__redis_cluster_command(r->cluster, cb, data, buf,
                                         (size_t)len);
        free(buf);
        return rc;
    }
    c = cmd_new(r, CMD_USER, cb, data);
    if (c == NULL)
        return -ENOMEM;
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) !=
        REDIS_OK) {
        free(c);
        return -ENOMEM;
    }
    cmd_push(r, c);
    return 0;
}

int saga_redis_command_resp(saga_redis_t *r, saga_redis_reply_cb cb,
                            void *data, const char *resp, size_t len)
{
    cmd_t *c;

    if (!saga_redis_ready(r))
        return -ENOTCONN;
    if (resp == NULL || len < 4 || resp[0] != '*')
        return -EINVAL;
    if (r->cluster != NULL)
        return saga__redis_cluster_command(r->cluster, cb, data, resp, len);
    c = cmd_new(r, CMD_USER, cb, data);
    if (c == NULL)
        return -ENOMEM;
    if (redisAsyncFormattedCommand(r->ac, on_reply, c, resp, len) != REDIS_OK) {
        free(c);
        return -ENOMEM;
    }
    cmd_push(r, c);
    return 0;
}

/* Printf-style variant. Same contract; also -EINVAL for a bad format. */
int saga_redis_command(saga_redis_t *r, saga_redis_reply_cb cb, void *data,
                       const char *fmt, ...)
{
    char *buf = NULL;
    va_list ap;
    cmd_t *c;
    int len;

    if (!saga_redis_ready(r))
        return -ENOTCONN;
    va_start(ap, fmt);
    len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len == -2)
        return -EINVAL;
    if (len < 0)
        return -ENOMEM;
    if (r->cluster != NULL) {
        int rc = saga__redis_cluster_command(r->cluster, cb, data, buf,
                                             (size_t)len);
        redisFreeCommand(buf);
        return rc;
    }
    c = cmd_new(r, CMD_USER, cb, data);
    if (c == NULL) {
        redisFreeCommand(buf);
        return -ENOMEM;
    }
    if (redisAsyncFormattedCommand(r->ac, on_reply, c, buf, (size_t)len) !=
        REDIS_OK) {
        redisFreeCommand(buf);
        free(c);
        return -ENOMEM;
    }
    redisFreeCommand(buf);
    cmd_push(r, c);
    return 0;
}

/* A subscription's callback; freed when hiredis hands it its NULL reply
 * (the context is going away), which it does exactly once per channel. */
typedef struct sub_s {
    saga_redis_t *r;
    saga_redis_reply_cb cb;
    void *data;
} sub_t;

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    sub_t *sub = privdata;
    saga_redis_t *r = sub->r;

    (void)ac;
    if (reply == NULL && r->state == ST_READY)
        r->state = ST_LOSING; /* hiredis is freeing the context */
    sub->cb(r, r->closing ? NULL : reply, sub->data);
    if (reply == NULL)
        free(sub);
}

/* SUBSCRIBE: the callback stays with hiredis's table of channels, outside
 * our FIFO (it answers many times) and outside the command timeout. */
int saga_redis_subscribe(saga_redis_t *r, const char *channel,
                         saga_redis_reply_cb cb, void *data)
{
    sub_t *sub;
    const char *argv[2] = {"SUBSCRIBE", channel};

    assert(cb != NULL && channel != NULL);
    if (!saga_redis_ready(r))
        return -ENOTCONN;
    sub = malloc(sizeof *sub);
    if (sub == NULL)
        return -ENOMEM;
    sub->r = r;
    sub->cb = cb;
    sub->data = data;
    if (redisAsyncCommandArgv(r->ac, on_sub_reply, sub, 2, argv, NULL) !=
        REDIS_OK) {
        free(sub);
        return -ENOMEM;
    }
    return 0;
}

/* The connection's URL and options as given to saga_redis_new() (timeouts
 * with their defaults filled in); owned by `r`. */
const saga_redis_url_t *saga_redis_url(const saga_redis_t *r,
                                       saga_redis_options_t *opt)
{
    assert(r != NULL);
    if (opt != NULL) {
        memset(opt, 0, sizeof *opt);
        opt->connect_timeout_ms = r->connect_timeout;
        opt->command_timeout_ms = r->command_timeout;
        opt->reconnect_min_ms = r->backoff_min;
        opt->reconnect_max_ms = r->backoff_max;
        opt->retry_first_connect = r->retry_first;
        opt->client_name = r->client_name;
    }
    return &r->url;
}

/* User commands sent and not answered yet. */
size_t saga_redis_pending(const saga_redis_t *r)
{
    if (r != NULL && r->cluster != NULL)
        return saga__redis_cluster_pending(r->cluster);
    return r != NULL ? r->pending : 0;
}

/* True once the handshake found a cluster node. */
bool saga_redis_is_cluster(const saga_redis_t *r)
{
    return r != NULL && (r->cluster != NULL || r->cluster_seen);
}

/* The URL of node `name` ("ip:port", "[ip6]:port", or MOVED's unbracketed
 * "ip6:port") with r's credentials. */
static int url_of_name(const saga_redis_t *r, const char *name, saga_redis_url_t *out)
{
    char host[128], display[300];
    saga_redis_url_t u;
    const char *colon = strrchr(name, ':');
    const char *h = name;
    size_t hlen;
    long port;
    char *end;

    memset(out, 0, sizeof *out);
    if (colon == NULL || colon == name)
        return -EINVAL;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port <= 0 || port > 65535)
        return -EINVAL;
    hlen = (size_t)(colon - name);
    if (name[0] == '[' && hlen >= 2 && name[hlen - 1] == ']') {
        h = name + 1; /* [ip6]:port */
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memset(&u, 0, sizeof u);
    u.transport = SAGA_REDIS_TCP;
    u.host = host;
    u.port = (uint16_t)port;
    u.user = r->url.user;
    u.password = r->url.password;
    if (r->url.user != NULL || r->url.password != NULL)
        snprintf(display, sizeof display, "redis://%s:***@%s",
                 r->url.user != NULL ? r->url.user : "", name);
    else
        snprintf(display, sizeof display, "redis://%s", name);
    u.display = display;
    return saga_redis_url_copy(out, &u);
}

/* The URL of a node of the cluster's current map (redis_conn.h). */
int saga_redis_cluster_node_url(const saga_redis_t *r, unsigned i,
                                saga_redis_url_t *out)
{
    char name[128];

    memset(out, 0, sizeof *out);
    if (r == NULL || r->cluster == NULL ||
        saga__redis_cluster_node(r->cluster, i, name, sizeof name) == 0)
        return -ENOENT;
    int rc = url_of_name(r, name, out);
    return rc == -EINVAL ? -ENOENT : rc;
}

/* The URL of the primary serving a slot (redis_conn.h). */
int saga_redis_cluster_slot_url(const saga_redis_t *r, unsigned slot, saga_redis_url_t *out)
{
    char name[128];

    memset(out, 0, sizeof *out);
    if (r == NULL || r->cluster == NULL ||
        saga__redis_cluster_slot_node(r->cluster, slot, name, sizeof name) != 0)
        return -ENOENT;
    int rc = url_of_name(r, name, out);
    return rc == -EINVAL ? -ENOENT : rc;
}

/* The URL of a named node (redis_conn.h). */
int saga_redis_cluster_name_url(const saga_redis_t *r, const char *name,
                                saga_redis_url_t *out)
{
    memset(out, 0, sizeof *out);
    if (r == NULL || r->cluster == NULL)
        return -ENOENT;
    return url_of_name(r, name, out);
}

/* The URL without its password; owned by `r`, valid until it is freed. */
const char *saga_redis_display(const saga_redis_t *r)
{
    assert(r != NULL);
    return r->url.display;
}

/* Requests the close; the work happens from defer_timer. Accepts NULL; a
 * second call is ignored (its closed_cb never runs). */
void saga_redis_close(saga_redis_t *r, void (*closed_cb)(void *data),
                      void *data)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    r->closed_cb = closed_cb;
    r->closed_data = data;
    uv_timer_start(&r->defer_timer, on_defer, 0, 0);
}
