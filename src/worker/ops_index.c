/* ops_index.c: the "index" worker's ops (docs/workers.md#index): the
 * user's full-text index (src/search) run off the main loop.
 *
 * Every task names the index file and carries its two keys, so a worker
 * holds no state that a replacement would lack: it keeps one open index
 * between tasks (opening one costs a few ms: SQLite, FTS5, the
 * tokenizer), reopened when a task names another file or other keys, and
 * closed (its keys wiped) by the `close` op or at exit. */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "search/task.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/frame.h"
#include "worker/ops.h"

/* the index open now: its path, and its keys in secure memory */
static lama_search *ix;
static char ix_path[LAMA_PATH_MAX];
static uint8_t *ix_keys;

static void ix_close(void)
{
	lama_search_close(ix); /* wipes its keys */
	ix = NULL;
	lama_secure_free(ix_keys);
	ix_keys = NULL;
	ix_path[0] = '\0';
}

static uint64_t f64_bits(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int rd_f64(struct lama_rd *r, double *d, const char *what)
{
	const uint8_t *p;
	uint64_t v;
	int rc = lama_rd_bytes(r, 8, &p, what);

	if (rc)
		return rc;
	v = f64_bits(p);
	memcpy(d, &v, 8);
	return 0;
}

/* u8 length, 1..LAMA_SEARCH_TOPIC_MAX bytes of a topic id (0 allowed with
 * none_ok), copied NUL-terminated into out */
static int rd_topic(struct lama_rd *r, char out[LAMA_SEARCH_TOPIC_MAX + 1], int none_ok)
{
	const uint8_t *p;
	uint8_t n;
	int rc;

	if ((rc = lama_rd_u8(r, &n, "a topic's length")))
		return rc;
	if ((n == 0 && !none_ok) || n > LAMA_SEARCH_TOPIC_MAX)
		return lama_error(LAMA_EINVAL, "%s: a topic id has 1 to %d bytes", r->op,
				  LAMA_SEARCH_TOPIC_MAX);
	if ((rc = lama_rd_bytes(r, n, &p, "a topic id")))
		return rc;
	if (memchr(p, 0, n))
		return lama_error(LAMA_EINVAL, "%s: a topic id holds a NUL byte", r->op);
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int rd_text(struct lama_rd *r, const char **text, size_t *n)
{
	const uint8_t *p;
	uint32_t len;
	int rc;

	if ((rc = lama_rd_u32(r, &len, "a text's length")))
		return rc;
	if (len > LAMA_SEARCH_TEXT_MAX)
		return lama_error(LAMA_ELIMIT, "%s: a text of %u bytes (at most %u)", r->op, len,
				  LAMA_SEARCH_TEXT_MAX);
	if ((rc = lama_rd_bytes(r, len, &p, "a text")))
		return rc;
	*text = (const char *)p;
	*n = len;
	return 0;
}

/* The head of every task: the index's path and keys; the index opened
 * (or the one open kept when it is the same file with the same keys). */
static int rd_index(struct lama_rd *r)
{
	const uint8_t *path, *keys;
	uint32_t n;
	int rc;

	if ((rc = lama_rd_path(r, &path, &n)) ||
	    (rc = lama_rd_bytes(r, LAMA_SEARCH_KEYS, &keys, "the keys")))
		return rc;
	/* the keys compared in constant time: a task's timing says nothing
	 * of how much of a key matched */
	if (ix && strlen(ix_path) == n && !memcmp(ix_path, path, n) &&
	    !lama_memcmp_ct(ix_keys, keys, LAMA_SEARCH_KEYS))
		return 0;
	ix_close();
	if (!(ix_keys = lama_secure_alloc(LAMA_SEARCH_KEYS)))
		return lama_error(LAMA_ENOMEM, "out of secure memory");
	memcpy(ix_keys, keys, LAMA_SEARCH_KEYS);
	memcpy(ix_path, path, n);
	ix_path[n] = '\0';
	if ((rc = lama_search_open_at(ix_path, ix_keys, ix_keys + LAMA_KEY_BYTES, &ix)))
		ix_close();
	return rc;
}

/* Passes over the head (path and keys), to be read by rd_index once the
 * rest of the task is checked. */
static int skip_head(struct lama_rd *r)
{
	const uint8_t *p;
	uint32_t len;
	int rc;

	if ((rc = lama_rd_path(r, &p, &len)))
		return rc;
	return lama_rd_bytes(r, LAMA_SEARCH_KEYS, &p, "the keys");
}

/* The whole input is read before the index is touched: a malformed task
 * changes nothing and opens nothing. rd_index goes last for that reason
 * (it may open). */
static int op_add(struct lama_rd *r)
{
	struct lama_rd head = *r;
	struct lama_search_doc *d = NULL;
	char (*topics)[LAMA_SEARCH_TOPIC_MAX + 1] = NULL;
	const uint8_t *p;
	uint32_t count;
	int rc;

	/* skip the head, check it at the end */
	if ((rc = skip_head(r)) ||
	    (rc = lama_rd_count(r, &count, 1 + 32, "the count")))
		return rc;
	if (count && (!(d = lama_calloc(count, sizeof(*d))) ||
		      !(topics = lama_malloc((size_t)count * sizeof(*topics))))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < count && !rc; i++) {
		uint8_t what;

		if ((rc = lama_rd_u8(r, &what, "an item's kind")) ||
		    (rc = lama_rd_bytes(r, 32, &p, "a message id")))
			break;
		memcpy(d[i].id.b, p, 32);
		if (what == 2) {
			/* a removal: an empty text, any topic */
			strcpy(topics[i], "-");
			d[i].topic = topics[i];
			continue;
		}
		if (what != 1) {
			rc = lama_error(LAMA_EINVAL, "add: an item of kind %u (1 index, 2 remove)", what);
			break;
		}
		if ((rc = lama_rd_bytes(r, 32, &p, "a sender")))
			break;
		memcpy(d[i].sender.b, p, 32);
		if ((rc = rd_f64(r, &d[i].time, "a time")) || (rc = rd_topic(r, topics[i], 0)) ||
		    (rc = rd_text(r, &d[i].text, &d[i].text_len)))
			break;
		d[i].topic = topics[i];
	}
	if (!rc && !(rc = lama_rd_end(r)) && !(rc = rd_index(&head)))
		rc = lama_search_add_batch(ix, d, count);
out:
	lama_free(d);
	lama_free(topics);
	return rc;
}

static int hit_json(void *ctx, const struct lama_search_hit *h)
{
	json_t *o = lama_search_hit_json(h);

	if (!o || json_array_append_new(ctx, o))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

struct sink {
	struct lama_buf *b;
	int rc;
};

static int sink_add(const char *p, size_t n, void *ctx)
{
	struct sink *s = ctx;

	if (!s->rc)
		s->rc = lama_buf_add(s->b, p, n);
	return s->rc ? -1 : 0;
}

static int op_query(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_search_opts o = { 0 };
	char topic[LAMA_SEARCH_TOPIC_MAX + 1];
	const uint8_t *q;
	uint32_t limit, window;
	json_t *hits = NULL;
	struct lama_rd head = *r;
	size_t n;
	int rc;

	if ((rc = skip_head(r)) || (rc = lama_rd_u32(r, &limit, "the limit")) ||
	    (rc = lama_rd_u32(r, &window, "the rank window")) || (rc = rd_topic(r, topic, 1)))
		return rc;
	if (limit < 1 || limit > LAMA_SEARCH_LIMIT_MAX)
		return lama_error(LAMA_EINVAL, "query: the limit is 1 to %d", LAMA_SEARCH_LIMIT_MAX);
	n = r->left;
	if (n > LAMA_SEARCH_QUERY_MAX)
		return lama_error(LAMA_ELIMIT, "query: a query has at most %d bytes",
				  LAMA_SEARCH_QUERY_MAX);
	if ((rc = lama_rd_bytes(r, n, &q, "the query")) || (rc = rd_index(&head)))
		return rc;
	o.limit = limit;
	o.rank_window = window;
	o.topic = topic[0] ? topic : NULL;
	if (!(hits = json_array()))
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = lama_search_query(ix, (const char *)q, n, &o, hit_json, hits);
	if (!rc) {
		struct sink s = { out, 0 };

		if (json_dump_callback(hits, sink_add, &s, JSON_COMPACT) != 0)
			rc = s.rc ? s.rc : lama_error(LAMA_ENOMEM, "out of memory");
	}
	json_decref(hits);
	return rc;
}

static int op_count(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_rd head = *r;
	uint8_t o[9];
	uint64_t n;
	int rc;

	if ((rc = skip_head(r)) || (rc = lama_rd_end(r)) || (rc = rd_index(&head)) ||
	    (rc = lama_search_count(ix, &n)))
		return rc;
	lama_put_u64(o, n);
	o[8] = (uint8_t)lama_search_is_built(ix);
	return lama_buf_add(out, o, sizeof(o));
}

static int op_plan(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_rd head = *r;
	struct lama_search_topic *t = NULL;
	char (*ids)[LAMA_SEARCH_TOPIC_MAX + 1] = NULL;
	uint8_t *stale = NULL, be[4];
	uint32_t count;
	uint8_t mode;
	size_t nstale = 0;
	int rc;

	if ((rc = skip_head(r)) ||
	    (rc = lama_rd_u8(r, &mode, "the mode")) || (rc = lama_rd_count(r, &count, 1 + 1 + 16, "the count")))
		return rc;
	if (mode > LAMA_SEARCH_PLAN_AUTO)
		return lama_error(LAMA_EINVAL, "plan: a mode of %u (0 sync, 1 rebuild, 2 auto)", mode);
	if (!(t = lama_calloc((size_t)count + 1, sizeof(*t))) ||
	    !(ids = lama_malloc(((size_t)count + 1) * sizeof(*ids))) ||
	    !(stale = lama_calloc((size_t)count + 1, 1))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < count && !rc; i++) {
		if (!(rc = rd_topic(r, ids[i], 0)) && !(rc = lama_rd_u64(r, &t[i].entries, "entries")))
			rc = rd_f64(r, &t[i].last_time, "a time");
		t[i].id = ids[i];
	}
	if (rc || (rc = lama_rd_end(r)) || (rc = rd_index(&head)) ||
	    (rc = lama_search_plan(ix, t, count, (int)mode, stale, &nstale)))
		goto out;
	lama_put_u32(be, (uint32_t)nstale);
	rc = lama_buf_add(out, be, 4);
	for (uint32_t i = 0; i < count && !rc; i++)
		if (stale[i]) {
			lama_put_u32(be, i);
			rc = lama_buf_add(out, be, 4);
		}
out:
	lama_free(t);
	lama_free(ids);
	lama_free(stale);
	return rc;
}

static int op_put_topic(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_rd head = *r;
	struct lama_search_put put = { 0 };
	struct lama_search_doc *d = NULL;
	char topic[LAMA_SEARCH_TOPIC_MAX + 1];
	const uint8_t *p;
	uint32_t count;
	uint8_t flags;
	uint8_t o[16];
	int rc;

	if ((rc = skip_head(r)) ||
	    (rc = lama_rd_u8(r, &flags, "the flags")) || (rc = rd_topic(r, topic, 0)) ||
	    (rc = lama_rd_u64(r, &put.topic.entries, "entries")) ||
	    (rc = rd_f64(r, &put.topic.last_time, "a time")) ||
	    (rc = lama_rd_u64(r, &put.base, "the base")) ||
	    (rc = lama_rd_u64(r, &put.next, "the next row")) ||
	    (rc = lama_rd_count(r, &count, 32 + 32 + 8 + 4, "the count")))
		return rc;
	if (flags & ~(LAMA_SEARCH_PUT_FIRST | LAMA_SEARCH_PUT_LAST | LAMA_SEARCH_PUT_BUILT))
		return lama_error(LAMA_EINVAL, "put_topic: unknown flags %#x", flags);
	put.flags = flags;
	put.topic.id = topic;
	if (count && !(d = lama_calloc(count, sizeof(*d))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < count && !rc; i++) {
		if ((rc = lama_rd_bytes(r, 32, &p, "a message id")))
			break;
		memcpy(d[i].id.b, p, 32);
		if ((rc = lama_rd_bytes(r, 32, &p, "a sender")))
			break;
		memcpy(d[i].sender.b, p, 32);
		if (!(rc = rd_f64(r, &d[i].time, "a time")))
			rc = rd_text(r, &d[i].text, &d[i].text_len);
		d[i].topic = topic;
	}
	if (!rc && !(rc = lama_rd_end(r)) && !(rc = rd_index(&head)) &&
	    !(rc = lama_search_put_topic(ix, &put, d, count))) {
		lama_put_u64(o, put.base);
		lama_put_u64(o + 8, put.next);
		rc = lama_buf_add(out, o, sizeof(o));
	}
	lama_free(d);
	return rc;
}

void lama_worker_index_close(void)
{
	ix_close();
	lama_worker_vector_close(); /* the same worker's vector index */
}

int lama_worker_ops_index(const char *op, const void *in, size_t n, struct lama_buf *out)
{
	struct lama_rd r = { in, n, op };

	if (!strcmp(op, "add"))
		return op_add(&r);
	if (!strcmp(op, "query"))
		return op_query(&r, out);
	if (!strcmp(op, "count"))
		return op_count(&r, out);
	if (!strcmp(op, "plan"))
		return op_plan(&r, out);
	if (!strcmp(op, "put_topic"))
		return op_put_topic(&r, out);
	if (!strcmp(op, "close")) {
		int rc = lama_rd_end(&r);

		lama_worker_index_close();
		return rc;
	}
	/* the vector index of embeddings (src/vector), the same worker */
	if (!strncmp(op, "vec_", 4))
		return lama_worker_ops_vector(op, in, n, out);
	return lama_error(LAMA_ENOTFOUND, "the index worker has no op %s", op);
}
