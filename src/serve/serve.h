/* serve.h: the main process's event loop and its Unix-socket transport, for
 * one data folder (docs/serve.md).
 *
 * lama_server_open takes the folder's lock (DIR/serve.lock, so one main
 * process serves a folder) and listens on DIR/lama.sock (mode 0600). Each
 * client speaks lines: every complete line it sends goes to on_message
 * (without its newline), and lama_server_send queues a line back. The
 * module knows no protocol; src/ipc gives the lines their meaning.
 *
 * Bounds: a line longer than line_max is dropped (on_oversize; the client
 * stays connected); each client gets at most a fixed amount of input work
 * per loop turn, so one client cannot starve the others; a client's
 * reading pauses while more than out_high bytes wait to be written to it,
 * and a client whose queue passes out_max, or whose queue makes no
 * progress for stall_ms, is disconnected. Everything runs on the loop's
 * thread; no function here is thread-safe. */
#ifndef LAMA_SERVE_H
#define LAMA_SERVE_H

#include <stddef.h>

struct uv_loop_s; /* uv_loop_t, from <uv.h> */

#define LAMA_SERVE_SOCKET "lama.sock"  /* in the data folder */
#define LAMA_SERVE_LOCK "serve.lock"   /* in the data folder; holds the pid */
#define LAMA_SERVE_LINE_MAX ((size_t)1 << 20)   /* longest line delivered */
#define LAMA_SERVE_OUT_MAX ((size_t)8 << 20)    /* queued output per client */
#define LAMA_SERVE_OUT_HIGH ((size_t)1 << 20)   /* reading pauses above this */
#define LAMA_SERVE_CLIENTS_MAX 1024
#define LAMA_SERVE_STALL_MS 30000 /* a full queue that does not move */
#define LAMA_SERVE_FLUSH_MS 2000  /* at shutdown, for queued output */

typedef struct lama_server lama_server;
typedef struct lama_client lama_client; /* one connection */

/* What the protocol layer plugs in, and the limits (0 = the default above).
 * Callbacks run on the loop; they may call lama_server_send, _disconnect
 * and _stop, for any client. */
struct lama_server_config {
	/* Optional: a client was accepted (set its data here). */
	void (*on_connect)(void *ctx, lama_client *c);
	/* Required: one complete line, n bytes without the newline; msg[n] is
	 * '\0' (the line may itself hold NULs). msg is valid only during the
	 * call. */
	void (*on_message)(void *ctx, lama_client *c, const char *msg, size_t n);
	/* Optional: a line grew past line_max. Its bytes so far and the rest
	 * up to its newline are dropped; the client stays connected. */
	void (*on_oversize)(void *ctx, lama_client *c);
	/* Optional: the client is gone (EOF, error, a limit, disconnect or
	 * server shutdown). Called exactly once for every client on_connect
	 * saw; the lama_client is freed when it returns. */
	void (*on_close)(void *ctx, lama_client *c);
	/* Optional: shutdown begins (no more input will be read); what it
	 * sends is flushed with the rest of the queued output. */
	void (*on_stop)(void *ctx);

	size_t line_max;      /* longest line in bytes, without the newline */
	size_t out_max;       /* queued bytes that disconnect a client */
	size_t out_high;      /* queued bytes that pause reading (resumes at half) */
	unsigned clients_max; /* more are sent `refusal` and closed */
	unsigned stall_ms;    /* a queue without progress this long: disconnect */
	unsigned flush_ms;    /* how long shutdown waits for queued output */
	const char *refusal;  /* line for a refused client; NULL: a JSON error
			       * {"id":null,"error":{"code":"limit",...}} */
};

/* Locks DIR, creates DIR/lama.sock (removing a stale socket, refusing
 * anything else there, never following a symlink) and readies the loop.
 * `dir` must exist; its socket path must fit a sockaddr_un (107 bytes):
 * LAMA_ELIMIT otherwise. LAMA_EBUSY (the message names the pid) if another
 * process serves DIR. Ignores SIGPIPE for the whole process (writes to
 * gone clients fail with EPIPE instead). cfg and ctx are borrowed and must
 * outlive the server. *out owned by the caller (lama_server_close). */
int lama_server_open(lama_server **out, const char *dir, const struct lama_server_config *cfg,
		     void *ctx);

/* The loop, for other handles (WebSocket, workers, timers) to share. The
 * server owns it: close those handles before lama_server_close, which
 * closes whatever is left. */
struct uv_loop_s *lama_server_loop(lama_server *srv);

/* Serves until lama_server_stop or SIGINT/SIGTERM; then stops accepting and
 * reading, waits up to flush_ms for queued output, closes every client and
 * returns 0. A second signal during that wait closes at once. */
int lama_server_run(lama_server *srv);

/* Asks lama_server_run to shut down as above (safe from a callback). */
void lama_server_stop(lama_server *srv);

/* Closes every client (on_close for each), removes the socket, releases
 * the lock and frees srv and its loop. NULL is a no-op. */
void lama_server_close(lama_server *srv);

/* Queues msg (n bytes) and a newline for c. msg is copied. LAMA_ELIMIT if
 * this would pass out_max: c is then disconnected. LAMA_EIO if c is
 * already disconnecting (nothing queued), LAMA_ENOMEM. */
int lama_server_send(lama_client *c, const char *msg, size_t n);

/* Closes c after this callback; queued output is dropped. */
void lama_server_disconnect(lama_client *c);

/* The protocol layer's per-client pointer (NULL at first); the server never
 * looks at it. Free it in on_close. */
void lama_server_client_set_data(lama_client *c, void *data);
void *lama_server_client_data(const lama_client *c);

/* Connected clients (those on_connect saw and on_close has not). */
unsigned lama_server_client_count(const lama_server *srv);

#endif
