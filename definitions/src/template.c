/*
 * template.c -- `with` values with ${...} expressions: compile at load,
 * render per call.
 */
#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "message.h"

typedef enum tnode_kind_e {
    TNODE_CONST = 0,   /* a value without expressions */
    TNODE_EXPR = 1,    /* a string that is exactly one expression */
    TNODE_CONCAT = 2,  /* a string mixing text and expressions */
    TNODE_ARRAY = 3,
    TNODE_OBJECT = 4
} tnode_kind_t;

/* One piece of a CONCAT string: literal text, or an expression. */
typedef struct part_s {
    char *lit;
    size_t lit_len;
    saga__expr_t *expr;
} part_t;

typedef struct tnode_s tnode_t;
struct tnode_s {
    tnode_kind_t kind;
    json_t *value;         /* CONST */
    saga__expr_t *expr;    /* EXPR */
    part_t *parts;         /* CONCAT */
    size_t n_parts;
    tnode_t **children;    /* ARRAY, OBJECT */
    char **keys;           /* OBJECT */
    size_t n;
};

struct saga_template_s {
    tnode_t *root;
    size_t self;
    bool compensation;
    char *constant;        /* compact JSON text when root is CONST */
    size_t constant_len;
};

static void tnode_free(tnode_t *n)
{
    if (n == NULL)
        return;
    json_decref(n->value);
    saga__expr_free(n->expr);
    for (size_t i = 0; i < n->n_parts; i++) {
        free(n->parts[i].lit);
        saga__expr_free(n->parts[i].expr);
    }
    free(n->parts);
    for (size_t i = 0; i < n->n; i++) {
        tnode_free(n->children[i]);
        if (n->keys != NULL)
            free(n->keys[i]);
    }
    free(n->children);
    free(n->keys);
    free(n);
}

void saga__template_free(saga_template_t *t)
{
    if (t == NULL)
        return;
    tnode_free(t->root);
    free(t->constant);
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Compiling                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct compiler_s {
    const saga__tpl_scope_t *scope;
    saga__report_t *rep;
    bool failed;            /* an expression was reported */
    bool oom;
} compiler_t;

/* Checks what an expression may reference; reports at `pos`. */
static void check_ref(compiler_t *c, saga__expr_t *e, saga_pos_t pos)
{
    if (e->root != SAGA__ROOT_STEP)
        return;
    const saga__tpl_scope_t *s = c->scope;
    const saga_def_t *def = s->def;
    char q[SAGA__QUOTE_SIZE];
    const saga_step_def_t *target = saga_def_find_step(def, e->step);
    if (target == NULL) {
        const char *near = NULL;
        if (s->names != NULL && saga__report_wants_hints(c->rep))
            near = saga__suggest(e->step, strlen(e->step), s->names);
        saga__report(c->rep, pos, "'%s' refers to unknown step '%s'%s%s%s",
                     saga__quote(q, e->text, strlen(e->text)), e->step,
                     near ? " (did you mean '" : "", near ? near : "",
                     near ? "'?)" : "");
        c->failed = true;
        return;
    }
    e->step_index = target->index;
    if (!s->check_order || s->any_step)
        return;
    if (s->compensation && target->index == s->self)
        return;
    if (saga_def_is_ancestor(def, target->index, s->self))
        return;
    const char *self = def->steps[s->self].name;
    if (target->index == s->self)
        saga__report(c->rep, pos,
                     "'%s': an action cannot use its own step's output "
                     "(only its compensation can)",
                     saga__quote(q, e->text, strlen(e->text)));
    else
        saga__report(c->rep, pos,
                     "'%s': step '%s' is not guaranteed to finish before "
                     "step '%s' (list it in the 'after' of '%s', directly or "
                     "through another step)",
                     saga__quote(q, e->text, strlen(e->text)), e->step,
                     self ? self : "?", self ? self : "?");
    c->failed = true;
}

static tnode_t *tnode_new(tnode_kind_t kind)
{
    tnode_t *n = calloc(1, sizeof(*n));
    if (n != NULL)
        n->kind = kind;
    return n;
}

static tnode_t *tnode_const(json_t *value)
{
    tnode_t *n = tnode_new(TNODE_CONST);
    if (n == NULL) {
        json_decref(value);
        return NULL;
    }
    n->value = value;
    return n;
}

/* Appends one part to a CONCAT node; owns `lit` and `expr` either way. */
static int add_part(tnode_t *n, size_t *cap, char *lit, size_t lit_len,
                    saga__expr_t *expr)
{
    if (n->n_parts == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        part_t *p = realloc(n->parts, ncap * sizeof(*p));
        if (p == NULL) {
            free(lit);
            saga__expr_free(expr);
            return -1;
        }
        n->parts = p;
        *cap = ncap;
    }
    n->parts[n->n_parts].lit = lit;
    n->parts[n->n_parts].lit_len = lit_len;
    n->parts[n->n_parts].expr = expr;
    n->n_parts++;
    return 0;
}

/* Compiles one string. Returns the node, or NULL on a reported error or on
 * memory failure (c->oom). */
static tnode_t *compile_string(compiler_t *c, const saga__node_t *node)
{
    const char *s = node->text;
    size_t len = node->len;
    if (memchr(s, '$', len) == NULL)
        return tnode_const(json_incref(node->value));

    tnode_t *n = tnode_new(TNODE_CONCAT);
    char *buf = malloc(len + 1);   /* pending literal text, unescaped */
    if (n == NULL || buf == NULL)
        goto oom;
    size_t cap = 0, blen = 0, n_expr = 0;
    bool bad = false;
    size_t i = 0;
    while (i < len) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            buf[blen++] = '$';      /* "$${" is a literal "${" */
            buf[blen++] = '{';
            i += 3;
            continue;
        }
        if (!(s[i] == '$' && i + 1 < len && s[i + 1] == '{')) {
            buf[blen++] = s[i++];
            continue;
        }
        const char *close = memchr(s + i, '}', len - i);
        char err[512], q[SAGA__QUOTE_SIZE];
        if (close == NULL) {
            saga__report(c->rep, node->pos, "bad expression '%s': no closing '}'",
                         saga__quote(q, s + i, len - i));
            bad = true;
            break;
        }
        size_t elen = (size_t)(close - (s + i)) + 1;
        saga__expr_t *e = saga__expr_parse(s + i, elen, err, sizeof(err));
        i += elen;
        if (e == NULL) {
            saga__report(c->rep, node->pos, "%s", err);
            bad = true;
            continue;
        }
        check_ref(c, e, node->pos);
        char *lit = NULL;
        if (blen > 0 && (lit = malloc(blen)) == NULL) {
            saga__expr_free(e);
            goto oom;
        }
        if (blen > 0)
            memcpy(lit, buf, blen);
        if (add_part(n, &cap, lit, blen, e) != 0)
            goto oom;
        blen = 0;
        n_expr++;
    }
    if (bad) {
        c->failed = true;
        free(buf);
        tnode_free(n);
        return NULL;
    }

    if (n_expr == 0) {
        /* Only escapes: a constant string. */
        json_t *v = json_stringn(buf, blen);
        free(buf);
        tnode_free(n);
        if (v == NULL)
            c->oom = true;
        return v ? tnode_const(v) : NULL;
    }
    if (n_expr == 1 && blen == 0 && n->parts[0].lit_len == 0) {
        /* Exactly one expression: typed. */
        n->kind = TNODE_EXPR;
        n->expr = n->parts[0].expr;
        free(n->parts);
        n->parts = NULL;
        n->n_parts = 0;
        free(buf);
        return n;
    }
    if (blen > 0) {
        char *lit = malloc(blen);
        if (lit == NULL)
            goto oom;
        memcpy(lit, buf, blen);
        if (add_part(n, &cap, lit, blen, NULL) != 0)
            goto oom;
    }
    free(buf);
    return n;

oom:
    c->oom = true;
    free(buf);
    tnode_free(n);
    return NULL;
}

static tnode_t *compile_node(compiler_t *c, const saga__node_t *node);

/* Compiles a sequence or mapping; folds it into a constant when every child
 * is one. */
static tnode_t *compile_collection(compiler_t *c, const saga__node_t *node)
{
    bool object = node->kind == SAGA__NODE_MAPPING;
    tnode_t *n = tnode_new(object ? TNODE_OBJECT : TNODE_ARRAY);
    if (n == NULL)
        goto oom;
    if (node->n > 0) {
        n->children = calloc(node->n, sizeof(*n->children));
        if (object)
            n->keys = calloc(node->n, sizeof(*n->keys));
        if (n->children == NULL || (object && n->keys == NULL))
            goto oom;
    }
    bool all_const = true, any_null = false;
    for (size_t i = 0; i < node->n; i++) {
        const saga__node_t *child = object ? saga__node_value(node, i) : node->items[i];
        n->children[i] = compile_node(c, child);
        n->n = i + 1;
        if (object && (n->keys[i] = strdup(saga__node_key(node, i)->text)) == NULL)
            goto oom;
        if (c->oom)
            goto oom;
        if (n->children[i] == NULL)
            any_null = true;
        else if (n->children[i]->kind != TNODE_CONST)
            all_const = false;
    }
    if (any_null) {
        tnode_free(n);
        return NULL;
    }
    if (!all_const)
        return n;

    json_t *v = object ? json_object() : json_array();
    if (v == NULL)
        goto oom;
    for (size_t i = 0; i < n->n; i++) {
        int rc = object ? json_object_set(v, n->keys[i], n->children[i]->value)
                        : json_array_append(v, n->children[i]->value);
        if (rc != 0) {
            json_decref(v);
            goto oom;
        }
    }
    tnode_free(n);
    return tnode_const(v);

oom:
    c->oom = true;
    tnode_free(n);
    return NULL;
}

static tnode_t *compile_node(compiler_t *c, const saga__node_t *node)
{
    if (node->kind != SAGA__NODE_SCALAR)
        return compile_collection(c, node);
    if (json_is_string(node->value))
        return compile_string(c, node);
    tnode_t *n = tnode_const(json_incref(node->value));
    if (n == NULL)
        c->oom = true;
    return n;
}

saga_template_t *saga__template_compile(const saga__node_t *with,
                                        const saga__tpl_scope_t *scope,
                                        saga__report_t *rep)
{
    compiler_t c = {scope, rep, false, false};
    saga_template_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        saga__report_oom(rep);
        return NULL;
    }
    t->self = scope->self;
    t->compensation = scope->compensation;
    t->root = with ? compile_node(&c, with) : tnode_const(json_null());
    if (t->root == NULL || c.failed || c.oom)
        goto fail;
    if (t->root->kind == TNODE_CONST) {
        t->constant = json_dumps(t->root->value, JSON_COMPACT | JSON_ENCODE_ANY);
        if (t->constant == NULL) {
            c.oom = true;
            goto fail;
        }
        t->constant_len = strlen(t->constant);
    }
    return t;

fail:
    if (c.oom)
        saga__report_oom(rep);
    saga__template_free(t);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */
/* ------------------------------------------------------------------------ */

bool saga_template_is_constant(const saga_template_t *t)
{
    return t->constant != NULL;
}

const char *saga_template_constant(const saga_template_t *t, size_t *len)
{
    if (len != NULL)
        *len = t->constant ? t->constant_len : 0;
    return t->constant;
}

/* Evaluates one expression of the template: a compensation's reference to
 * its own step's output that cannot be resolved is null, not an error. */
static json_t *eval(const saga_template_t *t, const saga__expr_t *e,
                    const saga_render_ctx_t *ctx, char *err, size_t errlen)
{
    json_t *v = saga__expr_eval(e, ctx, err, errlen);
    if (v == NULL && t->compensation && e->root == SAGA__ROOT_STEP &&
        e->step_index == t->self)
        v = json_null();
    return v;
}

typedef struct strbuf_s {
    char *p;
    size_t len, cap;
} strbuf_t;

static int sb_add(strbuf_t *b, const char *s, size_t n)
{
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static json_t *render_concat(const saga_template_t *t, const tnode_t *n,
                             const saga_render_ctx_t *ctx, char *err,
                             size_t errlen)
{
    strbuf_t b = {NULL, 0, 0};
    for (size_t i = 0; i < n->n_parts; i++) {
        const part_t *p = &n->parts[i];
        if (p->lit_len > 0 && sb_add(&b, p->lit, p->lit_len) != 0)
            goto oom;
        if (p->expr == NULL)
            continue;
        json_t *v = eval(t, p->expr, ctx, err, errlen);
        if (v == NULL) {
            free(b.p);
            return NULL;
        }
        int rc;
        if (json_is_string(v)) {
            rc = sb_add(&b, json_string_value(v), json_string_length(v));
        } else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            rc = text ? sb_add(&b, text, strlen(text)) : -1;
            free(text);
        }
        json_decref(v);
        if (rc != 0)
            goto oom;
    }
    json_t *out = json_stringn(b.p ? b.p : "", b.len);
    free(b.p);
    if (out == NULL)
        snprintf(err, errlen, "out of memory");
    return out;

oom:
    free(b.p);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

static json_t *render_node(const saga_template_t *t, const tnode_t *n,
                           const saga_render_ctx_t *ctx, char *err,
                           size_t errlen)
{
    json_t *out = NULL;
    switch (n->kind) {
    case TNODE_CONST:
        out = json_deep_copy(n->value);
        break;
    case TNODE_EXPR:
        return eval(t, n->expr, ctx, err, errlen);
    case TNODE_CONCAT:
        return render_concat(t, n, ctx, err, errlen);
    case TNODE_ARRAY:
    case TNODE_OBJECT:
        out = n->kind == TNODE_ARRAY ? json_array() : json_object();
        for (size_t i = 0; out != NULL && i < n->n; i++) {
            json_t *v = render_node(t, n->children[i], ctx, err, errlen);
            if (v == NULL) {
                json_decref(out);
                return NULL;
            }
            int rc = n->kind == TNODE_ARRAY ? json_array_append_new(out, v)
                                            : json_object_set_new(out, n->keys[i], v);
            if (rc != 0) {
                json_decref(out);
                out = NULL;
            }
        }
        break;
    }
    if (out == NULL)
        snprintf(err, errlen, "out of memory");
    return out;
}

json_t *saga_template_render(const saga_template_t *t,
                             const saga_render_ctx_t *ctx, char *err,
                             size_t errlen)
{
    char scratch[1];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    return render_node(t, t->root, ctx, err, errlen);
}
