/* cmd_object.c: lama object put|get|heads|merge|refs, and lama check. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
#include "util/mem.h"

static const char object_help[] =
	"usage: lama object put TYPE [--lines]   read an object as JSON on stdin, print its hash\n"
	"       lama object get HASH... [--microdata]  print objects as JSON (or microdata)\n"
	"       lama object heads IDHASH           print the version heads of an ID\n"
	"       lama object merge IDHASH           merge concurrent heads, print the head\n"
	"       lama object refs HASH [--type T]   print the objects that refer to HASH\n\n"
	"Objects are JSON in ONE's convention: \"$type$\" names the recipe, a Set is\n"
	"{\"$set\": [...]}, a Map {\"$map\": [[k, v], ...]} (docs/object-format.md).\n"
	"With --lines every stdin line is one object, and each hash is printed once\n"
	"the object is safely stored. A versioned object also prints \"id IDHASH\" and\n"
	"\"node NODEHASH\" lines with --verbose.";

/* Reads all of stdin up to the object size limit. */
static int read_stdin(struct lama_buf *b)
{
	char chunk[65536];
	size_t n;
	int rc;

	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if ((rc = lama_buf_add(b, chunk, n)))
			return rc == LAMA_ELIMIT ? lama_error(LAMA_ELIMIT, "input is larger than %zu bytes", b->max) : rc;
	if (ferror(stdin))
		return lama_error(LAMA_EIO, "cannot read stdin");
	return 0;
}

static int put_one(lama_session *s, const char *type, const char *text, size_t n, int verbose)
{
	struct lama_put_info info;
	json_error_t jerr;
	json_t *obj, *t;
	char hex[LAMA_HASH_HEX + 1];
	int rc;

	obj = json_loadb(text, n, LAMA_JSON_FLAGS, &jerr);
	if (!obj)
		return lama_error(LAMA_EFORMAT, "not valid JSON (line %d, column %d): %s", jerr.line,
				  jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return lama_error(LAMA_EINVAL, "an object must be a JSON object");
	}
	t = json_object_get(obj, "$type$");
	if (!t) {
		json_object_set_new(obj, "$type$", json_string(type));
	} else if (!json_is_string(t) || strcmp(json_string_value(t), type) != 0 ||
		   json_string_length(t) != strlen(type)) {
		json_decref(obj);
		return lama_error(LAMA_EINVAL, "\"$type$\" in the input is not %s", type);
	}
	rc = lama_archive_put(lama_session_archive(s), obj, 0, &info);
	json_decref(obj);
	if (rc)
		return rc;
	lama_hash_hex(&info.hash, hex);
	printf("%s\n", hex);
	if (verbose && info.versioned) {
		lama_hash_hex(&info.id_hash, hex);
		printf("id %s\n", hex);
		lama_hash_hex(&info.node, hex);
		printf("node %s\n", hex);
	}
	/* the hash is the acknowledgement: it goes out only after the commit */
	if (fflush(stdout) == EOF)
		return lama_error(LAMA_EIO, "cannot write the hash of a stored object");
	return 0;
}

static int object_put(lama_session *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lines", no_argument, NULL, 'l' }, { "verbose", no_argument, NULL, 'v' }, { 0 }
	};
	struct lama_buf in = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	int c, lines = 0, verbose = 0, rc = 0;

	optind = 1;
	opterr = 0; /* one message, ours */
	while ((c = getopt_long(argc, argv, "lv", opts, NULL)) != -1) {
		if (c == 'l')
			lines = 1;
		else if (c == 'v')
			verbose = 1;
		else
			return lama_error(LAMA_EINVAL, "usage: lama object put TYPE [--lines] [--verbose]");
	}
	if (optind + 1 != argc)
		return lama_error(LAMA_EINVAL, "usage: lama object put TYPE [--lines] [--verbose]");
	if (!lama_recipes_has(lama_session_recipes(s), argv[optind]))
		return lama_error(LAMA_EINVAL, "OR-GR1: Type \"%.100s\" not found in recipes", argv[optind]);
	if (!lines) {
		rc = read_stdin(&in);
		if (!rc)
			rc = put_one(s, argv[optind], in.data ? in.data : "", in.len, verbose);
		lama_buf_release(&in);
		return rc;
	}
	/* one line at a time, each bounded before it is buffered (bytes as
	 * they come, NULs included: JSON parsing refuses those) */
	while (!rc) {
		int eof = 0, ch;

		lama_buf_truncate(&in, 0);
		while (!rc) {
			if ((ch = getc_unlocked(stdin)) == EOF) {
				eof = 1;
				break;
			}
			rc = lama_buf_addch(&in, (char)ch);
			if (rc == LAMA_ELIMIT)
				rc = lama_error(LAMA_ELIMIT, "a line is larger than %zu bytes",
						LAMA_OBJECT_MAX_BYTES);
			if (ch == '\n')
				break;
		}
		if (!rc && in.len && strspn(in.data, " \t\r\n") != in.len)
			rc = put_one(s, argv[optind], in.data, in.len, verbose);
		if (eof)
			break;
	}
	if (!rc && ferror(stdin))
		rc = lama_error(LAMA_EIO, "cannot read stdin");
	lama_buf_release(&in);
	return rc;
}

static int object_get(lama_session *s, int argc, char **argv)
{
	struct lama_buf out = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int microdata = argc > 1 && !strcmp(argv[argc - 1], "--microdata");
	enum lama_store_kind kind;
	json_t *obj = NULL;
	lama_hash h;
	int rc = 0;

	if (argc < 2 + microdata)
		return lama_error(LAMA_EINVAL, "usage: lama object get HASH... [--microdata]");
	/* several hashes print one line each, so scripts can check many
	 * objects with one login */
	for (int i = 1; !rc && i < argc - microdata; i++) {
		lama_buf_truncate(&out, 0);
		if ((rc = cli_hash_arg(argv[i], &h)))
			break;
		if (microdata) {
			rc = lama_store_get(lama_session_store(s), &h, &kind, &out);
		} else {
			rc = lama_archive_get(lama_session_archive(s), &h, &obj);
			if (!rc)
				rc = lama_json_write(obj, &out);
			json_decref(obj);
			obj = NULL;
		}
		if (!rc) {
			fwrite(out.data, 1, out.len, stdout);
			putchar('\n');
		}
	}
	lama_buf_release(&out);
	return rc;
}

static int object_heads(lama_session *s, int argc, char **argv, int merge)
{
	lama_hash id, *heads = NULL, node;
	char hex[LAMA_HASH_HEX + 1];
	size_t n = 0;
	int rc;

	if (argc != 2)
		return lama_error(LAMA_EINVAL, "usage: lama object %s IDHASH", merge ? "merge" : "heads");
	if ((rc = cli_hash_arg(argv[1], &id)))
		return rc;
	if (merge) {
		rc = lama_archive_merge(lama_session_archive(s), &id, &node);
		if (!rc) {
			lama_hash_hex(&node, hex);
			printf("%s\n", hex);
		}
		return rc;
	}
	rc = lama_archive_heads(lama_session_archive(s), &id, &heads, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		lama_hash_hex(&heads[i], hex);
		printf("%s\n", hex);
	}
	lama_free(heads);
	return rc;
}

static int print_ref(void *ctx, const char *type, const lama_hash *src)
{
	char hex[LAMA_HASH_HEX + 1];

	(void)ctx;
	lama_hash_hex(src, hex);
	printf("%s %s\n", hex, type);
	return 0;
}

static int object_refs(lama_session *s, int argc, char **argv)
{
	const char *type = NULL;
	lama_hash h;
	int rc;

	if (argc == 4 && !strcmp(argv[2], "--type"))
		type = argv[3];
	else if (argc != 2)
		return lama_error(LAMA_EINVAL, "usage: lama object refs HASH [--type TYPE]");
	if ((rc = cli_hash_arg(argv[1], &h)))
		return rc;
	return lama_archive_referrers(lama_session_archive(s), &h, type, print_ref, NULL);
}

int cmd_object(int argc, char **argv)
{
	lama_session *s;
	const char *verb = argc > 1 ? argv[1] : "";
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts(object_help);
		return EXIT_OK;
	}
	if (strcmp(verb, "put") && strcmp(verb, "get") && strcmp(verb, "heads") &&
	    strcmp(verb, "merge") && strcmp(verb, "refs"))
		return cli_usage("usage: lama object put|get|heads|merge|refs ... (see --help)");
	/* the shape of the arguments is checked before asking for a password */
	if ((!strcmp(verb, "put") && argc < 3) || (!strcmp(verb, "get") && argc < 3) ||
	    ((!strcmp(verb, "heads") || !strcmp(verb, "merge")) && argc != 3) ||
	    (!strcmp(verb, "refs") && argc != 3 && argc != 5))
		return cli_usage("usage: lama object %s ... (see lama object --help)", verb);
	if ((rc = cli_login(&s)))
		return cli_fail(rc);
	if (!strcmp(verb, "put"))
		rc = object_put(s, argc - 1, argv + 1);
	else if (!strcmp(verb, "get"))
		rc = object_get(s, argc - 1, argv + 1);
	else if (!strcmp(verb, "refs"))
		rc = object_refs(s, argc - 1, argv + 1);
	else
		rc = object_heads(s, argc - 1, argv + 1, !strcmp(verb, "merge"));
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}

static void check_progress(void *ctx, uint64_t done)
{
	(void)ctx;
	if (isatty(2))
		fprintf(stderr, "\rchecked %llu rows", (unsigned long long)done);
}

int cmd_check(int argc, char **argv)
{
	struct lama_store_check rep;
	lama_session *s;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama [--user NAME] check\n\n"
		     "Decrypts and re-hashes every object, ID object, version record, reverse-map\n"
		     "entry and BLOB of the archive. Exit status 0 if all is intact, 1 with the\n"
		     "first problem otherwise. Changes nothing.");
		return EXIT_OK;
	}
	if (argc != 1)
		return cli_usage("usage: lama [--user NAME] check");
	if ((rc = cli_login(&s)))
		return cli_fail(rc);
	rc = lama_store_check(lama_session_store(s), &rep, check_progress, NULL);
	if (isatty(2))
		fputc('\n', stderr);
	printf("objects %llu\nblobs %llu\nblob_bytes %llu\nrefs %llu\nheads %llu\nrecords %llu\nbad %llu\n",
	       (unsigned long long)rep.objects, (unsigned long long)rep.blobs,
	       (unsigned long long)rep.blob_bytes, (unsigned long long)rep.refs,
	       (unsigned long long)rep.heads, (unsigned long long)rep.kv, (unsigned long long)rep.bad);
	lama_session_logout(s);
	if (rc) {
		fprintf(stderr, "lama: archive is damaged: %s\n", rep.first_bad);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
