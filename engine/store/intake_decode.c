/*
 * intake_decode.c -- see intake_decode.h.
 */
#include "store/intake_decode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "saga/errors.h"
#include "saga/state.h"
#include "store/redis_replies.h"

/* A stream entry id is "<ms>-<seq>": at most 41 characters. */
#define ENTRY_MAX SAGA_INTAKE_ENTRY_MAX

/* The value of field `name` in a [field, value, ...] array of strings. */
static const redisReply *field_of(const redisReply *fields, const char *name) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

static bool has_nul(const redisReply *s) { return memchr(s->str, '\0', (size_t)s->len) != NULL; }

/* Fills `rq` from one entry's fields (`entry` already checked). */
static void decode_request(const char *entry, const redisReply *fields, unsigned shard,
                           saga_intake_request_t *rq) {
    *rq = (saga_intake_request_t){entry, NULL, NULL, NULL, 0, NULL, shard};
    if (fields->elements % 2 != 0 || !saga_redis_all_strings(fields)) {
        rq->malformed = "its fields are not name/value strings";
        return;
    }
    const redisReply *id = field_of(fields, "id"), *hash = field_of(fields, "hash"),
                     *input = field_of(fields, "input");
    if (id == NULL || hash == NULL || input == NULL)
        rq->malformed = id == NULL ? "no field 'id'" : hash == NULL ? "no field 'hash'"
                                                                    : "no field 'input'";
    else if (id->len < 1 || id->len > SAGA_ID_MAX || has_nul(id))
        rq->malformed = "its id is not 1 to 128 bytes of text";
    else if (hash->len != 64 || has_nul(hash))
        rq->malformed = "its hash is not 64 characters";
    if (rq->malformed != NULL)
        return;
    rq->id = id->str;
    rq->hash = hash->str;
    rq->input = input->str;
    rq->input_len = (size_t)input->len;
}

/* True for "<digits>-<digits>" of at most ENTRY_MAX characters. */
static bool entry_id_ok(const redisReply *e) {
    if (e->type != REDIS_REPLY_STRING || e->len < 3 || e->len > ENTRY_MAX)
        return false;
    const char *dash = memchr(e->str, '-', (size_t)e->len);
    if (dash == NULL || dash == e->str || dash == e->str + e->len - 1)
        return false;
    for (const char *p = e->str; p < e->str + e->len; p++)
        if (p != dash && (*p < '0' || *p > '9'))
            return false;
    return true;
}

/* Appends the requests of an array of stream entries to `out` (room for
 * every entry). Returns 0, or SAGA_ESTORE with *why. */
static int decode_entries(const redisReply *entries, unsigned shard,
                          saga_intake_request_t *out, size_t *n, const char **why) {
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) {
        *why = "the entries are not an array";
        return SAGA_ESTORE;
    }
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            !entry_id_ok(e->element[0])) {
            *why = "an entry is not [<ms>-<seq>, fields]";
            return SAGA_ESTORE;
        }
        const redisReply *fields = e->element[1];
        if (fields->type == REDIS_REPLY_NIL)
            continue; /* deleted while pending: nothing to run */
        if (fields->type != REDIS_REPLY_ARRAY) {
            *why = "an entry's fields are not an array";
            return SAGA_ESTORE;
        }
        decode_request(e->element[0]->str, fields, shard, &out[(*n)++]);
    }
    return 0;
}

/* Entries held by a reply (an upper bound for the array to allocate). */
static size_t entries_in(const redisReply *r, bool autoclaim) {
    size_t n = 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return 0;
    if (autoclaim)
        return r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY
                   ? r->element[1]->elements : 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements == 2 &&
            r->element[i]->element[1]->type == REDIS_REPLY_ARRAY)
            n += r->element[i]->element[1]->elements;
    return n;
}

int saga_intake_decode(const redisReply *r, bool autoclaim, unsigned shard,
                       saga_intake_request_t **reqs, size_t *n, const char **why) {
    *reqs = NULL;
    *n = 0;
    if (!autoclaim && r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        *why = autoclaim ? "expected [next, entries, deleted]" : "expected [[stream, entries]...]";
        return SAGA_ESTORE;
    }
    size_t cap = entries_in(r, autoclaim), got = 0;
    saga_intake_request_t *out = cap > 0 ? calloc(cap, sizeof(*out)) : NULL;
    if (cap > 0 && out == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    int status = 0;
    if (autoclaim) {
        if ((r->elements != 2 && r->elements != 3) || r->element[0]->type != REDIS_REPLY_STRING) {
            status = SAGA_ESTORE;
            *why = "expected [next, entries, deleted]";
        } else {
            status = decode_entries(r->element[1], shard, out, &got, why);
        }
    } else {
        for (size_t s = 0; s < r->elements && status == 0; s++) {
            const redisReply *st = r->element[s];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
                st->element[0]->type != REDIS_REPLY_STRING) {
                status = SAGA_ESTORE;
                *why = "expected [[stream, entries]...]";
            } else {
                status = decode_entries(st->element[1], shard, out, &got, why);
            }
        }
    }
    if (status != 0 || got == 0) {
        free(out);
        return status;
    }
    *reqs = out;
    *n = got;
    return 0;
}
