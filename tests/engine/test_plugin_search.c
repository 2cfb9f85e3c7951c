/*
 * test_plugin_search.c -- where the loader finds a plugin (plugin_loader.h,
 * docs/plugin-abi.md "How the engine finds a plugin"): the --plugins
 * directories in order, then the entries of SAGA_PLUGIN_PATH in order, then
 * the built-in directory next to the executable (the build tree's
 * lib/saga/plugins here) and the install prefix's. The first directory
 * that has NAME.so wins, even when that file cannot be loaded.
 *
 * Copies of the test plugin testkit.so are put in temporary directories;
 * the loaded plugin's path says which one was taken.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <uv.h>

#include "plugin_loader.h"

static char root[PATH_MAX];
static uv_loop_t loop;

static void host_complete(saga_call_t *c, saga_outcome_t o, const char *d, size_t n) {
    (void)c, (void)o, (void)d, (void)n;
}
static void host_retry(saga_call_t *c, uint64_t ms) { (void)c, (void)ms; }
static void host_set(saga_call_t *c, void *d) { (void)c, (void)d; }
static void *host_get(const saga_call_t *c) { (void)c; return NULL; }
static void host_log(saga_log_level_t l, const char *p, const char *fmt, ...) {
    (void)l, (void)p, (void)fmt;
}

static const saga_host_t host = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION, .struct_size = sizeof(saga_host_t),
    .complete = host_complete, .set_retry_after = host_retry,
    .set_call_data = host_set, .call_data = host_get, .log = host_log,
};

static void setup(void) {
    snprintf(root, sizeof(root), "/tmp/saga-plugin-search-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    cr_assert_eq(uv_loop_init(&loop), 0);
    unsetenv("SAGA_PLUGIN_PATH");
}

static void teardown(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

TestSuite(plugin_search, .init = setup, .fini = teardown);

/* A directory `name` under the test's root (created), as an absolute path
 * in a static buffer per call slot. */
static const char *dir(const char *name) {
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", root, name);
    mkdir(b, 0755);
    return b;
}

/* Copies `src` to `dstdir`/`as`. */
static void copy(const char *src, const char *dstdir, const char *as) {
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s/%s'", src, dstdir, as);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static const char *testkit_so(void) {
    static char path[PATH_MAX];
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build, "SAGA_BUILD_DIR is not set (run through ctest)");
    snprintf(path, sizeof(path), "%s/tests/plugins/testkit.so", build);
    return path;
}

/* Puts a working testkit.so into `d`. */
static void put_testkit(const char *d) { copy(testkit_so(), d, "testkit.so"); }

/* Builds a registry: --plugins dirs (NULL-terminated), then the defaults
 * with SAGA_PLUGIN_PATH = env (NULL: unset). */
static saga_plugins_t *registry(const char *env, ...) {
    if (env != NULL)
        cr_assert_eq(setenv("SAGA_PLUGIN_PATH", env, 1), 0);
    else
        unsetenv("SAGA_PLUGIN_PATH");
    saga_plugins_t *p = saga_plugins_new(&host, &loop);
    cr_assert_not_null(p);
    va_list ap;
    va_start(ap, env);
    for (const char *d; (d = va_arg(ap, const char *)) != NULL;)
        cr_assert_eq(saga_plugins_add_dir(p, d), 0);
    va_end(ap);
    cr_assert_eq(saga_plugins_add_default_dirs(p), 0);
    return p;
}

/* Resolves plugin.handler and returns the directory it was loaded from
 * (static), or NULL with the reason in `err`. */
static const char *loaded_from(saga_plugins_t *p, const char *plugin, const char *handler,
                               char *err, size_t errlen) {
    static char where[PATH_MAX];
    saga_loaded_plugin_t *owner = NULL;
    if (saga_plugins_resolve(p, plugin, handler, &owner, err, errlen) == NULL)
        return NULL;
    snprintf(where, sizeof(where), "%s", owner->path);
    char *slash = strrchr(where, '/');
    cr_assert_not_null(slash);
    *slash = '\0';
    return where;
}

static void done(saga_plugins_t *p) {
    saga_plugins_close_all(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    saga_plugins_free(p);
}

Test(plugin_search, plugins_dirs_come_first_in_their_order) {
    const char *a = dir("a"), *b = dir("b"), *e = dir("env");
    put_testkit(a);
    put_testkit(b);
    put_testkit(e);
    char err[512];
    saga_plugins_t *p = registry(e, a, b, NULL);
    const char *w = loaded_from(p, "testkit", "late", err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    cr_assert_str_eq(w, a);
    done(p);
    p = registry(e, b, a, NULL);
    cr_assert_str_eq(loaded_from(p, "testkit", "late", err, sizeof(err)), b);
    done(p);
}

Test(plugin_search, then_saga_plugin_path_in_its_order) {
    const char *a = dir("a"), *x = dir("x"), *y = dir("y"), *z = dir("z");
    put_testkit(y);
    put_testkit(z);
    char env[4 * PATH_MAX];
    /* Empty entries are skipped; x has no testkit.so: y is next. */
    snprintf(env, sizeof(env), "::%s:%s::%s:", x, y, z);
    char err[512];
    saga_plugins_t *p = registry(env, a, NULL); /* a: a --plugins dir without it */
    cr_assert_str_eq(loaded_from(p, "testkit", "late", err, sizeof(err)), y);
    char want[5 * PATH_MAX];
    snprintf(want, sizeof(want), "%s:%s:%s:%s:", a, x, y, z);
    cr_assert_eq(strncmp(saga_plugins_search_path(p), want, strlen(want)), 0,
                 "search path %s", saga_plugins_search_path(p));
    done(p);
}

Test(plugin_search, a_directory_named_twice_is_searched_at_its_first_place) {
    const char *a = dir("a"), *b = dir("b");
    put_testkit(a);
    put_testkit(b);
    char env[2 * PATH_MAX];
    snprintf(env, sizeof(env), "%s:%s", a, b);
    char err[512];
    saga_plugins_t *p = registry(env, b, NULL); /* --plugins b, env a:b */
    cr_assert_str_eq(loaded_from(p, "testkit", "late", err, sizeof(err)), b);
    char want[3 * PATH_MAX];
    snprintf(want, sizeof(want), "%s:%s:", b, a);
    cr_assert_eq(strncmp(saga_plugins_search_path(p), want, strlen(want)), 0,
                 "search path %s", saga_plugins_search_path(p));
    done(p);
}

/* demo.so is built into the build tree's lib/saga/plugins, the built-in
 * directory of a test executable in build/tests. */
Test(plugin_search, built_ins_come_last) {
    char builtin[PATH_MAX], rel[PATH_MAX + 32];
    snprintf(rel, sizeof(rel), "%s/lib/saga/plugins", getenv("SAGA_BUILD_DIR"));
    cr_assert_not_null(realpath(rel, builtin), "%s", rel);
    char demo[PATH_MAX + 16];
    snprintf(demo, sizeof(demo), "%s/demo.so", builtin);
    char err[512];
    saga_plugins_t *p = registry(NULL, NULL);
    cr_assert_str_eq(loaded_from(p, "demo", "noop", err, sizeof(err)), builtin);
    done(p);
    /* A copy on SAGA_PLUGIN_PATH, or in a --plugins dir, shadows it. */
    const char *e = dir("env"), *a = dir("a");
    copy(demo, e, "demo.so");
    p = registry(e, NULL);
    cr_assert_str_eq(loaded_from(p, "demo", "noop", err, sizeof(err)), e);
    done(p);
    copy(demo, a, "demo.so");
    p = registry(e, a, NULL);
    cr_assert_str_eq(loaded_from(p, "demo", "noop", err, sizeof(err)), a);
    done(p);
}

Test(plugin_search, the_first_file_found_is_used_even_when_it_is_broken) {
    const char *a = dir("a"), *b = dir("b");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/testkit.so", a);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not a shared object\n", f);
    fclose(f);
    put_testkit(b);
    char err[1024];
    saga_plugins_t *p = registry(b, a, NULL);
    cr_assert_null(loaded_from(p, "testkit", "late", err, sizeof(err)),
                   "the broken first file was skipped");
    cr_assert(strstr(err, path) != NULL, "the error names %s: %s", path, err);
    done(p);
}

Test(plugin_search, not_found_names_every_directory_searched) {
    const char *a = dir("a"), *e = dir("env");
    char err[4096];
    saga_plugins_t *p = registry(e, a, NULL);
    cr_assert_null(loaded_from(p, "nosuch", "x", err, sizeof(err)));
    cr_assert(strstr(err, "plugin 'nosuch' not found") != NULL, "%s", err);
    cr_assert(strstr(err, a) != NULL && strstr(err, e) != NULL, "%s", err);
    cr_assert(strstr(err, a) < strstr(err, e), "--plugins dirs listed first: %s", err);
    done(p);
}
