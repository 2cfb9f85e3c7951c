/*
 * service_proc.h -- test harness: the real saga-sample-service as a child
 * process on an ephemeral loopback port.
 *
 * The service is $SAGA_BUILD_DIR/bin/saga-sample-service, started with
 * --port 0; its port is read from the "listening on 127.0.0.1:PORT" line it
 * prints. It gets SIGTERM if the test process dies. The helpers that talk to
 * it (service_get...) block: tests only, never on a loop under test.
 */
#ifndef SAGA_TEST_SERVICE_PROC_H
#define SAGA_TEST_SERVICE_PROC_H

#include <sys/types.h>

#include <jansson.h>

typedef struct service_proc_s {
    pid_t pid;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
} service_proc_t;

/* Starts the service with extra arguments (NULL-terminated list, or NULL).
 * Asserts on failure. */
void service_start(service_proc_t *s, const char *const *extra);

/* Stops it (SIGTERM), asserts it exits 0 (a clean shutdown). */
void service_stop(service_proc_t *s);

/* A blocking request on a fresh connection; returns the parsed JSON body
 * (asserts a 2xx JSON answer). `body` may be NULL. */
json_t *service_request(service_proc_t *s, const char *method,
                        const char *path, const char *body);

/* GET path (same as service_request(s, "GET", path, NULL)). */
json_t *service_get(service_proc_t *s, const char *path);

/* Open connections the service sees, not counting the one asking. */
int service_connections(service_proc_t *s);

/* A loopback port that nothing listens on (bound, then closed). */
int unused_port(void);

#endif
