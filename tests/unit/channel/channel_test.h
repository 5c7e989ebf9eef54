/* channel_test.h: what the channel tests share, on top of the archive
 * fixture (tests/unit/archive/archive_test.h): messages to append, an
 * independent model of a list (CreationTime hashes computed here, the
 * chain walked here without the module), a checker of the index against
 * the chain, concurrent branches written by hand, and copying a channel
 * version from one archive to another as sync would.
 * Include after cmocka.h and testutil.h. */
#ifndef LAMA_CHANNEL_TEST_H
#define LAMA_CHANNEL_TEST_H

#include <math.h>

#include "archive/archive_test.h"
#include "channel/channel.h"
#include "channel/channel_int.h"

/* An owner for test channels (a Person ID hash; need not be stored). */
static inline lama_hash chx_owner(void)
{
	lama_hash h;

	assert_int_equal(lama_hash_parse("5d3f0a6c1b2e4f7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
					 64, &h), 0);
	return h;
}

/* Stores a small object (a PersonName) standing for a message. */
static inline lama_hash chx_msg(lama_archive *a, const char *text)
{
	struct lama_put_info info;
	json_t *o = json_pack("{s:s, s:s}", "$type$", "PersonName", "name", text);

	assert_non_null(o);
	if (lama_archive_put(a, o, 0, &info))
		fail_msg("put message: %s", lama_errmsg());
	json_decref(o);
	return info.hash;
}

/* The hash a CreationTime {t, data} has, computed without the module. */
static inline lama_hash chx_ct(lama_archive *a, double t, const lama_hash *data)
{
	char hex[LAMA_HASH_HEX + 1];
	json_t *o;
	lama_hash h;

	hex_of(data, hex);
	o = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", t, "data", hex);
	assert_non_null(o);
	hash_obj(lama_archive_recipes(a), o, &h, NULL);
	json_decref(o);
	return h;
}

/* A model entry: (time, ct) and what it names. */
struct mentry {
	double time;
	lama_hash ct, data;
};

static inline int mentry_cmp(const void *x, const void *y)
{
	const struct mentry *a = x, *b = y;

	if (a->time != b->time)
		return a->time < b->time ? -1 : 1;
	return memcmp(a->ct.b, b->ct.b, LAMA_HASH_BYTES);
}

/* Sorts a model and drops repeats: the list a set of entries must give. */
static inline size_t model_norm(struct mentry *m, size_t n)
{
	size_t k = 0;

	qsort(m, n, sizeof(*m), mentry_cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || mentry_cmp(&m[k - 1], &m[i]))
			m[k++] = m[i];
	return k;
}

static inline lama_hash jhash(const json_t *o, const char *f)
{
	lama_hash h;
	json_t *v = json_object_get(o, f);

	assert_non_null(v);
	assert_int_equal(lama_hash_parse(json_string_value(v), json_string_length(v), &h), 0);
	return h;
}

/* The current ChannelInfo's head (0 if none), read without the module's
 * index (lama_archive_current merges through the module's rule). */
static inline int chx_head(lama_archive *a, const lama_hash *chan, lama_hash *head)
{
	lama_hash info;
	json_t *o;
	int has;

	if (lama_archive_current(a, chan, &info))
		fail_msg("current: %s", lama_errmsg());
	assert_int_equal(lama_archive_get(a, &info, &o), 0);
	has = json_object_get(o, "head") != NULL;
	if (has)
		*head = jhash(o, "head");
	json_decref(o);
	return has;
}

/* Walks the chain from head (oldest first into *out, malloc'd); asserts
 * that it is strictly ordered. Returns the length. */
static inline size_t chx_walk(lama_archive *a, int has, const lama_hash *head,
			      struct mentry **out, lama_hash **entries)
{
	size_t n = 0, cap = 16;
	struct mentry *m = malloc(cap * sizeof(*m));
	lama_hash *es = malloc(cap * sizeof(*es)), e = has ? *head : (lama_hash){ { 0 } };

	assert_non_null(m);
	assert_non_null(es);
	while (has) {
		json_t *le, *ct;

		if (n == cap) {
			cap *= 2;
			m = realloc(m, cap * sizeof(*m));
			es = realloc(es, cap * sizeof(*es));
			assert_non_null(m);
			assert_non_null(es);
		}
		assert_int_equal(lama_archive_get(a, &e, &le), 0);
		assert_string_equal(type_of(le), "LinkedListEntry");
		es[n] = e;
		m[n].ct = jhash(le, "data");
		assert_int_equal(lama_archive_get(a, &m[n].ct, &ct), 0);
		assert_string_equal(type_of(ct), "CreationTime");
		m[n].time = json_number_value(json_object_get(ct, "timestamp"));
		m[n].data = jhash(ct, "data");
		has = json_object_get(le, "previous") != NULL;
		if (has)
			e = jhash(le, "previous");
		json_decref(le);
		json_decref(ct);
		n++;
	}
	/* newest first -> oldest first */
	for (size_t i = 0; i < n / 2; i++) {
		struct mentry t = m[i];
		lama_hash th = es[i];

		m[i] = m[n - 1 - i];
		m[n - 1 - i] = t;
		es[i] = es[n - 1 - i];
		es[n - 1 - i] = th;
	}
	for (size_t i = 1; i < n; i++)
		if (mentry_cmp(&m[i - 1], &m[i]) >= 0)
			fail_msg("chain out of order at %zu", i);
	*out = m;
	if (entries)
		*entries = es;
	else
		free(es);
	return n;
}

/* Checks count, read (both directions, in pages of `page`), seek and find
 * against the chain walked by hand; if want is not NULL also against the
 * model want[0..nw). */
static inline void chx_check(lama_archive *a, const lama_hash *chan, const struct mentry *want,
			     size_t nw, size_t page)
{
	struct mentry *m;
	lama_hash head, ihead, *es;
	int has = chx_head(a, chan, &head);
	size_t n = chx_walk(a, has, &head, &m, &es), got;
	uint64_t count, pos;
	struct lama_chan_entry *buf = calloc(page + 1, sizeof(*buf));

	assert_non_null(buf);
	if (lama_channel_count(a, chan, &count, &ihead))
		fail_msg("count: %s", lama_errmsg());
	assert_int_equal(count, n);
	if (has)
		assert_true(lama_hash_eq(&ihead, &head));
	else
		assert_true(lama_hash_eq(&ihead, &(lama_hash){ { 0 } }));
	if (want) {
		assert_int_equal(n, nw);
		for (size_t i = 0; i < n; i++) {
			if (mentry_cmp(&m[i], &want[i]) || !lama_hash_eq(&m[i].data, &want[i].data))
				fail_msg("entry %zu differs from the model", i);
		}
	}
	/* oldest first */
	for (uint64_t from = 0; from < n; from += page) {
		assert_int_equal(lama_channel_read(a, chan, from, 1, buf, page, &got), 0);
		assert_int_equal(got, n - from < page ? n - from : page);
		for (size_t k = 0; k < got; k++) {
			size_t i = from + k;

			assert_int_equal(buf[k].pos, i);
			assert_true(buf[k].time == m[i].time);
			assert_true(lama_hash_eq(&buf[k].ct, &m[i].ct));
			assert_true(lama_hash_eq(&buf[k].data, &m[i].data));
			assert_true(lama_hash_eq(&buf[k].entry, &es[i]));
		}
	}
	/* newest first */
	for (uint64_t left = n; left > 0;) {
		uint64_t from = left - 1;

		assert_int_equal(lama_channel_read(a, chan, from, -1, buf, page, &got), 0);
		assert_int_equal(got, left < page ? left : page);
		for (size_t k = 0; k < got; k++) {
			assert_int_equal(buf[k].pos, from - k);
			assert_true(lama_hash_eq(&buf[k].entry, &es[from - k]));
		}
		left -= got;
	}
	assert_int_equal(lama_channel_read(a, chan, n, 1, buf, page, &got), 0);
	assert_int_equal(got, 0);
	/* entries are found and sought exactly: every one of a short list,
	 * about 24 spread over a long one, and the newest */
	for (size_t i = 0, step = n <= 24 ? 1 : n / 24; i < n; i = i + step < n || i + 1 == n ? i + step : n - 1) {
		struct lama_chan_entry e;

		assert_int_equal(lama_channel_find(a, chan, &m[i].ct, &e), 0);
		assert_int_equal(e.pos, i);
		assert_int_equal(lama_channel_seek(a, chan, m[i].time, &m[i].ct, &pos), 0);
		assert_int_equal(pos, i);
		/* by time alone: the last entry at that time */
		assert_int_equal(lama_channel_seek(a, chan, m[i].time, NULL, &pos), 0);
		assert_true(pos >= i && pos < n && m[pos].time == m[i].time);
		assert_true(pos + 1 == n || m[pos + 1].time > m[i].time);
	}
	free(buf);
	free(m);
	free(es);
}

/* Writes n entries (times[i], data[i]) by hand, canonically merged into
 * the list headed by base (has_base), as a version of chan following
 * version node `prev`: a concurrent version, as another device makes it.
 * Returns the new version's node in *node. */
static inline void chx_branch(lama_archive *a, const lama_hash *chan, const lama_hash *prev,
			      const double *times, const lama_hash *data, size_t n,
			      lama_hash *node)
{
	struct lama_put_info info;
	lama_hash head, cur;
	json_t *obj, *nodeobj;
	struct mentry *m, *all;
	size_t nm, k;
	char hex[LAMA_HASH_HEX + 1];
	int has;

	/* the list the predecessor version names */
	assert_int_equal(lama_archive_get(a, prev, &nodeobj), 0);
	cur = jhash(nodeobj, "data");
	json_decref(nodeobj);
	assert_int_equal(lama_archive_get(a, &cur, &obj), 0);
	has = json_object_get(obj, "head") != NULL;
	if (has)
		head = jhash(obj, "head");
	nm = chx_walk(a, has, &head, &m, NULL);
	all = malloc((nm + n) * sizeof(*all));
	assert_non_null(all);
	memcpy(all, m, nm * sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		json_t *ct;

		hex_of(&data[i], hex);
		ct = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", times[i],
			       "data", hex);
		assert_int_equal(lama_archive_put(a, ct, 0, &info), 0);
		json_decref(ct);
		all[nm + i] = (struct mentry){ times[i], info.hash, data[i] };
	}
	k = model_norm(all, nm + n);
	/* rebuild everything: the same list makes the same objects */
	has = 0;
	for (size_t i = 0; i < k; i++) {
		json_t *le;
		char phex[LAMA_HASH_HEX + 1];

		hex_of(&all[i].ct, hex);
		if (has) {
			hex_of(&head, phex);
			le = json_pack("{s:s, s:s, s:s}", "$type$", "LinkedListEntry", "data", hex,
				       "previous", phex);
		} else {
			le = json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", hex);
		}
		assert_int_equal(lama_archive_put(a, le, 0, &info), 0);
		json_decref(le);
		head = info.hash;
		has = 1;
	}
	if (has) {
		hex_of(&head, hex);
		json_object_set_new(obj, "head", json_string(hex));
	}
	if (lama_archive_put_version(a, obj, prev, 0, &info))
		fail_msg("put_version: %s", lama_errmsg());
	assert_true(lama_hash_eq(&info.id_hash, chan));
	*node = info.node;
	json_decref(obj);
	free(m);
	free(all);
}

/* Copies one stored object from src to dst as sync would: its bytes,
 * parsed strictly, stored through the archive. */
static inline void chx_copy_obj(lama_archive *src, lama_archive *dst, const lama_hash *h)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	enum lama_store_kind kind;
	struct lama_put_info info;
	json_t *o;

	if (lama_store_has(lama_archive_store(dst), h) == 1)
		return;
	if (lama_store_get(lama_archive_store(src), h, &kind, &b))
		fail_msg("copy get: %s", lama_errmsg());
	assert_int_equal(kind, LAMA_KIND_OBJECT);
	if (lama_object_parse(lama_archive_recipes(dst), b.data, b.len, &o, NULL))
		fail_msg("copy parse: %s", lama_errmsg());
	assert_int_equal(lama_archive_put(dst, o, 0, &info), 0);
	assert_true(lama_hash_eq(&info.hash, h));
	json_decref(o);
	lama_buf_release(&b);
}

/* Copies the ChannelInfo object `info` of src and everything it reaches
 * (entries, CreationTimes, data) into dst, bottom up, stopping at the
 * first entry dst has (everything below it is there too), then records it
 * in dst as a first version with creation time `ctime`. */
static inline void chx_send(lama_archive *src, lama_archive *dst, const lama_hash *info,
			    double ctime)
{
	json_t *obj;
	lama_hash e, *todo = NULL;
	size_t n = 0, cap = 0;
	int has;

	/* one transaction, as a sync would take */
	assert_int_equal(lama_store_begin(lama_archive_store(dst)), 0);
	assert_int_equal(lama_archive_get(src, info, &obj), 0);
	has = json_object_get(obj, "head") != NULL;
	if (has)
		e = jhash(obj, "head");
	while (has && lama_store_has(lama_archive_store(dst), &e) != 1) {
		json_t *le;

		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			todo = realloc(todo, cap * sizeof(*todo));
			assert_non_null(todo);
		}
		todo[n++] = e;
		assert_int_equal(lama_archive_get(src, &e, &le), 0);
		has = json_object_get(le, "previous") != NULL;
		if (has)
			e = jhash(le, "previous");
		json_decref(le);
	}
	while (n-- > 0) {
		json_t *le, *ct;
		lama_hash cth, dh;

		assert_int_equal(lama_archive_get(src, &todo[n], &le), 0);
		cth = jhash(le, "data");
		assert_int_equal(lama_archive_get(src, &cth, &ct), 0);
		dh = jhash(ct, "data");
		chx_copy_obj(src, dst, &dh);
		chx_copy_obj(src, dst, &cth);
		chx_copy_obj(src, dst, &todo[n]);
		json_decref(le);
		json_decref(ct);
	}
	if (lama_archive_put_version(dst, obj, NULL, ctime, NULL))
		fail_msg("put_version: %s", lama_errmsg());
	assert_int_equal(lama_store_commit(lama_archive_store(dst)), 0);
	json_decref(obj);
	free(todo);
}

#endif
