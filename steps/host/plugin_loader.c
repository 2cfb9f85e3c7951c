/*
 * plugin_loader.c -- the step plugin registry: search path, dlopen, ABI
 * checks, init/close. See plugin_loader.h for the search order.
 */
#include "plugin_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A plugin name is an identifier, as in definitions ([A-Za-z_][A-Za-z0-9_-]*,
 * up to 128 bytes); it becomes a file name, so nothing that could walk out
 * of the directory is allowed. */
#define PLUGIN_NAME_MAX 128

/* The descriptor of ABI version 1 ends with handler_count: anything at
 * least this large is accepted (fields added later read as absent). */
#define PLUGIN_DESC_V1_SIZE (offsetof(saga_plugin_t, handler_count) + sizeof(size_t))

typedef struct plugin_entry_s {
    saga_loaded_plugin_t plugin;
    bool ok;          /* loaded and initialized */
    bool closed;      /* close() was called */
    char *error;      /* why loading failed, when !ok */
} plugin_entry_t;

struct saga_plugins_s {
    const saga_host_t *host;
    struct uv_loop_s *loop;
    char **dirs;
    size_t ndirs;
    plugin_entry_t *entries;
    size_t nentries;
    char *search_path; /* cached join of dirs, rebuilt when dirs change */
};

saga_plugins_t *saga_plugins_new(const saga_host_t *host,
                                 struct uv_loop_s *loop) {
    saga_plugins_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->host = host;
    p->loop = loop;
    return p;
}

int saga_plugins_add_dir(saga_plugins_t *p, const char *dir) {
    if (dir == NULL || dir[0] == '\0')
        return 0;
    for (size_t i = 0; i < p->ndirs; i++)
        if (strcmp(p->dirs[i], dir) == 0)
            return 0;
    char **dirs = realloc(p->dirs, (p->ndirs + 1) * sizeof(*dirs));
    if (dirs == NULL)
        return -ENOMEM;
    p->dirs = dirs;
    if ((p->dirs[p->ndirs] = strdup(dir)) == NULL)
        return -ENOMEM;
    p->ndirs++;
    free(p->search_path);
    p->search_path = NULL;
    return 0;
}

/* The directory holding the running executable, or "" when unknown. */
static void exe_dir(char *out, size_t outlen) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    snprintf(out, outlen, "%s", buf);
}

int saga_plugins_add_default_dirs(saga_plugins_t *p) {
    const char *env = getenv("SAGA_PLUGIN_PATH");
    if (env != NULL) {
        char *copy = strdup(env), *save = NULL;
        if (copy == NULL)
            return -ENOMEM;
        for (char *tok = strtok_r(copy, ":", &save); tok != NULL;
             tok = strtok_r(NULL, ":", &save)) {
            int rc = saga_plugins_add_dir(p, tok);
            if (rc != 0) {
                free(copy);
                return rc;
            }
        }
        free(copy);
    }
    char dir[PATH_MAX], path[PATH_MAX + 64];
    exe_dir(dir, sizeof(dir));
    if (dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/%s", dir, SAGA_PLUGIN_REL_DIR);
        char real[PATH_MAX];
        int rc = saga_plugins_add_dir(p, realpath(path, real) ? real : path);
        if (rc != 0)
            return rc;
    }
    return saga_plugins_add_dir(p, SAGA_PLUGIN_INSTALL_DIR);
}

const char *saga_plugins_search_path(saga_plugins_t *p) {
    if (p->search_path != NULL)
        return p->search_path;
    size_t len = 1;
    for (size_t i = 0; i < p->ndirs; i++)
        len += strlen(p->dirs[i]) + 1;
    p->search_path = malloc(len);
    if (p->search_path == NULL)
        return "(out of memory)";
    p->search_path[0] = '\0';
    for (size_t i = 0; i < p->ndirs; i++) {
        if (i > 0)
            strcat(p->search_path, ":");
        strcat(p->search_path, p->dirs[i]);
    }
    return p->search_path;
}

static bool valid_plugin_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > PLUGIN_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && (c == '-' || (c >= '0' && c <= '9')));
        if (!ok)
            return false;
    }
    return true;
}

/* Records a failed load so that later lookups give the same answer. */
static plugin_entry_t *entry_fail(plugin_entry_t *e, const char *msg) {
    e->ok = false;
    e->error = strdup(msg);
    return e;
}

/* Loads plugin `name` into a new entry. The entry records either the loaded
 * plugin or why it could not be loaded; NULL only when out of memory. */
static plugin_entry_t *load_plugin(saga_plugins_t *p, const char *name) {
    plugin_entry_t *entries =
        realloc(p->entries, (p->nentries + 1) * sizeof(*entries));
    if (entries == NULL)
        return NULL;
    p->entries = entries;
    plugin_entry_t *e = &p->entries[p->nentries];
    memset(e, 0, sizeof(*e));
    if ((e->plugin.name = strdup(name)) == NULL)
        return NULL;
    p->nentries++;

    char msg[1024];
    if (!valid_plugin_name(name)) {
        snprintf(msg, sizeof(msg), "invalid plugin name '%s'", name);
        return entry_fail(e, msg);
    }
    char path[PATH_MAX];
    bool found = false;
    for (size_t i = 0; i < p->ndirs && !found; i++) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s.so", p->dirs[i], name);
        found = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (!found) {
        snprintf(msg, sizeof(msg),
                 "plugin '%s' not found: no %s.so in %s (add a directory "
                 "with --plugins DIR or SAGA_PLUGIN_PATH)",
                 name, name, saga_plugins_search_path(p));
        return entry_fail(e, msg);
    }
    e->plugin.path = strdup(path);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(msg, sizeof(msg), "plugin '%s': cannot load %s: %s", name,
                 path, dlerror());
        return entry_fail(e, msg);
    }
    e->plugin.dl = dl;
    const saga_plugin_t *d = dlsym(dl, SAGA_PLUGIN_SYMBOL);
    if (d == NULL) {
        snprintf(msg, sizeof(msg),
                 "plugin '%s' (%s) does not export the symbol '%s'", name,
                 path, SAGA_PLUGIN_SYMBOL);
        return entry_fail(e, msg);
    }
    if (d->abi_version != SAGA_PLUGIN_ABI_VERSION) {
        snprintf(msg, sizeof(msg),
                 "plugin '%s' (%s) was built for plugin ABI version %u; this "
                 "engine speaks version %u: rebuild it against saga/plugin.h",
                 name, path, d->abi_version, SAGA_PLUGIN_ABI_VERSION);
        return entry_fail(e, msg);
    }
    if (d->struct_size < PLUGIN_DESC_V1_SIZE) {
        snprintf(msg, sizeof(msg),
                 "plugin '%s' (%s): descriptor is %u bytes, expected at least "
                 "%zu: rebuild it against saga/plugin.h",
                 name, path, d->struct_size, (size_t)PLUGIN_DESC_V1_SIZE);
        return entry_fail(e, msg);
    }
    if (d->name == NULL || strcmp(d->name, name) != 0) {
        snprintf(msg, sizeof(msg),
                 "plugin file %s calls itself '%s', expected '%s'", path,
                 d->name ? d->name : "(null)", name);
        return entry_fail(e, msg);
    }
    if (d->handler_count > 0 && d->handlers == NULL) {
        snprintf(msg, sizeof(msg), "plugin '%s' (%s) lists %zu handlers "
                 "but no handler table", name, path, d->handler_count);
        return entry_fail(e, msg);
    }
    e->plugin.desc = d;
    if (d->init != NULL) {
        int rc = d->init(p->host, p->loop, &e->plugin.state);
        if (rc != 0) {
            snprintf(msg, sizeof(msg), "plugin '%s' (%s) refused to start: %s",
                     name, path, strerror(rc < 0 ? -rc : rc));
            e->plugin.desc = NULL;
            return entry_fail(e, msg);
        }
    }
    e->ok = true;
    return e;
}

const saga_handler_t *saga_plugins_resolve(saga_plugins_t *p,
                                           const char *plugin,
                                           const char *function,
                                           saga_loaded_plugin_t **owner,
                                           char *err, size_t errlen) {
    plugin_entry_t *e = NULL;
    for (size_t i = 0; i < p->nentries && e == NULL; i++)
        if (strcmp(p->entries[i].plugin.name, plugin) == 0)
            e = &p->entries[i];
    if (e == NULL && (e = load_plugin(p, plugin)) == NULL) {
        snprintf(err, errlen, "out of memory loading plugin '%s'", plugin);
        return NULL;
    }
    if (!e->ok) {
        snprintf(err, errlen, "%s", e->error ? e->error : "plugin failed");
        return NULL;
    }
    const saga_plugin_t *d = e->plugin.desc;
    for (size_t i = 0; i < d->handler_count; i++) {
        if (d->handlers[i].name != NULL &&
            strcmp(d->handlers[i].name, function) == 0) {
            if (d->handlers[i].call == NULL) {
                snprintf(err, errlen, "plugin '%s': handler '%s' has no "
                         "call function", plugin, function);
                return NULL;
            }
            if (owner != NULL)
                *owner = &e->plugin;
            return &d->handlers[i];
        }
    }
    /* List what the plugin does have: the usual cause is a typo. */
    size_t off = (size_t)snprintf(err, errlen,
                                  "plugin '%s' has no handler '%s' (it has:",
                                  plugin, function);
    for (size_t i = 0; i < d->handler_count && off < errlen; i++)
        off += (size_t)snprintf(err + off, errlen - off, " %s",
                                d->handlers[i].name ? d->handlers[i].name : "?");
    if (off < errlen)
        snprintf(err + off, errlen - off, ")");
    return NULL;
}

void saga_plugins_close_all(saga_plugins_t *p) {
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nentries; i++) {
        plugin_entry_t *e = &p->entries[i];
        if (e->ok && !e->closed && e->plugin.desc->close != NULL)
            e->plugin.desc->close(e->plugin.state);
        e->closed = true;
    }
}

void saga_plugins_free(saga_plugins_t *p) {
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nentries; i++) {
        plugin_entry_t *e = &p->entries[i];
        /* Under LeakSanitizer an unloaded plugin's leaks lose their symbols;
         * SAGA_PLUGIN_KEEP_LOADED keeps them mapped for diagnosis. */
        if (e->plugin.dl != NULL && getenv("SAGA_PLUGIN_KEEP_LOADED") == NULL)
            dlclose(e->plugin.dl);
        free(e->plugin.name);
        free(e->plugin.path);
        free(e->error);
    }
    free(p->entries);
    for (size_t i = 0; i < p->ndirs; i++)
        free(p->dirs[i]);
    free(p->dirs);
    free(p->search_path);
    free(p);
}
