/* The vector index: exact top-k against a full sort computed here (many
 * seeds), ties by id, replace and remove, topic filter, reopen, wrong
 * key, tampered and swapped rows, the at-rest scan, hostile arguments,
 * limits, and every allocation failed in turn. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "testutil.h"
#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"
#include "vector/vector.h"

static char dir[4096], path[4200];
static uint8_t key[32];
static lama_vector *v;

static int setup(void **state)
{
	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto init");
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/vectors.db", dir);
	memset(key, 5, 32);
	if (lama_vector_open_at(path, key, &v))
		fail_msg("open: %s", lama_errmsg());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lama_vector_close(v);
	v = NULL;
	tu_rmtree(dir);
	return 0;
}

static void reopen(void)
{
	lama_vector_close(v);
	v = NULL;
	if (lama_vector_open_at(path, key, &v))
		fail_msg("reopen: %s", lama_errmsg());
}

/* ids with structure (little-endian number, a marker byte), as a hash
 * table must cope with */
static lama_hash hid(unsigned n)
{
	lama_hash h;

	memset(&h, 0, sizeof(h));
	h.b[0] = (uint8_t)(n >> 16);
	h.b[1] = (uint8_t)(n >> 8);
	h.b[2] = (uint8_t)n;
	h.b[31] = 0x5a;
	return h;
}

static unsigned idnum(const lama_hash *h)
{
	return (unsigned)h->b[0] << 16 | (unsigned)h->b[1] << 8 | h->b[2];
}

static void put1(unsigned id, const char *model, const char *topic, const float *vec, uint32_t dim)
{
	struct lama_vector_item it = { hid(id), topic, model, vec, dim };

	if (lama_vector_put(v, &it))
		fail_msg("put %u: %s", id, lama_errmsg());
}

static size_t query(const char *model, const float *q, uint32_t dim, size_t k, const char *topic,
		    struct lama_vector_hit *hits)
{
	size_t n = 0;

	if (lama_vector_query(v, model, q, dim, k, topic, hits, &n))
		fail_msg("query: %s", lama_errmsg());
	return n;
}

/* ---- the property: exact top-k ---- */

struct ref {
	unsigned id;
	double s;
};

static int ref_cmp(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->s != y->s)
		return x->s > y->s ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static double cosine(const float *a, const float *b, uint32_t dim)
{
	double d = 0, na = 0, nb = 0;

	for (uint32_t i = 0; i < dim; i++) {
		d += (double)a[i] * b[i];
		na += (double)a[i] * a[i];
		nb += (double)b[i] * b[i];
	}
	return d / sqrt(na) / sqrt(nb);
}

static float frand(uint64_t *s)
{
	return (float)((double)(rnd_next(s) >> 11) / 9007199254740992.0 * 2 - 1);
}

#define PMAX 700
#define DMAX 70
static float pv[PMAX][DMAX];
static unsigned ptopic[PMAX];
static struct ref pref[PMAX];
static uint8_t pseen[PMAX];
static struct lama_vector_hit phits[PMAX + 10], phits2[PMAX + 10];

static const char *topics[] = { "topic-a", "topic-b", "topic-c" };

/* lama's answer against a full sort in double precision: the same ids in
 * the same order, except that two ids whose true scores are within 1e-5
 * (a near tie float32 may order either way) may trade places; exact ties
 * (identical vectors) are ordered by id on both sides. */
static void check_against_ref(const struct lama_vector_hit *h, size_t n, const float *q,
			      uint32_t dim, size_t k, int topic, size_t nitems)
{
	size_t nr = 0;

	for (size_t i = 0; i < nitems; i++)
		if (topic < 0 || ptopic[i] == (unsigned)topic) {
			pref[nr].id = (unsigned)i;
			pref[nr].s = cosine(pv[i], q, dim);
			nr++;
		}
	qsort(pref, nr, sizeof(*pref), ref_cmp);
	assert_int_equal(n, nr < k ? nr : k);
	for (size_t i = 0; i < n; i++) {
		unsigned id = idnum(&h[i].id);
		double truth;

		assert_true(id < nitems);
		assert_int_equal(h[i].id.b[31], 0x5a);
		if (topic >= 0)
			assert_int_equal(ptopic[id], (unsigned)topic);
		truth = cosine(pv[id], q, dim);
		if (fabs(truth - h[i].score) > 1e-5)
			fail_msg("item %u scored %g, truly %g", id, h[i].score, truth);
		if (i > 0)
			assert_true(h[i - 1].score >= h[i].score);
		for (size_t j = 0; j < i; j++)
			assert_true(idnum(&h[j].id) != id);
		if (id != pref[i].id && fabs(truth - pref[i].s) > 1e-5)
			fail_msg("rank %zu: item %u (%.9f), the full sort has %u (%.9f)", i, id, truth,
				 pref[i].id, pref[i].s);
	}
	/* exact ties (copies of one vector): by id, and none skipped for a
	 * larger id */
	memset(pseen, 0, sizeof(pseen));
	for (size_t i = 0; i < n; i++)
		pseen[idnum(&h[i].id)] = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned id = idnum(&h[i].id);
		double truth = cosine(pv[id], q, dim);

		for (size_t j = i + 1; j < n; j++)
			if (cosine(pv[idnum(&h[j].id)], q, dim) == truth)
				assert_true(idnum(&h[j].id) > id);
		for (size_t j = 0; j < nr && pref[j].s >= truth; j++)
			if (pref[j].s == truth && pref[j].id < id && !pseen[pref[j].id])
				fail_msg("item %u is in, its exact tie %u with a smaller id is not", id,
					 pref[j].id);
	}
}

static void test_topk_property(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 60; seed++) {
		uint64_t s = seed * 0x9e3779b97f4a7c15ULL;
		size_t nitems = 1 + rnd(&s, PMAX);
		uint32_t dim = 1 + rnd(&s, DMAX);
		char model[32];
		struct lama_vector_item *it = calloc(nitems, sizeof(*it));

		assert_non_null(it);
		snprintf(model, sizeof(model), "model-%u", (unsigned)seed % 5);
		lama_vector_close(v);
		v = NULL;
		tu_rmtree(dir);
		snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
		snprintf(path, sizeof(path), "%s/vectors.db", dir);
		assert_int_equal(lama_vector_open_at(path, key, &v), 0);
		for (size_t i = 0; i < nitems; i++) {
			/* one item in eight a copy of an earlier one: exact ties */
			if (i > 0 && rnd(&s, 8) == 0) {
				memcpy(pv[i], pv[rnd(&s, (unsigned)i)], sizeof(pv[i]));
			} else {
				do {
					for (uint32_t j = 0; j < dim; j++)
						pv[i][j] = frand(&s);
				} while (cosine(pv[i], pv[i], dim) != cosine(pv[i], pv[i], dim));
			}
			ptopic[i] = rnd(&s, 3);
			it[i] = (struct lama_vector_item){ hid((unsigned)i), topics[ptopic[i]], model,
							   pv[i], dim };
		}
		/* in batches of random size, in a shuffled order */
		for (size_t i = nitems; i > 1; i--) {
			size_t j = rnd(&s, (unsigned)i);
			struct lama_vector_item t = it[i - 1];

			it[i - 1] = it[j];
			it[j] = t;
		}
		for (size_t i = 0; i < nitems;) {
			size_t b = 1 + rnd(&s, 200);

			if (b > nitems - i)
				b = nitems - i;
			if (lama_vector_put_batch(v, it + i, b))
				fail_msg("seed %llu: %s", (unsigned long long)seed, lama_errmsg());
			i += b;
		}
		assert_int_equal(lama_vector_count(v, NULL), nitems);
		assert_int_equal(lama_vector_count(v, model), nitems);
		assert_int_equal(lama_vector_dim(v, model), dim);
		for (int qn = 0; qn < 6; qn++) {
			float q[DMAX];
			size_t k = 1 + rnd(&s, qn == 5 ? (unsigned)nitems + 10 : 40), n, n2;
			int topic = qn % 2 ? (int)rnd(&s, 3) : -1;

			if (qn == 4)
				memcpy(q, pv[rnd(&s, (unsigned)nitems)], sizeof(q)); /* an item itself */
			else
				for (uint32_t j = 0; j < dim; j++)
					q[j] = frand(&s);
			if (cosine(q, q, dim) != cosine(q, q, dim) || cosine(q, q, dim) == 0)
				q[0] = 1;
			n = query(model, q, dim, k, topic >= 0 ? topics[topic] : NULL, phits);
			check_against_ref(phits, n, q, dim, k, topic, nitems);
			if (qn == 4 && topic < 0)
				assert_true(phits[0].score > 0.9999f);
			/* reopened: the very same answer, bit for bit */
			if (qn == 5) {
				reopen();
				n2 = query(model, q, dim, k, topic >= 0 ? topics[topic] : NULL, phits2);
				assert_int_equal(n2, n);
				assert_memory_equal(phits2, phits, n * sizeof(*phits));
			}
		}
		free(it);
	}
}

static void test_ties_by_id(void **state)
{
	float a[4] = { 1, 2, 3, 4 }, b[4] = { 2, 4, 6, 8 }, c[4] = { -1, 0, 0, 0 };
	struct lama_vector_hit h[20];
	size_t n;

	(void)state;
	/* ten copies of one vector, ids put in falling order: exact ties,
	 * ordered by id; b is 2a, which normalizes to the same floats */
	for (unsigned i = 20; i > 10; i--)
		put1(i, "m", "t", a, 4);
	put1(3, "m", "t", c, 4);
	n = query("m", a, 4, 5, NULL, h);
	assert_int_equal(n, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(idnum(&h[i].id), 11 + i);
		assert_true(h[i].score == h[0].score);
	}
	n = query("m", b, 4, 20, NULL, h);
	assert_int_equal(n, 11);
	assert_int_equal(idnum(&h[10].id), 3);
	assert_true(h[10].score < -0.18f && h[10].score > -0.19f);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(idnum(&h[i].id), 11 + i);
}

/* ---- replace, remove, topics, models ---- */

static void test_replace_remove(void **state)
{
	float x[3] = { 1, 0, 0 }, y[3] = { 0, 1, 0 }, z[3] = { 0, 0, 1 }, w[5] = { 1, 1, 1, 1, 1 };
	struct lama_vector_hit h[10];
	lama_hash ids[3];
	size_t n, removed = 99;

	(void)state;
	put1(1, "m", "t1", x, 3);
	put1(2, "m", "t1", y, 3);
	put1(3, "m", "t2", z, 3);
	assert_int_equal(lama_vector_count(v, NULL), 3);
	n = query("m", x, 3, 1, NULL, h);
	assert_int_equal(n, 1);
	assert_int_equal(idnum(&h[0].id), 1);
	assert_true(h[0].score > 0.9999f);
	/* replaced: 1 now points along z, and moved to topic t2 */
	put1(1, "m", "t2", z, 3);
	assert_int_equal(lama_vector_count(v, NULL), 3);
	n = query("m", x, 3, 3, NULL, h);
	assert_int_equal(n, 3);
	assert_true(h[0].score < 0.0001f);
	n = query("m", z, 3, 3, "t2", h);
	assert_int_equal(n, 2);
	assert_int_equal(idnum(&h[0].id), 1); /* a tie with 3: the smaller id */
	assert_int_equal(idnum(&h[1].id), 3);
	n = query("m", z, 3, 3, "t1", h);
	assert_int_equal(n, 1);
	assert_int_equal(idnum(&h[0].id), 2);
	assert_int_equal(query("m", z, 3, 3, "no-such-topic", h), 0);
	assert_int_equal(query("other", z, 3, 3, NULL, h), 0);
	/* replaced under another model of another dimension */
	put1(2, "m5", "t1", w, 5);
	assert_int_equal(lama_vector_count(v, "m"), 2);
	assert_int_equal(lama_vector_count(v, "m5"), 1);
	assert_int_equal(lama_vector_dim(v, "m5"), 5);
	n = query("m", y, 3, 10, NULL, h);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		assert_true(idnum(&h[i].id) != 2);
	/* the model's dimension holds */
	{
		struct lama_vector_item bad = { hid(9), "t", "m5", x, 3 };

		assert_int_equal(lama_vector_put(v, &bad), LAMA_EINVAL);
		assert_int_equal(lama_vector_query(v, "m5", x, 3, 1, NULL, h, &n), LAMA_EINVAL);
	}
	/* remove: two there, one not */
	ids[0] = hid(1), ids[1] = hid(2), ids[2] = hid(77);
	assert_int_equal(lama_vector_remove(v, ids, 3, &removed), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(lama_vector_count(v, NULL), 1);
	assert_int_equal(lama_vector_count(v, "m5"), 0);
	assert_int_equal(lama_vector_dim(v, "m5"), 0); /* an empty model is gone */
	/* ... so its name may come back with another dimension */
	put1(4, "m5", "t1", x, 3);
	assert_int_equal(lama_vector_dim(v, "m5"), 3);
	/* a batch repeating an id: the later one wins; one moving an item out
	 * of a model that a later item of the batch goes into */
	{
		struct lama_vector_item b[3] = {
			{ hid(5), "t", "m", x, 3 },
			{ hid(4), "t", "m", y, 3 },   /* leaves m5 empty */
			{ hid(5), "t", "m5", w, 5 },  /* m5 again, now empty: dim 5 fits? no: */
		};

		/* m5 still has dim 3 when the batch is checked: refused whole */
		assert_int_equal(lama_vector_put_batch(v, b, 3), LAMA_EINVAL);
		assert_int_equal(lama_vector_count(v, NULL), 2);
		b[2].vec = z;
		b[2].dim = 3;
		assert_int_equal(lama_vector_put_batch(v, b, 3), 0);
		assert_int_equal(lama_vector_count(v, "m5"), 1);
		assert_int_equal(lama_vector_count(v, "m"), 2);
		n = query("m5", z, 3, 5, NULL, h);
		assert_int_equal(n, 1);
		assert_int_equal(idnum(&h[0].id), 5);
	}
	/* all of it survives a reopen */
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 3);
	assert_int_equal(lama_vector_count(v, "m5"), 1);
	assert_int_equal(lama_vector_count(v, "m"), 2);
	n = query("m", y, 3, 5, NULL, h);
	assert_int_equal(n, 2);
	assert_int_equal(idnum(&h[0].id), 4);
	assert_true(h[0].score > 0.9999f);
	assert_int_equal(lama_vector_remove(v, ids, 0, &removed), 0);
	assert_int_equal(removed, 0);
}

/* A vector of +-1 from the bits of n: two numbers, two directions at
 * least 2 of 12 signs apart. */
static void sign_vec(unsigned n, float f[12])
{
	for (int j = 0; j < 12; j++)
		f[j] = (n >> j) & 1 ? 1.0f : -1.0f;
}

/* Many puts and removes in random order against a model kept here: the
 * id map (backward-shift deletion) and the swap-with-last removal. */
static void test_churn(void **state)
{
	static uint8_t live[3000];
	struct lama_vector_hit h[4];
	uint64_t s = 42;
	size_t expect = 0;

	(void)state;
	for (int round = 0; round < 6000; round++) {
		unsigned id = rnd(&s, 3000);
		float f[12];

		sign_vec(id, f);
		if (rnd(&s, 3)) {
			put1(id, "m", "t", f, 12);
			expect += !live[id];
			live[id] = 1;
		} else {
			lama_hash hh = hid(id);
			size_t r;

			assert_int_equal(lama_vector_remove(v, &hh, 1, &r), 0);
			assert_int_equal(r, live[id]);
			expect -= live[id];
			live[id] = 0;
		}
	}
	assert_int_equal(lama_vector_count(v, NULL), expect);
	/* each live item is found by its own vector (any other scores at
	 * most 10/12), a removed one is not */
	for (unsigned id = 0; id < 3000; id++) {
		float f[12];
		size_t n;

		sign_vec(id, f);
		n = query("m", f, 12, 1, NULL, h);
		assert_int_equal(n, expect ? 1 : 0);
		if (live[id])
			assert_int_equal(idnum(&h[0].id), id);
		else if (n)
			assert_true(idnum(&h[0].id) != id && h[0].score < 0.9f);
	}
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), expect);
}

static int rawsql(const char *sql)
{
	sqlite3 *db;
	int rc;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* Two connections to one file (two index workers): each sees the
 * other's writes at its next call, also when memory could not be read
 * again at first (out of memory). */
static void test_two_handles(void **state)
{
	struct lama_vector_hit h[8];
	lama_vector *w = NULL;
	float f[12];
	lama_hash ids[10];
	size_t n, removed;
	int rc = -1;

	(void)state;
	assert_int_equal(lama_vector_open_at(path, key, &w), 0);
	for (unsigned i = 0; i < 100; i++) {
		sign_vec(i, f);
		put1(i, "m", i % 2 ? "odd" : "even", f, 12);
	}
	/* w opened before: it reads the file again for its query */
	sign_vec(42, f);
	assert_int_equal(lama_vector_query(w, "m", f, 12, 1, NULL, h, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(idnum(&h[0].id), 42);
	assert_int_equal(lama_vector_count(w, NULL), 100);
	/* w removes ten; v's count is stale until it refreshes, its query not */
	for (unsigned i = 0; i < 10; i++)
		ids[i] = hid(40 + i);
	assert_int_equal(lama_vector_remove(w, ids, 10, &removed), 0);
	assert_int_equal(removed, 10);
	assert_int_equal(lama_vector_count(v, NULL), 100);
	n = query("m", f, 12, 1, NULL, h);
	assert_int_equal(n, 1);
	assert_true(idnum(&h[0].id) != 42);
	assert_int_equal(lama_vector_refresh(v), 0);
	assert_int_equal(lama_vector_count(v, NULL), 90);
	/* w moves 0 to another model; v then writes a batch: its memory is
	 * brought up to the file inside its transaction */
	{
		struct lama_vector_item it = { hid(0), "t", "m2", f, 12 };

		assert_int_equal(lama_vector_put(w, &it), 0);
	}
	sign_vec(500, f);
	put1(500, "m", "t", f, 12);
	assert_int_equal(lama_vector_count(v, "m"), 90);
	assert_int_equal(lama_vector_count(v, "m2"), 1);
	assert_int_equal(lama_vector_count(v, NULL), 91);
	/* w removes; v's refresh fails for want of memory, then succeeds */
	ids[0] = hid(500);
	assert_int_equal(lama_vector_remove(w, ids, 1, &removed), 0);
	for (unsigned long k = 1; k < 100; k++) {
		lama_mem_fail_after(k, 1);
		rc = lama_vector_query(v, "m", f, 12, 1, NULL, h, &n);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
		/* the old copy, or the new one whole (the query's own
		 * allocations come after the refresh) */
		assert_true(lama_vector_count(v, NULL) == 91 || lama_vector_count(v, NULL) == 90);
	}
	assert_int_equal(rc, 0);
	assert_true(idnum(&h[0].id) != 500);
	assert_int_equal(lama_vector_count(v, NULL), 90);
	lama_vector_close(w);
}

/* Two connections writing in turn, against a model kept here: each one's
 * memory follows the other's puts, moves between models and removes
 * (rows and tombstones written after its write count); then the other
 * falls behind past the pruned tombstones and reads the whole file. */
static void test_two_handles_churn(void **state)
{
	static uint8_t where[400]; /* 0: absent, 1: model m, 2: model m2 */
	lama_vector *w = NULL, *hv[2];
	uint64_t s = 77;
	size_t want[3] = { 0 };

	(void)state;
	assert_int_equal(lama_vector_open_at(path, key, &w), 0);
	hv[0] = v;
	hv[1] = w;
	for (int round = 0; round < 1500; round++) {
		lama_vector *h = hv[rnd(&s, 2)], *o;
		struct lama_vector_item it[5];
		lama_hash ids[5];
		float f[5][12];
		unsigned n = 1 + rnd(&s, 5);

		if (rnd(&s, 3)) {
			for (unsigned i = 0; i < n; i++) {
				unsigned id = rnd(&s, 400), mdl = 1 + rnd(&s, 2);

				sign_vec(id, f[i]);
				it[i] = (struct lama_vector_item){ hid(id), "t", mdl == 1 ? "m" : "m2", f[i], 12 };
				want[where[id]] -= where[id] != 0;
				where[id] = (uint8_t)mdl;
				want[mdl]++;
			}
			assert_int_equal(lama_vector_put_batch(h, it, n), 0);
		} else {
			size_t removed = 0, expect = 0;

			for (unsigned i = 0; i < n; i++) {
				unsigned id = rnd(&s, 400);

				ids[i] = hid(id);
				expect += where[id] != 0;
				if (where[id])
					want[where[id]]--;
				where[id] = 0;
			}
			/* (an id twice in one remove counts once) */
			assert_int_equal(lama_vector_remove(h, ids, n, &removed), 0);
			assert_true(removed <= expect);
		}
		if (rnd(&s, 8) == 0) {
			struct lama_vector_hit hit[1];
			unsigned id = rnd(&s, 400);
			float q[12];
			size_t got;

			o = h == v ? w : v;
			assert_int_equal(lama_vector_refresh(o), 0);
			assert_int_equal(lama_vector_count(o, "m"), want[1]);
			assert_int_equal(lama_vector_count(o, "m2"), want[2]);
			assert_int_equal(lama_vector_count(o, NULL), want[1] + want[2]);
			sign_vec(id, q);
			assert_int_equal(lama_vector_query(o, where[id] == 2 ? "m2" : "m", q, 12, 1, NULL,
							   hit, &got), 0);
			if (where[id])
				assert_int_equal(idnum(&hit[0].id), id);
			else if (got)
				assert_true(idnum(&hit[0].id) != id);
		}
	}
	/* w holds 1,000 items that v then removes, and stays behind while v
	 * removes more than the tombstones kept: w's tombstones are pruned,
	 * so it reads the whole file */
	{
		static struct lama_vector_item big[1000];
		static lama_hash ids[1000];
		static float f[12];

		sign_vec(1, f);
		for (unsigned i = 0; i < 1000; i++) {
			big[i] = (struct lama_vector_item){ hid(20000 + i), "t", "m", f, 12 };
			ids[i] = big[i].id;
		}
		assert_int_equal(lama_vector_put_batch(v, big, 1000), 0);
		assert_int_equal(lama_vector_refresh(w), 0);
		assert_int_equal(lama_vector_count(w, "m"), want[1] + 1000);
		assert_int_equal(lama_vector_remove(v, ids, 1000, NULL), 0);
		for (unsigned r = 0; r < 11; r++) {
			for (unsigned i = 0; i < 1000; i++) {
				big[i] = (struct lama_vector_item){ hid(1000 + r * 1000 + i), "t", "m", f, 12 };
				ids[i] = big[i].id;
			}
			assert_int_equal(lama_vector_put_batch(v, big, 1000), 0);
			assert_int_equal(lama_vector_remove(v, ids, 1000, NULL), 0);
		}
	}
	assert_int_equal(lama_vector_refresh(w), 0);
	assert_int_equal(lama_vector_count(w, "m"), want[1]);
	assert_int_equal(lama_vector_count(w, "m2"), want[2]);
	/* a tombstone altered: refused, and again on the next call */
	{
		lama_hash gone = hid(5000000);
		size_t c = lama_vector_count(w, NULL);

		put1(5000000, "m", "t", (float[12]){ 1 }, 12);
		assert_int_equal(lama_vector_remove(v, &gone, 1, NULL), 0);
		assert_int_equal(rawsql("UPDATE gone SET sealed = zeroblob(72)"
					" WHERE seq = (SELECT max(seq) FROM gone)"), SQLITE_OK);
		assert_int_equal(lama_vector_refresh(w), LAMA_ECRYPTO);
		assert_int_equal(lama_vector_refresh(w), LAMA_ECRYPTO);
		assert_true(lama_vector_count(w, NULL) >= c);
	}
	lama_vector_close(w);
}

/* ---- keys, tampering, the file ---- */


/* Puts one item through handle h (another connection than v's). */
static void hput(lama_vector *h, unsigned id, const char *model, uint32_t dim)
{
	float f[16];
	struct lama_vector_item it;

	for (uint32_t i = 0; i < dim; i++)
		f[i] = (float)(id + i + 1);
	it = (struct lama_vector_item){ hid(id), "t", model, f, dim };
	if (lama_vector_put(h, &it))
		fail_msg("put %u %s: %s", id, model, lama_errmsg());
}

/* The one hit of model's query for item id's own vector, through v. */
static void expect_top(const char *model, unsigned id, uint32_t dim, size_t count)
{
	struct lama_vector_hit h[4];
	float f[16];

	for (uint32_t i = 0; i < dim; i++)
		f[i] = (float)(id + i + 1);
	assert_int_equal(query(model, f, dim, 4, NULL, h), count);
	assert_int_equal(idnum(&h[0].id), id);
	assert_true(h[0].score > 0.9999f);
}

/* Another connection's moves that leave a model empty, then reuse its
 * place or its name, read by an incremental refresh: the emptied model is
 * freed before a later row needs a model, and a state between two of the
 * other's writes that would pass a limit is read whole instead. */
static void test_two_handles_models(void **state)
{
	lama_vector *w = NULL;
	char name[16];

	(void)state;
	/* v holds m0..m15, X (id 0) alone in m0; w moves X to m1, then puts
	 * Y (100) in a new m16, in m0's freed place */
	for (unsigned i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "m%u", i);
		hput(v, i, name, 4);
	}
	assert_int_equal(lama_vector_open_at(path, key, &w), 0);
	hput(w, 0, "m1", 4);
	hput(w, 100, "m16", 4);
	if (lama_vector_refresh(v))
		fail_msg("refresh: %s", lama_errmsg());
	assert_int_equal(lama_vector_count(v, NULL), 17);
	assert_int_equal(lama_vector_count(v, "m0"), 0);
	assert_int_equal(lama_vector_count(v, "m1"), 2);
	expect_top("m16", 100, 4, 1);
	/* the rows in another order than their models allow one by one: w
	 * moves 2 out of m2 (its only item) to m3, puts 101 in a new m17,
	 * then 2 again, into m17. v reads 101's row first (2's row is the
	 * last write's), while its copy still has 2 in m2: 17 models for a
	 * moment, so it reads the whole file */
	hput(w, 2, "m3", 4);
	hput(w, 101, "m17", 4);
	hput(w, 2, "m17", 4);
	if (lama_vector_refresh(v))
		fail_msg("refresh: %s", lama_errmsg());
	assert_int_equal(lama_vector_count(v, NULL), 18);
	assert_int_equal(lama_vector_count(v, "m2"), 0);
	assert_int_equal(lama_vector_count(v, "m17"), 2);
	expect_top("m17", 101, 4, 2);
	expect_top("m3", 3, 4, 1);
	lama_vector_close(w);
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 18);
	expect_top("m17", 101, 4, 2);
}

/* As above, a model's name brought back with another dimension. */
static void test_two_handles_dims(void **state)
{
	lama_vector *w = NULL;

	(void)state;
	/* v holds X (id 200) alone in "d" (4) and 201 in "e" (8); w moves X
	 * to "e", then puts 202 in "d" with 6 dimensions */
	hput(v, 200, "d", 4);
	hput(v, 201, "e", 8);
	assert_int_equal(lama_vector_open_at(path, key, &w), 0);
	hput(w, 200, "e", 8);
	hput(w, 202, "d", 6);
	if (lama_vector_refresh(v))
		fail_msg("refresh: %s", lama_errmsg());
	assert_int_equal(lama_vector_dim(v, "d"), 6);
	assert_int_equal(lama_vector_count(v, "e"), 2);
	expect_top("d", 202, 6, 1);
	/* the same with the row of the emptied model's last item after the
	 * new dimension's (301 put again in "e" last): when v reads 302's
	 * row, its copy still has 301 in "f" with 4 dimensions */
	hput(v, 300, "f", 4);
	hput(v, 301, "f", 4);
	if (lama_vector_refresh(w))
		fail_msg("refresh: %s", lama_errmsg());
	hput(w, 300, "e", 8);
	hput(w, 301, "e", 8);
	hput(w, 302, "f", 5);
	hput(w, 301, "e", 8);
	if (lama_vector_refresh(v))
		fail_msg("refresh: %s", lama_errmsg());
	assert_int_equal(lama_vector_dim(v, "f"), 5);
	assert_int_equal(lama_vector_count(v, "f"), 1);
	assert_int_equal(lama_vector_count(v, "e"), 4);
	expect_top("f", 302, 5, 1);
	lama_vector_close(w);
	/* and the file reads alike from the start */
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 6);
	expect_top("f", 302, 5, 1);
}

/* A row sealed under the right key whose topic length (one byte) passes
 * the limit: refused as malformed, nothing copied past the topic's room. */
static void test_long_topic_row(void **state)
{
	uint8_t row[32], seal[32], tag[32], in[33], ad[14 + 32];
	uint8_t pt[1 + 32 + 1 + 1 + 1 + 255 + 4 + 4], ct[sizeof(pt) + LAMA_AEAD_OVERHEAD];
	lama_hash id = hid(9);
	float one = 1;
	uint8_t *p = pt;
	sqlite3 *db;
	sqlite3_stmt *st;

	(void)state;
	lama_vector_close(v);
	v = NULL;
	/* the documented format (docs/vector.md, "The file") */
	lama_kdf_derive(row, 1, "lamavrow", key);
	lama_kdf_derive(seal, 2, "lamavsea", key);
	in[0] = 'v';
	memcpy(in + 1, id.b, 32);
	lama_keyed_hash(tag, in, sizeof(in), row);
	*p++ = 1;
	memcpy(p, id.b, 32);
	p += 32;
	*p++ = 1;
	*p++ = 'm';
	*p++ = 255;
	memset(p, 'x', 255);
	p += 255;
	*p++ = 0;
	*p++ = 0;
	*p++ = 0;
	*p++ = 1;
	memcpy(p, &one, 4);
	memcpy(ad, "lama vector v1", 14);
	memcpy(ad + 14, tag, 32);
	assert_int_equal(lama_aead_seal(ct, pt, sizeof(pt), ad, sizeof(ad), seal), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO vecs(tag, seq, sealed) VALUES(?1, 0, ?2)",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, tag, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, ct, sizeof(ct), SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(lama_vector_open_at(path, key, &v), LAMA_ECORRUPT);
	assert_null(v);
	assert_non_null(strstr(lama_errmsg(), "malformed"));
	/* 200 bytes is a topic: the same row with one opens */
	pt[1 + 32 + 1 + 1] = 200;
	memmove(pt + 1 + 32 + 1 + 1 + 1 + 200, pt + 1 + 32 + 1 + 1 + 1 + 255, 8);
	assert_int_equal(lama_aead_seal(ct, pt, sizeof(pt) - 55, ad, sizeof(ad), seal), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE vecs SET sealed = ?1", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, ct, sizeof(ct) - 55, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	reopen();
	assert_int_equal(lama_vector_count(v, "m"), 1);
}

static void test_keys_tamper(void **state)
{
	float a[4] = { 1, 2, 3, 4 }, b[4] = { 4, 3, 2, 1 };
	uint8_t other[32];
	lama_vector *w = NULL;

	(void)state;
	put1(1, "secret-model", "secret-topic", a, 4);
	put1(2, "secret-model", "secret-topic", b, 4);
	lama_vector_close(v);
	v = NULL;
	/* another key: told apart, nothing read */
	memset(other, 6, 32);
	assert_int_equal(lama_vector_open_at(path, other, &w), LAMA_ECRYPTO);
	assert_null(w);
	assert_non_null(strstr(lama_errmsg(), "another key"));
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 2);
	lama_vector_close(v);
	v = NULL;
	/* a flipped byte in a sealed row */
	assert_int_equal(rawsql("UPDATE vecs SET sealed = substr(sealed, 1, 40) ||"
				" (CASE WHEN substr(sealed, 41, 1) = x'00' THEN x'01' ELSE x'00' END) ||"
				" substr(sealed, 42) WHERE rowid = 1"), SQLITE_OK);
	assert_int_equal(lama_vector_open_at(path, key, &v), LAMA_ECRYPTO);
	assert_null(strstr(lama_errmsg(), "secret"));
	assert_int_equal(rawsql("DELETE FROM vecs WHERE rowid = 1"), SQLITE_OK);
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 1);
	put1(1, "secret-model", "secret-topic", a, 4);
	put1(3, "secret-model", "secret-topic", a, 4);
	lama_vector_close(v);
	v = NULL;
	/* two rows' sealed vectors swapped: each is bound to its tag */
	assert_int_equal(rawsql("CREATE TEMP TABLE s AS SELECT rowid AS r, sealed FROM vecs;"
				"UPDATE vecs SET sealed = (SELECT sealed FROM s WHERE r ="
				" (SELECT max(rowid) FROM vecs)) WHERE rowid = (SELECT min(rowid) FROM vecs);"),
			 SQLITE_OK);
	assert_int_equal(lama_vector_open_at(path, key, &v), LAMA_ECRYPTO);
	assert_null(strstr(lama_errmsg(), "secret"));
	/* a tag of the wrong size */
	assert_int_equal(rawsql("DELETE FROM vecs; INSERT INTO vecs(tag, seq, sealed) VALUES(x'0102', 0, x'00')"),
			 SQLITE_OK);
	assert_int_equal(lama_vector_open_at(path, key, &v), LAMA_ECORRUPT);
	/* a sealed vector cut short */
	assert_int_equal(rawsql("DELETE FROM vecs; INSERT INTO vecs(tag, seq, sealed)"
				" VALUES(zeroblob(32), 0, zeroblob(20))"), SQLITE_OK);
	assert_int_equal(lama_vector_open_at(path, key, &v), LAMA_ECORRUPT);
	/* not a vector index of this version */
	assert_int_equal(rawsql("DELETE FROM vecs; PRAGMA user_version=9"), SQLITE_OK);
	assert_int_equal(lama_vector_open_at(path, key, &v), LAMA_ECORRUPT);
	assert_null(v);
	assert_int_equal(rawsql("PRAGMA user_version=1"), SQLITE_OK);
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 0);
}

static int file_has(const char *file, const void *needle, size_t n)
{
	FILE *f = fopen(file, "rb");
	char *buf;
	long len;
	int found;

	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	found = memmem(buf, (size_t)len, needle, n) != NULL;
	free(buf);
	return found;
}

static void test_at_rest(void **state)
{
	static const char *files[] = { "vectors.db", "vectors.db-wal", "vectors.db-shm" };
	float known[8] = { 1234.5678f, -0.000123f, 98765.4f, 3.14159f, 2.71828f, -42.4242f, 7e-7f, 1e9f };
	lama_hash id = hid(0xabcdef);
	char hex[65], file[4300];
	uint8_t be[16];
	int seen = 0;

	(void)state;
	memset(id.b + 3, 0xc3, 28); /* a distinctive id */
	{
		struct lama_vector_item it = { id, "zanzibar-topic", "quokka-model", known, 8 };

		assert_int_equal(lama_vector_put(v, &it), 0);
	}
	put1(2, "quokka-model", "zanzibar-topic", known, 8);
	lama_hash_hex(&id, hex);
	for (int i = 0; i < 4; i++) {
		uint32_t w;

		memcpy(&w, &known[i], 4);
		be[4 * i] = (uint8_t)(w >> 24), be[4 * i + 1] = (uint8_t)(w >> 16);
		be[4 * i + 2] = (uint8_t)(w >> 8), be[4 * i + 3] = (uint8_t)w;
	}
	/* the WAL kept live: every file as it is */
	for (size_t i = 0; i < 3; i++) {
		snprintf(file, sizeof(file), "%s/%s", dir, files[i]);
		if (access(file, F_OK) == 0)
			seen++;
		assert_false(file_has(file, id.b, 32));
		assert_false(file_has(file, id.b + 3, 12));
		assert_false(file_has(file, hex, 64));
		/* the components, little-endian (memory order) and big-endian,
		 * one at a time (4 bytes can occur by chance: 8 of them) */
		assert_false(file_has(file, known, 8));
		assert_false(file_has(file, known + 2, 8));
		assert_false(file_has(file, be, 8));
		for (int j = 0; j < 8; j++) {
			float f = known[j];

			assert_false(file_has(file, &f, 4) && file_has(file, &known[(j + 1) % 8], 4));
		}
		assert_false(file_has(file, "zanzibar", 8));
		assert_false(file_has(file, "quokka", 6));
	}
	assert_true(seen >= 2);
	for (size_t i = 0; i < 2; i++) {
		struct stat st;

		snprintf(file, sizeof(file), "%s/%s", dir, files[i]);
		assert_int_equal(stat(file, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 2);
}

/* ---- hostile arguments and limits ---- */

static void test_hostile(void **state)
{
	static float big[LAMA_VECTOR_DIM_MAX + 1];
	float x[3] = { 1, 2, 3 }, zero[3] = { 0 }, nan3[3] = { 1, NAN, 1 }, inf3[3] = { 1, INFINITY, 1 };
	struct lama_vector_hit h[LAMA_VECTOR_K_MAX + 1];
	char longname[LAMA_VECTOR_MODEL_MAX + 2], longtopic[LAMA_VECTOR_TOPIC_MAX + 2];
	size_t n;

	(void)state;
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	memset(longtopic, 't', sizeof(longtopic) - 1);
	longtopic[sizeof(longtopic) - 1] = 0;
	for (size_t i = 0; i <= LAMA_VECTOR_DIM_MAX; i++)
		big[i] = 1;
	put1(1, "m", "t", x, 3);
	{
		struct lama_vector_item bad[] = {
			{ hid(2), "t", "m", x, 0 },
			{ hid(2), "t", "big", big, LAMA_VECTOR_DIM_MAX + 1 },
			{ hid(2), "t", "m", zero, 3 },
			{ hid(2), "t", "m", nan3, 3 },
			{ hid(2), "t", "m", inf3, 3 },
			{ hid(2), "t", "", x, 3 },
			{ hid(2), "t", "has space", x, 3 },
			{ hid(2), "t", "tab\tname", x, 3 },
			{ hid(2), "t", longname, x, 3 },
			{ hid(2), "", "m", x, 3 },
			{ hid(2), longtopic, "m", x, 3 },
			{ hid(2), NULL, "m", x, 3 },
			{ hid(2), "t", NULL, x, 3 },
			{ hid(2), "t", "m", NULL, 3 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
			struct lama_vector_item two[2] = { { hid(3), "t", "m", x, 3 }, bad[i] };

			if (lama_vector_put(v, &bad[i]) != LAMA_EINVAL)
				fail_msg("bad item %zu accepted", i);
			/* a good item before a bad one is not written either */
			assert_int_equal(lama_vector_put_batch(v, two, 2), LAMA_EINVAL);
			assert_non_null(strstr(lama_errmsg(), "item 1"));
			assert_int_equal(lama_vector_count(v, NULL), 1);
		}
	}
	/* the largest dimension is fine */
	put1(5, "big", "t", big, LAMA_VECTOR_DIM_MAX);
	assert_int_equal(query("big", big, LAMA_VECTOR_DIM_MAX, 1, NULL, h), 1);
	assert_int_equal(lama_vector_put_batch(v, NULL, LAMA_VECTOR_BATCH_MAX + 1), LAMA_ELIMIT);
	/* queries */
	assert_int_equal(lama_vector_query(v, "m", x, 3, 0, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", x, 3, LAMA_VECTOR_K_MAX + 1, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", x, 0, 1, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", big, LAMA_VECTOR_DIM_MAX + 1, 1, NULL, h, &n),
			 LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", zero, 3, 1, NULL, h, &n), LAMA_EINVAL);
	assert_non_null(strstr(lama_errmsg(), "zero"));
	assert_int_equal(lama_vector_query(v, "m", nan3, 3, 1, NULL, h, &n), LAMA_EINVAL);
	assert_non_null(strstr(lama_errmsg(), "NaN"));
	assert_int_equal(lama_vector_query(v, "m", inf3, 3, 1, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "", x, 3, 1, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, longname, x, 3, 1, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", x, 3, 1, "", h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", x, 3, 1, longtopic, h, &n), LAMA_EINVAL);
	assert_int_equal(lama_vector_query(v, "m", x, 2, 1, NULL, h, &n), LAMA_EINVAL);
	assert_int_equal(n, 0);
	/* k larger than the items: all of them */
	assert_int_equal(query("m", x, 3, LAMA_VECTOR_K_MAX, NULL, h), 1);
	/* at most 16 models */
	for (int i = 0; i < LAMA_VECTOR_MODELS_MAX - 2; i++) {
		char name[16];

		snprintf(name, sizeof(name), "model%d", i);
		put1(100 + (unsigned)i, name, "t", x, 3);
	}
	{
		struct lama_vector_item it = { hid(200), "t", "one-too-many", x, 3 };
		lama_hash gone = hid(100);

		assert_int_equal(lama_vector_put(v, &it), LAMA_ELIMIT);
		/* a model emptied frees its place */
		assert_int_equal(lama_vector_remove(v, &gone, 1, NULL), 0);
		assert_int_equal(lama_vector_put(v, &it), 0);
	}
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 2 + LAMA_VECTOR_MODELS_MAX - 2);
}

/* ---- out of memory ---- */

static void test_oom(void **state)
{
	float a[16], q[16];
	struct lama_vector_hit h[8];
	struct lama_vector_item b[40];
	uint64_t s = 7;
	size_t n = 0;
	int rc = -1;

	(void)state;
	for (unsigned i = 0; i < 300; i++) {
		for (int j = 0; j < 16; j++)
			a[j] = frand(&s);
		put1(i, i % 2 ? "m1" : "m2", i % 3 ? "t1" : "t2", a, 16);
	}
	for (int j = 0; j < 16; j++)
		q[j] = frand(&s);
	/* open: each allocation failed in turn; an error or success, never
	 * a crash or a leak */
	lama_vector_close(v);
	v = NULL;
	for (unsigned long k = 1; k < 400; k++) {
		lama_mem_fail_after(k, 1);
		rc = lama_vector_open_at(path, key, &v);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
		assert_null(v);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(lama_vector_count(v, NULL), 300);
	for (unsigned long k = 1; k < 100; k++) {
		lama_mem_fail_after(k, 1);
		rc = lama_vector_query(v, "m1", q, 16, 8, "t1", h, &n);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 8);
	/* a batch that adds a model, replaces and moves items: all or none,
	 * in memory and in the file */
	static float bv[40][16];
	for (unsigned i = 0; i < 40; i++) {
		for (int j = 0; j < 16; j++)
			bv[i][j] = frand(&s);
		b[i] = (struct lama_vector_item){ hid(i < 20 ? i : 1000 + i), "t3",
						  i % 2 ? "m3" : "m1", bv[i], 16 };
	}
	for (unsigned long k = 1; k < 400; k++) {
		lama_mem_fail_after(k, 1);
		rc = lama_vector_put_batch(v, b, 40);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
		assert_int_equal(lama_vector_count(v, NULL), 300);
		assert_int_equal(lama_vector_count(v, "m3"), 0);
		assert_int_equal(lama_vector_count(v, "m1"), 150);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(lama_vector_count(v, NULL), 320);
	assert_int_equal(lama_vector_count(v, "m3"), 20);
	{
		size_t n1 = query("m3", bv[1], 16, 1, NULL, h);

		assert_int_equal(n1, 1);
		assert_int_equal(idnum(&h[0].id), 1);
	}
	reopen();
	assert_int_equal(lama_vector_count(v, NULL), 320);
	assert_int_equal(lama_vector_count(v, "m3"), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_topk_property, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ties_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles_models, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles_dims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_topic_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_at_rest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
