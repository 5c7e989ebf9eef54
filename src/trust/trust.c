/* trust.c: certificates, signatures and the walk from the root of trust.
 * The rules are in docs/trust.md; this file follows them in order:
 * verify_cert (one certificate) -> issuance (one issuer's signature on it)
 * -> signed_by (is that signature by a trusted key of the issuer) ->
 * profile_trusted (is a profile's key certified) -> verify_cert again,
 * with the certificates of the current chain on a stack. */
#include "trust/trust.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/mem.h"

/* --- The four certificate kinds and their licenses --- */

enum kind { K_AFFIRM, K_TRUSTKEYS, K_EVERYBODY, K_SELF, K_COUNT };

static const struct {
	const char *type;    /* recipe */
	const char *field;   /* what it is about */
	const char *what;    /* in messages */
	const char *license; /* License.name */
	const char *text;    /* License.description */
} kinds[K_COUNT] = {
	{"AffirmationCertificate", "data", "affirmation", "Affirmation",
	 "The issuer of the signature vouches for the object named by data: "
	 "its content is correct as far as the issuer knows."},
	{"TrustKeysCertificate", "profile", "trust-keys certificate", "TrustKeys",
	 "The issuer of the signature declares that the keys in the profile belong to "
	 "the person the profile describes (its personId) and are trusted for that person."},
	{"RightToDeclareTrustedKeysForEverybodyCertificate", "beneficiary",
	 "right for everybody", "RightToDeclareTrustedKeysForEverybody",
	 "The issuer of the signature grants the beneficiary the right to declare "
	 "trusted keys of any person with a TrustKeysCertificate."},
	{"RightToDeclareTrustedKeysForSelfCertificate", "beneficiary", "right for self",
	 "RightToDeclareTrustedKeysForSelf",
	 "The issuer of the signature grants the beneficiary the right to declare "
	 "trusted keys of the beneficiary themself with a TrustKeysCertificate."},
};

static int kind_of(const char *type)
{
	for (int k = 0; k < K_COUNT; k++)
		if (!strcmp(type, kinds[k].type))
			return k;
	return -1;
}

static json_t *license_json(int k)
{
	return json_pack("{s:s, s:s, s:s}", "$type$", "License", "name", kinds[k].license,
			 "description", kinds[k].text);
}

static int license_hash(const lama_recipes *rec, int k, lama_hash *h)
{
	json_t *l = license_json(k);
	int rc;

	if (!l)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = lama_object_hash(rec, l, h, NULL);
	json_decref(l);
	return rc;
}

/* --- Small helpers --- */

struct hx {
	char s[17];
};

/* A hash shortened to 16 hex digits, for messages. */
static struct hx hx(const lama_hash *h)
{
	struct hx o;
	char full[LAMA_HASH_HEX + 1];

	lama_hash_hex(h, full);
	memcpy(o.s, full, 16);
	o.s[16] = '\0';
	return o;
}

static const char *type_of(const json_t *o)
{
	const char *t = json_string_value(json_object_get(o, "$type$"));

	return t ? t : "";
}

/* 0 and *out when o.field is a hash (64 lower-case hex digits), else -1. */
static int get_hash(const json_t *o, const char *field, lama_hash *out)
{
	const json_t *v = json_object_get(o, field);

	if (!json_is_string(v) || !lama_hash_hex_valid(json_string_value(v), json_string_length(v)))
		return -1;
	return lama_hash_parse(json_string_value(v), json_string_length(v), out) ? -1 : 0;
}

/* Exactly 2n lower-case hex digits into out[n]: 0, else -1. */
static int lc_hex(const char *s, size_t len, uint8_t *out, size_t n)
{
	if (!s || len != 2 * n)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	return lama_hex_decode(s, len, out, n) ? -1 : 0;
}

/* o.field as a finite number: 0; absent: 1; anything else: -1. */
static int get_number(const json_t *o, const char *field, double *out)
{
	const json_t *v = json_object_get(o, field);

	if (!v)
		return 1;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return -1;
	*out = json_number_value(v);
	return 0;
}

/* --- Results --- */

static void vset(struct lama_trust_result *r, enum lama_trust_reason why, const lama_hash *link,
		 const char *fmt, va_list ap)
{
	r->reason = why;
	if (link)
		r->link = *link;
	else
		memset(&r->link, 0, sizeof(r->link));
	memset(&r->issuer, 0, sizeof(r->issuer));
	r->truncated = 0;
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
}

/* Records a rejection in r; returns 1 ("answered: not valid"). */
__attribute__((format(printf, 4, 5))) static int fail(struct lama_trust_result *r,
						       enum lama_trust_reason why,
						       const lama_hash *link, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(r, why, link, fmt, ap);
	va_end(ap);
	return 1;
}

/* Puts "<prefix>: " before r's message: the link above the failing one. */
__attribute__((format(printf, 2, 3))) static void wrap(struct lama_trust_result *r,
						       const char *fmt, ...)
{
	char pre[160];
	size_t pl, ml = strlen(r->message), cap = sizeof(r->message);
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(pre, sizeof(pre) - 2, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	pl = strlen(pre);
	memcpy(pre + pl, ": ", 3);
	pl += 2;
	if (pl + ml >= cap)
		ml = cap - 1 - pl; /* the far end of a long chain is cut */
	memmove(r->message + pl, r->message, ml);
	memcpy(r->message, pre, pl);
	r->message[pl + ml] = '\0';
}

/* --- Lists of referrers --- */

struct hlist {
	lama_hash *v;
	size_t n, cap;
	int truncated; /* the archive held more than were read */
};

static int hl_add(void *ctx, const char *type, const lama_hash *src)
{
	struct hlist *l = ctx;

	(void)type;
	if (lama_grow(&l->v, &l->cap, l->n, sizeof(*l->v), 8))
		return LAMA_ENOMEM;
	l->v[l->n++] = *src;
	return 0;
}

static int hcmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(lama_hash));
}

static void hl_release(struct hlist *l)
{
	lama_free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* At most max referrers of target of one type (a flood of referrers from
 * a peer is not read past max: l->truncated says so), sorted (so that
 * answers and the failure reported do not depend on storage order),
 * without repeats. */
static int hl_read(lama_archive *a, const lama_hash *target, const char *type, size_t max,
		   struct hlist *l)
{
	size_t w = 0;
	int rc;

	l->n = 0;
	l->truncated = 0;
	rc = lama_archive_referrers_max(a, target, type, max, hl_add, l, &l->truncated);
	if (rc)
		return rc;
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), hcmp);
	for (size_t i = 0; i < l->n; i++)
		if (!w || !lama_hash_eq(&l->v[w - 1], &l->v[i]))
			l->v[w++] = l->v[i];
	l->n = w;
	return 0;
}

/* --- One verification --- */

struct memo {
	lama_hash person;
	uint8_t key[LAMA_SIGN_PK_BYTES];
};

struct vctx {
	lama_archive *a;
	const struct lama_trust_root *root;
	double now;
	lama_hash stack[LAMA_TRUST_MAX_DEPTH]; /* certificates on the chain */
	size_t depth;
	/* keys proven trusted in this call: a proof does not depend on the
	 * path that found it, so it is reused (failures are not: a loop
	 * seen from one path may be fine from another) */
	struct memo *memo;
	size_t nmemo, cmemo;
	/* one budget for the call: signature checks, object loads, referrer
	 * reads, certificates. Once spent it stays spent (exhausted), every
	 * later step fails at once, and no answer of the call is "valid" */
	unsigned work;
	int exhausted;
	lama_hash exhausted_at;
	/* the first list of referrers that was cut (for the message) */
	int truncated;
	const char *trunc_type;
	lama_hash trunc_of;
	lama_hash lic[K_COUNT];
	unsigned lic_done;
};

static int is_root(const struct vctx *c, const lama_hash *p)
{
	return lama_hash_eq(p, &c->root->person);
}

static int memo_add(struct vctx *c, const lama_hash *person, const uint8_t key[32])
{
	if (c->nmemo == c->cmemo) {
		size_t cap = c->cmemo ? 2 * c->cmemo : 8;
		struct memo *m = lama_realloc(c->memo, cap * sizeof(*m));

		if (!m)
			return lama_error(LAMA_ENOMEM, "out of memory");
		c->memo = m;
		c->cmemo = cap;
	}
	c->memo[c->nmemo].person = *person;
	memcpy(c->memo[c->nmemo].key, key, 32);
	c->nmemo++;
	return 0;
}

static int lic_get(struct vctx *c, int k, lama_hash *h)
{
	if (!(c->lic_done & (1u << k))) {
		int rc = license_hash(lama_archive_recipes(c->a), k, &c->lic[k]);

		if (rc)
			return rc;
		c->lic_done |= 1u << k;
	}
	*h = c->lic[k];
	return 0;
}

/* Charges one step at `at`: 0, or 1 once the budget is spent (sticky). */
static int spend(struct vctx *c, const lama_hash *at)
{
	if (c->exhausted)
		return 1;
	if (++c->work <= LAMA_TRUST_MAX_WORK)
		return 0;
	c->exhausted = 1;
	c->exhausted_at = *at;
	return 1;
}

static int too_much(struct vctx *c, const lama_hash *at, struct lama_trust_result *r)
{
	if (!c->exhausted) {
		c->exhausted = 1;
		c->exhausted_at = *at;
	}
	return fail(r, LAMA_TRUST_TOO_DEEP, at, "more than %d steps to follow at %s",
		    LAMA_TRUST_MAX_WORK, hx(at).s);
}

/* The referrers of target of one type, at most LAMA_TRUST_MAX_REFS of
 * them (a cut list is noted in c for the message). A read is a step: with
 * the budget spent it reads nothing and returns an empty list, which every
 * caller turns into a negative answer (and revoked() into TOO_DEEP). */
static int hl_refs(struct vctx *c, const lama_hash *target, const char *type, struct hlist *l)
{
	int rc;

	l->n = 0;
	l->truncated = 0;
	if (spend(c, target))
		return 0;
	rc = hl_read(c->a, target, type, LAMA_TRUST_MAX_REFS, l);
	if (!rc && l->truncated && !c->truncated++) {
		c->trunc_type = type;
		c->trunc_of = *target;
	}
	return rc;
}

/* Loads an object: 0 and *out; 1 with r set when it is missing or of
 * another type (type NULL: any), or when the budget is spent (TOO_DEEP,
 * c->exhausted set: nothing is read); < 0 when the archive failed. */
static int load(struct vctx *c, const lama_hash *h, const char *type, const char *what,
		json_t **out, struct lama_trust_result *r)
{
	int rc;

	*out = NULL;
	if (spend(c, h))
		return too_much(c, h, r);
	rc = lama_archive_get(c->a, h, out);

	if (rc == LAMA_ENOTFOUND) {
		lama_error_clear();
		return fail(r, LAMA_TRUST_MISSING, h, "%s %s is not in the archive", what, hx(h).s);
	}
	if (rc == LAMA_EINVAL) { /* a CLOB */
		lama_error_clear();
		return fail(r, LAMA_TRUST_MALFORMED, h, "%s %s is not an object", what, hx(h).s);
	}
	if (rc)
		return rc;
	if (type && strcmp(type_of(*out), type)) {
		rc = fail(r, LAMA_TRUST_MALFORMED, h, "%s %s is a %.64s, not a %s", what, hx(h).s,
			  type_of(*out), type);
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static int verify_key(struct vctx *c, const uint8_t sig[64], const char msg[64],
		      const uint8_t pk[32])
{
	c->work++;
	return lama_verify(sig, msg, LAMA_HASH_HEX, pk) == 0;
}

static int verify_cert(struct vctx *c, const lama_hash *cert, int want_kind,
		       const lama_hash *want_subject, struct lama_trust_result *r);

/* A Signature object, checked: issuer, data and the signature bytes.
 * 0; 1 with r set (MALFORMED, or FORGED for signature text that is not
 * 128 lower-case hex digits); < 0 on error. */
static int load_sig(struct vctx *c, const lama_hash *sh, const lama_hash *data,
		    lama_hash *issuer, uint8_t sig[LAMA_SIG_BYTES], struct lama_trust_result *r)
{
	json_t *o = NULL;
	const json_t *s;
	lama_hash d;
	int rc = load(c, sh, "Signature", "signature", &o, r);

	if (rc)
		return rc;
	s = json_object_get(o, "signature");
	if (get_hash(o, "issuer", issuer) || get_hash(o, "data", &d) || !lama_hash_eq(&d, data))
		rc = fail(r, LAMA_TRUST_MALFORMED, sh, "signature %s: no valid issuer, or not over %s",
			  hx(sh).s, hx(data).s);
	else if (!json_is_string(s) ||
		 lc_hex(json_string_value(s), json_string_length(s), sig, LAMA_SIG_BYTES))
		rc = fail(r, LAMA_TRUST_FORGED, sh,
			  "signature %s is not %d lower-case hex digits", hx(sh).s, LAMA_TRUST_SIG_HEX);
	json_decref(o);
	return rc;
}

/* Whether the SignKeys of Profile `profile` are certified (some
 * TrustKeysCertificate for it is in force). 0, 1 with r, < 0. */
static int profile_trusted(struct vctx *c, const lama_hash *profile, struct lama_trust_result *r)
{
	struct hlist certs = {0};
	struct lama_trust_result tmp;
	int rc, failed = 0;

	rc = hl_refs(c, profile, kinds[K_TRUSTKEYS].type, &certs);
	if (rc)
		goto out;
	rc = 1;
	for (size_t i = 0; i < certs.n; i++) {
		rc = verify_cert(c, &certs.v[i], K_TRUSTKEYS, profile, &tmp);
		if (rc <= 0)
			goto out;
		if (!failed++)
			*r = tmp;
	}
	if (!failed)
		rc = fail(r, LAMA_TRUST_UNSIGNED, profile,
			  "no certificate declares the keys of profile %s trusted", hx(profile).s);
out:
	hl_release(&certs);
	return rc;
}

/* Whether `sig` over msg (the 64 hex digits of the signed hash) is made
 * with a key trusted for `person`. sh names the Signature for messages.
 * 0, 1 with r, < 0. */
static int signed_by(struct vctx *c, const lama_hash *person, const char msg[64],
		     const uint8_t sig[LAMA_SIG_BYTES], const lama_hash *sh,
		     struct lama_trust_result *r)
{
	struct hlist profiles = {0};
	struct lama_trust_result tmp;
	size_t known = 0;
	int rc, failed = 0;

	if (c->exhausted || c->work >= LAMA_TRUST_MAX_WORK)
		return too_much(c, sh, r);
	if (is_root(c, person)) {
		known = c->root->nkeys;
		for (size_t i = 0; i < c->root->nkeys; i++)
			if (verify_key(c, sig, msg, c->root->keys[i]))
				return 0;
	}
	for (size_t i = 0; i < c->nmemo; i++)
		if (lama_hash_eq(&c->memo[i].person, person) && verify_key(c, sig, msg, c->memo[i].key))
			return 0;

	/* The keys a person has are in their Profiles' SignKey descriptions;
	 * only those that made this signature need their certificates
	 * followed. */
	rc = hl_refs(c, person, "Profile", &profiles);
	if (rc)
		goto out;
	for (size_t i = 0; i < profiles.n && !c->exhausted; i++) {
		const lama_hash *ph = &profiles.v[i];
		json_t *p = NULL;
		const json_t *desc;
		lama_hash pid;
		size_t j;

		rc = load(c, ph, "Profile", "profile", &p, &tmp);
		if (rc < 0)
			goto out;
		if (rc)
			continue;
		if (get_hash(p, "personId", &pid) || !lama_hash_eq(&pid, person)) {
			json_decref(p);
			continue;
		}
		desc = json_object_get(p, "personDescription");
		if (json_array_size(desc) > LAMA_TRUST_MAX_DESC && !c->truncated++) {
			c->trunc_type = "personDescription";
			c->trunc_of = *ph;
		}
		rc = 0;
		/* every load below is a step, so keys that are missing or
		 * unreadable cost budget too */
		for (j = 0; !rc && j < json_array_size(desc) && j < LAMA_TRUST_MAX_DESC &&
			    !c->exhausted;
		     j++) {
			const json_t *dv = json_array_get(desc, j);
			const json_t *kv;
			uint8_t pk[LAMA_SIGN_PK_BYTES];
			lama_hash dh;
			json_t *d = NULL;
			int lr;

			if (!json_is_string(dv) || !lama_hash_hex_valid(json_string_value(dv), json_string_length(dv)))
				continue;
			lama_hash_parse(json_string_value(dv), LAMA_HASH_HEX, &dh);
			lr = load(c, &dh, "SignKey", "key", &d, &tmp);
			if (lr < 0) {
				rc = lr;
				break;
			}
			if (lr)
				continue;
			kv = json_object_get(d, "key");
			lr = json_is_string(kv) ? lc_hex(json_string_value(kv), json_string_length(kv), pk, sizeof(pk)) : -1;
			json_decref(d);
			if (lr)
				continue; /* a key lama cannot read is no key */
			known++;
			if (c->work >= LAMA_TRUST_MAX_WORK) {
				rc = too_much(c, ph, r);
				break;
			}
			if (!verify_key(c, sig, msg, pk))
				continue;
			rc = profile_trusted(c, ph, &tmp);
			if (rc == 0) {
				rc = memo_add(c, person, pk);
				json_decref(p);
				goto out; /* 0: trusted (or the memo's ENOMEM) */
			}
			if (rc < 0)
				break;
			if (!failed++) {
				char kh[17];

				lama_hex_encode(pk, 8, kh);
				*r = tmp;
				wrap(r, "key %s... in profile %s", kh, hx(ph).s);
			}
			rc = 0;
		}
		json_decref(p);
		if (rc)
			goto out;
	}
	if (c->exhausted)
		rc = too_much(c, sh, r); /* what was not looked at might have counted */
	else if (failed)
		rc = 1;
	else if (known)
		rc = fail(r, LAMA_TRUST_FORGED, sh,
			  "signature %s verifies with none of the %zu known keys of person %s",
			  hx(sh).s, known, hx(person).s);
	else
		rc = fail(r, LAMA_TRUST_UNKNOWN_KEY, person, "no key of person %s is known",
			  hx(person).s);
out:
	hl_release(&profiles);
	return rc;
}

/* Whether a revocation by `issuer` or the root withdraws cert at now:
 * 0 not revoked, 1 revoked (r set), < 0. */
static int revoked(struct vctx *c, const lama_hash *cert, const lama_hash *issuer,
		   struct lama_trust_result *r)
{
	struct hlist revs = {0}, sigs = {0};
	struct lama_trust_result tmp;
	int rc;

	/* A negative check fails closed: a revocation that is not read (a
	 * list cut by a flood, a budget spent on fakes) might be the real one,
	 * so either makes the answer TOO_DEEP, never "not revoked". */
	rc = hl_refs(c, cert, "LamaRevocation", &revs);
	if (!rc && revs.truncated) {
		rc = fail(r, LAMA_TRUST_TOO_DEEP, cert,
			  "more than %d revocations of certificate %s: cannot tell whether it "
			  "is revoked", LAMA_TRUST_MAX_REFS, hx(cert).s);
		goto out;
	}
	for (size_t i = 0; !rc && i < revs.n && !c->exhausted; i++) {
		json_t *o = NULL;
		lama_hash ch, by;
		double t = 0;
		char msg[LAMA_HASH_HEX + 1];
		uint8_t sig[LAMA_SIG_BYTES];

		rc = load(c, &revs.v[i], "LamaRevocation", "revocation", &o, &tmp);
		if (rc > 0) {
			rc = 0; /* a revocation that is not one withdraws nothing */
			continue;
		}
		if (rc)
			break;
		if (get_hash(o, "certificate", &ch) || !lama_hash_eq(&ch, cert) ||
		    get_number(o, "time", &t) != 0 || t > c->now) {
			json_decref(o);
			continue;
		}
		json_decref(o);
		rc = hl_refs(c, &revs.v[i], "Signature", &sigs);
		if (!rc && sigs.truncated) {
			rc = fail(r, LAMA_TRUST_TOO_DEEP, cert,
				  "more than %d signatures on revocation %s of certificate %s: "
				  "cannot tell whether it is revoked", LAMA_TRUST_MAX_REFS,
				  hx(&revs.v[i]).s, hx(cert).s);
			goto out;
		}
		lama_hash_hex(&revs.v[i], msg);
		for (size_t j = 0; !rc && j < sigs.n && !c->exhausted; j++) {
			rc = load_sig(c, &sigs.v[j], &revs.v[i], &by, sig, &tmp);
			if (rc > 0) {
				rc = 0;
				continue;
			}
			if (rc)
				break;
			if (!lama_hash_eq(&by, issuer) && !is_root(c, &by))
				continue;
			rc = signed_by(c, &by, msg, sig, &sigs.v[j], &tmp);
			if (rc == 0) {
				rc = fail(r, LAMA_TRUST_REVOKED, cert,
					  "revoked by person %s from %.0f (revocation %s)", hx(&by).s, t,
					  hx(&revs.v[i]).s);
				goto out;
			}
			if (rc > 0)
				rc = 0;
		}
	}
	if (!rc && c->exhausted)
		rc = fail(r, LAMA_TRUST_TOO_DEEP, cert,
			  "more than %d steps before every revocation of certificate %s was "
			  "checked: cannot tell whether it is revoked", LAMA_TRUST_MAX_WORK,
			  hx(cert).s);
out:
	hl_release(&revs);
	hl_release(&sigs);
	return rc;
}

/* Whether `issuer` may declare trusted keys of `subject`: the root may;
 * others by a right in force (for everybody, or for self when issuer is
 * subject), except for the root's keys. 0, 1 with r, < 0. */
static int has_right(struct vctx *c, const lama_hash *cert, const lama_hash *issuer,
		     const lama_hash *subject, struct lama_trust_result *r)
{
	struct hlist rights = {0};
	struct lama_trust_result tmp;
	int rc = 0, failed = 0;

	if (is_root(c, issuer))
		return 0;
	/* keys for the root would let their holder sign as the root and so
	 * grant rights: only the root declares them */
	if (is_root(c, subject))
		return fail(r, LAMA_TRUST_NO_RIGHT, cert,
			    "person %s may not declare keys of the root; only the root may",
			    hx(issuer).s);
	for (int k = K_EVERYBODY; k <= K_SELF; k++) {
		if (k == K_SELF && !lama_hash_eq(issuer, subject))
			break;
		rc = hl_refs(c, issuer, kinds[k].type, &rights);
		for (size_t i = 0; !rc && i < rights.n; i++) {
			rc = verify_cert(c, &rights.v[i], k, issuer, &tmp);
			if (rc == 0)
				goto out;
			if (rc > 0) {
				if (!failed++) {
					*r = tmp;
					wrap(r, "right of person %s", hx(issuer).s);
				}
				rc = 0;
			}
		}
		if (rc)
			goto out;
	}
	if (failed)
		rc = 1;
	else
		rc = fail(r, LAMA_TRUST_NO_RIGHT, cert,
			  "person %s has no right to declare trusted keys of person %s", hx(issuer).s,
			  hx(subject).s);
out:
	hl_release(&rights);
	return rc;
}

/* One issuer's signature `sh` on cert (val NULL) or on LamaValidity val
 * for it. kind and subject are the certificate's; person is the Profile's
 * person for TrustKeys. 0 (r->issuer set), 1 with r, < 0. */
static int issuance(struct vctx *c, const lama_hash *cert, int kind, const lama_hash *person,
		    const lama_hash *sh, const lama_hash *val, struct lama_trust_result *r)
{
	uint8_t sig[LAMA_SIG_BYTES];
	char msg[LAMA_HASH_HEX + 1];
	lama_hash issuer;
	double nb = 0, na = 0;
	int has_nb = 0, rc;

	rc = load_sig(c, sh, val ? val : cert, &issuer, sig, r);
	if (rc)
		return rc;
	if (val) {
		json_t *v = NULL;
		lama_hash vc;
		int a, b;

		rc = load(c, val, "LamaValidity", "validity", &v, r);
		if (rc)
			return rc;
		a = get_number(v, "notBefore", &nb);
		b = get_number(v, "notAfter", &na);
		if (get_hash(v, "certificate", &vc) || !lama_hash_eq(&vc, cert) || a < 0 || b != 0 ||
		    (a == 0 && nb >= na))
			rc = fail(r, LAMA_TRUST_MALFORMED, val,
				  "validity %s: not a window for this certificate (certificate, "
				  "finite notBefore < notAfter)", hx(val).s);
		has_nb = a == 0;
		json_decref(v);
		if (rc)
			return rc;
	}
	lama_hash_hex(val ? val : cert, msg);
	rc = signed_by(c, &issuer, msg, sig, sh, r);
	if (rc) {
		if (rc > 0)
			wrap(r, "signature %s by person %s", hx(sh).s, hx(&issuer).s);
		return rc;
	}
	if (val && has_nb && c->now < nb)
		return fail(r, LAMA_TRUST_NOT_YET_VALID, cert, "valid only from %.0f (now %.0f)", nb,
			    c->now);
	if (val && c->now >= na)
		return fail(r, LAMA_TRUST_EXPIRED, cert, "expired at %.0f (now %.0f)", na, c->now);
	rc = revoked(c, cert, &issuer, r);
	if (rc)
		return rc;
	if (kind == K_EVERYBODY || kind == K_SELF) {
		if (!is_root(c, &issuer))
			return fail(r, LAMA_TRUST_NO_RIGHT, cert,
				    "issued by person %s: only the root grants rights", hx(&issuer).s);
	} else if (kind == K_TRUSTKEYS) {
		rc = has_right(c, cert, &issuer, person, r);
		if (rc)
			return rc;
	}
	r->reason = LAMA_TRUST_VALID;
	memset(&r->link, 0, sizeof(r->link));
	r->issuer = issuer;
	snprintf(r->message, sizeof(r->message), "valid");
	return 0;
}

/* Whether certificate `cert` is in force. want_kind (-1: any) and
 * want_subject (NULL: any) are what the caller expects it to be.
 * 0 (r->issuer set), 1 with r, < 0. */
static int verify_cert(struct vctx *c, const lama_hash *cert, int want_kind,
		       const lama_hash *want_subject, struct lama_trust_result *r)
{
	struct hlist sigs = {0}, vals = {0};
	struct lama_trust_result tmp;
	json_t *o = NULL;
	lama_hash subject, lic, want_lic, person;
	size_t tried = 0;
	int rc, kind, failed = 0;

	if (spend(c, cert))
		return too_much(c, cert, r);
	for (size_t i = 0; i < c->depth; i++)
		if (lama_hash_eq(&c->stack[i], cert))
			return fail(r, LAMA_TRUST_LOOP, cert,
				    "certificate %s depends on itself (a loop)", hx(cert).s);
	if (c->depth >= LAMA_TRUST_MAX_DEPTH)
		return fail(r, LAMA_TRUST_TOO_DEEP, cert,
			    "certificate %s is more than %d links from the root", hx(cert).s,
			    LAMA_TRUST_MAX_DEPTH);

	rc = load(c, cert, NULL, "certificate", &o, r);
	if (rc)
		return rc;
	kind = kind_of(type_of(o));
	if (kind < 0 || (want_kind >= 0 && kind != want_kind)) {
		rc = fail(r, LAMA_TRUST_MALFORMED, cert, "object %s is a %.64s, not a %s", hx(cert).s,
			  type_of(o), want_kind >= 0 ? kinds[want_kind].type : "certificate");
		goto out;
	}
	rc = lic_get(c, kind, &want_lic);
	if (rc)
		goto out;
	if (get_hash(o, kinds[kind].field, &subject) || get_hash(o, "license", &lic) ||
	    !lama_hash_eq(&lic, &want_lic) || (want_subject && !lama_hash_eq(&subject, want_subject))) {
		rc = fail(r, LAMA_TRUST_MALFORMED, cert,
			  "%s %s: not about the expected object, or not under lama's %s license",
			  kinds[kind].what, hx(cert).s, kinds[kind].license);
		goto out;
	}
	person = subject;
	if (kind == K_TRUSTKEYS) {
		json_t *p = NULL;

		rc = load(c, &subject, "Profile", "profile", &p, r);
		if (rc > 0)
			wrap(r, "%s %s", kinds[kind].what, hx(cert).s);
		if (rc)
			goto out;
		if (get_hash(p, "personId", &person))
			rc = fail(r, LAMA_TRUST_MALFORMED, &subject, "profile %s has no valid personId",
				  hx(&subject).s);
		json_decref(p);
		if (rc)
			goto out;
	}

	c->stack[c->depth++] = *cert;
	rc = hl_refs(c, cert, "Signature", &sigs);
	for (size_t i = 0; !rc && i < sigs.n; i++, tried++) {
		rc = issuance(c, cert, kind, &person, &sigs.v[i], NULL, &tmp);
		if (rc > 0 && !failed++)
			*r = tmp;
		if (rc > 0)
			rc = 0; /* try the next */
		else if (rc == 0)
			goto found;
	}
	if (!rc)
		rc = hl_refs(c, cert, "LamaValidity", &vals);
	for (size_t v = 0; !rc && v < vals.n; v++) {
		rc = hl_refs(c, &vals.v[v], "Signature", &sigs);
		for (size_t i = 0; !rc && i < sigs.n && tried < LAMA_TRUST_MAX_REFS; i++, tried++) {
			rc = issuance(c, cert, kind, &person, &sigs.v[i], &vals.v[v], &tmp);
			if (rc > 0 && !failed++)
				*r = tmp;
			if (rc > 0)
				rc = 0;
			else if (rc == 0)
				goto found;
		}
	}
	c->depth--;
	if (rc)
		goto out;
	if (!failed)
		rc = fail(r, LAMA_TRUST_UNSIGNED, cert, "nobody signed it");
	else
		rc = 1;
	wrap(r, "%s %s", kinds[kind].what, hx(cert).s);
	goto out;
found:
	c->depth--;
	*r = tmp;
	rc = 0;
out:
	json_decref(o);
	hl_release(&sigs);
	hl_release(&vals);
	return rc;
}

static void vctx_init(struct vctx *c, lama_archive *a, const struct lama_trust_root *root,
		      double now)
{
	memset(c, 0, sizeof(*c));
	c->a = a;
	c->root = root;
	c->now = now;
}

static void vctx_release(struct vctx *c)
{
	lama_free(c->memo);
}

static int check_args(const struct lama_trust_root *root, double now)
{
	if (!root || root->nkeys > LAMA_TRUST_ROOT_KEYS)
		return lama_error(LAMA_EINVAL, "no valid root of trust");
	if (!isfinite(now))
		return lama_error(LAMA_EINVAL, "the time must be a finite number");
	return 0;
}

/* Appends text to res->message, cutting what does not fit. */
__attribute__((format(printf, 2, 3))) static void append(struct lama_trust_result *res,
							  const char *fmt, ...)
{
	size_t ml = strlen(res->message);
	va_list ap;

	if (ml + 1 >= sizeof(res->message))
		return;
	va_start(ap, fmt);
	vsnprintf(res->message + ml, sizeof(res->message) - ml, fmt, ap);
	va_end(ap);
}

/* The public answer from an internal one: 0 with res, or the error. Fails
 * closed: once the budget was spent anywhere in the call, the answer is
 * TOO_DEEP whatever was found (a step left out might have been a
 * revocation), with the first failure met kept in the message. */
static int answer(const struct vctx *c, int rc, struct lama_trust_result *res)
{
	char first[LAMA_TRUST_MSG_MAX];

	if (rc < 0)
		return rc;
	if (rc == 0) {
		res->reason = LAMA_TRUST_VALID;
		memset(&res->link, 0, sizeof(res->link));
		snprintf(res->message, sizeof(res->message), "valid");
	}
	if (c->exhausted) {
		if (rc == 0)
			snprintf(first, sizeof(first), "a chain was found");
		else
			snprintf(first, sizeof(first), "%s", res->message);
		fail(res, LAMA_TRUST_TOO_DEEP, &c->exhausted_at,
		     "gave up after %d steps at %s, so no answer is certain (%s)",
		     LAMA_TRUST_MAX_WORK, hx(&c->exhausted_at).s, first);
	}
	res->truncated = c->truncated != 0;
	if (c->truncated && res->reason != LAMA_TRUST_VALID)
		append(res, " [only the first %d %s of %s were read; what was left out may count]",
		       c->trunc_type && !strcmp(c->trunc_type, "personDescription")
			       ? LAMA_TRUST_MAX_DESC
			       : LAMA_TRUST_MAX_REFS,
		       c->trunc_type ? c->trunc_type : "referrers", hx(&c->trunc_of).s);
	return 0;
}

int lama_trust_verify(lama_archive *a, const struct lama_trust_root *root, double now,
		      const lama_hash *cert, struct lama_trust_result *res)
{
	struct vctx c;
	int rc = check_args(root, now);

	if (rc)
		return rc;
	vctx_init(&c, a, root, now);
	rc = verify_cert(&c, cert, -1, NULL, res);
	rc = answer(&c, rc, res);
	vctx_release(&c);
	return rc;
}

int lama_trust_affirmed(lama_archive *a, const struct lama_trust_root *root, double now,
			const lama_hash *obj, struct lama_trust_result *res)
{
	struct hlist certs = {0};
	struct lama_trust_result tmp;
	struct vctx c;
	int rc = check_args(root, now), failed = 0;

	if (rc)
		return rc;
	vctx_init(&c, a, root, now);
	rc = hl_refs(&c, obj, kinds[K_AFFIRM].type, &certs);
	for (size_t i = 0; !rc && i < certs.n; i++) {
		rc = verify_cert(&c, &certs.v[i], K_AFFIRM, obj, &tmp);
		if (rc == 0) {
			*res = tmp;
			goto out;
		}
		if (rc > 0) {
			if (!failed++)
				*res = tmp;
			rc = 0;
		}
	}
	if (rc)
		goto out;
	if (failed)
		rc = 1;
	else
		rc = fail(res, LAMA_TRUST_UNSIGNED, obj, "nobody affirmed object %s", hx(obj).s);
out:
	hl_release(&certs);
	rc = answer(&c, rc, res);
	vctx_release(&c);
	return rc;
}

static void key_add(uint8_t (*keys)[LAMA_SIGN_PK_BYTES], size_t max, size_t *n,
		    const uint8_t pk[LAMA_SIGN_PK_BYTES])
{
	for (size_t i = 0; i < *n && i < max; i++)
		if (!memcmp(keys[i], pk, LAMA_SIGN_PK_BYTES))
			return;
	if (*n < max)
		memcpy(keys[(*n)++], pk, LAMA_SIGN_PK_BYTES);
}

int lama_trust_keys(lama_archive *a, const struct lama_trust_root *root, double now,
		    const lama_hash *person, uint8_t (*keys)[LAMA_SIGN_PK_BYTES], size_t max,
		    size_t *n)
{
	struct hlist profiles = {0};
	struct lama_trust_result tmp;
	struct vctx c;
	int rc = check_args(root, now);

	*n = 0;
	if (rc)
		return rc;
	vctx_init(&c, a, root, now);
	if (is_root(&c, person))
		for (size_t i = 0; i < root->nkeys; i++)
			key_add(keys, max, n, root->keys[i]);
	rc = hl_refs(&c, person, "Profile", &profiles);
	for (size_t i = 0; !rc && i < profiles.n && !c.exhausted; i++) {
		json_t *p = NULL;
		const json_t *desc;
		lama_hash pid;

		rc = load(&c, &profiles.v[i], "Profile", "profile", &p, &tmp);
		if (rc > 0) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		if (get_hash(p, "personId", &pid) || !lama_hash_eq(&pid, person)) {
			json_decref(p);
			continue;
		}
		rc = profile_trusted(&c, &profiles.v[i], &tmp);
		desc = json_object_get(p, "personDescription");
		/* a key is added only when its proof and every load for it fit
		 * the budget: a spent budget leaves keys out, never adds one */
		for (size_t j = 0; rc == 0 && j < json_array_size(desc) && j < LAMA_TRUST_MAX_DESC &&
				   !c.exhausted;
		     j++) {
			const json_t *dv = json_array_get(desc, j), *kv;
			uint8_t pk[LAMA_SIGN_PK_BYTES];
			lama_hash dh;
			json_t *d = NULL;
			int lr;

			if (!json_is_string(dv) ||
			    !lama_hash_hex_valid(json_string_value(dv), json_string_length(dv)))
				continue;
			lama_hash_parse(json_string_value(dv), LAMA_HASH_HEX, &dh);
			lr = load(&c, &dh, "SignKey", "key", &d, &tmp);
			if (lr < 0) {
				rc = lr;
				break;
			}
			if (lr)
				continue;
			kv = json_object_get(d, "key");
			if (!c.exhausted && json_is_string(kv) &&
			    !lc_hex(json_string_value(kv), json_string_length(kv), pk, sizeof(pk)))
				key_add(keys, max, n, pk);
			json_decref(d);
		}
		if (rc > 0)
			rc = 0;
		json_decref(p);
	}
	hl_release(&profiles);
	vctx_release(&c);
	return rc < 0 ? rc : 0;
}

const char *lama_trust_reason_name(enum lama_trust_reason r)
{
	switch (r) {
	case LAMA_TRUST_VALID: return "valid";
	case LAMA_TRUST_EXPIRED: return "expired";
	case LAMA_TRUST_NOT_YET_VALID: return "not yet valid";
	case LAMA_TRUST_REVOKED: return "revoked";
	case LAMA_TRUST_FORGED: return "forged signature";
	case LAMA_TRUST_NO_RIGHT: return "no right";
	case LAMA_TRUST_UNSIGNED: return "unsigned";
	case LAMA_TRUST_LOOP: return "loop";
	case LAMA_TRUST_TOO_DEEP: return "too deep";
	case LAMA_TRUST_MALFORMED: return "malformed";
	case LAMA_TRUST_UNKNOWN_KEY: return "unknown key";
	case LAMA_TRUST_MISSING: return "missing";
	}
	return "unknown reason";
}

/* --- The root --- */

/* The local record of the root's Keys objects: their hashes, 32 bytes
 * each. It lives in the store's sealed key-value records, which only this
 * device writes (peers send objects, never records). */
#define ROOT_RECORD "trust/root"

/* Whether Keys object h (if stored) is the user's and holds the key that
 * made sig over challenge: then its key is added to out (once) and 1 is
 * returned; 0 if not; < 0 when the archive failed. */
static int root_try(lama_archive *a, const lama_hash *h, const uint8_t challenge[32],
		    const uint8_t sig[LAMA_SIG_BYTES], struct lama_trust_root *out)
{
	json_t *o = NULL;
	const json_t *kv;
	lama_hash owner;
	uint8_t pk[LAMA_SIGN_PK_BYTES];
	int rc = lama_archive_get(a, h, &o), hit = 0;

	if (rc == LAMA_ENOTFOUND || rc == LAMA_EINVAL) {
		lama_error_clear();
		return 0;
	}
	if (rc)
		return rc;
	kv = json_object_get(o, "publicSignKey");
	if (!strcmp(type_of(o), "Keys") && !get_hash(o, "owner", &owner) &&
	    lama_hash_eq(&owner, &out->person) && json_is_string(kv) &&
	    !lc_hex(json_string_value(kv), json_string_length(kv), pk, sizeof(pk)) &&
	    lama_verify(sig, challenge, 32, pk) == 0) {
		hit = 1;
		for (size_t i = 0; i < out->nkeys; i++)
			if (!memcmp(out->keys[i], pk, sizeof(pk)))
				hit = 2;
		if (hit == 1 && out->nkeys < LAMA_TRUST_ROOT_KEYS)
			memcpy(out->keys[out->nkeys++], pk, sizeof(pk));
		hit = 1;
	}
	json_decref(o);
	return hit;
}

int lama_trust_root(lama_session *s, struct lama_trust_root *out)
{
	lama_archive *a = lama_session_archive(s);
	lama_store *st = lama_session_store(s);
	struct lama_buf rec = LAMA_BUF_INIT(LAMA_TRUST_ROOT_KEYS * sizeof(lama_hash));
	struct hlist keys = {0};
	lama_hash found[LAMA_TRUST_ROOT_KEYS];
	uint8_t challenge[32], sig[LAMA_SIG_BYTES];
	size_t nfound = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	out->person = *lama_session_person(s);
	lama_random(challenge, sizeof(challenge));
	rc = lama_session_sign(s, 0, challenge, sizeof(challenge), sig);
	if (rc)
		return rc;

	/* By hash, from the record: no referrers read, so no flood matters. */
	rc = lama_store_kv_get(st, ROOT_RECORD, &rec);
	if (rc == LAMA_ENOTFOUND || rc == LAMA_ELIMIT) {
		lama_error_clear();
		rc = 0;
		rec.len = 0;
	}
	for (size_t i = 0; !rc && i + sizeof(lama_hash) <= rec.len; i += sizeof(lama_hash)) {
		lama_hash h;

		memcpy(&h, (const uint8_t *)rec.data + i, sizeof(h));
		rc = root_try(a, &h, challenge, sig, out);
		rc = rc > 0 ? 0 : rc;
	}
	lama_buf_release(&rec);
	if (rc || out->nkeys)
		return rc;

	/* No usable record (the first call, or the record's Keys are gone):
	 * scan the person's Keys referrers, a bounded number, and record what
	 * holds the key. At login, before any sync, only the account's own
	 * Keys are there. */
	rc = hl_read(a, &out->person, "Keys", LAMA_TRUST_ROOT_SCAN, &keys);
	for (size_t i = 0; !rc && i < keys.n && nfound < LAMA_TRUST_ROOT_KEYS; i++) {
		rc = root_try(a, &keys.v[i], challenge, sig, out);
		if (rc > 0) {
			found[nfound++] = keys.v[i];
			rc = 0;
		}
	}
	if (!rc && nfound)
		rc = lama_store_kv_put(st, ROOT_RECORD, found, nfound * sizeof(found[0]));
	if (!rc && !out->nkeys)
		rc = keys.truncated
			     ? lama_error(LAMA_ENOTFOUND,
					  "no Keys object holds the user's signing key among the first "
					  "%d of more Keys naming the user (a flood; the local record "
					  "of the root is missing)", LAMA_TRUST_ROOT_SCAN)
			     : lama_error(LAMA_ENOTFOUND,
					  "no Keys object holds the user's signing key");
	hl_release(&keys);
	return rc;
}

/* --- Issuing --- */

static int session_sign(void *ctx, const void *msg, size_t n, uint8_t sig[LAMA_SIG_BYTES])
{
	return lama_session_sign(ctx, 0, msg, n, sig);
}

void lama_trust_session_signer(lama_session *s, struct lama_trust_signer *out)
{
	out->person = *lama_session_person(s);
	out->sign = session_sign;
	out->ctx = s;
}

static int sk_sign(void *ctx, const void *msg, size_t n, uint8_t sig[LAMA_SIG_BYTES])
{
	lama_sign(sig, msg, n, ctx);
	return 0;
}

void lama_trust_sk_signer(const lama_hash *person, const uint8_t sk[LAMA_SIGN_SK_BYTES],
			  struct lama_trust_signer *out)
{
	out->person = *person;
	out->sign = sk_sign;
	out->ctx = (void *)sk;
}

/* What one issue stores, in order: each object and its hash. */
#define ISSUE_MAX 4
struct issue {
	json_t *o[ISSUE_MAX];
	lama_hash h[ISSUE_MAX];
	size_t n;
	size_t cert; /* index of the certificate (or revocation) */
};

static void issue_release(struct issue *is)
{
	for (size_t i = 0; i < is->n; i++)
		json_decref(is->o[i]);
	is->n = 0;
}

/* Appends obj (taken over, may be NULL for ENOMEM) and hashes it. */
static int issue_add(lama_archive *a, struct issue *is, json_t *obj)
{
	if (!obj)
		return lama_error(LAMA_ENOMEM, "out of memory");
	is->o[is->n] = obj;
	is->n++;
	return lama_object_hash(lama_archive_recipes(a), obj, &is->h[is->n - 1], NULL);
}

/* Adds the Signature by s over data. */
static int issue_sign(lama_archive *a, struct issue *is, const struct lama_trust_signer *s,
		      const lama_hash *data)
{
	char dhex[LAMA_HASH_HEX + 1], ihex[LAMA_HASH_HEX + 1], shex[LAMA_TRUST_SIG_HEX + 1];
	uint8_t sig[LAMA_SIG_BYTES];
	int rc;

	lama_hash_hex(data, dhex);
	lama_hash_hex(&s->person, ihex);
	rc = s->sign(s->ctx, dhex, LAMA_HASH_HEX, sig);
	if (rc)
		return rc;
	lama_hex_encode(sig, sizeof(sig), shex);
	return issue_add(a, is,
			 json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Signature", "issuer", ihex,
				   "data", dhex, "signature", shex));
}

static int check_window(const struct lama_trust_validity *v)
{
	if (v && (!isfinite(v->not_before) || !isfinite(v->not_after) || v->not_before < 0 ||
		  v->not_after <= v->not_before))
		return lama_error(LAMA_EINVAL,
				  "a validity window needs finite times, notBefore >= 0 and "
				  "notAfter > notBefore");
	return 0;
}

/* Builds License, certificate, [LamaValidity,] Signature. */
static int issue_build(lama_archive *a, const struct lama_trust_signer *s, int kind,
		       const lama_hash *subject, const struct lama_trust_validity *v,
		       struct issue *is)
{
	char shex[LAMA_HASH_HEX + 1], lhex[LAMA_HASH_HEX + 1], chex[LAMA_HASH_HEX + 1];
	int rc;

	memset(is, 0, sizeof(*is));
	rc = check_window(v);
	if (!rc)
		rc = issue_add(a, is, license_json(kind));
	if (rc)
		return rc;
	lama_hash_hex(subject, shex);
	lama_hash_hex(&is->h[0], lhex);
	is->cert = 1;
	rc = issue_add(a, is, json_pack("{s:s, s:s, s:s}", "$type$", kinds[kind].type,
					kinds[kind].field, shex, "license", lhex));
	if (rc)
		return rc;
	if (v) {
		json_t *val;

		lama_hash_hex(&is->h[1], chex);
		val = json_pack("{s:s, s:s, s:f}", "$type$", "LamaValidity", "certificate", chex,
				"notAfter", v->not_after);
		if (val && v->not_before > 0 && json_object_set_new(val, "notBefore",
								     json_real(v->not_before))) {
			json_decref(val);
			val = NULL;
		}
		rc = issue_add(a, is, val);
		if (rc)
			return rc;
	}
	return issue_sign(a, is, s, &is->h[is->n - 1]);
}

/* Stores everything built, in one transaction. */
static int issue_store(lama_archive *a, struct issue *is, lama_hash *out)
{
	lama_store *st = lama_archive_store(a);
	int rc = lama_store_begin(st);

	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < is->n; i++)
		rc = lama_archive_put(a, is->o[i], 0, NULL);
	if (rc) {
		lama_store_rollback(st);
		return rc;
	}
	rc = lama_store_commit(st);
	if (!rc && out)
		*out = is->h[is->cert];
	return rc;
}

static int issue(lama_archive *a, const struct lama_trust_signer *s, int kind,
		 const lama_hash *subject, const struct lama_trust_validity *v, lama_hash *cert)
{
	struct issue is;
	int rc = issue_build(a, s, kind, subject, v, &is);

	if (!rc)
		rc = issue_store(a, &is, cert);
	issue_release(&is);
	return rc;
}

int lama_trust_sign(lama_archive *a, const struct lama_trust_signer *s, const lama_hash *data,
		    lama_hash *signature)
{
	struct issue is;
	int rc;

	memset(&is, 0, sizeof(is));
	rc = issue_sign(a, &is, s, data);
	if (!rc)
		rc = issue_store(a, &is, signature);
	issue_release(&is);
	return rc;
}

int lama_trust_affirm(lama_archive *a, const struct lama_trust_signer *s, const lama_hash *data,
		      const struct lama_trust_validity *v, lama_hash *cert)
{
	return issue(a, s, K_AFFIRM, data, v, cert);
}

/* 0 if h names a stored object of `type` (NULL: any certificate kind). */
static int expect_stored(lama_archive *a, const lama_hash *h, const char *type)
{
	json_t *o = NULL;
	int rc = lama_archive_get(a, h, &o);

	if (!rc && (type ? strcmp(type_of(o), type) != 0 : kind_of(type_of(o)) < 0))
		rc = lama_error(LAMA_EINVAL, "object %s is a %.64s, not a %s", hx(h).s, type_of(o),
				type ? type : "certificate");
	json_decref(o);
	return rc;
}

int lama_trust_certify_keys(lama_archive *a, const struct lama_trust_signer *s,
			    const lama_hash *profile, const struct lama_trust_validity *v,
			    lama_hash *cert)
{
	int rc = expect_stored(a, profile, "Profile");

	return rc ? rc : issue(a, s, K_TRUSTKEYS, profile, v, cert);
}

int lama_trust_grant_right(lama_archive *a, const struct lama_trust_signer *s,
			   const lama_hash *beneficiary, enum lama_trust_right kind,
			   const struct lama_trust_validity *v, lama_hash *cert)
{
	if (kind != LAMA_TRUST_RIGHT_EVERYBODY && kind != LAMA_TRUST_RIGHT_SELF)
		return lama_error(LAMA_EINVAL, "no such right");
	return issue(a, s, kind == LAMA_TRUST_RIGHT_SELF ? K_SELF : K_EVERYBODY, beneficiary, v,
		     cert);
}

#define REASON_MAX 1024

int lama_trust_revoke(lama_archive *a, const struct lama_trust_signer *s, const lama_hash *cert,
		      double time, const char *reason, lama_hash *revocation)
{
	char chex[LAMA_HASH_HEX + 1];
	struct issue is;
	json_t *r;
	int rc;

	if (time == 0)
		time = lama_archive_now();
	if (!isfinite(time) || time < 0)
		return lama_error(LAMA_EINVAL, "the revocation time must be a finite number >= 0");
	if (reason && strlen(reason) > REASON_MAX)
		return lama_error(LAMA_ELIMIT, "a revocation reason is at most %d bytes", REASON_MAX);
	rc = expect_stored(a, cert, NULL);
	if (rc)
		return rc;
	memset(&is, 0, sizeof(is));
	lama_hash_hex(cert, chex);
	r = json_pack("{s:s, s:s, s:f}", "$type$", "LamaRevocation", "certificate", chex, "time",
		      time);
	if (r && reason) {
		json_t *t = json_string(reason);

		if (!t) {
			json_decref(r);
			return lama_error(LAMA_EINVAL, "the revocation reason is not UTF-8 text");
		}
		if (json_object_set_new(r, "reason", t)) {
			json_decref(r);
			r = NULL;
		}
	}
	rc = issue_add(a, &is, r);
	if (!rc)
		rc = issue_sign(a, &is, s, &is.h[0]);
	if (!rc)
		rc = issue_store(a, &is, revocation);
	issue_release(&is);
	return rc;
}

int lama_trust_setup(lama_session *s)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_trust_signer me;
	struct issue is;
	int rc;

	struct lama_trust_root root;

	/* finds the root's Keys once, at login, and records them (see
	 * lama_trust_root): later floods of Keys naming the user cost nothing */
	rc = lama_trust_root(s, &root);
	if (rc)
		return rc;
	lama_trust_session_signer(s, &me);
	rc = issue_build(a, &me, K_EVERYBODY, &me.person, NULL, &is);
	/* Ed25519 signatures are deterministic: once the Signature is stored,
	 * everything before it is too, and there is nothing to write */
	if (!rc) {
		rc = lama_store_has(lama_session_store(s), &is.h[is.n - 1]);
		if (rc == 0)
			rc = issue_store(a, &is, NULL);
		else if (rc > 0)
			rc = 0;
	}
	issue_release(&is);
	return rc;
}
