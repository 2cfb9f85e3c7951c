/*
 * expr.h -- one ${...} expression: its grammar and its evaluation.
 *
 *   ${input}                       the start input
 *   ${input.a.b}                   a path into it
 *   ${steps.NAME.output}           a step's output
 *   ${steps.NAME.output.items.0}   a path into it (a number segment indexes
 *                                  an array, or names a key of an object)
 *   ${saga.id}  ${saga.name}
 *
 * A path segment is one or more of [A-Za-z0-9_-]; spaces just inside the
 * braces are ignored. Whether a referenced step exists and may be referenced
 * is the template's business (template.h), not the grammar's.
 */
#ifndef SAGA_DEFS_EXPR_H
#define SAGA_DEFS_EXPR_H

#include <stddef.h>

#include <jansson.h>

#include "saga/definition.h"

typedef enum saga__expr_root_e {
    SAGA__ROOT_INPUT = 0,
    SAGA__ROOT_STEP = 1,
    SAGA__ROOT_SAGA_ID = 2,
    SAGA__ROOT_SAGA_NAME = 3
} saga__expr_root_t;

typedef struct saga__expr_s {
    saga__expr_root_t root;
    char *step;          /* SAGA__ROOT_STEP: the step's name */
    size_t step_index;   /* SAGA__ROOT_STEP: set by the template compiler */
    char *text;          /* "${...}" exactly as written, for messages */
    char **segs;         /* the path below the root (below `output`) */
    size_t n_segs;
} saga__expr_t;

/* Parses the expression written as `text` (`len` bytes, "${" through "}").
 * Returns a new expression owned by the caller (saga__expr_free), or NULL
 * with a one-line reason in `err` (malformed, unknown root, or no memory). */
saga__expr_t *saga__expr_parse(const char *text, size_t len, char *err,
                               size_t errlen);

/* Frees an expression. Accepts NULL. */
void saga__expr_free(saga__expr_t *e);

/* Evaluates `e` against `ctx`. Returns a new reference (a deep copy: the
 * caller may change it freely), or NULL with a one-line reason in `err`
 * naming the expression and the missing key or index. */
json_t *saga__expr_eval(const saga__expr_t *e, const saga_render_ctx_t *ctx,
                        char *err, size_t errlen);

#endif /* SAGA_DEFS_EXPR_H */
