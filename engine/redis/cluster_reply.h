/*
 * cluster_reply.h -- the checks of what a Redis Cluster node says about the
 * cluster's shape: the reply to CLUSTER SLOTS and the MOVED/ASK
 * redirection of a command.
 *
 * Pure functions of a reply hiredis already parsed, apart from the client
 * that acts on them (redis_cluster.c), so that they are unit-tested
 * (tests/redis/test_cluster_reply.c) and fuzzed (tests/fuzz/
 * fuzz_redis_reply.c): a node, a proxy in front of it or a corrupted
 * connection may answer anything, and nothing it answers may make the
 * client read outside the reply.
 */
#ifndef SAGA_REDIS_CLUSTER_REPLY_H
#define SAGA_REDIS_CLUSTER_REPLY_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "redis/redis_cluster.h"

#define SAGA_CLUSTER_HOST_MAX 63 /* bytes of a node's address in CLUSTER SLOTS */

/* Checks a CLUSTER SLOTS reply: an array of ranges [first, last, node,
 * node...] with 0 <= first <= last < SAGA_REDIS_SLOTS and at least one
 * node (the primary, then replicas), each node an array [host, port, ...]
 * whose host is a string of at most SAGA_CLUSTER_HOST_MAX bytes without
 * NUL ("" or "?" mean "the node that answered") and whose port is an
 * integer in 1..65535 (what follows, the node id and Redis 7's metadata,
 * is not read). Returns 0, or -EINVAL with where the reply is wrong in
 * `why` (e.g. "range 3, node 2: port 0 is not in 1..65535"). */
int saga_cluster_slots_check(const redisReply *r, char *why, size_t whylen);

/* Parses a redirection, the text of an error reply: "MOVED <slot>
 * <host>:<port>" or "ASK <slot> <host>:<port>", the slot in
 * 0..SAGA_REDIS_SLOTS-1, the address non-empty, with a ':', without
 * spaces or control characters, and shorter than `namelen`. Returns 0
 * for MOVED and 1 for ASK with *slot and `name` ("<host>:<port>",
 * NUL-terminated) set; -EINVAL for anything else (then nothing is set). */
int saga_cluster_redirect_parse(const char *s, int *slot, char *name, size_t namelen);

#endif
