/*
 * intake_decode.h -- the start requests in a reply of the intake stream
 * (intake.h): what XREADGROUP and XAUTOCLAIM answer, decoded strictly.
 *
 * A reply that is not the shape the command answers is SAGA_ESTORE naming
 * what was wrong; a request whose fields are not what `saga submit`
 * writes is returned as malformed (its entry set), so that the worker
 * acknowledges and drops it instead of meeting it again at every read.
 * Apart from intake.c so that it is fuzzed (tests/fuzz/
 * fuzz_redis_reply.c): the stream holds what any client wrote.
 */
#ifndef SAGA_STORE_INTAKE_DECODE_H
#define SAGA_STORE_INTAKE_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "store/intake.h"

/* Decodes `r`, an answer that is not an error: the reply to XREADGROUP
 * ([[stream, [entry...]]...], or nil when nothing came) or, `autoclaim`,
 * to XAUTOCLAIM ([next, [entry...]] or [next, [entry...], [deleted...]]),
 * each entry [<ms>-<seq>, [field, value, ...]] or, deleted while pending,
 * [<ms>-<seq>, nil] (left out). Every request gets `shard`.
 *
 * Returns 0 with *reqs (a new array, free() it; NULL when *n is 0) and *n
 * set; the requests' strings point into `r`, which must outlive them.
 * SAGA_ESTORE with *why (a static string) for a reply of another shape,
 * -ENOMEM; in both cases *reqs is NULL and *n 0. */
int saga_intake_decode(const redisReply *r, bool autoclaim, unsigned shard,
                       saga_intake_request_t **reqs, size_t *n, const char **why);

#endif
