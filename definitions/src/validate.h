/*
 * validate.h -- from a parsed YAML tree to a validated saga_def_t, and back
 * to nothing: saga__def_build() and saga_def_free() (declared in
 * saga/definition.h) live together in validate.c, the constructor and its
 * destructor.
 */
#ifndef SAGA_DEFS_VALIDATE_H
#define SAGA_DEFS_VALIDATE_H

#include "diags.h"
#include "yaml_tree.h"

/* Builds the model from `root`: every key checked, the step graph analysed,
 * every `with` compiled, every policy resolved. Reports every problem found
 * (it does not stop at the first) and returns NULL when there was one, or
 * when rep already held errors of this load on entry (the tree was damaged).
 * On success returns a definition the caller owns (saga_def_free) whose
 * hash, source and text are not yet filled. */
saga_def_t *saga__def_build(const saga__node_t *root, saga__report_t *rep);

#endif /* SAGA_DEFS_VALIDATE_H */
