/*
 * relay_env.c -- the relay suites' shared environment (see relay_env.h).
 */
#include "relay_env.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "saga_proc.h"
#include "test_poll.h"

redis_server_t R;
postgres_server_t P;
char env_dir[512];
bool env_pg_tcp;

#define MAX_RELAYS 64

static pid_t worker_pid;
static char worker_log[600];
static pid_t relays[MAX_RELAYS];
static char relay_logs[MAX_RELAYS][600];
static size_t nrelays;

static void write_def(const char *file, const char *text) {
    char path[800];
    snprintf(path, sizeof(path), "%s/defs/%s", env_dir, file);
    saga_proc_write_file(path, text);
}

static void start_worker(void) {
    char defs[700];
    snprintf(defs, sizeof(defs), "%s/defs", env_dir);
    const char *args[] = {"worker", "--redis", R.url, "--defs", defs, "--name", "w1",
                          "--lease", "2s", "--grace", "1s", NULL};
    saga_proc_io_t io = {.out = worker_log, .err = worker_log, .append = true};
    worker_pid = saga_proc_spawn(args, &io);
}

void env_setup(const char *const *extra_defs, void (*before_worker)(void)) {
    /* Redis keeps its data across a restart (as in production): the names
     * workers published survive it, and a row is never judged against an
     * empty registry */
    const char *redis_args[] = {"--appendonly", "yes", NULL};
    cr_assert_eq(redis_server_start(&R, redis_args), 0, "redis-server");
    cr_assert_eq(env_pg_tcp ? postgres_server_start_tcp(&P) : postgres_server_start(&P), 0,
                 "postgres");
    snprintf(env_dir, sizeof(env_dir), "%s/work", R.dir);
    mkdir(env_dir, 0700);
    char path[700];
    snprintf(path, sizeof(path), "%s/defs", env_dir);
    mkdir(path, 0700);
    write_def("noop.yaml", "saga: noop\n"
                           "input:\n  required: [n]\n"
                           "steps:\n"
                           "  - name: only\n"
                           "    action: {handler: demo.noop}\n"
                           "    compensation: {handler: demo.noop}\n");
    for (; extra_defs != NULL && extra_defs[0] != NULL; extra_defs += 2)
        write_def(extra_defs[0], extra_defs[1]);

    /* the DDL exactly as `saga relay --schema` prints it */
    char ddl_path[700];
    snprintf(ddl_path, sizeof(ddl_path), "%s/schema.sql", env_dir);
    const char *args[] = {"relay", "--schema", NULL};
    saga_proc_io_t io = {.out = ddl_path, .err = ddl_path};
    cr_assert_eq(saga_proc_run(args, &io), 0, "saga relay --schema");
    char *ddl = saga_proc_slurp(ddl_path);
    PGconn *c = env_db();
    env_exec(c, "SET client_min_messages = warning");
    env_exec(c, ddl);
    PQfinish(c);
    free(ddl);

    snprintf(worker_log, sizeof(worker_log), "%s/worker.log", env_dir);
    if (before_worker != NULL)
        before_worker();
    start_worker();
    /* the worker published the names it serves: a relay that starts now
     * knows them (a row of a name no worker ever served is refused) */
    test_poll_t p = test_poll_start(30000);
    for (;;) {
        char *log = saga_proc_slurp(worker_log);
        bool running = strstr(log, "worker w1: running") != NULL;
        if (!running && !test_poll_next(&p))
            cr_assert_fail("the worker did not start: %s", log);
        free(log);
        if (running)
            break;
    }
}

pid_t env_relay(const char *log, const char *const *extra) {
    return env_relay_out(log, NULL, extra);
}

pid_t env_relay_out(const char *log, const char *out, const char *const *extra) {
    cr_assert(nrelays < MAX_RELAYS);
    const char *args[32] = {"relay", "--postgres", P.conninfo, "--redis", R.url};
    int n = 5;
    for (; extra != NULL && *extra != NULL && n < 31; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    snprintf(relay_logs[nrelays], sizeof(relay_logs[0]), "%s/%s", env_dir, log);
    char out_path[700];
    if (out != NULL)
        snprintf(out_path, sizeof(out_path), "%s/%s", env_dir, out);
    saga_proc_io_t io = {.out = out != NULL ? out_path : relay_logs[nrelays],
                         .err = relay_logs[nrelays], .append = true};
    pid_t pid = saga_proc_spawn(args, &io);
    relays[nrelays++] = pid;
    return pid;
}

void env_relay_forget(pid_t pid) {
    for (size_t i = 0; i < nrelays; i++)
        if (relays[i] == pid)
            relays[i] = 0;
}

int env_relay_stop(pid_t pid) {
    env_relay_forget(pid);
    return saga_proc_stop(&pid);
}

void env_finish(void) {
    for (size_t i = 0; i < nrelays; i++) {
        if (relays[i] > 0) {
            int rc = saga_proc_stop(&relays[i]);
            cr_assert_eq(rc, 0, "relay %zu exited %d on SIGTERM, not 0 (log %s)", i, rc,
                         relay_logs[i]);
        }
        saga_proc_assert_clean(relay_logs[i]);
        /* every line is a log line (nothing printed raw, e.g. by libpq) */
        char *text = saga_proc_slurp(relay_logs[i]);
        for (char *line = text; *line != '\0';) {
            char *end = strchr(line, '\n');
            if (end != NULL)
                *end = '\0';
            cr_assert(line[0] == '\0' || (line[0] >= '0' && line[0] <= '9'),
                      "%s: not a log line: %s", relay_logs[i], line);
            line = end != NULL ? end + 1 : line + strlen(line);
        }
        free(text);
    }
    saga_proc_assert_clean(worker_log);
}

void env_teardown(void) {
    for (size_t i = 0; i < nrelays; i++)
        if (relays[i] > 0)
            saga_proc_stop(&relays[i]);
    nrelays = 0;
    saga_proc_stop(&worker_pid);
    saga_proc_assert_clean(worker_log);
    postgres_server_stop(&P);
    redis_server_stop(&R);
}

PGconn *env_db(void) {
    PGconn *c = postgres_server_connect(&P);
    cr_assert_not_null(c, "cannot connect to the test's PostgreSQL");
    return c;
}

void env_exec(PGconn *c, const char *sql) {
    cr_assert_eq(postgres_exec(c, sql), 0, "SQL failed: %.300s", sql);
}

long env_long(PGconn *c, const char *sql) { return postgres_long(c, sql); }

void env_insert_noop(PGconn *c, const char *prefix, int from, int to) {
    char sql[600];
    snprintf(sql, sizeof(sql),
             "INSERT INTO saga_outbox (id, saga, input) SELECT '%s-' || i, 'noop', "
             "jsonb_build_object('n', i) FROM generate_series(%d, %d) AS i",
             prefix, from, to - 1);
    env_exec(c, sql);
}

/* Prints the end of every relay's log and the worker's, to explain a
 * failed wait. */
static void dump_logs(void) {
    for (size_t i = 0; i <= nrelays; i++) {
        const char *path = i < nrelays ? relay_logs[i] : worker_log;
        char *text = saga_proc_slurp(path);
        size_t n = strlen(text);
        fprintf(stderr, "---- %s (end):\n%s\n", path, n > 3000 ? text + n - 3000 : text);
        free(text);
    }
}

void env_wait_count(PGconn *c, const char *sql, long want, long timeout_ms, const char *what) {
    test_poll_t p = test_poll_start(timeout_ms);
    long got;
    while ((got = env_long(c, sql)) != want)
        if (!test_poll_next(&p) && (dump_logs(), true))
            cr_assert_fail("%s: %ld, not %ld, after %ld ms (%s)", what, got, want, timeout_ms,
                           sql);
}

json_t *env_list(void) {
    char out[700], err[700];
    snprintf(out, sizeof(out), "%s/list.json", env_dir);
    snprintf(err, sizeof(err), "%s/list.err", env_dir);
    const char *args[] = {"list", "--redis", R.url, "--json", "--limit", "100000", NULL};
    saga_proc_io_t io = {.out = out, .err = err};
    int rc = saga_proc_run(args, &io);
    char *text = saga_proc_slurp(out);
    json_error_t e;
    json_t *j = rc == 0 ? json_loads(text, 0, &e) : NULL;
    if (j == NULL) {
        char *errtext = saga_proc_slurp(err);
        cr_assert_fail("saga list: exit %d: %s %s", rc, errtext, text);
    }
    free(text);
    cr_assert(json_is_array(j));
    return j;
}

json_t *env_wait_completed(size_t n, long timeout_ms) {
    test_poll_t p = test_poll_every(timeout_ms, 100);
    for (;;) {
        json_t *l = env_list();
        size_t done = 0, i;
        json_t *it;
        json_array_foreach(l, i, it) {
            if (strcmp(json_string_value(json_object_get(it, "state")), "completed") == 0)
                done++;
        }
        if (json_array_size(l) == n && done == n)
            return l;
        size_t total = json_array_size(l);
        json_decref(l);
        if (!test_poll_next(&p) && (dump_logs(), true))
            cr_assert_fail("%zu sagas (%zu completed), not %zu completed, after %ld ms", total,
                           done, n, timeout_ms);
    }
}

bool env_log_has(const char *log, const char *needle) {
    char path[800];
    snprintf(path, sizeof(path), "%s/%s", env_dir, log);
    char *text = saga_proc_slurp(path);
    bool has = strstr(text, needle) != NULL;
    free(text);
    return has;
}
