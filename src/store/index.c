/* index.c: the sealed indexes the archive keeps beside the content:
 * reverse maps, version heads and small named records. */
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "store/store_int.h"
#include "util/err.h"
#include "util/mem.h"

#define REF_TYPE_MAX 128 /* with the NUL, as LAMA_TYPE_MAX */

static void type_tag(lama_store *st, const char *type, uint8_t tag[16])
{
	uint8_t full[32];

	store__name(st, 't', type, strlen(type), full);
	memcpy(tag, full, 16);
}

int lama_store_ref_add(lama_store *st, const lama_hash *dst, const char *src_type,
		       const lama_hash *src)
{
	uint8_t ad[80], pt[32 + REF_TYPE_MAX], *ct = NULL;
	size_t tl = strlen(src_type), ctlen;
	sqlite3_stmt *s;
	int rc;

	if (tl == 0 || tl >= REF_TYPE_MAX)
		return lama_error(LAMA_EINVAL, "bad type name for a reverse map");
	store__name(st, 'r', dst->b, 32, ad);
	type_tag(st, src_type, ad + 32);
	store__name(st, 's', src->b, 32, ad + 48);
	memcpy(pt, src->b, 32);
	memcpy(pt + 32, src_type, tl);
	rc = store__seal(st, "ref", ad, sizeof(ad), pt, 32 + tl, 0, &ct, &ctlen);
	if (rc)
		return rc;
	/* The key is (target, type, sequence), not (target, type, source):
	 * a session's rows for one target then sit side by side, so a
	 * thousand messages from one sender touch a few pages, not a thousand.
	 * The sequence starts at a random point per session (no timestamps
	 * on disk); a clash with an older row just moves it elsewhere. Adding
	 * a reference twice makes two rows that lookups report once. */
	for (int attempt = 0;; attempt++) {
		int step;

		s = store__stmt(st, S_REF_PUT);
		sqlite3_bind_blob(s, 1, ad, 32, SQLITE_STATIC);
		sqlite3_bind_blob(s, 2, ad + 32, 16, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)st->ref_seq++);
		sqlite3_bind_blob(s, 4, ad + 48, 32, SQLITE_STATIC);
		sqlite3_bind_blob(s, 5, ct, (int)ctlen, SQLITE_STATIC);
		step = sqlite3_step(s);
		if (step == SQLITE_CONSTRAINT && attempt < 8) {
			sqlite3_reset(s);
			lama_random(&st->ref_seq, sizeof(st->ref_seq));
			st->ref_seq >>= 2;
			continue;
		}
		if (step != SQLITE_DONE)
			rc = store__dberr(st, "storing reverse map");
		sqlite3_reset(s);
		break;
	}
	lama_free(ct);
	return rc;
}

/* Opens one ref row; checks that it is the row its keys say it is. */
int store__ref_open(lama_store *st, const uint8_t dst[32], const void *tag, const void *src,
		    const void *ct, size_t ctlen, char type[REF_TYPE_MAX], lama_hash *h)
{
	uint8_t ad[80], check[32];
	struct lama_buf pt = LAMA_BUF_INIT(32 + REF_TYPE_MAX);
	int rc;

	memcpy(ad, dst, 32);
	memcpy(ad + 32, tag, 16);
	memcpy(ad + 48, src, 32);
	rc = store__unseal(st, "ref", ad, sizeof(ad), ct, ctlen, 0, &pt, "reverse map entry");
	if (rc)
		goto out;
	if (pt.len <= 32 || pt.len >= 32 + REF_TYPE_MAX) {
		rc = lama_error(LAMA_ECORRUPT, "reverse map entry: bad size");
		goto out;
	}
	memcpy(h->b, pt.data, 32);
	memcpy(type, pt.data + 32, pt.len - 32);
	type[pt.len - 32] = '\0';
	store__name(st, 's', h->b, 32, check);
	if (memcmp(check, src, 32) != 0)
		rc = lama_error(LAMA_ECORRUPT, "reverse map entry: names another object");
	type_tag(st, type, check);
	if (!rc && memcmp(check, tag, 16) != 0)
		rc = lama_error(LAMA_ECORRUPT, "reverse map entry: wrong type tag");
out:
	lama_buf_release(&pt);
	return rc;
}

int lama_store_refs_max(lama_store *st, const lama_hash *dst, const char *src_type, size_t max,
			int (*fn)(void *ctx, const char *src_type, const lama_hash *src),
			void *ctx, int *truncated)
{
	uint8_t dname[32], tag[16];
	char type[REF_TYPE_MAX];
	lama_hash src;
	sqlite3_stmt *s;
	size_t rows = 0;
	int rc = 0, step;

	/* Collect first, call later: fn may write to the store, which would
	 * disturb a running statement. Rows are few per target; `max` bounds
	 * what a flood of referrers (from peers) can cost. */
	struct lama_buf found = LAMA_BUF_INIT(LAMA_BUF_MAX);

	if (truncated)
		*truncated = 0;
	store__name(st, 'r', dst->b, 32, dname);
	s = store__stmt(st, src_type ? S_REF_TYPE : S_REF_ALL);
	sqlite3_bind_blob(s, 1, dname, 32, SQLITE_STATIC);
	if (src_type) {
		type_tag(st, src_type, tag);
		sqlite3_bind_blob(s, 2, tag, 16, SQLITE_STATIC);
	}
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (max && rows == max) {
			if (truncated)
				*truncated = 1;
			break;
		}
		if (sqlite3_column_bytes(s, 0) != 16 || sqlite3_column_bytes(s, 1) != 32) {
			rc = lama_error(LAMA_ECORRUPT, "reverse map entry: bad key");
			break;
		}
		rc = store__ref_open(st, dname, sqlite3_column_blob(s, 0), sqlite3_column_blob(s, 1),
			      sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
			      type, &src);
		if (!rc)
			rc = lama_buf_add(&found, src.b, 32);
		if (!rc)
			rc = lama_buf_add(&found, type, strlen(type) + 1);
		if (rc)
			break;
		rows++;
	}
	if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = store__dberr(st, "reading reverse map");
	sqlite3_reset(s);
	for (size_t off = 0; !rc && off < found.len;) {
		memcpy(src.b, found.data + off, 32);
		off += 32;
		rc = fn(ctx, found.data + off, &src);
		off += strlen(found.data + off) + 1;
	}
	lama_buf_release(&found);
	return rc;
}

int lama_store_refs(lama_store *st, const lama_hash *dst, const char *src_type,
		    int (*fn)(void *ctx, const char *src_type, const lama_hash *src),
		    void *ctx)
{
	return lama_store_refs_max(st, dst, src_type, 0, fn, ctx, NULL);
}

int lama_store_ref_has(lama_store *st, const lama_hash *dst, const char *src_type,
		       const lama_hash *src)
{
	uint8_t ad[80];
	char type[REF_TYPE_MAX];
	lama_hash h;
	sqlite3_stmt *s;
	int rc = 0, step;

	if (!*src_type || strlen(src_type) >= REF_TYPE_MAX)
		return lama_error(LAMA_EINVAL, "bad type name for a reverse map");
	store__name(st, 'r', dst->b, 32, ad);
	type_tag(st, src_type, ad + 32);
	store__name(st, 's', src->b, 32, ad + 48);
	s = store__stmt(st, S_REF_HAS);
	sqlite3_bind_blob(s, 1, ad, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, ad + 32, 16, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, ad + 48, 32, SQLITE_STATIC);
	step = sqlite3_step(s);
	/* the row is opened: its seal binds it to the names it sits under */
	if (step == SQLITE_ROW)
		rc = store__ref_open(st, ad, ad + 32, ad + 48, sqlite3_column_blob(s, 0),
				     (size_t)sqlite3_column_bytes(s, 0), type, &h);
	else if (step != SQLITE_DONE)
		rc = store__dberr(st, "reading reverse map");
	sqlite3_reset(s);
	if (rc)
		return rc;
	return step == SQLITE_ROW && lama_hash_eq(&h, src) && !strcmp(type, src_type);
}

int lama_store_heads_get(lama_store *st, const lama_hash *id, lama_hash **heads, size_t *n)
{
	uint8_t key[32];
	struct lama_buf pt = LAMA_BUF_INIT(LAMA_BUF_MAX);
	sqlite3_stmt *s;
	int rc = 0, step;

	*heads = NULL;
	*n = 0;
	store__name(st, 'h', id->b, 32, key);
	s = store__stmt(st, S_HEAD_GET);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	step = sqlite3_step(s);
	if (step == SQLITE_ROW)
		rc = store__unseal(st, "head", key, 32, sqlite3_column_blob(s, 0),
				   (size_t)sqlite3_column_bytes(s, 0), 1, &pt, "version heads");
	else if (step != SQLITE_DONE)
		rc = store__dberr(st, "reading version heads");
	sqlite3_reset(s);
	if (rc || step == SQLITE_DONE)
		goto out;
	if (pt.len < 32 || pt.len % 32 != 0 || memcmp(pt.data, id->b, 32) != 0) {
		rc = lama_error(LAMA_ECORRUPT, "version heads: record names another ID");
		goto out;
	}
	*n = pt.len / 32 - 1;
	*heads = lama_malloc(*n * sizeof(lama_hash));
	if (!*heads) {
		*n = 0;
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*heads, pt.data + 32, *n * 32);
out:
	lama_buf_release(&pt);
	return rc;
}

int lama_store_heads_set(lama_store *st, const lama_hash *id, const lama_hash *heads, size_t n)
{
	uint8_t key[32], *ct = NULL;
	size_t ctlen;
	struct lama_buf pt = LAMA_BUF_INIT(LAMA_BUF_MAX);
	sqlite3_stmt *s;
	int rc;

	if (n > LAMA_BUF_MAX / 32 - 2)
		return lama_error(LAMA_ELIMIT, "too many version heads (%zu)", n);
	store__name(st, 'h', id->b, 32, key);
	rc = lama_buf_add(&pt, id->b, 32);
	if (!rc && n)
		rc = lama_buf_add(&pt, heads, n * 32);
	if (!rc)
		rc = store__seal(st, "head", key, 32, pt.data, pt.len, 1, &ct, &ctlen);
	lama_buf_release(&pt);
	if (rc)
		return rc;
	s = store__stmt(st, S_HEAD_PUT);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, ct, (int)ctlen, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "storing version heads");
	sqlite3_reset(s);
	lama_free(ct);
	return rc;
}

int lama_store_kv_put(lama_store *st, const char *name, const void *data, size_t n)
{
	uint8_t key[32], *ct = NULL;
	size_t ctlen, nl = strlen(name);
	struct lama_buf pt = LAMA_BUF_INIT(LAMA_KV_MAX + 256);
	sqlite3_stmt *s;
	int rc;

	if (nl == 0 || nl > LAMA_KV_NAME_MAX)
		return lama_error(LAMA_EINVAL, "bad record name (%zu bytes)", nl);
	if (n > LAMA_KV_MAX)
		return lama_error(LAMA_ELIMIT, "record %s is too large", name);
	store__name(st, 'k', name, nl, key);
	rc = lama_buf_add(&pt, name, nl + 1);
	if (!rc)
		rc = lama_buf_add(&pt, data, n);
	if (!rc)
		rc = store__seal(st, "kv", key, 32, pt.data, pt.len, 1, &ct, &ctlen);
	lama_buf_release_wipe(&pt);
	if (rc)
		return rc;
	s = store__stmt(st, S_KV_PUT);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, ct, (int)ctlen, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "storing record");
	sqlite3_reset(s);
	lama_free(ct);
	return rc;
}

int lama_store_kv_get(lama_store *st, const char *name, struct lama_buf *out)
{
	uint8_t key[32];
	size_t nl = strlen(name);
	struct lama_buf pt = LAMA_BUF_INIT(LAMA_KV_MAX + 256);
	sqlite3_stmt *s;
	int rc = 0, step;

	store__name(st, 'k', name, nl, key);
	s = store__stmt(st, S_KV_GET);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	step = sqlite3_step(s);
	if (step == SQLITE_ROW)
		rc = store__unseal(st, "kv", key, 32, sqlite3_column_blob(s, 0),
				   (size_t)sqlite3_column_bytes(s, 0), 1, &pt, name);
	else if (step == SQLITE_DONE)
		rc = lama_error(LAMA_ENOTFOUND, "no record %s", name);
	else
		rc = store__dberr(st, "reading record");
	sqlite3_reset(s);
	if (!rc && (pt.len <= nl || memcmp(pt.data, name, nl + 1) != 0))
		rc = lama_error(LAMA_ECORRUPT, "record %s: names another record", name);
	if (!rc)
		rc = lama_buf_add(out, pt.data + nl + 1, pt.len - nl - 1);
	lama_buf_release_wipe(&pt);
	return rc;
}

int lama_store_kv_del(lama_store *st, const char *name)
{
	uint8_t key[32];
	sqlite3_stmt *s;
	int rc = 0;

	store__name(st, 'k', name, strlen(name), key);
	s = store__stmt(st, S_KV_DEL);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "deleting record");
	sqlite3_reset(s);
	return rc;
}
