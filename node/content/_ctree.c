/* RFC 6962 SHA-256 tree over 4 KiB segments, for node/content/_tree.py (see there).

   Two SHA-256 paths give the same bytes (tests/content/test_accel*.py check both against the
   Python tree and hashlib): OpenSSL's SHA256_Init/Update/Final, one message at a time, on any
   CPU; and, where the CPU has the SHA extensions (SHA-NI), our own code that hashes four (then
   two, then one) equal-length messages interleaved, since one message's rounds wait on each
   other (sha256rnds2 is latency-bound) and independent messages fill the gaps. The caller
   picks the path per call (`sha_ni`); asking for SHA-NI on a CPU or build without it gets
   OpenSSL. docs/decisions.md D30 (the kernel) and D35 (the SHA-NI path). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSL's low-level SHA-256 (public, stable ABI; declared here so no headers are needed).
   The one-shot SHA256() of OpenSSL 3 fetches the algorithm on every call: ~2x slower here. */
typedef struct { unsigned int h[8], Nl, Nh, data[16], num, md_len; } SHA256_CTX;
int SHA256_Init(SHA256_CTX *c);
int SHA256_Update(SHA256_CTX *c, const void *data, size_t len);
int SHA256_Final(unsigned char *md, SHA256_CTX *c);

#define SEG 4096

/* SHA-256 of prefix || in[i*stride .. i*stride+k) into out + 32*i, for i < count. Outputs are
   written after their own inputs are read (the node level hashes in place: out == in). */
static void ossl_many(uint8_t prefix, const uint8_t *in, size_t stride, size_t k, size_t count,
                      uint8_t *out) {
    for (size_t i = 0; i < count; i++) {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, &prefix, 1);
        SHA256_Update(&c, in + i * stride, k);
        SHA256_Final(out + 32 * i, &c);
    }
}

#if !defined(BCAI_NO_SHANI_BUILD) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define BCAI_SHANI 1
#include <cpuid.h>
#include <immintrin.h>

#define SHANI __attribute__((target("sha,sse4.1,ssse3")))
#define INLINE static inline __attribute__((always_inline))

static const uint32_t K256[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define MAXLANES 4

/* One 64-byte block per lane. The state lives as sha256rnds2 wants it: abef holds (high to
   low 32-bit lanes) A, B, E, F and cdgh holds C, D, G, H. The message schedule keeps the last
   four groups of four words per lane in w[l][g % 4]; group g >= 4 is
   W[g] = msg2(msg1(W[g-4], W[g-3]) + (W[g-1]:W[g-2] shifted by one word), W[g-1]). The lane
   loop is innermost so that independent rounds of the lanes alternate. */
SHANI INLINE void compress(const int lanes, __m128i *abef, __m128i *cdgh,
                           const uint8_t *const *blk) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i w[MAXLANES][4], s0[MAXLANES], s1[MAXLANES];
    for (int l = 0; l < lanes; l++) {
        s0[l] = abef[l];
        s1[l] = cdgh[l];
    }
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m128i k = _mm_load_si128((const __m128i *)K256 + g);
#pragma GCC unroll 4
        for (int l = 0; l < lanes; l++) {
            __m128i x;
            if (g < 4) {
                x = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)blk[l] + g), bswap);
            } else {
                __m128i prev = w[l][(g + 3) & 3];
                x = _mm_sha256msg1_epu32(w[l][g & 3], w[l][(g + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(prev, w[l][(g + 2) & 3], 4));
                x = _mm_sha256msg2_epu32(x, prev);
            }
            w[l][g & 3] = x;
            x = _mm_add_epi32(x, k);
            s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], x);
            s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], _mm_shuffle_epi32(x, 0x0E));
        }
    }
    for (int l = 0; l < lanes; l++) {
        abef[l] = _mm_add_epi32(abef[l], s0[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], s1[l]);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* `lanes` messages of the same length, as ossl_many(prefix, in, stride, k, lanes, out).
   Message m = prefix || p[0..k), L = k + 1 bytes: block 0 is copied (it starts with the
   prefix), blocks 1 .. nfull-1 are read in place at p - 1 + 64 j, the rest (the last L % 64
   bytes, 0x80, zeros, the bit length) is built in `tail`: one block, or two when fewer than
   9 bytes are left for the padding. */
SHANI INLINE void shani_lanes(const int lanes, uint8_t prefix, const uint8_t *in, size_t stride,
                              size_t k, uint8_t *out) {
    const size_t len = k + 1, nfull = len / 64, rem = len % 64;
    const size_t ntail = rem + 9 <= 64 ? 1 : 2, nb = nfull + ntail;
    uint8_t head[MAXLANES][64], tail[MAXLANES][128];
    __m128i abef[MAXLANES], cdgh[MAXLANES];
    const uint8_t *blk[MAXLANES];
    const uint64_t bits = (uint64_t)len * 8;
    for (int l = 0; l < lanes; l++) {
        const uint8_t *p = in + l * stride;
        uint8_t *t = tail[l];
        if (nfull) {
            head[l][0] = prefix;
            memcpy(head[l] + 1, p, 63);
            memcpy(t, p + 64 * nfull - 1, rem);
        } else {
            t[0] = prefix;
            memcpy(t + 1, p, k);
        }
        t[rem] = 0x80;
        memset(t + rem + 1, 0, 64 * ntail - rem - 1 - 8);
        put_be32(t + 64 * ntail - 8, (uint32_t)(bits >> 32));
        put_be32(t + 64 * ntail - 4, (uint32_t)bits);
        /* the initial hash value (FIPS 180-4) in the abef/cdgh order */
        abef[l] = _mm_set_epi32(0x6a09e667, (int)0xbb67ae85, 0x510e527f, (int)0x9b05688c);
        cdgh[l] = _mm_set_epi32(0x3c6ef372, (int)0xa54ff53a, 0x1f83d9ab, 0x5be0cd19);
    }
    for (size_t j = 0; j < nb; j++) {
        for (int l = 0; l < lanes; l++)
            blk[l] = j >= nfull ? tail[l] + 64 * (j - nfull)
                     : j     ? in + l * stride + 64 * j - 1
                             : head[l];
        compress(lanes, abef, cdgh, blk);
    }
    for (int l = 0; l < lanes; l++) {
        uint32_t a[4], c[4]; /* a = F, E, B, A and c = H, G, D, C (low lane first) */
        uint8_t *o = out + 32 * l;
        _mm_storeu_si128((__m128i *)a, abef[l]);
        _mm_storeu_si128((__m128i *)c, cdgh[l]);
        put_be32(o, a[3]);
        put_be32(o + 4, a[2]);
        put_be32(o + 8, c[3]);
        put_be32(o + 12, c[2]);
        put_be32(o + 16, a[1]);
        put_be32(o + 20, a[0]);
        put_be32(o + 24, c[1]);
        put_be32(o + 28, c[0]);
    }
}

SHANI static void shani_x1(uint8_t prefix, const uint8_t *in, size_t stride, size_t k,
                           uint8_t *out) {
    shani_lanes(1, prefix, in, stride, k, out);
}

SHANI static void shani_x2(uint8_t prefix, const uint8_t *in, size_t stride, size_t k,
                           uint8_t *out) {
    shani_lanes(2, prefix, in, stride, k, out);
}

SHANI static void shani_x4(uint8_t prefix, const uint8_t *in, size_t stride, size_t k,
                           uint8_t *out) {
    shani_lanes(4, prefix, in, stride, k, out);
}

static void shani_many(uint8_t prefix, const uint8_t *in, size_t stride, size_t k, size_t count,
                       uint8_t *out) {
    size_t i = 0;
    for (; i + 4 <= count; i += 4) shani_x4(prefix, in + i * stride, stride, k, out + 32 * i);
    if (i + 2 <= count) {
        shani_x2(prefix, in + i * stride, stride, k, out + 32 * i);
        i += 2;
    }
    if (i < count) shani_x1(prefix, in + i * stride, stride, k, out + 32 * i);
}

static int cpu_sha_ni; /* set once when the library is loaded */

__attribute__((constructor)) static void detect(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
        return; /* SSE4.1 (ECX bit 19) and SSSE3 (bit 9) */
    if (__get_cpuid_max(0, 0) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    cpu_sha_ni = (b >> 29) & 1; /* SHA: leaf 7, EBX bit 29 */
}
#endif

/* 1 when this CPU can take the SHA-NI path, 0 when it cannot, -1 when this build has none. */
int bcai_sha_ni(void) {
#ifdef BCAI_SHANI
    return cpu_sha_ni;
#else
    return -1;
#endif
}

typedef void many_fn(uint8_t, const uint8_t *, size_t, size_t, size_t, uint8_t *);

static many_fn *pick(int sha_ni) {
#ifdef BCAI_SHANI
    if (sha_ni && cpu_sha_ni) return shani_many;
#endif
    (void)sha_ni;
    return ossl_many;
}

/* Leaf hashes of `len` bytes (len >= 1) cut into 4 KiB segments into out (32 * ceil(len/4096)
   bytes); returns the number of leaves. */
int bcai_leaf_hashes(const uint8_t *data, size_t len, uint8_t *out, int sha_ni) {
    many_fn *many = pick(sha_ni);
    size_t full = len / SEG, last = len % SEG;
    if (len == 0) return -1;
    many(0, data, SEG, SEG, full, out);
    if (last) many(0, data + SEG * full, SEG, last, 1, out + 32 * full);
    return (int)(full + (last != 0));
}

/* Root over the n leaf hashes in `level`, hashing level by level in place. */
static void reduce(uint8_t *level, size_t n, uint8_t out[32], many_fn *many) {
    while (n > 1) {
        size_t pairs = n / 2;
        many(1, level, 64, 64, pairs, level);
        if (n & 1) memmove(level + 32 * pairs, level + 32 * (n - 1), 32);
        n = pairs + (n & 1);
    }
    memcpy(out, level, 32);
}

/* Root over already-hashed leaves (n >= 1); `scratch` holds 32*n bytes (may alias leaves). */
int bcai_merkle_root(const uint8_t *leaves, size_t n, uint8_t *scratch, uint8_t out[32],
                     int sha_ni) {
    if (n == 0) return -1;
    if (scratch != leaves) memcpy(scratch, leaves, 32 * n);
    reduce(scratch, n, out, pick(sha_ni));
    return 0;
}

/* Root of `len` bytes (len >= 1) cut into 4 KiB segments; scratch holds 32 * ceil(len/4096). */
int bcai_tree_root(const uint8_t *data, size_t len, uint8_t *scratch, uint8_t out[32],
                   int sha_ni) {
    int n = bcai_leaf_hashes(data, len, scratch, sha_ni);
    if (n < 0) return -1;
    reduce(scratch, (size_t)n, out, pick(sha_ni));
    return 0;
}
