/*
 * redis_sub.c -- a subscriber on redis_conn (redis_sub.h).
 *
 * The connection's READY starts a SUBSCRIBE; its confirmation makes the
 * subscriber live. A lost connection (redis_conn reports it, then
 * reconnects with backoff) ends the subscription; hiredis hands the
 * subscription's callback a NULL reply then, which we ignore in favour of
 * the connection's own LOST event. With a cluster client to ask, a lost
 * node is left instead: its connection is closed, and a timer (backoff)
 * opens one to the next node the cluster's map lists. The subscriber is
 * freed once every connection it closed and its timer are closed.
 */
#include "redis/redis_sub.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

/* Moving to another node of a cluster: the first try this soon after the
 * loss, doubled per failed try up to the connection's reconnect_max_ms. */
#define MOVE_FIRST_MS 50

struct saga_redis_sub_s {
    uv_loop_t *loop;
    saga_redis_t *conn;         /* NULL while moving to another node */
    saga_redis_t *cluster;      /* the store's cluster client, or NULL */
    saga_redis_url_t url;       /* where conn is (or was) connected */
    saga_redis_options_t opt;
    char *client_name;
    char *channel;
    saga_redis_sub_event_cb on_event;
    saga_redis_sub_message_cb on_message;
    void *data;
    uv_timer_t timer;           /* the next move */
    unsigned next;              /* the next node of the cluster's map to try */
    uint64_t backoff;
    unsigned open;              /* the timer + connections not closed yet */
    bool live;
    bool closing;
    void (*closed)(void *);
    void *closed_data;
};

static void on_conn_event(saga_redis_t *conn, saga_redis_event_t ev, const char *errstr,
                          void *data);

static bool is_str(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) &&
           strncasecmp(r->str, s, r->len) == 0;
}

static void on_reply(saga_redis_t *conn, redisReply *reply, void *data) {
    saga_redis_sub_t *s = data;
    if (reply == NULL || s->closing || conn != s->conn)
        return; /* the connection's LOST reports it (or it was left) */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (is_str(reply->element[0], "subscribe")) {
        if (!s->live) {
            s->live = true;
            s->backoff = 0;
            s->on_event(s, SAGA_REDIS_SUB_SUBSCRIBED, NULL, s->data);
        }
    } else if (is_str(reply->element[0], "message") &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        s->on_message(s, reply->element[2]->str, reply->element[2]->len, s->data);
    }
}

static void maybe_free(saga_redis_sub_t *s) {
    if (!s->closing || s->open > 0)
        return;
    void (*closed)(void *) = s->closed;
    void *cd = s->closed_data;
    saga_redis_url_close(&s->url);
    free(s->client_name);
    free(s->channel);
    free(s);
    if (closed != NULL)
        closed(cd);
}

static void on_conn_closed(void *data) {
    saga_redis_sub_t *s = data;
    s->open--;
    maybe_free(s);
}

static void on_timer_closed(uv_handle_t *h) {
    saga_redis_sub_t *s = h->data;
    s->open--;
    maybe_free(s);
}

/* Opens the connection to s->url. 0 or -ENOMEM / the start's error. */
static int connect_url(saga_redis_sub_t *s) {
    saga_redis_t *c = saga_redis_new(s->loop, &s->url, &s->opt, on_conn_event, s);
    if (c == NULL)
        return -ENOMEM;
    int rc = saga_redis_start(c);
    if (rc != 0) {
        saga_redis_close(c, NULL, NULL); /* never ran: freed without callbacks */
        return rc < 0 ? rc : -ENOTCONN;
    }
    s->conn = c;
    s->open++;
    return 0;
}

static bool same_node(const saga_redis_url_t *a, const saga_redis_url_t *b) {
    return a->transport == SAGA_REDIS_TCP && b->transport == SAGA_REDIS_TCP &&
           a->port == b->port && a->host != NULL && b->host != NULL &&
           strcmp(a->host, b->host) == 0;
}

static void on_move(uv_timer_t *t);

static void schedule_move(saga_redis_sub_t *s) {
    uint64_t cap = s->opt.reconnect_max_ms > 0 ? (uint64_t)s->opt.reconnect_max_ms : 2000;
    s->backoff = s->backoff == 0 ? MOVE_FIRST_MS : s->backoff * 2;
    if (s->backoff > cap)
        s->backoff = cap;
    uv_timer_start(&s->timer, on_move, s->backoff, 0);
}

/* The timer: connect to the next node of the cluster's map (not the one
 * just lost when there is another), or to the same URL when the map is
 * not known. */
static void on_move(uv_timer_t *t) {
    saga_redis_sub_t *s = t->data;
    if (s->closing || s->conn != NULL)
        return;
    saga_redis_url_t u;
    bool found = false;
    for (unsigned k = 0; k < 16 && !found; k++) {
        if (saga_redis_cluster_node_url(s->cluster, s->next++, &u) != 0)
            break;
        if (!same_node(&u, &s->url) || k == 15)
            found = true;
        else
            saga_redis_url_close(&u);
    }
    if (found) {
        saga_redis_url_close(&s->url);
        s->url = u; /* moved in */
    }
    int rc = connect_url(s);
    if (rc != 0) {
        s->on_event(s, SAGA_REDIS_SUB_CONNECT_FAILED, strerror(-rc), s->data);
        if (!s->closing && s->conn == NULL)
            schedule_move(s);
    }
}

/* A cluster's node was lost: drop its connection and try another node. */
static void move_off(saga_redis_sub_t *s) {
    saga_redis_t *c = s->conn;
    s->conn = NULL;
    saga_redis_close(c, on_conn_closed, s);
    schedule_move(s);
}

static void on_conn_event(saga_redis_t *conn, saga_redis_event_t ev, const char *errstr,
                          void *data) {
    saga_redis_sub_t *s = data;
    if (s->closing || conn != s->conn)
        return;
    bool move = s->cluster != NULL && saga_redis_is_cluster(s->cluster);
    switch (ev) {
    case SAGA_REDIS_READY: {
        int rc = saga_redis_subscribe(conn, s->channel, on_reply, s);
        if (rc != 0) /* out of memory: the next reconnection tries again */
            saga_warn("redis %s: SUBSCRIBE %s: %s", saga_redis_display(conn), s->channel,
                      strerror(-rc));
        break;
    }
    case SAGA_REDIS_LOST:
        if (s->live) {
            s->live = false;
            s->on_event(s, SAGA_REDIS_SUB_LOST, errstr, s->data);
        } else {
            /* lost before the confirmation: the attempt to subscribe failed
             * (the reason, e.g. Redis's NOPERM, is in errstr) */
            s->on_event(s, SAGA_REDIS_SUB_CONNECT_FAILED, errstr, s->data);
        }
        if (move && !s->closing && s->conn == conn)
            move_off(s);
        break;
    case SAGA_REDIS_CONNECT_FAILED:
        s->on_event(s, SAGA_REDIS_SUB_CONNECT_FAILED, errstr, s->data);
        if (move && !s->closing && s->conn == conn)
            move_off(s);
        break;
    }
}

saga_redis_sub_t *saga_redis_sub_new(uv_loop_t *loop, const saga_redis_url_t *url,
                                     const saga_redis_options_t *opt, saga_redis_t *cluster,
                                     const char *channel, saga_redis_sub_event_cb on_event,
                                     saga_redis_sub_message_cb on_message, void *data) {
    saga_redis_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (opt != NULL)
        s->opt = *opt;
    s->opt.retry_first_connect = true;
    /* A subscription lives on the node it was made on: never turned into
     * a cluster router (which carries no pub/sub). */
    s->opt.single_node = true;
    s->loop = loop;
    s->cluster = cluster;
    s->on_event = on_event;
    s->on_message = on_message;
    s->data = data;
    if (s->opt.client_name != NULL &&
        (s->client_name = strdup(s->opt.client_name)) == NULL)
        goto err;
    s->opt.client_name = s->client_name;
    if ((s->channel = strdup(channel)) == NULL)
        goto err;
    if (saga_redis_url_copy(&s->url, url) != 0)
        goto err;
    if (connect_url(s) != 0) {
        saga_redis_url_close(&s->url);
        goto err;
    }
    uv_timer_init(loop, &s->timer); /* cannot fail */
    s->timer.data = s;
    s->open++;
    return s;
err:
    free(s->client_name);
    free(s->channel);
    free(s);
    return NULL;
}

bool saga_redis_sub_live(const saga_redis_sub_t *s) { return s != NULL && s->live; }

void saga_redis_sub_close(saga_redis_sub_t *s, void (*closed)(void *data), void *data) {
    if (s == NULL || s->closing)
        return;
    s->closing = true;
    s->live = false;
    s->closed = closed;
    s->closed_data = data;
    if (s->conn != NULL) {
        saga_redis_t *c = s->conn;
        s->conn = NULL;
        saga_redis_close(c, on_conn_closed, s);
    }
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
