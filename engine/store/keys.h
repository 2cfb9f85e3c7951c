/*
 * keys.h -- the Redis key names saga uses (docs/redis-layout.md). Every key
 * of one saga carries its id as hash tag; the global ones share {idx},
 * except those split over the shards of store/shards.h (the index of
 * sagas, the owners' sets, the orphans, the intake, the submitted set):
 * their names are built with saga_shards_key().
 */
#ifndef SAGA_KEYS_H
#define SAGA_KEYS_H

#define SAGA_KEY_PREFIX      "saga:{"              /* + id + one of: */
#define SAGA_KEY_RECORD_END  "}"                   /* hash, per saga */
#define SAGA_KEY_HISTORY_END "}:history"           /* list, per saga */
#define SAGA_KEY_RECORD_FMT  SAGA_KEY_PREFIX "%s" SAGA_KEY_RECORD_END
#define SAGA_KEY_HISTORY_FMT SAGA_KEY_PREFIX "%s" SAGA_KEY_HISTORY_END
#define SAGA_KEY_DEF_PREFIX  "sagadef:{"           /* + definition hash + */
#define SAGA_KEY_DEF_END     "}"                   /* string: its YAML text */
#define SAGA_KEY_DEF_FMT     SAGA_KEY_DEF_PREFIX "%s" SAGA_KEY_DEF_END

/* The sharded keys' names with one shard, tag "idx" (a single Redis, or a
 * cluster that holds data of the layout before shards): what a store with
 * one shard passes inside saga_write (store_redis.c) and what the
 * migration of that layout names. Every other reader and writer names the
 * saga's shard's key (saga_shards_key). The index: a zset of every
 * retained saga, score -created (ms) while unfinished, its expiry (ms) once
 * finished; the unfinished are the scores below 0. */
#define SAGA_KEY_SAGAS       "saga:{idx}:sagas"
#define SAGA_KEY_OWNED       "saga:{idx}:owned:"    /* + worker: set of its sagas */
#define SAGA_KEY_INTAKE      "saga:{idx}:intake"    /* stream: start requests */
#define SAGA_KEY_SUBMITTED   "saga:{idx}:submitted" /* zset: submitted ids (dedup) */

/* The global keys that are not sharded. */
#define SAGA_KEY_WAKE        "saga:{idx}:wake:"     /* + worker: list of ids to look at */
#define SAGA_KEY_WORKERS     "saga:{idx}:workers"   /* zset: worker -> lease expiry */
#define SAGA_KEY_DEFS        "saga:{idx}:defs"      /* hash: saga name -> current hash */
#define SAGA_KEY_SERVING     "saga:{idx}:serving"   /* hash: worker -> names it serves */
#define SAGA_INTAKE_GROUP    "workers"

/* Pub/sub channel: the id of each saga that settles (completed, compensated
 * or stuck), published by saga_write (saga.lua names it too); on Redis
 * Cluster too, where a PUBLISH reaches every node (docs/redis-layout.md). */
#define SAGA_CHANNEL_SETTLED     "saga:{idx}:settled"

#endif
