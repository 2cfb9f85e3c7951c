/*
 * cli_run.c -- `saga run FILE`: one saga, in this process, to its end.
 *
 * Progress goes to stderr as it happens; the summary (text, or one JSON
 * object with --json) goes to stdout once the saga is finished, read back
 * from the store so that it shows what is durable.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "engine.h"
#include "errors.h"
#include "log.h"
#include "store_memory.h"
#include "summary.h"

#define INTERRUPT_GRACE_MS 10000

typedef struct run_s {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    saga_store_t *store;
    saga_engine_t *engine;
    const saga_def_t *def;
    char id[SAGA_ID_MAX + 1];
    bool json;
    bool quiet;
    bool interrupted;
    int exit_code;
    json_t *summary;
} run_t;

static void usage(FILE *out) {
    fputs("usage: saga run FILE [OPTIONS]\n"
          "\n"
          "Runs one saga of the definition FILE to its end in this process.\n"
          "Progress goes to stderr; the summary to stdout.\n"
          "\n"
          "  -i, --input JSON|@FILE  the saga's input (a JSON object; @- reads stdin)\n"
          "      --id ID             the saga's id (default: a new ULID)\n"
          "  -p, --plugins DIR       also look for step plugins in DIR (repeatable;\n"
          "                          env SAGA_PLUGIN_PATH adds more)\n"
          "      --store memory      where checkpoints go (memory: not durable)\n"
          "      --json              print the summary as one JSON object\n"
          "  -q, --quiet             no progress lines\n"
          "  -h, --help              show this help\n"
          "\n"
          "Exit status: 0 completed, 3 compensated, 4 stuck, 1 error, 2 usage,\n"
          "130 interrupted.\n", out);
}

static const char *phase_word(saga_phase_t p) {
    return p == SAGA_PHASE_ACTION ? "action" : "compensation";
}

static void clock_prefix(char *buf, size_t len) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    snprintf(buf, len, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000L);
}

static void on_progress(const saga_progress_t *p, void *data) {
    run_t *r = data;
    if (r->quiet)
        return;
    char t[32];
    clock_prefix(t, sizeof(t));
    switch (p->kind) {
    case SAGA_PROGRESS_CALL_STARTED:
        fprintf(stderr, "%s  %-20s %-12s #%-2u started\n", t, p->step,
                phase_word(p->phase), p->attempt);
        break;
    case SAGA_PROGRESS_CALL_SUCCEEDED:
        fprintf(stderr, "%s  %-20s %-12s #%-2u succeeded (%" PRIu64 " ms)\n", t,
                p->step, phase_word(p->phase), p->attempt, p->elapsed_ms);
        break;
    case SAGA_PROGRESS_CALL_FAILED:
        fprintf(stderr, "%s  %-20s %-12s #%-2u failed (%s, %" PRIu64 " ms): %s", t,
                p->step, phase_word(p->phase), p->attempt,
                p->outcome == SAGA_OUTCOME_BUSINESS ? "business" : "technical",
                p->elapsed_ms, p->detail ? p->detail : "");
        if (p->will_retry)
            fprintf(stderr, "; retry in %" PRIu64 " ms", p->retry_in_ms);
        fputc('\n', stderr);
        break;
    case SAGA_PROGRESS_STEP_SKIPPED:
        fprintf(stderr, "%s  %-20s %-12s     nothing to undo (compensation: none)\n",
                t, p->step, phase_word(p->phase));
        break;
    case SAGA_PROGRESS_STATE:
        fprintf(stderr, "%s  saga %s: %s%s%s\n", t, p->saga_id, saga_state_name(p->state),
                p->detail ? ": " : "", p->detail ? p->detail : "");
        break;
    }
}

static void on_store_closed(void *data) { (void)data; }

static void on_signal_closed(uv_handle_t *h) { (void)h; }

static void on_engine_down(void *data) {
    run_t *r = data;
    uv_close((uv_handle_t *)&r->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&r->sigterm, on_signal_closed);
    r->store->ops->close(r->store, on_store_closed, r);
}

static void stop(run_t *r) {
    saga_engine_shutdown(r->engine, r->interrupted ? INTERRUPT_GRACE_MS : 0,
                         on_engine_down, r);
}

static void print_summary(run_t *r) {
    if (r->summary == NULL)
        return;
    if (r->json) {
        char *s = json_dumps(r->summary, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL) {
            puts(s);
            free(s);
        }
    } else {
        saga_summary_print_text(r->summary, stdout);
    }
    fflush(stdout);
}

static void on_history(int status, const saga_history_entry_t *h, size_t n,
                       void *data) {
    run_t *r = data;
    if (status == 0 && r->summary != NULL) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, saga_summary_history_entry(&h[i]));
        json_object_set_new(r->summary, "history", arr);
    } else if (status != 0) {
        saga_cli_error("cannot read the history of saga %s: %s", r->id,
                       saga_strerror(status));
    }
    print_summary(r);
    stop(r);
}

static void on_record(int status, const saga_record_t *rec, void *data) {
    run_t *r = data;
    if (status != 0) {
        saga_cli_error("cannot read saga %s back from the store: %s", r->id,
                       saga_strerror(status));
        r->exit_code = SAGA_EXIT_ERROR;
        stop(r);
        return;
    }
    r->summary = saga_summary_build(rec, r->def, NULL, 0);
    if (r->store->ops->history(r->store, r->id, on_history, r) != 0) {
        print_summary(r);
        stop(r);
    }
}

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state,
                        int status, void *data) {
    run_t *r = data;
    (void)e;
    if (status != 0) {
        saga_cli_error("saga %s stopped: %s", id, saga_strerror(status));
        r->exit_code = SAGA_EXIT_ERROR;
        stop(r);
        return;
    }
    r->exit_code = state == SAGA_STATE_COMPLETED     ? SAGA_EXIT_OK
                   : state == SAGA_STATE_COMPENSATED ? SAGA_EXIT_COMPENSATED
                                                     : SAGA_EXIT_STUCK;
    if (r->store->ops->load(r->store, id, on_record, r) != 0) {
        r->exit_code = SAGA_EXIT_ERROR;
        stop(r);
    }
}

static void on_signal(uv_signal_t *h, int signum) {
    run_t *r = h->data;
    if (r->interrupted) {
        fprintf(stderr, "saga: interrupted again, exiting now\n");
        _exit(SAGA_EXIT_INTERRUPTED);
    }
    r->interrupted = true;
    r->exit_code = SAGA_EXIT_INTERRUPTED;
    fprintf(stderr, "saga: %s: stopping; attempts in flight get %d s to finish "
            "(signal again to exit at once)\n", strsignal(signum),
            INTERRUPT_GRACE_MS / 1000);
    stop(r);
}

int saga_cli_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"id", required_argument, NULL, 'I'},
        {"plugins", required_argument, NULL, 'p'},
        {"store", required_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    run_t r;
    memset(&r, 0, sizeof(r));
    const char *input_arg = NULL, *id = NULL, *store_kind = "memory";
    saga_strv_t plugins = {NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, "i:p:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'i': input_arg = optarg; break;
        case 'I': id = optarg; break;
        case 'p':
            if (saga_strv_push(&plugins, optarg) != 0) {
                saga_strv_free(&plugins);
                return SAGA_EXIT_ERROR;
            }
            break;
        case 'S': store_kind = optarg; break;
        case 'j': r.json = true; break;
        case 'q': r.quiet = true; break;
        case 'h':
            usage(stdout);
            saga_strv_free(&plugins);
            return SAGA_EXIT_OK;
        default:
            usage(stderr);
            saga_strv_free(&plugins);
            return SAGA_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        saga_cli_error(optind >= argc ? "run: no FILE given"
                                      : "run: exactly one FILE, got more");
        usage(stderr);
        saga_strv_free(&plugins);
        return SAGA_EXIT_USAGE;
    }
    if (strcmp(store_kind, "memory") != 0) {
        saga_cli_error("run: unknown --store '%s' (expected: memory)", store_kind);
        saga_strv_free(&plugins);
        return SAGA_EXIT_USAGE;
    }

    /* Everything that can be checked before anything runs is checked first. */
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_def_t *def = saga_def_load_file(argv[optind], &diags);
    if (def == NULL) {
        saga_diags_print(&diags, stderr);
        saga_diags_close(&diags);
        saga_strv_free(&plugins);
        return SAGA_EXIT_ERROR;
    }
    json_t *input = input_arg ? saga_cli_parse_input(input_arg) : json_object();
    if (input == NULL) {
        saga_def_free(def);
        saga_diags_close(&diags);
        saga_strv_free(&plugins);
        return SAGA_EXIT_ERROR;
    }

    int exit_code = SAGA_EXIT_ERROR;
    char err[512];
    uv_loop_init(&r.loop);
    saga_store_memory_options_t mopt = {.keep_finished = true, .keep_history = true};
    r.store = saga_store_memory_new(&r.loop, &mopt);
    saga_engine_options_t eopt = {
        .store = r.store,
        .plugin_dirs = (const char *const *)plugins.v,
        .on_progress = on_progress,
        .on_finished = on_finished,
        .data = &r,
    };
    r.engine = r.store ? saga_engine_new(&r.loop, &eopt, err, sizeof(err)) : NULL;
    if (r.engine == NULL) {
        saga_cli_error("%s", r.store ? err : "out of memory");
        saga_def_free(def);
        goto out_store;
    }
    saga_engine_def_t *edef = saga_engine_register(r.engine, def, &diags);
    if (edef == NULL) {
        saga_diags_print(&diags, stderr);
        goto out_engine;
    }
    r.def = saga_engine_def(edef);
    int rc = saga_engine_start(r.engine, edef, id, input, r.id, err, sizeof(err));
    if (rc != 0) {
        saga_cli_error("cannot start saga %s: %s", r.def->name, err);
        goto out_engine;
    }
    if (!r.quiet)
        fprintf(stderr, "saga %s: started %s (definition %.12s)\n", r.def->name,
                r.id, r.def->hash);
    uv_signal_init(&r.loop, &r.sigint);
    uv_signal_init(&r.loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    exit_code = r.exit_code;
    saga_engine_free(r.engine);
    json_decref(r.summary);
    goto out;

out_engine:
    /* Nothing ran: shut the engine down and let the loop settle. */
    saga_engine_shutdown(r.engine, 0, NULL, NULL);
    r.store->ops->close(r.store, on_store_closed, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    saga_engine_free(r.engine);
    goto out;
out_store:
    if (r.store != NULL)
        r.store->ops->close(r.store, on_store_closed, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
out:
    if (uv_loop_close(&r.loop) != 0)
        saga_error("internal: a libuv handle was left open at exit");
    json_decref(input);
    saga_diags_close(&diags);
    saga_strv_free(&plugins);
    return exit_code;
}
