/*
 * test_examples.c -- every file in definitions/examples/ is a valid
 * definition, and each shows the feature it is there for.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "def_testing.h"

static char *example_path(const char *name)
{
    const char *src = getenv("SAGA_SOURCE_DIR");
    cr_assert_not_null(src, "SAGA_SOURCE_DIR is not set (run through ctest)");
    char *path = malloc(strlen(src) + strlen(name) + 32);
    sprintf(path, "%s/definitions/examples/%s", src, name);
    return path;
}

static saga_def_t *load_example(const char *name)
{
    char *path = example_path(name);
    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_file(path, &d);
    if (def == NULL) {
        saga_diags_print(&d, stderr);
        cr_assert_fail("%s is not valid", path);
    }
    saga_diags_close(&d);
    free(path);
    return def;
}

Test(examples, every_example_file_is_valid)
{
    char *dir_path = example_path("");
    DIR *dir = opendir(dir_path);
    cr_assert_not_null(dir, "cannot open %s", dir_path);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        saga_def_t *def = load_example(e->d_name);
        cr_assert_eq(strlen(def->hash), 64);
        saga_def_free(def);
        n++;
    }
    closedir(dir);
    free(dir_path);
    cr_assert_geq(n, 4, "expected at least the four required examples, found %zu", n);
}

/* Every handler of an example is one the demo plugin has. */
static void assert_demo_handlers(const saga_def_t *def)
{
    const char *known[] = {"demo.noop", "demo.echo", "demo.fail", "demo.flaky", "demo.sleep"};
    for (size_t i = 0; i < def->n_steps; i++) {
        const saga_call_def_t *calls[2] = {&def->steps[i].action,
                                           def->steps[i].has_compensation
                                               ? &def->steps[i].compensation : NULL};
        for (size_t c = 0; c < 2; c++) {
            if (calls[c] == NULL)
                continue;
            bool ok = false;
            for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
                ok = ok || strcmp(calls[c]->handler, known[k]) == 0;
            cr_assert(ok, "%s uses unknown handler %s", def->name, calls[c]->handler);
        }
    }
}

Test(examples, trip_booking_compensates_backward)
{
    saga_def_t *def = load_example("trip-booking.yaml");
    assert_demo_handlers(def);
    cr_assert_eq(def->recovery, SAGA_RECOVERY_BACKWARD);
    cr_assert_not_null(saga_def_find_step(def, "book_flight"));
    cr_assert_not_null(saga_def_find_step(def, "book_hotel"));
    const saga_step_def_t *t = saga_def_find_step(def, "book_tickets");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->action.handler, "demo.fail");
    for (size_t i = 0; i < def->n_steps; i++)
        cr_assert(def->steps[i].has_compensation);
    /* The tickets compensation renders even though its action failed. */
    const char *outs[] = {"{\"booking\": \"FL-1\"}", "{\"booking\": \"HT-1\"}", NULL};
    saga_render_ctx_t *ctx = make_ctx("{\"trip_id\": \"1\", \"traveller\": \"Ada\", \"city\": \"Lisbon\"}",
                                      outs, 3);
    char err[256] = "";
    char *got = render_text(t->compensation.with, ctx, err, sizeof(err));
    cr_assert_str_eq(got, "{\"release\":null}", "%s", err);
    free(got);
    got = render_text(t->action.with, ctx, err, sizeof(err));
    cr_assert_str_eq(got, "{\"message\":\"sold out: no tickets left in Lisbon\"}", "%s", err);
    free(got);
    free_ctx(ctx, 3);
    saga_def_free(def);
}

Test(examples, order_passes_outputs_forward_and_has_a_step_without_compensation)
{
    saga_def_t *def = load_example("order.yaml");
    assert_demo_handlers(def);
    const saga_step_def_t *notify = saga_def_find_step(def, "notify");
    cr_assert_not_null(notify);
    cr_assert_not(notify->has_compensation);
    const char *outs[] = {"{\"order_id\": \"O-42\", \"customer\": \"c-7\"}",
                          "{\"reservation\": \"rsv-O-42\"}", "{\"amount\": 3990}", NULL};
    saga_render_ctx_t *ctx = make_ctx("{\"order_id\": \"O-42\", \"customer\": \"c-7\", "
                                      "\"items\": [], \"amount\": 3990}", outs, 4);
    char err[256] = "";
    char *got = render_text(notify->action.with, ctx, err, sizeof(err));
    cr_assert_str_eq(got, "{\"text\":\"Order O-42 confirmed: 3990 charged\",\"to\":\"c-7\"}",
                     "%s", err);
    free(got);
    free_ctx(ctx, 4);
    saga_def_free(def);
}

Test(examples, forward_recovery_uses_flaky_steps)
{
    saga_def_t *def = load_example("forward-recovery.yaml");
    assert_demo_handlers(def);
    cr_assert_eq(def->recovery, SAGA_RECOVERY_FORWARD);
    bool flaky = false;
    for (size_t i = 0; i < def->n_steps; i++)
        flaky = flaky || strcmp(def->steps[i].action.handler, "demo.flaky") == 0;
    cr_assert(flaky);
    saga_def_free(def);
}

Test(examples, parallel_has_independent_branches_and_a_join)
{
    saga_def_t *def = load_example("parallel.yaml");
    assert_demo_handlers(def);
    const saga_step_def_t *seat = saga_def_find_step(def, "reserve_seat");
    const saga_step_def_t *meal = saga_def_find_step(def, "reserve_meal");
    const saga_step_def_t *join = saga_def_find_step(def, "confirm");
    cr_assert_not_null(seat);
    cr_assert_not_null(meal);
    cr_assert_not_null(join);
    cr_assert_not(saga_def_is_ancestor(def, seat->index, meal->index));
    cr_assert_not(saga_def_is_ancestor(def, meal->index, seat->index));
    cr_assert_geq(join->n_after, 2);
    saga_def_free(def);
}
