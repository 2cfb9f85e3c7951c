/*
 * step_args.h -- checking the `with` value of a built-in step (http, exec).
 *
 * The built-in plugins are strict about their arguments: an unknown field,
 * a wrong type or a bad value is refused before anything is sent or run,
 * with a one-line message that names the field ("http.request: `timeout`:
 * expected a duration like \"2s\" or \"250ms\", or milliseconds"). A bad
 * `with` does not get better on retry, so the plugins report it as a
 * business failure.
 *
 * Also here: the text helpers both plugins need to turn untrusted bytes
 * (a response body, a child's stderr) into valid UTF-8 for JSON output and
 * one-line messages.
 *
 * Every function that fails writes its reason to `err` (errlen bytes, always
 * NUL-terminated) and returns -EINVAL; 0 on success. No function blocks.
 */
#ifndef SAGA_STEP_ARGS_H
#define SAGA_STEP_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The JSON type of `v` as a word for messages: "a string", "an integer"... */
const char *step_args_type_name(const json_t *v);

/* Refuses any key of the object `with` that is not in `allowed` (a NULL-
 * terminated list). The message names the first unknown key. */
int step_args_known_keys(const json_t *with, const char *const *allowed,
                         const char *handler, char *err, size_t errlen);

/* Reads a duration: a string "<n>ms", "<n>s", "<n>m" or "<n>h" (n a
 * non-negative integer), or an integer number of milliseconds. The result
 * must be > 0 and at most one day. */
int step_args_duration(const json_t *v, const char *handler, const char *field,
                       uint64_t *ms, char *err, size_t errlen);

/* Reads an integer in [min, max]. */
int step_args_uint(const json_t *v, const char *handler, const char *field,
                   uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t errlen);

/* Reads a list of integers each in [min, max] into `out` (at most `cap`
 * entries; a longer list is refused). */
int step_args_int_list(const json_t *v, const char *handler, const char *field,
                       int min, int max, int *out, size_t cap, size_t *n,
                       char *err, size_t errlen);

/* True when `x` is one of the n integers of `list`. */
bool step_args_in_list(const int *list, size_t n, int x);

/* Renders a scalar (string, integer, real, true, false) as text, for a
 * header or an environment value: strings as they are, numbers and booleans
 * as JSON writes them. Returns a malloc'ed string, or NULL with a reason
 * (wrong type, or out of memory). */
char *step_args_scalar_text(const json_t *v, const char *handler,
                            const char *field, const char *key, char *err,
                            size_t errlen);

/* Formats a duration the way authors write them: "250ms", "2s", "5m", "1h",
 * or "1500ms" when no larger unit divides it. */
void step_args_format_duration(uint64_t ms, char *buf, size_t buflen);

/* Returns a malloc'ed, NUL-terminated copy of `len` bytes of `s` that is
 * valid UTF-8: every invalid sequence becomes U+FFFD. With `one_line`,
 * line breaks become " | ", other control characters a space, and
 * trailing whitespace is dropped. NULL only when out of memory. */
char *step_text_utf8(const char *s, size_t len, bool one_line);

#endif
