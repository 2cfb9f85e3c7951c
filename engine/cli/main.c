/*
 * main.c -- `saga COMMAND ...`: dispatches to the commands in cli_*.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command_s {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"validate", saga_cli_validate, "check saga definitions"},
    {"run", saga_cli_run, "run one saga to its end, in this process"},
    {"resume", saga_cli_resume, "continue unfinished sagas where they stood"},
    {"worker", saga_cli_worker, "serve definitions: run submitted sagas, take over dead workers'"},
    {"submit", saga_cli_submit, "enqueue a saga for the workers"},
    {"status", saga_cli_status, "show a saga's state, steps and owner"},
    {"wait", saga_cli_wait, "wait until a saga is finished or stuck"},
    {"list", saga_cli_list, "list sagas, newest first"},
    {"history", saga_cli_history, "show a saga's transitions"},
    {"cancel", saga_cli_cancel, "compensate a running saga"},
    {"retry", saga_cli_retry, "try a stuck saga's failed step again"},
    {"serve", saga_cli_serve, "the HTTP API, metrics and health checks"},
    {"relay", saga_cli_relay, "deliver a PostgreSQL outbox into running sagas"},
};

static void usage(FILE *out) {
    fputs("usage: saga COMMAND [OPTIONS] [ARGS]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n`saga COMMAND --help` describes a command.\n", out);
}

int main(int argc, char **argv) {
    /* hiredis writes with write(2): a server that just died must show up as
     * an error on the connection, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return SAGA_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return SAGA_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("saga %s\n", SAGA_VERSION);
        return SAGA_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    saga_cli_error("unknown command '%s'", argv[1]);
    usage(stderr);
    return SAGA_EXIT_USAGE;
}
