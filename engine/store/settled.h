/*
 * settled.h -- "this saga has settled": a push from Redis when a saga
 * reaches completed, compensated or stuck, for those waiting on it
 * (`saga serve`'s long-polls), so that nobody polls.
 *
 * The write that settles a saga publishes its id (saga.lua, saga_write
 * with the SAGA_WRITE_SETTLED flag) on SAGA_CHANNEL_SETTLED; a subscriber
 * (redis/redis_sub.h, a connection of its own) hands each id to the
 * caller. Pub/sub keeps nothing: a message published while the subscriber
 * is not subscribed (Redis away, reconnecting) is lost. The caller is told
 * each time the subscription (re)starts and must then read again the
 * state of everything it waits for. Layers above the store see sagas and
 * ids here, never channels or commands.
 */
#ifndef SAGA_STORE_SETTLED_H
#define SAGA_STORE_SETTLED_H

#include <stdbool.h>

#include <uv.h>

#include "saga/store.h"

typedef struct saga_settled_s saga_settled_t;

/* `id`: a saga that has just settled (a valid id, NUL-terminated, valid
 * during the call). `id` NULL: the subscription has just (re)started;
 * settlements may have been missed before it: read again. */
typedef void (*saga_settled_cb)(const char *id, void *data);

/* Subscribes to the settlements of the sagas of `store` (a Redis store,
 * borrowed: it must outlive the subscription) on a connection of its own,
 * with the store's URL and options; `cb` runs from the loop. *out gets the
 * subscription. On Redis Cluster the subscription is on one node (every
 * node serves the channel) and moves to another node of the store's map
 * when that one is lost. Returns 0, -ENOTSUP for no store or one that is
 * not a Redis store, or -ENOMEM; on error *out is NULL and `cb` never
 * runs. */
int saga_settled_new(uv_loop_t *loop, saga_store_t *store, saga_settled_cb cb, void *data,
                     saga_settled_t **out);

/* True while subscribed: a settlement published now is delivered. */
bool saga_settled_live(const saga_settled_t *w);

/* Ends the subscription: `cb` never runs again; `done` (may be NULL) runs
 * from the loop when its connection is closed. Accepts NULL (then `done`
 * runs at once). */
void saga_settled_free(saga_settled_t *w, void (*done)(void *data), void *data);

#endif
