/* account.c: register and login time with the default (moderate) Argon2id
 * cost, against a bare lama_pwhash with the same parameters. Argon2id
 * dominates both on purpose; the ratio shows what the rest costs (keys,
 * identity objects, the archive, files and fsyncs).
 *
 * Registers ROUNDS users (each in its own data folder) and logs each in
 * once, alternating with the bare hash; figures are medians in ms.
 *
 * Lines: account.register, account.login. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"
#include "common.h"
#include "crypto/crypto.h"

#define ROUNDS 5

static double pwhash_ms(const struct lama_kdf_params *kdf, const char *pw)
{
	uint8_t key[LAMA_KEY_BYTES], salt[LAMA_SALT_BYTES];
	double t0;

	lama_random(salt, sizeof(salt));
	t0 = bench_now();
	bench_check(lama_pwhash(key, pw, strlen(pw), salt, kdf), "lama_pwhash");
	t0 = bench_now() - t0;
	lama_wipe(key, sizeof(key));
	return t0 * 1e3;
}

int main(int argc, char **argv)
{
	static const char pw[] = "correct horse battery staple";
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	struct lama_kdf_params kdf;
	double reg[ROUNDS], login[ROUNDS], base[2 * ROUNDS];
	char dirs[ROUNDS][4096], extra[256];
	lama_session *s;
	double t0, r, l, b;

	bench_check(lama_crypto_init(), "crypto init");
	kdf = lama_kdf_moderate();
	(void)pwhash_ms(&kdf, pw); /* warm-up: the first hash of a process pays extra */
	for (int i = 0; i < ROUNDS; i++) {
		bench_mkdtemp(tmp, "account", dirs[i], sizeof(dirs[i]));
		base[2 * i] = pwhash_ms(&kdf, pw);
		t0 = bench_now();
		bench_check(lama_account_register(dirs[i], "bench", pw, strlen(pw), &kdf, &s),
			    "lama_account_register");
		reg[i] = (bench_now() - t0) * 1e3;
		lama_session_logout(s);
	}
	for (int i = 0; i < ROUNDS; i++) {
		base[2 * i + 1] = pwhash_ms(&kdf, pw);
		t0 = bench_now();
		bench_check(lama_account_login(dirs[i], "bench", pw, strlen(pw), &s),
			    "lama_account_login");
		login[i] = (bench_now() - t0) * 1e3;
		lama_session_logout(s);
		bench_rmtree(dirs[i]);
	}
	for (int i = 0; i < ROUNDS; i++)
		fprintf(stderr, "account: register %.1f ms, login %.1f ms, pwhash %.1f / %.1f ms\n",
			reg[i], login[i], base[2 * i], base[2 * i + 1]);
	r = bench_median(reg, ROUNDS);
	l = bench_median(login, ROUNDS);
	b = bench_median(base, 2 * ROUNDS);
	snprintf(extra, sizeof(extra),
		 "\"overhead_ms\": %.4g, \"rounds\": %d, \"opslimit\": %llu, \"memlimit\": %llu",
		 r - b, ROUNDS, (unsigned long long)kdf.opslimit, (unsigned long long)kdf.memlimit);
	bench_emit("account.register", "ms", r, "lama_pwhash (Argon2id, same params)", b, extra);
	snprintf(extra, sizeof(extra),
		 "\"overhead_ms\": %.4g, \"rounds\": %d, \"opslimit\": %llu, \"memlimit\": %llu",
		 l - b, ROUNDS, (unsigned long long)kdf.opslimit, (unsigned long long)kdf.memlimit);
	bench_emit("account.login", "ms", l, "lama_pwhash (Argon2id, same params)", b, extra);
	return 0;
}
