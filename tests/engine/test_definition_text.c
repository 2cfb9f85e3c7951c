/*
 * test_definition_text.c -- no saga is created under a definition whose
 * text is not in the store (engine.h, saga_engine_register()): a resume on
 * another worker needs the text. Redis refuses the text's write here
 * through an ACL that denies SET (the sagas' own writes go through FCALL),
 * so the refusal comes back asynchronously, as it would from a real
 * failure of that write.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "redis_server.h"

static redis_server_t R;
static th_t T;

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    static const char *const args[] = {"--user", "default", "on", "nopass", "~*", "&*",
                                       "+@all", "-set", NULL};
    cr_assert_eq(redis_server_start(&R, args), 0);
}

static void teardown(void) {
    th_free(&T);
    redis_server_stop(&R);
}

TestSuite(definition_text, .init = setup, .fini = teardown, .timeout = 60);

static long long exists(redisContext *c, const char *fmt, const char *arg) {
    redisReply *r = redisCommand(c, fmt, arg);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "EXISTS failed");
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

Test(definition_text, sagas_wait_for_the_text_and_fail_when_it_cannot_be_stored) {
    th_init_redis(&T, R.url);
    saga_engine_def_t *d = th_define(&T,
        "saga: textless\n"
        "steps:\n"
        "  - {name: a, action: {handler: demo.noop}, compensation: none}\n");
    char hash[65];
    snprintf(hash, sizeof(hash), "%s", saga_engine_def(d)->hash);
    char id1[SAGA_ID_MAX + 1];
    snprintf(id1, sizeof(id1), "%s", th_start(&T, d, NULL));
    /* The text's SET is refused: the saga fails without being created. */
    uint64_t deadline = uv_now(&T.loop) + 10000;
    while (T.finished < 1 && uv_now(&T.loop) < deadline)
        uv_run(&T.loop, UV_RUN_ONCE);
    cr_assert_eq(T.finished, 1, "the saga neither failed nor finished");
    cr_assert_eq(T.lost, 1, "the saga ran under a definition whose text is not stored");
    redisContext *c = redis_server_connect(&R);
    cr_assert_not_null(c);
    cr_assert_eq(exists(c, "EXISTS saga:{%s}", id1), 0, "saga %s was created", id1);
    cr_assert_eq(exists(c, "EXISTS sagadef:{%s}", hash), 0);

    /* Once the text can be stored, the next start stores it first. */
    redisReply *r = redisCommand(c, "ACL SETUSER default +set");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(r);
    char id2[SAGA_ID_MAX + 1];
    snprintf(id2, sizeof(id2), "%s", th_start(&T, d, NULL));
    th_run_until(&T, 2);
    cr_assert_eq(T.lost, 1);
    cr_assert_eq(T.by_state[SAGA_STATE_COMPLETED], 1);
    cr_assert_eq(exists(c, "EXISTS sagadef:{%s}", hash), 1, "the text is stored now");
    cr_assert_eq(exists(c, "EXISTS saga:{%s}", id2), 1);
    redisFree(c);
}
