/*
 * test_graph.c -- the step graph: default order, roots, joins, successors,
 * topological order and ancestors.
 */
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "def_testing.h"

#define STEP(name) \
    "  - name: " name "\n" \
    "    action: {handler: demo.noop}\n" \
    "    compensation: none\n"

Test(graph, default_order_is_the_list)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a") STEP("b") STEP("c"));
    cr_assert_eq(def->steps[0].n_after, 0);
    cr_assert_eq(def->steps[1].n_after, 1);
    cr_assert_eq(def->steps[1].after[0], 0);
    cr_assert_eq(def->steps[2].after[0], 1);
    cr_assert_eq(def->steps[0].n_dependents, 1);
    cr_assert_eq(def->steps[0].dependents[0], 1);
    cr_assert_eq(def->steps[2].n_dependents, 0);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(def->topo_order[i], i);
    cr_assert(saga_def_is_ancestor(def, 0, 2));
    cr_assert(saga_def_is_ancestor(def, 1, 2));
    cr_assert_not(saga_def_is_ancestor(def, 2, 0));
    cr_assert_not(saga_def_is_ancestor(def, 1, 1));
    saga_def_free(def);
}

Test(graph, empty_after_makes_a_root)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n" STEP("a") STEP("b") "    after: []\n");
    cr_assert_eq(def->steps[1].n_after, 0);
    cr_assert_not(saga_def_is_ancestor(def, 0, 1));
    cr_assert_eq(def->steps[0].n_dependents, 0);
    saga_def_free(def);
}

Test(graph, branches_and_a_join)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n"
                              STEP("start")
                              STEP("left") "    after: [start]\n"
                              STEP("right") "    after: [start]\n"
                              STEP("join") "    after: [left, right]\n");
    cr_assert_eq(def->steps[0].n_dependents, 2);
    cr_assert_eq(def->steps[0].dependents[0], 1);
    cr_assert_eq(def->steps[0].dependents[1], 2);
    cr_assert_eq(def->steps[3].n_after, 2);
    cr_assert(saga_def_is_ancestor(def, 0, 3));
    cr_assert(saga_def_is_ancestor(def, 1, 3));
    cr_assert(saga_def_is_ancestor(def, 2, 3));
    cr_assert_not(saga_def_is_ancestor(def, 1, 2));
    cr_assert_not(saga_def_is_ancestor(def, 2, 1));
    saga_def_free(def);
}

Test(graph, topological_order_keeps_list_order_among_independent_steps)
{
    /* d is listed first but waits for c; a and b are independent roots. */
    saga_def_t *def = load_ok("saga: s\nsteps:\n"
                              STEP("d") "    after: [c]\n"
                              STEP("a") "    after: []\n"
                              STEP("c") "    after: [b]\n"
                              STEP("b") "    after: []\n");
    size_t want[] = {1, 3, 2, 0}; /* a, b, c, d */
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(def->topo_order[i], want[i], "position %zu", i);
    cr_assert(saga_def_is_ancestor(def, 3, 0)); /* b before d, through c */
    saga_def_free(def);
}

Test(graph, ancestors_across_word_boundaries)
{
    /* 130 steps in a chain: bitsets span three 64-bit words. */
    char *y = malloc(200 * 130);
    size_t o = (size_t)sprintf(y, "saga: s\nsteps:\n");
    for (int i = 0; i < 130; i++)
        o += (size_t)sprintf(y + o, "  - {name: s%d, action: {handler: demo.noop}, "
                             "compensation: none}\n", i);
    saga_def_t *def = load_ok(y);
    free(y);
    cr_assert_eq(def->ancestor_words, 3);
    cr_assert(saga_def_is_ancestor(def, 0, 129));
    cr_assert(saga_def_is_ancestor(def, 63, 64));
    cr_assert(saga_def_is_ancestor(def, 64, 128));
    cr_assert_not(saga_def_is_ancestor(def, 128, 64));
    cr_assert_not(saga_def_is_ancestor(def, 129, 129));
    /* Out of range indexes are never ancestors. */
    cr_assert_not(saga_def_is_ancestor(def, 130, 0));
    cr_assert_not(saga_def_is_ancestor(def, 0, 130));
    saga_def_free(def);
}
