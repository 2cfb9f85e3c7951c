/*
 * cli_store.h -- the store a command uses, chosen by its flags:
 *
 *   --store memory         in process, not durable
 *   --redis URL            a Redis the operator runs (or env SAGA_REDIS_URL)
 *   (neither)              a private redis-server in --state-dir (./.saga)
 */
#ifndef SAGA_CLI_STORE_H
#define SAGA_CLI_STORE_H

#include <getopt.h>
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
    const char *min_replicas; /* --min-replicas, else env SAGA_MIN_REPLICAS,
                                 else automatic (store_redis.h) */
    bool no_advice;          /* a short command: no configuration advice at
                                start (store_redis.h) */
} saga_cli_store_opts_t;

/* The store's command-line options, as getopt_long() entries whose values
 * saga_cli_store_option() recognises. A command lists the ones it takes:
 *   struct option opts[] = {SAGA_CLI_OPTION_REDIS, SAGA_CLI_OPTION_STATE_DIR, ...}; */
#define SAGA_CLI_OPT_REDIS     0x1001
#define SAGA_CLI_OPT_STATE_DIR 0x1002
#define SAGA_CLI_OPT_STORE     0x1003
#define SAGA_CLI_OPTION_REDIS     {"redis", required_argument, NULL, SAGA_CLI_OPT_REDIS}
#define SAGA_CLI_OPTION_STATE_DIR {"state-dir", required_argument, NULL, SAGA_CLI_OPT_STATE_DIR}
#define SAGA_CLI_OPTION_STORE     {"store", required_argument, NULL, SAGA_CLI_OPT_STORE}
#define SAGA_CLI_OPT_MIN_REPLICAS 0x1004
#define SAGA_CLI_OPTION_MIN_REPLICAS {"min-replicas", required_argument, NULL, SAGA_CLI_OPT_MIN_REPLICAS}

/* Takes `arg` (kept as a pointer) into `so` when `opt`, a value returned
 * by getopt_long(), is one of the store's options. Returns true when it
 * was; false, and `so` unchanged, for any other option. */
bool saga_cli_store_option(saga_cli_store_opts_t *so, int opt, const char *arg);

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
    unsigned shards;         /* SAGA_SHARDS; 0: the store's default */
    int min_replicas;        /* the store's min_replicas */
    bool no_advice;          /* the store's no_advice */
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
