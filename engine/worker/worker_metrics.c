/*
 * worker_metrics.c -- what a worker counts, for `saga worker --metrics`
 * (docs/operations.md, "Metrics").
 *
 * The engine reports each attempt through on_progress (outcome and time),
 * the worker sees creations, finishes and takeovers, and the timed store
 * (store/store_timed.h) wrapped around the engine's store times every
 * checkpoint write from its submission to its acknowledgement and sees the
 * fenced ones. Reconnects and sagas in flight are read at scrape time.
 *
 * Label values come from bounded sets: the served and claimed
 * definitions' saga and step names, the five phases, the outcomes and final
 * states; the registry caps each family anyway (util/metrics.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "saga/errors.h"
#include "saga/worker.h"
#include "store/store_redis.h"
#include "util/metrics.h"
#include "worker/worker_internal.h"

struct saga__worker_metrics_s {
    saga_metrics_t *reg;
    saga_metric_t *started;
    saga_metric_t *finished;
    saga_metric_t *attempts;
    saga_metric_t *step_seconds;
    saga_metric_t *write_seconds;
    saga_metric_t *in_flight;
    saga_metric_t *takeovers;
    saga_metric_t *fenced;
    saga_metric_t *reconnects;
    saga_metric_t *dropped;
    uint64_t reconnects_seen; /* the store's count at the last scrape */
    uint64_t dropped_seen;
};

/* Handler calls: from an in-process handler's tenth of a millisecond to
 * minutes. */
static const double step_buckets[] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
/* Checkpoint writes: an FCALL round trip, with fsync when AOF is always. */
static const double write_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                       0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

#define N(a) (sizeof(a) / sizeof((a)[0]))

int saga__worker_metrics_init(saga_worker_t *w) {
    static const char *const saga_l[] = {"saga"};
    static const char *const finished_l[] = {"saga", "state"};
    static const char *const attempt_l[] = {"saga", "step", "phase", "outcome"};
    static const char *const step_l[] = {"saga", "step", "phase"};
    saga__worker_metrics_t *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->reg = saga_metrics_new(0)) == NULL)
        goto fail;
    saga_metrics_t *r = m->reg;
    m->started = saga_metrics_counter(
        r, "saga_worker_sagas_started_total",
        "Sagas this worker created, counted when their creation was durable.", saga_l, 1);
    m->finished = saga_metrics_counter(
        r, "saga_worker_sagas_finished_total",
        "Sagas that left this worker: completed, compensated, stuck (parked for an "
        "operator), or lost (the store refused a write or fenced it).", finished_l, 2);
    m->attempts = saga_metrics_counter(
        r, "saga_worker_step_attempts_total",
        "Handler calls by outcome: ok, technical, business, timeout.", attempt_l, 4);
    m->step_seconds = saga_metrics_histogram(
        r, "saga_worker_step_duration_seconds",
        "Time of one handler call (an attempt), to its result or its timeout.", step_l, 3,
        step_buckets, N(step_buckets));
    m->write_seconds = saga_metrics_histogram(
        r, "saga_worker_checkpoint_write_seconds",
        "Time from a checkpoint write's submission to the store's acknowledgement.", NULL,
        0, write_buckets, N(write_buckets));
    m->in_flight = saga_metrics_gauge(r, "saga_worker_sagas_in_flight",
                                      "Sagas running in this worker now.", NULL, 0);
    m->takeovers = saga_metrics_counter(
        r, "saga_worker_takeovers_total",
        "Sagas this worker claimed and resumed: from workers whose lease expired, "
        "released by departing workers, or listed by an operator.", NULL, 0);
    m->fenced = saga_metrics_counter(
        r, "saga_worker_fenced_writes_total",
        "Checkpoint writes refused because another worker took the saga over.", NULL, 0);
    m->reconnects = saga_metrics_counter(
        r, "saga_worker_redis_reconnects_total",
        "Connections to Redis that came up again after being lost.", NULL, 0);
    m->dropped = saga_metrics_counter(
        r, "saga_worker_metrics_series_dropped_total",
        "Values not recorded because a metric reached its cap of label combinations.",
        NULL, 0);
    if (m->started == NULL || m->finished == NULL || m->attempts == NULL ||
        m->step_seconds == NULL || m->write_seconds == NULL || m->in_flight == NULL ||
        m->takeovers == NULL || m->fenced == NULL || m->reconnects == NULL ||
        m->dropped == NULL)
        goto fail;
    w->m = m;
    return 0;
fail:
    if (m != NULL)
        saga_metrics_free(m->reg);
    free(m);
    w->m = NULL;
    return -ENOMEM;
}

void saga__worker_metrics_free(saga_worker_t *w) {
    if (w->m == NULL)
        return;
    saga_metrics_free(w->m->reg);
    free(w->m);
    w->m = NULL;
}

void saga__worker_metrics_progress(const saga_progress_t *p, void *data) {
    saga_worker_t *w = data;
    if (w->m == NULL || (p->kind != SAGA_PROGRESS_CALL_SUCCEEDED &&
                         p->kind != SAGA_PROGRESS_CALL_FAILED))
        return;
    const char *outcome = p->kind == SAGA_PROGRESS_CALL_SUCCEEDED ? "ok"
                          : p->timed_out                          ? "timeout"
                          : p->outcome == SAGA_OUTCOME_BUSINESS   ? "business"
                                                                  : "technical";
    const char *phase = saga_phase_name(p->phase);
    const char *step = p->step ? p->step : "";
    const char *saga = p->saga_name ? p->saga_name : "";
    const char *av[] = {saga, step, phase, outcome};
    saga_metric_add(w->m->attempts, av, 1);
    saga_metric_observe(w->m->step_seconds, av, (double)p->elapsed_us / 1e6);
}

void saga__worker_metrics_started(saga_worker_t *w, const char *saga) {
    if (w->m != NULL)
        saga_metric_add(w->m->started, (const char *const[]){saga}, 1);
}

void saga__worker_metrics_finished(saga_worker_t *w, const char *saga, const char *state) {
    if (w->m != NULL)
        saga_metric_add(w->m->finished, (const char *const[]){saga, state}, 1);
}

void saga__worker_metrics_takeover(saga_worker_t *w) {
    if (w->m != NULL)
        saga_metric_add(w->m->takeovers, NULL, 1);
}

void saga__worker_metrics_write(int status, uint64_t elapsed_ns, void *data) {
    saga_worker_t *w = data;
    if (w->m == NULL)
        return;
    if (status == SAGA_EFENCED)
        saga_metric_add(w->m->fenced, NULL, 1);
    /* Only writes the store answered (applied or refused): not those that
     * failed here, the store closing or never reached. */
    if (status != SAGA_ECLOSING && status != SAGA_EUNAVAILABLE)
        saga_metric_observe(w->m->write_seconds, NULL, (double)elapsed_ns / 1e9);
}

int saga_worker_metrics(saga_worker_t *w, FILE *out) {
    saga__worker_metrics_t *m = w->m;
    if (m == NULL)
        return -ENOTSUP;
    saga_store_redis_stats_t st;
    saga_store_redis_stats(w->store, &st);
    if (st.reconnects > m->reconnects_seen) {
        saga_metric_add(m->reconnects, NULL, (double)(st.reconnects - m->reconnects_seen));
        m->reconnects_seen = st.reconnects;
    }
    uint64_t dropped = saga_metrics_dropped(m->reg);
    if (dropped > m->dropped_seen) {
        saga_metric_add(m->dropped, NULL, (double)(dropped - m->dropped_seen));
        m->dropped_seen = dropped;
    }
    saga_metric_set(m->in_flight, NULL, (double)saga_engine_active(w->engine));
    return saga_metrics_write(m->reg, out);
}
