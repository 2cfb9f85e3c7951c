/*
 * canonical.h -- the canonical form of a parsed definition and its hash.
 *
 * The canonical form is compact JSON of the YAML tree: mapping keys sorted
 * bytewise, scalars as their resolved JSON values (a real always shows a
 * '.' or an exponent, so 1.0 and 1 differ), strings escaped the JSON way
 * with non-ASCII left as UTF-8. Spacing, comments, quoting of plain strings
 * and key order do not change it; any change of value does. The hash is the
 * SHA-256 of that text, as 64 lowercase hex digits.
 *
 * The form is written here rather than by jansson so that the hashes of
 * stored definitions cannot change with a jansson upgrade.
 */
#ifndef SAGA_DEFS_CANONICAL_H
#define SAGA_DEFS_CANONICAL_H

#include <stddef.h>

#include "yaml_tree.h"

/* Receives the canonical text piece by piece. */
typedef void (*saga__canonical_sink_t)(void *ud, const char *data, size_t len);

/* Writes the canonical form of `root` to `sink`. Returns 0, or -ENOMEM, in
 * which case the output is incomplete. */
int saga__canonical_write(const saga__node_t *root, saga__canonical_sink_t sink,
                          void *ud);

/* Hashes the canonical form of `root` into `hex` (65 bytes, NUL-ended).
 * Returns 0, or -ENOMEM. */
int saga__canonical_hash(const saga__node_t *root, char hex[65]);

/* The canonical form as a NUL-terminated string the caller frees, or NULL
 * when memory ran out. For tests and debugging. */
char *saga__canonical_text(const saga__node_t *root);

#endif /* SAGA_DEFS_CANONICAL_H */
