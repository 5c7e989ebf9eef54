/* backup.h: one encrypted file holding a user's whole data, and back.
 *
 * A backup carries the account record (the master key wrapped under the
 * password) and a consistent snapshot of the archive database, encrypted
 * again under a key Argon2id derives from the user's password and a fresh
 * salt, streamed in 64 KiB chunks (libsodium's secretstream), so nothing,
 * not even the user's name or the archive's size to the chunk, is readable
 * without the password, and one changed, dropped or appended byte
 * anywhere is detected. Memory stays the same whatever the archive's
 * size. File format: docs/backup.md. */
#ifndef LAMA_BACKUP_H
#define LAMA_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "account/account.h"

/* Plaintext bytes per encrypted chunk. */
#define LAMA_BACKUP_CHUNK ((size_t)64 << 10)
/* The largest archive database a backup may hold (SQLite's own ceiling
 * with 4 KiB pages). */
#define LAMA_BACKUP_ARCHIVE_MAX ((uint64_t)16 << 40)

/* Called now and then during long work (may be NULL): done of total
 * bytes; total may grow once, when the snapshot's size is known. */
struct lama_backup_progress {
	void (*fn)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
};

/* Writes a backup of the session's user to path: created mode 0600 as a
 * temporary file beside it and renamed over path at the end (an existing
 * file is replaced whole; never half a file at path). pw must be the
 * user's password (LAMA_EAUTH otherwise, and nothing is written); the
 * backup is encrypted under it with the account's Argon2id cost.
 * The archive is copied through a connection of its own inside one read
 * transaction, so the session may be in use (by lama serve, in this or
 * another process) and the copy is still one consistent state; the
 * session itself is used only at the start (checking the password,
 * reading the user's name) and not while the copy runs. A temporary copy
 * of the (still encrypted) database sits in the user's folder meanwhile
 * and is removed on every path. */
int lama_backup_write(lama_session *s, const char *path, const char *pw, size_t pwlen,
		      const struct lama_backup_progress *p);

/* The same in two steps, for a process that must keep serving meanwhile
 * (lama serve): _prepare reads from the session what the backup needs
 * (the user's folder and name; quick, no KDF) and must run where the
 * session is used; _run does everything else (the password check and the
 * key, two Argon2id runs; the copy; the encryption) without touching the
 * session, so it may run on a worker thread while the session goes on
 * serving, and progress is then called on that thread. A job may be run
 * more than once; free it with lama_backup_job_free (NULL is fine). The
 * job keeps copies, not the session: logging out meanwhile is fine. Error
 * messages are per thread (util/err.h): read lama_errmsg() on the thread
 * that ran the job. */
typedef struct lama_backup_job lama_backup_job;
int lama_backup_prepare(lama_session *s, lama_backup_job **out);
int lama_backup_run(lama_backup_job *j, const char *path, const char *pw, size_t pwlen,
		    const struct lama_backup_progress *p);
void lama_backup_job_free(lama_backup_job *j);

/* Restores the backup at path into the data folder home (created if
 * missing), which must not hold that user already (LAMA_EEXIST: not by
 * name, not by account). LAMA_EAUTH for a wrong password (or a damaged
 * first chunk: the two cannot be told apart), LAMA_EFORMAT for a file that
 * is not a lama backup, LAMA_ECORRUPT for one damaged, cut short or
 * extended. Everything is written into a hidden folder and renamed into
 * place only after the whole file was authenticated and the restored
 * account opened with pw, so nothing is left behind on failure. *name_out
 * (may be NULL; caller frees with lama_free) gets the user's name. */
int lama_backup_restore(const char *home, const char *path, const char *pw, size_t pwlen,
			char **name_out, const struct lama_backup_progress *p);

#endif
