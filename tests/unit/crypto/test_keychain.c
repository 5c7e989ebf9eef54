/* Unit tests for keychain.h: wrapped secrets stay bound to their name and
 * master key, the master key round-trips under a password, and every
 * failure path releases what it took (fault injection). Argon2id runs with
 * lama_kdf_min() to keep the tests fast. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "crypto/crypto.h"
#include "crypto/keychain.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

static const uint8_t zero32[32];

static int setup(void **state)
{
	(void)state;
	return lama_crypto_init();
}

static lama_keychain *new_kc(uint8_t fill)
{
	uint8_t master[32];
	lama_keychain *kc = NULL;

	memset(master, fill, sizeof(master));
	assert_int_equal(lama_keychain_new(&kc, master), 0);
	assert_non_null(kc);
	lama_wipe(master, sizeof(master));
	return kc;
}

static void test_free_null(void **state)
{
	(void)state;
	lama_keychain_free(NULL);
	lama_secure_free(NULL);
}

static void test_wrap_unwrap(void **state)
{
	lama_keychain *kc = new_kc(7);
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint8_t secret[64], got[64];
	size_t first;

	(void)state;
	lama_random(secret, sizeof(secret));
	/* Output is appended: two wrapped secrets in one buffer. */
	assert_int_equal(lama_buf_addstr(&b, "hdr"), 0);
	assert_int_equal(lama_keychain_wrap(kc, "device-sign", secret, 64, &b), 0);
	first = b.len;
	assert_int_equal(first, 3 + 64 + LAMA_KEYCHAIN_WRAP_OVERHEAD);
	assert_int_equal(lama_keychain_wrap(kc, "inbox-box", secret, 32, &b), 0);
	assert_int_equal(b.len, first + 32 + LAMA_KEYCHAIN_WRAP_OVERHEAD);

	assert_int_equal(lama_keychain_unwrap(kc, "device-sign", (uint8_t *)b.data + 3, first - 3,
					      got, 64), 0);
	assert_memory_equal(got, secret, 64);
	assert_int_equal(lama_keychain_unwrap(kc, "inbox-box", (uint8_t *)b.data + first,
					      b.len - first, got, 32), 0);
	assert_memory_equal(got, secret, 32);
	/* Plaintext does not appear in the wrapped form. */
	assert_null(memmem(b.data, b.len, secret, 16));
	lama_buf_release(&b);
	lama_keychain_free(kc);
}

static void test_unwrap_rejects(void **state)
{
	lama_keychain *kc = new_kc(1), *other = new_kc(2);
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint8_t secret[32], got[32];
	uint8_t *w;
	size_t i;

	(void)state;
	lama_random(secret, sizeof(secret));
	assert_int_equal(lama_keychain_wrap(kc, "alice/storage", secret, 32, &b), 0);
	w = (uint8_t *)b.data;

	/* Swapped for another name's secret: the name is authenticated. */
	memset(got, 0xee, sizeof(got));
	assert_int_equal(lama_keychain_unwrap(kc, "bob/storage", w, b.len, got, 32), LAMA_ECRYPTO);
	assert_memory_equal(got, zero32, 32);
	assert_int_equal(lama_keychain_unwrap(kc, "alice/storag", w, b.len, got, 32),
			 LAMA_ECRYPTO);
	/* Another user's master key. */
	assert_int_equal(lama_keychain_unwrap(other, "alice/storage", w, b.len, got, 32),
			 LAMA_ECRYPTO);
	/* Any flipped bit, including the version byte. */
	for (i = 0; i < b.len; i++) {
		w[i] ^= 0x10;
		assert_int_equal(lama_keychain_unwrap(kc, "alice/storage", w, b.len, got, 32),
				 LAMA_ECRYPTO);
		w[i] ^= 0x10;
	}
	/* Truncated, or a different expected size. */
	assert_int_equal(lama_keychain_unwrap(kc, "alice/storage", w, b.len - 1, got, 32),
			 LAMA_ECRYPTO);
	assert_int_equal(lama_keychain_unwrap(kc, "alice/storage", w, b.len, got, 31),
			 LAMA_ECRYPTO);
	assert_int_equal(lama_keychain_unwrap(kc, "alice/storage", w, 0, got, 32), LAMA_ECRYPTO);
	assert_int_equal(lama_keychain_unwrap(kc, "alice/storage", w, b.len, got, 32), 0);
	assert_memory_equal(got, secret, 32);

	lama_buf_release(&b);
	lama_keychain_free(kc);
	lama_keychain_free(other);
}

static void test_wrap_rejects_bad_args(void **state)
{
	lama_keychain *kc = new_kc(3);
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	struct lama_buf small = LAMA_BUF_INIT(40);
	char longname[LAMA_KEYCHAIN_NAME_MAX + 2];
	uint8_t secret[32] = { 1 }, got[32];

	(void)state;
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(lama_keychain_wrap(kc, "", secret, 32, &b), LAMA_EINVAL);
	assert_int_equal(lama_keychain_wrap(kc, NULL, secret, 32, &b), LAMA_EINVAL);
	assert_int_equal(lama_keychain_wrap(kc, longname, secret, 32, &b), LAMA_EINVAL);
	assert_int_equal(lama_keychain_wrap(kc, "k", secret, 0, &b), LAMA_EINVAL);
	assert_int_equal(lama_keychain_wrap(kc, "k", secret, LAMA_KEYCHAIN_SECRET_MAX + 1, &b),
			 LAMA_EINVAL);
	assert_int_equal(b.len, 0);
	/* The longest allowed name works. */
	longname[LAMA_KEYCHAIN_NAME_MAX] = '\0';
	assert_int_equal(lama_keychain_wrap(kc, longname, secret, 32, &b), 0);
	assert_int_equal(lama_keychain_unwrap(kc, longname, (uint8_t *)b.data, b.len, got, 32), 0);
	/* The buffer's ceiling is respected and the buffer left as it was. */
	assert_int_equal(lama_keychain_wrap(kc, "k", secret, 32, &small), LAMA_ELIMIT);
	assert_int_equal(small.len, 0);
	assert_int_equal(lama_keychain_unwrap(kc, "", (uint8_t *)b.data, b.len, got, 32),
			 LAMA_EINVAL);
	assert_int_equal(lama_keychain_unwrap(kc, "k", (uint8_t *)b.data, b.len, got, 0),
			 LAMA_EINVAL);
	lama_buf_release(&b);
	lama_buf_release(&small);
	lama_keychain_free(kc);
}

static void test_subkey(void **state)
{
	uint8_t master[32], a[32], b[32], want[32];
	lama_keychain *kc = NULL;

	(void)state;
	lama_random(master, 32);
	assert_int_equal(lama_keychain_new(&kc, master), 0);
	assert_int_equal(lama_keychain_subkey(kc, 1, "lamastor", a), 0);
	assert_int_equal(lama_keychain_subkey(kc, 1, "lamastor", b), 0);
	assert_memory_equal(a, b, 32);
	/* It is crypto_kdf of the master key, so accounts can rely on it. */
	lama_kdf_derive(want, 1, "lamastor", master);
	assert_memory_equal(a, want, 32);
	assert_int_equal(lama_keychain_subkey(kc, 2, "lamastor", b), 0);
	assert_memory_not_equal(a, b, 32);
	assert_int_equal(lama_keychain_subkey(kc, 1, "lamaindx", b), 0);
	assert_memory_not_equal(a, b, 32);
	/* The wrap key is not obtainable. */
	memset(b, 0xff, 32);
	assert_int_equal(lama_keychain_subkey(kc, 1, LAMA_KEYCHAIN_WRAP_CTX, b), LAMA_EINVAL);
	assert_memory_equal(b, zero32, 32);
	lama_wipe(master, 32);
	lama_keychain_free(kc);
}

static void test_master_wrap(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	uint8_t master[32], got[32], salt[16], salt2[16];
	uint8_t w[LAMA_MASTER_WRAPPED_BYTES], w2[LAMA_MASTER_WRAPPED_BYTES];
	const char *pw = "correct horse battery staple";

	(void)state;
	assert_int_equal(LAMA_MASTER_WRAPPED_BYTES, 32 + LAMA_AEAD_OVERHEAD);
	lama_random(master, 32);
	assert_int_equal(lama_master_wrap(master, pw, strlen(pw), &p, salt, w, "alice", 5), 0);
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt, w, "alice", 5), 0);
	assert_memory_equal(got, master, 32);

	/* Wrong password, wrong ad, wrong salt, wrong params, tampered. */
	memset(got, 0xcc, 32);
	assert_int_equal(lama_master_unwrap(got, "correct horse battery stapl", strlen(pw) - 1, &p,
					    salt, w, "alice", 5), LAMA_EAUTH);
	assert_memory_equal(got, zero32, 32);
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt, w, "bob", 3),
			 LAMA_EAUTH);
	salt[0] ^= 1;
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt, w, "alice", 5),
			 LAMA_EAUTH);
	salt[0] ^= 1;
	p.opslimit++;
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt, w, "alice", 5),
			 LAMA_EAUTH);
	p.opslimit--;
	w[40] ^= 1;
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt, w, "alice", 5),
			 LAMA_EAUTH);
	w[40] ^= 1;

	/* Each wrap takes a fresh salt and nonce. */
	assert_int_equal(lama_master_wrap(master, pw, strlen(pw), &p, salt2, w2, "alice", 5), 0);
	assert_memory_not_equal(salt, salt2, 16);
	assert_memory_not_equal(w, w2, sizeof(w));
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt2, w2, "alice", 5), 0);
	assert_memory_equal(got, master, 32);

	/* No ad at all is allowed. */
	assert_int_equal(lama_master_wrap(master, pw, strlen(pw), &p, salt2, w2, NULL, 0), 0);
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt2, w2, NULL, 0), 0);

	/* Bad parameters are EINVAL, not EAUTH. */
	p.opslimit = 0;
	assert_int_equal(lama_master_wrap(master, pw, strlen(pw), &p, salt2, w2, NULL, 0),
			 LAMA_EINVAL);
	assert_int_equal(lama_master_unwrap(got, pw, strlen(pw), &p, salt, w, "alice", 5),
			 LAMA_EINVAL);
	lama_wipe(master, 32);
	lama_wipe(got, 32);
}

static void test_keychain_unlock(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	uint8_t master[32], salt[16], w[LAMA_MASTER_WRAPPED_BYTES], a[32], b[32];
	lama_keychain *kc = NULL, *ref = NULL;

	(void)state;
	lama_random(master, 32);
	assert_int_equal(lama_master_wrap(master, "pw", 2, &p, salt, w, "u", 1), 0);
	assert_int_equal(lama_keychain_new(&ref, master), 0);
	assert_int_equal(lama_keychain_unlock(&kc, "pw", 2, &p, salt, w, "u", 1), 0);
	assert_int_equal(lama_keychain_subkey(kc, 9, "lamastor", a), 0);
	assert_int_equal(lama_keychain_subkey(ref, 9, "lamastor", b), 0);
	assert_memory_equal(a, b, 32);
	lama_keychain_free(kc);
	kc = (lama_keychain *)1; /* must be reset on failure */
	assert_int_equal(lama_keychain_unlock(&kc, "wp", 2, &p, salt, w, "u", 1), LAMA_EAUTH);
	assert_null(kc);
	lama_keychain_free(ref);
	lama_wipe(master, 32);
}

/* Fail each allocation in turn: every call either succeeds or returns
 * LAMA_ENOMEM with nothing leaked (ASan's leak check runs at exit). */
static void test_alloc_failures(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	uint8_t master[32] = { 9 }, salt[16], w[LAMA_MASTER_WRAPPED_BYTES], got[32];
	unsigned long n;
	int rc;

	(void)state;
	assert_int_equal(lama_master_wrap(master, "pw", 2, &p, salt, w, NULL, 0), 0);
	for (n = 1; n < 10; n++) {
		lama_keychain *kc = (lama_keychain *)1;
		struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

		lama_mem_fail_after(n, 0);
		rc = lama_keychain_new(&kc, master);
		if (rc) {
			assert_int_equal(rc, LAMA_ENOMEM);
			assert_null(kc);
			continue;
		}
		rc = lama_keychain_wrap(kc, "k", master, 32, &b);
		assert_true(rc == 0 || rc == LAMA_ENOMEM);
		if (rc == 0) {
			assert_int_equal(lama_keychain_unwrap(kc, "k", (uint8_t *)b.data, b.len,
							      got, 32), 0);
		}
		lama_buf_release(&b);
		lama_keychain_free(kc);
		lama_mem_fail_after(0, 0);
	}
	lama_mem_fail_after(1, 0);
	assert_int_equal(lama_master_unwrap(got, "pw", 2, &p, salt, w, NULL, 0), LAMA_ENOMEM);
	lama_mem_fail_after(1, 0);
	assert_int_equal(lama_master_wrap(master, "pw", 2, &p, salt, w, NULL, 0), LAMA_ENOMEM);
	lama_mem_fail_after(0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_wrap_unwrap),
		cmocka_unit_test(test_unwrap_rejects),
		cmocka_unit_test(test_wrap_rejects_bad_args),
		cmocka_unit_test(test_subkey),
		cmocka_unit_test(test_master_wrap),
		cmocka_unit_test(test_keychain_unlock),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
