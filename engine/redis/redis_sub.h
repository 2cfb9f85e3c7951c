/*
 * redis_sub.h -- a subscriber: one Redis connection that stays SUBSCRIBEd
 * to one channel on a libuv loop.
 *
 * Built on redis_conn (its own connection: connect timeout, AUTH/SELECT,
 * reconnection with capped backoff). After every (re)connection it
 * subscribes again and reports SUBSCRIBED once Redis has confirmed: what
 * was published while it was not subscribed is lost (pub/sub keeps
 * nothing), so the owner re-reads whatever it waits for on each
 * SUBSCRIBED. No saga knowledge.
 *
 * On Redis Cluster (given the store's cluster client) a plain channel is
 * served by every node: PUBLISH is forwarded to every node over the
 * cluster bus. The subscriber then keeps one connection to one node, and
 * when that node is lost (or cannot be reached) it moves to the next node
 * the cluster client's map lists, with backoff, instead of waiting for
 * the lost one to come back.
 */
#ifndef SAGA_REDIS_SUB_H
#define SAGA_REDIS_SUB_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "redis/redis_conn.h"
#include "redis/redis_url.h"

typedef struct saga_redis_sub_s saga_redis_sub_t;

typedef enum saga_redis_sub_event_e {
    SAGA_REDIS_SUB_SUBSCRIBED = 0, /* subscribed (again): messages flow */
    SAGA_REDIS_SUB_LOST = 1,       /* the subscription ended with its
                                      connection; reconnecting */
    SAGA_REDIS_SUB_CONNECT_FAILED = 2 /* an attempt failed (`errstr`); the
                                      next one follows with backoff. Also a
                                      SUBSCRIBE refused (NOPERM: hiredis
                                      drops the connection; it is retried) */
} saga_redis_sub_event_t;

typedef void (*saga_redis_sub_event_cb)(saga_redis_sub_t *s, saga_redis_sub_event_t ev,
                                        const char *errstr, void *data);

/* A message published on the channel: `len` bytes (not NUL-terminated),
 * valid during the call. */
typedef void (*saga_redis_sub_message_cb)(saga_redis_sub_t *s, const char *msg, size_t len,
                                          void *data);

/* Creates a subscriber of `channel` (copied) on `url` with `opt` (copied;
 * retry_first_connect is forced on: it keeps trying until closed) and
 * starts connecting. `cluster` (may be NULL; borrowed, must outlive the
 * subscriber): a connection that, once it turns out to be a cluster
 * client, names the nodes to move to when the subscriber's node is lost;
 * NULL or a single Redis: the subscriber reconnects to `url`. Events and messages run from the loop, never inside
 * this call. Returns NULL when out of memory or when the connection cannot
 * start (then nothing runs and nothing is left to free). */
saga_redis_sub_t *saga_redis_sub_new(uv_loop_t *loop, const saga_redis_url_t *url,
                                     const saga_redis_options_t *opt, saga_redis_t *cluster,
                                     const char *channel,
                                     saga_redis_sub_event_cb on_event,
                                     saga_redis_sub_message_cb on_message, void *data);

/* True between SUBSCRIBED and the next LOST. */
bool saga_redis_sub_live(const saga_redis_sub_t *s);

/* Closes: no event or message runs any more; `closed` (may be NULL) runs
 * from the loop once the connection is closed, and the subscriber is freed.
 * Accepts NULL. Safe from inside its own callbacks. */
void saga_redis_sub_close(saga_redis_sub_t *s, void (*closed)(void *data), void *data);

#endif
