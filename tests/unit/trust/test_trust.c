/* test_trust.c: certificate chains from the root of trust, and every way a
 * chain fails, each with its reason code and the failing link. Identities
 * other than the user are made here: a key pair, a Person, a SignKey and a
 * Profile written straight into the archive. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>

#include "testutil.h"
#include "account/account.h"
#include "archive/archive.h"
#include "store/store.h"
#include "trust/trust.h"
#include "util/err.h"
#include "util/mem.h"

#define NOW 1700000000000.0

static char dir[4096];
static lama_recipes *rec;
static lama_store *st;
static lama_archive *ar;

struct ident {
	lama_hash person;
	lama_hash profile; /* object hash of its Profile */
	uint8_t pk[LAMA_SIGN_PK_BYTES], sk[LAMA_SIGN_SK_BYTES];
	struct lama_trust_signer s;
};

static struct ident root;
static struct lama_trust_root troot;

static json_t *jload(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, LAMA_JSON_FLAGS, &err);

	if (!j)
		fail_msg("bad test JSON: %s", err.text);
	return j;
}

/* Stores obj (taken over); returns its object hash. */
static lama_hash put(json_t *obj)
{
	struct lama_put_info info;

	assert_non_null(obj);
	if (lama_archive_put(ar, obj, 0, &info))
		fail_msg("put: %s", lama_errmsg());
	json_decref(obj);
	return info.hash;
}

static const char *hexs(const lama_hash *h)
{
	static char buf[4][LAMA_HASH_HEX + 1];
	static int i;

	i = (i + 1) % 4;
	lama_hash_hex(h, buf[i]);
	return buf[i];
}

/* A profile of person p holding signing key pk. */
static lama_hash put_profile(const lama_hash *p, const char *profile_id, const uint8_t pk[32])
{
	char khex[65];
	lama_hash sk;

	lama_hex_encode(pk, 32, khex);
	sk = put(json_pack("{s:s, s:s}", "$type$", "SignKey", "key", khex));
	return put(json_pack("{s:s, s:s, s:s, s:s, s:[], s:[s]}", "$type$", "Profile", "profileId",
			     profile_id, "personId", hexs(p), "owner", hexs(p),
			     "communicationEndpoint", "personDescription", hexs(&sk)));
}

static void mk_ident(struct ident *id, const char *email)
{
	struct lama_put_info info;
	json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", email);

	assert_int_equal(lama_sign_keypair(id->pk, id->sk), 0);
	assert_int_equal(lama_archive_put(ar, p, 0, &info), 0);
	json_decref(p);
	id->person = info.id_hash;
	id->profile = put_profile(&id->person, "default", id->pk);
	lama_trust_sk_signer(&id->person, id->sk, &id->s);
}

static int setup(void **state)
{
	uint8_t enc[32], idx[32];
	char path[4200];

	(void)state;
	assert_int_equal(lama_crypto_init(), 0);
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/a.db", dir);
	lama_random(enc, 32);
	lama_random(idx, 32);
	assert_int_equal(lama_recipes_new(&rec), 0);
	assert_int_equal(lama_recipes_add_builtin(rec), 0);
	assert_int_equal(lama_store_open(&st, path, enc, idx, LAMA_STORE_CREATE), 0);
	assert_int_equal(lama_archive_new(&ar, st, rec), 0);
	mk_ident(&root, "root@example.org");
	memset(&troot, 0, sizeof(troot));
	troot.person = root.person;
	troot.nkeys = 1;
	memcpy(troot.keys[0], root.pk, 32);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lama_archive_free(ar);
	lama_store_close(st);
	lama_recipes_free(rec);
	tu_rmtree(dir);
	return 0;
}

/* Some object to vouch for. */
static lama_hash thing(const char *name)
{
	return put(json_pack("{s:s, s:s}", "$type$", "PersonName", "name", name));
}

static struct lama_trust_result affirmed(const lama_hash *obj, double now)
{
	struct lama_trust_result r;

	if (lama_trust_affirmed(ar, &troot, now, obj, &r))
		fail_msg("affirmed: %s", lama_errmsg());
	return r;
}

static struct lama_trust_result verify(const lama_hash *cert, double now)
{
	struct lama_trust_result r;

	if (lama_trust_verify(ar, &troot, now, cert, &r))
		fail_msg("verify: %s", lama_errmsg());
	return r;
}

#define assert_reason(res, want)                                                               \
	do {                                                                                   \
		struct lama_trust_result r_ = (res);                                           \
		if (r_.reason != (want))                                                       \
			fail_msg("reason %s, expected %s: %s", lama_trust_reason_name(r_.reason), \
				 lama_trust_reason_name(want), r_.message);                    \
	} while (0)

static void assert_link(const struct lama_trust_result *r, const lama_hash *want)
{
	if (!lama_hash_eq(&r->link, want))
		fail_msg("failing link %s, expected %s (%s)", hexs(&r->link), hexs(want), r->message);
}

static lama_hash certify(struct ident *by, const lama_hash *profile,
			 const struct lama_trust_validity *v)
{
	lama_hash c;

	if (lama_trust_certify_keys(ar, &by->s, profile, v, &c))
		fail_msg("certify: %s", lama_errmsg());
	return c;
}

static lama_hash grant(struct ident *by, const lama_hash *to, enum lama_trust_right k)
{
	lama_hash c;

	if (lama_trust_grant_right(ar, &by->s, to, k, NULL, &c))
		fail_msg("grant: %s", lama_errmsg());
	return c;
}

static lama_hash affirm(struct ident *by, const lama_hash *obj)
{
	lama_hash c;

	if (lama_trust_affirm(ar, &by->s, obj, NULL, &c))
		fail_msg("affirm: %s", lama_errmsg());
	return c;
}

/* A trusted delegate: root certifies its keys and grants it the right for
 * everybody. */
static void delegate(struct ident *id, const char *email)
{
	mk_ident(id, email);
	certify(&root, &id->profile, NULL);
	grant(&root, &id->person, LAMA_TRUST_RIGHT_EVERYBODY);
}

/* Counts referrers, keeping the last. */
struct count {
	lama_hash last;
	int n;
};

static int count_cb(void *ctx, const char *type, const lama_hash *src)
{
	struct count *c = ctx;

	(void)type;
	c->last = *src;
	c->n++;
	return 0;
}

static struct count refs(lama_archive *a, const lama_hash *h, const char *type)
{
	struct count c = {.n = 0};

	assert_int_equal(lama_archive_referrers(a, h, type, count_cb, &c), 0);
	return c;
}

/* The only Signature referring to h. */
static lama_hash only_sig(const lama_hash *h)
{
	struct count c = refs(ar, h, "Signature");

	assert_int_equal(c.n, 1);
	return c.last;
}

/* --- tests --- */

/* root -> (A's keys, right for A) -> A trusts B's keys -> B affirms X */
static void test_valid_chain(void **state)
{
	struct ident a, b, e;
	struct lama_trust_result r;
	uint8_t keys[4][32];
	size_t n;
	lama_hash x, ab, aff;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	mk_ident(&e, "e@example.org");
	x = thing("x");
	/* nothing yet */
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_UNSIGNED);
	ab = certify(&a, &b.profile, NULL);
	aff = affirm(&b, &x);

	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_VALID);
	assert_true(lama_hash_eq(&r.issuer, &b.person));
	assert_string_equal(r.message, "valid");
	r = verify(&aff, NOW);
	assert_reason(r, LAMA_TRUST_VALID);
	r = verify(&ab, NOW);
	assert_reason(r, LAMA_TRUST_VALID);
	assert_true(lama_hash_eq(&r.issuer, &a.person));

	/* trusted keys: root's own, A's and B's certified ones, none of E's */
	assert_int_equal(lama_trust_keys(ar, &troot, NOW, &root.person, keys, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(keys[0], root.pk, 32);
	assert_int_equal(lama_trust_keys(ar, &troot, NOW, &b.person, keys, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(keys[0], b.pk, 32);
	assert_int_equal(lama_trust_keys(ar, &troot, NOW, &a.person, keys, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(keys[0], a.pk, 32);
	assert_int_equal(lama_trust_keys(ar, &troot, NOW, &e.person, keys, 4, &n), 0);
	assert_int_equal(n, 0);
	/* E (keys unknown to the chain) affirming Y is not enough */
	{
		lama_hash y = thing("y");

		affirm(&e, &y);
		r = affirmed(&y, NOW);
		assert_reason(r, LAMA_TRUST_UNSIGNED);
		assert_link(&r, &e.profile);
	}
	/* issuing again changes nothing */
	assert_true(lama_hash_eq(&aff, &(lama_hash){0}) == 0);
	{
		lama_hash again = affirm(&b, &x);

		assert_true(lama_hash_eq(&again, &aff));
		only_sig(&aff);
	}
}

/* A window [NOW-1000, NOW+1000) on A's certificate of B's keys */
static void test_expiry_window(void **state)
{
	struct ident a, b;
	struct lama_trust_validity v = {NOW - 1000, NOW + 1000};
	struct lama_trust_result r;
	lama_hash x, ab;
	int nsig = 0;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	x = thing("x");
	ab = certify(&a, &b.profile, &v);
	affirm(&b, &x);

	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);
	assert_reason(affirmed(&x, NOW + 999), LAMA_TRUST_VALID);
	r = affirmed(&x, NOW + 1000);
	assert_reason(r, LAMA_TRUST_EXPIRED);
	assert_link(&r, &ab);
	assert_non_null(strstr(r.message, "expired at"));
	r = affirmed(&x, NOW - 1001);
	assert_reason(r, LAMA_TRUST_NOT_YET_VALID);
	assert_link(&r, &ab);
	r = verify(&ab, NOW + 5000);
	assert_reason(r, LAMA_TRUST_EXPIRED);

	/* the expiry cannot be stripped: A never signed the bare certificate */
	nsig = refs(ar, &ab, "Signature").n;
	assert_int_equal(nsig, 0);

	/* a bad window is refused when issuing */
	struct lama_trust_validity bad = {NOW, NOW};
	assert_int_equal(lama_trust_certify_keys(ar, &a.s, &b.profile, &bad, NULL), LAMA_EINVAL);
	bad.not_after = NAN;
	assert_int_equal(lama_trust_certify_keys(ar, &a.s, &b.profile, &bad, NULL), LAMA_EINVAL);
}

static void test_revoked(void **state)
{
	struct ident a, b, e;
	struct lama_trust_result r;
	lama_hash x, ab, rev;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	delegate(&e, "e@example.org");
	x = thing("x");
	ab = certify(&a, &b.profile, NULL);
	affirm(&b, &x);

	/* by someone else (even a trusted delegate, even B): no effect */
	assert_int_equal(lama_trust_revoke(ar, &e.s, &ab, NOW - 10, "not mine", NULL), 0);
	assert_int_equal(lama_trust_revoke(ar, &b.s, &ab, NOW - 10, NULL, NULL), 0);
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);

	/* by the issuer, from NOW+100 on */
	assert_int_equal(lama_trust_revoke(ar, &a.s, &ab, NOW + 100, "key lost", &rev), 0);
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);
	r = affirmed(&x, NOW + 100);
	assert_reason(r, LAMA_TRUST_REVOKED);
	assert_link(&r, &ab);
	assert_non_null(strstr(r.message, hexs(&a.person)) ? "" : strstr(r.message, "revoked by"));
	r = verify(&ab, NOW + 200);
	assert_reason(r, LAMA_TRUST_REVOKED);
	/* A's revocation withdraws only A's signature: the root signing the
	 * same certificate carries it again */
	{
		lama_hash again = certify(&root, &b.profile, NULL);

		assert_true(lama_hash_eq(&again, &ab));
		r = verify(&ab, NOW + 200);
		assert_reason(r, LAMA_TRUST_VALID);
		assert_true(lama_hash_eq(&r.issuer, &root.person));
		assert_reason(affirmed(&x, NOW + 200), LAMA_TRUST_VALID);
	}

	/* revoking an unknown certificate is refused */
	assert_int_equal(lama_trust_revoke(ar, &a.s, &x, 0, NULL, NULL), LAMA_EINVAL);
	{
		lama_hash none;

		memset(&none, 7, sizeof(none));
		assert_int_equal(lama_trust_revoke(ar, &a.s, &none, 0, NULL, NULL), LAMA_ENOTFOUND);
	}
}

static void test_revoked_by_root(void **state)
{
	struct ident a, b;
	struct lama_trust_result r;
	lama_hash x, ab, ra;

	(void)state;
	mk_ident(&a, "a@example.org");
	certify(&root, &a.profile, NULL);
	ra = grant(&root, &a.person, LAMA_TRUST_RIGHT_EVERYBODY);
	mk_ident(&b, "b@example.org");
	x = thing("x");
	ab = certify(&a, &b.profile, NULL);
	affirm(&b, &x);
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);

	/* the root withdraws A's certificate of B */
	assert_int_equal(lama_trust_revoke(ar, &root.s, &ab, NOW - 1, NULL, NULL), 0);
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_REVOKED);
	assert_link(&r, &ab);

	/* a certificate names no issuer: every issuer's signature on it is the
	 * same certificate, and the root's revocation withdraws them all, the
	 * root's own signature included */
	{
		lama_hash again = certify(&root, &b.profile, NULL);

		assert_true(lama_hash_eq(&again, &ab));
		assert_reason(affirmed(&x, NOW), LAMA_TRUST_REVOKED);
	}

	/* the root revokes A's right: A's other certificates fall */
	{
		struct ident c;
		lama_hash y, ac;

		mk_ident(&c, "c@example.org");
		y = thing("y");
		ac = certify(&a, &c.profile, NULL);
		affirm(&c, &y);
		assert_reason(affirmed(&y, NOW), LAMA_TRUST_VALID);
		assert_int_equal(lama_trust_revoke(ar, &root.s, &ra, NOW - 1, "no longer", NULL), 0);
		r = affirmed(&y, NOW);
		assert_reason(r, LAMA_TRUST_REVOKED);
		assert_link(&r, &ra);
		r = verify(&ac, NOW);
		assert_reason(r, LAMA_TRUST_REVOKED);
	}
}

/* A signer that signs with the right key, then flips one bit */
static int flip_sign(void *ctx, const void *msg, size_t n, uint8_t sig[LAMA_SIG_BYTES])
{
	lama_sign(sig, msg, n, ctx);
	sig[10] ^= 0x10; /* one hex digit of the 128 */
	return 0;
}

static void test_forged(void **state)
{
	struct ident a, b, e;
	struct lama_trust_signer s;
	struct lama_trust_result r;
	lama_hash x, y, z, c;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	mk_ident(&e, "e@example.org");
	certify(&a, &b.profile, NULL);

	/* one hex digit flipped */
	x = thing("x");
	s = b.s;
	s.sign = flip_sign;
	assert_int_equal(lama_trust_affirm(ar, &s, &x, NULL, &c), 0);
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_FORGED);
	{
		lama_hash sh = only_sig(&c);

		assert_link(&r, &sh);
	}

	/* signed by E's key, claiming to be B */
	y = thing("y");
	lama_trust_sk_signer(&b.person, e.sk, &s);
	assert_int_equal(lama_trust_affirm(ar, &s, &y, NULL, &c), 0);
	r = affirmed(&y, NOW);
	assert_reason(r, LAMA_TRUST_FORGED);

	/* claiming to be the root, with a key that is not the root's */
	z = thing("z");
	lama_trust_sk_signer(&root.person, e.sk, &s);
	assert_int_equal(lama_trust_affirm(ar, &s, &z, NULL, &c), 0);
	r = affirmed(&z, NOW);
	assert_reason(r, LAMA_TRUST_FORGED);
	/* a forged right from the root gives E nothing */
	lama_trust_sk_signer(&root.person, e.sk, &s);
	assert_int_equal(lama_trust_grant_right(ar, &s, &e.person, LAMA_TRUST_RIGHT_EVERYBODY,
						NULL, &c), 0);
	assert_reason(verify(&c, NOW), LAMA_TRUST_FORGED);
}

/* Signature objects put by hand: upper case, short, long */
static void test_signature_text(void **state)
{
	struct ident a;
	uint8_t sig[64];
	char dhex[65], shex[129];
	lama_hash x, c, lic;
	json_t *co;

	(void)state;
	delegate(&a, "a@example.org");
	/* the license of a genuine affirmation, for a certificate nobody signed */
	x = thing("x");
	c = affirm(&a, &x);
	assert_int_equal(lama_archive_get(ar, &c, &co), 0);
	assert_int_equal(lama_hash_parse(json_string_value(json_object_get(co, "license")), 64, &lic), 0);
	json_decref(co);
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);

	const char *bad[] = {"upper", "short", "odd-extra"};
	for (int i = 0; i < 3; i++) {
		lama_hash y = thing(bad[i]), cert, sh;
		struct lama_trust_result r;
		char text[140];

		cert = put(json_pack("{s:s, s:s, s:s}", "$type$", "AffirmationCertificate", "data",
				     hexs(&y), "license", hexs(&lic)));
		lama_hash_hex(&cert, dhex);
		lama_sign(sig, dhex, 64, a.sk);
		lama_hex_encode(sig, 64, shex);
		snprintf(text, sizeof(text), "%s", shex);
		if (i == 0)
			for (char *p = text; *p; p++)
				*p = (char)toupper((unsigned char)*p);
		else if (i == 1)
			text[126] = '\0';
		else
			strcat(text, "00");
		sh = put(json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Signature", "issuer",
				   hexs(&a.person), "data", dhex, "signature", text));
		r = affirmed(&y, NOW);
		assert_reason(r, LAMA_TRUST_FORGED);
		assert_link(&r, &sh);
		/* the correct text next to it makes it valid */
		put(json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Signature", "issuer",
			      hexs(&a.person), "data", dhex, "signature", shex));
		assert_reason(affirmed(&y, NOW), LAMA_TRUST_VALID);
	}
}

static void test_wrong_signer(void **state)
{
	struct ident a, e, d, f;
	struct lama_trust_result r;
	lama_hash x, ed, ae, f2, fd, d2;
	uint8_t pk2[32], sk2[64];

	(void)state;
	/* E: keys trusted by the root, but no right */
	mk_ident(&e, "e@example.org");
	certify(&root, &e.profile, NULL);
	mk_ident(&d, "d@example.org");
	x = thing("x");
	ed = certify(&e, &d.profile, NULL);
	affirm(&d, &x);
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_NO_RIGHT);
	assert_link(&r, &ed);

	/* A right granted by A (a delegate, not the root) does not count */
	delegate(&a, "a@example.org");
	ae = grant(&a, &e.person, LAMA_TRUST_RIGHT_EVERYBODY);
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_NO_RIGHT);
	assert_link(&r, &ae);
	r = verify(&ae, NOW);
	assert_reason(r, LAMA_TRUST_NO_RIGHT);

	/* F holds the right for self: its own second key yes, D's keys no */
	mk_ident(&f, "f@example.org");
	certify(&root, &f.profile, NULL);
	grant(&root, &f.person, LAMA_TRUST_RIGHT_SELF);
	assert_int_equal(lama_sign_keypair(pk2, sk2), 0);
	f2 = put_profile(&f.person, "laptop", pk2);
	d2 = put_profile(&d.person, "second", d.pk);
	assert_reason(verify(&(lama_hash){0}, NOW), LAMA_TRUST_MISSING);
	{
		lama_hash c = certify(&f, &f2, NULL), y = thing("y");
		struct lama_trust_signer s2;
		uint8_t keys[4][32];
		size_t n;

		assert_reason(verify(&c, NOW), LAMA_TRUST_VALID);
		lama_trust_sk_signer(&f.person, sk2, &s2);
		assert_int_equal(lama_trust_affirm(ar, &s2, &y, NULL, NULL), 0);
		assert_reason(affirmed(&y, NOW), LAMA_TRUST_VALID);
		assert_int_equal(lama_trust_keys(ar, &troot, NOW, &f.person, keys, 4, &n), 0);
		assert_int_equal(n, 2);
	}
	/* (a certificate names no issuer, so F certifying d.profile would be
	 * E's certificate again: F certifies another profile of D) */
	fd = certify(&f, &d2, NULL);
	r = verify(&fd, NOW);
	assert_reason(r, LAMA_TRUST_NO_RIGHT);
	assert_link(&r, &fd);
	/* a right for self granted to someone else is not a right for D */
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_NO_RIGHT);

	/* A (right for everybody) declares a key of its own choosing for the
	 * root, then "the root" grants D a right with it: refused, only the
	 * root declares the root's keys */
	{
		uint8_t pk3[32], sk3[64];
		lama_hash rp, rightd;
		struct lama_trust_signer fake;

		assert_int_equal(lama_sign_keypair(pk3, sk3), 0);
		rp = put_profile(&root.person, "stolen", pk3);
		lama_hash rc3 = certify(&a, &rp, NULL);
		lama_trust_sk_signer(&root.person, sk3, &fake);
		assert_int_equal(lama_trust_grant_right(ar, &fake, &d.person, LAMA_TRUST_RIGHT_EVERYBODY,
							NULL, &rightd), 0);
		r = verify(&rightd, NOW);
		assert_reason(r, LAMA_TRUST_NO_RIGHT);
		assert_link(&r, &rc3);
		r = verify(&rc3, NOW);
		assert_reason(r, LAMA_TRUST_NO_RIGHT);
		/* the root itself may add a key of its own */
		certify(&root, &rp, NULL);
		assert_reason(verify(&rightd, NOW), LAMA_TRUST_VALID);
	}
}

static void test_unsigned(void **state)
{
	struct ident a, b;
	struct lama_trust_result r;
	lama_hash x, lic, cert;
	json_t *co;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	x = thing("x");
	affirm(&b, &x);
	/* no certificate for B's profile at all */
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_UNSIGNED);
	assert_link(&r, &b.profile);

	/* a TrustKeys certificate for it that nobody signed */
	cert = certify(&a, &a.profile, NULL); /* to learn the license */
	assert_int_equal(lama_archive_get(ar, &cert, &co), 0);
	assert_int_equal(lama_hash_parse(json_string_value(json_object_get(co, "license")), 64, &lic), 0);
	json_decref(co);
	cert = put(json_pack("{s:s, s:s, s:s}", "$type$", "TrustKeysCertificate", "profile",
			     hexs(&b.profile), "license", hexs(&lic)));
	r = verify(&cert, NOW);
	assert_reason(r, LAMA_TRUST_UNSIGNED);
	assert_link(&r, &cert);
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_UNSIGNED);
	assert_link(&r, &cert);
	/* a plain Signature by A makes it A's certificate */
	assert_int_equal(lama_trust_sign(ar, &a.s, &cert, NULL), 0);
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);
}

static void test_loop(void **state)
{
	struct ident a, b;
	struct lama_trust_result r;
	lama_hash x;

	(void)state;
	/* both hold rights from the root, but their keys certify each other */
	mk_ident(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	grant(&root, &a.person, LAMA_TRUST_RIGHT_EVERYBODY);
	grant(&root, &b.person, LAMA_TRUST_RIGHT_EVERYBODY);
	certify(&a, &b.profile, NULL);
	certify(&b, &a.profile, NULL);
	x = thing("x");
	affirm(&b, &x);
	r = affirmed(&x, NOW);
	assert_reason(r, LAMA_TRUST_LOOP);
	assert_non_null(strstr(r.message, "loop"));
	/* the loop is broken once the root certifies one of them */
	certify(&root, &a.profile, NULL);
	assert_reason(affirmed(&x, NOW), LAMA_TRUST_VALID);
}

static void test_too_deep(void **state)
{
	struct ident p[LAMA_TRUST_MAX_DEPTH];
	struct lama_trust_result r;
	lama_hash x[LAMA_TRUST_MAX_DEPTH];

	(void)state;
	/* p[0] certified by the root, p[i] by p[i-1]; each has the right; each
	 * affirms x[i]. The affirmation of x[i] is 1 + (i + 1) links deep. */
	for (int i = 0; i < LAMA_TRUST_MAX_DEPTH; i++) {
		char email[64];

		snprintf(email, sizeof(email), "p%d@example.org", i);
		mk_ident(&p[i], email);
		grant(&root, &p[i].person, LAMA_TRUST_RIGHT_EVERYBODY);
		certify(i ? &p[i - 1] : &root, &p[i].profile, NULL);
		x[i] = thing(email);
		affirm(&p[i], &x[i]);
	}
	for (int i = 0; i < LAMA_TRUST_MAX_DEPTH; i++) {
		r = affirmed(&x[i], NOW);
		if (i + 2 <= LAMA_TRUST_MAX_DEPTH)
			assert_reason(r, LAMA_TRUST_VALID);
		else
			assert_reason(r, LAMA_TRUST_TOO_DEEP);
	}
}

static void test_malformed(void **state)
{
	struct ident a, b;
	struct lama_trust_result r;
	lama_hash x, lic, cert, v, person_obj, missing;
	char chex[65], shex[129];
	uint8_t sig[64];
	json_t *co;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	x = thing("x");
	cert = certify(&a, &b.profile, NULL);
	assert_int_equal(lama_archive_get(ar, &cert, &co), 0);
	assert_int_equal(lama_hash_parse(json_string_value(json_object_get(co, "license")), 64, &lic), 0);
	json_decref(co);

	/* not a certificate */
	r = verify(&x, NOW);
	assert_reason(r, LAMA_TRUST_MALFORMED);
	assert_link(&r, &x);
	memset(&missing, 0x5a, sizeof(missing));
	assert_reason(verify(&missing, NOW), LAMA_TRUST_MISSING);

	/* a certificate under another license */
	person_obj = put(json_pack("{s:s, s:s, s:s}", "$type$", "License", "name", "TrustKeys",
				   "description", "something else"));
	cert = put(json_pack("{s:s, s:s, s:s}", "$type$", "TrustKeysCertificate", "profile",
			     hexs(&b.profile), "license", hexs(&person_obj)));
	assert_int_equal(lama_trust_sign(ar, &a.s, &cert, NULL), 0);
	assert_reason(verify(&cert, NOW), LAMA_TRUST_MALFORMED);

	/* a trust-keys certificate of a profile that is not there */
	cert = put(json_pack("{s:s, s:s, s:s}", "$type$", "TrustKeysCertificate", "profile",
			     hexs(&missing), "license", hexs(&lic)));
	assert_int_equal(lama_trust_sign(ar, &a.s, &cert, NULL), 0);
	r = verify(&cert, NOW);
	assert_reason(r, LAMA_TRUST_MISSING);
	assert_link(&r, &missing);

	/* validity windows that are not windows, signed by A */
	const char *windows[] = {
		"{\"$type$\": \"LamaValidity\", \"certificate\": \"%s\", \"notAfter\": {\"$number\": \"NaN\"}}",
		"{\"$type$\": \"LamaValidity\", \"certificate\": \"%s\", \"notAfter\": {\"$number\": \"Infinity\"}}",
		"{\"$type$\": \"LamaValidity\", \"certificate\": \"%s\", \"notBefore\": 2e12, \"notAfter\": 1e12}",
	};
	for (int i = 0; i < 3; i++) {
		char text[400], pname[32];
		lama_hash prof;

		/* a fresh certificate each time, for a fresh profile of B */
		snprintf(pname, sizeof(pname), "p%d", i);
		prof = put_profile(&b.person, pname, b.pk);
		cert = put(json_pack("{s:s, s:s, s:s}", "$type$", "TrustKeysCertificate", "profile",
				     hexs(&prof), "license", hexs(&lic)));
		lama_hash_hex(&cert, chex);
		snprintf(text, sizeof(text), windows[i], chex);
		{
			struct lama_put_info info;
			json_t *o = jload(text);
			int rc = lama_archive_put(ar, o, 0, &info);

			json_decref(o);
			if (rc) {
				/* the archive refused it: then it cannot arrive either */
				print_message("window %d refused by the archive: %s\n", i, lama_errmsg());
				continue;
			}
			v = info.hash;
		}
		assert_int_equal(lama_trust_sign(ar, &a.s, &v, NULL), 0);
		r = verify(&cert, NOW);
		assert_reason(r, LAMA_TRUST_MALFORMED);
		assert_link(&r, &v);
	}

	/* a SignKey that is not 64 hex digits is no key */
	{
		struct ident c;
		lama_hash k, prof, y = thing("y");
		char bad[65];

		mk_ident(&c, "c@example.org");
		memset(bad, 'Z', 64);
		bad[64] = '\0';
		k = put(json_pack("{s:s, s:s}", "$type$", "SignKey", "key", bad));
		prof = put(json_pack("{s:s, s:s, s:s, s:s, s:[], s:[s]}", "$type$", "Profile",
				     "profileId", "odd", "personId", hexs(&c.person), "owner",
				     hexs(&c.person), "communicationEndpoint", "personDescription",
				     hexs(&k)));
		certify(&a, &prof, NULL);
		/* c's default profile (with its real key) is not certified */
		affirm(&c, &y);
		assert_reason(affirmed(&y, NOW), LAMA_TRUST_UNSIGNED);
		(void)shex;
		(void)sig;
	}

	/* a person nobody knows a key of */
	{
		struct lama_put_info info;
		json_t *p = json_pack("{s:s, s:s}", "$type$", "Person", "email", "ghost@example.org");
		struct lama_trust_signer s;
		uint8_t pk[32], sk[64];
		lama_hash y = thing("ghost");

		assert_int_equal(lama_archive_put(ar, p, 0, &info), 0);
		json_decref(p);
		assert_int_equal(lama_sign_keypair(pk, sk), 0);
		lama_trust_sk_signer(&info.id_hash, sk, &s);
		assert_int_equal(lama_trust_affirm(ar, &s, &y, NULL, NULL), 0);
		r = affirmed(&y, NOW);
		assert_reason(r, LAMA_TRUST_UNKNOWN_KEY);
		assert_link(&r, &info.id_hash);
	}

	/* issuing keys for something that is not a profile is refused */
	assert_int_equal(lama_trust_certify_keys(ar, &a.s, &x, NULL, NULL), LAMA_EINVAL);
	assert_int_equal(lama_trust_grant_right(ar, &a.s, &a.person, 7, NULL, NULL), LAMA_EINVAL);
	assert_int_equal(lama_trust_verify(ar, &troot, NAN, &x, &r), LAMA_EINVAL);
}

/* Every allocation failing in turn: an error or the right answer, never a
 * wrong answer, and no leak (ASan). */
static void test_oom(void **state)
{
	struct ident a, b;
	struct lama_trust_result r;
	lama_hash x;
	int done = 0;

	(void)state;
	delegate(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	x = thing("x");
	certify(&a, &b.profile, NULL);
	affirm(&b, &x);
	for (unsigned long n = 1; n < 100000 && !done; n++) {
		int rc;

		lama_mem_fail_after(n, 0);
		rc = lama_trust_affirmed(ar, &troot, NOW, &x, &r);
		lama_mem_fail_after(0, 0);
		if (rc == 0) {
			assert_reason(r, LAMA_TRUST_VALID);
			done = 1;
		} else {
			assert_int_equal(rc, LAMA_ENOMEM);
		}
	}
	assert_true(done);
}

/* The real session: setup grants the right once, whatever the number of
 * calls and logins. */
static void test_setup_session(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	struct lama_trust_root sroot;
	struct lama_trust_result r;
	struct lama_trust_signer me;
	lama_session *s = NULL;
	char home[4096];
	lama_hash right, obj;
	int nright, nsig;

	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	assert_int_equal(lama_account_register(home, "alice", "pw", 2, &p, &s), 0);

	for (int round = 0; round < 3; round++) {
		lama_archive *sa;

		assert_int_equal(lama_trust_setup(s), 0);
		assert_int_equal(lama_trust_setup(s), 0);
		sa = lama_session_archive(s);
		{
			struct count c = refs(sa, lama_session_person(s),
					      "RightToDeclareTrustedKeysForEverybodyCertificate");

			nright = c.n;
			right = c.last;
		}
		assert_int_equal(nright, 1);
		nsig = refs(sa, &right, "Signature").n;
		assert_int_equal(nsig, 1);

		assert_int_equal(lama_trust_root(s, &sroot), 0);
		assert_int_equal(sroot.nkeys, 1);
		assert_int_equal(lama_trust_verify(sa, &sroot, lama_archive_now(), &right, &r), 0);
		assert_reason(r, LAMA_TRUST_VALID);
		assert_true(lama_hash_eq(&r.issuer, lama_session_person(s)));

		/* the user's own affirmation counts */
		lama_trust_session_signer(s, &me);
		{
			json_t *o = json_pack("{s:s, s:s}", "$type$", "PersonName", "name", "mine");
			struct lama_put_info info;

			assert_int_equal(lama_archive_put(sa, o, 0, &info), 0);
			json_decref(o);
			obj = info.hash;
		}
		assert_int_equal(lama_trust_affirm(sa, &me, &obj, NULL, NULL), 0);
		assert_int_equal(lama_trust_affirmed(sa, &sroot, lama_archive_now(), &obj, &r), 0);
		assert_reason(r, LAMA_TRUST_VALID);

		lama_session_logout(s);
		s = NULL;
		assert_int_equal(lama_account_login(home, "alice", "pw", 2, &s), 0);
	}
	/* a Keys object naming the user with someone else's key is no root key */
	{
		uint8_t pk[32], sk[64];
		char hex[65], bhex[65];
		json_t *k;

		assert_int_equal(lama_sign_keypair(pk, sk), 0);
		lama_hex_encode(pk, 32, hex);
		lama_hex_encode(pk, 32, bhex);
		k = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Keys", "owner",
			      hexs(lama_session_person(s)), "publicKey", bhex, "publicSignKey", hex);
		assert_int_equal(lama_archive_put(lama_session_archive(s), k, 0, NULL), 0);
		json_decref(k);
		assert_int_equal(lama_trust_root(s, &sroot), 0);
		assert_int_equal(sroot.nkeys, 1);
		assert_memory_not_equal(sroot.keys[0], pk, 32);
	}
	lama_session_logout(s);
	tu_rmtree(home);
}

/* --- floods and budgets: trust fails closed --- */

/* 128 random lower-case hex digits: a signature that verifies with no key. */
static void junk_sig(char out[129])
{
	uint8_t b[64];

	lama_random(b, sizeof(b));
	lama_hex_encode(b, sizeof(b), out);
}

static void put_junk_sig(const lama_hash *issuer, const lama_hash *data)
{
	char sig[129];

	junk_sig(sig);
	put(json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Signature", "issuer", hexs(issuer), "data",
		      hexs(data), "signature", sig));
}

/* A LamaRevocation of cert (unsigned); distinct by reason. */
static lama_hash put_revocation(const lama_hash *cert, int i)
{
	char reason[32];

	snprintf(reason, sizeof(reason), "fake %d", i);
	return put(json_pack("{s:s, s:s, s:f, s:s}", "$type$", "LamaRevocation", "certificate",
			     hexs(cert), "time", NOW - 5, "reason", reason));
}

/* Finding 1: spending the work budget on fake revocations (each with 256
 * junk signatures "by the root", sorting before the real one) must not
 * let a revoked certificate, or what rests on it, come back as valid. */
static void test_revocation_budget(void **state)
{
	struct ident x;
	lama_hash c, rev, obj;
	struct lama_trust_result r;
	int made = 0;

	(void)state;
	mk_ident(&x, "x@example.org");
	c = certify(&root, &x.profile, NULL);
	assert_int_equal(lama_trust_revoke(ar, &root.s, &c, NOW - 10, NULL, &rev), 0);
	assert_reason(verify(&c, NOW), LAMA_TRUST_REVOKED);
	obj = thing("claim");
	affirm(&x, &obj);
	assert_int_not_equal(affirmed(&obj, NOW).reason, LAMA_TRUST_VALID);

	assert_int_equal(lama_store_begin(st), 0);
	for (int i = 0; made < 10; i++) {
		char reason[32];
		lama_hash fr;
		json_t *o;

		snprintf(reason, sizeof(reason), "fake %d", i);
		o = json_pack("{s:s, s:s, s:f, s:s}", "$type$", "LamaRevocation", "certificate",
			      hexs(&c), "time", NOW - 5, "reason", reason);
		assert_int_equal(lama_object_hash(rec, o, &fr, NULL), 0);
		if (memcmp(&fr, &rev, sizeof(fr)) >= 0) { /* only those checked first */
			json_decref(o);
			continue;
		}
		put(o);
		made++;
		for (int j = 0; j < 256; j++)
			put_junk_sig(&root.person, &fr);
	}
	assert_int_equal(lama_store_commit(st), 0);

	r = verify(&c, NOW);
	assert_reason(r, LAMA_TRUST_TOO_DEEP);
	r = affirmed(&obj, NOW);
	assert_reason(r, LAMA_TRUST_TOO_DEEP);
	/* the budget is per call: an unrelated chain is still fine */
	{
		struct ident y;
		lama_hash o2;

		mk_ident(&y, "y@example.org");
		certify(&root, &y.profile, NULL);
		o2 = thing("other");
		affirm(&y, &o2);
		assert_reason(affirmed(&o2, NOW), LAMA_TRUST_VALID);
	}
}

/* Finding 2: more revocations than are read (a flood of unsigned ones)
 * must not hide the real one: the answer is TOO_DEEP at the certificate,
 * never valid. The same for a revocation with too many signatures. A cut
 * list on a positive check is said in the answer. */
static void test_revocation_flood(void **state)
{
	struct ident x, z;
	lama_hash c, c2, rev, fr;
	struct lama_trust_result r;
	int n = 8 * LAMA_TRUST_MAX_REFS;

	(void)state;
	mk_ident(&x, "x@example.org");
	c = certify(&root, &x.profile, NULL);
	assert_int_equal(lama_trust_revoke(ar, &root.s, &c, NOW - 10, NULL, &rev), 0);
	assert_int_equal(lama_store_begin(st), 0);
	for (int i = 0; i < n; i++)
		put_revocation(&c, i);
	assert_int_equal(lama_store_commit(st), 0);
	assert_int_equal(refs(ar, &c, "LamaRevocation").n, n + 1);
	r = verify(&c, NOW);
	assert_reason(r, LAMA_TRUST_TOO_DEEP);
	assert_link(&r, &c);
	{
		char shortc[17];

		snprintf(shortc, sizeof(shortc), "%s", hexs(&c));
		assert_non_null(strstr(r.message, shortc)); /* names the certificate */
	}

	/* a single revocation carrying more signatures than are read */
	mk_ident(&z, "z@example.org");
	c2 = certify(&root, &z.profile, NULL);
	assert_reason(verify(&c2, NOW), LAMA_TRUST_VALID);
	assert_int_equal(lama_store_begin(st), 0);
	fr = put_revocation(&c2, 0);
	for (int j = 0; j < LAMA_TRUST_MAX_REFS + 8; j++)
		put_junk_sig(&x.person, &fr);
	assert_int_equal(lama_store_commit(st), 0);
	r = verify(&c2, NOW);
	assert_reason(r, LAMA_TRUST_TOO_DEEP);
	assert_link(&r, &c2);

	/* a negative answer from a cut list says so: a certificate with more
	 * (junk) signatures than are read */
	{
		struct ident q;
		lama_hash c3;

		mk_ident(&q, "q@example.org");
		c3 = certify(&x, &q.profile, NULL); /* x has no right: not in force */
		assert_int_equal(lama_store_begin(st), 0);
		for (int j = 0; j < LAMA_TRUST_MAX_REFS + 8; j++)
			put_junk_sig(&x.person, &c3);
		assert_int_equal(lama_store_commit(st), 0);
		r = verify(&c3, NOW);
		assert_int_not_equal(r.reason, LAMA_TRUST_VALID);
		assert_non_null(strstr(r.message, "only the first"));
	}
}

/* Finding 3: loads cost work. Person P has 20 Profiles, each naming 256
 * SignKeys that are not in the archive, and signs an affirmation with a
 * key none of them holds. Looking for P's key loads 5120 objects: more
 * than the budget, so the answer is TOO_DEEP (before: UNKNOWN_KEY for
 * free). With a few such profiles it is UNKNOWN_KEY, and a Profile with
 * more descriptions than are read says so. */
static void put_hollow_profile(const lama_hash *p, const char *profile_id, int ndesc)
{
	json_t *desc = json_array();

	assert_non_null(desc);
	for (int j = 0; j < ndesc; j++) {
		lama_hash h;

		lama_random(h.b, sizeof(h.b));
		assert_int_equal(json_array_append_new(desc, json_string(hexs(&h))), 0);
	}
	put(json_pack("{s:s, s:s, s:s, s:s, s:[], s:o}", "$type$", "Profile", "profileId",
		      profile_id, "personId", hexs(p), "owner", hexs(p), "communicationEndpoint",
		      "personDescription", desc));
}

static void test_work_covers_loads(void **state)
{
	struct lama_put_info info;
	uint8_t pk[32], sk[64];
	struct lama_trust_signer ps;
	lama_hash p, obj, small_obj, q;
	struct lama_trust_result r;
	json_t *o;

	(void)state;
	assert_int_equal(lama_sign_keypair(pk, sk), 0);
	o = json_pack("{s:s, s:s}", "$type$", "Person", "email", "hollow@example.org");
	assert_int_equal(lama_archive_put(ar, o, 0, &info), 0);
	json_decref(o);
	p = info.id_hash;
	lama_trust_sk_signer(&p, sk, &ps);

	/* a few hollow profiles: within budget, no key known */
	put_hollow_profile(&p, "small", 300);
	small_obj = thing("small");
	assert_int_equal(lama_trust_affirm(ar, &ps, &small_obj, NULL, NULL), 0);
	r = affirmed(&small_obj, NOW);
	assert_reason(r, LAMA_TRUST_UNKNOWN_KEY);
	assert_non_null(strstr(r.message, "only the first 256 personDescription"));

	assert_int_equal(lama_store_begin(st), 0);
	for (int i = 0; i < 20; i++) {
		char id[32];

		snprintf(id, sizeof(id), "hollow %d", i);
		put_hollow_profile(&p, id, 256);
	}
	assert_int_equal(lama_store_commit(st), 0);
	obj = thing("hollow");
	assert_int_equal(lama_trust_affirm(ar, &ps, &obj, NULL, NULL), 0);
	r = affirmed(&obj, NOW);
	assert_reason(r, LAMA_TRUST_TOO_DEEP);

	/* the same on a certificate: P (with the right) certifies q's keys */
	{
		struct ident qi;
		lama_hash c;

		mk_ident(&qi, "q@example.org");
		q = qi.profile;
		grant(&root, &p, LAMA_TRUST_RIGHT_EVERYBODY);
		assert_int_equal(lama_trust_certify_keys(ar, &ps, &q, NULL, &c), 0);
		assert_reason(verify(&c, NOW), LAMA_TRUST_TOO_DEEP);
	}
}

/* Finding 5: a flood of Keys objects naming the user (anyone can make
 * them) must not hide the user's real Keys from lama_trust_root: the Keys
 * found at login are recorded and read back by hash. Without the record
 * the scan is bounded and a cut scan says so. */
static void test_root_flood(void **state)
{
	struct lama_kdf_params kp = lama_kdf_min();
	struct lama_trust_root sroot;
	lama_session *s = NULL;
	lama_archive *sa;
	char home[4096];
	uint8_t msg[32], sig[64];
	int n = LAMA_TRUST_ROOT_SCAN + 64;

	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	assert_int_equal(lama_account_register(home, "bob", "pw", 2, &kp, &s), 0);
	assert_int_equal(lama_trust_setup(s), 0); /* finds and records the root */
	sa = lama_session_archive(s);
	assert_int_equal(lama_store_begin(lama_session_store(s)), 0);
	for (int i = 0; i < n; i++) {
		uint8_t pk[32], bk[32];
		char hex[65], bhex[65];
		json_t *k;

		lama_random(pk, 32);
		lama_random(bk, 32);
		lama_hex_encode(pk, 32, hex);
		lama_hex_encode(bk, 32, bhex);
		k = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Keys", "owner",
			      hexs(lama_session_person(s)), "publicKey", bhex, "publicSignKey", hex);
		assert_int_equal(lama_archive_put(sa, k, 0, NULL), 0);
		json_decref(k);
	}
	assert_int_equal(lama_store_commit(lama_session_store(s)), 0);
	assert_int_equal(refs(sa, lama_session_person(s), "Keys").n, n + 1);

	lama_random(msg, sizeof(msg));
	assert_int_equal(lama_session_sign(s, 0, msg, sizeof(msg), sig), 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(lama_trust_root(s, &sroot), 0);
		assert_int_equal(sroot.nkeys, 1);
		assert_int_equal(lama_verify(sig, msg, sizeof(msg), sroot.keys[0]), 0);
		assert_int_equal(lama_trust_setup(s), 0);
	}

	/* without the record, the scan reads at most LAMA_TRUST_ROOT_SCAN
	 * Keys: it may still find the key (then records it again), or says
	 * the scan was cut */
	assert_int_equal(lama_store_kv_del(lama_session_store(s), "trust/root"), 0);
	{
		int rc = lama_trust_root(s, &sroot);

		if (rc == 0) {
			assert_int_equal(lama_verify(sig, msg, sizeof(msg), sroot.keys[0]), 0);
		} else {
			assert_int_equal(rc, LAMA_ENOTFOUND);
			assert_non_null(strstr(lama_errmsg(), "flood"));
		}
	}
	lama_session_logout(s);
	tu_rmtree(home);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_by_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signature_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsigned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_deep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
		cmocka_unit_test(test_setup_session),
		cmocka_unit_test_setup_teardown(test_revocation_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revocation_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_work_covers_loads, setup, teardown),
		cmocka_unit_test(test_root_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
