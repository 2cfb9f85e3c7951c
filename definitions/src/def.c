/*
 * def.c -- loading a definition (file or buffer), freeing it, and the small
 * queries the engine makes of it.
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
#include "template.h"
#include "validate.h"
#include "yaml_tree.h"

/* ------------------------------------------------------------------------ */
/* Freeing and queries                                                       */
/* ------------------------------------------------------------------------ */

static void call_free(saga_call_def_t *c)
{
    free(c->handler);
    free(c->plugin);
    free(c->function);
    saga__template_free(c->with);
}

void saga_def_free(saga_def_t *def)
{
    if (def == NULL)
        return;
    for (size_t i = 0; i < def->n_steps; i++) {
        saga_step_def_t *s = &def->steps[i];
        free(s->name);
        call_free(&s->action);
        call_free(&s->compensation);
        free(s->after);
        free(s->dependents);
    }
    free(def->steps);
    for (size_t i = 0; i < def->n_required_inputs; i++)
        free(def->required_inputs[i]);
    free(def->required_inputs);
    free(def->topo_order);
    free(def->ancestors);
    free(def->name);
    free(def->description);
    free(def->source);
    free(def->text);
    free(def);
}

const saga_step_def_t *saga_def_find_step(const saga_def_t *def,
                                          const char *name)
{
    for (size_t i = 0; i < def->n_steps; i++)
        if (def->steps[i].name != NULL && strcmp(def->steps[i].name, name) == 0)
            return &def->steps[i];
    return NULL;
}

bool saga_def_is_ancestor(const saga_def_t *def, size_t anc, size_t step)
{
    if (def->ancestors == NULL || anc >= def->n_steps || step >= def->n_steps)
        return false;
    uint64_t word = def->ancestors[step * def->ancestor_words + anc / 64];
    return (word >> (anc % 64)) & 1;
}

int saga_def_check_input(const saga_def_t *def, const json_t *input,
                         char *err, size_t errlen)
{
    char scratch[1];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    if (!json_is_object(input)) {
        static const char *const names[] = {
            "an object", "an array", "a string", "an integer", "a number",
            "true", "false", "null"};
        snprintf(err, errlen, "input must be a JSON object, found %s",
                 input ? names[json_typeof(input)] : "nothing");
        return -EINVAL;
    }

    /* Name every missing key, in the order the definition lists them. */
    size_t missing = 0, o = 0;
    for (size_t i = 0; i < def->n_required_inputs; i++) {
        if (json_object_get(input, def->required_inputs[i]) != NULL)
            continue;
        missing++;
        int w = snprintf(err + o, errlen - o, "%s'%s'", missing > 1 ? ", " : "",
                         def->required_inputs[i]);
        if (w > 0)
            o = o + (size_t)w < errlen ? o + (size_t)w : errlen - 1;
    }
    if (missing == 0)
        return 0;

    /* Prefix the list now that its length is known. */
    char *list = strdup(err);
    snprintf(err, errlen, "input is missing required key%s %s",
             missing > 1 ? "s" : "", list ? list : "");
    free(list);
    return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

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
