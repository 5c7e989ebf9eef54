/* search.c: the blind full-text index (search.h; design in docs/search.md).
 *
 * One SQLite file with three tables:
 *   docs(rowid, tag, topic, sealed)  a message: tag = keyed hash of its id,
 *                                    topic = keyed hash of its topic id,
 *                                    sealed = AEAD(id, sender, time, topic,
 *                                    text), bound to tag
 *   fts(body, topic)                 contentless FTS5 over the "lamahash"
 *                                    tokenizer: unicode61, then each token
 *                                    replaced by a keyed hash; `topic` holds
 *                                    the topic tag as one token, so a topic
 *                                    filter is part of the MATCH
 *   topics(tag, state)               what lama_search_sync last indexed
 *   meta(k, v)                       'built' once a sync completed;
 *                                    'top', the highest row number a
 *                                    topic's block reserved (live adds go
 *                                    above it, never into a block)
 * The query string that reaches MATCH is built here from folded tokens
 * (letters and digits only), each phrase in double quotes, so nothing the
 * user types is ever FTS5 syntax. */
#include "search/search.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "leute/leute.h"
#include "crypto/crypto.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define B32_LEN 24         /* a token hash: 15 bytes in base32 */
#define SEAL_VERSION 1
#define SCHEMA_VERSION 1

/* Secure memory: the derived keys. */
struct keys {
	uint8_t tok[LAMA_KEY_BYTES];  /* token hashes (SipHash: the first 16 bytes) */
	uint8_t row[LAMA_KEY_BYTES];  /* row tags of ids and topics */
	uint8_t seal[LAMA_KEY_BYTES]; /* sealed texts */
};

enum { S_FIND, S_UNINDEX, S_DELETE, S_INSERT, S_INDEX, S_TOPIC_ROW, S_COUNT };

static const char *const stmt_sql[S_COUNT] = {
	"SELECT rowid, sealed FROM docs WHERE tag = ?1",
	"INSERT INTO fts(fts, rowid, body, topic) VALUES('delete', ?1, ?2, ?3)",
	"DELETE FROM docs WHERE rowid = ?1",
	"INSERT INTO docs(rowid, tag, topic, sealed) VALUES(?4, ?1, ?2, ?3)",
	"INSERT INTO fts(rowid, body, topic) VALUES(?1, ?2, ?3)",
	"SELECT tag FROM docs WHERE topic = ?1 LIMIT 1",
};

struct lama_search {
	sqlite3 *db;
	struct keys *k;
	fts5_api *api;
	/* a plain unicode61 instance: folds the query and finds the words of a
	 * snippet exactly as the index tokenizer saw them */
	fts5_tokenizer u61;
	Fts5Tokenizer *u61i;
	/* scratch for the tokens of one FTS5 delete */
	struct lama_buf tmp;
	/* the statements of adding and removing, prepared once */
	sqlite3_stmt *st[S_COUNT];
};

/* unicode61 with diacritics removed also from letters with several marks */
static const char *u61_args[] = { "remove_diacritics", "2" };

static int sql_fail(lama_search *x, int rc, const char *what)
{
	if (rc == SQLITE_NOMEM)
		return lama_error(LAMA_ENOMEM, "out of memory (%s)", what);
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
		return lama_error(LAMA_ECORRUPT, "search index damaged (%s): rebuild it", what);
	return lama_error(LAMA_EIO, "search index: %s: %s", what, sqlite3_errmsg(x->db));
}

/* The cached statement i, reset and ready for its bindings. */
static int cached(lama_search *x, int i, sqlite3_stmt **out)
{
	int rc;

	if (!x->st[i]) {
		rc = sqlite3_prepare_v3(x->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &x->st[i], NULL);
		if (rc != SQLITE_OK) {
			*out = NULL;
			return rc;
		}
	}
	sqlite3_reset(x->st[i]);
	sqlite3_clear_bindings(x->st[i]);
	*out = x->st[i];
	return SQLITE_OK;
}

static int exec(lama_search *x, const char *sql)
{
	int rc = sqlite3_exec(x->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_fail(x, rc, "exec");
}

static void b32(char out[B32_LEN], const uint8_t in[15])
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyz234567";

	for (int i = 0; i < B32_LEN; i++) {
		int bit = i * 5, byte = bit / 8, sh = bit % 8;
		unsigned v = (unsigned)in[byte] << 8 | (byte + 1 < 15 ? in[byte + 1] : 0);

		out[i] = al[(v >> (11 - sh)) & 31];
	}
}

/* ---- the lamahash tokenizer ---- */

struct htok {
	lama_search *x;
	fts5_tokenizer u;
	Fts5Tokenizer *ui;
};

struct hctx {
	void *ctx;
	int (*tok)(void *, int, const char *, int, int, int);
	const uint8_t *key;
};

static int htok_create(void *p, const char **argv, int argc, Fts5Tokenizer **out)
{
	lama_search *x = p;
	struct htok *h = lama_calloc(1, sizeof(*h));
	void *ud = NULL;
	int rc;

	*out = NULL;
	if (!h)
		return SQLITE_NOMEM;
	h->x = x;
	rc = x->api->xFindTokenizer(x->api, "unicode61", &ud, &h->u);
	if (rc == SQLITE_OK)
		rc = h->u.xCreate(ud, u61_args, 2, &h->ui);
	if (rc != SQLITE_OK) {
		lama_free(h);
		return rc;
	}
	*out = (Fts5Tokenizer *)h;
	return SQLITE_OK;
}

static void htok_delete(Fts5Tokenizer *t)
{
	struct htok *h = (struct htok *)t;

	if (h) {
		h->u.xDelete(h->ui);
		lama_free(h);
	}
}

static int htok_token(void *p, int flags, const char *tok, int n, int start, int end)
{
	struct hctx *c = p;
	uint8_t d[16];
	char out[B32_LEN];

	/* SipHash-2-4 with a 128-bit output, the PRF the
	 * store uses for its row names (docs/storage.md): a token is a few
	 * bytes, and keyed BLAKE2b cost a fifth of all indexing time */
	crypto_shorthash_siphashx24(d, (const unsigned char *)tok, (unsigned long long)n, c->key);
	b32(out, d);
	return c->tok(c->ctx, flags, out, B32_LEN, start, end);
}

static int htok_tokenize(Fts5Tokenizer *t, void *ctx, int flags, const char *text, int n,
			 int (*tok)(void *, int, const char *, int, int, int))
{
	struct htok *h = (struct htok *)t;
	struct hctx c = { ctx, tok, h->x->k->tok };

	/* a prefix query would look for a prefix of a hash: meaningless, and
	 * never built by lama_search_query */
	if (flags & FTS5_TOKENIZE_PREFIX)
		return SQLITE_ERROR;
	return h->u.xTokenize(h->ui, &c, flags, text, n, htok_token);
}

static fts5_tokenizer htok_module = { htok_create, htok_delete, htok_tokenize };

/* ---- folding with plain unicode61 ---- */

/* A folded token and where it was in the text. */
struct ftok {
	uint32_t off, len;  /* into the buf of folded tokens */
	int start, end;     /* bytes of the original text */
};

struct fold {
	struct lama_buf text; /* folded tokens, each NUL-terminated */
	struct ftok *t;
	size_t n, cap;
	int err;
};

static int fold_token(void *p, int flags, const char *tok, int n, int start, int end)
{
	struct fold *f = p;
	int rc;

	if (flags & FTS5_TOKEN_COLOCATED)
		return SQLITE_OK;
	if (lama_grow(&f->t, &f->cap, f->n, sizeof(*f->t), 16)) {
		f->err = LAMA_ENOMEM;
		return SQLITE_NOMEM;
	}
	f->t[f->n].off = (uint32_t)f->text.len;
	f->t[f->n].len = (uint32_t)n;
	f->t[f->n].start = start;
	f->t[f->n].end = end;
	if ((rc = lama_buf_add(&f->text, tok, (size_t)n)) || (rc = lama_buf_addch(&f->text, 0))) {
		f->err = rc;
		return SQLITE_NOMEM;
	}
	f->n++;
	return SQLITE_OK;
}

static void fold_release(struct fold *f);

/* Folds text[0..n) into f. */
static int fold(lama_search *x, const char *text, size_t n, struct fold *f)
{
	int rc;

	memset(f, 0, sizeof(*f));
	f->text.max = LAMA_BUF_MAX;
	rc = x->u61.xTokenize(x->u61i, f, FTS5_TOKENIZE_DOCUMENT, text, (int)n, fold_token);
	if (f->err == LAMA_ENOMEM) {
		fold_release(f);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (rc != SQLITE_OK) {
		fold_release(f);
		return lama_error(rc == SQLITE_NOMEM ? LAMA_ENOMEM : LAMA_EIO, "cannot split text into words");
	}
	return 0;
}

static void fold_release(struct fold *f)
{
	lama_buf_release_wipe(&f->text);
	lama_free(f->t);
	memset(f, 0, sizeof(*f));
}

/* ---- opening ---- */

static int get_fts5(lama_search *x)
{
	sqlite3_stmt *st = NULL;
	int rc;

	x->api = NULL;
	rc = sqlite3_prepare_v2(x->db, "SELECT fts5(?1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(x, rc, "fts5 is missing from this SQLite");
	sqlite3_bind_pointer(st, 1, (void *)&x->api, "fts5_api_ptr", NULL);
	sqlite3_step(st);
	sqlite3_finalize(st);
	if (!x->api || x->api->iVersion < 2)
		return lama_error(LAMA_EIO, "this SQLite has no usable FTS5");
	return 0;
}

static int user_version(lama_search *x, int *v)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(x->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : sql_fail(x, rc, "reading the version");
}

/* Another SQLite may split words otherwise (newer Unicode tables), and a
 * contentless row is removed only with the tokens it was indexed with:
 * under another version the index is emptied (and unbuilt), so that a
 * sync makes it again. Emptying here, not later, means an index that is
 * not built is one whose sync did not finish: a sync resumes it. */
static int check_sqlite(lama_search *x)
{
	sqlite3_stmt *st = NULL;
	int rc, same = 0;

	rc = sqlite3_prepare_v2(x->db, "SELECT v = ?1 FROM meta WHERE k = 'sqlite'", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, sqlite3_libversion(), -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) == SQLITE_ROW)
			same = sqlite3_column_int(st, 0);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return sql_fail(x, rc, "reading the version");
	if (same)
		return 0;
	st = NULL;
	rc = sqlite3_exec(x->db, "BEGIN IMMEDIATE; DELETE FROM meta WHERE k = 'built';"
			  "DELETE FROM docs; DELETE FROM topics; INSERT INTO fts(fts) VALUES('delete-all')",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(x->db, "INSERT OR REPLACE INTO meta(k, v) VALUES('sqlite', ?1)", -1,
					&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, sqlite3_libversion(), -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(x->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
		return sql_fail(x, rc, "recording the version");
	}
	return 0;
}

int lama_search_open_at(const char *path, const uint8_t token_key[LAMA_KEY_BYTES],
			const uint8_t seal_key[LAMA_KEY_BYTES], lama_search **out)
{
	lama_search *x;
	void *ud = NULL;
	int rc, fd, v = 0;

	*out = NULL;
	x = lama_calloc(1, sizeof(*x));
	if (!x)
		return lama_error(LAMA_ENOMEM, "out of memory");
	x->tmp.max = LAMA_BUF_MAX;
	x->k = lama_secure_alloc(sizeof(*x->k));
	if (!x->k) {
		rc = lama_error(LAMA_ENOMEM, "out of secure memory");
		goto fail;
	}
	lama_kdf_derive(x->k->tok, 1, "lamatokn", token_key);
	lama_kdf_derive(x->k->row, 2, "lamarows", token_key);
	memcpy(x->k->seal, seal_key, LAMA_KEY_BYTES);
	/* created here so that SQLite gives the -wal and -shm files 0600 too */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = lama_error(LAMA_EIO, "cannot open search index %s: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	rc = sqlite3_open_v2(path, &x->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = lama_error(LAMA_EIO, "cannot open search index %s: %s", path,
				x->db ? sqlite3_errmsg(x->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(x->db, 5000);
	/* temp_store in memory: sorting never spills to a temporary file */
	if ((rc = exec(x, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		       "PRAGMA temp_store=MEMORY; PRAGMA secure_delete=ON;")))
		goto fail;
	if ((rc = get_fts5(x)))
		goto fail;
	rc = x->api->xCreateTokenizer(x->api, "lamahash", x, &htok_module, NULL);
	if (rc == SQLITE_OK)
		rc = x->api->xFindTokenizer(x->api, "unicode61", &ud, &x->u61);
	if (rc == SQLITE_OK)
		rc = x->u61.xCreate(ud, u61_args, 2, &x->u61i);
	if (rc != SQLITE_OK) {
		rc = sql_fail(x, rc, "the tokenizer");
		goto fail;
	}
	if ((rc = user_version(x, &v)))
		goto fail;
	if (v == 0) {
		rc = exec(x, "BEGIN IMMEDIATE;"
			  "CREATE TABLE docs(rowid INTEGER PRIMARY KEY, tag BLOB NOT NULL UNIQUE,"
			  " topic BLOB NOT NULL, sealed BLOB NOT NULL);"
			  "CREATE INDEX docs_topic ON docs(topic);"
			  "CREATE TABLE topics(tag BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;"
			  "CREATE TABLE meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
			  "CREATE VIRTUAL TABLE fts USING fts5(body, topic, content='',"
			  " tokenize='lamahash');"
			  "PRAGMA user_version=1;"
			  "COMMIT;");
		if (rc) {
			sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
			if ((rc = user_version(x, &v)))
				goto fail;
			if (v != SCHEMA_VERSION) {
				rc = lama_error(LAMA_EIO, "cannot create the search index: %s",
						sqlite3_errmsg(x->db));
				goto fail;
			}
		}
	} else if (v != SCHEMA_VERSION) {
		rc = lama_error(LAMA_ECORRUPT, "%s is not a search index of this version", path);
		goto fail;
	}
	if ((rc = check_sqlite(x)))
		goto fail;
	*out = x;
	return 0;
fail:
	lama_search_close(x);
	return rc;
}

int lama_search_keys(lama_session *s, uint8_t token_key[LAMA_KEY_BYTES],
		     uint8_t seal_key[LAMA_KEY_BYTES])
{
	int rc = lama_session_subkey(s, 1, "lamasrch", token_key);

	if (!rc)
		rc = lama_session_subkey(s, 2, "lamasrch", seal_key);
	if (rc) {
		lama_wipe(token_key, LAMA_KEY_BYTES);
		lama_wipe(seal_key, LAMA_KEY_BYTES);
	}
	return rc;
}

int lama_search_open(lama_session *s, lama_search **out)
{
	char path[LAMA_PATH_MAX];
	uint8_t *k;
	int rc;

	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/search.db", lama_session_dir(s)) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "path too long");
	k = lama_secure_alloc(2 * LAMA_KEY_BYTES);
	if (!k)
		return lama_error(LAMA_ENOMEM, "out of secure memory");
	rc = lama_search_keys(s, k, k + LAMA_KEY_BYTES);
	if (!rc)
		rc = lama_search_open_at(path, k, k + LAMA_KEY_BYTES, out);
	lama_secure_free(k);
	return rc;
}

void lama_search_close(lama_search *x)
{
	if (!x)
		return;
	if (x->u61i)
		x->u61.xDelete(x->u61i);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(x->st[i]);
	/* the tokenizer module stays registered until the connection closes */
	sqlite3_close_v2(x->db);
	lama_secure_free(x->k);
	lama_buf_release_wipe(&x->tmp);
	lama_free(x);
}

/* ---- rows ---- */

static void tag_of_id(lama_search *x, const lama_hash *id, uint8_t tag[32])
{
	uint8_t in[1 + sizeof(id->b)];

	in[0] = 'm';
	memcpy(in + 1, id->b, sizeof(id->b));
	lama_keyed_hash(tag, in, sizeof(in), x->k->row);
}

/* The topic's tag, and the same as the one token of the fts topic column. */
static void tag_of_topic(lama_search *x, const char *topic, size_t n, uint8_t tag[32],
			 char tok[B32_LEN + 1])
{
	uint8_t in[1 + LAMA_SEARCH_TOPIC_MAX];

	in[0] = 't';
	memcpy(in + 1, topic, n);
	lama_keyed_hash(tag, in, n + 1, x->k->row);
	b32(tok, tag);
	tok[B32_LEN] = 0;
}

/* A sealed record, opened: pointers into the caller's plaintext buffer. */
struct rec {
	lama_hash id, sender;
	double time;
	const char *topic;
	size_t topic_len;
	const char *text;
	size_t text_len;
};

#define REC_HEAD (1 + 32 + 32 + 8 + 1)
#define SEAL_AD "lama search v1"

static void seal_ad(uint8_t ad[sizeof(SEAL_AD) - 1 + 32], const uint8_t tag[32])
{
	memcpy(ad, SEAL_AD, sizeof(SEAL_AD) - 1);
	memcpy(ad + sizeof(SEAL_AD) - 1, tag, 32);
}

/* Seals d under tag into b (which it resets). */
static int seal_doc(lama_search *x, const struct lama_search_doc *d, const uint8_t tag[32],
		    struct lama_buf *b)
{
	size_t tl = strlen(d->topic), n = REC_HEAD + tl + d->text_len;
	uint8_t *p, ad[sizeof(SEAL_AD) - 1 + 32];
	uint64_t t;
	int rc;

	lama_buf_truncate(b, 0);
	/* the plaintext goes after the room for the sealed copy */
	if ((rc = lama_buf_grow(b, 2 * n + LAMA_AEAD_OVERHEAD)))
		return rc;
	p = (uint8_t *)b->data + n + LAMA_AEAD_OVERHEAD;
	p[0] = SEAL_VERSION;
	memcpy(p + 1, d->id.b, 32);
	memcpy(p + 33, d->sender.b, 32);
	memcpy(&t, &d->time, 8);
	for (int i = 0; i < 8; i++)
		p[65 + i] = (uint8_t)(t >> (8 * i));
	p[73] = (uint8_t)tl;
	memcpy(p + REC_HEAD, d->topic, tl);
	memcpy(p + REC_HEAD + tl, d->text, d->text_len);
	seal_ad(ad, tag);
	rc = lama_aead_seal((uint8_t *)b->data, p, n, ad, sizeof(ad), x->k->seal);
	lama_wipe(p, n);
	if (rc)
		return rc;
	b->len = n + LAMA_AEAD_OVERHEAD;
	return 0;
}

/* Opens a sealed record into b (reset) and parses it into r. */
static int open_rec(lama_search *x, const void *sealed, size_t n, const uint8_t tag[32],
		    struct lama_buf *b, struct rec *r)
{
	uint8_t ad[sizeof(SEAL_AD) - 1 + 32], chk[32];
	const uint8_t *p;
	uint64_t t = 0;
	int rc;

	lama_buf_truncate(b, 0);
	if (n < LAMA_AEAD_OVERHEAD + REC_HEAD || n > LAMA_AEAD_OVERHEAD + REC_HEAD +
	    LAMA_SEARCH_TOPIC_MAX + LAMA_SEARCH_TEXT_MAX)
		return lama_error(LAMA_ECORRUPT, "search index: a sealed text has a bad size: rebuild it");
	if ((rc = lama_buf_grow(b, n)))
		return rc;
	seal_ad(ad, tag);
	if (lama_aead_open((uint8_t *)b->data, sealed, n, ad, sizeof(ad), x->k->seal))
		return lama_error(LAMA_ECRYPTO, "search index: a sealed text fails to open (tampered, or another key): rebuild it");
	b->len = n - LAMA_AEAD_OVERHEAD;
	b->data[b->len] = 0;
	p = (const uint8_t *)b->data;
	if (p[0] != SEAL_VERSION || (size_t)REC_HEAD + p[73] > b->len || p[73] == 0 ||
	    p[73] > LAMA_SEARCH_TOPIC_MAX)
		return lama_error(LAMA_ECORRUPT, "search index: a sealed text is malformed: rebuild it");
	memcpy(r->id.b, p + 1, 32);
	memcpy(r->sender.b, p + 33, 32);
	for (int i = 0; i < 8; i++)
		t |= (uint64_t)p[65 + i] << (8 * i);
	memcpy(&r->time, &t, 8);
	r->topic = (const char *)p + REC_HEAD;
	r->topic_len = p[73];
	r->text = r->topic + r->topic_len;
	r->text_len = b->len - REC_HEAD - r->topic_len;
	tag_of_id(x, &r->id, chk);
	if (lama_memcmp_ct(chk, tag, 32))
		return lama_error(LAMA_ECORRUPT, "search index: a sealed text is in the wrong row: rebuild it");
	return 0;
}

/* Removes the row with this tag from docs and fts, if there is one. */
static int remove_tag(lama_search *x, const uint8_t tag[32])
{
	sqlite3_stmt *st = NULL, *del = NULL;
	struct rec r;
	char ttok[B32_LEN + 1];
	uint8_t ttag[32];
	sqlite3_int64 rowid;
	int rc;

	if ((rc = cached(x, S_FIND, &st)) != SQLITE_OK)
		return sql_fail(x, rc, "prepare");
	sqlite3_bind_blob(st, 1, tag, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rc = sql_fail(x, rc, "reading a row");
		goto out;
	}
	rowid = sqlite3_column_int64(st, 0);
	/* a contentless table forgets a row given the exact text it indexed */
	if ((rc = open_rec(x, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), tag,
			   &x->tmp, &r)))
		goto out;
	tag_of_topic(x, r.topic, r.topic_len, ttag, ttok);
	if ((rc = cached(x, S_UNINDEX, &del)) == SQLITE_OK) {
		sqlite3_bind_int64(del, 1, rowid);
		sqlite3_bind_text(del, 2, r.text, (int)r.text_len, SQLITE_STATIC);
		sqlite3_bind_text(del, 3, ttok, B32_LEN, SQLITE_STATIC);
		rc = sqlite3_step(del);
	}
	if (rc != SQLITE_DONE) {
		rc = sql_fail(x, rc, "unindexing");
		goto out;
	}
	sqlite3_reset(del);
	if ((rc = cached(x, S_DELETE, &del)) == SQLITE_OK) {
		sqlite3_bind_int64(del, 1, rowid);
		rc = sqlite3_step(del);
	}
	rc = rc == SQLITE_DONE ? 0 : sql_fail(x, rc, "deleting a row");
out:
	/* the opened text, if any (beyond len it was wiped before, and a
	 * failed open leaves zeros) */
	if (x->tmp.len)
		lama_wipe(x->tmp.data, x->tmp.len);
	lama_buf_truncate(&x->tmp, 0);
	if (st)
		sqlite3_reset(st);
	if (del)
		sqlite3_reset(del);
	return rc;
}

static int check_doc(const struct lama_search_doc *d)
{
	size_t tl;

	if (!d || !d->topic || (!d->text && d->text_len))
		return lama_error(LAMA_EINVAL, "search: a document needs a topic and a text");
	tl = strnlen(d->topic, LAMA_SEARCH_TOPIC_MAX + 1);
	if (tl == 0 || tl > LAMA_SEARCH_TOPIC_MAX)
		return lama_error(LAMA_EINVAL, "search: a topic id has 1 to %d bytes", LAMA_SEARCH_TOPIC_MAX);
	if (d->text_len > LAMA_SEARCH_TEXT_MAX)
		return lama_error(LAMA_ELIMIT, "search: a text over %u bytes", LAMA_SEARCH_TEXT_MAX);
	return 0;
}

static int top_row(lama_search *x, uint64_t *top);

/* Adds one document inside the caller's transaction, as row number rowid
 * (0: above every row and every topic's reserved block). */
static int add_one(lama_search *x, const struct lama_search_doc *d, sqlite3_int64 rowid,
		   struct lama_buf *sealed)
{
	sqlite3_stmt *st = NULL;
	uint8_t tag[32], ttag[32];
	char ttok[B32_LEN + 1];
	int rc;

	if ((rc = check_doc(d)))
		return rc;
	tag_of_id(x, &d->id, tag);
	if ((rc = remove_tag(x, tag)))
		return rc;
	if (d->text_len == 0)
		return 0;
	tag_of_topic(x, d->topic, strlen(d->topic), ttag, ttok);
	if ((rc = seal_doc(x, d, tag, sealed)))
		return rc;
	if (rowid <= 0) {
		uint64_t top;

		if ((rc = top_row(x, &top)))
			return rc;
		if (top >= INT64_MAX)
			return lama_error(LAMA_ELIMIT, "search index: out of row numbers: rebuild it");
		rowid = (sqlite3_int64)top + 1;
	}
	if ((rc = cached(x, S_INSERT, &st)) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, tag, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, ttag, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, sealed->data, (int)sealed->len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, rowid);
		rc = sqlite3_step(st);
	}
	if (st)
		sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sql_fail(x, rc, "adding a row");
	rowid = sqlite3_last_insert_rowid(x->db);
	if ((rc = cached(x, S_INDEX, &st)) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, rowid);
		sqlite3_bind_text(st, 2, d->text, (int)d->text_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ttok, B32_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (st)
		sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(x, rc, "indexing");
}

static int begin(lama_search *x)
{
	return exec(x, "BEGIN IMMEDIATE");
}

static int end(lama_search *x, int rc)
{
	if (rc) {
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return exec(x, "COMMIT");
}

int lama_search_add_batch(lama_search *x, const struct lama_search_doc *d, size_t n)
{
	struct lama_buf sealed = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc;

	for (size_t i = 0; i < n; i++)
		if ((rc = check_doc(&d[i])))
			return rc;
	if ((rc = begin(x)))
		return rc;
	for (size_t i = 0; i < n && !rc; i++)
		rc = add_one(x, &d[i], 0, &sealed);
	lama_buf_release(&sealed);
	return end(x, rc);
}

int lama_search_add(lama_search *x, const struct lama_search_doc *d)
{
	return lama_search_add_batch(x, d, 1);
}

int lama_search_doc_of_message(const char *topic, const json_t *m, struct lama_search_doc *d,
				int *removed)
{
	const json_t *id = json_object_get(m, "id"), *sender = json_object_get(m, "sender");
	const json_t *time = json_object_get(m, "time"), *text = json_object_get(m, "text");

	memset(d, 0, sizeof(*d));
	*removed = 0;
	if (!json_is_string(id) || lama_hash_parse(json_string_value(id), json_string_length(id), &d->id))
		return lama_error(LAMA_EINVAL, "search: a message needs its id (64 hex digits)");
	if (json_is_true(json_object_get(m, "deleted"))) {
		*removed = 1;
		return 0;
	}
	if (!json_is_string(sender) ||
	    lama_hash_parse(json_string_value(sender), json_string_length(sender), &d->sender))
		return lama_error(LAMA_EINVAL, "search: a message needs its sender (64 hex digits)");
	if (!json_is_number(time))
		return lama_error(LAMA_EINVAL, "search: a message needs its time");
	if (!json_is_string(text))
		return lama_error(LAMA_EINVAL, "search: a message needs its text");
	d->topic = topic;
	d->time = json_number_value(time);
	d->text = json_string_value(text);
	d->text_len = json_string_length(text);
	*removed = d->text_len == 0;
	return 0;
}

int lama_search_add_message(lama_search *x, const char *topic, const json_t *m)
{
	struct lama_search_doc d;
	int removed, rc = lama_search_doc_of_message(topic, m, &d, &removed);

	if (rc)
		return rc;
	return removed ? lama_search_remove(x, &d.id) : lama_search_add(x, &d);
}

int lama_search_remove(lama_search *x, const lama_hash *id)
{
	uint8_t tag[32];
	int rc;

	tag_of_id(x, id, tag);
	if ((rc = begin(x)))
		return rc;
	return end(x, remove_tag(x, tag));
}

static int count_sql(lama_search *x, const char *sql, uint64_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(x->db, sql, -1, &st, NULL);

	*n = 0;
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : sql_fail(x, rc, "counting");
}

/* The highest row number in use or reserved for a topic's block. */
static int top_row(lama_search *x, uint64_t *top)
{
	return count_sql(x, "SELECT max(coalesce((SELECT max(rowid) FROM docs), 0),"
			 " coalesce((SELECT v FROM meta WHERE k = 'top'), 0))", top);
}

int lama_search_count(lama_search *x, uint64_t *n)
{
	return count_sql(x, "SELECT count(*) FROM docs", n);
}

int lama_search_is_built(lama_search *x)
{
	uint64_t n = 0;

	if (count_sql(x, "SELECT count(*) FROM meta WHERE k = 'built' AND v = 1", &n))
		return 0;
	return n > 0;
}

/* ---- queries ---- */

/* A parsed query: the FTS5 MATCH expression and the folded words to
 * highlight. */
struct parsed {
	struct lama_buf match;
	struct lama_buf words;  /* folded positive tokens, each NUL-terminated */
	size_t nwords;
};

static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (unsigned k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Appends term t[0..n) as a quoted phrase of its folded tokens; *empty = 1
 * when it has none (punctuation only). */
static int add_phrase(lama_search *x, struct parsed *p, const char *t, size_t n, int positive,
		      int *empty)
{
	struct fold f;
	int rc;

	if ((rc = fold(x, t, n, &f)))
		return rc;
	*empty = f.n == 0;
	if (f.n == 0)
		goto out;
	if ((rc = lama_buf_addch(&p->match, '"')))
		goto out;
	for (size_t i = 0; i < f.n; i++) {
		const char *w = f.text.data + f.t[i].off;

		/* folded tokens are letters, digits and marks: never a quote,
		 * but a quote would be doubled all the same */
		for (size_t j = 0; j < f.t[i].len && !rc; j++)
			rc = w[j] == '"' ? lama_buf_add(&p->match, "\"\"", 2) : lama_buf_addch(&p->match, w[j]);
		if (!rc && i + 1 < f.n)
			rc = lama_buf_addch(&p->match, ' ');
		if (!rc && positive) {
			rc = lama_buf_add(&p->words, w, f.t[i].len + 1);
			p->nwords++;
		}
		if (rc)
			goto out;
	}
	rc = lama_buf_addch(&p->match, '"');
out:
	fold_release(&f);
	return rc;
}

enum { T_WORD, T_PHRASE, T_OR };

struct term {
	int kind, neg;
	const char *s;
	size_t n;
};

/* Splits the query into terms. */
static int lex(const char *q, size_t n, struct term *t, size_t *nt)
{
	size_t i = 0;

	*nt = 0;
	while (i < n) {
		struct term cur = { T_WORD, 0, NULL, 0 };

		if (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r') {
			i++;
			continue;
		}
		if (*nt == LAMA_SEARCH_TERMS_MAX)
			return lama_error(LAMA_EINVAL, "search: a query has at most %d terms",
					  LAMA_SEARCH_TERMS_MAX);
		if (q[i] == '-' && i + 1 < n && q[i + 1] != ' ' && q[i + 1] != '\t' && q[i + 1] != '\n' &&
		    q[i + 1] != '\r') {
			cur.neg = 1;
			i++;
		}
		if (q[i] == '"') {
			const char *e = memchr(q + i + 1, '"', n - i - 1);

			if (!e)
				return lama_error(LAMA_EINVAL, "search: a quote is not closed");
			cur.kind = T_PHRASE;
			cur.s = q + i + 1;
			cur.n = (size_t)(e - cur.s);
			i = (size_t)(e - q) + 1;
		} else {
			size_t s = i;

			while (i < n && q[i] != ' ' && q[i] != '\t' && q[i] != '\n' && q[i] != '\r' &&
			       q[i] != '"')
				i++;
			cur.s = q + s;
			cur.n = i - s;
			if (!cur.neg && cur.n == 2 && !memcmp(cur.s, "OR", 2))
				cur.kind = T_OR;
		}
		t[(*nt)++] = cur;
	}
	return 0;
}

static int parse(lama_search *x, const char *q, size_t n, const char *topic_tok, struct parsed *p)
{
	struct term t[LAMA_SEARCH_TERMS_MAX];
	size_t nt, groups = 0;
	struct lama_buf expr = LAMA_BUF_INIT(64 << 10);
	int rc, empty;

	memset(p, 0, sizeof(*p));
	p->match.max = 64 << 10;
	p->words.max = 64 << 10;
	if (n > LAMA_SEARCH_QUERY_MAX)
		return lama_error(LAMA_ELIMIT, "search: a query has at most %d bytes", LAMA_SEARCH_QUERY_MAX);
	if (memchr(q, 0, n))
		return lama_error(LAMA_EINVAL, "search: a query cannot hold a NUL byte");
	if (!valid_utf8((const unsigned char *)q, n))
		return lama_error(LAMA_EINVAL, "search: a query must be UTF-8");
	if ((rc = lex(q, n, t, &nt)))
		return rc;
	for (size_t i = 0; i < nt; i++) {
		if (t[i].kind != T_OR)
			continue;
		if (i == 0 || i + 1 == nt || t[i - 1].kind == T_OR || t[i - 1].neg ||
		    t[i + 1].kind == T_OR || t[i + 1].neg)
			return lama_error(LAMA_EINVAL, "search: OR stands between two words or phrases (not excluded ones)");
	}
	/* positive groups: runs of terms joined by OR */
	for (size_t i = 0; i < nt; i++) {
		size_t start = p->match.len, members = 0;

		if (t[i].neg || t[i].kind == T_OR)
			continue;
		if (i > 0 && t[i - 1].kind == T_OR)
			continue; /* already in the group before */
		if ((rc = lama_buf_addch(&p->match, '(')))
			goto out;
		for (size_t j = i; j < nt; j += 2) {
			size_t at = p->match.len;

			if (members && (rc = lama_buf_addstr(&p->match, " OR ")))
				goto out;
			if ((rc = add_phrase(x, p, t[j].s, t[j].n, 1, &empty)))
				goto out;
			if (empty)
				lama_buf_truncate(&p->match, at);
			else
				members++;
			if (j + 1 >= nt || t[j + 1].kind != T_OR)
				break;
		}
		if (!members) {
			lama_buf_truncate(&p->match, start);
			continue;
		}
		if ((rc = lama_buf_addch(&p->match, ')')))
			goto out;
		if (groups && (rc = lama_buf_add(&expr, " AND ", 5)))
			goto out;
		if ((rc = lama_buf_add(&expr, p->match.data + start, p->match.len - start)))
			goto out;
		lama_buf_truncate(&p->match, start);
		groups++;
	}
	if (!groups) {
		rc = lama_error(LAMA_EINVAL, "search: the query has no word to look for");
		goto out;
	}
	for (size_t i = 0; i < nt; i++) {
		struct lama_buf neg = LAMA_BUF_INIT(64 << 10);

		if (!t[i].neg)
			continue;
		lama_buf_truncate(&p->match, 0);
		if ((rc = add_phrase(x, p, t[i].s, t[i].n, 0, &empty)))
			goto out;
		if (empty)
			continue;
		/* (expr) NOT phrase, one exclusion at a time */
		if ((rc = lama_buf_addch(&neg, '(')) || (rc = lama_buf_add(&neg, expr.data, expr.len)) ||
		    (rc = lama_buf_addstr(&neg, ") NOT ")) ||
		    (rc = lama_buf_add(&neg, p->match.data, p->match.len))) {
			lama_buf_release(&neg);
			goto out;
		}
		lama_buf_release(&expr);
		expr = neg;
	}
	lama_buf_truncate(&p->match, 0);
	if ((rc = lama_buf_addf(&p->match, "body : (%s)", expr.data)))
		goto out;
	if (topic_tok && (rc = lama_buf_addf(&p->match, " AND topic : \"%s\"", topic_tok)))
		goto out;
out:
	lama_buf_release_wipe(&expr);
	return rc;
}

static void parsed_release(struct parsed *p)
{
	lama_buf_release_wipe(&p->match);
	lama_buf_release_wipe(&p->words);
}

static int is_word(const struct parsed *p, const char *w, size_t n)
{
	const char *c = p->words.data;

	for (size_t i = 0; i < p->nwords; i++) {
		size_t l = strlen(c);

		if (l == n && !memcmp(c, w, n))
			return 1;
		c += l + 1;
	}
	return 0;
}

#define ELLIPSIS "\xe2\x80\xa6"

/* Fills the snippet of h from r's text into b. */
static int snippet(lama_search *x, const struct parsed *p, const struct rec *r, struct lama_buf *b,
		   struct lama_search_hit *h)
{
	struct fold f;
	size_t first = r->text_len, start = 0, endb, pre;
	int rc;

	lama_buf_truncate(b, 0);
	h->nhl = 0;
	if ((rc = fold(x, r->text, r->text_len, &f)))
		return rc;
	for (size_t i = 0; i < f.n; i++)
		if (is_word(p, f.text.data + f.t[i].off, f.t[i].len)) {
			first = (size_t)f.t[i].start;
			break;
		}
	if (first < r->text_len && first > 40) {
		/* begin at a word a little before the first hit */
		for (size_t i = 0; i < f.n; i++)
			if ((size_t)f.t[i].start >= first - 40) {
				start = (size_t)f.t[i].start;
				break;
			}
	}
	endb = start + LAMA_SEARCH_SNIPPET_MAX;
	if (endb >= r->text_len) {
		endb = r->text_len;
	} else {
		while (endb > start && ((unsigned char)r->text[endb] & 0xc0) == 0x80)
			endb--;
	}
	pre = start ? sizeof(ELLIPSIS) - 1 : 0;
	if ((start && (rc = lama_buf_addstr(b, ELLIPSIS))) ||
	    (rc = lama_buf_add(b, r->text + start, endb - start)) ||
	    (endb < r->text_len && (rc = lama_buf_addstr(b, ELLIPSIS))))
		goto out;
	for (size_t i = 0; i < f.n && h->nhl < LAMA_SEARCH_HL_MAX; i++) {
		if ((size_t)f.t[i].start < start || (size_t)f.t[i].end > endb)
			continue;
		if (!is_word(p, f.text.data + f.t[i].off, f.t[i].len))
			continue;
		h->hl[h->nhl].off = (uint32_t)(pre + (size_t)f.t[i].start - start);
		h->hl[h->nhl].len = (uint32_t)(f.t[i].end - f.t[i].start);
		h->nhl++;
	}
	h->snippet = b->data;
	h->snippet_len = b->len;
out:
	fold_release(&f);
	return rc;
}

int lama_search_query(lama_search *x, const char *q, size_t n, const struct lama_search_opts *o,
		      int (*fn)(void *ctx, const struct lama_search_hit *h), void *ctx)
{
	struct parsed p;
	struct lama_buf plain = LAMA_BUF_INIT(LAMA_BUF_MAX), snip = LAMA_BUF_INIT(LAMA_BUF_MAX);
	char ttok[B32_LEN + 1], topic[LAMA_SEARCH_TOPIC_MAX + 1];
	uint8_t ttag[32];
	sqlite3_stmt *st = NULL;
	size_t limit = o && o->limit ? o->limit : 20;
	size_t window = o && o->rank_window ? o->rank_window : LAMA_SEARCH_RANK_WINDOW;
	int rc;

	memset(&p, 0, sizeof(p));
	if (!q)
		return lama_error(LAMA_EINVAL, "search: no query");
	if (limit > LAMA_SEARCH_LIMIT_MAX)
		return lama_error(LAMA_EINVAL, "search: at most %d results", LAMA_SEARCH_LIMIT_MAX);
	if (o && o->topic) {
		size_t tl = strnlen(o->topic, LAMA_SEARCH_TOPIC_MAX + 1);

		if (tl == 0 || tl > LAMA_SEARCH_TOPIC_MAX)
			return lama_error(LAMA_EINVAL, "search: a topic id has 1 to %d bytes",
					  LAMA_SEARCH_TOPIC_MAX);
		tag_of_topic(x, o->topic, tl, ttag, ttok);
	}
	if (window < limit)
		window = limit;
	if ((rc = parse(x, q, n, o && o->topic ? ttok : NULL, &p)))
		goto out;
	/* One pass over the matches, newest first, bm25 for the newest `window`
	 * of them only (each costs a lookup of the row's length), the best
	 * `limit` kept; then docs is read for those alone. */
	rc = sqlite3_prepare_v2(x->db,
				"SELECT s.rowid, s.score, d.tag, d.sealed FROM"
				" (SELECT rowid, score FROM"
				"  (SELECT rowid, bm25(fts, 1.0, 0.0) AS score FROM fts WHERE fts MATCH ?1"
				"   ORDER BY rowid DESC LIMIT ?3)"
				"  ORDER BY score LIMIT ?2) s"
				" JOIN docs d ON d.rowid = s.rowid ORDER BY s.score, s.rowid DESC",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = sql_fail(x, rc, "prepare");
		goto out;
	}
	sqlite3_bind_text(st, 1, p.match.data, (int)p.match.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)window);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct lama_search_hit h;
		struct rec r;

		memset(&h, 0, sizeof(h));
		if (sqlite3_column_bytes(st, 2) != 32) {
			rc = lama_error(LAMA_ECORRUPT, "search index: a row has a bad tag: rebuild it");
			goto out;
		}
		if ((rc = open_rec(x, sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3),
				   sqlite3_column_blob(st, 2), &plain, &r)))
			goto out;
		memcpy(topic, r.topic, r.topic_len);
		topic[r.topic_len] = 0;
		h.id = r.id;
		h.sender = r.sender;
		h.time = r.time;
		h.topic = topic;
		h.rank = sqlite3_column_double(st, 1);
		if ((rc = snippet(x, &p, &r, &snip, &h)))
			goto out;
		if ((rc = fn(ctx, &h)))
			goto out;
	}
	/* SQLITE_ERROR here is FTS5 refusing the expression built above: a
	 * bug, never the user's text, but reported as such rather than leaked */
	if (rc == SQLITE_ERROR)
		rc = lama_error(LAMA_EINVAL, "search: the query could not be run");
	else
		rc = rc == SQLITE_DONE ? 0 : sql_fail(x, rc, "searching");
out:
	sqlite3_finalize(st);
	parsed_release(&p);
	lama_buf_release_wipe(&plain);
	lama_buf_release_wipe(&snip);
	return rc;
}

json_t *lama_search_hit_json(const struct lama_search_hit *h)
{
	char id[LAMA_HASH_HEX + 1], sender[LAMA_HASH_HEX + 1];
	json_t *snip = json_stringn(h->snippet, h->snippet_len), *hl = json_array(), *o;

	lama_hash_hex(&h->id, id);
	lama_hash_hex(&h->sender, sender);
	for (size_t i = 0; snip && hl && i < h->nhl; i++)
		if (json_array_append_new(hl, json_pack("[I, I]", (json_int_t)h->hl[i].off,
						       (json_int_t)h->hl[i].len))) {
			json_decref(hl);
			hl = NULL;
		}
	if (!snip)
		snip = json_string("");
	o = json_pack("{s:s, s:s?, s:s, s:f, s:f, s:o?, s:o?}", "id", id, "topic", h->topic, "sender",
		      sender, "time", h->time, "rank", h->rank, "snippet", snip, "highlights", hl);
	if (!o || !json_object_get(o, "topic") || !json_object_get(o, "snippet") ||
	    !json_object_get(o, "highlights")) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- keeping up with the archive ---- */

static int check_topic(const struct lama_search_topic *t)
{
	size_t n = t && t->id ? strnlen(t->id, LAMA_SEARCH_TOPIC_MAX + 1) : 0;

	if (n == 0 || n > LAMA_SEARCH_TOPIC_MAX)
		return lama_error(LAMA_EINVAL, "search: a topic id has 1 to %d bytes",
				  LAMA_SEARCH_TOPIC_MAX);
	return 0;
}

/* What the topic looked like when indexed, keyed (the file shows no count
 * or time). Host byte order: the index never leaves its machine. */
static void topic_state_hash(lama_search *x, const struct lama_search_topic *t, uint8_t out[32])
{
	uint8_t in[1 + 8 + 8 + LAMA_SEARCH_TOPIC_MAX];
	size_t n = strlen(t->id);

	in[0] = 's';
	memcpy(in + 1, &t->entries, 8);
	memcpy(in + 9, &t->last_time, 8);
	memcpy(in + 17, t->id, n);
	lama_keyed_hash(out, in, 17 + n, x->k->row);
}

/* Removes every row of the topic with this tag. */
static int remove_topic(lama_search *x, const uint8_t ttag[32])
{
	sqlite3_stmt *st;
	uint8_t tag[32];
	int rc;

	for (;;) {
		if ((rc = cached(x, S_TOPIC_ROW, &st)) != SQLITE_OK)
			return sql_fail(x, rc, "prepare");
		sqlite3_bind_blob(st, 1, ttag, 32, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32)
			memcpy(tag, sqlite3_column_blob(st, 0), 32);
		else if (rc == SQLITE_ROW)
			rc = SQLITE_CORRUPT;
		sqlite3_reset(st); /* before remove_tag changes docs */
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return sql_fail(x, rc, "reading a topic's rows");
		if ((rc = remove_tag(x, tag)))
			return rc;
	}
}
/* Forgets topics not among t[0..n). */
static int tag_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static int drop_gone(lama_search *x, const struct lama_search_topic *t, size_t n)
{
	sqlite3_stmt *st = NULL;
	uint8_t (*keep)[32] = NULL, (*gone)[32] = NULL;
	size_t ngone = 0, cap = 0;
	char tok[B32_LEN + 1];
	int rc;

	if (n && !(keep = lama_malloc(n * 32)))
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		tag_of_topic(x, t[i].id, strlen(t[i].id), keep[i], tok);
	if (n)
		qsort(keep, n, 32, tag_cmp);
	/* one pass to find the topics not kept, then each removed */
	rc = sqlite3_prepare_v2(x->db, "SELECT DISTINCT topic FROM docs UNION SELECT tag FROM topics",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = sql_fail(x, rc, "prepare");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *tag = sqlite3_column_blob(st, 0);

		if (sqlite3_column_bytes(st, 0) != 32 || (n && bsearch(tag, keep, n, 32, tag_cmp)))
			continue;
		if (lama_grow(&gone, &cap, ngone, 32, 16)) {
			rc = LAMA_ENOMEM;
			goto out;
		}
		memcpy(gone[ngone++], tag, 32);
	}
	if (rc != SQLITE_DONE) {
		rc = sql_fail(x, rc, "reading topics");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = 0;
	for (size_t i = 0; i < ngone && !rc; i++) {
		if ((rc = begin(x)))
			break;
		rc = remove_topic(x, gone[i]);
		if (!rc) {
			rc = sqlite3_prepare_v2(x->db, "DELETE FROM topics WHERE tag = ?1", -1, &st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_blob(st, 1, gone[i], 32, SQLITE_STATIC);
				rc = sqlite3_step(st);
			}
			rc = rc == SQLITE_DONE ? 0 : sql_fail(x, rc, "forgetting a topic");
			sqlite3_finalize(st);
			st = NULL;
		}
		rc = end(x, rc);
	}
out:
	sqlite3_finalize(st);
	lama_free(gone);
	lama_free(keep);
	return rc;
}

/* Reserves the row numbers up to top (it only grows). */
static int set_top(lama_search *x, uint64_t top)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(x->db, "INSERT INTO meta(k, v) VALUES('top', ?1) ON CONFLICT(k)"
				    " DO UPDATE SET v = max(v, excluded.v)", -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)top);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(x, rc, "reserving rows");
}

static int mark_built(lama_search *x)
{
	return exec(x, "INSERT OR REPLACE INTO meta(k, v) VALUES('built', 1)");
}

int lama_search_clear(lama_search *x)
{
	int rc = exec(x, "BEGIN IMMEDIATE; DELETE FROM docs; DELETE FROM topics;"
		      "DELETE FROM meta WHERE k IN ('built', 'top');"
		      "INSERT INTO fts(fts) VALUES('delete-all'); COMMIT;");

	if (rc)
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int lama_search_plan(lama_search *x, const struct lama_search_topic *t, size_t n, int mode,
		     uint8_t *stale, size_t *nstale)
{
	sqlite3_stmt *st = NULL;
	int rc, rebuild = mode == LAMA_SEARCH_PLAN_REBUILD ||
			  (mode == LAMA_SEARCH_PLAN_AUTO && !lama_search_is_built(x));

	*nstale = 0;
	for (size_t i = 0; i < n; i++)
		if ((rc = check_topic(&t[i])))
			return rc;
	if (rebuild && (rc = lama_search_clear(x)))
		return rc;
	rc = sqlite3_prepare_v2(x->db, "SELECT 1 FROM topics WHERE tag = ?1 AND state = ?2", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(x, rc, "prepare");
	for (size_t i = 0; i < n; i++) {
		uint8_t ttag[32], state[32];
		char ttok[B32_LEN + 1];

		stale[i] = 1;
		if (!rebuild) {
			tag_of_topic(x, t[i].id, strlen(t[i].id), ttag, ttok);
			topic_state_hash(x, &t[i], state);
			sqlite3_reset(st);
			sqlite3_bind_blob(st, 1, ttag, 32, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, state, 32, SQLITE_STATIC);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW)
				stale[i] = 0; /* unchanged since indexed */
			else if (rc != SQLITE_DONE) {
				rc = sql_fail(x, rc, "reading topics");
				sqlite3_finalize(st);
				return rc;
			}
		}
		*nstale += stale[i];
	}
	sqlite3_finalize(st);
	if ((rc = drop_gone(x, t, n)))
		return rc;
	return *nstale ? 0 : mark_built(x);
}

int lama_search_put_topic(lama_search *x, struct lama_search_put *p, const struct lama_search_doc *d,
			  size_t n)
{
	struct lama_buf sealed = LAMA_BUF_INIT(LAMA_BUF_MAX);
	sqlite3_stmt *st = NULL;
	uint64_t base = p->base, next = p->next;
	uint8_t ttag[32], state[32];
	char ttok[B32_LEN + 1];
	int rc;

	if ((rc = check_topic(&p->topic)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((rc = check_doc(&d[i])))
			return rc;
		if (strcmp(d[i].topic, p->topic.id))
			return lama_error(LAMA_EINVAL, "search: a message of another topic in a topic's batch");
	}
	if (!(p->flags & LAMA_SEARCH_PUT_FIRST) &&
	    (base > INT64_MAX || next > INT64_MAX || next < base))
		return lama_error(LAMA_EINVAL, "search: a topic's rows are out of range");
	if (p->topic.entries > INT64_MAX / 2)
		return lama_error(LAMA_EINVAL, "search: a topic of %llu entries",
				  (unsigned long long)p->topic.entries);
	tag_of_topic(x, p->topic.id, strlen(p->topic.id), ttag, ttok);
	if ((rc = begin(x)))
		return rc;
	if (p->flags & LAMA_SEARCH_PUT_FIRST) {
		/* the topic's old rows go, and it gets a block of row numbers
		 * above all others, in its time order: the newest rows are the
		 * newest messages (see the ranking window) */
		if (!(rc = remove_topic(x, ttag)) && !(rc = top_row(x, &base))) {
			if (base > INT64_MAX / 2)
				rc = lama_error(LAMA_ELIMIT, "search index: out of row numbers: rebuild it");
			next = base + p->topic.entries + 2;
		}
		/* the block is reserved whatever fills it (deleted messages
		 * leave holes): live adds go above it */
		if (!rc)
			rc = set_top(x, next);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		/* never below the block: a topic grown past its count since
		 * the plan puts the extra messages after all rows */
		if (next > base)
			next--;
		rc = add_one(x, &d[i], next > base ? (sqlite3_int64)next : 0, &sealed);
	}
	if (!rc && (p->flags & LAMA_SEARCH_PUT_LAST)) {
		topic_state_hash(x, &p->topic, state);
		rc = sqlite3_prepare_v2(x->db, "INSERT OR REPLACE INTO topics(tag, state) VALUES(?1, ?2)",
					-1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_blob(st, 1, ttag, 32, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, state, 32, SQLITE_STATIC);
			rc = sqlite3_step(st);
		}
		rc = rc == SQLITE_DONE ? 0 : sql_fail(x, rc, "recording a topic");
		sqlite3_finalize(st);
	}
	if (!rc && (p->flags & LAMA_SEARCH_PUT_BUILT))
		rc = mark_built(x);
	lama_buf_release_wipe(&sealed);
	if ((rc = end(x, rc)))
		return rc;
	p->base = base;
	p->next = next;
	return 0;
}

/* ---- reading the archive in batches ---- */

static int batch_message(void *ctx, const struct lama_message *m)
{
	struct lama_search_batch *b = ctx;
	size_t len = m->deleted ? 0 : m->text_len;
	int rc;

	if (len > LAMA_SEARCH_TEXT_MAX)
		len = LAMA_SEARCH_TEXT_MAX; /* the chat's own limit: never more */
	if (lama_grow(&b->d, &b->cap, b->n, sizeof(*b->d), 64))
		return LAMA_ENOMEM;
	/* texts are kept as offsets until the page is read (the buffer moves) */
	b->d[b->n] = (struct lama_search_doc){ .id = m->id, .topic = b->topic, .sender = m->sender,
					       .time = m->time, .text = NULL,
					       .text_len = len };
	b->d[b->n].text = (const char *)(uintptr_t)b->text.len;
	if (len && (rc = lama_buf_add(&b->text, m->text, len)))
		return rc;
	b->n++;
	b->last = m->id;
	b->started = 1;
	/* a page of long texts is cut short: batches stay a few MiB */
	return b->text.len >= LAMA_SEARCH_BATCH_BYTES ? 1 : 0;
}

int lama_search_batch_read(lama_session *s, const struct lama_topic *t,
			   struct lama_search_batch *b)
{
	lama_hash before = b->last;
	int rc, more = 0;

	b->n = 0;
	b->stuck = 0;
	lama_buf_truncate(&b->text, 0);
	b->text.max = LAMA_BUF_MAX;
	snprintf(b->topic, sizeof(b->topic), "%s", t->id);
	rc = lama_chat_messages(s, t, b->started ? &before : NULL,
				b->limit && b->limit < LAMA_SEARCH_BATCH ? b->limit : LAMA_SEARCH_BATCH,
				batch_message, b, &more);
	if (rc == 1) {
		rc = 0;
		more = 1;
	}
	if (rc) {
		b->n = 0;
		return rc;
	}
	for (size_t i = 0; i < b->n; i++)
		b->d[i].text = b->text.data ? b->text.data + (uintptr_t)b->d[i].text : "";
	/* nothing read to move the cursor on: the rest is out of reach */
	b->more = more && b->n > 0;
	b->stuck = more && b->n == 0;
	return 0;
}

void lama_search_batch_release(struct lama_search_batch *b)
{
	if (!b)
		return;
	lama_buf_release_wipe(&b->text);
	lama_free(b->d);
	memset(b, 0, sizeof(*b));
}

struct topic_list {
	struct lama_search_topic *t;
	char (*ids)[LAMA_TOPIC_ID_MAX + 1];
	size_t n, cap;
	uint64_t total;
};

static int list_topic(void *ctx, const struct lama_topic *t)
{
	struct topic_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct lama_search_topic *n = lama_realloc(l->t, cap * sizeof(*n));
		char (*ids)[LAMA_TOPIC_ID_MAX + 1];

		if (!n)
			return lama_error(LAMA_ENOMEM, "out of memory");
		l->t = n;
		if (!(ids = lama_realloc(l->ids, cap * sizeof(*ids))))
			return lama_error(LAMA_ENOMEM, "out of memory");
		l->ids = ids;
		l->cap = cap;
	}
	snprintf(l->ids[l->n], sizeof(l->ids[l->n]), "%s", t->id);
	l->t[l->n].entries = t->entries;
	l->t[l->n].last_time = t->last_time;
	l->total += t->entries;
	l->n++;
	return 0;
}

int lama_search_topics(lama_session *s, struct lama_search_topic **out, size_t *n, uint64_t *total)
{
	struct topic_list l = { 0 };
	int rc = lama_chat_topics(s, list_topic, &l);

	*out = NULL;
	*n = 0;
	if (rc) {
		lama_free(l.t);
		lama_free(l.ids);
		return rc;
	}
	/* one block: the ids after the array, so one lama_free frees all */
	{
		size_t head = l.n * sizeof(*l.t);
		struct lama_search_topic *t = lama_malloc(head + l.n * sizeof(*l.ids) + 1);

		if (!t) {
			lama_free(l.t);
			lama_free(l.ids);
			return lama_error(LAMA_ENOMEM, "out of memory");
		}
		if (l.n)
			memcpy((char *)t + head, l.ids, l.n * sizeof(*l.ids));
		for (size_t i = 0; i < l.n; i++) {
			t[i] = l.t[i];
			t[i].id = (char *)t + head + i * sizeof(*l.ids);
		}
		*out = t;
	}
	*n = l.n;
	if (total)
		*total = l.total;
	lama_free(l.t);
	lama_free(l.ids);
	return 0;
}

/* One stale topic, batch after batch through lama_search_put_topic: what
 * the index worker gets from the main process, here in one process. */
static int sync_topic(lama_session *s, lama_search *x, const struct lama_search_topic *ts,
		      int built, uint64_t *done, uint64_t total, lama_search_progress progress,
		      void *pctx)
{
	struct lama_search_batch b;
	struct lama_search_put put = { .topic = *ts, .flags = LAMA_SEARCH_PUT_FIRST };
	struct lama_topic t;
	int rc;

	memset(&b, 0, sizeof(b));
	memset(&t, 0, sizeof(t));
	if ((rc = lama_chat_find(s, ts->id, &t)))
		return rc;
	do {
		if ((rc = lama_search_batch_read(s, &t, &b)))
			break;
		if (b.stuck)
			break; /* left stale (no LAST): the rest of the sync goes on */
		if (!b.more)
			put.flags |= LAMA_SEARCH_PUT_LAST | (built ? LAMA_SEARCH_PUT_BUILT : 0);
		if ((rc = lama_search_put_topic(x, &put, b.d, b.n)))
			break;
		put.flags = 0;
		*done += b.n;
		if (progress && (rc = progress(pctx, *done, total)))
			break;
	} while (b.more);
	lama_search_batch_release(&b);
	lama_topic_release(&t);
	return rc;
}

static int sync_mode(lama_session *s, lama_search *x, int mode, lama_search_progress progress,
		     void *pctx)
{
	struct lama_search_topic *t = NULL;
	uint8_t *stale = NULL;
	uint64_t total = 0, done = 0;
	size_t n = 0, nstale = 0, last = SIZE_MAX;
	int rc;

	if ((rc = lama_search_topics(s, &t, &n, &total)))
		return rc;
	if (!(stale = lama_calloc(n + 1, 1))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = lama_search_plan(x, t, n, mode, stale, &nstale)))
		goto out;
	for (size_t i = 0; i < n; i++)
		if (stale[i] && last == SIZE_MAX)
			last = i; /* the newest stale topic: it goes last */
		else if (!stale[i])
			done += t[i].entries;
	/* the least recently active first, so the newest get the highest rows */
	for (size_t i = n; i-- > 0 && !rc;)
		if (stale[i])
			rc = sync_topic(s, x, &t[i], i == last, &done, total, progress, pctx);
	if (!rc && progress)
		rc = progress(pctx, total, total);
out:
	lama_free(stale);
	lama_free(t);
	return rc;
}

int lama_search_sync(lama_session *s, lama_search *x, lama_search_progress progress, void *pctx)
{
	return sync_mode(s, x, LAMA_SEARCH_PLAN_SYNC, progress, pctx);
}

int lama_search_rebuild(lama_session *s, lama_search *x, lama_search_progress progress,
			void *pctx)
{
	return sync_mode(s, x, LAMA_SEARCH_PLAN_REBUILD, progress, pctx);
}

/* ---- results with names, for lama search and query:search ---- */

struct found {
	lama_session *s;
	json_t *results;
	json_t *names;   /* person hex -> display name */
	json_t *titles;  /* topic id -> title */
};

static const char *name_of(struct found *f, const lama_hash *person)
{
	char hex[LAMA_HASH_HEX + 1];
	struct lama_person who;
	const char *n;

	lama_hash_hex(person, hex);
	if ((n = json_string_value(json_object_get(f->names, hex))))
		return n;
	if (lama_leute_get(f->s, person, &who))
		snprintf(who.name, sizeof(who.name), "%.12s", hex);
	json_object_set_new(f->names, hex, json_string(who.name));
	n = json_string_value(json_object_get(f->names, hex));
	return n ? n : "?";
}

static const char *title_of(struct found *f, const char *topic)
{
	struct lama_topic t;
	const char *n;

	if ((n = json_string_value(json_object_get(f->titles, topic))))
		return n;
	memset(&t, 0, sizeof(t));
	if (lama_chat_find(f->s, topic, &t) == 0) {
		json_object_set_new(f->titles, topic, json_string(t.title));
		lama_topic_release(&t);
	} else {
		json_object_set_new(f->titles, topic, json_string("?"));
	}
	n = json_string_value(json_object_get(f->titles, topic));
	return n ? n : "?";
}

/* One hit as JSON, gathered. */
static int collect(void *ctx, const struct lama_search_hit *h)
{
	json_t *results = ctx, *o = lama_search_hit_json(h);

	if (!o || json_array_append_new(results, o))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

int lama_search_name_results(lama_session *s, json_t *results)
{
	struct found f = { .s = s, .names = json_object(), .titles = json_object() };
	json_t *o;
	size_t i;
	int rc = 0;

	if (!f.names || !f.titles)
		rc = lama_error(LAMA_ENOMEM, "out of memory");
	else if (!json_is_array(results))
		rc = lama_error(LAMA_EFORMAT, "search: results are a list");
	json_array_foreach(results, i, o) {
		const char *topic = json_string_value(json_object_get(o, "topic"));
		const char *sender = json_string_value(json_object_get(o, "sender"));
		lama_hash who;

		if (rc)
			break;
		if (!topic || !sender || lama_hash_parse(sender, strlen(sender), &who)) {
			rc = lama_error(LAMA_EFORMAT, "search: a result without its topic or sender");
			break;
		}
		if (json_object_set_new(o, "topic_title", json_string(title_of(&f, topic))) ||
		    json_object_set_new(o, "sender_name", json_string(name_of(&f, &who))))
			rc = lama_error(LAMA_ENOMEM, "out of memory");
	}
	json_decref(f.names);
	json_decref(f.titles);
	return rc;
}

int lama_search_query_json(lama_session *s, lama_search *x, const char *q, size_t n,
			   const struct lama_search_opts *o, json_t **out)
{
	json_t *results = json_array();
	int rc = 0;

	*out = NULL;
	if (!results)
		rc = lama_error(LAMA_ENOMEM, "out of memory");
	if (!rc)
		rc = lama_search_query(x, q, n, o, collect, results);
	if (!rc)
		rc = lama_search_name_results(s, results);
	/* the query was checked as UTF-8 by the parser: only memory can fail */
	if (!rc && !(*out = json_pack("{s:s%, s:O}", "query", q, n, "results", results)))
		rc = lama_error(LAMA_ENOMEM, "out of memory");
	json_decref(results);
	return rc;
}
