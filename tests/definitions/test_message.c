/*
 * test_message.c -- pieces of error messages: quoting user text, describing
 * values, edit distance and "did you mean".
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "message.h"

/* The plain full-table distance, to check the banded one against. */
static size_t naive_distance(const char *a, size_t n, const char *b, size_t m)
{
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + (a[i - 1] != b[j - 1]) < best)
                best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

Test(message, edit_distance_examples)
{
    cr_assert_eq(saga__edit_distance("retyr", 5, "retry", 5, 3), 1); /* transposition */
    cr_assert_eq(saga__edit_distance("retry", 5, "retry", 5, 3), 0);
    cr_assert_eq(saga__edit_distance("afer", 4, "after", 5, 3), 1);
    cr_assert_eq(saga__edit_distance("", 0, "abc", 3, 3), 3);
    cr_assert_eq(saga__edit_distance("kitten", 6, "sitting", 7, 5), 3);
    /* Beyond `max` the answer is max + 1. */
    cr_assert_eq(saga__edit_distance("kitten", 6, "sitting", 7, 2), 3);
    cr_assert_eq(saga__edit_distance("abcdef", 6, "uvwxyz", 6, 2), 3);
    cr_assert_eq(saga__edit_distance("a", 1, "abcdefgh", 8, 2), 3);
}

Test(message, banded_edit_distance_matches_the_full_table)
{
    unsigned seed = 12345;
    for (int round = 0; round < 20000; round++) {
        char a[64], b[64];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % 12, m;
        seed = seed * 1103515245u + 12345u;
        m = (seed >> 16) % 12;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            a[i] = (char)('a' + (seed >> 16) % 3);
        }
        for (size_t i = 0; i < m; i++) {
            seed = seed * 1103515245u + 12345u;
            b[i] = (char)('a' + (seed >> 16) % 3);
        }
        size_t want = naive_distance(a, n, b, m);
        for (size_t max = 0; max <= 5; max++) {
            size_t got = saga__edit_distance(a, n, b, m, max);
            cr_assert_eq(got, want <= max ? want : max + 1,
                         "'%.*s' vs '%.*s' max %zu: %zu, want %zu", (int)n, a, (int)m, b,
                         max, got, want);
        }
        cr_assert_eq(saga__edit_distance(a, n, b, m, 64), want);
    }
}

Test(message, long_words_get_no_distance)
{
    char a[70];
    memset(a, 'a', sizeof(a));
    cr_assert_eq(saga__edit_distance(a, 65, "a", 1, 3), SIZE_MAX);
}

Test(message, suggest_picks_a_near_choice_only)
{
    const char *const keys[] = {"name", "action", "compensation", "after", "retry", NULL};
    cr_assert_str_eq(saga__suggest("retyr", 5, keys), "retry");
    cr_assert_str_eq(saga__suggest("compensaton", 11, keys), "compensation");
    cr_assert_str_eq(saga__suggest("nam", 3, keys), "name");
    cr_assert_null(saga__suggest("owner", 5, keys));
    cr_assert_null(saga__suggest("x", 1, keys));  /* rewriting "x" is no typo */
}

Test(message, quote_escapes_and_shortens)
{
    char buf[SAGA__QUOTE_SIZE];
    cr_assert_str_eq(saga__quote(buf, "a\nb\tc\x01", 6), "a\\nb\\tc\\x01");
    char long_text[200];
    memset(long_text, 'x', sizeof(long_text));
    const char *q = saga__quote(buf, long_text, sizeof(long_text));
    cr_assert_eq(strlen(q), 63);
    cr_assert_str_eq(q + 60, "...");
    /* A cut never splits a UTF-8 character: 59 x then a 2-byte e-acute. */
    char utf[100];
    memset(utf, 'x', 59);
    for (int i = 0; i < 10; i++)
        memcpy(utf + 59 + 2 * i, "\xc3\xa9", 2);
    q = saga__quote(buf, utf, 79);
    cr_assert_eq(strlen(q), 61 + 3);
    cr_assert_str_eq(q + 59, "\xc3\xa9...");
    /* Control characters past the limit cannot overflow the buffer. */
    char ctl[200];
    memset(ctl, 1, sizeof(ctl));
    q = saga__quote(buf, ctl, sizeof(ctl));
    cr_assert_lt(strlen(q), SAGA__QUOTE_SIZE);
}
