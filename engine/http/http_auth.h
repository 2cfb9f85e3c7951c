/*
 * http_auth.h -- bearer tokens for `saga serve`.
 *
 * The token file holds one token per line: `TOKEN` (full access) or
 * `TOKEN read` (GET only). Blank lines and lines starting with '#' are
 * skipped. A token is 16 to 256 printable ASCII characters without spaces.
 * Tokens are compared in constant time and never logged.
 */
#ifndef SAGA_HTTP_AUTH_H
#define SAGA_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define SAGA_HTTP_TOKEN_MIN 16
#define SAGA_HTTP_TOKEN_MAX 256

typedef struct saga_http_tokens_s saga_http_tokens_t;

typedef enum saga_http_grant_e {
    SAGA_HTTP_GRANT_NONE = 0,  /* no such token */
    SAGA_HTTP_GRANT_READ = 1,
    SAGA_HTTP_GRANT_FULL = 2
} saga_http_grant_t;

/* Parses a token file's text (`len` bytes; `path` names it in errors).
 * Returns the tokens, or NULL with "PATH:LINE: error: ..." in `err` (a bad
 * line, a duplicate, no token at all, no memory). Never copies a token into
 * `err`. */
saga_http_tokens_t *saga_http_tokens_parse(const char *path, const char *text,
                                           size_t len, char *err, size_t errlen);

/* Reads and parses the file `path` (blocking: before the loop runs). */
saga_http_tokens_t *saga_http_tokens_load(const char *path, char *err, size_t errlen);

/* Frees the tokens (wiping them). Accepts NULL. */
void saga_http_tokens_free(saga_http_tokens_t *t);

/* The grant of the `len` bytes presented. Takes the same time whichever
 * token (if any) matches and however much of one matches. */
saga_http_grant_t saga_http_tokens_check(const saga_http_tokens_t *t,
                                         const char *presented, size_t len);

/* Number of tokens. */
size_t saga_http_tokens_count(const saga_http_tokens_t *t);

#endif
