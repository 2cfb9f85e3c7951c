/*
 * test_hash.c -- the canonical form and the definition hash: what must hash
 * the same and what must not.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "canonical.h"
#include "def_testing.h"
#include "diags.h"
#include "sha256.h"
#include "yaml_tree.h"

static char *canonical(const char *yaml)
{
    saga_diags_t d;
    saga__report_t rep;
    saga_diags_init(&d);
    saga__report_init(&rep, &d, "t");
    saga__node_t *root = saga__yaml_parse(yaml, strlen(yaml), &rep);
    cr_assert_not_null(root);
    cr_assert_eq(rep.errors, 0);
    char *text = saga__canonical_text(root);
    cr_assert_not_null(text);
    saga__node_free(root);
    saga_diags_close(&d);
    return text;
}

static void expect_canonical(const char *yaml, const char *want)
{
    char *got = canonical(yaml);
    cr_assert_str_eq(got, want);
    free(got);
}

/* The hash of a valid definition. */
static void hash_of(const char *yaml, char out[65])
{
    saga_def_t *def = load_ok(yaml);
    strcpy(out, def->hash);
    saga_def_free(def);
}

static const char *BASE =
    "saga: order\n"
    "version: 1\n"
    "steps:\n"
    "  - name: create\n"
    "    action:\n"
    "      handler: demo.echo\n"
    "      with: {id: 7, note: hello, ratio: 1.5}\n"
    "    compensation: none\n";

Test(hash, canonical_form_sorts_keys_and_resolves_scalars)
{
    expect_canonical("b: 1\na: [x, \"1\", 1.0, ~, true, 0x10]\n",
                     "{\"a\":[\"x\",\"1\",1.0,null,true,16],\"b\":1}");
    expect_canonical("z: {y: 1, x: 2}\n", "{\"z\":{\"x\":2,\"y\":1}}");
    expect_canonical("k: \"quote\\\" back\\\\ nl\\n tab\\t bell\\a\"\n",
                     "{\"k\":\"quote\\\" back\\\\ nl\\n tab\\t bell\\u0007\"}");
    expect_canonical("k: é\n", "{\"k\":\"é\"}");
    expect_canonical("[]\n", "[]");
    expect_canonical("{}\n", "{}");
    expect_canonical("k: 1e3\n", "{\"k\":1000.0}");
    expect_canonical("k: 0.1\n", "{\"k\":0.10000000000000001}");
}

Test(hash, keys_sort_bytewise)
{
    expect_canonical("b: 1\nB: 2\n_: 3\naa: 4\na: 5\n",
                     "{\"B\":2,\"_\":3,\"a\":5,\"aa\":4,\"b\":1}");
}

Test(hash, the_hash_is_sha256_of_the_canonical_form)
{
    saga_def_t *def = load_ok(BASE);
    char *text = canonical(BASE);
    saga__sha256_t s;
    uint8_t d[SAGA__SHA256_DIGEST];
    char hex[65];
    saga__sha256_init(&s);
    saga__sha256_update(&s, text, strlen(text));
    saga__sha256_final(&s, d);
    saga__sha256_hex(d, hex);
    cr_assert_str_eq(def->hash, hex);
    cr_assert_eq(strlen(def->hash), 64);
    for (size_t i = 0; i < 64; i++)
        cr_assert(strchr("0123456789abcdef", def->hash[i]) != NULL);
    free(text);
    saga_def_free(def);
}

Test(hash, layout_comments_quoting_and_key_order_do_not_matter)
{
    char base[65], other[65];
    hash_of(BASE, base);

    const char *variants[] = {
        /* comments, blank lines, spacing */
        "# an order saga\n"
        "saga:   order   # name\n"
        "\n"
        "version: 1\n"
        "steps:\n"
        "- name: create\n"
        "  action:\n"
        "    handler:    demo.echo\n"
        "    with:\n"
        "      id: 7\n"
        "      note: hello\n"
        "      ratio: 1.5\n"
        "  compensation: none\n",
        /* quoting of plain strings, key order, flow style */
        "steps: [{compensation: 'none', action: {with: {ratio: 1.5, note: \"hello\", id: 7},"
        " handler: \"demo.echo\"}, name: 'create'}]\n"
        "version: 1\n"
        "\"saga\": order\n",
        /* other spellings of the same numbers */
        "saga: order\nversion: 0x1\nsteps:\n  - name: create\n    action:\n"
        "      handler: demo.echo\n      with: {id: 0o7, note: hello, ratio: 15e-1}\n"
        "    compensation: none\n",
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        hash_of(variants[i], other);
        cr_assert_str_eq(other, base, "variant %zu hashes differently", i);
    }
}

Test(hash, any_change_of_meaning_changes_the_hash)
{
    char base[65], other[65];
    hash_of(BASE, base);
    const char *changes[][2] = {
        {"id: 7", "id: 8"},
        {"id: 7", "id: \"7\""},          /* a string is not a number */
        {"ratio: 1.5", "ratio: 2"},
        {"note: hello", "note: Hello"},
        {"version: 1", "version: 2"},
        {"demo.echo", "demo.noop"},
        {"saga: order", "saga: orders"},
    };
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        char y[1024];
        const char *at = strstr(BASE, changes[i][0]);
        cr_assert_not_null(at);
        size_t pre = (size_t)(at - BASE);
        snprintf(y, sizeof(y), "%.*s%s%s", (int)pre, BASE, changes[i][1],
                 at + strlen(changes[i][0]));
        hash_of(y, other);
        cr_assert_str_neq(other, base, "change %zu ('%s') did not change the hash", i,
                          changes[i][1]);
    }
}

Test(hash, integer_and_real_of_the_same_value_differ)
{
    char a[65], b[65];
    hash_of("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.echo, with: 1}\n"
            "    compensation: none\n", a);
    hash_of("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.echo, with: 1.0}\n"
            "    compensation: none\n", b);
    cr_assert_str_neq(a, b);
}

Test(hash, reloading_the_stored_text_gives_the_same_hash)
{
    saga_def_t *def = load_ok(BASE);
    cr_assert_str_eq(def->text, BASE);
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *again = saga_def_load_buffer(def->source, def->text, def->text_len, &d);
    cr_assert_not_null(again);
    cr_assert_str_eq(again->hash, def->hash);
    saga_def_free(again);
    saga_def_free(def);
    saga_diags_close(&d);
}

Test(hash, the_buffer_need_not_be_nul_terminated)
{
    size_t n = strlen(BASE);
    char *copy = malloc(n + 10);
    memcpy(copy, BASE, n);
    memset(copy + n, '#', 10); /* trailing garbage that must not be read */
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer("x", copy, n, &d);
    cr_assert_not_null(def);
    cr_assert_eq(def->text_len, n);
    cr_assert_eq(def->text[n], '\0');
    cr_assert_str_eq(def->text, BASE);
    char base[65];
    hash_of(BASE, base);
    cr_assert_str_eq(def->hash, base);
    saga_def_free(def);
    saga_diags_close(&d);
    free(copy);
}

Test(hash, mode_pivot_and_retention_change_the_hash)
{
    char base[65], other[65];
    hash_of("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
            "    compensation: none\n", base);
    hash_of("saga: s\nretention: {completed: 1d}\nsteps:\n  - name: a\n"
            "    action: {handler: demo.noop}\n    compensation: none\n", other);
    cr_assert_str_neq(base, other);
    hash_of("saga: s\nsteps:\n  - name: a\n    pivot: true\n"
            "    action: {handler: demo.noop}\n    compensation: none\n", other);
    cr_assert_str_neq(base, other);
    hash_of("saga: s\nmode: saga\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
            "    compensation: none\n", other);
    cr_assert_str_neq(base, other); /* the text differs: written is hashed */
    char tcc[65], tcc2[65];
    hash_of("saga: s\nmode: tcc\nsteps:\n  - name: a\n    try: {handler: demo.noop}\n"
            "    confirm: {handler: demo.noop}\n    cancel: {handler: demo.noop}\n", tcc);
    hash_of("saga: s\nmode: tcc\nsteps:\n  - name: a\n    try: {handler: demo.noop}\n"
            "    confirm: {handler: demo.echo}\n    cancel: {handler: demo.noop}\n", tcc2);
    cr_assert_str_neq(tcc, tcc2);
}
