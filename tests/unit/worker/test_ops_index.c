/* test_ops_index.c: the index worker's ops (src/worker/ops_index.c) with
 * their task formats (src/search/task.h): in this process with right and
 * wrong inputs (truncated, trailing bytes, wrong keys, oversized, bad
 * fields: an error, and nothing changed), a sync in pieces (plan,
 * put_topic) and its idempotence; then real index workers ($LAMA_BIN)
 * under the manager, SIGKILLed in the middle of a put_topic and of an
 * add: the task is retried and the index is exactly right after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <unistd.h>

#include <uv.h>

#include "crypto/crypto.h"
#include "search/task.h"
#include "testutil.h"
#include "workertest.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/ops.h"
#include "worker/worker.h"

static char dir[4096], path[4200];
static uint8_t keys[LAMA_SEARCH_KEYS];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/search.db", dir);
	lama_random(keys, sizeof(keys));
	return 0;
}

static int teardown(void **state)
{
	struct lama_buf out = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);

	(void)state;
	lama_worker_ops_index("close", "", 0, &out); /* the cached index */
	lama_buf_release(&out);
	tu_rmtree(dir);
	return 0;
}

/* Runs op on b's bytes; out gets the result. */
static int run(const char *op, const struct lama_buf *b, struct lama_buf *out)
{
	lama_buf_truncate(out, 0);
	out->max = LAMA_WORKER_PAYLOAD_MAX;
	return lama_worker_ops_index(op, b->data, b->len, out);
}

/* Message i: "message number i about zebraI%50 and apples". */
static char texts[4][64];

static void doc(struct lama_search_doc *d, const char *topic, unsigned i, char *text, size_t cap)
{
	memset(d, 0, sizeof(*d));
	d->id.b[0] = (uint8_t)(i >> 24), d->id.b[1] = (uint8_t)(i >> 16);
	d->id.b[2] = (uint8_t)(i >> 8), d->id.b[3] = (uint8_t)i;
	d->id.b[31] = 0x77;
	d->sender.b[0] = 1;
	d->topic = topic;
	d->time = 1.7e12 + i;
	d->text_len = (size_t)snprintf(text, cap, "message number %u about zebra%u and apples", i, i % 50);
	d->text = text;
}

static uint64_t count(void)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX), out = LAMA_BUF_INIT(0);
	uint64_t n = 0;
	int built;

	assert_int_equal(lama_search_task_count(&b, path, keys), 0);
	assert_int_equal(run("count", &b, &out), 0);
	assert_int_equal(lama_search_task_count_result(out.data, out.len, &n, &built), 0);
	lama_buf_release(&b);
	lama_buf_release(&out);
	return n;
}

static int built(void)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX), out = LAMA_BUF_INIT(0);
	uint64_t n = 0;
	int bt = 0;

	assert_int_equal(lama_search_task_count(&b, path, keys), 0);
	assert_int_equal(run("count", &b, &out), 0);
	assert_int_equal(lama_search_task_count_result(out.data, out.len, &n, &bt), 0);
	lama_buf_release(&b);
	lama_buf_release(&out);
	return bt;
}

/* The hits of a query as JSON (new reference), or NULL with *rc. */
static json_t *query_k(const uint8_t *k, const char *q, size_t limit, const char *topic, int *rc)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX), out = LAMA_BUF_INIT(0);
	struct lama_search_opts o = { .limit = limit, .topic = topic };
	json_t *j = NULL;

	assert_int_equal(lama_search_task_query(&b, path, k, q, strlen(q), &o), 0);
	*rc = run("query", &b, &out);
	if (!*rc) {
		j = json_loadb(out.data, out.len, 0, NULL);
		assert_non_null(j);
		assert_true(json_is_array(j));
	}
	lama_buf_release(&b);
	lama_buf_release(&out);
	return j;
}

static size_t hits(const char *q, size_t limit)
{
	int rc;
	json_t *j = query_k(keys, q, limit, NULL, &rc);
	size_t n;

	assert_int_equal(rc, 0);
	n = json_array_size(j);
	json_decref(j);
	return n;
}

static void add_docs(unsigned from, unsigned n, const char *topic)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX), out = LAMA_BUF_INIT(0);
	struct lama_search_doc *d = calloc(n, sizeof(*d));
	char (*t)[64] = calloc(n, 64);

	for (unsigned i = 0; i < n; i++)
		doc(&d[i], topic, from + i, t[i], 64);
	assert_int_equal(lama_search_task_add(&b, path, keys, d, n), 0);
	assert_int_equal(run("add", &b, &out), 0);
	assert_int_equal(out.len, 0);
	free(d);
	free(t);
	lama_buf_release_wipe(&b);
	lama_buf_release(&out);
}

/* add, query, count, a removal, an edit, close and reopen */
static void test_add_query(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX), out = LAMA_BUF_INIT(0);
	struct lama_search_doc d[2];
	json_t *j;
	int rc;

	(void)state;
	add_docs(0, 100, "topic-a");
	assert_int_equal(count(), 100);
	assert_int_equal(built(), 0);
	assert_int_equal(hits("zebra7", 1000), 2);
	j = query_k(keys, "\"number 57 about\"", 10, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(json_array_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "snippet")),
			    "message number 57 about zebra7 and apples");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "topic")), "topic-a");
	json_decref(j);
	/* the topic filter */
	add_docs(100, 10, "topic-b");
	j = query_k(keys, "apples", 1000, "topic-b", &rc);
	assert_int_equal(json_array_size(j), 10);
	json_decref(j);
	/* a removal and an edit in one add */
	doc(&d[0], NULL, 7, texts[0], sizeof(texts[0]));
	d[0].topic = NULL;
	doc(&d[1], "topic-a", 57, texts[1], sizeof(texts[1]));
	d[1].text = "now about a quokka";
	d[1].text_len = strlen(d[1].text);
	assert_int_equal(lama_search_task_add(&b, path, keys, d, 2), 0);
	assert_int_equal(run("add", &b, &out), 0);
	j = query_k(keys, "zebra7", 10, NULL, &rc); /* 7 gone, 57 edited: 107 of topic-b left */
	assert_int_equal(json_array_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "snippet")),
			    "message number 107 about zebra7 and apples");
	json_decref(j);
	assert_int_equal(hits("quokka", 10), 1);
	assert_int_equal(count(), 109);
	/* closed (keys wiped), then opened again by the next task */
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_worker_ops_index("close", "", 0, &out), 0);
	assert_int_equal(lama_worker_ops_index("close", "x", 1, &out), LAMA_EINVAL);
	assert_int_equal(hits("quokka", 10), 1);
	lama_buf_release_wipe(&b);
	lama_buf_release(&out);
}

/* Every strict prefix of a valid input, and the input with a byte more,
 * is refused, and the index is unchanged. */
static void check_cut(const char *op, const struct lama_buf *b, size_t from)
{
	struct lama_buf cut = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX), out = LAMA_BUF_INIT(0);
	uint64_t before = count();

	for (size_t n = from; n < b->len; n++) {
		lama_buf_truncate(&cut, 0);
		assert_int_equal(lama_buf_add(&cut, b->data, n), 0);
		if (run(op, &cut, &out) == 0)
			fail_msg("%s cut to %zu of %zu bytes was accepted", op, n, b->len);
	}
	lama_buf_truncate(&cut, 0);
	assert_int_equal(lama_buf_add(&cut, b->data, b->len), 0);
	assert_int_equal(lama_buf_addch(&cut, 0), 0);
	assert_int_equal(run(op, &cut, &out), LAMA_EINVAL);
	assert_true(strstr(lama_errmsg(), "after the end") != NULL);
	assert_int_equal(count(), before);
	lama_buf_release_wipe(&cut);
	lama_buf_release(&out);
}

static void test_truncated(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_search_doc d[3];
	struct lama_search_topic t[2] = { { "topic-a", 3, 5.0 }, { "topic-b", 1, 6.0 } };
	struct lama_search_put p = { .topic = { "topic-a", 3, 5.0 }, .flags = LAMA_SEARCH_PUT_FIRST };

	(void)state;
	add_docs(0, 5, "topic-a");
	for (int i = 0; i < 3; i++)
		doc(&d[i], "topic-a", 1000 + (unsigned)i, texts[i], sizeof(texts[i]));
	d[1].topic = NULL; /* a removal among them */
	assert_int_equal(lama_search_task_add(&b, path, keys, d, 3), 0);
	check_cut("add", &b, 0);
	lama_buf_truncate(&b, 0);
	d[1].topic = "topic-a";
	assert_int_equal(lama_search_task_put(&b, path, keys, &p, d, 3), 0);
	check_cut("put_topic", &b, 0);
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_plan(&b, path, keys, LAMA_SEARCH_PLAN_SYNC, t, 2), 0);
	check_cut("plan", &b, 0);
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_count(&b, path, keys), 0);
	check_cut("count", &b, 0);
	lama_buf_release_wipe(&b);
	/* nothing of it reached the index: the plan did not forget topic-a */
	assert_int_equal(count(), 5);
}

/* Another token key finds nothing; another seal key finds the rows and
 * cannot open them; the right keys again: all there. */
static void test_wrong_keys(void **state)
{
	uint8_t other[LAMA_SEARCH_KEYS];
	json_t *j;
	int rc;

	(void)state;
	add_docs(0, 50, "topic-a");
	memcpy(other, keys, sizeof(other));
	other[3] ^= 1; /* the token key */
	j = query_k(other, "zebra7", 100, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	memcpy(other, keys, sizeof(other));
	other[LAMA_KEY_BYTES + 3] ^= 1; /* the seal key */
	j = query_k(other, "zebra7", 100, NULL, &rc);
	assert_null(j);
	assert_int_equal(rc, LAMA_ECRYPTO);
	assert_int_equal(hits("zebra7", 100), 1);
}

static void put_be32(struct lama_buf *b, size_t at, uint32_t v)
{
	uint8_t *p = (uint8_t *)b->data + at;

	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* where a task's own fields begin: after the path and the keys */
static size_t head_len(void)
{
	return 4 + strlen(path) + LAMA_SEARCH_KEYS;
}

static void expect(const char *op, struct lama_buf *b, int want, const char *words)
{
	struct lama_buf out = LAMA_BUF_INIT(0);

	assert_int_equal(run(op, b, &out), want);
	if (!strstr(lama_errmsg(), words))
		fail_msg("%s: \"%s\" does not say \"%s\"", op, lama_errmsg(), words);
	lama_buf_release(&out);
}

static void test_bad_fields(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_search_doc d;
	struct lama_search_topic t = { "topic-a", 3, 5.0 };
	struct lama_search_put p = { .topic = { "topic-a", 3, 5.0 }, .flags = LAMA_SEARCH_PUT_FIRST };
	struct lama_search_opts o = { .limit = 10 };
	char *big;
	size_t h;

	(void)state;
	add_docs(0, 5, "topic-a");
	h = head_len();
	doc(&d, "topic-a", 1, texts[0], sizeof(texts[0]));
	/* counts: past the batch bound, or more than the bytes can hold */
	assert_int_equal(lama_search_task_add(&b, path, keys, &d, 1), 0);
	put_be32(&b, h, 65537);
	expect("add", &b, LAMA_ELIMIT, "at most 65536");
	put_be32(&b, h, 2);
	expect("add", &b, LAMA_EINVAL, "");
	put_be32(&b, h, 1);
	b.data[h + 4] = 3; /* an item kind */
	expect("add", &b, LAMA_EINVAL, "kind 3");
	/* a text over 256 KiB: refused before anything is read from it */
	lama_buf_truncate(&b, 0);
	big = malloc(LAMA_SEARCH_TEXT_MAX + 1);
	memset(big, 'a', LAMA_SEARCH_TEXT_MAX + 1);
	d.text = big;
	d.text_len = LAMA_SEARCH_TEXT_MAX;
	assert_int_equal(lama_search_task_add(&b, path, keys, &d, 1), 0);
	assert_int_equal(lama_buf_addch(&b, 'a'), 0);
	put_be32(&b, b.len - LAMA_SEARCH_TEXT_MAX - 1 - 4, LAMA_SEARCH_TEXT_MAX + 1);
	expect("add", &b, LAMA_ELIMIT, "a text of 262145 bytes");
	free(big);
	/* a topic of 201 bytes, a topic with NUL */
	doc(&d, "topic-a", 1, texts[0], sizeof(texts[0]));
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_add(&b, path, keys, &d, 1), 0);
	b.data[h + 4 + 1 + 32 + 32 + 8] = (char)201;
	expect("add", &b, LAMA_EINVAL, "1 to 200 bytes");
	b.data[h + 4 + 1 + 32 + 32 + 8] = 7;
	b.data[h + 4 + 1 + 32 + 32 + 8 + 3] = 0;
	expect("add", &b, LAMA_EINVAL, "NUL");
	/* the head: a relative path, a path of 4096 bytes, no keys */
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_count(&b, path, keys), 0);
	b.data[4] = 'x';
	expect("count", &b, LAMA_EINVAL, "absolute");
	put_be32(&b, 0, 4096);
	expect("count", &b, LAMA_EINVAL, "a path of 4096 bytes");
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_count(&b, path, keys), 0);
	lama_buf_truncate(&b, b.len - 1);
	expect("count", &b, LAMA_EINVAL, "the keys");
	/* plan: a mode, a count */
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_plan(&b, path, keys, 0, &t, 1), 0);
	b.data[h] = 3;
	expect("plan", &b, LAMA_EINVAL, "a mode of 3");
	b.data[h] = 0;
	put_be32(&b, h + 1, 70000);
	expect("plan", &b, LAMA_ELIMIT, "at most 65536");
	/* put_topic: flags, rows out of order */
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_put(&b, path, keys, &p, &d, 1), 0);
	b.data[h] = 8;
	expect("put_topic", &b, LAMA_EINVAL, "unknown flags");
	lama_buf_truncate(&b, 0);
	p.flags = 0;
	p.base = 10;
	p.next = 5;
	assert_int_equal(lama_search_task_put(&b, path, keys, &p, &d, 1), 0);
	expect("put_topic", &b, LAMA_EINVAL, "out of range");
	/* query: a limit, an empty query, one over 1 KiB */
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_query(&b, path, keys, "zebra", 5, &o), 0);
	put_be32(&b, h, 0);
	expect("query", &b, LAMA_EINVAL, "limit");
	put_be32(&b, h, 1001);
	expect("query", &b, LAMA_EINVAL, "limit");
	/* a malformed query or count opens nothing: no index file made */
	{
		char fresh[4300];

		snprintf(fresh, sizeof(fresh), "%s/fresh.db", dir);
		lama_buf_truncate(&b, 0);
		assert_int_equal(lama_search_task_query(&b, fresh, keys, "zebra", 5, &o), 0);
		put_be32(&b, 4 + strlen(fresh) + LAMA_SEARCH_KEYS, 0);
		expect("query", &b, LAMA_EINVAL, "limit");
		lama_buf_truncate(&b, 0);
		assert_int_equal(lama_search_task_count(&b, fresh, keys), 0);
		assert_int_equal(lama_buf_addch(&b, 'x'), 0);
		expect("count", &b, LAMA_EINVAL, "");
		assert_int_not_equal(access(fresh, F_OK), 0);
	}
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_query(&b, path, keys, "\"open", 5, &o), 0);
	expect("query", &b, LAMA_EINVAL, "quote");
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_query(&b, path, keys, "", 0, &o), 0);
	expect("query", &b, LAMA_EINVAL, "");
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_head(&b, path, keys), 0);
	{
		uint8_t f[9] = { 0, 0, 0, 10, 0, 0, 0, 0, 0 };
		char q[1025];

		memset(q, 'a', sizeof(q));
		assert_int_equal(lama_buf_add(&b, f, sizeof(f)), 0);
		assert_int_equal(lama_buf_add(&b, q, sizeof(q)), 0);
		expect("query", &b, LAMA_ELIMIT, "");
	}
	/* no such op */
	expect("drop_table", &b, LAMA_ENOTFOUND, "no op drop_table");
	lama_buf_release_wipe(&b);
	assert_int_equal(count(), 5);
}

/* The outputs the main process reads: checked before use. */
static void test_results(void **state)
{
	uint8_t stale[4], ok[12] = { 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3 };
	uint8_t bad[12] = { 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1 };
	uint8_t put[16] = { 0 };
	struct lama_search_put p;
	size_t ns;
	uint64_t n;
	int bt;

	(void)state;
	assert_int_equal(lama_search_task_plan_result(ok, 12, 4, stale, &ns), 0);
	assert_int_equal(ns, 2);
	assert_int_equal(stale[1] + stale[3], 2);
	assert_int_equal(lama_search_task_plan_result(ok, 12, 3, stale, &ns), LAMA_EFORMAT);
	assert_int_equal(lama_search_task_plan_result(bad, 12, 4, stale, &ns), LAMA_EFORMAT);
	assert_int_equal(lama_search_task_plan_result(ok, 11, 4, stale, &ns), LAMA_EFORMAT);
	put[15] = 1;
	assert_int_equal(lama_search_task_put_result(put, 16, &p), 0);
	assert_int_equal(lama_search_task_put_result(put, 15, &p), LAMA_EFORMAT);
	put[7] = 2; /* base above next */
	assert_int_equal(lama_search_task_put_result(put, 16, &p), LAMA_EFORMAT);
	assert_int_equal(lama_search_task_count_result(put, 8, &n, &bt), LAMA_EFORMAT);
}

/* plan and put_topic as lama serve runs them; the same batch twice
 * changes nothing */
static void plan(int mode, struct lama_search_topic *t, size_t n, uint8_t *stale, size_t *ns)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX), out = LAMA_BUF_INIT(0);

	assert_int_equal(lama_search_task_plan(&b, path, keys, mode, t, n), 0);
	assert_int_equal(run("plan", &b, &out), 0);
	assert_int_equal(lama_search_task_plan_result(out.data, out.len, n, stale, ns), 0);
	lama_buf_release_wipe(&b);
	lama_buf_release(&out);
}

static void put_batch(struct lama_search_put *p, unsigned from, unsigned n, struct lama_buf *out)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_search_doc *d = calloc(n + 1, sizeof(*d));
	char (*t)[64] = calloc(n + 1, 64);

	for (unsigned i = 0; i < n; i++)
		doc(&d[i], p->topic.id, from + n - 1 - i, t[i], 64); /* newest first */
	assert_int_equal(lama_search_task_put(&b, path, keys, p, d, n), 0);
	assert_int_equal(run("put_topic", &b, out), 0);
	assert_int_equal(lama_search_task_put_result(out->data, out->len, p), 0);
	free(d);
	free(t);
	lama_buf_release_wipe(&b);
}

static void test_plan_put(void **state)
{
	struct lama_search_topic t[2] = { { "topic-b", 30, 9.0 }, { "topic-a", 100, 5.0 } };
	struct lama_search_put p = { .topic = t[1], .flags = LAMA_SEARCH_PUT_FIRST };
	struct lama_buf out = LAMA_BUF_INIT(0), again = LAMA_BUF_INIT(0);
	uint8_t stale[2];
	size_t ns;
	struct lama_search_put keep;

	(void)state;
	add_docs(5000, 3, "topic-gone"); /* rows of a topic that no longer is */
	plan(LAMA_SEARCH_PLAN_AUTO, t, 2, stale, &ns); /* never built: everything */
	assert_int_equal(ns, 2);
	assert_int_equal(count(), 0);
	/* topic-a in two batches, the oldest topic first */
	put_batch(&p, 50, 50, &out);
	assert_true(p.next > p.base);
	keep = p;
	p.flags = LAMA_SEARCH_PUT_LAST;
	put_batch(&p, 0, 50, &out);
	/* the same last batch again: same rows, same answer */
	keep.flags = LAMA_SEARCH_PUT_LAST;
	put_batch(&keep, 0, 50, &again);
	assert_memory_equal(out.data, again.data, 16);
	assert_int_equal(count(), 100);
	assert_int_equal(built(), 0);
	/* the sync cut short here (a logout, a restart): a sync resumes it,
	 * keeping the topic that was finished */
	plan(LAMA_SEARCH_PLAN_SYNC, t, 2, stale, &ns);
	assert_int_equal(ns, 1);
	assert_int_equal(stale[0], 1); /* topic-b */
	assert_int_equal(stale[1], 0); /* topic-a, done */
	assert_int_equal(count(), 100);
	p = (struct lama_search_put){ .topic = t[0],
				      .flags = LAMA_SEARCH_PUT_FIRST | LAMA_SEARCH_PUT_LAST |
					       LAMA_SEARCH_PUT_BUILT };
	put_batch(&p, 1000, 30, &out);
	assert_int_equal(count(), 130);
	assert_int_equal(built(), 1);
	assert_int_equal(hits("zebra7", 1000), 2 + 1);
	/* nothing changed: nothing stale */
	plan(LAMA_SEARCH_PLAN_AUTO, t, 2, stale, &ns);
	assert_int_equal(ns, 0);
	/* topic-a grew: only it; topic-b gone: forgotten */
	t[1].entries = 101;
	plan(LAMA_SEARCH_PLAN_SYNC, &t[1], 1, stale, &ns);
	assert_int_equal(ns, 1);
	assert_int_equal(stale[0], 1);
	assert_int_equal(count(), 100);
	/* a first batch put again (a retry) drops the rows it put before */
	p = (struct lama_search_put){ .topic = t[1], .flags = LAMA_SEARCH_PUT_FIRST };
	put_batch(&p, 60, 40, &out);
	put_batch(&p, 60, 40, &out); /* p holds the answer: FIRST ignores it */
	assert_int_equal(count(), 40);
	/* the rebuild mode: all stale, all gone */
	plan(LAMA_SEARCH_PLAN_REBUILD, &t[1], 1, stale, &ns);
	assert_int_equal(ns, 1);
	assert_int_equal(count(), 0);
	assert_int_equal(built(), 0);
	lama_buf_release(&out);
	lama_buf_release(&again);
}

/* Every allocation failed in turn: an error (ENOMEM) and nothing
 * changed, or success; never a leak or a crash. */
static void test_oom(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX), out = LAMA_BUF_INIT(0);
	struct lama_search_topic t[2] = { { "topic-a", 20, 5.0 }, { "topic-b", 1, 6.0 } };
	struct lama_search_put p = { .topic = t[0],
				     .flags = LAMA_SEARCH_PUT_FIRST | LAMA_SEARCH_PUT_LAST };
	struct lama_search_doc d[20];
	struct lama_search_opts o = { .limit = 10 };
	char tx[20][64];
	int rc = -1;

	(void)state;
	add_docs(0, 5, "topic-a");
	for (int i = 0; i < 20; i++)
		doc(&d[i], "topic-a", 100 + (unsigned)i, tx[i], sizeof(tx[i]));
	assert_int_equal(lama_search_task_put(&b, path, keys, &p, d, 20), 0);
	for (unsigned long n = 1; n < 400 && rc; n++) {
		lama_mem_fail_after(n, 1);
		rc = run("put_topic", &b, &out);
		lama_mem_fail_after(0, 0);
		if (rc) {
			assert_int_equal(rc, LAMA_ENOMEM);
			assert_int_equal(count(), 5); /* all or nothing */
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(count(), 20);
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_plan(&b, path, keys, LAMA_SEARCH_PLAN_SYNC, &t[1], 1), 0);
	rc = -1;
	for (unsigned long n = 1; n < 400 && rc; n++) {
		lama_mem_fail_after(n, 1);
		rc = run("plan", &b, &out);
		lama_mem_fail_after(0, 0);
		if (rc)
			assert_int_equal(rc, LAMA_ENOMEM);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(count(), 0); /* topic-a was not in the plan: forgotten */
	add_docs(0, 50, "topic-b");
	lama_buf_truncate(&b, 0);
	assert_int_equal(lama_search_task_query(&b, path, keys, "zebra7 OR zebra8", 16, &o), 0);
	rc = -1;
	for (unsigned long n = 1; n < 400 && rc; n++) {
		lama_mem_fail_after(n, 1);
		rc = run("query", &b, &out);
		lama_mem_fail_after(0, 0);
		if (rc)
			assert_int_equal(rc, LAMA_ENOMEM);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(hits("zebra7 OR zebra8", 10), 2);
	lama_buf_release_wipe(&b);
	lama_buf_release(&out);
}

/* ---- real workers under the manager ---- */

struct res {
	int called, rc;
	struct lama_buf out;
};

static void on_done(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct res *r = ctx;

	(void)msg;
	r->called++;
	r->rc = rc;
	if (!rc && n)
		assert_int_equal(lama_buf_add(&r->out, out, n), 0);
}

static long status(lama_workers *m, const char *key)
{
	json_t *s = lama_workers_status(m), *v = json_object_get(json_array_get(s, 0), key);
	long n = json_is_integer(v) ? (long)json_integer_value(v) : json_is_true(v);

	json_decref(s);
	return n;
}

#define BIG 20000 /* messages in the task killed: long enough to be in the middle */

/* A task of BIG messages is submitted; once the worker is on it, it is
 * killed; the task runs again on the new worker, and the index holds
 * exactly what it should. */
static void kill_mid(const char *op)
{
	struct lama_worker_pool pool = { "index", 1, 0, 0 };
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_search_doc *d = calloc(BIG, sizeof(*d));
	char (*t)[64] = calloc(BIG, 64);
	struct lama_search_put p = { .topic = { "topic-a", BIG, 5.0 },
				     .flags = LAMA_SEARCH_PUT_FIRST | LAMA_SEARCH_PUT_LAST |
					      LAMA_SEARCH_PUT_BUILT };
	struct res r = { 0, 0, LAMA_BUF_INIT(LAMA_BUF_MAX) };
	const char *exe = getenv("LAMA_BIN");
	uv_loop_t loop;
	lama_workers *m;
	long victim;
	int busy = 0;

	assert_non_null(exe);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(lama_workers_new(&m, &loop, exe, &pool, 1), 0);
	add_docs(900010, 10, "topic-a"); /* rows a put_topic FIRST must drop */
	for (unsigned i = 0; i < BIG; i++)
		doc(&d[i], "topic-a", BIG - 1 - i, t[i], 64);
	if (!strcmp(op, "add"))
		assert_int_equal(lama_search_task_add(&b, path, keys, d, BIG), 0);
	else
		assert_int_equal(lama_search_task_put(&b, path, keys, &p, d, BIG), 0);
	assert_int_equal(lama_workers_submit(m, "index", op, b.data, b.len, LAMA_TASK_IDEMPOTENT, 0,
					     on_done, &r, NULL), 0);
	/* the worker is on it: wait until it has been a while */
	for (int i = 0; i < 400 && !busy; i++) {
		int never = 0;
		uv_timer_t w;

		uv_timer_init(&loop, &w);
		uv_timer_start(&w, wt_on_wake, 5, 0);
		uv_run(&loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&w, NULL);
		uv_run(&loop, UV_RUN_NOWAIT);
		(void)never;
		busy = status(m, "busy") && status(m, "pid");
	}
	assert_true(busy);
	{
		int dummy = 0;
		uint64_t end = uv_hrtime() + 150 * 1000000ull;
		uv_timer_t w;

		uv_timer_init(&loop, &w);
		uv_timer_start(&w, wt_on_wake, 5, 5);
		while (uv_hrtime() < end && !r.called)
			uv_run(&loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&w, NULL);
		uv_run(&loop, UV_RUN_NOWAIT);
		(void)dummy;
	}
	assert_int_equal(r.called, 0); /* still in the middle */
	victim = status(m, "pid");
	assert_int_equal(kill((pid_t)victim, SIGKILL), 0);
	wt_run_until(&loop, &r.called, 120000);
	assert_int_equal(r.called, 1);
	assert_int_equal(r.rc, 0);
	assert_int_equal(status(m, "restarts"), 1);
	assert_true(status(m, "pid") != victim);
	lama_workers_close(m);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
	/* exactly right: every message once, the edits of the first ten kept
	 * by add, dropped by put_topic */
	assert_int_equal(count(), !strcmp(op, "add") ? BIG + 10 : BIG);
	assert_int_equal(hits("zebra7", 1000), BIG / 50);
	assert_int_equal(hits("\"number 12345 about\"", 10), 1);
	if (!strcmp(op, "put_topic")) {
		struct lama_search_put q;

		assert_int_equal(lama_search_task_put_result(r.out.data, r.out.len, &q), 0);
		assert_true(q.next > q.base);
		assert_int_equal(built(), 1);
	}
	free(d);
	free(t);
	lama_buf_release_wipe(&b);
	lama_buf_release(&r.out);
}

static void test_kill_mid_put_topic(void **state)
{
	(void)state;
	kill_mid("put_topic");
}

static void test_kill_mid_add(void **state)
{
	(void)state;
	kill_mid("add");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_fields, setup, teardown),
		cmocka_unit_test(test_results),
		cmocka_unit_test_setup_teardown(test_plan_put, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_mid_put_topic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_mid_add, setup, teardown),
	};

	if (lama_crypto_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
