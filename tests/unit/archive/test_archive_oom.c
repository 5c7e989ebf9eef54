/* test_archive_oom.c: allocation failure at every step of put, put_version
 * and merge. Each call either succeeds or fails with LAMA_ENOMEM and
 * changes nothing; afterwards the store checks clean and every head names
 * a stored version node. LSan (ASAN_OPTIONS=detect_leaks=1) catches leaks.
 *
 * The second pass (LAMA_TEST_JANSSON_OOM=1; the test_archive_oom_jansson
 * entry of the suite sets it, as it takes longer) also routes jansson's
 * allocations through lama_malloc (json_set_alloc_funcs), so a failing
 * json_* call inside the archive and the parser is exercised too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "testutil.h"
#include "archive_test.h"
#include "archive_model.h"

#define CALM 25 /* this many successes in a row: past the last allocation */
#define NMAX 20000

static void *j_malloc(size_t n)
{
	return lama_malloc(n);
}

static void j_free(void *p)
{
	lama_free(p);
}

/* A fingerprint of every row of the tables the archive writes: a failed
 * call must leave them byte for byte as they were (cheaper than
 * lama_store_check, which decrypts everything; that runs now and then). */
struct snap {
	uint64_t rows, fp;
};

static void snapshot(lama_store *st, struct snap *out)
{
	static const char *const q[] = { "SELECT key, val FROM obj", "SELECT dst, val FROM ref",
					 "SELECT id, val FROM head" };
	static unsigned long calls;

	memset(out, 0, sizeof(*out));
	out->fp = 14695981039346656037ULL;
	for (size_t t = 0; t < sizeof(q) / sizeof(q[0]); t++) {
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_prepare_v2(lama_store_db(st), q[t], -1, &s, NULL), SQLITE_OK);
		while (sqlite3_step(s) == SQLITE_ROW) {
			for (int c = 0; c < 2; c++) {
				const uint8_t *p = sqlite3_column_blob(s, c);
				int n = sqlite3_column_bytes(s, c);

				for (int i = 0; i < n; i++)
					out->fp = (out->fp ^ p[i]) * 1099511628211ULL;
			}
			out->rows++;
		}
		sqlite3_finalize(s);
	}
	if (++calls % 128 == 0)
		store_ok(st, NULL);
}

static void same_counts(const struct snap *x, const struct snap *y)
{
	assert_int_equal(x->rows, y->rows);
	assert_true(x->fp == y->fp);
}

/* In the jansson pass a failing json_* call inside src/object may come
 * back as another error (the object module reads a NULL from jansson as
 * bad input); the archive must still change nothing. */
static int any_error;

static int failed_ok(int rc)
{
	if (rc >= 0 || (rc != LAMA_ENOMEM && !any_error))
		fail_msg("rc %d (%s): %s", rc, lama_strerror(rc), lama_errmsg());
	return 1;
}

/* lama_archive_put of a new version each time: after a single head, or
 * (with_heads) on a fresh ID with two concurrent heads that put merges
 * first. */
static void oom_put(struct afx *f, int with_heads)
{
	lama_archive *a = f->a[0];
	struct lama_put_info info, base;
	struct snap c0, c1;
	unsigned long n;
	int calm = 0, fails = 0;
	json_t *o;
	lama_hash cur, h;

	o = tat_new("oom-put");
	json_object_set_new(o, "set", jload("{\"$set\":[\"a\",\"b\"]}"));
	assert_int_equal(lama_archive_put(a, o, 100, &base), 0);
	for (n = 1; n < NMAX && calm < CALM; n++) {
		int rc;

		json_object_set_new(o, "int", json_real((double)n));
		if (with_heads) {
			/* two concurrent versions after a new first one */
			char idt[32];
			json_t *x, *y;

			snprintf(idt, sizeof(idt), "oom-heads-%lu", n);
			json_object_set_new(o, "id", json_string(idt));
			assert_int_equal(lama_archive_put(a, o, 100, &base), 0);
			x = json_deep_copy(o);
			y = json_deep_copy(o);
			json_object_set_new(x, "str", json_string("x"));
			json_object_set_new(y, "set", jload("{\"$set\":[\"a\",\"c\"]}"));
			json_object_set_new(y, "int", json_real(-(double)n));
			assert_int_equal(lama_archive_put_version(a, x, &base.node, 200, NULL), 0);
			assert_int_equal(lama_archive_put_version(a, y, &base.node, 200, NULL), 0);
			json_decref(x);
			json_decref(y);
			assert_int_equal(nheads(a, &base.id_hash), 2);
			json_object_set_new(o, "bool", json_true());
		}
		hash_obj(f->r, o, &h, NULL);
		snapshot(f->st[0], &c0);
		lama_mem_fail_after(n, 0);
		rc = lama_archive_put(a, o, 300 + (double)n, &info);
		lama_mem_fail_after(0, 0);
		snapshot(f->st[0], &c1);
		if (rc == 0) {
			calm++;
			assert_int_equal(archive_consistent(a, &base.id_hash), 1);
			assert_int_equal(lama_archive_current(a, &base.id_hash, &cur), 0);
			assert_true(lama_hash_eq(&cur, &h));
			assert_true(lama_hash_eq(&info.hash, &h));
		} else {
			calm = 0;
			fails += failed_ok(rc);
			same_counts(&c0, &c1);
			assert_int_equal(archive_consistent(a, &base.id_hash), with_heads ? 2 : 1);
		}
		if (with_heads)
			json_object_del(o, "bool");
	}
	if (getenv("OOM_TRACE"))
		fprintf(stderr, "%s(%d): %lu steps, %d failures\n", __func__, with_heads, n, fails);
	assert_true(n < NMAX);
	assert_true(fails > 3);
	json_decref(o);
}

/* lama_archive_merge of k fresh concurrent versions (a new ID each time,
 * so every attempt starts from the same shape). */
static void oom_merge(struct afx *f)
{
	lama_archive *a = f->a[0];
	struct snap c0, c1;
	unsigned long n;
	int calm = 0, fails = 0;

	for (n = 1; n < NMAX && calm < CALM; n++) {
		struct lama_put_info base, v[3];
		struct branch br[3];
		char idt[32];
		json_t *b, *x[3], *want;
		lama_hash id, node, cur, wh;
		int rc;

		snprintf(idt, sizeof(idt), "oom-merge-%lu", n);
		b = tat_new(idt);
		json_object_set_new(b, "str", json_string("base"));
		json_object_set_new(b, "set", jload("{\"$set\":[\"a\",\"b\",\"c\"]}"));
		assert_int_equal(lama_archive_put(a, b, 100, &base), 0);
		id = base.id_hash;
		for (int i = 0; i < 3; i++) {
			char s[8];

			x[i] = json_deep_copy(b);
			snprintf(s, sizeof(s), "v%d", i);
			json_object_set_new(x[i], "str", json_string(s));
			json_object_set_new(x[i], "int", json_real(i));
			json_object_set_new(x[i], "set", json_pack("{s:[s,s]}", "$set", i ? "a" : "b", s));
			assert_int_equal(lama_archive_put_version(a, x[i], &base.node, 200 + (i & 1), &v[i]), 0);
			br[i].n = 1;
			br[i].obj[0] = x[i];
			br[i].time[0] = 200 + (i & 1);
		}
		want = model_merge(b, 100, br, 3);
		hash_obj(f->r, want, &wh, NULL);

		snapshot(f->st[0], &c0);
		lama_mem_fail_after(n, 0);
		rc = (n & 1) ? lama_archive_merge(a, &id, &node) : lama_archive_current(a, &id, &cur);
		lama_mem_fail_after(0, 0);
		snapshot(f->st[0], &c1);
		if (rc == 0) {
			calm++;
			assert_int_equal(archive_consistent(a, &id), 1);
		} else if (!(n & 1) && nheads(a, &id) == 1) {
			/* current merged (and committed), then failed reading */
			calm = 0;
			fails += failed_ok(rc);
			assert_int_equal(archive_consistent(a, &id), 1);
		} else {
			calm = 0;
			fails += failed_ok(rc);
			same_counts(&c0, &c1);
			assert_int_equal(archive_consistent(a, &id), 3);
		}
		/* whatever happened, the merge comes out right */
		assert_int_equal(lama_archive_current(a, &id, &cur), 0);
		assert_true(lama_hash_eq(&cur, &wh));
		json_decref(want);
		json_decref(b);
		for (int i = 0; i < 3; i++)
			json_decref(x[i]);
	}
	if (getenv("OOM_TRACE"))
		fprintf(stderr, "%s: %lu steps, %d failures\n", __func__, n, fails);
	assert_true(n < NMAX);
	assert_true(fails > 3);
}

/* put_version of a concurrent version, a CLOB and a plain object. */
static void oom_misc(struct afx *f)
{
	lama_archive *a = f->a[0];
	struct snap c0, c1;
	struct lama_put_info base, info;
	unsigned long n;
	int calm = 0, fails = 0;
	json_t *o, *u;
	lama_hash id, h;

	o = tat_new("oom-misc");
	assert_int_equal(lama_archive_put(a, o, 100, &base), 0);
	id = base.id_hash;
	u = jload("{\"$type$\":\"TestUnversioned\",\"text\":\"x\"}");
	for (n = 1; n < NMAX && calm < CALM; n++) {
		char text[64];
		size_t heads0 = nheads(a, &id);
		int rc, step = (int)(n % 4);

		json_object_set_new(o, "int", json_real((double)n));
		json_object_set_new(u, "count", json_real((double)n));
		snprintf(text, sizeof(text), "clob %lu", n);
		snapshot(f->st[0], &c0);
		lama_mem_fail_after((n + 3) / 4, 0);
		if (step == 0)
			rc = lama_archive_put_version(a, o, &base.node, 300, &info);
		else if (step == 1)
			rc = lama_archive_put_clob(a, text, strlen(text), &h);
		else if (step == 2)
			rc = lama_archive_put(a, u, 0, &info);
		else {
			json_t *g = NULL;

			rc = lama_archive_get(a, &base.hash, &g);
			json_decref(g);
		}
		lama_mem_fail_after(0, 0);
		snapshot(f->st[0], &c1);
		if (rc == 0) {
			calm++;
		} else {
			calm = 0;
			fails += failed_ok(rc);
			same_counts(&c0, &c1);
			assert_int_equal(nheads(a, &id), heads0);
		}
		archive_consistent(a, &id);
	}
	if (getenv("OOM_TRACE"))
		fprintf(stderr, "%s: %lu steps, %d failures\n", __func__, n, fails);
	assert_true(n < NMAX);
	assert_true(fails > 3);
	json_decref(o);
	json_decref(u);
}

static void run_all(int jansson)
{
	struct afx f;

	any_error = jansson;
	if (jansson)
		json_set_alloc_funcs(j_malloc, j_free);
	afx_open(&f);
	oom_put(&f, 0);
	oom_put(&f, 1);
	oom_merge(&f);
	oom_misc(&f);
	store_ok(f.st[0], NULL);
	afx_done(&f);
	json_set_alloc_funcs(malloc, free);
}

static void test_oom(void **state)
{
	(void)state;
	run_all(0);
}

/* With LAMA_TEST_JANSSON_OOM=1 (its own suite entry: it takes ~40 s). */
static void test_oom_jansson(void **state)
{
	(void)state;
	if (!getenv("LAMA_TEST_JANSSON_OOM"))
		skip();
	run_all(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom),
		cmocka_unit_test(test_oom_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
