/* test_web.c: the WebSocket transport and page of lama serve (src/web),
 * with real libwebsockets on a real uv loop in a thread, and a WebSocket
 * client written here on raw TCP sockets (handshake, masking, framing).
 *
 * `test_web --serve [OUT_MAX]` runs the same echo server until SIGTERM
 * and prints its URL: tests/integration/ws.py drives it with
 * tests/integration/wsclient.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "testutil.h"
#include "util/err.h"
#include "serve/serve.h"
#include "util/mem.h"
#include "web/web.h"

/* ---- the server: an echo protocol on a loop in a thread ---- */

struct srv {
	uv_loop_t loop;
	uv_async_t stop;
	pthread_t thread;
	struct lama_web_config cfg;
	lama_web *w;
	int port;
	char token[LAMA_WEB_TOKEN_HEX + 1];
	int open_rc, loop_close_rc;
	atomic_int connects, closes, messages;
	pthread_mutex_t mu;
	pthread_cond_t ready;
	int started;
};

struct cdata {
	unsigned magic; /* 0xC11E47 until on_close */
};

static void e_connect(void *ctx, lama_web_client *c)
{
	struct srv *s = ctx;
	struct cdata *d = lama_calloc(1, sizeof(*d));

	if (!d) {
		lama_web_disconnect(c);
		return;
	}
	d->magic = 0xC11E47;
	lama_web_client_set_data(c, d);
	s->connects++;
}

static void e_close(void *ctx, lama_web_client *c)
{
	struct srv *s = ctx;
	struct cdata *d = lama_web_client_data(c);

	if (d) {
		if (d->magic != 0xC11E47)
			abort(); /* on_close twice */
		d->magic = 0;
		lama_free(d);
	}
	s->closes++;
}

static void e_message(void *ctx, lama_web_client *c, const char *msg, size_t n)
{
	struct srv *s = ctx;
	char b[64];

	if (msg[n] != '\0')
		abort(); /* the promise of web.h */
	s->messages++;
	if (n > 6 && !memcmp(msg, "flood ", 6)) {
		/* k messages of 64 KiB: a client that does not read passes
		 * out_max and is disconnected */
		static char big[65536];
		long i, k = strtol(msg + 6, NULL, 10);

		memset(big, 'y', sizeof(big));
		for (i = 0; i < k; i++)
			if (lama_web_send(c, big, sizeof(big)) != 0)
				break;
	} else if (n == 3 && !memcmp(msg, "bye", 3)) {
		lama_web_disconnect(c);
		if (lama_web_send(c, "late", 4) != LAMA_EIO)
			abort();
	} else if (n == 3 && !memcmp(msg, "oom", 3)) {
		lama_mem_fail_after(1, 0);
		if (lama_web_send(c, "lost", 4) != LAMA_ENOMEM)
			abort();
		lama_mem_fail_after(0, 0);
		lama_web_send(c, "enomem", 6);
	} else if (n == 5 && !memcmp(msg, "count", 5)) {
		snprintf(b, sizeof(b), "count %u", lama_web_client_count(s->w));
		lama_web_send(c, b, strlen(b));
	} else if (n == 6 && !memcmp(msg, "closes", 6)) {
		snprintf(b, sizeof(b), "closes %d", (int)s->closes);
		lama_web_send(c, b, strlen(b));
	} else {
		lama_web_send(c, msg, n);
	}
}

static void on_stop(uv_async_t *a)
{
	uv_stop(a->loop);
}

static void *serve(void *arg)
{
	struct srv *s = arg;

	uv_loop_init(&s->loop);
	uv_async_init(&s->loop, &s->stop, on_stop);
	s->open_rc = lama_web_open(&s->w, &s->loop, &s->cfg, s);
	if (s->w) {
		s->port = lama_web_port(s->w);
		memcpy(s->token, lama_web_token(s->w), sizeof(s->token));
	}
	pthread_mutex_lock(&s->mu);
	s->started = 1;
	pthread_cond_signal(&s->ready);
	pthread_mutex_unlock(&s->mu);
	if (s->w)
		uv_run(&s->loop, UV_RUN_DEFAULT);
	/* as lama serve will: after the loop stops, outside any callback */
	lama_web_close(s->w);
	uv_close((uv_handle_t *)&s->stop, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	s->loop_close_rc = uv_loop_close(&s->loop); /* UV_EBUSY: a handle left */
	return NULL;
}

static struct srv *srv_start(const struct lama_web_config *over)
{
	struct srv *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->cfg.on_connect = e_connect;
	s->cfg.on_message = e_message;
	s->cfg.on_close = e_close;
	if (over) {
		s->cfg.host = over->host;
		s->cfg.port = over->port;
		s->cfg.msg_max = over->msg_max;
		s->cfg.out_max = over->out_max;
		s->cfg.clients_max = over->clients_max;
		s->cfg.stall_ms = over->stall_ms;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->ready, NULL);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
	pthread_mutex_lock(&s->mu);
	while (!s->started)
		pthread_cond_wait(&s->ready, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return s;
}

/* Stops the loop, closes lama_web, checks the loop is left empty. */
static void srv_stop(struct srv *s)
{
	uv_async_send(&s->stop);
	pthread_join(s->thread, NULL);
	assert_int_equal(s->loop_close_rc, 0);
	assert_int_equal((int)s->connects, (int)s->closes); /* on_close once each */
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->ready);
	free(s);
}

/* ---- the client: raw TCP, HTTP by hand, RFC 6455 frames by hand ---- */

static int tcp(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *b = p;

	while (n) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
	char *b = p;

	while (n) {
		ssize_t k = recv(fd, b, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads an HTTP response head (up to the blank line) into buf; returns
 * the status code, or -1. */
static int read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		if (recv(fd, buf + n, 1, 0) != 1)
			return -1;
		n++;
		buf[n] = '\0';
		if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4))
			return atoi(buf + 9);
	}
	return -1;
}

static const char *find_header(const char *head, const char *name)
{
	static char v[512];
	const char *p = head;
	size_t ln = strlen(name);

	while ((p = strstr(p, "\r\n"))) {
		p += 2;
		if (!strncasecmp(p, name, ln) && p[ln] == ':') {
			const char *e = strstr(p, "\r\n");

			p += ln + 1;
			while (*p == ' ')
				p++;
			snprintf(v, sizeof(v), "%.*s", (int)(e - p), p);
			return v;
		}
	}
	return NULL;
}

/* Opens a WebSocket. host/origin NULL: the right Host, no Origin; "" for
 * origin: none. *status gets the HTTP status (101 when upgraded). Returns
 * the socket (the caller closes it), or -1 when refused. */
static int ws_open(int port, const char *target, const char *host, const char *origin,
		   int *status, char *head, size_t headcap)
{
	char req[1024], hb[80], own[4096];
	int fd = tcp(port), st;

	if (!head) {
		head = own;
		headcap = sizeof(own);
	}
	if (!host) {
		snprintf(hb, sizeof(hb), "127.0.0.1:%d", port);
		host = hb;
	}
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
		 "%s%s%s\r\n",
		 target, host, origin && *origin ? "Origin: " : "", origin ? origin : "",
		 origin && *origin ? "\r\n" : "");
	assert_int_equal(send_all(fd, req, strlen(req)), 0);
	st = read_head(fd, head, headcap);
	if (status)
		*status = st;
	if (st != 101) {
		close(fd);
		return -1;
	}
	/* RFC 6455's example key and its answer */
	assert_string_equal(find_header(head, "Sec-WebSocket-Accept"),
			    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	return fd;
}

static int ws_good(struct srv *s)
{
	char t[200];
	int st, fd;

	snprintf(t, sizeof(t), "/ipc?token=%s", s->token);
	fd = ws_open(s->port, t, NULL, NULL, &st, NULL, 0);
	assert_int_equal(st, 101);
	return fd;
}

/* One frame from the client (masked, as RFC 6455 requires). */
static int ws_frame(int fd, int opcode, int fin, const void *data, size_t n)
{
	unsigned char h[14], key[4], *m;
	size_t hn = 2, i;
	int rc;

	h[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hn = 4;
	} else {
		h[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		hn = 10;
	}
	randombytes_buf(key, 4);
	memcpy(h + hn, key, 4);
	hn += 4;
	m = malloc(n ? n : 1);
	assert_non_null(m);
	for (i = 0; i < n; i++)
		m[i] = ((const unsigned char *)data)[i] ^ key[i % 4];
	rc = send_all(fd, h, hn) || send_all(fd, m, n) ? -1 : 0;
	free(m);
	return rc;
}

static int ws_text(int fd, const char *s)
{
	return ws_frame(fd, 1, 1, s, strlen(s));
}

/* One frame from the server (never masked): its opcode, FIN in *fin,
 * the payload appended to *buf (*n bytes in all, NUL-terminated). -1 at
 * EOF or error. */
static int ws_frame_in(int fd, char **buf, size_t *n, int *fin)
{
	unsigned char h[8];
	uint64_t len;
	char *p;
	int i;

	if (recv_all(fd, h, 2))
		return -1;
	*fin = h[0] & 0x80;
	if (h[1] & 0x80)
		return -1; /* a server must not mask */
	len = h[1] & 0x7f;
	if (len == 126) {
		if (recv_all(fd, h + 2, 2))
			return -1;
		len = (uint64_t)h[2] << 8 | h[3];
	} else if (len == 127) {
		unsigned char l[8];

		if (recv_all(fd, l, 8))
			return -1;
		for (len = 0, i = 0; i < 8; i++)
			len = len << 8 | l[i];
	}
	if (len > ((uint64_t)64 << 20) || *n + len > ((uint64_t)64 << 20))
		return -1;
	p = realloc(*buf, *n + (size_t)len + 1);
	assert_non_null(p);
	*buf = p;
	if (recv_all(fd, p + *n, (size_t)len))
		return -1;
	*n += (size_t)len;
	p[*n] = '\0';
	return h[0] & 0x0f;
}

/* One message from the server, its fragments reassembled (lws may split
 * a big one). Returns its opcode and *out (malloc'd, NUL-terminated, n
 * bytes), or -1 at EOF / error. Control frames are returned alone. */
static int ws_read(int fd, char **out, size_t *n)
{
	int op, first = -1, fin;

	*out = NULL;
	*n = 0;
	for (;;) {
		op = ws_frame_in(fd, out, n, &fin);
		if (op < 0)
			break;
		if (first < 0)
			first = op;
		if (fin)
			return first;
	}
	free(*out);
	*out = NULL;
	return -1;
}

static void expect_text(int fd, const char *want)
{
	char *got;
	size_t n;

	assert_int_equal(ws_read(fd, &got, &n), 1);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(got, want, n);
	free(got);
}

/* The close frame's status, or 0 for EOF / reset without one. */
static int expect_close(int fd)
{
	char *got = NULL;
	size_t n = 0;
	int op, code = 0;

	while ((op = ws_read(fd, &got, &n)) == 1 || op == 9 || op == 10)
		free(got); /* frames still in flight */
	if (op == 8 && n >= 2)
		code = (unsigned char)got[0] << 8 | (unsigned char)got[1];
	free(got);
	return code;
}

/* A plain HTTP request; returns the status, the head in head and the
 * body (malloc'd) in *body. */
static int http(int port, const char *method, const char *path, const char *host, char *head,
		size_t headcap, char **body)
{
	char req[512], hb[80];
	const char *cl;
	int fd = tcp(port), st;
	size_t len;

	if (!host) {
		snprintf(hb, sizeof(hb), "127.0.0.1:%d", port);
		host = hb;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", method, path, host,
		 strcmp(method, "POST") ? "" : "Content-Length: 0\r\n");
	assert_int_equal(send_all(fd, req, strlen(req)), 0);
	st = read_head(fd, head, headcap);
	*body = NULL;
	if (st > 0 && (cl = find_header(head, "Content-Length"))) {
		len = strtoul(cl, NULL, 10);
		*body = calloc(1, len + 1);
		assert_non_null(*body);
		assert_int_equal(recv_all(fd, *body, len), 0);
	}
	close(fd);
	return st;
}

/* ---- the cases ---- */

/* Right token, Host and Origin: messages echo both ways, a fragmented one
 * is reassembled, one of exactly msg_max bytes passes. */
static void test_echo(void **state)
{
	struct srv *s = srv_start(NULL);
	char t[200], origin[64], *big, *got;
	size_t n;
	int st, fd;

	fd = ws_good(s);
	assert_int_equal(ws_text(fd, "hello"), 0);
	expect_text(fd, "hello");
	assert_int_equal(ws_text(fd, "{\"id\":1,\"channel\":\"query:ping\"}"), 0);
	expect_text(fd, "{\"id\":1,\"channel\":\"query:ping\"}");

	/* three fragments, a ping between them (control frames may interleave) */
	assert_int_equal(ws_frame(fd, 1, 0, "frag", 4), 0);
	assert_int_equal(ws_frame(fd, 0, 0, "ment", 4), 0);
	assert_int_equal(ws_frame(fd, 9, 1, "p", 1), 0);
	assert_int_equal(ws_frame(fd, 0, 1, "ed", 2), 0);
	assert_int_equal(ws_read(fd, &got, &n), 10); /* the pong */
	free(got);
	expect_text(fd, "fragmented");

	/* exactly msg_max (1 MiB) in two fragments */
	big = malloc(LAMA_WEB_MSG_MAX + 1);
	assert_non_null(big);
	memset(big, 'a', LAMA_WEB_MSG_MAX);
	big[LAMA_WEB_MSG_MAX] = '\0';
	assert_int_equal(ws_frame(fd, 1, 0, big, 1000), 0);
	assert_int_equal(ws_frame(fd, 0, 1, big + 1000, LAMA_WEB_MSG_MAX - 1000), 0);
	expect_text(fd, big);
	free(big);
	assert_int_equal(ws_text(fd, "count"), 0);
	expect_text(fd, "count 1");
	close(fd);

	/* Origin of the page itself, either name */
	snprintf(t, sizeof(t), "/ipc?token=%s", s->token);
	snprintf(origin, sizeof(origin), "http://localhost:%d", s->port);
	fd = ws_open(s->port, t, NULL, origin, &st, NULL, 0);
	assert_int_equal(st, 101);
	assert_int_equal(ws_text(fd, "x"), 0);
	expect_text(fd, "x");
	close(fd);
	snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", s->port);
	snprintf(t, sizeof(t), "localhost:%d", s->port);
	{
		char tt[200];

		snprintf(tt, sizeof(tt), "/ipc?token=%s", s->token);
		fd = ws_open(s->port, tt, t, origin, &st, NULL, 0);
	}
	assert_int_equal(st, 101);
	close(fd);
	srv_stop(s);
}

/* Without the right token, from another site, or by another name: refused
 * before any WebSocket exists, and the token is in no reply. */
static void test_refusals(void **state)
{
	struct srv *s = srv_start(NULL);
	char t[256], bad[LAMA_WEB_TOKEN_HEX + 1], host[64], head[4096];
	int st;

	snprintf(t, sizeof(t), "/ipc");
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 401);
	snprintf(t, sizeof(t), "/ipc?token=");
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 401);
	memcpy(bad, s->token, sizeof(bad));
	bad[10] = bad[10] == '0' ? '1' : '0'; /* one digit off */
	snprintf(t, sizeof(t), "/ipc?token=%s", bad);
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 401);
	snprintf(t, sizeof(t), "/ipc?token=%.63s", s->token); /* a prefix */
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 401);
	snprintf(t, sizeof(t), "/ipc?token=%sab", s->token); /* longer */
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 401);

	/* the right token, but from a foreign page or by a foreign name */
	snprintf(t, sizeof(t), "/ipc?token=%s", s->token);
	assert_int_equal(ws_open(s->port, t, NULL, "http://evil.example", &st, head,
				 sizeof(head)), -1);
	assert_int_equal(st, 403);
	assert_null(strstr(head, s->token));
	assert_int_equal(ws_open(s->port, t, NULL, "null", &st, NULL, 0), -1);
	assert_int_equal(st, 403);
	snprintf(host, sizeof(host), "http://127.0.0.1:%d.evil.example", s->port);
	assert_int_equal(ws_open(s->port, t, NULL, host, &st, NULL, 0), -1);
	assert_int_equal(st, 403);
	snprintf(host, sizeof(host), "https://127.0.0.1:%d", s->port);
	assert_int_equal(ws_open(s->port, t, NULL, host, &st, NULL, 0), -1);
	assert_int_equal(st, 403);
	snprintf(host, sizeof(host), "evil.example:%d", s->port);
	assert_int_equal(ws_open(s->port, t, host, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 403);
	assert_int_equal(ws_open(s->port, t, "127.0.0.1", NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 403); /* the port is part of the name */
	assert_int_equal(ws_open(s->port, t, "127.0.0.1:1", NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 403);
	/* another path with the right token */
	snprintf(t, sizeof(t), "/ipc2?token=%s", s->token);
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 404);
	assert_int_equal((int)s->connects, 0);
	srv_stop(s);
}

/* GET / serves the page with its headers; nothing else is served. */
static void test_page(void **state)
{
	struct srv *s = srv_start(NULL);
	char head[8192], host[64], want[256], *body;
	const char *h;

	assert_int_equal(http(s->port, "GET", "/", NULL, head, sizeof(head), &body), 200);
	assert_non_null(body);
	assert_non_null(strstr(body, "<title>lama</title>"));
	assert_non_null(strstr(body, "src=\"/app.js\""));
	assert_null(strstr(body, s->token)); /* the page holds no secret */
	assert_null(strstr(body, "<script>")); /* no inline script */
	free(body);
	assert_string_equal(find_header(head, "Content-Type"), "text/html; charset=utf-8");
	assert_string_equal(find_header(head, "X-Frame-Options"), "DENY");
	assert_string_equal(find_header(head, "Cache-Control"), "no-store");
	assert_string_equal(find_header(head, "X-Content-Type-Options"), "nosniff");
	h = find_header(head, "Content-Security-Policy");
	assert_non_null(h);
	assert_non_null(strstr(h, "default-src 'none'"));
	assert_non_null(strstr(h, "script-src 'self'"));
	assert_non_null(strstr(h, "frame-ancestors 'none'"));
	snprintf(want, sizeof(want), "connect-src ws://127.0.0.1:%d ws://localhost:%d;", s->port,
		 s->port);
	assert_non_null(strstr(h, want));
	assert_null(strstr(h, "unsafe-inline"));

	assert_int_equal(http(s->port, "GET", "/app.js", NULL, head, sizeof(head), &body), 200);
	assert_non_null(strstr(body, "location.hash"));
	assert_null(strstr(body, "innerHTML"));
	free(body);
	assert_string_equal(find_header(head, "Content-Type"), "text/javascript; charset=utf-8");
	assert_int_equal(http(s->port, "GET", "/app.css", NULL, head, sizeof(head), &body), 200);
	free(body);

	/* the other name of the server is fine too */
	snprintf(host, sizeof(host), "localhost:%d", s->port);
	assert_int_equal(http(s->port, "GET", "/", host, head, sizeof(head), &body), 200);
	free(body);
	/* a foreign name (DNS rebinding) is not */
	snprintf(host, sizeof(host), "evil.example:%d", s->port);
	assert_int_equal(http(s->port, "GET", "/", host, head, sizeof(head), &body), 403);
	free(body);
	assert_int_equal(http(s->port, "GET", "/app.js", "evil.example", head, sizeof(head), &body),
			 403);
	free(body);

	/* nothing but the page's files */
	const char *paths[] = { "/etc/passwd", "/../../../../etc/passwd", "/index.html",
				"/%2e%2e/%2e%2e/etc/passwd", "/app.js/", "/ipc", "/web.c",
				"//etc/passwd", "/app.js?x=1/../../etc/passwd" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
		int st = http(s->port, "GET", paths[i], NULL, head, sizeof(head), &body);

		if (!strcmp(paths[i], "/app.js?x=1/../../etc/passwd")) {
			assert_int_equal(st, 200); /* the query is not part of the path */
			assert_non_null(strstr(body, "location.hash"));
		} else {
			if (st != 404)
				print_message("%s: %d\n", paths[i], st);
			assert_int_equal(st, 404);
			assert_null(body ? strstr(body, "root:") : NULL);
		}
		free(body);
	}
	assert_int_equal(http(s->port, "POST", "/", NULL, head, sizeof(head), &body), 405);
	free(body);
	srv_stop(s);
}

/* Too big (10 MB) or binary: that client is closed (1009 / 1003) and the
 * server goes on serving others. */
static void test_limits(void **state)
{
	struct srv *s = srv_start(NULL);
	size_t n = (size_t)10 << 20;
	char *big = malloc(n);
	int fd, fd2;

	assert_non_null(big);
	memset(big, 'z', n);
	fd2 = ws_good(s);
	fd = ws_good(s);
	ws_frame(fd, 1, 1, big, n); /* may fail half-way: the server hangs up */
	assert_int_equal(expect_close(fd), 1009);
	close(fd);
	assert_int_equal(ws_text(fd2, "still here"), 0);
	expect_text(fd2, "still here");

	/* msg_max + 1 in fragments: closed when the sum passes */
	fd = ws_good(s);
	assert_int_equal(ws_frame(fd, 1, 0, big, LAMA_WEB_MSG_MAX), 0);
	ws_frame(fd, 0, 1, "!", 1);
	assert_int_equal(expect_close(fd), 1009);
	close(fd);

	fd = ws_good(s);
	assert_int_equal(ws_frame(fd, 2, 1, "\x01\x02", 2), 0);
	assert_int_equal(expect_close(fd), 1003);
	close(fd);

	/* invalid UTF-8 in a text message */
	fd = ws_good(s);
	assert_int_equal(ws_frame(fd, 1, 1, "\xff\xfe", 2), 0);
	assert_int_equal(expect_close(fd), 1007);
	close(fd);

	assert_int_equal(ws_text(fd2, "count"), 0);
	expect_text(fd2, "count 1");
	close(fd2);
	free(big);
	srv_stop(s);
}

/* 100 WebSockets at once, each echoed in turn; clients_max refuses more. */
static void test_many(void **state)
{
	struct lama_web_config over = { .clients_max = 100 };
	struct srv *s = srv_start(&over);
	int fds[100], st, i;
	char msg[32], t[200];

	for (i = 0; i < 100; i++)
		fds[i] = ws_good(s);
	snprintf(t, sizeof(t), "/ipc?token=%s", s->token);
	assert_int_equal(ws_open(s->port, t, NULL, NULL, &st, NULL, 0), -1);
	assert_int_equal(st, 503);
	for (i = 0; i < 100; i++) {
		snprintf(msg, sizeof(msg), "client %d", i);
		assert_int_equal(ws_text(fds[i], msg), 0);
	}
	for (i = 99; i >= 0; i--) {
		snprintf(msg, sizeof(msg), "client %d", i);
		expect_text(fds[i], msg);
	}
	assert_int_equal(ws_text(fds[0], "count"), 0);
	expect_text(fds[0], "count 100");
	for (i = 0; i < 100; i++)
		close(fds[i]);
	/* the count drops as they go, and a new one is let in */
	for (i = 0; i < 100; i++) {
		int fd = ws_open(s->port, t, NULL, NULL, &st, NULL, 0);

		if (fd >= 0) {
			assert_int_equal(ws_text(fd, "closes"), 0);
			expect_text(fd, "closes 100");
			close(fd);
			break;
		}
		usleep(20000);
	}
	assert_true(i < 100);
	srv_stop(s);
}

/* A half-open client (a request never finished), one that upgraded and
 * then went silent, and one that never reads while the server floods
 * it: none holds up the others; the flooded one is cut at out_max. */
static void test_stuck(void **state)
{
	struct lama_web_config over = { .out_max = (size_t)1 << 20 };
	struct srv *s = srv_start(&over);
	char part[128], *got;
	int half = tcp(s->port), silent, greedy, fd, rcv = 4096, op;
	size_t n, total = 0;

	snprintf(part, sizeof(part), "GET /ipc?token=%.10s", s->token);
	assert_int_equal(send_all(half, part, strlen(part)), 0);
	silent = ws_good(s);
	greedy = ws_good(s);
	setsockopt(greedy, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	/* 64 x 64 KiB = 4 MiB, four times its out_max */
	assert_int_equal(ws_text(greedy, "flood 64"), 0);
	fd = ws_good(s);
	assert_int_equal(ws_text(fd, "ping"), 0);
	expect_text(fd, "ping");
	/* the greedy one was disconnected: reading now, it finds less than
	 * was sent, then the end */
	while ((op = ws_read(greedy, &got, &n)) == 1) {
		total += n;
		free(got);
	}
	free(got);
	assert_true(total < (size_t)64 << 16);
	close(greedy);
	assert_int_equal(ws_text(fd, "closes"), 0);
	expect_text(fd, "closes 1");
	close(fd);
	close(half);
	close(silent);
	srv_stop(s);
}

/* lama_web_disconnect: a close frame (1008), later sends refused; and
 * lama_web_close with clients connected: queued replies, then 1001. */
static void test_close(void **state)
{
	struct lama_web_config over = { .out_max = (size_t)64 << 20 };
	struct srv *s = srv_start(&over);
	int a = ws_good(s), b = ws_good(s), c = ws_good(s), stuck = ws_good(s), half, rcv = 4096;
	struct timespec t0, t1;

	assert_int_equal(ws_text(a, "bye"), 0);
	assert_int_equal(expect_close(a), 1008);
	close(a);
	assert_int_equal(ws_text(b, "one"), 0);
	expect_text(b, "one");
	/* at shutdown also: one that does not read, with 19 MiB waiting, and
	 * a request never finished; they delay the close by 1 s at most */
	setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	assert_int_equal(ws_text(stuck, "flood 300"), 0);
	assert_int_equal(ws_text(b, "count"), 0); /* the flood is queued */
	expect_text(b, "count 3");
	half = tcp(s->port);
	assert_int_equal(send_all(half, "GET / HTTP/1.1\r\nHo", 19), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	srv_stop(s); /* b, c and stuck still connected: on_close for each */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	assert_int_equal(expect_close(b), 1001);
	assert_int_equal(expect_close(c), 1001);
	close(b);
	close(c);
	close(stuck);
	close(half);
}

static void test_open(void **state)
{
	struct lama_web_config cfg = { .on_message = e_message };
	const char *bad[] = { "0.0.0.0", "192.168.1.1", "example.com", "::1", "", "127.0.0.1 " };
	uv_loop_t loop;
	lama_web *w = NULL, *w2 = NULL;
	char url[LAMA_WEB_URL_MAX], want[LAMA_WEB_URL_MAX];

	uv_loop_init(&loop);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		cfg.host = bad[i];
		assert_int_equal(lama_web_open(&w, &loop, &cfg, NULL), LAMA_EINVAL);
		assert_null(w);
	}
	cfg.host = "localhost";
	assert_int_equal(lama_web_open(&w, &loop, &cfg, NULL), 0);
	assert_true(lama_web_port(w) > 0);
	assert_int_equal(strlen(lama_web_token(w)), LAMA_WEB_TOKEN_HEX);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d/#token=%s", lama_web_port(w),
		 lama_web_token(w));
	assert_int_equal(lama_web_url(w, url, sizeof(url)), 0);
	assert_string_equal(url, want);
	assert_int_equal(lama_web_url(w, url, 20), LAMA_ELIMIT);
	/* the address with its token in a file only the user can read */
	{
		char path[4200], buf[256], link[4200];
		const char *dir = tu_tmpdir();
		struct stat st;
		FILE *f;

		snprintf(path, sizeof(path), "%s/web.url", dir);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs("an old and much longer address than the new one will be, to be cut\n", f);
		fclose(f);
		chmod(path, 0644);
		assert_int_equal(lama_web_save_url(w, path), 0);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		f = fopen(path, "r");
		assert_non_null(f);
		assert_non_null(fgets(buf, sizeof(buf), f));
		assert_null(fgets(buf + strlen(buf), (int)(sizeof(buf) - strlen(buf)), f));
		fclose(f);
		strcat(want, "\n");
		assert_string_equal(buf, want);
		snprintf(link, sizeof(link), "%s/link.url", dir);
		assert_int_equal(symlink(path, link), 0);
		assert_int_equal(lama_web_save_url(w, link), LAMA_EIO);
		assert_null(strstr(lama_errmsg(), lama_web_token(w)));
		tu_rmtree(dir);
	}
	/* the port is taken: an error, and nothing left on the loop */
	cfg.port = lama_web_port(w);
	assert_int_equal(lama_web_open(&w2, &loop, &cfg, NULL), LAMA_EIO);
	assert_null(w2);
	/* each start has its own token */
	cfg.port = 0;
	assert_int_equal(lama_web_open(&w2, &loop, &cfg, NULL), 0);
	assert_string_not_equal(lama_web_token(w), lama_web_token(w2));
	lama_web_close(w2);
	lama_web_close(w);
	lama_web_close(NULL);
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A client that sends requests without reading the replies: its input
 * waits while its output is above out_max / 8, so it is slowed down, not
 * cut off, and every reply arrives once it reads; others go on meanwhile. */
static void test_backpressure(void **state)
{
	struct lama_web_config over = { .out_max = (size_t)1 << 20 };
	struct srv *s = srv_start(&over);
	int fd = ws_good(s), other = ws_good(s), i;
	char *got;
	size_t n;

	for (i = 0; i < 200; i++) /* 200 x 64 KiB of replies: 12 x out_max */
		assert_int_equal(ws_text(fd, "flood 1"), 0);
	usleep(300000);
	assert_int_equal(ws_text(other, "meanwhile"), 0);
	expect_text(other, "meanwhile");
	for (i = 0; i < 200; i++) {
		assert_int_equal(ws_read(fd, &got, &n), 1);
		assert_int_equal(n, 65536);
		free(got);
	}
	assert_int_equal(ws_text(fd, "closes"), 0);
	expect_text(fd, "closes 0");
	close(fd);
	close(other);
	srv_stop(s);
}

/* Allocation failures: lama_web_open fails cleanly, a WebSocket whose
 * client cannot be allocated is dropped before on_connect, and
 * lama_web_send reports LAMA_ENOMEM and keeps the client. */
static void test_oom(void **state)
{
	struct lama_web_config cfg = { .on_message = e_message };
	lama_web *w = NULL;
	uv_loop_t loop;
	struct srv *s;
	int fd, st;
	char t[200];

	uv_loop_init(&loop);
	lama_mem_fail_after(1, 0);
	assert_int_equal(lama_web_open(&w, &loop, &cfg, NULL), LAMA_ENOMEM);
	lama_mem_fail_after(0, 0);
	assert_null(w);
	assert_int_equal(uv_loop_close(&loop), 0);

	s = srv_start(NULL);
	snprintf(t, sizeof(t), "/ipc?token=%s", s->token);
	lama_mem_fail_after(1, 0); /* the loop thread's next: the client */
	fd = ws_open(s->port, t, NULL, NULL, &st, NULL, 0);
	assert_int_equal(st, 101);
	expect_close(fd);
	lama_mem_fail_after(0, 0);
	close(fd);
	assert_int_equal((int)s->connects, 0);
	fd = ws_good(s);
	assert_int_equal(ws_text(fd, "oom"), 0);
	expect_text(fd, "enomem");
	close(fd);
	srv_stop(s);
}

/* A client whose output makes no progress for stall_ms is cut off,
 * though its queue is far below out_max. */
static void test_stall(void **state)
{
	struct lama_web_config over = { .stall_ms = 1000, .out_max = (size_t)64 << 20 };
	struct srv *s = srv_start(&over);
	int rcv = 4096, greedy, fd, i;

	greedy = ws_good(s);
	setsockopt(greedy, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	/* 19 MiB, more than the kernel's buffers take, far below out_max */
	assert_int_equal(ws_text(greedy, "flood 300"), 0);
	fd = ws_good(s);
	for (i = 0; i < 100 && s->closes == 0; i++)
		usleep(50000);
	assert_int_equal((int)s->closes, 1);
	assert_true(i >= 10); /* not before a second without progress */
	assert_int_equal(ws_text(fd, "count"), 0);
	expect_text(fd, "count 1");
	close(greedy); /* what the kernel holds for it would take long to read */
	close(fd);
	srv_stop(s);
}

/* ---- beside the Unix-socket server, on its loop, as lama serve does ---- */

struct both {
	char dir[4096];
	lama_server *srv;
	lama_web *w;
	int port, rc;
	uv_handle_t *before[64]; /* the server's handles before lama_web_open */
	int nbefore, foreign;    /* handles after lama_web_close not among them */
	char token[LAMA_WEB_TOKEN_HEX + 1];
	pthread_mutex_t mu;
	pthread_cond_t ready;
	int started;
	atomic_int connects, closes;
};

static void u_message(void *ctx, lama_client *c, const char *msg, size_t n)
{
	struct both *b = ctx;

	if (n == 4 && !memcmp(msg, "stop", 4))
		lama_server_stop(b->srv);
	else
		lama_server_send(c, msg, n);
}

static void b_connect(void *ctx, lama_web_client *c)
{
	((struct both *)ctx)->connects++;
}

static void b_close(void *ctx, lama_web_client *c)
{
	((struct both *)ctx)->closes++;
}

static void b_message(void *ctx, lama_web_client *c, const char *msg, size_t n)
{
	lama_web_send(c, msg, n);
}

static void note_handle(uv_handle_t *h, void *arg)
{
	struct both *b = arg;

	if (b->nbefore < 64)
		b->before[b->nbefore++] = h;
}

static void check_handle(uv_handle_t *h, void *arg)
{
	struct both *b = arg;
	int i;

	for (i = 0; i < b->nbefore && b->before[i] != h; i++)
		;
	if (i == b->nbefore)
		b->foreign++;
}

static void *serve_both(void *arg)
{
	static const struct lama_server_config ucfg = { .on_message = u_message };
	static const struct lama_web_config wcfg = { .on_connect = b_connect,
						     .on_message = b_message,
						     .on_close = b_close };
	struct both *b = arg;
	uv_loop_t *loop = NULL;

	b->rc = lama_server_open(&b->srv, b->dir, &ucfg, b);
	if (!b->rc) {
		loop = lama_server_loop(b->srv);
		uv_walk(loop, note_handle, b);
		b->rc = lama_web_open(&b->w, loop, &wcfg, b);
	}
	if (!b->rc) {
		b->port = lama_web_port(b->w);
		memcpy(b->token, lama_web_token(b->w), sizeof(b->token));
	}
	pthread_mutex_lock(&b->mu);
	b->started = 1;
	pthread_cond_signal(&b->ready);
	pthread_mutex_unlock(&b->mu);
	if (!b->rc)
		b->rc = lama_server_run(b->srv);
	lama_web_close(b->w); /* after the run, before the server */
	if (loop)
		uv_walk(loop, check_handle, b);
	lama_server_close(b->srv);
	return NULL;
}

static int unix_connect(const char *dir)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(strlen(dir) + sizeof(LAMA_SERVE_SOCKET) < sizeof(a.sun_path));
	memcpy(a.sun_path, dir, strlen(dir));
	memcpy(a.sun_path + strlen(dir), "/" LAMA_SERVE_SOCKET, sizeof(LAMA_SERVE_SOCKET) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void test_with_serve(void **state)
{
	struct both *b = calloc(1, sizeof(*b));
	pthread_t th;
	char line[16], t[200];
	int u, ws, ws2, st;

	assert_non_null(b);
	snprintf(b->dir, sizeof(b->dir), "%s", tu_tmpdir());
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->ready, NULL);
	assert_int_equal(pthread_create(&th, NULL, serve_both, b), 0);
	pthread_mutex_lock(&b->mu);
	while (!b->started)
		pthread_cond_wait(&b->ready, &b->mu);
	pthread_mutex_unlock(&b->mu);
	assert_int_equal(b->rc, 0);

	u = unix_connect(b->dir);
	snprintf(t, sizeof(t), "/ipc?token=%s", b->token);
	ws = ws_open(b->port, t, NULL, NULL, &st, NULL, 0);
	assert_int_equal(st, 101);
	ws2 = ws_open(b->port, t, NULL, NULL, &st, NULL, 0);
	assert_int_equal(st, 101);
	/* both transports answer, interleaved, on the one loop */
	assert_int_equal(send_all(u, "unix\n", 5), 0);
	assert_int_equal(ws_text(ws, "web"), 0);
	assert_int_equal(recv_all(u, line, 5), 0);
	assert_memory_equal(line, "unix\n", 5);
	expect_text(ws, "web");
	/* shutting down: the WebSocket clients hear 1001 */
	assert_int_equal(send_all(u, "stop\n", 5), 0);
	assert_int_equal(expect_close(ws), 1001);
	assert_int_equal(expect_close(ws2), 1001);
	pthread_join(th, NULL);
	assert_int_equal(b->rc, 0);
	assert_int_equal((int)b->connects, 2);
	assert_int_equal((int)b->closes, 2);
	/* lama_web_close left no handle of its own on the server's loop */
	assert_true(b->nbefore > 0 && b->nbefore < 64);
	assert_int_equal(b->foreign, 0);
	close(u);
	close(ws);
	close(ws2);
	tu_rmtree(b->dir);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->ready);
	free(b);
}

/* ---- --serve: the echo server for tests/integration/ws.py ---- */

static void on_signal(uv_signal_t *h, int sig)
{
	uv_stop(h->loop);
}

static int serve_main(int argc, char **argv)
{
	struct srv s = { 0 };
	uv_signal_t term;
	char url[LAMA_WEB_URL_MAX];

	s.cfg.on_connect = e_connect;
	s.cfg.on_message = e_message;
	s.cfg.on_close = e_close;
	if (argc > 2)
		s.cfg.out_max = strtoul(argv[2], NULL, 10);
	uv_loop_init(&s.loop);
	uv_signal_init(&s.loop, &term);
	uv_signal_start(&term, on_signal, SIGTERM);
	if (lama_web_open(&s.w, &s.loop, &s.cfg, &s)) {
		fprintf(stderr, "test_web: %s\n", lama_errmsg());
		return 1;
	}
	lama_web_url(s.w, url, sizeof(url));
	printf("%s\n", url);
	fflush(stdout);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	lama_web_close(s.w);
	uv_close((uv_handle_t *)&term, NULL);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s.loop) || s.connects != s.closes) {
		fprintf(stderr, "test_web: loop not empty or on_close missed\n");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),   cmocka_unit_test(test_echo),
		cmocka_unit_test(test_refusals), cmocka_unit_test(test_page),
		cmocka_unit_test(test_limits), cmocka_unit_test(test_many),
		cmocka_unit_test(test_stuck),  cmocka_unit_test(test_close),
		cmocka_unit_test(test_backpressure), cmocka_unit_test(test_stall),
		cmocka_unit_test(test_oom),
		cmocka_unit_test(test_with_serve),
	};

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "--serve"))
		return serve_main(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
