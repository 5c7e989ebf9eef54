/* cmd_search.c: lama search QUERY. Through the running lama serve when
 * there is one (query:search), else over the user's own index file,
 * brought up to date with the archive first (src/search). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "cli/cli.h"
#include "leute/leute.h"
#include "search/search.h"
#include "util/err.h"
#include "util/mem.h"

#define USAGE "usage: lama search QUERY [--topic TOPIC] [--limit N] [--rebuild] [--json]"

struct meter {
	int shown;
};

static int meter(void *ctx, uint64_t done, uint64_t total)
{
	struct meter *m = ctx;

	fprintf(stderr, "\rindexing messages: %llu of %llu", (unsigned long long)done,
		(unsigned long long)total);
	m->shown = 1;
	return 0;
}

/* The snippet, cleaned, its words in bold on a terminal. */
static void put_snippet(const json_t *r, int tty)
{
	const char *s = json_string_value(json_object_get(r, "snippet"));
	size_t n = s ? strlen(s) : 0, at = 0, i;
	json_t *hl;

	if (!s)
		return;
	json_array_foreach(json_object_get(r, "highlights"), i, hl) {
		json_int_t off = json_integer_value(json_array_get(hl, 0));
		json_int_t len = json_integer_value(json_array_get(hl, 1));

		/* from a server: checked before use */
		if (off < (json_int_t)at || len <= 0 || (size_t)(off + len) > n)
			continue;
		cli_put_clean(stdout, s + at, (size_t)off - at);
		if (tty)
			fputs("\033[1m", stdout);
		cli_put_clean(stdout, s + off, (size_t)len);
		if (tty)
			fputs("\033[0m", stdout);
		at = (size_t)(off + len);
	}
	cli_put_clean(stdout, s + at, n - at);
}

static int print(json_t *res, int json)
{
	const json_t *r;
	size_t i;
	int tty = isatty(STDOUT_FILENO);

	if (json)
		return cli_print_json(res);
	json_array_foreach(json_object_get(res, "results"), i, r) {
		const char *v;
		char w[32];

		cli_when(json_number_value(json_object_get(r, "time")), w, sizeof(w));
		printf("[%s] ", w);
		v = json_string_value(json_object_get(r, "sender_name"));
		cli_put_clean(stdout, v ? v : "?", v ? strlen(v) : 1);
		fputs(" in ", stdout);
		v = json_string_value(json_object_get(r, "topic_title"));
		cli_put_clean(stdout, v ? v : "?", v ? strlen(v) : 1);
		fputs(": ", stdout);
		put_snippet(r, tty);
		v = json_string_value(json_object_get(r, "id"));
		printf("  (%.12s)\n", v ? v : "?");
	}
	if (!json_array_size(json_object_get(res, "results")))
		fputs("no messages found\n", stderr);
	/* a server still building its index answers with what it has */
	if (json_is_true(json_object_get(res, "partial")))
		fputs("(the index is still being built: these are the matches so far)\n", stderr);
	json_decref(res);
	return 0;
}

static int search_remote(cli_conn *k, const char *query, const char *topic, long limit, json_t **res)
{
	json_t *p = json_pack("{s:s, s:I}", "query", query, "limit", (json_int_t)limit);

	if (p && topic && cli_set(p, "topic", topic)) {
		json_decref(p);
		return LAMA_EINVAL;
	}
	return cli_call(k, "query:search", p, res);
}

int cmd_search(int argc, char **argv)
{
	const char *query = NULL, *topic = NULL;
	struct lama_topic t;
	struct meter m = { 0 };
	lama_search *x = NULL;
	lama_session *s = NULL;
	json_t *res = NULL;
	long limit = 20;
	int json = 0, rebuild = 0, rc;

	memset(&t, 0, sizeof(t));
	if (cli_wants_help(argc, argv)) {
		puts(USAGE "\n\n"
		     "Finds messages by their words, best matches first (bm25), with the\n"
		     "words shown in an excerpt. All words are required; \"two words\" is a\n"
		     "phrase; -word or -\"a phrase\" excludes; a OR b wants either. Case and\n"
		     "accents do not matter; there are no prefix searches. --topic limits the\n"
		     "search to one conversation, --limit gives at most N results (default 20,\n"
		     "at most 1000). The index (DIR/search.db) is a cache kept up to date\n"
		     "with the archive; --rebuild makes it again from the archive.\n"
		     "JSON: {\"query\", \"results\": [{id, topic, topic_title, sender,\n"
		     "sender_name, time, rank, snippet, highlights: [[offset, length]]}]}.");
		return EXIT_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
			if (cli_number(argv[++i], 1, LAMA_SEARCH_LIMIT_MAX, &limit))
				return cli_usage("--limit must be a number from 1 to %d", LAMA_SEARCH_LIMIT_MAX);
		} else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
			topic = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--rebuild")) {
			rebuild = 1;
		} else if (!query && (strncmp(argv[i], "--", 2) || !strcmp(argv[i], "--"))) {
			/* a query may start with "-" (an exclusion) */
			if (!strcmp(argv[i], "--") && i + 1 < argc)
				i++;
			query = argv[i];
		} else {
			return cli_usage(USAGE);
		}
	}
	if (!query)
		return cli_usage(USAGE);
	if (!rebuild) {
		cli_conn *k;

		if ((rc = cli_connect(&k)))
			goto out;
		if (k) {
			rc = search_remote(k, query, topic, limit, &res);
			cli_disconnect(k);
			/* a lama serve from before query:search: search here */
			if (rc && strstr(lama_errmsg(), "no handler for channel")) {
				lama_error_clear();
			} else {
				if (!rc)
					rc = print(res, json);
				res = NULL;
				goto out;
			}
		}
	}
	if ((rc = cli_login_models(&s)))
		goto out;
	if (topic && (rc = lama_chat_find(s, topic, &t)))
		goto out;
	if ((rc = lama_search_open(s, &x)))
		goto out;
	/* a cache: made on first use, then only topics that changed */
	if (rebuild || !lama_search_is_built(x))
		rc = lama_search_rebuild(s, x, isatty(STDERR_FILENO) ? meter : NULL, &m);
	else
		rc = lama_search_sync(s, x, isatty(STDERR_FILENO) ? meter : NULL, &m);
	if (m.shown)
		fputc('\n', stderr);
	if (rc)
		goto out;
	{
		struct lama_search_opts o = { .topic = topic ? t.id : NULL, .limit = (size_t)limit };

		if ((rc = lama_search_query_json(s, x, query, strlen(query), &o, &res)))
			goto out;
	}
	rc = print(res, json);
	res = NULL;
out:
	json_decref(res);
	lama_topic_release(&t);
	lama_search_close(x);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}
