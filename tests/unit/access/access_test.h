/* access_test.h: fixtures the access tests share: a fresh archive in a
 * temp dir (builtin recipes plus a test recipe that holds every kind of
 * reference), builders for persons, objects and BLOBs, and closures and
 * expected sets as JSON objects {hex: kind}. Include after cmocka.h and
 * testutil.h. */
#ifndef LAMA_ACCESS_TEST_H
#define LAMA_ACCESS_TEST_H

#include "access/access.h"
#include "archive/archive.h"
#include "crypto/crypto.h"
#include "object/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

/* A test-only type: one reference of each kind, all optional. */
static const char *const test_recipe =
	"{\"$type$\": \"Recipe\", \"name\": \"AccessTestNote\", \"rule\": ["
	"{\"itemprop\": \"title\"},"
	"{\"itemprop\": \"text\", \"optional\": true, \"itemtype\": {\"type\": \"referenceToClob\"}},"
	"{\"itemprop\": \"file\", \"optional\": true, \"itemtype\": {\"type\": \"referenceToBlob\"}},"
	"{\"itemprop\": \"ref\", \"optional\": true, \"itemtype\": {\"type\": \"bag\", \"item\":"
	" {\"type\": \"referenceToObj\", \"allowedTypes\": {\"$set\": [\"*\"]}}}},"
	"{\"itemprop\": \"who\", \"optional\": true, \"itemtype\": {\"type\": \"referenceToId\","
	" \"allowedTypes\": {\"$set\": [\"*\"]}}}]}";

struct fx {
	char dir[4096];
	lama_recipes *r;
	lama_store *st;
	lama_archive *a;
	int n; /* archives opened, for unique file names */
};

static inline void fx_archive(struct fx *f)
{
	char path[4200];
	uint8_t enc[32], idx[32];

	lama_random(enc, sizeof(enc));
	lama_random(idx, sizeof(idx));
	snprintf(path, sizeof(path), "%s/archive%d.db", f->dir, f->n++);
	if (lama_store_open(&f->st, path, enc, idx, LAMA_STORE_CREATE))
		fail_msg("store open: %s", lama_errmsg());
	assert_int_equal(lama_archive_new(&f->a, f->st, f->r), 0);
	assert_int_equal(lama_access_init(f->a), 0);
}

static inline void fx_close_archive(struct fx *f)
{
	lama_archive_free(f->a);
	lama_store_close(f->st);
	f->a = NULL;
	f->st = NULL;
}

static inline void fx_open(struct fx *f)
{
	json_error_t err;
	json_t *rec;

	memset(f, 0, sizeof(*f));
	assert_int_equal(lama_crypto_init(), 0);
	snprintf(f->dir, sizeof(f->dir), "%s", tu_tmpdir());
	assert_int_equal(lama_recipes_new(&f->r), 0);
	assert_int_equal(lama_recipes_add_builtin(f->r), 0);
	rec = json_loads(test_recipe, LAMA_JSON_FLAGS, &err);
	if (!rec)
		fail_msg("test recipe: %s", err.text);
	if (lama_recipes_add(f->r, rec))
		fail_msg("test recipe: %s", lama_errmsg());
	json_decref(rec);
	fx_archive(f);
}

static inline void fx_done(struct fx *f)
{
	if (f->a)
		fx_close_archive(f);
	lama_recipes_free(f->r);
	tu_rmtree(f->dir);
}

static inline const char *hx(const lama_hash *h)
{
	static char buf[8][LAMA_HASH_HEX + 1];
	static int i;

	i = (i + 1) % 8;
	lama_hash_hex(h, buf[i]);
	return buf[i];
}

/* Puts obj (consumed); returns its hash, and info if not NULL. */
static inline lama_hash put(lama_archive *a, json_t *obj, struct lama_put_info *info)
{
	struct lama_put_info mine;

	if (!info)
		info = &mine;
	assert_non_null(obj);
	if (lama_archive_put(a, obj, 0, info))
		fail_msg("put: %s", lama_errmsg());
	json_decref(obj);
	return info->hash;
}

/* A Person; returns its ID hash. */
static inline lama_hash person(lama_archive *a, const char *email)
{
	struct lama_put_info info;

	put(a, json_pack("{s:s, s:s}", "$type$", "Person", "email", email), &info);
	return info.id_hash;
}

static inline lama_hash blob(lama_archive *a, const char *bytes)
{
	lama_blob_writer *w;
	lama_hash h;

	assert_int_equal(lama_blob_write_begin(lama_archive_store(a), &w), 0);
	assert_int_equal(lama_blob_write(w, bytes, strlen(bytes)), 0);
	assert_int_equal(lama_blob_write_end(w, &h, NULL), 0);
	return h;
}

static inline lama_hash clob(lama_archive *a, const char *text)
{
	lama_hash h;

	assert_int_equal(lama_archive_put_clob(a, text, strlen(text), &h), 0);
	return h;
}

/* ---- sets of hashes: JSON objects {hex: kind} ---- */

static inline void set_add(json_t *set, const lama_hash *h, enum lama_access_kind kind)
{
	assert_int_equal(json_object_set_new(set, hx(h), json_integer(kind)), 0);
}

/* Adds every member of `from` to `to`. */
static inline void set_union(json_t *to, const json_t *from)
{
	assert_int_equal(json_object_update(to, (json_t *)from), 0);
}

static inline int collect_hash(void *ctx, const lama_hash *h, enum lama_access_kind kind)
{
	const char *k = hx(h);

	/* each hash exactly once */
	if (json_object_get(ctx, k))
		fail_msg("%s reported twice", k);
	assert_true(kind >= LAMA_ACCESS_OBJECT && kind <= LAMA_ACCESS_CLOB);
	assert_int_equal(json_object_set_new(ctx, k, json_integer(kind)), 0);
	return 0;
}

/* Everything person may receive. */
static inline json_t *closure_of(lama_archive *a, const lama_hash *p,
				 struct lama_access_stats *stats)
{
	json_t *set = json_object();

	if (lama_access_closure(a, p, collect_hash, set, stats))
		fail_msg("closure: %s", lama_errmsg());
	return set;
}

static inline int collect_root(void *ctx, const struct lama_access_root *r)
{
	char key[LAMA_HASH_HEX + 4];

	snprintf(key, sizeof(key), "%s:%s", r->is_id ? "id" : "obj", hx(&r->hash));
	if (json_object_get(ctx, key))
		fail_msg("root %s reported twice", key);
	assert_int_equal(json_object_set_new(ctx, key, json_true()), 0);
	return 0;
}

static inline json_t *roots_of(lama_archive *a, const lama_hash *p)
{
	json_t *set = json_object();

	if (lama_access_roots(a, p, collect_root, set, NULL))
		fail_msg("roots: %s", lama_errmsg());
	return set;
}

static inline void root_add(json_t *set, const lama_hash *h, int is_id)
{
	char key[LAMA_HASH_HEX + 4];

	snprintf(key, sizeof(key), "%s:%s", is_id ? "id" : "obj", hx(h));
	assert_int_equal(json_object_set_new(set, key, json_true()), 0);
}

/* Fails with both sets printed unless got equals want (both consumed). */
static inline void set_equal(const char *what, json_t *got, json_t *want)
{
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
		const char *k;
		json_t *v;

		json_object_foreach(got, k, v)
			if (!json_equal(v, json_object_get(want, k)))
				fprintf(stderr, "  extra or wrong kind: %s (%lld)\n", k,
					(long long)json_integer_value(v));
		json_object_foreach(want, k, v)
			if (!json_object_get(got, k))
				fprintf(stderr, "  missing: %s\n", k);
		fail_msg("%s:\n got  %s\n want %s", what, g, w);
	}
	json_decref(got);
	json_decref(want);
}

#endif
