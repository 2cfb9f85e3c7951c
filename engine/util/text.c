/* text.c -- escaping stored text for terminals (text.h). */
#include "util/text.h"

#include <stdint.h>
#include <string.h>

size_t saga_text_put(FILE *out, const char *s, size_t len, size_t max) {
    size_t n = len < max ? len : max, w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t' || c == '\r' || c == '\n') {
            fprintf(out, "\\%c", c == '\t' ? 't' : c == '\r' ? 'r' : 'n');
            w += 2;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
            w += 4;
        } else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] <= 0x9f) {
            fprintf(out, "\\u%04x", (unsigned char)s[++i]); /* C1: CSI is one */
            w += 6;
        } else {
            fputc(c, out);
            w += (c & 0xc0) != 0x80; /* a UTF-8 sequence is one column */
        }
    }
    if (n < len) {
        fputs("...", out);
        w += 3;
    }
    return w;
}

size_t saga_text_puts(FILE *out, const char *s) {
    return s != NULL ? saga_text_put(out, s, strlen(s), SIZE_MAX) : 0;
}

size_t saga_text_pad(FILE *out, const char *s, size_t width) {
    size_t w = saga_text_puts(out, s);
    for (; w < width; w++)
        fputc(' ', out);
    return w;
}
