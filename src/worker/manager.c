/* manager.c: the worker process manager (worker.h), on the main loop.
 *
 * Each worker runs at most one task at a time, so the manager's queue is
 * the only queue: a task waits there until a worker of its kind is idle,
 * a time limit applies only to a running task, and a dead worker takes at
 * most one task with it. Every handle's close is counted (m->handles), so
 * lama_workers_close knows when nothing of it is left on the loop. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/frame.h"
#include "worker/worker.h"

#define READ_CHUNK 65536

struct task {
	struct task *next;
	uint64_t id;
	char op[LAMA_WORKER_OP_MAX + 1];
	uint8_t *in; /* owned; kept for a retry */
	size_t n;
	unsigned flags;
	unsigned timeout_ms;
	lama_task_done done;
	void *ctx;
	int tries;     /* times it was sent to a worker */
	int delivered; /* done was called (canceled, timed out) */
	int writes;    /* uv_writes of `in` not yet completed */
	int dropped;   /* freed as soon as writes is 0 */
};

struct worker {
	lama_workers *m;
	struct pool *pool;
	uv_process_t proc;
	uv_pipe_t pipe;
	uv_timer_t timer;   /* the running task's limit, or a cancel's grace */
	uv_timer_t restart; /* back-off before the next spawn */
	int alive;          /* proc and pipe are open */
	int dying;          /* killed or broken: waiting for its exit */
	int hello;          /* its hello frame came */
	int closing;        /* proc and pipe closes pending */
	int recycle;        /* to be replaced once idle (lama_workers_recycle) */
	int quiet;          /* its next spawn is a replacement, not a restart */
	int pipe_open, proc_open;
	long pid;
	struct task *task;  /* running, owned */
	struct lama_buf rx; /* bytes read, not yet a whole frame */
	char *rbuf;         /* READ_CHUNK bytes for libuv to read into */
	uint64_t done, failed;
	unsigned restarts;
	uint64_t started; /* uv_now at spawn */
	unsigned backoff; /* ms before the next unexpected death's respawn */
	unsigned next_delay;
	char why[200];   /* why the manager ended it, for its task's message */
};

struct pool {
	char kind[LAMA_WORKER_KIND_MAX + 1];
	unsigned size, queue_max, timeout_ms, healthy_ms;
	struct worker *workers;
	struct task *head, *tail; /* the queue */
	unsigned queued;
	size_t queued_bytes;
};

struct lama_workers {
	uv_loop_t *loop;
	char *exe;
	char parent[24];
	struct pool *pools;
	size_t npools;
	uint64_t next_id;
	unsigned handles; /* open handles, counted down in on_closed */
	int closing;
	uv_timer_t grace;
};

static void spawn(struct worker *w);
static void dispatch(struct pool *p);
static void worker_end(struct worker *w, const char *why);

static void on_closed(uv_handle_t *h)
{
	lama_workers *m = h->data;

	m->handles--;
}

static void close_handle(lama_workers *m, uv_handle_t *h)
{
	h->data = m;
	uv_close(h, on_closed);
}

static void task_free(struct task *t)
{
	if (!t)
		return;
	/* libuv still reads `in` for a write in progress (sent without a copy) */
	if (t->writes) {
		t->dropped = 1;
		return;
	}
	if (t->in) {
		lama_wipe(t->in, t->n); /* a password (kdf), a key (seal) */
		lama_free(t->in);
	}
	lama_free(t);
}

/* Calls done once and frees the task. */
static void task_finish(struct task *t, int rc, const char *msg, const void *out, size_t n)
{
	if (!t->delivered) {
		t->delivered = 1;
		t->done(t->ctx, rc, msg, out, n);
	}
	task_free(t);
}

static void queue_push(struct pool *p, struct task *t, int front)
{
	t->next = NULL;
	if (front) {
		t->next = p->head;
		p->head = t;
		if (!p->tail)
			p->tail = t;
	} else {
		if (p->tail)
			p->tail->next = t;
		else
			p->head = t;
		p->tail = t;
	}
	p->queued++;
	p->queued_bytes += t->n;
}

static struct task *queue_pop(struct pool *p)
{
	struct task *t = p->head;

	if (!t)
		return NULL;
	p->head = t->next;
	if (!p->head)
		p->tail = NULL;
	p->queued--;
	p->queued_bytes -= t->n;
	t->next = NULL;
	return t;
}

/* --- writing frames --- */

/* A frame being written: its head here, a task's input straight from the
 * task (no copy of up to 64 MiB), which stays alive until written. */
struct wreq {
	uv_write_t req;
	struct task *task; /* NULL for a frame without payload */
	size_t len;
	uint8_t head[4 + LAMA_FRAME_HEAD + LAMA_WORKER_OP_MAX];
};

static void on_written(uv_write_t *req, int status)
{
	struct wreq *r = (struct wreq *)req;
	struct task *t = r->task;

	/* a failed write shows up as EOF or an exit on the read side */
	(void)status;
	lama_free(r);
	if (t && --t->writes == 0 && t->dropped)
		task_free(t);
}

static int send_frame(struct worker *w, unsigned type, uint64_t id, struct task *t)
{
	struct wreq *r = lama_malloc(sizeof(*r));
	size_t oplen = t ? strlen(t->op) : 0;
	uv_buf_t b[2];
	int e;

	if (!r)
		return lama_error(LAMA_ENOMEM, "out of memory");
	r->task = t;
	r->len = lama_frame_head(r->head, type, id, t ? t->op : NULL, oplen, t ? t->n : 0);
	b[0] = uv_buf_init((char *)r->head, (unsigned)r->len);
	b[1] = uv_buf_init(t ? (char *)t->in : NULL, t ? (unsigned)t->n : 0);
	if ((e = uv_write(&r->req, (uv_stream_t *)&w->pipe, b, t && t->n ? 2 : 1, on_written))) {
		lama_free(r);
		return lama_error(LAMA_EIO, "cannot write to the %s worker: %s", w->pool->kind,
				  uv_strerror(e));
	}
	if (t)
		t->writes++;
	return 0;
}

/* --- the running task --- */

static void on_task_timer(uv_timer_t *h);

static void start_task(struct worker *w, struct task *t)
{
	w->task = t;
	t->tries++;
	if (send_frame(w, LAMA_FRAME_TASK, t->id, t)) {
		worker_end(w, "the task could not be sent");
		return;
	}
	uv_timer_start(&w->timer, on_task_timer, t->timeout_ms, 0);
}

static void on_task_timer(uv_timer_t *h)
{
	struct worker *w = h->data;
	struct task *t = w->task;
	char msg[200];

	if (!t)
		return;
	if (t->delivered) {
		/* canceled and not answered within the grace; one marked for
		 * recycling was to be replaced anyway: not a restart */
		if (w->recycle)
			w->quiet = 1;
		worker_end(w, "killed: a canceled task did not end");
		return;
	}
	snprintf(msg, sizeof(msg), "the %s task %s timed out after %u ms", w->pool->kind, t->op,
		 t->timeout_ms);
	w->failed++;
	t->delivered = 1;
	worker_end(w, "killed: its task timed out");
	t->done(t->ctx, LAMA_ETIMEDOUT, msg, NULL, 0);
}

static int worker_ready(const struct worker *w)
{
	return w->alive && !w->dying && !w->task && !w->recycle;
}

/* An idle worker marked for recycling goes; its replacement starts at once
 * (the manager ended it) and is not counted as a restart. */
static int retire_if_marked(struct worker *w)
{
	if (!w->recycle || !w->alive || w->dying || w->task)
		return 0;
	w->quiet = 1;
	worker_end(w, "replaced");
	return 1;
}

/* Least busy first: an idle worker, the one that has done the fewest tasks
 * (so a pool's work spreads), until the queue or the idle workers run out. */
static void dispatch(struct pool *p)
{
	while (p->head) {
		struct worker *best = NULL;

		for (unsigned i = 0; i < p->size; i++) {
			struct worker *w = &p->workers[i];

			if (worker_ready(w) && (!best || w->done + w->failed < best->done + best->failed))
				best = w;
		}
		if (!best)
			return;
		start_task(best, queue_pop(p));
	}
}

/* --- a worker's death and rebirth --- */

static void on_restart(uv_timer_t *h)
{
	struct worker *w = h->data;

	if (!w->m->closing && !w->alive && !w->closing) {
		if (!w->quiet)
			w->restarts++;
		w->quiet = 0;
		w->recycle = 0;
		spawn(w);
	}
}

static void on_worker_closed(uv_handle_t *h)
{
	struct worker *w = h->data;
	lama_workers *m = w->m;

	m->handles--;
	if (--w->closing > 0 || m->closing)
		return;
	uv_timer_start(&w->restart, on_restart, w->next_delay, 0);
}

static void close_worker_handles(struct worker *w)
{
	w->alive = 0;
	w->pipe.data = w;
	w->proc.data = w;
	if (w->pipe_open) {
		w->pipe_open = 0;
		w->closing++;
		uv_close((uv_handle_t *)&w->pipe, on_worker_closed);
	}
	if (w->proc_open) {
		w->proc_open = 0;
		w->closing++;
		uv_close((uv_handle_t *)&w->proc, on_worker_closed);
	}
}

/* The manager ends a worker (a bad frame, a timeout, a cancel not obeyed,
 * a broken socket): SIGKILL, then on_exit does the rest. */
static void worker_end(struct worker *w, const char *why)
{
	if (!w->alive || w->dying)
		return;
	w->dying = 1;
	snprintf(w->why, sizeof(w->why), "%s", why);
	uv_read_stop((uv_stream_t *)&w->pipe);
	uv_timer_stop(&w->timer);
	uv_process_kill(&w->proc, SIGKILL);
}

/* The next respawn waits the current back-off, which doubles up to the cap. */
static void backoff_step(struct worker *w)
{
	w->next_delay = w->backoff;
	w->backoff = w->backoff * 2 > LAMA_WORKERS_BACKOFF_MAX_MS ? LAMA_WORKERS_BACKOFF_MAX_MS
								  : w->backoff * 2;
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
	struct worker *w = proc->data;
	lama_workers *m = w->m;
	struct pool *p = w->pool;
	struct task *t = w->task;
	char msg[400];

	uv_timer_stop(&w->timer);
	w->task = NULL;
	lama_buf_release_wipe(&w->rx); /* a part of a frame, maybe of a key */
	if (w->why[0])
		snprintf(msg, sizeof(msg), "the %s worker was ended (%s) while running %s", p->kind,
			 w->why, t ? t->op : "");
	else if (sig)
		snprintf(msg, sizeof(msg), "the %s worker died (signal %d) while running %s",
			 p->kind, sig, t ? t->op : "");
	else
		snprintf(msg, sizeof(msg), "the %s worker exited (status %lld) while running %s",
			 p->kind, (long long)status, t ? t->op : "");
	/* killed by the manager: respawn at once; died on its own: back off,
	 * from the start again after a healthy stretch */
	if (w->why[0]) {
		w->next_delay = 0;
	} else {
		if (uv_now(m->loop) - w->started >= p->healthy_ms)
			w->backoff = LAMA_WORKERS_BACKOFF_MIN_MS;
		backoff_step(w);
	}
	w->why[0] = '\0';
	w->dying = 0;
	w->pid = 0;
	close_worker_handles(w);
	if (t && !t->delivered && !m->closing && (t->flags & LAMA_TASK_IDEMPOTENT) && t->tries < 2) {
		queue_push(p, t, 1); /* retried once, ahead of the others */
		t = NULL;
	}
	if (t && !t->delivered)
		w->failed++;
	if (!m->closing)
		dispatch(p); /* another worker may be idle */
	if (t)
		task_finish(t, LAMA_EIO, msg, NULL, 0);
}

/* --- reading frames --- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct worker *w = h->data;

	(void)hint;
	*b = uv_buf_init(w->rbuf, READ_CHUNK);
}

/* A message from a worker becomes one printable line. */
static void clean_msg(char *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] < 0x20 || src[i] == 0x7f ? '?' : (char)src[i];
	dst[n] = '\0';
}

/* 0, or a reason the worker is broken (written into why). */
static int handle_frame(struct worker *w, const struct lama_frame *f, char *why, size_t whyn)
{
	struct pool *p = w->pool;
	struct task *t = w->task;

	if (f->type == LAMA_FRAME_HELLO) {
		if (w->hello || f->oplen != strlen(p->kind) || memcmp(f->op, p->kind, f->oplen) ||
		    f->n != 5 || lama_get_u32(f->payload) != (uint32_t)w->pid ||
		    f->payload[4] != LAMA_FRAME_VERSION) {
			snprintf(why, whyn, "a wrong hello");
			return -1;
		}
		w->hello = 1;
		return 0;
	}
	if (!w->hello || (f->type != LAMA_FRAME_RESULT && f->type != LAMA_FRAME_ERROR)) {
		snprintf(why, whyn, "a frame of type %u out of turn", f->type);
		return -1;
	}
	if (!t || t->id != f->id) {
		snprintf(why, whyn, "an answer to task %llu, which it does not run",
			 (unsigned long long)f->id);
		return -1;
	}
	if (f->type == LAMA_FRAME_ERROR) {
		char msg[LAMA_FRAME_MSG_MAX + 1];
		int32_t code;

		if (f->n < 4 || f->n > 4 + LAMA_FRAME_MSG_MAX ||
		    (code = (int32_t)lama_get_u32(f->payload)) >= 0 || code < -64) {
			snprintf(why, whyn, "a malformed error");
			return -1;
		}
		clean_msg(msg, f->payload + 4, f->n - 4);
		w->task = NULL;
		uv_timer_stop(&w->timer);
		if (!t->delivered)
			w->failed++;
		task_finish(t, code, msg, NULL, 0);
	} else {
		w->task = NULL;
		uv_timer_stop(&w->timer);
		if (!t->delivered)
			w->done++;
		task_finish(t, 0, NULL, f->payload, f->n);
	}
	return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct worker *w = s->data;
	char why[200];
	size_t at = 0;

	if (nread == 0)
		return;
	if (nread < 0) {
		/* EOF or an error: on_exit follows (SIGKILL in case it lingers) */
		if (w->dying)
			return;
		if (w->rx.len) {
			worker_end(w, "a frame cut short");
		} else {
			worker_end(w, "its socket closed");
			/* it exited or was killed: say so, not that we ended it */
			w->why[0] = '\0';
		}
		return;
	}
	if (lama_buf_add(&w->rx, b->base, (size_t)nread)) {
		worker_end(w, "out of memory for its frames");
		return;
	}
	lama_wipe(b->base, (size_t)nread);
	/* each whole frame in turn; a done callback may end this worker */
	while (w->alive && !w->dying && w->rx.len - at >= 4) {
		const uint8_t *q = (const uint8_t *)w->rx.data + at;
		uint32_t len = lama_get_u32(q);
		struct lama_frame f;

		if (len < LAMA_FRAME_HEAD || len > LAMA_FRAME_LEN_MAX) {
			snprintf(why, sizeof(why), "a bad frame: a length of %u bytes", len);
			worker_end(w, why);
			return;
		}
		if (w->rx.len - at - 4 < len)
			break;
		if (lama_frame_parse(q + 4, len, &f)) {
			snprintf(why, sizeof(why), "a bad frame: %s", lama_errmsg());
			worker_end(w, why);
			return;
		}
		if (handle_frame(w, &f, why, sizeof(why))) {
			worker_end(w, why);
			return;
		}
		/* results may hold keys or plaintext */
		lama_wipe((uint8_t *)w->rx.data + at, 4 + (size_t)len);
		at += 4 + (size_t)len;
	}
	if (at && w->alive) {
		memmove(w->rx.data, w->rx.data + at, w->rx.len - at);
		lama_buf_truncate(&w->rx, w->rx.len - at);
		/* a big result's buffer is not kept for the worker's lifetime */
		if (!w->rx.len && w->rx.cap > READ_CHUNK * 4)
			lama_buf_release_wipe(&w->rx);
	}
	if (w->alive && !w->dying && !w->task && !retire_if_marked(w))
		dispatch(w->pool);
}

/* --- spawning --- */

static void spawn(struct worker *w)
{
	lama_workers *m = w->m;
	uv_process_options_t o;
	uv_stdio_container_t io[4];
	char *args[5];
	int e;

	memset(&o, 0, sizeof(o));
	memset(io, 0, sizeof(io));
	uv_pipe_init(m->loop, &w->pipe, 0);
	/* the pipe, and the process (closed even when spawn fails) */
	m->handles += 2;
	w->pipe_open = w->proc_open = 1;
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_IGNORE;
	io[2].flags = UV_INHERIT_FD; /* its crash reports go where ours go */
	io[2].data.fd = 2;
	io[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
	io[3].data.stream = (uv_stream_t *)&w->pipe;
	args[0] = m->exe;
	args[1] = "worker";
	args[2] = w->pool->kind;
	args[3] = m->parent;
	args[4] = NULL;
	o.file = m->exe;
	o.args = args;
	o.exit_cb = on_exit_cb;
	o.stdio = io;
	o.stdio_count = 4;
	w->proc.data = w;
	w->pipe.data = w;
	w->hello = 0;
	w->rx.len = 0;
	w->why[0] = '\0';
	w->started = uv_now(m->loop);
	e = uv_spawn(m->loop, &w->proc, &o);
	if (e) {
		fprintf(stderr, "lama: cannot start a %s worker (%s): %s\n", w->pool->kind, m->exe,
			uv_strerror(e));
		backoff_step(w);
		close_worker_handles(w);
		return;
	}
	w->pid = w->proc.pid;
	w->alive = 1;
	uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read);
	dispatch(w->pool);
}

/* --- the API --- */

int lama_workers_new(lama_workers **out, uv_loop_t *loop, const char *exe,
		     const struct lama_worker_pool *pools, size_t npools)
{
	lama_workers *m;
	unsigned cores = uv_available_parallelism();
	int rc = 0;

	*out = NULL;
	if (!loop || !exe || !npools)
		return lama_error(LAMA_EINVAL, "workers: a loop, a binary and a pool are needed");
	for (size_t i = 0; i < npools; i++) {
		if (!pools[i].kind || !lama_frame_name_ok(pools[i].kind, strlen(pools[i].kind)))
			return lama_error(LAMA_EINVAL, "workers: a pool kind must be [a-z0-9_]{1,32}");
		/* the workers are this binary: a kind it lacks would only
		 * restart forever */
		if (!lama_worker_kind_known(pools[i].kind))
			return lama_error(LAMA_EINVAL, "workers: no worker kind %s", pools[i].kind);
		if (pools[i].size > LAMA_WORKERS_POOL_MAX)
			return lama_error(LAMA_ELIMIT, "workers: a pool of %u (at most %d)",
					  pools[i].size, LAMA_WORKERS_POOL_MAX);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(pools[i].kind, pools[j].kind))
				return lama_error(LAMA_EINVAL, "workers: two pools of kind %s",
						  pools[i].kind);
	}
	m = lama_calloc(1, sizeof(*m));
	if (!m || !(m->exe = lama_strdup(exe)) || !(m->pools = lama_calloc(npools, sizeof(*m->pools)))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto fail;
	}
	m->loop = loop;
	m->npools = npools;
	m->next_id = 1;
	snprintf(m->parent, sizeof(m->parent), "%ld", (long)getpid());
	for (size_t i = 0; i < npools; i++) {
		struct pool *p = &m->pools[i];

		snprintf(p->kind, sizeof(p->kind), "%s", pools[i].kind);
		p->size = pools[i].size ? pools[i].size : (cores ? cores : 1);
		if (p->size > LAMA_WORKERS_POOL_MAX)
			p->size = LAMA_WORKERS_POOL_MAX;
		p->queue_max = pools[i].queue_max ? pools[i].queue_max : LAMA_WORKERS_QUEUE_DEFAULT;
		p->timeout_ms = pools[i].timeout_ms ? pools[i].timeout_ms
						    : LAMA_WORKERS_TIMEOUT_DEFAULT;
		p->healthy_ms = LAMA_WORKERS_HEALTHY_MS;
		p->workers = lama_calloc(p->size, sizeof(*p->workers));
		if (!p->workers) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto fail;
		}
		for (unsigned k = 0; k < p->size; k++) {
			struct worker *w = &p->workers[k];

			w->m = m;
			w->pool = p;
			w->backoff = LAMA_WORKERS_BACKOFF_MIN_MS;
			w->rx = (struct lama_buf)LAMA_BUF_INIT(4 + LAMA_FRAME_LEN_MAX);
			if (!(w->rbuf = lama_malloc(READ_CHUNK))) {
				rc = lama_error(LAMA_ENOMEM, "out of memory");
				goto fail;
			}
		}
	}
	/* a write to a dead worker must fail with EPIPE, not end us */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < npools; i++) {
		struct pool *p = &m->pools[i];

		for (unsigned k = 0; k < p->size; k++) {
			struct worker *w = &p->workers[k];

			uv_timer_init(loop, &w->timer);
			uv_timer_init(loop, &w->restart);
			w->timer.data = w;
			w->restart.data = w;
			m->handles += 2;
			spawn(w);
		}
	}
	*out = m;
	return 0;
fail:
	if (m && m->pools) {
		for (size_t i = 0; i < npools; i++) {
			if (m->pools[i].workers)
				for (unsigned k = 0; k < m->pools[i].size; k++)
					lama_free(m->pools[i].workers[k].rbuf);
			lama_free(m->pools[i].workers);
		}
	}
	if (m) {
		lama_free(m->pools);
		lama_free(m->exe);
	}
	lama_free(m);
	return rc;
}

static struct pool *find_pool(lama_workers *m, const char *kind)
{
	for (size_t i = 0; i < m->npools; i++)
		if (!strcmp(m->pools[i].kind, kind))
			return &m->pools[i];
	return NULL;
}

int lama_workers_submit(lama_workers *m, const char *kind, const char *op, const void *in,
			size_t n, unsigned flags, unsigned timeout_ms, lama_task_done done,
			void *ctx, uint64_t *id)
{
	struct pool *p;
	struct task *t;

	if (id)
		*id = 0;
	if (m->closing)
		return lama_error(LAMA_ECANCELED, "the workers are shutting down");
	if (!kind || !(p = find_pool(m, kind)))
		return lama_error(LAMA_ENOTFOUND, "no pool of %.32s workers", kind ? kind : "(null)");
	if (!op || !lama_frame_name_ok(op, strlen(op)) || !done || (n && !in))
		return lama_error(LAMA_EINVAL, "workers: a task needs an op name [a-z0-9_]{1,32} and a callback");
	if (n > LAMA_WORKER_PAYLOAD_MAX)
		return lama_error(LAMA_ELIMIT, "a %s task of %zu bytes (at most %zu)", op, n,
				  LAMA_WORKER_PAYLOAD_MAX);
	if (p->queued >= p->queue_max || n > LAMA_WORKERS_QUEUE_BYTES - p->queued_bytes)
		return lama_error(LAMA_EBUSY, "the %s workers are busy: %u tasks wait", p->kind,
				  p->queued);
	t = lama_calloc(1, sizeof(*t));
	if (!t || (n && !(t->in = lama_malloc(n)))) {
		lama_free(t);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (n)
		memcpy(t->in, in, n);
	t->n = n;
	t->id = m->next_id++;
	snprintf(t->op, sizeof(t->op), "%s", op);
	t->flags = flags;
	t->timeout_ms = timeout_ms ? timeout_ms : p->timeout_ms;
	t->done = done;
	t->ctx = ctx;
	if (id)
		*id = t->id;
	queue_push(p, t, 0);
	dispatch(p);
	return 0;
}

int lama_workers_set_healthy_ms(lama_workers *m, const char *kind, unsigned ms)
{
	struct pool *p = kind ? find_pool(m, kind) : NULL;

	if (!p)
		return lama_error(LAMA_ENOTFOUND, "workers: no pool of kind %s", kind ? kind : "(none)");
	p->healthy_ms = ms ? ms : LAMA_WORKERS_HEALTHY_MS;
	return 0;
}

void lama_workers_recycle(lama_workers *m)
{
	if (!m || m->closing)
		return;
	for (size_t i = 0; i < m->npools; i++)
		for (unsigned j = 0; j < m->pools[i].size; j++) {
			struct worker *w = &m->pools[i].workers[j];

			/* one not running now starts fresh anyway */
			if (w->alive && !w->dying) {
				w->recycle = 1;
				retire_if_marked(w);
			}
		}
}

int lama_workers_cancel(lama_workers *m, uint64_t id)
{
	for (size_t i = 0; i < m->npools; i++) {
		struct pool *p = &m->pools[i];
		struct task **pp = &p->head, *prev = NULL;

		for (; *pp; prev = *pp, pp = &(*pp)->next) {
			struct task *t = *pp;

			if (t->id != id)
				continue;
			*pp = t->next;
			if (p->tail == t)
				p->tail = prev;
			p->queued--;
			p->queued_bytes -= t->n;
			task_finish(t, LAMA_ECANCELED, "canceled", NULL, 0);
			return 0;
		}
		for (unsigned k = 0; k < p->size; k++) {
			struct worker *w = &p->workers[k];
			struct task *t = w->task;

			if (!t || t->id != id || t->delivered)
				continue;
			t->delivered = 1;
			/* the worker finishes the task it is in (it reads one frame at
			 * a time): its answer is dropped; past the grace it is killed */
			if (send_frame(w, LAMA_FRAME_CANCEL, id, NULL))
				worker_end(w, "its socket failed");
			else
				uv_timer_start(&w->timer, on_task_timer, LAMA_WORKERS_CANCEL_GRACE_MS, 0);
			t->done(t->ctx, LAMA_ECANCELED, "canceled", NULL, 0);
			return 0;
		}
	}
	return lama_error(LAMA_ENOTFOUND, "no task %llu waits or runs", (unsigned long long)id);
}

json_t *lama_workers_status(lama_workers *m)
{
	json_t *a = json_array();

	if (!a)
		return NULL;
	for (size_t i = 0; i < m->npools; i++) {
		struct pool *p = &m->pools[i];

		for (unsigned k = 0; k < p->size; k++) {
			struct worker *w = &p->workers[k];
			json_t *o = json_pack("{s:s, s:o, s:b, s:I, s:I, s:I, s:I}", "kind", p->kind,
					      "pid", w->alive ? json_integer(w->pid) : json_null(),
					      "busy", w->task != NULL, "done", (json_int_t)w->done,
					      "failed", (json_int_t)w->failed,
					      "restarts", (json_int_t)w->restarts,
					      "queued", (json_int_t)p->queued);

			if (!o || json_array_append_new(a, o)) {
				json_decref(a);
				return NULL;
			}
		}
	}
	return a;
}

static void on_grace(uv_timer_t *h)
{
	lama_workers *m = h->data;

	for (size_t i = 0; i < m->npools; i++)
		for (unsigned k = 0; k < m->pools[i].size; k++)
			if (m->pools[i].workers[k].alive)
				uv_process_kill(&m->pools[i].workers[k].proc, SIGKILL);
}

void lama_workers_close(lama_workers *m)
{
	struct task *failed = NULL;

	if (!m)
		return;
	m->closing = 1;
	uv_timer_init(m->loop, &m->grace);
	m->grace.data = m;
	m->handles++;
	uv_timer_start(&m->grace, on_grace, LAMA_WORKERS_CLOSE_GRACE_MS, 0);
	for (size_t i = 0; i < m->npools; i++) {
		struct pool *p = &m->pools[i];
		struct task *t;

		while ((t = queue_pop(p))) {
			t->next = failed;
			failed = t;
		}
		for (unsigned k = 0; k < p->size; k++) {
			struct worker *w = &p->workers[k];

			if (w->task) {
				w->task->next = failed;
				failed = w->task;
				w->task = NULL;
			}
			close_handle(m, (uv_handle_t *)&w->timer);
			close_handle(m, (uv_handle_t *)&w->restart);
			/* EOF tells it to exit; on_exit_cb closes the rest */
			if (w->pipe_open) {
				uv_read_stop((uv_stream_t *)&w->pipe);
				w->pipe.data = w;
				w->pipe_open = 0;
				w->closing++;
				uv_close((uv_handle_t *)&w->pipe, on_worker_closed);
			}
		}
	}
	while (failed) {
		struct task *t = failed;

		failed = t->next;
		task_finish(t, LAMA_ECANCELED, "the workers are shutting down", NULL, 0);
	}
	while (m->handles > 1)
		uv_run(m->loop, UV_RUN_ONCE);
	close_handle(m, (uv_handle_t *)&m->grace);
	while (m->handles > 0)
		uv_run(m->loop, UV_RUN_ONCE);
	for (size_t i = 0; i < m->npools; i++) {
		for (unsigned k = 0; k < m->pools[i].size; k++) {
			lama_buf_release_wipe(&m->pools[i].workers[k].rx);
			lama_free(m->pools[i].workers[k].rbuf);
		}
		lama_free(m->pools[i].workers);
	}
	lama_free(m->pools);
	lama_free(m->exe);
	lama_free(m);
}
