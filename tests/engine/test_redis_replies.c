/*
 * test_redis_replies.c -- the decoders of the Redis store's replies
 * (engine/store/redis_replies.c) on replies built by hand: what a record or a
 * history entry edited or damaged in Redis gives. The store's own path over
 * a real server is in test_redis_store.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "saga/errors.h"
#include "store/redis_replies.h"

TestSuite(redis_replies);

/* An array reply of the given strings (NULL-terminated). */
typedef struct {
    redisReply top;
    redisReply el[256];
    redisReply *ptr[256];
} reply_t;

static void array_of(reply_t *r, const char *const *strs) {
    memset(r, 0, sizeof(*r));
    r->top.type = REDIS_REPLY_ARRAY;
    r->top.element = r->ptr;
    for (size_t i = 0; strs[i] != NULL; i++) {
        r->el[i].type = REDIS_REPLY_STRING;
        r->el[i].str = (char *)strs[i];
        r->el[i].len = strlen(strs[i]);
        r->ptr[i] = &r->el[i];
        r->top.elements = i + 1;
    }
}

static int history_of(const char *const *entries, saga_redis_history_t *h, char *why) {
    reply_t r;
    array_of(&r, entries);
    return saga_redis_reply_history(&r.top, h, why, 160);
}

Test(redis_replies, entries_decode_in_order) {
    const char *const e[] = {
        "1795499158780\t1\tvm:1\tsaga.created\t\t\t0\tabc\tstep.started\ts0\taction\t1\t",
        "1795499158781\t2\t\tsaga.cancel_requested\t\t\t0\ttab\\there\\\\",
        NULL};
    saga_redis_history_t h;
    char why[160];
    cr_assert_eq(history_of(e, &h, why), 0, "%s", why);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(h.events[0].ts_ms, 1795499158780LL);
    cr_assert_str_eq(h.events[0].ev.type, "saga.created");
    cr_assert_null(h.events[0].ev.step);
    cr_assert_str_eq(h.events[0].worker, "vm:1");
    cr_assert_str_eq(h.events[1].ev.step, "s0");
    cr_assert_eq(h.events[1].ev.attempt, 1);
    cr_assert_null(h.events[1].ev.detail, "an empty detail is none");
    cr_assert_eq(h.events[2].seq, 2);
    cr_assert_str_eq(h.events[2].worker, "");
    cr_assert_str_eq(h.events[2].ev.detail, "tab\there\\");
    cr_assert_eq(h.events[2].ev.detail_len, 9);
    saga_redis_history_free(&h);
}

/* One write may decide any number of events (a fan-out of 100 steps). */
Test(redis_replies, an_entry_of_a_hundred_events) {
    static char entry[100 * 40 + 64];
    size_t off = (size_t)sprintf(entry, "1795499158780\t2\tw");
    for (int i = 0; i < 100; i++)
        off += (size_t)sprintf(entry + off, "\tstep.started\ts%d\taction\t1\t", i);
    const char *const e[] = {entry, NULL};
    saga_redis_history_t h;
    char why[160];
    cr_assert_eq(history_of(e, &h, why), 0, "%s", why);
    cr_assert_eq(h.n, 100);
    cr_assert_str_eq(h.events[99].ev.step, "s99");
    saga_redis_history_free(&h);
}

/* A damaged entry is refused with which entry and what is wrong in it. */
Test(redis_replies, a_bad_entry_is_named) {
    static const struct {
        const char *entry, *why;
    } cases[] = {
        {"1795499158780\t1", "fewer than 3 fields"},
        {"yesterday\t1\tw\tsaga.created\t\t\t0\t", "time is not a number"},
        {"-5\t1\tw\tsaga.created\t\t\t0\t", "time is not a number"},
        {"1795499158780\t01\tw\tsaga.created\t\t\t0\t", "seq is not a number"},
        {"1795499158780\t1\tw\tsaga.created\t\t\t0", "without its 5 fields"},
        {"1795499158780\t1\tw\tstep.started\ts\taction\t4294967296\t", "attempt is not a number"},
        {"1795499158780\t1\tw\tstep.started\ts\taction\tone\t", "attempt is not a number"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const e[] = {"1795499158780\t1\tw\tsaga.created\t\t\t0\t", cases[i].entry, NULL};
        saga_redis_history_t h;
        char why[160] = "";
        cr_assert_eq(history_of(e, &h, why), SAGA_ESTORE, "case %zu accepted", i);
        cr_assert(strstr(why, "malformed history entry 2 of 2: ") == why, "case %zu: %s", i, why);
        cr_assert(strstr(why, cases[i].why) != NULL, "case %zu: %s", i, why);
        saga_redis_history_free(&h);
    }
}

Test(redis_replies, records) {
    reply_t r;
    saga_record_t rec;
    const char *why = NULL;
    const char *const ok[] = {"state", "running", "seq", "3", NULL};
    array_of(&r, ok);
    cr_assert_eq(saga_redis_reply_record(&r.top, &rec, &why), 0);
    cr_assert_eq(rec.nfields, 2);
    size_t len;
    cr_assert_str_eq(saga_record_get(&rec, "seq", &len), "3");
    free(rec.fields);

    const char *const none[] = {NULL};
    array_of(&r, none);
    cr_assert_eq(saga_redis_reply_record(&r.top, &rec, &why), SAGA_ENOTFOUND, "no such key");

    const char *const odd[] = {"state", "running", "seq", NULL};
    array_of(&r, odd);
    cr_assert_eq(saga_redis_reply_record(&r.top, &rec, &why), SAGA_ESTORE);
    cr_assert_str_eq(why, "expected an array of field/value strings");

    array_of(&r, ok);
    r.el[1].type = REDIS_REPLY_INTEGER;
    cr_assert_eq(saga_redis_reply_record(&r.top, &rec, &why), SAGA_ESTORE, "a value that is no string");
}
