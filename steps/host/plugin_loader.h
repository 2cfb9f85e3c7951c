/*
 * plugin_loader.h -- find, dlopen, check and initialize step plugins.
 *
 * A handler named "demo.sleep" in YAML lives in the plugin "demo", which is
 * the file demo.so in the first directory of the search path that has one:
 *
 *   1. the directories added with saga_plugins_add_dir() (--plugins DIR),
 *      in the order they were added;
 *   2. the entries of $SAGA_PLUGIN_PATH (colon-separated), in order;
 *   3. the built-in directories: <dir of the running executable>/
 *      ../lib/saga/plugins (the build tree and a relocated install), then
 *      the install prefix's plugin directory.
 *
 * Plugins are loaded on first use, with blocking disk I/O: resolve every
 * handler before the event loop starts serving sagas.
 */
#ifndef SAGA_PLUGIN_LOADER_H
#define SAGA_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "saga/plugin.h"

typedef struct saga_plugins_s saga_plugins_t;

/* A loaded, initialized plugin. Owned by the registry. */
typedef struct saga_loaded_plugin_s {
    char *name;
    char *path;                 /* the file it was loaded from */
    void *dl;                   /* dlopen handle */
    const saga_plugin_t *desc;  /* the exported descriptor */
    void *state;                /* what init() returned */
} saga_loaded_plugin_t;

/* Creates an empty registry. `host` and `loop` are handed to each plugin's
 * init() and must outlive the registry. Returns NULL on allocation failure. */
saga_plugins_t *saga_plugins_new(const saga_host_t *host,
                                 struct uv_loop_s *loop);

/* Appends a directory to the search path (copied). Returns 0 or -ENOMEM. */
int saga_plugins_add_dir(saga_plugins_t *p, const char *dir);

/* Appends $SAGA_PLUGIN_PATH's entries and then the built-in directories.
 * Call once, after the --plugins directories. Returns 0 or -ENOMEM. */
int saga_plugins_add_default_dirs(saga_plugins_t *p);

/* Finds handler `function` of plugin `plugin`, loading and initializing the
 * plugin on first use. Returns the handler and sets *owner, or returns NULL
 * with a one-line reason in `err`: plugin not found (naming the directories
 * searched), dlopen failure, missing descriptor symbol, wrong ABI version,
 * descriptor too small, name mismatch, init() refused, or no such handler
 * (naming the handlers the plugin has). A plugin that failed to load is not
 * retried: later calls give the same reason. */
const saga_handler_t *saga_plugins_resolve(saga_plugins_t *p,
                                           const char *plugin,
                                           const char *function,
                                           saga_loaded_plugin_t **owner,
                                           char *err, size_t errlen);

/* Calls close() of every loaded plugin (once). The caller then runs its
 * loop until the plugins' handles are closed, and frees the registry. */
void saga_plugins_close_all(saga_plugins_t *p);

/* Unloads every plugin and frees the registry. Accepts NULL. Call
 * saga_plugins_close_all() and let the loop settle first. */
void saga_plugins_free(saga_plugins_t *p);

/* The directories searched, joined with ':' for messages (owned). */
const char *saga_plugins_search_path(saga_plugins_t *p);

#endif
