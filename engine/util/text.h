/*
 * text.h -- stored text (reasons, errors, names: anything a handler or a
 * hand-edited record put there) written safely for a terminal.
 */
#ifndef SAGA_TEXT_H
#define SAGA_TEXT_H

#include <stddef.h>
#include <stdio.h>

/* Writes the text s[0..len) (a stored reason, error, detail, name or
 * state: anything a handler or a hand-edited record put there) for a
 * terminal and for line-oriented readers: on one line, with nothing a
 * terminal would act on. Tab, CR and LF become \t \r \n, other control
 * characters (C0, DEL, and C1 in their UTF-8 form) \xHH or \u00HH; the
 * rest, UTF-8 included, passes as it is. Shows at most `max` bytes of s,
 * then "...". Returns the columns written (a UTF-8 character counts one). */
size_t saga_text_put(FILE *out, const char *s, size_t len, size_t max);
/* The same for a NUL-terminated string (NULL: nothing), shown whole. */
size_t saga_text_puts(FILE *out, const char *s);
/* saga_text_puts(), then spaces up to `width` columns (a left-aligned
 * column, as printf's %-Ns). */
size_t saga_text_pad(FILE *out, const char *s, size_t width);

#endif
