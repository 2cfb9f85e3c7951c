/*
 * test_redis_cluster_harness.c -- the loopback cluster of the test harness
 * (tests/support/redis_cluster.c): formed with 3 primaries and 3 replicas,
 * our hash slot equals the server's, a killed primary's replica takes over,
 * a reshard moves slots, nothing is left behind.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "redis_cluster.h"
#include "redis_cmd.h"

static redis_cluster_t cl;

static void setup(void)
{
    cr_assert_eq(redis_cluster_start(&cl, NULL), 0, "cluster did not start");
}

static void teardown(void)
{
    redis_cluster_stop(&cl);
}

TestSuite(redis_cluster_harness, .init = setup, .fini = teardown,
          .timeout = 120);

Test(redis_cluster_harness, three_primaries_three_replicas_every_slot)
{
    int prim[REDIS_CLUSTER_NODES], n = redis_cluster_primaries(&cl, prim);
    int served[REDIS_CLUSTER_NODES] = {0}, s, i;

    cr_assert_eq(n, 3);
    for (s = 0; s < REDIS_CLUSTER_SLOTS; s += 97) {
        int o = redis_cluster_primary_of(&cl, s);
        cr_assert(o >= 0 && cl.node[o].primary, "slot %d served by %d", s, o);
        served[o]++;
    }
    for (i = 0; i < n; i++)
        cr_expect_gt(served[prim[i]], 0, "primary %d serves no slot", prim[i]);
    for (i = 0; i < cl.nnodes; i++) {
        redisContext *c = redis_cluster_connect(&cl, i);
        redisReply *r = redis_cmd(c, "CONFIG GET cluster-node-timeout");
        cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
        cr_expect_str_eq(r->element[1]->str, "2000");
        freeReplyObject(r);
        redisFree(c);
    }
}

Test(redis_cluster_harness, key_slot_is_the_servers)
{
    const char *keys[] = {"a", "saga:{abc}", "saga:{abc}:history", "{}x",
                          "x{}y", "{user1000}.following", "foo{bar}{zap}",
                          "saga:{idx:03}:intake", "\xff\x01"};
    redisContext *c = redis_cluster_connect(&cl, 0);
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect_eq(redis_cluster_key_slot(keys[i]),
                     redis_cmd_int(c, "CLUSTER KEYSLOT %s", keys[i]),
                     "key %s", keys[i]);
    redisFree(c);
}

Test(redis_cluster_harness, killed_primary_is_replaced_by_its_replica)
{
    int slot = redis_cluster_key_slot("k"), victim, promoted, now;

    victim = redis_cluster_primary_of(&cl, slot);
    cr_assert_geq(victim, 0);
    promoted = redis_cluster_kill_primary(&cl, victim, 30000);
    cr_assert_geq(promoted, 0);
    cr_expect_neq(promoted, victim);
    now = redis_cluster_primary_of(&cl, slot);
    cr_expect_eq(now, promoted);
    cr_expect_eq(cl.node[victim].srv.pid, 0);
}

Test(redis_cluster_harness, reshard_moves_slots)
{
    int prim[REDIS_CLUSTER_NODES], before = 0, after = 0, s;

    cr_assert_eq(redis_cluster_primaries(&cl, prim), 3);
    for (s = 0; s < REDIS_CLUSTER_SLOTS; s += 64)
        before += redis_cluster_primary_of(&cl, s) == prim[1];
    cr_assert_eq(redis_cluster_reshard(&cl, prim[0], prim[1], 1000, 60000), 0);
    for (s = 0; s < REDIS_CLUSTER_SLOTS; s += 64)
        after += redis_cluster_primary_of(&cl, s) == prim[1];
    cr_expect_gt(after, before, "primary %d had %d of every 64th slot, now %d",
                 prim[1], before, after);
}

Test(redis_cluster_harness, stop_leaves_nothing)
{
    char dirs[REDIS_CLUSTER_NODES][256];
    struct stat st;
    int i, n = cl.nnodes;

    for (i = 0; i < n; i++)
        snprintf(dirs[i], sizeof dirs[i], "%s", cl.node[i].srv.dir);
    redis_cluster_stop(&cl);
    for (i = 0; i < n; i++)
        cr_expect_neq(stat(dirs[i], &st), 0, "%s still there", dirs[i]);
}
