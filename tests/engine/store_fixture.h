/*
 * store_fixture.h -- test harness for suites of the store's operations: a
 * real redis-server, a loop, and a ready Redis store on it, plus a blocking
 * client for set-up and assertions. One fixture per test process (Criterion
 * runs each test in its own), hence the short global names.
 *
 * With SAGA_TEST_REDIS=cluster in the environment (the CTest `<suite>_cluster`
 * variants), the store runs on a loopback Redis Cluster instead
 * (tests/support/redis_cluster.c, given node 0's URL), and cmd()/cmd_int()
 * follow the cluster's redirections; C is then NULL. SAGA_TEST_SHARDS=K
 * records K shards of the global keys on a fresh cluster (the store's
 * opt.shards; store/shards.h); tests name those keys with shard_key().
 */
#ifndef SAGA_TEST_STORE_FIXTURE_H
#define SAGA_TEST_STORE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis/redis_url.h"
#include "redis_cluster.h"
#include "redis_server.h"
#include "saga/store.h"
#include "store/shards.h"

extern redis_server_t R;  /* the server (not started on a cluster) */
extern redis_cluster_t RC; /* the cluster, when fixture_cluster() */
extern uv_loop_t L;       /* the loop the store runs on */
extern saga_store_t *S;   /* the Redis store, ready after fixture_setup() */
extern saga_redis_url_t U;
extern redisContext *C;   /* a blocking client on the server */
extern int closed;        /* counted by on_closed() */

/* Starts the server and the store (command timeout `command_timeout_ms`,
 * 0: the store's default) and waits until the store is ready. */
void fixture_setup(uint64_t command_timeout_ms);

/* True when the fixture runs on a Redis Cluster (SAGA_TEST_REDIS=cluster). */
bool fixture_cluster(void);

/* A directory of the test's own (the server's, or node 0's). */
const char *fixture_dir(void);

/* kill -9 of the server, or of every node of the cluster. */
void fixture_kill_redis(void);

/* Ends a test in its body (Criterion does not fail a test on an assertion
 * in .fini): closes the store, runs the loop out, asserts that it closes
 * with no handle left. */
void fixture_finish(void);

/* The suite's .fini: frees what fixture_finish() did not reach. */
void fixture_teardown(void);

/* Runs the loop until *n reaches `want`, for 5 s at most. */
void run_until(const int *n, int want);

/* A deadline of `ms` on the loop, for loops of a test's own. */
void fixture_deadline_start(uint64_t ms);
bool fixture_expired(void);
void fixture_deadline_stop(void);

/* A store's close callback that counts in `closed`. */
void on_closed(void *data);

/* The shards of the global keys the store uses (1 on a single Redis). */
const saga_shards_t *fixture_shards(void);

/* The key `name` (SAGA_SHARD_SAGAS, ..._OWNED + `suffix`, ...) of the shard
 * of saga `id`, or with shard_key_n() of shard `s`. The text lives in a
 * ring of 16 buffers: valid for the next 15 calls. */
const char *shard_key(const char *name, const char *suffix, const char *id);
const char *shard_key_n(unsigned s, const char *name, const char *suffix);

/* A blocking command for set-up and assertions; the reply is freed by the
 * next call. */
redisReply *cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A command whose reply must be an integer; returns it. */
long long cmd_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
