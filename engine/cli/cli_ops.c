/*
 * cli_ops.c -- the client and operator commands, talking to the shared
 * Redis: submit, status, wait, list, history, cancel, retry.
 *
 * Each command connects like `saga run` does (--redis URL, SAGA_REDIS_URL,
 * else the private server of --state-dir), does its few round trips, prints
 * (text, or JSON with --json) and exits: 0 on success, 1 on errors, 2 on
 * usage errors; `wait` exits like `saga run` (0/3/4), or 5 on its timeout.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cli/cli.h"
#include "cli/cli_store.h"
#include "saga/engine.h"
#include "saga/errors.h"
#include "store/keys.h"
#include "redis/redis_conn.h"
#include "store/store_redis.h"
#include "cli/summary.h"
#include "util/bytes.h"
#include "util/text.h"

#define SAGA_EXIT_TIMEOUT 5
#define WAIT_POLL_MS 200
#define LIST_PAGE 200

typedef struct ops_s ops_t;
typedef void (*ops_fn)(ops_t *o);

struct ops_s {
    const char *cmd;
    uv_loop_t loop;
    saga_cli_store_t cs;
    saga_redis_t *conn;
    ops_fn run;
    int exit_code;
    bool json;
    bool done;
    /* arguments */
    const char *id;
    const char *name;
    const char *input_arg;
    const char *state_filter;
    const char *saga_filter;
    size_t limit;
    uint64_t timeout_ms;
    /* work in progress */
    json_t *input;
    json_t *out;        /* what --json prints */
    char hash[65];
    char new_id[SAGA_ID_MAX + 1];
    uv_timer_t timer;
    bool timer_on;
    uint64_t started;
    size_t offset;
    bool list_finished; /* list: past the unfinished sagas */
    size_t pending;
};

static void on_signal_free(uv_handle_t *h) { (void)h; }

static void on_closed(void *data) {
    ops_t *o = data;
    if (o->timer_on)
        uv_close((uv_handle_t *)&o->timer, on_signal_free);
}

static void finish(ops_t *o, int code) {
    if (o->done)
        return;
    o->done = true;
    o->exit_code = code;
    if (o->timer_on)
        uv_timer_stop(&o->timer);
    saga_cli_store_close(&o->cs, on_closed, o);
}

static void print_json(json_t *v) {
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s != NULL)
        puts(s);
    free(s);
}

/* An error reply or a lost connection, as one message. */
static bool reply_failed(ops_t *o, const redisReply *r, const char *what) {
    if (r == NULL) {
        saga_cli_error("%s: lost the connection to Redis", what);
    } else if (r->type == REDIS_REPLY_ERROR) {
        /* Our functions' errors read "SAGA<CODE> message": show the message. */
        const char *msg = r->str;
        if (strncmp(msg, "SAGA", 4) == 0 && strchr(msg, ' ') != NULL)
            msg = strchr(msg, ' ') + 1;
        saga_cli_error("%s: %s", what, msg);
    } else {
        return false;
    }
    finish(o, SAGA_EXIT_ERROR);
    return true;
}


/* ---------------------------------------------------------------------- */
/* submit                                                                  */
/* ---------------------------------------------------------------------- */

static void on_submitted(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    if (reply_failed(o, r, "submit"))
        return;
    bool fresh = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:b}", "id", o->new_id, "saga", o->name,
                              "submitted", fresh);
        print_json(j);
        json_decref(j);
    } else {
        puts(o->new_id);
        if (!fresh)
            fprintf(stderr, "saga: %s was submitted before; nothing new enqueued\n", o->new_id);
    }
    finish(o, SAGA_EXIT_OK);
}

static void on_submit_def(int status, const char *text, size_t len, void *data) {
    ops_t *o = data;
    if (status != 0) {
        saga_cli_error("submit: the definition of saga '%s' (%.12s) is not in Redis: %s",
                       o->name, o->hash, saga_strerror(status));
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer(o->name, text, len, &d);
    saga_diags_close(&d);
    char err[512];
    if (def == NULL) {
        saga_cli_error("submit: the stored definition of saga '%s' does not load", o->name);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    int rc = saga_def_check_input(def, o->input, err, sizeof(err));
    saga_def_free(def);
    if (rc != 0) {
        saga_cli_error("submit: saga '%s': %s; nothing enqueued", o->name, err);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    char *input = json_dumps(o->input, JSON_COMPACT);
    char retention[24];
    snprintf(retention, sizeof(retention), "%llu", (unsigned long long)SAGA_DEFAULT_RETENTION_MS);
    saga_redis_command(o->conn, on_submitted, o, "FCALL saga_submit 2 %s %s %s %s %s %s %s",
                       SAGA_KEY_INTAKE, SAGA_KEY_SUBMITTED, o->new_id, o->name, o->hash,
                       input ? input : "{}", retention);
    free(input);
}

static void on_known_names(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    char known[1024] = "";
    size_t off = 0;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements && off < sizeof(known) - 1; i++)
            off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s",
                                    i ? ", " : "", r->element[i]->str);
    saga_cli_error("submit: unknown saga '%s': no worker serves it%s%s%s; nothing "
                   "enqueued", o->name, off ? " (known: " : "", known, off ? ")" : "");
    finish(o, SAGA_EXIT_ERROR);
}

static void on_name(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    if (reply_failed(o, r, "submit"))
        return;
    if (r->type != REDIS_REPLY_STRING || r->len != 64) {
        saga_redis_command(o->conn, on_known_names, o, "HKEYS %s", SAGA_KEY_DEFS);
        return;
    }
    memcpy(o->hash, r->str, 65);
    saga_store_t *s = o->cs.store;
    if (s->ops->get_definition(s, o->hash, on_submit_def, o) != 0)
        finish(o, SAGA_EXIT_ERROR);
}

static void run_submit(ops_t *o) {
    saga_redis_command(o->conn, on_name, o, "HGET %s %s", SAGA_KEY_DEFS, o->name);
}

/* ---------------------------------------------------------------------- */
/* status                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct status_s {
    ops_t *o;
    saga_record_t rec;  /* owned copy */
} status_t;

static void print_status_text(const json_t *s) {
    saga_summary_print_text(s, stdout);
    const char *def = json_string_value(json_object_get(s, "definition"));
    const char *created = json_string_value(json_object_get(s, "created"));
    const char *updated = json_string_value(json_object_get(s, "updated"));
    const char *owner = json_string_value(json_object_get(s, "owner"));
    printf("  definition %.12s, created %s, updated %s, owner ", def ? def : "?",
           created ? created : "?", updated ? updated : "?");
    saga_text_puts(stdout, owner ? owner : "(none)");
    fputc('\n', stdout);
    json_t *cur = json_object_get(s, "current");
    if (json_array_size(cur) > 0) {
        fputs("  current:", stdout);
        size_t i;
        json_t *c;
        json_array_foreach(cur, i, c) {
            fputc(' ', stdout);
            saga_text_puts(stdout, json_string_value(json_object_get(c, "step")));
            printf(" (%s)", json_string_value(json_object_get(c, "status")));
        }
        fputc('\n', stdout);
    }
}

/* Adds "current" (steps with an attempt running or waiting) and "updated". */
static void decorate(json_t *s, const saga_record_t *rec) {
    json_t *cur = json_array();
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(s, "steps"), i, st) {
        const char *status = json_string_value(json_object_get(st, "status"));
        if (strcmp(status, "running") == 0 || strcmp(status, "waiting") == 0 ||
            strcmp(status, "compensating") == 0)
            json_array_append_new(cur, json_pack("{s:O, s:s}", "step",
                                                 json_object_get(st, "name"), "status", status));
    }
    json_object_set_new(s, "current", cur);
    char ts[40];
    if (saga_summary_time_field(rec, "updated", ts, sizeof(ts)) == 0)
        json_object_set_new(s, "updated", json_string(ts));
}

static void status_free(status_t *st) {
    saga_record_free(&st->rec);
    free(st);
}

static void on_status_def(int status, const char *text, size_t len, void *data) {
    status_t *st = data;
    ops_t *o = st->o;
    saga_def_t *def = NULL;
    if (status == 0) {
        saga_diags_t d;
        saga_diags_init(&d);
        def = saga_def_load_buffer("stored", text, len, &d);
        saga_diags_close(&d);
    }
    json_t *s = saga_summary_build(&st->rec, def, NULL, 0);
    decorate(s, &st->rec);
    saga_def_free(def);
    if (o->json)
        print_json(s);
    else
        print_status_text(s);
    json_decref(s);
    status_free(st);
    finish(o, SAGA_EXIT_OK);
}

static void on_submitted_only(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        /* Enqueued, not yet taken by a worker. */
        if (o->json) {
            json_t *j = json_pack("{s:s, s:s}", "id", o->id, "state", "submitted");
            print_json(j);
            json_decref(j);
        } else {
            printf("saga %s: submitted, waiting for a worker\n", o->id);
        }
        finish(o, SAGA_EXIT_OK);
        return;
    }
    saga_cli_error("%s: no saga %s", o->cmd, o->id);
    finish(o, SAGA_EXIT_ERROR);
}

static void on_status_record(int status, const saga_record_t *rec, void *data) {
    ops_t *o = data;
    if (status == SAGA_ENOTFOUND) {
        saga_redis_command(o->conn, on_submitted_only, o, "ZSCORE %s %s", SAGA_KEY_SUBMITTED,
                           o->id);
        return;
    }
    if (status != 0) {
        saga_cli_error("status: saga %s: %s", o->id, saga_strerror(status));
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    status_t *st = calloc(1, sizeof(*st));
    if (st == NULL || saga_record_copy(&st->rec, rec) != 0) {
        free(st);
        saga_cli_error("status: out of memory");
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    st->o = o;
    size_t hl;
    const char *hash = saga_record_get(&st->rec, "def", &hl);
    saga_store_t *s = o->cs.store;
    if (hash == NULL || s->ops->get_definition(s, hash, on_status_def, st) != 0)
        on_status_def(SAGA_ENOTFOUND, NULL, 0, st);
}

static void run_status(ops_t *o) {
    saga_store_t *s = o->cs.store;
    if (s->ops->load(s, o->id, on_status_record, o) != 0)
        finish(o, SAGA_EXIT_ERROR);
}

/* ---------------------------------------------------------------------- */
/* wait                                                                    */
/* ---------------------------------------------------------------------- */

static void wait_poll(uv_timer_t *t);

static void on_wait_state(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    if (reply_failed(o, r, "wait"))
        return;
    const char *state = NULL, *reason = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            state = r->element[0]->str;
        if (r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len > 0)
            reason = r->element[1]->str;
        if (state == NULL && r->element[2]->type == REDIS_REPLY_NIL) {
            saga_cli_error("wait: no saga %s", o->id);
            finish(o, SAGA_EXIT_ERROR);
            return;
        }
    }
    int code = -1;
    if (state != NULL) {
        if (strcmp(state, "completed") == 0) code = SAGA_EXIT_OK;
        else if (strcmp(state, "compensated") == 0) code = SAGA_EXIT_COMPENSATED;
        else if (strcmp(state, "stuck") == 0) code = SAGA_EXIT_STUCK;
    }
    if (code >= 0) {
        if (o->json) {
            json_t *j = json_pack("{s:s, s:s, s:s?}", "id", o->id, "state", state, "reason", reason);
            print_json(j);
            json_decref(j);
        } else {
            printf("saga %s: %s%s", o->id, state, reason ? ": " : "");
            saga_text_puts(stdout, reason);
            fputc('\n', stdout);
        }
        finish(o, code);
        return;
    }
    if (o->timeout_ms > 0 && uv_now(&o->loop) - o->started >= o->timeout_ms) {
        saga_cli_error("wait: saga %s is still %s after %llu ms", o->id,
                       state ? state : "waiting for a worker", (unsigned long long)o->timeout_ms);
        finish(o, SAGA_EXIT_TIMEOUT);
        return;
    }
    uv_timer_start(&o->timer, wait_poll, WAIT_POLL_MS, 0);
}

static void wait_poll(uv_timer_t *t) {
    ops_t *o = t->data;
    /* state, reason, and whether it was submitted (not created yet). */
    const char *script = "return {redis.call('HGET', KEYS[1], 'state'), "
                         "redis.call('HGET', KEYS[1], 'reason'), "
                         "redis.call('ZSCORE', KEYS[2], ARGV[1])}";
    char rec[SAGA_ID_MAX + 16];
    snprintf(rec, sizeof(rec), SAGA_KEY_RECORD_FMT, o->id);
    /* Two keys of different slots: fine on one Redis, read-only. */
    saga_redis_command(o->conn, on_wait_state, o, "EVAL %s 2 %s %s %s", script, rec,
                       SAGA_KEY_SUBMITTED, o->id);
}

static void run_wait(ops_t *o) {
    uv_timer_init(&o->loop, &o->timer);
    o->timer.data = o;
    o->timer_on = true;
    o->started = uv_now(&o->loop);
    wait_poll(&o->timer);
}

/* ---------------------------------------------------------------------- */
/* list                                                                    */
/* ---------------------------------------------------------------------- */

/* One page of ids, whose records are read in parallel into ordered slots. */
typedef struct list_page_s {
    ops_t *o;
    size_t n;
    size_t left;
    json_t **slots;
    char **ids;
} list_page_t;

typedef struct list_item_s {
    list_page_t *page;
    size_t index;
} list_item_t;

static void list_fetch(ops_t *o);

static void list_print(ops_t *o) {
    if (o->json) {
        print_json(o->out);
    } else {
        printf("%-28s %-20s %-13s %-24s %s\n", "ID", "SAGA", "STATE", "CREATED", "REASON");
        size_t i;
        json_t *e;
        json_array_foreach(o->out, i, e) {
            const char *reason = json_string_value(json_object_get(e, "reason"));
            saga_text_pad(stdout, json_string_value(json_object_get(e, "id")), 28);
            fputc(' ', stdout);
            saga_text_pad(stdout, json_string_value(json_object_get(e, "saga")), 20);
            fputc(' ', stdout);
            saga_text_pad(stdout, json_string_value(json_object_get(e, "state")), 13);
            printf(" %-24s ", json_string_value(json_object_get(e, "created")));
            if (reason != NULL)
                saga_text_put(stdout, reason, strlen(reason), 60);
            fputc('\n', stdout);
        }
    }
    finish(o, SAGA_EXIT_OK);
}

static void page_free(list_page_t *p) {
    for (size_t i = 0; i < p->n; i++) {
        json_decref(p->slots[i]);
        free(p->ids[i]);
    }
    free(p->slots);
    free(p->ids);
    free(p);
}

/* A state filter may rule out one of the two parts of the index. */
static bool only_unfinished(const ops_t *o) {
    return o->state_filter != NULL && strcmp(o->state_filter, "completed") != 0 &&
           strcmp(o->state_filter, "compensated") != 0;
}

static void page_done(list_page_t *p) {
    ops_t *o = p->o;
    for (size_t i = 0; i < p->n && json_array_size(o->out) < o->limit; i++)
        if (p->slots[i] != NULL)
            json_array_append(o->out, p->slots[i]);
    bool room = json_array_size(o->out) < o->limit;
    bool more = room && p->n == LIST_PAGE;
    o->offset += p->n;
    page_free(p);
    if (!more && room && !o->list_finished && !only_unfinished(o)) {
        o->list_finished = true; /* then the finished ones */
        o->offset = 0;
        more = true;
    }
    if (more)
        list_fetch(o);
    else
        list_print(o);
}

static const char *str_or(const redisReply *r, const char *dflt) {
    return r->type == REDIS_REPLY_STRING && r->len > 0 ? r->str : dflt;
}

static void on_list_record(saga_redis_t *c, redisReply *r, void *data) {
    list_item_t *it = data;
    list_page_t *p = it->page;
    ops_t *o = p->o;
    (void)c;
    /* [state, saga, created, reason, owner]; an expired record (the index
     * lags until the next gc) has no state and is skipped. */
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 5 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        const char *state = r->element[0]->str, *saga = str_or(r->element[1], "");
        if ((o->state_filter == NULL || strcmp(state, o->state_filter) == 0) &&
            (o->saga_filter == NULL || strcmp(saga, o->saga_filter) == 0)) {
            char ts[40] = "?"; /* a created time that is not one */
            uint64_t ms;
            if (r->element[2]->type == REDIS_REPLY_STRING &&
                saga_parse_u64(r->element[2]->str, (size_t)r->element[2]->len, &ms) == 0 &&
                ms <= INT64_MAX)
                saga_iso_time((int64_t)ms, ts, sizeof(ts));
            p->slots[it->index] = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}",
                                            "id", p->ids[it->index], "saga", saga,
                                            "state", state, "created", ts,
                                            "reason", str_or(r->element[3], NULL),
                                            "owner", str_or(r->element[4], NULL));
        }
    }
    free(it);
    if (--p->left == 0)
        page_done(p);
}

static void on_list_ids(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    if (reply_failed(o, r, "list"))
        return;
    list_page_t *p = calloc(1, sizeof(*p));
    p->o = o;
    p->n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    p->slots = calloc(p->n + 1, sizeof(*p->slots));
    p->ids = calloc(p->n + 1, sizeof(*p->ids));
    for (size_t i = 0; i < p->n; i++)
        p->ids[i] = strdup(r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : "");
    if (p->n == 0) {
        page_done(p);
        return;
    }
    p->left = p->n;
    for (size_t i = 0; i < p->n; i++) {
        list_item_t *it = calloc(1, sizeof(*it));
        it->page = p;
        it->index = i;
        if (saga_redis_command(o->conn, on_list_record, it, "HMGET " SAGA_KEY_RECORD_FMT
                               " state saga created reason owner", p->ids[i]) != 0) {
            free(it);
            if (--p->left == 0)
                page_done(p);
        }
    }
}

/* Unfinished sagas first, newest first (their scores are -created), then
 * finished ones, the last finished first (scores: expiry); see keys.h. */
static void list_fetch(ops_t *o) {
    /* hiredis's formatter knows no %zu: numbers go through %llu. */
    if (saga_redis_command(o->conn, on_list_ids, o,
                           o->list_finished ? "ZREVRANGEBYSCORE %s +inf 0 LIMIT %llu %d"
                                            : "ZRANGEBYSCORE %s -inf (0 LIMIT %llu %d",
                           SAGA_KEY_SAGAS, (unsigned long long)o->offset, LIST_PAGE) != 0) {
        saga_cli_error("list: cannot send the command");
        finish(o, SAGA_EXIT_ERROR);
    }
}

static void run_list(ops_t *o) {
    o->out = json_array();
    o->list_finished = o->state_filter != NULL && !only_unfinished(o);
    list_fetch(o);
}

/* ---------------------------------------------------------------------- */
/* history                                                                 */
/* ---------------------------------------------------------------------- */

static void on_history(int status, const saga_history_entry_t *h, size_t n, void *data) {
    ops_t *o = data;
    if (status != 0) {
        saga_cli_error("history: saga %s: %s", o->id, saga_strerror(status));
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    if (n == 0) {
        saga_cli_error("history: no saga %s", o->id);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, saga_summary_history_entry(&h[i]));
        print_json(arr);
        json_decref(arr);
    } else {
        saga_history_print_text(h, n, stdout);
    }
    finish(o, SAGA_EXIT_OK);
}

static void run_history(ops_t *o) {
    saga_store_t *s = o->cs.store;
    if (s->ops->history(s, o->id, on_history, o) != 0)
        finish(o, SAGA_EXIT_ERROR);
}

/* ---------------------------------------------------------------------- */
/* cancel, retry                                                           */
/* ---------------------------------------------------------------------- */

/* The wake-up (or orphan listing) is answered: report and finish. */
static void on_woken(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    char what[SAGA_ID_MAX + 16];
    snprintf(what, sizeof(what), "%s %s", o->cmd, o->id);
    if (reply_failed(o, r, what))
        return;
    if (o->json)
        print_json(o->out);
    else
        printf("saga %s: %s requested; %s\n", o->id, o->cmd,
               json_string_value(json_object_get(o->out, "next")));
    finish(o, SAGA_EXIT_OK);
}

static void on_operator(saga_redis_t *c, redisReply *r, void *data) {
    ops_t *o = data;
    (void)c;
    bool cancel = strcmp(o->cmd, "cancel") == 0;
    char what[SAGA_ID_MAX + 16];
    snprintf(what, sizeof(what), "%s %s", o->cmd, o->id);
    if (reply_failed(o, r, what))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER) {
        saga_cli_error("%s: unexpected answer from Redis", what);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    const char *owner = r->element[0]->str;
    bool managed = r->element[1]->integer == 1;
    const char *next;
    int rc = 0;
    if (!managed) {
        next = cancel ? "the process running it compensates at its next step; if none "
                        "runs it, `saga resume` does"
                      : "`saga resume` continues it";
    } else if (owner[0] != '\0') {
        /* Its owner looks at its wake-up list a few times a second. */
        next = cancel ? "its worker compensates it" : "its worker continues it";
        rc = saga_redis_command(o->conn, on_woken, o, "RPUSH " SAGA_KEY_WAKE "%s %s", owner,
                                o->id);
    } else {
        next = "a worker takes it over";
        rc = saga_redis_command(o->conn, on_woken, o, "SADD %s %s", SAGA_KEY_ORPHANS, o->id);
    }
    o->out = json_pack("{s:s, s:s, s:s?, s:s}", "id", o->id, "requested", o->cmd,
                       "owner", owner[0] ? owner : NULL, "next", next);
    if (rc != 0) {
        saga_cli_error("%s: recorded, but the worker could not be told: %s", what,
                       strerror(-rc));
        finish(o, SAGA_EXIT_ERROR);
    } else if (!managed) {
        on_woken(NULL, r, o); /* nobody to tell */
    }
    /* Otherwise on_woken finishes, once the wake-up is in Redis. */
}

static void run_operator(ops_t *o) {
    saga_redis_command(o->conn, on_operator, o, "FCALL saga_%s 2 " SAGA_KEY_RECORD_FMT " "
                       SAGA_KEY_HISTORY_FMT " %s", o->cmd, o->id, o->id, "operator");
}

/* ---------------------------------------------------------------------- */
/* Command lines                                                           */
/* ---------------------------------------------------------------------- */

static void on_store(saga_cli_store_t *cs, int status, void *data) {
    ops_t *o = data;
    if (status != 0) {
        o->exit_code = SAGA_EXIT_ERROR;
        saga_cli_store_close(cs, on_closed, o);
        return;
    }
    o->conn = saga_store_redis_conn(cs->store);
    o->run(o);
}

typedef struct ops_cmd_s {
    const char *name;
    const char *args;     /* positional arguments, for usage */
    const char *summary;
    ops_fn run;
    int npos;             /* positional arguments required */
} ops_cmd_t;

static const ops_cmd_t ops_cmds[] = {
    {"submit", "NAME [--input JSON|@FILE] [--id ID]",
     "enqueues a saga for the workers; prints its id", run_submit, 1},
    {"status", "ID", "a saga's state, steps, current step(s), owner and times", run_status, 1},
    {"wait", "ID [--timeout DURATION]",
     "waits until the saga is finished or stuck; exits like `saga run` (5: timeout)",
     run_wait, 1},
    {"list", "[--state S] [--saga NAME] [--limit N]", "sagas, newest first", run_list, 0},
    {"history", "ID", "a saga's transitions, in order", run_history, 1},
    {"cancel", "ID", "turns a running saga to backward recovery", run_operator, 1},
    {"retry", "ID", "tries a stuck saga's failed step again (its budget restarts)",
     run_operator, 1},
};

static void usage(const ops_cmd_t *c, FILE *out) {
    fprintf(out, "usage: saga %s %s [OPTIONS]\n\n%s.\n\n", c->name, c->args, c->summary);
    fputs("      --redis URL         the shared Redis (default env SAGA_REDIS_URL, else\n"
          "                          the private redis-server of --state-dir)\n"
          "      --state-dir DIR     see `saga run --help` (default ./.saga)\n"
          "      --json              print JSON\n"
          "  -h, --help              show this help\n", out);
}

static int ops_main(const ops_cmd_t *c, int argc, char **argv) {
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'R'},
        {"state-dir", required_argument, NULL, 'D'},
        {"json", no_argument, NULL, 'j'},
        {"input", required_argument, NULL, 'i'},
        {"id", required_argument, NULL, 'I'},
        {"timeout", required_argument, NULL, 't'},
        {"state", required_argument, NULL, 's'},
        {"saga", required_argument, NULL, 'n'},
        {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ops_t o;
    memset(&o, 0, sizeof(o));
    o.cmd = c->name;
    o.run = c->run;
    o.limit = 50;
    saga_cli_store_opts_t so = {0};
    int opt, rc = SAGA_EXIT_USAGE;
    const char *given_id = NULL;
    while ((opt = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'R': so.redis_url = optarg; break;
        case 'D': so.state_dir = optarg; break;
        case 'j': o.json = true; break;
        case 'i': ok = c->run == run_submit; o.input_arg = optarg; break;
        case 'I': ok = c->run == run_submit; given_id = optarg; break;
        case 't': {
            ok = c->run == run_wait;
            int e = saga_duration_parse(optarg, &o.timeout_ms);
            if (ok && e != 0) {
                saga_cli_error("--timeout: '%s' is not a duration of at most 24h", optarg);
                return SAGA_EXIT_USAGE;
            }
            break;
        }
        case 's': {
            ok = c->run == run_list;
            saga_state_t st;
            if (ok && saga_state_parse(optarg, &st) != 0) {
                saga_cli_error("--state: unknown state '%s' (running, compensating, "
                               "completed, compensated, stuck)", optarg);
                return SAGA_EXIT_USAGE;
            }
            o.state_filter = optarg;
            break;
        }
        case 'n': ok = c->run == run_list; o.saga_filter = optarg; break;
        case 'l': {
            ok = c->run == run_list;
            char *end;
            long n = strtol(optarg, &end, 10);
            if (ok && (*end != '\0' || n < 1 || n > 100000)) {
                saga_cli_error("--limit: expected 1..100000, got '%s'", optarg);
                return SAGA_EXIT_USAGE;
            }
            o.limit = (size_t)n;
            break;
        }
        case 'h': usage(c, stdout); return SAGA_EXIT_OK;
        default: ok = false; break;
        }
        if (!ok) {
            if (opt != '?')
                saga_cli_error("%s: option not understood here", c->name);
            usage(c, stderr);
            return SAGA_EXIT_USAGE;
        }
    }
    if (argc - optind != c->npos) {
        saga_cli_error("%s: expected %s", c->name, c->args);
        usage(c, stderr);
        return SAGA_EXIT_USAGE;
    }
    if (c->npos == 1) {
        if (c->run == run_submit) {
            o.name = argv[optind];
        } else {
            o.id = argv[optind];
            if (!saga_id_valid(o.id)) {
                saga_cli_error("%s: '%s' is not a saga id", c->name, o.id);
                return SAGA_EXIT_USAGE;
            }
        }
    }
    if (c->run == run_submit) {
        if (given_id != NULL && !saga_id_valid(given_id)) {
            saga_cli_error("--id: '%s' is not a valid saga id (1 to %d letters, digits, "
                           "'.', '_', ':' or '-')", given_id, SAGA_ID_MAX);
            return SAGA_EXIT_USAGE;
        }
        if (given_id != NULL)
            snprintf(o.new_id, sizeof(o.new_id), "%s", given_id);
        else
            saga_id_new(o.new_id);
        o.input = o.input_arg ? saga_cli_parse_input(o.input_arg) : json_object();
        if (o.input == NULL)
            return SAGA_EXIT_ERROR;
    }
    uv_loop_init(&o.loop);
    rc = saga_cli_store_open(&o.cs, &o.loop, &so, on_store, &o);
    if (rc == 0) {
        uv_run(&o.loop, UV_RUN_DEFAULT);
        rc = o.exit_code;
    }
    if (uv_loop_close(&o.loop) != 0)
        fprintf(stderr, "saga: internal: a libuv handle was left open at exit\n");
    json_decref(o.input);
    json_decref(o.out);
    return rc;
}

static int dispatch(const char *name, int argc, char **argv) {
    for (size_t i = 0; i < sizeof(ops_cmds) / sizeof(ops_cmds[0]); i++)
        if (strcmp(ops_cmds[i].name, name) == 0)
            return ops_main(&ops_cmds[i], argc, argv);
    return SAGA_EXIT_USAGE;
}

int saga_cli_submit(int argc, char **argv) { return dispatch("submit", argc, argv); }
int saga_cli_status(int argc, char **argv) { return dispatch("status", argc, argv); }
int saga_cli_wait(int argc, char **argv) { return dispatch("wait", argc, argv); }
int saga_cli_list(int argc, char **argv) { return dispatch("list", argc, argv); }
int saga_cli_history(int argc, char **argv) { return dispatch("history", argc, argv); }
int saga_cli_cancel(int argc, char **argv) { return dispatch("cancel", argc, argv); }
int saga_cli_retry(int argc, char **argv) { return dispatch("retry", argc, argv); }
