/* cmd_chat.c: lama topics | topic new/read | send | messages | edit |
 * delete. Text for people, --json for scripts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "chat/chat.h"
#include "cli/cli.h"
#include "leute/leute.h"
#include "util/err.h"
#include "util/mem.h"

#define LINE_MAX_BYTES (LAMA_CHAT_TEXT_MAX + 2)

static json_t *hexj(const lama_hash *h)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(h, hex);
	return json_string(hex);
}


/* ---- lama topics ---- */

struct list_ctx {
	int json;
	json_t *arr;
};

/* One TOPIC view (docs/ipc.md), from the archive or from a server. */
static void print_topic(const json_t *t)
{
	const char *title = json_string_value(json_object_get(t, "title"));
	char w[32];

	cli_when(json_number_value(json_object_get(t, "last_time")), w, sizeof(w));
	printf("%s  ", json_string_value(json_object_get(t, "handle")));
	cli_put_clean(stdout, title ? title : "", title ? strlen(title) : 0); /* may come from a peer */
	printf("%s  (%zu people, %lld entries, %lld unread, last %s)\n",
	       json_is_true(json_object_get(t, "ai")) ? " [ai]" : "",
	       json_array_size(json_object_get(t, "participants")),
	       (long long)json_integer_value(json_object_get(t, "entries")),
	       (long long)json_integer_value(json_object_get(t, "unread")), w);
}

static int list_one(void *ctx, const struct lama_topic *t)
{
	struct list_ctx *c = ctx;
	json_t *o = lama_topic_json(t);

	if (!o)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (!c->json) {
		print_topic(o);
		json_decref(o);
		return 0;
	}
	return json_array_append_new(c->arr, o) ? lama_error(LAMA_ENOMEM, "out of memory") : 0;
}

/* Through a running server, if one owns the folder: *done = 1 then. */
static int topics_remote(int json, int *done)
{
	cli_conn *k;
	json_t *r = NULL;
	int rc;

	*done = 0;
	if ((rc = cli_connect(&k)) || !k)
		return rc;
	*done = 1;
	rc = cli_call(k, "query:getConversations", json_object(), &r);
	cli_disconnect(k);
	if (rc)
		return rc;
	if (json) {
		rc = cli_print_json(json_incref(json_object_get(r, "conversations")));
	} else {
		const json_t *t;
		size_t i;

		json_array_foreach(json_object_get(r, "conversations"), i, t)
			print_topic(t);
	}
	json_decref(r);
	return rc;
}

int cmd_topics(int argc, char **argv)
{
	struct list_ctx c = { 0 };
	lama_session *s;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama topics [--json]\n\n"
		     "Lists your conversations, most recent activity first: a short handle\n"
		     "(usable wherever a topic is named, as are the title and the full id),\n"
		     "the title, participants, entries and unread entries.");
		return EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cli_usage("usage: lama topics [--json]");
	c.json = argc == 2;
	{
		int done;

		if ((rc = topics_remote(c.json, &done)) || done)
			return rc ? cli_fail(rc) : EXIT_OK;
	}
	if ((rc = cli_login_models(&s)))
		return cli_fail(rc);
	c.arr = json_array();
	rc = c.arr ? lama_chat_topics(s, list_one, &c) : lama_error(LAMA_ENOMEM, "out of memory");
	if (!rc && c.json) {
		rc = cli_print_json(c.arr);
		c.arr = NULL;
	}
	json_decref(c.arr);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

/* ---- lama topic new | read ---- */

static int topic_new(int argc, char **argv)
{
	const char *title = NULL, **with = NULL;
	lama_hash *people = NULL;
	struct lama_topic t = { 0 };
	size_t n = 0;
	int json = 0, rc, is_new = 0;
	lama_session *s = NULL;

	with = lama_calloc((size_t)argc + 1, sizeof(char *));
	if (!with)
		return cli_fail(lama_error(LAMA_ENOMEM, "out of memory"));
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--title") && i + 1 < argc) {
			title = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--with")) {
			/* --with A B C, or --with A --with B */
			while (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
				with[n++] = argv[++i];
		} else {
			lama_free(with);
			return cli_usage("usage: lama topic new [--title T] --with PERSON... [--json]");
		}
	}
	if (n == 0) {
		lama_free(with);
		return cli_usage("name the other participants with --with PERSON (a name, an email or an id)");
	}
	{
		cli_conn *k;

		if ((rc = cli_connect(&k)))
			goto out;
		if (k) {
			json_t *w = json_array(), *r = NULL, *p = json_object();
			const char *id;

			for (size_t i = 0; !rc && w && i < n; i++)
				if (json_array_append_new(w, json_string(with[i])))
					rc = lama_error(LAMA_EINVAL, "--with %s is not valid UTF-8 text", with[i]);
			if (!rc && (!w || !p || json_object_set(p, "with", w)))
				rc = lama_error(LAMA_ENOMEM, "out of memory");
			json_decref(w);
			if (!rc)
				rc = cli_set(p, "title", title);
			if (!rc)
				rc = cli_call(k, "action:createConversation", json_incref(p), &r);
			json_decref(p);
			cli_disconnect(k);
			if (!rc && (rc = cli_result_str(r, "id", &id)))
				json_decref(r);
			if (!rc && json) {
				rc = cli_print_json(r);
			} else if (!rc) {
				const char *tt = json_string_value(json_object_get(r, "title"));

				printf("%s\n", id);
				if (!json_is_true(json_object_get(r, "new"))) {
					fputs("lama: that conversation exists already: \"", stderr);
					cli_put_clean(stderr, tt ? tt : "", tt ? strlen(tt) : 0);
					fputs("\"\n", stderr);
				}
				json_decref(r);
			}
			goto out;
		}
	}
	if ((rc = cli_login_models(&s)))
		goto out;
	people = lama_calloc(n, sizeof(lama_hash));
	if (!people) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		struct lama_person p;

		rc = lama_leute_find(s, with[i], &p);
		if (!rc)
			people[i] = p.person;
	}
	if (!rc)
		rc = lama_chat_create(s, title, people, n, &t, &is_new);
	if (!rc) {
		if (json) {
			json_t *o = lama_topic_json(&t);

			if (o)
				json_object_set_new(o, "new", json_boolean(is_new));
			rc = cli_print_json(o);
		} else {
			printf("%s\n", t.id);
			if (!is_new)
			{
				fputs("lama: that conversation exists already: \"", stderr);
				cli_put_clean(stderr, t.title, strlen(t.title));
				fputs("\"\n", stderr);
			}
		}
	}
out:
	lama_topic_release(&t);
	lama_free(people);
	lama_free(with);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

static int topic_read(int argc, char **argv)
{
	struct lama_topic t = { 0 };
	lama_session *s;
	lama_hash msg;
	int rc;

	if (argc != 3 && argc != 4)
		return cli_usage("usage: lama topic read TOPIC [MESSAGE]");
	{
		cli_conn *k;
		json_t *r = NULL;

		if ((rc = cli_connect(&k)))
			return cli_fail(rc);
		if (k) {
			rc = cli_call(k, "action:markRead",
				      argc == 4 ? json_pack("{s:s, s:s}", "topic", argv[2], "message", argv[3])
						: json_pack("{s:s}", "topic", argv[2]), &r);
			json_decref(r);
			cli_disconnect(k);
			return rc ? cli_fail(rc) : EXIT_OK;
		}
	}
	if ((rc = cli_login_models(&s)))
		return cli_fail(rc);
	rc = lama_chat_find(s, argv[2], &t);
	if (!rc && argc == 4)
		rc = lama_chat_find_message(s, &t, argv[3], 10000, &msg);
	if (!rc)
		rc = lama_chat_mark_read(s, &t, argc == 4 ? &msg : NULL);
	lama_topic_release(&t);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

int cmd_topic(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		puts("usage: lama topic new [--title T] --with PERSON... [--json]\n"
		     "       lama topic read TOPIC [MESSAGE]\n\n"
		     "new: starts a conversation with the people named (by name, email or\n"
		     "an id prefix; see `lama contacts`). With one person it is your\n"
		     "one-to-one conversation with them, created once; with an AI assistant\n"
		     "it is a conversation with that assistant. Prints the topic id.\n"
		     "read: marks the conversation read up to MESSAGE (default: the newest).");
		return EXIT_OK;
	}
	if (argc >= 2 && !strcmp(argv[1], "new"))
		return topic_new(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "read"))
		return topic_read(argc, argv);
	return cli_usage("usage: lama topic new|read ... (see lama topic --help)");
}

/* ---- lama send ---- */

static const char *mime_of(const char *name)
{
	static const char *const map[][2] = {
		{ ".txt", "text/plain" }, { ".md", "text/markdown" }, { ".html", "text/html" },
		{ ".json", "application/json" }, { ".pdf", "application/pdf" },
		{ ".png", "image/png" }, { ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" },
		{ ".gif", "image/gif" }, { ".webp", "image/webp" }, { ".svg", "image/svg+xml" },
		{ ".mp3", "audio/mpeg" }, { ".ogg", "audio/ogg" }, { ".mp4", "video/mp4" },
		{ ".zip", "application/zip" }, { ".gguf", "application/octet-stream" },
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcasecmp(dot, map[i][0]))
			return map[i][1];
	return "application/octet-stream";
}

/* Stores each file as a BLOB and describes it. */
static int attach_files(lama_session *s, const char **files, size_t n,
			struct lama_attachment *att)
{
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		const char *base = strrchr(files[i], '/');
		int rc;

		if (stat(files[i], &st) != 0)
			return lama_error(LAMA_EIO, "cannot attach %s: %s", files[i], strerror(errno));
		if (!S_ISREG(st.st_mode))
			return lama_error(LAMA_EINVAL, "cannot attach %s: not a regular file", files[i]);
		if ((rc = cli_store_file(s, files[i], 0, "attachment", &att[i].blob, &att[i].size)))
			return rc;
		att[i].name = base ? base + 1 : files[i];
		att[i].type = mime_of(att[i].name);
		att[i].mtime = (double)st.st_mtim.tv_sec * 1000.0 + (double)(st.st_mtim.tv_nsec / 1000000);
	}
	return 0;
}

static int print_sent(const lama_hash *id, int json)
{
	char hex[LAMA_HASH_HEX + 1];

	if (json)
		return cli_print_json(json_pack("{s:o}", "id", hexj(id)));
	lama_hash_hex(id, hex);
	printf("%s\n", hex);
	return 0;
}

/* Line `no` of stdin into line (LINE_MAX_BYTES + 1), without its newline:
 * 1, or 0 at the end, or LAMA_ELIMIT for a line over a message's size. */
static int next_line(char *line, size_t no)
{
	size_t len;

	if (!fgets(line, LINE_MAX_BYTES + 1, stdin))
		return 0;
	len = strlen(line);
	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
	else if (!feof(stdin))
		return lama_error(LAMA_ELIMIT, "line %zu is longer than %u bytes", no, LAMA_CHAT_TEXT_MAX);
	return 1;
}

/* One --jsonl line: {"text": "...", "attach": ["FILE", ...], "reply_to":
 * "ID"}; every key but text optional. */
static int send_json_line(lama_session *s, const struct lama_topic *t, const char *line,
			  size_t no, lama_hash *id)
{
	struct lama_attachment att[LAMA_CHAT_ATTACH_MAX];
	const char *files[LAMA_CHAT_ATTACH_MAX];
	json_error_t err;
	json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err), *a, *f;
	const char *text, *reply;
	lama_hash reply_id;
	size_t i, n = 0;
	int rc = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		return lama_error(LAMA_EINVAL, "line %zu: expected a JSON object like {\"text\": \"hi\"}", no);
	}
	text = json_string_value(json_object_get(o, "text"));
	reply = json_string_value(json_object_get(o, "reply_to"));
	a = json_object_get(o, "attach");
	if ((json_object_get(o, "text") && !text) || (json_object_get(o, "reply_to") && !reply) ||
	    (a && !json_is_array(a)))
		rc = lama_error(LAMA_EINVAL, "line %zu: text and reply_to are strings, attach a list of files", no);
	else if (json_array_size(a) > LAMA_CHAT_ATTACH_MAX)
		rc = lama_error(LAMA_ELIMIT, "line %zu: at most %d attachments", no, LAMA_CHAT_ATTACH_MAX);
	json_array_foreach(a, i, f) {
		if (rc)
			break;
		if (!json_is_string(f))
			rc = lama_error(LAMA_EINVAL, "line %zu: attach lists file names", no);
		else
			files[n++] = json_string_value(f);
	}
	if (!rc && reply)
		rc = lama_chat_find_message(s, t, reply, 10000, &reply_id);
	if (!rc)
		rc = attach_files(s, files, n, att);
	if (!rc) {
		struct lama_outgoing m = { .text = text ? text : "", .attach = att, .nattach = n,
					   .reply_to = reply ? &reply_id : NULL };

		rc = lama_chat_send(s, t, &m, 1, id);
	}
	json_decref(o);
	return rc;
}

/* --lines / --jsonl: every line of stdin is one message, acknowledged
 * (its id printed and flushed) only once it is durable. */
static int send_lines(lama_session *s, const struct lama_topic *t, int jsonl, int json)
{
	char *line = lama_malloc(LINE_MAX_BYTES + 1);
	int rc = 0;

	if (!line)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (size_t no = 1; (rc = next_line(line, no)) > 0; no++) {
		lama_hash id;

		if (!*line)
			continue;
		if (jsonl) {
			rc = send_json_line(s, t, line, no, &id);
		} else {
			struct lama_outgoing m = { .text = line };

			rc = lama_chat_send(s, t, &m, 1, &id);
		}
		if (rc || (rc = print_sent(&id, json)))
			break;
		if (fflush(stdout) == EOF) {
			rc = lama_error(LAMA_EIO, "cannot write the output: %s", strerror(errno));
			break;
		}
	}
	lama_free(line);
	return rc;
}

/* What the server takes inline (docs/ipc.md, action:sendMessage): more
 * goes to the archive directly. */
#define INLINE_MAX ((uint64_t)512 << 10)

/* The files as inline attachments, or *arr NULL when together they are
 * over INLINE_MAX (or not regular files: the direct path says why). */
static int attach_inline(const char **files, size_t n, json_t **arr)
{
	uint64_t total = 0;
	int rc = 0;

	*arr = NULL;
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(files[i], &st) != 0 || !S_ISREG(st.st_mode))
			return 0;
		total += (uint64_t)st.st_size;
	}
	if (total > INLINE_MAX || !(*arr = json_array()))
		return 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *base = strrchr(files[i], '/');
		FILE *f = fopen(files[i], "rb");
		unsigned char *data = lama_malloc(INLINE_MAX + 1);
		char *b64 = NULL;
		size_t len = 0;

		if (!f || !data) {
			rc = f ? lama_error(LAMA_ENOMEM, "out of memory")
			       : lama_error(LAMA_EIO, "cannot attach %s: %s", files[i], strerror(errno));
		} else if ((len = fread(data, 1, INLINE_MAX + 1, f)) > INLINE_MAX || ferror(f)) {
			rc = lama_error(LAMA_EIO, "cannot attach %s: it changed while read", files[i]);
		} else if (!(b64 = lama_malloc(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL)))) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
		} else {
			json_t *a = json_object();

			sodium_bin2base64(b64, sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL),
					  data, len, sodium_base64_VARIANT_ORIGINAL);
			if ((rc = cli_set(a, "name", base ? base + 1 : files[i])) ||
			    (rc = cli_set(a, "type", mime_of(base ? base + 1 : files[i]))) ||
			    (rc = cli_set(a, "data", b64)) || json_array_append(*arr, a))
				rc = rc ? rc : lama_error(LAMA_ENOMEM, "out of memory");
			json_decref(a);
		}
		if (f)
			fclose(f);
		lama_free(data);
		lama_free(b64);
	}
	if (rc) {
		json_decref(*arr);
		*arr = NULL;
	}
	return rc;
}

/* One message through the server; prints its id like print_sent. att
 * (inline attachments) is taken. */
static int send_remote_one(cli_conn *k, const char *topic, const char *text, const char *reply,
			   json_t *att, int json)
{
	json_t *p = json_object(), *r = NULL;
	const char *id;
	int rc;

	if ((rc = cli_set(p, "topic", topic)) || (rc = cli_set(p, "text", text)) ||
	    (rc = cli_set(p, "reply_to", reply)) ||
	    (att && json_object_set(p, "attachments", att) && (rc = lama_error(LAMA_ENOMEM, "out of memory")))) {
		json_decref(att);
		json_decref(p);
		return rc;
	}
	json_decref(att);
	if ((rc = cli_call(k, "action:sendMessage", p, &r)))
		return rc;
	if ((rc = cli_result_str(r, "id", &id))) {
		json_decref(r);
		return rc;
	}
	if (json)
		return cli_print_json(r);
	printf("%s\n", id);
	json_decref(r);
	return 0;
}

/* lama send through a running server: a text (and a reply), or --lines.
 * Attachments and --jsonl still go to the archive directly (the server
 * takes no files yet); the archive is safe to share, only the server's
 * clients learn of those messages at their next query. */
static int send_remote(cli_conn *k, const char *topic, const char *text, const char *reply,
		       json_t *att, int lines, int json)
{
	char *line;
	int rc = 0;

	if (!lines)
		return send_remote_one(k, topic, text ? text : "", reply, att, json);
	if (!(line = lama_malloc(LINE_MAX_BYTES + 1)))
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (size_t no = 1; (rc = next_line(line, no)) > 0; no++) {
		if (!*line)
			continue;
		if ((rc = send_remote_one(k, topic, line, NULL, NULL, json)))
			break;
		if (fflush(stdout) == EOF) {
			rc = lama_error(LAMA_EIO, "cannot write the output: %s", strerror(errno));
			break;
		}
	}
	lama_free(line);
	return rc;
}

int cmd_send(int argc, char **argv)
{
	const char *topic = NULL, *text = NULL, *reply = NULL, **files = NULL;
	struct lama_attachment *att = NULL;
	struct lama_topic t = { 0 };
	lama_session *s = NULL;
	size_t nfiles = 0;
	int json = 0, lines = 0, rc;
	lama_hash reply_id, id;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama send TOPIC TEXT [--attach FILE]... [--reply-to MESSAGE] [--json]\n"
		     "       lama send TOPIC --lines [--json] < messages.txt\n"
		     "       lama send TOPIC --jsonl [--json] < messages.jsonl\n\n"
		     "Sends a message to a conversation (named by id, id prefix or title)\n"
		     "and prints its id once it is stored durably. Files are attached as\n"
		     "encrypted BLOBs. With --lines every line of stdin is a message; with\n"
		     "--jsonl every line is {\"text\": T, \"attach\": [FILE...], \"reply_to\": ID}.\n"
		     "Each id is printed as soon as that message is durable.");
		return EXIT_OK;
	}
	files = lama_calloc((size_t)argc + 1, sizeof(char *));
	if (!files)
		return cli_fail(lama_error(LAMA_ENOMEM, "out of memory"));
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--attach") && i + 1 < argc)
			files[nfiles++] = argv[++i];
		else if (!strcmp(argv[i], "--reply-to") && i + 1 < argc)
			reply = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--lines"))
			lines = 1;
		else if (!strcmp(argv[i], "--jsonl"))
			lines = 2;
		else if (!strncmp(argv[i], "--", 2) && strcmp(argv[i], "--"))
			topic = NULL, text = NULL, i = argc, lines = -1;
		else if (!topic)
			topic = argv[i];
		else if (!text)
			text = argv[i];
		else
			lines = -1, i = argc;
	}
	if (lines < 0 || !topic || (lines && (text || nfiles || reply)) || (!lines && !text && !nfiles)) {
		lama_free(files);
		return cli_usage("usage: lama send TOPIC TEXT [--attach FILE]... [--reply-to MESSAGE] [--json]"
				 " | lama send TOPIC --lines|--jsonl");
	}
	if (nfiles > LAMA_CHAT_ATTACH_MAX) {
		lama_free(files);
		return cli_usage("at most %d attachments per message", LAMA_CHAT_ATTACH_MAX);
	}
	if (lines != 2) {
		json_t *inl = NULL;
		cli_conn *k;

		if ((rc = cli_connect(&k)))
			goto out;
		/* attachments up to INLINE_MAX in all go through the server too */
		if (k && nfiles && (rc = attach_inline(files, nfiles, &inl))) {
			cli_disconnect(k);
			goto out;
		}
		if (k && (!nfiles || inl)) {
			rc = send_remote(k, topic, text, reply, inl, lines, json);
			cli_disconnect(k);
			goto out;
		}
		cli_disconnect(k);
	}
	if ((rc = cli_login_models(&s)))
		goto out;
	if ((rc = lama_chat_find(s, topic, &t)))
		goto out;
	if (lines) {
		rc = send_lines(s, &t, lines == 2, json);
		goto out;
	}
	if (reply && (rc = lama_chat_find_message(s, &t, reply, 10000, &reply_id)))
		goto out;
	att = lama_calloc(nfiles + 1, sizeof(*att));
	if (!att) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = attach_files(s, files, nfiles, att)))
		goto out;
	{
		struct lama_outgoing m = { .text = text ? text : "", .attach = att, .nattach = nfiles,
					   .reply_to = reply ? &reply_id : NULL };

		rc = lama_chat_send(s, &t, &m, 1, &id);
	}
	if (!rc)
		rc = print_sent(&id, json);
out:
	lama_topic_release(&t);
	lama_free(att);
	lama_free(files);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

/* ---- lama messages ---- */

struct page {
	lama_session *s;
	json_t *msgs;   /* collected newest first */
	json_t *names;  /* person hex -> display name */
};

static const char *name_of(struct page *p, const lama_hash *person)
{
	char hex[LAMA_HASH_HEX + 1];
	struct lama_person who;
	const char *n;

	lama_hash_hex(person, hex);
	if ((n = json_string_value(json_object_get(p->names, hex))))
		return n;
	if (lama_leute_get(p->s, person, &who))
		snprintf(who.name, sizeof(who.name), "%.12s", hex);
	json_object_set_new(p->names, hex, json_string(who.name));
	n = json_string_value(json_object_get(p->names, hex));
	return n ? n : "?";
}

static int collect(void *ctx, const struct lama_message *m)
{
	struct page *p = ctx;
	json_t *o = lama_message_json(m, name_of(p, &m->sender));

	if (!o || json_array_append_new(p->msgs, o))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

static void put_str(const json_t *v)
{
	const char *t = json_string_value(v);

	cli_put_clean(stdout, t ? t : "", t ? json_string_length(v) : 0);
}

/* A message's text may span lines: each is cleaned (it came from a peer)
 * and the ones after the first are indented under it. */
static void put_lines(const json_t *v)
{
	const char *t = json_string_value(v), *nl;
	size_t left = t ? json_string_length(v) : 0;

	while (t && left) {
		nl = memchr(t, '\n', left);
		cli_put_clean(stdout, t, nl ? (size_t)(nl - t) : left);
		if (!nl)
			break;
		fputs("\n    ", stdout);
		left -= (size_t)(nl - t) + 1;
		t = nl + 1;
	}
}

void cli_print_message(const json_t *m)
{
	const json_t *a;
	char w[32];
	size_t i;

	cli_when(json_number_value(json_object_get(m, "time")), w, sizeof(w));
	printf("[%s] ", w);
	put_str(json_object_get(m, "sender_name"));
	fputs(": ", stdout);
	if (json_is_true(json_object_get(m, "deleted")))
		fputs("(deleted)", stdout);
	put_lines(json_object_get(m, "text"));
	if (json_is_true(json_object_get(m, "edited")) && !json_is_true(json_object_get(m, "deleted")))
		fputs(" (edited)", stdout);
	printf("  (%.12s)\n", json_string_value(json_object_get(m, "id")));
	if (json_object_get(m, "reply_to"))
		printf("    in reply to %.12s\n", json_string_value(json_object_get(m, "reply_to")));
	json_array_foreach(json_object_get(m, "attachments"), i, a) {
		fputs("    attachment: ", stdout);
		put_str(json_object_get(a, "name"));
		printf(" (%lld bytes, ", (long long)json_integer_value(json_object_get(a, "size")));
		put_str(json_object_get(a, "type"));
		printf(") blob %s\n", json_string_value(json_object_get(a, "blob")));
	}
}

/* lama messages through a running server: pages of at most 1000 until
 * limit messages, then the same output as from the archive. */
static int messages_remote(cli_conn *k, const char *topic, const char *before, long limit,
			   int mark, int json)
{
	json_t *all = json_array(), *r = NULL, *cursor = before ? json_string(before) : NULL;
	json_t *tid = NULL; /* the topic's id, as the server names it */
	int rc = 0, more = 0;

	if (!all)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (before && !cursor)
		rc = lama_error(LAMA_EINVAL, "--before is not valid UTF-8 text");
	while (!rc && (long)json_array_size(all) < limit) {
		long want = limit - (long)json_array_size(all);
		json_t *p = json_pack("{s:s, s:I}", "topic", topic, "limit",
				      (json_int_t)(want > 1000 ? 1000 : want)), *page;

		if (p && cursor)
			json_object_set(p, "before", cursor);
		if ((rc = cli_call(k, "query:getMessages", p, &r)))
			break;
		page = json_object_get(r, "messages");
		/* older pages go in front */
		for (size_t i = json_array_size(page); i-- > 0;)
			json_array_insert(all, 0, json_array_get(page, i));
		more = json_is_true(json_object_get(r, "more"));
		json_decref(cursor);
		cursor = json_incref(json_object_get(r, "before"));
		json_decref(tid);
		tid = json_incref(json_object_get(r, "topic"));
		json_decref(r);
		r = NULL;
		if (!more)
			break;
	}
	if (!rc && mark)
		rc = cli_call(k, "action:markRead", json_pack("{s:s}", "topic", topic), &r);
	json_decref(r);
	if (!rc && json) {
		rc = cli_print_json(json_pack("{s:O, s:O, s:b, s:O}", "topic", tid ? tid : json_null(), "messages", all,
					      "more", more, "before",
					      more && cursor ? cursor : json_null()));
	} else if (!rc) {
		const json_t *m;
		size_t i;

		json_array_foreach(all, i, m)
			cli_print_message(m);
		if (json_array_size(all) == 0)
			printf("(no messages yet)\n");
		if (more && json_string_value(cursor))
			printf("(older: lama messages %s --before %s)\n", topic, json_string_value(cursor));
	}
	json_decref(cursor);
	json_decref(tid);
	json_decref(all);
	return rc;
}

int cmd_messages(int argc, char **argv)
{
	const char *topic = NULL, *before = NULL;
	struct page p = { 0 };
	struct lama_topic t = { 0 };
	lama_session *s = NULL;
	long limit = 50;
	int json = 0, mark = 0, more = 0, rc;
	lama_hash bid;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama messages TOPIC [--limit N] [--before MESSAGE] [--mark-read] [--json]\n\n"
		     "Prints the newest N messages (default 50, at most 10000) of a\n"
		     "conversation, oldest first; --before MESSAGE gives the page before that\n"
		     "message (the id printed at the end pages back). --mark-read marks the\n"
		     "conversation read. JSON: {\"topic\", \"messages\": [...], \"more\", \"before\"}.");
		return EXIT_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
			if (cli_number(argv[++i], 1, 10000, &limit))
				return cli_usage("--limit must be a number from 1 to 10000");
		} else if (!strcmp(argv[i], "--before") && i + 1 < argc) {
			before = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--mark-read")) {
			mark = 1;
		} else if (!topic && strncmp(argv[i], "--", 2)) {
			topic = argv[i];
		} else {
			return cli_usage("usage: lama messages TOPIC [--limit N] [--before MESSAGE] [--json]");
		}
	}
	if (!topic)
		return cli_usage("usage: lama messages TOPIC [--limit N] [--before MESSAGE] [--json]");
	{
		cli_conn *k;

		if ((rc = cli_connect(&k)))
			goto out;
		if (k) {
			rc = messages_remote(k, topic, before, limit, mark, json);
			cli_disconnect(k);
			goto out;
		}
	}
	if ((rc = cli_login_models(&s)))
		goto out;
	p.s = s;
	p.msgs = json_array();
	p.names = json_object();
	if (!p.msgs || !p.names) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = lama_chat_find(s, topic, &t)))
		goto out;
	if (before && (rc = lama_chat_find_message(s, &t, before, 100000, &bid)))
		goto out;
	if ((rc = lama_chat_messages(s, &t, before ? &bid : NULL, (size_t)limit, collect, &p, &more)))
		goto out;
	if (mark && (rc = lama_chat_mark_read(s, &t, NULL)))
		goto out;
	{
		size_t n = json_array_size(p.msgs);
		const json_t *oldest = n ? json_array_get(p.msgs, n - 1) : NULL;
		json_t *chrono = json_array();

		for (size_t i = n; chrono && i-- > 0;)
			json_array_append(chrono, json_array_get(p.msgs, i));
		if (json) {
			rc = cli_print_json(json_pack("{s:s, s:o, s:b, s:O}", "topic", t.id, "messages",
						  chrono ? chrono : json_null(), "more", more, "before",
						  more && oldest ? json_object_get(oldest, "id") : json_null()));
		} else {
			size_t i;
			const json_t *m;

			json_array_foreach(chrono, i, m)
				cli_print_message(m);
			if (n == 0)
				printf("(no messages yet)\n");
			if (more && oldest)
				printf("(older: lama messages %s --before %s)\n", t.handle,
				       json_string_value(json_object_get(oldest, "id")));
			json_decref(chrono);
		}
	}
out:
	json_decref(p.msgs);
	json_decref(p.names);
	lama_topic_release(&t);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

/* ---- lama edit | delete ---- */

static int change(int argc, char **argv, int del)
{
	struct lama_topic t = { 0 };
	lama_session *s;
	lama_hash id;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts(del ? "usage: lama delete TOPIC MESSAGE\n\n"
			   "Deletes a message you sent: a deletion entry is added to your log;\n"
			   "the conversation shows the message as deleted on every device."
			 : "usage: lama edit TOPIC MESSAGE TEXT\n\n"
			   "Replaces the text of a message you sent. The edit is a new entry\n"
			   "in your log; the original stays in the history.");
		return EXIT_OK;
	}
	if (argc != (del ? 3 : 4))
		return cli_usage(del ? "usage: lama delete TOPIC MESSAGE" : "usage: lama edit TOPIC MESSAGE TEXT");
	{
		cli_conn *k;
		json_t *r = NULL;

		if ((rc = cli_connect(&k)))
			return cli_fail(rc);
		if (k) {
			rc = cli_call(k, del ? "action:deleteMessage" : "action:editMessage",
				      del ? json_pack("{s:s, s:s}", "topic", argv[1], "message", argv[2])
					  : json_pack("{s:s, s:s, s:s}", "topic", argv[1], "message", argv[2],
						      "text", argv[3]), &r);
			json_decref(r);
			cli_disconnect(k);
			return rc ? cli_fail(rc) : EXIT_OK;
		}
	}
	if ((rc = cli_login_models(&s)))
		return cli_fail(rc);
	rc = lama_chat_find(s, argv[1], &t);
	if (!rc)
		rc = lama_chat_find_message(s, &t, argv[2], 100000, &id);
	if (!rc)
		rc = lama_chat_edit(s, &t, &id, del ? NULL : argv[3]);
	lama_topic_release(&t);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

int cmd_edit(int argc, char **argv)
{
	return change(argc, argv, 0);
}

int cmd_delete(int argc, char **argv)
{
	return change(argc, argv, 1);
}
