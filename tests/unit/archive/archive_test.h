/* archive_test.h: fixtures the archive tests share: one temp dir holding
 * any number of fresh archives (random keys) over one recipe registry
 * (builtin + the test recipes of shared/one-format/recipes.json), builders
 * for TestAllTypes objects, reverse-map collection and a consistency check.
 * Include after cmocka.h and testutil.h. */
#ifndef LAMA_ARCHIVE_TEST_H
#define LAMA_ARCHIVE_TEST_H

#include "archive/archive.h"
#include "crypto/crypto.h"
#include "object/object.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

#define AFX_MAX 8

struct afx {
	char dir[4096];
	lama_recipes *r;
	int n;
	lama_store *st[AFX_MAX];
	lama_archive *a[AFX_MAX];
};

/* Opens one more fresh archive in the fixture's dir; returns its index. */
static inline int afx_add(struct afx *f)
{
	char path[4200];
	uint8_t enc[32], idx[32];
	int i = f->n;

	assert_true(i < AFX_MAX);
	lama_random(enc, sizeof(enc));
	lama_random(idx, sizeof(idx));
	snprintf(path, sizeof(path), "%s/archive%d.db", f->dir, i);
	if (lama_store_open(&f->st[i], path, enc, idx, LAMA_STORE_CREATE))
		fail_msg("store open: %s", lama_errmsg());
	assert_int_equal(lama_archive_new(&f->a[i], f->st[i], f->r), 0);
	f->n++;
	return i;
}

static inline void afx_open(struct afx *f)
{
	json_error_t err;
	json_t *all;

	memset(f, 0, sizeof(*f));
	assert_int_equal(lama_crypto_init(), 0);
	snprintf(f->dir, sizeof(f->dir), "%s", tu_tmpdir());
	assert_int_equal(lama_recipes_new(&f->r), 0);
	assert_int_equal(lama_recipes_add_builtin(f->r), 0);
	all = json_load_file(tu_one_format("recipes.json"), LAMA_JSON_FLAGS, &err);
	if (!all)
		fail_msg("recipes.json: %s", err.text);
	if (lama_recipes_add_all(f->r, all))
		fail_msg("recipes.json: %s", lama_errmsg());
	json_decref(all);
	afx_add(f);
}

static inline void afx_done(struct afx *f)
{
	for (int i = 0; i < f->n; i++) {
		lama_archive_free(f->a[i]);
		lama_store_close(f->st[i]);
	}
	lama_recipes_free(f->r);
	tu_rmtree(f->dir);
}

/* ---- objects ---- */

static inline json_t *jload(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, LAMA_JSON_FLAGS, &err);

	if (!j)
		fail_msg("%s: %s", text, err.text);
	return j;
}

/* A TestAllTypes with its ID fields only. */
static inline json_t *tat_new(const char *id)
{
	json_t *o = json_pack("{s:s, s:s, s:f}", "$type$", "TestAllTypes", "id", id, "version", 1.0);

	assert_non_null(o);
	return o;
}

static inline void hex_of(const lama_hash *h, char out[LAMA_HASH_HEX + 1])
{
	lama_hash_hex(h, out);
}

/* JSON text of a value as ONE's JavaScript writes it ("" for NULL). */
static inline char *jtext(const json_t *v)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	char *s;

	if (v)
		assert_int_equal(lama_json_write(v, &b), 0);
	s = strdup(b.data ? b.data : "");
	lama_buf_release(&b);
	assert_non_null(s);
	return s;
}

static inline void hash_obj(const lama_recipes *r, const json_t *o, lama_hash *h, lama_hash *id)
{
	if (lama_object_hash(r, o, h, id))
		fail_msg("hash: %s", lama_errmsg());
}

/* ---- reverse maps ---- */

/* Collects referrers as "Type hex" strings into a JSON object (set). */
static inline int collect_ref(void *ctx, const char *type, const lama_hash *src)
{
	char hex[LAMA_HASH_HEX + 1], key[LAMA_TYPE_MAX + LAMA_HASH_HEX + 2];

	hex_of(src, hex);
	snprintf(key, sizeof(key), "%s %s", type, hex);
	assert_null(json_object_get(ctx, key)); /* each referrer once */
	assert_int_equal(json_object_set_new(ctx, key, json_true()), 0);
	return 0;
}

static inline json_t *referrers(lama_archive *a, const lama_hash *target, const char *type)
{
	json_t *set = json_object();

	assert_non_null(set);
	if (lama_archive_referrers(a, target, type, collect_ref, set))
		fail_msg("referrers: %s", lama_errmsg());
	return set;
}

static inline void ref_expect(json_t *set, const char *type, const lama_hash *src)
{
	char hex[LAMA_HASH_HEX + 1], key[LAMA_TYPE_MAX + LAMA_HASH_HEX + 2];

	hex_of(src, hex);
	snprintf(key, sizeof(key), "%s %s", type, hex);
	assert_int_equal(json_object_set_new(set, key, json_true()), 0);
}

/* Asserts that target's referrers (of any type, and of each type) are
 * exactly `want` (consumed). */
static inline void refs_equal(lama_archive *a, const lama_hash *target, json_t *want)
{
	json_t *got = referrers(a, target, NULL);
	const char *k;
	json_t *v;

	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
		char hex[LAMA_HASH_HEX + 1];

		hex_of(target, hex);
		fail_msg("referrers of %s:\n got  %s\n want %s", hex, g, w);
	}
	/* by type: each type alone gives its own referrers */
	json_object_foreach(want, k, v) {
		char type[LAMA_TYPE_MAX];
		const char *sp = strchr(k, ' ');
		json_t *by, *sub = json_object();
		const char *k2;
		json_t *v2;

		assert_non_null(sp);
		snprintf(type, sizeof(type), "%.*s", (int)(sp - k), k);
		json_object_foreach(want, k2, v2) {
			if (!strncmp(k2, type, strlen(type)) && k2[strlen(type)] == ' ')
				json_object_set(sub, k2, v2);
		}
		by = referrers(a, target, type);
		assert_true(json_equal(by, sub));
		json_decref(by);
		json_decref(sub);
	}
	/* a type nobody uses */
	got = (json_decref(got), referrers(a, target, "NoSuchType"));
	assert_int_equal(json_object_size(got), 0);
	json_decref(got);
	json_decref(want);
}

/* ---- consistency ---- */

static inline const char *type_of(const json_t *o)
{
	const char *t = json_string_value(json_object_get(o, "$type$"));

	return t ? t : "";
}

/* The heads of id all name stored version nodes whose data is stored and
 * is an object of id; returns the number of heads. */
static inline size_t archive_consistent(lama_archive *a, const lama_hash *id)
{
	const lama_recipes *r = lama_archive_recipes(a);
	lama_hash *heads = NULL;
	size_t n = 0;

	if (lama_archive_heads(a, id, &heads, &n))
		fail_msg("heads: %s", lama_errmsg());
	for (size_t i = 0; i < n; i++) {
		json_t *node = NULL, *data = NULL;
		lama_hash dh, oid;
		const char *t;

		if (lama_archive_get(a, &heads[i], &node))
			fail_msg("head %zu: %s", i, lama_errmsg());
		t = type_of(node);
		assert_true(!strcmp(t, "VersionNodeEdge") || !strcmp(t, "VersionNodeChange") ||
			    !strcmp(t, "VersionNodeMerge"));
		assert_int_equal(lama_hash_parse(json_string_value(json_object_get(node, "data")), 64, &dh), 0);
		if (lama_archive_get(a, &dh, &data))
			fail_msg("head data: %s", lama_errmsg());
		hash_obj(r, data, NULL, &oid);
		assert_true(lama_hash_eq(&oid, id));
		json_decref(node);
		json_decref(data);
	}
	lama_free(heads);
	return n;
}

static inline size_t nheads(lama_archive *a, const lama_hash *id)
{
	lama_hash *heads = NULL;
	size_t n = 0;

	assert_int_equal(lama_archive_heads(a, id, &heads, &n), 0);
	lama_free(heads);
	return n;
}

static inline void store_ok(lama_store *st, struct lama_store_check *rep)
{
	struct lama_store_check mine;
	int rc;

	if (!rep)
		rep = &mine;
	rc = lama_store_check(st, rep, NULL, NULL);
	if (rc || rep->bad)
		fail_msg("check: rc %d, bad %llu: %s", rc, (unsigned long long)rep->bad, rep->first_bad);
}

#endif
