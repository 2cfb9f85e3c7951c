/*
 * scalar.h -- what a YAML scalar means as JSON.
 *
 * Quoted and block scalars are strings. Plain scalars resolve by the YAML 1.2
 * core schema: null, ~ and the empty scalar are null; true/True/TRUE and
 * false/False/FALSE are booleans; decimal, 0x and 0o numbers are integers
 * (they must fit in 64 bits); decimal fractions and exponents are reals
 * (infinities and NaN are refused: JSON cannot hold them); anything else is a
 * string.
 */
#ifndef SAGA_DEFS_SCALAR_H
#define SAGA_DEFS_SCALAR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Resolves the scalar `text` (`len` bytes of valid UTF-8, text[len] == NUL).
 * Returns a new reference, or NULL with a one-line reason in `err` (out of
 * range, not representable, invalid UTF-8, or out of memory). */
json_t *saga__scalar_resolve(const char *text, size_t len, bool plain,
                             char *err, size_t errlen);

#endif /* SAGA_DEFS_SCALAR_H */
