/*
 * submit_bulk.c -- `saga-submit-bulk`: N start requests through the
 * operator API, for benchmarks that time the workers alone.
 *
 * What `saga submit NAME` does N times (saga_operator_resolve, then
 * saga_operator_submit per id), with C submits in flight on one store, so
 * that the requests follow the store's layout (on a Redis Cluster each goes
 * to its shard's intake stream) without a process per saga. The saga
 * `name` must be served already (a worker published its definition). Ids
 * are PREFIX followed by a zero-padded counter (26 characters in all by
 * default, like a ULID). SAGA_SHARDS sets the shards a fresh cluster
 * records, as for `saga`.
 *
 *   saga-submit-bulk --redis URL --name NAME [-n SAGAS] [-c IN_FLIGHT]
 *                    [--prefix PREFIX]
 *
 * Prints one JSON object: submitted, fresh (enqueued now, not before),
 * seconds. Exits 1 when a submit fails (the first failure on stderr), 2 on
 * bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "redis/redis_url.h"
#include "saga/state.h"
#include "saga/store.h"
#include "store/operator.h"
#include "store/shards.h"
#include "store/store_redis.h"

typedef struct bulk_s {
    uv_loop_t loop;
    saga_store_t *store;
    const char *name, *prefix;
    char hash[SAGA_DEF_HASH_LEN + 1];
    uint64_t n, c, sent, done, fresh;
    uint64_t t0, t1;
    int failed;
} bulk_t;

static void on_closed(void *data) { (void)data; }

static void finish(bulk_t *b) {
    if (b->store != NULL) {
        b->store->ops->close(b->store, on_closed, b);
        b->store = NULL;
    }
}

static void submit_next(bulk_t *b);

static void on_submitted(int status, const char *why, bool fresh, void *data) {
    bulk_t *b = data;
    if (status != 0) {
        if (!b->failed)
            fprintf(stderr, "saga-submit-bulk: submit: %s\n", why ? why : "failed");
        b->failed = 1;
        finish(b);
        return;
    }
    b->fresh += fresh;
    if (++b->done == b->n) {
        b->t1 = uv_hrtime();
        finish(b);
        return;
    }
    if (!b->failed)
        submit_next(b);
}

static void submit_next(bulk_t *b) {
    if (b->sent == b->n)
        return;
    char id[SAGA_ID_MAX + 1];
    int width = 26 - (int)strlen(b->prefix);
    snprintf(id, sizeof(id), "%s%0*" PRIu64, b->prefix, width > 0 ? width : 1, b->sent++);
    saga_operator_submit_t req = {id, b->name, b->hash, "{}", 0};
    int rc = saga_operator_submit(b->store, &req, on_submitted, b);
    if (rc != 0) {
        fprintf(stderr, "saga-submit-bulk: submit %s: error %d\n", id, rc);
        b->failed = 1;
        finish(b);
    }
}

static void on_resolved(int status, const char *why, const char *hash, void *data) {
    bulk_t *b = data;
    if (status != 0) {
        fprintf(stderr, "saga-submit-bulk: saga '%s': %s\n", b->name, why ? why : "not served");
        b->failed = 1;
        finish(b);
        return;
    }
    snprintf(b->hash, sizeof(b->hash), "%s", hash);
    b->t0 = uv_hrtime();
    for (uint64_t i = 0; i < b->c && !b->failed; i++)
        submit_next(b);
}

static void on_ready(saga_store_t *s, int status, const char *msg, void *data) {
    bulk_t *b = data;
    (void)s;
    int rc = status;
    if (status != 0)
        fprintf(stderr, "saga-submit-bulk: %s\n", msg ? msg : "cannot open the store");
    else if ((rc = saga_operator_resolve(b->store, b->name, on_resolved, b)) != 0)
        fprintf(stderr, "saga-submit-bulk: resolve '%s': error %d\n", b->name, rc);
    if (rc != 0) {
        b->failed = 1;
        finish(b);
    }
}

static void usage(FILE *to) {
    fprintf(to, "usage: saga-submit-bulk --redis URL --name NAME [-n SAGAS] [-c IN_FLIGHT] "
                "[--prefix PREFIX]\n");
}

int main(int argc, char **argv) {
    bulk_t b = {.n = 100000, .c = 1000, .prefix = "r2"};
    const char *url_text = NULL;
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'R'},       {"name", required_argument, NULL, 'N'},
        {"sagas", required_argument, NULL, 'n'},       {"concurrency", required_argument, NULL, 'c'},
        {"prefix", required_argument, NULL, 'p'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "n:c:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 'R': url_text = optarg; break;
        case 'N': b.name = optarg; break;
        case 'n': b.n = strtoull(optarg, &end, 10); break;
        case 'c': b.c = strtoull(optarg, &end, 10); break;
        case 'p': b.prefix = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end != NULL && (*end != '\0' || end == optarg)) {
            fprintf(stderr, "saga-submit-bulk: -%c: not a number: %s\n", o, optarg);
            return 2;
        }
    }
    if (url_text == NULL || b.name == NULL || b.n == 0 || b.c == 0) {
        usage(stderr);
        return 2;
    }
    char probe[SAGA_ID_MAX + 2];
    int len = snprintf(probe, sizeof(probe), "%s%0*d", b.prefix,
                       26 - (int)strlen(b.prefix) > 0 ? 26 - (int)strlen(b.prefix) : 1, 0);
    if (len < 0 || (size_t)len >= sizeof(probe) || !saga_id_valid(probe)) {
        fprintf(stderr, "saga-submit-bulk: --prefix '%s' makes no valid saga id\n", b.prefix);
        return 2;
    }
    saga_store_redis_options_t ro = {0};
    ro.conn.client_name = "saga-submit-bulk";
    const char *shards = getenv("SAGA_SHARDS");
    if (shards != NULL && shards[0] != '\0') {
        char *end;
        errno = 0;
        unsigned long k = strtoul(shards, &end, 10);
        if (errno != 0 || *end != '\0' || k < 1 || k > SAGA_SHARDS_MAX) {
            fprintf(stderr, "saga-submit-bulk: SAGA_SHARDS='%s': expected 1 to %d\n", shards,
                    SAGA_SHARDS_MAX);
            return 2;
        }
        ro.shards = (unsigned)k;
    }
    saga_redis_url_t url;
    char err[256];
    if (saga_redis_url_parse(url_text, &url, err, sizeof(err)) != 0) {
        fprintf(stderr, "saga-submit-bulk: --redis: %s\n", err);
        return 2;
    }
    uv_loop_init(&b.loop);
    b.store = saga_store_redis_new(&b.loop, &url, &ro, on_ready, &b);
    if (b.store == NULL) {
        fprintf(stderr, "saga-submit-bulk: out of memory\n");
        saga_redis_url_close(&url);
        uv_loop_close(&b.loop);
        return 1;
    }
    uv_run(&b.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&b.loop) != 0)
        fprintf(stderr, "saga-submit-bulk: a libuv handle was left open\n");
    saga_redis_url_close(&url);
    if (b.failed || b.done != b.n)
        return 1;
    printf("{\"submitted\":%" PRIu64 ",\"fresh\":%" PRIu64 ",\"seconds\":%.3f}\n", b.n, b.fresh,
           (double)(b.t1 - b.t0) / 1e9);
    return 0;
}
