/*
 * redis_server.h -- test harness: a real redis-server per test.
 *
 * Starts `redis-server` from PATH with a unix socket in a fresh temp
 * directory (no TCP port: `--port 0`), its data in the same directory, and
 * waits until it answers PING. Blocking helpers: tests only, never the
 * engine.
 */
#ifndef SAGA_TEST_REDIS_SERVER_H
#define SAGA_TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct redis_server_s {
    char dir[256];     /* temp dir holding socket, AOF, RDB, log */
    char socket[300];  /* <dir>/redis.sock */
    char url[320];     /* unix://<socket> */
    pid_t pid;         /* 0 when not running */
    char **args;       /* extra args used for (re)starts */
    int nargs;
} redis_server_t;

/* Starts a server. `extra` is a NULL-terminated list of extra
 * redis-server arguments (e.g. "--appendonly", "yes"), or NULL. Returns 0,
 * or -1 with a message on stderr. */
int redis_server_start(redis_server_t *s, const char *const *extra);

/* Sends `sig` to the server (e.g. SIGKILL) and reaps it. */
void redis_server_kill(redis_server_t *s, int sig);

/* Starts the server again on the same directory (same data, socket). */
int redis_server_restart(redis_server_t *s);

/* Stops the server (SIGTERM, waits), removes its directory. Accepts a
 * server that is not running. */
void redis_server_stop(redis_server_t *s);

/* A blocking client for assertions; caller frees with redisFree. */
redisContext *redis_server_connect(const redis_server_t *s);

/* A TCP port on 127.0.0.1 that was free a moment ago, for tests that need
 * TCP: pass "--port", "<N>" as extra arguments (never a fixed port).
 * Returns the port, or -1. */
int redis_server_free_port(void);

#endif
