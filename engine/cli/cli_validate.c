/* cli_validate.c -- `saga validate FILE...` */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "saga/definition.h"

static void usage(FILE *out) {
    fputs("usage: saga validate [--quiet] FILE...\n"
          "\n"
          "Checks saga definitions and prints every problem found as\n"
          "FILE:LINE:COL: error: MESSAGE. Exits 0 when every file is valid,\n"
          "1 otherwise.\n"
          "\n"
          "  -q, --quiet   print nothing for valid files\n"
          "  -h, --help    show this help\n", out);
}

int saga_cli_validate(int argc, char **argv) {
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return SAGA_EXIT_OK;
        default: usage(stderr); return SAGA_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        saga_cli_error("validate: no FILE given");
        usage(stderr);
        return SAGA_EXIT_USAGE;
    }
    int rc = SAGA_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        saga_diags_t diags;
        saga_diags_init(&diags);
        saga_def_t *def = saga_def_load_file(argv[i], &diags);
        if (def == NULL) {
            saga_diags_print(&diags, stderr);
            rc = SAGA_EXIT_ERROR;
        } else if (!quiet) {
            /* What kind of transaction it is: TCC, or a saga's recovery
             * (and its pivot). */
            char kind[SAGA_NAME_MAX + 64];
            if (def->mode == SAGA_MODE_TCC)
                snprintf(kind, sizeof(kind), "tcc");
            else if (def->pivot != SIZE_MAX)
                snprintf(kind, sizeof(kind), "backward recovery, pivot %s",
                         def->steps[def->pivot].name);
            else
                snprintf(kind, sizeof(kind), "%s recovery",
                         def->recovery == SAGA_RECOVERY_BACKWARD ? "backward" : "forward");
            printf("%s: ok (saga %s, %zu steps, %s, hash %.12s)\n", argv[i], def->name,
                   def->n_steps, kind, def->hash);
        }
        saga_def_free(def);
        saga_diags_close(&diags);
    }
    return rc;
}
