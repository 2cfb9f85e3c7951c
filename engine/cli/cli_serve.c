/*
 * cli_serve.c -- `saga serve`: the HTTP API, metrics and health checks
 * (docs/api.md) and the console (docs/console.md) on one loop, against the
 * shared Redis.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/cli_store.h"
#include "http/api.h"
#include "http/console.h"
#include "http/http_auth.h"
#include "http/http_server.h"
#include "util/log.h"

#define DEFAULT_GRACE_MS 10000u
/* How long a shutdown waits for Redis to answer the requests in flight
 * before answering them 503 itself: half the grace, so that the answers
 * reach their clients and the connections close within it. */
#define STORE_WAIT_MS (DEFAULT_GRACE_MS / 2)
#define MAX_BODY_LIMIT (64u * 1024u * 1024u)

#define SERVE_ROUTES_MAX 64

typedef struct serve_s {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t drain;         /* from the first signal: waits for the API's
                                 last store answers, STORE_WAIT_MS at most */
    bool drain_init;
    uint64_t answer_by;       /* loop time when waiting for Redis ends */
    bool closing;             /* the API and the store are being closed */
    saga_cli_store_t cs;
    saga_api_t *api;
    saga_http_server_t *http;
    saga_http_server_options_t ho;
    saga_http_tokens_t *tokens;
    int signals;
    int exit_code;
    bool http_left;           /* grace ran out with connections open */
    saga_http_route_t routes[SERVE_ROUTES_MAX]; /* the API's, then the console's */
} serve_t;

static void usage(FILE *out) {
    fputs("usage: saga serve --listen HOST:PORT|unix:PATH [OPTIONS]\n"
          "\n"
          "Serves the HTTP API (/v1: submit, status with long-polls, list, history,\n"
          "cancel, retry, definitions), /metrics, /healthz and /readyz until SIGTERM\n"
          "or SIGINT. See docs/api.md.\n"
          "\n"
          "      --listen ADDR         HOST:PORT (an IP address, [v6] or localhost;\n"
          "                            port 0: any free port) or unix:PATH (required)\n"
          "      --redis URL           the shared Redis (default env SAGA_REDIS_URL,\n"
          "                            else the private server of --state-dir)\n"
          "      --state-dir DIR       the private Redis's directory (default ./.saga)\n"
          "      --token-file FILE     bearer tokens, one per line: TOKEN or TOKEN read;\n"
          "                            without it, only loopback or a unix socket\n"
          "      --max-body SIZE       largest request body: bytes, or with KiB/MiB\n"
          "                            (default 1MiB)\n"
          "      --max-connections N   open connections at most (default 4096)\n"
          "  -h, --help                show this help\n"
          "\n"
          "The first line on stdout is the address it listens on. A first SIGTERM or\n"
          "SIGINT stops taking connections, answers long-polls with the current state\n"
          "and the requests in flight (503 for those Redis has not answered within\n"
          "5 s), then exits 0; a second one exits at once.\n",
          out);
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return -EINVAL;
    unsigned long long mul = 1;
    if (strcmp(end, "KiB") == 0)
        mul = 1024;
    else if (strcmp(end, "MiB") == 0)
        mul = 1024 * 1024;
    else if (*end != '\0')
        return -EINVAL;
    if (v == 0 || v > MAX_BODY_LIMIT / mul)
        return -ERANGE;
    *out = (size_t)(v * mul);
    return 0;
}

/* Thousands of long-polls need as many descriptors: raise the soft limit
 * to the hard one. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}


static void on_store_closed(void *data) {
    serve_t *c = data;
    if (c->http_left) {
        uv_stop(&c->loop); /* the server's handles stay: exit without them */
        return;
    }
    saga_cli_signals_close(&c->sigint, &c->sigterm);
    if (c->drain_init)
        uv_close((uv_handle_t *)&c->drain, NULL);
}

static void on_api_freed(void *data) {
    serve_t *c = data;
    c->api = NULL;
    saga_cli_store_close(&c->cs, on_store_closed, c);
}

static void on_api_freed_last(void *data) {
    serve_t *c = data;
    c->api = NULL;
    on_store_closed(c);
}

/* The store closed under an abandoned API: its callbacks have all run,
 * so nothing is pending any more. */
static void on_store_closed_first(void *data) {
    serve_t *c = data;
    saga_api_free(c->api, on_api_freed_last, c);
}

/* Ends the API and the store: the API first when nothing is pending;
 * when requests still wait on a store that does not answer (abandoned),
 * the store first, since closing it is what ends them. */
static void finish(serve_t *c) {
    c->closing = true;
    if (c->drain_init)
        uv_timer_stop(&c->drain);
    if (saga_api_pending(c->api) == 0)
        saga_api_free(c->api, on_api_freed, c);
    else
        saga_cli_store_close(&c->cs, on_store_closed_first, c);
}

/* Every 10 ms from the first signal: once STORE_WAIT_MS passed, the
 * requests still waiting on Redis are answered 503; once the server has
 * stopped and nothing waits on the store, or what waits was abandoned,
 * the API and the store are closed. */
static void on_drain(uv_timer_t *t) {
    serve_t *c = t->data;
    if (c->closing || c->api == NULL)
        return;
    if (!saga_api_abandoned(c->api) && uv_now(&c->loop) >= c->answer_by) {
        size_t n = saga_api_abandon(c->api);
        if (n > 0)
            saga_warn("serve: Redis did not answer %zu request(s) within %u ms of the stop: "
                      "answered 503", n, STORE_WAIT_MS);
    }
    if (c->http != NULL)
        return; /* connections still open */
    if (saga_api_pending(c->api) == 0 || saga_api_abandoned(c->api))
        finish(c);
}

static void on_http_stopped(bool clean, void *data) {
    serve_t *c = data;
    if (!clean) {
        saga_warn("serve: %zu connection(s) still open after %u ms; exiting anyway",
                  saga_http_server_connections(c->http), DEFAULT_GRACE_MS);
        c->http_left = true;
    }
    c->http = NULL;
    if (c->api == NULL) {
        saga_cli_store_close(&c->cs, on_store_closed, c);
        return;
    }
    if (!c->drain_init) { /* no timer: nothing to wait with */
        saga_api_abandon(c->api);
        finish(c);
        return;
    }
    on_drain(&c->drain);
}

static void on_signal(uv_signal_t *h, int signum) {
    serve_t *c = h->data;
    if (++c->signals > 1) {
        fprintf(stderr, "saga serve: %s again: exiting now\n", strsignal(signum));
        _exit(SAGA_EXIT_INTERRUPTED);
    }
    saga_info("serve: %s: stopping", strsignal(signum));
    if (c->http != NULL) { /* serving (the API is there too) */
        saga_api_stop(c->api);
        if (uv_timer_init(&c->loop, &c->drain) == 0) {
            c->drain_init = true;
            c->drain.data = c;
            c->answer_by = uv_now(&c->loop) + STORE_WAIT_MS;
            uv_timer_start(&c->drain, on_drain, 10, 10);
        }
        saga_http_server_stop(c->http, DEFAULT_GRACE_MS, on_http_stopped, c);
    } else if (c->api == NULL) {
        saga_cli_store_close(&c->cs, on_store_closed, c);
    } /* else: the server could not start and the API is being freed */
}

static void on_store(saga_cli_store_t *cs, int status, void *data) {
    serve_t *c = data;
    if (status != 0) {
        c->exit_code = SAGA_EXIT_ERROR;
        saga_cli_store_close(cs, on_store_closed, c);
        return;
    }
    saga_api_options_t ao = {.store = cs->store, .who = "http"};
    c->api = saga_api_new(&c->loop, &ao);
    if (c->api == NULL) {
        saga_cli_error("serve: out of memory");
        c->exit_code = SAGA_EXIT_ERROR;
        saga_cli_store_close(cs, on_store_closed, c);
        return;
    }
    /* The /v1 API and the console (docs/console.md) on one server. */
    size_t na, nc;
    const saga_http_route_t *api_routes = saga_api_routes(c->api, &na);
    const saga_http_route_t *console_routes = saga_console_routes(&nc);
    size_t n = na + nc;
    char err[512];
    int rc = -E2BIG;
    /* A table outgrown by a new route is a build defect: refused in every
     * build, not truncated (an assert would vanish from release builds). */
    if (n > SERVE_ROUTES_MAX) {
        snprintf(err, sizeof(err), "%zu routes, at most %d (raise SERVE_ROUTES_MAX)", n,
                 SERVE_ROUTES_MAX);
    } else {
        memcpy(c->routes, api_routes, na * sizeof(*api_routes));
        memcpy(c->routes + na, console_routes, nc * sizeof(*console_routes));
        rc = saga_http_server_new(&c->loop, &c->ho, c->routes, n, &c->http, err, sizeof(err));
    }
    if (rc != 0) {
        saga_cli_error("serve: %s", err);
        c->exit_code = rc == -EINVAL || rc == -EPERM ? SAGA_EXIT_USAGE : SAGA_EXIT_ERROR;
        saga_api_free(c->api, on_api_freed, c);
        return;
    }
    saga_api_set_server(c->api, c->http);
    printf("%s\n", saga_http_server_address(c->http));
    fflush(stdout);
    saga_info("serve: listening on %s (%s)", saga_http_server_address(c->http),
              c->tokens != NULL ? "bearer tokens required" : "no authentication: loopback only");
}

int saga_cli_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'L'},
        SAGA_CLI_OPTION_REDIS,
        SAGA_CLI_OPTION_STATE_DIR,
        {"token-file", required_argument, NULL, 'T'},
        {"max-body", required_argument, NULL, 'B'},
        {"max-connections", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    serve_t c;
    memset(&c, 0, sizeof(c));
    saga_cli_store_opts_t so = {0};
    const char *token_file = NULL;
    int opt, rc = SAGA_EXIT_USAGE;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (saga_cli_store_option(&so, opt, optarg))
            continue;
        switch (opt) {
        case 'L': c.ho.listen = optarg; break;
        case 'T': token_file = optarg; break;
        case 'B': {
            int prc = parse_size(optarg, &c.ho.max_body);
            if (prc != 0) {
                saga_cli_error("--max-body: '%s' is %s", optarg,
                               prc == -ERANGE ? "out of range (1 byte to 64MiB)"
                                              : "not a size (like 65536, 512KiB, 1MiB)");
                goto out;
            }
            break;
        }
        case 'C': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v < 1 || v > 1000000) {
                saga_cli_error("--max-connections: expected 1..1000000, got '%s'", optarg);
                goto out;
            }
            c.ho.max_connections = (size_t)v;
            break;
        }
        case 'h': usage(stdout); rc = SAGA_EXIT_OK; goto out;
        default: usage(stderr); goto out;
        }
    }
    if (optind != argc) {
        saga_cli_error("serve: unexpected argument '%s'", argv[optind]);
        usage(stderr);
        goto out;
    }
    if (c.ho.listen == NULL) {
        saga_cli_error("serve: --listen HOST:PORT or unix:PATH is required");
        usage(stderr);
        goto out;
    }
    if (token_file != NULL && (c.ho.tokens = c.tokens = saga_cli_tokens_load(token_file)) == NULL)
        goto out;
    raise_fd_limit();
    uv_loop_init(&c.loop);
    saga_cli_signals_start(&c.loop, &c.sigint, &c.sigterm, on_signal, &c);
    rc = saga_cli_store_open(&c.cs, &c.loop, &so, on_store, &c);
    if (rc != 0) {
        saga_cli_signals_close(&c.sigint, &c.sigterm);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        uv_loop_close(&c.loop);
        goto out;
    }
    uv_run(&c.loop, UV_RUN_DEFAULT);
    if (!c.http_left && uv_loop_close(&c.loop) != 0)
        saga_error("internal: a libuv handle was left open at exit");
    rc = c.exit_code;
out:
    saga_http_tokens_free(c.tokens);
    return rc;
}
