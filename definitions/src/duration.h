/*
 * duration.h -- durations as written in a definition: an integer and a unit
 * (`250ms`, `2s`, `1m`, `1h`), or several of them from the largest unit
 * down, each unit at most once (`1m30s`, `1h30m`, `2s500ms`). `0` alone
 * needs no unit.
 */
#ifndef SAGA_DEFS_DURATION_H
#define SAGA_DEFS_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The largest duration accepted anywhere: 24 hours. */
#define SAGA__DURATION_MAX_MS (24ull * 60 * 60 * 1000)

/* Parses `len` bytes of `text` into milliseconds. Returns 0, -EINVAL when
 * the text is not a duration, or -ERANGE when it is one but exceeds
 * SAGA__DURATION_MAX_MS; *ms is set only on success. */
int saga__duration_parse(const char *text, size_t len, uint64_t *ms);

/* The same for a retention (`retention:` of a definition): the unit `d`
 * (days) comes first, and the limit is SAGA_RETENTION_MAX_MS (ten years). */
int saga__retention_parse(const char *text, size_t len, uint64_t *ms);

/* Writes `ms` in the shortest exact form ("1m30s", "250ms", "0s") into
 * `buf` (32 bytes always suffice). Returns `buf`. Cannot fail. */
const char *saga__duration_format(uint64_t ms, char *buf, size_t size);

#endif /* SAGA_DEFS_DURATION_H */
