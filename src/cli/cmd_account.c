/* cmd_account.c: register, login, passwd, erase. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"

static void print_identity(lama_session *s)
{
	char p[LAMA_HASH_HEX + 1], i[LAMA_HASH_HEX + 1];

	lama_hash_hex(lama_session_person(s), p);
	lama_hash_hex(lama_session_instance(s), i);
	printf("person %s\ninstance %s\n", p, i);
}

int cmd_register(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' }, { "help", no_argument, NULL, 'h' }, { 0 }
	};
	const char *name = NULL;
	struct lama_kdf_params kdf;
	lama_session *s;
	char *pw;
	size_t len;
	int c, rc;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		if (c == 'n')
			name = optarg;
		else if (c == 'h') {
			puts("usage: lama register --name NAME\n\n"
			     "Creates a user in the data folder: a person with signing and encryption\n"
			     "keys, an instance for this device with its own keys, and an encrypted\n"
			     "archive. The password comes from $LAMA_PASSWORD, else a prompt.\n"
			     "$LAMA_KDF=interactive|min lowers the Argon2id cost (tests only).");
			return EXIT_OK;
		} else
			return EXIT_USAGE;
	}
	if (!name || optind != argc)
		return cli_usage("usage: lama register --name NAME");
	if ((rc = cli_kdf(&kdf)))
		return cli_fail(rc);
	if ((rc = cli_new_password("LAMA_PASSWORD", &pw, &len)))
		return cli_fail(rc);
	rc = lama_account_register(cli.home, name, pw, len, &kdf, &s);
	lama_secure_free(pw);
	if (rc)
		return cli_fail(rc);
	print_identity(s);
	lama_session_logout(s);
	return EXIT_OK;
}

int cmd_login(int argc, char **argv)
{
	lama_session *s;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama [--user NAME] login\n\n"
		     "Unlocks the user's archive with the password and prints the person's and\n"
		     "this instance's ID hashes. Exit status 1 and \"wrong password\" otherwise.");
		return EXIT_OK;
	}
	if (argc != 1)
		return cli_usage("usage: lama [--user NAME] login");
	if ((rc = cli_login(&s)))
		return cli_fail(rc);
	print_identity(s);
	lama_session_logout(s);
	return EXIT_OK;
}

int cmd_passwd(int argc, char **argv)
{
	struct lama_kdf_params kdf;
	char *old = NULL, *new = NULL;
	size_t oldlen, newlen;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama [--user NAME] passwd\n\n"
		     "Changes the password: the old one from $LAMA_PASSWORD or a prompt, the new\n"
		     "one from $LAMA_NEW_PASSWORD or a prompt. Only the wrapped master key is\n"
		     "rewritten; the archive is untouched.");
		return EXIT_OK;
	}
	if (argc != 1)
		return cli_usage("usage: lama [--user NAME] passwd");
	rc = cli_kdf(&kdf);
	if (!rc)
		rc = cli_password("LAMA_PASSWORD", "Current password: ", &old, &oldlen);
	if (!rc)
		rc = cli_new_password("LAMA_NEW_PASSWORD", &new, &newlen);
	if (!rc)
		rc = lama_account_passwd(cli.home, cli.user, old, oldlen, new, newlen, &kdf);
	lama_secure_free(old);
	lama_secure_free(new);
	if (rc)
		return cli_fail(rc);
	fputs("password changed\n", stderr);
	return EXIT_OK;
}

int cmd_erase(int argc, char **argv)
{
	char *pw = NULL, answer[64];
	size_t len;
	int rc, yes = argc == 2 && !strcmp(argv[1], "--yes");

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama [--user NAME] erase [--yes]\n\n"
		     "Removes the user and every object, BLOB and key of theirs from the data\n"
		     "folder, after the password and a confirmation (skipped with --yes).");
		return EXIT_OK;
	}
	if (argc != 1 && !yes)
		return cli_usage("usage: lama [--user NAME] erase [--yes]");
	if (!yes) {
		FILE *tty = fopen("/dev/tty", "r+e");

		if (!tty)
			return cli_usage("erase needs a terminal to confirm, or --yes");
		setvbuf(tty, NULL, _IONBF, 0);
		fputs("This removes the user and all their data for good. Type \"erase\" to confirm: ", tty);
		fflush(tty);
		if (!fgets(answer, sizeof(answer), tty) || strcmp(answer, "erase\n") != 0) {
			fclose(tty);
			fputs("lama: not confirmed; nothing was removed\n", stderr);
			return EXIT_FAIL;
		}
		fclose(tty);
	}
	rc = cli_password("LAMA_PASSWORD", "Password: ", &pw, &len);
	if (!rc)
		rc = lama_account_erase(cli.home, cli.user, pw, len);
	lama_secure_free(pw);
	if (rc)
		return cli_fail(rc);
	fputs("user erased\n", stderr);
	return EXIT_OK;
}
