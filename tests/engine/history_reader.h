/*
 * history_reader.h -- reads a saga's history straight from Redis (LRANGE),
 * independently of the store's own reader, for tests that check what is
 * durable. Format: docs/redis-layout.md.
 */
#ifndef SAGA_TEST_HISTORY_READER_H
#define SAGA_TEST_HISTORY_READER_H

#include <stddef.h>

#include <hiredis/hiredis.h>

typedef struct hist_ev_s {
    long long ts;
    long long seq;
    char worker[64];
    char type[48];
    char step[64];
    char phase[16];
    int attempt;
    char detail[512];
} hist_ev_t;

/* Every event of saga `id`, in order; *out is malloc'd (caller frees).
 * Fails the test on a malformed entry. */
size_t hist_read(redisContext *c, const char *id, hist_ev_t **out);

#endif
