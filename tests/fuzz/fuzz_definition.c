/*
 * fuzz_definition.c -- libFuzzer target for the definition loader.
 *
 * Feeds each input to saga_def_load_buffer(), prints the diagnostics (to a
 * sink), and for a valid definition checks the model's invariants and
 * renders every template against a small context. Any broken invariant
 * aborts, so the fuzzer reports it like a crash.
 *
 * Seed corpus: definitions/examples/. See scripts/fuzz.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <saga/definition.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        abort();
    }
}

static void check_graph(const saga_def_t *def)
{
    size_t n = def->n_steps;
    check(n > 0 && n <= SAGA_DEF_MAX_STEPS, "step count");
    check(strlen(def->hash) == 64, "hash length");
    char *seen = calloc(n, 1);
    size_t *rank = calloc(n, sizeof(*rank));
    check(seen && rank, "alloc");
    for (size_t k = 0; k < n; k++) {
        size_t s = def->topo_order[k];
        check(s < n && !seen[s], "topo order is a permutation");
        seen[s] = 1;
        rank[s] = k;
    }
    for (size_t s = 0; s < n; s++) {
        const saga_step_def_t *st = &def->steps[s];
        check(st->index == s, "index");
        check(st->action.with != NULL, "action template");
        check(!st->has_compensation || st->compensation.with != NULL, "compensation template");
        check(st->retry.max_attempts >= 1 && st->retry.max_delay_ms >= st->retry.initial_delay_ms,
              "retry policy");
        check(st->timeout_ms > 0, "timeout");
        check(saga_def_find_step(def, st->name) == st, "names are unique");
        check(!saga_def_is_ancestor(def, s, s), "no step is its own ancestor");
        for (size_t j = 0; j < st->n_after; j++) {
            size_t p = st->after[j];
            check(p < n && rank[p] < rank[s], "predecessors come first");
            check(saga_def_is_ancestor(def, p, s), "predecessor is an ancestor");
        }
    }
    free(seen);
    free(rank);
}

static void render_all(const saga_def_t *def)
{
    size_t n = def->n_steps;
    json_t *input = json_loads("{\"a\": {\"b\": [1, \"two\", {\"c\": null}]}, \"order_id\": \"o-1\","
                               " \"amount\": 5, \"items\": [{\"id\": 1}]}", 0, NULL);
    json_t *out = json_loads("{\"id\": \"x\", \"items\": [{\"id\": 1}], \"amount\": 2.5}", 0, NULL);
    const json_t **outputs = calloc(n, sizeof(*outputs));
    check(input && out && outputs, "alloc");
    /* Every other step has an output, so both paths are taken. */
    for (size_t i = 0; i < n; i += 2)
        outputs[i] = out;
    saga_render_ctx_t ctx = {input, "fuzz-id", def->name, outputs};
    char err[256];
    for (size_t i = 0; i < n; i++) {
        const saga_step_def_t *st = &def->steps[i];
        const saga_template_t *ts[2] = {st->action.with,
                                        st->has_compensation ? st->compensation.with : NULL};
        for (size_t k = 0; k < 2; k++) {
            if (ts[k] == NULL)
                continue;
            json_t *v = saga_template_render(ts[k], &ctx, err, sizeof(err));
            if (saga_template_is_constant(ts[k])) {
                size_t len;
                const char *text = saga_template_constant(ts[k], &len);
                check(text != NULL && strlen(text) == len, "constant text");
                check(v != NULL, "a constant always renders");
                char *again = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                check(again && strcmp(again, text) == 0, "constant text matches render");
                free(again);
            } else {
                check(saga_template_constant(ts[k], NULL) == NULL, "no constant text");
            }
            if (v == NULL)
                check(err[0] != '\0', "a failed render says why");
            json_decref(v);
        }
    }
    free(outputs);
    json_decref(out);
    json_decref(input);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (sink == NULL)
        sink = fopen("/dev/null", "w");

    saga_diags_t d;
    saga_diags_init(&d);
    saga_def_t *def = saga_def_load_buffer("fuzz.yaml", (const char *)data, size, &d);
    if (sink != NULL)
        saga_diags_print(&d, sink);
    check((def == NULL) == (d.count > 0), "NULL exactly when there are errors");
    for (size_t i = 0; i < d.count; i++)
        check(strchr(d.items[i].message, '\n') == NULL, "one-line messages");
    saga_diags_close(&d);

    if (def != NULL) {
        check_graph(def);
        render_all(def);
        check(def->text_len == size && memcmp(def->text, data, size) == 0, "text kept");

        /* Reloading the stored text gives the same hash. */
        saga_diags_init(&d);
        saga_def_t *again = saga_def_load_buffer(def->source, def->text, def->text_len, &d);
        check(again != NULL && strcmp(again->hash, def->hash) == 0, "reload hash");
        saga_def_free(again);
        saga_diags_close(&d);

        json_t *in = json_object();
        saga_def_check_input(def, in, NULL, 0);
        json_decref(in);
    }
    saga_def_free(def);
    return 0;
}
