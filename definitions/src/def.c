/*
 * def.c -- loading a definition from a file or a buffer: the public entry
 * points that run the pipeline (size limits, YAML tree, validation,
 * canonical hash). The model is built and freed in validate.c and queried
 * through query.c; nothing below calls back into this file.
 */
#include "saga/definition.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "canonical.h"
#include "diags.h"
#include "validate.h"
#include "yaml_tree.h"

saga_def_t *saga_def_load_buffer(const char *source, const char *text,
                                 size_t len, saga_diags_t *diags)
{
    saga__report_t rep;
    if (source == NULL)
        source = "<definition>";
    if (text == NULL)
        len = 0;
    if (len == 0)
        text = ""; /* libyaml and memcpy want a real pointer */
    saga__report_init(&rep, diags, source);

    if (len > SAGA_DEF_MAX_BYTES) {
        saga__report(&rep, (saga_pos_t){0, 0},
                     "the definition is %zu bytes; the limit is %u (1 MiB)",
                     len, SAGA_DEF_MAX_BYTES);
        return NULL;
    }

    saga__node_t *root = saga__yaml_parse(text, len, &rep);
    if (root == NULL)
        return NULL;
    saga_def_t *def = saga__def_build(root, &rep);
    if (def != NULL) {
        def->source = strdup(source);
        def->text = malloc(len + 1);
        def->text_len = len;
        if (def->source == NULL || def->text == NULL ||
            saga__canonical_hash(root, def->hash) != 0) {
            saga__report_oom(&rep);
        } else {
            memcpy(def->text, text, len);
            def->text[len] = '\0';
        }
    }
    saga__node_free(root);
    if (rep.errors > 0) {
        saga_def_free(def);
        return NULL;
    }
    return def;
}

/* Reads at most SAGA_DEF_MAX_BYTES + 1 bytes of `fd`, so an oversized file
 * (or an endless pipe) is detected without reading it whole. */
static char *read_capped(int fd, size_t *len, int *err)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap > SAGA_DEF_MAX_BYTES)
                break;
            size_t ncap = cap * 2 > SAGA_DEF_MAX_BYTES + 1 ? SAGA_DEF_MAX_BYTES + 1
                                                            : cap * 2;
            char *p = realloc(buf, ncap);
            if (p == NULL) {
                free(buf);
                *err = ENOMEM;
                return NULL;
            }
            buf = p;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = errno;
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static void report_errno(saga__report_t *rep, const char *what, int e)
{
    char msg[256];
    if (strerror_r(e, msg, sizeof(msg)) != 0)
        snprintf(msg, sizeof(msg), "error %d", e);
    saga__report(rep, (saga_pos_t){0, 0}, "%s: %s", what, msg);
}

saga_def_t *saga_def_load_file(const char *path, saga_diags_t *diags)
{
    saga__report_t rep;
    saga__report_init(&rep, diags, path);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        report_errno(&rep, "cannot open", errno);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        report_errno(&rep, "cannot stat", errno);
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        report_errno(&rep, "cannot read", EISDIR);
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > SAGA_DEF_MAX_BYTES) {
        saga__report(&rep, (saga_pos_t){0, 0},
                     "the file is %jd bytes; the limit is %u (1 MiB)",
                     (intmax_t)st.st_size, SAGA_DEF_MAX_BYTES);
        close(fd);
        return NULL;
    }
    size_t len = 0;
    int err = 0;
    char *text = read_capped(fd, &len, &err);
    close(fd);
    if (text == NULL) {
        report_errno(&rep, "cannot read", err);
        return NULL;
    }
    if (len > SAGA_DEF_MAX_BYTES) {
        saga__report(&rep, (saga_pos_t){0, 0},
                     "the file is larger than the limit of %u bytes (1 MiB)",
                     SAGA_DEF_MAX_BYTES);
        free(text);
        return NULL;
    }
    saga_def_t *def = saga_def_load_buffer(path, text, len, diags);
    free(text);
    return def;
}
