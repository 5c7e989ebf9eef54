/* test_access.c: grants, groups and who may receive what, against real
 * archives.
 *
 * The scenario test builds persons, groups, objects that reference BLOBs,
 * CLOBs, IDs and chains of further objects, and a versioned object with
 * several versions; the closure each object or ID brings is written down
 * by hand from what the test put (never asked of the code under test), and
 * each person's closure must be exactly the union for what was granted:
 * nothing more, nothing less. Then grants, groups and versions change and
 * the sets are checked again. Other tests: concurrent versions of grants
 * and groups merged, hostile objects (validation, references to what is
 * missing or of the wrong kind, oversized bags), API errors, and
 * allocation failure at every step of a closure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "access_test.h"

struct world {
	lama_hash alice, bob, carol, dave, erin;
	lama_hash g1, g2, g3;
	lama_hash m1, d1, b1, m2, m3, ct1, ct2, l1, l2, n1, c1, b2, s, prof;
	lama_hash pv[4], pnode[4], pn[4];
	json_t *exp_m1, *exp_l2, *exp_n1, *exp_prof;
};

static lama_hash chat(lama_archive *a, const char *text, const lama_hash *sender,
		      const lama_hash *attach)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", text, "sender",
			      hx(sender));

	if (attach)
		json_object_set_new(o, "attachments", json_pack("[s]", hx(attach)));
	return put(a, o, NULL);
}

static lama_hash profile_version(lama_archive *a, struct world *w, const lama_hash *names,
				 size_t n, struct lama_put_info *info)
{
	json_t *pd = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(pd, json_string(hx(&names[i])));
	return put(a, json_pack("{s:s, s:s, s:s, s:s, s:[], s:o}", "$type$", "Profile",
				"profileId", "p1", "personId", hx(&w->dave), "owner",
				hx(&w->alice), "communicationEndpoint", "personDescription", pd),
		   info);
}

static lama_hash person_name(lama_archive *a, const char *name)
{
	return put(a, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", name), NULL);
}

static void build(struct world *w, lama_archive *a)
{
	struct lama_put_info info;
	lama_hash list[2];

	memset(w, 0, sizeof(*w));
	w->alice = person(a, "alice@example.org");
	w->bob = person(a, "bob@example.org");
	w->carol = person(a, "carol@example.org");
	w->dave = person(a, "dave@example.org");
	w->erin = person(a, "erin@example.org");

	/* a message with an attachment: descriptor and BLOB */
	w->b1 = blob(a, "photo bytes");
	w->d1 = put(a, json_pack("{s:s, s:s, s:f, s:s, s:f, s:s}", "$type$", "BlobDescriptor",
				 "data", hx(&w->b1), "lastModified", 1.0, "name", "photo.jpg",
				 "size", 11.0, "type", "image/jpeg"), NULL);
	w->m1 = chat(a, "hi", &w->alice, &w->d1);
	w->exp_m1 = json_object();
	set_add(w->exp_m1, &w->m1, LAMA_ACCESS_OBJECT);
	set_add(w->exp_m1, &w->d1, LAMA_ACCESS_OBJECT);
	set_add(w->exp_m1, &w->b1, LAMA_ACCESS_BLOB);
	set_add(w->exp_m1, &w->alice, LAMA_ACCESS_ID);

	/* a chain: L2 -> CT2 -> M3, L2 -> L1 -> CT1 -> M2 */
	w->m2 = chat(a, "two", &w->bob, NULL);
	w->m3 = chat(a, "three", &w->carol, NULL);
	w->ct1 = put(a, json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", 1.0,
				  "data", hx(&w->m2)), NULL);
	w->ct2 = put(a, json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", 2.0,
				  "data", hx(&w->m3)), NULL);
	w->l1 = put(a, json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", hx(&w->ct1)),
		    NULL);
	w->l2 = put(a, json_pack("{s:s, s:s, s:s}", "$type$", "LinkedListEntry", "data",
				 hx(&w->ct2), "previous", hx(&w->l1)), NULL);
	w->exp_l2 = json_object();
	set_add(w->exp_l2, &w->l2, LAMA_ACCESS_OBJECT);
	set_add(w->exp_l2, &w->ct2, LAMA_ACCESS_OBJECT);
	set_add(w->exp_l2, &w->m3, LAMA_ACCESS_OBJECT);
	set_add(w->exp_l2, &w->carol, LAMA_ACCESS_ID);
	set_add(w->exp_l2, &w->l1, LAMA_ACCESS_OBJECT);
	set_add(w->exp_l2, &w->ct1, LAMA_ACCESS_OBJECT);
	set_add(w->exp_l2, &w->m2, LAMA_ACCESS_OBJECT);
	set_add(w->exp_l2, &w->bob, LAMA_ACCESS_ID);

	/* a note: a CLOB, a BLOB, a referenceToId (bob: his ID object only,
	 * not his Person versions) and a reference to M1 */
	w->c1 = clob(a, "some long text");
	w->b2 = blob(a, "a file");
	w->n1 = put(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s]}", "$type$", "AccessTestNote",
				 "title", "n1", "text", hx(&w->c1), "file", hx(&w->b2), "who",
				 hx(&w->bob), "ref", hx(&w->m1)), NULL);
	w->exp_n1 = json_object();
	set_add(w->exp_n1, &w->n1, LAMA_ACCESS_OBJECT);
	set_add(w->exp_n1, &w->c1, LAMA_ACCESS_CLOB);
	set_add(w->exp_n1, &w->b2, LAMA_ACCESS_BLOB);
	set_add(w->exp_n1, &w->bob, LAMA_ACCESS_ID);
	set_union(w->exp_n1, w->exp_m1);

	/* a versioned object with three versions */
	for (int i = 0; i < 3; i++) {
		char nm[16];

		snprintf(nm, sizeof(nm), "name %d", i);
		w->pn[i] = person_name(a, nm);
	}
	w->exp_prof = json_object();
	w->pv[0] = profile_version(a, w, &w->pn[0], 1, &info);
	w->prof = info.id_hash;
	w->pnode[0] = info.node;
	list[0] = w->pn[0];
	list[1] = w->pn[1];
	w->pv[1] = profile_version(a, w, list, 2, &info);
	w->pnode[1] = info.node;
	w->pv[2] = profile_version(a, w, &w->pn[2], 1, &info);
	w->pnode[2] = info.node;
	set_add(w->exp_prof, &w->prof, LAMA_ACCESS_ID);
	for (int i = 0; i < 3; i++) {
		set_add(w->exp_prof, &w->pv[i], LAMA_ACCESS_OBJECT);
		set_add(w->exp_prof, &w->pnode[i], LAMA_ACCESS_OBJECT);
		set_add(w->exp_prof, &w->pn[i], LAMA_ACCESS_OBJECT);
	}
	set_add(w->exp_prof, &w->dave, LAMA_ACCESS_ID);
	set_add(w->exp_prof, &w->alice, LAMA_ACCESS_ID);

	/* never granted to anyone who keeps it */
	w->s = chat(a, "secret", &w->alice, NULL);
}

static void world_release(struct world *w)
{
	json_decref(w->exp_m1);
	json_decref(w->exp_l2);
	json_decref(w->exp_n1);
	json_decref(w->exp_prof);
}

static json_t *uni(json_t *x, json_t *y, json_t *z)
{
	json_t *s = json_object();

	if (x)
		set_union(s, x);
	if (y)
		set_union(s, y);
	if (z)
		set_union(s, z);
	return s;
}

static void expect(lama_archive *a, const char *who, const lama_hash *p, json_t *want_roots,
		   json_t *want)
{
	struct lama_access_stats st;
	char what[64];

	snprintf(what, sizeof(what), "roots of %s", who);
	set_equal(what, roots_of(a, p), want_roots);
	snprintf(what, sizeof(what), "closure of %s", who);
	set_equal(what, closure_of(a, p, &st), want);
	assert_int_equal(st.malformed, 0);
	assert_int_equal(st.missing, 0);
}

static json_t *roots(int n, ...)
{
	json_t *s = json_object();
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const lama_hash *h = va_arg(ap, const lama_hash *);
		int is_id = va_arg(ap, int);

		root_add(s, h, is_id);
	}
	va_end(ap);
	return s;
}

static int may(lama_archive *a, const lama_hash *p, const lama_hash *h)
{
	int yes = -1;

	if (lama_access_may_receive(a, p, h, &yes))
		fail_msg("may_receive: %s", lama_errmsg());
	return yes;
}

static void test_scenario(void **state)
{
	struct fx f;
	struct world w;
	lama_archive *a;
	lama_hash members[2], access_m1, bob_obj;
	struct lama_access_group grp;
	struct lama_access_grant gr;
	struct lama_put_info info;

	(void)state;
	fx_open(&f);
	a = f.a;
	build(&w, a);
	bob_obj = put(a, json_pack("{s:s, s:s}", "$type$", "Person", "email", "bob@example.org"),
		      NULL);

	members[0] = w.bob;
	members[1] = w.carol;
	assert_int_equal(lama_access_group_set(a, "g1", members, 2, &w.g1), 0);
	members[0] = w.carol;
	members[1] = w.dave;
	assert_int_equal(lama_access_group_set(a, "g2", members, 2, &w.g2), 0);
	assert_int_equal(lama_access_group_set(a, "g3", NULL, 0, &w.g3), 0);

	assert_int_equal(lama_access_grant(a, &w.m1, &w.bob, 1, NULL, 0, &access_m1), 0);
	assert_int_equal(lama_access_grant(a, &w.l2, NULL, 0, &w.g1, 1, NULL), 0);
	assert_int_equal(lama_access_grant(a, &w.n1, NULL, 0, &w.g2, 1, NULL), 0);
	assert_int_equal(lama_access_grant_id(a, &w.prof, &w.dave, 1, &w.g2, 1, NULL), 0);
	assert_int_equal(lama_access_grant(a, &w.s, &w.erin, 1, &w.g3, 1, NULL), 0);
	/* erin sees S until it is revoked */
	json_t *exp_s = json_object();
	set_add(exp_s, &w.s, LAMA_ACCESS_OBJECT);
	set_add(exp_s, &w.alice, LAMA_ACCESS_ID);
	expect(a, "erin", &w.erin, roots(1, &w.s, 0), exp_s);
	assert_int_equal(lama_access_revoke(a, &w.s, &w.erin, 1, NULL, 0), 0);
	/* dave leaves g2 but keeps his direct IdAccess */
	assert_int_equal(lama_access_group_remove(a, &w.g2, &w.dave), 0);

	/* the current versions say what was meant */
	assert_int_equal(lama_access_group_get(a, &w.g2, &grp), 0);
	assert_string_equal(grp.name, "g2");
	assert_int_equal(grp.npersons, 1);
	assert_true(lama_hash_eq(&grp.persons[0], &w.carol));
	lama_access_group_release(&grp);
	assert_int_equal(lama_access_grant_get(a, &w.s, 0, NULL, &gr), 0);
	assert_int_equal(gr.npersons, 0);
	assert_int_equal(gr.ngroups, 1);
	lama_access_grant_release(&gr);

	expect(a, "bob", &w.bob, roots(2, &w.m1, 0, &w.l2, 0), uni(w.exp_m1, w.exp_l2, NULL));
	expect(a, "carol", &w.carol, roots(3, &w.l2, 0, &w.n1, 0, &w.prof, 1),
	       uni(w.exp_l2, w.exp_n1, w.exp_prof));
	expect(a, "dave", &w.dave, roots(1, &w.prof, 1), uni(w.exp_prof, NULL, NULL));
	expect(a, "erin", &w.erin, roots(0), uni(NULL, NULL, NULL));
	expect(a, "alice", &w.alice, roots(0), uni(NULL, NULL, NULL));
	/* a group ID is not a person: granting to g1 gives g1 nothing */
	expect(a, "g1", &w.g1, roots(0), uni(NULL, NULL, NULL));

	/* single checks */
	assert_int_equal(may(a, &w.bob, &w.b1), 1);
	assert_int_equal(may(a, &w.bob, &w.m2), 1);
	assert_int_equal(may(a, &w.bob, &w.bob), 1);     /* his ID object: from M2's sender */
	assert_int_equal(may(a, &w.bob, &bob_obj), 0);   /* not his Person version */
	assert_int_equal(may(a, &w.bob, &w.s), 0);
	assert_int_equal(may(a, &w.bob, &w.c1), 0);
	assert_int_equal(may(a, &w.bob, &access_m1), 0); /* not the grant itself */
	assert_int_equal(may(a, &w.carol, &w.c1), 1);
	assert_int_equal(may(a, &w.carol, &w.pnode[1]), 1);
	assert_int_equal(may(a, &w.dave, &w.n1), 0);
	assert_int_equal(may(a, &w.erin, &w.s), 0);

	/* one root's closure, as sync sends it */
	struct lama_access_root r = { .hash = w.n1, .is_id = 0 };
	json_t *got = json_object();
	assert_int_equal(lama_access_root_closure(a, &r, collect_hash, got, NULL), 0);
	set_equal("closure of root N1", got, uni(w.exp_n1, NULL, NULL));
	r = (struct lama_access_root){ .hash = w.prof, .is_id = 1 };
	got = json_object();
	assert_int_equal(lama_access_root_closure(a, &r, collect_hash, got, NULL), 0);
	set_equal("closure of root prof", got, uni(w.exp_prof, NULL, NULL));

	/* a walk over bob's roots answers has() */
	lama_access_walk *wk;
	enum lama_access_kind kind;
	assert_int_equal(lama_access_walk_new(a, &wk), 0);
	r = (struct lama_access_root){ .hash = w.m1, .is_id = 0 };
	assert_int_equal(lama_access_walk_root(wk, &r, NULL, NULL), 0);
	r = (struct lama_access_root){ .hash = w.n1, .is_id = 0 };
	got = json_object();
	/* only what M1 did not bring is new */
	assert_int_equal(lama_access_walk_root(wk, &r, collect_hash, got), 0);
	json_t *want = json_object();
	set_add(want, &w.n1, LAMA_ACCESS_OBJECT);
	set_add(want, &w.c1, LAMA_ACCESS_CLOB);
	set_add(want, &w.b2, LAMA_ACCESS_BLOB);
	set_add(want, &w.bob, LAMA_ACCESS_ID);
	set_equal("walk after M1", got, want);
	assert_int_equal(lama_access_walk_count(wk), json_object_size(w.exp_n1));
	assert_int_equal(lama_access_walk_has(wk, &w.b1, &kind), 1);
	assert_int_equal(kind, LAMA_ACCESS_BLOB);
	assert_int_equal(lama_access_walk_has(wk, &w.c1, &kind), 1);
	assert_int_equal(kind, LAMA_ACCESS_CLOB);
	assert_int_equal(lama_access_walk_has(wk, &w.s, NULL), 0);
	lama_access_walk_free(wk);

	/* changes: dave back into g2, a fourth profile version, g2 loses N1 */
	assert_int_equal(lama_access_group_add(a, &w.g2, &w.dave), 0);
	expect(a, "dave again", &w.dave, roots(2, &w.n1, 0, &w.prof, 1),
	       uni(w.exp_n1, w.exp_prof, NULL));
	w.pn[3] = person_name(a, "name 3");
	w.pv[3] = profile_version(a, &w, &w.pn[3], 1, &info);
	w.pnode[3] = info.node;
	set_add(w.exp_prof, &w.pv[3], LAMA_ACCESS_OBJECT);
	set_add(w.exp_prof, &w.pnode[3], LAMA_ACCESS_OBJECT);
	set_add(w.exp_prof, &w.pn[3], LAMA_ACCESS_OBJECT);
	assert_int_equal(lama_access_revoke(a, &w.n1, NULL, 0, &w.g2, 1), 0);
	expect(a, "dave later", &w.dave, roots(1, &w.prof, 1), uni(w.exp_prof, NULL, NULL));
	expect(a, "carol later", &w.carol, roots(2, &w.l2, 0, &w.prof, 1),
	       uni(w.exp_l2, w.exp_prof, NULL));
	/* the IdAccess for dave revoked, g2's kept: dave still gets it via g2 */
	assert_int_equal(lama_access_revoke_id(a, &w.prof, &w.dave, 1, NULL, 0), 0);
	expect(a, "dave via g2", &w.dave, roots(1, &w.prof, 1), uni(w.exp_prof, NULL, NULL));
	assert_int_equal(lama_access_group_remove(a, &w.g2, &w.dave), 0);
	expect(a, "dave at last", &w.dave, roots(0), uni(NULL, NULL, NULL));

	/* a grant that changes nothing writes nothing */
	lama_hash v1, v2;
	assert_int_equal(lama_access_grant(a, &w.m1, &w.bob, 1, NULL, 0, &v1), 0);
	assert_true(lama_hash_eq(&v1, &access_m1));
	assert_int_equal(lama_access_grant(a, &w.m1, &w.bob, 1, &w.g1, 1, &v2), 0);
	assert_false(lama_hash_eq(&v2, &access_m1));
	/* revoking what was never granted is no error */
	assert_int_equal(lama_access_revoke(a, &w.m2, &w.bob, 1, NULL, 0), 0);
	assert_int_equal(lama_access_grant_get(a, &w.m2, 0, NULL, &gr), LAMA_ENOTFOUND);
	lama_access_grant_release(&gr);

	world_release(&w);
	fx_done(&f);
}

static int count_group(void *ctx, const lama_hash *g)
{
	json_t *set = ctx;

	json_object_set_new(set, hx(g), json_true());
	return 0;
}

/* Groups and the IoM group. */
static void test_groups(void **state)
{
	struct fx f;
	lama_hash p1, p2, p3, g1, g2, iom, iom2, iom_other, id;
	struct lama_access_group g;
	json_t *set, *want;

	(void)state;
	fx_open(&f);
	p1 = person(f.a, "p1@x");
	p2 = person(f.a, "p2@x");
	p3 = person(f.a, "p3@x");
	assert_int_equal(lama_access_group_set(f.a, "one", &p1, 1, &g1), 0);
	assert_int_equal(lama_access_group_id(f.a, "one", &id), 0);
	assert_true(lama_hash_eq(&id, &g1));
	lama_hash both[3] = { p2, p1, p2 }; /* repeats kept once */
	assert_int_equal(lama_access_group_set(f.a, "two", both, 3, &g2), 0);
	assert_int_equal(lama_access_group_get(f.a, &g2, &g), 0);
	assert_int_equal(g.npersons, 2);
	lama_access_group_release(&g);

	set = json_object();
	assert_int_equal(lama_access_groups_of(f.a, &p1, count_group, set, NULL), 0);
	want = json_object();
	json_object_set_new(want, hx(&g1), json_true());
	json_object_set_new(want, hx(&g2), json_true());
	set_equal("groups of p1", set, want);

	/* IoM: a group named by its owner */
	assert_int_equal(lama_access_iom_id(f.a, &p1, &iom), 0);
	assert_int_equal(lama_access_group_get(f.a, &iom, &g), LAMA_ENOTFOUND);
	lama_access_group_release(&g);
	assert_int_equal(lama_access_iom_ensure(f.a, &p1, &iom2), 0);
	assert_true(lama_hash_eq(&iom, &iom2));
	assert_int_equal(lama_access_group_get(f.a, &iom, &g), 0);
	assert_int_equal(strncmp(g.name, LAMA_ACCESS_IOM_PREFIX, strlen(LAMA_ACCESS_IOM_PREFIX)), 0);
	assert_string_equal(g.name + strlen(LAMA_ACCESS_IOM_PREFIX), hx(&p1));
	assert_int_equal(g.npersons, 1);
	lama_access_group_release(&g);
	assert_int_equal(lama_access_group_add(f.a, &iom, &p3), 0);
	/* ensure again keeps the members */
	assert_int_equal(lama_access_iom_ensure(f.a, &p1, NULL), 0);
	assert_int_equal(lama_access_group_get(f.a, &iom, &g), 0);
	assert_int_equal(g.npersons, 2);
	lama_access_group_release(&g);
	assert_int_equal(lama_access_iom_id(f.a, &p2, &iom_other), 0);
	assert_false(lama_hash_eq(&iom, &iom_other));

	set = json_object();
	assert_int_equal(lama_access_groups_of(f.a, &p3, count_group, set, NULL), 0);
	want = json_object();
	json_object_set_new(want, hx(&iom), json_true());
	set_equal("groups of p3", set, want);
	assert_int_equal(lama_access_group_remove(f.a, &iom, &p3), 0);
	set = json_object();
	assert_int_equal(lama_access_groups_of(f.a, &p3, count_group, set, NULL), 0);
	set_equal("groups of p3 after", set, json_object());

	/* errors */
	assert_int_equal(lama_access_group_set(f.a, "", NULL, 0, NULL), LAMA_EINVAL);
	char big[LAMA_ACCESS_GROUP_NAME_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(lama_access_group_set(f.a, big, NULL, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_access_group_id(f.a, NULL, &id), LAMA_EINVAL);
	/* a Person ID is not a group */
	assert_int_equal(lama_access_group_add(f.a, &p1, &p2), LAMA_EINVAL);
	assert_int_equal(lama_access_group_id(f.a, "nobody", &id), 0);
	assert_int_equal(lama_access_group_add(f.a, &id, &p2), LAMA_ENOTFOUND);
	fx_done(&f);
}

/* Concurrent versions of grants and groups from two devices merge and
 * keep both devices' changes. */
static void test_concurrent(void **state)
{
	struct fx f;
	lama_archive *a;
	lama_hash p1, p2, p3, obj, gid, *heads;
	struct lama_put_info base, v1, v2;
	struct lama_access_grant g;
	struct lama_access_group grp;
	size_t n;

	(void)state;
	fx_open(&f);
	a = f.a;
	p1 = person(a, "p1@x");
	p2 = person(a, "p2@x");
	p3 = person(a, "p3@x");
	obj = put(a, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", "shared"), NULL);

	/* two first versions (no common base): device 1 grants p1, device 2 p2 */
	json_t *x1 = json_pack("{s:s, s:s, s:[s], s:[]}", "$type$", "Access", "object", hx(&obj),
			       "person", hx(&p1), "group");
	json_t *x2 = json_pack("{s:s, s:s, s:[s], s:[]}", "$type$", "Access", "object", hx(&obj),
			       "person", hx(&p2), "group");
	assert_int_equal(lama_archive_put_version(a, x1, NULL, 1000, &v1), 0);
	assert_int_equal(lama_archive_put_version(a, x2, NULL, 1001, &v2), 0);
	json_decref(x1);
	json_decref(x2);
	assert_int_equal(lama_archive_heads(a, &v1.id_hash, &heads, &n), 0);
	lama_free(heads);
	assert_int_equal(n, 2);
	/* before any merge, each may receive it (current merges) */
	set_equal("p1 roots", roots_of(a, &p1), roots(1, &obj, 0));
	set_equal("p2 roots", roots_of(a, &p2), roots(1, &obj, 0));
	assert_int_equal(lama_archive_merge(a, &v1.id_hash, NULL), 0);
	assert_int_equal(lama_access_grant_get(a, &obj, 0, NULL, &g), 0);
	assert_int_equal(g.npersons, 2);
	lama_access_grant_release(&g);

	/* after a common base {p1, p2}: device 1 revokes p1, device 2 grants
	 * p3; the merge has p2 and p3 */
	lama_hash merged_node;
	assert_int_equal(lama_archive_merge(a, &v1.id_hash, &merged_node), 0);
	x1 = json_pack("{s:s, s:s, s:[s], s:[]}", "$type$", "Access", "object", hx(&obj), "person",
		       hx(&p2), "group");
	lama_hash p23[2] = { p2, p3 };
	if (memcmp(&p23[0], &p23[1], sizeof(lama_hash)) > 0) {
		p23[0] = p3;
		p23[1] = p2;
	}
	x2 = json_pack("{s:s, s:s, s:[s,s,s], s:[]}", "$type$", "Access", "object", hx(&obj),
		       "person", hx(&p1), hx(&p23[0]), hx(&p23[1]), "group");
	assert_int_equal(lama_archive_put_version(a, x1, &merged_node, 2000, &v1), 0);
	assert_int_equal(lama_archive_put_version(a, x2, &merged_node, 2001, &v2), 0);
	json_decref(x1);
	json_decref(x2);
	assert_int_equal(lama_archive_merge(a, &v1.id_hash, NULL), 0);
	set_equal("p1 roots after revoke", roots_of(a, &p1), roots(0));
	set_equal("p2 roots after", roots_of(a, &p2), roots(1, &obj, 0));
	set_equal("p3 roots after", roots_of(a, &p3), roots(1, &obj, 0));

	/* groups: base {p1}; device 1 adds p2, device 2 adds p3 */
	assert_int_equal(lama_access_group_set(a, "team", &p1, 1, &gid), 0);
	assert_int_equal(lama_archive_heads(a, &gid, &heads, &n), 0);
	assert_int_equal(n, 1);
	base.node = heads[0];
	lama_free(heads);
	lama_hash s12[2] = { p1, p2 }, s13[2] = { p1, p3 };
	json_t *ga = json_pack("{s:s, s:s, s:[s,s]}", "$type$", "Group", "name", "team", "person",
			       hx(memcmp(&s12[0], &s12[1], 32) < 0 ? &s12[0] : &s12[1]),
			       hx(memcmp(&s12[0], &s12[1], 32) < 0 ? &s12[1] : &s12[0]));
	json_t *gb = json_pack("{s:s, s:s, s:[s,s]}", "$type$", "Group", "name", "team", "person",
			       hx(memcmp(&s13[0], &s13[1], 32) < 0 ? &s13[0] : &s13[1]),
			       hx(memcmp(&s13[0], &s13[1], 32) < 0 ? &s13[1] : &s13[0]));
	assert_int_equal(lama_archive_put_version(a, ga, &base.node, 3000, NULL), 0);
	assert_int_equal(lama_archive_put_version(a, gb, &base.node, 3001, NULL), 0);
	json_decref(ga);
	json_decref(gb);
	assert_int_equal(lama_archive_merge(a, &gid, NULL), 0);
	assert_int_equal(lama_access_group_get(a, &gid, &grp), 0);
	assert_int_equal(grp.npersons, 3);
	lama_access_group_release(&grp);

	/* an IdAccess on an ID with concurrent versions: every head's node
	 * and object, then the merge node and the merged object */
	struct lama_put_info d0, da, db;
	lama_hash mnode, mobj;
	json_t *want = json_object();
	put(a, json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", "doc@x", "name", "a"), &d0);
	json_t *da_o = json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", "doc@x", "name", "b");
	json_t *db_o = json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", "doc@x", "name", "c");
	assert_int_equal(lama_archive_put_version(a, da_o, &d0.node, 4000, &da), 0);
	assert_int_equal(lama_archive_put_version(a, db_o, &d0.node, 4001, &db), 0);
	json_decref(da_o);
	json_decref(db_o);
	assert_int_equal(lama_access_grant_id(a, &d0.id_hash, &p1, 1, NULL, 0, NULL), 0);
	set_add(want, &d0.id_hash, LAMA_ACCESS_ID);
	set_add(want, &d0.node, LAMA_ACCESS_OBJECT);
	set_add(want, &d0.hash, LAMA_ACCESS_OBJECT);
	set_add(want, &da.node, LAMA_ACCESS_OBJECT);
	set_add(want, &da.hash, LAMA_ACCESS_OBJECT);
	set_add(want, &db.node, LAMA_ACCESS_OBJECT);
	set_add(want, &db.hash, LAMA_ACCESS_OBJECT);
	set_equal("p1 before the merge", closure_of(a, &p1, NULL), json_deep_copy(want));
	assert_int_equal(lama_archive_merge(a, &d0.id_hash, &mnode), 0);
	assert_int_equal(lama_archive_current(a, &d0.id_hash, &mobj), 0);
	set_add(want, &mnode, LAMA_ACCESS_OBJECT);
	set_add(want, &mobj, LAMA_ACCESS_OBJECT);
	set_equal("p1 after the merge", closure_of(a, &p1, NULL), want);
	fx_done(&f);
}

static void parse_fails(const char *text, int code, const char *needle)
{
	json_error_t err;
	json_t *o = json_loads(text, LAMA_JSON_FLAGS, &err);
	struct lama_access_grant g;
	struct lama_access_group grp;
	int rc;

	if (!o)
		fail_msg("%s: %s", text, err.text);
	if (strstr(text, "\"Group\""))
		rc = lama_access_group_parse(o, &grp), lama_access_group_release(&grp);
	else
		rc = lama_access_grant_parse(o, &g), lama_access_grant_release(&g);
	if (rc != code || !strstr(lama_errmsg(), needle))
		fail_msg("%s: rc %d, message '%s'", text, rc, lama_errmsg());
	json_decref(o);
}

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"

/* Bags of n distinct made-up hashes. */
static json_t *many(size_t n, unsigned salt)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++) {
		lama_hash h;
		unsigned v[2] = { (unsigned)i, salt };

		lama_sha256(v, sizeof(v), &h);
		json_array_append_new(arr, json_string(hx(&h)));
	}
	return arr;
}

/* Whatever a peer sends is validated with a clear message. */
static void test_parse(void **state)
{
	struct lama_access_grant g;
	json_t *o;

	(void)state;
	parse_fails("[]", LAMA_EINVAL, "JSON object");
	parse_fails("{\"$type$\": \"Person\"}", LAMA_EINVAL, "Access or IdAccess");
	parse_fails("{\"$type$\": \"Access\", \"person\": [], \"group\": []}", LAMA_EINVAL,
		    "Access.object");
	parse_fails("{\"$type$\": \"Access\", \"object\": \"" H1 "\", \"id\": \"" H1
		    "\", \"person\": [], \"group\": []}", LAMA_EINVAL, "unknown field 'id'");
	parse_fails("{\"$type$\": \"IdAccess\", \"id\": \"" H1 "A\", \"person\": [], \"group\": []}",
		    LAMA_EINVAL, "IdAccess.id");
	parse_fails("{\"$type$\": \"Access\", \"object\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAA\", \"person\": [], \"group\": []}", LAMA_EINVAL,
		    "lower-case hex");
	parse_fails("{\"$type$\": \"Access\", \"object\": 5, \"person\": [], \"group\": []}",
		    LAMA_EINVAL, "Access.object");
	parse_fails("{\"$type$\": \"Access\", \"object\": \"" H1 "\", \"group\": []}", LAMA_EINVAL,
		    "Access.person");
	parse_fails("{\"$type$\": \"Access\", \"object\": \"" H1 "\", \"person\": \"" H2
		    "\", \"group\": []}", LAMA_EINVAL, "Access.person: must be a bag");
	parse_fails("{\"$type$\": \"Access\", \"object\": \"" H1 "\", \"person\": [], \"group\": [1]}",
		    LAMA_EINVAL, "Access.group");
	parse_fails("{\"$type$\": \"Group\", \"name\": \"\", \"person\": []}", LAMA_EINVAL,
		    "group name");
	parse_fails("{\"$type$\": \"Group\", \"name\": \"a\\u0000b\", \"person\": []}", LAMA_EINVAL,
		    "group name");
	parse_fails("{\"$type$\": \"Group\", \"name\": 3, \"person\": []}", LAMA_EINVAL,
		    "Group.name");
	parse_fails("{\"$type$\": \"Group\", \"name\": \"x\", \"person\": [\"" H1 "\"], \"owner\": 1}",
		    LAMA_EINVAL, "unknown field");
	parse_fails("{\"$type$\": \"Group\", \"name\": \"x\"}", LAMA_EINVAL, "Group.person");

	/* too many names, in one bag or the two together */
	o = json_pack("{s:s, s:s, s:o, s:[]}", "$type$", "Access", "object", H1, "person",
		      many(LAMA_ACCESS_MAX_NAMES + 1, 1), "group");
	assert_int_equal(lama_access_grant_parse(o, &g), LAMA_ELIMIT);
	lama_access_grant_release(&g);
	json_decref(o);
	o = json_pack("{s:s, s:s, s:o, s:o}", "$type$", "IdAccess", "id", H1, "person",
		      many(LAMA_ACCESS_MAX_NAMES / 2 + 1, 1), "group",
		      many(LAMA_ACCESS_MAX_NAMES / 2, 2));
	assert_int_equal(lama_access_grant_parse(o, &g), LAMA_ELIMIT);
	lama_access_grant_release(&g);
	json_decref(o);

	/* repeats are kept once, in order */
	o = json_pack("{s:s, s:s, s:[s,s,s], s:[]}", "$type$", "Access", "object", H1, "person",
		      H2, H1, H2, "group");
	assert_int_equal(lama_access_grant_parse(o, &g), 0);
	assert_int_equal(g.is_id, 0);
	assert_int_equal(g.npersons, 2);
	assert_string_equal(hx(&g.persons[0]), H1);
	assert_string_equal(hx(&g.persons[1]), H2);
	assert_string_equal(hx(&g.target), H1);
	lama_access_grant_release(&g);
	json_decref(o);
	assert_int_equal(lama_access_is_rule_type("Access"), 1);
	assert_int_equal(lama_access_is_rule_type("IdAccess"), 1);
	assert_int_equal(lama_access_is_rule_type("Group"), 1);
	assert_int_equal(lama_access_is_rule_type("Person"), 0);
	assert_int_equal(lama_access_is_rule_type(NULL), 0);
}

static int stop_at_second(void *ctx, const lama_hash *h, enum lama_access_kind kind)
{
	int *n = ctx;

	(void)h;
	(void)kind;
	return ++*n == 2 ? 7 : 0;
}

/* Grants and objects that came from a hostile peer into the archive:
 * references to what is not stored or not of the kind they say, and
 * oversized grants, grant nothing and do not stop the query. */
static void test_hostile(void **state)
{
	struct fx f;
	lama_archive *a;
	lama_hash p, q, x, b, c, n1, n2, ghost;
	struct lama_access_stats st;
	struct lama_put_info info;
	json_t *want;

	(void)state;
	fx_open(&f);
	a = f.a;
	p = person(a, "p@x");
	q = person(a, "q@x");
	x = put(a, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", "x"), NULL);
	b = blob(a, "bytes");
	c = clob(a, "text");
	lama_sha256("nothing", 7, &ghost);

	/* an Access of a hash nobody stored: the root is named, nothing sent */
	put(a, json_pack("{s:s, s:s, s:[s], s:[]}", "$type$", "Access", "object", hx(&ghost),
			 "person", hx(&p), "group"), NULL);
	set_equal("roots of p", roots_of(a, &p), roots(1, &ghost, 0));
	set_equal("closure of p", closure_of(a, &p, &st), json_object());
	assert_int_equal(st.missing, 1);
	assert_int_equal(may(a, &p, &ghost), 0);

	/* an IdAccess of a plain object's hash: not an ID, nothing sent */
	put(a, json_pack("{s:s, s:s, s:[s], s:[]}", "$type$", "IdAccess", "id", hx(&x), "person",
			 hx(&q), "group"), NULL);
	set_equal("closure of q", closure_of(a, &q, &st), json_object());
	assert_int_equal(st.missing, 1);

	/* a note whose references lie about their kind: who names an object,
	 * file names a CLOB, text names a BLOB, ref names a BLOB and an ID */
	n1 = put(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s,s]}", "$type$", "AccessTestNote",
			      "title", "liar", "who", hx(&x), "file", hx(&c), "text", hx(&b), "ref",
			      hx(&b), hx(&p)), NULL);
	/* and one that names x rightly: x comes with it, once */
	n2 = put(a, json_pack("{s:s, s:s, s:[s]}", "$type$", "AccessTestNote", "title", "honest",
			      "ref", hx(&x)), NULL);
	lama_hash r = person(a, "r@x");
	assert_int_equal(lama_access_grant(a, &n1, &r, 1, NULL, 0, NULL), 0);
	want = json_object();
	set_add(want, &n1, LAMA_ACCESS_OBJECT);
	set_equal("closure of the liar", closure_of(a, &r, &st), want);
	assert_int_equal(st.missing, 5);
	assert_int_equal(lama_access_grant(a, &n2, &r, 1, NULL, 0, NULL), 0);
	want = json_object();
	set_add(want, &n1, LAMA_ACCESS_OBJECT);
	set_add(want, &n2, LAMA_ACCESS_OBJECT);
	set_add(want, &x, LAMA_ACCESS_OBJECT);
	set_equal("closure with the honest note", closure_of(a, &r, NULL), want);

	/* an oversized grant (the recipe allows it, lama does not): fail
	 * closed for it alone */
	lama_hash s = person(a, "s@x");
	json_t *big = many(LAMA_ACCESS_MAX_NAMES, 3);
	json_array_append_new(big, json_string(hx(&s)));
	put(a, json_pack("{s:s, s:s, s:o, s:[]}", "$type$", "Access", "object", hx(&x), "person",
			 big, "group"), &info);
	assert_int_equal(lama_access_grant(a, &c, &s, 1, NULL, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_access_grant(a, &n2, &s, 1, NULL, 0, NULL), 0);
	set_equal("roots of s", roots_of(a, &s), roots(1, &n2, 0));
	json_decref(closure_of(a, &s, &st));
	assert_int_equal(st.malformed, 1);
	/* the same grant's next, valid version decides: the old one is
	 * skipped as a candidate and the current one counts */
	/* it can be revoked: the new version is empty */
	assert_int_equal(lama_access_revoke(a, &x, &p, 1, NULL, 0), 0);
	struct lama_access_grant cur;
	assert_int_equal(lama_access_grant_get(a, &x, 0, NULL, &cur), 0);
	assert_int_equal(cur.npersons + cur.ngroups, 0);
	lama_access_grant_release(&cur);
	put(a, json_pack("{s:s, s:s, s:[s], s:[]}", "$type$", "Access", "object", hx(&x), "person",
			 hx(&s), "group"), NULL);
	set_equal("roots of s after", roots_of(a, &s), roots(2, &n2, 0, &x, 0));

	/* a group version from a peer that is not a Group cannot be stored
	 * as one; a Group that names s with too many members grants nothing */
	big = many(LAMA_ACCESS_MAX_NAMES, 4);
	json_array_append_new(big, json_string(hx(&p)));
	put(a, json_pack("{s:s, s:s, s:o}", "$type$", "Group", "name", "huge", "person", big),
	    &info);
	assert_int_equal(lama_access_grant(a, &n1, NULL, 0, &info.id_hash, 1, NULL), 0);
	set_equal("p not in the huge group", roots_of(a, &p), roots(1, &ghost, 0));

	/* API errors */
	assert_int_equal(lama_access_grant(a, &ghost, &p, 1, NULL, 0, NULL), LAMA_ENOTFOUND);
	assert_int_equal(lama_access_grant(a, &c, &p, 1, NULL, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_access_grant_id(a, &x, &p, 1, NULL, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_access_grant_id(a, &p, &q, 1, NULL, 0, NULL), 0);
	assert_int_equal(lama_access_grant(a, &x, NULL, 1, NULL, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_access_grant(a, &x, &p, LAMA_ACCESS_MAX_NAMES + 1, NULL, 0, NULL),
			 LAMA_ELIMIT);

	/* a walk stopped by its callback passes the value back and is done */
	lama_access_walk *w;
	struct lama_access_root root = { .hash = n2, .is_id = 0 };
	int count = 0;
	assert_int_equal(lama_access_walk_new(a, &w), 0);
	assert_int_equal(lama_access_walk_root(w, &root, stop_at_second, &count), 7);
	assert_int_equal(lama_access_walk_root(w, &root, stop_at_second, &count), LAMA_EINVAL);
	lama_access_walk_free(w);
	fx_done(&f);
}

/* A peer's object that names one hash many times as the wrong kind (a
 * CLOB, a BLOB and a hash nobody stored, each 2000 times as an object):
 * the walk reads each once, reports none, and a later reference of the
 * right kind still brings the CLOB (review finding 4). */
static void test_wrong_kind_once(void **state)
{
	enum { COPIES = 2000 };
	struct fx f;
	lama_archive *a;
	lama_hash r, c, b, ghost, n1, n2;
	struct lama_access_stats st;
	lama_access_walk *w;
	json_t *refs, *want;
	char *text;
	enum lama_access_kind kind;

	(void)state;
	fx_open(&f);
	a = f.a;
	r = person(a, "r@x");
	/* a large CLOB: every needless read decrypts and hashes it */
	text = malloc(200000);
	assert_non_null(text);
	memset(text, 'z', 199999);
	text[199999] = '\0';
	c = clob(a, text);
	free(text);
	b = blob(a, "bytes");
	lama_sha256("nothing", 7, &ghost);
	refs = json_array();
	for (int i = 0; i < COPIES; i++) {
		json_array_append_new(refs, json_string(hx(&c)));
		json_array_append_new(refs, json_string(hx(&b)));
		json_array_append_new(refs, json_string(hx(&ghost)));
	}
	n1 = put(a, json_pack("{s:s, s:s, s:o}", "$type$", "AccessTestNote", "title", "flood",
			      "ref", refs), NULL);
	assert_int_equal(lama_access_grant(a, &n1, &r, 1, NULL, 0, NULL), 0);
	want = json_object();
	set_add(want, &n1, LAMA_ACCESS_OBJECT);
	set_equal("closure of the flood", closure_of(a, &r, &st), want);
	assert_int_equal(st.missing, 3 * COPIES);
	/* the note, and each of the three once */
	assert_int_equal(st.lookups, 4);

	/* the CLOB named rightly after the flood: reported once, as a CLOB */
	struct lama_access_root root1 = { .hash = n1, .is_id = 0 };
	n2 = put(a, json_pack("{s:s, s:s, s:s}", "$type$", "AccessTestNote", "title", "right",
			      "text", hx(&c)), NULL);
	struct lama_access_root root2 = { .hash = n2, .is_id = 0 };
	json_t *got = json_object();
	assert_int_equal(lama_access_walk_new(a, &w), 0);
	assert_int_equal(lama_access_walk_root(w, &root1, collect_hash, got), 0);
	assert_int_equal(lama_access_walk_has(w, &c, NULL), 0);
	assert_int_equal(lama_access_walk_has(w, &ghost, NULL), 0);
	assert_int_equal(lama_access_walk_count(w), 1);
	assert_int_equal(lama_access_walk_root(w, &root2, collect_hash, got), 0);
	assert_int_equal(lama_access_walk_has(w, &c, &kind), 1);
	assert_int_equal(kind, LAMA_ACCESS_CLOB);
	lama_access_walk_stats(w, &st);
	assert_int_equal(st.lookups, 4 + 2); /* n2, and the CLOB again, rightly */
	/* the flood again: nothing new is read or reported */
	assert_int_equal(lama_access_walk_root(w, &root1, collect_hash, got), 0);
	lama_access_walk_stats(w, &st);
	assert_int_equal(st.lookups, 6);
	assert_int_equal(lama_access_walk_count(w), 3);
	lama_access_walk_free(w);
	want = json_object();
	set_add(want, &n1, LAMA_ACCESS_OBJECT);
	set_add(want, &n2, LAMA_ACCESS_OBJECT);
	set_add(want, &c, LAMA_ACCESS_CLOB);
	set_equal("walk over both", got, want);

	/* one note naming the CLOB both ways: it comes once, as a CLOB, and
	 * is read at most twice whatever order the walk takes */
	refs = json_array();
	for (int i = 0; i < COPIES; i++)
		json_array_append_new(refs, json_string(hx(&c)));
	lama_hash n3 = put(a, json_pack("{s:s, s:s, s:s, s:o}", "$type$", "AccessTestNote", "title",
					"both", "text", hx(&c), "ref", refs), NULL);
	struct lama_access_root root3 = { .hash = n3, .is_id = 0 };
	want = json_object();
	set_add(want, &n3, LAMA_ACCESS_OBJECT);
	set_add(want, &c, LAMA_ACCESS_CLOB);
	got = json_object();
	assert_int_equal(lama_access_root_closure(a, &root3, collect_hash, got, &st), 0);
	set_equal("closure of both", got, want);
	assert_true(st.lookups <= 3);
	assert_int_equal(st.missing, COPIES);
	fx_done(&f);
}

/* Allocation failure at every step of a grant and of a closure: each
 * either succeeds or fails with LAMA_ENOMEM, and a failed grant changes
 * nothing (LSan catches leaks). */
static void test_oom(void **state)
{
	struct fx f;
	struct world w;
	lama_archive *a;
	lama_hash members[2];
	int rc = LAMA_ENOMEM;

	(void)state;
	fx_open(&f);
	a = f.a;
	build(&w, a);
	members[0] = w.carol;
	members[1] = w.dave;
	assert_int_equal(lama_access_group_set(a, "g2", members, 2, &w.g2), 0);
	assert_int_equal(lama_access_grant(a, &w.n1, NULL, 0, &w.g2, 1, NULL), 0);
	for (unsigned long n = 1; rc; n++) {
		assert_true(n < 100000);
		lama_mem_fail_after(n, 1);
		rc = lama_access_grant_id(a, &w.prof, &w.carol, 1, NULL, 0, NULL);
		lama_mem_fail_after(0, 0);
		if (rc) {
			assert_int_equal(rc, LAMA_ENOMEM);
			set_equal("roots of carol while failing", roots_of(a, &w.carol),
				  roots(1, &w.n1, 0));
		}
	}
	rc = LAMA_ENOMEM;
	for (unsigned long n = 1; rc; n++) {
		json_t *got = json_object();

		assert_true(n < 100000);
		lama_mem_fail_after(n, 1);
		rc = lama_access_closure(a, &w.carol, collect_hash, got, NULL);
		lama_mem_fail_after(0, 0);
		if (rc) {
			assert_int_equal(rc, LAMA_ENOMEM);
			json_decref(got);
		} else {
			set_equal("closure of carol", got, uni(w.exp_n1, w.exp_prof, NULL));
		}
	}
	world_release(&w);
	fx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenario),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_wrong_kind_once),
		cmocka_unit_test(test_oom),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
