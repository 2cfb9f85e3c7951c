/*
 * cluster_reply.c -- see cluster_reply.h.
 */
#include "redis/cluster_reply.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(int type) {
    switch (type) {
    case REDIS_REPLY_STRING: return "a string";
    case REDIS_REPLY_ARRAY: return "an array";
    case REDIS_REPLY_INTEGER: return "an integer";
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_STATUS: return "a status";
    case REDIS_REPLY_ERROR: return "an error";
    default: return "a reply of another type";
    }
}

/* Checks node `j` (1-based in messages) of range `i`. */
static int node_check(const redisReply *a, size_t i, size_t j, char *why, size_t whylen) {
    if (a == NULL || a->type != REDIS_REPLY_ARRAY || a->elements < 2) {
        snprintf(why, whylen, "range %zu, node %zu: expected [host, port, ...], got %s", i + 1,
                 j, a == NULL ? "nothing" : a->type == REDIS_REPLY_ARRAY
                                                ? "an array of fewer than 2 elements"
                                                : type_name(a->type));
        return -EINVAL;
    }
    const redisReply *host = a->element[0], *port = a->element[1];
    if (host->type != REDIS_REPLY_STRING) {
        snprintf(why, whylen, "range %zu, node %zu: the host is %s, not a string", i + 1, j,
                 type_name(host->type));
        return -EINVAL;
    }
    if (host->len > SAGA_CLUSTER_HOST_MAX || memchr(host->str, '\0', host->len) != NULL) {
        snprintf(why, whylen, "range %zu, node %zu: the host is not text of at most %d bytes",
                 i + 1, j, SAGA_CLUSTER_HOST_MAX);
        return -EINVAL;
    }
    if (port->type != REDIS_REPLY_INTEGER) {
        snprintf(why, whylen, "range %zu, node %zu: the port is %s, not an integer", i + 1, j,
                 type_name(port->type));
        return -EINVAL;
    }
    if (port->integer < 1 || port->integer > 65535) {
        snprintf(why, whylen, "range %zu, node %zu: port %lld is not in 1..65535", i + 1, j,
                 port->integer);
        return -EINVAL;
    }
    return 0;
}

int saga_cluster_slots_check(const redisReply *r, char *why, size_t whylen) {
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(why, whylen, "expected an array of slot ranges, got %s",
                 r == NULL ? "nothing" : type_name(r->type));
        return -EINVAL;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3) {
            snprintf(why, whylen, "range %zu: expected [first slot, last slot, node...], got %s",
                     i + 1, e == NULL ? "nothing" : e->type == REDIS_REPLY_ARRAY
                                                        ? "an array of fewer than 3 elements"
                                                        : type_name(e->type));
            return -EINVAL;
        }
        const redisReply *first = e->element[0], *last = e->element[1];
        if (first->type != REDIS_REPLY_INTEGER || last->type != REDIS_REPLY_INTEGER) {
            snprintf(why, whylen, "range %zu: the slots are not integers", i + 1);
            return -EINVAL;
        }
        if (first->integer < 0 || last->integer >= SAGA_REDIS_SLOTS ||
            first->integer > last->integer) {
            snprintf(why, whylen, "range %zu: slots %lld..%lld are not a range within 0..%d",
                     i + 1, first->integer, last->integer, SAGA_REDIS_SLOTS - 1);
            return -EINVAL;
        }
        for (size_t j = 2; j < e->elements; j++)
            if (node_check(e->element[j], i, j - 1, why, whylen) != 0)
                return -EINVAL;
    }
    return 0;
}

int saga_cluster_redirect_parse(const char *s, int *slot, char *name, size_t namelen) {
    bool ask;
    size_t skip;
    if (strncmp(s, "MOVED ", 6) == 0) {
        ask = false;
        skip = 6;
    } else if (strncmp(s, "ASK ", 4) == 0) {
        ask = true;
        skip = 4;
    } else {
        return -EINVAL;
    }
    if (s[skip] < '0' || s[skip] > '9')
        return -EINVAL; /* strtol would take a sign or spaces */
    char *end;
    long v = strtol(s + skip, &end, 10);
    if (*end != ' ' || v < 0 || v >= SAGA_REDIS_SLOTS)
        return -EINVAL;
    const char *addr = end + 1;
    size_t len = strlen(addr);
    if (len == 0 || len >= namelen || strchr(addr, ':') == NULL)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)addr[i] <= ' ' || addr[i] == 0x7f)
            return -EINVAL; /* a space or a control character: not an address */
    *slot = (int)v;
    memcpy(name, addr, len + 1);
    return ask ? 1 : 0;
}
