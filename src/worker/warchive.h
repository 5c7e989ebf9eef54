/* warchive.h: the user's archive in a worker process (private to
 * src/worker; docs/workers.md#the-archive-in-a-worker).
 *
 * A worker may be replaced at any moment, so every archive task carries
 * what opening needs, at the head of its input (the handle fields):
 *
 *     bytes32 dir    the user folder (lama_session_dir), 1..4095 bytes
 *     keys[64]       the storage key then the index key
 *                    (lama_account_worker_keys)
 *
 * The worker keeps one archive open between tasks, reopened when the
 * folder or the keys differ or the database file was replaced or removed
 * (a user erased after logout), with the models' merge rules registered
 * (lama_models_rules). The keys are kept in secure memory, compared in
 * constant time and wiped on close. */
#ifndef LAMA_WORKER_WARCHIVE_H
#define LAMA_WORKER_WARCHIVE_H

#include "account/account.h"
#include "util/buf.h"
#include "worker/ops.h"

/* Main process: appends the handle fields for session s to a task input.
 * *in then holds keys: release it with lama_buf_release_wipe. */
int lama_warchive_handle(lama_session *s, struct lama_buf *in);

/* The handle fields as read from a task's input (borrowed from it). */
struct lama_warchive_ref {
	const char *op; /* for messages */
	const uint8_t *dir, *keys;
	uint32_t dlen;
};

/* Worker: reads and checks the handle fields from r without opening
 * anything, so an op can check the rest of its input before it opens the
 * archive. LAMA_EINVAL for a malformed handle. */
int lama_warchive_read(struct lama_rd *r, struct lama_warchive_ref *h);
/* Worker: sets *s to the open session of a handle read by
 * lama_warchive_read (borrowed; valid until the next call or
 * lama_warchive_close). LAMA_ENOTFOUND without an archive, LAMA_EAUTH for
 * keys that do not open it (nothing stays open then). */
int lama_warchive_open(const struct lama_warchive_ref *h, lama_session **s);
/* Both in one: lama_warchive_read, then lama_warchive_open. */
int lama_warchive_get(struct lama_rd *r, lama_session **s);
/* Closes the cached archive and wipes its keys. */
void lama_warchive_close(void);

/* The crypto worker's chain_verify op (ops_trust.c; its format is in
 * docs/workers.md#crypto): certificate chains checked with
 * lama_trust_verify against the archive of the handle. */
int lama_worker_trust_chain_verify(const void *in, size_t n, struct lama_buf *out);

#endif
