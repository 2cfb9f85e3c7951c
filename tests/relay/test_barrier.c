/*
 * test_barrier.c -- saga_barrier(key), the PL/pgSQL function of `saga relay
 * --schema` (docs/outbox.md), against a real PostgreSQL: called by the
 * example service's step handlers (saga-example-orders reserve / release,
 * as exec.run runs them) and, for the concurrent cases, on two
 * connections of our own held at the exact interleaving. In every case the
 * work happens at most once and stock + reservations add up.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "postgres_server.h"
#include "saga_proc.h"
#include "test_poll.h"

extern char **environ;

static postgres_server_t P;
static PGconn *db;
static char example[600];

#define STOCK 100

static void exec_ok(PGconn *c, const char *sql) {
    cr_assert_eq(postgres_exec(c, sql), 0, "SQL failed: %.200s", sql);
}

static void setup(void) {
    cr_assert_eq(postgres_server_start(&P), 0);
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build, "SAGA_BUILD_DIR is not set (run the tests through ctest)");
    snprintf(example, sizeof(example), "%s/bin/saga-example-orders", build);
    char path[400];
    snprintf(path, sizeof(path), "%s/schema.sql", P.dir);
    const char *args[] = {"relay", "--schema", NULL};
    saga_proc_io_t io = {.out = path, .err = path};
    cr_assert_eq(saga_proc_run(args, &io), 0);
    char *ddl = saga_proc_slurp(path);
    db = postgres_server_connect(&P);
    cr_assert_not_null(db);
    exec_ok(db, "SET client_min_messages = warning");
    exec_ok(db, ddl);
    free(ddl);
    const char *setup_args[] = {example, "--db", P.conninfo, "setup", NULL};
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, example, NULL, NULL, (char *const *)setup_args, environ), 0);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "saga-example-orders setup");
    exec_ok(db, "INSERT INTO stock (item, available) VALUES ('apple', 100)");
}

static void teardown(void) {
    PQfinish(db);
    postgres_server_stop(&P);
}

TestSuite(barrier, .init = setup, .fini = teardown, .timeout = 120);

/* Starts the example's step handler `cmd` (reserve | release) for order
 * `order` of `qty` apples with the idempotency key <order>/reserve/<phase>,
 * as exec.run would. Returns its pid. */
static pid_t step_start(const char *cmd, const char *order, int qty, const char *phase) {
    char key[200], e_key[240], e_order[120], e_qty[40];
    snprintf(key, sizeof(key), "%s/reserve/%s", order, phase);
    snprintf(e_key, sizeof(e_key), "SAGA_IDEMPOTENCY_KEY=%s", key);
    snprintf(e_order, sizeof(e_order), "ORDER_ID=%s", order);
    snprintf(e_qty, sizeof(e_qty), "QTY=%d", qty);
    char *envp[] = {e_key, e_order, "ITEM=apple", e_qty, NULL};
    const char *args[] = {example, "--db", P.conninfo, cmd, NULL};
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, example, NULL, NULL, (char *const *)args, envp), 0);
    return pid;
}

static int step_wait(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0)
        cr_assert_eq(errno, EINTR);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int step(const char *cmd, const char *order, int qty, const char *phase) {
    return step_wait(step_start(cmd, order, qty, phase));
}

static void order(const char *id, int qty) {
    char sql[200];
    snprintf(sql, sizeof(sql), "INSERT INTO orders (id, item, qty) VALUES ('%s', 'apple', %d)",
             id, qty);
    exec_ok(db, sql);
}

/* Stock and reservations: available + reserved is always STOCK, reserved
 * is `reserved`. */
static void assert_stock(int reserved) {
    cr_assert_eq(postgres_long(db, "SELECT available + reserved FROM stock"), STOCK,
                 "nothing created or lost");
    cr_assert_eq(postgres_long(db, "SELECT reserved FROM stock"), reserved);
}

static void assert_status(const char *id, const char *want) {
    const char *p[] = {id};
    PGresult *r = PQexecParams(db, "SELECT status FROM orders WHERE id = $1", 1, NULL, p,
                               NULL, NULL, 0);
    cr_assert_eq(PQntuples(r), 1);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), want, "order %s", id);
    PQclear(r);
}

/* ---------------------------------------------------------------------- */
/* One at a time                                                           */
/* ---------------------------------------------------------------------- */

Test(barrier, duplicate_action_works_once) {
    order("o1", 3);
    cr_assert_eq(step("reserve", "o1", 3, "action"), 0);
    cr_assert_eq(step("reserve", "o1", 3, "action"), 0, "a duplicate answers success");
    cr_assert_eq(step("reserve", "o1", 3, "action"), 0);
    assert_stock(3);
    assert_status("o1", "reserved");
}

Test(barrier, duplicate_compensation_works_once) {
    order("o2", 4);
    cr_assert_eq(step("reserve", "o2", 4, "action"), 0);
    cr_assert_eq(step("release", "o2", 4, "compensation"), 0);
    cr_assert_eq(step("release", "o2", 4, "compensation"), 0);
    assert_stock(0);
    assert_status("o2", "released");
}

/* The compensation comes first (the action's call was lost, or is still
 * on its way): it does nothing ("empty compensation") and the action that
 * arrives after it is skipped ("hanging" action). */
Test(barrier, compensation_before_action_does_nothing_and_blocks_it) {
    order("o3", 5);
    cr_assert_eq(step("release", "o3", 5, "compensation"), 0);
    assert_stock(0);
    assert_status("o3", "new");
    cr_assert_eq(step("reserve", "o3", 5, "action"), 0, "the late action answers success");
    assert_stock(0);
    assert_status("o3", "new");
    cr_assert_eq(postgres_long(db, "SELECT count(*) FROM saga_barrier WHERE saga_id = 'o3' "
                                   "AND op = 'action' AND blocked"), 1);
}

/* The action ran, was compensated, and a retry of the action arrives
 * after that (a worker that was slow): skipped. */
Test(barrier, action_after_compensation_is_skipped) {
    order("o4", 2);
    cr_assert_eq(step("reserve", "o4", 2, "action"), 0);
    cr_assert_eq(step("release", "o4", 2, "compensation"), 0);
    cr_assert_eq(step("reserve", "o4", 2, "action"), 0);
    assert_stock(0);
    assert_status("o4", "released");
}

/* An action refused by the service (its transaction rolled back, barrier
 * record included) is compensated like one that never ran: nothing to
 * give back. */
Test(barrier, refused_action_then_compensation) {
    order("o5", 500);
    cr_assert_eq(step("reserve", "o5", 500, "action"), 2, "not enough stock: business failure");
    cr_assert_eq(step("release", "o5", 500, "compensation"), 0);
    assert_stock(0);
    assert_status("o5", "new");
}

Test(barrier, tcc_keys) {
    static const struct {
        const char *key;
        const char *want;
    } calls[] = {
        {"t1/pay/try", "t"},     {"t1/pay/try", "f"},     {"t1/pay/confirm", "t"},
        {"t1/pay/confirm", "f"}, {"t2/pay/cancel", "f"},  {"t2/pay/try", "f"},
        {"t3/pay/try", "t"},     {"t3/pay/cancel", "t"},  {"t3/pay/cancel", "f"},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        const char *p[] = {calls[i].key};
        PGresult *r = PQexecParams(db, "SELECT saga_barrier($1)", 1, NULL, p, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", calls[i].key,
                     PQerrorMessage(db));
        cr_assert_str_eq(PQgetvalue(r, 0, 0), calls[i].want, "call %zu (%s)", i, calls[i].key);
        PQclear(r);
    }
}

Test(barrier, malformed_keys_are_refused_with_a_reason) {
    static const struct {
        const char *key;
        const char *msg;
    } bad[] = {
        {"nonsense", "is not <saga-id>/<step>/<phase>"},
        {"id/step", "is not <saga-id>/<step>/<phase>"},
        {"id/step/deploy", "phase 'deploy' is not action, compensation, try, cancel or confirm"},
        {"/step/action", "is not <saga-id>/<step>/<phase>"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p[] = {bad[i].key};
        PGresult *r = PQexecParams(db, "SELECT saga_barrier($1)", 1, NULL, p, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s", bad[i].key);
        cr_assert(strstr(PQresultErrorMessage(r), bad[i].msg) != NULL, "%s: %s", bad[i].key,
                  PQresultErrorMessage(r));
        PQclear(r);
    }
    cr_assert_eq(postgres_long(db, "SELECT count(*) FROM saga_barrier"), 0);
}

/* ---------------------------------------------------------------------- */
/* Concurrent calls                                                        */
/* ---------------------------------------------------------------------- */

/* Waits until the backend of `c` waits for a lock (the other transaction's
 * barrier row). */
static void wait_blocked(PGconn *c) {
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
                               "wait_event_type = 'Lock'", PQbackendPID(c));
    test_poll_t p = test_poll_start(10000);
    while (postgres_long(db, sql) != 1)
        if (!test_poll_next(&p))
            cr_assert_fail("the second call never waited for the first's lock");
}

/* The answer of a query sent with PQsendQuery on `c`. */
static char *answer(PGconn *c) {
    char *out = NULL;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
        free(out);
        out = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    cr_assert_not_null(out);
    return out;
}

static char *barrier_sync(PGconn *c, const char *key) {
    const char *p[] = {key};
    PGresult *r = PQexecParams(c, "SELECT saga_barrier($1)", 1, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* A first call holds its transaction open; a second one with key2 on
 * another connection must wait for it; then the first ends (`commit` or
 * rolls back). Returns what the second got. */
static char *interleave(const char *key1, const char *want1, bool commit, const char *key2) {
    PGconn *a = postgres_server_connect(&P), *b = postgres_server_connect(&P);
    cr_assert(a != NULL && b != NULL);
    exec_ok(a, "BEGIN");
    char *v1 = barrier_sync(a, key1);
    cr_assert_str_eq(v1, want1, "first call %s", key1);
    free(v1);
    exec_ok(b, "BEGIN");
    const char *p[] = {key2};
    cr_assert(PQsendQueryParams(b, "SELECT saga_barrier($1)", 1, NULL, p, NULL, NULL, 0));
    wait_blocked(b);
    exec_ok(a, commit ? "COMMIT" : "ROLLBACK");
    char *v2 = answer(b);
    exec_ok(b, "COMMIT");
    PQfinish(a);
    PQfinish(b);
    return v2;
}

Test(barrier, concurrent_duplicate_actions_one_wins) {
    char *v = interleave("c1/reserve/action", "t", true, "c1/reserve/action");
    cr_assert_str_eq(v, "f", "the duplicate waited and was skipped");
    free(v);
}

Test(barrier, concurrent_duplicate_after_rollback_does_the_work) {
    char *v = interleave("c2/reserve/action", "t", false, "c2/reserve/action");
    cr_assert_str_eq(v, "t", "the first rolled back: the second does the work");
    free(v);
}

Test(barrier, compensation_racing_its_action) {
    /* the action first: the compensation waits, then undoes it */
    char *v = interleave("c3/reserve/action", "t", true, "c3/reserve/compensation");
    cr_assert_str_eq(v, "t");
    free(v);
    /* the compensation first: the action waits, then is skipped */
    v = interleave("c4/reserve/compensation", "f", true, "c4/reserve/action");
    cr_assert_str_eq(v, "f");
    free(v);
    /* duplicate compensations */
    v = barrier_sync(db, "c5/reserve/action");
    cr_assert_str_eq(v, "t");
    free(v);
    v = interleave("c5/reserve/compensation", "t", true, "c5/reserve/compensation");
    cr_assert_str_eq(v, "f");
    free(v);
}

/* Many handler processes at once with one key, and with distinct keys:
 * the work happens once per key. */
Test(barrier, concurrent_handlers_work_once_per_key) {
    enum { N = 12 };
    pid_t pids[N];
    order("race", 7);
    for (int i = 0; i < N; i++)
        pids[i] = step_start("reserve", "race", 7, "action");
    for (int i = 0; i < N; i++)
        cr_assert_eq(step_wait(pids[i]), 0);
    assert_stock(7);
    for (int i = 0; i < N; i++)
        pids[i] = step_start("release", "race", 7, "compensation");
    for (int i = 0; i < N; i++)
        cr_assert_eq(step_wait(pids[i]), 0);
    assert_stock(0);
    assert_status("race", "released");
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "many-%d", i);
        order(id, 1);
        pids[i] = step_start("reserve", id, 1, "action");
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(step_wait(pids[i]), 0);
    assert_stock(N);
}
