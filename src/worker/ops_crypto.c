/* ops_crypto.c: the "crypto" worker's ops (docs/workers.md#crypto): kdf,
 * sign_batch, verify_batch, seal, open, over src/crypto. */
#include <string.h>

#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/ops.h"
#include "worker/warchive.h"

int lama_rd_bytes(struct lama_rd *r, size_t n, const uint8_t **p, const char *what)
{
	if (n > r->left)
		return lama_error(LAMA_EINVAL, "%s: the input ends inside %s", r->op, what);
	*p = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

int lama_rd_u32(struct lama_rd *r, uint32_t *v, const char *what)
{
	const uint8_t *p;
	int rc = lama_rd_bytes(r, 4, &p, what);

	if (!rc)
		*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return rc;
}

int lama_rd_u64(struct lama_rd *r, uint64_t *v, const char *what)
{
	uint32_t hi, lo;
	int rc;

	if ((rc = lama_rd_u32(r, &hi, what)) || (rc = lama_rd_u32(r, &lo, what)))
		return rc;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int lama_rd_end(struct lama_rd *r)
{
	if (r->left)
		return lama_error(LAMA_EINVAL, "%s: %zu bytes after the end of the input", r->op,
				  r->left);
	return 0;
}

static int batch_count(struct lama_rd *r, uint32_t *count, size_t min_item)
{
	int rc = lama_rd_u32(r, count, "the count");

	if (rc)
		return rc;
	if (*count > LAMA_WORKER_BATCH_MAX)
		return lama_error(LAMA_ELIMIT, "%s: %u items (at most %d)", r->op, *count,
				  LAMA_WORKER_BATCH_MAX);
	/* a count the input cannot hold is refused before any allocation */
	if ((size_t)*count * min_item > r->left)
		return lama_error(LAMA_EINVAL, "%s: %u items do not fit in %zu bytes", r->op,
				  *count, r->left);
	return 0;
}

/* u64 opslimit, u64 memlimit, salt[16], password (the rest) -> key[32] */
static int op_kdf(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_kdf_params p;
	const uint8_t *salt, *pw;
	uint8_t key[LAMA_KEY_BYTES];
	size_t pwlen;
	int rc;

	if ((rc = lama_rd_u64(r, &p.opslimit, "opslimit")) ||
	    (rc = lama_rd_u64(r, &p.memlimit, "memlimit")) ||
	    (rc = lama_rd_bytes(r, LAMA_SALT_BYTES, &salt, "the salt")))
		return rc;
	pwlen = r->left;
	if (pwlen > LAMA_WORKER_PW_MAX)
		return lama_error(LAMA_ELIMIT, "kdf: the password is longer than %d bytes",
				  LAMA_WORKER_PW_MAX);
	if ((rc = lama_rd_bytes(r, pwlen, &pw, "the password")))
		return rc;
	if (p.opslimit > LAMA_KDF_OPSLIMIT_MAX || p.memlimit > LAMA_KDF_MEMLIMIT_MAX)
		return lama_error(LAMA_EINVAL, "kdf: parameters above the ceilings");
	rc = lama_pwhash(key, (const char *)pw, pwlen, salt, &p);
	if (!rc)
		rc = lama_buf_add(out, key, sizeof(key));
	lama_wipe(key, sizeof(key));
	return rc;
}

/* sk[64], u32 count, count x (u32 len, msg) -> count x sig[64] */
static int op_sign_batch(struct lama_rd *r, struct lama_buf *out)
{
	const uint8_t *sk, *msg;
	uint32_t count, len;
	int rc;

	if ((rc = lama_rd_bytes(r, LAMA_SIGN_SK_BYTES, &sk, "the secret key")) ||
	    (rc = batch_count(r, &count, 4)) ||
	    (rc = lama_buf_grow(out, (size_t)count * LAMA_SIG_BYTES)))
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		uint8_t sig[LAMA_SIG_BYTES];

		if ((rc = lama_rd_u32(r, &len, "a length")) ||
		    (rc = lama_rd_bytes(r, len, &msg, "a message")))
			return rc;
		lama_sign(sig, msg, len, sk);
		if ((rc = lama_buf_add(out, sig, sizeof(sig))))
			return rc;
	}
	return lama_rd_end(r);
}

/* u32 count, count x (pk[32], sig[64], u32 len, msg) -> count x u8 (1 valid) */
static int op_verify_batch(struct lama_rd *r, struct lama_buf *out)
{
	const size_t item = LAMA_SIGN_PK_BYTES + LAMA_SIG_BYTES + 4;
	struct lama_sig_item *items = NULL;
	int *results = NULL;
	uint32_t count, len;
	int rc;

	if ((rc = batch_count(r, &count, item)))
		return rc;
	items = lama_calloc(count ? count : 1, sizeof(*items));
	results = lama_calloc(count ? count : 1, sizeof(*results));
	if (!items || !results) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *m;

		if ((rc = lama_rd_bytes(r, LAMA_SIGN_PK_BYTES, &items[i].pk, "a public key")) ||
		    (rc = lama_rd_bytes(r, LAMA_SIG_BYTES, &items[i].sig, "a signature")) ||
		    (rc = lama_rd_u32(r, &len, "a length")) ||
		    (rc = lama_rd_bytes(r, len, &m, "a message")))
			goto out;
		items[i].msg = m;
		items[i].len = len;
	}
	if ((rc = lama_rd_end(r)) || (rc = lama_buf_grow(out, count)))
		goto out;
	/* the overall answer is in results: a bad signature is an answer,
	 * not a failure of the task */
	(void)!lama_verify_batch(items, count, results);
	for (uint32_t i = 0; i < count; i++)
		out->data[out->len + i] = results[i] == 0;
	out->len += count;
	out->data[out->len] = '\0';
	rc = 0;
out:
	lama_free(items);
	lama_free(results);
	return rc;
}

/* key[32], u32 adlen, ad, the rest: seal -> nonce || ciphertext || tag,
 * open -> the plaintext (LAMA_ECRYPTO if altered) */
static int op_aead(struct lama_rd *r, struct lama_buf *out, int seal)
{
	const uint8_t *key, *ad, *in;
	uint32_t adlen;
	size_t n, outlen;
	int rc;

	if ((rc = lama_rd_bytes(r, LAMA_KEY_BYTES, &key, "the key")) ||
	    (rc = lama_rd_u32(r, &adlen, "the associated data's length")) ||
	    (rc = lama_rd_bytes(r, adlen, &ad, "the associated data")))
		return rc;
	n = r->left;
	if ((rc = lama_rd_bytes(r, n, &in, "the data")))
		return rc;
	if (!seal && n < LAMA_AEAD_OVERHEAD)
		return lama_error(LAMA_ECRYPTO, "open: %zu bytes are too short to be sealed", n);
	outlen = seal ? n + LAMA_AEAD_OVERHEAD : n - LAMA_AEAD_OVERHEAD;
	if (outlen > out->max - out->len)
		return lama_error(LAMA_ELIMIT, "seal: the result would pass %zu bytes", out->max);
	if ((rc = lama_buf_grow(out, outlen)))
		return rc;
	if (seal)
		rc = lama_aead_seal((uint8_t *)out->data + out->len, in, n, ad, adlen, key);
	else if (lama_aead_open((uint8_t *)out->data + out->len, in, n, ad, adlen, key))
		rc = lama_error(LAMA_ECRYPTO, "open: the data was altered or the key or associated data is wrong");
	if (rc)
		return rc;
	out->len += outlen;
	out->data[out->len] = '\0';
	return 0;
}

int lama_worker_ops_crypto(const char *op, const void *in, size_t n, struct lama_buf *out)
{
	struct lama_rd r = { in, n, op };

	if (!strcmp(op, "kdf"))
		return op_kdf(&r, out);
	if (!strcmp(op, "sign_batch"))
		return op_sign_batch(&r, out);
	if (!strcmp(op, "verify_batch"))
		return op_verify_batch(&r, out);
	if (!strcmp(op, "seal"))
		return op_aead(&r, out, 1);
	if (!strcmp(op, "open"))
		return op_aead(&r, out, 0);
	if (!strcmp(op, "chain_verify")) return lama_worker_trust_chain_verify(in, n, out);
	return lama_error(LAMA_ENOTFOUND, "the crypto worker has no op %s", op);
}
