#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "testutil.h"
#include "account/account.h"
#include "util/err.h"

static char home[4096];

static int setup(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(home);
	return 0;
}

static struct lama_kdf_params kdf(void)
{
	return lama_kdf_min();
}

static void test_register_login(void **state)
{
	struct lama_kdf_params p = kdf();
	lama_session *s = NULL;
	lama_hash person, instance;
	json_t *obj;

	(void)state;
	assert_int_equal(lama_account_register(home, "alice", "pw", 2, &p, &s), 0);
	person = *lama_session_person(s);
	instance = *lama_session_instance(s);
	/* the person is a ONE Person whose current version carries the name */
	lama_hash cur;
	assert_int_equal(lama_archive_current(lama_session_archive(s), &person, &cur), 0);
	assert_int_equal(lama_archive_get(lama_session_archive(s), &cur, &obj), 0);
	assert_string_equal(json_string_value(json_object_get(obj, "$type$")), "Person");
	assert_string_equal(json_string_value(json_object_get(obj, "name")), "alice");
	json_decref(obj);
	lama_session_logout(s);

	assert_int_equal(lama_account_login(home, "alice", "pw", 2, &s), 0);
	assert_true(lama_hash_eq(lama_session_person(s), &person));
	assert_true(lama_hash_eq(lama_session_instance(s), &instance));
	lama_session_logout(s);
	/* the only user: no name needed */
	assert_int_equal(lama_account_login(home, NULL, "pw", 2, &s), 0);
	lama_session_logout(s);
}

/* Register and login in two steps (the Argon2id made elsewhere, as a
 * crypto worker does) agree with the one-step calls both ways. */
static void test_key_steps(void **state)
{
	struct lama_kdf_params p = kdf(), got;
	uint8_t salt[LAMA_SALT_BYTES], wkey[LAMA_KEY_BYTES], bad[LAMA_KEY_BYTES];
	lama_session *s = NULL;
	lama_hash person;

	(void)state;
	lama_random(salt, sizeof(salt));
	assert_int_equal(lama_pwhash(wkey, "pw", 2, salt, &p), 0);
	assert_int_equal(lama_account_register_key(home, "carol", salt, &p, wkey, &s), 0);
	person = *lama_session_person(s);
	lama_session_logout(s);
	/* the password opens it the usual way */
	assert_int_equal(lama_account_login(home, "carol", "pw", 2, &s), 0);
	assert_true(lama_hash_eq(lama_session_person(s), &person));
	lama_session_logout(s);
	/* the record gives back the salt and the cost; the key opens it */
	assert_int_equal(lama_account_kdf_input(home, "carol", salt, &got), 0);
	assert_int_equal(got.opslimit, p.opslimit);
	assert_int_equal(got.memlimit, p.memlimit);
	assert_int_equal(lama_pwhash(wkey, "pw", 2, salt, &got), 0);
	assert_int_equal(lama_account_login_key(home, "carol", wkey, &s), 0);
	assert_true(lama_hash_eq(lama_session_person(s), &person));
	lama_session_logout(s);
	/* a wrong key is a wrong password, and an unknown user is not found */
	memcpy(bad, wkey, sizeof(bad));
	bad[0] ^= 1;
	assert_int_equal(lama_account_login_key(home, "carol", bad, &s), LAMA_EAUTH);
	assert_null(s);
	assert_int_equal(lama_account_kdf_input(home, "nobody", salt, &got), LAMA_ENOTFOUND);
	assert_int_equal(lama_account_register_key(home, "carol", salt, &p, wkey, &s), LAMA_EEXIST);
	lama_error_clear();
}

static void test_wrong_password_changes_nothing(void **state)
{
	struct lama_kdf_params p = kdf();
	lama_session *s = NULL;

	(void)state;
	assert_int_equal(lama_account_register(home, "bob", "right", 5, &p, &s), 0);
	lama_session_logout(s);
	s = (lama_session *)1;
	assert_int_equal(lama_account_login(home, "bob", "wrong", 5, &s), LAMA_EAUTH);
	assert_null(s);
	assert_string_equal(lama_errmsg(), "wrong password");
	assert_int_equal(lama_account_login(home, "nobody", "right", 5, &s), LAMA_ENOTFOUND);
	assert_int_equal(lama_account_login(home, "bob", "right", 5, &s), 0);
	lama_session_logout(s);
}

static void test_duplicate_and_bad_names(void **state)
{
	struct lama_kdf_params p = kdf();
	lama_session *s = NULL;
	size_t n;

	(void)state;
	assert_int_equal(lama_account_register(home, "carol", "pw", 2, &p, &s), 0);
	lama_session_logout(s);
	assert_int_equal(lama_account_register(home, "carol", "pw", 2, &p, &s), LAMA_EEXIST);
	assert_int_equal(lama_account_register(home, "", "pw", 2, &p, &s), LAMA_EINVAL);
	assert_int_equal(lama_account_register(home, "a\nb", "pw", 2, &p, &s), LAMA_EINVAL);
	assert_int_equal(lama_account_register(home, "dave", "", 0, &p, &s), LAMA_EINVAL);
	assert_int_equal(lama_account_count(home, &n), 0);
	assert_int_equal(n, 1); /* failed registrations leave nothing */
	assert_int_equal(lama_account_register(home, "dave", "pw", 2, &p, &s), 0);
	lama_session_logout(s);
	assert_int_equal(lama_account_count(home, &n), 0);
	assert_int_equal(n, 2);
	/* two users: a name is needed */
	assert_int_equal(lama_account_login(home, NULL, "pw", 2, &s), LAMA_EINVAL);
}

static void test_passwd(void **state)
{
	struct lama_kdf_params p = kdf();
	lama_session *s = NULL;
	lama_hash h;

	(void)state;
	assert_int_equal(lama_account_register(home, "erin", "old", 3, &p, &s), 0);
	assert_int_equal(lama_archive_put_clob(lama_session_archive(s), "kept", 4, &h), 0);
	lama_session_logout(s);
	assert_int_equal(lama_account_passwd(home, "erin", "bad", 3, "new", 3, &p), LAMA_EAUTH);
	assert_int_equal(lama_account_login(home, "erin", "old", 3, &s), 0); /* still the old one */
	lama_session_logout(s);
	assert_int_equal(lama_account_passwd(home, "erin", "old", 3, "new", 3, &p), 0);
	assert_int_equal(lama_account_login(home, "erin", "old", 3, &s), LAMA_EAUTH);
	assert_int_equal(lama_account_login(home, "erin", "new", 3, &s), 0);
	assert_int_equal(lama_store_has(lama_session_store(s), &h), 1);
	lama_session_logout(s);
}

static void test_erase(void **state)
{
	struct lama_kdf_params p = kdf();
	lama_session *s = NULL;
	size_t n;

	(void)state;
	assert_int_equal(lama_account_register(home, "frank", "pw", 2, &p, &s), 0);
	lama_session_logout(s);
	assert_int_equal(lama_account_register(home, "gina", "pw", 2, &p, &s), 0);
	lama_session_logout(s);
	assert_int_equal(lama_account_erase(home, "frank", "no", 2), LAMA_EAUTH);
	assert_int_equal(lama_account_erase(home, "frank", "pw", 2), 0);
	assert_int_equal(lama_account_login(home, "frank", "pw", 2, &s), LAMA_ENOTFOUND);
	assert_int_equal(lama_account_count(home, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(lama_account_login(home, "gina", "pw", 2, &s), 0);
	lama_session_logout(s);
}

static void test_sign_with_session_keys(void **state)
{
	struct lama_kdf_params p = kdf();
	lama_session *s = NULL;
	uint8_t sig[LAMA_SIG_BYTES];

	(void)state;
	assert_int_equal(lama_account_register(home, "hank", "pw", 2, &p, &s), 0);
	for (int who = 0; who < 2; who++) {
		uint8_t spk[LAMA_SIGN_PK_BYTES], bpk[LAMA_BOX_PK_BYTES];
		char shex[65], bhex[65], ohex[65];
		lama_hash kh;
		json_t *k, *got;

		assert_int_equal(lama_session_sign(s, who, "msg", 3, sig), 0);
		/* the public keys verify the session's signature, and they are
		 * exactly what the Keys object written at register holds */
		assert_int_equal(lama_session_public_keys(s, who, spk, bpk), 0);
		assert_int_equal(lama_verify(sig, "msg", 3, spk), 0);
		lama_hex_encode(spk, 32, shex);
		lama_hex_encode(bpk, 32, bhex);
		lama_hash_hex(who ? lama_session_instance(s) : lama_session_person(s), ohex);
		k = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Keys", "owner", ohex, "publicKey", bhex,
			      "publicSignKey", shex);
		assert_int_equal(lama_object_hash(lama_session_recipes(s), k, &kh, NULL), 0);
		assert_int_equal(lama_archive_get(lama_session_archive(s), &kh, &got), 0);
		json_decref(got);
		json_decref(k);
	}
	lama_session_logout(s);
}

static void test_home_resolve(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(lama_home_resolve("/x/y", out, sizeof(out)), 0);
	assert_string_equal(out, "/x/y");
	setenv("LAMA_HOME", "/from/env", 1);
	assert_int_equal(lama_home_resolve(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "/from/env");
	unsetenv("LAMA_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(lama_home_resolve(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u/.local/share/lama");
	assert_int_equal(lama_home_resolve(NULL, out, 8), LAMA_ELIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_and_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passwd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_erase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_with_session_keys, setup, teardown),
		cmocka_unit_test(test_home_resolve),
	};

	if (lama_crypto_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
