/*
 * shards.h -- the global keys split over K shards (docs/redis-layout.md,
 * "Shards of the global keys").
 *
 * The keys every saga touches outside its own hash tag -- the intake
 * stream, the submitted set, the index of sagas, the owners' sets and the
 * orphans -- exist once per shard, each shard under a hash tag of its own,
 * so that on Redis Cluster they spread over the primaries instead of
 * loading the one node of {idx}. A saga belongs to the shard of its id
 * (saga_shards_of: FNV-1a of the id's bytes, modulo K), so its submit, its
 * index entries and its owner's set entry all go to one shard.
 *
 * K and the shards' tags are fixed per deployment: the first engine that
 * starts on a Redis Cluster records them in saga:{idx}:shards (a string,
 * the tags separated by single spaces); every engine reads them from there.
 * On a single Redis, and on a cluster that held data of a layout before
 * shards, K = 1 with the tag "idx": the keys are those of before.
 */
#ifndef SAGA_STORE_SHARDS_H
#define SAGA_STORE_SHARDS_H

#include <stddef.h>

#define SAGA_SHARDS_MAX 64
#define SAGA_SHARD_TAG_MAX 24 /* a tag's characters + NUL */

/* The key that records the shards (in the {idx} slot). */
#define SAGA_KEY_SHARDS "saga:{idx}:shards"

/* The sharded keys: "saga:{TAG}:" + one of these (+ a worker's name for
 * SAGA_SHARD_OWNED). */
#define SAGA_SHARD_SAGAS     "sagas"     /* zset: the index of sagas */
#define SAGA_SHARD_INTAKE    "intake"    /* stream: start requests */
#define SAGA_SHARD_SUBMITTED "submitted" /* zset: submitted ids (dedup) */
#define SAGA_SHARD_OWNED     "owned:"    /* + worker: set of its sagas */
#define SAGA_SHARD_ORPHANS   "orphans"   /* set: released sagas to claim */

typedef struct saga_shards_s {
    unsigned k;                                   /* 1..SAGA_SHARDS_MAX */
    char tag[SAGA_SHARDS_MAX][SAGA_SHARD_TAG_MAX]; /* tag[0..k) */
} saga_shards_t;

/* One shard, tag "idx": the keys of a single Redis. */
void saga_shards_single(saga_shards_t *sh);

/* K shards (1 <= k <= SAGA_SHARDS_MAX) whose tags hash to slots spread
 * evenly over the cluster's 16,384: shard s's slot lies in the s-th of K
 * equal ranges, so that a cluster whose primaries hold equal ranges (what
 * `redis-cli --cluster create` makes) gets K/N shards on each. The tags
 * are "idx:S", or "idx:S.N" for the first N that lands in the range.
 * Returns 0, or -EINVAL for k out of range. */
int saga_shards_spread(saga_shards_t *sh, unsigned k);

/* Reads the recorded form (tags separated by single spaces). Returns 0, or
 * -EINVAL with `err` saying what is wrong (no tags, too many, a tag empty,
 * too long, with a brace or a control character, or twice). */
int saga_shards_parse(saga_shards_t *sh, const char *text, size_t len, char *err,
                      size_t errlen);

/* Writes the recorded form into buf. Returns its length, or -ENOSPC. */
int saga_shards_format(const saga_shards_t *sh, char *buf, size_t size);

/* The shard of saga `id`: FNV-1a (32 bits) of its bytes, modulo K. Part of
 * the key layout: it never changes for a given K. */
unsigned saga_shards_of(const saga_shards_t *sh, const char *id);

/* The key "saga:{TAG}:" name suffix of shard `s` into buf (suffix may be
 * NULL). Returns its length, or -EINVAL (s out of range) / -ENOSPC. */
int saga_shards_key(const saga_shards_t *sh, unsigned s, const char *name, const char *suffix,
                    char *buf, size_t size);

#endif
