/*
 * log.c -- see log.h. The level is process-wide configuration, set once at
 * start-up; lines are written with one fwrite so that concurrent writers
 * (thread-pool handlers) do not interleave within a line.
 */
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_level = -1;
static FILE *log_out;

void saga_log_set_level(saga_log_level_t level) { log_level = (int)level; }

saga_log_level_t saga_log_level(void) {
    if (log_level < 0) {
        const char *e = getenv("SAGA_LOG");
        log_level = SAGA_LOG_INFO;
        if (e != NULL) {
            if (strcmp(e, "debug") == 0) log_level = SAGA_LOG_DEBUG;
            else if (strcmp(e, "warn") == 0) log_level = SAGA_LOG_WARN;
            else if (strcmp(e, "error") == 0) log_level = SAGA_LOG_ERROR;
        }
    }
    return (saga_log_level_t)log_level;
}

void saga_log_set_output(FILE *out) { log_out = out; }

void saga_vlog(saga_log_level_t level, const char *prefix, const char *fmt,
               va_list ap) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if ((int)level < (int)saga_log_level())
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                     names[level > SAGA_LOG_ERROR ? SAGA_LOG_ERROR : level],
                     prefix ? prefix : "", prefix ? ": " : "");
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    if (m > 0)
        len += (size_t)m < sizeof(line) - len ? (size_t)m : sizeof(line) - len - 1;
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, log_out ? log_out : stderr);
}

void saga_log(saga_log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    saga_vlog(level, NULL, fmt, ap);
    va_end(ap);
}
