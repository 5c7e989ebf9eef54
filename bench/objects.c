/* objects.c: small-object put and get through the archive, against raw
 * SQLite inserts and selects of the same bytes in the same database.
 *
 * Both sides commit once per batch of 1,000 (lama_store_begin/commit for
 * lama, BEGIN IMMEDIATE/COMMIT for SQLite) on the same connection
 * (lama_store_db), so they share its settings: WAL, synchronous=FULL, the
 * page cache size. The raw table is (key BLOB PRIMARY KEY, val BLOB)
 * WITHOUT ROWID, keyed by the SHA-256 and holding the microdata lama
 * stores. Batches alternate between the two sides (and which goes first)
 * so that both see the same machine, the same database growth and their
 * share of WAL checkpoints.
 *
 * Lines: archive.put.unversioned, archive.get.unversioned,
 * archive.put.versioned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "archive/archive.h"
#include "common.h"
#include "crypto/crypto.h"
#include "object/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/mem.h"

#define BATCH 1000

struct raw {
	sqlite3 *db;
	sqlite3_stmt *put, *get;
};

struct set {
	size_t n;
	json_t **obj;
	char **md;     /* microdata of each object (lama_free) */
	size_t *mdlen;
	lama_hash *hash;
};

static void raw_exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		bench_fail("sqlite: %s: %s", sql, sqlite3_errmsg(db));
}

static void raw_init(struct raw *r, sqlite3 *db, const char *table)
{
	char sql[256];

	r->db = db;
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s(key BLOB PRIMARY KEY, val BLOB) WITHOUT ROWID", table);
	raw_exec(db, sql);
	/* INSERT OR IGNORE, as lama's own put (a duplicate is a check) */
	snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO %s(key,val) VALUES(?1,?2)", table);
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &r->put, NULL) != SQLITE_OK)
		bench_fail("sqlite: %s", sqlite3_errmsg(db));
	snprintf(sql, sizeof(sql), "SELECT val FROM %s WHERE key=?1", table);
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &r->get, NULL) != SQLITE_OK)
		bench_fail("sqlite: %s", sqlite3_errmsg(db));
}

static void raw_release(struct raw *r)
{
	sqlite3_finalize(r->put);
	sqlite3_finalize(r->get);
}

static void raw_put_batch(struct raw *r, const struct set *s, size_t from, size_t to)
{
	raw_exec(r->db, "BEGIN IMMEDIATE");
	for (size_t i = from; i < to; i++) {
		sqlite3_bind_blob(r->put, 1, s->hash[i].b, LAMA_HASH_BYTES, SQLITE_STATIC);
		sqlite3_bind_blob(r->put, 2, s->md[i], (int)s->mdlen[i], SQLITE_STATIC);
		if (sqlite3_step(r->put) != SQLITE_DONE)
			bench_fail("sqlite insert: %s", sqlite3_errmsg(r->db));
		sqlite3_reset(r->put);
	}
	raw_exec(r->db, "COMMIT");
}

static void lama_put_batch(lama_archive *a, const struct set *s, size_t from, size_t to)
{
	lama_store *st = lama_archive_store(a);

	bench_check(lama_store_begin(st), "begin");
	for (size_t i = from; i < to; i++)
		bench_check(lama_archive_put(a, s->obj[i], 0, NULL), "lama_archive_put");
	bench_check(lama_store_commit(st), "commit");
}

/* Puts the whole set both ways in alternating batches; times in seconds. */
static void put_both(lama_archive *a, struct raw *r, const struct set *s, double *t_lama,
		     double *t_raw)
{
	*t_lama = *t_raw = 0;
	for (size_t b = 0; b * BATCH < s->n; b++) {
		size_t from = b * BATCH, to = from + BATCH < s->n ? from + BATCH : s->n;

		for (int side = 0; side < 2; side++) {
			int lama_side = (side + (int)b) % 2 == 0;
			double t0 = bench_now();

			if (lama_side)
				lama_put_batch(a, s, from, to);
			else
				raw_put_batch(r, s, from, to);
			*(lama_side ? t_lama : t_raw) += bench_now() - t0;
		}
	}
}

/* Reads the set back in a shuffled order, both ways, alternating batches. */
/* Three sides in turn: lama_archive_get (parsed object), the raw select,
 * and lama_store_get (the object's stored bytes, decrypted and checked
 * against their hash, as `lama object get --microdata` returns them). */
static void get_both(lama_archive *a, struct raw *r, const struct set *s, double *t_lama,
		     double *t_raw, double *t_bytes)
{
	size_t *order = malloc(s->n * sizeof(*order));
	struct lama_buf out = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint64_t x = 88172645463325252ull;

	if (!order)
		bench_fail("out of memory");
	for (size_t i = 0; i < s->n; i++)
		order[i] = i;
	for (size_t i = s->n - 1; i > 0; i--) { /* Fisher-Yates, xorshift64 */
		size_t j, t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = (size_t)(x % (i + 1));
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	*t_lama = *t_raw = *t_bytes = 0;
	for (size_t b = 0; b * BATCH < s->n; b++) {
		size_t from = b * BATCH, to = from + BATCH < s->n ? from + BATCH : s->n;

		for (int side = 0; side < 3; side++) {
			int which = (side + (int)b) % 3;
			int lama_side = which == 0;
			double t0 = bench_now();

			for (size_t k = from; k < to; k++) {
				size_t i = order[k];

				if (which == 2) {
					lama_buf_truncate(&out, 0);
					bench_check(lama_store_get(lama_archive_store(a), &s->hash[i], NULL, &out),
						    "lama_store_get");
					continue;
				}
				if (lama_side) {
					json_t *o;

					bench_check(lama_archive_get(a, &s->hash[i], &o), "lama_archive_get");
					json_decref(o);
					continue;
				}
				sqlite3_bind_blob(r->get, 1, s->hash[i].b, LAMA_HASH_BYTES, SQLITE_STATIC);
				if (sqlite3_step(r->get) != SQLITE_ROW)
					bench_fail("sqlite select: %s", sqlite3_errmsg(r->db));
				/* hand the bytes over, as lama_store_get does */
				lama_buf_truncate(&out, 0);
				bench_check(lama_buf_add(&out, sqlite3_column_blob(r->get, 0),
							 (size_t)sqlite3_column_bytes(r->get, 0)), "copy");
				sqlite3_reset(r->get);
				if (out.len != s->mdlen[i])
					bench_fail("sqlite select: wrong row");
			}
			*(which == 0 ? t_lama : which == 1 ? t_raw : t_bytes) += bench_now() - t0;
		}
	}
	lama_buf_release(&out);
	free(order);
}

static void set_make(struct set *s, const lama_recipes *rec, size_t n, int versioned)
{
	/* a Person ID hash the messages come from (need not be stored) */
	static const char sender[] =
		"5d3f0a6c1b2e4f7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);

	s->n = n;
	s->obj = calloc(n, sizeof(*s->obj));
	s->md = calloc(n, sizeof(*s->md));
	s->mdlen = calloc(n, sizeof(*s->mdlen));
	s->hash = calloc(n, sizeof(*s->hash));
	if (!s->obj || !s->md || !s->mdlen || !s->hash)
		bench_fail("out of memory");
	for (size_t i = 0; i < n; i++) {
		char text[160], email[64];

		if (versioned) {
			snprintf(email, sizeof(email), "user%zu@example.org", i);
			snprintf(text, sizeof(text), "User Number %zu", i);
			s->obj[i] = json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", email,
					      "name", text);
		} else {
			snprintf(text, sizeof(text),
				 "message %zu: see you at the station at %zu:%02zu, "
				 "I will bring the tickets", i, 8 + i % 12, i % 60);
			s->obj[i] = json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", text,
					      "sender", sender);
		}
		if (!s->obj[i])
			bench_fail("json_pack failed");
		lama_buf_truncate(&md, 0);
		bench_check(lama_object_microdata(rec, s->obj[i], &md), "lama_object_microdata");
		lama_sha256(md.data, md.len, &s->hash[i]);
		s->md[i] = lama_buf_detach(&md, &s->mdlen[i]);
		if (!s->md[i])
			bench_fail("out of memory");
	}
	lama_buf_release(&md);
}

static void set_release(struct set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		json_decref(s->obj[i]);
		lama_free(s->md[i]);
	}
	free(s->obj);
	free(s->md);
	free(s->mdlen);
	free(s->hash);
}

static double mean_len(const struct set *s)
{
	double sum = 0;

	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->mdlen[i];
	return s->n ? sum / (double)s->n : 0;
}

static void report_unversioned(const struct set *s, double tl, double tr, double gl, double gr,
			       double gb)
{
	double rl = (double)s->n / tl, rr = (double)s->n / tr;
	char extra[512];

	snprintf(extra, sizeof(extra),
		 "\"target\": \"ratio >= 0.5\", \"pass\": %s, \"objects\": %zu, \"batch\": %d, "
		 "\"type\": \"ChatMessage\", \"microdata_bytes\": %.0f",
		 bench_bool(rl / rr >= 0.5), s->n, BATCH, mean_len(s));
	bench_emit("archive.put.unversioned", "objects/s", rl, "sqlite.insert", rr, extra);

	rl = (double)s->n / gl;
	rr = (double)s->n / gr;
	snprintf(extra, sizeof(extra),
		 "\"target\": \"ratio >= 0.7\", \"pass\": %s, \"objects\": %zu, "
		 "\"type\": \"ChatMessage\", \"order\": \"shuffled\"",
		 bench_bool(rl / rr >= 0.7), s->n);
	bench_emit("archive.get.unversioned", "objects/s", rl, "sqlite.select", rr, extra);

	rl = (double)s->n / gb;
	snprintf(extra, sizeof(extra),
		 "\"target\": \"ratio >= 0.7\", \"pass\": %s, \"objects\": %zu, "
		 "\"type\": \"ChatMessage\", \"order\": \"shuffled\", "
		 "\"what\": \"stored microdata, decrypted and hash-checked, not parsed\"",
		 bench_bool(rl / rr >= 0.7), s->n);
	bench_emit("store.get.unversioned", "objects/s", rl, "sqlite.select", rr, extra);
}

static void report_versioned(const struct set *s, double vl, double vr)
{
	char extra[512];

	snprintf(extra, sizeof(extra),
		 "\"objects\": %zu, \"batch\": %d, \"type\": \"Person\", \"microdata_bytes\": %.0f, "
		 "\"note\": \"first versions: object, ID object, version node, heads\"",
		 s->n, BATCH, mean_len(s));
	bench_emit("archive.put.versioned", "objects/s", (double)s->n / vl, "sqlite.insert",
		   (double)s->n / vr, extra);
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	size_t n = (size_t)strtoul(bench_opt(argc, argv, "objects", "20000"), NULL, 10);
	char dir[4096], path[4200];
	uint8_t enc[32], idx[32];
	lama_recipes *rec;
	lama_store *st;
	lama_archive *a;
	struct raw raw_msg, raw_person;
	struct set msgs, persons;
	const char *only = bench_opt(argc, argv, "only", NULL);
	double tl, tr, gl, gr, gb, vl, vr;

	if (n < 1)
		bench_fail("--objects must be at least 1");
	bench_check(lama_crypto_init(), "crypto init");
	bench_check(lama_recipes_new(&rec), "recipes");
	bench_check(lama_recipes_add_builtin(rec), "recipes");
	bench_mkdtemp(tmp, "objects", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/archive.db", dir);
	bench_keys(enc, idx);
	bench_check(lama_store_open(&st, path, enc, idx, LAMA_STORE_CREATE), "lama_store_open");
	bench_check(lama_archive_new(&a, st, rec), "lama_archive_new");
	if (bench_opt(argc, argv, "cache-kib", NULL)) {
		/* diagnosis only: another page cache size for both sides */
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%lu",
			 strtoul(bench_opt(argc, argv, "cache-kib", NULL), NULL, 10));
		raw_exec(lama_store_db(st), sql);
	}
	raw_init(&raw_msg, lama_store_db(st), "bench_raw_msg");
	raw_init(&raw_person, lama_store_db(st), "bench_raw_person");

	fprintf(stderr, "objects: %zu ChatMessage and %zu Person objects in %s\n", n, n, dir);
	set_make(&msgs, rec, n, 0);
	set_make(&persons, rec, n, 1);

	if (!only || strcmp(only, "unversioned") == 0) {
		put_both(a, &raw_msg, &msgs, &tl, &tr);
		get_both(a, &raw_msg, &msgs, &gl, &gr, &gb);
		report_unversioned(&msgs, tl, tr, gl, gr, gb);
	}
	if (!only || strcmp(only, "versioned") == 0) {
		put_both(a, &raw_person, &persons, &vl, &vr);
		report_versioned(&persons, vl, vr);
	}

	raw_release(&raw_msg);
	raw_release(&raw_person);
	lama_archive_free(a);
	lama_store_close(st);
	lama_recipes_free(rec);
	set_release(&msgs);
	set_release(&persons);
	bench_rmtree(dir);
	return 0;
}
