/*
 * bytes.h -- number and byte helpers used on the hot path (every transition
 * formats and parses decimal counters) and wherever stored bytes are copied.
 */
#ifndef SAGA_BYTES_H
#define SAGA_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Decimal digits of v into buf (at least 21 bytes), NUL-ended; returns the
 * length. snprintf-free: it runs on every transition. */
size_t saga_fmt_u64(char *buf, uint64_t v);

/* Parses the decimal digits s[0..len) (not NUL-terminated) as written by
 * saga_fmt_u64(): 1 to 20 digits, no sign, no space, no leading zero, at
 * most UINT64_MAX. Returns 0, or -EINVAL with *out unchanged. */
int saga_parse_u64(const char *s, size_t len, uint64_t *out);

/* A NUL-terminated copy of n bytes (which may hold anything), or NULL when
 * out of memory. Caller frees. */
char *saga_memdup(const char *s, size_t n);

/* The value of the hexadecimal digit c (0-9, a-f, A-F), or -1. */
int saga_hex_value(int c);

/* The 32-bit FNV-1a hash of the NUL-terminated string s: how a saga's id
 * picks its shard (store/shards.h) and its connection of the Redis store.
 * Stable across builds and machines: shards are recorded in Redis. */
uint32_t saga_fnv1a(const char *s);

#endif
