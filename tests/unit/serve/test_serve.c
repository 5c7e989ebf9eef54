/* test_serve.c: the main process's socket transport, with real sockets and
 * a real server in a forked child speaking an echo protocol. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "serve/serve.h"
#include "util/err.h"
#include "util/mem.h"

#define BURST_LINE ((size_t)64 << 10) /* bytes of one "burst" line, newline included */

static char dir[4096];
static pid_t child = -1;

/* ---- the child: an echo server ---- */

static lama_server *csrv;
static unsigned closes;

static void e_connect(void *ctx, lama_client *c)
{
	unsigned *n = lama_calloc(1, sizeof(*n));

	if (!n)
		_exit(3);
	lama_server_client_set_data(c, n);
}

static void e_message(void *ctx, lama_client *c, const char *msg, size_t n)
{
	unsigned *seen = lama_server_client_data(c);
	char b[64];

	if (msg[n] != '\0')
		_exit(4); /* the promise of serve.h */
	(*seen)++;
	if (n > 6 && memcmp(msg, "burst ", 6) == 0) {
		static char line[BURST_LINE - 1];
		long i, k = strtol(msg + 6, NULL, 10);

		memset(line, 'x', sizeof(line));
		for (i = 0; i < k; i++)
			if (lama_server_send(c, line, sizeof(line)) != 0)
				break; /* disconnected over out_max */
	} else if (n == 4 && memcmp(msg, "stop", 4) == 0) {
		lama_server_stop(csrv);
	} else if (n == 6 && memcmp(msg, "closes", 6) == 0) {
		snprintf(b, sizeof(b), "closes %u", closes);
		lama_server_send(c, b, strlen(b));
	} else if (n == 5 && memcmp(msg, "count", 5) == 0) {
		snprintf(b, sizeof(b), "count %u", lama_server_client_count(csrv));
		lama_server_send(c, b, strlen(b));
	} else if (n == 4 && memcmp(msg, "seen", 4) == 0) {
		snprintf(b, sizeof(b), "seen %u", *seen);
		lama_server_send(c, b, strlen(b));
	} else {
		lama_server_send(c, msg, n);
	}
}

static void e_oversize(void *ctx, lama_client *c)
{
	lama_server_send(c, "oversize", 8);
}

static void e_close(void *ctx, lama_client *c)
{
	closes++;
	lama_free(lama_server_client_data(c));
}

static struct lama_server_config echo_cfg(void)
{
	struct lama_server_config cfg = {
		.on_connect = e_connect,
		.on_message = e_message,
		.on_oversize = e_oversize,
		.on_close = e_close,
	};
	return cfg;
}

/* Forks a server on dir; returns when it listens. */
static pid_t spawn(const struct lama_server_config *cfg)
{
	int p[2];
	char ok = 0;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc;

		close(p[0]);
		rc = lama_server_open(&csrv, dir, cfg, NULL);
		if (rc != 0) {
			fprintf(stderr, "child: %s\n", lama_errmsg());
			_exit(2);
		}
		if (write(p[1], "R", 1) != 1)
			_exit(2);
		close(p[1]);
		rc = lama_server_run(csrv);
		lama_server_close(csrv);
		/* exit, not _exit: LeakSanitizer checks the child too */
		exit(rc == 0 ? 0 : 1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &ok, 1), 1);
	assert_int_equal(ok, 'R');
	close(p[0]);
	return pid;
}

static int reap(pid_t pid)
{
	int st = 0;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

/* ---- the parent: plain AF_UNIX clients ---- */

struct conn {
	int fd;
	char *buf;
	size_t len;
};

/* Connections still open, closed by teardown when an assertion jumps out
 * of a test: otherwise their buffers would leak into the next test's
 * forked server and fail its leak check. */
static struct conn *open_conns[256];

static void conn_track(struct conn *c, int on)
{
	size_t i;

	for (i = 0; i < 256; i++)
		if (open_conns[i] == (on ? NULL : c)) {
			open_conns[i] = on ? c : NULL;
			return;
		}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void conn_open(struct conn *c)
{
	struct sockaddr_un sa;
	struct timeval tv = { 10, 0 };

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	{
		char path[4200];
		int n = snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_SOCKET);

		assert_true(n > 0 && (size_t)n < sizeof(sa.sun_path));
		memcpy(sa.sun_path, path, (size_t)n + 1);
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	c->buf = malloc(4 << 20);
	assert_non_null(c->buf);
	c->len = 0;
	conn_track(c, 1);
}

static void conn_close(struct conn *c)
{
	conn_track(c, 0);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static void conn_send(struct conn *c, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);

		assert_true(w > 0);
		s += w;
		n -= (size_t)w;
	}
}

static void conn_puts(struct conn *c, const char *s)
{
	conn_send(c, s, strlen(s));
}

/* One line (without newline, NUL-terminated in c->buf's copy returned);
 * -1 on EOF, error or timeout. */
static long conn_line(struct conn *c, char **line)
{
	static char *out;
	char *nl;

	for (;;) {
		nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);

			free(out);
			out = malloc(n + 1);
			memcpy(out, c->buf, n);
			out[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			*line = out;
			return (long)n;
		}
		if (c->len == (size_t)4 << 20)
			return -1;
		ssize_t r = recv(c->fd, c->buf + c->len, ((size_t)4 << 20) - c->len, 0);

		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static void expect_line(struct conn *c, const char *want)
{
	char *got = NULL;
	long n = conn_line(c, &got);

	assert_true(n >= 0);
	assert_string_equal(got, want);
}

/* Bytes until EOF or error; *eof set when the server closed. */
static size_t drain(struct conn *c, int *eof)
{
	size_t total = c->len;
	char b[65536];

	c->len = 0;
	*eof = 0;
	for (;;) {
		ssize_t r = recv(c->fd, b, sizeof(b), 0);

		if (r > 0) {
			total += (size_t)r;
			continue;
		}
		*eof = r == 0 || errno == ECONNRESET;
		return total;
	}
}

static double round_trip(struct conn *c, const char *msg)
{
	double t = now_ms();

	conn_puts(c, msg);
	conn_puts(c, "\n");
	expect_line(c, msg);
	return now_ms() - t;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	child = -1;
	return 0;
}

static int teardown(void **state)
{
	size_t i;

	for (i = 0; i < 256; i++)
		if (open_conns[i])
			conn_close(open_conns[i]);
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	tu_rmtree(dir);
	return 0;
}

/* Ends the child with SIGTERM: it must exit 0 and remove its socket. */
static void stop_child(void)
{
	char path[4200];
	struct stat st;
	int s;

	assert_int_equal(kill(child, SIGTERM), 0);
	s = reap(child);
	child = -1;
	assert_true(WIFEXITED(s));
	assert_int_equal(WEXITSTATUS(s), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_SOCKET);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* ---- tests ---- */

static void test_echo(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn c;

	child = spawn(&cfg);
	conn_open(&c);
	round_trip(&c, "hello");
	round_trip(&c, "");
	conn_puts(&c, "seen\n");
	expect_line(&c, "seen 3");
	conn_close(&c);
	stop_child();
}

static void test_lines(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	const char *msg = "a line written one byte at a time, with pauses";
	struct conn c;
	size_t i;

	child = spawn(&cfg);
	conn_open(&c);
	round_trip(&c, "hello");
	/* split across many writes */
	for (i = 0; msg[i]; i++) {
		conn_send(&c, msg + i, 1);
		usleep(2000);
	}
	conn_puts(&c, "\n");
	expect_line(&c, msg);
	/* several lines in one write, an empty one among them */
	conn_puts(&c, "a\nbb\n\nccc\n");
	expect_line(&c, "a");
	expect_line(&c, "bb");
	expect_line(&c, "");
	expect_line(&c, "ccc");
	/* per-client data: 1 + 1 + 4 lines so far, and this one */
	conn_puts(&c, "seen\n");
	expect_line(&c, "seen 7");
	conn_close(&c);
	stop_child();
}

static void test_oversize(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	size_t max = LAMA_SERVE_LINE_MAX;
	char *big = malloc(3 * max + 2), *got;
	struct conn c;
	size_t i;

	child = spawn(&cfg);
	conn_open(&c);
	/* exactly line_max: delivered */
	memset(big, 'a', max);
	big[max] = '\n';
	conn_send(&c, big, max + 1);
	assert_int_equal(conn_line(&c, &got), (long)max);
	assert_int_equal(got[0], 'a');
	assert_int_equal(got[max - 1], 'a');
	/* one more byte: dropped, on_oversize, the client stays */
	memset(big, 'b', max + 1);
	big[max + 1] = '\n';
	conn_send(&c, big, max + 2);
	expect_line(&c, "oversize");
	round_trip(&c, "after");
	/* 3 MiB in pieces without a newline: one on_oversize, then the line
	 * after it is whole */
	memset(big, 'c', 3 * max);
	for (i = 0; i < 3 * max; i += 100000)
		conn_send(&c, big + i, i + 100000 > 3 * max ? 3 * max - i : 100000);
	conn_puts(&c, "tail of the long line\nnext\n");
	expect_line(&c, "oversize");
	expect_line(&c, "next");
	conn_close(&c);
	free(big);
	stop_child();
}

static void test_half_open(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn a, idle, b;
	double worst = 0;
	int i;

	child = spawn(&cfg);
	conn_open(&a);
	conn_open(&idle);
	conn_open(&b);
	conn_puts(&a, "a partial line"); /* and then nothing for a while */
	for (i = 0; i < 50; i++) {
		char m[32];
		double t;

		snprintf(m, sizeof(m), "ping %d", i);
		t = round_trip(&b, m);
		if (t > worst)
			worst = t;
	}
	print_message("half-open: worst round trip of the other client %.1f ms\n", worst);
	assert_true(worst < 500);
	conn_puts(&a, " ends now\n");
	expect_line(&a, "a partial line ends now");
	conn_close(&a);
	conn_close(&idle);
	conn_close(&b);
	stop_child();
}

static void test_hundred_clients(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	static struct conn c[100];
	char m[32];
	int i;

	child = spawn(&cfg);
	for (i = 0; i < 100; i++)
		conn_open(&c[i]);
	for (i = 0; i < 100; i++) {
		snprintf(m, sizeof(m), "client %d", i);
		conn_puts(&c[i], m);
		conn_puts(&c[i], "\n");
	}
	for (i = 99; i >= 0; i--) {
		snprintf(m, sizeof(m), "client %d", i);
		expect_line(&c[i], m);
	}
	conn_puts(&c[0], "count\n");
	expect_line(&c[0], "count 100");
	for (i = 0; i < 100; i++)
		conn_close(&c[i]);
	stop_child();
}

/* A client floods and never reads: its reading pauses, its queue stalls,
 * it is disconnected after stall_ms; another client is answered promptly
 * the whole time. */
static void test_flood(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn f, b;
	char chunk[65536];
	double start, worst = 0;
	size_t sent = 0;
	int gone = 0, i;

	cfg.stall_ms = 1000;
	child = spawn(&cfg);
	conn_open(&f);
	conn_open(&b);
	for (i = 0; i < (int)sizeof(chunk); i++)
		chunk[i] = i % 100 == 99 ? '\n' : 'f';
	start = now_ms();
	while (now_ms() - start < 20000) {
		ssize_t w = send(f.fd, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
		double t;

		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			gone = 1;
			break;
		}
		if (w > 0)
			sent += (size_t)w;
		t = round_trip(&b, "still there?");
		if (t > worst)
			worst = t;
	}
	print_message("flood: %zu bytes sent before the disconnect after %.0f ms; worst round trip "
		      "of the other client %.1f ms\n",
		      sent, now_ms() - start, worst);
	assert_true(gone);
	assert_true(sent > LAMA_SERVE_OUT_HIGH); /* it did get to flood */
	assert_true(worst < 500);
	conn_puts(&b, "closes\n");
	expect_line(&b, "closes 1");
	conn_close(&f);
	conn_close(&b);
	stop_child();
}

/* Replies past out_max: disconnected at once, the others unharmed. */
static void test_out_max(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn f, b;
	size_t got;
	int eof;

	child = spawn(&cfg);
	conn_open(&f);
	conn_open(&b);
	conn_puts(&f, "burst 200\n"); /* 12.5 MiB of replies */
	round_trip(&b, "fine");
	got = drain(&f, &eof);
	print_message("out_max: the flooded reader got %zu bytes\n", got);
	assert_true(eof);
	assert_true(got < 200 * BURST_LINE);
	assert_true(got <= LAMA_SERVE_OUT_MAX);
	conn_puts(&b, "closes\n");
	expect_line(&b, "closes 1");
	round_trip(&b, "fine");
	conn_close(&f);
	conn_close(&b);
	stop_child();
}

static void test_client_limit(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn c[5];
	char *line;
	int i, eof;

	cfg.clients_max = 4;
	cfg.refusal = "go away\n";
	child = spawn(&cfg);
	for (i = 0; i < 4; i++) {
		conn_open(&c[i]);
		round_trip(&c[i], "in");
	}
	conn_open(&c[4]);
	assert_int_equal(conn_line(&c[4], &line), 7);
	assert_string_equal(line, "go away");
	drain(&c[4], &eof);
	assert_true(eof);
	conn_close(&c[4]);
	/* a place frees up */
	conn_close(&c[3]);
	for (i = 0; i < 200; i++) {
		conn_puts(&c[0], "count\n");
		assert_true(conn_line(&c[0], &line) > 0);
		if (strcmp(line, "count 3") == 0)
			break;
		usleep(5000);
	}
	assert_string_equal(line, "count 3");
	conn_open(&c[3]);
	round_trip(&c[3], "back in");
	for (i = 0; i < 4; i++)
		conn_close(&c[i]);
	stop_child();
}

static void test_socket_and_lock(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	lama_server *srv = NULL;
	char path[4200], pid[32], buf[64] = { 0 };
	struct stat st;
	int fd;

	child = spawn(&cfg);
	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_SOCKET);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second server on the folder: busy, naming the holder */
	snprintf(pid, sizeof(pid), "%ld", (long)child);
	assert_int_equal(lama_server_open(&srv, dir, &cfg, NULL), LAMA_EBUSY);
	assert_null(srv);
	print_message("second server: %s\n", lama_errmsg());
	assert_non_null(strstr(lama_errmsg(), pid));
	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_LOCK);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_int_equal(strtol(buf, NULL, 10), (long)child);
	/* the first one still serves */
	{
		struct conn c;

		conn_open(&c);
		round_trip(&c, "still mine");
		conn_close(&c);
	}
	stop_child();
}

/* SIGTERM while replies are queued: they are flushed, then exit 0. */
static void test_sigterm_flush(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn c;
	size_t got;
	int eof, s;

	child = spawn(&cfg);
	conn_open(&c);
	conn_puts(&c, "burst 20\n");
	usleep(200000); /* the replies are queued: more than the socket holds */
	assert_int_equal(kill(child, SIGTERM), 0);
	got = drain(&c, &eof);
	assert_true(eof);
	assert_int_equal(got, 20 * BURST_LINE);
	s = reap(child);
	child = -1;
	assert_true(WIFEXITED(s));
	assert_int_equal(WEXITSTATUS(s), 0);
	conn_close(&c);
}

static void test_stop_message(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	struct conn c;
	int s, eof;

	child = spawn(&cfg);
	conn_open(&c);
	conn_puts(&c, "stop\n");
	drain(&c, &eof);
	assert_true(eof);
	s = reap(child);
	child = -1;
	assert_true(WIFEXITED(s));
	assert_int_equal(WEXITSTATUS(s), 0);
	conn_close(&c);
}

/* SIGKILL leaves the socket file behind; the next server takes over. */
static void test_sigkill_restart(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	char path[4200];
	struct stat st;
	struct conn c;

	child = spawn(&cfg);
	kill(child, SIGKILL);
	reap(child);
	child = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_SOCKET);
	assert_int_equal(lstat(path, &st), 0); /* stale */
	child = spawn(&cfg);
	conn_open(&c);
	round_trip(&c, "new server");
	conn_close(&c);
	stop_child();
}

/* In this process: what open refuses, and a clean open/close cycle. */
static void test_open_refusals(void **state)
{
	struct lama_server_config cfg = echo_cfg();
	lama_server *srv = NULL;
	char path[4200], target[4200], longdir[4200];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_SOCKET);
	snprintf(target, sizeof(target), "%s/target", dir);
	/* a regular file where the socket goes */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(lama_server_open(&srv, dir, &cfg, NULL), LAMA_EEXIST);
	assert_non_null(strstr(lama_errmsg(), "not a socket"));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_size, 4);
	unlink(path);
	/* a symlink there, even to a socket's place: refused, target kept */
	fd = open(target, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(lama_server_open(&srv, dir, &cfg, NULL), LAMA_EEXIST);
	assert_int_equal(lstat(target, &st), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	unlink(path);
	/* a symlinked lock file */
	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_LOCK);
	unlink(path);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(lama_server_open(&srv, dir, &cfg, NULL), LAMA_EINVAL);
	assert_int_equal(lstat(target, &st), 0);
	assert_int_equal(st.st_size, 0);
	unlink(path);
	/* a folder whose socket path does not fit a sockaddr_un */
	snprintf(longdir, sizeof(longdir), "%s/%s", dir,
		 "a-rather-long-folder-name-so-that-the-socket-path-is-too-long-for-sun-path-"
		 "which-holds-only-108-bytes");
	assert_int_equal(mkdir(longdir, 0700), 0);
	assert_int_equal(lama_server_open(&srv, longdir, &cfg, NULL), LAMA_ELIMIT);
	print_message("long folder: %s\n", lama_errmsg());
	assert_non_null(strstr(lama_errmsg(), "shorter"));
	/* no folder */
	snprintf(longdir, sizeof(longdir), "%s/none", dir);
	assert_int_equal(lama_server_open(&srv, longdir, &cfg, NULL), LAMA_ENOTFOUND);
	assert_null(srv);
	/* open, close, open again: the lock is released, the socket removed */
	assert_int_equal(lama_server_open(&srv, dir, &cfg, NULL), 0);
	assert_non_null(lama_server_loop(srv));
	snprintf(path, sizeof(path), "%s/%s", dir, LAMA_SERVE_SOCKET);
	assert_int_equal(lstat(path, &st), 0);
	lama_server_close(srv);
	assert_int_equal(lstat(path, &st), -1);
	srv = NULL;
	assert_int_equal(lama_server_open(&srv, dir, &cfg, NULL), 0);
	/* stop before run: run returns at once */
	lama_server_stop(srv);
	assert_int_equal(lama_server_run(srv), 0);
	lama_server_close(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hundred_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_and_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
