/*
 * test_redis_server.c -- the test harness itself: start, stop, restart on
 * the same data, extra arguments, no server left behind.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static redisReply *cmd(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    cr_assert_not_null(r, "command failed: %s", c->errstr);
    return r;
}

Test(redis_server, start_stop_removes_everything, .timeout = 30)
{
    redis_server_t s;
    redisContext *c;
    redisReply *r;
    char dir[256];

    cr_assert_eq(redis_server_start(&s, NULL), 0);
    cr_expect(s.pid > 0);
    cr_expect(exists(s.dir));
    cr_expect(exists(s.socket));
    cr_expect_eq(strncmp(s.url, "unix:///", 8), 0, "%s", s.url);
    cr_expect(strstr(s.url, s.socket) != NULL);

    c = redis_server_connect(&s);
    cr_assert_not_null(c);
    freeReplyObject(cmd(c, "SET k %s", "v"));
    r = cmd(c, "GET %s", "k");
    cr_expect_str_eq(r->str, "v");
    freeReplyObject(r);
    /* No TCP listener: --port 0. */
    r = cmd(c, "CONFIG GET %s", "port");
    cr_assert_eq(r->elements, 2);
    cr_expect_str_eq(r->element[1]->str, "0");
    freeReplyObject(r);
    redisFree(c);

    snprintf(dir, sizeof dir, "%s", s.dir);
    redis_server_stop(&s);
    cr_expect_eq(s.pid, 0);
    cr_expect_not(exists(dir), "%s still exists", dir);
    redis_server_stop(&s); /* twice: harmless */
}

Test(redis_server, extra_args_override_defaults, .timeout = 30)
{
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", "always",
                           NULL};
    redis_server_t s;
    redisContext *c;
    redisReply *r;

    cr_assert_eq(redis_server_start(&s, extra), 0);
    cr_expect_eq(s.nargs, 4);
    c = redis_server_connect(&s);
    cr_assert_not_null(c);
    r = cmd(c, "CONFIG GET %s", "appendonly");
    cr_assert_eq(r->elements, 2);
    cr_expect_str_eq(r->element[1]->str, "yes");
    freeReplyObject(r);
    redisFree(c);
    redis_server_stop(&s);
}

Test(redis_server, restart_after_sigkill_keeps_aof_data, .timeout = 30)
{
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", "always",
                           NULL};
    redis_server_t s;
    redisContext *c;
    redisReply *r;
    pid_t old;

    cr_assert_eq(redis_server_start(&s, extra), 0);
    c = redis_server_connect(&s);
    cr_assert_not_null(c);
    freeReplyObject(cmd(c, "SET durable %s", "yes"));
    redisFree(c);

    old = s.pid;
    redis_server_kill(&s, SIGKILL);
    cr_expect_eq(s.pid, 0);
    cr_expect_eq(kill(old, 0), -1, "old server still there");

    cr_assert_eq(redis_server_restart(&s), 0);
    cr_expect(s.pid > 0 && s.pid != old);
    c = redis_server_connect(&s);
    cr_assert_not_null(c);
    r = cmd(c, "GET %s", "durable");
    cr_expect_eq(r->type, REDIS_REPLY_STRING);
    cr_expect_str_eq(r->str, "yes");
    freeReplyObject(r);
    redisFree(c);
    redis_server_stop(&s);
}

Test(redis_server, restart_of_running_server, .timeout = 30)
{
    redis_server_t s;
    pid_t old;

    cr_assert_eq(redis_server_start(&s, NULL), 0);
    old = s.pid;
    cr_assert_eq(redis_server_restart(&s), 0);
    cr_expect(s.pid > 0 && s.pid != old);
    redis_server_stop(&s);
}

Test(redis_server, stopped_server_is_stopped_by_stop, .timeout = 30)
{
    redis_server_t s;

    cr_assert_eq(redis_server_start(&s, NULL), 0);
    redis_server_kill(&s, SIGSTOP);
    cr_expect(s.pid > 0, "SIGSTOP does not reap");
    redis_server_kill(&s, SIGCONT);
    redis_server_kill(&s, SIGSTOP);
    redis_server_stop(&s); /* SIGTERM + SIGCONT */
    cr_expect_eq(s.pid, 0);
}

Test(redis_server, stop_of_zeroed_struct)
{
    redis_server_t s;

    memset(&s, 0, sizeof s);
    redis_server_stop(&s);
    redis_server_kill(&s, SIGKILL);
    redis_server_stop(NULL);
    cr_expect_eq(redis_server_restart(&s), -1);
}

Test(redis_server, bad_argument_fails_fast, .init = cr_redirect_stderr,
     .timeout = 30)
{
    const char *extra[] = {"--no-such-option", "1", NULL};
    redis_server_t s;

    cr_expect_eq(redis_server_start(&s, extra), -1);
    cr_expect_eq(s.pid, 0);
    cr_expect_eq(s.dir[0], '\0', "directory removed after a failed start");
}

Test(redis_server, missing_binary_says_what_to_install,
     .init = cr_redirect_stderr)
{
    redis_server_t s;
    char buf[1024];
    size_t n;
    FILE *f;

    setenv("PATH", "/nonexistent", 1);
    cr_expect_eq(redis_server_start(&s, NULL), -1);
    fflush(stderr);
    f = cr_get_redirected_stderr();
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    cr_expect(strstr(buf, "install the `redis-server` package") != NULL,
              "stderr: %s", buf);
}

Test(redis_server, free_port)
{
    int p = redis_server_free_port();
    cr_expect(p > 0 && p < 65536, "port %d", p);
}

/* A test process that dies without stopping its server must not leave the
 * server running: the harness sets PR_SET_PDEATHSIG. */
Test(redis_server, server_dies_with_its_test_process, .timeout = 30)
{
    int fds[2];
    pid_t child, srv = 0;
    char dir[256] = "";
    char state = 0;
    int i;

    cr_assert_eq(pipe(fds), 0);
    child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        redis_server_t s;
        close(fds[0]);
        if (redis_server_start(&s, NULL) != 0)
            _exit(1);
        if (write(fds[1], &s.pid, sizeof s.pid) < 0 ||
            write(fds[1], s.dir, sizeof s.dir) < 0)
            _exit(1);
        _exit(0); /* "crash": no redis_server_stop */
    }
    close(fds[1]);
    cr_assert_eq(read(fds[0], &srv, sizeof srv), (ssize_t)sizeof srv);
    cr_assert_eq(read(fds[0], dir, sizeof dir), (ssize_t)sizeof dir);
    close(fds[0]);
    cr_assert_eq(waitpid(child, NULL, 0), child);

    /* Gone, or a zombie waiting for its new parent to reap it. */
    for (i = 0; i < 500; i++) {
        char path[64], buf[256];
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/stat", (int)srv);
        f = fopen(path, "r");
        if (f == NULL) {
            state = 'X';
            break;
        }
        if (fgets(buf, sizeof buf, f) != NULL) {
            char *p = strrchr(buf, ')');
            state = p != NULL && p[1] == ' ' ? p[2] : 0;
        }
        fclose(f);
        if (state == 'Z' || state == 'X')
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    cr_expect(state == 'X' || state == 'Z', "server %d still running (%c)",
              (int)srv, state);
    if (state != 'X' && state != 'Z')
        kill(srv, SIGKILL);
    /* The crashed test's directory is ours to clean up. */
    {
        redis_server_t s;
        memset(&s, 0, sizeof s);
        snprintf(s.dir, sizeof s.dir, "%s", dir);
        redis_server_stop(&s);
    }
}
