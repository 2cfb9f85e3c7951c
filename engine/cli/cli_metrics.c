/*
 * cli_metrics.c -- the metrics server of `saga worker` and `saga relay`
 * (see cli_metrics.h).
 */
#include "cli/cli_metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "saga/errors.h"
#include "util/log.h"

static void h_healthz(saga_http_req_t *r, void *data) {
    (void)data;
    saga_http_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_metrics(saga_http_req_t *r, void *data) {
    saga_cli_metrics_t *m = data;
    int rc = saga_http_respond_prometheus(r, m->write, m->data);
    if (rc == -EAGAIN)
        saga_http_respond_error(r, 503, "starting", "the %s is not running yet", m->cmd);
    else if (rc != 0)
        saga_http_respond_error(r, 500, "internal", "cannot write the metrics: %s",
                                saga_strerror(rc));
}

int saga_cli_metrics_options(saga_cli_metrics_t *m, const char *cmd, const char *listen,
                             const char *token_file) {
    m->cmd = cmd;
    m->ho.listen = listen;
    m->ho.listen_flag = "--metrics";
    m->ho.tokens_flag = "--metrics-token-file";
    if (token_file != NULL && listen == NULL) {
        saga_cli_error("%s: --metrics-token-file needs --metrics", cmd);
        return SAGA_EXIT_USAGE;
    }
    if (token_file != NULL && (m->ho.tokens = m->tokens = saga_cli_tokens_load(token_file)) == NULL)
        return SAGA_EXIT_USAGE;
    return 0;
}

bool saga_cli_metrics_enabled(const saga_cli_metrics_t *m) { return m->ho.listen != NULL; }

int saga_cli_metrics_start(saga_cli_metrics_t *m, uv_loop_t *loop, const char *name,
                           saga_cli_metrics_write_fn write, void *data) {
    if (m->ho.listen == NULL)
        return 0;
    m->name = name;
    m->write = write;
    m->data = data;
    m->routes[0] = (saga_http_route_t){"GET", "/healthz", SAGA_HTTP_OPEN, h_healthz, m};
    m->routes[1] = (saga_http_route_t){"GET", "/metrics", SAGA_HTTP_READ, h_metrics, m};
    char err[512];
    int rc = saga_http_server_new(loop, &m->ho, m->routes, 2, &m->http, err, sizeof(err));
    if (rc != 0) {
        saga_cli_error("%s: %s", m->cmd, err); /* "--metrics 'ADDR': ..." */
        return rc == -EINVAL || rc == -EPERM ? SAGA_EXIT_USAGE : SAGA_EXIT_ERROR;
    }
    printf("%s\n", saga_http_server_address(m->http));
    fflush(stdout);
    saga_info("%s: metrics on %s/metrics (%s)", name, saga_http_server_address(m->http),
              m->tokens != NULL ? "bearer tokens required" : "no authentication: loopback only");
    return 0;
}

static void on_http_stopped(bool clean, void *data) {
    saga_cli_metrics_t *m = data;
    if (!clean) {
        saga_warn("%s: %zu metrics connection(s) still open after %llu ms; exiting anyway",
                  m->name, saga_http_server_connections(m->http),
                  (unsigned long long)m->grace_ms);
        m->left = true;
    }
    m->http = NULL;
    void (*cb)(bool, void *) = m->stopped;
    m->stopped = NULL;
    if (cb != NULL)
        cb(m->left, m->stopped_data);
}

void saga_cli_metrics_stop(saga_cli_metrics_t *m, uint64_t grace_ms,
                           void (*stopped)(bool left, void *data), void *data) {
    m->stopped = stopped;
    m->stopped_data = data;
    m->grace_ms = grace_ms;
    if (m->http != NULL) {
        saga_http_server_stop(m->http, grace_ms, on_http_stopped, m);
        return;
    }
    m->stopped = NULL;
    if (stopped != NULL)
        stopped(m->left, data);
}

void saga_cli_metrics_free(saga_cli_metrics_t *m) {
    saga_http_tokens_free(m->tokens);
    m->tokens = NULL;
    m->ho.tokens = NULL;
}
