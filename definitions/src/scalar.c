/*
 * scalar.c -- YAML 1.2 core schema resolution of plain scalars to JSON.
 */
#include "scalar.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_one_of(const char *s, size_t len, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strlen(*words) == len && memcmp(s, *words, len) == 0)
            return true;
    return false;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Matches the core schema's integer forms. Returns 1 with *out set, 0 when
 * the text is not an integer, -1 when it is one but does not fit. */
static int match_int(const char *s, size_t len, int64_t *out)
{
    unsigned base = 10;
    size_t i = 0;
    bool negative = false;

    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        i = 2;
    } else if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        negative = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return 0;

    /* Accumulate the magnitude; INT64_MIN's magnitude is one more than
     * INT64_MAX, so the limit depends on the sign. */
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    bool overflow = false;
    for (; i < len; i++) {
        int d = base == 16 ? hex_value(s[i]) : (is_digit(s[i]) ? s[i] - '0' : -1);
        if (d < 0 || (unsigned)d >= base)
            return 0;
        if (!overflow && v > (limit - (uint64_t)d) / base)
            overflow = true;
        if (!overflow)
            v = v * base + (uint64_t)d;
    }
    if (overflow)
        return -1;
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool match_float(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    size_t int_digits = 0, frac_digits = 0;
    while (i < len && is_digit(s[i])) {
        i++;
        int_digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i])) {
            i++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t exp_digits = 0;
        while (i < len && is_digit(s[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return false;
    }
    return i == len;
}

static const char *const NULLS[] = {"null", "Null", "NULL", "~", NULL};
static const char *const TRUES[] = {"true", "True", "TRUE", NULL};
static const char *const FALSES[] = {"false", "False", "FALSE", NULL};
static const char *const SPECIAL_REALS[] = {
    ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
    "-.INF", ".nan", ".NaN", ".NAN", NULL};

/* Shortens `text` for a message: at most 40 bytes, never cutting a UTF-8
 * sequence. */
static int short_len(const char *text, size_t len)
{
    if (len <= 40)
        return (int)len;
    size_t n = 40;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

json_t *saga__scalar_resolve(const char *text, size_t len, bool plain,
                             char *err, size_t errlen)
{
    json_t *v = NULL;

    if (!plain) {
        v = json_stringn(text, len);
        if (v == NULL)
            snprintf(err, errlen, "string is not valid UTF-8");
        return v;
    }

    int64_t i;
    int m;
    if (len == 0 || is_one_of(text, len, NULLS)) {
        v = json_null();
    } else if (is_one_of(text, len, TRUES)) {
        v = json_true();
    } else if (is_one_of(text, len, FALSES)) {
        v = json_false();
    } else if ((m = match_int(text, len, &i)) != 0) {
        if (m < 0) {
            snprintf(err, errlen,
                     "integer %.*s%s does not fit in 64 bits (signed)",
                     short_len(text, len), text, len > 40 ? "..." : "");
            return NULL;
        }
        v = json_integer(i);
    } else if (is_one_of(text, len, SPECIAL_REALS)) {
        snprintf(err, errlen, "'%.*s' cannot be represented in JSON "
                 "(infinities and NaN are not numbers there)", (int)len, text);
        return NULL;
    } else if (match_float(text, len)) {
        /* The text is ASCII digits, sign, dot and exponent only, and the
         * tree builder keeps it NUL-terminated. */
        errno = 0;
        double d = strtod(text, NULL);
        if (!isfinite(d) || (errno == ERANGE && fabs(d) > 1.0)) {
            snprintf(err, errlen, "number %.*s%s is out of range",
                     short_len(text, len), text, len > 40 ? "..." : "");
            return NULL;
        }
        v = json_real(d);
    } else {
        v = json_stringn(text, len);
        if (v == NULL) {
            snprintf(err, errlen, "string is not valid UTF-8");
            return NULL;
        }
    }
    if (v == NULL)
        snprintf(err, errlen, "out of memory");
    return v;
}
