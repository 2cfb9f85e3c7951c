/*
 * metrics.h -- a small metrics registry written in the Prometheus text
 * format (version 0.0.4).
 *
 * A registry holds families: counters, gauges and histograms, each with a
 * fixed list of label names. A family's series are created on first use,
 * one per distinct tuple of label values, and written in the order they were
 * created (families in the order they were registered).
 *
 * Cardinality is bounded: a family holds at most `max_series` series
 * (saga_metrics_new(); 0 means SAGA_METRICS_MAX_SERIES). A value recorded
 * for a new tuple beyond that is dropped (the call returns -ENOSPC) and
 * counted in saga_metrics_dropped(), so that a label fed from outside (a
 * saga or step name) cannot grow the process without bound. Callers choose
 * labels whose values come from a bounded set (definitions, phases,
 * outcomes), never ids.
 *
 * Not thread-safe: one registry is used from one thread (the loop's).
 *
 * Names are checked when a family is registered: a metric name matches
 * [a-zA-Z_:][a-zA-Z0-9_:]*, a label name [a-zA-Z_][a-zA-Z0-9_]* and does
 * not begin with "__"; a histogram has no label "le". Label values may hold
 * any bytes but NUL: the writer escapes backslash, double quote and line
 * feed as the format requires. HELP text escapes backslash and line feed.
 */
#ifndef SAGA_UTIL_METRICS_H
#define SAGA_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SAGA_METRICS_MAX_LABELS 8
#define SAGA_METRICS_MAX_SERIES 2000

typedef struct saga_metrics_s saga_metrics_t;
typedef struct saga_metric_s saga_metric_t;

/* Creates an empty registry. `max_series` caps each family (0: the
 * default). Returns NULL when out of memory. */
saga_metrics_t *saga_metrics_new(size_t max_series);

/* Frees the registry and every family and series in it. Accepts NULL. */
void saga_metrics_free(saga_metrics_t *m);

/* Registers a family. `name`, `help` and the label names are copied.
 * `labels` holds `nlabels` names (at most SAGA_METRICS_MAX_LABELS; may be
 * NULL when 0). A family without labels has its single series from the
 * start (written as 0 before anything is recorded). Histogram `buckets`
 * (upper bounds, strictly increasing, finite; +Inf is implied) are copied.
 * Returns the family, owned by the registry; NULL when a name is invalid,
 * registered already, the buckets are not increasing, or memory is short. */
saga_metric_t *saga_metrics_counter(saga_metrics_t *m, const char *name, const char *help,
                                    const char *const *labels, size_t nlabels);
saga_metric_t *saga_metrics_gauge(saga_metrics_t *m, const char *name, const char *help,
                                  const char *const *labels, size_t nlabels);
saga_metric_t *saga_metrics_histogram(saga_metrics_t *m, const char *name, const char *help,
                                      const char *const *labels, size_t nlabels,
                                      const double *buckets, size_t nbuckets);

/* Records into the series of the label values `values` (as many as the
 * family has label names; NULL when it has none; each NUL-terminated):
 * _add adds `v` (a counter takes v >= 0 only), _set sets a gauge, _observe
 * adds an observation to a histogram. Returns 0; -EINVAL (the wrong kind of
 * family, a negative counter increment, a NaN); -ENOSPC (a new series beyond
 * the family's cap: dropped and counted); -ENOMEM (dropped). */
int saga_metric_add(saga_metric_t *f, const char *const *values, double v);
int saga_metric_set(saga_metric_t *f, const char *const *values, double v);
int saga_metric_observe(saga_metric_t *f, const char *const *values, double v);

/* Values recorded for series the cap refused (see the top of this file). */
uint64_t saga_metrics_dropped(const saga_metrics_t *m);

/* Writes every family: "# HELP", "# TYPE", then its samples; a histogram
 * as cumulative name_bucket{...,le="B"} lines ending with le="+Inf", then
 * name_sum and name_count. Numbers are written so that they read back
 * exactly ("3", "0.25", "+Inf", "NaN"). Returns 0, or -EIO when `out`
 * reports a write error. */
int saga_metrics_write(const saga_metrics_t *m, FILE *out);

/* Writes `v` as the format wants a number into buf (at least 32 bytes). */
void saga_metrics_format_value(double v, char *buf, size_t len);

#endif
