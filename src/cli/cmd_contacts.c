/* cmd_contacts.c: lama contacts [add|show|me], lama me, lama profile
 * [set]: people (src/leute, docs/people.md). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "leute/leute.h"
#include "util/err.h"

#define AVATAR_MAX ((uint64_t)8 << 20) /* bytes of a profile picture */

static const char contacts_help[] =
	"usage: lama contacts [--json]                 list your contacts\n"
	"       lama contacts add --name NAME [--email EMAIL] [--ai [--model M]] [--json]\n"
	"                                              add a contact, print its person ID\n"
	"       lama contacts show QUERY [--json]      one person's details\n"
	"       lama contacts me [--json]              yours (as `lama me`)\n\n"
	"A contact is a person (ID: the email; without --email a unique one under\n"
	"lama.local is made), the profile you keep of them and their Someone, listed\n"
	"in your Leute. --ai adds an AI assistant (its email under ai.lama.local),\n"
	"--model names the model it runs. QUERY is an email, a name (exact, any\n"
	"case) or at least 4 hex digits of the person ID; a query that matches\n"
	"several people fails and names them. The list prints one line per contact:\n"
	"short person ID, name, email and \"ai\" for an assistant. --json prints\n"
	"JSON with full hashes (docs/people.md).";

static const char profile_help[] =
	"usage: lama profile [show] [--json]             your profile (as `lama me`)\n"
	"       lama profile set [--name N] [--status S] [--avatar FILE] [--json]\n\n"
	"Edits your own main profile: a new version, which merges with edits made on\n"
	"your other devices. An empty status removes it. The avatar file (at most\n"
	"8 MiB) is stored as a BLOB. Prints the profile afterwards.";

struct opts {
	const char *name, *email, *model, *status, *avatar;
	int ai, json;
};

/* Parses options of argv (argv[0] the command); only those in `allowed`
 * (short letters) are accepted. Positionals end up in argv[optind..]. */
static int parse(int argc, char **argv, const char *allowed, struct opts *o)
{
	static const struct option lo[] = {
		{ "name", required_argument, NULL, 'n' }, { "email", required_argument, NULL, 'e' },
		{ "ai", no_argument, NULL, 'a' },         { "model", required_argument, NULL, 'm' },
		{ "status", required_argument, NULL, 's' }, { "avatar", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },       { 0 }
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0; /* one message, ours */
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == '?' || !strchr(allowed, c))
			return -1;
		switch (c) {
		case 'n': o->name = optarg; break;
		case 'e': o->email = optarg; break;
		case 'a': o->ai = 1; break;
		case 'm': o->model = optarg; break;
		case 's': o->status = optarg; break;
		case 'p': o->avatar = optarg; break;
		case 'j': o->json = 1; break;
		}
	}
	return 0;
}

/* Text from the archive may come from a peer: nothing that steers the
 * terminal (cli_put_clean). */
static void put_clean(const char *s)
{
	cli_put_clean(stdout, s, strlen(s));
}

/* cli_fail for messages that may quote peer text (the names of several
 * matches): cleaned like the results. */
static int fail_clean(int rc)
{
	const char *m = lama_errmsg();

	(void)rc;
	fputs("lama: ", stderr);
	cli_put_clean(stderr, m, strlen(m));
	fputc('\n', stderr);
	return EXIT_FAIL;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

/* One person for people, from the PERSON view (docs/ipc.md), which is
 * what both the archive and a running server give. */
static void print_details(const json_t *p)
{
	const json_t *k;
	size_t i;

	fputs("name     ", stdout);
	put_clean(jstr(p, "name"));
	printf("\nemail    ");
	put_clean(jstr(p, "email"));
	printf("\nperson   %s\n", jstr(p, "person"));
	if (json_is_true(json_object_get(p, "me")))
		puts("me       yes");
	if (json_is_true(json_object_get(p, "ai"))) {
		fputs("ai       yes", stdout);
		if (*jstr(p, "model")) {
			fputs(", model ", stdout);
			put_clean(jstr(p, "model"));
		}
		putchar('\n');
	}
	if (*jstr(p, "status")) {
		fputs("status   ", stdout);
		put_clean(jstr(p, "status"));
		putchar('\n');
	}
	if (*jstr(p, "avatar"))
		printf("avatar   %s\n", jstr(p, "avatar"));
	json_array_foreach(json_object_get(p, "signKeys"), i, k)
		printf("signkey  %s\n", json_string_value(k) ? json_string_value(k) : "");
	if (*jstr(p, "encryptionKey"))
		printf("enckey   %s\n", jstr(p, "encryptionKey"));
	if (*jstr(p, "someone")) {
		printf("someone  %s\n", jstr(p, "someone"));
		printf("profile  %s\n", jstr(p, "profile"));
	}
}

/* Prints a PERSON (taken) as details or JSON. */
static int show_json(json_t *p, int json)
{
	if (!p)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (json)
		return cli_print_json(p);
	print_details(p);
	json_decref(p);
	return 0;
}

static int show(const struct lama_person *p, int json)
{
	return show_json(lama_person_json(p), json);
}

static void print_row(const json_t *p)
{
	printf("%.12s  ", jstr(p, "person"));
	put_clean(jstr(p, "name"));
	fputs("  ", stdout);
	put_clean(jstr(p, "email"));
	puts(json_is_true(json_object_get(p, "ai")) ? "  ai" : "");
}

struct list_ctx {
	int json;
	json_t *arr;
};

static int list_one(void *ctx, const struct lama_person *p)
{
	struct list_ctx *l = ctx;
	json_t *o = lama_person_json(p);

	if (!o)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (!l->json) {
		print_row(o);
		json_decref(o);
		return 0;
	}
	if (json_array_append_new(l->arr, o))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

/* Through a running lama serve: the same output from its answers. */
static int contacts_remote(cli_conn *k, const char *verb, const char *query, const struct opts *o)
{
	json_t *r = NULL;
	int rc;

	if (!strcmp(verb, "add")) {
		json_t *p = json_object();
		const char *id;

		if ((rc = cli_set(p, "name", o->name)) || (rc = cli_set(p, "email", o->email)) ||
		    (rc = cli_set(p, "model", o->model)) ||
		    (o->ai && json_object_set_new(p, "ai", json_true()))) {
			json_decref(p);
			return rc ? rc : lama_error(LAMA_ENOMEM, "out of memory");
		}
		if ((rc = cli_call(k, "action:addContact", p, &r)))
			return rc;
		if ((rc = cli_result_str(r, "person", &id))) {
			json_decref(r);
			return rc;
		}
		if (o->json)
			return cli_print_json(r);
		printf("%s\n", id);
		json_decref(r);
		return 0;
	}
	if (!strcmp(verb, "show")) {
		if ((rc = cli_call(k, "query:getContact", json_pack("{s:s}", "query", query), &r)))
			return rc;
		return show_json(r, o->json);
	}
	if (!strcmp(verb, "me")) {
		if ((rc = cli_call(k, "query:getState", json_object(), &r)))
			return rc;
		if (!json_is_object(json_object_get(r, "user"))) {
			json_decref(r);
			return lama_error(LAMA_EAUTH, "lama serve is locked: log in through its UI first");
		}
		rc = show_json(json_incref(json_object_get(r, "user")), o->json);
		json_decref(r);
		return rc;
	}
	if ((rc = cli_call(k, "query:getContacts", json_object(), &r)))
		return rc;
	if (o->json) {
		rc = cli_print_json(json_incref(json_object_get(r, "contacts")));
	} else {
		const json_t *p;
		size_t i;

		json_array_foreach(json_object_get(r, "contacts"), i, p)
			print_row(p);
	}
	json_decref(r);
	return rc;
}

/* Logs in with the models ready (the user's people exist). */
static int login(lama_session **s)
{
	return cli_login_models(s);
}

int cmd_contacts(int argc, char **argv)
{
	struct list_ctx l = { 0 };
	struct lama_person p;
	struct opts o;
	lama_session *s;
	const char *verb;
	size_t skipped = 0;
	int rc, npos;

	if (cli_wants_help(argc, argv)) {
		puts(contacts_help);
		return EXIT_OK;
	}
	if (parse(argc, argv, "neamj", &o))
		return cli_usage("usage: lama contacts [add|show|me] ... (see lama contacts --help)");
	npos = argc - optind;
	verb = npos ? argv[optind] : "list";
	/* the shape of the arguments is checked before asking for a password */
	if (!strcmp(verb, "add")) {
		if (npos != 1 || !o.name)
			return cli_usage("usage: lama contacts add --name NAME [--email EMAIL] [--ai [--model M]] [--json]");
		if (o.model && !o.ai)
			return cli_usage("--model is for an assistant: add --ai");
	} else if (!strcmp(verb, "show")) {
		if (npos != 2 || o.name || o.email || o.ai || o.model)
			return cli_usage("usage: lama contacts show QUERY [--json]");
	} else if (!strcmp(verb, "list") || !strcmp(verb, "me")) {
		if (npos > 1 || o.name || o.email || o.ai || o.model)
			return cli_usage("usage: lama contacts [--json] | lama contacts me [--json]");
	} else {
		return cli_usage("contacts: unknown verb '%.40s' (add, show, me; see --help)", verb);
	}
	{
		cli_conn *k;

		if ((rc = cli_connect(&k)))
			return cli_fail(rc);
		if (k) {
			rc = contacts_remote(k, verb, npos == 2 ? argv[optind + 1] : NULL, &o);
			cli_disconnect(k);
			return rc ? fail_clean(rc) : EXIT_OK;
		}
	}
	if ((rc = login(&s)))
		return cli_fail(rc);
	if (!strcmp(verb, "add")) {
		rc = lama_leute_add_contact(s, o.name, o.email, o.ai, o.model, &p);
		if (!rc && o.json) {
			rc = show(&p, 1);
		} else if (!rc) {
			char hex[LAMA_HASH_HEX + 1];

			lama_hash_hex(&p.person, hex);
			printf("%s\n", hex);
		}
	} else if (!strcmp(verb, "show")) {
		rc = lama_leute_find(s, argv[optind + 1], &p);
		if (!rc)
			rc = show(&p, o.json);
	} else if (!strcmp(verb, "me")) {
		rc = lama_leute_me(s, &p);
		if (!rc)
			rc = show(&p, o.json);
	} else {
		l.json = o.json;
		if (o.json && !(l.arr = json_array()))
			rc = lama_error(LAMA_ENOMEM, "out of memory");
		if (!rc)
			rc = lama_leute_contacts_skip(s, list_one, &l, &skipped);
		if (!rc && o.json)
			rc = cli_print_json(json_incref(l.arr));
		if (!rc && skipped)
			fprintf(stderr, "lama: %zu contact%s could not be read (left out)\n", skipped,
				skipped == 1 ? "" : "s");
		json_decref(l.arr);
	}
	lama_session_logout(s);
	return rc ? fail_clean(rc) : EXIT_OK;
}

int cmd_me(int argc, char **argv)
{
	struct lama_person p;
	struct opts o;
	lama_session *s;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama me [--json]\n\n"
		     "Shows you as your contacts see you: name, email, person ID, status,\n"
		     "avatar, keys. Edit it with `lama profile set`.");
		return EXIT_OK;
	}
	if (parse(argc, argv, "j", &o) || optind != argc)
		return cli_usage("usage: lama me [--json]");
	{
		cli_conn *k;

		if ((rc = cli_connect(&k)))
			return cli_fail(rc);
		if (k) {
			rc = contacts_remote(k, "me", NULL, &o);
			cli_disconnect(k);
			return rc ? fail_clean(rc) : EXIT_OK;
		}
	}
	if ((rc = login(&s)))
		return cli_fail(rc);
	rc = lama_leute_me(s, &p);
	if (!rc)
		rc = show(&p, o.json);
	lama_session_logout(s);
	return rc ? fail_clean(rc) : EXIT_OK;
}

/* Streams a file into a BLOB (inside the caller's transaction). */
int cmd_profile(int argc, char **argv)
{
	struct lama_person p;
	struct opts o;
	lama_session *s;
	lama_store *st;
	lama_hash avatar;
	const char *verb;
	int rc, npos;

	if (cli_wants_help(argc, argv)) {
		puts(profile_help);
		return EXIT_OK;
	}
	if (parse(argc, argv, "nspj", &o))
		return cli_usage("usage: lama profile set [--name N] [--status S] [--avatar FILE] [--json]");
	npos = argc - optind;
	verb = npos ? argv[optind] : "show";
	if (npos > 1 || (strcmp(verb, "set") && strcmp(verb, "show")))
		return cli_usage("usage: lama profile [show|set] ... (see lama profile --help)");
	if (!strcmp(verb, "show") && (o.name || o.status || o.avatar))
		return cli_usage("usage: lama profile set [--name N] [--status S] [--avatar FILE]");
	if (!strcmp(verb, "set") && !o.name && !o.status && !o.avatar)
		return cli_usage("profile set: nothing to set (--name, --status or --avatar)");
	if ((rc = login(&s)))
		return cli_fail(rc);
	st = lama_session_store(s);
	if (!strcmp(verb, "set")) {
		/* the picture and the profile that shows it commit together */
		rc = lama_store_begin(st);
		if (!rc) {
			if (o.avatar)
				rc = cli_store_file(s, o.avatar, AVATAR_MAX, "avatar", &avatar, NULL);
			if (!rc)
				rc = lama_leute_set_profile(s, o.name, o.status, o.avatar ? &avatar : NULL);
			if (rc)
				lama_store_rollback(st);
			else
				rc = lama_store_commit(st);
		}
	}
	if (!rc)
		rc = lama_leute_me(s, &p);
	if (!rc)
		rc = show(&p, o.json);
	lama_session_logout(s);
	return rc ? fail_clean(rc) : EXIT_OK;
}
