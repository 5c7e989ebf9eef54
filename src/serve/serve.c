/* serve.c: the loop and the Unix-socket transport of `lama serve`
 * (serve.h; design in docs/serve.md). */
#include "serve/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "util/err.h"
#include "util/mem.h"

/* Input work one client may cause per loop turn: then its reading pauses
 * until the next turn, so every other ready client is served in between. */
#define TURN_LINES 64
#define TURN_BYTES ((size_t)256 << 10)
#define READ_BUF ((size_t)64 << 10) /* one read(); shared by all clients */
#define LINE_KEEP ((size_t)64 << 10) /* a line buffer above this is freed after use */

struct lama_client {
	uv_pipe_t pipe;
	lama_server *srv;
	struct lama_client *prev, *next;   /* srv->clients */
	struct lama_client *bprev, *bnext; /* srv->backlog */
	void *data;
	unsigned listed : 1;     /* counted in srv->clients; on_connect seen */
	unsigned in_backlog : 1;
	unsigned reading : 1;
	unsigned closing : 1;
	unsigned discarding : 1; /* inside an oversized line */
	unsigned out_stopped : 1; /* reading paused for the output queue */
	unsigned eof : 1;
	char *line; /* the incomplete line so far */
	size_t line_len, line_cap;
	char *pend; /* input read but not handled (a turn's budget ran out) */
	size_t pend_len, pend_off;
	size_t out_bytes; /* queued, not yet written */
	size_t last_q;    /* write queue size at the last sweep */
	uint64_t last_progress;
	uint64_t turn;
	size_t turn_lines, turn_bytes;
};

struct lama_server {
	uv_loop_t loop;
	uv_pipe_t listener;
	uv_idle_t idle;   /* runs the backlog; active only while there is one */
	uv_check_t check; /* counts loop turns */
	uv_timer_t sweep; /* finds stalled queues */
	uv_timer_t flush; /* bounds the shutdown */
	uv_signal_t sigint, sigterm;
	const struct lama_server_config *cfg;
	void *ctx;
	size_t line_max, out_max, out_high;
	unsigned clients_max, stall_ms, flush_ms;
	const char *refusal;
	lama_client *clients, *backlog;
	unsigned nclients;
	uint64_t turn;
	int loop_ready, listening, signals_on;
	int stopping, done, closing;
	int dirfd, lockfd;
	dev_t sock_dev;
	ino_t sock_ino;
	int sock_made;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char rbuf[READ_BUF];
};

static void client_sched(lama_client *c);
static void on_idle(uv_idle_t *h);

/* ---- lists ---- */

static void backlog_add(lama_client *c)
{
	lama_server *srv = c->srv;

	if (c->in_backlog)
		return;
	c->in_backlog = 1;
	c->bprev = NULL;
	c->bnext = srv->backlog;
	if (srv->backlog)
		srv->backlog->bprev = c;
	srv->backlog = c;
	if (!srv->closing)
		uv_idle_start(&srv->idle, on_idle); /* polls without blocking meanwhile */
}

static void backlog_remove(lama_client *c)
{
	if (!c->in_backlog)
		return;
	if (c->bprev)
		c->bprev->bnext = c->bnext;
	else
		c->srv->backlog = c->bnext;
	if (c->bnext)
		c->bnext->bprev = c->bprev;
	c->bprev = c->bnext = NULL;
	c->in_backlog = 0;
}

/* ---- closing ---- */

static void finish(lama_server *srv)
{
	if (srv->done)
		return;
	srv->done = 1;
	if (!srv->closing) {
		uv_timer_stop(&srv->flush);
		uv_stop(&srv->loop);
	}
}

static void client_closed(uv_handle_t *h)
{
	lama_client *c = h->data;
	lama_server *srv = c->srv;

	if (c->listed) {
		if (c->prev)
			c->prev->next = c->next;
		else
			srv->clients = c->next;
		if (c->next)
			c->next->prev = c->prev;
		srv->nclients--;
		if (srv->cfg->on_close)
			srv->cfg->on_close(srv->ctx, c);
	}
	if (c->line)
		sodium_memzero(c->line, c->line_cap);
	if (c->pend)
		sodium_memzero(c->pend, c->pend_len);
	lama_free(c->line);
	lama_free(c->pend);
	lama_free(c);
	if (srv->stopping && srv->nclients == 0)
		finish(srv);
}

static void client_close(lama_client *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	backlog_remove(c);
	/* uv_close stops reading and cancels queued writes (their callbacks
	 * run first, with UV_ECANCELED); the client is freed in client_closed */
	uv_close((uv_handle_t *)&c->pipe, client_closed);
}

void lama_server_disconnect(lama_client *c)
{
	if (c)
		client_close(c);
}

/* ---- reading ---- */

static void set_reading(lama_client *c, int on);

static void budget_refresh(lama_client *c)
{
	if (c->turn != c->srv->turn) {
		c->turn = c->srv->turn;
		c->turn_lines = 0;
		c->turn_bytes = 0;
	}
}

static int budget_spent(const lama_client *c)
{
	return c->turn == c->srv->turn &&
	       (c->turn_lines >= TURN_LINES || c->turn_bytes >= TURN_BYTES);
}

static int line_append(lama_client *c, const char *p, size_t n)
{
	if (c->line_len + n + 1 > c->line_cap) {
		size_t cap = c->line_cap ? c->line_cap : 256;
		char *q;

		while (cap < c->line_len + n + 1)
			cap *= 2;
		if (cap > c->srv->line_max + 1)
			cap = c->srv->line_max + 1;
		q = lama_realloc(c->line, cap);
		if (!q)
			return LAMA_ENOMEM;
		c->line = q;
		c->line_cap = cap;
	}
	memcpy(c->line + c->line_len, p, n);
	c->line_len += n;
	return 0;
}

/* Requests can hold passwords (action:login): what was read is wiped as
 * soon as it is handled, in every buffer it passed through. */
static void line_reset(lama_client *c)
{
	if (c->line)
		sodium_memzero(c->line, c->line_len);
	c->line_len = 0;
	if (c->line_cap > LINE_KEEP) {
		lama_free(c->line);
		c->line = NULL;
		c->line_cap = 0;
	}
}

static int may_feed(const lama_client *c)
{
	return !c->closing && !c->srv->stopping && !budget_spent(c) &&
	       c->out_bytes <= c->srv->out_high;
}

/* Handles input from data[0..n) (ours to modify) within the turn's budget;
 * returns how many bytes were taken. */
static size_t feed(lama_client *c, char *data, size_t n)
{
	lama_server *srv = c->srv;
	size_t off = 0;

	budget_refresh(c);
	while (off < n && may_feed(c)) {
		char *p = data + off;
		char *nl = memchr(p, '\n', n - off);
		size_t take = nl ? (size_t)(nl - p) : n - off;
		size_t used = take + (nl ? 1 : 0);

		c->turn_bytes += used;
		off += used;
		if (c->discarding) {
			if (nl)
				c->discarding = 0;
			continue;
		}
		if (c->line_len + take > srv->line_max) {
			line_reset(c);
			c->discarding = !nl;
			c->turn_lines++;
			if (srv->cfg->on_oversize)
				srv->cfg->on_oversize(srv->ctx, c);
			continue;
		}
		if (!nl) {
			if (line_append(c, p, take) != 0)
				client_close(c);
			break;
		}
		c->turn_lines++;
		if (c->line_len == 0) {
			/* the common case: the whole line is in this buffer */
			*nl = '\0';
			srv->cfg->on_message(srv->ctx, c, p, take);
		} else {
			if (line_append(c, p, take) != 0) {
				client_close(c);
				break;
			}
			c->line[c->line_len] = '\0';
			srv->cfg->on_message(srv->ctx, c, c->line, c->line_len);
			line_reset(c);
		}
	}
	return off;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	lama_client *c = h->data;

	buf->base = c->srv->rbuf;
	buf->len = sizeof(c->srv->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	lama_client *c = s->data;
	size_t used;

	if (nread > 0 && c->closing)
		sodium_memzero(buf->base, (size_t)nread);
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		if (nread != UV_EOF) {
			client_close(c);
			return;
		}
		/* the client finished sending: answer what it sent, then close
		 * (a partial last line is dropped) */
		c->eof = 1;
		set_reading(c, 0);
		client_sched(c);
		return;
	}
	used = feed(c, buf->base, (size_t)nread);
	if (!c->closing && used < (size_t)nread) {
		/* reading is on only while pend is empty, so pend is free here */
		c->pend = lama_malloc((size_t)nread - used);
		if (!c->pend) {
			sodium_memzero(buf->base, (size_t)nread);
			client_close(c);
			return;
		}
		memcpy(c->pend, buf->base + used, (size_t)nread - used);
		c->pend_len = (size_t)nread - used;
		c->pend_off = 0;
	}
	sodium_memzero(buf->base, (size_t)nread);
	client_sched(c);
}

static void set_reading(lama_client *c, int on)
{
	if (c->closing || on == (int)c->reading)
		return;
	if (on) {
		if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0) {
			client_close(c);
			return;
		}
	} else {
		uv_read_stop((uv_stream_t *)&c->pipe);
	}
	c->reading = on ? 1 : 0;
}

/* Decides, after anything that changed c's state, whether it reads, waits
 * in the backlog for the next turn, waits for its queue to drain, or is
 * done. */
static void client_sched(lama_client *c)
{
	lama_server *srv = c->srv;
	int has_pend = c->pend_len > c->pend_off;

	if (c->closing)
		return;
	if (srv->stopping) {
		set_reading(c, 0);
		backlog_remove(c);
		if (c->out_bytes == 0)
			client_close(c);
		return;
	}
	if (c->out_bytes > srv->out_high)
		c->out_stopped = 1;
	else if (c->out_bytes <= srv->out_high / 2)
		c->out_stopped = 0;
	if (c->out_stopped) {
		set_reading(c, 0);
		backlog_remove(c); /* on_write brings it back */
		return;
	}
	if (has_pend || (budget_spent(c) && !c->eof)) {
		set_reading(c, 0);
		backlog_add(c);
		return;
	}
	backlog_remove(c);
	if (c->eof) {
		if (c->out_bytes == 0)
			client_close(c);
		return;
	}
	set_reading(c, 1);
}

static void client_pump(lama_client *c)
{
	if (c->closing)
		return;
	if (c->pend_len > c->pend_off) {
		c->pend_off += feed(c, c->pend + c->pend_off, c->pend_len - c->pend_off);
		if (c->pend_off == c->pend_len) {
			sodium_memzero(c->pend, c->pend_len);
			lama_free(c->pend);
			c->pend = NULL;
			c->pend_len = c->pend_off = 0;
		}
	}
	client_sched(c);
}

static void on_idle(uv_idle_t *h)
{
	lama_server *srv = h->data;
	lama_client *c, *next;

	for (c = srv->backlog; c; c = next) {
		next = c->bnext;
		client_pump(c);
	}
	if (!srv->backlog)
		uv_idle_stop(&srv->idle);
}

static void on_check(uv_check_t *h)
{
	lama_server *srv = h->data;

	srv->turn++;
}

/* ---- writing ---- */

struct wreq {
	uv_write_t req;
	lama_client *c;
	size_t len;
	char data[];
};

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	lama_client *c = w->c;

	c->out_bytes -= w->len;
	c->last_progress = uv_now(&c->srv->loop);
	lama_free(w);
	if (c->closing)
		return;
	if (status < 0) {
		client_close(c);
		return;
	}
	client_sched(c);
}

int lama_server_send(lama_client *c, const char *msg, size_t n)
{
	lama_server *srv;
	struct wreq *w;
	uv_buf_t b;
	int rc;

	if (!c || (!msg && n))
		return lama_error(LAMA_EINVAL, "lama_server_send: no client or message");
	srv = c->srv;
	if (c->closing)
		return lama_error(LAMA_EIO, "client is disconnecting");
	if (n > srv->out_max || c->out_bytes + n + 1 > srv->out_max) {
		client_close(c);
		return lama_error(LAMA_ELIMIT, "client's output queue is over %zu bytes: disconnected",
				  srv->out_max);
	}
	w = lama_malloc(sizeof(*w) + n + 1);
	if (!w)
		return lama_error(LAMA_ENOMEM, "out of memory queueing a reply");
	w->c = c;
	w->len = n + 1;
	if (n)
		memcpy(w->data, msg, n);
	w->data[n] = '\n';
	if (c->out_bytes == 0)
		c->last_progress = uv_now(&srv->loop);
	b = uv_buf_init(w->data, (unsigned)(n + 1));
	rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_write);
	if (rc != 0) {
		lama_free(w);
		client_close(c);
		return lama_error(LAMA_EIO, "write to client failed: %s", uv_strerror(rc));
	}
	c->out_bytes += n + 1;
	if (c->out_bytes > srv->out_high && !c->out_stopped) {
		/* back-pressure: no more requests until it reads its replies */
		c->out_stopped = 1;
		set_reading(c, 0);
		backlog_remove(c);
	}
	return 0;
}

/* A queue that has not moved for stall_ms: the client does not read. */
static void on_sweep(uv_timer_t *t)
{
	lama_server *srv = t->data;
	uint64_t now = uv_now(&srv->loop);
	lama_client *c, *next;

	for (c = srv->clients; c; c = next) {
		size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);

		next = c->next;
		if (c->closing)
			continue;
		if (c->out_bytes == 0 || q < c->last_q)
			c->last_progress = now;
		c->last_q = q;
		if (c->out_bytes > 0 && now - c->last_progress >= srv->stall_ms)
			client_close(c);
	}
}

/* ---- accepting ---- */

static void refused_closed(uv_handle_t *h)
{
	lama_free(h->data);
}

static void on_connection(uv_stream_t *l, int status)
{
	lama_server *srv = l->data;
	lama_client *c;

	if (status < 0)
		return;
	c = lama_calloc(1, sizeof(*c));
	if (!c)
		return; /* the listener pauses until the next accept; see docs */
	c->srv = srv;
	uv_pipe_init(&srv->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(l, (uv_stream_t *)&c->pipe) != 0) {
		uv_close((uv_handle_t *)&c->pipe, refused_closed);
		return;
	}
	if (srv->stopping || srv->nclients >= srv->clients_max) {
		uv_buf_t b = uv_buf_init((char *)srv->refusal, (unsigned)strlen(srv->refusal));

		uv_try_write((uv_stream_t *)&c->pipe, &b, 1); /* best effort */
		c->closing = 1;
		uv_close((uv_handle_t *)&c->pipe, refused_closed);
		return;
	}
	c->listed = 1;
	c->next = srv->clients;
	if (srv->clients)
		srv->clients->prev = c;
	srv->clients = c;
	srv->nclients++;
	c->turn = srv->turn;
	c->last_progress = uv_now(&srv->loop);
	if (srv->cfg->on_connect)
		srv->cfg->on_connect(srv->ctx, c);
	client_sched(c);
}

/* ---- stopping ---- */

static void on_flush_timeout(uv_timer_t *t)
{
	lama_server *srv = t->data;
	lama_client *c, *next;

	for (c = srv->clients; c; c = next) {
		next = c->next;
		client_close(c);
	}
	if (srv->nclients == 0)
		finish(srv);
}

void lama_server_stop(lama_server *srv)
{
	lama_client *c, *next;

	if (!srv || srv->stopping)
		return;
	srv->stopping = 1;
	if (srv->listening) {
		srv->listening = 0;
		uv_close((uv_handle_t *)&srv->listener, NULL);
	}
	if (srv->cfg->on_stop) /* its last words are flushed like the rest */
		srv->cfg->on_stop(srv->ctx);
	uv_timer_start(&srv->flush, on_flush_timeout, srv->flush_ms, 0);
	for (c = srv->clients; c; c = next) {
		next = c->next;
		client_sched(c); /* stops reading; closes those with nothing queued */
	}
	if (srv->nclients == 0)
		finish(srv);
}

static void on_signal(uv_signal_t *s, int sig)
{
	lama_server *srv = s->data;

	if (srv->stopping)
		on_flush_timeout(&srv->flush); /* a second signal: close now */
	else
		lama_server_stop(srv);
}

int lama_server_run(lama_server *srv)
{
	if (!srv)
		return lama_error(LAMA_EINVAL, "lama_server_run: no server");
	if (!srv->signals_on) {
		srv->signals_on = 1;
		uv_signal_start(&srv->sigint, on_signal, SIGINT);
		uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	}
	while (!srv->done) {
		/* uv_stop from elsewhere returns early: keep going until done */
		if (uv_run(&srv->loop, UV_RUN_DEFAULT) == 0 && !srv->done)
			break;
	}
	uv_signal_stop(&srv->sigint);
	uv_signal_stop(&srv->sigterm);
	srv->signals_on = 0;
	return 0;
}

struct uv_loop_s *lama_server_loop(lama_server *srv)
{
	return &srv->loop;
}

/* ---- data ---- */

void lama_server_client_set_data(lama_client *c, void *data)
{
	c->data = data;
}

void *lama_server_client_data(const lama_client *c)
{
	return c->data;
}

unsigned lama_server_client_count(const lama_server *srv)
{
	return srv ? srv->nclients : 0;
}

/* ---- open and close ---- */

static void close_any(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void lama_server_close(lama_server *srv)
{
	struct stat st;

	if (!srv)
		return;
	if (srv->loop_ready) {
		lama_client *c, *next;
		int i;

		srv->stopping = 1;
		for (c = srv->clients; c; c = next) {
			next = c->next;
			client_close(c);
		}
		srv->closing = 1;
		if (srv->listening) {
			srv->listening = 0;
			uv_close((uv_handle_t *)&srv->listener, NULL);
		}
		/* our handles and any the caller left: the loop dies with us */
		uv_walk(&srv->loop, close_any, NULL);
		for (i = 0; i < 1000 && uv_loop_close(&srv->loop) == UV_EBUSY; i++)
			uv_run(&srv->loop, UV_RUN_NOWAIT);
	}
	if (srv->sock_made && fstatat(srv->dirfd, LAMA_SERVE_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
		unlinkat(srv->dirfd, LAMA_SERVE_SOCKET, 0);
	if (srv->lockfd >= 0) {
		if (srv->sock_made && ftruncate(srv->lockfd, 0) != 0) {
			/* the pid stays; the next server overwrites it */
		}
		close(srv->lockfd); /* releases the flock */
	}
	if (srv->dirfd >= 0)
		close(srv->dirfd);
	lama_free(srv);
}

/* The pid in a held lock file; 0 while the holder has not written it. */
static long lock_holder(int fd)
{
	char b[32];
	ssize_t n;
	int i;

	for (i = 0; i < 50; i++) {
		n = pread(fd, b, sizeof(b) - 1, 0);
		if (n > 0) {
			b[n] = '\0';
			return strtol(b, NULL, 10);
		}
		usleep(2000);
	}
	return 0;
}

static int take_lock(lama_server *srv, const char *dir)
{
	char pid[32];
	int n;

	srv->lockfd = openat(srv->dirfd, LAMA_SERVE_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			     0600);
	if (srv->lockfd < 0) {
		if (errno == ELOOP)
			return lama_error(LAMA_EINVAL, "%s/%s is a symbolic link: refusing it", dir,
					  LAMA_SERVE_LOCK);
		return lama_error(LAMA_EIO, "cannot open %s/%s: %s", dir, LAMA_SERVE_LOCK,
				  strerror(errno));
	}
	if (flock(srv->lockfd, LOCK_EX | LOCK_NB) != 0) {
		long holder;

		if (errno != EWOULDBLOCK)
			return lama_error(LAMA_EIO, "cannot lock %s/%s: %s", dir, LAMA_SERVE_LOCK,
					  strerror(errno));
		holder = lock_holder(srv->lockfd);
		if (holder > 0)
			return lama_error(LAMA_EBUSY, "data folder %s is already served by process %ld",
					  dir, holder);
		return lama_error(LAMA_EBUSY, "data folder %s is already served by another process",
				  dir);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(srv->lockfd, 0) != 0 || pwrite(srv->lockfd, pid, (size_t)n, 0) != n)
		return lama_error(LAMA_EIO, "cannot write %s/%s: %s", dir, LAMA_SERVE_LOCK,
				  strerror(errno));
	return 0;
}

/* Creates the listening socket; returns its fd or a negative code. */
static int make_socket(lama_server *srv, const char *dir)
{
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int fd, rc;

	if (fstatat(srv->dirfd, LAMA_SERVE_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return lama_error(LAMA_EEXIST, "%s exists and is not a socket: refusing to replace it",
					  srv->sock_path);
		/* stale: we hold the lock, so no live server owns it */
		if (unlinkat(srv->dirfd, LAMA_SERVE_SOCKET, 0) != 0)
			return lama_error(LAMA_EIO, "cannot remove stale %s: %s", srv->sock_path,
					  strerror(errno));
	} else if (errno != ENOENT) {
		return lama_error(LAMA_EIO, "cannot check %s: %s", srv->sock_path, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lama_error(LAMA_EIO, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, srv->sock_path, strlen(srv->sock_path) + 1);
	/* created 0600 from the start: there is no moment with a wider mode */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0) {
		rc = errno;
		close(fd);
		return lama_error(LAMA_EIO, "cannot bind %s: %s", srv->sock_path, strerror(rc));
	}
	srv->sock_made = 1;
	if (fstatat(srv->dirfd, LAMA_SERVE_SOCKET, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISSOCK(st.st_mode)) {
		close(fd);
		return lama_error(LAMA_EIO, "%s vanished after bind", srv->sock_path);
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	if ((st.st_mode & 0777) != 0600 && fchmodat(srv->dirfd, LAMA_SERVE_SOCKET, 0600, 0) != 0) {
		close(fd);
		return lama_error(LAMA_EIO, "cannot chmod %s: %s", srv->sock_path, strerror(errno));
	}
	(void)dir;
	return fd;
}

static const char default_refusal[] =
	"{\"id\":null,\"error\":{\"code\":\"limit\",\"message\":\"too many clients\"}}\n";

int lama_server_open(lama_server **out, const char *dir, const struct lama_server_config *cfg,
		     void *ctx)
{
	lama_server *srv;
	size_t dlen;
	int rc, fd;

	if (!out || !dir || !cfg || !cfg->on_message)
		return lama_error(LAMA_EINVAL, "lama_server_open: missing argument or on_message");
	*out = NULL;
	dlen = strlen(dir);
	if (dlen == 0)
		return lama_error(LAMA_EINVAL, "empty data folder path");
	if (dlen + 1 + strlen(LAMA_SERVE_SOCKET) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return lama_error(LAMA_ELIMIT,
				  "socket path %s/%s is %zu bytes, more than a Unix socket allows (%zu): "
				  "use a shorter data folder path",
				  dir, LAMA_SERVE_SOCKET, dlen + 1 + strlen(LAMA_SERVE_SOCKET),
				  sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	srv = lama_calloc(1, sizeof(*srv));
	if (!srv)
		return lama_error(LAMA_ENOMEM, "out of memory");
	srv->dirfd = srv->lockfd = -1;
	srv->cfg = cfg;
	srv->ctx = ctx;
	srv->line_max = cfg->line_max ? cfg->line_max : LAMA_SERVE_LINE_MAX;
	srv->out_max = cfg->out_max ? cfg->out_max : LAMA_SERVE_OUT_MAX;
	srv->out_high = cfg->out_high ? cfg->out_high : LAMA_SERVE_OUT_HIGH;
	if (srv->out_high > srv->out_max)
		srv->out_high = srv->out_max;
	srv->clients_max = cfg->clients_max ? cfg->clients_max : LAMA_SERVE_CLIENTS_MAX;
	srv->stall_ms = cfg->stall_ms ? cfg->stall_ms : LAMA_SERVE_STALL_MS;
	srv->flush_ms = cfg->flush_ms ? cfg->flush_ms : LAMA_SERVE_FLUSH_MS;
	srv->refusal = cfg->refusal ? cfg->refusal : default_refusal;
	snprintf(srv->sock_path, sizeof(srv->sock_path), "%s/%s", dir, LAMA_SERVE_SOCKET);

	srv->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srv->dirfd < 0) {
		rc = errno == ENOENT ? LAMA_ENOTFOUND : LAMA_EIO;
		rc = lama_error(rc, "cannot open data folder %s: %s", dir, strerror(errno));
		goto fail;
	}
	rc = take_lock(srv, dir);
	if (rc != 0)
		goto fail;
	fd = make_socket(srv, dir);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	/* a client gone mid-write must be an EPIPE, not the end of lama */
	signal(SIGPIPE, SIG_IGN);

	rc = uv_loop_init(&srv->loop);
	if (rc != 0) {
		close(fd);
		rc = lama_error(LAMA_EIO, "uv_loop_init: %s", uv_strerror(rc));
		goto fail;
	}
	srv->loop_ready = 1;
	uv_pipe_init(&srv->loop, &srv->listener, 0);
	srv->listener.data = srv;
	rc = uv_pipe_open(&srv->listener, fd);
	if (rc == 0)
		srv->listening = 1;
	else
		close(fd);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN, on_connection);
	if (rc != 0) {
		rc = lama_error(LAMA_EIO, "cannot listen on %s: %s", srv->sock_path, uv_strerror(rc));
		goto fail;
	}
	uv_idle_init(&srv->loop, &srv->idle);
	srv->idle.data = srv;
	uv_check_init(&srv->loop, &srv->check);
	srv->check.data = srv;
	uv_check_start(&srv->check, on_check);
	uv_unref((uv_handle_t *)&srv->check);
	uv_timer_init(&srv->loop, &srv->sweep);
	srv->sweep.data = srv;
	{
		uint64_t every = srv->stall_ms / 4 ? srv->stall_ms / 4 : 1;

		uv_timer_start(&srv->sweep, on_sweep, every, every);
	}
	uv_unref((uv_handle_t *)&srv->sweep);
	uv_timer_init(&srv->loop, &srv->flush);
	srv->flush.data = srv;
	uv_signal_init(&srv->loop, &srv->sigint);
	srv->sigint.data = srv;
	uv_signal_init(&srv->loop, &srv->sigterm);
	srv->sigterm.data = srv;
	*out = srv;
	return 0;
fail:
	lama_server_close(srv);
	return rc;
}
