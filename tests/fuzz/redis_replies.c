/*
 * redis_replies.c -- see redis_replies.h.
 *
 * The decoders are static functions of store_redis.c; this file compiles
 * that source once more, inside the fuzz target, so that the fuzzer runs
 * them exactly as the store does. The fuzz target links no other copy of
 * store_redis.c: the engine library's object is never pulled in, as every
 * symbol it defines is already defined here.
 */
#include "store_redis.c"

#include "redis_replies.h"

static rq_t *fake_request(rq_kind_t kind, const char *id, void *cb, void *data) {
    size_t n = strlen(id);
    rq_t *rq = calloc(1, sizeof(*rq) + n + 1);
    if (rq == NULL)
        abort();
    rq->kind = kind;
    rq->cb = cb;
    rq->data = data;
    memcpy(rq->key, id, n + 1);
    return rq;
}

void fuzz_redis_load(const char *id, const redisReply *r, saga_store_load_cb cb,
                     void *data) {
    rq_t *rq = fake_request(RQ_LOAD, id, (void *)cb, data);
    finish_load(rq, 0, r);
    free(rq);
}

void fuzz_redis_history(const char *id, const redisReply *r,
                        saga_store_history_cb cb, void *data) {
    rq_t *rq = fake_request(RQ_HISTORY, id, (void *)cb, data);
    finish_history(rq, 0, r);
    free(rq);
}
