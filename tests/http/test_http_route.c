/*
 * test_http_route.c -- path patterns and query parameters
 * (engine/http/http_route.c).
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "http/http_route.h"

static bool m(const char *pattern, const char *path, saga_http_params_t *p) {
    return saga_http_path_match(pattern, path, strlen(path), p);
}

Test(http_route, literal_and_parameter_segments) {
    saga_http_params_t p;
    cr_assert(m("/v1/sagas", "/v1/sagas", &p));
    cr_assert_eq(p.n, 0);
    cr_assert(m("/v1/sagas/{id}/cancel", "/v1/sagas/01ABC/cancel", &p));
    cr_assert_eq(p.n, 1);
    cr_assert_eq(p.len[0], 5);
    cr_assert(memcmp(p.s[0], "01ABC", 5) == 0);
    cr_assert(m("/a/{x}/{y}", "/a/1/22", &p));
    cr_assert_eq(p.n, 2);
    cr_assert(memcmp(p.s[1], "22", 2) == 0);
    cr_assert(m("/", "/", NULL));
}

Test(http_route, mismatches) {
    cr_assert_not(m("/v1/sagas", "/v1/sagas/", NULL));
    cr_assert_not(m("/v1/sagas", "/v1/saga", NULL));
    cr_assert_not(m("/v1/sagas", "/v1/sagasx", NULL));
    cr_assert_not(m("/v1/sagas/{id}", "/v1/sagas/", NULL), "an empty segment");
    cr_assert_not(m("/v1/sagas/{id}", "/v1/sagas//", NULL));
    cr_assert_not(m("/v1/sagas/{id}", "/v1/sagas/a/b", NULL));
    cr_assert_not(m("/v1/sagas/{id}/cancel", "/v1/sagas/a", NULL));
    cr_assert_not(m("/v1", "v1", NULL));
    cr_assert_not(m("/v1", "", NULL));
    cr_assert_not(m("/{a}/{b}/{c}/{d}/{e}", "/1/2/3/4/5", NULL), "at most 4 parameters");
}

static int q(const char *query, const char *name, char *out, size_t outlen) {
    return saga_http_query_get(query, strlen(query), name, out, outlen);
}

Test(http_route, query_parameters) {
    char v[32];
    cr_assert_eq(q("state=stuck&saga=order", "saga", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "order");
    cr_assert_eq(q("a=1&b=x%20y+z&c", "b", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "x y z");
    cr_assert_eq(q("a=1&c", "c", v, sizeof(v)), 0, "a key without a value");
    cr_assert_str_eq(v, "");
    cr_assert_eq(q("s%74ate=ok", "state", v, sizeof(v)), 0, "keys are decoded too");
    cr_assert_str_eq(v, "ok");
    cr_assert_eq(q("x=1&&y=2", "y", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "2");
    cr_assert_eq(q("a=1", "b", v, sizeof(v)), -ENOENT);
    cr_assert_eq(q("", "b", v, sizeof(v)), -ENOENT);
    cr_assert_eq(q("b=%zz", "b", v, sizeof(v)), -EINVAL);
    cr_assert_eq(q("b=%4", "b", v, sizeof(v)), -EINVAL, "a cut escape");
    cr_assert_eq(q("b=%", "b", v, sizeof(v)), -EINVAL);
    cr_assert_eq(q("b=%00", "b", v, sizeof(v)), -EINVAL, "an encoded NUL");
    cr_assert_eq(q("b=0123456789", "b", v, 5), -ENOSPC);
    cr_assert_eq(q("b=1234", "b", v, 5), 0);
    cr_assert_str_eq(v, "1234");
}
