/*
 * step_args.c -- checking the `with` value of a built-in step, and the text
 * helpers that make untrusted bytes safe for JSON and one-line messages.
 */
#include "step_args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DURATION_MS (24ull * 3600ull * 1000ull)

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

const char *step_args_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "a mapping";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

int step_args_known_keys(const json_t *with, const char *const *allowed,
                         const char *handler, char *err, size_t errlen) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)with, key, v) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (known)
            continue;
        char list[256];
        size_t off = 0;
        list[0] = '\0';
        for (size_t i = 0; allowed[i] != NULL && off < sizeof(list); i++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
                                    i ? ", " : "", allowed[i]);
        return fail(err, errlen, "%s: unknown field `%s` (known fields: %s)",
                    handler, key, list);
    }
    return 0;
}

int step_args_duration(const json_t *v, const char *handler, const char *field,
                       uint64_t *ms, char *err, size_t errlen) {
    uint64_t n = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i <= 0 || (uint64_t)i > MAX_DURATION_MS)
            return fail(err, errlen,
                        "%s: `%s`: %" JSON_INTEGER_FORMAT
                        " ms is out of range (1 ms to 24h)",
                        handler, field, i);
        *ms = (uint64_t)i;
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, errlen,
                    "%s: `%s`: expected a duration like \"2s\" or \"250ms\", "
                    "or milliseconds, got %s",
                    handler, field, step_args_type_name(v));
    const char *s = json_string_value(v), *p = s;
    if (*p < '0' || *p > '9')
        goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > MAX_DURATION_MS)
            goto range;
    }
    uint64_t unit;
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else
        goto bad;
    if (n == 0 || n * unit > MAX_DURATION_MS)
        goto range;
    *ms = n * unit;
    return 0;
bad:
    return fail(err, errlen,
                "%s: `%s`: \"%s\" is not a duration (write e.g. \"250ms\", "
                "\"2s\", \"1m\", \"1h\")",
                handler, field, s);
range:
    return fail(err, errlen, "%s: `%s`: \"%s\" is out of range (1ms to 24h)",
                handler, field, s);
}

int step_args_uint(const json_t *v, const char *handler, const char *field,
                   uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t errlen) {
    if (!json_is_integer(v))
        return fail(err, errlen, "%s: `%s`: expected an integer, got %s",
                    handler, field, step_args_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return fail(err, errlen,
                    "%s: `%s`: %" JSON_INTEGER_FORMAT
                    " is out of range (%" PRIu64 " to %" PRIu64 ")",
                    handler, field, i, min, max);
    *out = (uint64_t)i;
    return 0;
}

int step_args_int_list(const json_t *v, const char *handler, const char *field,
                       int min, int max, int *out, size_t cap, size_t *n,
                       char *err, size_t errlen) {
    if (!json_is_array(v))
        return fail(err, errlen, "%s: `%s`: expected a list of integers, got %s",
                    handler, field, step_args_type_name(v));
    if (json_array_size(v) > cap)
        return fail(err, errlen, "%s: `%s`: at most %zu entries", handler,
                    field, cap);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e))
            return fail(err, errlen, "%s: `%s[%zu]`: expected an integer, got %s",
                        handler, field, i, step_args_type_name(e));
        json_int_t x = json_integer_value(e);
        if (x < min || x > max)
            return fail(err, errlen,
                        "%s: `%s[%zu]`: %" JSON_INTEGER_FORMAT
                        " is out of range (%d to %d)",
                        handler, field, i, x, min, max);
        out[i] = (int)x;
    }
    *n = json_array_size(v);
    return 0;
}

bool step_args_in_list(const int *list, size_t n, int x) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == x)
            return true;
    return false;
}

char *step_args_scalar_text(const json_t *v, const char *handler,
                            const char *field, const char *key, char *err,
                            size_t errlen) {
    char *s = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = strdup(json_string_value(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
    case JSON_TRUE:
    case JSON_FALSE:
        s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        break;
    default:
        fail(err, errlen, "%s: `%s.%s`: expected a string, got %s", handler,
             field, key, step_args_type_name(v));
        return NULL;
    }
    if (s == NULL)
        fail(err, errlen, "%s: out of memory", handler);
    return s;
}

void step_args_format_duration(uint64_t ms, char *buf, size_t buflen) {
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, buflen, "%" PRIu64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, buflen, "%" PRIu64 "m", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(buf, buflen, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(buf, buflen, "%" PRIu64 "ms", ms);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

char *step_text_utf8(const char *s, size_t len, bool one_line) {
    /* Worst case: every byte becomes U+FFFD (3 bytes) or " | " (3). */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0 || p[i] == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        if (one_line && k == 1 && p[i] < 0x20) {
            if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
                i++;
            if (p[i] == '\n' || p[i] == '\r') {
                memcpy(out + o, " | ", 3);
                o += 3;
            } else
                out[o++] = ' ';
            i++;
            continue;
        }
        memcpy(out + o, p + i, k);
        o += k;
        i += k;
    }
    if (one_line) {
        /* Drop trailing blanks and separators left by a final newline. */
        for (;;) {
            if (o >= 3 && memcmp(out + o - 3, " | ", 3) == 0)
                o -= 3;
            else if (o > 0 && out[o - 1] == ' ')
                o--;
            else
                break;
        }
    }
    out[o] = '\0';
    return out;
}
