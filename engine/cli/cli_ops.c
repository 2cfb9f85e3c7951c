/*
 * cli_ops.c -- the client and operator commands, talking to the shared
 * Redis through the store: submit, status, wait, list, history, cancel,
 * retry.
 *
 * Each command connects like `saga run` does (--redis URL, SAGA_REDIS_URL,
 * else the private server of --state-dir), makes its few store calls
 * (saga/store.h, store/operator.h), prints (text, or JSON with --json) and
 * exits: 0 on success, 1 on errors, 2 on usage errors; `wait` exits like
 * `saga run` (0/3/4), or 5 on its timeout.
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
#include "cli/summary.h"
#include "core/stored_def.h"
#include "saga/definition.h"
#include "saga/errors.h"
#include "store/operator.h"
#include "util/text.h"

#define SAGA_EXIT_TIMEOUT 5
#define WAIT_POLL_MS 200

typedef struct ops_s ops_t;
typedef void (*ops_fn)(ops_t *o);

struct ops_s {
    const char *cmd;
    uv_loop_t loop;
    saga_cli_store_t cs;
    ops_fn run;
    int exit_code;
    bool json;
    bool done;
    /* arguments */
    const char *id;
    const char *name;
    const char *input_arg;
    bool has_state;
    saga_state_t state_filter;
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

/* A store call that was refused outright: say so and stop. */
static void refused(ops_t *o, int rc) {
    saga_cli_error("%s: %s", o->cmd, saga_strerror(rc));
    finish(o, SAGA_EXIT_ERROR);
}

static void print_json(json_t *v) {
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s != NULL)
        puts(s);
    free(s);
}

/* ---------------------------------------------------------------------- */
/* submit                                                                  */
/* ---------------------------------------------------------------------- */

static void on_submitted(int status, const char *why, bool fresh, void *data) {
    ops_t *o = data;
    if (status != 0) {
        saga_cli_error("submit: %s", why);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
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

static void on_submit_def(int status, const char *why, saga_def_t *def, saga_diags_t *diags,
                          void *data) {
    ops_t *o = data;
    (void)why;
    if (def == NULL) {
        if (status == SAGA_ECORRUPT)
            saga_cli_error("submit: the stored definition of saga '%s' does not load", o->name);
        else
            saga_cli_error("submit: the definition of saga '%s' (%.12s) is not in Redis: %s",
                           o->name, o->hash, saga_strerror(status));
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    (void)diags;
    char err[512];
    int rc = saga_def_check_input(def, o->input, err, sizeof(err));
    saga_def_free(def);
    if (rc != 0) {
        saga_cli_error("submit: saga '%s': %s; nothing enqueued", o->name, err);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    char *input = json_dumps(o->input, JSON_COMPACT);
    saga_operator_submit_t req = {o->new_id, o->name, o->hash, input ? input : "{}", 0};
    rc = saga_operator_submit(o->cs.store, &req, on_submitted, o);
    free(input);
    if (rc != 0)
        refused(o, rc);
}

static void on_known_names(int status, const char *why, const saga_operator_def_t *defs,
                           size_t n, void *data) {
    ops_t *o = data;
    (void)why;
    char known[1024] = "";
    size_t off = 0;
    for (size_t i = 0; status == 0 && i < n && off < sizeof(known) - 1; i++)
        off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
                                defs[i].name);
    saga_cli_error("submit: unknown saga '%s': no worker serves it%s%s%s; nothing "
                   "enqueued", o->name, off ? " (known: " : "", known, off ? ")" : "");
    finish(o, SAGA_EXIT_ERROR);
}

static void on_resolved(int status, const char *why, const char *hash, void *data) {
    ops_t *o = data;
    int rc;
    if (status == SAGA_ENOTFOUND) {
        if ((rc = saga_operator_definitions(o->cs.store, on_known_names, o)) != 0)
            on_known_names(rc, NULL, NULL, 0, o);
        return;
    }
    if (status != 0) {
        saga_cli_error("submit: %s", why);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    memcpy(o->hash, hash, 65);
    if ((rc = saga_stored_def_load(o->cs.store, o->hash, on_submit_def, o)) != 0)
        refused(o, rc);
}

static void run_submit(ops_t *o) {
    int rc = saga_operator_resolve(o->cs.store, o->name, on_resolved, o);
    if (rc != 0)
        refused(o, rc);
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

static void status_free(status_t *st) {
    saga_record_free(&st->rec);
    free(st);
}

/* The summary, with the definition when it could be read (else without:
 * a damaged or missing definition does not hide the record). */
static void on_status_def(int status, const char *why, saga_def_t *def, saga_diags_t *diags,
                          void *data) {
    status_t *st = data;
    ops_t *o = st->o;
    (void)status;
    (void)why;
    (void)diags;
    json_t *s = saga_summary_status(&st->rec, def);
    saga_def_free(def);
    if (o->json)
        print_json(s);
    else
        print_status_text(s);
    json_decref(s);
    status_free(st);
    finish(o, SAGA_EXIT_OK);
}

static void on_submitted_only(int status, const char *why, const saga_operator_state_t *s,
                              void *data) {
    ops_t *o = data;
    (void)s;
    if (status == 0) {
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
    if (status == SAGA_ENOTFOUND)
        saga_cli_error("%s: no saga %s", o->cmd, o->id);
    else
        saga_cli_error("%s: %s", o->cmd, why);
    finish(o, SAGA_EXIT_ERROR);
}

static void on_status_record(int status, const saga_record_t *rec, void *data) {
    ops_t *o = data;
    int rc;
    if (status == SAGA_ENOTFOUND) {
        if ((rc = saga_operator_state(o->cs.store, o->id, on_submitted_only, o)) != 0)
            refused(o, rc);
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
    size_t hl = 0;
    const char *h = saga_record_get(&st->rec, "def", &hl);
    char hash[65];
    snprintf(hash, sizeof(hash), "%.*s", h != NULL && hl == 64 ? 64 : 0, h ? h : "");
    if (hash[0] == '\0' || saga_stored_def_load(o->cs.store, hash, on_status_def, st) != 0)
        on_status_def(SAGA_ENOTFOUND, NULL, NULL, NULL, st);
}

static void run_status(ops_t *o) {
    saga_store_t *s = o->cs.store;
    int rc = s->ops->load(s, o->id, on_status_record, o);
    if (rc != 0)
        refused(o, rc);
}

/* ---------------------------------------------------------------------- */
/* wait                                                                    */
/* ---------------------------------------------------------------------- */

static void wait_poll(uv_timer_t *t);

static void on_wait_state(int status, const char *why, const saga_operator_state_t *s,
                          void *data) {
    ops_t *o = data;
    if (status == SAGA_ENOTFOUND) {
        saga_cli_error("wait: no saga %s", o->id);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    if (status != 0) {
        saga_cli_error("wait: %s", why);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    const char *state = s->created ? saga_state_name(s->state) : NULL;
    int code = -1;
    if (s->created) {
        if (s->state == SAGA_STATE_COMPLETED) code = SAGA_EXIT_OK;
        else if (s->state == SAGA_STATE_COMPENSATED) code = SAGA_EXIT_COMPENSATED;
        else if (s->state == SAGA_STATE_STUCK) code = SAGA_EXIT_STUCK;
    }
    if (code >= 0) {
        const char *reason = s->reason;
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
    int rc = saga_operator_state(o->cs.store, o->id, on_wait_state, o);
    if (rc != 0)
        refused(o, rc);
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

static int list_fetch(ops_t *o, const char *cursor);

/* Pages until --limit sagas are listed or the index ends. */
static void on_list_page(int status, const char *why, const saga_operator_page_t *p,
                         void *data) {
    ops_t *o = data;
    if (status != 0) {
        saga_cli_error("list: %s", why);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        const saga_operator_item_t *it = &p->items[i];
        char ts[40] = "?"; /* a record without its created time */
        if (it->created_ms >= 0)
            saga_iso_time(it->created_ms, ts, sizeof(ts));
        json_array_append_new(o->out, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}",
                                                "id", it->id, "saga", it->saga,
                                                "state", saga_state_name(it->state),
                                                "created", ts, "reason", it->reason,
                                                "owner", it->owner));
    }
    int rc;
    if (p->next == NULL || json_array_size(o->out) >= o->limit)
        list_print(o);
    else if ((rc = list_fetch(o, p->next)) != 0)
        refused(o, rc);
}

static int list_fetch(ops_t *o, const char *cursor) {
    size_t left = o->limit - json_array_size(o->out);
    saga_operator_list_query_t q = {o->has_state ? &o->state_filter : NULL, o->saga_filter,
                                    left < SAGA_OPERATOR_LIST_MAX ? left
                                                                  : SAGA_OPERATOR_LIST_MAX,
                                    cursor};
    return saga_operator_list(o->cs.store, &q, on_list_page, o);
}

static void run_list(ops_t *o) {
    o->out = json_array();
    int rc = list_fetch(o, NULL);
    if (rc != 0)
        refused(o, rc);
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
    int rc = s->ops->history(s, o->id, on_history, o);
    if (rc != 0)
        refused(o, rc);
}

/* ---------------------------------------------------------------------- */
/* cancel, retry                                                           */
/* ---------------------------------------------------------------------- */

/* Recorded, and whoever runs the saga told: report. */
static void on_requested(int status, const char *why, const saga_operator_request_t *res,
                         void *data) {
    ops_t *o = data;
    bool cancel = strcmp(o->cmd, "cancel") == 0;
    if (status != 0) {
        saga_cli_error("%s %s: %s", o->cmd, o->id, why);
        finish(o, SAGA_EXIT_ERROR);
        return;
    }
    const char *next;
    switch (res->next) {
    case SAGA_OPERATOR_OWNER:
        next = cancel ? "its worker compensates it" : "its worker continues it";
        break;
    case SAGA_OPERATOR_ORPHAN:
        next = "a worker takes it over";
        break;
    default:
        next = cancel ? "the process running it compensates at its next step; if none "
                        "runs it, `saga resume` does"
                      : "`saga resume` continues it";
        break;
    }
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:s?, s:s}", "id", o->id, "requested", o->cmd,
                              "owner", res->owner, "next", next);
        print_json(j);
        json_decref(j);
    } else {
        printf("saga %s: %s requested; %s\n", o->id, o->cmd, next);
    }
    finish(o, SAGA_EXIT_OK);
}

static void run_cancel(ops_t *o) {
    int rc = saga_operator_cancel(o->cs.store, o->id, "operator", on_requested, o);
    if (rc != 0)
        refused(o, rc);
}

static void run_retry(ops_t *o) {
    int rc = saga_operator_retry(o->cs.store, o->id, "operator", on_requested, o);
    if (rc != 0)
        refused(o, rc);
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
    o->run(o);
}

/* The options beyond --redis, --state-dir, --json and --help, as bits of
 * a command's `opts` mask. */
enum {
    OPT_INPUT = 1u << 0,
    OPT_ID = 1u << 1,
    OPT_TIMEOUT = 1u << 2,
    OPT_STATE = 1u << 3,
    OPT_SAGA = 1u << 4,
    OPT_LIMIT = 1u << 5,
};

typedef enum pos_e { POS_NONE, POS_NAME, POS_ID } pos_t;

typedef struct ops_cmd_s {
    const char *name;
    const char *args;     /* positional arguments, for usage */
    const char *summary;
    ops_fn run;
    pos_t pos;            /* the positional argument required, if any */
    unsigned opts;        /* the options it takes (OPT_*) */
} ops_cmd_t;

static const ops_cmd_t ops_cmds[] = {
    {"submit", "NAME [--input JSON|@FILE] [--id ID]",
     "enqueues a saga for the workers; prints its id", run_submit, POS_NAME, OPT_INPUT | OPT_ID},
    {"status", "ID", "a saga's state, steps, current step(s), owner and times", run_status,
     POS_ID, 0},
    {"wait", "ID [--timeout DURATION]",
     "waits until the saga is finished or stuck; exits like `saga run` (5: timeout)",
     run_wait, POS_ID, OPT_TIMEOUT},
    {"list", "[--state S] [--saga NAME] [--limit N]",
     "sagas (default 50): the unfinished ones newest first, then the finished ones, the\n"
     "last finished first. Read in pages: a saga that stays unfinished (or stays\n"
     "finished) the whole time is listed exactly once; one that finishes, is retried,\n"
     "is submitted or expires meanwhile may be listed twice or not at all",
     run_list,
     POS_NONE, OPT_STATE | OPT_SAGA | OPT_LIMIT},
    {"history", "ID", "a saga's transitions, in order", run_history, POS_ID, 0},
    {"cancel", "ID", "turns a running saga to backward recovery", run_cancel, POS_ID, 0},
    {"retry", "ID", "tries a stuck saga's failed step again (its budget restarts)",
     run_retry, POS_ID, 0},
};

static void usage(const ops_cmd_t *c, FILE *out) {
    fprintf(out, "usage: saga %s %s [OPTIONS]\n\n%s.\n\n", c->name, c->args, c->summary);
    fputs("      --redis URL         the shared Redis (default env SAGA_REDIS_URL, else\n"
          "                          the private redis-server of --state-dir)\n"
          "      --state-dir DIR     see `saga run --help` (default ./.saga)\n"
          "      --json              print JSON\n"
          "  -h, --help              show this help\n", out);
}

/* Takes the value of one command-specific option. Returns 0, or the exit
 * code of a usage error (reported). */
static int take_option(ops_t *o, int opt, const char *arg, const char **given_id) {
    switch (opt) {
    case OPT_INPUT: o->input_arg = arg; return 0;
    case OPT_ID: *given_id = arg; return 0;
    case OPT_TIMEOUT:
        if (saga_duration_parse(arg, &o->timeout_ms) != 0) {
            saga_cli_error("--timeout: '%s' is not a duration of at most 24h", arg);
            return SAGA_EXIT_USAGE;
        }
        return 0;
    case OPT_STATE:
        if (saga_state_parse(arg, &o->state_filter) != 0) {
            saga_cli_error("--state: unknown state '%s' (running, compensating, "
                           "completed, compensated, stuck)", arg);
            return SAGA_EXIT_USAGE;
        }
        o->has_state = true;
        return 0;
    case OPT_SAGA: o->saga_filter = arg; return 0;
    case OPT_LIMIT: {
        char *end;
        long n = strtol(arg, &end, 10);
        if (*end != '\0' || n < 1 || n > 100000) {
            saga_cli_error("--limit: expected 1..100000, got '%s'", arg);
            return SAGA_EXIT_USAGE;
        }
        o->limit = (size_t)n;
        return 0;
    }
    default: return SAGA_EXIT_USAGE;
    }
}

/* Parses the command line into `o`. Returns -1 to go on, or an exit code. */
static int parse_args(const ops_cmd_t *c, ops_t *o, saga_cli_store_opts_t *so, int argc,
                      char **argv) {
    static const struct option opts[] = {
        SAGA_CLI_OPTION_REDIS,
        SAGA_CLI_OPTION_STATE_DIR,
        {"json", no_argument, NULL, 'j'},
        {"input", required_argument, NULL, OPT_INPUT},
        {"id", required_argument, NULL, OPT_ID},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"state", required_argument, NULL, OPT_STATE},
        {"saga", required_argument, NULL, OPT_SAGA},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *given_id = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
        if (opt == 'i')
            opt = OPT_INPUT;
        if (saga_cli_store_option(so, opt, optarg))
            continue;
        if (opt == 'j') {
            o->json = true;
        } else if (opt == 'h') {
            usage(c, stdout);
            return SAGA_EXIT_OK;
        } else if (opt == '?' || opt > OPT_LIMIT || (c->opts & (unsigned)opt) == 0) {
            if (opt != '?')
                saga_cli_error("%s: option not understood here", c->name);
            usage(c, stderr);
            return SAGA_EXIT_USAGE;
        } else {
            int rc = take_option(o, opt, optarg, &given_id);
            if (rc != 0)
                return rc;
        }
    }
    if (argc - optind != (c->pos == POS_NONE ? 0 : 1)) {
        saga_cli_error("%s: expected %s", c->name, c->args);
        usage(c, stderr);
        return SAGA_EXIT_USAGE;
    }
    if (c->pos == POS_ID) {
        o->id = argv[optind];
        if (!saga_id_valid(o->id)) {
            saga_cli_error("%s: '%s' is not a saga id", c->name, o->id);
            return SAGA_EXIT_USAGE;
        }
    } else if (c->pos == POS_NAME) {
        o->name = argv[optind];
    }
    if (c->run == run_submit) {
        if (given_id != NULL && !saga_id_valid(given_id)) {
            saga_cli_error("--id: '%s' is not a valid saga id (1 to %d letters, digits, "
                           "'.', '_', ':' or '-')", given_id, SAGA_ID_MAX);
            return SAGA_EXIT_USAGE;
        }
        if (given_id != NULL)
            snprintf(o->new_id, sizeof(o->new_id), "%s", given_id);
        else
            saga_id_new(o->new_id);
        o->input = o->input_arg ? saga_cli_parse_input(o->input_arg) : json_object();
        if (o->input == NULL)
            return SAGA_EXIT_ERROR;
    }
    return -1;
}

static int ops_main(const ops_cmd_t *c, int argc, char **argv) {
    ops_t o;
    memset(&o, 0, sizeof(o));
    o.cmd = c->name;
    o.run = c->run;
    o.limit = 50;
    saga_cli_store_opts_t so = {.no_advice = true}; /* said by the engines */
    int rc = parse_args(c, &o, &so, argc, argv);
    if (rc < 0) {
        uv_loop_init(&o.loop);
        rc = saga_cli_store_open(&o.cs, &o.loop, &so, on_store, &o);
        if (rc == 0) {
            uv_run(&o.loop, UV_RUN_DEFAULT);
            rc = o.exit_code;
        }
        if (uv_loop_close(&o.loop) != 0)
            fprintf(stderr, "saga: internal: a libuv handle was left open at exit\n");
    }
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
