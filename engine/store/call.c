/*
 * call.c -- see call.h.
 */
#include "store/call.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "saga/errors.h"
#include "store/store_redis.h"

saga_redis_t *saga__call_conn(saga_store_t *s) {
    return s != NULL ? saga_store_redis_conn(s) : NULL;
}

int saga__call_status(const redisReply *r, const char **why) {
    static const struct {
        const char *prefix;
        int status;
    } codes[] = {
        {"SAGAFENCED ", SAGA_EFENCED},    {"SAGAOWNED ", SAGA_EFENCED},
        {"SAGANOTFOUND ", SAGA_ENOTFOUND}, {"SAGAEXISTS ", SAGA_EEXIST},
        {"SAGACONFLICT ", SAGA_ECONFLICT}, {"SAGAFINISHED ", SAGA_ESTATE},
        {"SAGAUNMANAGED ", SAGA_ESTATE},
    };
    *why = NULL;
    if (r == NULL) {
        *why = "no answer (connection lost, timed out or closed)";
        return SAGA_EUNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    *why = r->str != NULL ? r->str : "an error without text";
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strncmp(*why, codes[i].prefix, strlen(codes[i].prefix)) == 0)
            return codes[i].status;
    return SAGA_ESTORE;
}

bool saga__call_transient(const redisReply *r) {
    static const char *const transient[] = {"LOADING", "BUSY", "TRYAGAIN",
                                            "READONLY", "MASTERDOWN", "CLUSTERDOWN"};
    if (r == NULL || r->type != REDIS_REPLY_ERROR || r->str == NULL)
        return false;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strncmp(r->str, transient[i], strlen(transient[i])) == 0)
            return true;
    return false;
}

int saga__call_send_status(int rc) { return rc == -ENOTCONN ? SAGA_EUNAVAILABLE : rc; }
