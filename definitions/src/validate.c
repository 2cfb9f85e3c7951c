/*
 * validate.c -- building the saga model from the YAML tree.
 *
 * Every stage reports what it finds and goes on, so that one run lists every
 * problem of the file: the top level, then each step, then the step graph
 * (only once every `after` names a real step), then the `with` templates
 * (whose ordering checks need the graph), then the retry policies. The
 * definition is returned only if nothing was reported.
 *
 * saga_def_free() is here too, beside the builder whose output it frees
 * (and which uses it to drop a half-built model).
 */
#include "validate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "duration.h"
#include "graph.h"
#include "message.h"
#include "policy.h"
#include "template.h"

static const char *const TOP_KEYS[] = {
    "saga", "version", "description", "mode", "recovery", "retention",
    "defaults", "input", "steps", NULL};
/* `defaults` and a step take the keys of their mode; the keys of the
 * other mode are refused with a message of their own (wrong_mode_keys). */
static const char *const DEFAULTS_KEYS[] = {
    "timeout", "retry", "compensation_retry", NULL};
static const char *const TCC_DEFAULTS_KEYS[] = {
    "timeout", "retry", "confirm_retry", "cancel_retry", NULL};
static const char *const INPUT_KEYS[] = {"required", NULL};
static const char *const STEP_KEYS[] = {
    "name", "action", "compensation", "pivot", "after", "timeout", "retry",
    "compensation_retry", NULL};
static const char *const TCC_STEP_KEYS[] = {
    "name", "try", "confirm", "cancel", "after", "timeout", "retry",
    "confirm_retry", "cancel_retry", NULL};
/* The keys of one mode that the other refuses (wrong_mode_keys). */
static const char *const SAGA_ONLY_KEYS[] = {
    "action", "compensation", "compensation_retry", "pivot", NULL};
static const char *const TCC_ONLY_KEYS[] = {
    "try", "confirm", "cancel", "confirm_retry", "cancel_retry", NULL};
/* The same among the keys of `defaults`: policies only. */
static const char *const SAGA_ONLY_DEFAULTS[] = {"compensation_retry", NULL};
static const char *const TCC_ONLY_DEFAULTS[] = {"confirm_retry", "cancel_retry", NULL};
static const char *const CALL_KEYS[] = {"handler", "with", NULL};
static const char *const RECOVERIES[] = {"backward", "forward", NULL};
static const char *const MODES[] = {"saga", "tcc", NULL};
static const char *const RETENTION_KEYS[] = {"completed", "compensated", NULL};

/* The keys of one mode that the other refuses, each with what to write
 * instead. */
typedef struct mode_key_s {
    const char *key;
    const char *hint;
} mode_key_t;

static const mode_key_t SAGA_ONLY[] = {
    {"action", "a TCC step has 'try', 'confirm' and 'cancel'; write 'try'"},
    {"compensation", "a TCC step is undone by its 'cancel'; write 'cancel'"},
    {"compensation_retry", "write 'cancel_retry'"},
    {"pivot", "a TCC saga's go/no-go point is the end of its Try phase"},
    {NULL, NULL}};
static const mode_key_t TCC_ONLY[] = {
    {"try", "'try' is a phase of TCC sagas: add `mode: tcc` at the top, or "
            "write 'action'"},
    {"confirm", "'confirm' is a phase of TCC sagas: add `mode: tcc` at the top"},
    {"cancel", "'cancel' is a phase of TCC sagas: add `mode: tcc` at the top, "
               "or write 'compensation'"},
    {"confirm_retry", "it is the policy of a TCC saga's Confirms: add `mode: "
                      "tcc` at the top"},
    {"cancel_retry", "it is the policy of a TCC saga's Cancels: add `mode: "
                     "tcc` at the top, or write 'compensation_retry'"},
    {NULL, NULL}};

/* What the later stages need to remember about one step's YAML. */
typedef struct step_src_s {
    const saga__node_t *node;
    bool action_ok;                   /* action parsed: compile its `with` */
    const saga__node_t *action_with;
    bool compensation_ok;
    const saga__node_t *compensation_with;
    bool compensation_given;          /* a mapping or `none` was written */
    saga_pos_t *after_pos;            /* parallel to step->after */
    bool has_timeout;
    uint64_t timeout_ms;
    saga__retry_spec_t retry, compensation_retry, confirm_retry;
    bool retry_ok, compensation_retry_ok, confirm_retry_ok;
    bool confirm_ok;                  /* TCC: the confirm parsed */
    const saga__node_t *confirm_with;
    const saga__node_t *pivot_node;   /* `pivot: true`, for positions */
} step_src_t;

typedef struct builder_s {
    saga__report_t *rep;
    saga_def_t *def;
    step_src_t *src;                  /* one per step */
    bool has_default_timeout;
    uint64_t default_timeout_ms;
    saga__retry_spec_t default_retry, default_compensation_retry,
        default_confirm_retry;
    bool default_retry_ok, default_compensation_retry_ok,
        default_confirm_retry_ok;
    const char **names;               /* step names, NULL-terminated */
} builder_t;

/* The position of `key` in mapping `map` (the key itself, where a reader
 * looks for it), or the mapping's when absent. */
static saga_pos_t key_pos(const saga__node_t *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++) {
        const saga__node_t *k = saga__node_key(map, i);
        if (strlen(key) == k->len && memcmp(key, k->text, k->len) == 0)
            return k->pos;
    }
    return map->pos;
}

static char *dup_text(const saga__node_t *n)
{
    char *p = malloc(n->len + 1);
    if (p != NULL) {
        memcpy(p, n->text, n->len);
        p[n->len] = '\0';
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* Top level                                                                 */
/* ------------------------------------------------------------------------ */

static void wrong_mode_keys(builder_t *b, const saga__node_t *map,
                            const char *const *keys);

static void build_defaults(builder_t *b, const saga__node_t *node)
{
    if (!saga__expect_mapping(b->rep, node, "'defaults'"))
        return;
    bool tcc = b->def->mode == SAGA_MODE_TCC;
    saga__check_keys_except(b->rep, node, tcc ? TCC_DEFAULTS_KEYS : DEFAULTS_KEYS,
                            tcc ? SAGA_ONLY_DEFAULTS : TCC_ONLY_DEFAULTS);
    wrong_mode_keys(b, node, tcc ? SAGA_ONLY_DEFAULTS : TCC_ONLY_DEFAULTS);
    const saga__node_t *v;
    if ((v = saga__node_get(node, "timeout")) != NULL)
        b->has_default_timeout =
            saga__timeout_parse(b->rep, v, "'timeout'", &b->default_timeout_ms);
    if ((v = saga__node_get(node, "retry")) != NULL)
        b->default_retry_ok =
            saga__retry_parse(b->rep, v, "'retry'", &b->default_retry);
    const char *undo = tcc ? "cancel_retry" : "compensation_retry";
    if ((v = saga__node_get(node, undo)) != NULL)
        b->default_compensation_retry_ok = saga__retry_parse(
            b->rep, v, tcc ? "'cancel_retry'" : "'compensation_retry'",
            &b->default_compensation_retry);
    if (tcc && (v = saga__node_get(node, "confirm_retry")) != NULL)
        b->default_confirm_retry_ok = saga__retry_parse(
            b->rep, v, "'confirm_retry'", &b->default_confirm_retry);
}

/* Reports each key of `map` that belongs to the other mode and is among
 * `keys` (the ones such a mapping would take there), with a hint. */
static void wrong_mode_keys(builder_t *b, const saga__node_t *map,
                            const char *const *keys)
{
    bool tcc = b->def->mode == SAGA_MODE_TCC;
    const mode_key_t *refused = tcc ? SAGA_ONLY : TCC_ONLY;
    for (size_t i = 0; i < map->n; i++) {
        const saga__node_t *k = saga__node_key(map, i);
        bool relevant = false;
        for (const char *const *a = keys; *a != NULL && !relevant; a++)
            relevant = strlen(*a) == k->len && memcmp(*a, k->text, k->len) == 0;
        for (const mode_key_t *r = refused; relevant && r->key != NULL; r++) {
            if (strlen(r->key) != k->len || memcmp(r->key, k->text, k->len) != 0)
                continue;
            if (tcc)
                saga__report(b->rep, k->pos,
                             "'%s' is not allowed in a TCC saga (mode: tcc): %s",
                             r->key, r->hint);
            else
                saga__report(b->rep, k->pos, "'%s' is not allowed in a saga: %s",
                             r->key, r->hint);
        }
    }
}

/* `retention: {completed: 1d, compensated: 30d}`: how long a finished saga
 * is kept, by outcome. */
static void build_retention(builder_t *b, const saga__node_t *node)
{
    if (!saga__expect_mapping(b->rep, node, "'retention'"))
        return;
    saga__check_keys(b->rep, node, RETENTION_KEYS);
    for (int k = 0; RETENTION_KEYS[k] != NULL; k++) {
        const saga__node_t *v = saga__node_get(node, RETENTION_KEYS[k]);
        if (v == NULL || v->invalid)
            continue;
        uint64_t ms = 0;
        int rc = -EINVAL;
        char d[SAGA__QUOTE_SIZE];
        if (v->kind == SAGA__NODE_SCALAR && v->value != NULL &&
            json_is_string(v->value))
            rc = saga__retention_parse(v->text, v->len, &ms);
        else if (v->kind == SAGA__NODE_SCALAR && v->value != NULL &&
                 json_is_integer(v->value) && json_integer_value(v->value) == 0)
            rc = 0; /* `0` needs no unit (and is refused below) */
        if (rc == -ERANGE) {
            saga__report(b->rep, v->pos,
                         "'retention' of %s sagas is longer than the 3650d "
                         "limit ('%s')", RETENTION_KEYS[k],
                         saga__quote(d, v->text, v->len));
        } else if (rc != 0) {
            bool number = v->kind == SAGA__NODE_SCALAR && v->value != NULL &&
                          json_is_number(v->value);
            saga__report(b->rep, v->pos,
                         "'retention' of %s sagas must be a duration such as "
                         "'30d', '12h' or '1d12h', found %s%s",
                         RETENTION_KEYS[k], saga__describe(d, v),
                         number ? " (add a unit)" : "");
        } else if (ms == 0) {
            saga__report(b->rep, v->pos,
                         "'retention' of %s sagas must be more than 0 (leave "
                         "it out for the store's default)", RETENTION_KEYS[k]);
        } else if (k == 0) {
            b->def->retention_completed_ms = ms;
        } else {
            b->def->retention_compensated_ms = ms;
        }
    }
}

static void build_input(builder_t *b, const saga__node_t *node)
{
    saga_def_t *def = b->def;
    if (!saga__expect_mapping(b->rep, node, "'input'"))
        return;
    saga__check_keys(b->rep, node, INPUT_KEYS);
    const saga__node_t *req = saga__node_get(node, "required");
    if (req == NULL || !saga__expect_sequence(b->rep, req, "'required'"))
        return;
    if (req->n == 0)
        return;
    def->required_inputs = calloc(req->n, sizeof(char *));
    if (def->required_inputs == NULL) {
        saga__report_oom(b->rep);
        return;
    }
    for (size_t i = 0; i < req->n; i++) {
        const saga__node_t *k = req->items[i];
        if (!saga__expect_string(b->rep, k, "each entry of 'required'"))
            continue;
        bool repeated = false;
        for (size_t j = 0; j < def->n_required_inputs && !repeated; j++)
            repeated = strcmp(def->required_inputs[j], k->text) == 0;
        if (repeated) {
            char q[SAGA__QUOTE_SIZE];
            saga__report(b->rep, k->pos, "'%s' is listed twice in 'required'",
                         saga__quote(q, k->text, k->len));
            continue;
        }
        char *s = dup_text(k);
        if (s == NULL) {
            saga__report_oom(b->rep);
            return;
        }
        def->required_inputs[def->n_required_inputs++] = s;
    }
}

/* ------------------------------------------------------------------------ */
/* Steps                                                                     */
/* ------------------------------------------------------------------------ */

/* Parses {handler, with} into `call`. Returns true when usable. */
static bool build_call(builder_t *b, const saga__node_t *node, const char *what,
                       saga_call_def_t *call, const saga__node_t **with)
{
    if (!saga__expect_mapping(b->rep, node, what))
        return false;
    saga__check_keys(b->rep, node, CALL_KEYS);
    *with = saga__node_get(node, "with");
    const saga__node_t *h = saga__node_get(node, "handler");
    if (h == NULL) {
        saga__missing_key(b->rep, node, "handler");
        return false;
    }
    if (!saga__expect_string(b->rep, h, "'handler'"))
        return false;
    const char *dot = memchr(h->text, '.', h->len);
    size_t plen = dot ? (size_t)(dot - h->text) : 0;
    if (dot == NULL || !saga__is_identifier(h->text, plen) ||
        !saga__is_identifier(dot + 1, h->len - plen - 1)) {
        char q[SAGA__QUOTE_SIZE];
        saga__report(b->rep, h->pos,
                     "'handler' must be 'plugin.handler' (two names joined by "
                     "a dot, like 'demo.echo'), found '%s'",
                     saga__quote(q, h->text, h->len));
        return false;
    }
    call->pos = h->pos;
    call->handler = dup_text(h);
    call->plugin = malloc(plen + 1);
    call->function = strdup(dot + 1);
    if (call->handler == NULL || call->plugin == NULL || call->function == NULL) {
        saga__report_oom(b->rep);
        return false;
    }
    memcpy(call->plugin, h->text, plen);
    call->plugin[plen] = '\0';
    return true;
}

/* A TCC step's three phases: each a call, each required. */
static void build_tcc_phases(builder_t *b, size_t i, const saga__node_t *node)
{
    saga_step_def_t *step = &b->def->steps[i];
    step_src_t *src = &b->src[i];
    static const char *const PHASES[] = {"try", "confirm", "cancel"};
    for (int k = 0; k < 3; k++) {
        const saga__node_t *v = saga__node_get(node, PHASES[k]);
        if (v == NULL) {
            if (step->name != NULL)
                saga__report(b->rep, node->pos,
                             "step '%s' has no '%s': in a TCC saga (mode: tcc) "
                             "every step has 'try', 'confirm' and 'cancel'",
                             step->name, PHASES[k]);
            else
                saga__report(b->rep, node->pos,
                             "step has no '%s': in a TCC saga (mode: tcc) every "
                             "step has 'try', 'confirm' and 'cancel'", PHASES[k]);
            continue;
        }
        char what[16];
        snprintf(what, sizeof(what), "'%s'", PHASES[k]);
        if (k == 0)
            src->action_ok = build_call(b, v, what, &step->action,
                                        &src->action_with);
        else if (k == 1)
            src->confirm_ok = build_call(b, v, what, &step->confirm,
                                         &src->confirm_with);
        else
            src->compensation_ok = build_call(b, v, what, &step->compensation,
                                              &src->compensation_with);
    }
    step->has_compensation = true;
    src->compensation_given = true;
}

static void build_step(builder_t *b, size_t i, const saga__node_t *node)
{
    saga_step_def_t *step = &b->def->steps[i];
    step_src_t *src = &b->src[i];
    bool tcc = b->def->mode == SAGA_MODE_TCC;
    step->index = i;
    step->pos = node->pos;
    src->node = node;
    if (!saga__expect_mapping(b->rep, node, "each step"))
        return;
    saga__check_keys_except(b->rep, node, tcc ? TCC_STEP_KEYS : STEP_KEYS,
                            tcc ? SAGA_ONLY_KEYS : TCC_ONLY_KEYS);
    wrong_mode_keys(b, node, tcc ? SAGA_ONLY_KEYS : TCC_ONLY_KEYS);

    const saga__node_t *v;
    if ((v = saga__node_get(node, "name")) == NULL)
        saga__missing_key(b->rep, node, "name");
    else if (saga__expect_identifier(b->rep, v, "a step name") &&
             (step->name = dup_text(v)) == NULL)
        saga__report_oom(b->rep);

    if (tcc) {
        build_tcc_phases(b, i, node);
    } else if ((v = saga__node_get(node, "action")) == NULL) {
        saga__missing_key(b->rep, node, "action");
    } else {
        src->action_ok = build_call(b, v, "'action'", &step->action,
                                    &src->action_with);
    }

    if (!tcc && (v = saga__node_get(node, "compensation")) != NULL) {
        src->compensation_given = true;
        if (v->kind == SAGA__NODE_SCALAR && json_is_string(v->value) &&
            strcmp(v->text, "none") == 0) {
            step->has_compensation = false;
        } else if (v->kind == SAGA__NODE_MAPPING) {
            step->has_compensation = true;
            src->compensation_ok = build_call(b, v, "'compensation'",
                                              &step->compensation,
                                              &src->compensation_with);
        } else if (!v->invalid) {
            char d[SAGA__QUOTE_SIZE];
            saga__report(b->rep, v->pos,
                         "'compensation' must be a mapping with 'handler' (and "
                         "optional 'with'), or 'none'; found %s",
                         saga__describe(d, v));
        }
    }

    if (!tcc && (v = saga__node_get(node, "pivot")) != NULL && !v->invalid) {
        char d[SAGA__QUOTE_SIZE];
        if (v->kind != SAGA__NODE_SCALAR || v->value == NULL ||
            !json_is_boolean(v->value))
            saga__report(b->rep, v->pos, "'pivot' must be true or false, found %s",
                         saga__describe(d, v));
        else if (json_is_true(v->value)) {
            step->pivot = true;
            src->pivot_node = v;
        }
    }

    if ((v = saga__node_get(node, "timeout")) != NULL)
        src->has_timeout = saga__timeout_parse(b->rep, v, "'timeout'",
                                               &src->timeout_ms);
    if ((v = saga__node_get(node, "retry")) != NULL)
        src->retry_ok = saga__retry_parse(b->rep, v, "'retry'", &src->retry);
    const char *undo = tcc ? "cancel_retry" : "compensation_retry";
    if ((v = saga__node_get(node, undo)) != NULL)
        src->compensation_retry_ok = saga__retry_parse(
            b->rep, v, tcc ? "'cancel_retry'" : "'compensation_retry'",
            &src->compensation_retry);
    if (tcc && (v = saga__node_get(node, "confirm_retry")) != NULL)
        src->confirm_retry_ok = saga__retry_parse(b->rep, v, "'confirm_retry'",
                                                  &src->confirm_retry);
}

/* Reports every step name used twice, at the later use. */
static void check_unique_names(builder_t *b)
{
    const saga_def_t *def = b->def;
    for (size_t i = 0; i < def->n_steps; i++) {
        if (def->steps[i].name == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (def->steps[j].name == NULL ||
                strcmp(def->steps[i].name, def->steps[j].name) != 0)
                continue;
            const saga__node_t *n = saga__node_get(b->src[i].node, "name");
            saga__report(b->rep, n->pos,
                         "duplicate step name '%s' (first used at line %u)",
                         def->steps[i].name, (unsigned)def->steps[j].pos.line);
            break;
        }
    }
}

/* qsort has no user pointer in C11: sort (name, index) pairs instead. */
typedef struct name_ref_s {
    const char *name;
    size_t index;
} name_ref_t;

static int compare_name_refs(const void *pa, const void *pb)
{
    const name_ref_t *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c != 0)
        return c;
    return a->index < b->index ? -1 : (a->index > b->index);
}

/* The index of the step named `name` (the first one, if repeated), or
 * SIZE_MAX. Binary search over the sorted names. */
static size_t lookup(const name_ref_t *refs, size_t n, const char *name,
                     size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t mlen = strlen(refs[mid].name);
        int c = memcmp(refs[mid].name, name, mlen < len ? mlen : len);
        if (c == 0)
            c = mlen < len ? -1 : (mlen > len);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && strlen(refs[lo].name) == len &&
        memcmp(refs[lo].name, name, len) == 0)
        return refs[lo].index;
    return SIZE_MAX;
}

/* Resolves every step's `after`. Returns true when all of them resolved. */
static bool resolve_after(builder_t *b)
{
    saga_def_t *def = b->def;
    size_t n = def->n_steps;
    bool ok = true;

    name_ref_t *refs = malloc(n * sizeof(*refs));
    size_t *listed = calloc(n, sizeof(*listed)); /* i + 1: in i's `after` */
    if (refs == NULL || listed == NULL || b->names == NULL) {
        free(refs);
        free(listed);
        saga__report_oom(b->rep);
        return false;
    }
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++)
        if (def->steps[i].name != NULL) {
            refs[nrefs].name = def->steps[i].name;
            refs[nrefs].index = i;
            nrefs++;
        }
    qsort(refs, nrefs, sizeof(*refs), compare_name_refs);

    for (size_t i = 0; i < n; i++) {
        saga_step_def_t *step = &def->steps[i];
        step_src_t *src = &b->src[i];
        const saga__node_t *after = src->node->kind == SAGA__NODE_MAPPING
                                        ? saga__node_get(src->node, "after")
                                        : NULL;
        size_t cap = after ? after->n : (i > 0);
        if (after != NULL && !saga__expect_sequence(b->rep, after, "'after'")) {
            ok = false;
            continue;
        }
        if (cap == 0)
            continue;
        step->after = malloc(cap * sizeof(size_t));
        src->after_pos = malloc(cap * sizeof(saga_pos_t));
        if (step->after == NULL || src->after_pos == NULL) {
            saga__report_oom(b->rep);
            ok = false;
            break;
        }
        if (after == NULL) {
            /* Default: after the previous step in the list. */
            step->after[0] = i - 1;
            src->after_pos[0] = step->pos;
            step->n_after = 1;
            continue;
        }
        for (size_t j = 0; j < after->n; j++) {
            const saga__node_t *e = after->items[j];
            char q[SAGA__QUOTE_SIZE];
            if (!saga__expect_string(b->rep, e, "each entry of 'after'")) {
                ok = false;
                continue;
            }
            size_t p = lookup(refs, nrefs, e->text, e->len);
            if (p == SIZE_MAX) {
                const char *near = saga__report_wants_hints(b->rep)
                                       ? saga__suggest(e->text, e->len, b->names)
                                       : NULL;
                saga__report(b->rep, e->pos, "'after' names unknown step '%s'%s%s%s",
                             saga__quote(q, e->text, e->len),
                             near ? " (did you mean '" : "", near ? near : "",
                             near ? "'?)" : "");
                ok = false;
                continue;
            }
            if (p == i) {
                saga__report(b->rep, e->pos, "step '%s' cannot come after itself",
                             step->name);
                ok = false;
                continue;
            }
            if (listed[p] == i + 1) {
                saga__report(b->rep, e->pos, "'%s' is listed twice in 'after'",
                             def->steps[p].name);
                ok = false;
                continue;
            }
            listed[p] = i + 1;
            step->after[step->n_after] = p;
            src->after_pos[step->n_after] = e->pos;
            step->n_after++;
        }
    }
    free(refs);
    free(listed);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Compensations, templates, policies                                        */
/* ------------------------------------------------------------------------ */

/* The pivot as declared: at most one, and only in a backward saga. */
static void check_pivot_declared(builder_t *b)
{
    saga_def_t *def = b->def;
    for (size_t i = 0; i < def->n_steps; i++) {
        const saga__node_t *v = b->src[i].pivot_node;
        if (v == NULL)
            continue;
        const char *name = def->steps[i].name ? def->steps[i].name : "(unnamed)";
        if (def->recovery != SAGA_RECOVERY_BACKWARD) {
            saga__report(b->rep, v->pos,
                         "step '%s' cannot be a pivot in a saga with `recovery: "
                         "forward`: a forward saga never compensates, so it has "
                         "no go/no-go step (use `recovery: backward`)", name);
            continue;
        }
        if (def->pivot != SIZE_MAX) {
            const saga_step_def_t *first = &def->steps[def->pivot];
            saga__report(b->rep, v->pos,
                         "step '%s' is a second pivot (the first is '%s' at line "
                         "%u): a saga has at most one",
                         name, first->name ? first->name : "(unnamed)",
                         (unsigned)first->pos.line);
            continue;
        }
        def->pivot = i;
    }
}

/* Every step of a pivot saga runs before the pivot or after it (a step
 * beside it could still fail after the pivot succeeded, and could not be
 * undone); the steps after it are never compensated. Needs the graph. */
static void check_pivot_graph(builder_t *b)
{
    saga_def_t *def = b->def;
    size_t p = def->pivot;
    const char *pname = def->steps[p].name ? def->steps[p].name : "(unnamed)";
    for (size_t i = 0; i < def->n_steps; i++) {
        saga_step_def_t *step = &def->steps[i];
        const char *name = step->name ? step->name : "(unnamed)";
        if (i == p || saga_def_is_ancestor(def, i, p))
            continue;
        if (!saga_def_is_ancestor(def, p, i)) {
            saga__report(b->rep, step->pos,
                         "step '%s' runs beside the pivot step '%s' (neither "
                         "before nor after it); list '%s' in the 'after' of "
                         "'%s', or '%s' in the 'after' of '%s'",
                         name, pname, pname, name, name, pname);
            continue;
        }
        if (step->has_compensation) {
            saga__report(b->rep, key_pos(b->src[i].node, "compensation"),
                         "step '%s' comes after the pivot step '%s', so it is "
                         "never compensated (once the pivot succeeded the saga "
                         "only goes forward); remove its 'compensation'",
                         name, pname);
        }
    }
}

/* A backward saga's steps need a compensation or `none`; in a pivot saga,
 * only the steps before the pivot (and the pivot), which needs the graph
 * (graph_ok). */
static void check_compensations(builder_t *b, bool graph_ok)
{
    const saga_def_t *def = b->def;
    if (def->recovery != SAGA_RECOVERY_BACKWARD || def->mode == SAGA_MODE_TCC)
        return;
    if (def->pivot != SIZE_MAX && !graph_ok)
        return;
    for (size_t i = 0; i < def->n_steps; i++) {
        const step_src_t *src = &b->src[i];
        if (src->node->kind != SAGA__NODE_MAPPING || src->compensation_given)
            continue;
        if (def->pivot != SIZE_MAX && saga_def_is_ancestor(def, def->pivot, i))
            continue; /* after the pivot: never compensated */
        if (def->steps[i].name != NULL)
            saga__report(b->rep, def->steps[i].pos,
                         "step '%s' has no compensation; add one or write "
                         "`compensation: none`", def->steps[i].name);
        else
            saga__report(b->rep, def->steps[i].pos,
                         "step has no compensation; add one or write "
                         "`compensation: none`");
    }
}

static void compile_templates(builder_t *b, bool graph_ok)
{
    saga_def_t *def = b->def;
    for (size_t i = 0; i < def->n_steps; i++) {
        saga_step_def_t *step = &def->steps[i];
        step_src_t *src = &b->src[i];
        saga__tpl_scope_t scope = {def, b->names, i, false, graph_ok, false};
        /* A call with a bad handler still has its `with` checked. */
        if (src->action_ok || src->action_with != NULL)
            step->action.with = saga__template_compile(src->action_with, &scope,
                                                       b->rep);
        if (src->compensation_ok || src->compensation_with != NULL) {
            scope.compensation = true;
            step->compensation.with = saga__template_compile(
                src->compensation_with, &scope, b->rep);
        }
        if (src->confirm_ok || src->confirm_with != NULL) {
            /* Confirms run once every Try succeeded: any output is there. */
            scope.compensation = false;
            scope.any_step = true;
            step->confirm.with = saga__template_compile(src->confirm_with,
                                                        &scope, b->rep);
        }
    }
}

static void resolve_policies(builder_t *b)
{
    saga_def_t *def = b->def;
    saga__report_t *rep = b->rep;

    uint64_t timeout = b->has_default_timeout ? b->default_timeout_ms
                                              : SAGA_DEFAULT_TIMEOUT_MS;
    saga_retry_policy_t action, compensation;
    saga__retry_builtin(&action, false);
    saga__retry_builtin(&compensation, true);
    saga__retry_merge(&action, &b->default_retry);
    saga__retry_merge(&compensation, &b->default_retry);
    saga__retry_merge(&compensation, &b->default_compensation_retry);

    /* Check each written block once, on the policy it resolves to. A block
     * that already had errors is not checked again. */
    bool action_ok = true, compensation_ok = true, confirm_ok = true;
    if (b->default_retry.given && b->default_retry_ok)
        action_ok = saga__retry_check(rep, &action, &b->default_retry);
    if (b->default_compensation_retry.given && b->default_compensation_retry_ok)
        compensation_ok = saga__retry_check(rep, &compensation,
                                            &b->default_compensation_retry);
    /* A Confirm is retried like a compensation, but (nearly) for ever. */
    saga_retry_policy_t confirm;
    saga__retry_builtin(&confirm, true);
    confirm.max_attempts = SAGA_DEFAULT_CONFIRM_ATTEMPTS;
    saga__retry_merge(&confirm, &b->default_retry);
    confirm.max_attempts = SAGA_DEFAULT_CONFIRM_ATTEMPTS; /* not a Try's */
    saga__retry_merge(&confirm, &b->default_confirm_retry);
    if (b->default_confirm_retry.given && b->default_confirm_retry_ok)
        confirm_ok = saga__retry_check(rep, &confirm, &b->default_confirm_retry);

    for (size_t i = 0; i < def->n_steps; i++) {
        saga_step_def_t *step = &def->steps[i];
        step_src_t *src = &b->src[i];
        step->timeout_ms = src->has_timeout ? src->timeout_ms : timeout;
        step->retry = action;
        saga__retry_merge(&step->retry, &src->retry);
        if (src->retry.given && src->retry_ok && action_ok)
            saga__retry_check(rep, &step->retry, &src->retry);
        step->compensation_retry = compensation;
        saga__retry_merge(&step->compensation_retry, &src->compensation_retry);
        if (src->compensation_retry.given && src->compensation_retry_ok &&
            compensation_ok && action_ok)
            saga__retry_check(rep, &step->compensation_retry,
                              &src->compensation_retry);
        if (def->mode != SAGA_MODE_TCC)
            continue;
        step->confirm_retry = confirm;
        saga__retry_merge(&step->confirm_retry, &src->confirm_retry);
        if (src->confirm_retry.given && src->confirm_retry_ok && confirm_ok &&
            action_ok)
            saga__retry_check(rep, &step->confirm_retry, &src->confirm_retry);
    }
}

/* ------------------------------------------------------------------------ */
/* The whole definition                                                      */
/* ------------------------------------------------------------------------ */

static void build_steps(builder_t *b, const saga__node_t *steps)
{
    saga_def_t *def = b->def;
    if (!saga__expect_sequence(b->rep, steps, "'steps'"))
        return;
    if (steps->n == 0) {
        saga__report(b->rep, steps->pos, "'steps' must hold at least one step");
        return;
    }
    if (steps->n > SAGA_DEF_MAX_STEPS) {
        saga__report(b->rep, steps->pos, "too many steps (%zu; at most %u)",
                     steps->n, SAGA_DEF_MAX_STEPS);
        return;
    }
    def->steps = calloc(steps->n, sizeof(*def->steps));
    b->src = calloc(steps->n, sizeof(*b->src));
    if (def->steps == NULL || b->src == NULL) {
        saga__report_oom(b->rep);
        return;
    }
    def->n_steps = steps->n;
    for (size_t i = 0; i < steps->n; i++)
        build_step(b, i, steps->items[i]);

    /* Names for "did you mean": the named steps, NULL-terminated. */
    b->names = calloc(def->n_steps + 1, sizeof(*b->names));
    if (b->names == NULL)
        saga__report_oom(b->rep);
    for (size_t i = 0, k = 0; b->names != NULL && i < def->n_steps; i++)
        if (def->steps[i].name != NULL)
            b->names[k++] = def->steps[i].name;

    check_unique_names(b);
    check_pivot_declared(b);
    bool graph_ok = false;
    if (resolve_after(b)) {
        saga_pos_t **after_pos = malloc(def->n_steps * sizeof(*after_pos));
        if (after_pos == NULL) {
            saga__report_oom(b->rep);
        } else {
            for (size_t i = 0; i < def->n_steps; i++)
                after_pos[i] = b->src[i].after_pos;
            graph_ok = saga__graph_build(def, after_pos, b->rep) == 0;
            free(after_pos);
        }
    }
    if (graph_ok && def->pivot != SIZE_MAX)
        check_pivot_graph(b);
    check_compensations(b, graph_ok);
    compile_templates(b, graph_ok);
    resolve_policies(b);
}

saga_def_t *saga__def_build(const saga__node_t *root, saga__report_t *rep)
{
    size_t errors_before = rep->errors;
    char d[SAGA__QUOTE_SIZE];
    if (root->kind != SAGA__NODE_MAPPING) {
        saga__report(rep, root->pos,
                     "a saga definition must be a mapping with 'saga' and "
                     "'steps', found %s", saga__describe(d, root));
        return NULL;
    }

    builder_t b;
    memset(&b, 0, sizeof(b));
    b.rep = rep;
    b.def = calloc(1, sizeof(*b.def));
    if (b.def == NULL) {
        saga__report_oom(rep);
        return NULL;
    }
    saga_def_t *def = b.def;
    def->recovery = SAGA_RECOVERY_BACKWARD;
    def->pivot = SIZE_MAX;

    saga__check_keys(rep, root, TOP_KEYS);
    const saga__node_t *v;
    int64_t version;
    int e;
    if ((v = saga__node_get(root, "saga")) == NULL)
        saga__missing_key(rep, root, "saga");
    else if (saga__expect_identifier(rep, v, "'saga'") &&
             (def->name = dup_text(v)) == NULL)
        saga__report_oom(rep);
    if ((v = saga__node_get(root, "version")) != NULL &&
        saga__expect_int(rep, v, "'version'", 0, INT64_MAX, &version))
        def->version = version;
    if ((v = saga__node_get(root, "description")) != NULL &&
        saga__expect_string(rep, v, "'description'") &&
        (def->description = dup_text(v)) == NULL)
        saga__report_oom(rep);
    /* The mode first: it says which keys the rest may use. */
    if ((v = saga__node_get(root, "mode")) != NULL &&
        (e = saga__expect_enum(rep, v, "'mode'", MODES)) >= 0)
        def->mode = (saga_mode_t)e;
    if ((v = saga__node_get(root, "recovery")) != NULL) {
        if (def->mode == SAGA_MODE_TCC)
            saga__report(rep, key_pos(root, "recovery"),
                         "'recovery' is not allowed in a TCC saga (mode: tcc): "
                         "a failed Try cancels what was tried, a failed "
                         "Confirm is retried; remove it");
        else if ((e = saga__expect_enum(rep, v, "'recovery'", RECOVERIES)) >= 0)
            def->recovery = (saga_recovery_t)e;
    }
    if ((v = saga__node_get(root, "retention")) != NULL)
        build_retention(&b, v);
    if ((v = saga__node_get(root, "defaults")) != NULL)
        build_defaults(&b, v);
    if ((v = saga__node_get(root, "input")) != NULL)
        build_input(&b, v);
    if ((v = saga__node_get(root, "steps")) == NULL)
        saga__missing_key(rep, root, "steps");
    else
        build_steps(&b, v);

    if (b.src != NULL)
        for (size_t i = 0; i < def->n_steps; i++)
            free(b.src[i].after_pos);
    free(b.src);
    free(b.names);
    if (rep->errors != errors_before || errors_before != 0) {
        saga_def_free(def);
        return NULL;
    }
    return def;
}

/* ------------------------------------------------------------------------ */
/* Freeing what saga__def_build() built                                      */
/* ------------------------------------------------------------------------ */

static void call_free(saga_call_def_t *c)
{
    free(c->handler);
    free(c->plugin);
    free(c->function);
    saga__template_free(c->with);
}

void saga_def_free(saga_def_t *def)
{
    if (def == NULL)
        return;
    for (size_t i = 0; i < def->n_steps; i++) {
        saga_step_def_t *s = &def->steps[i];
        free(s->name);
        call_free(&s->action);
        call_free(&s->compensation);
        call_free(&s->confirm);
        free(s->after);
        free(s->dependents);
    }
    free(def->steps);
    for (size_t i = 0; i < def->n_required_inputs; i++)
        free(def->required_inputs[i]);
    free(def->required_inputs);
    free(def->topo_order);
    free(def->ancestors);
    free(def->name);
    free(def->description);
    free(def->source);
    free(def->text);
    free(def);
}
