/* ops_test.c: the "test" worker's ops, for the manager's tests only: they
 * misbehave on purpose (docs/workers.md#test). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"
#include "worker/frame.h"
#include "worker/ops.h"

int lama_worker_test_fd = -1;

static void write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void hang(void)
{
	for (;;)
		pause();
}

static int add_pid(struct lama_buf *out)
{
	return lama_buf_addf(out, "%ld", (long)getpid());
}

int lama_worker_ops_test(const char *op, const void *in, size_t n, struct lama_buf *out)
{
	const uint8_t *p = in;

	if (!strcmp(op, "echo"))
		return lama_buf_add(out, in, n);
	if (!strcmp(op, "pid"))
		return add_pid(out);
	if (!strcmp(op, "fail"))
		return lama_error(LAMA_EINVAL, "fail: as asked");
	if (!strcmp(op, "sleep")) {
		struct timespec ts;
		uint32_t ms;

		if (n != 4)
			return lama_error(LAMA_EINVAL, "sleep: the input is a u32 of milliseconds");
		ms = lama_get_u32(p);
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000;
		while (nanosleep(&ts, &ts))
			;
		return add_pid(out);
	}
	if (!strcmp(op, "crash")) {
		struct rlimit no = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no); /* no core file from a test */
		abort();
	}
	if (!strcmp(op, "hang"))
		hang();
	if (!strcmp(op, "garbage")) {
		uint8_t f[64];

		memset(f, 0, sizeof(f));
		if (n != 1)
			return lama_error(LAMA_EINVAL, "garbage: the input is one byte: t, o or g");
		if (p[0] == 't') {
			/* a frame cut short: the length promises 100 bytes, EOF after 14 */
			lama_put_u32(f, 100);
			f[4] = LAMA_FRAME_RESULT;
			write_all(lama_worker_test_fd, f, 18);
			_exit(0);
		} else if (p[0] == 'o') {
			lama_put_u32(f, 0xfffffff0u); /* far over the limit */
			write_all(lama_worker_test_fd, f, 18);
		} else {
			lama_put_u32(f, 20);
			f[4] = 99; /* no such type */
			memset(f + 5, 0xa5, 19);
			write_all(lama_worker_test_fd, f, 24);
		}
		hang(); /* the manager must end it */
	}
	return lama_error(LAMA_ENOTFOUND, "the test worker has no op %s", op);
}
