/*
 * summary.h -- summaries and histories as the CLI prints them as text.
 * The JSON they come from: core/summary.h.
 */
#ifndef SAGA_SUMMARY_H
#define SAGA_SUMMARY_H

#include <stdio.h>

#include <jansson.h>

#include "core/summary.h"

/* Prints the summary as readable text. */
void saga_summary_print_text(const json_t *summary, FILE *out);

/* The history as `saga history` shows it: one line per event. */
void saga_history_print_text(const saga_history_entry_t *h, size_t n, FILE *out);

#endif
