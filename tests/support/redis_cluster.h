/*
 * redis_cluster.h -- test harness: a real Redis Cluster on loopback.
 *
 * Three primaries and three replicas, each a redis-server child started
 * through redis_server.c with `--cluster-enabled yes` on a TCP port of
 * 127.0.0.1 chosen at run time (the port and port + 10000, the cluster
 * bus, both free a moment before), `cluster-node-timeout` 2000 ms; the
 * cluster is formed by `redis-cli --cluster create ... --cluster-replicas 1
 * --cluster-yes`, and the start returns once every node reports
 * `cluster_state:ok` and agrees on who serves every slot. Each node also
 * keeps its unix socket, which the blocking helpers use.
 *
 * Everything here blocks: tests only, never the engine.
 */
#ifndef SAGA_TEST_REDIS_CLUSTER_H
#define SAGA_TEST_REDIS_CLUSTER_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "redis_server.h"

#define REDIS_CLUSTER_NODES 6
#define REDIS_CLUSTER_SLOTS 16384

typedef struct redis_cluster_node_s {
    redis_server_t srv;
    int port;
    char id[48];       /* the node's cluster id (40 hex digits) */
    char url[64];      /* redis://127.0.0.1:<port> */
    bool primary;      /* as the harness last saw it */
} redis_cluster_node_t;

typedef struct redis_cluster_s {
    redis_cluster_node_t node[REDIS_CLUSTER_NODES];
    int nnodes;
} redis_cluster_t;

/* Starts 6 nodes, forms the cluster (3 primaries, 1 replica each) and
 * waits until it serves every slot on every node (30 s at most). `extra`
 * is a NULL-terminated list of more redis-server arguments, or NULL.
 * Three tries, each on ports chosen afresh (one free a moment ago can be
 * taken before its node listens). Returns 0, or -1 with a message on
 * stderr; then nothing is left running
 * and redis_cluster_stop() is a no-op. */
int redis_cluster_start(redis_cluster_t *c, const char *const *extra);

/* Stops every node (SIGTERM) and removes their directories. Accepts a
 * zeroed struct and a cluster whose nodes were killed. */
void redis_cluster_stop(redis_cluster_t *c);

/* A blocking client on node i's unix socket; redisFree() it. NULL (message
 * on stderr) when it cannot connect. */
redisContext *redis_cluster_connect(const redis_cluster_t *c, int i);

/* The node (index) that serves `slot` as primary according to the first
 * live node that answers CLUSTER SLOTS, or -1. */
int redis_cluster_primary_of(const redis_cluster_t *c, int slot);

/* Indexes of the nodes that are primaries now (by CLUSTER NODES of a live
 * node), in node order, into `out` (room for REDIS_CLUSTER_NODES). Returns
 * how many, or -1. */
int redis_cluster_primaries(redis_cluster_t *c, int *out);

/* The hash slot of `key` (CRC16 of its hash tag, as Redis computes it). */
int redis_cluster_key_slot(const char *key);

/* A blocking command on the cluster, for set-up and assertions: sent to
 * the first live node and after it to wherever MOVED or ASK (with ASKING)
 * redirect it; FUNCTION commands go to every live primary (the last reply
 * is returned). The caller frees the reply with freeReplyObject(); NULL
 * (message on stderr) when no node answered. */
redisReply *redis_cluster_vcmd(redis_cluster_t *c, const char *fmt,
                               va_list ap);
redisReply *redis_cluster_cmd(redis_cluster_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Waits (up to `timeout_ms`) until every live node reports
 * cluster_state:ok, all of them name the same primary for every slot, and
 * every primary that has replicas sees them connected. Returns 0, or -1 with
 * what was missing on stderr. */
int redis_cluster_wait_ok(redis_cluster_t *c, long timeout_ms);

/* kill -9 of node i (a primary), then waits (up to `timeout_ms`) until one
 * of its replicas is primary and the cluster is ok again among the live
 * nodes. Returns the index of the promoted node, or -1. */
int redis_cluster_kill_primary(redis_cluster_t *c, int i, long timeout_ms);

/* Starts `redis-cli --cluster reshard` moving `nslots` slots from primary
 * `from` to primary `to` as a child process; returns its pid or -1. The
 * output goes to <first node's dir>/reshard.log. */
pid_t redis_cluster_reshard_start(redis_cluster_t *c, int from, int to,
                                  int nslots);

/* Waits (up to `timeout_ms`) for a child started by this harness; returns
 * its exit status (0 success) or -1 (then it was killed). */
int redis_cluster_wait_child(pid_t pid, long timeout_ms);

/* redis_cluster_reshard_start() then redis_cluster_wait_child() then
 * redis_cluster_wait_ok(). Returns 0 or -1 (message on stderr). */
int redis_cluster_reshard(redis_cluster_t *c, int from, int to, int nslots,
                          long timeout_ms);

#endif
