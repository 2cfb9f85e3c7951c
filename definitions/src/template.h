/*
 * template.h -- compiling a `with` value into a saga_template_t (the public
 * render functions are declared in saga/definition.h).
 *
 * Every string in the value may hold ${...} expressions (expr.h); `$${`
 * writes a literal `${`. Mapping keys are taken literally. A string that is
 * exactly one expression becomes that expression's value; any other string
 * with expressions is rendered as text. Parts without expressions are
 * folded into constants at compile time; a template without any expression
 * keeps its compact JSON text, so the engine's hot path does no work.
 */
#ifndef SAGA_DEFS_TEMPLATE_H
#define SAGA_DEFS_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "diags.h"
#include "yaml_tree.h"

/* What the expressions of one call may reference. */
typedef struct saga__tpl_scope_s {
    const saga_def_t *def;          /* its steps (names) and, when
                                       check_order, its ancestor bitsets */
    const char *const *names;       /* the step names, NULL-terminated,
                                       for "did you mean" */
    size_t self;                    /* the step the call belongs to */
    bool compensation;              /* the call is a compensation */
    bool check_order;               /* the graph is valid: check that each
                                       referenced step is an ancestor */
    bool any_step;                  /* a TCC Confirm: every step's Try has
                                       succeeded, any output may be used */
} saga__tpl_scope_t;

/* Compiles the `with` node (NULL when absent: the template is JSON null).
 * Returns the template (the caller owns it: saga__template_free), or NULL
 * when an expression is malformed or references a step it may not, in which
 * case every such problem has been reported at its string's position. */
saga_template_t *saga__template_compile(const saga__node_t *with,
                                        const saga__tpl_scope_t *scope,
                                        saga__report_t *rep);

/* Frees a template. Accepts NULL. */
void saga__template_free(saga_template_t *t);

#endif /* SAGA_DEFS_TEMPLATE_H */
