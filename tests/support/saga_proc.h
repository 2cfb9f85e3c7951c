/*
 * saga_proc.h -- test harness: the `saga` binary of this build as a child
 * process ($SAGA_BUILD_DIR/bin/saga), its exit status and output files.
 *
 * Blocking helpers that fail the running Criterion test when something
 * cannot be done (spawn, a file that cannot be read): tests only.
 */
#ifndef SAGA_TEST_SAGA_PROC_H
#define SAGA_TEST_SAGA_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Where a child's output goes and where it runs. */
typedef struct saga_proc_io_s {
    const char *out;    /* stdout to this file */
    const char *err;    /* stderr to this file (may equal `out`) */
    bool append;        /* append to the files instead of truncating them */
    const char *cwd;    /* run in this directory; NULL: ours */
} saga_proc_io_t;

/* Starts `saga ARGS...` (`args`: NULL-terminated, without the program)
 * and returns its pid; the caller waits for it (saga_proc_wait) or kills
 * it. Fails the test when it cannot start. */
pid_t saga_proc_spawn(const char *const *args, const saga_proc_io_t *io);

/* Waits for `pid` to end; returns its exit code, or 128 + the signal that
 * killed it. */
int saga_proc_wait(pid_t pid);

/* Runs `saga ARGS...` to its end and returns its exit status as above;
 * fails the test when its stderr holds a sanitizer report. */
int saga_proc_run(const char *const *args, const saga_proc_io_t *io);

/* Fails the test when the file at `path` holds a sanitizer report (in the
 * ASan/UBSan build the children are sanitized too, and their reports go
 * to their files, which CTest never sees). A missing file is clean. */
void saga_proc_assert_clean(const char *path);

/* The whole content of the file at `path`, NUL-terminated (caller frees);
 * "" when it does not exist. */
char *saga_proc_slurp(const char *path);

/* Sends SIGTERM to *pid (when > 0), waits for it, sets *pid to 0 and
 * returns its exit status as saga_proc_wait(); 0 when there was none. */
int saga_proc_stop(pid_t *pid);

/* Waits (at most `timeout_ms`) for the first line of the file at `path`
 * (what `saga serve` and `saga worker --metrics` print first: the address
 * they listen on) and copies it, without its newline, into `line`. Fails
 * the test with the process's stderr (`err_path`) when none comes. */
void saga_proc_first_line(const char *path, const char *err_path, char *line, size_t n,
                          long timeout_ms);

/* Writes `text` to the file at `path` (a definition, a token file). */
void saga_proc_write_file(const char *path, const char *text);

#endif
