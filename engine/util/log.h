/*
 * log.h -- the engine's logger: one line per message on stderr (or a file
 * the caller chooses), with a UTC timestamp and a level.
 */
#ifndef SAGA_LOG_H
#define SAGA_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include "saga/plugin.h" /* saga_log_level_t */

/* Messages below `level` are dropped. Default SAGA_LOG_INFO; env SAGA_LOG
 * (debug|info|warn|error) sets it at the first call. */
void saga_log_set_level(saga_log_level_t level);
saga_log_level_t saga_log_level(void);

/* Where lines go; default stderr. */
void saga_log_set_output(FILE *out);

void saga_log(saga_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void saga_vlog(saga_log_level_t level, const char *prefix, const char *fmt,
               va_list ap);

#define saga_debug(...) saga_log(SAGA_LOG_DEBUG, __VA_ARGS__)
#define saga_info(...) saga_log(SAGA_LOG_INFO, __VA_ARGS__)
#define saga_warn(...) saga_log(SAGA_LOG_WARN, __VA_ARGS__)
#define saga_error(...) saga_log(SAGA_LOG_ERROR, __VA_ARGS__)

#endif
