/* cli_common.c -- helpers shared by the commands (see cli.h). */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "http/http_auth.h"

#define INPUT_MAX_BYTES (16u * 1024u * 1024u)

void saga_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("saga: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

json_t *saga_cli_parse_input(const char *arg) {
    json_error_t jerr;
    json_t *v;
    const char *where = "--input";
    if (arg[0] == '@') {
        const char *path = arg + 1;
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
        if (f == NULL) {
            saga_cli_error("--input: cannot open %s: %s", path, strerror(errno));
            return NULL;
        }
        v = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
        if (f != stdin)
            fclose(f);
        where = path;
    } else {
        if (strlen(arg) > INPUT_MAX_BYTES) {
            saga_cli_error("--input: larger than %u bytes", INPUT_MAX_BYTES);
            return NULL;
        }
        v = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (v == NULL) {
        saga_cli_error("%s:%d:%d: invalid JSON input: %s", where, jerr.line,
                       jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        saga_cli_error("%s: the input must be a JSON object", where);
        json_decref(v);
        return NULL;
    }
    return v;
}

int saga_strv_push(saga_strv_t *s, const char *str) {
    char **nv = realloc(s->v, (s->n + 2) * sizeof(*nv));
    if (nv == NULL)
        return -ENOMEM;
    s->v = nv;
    if ((s->v[s->n] = strdup(str)) == NULL)
        return -ENOMEM;
    s->v[++s->n] = NULL;
    return 0;
}

void saga_strv_free(saga_strv_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void saga_cli_signals_start(uv_loop_t *loop, uv_signal_t *sigint, uv_signal_t *sigterm,
                            uv_signal_cb cb, void *data) {
    uv_signal_init(loop, sigint);
    uv_signal_init(loop, sigterm);
    sigint->data = sigterm->data = data;
    uv_signal_start(sigint, cb, SIGINT);
    uv_signal_start(sigterm, cb, SIGTERM);
}

void saga_cli_signals_close(uv_signal_t *sigint, uv_signal_t *sigterm) {
    uv_close((uv_handle_t *)sigint, NULL);
    uv_close((uv_handle_t *)sigterm, NULL);
}

struct saga_http_tokens_s *saga_cli_tokens_load(const char *path) {
    char err[512];
    saga_http_tokens_t *t = saga_http_tokens_load(path, err, sizeof(err));
    if (t == NULL)
        fprintf(stderr, "%s\n", err);
    return t;
}
