/*
 * relay_metrics.c -- the registry of `saga relay --metrics` (see
 * relay_metrics.h and docs/outbox.md, "Metrics").
 *
 * Counters move where relay.c already counts (a batch's commit, a batch
 * cut short); the delay of each delivered row is measured by PostgreSQL
 * (its age when the batch read it, by the database's clock) plus the
 * relay's monotonic time from that read to the commit, so no clock skew
 * between the relay and the database enters it. The backlog gauges are
 * what the relay's last count between batches found.
 */
#include "relay/relay_metrics.h"

#include <errno.h>
#include <stdlib.h>

#include "util/metrics.h"

struct saga__relay_metrics_s {
    saga_metrics_t *reg;
    saga_metric_t *delivered;
    saga_metric_t *started;
    saga_metric_t *refused;
    saga_metric_t *batches;
    saga_metric_t *failed;
    saga_metric_t *delay;
    saga_metric_t *pending;
    saga_metric_t *oldest;
    saga_metric_t *up;
};

/* From a row picked up at once (a few ms) to one that waited through an
 * outage (an hour). */
static const double delay_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                       10, 30, 60, 120, 300, 600, 1800, 3600};

static const char *const cause_names[] = {"postgres", "redis", "internal"};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define STR(x) #x
#define XSTR(x) STR(x)

saga__relay_metrics_t *saga__relay_metrics_new(void) {
    static const char *const cause_l[] = {"cause"};
    saga__relay_metrics_t *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->reg = saga_metrics_new(0)) == NULL)
        goto fail;
    saga_metrics_t *r = m->reg;
    m->delivered = saga_metrics_counter(
        r, "saga_relay_rows_delivered_total",
        "Outbox rows this relay marked delivered (their commit done).", NULL, 0);
    m->started = saga_metrics_counter(
        r, "saga_relay_sagas_started_total",
        "Delivered rows whose submit started a saga (not submitted before, e.g. by a relay "
        "that died before its commit).", NULL, 0);
    m->refused = saga_metrics_counter(
        r, "saga_relay_rows_refused_total",
        "Outbox rows this relay refused for good: their error column set, never taken again.",
        NULL, 0);
    m->batches = saga_metrics_counter(
        r, "saga_relay_batches_total", "Batches (transactions) this relay committed.", NULL, 0);
    m->failed = saga_metrics_counter(
        r, "saga_relay_batches_failed_total",
        "Batches cut short by a transient failure (postgres: a query or the connection; "
        "redis: the store; internal: out of memory); their rows stay pending and are taken "
        "again after a backoff.", cause_l, 1);
    m->delay = saga_metrics_histogram(
        r, "saga_relay_delivery_delay_seconds",
        "Time from a delivered row's created_at to the commit that marked it delivered "
        "(its age measured by PostgreSQL's clock when the batch read it).", NULL, 0,
        delay_buckets, N(delay_buckets));
    m->pending = saga_metrics_gauge(
        r, "saga_relay_backlog_rows",
        "Pending outbox rows (not delivered, no error) at the relay's last count between "
        "batches; the count stops at " XSTR(SAGA_RELAY_BACKLOG_COUNT_MAX) ".", NULL, 0);
    m->oldest = saga_metrics_gauge(
        r, "saga_relay_backlog_oldest_seconds",
        "Age of the oldest pending outbox row at the relay's last count (PostgreSQL's clock); "
        "0 when none.", NULL, 0);
    m->up = saga_metrics_gauge(r, "saga_relay_postgres_up",
                               "1 while the relay's connection to PostgreSQL is up, else 0.",
                               NULL, 0);
    if (m->delivered == NULL || m->started == NULL || m->refused == NULL ||
        m->batches == NULL || m->failed == NULL || m->delay == NULL || m->pending == NULL ||
        m->oldest == NULL || m->up == NULL)
        goto fail;
    for (size_t i = 0; i < N(cause_names); i++) /* every cause shown from the start */
        if (saga_metric_add(m->failed, &cause_names[i], 0) != 0)
            goto fail;
    return m;
fail:
    if (m != NULL)
        saga_metrics_free(m->reg);
    free(m);
    return NULL;
}

void saga__relay_metrics_free(saga__relay_metrics_t *m) {
    if (m == NULL)
        return;
    saga_metrics_free(m->reg);
    free(m);
}

void saga__relay_metrics_batch(saga__relay_metrics_t *m, uint64_t delivered, uint64_t fresh,
                               uint64_t refused) {
    if (m == NULL)
        return;
    saga_metric_add(m->delivered, NULL, (double)delivered);
    saga_metric_add(m->started, NULL, (double)fresh);
    saga_metric_add(m->refused, NULL, (double)refused);
    saga_metric_add(m->batches, NULL, 1);
}

void saga__relay_metrics_transient(saga__relay_metrics_t *m, saga__relay_cause_t cause) {
    if (m != NULL && (size_t)cause < N(cause_names))
        saga_metric_add(m->failed, &cause_names[cause], 1);
}

void saga__relay_metrics_delay(saga__relay_metrics_t *m, double seconds) {
    if (m != NULL)
        saga_metric_observe(m->delay, NULL, seconds < 0 ? 0 : seconds);
}

void saga__relay_metrics_backlog(saga__relay_metrics_t *m, double pending, double oldest_s) {
    if (m == NULL)
        return;
    saga_metric_set(m->pending, NULL, pending);
    saga_metric_set(m->oldest, NULL, oldest_s < 0 ? 0 : oldest_s);
}

void saga__relay_metrics_connected(saga__relay_metrics_t *m, bool up) {
    if (m != NULL)
        saga_metric_set(m->up, NULL, up ? 1 : 0);
}

int saga__relay_metrics_write(const saga__relay_metrics_t *m, FILE *out) {
    return saga_metrics_write(m->reg, out);
}
