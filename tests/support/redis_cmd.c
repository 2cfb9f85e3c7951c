/*
 * redis_cmd.c -- test harness: synchronous Redis commands (redis_cmd.h).
 */
#include "redis_cmd.h"

#include <criterion/criterion.h>

redisReply *redis_vcmd(redisContext *c, const char *fmt, va_list ap) {
    cr_assert_not_null(c, "no Redis connection");
    redisReply *r = redisvCommand(c, fmt, ap);
    cr_assert_not_null(r, "redis: no reply to '%s': %s", fmt,
                       c->errstr[0] ? c->errstr : "(no error given)");
    return r;
}

redisReply *redis_cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

long long redis_cmd_int(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(c, fmt, ap);
    va_end(ap);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "redis: '%s' answered %s", fmt,
                 r->type == REDIS_REPLY_ERROR ? r->str : "no integer");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}
