/*
 * metrics.c -- see metrics.h.
 *
 * A family keeps its series in a vector (the writing order) and a map from
 * the series' key, the label values each written as "LENGTH:VALUE" one after
 * the other (so that no two tuples share a key, whatever bytes they hold).
 */
#include "util/metrics.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"

typedef enum kind_e { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct series_s {
    char *key;
    char **values;        /* the family's nlabels values */
    double value;         /* counter, gauge */
    double sum;           /* histogram */
    uint64_t count;
    uint64_t *buckets;    /* histogram: per bucket, not cumulative */
} series_t;

struct saga_metric_s {
    saga_metrics_t *reg;
    kind_t kind;
    char *name;
    char *help;
    char *labels[SAGA_METRICS_MAX_LABELS];
    size_t nlabels;
    double *bounds;       /* histogram upper bounds, without +Inf */
    size_t nbounds;
    series_t **series;
    size_t nseries;
    size_t cap;
    saga_strmap_t index;  /* key -> series */
};

struct saga_metrics_s {
    saga_metric_t **families;
    size_t nfamilies;
    size_t max_series;
    uint64_t dropped;
};

saga_metrics_t *saga_metrics_new(size_t max_series) {
    saga_metrics_t *m = calloc(1, sizeof(*m));
    if (m != NULL)
        m->max_series = max_series ? max_series : SAGA_METRICS_MAX_SERIES;
    return m;
}

static void series_free(series_t *s, size_t nlabels) {
    if (s == NULL)
        return;
    for (size_t i = 0; s->values != NULL && i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s->key);
    free(s);
}

static void family_free(saga_metric_t *f) {
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i], f->nlabels);
    free(f->series);
    saga_strmap_close(&f->index);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void saga_metrics_free(saga_metrics_t *m) {
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nfamilies; i++)
        family_free(m->families[i]);
    free(m->families);
    free(m);
}

uint64_t saga_metrics_dropped(const saga_metrics_t *m) { return m->dropped; }

/* ---------------------------------------------------------------------- */
/* Registration                                                            */
/* ---------------------------------------------------------------------- */

static bool name_ok(const char *s, bool colon) {
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (colon && c == ':');
        if (!ok)
            return false;
    }
    return true;
}

/* Builds a series' key from its label values; NULL when out of memory. */
static char *series_key(const char *const *values, size_t n) {
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(values[i]) + 24;
    char *k = malloc(len);
    if (k == NULL)
        return NULL;
    size_t at = 0;
    k[0] = '\0';
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(k + at, len - at, "%zu:%s", strlen(values[i]), values[i]);
    return k;
}

static series_t *series_new(saga_metric_t *f, const char *const *values) {
    series_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if ((s->key = series_key(values, f->nlabels)) == NULL)
        goto fail;
    if (f->nlabels > 0 && (s->values = calloc(f->nlabels, sizeof(char *))) == NULL)
        goto fail;
    for (size_t i = 0; i < f->nlabels; i++)
        if ((s->values[i] = strdup(values[i])) == NULL)
            goto fail;
    if (f->kind == KIND_HISTOGRAM &&
        (s->buckets = calloc(f->nbounds + 1, sizeof(uint64_t))) == NULL)
        goto fail;
    return s;
fail:
    series_free(s, f->nlabels);
    return NULL;
}

/* The series of `values`, created when new; NULL with *rc set when the cap
 * refuses it (-ENOSPC) or memory is short. */
static series_t *series_of(saga_metric_t *f, const char *const *values, int *rc) {
    char small[256];
    char *key = NULL;
    const char *k;
    if (f->nlabels == 0) {
        k = "";
    } else {
        size_t need = 1;
        for (size_t i = 0; i < f->nlabels; i++)
            need += strlen(values[i]) + 24;
        if (need <= sizeof(small)) {
            size_t at = 0;
            small[0] = '\0';
            for (size_t i = 0; i < f->nlabels; i++)
                at += (size_t)snprintf(small + at, sizeof(small) - at, "%zu:%s",
                                       strlen(values[i]), values[i]);
            k = small;
        } else {
            if ((key = series_key(values, f->nlabels)) == NULL) {
                *rc = -ENOMEM;
                return NULL;
            }
            k = key;
        }
    }
    series_t *s = saga_strmap_get(&f->index, k);
    free(key);
    if (s != NULL)
        return s;
    if (f->nseries >= f->reg->max_series) {
        f->reg->dropped++;
        *rc = -ENOSPC;
        return NULL;
    }
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        series_t **v = realloc(f->series, cap * sizeof(*v));
        if (v == NULL) {
            *rc = -ENOMEM;
            return NULL;
        }
        f->series = v;
        f->cap = cap;
    }
    if ((s = series_new(f, values)) == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    if (saga_strmap_put(&f->index, s->key, s, NULL) != 0) {
        series_free(s, f->nlabels);
        *rc = -ENOMEM;
        return NULL;
    }
    f->series[f->nseries++] = s;
    return s;
}

static saga_metric_t *family_new(saga_metrics_t *m, kind_t kind, const char *name,
                                 const char *help, const char *const *labels, size_t nlabels,
                                 const double *buckets, size_t nbuckets) {
    if (!name_ok(name, true) || nlabels > SAGA_METRICS_MAX_LABELS ||
        (nlabels > 0 && labels == NULL))
        return NULL;
    for (size_t i = 0; i < nlabels; i++) {
        if (!name_ok(labels[i], false) || strncmp(labels[i], "__", 2) == 0 ||
            (kind == KIND_HISTOGRAM && strcmp(labels[i], "le") == 0))
            return NULL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return NULL;
    }
    for (size_t i = 0; i < nbuckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
            return NULL;
    for (size_t i = 0; i < m->nfamilies; i++)
        if (strcmp(m->families[i]->name, name) == 0)
            return NULL;
    saga_metric_t **v = realloc(m->families, (m->nfamilies + 1) * sizeof(*v));
    if (v == NULL)
        return NULL;
    m->families = v;
    saga_metric_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->reg = m;
    f->kind = kind;
    saga_strmap_init(&f->index);
    if ((f->name = strdup(name)) == NULL || (f->help = strdup(help ? help : "")) == NULL)
        goto fail;
    for (size_t i = 0; i < nlabels; i++) {
        if ((f->labels[i] = strdup(labels[i])) == NULL)
            goto fail;
        f->nlabels++;
    }
    if (nbuckets > 0) {
        if ((f->bounds = malloc(nbuckets * sizeof(double))) == NULL)
            goto fail;
        memcpy(f->bounds, buckets, nbuckets * sizeof(double));
        f->nbounds = nbuckets;
    }
    if (nlabels == 0) {
        int rc = 0;
        if (series_of(f, NULL, &rc) == NULL)
            goto fail;
    }
    m->families[m->nfamilies++] = f;
    return f;
fail:
    family_free(f);
    return NULL;
}

saga_metric_t *saga_metrics_counter(saga_metrics_t *m, const char *name, const char *help,
                                    const char *const *labels, size_t nlabels) {
    return family_new(m, KIND_COUNTER, name, help, labels, nlabels, NULL, 0);
}

saga_metric_t *saga_metrics_gauge(saga_metrics_t *m, const char *name, const char *help,
                                  const char *const *labels, size_t nlabels) {
    return family_new(m, KIND_GAUGE, name, help, labels, nlabels, NULL, 0);
}

saga_metric_t *saga_metrics_histogram(saga_metrics_t *m, const char *name, const char *help,
                                      const char *const *labels, size_t nlabels,
                                      const double *buckets, size_t nbuckets) {
    return family_new(m, KIND_HISTOGRAM, name, help, labels, nlabels, buckets, nbuckets);
}

/* ---------------------------------------------------------------------- */
/* Recording                                                               */
/* ---------------------------------------------------------------------- */

int saga_metric_add(saga_metric_t *f, const char *const *values, double v) {
    if (f->kind == KIND_HISTOGRAM || isnan(v) || (f->kind == KIND_COUNTER && v < 0))
        return -EINVAL;
    int rc = 0;
    series_t *s = series_of(f, values, &rc);
    if (s == NULL)
        return rc;
    s->value += v;
    return 0;
}

int saga_metric_set(saga_metric_t *f, const char *const *values, double v) {
    if (f->kind != KIND_GAUGE)
        return -EINVAL;
    int rc = 0;
    series_t *s = series_of(f, values, &rc);
    if (s == NULL)
        return rc;
    s->value = v;
    return 0;
}

int saga_metric_observe(saga_metric_t *f, const char *const *values, double v) {
    if (f->kind != KIND_HISTOGRAM || isnan(v))
        return -EINVAL;
    int rc = 0;
    series_t *s = series_of(f, values, &rc);
    if (s == NULL)
        return rc;
    size_t b = 0;
    while (b < f->nbounds && v > f->bounds[b])
        b++;
    s->buckets[b]++; /* b == nbounds: only +Inf holds it */
    s->sum += v;
    s->count++;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The text format                                                         */
/* ---------------------------------------------------------------------- */

void saga_metrics_format_value(double v, char *buf, size_t len) {
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, len, "%.0f", v);
    } else {
        /* The shortest of %.15g and %.17g that reads back as v. */
        snprintf(buf, len, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, len, "%.17g", v);
    }
}

static void write_escaped(FILE *out, const char *s, bool quote) {
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* name{labels[,le="..."]} -- the braces only when there is a label. */
static void write_series_name(FILE *out, const saga_metric_t *f, const series_t *s,
                              const char *suffix, const char *le) {
    fputs(f->name, out);
    fputs(suffix, out);
    if (f->nlabels == 0 && le == NULL)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->nlabels; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        write_escaped(out, s->values[i], true);
        fputc('"', out);
    }
    if (le != NULL)
        fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    fputc('}', out);
}

static void write_family(FILE *out, const saga_metric_t *f) {
    static const char *const type[] = {"counter", "gauge", "histogram"};
    char num[64], le[64];
    fprintf(out, "# HELP %s ", f->name);
    write_escaped(out, f->help, false);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type[f->kind]);
    for (size_t i = 0; i < f->nseries; i++) {
        const series_t *s = f->series[i];
        if (f->kind != KIND_HISTOGRAM) {
            write_series_name(out, f, s, "", NULL);
            saga_metrics_format_value(s->value, num, sizeof(num));
            fprintf(out, " %s\n", num);
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->nbounds; b++) {
            cum += s->buckets[b];
            if (b < f->nbounds)
                saga_metrics_format_value(f->bounds[b], le, sizeof(le));
            else
                snprintf(le, sizeof(le), "+Inf");
            write_series_name(out, f, s, "_bucket", le);
            fprintf(out, " %llu\n", (unsigned long long)cum);
        }
        write_series_name(out, f, s, "_sum", NULL);
        saga_metrics_format_value(s->sum, num, sizeof(num));
        fprintf(out, " %s\n", num);
        write_series_name(out, f, s, "_count", NULL);
        fprintf(out, " %llu\n", (unsigned long long)s->count);
    }
}

int saga_metrics_write(const saga_metrics_t *m, FILE *out) {
    for (size_t i = 0; i < m->nfamilies; i++)
        write_family(out, m->families[i]);
    return ferror(out) ? -EIO : 0;
}
