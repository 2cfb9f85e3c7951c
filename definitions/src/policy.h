/*
 * policy.h -- timeouts and retry policies: parsing the blocks a definition
 * writes, and resolving them level by level into saga_retry_policy_t.
 *
 * Resolution (documented in docs/definition-format.md):
 *   timeout:            step.timeout > defaults.timeout > built-in
 *   action retry:       step.retry > defaults.retry > built-in action policy
 *   compensation retry: step.compensation_retry > defaults.compensation_retry
 *                       > defaults.retry > built-in compensation policy
 * A block that gives only some fields is merged field by field over the
 * policy resolved from the levels below it.
 */
#ifndef SAGA_DEFS_POLICY_H
#define SAGA_DEFS_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "diags.h"
#include "yaml_tree.h"

/* Bounds on retry values, beyond which a policy is certainly a mistake. */
#define SAGA__MAX_ATTEMPTS   1000000
#define SAGA__MAX_MULTIPLIER 1000.0

/* A retry block as written: which fields it sets, and their values. */
typedef struct saga__retry_spec_s {
    bool given;                  /* the block exists */
    saga_pos_t pos;              /* the block's position */
    bool has_max_attempts, has_backoff, has_initial_delay;
    bool has_multiplier, has_max_delay, has_jitter;
    saga_pos_t initial_delay_pos, max_delay_pos;
    saga_retry_policy_t v;       /* the fields set; others undefined */
} saga__retry_spec_t;

/* The built-in policy for actions or for compensations. Cannot fail. */
void saga__retry_builtin(saga_retry_policy_t *p, bool compensation);

/* Parses the retry block `node` (named `what` in messages) into `spec` (zeroed first). Reports every
 * problem (unknown keys, wrong types, out-of-range values) and returns
 * false when there was one; the fields that were valid are still set. */
bool saga__retry_parse(saga__report_t *rep, const saga__node_t *node,
                       const char *what, saga__retry_spec_t *spec);

/* Overlays the fields `spec` sets onto `p`. Nothing when !spec->given. */
void saga__retry_merge(saga_retry_policy_t *p, const saga__retry_spec_t *spec);

/* Checks the relations between the fields of a resolved policy whose last
 * level is `spec` (max_delay >= initial_delay), reporting at the field of
 * `spec` that caused the conflict. Returns false when it reported. */
bool saga__retry_check(saga__report_t *rep, const saga_retry_policy_t *p,
                       const saga__retry_spec_t *spec);

/* Parses a duration-valued key. A timeout must be more than 0; a delay may
 * be 0. Both are at most SAGA__DURATION_MAX_MS. Reports and returns false
 * when the node is not such a duration. */
bool saga__timeout_parse(saga__report_t *rep, const saga__node_t *node,
                         const char *what, uint64_t *ms);
bool saga__delay_parse(saga__report_t *rep, const saga__node_t *node,
                       const char *what, uint64_t *ms);

#endif /* SAGA_DEFS_POLICY_H */
