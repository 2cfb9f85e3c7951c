/*
 * loop_wait.h -- test harness: run a libuv loop until a callback counted
 * what a test waits for, under a deadline (never a fixed sleep).
 */
#ifndef SAGA_TEST_LOOP_WAIT_H
#define SAGA_TEST_LOOP_WAIT_H

#include <stdbool.h>

#include <uv.h>

/* Runs `loop` (one turn at a time) until *n >= want or `ms` milliseconds
 * passed; true when reached. The loop needs a handle that wakes it (a
 * repeating timer) when nothing else may. */
bool loop_wait(uv_loop_t *loop, const int *n, int want, long ms);

#endif
