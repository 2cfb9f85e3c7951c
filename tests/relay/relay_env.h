/*
 * relay_env.h -- what the relay suites share: a real redis-server, a real
 * PostgreSQL (the outbox DDL of `saga relay --schema` applied), a real
 * `saga worker` serving test definitions, and `saga relay` processes.
 * Blocking helpers that fail the running Criterion test.
 */
#ifndef SAGA_TEST_RELAY_ENV_H
#define SAGA_TEST_RELAY_ENV_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "postgres_server.h"
#include "redis_server.h"

extern redis_server_t R;
extern postgres_server_t P;
extern char env_dir[512];   /* a work directory for logs and definitions */
extern bool env_pg_tcp;     /* set before env_setup: PostgreSQL also on TCP */

/* Starts Redis and PostgreSQL, applies the DDL, writes the definitions
 * `noop` (input required: [n]; one demo.noop step) plus `extra_defs`
 * (NULL-terminated pairs: file name, YAML text), runs `before_worker`
 * (when not NULL: what needs the servers, e.g. the worker's environment),
 * starts a worker. */
void env_setup(const char *const *extra_defs, void (*before_worker)(void));

/* The end of a test's body: stops every relay started with env_relay with
 * SIGTERM and fails the test unless each exits 0, wrote only log lines
 * (nothing raw on stderr) and no sanitizer report. (In a suite's .fini a
 * failure would not count: Criterion 2.4.1 has reported the test by then.) */
void env_finish(void);

/* Stops what is still running (relays, the worker, the servers) and
 * removes their directories. */
void env_teardown(void);

/* Starts `saga relay --postgres <P> --redis <R> EXTRA...` with its log at
 * <env_dir>/<log>; returns its pid (kept for the teardown). */
pid_t env_relay(const char *log, const char *const *extra);

/* As env_relay, with its stdout apart in <env_dir>/<out> (where `saga
 * relay --metrics` prints its address first), its log in <env_dir>/<log>. */
pid_t env_relay_out(const char *log, const char *out, const char *const *extra);

/* SIGTERMs a relay started with env_relay, waits, forgets it; returns its
 * exit status (saga_proc_wait). */
int env_relay_stop(pid_t pid);

/* Forgets a relay the test ended itself (kill -9). */
void env_relay_forget(pid_t pid);

/* A blocking connection to P (fails the test when it cannot). */
PGconn *env_db(void);

/* Runs SQL, failing the test when it fails. */
void env_exec(PGconn *c, const char *sql);

/* The first column of the first row of `sql` as a long (-1: none). */
long env_long(PGconn *c, const char *sql);

/* Inserts rows id = <prefix>-<i> for i in [from, to) of saga `noop`
 * (input {"n": i}) in one transaction. */
void env_insert_noop(PGconn *c, const char *prefix, int from, int to);

/* Waits until `sql` (a count) reaches `want`; fails saying `what`. */
void env_wait_count(PGconn *c, const char *sql, long want, long timeout_ms, const char *what);

/* `saga list --json` of every saga (at most 100000), as an array. */
json_t *env_list(void);

/* Waits until `n` sagas exist and every one is completed; returns the list. */
json_t *env_wait_completed(size_t n, long timeout_ms);

/* True when the file <env_dir>/<log> contains `needle`. */
bool env_log_has(const char *log, const char *needle);

#endif
