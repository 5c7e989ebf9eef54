/* test_archive.c: objects, versions, concurrent heads and their merge,
 * reverse maps and error cases of the archive layer (src/archive). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "testutil.h"
#include "archive_test.h"
#include "archive_model.h"

static json_t *get_obj(lama_archive *a, const lama_hash *h)
{
	json_t *o = NULL;

	if (lama_archive_get(a, h, &o))
		fail_msg("get: %s", lama_errmsg());
	return o;
}

static void node_hash_field(const json_t *node, const char *f, lama_hash *h)
{
	json_t *v = json_object_get(node, f);

	assert_non_null(v);
	assert_int_equal(lama_hash_parse(json_string_value(v), json_string_length(v), h), 0);
}

/* ---- objects without versions ---- */

static void test_unversioned(void **state)
{
	struct afx f;
	struct lama_put_info info, info2;
	lama_hash h, *heads = (lama_hash *)&f;
	json_t *o, *back;
	size_t n = 99;

	(void)state;
	afx_open(&f);
	o = jload("{\"$type$\":\"TestUnversioned\",\"text\":\"hello <world> & \\u00e9\",\"count\":3}");
	hash_obj(f.r, o, &h, NULL);
	memset(&info, 0xaa, sizeof(info));
	assert_int_equal(lama_archive_put(f.a[0], o, 0, &info), 0);
	assert_true(lama_hash_eq(&info.hash, &h));
	assert_int_equal(info.is_new, 1);
	assert_int_equal(info.versioned, 0);
	back = get_obj(f.a[0], &h);
	assert_true(json_equal(back, o));
	json_decref(back);

	/* again: the same hash, not new */
	assert_int_equal(lama_archive_put(f.a[0], o, 0, &info2), 0);
	assert_true(lama_hash_eq(&info2.hash, &h));
	assert_int_equal(info2.is_new, 0);
	assert_int_equal(lama_archive_put(f.a[0], o, 0, NULL), 0);

	/* an object has no heads, no versions, cannot be merged */
	assert_int_equal(lama_archive_heads(f.a[0], &h, &heads, &n), 0);
	assert_int_equal(n, 0);
	lama_free(heads);
	assert_int_equal(lama_archive_merge(f.a[0], &h, NULL), LAMA_ENOTFOUND);
	assert_int_equal(lama_archive_put_version(f.a[0], o, NULL, 5, NULL), LAMA_EINVAL);

	/* accessors */
	assert_ptr_equal(lama_archive_store(f.a[0]), f.st[0]);
	assert_ptr_equal(lama_archive_recipes(f.a[0]), f.r);
	assert_true(lama_archive_now() > 1.6e12);
	store_ok(f.st[0], NULL);
	json_decref(o);
	afx_done(&f);
}

/* ---- a line of versions ---- */

static void test_versioned(void **state)
{
	struct afx f;
	struct lama_put_info i1, i2, i3, i4;
	struct lama_store_check c1, c2;
	lama_hash h1, id, h2, cur, *heads, prev;
	json_t *v1, *v2, *node;
	size_t n;

	(void)state;
	afx_open(&f);
	v1 = tat_new("doc");
	json_object_set_new(v1, "str", json_string("one"));
	hash_obj(f.r, v1, &h1, &id);
	assert_int_equal(lama_archive_current(f.a[0], &id, &cur), LAMA_ENOTFOUND);

	assert_int_equal(lama_archive_put(f.a[0], v1, 1000, &i1), 0);
	assert_int_equal(i1.versioned, 1);
	assert_int_equal(i1.is_new, 1);
	assert_true(lama_hash_eq(&i1.hash, &h1));
	assert_true(lama_hash_eq(&i1.id_hash, &id));
	assert_int_equal(lama_archive_heads(f.a[0], &id, &heads, &n), 0);
	assert_int_equal(n, 1);
	assert_true(lama_hash_eq(&heads[0], &i1.node));
	lama_free(heads);
	node = get_obj(f.a[0], &i1.node);
	assert_string_equal(type_of(node), "VersionNodeEdge");
	node_hash_field(node, "data", &cur);
	assert_true(lama_hash_eq(&cur, &h1));
	assert_true(json_number_value(json_object_get(node, "depth")) == 0);
	assert_true(json_number_value(json_object_get(node, "creationTime")) == 1000);
	json_decref(node);
	/* the ID object is stored and reads back as the ID fields */
	node = get_obj(f.a[0], &id);
	assert_string_equal(json_string_value(json_object_get(node, "id")), "doc");
	assert_null(json_object_get(node, "str"));
	json_decref(node);

	/* the second version follows the first */
	v2 = json_deep_copy(v1);
	json_object_set_new(v2, "str", json_string("two"));
	json_object_set_new(v2, "set", jload("{\"$set\":[\"a\",\"b\"]}"));
	hash_obj(f.r, v2, &h2, NULL);
	assert_int_equal(lama_archive_put(f.a[0], v2, 2000, &i2), 0);
	assert_true(lama_hash_eq(&i2.hash, &h2));
	assert_true(lama_hash_eq(&i2.id_hash, &id));
	assert_false(lama_hash_eq(&i2.node, &i1.node));
	assert_int_equal(lama_archive_heads(f.a[0], &id, &heads, &n), 0);
	assert_int_equal(n, 1);
	assert_true(lama_hash_eq(&heads[0], &i2.node));
	lama_free(heads);
	node = get_obj(f.a[0], &i2.node);
	assert_string_equal(type_of(node), "VersionNodeChange");
	node_hash_field(node, "prev", &prev);
	assert_true(lama_hash_eq(&prev, &i1.node));
	node_hash_field(node, "data", &cur);
	assert_true(lama_hash_eq(&cur, &h2));
	assert_true(json_number_value(json_object_get(node, "depth")) == 1);
	assert_true(json_number_value(json_object_get(node, "creationTime")) == 2000);
	json_decref(node);
	assert_int_equal(lama_archive_current(f.a[0], &id, &cur), 0);
	assert_true(lama_hash_eq(&cur, &h2));

	/* the current version again: nothing changes, not even the time */
	store_ok(f.st[0], &c1);
	assert_int_equal(lama_archive_put(f.a[0], v2, 3000, &i3), 0);
	assert_int_equal(i3.is_new, 0);
	assert_int_equal(i3.versioned, 1);
	assert_true(lama_hash_eq(&i3.hash, &h2));
	assert_true(lama_hash_eq(&i3.id_hash, &id));
	assert_true(lama_hash_eq(&i3.node, &i2.node));
	store_ok(f.st[0], &c2);
	assert_int_equal(c1.objects, c2.objects);
	assert_int_equal(c1.refs, c2.refs);
	assert_int_equal(c1.heads, c2.heads);
	assert_int_equal(nheads(f.a[0], &id), 1);

	/* the same version again through put_version (same prev, same time):
	 * the node exists, nothing changes */
	assert_int_equal(lama_archive_put_version(f.a[0], v2, &i1.node, 2000, &i3), 0);
	assert_true(lama_hash_eq(&i3.node, &i2.node));
	store_ok(f.st[0], &c2);
	assert_int_equal(c1.objects, c2.objects);
	assert_int_equal(c1.refs, c2.refs);
	assert_int_equal(nheads(f.a[0], &id), 1);

	/* back to the first content: a new change, the old object */
	assert_int_equal(lama_archive_put(f.a[0], v1, 4000, &i4), 0);
	assert_int_equal(i4.is_new, 0);
	assert_true(lama_hash_eq(&i4.hash, &h1));
	assert_int_equal(lama_archive_current(f.a[0], &id, &cur), 0);
	assert_true(lama_hash_eq(&cur, &h1));
	node = get_obj(f.a[0], &i4.node);
	assert_string_equal(type_of(node), "VersionNodeChange");
	node_hash_field(node, "prev", &prev);
	assert_true(lama_hash_eq(&prev, &i2.node));
	assert_true(json_number_value(json_object_get(node, "depth")) == 2);
	json_decref(node);
	assert_int_equal(archive_consistent(f.a[0], &id), 1);

	/* creation time 0 is now */
	json_object_set_new(v1, "int", json_real(7));
	assert_int_equal(lama_archive_put(f.a[0], v1, 0, &i4), 0);
	node = get_obj(f.a[0], &i4.node);
	assert_true(fabs(json_number_value(json_object_get(node, "creationTime")) - lama_archive_now()) < 60000);
	json_decref(node);
	store_ok(f.st[0], NULL);

	json_decref(v1);
	json_decref(v2);
	afx_done(&f);
}

/* ---- concurrent versions and their merge ---- */

/* k versions after one base, with ties in creation time; returns the
 * merged object's expected hash through the model. */
static void concurrent_k(struct afx *f, int ai, int k)
{
	static const double times[] = { 2000, 2000, 3000, 2000, 3000 };
	lama_archive *a = f->a[ai];
	struct lama_put_info base, vi[5];
	struct branch br[5];
	lama_hash id, node, cur, want, h, *heads;
	json_t *b, *v[5], *mn, *nodes, *expect;
	char idtext[32];
	size_t n;

	snprintf(idtext, sizeof(idtext), "conc-%d", k);
	b = tat_new(idtext);
	json_object_set_new(b, "str", json_string("base"));
	json_object_set_new(b, "int", json_real(1));
	json_object_set_new(b, "set", jload("{\"$set\":[\"x\",\"y\",\"z\"]}"));
	assert_int_equal(lama_archive_put(a, b, 1000, &base), 0);
	id = base.id_hash;
	for (int i = 0; i < k; i++) {
		char s[16];

		v[i] = json_deep_copy(b);
		snprintf(s, sizeof(s), "v%d", i);
		switch (i) {
		case 0: /* str, and removes x */
			json_object_set_new(v[i], "str", json_string(s));
			json_object_set_new(v[i], "set", jload("{\"$set\":[\"y\",\"z\"]}"));
			break;
		case 1: /* str at the same time (tie: larger text wins), adds w */
			json_object_set_new(v[i], "str", json_string("v1"));
			json_object_set_new(v[i], "set", jload("{\"$set\":[\"w\",\"x\",\"y\",\"z\"]}"));
			break;
		case 2: /* int, later */
			json_object_set_new(v[i], "int", json_real(30));
			break;
		case 3: /* removes str (a tie with v0 and v1), adds w too, removes y */
			json_object_del(v[i], "str");
			json_object_set_new(v[i], "set", jload("{\"$set\":[\"w\",\"x\",\"z\"]}"));
			break;
		default: /* int at the same later time: "4" > "30" as text */
			json_object_set_new(v[i], "int", json_real(4));
			json_object_set_new(v[i], "bool", json_true());
			break;
		}
		assert_int_equal(lama_archive_put_version(a, v[i], &base.node, times[i], &vi[i]), 0);
		assert_true(lama_hash_eq(&vi[i].id_hash, &id));
		br[i].n = 1;
		br[i].obj[0] = v[i];
		br[i].time[0] = times[i];
		assert_int_equal(nheads(a, &id), (size_t)i + 1);
	}
	assert_int_equal(archive_consistent(a, &id), (size_t)k);
	assert_int_equal(lama_archive_heads(a, &id, &heads, &n), 0);
	assert_int_equal(n, (size_t)k);

	expect = model_merge(b, 1000, br, k);
	hash_obj(f->r, expect, &want, NULL);
	assert_int_equal(lama_archive_merge(a, &id, &node), 0);
	assert_int_equal(archive_consistent(a, &id), 1);
	mn = get_obj(a, &node);
	assert_string_equal(type_of(mn), "VersionNodeMerge");
	nodes = json_object_get(json_object_get(mn, "nodes"), "$set");
	assert_int_equal(json_array_size(nodes), (size_t)k);
	for (int i = 0; i < k; i++) {
		int found = 0;
		size_t j;
		json_t *e;

		json_array_foreach(nodes, j, e) {
			assert_int_equal(lama_hash_parse(json_string_value(e), 64, &h), 0);
			found += lama_hash_eq(&h, &vi[i].node);
		}
		assert_int_equal(found, 1);
	}
	assert_true(json_number_value(json_object_get(mn, "depth")) == 2);
	assert_true(json_number_value(json_object_get(mn, "creationTime")) == (k > 2 ? 3000 : 2000));
	node_hash_field(mn, "data", &h);
	assert_int_equal(lama_archive_current(a, &id, &cur), 0);
	assert_true(lama_hash_eq(&cur, &h));
	if (!lama_hash_eq(&cur, &want)) {
		json_t *got = get_obj(a, &cur);
		char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(expect, JSON_SORT_KEYS);

		fail_msg("k=%d merged\n got  %s\n want %s", k, g, w);
	}
	/* a second merge is a no-op */
	assert_int_equal(lama_archive_merge(a, &id, &h), 0);
	assert_true(lama_hash_eq(&h, &node));

	json_decref(mn);
	json_decref(expect);
	lama_free(heads);
	for (int i = 0; i < k; i++)
		json_decref(v[i]);
	json_decref(b);
}

static void test_concurrent(void **state)
{
	struct afx f;

	(void)state;
	afx_open(&f);
	for (int k = 2; k <= 5; k++)
		concurrent_k(&f, 0, k);
	store_ok(f.st[0], NULL);
	afx_done(&f);
}

/* Semantics by hand, so the model itself is checked once. */
static void test_merge_by_hand(void **state)
{
	struct afx f;
	struct lama_put_info b, x, y;
	lama_hash id, cur;
	json_t *o, *got;

	(void)state;
	afx_open(&f);
	o = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"h\",\"version\":1,\"str\":\"s\",\"int\":1,"
		  "\"set\":{\"$set\":[\"a\",\"b\"]}}");
	assert_int_equal(lama_archive_put(f.a[0], o, 10, &b), 0);
	id = b.id_hash;
	json_object_set_new(o, "str", json_string("x"));
	json_object_set_new(o, "set", jload("{\"$set\":[\"a\",\"c\"]}"));
	assert_int_equal(lama_archive_put_version(f.a[0], o, &b.node, 30, &x), 0);
	json_object_set_new(o, "str", json_string("s"));
	json_object_set_new(o, "int", json_real(2));
	json_object_set_new(o, "set", jload("{\"$set\":[\"a\",\"b\",\"d\"]}"));
	assert_int_equal(lama_archive_put_version(f.a[0], o, &b.node, 20, &y), 0);
	assert_int_equal(lama_archive_current(f.a[0], &id, &cur), 0);
	got = get_obj(f.a[0], &cur);
	json_decref(o);
	o = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"h\",\"version\":1,\"str\":\"x\",\"int\":2,"
		  "\"set\":{\"$set\":[\"a\",\"c\",\"d\"]}}");
	hash_obj(f.r, o, &id, NULL);
	assert_true(lama_hash_eq(&id, &cur));
	json_decref(got);
	json_decref(o);
	afx_done(&f);
}

/* A branch that goes on from a version that was merged already: the merge
 * must come out as if everything had arrived at once. (It did not: the
 * three-way set merge took the merged version's parent as the ancestor, so
 * an item removed on one branch came back.) And a version that arrives
 * again after a merge does not become a head again. */
static void test_merge_grouping(void **state)
{
	struct afx f;
	struct lama_put_info b, a1, a2, b1, again;
	lama_hash id, cur0, cur1, node, node2;
	json_t *o, *x1, *x2, *y1, *got;

	(void)state;
	afx_open(&f);
	afx_add(&f);
	o = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"g\",\"version\":1,\"set\":{\"$set\":[\"k\",\"r\"]}}");
	x1 = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"g\",\"version\":1,\"set\":{\"$set\":[\"k\"]}}");
	x2 = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"g\",\"version\":1,\"set\":{\"$set\":[\"k\",\"r\"]},\"str\":\"x\"}");
	y1 = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"g\",\"version\":1,\"set\":{\"$set\":[\"k\"]},\"int\":1}");
	for (int i = 0; i < 2; i++) {
		lama_archive *a = f.a[i];

		assert_int_equal(lama_archive_put(a, o, 10, &b), 0);
		id = b.id_hash;
		assert_int_equal(lama_archive_put_version(a, x1, &b.node, 20, &a1), 0); /* drops r */
		assert_int_equal(lama_archive_put_version(a, y1, &b.node, 20, &b1), 0); /* drops r */
		if (i == 1)
			assert_int_equal(lama_archive_merge(a, &id, NULL), 0);
		assert_int_equal(lama_archive_put_version(a, x2, &a1.node, 30, &a2), 0); /* r again */
		assert_int_equal(lama_archive_current(a, &id, i ? &cur1 : &cur0), 0);
	}
	/* r: in the base, and y1 removed it: gone, either way */
	assert_true(lama_hash_eq(&cur0, &cur1));
	got = get_obj(f.a[1], &cur1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "set"), "$set")), 1);
	assert_string_equal(json_string_value(json_object_get(got, "str")), "x");
	json_decref(got);

	/* every version again, in both archives: the heads stay */
	for (int i = 0; i < 2; i++) {
		lama_archive *a = f.a[i];

		assert_int_equal(lama_archive_merge(a, &id, &node), 0);
		assert_int_equal(lama_archive_put_version(a, o, NULL, 10, &again), 0);
		assert_true(lama_hash_eq(&again.node, &b.node));
		assert_int_equal(lama_archive_put_version(a, x1, &b.node, 20, &again), 0);
		assert_int_equal(lama_archive_put_version(a, y1, &b.node, 20, &again), 0);
		assert_int_equal(lama_archive_put_version(a, x2, &a1.node, 30, &again), 0);
		assert_true(lama_hash_eq(&again.node, &a2.node));
		assert_int_equal(nheads(a, &id), 1);
		assert_int_equal(lama_archive_merge(a, &id, &node2), 0);
		assert_true(lama_hash_eq(&node, &node2));
		/* the same version at another time is a new one */
		assert_int_equal(lama_archive_put_version(a, x1, &b.node, 21, &again), 0);
		assert_int_equal(nheads(a, &id), 2);
		assert_int_equal(lama_archive_current(a, &id, &cur0), 0);
		assert_true(lama_hash_eq(&cur0, &cur1));
	}
	json_decref(o);
	json_decref(x1);
	json_decref(x2);
	json_decref(y1);
	afx_done(&f);
}

/* ---- reverse maps ---- */

static void test_refs(void **state)
{
	struct afx f;
	lama_archive *a;
	struct lama_put_info pi, ui, xi, x1, x2, mi;
	lama_blob_writer *w;
	lama_hash clob, blob, merged, node;
	json_t *o, *want, *x;
	char hu[65], hp[65], hpid[65], hc[65], hb[65], buf[2048];

	(void)state;
	afx_open(&f);
	a = f.a[0];
	assert_int_equal(lama_archive_put_clob(a, "some text", 9, &clob), 0);
	assert_int_equal(lama_blob_write_begin(f.st[0], &w), 0);
	assert_int_equal(lama_blob_write(w, "\x00\x01\x02", 3), 0);
	assert_int_equal(lama_blob_write_end(w, &blob, NULL), 0);
	o = jload("{\"$type$\":\"Person\",\"email\":\"p@example.com\",\"name\":\"P\"}");
	assert_int_equal(lama_archive_put(a, o, 100, &pi), 0);
	json_decref(o);
	o = jload("{\"$type$\":\"TestUnversioned\",\"text\":\"u\"}");
	assert_int_equal(lama_archive_put(a, o, 0, &ui), 0);
	json_decref(o);
	hex_of(&ui.hash, hu);
	hex_of(&pi.hash, hp);
	hex_of(&pi.id_hash, hpid);
	hex_of(&clob, hc);
	hex_of(&blob, hb);

	/* a message: sender is the Person's ID, attachments the two objects */
	snprintf(buf, sizeof(buf),
		 "{\"$type$\":\"ChatMessage\",\"text\":\"hi\",\"sender\":\"%s\",\"attachments\":[\"%s\",\"%s\"]}",
		 hpid, hu, hp);
	o = jload(buf);
	struct lama_put_info mi0;

	assert_int_equal(lama_archive_put(a, o, 0, &mi0), 0);
	json_decref(o);

	/* a versioned object with every kind of reference */
	snprintf(buf, sizeof(buf),
		 "{\"$type$\":\"TestAllTypes\",\"id\":\"r\",\"version\":1,\"refObj\":\"%s\",\"refId\":\"%s\","
		 "\"refClob\":\"%s\",\"refBlob\":\"%s\",\"mapOfBag\":{\"$map\":[[\"k\",[\"%s\",\"%s\"]]]}}",
		 hu, hpid, hc, hb, hp, hu);
	x = jload(buf);
	assert_int_equal(lama_archive_put(a, x, 100, &xi), 0);

	want = json_object();
	ref_expect(want, "TestAllTypes", &xi.hash);
	ref_expect(want, "ChatMessage", &mi0.hash);
	refs_equal(a, &ui.hash, want);
	want = json_object();
	ref_expect(want, "VersionNodeEdge", &pi.node);
	ref_expect(want, "TestAllTypes", &xi.hash);
	ref_expect(want, "ChatMessage", &mi0.hash);
	refs_equal(a, &pi.id_hash, want);
	want = json_object();
	ref_expect(want, "VersionNodeEdge", &pi.node);
	ref_expect(want, "TestAllTypes", &xi.hash);
	ref_expect(want, "ChatMessage", &mi0.hash);
	refs_equal(a, &pi.hash, want);
	want = json_object();
	ref_expect(want, "TestAllTypes", &xi.hash);
	refs_equal(a, &clob, want);
	want = json_object();
	ref_expect(want, "TestAllTypes", &xi.hash);
	refs_equal(a, &blob, want);
	want = json_object();
	ref_expect(want, "VersionNodeEdge", &xi.node);
	refs_equal(a, &xi.id_hash, want);
	want = json_object();
	ref_expect(want, "VersionNodeEdge", &xi.node);
	refs_equal(a, &xi.hash, want);
	refs_equal(a, &xi.node, json_object());
	refs_equal(a, &mi0.hash, json_object());

	/* two concurrent versions: one drops refBlob, one changes str */
	o = json_deep_copy(x);
	json_object_del(o, "refBlob");
	assert_int_equal(lama_archive_put_version(a, o, &xi.node, 200, &x1), 0);
	json_decref(o);
	o = json_deep_copy(x);
	json_object_set_new(o, "str", json_string("changed"));
	assert_int_equal(lama_archive_put_version(a, o, &xi.node, 300, &x2), 0);
	json_decref(o);
	assert_int_equal(lama_archive_merge(a, &xi.id_hash, &node), 0);
	assert_int_equal(lama_archive_current(a, &xi.id_hash, &merged), 0);
	assert_false(lama_hash_eq(&merged, &x1.hash));
	assert_false(lama_hash_eq(&merged, &x2.hash));

	want = json_object();
	ref_expect(want, "VersionNodeEdge", &xi.node);
	ref_expect(want, "VersionNodeChange", &x1.node);
	ref_expect(want, "VersionNodeChange", &x2.node);
	ref_expect(want, "VersionNodeMerge", &node);
	refs_equal(a, &xi.id_hash, want);
	want = json_object();
	ref_expect(want, "VersionNodeChange", &x1.node);
	ref_expect(want, "VersionNodeChange", &x2.node);
	refs_equal(a, &xi.node, want);
	want = json_object();
	ref_expect(want, "VersionNodeMerge", &node);
	refs_equal(a, &x1.node, want);
	want = json_object();
	ref_expect(want, "VersionNodeMerge", &node);
	refs_equal(a, &x2.node, want);
	want = json_object();
	ref_expect(want, "VersionNodeMerge", &node);
	refs_equal(a, &merged, want);
	want = json_object();
	ref_expect(want, "VersionNodeChange", &x1.node);
	refs_equal(a, &x1.hash, want);
	refs_equal(a, &node, json_object());
	/* every version still holding a reference is a referrer */
	want = json_object();
	ref_expect(want, "TestAllTypes", &xi.hash);
	ref_expect(want, "TestAllTypes", &x1.hash);
	ref_expect(want, "TestAllTypes", &x2.hash);
	ref_expect(want, "TestAllTypes", &merged);
	ref_expect(want, "ChatMessage", &mi0.hash);
	refs_equal(a, &ui.hash, want);
	/* the merge kept the later str and dropped refBlob (x2's refBlob is
	 * unchanged since the base, x1 removed it later) */
	want = json_object();
	ref_expect(want, "TestAllTypes", &xi.hash);
	ref_expect(want, "TestAllTypes", &x2.hash);
	refs_equal(a, &blob, want);
	o = NULL;
	assert_int_equal(lama_archive_get(a, &merged, &o), 0);
	assert_string_equal(json_string_value(json_object_get(o, "str")), "changed");
	assert_null(json_object_get(o, "refBlob"));
	json_decref(o);

	/* a put after the merge follows the merge node */
	o = json_deep_copy(x);
	json_object_set_new(o, "int", json_real(5));
	assert_int_equal(lama_archive_put(a, o, 400, &mi), 0);
	json_decref(o);
	want = json_object();
	ref_expect(want, "VersionNodeChange", &mi.node);
	refs_equal(a, &node, want);
	assert_int_equal(archive_consistent(a, &xi.id_hash), 1);
	store_ok(f.st[0], NULL);
	json_decref(x);
	afx_done(&f);
}

/* ---- errors ---- */

static void counts(lama_store *st, struct lama_store_check *c)
{
	store_ok(st, c);
}

static void same_counts(const struct lama_store_check *x, const struct lama_store_check *y)
{
	assert_int_equal(x->objects, y->objects);
	assert_int_equal(x->refs, y->refs);
	assert_int_equal(x->heads, y->heads);
	assert_int_equal(x->blobs, y->blobs);
}

static void test_errors(void **state)
{
	struct afx f;
	lama_archive *a;
	struct lama_put_info p1, p2, u;
	struct lama_store_check c0, c1;
	lama_hash h, unknown, clob;
	json_t *o, *other, *other2, *got = (json_t *)&f;

	(void)state;
	afx_open(&f);
	a = f.a[0];
	o = tat_new("e1");
	other = tat_new("e2");
	assert_int_equal(lama_archive_put(a, o, 100, &p1), 0);
	assert_int_equal(lama_archive_put(a, other, 100, &p2), 0);
	other2 = jload("{\"$type$\":\"TestUnversioned\",\"text\":\"t\"}");
	assert_int_equal(lama_archive_put(a, other2, 0, &u), 0);
	counts(f.st[0], &c0);

	/* a prev of another ID */
	json_object_set_new(o, "str", json_string("new"));
	assert_int_equal(lama_archive_put_version(a, o, &p2.node, 200, NULL), LAMA_EINVAL);
	counts(f.st[0], &c1);
	same_counts(&c0, &c1);
	/* a prev that is not a version node, or not stored */
	assert_int_equal(lama_archive_put_version(a, o, &p1.hash, 200, NULL), LAMA_EINVAL);
	memset(&unknown, 0x5a, sizeof(unknown));
	assert_int_equal(lama_archive_put_version(a, o, &unknown, 200, NULL), LAMA_ENOTFOUND);
	counts(f.st[0], &c1);
	same_counts(&c0, &c1);

	/* unknown IDs */
	assert_int_equal(lama_archive_merge(a, &unknown, NULL), LAMA_ENOTFOUND);
	assert_int_equal(lama_archive_current(a, &unknown, &h), LAMA_ENOTFOUND);

	/* invalid objects: nothing stored */
	json_decref(other);
	other = jload("{\"$type$\":\"TestUnversioned\",\"count\":1}"); /* no text */
	assert_int_equal(lama_archive_put(a, other, 0, NULL), LAMA_EINVAL);
	json_decref(other);
	other = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"e3\"}"); /* no version */
	assert_int_equal(lama_archive_put(a, other, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_archive_put_version(a, other, NULL, 5, NULL), LAMA_EINVAL);
	json_decref(other);
	other = jload("{\"$type$\":\"TestAllTypes\",\"id\":\"e1\",\"version\":1,\"int\":1.5}");
	assert_int_equal(lama_archive_put(a, other, 0, NULL), LAMA_EINVAL);
	assert_int_equal(lama_archive_put_version(a, other, &p1.node, 5, NULL), LAMA_EINVAL);
	json_decref(other);
	other = jload("{\"$type$\":\"TestUnversioned\",\"text\":\"t\",\"extra\":1}");
	assert_int_equal(lama_archive_put(a, other, 0, NULL), LAMA_EINVAL);
	json_decref(other);
	other = jload("{\"$type$\":\"NoSuchType\",\"text\":\"t\"}");
	assert_true(lama_archive_put(a, other, 0, NULL) < 0);
	assert_true(lama_archive_put_version(a, other, NULL, 0, NULL) < 0);
	json_decref(other);
	other = jload("{\"text\":\"t\"}");
	assert_true(lama_archive_put(a, other, 0, NULL) < 0);
	json_decref(other);
	other = json_array();
	assert_true(lama_archive_put(a, other, 0, NULL) < 0);
	assert_true(lama_archive_put_version(a, other, NULL, 0, NULL) < 0);
	json_decref(other);
	/* a version node of our own making is an ordinary object, but a
	 * non-finite creation time is refused */
	assert_int_equal(lama_archive_put(a, o, NAN, NULL), LAMA_EINVAL);
	assert_int_equal(lama_archive_put_version(a, o, &p1.node, INFINITY, NULL), LAMA_EINVAL);
	assert_int_equal(lama_archive_put_version(a, o, &p1.node, -5, NULL), LAMA_EINVAL);
	counts(f.st[0], &c1);
	same_counts(&c0, &c1);
	assert_int_equal(nheads(a, &p1.id_hash), 1);

	/* CLOBs */
	assert_int_equal(lama_archive_put_clob(a, "\xff\xfe", 2, &h), LAMA_EINVAL);
	assert_int_equal(lama_archive_put_clob(a, "ok \xc0\xaf", 5, &h), LAMA_EINVAL);  /* overlong */
	assert_int_equal(lama_archive_put_clob(a, "\xed\xa0\x80", 3, &h), LAMA_EINVAL); /* surrogate */
	assert_int_equal(lama_archive_put_clob(a, "cut \xe2\x82", 6, &h), LAMA_EINVAL);  /* truncated */
	counts(f.st[0], &c1);
	same_counts(&c0, &c1);
	assert_int_equal(lama_archive_put_clob(a, "gr\xc3\xbc\xc3\x9f \xe2\x82\xac", 10, &clob), 0);
	lama_sha256("gr\xc3\xbc\xc3\x9f \xe2\x82\xac", 10, &h);
	assert_true(lama_hash_eq(&h, &clob));
	assert_int_equal(lama_archive_put_clob(a, "", 0, NULL), 0);

	/* a CLOB is not an object; an unknown hash is not found */
	assert_true(lama_archive_get(a, &clob, &got) < 0);
	assert_null(got);
	got = (json_t *)&f;
	assert_int_equal(lama_archive_get(a, &unknown, &got), LAMA_ENOTFOUND);
	assert_null(got);
	/* merging or reading the versions of a non-ID is not found */
	assert_int_equal(lama_archive_current(a, &clob, &h), LAMA_ENOTFOUND);

	/* the object is not a version: no prev can be made of it */
	assert_int_equal(lama_archive_put_version(a, o, &u.hash, 0, NULL), LAMA_EINVAL);
	store_ok(f.st[0], NULL);
	json_decref(other2);
	json_decref(o);
	afx_done(&f);
}

/* Field rules: a bag merges as a register unless the models register it
 * as a set; then concurrent additions both stay, a removal on a branch
 * sticks, and the items come out in the order of their text. */
#define P1 "1111111111111111111111111111111111111111111111111111111111111111"
#define P2 "2222222222222222222222222222222222222222222222222222222222222222"
#define P3 "3333333333333333333333333333333333333333333333333333333333333333"

static json_t *bag_merge(struct afx *f, int ai, const char *base, const char *x, const char *y)
{
	struct lama_put_info b, i1, i2;
	lama_hash cur;
	json_t *o = jload(base);

	assert_int_equal(lama_archive_put(f->a[ai], o, 10, &b), 0);
	json_decref(o);
	o = jload(x);
	assert_int_equal(lama_archive_put_version(f->a[ai], o, &b.node, 30, &i1), 0);
	json_decref(o);
	o = jload(y);
	assert_int_equal(lama_archive_put_version(f->a[ai], o, &b.node, 20, &i2), 0);
	json_decref(o);
	assert_int_equal(lama_archive_current(f->a[ai], &b.id_hash, &cur), 0);
	return get_obj(f->a[ai], &cur);
}

static void test_field_rules(void **state)
{
	const char *base = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P3 "\"]}";
	const char *x = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P3 "\",\"" P2 "\"]}";
	const char *y = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P1 "\"]}";
	const char *xs = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P2 "\",\"" P3 "\"]}";
	struct afx f;
	json_t *got, *want;

	(void)state;
	afx_open(&f);
	/* as a register, the later write (x at 30) wins whole */
	got = bag_merge(&f, 0, base, x, y);
	want = jload(xs); /* a bag is stored sorted, as one.core does */
	if (!json_equal(got, want))
		fail_msg("got %s", jtext(got));
	json_decref(got);
	json_decref(want);
	/* as a set: P2 added on x, P1 added and P3 removed on y */
	afx_add(&f);
	assert_int_equal(lama_archive_set_rule(f.a[1], "Group", "person", LAMA_CRDT_SET), 0);
	got = bag_merge(&f, 1, base, x, y);
	want = jload("{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P1 "\",\"" P2 "\"]}");
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	assert_int_equal(lama_archive_set_rule(f.a[1], NULL, "person", LAMA_CRDT_SET), LAMA_EINVAL);
	afx_done(&f);
}

/* A type's own merger replaces the field rules; what it writes commits
 * with the merge node, and a result of another ID is refused with the
 * heads left as they were. */
static int merger_calls;

static int pick_longest(void *ctx, lama_archive *a, json_t *const *heads, size_t n,
			json_t **merged)
{
	size_t best = 0;

	(void)a;
	merger_calls++;
	for (size_t i = 1; i < n; i++)
		if (json_array_size(json_object_get(heads[i], "person")) >
		    json_array_size(json_object_get(heads[best], "person")))
			best = i;
	*merged = json_deep_copy(heads[best]);
	if (ctx) /* the hostile variant: another ID */
		json_object_set_new(*merged, "name", json_string("other"));
	return 0;
}

static void test_type_merger(void **state)
{
	const char *base = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P3 "\"]}";
	const char *x = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P3 "\",\"" P2 "\"]}";
	const char *y = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P1 "\"]}";
	const char *xs = "{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P2 "\",\"" P3 "\"]}";
	struct afx f;
	json_t *got, *want;
	lama_hash id, cur;
	int bad = 1;

	(void)state;
	afx_open(&f);
	assert_int_equal(lama_archive_set_merger(f.a[0], "Group", pick_longest, NULL), 0);
	merger_calls = 0;
	got = bag_merge(&f, 0, base, x, y);
	want = jload(xs);
	assert_true(json_equal(got, want));
	assert_int_equal(merger_calls, 1);
	hash_obj(f.r, want, NULL, &id);
	assert_int_equal(nheads(f.a[0], &id), 1);
	json_decref(got);
	json_decref(want);

	afx_add(&f);
	assert_int_equal(lama_archive_set_merger(f.a[1], "Group", pick_longest, &bad), 0);
	{
		struct lama_put_info b, i1, i2;
		json_t *o = jload(base);

		assert_int_equal(lama_archive_put(f.a[1], o, 10, &b), 0);
		json_decref(o);
		o = jload(x);
		assert_int_equal(lama_archive_put_version(f.a[1], o, &b.node, 30, &i1), 0);
		json_decref(o);
		o = jload(y);
		assert_int_equal(lama_archive_put_version(f.a[1], o, &b.node, 20, &i2), 0);
		json_decref(o);
		assert_int_equal(lama_archive_current(f.a[1], &b.id_hash, &cur), LAMA_EINVAL);
		assert_int_equal(nheads(f.a[1], &b.id_hash), 2);
	}
	store_ok(f.st[1], NULL);
	afx_done(&f);
}

/* A type registered as unindexed records no reverse-map rows for its
 * references; its version nodes are still referrers of its ID, and other
 * types are indexed as before. */
static int count_ref(void *ctx, const char *type, const lama_hash *src)
{
	(void)type;
	(void)src;
	++*(int *)ctx;
	return 0;
}

static void test_unindexed(void **state)
{
	struct afx f;
	struct lama_put_info g, p;
	lama_hash person;
	json_t *o;
	int n;

	(void)state;
	afx_open(&f);
	assert_int_equal(lama_archive_set_unindexed(f.a[0], "Group"), 0);
	assert_int_equal(lama_archive_set_unindexed(f.a[0], "Group"), 0); /* twice is once */
	assert_int_equal(lama_archive_set_unindexed(f.a[0], ""), LAMA_EINVAL);
	assert_int_equal(lama_hash_parse(P1, 64, &person), 0);
	o = jload("{\"$type$\":\"Group\",\"name\":\"g\",\"person\":[\"" P1 "\"]}");
	assert_int_equal(lama_archive_put(f.a[0], o, 10, &g), 0);
	json_decref(o);
	o = jload("{\"$type$\":\"Access\",\"object\":\"" P2 "\",\"person\":[\"" P1 "\"],\"group\":[]}");
	assert_int_equal(lama_archive_put(f.a[0], o, 10, &p), 0);
	json_decref(o);
	n = 0;
	assert_int_equal(lama_archive_referrers(f.a[0], &person, "Group", count_ref, &n), 0);
	assert_int_equal(n, 0);
	n = 0;
	assert_int_equal(lama_archive_referrers(f.a[0], &person, "Access", count_ref, &n), 0);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(lama_archive_referrers(f.a[0], &g.id_hash, NULL, count_ref, &n), 0);
	assert_int_equal(n, 1); /* the Group's version node */
	afx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unversioned),
		cmocka_unit_test(test_versioned),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_merge_by_hand),
		cmocka_unit_test(test_merge_grouping),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_field_rules),
		cmocka_unit_test(test_type_merger),
		cmocka_unit_test(test_unindexed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
