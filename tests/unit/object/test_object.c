/* test_object.c: the ONE object format against one.core's own output
 * (shared/one-format), plus the pieces: JavaScript numbers, UTF-16 order,
 * strict parsing, references, CRDT fields, allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "testutil.h"
#include "object/internal.h"
#include "object/object.h"
#include "util/err.h"
#include "util/mem.h"

/* --- helpers --- */

typedef void (*line_fn)(json_t *case_, void *ctx);

/* Calls fn for each JSON line of a vector file; returns the count. */
static size_t each_line(const char *name, line_fn fn, void *ctx)
{
	FILE *f = fopen(tu_one_format(name), "r");
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;

	assert_non_null(f);
	while ((len = getline(&line, &cap, f)) > 0) {
		json_error_t err;
		json_t *c = json_loadb(line, (size_t)len, LAMA_JSON_FLAGS | JSON_DECODE_ANY, &err);

		if (!c)
			fail_msg("%s line %zu: %s", name, n + 1, err.text);
		fn(c, ctx);
		json_decref(c);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

static json_t *load_file(const char *name)
{
	json_error_t err;
	json_t *j = json_load_file(tu_one_format(name), LAMA_JSON_FLAGS, &err);

	if (!j)
		fail_msg("%s: %s", name, err.text);
	return j;
}

/* builtin + the test recipes of recipes.json */
static lama_recipes *full_registry(void)
{
	lama_recipes *r;
	json_t *all = load_file("recipes.json");

	assert_int_equal(lama_recipes_new(&r), 0);
	assert_int_equal(lama_recipes_add_builtin(r), 0);
	if (lama_recipes_add_all(r, all))
		fail_msg("recipes.json: %s", lama_errmsg());
	json_decref(all);
	return r;
}

static int setup(void **state)
{
	*state = full_registry();
	return 0;
}

static int teardown(void **state)
{
	lama_recipes_free(*state);
	return 0;
}

static void hash_hex(const char *md, size_t n, char hex[65])
{
	lama_hash h;

	lama_sha256(md, n, &h);
	lama_hash_hex(&h, hex);
}

/* --- the 446 valid vectors --- */

struct vec_ctx {
	lama_recipes *r;
	size_t n, failures, recipes;
};

static void vec_fail(struct vec_ctx *c, const json_t *v, const char *what, const char *got)
{
	if (c->failures++ < 8)
		fprintf(stderr, "vector %zu (%s): %s\n  got: %.400s\n", c->n + 1,
			json_string_value(json_object_get(v, "type")), what, got ? got : "");
}

static void check_round_trip(struct vec_ctx *c, const json_t *v, const json_t *mdj, int want_id)
{
	const char *md = json_string_value(mdj);
	size_t n = json_string_length(mdj);
	json_t *parsed = NULL;
	struct lama_buf again = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int is_id = -1;

	if (lama_object_parse(c->r, md, n, &parsed, &is_id)) {
		vec_fail(c, v, want_id ? "parse of id_microdata failed" : "parse failed", lama_errmsg());
		return;
	}
	if (is_id != want_id)
		vec_fail(c, v, "parse: wrong is_id_object", NULL);
	if ((want_id ? lama_object_id_microdata(c->r, parsed, &again)
		     : lama_object_microdata(c->r, parsed, &again)) ||
	    again.len != n || memcmp(again.data, md, n))
		vec_fail(c, v, "round trip differs", again.data ? again.data : lama_errmsg());
	lama_buf_release(&again);
	json_decref(parsed);
}

static void one_vector(json_t *v, void *ctx)
{
	struct vec_ctx *c = ctx;
	const json_t *obj = json_object_get(v, "object");
	const char *md = json_string_value(json_object_get(v, "microdata"));
	const char *hash = json_string_value(json_object_get(v, "hash"));
	const char *idmd = json_string_value(json_object_get(v, "id_microdata"));
	const char *idhash = json_string_value(json_object_get(v, "id_hash"));
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	lama_hash h, ih;
	char hex[65];
	int rc;

	if (!strcmp(json_string_value(json_object_get(v, "type")), "Recipe"))
		c->recipes++;
	if (lama_object_microdata(c->r, obj, &b)) {
		vec_fail(c, v, "microdata failed", lama_errmsg());
		goto out;
	}
	if (b.len != json_string_length(json_object_get(v, "microdata")) || memcmp(b.data, md, b.len))
		vec_fail(c, v, "microdata differs", b.data);
	hash_hex(b.data, b.len, hex);
	if (strcmp(hex, hash))
		vec_fail(c, v, "hash differs", hex);
	lama_buf_truncate(&b, 0);

	rc = lama_object_id_microdata(c->r, obj, &b);
	if (!idmd) {
		if (rc != LAMA_EINVAL)
			vec_fail(c, v, "id_microdata of an unversioned type did not fail", b.data);
		if (lama_object_hash(c->r, obj, &h, &ih) != LAMA_EINVAL)
			vec_fail(c, v, "id hash of an unversioned type did not fail", NULL);
		if (lama_recipes_is_versioned(c->r, json_string_value(json_object_get(obj, "$type$"))) != 0)
			vec_fail(c, v, "unversioned type reported versioned", NULL);
	} else if (rc) {
		vec_fail(c, v, "id_microdata failed", lama_errmsg());
	} else {
		if (b.len != json_string_length(json_object_get(v, "id_microdata")) ||
		    memcmp(b.data, idmd, b.len))
			vec_fail(c, v, "id_microdata differs", b.data);
		if (lama_object_hash(c->r, obj, &h, &ih)) {
			vec_fail(c, v, "lama_object_hash failed", lama_errmsg());
		} else {
			lama_hash_hex(&ih, hex);
			if (strcmp(hex, idhash))
				vec_fail(c, v, "id_hash differs", hex);
			lama_hash_hex(&h, hex);
			if (strcmp(hex, hash))
				vec_fail(c, v, "lama_object_hash differs", hex);
		}
		check_round_trip(c, v, json_object_get(v, "id_microdata"), 1);
	}
	check_round_trip(c, v, json_object_get(v, "microdata"), 0);
out:
	lama_buf_release(&b);
	c->n++;
}

static void test_vectors(void **state)
{
	struct vec_ctx c = { *state, 0, 0, 0 };

	assert_int_equal(each_line("vectors.jsonl", one_vector, &c), 446);
	assert_int_equal(c.recipes, 41);
	assert_int_equal(c.failures, 0);
}

/* The registry's own Recipe objects serialize to the Recipe vectors. */
static void test_recipe_objects(void **state)
{
	lama_recipes *r = *state;
	json_t *all = load_file("recipes.json"), *e;
	FILE *f = fopen(tu_one_format("vectors.jsonl"), "r");
	char *line = NULL;
	size_t cap = 0, i, matched = 0;
	json_t *by_name = json_object();

	assert_non_null(f);
	while (getline(&line, &cap, f) > 0) {
		json_t *v = json_loads(line, LAMA_JSON_FLAGS, NULL);

		assert_non_null(v);
		if (!strcmp(json_string_value(json_object_get(v, "type")), "Recipe"))
			json_object_set(by_name,
					json_string_value(json_object_get(json_object_get(v, "object"), "name")),
					json_object_get(v, "microdata"));
		json_decref(v);
	}
	free(line);
	fclose(f);
	json_array_foreach(all, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		json_t *got = lama_recipes_get_json(r, name);
		struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

		assert_non_null(got);
		if (!json_object_get(by_name, name)) { /* LamaFormatProbe has no Recipe vector */
			json_decref(got);
			continue;
		}
		if (lama_object_microdata(r, got, &b))
			fail_msg("%s: %s", name, lama_errmsg());
		assert_string_equal(b.data, json_string_value(json_object_get(by_name, name)));
		matched++;
		lama_buf_release(&b);
		json_decref(got);
	}
	assert_int_equal(matched, 39);
	json_decref(by_name);
	json_decref(all);
}

static void test_builtin(void **state)
{
	static const char *const tests[] = { "TestAllTypes", "TestInherit", "TestUnversioned",
					     "LamaFormatProbe" };
	lama_recipes *r;
	json_t *all = load_file("recipes.json"), *e;
	size_t i, n = 0;

	(void)state;
	assert_int_equal(lama_recipes_new(&r), 0);
	assert_int_equal(lama_recipes_add_builtin(r), 0);
	json_array_foreach(all, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		size_t k;
		int is_test = 0;

		for (k = 0; k < 4; k++)
			is_test |= !strcmp(name, tests[k]);
		assert_int_equal(lama_recipes_has(r, name), !is_test);
		n += !is_test;
	}
	assert_int_equal(n, 36);
	assert_int_equal(lama_recipes_is_versioned(r, "Person"), 1);
	assert_int_equal(lama_recipes_is_versioned(r, "ChatMessage"), 0);
	assert_int_equal(lama_recipes_is_versioned(r, "Nope"), LAMA_ENOTFOUND);
	assert_null(lama_recipes_get_json(r, "Nope"));
	lama_recipes_free(r);
	json_decref(all);
}

/* --- the 104 rejections --- */

struct inv_ctx {
	lama_recipes *r;
	size_t n, code_ok, msg_ok;
};

static void one_invalid(json_t *v, void *ctx)
{
	struct inv_ctx *c = ctx;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	const char *code = json_string_value(json_object_get(v, "code"));
	const char *msg = json_string_value(json_object_get(v, "error"));
	size_t cl = strlen(code);
	int rc = lama_object_microdata(c->r, json_object_get(v, "object"), &b);

	c->n++;
	if (rc != LAMA_EINVAL) {
		fprintf(stderr, "invalid %zu: accepted (rc %d): %.300s\n", c->n, rc, b.data);
	} else if (strncmp(lama_errmsg(), code, cl) || lama_errmsg()[cl] != ':') {
		fprintf(stderr, "invalid %zu: want %s, got: %s\n", c->n, code, lama_errmsg());
	} else {
		c->code_ok++;
		if (!strcmp(lama_errmsg(), msg))
			c->msg_ok++;
		else if (strlen(msg) < 500) /* lama_error keeps about 500 bytes */
			fprintf(stderr, "invalid %zu: message differs\n  want: %s\n  got:  %s\n", c->n,
				msg, lama_errmsg());
	}
	lama_buf_release(&b);
}

static void test_invalid(void **state)
{
	struct inv_ctx c = { *state, 0, 0, 0 };

	assert_int_equal(each_line("invalid.jsonl", one_invalid, &c), 104);
	fprintf(stderr, "invalid.jsonl: %zu/104 codes match, %zu/104 full messages match\n",
		c.code_ok, c.msg_ok);
	assert_int_equal(c.code_ok, 104);
}

/* --- numbers --- */

static void num_is(double d, const char *want)
{
	char got[32];

	lama__jsnum_format(d, got);
	assert_string_equal(got, want);
}

static void test_jsnum(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

	(void)state;
	num_is(0, "0");
	num_is(-0.0, "0");
	num_is(1, "1");
	num_is(-1, "-1");
	num_is(0.1, "0.1");
	num_is(0.1 + 0.2, "0.30000000000000004");
	num_is(1e21, "1e+21");
	num_is(1e20, "100000000000000000000");
	num_is(123456789012345680000.0, "123456789012345680000");
	num_is(1e-7, "1e-7");
	num_is(1.5e-7, "1.5e-7");
	num_is(0.000001, "0.000001");
	num_is(0.0000015, "0.0000015");
	num_is(5e-324, "5e-324");
	num_is(1.7976931348623157e308, "1.7976931348623157e+308");
	num_is(1700000000000.5, "1700000000000.5");
	num_is(9007199254740991.0, "9007199254740991");
	num_is(9007199254740992.0, "9007199254740992");
	num_is(-42.125, "-42.125");
	num_is(3.141592653589793, "3.141592653589793");
	num_is(2.5e-5, "0.000025");
	num_is(1.2345e25, "1.2345e+25");
	num_is(-1e-300, "-1e-300");
	num_is(100, "100");
	num_is(NAN, "NaN");
	num_is(INFINITY, "Infinity");
	num_is(-INFINITY, "-Infinity");
	assert_int_equal(lama_jsnum_write(NAN, &b), 0);
	assert_int_equal(lama_jsnum_write(-INFINITY, &b), 0);
	assert_int_equal(lama_jsnum_write(-0.0, &b), 0);
	assert_string_equal(b.data, "nullnull0");
	lama_buf_release(&b);
	/* integers below 2^53 are written from their digits, the rest by the
	 * shortest-digits search: both must agree with exact printing */
	{
		static const double ints[] = { 1, 9, 10, 99, 100, 1234567, 1e15, 1e15 - 1,
					       4503599627370496.0, 9007199254740991.0,
					       9007199254740992.0, 9007199254740994.0, 1e16, 1e20 };
		uint64_t x = 88172645463325252ULL;
		char want[40], got[32];
		size_t k;
		int i;

		for (k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
			for (i = -1; i <= 1; i += 2) {
				snprintf(want, sizeof(want), "%.0f", i * ints[k]);
				lama__jsnum_format(i * ints[k], got);
				assert_string_equal(got, want);
			}
		}
		for (i = 0; i < 20000; i++) {
			double d;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			d = (double)(x >> (11 + (unsigned)i % 53)); /* all magnitudes below 2^53 */
			if (i & 1)
				d = -d;
			snprintf(want, sizeof(want), "%.0f", d == 0 ? 0.0 : d);
			lama__jsnum_format(d, got);
			assert_string_equal(got, want);
		}
	}
	assert_true(lama__is_integer(1e21));
	assert_true(lama__is_integer(-0.0));
	assert_false(lama__is_integer(1.5));
	assert_false(lama__is_integer(INFINITY));
	assert_false(lama__is_integer(NAN));
}

/* --- UTF-16 order (README examples) --- */

static int li_cmp(const char *a, const char *b)
{
	struct lama_buf x = LAMA_BUF_INIT(LAMA_BUF_MAX), y = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int c;

	lama_buf_addstr(&x, "<li>");
	lama__html_escape(a, strlen(a), &x);
	lama_buf_addstr(&x, "</li>");
	lama_buf_addstr(&y, "<li>");
	lama__html_escape(b, strlen(b), &y);
	lama_buf_addstr(&y, "</li>");
	c = lama__utf16_cmp(x.data, x.len, y.data, y.len);
	lama_buf_release(&x);
	lama_buf_release(&y);
	return c;
}

static void test_utf16_order(void **state)
{
	(void)state;
	assert_true(li_cmp("a b", "a") < 0);
	assert_true(li_cmp("item19", "item1") < 0);
	assert_true(li_cmp("&", ">") < 0);
	assert_true(li_cmp(">", "<") < 0);
	assert_true(li_cmp("\xf0\x9f\x98\x80", "\xef\xbd\xa1") < 0); /* U+1F600 < U+FF61 */
	assert_true(li_cmp("\xef\xbd\xa1", "\xf0\x9f\x98\x80") > 0);
	assert_true(li_cmp("Z", "a") < 0);
	assert_true(li_cmp("\xc3\xa9", "e\xcc\x81") > 0); /* precomposed vs combining */
	assert_int_equal(lama__utf16_cmp("ab", 2, "ab", 2), 0);
	assert_true(lama__utf16_cmp("a", 1, "ab", 2) < 0);
	/* astral vs astral: code point order */
	assert_true(lama__utf16_cmp("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x81", 4) < 0);
	/* U+E000 is above every astral character in UTF-16 */
	assert_true(lama__utf16_cmp("\xee\x80\x80", 3, "\xf4\x8f\xbf\xbf", 4) > 0);
	/* below U+D800, byte order */
	assert_true(lama__utf16_cmp("\xed\x9f\xbf", 3, "\xf0\x90\x80\x80", 4) < 0);
}

/* --- JSON writers --- */

static void stringify_is(const char *json, const char *want, int sorted)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *v = json_loads(json, LAMA_JSON_FLAGS | JSON_DECODE_ANY, NULL);

	assert_non_null(v);
	assert_int_equal(sorted ? lama__stringify_sorted(v, &b) : lama_json_write(v, &b), 0);
	assert_string_equal(b.data, want);
	lama_buf_release(&b);
	json_decref(v);
}

static void test_json(void **state)
{
	(void)state;
	stringify_is("{\"b\":1,\"a\":[3,1,{\"$set\":[\"z\",\"y\"]}],\"$type$\":\"T\"}",
		     "{\"$type$\":\"T\",\"a\":[3,1,[\"y\",\"z\"]],\"b\":1}", 1);
	/* JS default sort: numbers by their text */
	stringify_is("{\"$set\":[10,9,1,-1]}", "[-1,1,10,9]", 1);
	stringify_is("{\"$map\":[[\"k2\",2],[\"k1\",{\"$set\":[2,1]}]]}", "[[\"k1\",[1,2]],[\"k2\",2]]", 1);
	stringify_is("{\"$number\":\"-0\"}", "0", 1);
	stringify_is("[{\"$number\":\"NaN\"},1e21,1e-7]", "[null,1e+21,1e-7]", 1);
	stringify_is("{\"$regexp\":{\"source\":\"^a$\",\"flags\":\"\"}}", "\"^a$\"", 1);
	stringify_is("\"q\\\"\\\\\\n\\u0001\\u007f/\"", "\"q\\\"\\\\\\n\\u0001\x7f/\"", 1);
	/* JSON.stringify: index keys first, then insertion order */
	stringify_is("{\"b\":1,\"10\":2,\"a\":3,\"2\":4,\"01\":5}",
		     "{\"2\":4,\"10\":2,\"b\":1,\"a\":3,\"01\":5}", 0);
	stringify_is("{\"$set\":[1.5,{\"$number\":\"-0\"}]}", "{\"$set\":[1.5,{\"$number\":\"-0\"}]}", 0);
}

/* --- strict parsing --- */

static const char person_md[] = "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">"
				"a@b.c</span><span itemprop=\"name\">A &amp; B</span></div>";

static void rejects(lama_recipes *r, const char *md, size_t n)
{
	json_t *o = NULL;
	int rc = lama_object_parse(r, md, n, &o, NULL);

	if (rc != LAMA_EFORMAT)
		fail_msg("accepted (rc %d): %.*s", rc, (int)n, md);
	assert_null(o);
}

static void rejects_s(lama_recipes *r, const char *md)
{
	rejects(r, md, strlen(md));
}

static void test_parse_rejects(void **state)
{
	lama_recipes *r = *state;
	json_t *o = NULL;
	size_t i;
	char *buf;

	assert_int_equal(lama_object_parse(r, person_md, strlen(person_md), &o, NULL), 0);
	json_decref(o);
	/* every truncation, from a heap copy so ASan sees any overread */
	for (i = 0; i < strlen(person_md); i++) {
		buf = lama_malloc(i ? i : 1);
		memcpy(buf, person_md, i);
		rejects(r, buf, i);
		lama_free(buf);
	}
	/* trailing bytes */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x</span></div> ");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x</span></div></div>");
	/* unknown type, wrong frame */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Nobody\"><span itemprop=\"email\">x</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/\"></div>");
	rejects_s(r, "<div  itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x</span></div>");
	/* ID object of an unversioned type */
	rejects_s(r, "<div data-id-object=\"true\" itemscope itemtype=\"//refin.io/TestUnversioned\"></div>");
	/* fields out of order, missing, unknown, wrong tag, wrong nesting */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"name\">n</span>"
		     "<span itemprop=\"email\">x</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"name\">n</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x</span>"
		     "<span itemprop=\"age\">1</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><b itemprop=\"email\">x</b></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x</div></span>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x<i></i></span></div>");
	/* non-canonical escaping */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">a>b</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">a&quot;b</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">a&#60;b</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">a&amp</span></div>");
	/* invalid UTF-8 */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">\xc3(</span></div>");
	/* bag out of order, set with a repeat */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><ul itemprop=\"bag\"><li>b</li><li>a</li></ul></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><ul itemprop=\"set\"><li>a</li><li>a</li></ul></div>");
	/* numbers not as JavaScript writes them */
	{
		static const char *const bad[] = { "01", "1.0", "-0", "+1", "1e21", "1E+21", "0x10",
						   "1.5", " 1", "", "null", "Infinity", "1e999", "1.",
						   "-01", "00", "-", "--1", "1-", "0123456789012345",
						   "-0123456789012345", "9007199254740993" };
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char md[300];

			snprintf(md, sizeof(md), "<div itemscope itemtype=\"//refin.io/TestAllTypes\">"
				 "<span itemprop=\"id\">x</span><span itemprop=\"version\">%s</span></div>",
				 bad[i]);
			rejects_s(r, md);
		}
	}
	/* numbers as JavaScript writes them read back, on both sides of the
	 * 15-digit shortcut */
	{
		static const char *const good[] = { "0", "7", "-7", "123456789012345",
						    "-123456789012345", "1234567890123456",
						    "9007199254740991", "-9007199254740992",
						    "100000000000000000000" };
		for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
			char md[300];

			snprintf(md, sizeof(md), "<div itemscope itemtype=\"//refin.io/TestAllTypes\">"
				 "<span itemprop=\"id\">x</span><span itemprop=\"version\">%s</span></div>",
				 good[i]);
			if (lama_object_parse(r, md, strlen(md), &o, NULL))
				fail_msg("%s: %s", good[i], lama_errmsg());
			assert_int_equal(lama_object_microdata(r, o, &b), 0);
			assert_string_equal(b.data, md);
			lama_buf_release(&b);
			json_decref(o);
		}
	}
	/* stringifiable not in sorted form, or with escapes JSON.stringify
	 * would not write */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><span itemprop=\"strf\">{\"b\":1,\"a\":2}</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><span itemprop=\"strf\">{\"a\": 2}</span></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><span itemprop=\"strf\">\"\\u0041\"</span></div>");
	/* ...but a present "null" is what a NaN is written as, and reads back */
	{
		static const char nan_md[] = "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop="
					     "\"id\">x</span><span itemprop=\"version\">1</span><span itemprop="
					     "\"strf\">null</span></div>";
		struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

		assert_int_equal(lama_object_parse(r, nan_md, strlen(nan_md), &o, NULL), 0);
		assert_int_equal(lama_object_microdata(r, o, &b), 0);
		assert_string_equal(b.data, nan_md);
		lama_buf_release(&b);
		json_decref(o);
	}
	/* references: upper case, short, wrong kind */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><a itemprop=\"refObj\" data-type=\"obj\">"
		     "30558342C32F2898FCFEE0A91D8946DB80E7AE03832DDA92C112682334438728</a></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><a itemprop=\"refObj\" data-type=\"obj\">abc</a></div>");
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><a itemprop=\"refObj\" data-type=\"id\">"
		     "30558342c32f2898fcfee0a91d8946db80e7ae03832dda92c112682334438728</a></div>");
	/* regexp violation */
	rejects_s(r, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		     "<span itemprop=\"version\">1</span><span itemprop=\"strRe\">ABC-12</span></div>");
}

/* --- trusted parsing --- */

/* lama_object_parse_trusted gives what lama_object_parse gives on every
 * vector, full and ID form. */
static void trusted_same(lama_recipes *r, const json_t *mdj, size_t *count)
{
	const char *md = json_string_value(mdj);
	size_t n = json_string_length(mdj);
	json_t *strict = NULL, *trusted = NULL;
	int is_id = -1, t_is_id = -2;
	char *copy;

	if (!md)
		return;
	copy = lama_malloc(n ? n : 1); /* exact size: ASan sees any overread */
	assert_non_null(copy);
	memcpy(copy, md, n);
	assert_int_equal(lama_object_parse(r, copy, n, &strict, &is_id), 0);
	if (lama_object_parse_trusted(r, copy, n, &trusted, &t_is_id))
		fail_msg("trusted parse failed: %s\n%s", lama_errmsg(), md);
	assert_int_equal(is_id, t_is_id);
	assert_true(json_equal(strict, trusted));
	json_decref(strict);
	json_decref(trusted);
	lama_free(copy);
	++*count;
}

static void one_trusted(json_t *v, void *ctx)
{
	void **c = ctx;

	trusted_same(c[0], json_object_get(v, "microdata"), c[1]);
	trusted_same(c[0], json_object_get(v, "id_microdata"), c[1]);
}

static void test_parse_trusted_vectors(void **state)
{
	size_t count = 0;
	void *c[2] = { *state, &count };

	assert_int_equal(each_line("vectors.jsonl", one_trusted, c), 446);
	assert_true(count > 446);
}

/* Any input to the trusted parser: a result or an error, never a read
 * outside the input (each from an exact-size heap copy, so ASan sees it),
 * a leak or a crash. */
static void trusted_any(lama_recipes *r, const char *md, size_t n)
{
	char *copy = lama_malloc(n ? n : 1);
	json_t *o = NULL;
	int rc;

	assert_non_null(copy);
	memcpy(copy, md, n);
	rc = lama_object_parse_trusted(r, copy, n, &o, NULL);
	assert_true(rc == 0 || rc == LAMA_EFORMAT);
	assert_true(rc ? o == NULL : o != NULL);
	json_decref(o);
	lama_free(copy);
}

struct hostile_ctx {
	lama_recipes *r;
	uint64_t x;
};

static void one_hostile(json_t *v, void *ctx)
{
	static const char bytes[] = { '<', '>', '&', '"', '/', ' ', '\0', '\xff', '\xc3', 'a', '0' };
	struct hostile_ctx *c = ctx;
	const json_t *mdj = json_object_get(v, "microdata");
	const char *md = json_string_value(mdj);
	size_t n = json_string_length(mdj), i;
	char *m = lama_malloc(n + 1);

	assert_non_null(m);
	for (i = 0; i < n; i += 1 + n / 97) /* truncations */
		trusted_any(c->r, md, i);
	for (i = 0; i < 40; i++) { /* one to three bytes changed */
		int k, changes = 1 + (int)(c->x % 3);

		memcpy(m, md, n);
		for (k = 0; k < changes; k++) {
			c->x ^= c->x << 13, c->x ^= c->x >> 7, c->x ^= c->x << 17;
			m[c->x % n] = bytes[(c->x >> 32) % sizeof(bytes)];
		}
		trusted_any(c->r, m, n);
		trusted_any(c->r, m, (size_t)(c->x >> 40) % (n + 1));
	}
	lama_free(m);
}

static void test_parse_trusted_hostile(void **state)
{
	struct hostile_ctx c = { *state, 0x9E3779B97F4A7C15ULL };
	lama_recipes *r = *state;
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *o = NULL;
	size_t i;
	/* not canonical: the strict parser refuses, the trusted one takes them */
	static const char *const lenient[] = {
		"<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		"<span itemprop=\"version\">1</span><ul itemprop=\"bag\"><li>b</li><li>a</li></ul></div>",
		"<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		"<span itemprop=\"version\">1</span><span itemprop=\"strf\">{\"b\":1,\"a\":2}</span></div>",
	};
	/* never valid, trusted or not */
	static const char *const bad[] = {
		"",
		"<div",
		"<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">\xc3(</span></div>",
		"<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">a&amp</span></div>",
		"<div itemscope itemtype=\"//refin.io/Person\"><span itemprop=\"email\">x</span></div> ",
		"<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		"<span itemprop=\"version\">1</span><a itemprop=\"refObj\" data-type=\"obj\">abc</a></div>",
		"<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">x</span>"
		"<span itemprop=\"version\">01</span></div>",
	};

	for (i = 0; i < sizeof(lenient) / sizeof(lenient[0]); i++) {
		rejects_s(r, lenient[i]);
		assert_int_equal(lama_object_parse_trusted(r, lenient[i], strlen(lenient[i]), &o, NULL), 0);
		json_decref(o);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(lama_object_parse_trusted(r, bad[i], strlen(bad[i]), &o, NULL),
				 LAMA_EFORMAT);
		assert_null(o);
	}
	/* every truncation of a small object */
	for (i = 0; i < strlen(person_md); i++) {
		trusted_any(r, person_md, i);
		assert_int_equal(lama_object_parse_trusted(r, person_md, i, &o, NULL), LAMA_EFORMAT);
	}
	/* far too deep */
	lama_buf_addstr(&md, "<div itemscope itemtype=\"//refin.io/TestAllTypes\"><span itemprop=\"id\">"
			"x</span><span itemprop=\"version\">1</span><ul itemprop=\"setOfArr\">");
	for (i = 0; i < 100000; i++)
		lama_buf_addstr(&md, "<li><ol>");
	assert_int_equal(lama_object_parse_trusted(r, md.data, md.len, &o, NULL), LAMA_EFORMAT);
	lama_buf_release(&md);
	/* every vector, cut and changed */
	assert_int_equal(each_line("vectors.jsonl", one_hostile, &c), 446);
}

/* A recipe that nests through inheritFrom parses only down to the limit. */
static void test_parse_depth(void **state)
{
	lama_recipes *r = *state;
	json_t *rec = json_loads("{\"$type$\":\"Recipe\",\"name\":\"Deep\",\"rule\":[{\"itemprop\":\"x\","
				 "\"optional\":true,\"itemtype\":{\"type\":\"object\",\"rules\":[{\"itemprop\":"
				 "\"x\",\"optional\":true,\"inheritFrom\":\"Deep.x\"}]}}]}",
				 LAMA_JSON_FLAGS, NULL);
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *o = NULL;
	int i, levels;

	assert_non_null(rec);
	assert_int_equal(lama_recipes_add(r, rec), 0);
	json_decref(rec);
	for (levels = LAMA_OBJECT_MAX_DEPTH; levels <= LAMA_OBJECT_MAX_DEPTH + 1; levels++) {
		lama_buf_truncate(&md, 0);
		lama_buf_addstr(&md, "<div itemscope itemtype=\"//refin.io/Deep\">");
		for (i = 0; i < levels; i++)
			lama_buf_addstr(&md, "<div itemprop=\"x\">");
		for (i = 0; i < levels; i++)
			lama_buf_addstr(&md, "</div>");
		lama_buf_addstr(&md, "</div>");
		if (levels == LAMA_OBJECT_MAX_DEPTH) {
			assert_int_equal(lama_object_parse(r, md.data, md.len, &o, NULL), 0);
			json_decref(o);
		} else {
			rejects(r, md.data, md.len);
		}
	}
	/* far too deep must fail cleanly too (no stack exhaustion) */
	lama_buf_truncate(&md, 0);
	lama_buf_addstr(&md, "<div itemscope itemtype=\"//refin.io/Deep\">");
	for (i = 0; i < 100000; i++)
		lama_buf_addstr(&md, "<div itemprop=\"x\">");
	rejects(r, md.data, md.len);
	lama_buf_release(&md);
}

static void test_peek_type(void **state)
{
	char type[LAMA_TYPE_MAX];
	static const char id_md[] = "<div data-id-object=\"true\" itemscope itemtype=\"//refin.io/Person\">";

	(void)state;
	assert_int_equal(lama_object_peek_type(person_md, strlen(person_md), type), 0);
	assert_string_equal(type, "Person");
	assert_int_equal(lama_object_peek_type(id_md, strlen(id_md), type), 0);
	assert_string_equal(type, "Person");
	assert_int_equal(lama_object_peek_type(person_md, 30, type), LAMA_EFORMAT);
	assert_int_equal(lama_object_peek_type("<span>", 6, type), LAMA_EFORMAT);
}

/* --- references --- */

struct ref_seen {
	char prop[64];
	enum lama_ref_kind kind;
	char hex[65];
};

#define REFS_MAX 256

struct refs {
	struct ref_seen v[REFS_MAX];
	size_t n;
	size_t stop_at;
};

static int collect_ref(void *ctx, const char *itemprop, enum lama_ref_kind kind, const lama_hash *target)
{
	struct refs *r = ctx;

	if (r->n == r->stop_at)
		return 42;
	assert_true(r->n < REFS_MAX);
	snprintf(r->v[r->n].prop, sizeof(r->v[r->n].prop), "%s", itemprop);
	r->v[r->n].kind = kind;
	lama_hash_hex(target, r->v[r->n].hex);
	r->n++;
	return 0;
}

static int cmp_ref(const void *pa, const void *pb)
{
	const struct ref_seen *a = pa, *b = pb;
	int c = strcmp(a->prop, b->prop);

	if (c)
		return c;
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	return strcmp(a->hex, b->hex);
}

/* The same multiset of (itemprop, kind, target): sorts both. */
static void refs_assert_same(struct refs *got, struct refs *want)
{
	size_t i;

	qsort(got->v, got->n, sizeof(got->v[0]), cmp_ref);
	qsort(want->v, want->n, sizeof(want->v[0]), cmp_ref);
	assert_int_equal(got->n, want->n);
	for (i = 0; i < got->n; i++) {
		assert_string_equal(got->v[i].prop, want->v[i].prop);
		assert_int_equal(got->v[i].kind, want->v[i].kind);
		assert_string_equal(got->v[i].hex, want->v[i].hex);
	}
}

/* The references of an object as the first lama_object_foreach_ref found
 * them, by reading its microdata: every <a data-type> element, named by the
 * itemprop of the nearest element that has one (itself included), so the
 * collection for items, the inner field inside nested objects. Canonical
 * microdata has no raw '<' or '>' in text, so tags can be found by them. */
static void md_refs(const char *md, size_t n, struct refs *out)
{
	static const char *const kinds[] = { "obj", "id", "clob", "blob" };
	const char *props[LAMA_OBJECT_MAX_DEPTH * 4];
	size_t plen[LAMA_OBJECT_MAX_DEPTH * 4];
	const char *p = md, *mdend = md + n; /* text may hold NUL: bounded scans */
	int depth = 0;

	out->n = 0;
	while ((p = memchr(p, '<', (size_t)(mdend - p)))) {
		const char *end = memchr(p, '>', (size_t)(mdend - p)), *a, *dt;
		size_t k, tl;
		int d;

		assert_non_null(end);
		tl = (size_t)(end - p);
		if (p[1] == '/') {
			assert_true(depth > 0);
			depth--;
			p = end + 1;
			continue;
		}
		assert_true(depth < (int)(sizeof(props) / sizeof(props[0])));
		a = memmem(p, tl, " itemprop=\"", 11);
		props[depth] = a ? a + 11 : NULL;
		plen[depth] = a ? (size_t)((const char *)memchr(a + 11, '"', (size_t)(end - a - 11)) - (a + 11)) : 0;
		depth++;
		dt = memmem(p, tl, " data-type=\"", 12);
		if (p[1] == 'a' && p[2] == ' ' && dt) {
			struct ref_seen *r = &out->v[out->n];

			assert_true(out->n < REFS_MAX);
			for (k = 0; k < 4; k++)
				if (!strncmp(dt + 12, kinds[k], strlen(kinds[k])) &&
				    dt[12 + strlen(kinds[k])] == '"')
					break;
			assert_true(k < 4);
			r->kind = (enum lama_ref_kind)k;
			for (d = depth - 1; d >= 0 && !props[d]; d--)
				;
			assert_true(d >= 0);
			assert_true(plen[d] < sizeof(r->prop));
			memcpy(r->prop, props[d], plen[d]);
			r->prop[plen[d]] = '\0';
			assert_true(mdend - end > 64);
			memcpy(r->hex, end + 1, 64);
			r->hex[64] = '\0';
			out->n++;
		}
		p = end + 1;
	}
	assert_int_equal(depth, 0);
}

static void test_foreach_ref(void **state)
{
	lama_recipes *r = *state;
	static const char *const h[] = {
		"1111111111111111111111111111111111111111111111111111111111111111",
		"2222222222222222222222222222222222222222222222222222222222222222",
		"3333333333333333333333333333333333333333333333333333333333333333",
		"4444444444444444444444444444444444444444444444444444444444444444",
		"5555555555555555555555555555555555555555555555555555555555555555",
		"6666666666666666666666666666666666666666666666666666666666666666",
	};
	json_t *obj = json_pack("{s:s, s:s, s:f, s:s, s:s, s:s, s:s, s:{s:[[s,[s,s]],[s,[]]]}}",
				"$type$", "TestAllTypes", "id", "refs", "version", 1.0,
				"refObj", h[0], "refId", h[1], "refClob", h[2], "refBlob", h[3],
				"mapOfBag", "$map", "k", h[5], h[4], "e");
	struct refs seen = { .n = 0, .stop_at = (size_t)-1 }, want = { .n = 0 };
	static const struct {
		const char *prop;
		enum lama_ref_kind kind;
		int h;
	} expect[] = {
		{ "refObj", LAMA_REF_OBJ, 0 }, { "refId", LAMA_REF_ID, 1 },
		{ "refClob", LAMA_REF_CLOB, 2 }, { "refBlob", LAMA_REF_BLOB, 3 },
		{ "mapOfBag", LAMA_REF_OBJ, 4 }, { "mapOfBag", LAMA_REF_OBJ, 5 },
	};
	size_t i;

	(void)state;
	assert_non_null(obj);
	assert_int_equal(lama_object_foreach_ref(r, obj, collect_ref, &seen), 0);
	for (i = 0; i < 6; i++) {
		snprintf(want.v[i].prop, sizeof(want.v[i].prop), "%s", expect[i].prop);
		want.v[i].kind = expect[i].kind;
		snprintf(want.v[i].hex, sizeof(want.v[i].hex), "%s", h[expect[i].h]);
	}
	want.n = 6;
	refs_assert_same(&seen, &want); /* the order is not promised */
	/* the callback's non-zero value stops the walk and comes back */
	seen.n = 0;
	seen.stop_at = 2;
	assert_int_equal(lama_object_foreach_ref(r, obj, collect_ref, &seen), 42);
	assert_int_equal(seen.n, 2);
	json_decref(obj);
}

/* Every reference of every vector: the walk over the JSON value finds the
 * same (itemprop, kind, target) multiset as reading the expected microdata
 * (which is how lama_object_foreach_ref worked before it walked the JSON). */
struct refvec_ctx {
	lama_recipes *r;
	size_t objects, refs;
};

static void one_refvec(json_t *v, void *ctx)
{
	struct refvec_ctx *c = ctx;
	const json_t *md = json_object_get(v, "microdata");
	static struct refs seen, want;

	seen.n = 0;
	seen.stop_at = (size_t)-1;
	assert_int_equal(lama_object_foreach_ref(c->r, json_object_get(v, "object"), collect_ref, &seen), 0);
	md_refs(json_string_value(md), json_string_length(md), &want);
	refs_assert_same(&seen, &want);
	c->objects++;
	c->refs += seen.n;
}

static void test_foreach_ref_vectors(void **state)
{
	struct refvec_ctx c = { *state, 0, 0 };

	each_line("vectors.jsonl", one_refvec, &c);
	assert_int_equal(c.objects, 446);
	assert_int_equal(c.refs, 647); /* as the old implementation counted them */
}

static int never_called(void *ctx, const char *itemprop, enum lama_ref_kind kind,
			const lama_hash *target)
{
	(void)ctx;
	(void)itemprop;
	(void)kind;
	(void)target;
	return 99;
}

/* Objects that are no valid object: an error, never a crash. */
static void test_foreach_ref_invalid(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"$set\":[]}",
		"{\"id\":\"x\"}",
		"{\"$type$\":\"Nobody\"}",
		"{\"$type$\":7}",
		"{\"$type$\":\"TestAllTypes\",\"version\":1}", /* mandatory id missing */
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"refObj\":\"ABC\"}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"refObj\":1}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"obj\":[]}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"obj\":{\"$set\":[]}}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"set\":[\"a\"]}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"set\":{\"$set\":7}}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"bag\":\"a\"}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"mapOfBag\":[]}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"mapOfBag\":{\"$map\":[[\"k\"]]}}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"mapOfBag\":{\"$map\":[\"k\"]}}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"mapOfBag\":{\"$map\":[[\"k\",\"v\"]]}}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"mapOfBag\":{\"$map\":[[\"k\",[null]]]}}",
		"{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"arrObj\":[{\"v\":1}]}",
	};
	lama_recipes *r = *state;
	json_t *rec, *o;
	size_t i;
	int d;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], LAMA_JSON_FLAGS, NULL);

		assert_non_null(j);
		if (lama_object_foreach_ref(r, j, never_called, NULL) != LAMA_EINVAL)
			fail_msg("walked %s", bad[i]);
		json_decref(j);
	}
	assert_int_equal(lama_object_foreach_ref(r, NULL, never_called, NULL), LAMA_EINVAL);
	/* nesting past the limit */
	rec = json_loads("{\"$type$\":\"Recipe\",\"name\":\"DeepRef\",\"rule\":[{\"itemprop\":\"x\","
			 "\"optional\":true,\"itemtype\":{\"type\":\"object\",\"rules\":[{\"itemprop\":"
			 "\"x\",\"optional\":true,\"inheritFrom\":\"DeepRef.x\"},{\"itemprop\":\"r\","
			 "\"optional\":true,\"itemtype\":{\"type\":\"referenceToBlob\"}}]}}]}",
			 LAMA_JSON_FLAGS, NULL);
	assert_non_null(rec);
	assert_int_equal(lama_recipes_add(r, rec), 0);
	json_decref(rec);
	o = json_pack("{s:s}", "r", "1111111111111111111111111111111111111111111111111111111111111111");
	for (d = 0; d < LAMA_OBJECT_MAX_DEPTH + 10; d++) {
		json_t *outer = json_pack("{s:o}", "x", o);
		struct refs seen = { .n = 0, .stop_at = (size_t)-1 };
		struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
		int rc, want;

		assert_non_null(outer);
		o = outer;
		json_object_set_new(o, "$type$", json_string("DeepRef"));
		want = lama_object_microdata(r, o, &b);
		rc = lama_object_foreach_ref(r, o, collect_ref, &seen);
		assert_int_equal(rc, want); /* the same limit as the serializer */
		assert_int_equal(seen.n, rc ? 0 : 1);
		if (!rc)
			assert_string_equal(seen.v[0].prop, "r");
		json_object_del(o, "$type$");
		lama_buf_release(&b);
	}
	json_decref(o);
}

/* Every rejected object of invalid.jsonl: no crash; 0 or LAMA_EINVAL (the
 * walk does not check scalars). */
static void one_invalid_ref(json_t *v, void *ctx)
{
	struct refs seen = { .n = 0, .stop_at = (size_t)-1 };
	int rc = lama_object_foreach_ref(ctx, json_object_get(v, "object"), collect_ref, &seen);

	assert_true(rc == 0 || rc == LAMA_EINVAL);
}

static void test_foreach_ref_invalid_vectors(void **state)
{
	assert_int_equal(each_line("invalid.jsonl", one_invalid_ref, *state), 104);
}

/* --- fields and CRDT rules --- */

struct field_seen {
	char names[16][48];
	enum lama_crdt_rule rule[16];
	int is_id[16];
	size_t n;
};

static int collect_field(void *ctx, const char *itemprop, enum lama_crdt_rule rule, int is_id)
{
	struct field_seen *f = ctx;

	assert_true(f->n < 16);
	snprintf(f->names[f->n], sizeof(f->names[0]), "%s", itemprop);
	f->rule[f->n] = rule;
	f->is_id[f->n] = is_id;
	f->n++;
	return 0;
}

static void test_foreach_field(void **state)
{
	lama_recipes *r = *state;
	struct field_seen f = { .n = 0 };
	json_t *rec;

	assert_int_equal(lama_recipes_foreach_field(r, "Instance", collect_field, &f), 0);
	assert_int_equal(f.n, 5);
	assert_string_equal(f.names[0], "name");
	assert_int_equal(f.is_id[0], 1);
	assert_int_equal(f.is_id[1], 1);
	assert_string_equal(f.names[2], "recipe");
	assert_int_equal(f.rule[2], LAMA_CRDT_SET);
	assert_int_equal(f.is_id[2], 0);
	assert_int_equal(f.rule[3], LAMA_CRDT_REGISTER); /* a map */

	/* inherited set, and crdtConfig overriding */
	f.n = 0;
	assert_int_equal(lama_recipes_foreach_field(r, "TestInherit", collect_field, &f), 0);
	assert_int_equal(f.n, 4);
	assert_string_equal(f.names[2], "tags");
	assert_int_equal(f.rule[2], LAMA_CRDT_SET);
	rec = json_loads("{\"$type$\":\"Recipe\",\"name\":\"WithCrdt\",\"crdtConfig\":{\"$map\":[[\"z\",\"LWW\"],"
			 "[\"a#string\",\"Set\"]]},\"rule\":[{\"itemprop\":\"a\",\"isId\":true},{\"itemprop\":"
			 "\"z\",\"itemtype\":{\"type\":\"set\",\"item\":{\"type\":\"string\"}}}]}",
			 LAMA_JSON_FLAGS, NULL);
	assert_int_equal(lama_recipes_add(r, rec), 0);
	json_decref(rec);
	f.n = 0;
	assert_int_equal(lama_recipes_foreach_field(r, "WithCrdt", collect_field, &f), 0);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.rule[0], LAMA_CRDT_SET);
	assert_int_equal(f.rule[1], LAMA_CRDT_REGISTER);
	assert_int_equal(lama_recipes_foreach_field(r, "Nope", collect_field, &f), LAMA_ENOTFOUND);
}

/* --- recipes that must be refused --- */

static void test_bad_recipes(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"name\":\"X\"}",
		"{\"name\":\"\",\"rule\":[]}",
		"{\"name\":\"a\\\"b\",\"rule\":[]}",
		"{\"name\":\"a b\",\"rule\":[]}",
		"{\"$type$\":\"Person\",\"name\":\"X\",\"rule\":[]}",
		"{\"name\":\"X\",\"rule\":[{}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\"},{\"itemprop\":\"a\"}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a<\"}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"$type$\"}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"optional\":1}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"itemtype\":{\"type\":\"float\"}}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"itemtype\":{\"type\":\"bag\"}}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"itemtype\":{\"type\":\"map\",\"key\":{\"type\":\"string\"}}}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"itemtype\":{\"type\":\"string\",\"regexp\":{\"$regexp\":{\"source\":\"(\",\"flags\":\"\"}}}}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"itemtype\":{\"type\":\"string\",\"regexp\":{\"$regexp\":{\"source\":\"a\",\"flags\":\"g\"}}}}]}",
		"{\"name\":\"X\",\"rule\":[{\"itemprop\":\"a\",\"inheritFrom\":\"NoDot\"}]}",
		"{\"name\":\"X\",\"crdtConfig\":[[\"a\",1]],\"rule\":[]}",
	};
	lama_recipes *r;
	size_t i;

	(void)state;
	assert_int_equal(lama_recipes_new(&r), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], LAMA_JSON_FLAGS, NULL);

		assert_non_null(j);
		if (lama_recipes_add(r, j) != LAMA_EINVAL)
			fail_msg("accepted recipe %s", bad[i]);
		json_decref(j);
	}
	assert_int_equal(lama_recipes_has(r, "X"), 0);
	lama_recipes_free(r);
}

/* Serializing with a broken inheritFrom fails cleanly. */
static void test_inherit_unresolved(void **state)
{
	lama_recipes *r = *state;
	json_t *rec = json_loads("{\"name\":\"Orphan\",\"rule\":[{\"itemprop\":\"a\",\"inheritFrom\":\"Missing.x\"}]}",
				 LAMA_JSON_FLAGS, NULL);
	json_t *obj = json_pack("{s:s,s:s}", "$type$", "Orphan", "a", "v");
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

	assert_int_equal(lama_recipes_add(r, rec), 0);
	assert_int_equal(lama_object_microdata(r, obj, &b), LAMA_EINVAL);
	assert_non_null(strstr(lama_errmsg(), "Missing"));
	lama_buf_release(&b);
	json_decref(rec);
	json_decref(obj);
}

/* --- allocation failures: every one must fail cleanly, without leaks --- */

static void test_alloc_failures(void **state)
{
	static const char probe[] = "{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"bag\":[\"b\",\"a\"],"
				    "\"set\":{\"$set\":[\"z\",\"y\"]},\"strf\":{\"b\":{\"$set\":[2,1]},\"a\":1},"
				    "\"map\":{\"$map\":[[\"k\",1]]},\"obj\":{\"a\":\"<\"},\"strRe\":\"ab-12\"}";
	lama_recipes *r = *state, *r2;
	json_t *obj = json_loads(probe, LAMA_JSON_FLAGS, NULL);
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	unsigned long n;
	int rc;

	assert_non_null(obj);
	assert_int_equal(lama_object_microdata(r, obj, &md), 0);
	for (n = 1;; n++) {
		struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
		json_t *o = NULL;

		lama_mem_fail_after(n, 0);
		rc = lama_object_microdata(r, obj, &b);
		if (!rc)
			rc = lama_object_parse(r, md.data, md.len, &o, NULL);
		json_decref(o);
		o = NULL;
		if (!rc)
			rc = lama_object_parse_trusted(r, md.data, md.len, &o, NULL);
		lama_mem_fail_after(0, 0);
		lama_buf_release(&b);
		json_decref(o);
		if (!rc)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
	}
	assert_true(n > 5);
	for (n = 1;; n++) {
		lama_mem_fail_after(n, 0);
		rc = lama_recipes_new(&r2);
		if (!rc)
			rc = lama_recipes_add_builtin(r2);
		lama_mem_fail_after(0, 0);
		lama_recipes_free(r2);
		r2 = NULL;
		if (!rc)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
	}
	lama_buf_release(&md);
	json_decref(obj);
}

/* Sets and Maps that no JS value could be. */
static void test_set_map_repeats(void **state)
{
	lama_recipes *r = *state;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *o;

	o = json_loads("{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"set\":{\"$set\":[\"a\",\"a\"]}}",
		       LAMA_JSON_FLAGS, NULL);
	assert_int_equal(lama_object_microdata(r, o, &b), LAMA_EINVAL);
	/* a failure leaves out as it was: still unallocated here... */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	/* ...and here with its old contents */
	assert_int_equal(lama_buf_addstr(&b, "keep"), 0);
	assert_int_equal(lama_object_microdata(r, o, &b), LAMA_EINVAL);
	assert_string_equal(b.data, "keep");
	assert_int_equal(b.len, 4);
	lama_buf_release(&b);
	json_decref(o);
	o = json_loads("{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"map\":{\"$map\":[[\"a\",1],[\"a\",2]]}}",
		       LAMA_JSON_FLAGS, NULL);
	assert_int_equal(lama_object_microdata(r, o, &b), LAMA_EINVAL);
	json_decref(o);
	/* a bag keeps repeats */
	o = json_loads("{\"$type$\":\"TestAllTypes\",\"id\":\"x\",\"version\":1,\"bag\":[\"a\",\"a\"]}",
		       LAMA_JSON_FLAGS, NULL);
	assert_int_equal(lama_object_microdata(r, o, &b), 0);
	json_decref(o);
	lama_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jsnum),
		cmocka_unit_test(test_utf16_order),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_peek_type),
		cmocka_unit_test(test_bad_recipes),
		cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recipe_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_trusted_vectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_trusted_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_ref, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_ref_vectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_ref_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_ref_invalid_vectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inherit_unresolved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_map_repeats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
