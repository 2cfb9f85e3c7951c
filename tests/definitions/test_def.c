/*
 * test_def.c -- loading from files and buffers (definitions/src/def.c);
 * the queries of a built model are in test_query.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "def_testing.h"

static const char *VALID =
    "saga: s\n"
    "input:\n"
    "  required: [order_id, amount]\n"
    "steps:\n"
    "  - name: a\n"
    "    action: {handler: demo.noop}\n"
    "    compensation: none\n";

/* Writes `len` bytes of `text` to a new temporary file; returns its path. */
static char *temp_file(const char *text, size_t len)
{
    char *path = strdup("/tmp/saga-def-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        cr_assert_gt(w, 0);
        off += (size_t)w;
    }
    close(fd);
    return path;
}

Test(def, load_file_reads_and_names_the_file)
{
    char *path = temp_file(VALID, strlen(VALID));
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_file(path, &d);
    cr_assert_not_null(def);
    cr_assert_str_eq(def->source, path);
    cr_assert_str_eq(def->text, VALID);
    char buf_hash[65];
    saga_def_t *mem = load_ok(VALID);
    strcpy(buf_hash, mem->hash);
    saga_def_free(mem);
    cr_assert_str_eq(def->hash, buf_hash);
    saga_def_free(def);
    saga_diags_close(&d);
    unlink(path);
    free(path);
}

Test(def, load_file_errors_name_the_file)
{
    const char *bad = "saga: s\nsteps: []\n";
    char *path = temp_file(bad, strlen(bad));
    saga_diags_t d;
    saga_diags_init(&d);
    cr_assert_null(saga_def_load_file(path, &d));
    cr_assert_eq(d.count, 1);
    cr_assert_str_eq(d.items[0].file, path);
    cr_assert_eq(d.items[0].line, 2);
    cr_assert_eq(d.items[0].column, 8);
    saga_diags_close(&d);
    unlink(path);
    free(path);
}

Test(def, a_missing_file_is_an_error_without_position)
{
    saga_diags_t d;
    saga_diags_init(&d);
    cr_assert_null(saga_def_load_file("/nonexistent/saga.yaml", &d));
    cr_assert_eq(d.count, 1);
    cr_assert_eq(d.items[0].line, 0);
    cr_assert_str_eq(d.items[0].message, "cannot open: No such file or directory");
    saga_diags_close(&d);
}

Test(def, a_directory_is_an_error)
{
    saga_diags_t d;
    saga_diags_init(&d);
    cr_assert_null(saga_def_load_file("/tmp", &d));
    cr_assert_eq(d.count, 1);
    cr_assert(strstr(d.items[0].message, "Is a directory") != NULL);
    saga_diags_close(&d);
}

Test(def, a_file_over_one_mebibyte_is_refused_by_its_size)
{
    size_t n = SAGA_DEF_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    char *path = temp_file(big, n);
    free(big);
    saga_diags_t d;
    saga_diags_init(&d);
    cr_assert_null(saga_def_load_file(path, &d));
    cr_assert_eq(d.count, 1);
    cr_assert_eq(d.items[0].line, 0);
    cr_assert_str_eq(d.items[0].message,
                     "the file is 1048577 bytes; the limit is 1048576 (1 MiB)");
    saga_diags_close(&d);
    unlink(path);
    free(path);
}

Test(def, free_accepts_null)
{
    saga_def_free(NULL);
}

Test(def, an_empty_or_null_buffer_is_an_empty_file)
{
    saga_diags_t d;
    saga_diags_init(&d);
    cr_assert_null(saga_def_load_buffer("none", NULL, 0, &d));
    cr_assert_null(saga_def_load_buffer(NULL, "", 0, &d));
    cr_assert_eq(d.count, 2);
    cr_assert_str_eq(d.items[0].file, "none");
    cr_assert_str_eq(d.items[1].file, "<definition>");
    cr_assert(strstr(d.items[1].message, "holds no YAML document") != NULL);
    saga_diags_close(&d);
}
