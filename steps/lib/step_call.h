/*
 * step_call.h -- the start and the end of a built-in handler's call: reading
 * its `with` value, and completing it with a text.
 *
 * Every built-in handler begins the same way (parse the rendered `with`,
 * check that it is a mapping of known fields, refuse it with a clear
 * message otherwise) and ends the same way (hand a NUL-terminated text to
 * host->complete(), or say "out of memory" when that text could not be
 * built). These two functions are that beginning and that end, written
 * once. They see the ABI header only: no engine symbol.
 */
#ifndef SAGA_STEP_CALL_H
#define SAGA_STEP_CALL_H

#include <stddef.h>

#include <jansson.h>

#include "saga/plugin.h"

/* Parses a call's `with` (`len` bytes of JSON text at `input`, as in
 * saga_call_info_t) and checks it: valid JSON, a mapping, and, when `known`
 * is not NULL (a NULL-terminated list of field names), no other field.
 * Returns the mapping (a new reference: the caller json_decref()s it), or
 * NULL with a one-line reason in `err` (errlen bytes, always NUL-
 * terminated) that starts with `handler`:
 *   "<handler>: `with` is not valid JSON (line L, column C: <why>)"
 *   "<handler>: `with` must be a mapping, got a list"
 *   "<handler>: unknown field `x` (known fields: a, b)"
 * A bad `with` will not get better on retry: complete the call as a
 * business failure with that reason. Allocation failure reads as invalid
 * JSON (jansson does not tell the two apart). */
json_t *step_call_with(const char *input, size_t len, const char *handler,
                       const char *const *known, char *err, size_t errlen);

/* Completes `call` through host->complete() with `outcome` and the NUL-
 * terminated `text`: output JSON for OK, passed as it is; a message for a
 * failure, passed as one line of valid UTF-8 (line breaks shown as " | ",
 * other control characters as spaces, invalid bytes as U+FFFD, as
 * step_text_utf8() does), so that a message quoting the author's or a
 * service's text keeps the ABI's one-line promise. `text` NULL means the
 * message could not be built: the call is then completed as a TECHNICAL
 * failure "<who>: out of memory" (a retry may succeed), as it is when
 * memory runs out for the one-line copy. `text` stays the caller's. */
void step_call_complete(const saga_host_t *host, saga_call_t *call,
                        saga_outcome_t outcome, const char *text,
                        const char *who);

#endif
