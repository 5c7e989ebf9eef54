/* test_ops_crypto.c: the crypto worker's chunk ops (stream_push,
 * stream_pull, blob_seal, blob_open) through a real manager and real
 * worker processes ($LAMA_BIN): right and wrong inputs, a stream split
 * over several tasks (and over a worker SIGKILLed between them) equal to
 * the one-shot result, the same bytes as crypto.h's stream (the backup's
 * code), a real backup file opened by stream_pull and one written by
 * stream_push restored by lama_backup_restore, tampered, reordered and
 * truncated chunks, and BLOB chunks sealed by a worker stored and read
 * back by the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <unistd.h>

#include <uv.h>

#include "account/account.h"
#include "backup/backup.h"
#include "crypto/crypto.h"
#include "store/store.h"
#include "testutil.h"
#include "workertest.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"
#include "worker/worker.h"

#define STATE 53 /* the carried state: lama_stream || ended */

static lama_workers *mk(uv_loop_t *loop)
{
	struct lama_worker_pool p = { "crypto", 1, 0, 0 };
	const char *exe = getenv("LAMA_BIN");
	lama_workers *m;

	assert_non_null(exe);
	uv_loop_init(loop);
	assert_int_equal(lama_workers_new(&m, loop, exe, &p, 1), 0);
	return m;
}

static void finish(uv_loop_t *loop, lama_workers *m)
{
	lama_workers_close(m);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(loop), 0);
}

/* Runs op on in (a lama_buf, released) and returns the rc. The chunk ops
 * keep nothing in the worker, so they are idempotent: a task whose worker
 * dies under it runs again on the next one. */
static int call(uv_loop_t *loop, lama_workers *m, const char *op, struct lama_buf *in,
		struct wt_res *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(lama_workers_submit(m, "crypto", op, in->data, in->len,
					     LAMA_TASK_IDEMPOTENT, 0, wt_on_done, r, NULL),
			 0);
	lama_buf_release(in);
	wt_run_until(loop, &r->called, 30000);
	return r->rc;
}

static long worker_pid(lama_workers *m)
{
	json_t *s = lama_workers_status(m);
	json_t *pid = json_object_get(json_array_get(s, 0), "pid");
	long v = json_is_integer(pid) ? (long)json_integer_value(pid) : 0;

	json_decref(s);
	return v;
}

static void u8(struct lama_buf *b, uint8_t v)
{
	assert_int_equal(lama_buf_add(b, &v, 1), 0);
}

static void u32(struct lama_buf *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	assert_int_equal(lama_buf_add(b, p, 4), 0);
}

static void u64(struct lama_buf *b, uint64_t v)
{
	u32(b, (uint32_t)(v >> 32));
	u32(b, (uint32_t)v);
}

static void bytes(struct lama_buf *b, const void *p, size_t n)
{
	assert_int_equal(lama_buf_add(b, p, n), 0);
}

static void bytes32(struct lama_buf *b, const void *p, size_t n)
{
	u32(b, (uint32_t)n);
	if (n)
		bytes(b, p, n);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* --- streams --- */

#define NCHUNKS 6
static const uint8_t KEY[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const char AD0[] = "a header, authenticated with the first chunk";

/* The test stream's chunks: sizes vary, the first carries AD0, the last
 * is FINAL. */
static size_t chunk_len(unsigned i)
{
	static const size_t len[NCHUNKS] = { 1000, 0, 65536, 17, 300000, 5 };

	return len[i];
}

static void chunk_data(unsigned i, uint8_t *p)
{
	for (size_t k = 0; k < chunk_len(i); k++)
		p[k] = (uint8_t)(k * 31 + i);
}

/* Adds push chunks [from, to) of the test stream. */
static void push_items(struct lama_buf *b, unsigned from, unsigned to)
{
	uint8_t *p = malloc(300000);

	u32(b, to - from);
	for (unsigned i = from; i < to; i++) {
		u8(b, i == NCHUNKS - 1 ? LAMA_STREAM_TAG_FINAL : LAMA_STREAM_TAG_MESSAGE);
		bytes32(b, AD0, i == 0 ? sizeof(AD0) : 0);
		chunk_data(i, p);
		bytes32(b, p, chunk_len(i));
	}
	free(p);
}

/* Parses a push output: state, optional header, chunks appended to ct
 * (bytes32 each, as they come). */
static void push_out(const struct wt_res *r, int header, uint8_t state[STATE], uint8_t hdr[24],
		     struct lama_buf *ct, unsigned nchunks)
{
	size_t off = STATE + (header ? 24 : 0);

	assert_int_equal(r->rc, 0);
	assert_true(r->n >= off);
	memcpy(state, r->out, STATE);
	if (header)
		memcpy(hdr, r->out + STATE, 24);
	for (unsigned i = 0; i < nchunks; i++) {
		uint32_t n;

		assert_true(off + 4 <= r->n);
		n = get32(r->out + off);
		assert_true(off + 4 + n <= r->n);
		bytes(ct, r->out + off, 4 + n);
		off += 4 + n;
	}
	assert_int_equal(off, r->n);
}

/* Starts a stream (no chunks): the state and the header. */
static void stream_start(uv_loop_t *loop, lama_workers *m, uint8_t state[STATE], uint8_t hdr[24])
{
	struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	struct wt_res r;

	u8(&in, 1);
	bytes(&in, KEY, 32);
	u32(&in, 0);
	assert_int_equal(call(loop, m, "stream_push", &in, &r), 0);
	assert_int_equal(r.n, STATE + 24);
	memcpy(state, r.out, STATE);
	memcpy(hdr, r.out + STATE, 24);
	assert_int_equal(state[52], 0);
	wt_res_free(&r);
}

/* Pushes chunks [from, to) from state; state is updated, ct appended. */
static void push_range(uv_loop_t *loop, lama_workers *m, uint8_t state[STATE], unsigned from,
		       unsigned to, struct lama_buf *ct)
{
	struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	struct wt_res r;

	u8(&in, 0);
	bytes(&in, state, STATE);
	push_items(&in, from, to);
	assert_int_equal(call(loop, m, "stream_push", &in, &r), 0);
	push_out(&r, 0, state, NULL, ct, to - from);
	wt_res_free(&r);
}

/* The i-th bytes32 in a sequence of them. */
static const uint8_t *nth(const struct lama_buf *b, unsigned i, uint32_t *n)
{
	const uint8_t *p = (const uint8_t *)b->data;

	for (;;) {
		*n = get32(p);
		if (!i--)
			return p + 4;
		p += 4 + *n;
	}
}

/* Pulls chunks `order` (indexes into ct) in one task; the rc. With rc 0,
 * checks the plaintexts and returns the state in state. */
static int pull(uv_loop_t *loop, lama_workers *m, const uint8_t *start_state,
		const uint8_t hdr[24], const struct lama_buf *ct, const unsigned *order, unsigned n,
		uint8_t state[STATE], struct wt_res *r)
{
	struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc;

	if (start_state) {
		u8(&in, 0);
		bytes(&in, start_state, STATE);
	} else {
		u8(&in, 1);
		bytes(&in, KEY, 32);
		bytes(&in, hdr, 24);
	}
	u32(&in, n);
	for (unsigned i = 0; i < n; i++) {
		uint32_t len;
		const uint8_t *p = nth(ct, order[i], &len);

		bytes32(&in, AD0, order[i] == 0 ? sizeof(AD0) : 0);
		bytes32(&in, p, len);
	}
	rc = call(loop, m, "stream_pull", &in, r);
	if (rc)
		return rc;
	{
		size_t off = STATE;
		uint8_t *want = malloc(300000);

		memcpy(state, r->out, STATE);
		for (unsigned i = 0; i < n; i++) {
			unsigned c = order[i];
			uint32_t len = get32(r->out + off + 1);

			assert_int_equal(r->out[off], c == NCHUNKS - 1 ? LAMA_STREAM_TAG_FINAL
								      : LAMA_STREAM_TAG_MESSAGE);
			assert_int_equal(len, chunk_len(c));
			chunk_data(c, want);
			assert_memory_equal(r->out + off + 5, want, len);
			off += 5 + len;
		}
		assert_int_equal(off, r->n);
		free(want);
	}
	return 0;
}

/* The whole stream at once, split in three tasks, and split with the
 * worker SIGKILLed between tasks: the same bytes; pulled at once and in
 * pieces: the same plaintext; and the bytes open with crypto.h's stream
 * (the backup's code). */
static void test_stream_split(void **state)
{
	uv_loop_t loop;
	lama_workers *m = mk(&loop);
	uint8_t s0[STATE], s[STATE], hdr[24], st2[STATE];
	struct lama_buf one = LAMA_BUF_INIT(LAMA_BUF_MAX), split = LAMA_BUF_INIT(LAMA_BUF_MAX),
			killed = LAMA_BUF_INIT(LAMA_BUF_MAX);
	static const unsigned all[NCHUNKS] = { 0, 1, 2, 3, 4, 5 };
	struct wt_res r;

	(void)state;
	stream_start(&loop, m, s0, hdr);
	memcpy(s, s0, STATE);
	push_range(&loop, m, s, 0, NCHUNKS, &one);
	assert_int_equal(s[52], 1); /* ended, */
	for (int i = 0; i < 52; i++)
		assert_int_equal(s[i], 0); /* and no key left in the state */

	memcpy(s, s0, STATE);
	push_range(&loop, m, s, 0, 2, &split);
	assert_int_equal(s[52], 0);
	push_range(&loop, m, s, 2, 3, &split);
	push_range(&loop, m, s, 3, NCHUNKS, &split);
	assert_int_equal(split.len, one.len);
	assert_memory_equal(split.data, one.data, one.len);

	/* a worker killed between chunks: the next one carries on */
	memcpy(s, s0, STATE);
	push_range(&loop, m, s, 0, 3, &killed);
	{
		long pid = worker_pid(m);
		uint64_t end = uv_hrtime() + 10000000000ull;

		assert_true(pid > 0);
		assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
		while ((worker_pid(m) == pid || worker_pid(m) == 0) && uv_hrtime() < end)
			uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
		assert_true(worker_pid(m) != pid && worker_pid(m) > 0);
	}
	push_range(&loop, m, s, 3, NCHUNKS, &killed);
	assert_int_equal(killed.len, one.len);
	assert_memory_equal(killed.data, one.data, one.len);

	/* pulled at once, and over three tasks with a kill in between */
	assert_int_equal(pull(&loop, m, NULL, hdr, &one, all, NCHUNKS, st2, &r), 0);
	assert_int_equal(st2[52], 1);
	wt_res_free(&r);
	{
		static const unsigned a[] = { 0, 1 }, b[] = { 2, 3 }, c[] = { 4, 5 };
		struct lama_buf ct = LAMA_BUF_INIT(LAMA_BUF_MAX);
		long pid;

		assert_int_equal(pull(&loop, m, NULL, hdr, &one, a, 2, st2, &r), 0);
		wt_res_free(&r);
		assert_int_equal(st2[52], 0);
		memcpy(s, st2, STATE);
		assert_int_equal(pull(&loop, m, s, hdr, &one, b, 2, st2, &r), 0);
		wt_res_free(&r);
		pid = worker_pid(m);
		assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
		memcpy(s, st2, STATE);
		/* submitted while the worker is dead: it waits for the new one */
		assert_int_equal(pull(&loop, m, s, hdr, &one, c, 2, st2, &r), 0);
		wt_res_free(&r);
		assert_int_equal(st2[52], 1);
		assert_true(worker_pid(m) != pid);
		lama_buf_release(&ct);
	}

	/* crypto.h's stream, in this process, reads what the worker wrote */
	{
		struct lama_stream ls;
		uint8_t *pt = malloc(300000), *want = malloc(300000), tag;

		assert_int_equal(lama_stream_init_pull(&ls, hdr, KEY), 0);
		for (unsigned i = 0; i < NCHUNKS; i++) {
			uint32_t n;
			const uint8_t *c = nth(&one, i, &n);

			assert_int_equal(lama_stream_pull(&ls, pt, &tag, c, n, AD0,
							  i == 0 ? sizeof(AD0) : 0),
					 0);
			chunk_data(i, want);
			assert_int_equal(n - LAMA_STREAM_ABYTES, chunk_len(i));
			assert_memory_equal(pt, want, chunk_len(i));
			assert_int_equal(tag, i == NCHUNKS - 1 ? LAMA_STREAM_TAG_FINAL : 0);
		}
		free(pt);
		free(want);
	}
	/* and the worker reads what crypto.h's stream wrote */
	{
		struct lama_stream ls;
		struct lama_buf ct = LAMA_BUF_INIT(LAMA_BUF_MAX);
		uint8_t h2[24], *p = malloc(300000), *c = malloc(300000 + 17);

		lama_stream_init_push(&ls, h2, KEY);
		for (unsigned i = 0; i < NCHUNKS; i++) {
			chunk_data(i, p);
			assert_int_equal(lama_stream_push(&ls, c, p, chunk_len(i), AD0,
							  i == 0 ? sizeof(AD0) : 0,
							  i == NCHUNKS - 1 ? LAMA_STREAM_TAG_FINAL : 0),
					 0);
			bytes32(&ct, c, chunk_len(i) + LAMA_STREAM_ABYTES);
		}
		assert_int_equal(pull(&loop, m, NULL, h2, &ct, all, NCHUNKS, st2, &r), 0);
		assert_int_equal(st2[52], 1);
		wt_res_free(&r);
		lama_buf_release(&ct);
		free(p);
		free(c);
	}
	lama_buf_release(&one);
	lama_buf_release(&split);
	lama_buf_release(&killed);
	finish(&loop, m);
}

/* Altered, reordered, dropped, truncated, from another stream, a wrong
 * key or ad, and chunks after FINAL. */
static void test_stream_tamper(void **state)
{
	uv_loop_t loop;
	lama_workers *m = mk(&loop);
	uint8_t s[STATE], hdr[24], st2[STATE], h2[24], s2[STATE];
	struct lama_buf ct = LAMA_BUF_INIT(LAMA_BUF_MAX), other = LAMA_BUF_INIT(LAMA_BUF_MAX);
	static const unsigned swapped[] = { 0, 2, 1 }, dropped[] = { 0, 2 }, head[] = { 0, 1, 2, 3, 4 },
			      all[] = { 0, 1, 2, 3, 4, 5 };
	struct wt_res r;

	(void)state;
	stream_start(&loop, m, s, hdr);
	push_range(&loop, m, s, 0, NCHUNKS, &ct);
	stream_start(&loop, m, s2, h2);
	push_range(&loop, m, s2, 0, NCHUNKS, &other);

	assert_int_equal(pull(&loop, m, NULL, hdr, &ct, swapped, 3, st2, &r), LAMA_ECRYPTO);
	assert_non_null(strstr(r.msg, "chunk 1 failed authentication"));
	wt_res_free(&r);
	assert_int_equal(pull(&loop, m, NULL, hdr, &ct, dropped, 2, st2, &r), LAMA_ECRYPTO);
	wt_res_free(&r);
	/* truncated: every chunk opens, but the state says the end never
	 * came (the caller's check: the last chunk must carry FINAL) */
	assert_int_equal(pull(&loop, m, NULL, hdr, &ct, head, 5, st2, &r), 0);
	assert_int_equal(st2[52], 0);
	assert_int_equal(r.out[r.n - 5 - chunk_len(4)], LAMA_STREAM_TAG_MESSAGE);
	wt_res_free(&r);
	/* another stream's header, or its chunks under ours */
	assert_int_equal(pull(&loop, m, NULL, h2, &ct, all, NCHUNKS, st2, &r), LAMA_ECRYPTO);
	wt_res_free(&r);
	assert_int_equal(pull(&loop, m, NULL, hdr, &other, all, NCHUNKS, st2, &r), LAMA_ECRYPTO);
	wt_res_free(&r);
	/* a changed byte in chunk 2 */
	{
		uint32_t n;
		uint8_t *p = (uint8_t *)nth(&ct, 2, &n);

		p[n / 2] ^= 0x40;
		assert_int_equal(pull(&loop, m, NULL, hdr, &ct, all, NCHUNKS, st2, &r), LAMA_ECRYPTO);
		assert_non_null(strstr(r.msg, "chunk 2 failed"));
		wt_res_free(&r);
		p[n / 2] ^= 0x40;
		assert_int_equal(pull(&loop, m, NULL, hdr, &ct, all, NCHUNKS, st2, &r), 0);
		wt_res_free(&r);
	}
	/* wrong ad on the first chunk, wrong key */
	{
		struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
		uint32_t n;
		const uint8_t *c = nth(&ct, 0, &n);
		uint8_t k2[32];

		u8(&in, 1), bytes(&in, KEY, 32), bytes(&in, hdr, 24), u32(&in, 1);
		bytes32(&in, "another header", 14), bytes32(&in, c, n);
		assert_int_equal(call(&loop, m, "stream_pull", &in, &r), LAMA_ECRYPTO);
		wt_res_free(&r);
		memcpy(k2, KEY, 32);
		k2[0] ^= 1;
		u8(&in, 1), bytes(&in, k2, 32), bytes(&in, hdr, 24), u32(&in, 1);
		bytes32(&in, AD0, sizeof(AD0)), bytes32(&in, c, n);
		assert_int_equal(call(&loop, m, "stream_pull", &in, &r), LAMA_ECRYPTO);
		wt_res_free(&r);
		/* too short to be a chunk */
		u8(&in, 1), bytes(&in, KEY, 32), bytes(&in, hdr, 24), u32(&in, 1);
		bytes32(&in, NULL, 0), bytes32(&in, c, 16);
		assert_int_equal(call(&loop, m, "stream_pull", &in, &r), LAMA_ECRYPTO);
		assert_non_null(strstr(r.msg, "too short"));
		wt_res_free(&r);
	}
	/* after FINAL: pulling more from the ended state, pushing more in
	 * one batch or from an ended state */
	{
		struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
		uint32_t n;
		const uint8_t *c = nth(&ct, 1, &n);

		assert_int_equal(pull(&loop, m, NULL, hdr, &ct, all, NCHUNKS, st2, &r), 0);
		wt_res_free(&r);
		u8(&in, 0), bytes(&in, st2, STATE), u32(&in, 1), bytes32(&in, NULL, 0);
		bytes32(&in, c, n);
		assert_int_equal(call(&loop, m, "stream_pull", &in, &r), LAMA_ECRYPTO);
		assert_non_null(strstr(r.msg, "after the FINAL"));
		wt_res_free(&r);
		u8(&in, 0), bytes(&in, s, STATE), u32(&in, 1), u8(&in, 0), bytes32(&in, NULL, 0);
		bytes32(&in, "x", 1);
		assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "after the FINAL"));
		wt_res_free(&r);
		u8(&in, 1), bytes(&in, KEY, 32), u32(&in, 2);
		u8(&in, 3), bytes32(&in, NULL, 0), bytes32(&in, "x", 1);
		u8(&in, 0), bytes32(&in, NULL, 0), bytes32(&in, "y", 1);
		assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "chunk 1 comes after the FINAL"));
		wt_res_free(&r);
	}
	lama_buf_release(&ct);
	lama_buf_release(&other);
	finish(&loop, m);
}

/* Inputs that break the format: each refused with LAMA_EINVAL (or
 * LAMA_ELIMIT for a count), never run. */
static void test_stream_bad_input(void **state)
{
	uv_loop_t loop;
	lama_workers *m = mk(&loop);
	struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint8_t s[STATE], hdr[24];
	struct wt_res r;

	(void)state;
	stream_start(&loop, m, s, hdr);
	/* empty; a start flag of 2; cut in the key; cut in the header */
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	u8(&in, 2), bytes(&in, KEY, 32), u32(&in, 0);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	assert_non_null(strstr(r.msg, "start flag"));
	wt_res_free(&r);
	u8(&in, 1), bytes(&in, KEY, 20);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	u8(&in, 1), bytes(&in, KEY, 32), bytes(&in, hdr, 10);
	assert_int_equal(call(&loop, m, "stream_pull", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	/* a state whose ended byte is neither 0 nor 1 */
	s[52] = 7;
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 0);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	s[52] = 0;
	/* an unknown tag; a count the input cannot hold; a count over the
	 * batch bound; a chunk length past the end; bytes left over */
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 1), u8(&in, 1), bytes32(&in, NULL, 0);
	bytes32(&in, "x", 1);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	assert_non_null(strstr(r.msg, "tag 1"));
	wt_res_free(&r);
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 1000);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 70000);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_ELIMIT);
	wt_res_free(&r);
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 1), u8(&in, 0), bytes32(&in, NULL, 0);
	u32(&in, 100), bytes(&in, "abc", 3);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 0), u8(&in, 0);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), LAMA_EINVAL);
	assert_non_null(strstr(r.msg, "after the end"));
	wt_res_free(&r);
	u8(&in, 0), bytes(&in, s, STATE), u32(&in, 1), bytes32(&in, NULL, 0);
	assert_int_equal(call(&loop, m, "stream_pull", &in, &r), LAMA_EINVAL);
	wt_res_free(&r);
	/* the worker still answers */
	assert_int_equal(lama_workers_submit(m, "crypto", "stream_push", NULL, 0, 0, 0, wt_on_done, &r,
					     NULL),
			 0);
	wt_run_until(&loop, &r.called, 30000);
	wt_res_free(&r);
	finish(&loop, m);
}

static uint8_t *pattern(size_t n, unsigned seed);

/* --- the backup file's format (docs/backup.md) --- */

#define BK_HEADER 72
#define BK_CHUNK (LAMA_BACKUP_CHUNK + LAMA_STREAM_ABYTES)

static uint64_t get_le(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	p = malloc((size_t)len + 1);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

/* A backup written by src/backup opens with stream_pull (two tasks: the
 * first chunk, the rest); the plaintext pushed again by stream_push, under
 * a header built around the worker's stream header, is a file that
 * lama_backup_restore takes. */
static void test_backup_format(void **state)
{
	struct lama_kdf_params kdf = lama_kdf_min();
	uv_loop_t loop;
	lama_workers *m = mk(&loop);
	char home[4096], home2[4200], path[4200], path2[4200], *name = NULL;
	lama_session *s;
	uint8_t *file, key[32], st[STATE], hdr[BK_HEADER];
	struct lama_buf plain = LAMA_BUF_INIT(LAMA_BUF_MAX), in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	size_t n, nchunks, off;
	struct wt_res r;

	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/a.lamabackup", home);
	snprintf(path2, sizeof(path2), "%s/b.lamabackup", home);
	snprintf(home2, sizeof(home2), "%s/restored", home);
	assert_int_equal(lama_account_register(home, "alice", "pw", 2, &kdf, &s), 0);
	{
		/* a BLOB, so the backup spans several chunks */
		lama_blob_writer *w;
		uint8_t *d = pattern(300000, 11);

		assert_int_equal(lama_blob_write_begin(lama_session_store(s), &w), 0);
		assert_int_equal(lama_blob_write(w, d, 300000), 0);
		assert_int_equal(lama_blob_write_end(w, NULL, NULL), 0);
		free(d);
	}
	assert_int_equal(lama_backup_write(s, path, "pw", 2, NULL), 0);
	lama_session_logout(s);
	file = slurp(path, &n);
	assert_true(n > BK_HEADER + LAMA_STREAM_ABYTES);
	kdf.opslimit = get_le(file + 16);
	kdf.memlimit = get_le(file + 24);
	assert_int_equal(lama_pwhash(key, "pw", 2, file + 32, &kdf), 0);
	nchunks = (n - BK_HEADER + BK_CHUNK - 1) / BK_CHUNK;
	assert_true(nchunks >= 5); /* the archive holds the 300 KB BLOB */
	/* pulled: chunk 0 (the header as its ad), then the rest from the state */
	off = BK_HEADER;
	for (int task = 0; task < 2; task++) {
		size_t count = task == 0 ? 1 : nchunks - 1;

		if (task == 0) {
			u8(&in, 1), bytes(&in, key, 32), bytes(&in, file + 48, 24);
		} else {
			u8(&in, 0), bytes(&in, st, STATE);
		}
		u32(&in, (uint32_t)count);
		for (size_t i = 0; i < count; i++) {
			size_t len = n - off < BK_CHUNK ? n - off : BK_CHUNK;

			bytes32(&in, file, task == 0 ? BK_HEADER : 0);
			bytes32(&in, file + off, len);
			off += len;
		}
		assert_int_equal(call(&loop, m, "stream_pull", &in, &r), 0);
		memcpy(st, r.out, STATE);
		for (size_t o = STATE, i = 0; i < count; i++) {
			uint32_t len = get32(r.out + o + 1);
			int final = task == 1 && i == count - 1;

			assert_int_equal(r.out[o], final ? LAMA_STREAM_TAG_FINAL : 0);
			assert_int_equal(len, final ? len : LAMA_BACKUP_CHUNK);
			bytes(&plain, r.out + o + 5, len);
			o += 5 + len;
		}
		wt_res_free(&r);
	}
	assert_int_equal(off, n);
	assert_int_equal(st[52], 1);
	/* the record stream starts with its first record's name */
	assert_int_equal((uint8_t)plain.data[0], 16);
	assert_memory_equal(plain.data + 1, "lama-backup.json", 16);

	/* pushed again: a new stream, its header in a copy of the file's */
	u8(&in, 1), bytes(&in, key, 32), u32(&in, 0);
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), 0);
	memcpy(st, r.out, STATE);
	memcpy(hdr, file, 48);
	memcpy(hdr + 48, r.out + STATE, 24);
	wt_res_free(&r);
	u8(&in, 0), bytes(&in, st, STATE), u32(&in, (uint32_t)nchunks);
	for (size_t i = 0, o = 0; i < nchunks; i++) {
		size_t len = plain.len - o < LAMA_BACKUP_CHUNK ? plain.len - o : LAMA_BACKUP_CHUNK;

		u8(&in, i == nchunks - 1 ? LAMA_STREAM_TAG_FINAL : LAMA_STREAM_TAG_MESSAGE);
		bytes32(&in, hdr, i == 0 ? BK_HEADER : 0);
		bytes32(&in, plain.data + o, len);
		o += len;
	}
	assert_int_equal(call(&loop, m, "stream_push", &in, &r), 0);
	{
		FILE *f = fopen(path2, "wb");

		assert_non_null(f);
		assert_int_equal(fwrite(hdr, 1, BK_HEADER, f), BK_HEADER);
		for (size_t o = STATE; o < r.n;) {
			uint32_t len = get32(r.out + o);

			assert_int_equal(fwrite(r.out + o + 4, 1, len, f), len);
			o += 4 + len;
		}
		fclose(f);
	}
	wt_res_free(&r);
	assert_int_equal(lama_backup_restore(home2, path2, "pw", 2, &name, NULL), 0);
	assert_string_equal(name, "alice");
	lama_free(name);
	/* and the check still bites: the same file without its last chunk */
	{
		size_t n2;
		uint8_t *f2 = slurp(path2, &n2);
		FILE *f = fopen(path2, "wb");
		char home3[4300];

		size_t last = (n2 - BK_HEADER) % BK_CHUNK ? (n2 - BK_HEADER) % BK_CHUNK : BK_CHUNK;

		assert_int_equal(fwrite(f2, 1, n2 - last, f), n2 - last);
		fclose(f);
		snprintf(home3, sizeof(home3), "%s/restored3", home);
		assert_int_equal(lama_backup_restore(home3, path2, "pw", 2, NULL, NULL), LAMA_ECORRUPT);
		free(f2);
	}
	free(file);
	lama_buf_release(&plain);
	tu_rmtree(home);
	finish(&loop, m);
}

/* --- BLOB chunks --- */

static const uint8_t BID[16] = "group-id-16bytes";

/* count chunks of the given plaintext lengths (last flag on the last),
 * from index first. */
static void blob_in(struct lama_buf *in, const uint8_t *key, const uint8_t *bid, uint64_t first,
		    const size_t *len, const int *last, unsigned count, const uint8_t *const *data)
{
	bytes(in, key, 32);
	bytes(in, bid, 16);
	u64(in, first);
	u32(in, count);
	for (unsigned i = 0; i < count; i++) {
		u8(in, (uint8_t)last[i]);
		bytes32(in, data[i], len[i]);
	}
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);

	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(k * 13 + seed);
	return p;
}

/* The outputs of a batch as an array of pointers into r->out. */
static void split_out(const struct wt_res *r, unsigned count, const uint8_t **p, size_t *n)
{
	size_t off = 0;

	for (unsigned i = 0; i < count; i++) {
		assert_true(off + 4 <= r->n);
		n[i] = get32(r->out + off);
		p[i] = r->out + off + 4;
		off += 4 + n[i];
	}
	assert_int_equal(off, r->n);
}

static void test_blob_ops(void **state)
{
	uv_loop_t loop;
	lama_workers *m = mk(&loop);
	const size_t C = LAMA_BLOB_CHUNK;
	size_t len[3] = { C, C, 1234 }, slen[3], olen[3];
	int last[3] = { 0, 0, 1 }, nolast[3] = { 0, 0, 0 };
	uint8_t *pt[3] = { pattern(C, 1), pattern(C, 2), pattern(1234, 3) };
	uint8_t *sealed[3];
	const uint8_t *p[3];
	struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	struct wt_res r, o;

	(void)state;
	/* chunks 0 and 1 in one task, 2 in another */
	blob_in(&in, KEY, BID, 0, len, last, 2, (const uint8_t *const *)pt);
	assert_int_equal(call(&loop, m, "blob_seal", &in, &r), 0);
	split_out(&r, 2, p, slen);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(slen[i], C + LAMA_BLOB_CHUNK_OVERHEAD);
		sealed[i] = malloc(slen[i]);
		memcpy(sealed[i], p[i], slen[i]);
	}
	wt_res_free(&r);
	blob_in(&in, KEY, BID, 2, len + 2, last + 2, 1, (const uint8_t *const *)pt + 2);
	assert_int_equal(call(&loop, m, "blob_seal", &in, &r), 0);
	split_out(&r, 1, p, slen + 2);
	assert_int_equal(slen[2], 1234 + LAMA_BLOB_CHUNK_OVERHEAD);
	sealed[2] = malloc(slen[2]);
	memcpy(sealed[2], p[0], slen[2]);
	wt_res_free(&r);
	/* opened at once; and each one in this process by the store's pair */
	blob_in(&in, KEY, BID, 0, slen, last, 3, (const uint8_t *const *)sealed);
	assert_int_equal(call(&loop, m, "blob_open", &in, &o), 0);
	split_out(&o, 3, p, olen);
	for (int i = 0; i < 3; i++) {
		uint8_t *q = malloc(len[i] + 1);

		assert_int_equal(olen[i], len[i]);
		assert_memory_equal(p[i], pt[i], len[i]);
		assert_int_equal(lama_blob_chunk_open(q, sealed[i], slen[i], KEY, BID, (uint64_t)i,
						      last[i]),
				 0);
		assert_memory_equal(q, pt[i], len[i]);
		free(q);
	}
	wt_res_free(&o);
	/* out of place: another index, group, end flag, key; swapped */
	blob_in(&in, KEY, BID, 1, slen, last, 3, (const uint8_t *const *)sealed);
	assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
	assert_non_null(strstr(o.msg, "chunk 0 (index 1) failed authentication"));
	wt_res_free(&o);
	blob_in(&in, KEY, (const uint8_t *)"another-group-id", 0, slen, last, 3,
		(const uint8_t *const *)sealed);
	assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
	wt_res_free(&o);
	{
		size_t l2[2] = { slen[0], slen[1] };
		int lst[2] = { 0, 1 };
		const uint8_t *sw[2] = { sealed[1], sealed[0] };
		uint8_t k2[32];

		/* the first two as a whole BLOB: chunk 1 was not sealed as last */
		blob_in(&in, KEY, BID, 0, l2, lst, 2, (const uint8_t *const *)sealed);
		assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
		assert_non_null(strstr(o.msg, "chunk 1"));
		wt_res_free(&o);
		blob_in(&in, KEY, BID, 0, l2, nolast, 2, sw);
		assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
		wt_res_free(&o);
		memcpy(k2, KEY, 32);
		k2[31] ^= 0x80;
		blob_in(&in, k2, BID, 0, slen, last, 3, (const uint8_t *const *)sealed);
		assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
		wt_res_free(&o);
	}
	/* a changed byte */
	sealed[2][30] ^= 1;
	blob_in(&in, KEY, BID, 0, slen, last, 3, (const uint8_t *const *)sealed);
	assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
	assert_non_null(strstr(o.msg, "chunk 2"));
	wt_res_free(&o);
	sealed[2][30] ^= 1;

	/* the format's rules: a short chunk before the last, a chunk after
	 * the last, a chunk over LAMA_BLOB_CHUNK, a flag of 2, a short sealed
	 * chunk, a cut input, an index that wraps */
	{
		size_t bad[2] = { 100, 100 }, big[1] = { C + 1 };
		int l11[2] = { 1, 1 }, l2[1] = { 2 };
		uint8_t *bigp = pattern(C + 1, 9);
		const uint8_t *d2[2] = { pt[2], pt[2] };

		blob_in(&in, KEY, BID, 0, bad, nolast, 2, d2);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "chunk 0 holds 100 bytes"));
		wt_res_free(&r);
		blob_in(&in, KEY, BID, 0, bad, l11, 2, d2);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "after the last"));
		wt_res_free(&r);
		blob_in(&in, KEY, BID, 0, big, last + 2, 1, (const uint8_t *const *)&bigp);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		wt_res_free(&r);
		blob_in(&in, KEY, BID, 0, bad, l2, 1, d2);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "last flag is 2"));
		wt_res_free(&r);
		bad[0] = 39;
		blob_in(&in, KEY, BID, 0, bad, last + 2, 1, d2);
		assert_int_equal(call(&loop, m, "blob_open", &in, &r), LAMA_ECRYPTO);
		wt_res_free(&r);
		blob_in(&in, KEY, BID, UINT64_MAX, len, nolast, 2, (const uint8_t *const *)pt);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "2^64"));
		wt_res_free(&r);
		bytes(&in, KEY, 32), bytes(&in, BID, 10);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		wt_res_free(&r);
		blob_in(&in, KEY, BID, 0, len + 2, last + 2, 1, (const uint8_t *const *)pt + 2);
		u8(&in, 0);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		wt_res_free(&r);
		free(bigp);
	}
	/* an empty last chunk: only the empty BLOB's (index 0); after full
	 * chunks, in the batch or from an earlier one, the store could not
	 * read the BLOB (it counts ceil(size / chunk) chunks) */
	{
		size_t e[2] = { C, 0 }, e1[1] = { 0 }, se[1] = { LAMA_BLOB_CHUNK_OVERHEAD };
		int l01[2] = { 0, 1 };
		const uint8_t *d2[2] = { pt[0], pt[0] };
		uint8_t ct[LAMA_BLOB_CHUNK_OVERHEAD];
		const uint8_t *ctp[1] = { ct };

		blob_in(&in, KEY, BID, 0, e, l01, 2, d2);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		assert_non_null(strstr(r.msg, "chunk 1 (index 1) is an empty last chunk"));
		wt_res_free(&r);
		blob_in(&in, KEY, BID, 3, e1, last + 2, 1, d2);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), LAMA_EINVAL);
		wt_res_free(&r);
		blob_in(&in, KEY, BID, 0, e1, last + 2, 1, d2);
		assert_int_equal(call(&loop, m, "blob_seal", &in, &r), 0);
		assert_int_equal(r.n, 4 + LAMA_BLOB_CHUNK_OVERHEAD);
		wt_res_free(&r);
		/* one sealed here at index 1 does not open either */
		assert_int_equal(lama_blob_chunk_seal(ct, pt[0], 0, KEY, BID, 1, 1), 0);
		blob_in(&in, KEY, BID, 1, se, last + 2, 1, ctp);
		assert_int_equal(call(&loop, m, "blob_open", &in, &o), LAMA_ECRYPTO);
		assert_non_null(strstr(o.msg, "empty last chunk"));
		wt_res_free(&o);
		assert_int_equal(lama_blob_chunk_seal(ct, pt[0], 0, KEY, BID, 0, 1), 0);
		blob_in(&in, KEY, BID, 0, se, last + 2, 1, ctp);
		assert_int_equal(call(&loop, m, "blob_open", &in, &o), 0);
		assert_int_equal(o.n, 4);
		wt_res_free(&o);
	}
	for (int i = 0; i < 3; i++) {
		free(pt[i]);
		free(sealed[i]);
	}
	finish(&loop, m);
}

/* A BLOB sealed by the worker, stored with lama_blob_write_sealed, reads
 * back through lama_blob_open; sealed under a wrong index it does not. */
static void test_blob_store(void **state)
{
	static const uint8_t K_ENC[32] = { 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
					   7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8 };
	static const uint8_t K_IDX[32] = { 9 };
	uv_loop_t loop;
	lama_workers *m = mk(&loop);
	char dir[4096], path[4200];
	lama_store *st;
	const size_t C = LAMA_BLOB_CHUNK, total = 3 * C + 777;
	uint8_t *data = pattern(total, 5), bid[16];
	struct lama_buf in = LAMA_BUF_INIT(LAMA_BUF_MAX);
	lama_hash h, got;
	int is_new;

	(void)state;
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/a.db", dir);
	assert_int_equal(lama_store_open(&st, path, K_ENC, K_IDX, LAMA_STORE_CREATE), 0);
	lama_sha256(data, total, &h);
	for (int wrong = 0; wrong < 2; wrong++) {
		lama_blob_writer *w;
		size_t len[4] = { C, C, C, 777 }, sl[4];
		int last[4] = { 0, 0, 0, 1 };
		const uint8_t *d[4] = { data, data + C, data + 2 * C, data + 3 * C }, *p[4];
		struct wt_res r;

		assert_int_equal(lama_blob_write_begin(st, &w), 0);
		lama_blob_write_group(w, bid);
		/* two tasks: chunks 0-1, then 2-3 (wrong: 2-3 sealed as 3-4) */
		for (int t = 0; t < 2; t++) {
			blob_in(&in, K_ENC, bid, (uint64_t)(2 * t + (wrong && t)), len + 2 * t,
				last + 2 * t, 2, d + 2 * t);
			assert_int_equal(call(&loop, m, "blob_seal", &in, &r), 0);
			split_out(&r, 2, p, sl);
			for (int i = 0; i < 2; i++)
				assert_int_equal(lama_blob_write_sealed(w, p[i], sl[i], last[2 * t + i]),
						 0);
			wt_res_free(&r);
		}
		assert_int_equal(lama_blob_write_end_sealed(w, &h, &is_new), 0);
		assert_int_equal(is_new, 1);
		{
			lama_blob_reader *rd;
			uint64_t size;
			uint8_t *back = malloc(total);
			size_t n = 0, g;
			int rc;

			assert_int_equal(lama_blob_open(st, &h, &rd, &size), 0);
			assert_int_equal(size, total);
			while (!(rc = lama_blob_read(rd, back + n, total - n + (n == total), &g)) && g)
				n += g;
			if (!wrong) {
				assert_int_equal(rc, 0);
				assert_int_equal(n, total);
				assert_memory_equal(back, data, total);
			} else {
				assert_int_equal(rc, LAMA_ECORRUPT);
				assert_true(n <= 2 * C);
			}
			lama_blob_close(rd);
			free(back);
		}
		if (!wrong) {
			/* the plain writer of the same bytes finds it stored */
			assert_int_equal(lama_blob_write_begin(st, &w), 0);
			assert_int_equal(lama_blob_write(w, data, total), 0);
			assert_int_equal(lama_blob_write_end(w, &got, &is_new), 0);
			assert_int_equal(is_new, 0);
			assert_memory_equal(got.b, h.b, 32);
			/* drop it so the wrong one is stored fresh */
			lama_store_close(st);
			tu_rmtree(dir);
			snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
			snprintf(path, sizeof(path), "%s/a.db", dir);
			assert_int_equal(lama_store_open(&st, path, K_ENC, K_IDX, LAMA_STORE_CREATE),
					 0);
		}
	}
	/* the sealed writer's rules */
	{
		lama_blob_writer *w;
		uint8_t sealed[100 + LAMA_BLOB_CHUNK_OVERHEAD];

		assert_int_equal(lama_blob_chunk_seal(sealed, data, 100, K_ENC, BID, 0, 0), 0);
		assert_int_equal(lama_blob_write_begin(st, &w), 0);
		assert_int_equal(lama_blob_write_sealed(w, sealed, sizeof(sealed), 0), LAMA_EINVAL);
		assert_int_equal(lama_blob_write_sealed(w, sealed, 39, 1), LAMA_EINVAL);
		assert_int_equal(lama_blob_write_end_sealed(w, &h, NULL), LAMA_EINVAL);
		assert_int_equal(lama_blob_write_begin(st, &w), 0);
		assert_int_equal(lama_blob_write_sealed(w, sealed, sizeof(sealed), 1), 0);
		assert_int_equal(lama_blob_write_sealed(w, sealed, sizeof(sealed), 1), LAMA_EINVAL);
		assert_int_equal(lama_blob_write(w, "x", 1), LAMA_EINVAL);
		assert_int_equal(lama_blob_write_end(w, NULL, NULL), LAMA_EINVAL);
		assert_int_equal(lama_blob_write_begin(st, &w), 0);
		assert_int_equal(lama_blob_write(w, "x", 1), 0);
		assert_int_equal(lama_blob_write_sealed(w, sealed, sizeof(sealed), 1), LAMA_EINVAL);
		lama_blob_write_abort(w);
	}
	lama_store_close(st);
	tu_rmtree(dir);
	free(data);
	finish(&loop, m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_split),
		cmocka_unit_test(test_stream_tamper),
		cmocka_unit_test(test_stream_bad_input),
		cmocka_unit_test(test_backup_format),
		cmocka_unit_test(test_blob_ops),
		cmocka_unit_test(test_blob_store),
	};

	if (lama_crypto_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
