/*
 * api_body.c -- request bodies of the API (api_body.h).
 */
#include "http/api_body.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SAGA_NAME_LEN_MAX 128

static int problem(saga_api_problem_t *p, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int problem(saga_api_problem_t *p, int status, const char *code, const char *fmt, ...) {
    p->status = status;
    p->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

void saga_api_submit_clear(saga_api_submit_t *s) {
    json_decref(s->input);
    s->input = NULL;
}

int saga_api_submit_parse(const char *body, size_t len, const char *idem_key,
                          saga_api_submit_t *out, saga_api_problem_t *p) {
    memset(out, 0, sizeof(*out));
    json_error_t e;
    /* jansson rejects duplicate keys, invalid UTF-8 and NUL in strings */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (root == NULL)
        return problem(p, 400, "malformed_json", "the body is not JSON: %d:%d: %s", e.line,
                       e.column, e.text);
    int rc = -EINVAL;
    if (!json_is_object(root)) {
        problem(p, 400, "invalid_field", "the body must be an object {\"saga\": NAME, "
                "\"input\": {...}, \"id\": ID}, not %s", type_name(root));
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "saga") != 0 && strcmp(key, "input") != 0 && strcmp(key, "id") != 0) {
            problem(p, 400, "invalid_field", "unknown field \"%.64s\" (the fields are saga, "
                    "input and id)", key);
            goto out;
        }
    }
    json_t *saga = json_object_get(root, "saga");
    if (saga == NULL) {
        problem(p, 400, "invalid_field", "the field \"saga\" (the saga's name) is missing");
        goto out;
    }
    if (!json_is_string(saga)) {
        problem(p, 400, "invalid_field", "\"saga\" must be a string, not %s", type_name(saga));
        goto out;
    }
    size_t sl = json_string_length(saga);
    if (sl == 0 || sl > SAGA_NAME_LEN_MAX || strlen(json_string_value(saga)) != sl) {
        problem(p, 400, "invalid_field", "\"saga\" must be a name of 1 to %d bytes",
                SAGA_NAME_LEN_MAX);
        goto out;
    }
    memcpy(out->saga, json_string_value(saga), sl + 1);

    json_t *id = json_object_get(root, "id");
    const char *ids = NULL;
    if (id != NULL && !json_is_null(id)) {
        if (!json_is_string(id)) {
            problem(p, 400, "invalid_field", "\"id\" must be a string, not %s", type_name(id));
            goto out;
        }
        ids = json_string_value(id);
        if (strlen(ids) != json_string_length(id) || !saga_id_valid(ids)) {
            problem(p, 400, "invalid_field", "\"id\" must be 1 to %d letters, digits, '.', "
                    "'_', ':' or '-'", SAGA_ID_MAX);
            goto out;
        }
    }
    if (idem_key != NULL) {
        if (!saga_id_valid(idem_key)) {
            problem(p, 400, "invalid_field", "the Idempotency-Key header must be 1 to %d "
                    "letters, digits, '.', '_', ':' or '-' (it becomes the saga's id)",
                    SAGA_ID_MAX);
            goto out;
        }
        if (ids != NULL && strcmp(ids, idem_key) != 0) {
            problem(p, 400, "invalid_field", "the body's \"id\" and the Idempotency-Key header "
                    "differ: give one, or the same in both");
            goto out;
        }
        ids = idem_key;
    }
    if (ids != NULL)
        snprintf(out->id, sizeof(out->id), "%s", ids);

    json_t *input = json_object_get(root, "input");
    if (input == NULL) {
        out->input = json_object();
    } else if (!json_is_object(input)) {
        problem(p, 422, "invalid_input", "\"input\" must be an object, not %s", type_name(input));
        goto out;
    } else {
        out->input = json_incref(input);
    }
    if (out->input == NULL) {
        problem(p, 500, "internal", "out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0)
        saga_api_submit_clear(out);
    return rc;
}
