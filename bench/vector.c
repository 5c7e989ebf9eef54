/* vector.c: the vector index (src/vector) against plain arrays and plain
 * SQLite, in the same run.
 *
 * --vectors (100,000) random vectors of --dim (384) components (uniform in
 * -1..1, deterministic), 50 topics, one model:
 *   vector.put_batch      vectors/s, batches of 1,000 (sealing, tags,
 *                         WAL), baseline: the same float bytes inserted
 *                         raw into a plain SQLite table (id, blob) with
 *                         the same pragmas and transactions
 *   vector.load           s to open the file (read, open and normalize
 *                         every row), baseline: reading the plain table's
 *                         blobs into one float array
 *   vector.memory         MiB the open index added to the process,
 *                         baseline: the bare float32 components
 *   vector.query.p50/p99  ms for a top-10 query (exact, every vector
 *                         scored), --queries (200) random queries, against
 *                         the bare loop: a plain float array of the same
 *                         normalized vectors, one dot product per vector
 *                         (the obvious scalar loop) and a top-10 kept by
 *                         insertion; the two alternate, query by query
 *   vector.query.p50.vs_simd_loop  the same lama figure against the bare
 *                         loop with 4 x 8 independent sums (SIMD), keeping
 *                         only the best: the floor of a float32 scan
 *   vector.query.after_other_put.p50  a query just after another
 *                         connection (a second index worker) put one
 *                         vector: the row read and applied first, against
 *                         the same query with nothing changed
 *   vector.query.topic.p50  the same with a topic filter (1/50 of the
 *                         vectors scored), baseline the unfiltered query */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "crypto/crypto.h"
#include "util/err.h"
#include "vector/vector.h"

#define BATCH 1000
#define TOPICS 50
#define K 10

static uint64_t seed = 0x7ec7;

static uint64_t rnd64(void)
{
	seed ^= seed >> 12;
	seed ^= seed << 25;
	seed ^= seed >> 27;
	return seed * 0x2545F4914F6CDD1DULL;
}

static float frand(void)
{
	return (float)((double)(rnd64() >> 11) / 9007199254740992.0 * 2 - 1);
}

static lama_hash id_of(size_t i)
{
	lama_hash h;

	lama_sha256(&i, sizeof(i), &h);
	return h;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	qsort(v, n, sizeof(*v), cmp_double);
	return v[i];
}

static void sql(sqlite3 *db, const char *s)
{
	if (sqlite3_exec(db, s, NULL, NULL, NULL) != SQLITE_OK)
		bench_fail("sqlite: %s", sqlite3_errmsg(db));
}

/* The bare loop: scalar dot products over a plain array, top-K by
 * insertion into a sorted array. Returns the best score (kept live). */
static float bare_query(const float *a, size_t n, uint32_t dim, const float *q)
{
	float best[K];
	size_t nb = 0;

	for (size_t i = 0; i < n; i++) {
		const float *x = a + i * dim;
		float s = 0;
		size_t j;

		for (uint32_t d = 0; d < dim; d++)
			s += x[d] * q[d];
		if (nb == K && s <= best[K - 1])
			continue;
		j = nb < K ? nb++ : K - 1;
		while (j > 0 && best[j - 1] < s) {
			best[j] = best[j - 1];
			j--;
		}
		best[j] = s;
	}
	return nb ? best[0] : 0;
}

/* The same with 4 x 8 independent sums (what the compiler turns into
 * SIMD without -ffast-math, unrolled so that the adds do not wait on each
 * other), no heap: the floor of a scan over float32. */
typedef float f8 __attribute__((vector_size(32)));

static float simd_query(const float *a, size_t n, uint32_t dim, const float *q)
{
	float best = -2;

	for (size_t i = 0; i < n; i++) {
		const float *x = a + i * dim;
		f8 acc = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 }, u, w;
		float s = 0;
		uint32_t d = 0;

		for (; d + 32 <= dim; d += 32) {
			f8 u1, w1, u2, w2, u3, w3;

			memcpy(&u, x + d, sizeof(u));
			memcpy(&w, q + d, sizeof(w));
			memcpy(&u1, x + d + 8, sizeof(u));
			memcpy(&w1, q + d + 8, sizeof(w));
			memcpy(&u2, x + d + 16, sizeof(u));
			memcpy(&w2, q + d + 16, sizeof(w));
			memcpy(&u3, x + d + 24, sizeof(u));
			memcpy(&w3, q + d + 24, sizeof(w));
			acc += u * w;
			a1 += u1 * w1;
			a2 += u2 * w2;
			a3 += u3 * w3;
		}
		acc += a1 + a2 + a3;
		for (; d + 8 <= dim; d += 8) {
			memcpy(&u, x + d, sizeof(u));
			memcpy(&w, q + d, sizeof(w));
			acc += u * w;
		}
		for (int j = 0; j < 8; j++)
			s += acc[j];
		for (; d < dim; d++)
			s += x[d] * q[d];
		if (s > best)
			best = s;
	}
	return best;
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	size_t nv = (size_t)atol(bench_opt(argc, argv, "vectors", "100000"));
	uint32_t dim = (uint32_t)atol(bench_opt(argc, argv, "dim", "384"));
	size_t nq = (size_t)atol(bench_opt(argc, argv, "queries", "200"));
	char dir[4096], path[4200], plain[4200], topics[TOPICS][16], extra[256];
	struct lama_vector_item *it;
	struct lama_vector_hit hits[K];
	double t0, t_lama, t_plain, *ql, *qb, *qt, *qs;
	float *vecs, *norm, *q, sink = 0;
	uint8_t key[32];
	lama_vector *v = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;
	long rss0, rss1;

	if (nv < K || dim == 0 || dim > LAMA_VECTOR_DIM_MAX || nq == 0)
		bench_fail("bad options");
	bench_check(lama_crypto_init(), "crypto init");
	bench_mkdtemp(tmp, "vector", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/vectors.db", dir);
	snprintf(plain, sizeof(plain), "%s/plain.db", dir);
	memset(key, 0x42, sizeof(key));
	vecs = malloc(nv * dim * sizeof(float));
	norm = malloc(nv * dim * sizeof(float));
	q = malloc((size_t)dim * sizeof(float));
	it = calloc(nv, sizeof(*it));
	ql = calloc(nq, sizeof(double));
	qb = calloc(nq, sizeof(double));
	qt = calloc(nq, sizeof(double));
	qs = calloc(nq, sizeof(double));
	if (!vecs || !norm || !q || !it || !ql || !qb || !qt || !qs)
		bench_fail("out of memory");
	for (int t = 0; t < TOPICS; t++)
		snprintf(topics[t], sizeof(topics[t]), "topic-%02d", t);
	for (size_t i = 0; i < nv; i++) {
		double ss = 0;

		for (uint32_t d = 0; d < dim; d++) {
			vecs[i * dim + d] = frand();
			ss += (double)vecs[i * dim + d] * vecs[i * dim + d];
		}
		for (uint32_t d = 0; d < dim; d++)
			norm[i * dim + d] = (float)(vecs[i * dim + d] / sqrt(ss));
		it[i] = (struct lama_vector_item){ id_of(i), topics[i % TOPICS], "all-minilm-l6-v2",
						   vecs + i * dim, dim };
	}

	/* put_batch, against raw inserts of the same bytes */
	fprintf(stderr, "vector: putting %zu vectors of %u dimensions\n", nv, dim);
	bench_check(lama_vector_open_at(path, key, &v), "open");
	t0 = bench_now();
	for (size_t i = 0; i < nv; i += BATCH)
		bench_check(lama_vector_put_batch(v, it + i, nv - i < BATCH ? nv - i : BATCH), "put");
	t_lama = bench_now() - t0;
	lama_vector_close(v);
	v = NULL;
	if (sqlite3_open(plain, &db) != SQLITE_OK)
		bench_fail("sqlite open");
	sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;"
	    "CREATE TABLE v(rowid INTEGER PRIMARY KEY, id BLOB UNIQUE, topic TEXT, vec BLOB)");
	if (sqlite3_prepare_v2(db, "INSERT INTO v(id, topic, vec) VALUES(?1, ?2, ?3)", -1, &st, NULL))
		bench_fail("prepare");
	t0 = bench_now();
	for (size_t i = 0; i < nv; i++) {
		if (i % BATCH == 0)
			sql(db, "BEGIN");
		sqlite3_bind_blob(st, 1, it[i].id.b, 32, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, it[i].topic, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, it[i].vec, (int)(dim * sizeof(float)), SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			bench_fail("insert: %s", sqlite3_errmsg(db));
		sqlite3_reset(st);
		if (i % BATCH == BATCH - 1 || i + 1 == nv)
			sql(db, "COMMIT");
	}
	t_plain = bench_now() - t0;
	sqlite3_finalize(st);
	snprintf(extra, sizeof(extra), "\"vectors\": %zu, \"dim\": %u, \"batch\": %d", nv, dim, BATCH);
	bench_emit("vector.put_batch", "vectors/s", (double)nv / t_lama, "sqlite.plain.insert",
		   (double)nv / t_plain, extra);

	/* load, against reading the plain table into an array */
	t0 = bench_now();
	if (sqlite3_prepare_v2(db, "SELECT vec FROM v", -1, &st, NULL))
		bench_fail("prepare");
	{
		size_t i = 0;
		float *back = malloc(nv * dim * sizeof(float));

		if (!back)
			bench_fail("out of memory");
		while (sqlite3_step(st) == SQLITE_ROW && i < nv) {
			memcpy(back + i * dim, sqlite3_column_blob(st, 0), dim * sizeof(float));
			i++;
		}
		sink += back[(nv - 1) * dim];
		free(back);
	}
	sqlite3_finalize(st);
	t_plain = bench_now() - t0;
	sqlite3_close(db);
	rss0 = bench_rss_kib();
	t0 = bench_now();
	bench_check(lama_vector_open_at(path, key, &v), "reopen");
	t_lama = bench_now() - t0;
	rss1 = bench_rss_kib();
	if (lama_vector_count(v, NULL) != nv)
		bench_fail("%llu vectors after reopening", (unsigned long long)lama_vector_count(v, NULL));
	bench_emit("vector.load", "s", t_lama, "sqlite.plain.read", t_plain, extra);
	bench_emit("vector.memory", "MiB", (double)(rss1 - rss0) / 1024, "float32.components",
		   (double)nv * dim * 4 / 1048576, extra);

	/* queries, alternating with the bare loop */
	for (size_t r = 0; r < nq; r++) {
		size_t n = 0;
		double a, b;

		for (uint32_t d = 0; d < dim; d++)
			q[d] = frand();
		if (r % 2 == 0) {
			t0 = bench_now();
			bench_check(lama_vector_query(v, "all-minilm-l6-v2", q, dim, K, NULL, hits, &n), "query");
			a = bench_now();
			sink += bare_query(norm, nv, dim, q);
			b = bench_now();
			ql[r] = (a - t0) * 1e3;
			qb[r] = (b - a) * 1e3;
		} else {
			t0 = bench_now();
			sink += bare_query(norm, nv, dim, q);
			a = bench_now();
			bench_check(lama_vector_query(v, "all-minilm-l6-v2", q, dim, K, NULL, hits, &n), "query");
			b = bench_now();
			qb[r] = (a - t0) * 1e3;
			ql[r] = (b - a) * 1e3;
		}
		if (n != K)
			bench_fail("a query found %zu", n);
		t0 = bench_now();
		bench_check(lama_vector_query(v, "all-minilm-l6-v2", q, dim, K, topics[r % TOPICS], hits,
					      &n), "query");
		qt[r] = (bench_now() - t0) * 1e3;
		t0 = bench_now();
		sink += simd_query(norm, nv, dim, q);
		qs[r] = (bench_now() - t0) * 1e3;
	}
	{
		double l50 = pct(ql, nq, 0.5), l99 = pct(ql, nq, 0.99);
		double b50 = pct(qb, nq, 0.5), b99 = pct(qb, nq, 0.99), t50 = pct(qt, nq, 0.5);
		double s50 = pct(qs, nq, 0.5);

		snprintf(extra, sizeof(extra), "\"vectors\": %zu, \"dim\": %u, \"k\": %d, \"queries\": %zu",
			 nv, dim, K, nq);
		bench_emit("vector.query.p50", "ms", l50, "bare_loop.p50", b50, extra);
		bench_emit("vector.query.p99", "ms", l99, "bare_loop.p99", b99, extra);
		bench_emit("vector.query.p50.vs_simd_loop", "ms", l50, "simd_loop.p50", s50, extra);
		bench_emit("vector.query.topic.p50", "ms", t50, "vector.query.p50", l50, extra);
	}
	/* another connection (a second index worker) puts one vector before
	 * each query: the query first reads that row (the write count) */
	{
		lama_vector *w = NULL;
		double *qa = calloc(50, sizeof(double)), *qn = calloc(50, sizeof(double));
		size_t n = 0;

		if (!qa || !qn)
			bench_fail("out of memory");
		bench_check(lama_vector_open_at(path, key, &w), "second open");
		for (int r = 0; r < 50; r++) {
			struct lama_vector_item one = it[(size_t)r];

			for (uint32_t d = 0; d < dim; d++)
				q[d] = frand();
			t0 = bench_now();
			bench_check(lama_vector_query(v, "all-minilm-l6-v2", q, dim, K, NULL, hits, &n), "query");
			qn[r] = (bench_now() - t0) * 1e3;
			one.vec = q;
			bench_check(lama_vector_put(w, &one), "put by the other");
			t0 = bench_now();
			bench_check(lama_vector_query(v, "all-minilm-l6-v2", q, dim, K, NULL, hits, &n), "query");
			qa[r] = (bench_now() - t0) * 1e3;
		}
		lama_vector_close(w);
		snprintf(extra, sizeof(extra), "\"vectors\": %zu, \"dim\": %u, \"k\": %d, \"queries\": 50",
			 nv, dim, K);
		bench_emit("vector.query.after_other_put.p50", "ms", pct(qa, 50, 0.5),
			   "vector.query.unchanged.p50", pct(qn, 50, 0.5), extra);
		free(qa);
		free(qn);
	}
	lama_vector_close(v);
	bench_rmtree(dir);
	free(vecs);
	free(norm);
	free(q);
	free(it);
	free(ql);
	free(qb);
	free(qt);
	free(qs);
	if (sink == 12345.0f)
		fprintf(stderr, "(unlikely)\n");
	return 0;
}
