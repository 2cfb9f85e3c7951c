/*
 * test_query.c -- the questions asked of a built model
 * (definitions/src/query.c): checking a start input, finding a step by
 * name, step ancestry at the edges.
 */
#include <errno.h>
#include <string.h>

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

Test(query, check_input_accepts_an_object_with_every_required_key)
{
    saga_def_t *def = load_ok(VALID);
    json_t *in = json_pack("{s:s, s:i, s:b}", "order_id", "o-1", "amount", 5, "extra", 1);
    char err[128] = "untouched";
    cr_assert_eq(saga_def_check_input(def, in, err, sizeof(err)), 0);
    json_decref(in);
    saga_def_free(def);
}

Test(query, check_input_names_the_missing_keys)
{
    saga_def_t *def = load_ok(VALID);
    char err[128];
    json_t *in = json_pack("{s:i}", "amount", 5);
    cr_assert_eq(saga_def_check_input(def, in, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "input is missing required key 'order_id'");
    json_decref(in);
    in = json_object();
    cr_assert_eq(saga_def_check_input(def, in, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "input is missing required keys 'order_id', 'amount'");
    json_decref(in);
    saga_def_free(def);
}

Test(query, check_input_requires_an_object)
{
    saga_def_t *def = load_ok(VALID);
    char err[128];
    json_t *in = json_array();
    cr_assert_eq(saga_def_check_input(def, in, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "input must be a JSON object, found an array");
    json_decref(in);
    cr_assert_eq(saga_def_check_input(def, NULL, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "input must be a JSON object, found nothing");
    saga_def_free(def);
}

Test(query, check_input_without_requirements_takes_any_object)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n  - name: a\n    action: {handler: demo.noop}\n"
                              "    compensation: none\n");
    json_t *in = json_object();
    cr_assert_eq(saga_def_check_input(def, in, NULL, 0), 0);
    json_decref(in);
    saga_def_free(def);
}

Test(query, check_input_truncates_a_long_list_safely)
{
    saga_def_t *def = load_ok(VALID);
    char err[24];
    memset(err, 'z', sizeof(err));
    json_t *in = json_object();
    cr_assert_eq(saga_def_check_input(def, in, err, sizeof(err)), -EINVAL);
    cr_assert_eq(strlen(err), sizeof(err) - 1, "cut, and terminated: %s", err);
    cr_assert_str_eq(err, "input is missing requir");
    json_decref(in);
    saga_def_free(def);
}

Test(query, find_step_by_exact_name)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n"
                              "  - {name: pay, action: {handler: demo.noop}, compensation: none}\n"
                              "  - {name: ship, action: {handler: demo.noop}, compensation: none,"
                              " after: [pay]}\n");
    const saga_step_def_t *ship = saga_def_find_step(def, "ship");
    cr_assert_not_null(ship);
    cr_assert_str_eq(ship->name, "ship");
    cr_assert_eq(ship, &def->steps[ship->index]);
    cr_assert_null(saga_def_find_step(def, "Ship"), "case matters");
    cr_assert_null(saga_def_find_step(def, "sh"), "no prefix match");
    cr_assert_null(saga_def_find_step(def, ""));
    saga_def_free(def);
}

Test(query, is_ancestor_is_false_out_of_range)
{
    saga_def_t *def = load_ok("saga: s\nsteps:\n"
                              "  - {name: a, action: {handler: demo.noop}, compensation: none}\n"
                              "  - {name: b, action: {handler: demo.noop}, compensation: none,"
                              " after: [a]}\n");
    cr_assert(saga_def_is_ancestor(def, 0, 1));
    cr_assert_not(saga_def_is_ancestor(def, 1, 0));
    cr_assert_not(saga_def_is_ancestor(def, 0, 2), "no step 2");
    cr_assert_not(saga_def_is_ancestor(def, 2, 1), "no step 2");
    cr_assert_not(saga_def_is_ancestor(def, (size_t)-1, 0));
    saga_def_free(def);
}
