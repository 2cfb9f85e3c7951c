/*
 * test_poll.c -- test harness: polling under a deadline (test_poll.h).
 */
#include "test_poll.h"

#include <errno.h>
#include <time.h>

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

test_poll_t test_poll_start(long timeout_ms) {
    return (test_poll_t){mono_ms() + timeout_ms, 10, 50};
}

test_poll_t test_poll_every(long timeout_ms, long pause_ms) {
    return (test_poll_t){mono_ms() + timeout_ms, pause_ms, pause_ms};
}

long test_poll_left(const test_poll_t *p) {
    long long left = p->end_ms - mono_ms();
    return left > 0 ? (long)left : 0;
}

bool test_poll_next(test_poll_t *p) {
    long left = test_poll_left(p);
    if (left == 0)
        return false;
    long ms = p->pause_ms < left ? p->pause_ms : left;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    if (p->pause_ms < p->max_pause_ms)
        p->pause_ms = p->pause_ms * 2 > p->max_pause_ms ? p->max_pause_ms : p->pause_ms * 2;
    return true;
}
