/*
 * test_api_body.c -- the submit body of POST /v1/sagas (engine/http/api_body.c).
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "http/api_body.h"

static int parse(const char *body, const char *key, saga_api_submit_t *s, saga_api_problem_t *p) {
    memset(p, 0, sizeof(*p));
    return saga_api_submit_parse(body, strlen(body), key, s, p);
}

Test(api_body, a_full_request) {
    saga_api_submit_t s;
    saga_api_problem_t p;
    cr_assert_eq(parse("{\"saga\":\"order\",\"input\":{\"n\":1},\"id\":\"o-1\"}", NULL, &s, &p), 0,
                 "%s", p.message);
    cr_assert_str_eq(s.saga, "order");
    cr_assert_str_eq(s.id, "o-1");
    cr_assert_eq(json_integer_value(json_object_get(s.input, "n")), 1);
    saga_api_submit_clear(&s);
}

Test(api_body, id_from_the_header_and_defaults) {
    saga_api_submit_t s;
    saga_api_problem_t p;
    cr_assert_eq(parse("{\"saga\":\"order\"}", "key-7", &s, &p), 0, "%s", p.message);
    cr_assert_str_eq(s.id, "key-7");
    cr_assert(json_is_object(s.input) && json_object_size(s.input) == 0);
    saga_api_submit_clear(&s);
    cr_assert_eq(parse("{\"saga\":\"order\",\"id\":\"a\"}", "a", &s, &p), 0, "the same in both");
    saga_api_submit_clear(&s);
    cr_assert_eq(parse("{\"saga\":\"order\",\"id\":null}", NULL, &s, &p), 0);
    cr_assert_str_eq(s.id, "", "no id: the server makes one");
    saga_api_submit_clear(&s);
}

static void refused(const char *body, const char *key, int status, const char *code,
                    const char *words) {
    saga_api_submit_t s;
    saga_api_problem_t p;
    cr_assert_eq(parse(body, key, &s, &p), -EINVAL, "accepted: %s", body);
    cr_assert_eq(p.status, status, "%s: %d %s", body, p.status, p.message);
    cr_assert_str_eq(p.code, code, "%s", body);
    cr_assert(strstr(p.message, words) != NULL, "%s: %s", body, p.message);
    cr_assert_null(s.input);
}

Test(api_body, refusals_say_what_and_where) {
    refused("{\"saga\": \"x\",\n \"input\": {,}}", NULL, 400, "malformed_json", "2:");
    refused("", NULL, 400, "malformed_json", "not JSON");
    refused("[1]", NULL, 400, "invalid_field", "not an array");
    refused("{\"input\":{}}", NULL, 400, "invalid_field", "\"saga\"");
    refused("{\"saga\":5}", NULL, 400, "invalid_field", "not an integer");
    refused("{\"saga\":\"\"}", NULL, 400, "invalid_field", "1 to 128");
    refused("{\"saga\":\"a\",\"sagga\":1}", NULL, 400, "invalid_field", "unknown field \"sagga\"");
    refused("{\"saga\":\"a\",\"saga\":\"b\"}", NULL, 400, "malformed_json", "duplicate");
    refused("{\"saga\":\"a\",\"id\":\"has space\"}", NULL, 400, "invalid_field", "\"id\"");
    refused("{\"saga\":\"a\",\"id\":7}", NULL, 400, "invalid_field", "not an integer");
    refused("{\"saga\":\"a\"}", "bad key!", 400, "invalid_field", "Idempotency-Key");
    refused("{\"saga\":\"a\",\"id\":\"x\"}", "y", 400, "invalid_field", "differ");
    refused("{\"saga\":\"a\",\"input\":[1]}", NULL, 422, "invalid_input", "not an array");
    refused("{\"saga\":\"a\",\"input\":\"s\"}", NULL, 422, "invalid_input", "not a string");
    refused("{\"saga\":\"a\\u0000b\"}", NULL, 400, "malformed_json", "");
    refused("{\"saga\":\"\xff\"}", NULL, 400, "malformed_json", "");
}
