/*
 * redis_url.h -- parse Redis connection URLs.
 *
 *   redis://[[user]:password@]host[:port][/db]     (host: name, IPv4, [IPv6])
 *   unix:///path/to/socket[?db=N]                  (also unix://user:pass@/path)
 *
 * Passwords never appear in `display`, which is what logs and errors print.
 */
#ifndef SAGA_REDIS_URL_H
#define SAGA_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

typedef enum saga_redis_transport_e {
    SAGA_REDIS_TCP = 0,
    SAGA_REDIS_UNIX = 1
} saga_redis_transport_t;

typedef struct saga_redis_url_s {
    saga_redis_transport_t transport;
    char *host;      /* TCP: host name or address (no brackets); else NULL */
    uint16_t port;   /* TCP: default 6379 */
    char *path;      /* UNIX: socket path; else NULL */
    char *user;      /* ACL user or NULL (then AUTH uses the password only) */
    char *password;  /* NULL when none */
    int db;          /* SELECT index, default 0 */
    char *display;   /* the URL with the password replaced by "***" */
} saga_redis_url_t;

/* Parses `url` into `out` (which the caller embeds). Returns 0, or -EINVAL
 * with a one-line reason in `err` that never contains the password; on error
 * `out` holds nothing to free. Percent-escapes in user and password are
 * decoded. */
int saga_redis_url_parse(const char *url, saga_redis_url_t *out, char *err,
                         size_t errlen);

/* Frees what saga_redis_url_parse() allocated. Accepts a zeroed struct. */
void saga_redis_url_close(saga_redis_url_t *u);

/* Deep copy. Returns 0 or -ENOMEM (then `dst` holds nothing to free). */
int saga_redis_url_copy(saga_redis_url_t *dst, const saga_redis_url_t *src);

#endif
