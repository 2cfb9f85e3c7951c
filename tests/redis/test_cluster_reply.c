/*
 * test_cluster_reply.c -- the checks of a cluster's replies
 * (engine/redis/cluster_reply.c): CLUSTER SLOTS replies as Redis 6 and 7
 * send them are accepted; replies of any other shape are refused with
 * where they are wrong; MOVED and ASK are parsed and anything else is
 * refused. The replies are bytes of the Redis protocol parsed by hiredis's
 * reader, as the client gets them.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "redis/cluster_reply.h"

/* The reply that `resp` (the protocol's bytes) holds; freeReplyObject() it. */
static redisReply *parse(const char *resp) {
    redisReader *rd = redisReaderCreate();
    cr_assert_not_null(rd);
    cr_assert_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    void *reply = NULL;
    cr_assert_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    cr_assert_not_null(reply, "an incomplete reply: %s", resp);
    redisReaderFree(rd);
    return reply;
}

/* Checks `resp` as a CLUSTER SLOTS reply; returns the code, the reason in
 * why. */
static int slots(const char *resp, char *why, size_t len) {
    redisReply *r = parse(resp);
    why[0] = '\0';
    int rc = saga_cluster_slots_check(r, why, len);
    freeReplyObject(r);
    return rc;
}

#define NODE(ip, port) "*4\r\n$" #ip "\r\n:" #port "\r\n$3\r\nabc\r\n*0\r\n"

Test(cluster_reply, slots_as_redis_sends_them_are_accepted) {
    char why[200];
    /* Redis 7: [host, port, id, {metadata}]; "" for the node asked */
    const char *r7 = "*2\r\n"
                     "*4\r\n:0\r\n:8191\r\n"
                     "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nabc\r\n*0\r\n"
                     "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\ndef\r\n*2\r\n$8\r\nhostname\r\n$1\r\nh\r\n"
                     "*3\r\n:8192\r\n:16383\r\n"
                     "*3\r\n$0\r\n\r\n:7001\r\n$3\r\nghi\r\n";
    cr_assert_eq(slots(r7, why, sizeof(why)), 0, "%s", why);
    /* Redis 6 and older: [ip, port]; an empty cluster: no range */
    cr_assert_eq(slots("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$3\r\n::1\r\n:7000\r\n", why,
                       sizeof(why)), 0, "%s", why);
    cr_assert_eq(slots("*0\r\n", why, sizeof(why)), 0, "%s", why);
}

Test(cluster_reply, slots_of_another_shape_are_refused_with_where) {
    static const struct {
        const char *resp, *why;
    } bad[] = {
        {"$2\r\nok\r\n", "expected an array of slot ranges, got a string"},
        {"*1\r\n:3\r\n", "range 1: expected [first slot, last slot, node...], got an integer"},
        {"*1\r\n*2\r\n:0\r\n:10\r\n",
         "range 1: expected [first slot, last slot, node...], got an array of fewer than 3 "
         "elements"},
        {"*1\r\n*3\r\n$1\r\n0\r\n:10\r\n*2\r\n$1\r\nh\r\n:1\r\n",
         "range 1: the slots are not integers"},
        {"*1\r\n*3\r\n:10\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",
         "range 1: slots 10..9 are not a range within 0..16383"},
        {"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
         "range 1: slots 0..16384 are not a range within 0..16383"},
        {"*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",
         "range 1: slots -1..5 are not a range within 0..16383"},
        {"*2\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n*4\r\n:6\r\n:9\r\n"
         "*2\r\n$1\r\nh\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",
         "range 2, node 2: port 0 is not in 1..65535"},
        {"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:65536\r\n",
         "range 1, node 1: port 65536 is not in 1..65535"},
        {"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n$4\r\n7000\r\n",
         "range 1, node 1: the port is a string, not an integer"},
        {"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:7000\r\n",
         "range 1, node 1: the host is an integer, not a string"},
        {"*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n",
         "range 1, node 1: expected [host, port, ...], got an array of fewer than 2 elements"},
        {"*1\r\n*3\r\n:0\r\n:5\r\n$-1\r\n", "range 1, node 1: expected [host, port, ...], got nil"},
        {"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na\0b\r\n:1\r\n", NULL /* a NUL in the host */},
        {"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$64\r\n"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n:1\r\n",
         "range 1, node 1: the host is not text of at most 63 bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[200];
        const char *resp = bad[i].resp;
        redisReply *r;
        if (bad[i].why == NULL) {
            /* strlen() stops at the NUL: feed the bytes themselves */
            static const char nul[] = "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na\0b\r\n:1\r\n";
            redisReader *rd = redisReaderCreate();
            void *reply = NULL;
            cr_assert_eq(redisReaderFeed(rd, nul, sizeof(nul) - 1), REDIS_OK);
            cr_assert_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
            redisReaderFree(rd);
            r = reply;
            cr_assert_not_null(r);
        } else {
            r = parse(resp);
        }
        int rc = saga_cluster_slots_check(r, why, sizeof(why));
        freeReplyObject(r);
        cr_assert_eq(rc, -EINVAL, "case %zu accepted", i);
        cr_assert_str_eq(why, bad[i].why != NULL ? bad[i].why
                                                 : "range 1, node 1: the host is not text of "
                                                   "at most 63 bytes",
                         "case %zu", i);
    }
}

Test(cluster_reply, redirections) {
    int slot = -1;
    char name[80];
    cr_assert_eq(saga_cluster_redirect_parse("MOVED 3999 127.0.0.1:6381", &slot, name,
                                             sizeof(name)), 0);
    cr_assert_eq(slot, 3999);
    cr_assert_str_eq(name, "127.0.0.1:6381");
    cr_assert_eq(saga_cluster_redirect_parse("ASK 0 ::1:7000", &slot, name, sizeof(name)), 1);
    cr_assert_eq(slot, 0);
    cr_assert_str_eq(name, "::1:7000");
    cr_assert_eq(saga_cluster_redirect_parse("MOVED 16383 h:1", &slot, name, sizeof(name)), 0);
    static const char *const bad[] = {
        "MOVED 16384 h:1", "MOVED -1 h:1", "MOVED +5 h:1", "MOVED  5 h:1", "MOVED 5  h:1x",
        "MOVED 5 h", "MOVED 5 ", "MOVED 5", "MOVED x h:1", "ASK", "TRYAGAIN", "moved 5 h:1",
        "ASKING 5 h:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        slot = -7;
        strcpy(name, "kept");
        cr_assert_eq(saga_cluster_redirect_parse(bad[i], &slot, name, sizeof(name)), -EINVAL,
                     "'%s' accepted", bad[i]);
        cr_assert(slot == -7 && strcmp(name, "kept") == 0, "'%s' set something", bad[i]);
    }
    /* an address that does not fit */
    char small[8];
    cr_assert_eq(saga_cluster_redirect_parse("MOVED 1 127.0.0.1:6379", &slot, small,
                                             sizeof(small)), -EINVAL);
}
