/*
 * graph.h -- the step graph: cycles, topological order, successors and the
 * ancestor bitsets behind saga_def_is_ancestor().
 */
#ifndef SAGA_DEFS_GRAPH_H
#define SAGA_DEFS_GRAPH_H

#include "diags.h"

/* Completes the graph of `def`, whose steps' `after` lists (valid indexes,
 * no step after itself, no repeats) are already filled; after_pos[i][j] is
 * where steps[i].after[j] was written (the step's own position for the
 * implicit "after the previous step").
 *
 * Fills every step's `dependents`, then def->topo_order (predecessors first,
 * list order among independent steps) and the ancestor bitsets. Returns 0,
 * or -1 when the graph has a cycle (each one reported once per strongly
 * connected group of steps, "cycle in step graph: a -> b -> a", at the
 * `after` entry that closes it) or memory ran out (reported); then
 * topo_order and the bitsets are left NULL, the dependents may be set. */
int saga__graph_build(saga_def_t *def, saga_pos_t *const *after_pos,
                      saga__report_t *rep);

#endif /* SAGA_DEFS_GRAPH_H */
