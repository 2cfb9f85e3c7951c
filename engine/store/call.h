/*
 * call.h -- what the store's command modules (intake.c, lease.c) share:
 * the connection their commands go out on, and the status of a reply
 * before it is decoded.
 *
 * Internal to engine/store/ (names saga__...): other layers call the typed
 * operations of intake.h and lease.h, never these.
 */
#ifndef SAGA_STORE_CALL_H
#define SAGA_STORE_CALL_H

#include <stdbool.h>

#include <hiredis/hiredis.h>

#include "redis/redis_conn.h"
#include "saga/store.h"

/* The connection the worker's coordination commands use: the Redis store's
 * first one, so that they reach Redis in the order they were made and are
 * answered in that order. NULL when `s` is not a Redis store. */
saga_redis_t *saga__call_conn(saga_store_t *s);

/* The status of a reply before its value is decoded: 0 for any reply that
 * is not an error; SAGA_EUNAVAILABLE for no reply (NULL: the connection was
 * lost, timed out or closed, and the outcome is unknown); for an error
 * reply the code its prefix names (SAGAFENCED, SAGAOWNED -> SAGA_EFENCED;
 * SAGANOTFOUND -> SAGA_ENOTFOUND; SAGAEXISTS -> SAGA_EEXIST; SAGACONFLICT
 * -> SAGA_ECONFLICT; SAGAFINISHED, SAGAUNMANAGED -> SAGA_ESTATE), else
 * SAGA_ESTORE. *why is set to what went wrong (the error's text, valid
 * while the reply is), or NULL for status 0. */
int saga__call_status(const redisReply *r, const char **why);

/* True for an error reply by which the server says it cannot answer now
 * but will (LOADING, BUSY, TRYAGAIN, READONLY, MASTERDOWN, CLUSTERDOWN): the
 * command is sent again later, the error is not the caller's. */
bool saga__call_transient(const redisReply *r);

/* The status of a failure to send: -ENOTCONN (not connected) becomes
 * SAGA_EUNAVAILABLE; other codes are returned as they are. */
int saga__call_send_status(int rc);

#endif
