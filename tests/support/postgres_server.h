/*
 * postgres_server.h -- test harness: a real PostgreSQL server per test.
 *
 * initdb in a fresh temp directory, then `postgres` in the foreground as
 * our child, on a unix socket in that directory only (listen_addresses
 * is empty: no TCP port), with fsync off (tests need speed, not
 * durability across power loss). PostgreSQL refuses to run as root: when
 * the tests run as root (CI does), initdb and the server run as the
 * `postgres` user that Debian's package creates, and the directory is
 * handed to it. The database superuser is `postgres`, trusted on the
 * socket. The binaries are found through `pg_config --bindir`, else
 * /usr/lib/postgresql/<version>/bin, else PATH.
 *
 * Blocking helpers: tests only, never the engine.
 */
#ifndef SAGA_TEST_POSTGRES_SERVER_H
#define SAGA_TEST_POSTGRES_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include <libpq-fe.h>

typedef struct postgres_server_s {
    char dir[256];       /* temp dir: data/, the socket, the logs */
    char data[300];      /* <dir>/data */
    char bindir[256];    /* where initdb and postgres are */
    char conninfo[400];  /* "host=<dir> port=5432 dbname=postgres user=postgres" */
    int port;            /* 5432 on the socket only; with TCP, a free port */
    char url[400];       /* the same as a postgresql:// URI */
    pid_t pid;           /* the postmaster; 0 when not running */
    uid_t uid;           /* who runs it */
    gid_t gid;
    bool as_other;       /* uid/gid differ from ours (we are root) */
} postgres_server_t;

/* initdb + start. Returns 0, or -1 with a message on stderr (then nothing
 * is left and postgres_server_stop(s) is a no-op). */
int postgres_server_start(postgres_server_t *s);

/* The same, also listening on 127.0.0.1 at a port that was free a moment
 * ago (s->port), for clients that connect by host name. */
int postgres_server_start_tcp(postgres_server_t *s);

/* Sends `sig` to the postmaster (SIGKILL: a crash; SIGINT: a fast
 * shutdown) and reaps it; with SIGKILL, also kills its backends (found by
 * the data directory's postmaster.pid owner: every process of the
 * server's session). */
void postgres_server_kill(postgres_server_t *s, int sig);

/* Starts the server again on the same data directory and socket. */
int postgres_server_restart(postgres_server_t *s);

/* Stops the server (fast shutdown, then SIGKILL), removes its directory.
 * Accepts a server that is not running. */
void postgres_server_stop(postgres_server_t *s);

/* A blocking connection for the test's own SQL; NULL with a message on
 * stderr when it cannot connect. PQfinish it. */
PGconn *postgres_server_connect(const postgres_server_t *s);

/* Runs `sql` (one or more statements) on `c`; returns 0, or -1 with the
 * server's message on stderr. */
int postgres_exec(PGconn *c, const char *sql);

/* The first column of the first row of `sql`'s result as a long (-1 when
 * the query fails or returns no row / NULL). */
long postgres_long(PGconn *c, const char *sql);

#endif
