/*
 * check.c -- shared type and key checks for the model builders.
 */
#include "check.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "message.h"

bool saga__is_identifier(const char *s, size_t len)
{
    if (len == 0 || len > SAGA_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool more = (c >= '0' && c <= '9') || c == '-';
        if (!alpha && !(i > 0 && more))
            return false;
    }
    return true;
}

/* Writes "'a', 'b' or 'c'" into buf. */
static const char *join_choices(char *buf, size_t size,
                                const char *const *choices)
{
    size_t n = 0, o = 0;
    while (choices[n] != NULL)
        n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + o, size - o, "%s'%s'", sep, choices[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return buf;
}

/* True when the key node `k` is in the NULL-terminated list (NULL: no). */
static bool listed(const saga__node_t *k, const char *const *list)
{
    for (const char *const *a = list; a != NULL && *a != NULL; a++)
        if (strlen(*a) == k->len && memcmp(*a, k->text, k->len) == 0)
            return true;
    return false;
}

void saga__check_keys(saga__report_t *rep, const saga__node_t *map,
                      const char *const *allowed)
{
    saga__check_keys_except(rep, map, allowed, NULL);
}

void saga__check_keys_except(saga__report_t *rep, const saga__node_t *map,
                             const char *const *allowed,
                             const char *const *skipped)
{
    for (size_t i = 0; i < map->n; i++) {
        const saga__node_t *k = saga__node_key(map, i);
        if (listed(k, allowed) || listed(k, skipped))
            continue;

        char q[SAGA__QUOTE_SIZE], list[512];
        const char *near = saga__suggest(k->text, k->len, allowed);
        if (near != NULL)
            saga__report(rep, k->pos, "unknown key '%s' (did you mean '%s'?)",
                         saga__quote(q, k->text, k->len), near);
        else
            saga__report(rep, k->pos, "unknown key '%s' (expected %s)",
                         saga__quote(q, k->text, k->len),
                         join_choices(list, sizeof(list), allowed));
    }
}

void saga__missing_key(saga__report_t *rep, const saga__node_t *map,
                       const char *key)
{
    saga__report(rep, map->pos, "missing required key '%s'", key);
}

static bool expect_kind(saga__report_t *rep, const saga__node_t *node,
                        const char *what, saga__node_kind_t kind,
                        const char *expected)
{
    if (node->kind == kind)
        return true;
    if (node->invalid)
        return false;
    char d[SAGA__QUOTE_SIZE];
    saga__report(rep, node->pos, "%s must be %s, found %s", what, expected,
                 saga__describe(d, node));
    return false;
}

bool saga__expect_mapping(saga__report_t *rep, const saga__node_t *node,
                          const char *what)
{
    return expect_kind(rep, node, what, SAGA__NODE_MAPPING, "a mapping");
}

bool saga__expect_sequence(saga__report_t *rep, const saga__node_t *node,
                           const char *what)
{
    return expect_kind(rep, node, what, SAGA__NODE_SEQUENCE, "a sequence");
}

static bool is_string(const saga__node_t *node)
{
    return node->kind == SAGA__NODE_SCALAR && node->value != NULL &&
           json_is_string(node->value);
}

bool saga__expect_string(saga__report_t *rep, const saga__node_t *node,
                         const char *what)
{
    if (is_string(node) && node->len > 0)
        return true;
    if (node->invalid)
        return false;
    char d[SAGA__QUOTE_SIZE];
    if (is_string(node))
        saga__report(rep, node->pos, "%s must not be empty", what);
    else
        saga__report(rep, node->pos, "%s must be a string, found %s", what,
                     saga__describe(d, node));
    return false;
}

bool saga__expect_identifier(saga__report_t *rep, const saga__node_t *node,
                             const char *what)
{
    char d[SAGA__QUOTE_SIZE];
    if (node->invalid)
        return false;
    if (!is_string(node)) {
        saga__report(rep, node->pos, "%s must be a name, found %s", what,
                     saga__describe(d, node));
        return false;
    }
    if (saga__is_identifier(node->text, node->len))
        return true;
    if (node->len > SAGA_NAME_MAX)
        saga__report(rep, node->pos, "%s is longer than %u characters", what,
                     SAGA_NAME_MAX);
    else
        saga__report(rep, node->pos,
                     "%s must be a name made of letters, digits, '_' and '-', "
                     "not starting with a digit or '-'; found '%s'",
                     what, saga__quote(d, node->text, node->len));
    return false;
}

bool saga__expect_int(saga__report_t *rep, const saga__node_t *node,
                      const char *what, int64_t min, int64_t max, int64_t *out)
{
    if (node->kind == SAGA__NODE_SCALAR && node->value != NULL &&
        json_is_integer(node->value)) {
        int64_t v = (int64_t)json_integer_value(node->value);
        if (v >= min && v <= max) {
            *out = v;
            return true;
        }
    }
    if (node->invalid)
        return false;
    char d[SAGA__QUOTE_SIZE];
    saga__report(rep, node->pos,
                 "%s must be an integer from %" PRId64 " to %" PRId64 ", found %s",
                 what, min, max, saga__describe(d, node));
    return false;
}

int saga__expect_enum(saga__report_t *rep, const saga__node_t *node,
                      const char *what, const char *const *choices)
{
    char d[SAGA__QUOTE_SIZE], list[256];
    if (node->invalid)
        return -1;
    if (is_string(node)) {
        for (int i = 0; choices[i] != NULL; i++)
            if (strlen(choices[i]) == node->len &&
                memcmp(choices[i], node->text, node->len) == 0)
                return i;
        const char *near = saga__suggest(node->text, node->len, choices);
        if (near != NULL) {
            saga__report(rep, node->pos,
                         "%s must be %s, found '%s' (did you mean '%s'?)", what,
                         join_choices(list, sizeof(list), choices),
                         saga__quote(d, node->text, node->len), near);
            return -1;
        }
    }
    saga__report(rep, node->pos, "%s must be %s, found %s", what,
                 join_choices(list, sizeof(list), choices),
                 saga__describe(d, node));
    return -1;
}
