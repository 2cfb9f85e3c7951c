/*
 * malloc_conf.h -- jemalloc's settings (malloc_conf.c). The symbol must be
 * visible to the dynamic linker: jemalloc (a shared library) looks it up.
 */
#ifndef SAGA_MALLOC_CONF_H
#define SAGA_MALLOC_CONF_H

__attribute__((visibility("default"))) extern const char *malloc_conf;

#endif
