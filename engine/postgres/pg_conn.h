/*
 * pg_conn.h -- one asynchronous PostgreSQL connection on a libuv loop.
 *
 * Built on libpq's asynchronous API (PostgreSQL 15's libpq): the connection
 * is made with PQconnectStartParams + PQconnectPoll, queries are sent with
 * PQsendQuery / PQsendQueryParams in non-blocking mode and flushed with
 * PQflush, and the socket (PQsocket) is watched with a uv_poll_t; on
 * readable, PQconsumeInput, then PQgetResult while !PQisBusy. Host names
 * are resolved before each attempt with uv_getaddrinfo (libuv's thread
 * pool) and passed as `hostaddr`, since libpq would resolve them with a
 * blocking getaddrinfo. No libpq call made here ever blocks the loop.
 *
 * What it adds to libpq: a connect timeout and a query timeout (uv timers;
 * a query that runs longer drops the connection), reconnection with capped
 * exponential backoff, a queue of queries (one in flight at a time, the
 * next sent when the previous one's last result arrived), and LISTEN
 * notifications handed to a callback. No PostgreSQL knowledge beyond
 * that: no saga, no table.
 *
 * Contract:
 *  - saga_pg_query() returns an error (then `cb` never runs) or 0, and
 *    then `cb` runs exactly once, later, never from inside the call.
 *  - A query is answered with status 0 and its last result (COMMAND_OK or
 *    TUPLES_OK), SAGA_ESTORE and the server's error result when the server
 *    refused it (`errstr` is its message, PQresultErrorField gives the
 *    SQLSTATE), SAGA_EUNAVAILABLE when the connection was lost or the query
 *    timed out first (whether it ran is unknown: a transaction that was
 *    open is rolled back by the server), SAGA_ECLOSING at close. The result
 *    is freed when the callback returns.
 *  - A session's state (LISTEN, SET, an open transaction) does not survive
 *    a reconnection: the owner redoes what it needs on each READY.
 *  - Callbacks may call saga_pg_query() and saga_pg_close(); the object is
 *    freed only once every handle closed, never under a running callback.
 */
#ifndef SAGA_PG_CONN_H
#define SAGA_PG_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

typedef struct saga_pg_s saga_pg_t;

typedef struct saga_pg_options_s {
    uint64_t connect_timeout_ms;  /* per attempt; 0: 5000 */
    uint64_t query_timeout_ms;    /* a query unanswered this long drops the
                                     connection; 0: 30000 */
    uint64_t reconnect_min_ms;    /* first reconnect delay; 0: 100 */
    uint64_t reconnect_max_ms;    /* backoff cap; 0: 5000 */
    const char *application_name; /* when the conninfo names none; NULL: none */
} saga_pg_options_t;

typedef enum saga_pg_event_e {
    SAGA_PG_READY = 0,          /* connected: queries may be sent */
    SAGA_PG_LOST = 1,           /* a ready connection was lost; reconnecting */
    SAGA_PG_CONNECT_FAILED = 2  /* an attempt failed (`errstr` says why);
                                   the next one follows after the backoff */
} saga_pg_event_t;

typedef void (*saga_pg_event_cb)(saga_pg_t *pg, saga_pg_event_t ev, const char *errstr,
                                 void *data);

/* A notification of a channel this session LISTENs to (payload "" when
 * none). Both strings are valid during the callback. */
typedef void (*saga_pg_notify_cb)(saga_pg_t *pg, const char *channel, const char *payload,
                                  void *data);

typedef void (*saga_pg_result_cb)(saga_pg_t *pg, int status, const PGresult *res,
                                  const char *errstr, void *data);

/* Checks a connection string (key=value pairs or a postgresql:// URI)
 * without connecting. Returns 0, or -EINVAL with libpq's reason in `err`. */
int saga_pg_conninfo_check(const char *conninfo, char *err, size_t errlen);

/* Creates a connection object (does not connect yet); `conninfo` and the
 * options' strings are copied. `on_notify` may be NULL. Returns NULL on
 * allocation failure. */
saga_pg_t *saga_pg_new(uv_loop_t *loop, const char *conninfo, const saga_pg_options_t *opt,
                       saga_pg_event_cb on_event, saga_pg_notify_cb on_notify, void *data);

/* Starts connecting (and keeps reconnecting until closed). Returns 0, or
 * -EALREADY / -ECANCELED (closed), and then no event fires. */
int saga_pg_start(saga_pg_t *pg);

/* True between READY and the next LOST. */
bool saga_pg_ready(const saga_pg_t *pg);

/* Queues `sql` with `nparams` text parameters (NULL for SQL NULL; copied)
 * and no parameter when nparams is 0: then `sql` may hold several
 * statements (the simple query protocol) and the last one's result is
 * answered. Returns 0, or -ENOTCONN (not ready), -ECANCELED (closing),
 * -EINVAL, -ENOMEM, and then `cb` never runs. */
int saga_pg_query(saga_pg_t *pg, const char *sql, int nparams, const char *const *params,
                  saga_pg_result_cb cb, void *data);

/* Where it connects, for messages: host (or socket directory), port,
 * database and user as the conninfo gives them; never the password. */
const char *saga_pg_display(const saga_pg_t *pg);

/* Closes the connection: queued and running queries are answered with
 * SAGA_ECLOSING, no event fires any more, and once every handle is closed
 * `closed` (if any) runs and the object is freed. Safe from any callback. */
void saga_pg_close(saga_pg_t *pg, void (*closed)(void *data), void *data);

#endif
