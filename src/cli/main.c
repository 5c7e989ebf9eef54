/* main.c: the lama command line. Parses global options and dispatches to
 * one cmd_*.c file per command (git's builtin/ habit). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "models/models.h"
#include "util/err.h"
#include "util/mem.h"

struct cli_globals cli;

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "register", cmd_register, "create a user: person, this device's instance, the archive" },
	{ "serve", cmd_serve, "run the main process: the IPC socket (docs/ipc.md)" },
	{ "login", cmd_login, "check the password and show who you are" },
	{ "passwd", cmd_passwd, "change the password" },
	{ "erase", cmd_erase, "remove a user and all their data" },
	{ "object", cmd_object, "store and read ONE objects (put, get, heads, merge, refs)" },
	{ "blob", cmd_blob, "store and read BLOBs (put, get)" },
	{ "backup", cmd_backup, "write one encrypted file holding all of the user's data" },
	{ "restore", cmd_restore, "bring a backup back into a data folder" },
	{ "check", cmd_check, "verify every object and BLOB in the archive" },
	{ "contacts", cmd_contacts, "list, add and show people (add, show, me)" },
	{ "me", cmd_me, "show your own profile" },
	{ "profile", cmd_profile, "edit your profile (set --name, --status, --avatar)" },
	{ "topics", cmd_topics, "list your conversations" },
	{ "topic", cmd_topic, "start a conversation (topic new), mark one read" },
	{ "send", cmd_send, "send a message, with attachments or as a reply" },
	{ "messages", cmd_messages, "read a conversation, newest page first" },
	{ "edit", cmd_edit, "change the text of a message you sent" },
	{ "delete", cmd_delete, "delete a message you sent" },
	{ "search", cmd_search, "find messages by their words, best matches first" },
	{ "watch", cmd_watch, "print updates from the running lama serve as they happen" },
	{ "workers", cmd_workers, "the running lama serve's worker processes: pid, tasks, restarts" },
	{ "worker", cmd_worker, "(internal) a worker process; lama serve starts them" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lama [--home DIR] [--user NAME] COMMAND [ARGS]\n\n"
		   "lama is a local-first, end-to-end-encrypted messenger. Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nThe data folder is --home DIR, else $LAMA_HOME, else ~/.local/share/lama.\n"
		   "The password comes from $LAMA_PASSWORD, else a prompt.\n"
		   "Run `lama COMMAND --help` for a command's options.\n");
}

int cli_number(const char *arg, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

void cli_when(double ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !localtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M", &tm))
		snprintf(out, n, "-");
}

int cli_fail(int rc)
{
	(void)rc;
	fprintf(stderr, "lama: %s\n", lama_errmsg());
	return EXIT_FAIL;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("lama: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* Length of the UTF-8 sequence at p (at most n bytes) and its code
 * point, or 0 if it is not valid (overlong, surrogate, beyond U+10FFFF,
 * cut short). */
static size_t utf8_at(const unsigned char *p, size_t n, unsigned long *cp)
{
	size_t len;
	unsigned long c = p[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, c &= 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Code points that steer a terminal or reorder what it shows. */
static int unsafe_cp(unsigned long c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2066 && c <= 0x2069) || c == 0x200e || c == 0x200f || c == 0x061c ||
	       c == 0x2028 || c == 0x2029;
}

void cli_put_clean(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	while (n > 0) {
		unsigned long cp;
		size_t len = utf8_at(p, n, &cp);

		if (!len) {
			fputc('?', f);
			len = 1;
		} else if (unsafe_cp(cp)) {
			fputs("\xef\xbf\xbd", f); /* U+FFFD */
		} else {
			fwrite(p, 1, len, f);
		}
		p += len;
		n -= len;
	}
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	}
	return 0;
}

int cli_print_json(json_t *v)
{
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;

	json_decref(v);
	if (!text)
		return lama_error(LAMA_ENOMEM, "out of memory");
	puts(text);
	free(text);
	return 0;
}

int cli_hash_arg(const char *s, lama_hash *h)
{
	if (lama_hash_parse(s, strlen(s), h))
		return lama_error(LAMA_EINVAL, "not a hash: %.80s (expected 64 lower-case hex characters)", s);
	return 0;
}

int cli_kdf(struct lama_kdf_params *p)
{
	const char *k = getenv("LAMA_KDF");

	if (!k || !*k || !strcmp(k, "moderate"))
		*p = lama_kdf_moderate();
	else if (!strcmp(k, "interactive"))
		*p = lama_kdf_interactive();
	else if (!strcmp(k, "min"))
		*p = lama_kdf_min();
	else
		return lama_error(LAMA_EINVAL, "LAMA_KDF must be moderate, interactive or min");
	return 0;
}

#define PW_MAX 1024

/* While echo is off, a signal that ends lama must turn it back on first. */
static int prompt_fd = -1;
static struct termios prompt_saved;

static void prompt_signal(int sig)
{
	if (prompt_fd >= 0)
		tcsetattr(prompt_fd, TCSAFLUSH, &prompt_saved); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void prompt_guard(int fd, const struct termios *saved)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (fd >= 0) {
		prompt_saved = *saved;
		prompt_fd = fd;
		sa.sa_handler = prompt_signal;
	} else {
		prompt_fd = -1;
		sa.sa_handler = SIG_DFL;
	}
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

int cli_password(const char *envvar, const char *prompt, char **pw, size_t *len)
{
	const char *env = getenv(envvar);
	char *buf = lama_secure_alloc(PW_MAX + 2);
	struct termios old, quiet;
	FILE *tty;
	size_t n;
	int echo_off = 0;

	*pw = NULL;
	*len = 0;
	if (!buf)
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	if (env) {
		n = strlen(env);
		if (n > PW_MAX) {
			lama_secure_free(buf);
			return lama_error(LAMA_ELIMIT, "the password is longer than %d bytes", PW_MAX);
		}
		memcpy(buf, env, n + 1);
		*pw = buf;
		*len = n;
		return 0;
	}
	tty = fopen("/dev/tty", "r+e");
	if (!tty) {
		lama_secure_free(buf);
		return lama_error(LAMA_EINVAL, "no password: set %s or run in a terminal", envvar);
	}
	/* unbuffered: the typed password must not sit in stdio's own buffer */
	setvbuf(tty, NULL, _IONBF, 0);
	/* echo off first, then the prompt: whatever is typed after the prompt
	 * appears is kept (TCSAFLUSH only drops what came before it) */
	if (tcgetattr(fileno(tty), &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		prompt_guard(fileno(tty), &old);
		echo_off = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
	}
	fputs(prompt, tty);
	fflush(tty);
	if (!fgets(buf, PW_MAX + 2, tty))
		buf[0] = '\0';
	if (echo_off)
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	prompt_guard(-1, NULL);
	fputc('\n', tty);
	fclose(tty);
	n = strcspn(buf, "\n");
	if (n > PW_MAX) {
		lama_secure_free(buf);
		return lama_error(LAMA_ELIMIT, "the password is longer than %d bytes", PW_MAX);
	}
	buf[n] = '\0';
	*pw = buf;
	*len = n;
	return 0;
}

int cli_new_password(const char *envvar, char **pw, size_t *len)
{
	char *again;
	size_t n;
	int rc;

	rc = cli_password(envvar, "New password: ", pw, len);
	if (rc || getenv(envvar))
		return rc;
	/* typed at a prompt: a typo would lock the user out, so ask twice */
	rc = cli_password(envvar, "Repeat the new password: ", &again, &n);
	if (!rc && (n != *len || lama_memcmp_ct(again, *pw, n) != 0))
		rc = lama_error(LAMA_EINVAL, "the passwords do not match; nothing was changed");
	lama_secure_free(again);
	if (rc) {
		lama_secure_free(*pw);
		*pw = NULL;
	}
	return rc;
}

int cli_login(lama_session **s)
{
	char *pw;
	size_t len;
	int rc;

	rc = cli_password("LAMA_PASSWORD", "Password: ", &pw, &len);
	if (rc)
		return rc;
	rc = lama_account_login(cli.home, cli.user, pw, len, s);
	lama_secure_free(pw);
	return rc;
}

int cli_login_models(lama_session **s)
{
	int rc;

	if ((rc = cli_login(s)))
		return rc;
	if ((rc = lama_models_init(*s))) {
		lama_session_logout(*s);
		*s = NULL;
	}
	return rc;
}

/* Takes --home/--user (with a value or =value) out of argv. */
static int take_globals(int *argc, char **argv)
{
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char **slot = NULL;
		const char *val = NULL;

		if (!strcmp(argv[i], "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strncmp(argv[i], "--home", 6))
			slot = &cli.home_opt;
		else if (!strncmp(argv[i], "--user", 6))
			slot = &cli.user;
		if (slot && argv[i][6] == '=') {
			val = argv[i] + 7;
		} else if (slot && argv[i][6] == '\0') {
			if (i + 1 >= *argc)
				return cli_usage("%s needs a value", argv[i]);
			val = argv[++i];
		} else {
			argv[out++] = argv[i];
			continue;
		}
		if (!*val)
			return cli_usage("%.6s needs a value", argv[i][6] == '=' ? argv[i] : argv[i - 1]);
		*slot = val;
	}
	*argc = out;
	argv[out] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (lama_crypto_init()) {
		fprintf(stderr, "lama: cannot initialise libsodium\n");
		return EXIT_FAIL;
	}
	if ((rc = take_globals(&argc, argv)))
		return rc;
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		puts("lama 0.1.0");
		return EXIT_OK;
	}
	if (lama_home_resolve(cli.home_opt, cli.home, sizeof(cli.home)))
		return cli_fail(-1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		rc = commands[i].fn(argc - 1, argv + 1);
		/* a result that never reached its reader (a full disk, a closed
		 * pipe) is a failure, or a printed hash would be lost */
		if (rc == EXIT_OK && (fflush(stdout) == EOF || ferror(stdout))) {
			fprintf(stderr, "lama: cannot write the output: %s\n", strerror(errno));
			return EXIT_FAIL;
		}
		return rc;
	}
	return cli_usage("unknown command '%s' (see `lama --help`)", argv[1]);
}
