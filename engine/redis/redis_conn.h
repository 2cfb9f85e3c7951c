/*
 * redis_conn.h -- one asynchronous Redis connection on a libuv loop.
 *
 * Built on hiredis 0.14.1's async API with our own libuv adapter
 * (redis_uv.c: Debian's adapter loses a refused connection). It adds what
 * hiredis 0.14 lacks: a connect timeout, a command timeout, host names
 * resolved with uv_getaddrinfo (never a blocking resolver on the loop),
 * AUTH (ACL user + password) and SELECT on every connection, and
 * reconnection with capped exponential backoff.
 *
 * Commands are pipelined: everything issued before the loop next writes goes
 * out in one write. Replies arrive in order.
 *
 * Notes on the contract (see redis_conn.c for the details):
 *  - The process must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN) in main):
 *    hiredis 0.14 writes with write(2), and a write to a server that just
 *    died would otherwise kill the process instead of reporting LOST.
 *  - CONNECT_FAILED fires once per failed attempt (each retry too). A host
 *    name's addresses are tried in turn within one attempt; the connect
 *    timeout covers the whole attempt (resolution, connect, handshake).
 *  - The handshake ends with a PING, so a server still loading its data
 *    (-LOADING) is a failed attempt, not READY.
 *  - Commands get exactly one reply each; pub/sub only through
 *    saga_redis_subscribe() (redis_sub.h builds a subscriber on it), on a
 *    connection that then carries nothing else. No MONITOR.
 *  - Redis Cluster: the handshake asks `INFO cluster`; on a node with
 *    cluster_enabled:1 the object becomes a cluster client (redis_cluster.h:
 *    the map, one connection per node, MOVED/ASK/TRYAGAIN), with the same
 *    contract. READY then means every slot's primary is connected, LOST
 *    that one of them is not; a cluster client keeps retrying whatever
 *    retry_first_connect says once the first node has answered.
 *  - The event's `errstr` is only valid during the callback.
 *  - Extra return codes: saga_redis_start() -EALREADY (already started) or
 *    -ECANCELED (after close); saga_redis_command() -EINVAL for a bad
 *    format; saga_redis_command_argv() -EINVAL for argc < 1.
 */
#ifndef SAGA_REDIS_CONN_H
#define SAGA_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis/redis_url.h"

typedef struct saga_redis_s saga_redis_t;

typedef struct saga_redis_options_s {
    uint64_t connect_timeout_ms;  /* per attempt, AUTH/SELECT included; 0: 2000 */
    uint64_t command_timeout_ms;  /* oldest unanswered command older than
                                     this: the connection is dropped; 0: 10000 */
    uint64_t reconnect_min_ms;    /* first reconnect delay; 0: 50 */
    uint64_t reconnect_max_ms;    /* backoff cap; 0: 2000 */
    bool retry_first_connect;     /* false: a failed first connection is
                                     reported and not retried */
    const char *client_name;      /* CLIENT SETNAME on connect, or NULL */
    bool single_node;             /* never become a cluster client, even on
                                     a cluster node (the router's own
                                     connections) */
} saga_redis_options_t;

/* Connection events. */
typedef enum saga_redis_event_e {
    SAGA_REDIS_READY = 0,        /* connected, authenticated, db selected */
    SAGA_REDIS_LOST = 1,         /* a ready connection was lost; reconnecting */
    SAGA_REDIS_CONNECT_FAILED = 2 /* an attempt failed; `errstr` says why. If
                                     the first attempt fails and
                                     retry_first_connect is false, no further
                                     attempt is made. */
} saga_redis_event_t;

typedef void (*saga_redis_event_cb)(saga_redis_t *r, saga_redis_event_t ev,
                                    const char *errstr, void *data);

/* Reply callback. `reply` is NULL when the outcome is unknown: the
 * connection was lost or timed out before the reply, or the connection is
 * being closed. The reply is freed when the callback returns. */
typedef void (*saga_redis_reply_cb)(saga_redis_t *r, redisReply *reply,
                                    void *data);

/* Creates a connection object (does not connect yet). `url` is copied.
 * Returns NULL on allocation failure. */
saga_redis_t *saga_redis_new(uv_loop_t *loop, const saga_redis_url_t *url,
                             const saga_redis_options_t *opt,
                             saga_redis_event_cb on_event, void *data);

/* Starts connecting. Returns 0, or a negative errno (then no event fires).
 * on_event(READY) follows once the connection is usable. */
int saga_redis_start(saga_redis_t *r);

/* True between READY and the next LOST. */
bool saga_redis_ready(const saga_redis_t *r);

/* Sends one command. Returns 0 and calls `cb` exactly once later (never
 * from inside this call), or returns -ENOTCONN when not ready / -ENOMEM,
 * and then never calls `cb`. `cb` may be NULL (fire and forget). */
int saga_redis_command_argv(saga_redis_t *r, saga_redis_reply_cb cb,
                            void *data, int argc, const char **argv,
                            const size_t *argvlen);

/* The same for a command already in the protocol's form (RESP: "*N\r\n"
 * then "$LEN\r\nBYTES\r\n" per argument), which is copied: for callers
 * that format many arguments per command faster than hiredis's generic
 * formatter. Not checked: a malformed command desynchronises the
 * connection. */
int saga_redis_command_resp(saga_redis_t *r, saga_redis_reply_cb cb,
                            void *data, const char *resp, size_t len);

/* Printf-style convenience (hiredis format: %s, %b, %d...). Same contract. */
int saga_redis_command(saga_redis_t *r, saga_redis_reply_cb cb, void *data,
                       const char *fmt, ...);

/* Subscribes to `channel` (SUBSCRIBE). `cb` runs with the confirmation
 * (["subscribe", channel, count]), then with each message (["message",
 * channel, payload]), and once with a NULL reply when the connection is
 * lost or closed: the subscription ends with its connection (subscribe
 * again after the next READY). `data` must stay valid until then. From
 * this call on the connection is a subscriber's: send it no other command
 * (Redis answers only (UN)SUBSCRIBE and PING there). Subscribe to a
 * channel once per connection. A refusal (NOPERM: an ACL user without the
 * channel) makes hiredis 0.14 drop the connection: LOST, with Redis's
 * error in `errstr`, and `cb` gets its NULL reply. Returns
 * 0, or -ENOTCONN when not ready / -ENOMEM, and then `cb` never runs. */
int saga_redis_subscribe(saga_redis_t *r, const char *channel,
                         saga_redis_reply_cb cb, void *data);

/* The URL `r` connects to and, in *opt (may be NULL), its options with the
 * defaults filled in: to open another connection like it. Both owned by
 * `r` (opt->client_name points into it). */
const saga_redis_url_t *saga_redis_url(const saga_redis_t *r,
                                       saga_redis_options_t *opt);

/* Number of commands sent and not yet answered. */
size_t saga_redis_pending(const saga_redis_t *r);

/* The display form of the URL (no password), for messages. */
const char *saga_redis_display(const saga_redis_t *r);

/* True once the server turned out to be a Redis Cluster node (after the
 * first handshake; false before it and for a single Redis). */
bool saga_redis_is_cluster(const saga_redis_t *r);

/* For a cluster client: the URL of node `i` (modulo the number of nodes
 * its current map lists, primaries and replicas) into `out`, with r's
 * credentials; free it with saga_redis_url_close(). To open a connection
 * of its own to another node of the same cluster (a subscriber moving off
 * a lost node). Returns 0, -ENOENT when `r` is no cluster client or has no
 * map yet, -ENOMEM (then `out` holds nothing to free). */
int saga_redis_cluster_node_url(const saga_redis_t *r, unsigned i,
                                saga_redis_url_t *out);

/* For a cluster client: the URL of the primary that serves `slot` in its
 * current map, with r's credentials (saga_redis_url_close() it). To read
 * one slot's keys on a connection of its own, to that node only (open it
 * with single_node). Returns 0, -ENOENT when `r` is no cluster client or
 * no node serves the slot, -ENOMEM. */
int saga_redis_cluster_slot_url(const saga_redis_t *r, unsigned slot, saga_redis_url_t *out);

/* For a cluster client: the URL of node `name` ("host:port", "[ip6]:port",
 * or the "host:port" of a MOVED reply, IPv6 unbracketed) with r's
 * credentials (saga_redis_url_close() it). Returns 0, -EINVAL when `name`
 * is not host:port, -ENOENT when `r` is no cluster client, -ENOMEM. */
int saga_redis_cluster_name_url(const saga_redis_t *r, const char *name,
                                saga_redis_url_t *out);

/* The Redis Cluster hash slot (0..16383) of a key: CRC16 of its hash tag
 * (the text between the first '{' and the next '}', when not empty) or of
 * the whole key. */
unsigned saga_redis_key_slot(const char *key, size_t len);

/* Closes the connection: pending callbacks run with a NULL reply, no event
 * fires any more, and once every handle is closed `closed_cb` (if any) runs
 * and the object is freed. Safe to call from any callback (deferred). */
void saga_redis_close(saga_redis_t *r,
                      void (*closed_cb)(void *data), void *data);

#endif
