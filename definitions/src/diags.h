/*
 * diags.h -- internal side of the diagnostics list: the reporter every
 * loading stage writes its errors through.
 *
 * A reporter binds one load (one file name) to the caller's saga_diags_t and
 * counts the errors of that load, so a stage can ask "did anything fail?"
 * without looking at diagnostics that were in the list before. It caps the
 * number of errors of one load at SAGA__MAX_ERRORS, so that a hostile file
 * cannot make the list grow without bound.
 */
#ifndef SAGA_DEFS_DIAGS_H
#define SAGA_DEFS_DIAGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "saga/definition.h"

/* Errors kept for one load; one more line says that the rest was dropped. */
#define SAGA__MAX_ERRORS 1000u

typedef struct saga__report_s {
    saga_diags_t *diags;  /* where errors go; not owned */
    const char *file;     /* file name of every error; not owned */
    size_t errors;        /* errors of this load, dropped ones included */
} saga__report_t;

/* "Did you mean" hints are looked for only while a load has fewer errors
 * than this: a hostile file could otherwise make the search costly. */
#define SAGA__HINT_ERRORS 20u

/* True while hints are worth their cost (see SAGA__HINT_ERRORS). */
static inline bool saga__report_wants_hints(const saga__report_t *r)
{
    return r->errors < SAGA__HINT_ERRORS;
}

/* Binds a reporter to `diags` for the file `file` (both outlive it). */
void saga__report_init(saga__report_t *r, saga_diags_t *diags,
                       const char *file);

/* Records one error at `pos` (line 0 = no position). Never fails: when the
 * list cannot grow the error is still counted, so the load still fails. */
void saga__report(saga__report_t *r, saga_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same as saga__report(), for the "out of memory" case. */
void saga__report_oom(saga__report_t *r);

#endif /* SAGA_DEFS_DIAGS_H */
