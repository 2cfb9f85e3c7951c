/*
 * loop_wait.c -- see loop_wait.h.
 */
#include "loop_wait.h"

#include <time.h>

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

bool loop_wait(uv_loop_t *loop, const int *n, int want, long ms) {
    long long end = mono_ms() + ms;
    while (*n < want && mono_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    return *n >= want;
}
