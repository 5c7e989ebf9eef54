/* state.h: the state manager of the main process (docs/ipc.md, "Updates
 * and catching up").
 *
 * Every change the controller makes is persisted through the models
 * first; then it becomes an update here: the update gets the next number
 * (seq) of this run, is kept in a bounded log, and is sent to every
 * subscribed client. A run is named by a random epoch. A client that
 * reconnects subscribes with the (epoch, seq) of the last update it saw
 * and is sent exactly the updates after it, in order, before any new one:
 * no gap and no duplicate. When that is impossible (another run: the
 * server restarted; or the update has left the log) the client is told
 * to reset, i.e. to read the current state with queries; the seq in
 * query:getState says which updates that state already holds.
 *
 * The module knows no transport: clients are opaque pointers and text
 * goes out through the send function given at creation. Everything runs
 * on the loop's thread. */
#ifndef LAMA_STATE_H
#define LAMA_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define LAMA_STATE_EPOCH_HEX 32              /* hex digits of an epoch */
#define LAMA_STATE_LOG_MAX 4096              /* updates kept for catching up */
#define LAMA_STATE_LOG_BYTES ((size_t)16 << 20) /* and their bytes at most */
#define LAMA_STATE_REPLAY_MAX ((size_t)4 << 20) /* a bigger catch-up resets: half
						   * of what a transport queues */

typedef struct lama_state lama_state;

/* Sends one message (a push, n bytes, no newline) to client. A failure
 * means the transport drops the client; it must then, or later, call
 * lama_state_unsubscribe for it. */
typedef int (*lama_state_send_fn)(void *client, const char *text, size_t n);

/* A new state manager with a fresh random epoch and seq 0. log_max and
 * log_bytes bound the log (0: the defaults above). *out owned by the
 * caller (lama_state_free). */
int lama_state_new(lama_state **out, lama_state_send_fn send, size_t log_max, size_t log_bytes);
void lama_state_free(lama_state *st);

/* This run's epoch, LAMA_STATE_EPOCH_HEX lower-case hex digits. */
const char *lama_state_epoch(const lama_state *st);
/* The number of the last update, 0 before the first. */
uint64_t lama_state_seq(const lama_state *st);

/* Numbers an update (channel update:NAME, payload an object, borrowed),
 * keeps it and sends it to every subscriber. LAMA_EINVAL for a bad channel
 * or payload (nothing numbered). When the update cannot be encoded (out of
 * memory, over LAMA_IPC_MESSAGE_MAX) its number is used up and the log is
 * emptied: LAMA_ENOMEM, and clients see the seq jump (docs/ipc.md). */
int lama_state_publish(lama_state *st, const char *channel, const json_t *payload);

/* An update was lost before it could be published (out of memory while
 * making it): its number is used up and the log emptied, so clients see
 * the jump and nobody replays across it. */
void lama_state_lost(lama_state *st);

/* Forgets every kept update (wiped) and starts a new epoch, so nothing
 * from before can be replayed: at logout, before the next user. Live
 * subscribers stay; seq goes on. */
void lama_state_reset(lama_state *st);

/* Subscribes client (again, if it is). epoch NULL: from now on, nothing
 * replayed. Otherwise, when epoch is this run's and every update after
 * `since` is still in the log (and they are at most LAMA_STATE_REPLAY_MAX
 * bytes), those updates are sent now, in order, and *reset is 0; else
 * nothing is sent and *reset is 1. */
int lama_state_subscribe(lama_state *st, void *client, const char *epoch, uint64_t since,
			 int *reset);

/* Forgets client (unknown clients are fine): call when it disconnects. */
void lama_state_unsubscribe(lama_state *st, void *client);

/* Subscribed clients. */
size_t lama_state_subscribers(const lama_state *st);

#endif
