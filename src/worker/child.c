/* child.c: the worker side (lama_worker_main): blocking reads of one task
 * at a time on the socket from the manager, since a worker has nothing
 * else to do. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/frame.h"
#include "worker/ops.h"
#include "worker/warchive.h"

static const struct {
	const char *kind;
	lama_worker_op fn;
} kinds[] = {
	{ "crypto", lama_worker_ops_crypto },
	{ "sync", lama_worker_ops_sync },
	{ "index", lama_worker_ops_index },
	{ "test", lama_worker_ops_test },
};

static lama_worker_op find_kind(const char *kind)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i].kind))
			return kinds[i].fn;
	return NULL;
}

int lama_worker_kind_known(const char *kind)
{
	return kind && find_kind(kind) != NULL;
}

/* 1 read everything, 0 EOF before the first byte, -1 error or EOF inside */
static int read_full(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 && got == 0 ? 0 : -1;
		got += (size_t)r;
	}
	return 1;
}

/* 0 written, 1 the manager is gone (EPIPE), or a LAMA_E* code; send_frame
 * and run_task pass the 1 on */
static int write_full(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		/* the manager closed its end (a shutdown while we answered):
		 * the same as EOF, nothing to report */
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 1;
		if (w <= 0)
			return lama_error(LAMA_EIO, "worker: cannot write to the manager: %s",
					  strerror(errno));
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_frame(int fd, unsigned type, uint64_t id, const char *op, size_t oplen,
		      const void *payload, size_t n)
{
	uint8_t head[4 + LAMA_FRAME_HEAD + LAMA_WORKER_OP_MAX];
	size_t h = lama_frame_head(head, type, id, op, oplen, n);
	int rc = write_full(fd, head, h);

	return rc ? rc : write_full(fd, payload, n);
}

static int run_task(int fd, lama_worker_op fn, const struct lama_frame *f)
{
	struct lama_buf out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	char op[LAMA_WORKER_OP_MAX + 1];
	int rc;

	memcpy(op, f->op, f->oplen);
	op[f->oplen] = '\0';
	lama_error_clear();
	rc = fn(op, f->payload, f->n, &out);
	if (!rc) {
		rc = send_frame(fd, LAMA_FRAME_RESULT, f->id, NULL, 0, out.data ? out.data : "",
				out.len);
	} else {
		uint8_t e[4 + LAMA_FRAME_MSG_MAX];
		const char *msg = lama_errmsg();
		size_t ml = strnlen(msg, LAMA_FRAME_MSG_MAX);

		/* a code outside lama's range would confuse the manager */
		if (rc > 0 || rc < -64)
			rc = LAMA_EIO;
		lama_put_u32(e, (uint32_t)(int32_t)rc);
		memcpy(e + 4, msg, ml);
		rc = send_frame(fd, LAMA_FRAME_ERROR, f->id, NULL, 0, e, 4 + ml);
	}
	/* results may be keys (kdf) or plaintext (open) */
	lama_buf_release_wipe(&out);
	return rc;
}

int lama_worker_main(const char *kind, int fd)
{
	lama_worker_op fn = find_kind(kind);
	uint8_t hello[5], len4[4];
	int rc = 0;

	if (!fn)
		return lama_error(LAMA_EINVAL, "no worker kind %.32s", kind);
	/* what tasks opened (an archive, an index) is closed and its keys
	 * wiped however the worker ends its loop */
	atexit(lama_warchive_close);
	atexit(lama_worker_index_close);
	/* never outlive the manager (also set by cmd_worker before its checks) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	/* below the main process: its loop gets a core before a busy worker
	 * (docs/workers.md#priority); failing changes nothing else */
	errno = 0;
	if (nice(LAMA_WORKER_NICE) == -1 && errno)
		errno = 0;
	lama_worker_test_fd = fd;
	lama_put_u32(hello, (uint32_t)getpid());
	hello[4] = LAMA_FRAME_VERSION;
	if ((rc = send_frame(fd, LAMA_FRAME_HELLO, 0, kind, strlen(kind), hello, sizeof(hello))))
		return rc > 0 ? 0 : rc;
	for (;;) {
		struct lama_frame f;
		uint8_t *body;
		uint32_t len;
		int r = read_full(fd, len4, 4);

		if (r == 0)
			return 0; /* the manager closed: done */
		if (r < 0)
			return lama_error(LAMA_EIO, "worker: the manager's frame was cut short");
		len = lama_get_u32(len4);
		if (len < LAMA_FRAME_HEAD || len > LAMA_FRAME_LEN_MAX)
			return lama_error(LAMA_EIO, "worker: a frame of %u bytes from the manager", len);
		body = lama_malloc(len);
		if (!body)
			return lama_error(LAMA_ENOMEM, "out of memory");
		if (read_full(fd, body, len) != 1) {
			lama_free(body);
			return lama_error(LAMA_EIO, "worker: the manager's frame was cut short");
		}
		rc = lama_frame_parse(body, len, &f);
		if (!rc && f.type == LAMA_FRAME_TASK)
			rc = run_task(fd, fn, &f);
		else if (!rc && f.type != LAMA_FRAME_CANCEL)
			rc = lama_error(LAMA_EIO, "worker: a frame of type %u from the manager", f.type);
		/* a cancel arrives once the task it names is answered: nothing
		 * left to stop, since a worker runs one task at a time */
		lama_wipe(body, len); /* passwords (kdf), keys (seal) */
		lama_free(body);
		if (rc)
			return rc > 0 ? 0 : rc; /* > 0: the manager is gone */
	}
}
