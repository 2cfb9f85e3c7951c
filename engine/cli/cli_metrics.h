/*
 * cli_metrics.h -- `--metrics ADDR` and `--metrics-token-file FILE` of the
 * long-running commands (`saga worker`, `saga relay`): a small HTTP server
 * on the command's loop that answers GET /healthz (200 while the process
 * runs, no token needed) and GET /metrics (Prometheus text written by the
 * command's callback; 503 `starting` until the callback has something to
 * write). docs/operations.md, "Metrics".
 *
 * Use: saga_cli_metrics_options() while parsing, saga_cli_metrics_start()
 * before anything else runs on the loop (a bad address is a usage error
 * at once), saga_cli_metrics_stop() last when the command stops (scrapes
 * in flight are answered), saga_cli_metrics_free() after the loop ended.
 */
#ifndef SAGA_CLI_METRICS_H
#define SAGA_CLI_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "http/http_auth.h"
#include "http/http_server.h"

/* Writes the command's metrics to `out`. Returns 0, -EAGAIN when there is
 * nothing to write yet (answered 503 `starting`), or another negative code
 * (answered 500). */
typedef int (*saga_cli_metrics_write_fn)(FILE *out, void *data);

typedef struct saga_cli_metrics_s {
    const char *cmd;                  /* "worker", "relay": in messages */
    const char *name;                 /* the process's name in log lines */
    saga_cli_metrics_write_fn write;
    void *data;
    saga_http_server_options_t ho;    /* ho.listen: NULL when no --metrics */
    saga_http_tokens_t *tokens;       /* --metrics-token-file, owned */
    saga_http_server_t *http;         /* while it serves */
    saga_http_route_t routes[2];      /* kept by reference by the server */
    bool left;                        /* stopped with connections still open */
    uint64_t grace_ms;
    void (*stopped)(bool left, void *data);
    void *stopped_data;
} saga_cli_metrics_t;

/* Takes the flags' values (each may be NULL). Loads the token file (a
 * blocking read: before the loop runs). Returns 0, or SAGA_EXIT_USAGE with
 * the reason printed ("CMD: --metrics-token-file needs --metrics", the
 * token file's "FILE:LINE: error: ..."). */
int saga_cli_metrics_options(saga_cli_metrics_t *m, const char *cmd, const char *listen,
                             const char *token_file);

/* True when --metrics was given. */
bool saga_cli_metrics_enabled(const saga_cli_metrics_t *m);

/* Starts serving on `loop` (when --metrics was given; else returns 0 and
 * does nothing): prints the address as the first line on stdout and logs
 * it. `write`/`data` make /metrics. Returns 0, or the exit code with the
 * reason printed: SAGA_EXIT_USAGE for a malformed address or a
 * non-loopback one without tokens, SAGA_EXIT_ERROR otherwise (then run the
 * loop to close what was opened). */
int saga_cli_metrics_start(saga_cli_metrics_t *m, uv_loop_t *loop, const char *name,
                           saga_cli_metrics_write_fn write, void *data);

/* Stops serving: connections get `grace_ms` to finish their request; then
 * `stopped` runs once (from the loop, or at once when nothing serves),
 * `left` true when connections were still open: their handles stay on the
 * loop and the caller must exit without waiting for them (uv_stop). */
void saga_cli_metrics_stop(saga_cli_metrics_t *m, uint64_t grace_ms,
                           void (*stopped)(bool left, void *data), void *data);

/* Frees the tokens (the server frees itself when stopped). */
void saga_cli_metrics_free(saga_cli_metrics_t *m);

#endif
