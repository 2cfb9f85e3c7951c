/*
 * malloc_conf.c -- jemalloc's settings for the saga executables, read at
 * their first allocation (linked only with SAGA_JEMALLOC; see the top
 * CMakeLists.txt). MALLOC_CONF in the environment still overrides them.
 *
 *   background_thread  a jemalloc thread returns freed pages to the system:
 *                      a worker whose sagas all sleep allocates nothing, and
 *                      without it nothing would ever be returned;
 *   dirty_decay_ms     freed pages go back to the system within about a
 *                      second (the default, 10 s, keeps a burst's buffers
 *                      in the RSS that long);
 *   muzzy_decay_ms:0   and with MADV_DONTNEED, not MADV_FREE, so the RSS
 *                      shows it at once rather than under memory pressure.
 */
#include "cli/malloc_conf.h"

const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
