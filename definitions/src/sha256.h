/*
 * sha256.h -- SHA-256 (FIPS 180-4), streaming. Used for the canonical hash
 * of a definition; written here so the library needs no crypto dependency.
 */
#ifndef SAGA_DEFS_SHA256_H
#define SAGA_DEFS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SAGA__SHA256_DIGEST 32u

/* The hashing state; the caller embeds it. */
typedef struct saga__sha256_s {
    uint32_t h[8];          /* intermediate hash value H(i) */
    uint64_t bytes;         /* message length so far, in bytes */
    uint8_t block[64];      /* partial block */
    size_t used;            /* bytes in `block` */
} saga__sha256_t;

/* Starts a new message. Cannot fail. */
void saga__sha256_init(saga__sha256_t *s);

/* Appends `len` bytes. Cannot fail. */
void saga__sha256_update(saga__sha256_t *s, const void *data, size_t len);

/* Pads, finishes and writes the 32-byte digest; the state must be
 * initialized again before reuse. Cannot fail. */
void saga__sha256_final(saga__sha256_t *s, uint8_t out[SAGA__SHA256_DIGEST]);

/* Writes the digest as 64 lowercase hex digits and a NUL into `hex`. */
void saga__sha256_hex(const uint8_t digest[SAGA__SHA256_DIGEST],
                      char hex[2 * SAGA__SHA256_DIGEST + 1]);

#endif /* SAGA_DEFS_SHA256_H */
