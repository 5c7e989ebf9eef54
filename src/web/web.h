/* web.h: the WebSocket transport of `lama serve` and the page it serves
 * for the UI, on the same libuv loop as the Unix socket (docs/web.md).
 *
 * lama_web_open listens on a loopback address (libwebsockets on the
 * caller's uv loop) and makes a per-start secret token. GET /, /app.js
 * and /app.css serve a small page embedded in the binary; the page reads
 * the token from its URL's fragment and opens ws://HOST:PORT/ipc?token=T.
 * Every complete text message a client sends goes to on_message (one IPC
 * JSON message, docs/ipc.md); lama_web_send queues one back. Like
 * src/serve, the module knows no protocol.
 *
 * Refused: a request whose Host is not 127.0.0.1:PORT or localhost:PORT
 * (403, against DNS rebinding), a WebSocket whose Origin is present and
 * not http://127.0.0.1:PORT or http://localhost:PORT (403, against
 * cross-site WebSocket hijacking), a WebSocket without the right token
 * (401), any other path (404). The token never appears
 * in a log or an error message.
 *
 * Bounds: a text message (fragments reassembled) longer than msg_max, or
 * a binary one, closes that client (1009 / 1003); each client's queued
 * output is written one message per writable event, so a client that does
 * not read only fills its own queue: its input is not read while more
 * than out_max / 8 bytes wait (resumes at half that); passing out_max, or
 * output that makes no progress for stall_ms, disconnects it; at most
 * clients_max clients (more get 503).
 * Everything runs on the loop's thread; nothing here is thread-safe. */
#ifndef LAMA_WEB_H
#define LAMA_WEB_H

#include <stddef.h>

struct uv_loop_s; /* uv_loop_t, from <uv.h> */

#define LAMA_WEB_MSG_MAX ((size_t)1 << 20) /* as LAMA_SERVE_LINE_MAX */
#define LAMA_WEB_OUT_MAX ((size_t)8 << 20) /* as LAMA_SERVE_OUT_MAX */
#define LAMA_WEB_CLIENTS_MAX 1024
#define LAMA_WEB_STALL_MS 30000 /* as LAMA_SERVE_STALL_MS */
#define LAMA_WEB_TOKEN_HEX 64 /* 32 random bytes in hex */
#define LAMA_WEB_URL_MAX 128  /* fits any lama_web_url */

typedef struct lama_web lama_web;
typedef struct lama_web_client lama_web_client; /* one WebSocket */

/* What the protocol layer plugs in, and the limits (0 = the defaults
 * above). Callbacks run on the loop; they may call lama_web_send and
 * lama_web_disconnect for any client. */
struct lama_web_config {
	/* Optional: a WebSocket passed every check (set its data here). */
	void (*on_connect)(void *ctx, lama_web_client *c);
	/* Required: one complete text message of n bytes; msg[n] is '\0'.
	 * msg is valid only during the call. */
	void (*on_message)(void *ctx, lama_web_client *c, const char *msg, size_t n);
	/* Optional: the client is gone (it closed, an error, a limit,
	 * lama_web_disconnect, lama_web_close). Called exactly once for every
	 * client on_connect saw; the client is freed when it returns. */
	void (*on_close)(void *ctx, lama_web_client *c);

	const char *host;     /* bind address: NULL = "127.0.0.1"; only
			       * 127.0.0.0/8 or "localhost" are accepted */
	int port;             /* 0: an ephemeral port (lama_web_port) */
	size_t msg_max;       /* longest message in, in bytes */
	size_t out_max;       /* queued bytes out that disconnect a client */
	unsigned clients_max; /* WebSockets at once */
	unsigned stall_ms;    /* output waiting this long without progress
			       * disconnects (whole seconds, rounded up) */
};

/* Listens on cfg->host:cfg->port on `loop` and makes the token.
 * LAMA_EINVAL for a host that is not loopback or a bad port, LAMA_EIO if
 * the port cannot be bound, LAMA_ENOMEM. cfg (and its host) and ctx are
 * borrowed and must outlive the handle; the loop must too. *out owned by
 * the caller (lama_web_close). */
int lama_web_open(lama_web **out, struct uv_loop_s *loop, const struct lama_web_config *cfg,
		  void *ctx);

/* The port listened on (the real one when cfg->port was 0). */
int lama_web_port(const lama_web *w);

/* Writes "http://HOST:PORT/#token=HEX" into buf: the page's address with
 * the secret (show it to the user only). LAMA_ELIMIT if n is too small
 * (LAMA_WEB_URL_MAX always fits). */
int lama_web_url(const lama_web *w, char *buf, size_t n);

/* Writes the lama_web_url line to `path` (mode 0600, created or
 * truncated; a symlink, a non-regular file or another user's file is
 * refused), for a program that opens the page for the user, since the
 * token should not be printed where logs keep it. The caller removes it.
 * LAMA_EIO. */
int lama_web_save_url(const lama_web *w, const char *path);

/* The token alone (LAMA_WEB_TOKEN_HEX characters and a '\0'); for tests
 * and clients that build their own URL. Valid until lama_web_close. */
const char *lama_web_token(const lama_web *w);

/* Queues msg (n bytes) as one text message to c; msg is copied.
 * LAMA_ELIMIT if the queue would pass out_max: c is then disconnected.
 * LAMA_EIO if c is already closing (nothing queued), LAMA_ENOMEM. */
int lama_web_send(lama_web_client *c, const char *msg, size_t n);

/* Closes c (a close frame if it can be written, else at once); queued
 * output is dropped; on_close follows from the loop. */
void lama_web_disconnect(lama_web_client *c);

/* The protocol layer's per-client pointer (NULL at first); never looked
 * at here. Free it in on_close. */
void lama_web_client_set_data(lama_web_client *c, void *data);
void *lama_web_client_data(const lama_web_client *c);

/* Connected clients (those on_connect saw and on_close has not). */
unsigned lama_web_client_count(const lama_web *w);

/* Shutdown begins: no new WebSocket is accepted (503) and what clients
 * send is dropped; what is queued for them still goes. lama_web_close
 * does this too. NULL is a no-op. */
void lama_web_stop(lama_web *w);

/* Sends every client a close frame (1001, going away), gives them a
 * moment to go, closes the rest (on_close for each), stops listening and
 * frees w. Runs the loop as needed, so on return no handle of w is left
 * on it and the caller may close the loop. Call it outside any callback
 * of w. NULL is a no-op. */
void lama_web_close(lama_web *w);

#endif
