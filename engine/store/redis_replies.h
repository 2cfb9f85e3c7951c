/*
 * redis_replies.h -- decoders of the Redis store's replies: the reply to
 * HGETALL saga:{ID} as a saga_record_t, the reply to LRANGE
 * saga:{ID}:history as history entries (format: docs/redis-layout.md).
 *
 * Pure functions of a hiredis reply, apart from the store's requests and
 * its connection, so that they are tested and fuzzed on their own
 * (tests/fuzz/fuzz_record.c). A reply is untrusted input: a record edited
 * by hand, a history entry someone appended; what cannot be read is
 * SAGA_ESTORE with what is wrong, never a crash.
 */
#ifndef SAGA_REDIS_REPLIES_H
#define SAGA_REDIS_REPLIES_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "saga/store.h"

/* Every element of the array `r` is a string. */
bool saga_redis_all_strings(const redisReply *r);

/* The reply to HGETALL as a record whose fields point into `r` (valid as
 * long as it is; free rec->fields). Returns 0; SAGA_ENOTFOUND for an empty
 * reply (no such key); SAGA_ESTORE with what is wrong in *why; -ENOMEM. */
int saga_redis_reply_record(const redisReply *r, saga_record_t *rec, const char **why);

/* History entries decoded from a reply: events point into buf. */
typedef struct saga_redis_history_s {
    saga_history_entry_t *events;
    size_t n;
    char *buf;
} saga_redis_history_t;

/* The reply to LRANGE as the events of every entry, in order. Returns 0;
 * SAGA_ESTORE with what is wrong (which entry, which field) in why;
 * -ENOMEM. Free with saga_redis_history_free() whatever it returned. */
int saga_redis_reply_history(const redisReply *r, saga_redis_history_t *h, char *why,
                             size_t whylen);
void saga_redis_history_free(saga_redis_history_t *h);

#endif
