/*
 * redis_replies.c -- see redis_replies.h.
 */
#include "store/redis_replies.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/errors.h"
#include "util/bytes.h"

bool saga_redis_all_strings(const redisReply *r) {
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i] == NULL || r->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

int saga_redis_reply_record(const redisReply *r, saga_record_t *rec, const char **why) {
    *rec = (saga_record_t){NULL, 0, NULL};
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0 || !saga_redis_all_strings(r)) {
        *why = "expected an array of field/value strings";
        return SAGA_ESTORE;
    }
    if (r->elements == 0)
        return SAGA_ENOTFOUND;
    rec->fields = calloc(r->elements / 2, sizeof(saga_kv_t));
    if (rec->fields == NULL)
        return -ENOMEM;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        rec->fields[rec->nfields++] = (saga_kv_t){
            r->element[i]->str, (size_t)r->element[i]->len,
            r->element[i + 1]->str, (size_t)r->element[i + 1]->len};
    return 0;
}

/* The next tab-separated field of an entry, NUL-terminated in place; *p
 * moves past it, to NULL after the last one. */
static char *next_field(char **p) {
    char *f = *p, *t = strchr(f, '\t');
    if (t != NULL)
        *t++ = '\0';
    *p = t;
    return f;
}

/* Unescapes a detail in place (\\ \t \n \r); returns its new length. */
static size_t unescape(char *d) {
    char *o = d;
    for (char *q = d; *q; q++) {
        if (*q == '\\' && q[1] != '\0') {
            q++;
            *o++ = *q == 't' ? '\t' : *q == 'n' ? '\n' : *q == 'r' ? '\r' : *q;
        } else {
            *o++ = *q;
        }
    }
    *o = '\0';
    return (size_t)(o - d);
}

/* Splits one history entry (see history_entry()) in place at its tabs,
 * unescaping details, and appends its events to `h` (room for `cap`: the
 * caller counts the tabs). Returns the number of events, or -1 with what
 * is wrong in *why. An entry holds any number of events. */
static int parse_entry(char *s, saga_history_entry_t *h, size_t cap, const char **why) {
    char *p = s;
    const char *ts_s = next_field(&p), *seq_s = p ? next_field(&p) : NULL,
               *worker = p ? next_field(&p) : NULL;
    uint64_t ts, seq, attempt;
    if (worker == NULL) {
        *why = "fewer than 3 fields (<ms> <seq> <worker>)";
        return -1;
    }
    if (saga_parse_u64(ts_s, strlen(ts_s), &ts) != 0 || ts > INT64_MAX) {
        *why = "its time is not a number of Unix ms";
        return -1;
    }
    if (saga_parse_u64(seq_s, strlen(seq_s), &seq) != 0) {
        *why = "its seq is not a number";
        return -1;
    }
    size_t k = 0;
    while (p != NULL) {
        char *f[5];
        for (int i = 0; i < 5; i++)
            f[i] = p ? next_field(&p) : NULL;
        if (f[4] == NULL) {
            *why = "an event without its 5 fields (type step phase attempt detail)";
            return -1;
        }
        if (saga_parse_u64(f[3], strlen(f[3]), &attempt) != 0 || attempt > UINT32_MAX) {
            *why = "an event's attempt is not a number";
            return -1;
        }
        if (k == cap) {
            *why = "more events than tabs"; /* cannot happen: cap counts them */
            return -1;
        }
        size_t dlen = unescape(f[4]);
        h[k++] = (saga_history_entry_t){
            (int64_t)ts, seq,
            {f[0], f[1][0] ? f[1] : NULL, f[2][0] ? f[2] : NULL, (uint32_t)attempt,
             dlen ? f[4] : NULL, dlen},
            worker};
    }
    return (int)k;
}

int saga_redis_reply_history(const redisReply *r, saga_redis_history_t *h, char *why,
                             size_t whylen) {
    *h = (saga_redis_history_t){NULL, 0, NULL};
    if (r->type != REDIS_REPLY_ARRAY || !saga_redis_all_strings(r)) {
        snprintf(why, whylen, "expected a list of history entries");
        return SAGA_ESTORE;
    }
    /* One copy of every entry, split in place; events point into it. */
    size_t bytes = 0, tabs = 0;
    for (size_t i = 0; i < r->elements; i++) {
        bytes += (size_t)r->element[i]->len + 1;
        for (size_t j = 0; j < (size_t)r->element[i]->len; j++)
            tabs += r->element[i]->str[j] == '\t';
    }
    size_t cap = tabs / 5 + 1;
    h->buf = malloc(bytes + 1);
    h->events = calloc(cap, sizeof(*h->events));
    if (h->buf == NULL || h->events == NULL)
        return -ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < r->elements; i++) {
        char *e = h->buf + off;
        memcpy(e, r->element[i]->str, (size_t)r->element[i]->len);
        e[r->element[i]->len] = '\0';
        off += (size_t)r->element[i]->len + 1;
        const char *bad = NULL;
        int k = parse_entry(e, h->events + h->n, cap - h->n, &bad);
        if (k < 0) {
            snprintf(why, whylen, "malformed history entry %zu of %zu: %s", i + 1,
                     (size_t)r->elements, bad);
            h->n = 0;
            return SAGA_ESTORE;
        }
        h->n += (size_t)k;
    }
    return 0;
}

void saga_redis_history_free(saga_redis_history_t *h) {
    free(h->events);
    free(h->buf);
    *h = (saga_redis_history_t){NULL, 0, NULL};
}
