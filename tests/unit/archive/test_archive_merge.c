/* test_archive_merge.c: property tests of the merge of concurrent versions.
 *
 * Each iteration makes a random TestAllTypes base and 2-5 concurrent
 * branches after it (one or two versions each, random register changes,
 * random adds and removes in the set, creation times with ties), then puts
 * them into separate archives in random orders and merges them in
 * different ways: all at once; with merges at random points between the
 * puts; repeatedly; and with every version put again after the merge. All
 * must agree with each other and with the model (archive_model.h).
 *
 * LAMA_TEST_SEED=n picks the first seed, LAMA_TEST_ITER=n the number of
 * iterations; a failure prints the seed that reproduces it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "archive_test.h"
#include "archive_model.h"

static uint64_t cur_seed;
static int in_iter;

static const char *const pool_str[] = { "a", "b", "ab", "z", "\xc3\xa9", "a b" };
static const char *const pool_set[] = { "s1", "s2", "s3", "s4", "s5", "s6" };

#define NPOOL(p) (sizeof(p) / sizeof((p)[0]))

static json_t *rand_set(uint64_t *s)
{
	json_t *items = json_array();

	for (size_t i = 0; i < NPOOL(pool_set); i++)
		if (rnd(s, 2))
			json_array_append_new(items, json_string(pool_set[i]));
	return json_pack("{s:o}", "$set", items);
}

/* A random change of one register (or its removal when optional). */
static void change_register(uint64_t *s, json_t *o)
{
	switch (rnd(s, 6)) {
	case 0:
		json_object_del(o, "str");
		break;
	case 1:
	case 2:
		json_object_set_new(o, "str", json_string(pool_str[rnd(s, NPOOL(pool_str))]));
		break;
	case 3:
		json_object_set_new(o, "int", json_real((double)rnd(s, 12)));
		break;
	case 4:
		if (rnd(s, 3))
			json_object_set_new(o, "bool", rnd(s, 2) ? json_true() : json_false());
		else
			json_object_del(o, "bool");
		break;
	default: {
		json_t *m = json_pack("[[s,f]]", pool_str[rnd(s, NPOOL(pool_str))], (double)rnd(s, 3));

		json_object_set_new(o, "map", json_pack("{s:o}", "$map", m));
		break;
	}
	}
}

static void change_set(uint64_t *s, json_t *o)
{
	json_t *items = json_object_get(json_object_get(o, "set"), "$set"), *copy = json_array();
	const char *pick = pool_set[rnd(s, NPOOL(pool_set))];
	size_t i;
	json_t *it;
	int had = 0;

	json_array_foreach(items, i, it) {
		if (!strcmp(json_string_value(it), pick))
			had = 1;
		else
			json_array_append(copy, it);
	}
	if (!had)
		json_array_append_new(copy, json_string(pick));
	json_object_set_new(o, "set", json_pack("{s:o}", "$set", copy));
}

static json_t *random_version(uint64_t *s, const json_t *prev)
{
	json_t *o = json_deep_copy(prev);
	unsigned nr = rnd(s, 3), ns = rnd(s, 4);

	for (unsigned i = 0; i < nr; i++)
		change_register(s, o);
	for (unsigned i = 0; i < ns; i++)
		change_set(s, o);
	return o;
}

struct scenario {
	json_t *base;
	double t0;
	int k;
	struct branch b[5];
	/* per archive: the nodes of each version (base: node[..][0][0]) */
	lama_hash node[5][BRANCH_MAX];
	lama_hash base_node;
	lama_hash id, want;
	json_t *expect;
};

static int same_version(const struct scenario *sc, int i, int j, const lama_recipes *r)
{
	lama_hash a, b;

	if (sc->b[i].time[0] != sc->b[j].time[0])
		return 0;
	hash_obj(r, sc->b[i].obj[0], &a, NULL);
	hash_obj(r, sc->b[j].obj[0], &b, NULL);
	return lama_hash_eq(&a, &b);
}

static void scenario_make(struct scenario *sc, uint64_t *s, int iter, const lama_recipes *r)
{
	char id[32];

	memset(sc, 0, sizeof(*sc));
	snprintf(id, sizeof(id), "p%d", iter);
	sc->base = tat_new(id);
	sc->t0 = 1000 + rnd(s, 3);
	for (unsigned i = 0, n = 1 + rnd(s, 3); i < n; i++)
		change_register(s, sc->base);
	json_object_set_new(sc->base, "set", rand_set(s));
	sc->k = 2 + (int)rnd(s, 4);
	for (int i = 0; i < sc->k; i++) {
		struct branch *b = &sc->b[i];
		const json_t *prev = sc->base;
		double t = sc->t0 + 1;

		b->n = rnd(s, 3) ? 1 : 2;
		for (int j = 0; j < b->n; j++) {
			t += rnd(s, 3); /* ties between and within branches */
			b->obj[j] = random_version(s, prev);
			b->time[j] = t;
			prev = b->obj[j];
		}
		/* two branches that start with the same version share a node:
		 * they are not concurrent, so make another */
		for (int j = 0; j < i; j++) {
			if (same_version(sc, i, j, r)) {
				for (int m = 0; m < b->n; m++)
					json_decref(b->obj[m]);
				i--;
				break;
			}
		}
	}
	sc->expect = model_merge(sc->base, sc->t0, sc->b, sc->k);
	hash_obj(r, sc->expect, &sc->want, NULL);
	hash_obj(r, sc->base, NULL, &sc->id);
}

static void scenario_free(struct scenario *sc)
{
	json_decref(sc->base);
	json_decref(sc->expect);
	for (int i = 0; i < sc->k; i++)
		for (int j = 0; j < sc->b[i].n; j++)
			json_decref(sc->b[i].obj[j]);
}

/* A random order of all versions that keeps each branch's own order:
 * entries are branch*BRANCH_MAX + step. */
static int random_order(const struct scenario *sc, uint64_t *s, int *order)
{
	int next[5] = { 0 }, total = 0, n = 0;

	for (int i = 0; i < sc->k; i++)
		total += sc->b[i].n;
	while (n < total) {
		int i = (int)rnd(s, (unsigned)sc->k);

		if (next[i] < sc->b[i].n) {
			order[n++] = i * BRANCH_MAX + next[i];
			next[i]++;
		}
	}
	return n;
}

static void put_base(struct scenario *sc, lama_archive *a)
{
	struct lama_put_info info;

	if (lama_archive_put_version(a, sc->base, NULL, sc->t0, &info))
		fail_msg("put base: %s", lama_errmsg());
	assert_true(lama_hash_eq(&info.id_hash, &sc->id));
	sc->base_node = info.node;
}

static void put_step(struct scenario *sc, lama_archive *a, int e)
{
	int i = e / BRANCH_MAX, j = e % BRANCH_MAX;
	struct lama_put_info info;
	const lama_hash *prev = j ? &sc->node[i][j - 1] : &sc->base_node;

	if (lama_archive_put_version(a, sc->b[i].obj[j], prev, sc->b[i].time[j], &info))
		fail_msg("put version %d/%d: %s", i, j, lama_errmsg());
	sc->node[i][j] = info.node;
}

static void scenario_dump(const struct scenario *sc)
{
	char *b = json_dumps(sc->base, JSON_SORT_KEYS);

	fprintf(stderr, "base (t %g) %s\n", sc->t0, b);
	free(b);
	for (int i = 0; i < sc->k; i++)
		for (int j = 0; j < sc->b[i].n; j++) {
			char *v = json_dumps(sc->b[i].obj[j], JSON_SORT_KEYS);

			fprintf(stderr, "branch %d step %d (t %g) %s\n", i, j, sc->b[i].time[j], v);
			free(v);
		}
}

static void check_result(struct scenario *sc, lama_archive *a, const char *how)
{
	lama_hash cur;

	if (lama_archive_current(a, &sc->id, &cur))
		fail_msg("%s: current: %s", how, lama_errmsg());
	assert_int_equal(archive_consistent(a, &sc->id), 1);
	if (!lama_hash_eq(&cur, &sc->want)) {
		json_t *got = NULL;
		char *g, *w;

		assert_int_equal(lama_archive_get(a, &cur, &got), 0);
		g = json_dumps(got, JSON_SORT_KEYS);
		w = json_dumps(sc->expect, JSON_SORT_KEYS);
		scenario_dump(sc);
		fail_msg("%s: merged\n got  %s\n want %s", how, g, w);
	}
}

static void one_iteration(struct afx *f, int iter, uint64_t seed)
{
	struct scenario sc;
	uint64_t s = seed;
	int order[5 * BRANCH_MAX], n;
	lama_hash node, node2, cur;

	scenario_make(&sc, &s, iter, f->r);

	/* (a) all at once, in a random order */
	put_base(&sc, f->a[0]);
	n = random_order(&sc, &s, order);
	for (int i = 0; i < n; i++)
		put_step(&sc, f->a[0], order[i]);
	if (nheads(f->a[0], &sc.id) != (size_t)sc.k) {
		scenario_dump(&sc);
		fail_msg("%zu heads, not %d", nheads(f->a[0], &sc.id), sc.k);
	}
	check_result(&sc, f->a[0], "all at once");

	/* (b) merges at random points between the puts, another order */
	put_base(&sc, f->a[1]);
	n = random_order(&sc, &s, order);
	for (int i = 0; i < n; i++) {
		put_step(&sc, f->a[1], order[i]);
		if (rnd(&s, 2))
			assert_int_equal(lama_archive_merge(f->a[1], &sc.id, NULL), 0);
	}
	check_result(&sc, f->a[1], "merged in steps");

	/* (b') pairwise: one branch at a time, a merge after each */
	put_base(&sc, f->a[2]);
	{
		int perm[5];

		for (int i = 0; i < sc.k; i++)
			perm[i] = i;
		for (int i = sc.k - 1; i > 0; i--) {
			int j = (int)rnd(&s, (unsigned)i + 1), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		for (int i = 0; i < sc.k; i++) {
			for (int j = 0; j < sc.b[perm[i]].n; j++)
				put_step(&sc, f->a[2], perm[i] * BRANCH_MAX + j);
			if (i > 0)
				assert_int_equal(lama_archive_merge(f->a[2], &sc.id, NULL), 0);
		}
	}
	check_result(&sc, f->a[2], "pairwise");

	/* (c) merging again and again changes nothing */
	assert_int_equal(lama_archive_merge(f->a[0], &sc.id, &node), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(lama_archive_merge(f->a[0], &sc.id, &node2), 0);
		assert_true(lama_hash_eq(&node, &node2));
	}
	check_result(&sc, f->a[0], "merged again");

	/* (d) the same versions arriving again (same prev, same time) are
	 * known: the heads stay as they are */
	for (int a = 0; a < 3; a++) {
		assert_int_equal(lama_archive_merge(f->a[a], &sc.id, &node), 0);
		put_base(&sc, f->a[a]);
		n = random_order(&sc, &s, order);
		for (int i = 0; i < n; i++) {
			put_step(&sc, f->a[a], order[i]);
			if (nheads(f->a[a], &sc.id) != 1)
				fail_msg("archive %d: a known version became a head again", a);
		}
		assert_int_equal(lama_archive_merge(f->a[a], &sc.id, &node2), 0);
		assert_true(lama_hash_eq(&node, &node2));
		check_result(&sc, f->a[a], "versions again");
	}

	/* (e) the versions in yet another order into a fourth archive,
	 * base last but one... no: a version needs its prev, so the base
	 * first; the branches reversed, merged only at the end */
	put_base(&sc, f->a[3]);
	n = random_order(&sc, &s, order);
	for (int i = n - 1; i >= 0; i--)
		if (order[i] % BRANCH_MAX == 0)
			put_step(&sc, f->a[3], order[i]);
	for (int i = 0; i < n; i++)
		if (order[i] % BRANCH_MAX != 0)
			put_step(&sc, f->a[3], order[i]);
	check_result(&sc, f->a[3], "other order");

	/* all archives name the same current object */
	for (int a = 0; a < 4; a++) {
		assert_int_equal(lama_archive_current(f->a[a], &sc.id, &cur), 0);
		assert_true(lama_hash_eq(&cur, &sc.want));
	}
	scenario_free(&sc);
}

static void test_merge_property(void **state)
{
	struct afx f;
	const char *e = getenv("LAMA_TEST_SEED"), *ni = getenv("LAMA_TEST_ITER");
	uint64_t seed0 = e ? strtoull(e, NULL, 0) : 0x1a3a5eedULL;
	int iters = ni ? atoi(ni) : 200;

	(void)state;
	afx_open(&f);
	for (int a = 1; a < 4; a++)
		afx_add(&f);
	for (int it = 0; it < iters; it++) {
		cur_seed = seed0 + (uint64_t)it * 0x9E3779B97F4A7C15ULL;
		if (!cur_seed)
			cur_seed = 1;
		in_iter = 1;
		one_iteration(&f, it, cur_seed);
		in_iter = 0;
	}
	for (int a = 0; a < 4; a++)
		store_ok(f.st[a], NULL);
	afx_done(&f);
}

static int teardown(void **state)
{
	(void)state;
	if (in_iter)
		fprintf(stderr, "failed with seed: LAMA_TEST_SEED=%llu LAMA_TEST_ITER=1\n",
			(unsigned long long)cur_seed);
	in_iter = 0;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_merge_property, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
