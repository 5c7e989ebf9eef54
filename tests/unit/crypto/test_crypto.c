/* Unit tests for crypto.h: round trips, every kind of tampering, and fixed
 * expected output computed with other implementations (RFC 8032, Python's
 * hashlib.blake2b) so a wrong call into libsodium cannot pass unnoticed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "crypto/crypto.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

static void unhex(const char *hex, void *out, size_t n)
{
	assert_int_equal(lama_hex_decode(hex, strlen(hex), out, n), 0);
}

static int setup(void **state)
{
	(void)state;
	return lama_crypto_init();
}

static void test_init_idempotent(void **state)
{
	(void)state;
	assert_int_equal(lama_crypto_init(), 0);
	assert_int_equal(lama_crypto_init(), 0);
}

/* --- Ed25519 --- */

static void test_sign_verify(void **state)
{
	uint8_t pk[LAMA_SIGN_PK_BYTES], sk[LAMA_SIGN_SK_BYTES];
	uint8_t pk2[LAMA_SIGN_PK_BYTES], sk2[LAMA_SIGN_SK_BYTES];
	uint8_t sig[LAMA_SIG_BYTES];
	char msg[] = "an ONE object";

	(void)state;
	assert_int_equal(lama_sign_keypair(pk, sk), 0);
	assert_int_equal(lama_sign_keypair(pk2, sk2), 0);
	lama_sign(sig, msg, strlen(msg), sk);
	assert_int_equal(lama_verify(sig, msg, strlen(msg), pk), 0);
	assert_int_equal(lama_verify(sig, msg, strlen(msg), pk2), LAMA_ECRYPTO);
	assert_int_equal(lama_verify(sig, msg, strlen(msg) - 1, pk), LAMA_ECRYPTO);
	msg[0] ^= 1;
	assert_int_equal(lama_verify(sig, msg, strlen(msg), pk), LAMA_ECRYPTO);
	msg[0] ^= 1;
	sig[10] ^= 0x80;
	assert_int_equal(lama_verify(sig, msg, strlen(msg), pk), LAMA_ECRYPTO);
	sig[10] ^= 0x80;
	assert_int_equal(lama_verify(sig, msg, strlen(msg), pk), 0);
}

/* RFC 8032 section 7.1, TEST 1 (empty message). */
static void test_sign_rfc8032_vector1(void **state)
{
	uint8_t seed[32], pk[32], sk[64], sig[64], want_pk[32], want_sig[64];

	(void)state;
	unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32);
	unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", want_pk, 32);
	unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	      want_sig, 64);
	assert_int_equal(lama_sign_seed_keypair(pk, sk, seed), 0);
	assert_memory_equal(pk, want_pk, 32);
	assert_memory_equal(sk, seed, 32); /* sk is seed || pk */
	assert_memory_equal(sk + 32, want_pk, 32);
	lama_sign(sig, "", 0, sk);
	assert_memory_equal(sig, want_sig, 64);
	assert_int_equal(lama_verify(want_sig, "", 0, want_pk), 0);
}

static void test_verify_batch(void **state)
{
	enum { N = 5 };
	uint8_t pk[N][32], sk[N][64], sig[N][64];
	char msg[N][16];
	struct lama_sig_item items[N];
	int results[N];
	size_t i;

	(void)state;
	assert_int_equal(lama_verify_batch(NULL, 0, NULL), 0);
	for (i = 0; i < N; i++) {
		assert_int_equal(lama_sign_keypair(pk[i], sk[i]), 0);
		snprintf(msg[i], sizeof(msg[i]), "message %zu", i);
		lama_sign(sig[i], msg[i], strlen(msg[i]), sk[i]);
		items[i].sig = sig[i];
		items[i].pk = pk[i];
		items[i].msg = msg[i];
		items[i].len = strlen(msg[i]);
	}
	assert_int_equal(lama_verify_batch(items, N, results), 0);
	for (i = 0; i < N; i++)
		assert_int_equal(results[i], 0);

	sig[3][0] ^= 1;
	assert_int_equal(lama_verify_batch(items, N, results), LAMA_ECRYPTO);
	for (i = 0; i < N; i++)
		assert_int_equal(results[i], i == 3 ? LAMA_ECRYPTO : 0);
	assert_int_equal(lama_verify_batch(items, N, NULL), LAMA_ECRYPTO);
	sig[3][0] ^= 1;

	items[1].pk = NULL;
	assert_int_equal(lama_verify_batch(items, N, results), LAMA_ECRYPTO);
	assert_int_equal(results[1], LAMA_ECRYPTO);
	assert_int_equal(results[3], 0);
}

/* --- X25519 --- */

static void test_seal(void **state)
{
	uint8_t pk[32], sk[32], pk2[32], sk2[32];
	const char msg[] = "for your eyes only";
	size_t n = sizeof(msg);
	uint8_t ct[sizeof(msg) + LAMA_SEAL_OVERHEAD], pt[sizeof(msg)];
	size_t i;

	(void)state;
	assert_int_equal(lama_box_keypair(pk, sk), 0);
	assert_int_equal(lama_box_keypair(pk2, sk2), 0);
	assert_int_equal(lama_seal(ct, msg, n, pk), 0);
	assert_int_equal(lama_seal_open(pt, ct, sizeof(ct), pk, sk), 0);
	assert_memory_equal(pt, msg, n);
	assert_int_equal(lama_seal_open(pt, ct, sizeof(ct), pk2, sk2), LAMA_ECRYPTO);
	for (i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 0x01;
		memset(pt, 0x55, sizeof(pt));
		assert_int_equal(lama_seal_open(pt, ct, sizeof(ct), pk, sk), LAMA_ECRYPTO);
		ct[i] ^= 0x01;
	}
	for (i = 0; i < sizeof(pt); i++)
		assert_int_equal(pt[i], 0);
	assert_int_equal(lama_seal_open(pt, ct, sizeof(ct) - 1, pk, sk), LAMA_ECRYPTO);
	assert_int_equal(lama_seal_open(pt, ct, LAMA_SEAL_OVERHEAD - 1, pk, sk), LAMA_ECRYPTO);
	assert_int_equal(lama_seal_open(pt, ct, 0, pk, sk), LAMA_ECRYPTO);
}

static void test_box(void **state)
{
	uint8_t apk[32], ask[32], bpk[32], bsk[32], cpk[32], csk[32];
	const char msg[] = "hello bob, from alice";
	size_t n = sizeof(msg);
	uint8_t ct[sizeof(msg) + LAMA_BOX_OVERHEAD], ct2[sizeof(ct)], pt[sizeof(msg)];
	size_t i;

	(void)state;
	assert_int_equal(lama_box_keypair(apk, ask), 0);
	assert_int_equal(lama_box_keypair(bpk, bsk), 0);
	assert_int_equal(lama_box_keypair(cpk, csk), 0);
	assert_int_equal(lama_box(ct, msg, n, bpk, ask), 0);
	assert_int_equal(lama_box_open(pt, ct, sizeof(ct), apk, bsk), 0);
	assert_memory_equal(pt, msg, n);
	/* Random nonce: the same message twice gives different boxes. */
	assert_int_equal(lama_box(ct2, msg, n, bpk, ask), 0);
	assert_memory_not_equal(ct, ct2, sizeof(ct));
	/* Wrong sender key, wrong recipient key. */
	assert_int_equal(lama_box_open(pt, ct, sizeof(ct), cpk, bsk), LAMA_ECRYPTO);
	assert_int_equal(lama_box_open(pt, ct, sizeof(ct), apk, csk), LAMA_ECRYPTO);
	for (i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 0x20;
		memset(pt, 0x55, sizeof(pt));
		assert_int_equal(lama_box_open(pt, ct, sizeof(ct), apk, bsk), LAMA_ECRYPTO);
		ct[i] ^= 0x20;
	}
	for (i = 0; i < sizeof(pt); i++)
		assert_int_equal(pt[i], 0);
	assert_int_equal(lama_box_open(pt, ct, LAMA_BOX_OVERHEAD - 1, apk, bsk), LAMA_ECRYPTO);
	/* An empty message is still authenticated. */
	assert_int_equal(lama_box(ct2, "", 0, bpk, ask), 0);
	assert_int_equal(lama_box_open(pt, ct2, LAMA_BOX_OVERHEAD, apk, bsk), 0);
}

static void test_kx(void **state)
{
	uint8_t cpk[32], csk[32], spk[32], ssk[32], zero[32] = { 0 };
	uint8_t crx[32], ctx_[32], srx[32], stx[32];

	(void)state;
	assert_int_equal(lama_box_keypair(cpk, csk), 0);
	assert_int_equal(lama_box_keypair(spk, ssk), 0);
	assert_int_equal(lama_kx_client(crx, ctx_, cpk, csk, spk), 0);
	assert_int_equal(lama_kx_server(srx, stx, spk, ssk, cpk), 0);
	assert_memory_equal(crx, stx, 32);
	assert_memory_equal(ctx_, srx, 32);
	assert_memory_not_equal(crx, ctx_, 32);
	/* A low-order peer key would give a predictable shared secret. */
	assert_int_equal(lama_kx_client(crx, ctx_, cpk, csk, zero), LAMA_ECRYPTO);
	assert_int_equal(lama_kx_server(srx, stx, spk, ssk, zero), LAMA_ECRYPTO);
}

/* --- AEAD --- */

static void test_aead(void **state)
{
	uint8_t key[32], key2[32];
	const char msg[] = "stored object bytes";
	const char ad[] = "object/1234";
	size_t n = sizeof(msg);
	uint8_t ct[sizeof(msg) + LAMA_AEAD_OVERHEAD], pt[sizeof(msg)];
	uint8_t empty_ct[LAMA_AEAD_OVERHEAD];
	size_t i;

	(void)state;
	lama_random(key, 32);
	lama_random(key2, 32);
	assert_int_equal(lama_aead_seal(ct, msg, n, ad, strlen(ad), key), 0);
	assert_int_equal(lama_aead_open(pt, ct, sizeof(ct), ad, strlen(ad), key), 0);
	assert_memory_equal(pt, msg, n);

	assert_int_equal(lama_aead_open(pt, ct, sizeof(ct), "object/1235", strlen(ad), key),
			 LAMA_ECRYPTO);
	assert_int_equal(lama_aead_open(pt, ct, sizeof(ct), NULL, 0, key), LAMA_ECRYPTO);
	assert_int_equal(lama_aead_open(pt, ct, sizeof(ct), ad, strlen(ad), key2), LAMA_ECRYPTO);
	for (i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 0x04;
		memset(pt, 0x55, sizeof(pt));
		assert_int_equal(lama_aead_open(pt, ct, sizeof(ct), ad, strlen(ad), key),
				 LAMA_ECRYPTO);
		ct[i] ^= 0x04;
	}
	/* No unauthenticated plaintext is left in out after a failure. */
	for (i = 0; i < sizeof(pt); i++)
		assert_int_equal(pt[i], 0);
	assert_int_equal(lama_aead_open(pt, ct, sizeof(ct) - 1, ad, strlen(ad), key), LAMA_ECRYPTO);
	assert_int_equal(lama_aead_open(pt, ct, LAMA_AEAD_OVERHEAD - 1, ad, strlen(ad), key),
			 LAMA_ECRYPTO);
	assert_int_equal(lama_aead_open(pt, ct, 0, ad, strlen(ad), key), LAMA_ECRYPTO);

	assert_int_equal(lama_aead_seal(empty_ct, NULL, 0, NULL, 0, key), 0);
	assert_int_equal(lama_aead_open(pt, empty_ct, sizeof(empty_ct), NULL, 0, key), 0);
	assert_int_equal(lama_aead_open(pt, empty_ct, sizeof(empty_ct), NULL, 0, key2),
			 LAMA_ECRYPTO);
}

/* --- Password hashing and key derivation --- */

static void test_kdf_params(void **state)
{
	struct lama_kdf_params m = lama_kdf_moderate(), i = lama_kdf_interactive(),
			       n = lama_kdf_min();

	(void)state;
	assert_true(m.opslimit > i.opslimit && m.memlimit > i.memlimit);
	assert_true(i.opslimit >= n.opslimit && i.memlimit > n.memlimit);
	assert_int_equal(m.memlimit, 256u << 20); /* libsodium's MODERATE */
	assert_int_equal(n.opslimit, 1);
}

static void test_pwhash(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	uint8_t salt[16], salt2[16], k1[32], k2[32], k3[32], k4[32];

	(void)state;
	memset(salt, 1, sizeof(salt));
	memset(salt2, 2, sizeof(salt2));
	assert_int_equal(lama_pwhash(k1, "hunter2", 7, salt, &p), 0);
	assert_int_equal(lama_pwhash(k2, "hunter2", 7, salt, &p), 0);
	assert_memory_equal(k1, k2, 32);
	assert_int_equal(lama_pwhash(k3, "hunter2", 7, salt2, &p), 0);
	assert_memory_not_equal(k1, k3, 32);
	assert_int_equal(lama_pwhash(k4, "hunter3", 7, salt, &p), 0);
	assert_memory_not_equal(k1, k4, 32);
	p.opslimit = 2;
	assert_int_equal(lama_pwhash(k4, "hunter2", 7, salt, &p), 0);
	assert_memory_not_equal(k1, k4, 32);
	/* An empty password is allowed (and weak, which is the caller's call). */
	assert_int_equal(lama_pwhash(k4, "", 0, salt, &p), 0);
}

static void test_pwhash_rejects_params(void **state)
{
	struct lama_kdf_params p = lama_kdf_min(), bad;
	uint8_t salt[16] = { 0 }, key[32], zero[32] = { 0 };

	(void)state;
	bad = p;
	bad.opslimit = 0;
	memset(key, 0xaa, 32);
	assert_int_equal(lama_pwhash(key, "pw", 2, salt, &bad), LAMA_EINVAL);
	assert_memory_equal(key, zero, 32);
	bad = p;
	bad.memlimit = p.memlimit - 1;
	assert_int_equal(lama_pwhash(key, "pw", 2, salt, &bad), LAMA_EINVAL);
	bad = p;
	bad.opslimit = LAMA_KDF_OPSLIMIT_MAX + 1;
	assert_int_equal(lama_pwhash(key, "pw", 2, salt, &bad), LAMA_EINVAL);
	bad = p;
	bad.memlimit = LAMA_KDF_MEMLIMIT_MAX + 1;
	assert_int_equal(lama_pwhash(key, "pw", 2, salt, &bad), LAMA_EINVAL);
	assert_int_equal(lama_pwhash(key, "pw", 2, salt, NULL), LAMA_EINVAL);
}

/* Expected values from Python: hashlib.blake2b(b"", key=master,
 * digest_size=32, salt=id.to_bytes(8, "little") + bytes(8),
 * person=ctx + bytes(8)), which is what crypto_kdf_derive_from_key is. */
static void test_kdf_derive_known(void **state)
{
	uint8_t master[32], sub[32], want[32];
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++)
		master[i] = (uint8_t)(0x40 + i);
	lama_kdf_derive(sub, 1, "lamastor", master);
	unhex("01529d399a2904f248cc5abad5088df9e49ea9f9975437e4da878da347e5e20c", want, 32);
	assert_memory_equal(sub, want, 32);
	lama_kdf_derive(sub, 7, "lamaindx", master);
	unhex("6f43927d9e22b2c05b21ff57c71a80b14816615409ec88cb6c354261d8297998", want, 32);
	assert_memory_equal(sub, want, 32);
}

/* Expected value: hashlib.blake2b(b"lama keyed hash test",
 * key=bytes(range(32)), digest_size=32). */
static void test_keyed_hash_known(void **state)
{
	uint8_t key[32], out[32], want[32];
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	lama_keyed_hash(out, "lama keyed hash test", 20, key);
	unhex("9ec00de7896cb3eb06d2188a50f961795bb5bc779246be27cc3e2c2d6aa855f0", want, 32);
	assert_memory_equal(out, want, 32);
	key[0] ^= 1;
	lama_keyed_hash(out, "lama keyed hash test", 20, key);
	assert_memory_not_equal(out, want, 32);
}

/* --- Base64 (RFC 4648 section 10 vectors) --- */

static void test_base64(void **state)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };
	char out[16];
	uint8_t bin[16];
	size_t i, len;

	(void)state;
	for (i = 0; i < 7; i++) {
		assert_int_equal(lama_base64_len(strlen(plain[i])), strlen(enc[i]) + 1);
		lama_base64_encode(out, plain[i], strlen(plain[i]));
		assert_string_equal(out, enc[i]);
		assert_int_equal(lama_base64_decode(bin, sizeof(bin), &len, enc[i],
						    strlen(enc[i])), 0);
		assert_int_equal(len, strlen(plain[i]));
		assert_memory_equal(bin, plain[i], len);
	}
	/* Bad input: wrong alphabet (URL-safe), missing padding, trailing
	 * garbage, non-zero padding bits. */
	assert_int_equal(lama_base64_decode(bin, sizeof(bin), &len, "-_8=", 4), LAMA_EINVAL);
	assert_int_equal(lama_base64_decode(bin, sizeof(bin), &len, "Zg", 2), LAMA_EINVAL);
	assert_int_equal(lama_base64_decode(bin, sizeof(bin), &len, "Zm9v!", 5), LAMA_EINVAL);
	assert_int_equal(lama_base64_decode(bin, sizeof(bin), &len, "Zh==", 4), LAMA_EINVAL);
	/* Does not read past inlen even without a NUL. */
	assert_int_equal(lama_base64_decode(bin, sizeof(bin), &len, "Zm9vXXXX", 4), 0);
	assert_int_equal(len, 3);
	assert_int_equal(lama_base64_decode(bin, 2, &len, "Zm9v", 4), LAMA_ELIMIT);
	assert_int_equal(lama_base64_decode(bin, 2, &len, "Zm8=", 4), 0);
	assert_int_equal(lama_base64_decode(bin, 2, &len, "====", 4), LAMA_EINVAL);
	assert_int_equal(lama_base64_decode(bin, 2, &len, "Zm9vYg", 6), LAMA_EINVAL);
}

/* --- Memory and small helpers --- */

static void test_secure_memory(void **state)
{
	uint8_t *p;

	(void)state;
	lama_secure_free(NULL);
	p = lama_secure_alloc(64);
	assert_non_null(p);
	memset(p, 0x5a, 64);
	assert_int_equal(lama_secure_readonly(p), 0);
	assert_int_equal(p[63], 0x5a);
	lama_secure_free(p);

	lama_mem_fail_after(1, 0);
	assert_null(lama_secure_alloc(32));
	p = lama_secure_alloc(32);
	assert_non_null(p);
	lama_secure_free(p);
}

static void test_helpers(void **state)
{
	uint8_t a[32], b[32], zero[32] = { 0 };
	int i;

	(void)state;
	lama_random(a, 32);
	memcpy(b, a, 32);
	assert_int_equal(lama_memcmp_ct(a, b, 32), 0);
	b[31] ^= 1;
	assert_int_not_equal(lama_memcmp_ct(a, b, 32), 0);
	lama_wipe(a, 32);
	assert_memory_equal(a, zero, 32);
	lama_wipe(NULL, 0);
	for (i = 0; i < 1000; i++)
		assert_true(lama_random_uniform(7) < 7);
	assert_int_equal(lama_random_uniform(1), 0);
}

/* Nonces never repeat: not across many seals, and not between a parent and
 * a forked child that both keep sealing (the per-thread nonce pool). */
static void test_aead_nonces_unique_across_fork(void **state)
{
	uint8_t key[LAMA_KEY_BYTES], ct[200][1 + LAMA_AEAD_OVERHEAD], child[100][LAMA_AEAD_NONCE_BYTES];
	int fds[2];
	pid_t pid;

	(void)state;
	lama_random(key, sizeof(key));
	/* part of a pool is used before the fork */
	for (int i = 0; i < 7; i++)
		assert_int_equal(lama_aead_seal(ct[i], "x", 1, NULL, 0, key), 0);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t c[1 + LAMA_AEAD_OVERHEAD];

		for (int i = 0; i < 100; i++) {
			if (lama_aead_seal(c, "x", 1, NULL, 0, key) != 0 ||
			    write(fds[1], c, LAMA_AEAD_NONCE_BYTES) != LAMA_AEAD_NONCE_BYTES)
				_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	for (int i = 0; i < 100; i++)
		assert_int_equal(read(fds[0], child[i], LAMA_AEAD_NONCE_BYTES), LAMA_AEAD_NONCE_BYTES);
	close(fds[0]);
	{
		int status;

		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	for (int i = 7; i < 200; i++)
		assert_int_equal(lama_aead_seal(ct[i], "x", 1, NULL, 0, key), 0);
	for (int i = 0; i < 200; i++) {
		for (int j = i + 1; j < 200; j++)
			assert_memory_not_equal(ct[i], ct[j], LAMA_AEAD_NONCE_BYTES);
		for (int k = 0; k < 100; k++)
			assert_memory_not_equal(ct[i], child[k], LAMA_AEAD_NONCE_BYTES);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_idempotent),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_sign_rfc8032_vector1),
		cmocka_unit_test(test_verify_batch),
		cmocka_unit_test(test_seal),
		cmocka_unit_test(test_box),
		cmocka_unit_test(test_kx),
		cmocka_unit_test(test_aead),
		cmocka_unit_test(test_aead_nonces_unique_across_fork),
		cmocka_unit_test(test_kdf_params),
		cmocka_unit_test(test_pwhash),
		cmocka_unit_test(test_pwhash_rejects_params),
		cmocka_unit_test(test_kdf_derive_known),
		cmocka_unit_test(test_keyed_hash_known),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_secure_memory),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
