/* ops_trust.c: chain_verify, the crypto worker's op over the user's
 * archive (docs/workers.md#crypto): lama_trust_verify or
 * lama_trust_affirmed for each item, against the root the task names. */
#include <math.h>
#include <string.h>

#include "trust/trust.h"
#include "util/err.h"
#include "worker/frame.h"
#include "worker/ops.h"
#include "worker/warchive.h"

#define CHAIN_MSG_MAX 255 /* bytes of a reason's text in the output */

enum { CHECK_CERT = 1, CHECK_AFFIRMED = 2 };

/* handle, person[32], u32 nkeys (1..4), nkeys x pk[32], u64 now (ms),
 * u32 count, count x (u8 what, hash[32]) -> count x (u8 reason,
 * u8 truncated, hash[32] issuer if valid else the failing link, u8 len,
 * the message) */
int lama_worker_trust_chain_verify(const void *in, size_t n, struct lama_buf *out)
{
	struct lama_rd r = { in, n, "chain_verify" };
	struct lama_trust_root root = { 0 };
	struct lama_warchive_ref ref;
	const uint8_t *p, *items;
	lama_session *s;
	uint32_t nkeys, count;
	uint64_t now;
	int rc;

	/* the whole input is checked before the archive is opened */
	if ((rc = lama_warchive_read(&r, &ref)) ||
	    (rc = lama_rd_bytes(&r, LAMA_HASH_BYTES, &p, "the root's person")))
		return rc;
	memcpy(root.person.b, p, LAMA_HASH_BYTES);
	if ((rc = lama_rd_u32(&r, &nkeys, "the number of root keys")))
		return rc;
	if (nkeys < 1 || nkeys > LAMA_TRUST_ROOT_KEYS)
		return lama_error(LAMA_EINVAL, "chain_verify: %u root keys (1 to %d)", nkeys,
				  LAMA_TRUST_ROOT_KEYS);
	if ((rc = lama_rd_bytes(&r, (size_t)nkeys * LAMA_SIGN_PK_BYTES, &p, "the root keys")))
		return rc;
	root.nkeys = nkeys;
	memcpy(root.keys, p, (size_t)nkeys * LAMA_SIGN_PK_BYTES);
	if ((rc = lama_rd_u64(&r, &now, "the time")) || (rc = lama_rd_u32(&r, &count, "the count")))
		return rc;
	/* JavaScript's dates end at 8.64e15 ms */
	if (now > 8640000000000000ull)
		return lama_error(LAMA_EINVAL, "chain_verify: a time past any date");
	if (count > LAMA_WORKER_BATCH_MAX)
		return lama_error(LAMA_ELIMIT, "chain_verify: %u items (at most %d)", count,
				  LAMA_WORKER_BATCH_MAX);
	if ((size_t)count * (1 + LAMA_HASH_BYTES) != r.left)
		return lama_error(LAMA_EINVAL, "chain_verify: %u items are not %zu bytes", count,
				  r.left);
	if ((rc = lama_rd_bytes(&r, r.left, &items, "the items")))
		return rc;
	for (uint32_t i = 0; i < count; i++)
		if (items[i * (1 + LAMA_HASH_BYTES)] != CHECK_CERT &&
		    items[i * (1 + LAMA_HASH_BYTES)] != CHECK_AFFIRMED)
			return lama_error(LAMA_EINVAL, "chain_verify: item %u asks for check %u (1 a certificate, 2 an affirmed object)",
					  i, items[i * (1 + LAMA_HASH_BYTES)]);
	if ((rc = lama_warchive_open(&ref, &s)))
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *it = items + (size_t)i * (1 + LAMA_HASH_BYTES);
		struct lama_trust_result res;
		uint8_t head[2 + LAMA_HASH_BYTES + 1];
		lama_hash h;
		size_t ml;

		memcpy(h.b, it + 1, LAMA_HASH_BYTES);
		if (it[0] == CHECK_CERT)
			rc = lama_trust_verify(lama_session_archive(s), &root, (double)now, &h, &res);
		else
			rc = lama_trust_affirmed(lama_session_archive(s), &root, (double)now, &h, &res);
		/* the archive failed (I/O, memory, damage): no answer at all */
		if (rc)
			return rc;
		ml = strnlen(res.message, CHAIN_MSG_MAX);
		head[0] = (uint8_t)res.reason;
		head[1] = res.truncated != 0;
		memcpy(head + 2, (res.reason == LAMA_TRUST_VALID ? &res.issuer : &res.link)->b,
		       LAMA_HASH_BYTES);
		head[2 + LAMA_HASH_BYTES] = (uint8_t)ml;
		if ((rc = lama_buf_add(out, head, sizeof(head))) ||
		    (rc = lama_buf_add(out, res.message, ml)))
			return rc;
	}
	return 0;
}
