/* ops_crypto.c: the "crypto" worker's ops (docs/workers.md#crypto): kdf,
 * sign_batch, verify_batch, seal, open, over src/crypto; stream_push,
 * stream_pull (crypto.h's secretstream, the backup's format) and
 * blob_seal, blob_open (the store's BLOB chunks, store.h's chunk pair).
 * The chunk ops keep nothing between tasks: a stream's state comes in
 * with each task and goes back with its output, so any worker, also one
 * started after another died, can take the next chunks. */
#include <string.h>

#include "account/account.h" /* LAMA_PATH_MAX */
#include "crypto/crypto.h"
#include "store/store.h"
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

int lama_rd_u8(struct lama_rd *r, uint8_t *v, const char *what)
{
	const uint8_t *p;
	int rc = lama_rd_bytes(r, 1, &p, what);

	if (!rc)
		*v = *p;
	return rc;
}

int lama_rd_count(struct lama_rd *r, uint32_t *count, size_t min_item, const char *what)
{
	int rc = lama_rd_u32(r, count, what);

	if (rc)
		return rc;
	if (*count > LAMA_WORKER_BATCH_MAX)
		return lama_error(LAMA_ELIMIT, "%s: %u items (at most %d)", r->op, *count,
				  LAMA_WORKER_BATCH_MAX);
	/* a count the input cannot hold is refused before any allocation */
	if (*count > r->left / min_item)
		return lama_error(LAMA_EINVAL, "%s: %u items do not fit in %zu bytes", r->op,
				  *count, r->left);
	return 0;
}

int lama_rd_path(struct lama_rd *r, const uint8_t **path, uint32_t *n)
{
	int rc;

	if ((rc = lama_rd_u32(r, n, "the path's length")))
		return rc;
	if (*n == 0 || *n >= LAMA_PATH_MAX)
		return lama_error(LAMA_EINVAL, "%s: a path of %u bytes", r->op, *n);
	if ((rc = lama_rd_bytes(r, *n, path, "the path")))
		return rc;
	if ((*path)[0] != '/' || memchr(*path, 0, *n))
		return lama_error(LAMA_EINVAL, "%s: the path must be absolute, without NUL", r->op);
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
	    (rc = lama_rd_count(r, &count, 4, "the count")) ||
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

	if ((rc = lama_rd_count(r, &count, item, "the count")))
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
		return lama_error(LAMA_ELIMIT, "%s: the result would pass %zu bytes", r->op, out->max);
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

/* --- streams: the carried state is lama_stream's bytes || u8 ended --- */

#define STATE_BYTES (LAMA_STREAM_STATE_BYTES + 1)

/* One chunk of a batch, pointing into the input. */
struct chunk {
	uint8_t tag; /* stream: the tag; blob: the last flag */
	const uint8_t *ad, *data;
	uint32_t adlen, len;
};

/* Reads the state or starts a stream: push takes key[32], pull key[32]
 * || header[24]; both take state[STATE_BYTES] to go on. *header (push,
 * a new stream) is where the new header goes. */
static int stream_begin(struct lama_rd *r, struct lama_stream *st, int *ended, int push,
			const uint8_t **key, const uint8_t **header)
{
	const uint8_t *p;
	int rc;

	*key = *header = NULL;
	*ended = 0;
	if ((rc = lama_rd_bytes(r, 1, &p, "the start flag")))
		return rc;
	if (*p > 1)
		return lama_error(LAMA_EINVAL, "%s: the start flag is %u, not 0 or 1", r->op, *p);
	if (*p == 1) {
		if ((rc = lama_rd_bytes(r, LAMA_KEY_BYTES, key, "the key")))
			return rc;
		if (!push && (rc = lama_rd_bytes(r, LAMA_STREAM_HEADER_BYTES, header, "the header")))
			return rc;
		return 0;
	}
	if ((rc = lama_rd_bytes(r, STATE_BYTES, &p, "the state")))
		return rc;
	if (p[LAMA_STREAM_STATE_BYTES] > 1)
		return lama_error(LAMA_EINVAL, "%s: a state that is not one", r->op);
	memcpy(st->b, p, LAMA_STREAM_STATE_BYTES);
	*ended = p[LAMA_STREAM_STATE_BYTES];
	return 0;
}

/* Reads count chunks: push (u8 tag, bytes32 ad, bytes32 data), pull
 * (bytes32 ad, bytes32 data). */
static int stream_chunks(struct lama_rd *r, int push, struct chunk **out, uint32_t *count)
{
	struct chunk *c;
	const uint8_t *p;
	int rc;

	*out = NULL;
	if ((rc = lama_rd_count(r, count, push ? 9 : 8, "the count")))
		return rc;
	c = lama_calloc(*count ? *count : 1, sizeof(*c));
	if (!c)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < *count; i++) {
		if (push) {
			if ((rc = lama_rd_bytes(r, 1, &p, "a tag")))
				goto fail;
			c[i].tag = *p;
			if (*p != LAMA_STREAM_TAG_MESSAGE && *p != LAMA_STREAM_TAG_FINAL) {
				rc = lama_error(LAMA_EINVAL, "%s: chunk %u has tag %u (0 message, 3 final)",
						r->op, i, *p);
				goto fail;
			}
		}
		if ((rc = lama_rd_u32(r, &c[i].adlen, "a length")) ||
		    (rc = lama_rd_bytes(r, c[i].adlen, &c[i].ad, "associated data")) ||
		    (rc = lama_rd_u32(r, &c[i].len, "a length")) ||
		    (rc = lama_rd_bytes(r, c[i].len, &c[i].data, "a chunk")))
			goto fail;
	}
	if ((rc = lama_rd_end(r)))
		goto fail;
	*out = c;
	return 0;
fail:
	lama_free(c);
	return rc;
}

static void put_u32(struct lama_buf *out, uint32_t v)
{
	uint8_t *p = (uint8_t *)out->data + out->len;

	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	out->len += 4;
}

/* Appends the state; after the FINAL chunk the key is gone: zeros || 1. */
static void put_state(struct lama_buf *out, const struct lama_stream *st, int ended)
{
	uint8_t *p = (uint8_t *)out->data + out->len;

	if (ended)
		memset(p, 0, LAMA_STREAM_STATE_BYTES);
	else
		memcpy(p, st->b, LAMA_STREAM_STATE_BYTES);
	p[LAMA_STREAM_STATE_BYTES] = (uint8_t)ended;
	out->len += STATE_BYTES;
}

/* push: start (u8) key[32] | state[53], u32 count, count x (u8 tag,
 * bytes32 ad, bytes32 plaintext) -> state[53], header[24] (a new stream
 * only), count x bytes32 ciphertext.
 * pull: start (u8) key[32] header[24] | state[53], u32 count, count x
 * (bytes32 ad, bytes32 ciphertext) -> state[53], count x (u8 tag,
 * bytes32 plaintext). */
static int op_stream(struct lama_rd *r, struct lama_buf *out, int push)
{
	struct lama_stream *st = lama_secure_alloc(sizeof(*st));
	const uint8_t *key, *header;
	struct chunk *c = NULL;
	uint32_t count;
	size_t need, start = out->len;
	int rc, ended;

	if (!st)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if ((rc = stream_begin(r, st, &ended, push, &key, &header)) ||
	    (rc = stream_chunks(r, push, &c, &count)))
		goto out;
	/* the whole output is sized before any of it is made: one
	 * allocation, no plaintext left behind in a moved buffer */
	need = STATE_BYTES + (push && key ? LAMA_STREAM_HEADER_BYTES : 0) +
	       (size_t)count * (push ? 4 : 5);
	for (uint32_t i = 0; i < count; i++) {
		if (!push && c[i].len < LAMA_STREAM_ABYTES) {
			rc = lama_error(LAMA_ECRYPTO, "%s: chunk %u is %u bytes, too short to be one",
					r->op, i, c[i].len);
			goto out;
		}
		need += push ? c[i].len + LAMA_STREAM_ABYTES : c[i].len - LAMA_STREAM_ABYTES;
	}
	if (need > out->max - out->len) {
		rc = lama_error(LAMA_ELIMIT, "%s: the result would pass %zu bytes", r->op, out->max);
		goto out;
	}
	if ((rc = lama_buf_grow(out, need)))
		goto out;
	out->len += STATE_BYTES; /* filled at the end */
	if (key && push) {
		lama_stream_init_push(st, (uint8_t *)out->data + out->len, key);
		out->len += LAMA_STREAM_HEADER_BYTES;
	} else if (key && (rc = lama_stream_init_pull(st, header, key))) {
		rc = lama_error(LAMA_ECRYPTO, "%s: the header cannot start a stream", r->op);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *p;

		if (ended) {
			rc = lama_error(push ? LAMA_EINVAL : LAMA_ECRYPTO,
					"%s: chunk %u comes after the FINAL one", r->op, i);
			goto out;
		}
		if (push) {
			put_u32(out, c[i].len + LAMA_STREAM_ABYTES);
			p = (uint8_t *)out->data + out->len;
			if ((rc = lama_stream_push(st, p, c[i].data, c[i].len, c[i].ad, c[i].adlen,
						   c[i].tag)))
				goto out;
			out->len += c[i].len + LAMA_STREAM_ABYTES;
			ended = c[i].tag == LAMA_STREAM_TAG_FINAL;
		} else {
			uint8_t tag;

			p = (uint8_t *)out->data + out->len;
			if (lama_stream_pull(st, p + 5, &tag, c[i].data, c[i].len, c[i].ad,
					     c[i].adlen)) {
				rc = lama_error(LAMA_ECRYPTO,
						"%s: chunk %u failed authentication (altered, out of order, "
						"from another stream, or a wrong key or associated data)",
						r->op, i);
				goto out;
			}
			if (tag != LAMA_STREAM_TAG_MESSAGE && tag != LAMA_STREAM_TAG_FINAL) {
				rc = lama_error(LAMA_ECRYPTO, "%s: chunk %u has tag %u", r->op, i, tag);
				goto out;
			}
			p[0] = tag;
			out->len++;
			put_u32(out, c[i].len - LAMA_STREAM_ABYTES);
			out->len += c[i].len - LAMA_STREAM_ABYTES;
			ended = tag == LAMA_STREAM_TAG_FINAL;
		}
	}
	{
		size_t end = out->len;

		out->len = start;
		put_state(out, st, ended);
		out->len = end;
	}
	out->data[out->len] = '\0';
out:
	lama_free(c);
	lama_secure_free(st);
	return rc;
}

/* --- BLOB chunks, the store's format --- */

/* key[32], bid[16], u64 first index, u32 count, count x (u8 last, bytes32
 * data); seal: data is plaintext -> count x bytes32 sealed; open: data is
 * sealed -> count x bytes32 plaintext. Chunk i is at index first + i. */
static int op_blob(struct lama_rd *r, struct lama_buf *out, int seal)
{
	const uint8_t *key, *bid, *p;
	struct chunk *c = NULL;
	uint64_t first;
	uint32_t count;
	size_t need = 0;
	int rc;

	if ((rc = lama_rd_bytes(r, LAMA_KEY_BYTES, &key, "the key")) ||
	    (rc = lama_rd_bytes(r, LAMA_BLOB_GROUP_BYTES, &bid, "the group id")) ||
	    (rc = lama_rd_u64(r, &first, "the first index")) ||
	    (rc = lama_rd_count(r, &count, 5, "the count")))
		return rc;
	if (count && first > UINT64_MAX - (count - 1))
		return lama_error(LAMA_EINVAL, "%s: the indexes pass 2^64", r->op);
	c = lama_calloc(count ? count : 1, sizeof(*c));
	if (!c)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < count; i++) {
		size_t plain;

		if ((rc = lama_rd_bytes(r, 1, &p, "a last flag")))
			goto out;
		if (*p > 1) {
			rc = lama_error(LAMA_EINVAL, "%s: chunk %u's last flag is %u", r->op, i, *p);
			goto out;
		}
		c[i].tag = *p;
		if ((rc = lama_rd_u32(r, &c[i].len, "a length")) ||
		    (rc = lama_rd_bytes(r, c[i].len, &c[i].data, "a chunk")))
			goto out;
		if (i > 0 && c[i - 1].tag) {
			rc = lama_error(LAMA_EINVAL, "%s: chunk %u comes after the last one", r->op, i);
			goto out;
		}
		/* the store's rule: every chunk but the last is full */
		if (!seal && (c[i].len < LAMA_BLOB_CHUNK_OVERHEAD ||
			      c[i].len > LAMA_BLOB_CHUNK + LAMA_BLOB_CHUNK_OVERHEAD)) {
			rc = lama_error(LAMA_ECRYPTO, "%s: chunk %u is %u bytes, not a sealed chunk",
					r->op, i, c[i].len);
			goto out;
		}
		plain = seal ? c[i].len : c[i].len - LAMA_BLOB_CHUNK_OVERHEAD;
		if (plain > LAMA_BLOB_CHUNK || (!c[i].tag && plain != LAMA_BLOB_CHUNK)) {
			rc = lama_error(seal ? LAMA_EINVAL : LAMA_ECRYPTO,
					"%s: chunk %u holds %zu bytes (%zu, or up to that for the last)",
					r->op, i, plain, LAMA_BLOB_CHUNK);
			goto out;
		}
		/* and a BLOB of whole chunks ends with a full one: the store
		 * reads ceil(size / chunk) chunks, so only an empty BLOB (index
		 * 0) has an empty last chunk */
		if (c[i].tag && plain == 0 && first + i > 0) {
			rc = lama_error(seal ? LAMA_EINVAL : LAMA_ECRYPTO,
					"%s: chunk %u (index %llu) is an empty last chunk: only an "
					"empty BLOB, at index 0, has one",
					r->op, i, (unsigned long long)(first + i));
			goto out;
		}
		need += 4 + (seal ? plain + LAMA_BLOB_CHUNK_OVERHEAD : plain);
	}
	if ((rc = lama_rd_end(r)))
		goto out;
	if (need > out->max - out->len) {
		rc = lama_error(LAMA_ELIMIT, "%s: the result would pass %zu bytes", r->op, out->max);
		goto out;
	}
	if ((rc = lama_buf_grow(out, need)))
		goto out;
	for (uint32_t i = 0; i < count; i++) {
		size_t n = seal ? c[i].len + LAMA_BLOB_CHUNK_OVERHEAD
				: c[i].len - LAMA_BLOB_CHUNK_OVERHEAD;
		uint8_t *o;

		put_u32(out, (uint32_t)n);
		o = (uint8_t *)out->data + out->len;
		if (seal)
			rc = lama_blob_chunk_seal(o, c[i].data, c[i].len, key, bid, first + i,
						  c[i].tag);
		else if (lama_blob_chunk_open(o, c[i].data, c[i].len, key, bid, first + i, c[i].tag))
			rc = lama_error(LAMA_ECRYPTO,
					"%s: chunk %u (index %llu) failed authentication (altered, "
					"out of place, or a wrong key)",
					r->op, i, (unsigned long long)(first + i));
		if (rc)
			goto out;
		out->len += n;
	}
	out->data[out->len] = '\0';
out:
	lama_free(c);
	return rc;
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
	if (!strcmp(op, "chain_verify")) /* needs the archive: ops_trust.c */
		return lama_worker_trust_chain_verify(in, n, out);
	if (!strcmp(op, "stream_push"))
		return op_stream(&r, out, 1);
	if (!strcmp(op, "stream_pull"))
		return op_stream(&r, out, 0);
	if (!strcmp(op, "blob_seal"))
		return op_blob(&r, out, 1);
	if (!strcmp(op, "blob_open"))
		return op_blob(&r, out, 0);
	return lama_error(LAMA_ENOTFOUND, "the crypto worker has no op %s", op);
}
