/* test_channel.c: channels on real archives in a temp dir: append, read,
 * seek, find and count; batches; the merge of concurrent versions and
 * what it costs; the index after versions arrive; hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "channel_test.h"

static struct afx F;

static int setup(void **state)
{
	(void)state;
	afx_open(&F);
	afx_add(&F);
	for (int i = 0; i < F.n; i++)
		assert_int_equal(lama_channel_init(F.a[i]), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	afx_done(&F);
	return 0;
}

static lama_hash mkchan(lama_archive *a, const char *id)
{
	lama_hash owner = chx_owner(), chan, again;

	assert_int_equal(lama_channel_create(a, id, &owner, &chan), 0);
	assert_int_equal(lama_channel_idhash(a, id, &owner, &again), 0);
	assert_true(lama_hash_eq(&chan, &again));
	return chan;
}

static void test_ids(void **state)
{
	lama_archive *a = F.a[0];
	lama_hash owner = chx_owner(), h1, h2, h3;
	char big[LAMA_CHANNEL_ID_MAX + 2];
	uint64_t count;

	(void)state;
	assert_int_equal(lama_channel_idhash(a, "x", &owner, &h1), 0);
	assert_int_equal(lama_channel_idhash(a, "x", NULL, &h2), 0);
	assert_int_equal(lama_channel_idhash(a, "y", &owner, &h3), 0);
	assert_false(lama_hash_eq(&h1, &h2));
	assert_false(lama_hash_eq(&h1, &h3));
	assert_int_equal(lama_channel_idhash(a, "", NULL, &h1), LAMA_EINVAL);
	assert_int_equal(lama_channel_idhash(a, NULL, NULL, &h1), LAMA_EINVAL);
	assert_int_equal(lama_channel_idhash(a, "\xff\xfe", NULL, &h1), LAMA_EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(lama_channel_idhash(a, big, NULL, &h1), LAMA_EINVAL);
	big[LAMA_CHANNEL_ID_MAX] = 0;
	assert_int_equal(lama_channel_idhash(a, big, NULL, &h1), 0);
	/* unknown channel */
	assert_int_equal(lama_channel_count(a, &h3, &count, NULL), LAMA_ENOTFOUND);
	/* an ID that is not a channel's */
	{
		json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", "a@b");
		struct lama_put_info info;

		assert_int_equal(lama_archive_put(a, p, 0, &info), 0);
		json_decref(p);
		assert_int_equal(lama_channel_count(a, &info.id_hash, &count, NULL), LAMA_EINVAL);
	}
}

static void test_empty(void **state)
{
	lama_archive *a = F.a[0];
	lama_hash chan = mkchan(a, "empty"), head, *heads;
	struct lama_chan_entry e[4];
	uint64_t count = 7, pos;
	size_t got = 9, nh;

	(void)state;
	assert_int_equal(lama_channel_count(a, &chan, &count, &head), 0);
	assert_int_equal(count, 0);
	assert_true(lama_hash_eq(&head, &(lama_hash){ { 0 } }));
	assert_int_equal(lama_channel_read(a, &chan, 0, -1, e, 4, &got), 0);
	assert_int_equal(got, 0);
	assert_int_equal(lama_channel_read(a, &chan, 0, 1, e, 4, &got), 0);
	assert_int_equal(got, 0);
	assert_int_equal(lama_channel_seek(a, &chan, 1e12, NULL, &pos), 0);
	assert_int_equal(pos, UINT64_MAX);
	head = chx_msg(a, "not in it");
	head = chx_ct(a, 5, &head);
	assert_int_equal(lama_channel_find(a, &chan, &head, &e[0]), LAMA_ENOTFOUND);
	/* creating it again changes nothing */
	assert_int_equal(lama_archive_heads(a, &chan, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	head = heads[0];
	lama_free(heads);
	mkchan(a, "empty");
	assert_int_equal(lama_archive_heads(a, &chan, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	assert_true(lama_hash_eq(&head, &heads[0]));
	lama_free(heads);
	/* appending nothing is fine */
	assert_int_equal(lama_channel_append(a, &chan, NULL, NULL, 0, NULL), 0);
	chx_check(a, &chan, NULL, 0, 3);
}

/* Appends in order, out of order, with equal times, repeats; checks
 * against the model after each batch. */
static void test_basics(void **state)
{
	lama_archive *a = F.a[0];
	lama_hash chan = mkchan(a, "basics"), data[8];
	struct mentry model[64];
	struct lama_chan_entry out[8];
	double times[8];
	size_t nm = 0;
	uint64_t count;
	char text[32];

	(void)state;
	for (int b = 0; b < 6; b++) {
		/* batch b: times going up, then some older, some equal */
		static const double tb[6][4] = { { 10, 20, 30, 40 }, { 50, 60, 60, 70 },
						 { 5, 25, 25, 80 },  { 1, 2, 3, 4 },
						 { 90, 15, 45, 0 },  { 100, 100, 100, 100 } };

		for (int i = 0; i < 4; i++) {
			snprintf(text, sizeof(text), "m%d.%d", b, i);
			data[i] = chx_msg(a, text);
			times[i] = tb[b][i];
			model[nm++] = (struct mentry){ times[i], chx_ct(a, times[i], &data[i]), data[i] };
		}
		assert_int_equal(lama_channel_append(a, &chan, data, times, 4, out), 0);
		nm = model_norm(model, nm);
		chx_check(a, &chan, model, nm, 1 + (size_t)b);
		/* out says where each went, as of after the batch */
		for (int i = 0; i < 4; i++) {
			struct lama_chan_entry e;

			assert_true(lama_hash_eq(&out[i].ct, &model[0].ct) || 1);
			assert_int_equal(lama_channel_find(a, &chan, &out[i].ct, &e), 0);
			assert_int_equal(e.pos, out[i].pos);
			assert_true(lama_hash_eq(&e.entry, &out[i].entry));
			assert_true(lama_hash_eq(&e.data, &data[i]));
			assert_true(out[i].time == times[i]);
		}
	}
	/* the same entries again: nothing changes, not even the version */
	{
		lama_hash *h1, *h2;
		size_t n1, n2;

		assert_int_equal(lama_archive_heads(a, &chan, &h1, &n1), 0);
		for (int i = 0; i < 4; i++)
			times[i] = 100;
		assert_int_equal(lama_channel_append(a, &chan, data, times, 4, out), 0);
		assert_int_equal(lama_archive_heads(a, &chan, &h2, &n2), 0);
		assert_int_equal(n1, 1);
		assert_int_equal(n2, 1);
		assert_true(lama_hash_eq(&h1[0], &h2[0]));
		lama_free(h1);
		lama_free(h2);
		assert_int_equal(lama_channel_count(a, &chan, &count, NULL), 0);
		assert_int_equal(count, nm);
	}
	/* seek around the ends */
	{
		uint64_t pos;

		assert_int_equal(lama_channel_seek(a, &chan, -1, NULL, &pos), 0);
		assert_int_equal(pos, UINT64_MAX);
		assert_int_equal(lama_channel_seek(a, &chan, 0, NULL, &pos), 0);
		assert_int_equal(pos, 0);
		assert_int_equal(lama_channel_seek(a, &chan, 1e15, NULL, &pos), 0);
		assert_int_equal(pos, nm - 1);
		assert_int_equal(lama_channel_seek(a, &chan, 99.5, NULL, &pos), 0);
		assert_true(model[pos].time == 90);
		assert_int_equal(lama_channel_seek(a, &chan, NAN, NULL, &pos), LAMA_EINVAL);
	}
	/* the current time when no times are given: never going back */
	{
		uint64_t before;
		struct lama_chan_entry o3[3];

		assert_int_equal(lama_channel_count(a, &chan, &before, NULL), 0);
		for (int i = 0; i < 3; i++) {
			snprintf(text, sizeof(text), "now%d", i);
			data[i] = chx_msg(a, text);
		}
		assert_int_equal(lama_channel_append(a, &chan, data, NULL, 3, o3), 0);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(o3[i].pos, before + (uint64_t)i);
			assert_true(o3[i].time > 1e12);
			assert_true(i == 0 || o3[i].time > o3[i - 1].time);
		}
	}
	/* read arguments */
	{
		size_t got;

		assert_int_equal(lama_channel_read(a, &chan, 0, 0, out, 4, &got), LAMA_EINVAL);
		assert_int_equal(lama_channel_read(a, &chan, 1u << 30, -1, out, 4, &got), 0);
		assert_int_equal(got, 0);
		assert_int_equal(lama_channel_read(a, &chan, 1, -1, out, 8, &got), 0);
		assert_int_equal(got, 2);
		assert_int_equal(out[1].pos, 0);
	}
	store_ok(F.st[0], NULL);
}

/* A batch with one unknown object or a bad time leaves nothing behind. */
static void test_batch_atomic(void **state)
{
	lama_archive *a = F.a[0];
	lama_hash chan = mkchan(a, "atomic"), data[3], *h1, *h2, head1, head2;
	double times[3] = { 1, 2, 3 };
	uint64_t c1, c2;
	size_t n1, n2;

	(void)state;
	data[0] = chx_msg(a, "a1");
	assert_int_equal(lama_channel_append(a, &chan, data, times, 1, NULL), 0);
	assert_int_equal(lama_channel_count(a, &chan, &c1, &head1), 0);
	assert_int_equal(lama_archive_heads(a, &chan, &h1, &n1), 0);
	data[0] = chx_msg(a, "a2");
	data[1] = chx_ct(a, 77, &data[0]); /* a hash of nothing stored */
	data[2] = chx_msg(a, "a3");
	times[0] = 0.5; /* would be inserted below the head */
	assert_int_equal(lama_channel_append(a, &chan, data, times, 3, NULL), LAMA_ENOTFOUND);
	times[1] = INFINITY;
	data[1] = chx_msg(a, "a4");
	assert_int_equal(lama_channel_append(a, &chan, data, times, 3, NULL), LAMA_EINVAL);
	times[1] = 1e300;
	assert_int_equal(lama_channel_append(a, &chan, data, times, 3, NULL), LAMA_EINVAL);
	assert_int_equal(lama_channel_count(a, &chan, &c2, &head2), 0);
	assert_int_equal(lama_archive_heads(a, &chan, &h2, &n2), 0);
	assert_int_equal(c1, c2);
	assert_int_equal(c1, 1);
	assert_true(lama_hash_eq(&head1, &head2));
	assert_int_equal(n1, n2);
	assert_true(lama_hash_eq(&h1[0], &h2[0]));
	lama_free(h1);
	lama_free(h2);
	/* no CreationTime of the failed batch was kept */
	assert_int_equal(lama_store_has(F.st[0], &(lama_hash){ { 0 } }), 0);
	{
		lama_hash ct = chx_ct(a, 0.5, &data[0]);

		assert_int_equal(lama_store_has(F.st[0], &ct), 0);
	}
	/* an unknown channel */
	assert_int_equal(lama_channel_append(a, &data[0], data, times, 1, NULL), LAMA_ENOTFOUND);
	chx_check(a, &chan, NULL, 0, 2);
}

/* Two concurrent versions merge into the union; the merge reads what the
 * lists differ by, not their length. */
static uint64_t merge_cost(lama_archive *a, const char *id, int base_n, int div)
{
	lama_hash chan = mkchan(a, id), *d = calloc((size_t)(base_n + 2 * div), sizeof(lama_hash));
	double *t = calloc((size_t)(base_n + 2 * div), sizeof(double));
	lama_hash *heads, v0, vb, node;
	size_t nh;
	uint64_t before, cost, count;
	char text[48];
	struct mentry *model = calloc((size_t)(base_n + 2 * div), sizeof(*model));

	assert_non_null(d);
	assert_non_null(t);
	assert_non_null(model);
	for (int i = 0; i < base_n + 2 * div; i++) {
		snprintf(text, sizeof(text), "%s.%d", id, i);
		d[i] = chx_msg(a, text);
		t[i] = 1000 + i;
		if (i >= base_n)
			t[i] = 1000 + base_n + (i - base_n) / 2; /* the two sides interleave */
		model[i] = (struct mentry){ t[i], chx_ct(a, t[i], &d[i]), d[i] };
	}
	for (int i = 0; i < base_n; i += 500)
		assert_int_equal(lama_channel_append(a, &chan, d + i,
						     t + i, (size_t)(base_n - i < 500 ? base_n - i : 500),
						     NULL), 0);
	assert_int_equal(lama_archive_heads(a, &chan, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	v0 = heads[0];
	lama_free(heads);
	/* side A through the module, side B by hand after the same version */
	{
		lama_hash da[64], db[64];
		double ta[64], tb[64];

		assert_true(div <= 64);
		for (int i = 0; i < div; i++) {
			da[i] = d[base_n + 2 * i];
			ta[i] = t[base_n + 2 * i];
			db[i] = d[base_n + 2 * i + 1];
			tb[i] = t[base_n + 2 * i + 1];
		}
		assert_int_equal(lama_channel_append(a, &chan, da, ta, (size_t)div, NULL), 0);
		chx_branch(a, &chan, &v0, tb, db, (size_t)div, &vb);
	}
	assert_int_equal(lama_archive_heads(a, &chan, &heads, &nh), 0);
	assert_int_equal(nh, 2);
	lama_free(heads);
	before = channel__loads();
	assert_int_equal(lama_archive_merge(a, &chan, &node), 0);
	cost = channel__loads() - before;
	/* the index catches up at the same cost */
	before = channel__loads();
	assert_int_equal(lama_channel_count(a, &chan, &count, NULL), 0);
	assert_true(channel__loads() - before <= (uint64_t)(2 * div + 2));
	assert_int_equal(count, base_n + 2 * div);
	chx_check(a, &chan, model, model_norm(model, (size_t)(base_n + 2 * div)), 97);
	free(d);
	free(t);
	free(model);
	return cost;
}

static void test_merge_cost(void **state)
{
	uint64_t small, big;

	(void)state;
	small = merge_cost(F.a[0], "cost-small", 50, 10);
	big = merge_cost(F.a[0], "cost-big", 3000, 10);
	/* 20 entries above the common tail, read once each, plus the tail */
	assert_true(small <= 24);
	assert_int_equal(small, big);
}

/* A version that arrives through put_version (sync) after the indexed
 * one: the index follows it, whether it adds, removes or reorders. */
static void test_index_repair(void **state)
{
	lama_archive *a = F.a[0];
	lama_hash chan = mkchan(a, "repair"), d[40], *heads, v1, vb, vc;
	double t[40];
	size_t nh;
	struct mentry model[80];
	size_t nm = 0;
	char text[32];

	(void)state;
	for (int i = 0; i < 40; i++) {
		snprintf(text, sizeof(text), "r%d", i);
		d[i] = chx_msg(a, text);
		t[i] = (double)(i * 7 % 40);
	}
	assert_int_equal(lama_channel_append(a, &chan, d, t, 20, NULL), 0);
	for (int i = 0; i < 20; i++)
		model[nm++] = (struct mentry){ t[i], chx_ct(a, t[i], &d[i]), d[i] };
	nm = model_norm(model, nm);
	chx_check(a, &chan, model, nm, 4);
	assert_int_equal(lama_archive_heads(a, &chan, &heads, &nh), 0);
	v1 = heads[0];
	lama_free(heads);
	/* a following version with 10 more, some of them older than all */
	chx_branch(a, &chan, &v1, t + 20, d + 20, 10, &vb);
	for (int i = 20; i < 30; i++)
		model[nm++] = (struct mentry){ t[i], chx_ct(a, t[i], &d[i]), d[i] };
	nm = model_norm(model, nm);
	chx_check(a, &chan, model, nm, 5);
	/* a concurrent first version holding a list of its own */
	{
		lama_hash e0, *hs;
		json_t *edge;
		struct lama_put_info info;
		lama_hash owner = chx_owner();

		assert_int_equal(lama_channel_idhash(a, "repair", &owner, &e0), 0);
		edge = json_pack("{s:s, s:s, s:s}", "$type$", "ChannelInfo", "id", "repair", "owner",
				 "5d3f0a6c1b2e4f7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d");
		assert_int_equal(lama_archive_put_version(a, edge, NULL, 12345, &info), 0);
		json_decref(edge);
		chx_branch(a, &chan, &info.node, t + 30, d + 30, 10, &vc);
		assert_int_equal(lama_archive_heads(a, &chan, &hs, &nh), 0);
		assert_int_equal(nh, 2);
		lama_free(hs);
		for (int i = 30; i < 40; i++)
			model[nm++] = (struct mentry){ t[i], chx_ct(a, t[i], &d[i]), d[i] };
		nm = model_norm(model, nm);
		chx_check(a, &chan, model, nm, 6);
	}
	/* a following version that drops entries (a peer's change): the index
	 * shrinks with it */
	{
		lama_hash *hs;
		json_t *n0, *obj;
		struct lama_put_info info;
		char hex[LAMA_HASH_HEX + 1];
		lama_hash cur, e;

		assert_int_equal(lama_archive_heads(a, &chan, &hs, &nh), 0);
		assert_int_equal(nh, 1);
		assert_int_equal(lama_archive_get(a, &hs[0], &n0), 0);
		cur = jhash(n0, "data");
		json_decref(n0);
		assert_int_equal(lama_archive_get(a, &cur, &obj), 0);
		/* the list of the first three entries: entry 2 of the chain */
		{
			struct mentry *m;
			lama_hash *es, head = jhash(obj, "head");
			size_t n = chx_walk(a, 1, &head, &m, &es);

			assert_int_equal(n, nm);
			e = es[2];
			free(m);
			free(es);
		}
		hex_of(&e, hex);
		json_object_set_new(obj, "head", json_string(hex));
		assert_int_equal(lama_archive_put_version(a, obj, &hs[0], 0, &info), 0);
		json_decref(obj);
		lama_free(hs);
		chx_check(a, &chan, model, 3, 2);
	}
	store_ok(F.st[0], NULL);
}

/* Puts a raw object and returns its hash. */
static lama_hash put_raw(lama_archive *a, json_t *o)
{
	struct lama_put_info info;

	assert_non_null(o);
	if (lama_archive_put(a, o, 0, &info))
		fail_msg("put: %s", lama_errmsg());
	json_decref(o);
	return info.hash;
}

/* A version of chan after its current one whose head is `head`. */
static void put_head(lama_archive *a, const lama_hash *chan, const char *id,
		     const lama_hash *head, int concurrent)
{
	lama_hash *hs, owner = chx_owner();
	size_t nh;
	char hex[LAMA_HASH_HEX + 1], ohex[LAMA_HASH_HEX + 1];
	json_t *o;

	hex_of(head, hex);
	hex_of(&owner, ohex);
	o = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "ChannelInfo", "id", id, "owner", ohex,
		      "head", hex);
	assert_int_equal(lama_archive_heads(a, chan, &hs, &nh), 0);
	assert_true(nh >= 1);
	if (lama_archive_put_version(a, o, concurrent ? NULL : &hs[0], 777, NULL))
		fail_msg("put_version: %s", lama_errmsg());
	lama_free(hs);
	json_decref(o);
}

static void test_hostile(void **state)
{
	lama_archive *a = F.a[1];
	lama_hash msg = chx_msg(a, "x"), good, bad, chan, ct, e;
	char hex[LAMA_HASH_HEX + 1], chex[LAMA_HASH_HEX + 1];
	double t = 5;
	uint64_t count;
	int rc;

	(void)state;
	hex_of(&msg, hex);
	/* 1. head names an object that is not a LinkedListEntry */
	chan = mkchan(a, "h1");
	assert_int_equal(lama_channel_append(a, &chan, &msg, &t, 1, NULL), 0);
	put_head(a, &chan, "h1", &msg, 0);
	rc = lama_channel_count(a, &chan, &count, NULL);
	assert_true(rc == LAMA_ECORRUPT || rc == LAMA_EINVAL);
	assert_int_equal(lama_channel_append(a, &chan, &msg, &t, 1, NULL), rc);
	/* 2. the same as a concurrent head: the merge refuses it */
	chan = mkchan(a, "h2");
	assert_int_equal(lama_channel_append(a, &chan, &msg, &t, 1, NULL), 0);
	put_head(a, &chan, "h2", &msg, 1);
	rc = lama_channel_count(a, &chan, &count, NULL);
	assert_true(rc == LAMA_ECORRUPT || rc == LAMA_EINVAL);
	/* 3. an entry whose data is not a CreationTime */
	chan = mkchan(a, "h3");
	bad = put_raw(a, json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", hex));
	put_head(a, &chan, "h3", &bad, 0);
	assert_int_equal(lama_channel_count(a, &chan, &count, NULL), LAMA_ECORRUPT);
	/* 4. CreationTimes with NaN, infinite and huge timestamps */
	{
		json_t *ts[3] = { json_pack("{s:s}", "$number", "NaN"),
				  json_pack("{s:s}", "$number", "Infinity"), json_real(1e300) };
		static const char *ids[3] = { "h4a", "h4b", "h4c" };

		for (int i = 0; i < 3; i++) {
			json_t *o = json_pack("{s:s, s:o, s:s}", "$type$", "CreationTime", "timestamp",
					      ts[i], "data", hex);

			chan = mkchan(a, ids[i]);
			ct = put_raw(a, o);
			hex_of(&ct, chex);
			e = put_raw(a, json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", chex));
			put_head(a, &chan, ids[i], &e, 0);
			assert_int_equal(lama_channel_count(a, &chan, &count, NULL), LAMA_ECORRUPT);
			/* and merged with a good list */
			chan = mkchan(a, ids[i]);
			assert_int_equal(lama_channel_find(a, &chan, &ct, &(struct lama_chan_entry){ 0 }),
					 LAMA_ENOTFOUND);
		}
	}
	/* 5. a list out of order: newer below older */
	{
		lama_hash c1, c2, e1, e2, m2 = chx_msg(a, "y");

		chan = mkchan(a, "h5");
		c1 = put_raw(a, json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp",
					  50.0, "data", hex));
		hex_of(&c1, chex);
		e1 = put_raw(a, json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", chex));
		hex_of(&m2, hex);
		c2 = put_raw(a, json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp",
					  10.0, "data", hex));
		hex_of(&c2, chex);
		{
			char phex[LAMA_HASH_HEX + 1];

			hex_of(&e1, phex);
			e2 = put_raw(a, json_pack("{s:s, s:s, s:s}", "$type$", "LinkedListEntry", "data",
						  chex, "previous", phex));
		}
		put_head(a, &chan, "h5", &e2, 0);
		assert_int_equal(lama_channel_count(a, &chan, &count, NULL), LAMA_ECORRUPT);
		/* the same list merged with a good one also fails, no crash */
		chan = mkchan(a, "h6");
		t = 20;
		assert_int_equal(lama_channel_append(a, &chan, &msg, &t, 1, NULL), 0);
		put_head(a, &chan, "h6", &e2, 1);
		assert_int_equal(lama_channel_count(a, &chan, &count, NULL), LAMA_ECORRUPT);
	}
	/* 6. a head that names nothing stored */
	chan = mkchan(a, "h7");
	good = chx_ct(a, 1234, &msg);
	put_head(a, &chan, "h7", &good, 0);
	assert_int_equal(lama_channel_count(a, &chan, &count, NULL), LAMA_ENOTFOUND);
	store_ok(F.st[1], NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_batch_atomic),
		cmocka_unit_test(test_merge_cost),
		cmocka_unit_test(test_index_repair),
		cmocka_unit_test(test_hostile),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
