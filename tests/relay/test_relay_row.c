/*
 * test_relay_row.c -- the checks of one outbox row that need no store
 * (engine/relay/relay_row.c): every refusal of docs/outbox.md's table
 * that the row alone decides, its wording, and that a message never
 * carries a control character of the row into the `error` column or a log.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>

#include "relay/relay.h"
#include "relay/relay_row.h"

typedef struct row_case_s {
    char id[300];
    char saga[300];
    char input[300];
    bool no_input;           /* over the size limit */
    char want[120];          /* "" : accepted */
} row_case_t;

static row_case_t row_cases[] = {
    {"o-1", "order", "{\"n\": 1}", false, ""},
    {"o:1.a_b", "order", "{}", false, ""},
    {"", "order", "{}", false, "id '' is not a saga id"},
    {"a b", "order", "{}", false, "id 'a b' is not a saga id"},
    {"a/b", "order", "{}", false, "id 'a/b' is not a saga id"},
    {"a\nb", "order", "{}", false, "id 'a\\x0ab' is not a saga id"},
    {"it's", "order", "{}", false, "id 'it\\x27s' is not a saga id"},
    {"o-1", "", "{}", false, "saga is empty"},
    {"o-1", "order", "[1, 2]", false, "input is an array, not a JSON object"},
    {"o-1", "order", "\"x\"", false, "input is a string, not a JSON object"},
    {"o-1", "order", "12", false, "input is a number, not a JSON object"},
    {"o-1", "order", "1.5", false, "input is a number, not a JSON object"},
    {"o-1", "order", "true", false, "input is true, not a JSON object"},
    {"o-1", "order", "false", false, "input is false, not a JSON object"},
    {"o-1", "order", "null", false, "input is null, not a JSON object"},
    {"o-1", "order", "", false, "input is not JSON this engine reads"},
    {"o-1", "order", "{\"a\": 1, \"a\": 2}", false, "duplicate object key"},
    {"o-1", "order", "{\"n\": 1e999}", false, "input is not JSON this engine reads"},
    {"o-1", "order", "{\"n\": 123456789012345678901234567890}", false, "too big integer"},
    {"o-1", "order", "{", false, "input is not JSON this engine reads"},
    {"o-1", "order", "", true, "input is 2000000 bytes of JSON, over the limit of 1048576"},
};

ParameterizedTestParameters(relay_row, checks) {
    return cr_make_param_array(row_case_t, row_cases, sizeof(row_cases) / sizeof(row_cases[0]));
}

static bool clean(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

ParameterizedTest(row_case_t *c, relay_row, checks) {
    json_t *j = (json_t *)0x1;
    char err[SAGA_RELAY_ERROR_MAX + 1] = "";
    int rc = saga_relay_row_check(c->id, c->saga, c->no_input ? NULL : c->input, "2000000", &j,
                                  err, sizeof(err));
    if (c->want[0] == '\0') {
        cr_assert_eq(rc, 0, "%s: %s", c->input, err);
        cr_assert(json_is_object(j));
        json_decref(j);
    } else {
        cr_assert_eq(rc, -EINVAL, "%s/%s/%s accepted", c->id, c->saga, c->input);
        cr_assert_null(j);
        cr_assert(strstr(err, c->want) != NULL, "'%s' does not say '%s'", err, c->want);
        cr_assert(clean(err), "a control character in '%s'", err);
    }
}

Test(relay_row, long_values_are_cut_in_messages) {
    char id[2000], saga[2000];
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    id[5] = ' ';
    memset(saga, 's', sizeof(saga) - 1);
    saga[sizeof(saga) - 1] = '\0';
    json_t *j;
    char err[SAGA_RELAY_ERROR_MAX + 1];
    cr_assert_eq(saga_relay_row_check(id, "order", "{}", NULL, &j, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "...' is not a saga id") != NULL, "%s", err);
    cr_assert_lt(strlen(err), 300);
    cr_assert_eq(saga_relay_row_check("ok", saga, "{}", NULL, &j, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "is longer than 128 bytes") != NULL, "%s", err);
    /* a small buffer: cut, still terminated */
    char small[16];
    cr_assert_eq(saga_relay_row_check(id, "order", "{}", NULL, &j, small, sizeof(small)),
                 -EINVAL);
    cr_assert_eq(strlen(small), sizeof(small) - 1);
}
