/*
 * test_exec.c -- the `exec.run` handler through the strict test host: real
 * child processes, process groups, pipes, zombies.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <uv.h>

#include "plugin_host.h"

static uv_loop_t loop;
static plugin_host_t *host;
static int fds_at_start;

static void start(void) {
    /* libuv opens a process-wide pipe once, at the first uv_loop_init(). */
    uv_loop_t warm;
    cr_assert_eq(uv_loop_init(&warm), 0);
    cr_assert_eq(uv_loop_close(&warm), 0);
    fds_at_start = ph_count_fds();
    cr_assert_eq(uv_loop_init(&loop), 0);
    host = ph_new(&loop, "exec");
    ph_load(host, "run");
}

/* Every test ends here: plugin closed, loop closed clean, no child of ours
 * left (running or zombie), no descriptor leaked. */
static void finish(void) {
    ph_free(host);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left on the loop");
    errno = 0;
    pid_t p = waitpid(-1, NULL, WNOHANG);
    cr_expect(p == -1 && errno == ECHILD, "a child process is left (pid %d)",
              (int)p);
    cr_expect_eq(ph_count_fds(), fds_at_start, "a descriptor was leaked "
                 "(%d open, %d before)", ph_count_fds(), fds_at_start);
    ph_check_leaks();
}

static saga_call_t *run(const char *fmt, const char *arg) {
    return ph_run1(host, "run", NULL, fmt, arg);
}

/* Waits up to 5 s for `pid` to be gone. As subreaper we adopt the orphans
 * of our children, so we usually reap it ourselves: then its wait status is
 * returned. Its own parent may have reaped it first (a shell in `wait`
 * killed at the same moment): then -1 once it no longer exists. */
static int reap(pid_t pid) {
    for (int i = 0; i < 500; i++) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r == -1 && errno == ECHILD && kill(pid, 0) == -1 && errno == ESRCH)
            return -1;
        usleep(10000);
    }
    cr_assert_fail("process %d still alive", (int)pid);
    return 0;
}

/* The wait status of a process that was SIGKILLed (or reaped by its own
 * parent, which we cannot see). */
#define KILLED(st) ((st) == -1 || (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))

static pid_t read_pid(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    return pid;
}

Test(exec, ok_json_stdout_is_the_output) {
    start();
    saga_call_t *c = run("{\"argv\":[\"/bin/sh\",\"-c\",\"printf '%s'\"]}",
                         "{\\\"a\\\":1,\\\"b\\\":[true]}");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(c->data, "{\"a\":1,\"b\":[true]}");
    finish();
}

Test(exec, ok_text_stdout_is_wrapped) {
    start();
    saga_call_t *c = run("{\"argv\":[\"/bin/echo\",\"%s\"]}", "hello world");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(c->data, "{\"stdout\":\"hello world\\n\"}");
    /* stderr does not matter when the exit code is 0. */
    c = run("{\"argv\":[\"/bin/sh\",\"-c\",\"%s\"]}", "echo warn >&2; echo 42");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(c->data, "42");
    finish();
}

Test(exec, business_exit_code) {
    start();
    saga_call_t *c = ph_run1(host, "run", NULL,
                             "{\"argv\":[\"/bin/sh\",\"-c\",\"echo nope >&2; "
                             "exit 3\"],\"business_exit_codes\":[3,4]}");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect_str_eq(c->data,
                     "exec.run /bin/sh: exited with code 3; stderr: nope");
    finish();
}

Test(exec, other_exit_code_is_technical_with_stderr_tail) {
    start();
    saga_call_t *c = run(
        "{\"argv\":[\"/bin/sh\",\"-c\",\"%s\"],\"business_exit_codes\":[3]}",
        "i=0; while [ $i -lt 500 ]; do echo \\\"noise line $i\\\" >&2; "
        "i=$((i+1)); done; echo 'THE END' >&2; exit 7");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    const char *head = "exec.run /bin/sh: exited with code 7; stderr: ...";
    cr_expect(strncmp(c->data, head, strlen(head)) == 0, "%s", c->data);
    size_t n = strlen(c->data);
    cr_expect(n > 7 && strcmp(c->data + n - 7, "THE END") == 0, "%s", c->data);
    cr_expect(n < 2600, "message is %zu bytes", n);
    cr_expect(strstr(c->data, "noise line 0 |") == NULL);
    finish();
}

Test(exec, death_by_signal_is_technical) {
    start();
    saga_call_t *c = run("{\"argv\":[\"/bin/sh\",\"-c\",\"%s\"]}",
                         "echo dying >&2; kill -TERM $$");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect_str_eq(c->data, "exec.run /bin/sh: killed by signal 15 "
                              "(Terminated); stderr: dying");
    finish();
}

Test(exec, timeout_kills_the_whole_group) {
    start();
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char path[] = "/tmp/saga-exec-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    saga_call_t *c = ph_run1(host, "run", NULL,
                             "{\"argv\":[\"/bin/sh\",\"-c\",\"sleep 60 & echo "
                             "$! > %s; wait\"],\"timeout\":\"300ms\"}", path);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect_str_eq(c->data, "exec.run /bin/sh: timed out after 300ms "
                              "(process group killed)");
    cr_expect(c->completed_ms - c->started_ms < 3000);
    pid_t grandchild = read_pid(path);
    unlink(path);
    /* The shell's background sleep was in the group: SIGKILLed too (it is
     * ours to reap as subreaper, which also proves it is gone). */
    int st = reap(grandchild);
    cr_expect(KILLED(st), "status %d", st);
    finish();
}

Test(exec, timeout_from_the_attempt_budget) {
    start();
    ph_opts_t o;
    memset(&o, 0, sizeof(o));
    o.timeout_ms = 250;
    saga_call_t *c = ph_run1(host, "run", &o,
                             "{\"argv\":[\"/bin/sleep\",\"30\"]}");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(strstr(c->data, "timed out after 250ms") != NULL, "%s", c->data);
    finish();
}

Test(exec, leftovers_are_killed_when_the_program_exits) {
    start();
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    saga_call_t *c = run("{\"argv\":[\"/bin/sh\",\"-c\",\"%s\"]}",
                         "sleep 60 & echo $!");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect(c->completed_ms - c->started_ms < 3000);
    pid_t leftover = (pid_t)json_integer_value(c->output);
    cr_assert(leftover > 0, "%s", c->data);
    int st = reap(leftover);
    cr_expect(KILLED(st), "status %d", st);
    finish();
}

Test(exec, environment) {
    start();
    setenv("SAGA_TEST_INHERITED", "from-engine", 1);
    setenv("SAGA_ID", "stale-from-engine", 1);
    setenv("REPLACED", "old", 1);
    ph_opts_t o;
    memset(&o, 0, sizeof(o));
    o.saga_id = "s-env";
    o.saga_name = "booking";
    o.step = "book_hotel";
    o.phase = SAGA_PHASE_COMPENSATION;
    o.attempt = 4;
    saga_call_t *c = ph_run1(host, "run", &o,
                             "{\"argv\":[\"/usr/bin/env\"],\"env\":{\"MINE\":"
                             "\"a b\",\"NUM\":5,\"REPLACED\":\"new\"}}");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    const char *out = json_string_value(json_object_get(c->output, "stdout"));
    cr_assert_not_null(out);
    char *env = malloc(strlen(out) + 2);
    sprintf(env, "\n%s", out);
    static const char *const want[] = {
        "\nSAGA_IDEMPOTENCY_KEY=s-env/book_hotel/compensation\n",
        "\nSAGA_ID=s-env\n", "\nSAGA_NAME=booking\n",
        "\nSAGA_STEP=book_hotel\n", "\nSAGA_PHASE=compensation\n",
        "\nSAGA_ATTEMPT=4\n", "\nSAGA_TEST_INHERITED=from-engine\n",
        "\nMINE=a b\n", "\nNUM=5\n", "\nREPLACED=new\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect(strstr(env, want[i]) != NULL, "missing %s", want[i] + 1);
    cr_expect(strstr(env, "stale-from-engine") == NULL);
    cr_expect(strstr(env, "REPLACED=old") == NULL);
    free(env);
    finish();
}

/* prefix + n times 'z' + "\"}". */
static char *with_big_string(const char *prefix, size_t n) {
    size_t p = strlen(prefix);
    char *s = malloc(p + n + 3);
    cr_assert_not_null(s);
    memcpy(s, prefix, p);
    memset(s + p, 'z', n);
    strcpy(s + p + n, "\"}");
    return s;
}

Test(exec, stdin_is_delivered_as_json) {
    start();
    saga_call_t *c = ph_run1(host, "run", NULL,
                             "{\"argv\":[\"/bin/cat\"],\"stdin\":{\"x\":[1,2],"
                             "\"s\":\"\\u00e9\"}}");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(c->data, "{\"x\":[1,2],\"s\":\"\xc3\xa9\"}");

    /* Larger than any socket buffer: written as the child reads. */
    size_t n = 3 * 1024 * 1024;
    char *big = with_big_string(
        "{\"argv\":[\"/bin/cat\"],\"max_output\":8000000,\"stdin\":\"", n);
    c = ph_call(host, "run", big, NULL);
    free(big);
    cr_assert(ph_wait(host, 20000));
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%.200s", c->data);
    cr_expect_eq(strlen(json_string_value(c->output)), n);

    /* A child that never reads its stdin: no SIGPIPE for us. */
    big = with_big_string("{\"argv\":[\"/bin/true\"],\"stdin\":\"", n);
    c = ph_call(host, "run", big, NULL);
    free(big);
    cr_assert(ph_wait(host, 20000));
    cr_expect_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(c->data, "{\"stdout\":\"\"}");
    finish();
}

Test(exec, program_not_found) {
    start();
    saga_call_t *c = run("{\"argv\":[\"%s\",\"x\"]}", "/nonexistent/prog");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect_str_eq(c->data, "exec.run /nonexistent/prog: cannot start it: "
                              "no such file or directory");
    c = run("{\"argv\":[\"%s\"]}", "saga-no-such-program-anywhere");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect(strstr(c->data, "no such file or directory") != NULL, "%s",
              c->data);
    c = run("{\"argv\":[\"/bin/true\"],\"cwd\":\"%s\"}", "/nonexistent/dir");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect_str_eq(c->data, "exec.run /bin/true: cannot start it in "
                              "\"/nonexistent/dir\": no such file or directory");
    finish();
}

Test(exec, cwd_and_path_lookup) {
    start();
    saga_call_t *c = run("{\"argv\":[\"pwd\"],\"cwd\":\"%s\"}", "/tmp");
    cr_assert_eq(c->outcome, SAGA_OUTCOME_OK, "%s", c->data);
    cr_expect_str_eq(c->data, "{\"stdout\":\"/tmp\\n\"}");
    finish();
}

Test(exec, output_over_the_cap) {
    start();
    saga_call_t *c = ph_run1(host, "run", NULL,
                             "{\"argv\":[\"/usr/bin/yes\"],\"max_output\":"
                             "10000}");
    cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS);
    cr_expect_str_eq(c->data, "exec.run /usr/bin/yes: stdout exceeded "
                              "max_output (10000 bytes; process group killed)");
    finish();
}

Test(exec, cancel_kills_the_group) {
    start();
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char path[] = "/tmp/saga-exec-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    char with[256];
    snprintf(with, sizeof(with),
             "{\"argv\":[\"/bin/sh\",\"-c\",\"sleep 60 & echo $! > %s; "
             "wait\"]}", path);
    saga_call_t *c = ph_call(host, "run", with, NULL);
    ph_run_for(host, 300);
    cr_assert_eq(c->ncomplete, 0);
    ph_cancel(host, c);
    cr_assert_eq(c->ncomplete, 1);
    cr_expect_eq(c->outcome, SAGA_OUTCOME_TECHNICAL);
    cr_expect_str_eq(c->data, "exec.run /bin/sh: cancelled (process group "
                              "killed)");
    ph_cancel(host, c); /* after completion: a no-op */
    pid_t grandchild = read_pid(path);
    unlink(path);
    int st = reap(grandchild);
    cr_expect(KILLED(st), "status %d", st);
    finish();
}

Test(exec, bad_with_is_business) {
    start();
    static const char *const cases[][2] = {
        {"\"ls\"", "`with` must be a mapping, got a string"},
        {"[\"ls\"", "`with` is not valid JSON (line 1, column 5"},
        {"{}", "`argv` is required"},
        {"{\"argv\":\"ls -l\"}", "`argv`: expected a non-empty list"},
        {"{\"argv\":[]}", "`argv`: expected a non-empty list"},
        {"{\"argv\":[\"ls\",3]}", "`argv[1]`"},
        {"{\"argv\":[\"\"]}", "`argv[0]`"},
        {"{\"argv\":[\"ls\"],\"env\":[]}", "`env`"},
        {"{\"argv\":[\"ls\"],\"env\":{\"A=B\":\"x\"}}", "not a valid variable"},
        {"{\"argv\":[\"ls\"],\"env\":{\"A=\\nB\":\"x\"}}", "not a valid variable"},
        {"{\"argv\":[\"ls\"],\"env\":{\"X\":[1]}}", "`env.X`"},
        {"{\"argv\":[\"ls\"],\"env\":{\"SAGA_STEP\":\"x\"}}",
         "`env.SAGA_STEP` cannot be set"},
        {"{\"argv\":[\"ls\"],\"cwd\":5}", "`cwd`"},
        {"{\"argv\":[\"ls\"],\"timeout\":\"forever\"}", "`timeout`"},
        {"{\"argv\":[\"ls\"],\"max_output\":0}", "`max_output`"},
        {"{\"argv\":[\"ls\"],\"business_exit_codes\":[0]}",
         "`business_exit_codes[0]`"},
        {"{\"argv\":[\"ls\"],\"shell\":true}", "unknown field `shell`"},
        {"{\"argv\":[\"ls\"],\"sh\\nell\":true}", "unknown field `sh | ell`"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        saga_call_t *c = ph_call(host, "run", cases[i][0], NULL);
        cr_assert_eq(c->ncomplete, 1, "case %zu", i);
        cr_expect_eq(c->outcome, SAGA_OUTCOME_BUSINESS, "case %zu: %s", i,
                     c->data);
        cr_expect(strstr(c->data, cases[i][1]) != NULL,
                  "case %zu: '%s' not in '%s'", i, cases[i][1], c->data);
    }
    finish();
}

Test(exec, many_children_at_once) {
    start();
    enum { N = 64 };
    saga_call_t *cs[N];
    for (int i = 0; i < N; i++) {
        char with[128];
        snprintf(with, sizeof(with),
                 "{\"argv\":[\"/bin/sh\",\"-c\",\"sleep 0.2; echo %d\"]}", i);
        cs[i] = ph_call(host, "run", with, NULL);
    }
    cr_assert(ph_wait(host, 20000));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(cs[i]->outcome, SAGA_OUTCOME_OK, "%s", cs[i]->data);
        cr_expect_eq(json_integer_value(cs[i]->output), i);
    }
    finish();
}
