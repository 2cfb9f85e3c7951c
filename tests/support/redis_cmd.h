/*
 * redis_cmd.h -- test harness: synchronous Redis commands for assertions
 * (hiredis's blocking client on a connection from redis_server_connect()).
 * Tests only, never the engine.
 */
#ifndef SAGA_TEST_REDIS_CMD_H
#define SAGA_TEST_REDIS_CMD_H

#include <stdarg.h>

#include <hiredis/hiredis.h>

/* Sends one command (redisCommand's format) on `c` and waits for its
 * reply; the caller frees it with freeReplyObject(). Fails the running
 * test when no reply comes, naming the connection's error. An error reply
 * is a reply: the caller checks its type. */
redisReply *redis_cmd(redisContext *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same with a va_list. */
redisReply *redis_vcmd(redisContext *c, const char *fmt, va_list ap);

/* A command whose reply must be an integer; returns it (the reply freed).
 * Fails the test otherwise, quoting an error reply. */
long long redis_cmd_int(redisContext *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
