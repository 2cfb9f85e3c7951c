/*
 * cli_run.c -- `saga run FILE` and `saga resume [ID...]`: sagas run in this
 * process until each one is finished (completed, compensated or stuck).
 *
 * Both share one session: the store chosen by the flags (cli_store.h), an
 * engine, progress lines on stderr as things happen, and each saga's
 * summary on stdout once it is finished, read back from the store so that
 * it shows what is durable.
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

#include "cli/cli.h"
#include "cli/cli_store.h"
#include "saga/engine.h"
#include "saga/errors.h"
#include "util/log.h"
#include "cli/summary.h"
#include "util/text.h"

#define INTERRUPT_GRACE_MS 10000

typedef struct session_s {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    bool signals_on;
    saga_cli_store_t cs;
    saga_engine_t *engine;
    /* what to do once the store is ready */
    bool resume;
    saga_def_t *def;          /* run: handed to the engine */
    json_t *input;            /* run */
    const char *id;           /* run: --id */
    char **ids;               /* resume: the ids given (NULL: all) */
    int nids;
    /* progress */
    bool json;
    bool quiet;
    bool interrupted;
    bool stopping;
    size_t expected;          /* sagas we wait for */
    size_t done;              /* of those, finished and summarised */
    size_t pending_resumes;
    bool started;             /* every start/resume was issued */
    int worst;                /* exit code so far */
    json_t *summaries;        /* resume --json: collected */
    saga_strv_t plugins;
    char first_id[SAGA_ID_MAX + 1];
} session_t;

static void clock_prefix(char *buf, size_t len) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    snprintf(buf, len, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000L);
}

static void on_progress(const saga_progress_t *p, void *data) {
    session_t *s = data;
    if (s->quiet)
        return;
    char t[32], who[SAGA_ID_MAX + 8] = "";
    clock_prefix(t, sizeof(t));
    if (s->expected > 1 || s->resume)
        snprintf(who, sizeof(who), "%s ", p->saga_id);
    switch (p->kind) {
    case SAGA_PROGRESS_CALL_STARTED:
        fprintf(stderr, "%s  %s%-20s %-12s #%-2u started\n", t, who, p->step,
                saga_phase_name(p->phase), p->attempt);
        break;
    case SAGA_PROGRESS_CALL_SUCCEEDED:
        fprintf(stderr, "%s  %s%-20s %-12s #%-2u succeeded (%" PRIu64 " ms)\n", t, who,
                p->step, saga_phase_name(p->phase), p->attempt, p->elapsed_ms);
        break;
    case SAGA_PROGRESS_CALL_FAILED:
        fprintf(stderr, "%s  %s%-20s %-12s #%-2u failed (%s, %" PRIu64 " ms): ", t, who,
                p->step, saga_phase_name(p->phase), p->attempt,
                p->outcome == SAGA_OUTCOME_BUSINESS ? "business" : "technical",
                p->elapsed_ms);
        saga_text_puts(stderr, p->detail);
        if (p->will_retry)
            fprintf(stderr, "; retry in %" PRIu64 " ms", p->retry_in_ms);
        fputc('\n', stderr);
        break;
    case SAGA_PROGRESS_STEP_SKIPPED:
        fprintf(stderr, "%s  %s%-20s %-12s     nothing to undo (compensation: none)\n",
                t, who, p->step, saga_phase_name(p->phase));
        break;
    case SAGA_PROGRESS_STATE:
        fprintf(stderr, "%s  saga %s: %s%s", t, p->saga_id, saga_state_name(p->state),
                p->detail ? ": " : "");
        saga_text_puts(stderr, p->detail);
        fputc('\n', stderr);
        break;
    }
}

/* ---------------------------------------------------------------------- */
/* Ending                                                                  */
/* ---------------------------------------------------------------------- */

static void on_store_closed(void *data) {
    session_t *s = data;
    if (s->signals_on) {
        saga_cli_signals_close(&s->sigint, &s->sigterm);
        s->signals_on = false;
    }
}

static void on_engine_down(void *data) {
    session_t *s = data;
    saga_cli_store_close(&s->cs, on_store_closed, s);
}

static void stop(session_t *s) {
    if (s->stopping)
        return;
    s->stopping = true;
    if (s->engine != NULL)
        saga_engine_shutdown(s->engine, s->interrupted ? INTERRUPT_GRACE_MS : 0,
                             on_engine_down, s);
    else
        saga_cli_store_close(&s->cs, on_store_closed, s);
}

static void note_exit(session_t *s, int code) {
    /* Worst first: error > stuck > compensated > completed. */
    static const int rank[] = {[SAGA_EXIT_OK] = 0, [SAGA_EXIT_COMPENSATED] = 1,
                               [SAGA_EXIT_STUCK] = 2, [SAGA_EXIT_ERROR] = 3};
    if (code == SAGA_EXIT_INTERRUPTED || s->worst == SAGA_EXIT_INTERRUPTED) {
        s->worst = SAGA_EXIT_INTERRUPTED;
        return;
    }
    if (rank[code] > rank[s->worst])
        s->worst = code;
}

static void maybe_done(session_t *s) {
    if (s->started && s->pending_resumes == 0 && s->done >= s->expected)
        stop(s);
}

/* ---------------------------------------------------------------------- */
/* Summaries                                                               */
/* ---------------------------------------------------------------------- */

typedef struct fetch_s {
    session_t *s;
    json_t *summary;
    char id[SAGA_ID_MAX + 1];
} fetch_t;

static void print_summary(session_t *s, json_t *summary) {
    if (summary == NULL)
        return;
    if (!s->json) {
        saga_summary_print_text(summary, stdout);
    } else if (s->resume) {
        json_array_append(s->summaries, summary);
    } else {
        char *txt = json_dumps(summary, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt != NULL)
            puts(txt);
        free(txt);
    }
    fflush(stdout);
}

static void fetched(fetch_t *f) {
    session_t *s = f->s;
    print_summary(s, f->summary);
    json_decref(f->summary);
    free(f);
    s->done++;
    maybe_done(s);
}

static void on_history(int status, const saga_history_entry_t *h, size_t n, void *data) {
    fetch_t *f = data;
    if (status == 0 && f->summary != NULL) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, saga_summary_history_entry(&h[i]));
        json_object_set_new(f->summary, "history", arr);
    } else if (status != 0) {
        saga_cli_error("cannot read the history of saga %s: %s", f->id,
                       saga_strerror(status));
    }
    fetched(f);
}

static void on_record(int status, const saga_record_t *rec, void *data) {
    fetch_t *f = data;
    session_t *s = f->s;
    saga_store_t *store = s->cs.store;
    if (status != 0) {
        saga_cli_error("cannot read saga %s back from the store: %s", f->id,
                       saga_strerror(status));
        note_exit(s, SAGA_EXIT_ERROR);
        fetched(f);
        return;
    }
    /* The engine holds the definition the saga ran under: its steps give
     * the summary its order. */
    size_t hl;
    const char *hash = saga_record_get(rec, "def", &hl);
    char h[65] = "";
    if (hash != NULL && hl == 64)
        memcpy(h, hash, 64);
    f->summary = saga_summary_build(rec, saga_engine_lookup(s->engine, h), NULL, 0);
    if (store->ops->history(store, f->id, on_history, f) != 0)
        fetched(f);
}

static void on_finished(saga_engine_t *e, const char *id, saga_state_t state,
                        int status, void *data) {
    session_t *s = data;
    (void)e;
    if (status != 0) {
        saga_cli_error("saga %s stopped: %s", id, saga_strerror(status));
        note_exit(s, SAGA_EXIT_ERROR);
        s->done++;
        maybe_done(s);
        return;
    }
    note_exit(s, state == SAGA_STATE_COMPLETED     ? SAGA_EXIT_OK
                 : state == SAGA_STATE_COMPENSATED ? SAGA_EXIT_COMPENSATED
                                                   : SAGA_EXIT_STUCK);
    fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        s->done++;
        maybe_done(s);
        return;
    }
    f->s = s;
    snprintf(f->id, sizeof(f->id), "%s", id);
    if (s->cs.store->ops->load(s->cs.store, id, on_record, f) != 0) {
        free(f);
        note_exit(s, SAGA_EXIT_ERROR);
        s->done++;
        maybe_done(s);
    }
}

static void on_signal(uv_signal_t *h, int signum) {
    session_t *s = h->data;
    if (s->interrupted) {
        fprintf(stderr, "saga: interrupted again, exiting now\n");
        _exit(SAGA_EXIT_INTERRUPTED);
    }
    s->interrupted = true;
    note_exit(s, SAGA_EXIT_INTERRUPTED);
    fprintf(stderr, "saga: %s: stopping; attempts in flight get %d s to finish "
            "(signal again to exit at once). Unfinished sagas stay in the store: "
            "`saga resume` continues them.\n", strsignal(signum),
            INTERRUPT_GRACE_MS / 1000);
    stop(s);
}

/* ---------------------------------------------------------------------- */
/* Starting                                                                */
/* ---------------------------------------------------------------------- */

static void on_resumed(int status, const char *msg, void *data) {
    session_t *s = data;
    s->pending_resumes--;
    if (status == 0) {
        s->expected++;
    } else {
        saga_cli_error("%s", msg ? msg : saga_strerror(status));
        if (status == SAGA_EMANAGED)
            fputs("hint: `saga status ID` shows where it stands; a stuck one goes back to "
                  "the workers with `saga retry ID`\n", stderr);
        note_exit(s, SAGA_EXIT_ERROR);
    }
    maybe_done(s);
}

static void on_resumed_all(int status, size_t resumed, size_t failed, size_t managed,
                           void *data) {
    session_t *s = data;
    s->pending_resumes--;
    if (status != 0) {
        saga_cli_error("cannot list unfinished sagas: %s", saga_strerror(status));
        note_exit(s, SAGA_EXIT_ERROR);
    }
    if (failed > 0)
        note_exit(s, SAGA_EXIT_ERROR);
    s->expected += resumed;
    if (!s->quiet && status == 0) {
        fprintf(stderr, "saga: resuming %zu unfinished saga(s)%s\n", resumed,
                failed ? " (some could not be resumed, see above)" : "");
        if (managed > 0)
            fprintf(stderr, "saga: %zu unfinished saga(s) run by workers left to them\n",
                    managed);
    }
    maybe_done(s);
}

static void begin(session_t *s) {
    char err[512];
    saga_engine_options_t eo = {
        .store = s->cs.store,
        .plugin_dirs = (const char *const *)s->plugins.v,
        .on_progress = on_progress,
        .on_finished = on_finished,
        .data = s,
    };
    s->engine = saga_engine_new(&s->loop, &eo, err, sizeof(err));
    if (s->engine == NULL) {
        saga_cli_error("%s", err);
        note_exit(s, SAGA_EXIT_ERROR);
        stop(s);
        return;
    }
    saga_cli_signals_start(&s->loop, &s->sigint, &s->sigterm, on_signal, s);
    s->signals_on = true;

    if (!s->resume) {
        saga_diags_t diags;
        saga_diags_init(&diags);
        saga_def_t *def = s->def;
        s->def = NULL;
        saga_engine_def_t *d = saga_engine_register(s->engine, def, &diags);
        if (d == NULL) {
            saga_diags_print(&diags, stderr);
            saga_diags_close(&diags);
            note_exit(s, SAGA_EXIT_ERROR);
            stop(s);
            return;
        }
        saga_diags_close(&diags);
        const saga_def_t *rd = saga_engine_def(d);
        int rc = saga_engine_start(s->engine, d, s->id, s->input, s->first_id, err, sizeof(err));
        if (rc != 0) {
            saga_cli_error("cannot start saga %s: %s", rd->name, err);
            note_exit(s, SAGA_EXIT_ERROR);
            stop(s);
            return;
        }
        if (!s->quiet)
            fprintf(stderr, "saga %s: started %s (definition %.12s)\n", rd->name,
                    s->first_id, rd->hash);
        s->expected = 1;
        s->started = true;
        return;
    }
    if (s->nids == 0) {
        s->pending_resumes = 1;
        int rc = saga_engine_resume_all(s->engine, on_resumed_all, s);
        if (rc != 0) {
            s->pending_resumes = 0;
            saga_cli_error("cannot resume: %s", saga_strerror(rc));
            note_exit(s, SAGA_EXIT_ERROR);
        }
    }
    for (int i = 0; i < s->nids; i++) {
        s->pending_resumes++;
        int rc = saga_engine_resume(s->engine, s->ids[i], on_resumed, s);
        if (rc != 0) {
            s->pending_resumes--;
            saga_cli_error("cannot resume saga %s: %s", s->ids[i],
                           rc == -EINVAL ? "not a valid saga id" : saga_strerror(rc));
            note_exit(s, SAGA_EXIT_ERROR);
        }
    }
    s->started = true;
    maybe_done(s);
}

static void on_store(saga_cli_store_t *cs, int status, void *data) {
    session_t *s = data;
    (void)cs;
    if (status != 0) {
        note_exit(s, SAGA_EXIT_ERROR);
        stop(s);
        return;
    }
    begin(s);
}

/* ---------------------------------------------------------------------- */
/* Command lines                                                           */
/* ---------------------------------------------------------------------- */

static const char store_help[] =
    "  -p, --plugins DIR       also look for step plugins in DIR (repeatable;\n"
    "                          env SAGA_PLUGIN_PATH adds more)\n"
    "      --redis URL         checkpoint in this Redis (redis://[user:pass@]host[:port][/db]\n"
    "                          or unix:///path); default env SAGA_REDIS_URL, else a\n"
    "                          private redis-server in --state-dir\n"
    "      --state-dir DIR     where the private redis-server keeps its data\n"
    "                          (default ./.saga)\n"
    "      --store memory      keep checkpoints in memory only (not durable)\n"
    "      --json              print summaries as JSON\n"
    "  -q, --quiet             no progress lines\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 completed, 3 compensated, 4 stuck, 1 error, 2 usage,\n"
    "130 interrupted.\n";

static void usage_run(FILE *out) {
    fputs("usage: saga run FILE [OPTIONS]\n"
          "\n"
          "Runs one saga of the definition FILE to its end in this process.\n"
          "Progress goes to stderr; the summary to stdout.\n"
          "\n"
          "  -i, --input JSON|@FILE  the saga's input (a JSON object; @- reads stdin)\n"
          "      --id ID             the saga's id (default: a new ULID)\n", out);
    fputs(store_help, out);
}

static void usage_resume(FILE *out) {
    fputs("usage: saga resume [OPTIONS] [ID...]\n"
          "\n"
          "Continues the given sagas, or every unfinished saga in the store, where\n"
          "they stood, under the definition each one started with, and runs them\n"
          "to their end. With several sagas the exit status is the worst one.\n"
          "Sagas that workers run are theirs to resume: refused when named, left\n"
          "alone (and counted) otherwise.\n"
          "\n", out);
    fputs(store_help, out);
}

static int session_main(session_t *s, int argc, char **argv) {
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"id", required_argument, NULL, 'I'},
        {"plugins", required_argument, NULL, 'p'},
        SAGA_CLI_OPTION_STORE,
        SAGA_CLI_OPTION_REDIS,
        SAGA_CLI_OPTION_STATE_DIR,
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    void (*usage)(FILE *) = s->resume ? usage_resume : usage_run;
    const char *input_arg = NULL;
    saga_cli_store_opts_t so = {0};
    int c, rc = SAGA_EXIT_ERROR;
    while ((c = getopt_long(argc, argv, s->resume ? "p:qh" : "i:p:qh", opts, NULL)) != -1) {
        if (saga_cli_store_option(&so, c, optarg))
            continue;
        switch (c) {
        case 'i': input_arg = optarg; break;
        case 'I': s->id = optarg; break;
        case 'p':
            if (saga_strv_push(&s->plugins, optarg) != 0)
                return SAGA_EXIT_ERROR;
            break;
        case 'j': s->json = true; break;
        case 'q': s->quiet = true; break;
        case 'h': usage(stdout); return SAGA_EXIT_OK;
        default: usage(stderr); return SAGA_EXIT_USAGE;
        }
    }
    if (s->resume && (input_arg != NULL || s->id != NULL)) {
        saga_cli_error("resume: --input and --id belong to `saga run`");
        return SAGA_EXIT_USAGE;
    }
    if (!s->resume) {
        if (optind + 1 != argc) {
            saga_cli_error(optind >= argc ? "run: no FILE given"
                                          : "run: exactly one FILE, got more");
            usage(stderr);
            return SAGA_EXIT_USAGE;
        }
        /* What can be checked before anything runs is checked first. */
        saga_diags_t diags;
        saga_diags_init(&diags);
        s->def = saga_def_load_file(argv[optind], &diags);
        if (s->def == NULL) {
            saga_diags_print(&diags, stderr);
            saga_diags_close(&diags);
            return SAGA_EXIT_ERROR;
        }
        saga_diags_close(&diags);
        s->input = input_arg ? saga_cli_parse_input(input_arg) : json_object();
        if (s->input == NULL)
            return SAGA_EXIT_ERROR;
        char err[512];
        if (saga_def_check_input(s->def, s->input, err, sizeof(err)) != 0) {
            saga_cli_error("%s", err);
            return SAGA_EXIT_ERROR;
        }
    } else {
        s->ids = argv + optind;
        s->nids = argc - optind;
        s->summaries = json_array();
    }

    uv_loop_init(&s->loop);
    rc = saga_cli_store_open(&s->cs, &s->loop, &so, on_store, s);
    if (rc != 0) {
        uv_loop_close(&s->loop);
        return rc;
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (s->resume && s->json) {
        char *txt = json_dumps(s->summaries, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt != NULL)
            puts(txt);
        free(txt);
    }
    if (s->resume && !s->quiet && s->expected == 0 && s->worst == SAGA_EXIT_OK)
        fprintf(stderr, "saga: nothing to resume\n");
    saga_engine_free(s->engine);
    if (uv_loop_close(&s->loop) != 0)
        saga_error("internal: a libuv handle was left open at exit");
    return s->worst;
}

static int session(bool resume, int argc, char **argv) {
    session_t s;
    memset(&s, 0, sizeof(s));
    s.resume = resume;
    s.worst = SAGA_EXIT_OK;
    int rc = session_main(&s, argc, argv);
    saga_def_free(s.def);
    json_decref(s.input);
    json_decref(s.summaries);
    saga_strv_free(&s.plugins);
    return rc;
}

int saga_cli_run(int argc, char **argv) { return session(false, argc, argv); }

int saga_cli_resume(int argc, char **argv) { return session(true, argc, argv); }
