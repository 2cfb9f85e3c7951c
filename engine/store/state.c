/*
 * state.c -- saga states and ids (saga/state.h).
 */
#include "saga/state.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/rng.h"

static const char *const state_names[SAGA_STATE_COUNT] = {
    "running", "compensating", "completed", "compensated", "stuck", "confirming"};

const char *saga_state_name(saga_state_t s) {
    return (unsigned)s < SAGA_STATE_COUNT ? state_names[s] : "unknown";
}

int saga_state_parse(const char *name, saga_state_t *out) {
    for (int i = 0; i < SAGA_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (saga_state_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool saga_state_terminal(saga_state_t s) {
    return s == SAGA_STATE_COMPLETED || s == SAGA_STATE_COMPENSATED;
}

/* ---------------------------------------------------------------------- */
/* Ids                                                                     */
/* ---------------------------------------------------------------------- */

/* A ULID: 48 bits of Unix ms then 80 random bits, Crockford base32, 26
 * characters. Sorts by creation time, which `saga list` relies on. */
void saga_id_make(int64_t now_ms, uint64_t r1, uint64_t r2, char *out) {
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t ms = (uint64_t)now_ms;
    for (int i = 9; i >= 0; i--) {
        out[i] = b32[ms & 31];
        ms >>= 5;
    }
    for (int i = 10; i < 26; i++) {
        uint64_t *r = i < 23 ? &r1 : &r2;
        out[i] = b32[*r & 31];
        *r >>= 5;
    }
    out[26] = '\0';
}

void saga_id_new(char *out) {
    saga_rng_t r;
    saga_rng_seed(&r, 0); /* fresh OS randomness each time */
    uint64_t a = saga_rng_next(&r);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    saga_id_make(ms, a, saga_rng_next(&r), out);
}

bool saga_id_valid(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > SAGA_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}
