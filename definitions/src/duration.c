/*
 * duration.c -- parsing and printing durations.
 */
#include "duration.h"
#include "saga/definition.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct unit_s {
    const char *name;
    uint64_t ms;
} unit_t;

/* Largest first: the order the parts of a combined duration must follow. */
static const unit_t UNITS[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};
#define N_UNITS (sizeof(UNITS) / sizeof(UNITS[0]))

/* Parses with the units from UNITS[first] down, up to `max` ms. */
static int parse_units(const char *text, size_t len, size_t first, uint64_t max,
                       uint64_t *ms)
{
    if (len == 1 && text[0] == '0') {
        *ms = 0;
        return 0;
    }
    if (len == 0)
        return -EINVAL;

    uint64_t total = 0;
    size_t i = 0, next_unit = first;
    bool too_large = false;
    while (i < len) {
        /* The number: digits only, no sign, no fraction. */
        uint64_t v = 0;
        size_t digits = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9') {
            if (v <= max)
                v = v * 10 + (uint64_t)(text[i] - '0');
            else
                too_large = true;
            i++;
            digits++;
        }
        if (digits == 0)
            return -EINVAL;

        /* The unit: the longest match, and smaller than the previous one.
         * "ms" must win over "m" followed by garbage. */
        size_t u;
        size_t ulen = 0;
        for (u = 0; u < N_UNITS; u++) {
            ulen = strlen(UNITS[u].name);
            if (len - i >= ulen && memcmp(text + i, UNITS[u].name, ulen) == 0 &&
                !(ulen == 1 && text[i] == 'm' && i + 1 < len && text[i + 1] == 's'))
                break;
        }
        if (u == N_UNITS || u < next_unit)
            return -EINVAL;
        i += ulen;
        next_unit = u + 1;

        /* v <= 10 * max + 9: compare before multiplying (no wrap). */
        if (v > max / UNITS[u].ms)
            too_large = true;
        else
            total += v * UNITS[u].ms;
        if (total > max)
            too_large = true;
        if (too_large)
            total = max + 1;
    }
    if (too_large)
        return -ERANGE;
    *ms = total;
    return 0;
}

int saga__duration_parse(const char *text, size_t len, uint64_t *ms)
{
    return parse_units(text, len, 1, SAGA__DURATION_MAX_MS, ms);
}

int saga__retention_parse(const char *text, size_t len, uint64_t *ms)
{
    return parse_units(text, len, 0, SAGA_RETENTION_MAX_MS, ms);
}

const char *saga__duration_format(uint64_t ms, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, size, "0s");
        return buf;
    }
    for (size_t u = 1; u < N_UNITS && o < size; u++) {
        uint64_t n = ms / UNITS[u].ms;
        if (n == 0)
            continue;
        ms -= n * UNITS[u].ms;
        int w = snprintf(buf + o, size - o, "%" PRIu64 "%s", n, UNITS[u].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return buf;
}

int saga_duration_parse(const char *text, uint64_t *ms) {
    return saga__duration_parse(text, strlen(text), ms);
}
