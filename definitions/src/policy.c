/*
 * policy.c -- timeouts and retry policies.
 */
#include "policy.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "duration.h"
#include "message.h"

static const char *const RETRY_KEYS[] = {
    "max_attempts", "backoff", "initial_delay", "multiplier", "max_delay",
    "jitter", NULL};
static const char *const BACKOFFS[] = {"fixed", "exponential", NULL};
static const char *const JITTERS[] = {"none", "full", "equal", NULL};

void saga__retry_builtin(saga_retry_policy_t *p, bool compensation)
{
    p->max_attempts = compensation ? SAGA_DEFAULT_COMPENSATION_ATTEMPTS
                                   : SAGA_DEFAULT_ACTION_ATTEMPTS;
    p->backoff = SAGA_BACKOFF_EXPONENTIAL;
    p->initial_delay_ms = SAGA_DEFAULT_INITIAL_DELAY_MS;
    p->multiplier = SAGA_DEFAULT_MULTIPLIER;
    p->max_delay_ms = SAGA_DEFAULT_MAX_DELAY_MS;
    p->jitter = SAGA_JITTER_FULL;
}

static bool duration_parse(saga__report_t *rep, const saga__node_t *node,
                           const char *what, bool zero_ok, uint64_t *ms)
{
    char d[SAGA__QUOTE_SIZE];
    int rc = -EINVAL;
    if (node->invalid)
        return false;
    uint64_t v = 0;
    bool is_string = node->kind == SAGA__NODE_SCALAR && node->value != NULL &&
                     json_is_string(node->value);
    bool is_zero = node->kind == SAGA__NODE_SCALAR && node->value != NULL &&
                   json_is_integer(node->value) &&
                   json_integer_value(node->value) == 0;
    if (is_string)
        rc = saga__duration_parse(node->text, node->len, &v);
    else if (is_zero)
        rc = 0;

    if (rc == -ERANGE) {
        saga__report(rep, node->pos, "%s is longer than the 24h limit ('%s')",
                     what, saga__quote(d, node->text, node->len));
        return false;
    }
    if (rc != 0) {
        bool number = node->kind == SAGA__NODE_SCALAR && node->value != NULL &&
                      json_is_number(node->value);
        saga__report(rep, node->pos,
                     "%s must be a duration such as '250ms', '2s', '1m', '1h' "
                     "or '1m30s', found %s%s", what, saga__describe(d, node),
                     number ? " (add a unit)" : "");
        return false;
    }
    if (v == 0 && !zero_ok) {
        saga__report(rep, node->pos, "%s must be more than 0", what);
        return false;
    }
    *ms = v;
    return true;
}

bool saga__timeout_parse(saga__report_t *rep, const saga__node_t *node,
                         const char *what, uint64_t *ms)
{
    return duration_parse(rep, node, what, false, ms);
}

bool saga__delay_parse(saga__report_t *rep, const saga__node_t *node,
                       const char *what, uint64_t *ms)
{
    return duration_parse(rep, node, what, true, ms);
}

bool saga__retry_parse(saga__report_t *rep, const saga__node_t *node,
                       const char *what, saga__retry_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->pos = node->pos;
    size_t before = rep->errors;
    if (!saga__expect_mapping(rep, node, what))
        return false;
    spec->given = true;
    saga__check_keys(rep, node, RETRY_KEYS);

    const saga__node_t *v;
    int64_t i;
    int e;
    if ((v = saga__node_get(node, "max_attempts")) != NULL &&
        saga__expect_int(rep, v, "'max_attempts'", 1, SAGA__MAX_ATTEMPTS, &i)) {
        spec->has_max_attempts = true;
        spec->v.max_attempts = (uint32_t)i;
    }
    if ((v = saga__node_get(node, "backoff")) != NULL &&
        (e = saga__expect_enum(rep, v, "'backoff'", BACKOFFS)) >= 0) {
        spec->has_backoff = true;
        spec->v.backoff = (saga_backoff_t)e;
    }
    if ((v = saga__node_get(node, "initial_delay")) != NULL &&
        saga__delay_parse(rep, v, "'initial_delay'", &spec->v.initial_delay_ms)) {
        spec->has_initial_delay = true;
        spec->initial_delay_pos = v->pos;
    }
    if ((v = saga__node_get(node, "max_delay")) != NULL &&
        saga__delay_parse(rep, v, "'max_delay'", &spec->v.max_delay_ms)) {
        spec->has_max_delay = true;
        spec->max_delay_pos = v->pos;
    }
    if ((v = saga__node_get(node, "multiplier")) != NULL) {
        double m = NAN;
        if (v->kind == SAGA__NODE_SCALAR && v->value != NULL &&
            json_is_number(v->value))
            m = json_number_value(v->value);
        if (isfinite(m) && m >= 1.0 && m <= SAGA__MAX_MULTIPLIER) {
            spec->has_multiplier = true;
            spec->v.multiplier = m;
        } else if (!v->invalid) {
            char d[SAGA__QUOTE_SIZE];
            saga__report(rep, v->pos,
                         "'multiplier' must be a number from 1 to %g, found %s",
                         SAGA__MAX_MULTIPLIER, saga__describe(d, v));
        }
    }
    if ((v = saga__node_get(node, "jitter")) != NULL &&
        (e = saga__expect_enum(rep, v, "'jitter'", JITTERS)) >= 0) {
        spec->has_jitter = true;
        spec->v.jitter = (saga_jitter_t)e;
    }
    return rep->errors == before;
}

void saga__retry_merge(saga_retry_policy_t *p, const saga__retry_spec_t *spec)
{
    if (!spec->given)
        return;
    if (spec->has_max_attempts)
        p->max_attempts = spec->v.max_attempts;
    if (spec->has_backoff)
        p->backoff = spec->v.backoff;
    if (spec->has_initial_delay)
        p->initial_delay_ms = spec->v.initial_delay_ms;
    if (spec->has_multiplier)
        p->multiplier = spec->v.multiplier;
    if (spec->has_max_delay)
        p->max_delay_ms = spec->v.max_delay_ms;
    if (spec->has_jitter)
        p->jitter = spec->v.jitter;
}

bool saga__retry_check(saga__report_t *rep, const saga_retry_policy_t *p,
                       const saga__retry_spec_t *spec)
{
    if (p->max_delay_ms >= p->initial_delay_ms)
        return true;
    char a[32], b[32];
    saga_pos_t pos = spec->has_max_delay ? spec->max_delay_pos
                     : spec->has_initial_delay ? spec->initial_delay_pos
                     : spec->pos;
    saga__report(rep, pos,
                 "'max_delay' (%s) must not be less than 'initial_delay' (%s)",
                 saga__duration_format(p->max_delay_ms, a, sizeof(a)),
                 saga__duration_format(p->initial_delay_ms, b, sizeof(b)));
    return false;
}
