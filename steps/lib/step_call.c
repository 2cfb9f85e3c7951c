/*
 * step_call.c -- reading a call's `with` and completing a call with a text.
 */
#include "step_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "step_args.h"

json_t *step_call_with(const char *input, size_t len, const char *handler,
                       const char *const *known, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *with = json_loadb(input != NULL ? input : "", input != NULL ? len : 0,
                              JSON_DECODE_ANY, &jerr);
    if (with == NULL) {
        snprintf(err, errlen, "%s: `with` is not valid JSON (line %d, column "
                 "%d: %s)", handler, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(with)) {
        snprintf(err, errlen, "%s: `with` must be a mapping, got %s", handler,
                 step_args_type_name(with));
        json_decref(with);
        return NULL;
    }
    if (known != NULL &&
        step_args_known_keys(with, known, handler, err, errlen) != 0) {
        json_decref(with);
        return NULL;
    }
    return with;
}

void step_call_complete(const saga_host_t *host, saga_call_t *call,
                        saga_outcome_t outcome, const char *text,
                        const char *who) {
    char oom[128];
    char *line = NULL;
    /* A failure message quotes what the author or a service wrote (a
     * field name, a URL, a step name): whatever it holds, it leaves here
     * as one line of valid UTF-8, as the ABI asks. */
    if (text != NULL && outcome != SAGA_OUTCOME_OK &&
        (line = step_text_utf8(text, strlen(text), true)) != NULL)
        text = line;
    else if (outcome != SAGA_OUTCOME_OK)
        text = NULL;
    if (text == NULL) {
        snprintf(oom, sizeof(oom), "%s: out of memory", who);
        text = oom;
        outcome = SAGA_OUTCOME_TECHNICAL;
    }
    host->complete(call, outcome, text, strlen(text));
    free(line);
}
