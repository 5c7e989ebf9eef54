/* test_workers.c: the worker manager with real worker processes (the lama
 * binary in $LAMA_BIN) on a real loop: every op of each kind, routing,
 * back-pressure, workers killed, hanging and sending bad frames, cancel,
 * the main process killed, and a clean close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "crypto/crypto.h"
#include "testutil.h"
#include "workertest.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"
#include "worker/worker.h"

/* A timer ticking every 10 ms: the loop's pulse; the largest gap shows
 * whether anything stalled it. */
struct pulse {
	uv_timer_t t;
	uint64_t last, max_gap;
	unsigned ticks;
};

static void on_tick(uv_timer_t *h)
{
	struct pulse *p = h->data;
	uint64_t now = uv_hrtime() / 1000000;

	if (p->last && now - p->last > p->max_gap)
		p->max_gap = now - p->last;
	p->last = now;
	p->ticks++;
}

static void pulse_start(uv_loop_t *loop, struct pulse *p)
{
	memset(p, 0, sizeof(*p));
	uv_timer_init(loop, &p->t);
	p->t.data = p;
	uv_timer_start(&p->t, on_tick, 10, 10);
}

static void pulse_stop(struct pulse *p)
{
	uv_close((uv_handle_t *)&p->t, NULL);
}

/* Runs the loop until every r[i] is done (or ms pass: a failure). */
static void run_until_all(uv_loop_t *loop, struct wt_res *r, size_t n, unsigned ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
	size_t i = 0;

	for (;;) {
		while (i < n && r[i].called)
			i++;
		if (i == n)
			return;
		if (uv_hrtime() > end)
			fail_msg("task %zu not done after %u ms", i, ms);
		wt_run_for(loop, 10);
	}
}

static lama_workers *mk(uv_loop_t *loop, const char *kind, unsigned size, unsigned qmax,
			unsigned timeout)
{
	struct lama_worker_pool p = { kind, size, qmax, timeout };
	const char *exe = getenv("LAMA_BIN");
	lama_workers *m;

	assert_non_null(exe);
	assert_int_equal(lama_workers_new(&m, loop, exe, &p, 1), 0);
	return m;
}

static int submit(lama_workers *m, const char *kind, const char *op, const void *in, size_t n,
		  unsigned flags, unsigned timeout, struct wt_res *r, uint64_t *id)
{
	memset(r, 0, sizeof(*r));
	return lama_workers_submit(m, kind, op, in, n, flags, timeout, wt_on_done, r, id);
}

/* Submits, runs until done, and returns the rc. */
static int call(uv_loop_t *loop, lama_workers *m, const char *kind, const char *op,
		const void *in, size_t n, struct wt_res *r)
{
	assert_int_equal(submit(m, kind, op, in, n, 0, 0, r, NULL), 0);
	wt_run_until(loop, &r->called, 30000);
	assert_int_equal(r->called, 1);
	return r->rc;
}

static long worker_pid(lama_workers *m, size_t i)
{
	json_t *s = lama_workers_status(m);
	json_t *pid = json_object_get(json_array_get(s, i), "pid");
	long v = json_is_integer(pid) ? (long)json_integer_value(pid) : 0;

	json_decref(s);
	return v;
}

static long status_int(lama_workers *m, size_t i, const char *key)
{
	json_t *s = lama_workers_status(m);
	long v = (long)json_integer_value(json_object_get(json_array_get(s, i), key));

	json_decref(s);
	return v;
}

static long pid_of(uv_loop_t *loop, lama_workers *m)
{
	struct wt_res r;
	long pid;

	assert_int_equal(call(loop, m, "test", "pid", NULL, 0, &r), 0);
	pid = atol((char *)r.out);
	wt_res_free(&r);
	return pid;
}

/* 1 while pid is a process that is not a zombie */
static int pid_alive(long pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void finish(uv_loop_t *loop, lama_workers *m)
{
	lama_workers_close(m);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_alive(loop), 0);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/* --- the tests --- */

static void test_echo_and_errors(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;
	static char big[1];

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 1, 0, 0);
	assert_int_equal(call(&loop, m, "test", "echo", "hello", 5, &r), 0);
	assert_int_equal(r.n, 5);
	assert_memory_equal(r.out, "hello", 5);
	wt_res_free(&r);
	assert_int_equal(call(&loop, m, "test", "echo", NULL, 0, &r), 0);
	assert_int_equal(r.n, 0);
	wt_res_free(&r);
	assert_int_equal(call(&loop, m, "test", "fail", NULL, 0, &r), LAMA_EINVAL);
	assert_string_equal(r.msg, "fail: as asked");
	wt_res_free(&r);
	assert_int_equal(call(&loop, m, "test", "nosuchop", NULL, 0, &r), LAMA_ENOTFOUND);
	assert_non_null(strstr(r.msg, "no op nosuchop"));
	wt_res_free(&r);
	/* refused at submit: done never called */
	assert_int_equal(submit(m, "nokind", "echo", NULL, 0, 0, 0, &r, NULL), LAMA_ENOTFOUND);
	assert_int_equal(submit(m, "test", "Bad-Op", NULL, 0, 0, 0, &r, NULL), LAMA_EINVAL);
	assert_int_equal(submit(m, "test", "echo", big, LAMA_WORKER_PAYLOAD_MAX + 1, 0, 0, &r, NULL),
			 LAMA_ELIMIT);
	assert_int_equal(r.called, 0);
	assert_int_equal(status_int(m, 0, "done"), 2);
	assert_int_equal(status_int(m, 0, "failed"), 2);
	/* a large payload both ways: 8 MiB */
	{
		size_t n = (size_t)8 << 20;
		uint8_t *b = malloc(n);

		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)(i * 7);
		assert_int_equal(call(&loop, m, "test", "echo", b, n, &r), 0);
		assert_int_equal(r.n, n);
		assert_memory_equal(r.out, b, n);
		wt_res_free(&r);
		free(b);
	}
	finish(&loop, m);
}

static void test_crypto_ops(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;
	struct lama_kdf_params kp = lama_kdf_min();
	uint8_t in[4096], key[32], pk[32], sk[64], sig[64];
	size_t n;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "crypto", 1, 0, 0);
	/* kdf: the same key as Argon2id here */
	put64(in, kp.opslimit);
	put64(in + 8, kp.memlimit);
	memset(in + 16, 0x42, 16);
	memcpy(in + 32, "secret", 6);
	assert_int_equal(call(&loop, m, "crypto", "kdf", in, 38, &r), 0);
	assert_int_equal(r.n, 32);
	assert_int_equal(lama_pwhash(key, "secret", 6, in + 16, &kp), 0);
	assert_memory_equal(r.out, key, 32);
	wt_res_free(&r);
	assert_int_equal(call(&loop, m, "crypto", "kdf", in, 20, &r), LAMA_EINVAL);
	wt_res_free(&r);
	put64(in, 1000); /* opslimit over the ceiling */
	assert_int_equal(call(&loop, m, "crypto", "kdf", in, 38, &r), LAMA_EINVAL);
	wt_res_free(&r);

	/* sign_batch: two messages */
	assert_int_equal(lama_sign_keypair(pk, sk), 0);
	memcpy(in, sk, 64);
	put32(in + 64, 2);
	put32(in + 68, 3);
	memcpy(in + 72, "abc", 3);
	put32(in + 75, 0);
	assert_int_equal(call(&loop, m, "crypto", "sign_batch", in, 79, &r), 0);
	assert_int_equal(r.n, 128);
	lama_sign(sig, "abc", 3, sk);
	assert_memory_equal(r.out, sig, 64);
	assert_int_equal(lama_verify(r.out + 64, "", 0, pk), 0);
	wt_res_free(&r);
	put32(in + 64, 70000); /* over the batch limit */
	assert_int_equal(call(&loop, m, "crypto", "sign_batch", in, 79, &r), LAMA_ELIMIT);
	wt_res_free(&r);

	/* verify_batch: good, tampered, good */
	n = 0;
	put32(in, 3);
	n = 4;
	for (int i = 0; i < 3; i++) {
		memcpy(in + n, pk, 32);
		lama_sign(in + n + 32, "msg", 3, sk);
		if (i == 1)
			in[n + 32] ^= 1;
		put32(in + n + 96, 3);
		memcpy(in + n + 100, "msg", 3);
		n += 103;
	}
	assert_int_equal(call(&loop, m, "crypto", "verify_batch", in, n, &r), 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.out[0], 1);
	assert_int_equal(r.out[1], 0);
	assert_int_equal(r.out[2], 1);
	wt_res_free(&r);
	assert_int_equal(call(&loop, m, "crypto", "verify_batch", in, n - 1, &r), LAMA_EINVAL);
	wt_res_free(&r);

	/* seal, then open; a changed byte fails */
	{
		uint8_t k[32], sealed[256];
		size_t sn;

		lama_random(k, 32);
		memcpy(in, k, 32);
		put32(in + 32, 2);
		memcpy(in + 36, "ad", 2);
		memcpy(in + 38, "plaintext", 9);
		assert_int_equal(call(&loop, m, "crypto", "seal", in, 47, &r), 0);
		assert_int_equal(r.n, 9 + LAMA_AEAD_OVERHEAD);
		sn = r.n;
		memcpy(sealed, r.out, sn);
		wt_res_free(&r);
		memcpy(in + 38, sealed, sn);
		assert_int_equal(call(&loop, m, "crypto", "open", in, 38 + sn, &r), 0);
		assert_int_equal(r.n, 9);
		assert_memory_equal(r.out, "plaintext", 9);
		wt_res_free(&r);
		in[40] ^= 1;
		assert_int_equal(call(&loop, m, "crypto", "open", in, 38 + sn, &r), LAMA_ECRYPTO);
		wt_res_free(&r);
		assert_int_equal(call(&loop, m, "crypto", "open", in, 40, &r), LAMA_ECRYPTO);
		wt_res_free(&r);
	}
	finish(&loop, m);
}

static void test_sync_ops(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;
	uint8_t in[1024], h[6][32];
	size_t n;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "sync", 1, 0, 0);
	for (int i = 0; i < 6; i++)
		memset(h[i], 0x10 * (i + 1), 32);
	/* A = {1,2,4}, B = {2,3,4,5}: A lacks 3,5; B lacks 1 */
	put32(in, 3);
	memcpy(in + 4, h[1], 32);
	memcpy(in + 36, h[2], 32);
	memcpy(in + 68, h[4], 32);
	put32(in + 100, 4);
	memcpy(in + 104, h[2], 32);
	memcpy(in + 136, h[3], 32);
	memcpy(in + 168, h[4], 32);
	memcpy(in + 200, h[5], 32);
	n = 232;
	assert_int_equal(call(&loop, m, "sync", "diff", in, n, &r), 0);
	assert_int_equal(r.n, 4 + 32 + 4 + 64);
	assert_int_equal(r.out[3], 1);
	assert_memory_equal(r.out + 4, h[1], 32);
	assert_int_equal(r.out[39], 2);
	assert_memory_equal(r.out + 40, h[3], 32);
	assert_memory_equal(r.out + 72, h[5], 32);
	wt_res_free(&r);
	/* not sorted */
	memcpy(in + 4, h[4], 32);
	assert_int_equal(call(&loop, m, "sync", "diff", in, n, &r), LAMA_EINVAL);
	assert_non_null(strstr(r.msg, "sorted"));
	wt_res_free(&r);
	/* a count beyond the input */
	put32(in, 1000);
	assert_int_equal(call(&loop, m, "sync", "diff", in, n, &r), LAMA_EINVAL);
	wt_res_free(&r);

	/* hash_batch: "abc" and "" */
	put32(in, 2);
	put32(in + 4, 3);
	memcpy(in + 8, "abc", 3);
	put32(in + 11, 0);
	assert_int_equal(call(&loop, m, "sync", "hash_batch", in, 15, &r), 0);
	assert_int_equal(r.n, 64);
	{
		lama_hash a, e;

		lama_sha256("abc", 3, &a);
		lama_sha256("", 0, &e);
		assert_memory_equal(r.out, a.b, 32);
		assert_memory_equal(r.out + 32, e.b, 32);
	}
	wt_res_free(&r);
	assert_int_equal(call(&loop, m, "sync", "hash_batch", in, 16, &r), LAMA_EINVAL);
	wt_res_free(&r);
	finish(&loop, m);
}

/* Two tasks at once go to two workers; four spread two and two. */
static void test_least_busy(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r[4];
	uint8_t ms[4];

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 2, 0, 0);
	put32(ms, 200);
	for (int i = 0; i < 4; i++)
		assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &r[i], NULL), 0);
	assert_int_equal(status_int(m, 0, "queued"), 2);
	run_until_all(&loop, r, 4, 30000);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i].rc, 0);
	assert_string_not_equal((char *)r[0].out, (char *)r[1].out);
	assert_int_equal(status_int(m, 0, "done"), 2);
	assert_int_equal(status_int(m, 1, "done"), 2);
	for (int i = 0; i < 4; i++)
		wt_res_free(&r[i]);
	finish(&loop, m);
}

/* lama_workers_recycle: the idle worker goes at once, the busy one answers
 * its task first; both come back as new processes, not counted as
 * restarts, and take tasks again. */
static void test_recycle(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r, r2;
	uint8_t ms[4];
	long p0, p1, busy;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 2, 0, 0);
	for (int i = 0; i < 400 && (!worker_pid(m, 0) || !worker_pid(m, 1)); i++)
		wt_run_for(&loop, 10);
	p0 = worker_pid(m, 0);
	p1 = worker_pid(m, 1);
	assert_true(p0 > 0 && p1 > 0);
	put32(ms, 400);
	assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &r, NULL), 0);
	wt_run_for(&loop, 50);
	{
		json_t *st = lama_workers_status(m);

		busy = json_is_true(json_object_get(json_array_get(st, 0), "busy")) ? p0 : p1;
		json_decref(st);
	}
	lama_workers_recycle(m);
	/* a task submitted now waits for a fresh worker */
	assert_int_equal(submit(m, "test", "pid", NULL, 0, 0, 0, &r2, NULL), 0);
	wt_run_until(&loop, &r.called, 30000);
	assert_int_equal(r.rc, 0);
	assert_int_equal(atol((char *)r.out), busy); /* answered, not killed */
	wt_run_until(&loop, &r2.called, 30000);
	assert_int_equal(r2.rc, 0);
	assert_true(atol((char *)r2.out) != p0 && atol((char *)r2.out) != p1);
	for (int i = 0; i < 400; i++) {
		long a = worker_pid(m, 0), b = worker_pid(m, 1);

		if (a && b && a != p0 && a != p1 && b != p0 && b != p1)
			break;
		wt_run_for(&loop, 10);
	}
	for (size_t i = 0; i < 2; i++) {
		long pid = worker_pid(m, i);

		assert_true(pid > 0 && pid != p0 && pid != p1);
		assert_int_equal(status_int(m, i, "restarts"), 0);
	}
	assert_false(pid_alive(p0));
	assert_false(pid_alive(p1));
	wt_res_free(&r);
	wt_res_free(&r2);
	finish(&loop, m);
}

static void test_queue_bound(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r[4];
	uint8_t ms[4];

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 1, 2, 0);
	put32(ms, 100);
	for (int i = 0; i < 3; i++) /* one runs, two wait */
		assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &r[i], NULL), 0);
	assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &r[3], NULL), LAMA_EBUSY);
	assert_non_null(strstr(lama_errmsg(), "busy"));
	wt_run_until(&loop, &r[2].called, 30000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].called, 1);
		assert_int_equal(r[i].rc, 0);
		wt_res_free(&r[i]);
	}
	assert_int_equal(r[3].called, 0);
	/* room again */
	assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &r[3], NULL), 0);
	wt_run_until(&loop, &r[3].called, 30000);
	wt_res_free(&r[3]);
	finish(&loop, m);
}

/* kill -9 of the worker right after a task was handed to it: retried once
 * when idempotent, else a clear failure; the worker comes back and the
 * loop's pulse never stops. */
static void kill_mid_task(const char *kind, const char *op, const uint8_t *in, size_t n,
			  const uint8_t *expect, size_t en)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;
	struct pulse pl;
	long pid, pid2;
	char want[128];

	uv_loop_init(&loop);
	pulse_start(&loop, &pl);
	m = mk(&loop, kind, 1, 0, 0);
	/* idempotent: retried on the new worker, and right */
	while (!(pid = worker_pid(m, 0)))
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(submit(m, kind, op, in, n, LAMA_TASK_IDEMPOTENT, 0, &r, NULL), 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	wt_run_until(&loop, &r.called, 30000);
	assert_int_equal(r.rc, 0);
	pid2 = worker_pid(m, 0);
	assert_true(pid2 > 0 && pid2 != pid);
	if (expect) {
		assert_int_equal(r.n, en);
		assert_memory_equal(r.out, expect, en);
	} else { /* sleep answers with the pid of the worker that ran it */
		assert_int_equal(atol((char *)r.out), pid2);
	}
	wt_res_free(&r);
	assert_int_equal(status_int(m, 0, "restarts"), 1);

	/* not idempotent: fails, naming the worker, the signal and the op */
	assert_int_equal(submit(m, kind, op, in, n, 0, 0, &r, NULL), 0);
	assert_int_equal(kill((pid_t)pid2, SIGKILL), 0);
	wt_run_until(&loop, &r.called, 30000);
	assert_int_equal(r.rc, LAMA_EIO);
	snprintf(want, sizeof(want), "the %s worker died (signal 9) while running %s", kind, op);
	assert_string_equal(r.msg, want);
	wt_res_free(&r);
	assert_int_equal(status_int(m, 0, "failed"), 1);
	/* back, with a new pid, after its back-off */
	assert_int_equal(call(&loop, m, kind, op, in, n, &r), 0);
	if (expect)
		assert_memory_equal(r.out, expect, en);
	wt_res_free(&r);
	assert_true(worker_pid(m, 0) != pid2);
	assert_int_equal(status_int(m, 0, "restarts"), 2);
	/* the loop kept its 10 ms pulse throughout (generous: ASan, busy cores) */
	assert_true(pl.ticks > 5);
	assert_true(pl.max_gap < 500);
	pulse_stop(&pl);
	finish(&loop, m);
}

static void test_kill_crypto(void **state)
{
	struct lama_kdf_params kp = lama_kdf_interactive();
	uint8_t in[40], key[32];

	(void)state;
	put64(in, kp.opslimit);
	put64(in + 8, kp.memlimit);
	memset(in + 16, 7, 16);
	memcpy(in + 32, "password", 8);
	assert_int_equal(lama_pwhash(key, "password", 8, in + 16, &kp), 0);
	kill_mid_task("crypto", "kdf", in, 40, key, 32);
}

static void test_kill_sync(void **state)
{
	size_t n = (size_t)4 << 20;
	uint8_t *in = malloc(n + 8);
	lama_hash h;

	(void)state;
	put32(in, 1);
	put32(in + 4, (uint32_t)n);
	memset(in + 8, 'x', n);
	lama_sha256(in + 8, n, &h);
	kill_mid_task("sync", "hash_batch", in, n + 8, h.b, 32);
	free(in);
}

static void test_kill_test(void **state)
{
	uint8_t ms[4];

	(void)state;
	/* long enough that the worker cannot answer before the kill lands */
	put32(ms, 300);
	kill_mid_task("test", "sleep", ms, 4, NULL, 0);
}

/* A worker that crashes on its own (abort) is restarted too. */
static void test_crash(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 1, 0, 0);
	assert_int_equal(call(&loop, m, "test", "crash", NULL, 0, &r), LAMA_EIO);
	assert_string_equal(r.msg, "the test worker died (signal 6) while running crash");
	wt_res_free(&r);
	/* idempotent: retried once, dies again, then fails */
	assert_int_equal(submit(m, "test", "crash", NULL, 0, LAMA_TASK_IDEMPOTENT, 0, &r, NULL), 0);
	wt_run_until(&loop, &r.called, 30000);
	assert_int_equal(r.rc, LAMA_EIO);
	wt_res_free(&r);
	assert_int_equal(status_int(m, 0, "restarts") >= 2, 1);
	assert_int_equal(call(&loop, m, "test", "echo", "x", 1, &r), 0);
	wt_res_free(&r);
	finish(&loop, m);
}

static void test_timeout(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;
	long pid;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 1, 0, 0);
	pid = pid_of(&loop, m);
	assert_int_equal(submit(m, "test", "hang", NULL, 0, LAMA_TASK_IDEMPOTENT, 300, &r, NULL), 0);
	wt_run_until(&loop, &r.called, 30000);
	assert_int_equal(r.rc, LAMA_ETIMEDOUT);
	assert_string_equal(r.msg, "the test task hang timed out after 300 ms");
	wt_res_free(&r);
	/* replaced at once, not retried */
	assert_int_not_equal(pid_of(&loop, m), pid);
	assert_int_equal(status_int(m, 0, "restarts"), 1);
	assert_int_equal(status_int(m, 0, "failed"), 1);
	finish(&loop, m);
}

static void test_bad_frames(void **state)
{
	static const char *kinds = "tog";

	(void)state;
	for (const char *k = kinds; *k; k++) {
		uv_loop_t loop;
		lama_workers *m;
		struct wt_res r;
		long pid;

		uv_loop_init(&loop);
		m = mk(&loop, "test", 1, 0, 0);
		pid = pid_of(&loop, m);
		assert_int_equal(call(&loop, m, "test", "garbage", k, 1, &r), LAMA_EIO);
		assert_non_null(strstr(r.msg, "while running garbage"));
		if (*k == 'o')
			assert_non_null(strstr(r.msg, "a length of 4294967280 bytes"));
		if (*k == 'g')
			assert_non_null(strstr(r.msg, "unknown type 99"));
		wt_res_free(&r);
		/* the manager is fine, the worker replaced */
		assert_int_not_equal(pid_of(&loop, m), pid);
		assert_false(pid_alive(pid));
		finish(&loop, m);
	}
}

static void test_cancel(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res a, b, c;
	uint8_t ms[4];
	uint64_t ida, idb, idc;
	long pid;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 1, 0, 0);
	pid = pid_of(&loop, m);
	put32(ms, 300);
	assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &a, &ida), 0);
	assert_int_equal(submit(m, "test", "echo", "q", 1, 0, 0, &b, &idb), 0);
	/* queued: dropped at once */
	assert_int_equal(lama_workers_cancel(m, idb), 0);
	assert_int_equal(b.called, 1);
	assert_int_equal(b.rc, LAMA_ECANCELED);
	assert_int_equal(lama_workers_cancel(m, idb), LAMA_ENOTFOUND);
	/* running: answered at once; the worker finishes and stays */
	assert_int_equal(lama_workers_cancel(m, ida), 0);
	assert_int_equal(a.called, 1);
	assert_int_equal(a.rc, LAMA_ECANCELED);
	assert_int_equal(pid_of(&loop, m), pid);
	assert_int_equal(a.called, 1);
	assert_int_equal(status_int(m, 0, "restarts"), 0);
	/* running and never answering: killed after the grace, replaced */
	assert_int_equal(submit(m, "test", "hang", NULL, 0, 0, 0, &c, &idc), 0);
	wt_run_for(&loop, 100);
	assert_int_equal(lama_workers_cancel(m, idc), 0);
	assert_int_equal(c.called, 1);
	assert_int_equal(c.rc, LAMA_ECANCELED);
	wt_run_for(&loop, LAMA_WORKERS_CANCEL_GRACE_MS + 500);
	assert_false(pid_alive(pid));
	assert_int_not_equal(pid_of(&loop, m), pid);
	assert_int_equal(status_int(m, 0, "restarts"), 1);
	assert_int_equal(c.called, 1);
	wt_res_free(&a);
	wt_res_free(&b);
	wt_res_free(&c);
	finish(&loop, m);
}

/* The process that owns the manager is killed with SIGKILL: no worker
 * outlives it by more than a second. */
static void test_owner_killed(void **state)
{
	int fds[2];
	long pids[2];
	pid_t owner;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	owner = fork();
	assert_true(owner >= 0);
	if (owner == 0) {
		uv_loop_t loop;
		lama_workers *m;

		close(fds[0]);
		uv_loop_init(&loop);
		m = mk(&loop, "test", 2, 0, 0);
		for (size_t i = 0; i < 2; i++) {
			while (!(pids[i] = worker_pid(m, i)))
				uv_run(&loop, UV_RUN_ONCE);
		}
		{
			/* both run (past their checks of the parent) */
			struct wt_res r[2];
			uint8_t ms[4];

			put32(ms, 50);
			for (int i = 0; i < 2; i++)
				assert_int_equal(submit(m, "test", "sleep", ms, 4, 0, 0, &r[i], NULL), 0);
			wt_run_until(&loop, &r[0].called, 30000);
			wt_run_until(&loop, &r[1].called, 30000);
			/* then busy for good: they do not read, so no EOF can end
			 * them; only PR_SET_PDEATHSIG can */
			for (int i = 0; i < 2; i++)
				assert_int_equal(submit(m, "test", "hang", NULL, 0, 0, 0, &r[i], NULL), 0);
			wt_run_for(&loop, 200);
		}
		if (write(fds[1], pids, sizeof(pids)) != (ssize_t)sizeof(pids))
			_exit(3);
		for (;;)
			uv_run(&loop, UV_RUN_DEFAULT);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], pids, sizeof(pids)), (ssize_t)sizeof(pids));
	close(fds[0]);
	assert_true(pid_alive(pids[0]) && pid_alive(pids[1]));
	assert_int_equal(kill(owner, SIGKILL), 0);
	assert_int_equal(waitpid(owner, NULL, 0), owner);
	for (int i = 0; i < 100 && (pid_alive(pids[0]) || pid_alive(pids[1])); i++)
		usleep(10000);
	assert_false(pid_alive(pids[0]));
	assert_false(pid_alive(pids[1]));
}

/* close: tasks fail as canceled, idle workers leave at EOF, hanging ones
 * are killed after the grace; no process, no handle is left. */
static void test_close(void **state)
{
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r[3];
	long pids[2];

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 2, 0, 0);
	for (size_t i = 0; i < 2; i++)
		while (!(pids[i] = worker_pid(m, i)))
			uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(submit(m, "test", "hang", NULL, 0, 0, 0, &r[0], NULL), 0);
	assert_int_equal(submit(m, "test", "echo", "a", 1, 0, 0, &r[1], NULL), 0);
	assert_int_equal(submit(m, "test", "echo", "b", 1, 0, 0, &r[2], NULL), 0);
	wt_run_until(&loop, &r[1].called, 30000);
	wt_run_for(&loop, 100);
	lama_workers_close(m);
	assert_int_equal(r[0].called, 1);
	assert_int_equal(r[0].rc, LAMA_ECANCELED);
	assert_int_equal(r[1].rc, 0);
	assert_int_equal(r[2].called, 1);
	assert_false(pid_alive(pids[0]));
	assert_false(pid_alive(pids[1]));
	/* reaped, not just dead */
	assert_true(kill((pid_t)pids[0], 0) < 0 && errno == ESRCH);
	assert_true(kill((pid_t)pids[1], 0) < 0 && errno == ESRCH);
	assert_int_equal(uv_loop_alive(&loop), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	for (int i = 0; i < 3; i++)
		wt_res_free(&r[i]);
}

/* Many tasks over two workers: every answer is its own task's. */
static void test_many(void **state)
{
	enum { N = 300 };
	static struct wt_res r[N];
	uv_loop_t loop;
	lama_workers *m;

	(void)state;
	uv_loop_init(&loop);
	m = mk(&loop, "test", 2, N, 0);
	for (int i = 0; i < N; i++) {
		char in[32];
		int n = snprintf(in, sizeof(in), "task %d", i);

		assert_int_equal(submit(m, "test", "echo", in, (size_t)n, 0, 0, &r[i], NULL), 0);
	}
	run_until_all(&loop, r, N, 30000);
	for (int i = 0; i < N; i++) {
		char in[32];

		snprintf(in, sizeof(in), "task %d", i);
		assert_int_equal(r[i].rc, 0);
		assert_string_equal((char *)r[i].out, in);
		wt_res_free(&r[i]);
	}
	assert_int_equal(status_int(m, 0, "done") + status_int(m, 1, "done"), N);
	assert_true(status_int(m, 0, "done") > 0 && status_int(m, 1, "done") > 0);
	finish(&loop, m);
}

/* Out of memory in new and submit: a clear error, nothing leaked, nothing
 * started (LSan and the loop's handle count tell). */
static void test_oom(void **state)
{
	struct lama_worker_pool p = { "test", 2, 0, 0 };
	uv_loop_t loop;
	lama_workers *m = NULL;
	struct wt_res r;
	int rc = -1;

	(void)state;
	uv_loop_init(&loop);
	for (unsigned long n = 1; rc; n++) {
		lama_mem_fail_after(n, 0);
		rc = lama_workers_new(&m, &loop, getenv("LAMA_BIN"), &p, 1);
		lama_mem_fail_after(0, 0);
		if (rc) {
			assert_int_equal(rc, LAMA_ENOMEM);
			assert_null(m);
			assert_int_equal(uv_loop_alive(&loop), 0);
		}
		assert_true(n < 100);
	}
	{
		struct lama_worker_pool bad[2] = { { "nokind", 1, 0, 0 }, { "test", 1, 0, 0 } };
		lama_workers *m2;

		assert_int_equal(lama_workers_new(&m2, &loop, "x", bad, 1), LAMA_EINVAL);
		bad[0].kind = "Bad kind";
		assert_int_equal(lama_workers_new(&m2, &loop, "x", bad, 1), LAMA_EINVAL);
		bad[0].kind = "test";
		assert_int_equal(lama_workers_new(&m2, &loop, "x", bad, 2), LAMA_EINVAL);
		bad[0].size = LAMA_WORKERS_POOL_MAX + 1;
		assert_int_equal(lama_workers_new(&m2, &loop, "x", bad, 1), LAMA_ELIMIT);
		assert_null(m2);
	}
	lama_mem_fail_after(1, 0);
	assert_int_equal(submit(m, "test", "echo", "x", 1, 0, 0, &r, NULL), LAMA_ENOMEM);
	lama_mem_fail_after(0, 0);
	assert_int_equal(r.called, 0);
	assert_int_equal(call(&loop, m, "test", "echo", "x", 1, &r), 0);
	wt_res_free(&r);
	finish(&loop, m);
}

/* A binary that cannot start: retried on the back-off, tasks wait in the
 * queue and fail as canceled at close. */
static void test_bad_exe(void **state)
{
	struct lama_worker_pool p = { "test", 1, 0, 0 };
	uv_loop_t loop;
	lama_workers *m;
	struct wt_res r;

	(void)state;
	uv_loop_init(&loop);
	assert_int_equal(lama_workers_new(&m, &loop, "/nonexistent/lama", &p, 1), 0);
	assert_int_equal(worker_pid(m, 0), 0);
	assert_int_equal(submit(m, "test", "echo", "x", 1, 0, 0, &r, NULL), 0);
	wt_run_for(&loop, 400); /* 100 + 200 ms of back-off: two more tries */
	assert_int_equal(r.called, 0);
	assert_true(status_int(m, 0, "restarts") >= 1 && status_int(m, 0, "restarts") <= 3);
	assert_int_equal(status_int(m, 0, "queued"), 1);
	finish(&loop, m);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.rc, LAMA_ECANCELED);
	wt_res_free(&r);
}

/* `lama worker` by hand: one line, exit 2. */
static void test_by_hand(void **state)
{
	char cmd[4300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "'%s' worker crypto </dev/null 2>/dev/null", getenv("LAMA_BIN"));
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "'%s' worker crypto %ld 3</dev/null </dev/null 2>/dev/null",
		 getenv("LAMA_BIN"), (long)getpid());
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "'%s' worker nokind 1 2>/dev/null", getenv("LAMA_BIN"));
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_and_errors),
		cmocka_unit_test(test_crypto_ops),
		cmocka_unit_test(test_sync_ops),
		cmocka_unit_test(test_least_busy),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_recycle),
		cmocka_unit_test(test_kill_crypto),
		cmocka_unit_test(test_kill_sync),
		cmocka_unit_test(test_kill_test),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_owner_killed),
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_oom),
		cmocka_unit_test(test_by_hand),
		cmocka_unit_test(test_bad_exe),
	};

	if (lama_crypto_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
