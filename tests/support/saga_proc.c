/*
 * saga_proc.c -- test harness: runs the `saga` binary (see saga_proc.h).
 */
#include "saga_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_poll.h"

extern char **environ;

#define MAX_ARGS 63

pid_t saga_proc_spawn(const char *const *args, const saga_proc_io_t *io) {
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build, "SAGA_BUILD_DIR is not set (run the tests through ctest)");
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/bin/saga", build);
    const char *argv[MAX_ARGS + 1] = {bin};
    int n = 1;
    for (; args[n - 1] != NULL; n++)
        cr_assert_lt(n, MAX_ARGS, "more than %d arguments", MAX_ARGS - 1);
    memcpy(argv + 1, args, (size_t)n * sizeof(*argv)); /* the NULL too */
    int flags = O_WRONLY | O_CREAT | (io->append ? O_APPEND : O_TRUNC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, io->out, flags, 0600);
    if (io->err != NULL && strcmp(io->err, io->out) == 0)
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
    else
        posix_spawn_file_actions_addopen(&fa, 2, io->err, flags, 0600);
    /* posix_spawn_file_actions_addchdir_np is glibc 2.29+: change ours
     * around the spawn instead (tests are single-threaded). */
    char *cwd = NULL;
    if (io->cwd != NULL) {
        cwd = getcwd(NULL, 0);
        cr_assert_not_null(cwd);
        cr_assert_eq(chdir(io->cwd), 0, "chdir %s", io->cwd);
    }
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ);
    if (cwd != NULL) {
        cr_assert_eq(chdir(cwd), 0);
        free(cwd);
    }
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot start %s: %s", bin, strerror(rc));
    return pid;
}

int saga_proc_wait(pid_t pid) {
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid, "waitpid %d", (int)pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int saga_proc_run(const char *const *args, const saga_proc_io_t *io) {
    int status = saga_proc_wait(saga_proc_spawn(args, io));
    saga_proc_assert_clean(io->err != NULL ? io->err : io->out);
    return status;
}

void saga_proc_assert_clean(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL)
        cr_assert(strstr(line, "ERROR: AddressSanitizer") == NULL &&
                  strstr(line, "ERROR: LeakSanitizer") == NULL &&
                  strstr(line, "runtime error:") == NULL,
                  "sanitizer report in %s: %s", path, line);
    fclose(f);
}

char *saga_proc_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        char *s = strdup("");
        cr_assert_not_null(s);
        return s;
    }
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

int saga_proc_stop(pid_t *pid) {
    if (*pid <= 0)
        return 0;
    kill(*pid, SIGTERM);
    int st = saga_proc_wait(*pid);
    *pid = 0;
    return st;
}

void saga_proc_first_line(const char *path, const char *err_path, char *line, size_t n,
                          long timeout_ms) {
    test_poll_t p = test_poll_start(timeout_ms);
    for (;;) {
        char *text = saga_proc_slurp(path);
        char *nl = strchr(text, '\n');
        if (nl != NULL) {
            *nl = '\0';
            snprintf(line, n, "%s", text);
            free(text);
            return;
        }
        free(text);
        if (!test_poll_next(&p)) {
            char *err = saga_proc_slurp(err_path);
            cr_assert_fail("%s: no first line within %ld ms; stderr: %s", path, timeout_ms, err);
        }
    }
}

void saga_proc_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}
