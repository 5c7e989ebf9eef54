/* controller.h: the IPC controller (the seed's IPC handlers): the
 * protocol's channels (docs/ipc.md) mapped onto the models of one
 * logged-in session. Queries read; actions change state through the
 * models first and then push an update to every subscribed client. The
 * transport (src/serve) and the protocol (src/ipc) know nothing of the
 * models; this is the only place that knows both. */
#ifndef LAMA_CONTROLLER_H
#define LAMA_CONTROLLER_H

#include "account/account.h"
#include "ipc/ipc.h"

typedef struct lama_controller lama_controller;

/* Where updates go: fn(ctx, channel, payload) for every change, after it
 * is durable (payload borrowed for the call). */
struct lama_controller_push {
	void (*fn)(void *ctx, const char *channel, const json_t *payload);
	void *ctx;
};

/* Registers every channel on the dispatcher, serving session s (both
 * borrowed; they outlive the controller). push may be NULL. *out to free
 * with lama_controller_free, after the dispatcher. On failure some
 * channels may be registered already: free the dispatcher too. */
int lama_controller_new(lama_controller **out, lama_ipc *d, lama_session *s,
			const struct lama_controller_push *push);
void lama_controller_free(lama_controller *c);

#endif
