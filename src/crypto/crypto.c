/* crypto.c: crypto.h over libsodium. Each function is a thin, checked call;
 * what lama adds is its error convention, bounds checks before libsodium
 * would abort on misuse, and random nonces placed in front of ciphertexts. */
#include "crypto/crypto.h"

#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "util/err.h"
#include "util/mem.h"

/* The sizes in crypto.h are promises to callers; hold libsodium to them. */
_Static_assert(LAMA_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "aead key");
_Static_assert(LAMA_KEY_BYTES == crypto_kdf_KEYBYTES, "kdf key");
_Static_assert(LAMA_KEY_BYTES >= crypto_pwhash_BYTES_MIN, "pwhash output");
/* lama_pwhash passes memlimit on as a size_t. */
_Static_assert(LAMA_KDF_MEMLIMIT_MAX <= SIZE_MAX, "memlimit fits size_t");
_Static_assert(LAMA_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "sign pk");
_Static_assert(LAMA_SIGN_SK_BYTES == crypto_sign_SECRETKEYBYTES, "sign sk");
_Static_assert(LAMA_SIGN_SEED_BYTES == crypto_sign_SEEDBYTES, "sign seed");
_Static_assert(LAMA_SIG_BYTES == crypto_sign_BYTES, "signature");
_Static_assert(LAMA_BOX_PK_BYTES == crypto_box_PUBLICKEYBYTES, "box pk");
_Static_assert(LAMA_BOX_SK_BYTES == crypto_box_SECRETKEYBYTES, "box sk");
/* lama_kx_* take lama_box_keypair keys: both are plain X25519. */
_Static_assert(LAMA_BOX_PK_BYTES == crypto_kx_PUBLICKEYBYTES, "kx pk");
_Static_assert(LAMA_BOX_SK_BYTES == crypto_kx_SECRETKEYBYTES, "kx sk");
_Static_assert(LAMA_KX_SESSION_BYTES == crypto_kx_SESSIONKEYBYTES, "kx session");
_Static_assert(LAMA_AEAD_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "aead nonce");
_Static_assert(LAMA_AEAD_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "aead tag");
_Static_assert(LAMA_SEAL_OVERHEAD == crypto_box_SEALBYTES, "seal overhead");
_Static_assert(LAMA_BOX_OVERHEAD == crypto_box_NONCEBYTES + crypto_box_MACBYTES, "box overhead");
_Static_assert(LAMA_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt");
_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "kdf context");
_Static_assert(crypto_generichash_KEYBYTES_MAX >= LAMA_KEY_BYTES, "keyed hash key");

int lama_crypto_init(void)
{
	/* 1 means "already initialised", which is success for us. */
	if (sodium_init() < 0)
		return lama_error(LAMA_EIO, "libsodium could not be initialised");
	return 0;
}

void lama_random(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

uint32_t lama_random_uniform(uint32_t upper)
{
	return randombytes_uniform(upper);
}

void lama_wipe(void *p, size_t n)
{
	if (p)
		sodium_memzero(p, n);
}

int lama_memcmp_ct(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) ? -1 : 0;
}

void *lama_secure_alloc(size_t n)
{
	void *probe;

	/* sodium_malloc bypasses lama_malloc; taking one tiny allocation
	 * first lets fault-injection tests reach the secure-memory failure
	 * paths too (util/mem.h has no "would fail" query). */
	probe = lama_malloc(1);
	if (!probe)
		return NULL;
	lama_free(probe);
	return sodium_malloc(n);
}

void lama_secure_free(void *p)
{
	if (p)
		sodium_free(p); /* wipes, then unmaps with the guard pages */
}

int lama_secure_readonly(void *p)
{
	if (sodium_mprotect_readonly(p) != 0)
		return lama_error(LAMA_EIO, "mprotect of secure memory failed");
	return 0;
}

/* --- Ed25519 --- */

int lama_sign_keypair(uint8_t pk[LAMA_SIGN_PK_BYTES], uint8_t sk[LAMA_SIGN_SK_BYTES])
{
	if (crypto_sign_keypair(pk, sk) != 0)
		return lama_error(LAMA_ECRYPTO, "signing key generation failed");
	return 0;
}

int lama_sign_seed_keypair(uint8_t pk[LAMA_SIGN_PK_BYTES], uint8_t sk[LAMA_SIGN_SK_BYTES],
			   const uint8_t seed[LAMA_SIGN_SEED_BYTES])
{
	if (crypto_sign_seed_keypair(pk, sk, seed) != 0)
		return lama_error(LAMA_ECRYPTO, "signing key generation failed");
	return 0;
}

void lama_sign(uint8_t sig[LAMA_SIG_BYTES], const void *msg, size_t n,
	       const uint8_t sk[LAMA_SIGN_SK_BYTES])
{
	/* Cannot fail for a detached signature of any length. */
	(void)crypto_sign_detached(sig, NULL, msg, n, sk);
}

int lama_verify(const uint8_t sig[LAMA_SIG_BYTES], const void *msg, size_t n,
		const uint8_t pk[LAMA_SIGN_PK_BYTES])
{
	if (crypto_sign_verify_detached(sig, msg, n, pk) != 0)
		return lama_error(LAMA_ECRYPTO, "signature verification failed");
	return 0;
}

int lama_verify_batch(const struct lama_sig_item *items, size_t count, int *results)
{
	size_t i, bad = 0;

	/* libsodium has no batch verification; one by one is what it costs. */
	for (i = 0; i < count; i++) {
		const struct lama_sig_item *it = &items[i];
		int ok = it->sig && it->pk &&
			 crypto_sign_verify_detached(it->sig, it->msg, it->len, it->pk) == 0;

		if (results)
			results[i] = ok ? 0 : LAMA_ECRYPTO;
		if (!ok)
			bad++;
	}
	if (bad)
		return lama_error(LAMA_ECRYPTO, "%zu of %zu signatures invalid", bad, count);
	return 0;
}

/* --- X25519 --- */

int lama_box_keypair(uint8_t pk[LAMA_BOX_PK_BYTES], uint8_t sk[LAMA_BOX_SK_BYTES])
{
	if (crypto_box_keypair(pk, sk) != 0)
		return lama_error(LAMA_ECRYPTO, "box key generation failed");
	return 0;
}

int lama_box_public(uint8_t pk[LAMA_BOX_PK_BYTES], const uint8_t sk[LAMA_BOX_SK_BYTES])
{
	if (crypto_scalarmult_base(pk, sk) != 0)
		return lama_error(LAMA_ECRYPTO, "not a usable box secret key");
	return 0;
}

int lama_seal(uint8_t *out, const void *msg, size_t n, const uint8_t pk[LAMA_BOX_PK_BYTES])
{
	/* libsodium aborts past its maximum; we refuse instead. */
	if (n > crypto_box_MESSAGEBYTES_MAX - crypto_box_SEALBYTES)
		return lama_error(LAMA_ELIMIT, "message too long to seal");
	if (crypto_box_seal(out, msg, n, pk) != 0)
		return lama_error(LAMA_ECRYPTO, "sealing failed: unusable public key");
	return 0;
}

int lama_seal_open(uint8_t *out, const uint8_t *in, size_t n,
		   const uint8_t pk[LAMA_BOX_PK_BYTES], const uint8_t sk[LAMA_BOX_SK_BYTES])
{
	if (n < LAMA_SEAL_OVERHEAD)
		return lama_error(LAMA_ECRYPTO, "sealed box too short");
	if (crypto_box_seal_open(out, in, n, pk, sk) != 0) {
		/* libsodium verifies before decrypting; zeroing makes the
		 * contract the same as lama_aead_open's. */
		lama_wipe(out, n - LAMA_SEAL_OVERHEAD);
		return lama_error(LAMA_ECRYPTO, "sealed box failed authentication");
	}
	return 0;
}

int lama_box(uint8_t *out, const void *msg, size_t n,
	     const uint8_t recipient_pk[LAMA_BOX_PK_BYTES],
	     const uint8_t sender_sk[LAMA_BOX_SK_BYTES])
{
	if (n > crypto_box_MESSAGEBYTES_MAX - crypto_box_NONCEBYTES)
		return lama_error(LAMA_ELIMIT, "message too long to box");
	/* 24 random bytes never repeat in practice, so no nonce state. */
	randombytes_buf(out, crypto_box_NONCEBYTES);
	if (crypto_box_easy(out + crypto_box_NONCEBYTES, msg, n, out, recipient_pk,
			    sender_sk) != 0)
		return lama_error(LAMA_ECRYPTO, "boxing failed: unusable public key");
	return 0;
}

int lama_box_open(uint8_t *out, const uint8_t *in, size_t n,
		  const uint8_t sender_pk[LAMA_BOX_PK_BYTES],
		  const uint8_t recipient_sk[LAMA_BOX_SK_BYTES])
{
	if (n < LAMA_BOX_OVERHEAD)
		return lama_error(LAMA_ECRYPTO, "box too short");
	if (crypto_box_open_easy(out, in + crypto_box_NONCEBYTES, n - crypto_box_NONCEBYTES, in,
				 sender_pk, recipient_sk) != 0) {
		lama_wipe(out, n - LAMA_BOX_OVERHEAD);
		return lama_error(LAMA_ECRYPTO, "box failed authentication");
	}
	return 0;
}

int lama_kx_client(uint8_t rx[LAMA_KX_SESSION_BYTES], uint8_t tx[LAMA_KX_SESSION_BYTES],
		   const uint8_t client_pk[32], const uint8_t client_sk[32],
		   const uint8_t server_pk[32])
{
	if (crypto_kx_client_session_keys(rx, tx, client_pk, client_sk, server_pk) != 0)
		return lama_error(LAMA_ECRYPTO, "key exchange failed: unusable server key");
	return 0;
}

int lama_kx_server(uint8_t rx[LAMA_KX_SESSION_BYTES], uint8_t tx[LAMA_KX_SESSION_BYTES],
		   const uint8_t server_pk[32], const uint8_t server_sk[32],
		   const uint8_t client_pk[32])
{
	if (crypto_kx_server_session_keys(rx, tx, server_pk, server_sk, client_pk) != 0)
		return lama_error(LAMA_ECRYPTO, "key exchange failed: unusable client key");
	return 0;
}

/* --- AEAD --- */

/* Nonces come from a small per-thread pool of random bytes: one getrandom
 * call per 40 nonces instead of one each, which shows when thousands of
 * small rows are sealed. Nonces are public (stored beside the ciphertext),
 * so knowing the pool reveals nothing; what matters is never reusing one,
 * so a forked child throws its inherited copy away. Keys never come from
 * here (lama_random). */
#define NONCE_POOL 40
static _Thread_local struct {
	uint8_t bytes[NONCE_POOL * LAMA_AEAD_NONCE_BYTES];
	size_t used; /* 0 = empty (all used) */
} nonce_pool;
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;

static void nonce_pool_forget(void)
{
	nonce_pool.used = 0;
	sodium_memzero(nonce_pool.bytes, sizeof(nonce_pool.bytes));
}

static void nonce_pool_register(void)
{
	pthread_atfork(NULL, NULL, nonce_pool_forget);
}

static void nonce_fill(uint8_t out[LAMA_AEAD_NONCE_BYTES])
{
	pthread_once(&nonce_once, nonce_pool_register);
	if (nonce_pool.used == 0) {
		randombytes_buf(nonce_pool.bytes, sizeof(nonce_pool.bytes));
		nonce_pool.used = sizeof(nonce_pool.bytes);
	}
	nonce_pool.used -= LAMA_AEAD_NONCE_BYTES;
	memcpy(out, nonce_pool.bytes + nonce_pool.used, LAMA_AEAD_NONCE_BYTES);
	/* a nonce handed out is gone from the pool */
	sodium_memzero(nonce_pool.bytes + nonce_pool.used, LAMA_AEAD_NONCE_BYTES);
}

int lama_aead_seal(uint8_t *out, const void *msg, size_t n, const void *ad, size_t adlen,
		   const uint8_t key[LAMA_KEY_BYTES])
{
	if (n > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX - LAMA_AEAD_NONCE_BYTES)
		return lama_error(LAMA_ELIMIT, "message too long to encrypt");
	/* A random 192-bit nonce is safe for any number of messages per key. */
	nonce_fill(out);
	(void)crypto_aead_xchacha20poly1305_ietf_encrypt(out + LAMA_AEAD_NONCE_BYTES, NULL, msg, n,
							 ad, adlen, NULL, out, key);
	return 0;
}

int lama_aead_open(uint8_t *out, const uint8_t *in, size_t n, const void *ad, size_t adlen,
		   const uint8_t key[LAMA_KEY_BYTES])
{
	/* On failure libsodium zeroes out, so no unauthenticated plaintext
	 * is left behind. */
	if (n < LAMA_AEAD_OVERHEAD ||
	    crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in + LAMA_AEAD_NONCE_BYTES,
						       n - LAMA_AEAD_NONCE_BYTES, ad, adlen, in,
						       key) != 0)
		return lama_error(LAMA_ECRYPTO, "decryption failed authentication");
	return 0;
}

/* --- Streams --- */

_Static_assert(sizeof(struct lama_stream) == sizeof(crypto_secretstream_xchacha20poly1305_state),
	       "stream state");
_Static_assert(_Alignof(crypto_secretstream_xchacha20poly1305_state) == 1, "state alignment");
_Static_assert(LAMA_STREAM_HEADER_BYTES == crypto_secretstream_xchacha20poly1305_HEADERBYTES,
	       "stream header");
_Static_assert(LAMA_STREAM_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES, "abytes");
_Static_assert(LAMA_STREAM_TAG_MESSAGE == crypto_secretstream_xchacha20poly1305_TAG_MESSAGE &&
		       LAMA_STREAM_TAG_FINAL == crypto_secretstream_xchacha20poly1305_TAG_FINAL,
	       "tags");
_Static_assert(LAMA_KEY_BYTES == crypto_secretstream_xchacha20poly1305_KEYBYTES, "stream key");

#define SS(st) ((crypto_secretstream_xchacha20poly1305_state *)(void *)(st)->b)

void lama_stream_init_push(struct lama_stream *st, uint8_t header[LAMA_STREAM_HEADER_BYTES],
			   const uint8_t key[LAMA_KEY_BYTES])
{
	crypto_secretstream_xchacha20poly1305_init_push(SS(st), header, key);
}

int lama_stream_push(struct lama_stream *st, uint8_t *out, const void *in, size_t n,
		     const void *ad, size_t adlen, uint8_t tag)
{
	if (tag != LAMA_STREAM_TAG_MESSAGE && tag != LAMA_STREAM_TAG_FINAL)
		return lama_error(LAMA_EINVAL, "stream: unknown tag %u", tag);
	if (n > crypto_secretstream_xchacha20poly1305_MESSAGEBYTES_MAX)
		return lama_error(LAMA_ELIMIT, "stream: chunk too long");
	if (crypto_secretstream_xchacha20poly1305_push(SS(st), out, NULL, in, n, ad, adlen, tag))
		return lama_error(LAMA_ECRYPTO, "stream: cannot encrypt");
	return 0;
}

int lama_stream_init_pull(struct lama_stream *st, const uint8_t header[LAMA_STREAM_HEADER_BYTES],
			  const uint8_t key[LAMA_KEY_BYTES])
{
	if (crypto_secretstream_xchacha20poly1305_init_pull(SS(st), header, key))
		return lama_error(LAMA_ECRYPTO, "stream: bad header");
	return 0;
}

int lama_stream_pull(struct lama_stream *st, uint8_t *out, uint8_t *tag, const uint8_t *in,
		     size_t n, const void *ad, size_t adlen)
{
	/* libsodium advances the state only on success, so a failed chunk
	 * leaves the stream where it was */
	if (n < LAMA_STREAM_ABYTES ||
	    crypto_secretstream_xchacha20poly1305_pull(SS(st), out, NULL, tag, in, n, ad, adlen))
		return lama_error(LAMA_ECRYPTO, "stream: a chunk failed authentication");
	return 0;
}

/* --- Keys from keys and passwords --- */

struct lama_kdf_params lama_kdf_moderate(void)
{
	struct lama_kdf_params p = { crypto_pwhash_OPSLIMIT_MODERATE,
				     crypto_pwhash_MEMLIMIT_MODERATE };
	return p;
}

struct lama_kdf_params lama_kdf_interactive(void)
{
	struct lama_kdf_params p = { crypto_pwhash_OPSLIMIT_INTERACTIVE,
				     crypto_pwhash_MEMLIMIT_INTERACTIVE };
	return p;
}

struct lama_kdf_params lama_kdf_min(void)
{
	struct lama_kdf_params p = { crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN };
	return p;
}

int lama_pwhash(uint8_t key[LAMA_KEY_BYTES], const char *pw, size_t pwlen,
		const uint8_t salt[LAMA_SALT_BYTES], const struct lama_kdf_params *p)
{
	int rc = 0;

	if (!p || p->opslimit < crypto_pwhash_OPSLIMIT_MIN || p->opslimit > LAMA_KDF_OPSLIMIT_MAX ||
	    p->memlimit < crypto_pwhash_MEMLIMIT_MIN || p->memlimit > LAMA_KDF_MEMLIMIT_MAX) {
		rc = lama_error(LAMA_EINVAL, "password hashing parameters out of range");
		goto out;
	}
	if (pwlen > crypto_pwhash_PASSWD_MAX) {
		rc = lama_error(LAMA_EINVAL, "password too long");
		goto out;
	}
	/* Our limits are inside libsodium's, so failure here means the
	 * memory could not be allocated. */
	if (crypto_pwhash(key, LAMA_KEY_BYTES, pw ? pw : "", pw ? pwlen : 0, salt, p->opslimit,
			  (size_t)p->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
		rc = lama_error(LAMA_ENOMEM, "password hashing could not get %llu bytes",
				(unsigned long long)p->memlimit);
out:
	if (rc)
		sodium_memzero(key, LAMA_KEY_BYTES);
	return rc;
}

void lama_kdf_derive(uint8_t sub[LAMA_KEY_BYTES], uint64_t id, const char ctx[8],
		     const uint8_t master[LAMA_KEY_BYTES])
{
	/* Fails only for subkey lengths outside 16..64; ours is fixed. */
	(void)crypto_kdf_derive_from_key(sub, LAMA_KEY_BYTES, id, ctx, master);
}

void lama_keyed_hash(uint8_t out[32], const void *msg, size_t n, const uint8_t key[LAMA_KEY_BYTES])
{
	(void)crypto_generichash(out, 32, msg, n, key, LAMA_KEY_BYTES);
}

/* --- Base64 --- */

size_t lama_base64_len(size_t n)
{
	return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
}

void lama_base64_encode(char *out, const void *in, size_t n)
{
	sodium_bin2base64(out, lama_base64_len(n), in, n, sodium_base64_VARIANT_ORIGINAL);
}

int lama_base64_decode(void *out, size_t outmax, size_t *outlen, const char *in, size_t inlen)
{
	size_t len = 0, need;

	if (outlen)
		*outlen = 0;
	/* Padded base64 comes in whole quads. The size check is ours because
	 * libsodium's errno does not tell "too long" from "padding missing". */
	if (inlen % 4)
		return lama_error(LAMA_EINVAL, "invalid base64");
	need = inlen / 4 * 3;
	if (inlen && in[inlen - 1] == '=')
		need -= (inlen > 1 && in[inlen - 2] == '=') ? 2 : 1;
	if (need > outmax)
		return lama_error(LAMA_ELIMIT, "base64 value longer than %zu bytes", outmax);
	/* b64_end NULL: trailing garbage is an error, not a silent stop.
	 * libsodium also rejects non-zero padding bits, so each value has
	 * exactly one accepted encoding. */
	if (sodium_base642bin(out, outmax, in, inlen, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return lama_error(LAMA_EINVAL, "invalid base64");
	if (outlen)
		*outlen = len;
	return 0;
}
