/* keychain.c: the master key, its subkeys, and secrets wrapped for storage.
 * Everything secret lives in lama_secure_alloc memory or is wiped before
 * the function returns; see docs/crypto.md for the key hierarchy. */
#include "crypto/keychain.h"

#include <string.h>

#include "crypto/crypto.h"
#include "util/buf.h"
#include "util/err.h"

/* Subkey id of the wrap key under LAMA_KEYCHAIN_WRAP_CTX; a new id (with a
 * new format version) is how the wrap key would ever be rotated. */
#define WRAP_KEY_ID 1
/* First byte of every wrapped secret, so the format can change later. */
#define WRAP_VERSION 1

/* Allocated whole in secure memory and read-only once filled in. */
struct lama_keychain {
	uint8_t master[LAMA_KEY_BYTES];
	uint8_t wrap_key[LAMA_KEY_BYTES]; /* derived once, not per call */
};

/* Allocating and finishing are two steps so that lama_keychain_unlock can
 * unwrap the master key straight into secure memory. */
static int keychain_alloc(lama_keychain **out)
{
	*out = lama_secure_alloc(sizeof(**out));
	if (!*out)
		return lama_error(LAMA_ENOMEM, "out of secure memory for a keychain");
	return 0;
}

/* Derives the wrap key and seals the keychain read-only; frees it on
 * failure. */
static int keychain_finish(lama_keychain **out)
{
	lama_keychain *kc = *out;
	int rc;

	lama_kdf_derive(kc->wrap_key, WRAP_KEY_ID, LAMA_KEYCHAIN_WRAP_CTX, kc->master);
	rc = lama_secure_readonly(kc);
	if (rc) {
		lama_keychain_free(kc);
		*out = NULL;
	}
	return rc;
}

int lama_keychain_new(lama_keychain **out, const uint8_t master[LAMA_KEY_BYTES])
{
	int rc = keychain_alloc(out);

	if (rc)
		return rc;
	memcpy((*out)->master, master, LAMA_KEY_BYTES);
	return keychain_finish(out);
}

void lama_keychain_free(lama_keychain *kc)
{
	lama_secure_free(kc); /* sodium_free wipes before unmapping */
}

/* Associated data for a wrapped secret: version || name. The name is the
 * only variable-length part, so the encoding is unambiguous. */
static int wrap_ad(uint8_t ad[1 + LAMA_KEYCHAIN_NAME_MAX], size_t *adlen, const char *name)
{
	size_t len = name ? strnlen(name, LAMA_KEYCHAIN_NAME_MAX + 1) : 0;

	if (len == 0 || len > LAMA_KEYCHAIN_NAME_MAX)
		return lama_error(LAMA_EINVAL, "keychain name must be 1 to %d bytes",
				  LAMA_KEYCHAIN_NAME_MAX);
	ad[0] = WRAP_VERSION;
	memcpy(ad + 1, name, len);
	*adlen = 1 + len;
	return 0;
}

int lama_keychain_wrap(const lama_keychain *kc, const char *name, const void *secret, size_t n,
		       struct lama_buf *out)
{
	uint8_t ad[1 + LAMA_KEYCHAIN_NAME_MAX];
	size_t adlen = 0, total = n + LAMA_KEYCHAIN_WRAP_OVERHEAD;
	uint8_t *p;
	int rc;

	rc = wrap_ad(ad, &adlen, name);
	if (rc)
		return rc;
	if (!secret || n == 0 || n > LAMA_KEYCHAIN_SECRET_MAX)
		return lama_error(LAMA_EINVAL, "keychain secret must be 1 to %d bytes",
				  LAMA_KEYCHAIN_SECRET_MAX);
	rc = lama_buf_grow(out, total);
	if (rc)
		return rc;
	/* Encrypt in place at the end of the buffer: the plaintext is never
	 * copied anywhere that would need wiping. */
	p = (uint8_t *)out->data + out->len;
	p[0] = WRAP_VERSION;
	rc = lama_aead_seal(p + 1, secret, n, ad, adlen, kc->wrap_key);
	if (rc)
		return rc;
	out->len += total;
	out->data[out->len] = '\0';
	return 0;
}

int lama_keychain_unwrap(const lama_keychain *kc, const char *name, const uint8_t *in, size_t n,
			 void *secret_out, size_t expected_len)
{
	uint8_t ad[1 + LAMA_KEYCHAIN_NAME_MAX];
	size_t adlen = 0;
	int rc;

	if (expected_len == 0 || expected_len > LAMA_KEYCHAIN_SECRET_MAX)
		return lama_error(LAMA_EINVAL, "keychain secret must be 1 to %d bytes",
				  LAMA_KEYCHAIN_SECRET_MAX);
	rc = wrap_ad(ad, &adlen, name);
	if (rc)
		goto out;
	if (!in || n != expected_len + LAMA_KEYCHAIN_WRAP_OVERHEAD || in[0] != WRAP_VERSION) {
		rc = lama_error(LAMA_ECRYPTO, "wrapped secret \"%s\" has the wrong size or version",
				name);
		goto out;
	}
	rc = lama_aead_open(secret_out, in + 1, n - 1, ad, adlen, kc->wrap_key);
	if (rc)
		rc = lama_error(LAMA_ECRYPTO, "wrapped secret \"%s\" failed authentication", name);
out:
	if (rc)
		lama_wipe(secret_out, expected_len);
	return rc;
}

int lama_keychain_subkey(const lama_keychain *kc, uint64_t id, const char ctx[8],
			 uint8_t out[LAMA_KEY_BYTES])
{
	if (memcmp(ctx, LAMA_KEYCHAIN_WRAP_CTX, 8) == 0) {
		lama_wipe(out, LAMA_KEY_BYTES);
		return lama_error(LAMA_EINVAL, "subkey context \"%.8s\" is reserved", ctx);
	}
	lama_kdf_derive(out, id, ctx, kc->master);
	return 0;
}

/* --- Password wrapping of the master key --- */

int lama_master_wrap(const uint8_t master[LAMA_KEY_BYTES], const char *pw, size_t pwlen,
		     const struct lama_kdf_params *p, uint8_t salt_out[LAMA_SALT_BYTES],
		     uint8_t out[LAMA_MASTER_WRAPPED_BYTES], const void *ad, size_t adlen)
{
	uint8_t *wkey = lama_secure_alloc(LAMA_KEY_BYTES);
	int rc;

	if (!wkey)
		return lama_error(LAMA_ENOMEM, "out of secure memory");
	/* A fresh salt on every wrap: a password change never reuses a key. */
	lama_random(salt_out, LAMA_SALT_BYTES);
	rc = lama_pwhash(wkey, pw, pwlen, salt_out, p);
	if (rc)
		goto out;
	rc = lama_master_wrap_key(master, wkey, out, ad, adlen);
out:
	lama_secure_free(wkey);
	return rc;
}

int lama_master_wrap_key(const uint8_t master[LAMA_KEY_BYTES], const uint8_t wkey[LAMA_KEY_BYTES],
			 uint8_t out[LAMA_MASTER_WRAPPED_BYTES], const void *ad, size_t adlen)
{
	return lama_aead_seal(out, master, LAMA_KEY_BYTES, ad, adlen, wkey);
}

int lama_master_unwrap(uint8_t master_out[LAMA_KEY_BYTES], const char *pw, size_t pwlen,
		       const struct lama_kdf_params *p, const uint8_t salt[LAMA_SALT_BYTES],
		       const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad, size_t adlen)
{
	uint8_t *wkey = lama_secure_alloc(LAMA_KEY_BYTES);
	int rc;

	if (!wkey) {
		rc = lama_error(LAMA_ENOMEM, "out of secure memory");
		goto out;
	}
	rc = lama_pwhash(wkey, pw, pwlen, salt, p);
	if (rc)
		goto out;
	rc = lama_master_unwrap_key(master_out, wkey, in, ad, adlen);
out:
	lama_secure_free(wkey);
	if (rc)
		lama_wipe(master_out, LAMA_KEY_BYTES);
	return rc;
}

int lama_master_unwrap_key(uint8_t master_out[LAMA_KEY_BYTES], const uint8_t wkey[LAMA_KEY_BYTES],
			   const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad, size_t adlen)
{
	/* A wrong password is by far the likely cause; tampering looks the
	 * same and is reported the same way. */
	if (lama_aead_open(master_out, in, LAMA_MASTER_WRAPPED_BYTES, ad, adlen, wkey) != 0) {
		lama_wipe(master_out, LAMA_KEY_BYTES);
		return lama_error(LAMA_EAUTH, "wrong password");
	}
	return 0;
}

int lama_keychain_unlock_key(lama_keychain **out, const uint8_t wkey[LAMA_KEY_BYTES],
			     const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad, size_t adlen)
{
	int rc = keychain_alloc(out);

	if (rc)
		return rc;
	rc = lama_master_unwrap_key((*out)->master, wkey, in, ad, adlen);
	if (rc) {
		lama_keychain_free(*out);
		*out = NULL;
		return rc;
	}
	return keychain_finish(out);
}

int lama_keychain_unlock(lama_keychain **out, const char *pw, size_t pwlen,
			 const struct lama_kdf_params *p, const uint8_t salt[LAMA_SALT_BYTES],
			 const uint8_t in[LAMA_MASTER_WRAPPED_BYTES], const void *ad, size_t adlen)
{
	int rc = keychain_alloc(out);

	if (rc)
		return rc;
	rc = lama_master_unwrap((*out)->master, pw, pwlen, p, salt, in, ad, adlen);
	if (rc) {
		lama_keychain_free(*out);
		*out = NULL;
		return rc;
	}
	return keychain_finish(out);
}
