/*
 * test_sha256.c -- SHA-256 against the FIPS 180-4 example messages.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "sha256.h"

static void hash_hex(const void *data, size_t len, char hex[65])
{
    saga__sha256_t s;
    uint8_t d[SAGA__SHA256_DIGEST];
    saga__sha256_init(&s);
    saga__sha256_update(&s, data, len);
    saga__sha256_final(&s, d);
    saga__sha256_hex(d, hex);
}

Test(sha256, empty_message)
{
    char hex[65];
    hash_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(sha256, one_block_abc)
{
    char hex[65];
    hash_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(sha256, two_blocks_448_bits)
{
    /* 56 bytes: the padding needs a second block. */
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char hex[65];
    hash_hex(m, strlen(m), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, two_blocks_896_bits)
{
    const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                    "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    char hex[65];
    hash_hex(m, strlen(m), hex);
    cr_assert_str_eq(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

Test(sha256, one_million_a)
{
    size_t n = 1000000;
    char *m = malloc(n);
    cr_assert_not_null(m);
    memset(m, 'a', n);
    char hex[65];
    hash_hex(m, n, hex);
    free(m);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

Test(sha256, any_split_of_the_input_gives_the_same_digest)
{
    char m[200];
    for (size_t i = 0; i < sizeof(m); i++)
        m[i] = (char)(i * 7 + 3);
    char whole[65];
    hash_hex(m, sizeof(m), whole);
    for (size_t cut = 0; cut <= sizeof(m); cut++) {
        saga__sha256_t s;
        uint8_t d[SAGA__SHA256_DIGEST];
        char hex[65];
        saga__sha256_init(&s);
        saga__sha256_update(&s, m, cut);
        saga__sha256_update(&s, m + cut, sizeof(m) - cut);
        saga__sha256_final(&s, d);
        saga__sha256_hex(d, hex);
        cr_assert_str_eq(hex, whole, "split at %zu", cut);
    }
}

Test(sha256, lengths_around_the_padding_boundary)
{
    /* 55 bytes fit the length in one block, 56 do not; known values. */
    char m[64];
    memset(m, 'a', sizeof(m));
    char hex[65];
    hash_hex(m, 55, hex);
    cr_assert_str_eq(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    hash_hex(m, 56, hex);
    cr_assert_str_eq(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    hash_hex(m, 64, hex);
    cr_assert_str_eq(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}
