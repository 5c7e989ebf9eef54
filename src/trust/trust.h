/* trust.h: keys and trust certificates (ONE.MODELS' certificates).
 *
 * A Signature {issuer, data, signature} is an Ed25519 detached signature
 * by the issuer's person key over the 64 lower-case hex characters of the
 * `data` hash (as UTF-8 bytes), written as 128 lower-case hex characters.
 * Certificates are ONE objects that a Signature makes someone's statement:
 * AffirmationCertificate (the signer vouches for an object),
 * TrustKeysCertificate (the signer declares the keys of a Profile trusted
 * for the Profile's person), RightToDeclareTrustedKeysForEverybody- and
 * -ForSelfCertificate (the root delegates the right to make such
 * declarations). lama's LamaValidity gives a certificate a time window (the
 * issuer signs it instead of the bare certificate) and LamaRevocation
 * withdraws one. Everything is found through the archive's reverse maps.
 *
 * Trust starts at the root: the user's own person and its signing keys.
 * Verification follows the chain from there, checks every signature,
 * right, window and revocation on the way, and says why a chain fails
 * (enum lama_trust_reason) and at which object. The rules, precisely:
 * docs/trust.md. */
#ifndef LAMA_TRUST_H
#define LAMA_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "account/account.h"
#include "archive/archive.h"
#include "crypto/crypto.h"
#include "util/hash.h"

#define LAMA_TRUST_SIG_HEX (2 * LAMA_SIG_BYTES) /* 128 */
#define LAMA_TRUST_ROOT_KEYS 4     /* signing keys of the root we keep */
#define LAMA_TRUST_MAX_DEPTH 8     /* certificates on one chain */
#define LAMA_TRUST_MAX_REFS 256    /* referrers of one kind read per object */
#define LAMA_TRUST_MAX_DESC 256    /* personDescription entries read per Profile */
#define LAMA_TRUST_MAX_WORK 4096   /* signature checks, object loads and referrer reads per call */
#define LAMA_TRUST_ROOT_SCAN 4096  /* Keys referrers of the user read to find the root once */
#define LAMA_TRUST_MSG_MAX 1024

/* --- The root of trust --- */

struct lama_trust_root {
	lama_hash person; /* the user's Person ID hash */
	size_t nkeys;
	uint8_t keys[LAMA_TRUST_ROOT_KEYS][LAMA_SIGN_PK_BYTES];
};

/* The session user's person and signing key: the Keys objects of the
 * person whose publicSignKey verifies a fresh signature made with the
 * session's person key. (A Keys object naming the user may arrive from
 * anyone; only the key the user holds counts.) The hashes of the Keys
 * objects found are kept in the store's local, sealed record "trust/root"
 * (peers cannot write it), and later calls load those by hash, so a flood
 * of Keys objects naming the user cannot hide the real one. Without a
 * usable record (the first call: lama_trust_setup makes it at login) the
 * person's Keys referrers are scanned, at most LAMA_TRUST_ROOT_SCAN of
 * them, and the record is written. LAMA_ENOTFOUND if no Keys object
 * holds the key (the message says when the scan was cut by a flood). */
int lama_trust_root(lama_session *s, struct lama_trust_root *out);

/* --- Verification --- */

enum lama_trust_reason {
	LAMA_TRUST_VALID = 0,
	LAMA_TRUST_EXPIRED,        /* now >= notAfter of the signed LamaValidity */
	LAMA_TRUST_NOT_YET_VALID,  /* now < notBefore */
	LAMA_TRUST_REVOKED,        /* a LamaRevocation by the issuer or the root, time <= now */
	LAMA_TRUST_FORGED,         /* a signature that is malformed or verifies with no known key of its issuer */
	LAMA_TRUST_NO_RIGHT,       /* the issuer had no right to issue it (wrong signer) */
	LAMA_TRUST_UNSIGNED,       /* no signature on a certificate, no certificate for keys or object */
	LAMA_TRUST_LOOP,           /* the chain comes back to a certificate already on it */
	LAMA_TRUST_TOO_DEEP,       /* more than LAMA_TRUST_MAX_DEPTH links, LAMA_TRUST_MAX_WORK steps, or
				    * too many revocations to read: fails closed */
	LAMA_TRUST_MALFORMED,      /* an object of the wrong type or shape on the chain */
	LAMA_TRUST_UNKNOWN_KEY,    /* no key at all is known for the issuer */
	LAMA_TRUST_MISSING,        /* an object on the chain is not in the archive */
};

/* A short fixed name of a reason, e.g. "expired". */
const char *lama_trust_reason_name(enum lama_trust_reason r);

struct lama_trust_result {
	enum lama_trust_reason reason;
	/* VALID: zero. Otherwise the object where the chain failed: the
	 * certificate that expired, was revoked, lacks a signature or a right,
	 * closes a loop or is one too deep; the Signature that is forged; the
	 * object that is malformed or missing; the Profile whose keys nobody
	 * certified. */
	lama_hash link;
	/* VALID: the person whose signature carries it. */
	lama_hash issuer;
	/* Nonzero when some list of referrers (signatures, windows,
	 * certificates of a profile, profiles of a person, rights,
	 * affirmations) or a Profile's descriptions had more than the limit
	 * and was cut: a negative answer may then be for want of what was left
	 * out (the message says so). A revocation check is never cut: too
	 * many revocations to read is TOO_DEEP. */
	int truncated;
	/* One line naming every link from the object asked about down to the
	 * failing one ("affirmation 1a2b...: signature 3c4d... by person
	 * 5e6f...: key in profile ...: trust-keys certificate ...: expired at
	 * ..."), or "valid". Hashes are shortened to 16 hex digits. */
	char message[LAMA_TRUST_MSG_MAX];
};

/* Whether certificate `cert` (any of the four kinds) is in force at `now`
 * (ms since the epoch) for the user `root`: some issuer's signature over
 * it, or over a LamaValidity for it, verifies with a key trusted for that
 * issuer, the issuer had the right to issue it, the window holds and no
 * revocation applies. Returns 0 when it could tell (the answer, valid or
 * not, is in *res), or a negative LAMA_E* code when the archive failed
 * (I/O, out of memory, damaged storage); then *res says nothing. */
int lama_trust_verify(lama_archive *a, const struct lama_trust_root *root, double now,
		      const lama_hash *cert, struct lama_trust_result *res);

/* Whether object `obj` is affirmed by a trusted person: some
 * AffirmationCertificate for it is in force (res->issuer is the affirmer).
 * UNSIGNED when there is no affirmation at all. Returns as
 * lama_trust_verify. */
int lama_trust_affirmed(lama_archive *a, const struct lama_trust_root *root, double now,
			const lama_hash *obj, struct lama_trust_result *res);

/* The trusted signing keys of `person` at `now`: for the root its own keys,
 * and for everybody the SignKeys of their Profiles that a TrustKeys
 * certificate in force declares trusted. Writes up to max distinct keys
 * into keys (further ones are left out) and their number into *n. One
 * work budget covers the call: keys whose proof would exceed it are left
 * out (never included unproven). */
int lama_trust_keys(lama_archive *a, const struct lama_trust_root *root, double now,
		    const lama_hash *person, uint8_t (*keys)[LAMA_SIGN_PK_BYTES], size_t max,
		    size_t *n);

/* --- Issuing --- */

/* Someone who signs: `person` is the issuer's Person ID; sign() makes an
 * Ed25519 signature of msg with that person's key (0 or LAMA_E*). */
typedef int (*lama_trust_sign_fn)(void *ctx, const void *msg, size_t n,
				  uint8_t sig[LAMA_SIG_BYTES]);
struct lama_trust_signer {
	lama_hash person;
	lama_trust_sign_fn sign;
	void *ctx;
};

/* The session user with their person key (s is borrowed). */
void lama_trust_session_signer(lama_session *s, struct lama_trust_signer *out);
/* Any person with a raw Ed25519 secret key (for tests and for sync code
 * acting for another identity). sk is borrowed and must outlive the
 * signer. */
void lama_trust_sk_signer(const lama_hash *person, const uint8_t sk[LAMA_SIGN_SK_BYTES],
			  struct lama_trust_signer *out);

/* A time window for a certificate (ms since the epoch). not_before 0 means
 * "from the start"; not_after must be greater than not_before. */
struct lama_trust_validity {
	double not_before;
	double not_after;
};

/* Every issuing function stores all it makes (License, certificate,
 * LamaValidity, Signature) in one transaction and returns the
 * certificate's hash in *cert (may be NULL). With `v` the issuer signs a
 * LamaValidity for the certificate instead of the certificate itself, so
 * the window cannot be stripped; v NULL: no expiry. LAMA_EINVAL for a bad
 * window. Issuing the same thing twice changes nothing (Ed25519 is
 * deterministic, so the objects are the same). */

/* Signs any object: stores Signature {issuer, data, signature}. */
int lama_trust_sign(lama_archive *a, const struct lama_trust_signer *s, const lama_hash *data,
		    lama_hash *signature);
/* The signer vouches for object `data`. */
int lama_trust_affirm(lama_archive *a, const struct lama_trust_signer *s, const lama_hash *data,
		      const struct lama_trust_validity *v, lama_hash *cert);
/* The signer declares the SignKeys of Profile `profile` (an object hash;
 * it must be in the archive) trusted for the profile's person. */
int lama_trust_certify_keys(lama_archive *a, const struct lama_trust_signer *s,
			    const lama_hash *profile, const struct lama_trust_validity *v,
			    lama_hash *cert);

enum lama_trust_right {
	LAMA_TRUST_RIGHT_EVERYBODY, /* may declare trusted keys of anybody */
	LAMA_TRUST_RIGHT_SELF,      /* may declare trusted keys of themself */
};
/* The signer grants `beneficiary` (a Person ID) a right. Only the root's
 * grants count when verifying. */
int lama_trust_grant_right(lama_archive *a, const struct lama_trust_signer *s,
			   const lama_hash *beneficiary, enum lama_trust_right kind,
			   const struct lama_trust_validity *v, lama_hash *cert);
/* Revokes `cert` (it must be in the archive) from `time` on (ms; 0: now):
 * stores and signs LamaRevocation {certificate, time, reason}. reason may
 * be NULL; at most 1024 bytes of UTF-8. It counts only when the signer
 * issued that certificate or is the root. */
int lama_trust_revoke(lama_archive *a, const struct lama_trust_signer *s, const lama_hash *cert,
		      double time, const char *reason, lama_hash *revocation);

/* The seed's setup: the user's main identity grants itself
 * RightToDeclareTrustedKeysForEverybody (self-signed, no expiry), as
 * ONE.MODELS does, and the root is found and recorded (lama_trust_root;
 * LAMA_ENOTFOUND without it). Idempotent and cheap once done (no write);
 * call after every login. */
int lama_trust_setup(lama_session *s);

#endif
