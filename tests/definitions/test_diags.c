/*
 * test_diags.c -- the diagnostics list and how it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "def_testing.h"
#include "diags.h"

static char *print(const saga_diags_t *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    saga_diags_print(d, f);
    fclose(f);
    return buf;
}

Test(diags, prints_file_line_column_sorted_and_stable)
{
    saga_diags_t d;
    saga_diags_init(&d);
    cr_assert_eq(saga_diags_add(&d, "b.yaml", 1, 1, "in b"), 0);
    cr_assert_eq(saga_diags_add(&d, "a.yaml", 3, 5, "third %d", 3), 0);
    cr_assert_eq(saga_diags_add(&d, "a.yaml", 3, 2, "second"), 0);
    cr_assert_eq(saga_diags_add(&d, "a.yaml", 0, 0, "no position"), 0);
    cr_assert_eq(saga_diags_add(&d, "a.yaml", 3, 5, "third again"), 0);
    cr_assert_eq(d.count, 5);
    char *out = print(&d);
    cr_assert_str_eq(out,
                     "a.yaml: error: no position\n"
                     "a.yaml:3:2: error: second\n"
                     "a.yaml:3:5: error: third 3\n"
                     "a.yaml:3:5: error: third again\n"
                     "b.yaml:1:1: error: in b\n");
    free(out);
    saga_diags_close(&d);
    cr_assert_eq(d.count, 0);
    cr_assert_null(d.items);
}

Test(diags, close_accepts_an_empty_list_and_allows_reuse)
{
    saga_diags_t d;
    saga_diags_init(&d);
    saga_diags_close(&d);
    saga_diags_init(&d);
    cr_assert_eq(saga_diags_add(&d, "x", 1, 2, "m"), 0);
    saga_diags_close(&d);
}

Test(diags, loading_appends_to_an_existing_list)
{
    saga_diags_t d;
    saga_diags_init(&d);
    saga_diags_add(&d, "earlier.yaml", 1, 1, "kept");
    const char *y = "saga: 1x\n";
    saga_def_t *def = saga_def_load_buffer("later.yaml", y, strlen(y), &d);
    cr_assert_null(def);
    cr_assert_gt(d.count, 1);
    cr_assert_str_eq(d.items[0].message, "kept");
    cr_assert_str_eq(d.items[1].file, "later.yaml");
    saga_diags_close(&d);
}

Test(diags, a_valid_load_after_errors_elsewhere_still_succeeds)
{
    saga_diags_t d;
    saga_diags_init(&d);
    saga_diags_add(&d, "other.yaml", 1, 1, "unrelated");
    const char *y = "saga: ok\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                    "    compensation: none\n";
    saga_def_t *def = saga_def_load_buffer("ok.yaml", y, strlen(y), &d);
    cr_assert_not_null(def);
    cr_assert_eq(d.count, 1);
    saga_def_free(def);
    saga_diags_close(&d);
}

Test(diags, every_error_is_one_line)
{
    /* User text with line breaks is escaped in messages. */
    const char *y = "saga: x\n\"bad\\nkey\": 1\nsteps: []\n";
    saga_diags_t d;
    saga_def_t *def = load_diags(y, &d);
    cr_assert_null(def);
    for (size_t i = 0; i < d.count; i++)
        cr_assert_null(strchr(d.items[i].message, '\n'), "'%s'", d.items[i].message);
    cr_assert(strstr(d.items[0].message, "bad\\nkey") != NULL);
    saga_diags_close(&d);
}

Test(diags, long_user_text_is_shortened_in_messages)
{
    char y[600];
    strcpy(y, "saga: x\nsteps: []\n");
    size_t o = strlen(y);
    memset(y + o, 'k', 400);
    strcpy(y + o + 400, ": 1\n");
    saga_diags_t d;
    saga_def_t *def = load_diags(y, &d);
    cr_assert_null(def);
    int found = 0;
    for (size_t i = 0; i < d.count; i++)
        if (strstr(d.items[i].message, "unknown key") != NULL) {
            found = 1;
            cr_assert_lt(strlen(d.items[i].message), 300);
            cr_assert(strstr(d.items[i].message, "kkk...'") != NULL);
        }
    cr_assert(found);
    saga_diags_close(&d);
}
