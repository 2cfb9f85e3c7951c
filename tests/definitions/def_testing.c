/*
 * def_testing.c -- helpers shared by the definitions test suites.
 */
#include "def_testing.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

saga_def_t *load_diags(const char *yaml, saga_diags_t *d)
{
    saga_diags_init(d);
    return saga_def_load_buffer("test.yaml", yaml, strlen(yaml), d);
}

/* All diagnostics as one string, for failure messages. */
static char *dump(const saga_diags_t *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return strdup("(cannot print)");
    saga_diags_print(d, f);
    fclose(f);
    return buf;
}

saga_def_t *load_ok(const char *yaml)
{
    saga_diags_t d;
    saga_def_t *def = load_diags(yaml, &d);
    if (def == NULL) {
        char *text = dump(&d);
        cr_assert_fail("expected a valid definition, got:\n%s", text);
    }
    cr_assert_eq(d.count, 0);
    saga_diags_close(&d);
    return def;
}

void expect_error(const char *yaml, unsigned line, unsigned column,
                  const char *needle)
{
    saga_diags_t d;
    saga_def_t *def = load_diags(yaml, &d);
    cr_assert_null(def, "expected the definition to be refused");
    bool found = false;
    for (size_t i = 0; i < d.count && !found; i++)
        found = d.items[i].line == line && d.items[i].column == column &&
                strstr(d.items[i].message, needle) != NULL;
    if (!found) {
        char *text = dump(&d);
        cr_assert_fail("expected an error at %u:%u containing \"%s\", got:\n%s",
                       line, column, needle, text);
    }
    saga_diags_close(&d);
}

void expect_error_count(const char *yaml, size_t count)
{
    saga_diags_t d;
    saga_def_t *def = load_diags(yaml, &d);
    cr_assert_null(def);
    if (d.count != count) {
        char *text = dump(&d);
        cr_assert_fail("expected %zu errors, got %zu:\n%s", count, d.count, text);
    }
    saga_diags_close(&d);
}

saga_render_ctx_t *make_ctx(const char *input, const char *const *outputs,
                            size_t n)
{
    saga_render_ctx_t *ctx = calloc(1, sizeof(*ctx));
    json_t **outs = calloc(n + 1, sizeof(*outs));
    cr_assert_not_null(ctx);
    cr_assert_not_null(outs);
    json_error_t e;
    if (input != NULL) {
        ctx->input = json_loads(input, JSON_DECODE_ANY, &e);
        cr_assert_not_null(ctx->input, "bad test input: %s", e.text);
    }
    for (size_t i = 0; i < n; i++)
        if (outputs[i] != NULL) {
            outs[i] = json_loads(outputs[i], JSON_DECODE_ANY, &e);
            cr_assert_not_null(outs[i], "bad test output: %s", e.text);
        }
    ctx->outputs = (const json_t *const *)outs;
    ctx->saga_id = "saga-123";
    ctx->saga_name = "demo_saga";
    return ctx;
}

void free_ctx(saga_render_ctx_t *ctx, size_t n)
{
    json_t **outs = (json_t **)ctx->outputs;
    for (size_t i = 0; i < n; i++)
        json_decref(outs[i]);
    free(outs);
    json_decref((json_t *)ctx->input);
    free(ctx);
}

char *render_text(const saga_template_t *t, const saga_render_ctx_t *ctx,
                  char *err, size_t errlen)
{
    json_t *v = saga_template_render(t, ctx, err, errlen);
    if (v == NULL)
        return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(v);
    return s;
}
