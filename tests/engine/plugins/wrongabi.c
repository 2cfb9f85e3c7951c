/* wrongabi.c -- a plugin built for an ABI version this engine does not
 * speak; the loader must refuse it. */
#include "saga/plugin.h"

static void h_noop(void *st, saga_call_t *c, const saga_call_info_t *info) {
    (void)st; (void)c; (void)info;
}

static const saga_handler_t handlers[] = {{"noop", 0, h_noop, NULL}};

SAGA_PLUGIN_EXPORT const saga_plugin_t saga_plugin = {
    .abi_version = SAGA_PLUGIN_ABI_VERSION + 998u,
    .struct_size = sizeof(saga_plugin_t),
    .name = "wrongabi",
    .version = "1",
    .handlers = handlers,
    .handler_count = 1,
};
