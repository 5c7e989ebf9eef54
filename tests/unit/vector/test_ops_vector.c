/* The index worker's vector ops, called as the worker calls them
 * (lama_worker_ops_vector): their binary formats, the index kept open
 * between tasks and reopened for another path or key, answers equal to
 * the library's, hostile inputs (every truncation, counts larger than the
 * bytes, bad dimensions, NaN, trailing bytes), and allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <unistd.h>

#include "testutil.h"
#include "crypto/crypto.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"
#include "vector/vector.h"
#include "worker/frame.h"
#include "worker/ops.h"

static char dir[4096], path[4200], path2[4200];
static uint8_t key[32], key2[32];

static int setup(void **state)
{
	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto init");
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/vectors.db", dir);
	snprintf(path2, sizeof(path2), "%s/other.db", dir);
	memset(key, 5, 32);
	memset(key2, 6, 32);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct lama_buf out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);

	/* the cached index closed: no leak at exit, the key wiped */
	assert_int_equal(lama_worker_ops_vector("vec_close", "", 0, &out), 0);
	lama_buf_release(&out);
	tu_rmtree(dir);
	return 0;
}

/* ---- building inputs ---- */

static void u8(struct lama_buf *b, uint8_t v)
{
	assert_int_equal(lama_buf_add(b, &v, 1), 0);
}

static void u32(struct lama_buf *b, uint32_t v)
{
	uint8_t p[4];

	lama_put_u32(p, v);
	assert_int_equal(lama_buf_add(b, p, 4), 0);
}

static void f32(struct lama_buf *b, float f)
{
	uint32_t w;

	memcpy(&w, &f, 4);
	u32(b, w);
}

static void name(struct lama_buf *b, const char *s)
{
	u8(b, (uint8_t)strlen(s));
	assert_int_equal(lama_buf_add(b, s, strlen(s)), 0);
}

static void target(struct lama_buf *b, const char *p, const uint8_t *k)
{
	u32(b, (uint32_t)strlen(p));
	assert_int_equal(lama_buf_add(b, p, strlen(p)), 0);
	assert_int_equal(lama_buf_add(b, k, 32), 0);
}

static lama_hash hid(unsigned n)
{
	lama_hash h;

	memset(&h, 0x11, sizeof(h));
	h.b[0] = (uint8_t)(n >> 8);
	h.b[1] = (uint8_t)n;
	return h;
}

static void item(struct lama_buf *b, unsigned id, const char *model, const char *topic,
		 const float *v, uint32_t dim)
{
	lama_hash h = hid(id);

	assert_int_equal(lama_buf_add(b, h.b, 32), 0);
	name(b, model);
	name(b, topic);
	u32(b, dim);
	for (uint32_t i = 0; i < dim; i++)
		f32(b, v[i]);
}

static int run(const char *op, const struct lama_buf *in, struct lama_buf *out)
{
	lama_buf_truncate(out, 0);
	return lama_worker_ops_vector(op, in->data ? in->data : "", in->len, out);
}

static uint64_t get64(const struct lama_buf *b, size_t at)
{
	assert_true(b->len >= at + 8);
	return lama_get_u64((const uint8_t *)b->data + at);
}

static uint32_t get32(const struct lama_buf *b, size_t at)
{
	assert_true(b->len >= at + 4);
	return lama_get_u32((const uint8_t *)b->data + at);
}

static uint64_t count(const char *p, const uint8_t *k, const char *model)
{
	struct lama_buf in = LAMA_BUF_INIT(1 << 20), out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	uint64_t n;

	target(&in, p, k);
	name(&in, model);
	if (run("vec_count", &in, &out))
		fail_msg("vec_count: %s", lama_errmsg());
	assert_int_equal(out.len, 12);
	n = get64(&out, 0);
	lama_buf_release(&in);
	lama_buf_release(&out);
	return n;
}

static void query_in(struct lama_buf *in, const char *model, const char *topic, uint32_t k,
		     const float *q, uint32_t dim)
{
	lama_buf_truncate(in, 0);
	target(in, path, key);
	name(in, model);
	name(in, topic ? topic : "");
	u32(in, k);
	u32(in, dim);
	for (uint32_t i = 0; i < dim; i++)
		f32(in, q[i]);
}

/* ---- the ops ---- */

static float vecs[200][24];

static void test_ops(void **state)
{
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_buf out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_vector_hit h[10];
	lama_vector *v;
	uint64_t s = 99;
	size_t n;

	(void)state;
	for (int i = 0; i < 200; i++)
		for (int j = 0; j < 24; j++)
			vecs[i][j] = (float)((double)(rnd_next(&s) >> 11) / 9007199254740992.0 - 0.5);
	/* put 200 in one batch, 150 of topic a, 50 of b */
	target(&in, path, key);
	u32(&in, 200);
	for (unsigned i = 0; i < 200; i++)
		item(&in, i, "minilm", i % 4 ? "topic-a" : "topic-b", vecs[i], 24);
	assert_int_equal(run("vec_put", &in, &out), 0);
	assert_int_equal(out.len, 8);
	assert_int_equal(get64(&out, 0), 200);
	assert_int_equal(count(path, key, "minilm"), 200);
	assert_int_equal(count(path, key, ""), 200);
	assert_int_equal(count(path, key, "nope"), 0);
	/* dim of the model in vec_count */
	lama_buf_truncate(&in, 0);
	target(&in, path, key);
	name(&in, "minilm");
	assert_int_equal(run("vec_count", &in, &out), 0);
	assert_int_equal(get32(&out, 8), 24);
	/* a query through the op against the library on the same file */
	query_in(&in, "minilm", "topic-a", 10, vecs[7], 24);
	assert_int_equal(run("vec_query", &in, &out), 0);
	assert_int_equal(get32(&out, 0), 10);
	assert_int_equal(out.len, 4 + 10 * 36);
	assert_int_equal(lama_vector_open_at(path, key, &v), 0);
	assert_int_equal(lama_vector_query(v, "minilm", vecs[7], 24, 10, "topic-a", h, &n), 0);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *o = (const uint8_t *)out.data + 4 + 36 * i;
		uint32_t w = lama_get_u32(o + 32);
		float f;

		memcpy(&f, &w, 4);
		assert_memory_equal(o, h[i].id.b, 32);
		assert_true(f == h[i].score);
	}
	assert_memory_equal(out.data + 4, hid(7).b, 32); /* itself first */
	/* written by another connection (another worker): the cached index
	 * sees it at its next task */
	{
		struct lama_vector_item it = { hid(500), "topic-a", "minilm", vecs[7], 24 };

		assert_int_equal(lama_vector_put(v, &it), 0);
	}
	assert_int_equal(count(path, key, "minilm"), 201);
	query_in(&in, "minilm", "topic-a", 2, vecs[7], 24);
	assert_int_equal(run("vec_query", &in, &out), 0);
	assert_int_equal(get32(&out, 0), 2);
	assert_memory_equal(out.data + 4, hid(7).b, 32);
	assert_memory_equal(out.data + 4 + 36, hid(500).b, 32);
	assert_int_equal(lama_vector_remove(v, (lama_hash[]){ hid(500) }, 1, NULL), 0);
	lama_vector_close(v);
	/* remove: 3 there, 1 not */
	lama_buf_truncate(&in, 0);
	target(&in, path, key);
	u32(&in, 4);
	for (unsigned i = 0; i < 4; i++) {
		lama_hash hh = hid(i == 3 ? 999 : i * 7);

		assert_int_equal(lama_buf_add(&in, hh.b, 32), 0);
	}
	assert_int_equal(run("vec_remove", &in, &out), 0);
	assert_int_equal(out.len, 4);
	assert_int_equal(get32(&out, 0), 3);
	assert_int_equal(count(path, key, ""), 197);
	query_in(&in, "minilm", NULL, 1, vecs[7], 24);
	assert_int_equal(run("vec_query", &in, &out), 0);
	assert_int_equal(get32(&out, 0), 1);
	assert_memory_not_equal(out.data + 4, hid(7).b, 32);
	/* the cached index: another key for the same file is refused
	 * (compared, not assumed), another path is another index */
	lama_buf_truncate(&in, 0);
	target(&in, path, key2);
	name(&in, "");
	assert_int_equal(run("vec_count", &in, &out), LAMA_ECRYPTO);
	assert_int_equal(count(path2, key2, ""), 0);
	assert_int_equal(count(path, key, ""), 197);
	/* vec_close forgets it: the file gone, the next task opens a new one */
	lama_buf_truncate(&in, 0);
	assert_int_equal(run("vec_close", &in, &out), 0);
	assert_int_equal(unlink(path), 0);
	unlink(path2);
	assert_int_equal(count(path, key, ""), 0);
	u8(&in, 1);
	assert_int_equal(run("vec_close", &in, &out), LAMA_EINVAL);
	assert_int_equal(run("vec_nothing", &in, &out), LAMA_ENOTFOUND);
	lama_buf_release(&in);
	lama_buf_release(&out);
}

/* Every prefix of a good input is refused and changes nothing; so are
 * counts larger than the bytes, and bad fields. */
static void test_hostile(void **state)
{
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_buf out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_buf cut = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	float x[4] = { 1, 2, 3, 4 };

	(void)state;
	target(&in, path, key);
	u32(&in, 2);
	item(&in, 1, "m", "t", x, 4);
	item(&in, 2, "m", "t", x, 4);
	for (size_t len = 0; len < in.len; len++) {
		int rc;

		lama_buf_truncate(&cut, 0);
		assert_int_equal(lama_buf_add(&cut, in.data, len), 0);
		rc = run("vec_put", &cut, &out);
		if (rc != LAMA_EINVAL)
			fail_msg("vec_put of %zu bytes: %d %s", len, rc, lama_errmsg());
	}
	/* one byte too many */
	lama_buf_truncate(&cut, 0);
	assert_int_equal(lama_buf_add(&cut, in.data, in.len), 0);
	u8(&cut, 0);
	assert_int_equal(run("vec_put", &cut, &out), LAMA_EINVAL);
	assert_int_equal(count(path, key, ""), 0);
	assert_int_equal(run("vec_put", &in, &out), 0);
	assert_int_equal(count(path, key, ""), 2);
	/* queries, every prefix */
	query_in(&in, "m", "t", 5, x, 4);
	for (size_t len = 0; len < in.len; len++) {
		lama_buf_truncate(&cut, 0);
		assert_int_equal(lama_buf_add(&cut, in.data, len), 0);
		assert_int_equal(run("vec_query", &cut, &out), LAMA_EINVAL);
	}
	assert_int_equal(run("vec_query", &in, &out), 0);
	assert_int_equal(get32(&out, 0), 2);
	/* counts larger than the bytes: refused before any allocation */
	lama_buf_truncate(&in, 0);
	target(&in, path, key);
	u32(&in, 0xffffffffu);
	item(&in, 3, "m", "t", x, 4);
	assert_int_equal(run("vec_put", &in, &out), LAMA_ELIMIT);
	lama_buf_truncate(&in, 0);
	target(&in, path, key);
	u32(&in, 60000);
	item(&in, 3, "m", "t", x, 4);
	assert_int_equal(run("vec_put", &in, &out), LAMA_EINVAL);
	assert_non_null(strstr(lama_errmsg(), "do not fit"));
	lama_buf_truncate(&in, 0);
	target(&in, path, key);
	u32(&in, 1000);
	assert_int_equal(run("vec_remove", &in, &out), LAMA_EINVAL);
	/* a dim larger than the bytes, dim 0, dim 4097 */
	{
		static const uint32_t dims[] = { 5, 0, LAMA_VECTOR_DIM_MAX + 1, 0x40000000u };

		for (size_t i = 0; i < sizeof(dims) / sizeof(*dims); i++) {
			lama_hash h = hid(3);

			lama_buf_truncate(&in, 0);
			target(&in, path, key);
			u32(&in, 1);
			assert_int_equal(lama_buf_add(&in, h.b, 32), 0);
			name(&in, "m");
			name(&in, "t");
			u32(&in, dims[i]);
			for (int j = 0; j < 4; j++)
				f32(&in, 1);
			assert_int_equal(run("vec_put", &in, &out), LAMA_EINVAL);
			query_in(&in, "m", NULL, 1, x, 4);
			lama_put_u32((uint8_t *)in.data + in.len - 4 * 4 - 4, dims[i]);
			assert_int_equal(run("vec_query", &in, &out), LAMA_EINVAL);
		}
	}
	/* NaN, infinity, zero: in a put and in a query */
	{
		float bad[3][4] = { { 1, NAN, 1, 1 }, { 1, 1, -INFINITY, 1 }, { 0, 0, 0, 0 } };

		for (int i = 0; i < 3; i++) {
			lama_buf_truncate(&in, 0);
			target(&in, path, key);
			u32(&in, 2);
			item(&in, 10, "m", "t", x, 4);
			item(&in, 11, "m", "t", bad[i], 4);
			assert_int_equal(run("vec_put", &in, &out), LAMA_EINVAL);
			query_in(&in, "m", NULL, 1, bad[i], 4);
			assert_int_equal(run("vec_query", &in, &out), LAMA_EINVAL);
		}
	}
	/* k 0 and 1001, a dimension other than the model's */
	query_in(&in, "m", NULL, 0, x, 4);
	assert_int_equal(run("vec_query", &in, &out), LAMA_EINVAL);
	query_in(&in, "m", NULL, LAMA_VECTOR_K_MAX + 1, x, 4);
	assert_int_equal(run("vec_query", &in, &out), LAMA_EINVAL);
	query_in(&in, "m", NULL, 1, x, 3);
	assert_int_equal(run("vec_query", &in, &out), LAMA_EINVAL);
	/* names: an empty model, a NUL inside */
	query_in(&in, "", NULL, 1, x, 4);
	assert_int_equal(run("vec_query", &in, &out), LAMA_EINVAL);
	lama_buf_truncate(&in, 0);
	target(&in, path, key);
	u32(&in, 1);
	item(&in, 12, "m", "t", x, 4);
	in.data[in.len - 16 - 4 - 1] = 0; /* the topic's one byte */
	assert_int_equal(run("vec_put", &in, &out), LAMA_EINVAL);
	/* paths: relative, empty, with a NUL, too long */
	{
		const char *bad[] = { "relative/vectors.db", "" };
		char longp[5000];

		for (int i = 0; i < 2; i++) {
			lama_buf_truncate(&in, 0);
			target(&in, bad[i], key);
			name(&in, "");
			assert_int_equal(run("vec_count", &in, &out), LAMA_EINVAL);
		}
		memset(longp, 'a', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = 0;
		lama_buf_truncate(&in, 0);
		target(&in, longp, key);
		name(&in, "");
		assert_int_equal(run("vec_count", &in, &out), LAMA_EINVAL);
		lama_buf_truncate(&in, 0);
		target(&in, path, key);
		name(&in, "");
		in.data[6] = 0;
		assert_int_equal(run("vec_count", &in, &out), LAMA_EINVAL);
	}
	/* a path where no file can be: a clear error */
	lama_buf_truncate(&in, 0);
	target(&in, "/nonexistent-dir-lama/vectors.db", key);
	name(&in, "");
	assert_int_equal(run("vec_count", &in, &out), LAMA_EIO);
	/* nothing of the above changed the index */
	assert_int_equal(count(path, key, ""), 2);
	lama_buf_release(&in);
	lama_buf_release(&out);
	lama_buf_release(&cut);
}

static void test_oom(void **state)
{
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_buf out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	float x[8];
	uint64_t s = 3;
	int rc = -1;

	(void)state;
	target(&in, path, key);
	u32(&in, 50);
	for (unsigned i = 0; i < 50; i++) {
		for (int j = 0; j < 8; j++)
			x[j] = (float)(rnd(&s, 1000)) - 500;
		item(&in, i, i % 2 ? "a" : "b", "t", x, 8);
	}
	/* each allocation failed in turn, the index closed first so that the
	 * open is part of it */
	for (unsigned long k = 1; k < 300; k++) {
		struct lama_buf none = LAMA_BUF_INIT(0);

		assert_int_equal(run("vec_close", &none, &out), 0);
		lama_mem_fail_after(k, 1);
		rc = run("vec_put", &in, &out);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
		assert_int_equal(count(path, key, ""), 0);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(count(path, key, ""), 50);
	query_in(&in, "a", "t", 5, x, 8);
	for (unsigned long k = 1; k < 300; k++) {
		struct lama_buf none = LAMA_BUF_INIT(0);

		assert_int_equal(run("vec_close", &none, &out), 0);
		lama_mem_fail_after(k, 1);
		rc = run("vec_query", &in, &out);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(get32(&out, 0), 5);
	lama_buf_release(&in);
	lama_buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
