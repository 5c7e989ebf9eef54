/* task.c: the index worker's task formats, written (task.h). */
#include "search/task.h"

#include <string.h>

#include "util/err.h"

static int put_u8(struct lama_buf *b, unsigned v)
{
	return lama_buf_addch(b, (char)(uint8_t)v);
}

static int put_u32(struct lama_buf *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return lama_buf_add(b, p, 4);
}

static int put_u64(struct lama_buf *b, uint64_t v)
{
	int rc = put_u32(b, (uint32_t)(v >> 32));

	return rc ? rc : put_u32(b, (uint32_t)v);
}

static int put_f64(struct lama_buf *b, double d)
{
	uint64_t v;

	memcpy(&v, &d, 8);
	return put_u64(b, v);
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* u8 length and a topic id of 1..LAMA_SEARCH_TOPIC_MAX bytes */
static int put_topic_id(struct lama_buf *b, const char *id)
{
	size_t n = id ? strnlen(id, LAMA_SEARCH_TOPIC_MAX + 1) : 0;
	int rc;

	if (n == 0 || n > LAMA_SEARCH_TOPIC_MAX)
		return lama_error(LAMA_EINVAL, "search: a topic id has 1 to %d bytes",
				  LAMA_SEARCH_TOPIC_MAX);
	if ((rc = put_u8(b, (unsigned)n)))
		return rc;
	return lama_buf_add(b, id, n);
}

static int put_text(struct lama_buf *b, const char *text, size_t n)
{
	int rc;

	if (n > LAMA_SEARCH_TEXT_MAX)
		return lama_error(LAMA_ELIMIT, "search: a text over %u bytes", LAMA_SEARCH_TEXT_MAX);
	if ((rc = put_u32(b, (uint32_t)n)))
		return rc;
	return n ? lama_buf_add(b, text, n) : 0;
}

int lama_search_task_head(struct lama_buf *b, const char *path,
			  const uint8_t keys[LAMA_SEARCH_KEYS])
{
	size_t n = path ? strnlen(path, LAMA_PATH_MAX) : 0;
	int rc;

	if (n == 0 || n >= LAMA_PATH_MAX || path[0] != '/')
		return lama_error(LAMA_EINVAL, "search: the index's path must be absolute and shorter than %d bytes",
				  LAMA_PATH_MAX);
	if ((rc = put_u32(b, (uint32_t)n)) || (rc = lama_buf_add(b, path, n)))
		return rc;
	return lama_buf_add(b, keys, LAMA_SEARCH_KEYS);
}

int lama_search_task_add(struct lama_buf *b, const char *path, const uint8_t keys[LAMA_SEARCH_KEYS],
			 const struct lama_search_doc *d, size_t n)
{
	int rc;

	if (n > 65536)
		return lama_error(LAMA_ELIMIT, "search: at most 65536 changes in one add");
	if ((rc = lama_search_task_head(b, path, keys)) || (rc = put_u32(b, (uint32_t)n)))
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = put_u8(b, d[i].topic ? 1 : 2)) || (rc = lama_buf_add(b, d[i].id.b, 32)))
			break;
		if (d[i].topic && !((rc = lama_buf_add(b, d[i].sender.b, 32)) ||
				    (rc = put_f64(b, d[i].time)) || (rc = put_topic_id(b, d[i].topic))))
			rc = put_text(b, d[i].text, d[i].text_len);
	}
	return rc;
}

int lama_search_task_query(struct lama_buf *b, const char *path,
			   const uint8_t keys[LAMA_SEARCH_KEYS], const char *q, size_t n,
			   const struct lama_search_opts *o)
{
	int rc;

	if ((rc = lama_search_task_head(b, path, keys)) ||
	    (rc = put_u32(b, (uint32_t)(o && o->limit ? o->limit : 20))) ||
	    (rc = put_u32(b, (uint32_t)(o ? o->rank_window : 0))))
		return rc;
	if (o && o->topic)
		rc = put_topic_id(b, o->topic);
	else
		rc = put_u8(b, 0);
	if (!rc && n > LAMA_SEARCH_QUERY_MAX)
		rc = lama_error(LAMA_ELIMIT, "search: a query has at most %d bytes", LAMA_SEARCH_QUERY_MAX);
	return rc ? rc : lama_buf_add(b, q, n);
}

int lama_search_task_count(struct lama_buf *b, const char *path,
			   const uint8_t keys[LAMA_SEARCH_KEYS])
{
	return lama_search_task_head(b, path, keys);
}

int lama_search_task_count_result(const void *out, size_t n, uint64_t *count, int *built)
{
	const uint8_t *p = out;

	if (n != 9 || p[8] > 1)
		return lama_error(LAMA_EFORMAT, "the index worker's count is malformed");
	*count = get_u64(p);
	*built = p[8];
	return 0;
}

int lama_search_task_plan(struct lama_buf *b, const char *path, const uint8_t keys[LAMA_SEARCH_KEYS],
			  int mode, const struct lama_search_topic *t, size_t n)
{
	int rc;

	if (n > LAMA_SEARCH_PLAN_MAX)
		return lama_error(LAMA_ELIMIT, "search: at most %d topics in one plan",
				  LAMA_SEARCH_PLAN_MAX);
	if ((rc = lama_search_task_head(b, path, keys)) || (rc = put_u8(b, (unsigned)mode)) ||
	    (rc = put_u32(b, (uint32_t)n)))
		return rc;
	for (size_t i = 0; i < n && !rc; i++)
		if (!(rc = put_topic_id(b, t[i].id)) && !(rc = put_u64(b, t[i].entries)))
			rc = put_f64(b, t[i].last_time);
	return rc;
}

int lama_search_task_plan_result(const void *out, size_t len, size_t n, uint8_t *stale,
				 size_t *nstale)
{
	const uint8_t *p = out;
	uint32_t k;

	memset(stale, 0, n);
	*nstale = 0;
	if (len < 4 || (k = get_u32(p)) > n || len != 4 + (size_t)k * 4)
		return lama_error(LAMA_EFORMAT, "the index worker's plan is malformed");
	for (uint32_t i = 0; i < k; i++) {
		uint32_t at = get_u32(p + 4 + 4 * (size_t)i);

		if (at >= n || (i && at <= get_u32(p + 4 * (size_t)i)))
			return lama_error(LAMA_EFORMAT, "the index worker's plan is malformed");
		stale[at] = 1;
	}
	*nstale = k;
	return 0;
}

int lama_search_task_put(struct lama_buf *b, const char *path, const uint8_t keys[LAMA_SEARCH_KEYS],
			 const struct lama_search_put *p, const struct lama_search_doc *d, size_t n)
{
	int rc;

	if (n > 65536)
		return lama_error(LAMA_ELIMIT, "search: at most 65536 messages in one batch");
	if ((rc = lama_search_task_head(b, path, keys)) || (rc = put_u8(b, p->flags)) ||
	    (rc = put_topic_id(b, p->topic.id)) || (rc = put_u64(b, p->topic.entries)) ||
	    (rc = put_f64(b, p->topic.last_time)) || (rc = put_u64(b, p->base)) ||
	    (rc = put_u64(b, p->next)) || (rc = put_u32(b, (uint32_t)n)))
		return rc;
	for (size_t i = 0; i < n && !rc; i++)
		if (!(rc = lama_buf_add(b, d[i].id.b, 32)) && !(rc = lama_buf_add(b, d[i].sender.b, 32)) &&
		    !(rc = put_f64(b, d[i].time)))
			rc = put_text(b, d[i].text, d[i].text_len);
	return rc;
}

int lama_search_task_put_result(const void *out, size_t n, struct lama_search_put *p)
{
	const uint8_t *q = out;
	uint64_t base, next;

	if (n != 16 || (base = get_u64(q)) > INT64_MAX || (next = get_u64(q + 8)) < base ||
	    next > INT64_MAX)
		return lama_error(LAMA_EFORMAT, "the index worker's put_topic answer is malformed");
	p->base = base;
	p->next = next;
	return 0;
}
