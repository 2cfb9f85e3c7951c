/*
 * api.h -- the /v1 API of `saga serve` (docs/api.md): start sagas
 * idempotently, read their state (with long-polls), list them, read their
 * history, cancel and retry them, read the served definitions; and the
 * health checks. Every route is a handler of http_server.h; every Redis
 * operation goes through the store (store/operator.h, saga/store.h).
 */
#ifndef SAGA_HTTP_API_H
#define SAGA_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "http/http_server.h"
#include "saga/store.h"

typedef struct saga_api_s saga_api_t;

typedef struct saga_api_options_s {
    saga_store_t *store;     /* a Redis store, ready; borrowed */
    const char *who;         /* recorded as the author of cancel/retry
                                requests; default "http" */
    uint64_t retention_ms;   /* how long a submitted id is remembered; 0: 7 days */
} saga_api_options_t;

/* Creates the API on `loop`. Returns NULL when out of memory. */
saga_api_t *saga_api_new(uv_loop_t *loop, const saga_api_options_t *opt);

/* The routes to give saga_http_server_new(); valid while the API lives. */
const saga_http_route_t *saga_api_routes(saga_api_t *api, size_t *n);

/* The OpenAPI 3.1 document of the routes (docs/openapi.json, compiled in),
 * `len` bytes, static. */
const char *saga_api_openapi(size_t *len);

/* Lets the /metrics route append the server's own metrics. */
void saga_api_set_server(saga_api_t *api, saga_http_server_t *server);

/* Stops: long-polls are answered now with the saga's current state; new
 * requests are still answered (the server decides when to stop taking
 * them). Requests in flight in the store finish on their own, unless
 * Redis is away now: then they are abandoned at once (saga_api_abandon),
 * since they would wait until it is back. */
void saga_api_stop(saga_api_t *api);

/* For a shutdown that cannot wait for Redis any longer: answers every
 * request still waiting on the store (long-polls reading their state
 * included) with 503 store_unavailable, and every later request that needs
 * the store too. The store's late answers are dropped; the operations stay
 * pending (saga_api_pending()) until the store answers or is closed, which
 * runs their callbacks: close the store, then free the API. Returns the
 * number of requests answered. */
size_t saga_api_abandon(saga_api_t *api);

/* True once saga_api_abandon() ran (by itself or from saga_api_stop()). */
bool saga_api_abandoned(const saga_api_t *api);

/* True while Redis pushes settlements of sagas to the API (its
 * subscription is live): long-polls are answered as sagas settle. */
bool saga_api_subscribed(const saga_api_t *api);

/* Requests the API is waiting on (store calls and long-polls). */
size_t saga_api_pending(const saga_api_t *api);

/* Frees the API once nothing is pending (saga_api_pending() == 0), after
 * the server stopped: when the API was abandoned, close its store first
 * (which ends what is pending). `done` runs when its handles are closed. */
void saga_api_free(saga_api_t *api, void (*done)(void *data), void *data);

#endif
