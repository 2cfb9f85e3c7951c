/*
 * test_saga_id.c -- saga ids (engine/store/state.c): the ULID format of a
 * generated id, the rules of a valid id, and the order of ids by creation
 * time.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "saga/state.h"

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

Test(saga_id, new_ids_are_26_crockford_base32_characters_and_valid) {
    char a[27], b[27];
    saga_id_new(a);
    saga_id_new(b);
    cr_assert_eq(strlen(a), 26);
    cr_assert_eq(strspn(a, b32), 26, "%s", a);
    cr_assert(saga_id_valid(a));
    cr_assert_str_neq(a, b, "two ids in a row differ");
}

Test(saga_id, make_encodes_the_time_in_the_first_ten_characters) {
    char id[27];
    saga_id_make(0, 0, 0, id);
    cr_assert_str_eq(id, "00000000000000000000000000");
    saga_id_make(1, 0, 0, id);
    cr_assert_str_eq(id, "00000000010000000000000000");
    /* 2^48 - 1 ms, the largest ULID time: "7ZZZZZZZZZ". */
    saga_id_make((int64_t)((1ull << 48) - 1), 0, 0, id);
    cr_assert_eq(strncmp(id, "7ZZZZZZZZZ", 10), 0, "%s", id);
}

Test(saga_id, ids_sort_by_creation_time) {
    char prev[27], cur[27];
    uint64_t r = 0x9e3779b97f4a7c15ull;
    saga_id_make(1700000000000, r, ~r, prev);
    /* Increasing times sort after, whatever the random bits. */
    for (int64_t ms = 1700000000001; ms < 1700000000000 + 5000; ms += 7) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        saga_id_make(ms, r, r ^ 0xffffffffull, cur);
        cr_assert_lt(strcmp(prev, cur), 0, "%s then %s", prev, cur);
        memcpy(prev, cur, sizeof(cur));
    }
    /* And ids made now sort after one made a moment ago. */
    char then[27], now[27];
    saga_id_make(1700000000000, ~0ull, ~0ull, then);
    saga_id_new(now);
    cr_assert_lt(strcmp(then, now), 0);
}

Test(saga_id, validity_rules) {
    char longest[SAGA_ID_MAX + 2];
    memset(longest, 'a', SAGA_ID_MAX);
    longest[SAGA_ID_MAX] = '\0';
    cr_assert(saga_id_valid(longest), "SAGA_ID_MAX characters are allowed");
    longest[SAGA_ID_MAX] = 'a';
    longest[SAGA_ID_MAX + 1] = '\0';
    cr_assert_not(saga_id_valid(longest), "one more is not");
    cr_assert_not(saga_id_valid(""));
    const char *good[] = {"a", "Z", "0", "order-42", "a.b_c:d-e", "01M94X441DZX460B3WP6WP4NFA"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(saga_id_valid(good[i]), "'%s' is valid", good[i]);
    const char *bad[] = {"a b", "a/b", "a{b", "a}b", "a*b", "é", "a\tb", "a\nb", "a\"b", "a%b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(saga_id_valid(bad[i]), "'%s' is not valid", bad[i]);
}
