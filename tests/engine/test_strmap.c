/*
 * test_strmap.c -- the string map (engine/util/strmap.c): insert, get,
 * replace, remove (backward-shift deletion keeps every other key
 * reachable), growth, and iteration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util/strmap.h"

Test(strmap, empty_map_answers_nothing) {
    saga_strmap_t m;
    saga_strmap_init(&m);
    cr_assert_null(saga_strmap_get(&m, "a"));
    cr_assert_null(saga_strmap_del(&m, "a"));
    size_t pos = 0;
    const char *k;
    void *v;
    cr_assert_eq(saga_strmap_next(&m, &pos, &k, &v), 0);
    saga_strmap_close(&m);
}

Test(strmap, put_get_replace_del) {
    saga_strmap_t m;
    saga_strmap_init(&m);
    int a = 1, b = 2, c = 3;
    void *old = &c;
    cr_assert_eq(saga_strmap_put(&m, "a", &a, &old), 0);
    cr_assert_null(old);
    cr_assert_eq(saga_strmap_put(&m, "b", &b, NULL), 0);
    cr_assert_eq(saga_strmap_get(&m, "a"), &a);
    cr_assert_eq(saga_strmap_get(&m, "b"), &b);
    cr_assert_null(saga_strmap_get(&m, "c"));
    cr_assert_eq(saga_strmap_put(&m, "a", &c, &old), 0);
    cr_assert_eq(old, &a, "replacing returns the previous value");
    cr_assert_eq(m.count, 2, "a replacement is not a new entry");
    cr_assert_eq(saga_strmap_get(&m, "a"), &c);
    cr_assert_eq(saga_strmap_del(&m, "a"), &c);
    cr_assert_null(saga_strmap_get(&m, "a"));
    cr_assert_null(saga_strmap_del(&m, "a"));
    cr_assert_eq(m.count, 1);
    saga_strmap_close(&m);
}

#define N 5000

/* Keys are compared by content, not by pointer. */
Test(strmap, grows_and_finds_every_key_then_deletes_half) {
    static char keys[N][16];
    saga_strmap_t m;
    saga_strmap_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
        cr_assert_eq(saga_strmap_put(&m, keys[i], keys[i], NULL), 0);
    }
    cr_assert_eq(m.count, N);
    cr_assert_geq(m.cap * 3, m.count * 4, "load factor under 3/4");
    char probe[16];
    for (int i = 0; i < N; i++) {
        snprintf(probe, sizeof(probe), "key-%d", i);
        cr_assert_eq(saga_strmap_get(&m, probe), keys[i], "%s", probe);
    }
    /* Deleting every other key shifts entries back: the rest stay found. */
    for (int i = 0; i < N; i += 2)
        cr_assert_eq(saga_strmap_del(&m, keys[i]), keys[i]);
    cr_assert_eq(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        void *v = saga_strmap_get(&m, keys[i]);
        if (i % 2 == 0)
            cr_assert_null(v, "%s deleted", keys[i]);
        else
            cr_assert_eq(v, keys[i], "%s kept", keys[i]);
    }
    saga_strmap_close(&m);
}

Test(strmap, iteration_visits_every_entry_once) {
    static char keys[N][16];
    static unsigned char seen[N];
    saga_strmap_t m;
    saga_strmap_init(&m);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%d", i);
        cr_assert_eq(saga_strmap_put(&m, keys[i], &seen[i], NULL), 0);
    }
    for (int i = 0; i < N; i += 3)
        saga_strmap_del(&m, keys[i]);
    size_t pos = 0, visited = 0;
    const char *k;
    void *v;
    while (saga_strmap_next(&m, &pos, &k, &v)) {
        int i = atoi(k);
        cr_assert_eq(v, &seen[i], "value of %s", k);
        cr_assert_eq(seen[i], 0, "%s visited twice", k);
        seen[i] = 1;
        visited++;
    }
    cr_assert_eq(visited, m.count);
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], i % 3 != 0, "key %d", i);
    saga_strmap_close(&m);
}

Test(strmap, colliding_clusters_survive_deletion_in_any_order) {
    /* A small table fills whole clusters; delete from the front, middle and
     * back of them and check the rest after each deletion. */
    static char keys[12][8];
    saga_strmap_t m;
    saga_strmap_init(&m);
    for (int i = 0; i < 12; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        saga_strmap_put(&m, keys[i], keys[i], NULL);
    }
    int order[12] = {5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6};
    for (int d = 0; d < 12; d++) {
        cr_assert_eq(saga_strmap_del(&m, keys[order[d]]), keys[order[d]]);
        for (int j = d + 1; j < 12; j++)
            cr_assert_eq(saga_strmap_get(&m, keys[order[j]]), keys[order[j]],
                         "%s lost after deleting %s", keys[order[j]], keys[order[d]]);
    }
    cr_assert_eq(m.count, 0);
    saga_strmap_close(&m);
}
