/*
 * test_redis_url.c -- redis_url: valid forms, every class of invalid
 * input, password redaction.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "redis/redis_url.h"

typedef struct valid_case_s {
    const char *url;
    saga_redis_transport_t transport;
    const char *host;
    int port;
    const char *path;
    const char *user;
    const char *password;
    int db;
    const char *display;
} valid_case_t;

static const valid_case_t valid[] = {
    {"redis://localhost", SAGA_REDIS_TCP, "localhost", 6379, NULL, NULL, NULL,
     0, "redis://localhost:6379"},
    {"redis://10.0.0.5:6380/2", SAGA_REDIS_TCP, "10.0.0.5", 6380, NULL, NULL,
     NULL, 2, "redis://10.0.0.5:6380/2"},
    {"redis://app:s3cret@10.0.0.5:6379/2", SAGA_REDIS_TCP, "10.0.0.5", 6379,
     NULL, "app", "s3cret", 2, "redis://app:***@10.0.0.5:6379/2"},
    {"redis://:pw@cache.internal", SAGA_REDIS_TCP, "cache.internal", 6379,
     NULL, NULL, "pw", 0, "redis://:***@cache.internal:6379"},
    {"redis://[::1]:7000/3", SAGA_REDIS_TCP, "::1", 7000, NULL, NULL, NULL, 3,
     "redis://[::1]:7000/3"},
    {"redis://[2001:db8::1]", SAGA_REDIS_TCP, "2001:db8::1", 6379, NULL, NULL,
     NULL, 0, "redis://[2001:db8::1]:6379"},
    {"REDIS://my_host-1.example/", SAGA_REDIS_TCP, "my_host-1.example", 6379,
     NULL, NULL, NULL, 0, "redis://my_host-1.example:6379"},
    {"redis://h:65535/1048576", SAGA_REDIS_TCP, "h", 65535, NULL, NULL, NULL,
     1048576, "redis://h:65535/1048576"},
    {"redis://h:1/0", SAGA_REDIS_TCP, "h", 1, NULL, NULL, NULL, 0,
     "redis://h:1"},
    {"redis://u%40x:p%3Aw%25d@h", SAGA_REDIS_TCP, "h", 6379, NULL, "u@x",
     "p:w%d", 0, "redis://u%40x:***@h:6379"},
    {"redis://app:p@ss/w:rd@host:1/2", SAGA_REDIS_TCP, "host", 1, NULL, "app",
     "p@ss/w:rd", 2, "redis://app:***@host:1/2"},
    {"redis://nopass:@h", SAGA_REDIS_TCP, "h", 6379, NULL, "nopass", "", 0,
     "redis://nopass:***@h:6379"},
    {"redis://:@h", SAGA_REDIS_TCP, "h", 6379, NULL, NULL, NULL, 0,
     "redis://h:6379"},
    {"unix:///tmp/x/redis.sock", SAGA_REDIS_UNIX, NULL, 0, "/tmp/x/redis.sock",
     NULL, NULL, 0, "unix:///tmp/x/redis.sock"},
    {"unix:///tmp/x.sock?db=3", SAGA_REDIS_UNIX, NULL, 0, "/tmp/x.sock", NULL,
     NULL, 3, "unix:///tmp/x.sock?db=3"},
    {"Unix://app:pw@/tmp/a@b/x.sock", SAGA_REDIS_UNIX, NULL, 0,
     "/tmp/a@b/x.sock", "app", "pw", 0, "unix://app:***@/tmp/a@b/x.sock"},
    {"unix://:p@w@/run/redis.sock?db=1", SAGA_REDIS_UNIX, NULL, 0,
     "/run/redis.sock", NULL, "p@w", 1, "unix://:***@/run/redis.sock?db=1"},
};

static void expect_str(const char *what, const char *url, const char *got,
                       const char *want)
{
    if (want == NULL)
        cr_expect_null(got, "%s: %s should be NULL, is '%s'", url, what, got);
    else
        cr_expect(got != NULL && strcmp(got, want) == 0,
                  "%s: %s is '%s', expected '%s'", url, what,
                  got ? got : "(null)", want);
}

Test(redis_url, valid_forms)
{
    size_t i;

    for (i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        const valid_case_t *c = &valid[i];
        saga_redis_url_t u;
        char err[256] = "";
        int rc = saga_redis_url_parse(c->url, &u, err, sizeof err);

        cr_assert_eq(rc, 0, "%s: rejected: %s", c->url, err);
        cr_expect_eq(u.transport, c->transport, "%s: transport", c->url);
        expect_str("host", c->url, u.host, c->host);
        if (c->transport == SAGA_REDIS_TCP)
            cr_expect_eq(u.port, c->port, "%s: port %u", c->url, u.port);
        expect_str("path", c->url, u.path, c->path);
        expect_str("user", c->url, u.user, c->user);
        expect_str("password", c->url, u.password, c->password);
        cr_expect_eq(u.db, c->db, "%s: db %d", c->url, u.db);
        expect_str("display", c->url, u.display, c->display);
        saga_redis_url_close(&u);
    }
}

typedef struct invalid_case_s {
    const char *url;
    const char *reason;  /* substring of the error */
} invalid_case_t;

static const invalid_case_t invalid[] = {
    {"", "empty Redis URL"},
    {"localhost:6379", "not a URL"},
    {"http://x", "unknown scheme 'http'"},
    {"rediss://x", "TLS"},
    {"redis//x", "not a URL"},
    {"redis://", "empty host"},
    {"redis://:hunter2@", "empty host"},
    {"redis://:hunter2@:6379", "empty host"},
    {"redis://host:0", "out of range"},
    {"redis://host:65536", "out of range"},
    {"redis://host:99999999999", "port"},
    {"redis://host:abc", "port is not a number"},
    {"redis://host:-1", "port is not a number"},
    {"redis://host:", "empty port"},
    {"redis://app:hunter2", "port is not a number"},
    {"redis://host/abc", "db is not a number"},
    {"redis://host/-1", "db is not a number"},
    {"redis://host/1048577", "db out of range"},
    {"redis://host/1/2", "db is not a number"},
    {"redis://::1:6379", "brackets"},
    {"redis://[::1", "closing ']'"},
    {"redis://[zz::1]", "invalid IPv6"},
    {"redis://[]:1", "empty host"},
    {"redis://[::1]x", "after IPv6"},
    {"redis://ho st", "space"},
    {"redis://h$st", "invalid character in host"},
    {"redis://hunter2@host", "credentials need a ':'"},
    {"redis://u:hunter2%zz@h", "percent-escape in password"},
    {"redis://u:hunter2%4@h", "percent-escape in password"},
    {"redis://u%00:hunter2@h", "percent-escape in user"},
    {"redis://host?x=1", "unexpected '?'"},
    {"redis://host#frag", "unexpected '#'"},
    {"unix://relative/path", "relative socket path"},
    {"unix://", "empty socket path"},
    {"unix:///", "just '/'"},
    {"unix:/tmp/x", "not a URL"},
    {"unix:///tmp/x?foo=1", "unknown parameter"},
    {"unix:///tmp/x?db=x", "db is not a number"},
    {"unix:///tmp/x?db=2000000", "db out of range"},
    {"unix://u:hunter2@relative", "relative socket path"},
    {"unix://u:hunter2@", "empty socket path"},
    {"unix://:hunter2%g0@/tmp/x", "percent-escape in password"},
};

Test(redis_url, invalid_forms_have_precise_reasons_and_no_password)
{
    size_t i;

    for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const invalid_case_t *c = &invalid[i];
        saga_redis_url_t u;
        char err[256] = "";
        int rc;

        memset(&u, 0xa5, sizeof u);
        rc = saga_redis_url_parse(c->url, &u, err, sizeof err);
        cr_expect_eq(rc, -EINVAL, "%s: accepted (rc %d)", c->url, rc);
        cr_expect(strstr(err, c->reason) != NULL,
                  "%s: error '%s' does not say '%s'", c->url, err, c->reason);
        cr_expect(strstr(err, "hunter2") == NULL, "%s: error leaks: %s",
                  c->url, err);
        /* Nothing to free, and closing is harmless. */
        cr_expect_null(u.host);
        cr_expect_null(u.password);
        cr_expect_null(u.display);
        saga_redis_url_close(&u);
    }
}

Test(redis_url, long_socket_path_is_rejected)
{
    char url[300];
    char err[256];
    saga_redis_url_t u;

    memset(url, 'a', sizeof url);
    memcpy(url, "unix:///", 8);
    url[8 + 120] = '\0';
    cr_assert_eq(saga_redis_url_parse(url, &u, err, sizeof err), -EINVAL);
    cr_expect(strstr(err, "socket path too long") != NULL, "%s", err);
}

Test(redis_url, null_and_tiny_error_buffers)
{
    saga_redis_url_t u;
    char err[8];

    cr_expect_eq(saga_redis_url_parse(NULL, &u, NULL, 0), -EINVAL);
    cr_expect_eq(saga_redis_url_parse("nope", &u, err, sizeof err), -EINVAL);
    cr_expect_eq(strlen(err), sizeof err - 1, "truncated, terminated");
}

Test(redis_url, copy_and_close)
{
    saga_redis_url_t u, c, zero;
    char err[128];

    cr_assert_eq(saga_redis_url_parse("redis://app:pw@[::1]:7000/4", &u, err,
                                      sizeof err), 0, "%s", err);
    cr_assert_eq(saga_redis_url_copy(&c, &u), 0);
    saga_redis_url_close(&u);
    cr_expect_str_eq(c.host, "::1");
    cr_expect_eq(c.port, 7000);
    cr_expect_str_eq(c.user, "app");
    cr_expect_str_eq(c.password, "pw");
    cr_expect_eq(c.db, 4);
    cr_expect_str_eq(c.display, "redis://app:***@[::1]:7000/4");
    cr_expect_null(c.path);
    saga_redis_url_close(&c);
    saga_redis_url_close(&c); /* closing twice is harmless */
    cr_expect_null(c.host);

    memset(&zero, 0, sizeof zero);
    saga_redis_url_close(&zero);
    saga_redis_url_close(NULL);
}
