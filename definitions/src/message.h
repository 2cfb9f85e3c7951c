/*
 * message.h -- pieces of user-facing error messages: user text quoted safely
 * on one line, "did you mean" suggestions, and what a YAML node was found to
 * be ("an integer (42)", "a sequence").
 */
#ifndef SAGA_DEFS_MESSAGE_H
#define SAGA_DEFS_MESSAGE_H

#include <stddef.h>

#include "yaml_tree.h"

/* A buffer of this size always holds what saga__quote() and
 * saga__describe() write. */
#define SAGA__QUOTE_SIZE 128u

/* Writes `len` bytes of user text into `buf` (SAGA__QUOTE_SIZE bytes) so it
 * fits in a one-line message: control characters are escaped (\n, \t,
 * \xNN) and text beyond 60 bytes is cut (on a UTF-8 boundary) and marked
 * with "...". Returns `buf`. Cannot fail. */
const char *saga__quote(char *buf, const char *text, size_t len);

/* Describes what `node` is, for "expected X, found Y" messages: "null",
 * "a boolean (true)", "an integer (42)", "a number (1.5)", "a string
 * ('abc')", "a sequence", "a mapping". Returns `buf` (SAGA__QUOTE_SIZE
 * bytes). Cannot fail. */
const char *saga__describe(char *buf, const saga__node_t *node);

/* The edit distance (insertions, deletions, substitutions and transpositions
 * of adjacent characters) between two byte strings when it is at most `max`,
 * else max + 1 (found in O(len * max) time); SIZE_MAX when either string is
 * longer than 64 bytes. */
size_t saga__edit_distance(const char *a, size_t alen, const char *b,
                           size_t blen, size_t max);

/* The entry of the NULL-terminated list `choices` closest to `word` when it
 * is a plausible typo of it (distance 1 for words of up to 3 bytes, 2 up to
 * 6, 3 beyond), else NULL. Ties go to the earlier entry. */
const char *saga__suggest(const char *word, size_t len,
                          const char *const *choices);

#endif /* SAGA_DEFS_MESSAGE_H */
