/*
 * test_yaml_tree.c -- the YAML tree builder: positions, refused constructs,
 * limits on untrusted input.
 *
 * The tests on hostile inputs (deep nesting, aliases, huge mappings) would
 * hang or exhaust memory if a limit were missing; CTest's timeout catches a
 * hang. They carry no Criterion `.timeout`: in Criterion 2.4.1 that leaks a
 * runner allocation under ASan when tests run in parallel.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "def_testing.h"
#include "diags.h"
#include "yaml_tree.h"

/* Parses `yaml` into a tree; the reporter collects into `d`. */
static saga__node_t *parse(const char *yaml, size_t len, saga_diags_t *d,
                           saga__report_t *rep)
{
    saga_diags_init(d);
    saga__report_init(rep, d, "t.yaml");
    return saga__yaml_parse(yaml, len, rep);
}

Test(yaml_tree, positions_are_one_based)
{
    const char *y = "top:\n  list: [1, {k: v}]\n  'q': |\n    text\n";
    saga_diags_t d;
    saga__report_t rep;
    saga__node_t *root = parse(y, strlen(y), &d, &rep);
    cr_assert_not_null(root);
    cr_assert_eq(rep.errors, 0);
    cr_assert_eq(root->kind, SAGA__NODE_MAPPING);
    cr_assert_eq(root->pos.line, 1);
    cr_assert_eq(root->pos.column, 1);

    const saga__node_t *top = saga__node_get(root, "top");
    cr_assert_eq(top->kind, SAGA__NODE_MAPPING);
    cr_assert_eq(top->pos.line, 2);
    cr_assert_eq(top->pos.column, 3);
    cr_assert_eq(saga__node_key(top, 0)->pos.line, 2);
    cr_assert_eq(saga__node_key(top, 0)->pos.column, 3);

    const saga__node_t *list = saga__node_get(top, "list");
    cr_assert_eq(list->kind, SAGA__NODE_SEQUENCE);
    cr_assert_eq(list->pos.column, 9);
    cr_assert_eq(list->n, 2);
    cr_assert_eq(list->items[0]->pos.column, 10);
    cr_assert(json_is_integer(list->items[0]->value));
    const saga__node_t *inner = list->items[1];
    cr_assert_eq(inner->kind, SAGA__NODE_MAPPING);
    cr_assert_eq(inner->pos.column, 13);
    const saga__node_t *v = saga__node_get(inner, "k");
    cr_assert_eq(v->pos.line, 2);
    cr_assert_eq(v->pos.column, 17);
    cr_assert_str_eq(json_string_value(v->value), "v");

    const saga__node_t *q = saga__node_get(top, "q");
    cr_assert_eq(q->pos.line, 3);
    cr_assert_eq(q->pos.column, 8);
    cr_assert_str_eq(json_string_value(q->value), "text\n");
    cr_assert_not(q->plain);

    saga__node_free(root);
    saga_diags_close(&d);
}

Test(yaml_tree, keys_keep_their_text_and_have_no_value)
{
    const char *y = "1: a\ntrue: b\n";
    saga_diags_t d;
    saga__report_t rep;
    saga__node_t *root = parse(y, strlen(y), &d, &rep);
    cr_assert_not_null(root);
    cr_assert_str_eq(saga__node_key(root, 0)->text, "1");
    cr_assert_null(saga__node_key(root, 0)->value);
    cr_assert_str_eq(saga__node_key(root, 1)->text, "true");
    saga__node_free(root);
    saga_diags_close(&d);
}

Test(yaml_tree, depth_64_is_accepted)
{
    char y[200];
    memset(y, '[', 64);
    memset(y + 64, ']', 64);
    y[128] = '\0';
    saga_diags_t d;
    saga__report_t rep;
    saga__node_t *root = parse(y, strlen(y), &d, &rep);
    cr_assert_not_null(root);
    cr_assert_eq(rep.errors, 0);
    saga__node_free(root);
    saga_diags_close(&d);
}

Test(yaml_tree, depth_65_is_refused)
{
    char y[200];
    memset(y, '[', 65);
    memset(y + 65, ']', 65);
    y[130] = '\0';
    expect_error(y, 1, 65, "nesting is deeper than 64 levels");
}

Test(yaml_tree, very_deep_nesting_is_refused_quickly)
{
    size_t n = 500000;
    char *y = malloc(n + 1);
    cr_assert_not_null(y);
    memset(y, '[', n);
    y[n] = '\0';
    expect_error(y, 1, 65, "nesting is deeper than 64 levels");
    memset(y, ' ', n);
    for (size_t i = 0; i < 200; i++) /* block nesting: "- - - - ..." */
        y[2 * i] = '-';
    expect_error(y, 1, 129, "nesting is deeper than 64 levels");
    free(y);
}

Test(yaml_tree, anchors_are_refused)
{
    expect_error("saga: x\nsteps: &s []\n", 2, 8, "YAML anchors are not allowed (found '&s')");
}

Test(yaml_tree, aliases_are_refused)
{
    expect_error("a: &x 1\nb: *x\n", 2, 4, "YAML aliases are not allowed (found '*x')");
}

Test(yaml_tree, self_referencing_alias_is_refused)
{
    expect_error("a: &x [*x]\n", 1, 8, "YAML aliases are not allowed");
}

Test(yaml_tree, billion_laughs_is_refused)
{
    const char *y = "a: &a [x, x, x, x, x, x, x, x, x]\n"
                    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
    expect_error(y, 2, 8, "YAML aliases are not allowed");
}

Test(yaml_tree, tags_are_refused)
{
    expect_error("saga: !!str x\nsteps: []\n", 1, 7, "YAML tags are not allowed");
    expect_error("saga: x\nsteps: !custom []\n", 2, 8, "YAML tags are not allowed (found '!custom')");
}

Test(yaml_tree, two_documents_are_refused)
{
    expect_error("a: 1\n---\nb: 2\n", 2, 1, "more than one YAML document");
    expect_error("--- a\n--- b\n", 2, 1, "more than one YAML document");
}

Test(yaml_tree, one_document_with_markers_is_fine)
{
    const char *y = "%YAML 1.2\n---\na: 1\n...\n";
    saga_diags_t d;
    saga__report_t rep;
    saga__node_t *root = parse(y, strlen(y), &d, &rep);
    cr_assert_not_null(root);
    cr_assert_eq(rep.errors, 0);
    saga__node_free(root);
    saga_diags_close(&d);
}

Test(yaml_tree, empty_text_is_refused_without_position)
{
    expect_error("", 0, 0, "holds no YAML document");
    expect_error("# only a comment\n", 0, 0, "holds no YAML document");
}

Test(yaml_tree, duplicate_keys_are_reported_at_the_repeat)
{
    expect_error("saga: a\nsteps: []\nsaga: b\n", 3, 1,
                 "duplicate key 'saga' (first at line 1, column 1)");
    expect_error("x: {a: 1, b: 2, a: 3}\n", 1, 17, "duplicate key 'a' (first at line 1, column 5)");
}

Test(yaml_tree, duplicate_keys_keep_the_first_value)
{
    const char *y = "a: 1\nb: 2\na: 3\na: 4\n";
    saga_diags_t d;
    saga__report_t rep;
    saga__node_t *root = parse(y, strlen(y), &d, &rep);
    cr_assert_not_null(root);
    cr_assert_eq(rep.errors, 2);
    cr_assert_eq(root->n, 2);
    cr_assert_eq(json_integer_value(saga__node_get(root, "a")->value), 1);
    cr_assert_eq(d.items[0].line, 3);
    cr_assert_eq(d.items[1].line, 4);
    saga__node_free(root);
    saga_diags_close(&d);
}

Test(yaml_tree, keys_that_differ_only_in_quoting_are_duplicates)
{
    expect_error("a: 1\n\"a\": 2\n", 2, 1, "duplicate key 'a'");
}

Test(yaml_tree, many_duplicate_keys_stay_fast_and_capped)
{
    size_t n = 200000;
    char *y = malloc(n * 5 + 1);
    cr_assert_not_null(y);
    for (size_t i = 0; i < n; i++)
        memcpy(y + 5 * i, "k: 1\n", 5);
    y[5 * n] = '\0';
    saga_diags_t d;
    saga_def_t *def = load_diags(y, &d);
    cr_assert_null(def);
    cr_assert_eq(d.count, SAGA__MAX_ERRORS + 1);
    cr_assert(strstr(d.items[d.count - 1].message, "too many errors") != NULL);
    cr_assert_eq(d.items[d.count - 1].line, 0);
    saga_diags_close(&d);
    free(y);
}

Test(yaml_tree, non_scalar_keys_are_refused)
{
    expect_error("? [a, b]\n: 1\n", 1, 3, "mapping keys must be scalars, found a sequence");
    expect_error("{? {a: 1} : 2}\n", 1, 4, "mapping keys must be scalars, found a mapping");
}

Test(yaml_tree, syntax_errors_carry_their_position)
{
    expect_error("saga: x\nsteps: a: b\n", 2, 9, "YAML syntax error: mapping values are not allowed");
    expect_error("saga: [1, 2\n", 2, 1, "YAML syntax error: did not find expected ',' or ']'");
    expect_error("saga: \"open\n", 2, 1, "YAML syntax error: found unexpected end of stream");
}

Test(yaml_tree, invalid_utf8_is_refused_with_position)
{
    expect_error("saga: x\nsteps: \xff\n", 2, 8, "invalid input: invalid leading UTF-8 octet");
}

Test(yaml_tree, control_characters_are_refused)
{
    const char y[] = "saga: x\x01y\n";
    expect_error(y, 1, 8, "invalid input: control characters are not allowed");
}

Test(yaml_tree, nul_in_a_string_is_refused)
{
    expect_error("saga: \"a\\0b\"\nsteps: []\n", 1, 7, "NUL characters are not allowed");
}

Test(yaml_tree, unresolvable_scalars_are_reported_once)
{
    /* '.inf' fails resolution; the later type check must not add a second
     * error about the stand-in value. */
    const char *y = "saga: x\n"
                    "defaults:\n"
                    "  retry: {multiplier: .inf}\n"
                    "steps:\n"
                    "  - name: a\n"
                    "    action: {handler: demo.noop}\n"
                    "    compensation: none\n";
    expect_error(y, 3, 23, "'.inf' cannot be represented in JSON");
    expect_error_count(y, 1);
}

Test(yaml_tree, a_buffer_over_one_mebibyte_is_refused_unparsed)
{
    size_t n = SAGA_DEF_MAX_BYTES + 1;
    char *y = malloc(n);
    cr_assert_not_null(y);
    memset(y, '[', n); /* would be a nesting error if it were parsed */
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer("big.yaml", y, n, &d);
    cr_assert_null(def);
    cr_assert_eq(d.count, 1);
    cr_assert_eq(d.items[0].line, 0);
    cr_assert(strstr(d.items[0].message, "the limit is 1048576") != NULL);
    saga_diags_close(&d);
    free(y);
}

Test(yaml_tree, exactly_one_mebibyte_is_accepted)
{
    const char *head = "saga: big\n"
                       "steps:\n"
                       "  - name: a\n"
                       "    action: {handler: demo.noop}\n"
                       "    compensation: none\n"
                       "#";
    size_t n = SAGA_DEF_MAX_BYTES;
    char *y = malloc(n);
    cr_assert_not_null(y);
    memset(y, 'x', n);
    memcpy(y, head, strlen(head));
    y[n - 1] = '\n';
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer("big.yaml", y, n, &d);
    cr_assert_not_null(def);
    cr_assert_eq(def->text_len, n);
    saga_def_free(def);
    saga_diags_close(&d);
    free(y);
}

Test(yaml_tree, an_error_inside_an_open_complex_key_frees_cleanly)
{
    /* Found by the fuzzer: the open mapping used as a key was freed twice
     * when the parse failed inside it (the ASan build catches a repeat). */
    expect_error("top:\n  ? k: 1\n    j: ]\n", 3, 8, "YAML syntax error");
    expect_error("? [a, {b: ]\n", 1, 11, "YAML syntax error");
}
