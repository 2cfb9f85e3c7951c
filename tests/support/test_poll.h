/*
 * test_poll.h -- test harness: wait for a state by polling it under a
 * deadline, never by sleeping a fixed time.
 *
 *     test_poll_t p = test_poll_start(5000);
 *     while (!ready())
 *         if (!test_poll_next(&p))
 *             cr_assert_fail("not ready after 5 s: <what was left>");
 */
#ifndef SAGA_TEST_POLL_H
#define SAGA_TEST_POLL_H

#include <stdbool.h>

typedef struct test_poll_s {
    long long end_ms;   /* CLOCK_MONOTONIC */
    long pause_ms;      /* the next pause */
    long max_pause_ms;  /* pauses double up to this */
} test_poll_t;

/* A poll that gives up `timeout_ms` from now. */
test_poll_t test_poll_start(long timeout_ms);

/* The same, pausing `pause_ms` every time (a fixed cadence). */
test_poll_t test_poll_every(long timeout_ms, long pause_ms);

/* Pauses before the next check (10 ms, doubling up to 50 ms, never past
 * the deadline) and returns true; returns false at once when the deadline
 * has passed: the caller then fails, saying what it found. */
bool test_poll_next(test_poll_t *p);

/* Milliseconds left before the deadline (0 once passed). */
long test_poll_left(const test_poll_t *p);

#endif
