/*
 * stored_def.h -- a definition read back from the store by its hash and
 * parsed: what a resumed saga, a worker taking a start request, and the
 * operator commands (submit, status) need before they can act on a saga.
 *
 * One place for the fetch, the parse and the check that the text still
 * hashes to the hash it is stored under (a definition is stored by content
 * hash; a text that hashes otherwise with this build is refused rather than
 * run under a name it does not have).
 */
#ifndef SAGA_STORED_DEF_H
#define SAGA_STORED_DEF_H

#include "saga/definition.h"
#include "saga/store.h"

/* The outcome of saga_stored_def_load():
 *  - status 0: `def` is the parsed definition and the callback owns it
 *    (saga_def_free it, or hand it on, e.g. to saga_engine_register);
 *  - SAGA_ECORRUPT with diags->count > 0: the text does not load; the
 *    diagnostics say why (source "sagadef:HASH");
 *  - SAGA_ECORRUPT with no diagnostics: the text hashes to another hash
 *    with this build (`why` says which);
 *  - another code (SAGA_ENOTFOUND: nothing stored under the hash; a store
 *    failure): the text could not be read.
 * `def` is NULL unless status is 0. `why` is a one-line reason when status
 * is not 0 (valid during the callback). `diags` is valid during the
 * callback, which may append to it (saga_engine_register does); it is
 * closed afterwards. */
typedef void (*saga_stored_def_cb)(int status, const char *why, saga_def_t *def,
                                   saga_diags_t *diags, void *data);

/* Reads the definition stored under `hash` (64 hex digits) from `s` and
 * parses it. Returns 0 and runs `cb` exactly once, later; or -EINVAL (not
 * a hash), -ENOMEM, or the store's refusal, and then `cb` never runs. */
int saga_stored_def_load(saga_store_t *s, const char *hash, saga_stored_def_cb cb,
                         void *data);

#endif
