/* store.c: sealed rows in SQLite. Row layouts are in docs/storage.md. */
#include "store/store.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"

#define SCHEMA_VERSION LAMA_STORE_FORMAT
#define PAD_BLOCK 64 /* plaintext is padded to a multiple of this: sizes leak less */
#define KEYCHECK "lama archive v1"

static const char *const stmt_sql[S_COUNT] = {
	[S_OBJ_GET] = "SELECT val FROM obj WHERE key=?1",
	[S_OBJ_PUT] = "INSERT OR IGNORE INTO obj(key,val) VALUES(?1,?2)",
	[S_BLOB_GET] = "SELECT val FROM blob WHERE key=?1",
	[S_BLOB_PUT] = "INSERT OR IGNORE INTO blob(key,val) VALUES(?1,?2)",
	[S_CHUNK_PUT] = "INSERT INTO chunk(bid,idx,val) VALUES(?1,?2,?3)",
	[S_CHUNK_GET] = "SELECT val FROM chunk WHERE bid=?1 AND idx=?2",
	[S_CHUNK_DEL] = "DELETE FROM chunk WHERE bid=?1",
	[S_REF_PUT] = "INSERT INTO ref(dst,tag,seq,src,val) VALUES(?1,?2,?3,?4,?5)",
	[S_REF_ALL] = "SELECT tag,src,min(val) FROM ref WHERE dst=?1 GROUP BY tag,src",
	[S_REF_TYPE] = "SELECT tag,src,min(val) FROM ref WHERE dst=?1 AND tag=?2 GROUP BY src",
	[S_HEAD_GET] = "SELECT val FROM head WHERE id=?1",
	[S_HEAD_PUT] = "INSERT OR REPLACE INTO head(id,val) VALUES(?1,?2)",
	[S_KV_GET] = "SELECT val FROM kv WHERE k=?1",
	[S_KV_PUT] = "INSERT OR REPLACE INTO kv(k,val) VALUES(?1,?2)",
	[S_KV_DEL] = "DELETE FROM kv WHERE k=?1",
	[S_REF_HAS] = "SELECT val FROM ref WHERE dst=?1 AND tag=?2 AND src=?3 LIMIT 1",
	[S_DATA_VERSION] = "PRAGMA data_version",
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB);"
	"CREATE TABLE IF NOT EXISTS obj(key BLOB PRIMARY KEY, val BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS blob(key BLOB PRIMARY KEY, val BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS chunk(bid BLOB, idx INTEGER, val BLOB NOT NULL,"
	" PRIMARY KEY(bid, idx)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS ref(dst BLOB, tag BLOB, seq INTEGER, src BLOB NOT NULL,"
	" val BLOB NOT NULL, PRIMARY KEY(dst, tag, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS head(id BLOB PRIMARY KEY, val BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, val BLOB NOT NULL) WITHOUT ROWID;";

/* ---- small helpers ---- */

int store__dberr(lama_store *st, const char *what)
{
	int code = sqlite3_errcode(st->db);

	if (code == SQLITE_FULL)
		return lama_error(LAMA_EIO, "%s: the disk is full", what);
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return lama_error(LAMA_EBUSY, "%s: the archive is busy", what);
	if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
		return lama_error(LAMA_ECORRUPT, "%s: the database file is damaged (%s)", what,
				  sqlite3_errmsg(st->db));
	return lama_error(LAMA_EIO, "%s: %s", what, sqlite3_errmsg(st->db));
}

sqlite3_stmt *store__stmt(lama_store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Index name of a hash: a keyed PRF of a one-letter domain and the bytes,
 * so the same content hash gives unrelated names in different tables. */
void store__name(const lama_store *st, char domain, const void *data, size_t n,
		 uint8_t out[32])
{
	/* Two SipHash-2-4 PRFs with 128-bit outputs under the two halves of
	 * the index key: a 256-bit keyed name at a tenth of keyed BLAKE2b's
	 * cost, paid on every read and write. SipHash is built for exactly
	 * this (keyed hashing of table keys); the domain byte keeps the names
	 * of different tables apart. */
	uint8_t msg[1 + 256];
	size_t len;

	msg[0] = (uint8_t)domain;
	if (n <= sizeof(msg) - 1) {
		memcpy(msg + 1, data, n);
		len = 1 + n;
	} else {
		/* no caller names anything this long; stay total anyway */
		lama_hash h;

		lama_sha256(data, n, &h);
		msg[0] = (uint8_t)(domain | 0x80);
		memcpy(msg + 1, h.b, 32);
		len = 33;
	}
	crypto_shorthash_siphashx24(out, msg, len, st->keys->index);
	crypto_shorthash_siphashx24(out + 16, msg, len, st->keys->index + 16);
	sodium_memzero(msg, len);
}

/* Seals plaintext (padded) with ad = domain || name; *out is allocated. */
int store__seal(const lama_store *st, const char *domain, const uint8_t *name, size_t namelen,
		const void *pt, size_t n, int pad, uint8_t **out, size_t *outlen)
{
	uint8_t ad[96];
	size_t dl = strlen(domain), padded = n, ptlen;
	uint8_t *buf = NULL, *ct = NULL;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (dl + namelen > sizeof(ad))
		return lama_error(LAMA_EINVAL, "associated data too long");
	memcpy(ad, domain, dl);
	if (namelen)
		memcpy(ad + dl, name, namelen);
	ptlen = pad ? (n / PAD_BLOCK + 1) * PAD_BLOCK : n;
	buf = lama_malloc(ptlen);
	ct = lama_malloc(ptlen + LAMA_AEAD_OVERHEAD);
	if (!buf || !ct) {
		rc = lama_error(LAMA_ENOMEM, "out of memory sealing %zu bytes", n);
		goto out;
	}
	if (n)
		memcpy(buf, pt, n);
	if (pad && sodium_pad(&padded, buf, n, PAD_BLOCK, ptlen) != 0) {
		rc = lama_error(LAMA_EINVAL, "padding failed");
		goto out;
	}
	rc = lama_aead_seal(ct, buf, padded, ad, dl + namelen, st->keys->enc);
	if (rc)
		goto out;
	*out = ct;
	*outlen = padded + LAMA_AEAD_OVERHEAD;
	ct = NULL;
out:
	if (buf)
		sodium_memzero(buf, ptlen);
	lama_free(buf);
	lama_free(ct);
	return rc;
}

/* Opens a sealed value into out (appending); LAMA_ECORRUPT if it fails. */
int store__unseal(const lama_store *st, const char *domain, const uint8_t *name, size_t namelen,
		  const void *ct, size_t n, int pad, struct lama_buf *out, const char *what)
{
	uint8_t ad[96];
	size_t dl = strlen(domain), unpadded;
	size_t start = out->len;
	int rc;

	if (!ct || n < LAMA_AEAD_OVERHEAD || dl + namelen > sizeof(ad))
		return lama_error(LAMA_ECORRUPT, "%s: stored value is truncated", what);
	memcpy(ad, domain, dl);
	if (namelen)
		memcpy(ad + dl, name, namelen);
	rc = lama_buf_grow(out, n - LAMA_AEAD_OVERHEAD);
	if (rc)
		return rc;
	if (lama_aead_open((uint8_t *)out->data + start, ct, n, ad, dl + namelen, st->keys->enc))
		return lama_error(LAMA_ECORRUPT, "%s: failed authentication (tampered or damaged)", what);
	unpadded = n - LAMA_AEAD_OVERHEAD;
	if (pad && sodium_unpad(&unpadded, (uint8_t *)out->data + start, unpadded, PAD_BLOCK) != 0) {
		/* authentic but malformed: a bug, not an attack; still leave
		 * no plaintext behind in the caller's spare capacity */
		sodium_memzero(out->data + start, n - LAMA_AEAD_OVERHEAD);
		out->data[start] = '\0';
		return lama_error(LAMA_ECORRUPT, "%s: bad padding", what);
	}
	out->len = start + unpadded;
	out->data[out->len] = '\0';
	return 0;
}

static int exec(lama_store *st, const char *sql)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return store__dberr(st, "database");
	return 0;
}

/* ---- open / close / transactions ---- */

/* The key check row proves both keys: a known text sealed under the storage
 * key with, as associated data, its name under the index key. A wrong index
 * key would otherwise open the archive and then find nothing in it. */
static int check_keys(lama_store *st, int created)
{
	sqlite3_stmt *s = NULL;
	struct lama_buf pt = LAMA_BUF_INIT(256);
	uint8_t *ct = NULL, name[32];
	size_t ctlen;
	int rc = 0;

	store__name(st, 'c', KEYCHECK, strlen(KEYCHECK), name);
	if (created) {
		rc = store__seal(st, "keycheck", name, sizeof(name), KEYCHECK, strlen(KEYCHECK), 0,
				 &ct, &ctlen);
		if (rc)
			return rc;
		if (sqlite3_prepare_v2(st->db, "INSERT INTO meta(k,v) VALUES('keycheck',?1),"
				       "('schema',?2)", -1, &s, NULL) != SQLITE_OK)
			goto dberr;
		sqlite3_bind_blob(s, 1, ct, (int)ctlen, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, SCHEMA_VERSION);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto dberr;
		goto out;
	}
	if (sqlite3_prepare_v2(st->db, "SELECT (SELECT v FROM meta WHERE k='schema'),"
			       " v FROM meta WHERE k='keycheck'", -1, &s, NULL) != SQLITE_OK) {
		rc = lama_error(LAMA_ECORRUPT, "not a lama archive (%s)", sqlite3_errmsg(st->db));
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = lama_error(LAMA_ECORRUPT, "archive has no key check: not a lama archive");
		goto out;
	}
	if (sqlite3_column_int(s, 0) != SCHEMA_VERSION) {
		rc = lama_error(LAMA_ECORRUPT, "archive format version %d, this lama reads %d",
				sqlite3_column_int(s, 0), SCHEMA_VERSION);
		goto out;
	}
	rc = store__unseal(st, "keycheck", name, sizeof(name), sqlite3_column_blob(s, 1),
			   (size_t)sqlite3_column_bytes(s, 1), 0, &pt, "key check");
	/* ENOMEM is not a wrong password */
	if (rc == LAMA_ECORRUPT || (!rc && (pt.len != strlen(KEYCHECK) ||
					    memcmp(pt.data, KEYCHECK, pt.len) != 0)))
		rc = lama_error(LAMA_EAUTH, "the keys do not open this archive");
	goto out;
dberr:
	rc = store__dberr(st, "archive setup");
out:
	sqlite3_finalize(s);
	lama_free(ct);
	lama_buf_release(&pt);
	return rc;
}

/* 1 if the database has no tables yet, 0 if it has, <0 on error. */
static int is_empty(lama_store *st)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_master", -1, &s, NULL) != SQLITE_OK)
		return store__dberr(st, "reading the archive");
	if (sqlite3_step(s) == SQLITE_ROW)
		rc = sqlite3_column_int(s, 0) == 0;
	else
		rc = store__dberr(st, "reading the archive");
	sqlite3_finalize(s);
	return rc;
}

int lama_store_open(lama_store **out, const char *path, const uint8_t enc_key[32],
		    const uint8_t index_key[32], int flags)
{
	lama_store *st;
	int created = 0, rc;
	int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	*out = NULL;
	st = lama_calloc(1, sizeof(*st));
	if (!st)
		return lama_error(LAMA_ENOMEM, "out of memory");
	st->keys = lama_secure_alloc(sizeof(*st->keys));
	if (!st->keys) {
		lama_free(st);
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	}
	memcpy(st->keys->enc, enc_key, 32);
	memcpy(st->keys->index, index_key, 32);
	if (access(path, F_OK) != 0) {
		int fd;

		if (!(flags & LAMA_STORE_CREATE)) {
			rc = lama_error(LAMA_ENOTFOUND, "no archive at %s", path);
			goto fail;
		}
		/* The database is the user's alone, and SQLite gives its WAL
		 * and shared-memory files the database's mode. Creating it
		 * here (O_EXCL) avoids touching the process umask; an empty
		 * file is an empty SQLite database. */
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) { /* EEXIST: another process won */
			rc = lama_error(LAMA_EIO, "cannot create archive %s: %s", path,
					strerror(errno));
			goto fail;
		}
		if (fd >= 0) {
			close(fd);
			created = 1;
		}
	}
	rc = sqlite3_open_v2(path, &st->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		rc = lama_error(LAMA_EIO, "cannot open archive %s: %s", path,
				st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 5000);
	/* WAL with FULL sync: a commit that returned is on disk, even if power
	 * fails. The page cache is capped at 16 MiB, enough that a batch of a
	 * thousand objects does not spill to the WAL mid-transaction; pages are
	 * allocated as used, so opening a huge archive stays small. */
	rc = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		  "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16384;"
		  "PRAGMA foreign_keys=OFF;");
	if (rc)
		goto fail;
	rc = is_empty(st);
	if (rc < 0)
		goto fail;
	/* An empty database is one this function created, now or before a
	 * crash cut the first commit short. */
	if (rc == 1 && !(flags & LAMA_STORE_CREATE)) {
		rc = lama_error(LAMA_ECORRUPT, "%s is empty: not a lama archive", path);
		goto fail;
	}
	if (rc == 1) {
		rc = exec(st, "BEGIN IMMEDIATE");
		if (!rc)
			rc = exec(st, schema_sql);
		if (!rc)
			rc = check_keys(st, 1);
		if (!rc)
			rc = exec(st, "COMMIT");
		if (rc)
			goto fail;
	} else {
		rc = check_keys(st, 0);
		if (rc)
			goto fail;
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &st->stmt[i], NULL) != SQLITE_OK) {
			rc = store__dberr(st, "preparing statements");
			goto fail;
		}
	}
	/* reverse-map rows of one session follow each other (index.c) */
	lama_random(&st->ref_seq, sizeof(st->ref_seq));
	st->ref_seq >>= 2;
	*out = st;
	return 0;
fail:
	/* closing the last connection removes the WAL and shm files */
	lama_store_close(st);
	if (created)
		unlink(path);
	return rc;
}

void lama_store_close(lama_store *st)
{
	if (!st)
		return;
	if (st->tx_depth && st->db)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db)
		sqlite3_close_v2(st->db);
	lama_secure_free(st->keys);
	lama_free(st);
}

int lama_store_begin(lama_store *st)
{
	if (st->tx_depth == 0) {
		int rc = exec(st, "BEGIN IMMEDIATE");

		if (rc)
			return rc;
		st->tx_failed = 0;
	}
	st->tx_depth++;
	return 0;
}

int lama_store_commit(lama_store *st)
{
	if (st->tx_depth == 0)
		return lama_error(LAMA_EINVAL, "commit without begin");
	if (--st->tx_depth > 0)
		return 0;
	if (st->tx_failed) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return lama_error(LAMA_EIO, "transaction rolled back after an earlier failure");
	}
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = store__dberr(st, "commit");

		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

void lama_store_rollback(lama_store *st)
{
	if (st->tx_depth == 0)
		return;
	if (--st->tx_depth > 0) {
		st->tx_failed = 1;
		return;
	}
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

struct sqlite3 *lama_store_db(lama_store *st)
{
	return st->db;
}

/* ---- objects ---- */

int lama_store_put_hashed(lama_store *st, enum lama_store_kind kind, const void *data,
			  size_t n, const lama_hash *hash, int *is_new)
{
	uint8_t key[32], *ct = NULL, *pt;
	size_t ctlen;
	sqlite3_stmt *s;
	int rc;

	if (kind < LAMA_KIND_OBJECT || kind > LAMA_KIND_CLOB)
		return lama_error(LAMA_EINVAL, "unknown object kind %d", (int)kind);
	if (n > LAMA_STORE_OBJECT_MAX)
		return lama_error(LAMA_ELIMIT, "object of %zu bytes is too large", n);
	store__name(st, 'o', hash->b, 32, key);
	pt = lama_malloc(n + 1);
	if (!pt)
		return lama_error(LAMA_ENOMEM, "out of memory");
	pt[0] = (uint8_t)kind;
	memcpy(pt + 1, data, n);
	rc = store__seal(st, "obj", key, 32, pt, n + 1, 1, &ct, &ctlen);
	sodium_memzero(pt, n + 1);
	lama_free(pt);
	if (rc)
		return rc;
	s = store__stmt(st, S_OBJ_PUT);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, ct, (int)ctlen, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "storing object");
	else if (is_new)
		*is_new = sqlite3_changes(st->db) > 0;
	sqlite3_reset(s);
	lama_free(ct);
	return rc;
}

int lama_store_put(lama_store *st, enum lama_store_kind kind, const void *data, size_t n,
		   lama_hash *hash, int *is_new)
{
	lama_hash h;

	lama_sha256(data, n, &h);
	if (hash)
		*hash = h;
	return lama_store_put_hashed(st, kind, data, n, &h, is_new);
}

/* Decrypts an obj row into out and checks that it is what `hash` names. */
int store__obj_open(lama_store *st, const uint8_t key[32], const void *ct, size_t ctlen,
		    const lama_hash *expect, enum lama_store_kind *kind, struct lama_buf *out,
		    lama_hash *found)
{
	size_t start = out->len;
	char hex[LAMA_HASH_HEX + 1] = "(unknown)";
	lama_hash h;
	uint8_t k2[32];
	int rc;

	rc = store__unseal(st, "obj", key, 32, ct, ctlen, 1, out, "object row");
	/* the hex hash is for messages only: not computed on the good path */
	if (rc && expect) {
		lama_hash_hex(expect, hex);
		char why[256];

		snprintf(why, sizeof(why), "%s", lama_errmsg());
		return lama_error(rc, "object %s: %s", hex, why);
	}
	if (rc)
		return rc;
	if (out->len == start || out->data[start] < LAMA_KIND_OBJECT || out->data[start] > LAMA_KIND_CLOB) {
		if (expect)
			lama_hash_hex(expect, hex);
		sodium_memzero(out->data + start, out->len - start);
		lama_buf_truncate(out, start);
		return lama_error(LAMA_ECORRUPT, "object %s: unknown kind", hex);
	}
	if (kind)
		*kind = (enum lama_store_kind)out->data[start];
	lama_sha256(out->data + start + 1, out->len - start - 1, &h);
	/* With an expected hash, the key was computed from it and the content
	 * must match it; without one (check), the key must name the content. */
	if (expect ? !lama_hash_eq(&h, expect)
		   : (store__name(st, 'o', h.b, 32, k2), memcmp(k2, key, 32) != 0)) {
		if (expect)
			lama_hash_hex(expect, hex);
		sodium_memzero(out->data + start, out->len - start);
		lama_buf_truncate(out, start);
		return lama_error(LAMA_ECORRUPT, "object %s: content does not match its hash", hex);
	}
	memmove(out->data + start, out->data + start + 1, out->len - start - 1);
	lama_buf_truncate(out, out->len - 1);
	if (found)
		*found = h;
	return 0;
}

int lama_store_get(lama_store *st, const lama_hash *hash, enum lama_store_kind *kind,
		   struct lama_buf *out)
{
	uint8_t key[32];
	sqlite3_stmt *s;
	int rc, step;

	store__name(st, 'o', hash->b, 32, key);
	s = store__stmt(st, S_OBJ_GET);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		rc = store__obj_open(st, key, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
			      hash, kind, out, NULL);
	} else if (step == SQLITE_DONE) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(hash, hex);
		rc = lama_error(LAMA_ENOTFOUND, "no object %s", hex);
	} else {
		rc = store__dberr(st, "reading object");
	}
	sqlite3_reset(s);
	return rc;
}

int store__exists(lama_store *st, enum stmt_id id, const uint8_t key[32])
{
	sqlite3_stmt *s = store__stmt(st, id);
	int step;

	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	step = sqlite3_step(s);
	sqlite3_reset(s);
	if (step == SQLITE_ROW)
		return 1;
	if (step == SQLITE_DONE)
		return 0;
	return store__dberr(st, "lookup");
}

int lama_store_has(lama_store *st, const lama_hash *hash)
{
	uint8_t key[32];
	int rc;

	store__name(st, 'o', hash->b, 32, key);
	rc = store__exists(st, S_OBJ_GET, key);
	if (rc)
		return rc;
	store__name(st, 'b', hash->b, 32, key);
	return store__exists(st, S_BLOB_GET, key);
}

int lama_store_data_version(lama_store *st, int64_t *v)
{
	sqlite3_stmt *s = store__stmt(st, S_DATA_VERSION);
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : store__dberr(st, "data_version");
}

/* ---- BLOBs ---- */


static void meta_encode(const struct blob_meta *m, uint8_t out[72])
{
	memcpy(out, m->hash.b, 32);
	for (int i = 0; i < 8; i++) {
		out[32 + i] = (uint8_t)(m->size >> (8 * i));
		out[40 + i] = (uint8_t)(m->nchunks >> (8 * i));
	}
	memcpy(out + 48, m->bid, 16);
	memset(out + 64, 0, 8);
}

static void meta_decode(const uint8_t in[72], struct blob_meta *m)
{
	memcpy(m->hash.b, in, 32);
	m->size = m->nchunks = 0;
	for (int i = 0; i < 8; i++) {
		m->size |= (uint64_t)in[32 + i] << (8 * i);
		m->nchunks |= (uint64_t)in[40 + i] << (8 * i);
	}
	memcpy(m->bid, in + 48, 16);
}

_Static_assert(LAMA_BLOB_CHUNK_OVERHEAD == LAMA_AEAD_OVERHEAD, "chunk overhead");

/* Chunk associated data: bid || index || last flag. Binding the position
 * and the end stops reordering and truncation of a BLOB. */
static void chunk_ad(const uint8_t bid[16], uint64_t idx, int last, uint8_t ad[25])
{
	memcpy(ad, bid, 16);
	for (int i = 0; i < 8; i++)
		ad[16 + i] = (uint8_t)(idx >> (8 * i));
	ad[24] = (uint8_t)!!last;
}

int lama_blob_chunk_seal(uint8_t *out, const void *pt, size_t n, const uint8_t key[32],
			 const uint8_t bid[LAMA_BLOB_GROUP_BYTES], uint64_t idx, int last)
{
	uint8_t ad[25];

	if (n > LAMA_BLOB_CHUNK)
		return lama_error(LAMA_ELIMIT, "a BLOB chunk holds at most %zu bytes", LAMA_BLOB_CHUNK);
	chunk_ad(bid, idx, last, ad);
	return lama_aead_seal(out, pt, n, ad, sizeof(ad), key);
}

int lama_blob_chunk_open(uint8_t *out, const uint8_t *ct, size_t n, const uint8_t key[32],
			 const uint8_t bid[LAMA_BLOB_GROUP_BYTES], uint64_t idx, int last)
{
	uint8_t ad[25];

	if (n < LAMA_AEAD_OVERHEAD || n > LAMA_BLOB_CHUNK + LAMA_AEAD_OVERHEAD)
		return lama_error(LAMA_ECRYPTO, "a sealed BLOB chunk of %zu bytes", n);
	chunk_ad(bid, idx, last, ad);
	return lama_aead_open(out, ct, n, ad, sizeof(ad), key);
}

int lama_blob_write_begin(lama_store *st, lama_blob_writer **out)
{
	lama_blob_writer *w = lama_calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w)
		return lama_error(LAMA_ENOMEM, "out of memory");
	w->st = st;
	w->sha = lama_sha256_new();
	w->chunk = lama_malloc(LAMA_BLOB_CHUNK);
	w->sealed = lama_malloc(LAMA_BLOB_CHUNK + LAMA_AEAD_OVERHEAD);
	if (!w->sha || !w->chunk || !w->sealed) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto fail;
	}
	lama_random(w->bid, sizeof(w->bid));
	/* Inside a caller's transaction the BLOB gets a savepoint of its own,
	 * so aborting it does not take the caller's other writes with it. */
	w->savepoint = st->tx_depth > 0;
	rc = lama_store_begin(st);
	if (rc)
		goto fail;
	if (w->savepoint) {
		rc = exec(st, "SAVEPOINT lama_blob");
		if (rc) {
			st->tx_depth--;
			goto fail;
		}
	}
	*out = w;
	return 0;
fail:
	if (w->sha)
		lama_sha256_abort(w->sha);
	lama_free(w->chunk);
	lama_free(w->sealed);
	lama_free(w);
	return rc;
}

/* Stores a sealed chunk at the writer's next index. */
static int put_chunk(lama_blob_writer *w, const void *sealed, size_t n)
{
	sqlite3_stmt *s = store__stmt(w->st, S_CHUNK_PUT);
	int rc = 0;

	sqlite3_bind_blob(s, 1, w->bid, 16, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)w->idx);
	sqlite3_bind_blob(s, 3, sealed, (int)n, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(w->st, "storing BLOB chunk");
	sqlite3_reset(s);
	w->idx++;
	return rc;
}

static int flush_chunk(lama_blob_writer *w, int last)
{
	int rc;

	rc = lama_blob_chunk_seal(w->sealed, w->chunk, w->fill, w->st->keys->enc, w->bid, w->idx,
				  last);
	if (!rc)
		rc = put_chunk(w, w->sealed, w->fill + LAMA_AEAD_OVERHEAD);
	sodium_memzero(w->chunk, w->fill);
	w->fill = 0;
	return rc;
}

int lama_blob_write(lama_blob_writer *w, const void *data, size_t n)
{
	const uint8_t *p = data;

	if (w->err)
		return w->err;
	if (w->mode == 2)
		return lama_error(LAMA_EINVAL, "this BLOB writer takes sealed chunks");
	w->mode = 1;
	lama_sha256_update(w->sha, data, n);
	w->size += n;
	while (n) {
		size_t take;

		/* A full chunk is flushed only when more data follows, so the
		 * final chunk can carry the "last" flag. */
		if (w->fill == LAMA_BLOB_CHUNK) {
			int rc = flush_chunk(w, 0);

			if (rc)
				return w->err = rc;
		}
		take = LAMA_BLOB_CHUNK - w->fill;
		if (take > n)
			take = n;
		memcpy(w->chunk + w->fill, p, take);
		w->fill += take;
		p += take;
		n -= take;
	}
	return 0;
}

static void writer_free(lama_blob_writer *w)
{
	if (w->sha)
		lama_sha256_abort(w->sha);
	sodium_memzero(w->chunk, LAMA_BLOB_CHUNK);
	lama_free(w->chunk);
	lama_free(w->sealed);
	lama_free(w);
}

void lama_blob_write_abort(lama_blob_writer *w)
{
	lama_store *st;

	if (!w)
		return;
	st = w->st;
	if (w->savepoint) {
		if (sqlite3_exec(st->db, "ROLLBACK TO lama_blob; RELEASE lama_blob", NULL, NULL,
				 NULL) != SQLITE_OK)
			st->tx_failed = 1; /* could not undo: the caller's commit must not happen */
		st->tx_depth--;
	} else {
		lama_store_rollback(st);
	}
	writer_free(w);
}

static int blob_meta(lama_store *st, const lama_hash *hash, struct blob_meta *m, int counted);

/* A record of this hash that the plain writer w (which computed the hash
 * from what it stored) finds with another size or chunk count can never
 * be read (chunks sealed elsewhere and stored under a hash they did not
 * have): it goes, with its chunks, for w's. 1 when it went. */
static int drop_broken(lama_blob_writer *w, const struct blob_meta *ours, const uint8_t key[32])
{
	lama_store *st = w->st;
	struct blob_meta old;
	sqlite3_stmt *s = NULL;
	int rc = blob_meta(st, &ours->hash, &old, 0);

	if (rc == LAMA_ECORRUPT || rc == LAMA_ECRYPTO)
		return 0; /* unreadable for another reason: left to the check */
	if (rc)
		return rc;
	if (old.size == ours->size && old.nchunks == ours->nchunks)
		return 0;
	s = store__stmt(st, S_CHUNK_DEL);
	sqlite3_bind_blob(s, 1, old.bid, 16, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : store__dberr(st, "dropping a broken BLOB");
	sqlite3_reset(s);
	if (rc)
		return rc;
	/* rare: not worth a cached statement */
	if (sqlite3_prepare_v2(st->db, "DELETE FROM blob WHERE key=?1", -1, &s, NULL) != SQLITE_OK)
		return store__dberr(st, "dropping a broken BLOB");
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	rc = sqlite3_step(s) == SQLITE_DONE ? 1 : store__dberr(st, "dropping a broken BLOB");
	sqlite3_finalize(s);
	return rc;
}

/* Writes the record of a BLOB whose chunks are stored (m->hash set),
 * commits and frees the writer. */
static int write_record(lama_blob_writer *w, struct blob_meta *mp, lama_hash *hash, int *is_new)
{
	lama_store *st = w->st;
	struct blob_meta m = *mp;
	uint8_t key[32], plain[72], *ct = NULL;
	size_t ctlen;
	sqlite3_stmt *s;
	int rc = 0, exists = 0;

	m.size = w->size;
	m.nchunks = w->idx;
	memcpy(m.bid, w->bid, 16);
	store__name(st, 'b', m.hash.b, 32, key);
	exists = store__exists(st, S_BLOB_GET, key);
	if (exists > 0 && w->mode != 2) {
		rc = drop_broken(w, &m, key);
		if (rc < 0)
			goto fail;
		exists = !rc;
		rc = 0;
	}
	if (exists < 0) {
		rc = exists;
		goto fail;
	}
	if (exists) {
		/* Same content already stored: drop the new chunks. */
		s = store__stmt(st, S_CHUNK_DEL);
		sqlite3_bind_blob(s, 1, w->bid, 16, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE)
			rc = store__dberr(st, "dropping duplicate BLOB");
		sqlite3_reset(s);
	} else {
		meta_encode(&m, plain);
		rc = store__seal(st, "blob", key, 32, plain, sizeof(plain), 0, &ct, &ctlen);
		if (!rc) {
			s = store__stmt(st, S_BLOB_PUT);
			sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
			sqlite3_bind_blob(s, 2, ct, (int)ctlen, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = store__dberr(st, "storing BLOB");
			sqlite3_reset(s);
		}
	}
	lama_free(ct);
	if (!rc && w->savepoint)
		rc = exec(st, "RELEASE lama_blob");
	if (rc)
		goto fail;
	rc = lama_store_commit(st);
	writer_free(w);
	if (rc)
		return rc;
	if (hash)
		*hash = m.hash;
	if (is_new)
		*is_new = !exists;
	return 0;
fail:
	lama_blob_write_abort(w);
	return rc;
}

int lama_blob_write_end(lama_blob_writer *w, lama_hash *hash, int *is_new)
{
	struct blob_meta m;
	int rc = w->err;

	if (!rc && w->mode == 2)
		rc = lama_error(LAMA_EINVAL, "this BLOB writer takes sealed chunks: end it with its hash");
	if (!rc)
		rc = flush_chunk(w, 1);
	if (rc)
		goto fail;
	lama_sha256_final(w->sha, &m.hash);
	w->sha = NULL;
	return write_record(w, &m, hash, is_new);
fail:
	lama_blob_write_abort(w);
	return rc;
}

void lama_blob_write_group(const lama_blob_writer *w, uint8_t bid[16])
{
	memcpy(bid, w->bid, 16);
}

int lama_blob_write_sealed(lama_blob_writer *w, const void *sealed, size_t n, int last)
{
	size_t plain;

	if (w->err)
		return w->err;
	if (w->mode == 1)
		return lama_error(LAMA_EINVAL, "this BLOB writer takes plaintext");
	if (w->ended)
		return lama_error(LAMA_EINVAL, "a BLOB chunk after the last one");
	if (n < LAMA_AEAD_OVERHEAD || n > LAMA_BLOB_CHUNK + LAMA_AEAD_OVERHEAD)
		return lama_error(LAMA_EINVAL, "a sealed BLOB chunk of %zu bytes", n);
	plain = n - LAMA_AEAD_OVERHEAD;
	if (!last && plain != LAMA_BLOB_CHUNK)
		return lama_error(LAMA_EINVAL, "a BLOB chunk before the last holds %zu bytes, not %zu",
				  plain, LAMA_BLOB_CHUNK);
	/* the reader counts ceil(size / chunk) chunks: a BLOB of whole chunks
	 * ends with a full one (only the empty BLOB has an empty chunk) */
	if (last && plain == 0 && w->idx > 0)
		return lama_error(LAMA_EINVAL, "an empty last BLOB chunk after full ones: the last "
				  "full chunk is the last");
	w->mode = 2;
	w->ended = !!last;
	w->size += plain;
	return w->err = put_chunk(w, sealed, n);
}

int lama_blob_write_end_sealed(lama_blob_writer *w, const lama_hash *hash, int *is_new)
{
	struct blob_meta m;
	int rc = w->err;

	if (!rc && (w->mode != 2 || !w->ended))
		rc = lama_error(LAMA_EINVAL, "the BLOB's last chunk is missing");
	if (!rc && !hash)
		rc = lama_error(LAMA_EINVAL, "a sealed BLOB needs its hash");
	if (rc) {
		lama_blob_write_abort(w);
		return rc;
	}
	m.hash = *hash;
	return write_record(w, &m, NULL, is_new);
}

int store__blob_meta(lama_store *st, const lama_hash *hash, struct blob_meta *m)
{
	return blob_meta(st, hash, m, 1);
}

/* The record of BLOB `hash`; `counted`: its chunk count checked against
 * its size (what the reader needs). */
static int blob_meta(lama_store *st, const lama_hash *hash, struct blob_meta *m, int counted)
{
	uint8_t key[32];
	struct lama_buf pt = LAMA_BUF_INIT(256);
	char hex[LAMA_HASH_HEX + 1];
	sqlite3_stmt *s;
	int rc, step;

	lama_hash_hex(hash, hex);
	store__name(st, 'b', hash->b, 32, key);
	s = store__stmt(st, S_BLOB_GET);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	step = sqlite3_step(s);
	if (step == SQLITE_DONE)
		rc = lama_error(LAMA_ENOTFOUND, "no BLOB %s", hex);
	else if (step != SQLITE_ROW)
		rc = store__dberr(st, "reading BLOB");
	else
		rc = store__unseal(st, "blob", key, 32, sqlite3_column_blob(s, 0),
			    (size_t)sqlite3_column_bytes(s, 0), 0, &pt, hex);
	sqlite3_reset(s);
	if (!rc && pt.len != 72)
		rc = lama_error(LAMA_ECORRUPT, "BLOB %s: bad record", hex);
	if (!rc) {
		meta_decode((const uint8_t *)pt.data, m);
		if (!lama_hash_eq(&m->hash, hash))
			rc = lama_error(LAMA_ECORRUPT, "BLOB %s: record names another BLOB", hex);
		else if (counted &&
			 m->nchunks != (m->size ? (m->size + LAMA_BLOB_CHUNK - 1) / LAMA_BLOB_CHUNK : 1))
			rc = lama_error(LAMA_ECORRUPT, "BLOB %s: bad chunk count", hex);
	}
	lama_buf_release(&pt);
	return rc;
}

int lama_blob_open(lama_store *st, const lama_hash *hash, lama_blob_reader **out, uint64_t *size)
{
	lama_blob_reader *r;
	struct blob_meta m;
	int rc;

	*out = NULL;
	rc = store__blob_meta(st, hash, &m);
	if (rc)
		return rc;
	r = lama_calloc(1, sizeof(*r));
	if (!r)
		return lama_error(LAMA_ENOMEM, "out of memory");
	r->st = st;
	r->hash = *hash;
	r->size = m.size;
	r->nchunks = m.nchunks;
	memcpy(r->bid, m.bid, 16);
	r->sha = lama_sha256_new();
	r->chunk = lama_malloc(LAMA_BLOB_CHUNK + 1);
	if (!r->sha || !r->chunk) {
		lama_blob_close(r);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (size)
		*size = m.size;
	*out = r;
	return 0;
}

static int load_chunk(lama_blob_reader *r)
{
	char hex[LAMA_HASH_HEX + 1];
	sqlite3_stmt *s;
	const void *ct;
	size_t n, expect;
	int rc = 0, step, last = r->idx + 1 == r->nchunks;

	lama_hash_hex(&r->hash, hex);
	expect = last ? (size_t)(r->size - r->idx * LAMA_BLOB_CHUNK) : LAMA_BLOB_CHUNK;
	s = store__stmt(r->st, S_CHUNK_GET);
	sqlite3_bind_blob(s, 1, r->bid, 16, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)r->idx);
	step = sqlite3_step(s);
	if (step == SQLITE_DONE) {
		rc = lama_error(LAMA_ECORRUPT, "BLOB %s: chunk %llu is missing", hex,
				(unsigned long long)r->idx);
	} else if (step != SQLITE_ROW) {
		rc = store__dberr(r->st, "reading BLOB chunk");
	} else {
		ct = sqlite3_column_blob(s, 0);
		n = (size_t)sqlite3_column_bytes(s, 0);
		if (n != expect + LAMA_AEAD_OVERHEAD ||
		    lama_blob_chunk_open(r->chunk, ct, n, r->st->keys->enc, r->bid, r->idx, last))
			rc = lama_error(LAMA_ECORRUPT, "BLOB %s: chunk %llu failed authentication",
					hex, (unsigned long long)r->idx);
	}
	sqlite3_reset(s);
	if (rc)
		return rc;
	r->idx++;
	lama_sha256_update(r->sha, r->chunk, expect);
	if (last) {
		/* Checked before the last chunk's bytes are handed out, so even a
		 * caller that stops at `size` bytes never takes a wrong BLOB. */
		lama_hash h;

		lama_sha256_final(r->sha, &h);
		r->sha = NULL;
		if (!lama_hash_eq(&h, &r->hash)) {
			sodium_memzero(r->chunk, expect);
			return lama_error(LAMA_ECORRUPT, "BLOB %s: content does not match its hash", hex);
		}
	}
	r->fill = expect;
	r->pos = 0;
	return 0;
}

int lama_blob_read(lama_blob_reader *r, void *buf, size_t n, size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;
	int rc;

	*got = 0;
	if (r->err)
		return r->err;
	while (done < n) {
		if (r->pos == r->fill) {
			if (r->idx == r->nchunks)
				break; /* the end; the whole hash was checked */
			rc = load_chunk(r);
			if (rc)
				return r->err = rc;
			continue;
		}
		size_t take = r->fill - r->pos;

		if (take > n - done)
			take = n - done;
		memcpy(p + done, r->chunk + r->pos, take);
		r->pos += take;
		done += take;
	}
	*got = done;
	return 0;
}

void lama_blob_close(lama_blob_reader *r)
{
	if (!r)
		return;
	if (r->sha)
		lama_sha256_abort(r->sha);
	if (r->chunk)
		sodium_memzero(r->chunk, LAMA_BLOB_CHUNK);
	lama_free(r->chunk);
	lama_free(r);
}
