/* keychain.h: one user's master key and the keys that come from it.
 *
 *   password --Argon2id(salt, params)--> wrapping key
 *   wrapping key --AEAD--> master key (stored wrapped: lama_master_wrap)
 *   master key --crypto_kdf--> subkeys (lama_keychain_subkey, and the
 *                              keychain's own wrap key, context "lamakeys")
 *
 * A lama_keychain holds the master key in secure memory (guard pages,
 * mlock'd, read-only after creation) and never hands it out; callers get
 * derived subkeys or wrapped/unwrapped secrets. It does not change after
 * creation, so any number of threads may use one keychain at once.
 *
 * Returns 0 or a negative LAMA_E* code with a message (util/err.h). */
#ifndef LAMA_KEYCHAIN_H
#define LAMA_KEYCHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

struct lama_buf;

typedef struct lama_keychain lama_keychain;

/* Bounds on what lama_keychain_wrap accepts: names are short labels
 * ("device-sign", "inbox-box"), secrets are keys. */
#define LAMA_KEYCHAIN_NAME_MAX 255
#define LAMA_KEYCHAIN_SECRET_MAX 65536
/* A wrapped secret is version(1) || nonce || ciphertext || tag. */
#define LAMA_KEYCHAIN_WRAP_OVERHEAD (1 + LAMA_AEAD_OVERHEAD)

/* The keychain's own context; lama_keychain_subkey refuses it so no caller
 * can obtain the key that wraps stored secrets. */
#define LAMA_KEYCHAIN_WRAP_CTX "lamakeys"

/* Creates a keychain holding a copy of master. The caller keeps ownership of
 * `master` and should wipe it (lama_wipe) or free it (lama_secure_free) once
 * this returns. On success *out is owned by the caller, released with
 * lama_keychain_free; on failure *out is NULL. LAMA_ENOMEM. */
int lama_keychain_new(lama_keychain **out, const uint8_t master[LAMA_KEY_BYTES]) LAMA_MUST_CHECK;

/* Wipes the keys and frees the keychain. NULL is fine. */
void lama_keychain_free(lama_keychain *kc);

/* Encrypts secret[0..n) for storage and APPENDS the result,
 * n + LAMA_KEYCHAIN_WRAP_OVERHEAD bytes, to out (which the caller owns;
 * left unchanged on failure). `name` (a NUL-terminated label of 1 to
 * LAMA_KEYCHAIN_NAME_MAX bytes) is authenticated with it, so a wrapped
 * secret only unwraps under the same name and the same master key.
 * LAMA_EINVAL for a bad name or n outside 1..LAMA_KEYCHAIN_SECRET_MAX;
 * LAMA_ENOMEM/LAMA_ELIMIT from the buffer. */
int lama_keychain_wrap(const lama_keychain *kc, const char *name, const void *secret, size_t n,
		       struct lama_buf *out) LAMA_MUST_CHECK;

/* Reverses lama_keychain_wrap: writes exactly expected_len bytes to
 * secret_out (caller-owned; use lama_secure_alloc for long-lived secrets).
 * LAMA_ECRYPTO if in was altered, was wrapped under another name or master
 * key, or does not hold expected_len bytes; secret_out is then zeroed.
 * LAMA_EINVAL for a bad name. */
int lama_keychain_unwrap(const lama_keychain *kc, const char *name, const uint8_t *in, size_t n,
			 void *secret_out, size_t expected_len) LAMA_MUST_CHECK;

/* Derives subkey `id` for an 8-character purpose context (e.g. "lamastor"
 * for storage encryption, "lamaindx" for index names) into out, which the
 * caller owns and wipes. The same (id, ctx) always gives the same key for
 * this master key; different ones give unrelated keys. LAMA_EINVAL for the
 * reserved context LAMA_KEYCHAIN_WRAP_CTX (out is then zeroed). */
int lama_keychain_subkey(const lama_keychain *kc, uint64_t id, const char ctx[8],
			 uint8_t out[LAMA_KEY_BYTES]) LAMA_MUST_CHECK;

/* --- The master key under a password (used by accounts) --- */

/* Size of a password-wrapped master key: nonce || ciphertext || tag. */
#define LAMA_MASTER_WRAPPED_BYTES (LAMA_KEY_BYTES + LAMA_AEAD_OVERHEAD)

/* Wraps master under a key derived from pw with Argon2id (params p and a
 * fresh random salt written to salt_out). ad (may be NULL if adlen is 0),
 * e.g. the account name, is authenticated but not stored, and must be given
 * again to unwrap. The caller stores salt_out, p and out; none is secret.
 * The wrapping key lives in secure memory and is wiped before returning.
 * LAMA_EINVAL/LAMA_ENOMEM from lama_pwhash. */
int lama_master_wrap(const uint8_t master[LAMA_KEY_BYTES], const char *pw, size_t pwlen,
		     const struct lama_kdf_params *p, uint8_t salt_out[LAMA_SALT_BYTES],
		     uint8_t out[LAMA_MASTER_WRAPPED_BYTES], const void *ad,
		     size_t adlen) LAMA_MUST_CHECK;

/* Recovers the master key into master_out (caller-owned; prefer
 * lama_secure_alloc memory, or lama_keychain_unlock below). LAMA_EAUTH if
 * the password is wrong -- which cannot be told apart from altered
 * in/salt/params/ad -- and master_out is then zeroed. */
int lama_master_unwrap(uint8_t master_out[LAMA_KEY_BYTES], const char *pw, size_t pwlen,
		       const struct lama_kdf_params *p, const uint8_t salt[LAMA_SALT_BYTES],
		       const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad,
		       size_t adlen) LAMA_MUST_CHECK;

/* lama_master_wrap with the wrapping key made elsewhere (lama_pwhash of
 * the password with a fresh salt the caller keeps): a crypto worker. */
int lama_master_wrap_key(const uint8_t master[LAMA_KEY_BYTES], const uint8_t wkey[LAMA_KEY_BYTES],
			 uint8_t out[LAMA_MASTER_WRAPPED_BYTES], const void *ad,
			 size_t adlen) LAMA_MUST_CHECK;

/* The same from the wrapping key the password's Argon2id made (lama_pwhash
 * with the record's salt and cost), computed elsewhere: a crypto worker,
 * so login does not stall the main loop. */
int lama_master_unwrap_key(uint8_t master_out[LAMA_KEY_BYTES], const uint8_t wkey[LAMA_KEY_BYTES],
			   const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad,
			   size_t adlen) LAMA_MUST_CHECK;
int lama_keychain_unlock_key(lama_keychain **out, const uint8_t wkey[LAMA_KEY_BYTES],
			     const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad,
			     size_t adlen) LAMA_MUST_CHECK;

/* lama_master_unwrap straight into a new keychain, so the master key never
 * sits in caller memory. *out as for lama_keychain_new. */
int lama_keychain_unlock(lama_keychain **out, const char *pw, size_t pwlen,
			 const struct lama_kdf_params *p, const uint8_t salt[LAMA_SALT_BYTES],
			 const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad,
			 size_t adlen) LAMA_MUST_CHECK;

#endif
