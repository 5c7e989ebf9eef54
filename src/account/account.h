/* account.h: users of one data folder (ONE's MultiUser) and the session of
 * a logged-in user.
 *
 * A data folder holds any number of users, each in users/<uid>/ with an
 * account record (the master key wrapped under an Argon2id key from the
 * password) and the user's encrypted archive. A user is found by a salted
 * tag of the name, so the folder does not show names in plaintext.
 * Registering creates the person (signing and encryption keys), this
 * device's instance (its own keys) and the archive. Layout and formats:
 * docs/accounts.md. */
#ifndef LAMA_ACCOUNT_H
#define LAMA_ACCOUNT_H

#include <stddef.h>

#include "archive/archive.h"
#include "crypto/crypto.h"
#include "crypto/keychain.h"

#define LAMA_NAME_MAX 100 /* bytes of a user name */
#define LAMA_PATH_MAX 4096

/* The data folder: `opt` if given, else $LAMA_HOME, else
 * ~/.local/share/lama. Writes a NUL-terminated path into out. */
int lama_home_resolve(const char *opt, char *out, size_t n);
/* Creates the data folder (and its parents) with mode 0700 if missing. */
int lama_home_create(const char *home);

/* A logged-in user. Opaque; lama_session_logout wipes its keys. */
typedef struct lama_session lama_session;

/* Creates a user and logs in. LAMA_EEXIST if the name is taken. Nothing is
 * left behind on failure. *out owned by the caller (lama_session_logout). */
int lama_account_register(const char *home, const char *name, const char *pw, size_t pwlen,
			  const struct lama_kdf_params *kdf, lama_session **out);
/* Logs in. name may be NULL when the folder has exactly one user.
 * LAMA_EAUTH for a wrong password, LAMA_ENOTFOUND for an unknown user;
 * neither changes anything. */
int lama_account_login(const char *home, const char *name, const char *pw, size_t pwlen,
		       lama_session **out);
/* Login in two steps, so the password's Argon2id can run elsewhere (a
 * crypto worker): the user's salt and cost, then the login with the key
 * lama_pwhash(password, salt, cost) made. Errors as lama_account_login. */
int lama_account_kdf_input(const char *home, const char *name, uint8_t salt[LAMA_SALT_BYTES],
			   struct lama_kdf_params *p);
int lama_account_login_key(const char *home, const char *name, const uint8_t wkey[LAMA_KEY_BYTES],
			   lama_session **out);
/* Register in two steps, the same way: the caller picks a fresh random
 * salt and has wkey = lama_pwhash(password, salt, kdf) made elsewhere.
 * Errors as lama_account_register. */
int lama_account_register_key(const char *home, const char *name, const uint8_t salt[LAMA_SALT_BYTES],
			      const struct lama_kdf_params *kdf, const uint8_t wkey[LAMA_KEY_BYTES],
			      lama_session **out);
/* Rewraps the master key under a new password (the archive is untouched).
 * Atomic: the old password works until the new one does. */
int lama_account_passwd(const char *home, const char *name, const char *old_pw, size_t oldlen,
			const char *new_pw, size_t newlen, const struct lama_kdf_params *kdf);
/* Removes a user and all their data, given the password. */
int lama_account_erase(const char *home, const char *name, const char *pw, size_t pwlen);
/* Number of users in the folder. */
int lama_account_count(const char *home, size_t *n);

/* Closes the archive and wipes every key from memory. NULL is fine. */
void lama_session_logout(lama_session *s);

lama_archive *lama_session_archive(lama_session *s);
lama_store *lama_session_store(lama_session *s);
const lama_recipes *lama_session_recipes(lama_session *s);
/* The ID hashes of the user's Person and this device's Instance. */
const lama_hash *lama_session_person(lama_session *s);
const lama_hash *lama_session_instance(lama_session *s);
/* The folder holding this user's files. */
const char *lama_session_dir(lama_session *s);
/* The public signing and encryption keys of the person (or, if instance,
 * this instance), from the keychain: what the user's own Keys objects
 * must hold, so that code can tell them from copies a peer made. */
int lama_session_public_keys(lama_session *s, int instance, uint8_t sign_pk[LAMA_SIGN_PK_BYTES],
			     uint8_t box_pk[LAMA_BOX_PK_BYTES]);
/* Derives subkey `id` of an 8-character context from the user's master
 * key (lama_keychain_subkey) into out, which the caller wipes; e.g. the
 * keys of the search index ("lamasrch"). LAMA_EINVAL for the keychain's
 * reserved context. */
int lama_session_subkey(lama_session *s, uint64_t id, const char ctx[8],
			uint8_t out[LAMA_KEY_BYTES]);
/* Signs with the person's (or, if instance, this instance's) key. */
int lama_session_sign(lama_session *s, int instance, const void *msg, size_t n,
		      uint8_t sig[LAMA_SIG_BYTES]);

/* --- The archive in a worker process (docs/accounts.md#workers) --- */

/* The storage key then the index key: what opening the archive needs. */
#define LAMA_WORKER_KEYS_BYTES (2 * LAMA_KEY_BYTES)

/* Writes the session's archive keys (derived from the master key, the
 * same every login) into keys, for a worker process the main process
 * starts. Never the password nor the master key: a worker holding these
 * can read and write the archive, nothing else (no signing, no keychain).
 * The caller wipes keys (lama_wipe) once handed over. LAMA_EINVAL on a
 * worker's own session. */
int lama_account_worker_keys(lama_session *s, uint8_t keys[LAMA_WORKER_KEYS_BYTES]);
/* Opens the archive of user folder `dir` (lama_session_dir of the
 * parent's session) with those keys, in a worker process. Takes no user
 * lock: the parent's session holds it for as long as it hands out tasks,
 * and a worker must not keep a user from being erased after logout. Never
 * creates: LAMA_ENOTFOUND without an archive, LAMA_EAUTH for keys that do
 * not open it. The session has the archive, store, recipes, person and
 * instance; everything that needs the keychain (lama_session_sign,
 * _subkey, _public_keys, lama_account_worker_keys) fails with
 * LAMA_EINVAL. No merge rules are registered (lama_models_rules). *out
 * owned by the caller (lama_session_logout, which wipes the keys). */
int lama_account_worker_open(const char *dir, const uint8_t keys[LAMA_WORKER_KEYS_BYTES],
			     lama_session **out);

/* --- Backup and restore (src/backup) --- */

struct lama_buf;

/* The user's login name (the name field of their Person, given at
 * registration); *name is the caller's (lama_free). Reads the archive. */
int lama_session_name(lama_session *s, char **name);
/* What a backup of the user in folder dir (lama_session_dir) carries from
 * the account: checks that `name` is the user's (against the record's
 * name tag; LAMA_ECORRUPT otherwise) and pw their password (LAMA_EAUTH if
 * wrong; nothing changes), appends the record's exact bytes as they are
 * on disk now to *record and sets *kdf to its Argon2id cost. Does not use
 * a session, so it may run on any thread. */
int lama_account_export(const char *dir, const char *name, const char *pw, size_t pwlen,
			struct lama_buf *record, struct lama_kdf_params *kdf);
/* A fresh, hidden folder DIR/users/.restore-XXXXXX (mode 0700) for
 * lama_account_adopt to move into place; its path goes to dir. Logins and
 * counts skip it. */
int lama_account_stage(const char *home, char *dir, size_t n);
/* Makes the staged folder `dir` (holding account.json and archive.db, as
 * a backup carries them) the user `name` of the data folder: checks that
 * pw unlocks the record and the archive, that the folder has no user of
 * that name (LAMA_EEXIST) nor of that uid (LAMA_EEXIST), rewrites the
 * record's name tag under this folder's salt and renames dir into
 * users/<uid>, all under the folder's lock. On failure dir is left as it
 * was, for lama_account_discard. */
int lama_account_adopt(const char *home, const char *dir, const char *name, const char *pw,
		       size_t pwlen);
/* Removes a staged folder and everything in it. */
void lama_account_discard(const char *dir);

#endif
