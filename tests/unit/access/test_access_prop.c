/* test_access_prop.c: random grants, revokes, group changes and new
 * versions against a simple model.
 *
 * Each iteration opens a fresh archive with 4 persons, 3 group names, 5
 * objects (plain ones, one referencing another, one referencing a BLOB
 * and a person's ID) and 2 versioned IDs, then applies 30 random
 * operations through the access API, mirroring each in plain arrays. After
 * every operation one random person's roots and closure must equal the
 * model's exactly; after the last, every person's. The closure the model
 * expects for each root is written down from what the test put.
 *
 * LAMA_TEST_SEED=n picks the first seed, LAMA_TEST_ITER=n the number of
 * iterations; a failure prints the seed that reproduces it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "access_test.h"

#define NP 4 /* persons */
#define NG 3 /* groups */
#define NO 5 /* objects */
#define NI 2 /* versioned IDs */
#define OPS 30

struct model {
	lama_hash person[NP], group[NG], obj[NO], id[NI];
	json_t *obj_closure[NO], *id_closure[NI];
	int exists[NG];
	int member[NG][NP];
	int op[NO][NP], og[NO][NG]; /* Access: persons, groups */
	int ip[NI][NP], ig[NI][NG]; /* IdAccess */
	int nversions[NI];
};

static uint64_t cur_seed;
static int in_iter;

static void on_fail(void)
{
	if (in_iter)
		fprintf(stderr, "reproduce with LAMA_TEST_SEED=%llu LAMA_TEST_ITER=1\n",
			(unsigned long long)cur_seed);
}

static void new_version(lama_archive *a, struct model *m, int i, uint64_t *s)
{
	struct lama_put_info info;
	char email[32], name[16];

	snprintf(email, sizeof(email), "doc%d@x", i);
	snprintf(name, sizeof(name), "v%u", rnd(s, 4));
	put(a, json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", email, "name", name),
	    &info);
	m->id[i] = info.id_hash;
	/* the ID object, every node and every version's object */
	set_add(m->id_closure[i], &info.id_hash, LAMA_ACCESS_ID);
	set_add(m->id_closure[i], &info.node, LAMA_ACCESS_OBJECT);
	set_add(m->id_closure[i], &info.hash, LAMA_ACCESS_OBJECT);
	m->nversions[i]++;
}

static void setup(lama_archive *a, struct model *m, uint64_t *s)
{
	char buf[64];

	memset(m, 0, sizeof(*m));
	for (int p = 0; p < NP; p++) {
		snprintf(buf, sizeof(buf), "p%d@x", p);
		m->person[p] = person(a, buf);
	}
	for (int g = 0; g < NG; g++) {
		snprintf(buf, sizeof(buf), "group %d", g);
		assert_int_equal(lama_access_group_id(a, buf, &m->group[g]), 0);
	}
	for (int o = 0; o < NO; o++)
		m->obj_closure[o] = json_object();
	for (int o = 0; o < 3; o++) {
		snprintf(buf, sizeof(buf), "object %d", o);
		m->obj[o] = put(a, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", buf), NULL);
		set_add(m->obj_closure[o], &m->obj[o], LAMA_ACCESS_OBJECT);
	}
	/* o3 -> o0 */
	m->obj[3] = put(a, json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", 5.0,
				     "data", hx(&m->obj[0])), NULL);
	set_add(m->obj_closure[3], &m->obj[3], LAMA_ACCESS_OBJECT);
	set_union(m->obj_closure[3], m->obj_closure[0]);
	/* o4 -> a BLOB, person 0's ID */
	lama_hash b = blob(a, "blob");
	m->obj[4] = put(a, json_pack("{s:s, s:s, s:s, s:s}", "$type$", "AccessTestNote", "title",
				     "o4", "file", hx(&b), "who", hx(&m->person[0])), NULL);
	set_add(m->obj_closure[4], &m->obj[4], LAMA_ACCESS_OBJECT);
	set_add(m->obj_closure[4], &b, LAMA_ACCESS_BLOB);
	set_add(m->obj_closure[4], &m->person[0], LAMA_ACCESS_ID);
	for (int i = 0; i < NI; i++) {
		m->id_closure[i] = json_object();
		new_version(a, m, i, s);
	}
}

static void model_release(struct model *m)
{
	for (int o = 0; o < NO; o++)
		json_decref(m->obj_closure[o]);
	for (int i = 0; i < NI; i++)
		json_decref(m->id_closure[i]);
}

static int in_group(const struct model *m, int g, int p)
{
	return m->exists[g] && m->member[g][p];
}

static int named(const struct model *m, const int *persons, const int *groups, int p)
{
	if (persons[p])
		return 1;
	for (int g = 0; g < NG; g++)
		if (groups[g] && in_group(m, g, p))
			return 1;
	return 0;
}

static void check(lama_archive *a, const struct model *m, int p)
{
	json_t *want_roots = json_object(), *want = json_object();
	char what[64];

	for (int o = 0; o < NO; o++)
		if (named(m, m->op[o], m->og[o], p)) {
			root_add(want_roots, &m->obj[o], 0);
			set_union(want, m->obj_closure[o]);
		}
	for (int i = 0; i < NI; i++)
		if (named(m, m->ip[i], m->ig[i], p)) {
			root_add(want_roots, &m->id[i], 1);
			set_union(want, m->id_closure[i]);
		}
	snprintf(what, sizeof(what), "roots of person %d", p);
	set_equal(what, roots_of(a, &m->person[p]), want_roots);
	snprintf(what, sizeof(what), "closure of person %d", p);
	set_equal(what, closure_of(a, &m->person[p], NULL), want);
}

/* Random subsets of persons and groups, as hash arrays and into flags. */
static void pick(uint64_t *s, const struct model *m, lama_hash *ph, size_t *np, int *pf,
		 lama_hash *gh, size_t *ng, int *gf)
{
	*np = *ng = 0;
	for (int p = 0; p < NP; p++) {
		pf[p] = rnd(s, 3) == 0;
		if (pf[p])
			ph[(*np)++] = m->person[p];
	}
	for (int g = 0; g < NG; g++) {
		gf[g] = rnd(s, 3) == 0;
		if (gf[g])
			gh[(*ng)++] = m->group[g];
	}
}

static void step(lama_archive *a, struct model *m, uint64_t *s)
{
	lama_hash ph[NP], gh[NG];
	int pf[NP], gf[NG], rc;
	size_t np, ng;
	unsigned op = rnd(s, 8), t;
	char name[32];
	int g = (int)rnd(s, NG), p = (int)rnd(s, NP);

	snprintf(name, sizeof(name), "group %d", g);
	switch (op) {
	case 0: /* grant an object */
	case 1: /* revoke */
		t = rnd(s, NO);
		pick(s, m, ph, &np, pf, gh, &ng, gf);
		rc = op == 0 ? lama_access_grant(a, &m->obj[t], ph, np, gh, ng, NULL)
			     : lama_access_revoke(a, &m->obj[t], ph, np, gh, ng);
		assert_int_equal(rc, 0);
		for (int i = 0; i < NP; i++)
			if (pf[i])
				m->op[t][i] = op == 0;
		for (int i = 0; i < NG; i++)
			if (gf[i])
				m->og[t][i] = op == 0;
		break;
	case 2: /* grant an ID */
	case 3:
		t = rnd(s, NI);
		pick(s, m, ph, &np, pf, gh, &ng, gf);
		rc = op == 2 ? lama_access_grant_id(a, &m->id[t], ph, np, gh, ng, NULL)
			     : lama_access_revoke_id(a, &m->id[t], ph, np, gh, ng);
		assert_int_equal(rc, 0);
		for (int i = 0; i < NP; i++)
			if (pf[i])
				m->ip[t][i] = op == 2;
		for (int i = 0; i < NG; i++)
			if (gf[i])
				m->ig[t][i] = op == 2;
		break;
	case 4: /* set a group's members */
		pick(s, m, ph, &np, pf, gh, &ng, gf);
		assert_int_equal(lama_access_group_set(a, name, ph, np, NULL), 0);
		m->exists[g] = 1;
		memcpy(m->member[g], pf, sizeof(pf));
		break;
	case 5: /* add or remove one member */
	case 6:
		rc = op == 5 ? lama_access_group_add(a, &m->group[g], &m->person[p])
			     : lama_access_group_remove(a, &m->group[g], &m->person[p]);
		assert_int_equal(rc, m->exists[g] ? 0 : LAMA_ENOTFOUND);
		if (m->exists[g])
			m->member[g][p] = op == 5;
		break;
	default: /* a new version of an ID */
		new_version(a, m, (int)rnd(s, NI), s);
		break;
	}
}

static void test_random(void **state)
{
	const char *e = getenv("LAMA_TEST_SEED"), *it = getenv("LAMA_TEST_ITER");
	uint64_t first = e ? strtoull(e, NULL, 10) : 1;
	int iters = it ? atoi(it) : 150;
	struct fx f;

	(void)state;
	fx_open(&f);
	fx_close_archive(&f);
	for (int k = 0; k < iters; k++) {
		struct model m;
		uint64_t s;

		cur_seed = first + (uint64_t)k;
		s = cur_seed * 0x9E3779B97F4A7C15ULL + 1;
		in_iter = 1;
		fx_archive(&f);
		setup(f.a, &m, &s);
		for (int i = 0; i < OPS; i++) {
			step(f.a, &m, &s);
			check(f.a, &m, (int)rnd(&s, NP));
		}
		for (int p = 0; p < NP; p++)
			check(f.a, &m, p);
		model_release(&m);
		fx_close_archive(&f);
		in_iter = 0;
	}
	fx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random),
	};

	atexit(on_fail);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
