/* hash.h: SHA-256 object names (OpenSSL libcrypto, for its SHA-NI speed).
 *
 * A lama_hash names every object, ID object, CLOB and BLOB: the SHA-256 of
 * its bytes, written as 64 lower-case hex characters. */
#ifndef LAMA_HASH_H
#define LAMA_HASH_H

#include <stddef.h>
#include <stdint.h>

#define LAMA_HASH_BYTES 32
#define LAMA_HASH_HEX 64

typedef struct lama_hash {
	uint8_t b[LAMA_HASH_BYTES];
} lama_hash;

/* One-shot SHA-256. */
void lama_sha256(const void *data, size_t n, lama_hash *out);

/* Streaming SHA-256 for BLOBs; the context is opaque and heap-allocated.
 * lama_sha256_new returns NULL on ENOMEM; _final frees the context. */
typedef struct lama_sha256_ctx lama_sha256_ctx;
lama_sha256_ctx *lama_sha256_new(void);
void lama_sha256_update(lama_sha256_ctx *c, const void *data, size_t n);
void lama_sha256_final(lama_sha256_ctx *c, lama_hash *out);
void lama_sha256_abort(lama_sha256_ctx *c);

/* Writes 64 lower-case hex characters and a NUL into out[65]. */
void lama_hash_hex(const lama_hash *h, char out[LAMA_HASH_HEX + 1]);
/* Parses exactly 64 lower-case hex characters (ONE accepts no other form);
 * returns 0 or LAMA_EINVAL. */
int lama_hash_parse(const char *hex, size_t len, lama_hash *out);
/* 1 if s[0..len) is exactly 64 lower-case hex characters. */
int lama_hash_hex_valid(const char *s, size_t len);
int lama_hash_eq(const lama_hash *a, const lama_hash *b);

/* Generic hex for keys and signatures: out must hold 2n+1 bytes. */
void lama_hex_encode(const void *in, size_t n, char *out);
/* Decodes exactly 2n hex digits (either case) into out[n]; 0 or LAMA_EINVAL. */
int lama_hex_decode(const char *hex, size_t hexlen, void *out, size_t n);

#endif
