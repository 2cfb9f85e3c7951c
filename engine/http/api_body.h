/*
 * api_body.h -- the JSON bodies the API accepts, checked before anything
 * touches the store. Pure: no I/O, fuzzed (tests/fuzz/fuzz_http.c).
 */
#ifndef SAGA_API_BODY_H
#define SAGA_API_BODY_H

#include <stddef.h>

#include <jansson.h>

#include "saga/state.h"

/* What a problem with a request is: the HTTP status and error code the
 * API answers with, and a message that says where. */
typedef struct saga_api_problem_s {
    int status;          /* 400, 413, 422 */
    const char *code;    /* "malformed_json", "invalid_field", ... */
    char message[512];
} saga_api_problem_t;

/* A start request: POST /v1/sagas {"saga": NAME, "input": {...}, "id": ID}. */
typedef struct saga_api_submit_s {
    char saga[129];
    char id[SAGA_ID_MAX + 1];   /* "" when neither the body nor the header
                                   gave one: the server makes one */
    json_t *input;              /* an object (a new reference; {} when absent) */
} saga_api_submit_t;

/* Parses a submit body (len bytes of UTF-8 JSON). `idem_key` is the
 * Idempotency-Key header or NULL: the id when the body has none (when both
 * are given they must agree). Returns 0 with `out` filled (free with
 * saga_api_submit_clear), or -EINVAL with `p` saying what and where:
 * 400 malformed_json (line:column), 400 invalid_field (a missing or
 * mistyped field, an unknown field, an invalid id), 422 invalid_input (the
 * input is not an object). */
int saga_api_submit_parse(const char *body, size_t len, const char *idem_key,
                          saga_api_submit_t *out, saga_api_problem_t *p);

void saga_api_submit_clear(saga_api_submit_t *s);

#endif
