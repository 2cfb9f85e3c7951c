/*
 * test_shards.c -- the shards of the global keys (store/shards.h): their
 * recorded form, how a saga's shard is chosen, and that the tags spread
 * over the cluster's slots.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "redis/redis_conn.h"
#include "store/shards.h"

Test(shards, single_is_the_layout_of_before) {
    saga_shards_t sh;
    char key[64];
    saga_shards_single(&sh);
    cr_assert_eq(sh.k, 1);
    cr_assert_gt(saga_shards_key(&sh, 0, SAGA_SHARD_SAGAS, NULL, key, sizeof(key)), 0);
    cr_assert_str_eq(key, "saga:{idx}:sagas");
    cr_assert_gt(saga_shards_key(&sh, 0, SAGA_SHARD_OWNED, "w1", key, sizeof(key)), 0);
    cr_assert_str_eq(key, "saga:{idx}:owned:w1");
    cr_assert_eq(saga_shards_of(&sh, "anything"), 0);
    cr_assert_eq(saga_shards_key(&sh, 1, SAGA_SHARD_SAGAS, NULL, key, sizeof(key)), -EINVAL);
}

Test(shards, spread_puts_shard_s_in_the_s_th_slot_range) {
    for (unsigned k = 2; k <= SAGA_SHARDS_MAX; k += 7) {
        saga_shards_t sh;
        cr_assert_eq(saga_shards_spread(&sh, k), 0);
        cr_assert_eq(sh.k, k);
        for (unsigned s = 0; s < k; s++) {
            unsigned slot = saga_redis_key_slot(sh.tag[s], strlen(sh.tag[s]));
            cr_assert_geq(slot, s * 16384u / k, "k %u shard %u (%s): slot %u", k, s, sh.tag[s],
                          slot);
            cr_assert_lt(slot, (s + 1) * 16384u / k, "k %u shard %u (%s): slot %u", k, s,
                         sh.tag[s], slot);
        }
    }
    saga_shards_t sh;
    cr_assert_eq(saga_shards_spread(&sh, 0), -EINVAL);
    cr_assert_eq(saga_shards_spread(&sh, SAGA_SHARDS_MAX + 1), -EINVAL);
}

Test(shards, format_and_parse_round_trip) {
    saga_shards_t a, b;
    char text[SAGA_SHARDS_MAX * SAGA_SHARD_TAG_MAX], err[160];
    cr_assert_eq(saga_shards_spread(&a, 12), 0);
    int n = saga_shards_format(&a, text, sizeof(text));
    cr_assert_gt(n, 0);
    cr_assert_eq(saga_shards_parse(&b, text, (size_t)n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(b.k, 12);
    for (unsigned s = 0; s < 12; s++)
        cr_assert_str_eq(a.tag[s], b.tag[s]);
    char small[8];
    cr_assert_eq(saga_shards_format(&a, small, sizeof(small)), -ENOSPC);
}

Test(shards, parse_says_what_is_wrong) {
    saga_shards_t sh;
    char err[160];
    static const struct {
        const char *text;
        const char *says;
    } bad[] = {
        {"", "no shard tags"},
        {"idx:0  idx:1", "byte 7: an empty shard tag"},
        {"idx:0 ", "byte 7: an empty shard tag"},
        {"idx:{0}", "brace"},
        {"idx:0\tidx:1", "control character"},
        {"idx:0 idx:0", "'idx:0' is there twice"},
        {"a-tag-that-is-far-too-long-for-one", "a shard tag of 34 characters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(saga_shards_parse(&sh, bad[i].text, strlen(bad[i].text), err, sizeof(err)),
                     -EINVAL, "'%s' accepted", bad[i].text);
        cr_assert(strstr(err, bad[i].says) != NULL, "'%s': %s", bad[i].text, err);
    }
    char many[SAGA_SHARDS_MAX * 8 + 16] = "";
    for (int i = 0; i <= SAGA_SHARDS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), i ? " t%d" : "t%d", i);
    cr_assert_eq(saga_shards_parse(&sh, many, strlen(many), err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "more than 64") != NULL, "%s", err);
}

Test(shards, a_saga_keeps_its_shard_and_ids_spread) {
    saga_shards_t sh;
    cr_assert_eq(saga_shards_spread(&sh, 16), 0);
    unsigned count[16] = {0};
    char id[32];
    for (int i = 0; i < 16000; i++) {
        snprintf(id, sizeof(id), "order-%d", i);
        unsigned s = saga_shards_of(&sh, id);
        cr_assert_lt(s, 16);
        cr_assert_eq(saga_shards_of(&sh, id), s);
        count[s]++;
    }
    for (int s = 0; s < 16; s++) /* 1,000 expected each */
        cr_assert(count[s] > 800 && count[s] < 1200, "shard %d got %u of 16,000", s, count[s]);
    /* FNV-1a is part of the layout: a known value. */
    cr_assert_eq(saga_shards_of(&sh, "a"), 0xe40c292cu % 16);
}
