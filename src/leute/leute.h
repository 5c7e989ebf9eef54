/* leute.h: people, ONE's Leute model.
 *
 * A Person (ID: an email) is a stable identity. A Profile (versioned; ID:
 * profileId, personId, owner) describes one person as one owner sees them:
 * name, status, avatar (a BLOB), the person's keys, communication
 * endpoints; edits from every device merge (descriptions and endpoints
 * are add/remove sets, registered on the archive by lama_leute_init).
 * Someone is one human with one or more persons/profiles. Leute (ID
 * appId "one.leute") names the user (me) and the contacts (other). An AI
 * assistant is a person too, marked by a LamaAssistant object; the AI
 * issue gives it behaviour. Design: docs/people.md. */
#ifndef LAMA_LEUTE_H
#define LAMA_LEUTE_H

#include <stddef.h>

#include "account/account.h"

#define LAMA_LEUTE_NAME_MAX 256   /* bytes of a display name */
#define LAMA_LEUTE_EMAIL_MAX 256
#define LAMA_LEUTE_STATUS_MAX 1024

/* What lama knows of one person. */
struct lama_person {
	lama_hash person;   /* the Person ID hash */
	lama_hash someone;  /* the Someone ID hash (zero if none) */
	lama_hash profile;  /* the main Profile ID hash (zero if none) */
	char name[LAMA_LEUTE_NAME_MAX + 1];   /* PersonName, else Person.name, else the email */
	char email[LAMA_LEUTE_EMAIL_MAX + 1];
	char status[LAMA_LEUTE_STATUS_MAX + 1]; /* latest PersonStatus value, or "" */
	int has_avatar;
	lama_hash avatar;   /* the ProfileImage BLOB */
	int is_me, is_ai;
	char model[LAMA_LEUTE_NAME_MAX + 1]; /* an assistant's model, or "" */
	size_t nkeys;       /* SignKey descriptions in the profile */
	uint8_t sign_key[4][32]; /* up to four of them, in the order of their
				  * SignKey object hashes (the same on every device) */
	int has_enc_key;
	uint8_t enc_key[32]; /* an EncryptionKey (the smallest hash if several) */
	size_t skipped;      /* descriptions left out: not objects, or failing
			      * validation (an overlong name, a wrong field) */
};

/* Limits on what is read, wherever it came from. */
#define LAMA_LEUTE_CONTACTS_MAX 10000   /* Someones in Leute.other */
#define LAMA_LEUTE_DESCRIPTIONS_MAX 256 /* items in one Profile bag */

/* Registers the merge rules of the people types on the session's archive
 * (Profile.personDescription, Profile.communicationEndpoint, Leute.other,
 * Leute.group merge as add/remove sets) and, on a user's first use,
 * creates their Someone, main Profile (name, signing and encryption keys,
 * this instance's endpoint) and Leute, in one transaction. Idempotent: a
 * second call writes nothing. Call after every login, before any put.
 *
 * Reading a profile: a single-valued description (PersonName, PersonStatus,
 * ProfileImage, EncryptionKey) may appear twice after concurrent edits were
 * merged; lama then takes the PersonStatus with the largest timestamp, and
 * of the others the one with the smallest object hash (ties too), so every
 * device shows the same. The next edit of that field replaces them all.
 * A description that has not arrived yet is skipped, and so is one that
 * fails validation (counted in lama_person.skipped); a Profile, Someone or
 * Person that has not arrived is LAMA_ENOTFOUND; one of the wrong type or
 * over a limit is LAMA_ECORRUPT / LAMA_ELIMIT naming it (lists leave that
 * contact out instead).
 *
 * The user's own keys in the profile are those of the Keys object (owner:
 * the user) whose publicSignKey verifies a signature the session makes
 * now; the instance's likewise. If several such Keys exist (a peer's copy
 * with the user's signing key and another encryption key) init fails with
 * LAMA_ECORRUPT rather than guess; LAMA_ELIMIT when more than 64 Keys name
 * the owner and none of those read is the session's. */
int lama_leute_init(lama_session *s);
/* Only the merge rules of Profile and Leute (sets) on an archive, creating
 * nothing: what lama_leute_init registers first, for lama_models_rules. */
int lama_leute_rules(lama_archive *a);

/* The user (is_me set). LAMA_ENOTFOUND before lama_leute_init. */
int lama_leute_me(lama_session *s, struct lama_person *out);

/* Adds a contact: a new Person (email given, else a random one under
 * lama.local; an assistant's under ai.lama.local), its Profile with the
 * name, its Someone, and the Someone in Leute.other. With ai, also a
 * LamaAssistant naming `model` (may be NULL). LAMA_EEXIST if that email
 * is already a contact or the user; LAMA_EINVAL for an empty or overlong
 * name (control characters included) or a malformed email, and for a
 * model without ai. Emails are stored in lower case. One transaction.
 * out may be NULL. */
int lama_leute_add_contact(lama_session *s, const char *name, const char *email, int ai,
			   const char *model, struct lama_person *out);

/* Calls fn for each contact (not the user), in the order of their names
 * (ASCII case-insensitive, then bytes, then Person ID); a non-zero return
 * stops and is passed back. p is valid during the call only. A contact
 * whose Someone, Profile or Person is missing or fails validation is left
 * out (one bad object from a peer must not hide the list). */
int lama_leute_contacts(lama_session *s, int (*fn)(void *ctx, const struct lama_person *p),
			void *ctx);
/* The same; *skipped (may be NULL) is the number of contacts left out. */
int lama_leute_contacts_skip(lama_session *s, int (*fn)(void *ctx, const struct lama_person *p),
			     void *ctx, size_t *skipped);

/* What is known of a Person ID: the user, a contact, or a person seen only
 * in a message (then only the Person object: name from it or the email).
 * LAMA_ENOTFOUND if the archive has no such Person. LAMA_ELIMIT when more
 * than 64 Someones name the person and none of those read is a contact
 * (fail closed: lama_leute_add_contact refuses such a person too). */
int lama_leute_get(lama_session *s, const lama_hash *person, struct lama_person *out);

/* Finds the user or a contact by email, by exact name (case-insensitive),
 * or by a hex prefix (at least 4 digits) of the Person ID hash. A query
 * may match in several ways; all matches count. LAMA_ENOTFOUND if nobody
 * matches; LAMA_EINVAL naming the candidates if several do. */
int lama_leute_find(lama_session *s, const char *query, struct lama_person *out);

/* Edits the user's own main profile (a new version; NULL leaves a field
 * as it is): the old descriptions of each type given are removed and one
 * new one added. A new name also becomes the user's Person.name; an empty
 * status removes the status. The avatar is a stored BLOB's hash
 * (LAMA_ENOTFOUND if it is not stored). One transaction. */
int lama_leute_set_profile(lama_session *s, const char *name, const char *status,
			   const lama_hash *avatar);

/* A person as JSON, the shape `lama contacts --json` and the IPC protocol
 * use: {person, someone, profile, name, email, status?, avatar, me, ai,
 * model?, signKeys, encryptionKey} (hashes and keys as hex, null when
 * absent). A new reference; NULL when out of memory. */
json_t *lama_person_json(const struct lama_person *p);

#endif
