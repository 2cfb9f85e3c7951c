/*
 * summary.h -- a saga's state as users see it, as JSON: built from its
 * stored record, its definition and its history. What `saga status` and
 * the HTTP API show; the text form is the CLI's (cli/summary.h).
 */
#ifndef SAGA_CORE_SUMMARY_H
#define SAGA_CORE_SUMMARY_H

#include <stdint.h>

#include <jansson.h>

#include "saga/definition.h"
#include "saga/store.h"

/* Builds the summary object:
 *   {id, saga, definition, state, reason, stuck_in, created, owner, input,
 *    steps: [{name, status, attempts, output, error, after,
 *             action: {status, attempts, error, retry_at, input},
 *             compensation: {status, attempts, error, retry_at, input} | null}],
 *    history: [{ts, seq, type, step, phase, attempt, detail, worker}]}
 * `input` is the start input. With `def`, each step names the steps it
 * runs `after` (the graph) and each phase that started its `input`: its
 * `with` rendered from the start input and the outputs the record holds,
 * as the engine renders it (null when it cannot be). `def` may be NULL
 * (steps are then listed from the record as found, at most
 * SAGA_DEF_MAX_STEPS, without `after` and `input`); `hist` may be NULL (no
 * "history" key). A phase
 * field that cannot be read shows as status "malformed", with an error
 * that names the field. Returns a new reference or NULL when out of
 * memory. */
json_t *saga_summary_build(const saga_record_t *rec, const saga_def_t *def,
                           const saga_history_entry_t *hist, size_t nhist);

/* Writes Unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into buf (40 bytes). */
void saga_iso_time(int64_t ms, char *buf, size_t len);

/* The record field `key` (Unix ms, e.g. "created", "updated") as
 * saga_iso_time() writes it. Returns 0, or -EINVAL when the field is absent or
 * not a canonical decimal number (buf is then unchanged). */
int saga_summary_time_field(const saga_record_t *rec, const char *key, char *buf,
                            size_t len);

/* One history entry as JSON (used by `saga history`). */
json_t *saga_summary_history_entry(const saga_history_entry_t *h);

/* The status document of `saga status --json` and GET /v1/sagas/{id}: the
 * summary without history, plus "current" (the steps with an attempt
 * running or waiting, or compensating) and "updated". `def` may be NULL.
 * Returns a new reference or NULL when out of memory. */
json_t *saga_summary_status(const saga_record_t *rec, const saga_def_t *def);

#endif
