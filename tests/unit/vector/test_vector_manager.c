/* The vector ops through the real worker manager, on a real loop, with
 * the real lama binary ($LAMA_BIN) as an `index` worker that is killed and
 * replaced: the inputs and outputs pass the manager's frames whole, the
 * index kind routes vec_* ops to lama_worker_ops_vector, the key travels
 * in every task, and a replacement worker, knowing nothing, opens the file
 * again and answers the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <uv.h>

#include "crypto/crypto.h"
#include "testutil.h"
#include "workertest.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"
#include "vector/vector.h"
#include "worker/frame.h" /* lama_put_u32, lama_get_u32/u64 */
#include "worker/ops.h"
#include "worker/worker.h"


/* ---- the manager side ---- */

static int call(uv_loop_t *loop, lama_workers *m, const char *op, const struct lama_buf *in,
		struct wt_res *r)
{
	uint64_t end = uv_hrtime() + 30000000000ULL;
	uv_timer_t t;

	free(r->out);
	memset(r, 0, sizeof(*r));
	assert_int_equal(lama_workers_submit(m, "index", op, in->data, in->len, LAMA_TASK_IDEMPOTENT, 0,
					     wt_on_done, r, NULL), 0);
	uv_timer_init(loop, &t);
	uv_timer_start(&t, wt_on_wake, 5, 5);
	while (!r->called && uv_hrtime() < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(r->called, 1);
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

static void put_u32(struct lama_buf *b, uint32_t v)
{
	uint8_t p[4];

	lama_put_u32(p, v);
	assert_int_equal(lama_buf_add(b, p, 4), 0);
}

static void put_name(struct lama_buf *b, const char *s)
{
	uint8_t n = (uint8_t)strlen(s);

	assert_int_equal(lama_buf_add(b, &n, 1), 0);
	assert_int_equal(lama_buf_add(b, s, n), 0);
}

static char dir[4096], path[4200];
static uint8_t key[32];

static void target(struct lama_buf *b)
{
	put_u32(b, (uint32_t)strlen(path));
	assert_int_equal(lama_buf_add(b, path, strlen(path)), 0);
	assert_int_equal(lama_buf_add(b, key, 32), 0);
}

static void query_in(struct lama_buf *b, const float *q)
{
	lama_buf_truncate(b, 0);
	target(b);
	put_name(b, "m");
	put_name(b, "");
	put_u32(b, 20);
	put_u32(b, 32);
	for (int j = 0; j < 32; j++) {
		uint32_t w;

		memcpy(&w, &q[j], 4);
		put_u32(b, w);
	}
}

static void test_through_manager(void **state)
{
	struct lama_worker_pool p = { "index", 1, 0, 0 };
	struct lama_buf in = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	static float vecs[500][32];
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r = { 0 };
	uint8_t *first;
	size_t first_n;
	uint64_t s = 1234;
	long pid, pid2;

	(void)state;
	assert_int_equal(lama_crypto_init(), 0);
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/vectors.db", dir);
	memset(key, 0x33, 32);
	uv_loop_init(&loop);
	assert_int_equal(lama_workers_new(&m, &loop, getenv("LAMA_BIN"), &p, 1), 0);
	/* 500 vectors in one task */
	target(&in);
	put_u32(&in, 500);
	for (unsigned i = 0; i < 500; i++) {
		lama_hash h;

		lama_sha256(&i, sizeof(i), &h);
		assert_int_equal(lama_buf_add(&in, h.b, 32), 0);
		put_name(&in, "m");
		put_name(&in, i % 2 ? "odd" : "even");
		put_u32(&in, 32);
		for (int j = 0; j < 32; j++) {
			uint32_t w;

			vecs[i][j] = (float)rnd(&s, 2001) - 1000;
			memcpy(&w, &vecs[i][j], 4);
			put_u32(&in, w);
		}
	}
	if (call(&loop, m, "vec_put", &in, &r))
		fail_msg("vec_put: %s", r.msg);
	assert_int_equal(r.n, 8);
	assert_int_equal(lama_get_u64(r.out), 500);
	query_in(&in, vecs[123]);
	if (call(&loop, m, "vec_query", &in, &r))
		fail_msg("vec_query: %s", r.msg);
	assert_int_equal(r.n, 4 + 20 * 36);
	assert_int_equal(lama_get_u32(r.out), 20);
	{
		lama_hash h;
		unsigned i = 123;

		lama_sha256(&i, sizeof(i), &h);
		assert_memory_equal(r.out + 4, h.b, 32);
	}
	first = r.out;
	first_n = r.n;
	r.out = NULL;
	/* the worker killed: its replacement knows nothing, opens the file
	 * from the path and key in the task, and answers the same */
	pid = worker_pid(m);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	for (int i = 0; i < 600 && ((pid2 = worker_pid(m)) == pid || pid2 == 0); i++)
		uv_run(&loop, UV_RUN_NOWAIT), usleep(10000);
	assert_true(pid2 > 0 && pid2 != pid);
	if (call(&loop, m, "vec_query", &in, &r))
		fail_msg("vec_query: %s", r.msg);
	assert_int_equal(r.n, first_n);
	assert_memory_equal(r.out, first, first_n);
	assert_int_equal(worker_pid(m), pid2);
	/* a hostile input through the frames: an error with its message */
	lama_buf_truncate(&in, in.len - 3);
	assert_int_equal(call(&loop, m, "vec_query", &in, &r), LAMA_EINVAL);
	assert_non_null(strstr(r.msg, "vec_query"));
	/* another key for the same file */
	key[0] ^= 1;
	query_in(&in, vecs[1]);
	assert_int_equal(call(&loop, m, "vec_query", &in, &r), LAMA_ECRYPTO);
	assert_non_null(strstr(r.msg, "another key"));
	free(first);
	free(r.out);
	lama_buf_release(&in);
	lama_workers_close(m);
	assert_int_equal(uv_loop_close(&loop), 0);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_through_manager),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
