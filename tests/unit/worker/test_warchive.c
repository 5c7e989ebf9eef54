/* test_warchive.c: the user's archive in worker processes. The real lama
 * binary ($LAMA_BIN) runs as sync and crypto workers under a real manager,
 * opening the archive of a user this process is logged in as (alice):
 * apply of received batches (what the main process reads back, refusals
 * that change nothing, channel merges against in-process merges over
 * random interleavings, SIGKILL in the middle, concurrent writes), merge,
 * chain_verify against lama_trust_verify, hostile inputs, and the
 * account's worker session itself. Peers are other users (bob) in other
 * folders of this process, whose objects are exported as a peer would
 * send them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "account/account.h"
#include "channel/channel.h"
#include "crypto/crypto.h"
#include "models/models.h"
#include "testutil.h"
#include "workertest.h"
#include "trust/trust.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"
#include "worker/ops.h"
#include "worker/warchive.h"
#include "worker/worker.h"

#define NOW 1700000000000.0

static char home_a[4096], home_b[4096], home_e[4096];
static lama_session *alice, *bob, *eve; /* eve: the expected merges */

/* ---- the loop and the manager ---- */

static uv_loop_t loop;
static lama_workers *m;

static void mgr_start(void)
{
	struct lama_worker_pool p[2] = { { "sync", 1, 0, 0 }, { "crypto", 1, 0, 0 } };

	uv_loop_init(&loop);
	assert_non_null(getenv("LAMA_BIN"));
	assert_int_equal(lama_workers_new(&m, &loop, getenv("LAMA_BIN"), p, 2), 0);
}

static void mgr_stop(void)
{
	lama_workers_close(m);
	m = NULL;
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static long worker_pid(size_t i)
{
	json_t *s = lama_workers_status(m);
	json_t *pid = json_object_get(json_array_get(s, i), "pid");
	long v = json_is_integer(pid) ? (long)json_integer_value(pid) : 0;

	json_decref(s);
	return v;
}

static int call(const char *kind, const char *op, struct lama_buf *in, unsigned flags,
		struct wt_res *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(lama_workers_submit(m, kind, op, in->data, in->len, flags, 0, wt_on_done, r,
					     NULL), 0);
	wt_run_until(&loop, &r->called, 60000);
	return r->rc;
}

/* ---- batches ---- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct item {
	uint8_t kind;
	lama_hash hash;
	uint8_t *p;
	uint32_t n;
};

struct batch {
	struct item *v;
	size_t n, cap;
};

static int batch_has(const struct batch *b, const lama_hash *h)
{
	for (size_t i = 0; i < b->n; i++)
		if (lama_hash_eq(&b->v[i].hash, h))
			return 1;
	return 0;
}

static void batch_add(struct batch *b, uint8_t kind, const lama_hash *h, const void *p, size_t n)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->v = realloc(b->v, b->cap * sizeof(*b->v));
		assert_non_null(b->v);
	}
	b->v[b->n].kind = kind;
	b->v[b->n].hash = *h;
	b->v[b->n].p = malloc(n ? n : 1);
	memcpy(b->v[b->n].p, p, n);
	b->v[b->n].n = (uint32_t)n;
	b->n++;
}

/* An object as its microdata, hashed. */
static void batch_obj(struct batch *b, lama_session *s, json_t *o, lama_hash *h)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	lama_hash x;

	if (lama_object_microdata(lama_session_recipes(s), o, &md))
		fail_msg("microdata: %s", lama_errmsg());
	lama_sha256(md.data, md.len, &x);
	batch_add(b, 1, &x, md.data, md.len);
	if (h)
		*h = x;
	lama_buf_release(&md);
	json_decref(o);
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].p);
	free(b->v);
	memset(b, 0, sizeof(*b));
}

static void batch_shuffle(struct batch *b, uint64_t *seed)
{
	for (size_t i = b->n; i > 1; i--) {
		size_t j = rnd(seed, (unsigned)i);
		struct item t = b->v[i - 1];

		b->v[i - 1] = b->v[j];
		b->v[j] = t;
	}
}

/* The handle of alice's archive, then the batch. */
static void apply_input(const struct batch *b, struct lama_buf *in)
{
	uint8_t h[4 + 1 + 32 + 4];

	*in = (struct lama_buf)LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	assert_int_equal(lama_warchive_handle(alice, in), 0);
	put32(h, (uint32_t)b->n);
	assert_int_equal(lama_buf_add(in, h, 4), 0);
	for (size_t i = 0; i < b->n; i++) {
		h[0] = b->v[i].kind;
		memcpy(h + 1, b->v[i].hash.b, 32);
		put32(h + 33, b->v[i].n);
		assert_int_equal(lama_buf_add(in, h, 37), 0);
		assert_int_equal(lama_buf_add(in, b->v[i].p, b->v[i].n), 0);
	}
}

static int apply(const struct batch *b, unsigned flags, struct wt_res *r)
{
	struct lama_buf in;
	int rc;

	apply_input(b, &in);
	rc = call("sync", "apply", &in, flags, r);
	lama_buf_release_wipe(&in);
	return rc;
}

/* How many of the batch alice's archive has. */
static size_t stored(const struct batch *b)
{
	size_t k = 0;

	for (size_t i = 0; i < b->n; i++) {
		int rc = lama_store_has(lama_session_store(alice), &b->v[i].hash);

		assert_true(rc >= 0);
		k += (size_t)rc;
	}
	return k;
}

/* Every item reads back from alice's archive as it was sent. */
static void assert_read_back(const struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct lama_buf got = LAMA_BUF_INIT(LAMA_BUF_MAX);

		if (lama_store_get(lama_session_store(alice), &b->v[i].hash, NULL, &got))
			fail_msg("item %zu: %s", i, lama_errmsg());
		assert_int_equal(got.len, b->v[i].n);
		assert_memory_equal(got.data, b->v[i].p, got.len);
		lama_buf_release(&got);
	}
}

/* ---- exporting what a peer would send ---- */

struct walk {
	lama_session *s;
	struct batch *b;
	lama_hash *q;
	size_t nq, cap;
	int up; /* also the referrers of every object (signatures, certificates) */
};

static void walk_push(struct walk *w, const lama_hash *h)
{
	if (batch_has(w->b, h))
		return;
	for (size_t i = 0; i < w->nq; i++)
		if (lama_hash_eq(&w->q[i], h))
			return;
	if (w->nq == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 256;
		w->q = realloc(w->q, w->cap * sizeof(*w->q));
	}
	w->q[w->nq++] = *h;
}

static int walk_ref(void *ctx, const char *itemprop, enum lama_ref_kind kind, const lama_hash *t)
{
	(void)itemprop;
	if (kind != LAMA_REF_BLOB)
		walk_push(ctx, t);
	return 0;
}

static int walk_src(void *ctx, const char *type, const lama_hash *src)
{
	(void)type;
	walk_push(ctx, src);
	return 0;
}

/* Everything reachable from start in s's archive: references down, and
 * with up the referrers too (version nodes of IDs always). */
static void export_from(lama_session *s, const lama_hash *start, size_t n, int up, struct batch *b)
{
	struct walk w = { .s = s, .b = b, .up = up };
	lama_archive *a = lama_session_archive(s);

	for (size_t i = 0; i < n; i++)
		walk_push(&w, &start[i]);
	while (w.nq) {
		lama_hash h = w.q[--w.nq];
		struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
		enum lama_store_kind kind;
		json_t *o = NULL;

		if (batch_has(b, &h))
			continue;
		if (lama_store_get(lama_session_store(s), &h, &kind, &md)) {
			lama_error_clear(); /* not in this archive (a BLOB, a missing one) */
			lama_buf_release(&md);
			continue;
		}
		batch_add(b, kind == LAMA_KIND_ID ? 2 : kind == LAMA_KIND_CLOB ? 3 : 1, &h, md.data,
			  md.len);
		lama_buf_release(&md);
		if (kind == LAMA_KIND_ID) {
			const char *types[] = { "VersionNodeEdge", "VersionNodeChange", "VersionNodeMerge" };

			for (int t = 0; t < 3; t++)
				assert_int_equal(lama_archive_referrers(a, &h, types[t], walk_src, &w), 0);
		}
		if (up && kind != LAMA_KIND_OBJECT)
			assert_int_equal(lama_archive_referrers(a, &h, NULL, walk_src, &w), 0);
		if (kind != LAMA_KIND_OBJECT)
			continue;
		assert_int_equal(lama_archive_get(a, &h, &o), 0);
		assert_int_equal(lama_object_foreach_ref(lama_session_recipes(s), o, walk_ref, &w), 0);
		if (up)
			assert_int_equal(lama_archive_referrers(a, &h, NULL, walk_src, &w), 0);
		json_decref(o);
	}
	free(w.q);
}

/* ---- setup ---- */

static lama_session *mkuser(char *home, const char *name)
{
	struct lama_kdf_params p = lama_kdf_min();
	lama_session *s;

	snprintf(home, 4096, "%s", tu_tmpdir());
	if (lama_account_register(home, name, "pw", 2, &p, &s) || lama_models_init(s))
		fail_msg("register %s: %s", name, lama_errmsg());
	return s;
}

static int setup(void **state)
{
	(void)state;
	alice = mkuser(home_a, "alice");
	bob = mkuser(home_b, "bob");
	eve = mkuser(home_e, "eve");
	mgr_start();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mgr_stop();
	lama_session_logout(alice);
	lama_session_logout(bob);
	lama_session_logout(eve);
	alice = bob = eve = NULL;
	tu_rmtree(home_a);
	tu_rmtree(home_b);
	tu_rmtree(home_e);
	return 0;
}

static lama_hash put_in(lama_session *s, json_t *o)
{
	struct lama_put_info info;

	assert_non_null(o);
	if (lama_archive_put(lama_session_archive(s), o, 0, &info))
		fail_msg("put: %s", lama_errmsg());
	json_decref(o);
	return info.hash;
}

static lama_hash name_obj(lama_session *s, const char *name)
{
	return put_in(s, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", name));
}

static const char *hexs(const lama_hash *h)
{
	static char buf[4][LAMA_HASH_HEX + 1];
	static int i;

	i = (i + 1) % 4;
	lama_hash_hex(h, buf[i]);
	return buf[i];
}

/* ---- tests ---- */

/* A valid batch: a CLOB, plain objects and a versioned Person with its
 * version node arrive; the main process reads them back byte for byte;
 * again, everything is known and nothing changes. */
static void test_apply_valid(void **state)
{
	struct batch b = { 0 };
	struct wt_res r;
	lama_hash start[2], id;
	uint64_t seed = 7;

	(void)state;
	start[0] = name_obj(bob, "bob's name");
	{
		struct lama_put_info info;
		json_t *p = json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email",
				      "dora@example.org", "name", "Dora");

		assert_int_equal(lama_archive_put(lama_session_archive(bob), p, 0, &info), 0);
		json_decref(p);
		start[1] = info.id_hash;
		id = info.id_hash;
	}
	export_from(bob, start, 2, 0, &b);
	{
		lama_hash ch;

		lama_sha256("héllo", strlen("héllo"), &ch);
		batch_add(&b, 3, &ch, "héllo", strlen("héllo"));
	}
	batch_shuffle(&b, &seed);
	assert_true(b.n >= 5); /* name, ID object, Person, its edge, the CLOB */
	assert_int_equal(stored(&b), 0);

	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	/* all new, and one ID with one head: the node alice now has */
	assert_true(r.n >= 2 * b.n + 4);
	for (size_t i = 0; i < b.n; i++) {
		assert_int_equal(r.out[i], 1);
		assert_int_equal(r.out[b.n + i], 0); /* nothing signed, no merge */
	}
	assert_int_equal(get32(r.out + 2 * b.n), 1);
	assert_memory_equal(r.out + 2 * b.n + 4, id.b, 32);
	assert_int_equal(get32(r.out + 2 * b.n + 36), 1);
	{
		lama_hash *heads;
		size_t nh;

		assert_int_equal(lama_archive_heads(lama_session_archive(alice), &id, &heads, &nh), 0);
		assert_int_equal(nh, 1);
		assert_memory_equal(r.out + 2 * b.n + 40, heads[0].b, 32);
		lama_free(heads);
	}
	assert_int_equal(r.n, 2 * b.n + 4 + 32 + 4 + 32);
	assert_int_equal(stored(&b), b.n);
	assert_read_back(&b);
	{
		lama_hash cur;
		json_t *o;

		assert_int_equal(lama_archive_current(lama_session_archive(alice), &id, &cur), 0);
		assert_int_equal(lama_archive_get(lama_session_archive(alice), &cur, &o), 0);
		assert_string_equal(json_string_value(json_object_get(o, "name")), "Dora");
		json_decref(o);
	}
	wt_res_free(&r);
	/* again: all known, the same heads */
	assert_int_equal(apply(&b, 0, &r), 0);
	for (size_t i = 0; i < b.n; i++)
		assert_int_equal(r.out[i], 0);
	assert_int_equal(r.n, 2 * b.n + 4 + 32 + 4 + 32);
	wt_res_free(&r);
	batch_free(&b);
}

/* One bad object refuses the whole batch, naming it; nothing is stored. */
static void refused(struct batch *b, size_t bad, int code, const char *why)
{
	size_t before = stored(b);
	struct wt_res r;
	char want[32];

	assert_int_equal(apply(b, 0, &r), code);
	snprintf(want, sizeof(want), "object %zu ", bad);
	if (!strstr(r.msg, want) || !strstr(r.msg, why))
		fail_msg("message \"%s\", wanted \"%s\" and \"%s\"", r.msg, want, why);
	wt_res_free(&r);
	assert_int_equal(stored(b), before);
}

/* Adds bob's Keys objects (referrers of his person) and what they name. */
static int keys_cb(void *ctx, const char *type, const lama_hash *src)
{
	struct batch *k = ctx;

	(void)type;
	batch_add(k, 1, src, "", 0);
	return 0;
}

static void add_keys(struct batch *b)
{
	struct batch k = { 0 };
	lama_hash hs[8];
	size_t n;

	assert_int_equal(lama_archive_referrers(lama_session_archive(bob), lama_session_person(bob),
						"Keys", keys_cb, &k), 0);
	assert_true(k.n >= 1 && k.n <= 8);
	for (n = 0; n < k.n; n++)
		hs[n] = k.v[n].hash;
	batch_free(&k);
	export_from(bob, hs, n, 0, b);
}

static void test_apply_refused(void **state)
{
	struct batch b = { 0 };
	lama_hash x, sig;
	struct lama_trust_signer me;
	uint64_t seed = 11;

	(void)state;
	for (int i = 0; i < 20; i++) {
		char n[32];

		snprintf(n, sizeof(n), "refused %d", i);
		x = name_obj(bob, n);
		export_from(bob, &x, 1, 0, &b);
	}
	assert_int_equal(stored(&b), 0);
	/* a wrong hash */
	b.v[13].hash.b[5] ^= 1;
	refused(&b, 13, LAMA_EINVAL, "is not the SHA-256 of its bytes");
	b.v[13].hash.b[5] ^= 1;
	/* not microdata (hash right) */
	b.v[4].p[3] ^= 0x20;
	lama_sha256(b.v[4].p, b.v[4].n, &b.v[4].hash);
	refused(&b, 4, LAMA_EINVAL, "does not parse");
	b.v[4].p[3] ^= 0x20;
	lama_sha256(b.v[4].p, b.v[4].n, &b.v[4].hash);
	/* an object sent as an ID object, an unknown kind, a CLOB not UTF-8 */
	b.v[19].kind = 2;
	refused(&b, 19, LAMA_EINVAL, "an object sent as an ID object");
	b.v[19].kind = 9;
	refused(&b, 19, LAMA_EINVAL, "unknown kind");
	b.v[19].kind = 1;
	batch_add(&b, 3, &x, "\xff\xfe", 2);
	lama_sha256("\xff\xfe", 2, &b.v[20].hash);
	refused(&b, 20, LAMA_EINVAL, "not UTF-8");
	free(b.v[20].p);
	b.n--;
	/* the same object twice */
	batch_add(&b, 1, &b.v[2].hash, b.v[2].p, b.v[2].n);
	refused(&b, 20, LAMA_EINVAL, "twice");
	free(b.v[20].p);
	b.n--;

	/* signatures: bob signs x; without bob's keys there is nothing to check
	 * it with; with them it is accepted; altered, refused */
	lama_trust_session_signer(bob, &me);
	assert_int_equal(lama_trust_sign(lama_session_archive(bob), &me, &x, &sig), 0);
	{
		struct batch s = { 0 };
		json_t *o;
		struct wt_res r;
		char *txt;
		size_t k;

		export_from(bob, &sig, 1, 0, &s);
		for (size_t i = 0; i < b.n; i++)
			if (!batch_has(&s, &b.v[i].hash))
				batch_add(&s, b.v[i].kind, &b.v[i].hash, b.v[i].p, b.v[i].n);
		batch_shuffle(&s, &seed);
		for (k = 0; k < s.n; k++) {
			if (lama_hash_eq(&s.v[k].hash, &sig))
				break;
		}
		refused(&s, k, LAMA_EINVAL, "no claimed key");
		/* the altered signature: one hex digit, re-serialized (hash right) */
		assert_int_equal(lama_archive_get(lama_session_archive(bob), &sig, &o), 0);
		txt = strdup(json_string_value(json_object_get(o, "signature")));
		txt[7] = txt[7] == '0' ? '1' : '0';
		json_object_set_new(o, "signature", json_string(txt));
		free(txt);
		{
			struct batch f = { 0 };
			lama_hash fh;

			for (size_t i = 0; i < s.n; i++)
				if (!lama_hash_eq(&s.v[i].hash, &sig))
					batch_add(&f, s.v[i].kind, &s.v[i].hash, s.v[i].p, s.v[i].n);
			size_t at = f.n;

			batch_obj(&f, bob, json_incref(o), &fh);
			add_keys(&f);
			refused(&f, at, LAMA_ECRYPTO, "verifies with no claimed key");
			batch_free(&f);
		}
		json_decref(o);
		add_keys(&s);
		if (apply(&s, 0, &r))
			fail_msg("apply with keys: %s", r.msg);
		wt_res_free(&r);
		assert_int_equal(stored(&s), s.n);
		batch_free(&s);
	}
	batch_free(&b);
}

/* ---- channels: merged in the worker as in-process ---- */

/* One round: n entries with distinct times, each appended on alice's side
 * or bob's (in random order), bob's exported in a shuffled batch and
 * applied by the worker; the head alice's main process then reads is the
 * one eve's archive gets by appending all n itself (a list of a given set
 * of entries has one head), and the worker reported it. */
static void channel_round(uint64_t *seed, int round)
{
	char cid[32];
	lama_hash chan, ca, cb, ce, head_a, head_e, *heads;
	uint64_t cnt_a, cnt_e;
	size_t n = 2 + rnd(seed, 9), nh;
	struct batch b = { 0 };
	struct wt_res r;

	snprintf(cid, sizeof(cid), "round-%d", round);
	assert_int_equal(lama_channel_create(lama_session_archive(alice), cid, NULL, &ca), 0);
	assert_int_equal(lama_channel_create(lama_session_archive(bob), cid, NULL, &cb), 0);
	assert_int_equal(lama_channel_create(lama_session_archive(eve), cid, NULL, &ce), 0);
	assert_true(lama_hash_eq(&ca, &cb) && lama_hash_eq(&ca, &ce));
	chan = ca;
	for (size_t i = 0; i < n; i++) {
		char name[64];
		double t = NOW + (double)rnd(seed, 100000) * 7 + (double)i; /* distinct */
		int side = (int)rnd(seed, 3); /* 0 alice, 1 bob, 2 both */
		lama_hash d;

		snprintf(name, sizeof(name), "r%d e%zu", round, i);
		if (side != 1) {
			d = name_obj(alice, name);
			assert_int_equal(lama_channel_append(lama_session_archive(alice), &chan, &d, &t, 1, NULL), 0);
		}
		if (side != 0) {
			d = name_obj(bob, name);
			assert_int_equal(lama_channel_append(lama_session_archive(bob), &chan, &d, &t, 1, NULL), 0);
		}
		d = name_obj(eve, name);
		assert_int_equal(lama_channel_append(lama_session_archive(eve), &chan, &d, &t, 1, NULL), 0);
	}
	export_from(bob, &chan, 1, 0, &b);
	batch_shuffle(&b, seed);
	if (apply(&b, 0, &r))
		fail_msg("round %d: %s", round, r.msg);
	/* the output's heads for the channel: one, alice's */
	{
		const uint8_t *o = r.out + 2 * b.n;
		uint32_t nid = get32(o), k;

		o += 4;
		for (k = 0; k < nid; k++) {
			uint32_t c = get32(o + 32);

			if (!memcmp(o, chan.b, 32)) {
				assert_int_equal(c, 1);
				assert_int_equal(lama_archive_heads(lama_session_archive(alice), &chan, &heads, &nh), 0);
				assert_int_equal(nh, 1);
				assert_memory_equal(o + 36, heads[0].b, 32);
				lama_free(heads);
				break;
			}
			o += 36 + 32 * (size_t)c;
		}
		assert_true(k < nid);
	}
	wt_res_free(&r);
	assert_int_equal(lama_channel_count(lama_session_archive(alice), &chan, &cnt_a, &head_a), 0);
	assert_int_equal(lama_channel_count(lama_session_archive(eve), &chan, &cnt_e, &head_e), 0);
	assert_int_equal(cnt_a, n);
	assert_int_equal(cnt_e, n);
	if (!lama_hash_eq(&head_a, &head_e))
		fail_msg("round %d: head %s, in-process %s", round, hexs(&head_a), hexs(&head_e));
	batch_free(&b);
}

static void test_apply_channels(void **state)
{
	uint64_t seed = 0x5eed;

	(void)state;
	for (int round = 0; round < 8; round++)
		channel_round(&seed, round);
}


/* Versions merged on the peer arrive with its merge node: alice ends on
 * that very node (eve, merging the same versions in-process, makes the
 * same), and a version after the merge follows it. */
static void test_apply_merge_nodes(void **state)
{
	lama_archive *ba = lama_session_archive(bob), *ea = lama_session_archive(eve);
	struct lama_put_info base, v1, v2, v3, e0, e1, e2;
	lama_hash mb, me, *heads, d1, d2;
	struct batch b = { 0 };
	struct wt_res r;
	size_t nh;
	uint64_t seed = 99;
	json_t *p;

	(void)state;
	d1 = name_obj(bob, "one");
	d2 = name_obj(bob, "two");
	name_obj(eve, "one");
	name_obj(eve, "two");
	p = json_pack("{s:s, s:s, s:s, s:s, s:[], s:[]}", "$type$", "Profile", "profileId",
		      "merged-on-peer", "personId", hexs(lama_session_person(bob)), "owner",
		      hexs(lama_session_person(bob)), "communicationEndpoint", "personDescription");
	assert_int_equal(lama_archive_put_version(ba, p, NULL, NOW, &base), 0);
	assert_int_equal(lama_archive_put_version(ea, p, NULL, NOW, &e0), 0);
	json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d1)));
	assert_int_equal(lama_archive_put_version(ba, p, &base.node, NOW + 1, &v1), 0);
	assert_int_equal(lama_archive_put_version(ea, p, &e0.node, NOW + 1, &e1), 0);
	json_array_set_new(json_object_get(p, "personDescription"), 0, json_string(hexs(&d2)));
	assert_int_equal(lama_archive_put_version(ba, p, &base.node, NOW + 2, &v2), 0);
	assert_int_equal(lama_archive_put_version(ea, p, &e0.node, NOW + 2, &e2), 0);
	assert_int_equal(lama_archive_merge(ba, &v1.id_hash, &mb), 0);
	assert_int_equal(lama_archive_merge(ea, &v1.id_hash, &me), 0);
	assert_true(lama_hash_eq(&mb, &me));
	export_from(bob, &v1.id_hash, 1, 0, &b);
	batch_shuffle(&b, &seed);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	assert_int_equal(lama_archive_heads(lama_session_archive(alice), &v1.id_hash, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	if (!lama_hash_eq(&heads[0], &mb))
		fail_msg("head %s, the peer's merge %s", hexs(&heads[0]), hexs(&mb));
	lama_free(heads);
	/* a version after the merge */
	json_array_clear(json_object_get(p, "personDescription"));
	assert_int_equal(lama_archive_put_version(ba, p, &mb, NOW + 3, &v3), 0);
	json_decref(p);
	batch_free(&b);
	export_from(bob, &v1.id_hash, 1, 0, &b);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	assert_int_equal(lama_archive_heads(lama_session_archive(alice), &v1.id_hash, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	assert_true(lama_hash_eq(&heads[0], &v3.node));
	lama_free(heads);
	/* a merge node that lies about its depth is refused */
	{
		struct batch f = { 0 };
		json_t *mn;
		size_t at;

		assert_int_equal(lama_archive_get(ba, &mb, &mn), 0);
		json_object_set_new(mn, "depth", json_real(7));
		export_from(bob, &v2.node, 1, 0, &f);
		at = f.n;
		batch_obj(&f, bob, mn, NULL);
		refused(&f, at, LAMA_EINVAL, "merge of impossible depth");
		batch_free(&f);
		assert_int_equal(lama_archive_heads(lama_session_archive(alice), &v1.id_hash, &heads, &nh), 0);
		assert_int_equal(nh, 1);
		assert_true(lama_hash_eq(&heads[0], &v3.node));
		lama_free(heads);
	}
	batch_free(&b);
}

/* ---- merge ---- */

/* Concurrent Profile versions (descriptions as add/remove sets, a rule of
 * the models) made in alice's archive, merged by the worker: the node is
 * the one eve's archive makes merging the same versions in-process. */
static void test_merge_op(void **state)
{
	lama_session *ss[2] = { alice, eve };
	lama_hash node[2], id = { { 0 } }, d1 = { { 0 } }, d2 = { { 0 } };
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct wt_res r;
	uint8_t cnt[4];

	(void)state;
	for (int k = 0; k < 2; k++) {
		lama_archive *a = lama_session_archive(ss[k]);
		struct lama_put_info base, v1, v2;
		json_t *p;

		d1 = name_obj(ss[k], "first");
		d2 = name_obj(ss[k], "second");
		p = json_pack("{s:s, s:s, s:s, s:s, s:[], s:[]}", "$type$", "Profile", "profileId",
			      "merge-test", "personId", hexs(lama_session_person(bob)), "owner",
			      hexs(lama_session_person(bob)), "communicationEndpoint", "personDescription");
		assert_int_equal(lama_archive_put_version(a, p, NULL, NOW, &base), 0);
		json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d1)));
		assert_int_equal(lama_archive_put_version(a, p, &base.node, NOW + 1, &v1), 0);
		json_array_clear(json_object_get(p, "personDescription"));
		json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d2)));
		assert_int_equal(lama_archive_put_version(a, p, &base.node, NOW + 2, &v2), 0);
		json_decref(p);
		id = v1.id_hash;
		if (k == 1)
			assert_int_equal(lama_archive_merge(a, &id, &node[1]), 0);
	}
	assert_int_equal(lama_warchive_handle(alice, &in), 0);
	put32(cnt, 2);
	assert_int_equal(lama_buf_add(&in, cnt, 4), 0);
	assert_int_equal(lama_buf_add(&in, id.b, 32), 0);
	memset(cnt, 0x42, 4); /* and an ID nobody has: no heads */
	assert_int_equal(lama_buf_add(&in, cnt, 4), 0);
	assert_int_equal(lama_buf_add(&in, id.b, 28), 0);
	if (call("sync", "merge", &in, 0, &r))
		fail_msg("merge: %s", r.msg);
	assert_int_equal(r.n, 4 + 36 + 32 + 36);
	assert_int_equal(get32(r.out), 2);
	assert_memory_equal(r.out + 4, id.b, 32);
	assert_int_equal(get32(r.out + 36), 1);
	memcpy(node[0].b, r.out + 40, 32);
	assert_int_equal(get32(r.out + 72 + 32), 0);
	if (!lama_hash_eq(&node[0], &node[1]))
		fail_msg("worker merged to %s, in-process to %s", hexs(&node[0]), hexs(&node[1]));
	{
		lama_hash cur;
		json_t *o;

		/* both descriptions stayed: the set rule ran in the worker */
		assert_int_equal(lama_archive_current(lama_session_archive(alice), &id, &cur), 0);
		assert_int_equal(lama_archive_get(lama_session_archive(alice), &cur, &o), 0);
		assert_int_equal(json_array_size(json_object_get(o, "personDescription")), 2);
		json_decref(o);
	}
	wt_res_free(&r);
	lama_buf_release_wipe(&in);
	{
		/* heads naming nodes the archive lacks: a failure, not "no versions" */
		lama_hash gid, gone[2];

		memset(gid.b, 0x77, 32);
		memset(gone[0].b, 0x78, 32);
		memset(gone[1].b, 0x79, 32);
		assert_int_equal(lama_store_heads_set(lama_session_store(alice), &gid, gone, 2), 0);
		in = (struct lama_buf)LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
		assert_int_equal(lama_warchive_handle(alice, &in), 0);
		put32(cnt, 1);
		assert_int_equal(lama_buf_add(&in, cnt, 4), 0);
		assert_int_equal(lama_buf_add(&in, gid.b, 32), 0);
		assert_int_equal(call("sync", "merge", &in, 0, &r), LAMA_ENOTFOUND);
		wt_res_free(&r);
		lama_buf_release_wipe(&in);
		assert_int_equal(lama_store_heads_set(lama_session_store(alice), &gid, gone, 0), 0);
	}
}

/* ---- killed, concurrent ---- */

static void big_batch(struct batch *b, int n, const char *tag)
{
	for (int i = 0; i < n; i++) {
		char name[64];
		lama_hash h;

		snprintf(name, sizeof(name), "%s %d", tag, i);
		batch_obj(b, bob, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", name), &h);
	}
}

/* SIGKILL of the worker in the middle of a big apply: alice's archive has
 * all of the batch or none of it, never a part; retried (idempotent), it
 * is applied once. */
static void test_apply_killed(void **state)
{
	struct batch b = { 0 };
	struct lama_buf in;
	struct wt_res r;
	long pid;
	size_t k;

	(void)state;
	big_batch(&b, 4096, "killed");
	apply_input(&b, &in);
	for (int attempt = 0; attempt < 2; attempt++) {
		unsigned flags = attempt ? LAMA_TASK_IDEMPOTENT : 0;

		while (!(pid = worker_pid(0)))
			uv_run(&loop, UV_RUN_ONCE);
		memset(&r, 0, sizeof(r));
		assert_int_equal(lama_workers_submit(m, "sync", "apply", in.data, in.len, flags, 0,
						     wt_on_done, &r, NULL), 0);
		/* let it start: the input is sent and being checked */
		for (int i = 0; i < 10; i++) {
			uv_run(&loop, UV_RUN_NOWAIT);
			usleep(5000);
		}
		assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
		wt_run_until(&loop, &r.called, 60000);
		k = stored(&b);
		assert_true(k == 0 || k == b.n); /* atomic */
		if (!attempt) {
			assert_int_equal(r.rc, LAMA_EIO);
			assert_non_null(strstr(r.msg, "signal 9"));
			assert_int_equal(k, 0);
		} else {
			if (r.rc)
				fail_msg("retried apply: %s", r.msg);
			assert_int_equal(k, b.n);
			/* applied once: every object new in the run that stored it */
			for (size_t i = 0; i < b.n; i++)
				assert_int_equal(r.out[i], 1);
		}
		wt_res_free(&r);
	}
	assert_read_back(&b);
	{
		/* the same batch, already known, and a fresh one: how long an
		 * apply of this size takes (the kill above must land inside) */
		struct batch b2 = { 0 };
		uint64_t t0;

		big_batch(&b2, 4096, "timed");
		t0 = uv_hrtime();
		assert_int_equal(apply(&b2, 0, &r), 0);
		fprintf(stderr, "# apply of %zu objects: %.0f ms\n", b2.n, (double)(uv_hrtime() - t0) / 1e6);
		wt_res_free(&r);
		batch_free(&b2);
	}
	lama_buf_release_wipe(&in);
	batch_free(&b);
}

/* The main process writes while the worker applies a big batch: no
 * "busy" surfaces on either side and both land. */
static void test_apply_concurrent(void **state)
{
	struct batch b = { 0 };
	struct lama_buf in;
	struct wt_res r;
	lama_hash mine[400];
	int n = 0, during = 0;

	(void)state;
	big_batch(&b, 3000, "concurrent");
	apply_input(&b, &in);
	memset(&r, 0, sizeof(r));
	assert_int_equal(lama_workers_submit(m, "sync", "apply", in.data, in.len, 0, 0, wt_on_done, &r,
					     NULL), 0);
	while ((!r.called || n < 50) && n < 400) {
		char name[64];

		snprintf(name, sizeof(name), "main %d", n);
		during += !r.called;
		mine[n] = name_obj(alice, name); /* fails the test on LAMA_EBUSY */
		n++;
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	wt_run_until(&loop, &r.called, 60000);
	if (r.rc)
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	assert_true(during > 1); /* the main process wrote while the task ran */
	assert_int_equal(stored(&b), b.n);
	for (int i = 0; i < n; i++)
		assert_int_equal(lama_store_has(lama_session_store(alice), &mine[i]), 1);
	lama_buf_release_wipe(&in);
	batch_free(&b);
}

/* ---- chain_verify ---- */

struct ident {
	lama_hash person, profile;
	uint8_t pk[LAMA_SIGN_PK_BYTES], sk[LAMA_SIGN_SK_BYTES];
	struct lama_trust_signer s;
};

/* A person with a Profile holding their signing key (as tests/unit/trust
 * makes them), in s's archive. */
static void mk_ident(lama_session *s, struct ident *id, const char *email)
{
	struct lama_put_info info;
	json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", email);
	char khex[65];
	lama_hash k;

	assert_int_equal(lama_sign_keypair(id->pk, id->sk), 0);
	assert_int_equal(lama_archive_put(lama_session_archive(s), p, 0, &info), 0);
	json_decref(p);
	id->person = info.id_hash;
	lama_hex_encode(id->pk, 32, khex);
	k = put_in(s, json_pack("{s:s, s:s}", "$type$", "SignKey", "key", khex));
	id->profile = put_in(s, json_pack("{s:s, s:s, s:s, s:s, s:[], s:[s]}", "$type$", "Profile",
					  "profileId", "default", "personId", hexs(&id->person),
					  "owner", hexs(&id->person), "communicationEndpoint",
					  "personDescription", hexs(&k)));
	lama_trust_sk_signer(&id->person, id->sk, &id->s);
}

static int flip_sign(void *ctx, const void *msg, size_t n, uint8_t sig[LAMA_SIG_BYTES])
{
	lama_sign(sig, msg, n, ctx);
	sig[10] ^= 0x10;
	return 0;
}

static void test_chain_verify(void **state)
{
	struct ident R, A, B, C, D, F;
	lama_archive *ba = lama_session_archive(bob), *aa = lama_session_archive(alice);
	struct lama_trust_validity past = { NOW - 2000, NOW - 1000 };
	struct lama_trust_root root = { 0 };
	struct lama_trust_signer flip;
	lama_hash c[7], x, start[7];
	uint8_t what[7] = { 1, 1, 1, 1, 1, 1, 2 };
	enum lama_trust_reason want[7] = { LAMA_TRUST_VALID, LAMA_TRUST_VALID, LAMA_TRUST_EXPIRED,
					   LAMA_TRUST_REVOKED, LAMA_TRUST_FORGED, LAMA_TRUST_VALID,
					   LAMA_TRUST_VALID };
	struct batch b = { 0 };
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct wt_res r;
	uint8_t tmp[8];

	(void)state;
	mk_ident(bob, &R, "root@example.org");
	mk_ident(bob, &A, "a@example.org");
	mk_ident(bob, &B, "b@example.org");
	mk_ident(bob, &C, "c@example.org");
	mk_ident(bob, &D, "d@example.org");
	x = name_obj(bob, "vouched for");
	assert_int_equal(lama_trust_grant_right(ba, &R.s, &A.person, LAMA_TRUST_RIGHT_EVERYBODY, NULL, &c[0]), 0);
	assert_int_equal(lama_trust_certify_keys(ba, &R.s, &A.profile, NULL, &c[5]), 0);
	assert_int_equal(lama_trust_certify_keys(ba, &A.s, &B.profile, NULL, &c[1]), 0);
	assert_int_equal(lama_trust_certify_keys(ba, &A.s, &C.profile, &past, &c[2]), 0);
	assert_int_equal(lama_trust_certify_keys(ba, &A.s, &D.profile, NULL, &c[3]), 0);
	assert_int_equal(lama_trust_revoke(ba, &A.s, &c[3], NOW - 10, "lost", NULL), 0);
	assert_int_equal(lama_trust_affirm(ba, &B.s, &x, NULL, NULL), 0);
	c[6] = x;
	/* bob's archive, as a peer sends it, through the worker's apply */
	start[0] = R.person, start[1] = A.person, start[2] = B.person, start[3] = C.person;
	start[4] = D.person, start[5] = x, start[6] = c[3];
	export_from(bob, start, 7, 1, &b);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	/* a forged certificate written by the main process itself */
	mk_ident(alice, &F, "f@example.org");
	flip = A.s;
	flip.sign = flip_sign;
	assert_int_equal(lama_trust_certify_keys(aa, &flip, &F.profile, NULL, &c[4]), 0);

	root.person = R.person;
	root.nkeys = 1;
	memcpy(root.keys[0], R.pk, 32);
	assert_int_equal(lama_warchive_handle(alice, &in), 0);
	assert_int_equal(lama_buf_add(&in, R.person.b, 32), 0);
	put32(tmp, 1);
	assert_int_equal(lama_buf_add(&in, tmp, 4), 0);
	assert_int_equal(lama_buf_add(&in, R.pk, 32), 0);
	put32(tmp, (uint32_t)((uint64_t)NOW >> 32));
	put32(tmp + 4, (uint32_t)(uint64_t)NOW);
	assert_int_equal(lama_buf_add(&in, tmp, 8), 0);
	put32(tmp, 7);
	assert_int_equal(lama_buf_add(&in, tmp, 4), 0);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(lama_buf_add(&in, &what[i], 1), 0);
		assert_int_equal(lama_buf_add(&in, c[i].b, 32), 0);
	}
	if (call("crypto", "chain_verify", &in, 0, &r))
		fail_msg("chain_verify: %s", r.msg);
	{
		const uint8_t *o = r.out, *end = r.out + r.n;

		for (int i = 0; i < 7; i++) {
			struct lama_trust_result t;

			assert_true(o + 35 <= end);
			if (what[i] == 1)
				assert_int_equal(lama_trust_verify(aa, &root, NOW, &c[i], &t), 0);
			else
				assert_int_equal(lama_trust_affirmed(aa, &root, NOW, &c[i], &t), 0);
			if (o[0] != want[i] || t.reason != want[i])
				fail_msg("item %d: worker %u (%.*s), in-process %u (%s), wanted %u", i,
					 o[0], o[34], (const char *)o + 35, t.reason, t.message, want[i]);
			assert_memory_equal(o + 2, (t.reason ? &t.link : &t.issuer)->b, 32);
			assert_int_equal(o[34], strnlen(t.message, 255));
			assert_memory_equal(o + 35, t.message, o[34]);
			if (i != 4) { /* and as bob's archive has it */
				struct lama_trust_result tb;

				if (what[i] == 1)
					assert_int_equal(lama_trust_verify(ba, &root, NOW, &c[i], &tb), 0);
				else
					assert_int_equal(lama_trust_affirmed(ba, &root, NOW, &c[i], &tb), 0);
				assert_int_equal(tb.reason, want[i]);
			}
			o += 35 + o[34];
		}
		assert_true(o == end);
	}
	wt_res_free(&r);
	/* hostile: no keys, too many, a bad check, a time past any date */
	{
		size_t h = in.len - (7 * 33 + 4 + 8 + 32 + 4 + 32);

		in.data[h + 35] = 5; /* 5 root keys */
		assert_int_equal(call("crypto", "chain_verify", &in, 0, &r), LAMA_EINVAL);
		wt_res_free(&r);
		in.data[h + 35] = 1;
		in.data[in.len - 33] = 3;
		assert_int_equal(call("crypto", "chain_verify", &in, 0, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "item 6"));
		wt_res_free(&r);
		in.data[in.len - 33] = 2;
		in.len -= 1;
		assert_int_equal(call("crypto", "chain_verify", &in, 0, &r), LAMA_EINVAL);
		wt_res_free(&r);
	}
	lama_buf_release_wipe(&in);
	batch_free(&b);
}

/* ---- hostile inputs, wrong keys ---- */

static void test_hostile(void **state)
{
	struct batch b = { 0 };
	struct lama_buf in;
	struct wt_res r;
	size_t hl;

	(void)state;
	big_batch(&b, 3, "hostile");
	apply_input(&b, &in);
	hl = 4 + strlen(lama_session_dir(alice)) + 64;
	/* cut anywhere: refused, nothing stored */
	for (size_t cut = 0; cut < in.len; cut += 1 + cut / 3) {
		struct lama_buf t = in;

		t.len = cut;
		assert_int_equal(call("sync", "apply", &t, 0, &r), LAMA_EINVAL);
		wt_res_free(&r);
	}
	assert_int_equal(stored(&b), 0);
	/* a count too big for the bytes, and past the batch limit */
	put32((uint8_t *)in.data + hl, 1000);
	assert_int_equal(call("sync", "apply", &in, 0, &r), LAMA_EINVAL);
	assert_non_null(strstr(r.msg, "do not fit"));
	wt_res_free(&r);
	put32((uint8_t *)in.data + hl, 70000);
	assert_int_equal(call("sync", "apply", &in, 0, &r), LAMA_ELIMIT);
	wt_res_free(&r);
	put32((uint8_t *)in.data + hl, 4097); /* apply's own bound */
	assert_int_equal(call("sync", "apply", &in, 0, &r), LAMA_ELIMIT);
	wt_res_free(&r);
	put32((uint8_t *)in.data + hl, 3);
	/* a length past the end */
	put32((uint8_t *)in.data + hl + 4 + 33, 0x7fffffff);
	assert_int_equal(call("sync", "apply", &in, 0, &r), LAMA_EINVAL);
	wt_res_free(&r);
	put32((uint8_t *)in.data + hl + 4 + 33, b.v[0].n);
	/* wrong keys: a clear error, no secret in it, and nothing stored */
	in.data[4 + strlen(lama_session_dir(alice)) + 3] ^= 1;
	assert_int_equal(call("sync", "apply", &in, 0, &r), LAMA_EAUTH);
	wt_res_free(&r);
	{
		/* the input is checked whole before the archive is opened: a
		 * malformed batch under wrong keys is malformed */
		struct lama_buf t = in;

		t.len--;
		assert_int_equal(call("sync", "apply", &t, 0, &r), LAMA_EINVAL);
		wt_res_free(&r);
	}
	in.data[4 + strlen(lama_session_dir(alice)) + 3] ^= 1;
	assert_int_equal(stored(&b), 0);
	/* a folder with no archive, an empty one, a NUL in it */
	{
		struct lama_buf t = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
		uint8_t z[4 + 64 + 4] = { 0 };

		put32(z, 0);
		assert_int_equal(lama_buf_add(&t, z, sizeof(z)), 0);
		assert_int_equal(call("sync", "merge", &t, 0, &r), LAMA_EINVAL);
		wt_res_free(&r);
		lama_buf_truncate(&t, 0);
		put32(z, 4);
		assert_int_equal(lama_buf_add(&t, z, 4), 0);
		assert_int_equal(lama_buf_add(&t, "/nox", 4), 0);
		assert_int_equal(lama_buf_add(&t, z + 4, 64 + 4), 0);
		assert_int_equal(call("sync", "merge", &t, 0, &r), LAMA_ENOTFOUND);
		wt_res_free(&r);
		t.data[6] = 0;
		assert_int_equal(call("sync", "merge", &t, 0, &r), LAMA_EINVAL);
		wt_res_free(&r);
		lama_buf_release(&t);
	}
	/* and right again afterwards */
	if (call("sync", "apply", &in, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	assert_int_equal(stored(&b), b.n);
	lama_buf_release_wipe(&in);
	batch_free(&b);
}

/* ---- the account's worker session ---- */

/* The keys open the archive with no user lock and no keychain; the user
 * can be erased after logout while a worker still has it open, and the
 * worker notices the archive is gone. */
static void test_worker_session(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	uint8_t keys[LAMA_WORKER_KEYS_BYTES], sig[LAMA_SIG_BYTES], k2[LAMA_KEY_BYTES];
	char home[4096], dir[4096];
	lama_session *s, *w;
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct wt_res r;
	uint8_t z[4] = { 0 };

	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	assert_int_equal(lama_account_register(home, "carl", "pw", 2, &p, &s), 0);
	assert_int_equal(lama_models_init(s), 0);
	snprintf(dir, sizeof(dir), "%s", lama_session_dir(s));
	assert_int_equal(lama_account_worker_keys(s, keys), 0);
	assert_int_equal(lama_account_worker_open(dir, keys, &w), 0);
	assert_true(lama_hash_eq(lama_session_person(w), lama_session_person(s)));
	assert_int_equal(lama_models_rules(w), 0);
	assert_int_equal(lama_session_sign(w, 0, "x", 1, sig), LAMA_EINVAL);
	assert_int_equal(lama_session_subkey(w, 1, "lamasrch", k2), LAMA_EINVAL);
	assert_int_equal(lama_account_worker_keys(w, keys), LAMA_EINVAL);
	lama_session_logout(w);
	keys[0] ^= 1;
	assert_int_equal(lama_account_worker_open(dir, keys, &w), LAMA_EAUTH);
	assert_null(w);
	assert_int_equal(lama_account_worker_open("/nonexistent", keys, &w), LAMA_ENOTFOUND);
	/* the worker opens carl's archive and keeps it */
	assert_int_equal(lama_warchive_handle(s, &in), 0);
	assert_int_equal(lama_buf_add(&in, z, 4), 0);
	assert_int_equal(call("sync", "merge", &in, 0, &r), 0);
	wt_res_free(&r);
	lama_session_logout(s);
	assert_int_equal(lama_account_erase(home, "carl", "pw", 2), 0);
	assert_int_equal(call("sync", "merge", &in, 0, &r), LAMA_ENOTFOUND);
	wt_res_free(&r);
	lama_buf_release_wipe(&in);
	lama_wipe(keys, sizeof(keys));
	tu_rmtree(home);
}

/* ---- what a peer must not be able to do ---- */

static json_t *sig_obj(const lama_hash *issuer, const lama_hash *data, const uint8_t sk[64])
{
	char dh[65], sh[129];
	uint8_t sig[64];

	lama_hash_hex(data, dh);
	lama_sign(sig, dh, 64, sk);
	lama_hex_encode(sig, 64, sh);
	return json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Signature", "issuer", hexs(issuer), "data",
			 dh, "signature", sh);
}

static json_t *keys_obj(const lama_hash *owner, const uint8_t pk[32])
{
	char khex[65];

	lama_hex_encode(pk, 32, khex);
	return json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Keys", "publicKey", khex, "owner",
			 hexs(owner), "publicSignKey", khex);
}

/* The check byte of item i in apply's output. */
static uint8_t check_of(const struct wt_res *r, const struct batch *b, size_t i)
{
	assert_true(r->n >= 2 * b->n);
	return r->out[b->n + i];
}

/* An object's bytes sent as a CLOB first would take its hash for good:
 * refused; and where an archive holds a hash as another kind already, the
 * object is refused, not taken as known. */
static void test_clob_squat(void **state)
{
	struct batch c = { 0 }, o = { 0 }, o2 = { 0 };
	struct wt_res r;
	lama_hash h, h2;
	json_t *got = NULL;

	(void)state;
	batch_obj(&o, bob, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", "squatted"), &h);
	batch_add(&c, 3, &h, o.v[0].p, o.v[0].n);
	refused(&c, 0, LAMA_EINVAL, "an object sent as a CLOB");
	{
		struct batch i = { 0 }, ic = { 0 };
		json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", "squat@example.org");
		struct lama_put_info info;

		assert_int_equal(lama_archive_put(lama_session_archive(bob), p, 0, &info), 0);
		json_decref(p);
		export_from(bob, &info.id_hash, 1, 0, &i);
		for (size_t k = 0; k < i.n; k++)
			if (i.v[k].kind == 2)
				batch_add(&ic, 3, &i.v[k].hash, i.v[k].p, i.v[k].n);
		assert_int_equal(ic.n, 1);
		refused(&ic, 0, LAMA_EINVAL, "an ID object sent as a CLOB");
		batch_free(&i);
		batch_free(&ic);
	}
	/* a hash taken as a CLOB before (by an older lama) */
	assert_int_equal(lama_store_put(lama_session_store(alice), LAMA_KIND_CLOB, o.v[0].p, o.v[0].n,
					NULL, NULL), 0);
	refused(&o, 0, LAMA_EINVAL, "is stored as a CLOB, not as an object");
	/* an object not squatted arrives and reads back as one */
	batch_obj(&o2, bob, json_pack("{s:s, s:s}", "$type$", "PersonName", "name", "not squatted"), &h2);
	if (apply(&o2, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	assert_int_equal(lama_archive_get(lama_session_archive(alice), &h2, &got), 0);
	json_decref(got);
	batch_free(&c);
	batch_free(&o);
	batch_free(&o2);
}

struct genuine {
	lama_hash want;
	int seen;
};

static int genuine_cb(void *ctx, const char *type, const lama_hash *src)
{
	struct genuine *g = ctx;

	(void)type;
	g->seen |= lama_hash_eq(src, &g->want);
	return 0;
}

/* Floods of Keys naming dan from someone else: while the claimed keys are
 * read whole (200 of them), dan's genuine signatures verify (check 1) and a
 * forged one is refused; past what is read (3,200), a genuine signature
 * verifies when its key is among the 256 read (the same rows the worker
 * reads) and is undecided otherwise, never refused; a forged one is at
 * best undecided, never "verifies". */
static void flood_round(const lama_hash *dan, const uint8_t dsk[64], const uint8_t osk[64],
			int whole, const lama_hash *gk, int round)
{
	struct batch s = { 0 };
	struct wt_res r;
	struct genuine g = { *gk, 0 };
	int trunc = 0;

	assert_int_equal(lama_archive_referrers_max(lama_session_archive(alice), dan, "Keys", 256,
						    genuine_cb, &g, &trunc), 0);
	assert_int_equal(trunc, !whole);
	if (whole)
		assert_true(g.seen);
	for (int i = 0; i < 4; i++) {
		char n[48];
		lama_hash x;
		uint8_t c;

		snprintf(n, sizeof(n), "dan after flood %d.%d", round, i);
		x = name_obj(bob, n);
		export_from(bob, &x, 1, 0, &s);
		batch_obj(&s, bob, sig_obj(dan, &x, i < 3 ? dsk : osk), NULL);
		if (i == 3 && whole) {
			refused(&s, s.n - 1, LAMA_ECRYPTO, "verifies with no claimed key");
			batch_free(&s);
			continue;
		}
		if (apply(&s, 0, &r))
			fail_msg("signature %d after the flood: %s", i, r.msg);
		c = check_of(&r, &s, s.n - 1);
		if (i < 3)
			assert_int_equal(c, g.seen ? 1 : 2);
		else
			assert_int_equal(c, 2); /* forged: undecided, not verified */
		assert_int_equal(stored(&s), s.n);
		wt_res_free(&r);
		batch_free(&s);
	}
}

static void test_sig_flood(void **state)
{
	struct batch f = { 0 }, s = { 0 };
	struct wt_res r;
	struct lama_put_info info;
	uint8_t dpk[32], dsk[64], opk[32], osk[64];
	lama_hash dan, x, gk;
	json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", "dan@example.org");

	(void)state;
	assert_int_equal(lama_archive_put(lama_session_archive(bob), p, 0, &info), 0);
	json_decref(p);
	dan = info.id_hash;
	lama_sign_keypair(dpk, dsk);
	lama_sign_keypair(opk, osk);
	export_from(bob, &dan, 1, 0, &s);
	batch_obj(&s, bob, keys_obj(&dan, dpk), &gk);
	x = name_obj(bob, "dan signs");
	export_from(bob, &x, 1, 0, &s);
	batch_obj(&s, bob, sig_obj(&dan, &x, dsk), NULL);
	if (apply(&s, 0, &r))
		fail_msg("dan's key and signature: %s", r.msg);
	assert_int_equal(check_of(&r, &s, s.n - 1), 1);
	wt_res_free(&r);
	batch_free(&s);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < (round ? 3000 : 200); i++) {
			uint8_t pk[32], sk[64];

			lama_sign_keypair(pk, sk);
			batch_obj(&f, bob, keys_obj(&dan, pk), NULL);
		}
		if (apply(&f, 0, &r))
			fail_msg("flood: %s", r.msg);
		wt_res_free(&r);
		batch_free(&f);
		flood_round(&dan, dsk, osk, !round, &gk, round);
	}
}

/* A key counts for its issuer only if claimed for them: a Profile whose
 * personId names the issuer but whose owner is someone else claims
 * nothing; a Keys object owned by the issuer, or a Profile of theirs they
 * own, does (trusted or not is decided where trust is used). */
static void test_sig_claimed(void **state)
{
	struct batch b = { 0 };
	struct lama_put_info info;
	uint8_t pk[32], sk[64];
	char khex[65];
	lama_hash dan, x, k;
	json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", "dan2@example.org");
	struct wt_res r;
	size_t at;

	(void)state;
	assert_int_equal(lama_archive_put(lama_session_archive(bob), p, 0, &info), 0);
	json_decref(p);
	dan = info.id_hash;
	lama_sign_keypair(pk, sk);
	lama_hex_encode(pk, 32, khex);
	k = put_in(bob, json_pack("{s:s, s:s}", "$type$", "SignKey", "key", khex));
	x = name_obj(bob, "dan2 signs");
	export_from(bob, &dan, 1, 0, &b);
	export_from(bob, &k, 1, 0, &b);
	export_from(bob, &x, 1, 0, &b);
	/* bob's Profile about dan, with a key: not dan's claim */
	batch_obj(&b, bob, json_pack("{s:s, s:s, s:s, s:s, s:[], s:[s]}", "$type$", "Profile",
				     "profileId", "about-dan", "personId", hexs(&dan), "owner",
				     hexs(lama_session_person(bob)), "communicationEndpoint",
				     "personDescription", hexs(&k)), NULL);
	at = b.n;
	batch_obj(&b, bob, sig_obj(&dan, &x, sk), NULL);
	refused(&b, at, LAMA_EINVAL, "no claimed key");
	/* dan's own Profile with that key: claimed */
	batch_obj(&b, bob, json_pack("{s:s, s:s, s:s, s:s, s:[], s:[s]}", "$type$", "Profile",
				     "profileId", "dan", "personId", hexs(&dan), "owner", hexs(&dan),
				     "communicationEndpoint", "personDescription", hexs(&k)), NULL);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, at), 1);
	for (size_t i = 0; i < b.n; i++)
		if (i != at)
			assert_int_equal(check_of(&r, &b, i), 0);
	wt_res_free(&r);
	{
		/* claimed is not trusted: nobody certified dan's key */
		struct lama_trust_root root = { 0 };
		struct lama_trust_result t;
		uint8_t rsk[64];

		root.person = *lama_session_person(alice);
		root.nkeys = 1;
		assert_int_equal(lama_sign_keypair(root.keys[0], rsk), 0);
		assert_int_equal(lama_trust_affirmed(lama_session_archive(alice), &root, NOW, &x, &t), 0);
		assert_int_not_equal(t.reason, LAMA_TRUST_VALID);
	}
	batch_free(&b);
}

/* A merge node from a peer whose data is not the merge of its nodes (made
 * here by the rules) is no version: the heads end on the merge made here,
 * and the output says so. */
static void test_apply_merge_lying(void **state)
{
	lama_archive *ba = lama_session_archive(bob);
	struct lama_put_info base, v1, v2;
	lama_hash mb, d1, d2, lh, liar, *heads;
	struct batch b = { 0 }, f = { 0 };
	struct wt_res r;
	size_t nh, at;
	json_t *p, *mn;

	(void)state;
	d1 = name_obj(bob, "lie one");
	d2 = name_obj(bob, "lie two");
	lh = name_obj(bob, "the lie");
	p = json_pack("{s:s, s:s, s:s, s:s, s:[], s:[]}", "$type$", "Profile", "profileId",
		      "lying-merge", "personId", hexs(lama_session_person(bob)), "owner",
		      hexs(lama_session_person(bob)), "communicationEndpoint", "personDescription");
	assert_int_equal(lama_archive_put_version(ba, p, NULL, NOW, &base), 0);
	json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d1)));
	assert_int_equal(lama_archive_put_version(ba, p, &base.node, NOW + 1, &v1), 0);
	json_array_set_new(json_object_get(p, "personDescription"), 0, json_string(hexs(&d2)));
	assert_int_equal(lama_archive_put_version(ba, p, &base.node, NOW + 2, &v2), 0);
	assert_int_equal(lama_archive_merge(ba, &v1.id_hash, &mb), 0);
	/* the lie: the same nodes, depth and time, other data of the ID */
	json_array_set_new(json_object_get(p, "personDescription"), 0,
			   json_string(hexs(&lh)));
	export_from(bob, &v1.id_hash, 1, 0, &f);
	for (size_t i = 0; i < f.n; i++)
		if (!lama_hash_eq(&f.v[i].hash, &mb))
			batch_add(&b, f.v[i].kind, &f.v[i].hash, f.v[i].p, f.v[i].n);
	batch_free(&f);
	batch_obj(&b, bob, p, &lh);
	assert_int_equal(lama_archive_get(ba, &mb, &mn), 0);
	json_object_set_new(mn, "data", json_string(hexs(&lh)));
	at = b.n;
	batch_obj(&b, bob, mn, &liar);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, at), 4);
	wt_res_free(&r);
	assert_int_equal(lama_archive_heads(lama_session_archive(alice), &v1.id_hash, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	if (!lama_hash_eq(&heads[0], &mb))
		fail_msg("head %s, the honest merge %s, the lie %s", hexs(&heads[0]), hexs(&mb),
			 hexs(&liar));
	lama_free(heads);
	/* the honest node arriving later is the one made here */
	batch_free(&b);
	export_from(bob, &v1.id_hash, 1, 0, &b);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	for (size_t i = 0; i < b.n; i++)
		if (lama_hash_eq(&b.v[i].hash, &mb))
			assert_int_equal(check_of(&r, &b, i), 3);
	wt_res_free(&r);
	batch_free(&b);
}

/* The peer merged two versions that alice has with a third of her own:
 * the peer's merge replaces its two among the heads (as eve, merging the
 * same in-process, ends), which a merge of all three would not give. */
static void test_apply_merge_subset(void **state)
{
	lama_archive *ba = lama_session_archive(bob), *ea = lama_session_archive(eve),
		     *aa = lama_session_archive(alice);
	struct lama_put_info base, v1, v2, e0, e1, e2, a0, a4, e4;
	lama_hash mb, me, want, d1, d2, d3, *heads;
	struct batch b = { 0 };
	struct wt_res r;
	size_t nh;
	json_t *p, *p4;

	(void)state;
	d1 = name_obj(bob, "sub one");
	d2 = name_obj(bob, "sub two");
	name_obj(eve, "sub one");
	name_obj(eve, "sub two");
	d3 = name_obj(alice, "sub three");
	name_obj(eve, "sub three");
	p = json_pack("{s:s, s:s, s:s, s:s, s:[], s:[]}", "$type$", "Profile", "profileId",
		      "merge-subset", "personId", hexs(lama_session_person(bob)), "owner",
		      hexs(lama_session_person(bob)), "communicationEndpoint", "personDescription");
	p4 = json_deep_copy(p);
	json_array_append_new(json_object_get(p4, "personDescription"), json_string(hexs(&d3)));
	assert_int_equal(lama_archive_put_version(ba, p, NULL, NOW, &base), 0);
	assert_int_equal(lama_archive_put_version(ea, p, NULL, NOW, &e0), 0);
	assert_int_equal(lama_archive_put_version(aa, p, NULL, NOW, &a0), 0);
	assert_true(lama_hash_eq(&a0.node, &base.node));
	json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d1)));
	assert_int_equal(lama_archive_put_version(ba, p, &base.node, NOW + 1, &v1), 0);
	assert_int_equal(lama_archive_put_version(ea, p, &e0.node, NOW + 1, &e1), 0);
	json_array_set_new(json_object_get(p, "personDescription"), 0, json_string(hexs(&d2)));
	assert_int_equal(lama_archive_put_version(ba, p, &base.node, NOW + 2, &v2), 0);
	assert_int_equal(lama_archive_put_version(ea, p, &e0.node, NOW + 2, &e2), 0);
	assert_int_equal(lama_archive_merge(ba, &v1.id_hash, &mb), 0);
	assert_int_equal(lama_archive_merge(ea, &v1.id_hash, &me), 0);
	assert_true(lama_hash_eq(&mb, &me));
	/* alice's own version after the first, and eve's the same */
	assert_int_equal(lama_archive_put_version(aa, p4, &a0.node, NOW + 5, &a4), 0);
	assert_int_equal(lama_archive_put_version(ea, p4, &e0.node, NOW + 5, &e4), 0);
	assert_true(lama_hash_eq(&a4.node, &e4.node));
	assert_int_equal(lama_archive_merge(ea, &v1.id_hash, &want), 0);
	export_from(bob, &v1.id_hash, 1, 0, &b);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	for (size_t i = 0; i < b.n; i++)
		if (lama_hash_eq(&b.v[i].hash, &mb))
			assert_int_equal(check_of(&r, &b, i), 3);
	wt_res_free(&r);
	assert_int_equal(lama_archive_heads(aa, &v1.id_hash, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	if (!lama_hash_eq(&heads[0], &want))
		fail_msg("head %s, eve's %s", hexs(&heads[0]), hexs(&want));
	lama_free(heads);
	json_decref(p);
	json_decref(p4);
	batch_free(&b);
}

static int keys_cb_count(void *ctx, const char *type, const lama_hash *src)
{
	(void)type;
	(void)src;
	(*(size_t *)ctx)++;
	return 0;
}

/* A versioned object of a type the archive keeps no reverse maps for
 * (Leute), arriving without a version node: no reverse-map row per
 * contact, as lama_archive_put_version would store it. */
static void test_apply_unindexed(void **state)
{
	struct batch b = { 0 };
	struct wt_res r;
	lama_hash someone, other;
	size_t n = 0;

	(void)state;
	lama_sha256("someone", 7, &someone);
	lama_sha256("other", 5, &other);
	batch_obj(&b, bob, json_pack("{s:s, s:s, s:s, s:[s], s:[]}", "$type$", "Leute", "appId",
				     "one.leute", "me", hexs(&someone), "other", hexs(&other),
				     "group"), NULL);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	assert_int_equal(stored(&b), 1);
	assert_int_equal(lama_archive_referrers(lama_session_archive(alice), &other, NULL, keys_cb_count,
						&n), 0);
	assert_int_equal(n, 0);
	batch_free(&b);
}

/* Over 8 MiB in a batch of several: refused before anything is read. */
static void test_apply_bytes_cap(void **state)
{
	struct batch b = { 0 };
	struct wt_res r;
	size_t n = (size_t)1 << 20;
	char *txt = malloc(n);

	(void)state;
	assert_non_null(txt);
	memset(txt, 'a', n);
	for (int i = 0; i < 9; i++) {
		lama_hash h;

		txt[0] = (char)('a' + i);
		lama_sha256(txt, n, &h);
		batch_add(&b, 3, &h, txt, n);
	}
	assert_int_equal(apply(&b, 0, &r), LAMA_ELIMIT);
	assert_non_null(strstr(r.msg, "bytes"));
	wt_res_free(&r);
	assert_int_equal(stored(&b), 0);
	b.n = 8; /* 8 MiB exactly: applied */
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	wt_res_free(&r);
	b.n = 9;
	free(txt);
	batch_free(&b);
}

/* ---- allocation failures (the op run in this process) ---- */

/* Every allocation of apply failing in turn: an error, nothing stored,
 * nothing leaked (ASan), and then it succeeds. */
static void test_oom(void **state)
{
	struct batch b = { 0 };
	struct lama_buf in, out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	lama_hash x;
	unsigned long n;
	int rc = -1;

	(void)state;
	x = name_obj(bob, "oom");
	lama_channel_create(lama_session_archive(bob), "oom", NULL, &x);
	export_from(bob, &x, 1, 0, &b);
	apply_input(&b, &in);
	for (n = 1; n < 100000 && rc; n++) {
		lama_warchive_close(); /* the opening's allocations too */
		lama_mem_fail_after(n, 0);
		rc = lama_worker_ops_sync("apply", in.data, in.len, &out);
		lama_mem_fail_after(0, 0);
		lama_buf_release(&out);
		if (rc) {
			assert_int_equal(stored(&b), 0);
			lama_error_clear();
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(stored(&b), b.n);
	lama_warchive_close();
	lama_buf_release_wipe(&in);
	batch_free(&b);
}

/* ---- merge nodes: budget, heads, IDs ---- */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static json_t *merge_node(const lama_hash *a, const lama_hash *b, const lama_hash *data,
			  double depth, double t)
{
	return json_pack("{s:s, s:{s:[s,s]}, s:s, s:f, s:f}", "$type$", "VersionNodeMerge", "nodes",
			 "$set", hexs(a), hexs(b), "data", hexs(data), "depth", depth,
			 "creationTime", t);
}

static json_t *profile(lama_session *s, const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:[], s:[]}", "$type$", "Profile", "profileId", id,
			 "personId", hexs(lama_session_person(s)), "owner",
			 hexs(lama_session_person(s)), "communicationEndpoint",
			 "personDescription");
}

static int get_hash_field(const json_t *o, const char *f, lama_hash *h)
{
	const json_t *v = json_object_get(o, f);

	return json_is_string(v) ? lama_hash_parse(json_string_value(v), json_string_length(v), h)
				 : -1;
}

/* The heads of id in alice's archive are exactly want[0..n). */
static void assert_heads(const lama_hash *id, const lama_hash *want, size_t n)
{
	lama_hash *heads;
	size_t nh;

	assert_int_equal(lama_archive_heads(lama_session_archive(alice), id, &heads, &nh), 0);
	if (nh != n)
		fail_msg("%zu heads, wanted %zu", nh, n);
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		while (k < nh && !lama_hash_eq(&heads[k], &want[i]))
			k++;
		if (k == nh)
			fail_msg("head %zu (%s) is not among the heads", i, hexs(&want[i]));
	}
	lama_free(heads);
}

/* Node h is recorded in alice's history of id (any node type). */
static int is_recorded(const lama_hash *id, const lama_hash *h)
{
	const char *types[] = { "VersionNodeEdge", "VersionNodeChange", "VersionNodeMerge" };
	int k = 0;

	for (int t = 0; t < 3; t++) {
		int rc = lama_store_ref_has(lama_session_store(alice), id, types[t], h);

		assert_true(rc >= 0);
		k |= rc;
	}
	return k;
}

/* alice has A -> B -> C, heads {C}. A merge of A and B (both behind C) is
 * no merge made here: check 4, the heads stay {C}. A change after that
 * merge does not bring it into the history (check 4, its data stored as
 * an object of no version), nor does a merge of C with it. */
static void test_merge_behind(void **state)
{
	lama_archive *aa = lama_session_archive(alice);
	struct lama_put_info A, B, C;
	struct batch b = { 0 };
	struct wt_res r;
	lama_hash d1 = name_obj(alice, "c1"), d2 = name_obj(alice, "c2"), d3, mx, ch, mc;
	json_t *p = profile(alice, "behind"), *q, *cn;

	(void)state;
	assert_int_equal(lama_archive_put_version(aa, p, NULL, NOW, &A), 0);
	json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d1)));
	assert_int_equal(lama_archive_put_version(aa, p, &A.node, NOW + 1, &B), 0);
	json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d2)));
	assert_int_equal(lama_archive_put_version(aa, p, &B.node, NOW + 2, &C), 0);
	assert_heads(&A.id_hash, &C.node, 1);

	batch_obj(&b, alice, merge_node(&A.node, &B.node, &B.hash, 2, NOW + 1), &mx);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, 0), 4);
	wt_res_free(&r);
	assert_heads(&A.id_hash, &C.node, 1);
	assert_false(is_recorded(&A.id_hash, &mx));
	batch_free(&b);

	/* a change after the merge that is no version here */
	q = json_deep_copy(p);
	json_array_clear(json_object_get(q, "personDescription"));
	batch_obj(&b, alice, q, &d3);
	cn = json_pack("{s:s, s:s, s:s, s:f, s:f}", "$type$", "VersionNodeChange", "prev", hexs(&mx),
		       "data", hexs(&d3), "depth", 3.0, "creationTime", NOW + 3);
	batch_obj(&b, alice, cn, &ch);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, 1), 4);
	wt_res_free(&r);
	assert_int_equal(stored(&b), 2); /* both stored, as objects */
	assert_heads(&A.id_hash, &C.node, 1);
	assert_false(is_recorded(&A.id_hash, &ch));
	batch_free(&b);

	/* a merge naming a node that is not recorded here: no merge */
	batch_obj(&b, alice, merge_node(&C.node, &mx, &C.hash, 3, NOW + 4), &mc);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, 0), 4);
	wt_res_free(&r);
	assert_heads(&A.id_hash, &C.node, 1);
	assert_false(is_recorded(&A.id_hash, &mc));
	batch_free(&b);

	/* a node naming the ID hash itself gets a reverse-map row under the
	 * ID, as recorded nodes have: it still is no version, and a change
	 * after it is none either */
	cn = json_pack("{s:s, s:s, s:s, s:f, s:f}", "$type$", "VersionNodeChange", "prev",
		       hexs(&A.id_hash), "data", hexs(&C.hash), "depth", 3.0, "creationTime", NOW + 5);
	batch_obj(&b, alice, cn, &mx);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, 0), 4);
	wt_res_free(&r);
	batch_free(&b);
	q = json_deep_copy(p);
	json_array_append_new(json_object_get(q, "communicationEndpoint"), json_string(hexs(&d1)));
	batch_obj(&b, alice, q, &d3);
	cn = json_pack("{s:s, s:s, s:s, s:f, s:f}", "$type$", "VersionNodeChange", "prev", hexs(&mx),
		       "data", hexs(&d3), "depth", 4.0, "creationTime", NOW + 6);
	batch_obj(&b, alice, cn, &ch);
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &b, 1), 4);
	wt_res_free(&r);
	assert_heads(&A.id_hash, &C.node, 1);
	assert_false(is_recorded(&A.id_hash, &ch));
	batch_free(&b);
	json_decref(p);
}

#define BUDGET_HISTORY 1000

/* n versions of o, one after the other, in one transaction; *last the
 * last one. */
static void chain(json_t *o, const lama_hash *x, const lama_hash *y, int n,
		  struct lama_put_info *last)
{
	lama_archive *aa = lama_session_archive(alice);

	assert_int_equal(lama_store_begin(lama_session_store(alice)), 0);
	for (int i = 0; i < n; i++) {
		json_object_set_new(o, "communicationEndpoint", json_pack("[s]", hexs(i % 2 ? x : y)));
		assert_int_equal(lama_archive_put_version(aa, o, i ? &last->node : NULL, NOW + i, last), 0);
	}
	json_object_set_new(o, "communicationEndpoint", json_array());
	assert_int_equal(lama_store_commit(lama_session_store(alice)), 0);
}

/* 4,000 merge nodes naming the same two heads of a history of 1,000
 * versions: the batch stays within its budget (a bounded time under ASan) and the heads are the one merge of
 * the two. Past the budget, a merge node that alone is the merge made
 * here (check 3) is stored as an object only (check 4), its heads kept. */
static void test_merge_budget(void **state)
{
	lama_archive *aa = lama_session_archive(alice);
	lama_store *st = lama_session_store(alice);
	struct lama_put_info A, v1, v2, q1, q2a, q2b;
	struct batch b = { 0 }, one = { 0 };
	struct wt_res r;
	lama_hash d1 = name_obj(alice, "b1"), d2 = name_obj(alice, "b2"), made, mdata, *heads;
	json_t *p = profile(alice, "budget"), *q = profile(alice, "budget-2"), *mn, *md;
	size_t nh, at, n4 = 0;
	double t0, t1;

	(void)state;
	/* long histories: what apply asks of them must not grow with them */
	chain(p, &d1, &d2, BUDGET_HISTORY, &A);
	chain(q, &d1, &d2, BUDGET_HISTORY, &q1);
	json_array_append_new(json_object_get(p, "personDescription"), json_string(hexs(&d1)));
	assert_int_equal(lama_archive_put_version(aa, p, &A.node, NOW + 1e6, &v1), 0);
	json_array_set_new(json_object_get(p, "personDescription"), 0, json_string(hexs(&d2)));
	assert_int_equal(lama_archive_put_version(aa, p, &A.node, NOW + 1e6 + 1, &v2), 0);
	/* a second ID, two heads as deep: its merge sorts after the others */
	json_array_append_new(json_object_get(q, "personDescription"), json_string(hexs(&d1)));
	assert_int_equal(lama_archive_put_version(aa, q, &q1.node, NOW + 1e6, &q2a), 0);
	json_array_set_new(json_object_get(q, "personDescription"), 0, json_string(hexs(&d2)));
	assert_int_equal(lama_archive_put_version(aa, q, &q1.node, NOW + 1e6 + 1, &q2b), 0);
	/* the merge alice would make of the second ID, made and undone */
	assert_int_equal(lama_store_begin(st), 0);
	assert_int_equal(lama_archive_merge(aa, &q1.id_hash, &made), 0);
	assert_int_equal(lama_archive_get(aa, &made, &mn), 0);
	assert_int_equal(get_hash_field(mn, "data", &mdata), 0);
	assert_int_equal(lama_archive_get(aa, &mdata, &md), 0);
	lama_store_rollback(st);
	{
		lama_hash want[2] = { q2a.node, q2b.node };

		assert_heads(&q1.id_hash, want, 2);
	}

	for (int k = 0; k < 4000; k++)
		batch_obj(&b, alice, merge_node(&v1.node, &v2.node, &v1.hash, BUDGET_HISTORY + 1,
						NOW + 2e6 + k), NULL);
	batch_obj(&b, alice, json_incref(md), NULL);
	at = b.n;
	batch_obj(&b, alice, json_incref(mn), NULL);
	assert_true(lama_hash_eq(&b.v[at].hash, &made));
	t0 = now_s();
	if (apply(&b, 0, &r))
		fail_msg("apply: %s", r.msg);
	t1 = now_s();
	print_message("4,000 merge nodes of the same two heads: %.3f s\n", t1 - t0);
	assert_true(t1 - t0 < 5.0); /* before the fix: minutes */
	for (size_t i = 0; i < 4000; i++)
		n4 += check_of(&r, &b, i) == 4;
	assert_int_equal(n4, 4000); /* none is the merge made here (another time) */
	assert_int_equal(check_of(&r, &b, at), 4); /* past the budget */
	wt_res_free(&r);
	assert_int_equal(lama_archive_heads(aa, &A.id_hash, &heads, &nh), 0);
	assert_int_equal(nh, 1);
	{
		json_t *h = NULL;
		const json_t *set;

		assert_int_equal(lama_archive_get(aa, &heads[0], &h), 0);
		assert_string_equal(json_string_value(json_object_get(h, "$type$")), "VersionNodeMerge");
		set = json_object_get(json_object_get(h, "nodes"), "$set");
		assert_int_equal(json_array_size(set), 2);
		for (size_t i = 0; i < 2; i++) {
			lama_hash x;

			assert_int_equal(lama_hash_parse(json_string_value(json_array_get(set, i)),
							 LAMA_HASH_HEX, &x), 0);
			assert_true(lama_hash_eq(&x, &v1.node) || lama_hash_eq(&x, &v2.node));
		}
		json_decref(h);
	}
	lama_free(heads);
	{
		lama_hash want[2] = { q2a.node, q2b.node };

		assert_heads(&q1.id_hash, want, 2);
	}
	assert_false(is_recorded(&q1.id_hash, &made));

	/* alone, the same node is the merge made here */
	batch_obj(&one, alice, json_incref(md), NULL);
	batch_obj(&one, alice, json_incref(mn), NULL);
	if (apply(&one, 0, &r))
		fail_msg("apply: %s", r.msg);
	assert_int_equal(check_of(&r, &one, 1), 3);
	wt_res_free(&r);
	assert_heads(&q1.id_hash, &made, 1);
	json_decref(mn);
	json_decref(md);
	json_decref(p);
	json_decref(q);
	batch_free(&b);
	batch_free(&one);
}

/* The ID hash of an object is held as a CLOB (stored first by an older
 * lama): a change of that ID is refused, nothing stored, instead of being
 * recorded with an ID object that never reads back. */
static void test_id_squat(void **state)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	struct batch f = { 0 }, b = { 0 };
	struct lama_put_info info;
	lama_hash idh;
	size_t bad = 0;
	json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", "idsquat@example.org");

	(void)state;
	assert_int_equal(lama_archive_put(lama_session_archive(bob), p, 0, &info), 0);
	assert_int_equal(lama_object_id_microdata(lama_session_recipes(alice), p, &md), 0);
	lama_sha256(md.data, md.len, &idh);
	assert_true(lama_hash_eq(&idh, &info.id_hash));
	assert_int_equal(lama_store_put(lama_session_store(alice), LAMA_KIND_CLOB, md.data, md.len,
					NULL, NULL), 0);
	lama_buf_release(&md);
	json_decref(p);
	export_from(bob, &info.id_hash, 1, 0, &f);
	for (size_t i = 0; i < f.n; i++)
		if (f.v[i].kind != 2) {
			if (lama_hash_eq(&f.v[i].hash, &info.node))
				bad = b.n;
			batch_add(&b, f.v[i].kind, &f.v[i].hash, f.v[i].p, f.v[i].n);
		}
	assert_int_equal(b.n, 2);
	assert_int_equal(stored(&b), 0);
	refused(&b, bad, LAMA_EINVAL, "has an ID that is stored as a CLOB");
	assert_int_equal(stored(&b), 0);
	batch_free(&f);
	batch_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_session),
		cmocka_unit_test(test_apply_valid),
		cmocka_unit_test(test_apply_refused),
		cmocka_unit_test(test_apply_channels),
		cmocka_unit_test(test_apply_merge_nodes),
		cmocka_unit_test(test_merge_op),
		cmocka_unit_test(test_clob_squat),
		cmocka_unit_test(test_sig_flood),
		cmocka_unit_test(test_sig_claimed),
		cmocka_unit_test(test_apply_merge_lying),
		cmocka_unit_test(test_apply_merge_subset),
		cmocka_unit_test(test_merge_behind),
		cmocka_unit_test(test_merge_budget),
		cmocka_unit_test(test_id_squat),
		cmocka_unit_test(test_apply_bytes_cap),
		cmocka_unit_test(test_apply_unindexed),
		cmocka_unit_test(test_chain_verify),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_apply_concurrent),
		cmocka_unit_test(test_apply_killed),
		cmocka_unit_test(test_oom),
	};

	if (getenv("LAMA_TEST_FILTER")) /* one test by name, e.g. test_merge_budget */
		cmocka_set_test_filter(getenv("LAMA_TEST_FILTER"));

	if (lama_crypto_init())
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
