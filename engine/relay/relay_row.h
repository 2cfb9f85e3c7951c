/*
 * relay_row.h -- the checks of one outbox row that need no store: what
 * the relay can refuse from the row alone (docs/outbox.md, "Refused rows").
 *
 * A pure function, so that it is unit-tested without servers and fuzzed
 * (tests/fuzz/fuzz_relay_row.c): the rows come from a database the relay
 * does not control.
 */
#ifndef SAGA_RELAY_ROW_H
#define SAGA_RELAY_ROW_H

#include <stddef.h>

#include <jansson.h>

/* Checks a row: `id` must be a saga id, `saga` a non-empty name of at
 * most SAGA_NAME_MAX bytes, `input` (NUL-terminated JSON text, or NULL
 * when the row's input was over SAGA_RELAY_INPUT_MAX bytes: `input_size`
 * then says how many) a JSON object that jansson reads. Returns 0 and a
 * new reference to the input object in *json; or -EINVAL with the reason,
 * one line meant for the row's `error` column (the row's values quoted,
 * control characters escaped, cut to `errlen`), and *json NULL; or -ENOMEM. */
int saga_relay_row_check(const char *id, const char *saga, const char *input,
                         const char *input_size, json_t **json, char *err, size_t errlen);

/* Copies at most `n` - 1 bytes of `s` into `out` for a message: control
 * characters, quotes and backslashes as \xNN, "..." when cut. */
void saga_relay_quote(char *out, size_t n, const char *s);

#endif
