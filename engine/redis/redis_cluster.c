/*
 * redis_cluster.c -- the Redis Cluster router (see redis_cluster.h).
 *
 * Objects:
 *  - node_t: one node of the map (primary or replica), or the seed before
 *    the first map, with its own single-node connection. A node the map no
 *    longer lists is closed; it is freed when its connection has closed
 *    (after every command it held got its NULL reply).
 *  - ccmd_t: one caller's command, kept in RESP form until its final
 *    reply, so that a redirection or a retry sends the same bytes again. A
 *    command is either in flight on exactly one node (or on every primary,
 *    for a broadcast) or in the waiting list (a retry's backoff, or its
 *    node not connected yet).
 *
 * Map refreshes: one CLUSTER SLOTS at a time, asked of the ready nodes in
 * turn; requested on MOVED, CLUSTERDOWN and a primary's lost connection,
 * and every REFRESH_MS while the router is not ready.
 *
 * A command never gets NULL while the router stays ready (the store
 * resends NULL-answered requests on the next READY): one whose node cannot
 * be reached within the command timeout gets a CLUSTERDOWN error instead,
 * which callers treat as transient.
 */
#include "redis/redis_cluster.h"
#include "redis/cluster_reply.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REFRESH_MS 250
#define MAX_REDIRECTS 16
#define RETRY_MIN_MS 10
#define RETRY_MAX_MS 500
#define DEFAULT_COMMAND_TIMEOUT_MS 10000
#define NAME_LEN 80
#define MSG_LEN 512

/* ROUTE_WAIT: to every primary, like ROUTE_ALL, answered with the
 * smallest count (a write is on N replicas only if every primary says so). */
typedef enum route_e { ROUTE_KEY, ROUTE_ANY, ROUTE_ALL, ROUTE_WAIT } route_t;

typedef struct node_s {
    struct node_s *next;
    saga_redis_cluster_t *cl;
    saga_redis_t *conn;       /* NULL once closed */
    char name[NAME_LEN];      /* "ip:port", or the seed's display */
    bool ready;
    bool primary;             /* serves slots in the current map */
    bool listed;              /* in the current map */
    bool closing;
} node_t;

typedef struct ccmd_s {
    struct ccmd_s *next;      /* waiting list */
    saga_redis_cluster_t *cl;
    saga_redis_reply_cb cb;
    void *data;
    char *resp;
    size_t len;
    route_t route;
    int slot;                 /* ROUTE_KEY */
    char ask[NAME_LEN];       /* an ASK target for the next send, or "" */
    unsigned redirects;
    unsigned tries;
    uint64_t started;
    uint64_t due;
    /* ROUTE_ALL */
    unsigned outstanding;
    bool lost;
    bool mixed;
    bool have_min;
    long long min;            /* ROUTE_WAIT: the smallest count so far */
    redisReply *first;        /* a copy of the first reply */
    char *error;              /* the first error reply's text */
} ccmd_t;

struct saga_redis_cluster_s {
    saga_redis_t *facade;
    uv_loop_t *loop;
    saga_redis_url_t seed;
    saga_redis_options_t opt;
    char *client_name;
    uint64_t command_timeout;
    node_t *nodes;
    node_t *slots[SAGA_REDIS_SLOTS];
    unsigned nprimaries;
    bool complete;            /* every slot has a primary */
    bool ready;
    bool refreshing;
    bool refresh_again;
    unsigned refresh_turn;
    char slots_why[200];      /* the last CLUSTER SLOTS reply refused, said */
    uv_timer_t refresh_timer;
    uv_timer_t wait_timer;
    ccmd_t *wait_head;
    ccmd_t *wait_tail;
    size_t pending;
    unsigned open;            /* timers + node connections not closed */
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

static void refresh(saga_redis_cluster_t *cl);
static void process_waiting(saga_redis_cluster_t *cl);
static void on_wait_timer(uv_timer_t *t);
static void on_refresh_timer(uv_timer_t *t);
static void finish_close(saga_redis_cluster_t *cl);
static void on_cmd_reply(saga_redis_t *conn, redisReply *reply, void *data);

/* ------------------------------------------------------------------------
 * Hash slots: CRC16/XMODEM of the key's hash tag (Redis's cluster.c)
 * ------------------------------------------------------------------------ */

static uint16_t crc16_table[256];
static bool crc16_ready;

static void crc16_init(void)
{
    unsigned i, b;

    for (i = 0; i < 256; i++) {
        unsigned crc = i << 8;
        for (b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
        crc16_table[i] = (uint16_t)crc;
    }
    crc16_ready = true;
}

static unsigned crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    size_t i;

    if (!crc16_ready)
        crc16_init();
    for (i = 0; i < len; i++)
        crc = ((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) &
                                        0xff]) & 0xffff;
    return crc;
}

/* The slot of a key: only the part between the first '{' and the next '}'
 * counts when it is not empty. */
unsigned saga_redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;

    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) &
                   (SAGA_REDIS_SLOTS - 1);
    }
    return crc16(key, len) & (SAGA_REDIS_SLOTS - 1);
}

/* ------------------------------------------------------------------------
 * Reading a command in RESP form
 * ------------------------------------------------------------------------ */

typedef struct arg_s {
    const char *p;
    size_t len;
} arg_t;

/* Reads the number after `c` at *pos up to "\r\n". */
static int resp_num(const char *b, size_t len, size_t *pos, char c,
                    size_t *out)
{
    size_t i = *pos, n = 0;

    if (i >= len || b[i] != c)
        return -EINVAL;
    for (i++; i < len && b[i] >= '0' && b[i] <= '9'; i++) {
        if (n > (SIZE_MAX - 9) / 10)
            return -EINVAL;
        n = n * 10 + (size_t)(b[i] - '0');
    }
    if (i + 1 >= len || b[i] != '\r' || b[i + 1] != '\n')
        return -EINVAL;
    *pos = i + 2;
    *out = n;
    return 0;
}

/* Splits a RESP array of bulk strings into at most `max` args (the rest
 * is checked, not stored). Returns the argument count or -EINVAL. */
static int resp_args(const char *b, size_t len, arg_t *args, int max,
                     int *argc_out)
{
    size_t pos = 0, n, i;

    if (resp_num(b, len, &pos, '*', &n) < 0 || n < 1 || n > INT32_MAX)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        size_t l;
        if (resp_num(b, len, &pos, '$', &l) < 0 || l > len - pos ||
            len - pos - l < 2 || b[pos + l] != '\r' || b[pos + l + 1] != '\n')
            return -EINVAL;
        if ((int)i < max) {
            args[i].p = b + pos;
            args[i].len = l;
        }
        pos += l + 2;
    }
    if (pos != len)
        return -EINVAL;
    *argc_out = (int)n;
    return (int)(n < (size_t)max ? n : (size_t)max);
}

static bool arg_is(const arg_t *a, const char *s)
{
    size_t n = strlen(s);
    return a->len == n && strncasecmp(a->p, s, n) == 0;
}

static long arg_long(const arg_t *a)
{
    char buf[24];
    char *end;
    long v;

    if (a->len == 0 || a->len >= sizeof buf)
        return -1;
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    v = strtol(buf, &end, 10);
    return *end == '\0' ? v : -1;
}

#define ROUTE_ARGS 64

/* Decides where a command goes. Returns 0 or -EINVAL. */
static int classify(ccmd_t *cc)
{
    arg_t a[ROUTE_ARGS];
    int argc, n = resp_args(cc->resp, cc->len, a, ROUTE_ARGS, &argc), i;
    const arg_t *key = NULL;

    if (n < 0)
        return -EINVAL;
    if (arg_is(&a[0], "FCALL") || arg_is(&a[0], "FCALL_RO") ||
        arg_is(&a[0], "EVAL") || arg_is(&a[0], "EVALSHA") ||
        arg_is(&a[0], "EVAL_RO") || arg_is(&a[0], "EVALSHA_RO")) {
        long nkeys = n >= 3 ? arg_long(&a[2]) : -1;
        if (nkeys < 0)
            return -EINVAL;
        if (nkeys == 0) {
            cc->route = ROUTE_ALL;
            return 0;
        }
        if (n < 4)
            return -EINVAL;
        key = &a[3];
    } else if (arg_is(&a[0], "XREAD") || arg_is(&a[0], "XREADGROUP")) {
        for (i = 1; i + 1 < n && key == NULL; i++)
            if (arg_is(&a[i], "STREAMS"))
                key = &a[i + 1];
        if (key == NULL)
            return -EINVAL;
    } else if (arg_is(&a[0], "XGROUP") || arg_is(&a[0], "XINFO") ||
               arg_is(&a[0], "OBJECT") ||
               (arg_is(&a[0], "MEMORY") && n >= 3 && arg_is(&a[1], "USAGE"))) {
        /* A subcommand, then the key. */
        if (n < 3)
            return -EINVAL;
        key = &a[2];
    } else if (arg_is(&a[0], "FUNCTION") || arg_is(&a[0], "SCRIPT")) {
        cc->route = ROUTE_ALL;
        return 0;
    } else if (arg_is(&a[0], "WAIT")) {
        cc->route = ROUTE_WAIT;
        return 0;
    } else if (n < 2 || arg_is(&a[0], "INFO") || arg_is(&a[0], "CONFIG") ||
               arg_is(&a[0], "CLUSTER") || arg_is(&a[0], "CLIENT") ||
               arg_is(&a[0], "PING") || arg_is(&a[0], "ECHO") ||
               arg_is(&a[0], "TIME") || arg_is(&a[0], "DBSIZE") ||
               arg_is(&a[0], "COMMAND") || arg_is(&a[0], "MEMORY") ||
               arg_is(&a[0], "SLOWLOG") || arg_is(&a[0], "LATENCY") ||
               arg_is(&a[0], "ACL") ||
               arg_is(&a[0], "ASKING") || arg_is(&a[0], "READONLY") ||
               arg_is(&a[0], "HELLO") || arg_is(&a[0], "AUTH")) {
        cc->route = ROUTE_ANY;
        return 0;
    } else {
        key = &a[1];
    }
    cc->route = ROUTE_KEY;
    cc->slot = (int)saga_redis_key_slot(key->p, key->len);
    return 0;
}

/* ------------------------------------------------------------------------
 * Replies: copies, comparison, synthesized errors
 * ------------------------------------------------------------------------ */

static void reply_free(redisReply *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->elements && r->element != NULL; i++)
        reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static redisReply *reply_copy(const redisReply *src)
{
    redisReply *r = calloc(1, sizeof *r);
    size_t i;

    if (r == NULL)
        return NULL;
    r->type = src->type;
    r->integer = src->integer;
    if (src->str != NULL) {
        r->str = malloc(src->len + 1);
        if (r->str == NULL)
            goto err;
        memcpy(r->str, src->str, src->len);
        r->str[src->len] = '\0';
        r->len = src->len;
    }
    if (src->elements > 0) {
        r->element = calloc(src->elements, sizeof *r->element);
        if (r->element == NULL)
            goto err;
        for (i = 0; i < src->elements; i++) {
            r->element[i] = reply_copy(src->element[i]);
            r->elements = i + 1;
            if (r->element[i] == NULL)
                goto err;
        }
    }
    return r;
err:
    reply_free(r);
    return NULL;
}

static bool reply_equal(const redisReply *a, const redisReply *b)
{
    size_t i;

    if (a->type != b->type || a->integer != b->integer ||
        a->len != b->len || a->elements != b->elements)
        return false;
    if (a->len > 0 && memcmp(a->str, b->str, a->len) != 0)
        return false;
    for (i = 0; i < a->elements; i++)
        if (!reply_equal(a->element[i], b->element[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------------------
 * Commands: delivery, the waiting list, sending
 * ------------------------------------------------------------------------ */

static uint64_t now_ms(const saga_redis_cluster_t *cl)
{
    return uv_now(cl->loop);
}

static void ccmd_free(ccmd_t *cc)
{
    free(cc->resp);
    reply_free(cc->first);
    free(cc->error);
    free(cc);
}

static void update_ready(saga_redis_cluster_t *cl, const char *why);

/* A command answered NULL (its connection was lost or closed with it in
 * flight) while the router is ready. Callers treat NULL as "the connection
 * was lost; send it again after the next READY" (store_redis.c does), so
 * the router goes LOST now and READY again once a refreshed map is served,
 * even when the node is not one of the map's primaries (a redirection's
 * target, a node the map dropped). */
static void lost_in_flight(saga_redis_cluster_t *cl)
{
    char msg[MSG_LEN];

    if (cl->closing || !cl->ready)
        return;
    cl->ready = false;
    snprintf(msg, sizeof msg,
             "redis %s: cluster: a connection closed with commands in flight",
             cl->seed.display);
    uv_timer_start(&cl->refresh_timer, on_refresh_timer, REFRESH_MS,
                   REFRESH_MS);
    saga__redis_facade_event(cl->facade, SAGA_REDIS_LOST, msg);
    refresh(cl);
}

/* The command's final answer: its callback runs, the command is freed. */
static void deliver(ccmd_t *cc, redisReply *reply)
{
    saga_redis_cluster_t *cl = cc->cl;

    if (reply == NULL)
        lost_in_flight(cl);
    cl->pending--;
    if (cc->cb != NULL)
        cc->cb(cl->facade, cl->closing ? NULL : reply, cc->data);
    ccmd_free(cc);
}

static void deliver_error(ccmd_t *cc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void deliver_error(ccmd_t *cc, const char *fmt, ...)
{
    char msg[MSG_LEN];
    redisReply r;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memset(&r, 0, sizeof r);
    r.type = REDIS_REPLY_ERROR;
    r.str = msg;
    r.len = strlen(msg);
    deliver(cc, &r);
}

static void wait_push(saga_redis_cluster_t *cl, ccmd_t *cc, uint64_t due)
{
    cc->due = due;
    cc->next = NULL;
    if (cl->wait_tail != NULL)
        cl->wait_tail->next = cc;
    else
        cl->wait_head = cc;
    cl->wait_tail = cc;
    if (!cl->closing) {
        uint64_t now = now_ms(cl);
        uint64_t when = due > now ? due - now : 0;
        if (!uv_is_active((uv_handle_t *)&cl->wait_timer) ||
            uv_timer_get_due_in(&cl->wait_timer) > when)
            uv_timer_start(&cl->wait_timer, on_wait_timer, when, 0);
    }
}

static node_t *node_by_name(saga_redis_cluster_t *cl, const char *name)
{
    node_t *n;

    for (n = cl->nodes; n != NULL; n = n->next)
        if (!n->closing && strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

/* The primary a keyless command goes to: the one serving slot 0 if it is
 * connected, else any connected primary. */
static node_t *any_primary(saga_redis_cluster_t *cl)
{
    node_t *n = cl->slots[0];

    if (n != NULL && n->ready)
        return n;
    for (n = cl->nodes; n != NULL; n = n->next)
        if (n->primary && n->ready && !n->closing)
            return n;
    return NULL;
}

/* Sends cc where it belongs now. Returns 0 (in flight), -ENOTCONN (its
 * node is not connected: the caller keeps it waiting) or -ENOMEM. */
static int send_cmd(saga_redis_cluster_t *cl, ccmd_t *cc)
{
    node_t *n;
    int rc;

    if (cc->route == ROUTE_ALL || cc->route == ROUTE_WAIT) {
        unsigned count = 0;
        for (n = cl->nodes; n != NULL; n = n->next)
            if (n->primary && !n->closing) {
                if (!n->ready)
                    return -ENOTCONN;
                count++;
            }
        if (count == 0)
            return -ENOTCONN;
        cc->outstanding = 0;
        cc->lost = cc->mixed = cc->have_min = false;
        reply_free(cc->first);
        cc->first = NULL;
        free(cc->error);
        cc->error = NULL;
        for (n = cl->nodes; n != NULL; n = n->next) {
            if (!n->primary || n->closing)
                continue;
            rc = saga_redis_command_resp(n->conn, on_cmd_reply, cc, cc->resp,
                                         cc->len);
            if (rc < 0) {
                /* Nothing sent yet: the caller decides. Else the ones
                 * sent answer, and the answer is an error (a NULL would
                 * mean a lost connection, while the router stays up). */
                if (cc->outstanding == 0)
                    return rc;
                if (cc->error == NULL)
                    cc->error = strdup("CLUSTERDOWN could not send to every primary");
                if (cc->error == NULL)
                    cc->lost = true;
                continue;
            }
            cc->outstanding++;
        }
        return 0;
    }
    if (cc->route == ROUTE_ANY)
        n = any_primary(cl);
    else if (cc->ask[0] != '\0')
        n = node_by_name(cl, cc->ask);
    else
        n = cl->slots[cc->slot];
    if (n == NULL || !n->ready || n->closing)
        return -ENOTCONN;
    if (cc->ask[0] != '\0') {
        const char *argv[1] = {"ASKING"};
        rc = saga_redis_command_argv(n->conn, NULL, NULL, 1, argv, NULL);
        if (rc < 0)
            return rc;
        cc->ask[0] = '\0';
    }
    return saga_redis_command_resp(n->conn, on_cmd_reply, cc, cc->resp,
                                   cc->len);
}

/* Sends every waiting command that is due and whose node is connected;
 * gives those that waited past the command timeout a CLUSTERDOWN error. */
static void process_waiting(saga_redis_cluster_t *cl)
{
    ccmd_t *list = cl->wait_head, *cc, *next;
    uint64_t now = now_ms(cl);

    cl->wait_head = cl->wait_tail = NULL;
    for (cc = list; cc != NULL; cc = next) {
        next = cc->next;
        if (cl->closing) {
            deliver(cc, NULL);
            continue;
        }
        if (cc->due <= now) {
            int rc = send_cmd(cl, cc);
            if (rc == 0)
                continue;
            if (rc != -ENOTCONN) {
                deliver_error(cc, "CLUSTERDOWN cannot send the command: %s",
                              strerror(-rc));
                continue;
            }
            if (now - cc->started >= cl->command_timeout) {
                if (cc->route == ROUTE_KEY)
                    deliver_error(cc, "CLUSTERDOWN no connected node serves "
                                      "slot %d after %llu ms", cc->slot,
                                  (unsigned long long)(now - cc->started));
                else
                    deliver_error(cc, "CLUSTERDOWN the primaries are not all "
                                      "connected after %llu ms",
                                  (unsigned long long)(now - cc->started));
                continue;
            }
            /* Again when a node comes up, or at the deadline. */
            wait_push(cl, cc, cc->started + cl->command_timeout);
            continue;
        }
        wait_push(cl, cc, cc->due);
    }
}

static void on_wait_timer(uv_timer_t *t)
{
    process_waiting(t->data);
}

/* Puts cc back to be sent `delay` ms from now. */
static void resend_later(saga_redis_cluster_t *cl, ccmd_t *cc, uint64_t delay)
{
    wait_push(cl, cc, now_ms(cl) + delay);
}

static node_t *node_get(saga_redis_cluster_t *cl, const char *ip, int port);

static node_t *node_get_name(saga_redis_cluster_t *cl, const char *name)
{
    char ip[NAME_LEN];
    const char *colon = strrchr(name, ':');
    long port;
    char *end;

    if (colon == NULL || (size_t)(colon - name) >= sizeof ip)
        return NULL;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return NULL;
    memcpy(ip, name, (size_t)(colon - name));
    ip[colon - name] = '\0';
    return node_get(cl, ip, (int)port);
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static uint64_t retry_delay(ccmd_t *cc)
{
    uint64_t d = RETRY_MIN_MS;
    unsigned i;

    for (i = 0; i < cc->tries && d < RETRY_MAX_MS; i++)
        d *= 2;
    return d < RETRY_MAX_MS ? d : RETRY_MAX_MS;
}

/* A broadcast's reply from one primary. */
static void broadcast_reply(ccmd_t *cc, redisReply *reply)
{
    if (reply == NULL) {
        cc->lost = true;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        if (cc->error == NULL)
            cc->error = strdup(reply->str != NULL ? reply->str : "ERR");
        /* A primary of the map that answers as a replica ("WAIT cannot be
         * used with replica instances", READONLY): the map is stale. */
        refresh(cc->cl);
    } else if (cc->route == ROUTE_WAIT) {
        if (reply->type != REDIS_REPLY_INTEGER) {
            if (cc->error == NULL)
                cc->error = strdup("ERR WAIT answered no integer");
        } else if (!cc->have_min || reply->integer < cc->min) {
            cc->min = reply->integer;
            cc->have_min = true;
        }
    } else if (cc->first == NULL) {
        cc->first = reply_copy(reply);
        if (cc->first == NULL)
            cc->lost = true;
    } else if (!reply_equal(cc->first, reply)) {
        cc->mixed = true;
    }
    if (--cc->outstanding > 0)
        return;
    if (cc->lost)
        deliver(cc, NULL);
    else if (cc->error != NULL)
        deliver_error(cc, "%s", cc->error);
    else if (cc->route == ROUTE_WAIT) {
        redisReply r;
        memset(&r, 0, sizeof r);
        r.type = REDIS_REPLY_INTEGER;
        r.integer = cc->have_min ? cc->min : 0;
        deliver(cc, &r);
    }
    else if (cc->mixed)
        deliver_error(cc, "CLUSTERMIXED the primaries answered differently");
    else
        deliver(cc, cc->first);
}

static void on_cmd_reply(saga_redis_t *conn, redisReply *reply, void *data)
{
    ccmd_t *cc = data;
    saga_redis_cluster_t *cl = cc->cl;
    char name[NAME_LEN];
    int slot;

    (void)conn;
    if (cl->closing) {
        if ((cc->route != ROUTE_ALL && cc->route != ROUTE_WAIT) ||
            --cc->outstanding == 0)
            deliver(cc, NULL);
        return;
    }
    if (cc->route == ROUTE_ALL || cc->route == ROUTE_WAIT) {
        broadcast_reply(cc, reply);
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || reply->str == NULL) {
        deliver(cc, reply);
        return;
    }
    if (starts(reply->str, "MOVED ") || starts(reply->str, "ASK ")) {
        int ask = saga_cluster_redirect_parse(reply->str, &slot, name, sizeof name);
        node_t *n;

        if (ask < 0 || ++cc->redirects > MAX_REDIRECTS ||
            (n = node_get_name(cl, name)) == NULL) {
            deliver(cc, reply);
            return;
        }
        /* The server's slot wins over ours: a command whose key is not
         * where classify() looks (BITOP, ...) is set right by one MOVED. */
        cc->slot = slot;
        if (ask) {
            snprintf(cc->ask, sizeof cc->ask, "%s", n->name);
        } else {
            cl->slots[slot] = n;
            refresh(cl);
        }
        if (send_cmd(cl, cc) < 0)
            resend_later(cl, cc, 0);
        return;
    }
    if (starts(reply->str, "TRYAGAIN") || starts(reply->str, "CLUSTERDOWN") ||
        starts(reply->str, "LOADING") || starts(reply->str, "MASTERDOWN")) {
        uint64_t d = retry_delay(cc);
        if (now_ms(cl) + d - cc->started > cl->command_timeout) {
            deliver(cc, reply);  /* transient for the caller too */
            return;
        }
        cc->tries++;
        if (!starts(reply->str, "TRYAGAIN"))
            refresh(cl);
        resend_later(cl, cc, d);
        return;
    }
    deliver(cc, reply);
}

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

static void on_node_event(saga_redis_t *conn, saga_redis_event_t ev,
                          const char *errstr, void *data)
{
    node_t *n = data;
    saga_redis_cluster_t *cl = n->cl;

    (void)conn;
    if (cl->closing || n->closing)
        return;
    switch (ev) {
    case SAGA_REDIS_READY:
        n->ready = true;
        if (!cl->ready || cl->nprimaries == 0)
            refresh(cl);
        update_ready(cl, NULL);
        process_waiting(cl);
        break;
    case SAGA_REDIS_LOST:
        n->ready = false;
        if (n->primary) {
            update_ready(cl, errstr);
            refresh(cl);
        }
        break;
    case SAGA_REDIS_CONNECT_FAILED:
        if (n->primary || cl->nprimaries == 0) {
            if (!cl->ready)
                saga__redis_facade_event(cl->facade, SAGA_REDIS_CONNECT_FAILED,
                                         errstr);
            refresh(cl);
        }
        break;
    }
}

static void on_node_closed(void *data)
{
    node_t *n = data;
    saga_redis_cluster_t *cl = n->cl;
    node_t **pp;

    for (pp = &cl->nodes; *pp != NULL; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            break;
        }
    free(n);
    cl->open--;
    finish_close(cl);
}

static void node_close(node_t *n)
{
    if (n->closing)
        return;
    n->closing = true;
    n->ready = false;
    n->primary = false;
    saga_redis_close(n->conn, on_node_closed, n);
}

/* Creates a node for `url` (copied) and starts its connection. */
static node_t *node_start(saga_redis_cluster_t *cl, const saga_redis_url_t *url,
                          const char *name)
{
    saga_redis_options_t o = cl->opt;
    node_t *n = calloc(1, sizeof *n);

    if (n == NULL)
        return NULL;
    n->cl = cl;
    snprintf(n->name, sizeof n->name, "%s", name);
    o.single_node = true;
    o.retry_first_connect = true;
    o.client_name = cl->client_name;
    n->conn = saga_redis_new(cl->loop, url, &o, on_node_event, n);
    if (n->conn == NULL) {
        free(n);
        return NULL;
    }
    if (saga_redis_start(n->conn) < 0) {
        saga_redis_close(n->conn, NULL, NULL);
        free(n);
        return NULL;
    }
    n->next = cl->nodes;
    cl->nodes = n;
    cl->open++;
    return n;
}

/* The node at ip:port, started if new. NULL when out of memory. */
static node_t *node_get(saga_redis_cluster_t *cl, const char *ip, int port)
{
    char name[NAME_LEN], display[NAME_LEN + 64];
    saga_redis_url_t u;
    bool v6 = strchr(ip, ':') != NULL;
    node_t *n;

    snprintf(name, sizeof name, v6 ? "[%s]:%d" : "%s:%d", ip, port);
    if ((n = node_by_name(cl, name)) != NULL)
        return n;
    /* Also accept the unbracketed IPv6 form MOVED uses. */
    snprintf(display, sizeof display, "%s:%d", ip, port);
    if (v6 && (n = node_by_name(cl, display)) != NULL)
        return n;
    memset(&u, 0, sizeof u);
    u.transport = SAGA_REDIS_TCP;
    u.host = (char *)ip;
    u.port = (uint16_t)port;
    u.user = cl->seed.user;
    u.password = cl->seed.password;
    u.db = 0;
    if (cl->seed.user != NULL || cl->seed.password != NULL)
        snprintf(display, sizeof display, "redis://%s%s***@%s", 
                 cl->seed.user != NULL ? cl->seed.user : "", ":", name);
    else
        snprintf(display, sizeof display, "redis://%s", name);
    u.display = display;
    return node_start(cl, &u, name);
}

/* ------------------------------------------------------------------------
 * The map
 * ------------------------------------------------------------------------ */

static void update_ready(saga_redis_cluster_t *cl, const char *why)
{
    bool ready = cl->complete && cl->nprimaries > 0;
    node_t *n;

    for (n = cl->nodes; n != NULL && ready; n = n->next)
        if (n->primary && !n->ready)
            ready = false;
    if (ready == cl->ready)
        return;
    cl->ready = ready;
    if (ready) {
        uv_timer_stop(&cl->refresh_timer);
        saga__redis_facade_event(cl->facade, SAGA_REDIS_READY, NULL);
    } else {
        char msg[MSG_LEN];
        snprintf(msg, sizeof msg, "redis %s: cluster not ready: %s",
                 cl->seed.display, why != NULL ? why : "a primary is away");
        uv_timer_start(&cl->refresh_timer, on_refresh_timer, REFRESH_MS,
                       REFRESH_MS);
        saga__redis_facade_event(cl->facade, SAGA_REDIS_LOST, msg);
    }
}

/* Applies a CLUSTER SLOTS reply got from node `from`. Returns 0 or
 * -EINVAL (a reply of the wrong shape, said in `why`: the map stays as it
 * was) or -ENOMEM. */
static int apply_slots(saga_redis_cluster_t *cl, node_t *from,
                       const redisReply *r, char *why, size_t whylen)
{
    static node_t *map[SAGA_REDIS_SLOTS];
    char from_ip[NAME_LEN];
    const char *colon;
    size_t i, j;
    node_t *n;
    unsigned s, primaries = 0;
    bool complete = true;

    if (saga_cluster_slots_check(r, why, whylen) != 0)
        return -EINVAL;
    /* The node's own address, for entries that give none. */
    snprintf(from_ip, sizeof from_ip, "%s", from->name);
    colon = strrchr(from_ip, ':');
    if (colon != NULL)
        from_ip[colon - from_ip] = '\0';
    else
        snprintf(from_ip, sizeof from_ip, "%s", "127.0.0.1");
    memset(map, 0, sizeof map);
    for (n = cl->nodes; n != NULL; n = n->next)
        n->listed = n->primary = false;
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        for (j = 2; j < e->elements; j++) {
            const redisReply *a = e->element[j];
            const char *ip = a->element[0]->str;
            if (ip[0] == '\0' || strcmp(ip, "?") == 0)
                ip = from_ip;
            n = node_get(cl, ip, (int)a->element[1]->integer);
            if (n == NULL)
                return -ENOMEM;
            n->listed = true;
            if (j == 2) {
                long long k;
                n->primary = true;
                for (k = e->element[0]->integer; k <= e->element[1]->integer;
                     k++)
                    map[k] = n;
            }
        }
    }
    for (s = 0; s < SAGA_REDIS_SLOTS; s++)
        complete = complete && map[s] != NULL;
    memcpy(cl->slots, map, sizeof map);
    cl->complete = complete;
    for (n = cl->nodes; n != NULL; n = n->next) {
        if (n->primary)
            primaries++;
        else if (!n->listed && complete)
            node_close(n); /* gone from the cluster (or the seed's alias) */
    }
    cl->nprimaries = primaries;
    return 0;
}

/* A CLUSTER SLOTS reply that cannot be used: before the router was ever
 * ready, said once per reason as a failed connection (the store reports
 * it: a "cluster" that answers nonsense must not look like a hang). */
static void slots_refused(saga_redis_cluster_t *cl, node_t *from, const char *why)
{
    char msg[MSG_LEN];

    if (cl->ready || strcmp(cl->slots_why, why) == 0)
        return;
    snprintf(cl->slots_why, sizeof cl->slots_why, "%s", why);
    snprintf(msg, sizeof msg, "redis %s: CLUSTER SLOTS from %s: %s",
             cl->seed.display, from->name, why);
    saga__redis_facade_event(cl->facade, SAGA_REDIS_CONNECT_FAILED, msg);
}

static void on_slots(saga_redis_t *conn, redisReply *reply, void *data)
{
    node_t *from = data;
    saga_redis_cluster_t *cl = from->cl;
    char why[sizeof cl->slots_why];
    int rc;

    (void)conn;
    cl->refreshing = false;
    if (cl->closing)
        return;
    if (reply == NULL) {
        rc = -ENOTCONN;  /* the node's connection event says why */
    } else if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "%s", reply->str);
        rc = -EINVAL;
    } else {
        rc = apply_slots(cl, from, reply, why, sizeof why);
        if (rc == -ENOMEM)
            snprintf(why, sizeof why, "out of memory");
    }
    if (rc == 0) {
        cl->slots_why[0] = '\0';
        update_ready(cl, "the map changed");
        if (cl->ready)  /* a refresh that had failed asked every 250 ms */
            uv_timer_stop(&cl->refresh_timer);
        process_waiting(cl);
    } else {
        if (rc != -ENOTCONN)
            slots_refused(cl, from, why);
        if (!uv_is_active((uv_handle_t *)&cl->refresh_timer))
            /* Ask again shortly, another node if there is one. */
            uv_timer_start(&cl->refresh_timer, on_refresh_timer, REFRESH_MS,
                           REFRESH_MS);
    }
    if (cl->refresh_again) {
        cl->refresh_again = false;
        refresh(cl);
    }
}

/* Asks a connected node (a different one each time) for the map. */
static void refresh(saga_redis_cluster_t *cl)
{
    node_t *n, *pick = NULL;
    unsigned count = 0, i;
    const char *argv[2] = {"CLUSTER", "SLOTS"};

    if (cl->closing)
        return;
    if (cl->refreshing) {
        cl->refresh_again = true;
        return;
    }
    /* The map's primaries first, in turn: a node that just restarted may
     * still describe the cluster as it was before a failover. */
    for (n = cl->nodes; n != NULL; n = n->next)
        if (n->ready && !n->closing && n->primary)
            count++;
    for (n = cl->nodes; n != NULL && count == 0; n = n->next)
        if (n->ready && !n->closing)
            count++;
    if (count == 0)
        return;  /* a node's READY asks */
    i = cl->refresh_turn++ % count;
    for (n = cl->nodes; n != NULL; n = n->next) {
        bool cand = n->ready && !n->closing;
        if (cand && !n->primary) {
            node_t *m;
            for (m = cl->nodes; m != NULL; m = m->next)
                if (m->ready && !m->closing && m->primary)
                    cand = false;  /* primaries are asked */
        }
        if (cand && i-- == 0) {
            pick = n;
            break;
        }
    }
    if (pick != NULL &&
        saga_redis_command_argv(pick->conn, on_slots, pick, 2, argv, NULL) == 0)
        cl->refreshing = true;
}

static void on_refresh_timer(uv_timer_t *t)
{
    refresh(t->data);
}

/* ------------------------------------------------------------------------
 * Public (to engine/redis/) functions
 * ------------------------------------------------------------------------ */

/* Frees the router once everything it opened is closed. */
static void finish_close(saga_redis_cluster_t *cl)
{
    void (*cb)(void *);
    void *arg;

    if (!cl->closing || cl->open > 0)
        return;
    cb = cl->closed_cb;
    arg = cl->closed_arg;
    saga_redis_url_close(&cl->seed);
    free(cl->client_name);
    free(cl);
    if (cb != NULL)
        cb(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    saga_redis_cluster_t *cl = h->data;

    cl->open--;
    finish_close(cl);
}

/* Allocates the router and starts the seed's connection. NULL when out of
 * memory (nothing started). Owns copies of `seed` and the client name. */
saga_redis_cluster_t *saga__redis_cluster_new(saga_redis_t *facade,
                                              uv_loop_t *loop,
                                              const saga_redis_url_t *seed,
                                              const saga_redis_options_t *opt)
{
    saga_redis_cluster_t *cl = calloc(1, sizeof *cl);
    char name[NAME_LEN];

    if (cl == NULL)
        return NULL;
    cl->facade = facade;
    cl->loop = loop;
    if (opt != NULL)
        cl->opt = *opt;
    cl->command_timeout = cl->opt.command_timeout_ms
                              ? cl->opt.command_timeout_ms
                              : DEFAULT_COMMAND_TIMEOUT_MS;
    if (saga_redis_url_copy(&cl->seed, seed) < 0)
        goto err;
    if (cl->opt.client_name != NULL &&
        (cl->client_name = strdup(cl->opt.client_name)) == NULL)
        goto err;
    cl->opt.client_name = NULL;
    /* The seed is known by "host:port" like the map's nodes, so the map
     * reuses its connection when the URL names a node's address. */
    if (cl->seed.transport == SAGA_REDIS_TCP)
        snprintf(name, sizeof name,
                 strchr(cl->seed.host, ':') != NULL ? "[%s]:%u" : "%s:%u",
                 cl->seed.host, (unsigned)cl->seed.port);
    else
        snprintf(name, sizeof name, "%s", cl->seed.display);
    if (node_start(cl, &cl->seed, name) == NULL)
        goto err;
    uv_timer_init(loop, &cl->refresh_timer);
    uv_timer_init(loop, &cl->wait_timer);
    cl->refresh_timer.data = cl->wait_timer.data = cl;
    cl->open += 2;
    return cl;

err:
    saga_redis_url_close(&cl->seed);
    free(cl->client_name);
    free(cl);
    return NULL;
}

bool saga__redis_cluster_ready(const saga_redis_cluster_t *cl)
{
    return cl != NULL && !cl->closing && cl->ready;
}

int saga__redis_cluster_command(saga_redis_cluster_t *cl,
                                saga_redis_reply_cb cb, void *data,
                                const char *resp, size_t len)
{
    ccmd_t *cc;
    int rc;

    if (!saga__redis_cluster_ready(cl))
        return -ENOTCONN;
    cc = calloc(1, sizeof *cc);
    if (cc == NULL)
        return -ENOMEM;
    cc->resp = malloc(len);
    if (cc->resp == NULL) {
        free(cc);
        return -ENOMEM;
    }
    memcpy(cc->resp, resp, len);
    cc->len = len;
    cc->cl = cl;
    cc->cb = cb;
    cc->data = data;
    cc->started = now_ms(cl);
    if ((rc = classify(cc)) < 0) {
        ccmd_free(cc);
        return rc;
    }
    rc = send_cmd(cl, cc);
    if (rc == -ENOTCONN) {
        /* Ready, but the node of its slot was just lost: wait for it. */
        wait_push(cl, cc, cc->started + cl->command_timeout);
        rc = 0;
    }
    if (rc < 0) {
        ccmd_free(cc);
        return rc;
    }
    cl->pending++;
    return 0;
}

size_t saga__redis_cluster_pending(const saga_redis_cluster_t *cl)
{
    return cl != NULL ? cl->pending : 0;
}

unsigned saga__redis_cluster_primaries(const saga_redis_cluster_t *cl)
{
    return cl != NULL ? cl->nprimaries : 0;
}

unsigned saga__redis_cluster_node(const saga_redis_cluster_t *cl, unsigned i,
                                  char *name, size_t len)
{
    const node_t *n;
    unsigned count = 0, k = 0;

    if (cl == NULL)
        return 0;
    for (n = cl->nodes; n != NULL; n = n->next)
        if (n->listed && !n->closing)
            count++;
    if (count == 0)
        return 0;
    i %= count;
    for (n = cl->nodes; n != NULL; n = n->next)
        if (n->listed && !n->closing && k++ == i) {
            snprintf(name, len, "%s", n->name);
            break;
        }
    return count;
}

int saga__redis_cluster_slot_node(const saga_redis_cluster_t *cl, unsigned slot, char *name,
                                  size_t len)
{
    const node_t *n;

    if (cl == NULL || slot >= SAGA_REDIS_SLOTS || (n = cl->slots[slot]) == NULL ||
        n->closing)
        return -ENOENT;
    snprintf(name, len, "%s", n->name);
    return 0;
}

void saga__redis_cluster_close(saga_redis_cluster_t *cl,
                               void (*done)(void *arg), void *arg)
{
    node_t *n, *next;

    if (cl == NULL || cl->closing)
        return;
    cl->closing = true;
    cl->closed_cb = done;
    cl->closed_arg = arg;
    process_waiting(cl);  /* every waiting command gets NULL */
    for (n = cl->nodes; n != NULL; n = next) {
        next = n->next;
        node_close(n);
    }
    uv_close((uv_handle_t *)&cl->refresh_timer, on_timer_closed);
    uv_close((uv_handle_t *)&cl->wait_timer, on_timer_closed);
}
