/* ipc.h: lama's IPC protocol, the language the CLI, the UI and any shell
 * speak to `lama serve` (docs/ipc.md).
 *
 * Every message is one JSON object: one per line on the Unix socket, one
 * per frame on the WebSocket. A client sends requests
 *   {"id": ID, "channel": "action:..." | "query:...", "payload": {...}}
 * (ID a string or an integer the client chooses) and gets exactly one
 * reply per request, {"id": ID, "result": ...} or
 * {"id": ID, "error": {"code": CODE, "message": TEXT}}; the server also
 * sends pushes {"channel": "update:...", "payload": {...}} to subscribed
 * clients. This module parses, checks and dispatches messages and encodes
 * replies and pushes; it knows no sockets, so every rule of the protocol
 * is tested without any. */
#ifndef LAMA_IPC_H
#define LAMA_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Largest message either way, in bytes (without the newline). A request
 * over it gets too_large unread (id null); a reply over it becomes a
 * too_large error reply. Error messages in replies are cut to 256 bytes. */
#define LAMA_IPC_MESSAGE_MAX ((size_t)1 << 20)
#define LAMA_IPC_CHANNEL_MAX 64 /* bytes of a channel name */
#define LAMA_IPC_ID_MAX 128     /* bytes of a string id */

/* Error codes of error replies (docs/ipc.md lists when each is used). */
#define LAMA_IPC_BAD_REQUEST "bad_request"         /* not JSON, not an object, bad id/channel */
#define LAMA_IPC_TOO_LARGE "too_large"             /* over LAMA_IPC_MESSAGE_MAX */
#define LAMA_IPC_UNKNOWN_CHANNEL "unknown_channel" /* no handler for the channel */
#define LAMA_IPC_INVALID_PAYLOAD "invalid_payload" /* payload does not fit the channel's schema */
#define LAMA_IPC_NOT_FOUND "not_found"             /* what the payload names does not exist */
#define LAMA_IPC_CONFLICT "conflict"               /* already exists, or busy */
#define LAMA_IPC_UNAUTHORIZED "unauthorized"       /* needs a login, or a wrong password */
#define LAMA_IPC_LIMIT "limit"                     /* a size or count limit of the models */
#define LAMA_IPC_INTERNAL "internal"               /* the server failed (I/O, memory) */

/* The dispatcher: channel name -> handler. Opaque. */
typedef struct lama_ipc lama_ipc;

/* One request being handled. Everything is borrowed for the call. */
struct lama_ipc_call {
	const char *channel;
	const json_t *payload; /* an object, already checked against the schema */
	const json_t *id;
	void *client;          /* the transport's client, passed through */
};

/* A handler returns 0 and sets *result (a new reference; NULL means JSON
 * null), or a negative LAMA_E* code with lama_error's message, which the
 * dispatcher turns into an error reply (LAMA_ENOTFOUND -> not_found,
 * LAMA_EEXIST/LAMA_EBUSY -> conflict, LAMA_EAUTH -> unauthorized,
 * LAMA_ELIMIT -> limit, LAMA_EINVAL/LAMA_EFORMAT -> invalid_payload,
 * anything else -> internal). A handler that passes a code up without a
 * message gets lama_strerror(code) as the message. */
typedef int (*lama_ipc_handler)(void *ctx, const struct lama_ipc_call *call, json_t **result);

/* A handler's return for "I answer later": lama_ipc_handle then makes no
 * reply, and the handler (having kept a copy of call->id and the client)
 * sends one made by lama_ipc_reply when its work is done. */
#define LAMA_IPC_LATER 1

int lama_ipc_new(lama_ipc **out);
void lama_ipc_free(lama_ipc *d);

/* Registers a handler. `schema` names the payload's members and their
 * types, "key:T" separated by commas, T one of s (string), i (integer),
 * n (number), b (boolean), h (a hash: 64 lower-case hex), o (object),
 * a (array), with a trailing ? for an optional member: e.g.
 * "topic:s,text:s,attach:a?". A payload with another member, a missing
 * one or a wrong type gets invalid_payload naming the member; NULL means
 * an object with anything in it. channel and schema are borrowed and
 * must outlive the dispatcher. Member names are NAMEs as in channels (at
 * most 64 bytes); "" means the payload must be {}; a member that is null
 * has the wrong type (optional means it may be absent). channel must be
 * action:NAME or query:NAME, NAME an ASCII letter then letters, digits or
 * '_', at most LAMA_IPC_CHANNEL_MAX bytes in all. LAMA_EEXIST if the
 * channel has a handler, LAMA_EINVAL for a malformed channel or schema,
 * LAMA_ENOMEM. Not to be called while a request is being handled. */
int lama_ipc_register(lama_ipc *d, const char *channel, const char *schema,
		      lama_ipc_handler fn, void *ctx);

/* Handles one request message (n bytes, not NUL-terminated) from client:
 * parses and checks it, calls the handler, and sets *reply to the reply
 * message (JSON text without a newline, NUL-terminated, *reply_len bytes;
 * reply_len may be NULL; allocated with lama_malloc, the caller frees it
 * with lama_free(), which is free()); *reply is NULL when the handler
 * answers later (LAMA_IPC_LATER). Every request gets a reply,
 * malformed ones an error reply
 * (with id null when no id could be read). Returns 0, or LAMA_ENOMEM when
 * not even an error reply could be made. */
int lama_ipc_handle(lama_ipc *d, const char *text, size_t n, void *client, char **reply,
		    size_t *reply_len);

/* Encodes the reply to request id: the result when rc is 0, else the
 * error reply for rc with lama_errmsg() (as for handlers). Allocation as
 * for lama_ipc_handle. Returns 0, or LAMA_ENOMEM. */
int lama_ipc_reply(const json_t *id, int rc, const json_t *result, char **reply, size_t *reply_len);

/* Encodes a push {"channel":CHANNEL,"seq":SEQ,"payload":PAYLOAD} (seq
 * 0: no "seq" member; the state manager numbers updates; payload an
 * object, NULL for {}; text as for replies, free with lama_free(); *len
 * its length, len may be NULL). NULL when out of memory, when channel is
 * not update:NAME or payload not an object, or when the message would be
 * over LAMA_IPC_MESSAGE_MAX. */
char *lama_ipc_push(const char *channel, uint64_t seq, const json_t *payload, size_t *len);

#endif
