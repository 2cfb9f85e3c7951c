/*
 * cli_store.h -- the store a command uses, chosen by its flags:
 *
 *   --store memory         in process, not durable
 *   --redis URL            a Redis the operator runs (or env SAGA_REDIS_URL)
 *   (neither)              a private redis-server in --state-dir (./.saga)
 */
#ifndef SAGA_CLI_STORE_H
#define SAGA_CLI_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "cli/embedded_redis.h"
#include "redis/redis_url.h"
#include "saga/store.h"

typedef struct saga_cli_store_opts_s {
    const char *kind;        /* "redis" (default) or "memory" */
    const char *redis_url;   /* --redis, else env SAGA_REDIS_URL, else embedded */
    const char *state_dir;   /* --state-dir, default ./.saga */
    uint64_t retention_ms;   /* 0: default */
} saga_cli_store_opts_t;

typedef struct saga_cli_store_s saga_cli_store_t;

/* status 0: cs->store is ready. Else the reason was printed on stderr. */
typedef void (*saga_cli_store_ready_cb)(saga_cli_store_t *cs, int status,
                                        void *data);

struct saga_cli_store_s {
    uv_loop_t *loop;
    saga_store_t *store;
    saga_embedded_redis_t *embedded;
    saga_redis_url_t url;
    bool have_url;
    uv_timer_t kick;          /* makes the memory store's ready asynchronous */
    saga_cli_store_ready_cb ready;
    void *data;
    void (*closed)(void *);
    void *closed_data;
    uint64_t retention_ms;
    unsigned connections;    /* SAGA_REDIS_CONNECTIONS; 0: the store's default */
};

/* Opens the store. Returns 0 (then `ready` runs later) or an exit code
 * (SAGA_EXIT_USAGE / SAGA_EXIT_ERROR) with the reason printed. */
int saga_cli_store_open(saga_cli_store_t *cs, uv_loop_t *loop,
                        const saga_cli_store_opts_t *o,
                        saga_cli_store_ready_cb ready, void *data);

/* Closes the store, then stops the embedded server if any; `closed` runs
 * when everything is closed. */
void saga_cli_store_close(saga_cli_store_t *cs, void (*closed)(void *), void *data);

#endif
