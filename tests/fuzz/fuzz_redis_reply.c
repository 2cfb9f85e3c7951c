/*
 * fuzz_redis_reply.c -- libFuzzer target for the decoders of Redis replies
 * that come from other programs than our own Lua functions: the cluster's
 * shape (CLUSTER SLOTS, MOVED/ASK; engine/redis/cluster_reply.c) and the
 * intake stream, which holds what any client wrote (XREADGROUP and
 * XAUTOCLAIM; engine/store/intake_decode.c). Records and history entries
 * have their own target (fuzz_record.c).
 *
 * Input: one byte that chooses the decoder (its value modulo 4: 0 CLUSTER
 * SLOTS, 1 a redirection, 2 XREADGROUP, 3 XAUTOCLAIM), then the bytes a
 * server would send, in the Redis protocol, parsed by hiredis's reader
 * (the parser the client uses); each complete reply (at most 4) goes to
 * the decoder. Broken invariants abort, so that the fuzzer reports them
 * like crashes: an accepted CLUSTER SLOTS reply has the shape the client
 * then reads without checking; a parsed redirection names a slot in range
 * and an address with a port; decoded requests are well formed or say
 * why not; a refusal says why in one line.
 *
 * Seed corpus: tests/fuzz/redis-reply-seeds/. See scripts/fuzz.sh.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis/cluster_reply.h"
#include "saga/errors.h"
#include "saga/state.h"
#include "store/intake_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        abort();
    }
}

static void check_line(const char *s) {
    check(s != NULL && s[0] != '\0', "a refusal says why");
    for (const char *p = s; *p; p++)
        check((unsigned char)*p >= 0x20 && *p != 0x7f, "a reason is one line of text");
}

static void slots(const redisReply *r) {
    char why[200];
    why[0] = '\0';
    int rc = saga_cluster_slots_check(r, why, sizeof(why));
    if (rc != 0) {
        check(rc == -EINVAL, "CLUSTER SLOTS: -EINVAL or 0");
        check_line(why);
        return;
    }
    /* what redis_cluster.c's apply_slots() reads once the check passed */
    check(r->type == REDIS_REPLY_ARRAY, "CLUSTER SLOTS: an array");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        check(e->type == REDIS_REPLY_ARRAY && e->elements >= 3, "a range has a node");
        check(e->element[0]->type == REDIS_REPLY_INTEGER &&
                  e->element[1]->type == REDIS_REPLY_INTEGER,
              "slots are integers");
        check(e->element[0]->integer >= 0 && e->element[0]->integer <= e->element[1]->integer &&
                  e->element[1]->integer < SAGA_REDIS_SLOTS,
              "slots in range");
        for (size_t j = 2; j < e->elements; j++) {
            const redisReply *a = e->element[j];
            check(a->type == REDIS_REPLY_ARRAY && a->elements >= 2, "a node is [host, port]");
            check(a->element[0]->type == REDIS_REPLY_STRING, "a host is a string");
            check(strlen(a->element[0]->str) == a->element[0]->len &&
                      a->element[0]->len <= SAGA_CLUSTER_HOST_MAX,
                  "a host is short text");
            check(a->element[1]->type == REDIS_REPLY_INTEGER && a->element[1]->integer >= 1 &&
                      a->element[1]->integer <= 65535,
                  "a port is 1..65535");
        }
    }
}

static void redirect(const redisReply *r) {
    if (r->type != REDIS_REPLY_ERROR && r->type != REDIS_REPLY_STRING &&
        r->type != REDIS_REPLY_STATUS)
        return;
    int slot = -1;
    char name[80] = "untouched";
    int rc = saga_cluster_redirect_parse(r->str, &slot, name, sizeof(name));
    if (rc < 0) {
        check(rc == -EINVAL, "a redirection: -EINVAL or 0/1");
        check(slot == -1 && strcmp(name, "untouched") == 0, "nothing set on a refusal");
        return;
    }
    check(rc == 0 ? strncmp(r->str, "MOVED ", 6) == 0 : strncmp(r->str, "ASK ", 4) == 0,
          "MOVED is 0, ASK is 1");
    check(slot >= 0 && slot < SAGA_REDIS_SLOTS, "the slot in range");
    check(name[0] != '\0' && strchr(name, ':') != NULL && strlen(name) < sizeof(name),
          "an address with a port");
}

static void intake(const redisReply *r, bool autoclaim) {
    if (r->type == REDIS_REPLY_ERROR)
        return; /* saga__call_status() handles those before the decoder */
    saga_intake_request_t *reqs = (saga_intake_request_t *)1;
    size_t n = 99;
    const char *why = NULL;
    int rc = saga_intake_decode(r, autoclaim, 7, &reqs, &n, &why);
    if (rc != 0) {
        check(rc == SAGA_ESTORE || rc == -ENOMEM, "SAGA_ESTORE or -ENOMEM");
        check(reqs == NULL && n == 0, "nothing returned on a refusal");
        check_line(why);
        return;
    }
    check((n == 0) == (reqs == NULL), "an array when there are requests");
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i++) {
        const saga_intake_request_t *q = &reqs[i];
        check(q->shard == 7, "the shard given");
        check(q->entry != NULL && strlen(q->entry) >= 3 &&
                  strlen(q->entry) <= SAGA_INTAKE_ENTRY_MAX && strchr(q->entry, '-') != NULL,
              "an entry id <ms>-<seq>");
        if (q->malformed != NULL) {
            check_line(q->malformed);
            check(q->id == NULL && q->hash == NULL && q->input == NULL,
                  "a malformed request has no fields");
            continue;
        }
        size_t idlen = strlen(q->id);
        check(idlen >= 1 && idlen <= SAGA_ID_MAX, "an id of 1 to 128 bytes");
        check(strlen(q->hash) == 64, "a hash of 64 characters");
        check(q->input != NULL, "an input");
        for (size_t k = 0; k < q->input_len; k++) /* every byte readable */
            sum += (unsigned char)q->input[k];
    }
    (void)sum;
    free(reqs);
}

/* hiredis 0.14 allocates what a header announces ("*400000000" is an
 * array of 3.2 GB before any element came): a limit of hiredis, not of
 * the decoders fuzzed here, so inputs with a count or length above 65536
 * anywhere are skipped. */
static bool huge_header(const uint8_t *data, size_t size) {
    for (size_t i = 0; i + 1 < size; i++) {
        if (data[i] != '*' && data[i] != '$')
            continue;
        unsigned long v = 0;
        for (size_t k = i + 1; k < size && data[k] >= '0' && data[k] <= '9'; k++)
            if ((v = v * 10 + (data[k] - '0')) > 65536)
                return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || huge_header(data + 1, size - 1))
        return 0;
    int which = data[0] % 4;
    redisReader *rd = redisReaderCreate();
    if (rd == NULL)
        return 0;
    if (redisReaderFeed(rd, (const char *)data + 1, size - 1) == REDIS_OK) {
        for (int k = 0; k < 4; k++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
                break;
            const redisReply *r = reply;
            switch (which) {
            case 0: slots(r); break;
            case 1: redirect(r); break;
            case 2: intake(r, false); break;
            default: intake(r, true); break;
            }
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
    return 0;
}
