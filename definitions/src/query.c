/*
 * query.c -- the questions the engine (and the template compiler) asks of a
 * built definition: a step by name, whether one step is an ancestor of
 * another, whether an input has the required keys. Pure reads of the
 * model: this file calls no other module of definitions/.
 */
#include "saga/definition.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const saga_step_def_t *saga_def_find_step(const saga_def_t *def,
                                          const char *name)
{
    for (size_t i = 0; i < def->n_steps; i++)
        if (def->steps[i].name != NULL && strcmp(def->steps[i].name, name) == 0)
            return &def->steps[i];
    return NULL;
}

bool saga_def_is_ancestor(const saga_def_t *def, size_t anc, size_t step)
{
    if (def->ancestors == NULL || anc >= def->n_steps || step >= def->n_steps)
        return false;
    uint64_t word = def->ancestors[step * def->ancestor_words + anc / 64];
    return (word >> (anc % 64)) & 1;
}

int saga_def_check_input(const saga_def_t *def, const json_t *input,
                         char *err, size_t errlen)
{
    char scratch[1];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    if (!json_is_object(input)) {
        static const char *const names[] = {
            "an object", "an array", "a string", "an integer", "a number",
            "true", "false", "null"};
        snprintf(err, errlen, "input must be a JSON object, found %s",
                 input ? names[json_typeof(input)] : "nothing");
        return -EINVAL;
    }

    /* Name every missing key, in the order the definition lists them. */
    size_t missing = 0, o = 0;
    for (size_t i = 0; i < def->n_required_inputs; i++) {
        if (json_object_get(input, def->required_inputs[i]) != NULL)
            continue;
        missing++;
        int w = snprintf(err + o, errlen - o, "%s'%s'", missing > 1 ? ", " : "",
                         def->required_inputs[i]);
        if (w > 0)
            o = o + (size_t)w < errlen ? o + (size_t)w : errlen - 1;
    }
    if (missing == 0)
        return 0;

    /* Prefix the list now that its length is known. */
    char *list = strdup(err);
    snprintf(err, errlen, "input is missing required key%s %s",
             missing > 1 ? "s" : "", list ? list : "");
    free(list);
    return -EINVAL;
}
