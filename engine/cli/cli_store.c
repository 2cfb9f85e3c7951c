/* cli_store.c -- see cli_store.h */
#include "cli/cli_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store_memory.h"
#include "store/store_redis.h"

bool saga_cli_store_option(saga_cli_store_opts_t *so, int opt, const char *arg) {
    switch (opt) {
    case SAGA_CLI_OPT_REDIS: so->redis_url = arg; return true;
    case SAGA_CLI_OPT_STATE_DIR: so->state_dir = arg; return true;
    case SAGA_CLI_OPT_STORE: so->kind = arg; return true;
    case SAGA_CLI_OPT_MIN_REPLICAS: so->min_replicas = arg; return true;
    default: return false;
    }
}

static void kick_closed(uv_handle_t *h) {
    saga_cli_store_t *cs = h->data;
    if (cs->store == NULL && cs->embedded == NULL && cs->closed != NULL)
        cs->closed(cs->closed_data);
}

static void after_store_closed(void *data);

static void on_embedded_stopped(void *data) {
    saga_cli_store_t *cs = data;
    cs->embedded = NULL;
    after_store_closed(cs);
}

static void after_store_closed(void *data) {
    saga_cli_store_t *cs = data;
    cs->store = NULL;
    if (cs->embedded != NULL) {
        saga_embedded_redis_stop(cs->embedded, on_embedded_stopped, cs);
        return;
    }
    if (cs->have_url) {
        saga_redis_url_close(&cs->url);
        cs->have_url = false;
    }
    uv_close((uv_handle_t *)&cs->kick, kick_closed);
}

void saga_cli_store_close(saga_cli_store_t *cs, void (*closed)(void *), void *data) {
    cs->closed = closed;
    cs->closed_data = data;
    if (cs->store != NULL)
        cs->store->ops->close(cs->store, after_store_closed, cs);
    else
        after_store_closed(cs);
}

static void on_store_ready(saga_store_t *s, int status, const char *msg, void *data) {
    saga_cli_store_t *cs = data;
    (void)s;
    if (status != 0)
        saga_cli_error("%s", msg ? msg : "cannot use the store");
    cs->ready(cs, status, cs->data);
}

static void open_redis(saga_cli_store_t *cs) {
    saga_store_redis_options_t o;
    memset(&o, 0, sizeof(o));
    o.retention_ms = cs->retention_ms;
    /* The embedded server fsyncs every write (appendfsync always): bigger
     * group commits over 4 connections (docs/redis-layout.md). */
    o.connections = cs->connections ? cs->connections
                    : cs->embedded ? SAGA_STORE_REDIS_ALWAYS_CONNECTIONS : 0;
    o.conn.client_name = "saga";
    o.min_replicas = cs->min_replicas;
    o.shards = cs->shards;
    o.no_advice = cs->no_advice;
    cs->store = saga_store_redis_new(cs->loop, &cs->url, &o, on_store_ready, cs);
    if (cs->store == NULL) {
        saga_cli_error("out of memory");
        cs->ready(cs, -ENOMEM, cs->data);
    }
}

static void on_embedded_ready(saga_embedded_redis_t *er, int status, const char *msg,
                              void *data) {
    saga_cli_store_t *cs = data;
    char err[256];
    if (status != 0) {
        saga_cli_error("%s", msg);
        cs->ready(cs, status, cs->data);
        return;
    }
    if (saga_redis_url_parse(saga_embedded_redis_url(er), &cs->url, err, sizeof(err)) != 0) {
        saga_cli_error("embedded redis: %s", err);
        cs->ready(cs, -EINVAL, cs->data);
        return;
    }
    cs->have_url = true;
    open_redis(cs);
}

static void on_kick(uv_timer_t *t) {
    saga_cli_store_t *cs = t->data;
    cs->ready(cs, 0, cs->data);
}

int saga_cli_store_open(saga_cli_store_t *cs, uv_loop_t *loop,
                        const saga_cli_store_opts_t *o,
                        saga_cli_store_ready_cb ready, void *data) {
    memset(cs, 0, sizeof(*cs));
    cs->loop = loop;
    cs->ready = ready;
    cs->data = data;
    cs->retention_ms = o->retention_ms;
    cs->no_advice = o->no_advice;
    const char *kind = o->kind ? o->kind : "redis";
    const char *url = o->redis_url ? o->redis_url : getenv("SAGA_REDIS_URL");
    if (url != NULL && url[0] == '\0')
        url = NULL;
    char err[1024];
    /* Everything that can be refused is refused before a handle exists. */
    const char *conns = getenv("SAGA_REDIS_CONNECTIONS");
    if (conns != NULL && conns[0] != '\0') {
        char *end;
        errno = 0;
        unsigned long n = strtoul(conns, &end, 10);
        if (errno != 0 || *end != '\0' || conns[0] == '-' || n < 1 || n > 16) {
            saga_cli_error("SAGA_REDIS_CONNECTIONS='%s': expected a number of connections "
                           "from 1 to 16", conns);
            return SAGA_EXIT_USAGE;
        }
        cs->connections = (unsigned)n;
    }
    /* Shards of the global keys on a Redis Cluster that has none recorded
     * yet (docs/scaling.md). */
    const char *shards = getenv("SAGA_SHARDS");
    if (shards != NULL && shards[0] != '\0') {
        char *end;
        errno = 0;
        unsigned long n = strtoul(shards, &end, 10);
        if (errno != 0 || *end != '\0' || shards[0] == '-' || shards[0] == '+' || n < 1 ||
            n > SAGA_SHARDS_MAX) {
            saga_cli_error("SAGA_SHARDS='%s': expected a number of shards from 1 to %d", shards,
                           SAGA_SHARDS_MAX);
            return SAGA_EXIT_USAGE;
        }
        cs->shards = (unsigned)n;
    }
    /* Replicas a transition must reach (docs/durability.md). */
    const char *mr = o->min_replicas ? o->min_replicas : getenv("SAGA_MIN_REPLICAS");
    const char *mr_name = o->min_replicas ? "--min-replicas" : "SAGA_MIN_REPLICAS";
    cs->min_replicas = SAGA_STORE_MIN_REPLICAS_AUTO;
    if (mr != NULL && mr[0] != '\0') {
        char *end;
        errno = 0;
        unsigned long n = strtoul(mr, &end, 10);
        if (errno != 0 || *end != '\0' || mr[0] == '-' || mr[0] == '+' || n > 16) {
            saga_cli_error("%s '%s': expected a number of replicas from 0 to 16", mr_name, mr);
            return SAGA_EXIT_USAGE;
        }
        cs->min_replicas = (int)n;
    }
    if (strcmp(kind, "memory") == 0) {
        if (o->redis_url != NULL) {
            saga_cli_error("--store memory and --redis exclude each other");
            return SAGA_EXIT_USAGE;
        }
        saga_store_memory_options_t mo = {.keep_finished = true, .keep_history = true};
        if ((cs->store = saga_store_memory_new(loop, &mo)) == NULL) {
            saga_cli_error("out of memory");
            return SAGA_EXIT_ERROR;
        }
    } else if (strcmp(kind, "redis") != 0) {
        saga_cli_error("unknown --store '%s' (expected redis or memory)", kind);
        return SAGA_EXIT_USAGE;
    } else if (url != NULL) {
        if (saga_redis_url_parse(url, &cs->url, err, sizeof(err)) != 0) {
            saga_cli_error("%s: %s", o->redis_url ? "--redis" : "SAGA_REDIS_URL", err);
            return SAGA_EXIT_USAGE;
        }
        cs->have_url = true;
    } else {
        const char *dir = o->state_dir ? o->state_dir : ".saga";
        cs->embedded = saga_embedded_redis_start(loop, dir, on_embedded_ready, cs,
                                                 err, sizeof(err));
        if (cs->embedded == NULL) {
            saga_cli_error("%s", err);
            return SAGA_EXIT_ERROR;
        }
    }
    uv_timer_init(loop, &cs->kick);
    cs->kick.data = cs;
    if (cs->store != NULL)
        uv_timer_start(&cs->kick, on_kick, 0, 0);
    else if (cs->have_url)
        open_redis(cs);
    return 0;
}
