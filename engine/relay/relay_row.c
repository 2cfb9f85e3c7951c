/*
 * relay_row.c -- the checks of one outbox row that need no store (see
 * relay_row.h).
 */
#include "relay/relay_row.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "relay/relay.h"
#include "saga/definition.h"
#include "saga/state.h"

void saga_relay_quote(char *out, size_t n, const char *s) {
    size_t o = 0;
    if (n == 0)
        return;
    for (; *s != '\0' && o + 5 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (*s != '\0' && o + 4 <= n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o < n ? o : n - 1] = '\0';
}

int saga_relay_row_check(const char *id, const char *saga, const char *input,
                         const char *input_size, json_t **json, char *err, size_t errlen) {
    char q[200];
    *json = NULL;
    if (!saga_id_valid(id)) {
        saga_relay_quote(q, sizeof(q), id);
        snprintf(err, errlen, "id '%s' is not a saga id (1 to %d letters, digits, '.', '_', "
                 "':' or '-')", q, SAGA_ID_MAX);
        return -EINVAL;
    }
    if (saga[0] == '\0') {
        snprintf(err, errlen, "saga is empty: it must name the saga to start");
        return -EINVAL;
    }
    if (strlen(saga) > SAGA_NAME_MAX) {
        saga_relay_quote(q, sizeof(q), saga);
        snprintf(err, errlen, "saga '%s' is longer than %u bytes: not a saga name", q,
                 SAGA_NAME_MAX);
        return -EINVAL;
    }
    if (input == NULL) {
        saga_relay_quote(q, 32, input_size != NULL ? input_size : "?");
        snprintf(err, errlen, "input is %s bytes of JSON, over the limit of %u", q,
                 SAGA_RELAY_INPUT_MAX);
        return -EINVAL;
    }
    json_error_t e;
    json_t *j = json_loads(input, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (j == NULL) {
        saga_relay_quote(q, sizeof(q), e.text);
        snprintf(err, errlen, "input is not JSON this engine reads: %s (line %d, column %d)",
                 q, e.line, e.column);
        return -EINVAL;
    }
    if (!json_is_object(j)) {
        static const char *const kinds[] = {"an object", "an array", "a string", "a number",
                                            "a number", "true", "false", "null"};
        int t = json_typeof(j);
        snprintf(err, errlen, "input is %s, not a JSON object",
                 t >= 0 && t <= 7 ? kinds[t] : "not an object");
        json_decref(j);
        return -EINVAL;
    }
    *json = j;
    return 0;
}
