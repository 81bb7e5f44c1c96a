/* The baseline for bench/crypto.sh: the same operations as equicast-bench, calling libsodium and zlib directly
 * with preallocated buffers. Usage: direct OP SIZE ITERATIONS; prints the elapsed nanoseconds of the timed loop. */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Must match bench/swift/EquicastBench/main.swift byte for byte. */
static void fill(unsigned char *p, size_t n) {
    uint64_t x = 0x2545F4914F6CDD1DULL;
    const char *text = "abcdefgh";
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (i % 4 == 0) ? (unsigned char)(x >> 56) : (unsigned char)text[i % 8];
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: direct OP SIZE ITERATIONS\n"); return 2; }
    const char *op = argv[1];
    size_t size = strtoul(argv[2], NULL, 10);
    long iterations = strtol(argv[3], NULL, 10);
    if (sodium_init() < 0) return 1;
    unsigned char *in = malloc(size), *out = malloc(size * 2 + 1024), *back = malloc(size + 1);
    fill(in, size);
    unsigned char key[32], nonce[24], ad[52], hash[32];
    for (int i = 0; i < 32; i++) key[i] = (unsigned char)i;
    memset(nonce, 7, sizeof nonce);
    memset(ad, 1, sizeof ad);
    unsigned long long clen = 0, mlen = 0;
    uLongf zlen = compressBound(size);
    uint64_t start = 0, end = 0;
    volatile unsigned sink = 0;

    if (strcmp(op, "seal") == 0) {
        start = now_ns();
        for (long i = 0; i < iterations; i++) {
            crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, in, size, ad, sizeof ad, NULL, nonce, key);
            sink += out[0];
        }
        end = now_ns();
    } else if (strcmp(op, "open") == 0) {
        crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, in, size, ad, sizeof ad, NULL, nonce, key);
        start = now_ns();
        for (long i = 0; i < iterations; i++) {
            if (crypto_aead_xchacha20poly1305_ietf_decrypt(back, &mlen, NULL, out, clen, ad, sizeof ad, nonce, key) != 0)
                return 1;
            sink += back[0];
        }
        end = now_ns();
    } else if (strcmp(op, "blake2b") == 0) {
        start = now_ns();
        for (long i = 0; i < iterations; i++) {
            crypto_generichash(hash, 32, in, size, NULL, 0);
            sink += hash[0];
        }
        end = now_ns();
    } else if (strcmp(op, "deflate") == 0) {
        start = now_ns();
        for (long i = 0; i < iterations; i++) {
            zlen = compressBound(size);
            if (compress2(out, &zlen, in, size, 6) != Z_OK) return 1;
            sink += out[zlen - 1];
        }
        end = now_ns();
    } else if (strcmp(op, "inflate") == 0) {
        if (compress2(out, &zlen, in, size, 6) != Z_OK) return 1;
        start = now_ns();
        for (long i = 0; i < iterations; i++) {
            uLongf blen = size;
            if (uncompress(back, &blen, out, zlen) != Z_OK || blen != size) return 1;
            sink += back[blen - 1];
        }
        end = now_ns();
    } else if (strcmp(op, "sign") == 0 || strcmp(op, "verify") == 0) {
        /* Ed25519 detached signatures of a SIZE-byte message: what a node does once per statement it makes
           (sign) and once per statement of another node it has not seen (verify). */
        unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
        crypto_sign_seed_keypair(pk, sk, key);
        crypto_sign_detached(sig, NULL, in, size, sk);
        int signing = strcmp(op, "sign") == 0;
        start = now_ns();
        for (long i = 0; i < iterations; i++) {
            if (signing) {
                crypto_sign_detached(sig, NULL, in, size, sk);
                sink += sig[0];
            } else {
                if (crypto_sign_verify_detached(sig, in, size, pk) != 0) return 1;
                sink += 1;
            }
        }
        end = now_ns();
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    printf("%llu\n", (unsigned long long)(end - start));
    return sink == 0xffffffffu;  /* keeps the loops from being optimised away */
}
