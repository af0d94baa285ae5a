/* RFC 6962 SHA-256 tree over 4 KiB segments, for node/content/_tree.py (see there). */
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

static void sha(const uint8_t *prefix_then, size_t n, uint8_t *md) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, prefix_then, n);
    SHA256_Final(md, &c);
}

#define SEG 4096

static void reduce(uint8_t *level, size_t n, uint8_t out[32]) {
    uint8_t buf[65];
    buf[0] = 1;
    while (n > 1) {
        size_t m = 0;
        for (size_t i = 0; i + 1 < n; i += 2) {
            memcpy(buf + 1, level + 32 * i, 64);
            sha(buf, 65, level + 32 * m++);
        }
        if (n & 1) memmove(level + 32 * m++, level + 32 * (n - 1), 32);
        n = m;
    }
    memcpy(out, level, 32);
}

/* Root over already-hashed leaves (n >= 1); `scratch` holds 32*n bytes (may alias leaves). */
int bcai_merkle_root(const uint8_t *leaves, size_t n, uint8_t *scratch, uint8_t out[32]) {
    if (n == 0) return -1;
    if (scratch != leaves) memcpy(scratch, leaves, 32 * n);
    reduce(scratch, n, out);
    return 0;
}

/* Root of `len` bytes (len >= 1) cut into 4 KiB segments; scratch holds 32 * ceil(len/4096). */
int bcai_tree_root(const uint8_t *data, size_t len, uint8_t *scratch, uint8_t out[32]) {
    uint8_t seg[1];
    size_t n = 0;
    if (len == 0) return -1;
    seg[0] = 0;
    for (size_t off = 0; off < len; off += SEG) {
        size_t k = len - off < SEG ? len - off : SEG;
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, seg, 1);
        SHA256_Update(&c, data + off, k);
        SHA256_Final(scratch + 32 * n++, &c);
    }
    reduce(scratch, n, out);
    return 0;
}
