/*
 * graph.c -- step graph analysis.
 *
 * An edge p -> s means "p runs before s" (s lists p in `after`). The graph
 * has at most SAGA_DEF_MAX_STEPS nodes, so the quadratic parts (picking the
 * next ready step, the bitsets) stay small, and the recursion of Tarjan's
 * algorithm stays shallow.
 */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Cycle reporting                                                           */
/* ------------------------------------------------------------------------ */

typedef struct tarjan_s {
    const saga_def_t *def;
    saga_pos_t *const *after_pos;
    saga__report_t *rep;
    long *index, *low;
    bool *on_stack;
    size_t *stack, depth;
    long next;
    /* scratch for cycle search */
    bool *in_scc;
    size_t *parent, *queue;
} tarjan_t;

/* A step's name for messages; a step whose name was invalid has none. */
static const char *label(const saga_def_t *def, size_t i)
{
    return def->steps[i].name ? def->steps[i].name : "(unnamed)";
}

/* Finds the shortest cycle through `s` inside the marked group and reports
 * it at the `after` entry of `s` that closes it. */
static void report_cycle(tarjan_t *t, size_t s)
{
    const saga_def_t *def = t->def;
    size_t n = def->n_steps;
    for (size_t i = 0; i < n; i++)
        t->parent[i] = SIZE_MAX;
    size_t head = 0, tail = 0, last = SIZE_MAX;
    t->queue[tail++] = s;
    while (head < tail && last == SIZE_MAX) {
        size_t v = t->queue[head++];
        const saga_step_def_t *sv = &def->steps[v];
        for (size_t j = 0; j < sv->n_dependents; j++) {
            size_t w = sv->dependents[j];
            if (!t->in_scc[w])
                continue;
            if (w == s) {
                last = v;
                break;
            }
            if (t->parent[w] == SIZE_MAX) {
                t->parent[w] = v;
                t->queue[tail++] = w;
            }
        }
    }
    if (last == SIZE_MAX)
        return; /* cannot happen in a group of two or more */

    /* Walk back from `last` to `s`, then print forwards. */
    size_t len = 1;
    for (size_t v = last; v != s; v = t->parent[v])
        len++;
    size_t *path = malloc(len * sizeof(*path));
    size_t total = 0;
    if (path != NULL) {
        size_t k = len;
        for (size_t v = last; ; v = t->parent[v]) {
            path[--k] = v;
            if (v == s)
                break;
        }
        for (size_t i = 0; i < len; i++)
            total += strlen(label(def, path[i])) + 4;
        total += strlen(label(def, s)) + 1;
    }
    char *text = path ? malloc(total) : NULL;
    saga_pos_t pos = def->steps[s].pos;
    const saga_step_def_t *ss = &def->steps[s];
    for (size_t j = 0; j < ss->n_after; j++)
        if (ss->after[j] == last)
            pos = t->after_pos[s][j];
    if (text == NULL) {
        saga__report(t->rep, pos, "cycle in step graph through step '%s'",
                     label(def, s));
    } else {
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
            size_t l = strlen(label(def, path[i]));
            memcpy(text + o, label(def, path[i]), l);
            memcpy(text + o + l, " -> ", 4);
            o += l + 4;
        }
        strcpy(text + o, label(def, s));
        saga__report(t->rep, pos, "cycle in step graph: %s", text);
    }
    free(text);
    free(path);
}

static void strongconnect(tarjan_t *t, size_t v)
{
    const saga_step_def_t *sv = &t->def->steps[v];
    t->index[v] = t->low[v] = t->next++;
    t->stack[t->depth++] = v;
    t->on_stack[v] = true;
    for (size_t j = 0; j < sv->n_dependents; j++) {
        size_t w = sv->dependents[j];
        if (t->index[w] < 0) {
            strongconnect(t, w);
            if (t->low[w] < t->low[v])
                t->low[v] = t->low[w];
        } else if (t->on_stack[w] && t->index[w] < t->low[v]) {
            t->low[v] = t->index[w];
        }
    }
    if (t->low[v] != t->index[v])
        return;

    /* v roots a strongly connected group: pop it. */
    size_t size = 0, smallest = SIZE_MAX, w;
    size_t top = t->depth;
    do {
        w = t->stack[--t->depth];
        t->on_stack[w] = false;
        t->in_scc[w] = true;
        if (w < smallest)
            smallest = w;
        size++;
    } while (w != v);
    if (size > 1)
        report_cycle(t, smallest);
    for (size_t i = t->depth; i < top; i++)
        t->in_scc[t->stack[i]] = false;
}

/* Reports the cycles of a graph known to have some. Returns -1 on memory
 * failure. */
static int report_cycles(const saga_def_t *def, saga_pos_t *const *after_pos,
                         saga__report_t *rep)
{
    size_t n = def->n_steps;
    tarjan_t t = {def, after_pos, rep, NULL, NULL, NULL, NULL, 0, 0, NULL,
                  NULL, NULL};
    t.index = malloc(n * sizeof(*t.index));
    t.low = malloc(n * sizeof(*t.low));
    t.on_stack = calloc(n, sizeof(*t.on_stack));
    t.stack = malloc(n * sizeof(*t.stack));
    t.in_scc = calloc(n, sizeof(*t.in_scc));
    t.parent = malloc(n * sizeof(*t.parent));
    t.queue = malloc(n * sizeof(*t.queue));
    int rc = -1;
    if (t.index && t.low && t.on_stack && t.stack && t.in_scc && t.parent && t.queue) {
        for (size_t i = 0; i < n; i++)
            t.index[i] = -1;
        for (size_t i = 0; i < n; i++)
            if (t.index[i] < 0)
                strongconnect(&t, i);
        rc = 0;
    }
    free(t.index);
    free(t.low);
    free(t.on_stack);
    free(t.stack);
    free(t.in_scc);
    free(t.parent);
    free(t.queue);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Building                                                                  */
/* ------------------------------------------------------------------------ */

static int fill_dependents(saga_def_t *def)
{
    size_t n = def->n_steps;
    for (size_t s = 0; s < n; s++)
        for (size_t j = 0; j < def->steps[s].n_after; j++)
            def->steps[def->steps[s].after[j]].n_dependents++;
    for (size_t s = 0; s < n; s++) {
        saga_step_def_t *st = &def->steps[s];
        if (st->n_dependents > 0 &&
            (st->dependents = malloc(st->n_dependents * sizeof(size_t))) == NULL)
            return -1;
        st->n_dependents = 0;
    }
    /* Successors in list order, since s ascends. */
    for (size_t s = 0; s < n; s++)
        for (size_t j = 0; j < def->steps[s].n_after; j++) {
            saga_step_def_t *p = &def->steps[def->steps[s].after[j]];
            p->dependents[p->n_dependents++] = s;
        }
    return 0;
}

int saga__graph_build(saga_def_t *def, saga_pos_t *const *after_pos,
                      saga__report_t *rep)
{
    size_t n = def->n_steps;
    size_t *pending = NULL, *order = NULL;
    uint64_t *anc = NULL;

    if (fill_dependents(def) != 0)
        goto oom;

    /* Kahn's algorithm, always taking the ready step earliest in the list. */
    pending = malloc(n * sizeof(*pending));
    order = malloc(n * sizeof(*order));
    if (pending == NULL || order == NULL)
        goto oom;
    for (size_t s = 0; s < n; s++)
        pending[s] = def->steps[s].n_after;
    size_t done = 0;
    for (; done < n; done++) {
        size_t pick = SIZE_MAX;
        for (size_t s = 0; s < n; s++)
            if (pending[s] == 0) {
                pick = s;
                break;
            }
        if (pick == SIZE_MAX)
            break;
        pending[pick] = SIZE_MAX; /* taken */
        order[done] = pick;
        const saga_step_def_t *st = &def->steps[pick];
        for (size_t j = 0; j < st->n_dependents; j++)
            pending[st->dependents[j]]--;
    }
    free(pending);
    pending = NULL;
    if (done < n) {
        free(order);
        if (report_cycles(def, after_pos, rep) != 0)
            saga__report_oom(rep);
        return -1;
    }

    /* Ancestors: a step's set is the union of its predecessors' sets and
     * the predecessors themselves; topological order makes one pass do. */
    size_t words = (n + 63) / 64;
    anc = calloc(n * words, sizeof(*anc));
    if (anc == NULL)
        goto oom;
    for (size_t k = 0; k < n; k++) {
        size_t s = order[k];
        uint64_t *row = anc + s * words;
        for (size_t j = 0; j < def->steps[s].n_after; j++) {
            size_t p = def->steps[s].after[j];
            const uint64_t *prow = anc + p * words;
            for (size_t w = 0; w < words; w++)
                row[w] |= prow[w];
            row[p / 64] |= (uint64_t)1 << (p % 64);
        }
    }
    def->topo_order = order;
    def->ancestors = anc;
    def->ancestor_words = words;
    return 0;

oom:
    free(pending);
    free(order);
    saga__report_oom(rep);
    return -1;
}
