/* crypto.h: every cryptographic primitive lama uses, over libsodium.
 *
 * Habits from libsodium itself: the caller provides fixed-size buffers
 * (sizes are the macros below), nothing here allocates except the secure
 * allocator, every open/verify result must be checked, and temporaries are
 * wiped. Returns 0 or a negative LAMA_E* code (see util/err.h).
 * SHA-256 content hashes are in util/hash.h (OpenSSL is faster for them). */
#ifndef LAMA_CRYPTO_H
#define LAMA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define LAMA_MUST_CHECK __attribute__((warn_unused_result))

#define LAMA_KEY_BYTES 32        /* symmetric keys, X25519 keys */
#define LAMA_SIGN_PK_BYTES 32    /* Ed25519 public key */
#define LAMA_SIGN_SK_BYTES 64    /* Ed25519 secret key (seed || pk) */
#define LAMA_SIG_BYTES 64        /* Ed25519 signature */
#define LAMA_SIGN_SEED_BYTES 32  /* Ed25519 seed (RFC 8032 private key) */
#define LAMA_BOX_PK_BYTES 32     /* X25519 public key */
#define LAMA_BOX_SK_BYTES 32     /* X25519 secret key */
#define LAMA_AEAD_NONCE_BYTES 24 /* XChaCha20-Poly1305 nonce */
#define LAMA_AEAD_TAG_BYTES 16
/* lama_aead_seal output = nonce || ciphertext || tag */
#define LAMA_AEAD_OVERHEAD (LAMA_AEAD_NONCE_BYTES + LAMA_AEAD_TAG_BYTES)
#define LAMA_SEAL_OVERHEAD 48    /* anonymous sealed box: epk || mac */
#define LAMA_BOX_OVERHEAD (24 + 16) /* authenticated box: nonce || mac */
#define LAMA_SALT_BYTES 16       /* Argon2id salt */
#define LAMA_KX_SESSION_BYTES 32

/* Must be called once before anything else (idempotent, thread-safe). */
int lama_crypto_init(void) LAMA_MUST_CHECK;

/* Fills buf with n unpredictable bytes. */
void lama_random(void *buf, size_t n);
uint32_t lama_random_uniform(uint32_t upper);

/* Wipes n bytes so the compiler cannot optimise it away. */
void lama_wipe(void *p, size_t n);
/* Constant-time comparison: 0 if equal. */
int lama_memcmp_ct(const void *a, const void *b, size_t n);

/* Secure memory for secrets: guard pages, mlock'd, wiped on free. NULL on
 * failure. Free with lama_secure_free (NULL is fine). */
void *lama_secure_alloc(size_t n);
void lama_secure_free(void *p);
/* Makes a lama_secure_alloc block read-only, for secrets that never change
 * after they are set; writing to it then faults. lama_secure_free still
 * works. 0 or LAMA_EIO. */
int lama_secure_readonly(void *p);

/* --- Ed25519 signatures --- */
int lama_sign_keypair(uint8_t pk[LAMA_SIGN_PK_BYTES], uint8_t sk[LAMA_SIGN_SK_BYTES]);
/* The same keypair every time for the same seed (RFC 8032 key generation). */
int lama_sign_seed_keypair(uint8_t pk[LAMA_SIGN_PK_BYTES], uint8_t sk[LAMA_SIGN_SK_BYTES],
			   const uint8_t seed[LAMA_SIGN_SEED_BYTES]);
void lama_sign(uint8_t sig[LAMA_SIG_BYTES], const void *msg, size_t n,
	       const uint8_t sk[LAMA_SIGN_SK_BYTES]);
/* 0 if valid, LAMA_ECRYPTO otherwise. */
int lama_verify(const uint8_t sig[LAMA_SIG_BYTES], const void *msg, size_t n,
		const uint8_t pk[LAMA_SIGN_PK_BYTES]) LAMA_MUST_CHECK;
/* Verifies count signatures; results[i] is 0 or LAMA_ECRYPTO; returns 0 if
 * all are valid, else LAMA_ECRYPTO. results may be NULL when only the overall
 * answer matters; an item with a NULL sig or pk counts as invalid. */
struct lama_sig_item {
	const uint8_t *sig;
	const uint8_t *pk;
	const void *msg;
	size_t len;
};
int lama_verify_batch(const struct lama_sig_item *items, size_t count, int *results) LAMA_MUST_CHECK;

/* --- X25519: key exchange, sealed and boxed messages --- */
int lama_box_keypair(uint8_t pk[LAMA_BOX_PK_BYTES], uint8_t sk[LAMA_BOX_SK_BYTES]);
/* The public key of a box (X25519) secret key. */
int lama_box_public(uint8_t pk[LAMA_BOX_PK_BYTES], const uint8_t sk[LAMA_BOX_SK_BYTES]);
/* Anonymous sealed box to pk: out holds n + LAMA_SEAL_OVERHEAD bytes. */
int lama_seal(uint8_t *out, const void *msg, size_t n, const uint8_t pk[LAMA_BOX_PK_BYTES]);
/* out holds n - LAMA_SEAL_OVERHEAD bytes; LAMA_ECRYPTO on forgery or a too
 * short n. On failure out holds zeros, never unauthenticated plaintext; the
 * same holds for lama_box_open and lama_aead_open. out must not overlap the
 * input in any of the seal/box/aead calls. */
int lama_seal_open(uint8_t *out, const uint8_t *in, size_t n,
		   const uint8_t pk[LAMA_BOX_PK_BYTES],
		   const uint8_t sk[LAMA_BOX_SK_BYTES]) LAMA_MUST_CHECK;
/* Authenticated box from sender sk to recipient pk; out holds n +
 * LAMA_BOX_OVERHEAD bytes (random nonce || mac || ciphertext). */
int lama_box(uint8_t *out, const void *msg, size_t n,
	     const uint8_t recipient_pk[LAMA_BOX_PK_BYTES],
	     const uint8_t sender_sk[LAMA_BOX_SK_BYTES]);
int lama_box_open(uint8_t *out, const uint8_t *in, size_t n,
		  const uint8_t sender_pk[LAMA_BOX_PK_BYTES],
		  const uint8_t recipient_sk[LAMA_BOX_SK_BYTES]) LAMA_MUST_CHECK;
/* crypto_kx session keys: rx for receiving, tx for sending. The client is
 * the side that opened the connection. */
int lama_kx_client(uint8_t rx[LAMA_KX_SESSION_BYTES], uint8_t tx[LAMA_KX_SESSION_BYTES],
		   const uint8_t client_pk[32], const uint8_t client_sk[32],
		   const uint8_t server_pk[32]) LAMA_MUST_CHECK;
int lama_kx_server(uint8_t rx[LAMA_KX_SESSION_BYTES], uint8_t tx[LAMA_KX_SESSION_BYTES],
		   const uint8_t server_pk[32], const uint8_t server_sk[32],
		   const uint8_t client_pk[32]) LAMA_MUST_CHECK;

/* --- AEAD: XChaCha20-Poly1305 with a random nonce --- */
/* out holds n + LAMA_AEAD_OVERHEAD bytes: nonce || ciphertext || tag.
 * `ad` (associated data) is authenticated but not stored; it binds a
 * ciphertext to where it belongs. */
int lama_aead_seal(uint8_t *out, const void *msg, size_t n, const void *ad, size_t adlen,
		   const uint8_t key[LAMA_KEY_BYTES]);
/* out holds n - LAMA_AEAD_OVERHEAD bytes; LAMA_ECRYPTO if the input was
 * altered, the key or ad is wrong, or n is too short. */
int lama_aead_open(uint8_t *out, const uint8_t *in, size_t n, const void *ad, size_t adlen,
		   const uint8_t key[LAMA_KEY_BYTES]) LAMA_MUST_CHECK;

/* --- Streams: libsodium's secretstream (XChaCha20-Poly1305), chunk by
 * chunk. The backup file and the crypto worker's stream ops use these, so
 * both write the same format. Each chunk's key and nonce follow from the
 * one before, so chunks cannot be reordered, dropped or moved between
 * streams; only the end needs the caller: a stream is whole when its last
 * chunk carries LAMA_STREAM_TAG_FINAL. The state is plain bytes (no
 * pointers), so it can be copied, wiped and carried between processes;
 * it holds the key: keep it in secure memory or wipe it. --- */
#define LAMA_STREAM_HEADER_BYTES 24 /* sent before the first chunk */
#define LAMA_STREAM_ABYTES 17       /* a chunk's overhead: tag byte + MAC */
#define LAMA_STREAM_STATE_BYTES 52
#define LAMA_STREAM_TAG_MESSAGE 0
#define LAMA_STREAM_TAG_FINAL 3
struct lama_stream {
	uint8_t b[LAMA_STREAM_STATE_BYTES];
};
/* Starts a stream under key: header gets LAMA_STREAM_HEADER_BYTES (random). */
void lama_stream_init_push(struct lama_stream *st, uint8_t header[LAMA_STREAM_HEADER_BYTES],
			   const uint8_t key[LAMA_KEY_BYTES]);
/* Encrypts one chunk: out holds n + LAMA_STREAM_ABYTES bytes; tag is
 * LAMA_STREAM_TAG_MESSAGE or _FINAL (LAMA_EINVAL otherwise). */
int lama_stream_push(struct lama_stream *st, uint8_t *out, const void *in, size_t n,
		     const void *ad, size_t adlen, uint8_t tag);
/* LAMA_ECRYPTO for a header that cannot start a stream. */
int lama_stream_init_pull(struct lama_stream *st, const uint8_t header[LAMA_STREAM_HEADER_BYTES],
			  const uint8_t key[LAMA_KEY_BYTES]) LAMA_MUST_CHECK;
/* Decrypts one chunk: out holds n - LAMA_STREAM_ABYTES bytes, *tag the
 * chunk's tag. LAMA_ECRYPTO if the chunk was altered, is out of place, the
 * key or ad is wrong, or n is too short; the state is then unchanged. */
int lama_stream_pull(struct lama_stream *st, uint8_t *out, uint8_t *tag, const uint8_t *in,
		     size_t n, const void *ad, size_t adlen) LAMA_MUST_CHECK;

/* --- Keys from keys and passwords --- */
/* Argon2id cost. `moderate` is libsodium's MODERATE (the default for user
 * passwords); `interactive` and `min` exist for tests. */
struct lama_kdf_params {
	uint64_t opslimit;
	uint64_t memlimit;
};
struct lama_kdf_params lama_kdf_moderate(void);
struct lama_kdf_params lama_kdf_interactive(void);
struct lama_kdf_params lama_kdf_min(void);
/* Ceilings lama accepts for stored parameters, so a tampered account file
 * cannot make a login take hours or all memory (SENSITIVE is 4 ops, 1 GiB). */
#define LAMA_KDF_OPSLIMIT_MAX 32
#define LAMA_KDF_MEMLIMIT_MAX ((uint64_t)4 << 30)
/* Derives a 32-byte key from a password with Argon2id. LAMA_ENOMEM if the
 * memory limit cannot be met, LAMA_EINVAL for parameters below libsodium's
 * minimum or above the ceilings; key is zeroed on failure. */
int lama_pwhash(uint8_t key[LAMA_KEY_BYTES], const char *pw, size_t pwlen,
		const uint8_t salt[LAMA_SALT_BYTES],
		const struct lama_kdf_params *p) LAMA_MUST_CHECK;
/* Derives independent subkey number `id` for an 8-character context. */
void lama_kdf_derive(uint8_t sub[LAMA_KEY_BYTES], uint64_t id, const char ctx[8],
		     const uint8_t master[LAMA_KEY_BYTES]);
/* Keyed BLAKE2b-256: names in the storage index that reveal nothing of the
 * content hash they stand for. */
void lama_keyed_hash(uint8_t out[32], const void *msg, size_t n, const uint8_t key[LAMA_KEY_BYTES]);

/* --- Encodings used in ONE objects (Keys, Signature) --- */
/* Base64 (standard alphabet, with padding); out must hold
 * lama_base64_len(n) bytes including the NUL. */
size_t lama_base64_len(size_t n);
void lama_base64_encode(char *out, const void *in, size_t n);
int lama_base64_decode(void *out, size_t outmax, size_t *outlen, const char *in, size_t inlen) LAMA_MUST_CHECK;

#endif
