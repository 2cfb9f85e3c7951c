/*
 * expr.c -- parsing and evaluating ${...} expressions.
 */
#include "expr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "message.h"

static bool is_seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool seg_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

void saga__expr_free(saga__expr_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_segs; i++)
        free(e->segs[i]);
    free(e->segs);
    free(e->step);
    free(e->text);
    free(e);
}

/* A copy of `len` bytes as a C string, or NULL. */
static char *dup_n(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

saga__expr_t *saga__expr_parse(const char *text, size_t len, char *err,
                               size_t errlen)
{
    static const char *const ROOTS[] = {"input", "steps", "saga", NULL};
    char q[SAGA__QUOTE_SIZE];

    /* The caller found "${" and the first "}" after it. */
    const char *body = text + 2;
    size_t blen = len - 3;
    while (blen > 0 && (*body == ' ' || *body == '\t')) {
        body++;
        blen--;
    }
    while (blen > 0 && (body[blen - 1] == ' ' || body[blen - 1] == '\t'))
        blen--;

    /* Split into segments first: the grammar is the same for every root. */
    size_t n = 1;
    for (size_t i = 0; i < blen; i++) {
        if (body[i] == '.')
            n++;
        else if (!is_seg_char(body[i])) {
            snprintf(err, errlen, "bad expression '%s': unexpected character "
                     "'%c' (a path is names and numbers joined by '.')",
                     saga__quote(q, text, len), body[i] >= 0x20 && body[i] < 0x7f ? body[i] : '?');
            return NULL;
        }
    }
    const char **seg = calloc(n, sizeof(*seg));
    size_t *seg_len = calloc(n, sizeof(*seg_len));
    saga__expr_t *e = calloc(1, sizeof(*e));
    if (seg == NULL || seg_len == NULL || e == NULL)
        goto oom;
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= blen; i++) {
        if (i == blen || body[i] == '.') {
            seg[k] = body + start;
            seg_len[k] = i - start;
            if (seg_len[k] == 0) {
                snprintf(err, errlen, "bad expression '%s': %s",
                         saga__quote(q, text, len),
                         blen == 0 ? "it is empty" : "empty path segment");
                goto fail;
            }
            k++;
            start = i + 1;
        }
    }

    size_t first_path = 1;
    if (seg_is(seg[0], seg_len[0], "input")) {
        e->root = SAGA__ROOT_INPUT;
    } else if (seg_is(seg[0], seg_len[0], "steps")) {
        e->root = SAGA__ROOT_STEP;
        if (n < 3 || !seg_is(seg[2], seg_len[2], "output")) {
            snprintf(err, errlen, "bad expression '%s': expected "
                     "'steps.NAME.output' followed by an optional path",
                     saga__quote(q, text, len));
            goto fail;
        }
        if (!saga__is_identifier(seg[1], seg_len[1])) {
            snprintf(err, errlen, "bad expression '%s': '%.*s' is not a step name",
                     saga__quote(q, text, len), (int)(seg_len[1] > 64 ? 64 : seg_len[1]),
                     seg[1]);
            goto fail;
        }
        if ((e->step = dup_n(seg[1], seg_len[1])) == NULL)
            goto oom;
        first_path = 3;
    } else if (seg_is(seg[0], seg_len[0], "saga")) {
        if (n != 2 || !(seg_is(seg[1], seg_len[1], "id") ||
                        seg_is(seg[1], seg_len[1], "name"))) {
            snprintf(err, errlen, "bad expression '%s': expected '${saga.id}' "
                     "or '${saga.name}'", saga__quote(q, text, len));
            goto fail;
        }
        e->root = seg_is(seg[1], seg_len[1], "id") ? SAGA__ROOT_SAGA_ID
                                                   : SAGA__ROOT_SAGA_NAME;
        first_path = 2;
    } else {
        const char *near = saga__suggest(seg[0], seg_len[0], ROOTS);
        char q2[SAGA__QUOTE_SIZE];
        snprintf(err, errlen, "bad expression '%s': unknown root '%s' "
                 "(%s%s%s)", saga__quote(q, text, len),
                 saga__quote(q2, seg[0], seg_len[0]),
                 near ? "did you mean '" : "expected input, steps or saga",
                 near ? near : "", near ? "'?" : "");
        goto fail;
    }

    e->n_segs = n - first_path;
    if (e->n_segs > 0 && (e->segs = calloc(e->n_segs, sizeof(*e->segs))) == NULL)
        goto oom;
    for (size_t i = 0; i < e->n_segs; i++)
        if ((e->segs[i] = dup_n(seg[first_path + i], seg_len[first_path + i])) == NULL)
            goto oom;
    if ((e->text = dup_n(text, len)) == NULL)
        goto oom;
    free(seg);
    free(seg_len);
    return e;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(seg);
    free(seg_len);
    saga__expr_free(e);
    return NULL;
}

/* Parses an all-digit segment as an array index; false when it is not one
 * or is too large to be one. */
static bool seg_index(const char *s, size_t *out)
{
    size_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (size_t)(*s - '0');
    }
    *out = v;
    return true;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

json_t *saga__expr_eval(const saga__expr_t *e, const saga_render_ctx_t *ctx,
                        char *err, size_t errlen)
{
    const json_t *cur = NULL;
    switch (e->root) {
    case SAGA__ROOT_SAGA_ID:
    case SAGA__ROOT_SAGA_NAME: {
        const char *s = e->root == SAGA__ROOT_SAGA_ID ? ctx->saga_id : ctx->saga_name;
        if (s == NULL) {
            snprintf(err, errlen, "%s: no saga %s", e->text,
                     e->root == SAGA__ROOT_SAGA_ID ? "id" : "name");
            return NULL;
        }
        json_t *v = json_string(s);
        if (v == NULL)
            snprintf(err, errlen, "%s: saga %s is not valid UTF-8", e->text,
                     e->root == SAGA__ROOT_SAGA_ID ? "id" : "name");
        return v;
    }
    case SAGA__ROOT_INPUT:
        cur = ctx->input;
        if (cur == NULL) {
            snprintf(err, errlen, "%s: the saga has no input", e->text);
            return NULL;
        }
        break;
    case SAGA__ROOT_STEP:
        cur = ctx->outputs != NULL ? ctx->outputs[e->step_index] : NULL;
        if (cur == NULL) {
            snprintf(err, errlen, "%s: step '%s' has no output", e->text, e->step);
            return NULL;
        }
        break;
    }

    for (size_t i = 0; i < e->n_segs; i++) {
        const char *s = e->segs[i];
        const json_t *next = NULL;
        size_t idx;
        if (json_is_object(cur)) {
            next = json_object_get(cur, s);
            if (next == NULL) {
                snprintf(err, errlen, "%s: no key '%s'", e->text, s);
                return NULL;
            }
        } else if (json_is_array(cur)) {
            if (!seg_index(s, &idx)) {
                snprintf(err, errlen, "%s: '%s' is not an index into an array",
                         e->text, s);
                return NULL;
            }
            next = json_array_get(cur, idx);
            if (next == NULL) {
                snprintf(err, errlen, "%s: no index %s (the array has %zu items)",
                         e->text, s, json_array_size(cur));
                return NULL;
            }
        } else {
            snprintf(err, errlen, "%s: cannot look up '%s' in %s", e->text, s,
                     type_name(cur));
            return NULL;
        }
        cur = next;
    }

    json_t *copy = json_deep_copy(cur);
    if (copy == NULL)
        snprintf(err, errlen, "%s: out of memory", e->text);
    return copy;
}
