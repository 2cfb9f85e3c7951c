/*
 * canonical.c -- canonical JSON of a YAML tree, and its SHA-256.
 */
#include "canonical.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static void put(saga__canonical_sink_t sink, void *ud, const char *s)
{
    sink(ud, s, strlen(s));
}

static void put_string(saga__canonical_sink_t sink, void *ud, const char *s,
                       size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    sink(ud, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (esc == NULL)
            continue;
        sink(ud, s + start, i - start);
        put(sink, ud, esc);
        start = i + 1;
    }
    sink(ud, s + start, len - start);
    sink(ud, "\"", 1);
}

static void put_value(saga__canonical_sink_t sink, void *ud, const json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_NULL: put(sink, ud, "null"); break;
    case JSON_TRUE: put(sink, ud, "true"); break;
    case JSON_FALSE: put(sink, ud, "false"); break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)json_integer_value(v));
        put(sink, ud, buf);
        break;
    case JSON_REAL:
        /* 17 significant digits round-trip every double exactly. */
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        if (strpbrk(buf, ".e") == NULL)
            strcat(buf, ".0");
        put(sink, ud, buf);
        break;
    case JSON_STRING:
        put_string(sink, ud, json_string_value(v), json_string_length(v));
        break;
    default: /* scalars only ever resolve to the kinds above */
        put(sink, ud, "null");
        break;
    }
}

typedef struct key_ref_s {
    const saga__node_t *key;
    size_t pair;
} key_ref_t;

static int compare_keys(const void *pa, const void *pb)
{
    const saga__node_t *a = ((const key_ref_t *)pa)->key;
    const saga__node_t *b = ((const key_ref_t *)pb)->key;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->text, b->text, n);
    if (c != 0)
        return c;
    return a->len < b->len ? -1 : (a->len > b->len);
}

int saga__canonical_write(const saga__node_t *node, saga__canonical_sink_t sink,
                          void *ud)
{
    /* Depth is capped by the tree builder, so recursion is bounded. */
    switch (node->kind) {
    case SAGA__NODE_SCALAR:
        put_value(sink, ud, node->value);
        return 0;
    case SAGA__NODE_SEQUENCE:
        sink(ud, "[", 1);
        for (size_t i = 0; i < node->n; i++) {
            if (i > 0)
                sink(ud, ",", 1);
            if (saga__canonical_write(node->items[i], sink, ud) != 0)
                return -ENOMEM;
        }
        sink(ud, "]", 1);
        return 0;
    case SAGA__NODE_MAPPING:
        break;
    }

    key_ref_t *refs = NULL;
    if (node->n > 0 && (refs = malloc(node->n * sizeof(*refs))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < node->n; i++) {
        refs[i].key = saga__node_key(node, i);
        refs[i].pair = i;
    }
    /* Keys are unique (the builder dropped repeats), so order is total. */
    if (node->n > 1)
        qsort(refs, node->n, sizeof(*refs), compare_keys);
    int rc = 0;
    sink(ud, "{", 1);
    for (size_t i = 0; i < node->n && rc == 0; i++) {
        if (i > 0)
            sink(ud, ",", 1);
        put_string(sink, ud, refs[i].key->text, refs[i].key->len);
        sink(ud, ":", 1);
        rc = saga__canonical_write(saga__node_value(node, refs[i].pair), sink, ud);
    }
    sink(ud, "}", 1);
    free(refs);
    return rc;
}

static void sha_sink(void *ud, const char *data, size_t len)
{
    saga__sha256_update(ud, data, len);
}

int saga__canonical_hash(const saga__node_t *root, char hex[65])
{
    saga__sha256_t sha;
    uint8_t digest[SAGA__SHA256_DIGEST];
    saga__sha256_init(&sha);
    if (saga__canonical_write(root, sha_sink, &sha) != 0)
        return -ENOMEM;
    saga__sha256_final(&sha, digest);
    saga__sha256_hex(digest, hex);
    return 0;
}

typedef struct text_s {
    char *p;
    size_t len, cap;
    bool failed;
} text_t;

static void text_sink(void *ud, const char *data, size_t len)
{
    text_t *t = ud;
    if (t->failed)
        return;
    if (t->cap - t->len < len + 1) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap - t->len < len + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, data, len);
    t->len += len;
    t->p[t->len] = '\0';
}

char *saga__canonical_text(const saga__node_t *root)
{
    text_t t = {NULL, 0, 0, false};
    if (saga__canonical_write(root, text_sink, &t) != 0 || t.failed || t.p == NULL) {
        free(t.p);
        return NULL;
    }
    return t.p;
}
