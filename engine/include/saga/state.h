/*
 * state.h -- what every layer says about a saga: its id and its state.
 * Shared by the store (which records both), the engine and the tools.
 */
#ifndef SAGA_STATE_H
#define SAGA_STATE_H

#include <stdbool.h>
#include <stdint.h>

#define SAGA_ID_MAX 128 /* bytes of a saga id */

typedef enum saga_state_e {
    SAGA_STATE_RUNNING = 0,
    SAGA_STATE_COMPENSATING = 1,
    SAGA_STATE_COMPLETED = 2,
    SAGA_STATE_COMPENSATED = 3,
    SAGA_STATE_STUCK = 4,
    SAGA_STATE_CONFIRMING = 5 /* TCC: every Try succeeded, the decision to
                                 confirm is durable; only Confirms run */
} saga_state_t;

#define SAGA_STATE_COUNT 6

/* "running", "compensating", ... */
const char *saga_state_name(saga_state_t s);
/* Parses a state name; returns 0 or -EINVAL. */
int saga_state_parse(const char *name, saga_state_t *out);
/* True for completed and compensated (stuck waits for an operator). */
bool saga_state_terminal(saga_state_t s);

/* Writes a new saga id (a ULID: 26 characters, sortable by creation time)
 * into `out` (at least 27 bytes). Thread-safe; cannot fail. */
void saga_id_new(char *out);

/* True when `id` may name a saga: 1 to SAGA_ID_MAX letters, digits, '.',
 * '_', ':' or '-' (ids end up in Redis keys and idempotency keys). */
bool saga_id_valid(const char *id);

/* Writes the ULID of time `ms` (Unix ms) with the random bits r1, r2 into
 * `out` (at least 27 bytes): for callers that keep their own generator. */
void saga_id_make(int64_t ms, uint64_t r1, uint64_t r2, char *out);

#endif
