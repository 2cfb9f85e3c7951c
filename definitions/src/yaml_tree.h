/*
 * yaml_tree.h -- a YAML document as a small tree, built from libyaml's event
 * API with the limits untrusted input needs.
 *
 * libyaml's own document loader is not used: in 0.2.5 it follows aliases
 * (a self-referencing one never ends), has no nesting limit and is quadratic
 * on deep nesting. The builder here refuses anchors, aliases and tags, more
 * than SAGA_DEF_MAX_DEPTH nested collections, more than one document, NUL
 * characters in scalars, non-scalar keys and duplicate keys, and gives every
 * node its 1-based position.
 */
#ifndef SAGA_DEFS_YAML_TREE_H
#define SAGA_DEFS_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "diags.h"

typedef enum saga__node_kind_e {
    SAGA__NODE_SCALAR = 0,
    SAGA__NODE_SEQUENCE = 1,
    SAGA__NODE_MAPPING = 2
} saga__node_kind_t;

typedef struct saga__node_s saga__node_t;

struct saga__node_s {
    saga__node_kind_t kind;
    saga_pos_t pos;          /* where the node starts, 1-based */

    /* Scalars. `text` is NUL-terminated and holds no other NUL. `value` is
     * the resolved JSON value (see scalar.h); it is NULL for mapping keys,
     * which are always plain text. */
    char *text;
    size_t len;
    bool plain;              /* written unquoted (not a block scalar) */
    bool invalid;            /* already reported (its value is a stand-in):
                                later checks fail on it without a message */
    json_t *value;

    /* Collections. A sequence has `n` items; a mapping has `n` pairs stored
     * as items[2*i] (key, always a scalar) and items[2*i + 1] (value). */
    saga__node_t **items;
    size_t n;
};

/* Parses `len` bytes of YAML into a tree. Returns the root (never NULL for a
 * document that parsed), or NULL when the text is empty, is not YAML, breaks
 * a limit, or memory ran out; every problem is reported through `rep`.
 *
 * Some problems are reported without stopping the parse so that the caller
 * can report more (anchors, aliases, tags, duplicate or non-scalar keys,
 * scalars that do not resolve): the tree is then returned with the offending
 * parts dropped or replaced, and rep->errors tells that the load must fail.
 * The caller owns the tree and frees it with saga__node_free(). */
saga__node_t *saga__yaml_parse(const char *text, size_t len,
                               saga__report_t *rep);

/* Frees a node and everything under it. Accepts NULL. */
void saga__node_free(saga__node_t *node);

/* The value of key `key` in mapping `map`, or NULL when absent (or when
 * `map` is not a mapping). Linear in the number of keys. */
const saga__node_t *saga__node_get(const saga__node_t *map, const char *key);

/* A mapping's i-th key and value. */
static inline const saga__node_t *saga__node_key(const saga__node_t *m, size_t i)
{
    return m->items[2 * i];
}

static inline const saga__node_t *saga__node_value(const saga__node_t *m, size_t i)
{
    return m->items[2 * i + 1];
}

#endif /* SAGA_DEFS_YAML_TREE_H */
