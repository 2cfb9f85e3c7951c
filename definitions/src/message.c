/*
 * message.c -- quoting, describing and suggesting for error messages.
 */
#include "message.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define QUOTE_MAX_TEXT 60u

const char *saga__quote(char *buf, const char *text, size_t len)
{
    size_t o = 0;
    bool cut = false;
    /* Past the limit, continuation bytes still finish the character they
     * belong to (at most 3 more bytes; an escape is at most 4). */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (o >= QUOTE_MAX_TEXT && ((c & 0xC0) != 0x80 || o >= QUOTE_MAX_TEXT + 4)) {
            cut = true;
            break;
        }
        if (c == '\n' || c == '\t' || c == '\r') {
            buf[o++] = '\\';
            buf[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, SAGA__QUOTE_SIZE - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (cut) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

const char *saga__describe(char *buf, const saga__node_t *node)
{
    if (node->kind == SAGA__NODE_SEQUENCE)
        return strcpy(buf, "a sequence");
    if (node->kind == SAGA__NODE_MAPPING)
        return strcpy(buf, "a mapping");

    char q[SAGA__QUOTE_SIZE];
    const char *what;
    switch (node->value ? json_typeof(node->value) : JSON_STRING) {
    case JSON_NULL:
        return strcpy(buf, "null");
    case JSON_TRUE:
    case JSON_FALSE:
        what = "a boolean";
        break;
    case JSON_INTEGER:
        what = "an integer";
        break;
    case JSON_REAL:
        what = "a number";
        break;
    default:
        snprintf(buf, SAGA__QUOTE_SIZE, "a string ('%s')",
                 saga__quote(q, node->text, node->len));
        return buf;
    }
    /* Numbers and booleans are short ASCII; cut anyway to stay in bounds. */
    snprintf(buf, SAGA__QUOTE_SIZE, "%s (%.40s)", what, node->text);
    return buf;
}

size_t saga__edit_distance(const char *a, size_t alen, const char *b,
                           size_t blen, size_t max)
{
    enum { LEN = 64 };
    if (alen > LEN || blen > LEN)
        return SIZE_MAX;
    if (max > LEN)
        max = LEN; /* no distance exceeds the longer length */
    size_t inf = max + 1;
    if ((alen > blen ? alen - blen : blen - alen) > max)
        return inf;

    /* Optimal string alignment over three rows of the table (the one two
     * back serves transpositions). Only the band |i - j| <= max can hold a
     * value <= max, so only it is computed: cells just outside the band are
     * set to `inf` where the next row reads them. */
    size_t rows[3][LEN + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= blen; j++)
        prev[j] = j <= max ? j : inf;
    for (size_t i = 1; i <= alen; i++) {
        size_t lo = i > max ? i - max : 1;
        size_t hi = i + max < blen ? i + max : blen;
        size_t row_min = cur[0] = i <= max ? i : inf;
        if (lo > 1)
            cur[lo - 1] = inf;
        if (hi < blen)
            cur[hi + 1] = inf;
        for (size_t j = lo; j <= hi; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best < inf ? best : inf;
            if (cur[j] < row_min)
                row_min = cur[j];
        }
        if (row_min >= inf)
            return inf;
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[blen];
}

const char *saga__suggest(const char *word, size_t len,
                          const char *const *choices)
{
    size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (; *choices != NULL; choices++) {
        size_t clen = strlen(*choices);
        /* The distance is at least the difference in length. */
        if ((clen > len ? clen - len : len - clen) > limit)
            continue;
        size_t d = saga__edit_distance(word, len, *choices, clen, limit);
        /* A "typo" that rewrites the whole word is not one. */
        if (d <= limit && d < clen && d < best_d) {
            best = *choices;
            best_d = d;
        }
    }
    return best;
}
