/*
 * diags.c -- the list of positioned errors (public saga_diags_*) and the
 * per-load reporter the loading stages use.
 */
#include "diags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Public list                                                               */
/* ------------------------------------------------------------------------ */

void saga_diags_init(saga_diags_t *d)
{
    d->items = NULL;
    d->count = 0;
    d->cap = 0;
}

void saga_diags_close(saga_diags_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->count; i++) {
        free(d->items[i].file);
        free(d->items[i].message);
    }
    free(d->items);
    saga_diags_init(d);
}

static int diags_addv(saga_diags_t *d, const char *file, uint32_t line,
                      uint32_t column, const char *fmt, va_list ap)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        saga_diag_t *items = realloc(d->items, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        d->items = items;
        d->cap = cap;
    }

    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return -EINVAL;

    char *message = malloc((size_t)n + 1);
    char *name = strdup(file ? file : "");
    if (message == NULL || name == NULL) {
        free(message);
        free(name);
        return -ENOMEM;
    }
    vsnprintf(message, (size_t)n + 1, fmt, ap);

    saga_diag_t *it = &d->items[d->count++];
    it->file = name;
    it->line = line;
    it->column = column;
    it->message = message;
    return 0;
}

int saga_diags_add(saga_diags_t *d, const char *file, uint32_t line,
                   uint32_t column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = diags_addv(d, file, line, column, fmt, ap);
    va_end(ap);
    return rc;
}

/* Orders diagnostics by file, line, column; ties keep insertion order
 * (qsort is not stable, so the index breaks them). */
typedef struct {
    const saga_diag_t *diag;
    size_t index;
} sort_item_t;

static int compare_items(const void *pa, const void *pb)
{
    const sort_item_t *a = pa, *b = pb;
    int c = strcmp(a->diag->file, b->diag->file);
    if (c != 0)
        return c;
    if (a->diag->line != b->diag->line)
        return a->diag->line < b->diag->line ? -1 : 1;
    if (a->diag->column != b->diag->column)
        return a->diag->column < b->diag->column ? -1 : 1;
    return a->index < b->index ? -1 : (a->index > b->index);
}

static void print_one(const saga_diag_t *it, FILE *out)
{
    if (it->line == 0)
        fprintf(out, "%s: error: %s\n", it->file, it->message);
    else
        fprintf(out, "%s:%u:%u: error: %s\n", it->file, (unsigned)it->line,
                (unsigned)it->column, it->message);
}

void saga_diags_print(const saga_diags_t *d, FILE *out)
{
    if (d == NULL || d->count == 0)
        return;
    sort_item_t *order = malloc(d->count * sizeof(*order));
    if (order == NULL) {
        /* Unsorted is better than nothing. */
        for (size_t i = 0; i < d->count; i++)
            print_one(&d->items[i], out);
        return;
    }
    for (size_t i = 0; i < d->count; i++) {
        order[i].diag = &d->items[i];
        order[i].index = i;
    }
    qsort(order, d->count, sizeof(*order), compare_items);
    for (size_t i = 0; i < d->count; i++)
        print_one(order[i].diag, out);
    free(order);
}

/* ------------------------------------------------------------------------ */
/* Reporter                                                                  */
/* ------------------------------------------------------------------------ */

void saga__report_init(saga__report_t *r, saga_diags_t *diags,
                       const char *file)
{
    r->diags = diags;
    r->file = file;
    r->errors = 0;
}

void saga__report(saga__report_t *r, saga_pos_t pos, const char *fmt, ...)
{
    r->errors++;
    if (r->errors > SAGA__MAX_ERRORS + 1)
        return;
    if (r->errors == SAGA__MAX_ERRORS + 1) {
        saga_diags_add(r->diags, r->file, 0, 0,
                       "too many errors; only the first %u are listed",
                       SAGA__MAX_ERRORS);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    diags_addv(r->diags, r->file, pos.line, pos.column, fmt, ap);
    va_end(ap);
}

void saga__report_oom(saga__report_t *r)
{
    saga__report(r, (saga_pos_t){0, 0}, "out of memory");
}
