/*
 * test_api_routes.c -- the API's route table and its OpenAPI document
 * (docs/openapi.json, compiled in) describe the same API.
 */
#include <ctype.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <uv.h>

#include "http/api.h"

static void freed(void *data) { *(int *)data = 1; }

Test(api_routes, every_route_is_in_the_openapi_document_and_back) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    saga_api_options_t o = {.store = NULL};
    saga_api_t *api = saga_api_new(&loop, &o);
    cr_assert_not_null(api);
    size_t n, len;
    const saga_http_route_t *routes = saga_api_routes(api, &n);
    const char *text = saga_api_openapi(&len);
    json_error_t e;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    cr_assert_not_null(doc, "docs/openapi.json: %d:%d: %s", e.line, e.column, e.text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *paths = json_object_get(doc, "paths");
    size_t ops = 0;
    for (size_t i = 0; i < n; i++) {
        char method[8];
        size_t k = 0;
        for (; routes[i].method[k] != '\0' && k + 1 < sizeof(method); k++)
            method[k] = (char)tolower((unsigned char)routes[i].method[k]);
        method[k] = '\0';
        json_t *p = json_object_get(paths, routes[i].path);
        cr_assert_not_null(p, "%s is not in docs/openapi.json", routes[i].path);
        cr_assert_not_null(json_object_get(p, method), "%s %s is not in docs/openapi.json",
                           routes[i].method, routes[i].path);
        ops++;
    }
    size_t documented = 0;
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) documented += json_object_size(item);
    cr_assert_eq(documented, ops, "docs/openapi.json documents %zu operations, the server has %zu",
                 documented, ops);
    json_decref(doc);
    int done = 0;
    saga_api_free(api, freed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 1);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
