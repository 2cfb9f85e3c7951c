/*
 * cli_worker.c -- `saga worker`: a long-running worker process.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/cli_metrics.h"
#include "cli/cli_store.h"
#include "util/log.h"
#include "saga/errors.h"
#include "saga/worker.h"

#define DEFAULT_GRACE_MS 30000
#define METRICS_GRACE_MS 2000u /* for scrapes in flight when the worker stopped */

typedef struct worker_cli_s {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    saga_cli_store_t cs;
    saga_worker_t *worker;
    saga_worker_options_t wo;
    const char *defs_dir;
    uint64_t grace_ms;
    int signals;
    int exit_code;
    saga_strv_t plugins;
    saga_cli_metrics_t metrics;   /* --metrics, --metrics-token-file */
    bool http_left;               /* its grace ran out with connections open */
    char name[160];
    char log_name[180];           /* "worker NAME" */
} worker_cli_t;

static void usage(FILE *out) {
    fputs("usage: saga worker --defs DIR [OPTIONS]\n"
          "\n"
          "Serves the saga definitions in DIR (every *.yaml; invalid ones are\n"
          "reported and skipped): takes start requests submitted with `saga\n"
          "submit`, runs up to --concurrency sagas at once, takes over the sagas\n"
          "of workers that died, until SIGTERM or SIGINT.\n"
          "\n"
          "      --defs DIR          the definitions to serve (required)\n"
          "      --redis URL         the shared Redis (default env SAGA_REDIS_URL); a\n"
          "                          Redis Cluster is found from any of its nodes\n"
          "      --min-replicas N    a transition counts once N replicas have it (WAIT);\n"
          "                          default env SAGA_MIN_REPLICAS, else 1 on a Redis\n"
          "                          Cluster with replicas, 0 otherwise\n"
          "  -p, --plugins DIR       also look for step plugins in DIR (repeatable)\n"
          "      --concurrency N     sagas at once (default 1000)\n"
          "      --name NAME         this worker's name, unique among live workers\n"
          "                          (default HOST:PID)\n"
          "      --lease DURATION    ownership lease, renewed every third (default 10s)\n"
          "      --grace DURATION    on SIGTERM, time for attempts in flight (default 30s)\n"
          "      --metrics ADDR      serve /metrics (Prometheus) and /healthz on HOST:PORT\n"
          "                          (port 0: any free port) or unix:PATH; the first line\n"
          "                          on stdout is the address (docs/operations.md)\n"
          "      --metrics-token-file FILE  bearer tokens for /metrics, one per line:\n"
          "                          TOKEN or TOKEN read; without it, --metrics takes\n"
          "                          only loopback or a unix socket\n"
          "  -h, --help              show this help\n"
          "\n"
          "A first SIGTERM/SIGINT stops taking work, lets attempts in flight finish\n"
          "within the grace period, writes their results and hands the rest over to\n"
          "other workers; a second one exits at once. With Redis unreachable it exits\n"
          "2 s after the grace with status 1: its sagas stay under its lease, and the\n"
          "other workers take them over once it expires.\n", out);
}


static void on_store_closed(void *data) {
    worker_cli_t *c = data;
    if (c->http_left) {
        uv_stop(&c->loop); /* the server's handles stay: exit without them */
        return;
    }
    saga_cli_signals_close(&c->sigint, &c->sigterm);
}

static void on_http_stopped(bool left, void *data) {
    worker_cli_t *c = data;
    c->http_left = left;
    saga_cli_store_close(&c->cs, on_store_closed, c);
}

/* The end: the metrics server (served until the worker stopped), then
 * the store. */
static void finish(worker_cli_t *c) {
    saga_cli_metrics_stop(&c->metrics, METRICS_GRACE_MS, on_http_stopped, c);
}

/* The store closes after the worker: when the worker gave up on Redis,
 * that close is what answers the calls it left outstanding (saga/worker.h),
 * and the worker is freed only after the loop ends. */
static void on_worker_stopped(void *data) {
    worker_cli_t *c = data;
    if (saga_worker_stop_status(c->worker) != 0) {
        saga_warn("worker %s: stopped without reaching Redis (exit status %d)", c->name,
                  SAGA_EXIT_ERROR);
        if (c->exit_code == SAGA_EXIT_OK)
            c->exit_code = SAGA_EXIT_ERROR;
    } else {
        saga_info("worker %s: stopped", c->name);
    }
    finish(c);
}

/* /metrics of --metrics: 503 until the worker exists (Redis reached). */
static int write_metrics(FILE *out, void *data) {
    worker_cli_t *c = data;
    return c->worker != NULL ? saga_worker_metrics(c->worker, out) : -EAGAIN;
}

static void on_signal(uv_signal_t *h, int signum) {
    worker_cli_t *c = h->data;
    if (++c->signals > 1) {
        fprintf(stderr, "saga worker: %s again: exiting now; leases expire and other "
                "workers take over\n", strsignal(signum));
        _exit(SAGA_EXIT_INTERRUPTED);
    }
    saga_info("worker %s: %s: stopping (grace %llu ms)", c->name, strsignal(signum),
              (unsigned long long)c->grace_ms);
    if (c->worker != NULL)
        saga_worker_stop(c->worker, c->grace_ms, on_worker_stopped, c);
    else
        finish(c);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Loads every *.yaml of the directory into the worker; returns how many
 * definitions are served, or a negative errno (reported) when the
 * directory cannot be read. Invalid files are reported and skipped. */
static int load_defs(worker_cli_t *c) {
    DIR *d = opendir(c->defs_dir);
    if (d == NULL) {
        int err = errno;
        saga_cli_error("--defs %s: %s", c->defs_dir, strerror(err));
        return -err;
    }
    saga_strv_t files = {NULL, 0};
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".yaml") == 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", c->defs_dir, e->d_name);
            saga_strv_push(&files, path);
        }
    }
    closedir(d);
    if (files.n > 0)
        qsort(files.v, files.n, sizeof(char *), cmp_str);
    int served = 0;
    for (size_t i = 0; i < files.n; i++) {
        saga_diags_t diags;
        saga_diags_init(&diags);
        saga_def_t *def = saga_def_load_file(files.v[i], &diags);
        char name[SAGA_NAME_MAX + 1] = "";
        if (def != NULL)
            snprintf(name, sizeof(name), "%s", def->name);
        if (def == NULL || saga_worker_add_definition(c->worker, def, &diags) != 0) {
            saga_diags_print(&diags, stderr);
            saga_error("worker %s: %s skipped (see above)", c->name, files.v[i]);
        } else {
            saga_info("worker %s: serving saga %s from %s", c->name, name, files.v[i]);
            served++;
        }
        saga_diags_close(&diags);
    }
    saga_strv_free(&files);
    return served;
}

/* A worker that cannot serve (its names not published, no intake group)
 * exits with an error rather than run half-way. */
static void on_worker_started(saga_worker_t *w, int status, const char *msg, void *data) {
    worker_cli_t *c = data;
    if (status == 0) {
        saga_info("worker %s: running (concurrency %zu, lease %llu ms)", c->name,
                  c->wo.concurrency ? c->wo.concurrency : 1000,
                  (unsigned long long)(c->wo.lease_ms ? c->wo.lease_ms : 10000));
    } else if (status != SAGA_ECLOSING) {
        saga_cli_error("worker %s: cannot serve: %s", c->name, msg);
        c->exit_code = SAGA_EXIT_ERROR;
        saga_worker_stop(w, 0, on_worker_stopped, c);
    }
}

static void on_store(saga_cli_store_t *cs, int status, void *data) {
    worker_cli_t *c = data;
    char err[512];
    if (status != 0) {
        c->exit_code = SAGA_EXIT_ERROR;
        finish(c);
        return;
    }
    c->wo.url = &cs->url;
    c->worker = saga_worker_new(&c->loop, cs->store, &c->wo, err, sizeof(err));
    if (c->worker == NULL) {
        saga_cli_error("%s", err);
        c->exit_code = SAGA_EXIT_ERROR;
        finish(c);
        return;
    }
    int served = load_defs(c);
    if (served <= 0) {
        if (served == 0)
            saga_cli_error("--defs %s: no valid definition to serve", c->defs_dir);
        c->exit_code = SAGA_EXIT_ERROR;
        saga_worker_stop(c->worker, 0, on_worker_stopped, c);
        return;
    }
    int rc = saga_worker_start(c->worker, on_worker_started, c);
    if (rc != 0) {
        saga_cli_error("worker %s: cannot start: %s", c->name, saga_strerror(rc));
        c->exit_code = SAGA_EXIT_ERROR;
        saga_worker_stop(c->worker, 0, on_worker_stopped, c);
    }
}

/* Parses a duration flag's value. Returns 0, or -EINVAL / -ERANGE with the
 * reason printed. */
static int parse_duration_opt(const char *flag, const char *s, uint64_t *out) {
    int rc = saga_duration_parse(s, out);
    if (rc != 0)
        saga_cli_error("%s: '%s' is %s", flag, s, rc == -ERANGE
                       ? "longer than 24h" : "not a duration (like 500ms, 10s, 1m)");
    return rc;
}

int saga_cli_worker(int argc, char **argv) {
    static const struct option opts[] = {
        {"defs", required_argument, NULL, 'd'},
        SAGA_CLI_OPTION_REDIS,
        SAGA_CLI_OPTION_MIN_REPLICAS,
        {"plugins", required_argument, NULL, 'p'},
        {"concurrency", required_argument, NULL, 'c'},
        {"name", required_argument, NULL, 'n'},
        {"lease", required_argument, NULL, 'l'},
        {"grace", required_argument, NULL, 'g'},
        {"metrics", required_argument, NULL, 'M'},
        {"metrics-token-file", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    worker_cli_t c;
    memset(&c, 0, sizeof(c));
    c.grace_ms = DEFAULT_GRACE_MS;
    saga_cli_store_opts_t so = {0};
    const char *token_file = NULL, *metrics_addr = NULL;
    int opt, rc = SAGA_EXIT_USAGE;
    while ((opt = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
        if (saga_cli_store_option(&so, opt, optarg))
            continue;
        switch (opt) {
        case 'd': c.defs_dir = optarg; break;
        case 'p': saga_strv_push(&c.plugins, optarg); break;
        case 'c': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || n < 1 || n > 1000000) {
                saga_cli_error("--concurrency: expected 1..1000000, got '%s'", optarg);
                goto out;
            }
            c.wo.concurrency = (size_t)n;
            break;
        }
        case 'n': snprintf(c.name, sizeof(c.name), "%s", optarg); break;
        case 'l':
            if (parse_duration_opt("--lease", optarg, &c.wo.lease_ms) != 0)
                goto out;
            if (c.wo.lease_ms < 300) {
                saga_cli_error("--lease: at least 300ms");
                goto out;
            }
            break;
        case 'g':
            if (parse_duration_opt("--grace", optarg, &c.grace_ms) != 0)
                goto out;
            break;
        case 'M': metrics_addr = optarg; break;
        case 'T': token_file = optarg; break;
        case 'h': usage(stdout); rc = SAGA_EXIT_OK; goto out;
        default: usage(stderr); goto out;
        }
    }
    if (optind != argc || c.defs_dir == NULL) {
        saga_cli_error(c.defs_dir == NULL ? "worker: --defs DIR is required"
                                          : "worker: unexpected argument '%s'", argv[optind]);
        usage(stderr);
        goto out;
    }
    if (so.redis_url == NULL && getenv("SAGA_REDIS_URL") == NULL) {
        saga_cli_error("worker: --redis URL (or SAGA_REDIS_URL) is required: workers "
                       "share one Redis");
        goto out;
    }
    if (saga_cli_metrics_options(&c.metrics, "worker", metrics_addr, token_file) != 0)
        goto out;
    if (c.name[0] == '\0') {
        char host[128] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(c.name, sizeof(c.name), "%s:%d", host, (int)getpid());
    }
    c.wo.name = c.name;
    c.wo.plugin_dirs = (const char *const *)c.plugins.v;
    c.wo.metrics = saga_cli_metrics_enabled(&c.metrics);
    snprintf(c.log_name, sizeof(c.log_name), "worker %s", c.name);
    uv_loop_init(&c.loop);
    if ((rc = saga_cli_metrics_start(&c.metrics, &c.loop, c.log_name, write_metrics, &c)) != 0) {
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
    saga_worker_free(c.worker);
    if (!c.http_left && uv_loop_close(&c.loop) != 0)
        saga_error("internal: a libuv handle was left open at exit");
    rc = c.exit_code;
out:
    saga_cli_metrics_free(&c.metrics);
    saga_strv_free(&c.plugins);
    return rc;
}
