/*
 * check.h -- type and key checks shared by the builders of the model
 * (validate.c, policy.c). Each check reports its own error, naming what was
 * expected and what was found, at the offending node's position, and tells
 * the caller whether the node can be used.
 *
 * `what` is how a message names the thing checked, quoted as the user wrote
 * it: "'timeout'", "'saga'", "each entry of 'after'".
 */
#ifndef SAGA_DEFS_CHECK_H
#define SAGA_DEFS_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "diags.h"
#include "yaml_tree.h"

/* True when `s` is an identifier: [A-Za-z_][A-Za-z0-9_-]*, at most
 * SAGA_NAME_MAX bytes. */
bool saga__is_identifier(const char *s, size_t len);

/* Reports every key of the mapping `map` that is not in the NULL-terminated
 * list `allowed`: "unknown key 'retyr' (did you mean 'retry'?)", or with the
 * list of allowed keys when no key is close. */
void saga__check_keys(saga__report_t *rep, const saga__node_t *map,
                      const char *const *allowed);

/* The same, except that the keys in the NULL-terminated list `skipped`
 * (reported elsewhere, with a message of their own) are not reported. */
void saga__check_keys_except(saga__report_t *rep, const saga__node_t *map,
                             const char *const *allowed,
                             const char *const *skipped);

/* Reports "missing required key 'KEY'" at the mapping's position. */
void saga__missing_key(saga__report_t *rep, const saga__node_t *map,
                       const char *key);

/* True when `node` is a mapping (resp. a sequence); else reports it. */
bool saga__expect_mapping(saga__report_t *rep, const saga__node_t *node,
                          const char *what);
bool saga__expect_sequence(saga__report_t *rep, const saga__node_t *node,
                           const char *what);

/* True when `node` is a scalar that resolved to a string; else reports it.
 * An empty string is refused too. */
bool saga__expect_string(saga__report_t *rep, const saga__node_t *node,
                         const char *what);

/* True when `node` is an identifier string (see saga__is_identifier). */
bool saga__expect_identifier(saga__report_t *rep, const saga__node_t *node,
                             const char *what);

/* When `node` is an integer within [min, max], stores it and returns true;
 * else reports it. */
bool saga__expect_int(saga__report_t *rep, const saga__node_t *node,
                      const char *what, int64_t min, int64_t max, int64_t *out);

/* When `node` is a string equal to one of the NULL-terminated `choices`,
 * returns its index; else reports it (with a suggestion for a near miss)
 * and returns -1. */
int saga__expect_enum(saga__report_t *rep, const saga__node_t *node,
                      const char *what, const char *const *choices);

#endif /* SAGA_DEFS_CHECK_H */
