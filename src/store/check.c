/* check.c: lama check — every row decrypted, re-hashed and matched to its
 * key; every BLOB read through. Nothing is changed. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/err.h"
#include "util/mem.h"

struct checker {
	lama_store *st;
	struct lama_store_check *rep;
	void (*progress)(void *ctx, uint64_t done);
	void *ctx;
	uint64_t done;
	uint64_t chunks; /* chunk rows the BLOBs read through account for */
};

static void bad(struct checker *c, const char *table)
{
	if (!c->rep->bad++)
		snprintf(c->rep->first_bad, sizeof(c->rep->first_bad), "%s: %s", table, lama_errmsg());
}

static void tick(struct checker *c)
{
	if (c->progress && ++c->done % 1000 == 0)
		c->progress(c->ctx, c->done);
}

/* Runs sql and calls row() for each result row. */
static int each_row(struct checker *c, const char *sql, const char *table,
		    int (*row)(struct checker *c, sqlite3_stmt *s), uint64_t *count)
{
	sqlite3_stmt *s;
	int step;

	if (sqlite3_prepare_v2(lama_store_db(c->st), sql, -1, &s, NULL) != SQLITE_OK) {
		store__dberr(c->st, table);
		bad(c, table);
		return 0;
	}
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (row(c, s))
			bad(c, table);
		else
			(*count)++;
		tick(c);
	}
	if (step != SQLITE_DONE) {
		store__dberr(c->st, table);
		bad(c, table);
	}
	sqlite3_finalize(s);
	return 0;
}

static int key32(sqlite3_stmt *s, int col)
{
	return sqlite3_column_bytes(s, col) == 32;
}

static int obj_row(struct checker *c, sqlite3_stmt *s)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc;

	if (!key32(s, 0))
		return lama_error(LAMA_ECORRUPT, "bad key");
	rc = store__obj_open(c->st, sqlite3_column_blob(s, 0), sqlite3_column_blob(s, 1),
			     (size_t)sqlite3_column_bytes(s, 1), NULL, NULL, &b, NULL);
	lama_buf_release_wipe(&b);
	return rc;
}

static int blob_row(struct checker *c, sqlite3_stmt *s)
{
	struct lama_buf pt = LAMA_BUF_INIT(256);
	lama_blob_reader *r = NULL;
	lama_hash h;
	uint8_t name[32], buf[16384];
	size_t got;
	int rc;

	if (!key32(s, 0))
		return lama_error(LAMA_ECORRUPT, "bad key");
	rc = store__unseal(c->st, "blob", sqlite3_column_blob(s, 0), 32, sqlite3_column_blob(s, 1),
			   (size_t)sqlite3_column_bytes(s, 1), 0, &pt, "BLOB record");
	if (!rc && pt.len != 72)
		rc = lama_error(LAMA_ECORRUPT, "BLOB record: bad size");
	if (!rc) {
		memcpy(h.b, pt.data, 32);
		store__name(c->st, 'b', h.b, 32, name);
		if (memcmp(name, sqlite3_column_blob(s, 0), 32) != 0)
			rc = lama_error(LAMA_ECORRUPT, "BLOB record: names another BLOB");
	}
	lama_buf_release(&pt);
	if (!rc)
		rc = lama_blob_open(c->st, &h, &r, NULL);
	if (!rc)
		c->chunks += r->nchunks;
	while (!rc) {
		rc = lama_blob_read(r, buf, sizeof(buf), &got);
		if (!rc && got == 0)
			break;
		c->rep->blob_bytes += got;
	}
	lama_blob_close(r);
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

static int ref_row(struct checker *c, sqlite3_stmt *s)
{
	char type[128];
	lama_hash src;

	if (!key32(s, 0) || sqlite3_column_bytes(s, 1) != 16 || !key32(s, 2))
		return lama_error(LAMA_ECORRUPT, "bad key");
	return store__ref_open(c->st, sqlite3_column_blob(s, 0), sqlite3_column_blob(s, 1),
			       sqlite3_column_blob(s, 2), sqlite3_column_blob(s, 3),
			       (size_t)sqlite3_column_bytes(s, 3), type, &src);
}

static int head_row(struct checker *c, sqlite3_stmt *s)
{
	struct lama_buf pt = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint8_t name[32];
	int rc;

	if (!key32(s, 0))
		return lama_error(LAMA_ECORRUPT, "bad key");
	rc = store__unseal(c->st, "head", sqlite3_column_blob(s, 0), 32, sqlite3_column_blob(s, 1),
			   (size_t)sqlite3_column_bytes(s, 1), 1, &pt, "version heads");
	if (!rc && (pt.len < 32 || pt.len % 32))
		rc = lama_error(LAMA_ECORRUPT, "version heads: bad size");
	if (!rc) {
		store__name(c->st, 'h', pt.data, 32, name);
		if (memcmp(name, sqlite3_column_blob(s, 0), 32) != 0)
			rc = lama_error(LAMA_ECORRUPT, "version heads: names another ID");
	}
	lama_buf_release(&pt);
	return rc;
}

static int kv_row(struct checker *c, sqlite3_stmt *s)
{
	struct lama_buf pt = LAMA_BUF_INIT(LAMA_KV_MAX + 256);
	uint8_t name[32];
	size_t nl;
	int rc;

	if (!key32(s, 0))
		return lama_error(LAMA_ECORRUPT, "bad key");
	rc = store__unseal(c->st, "kv", sqlite3_column_blob(s, 0), 32, sqlite3_column_blob(s, 1),
			   (size_t)sqlite3_column_bytes(s, 1), 1, &pt, "record");
	if (!rc) {
		nl = strnlen(pt.data, pt.len);
		if (nl == pt.len)
			rc = lama_error(LAMA_ECORRUPT, "record: no name");
	}
	if (!rc) {
		store__name(c->st, 'k', pt.data, nl, name);
		if (memcmp(name, sqlite3_column_blob(s, 0), 32) != 0)
			rc = lama_error(LAMA_ECORRUPT, "record: names another record");
	}
	lama_buf_release_wipe(&pt);
	return rc;
}

static int integrity_row(struct checker *c, sqlite3_stmt *s)
{
	const char *msg = (const char *)sqlite3_column_text(s, 0);

	(void)c;
	if (msg && strcmp(msg, "ok") == 0)
		return 0;
	return lama_error(LAMA_ECORRUPT, "database structure: %.100s", msg ? msg : "?");
}

int lama_store_check(lama_store *st, struct lama_store_check *report,
		     void (*progress)(void *ctx, uint64_t done), void *ctx)
{
	struct checker c = { st, report, progress, ctx, 0, 0 };
	uint64_t ignored = 0, chunks = 0, groups = 0;
	sqlite3_stmt *s;

	memset(report, 0, sizeof(*report));
	each_row(&c, "PRAGMA quick_check", "database", integrity_row, &ignored);
	each_row(&c, "SELECT key, val FROM obj", "objects", obj_row, &report->objects);
	each_row(&c, "SELECT key, val FROM blob", "BLOBs", blob_row, &report->blobs);
	each_row(&c, "SELECT dst, tag, src, val FROM ref", "reverse maps", ref_row, &report->refs);
	each_row(&c, "SELECT id, val FROM head", "version heads", head_row, &report->heads);
	each_row(&c, "SELECT k, val FROM kv", "records", kv_row, &report->kv);

	/* Chunks that no BLOB record accounts for mean rows were added
	 * behind lama's back (a crash never leaves any: a BLOB is written in
	 * one transaction). Every BLOB was read through above, so the chunks
	 * each one owns are known: any other row, a stray group or one past a
	 * BLOB's end, is damage. */
	if (report->bad == 0) {
		if (sqlite3_prepare_v2(st->db, "SELECT count(*), count(DISTINCT bid) FROM chunk", -1,
				       &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
			chunks = (uint64_t)sqlite3_column_int64(s, 0);
			groups = (uint64_t)sqlite3_column_int64(s, 1);
		} else {
			store__dberr(st, "counting BLOB chunks");
			bad(&c, "BLOB chunks");
		}
		sqlite3_finalize(s);
		if (report->bad == 0 && (chunks != c.chunks || groups != report->blobs)) {
			lama_error(LAMA_ECORRUPT, "%llu chunks in %llu groups for %llu BLOBs of "
				   "%llu chunks", (unsigned long long)chunks,
				   (unsigned long long)groups, (unsigned long long)report->blobs,
				   (unsigned long long)c.chunks);
			bad(&c, "BLOB chunks");
		}
	}
	if (progress)
		progress(ctx, c.done);
	return report->bad ? lama_error(LAMA_ECORRUPT, "%s", report->first_bad) : 0;
}
