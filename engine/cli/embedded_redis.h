/*
 * embedded_redis.h -- a private redis-server for one state directory.
 *
 * `saga run` and `saga resume` without --redis keep their sagas in a
 * redis-server of their own: started on a unix socket inside the state
 * directory (default ./.saga), with AOF on (appendfsync always), and stopped
 * cleanly when the command ends. A later command in the same directory sees
 * the same sagas.
 *
 * One saga process uses a state directory at a time (a lock file says so).
 * When a previous process died without stopping its server (kill -9), the
 * server is still there, holding the sagas: it is adopted, not started
 * twice on the same files.
 */
#ifndef SAGA_EMBEDDED_REDIS_H
#define SAGA_EMBEDDED_REDIS_H

#include <stddef.h>

#include <uv.h>

typedef struct saga_embedded_redis_s saga_embedded_redis_t;

/* status 0: the server answers on the socket. Else a message naming the
 * problem (redis-server missing, state dir in use, server failed to start
 * with the tail of its log). */
typedef void (*saga_embedded_ready_cb)(saga_embedded_redis_t *er, int status,
                                       const char *msg, void *data);

/* Prepares `state_dir` (created when missing), takes its lock, and starts
 * or adopts the server. Returns NULL with the reason in `err` when that
 * fails at once (then `ready` never runs); else `ready` runs later. */
saga_embedded_redis_t *saga_embedded_redis_start(uv_loop_t *loop,
                                                 const char *state_dir,
                                                 saga_embedded_ready_cb ready,
                                                 void *data, char *err,
                                                 size_t errlen);

/* The server's URL: unix://<absolute state dir>/redis.sock. */
const char *saga_embedded_redis_url(const saga_embedded_redis_t *er);

/* Stops the server (SIGTERM: Redis flushes its AOF and exits), waits for it
 * to exit, releases the lock and frees `er`; then `stopped` runs. */
void saga_embedded_redis_stop(saga_embedded_redis_t *er,
                              void (*stopped)(void *data), void *data);

#endif
