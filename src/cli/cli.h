/* cli.h: what the command files share. Commands are `int cmd_x(int argc,
 * char **argv)` returning the exit status; they print one-line errors on
 * stderr and results on stdout. Only this layer prints or exits. */
#ifndef LAMA_CLI_H
#define LAMA_CLI_H

#include <stdio.h>

#include "account/account.h"

/* Global options, set by main() before the command runs. */
struct cli_globals {
	const char *home_opt; /* --home */
	const char *user;     /* --user, NULL: the only user */
	char home[LAMA_PATH_MAX];
};
extern struct cli_globals cli;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Prints "lama: <message>" for the last error and returns EXIT_FAIL. */
int cli_fail(int rc);
/* Prints "lama: <fmt>" and returns EXIT_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a password from $envvar, else prompts on the terminal without
 * echo. *pw is secure memory (lama_secure_free). */
int cli_password(const char *envvar, const char *prompt, char **pw, size_t *len);
/* A new password: from $envvar, else prompted twice (must match). */
int cli_new_password(const char *envvar, char **pw, size_t *len);
/* Logs in with the password from LAMA_PASSWORD or a prompt. */
int cli_login(lama_session **s);
/* The Argon2id cost for new passwords: $LAMA_KDF = moderate (default),
 * interactive or min (the last two for tests and slow machines). */
int cli_kdf(struct lama_kdf_params *p);

/* Parses a hash argument (64 lower-case hex) with a clear message. */
int cli_hash_arg(const char *s, lama_hash *h);
/* Stores a file (- for stdin; otherwise a regular file) as a BLOB,
 * streaming; *size (may be NULL) gets its length. A file over max bytes
 * (0: no limit) is LAMA_ELIMIT, naming it `what`. Inside the caller's
 * store transaction the BLOB commits with it. */
int cli_store_file(lama_session *s, const char *path, uint64_t max, const char *what,
		   lama_hash *h, uint64_t *size);
/* Logs in and readies the models (people, channels, chats). */
int cli_login_models(lama_session **s);
/* Prints v as one line of compact JSON and drops the reference (NULL:
 * out of memory, as json_pack reports it). */
int cli_print_json(json_t *v);
/* Writes s[0..n) for a terminal, safe when it came from a peer: C0
 * controls (newline and tab too: fields are one line), DEL, C1 controls
 * (U+0080-U+009F), bidi overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069), marks (U+200E, U+200F, U+061C) and line separators
 * (U+2028, U+2029) become U+FFFD; a byte that does not start valid UTF-8
 * becomes '?'. */
void cli_put_clean(FILE *f, const char *s, size_t n);
/* An option's decimal number within [min, max] into *out: 0, or -1 for
 * anything else (the caller names the option in its usage error). */
int cli_number(const char *arg, long min, long max, long *out);
/* Formats ms since the epoch as local "YYYY-MM-DD HH:MM" ("-" for 0). */
void cli_when(double ms, char *out, size_t n);

/* Prints a MESSAGE (docs/ipc.md) for people: time, sender, text (cleaned),
 * id, reply and attachments. */
void cli_print_message(const json_t *m);

/* The CLI as a client of a running lama serve (client.c). */
typedef struct cli_conn cli_conn;
/* Connects to the lama serve of cli.home: *out NULL (and 0) when none
 * runs there (or $LAMA_NO_SERVER is set). *out owned by the caller
 * (cli_disconnect). */
int cli_connect(cli_conn **out);
/* One request (payload taken; it must be an object: NULL, e.g. from a
 * json_pack that met text that is not UTF-8, is LAMA_EINVAL); *result gets
 * the reply's result (new reference). An error reply becomes this
 * process's error, with the LAMA_E* code of the direct call and the
 * server's message. A server silent for 30 s is LAMA_EIO. */
int cli_call(cli_conn *k, const char *channel, json_t *payload, json_t **result);
/* Waits for the next push (new reference in *push). LAMA_EIO once the
 * server closes the connection. */
int cli_next_push(cli_conn *k, json_t **push);
void cli_disconnect(cli_conn *k);
/* Sets o[key] to the string val (NULL val: nothing); LAMA_EINVAL naming
 * key when val is not UTF-8, or when o is NULL. */
int cli_set(json_t *o, const char *key, const char *val);
/* *out = r[key] as a string, or LAMA_EFORMAT: a reply is checked before
 * it is printed. */
int cli_result_str(const json_t *r, const char *key, const char **out);

/* 1 if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

int cmd_register(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_erase(int argc, char **argv);
int cmd_object(int argc, char **argv);
int cmd_blob(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_contacts(int argc, char **argv);
int cmd_me(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_topics(int argc, char **argv);
int cmd_topic(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_messages(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_workers(int argc, char **argv);

#endif
