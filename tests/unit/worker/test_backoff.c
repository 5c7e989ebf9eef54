/* test_backoff.c: the manager's restart back-off, measured on a real
 * worker ($LAMA_BIN) killed again and again from outside: each death waits
 * twice as long as the one before (100, 200, 400 ... ms), never more than
 * LAMA_WORKERS_BACKOFF_MAX_MS, and a worker that lived the healthy period
 * (set short with lama_workers_set_healthy_ms) starts again at the
 * minimum. A worker the manager kills itself is restarted at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <unistd.h>

#include <uv.h>

#include "crypto/crypto.h"
#include "testutil.h"
#include "workertest.h"
#include "util/err.h"
#include "worker/worker.h"

#define HEALTHY_MS 2000
/* how late a restart may come: ASan, two busy cores, process start */
#define SLACK_MS 400

static long worker_pid(lama_workers *m)
{
	json_t *s = lama_workers_status(m);
	json_t *pid = json_object_get(json_array_get(s, 0), "pid");
	long v = json_is_integer(pid) ? (long)json_integer_value(pid) : 0;

	json_decref(s);
	return v;
}

/* Runs the loop until the worker has a pid other than `old` (0: any);
 * returns it. The loop wakes every millisecond to look. */
static long wait_pid(uv_loop_t *loop, lama_workers *m, long old, unsigned ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
	uv_timer_t t;
	long pid;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, wt_on_wake, 1, 1);
	while (((pid = worker_pid(m)) == 0 || pid == old) && uv_hrtime() < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	if (pid == 0 || pid == old)
		fail_msg("no new worker after %u ms", ms);
	return pid;
}

/* SIGKILLs the worker and returns the ms until its successor runs. */
static unsigned kill_and_time(uv_loop_t *loop, lama_workers *m, long *pid)
{
	uint64_t t0 = uv_hrtime();

	assert_int_equal(kill((pid_t)*pid, SIGKILL), 0);
	*pid = wait_pid(loop, m, *pid, LAMA_WORKERS_BACKOFF_MAX_MS + 5000);
	return (unsigned)((uv_hrtime() - t0) / 1000000);
}

static lama_workers *mk(uv_loop_t *loop, unsigned timeout_ms)
{
	struct lama_worker_pool p = { "test", 1, 0, timeout_ms };
	lama_workers *m;

	assert_non_null(getenv("LAMA_BIN"));
	uv_loop_init(loop);
	assert_int_equal(lama_workers_new(&m, loop, getenv("LAMA_BIN"), &p, 1), 0);
	return m;
}

static void finish(uv_loop_t *loop, lama_workers *m)
{
	lama_workers_close(m);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_backoff(void **state)
{
	uv_loop_t loop;
	lama_workers *m = mk(&loop, 0);
	/* deaths in a row, each successor killed as soon as it runs */
	static const unsigned want[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000 };
	const unsigned n = sizeof(want) / sizeof(want[0]);
	unsigned got[10];
	long pid;

	_Static_assert(LAMA_WORKERS_BACKOFF_MIN_MS == 100 && LAMA_WORKERS_BACKOFF_MAX_MS == 5000,
		       "the expected delays");
	(void)state;
	assert_int_equal(lama_workers_set_healthy_ms(m, "nokind", 5), LAMA_ENOTFOUND);
	assert_int_equal(lama_workers_set_healthy_ms(m, "test", HEALTHY_MS), 0);
	pid = wait_pid(&loop, m, 0, 10000);
	for (unsigned i = 0; i < n; i++) {
		got[i] = kill_and_time(&loop, m, &pid);
		print_message("death %u: restarted after %u ms (back-off %u)\n", i + 1, got[i],
			      want[i]);
		assert_true(got[i] + 2 >= want[i]); /* timers round to the ms */
		assert_true(got[i] <= want[i] + SLACK_MS);
	}
	/* the delays grew: each at least 1.5 times the one before, to the cap */
	for (unsigned i = 1; i < 6; i++)
		assert_true(got[i] * 2 >= got[i - 1] * 3);
	/* alive for the healthy period: back at the minimum */
	wt_run_for(&loop, HEALTHY_MS + 200);
	got[n] = kill_and_time(&loop, m, &pid);
	print_message("after %u ms alive: restarted after %u ms\n", HEALTHY_MS + 200, got[n]);
	assert_true(got[n] + 2 >= LAMA_WORKERS_BACKOFF_MIN_MS);
	assert_true(got[n] <= LAMA_WORKERS_BACKOFF_MIN_MS + SLACK_MS);
	/* and from there it grows again: 200 */
	got[n + 1] = kill_and_time(&loop, m, &pid);
	assert_true(got[n + 1] + 2 >= 2 * LAMA_WORKERS_BACKOFF_MIN_MS);
	assert_true(got[n + 1] <= 2 * LAMA_WORKERS_BACKOFF_MIN_MS + SLACK_MS);
	assert_int_equal(lama_workers_set_healthy_ms(m, "test", 0), 0);
	finish(&loop, m);
}

struct res {
	int called, rc;
};

static void on_done(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct res *r = ctx;

	(void)msg, (void)out, (void)n;
	r->called++;
	r->rc = rc;
}

/* A worker the manager ends (a task over its time limit) comes back at
 * once, however often: no back-off for deaths that are not its own. */
static void test_no_backoff_when_killed_by_manager(void **state)
{
	uv_loop_t loop;
	lama_workers *m = mk(&loop, 50);
	long pid;

	(void)state;
	pid = wait_pid(&loop, m, 0, 10000);
	for (int i = 0; i < 4; i++) {
		struct res r = { 0, 0 };
		uint64_t t0;
		unsigned ms;

		assert_int_equal(lama_workers_submit(m, "test", "hang", NULL, 0, 0, 0, on_done, &r,
						     NULL),
				 0);
		while (!r.called)
			uv_run(&loop, UV_RUN_ONCE);
		assert_int_equal(r.rc, LAMA_ETIMEDOUT);
		t0 = uv_hrtime();
		pid = wait_pid(&loop, m, pid, 10000);
		ms = (unsigned)((uv_hrtime() - t0) / 1000000);
		print_message("ended by the manager %d: back after %u ms\n", i + 1, ms);
		/* the 4th would wait 800 ms if it counted */
		assert_true(ms < LAMA_WORKERS_BACKOFF_MIN_MS + SLACK_MS / 2);
	}
	finish(&loop, m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_no_backoff_when_killed_by_manager),
	};

	if (lama_crypto_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
