/*
 * cli_relay.c -- `saga relay`: the PostgreSQL outbox relay as a
 * long-running process (engine/relay/, docs/outbox.md), and `saga relay
 * --schema`, which prints the DDL a service installs.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/cli_metrics.h"
#include "cli/cli_store.h"
#include "postgres/pg_conn.h"
#include "relay/relay.h"
#include "saga/definition.h"
#include "saga/errors.h"
#include "util/log.h"

typedef struct relay_cli_s {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    saga_cli_store_t cs;
    saga_relay_t *relay;
    saga_relay_options_t ro;
    int signals;
    int exit_code;
    char name[160];
    saga_cli_metrics_t metrics;   /* --metrics, --metrics-token-file */
    bool http_left;               /* its grace ran out with connections open */
} relay_cli_t;

#define METRICS_GRACE_MS 2000u /* for scrapes in flight when the relay stopped */

static void usage(FILE *out) {
    fputs("usage: saga relay --postgres URL [OPTIONS]\n"
          "       saga relay --schema [--table NAME]\n"
          "\n"
          "Delivers a PostgreSQL outbox into running sagas (docs/outbox.md): takes the\n"
          "undelivered rows of the table, oldest first, submits each as a saga whose\n"
          "id is the row's id, then marks it delivered; a row the engine refuses gets\n"
          "its `error` set. Wakes on LISTEN/NOTIFY and polls. Any number of relays\n"
          "may run at once. Runs until SIGTERM or SIGINT.\n"
          "\n"
          "      --postgres URL      the service's database: a libpq connection string\n"
          "                          or postgresql:// URI (default env SAGA_POSTGRES_URL)\n"
          "      --table NAME        the outbox table, [schema.]name (default saga_outbox)\n"
          "      --batch N           rows per transaction, 1..10000 (default 100)\n"
          "      --poll DURATION     look for rows this often without a notification\n"
          "                          (default 1s)\n"
          "      --redis URL         the shared Redis (default env SAGA_REDIS_URL)\n"
          "      --name NAME         this relay's name in log lines (default relay HOST:PID)\n"
          "      --metrics ADDR      serve /metrics (Prometheus) and /healthz on HOST:PORT\n"
          "                          (port 0: any free port) or unix:PATH; the first line\n"
          "                          on stdout is the address (docs/outbox.md, Metrics)\n"
          "      --metrics-token-file FILE  bearer tokens for /metrics, one per line:\n"
          "                          TOKEN or TOKEN read; without it, --metrics takes\n"
          "                          only loopback or a unix socket\n"
          "      --schema            print the DDL (outbox table, NOTIFY trigger, barrier\n"
          "                          table and function) for --table and exit\n"
          "  -h, --help              show this help\n", out);
}

static void on_store_closed(void *data) {
    relay_cli_t *c = data;
    if (c->http_left) {
        uv_stop(&c->loop); /* the server's handles stay: exit without them */
        return;
    }
    saga_cli_signals_close(&c->sigint, &c->sigterm);
}

static void on_http_stopped(bool left, void *data) {
    relay_cli_t *c = data;
    c->http_left = left;
    saga_cli_store_close(&c->cs, on_store_closed, c);
}

/* The end: the metrics server (served until the relay stopped), then the
 * store. */
static void finish(relay_cli_t *c) {
    saga_cli_metrics_stop(&c->metrics, METRICS_GRACE_MS, on_http_stopped, c);
}

/* /metrics of --metrics: 503 until the relay exists (Redis reached). */
static int write_metrics(FILE *out, void *data) {
    relay_cli_t *c = data;
    return c->relay != NULL ? saga_relay_metrics(c->relay, out) : -EAGAIN;
}

static void on_relay_stopped(void *data) {
    relay_cli_t *c = data;
    saga_relay_stats_t st = saga_relay_stats(c->relay);
    saga_info("%s: stopped (%llu rows delivered, %llu started a saga, %llu refused)", c->name,
              (unsigned long long)st.delivered, (unsigned long long)st.fresh,
              (unsigned long long)st.refused);
    finish(c);
}

static void on_signal(uv_signal_t *h, int signum) {
    relay_cli_t *c = h->data;
    if (++c->signals > 1) {
        fprintf(stderr, "saga relay: %s again: exiting now; rows of the batch in flight "
                "are taken again\n", strsignal(signum));
        _exit(SAGA_EXIT_INTERRUPTED);
    }
    saga_info("%s: %s: stopping after the batch in flight", c->name, strsignal(signum));
    if (c->relay != NULL)
        saga_relay_stop(c->relay, on_relay_stopped, c);
    else
        finish(c);
}

static void on_store(saga_cli_store_t *cs, int status, void *data) {
    relay_cli_t *c = data;
    char err[512];
    if (status != 0) {
        c->exit_code = SAGA_EXIT_ERROR;
        finish(c);
        return;
    }
    if (c->signals > 0)
        return; /* stopping already: the store is being closed */
    c->relay = saga_relay_new(&c->loop, cs->store, &c->ro, err, sizeof(err));
    if (c->relay == NULL) {
        saga_cli_error("relay: %s", err);
        c->exit_code = SAGA_EXIT_ERROR;
        finish(c);
        return;
    }
    int rc = saga_relay_start(c->relay);
    if (rc != 0) {
        saga_cli_error("relay: cannot start: %s", saga_strerror(rc));
        c->exit_code = SAGA_EXIT_ERROR;
        saga_relay_stop(c->relay, on_relay_stopped, c);
    }
}

int saga_cli_relay(int argc, char **argv) {
    static const struct option opts[] = {
        {"postgres", required_argument, NULL, 'P'},
        {"table", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},
        {"poll", required_argument, NULL, 'o'},
        SAGA_CLI_OPTION_REDIS,
        {"name", required_argument, NULL, 'n'},
        {"schema", no_argument, NULL, 'S'},
        {"metrics", required_argument, NULL, 'M'},
        {"metrics-token-file", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    relay_cli_t c;
    memset(&c, 0, sizeof(c));
    saga_cli_store_opts_t so = {0};
    bool schema = false;
    const char *metrics_addr = NULL, *token_file = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (saga_cli_store_option(&so, opt, optarg))
            continue;
        switch (opt) {
        case 'P': c.ro.postgres = optarg; break;
        case 't': c.ro.table = optarg; break;
        case 'b': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1 || n > SAGA_RELAY_BATCH_MAX) {
                saga_cli_error("relay: --batch: expected 1..%d, got '%s'",
                               SAGA_RELAY_BATCH_MAX, optarg);
                return SAGA_EXIT_USAGE;
            }
            c.ro.batch = (size_t)n;
            break;
        }
        case 'o': {
            int rc = saga_duration_parse(optarg, &c.ro.poll_ms);
            if (rc != 0 || c.ro.poll_ms == 0) {
                saga_cli_error("relay: --poll: '%s' is %s", optarg,
                               rc == -ERANGE ? "longer than 24h"
                               : rc != 0 ? "not a duration (like 500ms, 1s)" : "zero");
                return SAGA_EXIT_USAGE;
            }
            break;
        }
        case 'n': snprintf(c.name, sizeof(c.name), "%s", optarg); break;
        case 'S': schema = true; break;
        case 'M': metrics_addr = optarg; break;
        case 'T': token_file = optarg; break;
        case 'h': usage(stdout); return SAGA_EXIT_OK;
        default: usage(stderr); return SAGA_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        saga_cli_error("relay: unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return SAGA_EXIT_USAGE;
    }
    const char *table = c.ro.table != NULL ? c.ro.table : SAGA_RELAY_TABLE_DEFAULT;
    if (!saga_relay_table_valid(table)) {
        saga_cli_error("relay: --table: '%s' is not a table name the relay takes: name or "
                       "schema.name, each 1 to 55 lower-case letters, digits or '_', not "
                       "starting with a digit", table);
        return SAGA_EXIT_USAGE;
    }
    if (schema) {
        char *ddl = saga_relay_schema(table);
        if (ddl == NULL) {
            saga_cli_error("relay: out of memory");
            return SAGA_EXIT_ERROR;
        }
        fputs(ddl, stdout);
        free(ddl);
        return fflush(stdout) == 0 ? SAGA_EXIT_OK : SAGA_EXIT_ERROR;
    }
    if (c.ro.postgres == NULL)
        c.ro.postgres = getenv("SAGA_POSTGRES_URL");
    if (c.ro.postgres == NULL) {
        saga_cli_error("relay: --postgres URL (or SAGA_POSTGRES_URL) is required");
        usage(stderr);
        return SAGA_EXIT_USAGE;
    }
    if (so.redis_url == NULL && getenv("SAGA_REDIS_URL") == NULL) {
        saga_cli_error("relay: --redis URL (or SAGA_REDIS_URL) is required: the relay "
                       "submits to the workers' Redis");
        return SAGA_EXIT_USAGE;
    }
    if (c.name[0] == '\0') {
        char host[128] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(c.name, sizeof(c.name), "relay %s:%d", host, (int)getpid());
    }
    c.ro.name = c.name;
    /* a bad connection string is a usage error, before any connection */
    char err[512];
    if (saga_pg_conninfo_check(c.ro.postgres, err, sizeof(err)) != 0) {
        saga_cli_error("relay: --postgres: %s", err);
        return SAGA_EXIT_USAGE;
    }
    int rc = saga_cli_metrics_options(&c.metrics, "relay", metrics_addr, token_file);
    if (rc != 0)
        return rc;
    c.ro.metrics = saga_cli_metrics_enabled(&c.metrics);
    uv_loop_init(&c.loop);
    /* the metrics server first: a bad address is a usage error at once */
    if ((rc = saga_cli_metrics_start(&c.metrics, &c.loop, c.name, write_metrics, &c)) != 0) {
        uv_run(&c.loop, UV_RUN_DEFAULT); /* what the server opened closes */
        uv_loop_close(&c.loop);
        goto out;
    }
    saga_cli_signals_start(&c.loop, &c.sigint, &c.sigterm, on_signal, &c);
    rc = saga_cli_store_open(&c.cs, &c.loop, &so, on_store, &c);
    if (rc != 0) {
        saga_cli_signals_close(&c.sigint, &c.sigterm);
        saga_cli_metrics_stop(&c.metrics, 0, NULL, NULL);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        uv_loop_close(&c.loop);
        goto out;
    }
    uv_run(&c.loop, UV_RUN_DEFAULT);
    saga_relay_free(c.relay);
    if (!c.http_left && uv_loop_close(&c.loop) != 0)
        saga_error("internal: a libuv handle was left open at exit");
    rc = c.exit_code;
out:
    saga_cli_metrics_free(&c.metrics);
    return rc;
}
