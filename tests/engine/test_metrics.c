/*
 * test_metrics.c -- the metrics registry (util/metrics.c): the exact text
 * it writes, label-value escaping, cumulative histogram buckets, the cap
 * on series, and the names it refuses.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util/metrics.h"

/* The registry's text, NUL-terminated (caller frees). */
static char *text_of(const saga_metrics_t *m) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(saga_metrics_write(m, f), 0);
    fclose(f);
    return buf;
}

Test(metrics, counters_and_gauges_are_written_exactly) {
    saga_metrics_t *m = saga_metrics_new(0);
    static const char *const l[] = {"saga", "state"};
    saga_metric_t *c = saga_metrics_counter(m, "x_finished_total", "Sagas finished.", l, 2);
    saga_metric_t *g = saga_metrics_gauge(m, "x_in_flight", "Sagas running.", NULL, 0);
    cr_assert_not_null(c);
    cr_assert_not_null(g);
    char *t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_finished_total Sagas finished.\n"
                        "# TYPE x_finished_total counter\n"
                        "# HELP x_in_flight Sagas running.\n"
                        "# TYPE x_in_flight gauge\n"
                        "x_in_flight 0\n",
                     "a label-less family is 0 from the start; got:\n%s", t);
    free(t);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"order", "completed"}, 1), 0);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"order", "stuck"}, 1), 0);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"order", "completed"}, 2), 0);
    cr_assert_eq(saga_metric_set(g, NULL, 7), 0);
    cr_assert_eq(saga_metric_add(g, NULL, -2.5), 0, "a gauge goes down too");
    t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_finished_total Sagas finished.\n"
                        "# TYPE x_finished_total counter\n"
                        "x_finished_total{saga=\"order\",state=\"completed\"} 3\n"
                        "x_finished_total{saga=\"order\",state=\"stuck\"} 1\n"
                        "# HELP x_in_flight Sagas running.\n"
                        "# TYPE x_in_flight gauge\n"
                        "x_in_flight 4.5\n",
                     "got:\n%s", t);
    free(t);
    saga_metrics_free(m);
}

Test(metrics, label_values_and_help_are_escaped) {
    saga_metrics_t *m = saga_metrics_new(0);
    static const char *const l[] = {"v"};
    saga_metric_t *c = saga_metrics_counter(m, "x_total", "a \\ b\nc \"q\"", l, 1);
    cr_assert_not_null(c);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"a\"b\\c\nd"}, 1), 0);
    char *t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_total a \\\\ b\\nc \"q\"\n"
                        "# TYPE x_total counter\n"
                        "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n",
                     "quote, backslash and line feed escaped in a label value; "
                     "backslash and line feed in HELP; got:\n%s", t);
    free(t);
    saga_metrics_free(m);
}

Test(metrics, label_tuples_that_would_join_alike_stay_apart) {
    saga_metrics_t *m = saga_metrics_new(0);
    static const char *const l[] = {"a", "b"};
    saga_metric_t *c = saga_metrics_counter(m, "x_total", "h", l, 2);
    saga_metric_add(c, (const char *const[]){"1:x", ""}, 1);
    saga_metric_add(c, (const char *const[]){"1", "x:"}, 1);
    saga_metric_add(c, (const char *const[]){"", "1:x"}, 1);
    char *t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_total h\n# TYPE x_total counter\n"
                        "x_total{a=\"1:x\",b=\"\"} 1\n"
                        "x_total{a=\"1\",b=\"x:\"} 1\n"
                        "x_total{a=\"\",b=\"1:x\"} 1\n", "got:\n%s", t);
    free(t);
    saga_metrics_free(m);
}

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count) {
    saga_metrics_t *m = saga_metrics_new(0);
    static const char *const l[] = {"step"};
    static const double b[] = {0.01, 0.1, 1};
    saga_metric_t *h = saga_metrics_histogram(m, "x_seconds", "Time.", l, 1, b, 3);
    cr_assert_not_null(h);
    const char *const pay[] = {"pay"};
    cr_assert_eq(saga_metric_observe(h, pay, 0.005), 0);
    cr_assert_eq(saga_metric_observe(h, pay, 0.01), 0, "on a bound: in that bucket");
    cr_assert_eq(saga_metric_observe(h, pay, 0.5), 0);
    cr_assert_eq(saga_metric_observe(h, pay, 2), 0, "above every bound: +Inf only");
    char *t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_seconds Time.\n"
                        "# TYPE x_seconds histogram\n"
                        "x_seconds_bucket{step=\"pay\",le=\"0.01\"} 2\n"
                        "x_seconds_bucket{step=\"pay\",le=\"0.1\"} 2\n"
                        "x_seconds_bucket{step=\"pay\",le=\"1\"} 3\n"
                        "x_seconds_bucket{step=\"pay\",le=\"+Inf\"} 4\n"
                        "x_seconds_sum{step=\"pay\"} 2.515\n"
                        "x_seconds_count{step=\"pay\"} 4\n",
                     "got:\n%s", t);
    free(t);
    saga_metrics_free(m);
}

Test(metrics, a_histogram_without_labels_has_its_le_alone) {
    saga_metrics_t *m = saga_metrics_new(0);
    static const double b[] = {0.5};
    saga_metric_t *h = saga_metrics_histogram(m, "x_seconds", "T", NULL, 0, b, 1);
    cr_assert_not_null(h);
    char *t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_seconds T\n# TYPE x_seconds histogram\n"
                        "x_seconds_bucket{le=\"0.5\"} 0\n"
                        "x_seconds_bucket{le=\"+Inf\"} 0\n"
                        "x_seconds_sum 0\n"
                        "x_seconds_count 0\n", "got:\n%s", t);
    free(t);
    saga_metrics_free(m);
}

Test(metrics, series_beyond_the_cap_are_dropped_and_counted) {
    saga_metrics_t *m = saga_metrics_new(2);
    static const char *const l[] = {"k"};
    saga_metric_t *c = saga_metrics_counter(m, "x_total", "h", l, 1);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"a"}, 1), 0);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"b"}, 1), 0);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"c"}, 1), -ENOSPC);
    cr_assert_eq(saga_metric_add(c, (const char *const[]){"a"}, 1), 0,
                 "an existing series still counts");
    cr_assert_eq(saga_metrics_dropped(m), 1);
    char *t = text_of(m);
    cr_assert_str_eq(t, "# HELP x_total h\n# TYPE x_total counter\n"
                        "x_total{k=\"a\"} 2\nx_total{k=\"b\"} 1\n", "got:\n%s", t);
    free(t);
    saga_metrics_free(m);
}

Test(metrics, invalid_names_and_misuse_are_refused) {
    saga_metrics_t *m = saga_metrics_new(0);
    static const char *const bad_label[] = {"1x"};
    static const char *const reserved[] = {"__x"};
    static const char *const le[] = {"le"};
    static const char *const twice[] = {"a", "a"};
    static const double b[] = {1, 0.5};
    cr_assert_null(saga_metrics_counter(m, "9lives_total", "h", NULL, 0));
    cr_assert_null(saga_metrics_counter(m, "a-b_total", "h", NULL, 0));
    cr_assert_null(saga_metrics_counter(m, "x_total", "h", bad_label, 1));
    cr_assert_null(saga_metrics_counter(m, "x_total", "h", reserved, 1));
    cr_assert_null(saga_metrics_counter(m, "x_total", "h", twice, 2));
    cr_assert_null(saga_metrics_histogram(m, "x_seconds", "h", le, 1, NULL, 0));
    cr_assert_null(saga_metrics_histogram(m, "x_seconds", "h", NULL, 0, b, 2),
                   "buckets must increase");
    saga_metric_t *c = saga_metrics_counter(m, "x_total", "h", NULL, 0);
    cr_assert_not_null(c);
    cr_assert_null(saga_metrics_counter(m, "x_total", "h", NULL, 0), "registered twice");
    cr_assert_eq(saga_metric_add(c, NULL, -1), -EINVAL, "a counter never goes down");
    cr_assert_eq(saga_metric_add(c, NULL, NAN), -EINVAL);
    cr_assert_eq(saga_metric_set(c, NULL, 1), -EINVAL, "set is for gauges");
    cr_assert_eq(saga_metric_observe(c, NULL, 1), -EINVAL, "observe is for histograms");
    saga_metrics_free(m);
}

Test(metrics, numbers_read_back_exactly) {
    char buf[64];
    saga_metrics_format_value(3, buf, sizeof(buf));
    cr_assert_str_eq(buf, "3");
    saga_metrics_format_value(0.1, buf, sizeof(buf));
    cr_assert_str_eq(buf, "0.1");
    saga_metrics_format_value(1.0 / 3.0, buf, sizeof(buf));
    cr_assert_eq(strtod(buf, NULL), 1.0 / 3.0, "%s", buf);
    saga_metrics_format_value(INFINITY, buf, sizeof(buf));
    cr_assert_str_eq(buf, "+Inf");
    saga_metrics_format_value(-INFINITY, buf, sizeof(buf));
    cr_assert_str_eq(buf, "-Inf");
    saga_metrics_format_value(NAN, buf, sizeof(buf));
    cr_assert_str_eq(buf, "NaN");
    saga_metrics_format_value(1e300, buf, sizeof(buf));
    cr_assert_eq(strtod(buf, NULL), 1e300, "%s", buf);
}
