/*
 * test_example.c -- the whole loop of docs/outbox.md with the example
 * service (examples/outbox, saga-example-orders): orders written with
 * their outbox row in one transaction, `saga relay` starting the saga
 * `order`, a `saga worker` running its steps through exec.run, which calls
 * the service's handlers behind saga_barrier(). Orders over the limit are
 * compensated; stock and reservations add up; a rolled-back order starts
 * nothing.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "relay_env.h"
#include "saga_proc.h"
#include "test_poll.h"

extern char **environ;

static char example[600];
static char order_yaml[4096];

static int run_example(const char *const *args) {
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, example, NULL, NULL, (char *const *)args, environ), 0);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void place(const char *id, const char *qty) {
    const char *args[] = {example, "order", id, "apple", qty, NULL};
    cr_assert_eq(run_example(args), 0, "order %s", id);
}

/* The service's database for the handlers exec.run starts (they inherit
 * the worker's environment) and for our own calls. */
static void service_env(void) {
    setenv("ORDERS_DB", P.conninfo, 1);
    const char *args[] = {example, "setup", NULL};
    cr_assert_eq(run_example(args), 0, "saga-example-orders setup");
}

static void setup(void) {
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build);
    snprintf(example, sizeof(example), "%s/bin/saga-example-orders", build);
    snprintf(order_yaml, sizeof(order_yaml),
             "saga: order\n"
             "input:\n  required: [order_id, item, qty]\n"
             "steps:\n"
             "  - name: reserve\n"
             "    action:\n"
             "      handler: exec.run\n"
             "      with:\n"
             "        argv: [%s, reserve]\n"
             "        env: {ORDER_ID: \"${input.order_id}\", ITEM: \"${input.item}\", "
             "QTY: \"${input.qty}\"}\n"
             "        business_exit_codes: [2]\n"
             "    compensation:\n"
             "      handler: exec.run\n"
             "      with:\n"
             "        argv: [%s, release]\n"
             "        env: {ORDER_ID: \"${input.order_id}\", ITEM: \"${input.item}\", "
             "QTY: \"${input.qty}\"}\n"
             "  - name: charge\n"
             "    action:\n"
             "      handler: exec.run\n"
             "      with:\n"
             "        argv: [%s, charge]\n"
             "        env: {QTY: \"${input.qty}\"}\n"
             "        business_exit_codes: [2]\n"
             "    compensation: none\n",
             example, example, example);
    const char *defs[] = {"order.yaml", order_yaml, NULL};
    env_setup(defs, service_env);
}

static void teardown(void) { env_teardown(); }

TestSuite(example, .init = setup, .fini = teardown, .timeout = 300);

/* The first state of `id` in the list, or NULL. */
static const char *state_of(json_t *list, const char *id) {
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        if (strcmp(json_string_value(json_object_get(it, "id")), id) == 0)
            return json_string_value(json_object_get(it, "state"));
    }
    return NULL;
}

Test(example, orders_through_outbox_relay_and_barrier) {
    PGconn *c = env_db();
    env_exec(c, "INSERT INTO stock (item, available) VALUES ('apple', 20)");
    env_relay("relay.log", NULL);

    place("o1", "2");
    place("o2", "7"); /* over the charge limit: compensated */
    place("o3", "3");
    /* an order whose transaction rolls back: neither the order nor its saga */
    env_exec(c, "BEGIN; INSERT INTO orders (id, item, qty) VALUES ('o4', 'apple', 1); "
                "INSERT INTO saga_outbox (id, saga, input) VALUES ('o4', 'order', "
                "'{\"order_id\": \"o4\", \"item\": \"apple\", \"qty\": 1}'); ROLLBACK");
    place("o5", "30"); /* more than the stock: reserve refuses, nothing to release */

    test_poll_t p = test_poll_every(60000, 200);
    for (;;) {
        json_t *l = env_list();
        const char *s1 = state_of(l, "o1"), *s2 = state_of(l, "o2"), *s3 = state_of(l, "o3"),
                   *s5 = state_of(l, "o5");
        bool done = s1 && s2 && s3 && s5 && !strcmp(s1, "completed") &&
                    !strcmp(s2, "compensated") && !strcmp(s3, "completed") &&
                    !strcmp(s5, "compensated");
        size_t n = json_array_size(l);
        json_decref(l);
        if (done) {
            cr_assert_eq(n, 4, "four sagas, none for the rolled-back order");
            break;
        }
        if (!test_poll_next(&p)) {
            char wl[800], rl[800];
            snprintf(wl, sizeof(wl), "%s/worker.log", env_dir);
            snprintf(rl, sizeof(rl), "%s/relay.log", env_dir);
            char *w = saga_proc_slurp(wl), *r = saga_proc_slurp(rl);
            fprintf(stderr, "worker log:\n%s\nrelay log:\n%s\n", w, r);
            free(w);
            free(r);
            cr_assert_fail("the orders' sagas did not end as expected: o1 %s, o2 %s, o3 %s, "
                           "o5 %s", s1 ? s1 : "-", s2 ? s2 : "-", s3 ? s3 : "-",
                           s5 ? s5 : "-");
        }
    }
    cr_assert_eq(env_long(c, "SELECT reserved FROM stock"), 5, "o1 and o3 hold their apples");
    cr_assert_eq(env_long(c, "SELECT available FROM stock"), 15);
    cr_assert_eq(env_long(c, "SELECT count(*) FROM orders WHERE id IN ('o1', 'o3') AND "
                             "status = 'reserved'"), 2);
    cr_assert_eq(env_long(c, "SELECT count(*) FROM orders WHERE id = 'o2' AND "
                             "status = 'released'"), 1);
    cr_assert_eq(env_long(c, "SELECT count(*) FROM orders WHERE id = 'o5' AND status = 'new'"),
                 1);
    cr_assert_eq(env_long(c, "SELECT count(*) FROM orders WHERE id = 'o4'"), 0);
    cr_assert_eq(env_long(c, "SELECT count(*) FROM saga_outbox WHERE delivered_at IS NULL"), 0);
    PQfinish(c);
    env_finish();
}
