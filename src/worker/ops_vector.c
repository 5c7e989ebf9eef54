/* ops_vector.c: the index worker's vector ops (docs/workers.md, "index:
 * vector ops"; the index itself: src/vector, docs/vector.md).
 *
 * Every task but vec_close starts with the index's path and its 32-byte
 * key, so a worker needs no state handed over: it keeps one lama_vector
 * open between tasks (loading 100,000 vectors costs a fraction of a
 * second) and reopens it when a task names another path or key. A
 * replacement worker, after a crash, simply opens it again. The key is
 * kept in secure memory, compared in constant time, and wiped on close. */
#include <string.h>

#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"
#include "vector/vector.h"
#include "worker/frame.h"
#include "worker/ops.h"

/* the smallest item of vec_put: id, model and topic of 1 byte, dim, one float */
#define ITEM_MIN (32 + 1 + 1 + 1 + 1 + 4 + 4)

static struct {
	lama_vector *v;
	char *path;
	uint8_t *key; /* secure memory */
} cache;

void lama_worker_vector_close(void)
{
	lama_vector_close(cache.v);
	lama_free(cache.path);
	lama_secure_free(cache.key);
	memset(&cache, 0, sizeof(cache));
}

/* The index a task names, from the cache or opened now. */
struct target {
	const uint8_t *path;
	uint32_t pathlen;
	const uint8_t *key;
};

static int read_target(struct lama_rd *r, struct target *t)
{
	int rc = lama_rd_path(r, &t->path, &t->pathlen);

	return rc ? rc : lama_rd_bytes(r, LAMA_KEY_BYTES, &t->key, "the key");
}

static int open_target(const struct target *t, lama_vector **out)
{
	char *path;
	uint8_t *key;
	int rc;

	if (cache.v && strlen(cache.path) == t->pathlen && !memcmp(cache.path, t->path, t->pathlen) &&
	    !lama_memcmp_ct(cache.key, t->key, LAMA_KEY_BYTES)) {
		*out = cache.v;
		return 0;
	}
	lama_worker_vector_close();
	path = lama_strndup((const char *)t->path, t->pathlen);
	key = lama_secure_alloc(LAMA_KEY_BYTES);
	if (!path || !key) {
		lama_free(path);
		lama_secure_free(key);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	memcpy(key, t->key, LAMA_KEY_BYTES);
	if ((rc = lama_vector_open_at(path, key, &cache.v))) {
		lama_free(path);
		lama_secure_free(key);
		return rc;
	}
	cache.path = path;
	cache.key = key;
	*out = cache.v;
	return 0;
}

/* u8 len, then len bytes of a name copied into out (NUL-terminated);
 * len 0 allowed only when `optional`. */
static int read_name(struct lama_rd *r, char *out, size_t max, int optional, const char *what)
{
	const uint8_t *p;
	uint8_t n;
	int rc;

	if ((rc = lama_rd_u8(r, &n, what)))
		return rc;
	if ((!optional && n == 0) || n > max)
		return lama_error(LAMA_EINVAL, "%s: %s has %d to %zu bytes", r->op, what,
				  optional ? 0 : 1, max);
	if ((rc = lama_rd_bytes(r, n, &p, what)))
		return rc;
	if (memchr(p, 0, n))
		return lama_error(LAMA_EINVAL, "%s: %s holds a NUL byte", r->op, what);
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

static float get_f32(const uint8_t *p)
{
	uint32_t w = lama_get_u32(p);
	float f;

	memcpy(&f, &w, 4);
	return f;
}

static void put_f32(uint8_t *p, float f)
{
	uint32_t w;

	memcpy(&w, &f, 4);
	lama_put_u32(p, w);
}

/* u32 dim, dim x f32: checked against what is left, not copied */
static int read_dims(struct lama_rd *r, uint32_t *dim, const uint8_t **p)
{
	int rc;

	if ((rc = lama_rd_u32(r, dim, "the dimension")))
		return rc;
	if (*dim == 0 || *dim > LAMA_VECTOR_DIM_MAX)
		return lama_error(LAMA_EINVAL, "%s: a dimension is 1 to %d", r->op, LAMA_VECTOR_DIM_MAX);
	if (*dim > r->left / 4)
		return lama_error(LAMA_EINVAL, "%s: %u components do not fit in %zu bytes", r->op, *dim,
				  r->left);
	return lama_rd_bytes(r, 4 * (size_t)*dim, p, "the components");
}

/* target, u32 count, count x (id[32], u8 len model, u8 len topic, u32
 * dim, dim x f32) -> u64 items in the index */
static int op_put(struct lama_rd *r, struct lama_buf *out)
{
	struct target t;
	struct lama_rd scan;
	struct lama_vector_item *it = NULL;
	char *names = NULL;
	float *f = NULL;
	lama_vector *v;
	uint32_t count;
	size_t floats = 0;
	uint8_t cnt[8];
	int rc;

	if ((rc = read_target(r, &t)) || (rc = lama_rd_count(r, &count, ITEM_MIN, "the count")))
		return rc;
	/* first pass: the whole input checked, the floats counted */
	scan = *r;
	for (uint32_t i = 0; i < count; i++) {
		char model[LAMA_VECTOR_MODEL_MAX + 1], topic[LAMA_VECTOR_TOPIC_MAX + 1];
		const uint8_t *p;
		uint32_t dim;

		if ((rc = lama_rd_bytes(&scan, 32, &p, "an id")) ||
		    (rc = read_name(&scan, model, LAMA_VECTOR_MODEL_MAX, 0, "a model name")) ||
		    (rc = read_name(&scan, topic, LAMA_VECTOR_TOPIC_MAX, 0, "a topic id")) ||
		    (rc = read_dims(&scan, &dim, &p)))
			return rc;
		floats += dim;
	}
	if ((rc = lama_rd_end(&scan)))
		return rc;
	it = lama_calloc(count ? count : 1, sizeof(*it));
	names = lama_malloc((size_t)(count ? count : 1) *
			    (LAMA_VECTOR_MODEL_MAX + LAMA_VECTOR_TOPIC_MAX + 2));
	f = lama_malloc((floats ? floats : 1) * sizeof(float));
	if (!it || !names || !f) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	/* second pass: the items, floats in host order */
	floats = 0;
	for (uint32_t i = 0; i < count; i++) {
		char *model = names + (size_t)i * (LAMA_VECTOR_MODEL_MAX + LAMA_VECTOR_TOPIC_MAX + 2);
		char *topic = model + LAMA_VECTOR_MODEL_MAX + 1;
		const uint8_t *p;

		/* cannot fail: the same bytes passed above */
		if ((rc = lama_rd_bytes(r, 32, &p, "an id")))
			goto out;
		memcpy(it[i].id.b, p, 32);
		if ((rc = read_name(r, model, LAMA_VECTOR_MODEL_MAX, 0, "a model name")) ||
		    (rc = read_name(r, topic, LAMA_VECTOR_TOPIC_MAX, 0, "a topic id")) ||
		    (rc = read_dims(r, &it[i].dim, &p)))
			goto out;
		it[i].model = model;
		it[i].topic = topic;
		it[i].vec = f + floats;
		for (uint32_t j = 0; j < it[i].dim; j++)
			f[floats + j] = get_f32(p + 4 * (size_t)j);
		floats += it[i].dim;
	}
	/* the answer's room first: a put done is never reported failed */
	if ((rc = lama_buf_grow(out, 8)) || (rc = open_target(&t, &v)) ||
	    (rc = lama_vector_put_batch(v, it, count)))
		goto out;
	lama_put_u64(cnt, lama_vector_count(v, NULL));
	rc = lama_buf_add(out, cnt, 8);
out:
	/* embeddings say much of a message: not left in freed memory */
	if (f)
		lama_wipe(f, floats * sizeof(float));
	lama_free(f);
	/* and the topic ids and model names */
	if (names)
		lama_wipe(names, (size_t)(count ? count : 1) *
				 (LAMA_VECTOR_MODEL_MAX + LAMA_VECTOR_TOPIC_MAX + 2));
	lama_free(names);
	lama_free(it);
	return rc;
}

/* target, u32 count, count x id[32] -> u32 removed */
static int op_remove(struct lama_rd *r, struct lama_buf *out)
{
	struct target t;
	const uint8_t *p;
	lama_hash *ids = NULL;
	lama_vector *v;
	uint32_t count;
	size_t removed = 0;
	uint8_t cnt[4];
	int rc;

	if ((rc = read_target(r, &t)) || (rc = lama_rd_count(r, &count, 32, "the count")))
		return rc;
	if ((rc = lama_rd_bytes(r, (size_t)count * 32, &p, "the ids")) || (rc = lama_rd_end(r)))
		return rc;
	/* copied: lama_hash needs no alignment, but the payload is not ours */
	ids = lama_malloc((count ? count : 1) * sizeof(*ids));
	if (!ids)
		return lama_error(LAMA_ENOMEM, "out of memory");
	memcpy(ids, p, (size_t)count * 32);
	if (!(rc = lama_buf_grow(out, 4)) && !(rc = open_target(&t, &v)) && !(rc = lama_vector_remove(v, ids, count, &removed))) {
		lama_put_u32(cnt, (uint32_t)removed);
		rc = lama_buf_add(out, cnt, 4);
	}
	lama_free(ids);
	return rc;
}

/* target, u8 len model, u8 len topic (0: every topic), u32 k, u32 dim,
 * dim x f32 -> u32 n, n x (id[32], f32 score) */
static int op_query(struct lama_rd *r, struct lama_buf *out)
{
	char model[LAMA_VECTOR_MODEL_MAX + 1], topic[LAMA_VECTOR_TOPIC_MAX + 1];
	struct lama_vector_hit *hits = NULL;
	struct target t;
	const uint8_t *p;
	float *q = NULL;
	lama_vector *v;
	uint32_t k, dim;
	size_t n = 0;
	int rc;

	if ((rc = read_target(r, &t)) ||
	    (rc = read_name(r, model, LAMA_VECTOR_MODEL_MAX, 0, "the model name")) ||
	    (rc = read_name(r, topic, LAMA_VECTOR_TOPIC_MAX, 1, "the topic id")) ||
	    (rc = lama_rd_u32(r, &k, "k")))
		return rc;
	if (k == 0 || k > LAMA_VECTOR_K_MAX)
		return lama_error(LAMA_EINVAL, "%s: k is 1 to %d", r->op, LAMA_VECTOR_K_MAX);
	if ((rc = read_dims(r, &dim, &p)) || (rc = lama_rd_end(r)))
		return rc;
	q = lama_malloc((size_t)dim * sizeof(float));
	hits = lama_malloc((size_t)k * sizeof(*hits));
	if (!q || !hits) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t j = 0; j < dim; j++)
		q[j] = get_f32(p + 4 * (size_t)j);
	if ((rc = open_target(&t, &v)) ||
	    (rc = lama_vector_query(v, model, q, dim, k, topic[0] ? topic : NULL, hits, &n)))
		goto out;
	if ((rc = lama_buf_grow(out, 4 + n * 36)))
		goto out;
	lama_put_u32((uint8_t *)out->data + out->len, (uint32_t)n);
	out->len += 4;
	for (size_t i = 0; i < n; i++) {
		uint8_t *o = (uint8_t *)out->data + out->len;

		memcpy(o, hits[i].id.b, 32);
		put_f32(o + 32, hits[i].score);
		out->len += 36;
	}
	out->data[out->len] = 0;
out:
	if (q)
		lama_wipe(q, (size_t)dim * sizeof(float));
	lama_free(q);
	/* which messages are nearest a question says much of both */
	if (hits)
		lama_wipe(hits, (size_t)k * sizeof(*hits));
	lama_free(hits);
	lama_wipe(topic, sizeof(topic));
	return rc;
}

/* target, u8 len model (0: all models) -> u64 items, u32 dim (0: all
 * models, or none) */
static int op_count(struct lama_rd *r, struct lama_buf *out)
{
	char model[LAMA_VECTOR_MODEL_MAX + 1];
	struct target t;
	lama_vector *v;
	uint8_t o[12];
	int rc;

	if ((rc = read_target(r, &t)) ||
	    (rc = read_name(r, model, LAMA_VECTOR_MODEL_MAX, 1, "the model name")) ||
	    (rc = lama_rd_end(r)) || (rc = open_target(&t, &v)) || (rc = lama_vector_refresh(v)))
		return rc;
	lama_put_u64(o, lama_vector_count(v, model[0] ? model : NULL));
	lama_put_u32(o + 8, model[0] ? lama_vector_dim(v, model) : 0);
	return lama_buf_add(out, o, sizeof(o));
}

int lama_worker_ops_vector(const char *op, const void *in, size_t n, struct lama_buf *out)
{
	struct lama_rd r = { in, n, op };

	if (!strcmp(op, "vec_put"))
		return op_put(&r, out);
	if (!strcmp(op, "vec_query"))
		return op_query(&r, out);
	if (!strcmp(op, "vec_remove"))
		return op_remove(&r, out);
	if (!strcmp(op, "vec_count"))
		return op_count(&r, out);
	if (!strcmp(op, "vec_close")) {
		if (n)
			return lama_error(LAMA_EINVAL, "vec_close: takes no input");
		lama_worker_vector_close();
		return 0;
	}
	return lama_error(LAMA_ENOTFOUND, "the index worker has no op %s", op);
}
