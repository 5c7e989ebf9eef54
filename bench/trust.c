/* trust.c: verifying a 3-link certificate chain against the raw Ed25519
 * verifications it cannot do without.
 *
 * The chain, in an archive in the scratch folder: the root certifies A's
 * keys and grants A the right to declare trusted keys for everybody; A
 * certifies B's keys; B affirms an object X. lama_trust_affirmed(X) walks
 * it from scratch on every call (no cache across calls): it reads and
 * checks every object (certificates, signatures, profiles, keys, the
 * license), looks for validity windows and revocations through the reverse
 * maps, and verifies four signatures (B's affirmation, A's and the root's
 * trust-keys certificates, the root's right for A). The baseline is
 * crypto_sign_verify_detached called directly on three signatures over
 * 64-byte messages, counted as chains per second (three verifications per
 * chain), as the issue asks. Rounds alternate; figures are medians.
 *
 * Line: trust.verify_chain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "archive/archive.h"
#include "common.h"
#include "crypto/crypto.h"
#include "store/store.h"
#include "trust/trust.h"

#define ROUNDS 7
#define ROUND_SECONDS 0.3

static lama_archive *ar;

struct ident {
	lama_hash person, profile;
	uint8_t pk[32], sk[64];
	struct lama_trust_signer s;
};

static lama_hash put(json_t *o)
{
	struct lama_put_info info;

	if (!o)
		bench_fail("out of memory");
	bench_check(lama_archive_put(ar, o, 0, &info), "lama_archive_put");
	json_decref(o);
	return info.versioned ? info.id_hash : info.hash;
}

static void mk_ident(struct ident *id, const char *email)
{
	char hex[65], phex[65], khex[65];
	struct lama_put_info info;
	json_t *o = json_pack("{s:s, s:s}", "$type$", "Person", "email", email);
	lama_hash k;

	bench_check(lama_sign_keypair(id->pk, id->sk), "keypair");
	bench_check(lama_archive_put(ar, o, 0, &info), "put person");
	json_decref(o);
	id->person = info.id_hash;
	lama_hex_encode(id->pk, 32, khex);
	k = put(json_pack("{s:s, s:s}", "$type$", "SignKey", "key", khex));
	lama_hash_hex(&id->person, phex);
	lama_hash_hex(&k, hex);
	o = json_pack("{s:s, s:s, s:s, s:s, s:[], s:[s]}", "$type$", "Profile", "profileId",
		      "default", "personId", phex, "owner", phex, "communicationEndpoint",
		      "personDescription", hex);
	if (!o)
		bench_fail("out of memory");
	bench_check(lama_archive_put(ar, o, 0, &info), "put profile");
	json_decref(o);
	id->profile = info.hash;
	lama_trust_sk_signer(&id->person, id->sk, &id->s);
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	struct ident root, a, b;
	struct lama_trust_root troot;
	struct lama_trust_result r;
	lama_recipes *rec;
	lama_store *st;
	uint8_t enc[32], idx[32], pk[3][32], sk[3][64], sig[3][64];
	char dir[4096], path[4200], msg[3][65], extra[256];
	double lama_rate[ROUNDS], base_rate[ROUNDS], now;
	lama_hash x;

	bench_check(lama_crypto_init(), "crypto init");
	bench_mkdtemp(tmp, "trust", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/trust.db", dir);
	bench_check(lama_recipes_new(&rec), "recipes");
	bench_check(lama_recipes_add_builtin(rec), "recipes");
	bench_keys(enc, idx);
	bench_check(lama_store_open(&st, path, enc, idx, LAMA_STORE_CREATE), "lama_store_open");
	bench_check(lama_archive_new(&ar, st, rec), "lama_archive_new");

	mk_ident(&root, "root@example.org");
	mk_ident(&a, "a@example.org");
	mk_ident(&b, "b@example.org");
	memset(&troot, 0, sizeof(troot));
	troot.person = root.person;
	troot.nkeys = 1;
	memcpy(troot.keys[0], root.pk, 32);
	x = put(json_pack("{s:s, s:s}", "$type$", "PersonName", "name", "x"));
	bench_check(lama_trust_certify_keys(ar, &root.s, &a.profile, NULL, NULL), "certify A");
	bench_check(lama_trust_grant_right(ar, &root.s, &a.person, LAMA_TRUST_RIGHT_EVERYBODY,
					   NULL, NULL), "grant A");
	bench_check(lama_trust_certify_keys(ar, &a.s, &b.profile, NULL, NULL), "certify B");
	bench_check(lama_trust_affirm(ar, &b.s, &x, NULL, NULL), "affirm X");
	now = lama_archive_now();
	bench_check(lama_trust_affirmed(ar, &troot, now, &x, &r), "lama_trust_affirmed");
	if (r.reason != LAMA_TRUST_VALID)
		bench_fail("the chain does not verify: %s", r.message);

	/* the baseline's three signatures */
	for (int i = 0; i < 3; i++) {
		uint8_t h[32];

		crypto_sign_keypair(pk[i], sk[i]);
		randombytes_buf(h, sizeof(h));
		lama_hex_encode(h, 32, msg[i]);
		crypto_sign_detached(sig[i], NULL, (const uint8_t *)msg[i], 64, sk[i]);
	}

	for (int round = 0; round < ROUNDS; round++) {
		double t0 = bench_now(), t;
		unsigned long n = 0;

		do {
			for (int k = 0; k < 16; k++) {
				bench_check(lama_trust_affirmed(ar, &troot, now, &x, &r), "affirmed");
				if (r.reason != LAMA_TRUST_VALID)
					bench_fail("the chain stopped verifying: %s", r.message);
			}
			n += 16;
			t = bench_now() - t0;
		} while (t < ROUND_SECONDS);
		lama_rate[round] = n / t;

		n = 0;
		t0 = bench_now();
		do {
			for (int k = 0; k < 16; k++) {
				for (int i = 0; i < 3; i++)
					if (crypto_sign_verify_detached(sig[i], (const uint8_t *)msg[i],
									64, pk[i]) != 0)
						bench_fail("baseline signature does not verify");
			}
			n += 16;
			t = bench_now() - t0;
		} while (t < ROUND_SECONDS);
		base_rate[round] = n / t;
		fprintf(stderr, "trust: round %d: %.0f chains/s, %.0f x3 raw verifications/s\n",
			round, lama_rate[round], base_rate[round]);
	}
	snprintf(extra, sizeof(extra),
		 "\"links\": 3, \"signatures_in_chain\": 4, \"rounds\": %d, \"round_s\": %.2g",
		 ROUNDS, ROUND_SECONDS);
	{
		double v = bench_median(lama_rate, ROUNDS), bv = bench_median(base_rate, ROUNDS);

		bench_emit("trust.verify_chain", "chains/s", v,
			   "crypto_sign_verify_detached x3 (chains/s)", bv, extra);
	}
	lama_archive_free(ar);
	lama_store_close(st);
	lama_recipes_free(rec);
	bench_rmtree(dir);
	return 0;
}
