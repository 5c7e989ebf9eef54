/* vector.c: the vector index (vector.h; design in docs/vector.md).
 *
 * The file: vecs(rowid, tag UNIQUE, seq, sealed), gone(seq, sealed),
 * meta(k, v). tag is a keyed BLAKE2b of the item's id; sealed is
 * AEAD(version, id, model, topic, dim, components) with the tag as
 * associated data; seq the write count of the transaction that wrote the
 * row; gone holds a sealed id per removal (tombstones), so that other
 * connections can follow. Everything is read into memory at open:
 *   models[]   per embedding model: its vectors normalized, one after the
 *              other (stride = dim rounded up to 8, zero padded, so the
 *              dot product runs on whole 8-lane blocks), their ids, and a
 *              SipHash-128 of their topic id under a key drawn at open
 *   map        id -> (model, index): open addressing, linear probing,
 *              backward-shift deletion, at most half full
 * A write goes to the file in one transaction first, and only then to
 * memory, with the memory it needs reserved before the transaction, so
 * that the two never differ; before it, and before a query, memory reads
 * what other connections wrote since (refresh). */
#include "vector/vector.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define SEAL_VERSION 1
#define SCHEMA_VERSION 1
#define SEAL_AD "lama vector v1"
#define CHECK_MSG "lama vector key check v1"
#define LANES 8     /* floats per block of the dot product */
#define TOPIC_TAG 16

/* the plaintext of a sealed row before its components */
#define REC_HEAD_MAX (1 + 32 + 1 + LAMA_VECTOR_MODEL_MAX + 1 + LAMA_VECTOR_TOPIC_MAX + 4)
#define REC_MAX (REC_HEAD_MAX + 4 * LAMA_VECTOR_DIM_MAX)

/* Secure memory: the derived keys. */
struct keys {
	uint8_t row[LAMA_KEY_BYTES];   /* tags of ids, the key check */
	uint8_t seal[LAMA_KEY_BYTES];  /* sealed rows */
	uint8_t topic[crypto_shorthash_siphashx24_KEYBYTES]; /* in memory only, random */
};

struct model {
	char name[LAMA_VECTOR_MODEL_MAX + 1]; /* "" for a free slot */
	uint32_t dim, stride;
	size_t n, cap;
	float *vec;                  /* cap * stride */
	lama_hash *ids;              /* cap */
	uint8_t (*topic)[TOPIC_TAG]; /* cap */
};

/* A map slot: model index + 1 (0: empty) and the index in that model. */
struct slot {
	uint32_t model, idx;
};

enum { S_PUT, S_DEL, S_VERSION, S_GONE, S_SETSEQ, S_META, S_COUNT };

static const char *const stmt_sql[S_COUNT] = {
	"INSERT INTO vecs(tag, seq, sealed) VALUES(?1, ?3, ?2)"
	" ON CONFLICT(tag) DO UPDATE SET sealed = excluded.sealed, seq = excluded.seq",
	"DELETE FROM vecs WHERE tag = ?1",
	"PRAGMA data_version",
	"INSERT INTO gone(seq, sealed) VALUES(?1, ?2)",
	"UPDATE meta SET v = ?1 WHERE k = 'seq'",
	"SELECT (SELECT v FROM meta WHERE k = 'seq'), (SELECT v FROM meta WHERE k = 'pruned')",
};

struct lama_vector {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	struct keys *k;
	struct model m[LAMA_VECTOR_MODELS_MAX];
	size_t nm;                   /* slots of m in use, free ones included */
	struct slot *map;
	size_t mapcap, mapn;         /* a power of two (or 0); entries */
	uint64_t floats;             /* stride * n summed over models */
	/* PRAGMA data_version when memory was last in step with the file:
	 * another connection's commit (another index worker) changes it */
	sqlite3_int64 dv;
	/* the file's write count (meta 'seq') memory is in step with */
	sqlite3_int64 seq;
};

static int sql_fail(lama_vector *v, int rc, const char *what)
{
	if (rc == SQLITE_NOMEM)
		return lama_error(LAMA_ENOMEM, "out of memory (%s)", what);
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
		return lama_error(LAMA_ECORRUPT, "vector index damaged (%s): delete it and embed again",
				  what);
	return lama_error(LAMA_EIO, "vector index: %s: %s", what, sqlite3_errmsg(v->db));
}

static int exec(lama_vector *v, const char *sql, const char *what)
{
	int rc = sqlite3_exec(v->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_fail(v, rc, what);
}

/* ---- models and the id map ---- */

static struct model *find_model(lama_vector *v, const char *name)
{
	for (size_t i = 0; i < v->nm; i++)
		if (v->m[i].name[0] && !strcmp(v->m[i].name, name))
			return &v->m[i];
	return NULL;
}

static size_t live_models(const lama_vector *v)
{
	size_t n = 0;

	for (size_t i = 0; i < v->nm; i++)
		n += v->m[i].name[0] != 0;
	return n;
}

static void model_free(struct model *m)
{
	if (m->vec)
		lama_wipe(m->vec, m->cap * m->stride * sizeof(float));
	lama_free(m->vec);
	lama_free(m->ids);
	lama_free(m->topic);
	memset(m, 0, sizeof(*m));
}

/* A new empty model in a free slot; NULL when none is left. */
static struct model *model_new(lama_vector *v, const char *name, uint32_t dim)
{
	struct model *m = NULL;

	for (size_t i = 0; i < v->nm && !m; i++)
		if (!v->m[i].name[0])
			m = &v->m[i];
	if (!m) {
		if (v->nm == LAMA_VECTOR_MODELS_MAX)
			return NULL;
		m = &v->m[v->nm++];
	}
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->dim = dim;
	m->stride = (dim + LANES - 1) / LANES * LANES;
	return m;
}

/* Room for `need` items in m; cap changes only when all three arrays grew. */
static int model_reserve(struct model *m, size_t need)
{
	size_t cap = m->cap ? m->cap : 64;
	void *p;

	if (need <= m->cap)
		return 0;
	while (cap < need)
		cap = cap < 4096 ? cap * 2 : cap + cap / 2;
	/* not realloc: the old vectors are wiped before they are freed */
	if (!(p = lama_malloc(cap * m->stride * sizeof(float))))
		return lama_error(LAMA_ENOMEM, "out of memory for vectors");
	if (m->vec) {
		memcpy(p, m->vec, m->n * m->stride * sizeof(float));
		lama_wipe(m->vec, m->cap * m->stride * sizeof(float));
		lama_free(m->vec);
	}
	m->vec = p;
	if (!(p = lama_realloc(m->ids, cap * sizeof(*m->ids))))
		return lama_error(LAMA_ENOMEM, "out of memory for vectors");
	m->ids = p;
	if (!(p = lama_realloc(m->topic, cap * sizeof(*m->topic))))
		return lama_error(LAMA_ENOMEM, "out of memory for vectors");
	m->topic = p;
	m->cap = cap;
	return 0;
}

/* Ids are SHA-256 names, but tests and callers may use structured ones:
 * all 32 bytes folded, then mixed (the finalizer of MurmurHash3). */
static size_t id_hash(const lama_hash *id)
{
	uint64_t h = 0, w;

	for (int i = 0; i < 4; i++) {
		memcpy(&w, id->b + 8 * i, 8);
		h ^= w + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		h ^= h >> 33;
		h *= 0xff51afd7ed558ccdULL;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (size_t)h;
}

static const lama_hash *slot_id(const lama_vector *v, const struct slot *s)
{
	return &v->m[s->model - 1].ids[s->idx];
}

/* The slot holding id, or the empty one where it would go. */
static size_t map_find(const lama_vector *v, const lama_hash *id)
{
	size_t mask = v->mapcap - 1, i = id_hash(id) & mask;

	while (v->map[i].model && memcmp(slot_id(v, &v->map[i])->b, id->b, 32))
		i = (i + 1) & mask;
	return i;
}

static const struct slot *map_get(const lama_vector *v, const lama_hash *id)
{
	size_t i;

	if (!v->mapcap)
		return NULL;
	i = map_find(v, id);
	return v->map[i].model ? &v->map[i] : NULL;
}

/* Room for `more` entries at most half full: lookups stay short. */
static int map_reserve(lama_vector *v, size_t more)
{
	size_t cap = v->mapcap ? v->mapcap : 1024, need = v->mapn + more;
	struct slot *old = v->map, *nw;
	size_t oldcap = v->mapcap;

	while (cap / 2 < need)
		cap *= 2;
	if (cap == v->mapcap)
		return 0;
	nw = lama_calloc(cap, sizeof(*nw));
	if (!nw)
		return lama_error(LAMA_ENOMEM, "out of memory for the id map");
	v->map = nw;
	v->mapcap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].model)
			v->map[map_find(v, slot_id(v, &old[i]))] = old[i];
	lama_free(old);
	return 0;
}

/* Empties map slot i and moves later entries of its run back. */
static void map_del(lama_vector *v, size_t i)
{
	size_t mask = v->mapcap - 1, j = i;

	v->map[i].model = 0;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!v->map[j].model)
			return;
		home = id_hash(slot_id(v, &v->map[j])) & mask;
		/* j's entry may fill i when its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			v->map[i] = v->map[j];
			v->map[j].model = 0;
			i = j;
		}
	}
}

/* Takes an item out of memory: its map slot, and its place in its model,
 * which the model's last item takes. */
static void mem_remove(lama_vector *v, size_t pos)
{
	struct slot s = v->map[pos];
	struct model *m = &v->m[s.model - 1];
	size_t last = m->n - 1;

	map_del(v, pos);
	if (s.idx != last) {
		memcpy(m->vec + (size_t)s.idx * m->stride, m->vec + last * m->stride,
		       m->stride * sizeof(float));
		m->ids[s.idx] = m->ids[last];
		memcpy(m->topic[s.idx], m->topic[last], TOPIC_TAG);
		v->map[map_find(v, &m->ids[s.idx])].idx = s.idx;
	}
	lama_wipe(m->vec + last * m->stride, m->stride * sizeof(float));
	m->n--;
	v->floats -= m->stride;
	v->mapn--;
}

/* Frees the models left empty (their slots serve other models), after a
 * whole batch: one emptied in the middle may still be a later item's. */
static void sweep_models(lama_vector *v)
{
	for (size_t i = 0; i < v->nm; i++)
		if (v->m[i].name[0] && v->m[i].n == 0)
			model_free(&v->m[i]);
}

static void topic_tag(lama_vector *v, const char *topic, size_t n, uint8_t out[TOPIC_TAG])
{
	crypto_shorthash_siphashx24(out, (const unsigned char *)topic, n, v->k->topic);
}

/* 0 and the normalized copy in out[0..stride) (zero padded), or
 * LAMA_EINVAL for a NaN, an infinity or a zero vector. */
static int normalize(const float *in, uint32_t dim, uint32_t stride, float *out, const char *what)
{
	double ss = 0, norm;

	for (uint32_t i = 0; i < dim; i++) {
		if (!isfinite(in[i]))
			return lama_error(LAMA_EINVAL, "vector: %s has a NaN or infinite component",
					  what);
		ss += (double)in[i] * in[i];
	}
	norm = sqrt(ss);
	if (!(norm > 0) || !isfinite(norm))
		return lama_error(LAMA_EINVAL, "vector: %s is a zero vector", what);
	if (out) {
		for (uint32_t i = 0; i < dim; i++)
			out[i] = (float)(in[i] / norm);
		for (uint32_t i = dim; i < stride; i++)
			out[i] = 0;
	}
	return 0;
}

/* Writes an item into memory, where room was reserved: over the old one
 * of the same id and model, else appended (the old one, under another
 * model, removed). */
static void mem_put(lama_vector *v, struct model *m, const lama_hash *id, const float *vec,
		    const uint8_t topic[TOPIC_TAG])
{
	size_t pos = map_find(v, id);
	uint32_t idx;

	if (v->map[pos].model && &v->m[v->map[pos].model - 1] == m) {
		idx = v->map[pos].idx;
	} else {
		if (v->map[pos].model) {
			mem_remove(v, pos);
			pos = map_find(v, id);
		}
		idx = (uint32_t)m->n++;
		v->map[pos].model = (uint32_t)(m - v->m) + 1;
		v->map[pos].idx = idx;
		v->mapn++;
		v->floats += m->stride;
		m->ids[idx] = *id;
	}
	/* normalize cannot fail here: the item was checked */
	(void)normalize(vec, m->dim, m->stride, m->vec + (size_t)idx * m->stride, "an item");
	memcpy(m->topic[idx], topic, TOPIC_TAG);
}

/* ---- sealed rows ---- */

static void tag_of_id(lama_vector *v, const lama_hash *id, uint8_t tag[32])
{
	uint8_t in[1 + 32];

	in[0] = 'v';
	memcpy(in + 1, id->b, 32);
	lama_keyed_hash(tag, in, sizeof(in), v->k->row);
}

static void seal_ad(uint8_t ad[sizeof(SEAL_AD) - 1 + 32], const uint8_t tag[32])
{
	memcpy(ad, SEAL_AD, sizeof(SEAL_AD) - 1);
	memcpy(ad + sizeof(SEAL_AD) - 1, tag, 32);
}

/* Seals an item under its tag into b (reset). The plaintext:
 *   version(1) id(32) model_len(1) model topic_len(1) topic dim(u32 BE)
 *   dim x float32 (IEEE 754, little-endian) */
static int seal_item(lama_vector *v, const struct lama_vector_item *it, const uint8_t tag[32],
		     struct lama_buf *b)
{
	size_t ml = strlen(it->model), tl = strlen(it->topic);
	size_t n = 1 + 32 + 1 + ml + 1 + tl + 4 + 4 * (size_t)it->dim;
	uint8_t *p, *q, ad[sizeof(SEAL_AD) - 1 + 32];
	int rc;

	lama_buf_truncate(b, 0);
	/* the plaintext goes after the room for the sealed copy */
	if ((rc = lama_buf_grow(b, 2 * n + LAMA_AEAD_OVERHEAD)))
		return rc;
	p = q = (uint8_t *)b->data + n + LAMA_AEAD_OVERHEAD;
	*q++ = SEAL_VERSION;
	memcpy(q, it->id.b, 32);
	q += 32;
	*q++ = (uint8_t)ml;
	memcpy(q, it->model, ml);
	q += ml;
	*q++ = (uint8_t)tl;
	memcpy(q, it->topic, tl);
	q += tl;
	*q++ = (uint8_t)(it->dim >> 24);
	*q++ = (uint8_t)(it->dim >> 16);
	*q++ = (uint8_t)(it->dim >> 8);
	*q++ = (uint8_t)it->dim;
	for (uint32_t i = 0; i < it->dim; i++) {
		uint32_t w;

		memcpy(&w, &it->vec[i], 4);
		for (int j = 0; j < 4; j++)
			*q++ = (uint8_t)(w >> (8 * j));
	}
	seal_ad(ad, tag);
	rc = lama_aead_seal((uint8_t *)b->data, p, n, ad, sizeof(ad), v->k->seal);
	lama_wipe(p, n);
	if (rc)
		return rc;
	b->len = n + LAMA_AEAD_OVERHEAD;
	return 0;
}

/* An opened row: pointers into the plaintext. */
struct rec {
	lama_hash id;
	char model[LAMA_VECTOR_MODEL_MAX + 1];
	const char *topic;
	size_t topic_len;
	uint32_t dim;
	float *vec; /* in the plaintext buffer, converted in place */
};

static int model_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > LAMA_VECTOR_MODEL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

#define BAD_ROW "vector index: a sealed vector is malformed: delete the index and embed again"

/* Opens a row into b (its plaintext, aligned for floats) and parses it. */
static int open_row(lama_vector *v, const void *sealed, size_t n, const void *tag, size_t taglen,
		    struct lama_buf *b, struct rec *r)
{
	uint8_t ad[sizeof(SEAL_AD) - 1 + 32], chk[32];
	const uint8_t *p, *e;
	size_t ml, pl;
	int rc;

	if (taglen != 32)
		return lama_error(LAMA_ECORRUPT, "vector index: a row has a bad tag: delete the index and embed again");
	if (n < LAMA_AEAD_OVERHEAD + 1 + 32 + 1 + 1 + 1 + 1 + 4 + 4 || n > LAMA_AEAD_OVERHEAD + REC_MAX)
		return lama_error(LAMA_ECORRUPT, "vector index: a sealed vector has a bad size: delete the index and embed again");
	/* a buffer too small for this row is freed wiped, not moved by
	 * realloc with the last row's plaintext in it */
	if (b->cap < n + 1)
		lama_buf_release_wipe(b);
	lama_buf_truncate(b, 0);
	if ((rc = lama_buf_grow(b, n)))
		return rc;
	seal_ad(ad, tag);
	if (lama_aead_open((uint8_t *)b->data, sealed, n, ad, sizeof(ad), v->k->seal))
		return lama_error(LAMA_ECRYPTO, "vector index: a sealed vector fails to open (tampered, or moved to another row): delete the index and embed again");
	pl = n - LAMA_AEAD_OVERHEAD;
	b->len = pl;
	p = (const uint8_t *)b->data;
	e = p + pl;
	if (p[0] != SEAL_VERSION)
		return lama_error(LAMA_ECORRUPT, BAD_ROW);
	memcpy(r->id.b, p + 1, 32);
	p += 33;
	ml = *p++;
	if (ml + 1 > (size_t)(e - p) || !model_name_ok((const char *)p, ml))
		return lama_error(LAMA_ECORRUPT, BAD_ROW);
	memcpy(r->model, p, ml);
	r->model[ml] = 0;
	p += ml;
	r->topic_len = *p++;
	if (r->topic_len == 0 || r->topic_len > LAMA_VECTOR_TOPIC_MAX ||
	    r->topic_len + 4 > (size_t)(e - p) ||
	    memchr(p, 0, r->topic_len))
		return lama_error(LAMA_ECORRUPT, BAD_ROW);
	r->topic = (const char *)p;
	p += r->topic_len;
	r->dim = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	p += 4;
	if (r->dim == 0 || r->dim > LAMA_VECTOR_DIM_MAX || (size_t)(e - p) != 4 * (size_t)r->dim)
		return lama_error(LAMA_ECORRUPT, BAD_ROW);
	tag_of_id(v, &r->id, chk);
	if (lama_memcmp_ct(chk, tag, 32))
		return lama_error(LAMA_ECORRUPT, "vector index: a sealed vector is in the wrong row: delete the index and embed again");
	/* the components, little-endian, are not aligned in the plaintext:
	 * moved to the front of the buffer (the head was copied out above,
	 * save the topic, which is moved after them) */
	{
		size_t off = (size_t)(p - (const uint8_t *)b->data), tl = r->topic_len;
		uint8_t *base = (uint8_t *)b->data;
		char topic[LAMA_VECTOR_TOPIC_MAX];

		memcpy(topic, r->topic, tl);
		memmove(base, base + off, 4 * (size_t)r->dim);
		for (uint32_t i = 0; i < r->dim; i++) {
			uint8_t *c = base + 4 * (size_t)i;
			uint32_t w = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 |
				     (uint32_t)c[3] << 24;

			memcpy(c, &w, 4);
		}
		memcpy(base + 4 * (size_t)r->dim, topic, tl);
		lama_wipe(topic, tl);
		r->vec = (float *)(void *)base; /* lama_buf data is malloc'd: aligned */
		r->topic = (const char *)base + 4 * (size_t)r->dim;
	}
	return 0;
}

/* ---- opening ---- */

static int user_version(lama_vector *v, int *ver)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(v->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ver = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : sql_fail(v, rc, "reading the version");
}

static int create_schema(lama_vector *v, const char *path)
{
	int rc, ver = 0;

	if ((rc = user_version(v, &ver)))
		return rc;
	if (ver == SCHEMA_VERSION)
		return 0;
	if (ver != 0)
		return lama_error(LAMA_ECORRUPT, "%s is not a vector index of this version", path);
	rc = sqlite3_exec(v->db, "BEGIN IMMEDIATE;"
			  "CREATE TABLE vecs(rowid INTEGER PRIMARY KEY, tag BLOB NOT NULL UNIQUE,"
			  " seq INTEGER NOT NULL, sealed BLOB NOT NULL);"
			  "CREATE INDEX vecs_seq ON vecs(seq);"
			  "CREATE TABLE gone(rowid INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"
			  " sealed BLOB NOT NULL);"
			  "CREATE INDEX gone_seq ON gone(seq);"
			  "CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;"
			  "INSERT INTO meta(k, v) VALUES('seq', 0), ('pruned', 0);"
			  "PRAGMA user_version=1;"
			  "COMMIT;", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return 0;
	sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	/* another process may have made it meanwhile */
	if (user_version(v, &ver) == 0 && ver == SCHEMA_VERSION)
		return 0;
	return sql_fail(v, rc, "creating the index");
}

/* The file remembers a keyed hash of a constant: another key is told
 * apart from a tampered row. */
static int check_key(lama_vector *v)
{
	uint8_t want[32];
	sqlite3_stmt *st = NULL;
	int rc, found = 0, same = 0;

	lama_keyed_hash(want, CHECK_MSG, sizeof(CHECK_MSG) - 1, v->k->row);
	rc = sqlite3_prepare_v2(v->db, "SELECT v FROM meta WHERE k = 'key'", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		found = 1;
		same = sqlite3_column_bytes(st, 0) == 32 &&
		       !lama_memcmp_ct(sqlite3_column_blob(st, 0), want, 32);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_fail(v, rc, "reading the key check");
	if (found)
		return same ? 0 : lama_error(LAMA_ECRYPTO, "vector index: made with another key");
	st = NULL;
	rc = sqlite3_prepare_v2(v->db, "INSERT OR IGNORE INTO meta(k, v) VALUES('key', ?1)", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, want, 32, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(v, rc, "writing the key check");
}

static int count_rows(lama_vector *v, uint64_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(v->db, "SELECT count(*) FROM vecs", -1, &st, NULL);

	*n = 0;
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : sql_fail(v, rc, "counting");
}

/* apply_row and read_rows, in a refresh only: memory between two of the
 * other connection's writes would pass a limit, read the whole file. */
#define NEED_RELOAD 1

/* Puts an opened row into memory (at load or refresh), checked as a row
 * from the file must be. A refresh reads the rows written since, each as
 * it is now, on top of an older copy: a row may name a model while
 * another item, whose own row comes later, still holds that model's old
 * dimension or the last free model place in memory, so there a limit
 * passed is NEED_RELOAD, not damage (a fresh read checks it truly). */
static int apply_row(lama_vector *v, const struct rec *r, int fresh)
{
	struct model *m;
	const struct slot *s;
	uint8_t tt[TOPIC_TAG];
	uint32_t cur;
	int rc;

	s = fresh ? NULL : map_get(v, &r->id);
	if (fresh && map_get(v, &r->id))
		return lama_error(LAMA_ECORRUPT, BAD_ROW);
	if (normalize(r->vec, r->dim, r->dim, NULL, "a row"))
		return lama_error(LAMA_ECORRUPT, BAD_ROW);
	if (!s && v->mapn >= LAMA_VECTOR_COUNT_MAX)
		return fresh ? lama_error(LAMA_ECORRUPT, "vector index: over %d items",
					  LAMA_VECTOR_COUNT_MAX) : NEED_RELOAD;
	/* models emptied by the rows before (moved items) free their places
	 * and names now: this row may bring one back with another dimension */
	if (!fresh)
		sweep_models(v);
	if (!(m = find_model(v, r->model)) && !(m = model_new(v, r->model, r->dim)))
		return fresh ? lama_error(LAMA_ECORRUPT, "vector index: over %d models",
					  LAMA_VECTOR_MODELS_MAX) : NEED_RELOAD;
	if (m->dim != r->dim)
		return fresh ? lama_error(LAMA_ECORRUPT, BAD_ROW) : NEED_RELOAD;
	/* an item replaced gives its old place back */
	cur = s ? v->m[s->model - 1].stride : 0;
	if (v->floats - cur + m->stride > LAMA_VECTOR_FLOATS_MAX)
		return fresh ? lama_error(LAMA_ECORRUPT, "vector index: over %llu components",
					  (unsigned long long)LAMA_VECTOR_FLOATS_MAX) : NEED_RELOAD;
	if ((rc = model_reserve(m, m->n + 1)) || (rc = map_reserve(v, 1)))
		return rc;
	topic_tag(v, r->topic, r->topic_len, tt);
	mem_put(v, m, &r->id, r->vec, tt);
	return 0;
}

/* Reads the rows written after seq `after` (all: -1) into memory, in the
 * order they were written. NEED_RELOAD as apply_row. */
static int read_rows(lama_vector *v, sqlite3_int64 after, int fresh)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_AEAD_OVERHEAD + REC_MAX + 1);
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(v->db, "SELECT tag, sealed FROM vecs WHERE seq > ?1 ORDER BY seq, rowid", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(v, rc, "reading");
	sqlite3_bind_int64(st, 1, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rec r;

		if ((rc = open_row(v, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
				   sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &b,
				   &r)) ||
		    (rc = apply_row(v, &r, fresh)))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sql_fail(v, rc, "reading");
out:
	sqlite3_finalize(st);
	lama_buf_release_wipe(&b);
	return rc;
}

#define GONE_AD "lama vector gone v1"
#define GONE_MAX 10000   /* tombstones kept; past it the older half goes */

/* Takes out of memory the items removed after seq `after`: each removal
 * leaves a tombstone, the removed id sealed (so the file names no id). */
static int read_gone(lama_vector *v, sqlite3_int64 after)
{
	sqlite3_stmt *st = NULL;
	uint8_t id[32];
	int rc;

	rc = sqlite3_prepare_v2(v->db, "SELECT sealed FROM gone WHERE seq > ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(v, rc, "reading");
	sqlite3_bind_int64(st, 1, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		lama_hash h;

		if (sqlite3_column_bytes(st, 0) != 32 + LAMA_AEAD_OVERHEAD ||
		    lama_aead_open(id, sqlite3_column_blob(st, 0), 32 + LAMA_AEAD_OVERHEAD, GONE_AD,
				   sizeof(GONE_AD) - 1, v->k->seal)) {
			rc = lama_error(LAMA_ECRYPTO, "vector index: a removal record fails to open (tampered): delete the index and embed again");
			goto out;
		}
		memcpy(h.b, id, 32);
		if (v->mapcap) {
			size_t pos = map_find(v, &h);

			if (v->map[pos].model)
				mem_remove(v, pos);
		}
	}
	rc = rc == SQLITE_DONE ? 0 : sql_fail(v, rc, "reading");
out:
	sqlite3_finalize(st);
	return rc;
}

/* meta 'seq' (the file's write count) and 'pruned' (the last write whose
 * tombstones are gone). */
static int read_meta(lama_vector *v, sqlite3_int64 *seq, sqlite3_int64 *pruned)
{
	sqlite3_stmt *st = v->st[S_META];
	int rc;

	sqlite3_reset(st);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		*pruned = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return sql_fail(v, rc, "reading the write count");
	return *seq >= 0 && *pruned >= 0 && *pruned <= *seq ? 0 :
	       lama_error(LAMA_ECORRUPT, "vector index: a bad write count: delete the index and embed again");
}

static int count_rows_max(lama_vector *v)
{
	uint64_t rows;
	int rc = count_rows(v, &rows);

	if (rc)
		return rc;
	if (rows > LAMA_VECTOR_COUNT_MAX)
		return lama_error(LAMA_ECORRUPT, "vector index: over %d items", LAMA_VECTOR_COUNT_MAX);
	return map_reserve(v, (size_t)rows);
}

static void mem_free(lama_vector *v)
{
	for (size_t i = 0; i < v->nm; i++)
		model_free(&v->m[i]);
	lama_free(v->map);
	v->map = NULL;
	v->nm = v->mapcap = v->mapn = 0;
	v->floats = 0;
}

static int data_version(lama_vector *v, sqlite3_int64 *dv)
{
	sqlite3_stmt *st = v->st[S_VERSION];
	int rc;

	sqlite3_reset(st);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*dv = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sql_fail(v, rc, "reading the data version");
}

/* Reads the whole file into a new state, swapped in only when whole (a
 * failure leaves the old one). Runs inside a transaction (one snapshot). */
static int reload(lama_vector *v, sqlite3_int64 seq)
{
	lama_vector *t;
	int rc;

	t = lama_calloc(1, sizeof(*t));
	if (!t)
		return lama_error(LAMA_ENOMEM, "out of memory");
	t->db = v->db;
	t->k = v->k;
	if ((rc = count_rows_max(t)) || (rc = read_rows(t, -1, 1))) {
		mem_free(t);
		lama_free(t);
		return rc;
	}
	mem_free(v);
	memcpy(v->m, t->m, sizeof(v->m));
	v->nm = t->nm;
	v->map = t->map;
	v->mapcap = t->mapcap;
	v->mapn = t->mapn;
	v->floats = t->floats;
	v->seq = seq;
	lama_free(t);
	return 0;
}

/* Brings memory up to the file when another connection (another index
 * worker) committed since: the rows written and the tombstones left after
 * the write count memory is in step with, or the whole file when the
 * tombstones needed were pruned. Applying them is idempotent, so a
 * failure half-way is mended by the next call, which starts from the
 * same write count. Reads in one snapshot: in the caller's transaction,
 * or in one of its own. */
static int refresh(lama_vector *v)
{
	sqlite3_int64 dv = 0, seq = 0, pruned = 0;
	int rc, own = sqlite3_get_autocommit(v->db);

	if ((rc = data_version(v, &dv)))
		return rc;
	if (dv == v->dv)
		return 0;
	if (own && (rc = exec(v, "BEGIN", "beginning")))
		return rc;
	if ((rc = read_meta(v, &seq, &pruned)))
		goto out;
	if (seq < v->seq) {
		rc = lama_error(LAMA_ECORRUPT, "vector index: the write count went back: delete the index and embed again");
		goto out;
	}
	if (pruned > v->seq) {
		rc = reload(v, seq);
	} else if (seq > v->seq) {
		/* models emptied by the removals free their places first: the
		 * rows may bring others */
		if ((rc = read_gone(v, v->seq)))
			goto out;
		sweep_models(v);
		rc = read_rows(v, v->seq, 0);
		if (rc == NEED_RELOAD) {
			rc = reload(v, seq);
		} else if (!rc) {
			sweep_models(v);
			v->seq = seq;
		}
	}
out:
	if (own)
		sqlite3_exec(v->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
	if (!rc)
		v->dv = dv;
	return rc;
}

/* The first read of the file, at open. */
static int load(lama_vector *v)
{
	sqlite3_int64 pruned;
	int rc;

	if ((rc = exec(v, "BEGIN", "beginning")))
		return rc;
	if (!(rc = read_meta(v, &v->seq, &pruned)) && !(rc = count_rows_max(v)))
		rc = read_rows(v, -1, 1);
	sqlite3_exec(v->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
	return rc;
}

int lama_vector_refresh(lama_vector *v)
{
	return refresh(v);
}

int lama_vector_open_at(const char *path, const uint8_t key[LAMA_KEY_BYTES], lama_vector **out)
{
	lama_vector *v;
	int rc, fd;

	*out = NULL;
	if (!path || !key)
		return lama_error(LAMA_EINVAL, "vector: no path or key");
	v = lama_calloc(1, sizeof(*v));
	if (!v)
		return lama_error(LAMA_ENOMEM, "out of memory");
	v->k = lama_secure_alloc(sizeof(*v->k));
	if (!v->k) {
		rc = lama_error(LAMA_ENOMEM, "out of secure memory");
		goto fail;
	}
	lama_kdf_derive(v->k->row, 1, "lamavrow", key);
	lama_kdf_derive(v->k->seal, 2, "lamavsea", key);
	lama_random(v->k->topic, sizeof(v->k->topic));
	/* created here so that SQLite gives the -wal and -shm files 0600 too */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = lama_error(LAMA_EIO, "cannot open vector index %s: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	rc = sqlite3_open_v2(path, &v->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = lama_error(rc == SQLITE_NOMEM ? LAMA_ENOMEM : LAMA_EIO,
				"cannot open vector index %s: %s", path,
				v->db ? sqlite3_errmsg(v->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(v->db, 5000);
	/* a cache: a commit lost to a power cut is embedded again (NORMAL);
	 * secure_delete: a replaced row's old bytes are zeroed in the file */
	if ((rc = exec(v, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		       "PRAGMA temp_store=MEMORY; PRAGMA secure_delete=ON;", "opening")))
		goto fail;
	if ((rc = create_schema(v, path)) || (rc = check_key(v)))
		goto fail;
	for (int i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(v->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &v->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			rc = sql_fail(v, rc, "prepare");
			goto fail;
		}
	}
	/* the version first: a commit during the load is read again later */
	if ((rc = data_version(v, &v->dv)) || (rc = load(v)))
		goto fail;
	*out = v;
	return 0;
fail:
	lama_vector_close(v);
	return rc;
}

int lama_vector_key(lama_session *s, uint8_t key[LAMA_KEY_BYTES])
{
	int rc = lama_session_subkey(s, 1, "lamavect", key);

	if (rc)
		lama_wipe(key, LAMA_KEY_BYTES);
	return rc;
}

int lama_vector_open(lama_session *s, lama_vector **out)
{
	char path[4096];
	uint8_t *k;
	int rc;

	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/vectors.db", lama_session_dir(s)) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "path too long");
	k = lama_secure_alloc(LAMA_KEY_BYTES);
	if (!k)
		return lama_error(LAMA_ENOMEM, "out of secure memory");
	rc = lama_vector_key(s, k);
	if (!rc)
		rc = lama_vector_open_at(path, k, out);
	lama_secure_free(k);
	return rc;
}

void lama_vector_close(lama_vector *v)
{
	if (!v)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(v->st[i]);
	sqlite3_close_v2(v->db);
	mem_free(v);
	lama_secure_free(v->k);
	lama_free(v);
}

/* ---- writing ---- */

/* The rules of one item, before anything is written. */
static int check_item(const struct lama_vector_item *it, size_t i)
{
	char what[32];
	size_t tl;

	if (!it->topic || !it->model || !it->vec)
		return lama_error(LAMA_EINVAL, "vector: item %zu needs a topic, a model and a vector", i);
	tl = strnlen(it->topic, LAMA_VECTOR_TOPIC_MAX + 1);
	if (tl == 0 || tl > LAMA_VECTOR_TOPIC_MAX)
		return lama_error(LAMA_EINVAL, "vector: item %zu: a topic id has 1 to %d bytes", i,
				  LAMA_VECTOR_TOPIC_MAX);
	if (!model_name_ok(it->model, strnlen(it->model, LAMA_VECTOR_MODEL_MAX + 1)))
		return lama_error(LAMA_EINVAL, "vector: item %zu: a model name has 1 to %d printable ASCII characters",
				  i, LAMA_VECTOR_MODEL_MAX);
	if (it->dim == 0 || it->dim > LAMA_VECTOR_DIM_MAX)
		return lama_error(LAMA_EINVAL, "vector: item %zu: a dimension is 1 to %d", i,
				  LAMA_VECTOR_DIM_MAX);
	snprintf(what, sizeof(what), "item %zu", i);
	return normalize(it->vec, it->dim, it->dim, NULL, what);
}


/* Records the write count of the transaction under way. */
static int set_seq(lama_vector *v, sqlite3_int64 seq)
{
	sqlite3_stmt *st = v->st[S_SETSEQ];
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(v, rc, "writing the write count");
}

/* Keeps the tombstones under GONE_MAX: the older half goes, and 'pruned'
 * tells a connection that is further behind to read the whole file. */
static int prune_gone(lama_vector *v)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 cut = -1;
	uint64_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(v->db, "SELECT count(*) FROM gone", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		n = (uint64_t)sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_OK)
		return sql_fail(v, rc, "counting removals");
	if (n <= GONE_MAX)
		return 0;
	rc = sqlite3_prepare_v2(v->db, "SELECT seq FROM gone ORDER BY seq DESC LIMIT 1 OFFSET ?1", -1,
				&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, GONE_MAX / 2);
		if ((rc = sqlite3_step(st)) == SQLITE_ROW)
			cut = sqlite3_column_int64(st, 0);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_OK && cut >= 0)
		rc = sqlite3_prepare_v2(v->db, "DELETE FROM gone WHERE seq <= ?1", -1, &st, NULL);
	if (rc == SQLITE_OK && st) {
		sqlite3_bind_int64(st, 1, cut);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_finalize(st);
		st = NULL;
		if (rc == SQLITE_OK)
			rc = sqlite3_prepare_v2(v->db, "UPDATE meta SET v = max(v, ?1) WHERE k = 'pruned'",
						-1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, cut);
			rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		}
		sqlite3_finalize(st);
	}
	return rc == SQLITE_OK ? 0 : sql_fail(v, rc, "pruning removals");
}

int lama_vector_put_batch(lama_vector *v, const struct lama_vector_item *it, size_t n)
{
	/* room for a record and its sealed copy (seal_item) */
	struct lama_buf sealed = LAMA_BUF_INIT(2 * (LAMA_AEAD_OVERHEAD + REC_MAX) + 1);
	size_t per[LAMA_VECTOR_MODELS_MAX] = { 0 };
	struct model **dst = NULL;
	uint64_t newids = 0, newfloats = 0;
	uint8_t tag[32];
	int rc = 0, began = 0;

	if (n > LAMA_VECTOR_BATCH_MAX)
		return lama_error(LAMA_ELIMIT, "vector: at most %d items in a batch", LAMA_VECTOR_BATCH_MAX);
	if (n && !it)
		return lama_error(LAMA_EINVAL, "vector: no items");
	for (size_t i = 0; i < n; i++)
		if ((rc = check_item(&it[i], i)))
			return rc;
	if (n == 0)
		return 0;
	dst = lama_calloc(n, sizeof(*dst));
	if (!dst)
		return lama_error(LAMA_ENOMEM, "out of memory");
	/* the write lock first, then memory brought up to the file: no other
	 * writer can come between what memory says and what is written */
	if ((rc = exec(v, "BEGIN IMMEDIATE", "beginning")))
		goto out;
	began = 1;
	if ((rc = refresh(v)))
		goto out;
	/* each item's model (new ones made now, empty), dimensions agreeing */
	for (size_t i = 0; i < n; i++) {
		struct model *m = find_model(v, it[i].model);
		const struct slot *s;

		if (!m) {
			if (live_models(v) == LAMA_VECTOR_MODELS_MAX ||
			    !(m = model_new(v, it[i].model, it[i].dim))) {
				rc = lama_error(LAMA_ELIMIT, "vector: at most %d models in an index",
						LAMA_VECTOR_MODELS_MAX);
				goto out;
			}
		}
		if (m->dim != it[i].dim) {
			rc = lama_error(LAMA_EINVAL, "vector: item %zu has %u dimensions, model %s has %u",
					i, it[i].dim, m->name, m->dim);
			goto out;
		}
		dst[i] = m;
		per[m - v->m]++;
		s = map_get(v, &it[i].id);
		/* counted as new unless it replaces one of the same model
		 * (a repeat inside the batch counts twice: a bound, not a count) */
		if (!s)
			newids++;
		if (!s || &v->m[s->model - 1] != m)
			newfloats += m->stride;
	}
	if (v->mapn + newids > LAMA_VECTOR_COUNT_MAX) {
		rc = lama_error(LAMA_ELIMIT, "vector: an index holds at most %d items",
				LAMA_VECTOR_COUNT_MAX);
		goto out;
	}
	if (v->floats + newfloats > LAMA_VECTOR_FLOATS_MAX) {
		rc = lama_error(LAMA_ELIMIT, "vector: an index holds at most %llu components",
				(unsigned long long)LAMA_VECTOR_FLOATS_MAX);
		goto out;
	}
	/* all the memory the batch needs, before the file changes */
	for (size_t i = 0; i < v->nm; i++)
		if (per[i] && (rc = model_reserve(&v->m[i], v->m[i].n + per[i])))
			goto out;
	if ((rc = map_reserve(v, (size_t)newids)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = v->st[S_PUT];

		tag_of_id(v, &it[i].id, tag);
		if ((rc = seal_item(v, &it[i], tag, &sealed)))
			goto out;
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, tag, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, sealed.data, (int)sealed.len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, v->seq + 1);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_DONE) {
			rc = sql_fail(v, rc, "writing a vector");
			goto out;
		}
		rc = 0;
	}
	if ((rc = set_seq(v, v->seq + 1)) || (rc = exec(v, "COMMIT", "committing")))
		goto out;
	began = 0;
	v->seq++;
	for (size_t i = 0; i < n; i++) {
		uint8_t tt[TOPIC_TAG];

		topic_tag(v, it[i].topic, strlen(it[i].topic), tt);
		mem_put(v, dst[i], &it[i].id, it[i].vec, tt);
	}
out:
	if (began)
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	/* a failed batch leaves its new models empty; a good one may have
	 * emptied some by moving their items */
	sweep_models(v);
	lama_buf_release_wipe(&sealed);
	lama_free(dst);
	return rc;
}

int lama_vector_put(lama_vector *v, const struct lama_vector_item *it)
{
	if (!it)
		return lama_error(LAMA_EINVAL, "vector: no item");
	return lama_vector_put_batch(v, it, 1);
}

int lama_vector_remove(lama_vector *v, const lama_hash *ids, size_t n, size_t *removed)
{
	sqlite3_stmt *st = v->st[S_DEL];
	uint8_t tag[32];
	size_t got = 0;
	int rc;

	if (removed)
		*removed = 0;
	if (n > LAMA_VECTOR_BATCH_MAX)
		return lama_error(LAMA_ELIMIT, "vector: at most %d ids to remove at once",
				  LAMA_VECTOR_BATCH_MAX);
	if (n == 0)
		return 0;
	if (!ids)
		return lama_error(LAMA_EINVAL, "vector: no ids");
	if ((rc = exec(v, "BEGIN IMMEDIATE", "beginning")))
		return rc;
	if ((rc = refresh(v))) {
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t gone[32 + LAMA_AEAD_OVERHEAD];
		sqlite3_stmt *g = v->st[S_GONE];

		tag_of_id(v, &ids[i], tag);
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, tag, 32, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			rc = sql_fail(v, rc, "removing a vector");
			goto fail;
		}
		if (sqlite3_changes(v->db) == 0)
			continue;
		/* a tombstone, for the other connections' memory */
		if ((rc = lama_aead_seal(gone, ids[i].b, 32, GONE_AD, sizeof(GONE_AD) - 1, v->k->seal)))
			goto fail;
		sqlite3_reset(g);
		sqlite3_bind_int64(g, 1, v->seq + 1);
		sqlite3_bind_blob(g, 2, gone, sizeof(gone), SQLITE_STATIC);
		rc = sqlite3_step(g);
		sqlite3_reset(g);
		if (rc != SQLITE_DONE) {
			rc = sql_fail(v, rc, "removing a vector");
			goto fail;
		}
	}
	if ((rc = prune_gone(v)) || (rc = set_seq(v, v->seq + 1)) ||
	    (rc = exec(v, "COMMIT", "committing")))
		goto fail;
	v->seq++;
	for (size_t i = 0; i < n; i++) {
		size_t pos;

		if (!v->mapcap)
			break;
		pos = map_find(v, &ids[i]);
		if (v->map[pos].model) {
			mem_remove(v, pos);
			got++;
		}
	}
	sweep_models(v);
	if (removed)
		*removed = got;
	return 0;
fail:
	sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

uint64_t lama_vector_count(lama_vector *v, const char *model)
{
	struct model *m;

	if (!model)
		return v->mapn;
	m = find_model(v, model);
	return m ? m->n : 0;
}

uint32_t lama_vector_dim(lama_vector *v, const char *model)
{
	struct model *m = model ? find_model(v, model) : NULL;

	return m ? m->dim : 0;
}

/* ---- queries ---- */

/* The dot product of two padded vectors: 4 x LANES independent sums (so
 * the compiler keeps them in SIMD registers without reordering a float
 * sum, and no add waits on the one before), added up in a fixed order:
 * the same result for the same two vectors, every time. */
typedef float lanes __attribute__((vector_size(LANES * sizeof(float))));

static inline float dot(const float *a, const float *b, uint32_t stride)
{
	lanes s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, x0, y0, x1, y1, x2, y2, x3, y3;
	uint32_t i = 0;
	float r = 0;

	for (; i + 4 * LANES <= stride; i += 4 * LANES) {
		memcpy(&x0, a + i, sizeof(x0));
		memcpy(&y0, b + i, sizeof(y0));
		memcpy(&x1, a + i + LANES, sizeof(x1));
		memcpy(&y1, b + i + LANES, sizeof(y1));
		memcpy(&x2, a + i + 2 * LANES, sizeof(x2));
		memcpy(&y2, b + i + 2 * LANES, sizeof(y2));
		memcpy(&x3, a + i + 3 * LANES, sizeof(x3));
		memcpy(&y3, b + i + 3 * LANES, sizeof(y3));
		s0 += x0 * y0;
		s1 += x1 * y1;
		s2 += x2 * y2;
		s3 += x3 * y3;
	}
	for (; i < stride; i += LANES) {
		memcpy(&x0, a + i, sizeof(x0));
		memcpy(&y0, b + i, sizeof(y0));
		s0 += x0 * y0;
	}
	s0 += s1;
	s2 += s3;
	s0 += s2;
	for (int j = 0; j < LANES; j++)
		r += s0[j];
	return r;
}

struct cand {
	float s;
	uint32_t idx;
};

/* 1 if a ranks below b: a lower score, or the same and a larger id. */
static inline int worse(const struct model *m, struct cand a, struct cand b)
{
	if (a.s != b.s)
		return a.s < b.s;
	return memcmp(m->ids[a.idx].b, m->ids[b.idx].b, 32) > 0;
}

/* A min-heap of the k best so far, the worst at the root. */
static void sift_down(const struct model *m, struct cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, w = i;

		if (l < n && worse(m, h[l], h[w]))
			w = l;
		if (r < n && worse(m, h[r], h[w]))
			w = r;
		if (w == i)
			return;
		struct cand t = h[i];

		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

static void sift_up(const struct model *m, struct cand *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!worse(m, h[i], h[p]))
			return;
		struct cand t = h[i];

		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

int lama_vector_query(lama_vector *v, const char *model, const float *q, uint32_t dim, size_t k,
		      const char *topic, struct lama_vector_hit *hits, size_t *n)
{
	struct model *m;
	struct cand *h = NULL;
	float *qn = NULL;
	uint8_t tt[TOPIC_TAG];
	size_t nh = 0, tl = 0;
	int rc;

	*n = 0;
	if (!model || !model_name_ok(model, strnlen(model, LAMA_VECTOR_MODEL_MAX + 1)))
		return lama_error(LAMA_EINVAL, "vector: a model name has 1 to %d printable ASCII characters",
				  LAMA_VECTOR_MODEL_MAX);
	if (k == 0 || k > LAMA_VECTOR_K_MAX)
		return lama_error(LAMA_EINVAL, "vector: k is 1 to %d", LAMA_VECTOR_K_MAX);
	if (!q || dim == 0 || dim > LAMA_VECTOR_DIM_MAX)
		return lama_error(LAMA_EINVAL, "vector: a dimension is 1 to %d", LAMA_VECTOR_DIM_MAX);
	if (topic) {
		tl = strnlen(topic, LAMA_VECTOR_TOPIC_MAX + 1);
		if (tl == 0 || tl > LAMA_VECTOR_TOPIC_MAX)
			return lama_error(LAMA_EINVAL, "vector: a topic id has 1 to %d bytes",
					  LAMA_VECTOR_TOPIC_MAX);
	}
	if ((rc = normalize(q, dim, dim, NULL, "the query vector")))
		return rc;
	if ((rc = refresh(v)))
		return rc;
	m = find_model(v, model);
	if (!m || m->n == 0)
		return 0;
	if (dim != m->dim)
		return lama_error(LAMA_EINVAL, "vector: the query has %u dimensions, model %s has %u",
				  dim, m->name, m->dim);
	if (topic)
		topic_tag(v, topic, tl, tt);
	qn = lama_malloc(m->stride * sizeof(float));
	h = lama_malloc((k < m->n ? k : m->n) * sizeof(*h));
	if (!qn || !h) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	(void)normalize(q, dim, m->stride, qn, "the query vector");
	for (size_t i = 0; i < m->n; i++) {
		struct cand c;

		if (topic && memcmp(m->topic[i], tt, TOPIC_TAG))
			continue;
		c.s = dot(m->vec + i * m->stride, qn, m->stride);
		c.idx = (uint32_t)i;
		if (nh < k) {
			h[nh++] = c;
			sift_up(m, h, nh - 1);
		} else if (worse(m, h[0], c)) {
			h[0] = c;
			sift_down(m, h, nh, 0);
		}
	}
	/* best first: take the worst off the heap, filling from the back */
	for (size_t i = nh; i > 0; i--) {
		struct cand c = h[0];

		h[0] = h[i - 1];
		sift_down(m, h, i - 1, 0);
		hits[i - 1].id = m->ids[c.idx];
		hits[i - 1].score = c.s;
	}
	*n = nh;
	rc = 0;
out:
	if (qn)
		lama_wipe(qn, m->stride * sizeof(float));
	lama_free(qn);
	lama_free(h);
	return rc;
}
