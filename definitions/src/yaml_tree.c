/*
 * yaml_tree.c -- YAML text to saga__node_t tree through libyaml's event API.
 *
 * The builder keeps a stack of the collections being filled (never deeper
 * than SAGA_DEF_MAX_DEPTH), links every node into its parent as soon as it
 * is created (so one free of the root releases everything on any exit), and
 * checks each mapping for duplicate and non-scalar keys when it closes.
 */
#include "yaml_tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "message.h"
#include "scalar.h"

typedef struct frame_s {
    saga__node_t *node;
    size_t cap;        /* allocated entries of node->items */
    size_t count;      /* used entries (2 per pair for mappings) */
} frame_t;

typedef struct builder_s {
    saga__report_t *rep;
    const char *text;
    size_t len;
    frame_t stack[SAGA_DEF_MAX_DEPTH];
    size_t depth;
    saga__node_t *root;
    unsigned documents;
} builder_t;

static saga_pos_t mark_pos(yaml_mark_t m)
{
    /* libyaml marks are 0-based. */
    saga_pos_t p = {(uint32_t)m.line + 1, (uint32_t)m.column + 1};
    return p;
}

/* ------------------------------------------------------------------------ */
/* Nodes                                                                     */
/* ------------------------------------------------------------------------ */

void saga__node_free(saga__node_t *node)
{
    if (node == NULL)
        return;
    /* Depth is capped at SAGA_DEF_MAX_DEPTH, so recursion is bounded. */
    size_t slots = node->kind == SAGA__NODE_MAPPING ? 2 * node->n : node->n;
    for (size_t i = 0; i < slots; i++)
        saga__node_free(node->items[i]);
    free(node->items);
    free(node->text);
    json_decref(node->value);
    free(node);
}

const saga__node_t *saga__node_get(const saga__node_t *map, const char *key)
{
    if (map == NULL || map->kind != SAGA__NODE_MAPPING)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const saga__node_t *k = saga__node_key(map, i);
        if (k->len == klen && memcmp(k->text, key, klen) == 0)
            return saga__node_value(map, i);
    }
    return NULL;
}

static saga__node_t *node_new(saga__node_kind_t kind, yaml_mark_t start)
{
    saga__node_t *n = calloc(1, sizeof(*n));
    if (n != NULL) {
        n->kind = kind;
        n->pos = mark_pos(start);
    }
    return n;
}

/* Links `child` into the open collection (or makes it the root). On failure
 * the child is freed and -1 returned. */
static int attach(builder_t *b, saga__node_t *child)
{
    if (b->depth == 0) {
        b->root = child;
        return 0;
    }
    frame_t *f = &b->stack[b->depth - 1];
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        saga__node_t **items = realloc(f->node->items, cap * sizeof(*items));
        if (items == NULL) {
            saga__node_free(child);
            return -1;
        }
        f->node->items = items;
        f->cap = cap;
    }
    f->node->items[f->count++] = child;
    if (f->node->kind == SAGA__NODE_SEQUENCE)
        f->node->n = f->count;
    else
        f->node->n = f->count / 2;
    return 0;
}

/* True when the next node attached is a mapping key. */
static bool next_is_key(const builder_t *b)
{
    if (b->depth == 0)
        return false;
    const frame_t *f = &b->stack[b->depth - 1];
    return f->node->kind == SAGA__NODE_MAPPING && f->count % 2 == 0;
}

/* Anchors and tags are refused but do not stop the parse. */
static void check_properties(builder_t *b, yaml_mark_t start,
                             const yaml_char_t *anchor, const yaml_char_t *tag)
{
    char q[SAGA__QUOTE_SIZE];
    if (anchor != NULL) {
        const char *a = (const char *)anchor;
        saga__report(b->rep, mark_pos(start),
                     "YAML anchors are not allowed (found '&%s')",
                     saga__quote(q, a, strlen(a)));
    }
    if (tag != NULL) {
        const char *t = (const char *)tag;
        saga__report(b->rep, mark_pos(start),
                     "YAML tags are not allowed (found '%s')",
                     saga__quote(q, t, strlen(t)));
    }
}

/* ------------------------------------------------------------------------ */
/* Mapping keys                                                              */
/* ------------------------------------------------------------------------ */

typedef struct key_ref_s {
    const saga__node_t *key;
    size_t pair;
} key_ref_t;

static int compare_keys(const void *pa, const void *pb)
{
    const key_ref_t *a = pa, *b = pb;
    size_t n = a->key->len < b->key->len ? a->key->len : b->key->len;
    int c = memcmp(a->key->text, b->key->text, n);
    if (c != 0)
        return c;
    if (a->key->len != b->key->len)
        return a->key->len < b->key->len ? -1 : 1;
    return a->pair < b->pair ? -1 : (a->pair > b->pair);
}

/* Reports and drops pairs whose key is not a scalar or repeats an earlier
 * key; the first of equal keys stays. Sorting keeps this O(n log n) for the
 * huge mappings a hostile file may hold. Returns -1 on memory failure. */
static int finish_mapping(builder_t *b, saga__node_t *map)
{
    size_t n = map->n;
    if (n == 0)
        return 0;
    bool *drop = calloc(n, sizeof(*drop));
    key_ref_t *refs = malloc(n * sizeof(*refs));
    if (drop == NULL || refs == NULL) {
        free(drop);
        free(refs);
        return -1;
    }

    char q[SAGA__QUOTE_SIZE];
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++) {
        const saga__node_t *k = saga__node_key(map, i);
        if (k->kind != SAGA__NODE_SCALAR) {
            saga__report(b->rep, k->pos, "mapping keys must be scalars, found %s",
                         saga__describe(q, k));
            drop[i] = true;
            continue;
        }
        refs[nrefs].key = k;
        refs[nrefs].pair = i;
        nrefs++;
    }
    qsort(refs, nrefs, sizeof(*refs), compare_keys);
    /* After sorting, equal keys form runs led by their first occurrence. */
    size_t run = 0;
    for (size_t i = 1; i < nrefs; i++) {
        const saga__node_t *first = refs[run].key, *k = refs[i].key;
        if (k->len != first->len || memcmp(k->text, first->text, k->len) != 0) {
            run = i;
            continue;
        }
        saga__report(b->rep, k->pos,
                     "duplicate key '%s' (first at line %u, column %u)",
                     saga__quote(q, k->text, k->len),
                     (unsigned)first->pos.line, (unsigned)first->pos.column);
        drop[refs[i].pair] = true;
    }

    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (drop[i]) {
            saga__node_free(map->items[2 * i]);
            saga__node_free(map->items[2 * i + 1]);
            continue;
        }
        map->items[2 * out] = map->items[2 * i];
        map->items[2 * out + 1] = map->items[2 * i + 1];
        out++;
    }
    map->n = out;
    free(drop);
    free(refs);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */
/* ------------------------------------------------------------------------ */

/* Handles one scalar event. Returns -1 on memory failure. */
static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    check_properties(b, ev->start_mark, ev->data.scalar.anchor,
                     ev->data.scalar.tag);

    saga__node_t *n = node_new(SAGA__NODE_SCALAR, ev->start_mark);
    if (n == NULL)
        return -1;
    size_t len = ev->data.scalar.length;
    n->text = malloc(len + 1);
    if (n->text == NULL) {
        free(n);
        return -1;
    }
    memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    n->len = len;
    if (memchr(n->text, '\0', len) != NULL) {
        saga__report(b->rep, n->pos, "NUL characters are not allowed in strings");
        n->len = strlen(n->text);
        n->invalid = true;
    }
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (!next_is_key(b)) {
        char err[256];
        n->value = saga__scalar_resolve(n->text, n->len, n->plain, err, sizeof(err));
        if (n->value == NULL) {
            saga__report(b->rep, n->pos, "%s", err);
            /* Keep going with a stand-in; the load fails anyway. */
            n->value = json_null();
            n->invalid = true;
        }
    }
    return attach(b, n);
}

/* Handles a sequence or mapping start. Returns -1 on memory failure, 1 when
 * the nesting limit is reached (reported), else 0. */
static int on_collection_start(builder_t *b, const yaml_event_t *ev,
                               saga__node_kind_t kind)
{
    const yaml_char_t *anchor, *tag;
    if (kind == SAGA__NODE_SEQUENCE) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    if (b->depth == SAGA_DEF_MAX_DEPTH) {
        saga__report(b->rep, mark_pos(ev->start_mark),
                     "nesting is deeper than %u levels", SAGA_DEF_MAX_DEPTH);
        return 1;
    }
    check_properties(b, ev->start_mark, anchor, tag);

    saga__node_t *n = node_new(kind, ev->start_mark);
    if (n == NULL || attach(b, n) != 0)
        return -1;
    frame_t *f = &b->stack[b->depth++];
    f->node = n;
    f->cap = 0;
    f->count = 0;
    return 0;
}

/* Reports libyaml's error with the best position it offers. */
static void report_parser_error(builder_t *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_MEMORY_ERROR) {
        saga__report_oom(b->rep);
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark. */
        saga_pos_t pos = {1, 1};
        size_t end = p->problem_offset < b->len ? p->problem_offset : b->len;
        for (size_t i = 0; i < end; i++) {
            if (b->text[i] == '\n') {
                pos.line++;
                pos.column = 1;
            } else {
                pos.column++;
            }
        }
        if (p->problem_value != -1)
            saga__report(b->rep, pos, "invalid input: %s (#x%X)", problem,
                         (unsigned)p->problem_value);
        else
            saga__report(b->rep, pos, "invalid input: %s", problem);
        return;
    }
    if (p->context != NULL)
        saga__report(b->rep, mark_pos(p->problem_mark),
                     "YAML syntax error: %s (%s at line %u, column %u)", problem,
                     p->context, (unsigned)p->context_mark.line + 1,
                     (unsigned)p->context_mark.column + 1);
    else
        saga__report(b->rep, mark_pos(p->problem_mark), "YAML syntax error: %s",
                     problem);
}

saga__node_t *saga__yaml_parse(const char *text, size_t len,
                               saga__report_t *rep)
{
    builder_t b;
    memset(&b, 0, sizeof(b));
    b.rep = rep;
    b.text = text;
    b.len = len;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        saga__report_oom(rep);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    bool done = false, failed = false;
    while (!done && !failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            report_parser_error(&b, &parser);
            failed = true;
            break;
        }
        int rc = 0;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b.documents > 1) {
                saga__report(rep, mark_pos(ev.start_mark),
                             "more than one YAML document in the file "
                             "(one saga per file)");
                rc = 1;
            }
            break;
        case YAML_ALIAS_EVENT: {
            char q[SAGA__QUOTE_SIZE];
            const char *a = (const char *)ev.data.alias.anchor;
            saga__report(rep, mark_pos(ev.start_mark),
                         "YAML aliases are not allowed (found '*%s')",
                         saga__quote(q, a, strlen(a)));
            rc = 1;
            break;
        }
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_collection_start(&b, &ev, SAGA__NODE_SEQUENCE);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_collection_start(&b, &ev, SAGA__NODE_MAPPING);
            break;
        case YAML_SEQUENCE_END_EVENT:
            b.depth--;
            break;
        case YAML_MAPPING_END_EVENT:
            rc = finish_mapping(&b, b.stack[--b.depth].node);
            break;
        default: /* stream start, document end, no event */
            break;
        }
        yaml_event_delete(&ev);
        if (rc < 0)
            saga__report_oom(rep);
        if (rc != 0)
            failed = true;
    }
    yaml_parser_delete(&parser);

    if (failed) {
        /* A mapping cut between a key and its value holds a key that its
         * pair count does not cover. That key may itself be an open
         * collection (a complex key), so go from the innermost frame out. */
        for (size_t i = b.depth; i-- > 0;) {
            frame_t *f = &b.stack[i];
            if (f->node->kind == SAGA__NODE_MAPPING && f->count % 2 == 1)
                saga__node_free(f->node->items[f->count - 1]);
        }
        saga__node_free(b.root);
        return NULL;
    }
    if (b.root == NULL)
        saga__report(rep, (saga_pos_t){0, 0},
                     "the file holds no YAML document (expected a saga definition)");
    return b.root;
}
