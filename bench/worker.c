/* worker.c: the worker process manager (src/worker), with real workers
 * (the lama binary beside this program's build: build-bench/src/cli/lama).
 * What each line means: docs/benchmarks.md#workers.
 *
 * dispatch: --rounds (2000) empty tasks (test echo of 0 bytes) one after
 * the other through the manager on a libuv loop, each timed, p50 and
 * p99. Baseline: a forked child echoing the same 14-byte frames over a
 * bare socketpair with blocking read/write, the floor of any round trip
 * between two processes; the two alternate in blocks of 50.
 *
 * verify: crypto verify_batch tasks of --batch (256) Ed25519 signatures
 * over 100-byte messages, kept --inflight (4) per worker in flight, with
 * 1 and 2 crypto workers in 5 alternating slices of --seconds (3) / 5
 * each, medians: signatures per second with
 * 2 workers against 1 (on 2 cores the target is a ratio >= 1.6), and 1
 * worker against lama_verify_batch in this process (what the frames and
 * the copies cost).
 *
 * latency: a 5 ms repeating uv timer's lateness (ms after its due time)
 * on the manager's loop for --seconds, p99, while 2 crypto workers are
 * kept saturated with verify_batch tasks, against the same timer with the
 * workers idle.
 *
 * apply: --apply-batches (20) batches of --apply-batch (1000) small new
 * objects (PersonName microdata, as a peer sends them) applied to a user's
 * archive through one sync worker (op apply: hashes, parsing, one
 * transaction per batch), objects per second; baseline: the same number
 * of other objects stored in this process with lama_archive_put, one
 * transaction per batch, alternating with the worker batch by batch. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "common.h"
#include "crypto/crypto.h"
#include "util/err.h"
#include "account/account.h"
#include "worker/frame.h"
#include "worker/warchive.h"
#include "worker/worker.h"

static char lama[4096];

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p * (double)(n - 1))];
}

static void on_wake(uv_timer_t *h)
{
	(void)h;
}

static lama_workers *mk(uv_loop_t *loop, const char *kind, unsigned size)
{
	struct lama_worker_pool p = { kind, size, 4096, 0 };
	lama_workers *m;
	int up = 0;

	bench_check(lama_workers_new(&m, loop, lama, &p, 1), "workers");
	/* wait until every worker runs (a pid for each) */
	while (!up) {
		json_t *s = lama_workers_status(m);
		size_t i;
		json_t *w;

		up = 1;
		json_array_foreach(s, i, w)
			if (!json_is_integer(json_object_get(w, "pid")))
				up = 0;
		json_decref(s);
		if (!up)
			uv_run(loop, UV_RUN_ONCE);
	}
	return m;
}

/* --- dispatch --- */

struct one {
	int called, rc;
};

static void on_one(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct one *o = ctx;

	o->called = 1;
	o->rc = rc;
}

static int full_io(int fd, void *p, size_t n, int wr)
{
	while (n) {
		ssize_t r = wr ? write(fd, p, n) : read(fd, p, n);

		if (r <= 0)
			return -1;
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/* One empty task through the manager, in microseconds. */
static double manager_rt(uv_loop_t *loop, lama_workers *m)
{
	struct one o = { 0, 0 };
	double t0 = bench_now();

	bench_check(lama_workers_submit(m, "test", "echo", NULL, 0, 0, 0, on_one, &o, NULL),
		    "submit");
	while (!o.called)
		uv_run(loop, UV_RUN_ONCE);
	if (o.rc)
		bench_fail("echo failed: %d", o.rc);
	return (bench_now() - t0) * 1e6;
}

/* One frame through the bare echo child, in microseconds. */
static double echo_rt(int fd)
{
	uint8_t frame[14];
	double t0 = bench_now();

	memset(frame, 0, sizeof(frame));
	frame[3] = 10;
	if (full_io(fd, frame, 14, 1) || full_io(fd, frame, 14, 0))
		bench_fail("echo child");
	return (bench_now() - t0) * 1e6;
}

/* Pins pid (0: this process) to one CPU; 0 or -1. */
static int pin(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(pid, sizeof(set), &set);
}

static void bench_dispatch(int rounds)
{
	double *t = malloc(sizeof(double) * (size_t)rounds);
	double *e = malloc(sizeof(double) * (size_t)rounds);
	uv_loop_t loop;
	lama_workers *m;
	int sv[2], k = 0;
	pid_t child;
	char extra[128];
	cpu_set_t before;
	int pinned;

	uv_loop_init(&loop);
	m = mk(&loop, "test", 1);
	/* whether two processes share a core or not changes a round trip
	 * 4-fold on this VM, and the scheduler picks at random: both pairs
	 * the same way, on two cores as workers run */
	{
		json_t *st = lama_workers_status(m);
		pid_t wpid = (pid_t)json_integer_value(json_object_get(json_array_get(st, 0), "pid"));

		json_decref(st);
		pinned = uv_available_parallelism() >= 2 &&
			 !sched_getaffinity(0, sizeof(before), &before) && !pin(0, 0) &&
			 !pin(wpid, 1);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		bench_fail("socketpair");
	child = fork();
	if (child == 0) {
		uint8_t b[14];

		close(sv[0]);
		if (pinned)
			pin(0, 1);
		while (!full_io(sv[1], b, 14, 0) && !full_io(sv[1], b, 14, 1))
			;
		_exit(0);
	}
	close(sv[1]);
	for (int i = 0; i < 100; i++) /* warm-up */
		manager_rt(&loop, m), echo_rt(sv[0]);
	/* blocks of 50 alternating: both see the same moments of the machine */
	while (k < rounds) {
		int n = rounds - k < 50 ? rounds - k : 50;

		for (int i = 0; i < n; i++)
			t[k + i] = manager_rt(&loop, m);
		for (int i = 0; i < n; i++)
			e[k + i] = echo_rt(sv[0]);
		k += n;
	}
	close(sv[0]);
	waitpid(child, NULL, 0);
	lama_workers_close(m);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	snprintf(extra, sizeof(extra), "\"rounds\": %d, \"pinned\": %s", rounds, bench_bool(pinned));
	if (pinned && sched_setaffinity(0, sizeof(before), &before)) /* for what follows */
		bench_fail("cannot undo the pinning");
	{
		double t50 = pct(t, (size_t)rounds, 0.5), t99 = pct(t, (size_t)rounds, 0.99);
		double e50 = pct(e, (size_t)rounds, 0.5), e99 = pct(e, (size_t)rounds, 0.99);

		bench_emit("worker.dispatch.p50", "us", t50, "socketpair_echo.p50", e50, extra);
		bench_emit("worker.dispatch.p99", "us", t99, "socketpair_echo.p99", e99, extra);
	}
	free(t);
	free(e);
}

/* --- verify_batch throughput and the loop's latency --- */

struct load {
	lama_workers *m;
	uint8_t *in;
	size_t n;
	unsigned batch;
	unsigned inflight, target;
	uint64_t sigs;
	int stop;
};

static void on_batch(void *ctx, int rc, const char *msg, const void *out, size_t n);

static void refill(struct load *l)
{
	while (!l->stop && l->inflight < l->target) {
		if (lama_workers_submit(l->m, "crypto", "verify_batch", l->in, l->n, 0, 0, on_batch, l,
					NULL))
			bench_fail("submit: %s", lama_errmsg());
		l->inflight++;
	}
}

static void on_batch(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct load *l = ctx;

	l->inflight--;
	if (rc || n != l->batch || !((const uint8_t *)out)[0])
		bench_fail("verify_batch failed: %s", msg ? msg : "a wrong answer");
	l->sigs += l->batch;
	refill(l);
}

/* the input of one verify_batch task: batch signatures of 100 bytes */
static uint8_t *make_batch(unsigned batch, size_t *n, struct lama_sig_item *items)
{
	uint8_t pk[32], sk[64];
	size_t item = 32 + 64 + 4 + 100;
	uint8_t *in = malloc(4 + (size_t)batch * item), *p;

	bench_check(lama_sign_keypair(pk, sk), "keypair");
	in[0] = (uint8_t)(batch >> 24), in[1] = (uint8_t)(batch >> 16);
	in[2] = (uint8_t)(batch >> 8), in[3] = (uint8_t)batch;
	p = in + 4;
	for (unsigned i = 0; i < batch; i++) {
		memcpy(p, pk, 32);
		memset(p + 100, (int)i, 100);
		lama_sign(p + 32, p + 100, 100, sk);
		p[96] = 0, p[97] = 0, p[98] = 0, p[99] = 100;
		items[i].pk = p;
		items[i].sig = p + 32;
		items[i].msg = p + 100;
		items[i].len = 100;
		p += item;
	}
	*n = (size_t)(p - in);
	return in;
}

/* Signatures per second with `size` crypto workers kept busy; with lat
 * (may be NULL) the timer's lateness samples, count in *nlat. */
struct tick {
	uv_timer_t t;
	uint64_t due;
	double *lat;
	size_t n, max;
};

static void on_tick(uv_timer_t *h)
{
	struct tick *k = h->data;
	uint64_t now = uv_hrtime();

	/* libuv's timers run on the loop's millisecond clock: a tick may
	 * come up to a millisecond early, which counts as on time */
	if (k->due && k->n < k->max)
		k->lat[k->n++] = now > k->due ? (double)(now - k->due) / 1e6 : 0;
	k->due = now + 5000000;
}

static double run_load(unsigned size, unsigned inflight, double secs, const uint8_t *in,
		       size_t n, unsigned batch, int busy, struct tick *k)
{
	uv_loop_t loop;
	struct load l;
	uv_timer_t wake;
	double t0, t;

	uv_loop_init(&loop);
	memset(&l, 0, sizeof(l));
	l.m = mk(&loop, "crypto", size);
	l.in = (uint8_t *)in;
	l.n = n;
	l.batch = batch;
	l.target = busy ? size * inflight : 0;
	uv_timer_init(&loop, &wake);
	uv_timer_start(&wake, on_wake, 50, 50);
	if (k) {
		uv_timer_init(&loop, &k->t);
		k->t.data = k;
		k->due = 0;
		k->n = 0;
		uv_timer_start(&k->t, on_tick, 5, 5);
	}
	refill(&l);
	t0 = bench_now();
	while ((t = bench_now()) - t0 < secs)
		uv_run(&loop, UV_RUN_ONCE);
	l.stop = 1;
	if (k)
		uv_close((uv_handle_t *)&k->t, NULL);
	while (l.inflight)
		uv_run(&loop, UV_RUN_ONCE);
	lama_workers_close(l.m);
	uv_close((uv_handle_t *)&wake, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return (double)l.sigs / (t - t0);
}

static void bench_verify(double secs, unsigned batch, unsigned inflight)
{
	struct lama_sig_item *items = malloc(sizeof(*items) * batch);
	int *res = malloc(sizeof(int) * batch);
	size_t n;
	uint8_t *in = make_batch(batch, &n, items);
	double one, two, local, t0, t;
	uint64_t sigs = 0;
	char extra[200];
	struct tick k;
	double idle99, busy99;

	t0 = bench_now();
	while ((t = bench_now()) - t0 < secs) {
		if (lama_verify_batch(items, batch, res))
			bench_fail("local verify");
		sigs += batch;
	}
	local = (double)sigs / (t - t0);
	/* alternating slices, medians: the cores are shared with others */
	{
		double o[5], w[5];

		for (int r = 0; r < 5; r++) {
			o[r] = run_load(1, inflight, secs / 5, in, n, batch, 1, NULL);
			w[r] = run_load(2, inflight, secs / 5, in, n, batch, 1, NULL);
		}
		one = bench_median(o, 5);
		two = bench_median(w, 5);
	}
	snprintf(extra, sizeof(extra), "\"batch\": %u, \"cores\": %u, \"target\": \"ratio >= 1.6 on 2 cores\", \"pass\": %s",
		 batch, uv_available_parallelism(), bench_bool(two / one >= 1.6));
	bench_emit("worker.verify.2_workers", "signatures/s", two, "worker.verify.1_worker", one,
		   extra);
	snprintf(extra, sizeof(extra), "\"batch\": %u", batch);
	bench_emit("worker.verify.1_worker", "signatures/s", one, "verify_batch.in_process", local,
		   extra);

	k.max = (size_t)(secs * 1000 / 5) + 100;
	k.lat = malloc(sizeof(double) * k.max);
	run_load(2, inflight, secs, in, n, batch, 0, &k);
	idle99 = pct(k.lat, k.n, 0.99);
	run_load(2, inflight, secs, in, n, batch, 1, &k);
	busy99 = pct(k.lat, k.n, 0.99);
	snprintf(extra, sizeof(extra), "\"timer_ms\": 5, \"samples\": %zu, \"workers\": 2", k.n);
	bench_emit("worker.loop_lateness.saturated.p99", "ms", busy99, "worker.loop_lateness.idle.p99",
		   idle99, extra);
	free(k.lat);
	free(in);
	free(items);
	free(res);
}

static void on_apply(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct one *o = ctx;

	(void)out;
	(void)n;
	if (rc)
		bench_fail("apply failed: %s", msg ? msg : "?");
	o->called = 1;
	o->rc = rc;
}

/* A batch of count new PersonName objects for the apply op, after the
 * handle of s (in, released by the caller with lama_buf_release_wipe). */
static void apply_batch(lama_session *s, unsigned count, unsigned tag, struct lama_buf *in)
{
	uint8_t h[4 + 1 + 32 + 4];

	*in = (struct lama_buf)LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	bench_check(lama_warchive_handle(s, in), "handle");
	lama_put_u32(h, count);
	bench_check(lama_buf_add(in, h, 4), "batch");
	for (unsigned i = 0; i < count; i++) {
		struct lama_buf md = LAMA_BUF_INIT(4096);
		char name[64];
		json_t *o;
		lama_hash hh;

		snprintf(name, sizeof(name), "applied %u.%u", tag, i);
		o = json_pack("{s:s, s:s}", "$type$", "PersonName", "name", name);
		bench_check(lama_object_microdata(lama_session_recipes(s), o, &md), "microdata");
		json_decref(o);
		lama_sha256(md.data, md.len, &hh);
		h[0] = 1;
		memcpy(h + 1, hh.b, 32);
		lama_put_u32(h + 33, (uint32_t)md.len);
		bench_check(lama_buf_add(in, h, 37), "batch");
		bench_check(lama_buf_add(in, md.data, md.len), "batch");
		lama_buf_release(&md);
	}
}

static void bench_apply(unsigned nbatch, unsigned per)
{
	struct lama_kdf_params kp = lama_kdf_min();
	struct lama_worker_pool p = { "sync", 1, 0, 0 };
	double *tw = malloc(sizeof(double) * nbatch), *tl = malloc(sizeof(double) * nbatch);
	double sw = 0, sl = 0;
	char home[4200], extra[256];
	lama_session *s;
	lama_workers *m;
	uv_loop_t loop;

	bench_mkdtemp("/tmp", "lama-bench-apply", home, sizeof(home));
	bench_check(lama_account_register(home, "bench", "pw", 2, &kp, &s), "register");
	uv_loop_init(&loop);
	bench_check(lama_workers_new(&m, &loop, lama, &p, 1), "workers");
	for (unsigned b = 0; b < nbatch; b++) {
		struct lama_buf in;
		struct one o = { 0 };
		double t0;

		apply_batch(s, per, b, &in);
		t0 = bench_now();
		bench_check(lama_workers_submit(m, "sync", "apply", in.data, in.len, 0, 0, on_apply,
						&o, NULL), "submit");
		while (!o.called)
			uv_run(&loop, UV_RUN_ONCE);
		tw[b] = bench_now() - t0;
		sw += tw[b];
		lama_buf_release_wipe(&in);
		/* the baseline: as many other objects stored here */
		t0 = bench_now();
		bench_check(lama_store_begin(lama_session_store(s)), "begin");
		for (unsigned i = 0; i < per; i++) {
			char name[64];
			json_t *obj;

			snprintf(name, sizeof(name), "local %u.%u", b, i);
			obj = json_pack("{s:s, s:s}", "$type$", "PersonName", "name", name);
			bench_check(lama_archive_put(lama_session_archive(s), obj, 0, NULL), "put");
			json_decref(obj);
		}
		bench_check(lama_store_commit(lama_session_store(s)), "commit");
		tl[b] = bench_now() - t0;
		sl += tl[b];
	}
	snprintf(extra, sizeof(extra), "\"batch\": %u, \"batches\": %u, \"batch_ms_p50\": %.2f, \"local_batch_ms_p50\": %.2f",
		 per, nbatch, bench_median(tw, nbatch) * 1e3, bench_median(tl, nbatch) * 1e3);
	bench_emit("worker.apply.objects_per_s", "objects/s", nbatch * per / sw,
		   "archive_put.objects_per_s", nbatch * per / sl, extra);
	lama_workers_close(m);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	lama_session_logout(s);
	bench_rmtree(home);
	free(tw);
	free(tl);
}

int main(int argc, char **argv)
{
	int rounds = atoi(bench_opt(argc, argv, "rounds", "2000"));
	double secs = atof(bench_opt(argc, argv, "seconds", "3"));
	unsigned batch = (unsigned)atoi(bench_opt(argc, argv, "batch", "256"));
	unsigned inflight = (unsigned)atoi(bench_opt(argc, argv, "inflight", "4"));
	const char *only = bench_opt(argc, argv, "only", "all");
	char self[4000];
	ssize_t n;

	if (rounds < 10 || secs <= 0 || batch < 1 || batch > 65536 || inflight < 1)
		bench_fail("bad options");
	bench_check(lama_crypto_init(), "crypto init");
	signal(SIGPIPE, SIG_IGN);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		bench_fail("cannot find this program");
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(lama, sizeof(lama), "%s/../src/cli/lama", self);
	if (access(lama, X_OK))
		bench_fail("no lama binary at %s", lama);
	if (!strcmp(only, "all") || !strcmp(only, "dispatch"))
		bench_dispatch(rounds);
	if (!strcmp(only, "all") || !strcmp(only, "verify"))
		bench_verify(secs, batch, inflight);
	if (!strcmp(only, "all") || !strcmp(only, "apply"))
		bench_apply((unsigned)atoi(bench_opt(argc, argv, "apply-batches", "20")),
			    (unsigned)atoi(bench_opt(argc, argv, "apply-batch", "1000")));
	return 0;
}
