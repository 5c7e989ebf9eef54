/* models.h: readies ONE.MODELS on a logged-in session.
 *
 * The models (people, channels, chats, trust, access) register their merge
 * rules on the session's archive and create what a user needs on first
 * use (their Someone, Profile and Leute, the right to declare trusted
 * keys). Every process that opens a user's archive calls this right after
 * login, before reading or merging anything: the CLI, and `lama serve`. */
#ifndef LAMA_MODELS_H
#define LAMA_MODELS_H

#include "account/account.h"

/* Idempotent; the first call for a new user writes their model objects
 * (one transaction per model). */
int lama_models_init(lama_session *s);

/* Registers the merge rules of every model on the session's archive and
 * creates nothing: for a session that must not write the user's model
 * objects, such as a worker's (lama_account_worker_open), which merges
 * versions that arrive from peers exactly as the main process would.
 * lama_models_init registers the same rules. */
int lama_models_rules(lama_session *s);

#endif
