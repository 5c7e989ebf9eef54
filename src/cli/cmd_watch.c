/* cmd_watch.c: lama watch, the updates of a running lama serve as they
 * happen: one line (or one JSON push) each. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"

static void put(const json_t *v)
{
	const char *t = json_string_value(v);

	cli_put_clean(stdout, t ? t : "", t ? json_string_length(v) : 0);
}

static void print_push(const json_t *m)
{
	const char *ch = json_string_value(json_object_get(m, "channel"));
	const json_t *p = json_object_get(m, "payload");
	const char *what = json_string_value(json_object_get(p, "what"));

	if (!ch)
		return;
	if (!strcmp(ch, "update:messageReceived") || !strcmp(ch, "update:messageChanged")) {
		printf("%.12s ", json_string_value(json_object_get(p, "topic")));
		if (json_object_get(p, "message"))
			cli_print_message(json_object_get(p, "message"));
		else
			printf("message %.12s changed\n", json_string_value(json_object_get(p, "id")));
	} else if (!strcmp(ch, "update:stateChanged") && what) {
		if (!strcmp(what, "session"))
			printf("session: %s\n", json_is_true(json_object_get(p, "locked")) ? "locked (logged out)" : "logged in");
		else if (!strcmp(what, "contacts"))
			printf("contact added: %.12s\n", json_string_value(json_object_get(p, "person")));
		else if (!strcmp(what, "conversations"))
			printf("conversation created: %.12s\n", json_string_value(json_object_get(p, "id")));
		else if (!strcmp(what, "read"))
			printf("%.12s read (%lld unread)\n", json_string_value(json_object_get(p, "id")),
			       (long long)json_integer_value(json_object_get(p, "unread")));
		else if (!strcmp(what, "stopping"))
			printf("lama serve is stopping\n");
		else {
			fputs("state changed: ", stdout);
			put(json_object_get(p, "what"));
			putchar('\n');
		}
	} else {
		put(json_object_get(m, "channel"));
		putchar('\n');
	}
}

int cmd_watch(int argc, char **argv)
{
	cli_conn *k = NULL;
	json_t *r = NULL, *m;
	int json = 0, rc, stopping = 0;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama watch [--json]\n\n"
		     "Prints the updates of the running `lama serve` as they happen: messages\n"
		     "sent and changed, contacts and conversations added, logins, settings.\n"
		     "--json prints each push as the server sends it (docs/ipc.md), one per\n"
		     "line. Ends when the server stops.");
		return EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cli_usage("usage: lama watch [--json]");
	json = argc == 2;
	if ((rc = cli_connect(&k)))
		return cli_fail(rc);
	if (!k)
		return cli_fail(lama_error(LAMA_ENOTFOUND, "lama serve is not running on %s", cli.home));
	rc = cli_call(k, "action:subscribe", json_object(), &r);
	json_decref(r);
	while (!rc && !(rc = cli_next_push(k, &m))) {
		const json_t *p = json_object_get(m, "payload");
		const char *what = json_string_value(json_object_get(p, "what"));

		stopping = what && !strcmp(what, "stopping");
		if (json)
			rc = cli_print_json(json_incref(m));
		else
			print_push(m);
		json_decref(m);
		if (!rc && fflush(stdout) == EOF)
			rc = lama_error(LAMA_EIO, "cannot write the output: %s", strerror(errno));
	}
	cli_disconnect(k);
	if (stopping) /* the server said goodbye: a normal end */
		return EXIT_OK;
	return cli_fail(rc);
}
