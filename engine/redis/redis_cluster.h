/*
 * redis_cluster.h -- Redis Cluster routing behind a saga_redis_t.
 *
 * A connection made with saga_redis_new() asks its server `INFO cluster`
 * during the handshake; a node that answers `cluster_enabled:1` turns the
 * connection into a cluster client: the router below (redis_cluster.c)
 * takes over, and every function of redis_conn.h keeps its contract. It
 * discovers the topology with CLUSTER SLOTS, keeps one pipelined
 * connection (redis_conn.c, single-node mode) to every node the map lists
 * and sends each command to the primary of its key's slot. It follows
 * MOVED (fixes the slot, refreshes the map, resends) and ASK (ASKING and a
 * resend to the importing node, no map change), sends TRYAGAIN,
 * CLUSTERDOWN, LOADING and MASTERDOWN again with backoff (then hands the
 * last error to the caller), and when a primary is lost refreshes the map
 * from the other nodes until the promoted replica serves its slots.
 *
 * Readiness of the cluster client: READY once the map covers every slot
 * and every primary's connection is up; LOST when a primary's connection
 * is (its commands in flight get NULL, as on a single connection); READY
 * again once the refreshed map is served. Commands made while not ready
 * get -ENOTCONN, as on a single connection.
 *
 * Which node a command goes to:
 *  - by its first key (argv[1]; FCALL/FCALL_RO/EVAL/EVALSHA: the first of
 *    KEYS when numkeys > 0; XREAD/XREADGROUP: the first key after STREAMS;
 *    XGROUP, XINFO, OBJECT, MEMORY USAGE: argv[2], after the subcommand).
 *    Commands whose keys span slots get the server's CROSSSLOT error; a
 *    command whose key is elsewhere (BITOP) is set right by one MOVED.
 *  - to every primary: FUNCTION (LOAD, DELETE, FLUSH, RESTORE), SCRIPT,
 *    and FCALL/FCALL_RO with no key. The caller gets one reply: the first
 *    error if any primary failed, else the common reply, or the error
 *    "CLUSTERMIXED ..." when the primaries answered differently.
 *  - WAIT: to every primary (the writes of a pipeline may have gone to
 *    any of them); the answer is the smallest count any primary gave.
 *  - anything else without a key (INFO, CONFIG, PING, CLUSTER, TIME, ...):
 *    to one primary (the one serving slot 0).
 *
 * Internal to engine/redis/ (saga__ names) except saga_redis_key_slot()
 * and saga_redis_is_cluster(), declared in redis_conn.h.
 */
#ifndef SAGA_REDIS_CLUSTER_H
#define SAGA_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis/redis_conn.h"

#define SAGA_REDIS_SLOTS 16384

typedef struct saga_redis_cluster_s saga_redis_cluster_t;

/* Creates the router of `facade`, seeded by `seed` (copied: the node the
 * URL names), and starts connecting. Events are reported through
 * saga__redis_facade_event(); replies go to each command's callback with
 * `facade` as their connection. Returns NULL when out of memory (nothing
 * started then). */
saga_redis_cluster_t *saga__redis_cluster_new(saga_redis_t *facade,
                                              uv_loop_t *loop,
                                              const saga_redis_url_t *seed,
                                              const saga_redis_options_t *opt);

/* True while the map covers every slot and every primary is connected. */
bool saga__redis_cluster_ready(const saga_redis_cluster_t *cl);

/* Routes one command already in RESP form (copied). Same contract as
 * saga_redis_command_resp(): 0 and `cb` runs once later, or a negative
 * errno (-ENOTCONN, -ENOMEM, -EINVAL for a malformed command) and `cb`
 * never runs. */
int saga__redis_cluster_command(saga_redis_cluster_t *cl,
                                saga_redis_reply_cb cb, void *data,
                                const char *resp, size_t len);

/* Commands accepted and not answered yet. */
size_t saga__redis_cluster_pending(const saga_redis_cluster_t *cl);

/* Number of primaries in the current map (0 before the first one). */
unsigned saga__redis_cluster_primaries(const saga_redis_cluster_t *cl);

/* The name ("ip:port", "[ip6]:port") of node `i` modulo the number of
 * nodes the current map lists (primaries and replicas), into `name` (room
 * for `len`). Returns how many nodes it lists (0 before the first map:
 * then `name` is untouched). */
unsigned saga__redis_cluster_node(const saga_redis_cluster_t *cl, unsigned i,
                                  char *name, size_t len);

/* The name of the primary serving `slot` in the current map, into `name`
 * (room for `len`). Returns 0, or -ENOENT when no node serves it (no map
 * yet, or a slot the map leaves open). */
int saga__redis_cluster_slot_node(const saga_redis_cluster_t *cl, unsigned slot, char *name,
                                  size_t len);

/* Closes every node connection: commands not answered get NULL, no event
 * fires any more, and once everything is closed `done(arg)` runs and the
 * router is freed. Safe from any callback. */
void saga__redis_cluster_close(saga_redis_cluster_t *cl,
                               void (*done)(void *arg), void *arg);

/* Implemented by redis_conn.c: reports a router event as the façade's. */
void saga__redis_facade_event(saga_redis_t *facade, saga_redis_event_t ev,
                              const char *msg);

#endif
