/*
 * intake.c -- see intake.h.
 *
 * The stream's replies are decoded by intake_decode.c.
 */
#include "store/intake.h"
#include "store/intake_decode.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_conn.h"
#include "saga/errors.h"
#include "redis/cluster_reply.h"
#include "store/call.h"
#include "store/keys.h"
#include "store/store_redis.h"
#include "util/log.h"

/* One shard's stream and the connection of its blocking reads: a blocking
 * command holds its connection, and the shards' streams live in different
 * slots (on Redis Cluster, nodes), which one command cannot read together.
 *
 * On Redis Cluster the connection goes to the primary that serves the
 * stream's slot, and to it only (single_node), not through a cluster
 * client of its own, which would connect to every node of the cluster: K
 * connections per worker, not K times the nodes. When the stream moves
 * (a MOVED reply: resharding, a failover whose old primary came back as a
 * replica) or its node cannot be reached and the store's map names another
 * (a failover), the reader opens a connection to the new node and closes
 * the old one; the read in flight is answered SAGA_EUNAVAILABLE and the
 * worker reads again once the new connection is READY. */
typedef struct reader_s {
    struct saga_intake_s *in;
    unsigned shard;
    saga_redis_t *blocking;  /* XREADGROUP BLOCK on this shard's stream */
    bool reading;            /* a blocking read is in flight */
    saga_intake_requests_cb read_cb;
    void *read_data;
    char key[64];            /* saga:{TAG}:intake */
    bool to_node;            /* Redis Cluster: `blocking` goes to one node */
    unsigned slot;           /* the stream's slot */
    char node[160];          /* the display of the node's URL (to_node) */
} reader_t;

struct saga_intake_s {
    uv_loop_t *loop;
    saga_store_t *store;
    saga_redis_t *conn;      /* the store's, borrowed */
    saga_redis_url_t url;    /* the blocking connections' */
    char *consumer;
    saga_intake_event_cb on_event;
    void *data;
    bool connect_asked;      /* saga_intake_connect() was called */
    bool closing;
    unsigned nreaders;       /* the store's shards, once it knows them */
    reader_t *readers;
    unsigned open_readers;   /* blocking connections not closed yet */
    uv_idle_t later;         /* closing without readers: the deferred callback */
    void (*closed)(void *data);
    void *closed_data;
};

/* Runs cb with what the reply to XREADGROUP or, `autoclaim`, XAUTOCLAIM
 * holds (intake_decode.h). */
static void deliver(const redisReply *r, bool autoclaim, bool closing, unsigned shard,
                    saga_intake_requests_cb cb, void *data) {
    const char *why = NULL;
    int status = saga__call_status(r, &why);
    if (status == SAGA_EUNAVAILABLE && closing) {
        cb(SAGA_ECLOSING, NULL, 0, "the intake is closing", data);
        return;
    }
    if (status != 0) {
        cb(status, NULL, 0, why, data);
        return;
    }
    saga_intake_request_t *reqs = NULL;
    size_t n = 0;
    status = saga_intake_decode(r, autoclaim, shard, &reqs, &n, &why);
    if (status != 0)
        cb(status, NULL, 0, why, data);
    else
        cb(0, reqs, n, NULL, data);
    free(reqs);
}

/* ---------------------------------------------------------------------- */
/* Shards                                                                  */
/* ---------------------------------------------------------------------- */

static void on_blocking_event(saga_redis_t *r, saga_redis_event_t ev, const char *errstr,
                              void *data);
static void on_blocking_closed(void *data);

/* A blocking connection for reader rd to `url`: to that node only when
 * rd->to_node. NULL when out of memory. */
static saga_redis_t *reader_conn(reader_t *rd, const saga_redis_url_t *url) {
    saga_redis_options_t io;
    memset(&io, 0, sizeof(io));
    io.retry_first_connect = true;
    io.client_name = "saga-intake";
    io.single_node = rd->to_node;
    return saga_redis_new(rd->in->loop, url, &io, on_blocking_event, rd);
}

/* Points reader rd at the node of `url`: a new connection (started when
 * the intake was asked to connect), the old one closed (its read in
 * flight, if any, is answered with a NULL reply). Keeps the old one when
 * memory is short: the next MOVED or failed connection tries again. */
static void reader_move(reader_t *rd, const saga_redis_url_t *url, const char *why) {
    saga_intake_t *in = rd->in;
    saga_redis_t *nc = reader_conn(rd, url);
    if (nc == NULL)
        return;
    saga_redis_t *old = rd->blocking;
    rd->blocking = nc;
    in->open_readers++;
    saga_info("intake: shard %u's stream is read from %s now (%s)", rd->shard, url->display,
              why);
    snprintf(rd->node, sizeof(rd->node), "%s", url->display);
    if (in->connect_asked)
        saga_redis_start(nc);
    saga_redis_close(old, on_blocking_closed, in);
}

/* The store's map names another primary for rd's stream than the one rd
 * reads from: move there. */
static void reader_follow_map(reader_t *rd, const char *why) {
    saga_redis_url_t url;
    if (saga_redis_cluster_slot_url(rd->in->conn, rd->slot, &url) != 0)
        return; /* no map, or the slot unserved for now: ask again later */
    if (strcmp(url.display, rd->node) != 0)
        reader_move(rd, &url, why);
    saga_redis_url_close(&url);
}

/* Once the store knows the shards (it is ready), one reader per shard, its
 * connection started if saga_intake_connect() was called. Returns 0 (also
 * while the shards are not known yet: no reader then), or -ENOMEM. */
static int ensure_readers(saga_intake_t *in) {
    if (in->readers != NULL || in->closing)
        return 0;
    const saga_shards_t *sh = saga_store_redis_shards(in->store);
    if (sh == NULL)
        return 0;
    reader_t *rd = calloc(sh->k, sizeof(*rd));
    if (rd == NULL)
        return -ENOMEM;
    bool cluster = saga_redis_is_cluster(in->conn);
    for (unsigned s = 0; s < sh->k; s++) {
        rd[s].in = in;
        rd[s].shard = s;
        int kl = saga_shards_key(sh, s, SAGA_SHARD_INTAKE, NULL, rd[s].key, sizeof(rd[s].key));
        saga_redis_url_t node;
        /* On a cluster, the primary of the stream's slot; else (or when
         * the map has none for it now) the URL given, as a cluster client
         * on a cluster. */
        if (kl >= 0 && cluster) {
            rd[s].slot = saga_redis_key_slot(rd[s].key, (size_t)kl);
            rd[s].to_node = saga_redis_cluster_slot_url(in->conn, rd[s].slot, &node) == 0;
        }
        if (rd[s].to_node)
            snprintf(rd[s].node, sizeof(rd[s].node), "%s", node.display);
        if (kl < 0 || (rd[s].blocking = reader_conn(&rd[s], rd[s].to_node ? &node : &in->url))
                          == NULL) {
            if (rd[s].to_node)
                saga_redis_url_close(&node);
            for (unsigned j = 0; j < s; j++) /* never started: freed without callbacks */
                saga_redis_close(rd[j].blocking, NULL, NULL);
            free(rd);
            return -ENOMEM;
        }
        if (rd[s].to_node)
            saga_redis_url_close(&node);
    }
    in->readers = rd;
    in->nreaders = sh->k;
    in->open_readers = sh->k;
    if (in->connect_asked)
        for (unsigned s = 0; s < sh->k; s++)
            saga_redis_start(rd[s].blocking); /* only fails once started or closed */
    return 0;
}

unsigned saga_intake_shards(saga_intake_t *in) {
    return ensure_readers(in) == 0 ? in->nreaders : 0;
}

/* The reader of shard `s`, or NULL (shards unknown, `s` out of range). */
static reader_t *reader(saga_intake_t *in, unsigned s) {
    if (ensure_readers(in) != 0 || s >= in->nreaders)
        return NULL;
    return &in->readers[s];
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                */
/* ---------------------------------------------------------------------- */

typedef struct call_s {
    union {
        saga_intake_requests_cb requests;
        saga_intake_done_cb done;
    } cb;
    bool autoclaim;
    unsigned shard;
    unsigned left;           /* create_group: shards not answered yet */
    int status;              /* create_group: the first failure */
    char why[200];
    void *data;
} call_t;

static call_t *call_new(void *data) {
    call_t *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->data = data;
    return c;
}

/* What a send returned: 0, or the call's status (c freed). */
static int sent(call_t *c, int rc) {
    if (rc != 0)
        free(c);
    return saga__call_send_status(rc);
}

static void on_requests(saga_redis_t *conn, redisReply *r, void *data) {
    call_t *c = data;
    (void)conn;
    deliver(r, c->autoclaim, false, c->shard, c->cb.requests, c->data);
    free(c);
}

static void on_done(saga_redis_t *conn, redisReply *r, void *data) {
    call_t *c = data;
    (void)conn;
    const char *why;
    int status = saga__call_status(r, &why);
    c->cb.done(status, why, c->data);
    free(c);
}

static void on_group(saga_redis_t *conn, redisReply *r, void *data) {
    call_t *c = data;
    (void)conn;
    const char *why;
    int status = saga__call_status(r, &why);
    if (status == SAGA_ESTORE && strncmp(why, "BUSYGROUP", 9) == 0)
        status = 0, why = NULL; /* there already */
    else if (status == 0 && (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0))
        status = SAGA_ESTORE, why = "expected OK";
    if (status != 0 && c->status == 0) {
        c->status = status;
        snprintf(c->why, sizeof(c->why), "%s", why ? why : "");
    }
    if (--c->left > 0)
        return;
    c->cb.done(c->status, c->status != 0 ? c->why : NULL, c->data);
    free(c);
}

int saga_intake_create_group(saga_intake_t *in, saga_intake_done_cb cb, void *data) {
    if (in->closing)
        return SAGA_ECLOSING;
    int rc = ensure_readers(in);
    if (rc != 0)
        return rc;
    if (in->nreaders == 0)
        return SAGA_EUNAVAILABLE; /* the store is not ready yet */
    call_t *c = call_new(data);
    if (c == NULL)
        return -ENOMEM;
    c->cb.done = cb;
    /* One callback for every shard's group; a shard whose command cannot
     * be sent counts as unavailable. */
    c->left = in->nreaders;
    unsigned sent_n = 0;
    for (unsigned s = 0; s < in->nreaders; s++) {
        if (saga_redis_command(in->conn, on_group, c, "XGROUP CREATE %s %s 0 MKSTREAM",
                               in->readers[s].key, SAGA_INTAKE_GROUP) == 0) {
            sent_n++;
            continue;
        }
        c->left--;
        if (c->status == 0) {
            c->status = SAGA_EUNAVAILABLE;
            snprintf(c->why, sizeof(c->why), "not connected");
        }
    }
    if (sent_n == 0) {
        free(c);
        return SAGA_EUNAVAILABLE;
    }
    return 0;
}

int saga_intake_read_pending(saga_intake_t *in, unsigned shard, size_t count,
                             saga_intake_requests_cb cb, void *data) {
    if (in->closing)
        return SAGA_ECLOSING;
    reader_t *rd = reader(in, shard);
    if (count == 0 || rd == NULL)
        return -EINVAL;
    call_t *c = call_new(data);
    if (c == NULL)
        return -ENOMEM;
    c->cb.requests = cb;
    c->shard = shard;
    /* (hiredis's formatter knows no %zu: numbers go through %llu.) */
    return sent(c, saga_redis_command(in->conn, on_requests, c,
                                      "XREADGROUP GROUP %s %s COUNT %llu STREAMS %s 0",
                                      SAGA_INTAKE_GROUP, in->consumer,
                                      (unsigned long long)count, rd->key));
}

int saga_intake_autoclaim(saga_intake_t *in, unsigned shard, uint64_t idle_ms, size_t count,
                          saga_intake_requests_cb cb, void *data) {
    if (in->closing)
        return SAGA_ECLOSING;
    reader_t *rd = reader(in, shard);
    if (count == 0 || rd == NULL)
        return -EINVAL;
    call_t *c = call_new(data);
    if (c == NULL)
        return -ENOMEM;
    c->cb.requests = cb;
    c->autoclaim = true;
    c->shard = shard;
    return sent(c, saga_redis_command(in->conn, on_requests, c,
                                      "XAUTOCLAIM %s %s %s %llu 0-0 COUNT %llu",
                                      rd->key, SAGA_INTAKE_GROUP, in->consumer,
                                      (unsigned long long)idle_ms,
                                      (unsigned long long)count));
}

int saga_intake_done(saga_intake_t *in, unsigned shard, const char *entry,
                     saga_intake_done_cb cb, void *data) {
    return saga_intake_done_many(in, shard, &entry, 1, cb, data);
}

int saga_intake_done_many(saga_intake_t *in, unsigned shard, const char *const *entries,
                          size_t n, saga_intake_done_cb cb, void *data) {
    if (in->closing)
        return SAGA_ECLOSING;
    reader_t *rd = reader(in, shard);
    if (n == 0 || n > SAGA_INTAKE_DONE_MAX || rd == NULL)
        return -EINVAL;
    const char *argv[5 + SAGA_INTAKE_DONE_MAX];
    size_t lens[5 + SAGA_INTAKE_DONE_MAX];
    argv[0] = "FCALL", argv[1] = "saga_intake_done", argv[2] = "1";
    argv[3] = rd->key, argv[4] = SAGA_INTAKE_GROUP;
    for (size_t i = 0; i < n; i++)
        argv[5 + i] = entries[i];
    for (size_t i = 0; i < 5 + n; i++)
        lens[i] = strlen(argv[i]);
    call_t *c = NULL;
    if (cb != NULL) { /* nobody waits: no context to allocate */
        if ((c = call_new(data)) == NULL)
            return -ENOMEM;
        c->cb.done = cb;
    }
    int rc = saga_redis_command_argv(in->conn, c ? on_done : NULL, c, (int)(5 + n), argv, lens);
    return c ? sent(c, rc) : saga__call_send_status(rc);
}

/* Ten years: idle beyond any lease, and still a time after the epoch
 * (Redis resets an IDLE that would put the delivery before it to now). */
#define RELEASE_IDLE_MS "315360000000"

int saga_intake_release(saga_intake_t *in, unsigned shard, const char *const *entries,
                        size_t n, saga_intake_done_cb cb, void *data) {
    if (in->closing)
        return SAGA_ECLOSING;
    reader_t *rd = reader(in, shard);
    if (n == 0 || n > SAGA_INTAKE_DONE_MAX || rd == NULL)
        return -EINVAL;
    const char *argv[8 + SAGA_INTAKE_DONE_MAX];
    size_t lens[8 + SAGA_INTAKE_DONE_MAX];
    size_t k = 0;
    argv[k++] = "XCLAIM", argv[k++] = rd->key, argv[k++] = SAGA_INTAKE_GROUP;
    argv[k++] = in->consumer, argv[k++] = "0";
    for (size_t i = 0; i < n; i++)
        argv[k++] = entries[i];
    argv[k++] = "IDLE", argv[k++] = RELEASE_IDLE_MS, argv[k++] = "JUSTID";
    for (size_t i = 0; i < k; i++)
        lens[i] = strlen(argv[i]);
    call_t *c = NULL;
    if (cb != NULL) {
        if ((c = call_new(data)) == NULL)
            return -ENOMEM;
        c->cb.done = cb;
    }
    int rc = saga_redis_command_argv(in->conn, c ? on_done : NULL, c, (int)k, argv, lens);
    return c ? sent(c, rc) : saga__call_send_status(rc);
}

/* ---------------------------------------------------------------------- */
/* The blocking reads                                                      */
/* ---------------------------------------------------------------------- */

static void on_new(saga_redis_t *conn, redisReply *r, void *data) {
    reader_t *rd = data;
    saga_intake_t *in = rd->in;
    saga_intake_requests_cb cb = rd->read_cb;
    void *cb_data = rd->read_data;
    rd->reading = false;
    rd->read_cb = NULL;
    if (rd->to_node && !in->closing && conn == rd->blocking && r != NULL &&
        r->type == REDIS_REPLY_ERROR) {
        int slot;
        char name[128];
        if (saga_cluster_redirect_parse(r->str, &slot, name, sizeof(name)) == 0) {
            saga_redis_url_t url;
            if (saga_redis_cluster_name_url(in->conn, name, &url) == 0) {
                reader_move(rd, &url, "MOVED");
                saga_redis_url_close(&url);
            }
            cb(SAGA_EUNAVAILABLE, NULL, 0, "the stream moved to another node", cb_data);
            return;
        }
        /* the stream being moved (ASK), or the node not ready to answer:
         * read again later, not reported */
        if (strncmp(r->str, "ASK ", 4) == 0 || saga__call_transient(r)) {
            cb(SAGA_EUNAVAILABLE, NULL, 0, r->str, cb_data);
            return;
        }
    }
    deliver(r, false, in->closing, rd->shard, cb, cb_data);
}

int saga_intake_read_new(saga_intake_t *in, unsigned shard, size_t count, uint64_t block_ms,
                         saga_intake_requests_cb cb, void *data) {
    if (in->closing)
        return SAGA_ECLOSING;
    reader_t *rd = reader(in, shard);
    if (count == 0 || rd == NULL)
        return -EINVAL;
    if (rd->reading)
        return -EBUSY;
    if (!saga_redis_ready(rd->blocking))
        return SAGA_EUNAVAILABLE;
    char counts[24], blocks[24];
    snprintf(counts, sizeof(counts), "%zu", count);
    snprintf(blocks, sizeof(blocks), "%" PRIu64, block_ms);
    const char *argv[] = {"XREADGROUP", "GROUP", SAGA_INTAKE_GROUP, in->consumer, "COUNT",
                          counts, "BLOCK", blocks, "STREAMS", rd->key, ">"};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    int rc = saga_redis_command_argv(rd->blocking, on_new, rd, 11, argv, lens);
    if (rc != 0)
        return saga__call_send_status(rc);
    rd->reading = true;
    rd->read_cb = cb;
    rd->read_data = data;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */
/* ---------------------------------------------------------------------- */

static void on_blocking_event(saga_redis_t *r, saga_redis_event_t ev, const char *errstr,
                              void *data) {
    reader_t *rd = data;
    saga_intake_t *in = rd->in;
    if (in->closing || r != rd->blocking)
        return; /* closing, or a connection the reader moved away from */
    if (rd->to_node && ev != SAGA_REDIS_READY)
        reader_follow_map(rd, ev == SAGA_REDIS_LOST ? "its node was lost"
                                                    : "its node cannot be reached");
    if (in->on_event == NULL)
        return;
    in->on_event(in, ev == SAGA_REDIS_READY  ? SAGA_INTAKE_READY
                     : ev == SAGA_REDIS_LOST ? SAGA_INTAKE_LOST
                                             : SAGA_INTAKE_CONNECT_FAILED,
                 errstr, in->data);
}

int saga_intake_new(uv_loop_t *loop, saga_store_t *s, const saga_redis_url_t *url,
                    const char *consumer, saga_intake_event_cb on_event, void *data,
                    saga_intake_t **out, char *err, size_t errlen) {
    *out = NULL;
    saga_redis_t *conn = saga__call_conn(s);
    if (conn == NULL) {
        snprintf(err, errlen, "the intake needs a Redis store");
        return -EINVAL;
    }
    if (url == NULL || (url->transport == SAGA_REDIS_TCP
                            ? url->host == NULL || url->host[0] == '\0'
                            : url->path == NULL || url->path[0] == '\0')) {
        snprintf(err, errlen, "the intake needs a Redis URL with a host or a socket");
        return -EINVAL;
    }
    if (consumer == NULL || consumer[0] == '\0') {
        snprintf(err, errlen, "the intake needs a consumer name");
        return -EINVAL;
    }
    saga_intake_t *in = calloc(1, sizeof(*in));
    if (in == NULL || (in->consumer = strdup(consumer)) == NULL) {
        free(in);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (saga_redis_url_copy(&in->url, url) != 0) {
        free(in->consumer);
        free(in);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    in->loop = loop;
    in->store = s;
    in->conn = conn;
    in->on_event = on_event;
    in->data = data;
    *out = in;
    return 0;
}

int saga_intake_connect(saga_intake_t *in) {
    if (in->closing)
        return SAGA_ECLOSING;
    if (in->connect_asked)
        return -EALREADY;
    in->connect_asked = true;
    if (in->readers != NULL)
        for (unsigned s = 0; s < in->nreaders; s++)
            saga_redis_start(in->readers[s].blocking);
    return ensure_readers(in);
}

bool saga_intake_ready(saga_intake_t *in, unsigned shard) {
    reader_t *rd = in->closing ? NULL : reader(in, shard);
    return rd != NULL && saga_redis_ready(rd->blocking);
}

static void intake_free(saga_intake_t *in) {
    void (*closed)(void *) = in->closed;
    void *closed_data = in->closed_data;
    free(in->readers);
    saga_redis_url_close(&in->url);
    free(in->consumer);
    free(in);
    if (closed != NULL)
        closed(closed_data);
}

static void on_later_closed(uv_handle_t *h) { intake_free(h->data); }

static void on_blocking_closed(void *data) {
    saga_intake_t *in = data;
    if (--in->open_readers == 0)
        intake_free(in);
}

void saga_intake_close(saga_intake_t *in, void (*closed)(void *data), void *data) {
    if (in == NULL || in->closing)
        return;
    in->closing = true;
    in->closed = closed;
    in->closed_data = data;
    if (in->open_readers == 0) {
        /* No reader was made: nothing to wait for. A callback still runs
         * later, never from inside this call (a closed handle's callback
         * comes in the loop's next turn). */
        if (closed == NULL) {
            intake_free(in);
        } else {
            uv_idle_init(in->loop, &in->later);
            in->later.data = in;
            uv_close((uv_handle_t *)&in->later, on_later_closed);
        }
        return;
    }
    for (unsigned s = 0; s < in->nreaders; s++)
        saga_redis_close(in->readers[s].blocking, on_blocking_closed, in);
}
