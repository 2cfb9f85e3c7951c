/*
 * summary_text.c -- summaries and histories as text (summary.h), for the
 * terminal: every stored string escaped (util/text.h).
 */
#include "cli/summary.h"

#include <inttypes.h>
#include <string.h>

#include "util/text.h"

static const char *jstr(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

void saga_history_print_text(const saga_history_entry_t *h, size_t n, FILE *out) {
    for (size_t i = 0; i < n; i++) {
        char ts[40];
        saga_iso_time(h[i].ts_ms, ts, sizeof(ts));
        /* Every field of an entry is stored text: all shown escaped. */
        fprintf(out, "%s  #%-4" PRIu64 " ", ts, h[i].seq);
        saga_text_pad(out, h[i].ev.type, 22);
        if (h[i].ev.step) {
            fputc(' ', out);
            saga_text_puts(out, h[i].ev.step);
            fputc(' ', out);
            saga_text_puts(out, h[i].ev.phase);
        }
        if (h[i].ev.attempt)
            fprintf(out, " attempt %u", h[i].ev.attempt);
        if (h[i].worker && h[i].worker[0]) {
            fputs("  [", out);
            saga_text_puts(out, h[i].worker);
            fputc(']', out);
        }
        if (h[i].ev.detail) {
            fputs("  ", out);
            saga_text_put(out, h[i].ev.detail, h[i].ev.detail_len, SIZE_MAX);
        }
        fputc('\n', out);
    }
}

void saga_summary_print_text(const json_t *s, FILE *out) {
    /* Names and states come from the record too: all shown escaped. */
    fputs("saga ", out);
    saga_text_puts(out, jstr(s, "saga"));
    fputc(' ', out);
    saga_text_puts(out, jstr(s, "id"));
    fputs(": ", out);
    saga_text_puts(out, jstr(s, "state"));
    if (strcmp(jstr(s, "mode"), "tcc") == 0)
        fputs(" (tcc)", out);
    if (json_is_true(json_object_get(s, "pivoted"))) {
        fputs(" (past its pivot ", out);
        saga_text_puts(out, jstr(s, "pivot"));
        fputc(')', out);
    }
    fputc('\n', out);
    const char *reason = jstr(s, "reason");
    if (reason[0] != '\0') {
        fputs("  reason: ", out);
        saga_text_puts(out, reason);
        fputc('\n', out);
    }
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(s, "steps"), i, st) {
        fputs("  ", out);
        saga_text_pad(out, jstr(st, "name"), 24);
        fprintf(out, " %-20s attempts %lld", jstr(st, "status"),
                (long long)json_integer_value(json_object_get(st, "attempts")));
        /* A saga's step: its compensation; a TCC step: its try, confirm
         * and cancel, each once it has a record. */
        static const char *const phases[] = {"compensation", "try", "confirm", "cancel"};
        for (size_t k = 0; k < sizeof(phases) / sizeof(phases[0]); k++) {
            json_t *ph = json_object_get(st, phases[k]);
            if (json_is_object(ph))
                fprintf(out, ", %s %s (%lld)", phases[k], jstr(ph, "status"),
                        (long long)json_integer_value(json_object_get(ph, "attempts")));
        }
        const char *err = jstr(st, "error");
        if (err[0] != '\0') {
            fprintf(out, "\n  %-24s error: ", "");
            saga_text_puts(out, err);
        }
        fputc('\n', out);
    }
}
