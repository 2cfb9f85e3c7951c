/*
 * redis_sub.c -- a subscriber on redis_conn (redis_sub.h).
 *
 * The connection's READY starts a SUBSCRIBE; its confirmation makes the
 * subscriber live. A lost connection (redis_conn reports it, then
 * reconnects with backoff) ends the subscription; hiredis hands the
 * subscription's callback a NULL reply then, which we ignore in favour of
 * the connection's own LOST event.
 */
#include "redis/redis_sub.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

struct saga_redis_sub_s {
    saga_redis_t *conn;
    char *channel;
    saga_redis_sub_event_cb on_event;
    saga_redis_sub_message_cb on_message;
    void *data;
    bool live;
    bool closing;
    void (*closed)(void *);
    void *closed_data;
};

static bool is_str(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(s) &&
           strncasecmp(r->str, s, r->len) == 0;
}

static void on_reply(saga_redis_t *conn, redisReply *reply, void *data) {
    saga_redis_sub_t *s = data;
    (void)conn;
    if (reply == NULL || s->closing)
        return; /* the connection's LOST reports it */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (is_str(reply->element[0], "subscribe")) {
        if (!s->live) {
            s->live = true;
            s->on_event(s, SAGA_REDIS_SUB_SUBSCRIBED, NULL, s->data);
        }
    } else if (is_str(reply->element[0], "message") &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        s->on_message(s, reply->element[2]->str, reply->element[2]->len, s->data);
    }
}

static void on_conn_event(saga_redis_t *conn, saga_redis_event_t ev, const char *errstr,
                          void *data) {
    saga_redis_sub_t *s = data;
    if (s->closing)
        return;
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
        break;
    case SAGA_REDIS_CONNECT_FAILED:
        s->on_event(s, SAGA_REDIS_SUB_CONNECT_FAILED, errstr, s->data);
        break;
    }
}

saga_redis_sub_t *saga_redis_sub_new(uv_loop_t *loop, const saga_redis_url_t *url,
                                     const saga_redis_options_t *opt, const char *channel,
                                     saga_redis_sub_event_cb on_event,
                                     saga_redis_sub_message_cb on_message, void *data) {
    saga_redis_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    saga_redis_options_t o;
    if (opt != NULL)
        o = *opt;
    else
        memset(&o, 0, sizeof(o));
    o.retry_first_connect = true;
    /* A subscription lives on the node it was made on: never turned into
     * a cluster router (which carries no pub/sub). */
    o.single_node = true;
    s->on_event = on_event;
    s->on_message = on_message;
    s->data = data;
    if ((s->channel = strdup(channel)) == NULL)
        goto err;
    if ((s->conn = saga_redis_new(loop, url, &o, on_conn_event, s)) == NULL)
        goto err;
    if (saga_redis_start(s->conn) != 0) {
        saga_redis_close(s->conn, NULL, NULL); /* never ran: freed without callbacks */
        goto err;
    }
    return s;
err:
    free(s->channel);
    free(s);
    return NULL;
}

bool saga_redis_sub_live(const saga_redis_sub_t *s) { return s != NULL && s->live; }

static void on_conn_closed(void *data) {
    saga_redis_sub_t *s = data;
    void (*closed)(void *) = s->closed;
    void *cd = s->closed_data;
    free(s->channel);
    free(s);
    if (closed != NULL)
        closed(cd);
}

void saga_redis_sub_close(saga_redis_sub_t *s, void (*closed)(void *data), void *data) {
    if (s == NULL || s->closing)
        return;
    s->closing = true;
    s->live = false;
    s->closed = closed;
    s->closed_data = data;
    saga_redis_close(s->conn, on_conn_closed, s);
}
