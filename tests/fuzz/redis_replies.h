/*
 * redis_replies.h -- the Redis store's reply decoders, for the record
 * fuzzer: the exact code that turns the reply to HGETALL saga:{ID} into a
 * saga_record_t and the reply to LRANGE saga:{ID}:history into history
 * entries (engine/src/store_redis.c, where they are static).
 */
#ifndef SAGA_FUZZ_REDIS_REPLIES_H
#define SAGA_FUZZ_REDIS_REPLIES_H

#include <hiredis/hiredis.h>

#include "store.h"

/* Decodes `r` as the reply to a load of saga `id` and runs `cb` with the
 * record (or an error status), before returning, as the store would. */
void fuzz_redis_load(const char *id, const redisReply *r, saga_store_load_cb cb,
                     void *data);

/* The same for the reply to a history request. */
void fuzz_redis_history(const char *id, const redisReply *r,
                        saga_store_history_cb cb, void *data);

#endif
