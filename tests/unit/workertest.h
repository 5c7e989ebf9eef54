/* workertest.h: what the unit tests that drive real worker processes
 * through the manager (src/worker) share: a task's result, its done
 * callback, and running a libuv loop until something happened. Include
 * after cmocka.h and <uv.h>. */
#ifndef LAMA_WORKERTEST_H
#define LAMA_WORKERTEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* One task's answer, as its done callback saw it. */
struct wt_res {
	int called; /* times done ran: must end at exactly 1 */
	int rc;
	char msg[512];
	uint8_t *out; /* a copy of the output, NUL-terminated (malloc) */
	size_t n;
};

/* A lama_task_done for lama_workers_submit with a struct wt_res as ctx. */
static inline void wt_on_done(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct wt_res *r = ctx;

	r->called++;
	r->rc = rc;
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
	free(r->out);
	r->out = malloc(n + 1);
	assert_non_null(r->out);
	if (n)
		memcpy(r->out, out, n);
	r->out[n] = 0;
	r->n = n;
}

static inline void wt_res_free(struct wt_res *r)
{
	free(r->out);
	memset(r, 0, sizeof(*r));
}

static inline void wt_on_wake(uv_timer_t *h)
{
	(void)h;
}

/* Runs the loop until *flag (may be NULL: never) becomes nonzero or ms
 * pass; a timer wakes the loop every 5 ms to look at the clock. 1 if the
 * flag was set. */
static inline int wt_run(uv_loop_t *loop, const int *flag, unsigned ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
	uv_timer_t t;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, wt_on_wake, 5, 5);
	while (!(flag && *flag) && uv_hrtime() < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return flag && *flag;
}

/* Runs the loop until *flag becomes nonzero; not within ms fails the test. */
static inline void wt_run_until(uv_loop_t *loop, const int *flag, unsigned ms)
{
	if (!wt_run(loop, flag, ms))
		fail_msg("timed out after %u ms", ms);
}

/* Runs the loop for ms. */
static inline void wt_run_for(uv_loop_t *loop, unsigned ms)
{
	wt_run(loop, NULL, ms);
}

#endif
