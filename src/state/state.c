/* state.c: the update log is a ring of encoded pushes, so a replay sends
 * the very bytes the live clients got. */
#include "state/state.h"

#include <string.h>

#include <sodium.h>

#include "ipc/ipc.h"
#include "util/err.h"
#include "util/mem.h"

struct entry {
	uint64_t seq;
	char *text;
	size_t n;
};

struct lama_state {
	lama_state_send_fn send;
	char epoch[LAMA_STATE_EPOCH_HEX + 1];
	uint64_t seq;
	struct entry *log; /* ring of log_max; oldest at head */
	size_t log_max, log_bytes_max, head, count, bytes;
	void **subs;
	size_t nsubs, cap;
};

static void drop_oldest(lama_state *st)
{
	struct entry *e = &st->log[st->head];

	st->bytes -= e->n;
	sodium_memzero(e->text, e->n); /* updates carry message text */
	lama_free(e->text);
	e->text = NULL;
	st->head = (st->head + 1) % st->log_max;
	st->count--;
}

static void new_epoch(lama_state *st)
{
	unsigned char r[LAMA_STATE_EPOCH_HEX / 2];

	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(st->epoch, sizeof(st->epoch), r, sizeof(r));
}

int lama_state_new(lama_state **out, lama_state_send_fn send, size_t log_max, size_t log_bytes)
{
	lama_state *st;

	*out = NULL;
	if (!send)
		return lama_error(LAMA_EINVAL, "the state manager needs a send function");
	st = lama_calloc(1, sizeof(*st));
	if (!st)
		return lama_error(LAMA_ENOMEM, "out of memory");
	st->send = send;
	st->log_max = log_max ? log_max : LAMA_STATE_LOG_MAX;
	st->log_bytes_max = log_bytes ? log_bytes : LAMA_STATE_LOG_BYTES;
	st->log = lama_calloc(st->log_max, sizeof(*st->log));
	if (!st->log) {
		lama_free(st);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	new_epoch(st);
	*out = st;
	return 0;
}

void lama_state_free(lama_state *st)
{
	if (!st)
		return;
	while (st->count)
		drop_oldest(st);
	lama_free(st->log);
	lama_free(st->subs);
	lama_free(st);
}

const char *lama_state_epoch(const lama_state *st)
{
	return st->epoch;
}

uint64_t lama_state_seq(const lama_state *st)
{
	return st->seq;
}

int lama_state_publish(lama_state *st, const char *channel, const json_t *payload)
{
	struct entry *e;
	size_t n;
	char *text = lama_ipc_push(channel, st->seq + 1, payload, &n);

	if (!text && (!payload || !json_is_object(payload) || !channel ||
		      strncmp(channel, "update:", 7) != 0))
		return lama_error(LAMA_EINVAL, "not an update");
	if (!text) {
		lama_state_lost(st);
		return lama_error(LAMA_ENOMEM, "cannot encode the update %s", channel);
	}
	while (st->count && (st->count == st->log_max || st->bytes + n > st->log_bytes_max))
		drop_oldest(st);
	st->seq++;
	if (n <= st->log_bytes_max) {
		e = &st->log[(st->head + st->count) % st->log_max];
		e->seq = st->seq;
		e->text = text;
		e->n = n;
		st->count++;
		st->bytes += n;
	}
	/* backwards: a send that fails may unsubscribe its client at once,
	 * which moves the last (already served) client into its slot */
	for (size_t i = st->nsubs; i-- > 0;)
		if (i < st->nsubs)
			st->send(st->subs[i], text, n);
	if (n > st->log_bytes_max)
		lama_free(text);
	return 0;
}

void lama_state_lost(lama_state *st)
{
	/* the change happened, so its number is used up, and nobody can
	 * replay across it; live clients see the seq jump and resubscribe,
	 * which resets them */
	st->seq++;
	while (st->count)
		drop_oldest(st);
}

void lama_state_reset(lama_state *st)
{
	while (st->count)
		drop_oldest(st);
	new_epoch(st);
}

static int add_sub(lama_state *st, void *client)
{
	for (size_t i = 0; i < st->nsubs; i++)
		if (st->subs[i] == client)
			return 0;
	if (lama_grow(&st->subs, &st->cap, st->nsubs, sizeof(*st->subs), 16))
		return LAMA_ENOMEM;
	st->subs[st->nsubs++] = client;
	return 0;
}

int lama_state_subscribe(lama_state *st, void *client, const char *epoch, uint64_t since,
			 int *reset)
{
	uint64_t first = st->count ? st->log[st->head].seq : st->seq + 1;
	int rc;

	*reset = 0;
	if ((rc = add_sub(st, client)))
		return rc;
	if (!epoch)
		return 0;
	/* the log must hold every update after since: first <= since + 1 */
	if (strcmp(epoch, st->epoch) != 0 || since > st->seq || since + 1 < first) {
		*reset = 1;
		return 0;
	}
	/* more than a transport queues for one client would only get it
	 * dropped, again at every retry: reloading is the way then */
	{
		size_t bytes = 0;

		for (size_t i = 0; i < st->count; i++) {
			struct entry *e = &st->log[(st->head + i) % st->log_max];

			if (e->seq > since)
				bytes += e->n + 1;
		}
		if (bytes > LAMA_STATE_REPLAY_MAX) {
			*reset = 1;
			return 0;
		}
	}
	for (size_t i = 0; i < st->count; i++) {
		struct entry *e = &st->log[(st->head + i) % st->log_max];

		if (e->seq > since && st->send(client, e->text, e->n) != 0)
			break; /* the transport drops the client */
	}
	return 0;
}

void lama_state_unsubscribe(lama_state *st, void *client)
{
	for (size_t i = 0; i < st->nsubs; i++)
		if (st->subs[i] == client) {
			st->subs[i] = st->subs[--st->nsubs];
			return;
		}
}

size_t lama_state_subscribers(const lama_state *st)
{
	return st->nsubs;
}
