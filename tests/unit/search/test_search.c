/* The blind search index: words, phrases, exclusions, OR, bm25 order,
 * folding, replace and remove, topics and limits, hostile queries, wrong
 * keys and tampered rows, out-of-memory paths, and sync over a real
 * account's topics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "testutil.h"
#include "chat/chat.h"
#include "leute/leute.h"
#include "models/models.h"
#include "search/search.h"
#include "util/err.h"
#include "util/mem.h"

static char dir[4096], path[4200];
static uint8_t tkey[32], skey[32];
static lama_search *x;

static int setup(void **state)
{
	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto init");
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/search.db", dir);
	memset(tkey, 7, 32);
	memset(skey, 9, 32);
	if (lama_search_open_at(path, tkey, skey, &x))
		fail_msg("open: %s", lama_errmsg());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lama_search_close(x);
	x = NULL;
	tu_rmtree(dir);
	return 0;
}

static lama_hash hid(unsigned n)
{
	lama_hash h;

	memset(&h, 0, sizeof(h));
	h.b[0] = (uint8_t)n;
	h.b[1] = (uint8_t)(n >> 8);
	h.b[2] = (uint8_t)(n >> 16);
	h.b[31] = 0xaa;
	return h;
}

static void add(unsigned id, const char *topic, const char *text)
{
	struct lama_search_doc d;

	memset(&d, 0, sizeof(d));
	d.id = hid(id);
	d.topic = topic;
	d.sender = hid(1000 + id);
	d.time = 1.7e12 + id;
	d.text = text;
	d.text_len = strlen(text);
	if (lama_search_add(x, &d))
		fail_msg("add %u: %s", id, lama_errmsg());
}

struct hits {
	int real; /* real message ids, not hid()'s */
	size_t n;
	unsigned id[64];
	double rank[64];
	char topic[64][256];
	char snippet[64][300];
	size_t nhl[64];
	char hl0[64][64];
};

static int collect(void *ctx, const struct lama_search_hit *h)
{
	struct hits *g = ctx;

	assert_true(g->n < 64);
	g->id[g->n] = h->id.b[0] | (unsigned)h->id.b[1] << 8 | (unsigned)h->id.b[2] << 16;
	if (!g->real)
		assert_int_equal(h->id.b[31], 0xaa);
	g->rank[g->n] = h->rank;
	snprintf(g->topic[g->n], 256, "%s", h->topic);
	assert_true(h->snippet_len <= LAMA_SEARCH_SNIPPET_MAX + 6);
	assert_int_equal(strlen(h->snippet), h->snippet_len);
	snprintf(g->snippet[g->n], 300, "%s", h->snippet);
	g->nhl[g->n] = h->nhl;
	for (size_t i = 0; i < h->nhl; i++)
		assert_true(h->hl[i].off + h->hl[i].len <= h->snippet_len);
	if (h->nhl)
		snprintf(g->hl0[g->n], 64, "%.*s", (int)h->hl[0].len, h->snippet + h->hl[0].off);
	/* the sender and time came back from the sealed row */
	if (!g->real)
		assert_int_equal(h->sender.b[0], (uint8_t)(g->id[g->n] + 1000));
	if (!g->real)
		assert_true(h->time == 1.7e12 + g->id[g->n]);
	g->n++;
	return 0;
}

static int real_ids;
static size_t window;

static int q_rc(const char *q, const char *topic, size_t limit, struct hits *g)
{
	struct lama_search_opts o = { .topic = topic, .limit = limit, .rank_window = window };

	memset(g, 0, sizeof(*g));
	g->real = real_ids;
	return lama_search_query(x, q, strlen(q), &o, collect, g);
}

static struct hits q(const char *query)
{
	struct hits g;

	if (q_rc(query, NULL, 0, &g))
		fail_msg("query %s: %s", query, lama_errmsg());
	return g;
}

static int has(const struct hits *g, unsigned id)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->id[i] == id)
			return 1;
	return 0;
}

static void corpus(void)
{
	add(1, "t1", "The quick brown fox jumps over the lazy dog");
	add(2, "t1", "A lazy afternoon with coffee and a book");
	add(3, "t2", "Brown bears are not foxes, they eat honey");
	add(4, "t2", "Café crème at the Ångström lab: très bien");
	add(5, "t1", "Meeting at noon; bring the quarterly report");
	add(6, "t2", "quick question about the report?");
}

static void test_words_phrases(void **state)
{
	struct hits g;

	(void)state;
	corpus();
	g = q("fox");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 1);
	assert_string_equal(g.hl0[0], "fox");
	/* all words required */
	g = q("quick report");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 6);
	/* a phrase needs the words in order and adjacent */
	g = q("\"lazy dog\"");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 1);
	g = q("\"dog lazy\"");
	assert_int_equal(g.n, 0);
	g = q("lazy");
	assert_int_equal(g.n, 2);
	/* punctuation inside a word splits it as in the text */
	g = q("noon;bring");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 5);
	/* a word that is nowhere */
	g = q("zebra");
	assert_int_equal(g.n, 0);
}

static void test_exclude_or(void **state)
{
	struct hits g;

	(void)state;
	corpus();
	g = q("lazy -dog");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 2);
	g = q("quick -\"lazy dog\"");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 6);
	g = q("honey OR coffee");
	assert_int_equal(g.n, 2);
	assert_true(has(&g, 2) && has(&g, 3));
	/* OR binds the terms beside it; the rest is still required */
	g = q("honey OR coffee book");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 2);
	g = q("fox OR bears OR noon -report");
	assert_int_equal(g.n, 2);
	assert_true(has(&g, 1) && has(&g, 3));
	/* lower-case "or" is a word */
	g = q("honey or coffee");
	assert_int_equal(g.n, 0);
}

static void test_folding(void **state)
{
	struct hits g;

	(void)state;
	corpus();
	g = q("CAFE");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 4);
	assert_string_equal(g.hl0[0], "Café");
	g = q("angstrom TRES");
	assert_int_equal(g.n, 1);
	g = q("crème");
	assert_int_equal(g.n, 1);
	g = q("QUICK");
	assert_int_equal(g.n, 2);
}

static void test_ranking(void **state)
{
	struct hits g;

	(void)state;
	add(10, "t", "alpha one beta gamma delta epsilon zeta eta theta iota");
	add(11, "t", "alpha alpha alpha beta gamma delta epsilon zeta eta theta");
	add(12, "t", "alpha alpha beta gamma delta epsilon zeta eta theta iota");
	for (unsigned i = 20; i < 40; i++)
		add(i, "t", "filler words that say nothing much at all here");
	g = q("alpha");
	assert_int_equal(g.n, 3);
	assert_int_equal(g.id[0], 11);
	assert_int_equal(g.id[1], 12);
	assert_int_equal(g.id[2], 10);
	assert_true(g.rank[0] < g.rank[1] && g.rank[1] < g.rank[2]);
	/* a short message beats a long one with the word once each */
	add(13, "t", "omega");
	add(14, "t", "omega and a great many other words around it in a long sentence to dilute");
	g = q("omega");
	assert_int_equal(g.n, 2);
	assert_int_equal(g.id[0], 13);
}

/* Past rank_window matches, only the newest are ranked. */
static void test_rank_window(void **state)
{
	struct hits g;

	(void)state;
	for (unsigned i = 1; i <= 10; i++)
		add(i, "t", "kiwi kiwi kiwi");
	for (unsigned i = 11; i <= 30; i++)
		add(i, "t", "kiwi and other fruit");
	g = q("kiwi");
	assert_int_equal(g.n, 20);
	for (size_t i = 0; i < 10; i++)
		assert_true(g.id[i] <= 10);
	window = 15;
	assert_int_equal(q_rc("kiwi", NULL, 10, &g), 0);
	window = 0;
	assert_int_equal(g.n, 10);
	for (size_t i = 0; i < g.n; i++)
		assert_true(g.id[i] > 15);
	/* a window under the limit is the limit */
	window = 3;
	assert_int_equal(q_rc("kiwi", NULL, 5, &g), 0);
	window = 0;
	assert_int_equal(g.n, 5);
}

static void test_replace_remove(void **state)
{
	struct hits g;
	uint64_t n;
	lama_hash h = hid(2);

	(void)state;
	corpus();
	/* added a moment ago: found at once */
	add(7, "t3", "brand new words: xylophone");
	g = q("xylophone");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 7);
	/* an edit replaces: the old words are gone, the new ones found */
	add(7, "t3", "changed to marimba");
	assert_int_equal(q("xylophone").n, 0);
	g = q("marimba");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 7);
	assert_int_equal(lama_search_count(x, &n), 0);
	assert_int_equal(n, 7);
	/* a delete removes */
	assert_int_equal(lama_search_remove(x, &h), 0);
	assert_int_equal(q("coffee").n, 0);
	assert_int_equal(q("lazy").n, 1);
	assert_int_equal(lama_search_remove(x, &h), 0); /* again: nothing */
	/* an empty text removes too */
	add(7, "t3", "");
	assert_int_equal(q("marimba").n, 0);
	assert_int_equal(lama_search_count(x, &n), 0);
	assert_int_equal(n, 5);
	/* survives reopening */
	lama_search_close(x);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), 0);
	assert_int_equal(q("fox").n, 1);
	assert_int_equal(q("coffee").n, 0);
}

static void test_topics_limits(void **state)
{
	struct hits g;
	char text[64];

	(void)state;
	corpus();
	assert_int_equal(q_rc("quick", "t1", 0, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 1);
	assert_string_equal(g.topic[0], "t1");
	assert_int_equal(q_rc("quick", "t2", 0, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], 6);
	assert_string_equal(g.topic[0], "t2");
	assert_int_equal(q_rc("quick", "t9", 0, &g), 0);
	assert_int_equal(g.n, 0);
	for (unsigned i = 100; i < 150; i++) {
		snprintf(text, sizeof(text), "many many %u", i);
		add(i, "t4", text);
	}
	assert_int_equal(q_rc("many", NULL, 0, &g), 0);
	assert_int_equal(g.n, 20); /* the default */
	assert_int_equal(q_rc("many", NULL, 7, &g), 0);
	assert_int_equal(g.n, 7);
	assert_int_equal(q_rc("many", "t4", 60, &g), 0);
	assert_int_equal(g.n, 50);
	assert_int_equal(q_rc("many", NULL, LAMA_SEARCH_LIMIT_MAX + 1, &g), LAMA_EINVAL);
	/* topic ids over their limit, as a filter and in a document */
	{
		char big[LAMA_SEARCH_TOPIC_MAX + 2];
		struct lama_search_doc d = { .id = hid(500), .sender = hid(1500), .time = 1.7e12 + 500,
					       .text = "x", .text_len = 1 };

		memset(big, 't', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		assert_int_equal(q_rc("many", big, 0, &g), LAMA_EINVAL);
		assert_int_equal(q_rc("many", "", 0, &g), LAMA_EINVAL);
		d.topic = big;
		assert_int_equal(lama_search_add(x, &d), LAMA_EINVAL);
		big[LAMA_SEARCH_TOPIC_MAX] = 0; /* the longest allowed */
		assert_int_equal(lama_search_add(x, &d), 0);
		assert_int_equal(q_rc("x", big, 0, &g), 0);
		assert_int_equal(g.n, 1);
		assert_string_equal(g.topic[0], big);
	}
}

static void test_snippet(void **state)
{
	struct hits g;
	char big[2000];

	(void)state;
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 60; i++)
		strcat(big, "lorem ");
	strcat(big, "Needle in the haystack ");
	for (int i = 0; i < 60; i++)
		strcat(big, "ipsum ");
	add(1, "t", big);
	g = q("needle haystack");
	assert_int_equal(g.n, 1);
	/* cut around the first hit, with ellipses on both sides */
	assert_memory_equal(g.snippet[0], "\xe2\x80\xa6", 3);
	assert_non_null(strstr(g.snippet[0], "Needle in the haystack"));
	assert_int_equal(g.nhl[0], 2);
	assert_string_equal(g.hl0[0], "Needle");
	assert_true(strlen(g.snippet[0]) < 260);
	assert_memory_equal(g.snippet[0] + strlen(g.snippet[0]) - 3, "\xe2\x80\xa6", 3);
}

static void test_hostile(void **state)
{
	static const char *literal[] = {
		"fox\"", "\"fox", "fox OR", "OR fox", "fox OR OR dog", "-fox", "- -", "***", "", "\"\"\" fox",
		"--",
	};
	static const char *ok[] = {
		"NEAR(fox dog)", "body: fox", "topic : fox", "{body}: fox", "fox*", "^fox", "fox AND dog",
		"fox NOT dog", "(fox)", "fox + dog", "'; DROP TABLE docs; --", "fox\")) OR ((\"dog",
		"rowid:1", "fox:dog", "-\"\" fox", "fox -\"\"", "fox -OR",
	};
	struct hits g;
	char longq[LAMA_SEARCH_QUERY_MAX + 2];
	int rc;

	(void)state;
	corpus();
	/* clear errors for what cannot be a query */
	for (size_t i = 0; i < sizeof(literal) / sizeof(*literal); i++) {
		rc = q_rc(literal[i], NULL, 0, &g);
		if (rc != LAMA_EINVAL)
			fail_msg("%s: %d %s", literal[i], rc, lama_errmsg());
		assert_null(strstr(lama_errmsg(), "fts5"));
		assert_null(strstr(lama_errmsg(), "syntax"));
	}
	/* operators of FTS5 are punctuation or words here, never syntax */
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		rc = q_rc(ok[i], NULL, 0, &g);
		if (rc != 0)
			fail_msg("%s: %d %s", ok[i], rc, lama_errmsg());
	}
	assert_int_equal(q_rc("NEAR(fox dog)", NULL, 0, &g), 0);
	assert_int_equal(g.n, 0); /* "near" is a word, in no message */
	assert_int_equal(q_rc("fox*", NULL, 0, &g), 0);
	assert_int_equal(g.n, 1); /* the star is punctuation: "fox" */
	assert_int_equal(q_rc("body: fox", NULL, 0, &g), 0);
	assert_int_equal(g.n, 0); /* "body" is a word */
	assert_int_equal(q_rc("fox\")) OR ((\"dog", NULL, 0, &g), 0);
	/* NUL, invalid UTF-8, too long */
	{
		struct lama_search_opts o = { .limit = 0 };

		memset(&g, 0, sizeof(g));
		assert_int_equal(lama_search_query(x, "fox\0dog", 7, &o, collect, &g), LAMA_EINVAL);
		assert_int_equal(lama_search_query(x, "fo\xc3", 3, &o, collect, &g), LAMA_EINVAL);
		assert_int_equal(lama_search_query(x, "f\xff", 2, &o, collect, &g), LAMA_EINVAL);
		assert_int_equal(lama_search_query(x, "\xed\xa0\x80", 3, &o, collect, &g), LAMA_EINVAL);
		assert_int_equal(lama_search_query(x, "\xc0\xaf", 2, &o, collect, &g), LAMA_EINVAL);
		assert_int_equal(lama_search_query(x, NULL, 0, &o, collect, &g), LAMA_EINVAL);
	}
	memset(longq, 'a', sizeof(longq) - 1);
	longq[sizeof(longq) - 1] = 0;
	assert_int_equal(q_rc(longq, NULL, 0, &g), LAMA_ELIMIT);
	/* too many terms */
	memset(longq, 0, sizeof(longq));
	for (int i = 0; i < 40; i++)
		strcat(longq, "w ");
	assert_int_equal(q_rc(longq, NULL, 0, &g), LAMA_EINVAL);
	/* one long word and one long phrase of the full size */
	memset(longq, 'b', LAMA_SEARCH_QUERY_MAX);
	longq[LAMA_SEARCH_QUERY_MAX] = 0;
	assert_int_equal(q_rc(longq, NULL, 0, &g), 0);
	for (int i = 1; i < LAMA_SEARCH_QUERY_MAX - 1; i += 2)
		longq[i] = ' ';
	longq[0] = '"';
	longq[LAMA_SEARCH_QUERY_MAX - 1] = '"';
	assert_int_equal(q_rc(longq, NULL, 0, &g), 0);
	/* random bytes never crash and never leak an SQL error */
	{
		uint64_t seed = 42;
		char r[64];

		for (int i = 0; i < 3000; i++) {
			size_t n = rnd(&seed, sizeof(r));
			static const char al[] = "ab \"-OR()*:^{}+NEA\xc3\xa9\x80";

			for (size_t j = 0; j < n; j++)
				r[j] = al[rnd(&seed, sizeof(al) - 1)];
			memset(&g, 0, sizeof(g));
			{
				struct lama_search_opts o = { .limit = 0 };

				rc = lama_search_query(x, r, n, &o, collect, &g);
			}
			if (rc != 0 && rc != LAMA_EINVAL)
				fail_msg("%.*s: %d %s", (int)n, r, rc, lama_errmsg());
			if (rc)
				assert_null(strstr(lama_errmsg(), "could not be run"));
		}
	}
}

/* Texts hostile to the indexer: long, invalid UTF-8, many tokens. */
static void test_hostile_texts(void **state)
{
	struct lama_search_doc d;
	char *big = malloc(LAMA_SEARCH_TEXT_MAX + 1);

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < LAMA_SEARCH_TEXT_MAX; i++)
		big[i] = (i % 3 == 2) ? ' ' : 'x';
	memset(&d, 0, sizeof(d));
	d.id = hid(1);
	d.sender = hid(1001);
	d.time = 1.7e12 + 1;
	d.topic = "t";
	d.text = big;
	d.text_len = LAMA_SEARCH_TEXT_MAX;
	assert_int_equal(lama_search_add(x, &d), 0);
	d.text_len = LAMA_SEARCH_TEXT_MAX + 1;
	assert_int_equal(lama_search_add(x, &d), LAMA_ELIMIT);
	add(2, "t", "bad \xff\xfe utf8 \xc3 here");
	assert_int_equal(q("utf8 here").n, 1);
	assert_int_equal(q("xx").n, 1);
	d.text_len = 3;
	d.topic = "";
	assert_int_equal(lama_search_add(x, &d), LAMA_EINVAL);
	free(big);
}

static int to_json(void *ctx, const struct lama_search_hit *h)
{
	json_t **out = ctx;

	*out = lama_search_hit_json(h);
	assert_non_null(*out);
	return 1; /* the first only: and a non-zero return stops and comes back */
}

/* The JSON of a hit: its members, offsets into the snippet, and a text
 * that was not UTF-8. */
static void test_hit_json(void **state)
{
	struct lama_search_opts o = { .limit = 5 };
	json_t *j = NULL;
	const char *snip;
	char hex[65];
	lama_hash h = hid(4);

	(void)state;
	corpus();
	assert_int_equal(lama_search_query(x, "bien", 4, &o, to_json, &j), 1);
	lama_hash_hex(&h, hex);
	assert_string_equal(json_string_value(json_object_get(j, "id")), hex);
	assert_string_equal(json_string_value(json_object_get(j, "topic")), "t2");
	assert_true(json_number_value(json_object_get(j, "time")) == 1.7e12 + 4);
	assert_true(json_number_value(json_object_get(j, "rank")) < 0);
	snip = json_string_value(json_object_get(j, "snippet"));
	assert_non_null(snip);
	assert_int_equal(json_array_size(json_object_get(j, "highlights")), 1);
	{
		json_t *r = json_array_get(json_object_get(j, "highlights"), 0);
		json_int_t off = json_integer_value(json_array_get(r, 0));

		assert_memory_equal(snip + off, "bien", 4);
		assert_int_equal(json_integer_value(json_array_get(r, 1)), 4);
	}
	json_decref(j);
	j = NULL;
	add(8, "t", "broken \xff text");
	assert_int_equal(lama_search_query(x, "broken", 6, &o, to_json, &j), 1);
	assert_string_equal(json_string_value(json_object_get(j, "snippet")), "");
	assert_int_equal(json_array_size(json_object_get(j, "highlights")), 0);
	json_decref(j);
}

static int rawsql(const char *sql)
{
	sqlite3 *db;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* Flips one bit of the sealed text of a row, behind the index's back. */
static void flip(int rowid, int at)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	uint8_t b[4096];
	int n;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT sealed FROM docs WHERE rowid = ?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int(st, 1, rowid);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_bytes(st, 0);
	assert_true(n > at && n <= (int)sizeof(b));
	memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
	sqlite3_finalize(st);
	b[at] ^= 1;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE docs SET sealed = ?2 WHERE rowid = ?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int(st, 1, rowid);
	sqlite3_bind_blob(st, 2, b, n, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_keys_tamper(void **state)
{
	struct hits g;
	uint8_t other[32];

	(void)state;
	corpus();
	/* another token key: the same words hash elsewhere, nothing found */
	lama_search_close(x);
	memset(other, 8, 32);
	assert_int_equal(lama_search_open_at(path, other, skey, &x), 0);
	assert_int_equal(q("fox").n, 0);
	assert_int_equal(q("quick").n, 0);
	lama_search_close(x);
	/* the right token key but another seal key: found, refused */
	assert_int_equal(lama_search_open_at(path, tkey, other, &x), 0);
	assert_int_equal(q_rc("fox", NULL, 0, &g), LAMA_ECRYPTO);
	lama_search_close(x);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), 0);
	assert_int_equal(q("fox").n, 1);
	/* a flipped byte in a sealed row, then a row's sealed text moved to
	 * another row: both refused */
	lama_search_close(x);
	x = NULL;
	flip(1, 40);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), 0);
	assert_int_equal(q_rc("fox", NULL, 0, &g), LAMA_ECRYPTO);
	/* the tampered row cannot even be replaced: its words are unknown */
	{
		struct lama_search_doc d = { .id = hid(1), .topic = "t1", .text = "x", .text_len = 1 };

		assert_int_equal(lama_search_add(x, &d), LAMA_ECRYPTO);
	}
	lama_search_close(x);
	x = NULL;
	assert_int_equal(rawsql("UPDATE docs SET sealed = (SELECT sealed FROM docs WHERE rowid = 6)"
				" WHERE rowid = 3"), SQLITE_OK);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), 0);
	assert_int_equal(q_rc("honey", NULL, 0, &g), LAMA_ECRYPTO);
	/* other rows still answer */
	assert_int_equal(q("coffee").n, 1);
	/* an index made by another SQLite is emptied, for a sync to make again */
	lama_search_close(x);
	x = NULL;
	assert_int_equal(rawsql("INSERT OR REPLACE INTO meta(k, v) VALUES('built', 1);"
				"UPDATE meta SET v = '3.0.0' WHERE k = 'sqlite'"), SQLITE_OK);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), 0);
	assert_int_equal(lama_search_is_built(x), 0);
	{
		uint64_t n = 1;

		assert_int_equal(lama_search_count(x, &n), 0);
		assert_int_equal(n, 0);
		assert_int_equal(q("coffee").n, 0);
	}
	/* not an index at all */
	lama_search_close(x);
	x = NULL;
	assert_int_equal(rawsql("PRAGMA user_version=77"), SQLITE_OK);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), LAMA_ECORRUPT);
	assert_null(x);
	assert_int_equal(rawsql("PRAGMA user_version=1"), SQLITE_OK);
	assert_int_equal(lama_search_open_at(path, tkey, skey, &x), 0);
}

/* The file holds no word, nor the SHA-256 of one, nor a message id. */
static void test_at_rest(void **state)
{
	static const char *words[] = { "zanzibarquokka", "ZANZIBARQUOKKA", "flibbertigibbet",
				       "secretphrasezq" };
	char text[256], cmd[8400];
	lama_hash h;
	char hex[65];

	(void)state;
	snprintf(text, sizeof(text), "%s met a %s and said %s", words[0], words[2], words[3]);
	add(1, "topic-zanzibarquokka", text);
	add(2, "t", "flibbertigibbet flibbertigibbet");
	assert_int_equal(q("zanzibarquokka").n, 1);
	/* keep the WAL: look at every file as it is */
	for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++) {
		snprintf(cmd, sizeof(cmd), "cat '%s'/search.db* | grep -aqi '%s'", dir, words[i]);
		if (system(cmd) == 0)
			fail_msg("%s is in the index", words[i]);
		lama_sha256(words[i], strlen(words[i]), &h);
		lama_hash_hex(&h, hex);
		snprintf(cmd, sizeof(cmd), "cat '%s'/search.db* | od -An -tx1 -v | tr -d ' \\n' | grep -q '%s'",
			 dir, hex);
		if (system(cmd) == 0)
			fail_msg("the SHA-256 of %s is in the index", words[i]);
	}
	h = hid(1);
	lama_hash_hex(&h, hex);
	snprintf(cmd, sizeof(cmd), "cat '%s'/search.db* | od -An -tx1 -v | tr -d ' \\n' | grep -q '%s'",
		 dir, hex);
	if (system(cmd) == 0)
		fail_msg("a message id is in the index");
	/* and the files are the user's alone */
	snprintf(cmd, sizeof(cmd), "test \"$(stat -c %%a '%s'/search.db)\" = 600", dir);
	assert_int_equal(system(cmd), 0);
}

/* The batches of lama_search_put_topic: a topic grown past its count
 * (more messages than entries + 2) keeps next >= base and indexes the
 * extras after all rows; a first batch of deleted messages keeps its
 * block reserved, so a live add never takes a row a later batch needs */
static void test_put_topic(void **state)
{
	struct lama_search_put p = { .topic = { .id = "grown", .entries = 1, .last_time = 1 },
				     .flags = LAMA_SEARCH_PUT_FIRST | LAMA_SEARCH_PUT_LAST };
	struct lama_search_doc d[6];
	char texts[6][32];
	struct hits g;

	(void)state;
	memset(d, 0, sizeof(d));
	for (unsigned i = 0; i < 6; i++) {
		snprintf(texts[i], sizeof(texts[i]), "grown %u wombat", i);
		d[i] = (struct lama_search_doc){ .id = hid(100 + i), .topic = "grown",
						 .sender = hid(1100 + i), .time = 1.7e12 + 100 + i,
						 .text = texts[i], .text_len = strlen(texts[i]) };
	}
	add(1, "other", "an older wombat");
	assert_int_equal(lama_search_put_topic(x, &p, d, 6), 0);
	assert_true(p.next >= p.base); /* what the main process checks */
	g = q("wombat");
	assert_int_equal(g.n, 7);
	/* the same batch again (a retry): the same rows, each once */
	p.flags = LAMA_SEARCH_PUT_FIRST;
	assert_int_equal(lama_search_put_topic(x, &p, d, 6), 0);
	assert_true(p.next >= p.base);
	g = q("wombat");
	assert_int_equal(g.n, 7);

	/* topic "holes": 4 entries, its first batch two deleted messages */
	p = (struct lama_search_put){ .topic = { .id = "holes", .entries = 4, .last_time = 1 },
				      .flags = LAMA_SEARCH_PUT_FIRST };
	for (unsigned i = 0; i < 5; i++) {
		d[i].topic = "holes";
		d[i].id = hid(200 + i);
		d[i].sender = hid(1200 + i);
		d[i].time = 1.7e12 + 200 + i;
	}
	d[0].text_len = d[1].text_len = 0;
	assert_int_equal(lama_search_put_topic(x, &p, d, 2), 0);
	add(300, "live", "a live wombat"); /* sent meanwhile */
	p.flags = LAMA_SEARCH_PUT_LAST;
	if (lama_search_put_topic(x, &p, d + 2, 3))
		fail_msg("the second batch: %s", lama_errmsg());
	g = q("wombat");
	assert_int_equal(g.n, 7 + 1 + 3);
	assert_true(has(&g, 300) && has(&g, 202) && has(&g, 204));
}

static void test_oom(void **state)
{
	struct hits g;
	int rc = -1;

	(void)state;
	corpus();
	/* fail each allocation in turn: an error or success, never a leak or
	 * a crash, and the index still answers after */
	for (unsigned long n = 1; n < 200; n++) {
		lama_mem_fail_after(n, 1);
		rc = q_rc("quick OR report -lazy", NULL, 0, &g);
		lama_mem_fail_after(0, 0);
		if (rc && rc != LAMA_ENOMEM)
			fail_msg("%lu: %d %s", n, rc, lama_errmsg());
		if (rc == 0)
			break;
		assert_int_equal(rc, LAMA_ENOMEM);
	}
	assert_int_equal(rc, 0);
	for (unsigned long n = 1; n < 200; n++) {
		struct lama_search_doc d;

		memset(&d, 0, sizeof(d));
		d.id = hid(9);
		d.sender = hid(1009);
		d.time = 1.7e12 + 9;
		d.topic = "t9";
		d.text = "oom words here";
		d.text_len = 14;
		lama_mem_fail_after(n, 1);
		rc = lama_search_add(x, &d);
		lama_mem_fail_after(0, 0);
		if (rc == 0)
			break;
		assert_int_equal(q("oom").n, 0); /* all or nothing */
	}
	assert_int_equal(rc, 0);
	assert_int_equal(q("oom words").n, 1);
}

/* ---- over a real account ---- */

static char home[4096];
static lama_session *s;

static int progress(void *ctx, uint64_t done, uint64_t total)
{
	(*(int *)ctx)++;
	assert_true(total == 0 || done <= total);
	return 0;
}

static const char *view_topic;

static int index_view(void *ctx, const struct lama_message *m)
{
	json_t *j = lama_message_json(m, "someone");
	int rc;

	assert_non_null(j);
	rc = lama_search_add_message(x, view_topic, j);
	json_decref(j);
	return rc;
}

static void test_sync(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	struct lama_person bob, carol;
	struct lama_topic t1, t2;
	struct lama_outgoing m[3];
	lama_hash ids[3];
	struct hits g;
	lama_search *y;
	int calls = 0;

	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	if (lama_account_register(home, "alice", "pw", 2, &p, &s) || lama_models_init(s))
		fail_msg("setup: %s", lama_errmsg());
	assert_int_equal(lama_leute_add_contact(s, "Bob", NULL, 0, NULL, &bob), 0);
	assert_int_equal(lama_leute_add_contact(s, "Carol", NULL, 0, NULL, &carol), 0);
	assert_int_equal(lama_chat_create(s, NULL, &bob.person, 1, &t1, NULL), 0);
	assert_int_equal(lama_chat_create(s, NULL, &carol.person, 1, &t2, NULL), 0);
	memset(m, 0, sizeof(m));
	m[0].text = "the tortoise wins the race";
	m[1].text = "the hare sleeps";
	m[2].text = "tortoise tortoise tortoise";
	assert_int_equal(lama_chat_send(s, &t1, m, 2, ids), 0);
	assert_int_equal(lama_chat_send(s, &t2, m + 2, 1, ids + 2), 0);

	real_ids = 1;
	assert_int_equal(lama_search_open(s, &y), 0);
	lama_search_close(x);
	x = y;
	assert_int_equal(lama_search_is_built(x), 0);
	assert_int_equal(lama_search_sync(s, x, progress, &calls), 0);
	assert_true(calls >= 1);
	assert_int_equal(lama_search_is_built(x), 1);
	g = q("tortoise");
	assert_int_equal(g.n, 2);
	assert_string_equal(g.topic[0], t2.id); /* thrice beats once */
	assert_string_equal(g.topic[1], t1.id);
	assert_int_equal(q_rc("tortoise", t1.id, 0, &g), 0);
	assert_int_equal(g.n, 1);
	/* a message as the IPC protocol shows it: new, edited, deleted */
	{
		lama_hash nid;
		struct lama_outgoing one = { .text = "a gecko appears" };
		char hex[65], shex[65];
		json_t *j;

		assert_int_equal(lama_chat_send(s, &t2, &one, 1, &nid), 0);
		lama_hash_hex(&nid, hex);
		lama_hash_hex(lama_session_person(s), shex);
		j = json_pack("{s:s, s:f, s:s, s:s, s:b}", "id", hex, "time", 1.7e12, "sender", shex,
			      "text", "a gecko appears", "deleted", 0);
		assert_int_equal(lama_search_add_message(x, t2.id, j), 0);
		assert_int_equal(q("gecko").n, 1);
		json_object_set_new(j, "text", json_string("a newt appears"));
		assert_int_equal(lama_search_add_message(x, t2.id, j), 0);
		assert_int_equal(q("gecko").n, 0);
		assert_int_equal(q("newt").n, 1);
		json_object_set_new(j, "deleted", json_true());
		assert_int_equal(lama_search_add_message(x, t2.id, j), 0);
		assert_int_equal(q("newt").n, 0);
		json_object_set_new(j, "deleted", json_false());
		json_object_set_new(j, "sender", json_string("nothex"));
		assert_int_equal(lama_search_add_message(x, t2.id, j), LAMA_EINVAL);
		json_object_del(j, "time");
		json_object_set_new(j, "sender", json_string(shex));
		assert_int_equal(lama_search_add_message(x, t2.id, j), LAMA_EINVAL);
		json_object_set_new(j, "time", json_integer(5));
		json_object_set_new(j, "text", json_integer(5));
		assert_int_equal(lama_search_add_message(x, t2.id, j), LAMA_EINVAL);
		json_object_set_new(j, "id", json_string("abc"));
		assert_int_equal(lama_search_add_message(x, t2.id, j), LAMA_EINVAL);
		json_decref(j);
		/* the chat's own JSON view of a message is what it takes */
		assert_int_equal(lama_chat_edit(s, &t2, &nid, "an axolotl appears"), 0);
		view_topic = t2.id;
		assert_int_equal(lama_chat_messages(s, &t2, NULL, 1, index_view, NULL, NULL), 0);
		assert_int_equal(q("axolotl").n, 1);
		assert_int_equal(lama_chat_edit(s, &t2, &nid, NULL), 0);
		assert_int_equal(lama_chat_messages(s, &t2, NULL, 1, index_view, NULL, NULL), 0);
		assert_int_equal(q("axolotl").n, 0);
	}
	/* rows follow time within a topic: the newest "the" is the hare's */
	window = 1;
	assert_int_equal(q_rc("the", NULL, 1, &g), 0);
	window = 0;
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], ids[1].b[0] | (unsigned)ids[1].b[1] << 8 | (unsigned)ids[1].b[2] << 16);
	/* an edit and a delete in the archive, then sync: only t1 changed */
	assert_int_equal(lama_chat_edit(s, &t1, &ids[0], "the turtle wins"), 0);
	assert_int_equal(lama_chat_edit(s, &t1, &ids[1], NULL), 0);
	assert_int_equal(lama_search_sync(s, x, NULL, NULL), 0);
	assert_int_equal(q("tortoise").n, 1);
	assert_int_equal(q("turtle").n, 1);
	assert_int_equal(q("hare").n, 0);
	/* rebuild from nothing gives the same */
	assert_int_equal(lama_search_rebuild(s, x, NULL, NULL), 0);
	assert_int_equal(q("tortoise").n, 1);
	assert_int_equal(q("turtle").n, 1);
	/* the session's keys are stable: reopen finds */
	lama_search_close(x);
	assert_int_equal(lama_search_open(s, &x), 0);
	assert_int_equal(q("turtle").n, 1);
	real_ids = 0;
	lama_topic_release(&t1);
	lama_topic_release(&t2);
	lama_session_logout(s);
	tu_rmtree(home);
}

/* A topic whose newest entries are a run of edits longer than one read
 * of lama_chat_messages passes over (4,096): nothing to move the cursor
 * on. The sync goes on, but the topic is left stale (its summary not
 * stored), never taken as done with its messages unread */
static void test_stuck_topic(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	struct lama_person dave;
	struct lama_topic t;
	struct lama_search_topic *ts;
	struct lama_outgoing m[2];
	struct lama_search_batch b;
	lama_hash ids[2];
	lama_search *y;
	uint8_t stale[4];
	size_t n, nstale;
	char text[32], tid[LAMA_TOPIC_ID_MAX + 1];

	(void)state;
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	if (lama_account_register(home, "alice", "pw", 2, &p, &s) || lama_models_init(s))
		fail_msg("setup: %s", lama_errmsg());
	assert_int_equal(lama_leute_add_contact(s, "Dave", NULL, 0, NULL, &dave), 0);
	assert_int_equal(lama_chat_create(s, NULL, &dave.person, 1, &t, NULL), 0);
	memset(m, 0, sizeof(m));
	m[0].text = "an okapi lives here";
	m[1].text = "the newest okapi";
	assert_int_equal(lama_chat_send(s, &t, m, 2, ids), 0);
	for (int i = 0; i < 4100; i++) {
		snprintf(text, sizeof(text), "okapi edit %d", i);
		if (lama_chat_edit(s, &t, &ids[1], text))
			fail_msg("edit %d: %s", i, lama_errmsg());
	}
	snprintf(tid, sizeof(tid), "%s", t.id);
	lama_topic_release(&t);
	assert_int_equal(lama_chat_find(s, tid, &t), 0); /* its count now */
	memset(&b, 0, sizeof(b));
	assert_int_equal(lama_search_batch_read(s, &t, &b), 0);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.more, 0);
	assert_int_equal(b.stuck, 1);
	lama_search_batch_release(&b);

	real_ids = 1;
	assert_int_equal(lama_search_open(s, &y), 0);
	lama_search_close(x);
	x = y;
	assert_int_equal(lama_search_sync(s, x, NULL, NULL), 0);
	/* still stale: the next sync tries again */
	assert_int_equal(lama_search_topics(s, &ts, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(lama_search_plan(x, ts, n, LAMA_SEARCH_PLAN_SYNC, stale, &nstale), 0);
	assert_int_equal(nstale, 1);
	lama_free(ts);
	real_ids = 0;
	lama_topic_release(&t);
	lama_session_logout(s);
	tu_rmtree(home);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_words_phrases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclude_or, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ranking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topics_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snippet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_texts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hit_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_at_rest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_topic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stuck_topic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
