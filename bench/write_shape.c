/*
 * write_shape.c -- `saga-write-shape MONITOR_FILE`: turns the engine's real
 * checkpoint writes, captured with `redis-cli MONITOR` during a short
 * saga-bench run, into the argument list of a redis-benchmark command that
 * Redis accepts every time (the ceiling, docs/benchmarks.md).
 *
 * It reads every `FCALL saga_write` line of the capture, picks the write
 * whose size (bytes of all arguments) is closest to the mean of all of
 * them, and rewrites it:
 *   - the saga id (in the keys and wherever an argument is exactly the id)
 *     becomes a same-length id ending in __rand_int__, which
 *     redis-benchmark replaces by a random 12-digit number, so each call
 *     names a new saga (use -r 100000000: repeats are rare);
 *   - it becomes a create: the first character of its flags (the 6th
 *     argument after the keys: seq, prev, fence, wtok, now, flags, ...)
 *     becomes 'c'. A create is accepted whenever the record does not
 *     exist, while any other write is refused unless the record stands
 *     exactly at prev, which a replayed command cannot ensure. The other
 *     flags stay as captured.
 * Everything else (number of keys, fields, values, history entry, index
 * arguments) stays byte for byte as the engine sent it.
 *
 * Output: the arguments on stdout, each followed by a NUL byte (for
 * `mapfile -d ''`), and a one-line description on stderr. Exit 1 when the
 * capture holds no saga_write.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RAND_TAG "__rand_int__"
#define FLAGS 5 /* saga_write's flags: the 6th argument after the keys */

/* 1 create, 2 terminal (3 both), 0 a step between, from flags "ct-". */
static int write_kind(const char *flags) {
    return (flags[0] == 'c') | (flags[0] != '\0' && flags[1] == 't') << 1;
}

typedef struct argl_s {
    char **v;
    size_t *len;
    size_t n;
    size_t bytes;
} argl_t;

static void argl_free(argl_t *a) {
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof(*a));
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parses the quoted arguments of one MONITOR line (sdscatrepr escapes).
 * Returns 0, or -1 when the line holds no arguments. */
static int parse_line(const char *line, argl_t *out) {
    const char *p = strstr(line, "] \"");
    if (p == NULL)
        return -1;
    p += 2;
    size_t cap = 16;
    out->v = malloc(cap * sizeof(*out->v));
    out->len = malloc(cap * sizeof(*out->len));
    out->n = out->bytes = 0;
    while (*p == '"') {
        p++;
        size_t room = strlen(p) + 1, n = 0;
        char *s = malloc(room);
        while (*p && *p != '"') {
            if (*p == '\\' && p[1]) {
                p++;
                switch (*p) {
                case 'n': s[n++] = '\n'; break;
                case 'r': s[n++] = '\r'; break;
                case 't': s[n++] = '\t'; break;
                case 'a': s[n++] = '\a'; break;
                case 'b': s[n++] = '\b'; break;
                case 'x':
                    if (hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                        s[n++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                        p += 2;
                        break;
                    }
                    s[n++] = 'x';
                    break;
                default: s[n++] = *p;
                }
                p++;
            } else {
                s[n++] = *p++;
            }
        }
        s[n] = '\0';
        if (*p == '"')
            p++;
        while (*p == ' ')
            p++;
        if (out->n == cap) {
            cap *= 2;
            out->v = realloc(out->v, cap * sizeof(*out->v));
            out->len = realloc(out->len, cap * sizeof(*out->len));
        }
        out->v[out->n] = s;
        out->len[out->n++] = n;
        out->bytes += n;
    }
    return out->n > 0 ? 0 : -1;
}

/* Replaces every occurrence of `from` in `s` (length *len) by `to`
 * (same length). */
static void replace_same_len(char *s, size_t len, const char *from, const char *to) {
    size_t fl = strlen(from);
    if (fl == 0)
        return;
    for (char *p = s; (p = memmem(p, len - (size_t)(p - s), from, fl)) != NULL; p += fl)
        memcpy(p, to, fl);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: saga-write-shape MONITOR_FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    argl_t *w = NULL;
    size_t nw = 0, capw = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        if (strstr(line, "\"saga_write\"") == NULL)
            continue;
        argl_t a;
        if (parse_line(line, &a) != 0)
            continue;
        if (a.n < 12 || strcasecmp(a.v[0], "FCALL") != 0 || strcmp(a.v[1], "saga_write") != 0) {
            argl_free(&a);
            continue;
        }
        if (nw == capw) {
            capw = capw ? capw * 2 : 64;
            w = realloc(w, capw * sizeof(*w));
        }
        w[nw++] = a;
    }
    free(line);
    fclose(f);
    if (nw == 0) {
        fprintf(stderr, "saga-write-shape: no FCALL saga_write in %s\n", argv[1]);
        return 1;
    }
    double mean = 0;
    size_t kinds[4] = {0}, kbytes[4] = {0};
    for (size_t i = 0; i < nw; i++) {
        mean += (double)w[i].bytes;
        size_t nk = (size_t)atoi(w[i].v[2]);
        if (3 + nk + FLAGS < w[i].n) {
            int fl = write_kind(w[i].v[3 + nk + FLAGS]);
            kinds[fl]++;
            kbytes[fl] += w[i].bytes;
        }
    }
    mean /= (double)nw;
    size_t best = 0;
    double bd = 1e18;
    for (size_t i = 0; i < nw; i++) {
        double d = (double)w[i].bytes - mean;
        if (d < 0)
            d = -d;
        if (d < bd) {
            bd = d;
            best = i;
        }
    }
    argl_t *a = &w[best];
    size_t nk = (size_t)atoi(a->v[2]);
    if (3 + nk + FLAGS + 3 > a->n || a->len[3 + nk + FLAGS] != 3) {
        fprintf(stderr, "saga-write-shape: malformed saga_write\n");
        return 1;
    }
    /* The id: between the braces of the record key saga:{ID}. */
    char id[256] = "", rid[256] = "";
    const char *lb = strchr(a->v[3], '{'), *rb = lb ? strchr(lb, '}') : NULL;
    if (lb == NULL || rb == NULL || (size_t)(rb - lb - 1) < strlen(RAND_TAG) ||
        (size_t)(rb - lb - 1) >= sizeof(id)) {
        fprintf(stderr, "saga-write-shape: cannot find the saga id in %s\n", a->v[3]);
        return 1;
    }
    size_t il = (size_t)(rb - lb - 1);
    memcpy(id, lb + 1, il);
    memcpy(rid, id, il - strlen(RAND_TAG));
    memcpy(rid + il - strlen(RAND_TAG), RAND_TAG, strlen(RAND_TAG) + 1);
    int orig_flags = write_kind(a->v[3 + nk + FLAGS]);
    const char *orig_seq = a->v[3 + nk];
    fprintf(stderr,
            "saga-write-shape: %zu writes captured (mean %.0f bytes of arguments; create %zu x "
            "%.0f B, middle %zu x %.0f B, terminal %zu x %.0f B); chosen: seq %s flags %d, "
            "%zu arguments, %zu bytes, %zu keys; made a create, id -> %s\n",
            nw, mean, kinds[1], kinds[1] ? (double)kbytes[1] / (double)kinds[1] : 0, kinds[0],
            kinds[0] ? (double)kbytes[0] / (double)kinds[0] : 0, kinds[2],
            kinds[2] ? (double)kbytes[2] / (double)kinds[2] : 0, orig_seq, orig_flags, a->n,
            a->bytes, nk, rid);
    a->v[3 + nk + FLAGS][0] = 'c';
    for (size_t i = 0; i < a->n; i++) {
        if (i >= 3 && i < 3 + nk)
            replace_same_len(a->v[i], a->len[i], id, rid);
        else if (a->len[i] == il && memcmp(a->v[i], id, il) == 0)
            memcpy(a->v[i], rid, il);
        fwrite(a->v[i], 1, a->len[i], stdout);
        fputc('\0', stdout);
    }
    for (size_t i = 0; i < nw; i++)
        argl_free(&w[i]);
    free(w);
    return 0;
}
