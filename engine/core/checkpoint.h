/*
 * checkpoint.h -- how a step's phase is written in a saga's record: the one
 * value format that the engine writes and that tools (summaries, the
 * console) read back. The record's other fields: docs/redis-layout.md.
 */
#ifndef SAGA_CHECKPOINT_H
#define SAGA_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "saga/plugin.h" /* saga_phase_t */

/* Status of one phase (action or compensation) of one step. */
typedef enum saga_ckpt_status_e {
    SAGA_CKPT_PENDING = 0,   /* not started (compensation: not needed yet) */
    SAGA_CKPT_RUNNING = 1,   /* an attempt was recorded as started, no result yet */
    SAGA_CKPT_WAITING = 2,   /* an attempt failed; the next one is due at retry_at */
    SAGA_CKPT_SUCCEEDED = 3, /* action succeeded / compensation done */
    SAGA_CKPT_FAILED = 4,    /* failed for good */
    SAGA_CKPT_SKIPPED = 5    /* compensation: none (nothing to undo) */
} saga_ckpt_status_t;

/* One phase's checkpoint: "<status> <attempts> <base> <retry_at>". `base`
 * is the attempt count when the attempt budget last restarted (operator
 * retry): the budget is spent when attempts - base >= max_attempts. */
typedef struct saga_ckpt_phase_s {
    uint8_t status;
    uint32_t attempts;
    uint32_t base;
    int64_t retry_at; /* Unix ms, SAGA_CKPT_WAITING only */
} saga_ckpt_phase_t;

/* Writes "<status> <attempts> <base> <retry_at>" (at least 64 bytes);
 * returns its length. */
size_t saga_ckpt_phase_format(char *buf, size_t len, const saga_ckpt_phase_t *p);

int saga_ckpt_phase_parse(const char *s, size_t len, saga_ckpt_phase_t *p);
const char *saga_ckpt_status_name(saga_phase_t phase, uint8_t status);
#endif
