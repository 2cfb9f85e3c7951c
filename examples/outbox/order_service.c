/*
 * order_service.c -- saga-example-orders: the smallest service that uses
 * both halves of docs/outbox.md, so that the whole loop can be run (and is,
 * by tests/relay/test_example.c):
 *
 *   order    writes an order and its outbox row in ONE transaction: the
 *            saga `order` starts (through `saga relay`) if and only if the
 *            order was committed;
 *   reserve  the action of the saga's step `reserve`, run by exec.run:
 *            saga_barrier() with the call's idempotency key first, then the
 *            work, in one transaction;
 *   release  its compensation, the same way;
 *   charge   the saga's second step: refuses (a business failure) orders of
 *            more than 5 items, so that `reserve` gets compensated.
 *
 *   saga-example-orders [--db CONNINFO] setup
 *   saga-example-orders [--db CONNINFO] order ID ITEM QTY
 *   saga-example-orders [--db CONNINFO] reserve|release|charge
 *       (ORDER_ID, ITEM, QTY and SAGA_IDEMPOTENCY_KEY from the environment,
 *        as exec.run sets them)
 *
 * Without --db, the connection string is $ORDERS_DB (the worker's own
 * environment reaches the handlers exec.run starts).
 *
 * Exit codes: 0 done (or skipped by the barrier: success), 2 a business
 * refusal (not enough stock, over the limit), 1 anything else (exec.run
 * reports a technical failure and the engine retries).
 *
 * A plain blocking libpq program: it is a service, not the engine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define EXIT_REFUSED 2

static const char setup_sql[] =
    "CREATE TABLE IF NOT EXISTS stock (\n"
    "    item      text PRIMARY KEY,\n"
    "    available integer NOT NULL CHECK (available >= 0),\n"
    "    reserved  integer NOT NULL DEFAULT 0 CHECK (reserved >= 0)\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS orders (\n"
    "    id     text PRIMARY KEY,\n"
    "    item   text NOT NULL,\n"
    "    qty    integer NOT NULL CHECK (qty > 0),\n"
    "    status text NOT NULL DEFAULT 'new'  -- new, reserved, released\n"
    ");\n";

static PGconn *db;

static void die(const char *what) {
    fprintf(stderr, "saga-example-orders: %s: %s", what, PQerrorMessage(db));
    PQfinish(db);
    exit(1);
}

/* Runs `sql` with text parameters; dies on failure. Returns the result. */
static PGresult *run(const char *sql, int n, const char *const *params) {
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        PQclear(r);
        die(sql);
    }
    return r;
}

static void run0(const char *sql, int n, const char *const *params) {
    PQclear(run(sql, n, params));
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "saga-example-orders: %s is not set\n", name);
        exit(1);
    }
    return v;
}

/* BEGIN, then saga_barrier(key): true when the work is to be done now. */
static int barrier(void) {
    const char *key = env("SAGA_IDEMPOTENCY_KEY");
    run0("BEGIN", 0, NULL);
    PGresult *r = run("SELECT saga_barrier($1)", 1, &key);
    int go = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return go;
}

static int cmd_order(const char *id, const char *item, const char *qty) {
    const char *p[] = {id, item, qty};
    run0("BEGIN", 0, NULL);
    run0("INSERT INTO orders (id, item, qty) VALUES ($1, $2, $3::integer)", 3, p);
    run0("INSERT INTO saga_outbox (id, saga, input) VALUES ($1, 'order', "
         "jsonb_build_object('order_id', $1::text, 'item', $2::text, 'qty', $3::integer))",
         3, p);
    run0("COMMIT", 0, NULL);
    return 0;
}

static int cmd_reserve(void) {
    const char *p[] = {env("ITEM"), env("QTY"), env("ORDER_ID")};
    if (!barrier()) {
        run0("COMMIT", 0, NULL);
        return 0;
    }
    PGresult *r = run("UPDATE stock SET available = available - $2::integer, "
                      "reserved = reserved + $2::integer "
                      "WHERE item = $1 AND available >= $2::integer", 2, p);
    int ok = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!ok) {
        /* the barrier's record goes with the rollback: nothing happened */
        run0("ROLLBACK", 0, NULL);
        fprintf(stderr, "not enough %s in stock for %s\n", p[0], p[1]);
        return EXIT_REFUSED;
    }
    run0("UPDATE orders SET status = 'reserved' WHERE id = $1", 1, p + 2);
    run0("COMMIT", 0, NULL);
    return 0;
}

static int cmd_release(void) {
    const char *p[] = {env("ITEM"), env("QTY"), env("ORDER_ID")};
    if (barrier()) {
        run0("UPDATE stock SET available = available + $2::integer, "
             "reserved = reserved - $2::integer WHERE item = $1", 2, p);
        run0("UPDATE orders SET status = 'released' WHERE id = $1", 1, p + 2);
    }
    run0("COMMIT", 0, NULL);
    return 0;
}

static int cmd_charge(void) {
    long qty = strtol(env("QTY"), NULL, 10);
    if (qty > 5) {
        fprintf(stderr, "over the limit: %ld items\n", qty);
        return EXIT_REFUSED;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *conninfo = getenv("ORDERS_DB");
    if (argc >= 3 && strcmp(argv[1], "--db") == 0) {
        conninfo = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc < 2 || conninfo == NULL) {
        fprintf(stderr, "usage: saga-example-orders [--db CONNINFO] "
                        "setup | order ID ITEM QTY | reserve | release | charge\n"
                        "(without --db: $ORDERS_DB)\n");
        return 1;
    }
    db = PQconnectdb(conninfo);
    if (PQstatus(db) != CONNECTION_OK)
        die("connect");
    const char *cmd = argv[1];
    int rc;
    if (strcmp(cmd, "setup") == 0 && argc == 2) {
        PQclear(PQexec(db, "SET client_min_messages = warning"));
        PGresult *r = PQexec(db, setup_sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            die("setup");
        PQclear(r);
        rc = 0;
    } else if (strcmp(cmd, "order") == 0 && argc == 5) {
        rc = cmd_order(argv[2], argv[3], argv[4]);
    } else if (strcmp(cmd, "reserve") == 0 && argc == 2) {
        rc = cmd_reserve();
    } else if (strcmp(cmd, "release") == 0 && argc == 2) {
        rc = cmd_release();
    } else if (strcmp(cmd, "charge") == 0 && argc == 2) {
        rc = cmd_charge();
    } else {
        fprintf(stderr, "saga-example-orders: unknown command or wrong arguments: %s\n", cmd);
        rc = 1;
    }
    PQfinish(db);
    return rc;
}
