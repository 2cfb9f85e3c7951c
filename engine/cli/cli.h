/*
 * cli.h -- the `saga` command line: one function per command, shared
 * helpers for what several commands parse.
 *
 * Exit codes (every command): 0 success (for run/wait: completed),
 * 1 error, 2 usage; run/wait also 3 compensated, 4 stuck.
 */
#ifndef SAGA_CLI_H
#define SAGA_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#define SAGA_EXIT_OK 0
#define SAGA_EXIT_ERROR 1
#define SAGA_EXIT_USAGE 2
#define SAGA_EXIT_COMPENSATED 3
#define SAGA_EXIT_STUCK 4
#define SAGA_EXIT_INTERRUPTED 130

int saga_cli_validate(int argc, char **argv);
int saga_cli_run(int argc, char **argv);
int saga_cli_resume(int argc, char **argv);
int saga_cli_worker(int argc, char **argv);
int saga_cli_submit(int argc, char **argv);
int saga_cli_status(int argc, char **argv);
int saga_cli_wait(int argc, char **argv);
int saga_cli_list(int argc, char **argv);
int saga_cli_history(int argc, char **argv);
int saga_cli_cancel(int argc, char **argv);
int saga_cli_retry(int argc, char **argv);
int saga_cli_serve(int argc, char **argv);
int saga_cli_relay(int argc, char **argv);

/* Parses --input's value: inline JSON, "@path" (a file) or "@-" (stdin).
 * Returns a new reference, or NULL with the reason (and position) printed
 * on stderr. Blocking I/O: only before the loop runs. */
json_t *saga_cli_parse_input(const char *arg);

/* A growable list of strings for repeatable options (--plugins). */
typedef struct saga_strv_s {
    char **v;   /* NULL-terminated */
    size_t n;
} saga_strv_t;

int saga_strv_push(saga_strv_t *s, const char *str);
void saga_strv_free(saga_strv_t *s);

/* A long-running command's stop signals (SIGINT, SIGTERM) on `loop`, both
 * calling `cb` with `data` in the handle's data. */
void saga_cli_signals_start(uv_loop_t *loop, uv_signal_t *sigint, uv_signal_t *sigterm,
                            uv_signal_cb cb, void *data);

/* Closes both (no callback needed: they are the caller's). */
void saga_cli_signals_close(uv_signal_t *sigint, uv_signal_t *sigterm);

/* Reads a bearer token file (--token-file, --metrics-token-file). Returns
 * the tokens, or NULL with "FILE:LINE: error: ..." printed on stderr. */
struct saga_http_tokens_s *saga_cli_tokens_load(const char *path);

/* Prints "saga: error: ..." on stderr. */
void saga_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
