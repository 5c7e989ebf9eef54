/* web.c: the WebSocket transport and UI page of lama serve, on
 * libwebsockets sharing the caller's libuv loop (docs/web.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <sodium.h>
#include <uv.h>

#include "util/err.h"
#include "util/mem.h"
#include "web/assets.h"
#include "web/web.h"

#define RX_CHUNK 16384     /* lws reads a frame in pieces of this size */
#define CLOSE_WAIT_MS 1000 /* lama_web_close: time for clients to go */
#define HDR_MAX 256        /* longest Host / Origin / path / token we look at */
#define STALL_TIMEOUT ((enum pending_timeout)(PENDING_TIMEOUT_USER_REASON_BASE + 1))
#define CLOSE_TIMEOUT ((enum pending_timeout)(PENDING_TIMEOUT_USER_REASON_BASE + 2))

/* One queued outgoing message, with the LWS_PRE bytes lws_write needs in
 * front of it. */
struct outmsg {
	struct outmsg *next;
	size_t n;
	unsigned char buf[]; /* LWS_PRE + n */
};

struct lama_web_client {
	lama_web *w;
	struct lws *wsi;
	lama_web_client *prev, *next; /* w->clients */
	void *data;
	char *in; /* the message being reassembled */
	size_t in_len, in_cap;
	struct outmsg *head, *tail;
	size_t queued; /* bytes in head..tail */
	int closing;   /* close status to send now (queue dropped) */
	int draining;  /* close status to send once the queue is written */
	int paused;    /* reading stopped: too much output waiting */
};

/* lws's per-connection user space (zeroed by lws). */
struct pss {
	lama_web_client *c; /* a WebSocket that reached on_connect */
};

struct lama_web {
	struct lws_context *ctx;
	struct lws_context *alive; /* lws writes NULL here when destroyed */
	struct lws_vhost *vh;
	uv_loop_t *loop;
	const struct lama_web_config *cfg;
	void *user;
	size_t msg_max, out_max;
	unsigned clients_max;
	int stall_s; /* seconds a queue may wait without progress */
	char ip[INET_ADDRSTRLEN];
	int port;
	char token[LAMA_WEB_TOKEN_HEX + 1];
	char hosts[2][INET_ADDRSTRLEN + 16];    /* allowed Host values */
	char origins[2][INET_ADDRSTRLEN + 24];  /* allowed Origin values */
	char csp[512];
	lama_web_client *clients;
	unsigned n;
	int stopping; /* lama_web_stop: no new WebSocket, no more input */
	struct lws_protocols protocols[2];
};

/* lws logs only errors, and never a line that could hold the token (a
 * request dump would carry the URI's query). */
static void log_emit(int level, const char *line)
{
	(void)level;
	if (strstr(line, "token") || strstr(line, "TOKEN") || strstr(line, "?"))
		return;
	fprintf(stderr, "lama web: %s", line);
}

static int hdr(struct lws *wsi, enum lws_token_indexes t, char *buf, size_t n)
{
	int len = lws_hdr_total_length(wsi, t);

	if (len <= 0 || (size_t)len >= n)
		return len <= 0 ? 0 : -1; /* absent: 0; too long: -1 */
	if (lws_hdr_copy(wsi, buf, (int)n, t) != len)
		return -1;
	return 1;
}

/* The Host header names this server (DNS rebinding: a page from
 * evil.example whose name now resolves to 127.0.0.1 sends its own name). */
static int host_ok(lama_web *w, struct lws *wsi)
{
	char h[HDR_MAX];

	if (hdr(wsi, WSI_TOKEN_HOST, h, sizeof(h)) != 1)
		return 0;
	return !strcmp(h, w->hosts[0]) || !strcmp(h, w->hosts[1]);
}

/* No Origin (not a browser) or this server's own page; a browser always
 * sends the page's origin, so another site cannot use a user's browser to
 * reach the socket. */
static int origin_ok(lama_web *w, struct lws *wsi)
{
	char o[HDR_MAX];
	int r = hdr(wsi, WSI_TOKEN_ORIGIN, o, sizeof(o));

	if (r == 0)
		return 1;
	return r == 1 && (!strcmp(o, w->origins[0]) || !strcmp(o, w->origins[1]));
}

static int token_ok(lama_web *w, struct lws *wsi)
{
	char buf[HDR_MAX];
	const char *t = lws_get_urlarg_by_name(wsi, "token=", buf, (int)sizeof(buf));
	int ok;

	/* the length is public (always 64); the value is compared in
	 * constant time */
	ok = t && strlen(t) == LAMA_WEB_TOKEN_HEX &&
	     sodium_memcmp(t, w->token, LAMA_WEB_TOKEN_HEX) == 0;
	sodium_memzero(buf, sizeof(buf));
	return ok;
}

/* Adds name: value to the headers being built. */
static int add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
	       unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value, (int)strlen(value), p, end);
}

/* One whole HTTP response, headers and body in one write (lws keeps what
 * the socket does not take and sends it before anything else). Returns
 * nonzero if the connection must be dropped. */
static int respond(lama_web *w, struct lws *wsi, unsigned status, const char *type,
		   const unsigned char *body, size_t n, int page)
{
	size_t cap = LWS_PRE + 2048 + n;
	unsigned char *buf = lama_malloc(cap), *start, *p, *end;
	char len[24];
	int rc = -1;

	if (!buf)
		return -1;
	start = p = buf + LWS_PRE;
	end = buf + cap;
	snprintf(len, sizeof(len), "%zu", n);
	if (lws_add_http_header_status(wsi, status, &p, end) ||
	    add(wsi, "content-type:", type, &p, end) ||
	    add(wsi, "content-length:", len, &p, end) ||
	    add(wsi, "cache-control:", "no-store", &p, end) ||
	    add(wsi, "x-content-type-options:", "nosniff", &p, end) ||
	    add(wsi, "x-frame-options:", "DENY", &p, end) ||
	    add(wsi, "referrer-policy:", "no-referrer", &p, end) ||
	    add(wsi, "content-security-policy:", page ? w->csp : "default-src 'none'", &p, end) ||
	    lws_finalize_http_header(wsi, &p, end))
		goto out;
	memcpy(p, body, n);
	p += n;
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) != (int)(p - start))
		goto out;
	rc = 0;
out:
	lama_free(buf);
	return rc;
}

static int refuse(lama_web *w, struct lws *wsi, unsigned status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%u %s\n", status,
			 status == 401 ? "unauthorized" : status == 403 ? "forbidden" :
			 status == 404 ? "not found" : status == 405 ? "method not allowed" :
			 "unavailable");

	return respond(w, wsi, status, "text/plain; charset=utf-8", (const unsigned char *)body,
		       (size_t)n, 0);
}

static int http_request(lama_web *w, struct lws *wsi, const char *path)
{
	const struct lama_web_asset *a;

	if (!host_ok(w, wsi)) {
		refuse(w, wsi, 403);
		return -1;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
		refuse(w, wsi, 405); /* a body may follow: drop the connection */
		return -1;
	}
	for (a = lama_web_assets; a->path; a++)
		if (!strcmp(path, a->path))
			break;
	if (a->path ? respond(w, wsi, 200, a->type, a->data, a->len, 1) : refuse(w, wsi, 404))
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Every check a WebSocket must pass; the HTTP status that refuses it. */
static unsigned upgrade_status(lama_web *w, struct lws *wsi)
{
	char path[HDR_MAX];

	if (!host_ok(w, wsi) || !origin_ok(w, wsi))
		return 403;
	if (hdr(wsi, WSI_TOKEN_GET_URI, path, sizeof(path)) != 1 || strcmp(path, "/ipc"))
		return 404;
	if (!token_ok(w, wsi))
		return 401;
	if (w->n >= w->clients_max || w->stopping)
		return 503;
	return 0;
}

static void queue_free(lama_web_client *c)
{
	while (c->head) {
		struct outmsg *m = c->head;

		c->head = m->next;
		lama_free(m);
	}
	c->tail = NULL;
	c->queued = 0;
}

/* The WebSocket is gone: on_close once, then free. */
static void client_gone(lama_web *w, struct pss *pss)
{
	lama_web_client *c = pss ? pss->c : NULL;

	if (!c)
		return;
	pss->c = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n--;
	c->closing = LWS_CLOSE_STATUS_GOINGAWAY; /* lama_web_send: LAMA_EIO */
	if (w->cfg->on_close)
		w->cfg->on_close(w->user, c);
	queue_free(c);
	if (c->in)
		sodium_memzero(c->in, c->in_cap);
	lama_free(c->in);
	lama_free(c);
}

static int established(lama_web *w, struct lws *wsi, struct pss *pss)
{
	lama_web_client *c;

	if (w->n >= w->clients_max || w->stopping) { /* raced past upgrade_status */
		lws_close_reason(wsi, (enum lws_close_status)1013 /* try again later */, NULL, 0);
		return -1;
	}
	if (!(c = lama_calloc(1, sizeof(*c))))
		return -1;
	c->w = w;
	c->wsi = wsi;
	c->next = w->clients;
	if (c->next)
		c->next->prev = c;
	w->clients = c;
	w->n++;
	pss->c = c;
	if (w->cfg->on_connect)
		w->cfg->on_connect(w->user, c);
	return 0;
}

/* A piece of a frame: reassembles up to msg_max, refusing as soon as the
 * frame header shows the message cannot fit (a 10 MB message is not read
 * before it is refused). */
static int receive(lama_web *w, struct lws *wsi, lama_web_client *c, const char *in, size_t len)
{
	size_t rest = lws_remaining_packet_payload(wsi), need;

	if (c->closing || c->draining)
		return 0; /* closing: its requests are no longer answered */
	if (lws_frame_is_binary(wsi)) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
				 (unsigned char *)"text only", 9);
		return -1;
	}
	need = c->in_len + len + rest;
	if (need > w->msg_max) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)"message too large", 17);
		return -1;
	}
	if (need + 1 > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 256;
		char *p;

		while (cap < need + 1)
			cap *= 2;
		if (cap > w->msg_max + 1)
			cap = w->msg_max + 1;
		if (!(p = lama_realloc(c->in, cap)))
			return -1;
		c->in = p;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, in, len);
	c->in_len += len;
	if (!lws_is_final_fragment(wsi) || rest)
		return 0;
	c->in[c->in_len] = '\0';
	len = c->in_len;
	c->in_len = 0;
	w->cfg->on_message(w->user, c, c->in, len);
	sodium_memzero(c->in, len); /* a request may hold a password */
	if (c->in_cap > 65536) { /* one big message does not pin its buffer */
		lama_free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	return 0;
}

/* Queued output above which a client's input is not read (as src/serve):
 * a client that sends requests without reading the replies is slowed
 * down to the pace it reads at, instead of being cut off at out_max. */
static size_t out_high(const lama_web *w)
{
	return w->out_max / 8;
}

/* Stops or resumes reading c (inside c's own receive callback, lws
 * applies it when the callback returns). */
static void flow(lama_web_client *c, int pause)
{
	c->paused = pause;
	lws_rx_flow_control(c->wsi, !pause);
}

/* Sends a close frame with `status` and ends the connection (from a
 * writable callback). lws 4.1 drops the socket without a close frame when
 * a writable callback returns -1, so the frame is written here; 4 is the
 * close opcode's write type, which the public header leaves out. */
static int hang_up(struct lws *wsi, int status)
{
	unsigned char buf[LWS_PRE + 2];

	buf[LWS_PRE] = (unsigned char)(status >> 8);
	buf[LWS_PRE + 1] = (unsigned char)status;
	lws_write(wsi, buf + LWS_PRE, 2, (enum lws_write_protocol)4);
	return -1;
}

/* One message per writable event: lws keeps what the socket did not
 * take and reports writable again only when that is gone, so a slow
 * reader holds back only its own queue. */
static int writeable(lama_web_client *c)
{
	struct outmsg *m = c->head;

	if (c->closing || (!m && c->draining))
		return hang_up(c->wsi, c->closing ? c->closing : c->draining);
	if (!m) {
		if (!lws_partial_buffered(c->wsi))
			lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0); /* all out */
		return 0;
	}
	if (lws_write(c->wsi, m->buf + LWS_PRE, m->n, LWS_WRITE_TEXT) < (int)m->n)
		return -1;
	c->head = m->next;
	if (!c->head)
		c->tail = NULL;
	c->queued -= m->n;
	lama_free(m);
	if (c->paused && c->queued <= out_high(c->w) / 2)
		flow(c, 0);
	/* progress: the stall clock starts again while anything waits (here,
	 * or in lws after a partial write) */
	if (c->head || lws_partial_buffered(c->wsi))
		lws_set_timeout(c->wsi, STALL_TIMEOUT, c->w->stall_s);
	if (c->head || c->draining || lws_partial_buffered(c->wsi))
		lws_callback_on_writable(c->wsi);
	else
		lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct lws_context *cx = lws_get_context(wsi);
	lama_web *w = cx ? lws_context_user(cx) : NULL;
	struct pss *pss = user;
	unsigned status;

	if (!w)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return http_request(w, wsi, in ? in : "");
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* only WebSocket (not h2c), and only after every check */
		status = strcmp(in ? in : "", "websocket") ? 403 : upgrade_status(w, wsi);
		if (!status)
			return 0;
		return refuse(w, wsi, status) ? -1 : 1;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return upgrade_status(w, wsi) ? -1 : 0; /* again, in case */
	case LWS_CALLBACK_ESTABLISHED:
		return established(w, wsi, pss);
	case LWS_CALLBACK_RECEIVE: {
		int rc = -1;

		if (pss && pss->c && !w->stopping)
			rc = receive(w, wsi, pss->c, in, len);
		else if (pss && pss->c)
			rc = 0; /* stopping: input is dropped, output still goes */
		if (in && len) /* lws's own buffer held the request (a password?) */
			sodium_memzero(in, len);
		return rc;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss || !pss->c)
			return -1;
		return writeable(pss->c);
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		client_gone(w, pss);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* 127.0.0.0/8 or "localhost", as the dotted address to bind. */
static int loopback(const char *host, char *ip)
{
	struct in_addr a;

	if (!host || !strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
		return lama_error(LAMA_EINVAL, "web: %s is not a loopback address", host);
	inet_ntop(AF_INET, &a, ip, INET_ADDRSTRLEN);
	return 0;
}

static void count_closing(uv_handle_t *h, void *arg)
{
	if (uv_is_closing(h))
		(*(int *)arg)++;
}

/* Runs the loop until no handle on it is still closing. */
static void settle(uv_loop_t *loop)
{
	int closing, turns = 0;

	do {
		uv_run(loop, UV_RUN_NOWAIT);
		closing = 0;
		uv_walk(loop, count_closing, &closing);
	} while (closing && ++turns < 1000);
}

/* With a foreign loop, lws 4.1 destroys a context over several calls of
 * lws_context_destroy, each of which may only come once the loop has run
 * the close callbacks of the handles the previous one closed (an earlier
 * call touches freed memory). The last call frees the context and writes
 * NULL to w->alive (info.pcontext); no call is made after that. */
static void destroy_context(lama_web *w)
{
	int calls = 0;

	if (!w->ctx)
		return;
	while (w->alive && calls++ < 10) {
		lws_context_destroy(w->ctx);
		settle(w->loop);
	}
	w->ctx = NULL;
}

int lama_web_open(lama_web **out, struct uv_loop_s *loop, const struct lama_web_config *cfg,
		  void *ctx)
{
	struct lws_context_creation_info info;
	unsigned char key[32];
	void *loops[1] = { loop };
	lama_web *w;
	int rc;

	*out = NULL;
	if (!loop || !cfg || !cfg->on_message)
		return lama_error(LAMA_EINVAL, "web: no loop or no on_message");
	if (cfg->port < 0 || cfg->port > 65535)
		return lama_error(LAMA_EINVAL, "web: bad port %d", cfg->port);
	if (sodium_init() < 0)
		return lama_error(LAMA_EIO, "web: libsodium did not start");
	if (!(w = lama_calloc(1, sizeof(*w))))
		return lama_error(LAMA_ENOMEM, "web: out of memory");
	if ((rc = loopback(cfg->host, w->ip)))
		goto fail;
	w->loop = loop;
	w->cfg = cfg;
	w->user = ctx;
	w->msg_max = cfg->msg_max ? cfg->msg_max : LAMA_WEB_MSG_MAX;
	w->out_max = cfg->out_max ? cfg->out_max : LAMA_WEB_OUT_MAX;
	w->clients_max = cfg->clients_max ? cfg->clients_max : LAMA_WEB_CLIENTS_MAX;
	if (w->msg_max > INT_MAX / 2)
		w->msg_max = INT_MAX / 2;
	w->stall_s = (int)(((cfg->stall_ms ? cfg->stall_ms : LAMA_WEB_STALL_MS) + 999) / 1000);
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(w->token, sizeof(w->token), key, sizeof(key));
	sodium_memzero(key, sizeof(key));

	w->protocols[0].name = "lama-ipc";
	w->protocols[0].callback = callback;
	w->protocols[0].per_session_data_size = sizeof(struct pss);
	w->protocols[0].rx_buffer_size = RX_CHUNK;

	lws_set_log_level(LLL_ERR, log_emit);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
		       LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.foreign_loops = loops;
	info.pcontext = &w->alive;
	info.user = w;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.timeout_secs = 30; /* a request that stalls this long is dropped */
	if (!(w->ctx = lws_create_context(&info))) {
		rc = lama_error(LAMA_EIO, "web: libwebsockets did not start");
		goto fail;
	}
	w->alive = w->ctx;

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.port = cfg->port;
	info.iface = w->ip;
	info.protocols = w->protocols;
	info.vhost_name = "lama";
	if (!(w->vh = lws_create_vhost(w->ctx, &info))) {
		rc = lama_error(LAMA_EIO, "web: cannot listen on %s:%d", w->ip, cfg->port);
		goto fail;
	}
	w->port = lws_get_vhost_listen_port(w->vh);
	if (w->port <= 0) {
		rc = lama_error(LAMA_EIO, "web: no port to listen on");
		goto fail;
	}
	snprintf(w->hosts[0], sizeof(w->hosts[0]), "%s:%d", w->ip, w->port);
	snprintf(w->hosts[1], sizeof(w->hosts[1]), "localhost:%d", w->port);
	snprintf(w->origins[0], sizeof(w->origins[0]), "http://%s", w->hosts[0]);
	snprintf(w->origins[1], sizeof(w->origins[1]), "http://%s", w->hosts[1]);
	snprintf(w->csp, sizeof(w->csp),
		 "default-src 'none'; script-src 'self'; style-src 'self'; "
		 "connect-src ws://%s ws://%s; base-uri 'none'; form-action 'none'; "
		 "frame-ancestors 'none'", w->hosts[0], w->hosts[1]);
	*out = w;
	return 0;
fail:
	destroy_context(w);
	sodium_memzero(w->token, sizeof(w->token));
	lama_free(w);
	return rc;
}

int lama_web_port(const lama_web *w)
{
	return w->port;
}

int lama_web_url(const lama_web *w, char *buf, size_t n)
{
	int len = snprintf(buf, n, "http://%s/#token=%s", w->hosts[0], w->token);

	if (len < 0 || (size_t)len >= n)
		return lama_error(LAMA_ELIMIT, "web: the URL does not fit %zu bytes", n);
	return 0;
}

const char *lama_web_token(const lama_web *w)
{
	return w->token;
}

int lama_web_send(lama_web_client *c, const char *msg, size_t n)
{
	struct outmsg *m;

	if (c->closing || c->draining)
		return lama_error(LAMA_EIO, "web: the client is closing");
	if (n > c->w->out_max - c->queued || n > INT_MAX / 2) {
		lama_web_disconnect(c);
		return lama_error(LAMA_ELIMIT, "web: a client's output passed %zu bytes",
				  c->w->out_max);
	}
	if (!(m = lama_malloc(sizeof(*m) + LWS_PRE + n)))
		return lama_error(LAMA_ENOMEM, "web: out of memory");
	m->next = NULL;
	m->n = n;
	memcpy(m->buf + LWS_PRE, msg, n);
	if (!c->head) /* a queue that does not move for stall_s: the client goes */
		lws_set_timeout(c->wsi, STALL_TIMEOUT, c->w->stall_s);
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
	c->queued += n;
	if (!c->paused && c->queued > out_high(c->w))
		flow(c, 1);
	lws_callback_on_writable(c->wsi);
	return 0;
}

void lama_web_disconnect(lama_web_client *c)
{
	if (c->closing)
		return;
	c->closing = LWS_CLOSE_STATUS_POLICY_VIOLATION;
	queue_free(c);
	lws_callback_on_writable(c->wsi);
	/* a client that does not read never becomes writable: it is cut
	 * off without its close frame */
	lws_set_timeout(c->wsi, CLOSE_TIMEOUT, 2);
}

int lama_web_save_url(const lama_web *w, const char *path)
{
	char url[LAMA_WEB_URL_MAX + 1];
	struct stat st;
	size_t len;
	int fd, rc = 0;

	if ((rc = lama_web_url(w, url, sizeof(url) - 1)))
		return rc;
	len = strlen(url);
	url[len++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return lama_error(LAMA_EIO, "web: cannot write %s: %s", path, strerror(errno));
	/* an old file may have had another mode; a FIFO or device is not ours */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    fchmod(fd, 0600) != 0 || ftruncate(fd, 0) != 0 ||
	    write(fd, url, len) != (ssize_t)len)
		rc = lama_error(LAMA_EIO, "web: cannot write %s", path);
	sodium_memzero(url, sizeof(url));
	if (close(fd) != 0 && !rc)
		rc = lama_error(LAMA_EIO, "web: cannot write %s", path);
	return rc;
}

void lama_web_client_set_data(lama_web_client *c, void *data)
{
	c->data = data;
}

void *lama_web_client_data(const lama_web_client *c)
{
	return c->data;
}

unsigned lama_web_client_count(const lama_web *w)
{
	return w->n;
}

static void timer_fired(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

void lama_web_stop(lama_web *w)
{
	if (w)
		w->stopping = 1;
}

void lama_web_close(lama_web *w)
{
	uv_timer_t timer;
	int expired = 0;

	if (!w)
		return;
	w->stopping = 1;
	/* what is queued still goes, then a close frame (1001) */
	for (lama_web_client *c = w->clients; c; c = c->next)
		if (!c->closing && !c->draining) {
			c->draining = LWS_CLOSE_STATUS_GOINGAWAY;
			lws_callback_on_writable(c->wsi);
		}
	if (w->clients && uv_timer_init(w->loop, &timer) == 0) {
		timer.data = &expired;
		uv_timer_start(&timer, timer_fired, CLOSE_WAIT_MS, 0);
		while (w->clients && !expired)
			uv_run(w->loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&timer, NULL);
		uv_run(w->loop, UV_RUN_NOWAIT); /* its close callback */
	}
	destroy_context(w); /* closes the rest: on_close for each */
	while (w->clients) { /* lws never reported them: still exactly once */
		struct pss p = { w->clients };

		client_gone(w, &p);
	}
	sodium_memzero(w->token, sizeof(w->token));
	lama_free(w);
}
