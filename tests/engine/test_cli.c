/*
 * test_cli.c -- the `saga` command as users run it: a real process, its
 * exit status, stdout and stderr.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "redis_server.h"
#include "saga_proc.h"
#include "test_poll.h"

static char tmp[256];

static void setup(void) {
    snprintf(tmp, sizeof(tmp), "%s/saga-cli-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void) {
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp);
}

TestSuite(cli, .init = setup, .fini = teardown);

typedef struct run_s {
    int status;   /* exit code, or 128 + signal */
    char *out;
    char *err;
} run_t;

static void write_file(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs `saga ARGS...` in the temp dir; NULL-terminated. `pid_out`: start it
 * in the background instead and return at once. */
static run_t saga_run(pid_t *pid_out, ...) {
    char out[512], err[512];
    snprintf(out, sizeof(out), "%s/stdout", tmp);
    snprintf(err, sizeof(err), "%s/stderr", tmp);
    const char *argv[32];
    int n = 0;
    va_list ap;
    va_start(ap, pid_out);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 31;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    saga_proc_io_t io = {.out = out, .err = err, .cwd = tmp};
    run_t r = {0, NULL, NULL};
    if (pid_out != NULL) {
        *pid_out = saga_proc_spawn(argv, &io);
        return r;
    }
    r.status = saga_proc_run(argv, &io);
    r.out = saga_proc_slurp(out);
    r.err = saga_proc_slurp(err);
    return r;
}

static void run_free(run_t *r) {
    free(r->out);
    free(r->err);
}

#define ASSERT_CONTAINS(hay, needle) \
    cr_assert(strstr((hay), (needle)) != NULL, "expected '%s' in:\n%s", (needle), (hay))

static const char *const OK_YAML =
    "saga: cli_ok\n"
    "input: {required: [n]}\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.echo, with: {n: \"${input.n}\"}}, compensation: {handler: demo.noop}}\n"
    "  - {name: b, action: {handler: demo.noop}, compensation: none}\n";

static const char *const FAIL_YAML =
    "saga: cli_fail\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
    "  - {name: b, action: {handler: demo.fail, with: {message: no stock}}, compensation: {handler: demo.noop}}\n";

static const char *const STUCK_YAML =
    "saga: cli_stuck\n"
    "recovery: forward\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.fail, with: {message: bad address}}}\n";

Test(cli, exit_codes_follow_the_final_state) {
    write_file("ok.yaml", OK_YAML);
    write_file("fail.yaml", FAIL_YAML);
    write_file("stuck.yaml", STUCK_YAML);
    run_t r = saga_run(NULL, "run", "ok.yaml", "--store", "memory", "--input", "{\"n\": 5}", "--json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    json_error_t je;
    json_t *s = json_loads(r.out, 0, &je);
    cr_assert_not_null(s, "stdout is one JSON object: %s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    cr_assert_str_eq(json_string_value(json_object_get(s, "saga")), "cli_ok");
    cr_assert(json_is_string(json_object_get(s, "id")));
    json_t *steps = json_object_get(s, "steps");
    cr_assert_eq(json_array_size(steps), 2);
    json_t *a = json_array_get(steps, 0);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "a");
    cr_assert_str_eq(json_string_value(json_object_get(a, "status")), "succeeded");
    cr_assert_eq(json_integer_value(json_object_get(a, "attempts")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(a, "output"), "n")), 5);
    cr_assert(json_object_get(a, "error") != NULL);
    json_t *h = json_object_get(s, "history");
    cr_assert_geq(json_array_size(h), 5);
    cr_assert(json_is_string(json_object_get(json_array_get(h, 0), "ts")));
    json_decref(s);
    ASSERT_CONTAINS(r.err, "a                    action       #1  succeeded");
    run_free(&r);

    r = saga_run(NULL, "run", "fail.yaml", "--store", "memory", NULL);
    cr_assert_eq(r.status, 3, "compensated exits 3; stderr: %s", r.err);
    ASSERT_CONTAINS(r.out, "compensated");
    ASSERT_CONTAINS(r.out, "no stock");
    run_free(&r);

    r = saga_run(NULL, "run", "stuck.yaml", "--store", "memory", NULL);
    cr_assert_eq(r.status, 4, "stuck exits 4; stderr: %s", r.err);
    ASSERT_CONTAINS(r.out, "stuck");
    run_free(&r);
}

/* Reasons and errors come from handlers (and records): the text output
 * shows them on one line with control characters escaped, so that an
 * error message cannot clear the operator's terminal or forge a line. */
Test(cli, control_characters_in_messages_are_escaped) {
    write_file("esc.yaml",
        "saga: cli_esc\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
        "  - {name: b, action: {handler: demo.fail, with: {message: \"\\e[2Jwiped\\nforged line\\u009b\"}},"
        " compensation: {handler: demo.noop}}\n");
    run_t r = saga_run(NULL, "run", "esc.yaml", "--store", "memory", NULL);
    cr_assert_eq(r.status, 3, "compensated; stderr: %s", r.err);
    cr_assert(strchr(r.out, 0x1b) == NULL && strchr(r.err, 0x1b) == NULL, "a raw ESC got out");
    cr_assert(strstr(r.out, "\xc2\x9b") == NULL && strstr(r.err, "\xc2\x9b") == NULL,
              "a raw C1 CSI got out");
    /* (The engine already keeps a handler's message on one line.) */
    ASSERT_CONTAINS(r.out, "reason: step 'b' failed: business: \\x1b[2Jwiped");
    ASSERT_CONTAINS(r.out, "forged line\\u009b\n");
    ASSERT_CONTAINS(r.out, "error: \\x1b[2Jwiped");
    ASSERT_CONTAINS(r.err, "failed (business, ");
    ASSERT_CONTAINS(r.err, ": \\x1b[2Jwiped");
    cr_assert(strstr(r.out, "\nforged line") == NULL && strstr(r.err, "\nforged line") == NULL,
              "the message stays on its line");
    run_free(&r);

    /* --json keeps the text as it is (JSON escapes it its own way). */
    r = saga_run(NULL, "run", "esc.yaml", "--store", "memory", "--json", NULL);
    json_t *s = json_loads(r.out, 0, NULL);
    cr_assert_not_null(s);
    cr_assert(strstr(json_string_value(json_object_get(s, "reason")), "\x1b[2Jwiped") != NULL);
    json_decref(s);
    run_free(&r);
}

Test(cli, errors_and_usage) {
    write_file("ok.yaml", OK_YAML);
    write_file("bad.yaml", "saga: bad\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n    retyr: {}\n");
    run_t r = saga_run(NULL, "run", "ok.yaml", "--store", "memory", NULL);
    cr_assert_eq(r.status, 1, "input missing a required key is an error");
    ASSERT_CONTAINS(r.err, "'n'");
    run_free(&r);
    r = saga_run(NULL, "run", "ok.yaml", "--store", "memory", "--input", "{\"n\": ", NULL);
    cr_assert_eq(r.status, 1);
    ASSERT_CONTAINS(r.err, "--input:1:");
    run_free(&r);
    r = saga_run(NULL, "run", "bad.yaml", "--store", "memory", NULL);
    cr_assert_eq(r.status, 1);
    ASSERT_CONTAINS(r.err, "bad.yaml:5:5: error:");
    run_free(&r);
    r = saga_run(NULL, "run", NULL);
    cr_assert_eq(r.status, 2, "no FILE is a usage error");
    run_free(&r);
    r = saga_run(NULL, "run", "ok.yaml", "--no-such-flag", NULL);
    cr_assert_eq(r.status, 2);
    run_free(&r);
    r = saga_run(NULL, "frobnicate", NULL);
    cr_assert_eq(r.status, 2);
    run_free(&r);
    r = saga_run(NULL, "run", "--help", NULL);
    cr_assert_eq(r.status, 0);
    ASSERT_CONTAINS(r.out, "usage: saga run FILE");
    run_free(&r);
    r = saga_run(NULL, "resume", "--help", NULL);
    cr_assert_eq(r.status, 0);
    run_free(&r);
    r = saga_run(NULL, "validate", "--help", NULL);
    cr_assert_eq(r.status, 0);
    run_free(&r);
}

Test(cli, validate_reports_every_file) {
    write_file("ok.yaml", OK_YAML);
    write_file("bad.yaml", "saga: bad\nsteps: []\n");
    run_t r = saga_run(NULL, "validate", "ok.yaml", NULL);
    cr_assert_eq(r.status, 0);
    ASSERT_CONTAINS(r.out, "ok.yaml: ok");
    run_free(&r);
    r = saga_run(NULL, "validate", "ok.yaml", "bad.yaml", NULL);
    cr_assert_eq(r.status, 1);
    ASSERT_CONTAINS(r.err, "bad.yaml:2:");
    run_free(&r);
}

/* The default store: a private redis-server in ./.saga that a later
 * command sees; a saga interrupted under definition v1 resumes under v1
 * after the file became v2. */
Test(cli, embedded_store_resumes_under_the_definition_it_started_with) {
    write_file("pin.yaml",
        "saga: pinned\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.echo, with: {v: 1}}, compensation: none}\n"
        "  - {name: b, action: {handler: demo.sleep, with: {ms: 3000}}, compensation: none}\n"
        "  - {name: c, action: {handler: demo.echo, with: {version: v1}}, compensation: none}\n");
    pid_t pid;
    saga_run(&pid, "run", "pin.yaml", "--id", "pin-1", NULL);
    /* Wait until b is running (its attempt recorded), then kill -9. */
    char errpath[512];
    snprintf(errpath, sizeof(errpath), "%s/stderr", tmp);
    /* Every 25 ms, the cadence this test always had. Killed up to 50 ms
     * later, the second resume below often met its fresh embedded
     * redis-server still loading the AOF and failed ("server not ready:
     * LOADING"): embedded_redis.c calls a server ready once its socket
     * accepts, before it loaded its data (a defect of its own, reported
     * with issue 16; not hidden here, only not made more likely). */
    test_poll_t p = test_poll_every(10000, 25);
    for (;;) {
        char *e = saga_proc_slurp(errpath);
        bool started = strstr(e, "b                    action       #1  started") != NULL;
        if (!started && !test_poll_next(&p)) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            cr_assert_fail("step b did not start within 10 s; the run's stderr:\n%s", e);
        }
        free(e);
        if (started)
            break;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    write_file("pin.yaml",
        "saga: pinned\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.echo, with: {v: 1}}, compensation: none}\n"
        "  - {name: b, action: {handler: demo.noop}, compensation: none}\n"
        "  - {name: c, action: {handler: demo.echo, with: {version: v2}}, compensation: none}\n");
    run_t r = saga_run(NULL, "resume", "--json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    json_t *all = json_loads(r.out, 0, NULL);
    cr_assert_eq(json_array_size(all), 1);
    json_t *s = json_array_get(all, 0);
    cr_assert_str_eq(json_string_value(json_object_get(s, "id")), "pin-1");
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
    json_t *c = json_array_get(json_object_get(s, "steps"), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "output"), "version")), "v1");
    json_decref(all);
    ASSERT_CONTAINS(r.err, "b                    action       #1  started");
    run_free(&r);
    /* Nothing left: a second resume finds nothing, and the server is gone. */
    r = saga_run(NULL, "resume", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    ASSERT_CONTAINS(r.err, "nothing to resume");
    run_free(&r);
    char sock[512];
    snprintf(sock, sizeof(sock), "%s/.saga/redis.sock", tmp);
    struct stat st;
    cr_assert(stat(sock, &st) != 0, "the private redis-server stopped at exit");
}

Test(cli, unreachable_redis_is_named_and_passwords_are_never_printed) {
    write_file("ok.yaml", OK_YAML);
    run_t r = saga_run(NULL, "run", "ok.yaml", "--input", "{\"n\":1}", "--redis",
                       "redis://app:sup3rsecret@127.0.0.1:1/0", NULL);
    cr_assert_eq(r.status, 1);
    ASSERT_CONTAINS(r.err, "redis://app:***@127.0.0.1:1");
    cr_assert(strstr(r.err, "sup3rsecret") == NULL, "password leaked: %s", r.err);
    run_free(&r);
    r = saga_run(NULL, "run", "ok.yaml", "--input", "{\"n\":1}", "--redis", "http://nope", NULL);
    cr_assert_eq(r.status, 2, "a malformed URL is a usage error");
    run_free(&r);
}

/* SAGA_REDIS_CONNECTIONS sets the store's connections (1 to 16); anything
 * else is a usage error that names the variable. */
Test(cli, redis_connections_come_from_the_environment) {
    redis_server_t R;
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    write_file("ok.yaml", OK_YAML);
    setenv("SAGA_REDIS_CONNECTIONS", "2", 1);
    run_t r = saga_run(NULL, "run", "ok.yaml", "--input", "{\"n\":1}", "--redis", R.url, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    static const char *const bad[] = {"0", "17", "two", "-1", "3x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("SAGA_REDIS_CONNECTIONS", bad[i], 1);
        r = saga_run(NULL, "run", "ok.yaml", "--input", "{\"n\":1}", "--redis", R.url, NULL);
        cr_assert_eq(r.status, 2, "SAGA_REDIS_CONNECTIONS=%s: exit %d", bad[i], r.status);
        ASSERT_CONTAINS(r.err, "SAGA_REDIS_CONNECTIONS");
        run_free(&r);
    }
    unsetenv("SAGA_REDIS_CONNECTIONS");
    redis_server_stop(&R);
}

/* `saga history` shows the delay each retry waited for, as recorded. */
Test(cli, history_shows_the_delay_of_each_retry) {
    redis_server_t R;
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    write_file("flaky.yaml", "saga: cli_flaky\n"
                             "steps:\n"
                             "  - name: a\n"
                             "    action: {handler: demo.flaky, with: {failures: 1}}\n"
                             "    retry: {max_attempts: 4, backoff: fixed, initial_delay: 30ms,\n"
                             "            jitter: none}\n"
                             "    compensation: {handler: demo.noop}\n");
    run_t r = saga_run(NULL, "run", "flaky.yaml", "--redis", R.url, "--id", "flaky-1", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    run_free(&r);
    r = saga_run(NULL, "history", "flaky-1", "--redis", R.url, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    ASSERT_CONTAINS(r.out, "step.retrying");
    ASSERT_CONTAINS(r.out, "; retry in 30 ms (attempt 2 of 4)");
    run_free(&r);
    redis_server_stop(&R);
}

Test(cli, an_external_redis_with_eviction_is_refused) {
    redis_server_t R;
    static const char *const args[] = {"--maxmemory-policy", "allkeys-lru", NULL};
    cr_assert_eq(redis_server_start(&R, args), 0);
    write_file("ok.yaml", OK_YAML);
    run_t r = saga_run(NULL, "run", "ok.yaml", "--input", "{\"n\":1}", "--redis", R.url, NULL);
    redis_server_stop(&R);
    cr_assert_eq(r.status, 1);
    ASSERT_CONTAINS(r.err, "maxmemory-policy is 'allkeys-lru'");
    run_free(&r);
}

/* `saga list` pages through the store however large --limit is (the
 * store's calls take at most SAGA_OPERATOR_LIST_MAX per page), and a
 * record that cannot be read is named, not skipped or printed half. */
Test(cli, list_takes_any_limit_and_names_a_malformed_record) {
    redis_server_t R;
    cr_assert_eq(redis_server_start(&R, NULL), 0);
    redisContext *c = redis_server_connect(&R);
    cr_assert_not_null(c);
    for (int i = 0; i < 3; i++) {
        redisReply *q = redisCommand(c, "HSET saga:{ls-%d} state running saga s created %d",
                                     i, 1000 + i);
        freeReplyObject(q);
        q = redisCommand(c, "ZADD saga:{idx}:sagas %d ls-%d", -(1000 + i), i);
        freeReplyObject(q);
    }
    run_t r = saga_run(NULL, "list", "--limit", "100000", "--json", "--redis", R.url, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_t *all = json_loads(r.out, 0, NULL);
    cr_assert_eq(json_array_size(all), 3, "%s", r.out);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 0), "id")), "ls-2");
    json_decref(all);
    run_free(&r);

    redisReply *q = redisCommand(c, "HSET saga:{ls-1} state bogus");
    freeReplyObject(q);
    r = saga_run(NULL, "list", "--redis", R.url, NULL);
    cr_assert_eq(r.status, 1);
    ASSERT_CONTAINS(r.err, "saga: error: list: saga ls-1: field 'state' is 'bogus', not a state");
    cr_assert_str_eq(r.out, "");
    run_free(&r);
    redisFree(c);
    redis_server_stop(&R);
}

/* The private redis-server accepts connections while it loads its data,
 * answering -LOADING: a command must wait for it, not fail. Its state
 * directory is prepared with half a million keys, which take it a few
 * hundred ms to load. */
Test(cli, the_private_server_is_used_once_it_has_loaded_its_data) {
    char dir[400], sock[450], pidfile[450], cmd[2048];
    snprintf(dir, sizeof(dir), "%s/.saga", tmp);
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    snprintf(pidfile, sizeof(pidfile), "%s/prep.pid", tmp);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(cmd, sizeof(cmd), "redis-server --port 0 --unixsocket '%s' --dir '%s' "
             "--appendonly yes --save '' --enable-debug-command yes --daemonize yes "
             "--pidfile '%s' --logfile '%s/prep.log'", sock, dir, pidfile, tmp);
    cr_assert_eq(system(cmd), 0);
    redisContext *c = NULL;
    for (int i = 0; i < 500 && c == NULL; i++) {
        c = redisConnectUnix(sock);
        if (c != NULL && c->err) {
            redisFree(c);
            c = NULL;
            usleep(10000);
        }
    }
    cr_assert_not_null(c, "the preparing server answers");
    redisReply *q = redisCommand(c, "DEBUG POPULATE 500000 k 32");
    cr_assert(q != NULL && q->type == REDIS_REPLY_STATUS, "populate");
    freeReplyObject(q);
    /* Into the AOF (a populate is not propagated), then stop. */
    freeReplyObject(redisCommand(c, "BGREWRITEAOF"));
    bool rewriting = true;
    for (int i = 0; i < 3000 && rewriting; i++) {
        q = redisCommand(c, "INFO persistence");
        cr_assert_not_null(q);
        rewriting = strstr(q->str, "aof_rewrite_in_progress:1") != NULL ||
                    strstr(q->str, "aof_rewrite_scheduled:1") != NULL;
        freeReplyObject(q);
        if (rewriting)
            usleep(10000);
    }
    cr_assert_not(rewriting, "the AOF was rewritten");
    redisAppendCommand(c, "SHUTDOWN");
    redisGetReply(c, (void **)&q); /* the connection closes */
    redisFree(c);
    struct stat st;
    for (int i = 0; i < 1000 && stat(pidfile, &st) == 0; i++)
        usleep(10000);
    cr_assert(stat(pidfile, &st) != 0, "the preparing server stopped");

    run_t r = saga_run(NULL, "list", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    ASSERT_CONTAINS(r.out, "ID");
    run_free(&r);
}
