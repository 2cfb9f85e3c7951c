/*
 * def_testing.h -- helpers shared by the definitions test suites: load YAML
 * from a string and assert on the result or on one positioned error.
 */
#ifndef SAGA_TESTS_DEF_TESTING_H
#define SAGA_TESTS_DEF_TESTING_H

#include <stddef.h>

#include <saga/definition.h>

/* Loads `yaml`; fails the test (printing the diagnostics) unless it is
 * valid. The caller frees the result. */
saga_def_t *load_ok(const char *yaml);

/* Loads `yaml`; fails the test unless loading fails with an error at
 * exactly `line`:`column` whose message contains `needle`. */
void expect_error(const char *yaml, unsigned line, unsigned column,
                  const char *needle);

/* Loads `yaml`; fails the test unless loading fails with exactly `count`
 * errors in all. */
void expect_error_count(const char *yaml, size_t count);

/* Loads `yaml` and returns its diagnostics in `d` (initialized here; the
 * caller closes it); returns the definition or NULL. */
saga_def_t *load_diags(const char *yaml, saga_diags_t *d);

/* Creates a render context over `input` (JSON text, or NULL) with the
 * given step outputs (n JSON texts, NULL for no output). The returned
 * context and its values are freed by free_ctx(). */
saga_render_ctx_t *make_ctx(const char *input, const char *const *outputs,
                            size_t n);
void free_ctx(saga_render_ctx_t *ctx, size_t n);

/* Renders `t` and returns it as compact JSON text (sorted keys) that the
 * caller frees, or NULL with the reason in `err`. */
char *render_text(const saga_template_t *t, const saga_render_ctx_t *ctx,
                  char *err, size_t errlen);

#endif /* SAGA_TESTS_DEF_TESTING_H */
