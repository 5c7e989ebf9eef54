/* ops_sync.c: the "sync" worker's ops (docs/workers.md#sync): diff of two
 * sorted hash sets, hash_batch to check received objects. */
#include <string.h>

#include "util/err.h"
#include "util/hash.h"
#include "worker/ops.h"

/* u32 count, count x hash[32], strictly ascending */
static int read_set(struct lama_rd *r, const uint8_t **set, uint32_t *count, const char *name)
{
	int rc = lama_rd_u32(r, count, "a count");

	if (rc)
		return rc;
	if (*count > r->left / LAMA_HASH_BYTES)
		return lama_error(LAMA_EINVAL, "diff: %u hashes of %s do not fit in %zu bytes",
				  *count, name, r->left);
	if ((rc = lama_rd_bytes(r, (size_t)*count * LAMA_HASH_BYTES, set, name)))
		return rc;
	for (uint32_t i = 1; i < *count; i++)
		if (memcmp(*set + (size_t)(i - 1) * LAMA_HASH_BYTES,
			   *set + (size_t)i * LAMA_HASH_BYTES, LAMA_HASH_BYTES) >= 0)
			return lama_error(LAMA_EINVAL, "diff: %s is not sorted strictly ascending (at %u)",
					  name, i);
	return 0;
}

/* One side's missing hashes: u32 count, then the hashes, appended. */
static int add_missing(struct lama_buf *out, const uint8_t *a, uint32_t na, const uint8_t *b,
		       uint32_t nb)
{
	size_t at = out->len;
	uint32_t i = 0, j = 0, k = 0;
	uint8_t cnt[4] = { 0 };
	int rc;

	if ((rc = lama_buf_add(out, cnt, 4)))
		return rc;
	while (i < na) {
		int c = j < nb ? memcmp(a + (size_t)i * 32, b + (size_t)j * 32, 32) : -1;

		if (c < 0) {
			if ((rc = lama_buf_add(out, a + (size_t)i * 32, 32)))
				return rc;
			k++;
			i++;
		} else if (c == 0) {
			i++;
			j++;
		} else {
			j++;
		}
	}
	cnt[0] = (uint8_t)(k >> 24), cnt[1] = (uint8_t)(k >> 16);
	cnt[2] = (uint8_t)(k >> 8), cnt[3] = (uint8_t)k;
	memcpy(out->data + at, cnt, 4);
	return 0;
}

/* set A, set B -> u32 n, the hashes of A not in B; u32 m, of B not in A */
static int op_diff(struct lama_rd *r, struct lama_buf *out)
{
	const uint8_t *a, *b;
	uint32_t na, nb;
	int rc;

	if ((rc = read_set(r, &a, &na, "set A")) || (rc = read_set(r, &b, &nb, "set B")) ||
	    (rc = lama_rd_end(r)))
		return rc;
	if ((rc = add_missing(out, a, na, b, nb)))
		return rc;
	return add_missing(out, b, nb, a, na);
}

/* u32 count, count x (u32 len, bytes) -> count x sha256[32] */
static int op_hash_batch(struct lama_rd *r, struct lama_buf *out)
{
	const uint8_t *p;
	uint32_t count, len;
	int rc;

	if ((rc = lama_rd_u32(r, &count, "the count")))
		return rc;
	if (count > LAMA_WORKER_BATCH_MAX || (size_t)count * 4 > r->left)
		return lama_error(LAMA_EINVAL, "hash_batch: %u items do not fit (at most %d)",
				  count, LAMA_WORKER_BATCH_MAX);
	if ((rc = lama_buf_grow(out, (size_t)count * LAMA_HASH_BYTES)))
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		lama_hash h;

		if ((rc = lama_rd_u32(r, &len, "a length")) ||
		    (rc = lama_rd_bytes(r, len, &p, "an object")))
			return rc;
		lama_sha256(p, len, &h);
		if ((rc = lama_buf_add(out, h.b, sizeof(h.b))))
			return rc;
	}
	return lama_rd_end(r);
}

int lama_worker_ops_sync(const char *op, const void *in, size_t n, struct lama_buf *out)
{
	struct lama_rd r = { in, n, op };

	if (!strcmp(op, "diff"))
		return op_diff(&r, out);
	if (!strcmp(op, "hash_batch"))
		return op_hash_batch(&r, out);
	return lama_error(LAMA_ENOTFOUND, "the sync worker has no op %s", op);
}
