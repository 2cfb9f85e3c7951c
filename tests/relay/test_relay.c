/*
 * test_relay.c -- `saga relay` end to end (docs/outbox.md): a real
 * PostgreSQL holding the outbox of `saga relay --schema`, a real Redis, a
 * real `saga worker`, and relay processes of this build. Each committed
 * row becomes exactly one saga; rolled-back rows never do; bad rows get
 * `error`; kill -9 mid-batch (seeded, many runs), two relays at once,
 * PostgreSQL and Redis going away: every row delivered, one saga per row.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "relay_env.h"
#include "saga_proc.h"
#include "test_poll.h"

#define DELIVERED "SELECT count(*) FROM saga_outbox WHERE delivered_at IS NOT NULL"
#define ERRORED "SELECT count(*) FROM saga_outbox WHERE error IS NOT NULL"
#define PENDING "SELECT count(*) FROM saga_outbox WHERE delivered_at IS NULL AND error IS NULL"

static void setup(void) { env_setup(NULL, NULL); }

static void teardown(void) { env_teardown(); }

TestSuite(relay, .init = setup, .fini = teardown, .timeout = 300);

/* Every row of the table delivered, no error, and the sagas listed are
 * exactly the rows' ids (one each), all completed. */
static void assert_one_saga_per_row(PGconn *c, long rows) {
    cr_assert_eq(env_long(c, "SELECT count(*) FROM saga_outbox"), rows);
    env_wait_count(c, DELIVERED, rows, 60000, "rows delivered");
    cr_assert_eq(env_long(c, ERRORED), 0, "no row has an error");
    json_t *l = env_wait_completed((size_t)rows, 120000);
    PGresult *res = PQexec(c, "SELECT id FROM saga_outbox ORDER BY id");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    json_t *ids = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(l, i, it) {
        const char *id = json_string_value(json_object_get(it, "id"));
        cr_assert_null(json_object_get(ids, id), "saga %s listed twice", id);
        json_object_set_new(ids, id, json_true());
        cr_assert_str_eq(json_string_value(json_object_get(it, "saga")), "noop");
    }
    for (int r = 0; r < PQntuples(res); r++)
        cr_assert_not_null(json_object_get(ids, PQgetvalue(res, r, 0)),
                           "row %s has no saga", PQgetvalue(res, r, 0));
    PQclear(res);
    json_decref(ids);
    json_decref(l);
}

/* ---------------------------------------------------------------------- */
/* The command line                                                        */
/* ---------------------------------------------------------------------- */

static int run_saga(const char *const *args, char **err_out) {
    char out[700], err[700];
    snprintf(out, sizeof(out), "%s/cmd.out", env_dir);
    snprintf(err, sizeof(err), "%s/cmd.err", env_dir);
    saga_proc_io_t io = {.out = out, .err = err};
    int rc = saga_proc_run(args, &io);
    if (err_out != NULL)
        *err_out = saga_proc_slurp(err);
    return rc;
}

Test(relay, usage_errors) {
    char *err;
    const char *a1[] = {"relay", "--schema", "--table", "Bad-Name", NULL};
    cr_assert_eq(run_saga(a1, &err), 2);
    cr_assert(strstr(err, "--table: 'Bad-Name'") != NULL, "%s", err);
    free(err);
    const char *a2[] = {"relay", "--redis", R.url, NULL};
    unsetenv("SAGA_POSTGRES_URL");
    cr_assert_eq(run_saga(a2, &err), 2);
    cr_assert(strstr(err, "--postgres URL") != NULL, "%s", err);
    free(err);
    const char *a3[] = {"relay", "--redis", R.url, "--postgres", "host=/tmp nonsense=1", NULL};
    cr_assert_eq(run_saga(a3, &err), 2);
    cr_assert(strstr(err, "nonsense") != NULL, "%s", err);
    free(err);
    const char *a4[] = {"relay", "--redis", R.url, "--postgres", P.conninfo, "--batch", "0",
                        NULL};
    cr_assert_eq(run_saga(a4, &err), 2);
    cr_assert(strstr(err, "--batch") != NULL, "%s", err);
    free(err);
    const char *a5[] = {"relay", "--postgres", P.conninfo, NULL};
    unsetenv("SAGA_REDIS_URL");
    cr_assert_eq(run_saga(a5, &err), 2);
    cr_assert(strstr(err, "--redis URL") != NULL, "%s", err);
    free(err);
    /* --schema with another table names everything after it */
    const char *a6[] = {"relay", "--schema", "--table", "app.orders_outbox", NULL};
    char path[700];
    snprintf(path, sizeof(path), "%s/schema2.sql", env_dir);
    saga_proc_io_t io = {.out = path, .err = path};
    cr_assert_eq(saga_proc_run(a6, &io), 0);
    char *ddl = saga_proc_slurp(path);
    cr_assert(strstr(ddl, "CREATE TABLE IF NOT EXISTS app.orders_outbox (") != NULL);
    cr_assert(strstr(ddl, "pg_notify('app.orders_outbox', '')") != NULL);
    cr_assert(strstr(ddl, "CREATE TRIGGER orders_outbox_notify AFTER INSERT ON "
                          "app.orders_outbox") != NULL);
    cr_assert(strstr(ddl, "FUNCTION saga_barrier(key text) RETURNS boolean") != NULL);
    /* and it is valid SQL for PostgreSQL */
    PGconn *c = env_db();
    env_exec(c, "SET client_min_messages = warning; CREATE SCHEMA app");
    env_exec(c, ddl);
    env_exec(c, "INSERT INTO app.orders_outbox (id, saga, input) VALUES ('t1', 'noop', "
                "'{\"n\": 1}')");
    PQfinish(c);
    free(ddl);
    env_finish();
}

/* ---------------------------------------------------------------------- */
/* Delivery                                                                */
/* ---------------------------------------------------------------------- */

Test(relay, each_committed_row_becomes_one_saga) {
    PGconn *c = env_db();
    /* rows committed before the relay starts, one transaction each and many
     * in one */
    for (int i = 0; i < 10; i++)
        env_insert_noop(c, "single", i, i + 1);
    env_insert_noop(c, "bulk", 0, 150);
    const char *extra[] = {"--batch", "40", NULL};
    env_relay("relay.log", extra);
    env_wait_count(c, DELIVERED, 160, 60000, "rows delivered");
    /* and rows committed while it runs */
    env_insert_noop(c, "later", 0, 40);
    assert_one_saga_per_row(c, 200);
    /* delivered_at is set once: a second look changes nothing */
    cr_assert_eq(env_long(c, "SELECT count(*) FROM saga_outbox WHERE delivered_at < created_at"),
                 0);
    PQfinish(c);
    env_finish();
}

Test(relay, rolled_back_rows_never_become_sagas) {
    PGconn *c = env_db();
    PGconn *open_tx = env_db();
    const char *extra[] = {"--poll", "50ms", NULL};
    env_relay("relay.log", extra);
    /* a row inserted in a transaction that stays open while the relay
     * polls, then rolls back */
    env_exec(open_tx, "BEGIN");
    env_exec(open_tx, "INSERT INTO saga_outbox (id, saga, input) VALUES ('ghost-1', 'noop', "
                      "'{\"n\": 1}')");
    env_exec(c, "BEGIN; INSERT INTO saga_outbox (id, saga, input) VALUES ('ghost-2', 'noop', "
                "'{\"n\": 2}'); ROLLBACK");
    /* committed rows after it: once they are delivered, the relay has read
     * the table many times while ghost-1 was in it, uncommitted */
    env_insert_noop(c, "real", 0, 5);
    env_wait_count(c, DELIVERED, 5, 30000, "committed rows delivered");
    env_insert_noop(c, "real", 5, 10);
    env_wait_count(c, DELIVERED, 10, 30000, "committed rows delivered");
    env_exec(open_tx, "ROLLBACK");
    env_insert_noop(c, "real", 10, 15);
    env_wait_count(c, DELIVERED, 15, 30000, "committed rows delivered");
    json_t *l = env_wait_completed(15, 60000);
    size_t i;
    json_t *it;
    json_array_foreach(l, i, it) {
        const char *id = json_string_value(json_object_get(it, "id"));
        cr_assert(strncmp(id, "ghost", 5) != 0, "a saga %s from a rolled-back row", id);
    }
    json_decref(l);
    const char *st[] = {"status", "ghost-1", "--redis", R.url, NULL};
    char *err;
    cr_assert_neq(run_saga(st, &err), 0, "no saga ghost-1");
    free(err);
    PQfinish(open_tx);
    PQfinish(c);
    env_finish();
}

/* What `error` says for each bad row; the good rows of the same batches
 * are delivered, and a row with an error is never taken again. */
Test(relay, bad_rows_get_an_error_and_are_not_retried) {
    PGconn *c = env_db();
    env_exec(c,
             "INSERT INTO saga_outbox (id, saga, input) VALUES "
             "('good-1', 'noop', '{\"n\": 1}'),"
             "('unknown-saga', 'nosuchsaga', '{\"n\": 1}'),"
             "('empty-saga', '', '{\"n\": 1}'),"
             "('array-input', 'noop', '[1, 2]'),"
             "('string-input', 'noop', '\"n\"'),"
             "('null-input', 'noop', 'null'),"
             "('missing-key', 'noop', '{\"m\": 1}'),"
             "('bad id with spaces', 'noop', '{\"n\": 1}'),"
             "('huge-number', 'noop', '{\"n\": 1e400}'),"
             "('good-2', 'noop', '{\"n\": 2}')");
    env_exec(c, "INSERT INTO saga_outbox (id, saga, input) VALUES ('too-long-id-' || "
                "repeat('x', 200), 'noop', '{\"n\": 1}'),"
                "('huge-input', 'noop', jsonb_build_object('n', repeat('x', 1100000)))");
    const char *extra[] = {"--batch", "5", "--poll", "50ms", NULL};
    env_relay("relay.log", extra);
    env_wait_count(c, DELIVERED, 2, 30000, "good rows delivered");
    env_wait_count(c, ERRORED, 10, 30000, "bad rows with an error");
    static const struct {
        const char *id;
        const char *error;
    } want[] = {
        {"unknown-saga", "unknown saga 'nosuchsaga'"},
        {"empty-saga", "saga is empty"},
        {"array-input", "input is an array, not a JSON object"},
        {"string-input", "input is a string, not a JSON object"},
        {"null-input", "input is null, not a JSON object"},
        {"missing-key", "saga 'noop': input is missing required key 'n'"},
        {"bad id with spaces", "id 'bad id with spaces' is not a saga id"},
        {"huge-number", "input is not JSON this engine reads"},
        {"huge-input", "over the limit of 1048576"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *p[] = {want[i].id};
        PGresult *r = PQexecParams(c, "SELECT error, delivered_at IS NULL FROM saga_outbox "
                                      "WHERE id = $1", 1, NULL, p, NULL, NULL, 0);
        cr_assert_eq(PQntuples(r), 1, "%s", want[i].id);
        cr_assert(strstr(PQgetvalue(r, 0, 0), want[i].error) != NULL,
                  "row %s: error is '%s', expected it to say '%s'", want[i].id,
                  PQgetvalue(r, 0, 0), want[i].error);
        cr_assert_str_eq(PQgetvalue(r, 0, 1), "t", "%s is not delivered", want[i].id);
        PQclear(r);
    }
    cr_assert_eq(env_long(c, "SELECT count(*) FROM saga_outbox WHERE id LIKE 'too-long-id-%' "
                             "AND error LIKE '%is not a saga id%'"), 1);
    /* never taken again: clear nothing, insert a marker row, wait for it;
     * the errors are the same, no saga for any bad row */
    env_insert_noop(c, "marker", 0, 1);
    env_wait_count(c, DELIVERED, 3, 30000, "the marker delivered");
    cr_assert_eq(env_long(c, ERRORED), 10);
    json_t *l = env_wait_completed(3, 60000);
    json_decref(l);
    cr_assert(env_log_has("relay.log", "row 'array-input' refused: input is an array"));
    PQfinish(c);
    env_finish();
}

/* Redis away: a transient failure, not an error on the rows; they are
 * delivered once it is back. */
Test(relay, redis_down_is_retried_not_refused) {
    PGconn *c = env_db();
    const char *extra[] = {"--poll", "100ms", NULL};
    env_relay("relay.log", extra);
    test_poll_t up = test_poll_start(30000);
    while (!env_log_has("relay.log", "connected to PostgreSQL"))
        if (!test_poll_next(&up))
            cr_assert_fail("the relay never connected");
    env_insert_noop(c, "before", 0, 3);
    env_wait_count(c, DELIVERED, 3, 30000, "rows delivered");
    redis_server_kill(&R, SIGKILL);
    env_insert_noop(c, "during", 0, 20);
    test_poll_t p = test_poll_start(30000);
    while (!env_log_has("relay.log", "next batch in"))
        if (!test_poll_next(&p))
            cr_assert_fail("the relay never reported a transient failure");
    cr_assert_eq(env_long(c, ERRORED), 0, "Redis down sets no error");
    cr_assert_eq(env_long(c, PENDING), 20);
    cr_assert_eq(redis_server_restart(&R), 0);
    assert_one_saga_per_row(c, 23);
    PQfinish(c);
    env_finish();
}

/* ---------------------------------------------------------------------- */
/* Waking up                                                               */
/* ---------------------------------------------------------------------- */

/* With a poll of a day, only NOTIFY can bring a row committed after the
 * relay's first look. */
Test(relay, notify_wakes_the_relay) {
    PGconn *c = env_db();
    const char *extra[] = {"--poll", "24h", NULL};
    env_relay("relay.log", extra);
    test_poll_t p = test_poll_start(30000);
    while (!env_log_has("relay.log", "connected to PostgreSQL"))
        if (!test_poll_next(&p))
            cr_assert_fail("the relay never connected");
    for (int i = 0; i < 5; i++) {
        env_insert_noop(c, "n", i, i + 1);
        env_wait_count(c, DELIVERED, i + 1, 30000, "a row delivered on its notification");
    }
    json_decref(env_wait_completed(5, 60000));
    PQfinish(c);
    env_finish();
}

/* A notification that never comes (the trigger disabled): the poll finds
 * the row. */
Test(relay, poll_finds_rows_without_a_notification) {
    PGconn *c = env_db();
    env_exec(c, "ALTER TABLE saga_outbox DISABLE TRIGGER saga_outbox_notify");
    const char *extra[] = {"--poll", "100ms", NULL};
    env_relay("relay.log", extra);
    env_insert_noop(c, "quiet", 0, 7);
    env_wait_count(c, DELIVERED, 7, 30000, "rows found by polling");
    json_decref(env_wait_completed(7, 60000));
    PQfinish(c);
    env_finish();
}

/* ---------------------------------------------------------------------- */
/* Crashes and company                                                     */
/* ---------------------------------------------------------------------- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Rows a killed relay submitted and never marked: pending rows that have a
 * saga. */
static int submitted_unmarked(PGconn *c) {
    json_t *l = env_list();
    int n = 0;
    PGresult *pend = PQexec(c, "SELECT id FROM saga_outbox WHERE delivered_at IS NULL");
    for (int r = 0; r < PQntuples(pend); r++) {
        size_t i;
        json_t *it;
        json_array_foreach(l, i, it) {
            if (strcmp(json_string_value(json_object_get(it, "id")), PQgetvalue(pend, r, 0)) == 0)
                n++;
        }
    }
    PQclear(pend);
    json_decref(l);
    return n;
}

/* kill -9, over and over: each run inserts rows and starts a relay with
 * small batches. Two runs in three kill it at a random moment (seeded: 0
 * to 60 ms after its start); every third one kills it exactly in the
 * window between submit and mark: a transaction of the test holds the
 * table in SHARE mode, which lets the relay take its rows (FOR UPDATE) and
 * submit them but makes its UPDATE wait; the kill comes once
 * pg_stat_activity shows it waiting. Then one relay finishes: every row
 * delivered, one saga per row. */
Test(relay, kill9_mid_batch_loses_and_doubles_nothing) {
    const char *seed_env = getenv("SAGA_TEST_SEED");
    unsigned seed = seed_env != NULL ? (unsigned)strtoul(seed_env, NULL, 10)
                                     : (unsigned)time(NULL);
    fprintf(stderr, "kill9_mid_batch: seed %u (SAGA_TEST_SEED=%u to replay)\n", seed, seed);
    srand(seed);
    PGconn *c = env_db();
    const int runs = 24, per_run = 25;
    int cut = 0; /* runs that died with rows of theirs still pending */
    for (int run = 0; run < runs; run++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "k%d", run);
        env_insert_noop(c, prefix, 0, per_run);
        const char *extra[] = {"--batch", "4", NULL};
        PGconn *lock = NULL;
        if (run % 3 == 2) {
            /* The backends of the relay killed in the previous run finish
             * what they were sent (or see it gone) on their own time; one
             * caught by the lock below would be counted as the new relay
             * waiting. So: none left first. */
            test_poll_t gone = test_poll_start(30000);
            while (env_long(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                               "= 'saga relay'") != 0)
                if (!test_poll_next(&gone))
                    cr_assert_fail("the backends of a killed relay never went away");
            lock = env_db();
            env_exec(lock, "BEGIN; LOCK TABLE saga_outbox IN SHARE MODE");
        }
        pid_t pid = env_relay("killed.log", extra);
        if (lock != NULL) {
            test_poll_t p = test_poll_start(30000);
            while (env_long(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                               "= 'saga relay' AND wait_event_type = 'Lock'") != 1)
                if (!test_poll_next(&p))
                    cr_assert_fail("the relay never waited to mark its batch");
        } else {
            sleep_ms(rand() % 60); /* the moment of the crash, not a wait for a state */
        }
        kill(pid, SIGKILL);
        cr_assert_eq(saga_proc_wait(pid), 128 + SIGKILL);
        env_relay_forget(pid);
        if (lock != NULL) {
            env_exec(lock, "ROLLBACK");
            PQfinish(lock);
        }
        if (env_long(c, PENDING) > 0)
            cut++;
    }
    fprintf(stderr, "kill9_mid_batch: %d of %d runs killed with rows pending\n", cut, runs);
    /* the kills between submit and mark left submitted rows unmarked (the
     * worker creates their records soon after) */
    test_poll_t p = test_poll_start(30000);
    int window;
    while ((window = submitted_unmarked(c)) == 0)
        if (!test_poll_next(&p))
            cr_assert_fail("no row was left submitted and unmarked by a killed relay");
    fprintf(stderr, "kill9_mid_batch: %d rows submitted by a killed relay and left unmarked\n",
            window);
    env_relay("final.log", NULL);
    assert_one_saga_per_row(c, runs * per_run);
    PQfinish(c);
    env_finish();
}

/* Reads "N rows delivered, M started a saga" from a relay's last log line. */
static long fresh_of(const char *log) {
    char path[800];
    snprintf(path, sizeof(path), "%s/%s", env_dir, log);
    char *text = saga_proc_slurp(path);
    const char *at = strstr(text, "rows delivered, ");
    long n = at != NULL ? strtol(at + strlen("rows delivered, "), NULL, 10) : -1;
    free(text);
    return n;
}

Test(relay, two_relays_at_once_deliver_each_row_once) {
    PGconn *c = env_db();
    const char *extra[] = {"--batch", "7", NULL};
    pid_t a = env_relay("a.log", extra);
    pid_t b = env_relay("b.log", extra);
    for (int i = 0; i < 20; i++)
        env_insert_noop(c, "two", i * 20, i * 20 + 20);
    assert_one_saga_per_row(c, 400);
    cr_assert_eq(env_relay_stop(a), 0);
    cr_assert_eq(env_relay_stop(b), 0);
    long fa = fresh_of("a.log"), fb = fresh_of("b.log");
    fprintf(stderr, "two relays: %ld and %ld sagas started\n", fa, fb);
    cr_assert(fa >= 0 && fb >= 0, "both relays reported their counts");
    cr_assert_eq(fa + fb, 400, "each row started one saga across both relays (%ld + %ld)", fa,
                 fb);
    PQfinish(c);
    env_finish();
}

/* PostgreSQL restarted (a fast shutdown, then a crash) while rows flow:
 * the relay reconnects, LISTENs again, every row is delivered once. */
Test(relay, postgres_restarted_while_relaying) {
    const char *extra[] = {"--batch", "3", "--poll", "200ms", NULL};
    pid_t relay = env_relay("relay.log", extra);
    PGconn *c = env_db();
    env_insert_noop(c, "r1", 0, 60);
    env_wait_count(c, "SELECT (count(*) > 0)::int FROM saga_outbox WHERE delivered_at IS NOT "
                      "NULL", 1, 30000, "the first rows delivered");
    PQfinish(c);
    cr_assert_eq(postgres_server_restart(&P), 0);
    c = env_db();
    env_insert_noop(c, "r2", 0, 30);
    env_wait_count(c, "SELECT count(*) FROM saga_outbox WHERE id LIKE 'r2-%' AND delivered_at "
                      "IS NOT NULL", 30, 60000, "rows after the restart delivered");
    PQfinish(c);
    postgres_server_kill(&P, SIGKILL);
    cr_assert_eq(postgres_server_restart(&P), 0);
    c = env_db();
    env_insert_noop(c, "r3", 0, 30);
    assert_one_saga_per_row(c, 120);
    cr_assert(kill(relay, 0) == 0, "the relay is still running");
    cr_assert(env_log_has("relay.log", "lost PostgreSQL"));
    PQfinish(c);
    env_finish();
}

/* docs/outbox.md shows the DDL exactly as `saga relay --schema` prints it. */
Test(relay, docs_show_the_schema) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    cr_assert_not_null(src, "SAGA_SOURCE_DIR is not set (run the tests through ctest)");
    char path[700], doc_path[700];
    snprintf(path, sizeof(path), "%s/schema.sql", env_dir);
    snprintf(doc_path, sizeof(doc_path), "%s/docs/outbox.md", src);
    char *ddl = saga_proc_slurp(path); /* written by the setup */
    char *doc = saga_proc_slurp(doc_path);
    cr_assert(strlen(ddl) > 1000);
    cr_assert(strstr(doc, ddl) != NULL, "docs/outbox.md does not hold the output of "
                                        "`saga relay --schema`: update its DDL section");
    free(ddl);
    free(doc);
    env_finish();
}

/* ---------------------------------------------------------------------- */
/* Host names: resolved off the loop (uv_getaddrinfo), never by libpq      */
/* ---------------------------------------------------------------------- */

static void setup_tcp(void) {
    env_pg_tcp = true;
    env_setup(NULL, NULL);
}

TestSuite(relay_dns, .init = setup_tcp, .fini = teardown, .timeout = 120);

Test(relay_dns, connects_by_host_name) {
    char conninfo[200];
    snprintf(conninfo, sizeof(conninfo), "host=localhost port=%d dbname=postgres user=postgres",
             P.port);
    const char *extra[] = {"--postgres", conninfo, NULL};
    env_relay("relay.log", extra);
    PGconn *c = env_db();
    env_insert_noop(c, "dns", 0, 5);
    env_wait_count(c, DELIVERED, 5, 30000, "rows delivered over TCP by host name");
    json_decref(env_wait_completed(5, 60000));
    cr_assert(env_log_has("relay.log", "host=localhost port="));
    PQfinish(c);
    env_finish();
}

/* A name that does not resolve: reported, retried, and SIGTERM still
 * stops the relay at once (exit 0 in the teardown). */
Test(relay_dns, unknown_host_is_retried) {
    const char *extra[] = {"--postgres", "host=nonexistent.invalid dbname=postgres", NULL};
    env_relay("relay.log", extra);
    test_poll_t p = test_poll_start(30000);
    while (!env_log_has("relay.log", "cannot connect to PostgreSQL"))
        if (!test_poll_next(&p))
            cr_assert_fail("no connection failure reported");
    cr_assert(env_log_has("relay.log", "cannot resolve host 'nonexistent.invalid'"));
    env_finish();
}

/* The relay started before the service created its table: the refused
 * query is a transient failure, reported and retried, and the rows are
 * delivered once the table exists. */
Test(relay, table_created_after_the_relay_started) {
    PGconn *c = env_db();
    env_exec(c, "SET client_min_messages = warning; DROP TABLE saga_outbox CASCADE");
    const char *extra[] = {"--poll", "100ms", NULL};
    env_relay("relay.log", extra);
    test_poll_t p = test_poll_start(30000);
    while (!env_log_has("relay.log", "relation \"saga_outbox\" does not exist"))
        if (!test_poll_next(&p))
            cr_assert_fail("the missing table was not reported");
    char path[700];
    snprintf(path, sizeof(path), "%s/schema.sql", env_dir);
    char *ddl = saga_proc_slurp(path);
    env_exec(c, ddl);
    free(ddl);
    env_insert_noop(c, "late", 0, 4);
    assert_one_saga_per_row(c, 4);
    PQfinish(c);
    env_finish();
}
