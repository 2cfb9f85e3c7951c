/*
 * settled.c -- settlements of sagas pushed by Redis (settled.h).
 */
#include "store/settled.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_sub.h"
#include "saga/state.h"
#include "store/keys.h"
#include "store/store_redis.h"
#include "util/log.h"

struct saga_settled_s {
    saga_redis_sub_t *sub;
    saga_settled_cb cb;
    void *data;
    bool warned;        /* a failure was logged since the last subscription */
    void (*done)(void *);
    void *done_data;
};

static void on_event(saga_redis_sub_t *s, saga_redis_sub_event_t ev, const char *errstr,
                     void *data) {
    saga_settled_t *w = data;
    (void)s;
    switch (ev) {
    case SAGA_REDIS_SUB_SUBSCRIBED:
        if (w->warned)
            saga_info("settled: subscribed to %s again", SAGA_CHANNEL_SETTLED);
        w->warned = false;
        w->cb(NULL, w->data);
        break;
    case SAGA_REDIS_SUB_LOST:
    case SAGA_REDIS_SUB_CONNECT_FAILED:
        /* once per outage: the store's own connections report the rest */
        if (!w->warned)
            saga_warn("settled: not subscribed to %s (%s); waiting sagas are read again once "
                      "it is back", SAGA_CHANNEL_SETTLED, errstr ? errstr : "connection lost");
        w->warned = true;
        break;
    }
}

static void on_message(saga_redis_sub_t *s, const char *msg, size_t len, void *data) {
    saga_settled_t *w = data;
    char id[SAGA_ID_MAX + 1];
    (void)s;
    if (len == 0 || len > SAGA_ID_MAX || memchr(msg, '\0', len) != NULL)
        return; /* not ours: no saga has that id */
    memcpy(id, msg, len);
    id[len] = '\0';
    if (saga_id_valid(id))
        w->cb(id, w->data);
}

int saga_settled_new(uv_loop_t *loop, saga_store_t *store, saga_settled_cb cb, void *data,
                     saga_settled_t **out) {
    *out = NULL;
    saga_redis_t *conn = store != NULL ? saga_store_redis_conn(store) : NULL;
    if (conn == NULL)
        return -ENOTSUP;
    saga_settled_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->cb = cb;
    w->data = data;
    saga_redis_options_t opt;
    const saga_redis_url_t *url = saga_redis_url(conn, &opt);
    opt.client_name = "saga-settled";
    /* on Redis Cluster every node serves the channel (saga.lua publishes
     * with PUBLISH, forwarded over the cluster bus): the subscriber moves
     * to another node of the store's map when its node is lost */
    w->sub = saga_redis_sub_new(loop, url, &opt, conn, SAGA_CHANNEL_SETTLED, on_event, on_message,
                                w);
    if (w->sub == NULL) {
        free(w);
        return -ENOMEM;
    }
    *out = w;
    return 0;
}

bool saga_settled_live(const saga_settled_t *w) {
    return w != NULL && saga_redis_sub_live(w->sub);
}

static void on_closed(void *data) {
    saga_settled_t *w = data;
    void (*done)(void *) = w->done;
    void *dd = w->done_data;
    free(w);
    if (done != NULL)
        done(dd);
}

void saga_settled_free(saga_settled_t *w, void (*done)(void *data), void *data) {
    if (w == NULL) {
        if (done != NULL)
            done(data);
        return;
    }
    w->done = done;
    w->done_data = data;
    saga_redis_sub_close(w->sub, on_closed, w);
}
