/* cmd_backup.c: lama backup FILE, lama restore FILE (src/backup). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "backup/backup.h"
#include "cli/cli.h"
#include "util/err.h"
#include "util/mem.h"

/* Archives under this size finish before a progress line would help. */
#define PROGRESS_MIN ((uint64_t)16 << 20)

struct meter {
	const char *what;
	int shown; /* a line is on the terminal */
	int last;  /* percent last shown */
};

static void meter_fn(void *ctx, uint64_t done, uint64_t total)
{
	struct meter *m = ctx;
	int pct;

	if (total < PROGRESS_MIN)
		return;
	pct = (int)(done * 100 / total);
	if (m->shown && pct == m->last)
		return;
	m->last = pct;
	m->shown = 1;
	fprintf(stderr, "\rlama: %s %3d%%", m->what, pct);
	fflush(stderr);
}

static void meter_end(struct meter *m)
{
	if (m->shown)
		fputc('\n', stderr);
	m->shown = 0;
}

/* Progress on stderr only when a person watches it. */
static const struct lama_backup_progress *meter_for(struct meter *m, struct lama_backup_progress *p)
{
	if (!isatty(STDERR_FILENO))
		return NULL;
	p->fn = meter_fn;
	p->ctx = m;
	return p;
}

int cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct meter m = { "backup", 0, -1 };
	struct lama_backup_progress prog;
	const char *file;
	lama_session *s = NULL;
	struct stat sb;
	char *pw = NULL;
	size_t len;
	int c, rc, force = 0, json = 0;

	while ((c = getopt_long(argc, argv, "fjh", opts, NULL)) != -1) {
		if (c == 'f')
			force = 1;
		else if (c == 'j')
			json = 1;
		else if (c == 'h') {
			puts("usage: lama [--user NAME] backup [--force] [--json] FILE\n\n"
			     "Writes one file holding all of the user's data: the account and a\n"
			     "consistent copy of the archive, encrypted under the user's password\n"
			     "(Argon2id, then XChaCha20-Poly1305 in 64 KiB chunks). Nothing in it,\n"
			     "not even the user's name, can be read without the password, and any\n"
			     "change to the file is detected. Works while `lama serve` runs.\n"
			     "The password comes from $LAMA_PASSWORD, else a prompt. An existing\n"
			     "FILE is replaced only with --force. Bring it back with `lama restore`.\n"
			     "Format: docs/backup.md.");
			return EXIT_OK;
		} else
			return EXIT_USAGE;
	}
	if (optind + 1 != argc)
		return cli_usage("usage: lama [--user NAME] backup [--force] [--json] FILE");
	file = argv[optind];
	if (!force && lstat(file, &sb) == 0)
		return cli_usage("%s exists already (use --force to replace it)", file);
	rc = cli_password("LAMA_PASSWORD", "Password: ", &pw, &len);
	if (!rc)
		rc = lama_account_login(cli.home, cli.user, pw, len, &s);
	if (!rc)
		rc = lama_backup_write(s, file, pw, len, meter_for(&m, &prog));
	meter_end(&m);
	lama_session_logout(s);
	lama_secure_free(pw);
	if (rc)
		return cli_fail(rc);
	if (stat(file, &sb) != 0)
		return cli_fail(lama_error(LAMA_EIO, "cannot read %s: %s", file, strerror(errno)));
	if (json)
		return cli_print_json(json_pack("{s:s, s:I}", "file", file, "bytes",
						(json_int_t)sb.st_size)) ? cli_fail(-1) : EXIT_OK;
	printf("backup written to %s (%llu bytes)\n", file, (unsigned long long)sb.st_size);
	return EXIT_OK;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct meter m = { "restore", 0, -1 };
	struct lama_backup_progress prog;
	char *pw = NULL, *name = NULL;
	size_t len;
	int c, rc, json = 0;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h') {
			puts("usage: lama [--home DIR] restore [--json] FILE\n\n"
			     "Brings back a backup made by `lama backup` into the data folder: the\n"
			     "user, with the same password, every object, message and file. The\n"
			     "folder must not hold that user already (another user is fine). The\n"
			     "whole file is checked first: a wrong password, a damaged, cut short\n"
			     "or edited file is refused and nothing is written. The password\n"
			     "comes from $LAMA_PASSWORD, else a prompt.");
			return EXIT_OK;
		} else
			return EXIT_USAGE;
	}
	if (optind + 1 != argc)
		return cli_usage("usage: lama [--home DIR] restore [--json] FILE");
	rc = cli_password("LAMA_PASSWORD", "Password of the backup: ", &pw, &len);
	if (!rc)
		rc = lama_backup_restore(cli.home, argv[optind], pw, len, &name, meter_for(&m, &prog));
	meter_end(&m);
	lama_secure_free(pw);
	if (rc)
		return cli_fail(rc);
	if (json)
		rc = cli_print_json(json_pack("{s:s, s:s}", "user", name, "home", cli.home));
	else {
		fputs("restored user ", stdout);
		cli_put_clean(stdout, name, strlen(name));
		printf(" into %s\n", cli.home);
	}
	lama_free(name);
	return rc ? cli_fail(rc) : EXIT_OK;
}
