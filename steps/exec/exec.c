/*
 * exec.c -- the built-in `exec` plugin: the handler `exec.run`.
 *
 * One call runs one program with uv_spawn, on the engine's loop, without a
 * shell (the author writes ["/bin/sh", "-c", "..."] to get one). The child
 * runs in a new session, so it leads its own process group: a timeout, an
 * output over the cap, a cancel or the plugin's shutdown kill the whole
 * group (SIGKILL to -pid), grandchildren included. When the program exits,
 * whatever it left behind in its group is killed too: a step is a command
 * that runs to completion. The exit callback reaps the child, so no zombie
 * is left; every pipe and handle is closed before a run is freed.
 *
 * The child's stdin is a socket pair we write with send(MSG_NOSIGNAL): a
 * child that exits without reading its input must not raise SIGPIPE in the
 * engine.
 *
 * The `with` fields, the environment and the outcome mapping are documented
 * in docs/steps.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "saga/plugin.h"
#include "step_args.h"
#include "step_call.h"

#define PLUGIN "exec"
#define HANDLER "exec.run"

#define DEFAULT_MAX_OUTPUT (1024u * 1024u)
#define MAX_MAX_OUTPUT (256u * 1024u * 1024u)
#define ERR_TAIL 2048u        /* stderr bytes quoted in failure messages */
#define MAX_ARGS 4096u
#define MAX_EXIT_CODES 255u
#define DRAIN_GRACE_MS 1000u  /* after exit, wait this long for pipe EOF */
#define READ_BUF (64u * 1024u)

extern char **environ;

typedef struct exec_s exec_t;

/* One program run. Freed when its last handle is closed. */
typedef struct run_s {
    exec_t *x;
    saga_call_t *call; /* NULL once completed (after a cancel) */
    char *prog;        /* argv[0], for messages */
    char *cwd;
    char **argv;
    char **envp;
    uint64_t timeout_ms;
    uint64_t max_output;
    int business[MAX_EXIT_CODES];
    size_t nbusiness;

    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    uv_poll_t in_poll;
    int in_fd;           /* our end of the stdin socket pair, or -1 */
    char *in_data;       /* what the child reads on stdin */
    size_t in_len, in_off;
    bool in_active;      /* in_poll initialized and not yet closed */
    int open_handles;

    bool spawned, exited, out_eof, err_eof;
    bool timed_out, too_much, finished;
    int64_t exit_status;
    int term_signal;

    char *out_buf;
    size_t out_len, out_cap;
    char err_tail[ERR_TAIL];
    size_t err_tail_len, err_total;

    struct run_s *prev, *next;
} run_t;

struct exec_s {
    const saga_host_t *host;
    uv_loop_t *loop;
    run_t *runs;
    bool closing;
    char read_buf[READ_BUF]; /* shared: libuv reads one stream at a time */
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void free_strv(char **v) {
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void kill_group(run_t *r) {
    /* The child leads its own group (UV_PROCESS_DETACHED: setsid). After the
     * leader was reaped the group may be empty: ESRCH is expected. */
    if (r->spawned && r->proc.pid > 0)
        kill(-r->proc.pid, SIGKILL);
}

static void maybe_free_plugin(exec_t *x) {
    if (x->closing && x->runs == NULL)
        free(x);
}

static void run_free(run_t *r) {
    exec_t *x = r->x;
    if (r->prev)
        r->prev->next = r->next;
    else
        x->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->prog);
    free(r->cwd);
    free_strv(r->argv);
    free_strv(r->envp);
    free(r->in_data);
    free(r->out_buf);
    free(r);
    maybe_free_plugin(x);
}

static void on_closed(uv_handle_t *h) {
    run_t *r = h->data;
    if (--r->open_handles == 0)
        run_free(r);
}

static void on_in_closed(uv_handle_t *h) {
    run_t *r = h->data;
    close(r->in_fd);
    r->in_fd = -1;
    on_closed(h);
}

static void close_if_open(run_t *r, uv_handle_t *h, uv_close_cb cb) {
    if (!uv_is_closing(h))
        uv_close(h, cb);
}

/* Closes every handle of the run; the last close callback frees it. */
static void run_close(run_t *r) {
    uv_timer_stop(&r->timer);
    close_if_open(r, (uv_handle_t *)&r->timer, on_closed);
    close_if_open(r, (uv_handle_t *)&r->out, on_closed);
    close_if_open(r, (uv_handle_t *)&r->err, on_closed);
    close_if_open(r, (uv_handle_t *)&r->proc, on_closed);
    if (r->in_active) {
        r->in_active = false;
        uv_close((uv_handle_t *)&r->in_poll, on_in_closed);
    }
}

/* ------------------------------------------------------------------------ */
/* Outcome                                                                  */
/* ------------------------------------------------------------------------ */

/* The stderr tail as one line ("" when the child wrote nothing). */
static char *stderr_tail(run_t *r) {
    const char *p = r->err_tail;
    size_t n = r->err_tail_len;
    bool cut = r->err_total > r->err_tail_len;
    if (cut) /* do not start in the middle of a UTF-8 sequence */
        while (n > 0 && ((unsigned char)*p & 0xC0) == 0x80)
            p++, n--;
    char *line = step_text_utf8(p, n, true);
    if (line == NULL || line[0] == '\0' || !cut)
        return line;
    char *s = malloc(strlen(line) + 4);
    if (s != NULL)
        sprintf(s, "...%s", line);
    free(line);
    return s;
}

static char *failure_message(run_t *r, const char *what) {
    char *tail = stderr_tail(r);
    const char *t = tail ? tail : "";
    size_t n = strlen(HANDLER) + strlen(r->prog) + strlen(what) +
               strlen(t) + 32;
    char *m = malloc(n);
    if (m != NULL)
        snprintf(m, n, "%s %s: %s%s%s", HANDLER, r->prog, what,
                 t[0] ? "; stderr: " : "", t);
    free(tail);
    return m;
}

/* The OK output: stdout as JSON when it is JSON, else {"stdout": text}. */
static char *ok_output(run_t *r) {
    json_error_t jerr;
    json_t *v = NULL;
    if (r->out_len > 0)
        v = json_loadb(r->out_buf, r->out_len, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        char *text = step_text_utf8(r->out_buf ? r->out_buf : "", r->out_len,
                                    false);
        if (text == NULL)
            return NULL;
        v = json_pack("{s:s}", "stdout", text);
        free(text);
    }
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return s;
}

/* Completes the call (unless cancelled) and closes the run. */
static void run_finish(run_t *r) {
    if (r->finished)
        return;
    r->finished = true;
    exec_t *x = r->x;
    if (r->call != NULL) {
        saga_outcome_t o = SAGA_OUTCOME_TECHNICAL;
        char *data = NULL, what[160];
        if (r->timed_out) {
            char d[32];
            step_args_format_duration(r->timeout_ms, d, sizeof(d));
            snprintf(what, sizeof(what), "timed out after %s (process group "
                     "killed)", d);
            data = failure_message(r, what);
        } else if (r->too_much) {
            o = SAGA_OUTCOME_BUSINESS;
            snprintf(what, sizeof(what), "stdout exceeded max_output (%" PRIu64
                     " bytes; process group killed)", r->max_output);
            data = failure_message(r, what);
        } else if (r->term_signal != 0) {
            snprintf(what, sizeof(what), "killed by signal %d (%s)",
                     r->term_signal, strsignal(r->term_signal));
            data = failure_message(r, what);
        } else if (r->exit_status == 0) {
            o = SAGA_OUTCOME_OK;
            data = ok_output(r);
        } else {
            if (step_args_in_list(r->business, r->nbusiness,
                                  (int)r->exit_status))
                o = SAGA_OUTCOME_BUSINESS;
            snprintf(what, sizeof(what), "exited with code %" PRId64,
                     r->exit_status);
            data = failure_message(r, what);
        }
        saga_call_t *call = r->call;
        r->call = NULL;
        x->host->set_call_data(call, NULL);
        step_call_complete(x->host, call, o, data, HANDLER);
        free(data);
    }
    run_close(r);
}

static void maybe_finish(run_t *r) {
    if (r->exited && r->out_eof && r->err_eof)
        run_finish(r);
}

/* ------------------------------------------------------------------------ */
/* libuv callbacks                                                          */
/* ------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    run_t *r = h->data;
    *buf = uv_buf_init(r->x->read_buf, READ_BUF);
}

static void on_stdout(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    run_t *r = s->data;
    if (n == 0)
        return;
    if (n < 0) { /* UV_EOF, or an error: either way, no more output */
        uv_read_stop(s);
        r->out_eof = true;
        maybe_finish(r);
        return;
    }
    size_t len = (size_t)n;
    if (len > r->max_output - r->out_len) {
        r->too_much = true;
        uv_read_stop(s);
        r->out_eof = true;
        kill_group(r);
        maybe_finish(r);
        return;
    }
    if (r->out_len + len + 1 > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 4096;
        while (cap < r->out_len + len + 1)
            cap *= 2;
        char *p = realloc(r->out_buf, cap);
        if (p == NULL) {
            r->too_much = true;
            uv_read_stop(s);
            r->out_eof = true;
            kill_group(r);
            maybe_finish(r);
            return;
        }
        r->out_buf = p;
        r->out_cap = cap;
    }
    memcpy(r->out_buf + r->out_len, buf->base, len);
    r->out_len += len;
    r->out_buf[r->out_len] = '\0';
}

static void on_stderr(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    run_t *r = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        uv_read_stop(s);
        r->err_eof = true;
        maybe_finish(r);
        return;
    }
    /* Keep only the last ERR_TAIL bytes. */
    const char *p = buf->base;
    size_t len = (size_t)n;
    r->err_total += len;
    if (len >= ERR_TAIL) {
        memcpy(r->err_tail, p + len - ERR_TAIL, ERR_TAIL);
        r->err_tail_len = ERR_TAIL;
        return;
    }
    if (r->err_tail_len + len > ERR_TAIL) {
        size_t drop = r->err_tail_len + len - ERR_TAIL;
        memmove(r->err_tail, r->err_tail + drop, r->err_tail_len - drop);
        r->err_tail_len -= drop;
    }
    memcpy(r->err_tail + r->err_tail_len, p, len);
    r->err_tail_len += len;
}

static void on_drain_timeout(uv_timer_t *t) {
    /* The program exited but something outside its group (a daemon that
     * called setsid) still holds its stdout or stderr: stop waiting. */
    run_finish(t->data);
}

static void on_child_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
    run_t *r = p->data;
    r->exited = true;
    r->exit_status = exit_status;
    r->term_signal = term_signal;
    /* Anything the program left running in its group goes with it. */
    kill_group(r);
    if (!(r->out_eof && r->err_eof)) {
        uv_timer_stop(&r->timer);
        uv_timer_start(&r->timer, on_drain_timeout, DRAIN_GRACE_MS, 0);
    }
    maybe_finish(r);
}

static void on_timeout(uv_timer_t *t) {
    run_t *r = t->data;
    r->timed_out = true;
    kill_group(r); /* on_child_exit follows */
}

static void in_stop(run_t *r) {
    if (r->in_active) {
        r->in_active = false;
        uv_poll_stop(&r->in_poll);
        uv_close((uv_handle_t *)&r->in_poll, on_in_closed);
    }
}

/* Writes as much of stdin as the socket takes; closes it when all is
 * written or the child stopped reading (EPIPE: not our failure, the exit
 * status tells). */
static void in_write(run_t *r);

static void on_in_writable(uv_poll_t *p, int status, int events) {
    (void)events;
    run_t *r = p->data;
    if (status < 0) {
        in_stop(r);
        return;
    }
    in_write(r);
}

static void in_write(run_t *r) {
    while (r->in_off < r->in_len) {
        ssize_t n = send(r->in_fd, r->in_data + r->in_off,
                         r->in_len - r->in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            r->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (uv_poll_start(&r->in_poll, UV_WRITABLE, on_in_writable) == 0)
                return;
        }
        break;
    }
    in_stop(r);
}

/* ------------------------------------------------------------------------ */
/* The handler                                                              */
/* ------------------------------------------------------------------------ */

static const char *const known_fields[] = {
    "argv", "env", "stdin", "cwd", "timeout", "business_exit_codes",
    "max_output", NULL};

static const char *const reserved_env[] = {
    "SAGA_IDEMPOTENCY_KEY", "SAGA_ID", "SAGA_NAME", "SAGA_STEP",
    "SAGA_PHASE", "SAGA_ATTEMPT", NULL};

static bool is_reserved_env(const char *name, size_t len) {
    for (size_t i = 0; reserved_env[i] != NULL; i++)
        if (strlen(reserved_env[i]) == len &&
            memcmp(reserved_env[i], name, len) == 0)
            return true;
    return false;
}

static bool env_name_ok(const char *s) {
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s == '=')
            return false;
    return true;
}

/* "NAME=value" in a new string. */
static char *env_entry(const char *name, const char *value) {
    size_t n = strlen(name) + strlen(value) + 2;
    char *e = malloc(n);
    if (e != NULL)
        snprintf(e, n, "%s=%s", name, value);
    return e;
}

/* The child's environment: ours, minus what `env` and the SAGA_ variables
 * replace, plus those. */
static int build_env(run_t *r, json_t *env, const saga_call_info_t *info,
                     char *err, size_t errlen) {
    size_t n_ours = 0, n_env = json_is_object(env) ? json_object_size(env) : 0;
    for (char **e = environ; e && *e; e++)
        n_ours++;
    size_t cap = n_ours + n_env + 8, k = 0;
    char **v = calloc(cap, sizeof(*v));
    if (v == NULL)
        goto oom;
    r->envp = v;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        if (is_reserved_env(*e, len))
            continue;
        bool replaced = false;
        const char *key;
        json_t *val;
        if (n_env > 0) {
            json_object_foreach(env, key, val) {
                if (strlen(key) == len && memcmp(key, *e, len) == 0) {
                    replaced = true;
                    break;
                }
            }
        }
        if (!replaced && (v[k++] = strdup(*e)) == NULL)
            goto oom;
    }
    if (n_env > 0) {
        const char *key;
        json_t *val;
        json_object_foreach(env, key, val) {
            char *text = step_args_scalar_text(val, HANDLER, "env", key, err,
                                               errlen);
            if (text == NULL)
                return -1;
            v[k] = env_entry(key, text);
            free(text);
            if (v[k++] == NULL)
                goto oom;
        }
    }
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%" PRIu32, info->attempt);
    const char *saga[][2] = {
        {"SAGA_IDEMPOTENCY_KEY", info->idempotency_key},
        {"SAGA_ID", info->saga_id},
        {"SAGA_NAME", info->saga_name},
        {"SAGA_STEP", info->step},
        {"SAGA_PHASE", saga_phase_name(info->phase)},
        {"SAGA_ATTEMPT", attempt},
    };
    for (size_t i = 0; i < sizeof(saga) / sizeof(saga[0]); i++)
        if ((v[k++] = env_entry(saga[i][0], saga[i][1] ? saga[i][1] : "")) ==
            NULL)
            goto oom;
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", HANDLER);
    return -1;
}

/* A JSON string as a C string: embedded NULs are refused. */
static const char *c_string(const json_t *v) {
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

/* `argv`: required, a non-empty list of strings without NULs, the first
 * one not empty. Fills r->argv and r->prog. */
static int parse_argv(run_t *r, json_t *argv, char *err, size_t errlen) {
    if (argv == NULL) {
        snprintf(err, errlen, "%s: `argv` is required (a list: the program "
                 "and its arguments)", HANDLER);
        return -1;
    }
    if (!json_is_array(argv) || json_array_size(argv) == 0 ||
        json_array_size(argv) > MAX_ARGS) {
        snprintf(err, errlen, "%s: `argv`: expected a non-empty list of "
                 "strings (the program and its arguments), got %s", HANDLER,
                 json_is_array(argv) ? "an empty or too long list"
                                     : step_args_type_name(argv));
        return -1;
    }
    size_t i;
    json_t *a;
    if ((r->argv = calloc(json_array_size(argv) + 1, sizeof(char *))) == NULL)
        goto oom;
    json_array_foreach(argv, i, a) {
        const char *s = c_string(a);
        if (s == NULL || (i == 0 && s[0] == '\0')) {
            snprintf(err, errlen, "%s: `argv[%zu]`: expected a%s string, got "
                     "%s", HANDLER, i, i == 0 ? " non-empty" : "",
                     json_is_string(a) ? "a string that cannot be passed"
                                       : step_args_type_name(a));
            return -1;
        }
        if ((r->argv[i] = strdup(s)) == NULL)
            goto oom;
    }
    if ((r->prog = strdup(r->argv[0])) == NULL)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", HANDLER);
    return -1;
}

/* `env`: a mapping of valid, not reserved variable names to scalars
 * without NULs; then the child's whole environment (build_env). */
static int parse_env(run_t *r, json_t *env, const saga_call_info_t *info,
                     char *err, size_t errlen) {
    if (env != NULL) {
        if (!json_is_object(env)) {
            snprintf(err, errlen, "%s: `env`: expected a mapping of variable "
                     "names to strings, got %s", HANDLER,
                     step_args_type_name(env));
            return -1;
        }
        const char *key;
        json_t *val;
        json_object_foreach(env, key, val) {
            if (!env_name_ok(key)) {
                snprintf(err, errlen, "%s: `env`: \"%.100s\" is not a valid "
                         "variable name", HANDLER, key);
                return -1;
            }
            if (is_reserved_env(key, strlen(key))) {
                snprintf(err, errlen, "%s: `env.%s` cannot be set: exec.run "
                         "sets it itself", HANDLER, key);
                return -1;
            }
            if (json_is_string(val) && c_string(val) == NULL) {
                snprintf(err, errlen, "%s: `env.%s`: a value cannot hold a NUL "
                         "character", HANDLER, key);
                return -1;
            }
        }
    }
    return build_env(r, env, info, err, errlen);
}

/* `cwd`: a non-empty path without NULs; the engine's when absent. */
static int parse_cwd(run_t *r, json_t *v, char *err, size_t errlen) {
    if (v == NULL)
        return 0;
    const char *cwd = c_string(v);
    if (cwd == NULL || cwd[0] == '\0') {
        snprintf(err, errlen, "%s: `cwd`: expected a directory path, got "
                 "%s", HANDLER, step_args_type_name(v));
        return -1;
    }
    if ((r->cwd = strdup(cwd)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", HANDLER);
        return -1;
    }
    return 0;
}

/* `stdin`: any JSON value, written to the child as compact JSON and a
 * newline (null or absent: the child reads /dev/null). */
static int parse_stdin(run_t *r, json_t *v, char *err, size_t errlen) {
    if (v == NULL || json_is_null(v))
        return 0;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text != NULL) {
        /* The JSON text and a newline, for programs that read a line. */
        size_t n = strlen(text);
        r->in_data = malloc(n + 2);
        if (r->in_data != NULL) {
            memcpy(r->in_data, text, n);
            r->in_data[n] = '\n';
            r->in_data[n + 1] = '\0';
            r->in_len = n + 1;
        }
        free(text);
    }
    if (r->in_data == NULL) {
        snprintf(err, errlen, "%s: out of memory", HANDLER);
        return -1;
    }
    return 0;
}

/* `timeout` (the step's budget when absent), `max_output` and
 * `business_exit_codes`. */
static int parse_limits(run_t *r, json_t *with, const saga_call_info_t *info,
                        char *err, size_t errlen) {
    json_t *v;
    r->timeout_ms = info->timeout_ms;
    if ((v = json_object_get(with, "timeout")) != NULL &&
        step_args_duration(v, HANDLER, "timeout", &r->timeout_ms, err,
                           errlen) != 0)
        return -1;
    r->max_output = DEFAULT_MAX_OUTPUT;
    if ((v = json_object_get(with, "max_output")) != NULL &&
        step_args_uint(v, HANDLER, "max_output", 1, MAX_MAX_OUTPUT,
                       &r->max_output, err, errlen) != 0)
        return -1;
    if ((v = json_object_get(with, "business_exit_codes")) != NULL &&
        step_args_int_list(v, HANDLER, "business_exit_codes", 1, 255,
                           r->business, MAX_EXIT_CODES, &r->nbusiness, err,
                           errlen) != 0)
        return -1;
    return 0;
}

/* Fills `r` from `with`, a mapping of known fields (as step_call_with()
 * returns it), field by field in the order of the docs; -1 with the reason
 * in `err` on a bad value. */
static int run_parse(run_t *r, json_t *with, const saga_call_info_t *info,
                     char *err, size_t errlen) {
    if (parse_argv(r, json_object_get(with, "argv"), err, errlen) != 0 ||
        parse_env(r, json_object_get(with, "env"), info, err, errlen) != 0 ||
        parse_cwd(r, json_object_get(with, "cwd"), err, errlen) != 0 ||
        parse_stdin(r, json_object_get(with, "stdin"), err, errlen) != 0 ||
        parse_limits(r, with, info, err, errlen) != 0)
        return -1;
    return 0;
}

/* Frees a run that never got a handle (bad `with`). */
static void run_discard(run_t *r) {
    free(r->prog);
    free(r->cwd);
    free_strv(r->argv);
    free_strv(r->envp);
    free(r->in_data);
    free(r);
}

static void h_run(void *state, saga_call_t *call, const saga_call_info_t *info) {
    exec_t *x = state;
    char err[1024];
    if (info->struct_size < sizeof(saga_call_info_t)) {
        step_call_complete(x->host, call, SAGA_OUTCOME_TECHNICAL,
                           HANDLER ": the engine's call info is too old for "
                           "this plugin", HANDLER);
        return;
    }
    run_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        /* NULL: "<handler>: out of memory", a technical failure. */
        step_call_complete(x->host, call, SAGA_OUTCOME_TECHNICAL, NULL, HANDLER);
        return;
    }
    r->x = x;
    r->call = call;
    r->in_fd = -1;
    json_t *with = step_call_with(info->input, info->input_len, HANDLER,
                                  known_fields, err, sizeof(err));
    int rc = with != NULL ? run_parse(r, with, info, err, sizeof(err)) : -1;
    json_decref(with);
    if (rc != 0) {
        run_discard(r);
        step_call_complete(x->host, call, SAGA_OUTCOME_BUSINESS, err, HANDLER);
        return;
    }

    /* stdin: a socket pair; the child's end stays blocking. */
    int child_in = -1;
    if (r->in_data != NULL) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            snprintf(err, sizeof(err), "%s %s: cannot create the stdin pipe: "
                     "%s", HANDLER, r->prog, strerror(errno));
            run_discard(r);
            step_call_complete(x->host, call, SAGA_OUTCOME_TECHNICAL, err, HANDLER);
            return;
        }
        r->in_fd = sv[0];
        child_in = sv[1];
        fcntl(r->in_fd, F_SETFL, fcntl(r->in_fd, F_GETFL) | O_NONBLOCK);
    }

    /* From here on, the run owns libuv handles: it is freed by run_close()'s
     * last callback, and linked so that close() can find it. */
    r->next = x->runs;
    if (x->runs)
        x->runs->prev = r;
    x->runs = r;
    uv_timer_init(x->loop, &r->timer);
    uv_pipe_init(x->loop, &r->out, 0);
    uv_pipe_init(x->loop, &r->err, 0);
    r->timer.data = r->out.data = r->err.data = r->proc.data = r;
    r->open_handles = 4; /* timer, out, err, proc */
    if (r->in_fd >= 0) {
        uv_poll_init(x->loop, &r->in_poll, r->in_fd);
        r->in_poll.data = r;
        r->in_active = true;
        r->open_handles++;
    }

    uv_stdio_container_t stdio[3];
    if (child_in >= 0) {
        stdio[0].flags = UV_INHERIT_FD;
        stdio[0].data.fd = child_in;
    } else {
        stdio[0].flags = UV_IGNORE; /* /dev/null */
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->err;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.exit_cb = on_child_exit;
    opts.file = r->argv[0];
    opts.args = r->argv;
    opts.env = r->envp;
    opts.cwd = r->cwd;
    /* A new session: the child leads its own process group, so that we can
     * kill everything it starts. The handle stays referenced: the loop (and
     * the engine's shutdown) waits for it. */
    opts.flags = UV_PROCESS_DETACHED;
    opts.stdio_count = 3;
    opts.stdio = stdio;

    rc = uv_spawn(x->loop, &r->proc, &opts);
    if (child_in >= 0)
        close(child_in);
    if (rc != 0) {
        if (r->cwd != NULL)
            snprintf(err, sizeof(err), "%s %s: cannot start it in \"%s\": %s",
                     HANDLER, r->prog, r->cwd, uv_strerror(rc));
        else
            snprintf(err, sizeof(err), "%s %s: cannot start it: %s", HANDLER,
                     r->prog, uv_strerror(rc));
        r->call = NULL;
        r->finished = true;
        step_call_complete(x->host, call, SAGA_OUTCOME_TECHNICAL, err, HANDLER);
        run_close(r); /* a failed uv_spawn still needs uv_close */
        return;
    }
    r->spawned = true;
    x->host->set_call_data(call, r);
    uv_read_start((uv_stream_t *)&r->out, on_alloc, on_stdout);
    uv_read_start((uv_stream_t *)&r->err, on_alloc, on_stderr);
    if (r->timeout_ms > 0)
        uv_timer_start(&r->timer, on_timeout, r->timeout_ms, 0);
    if (r->in_active)
        in_write(r);
}

/* The engine no longer waits: complete now, kill the group; the run frees
 * itself once the child is reaped and its handles are closed. */
static void h_cancel(void *state, saga_call_t *call) {
    exec_t *x = state;
    run_t *r = x->host->call_data(call);
    if (r == NULL || r->call != call)
        return;
    x->host->set_call_data(call, NULL);
    r->call = NULL;
    kill_group(r);
    char msg[512];
    snprintf(msg, sizeof(msg), "%s %s: cancelled (process group killed)",
             HANDLER, r->prog);
    step_call_complete(x->host, call, SAGA_OUTCOME_TECHNICAL, msg, HANDLER);
}

/* ------------------------------------------------------------------------ */
/* Plugin life cycle                                                        */
/* ------------------------------------------------------------------------ */

static int exec_init(const saga_host_t *host, struct uv_loop_s *loop,
                     void **state) {
    if (host->abi_version != SAGA_PLUGIN_ABI_VERSION ||
        host->struct_size < sizeof(saga_host_t))
        return -EPROTO;
    exec_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->host = host;
    x->loop = loop;
    *state = x;
    return 0;
}

/* Shutdown: every call has completed (any straggler is completed here);
 * every child still running is killed with its group. The state is freed
 * once the last run is reaped and closed. */
static void exec_close(void *state) {
    exec_t *x = state;
    x->closing = true;
    for (run_t *r = x->runs; r != NULL; r = r->next) {
        kill_group(r);
        if (r->call != NULL) {
            saga_call_t *call = r->call;
            r->call = NULL;
            x->host->set_call_data(call, NULL);
            x->host->log(SAGA_LOG_WARN, PLUGIN,
                         "closing with %s still running", r->prog);
            step_call_complete(x->host, call, SAGA_OUTCOME_TECHNICAL,
                               HANDLER ": the exec plugin is shutting down",
                               HANDLER);
        }
    }
    maybe_free_plugin(x);
}

static const saga_handler_t exec_handlers[] = {
    {"run", 0, h_run, h_cancel},
};

SAGA_PLUGIN_EXPORT const saga_plugin_t saga_plugin = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(saga_plugin_t),
    .name = "exec",
    .version = "1.0.0",
    .init = exec_init,
    .close = exec_close,
    .handlers = exec_handlers,
    .handler_count = sizeof(exec_handlers) / sizeof(exec_handlers[0]),
};
