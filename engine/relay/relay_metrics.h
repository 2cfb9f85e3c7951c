/*
 * relay_metrics.h -- what a relay counts, for `saga relay --metrics`
 * (docs/outbox.md, "Metrics"). Private to engine/relay/: relay.c records,
 * saga_relay_metrics() writes.
 *
 * Every family has no label or a label from a fixed set, so the registry
 * never grows after it is made.
 */
#ifndef SAGA_RELAY_METRICS_H
#define SAGA_RELAY_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Pending rows counted at most (the backlog gauge saturates there): the
 * count walks the partial index of pending rows, so its cost is bounded
 * by this however large the backlog grows. */
#define SAGA_RELAY_BACKLOG_COUNT_MAX 100000

typedef struct saga__relay_metrics_s saga__relay_metrics_t;

/* Why a batch was cut short (the `cause` label). */
typedef enum {
    SAGA__RELAY_CAUSE_POSTGRES = 0, /* a query failed, the connection went */
    SAGA__RELAY_CAUSE_REDIS = 1,    /* the store did not answer or refused */
    SAGA__RELAY_CAUSE_INTERNAL = 2  /* out of memory */
} saga__relay_cause_t;

/* A registry with every family at zero. Returns NULL when out of memory. */
saga__relay_metrics_t *saga__relay_metrics_new(void);

/* Frees it; accepts NULL. */
void saga__relay_metrics_free(saga__relay_metrics_t *m);

/* A committed batch: rows delivered (of which `fresh` started a saga now)
 * and refused. */
void saga__relay_metrics_batch(saga__relay_metrics_t *m, uint64_t delivered, uint64_t fresh,
                               uint64_t refused);

/* A batch cut short by a transient failure. */
void saga__relay_metrics_transient(saga__relay_metrics_t *m, saga__relay_cause_t cause);

/* One delivered row's delay: from its created_at to the commit that
 * marked it delivered, in seconds. */
void saga__relay_metrics_delay(saga__relay_metrics_t *m, double seconds);

/* The backlog as last counted: pending rows (at most
 * SAGA_RELAY_BACKLOG_COUNT_MAX) and the oldest one's age in seconds (0
 * when none). */
void saga__relay_metrics_backlog(saga__relay_metrics_t *m, double pending, double oldest_s);

/* Whether the relay's PostgreSQL connection is up. */
void saga__relay_metrics_connected(saga__relay_metrics_t *m, bool up);

/* Writes every family in the Prometheus text format. Returns 0 or -EIO. */
int saga__relay_metrics_write(const saga__relay_metrics_t *m, FILE *out);

#endif
