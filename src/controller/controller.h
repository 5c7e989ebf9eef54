/* controller.h: the IPC controller (the seed's IPC handlers): the
 * protocol's channels (docs/ipc.md) mapped onto the models of the data
 * folder's session. Queries read; actions change state through the
 * models first and then publish an update through the state manager. The
 * transports (src/serve, src/web) and the protocol (src/ipc) know nothing
 * of the models; this is the only place that knows both.
 *
 * The controller holds the session: it starts locked (no session) or with
 * one, and action:register, action:login and action:logout change it.
 * While locked only the channels that need no user answer; the others
 * get `unauthorized`. */
#ifndef LAMA_CONTROLLER_H
#define LAMA_CONTROLLER_H

#include "account/account.h"
#include "crypto/crypto.h"
#include "ipc/ipc.h"
#include "state/state.h"

struct uv_loop_s; /* uv_loop_t, from <uv.h> */

typedef struct lama_controller lama_controller;

struct lama_controller_config {
	const char *home;            /* the data folder (borrowed) */
	struct lama_kdf_params kdf;  /* for users made by action:register */
	lama_state *state;           /* where updates go (borrowed) */
	const char *user;            /* the starting session's user name, NULL:
				      * the folder's only user (copied) */
	struct uv_loop_s *loop;      /* for work off the loop (backup, restore) */
	/* Sends a late reply to a client (as lama_state_send_fn). */
	int (*send)(void *client, const char *text, size_t n);
};

/* Registers every channel on the dispatcher d (borrowed, outlives the
 * controller). Takes s, a session with its models initialised, or NULL
 * to start locked. *out to free with lama_controller_free, after the
 * dispatcher. On failure s is logged out, and some channels may be
 * registered already: free the dispatcher too. */
int lama_controller_new(lama_controller **out, lama_ipc *d, const struct lama_controller_config *cfg,
			lama_session *s);
/* Logs the session out (if any) and frees c, its tasks with the manager
 * canceled first (see lama_controller_set_workers for the order). NULL
 * is a no-op. */
void lama_controller_free(lama_controller *c);

/* The current session, NULL while locked (borrowed). */
lama_session *lama_controller_session(const lama_controller *c);

/* The worker manager (borrowed; NULL: none), for query:getWorkers and
 * the work that goes to workers. Set after lama_controller_new. Setting
 * another manager (or NULL) first cancels every task c has with the old
 * one (their callbacks run now), so nothing of c stays there.
 * Teardown order: lama_controller_set_workers(c, NULL) or
 * lama_controller_free(c) (which cancels them too, the manager still
 * attached), and only then lama_workers_close: a manager closed first
 * leaves c pointing at freed memory. */
struct lama_workers;
void lama_controller_set_workers(lama_controller *c, struct lama_workers *w);

/* The integer setting `name` of the logged-in user (docs/ipc.md), or
 * dflt while locked or when it cannot be read. */
long long lama_controller_setting(lama_controller *c, const char *name, long long dflt);

/* Shutdown begins: no new backup or restore; the client of a running one
 * is answered now (its work completes; lama_controller_drain waits). */
void lama_controller_stop(lama_controller *c);

/* A client is gone (call from the transport's close): a late reply for
 * it is dropped. */
void lama_controller_forget(lama_controller *c, void *client);

/* Runs the loop until no work of the controller is running off it (a
 * backup, a restore): before the loop is closed at shutdown. */
void lama_controller_drain(lama_controller *c);
/* 1 while such work runs. */
int lama_controller_busy(const lama_controller *c);

#endif
