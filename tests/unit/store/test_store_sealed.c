/* test_store_sealed.c: BLOB chunks sealed outside the store
 * (lama_blob_chunk_seal, as the crypto worker's blob_seal op does) and
 * stored with lama_blob_write_sealed: read back whole at every size
 * around the chunk boundaries; the chunks the plain writer stores open
 * with lama_blob_chunk_open (one format); dedupe, abort, a wrong hash,
 * chunks sealed for another place; the store's check passes or flags;
 * an empty last chunk after full ones refused, a broken record replaced
 * by the plain writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil.h"
#include "store/store_test.h"

#define C LAMA_BLOB_CHUNK

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);

	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(k * 7 + seed + (k >> 11));
	return p;
}

/* Seals data[0..n) chunk by chunk, indexes from `shift` on (0: the right
 * place), and stores them through a sealed writer under `hash`. */
static int put_sealed(lama_store *st, const uint8_t *data, size_t n, const lama_hash *hash,
		      uint64_t shift, int *is_new)
{
	lama_blob_writer *w;
	uint8_t bid[16], *ct = malloc(C + LAMA_BLOB_CHUNK_OVERHEAD);
	size_t off = 0;
	uint64_t idx = 0;
	int rc;

	assert_int_equal(lama_blob_write_begin(st, &w), 0);
	lama_blob_write_group(w, bid);
	do {
		size_t take = n - off > C ? C : n - off;
		int last = off + take == n;

		assert_int_equal(lama_blob_chunk_seal(ct, data + off, take, K_ENC, bid, idx + shift,
						      last),
				 0);
		assert_int_equal(lama_blob_write_sealed(w, ct, take + LAMA_BLOB_CHUNK_OVERHEAD, last),
				 0);
		off += take;
		idx++;
	} while (off < n);
	rc = lama_blob_write_end_sealed(w, hash, is_new);
	free(ct);
	return rc;
}

/* Reads the whole BLOB; its rc, the bytes in *out (malloc'd). */
static int read_all(lama_store *st, const lama_hash *h, uint8_t **out, size_t *n)
{
	lama_blob_reader *r;
	uint64_t size;
	size_t got;
	int rc = lama_blob_open(st, h, &r, &size);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	*out = malloc(size + 1);
	while (!(rc = lama_blob_read(r, *out + *n, size + 1 - *n, &got)) && got)
		*n += got;
	lama_blob_close(r);
	return rc;
}

static void test_sealed_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, C - 1, C, C + 1, 2 * C, 3 * C + 5 };
	struct fx f;

	(void)state;
	fx_open(&f);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *d = pattern(sizes[i], (unsigned)i), *back;
		lama_hash h;
		size_t n;
		int is_new;

		lama_sha256(d, sizes[i], &h);
		assert_int_equal(put_sealed(f.st, d, sizes[i], &h, 0, &is_new), 0);
		assert_int_equal(is_new, 1);
		assert_int_equal(read_all(f.st, &h, &back, &n), 0);
		assert_int_equal(n, sizes[i]);
		assert_memory_equal(back, d, n);
		free(back);
		free(d);
	}
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 1 + 1 + 1 + 1 + 2 + 2 + 4);
	fx_check_ok(&f);
	fx_done(&f);
}

/* The plain writer's chunks open with the pure function: one format. */
static void test_one_format(void **state)
{
	struct fx f;
	uint8_t *d = pattern(C + 100, 3), *pt = malloc(C);
	lama_blob_writer *w;
	lama_hash h;
	sqlite3_stmt *s;
	int rows = 0;

	(void)state;
	fx_open(&f);
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	assert_int_equal(lama_blob_write(w, d, C + 100), 0);
	assert_int_equal(lama_blob_write_end(w, &h, NULL), 0);
	assert_int_equal(sqlite3_prepare_v2(lama_store_db(f.st),
					    "SELECT bid, idx, val FROM chunk ORDER BY idx", -1, &s,
					    NULL),
			 SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const uint8_t *bid = sqlite3_column_blob(s, 0);
		uint64_t idx = (uint64_t)sqlite3_column_int64(s, 1);
		const uint8_t *ct = sqlite3_column_blob(s, 2);
		size_t n = (size_t)sqlite3_column_bytes(s, 2);

		assert_int_equal(sqlite3_column_bytes(s, 0), 16);
		assert_int_equal(lama_blob_chunk_open(pt, ct, n, K_ENC, bid, idx, idx == 1), 0);
		assert_memory_equal(pt, d + idx * C, n - LAMA_BLOB_CHUNK_OVERHEAD);
		/* the wrong end flag, index or key: refused */
		assert_int_equal(lama_blob_chunk_open(pt, ct, n, K_ENC, bid, idx, idx != 1),
				 LAMA_ECRYPTO);
		assert_int_equal(lama_blob_chunk_open(pt, ct, n, K_ENC, bid, idx + 1, idx == 1),
				 LAMA_ECRYPTO);
		assert_int_equal(lama_blob_chunk_open(pt, ct, n, K_IDX, bid, idx, idx == 1),
				 LAMA_ECRYPTO);
		rows++;
	}
	sqlite3_finalize(s);
	assert_int_equal(rows, 2);
	assert_int_equal(lama_blob_chunk_seal(pt, d, C + 1, K_ENC, (const uint8_t *)"0123456789abcdef",
					      0, 1),
			 LAMA_ELIMIT);
	free(pt);
	free(d);
	fx_done(&f);
}

static void test_sealed_dedupe_abort_wrong(void **state)
{
	struct fx f;
	const size_t n = 2 * C + 9;
	uint8_t *d = pattern(n, 4), *back;
	lama_hash h, other;
	size_t got;
	int is_new;

	(void)state;
	fx_open(&f);
	lama_sha256(d, n, &h);
	assert_int_equal(put_sealed(f.st, d, n, &h, 0, &is_new), 0);
	assert_int_equal(is_new, 1);
	/* the same again: the new chunks are dropped */
	assert_int_equal(put_sealed(f.st, d, n, &h, 0, &is_new), 0);
	assert_int_equal(is_new, 0);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 3);
	/* an aborted sealed writer leaves nothing */
	{
		lama_blob_writer *w;
		uint8_t bid[16], ct[10 + LAMA_BLOB_CHUNK_OVERHEAD];

		assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
		lama_blob_write_group(w, bid);
		assert_int_equal(lama_blob_chunk_seal(ct, d, 10, K_ENC, bid, 0, 1), 0);
		assert_int_equal(lama_blob_write_sealed(w, ct, sizeof(ct), 1), 0);
		lama_blob_write_abort(w);
		assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 3);
	}
	fx_check_ok(&f);
	/* a wrong hash is stored but never read as that BLOB */
	memset(other.b, 0x5a, 32);
	assert_int_equal(put_sealed(f.st, d, 100, &other, 0, &is_new), 0);
	assert_int_equal(read_all(f.st, &other, &back, &got), LAMA_ECORRUPT);
	assert_int_equal(got, 0);
	free(back);
	fx_check_bad(&f);
	fx_done(&f);
	/* chunks sealed one index off: the first of them fails */
	fx_open(&f);
	assert_int_equal(put_sealed(f.st, d, n, &h, 1, &is_new), 0);
	assert_int_equal(read_all(f.st, &h, &back, &got), LAMA_ECORRUPT);
	assert_int_equal(got, 0);
	free(back);
	fx_check_bad(&f);
	fx_done(&f);
	free(d);
}

/* Stores data[0..n) with the plain writer; its rc. */
static int put_plain(lama_store *st, const uint8_t *data, size_t n, lama_hash *h, int *is_new)
{
	lama_blob_writer *w;

	assert_int_equal(lama_blob_write_begin(st, &w), 0);
	assert_int_equal(lama_blob_write(w, data, n), 0);
	return lama_blob_write_end(w, h, is_new);
}

/* A BLOB of whole chunks ends with a full chunk: an empty last chunk
 * after one is refused (the reader counts ceil(size / chunk) chunks, so
 * the BLOB would be stored and never read, and a plain write of the same
 * content then dropped as a duplicate); no hash is refused; a plain
 * writer replaces a record of its hash whose size disagrees. */
static void test_sealed_empty_last(void **state)
{
	struct fx f;
	uint8_t *d = pattern(C, 6), *back, bid[16];
	uint8_t *ct = malloc(C + LAMA_BLOB_CHUNK_OVERHEAD);
	lama_blob_writer *w;
	lama_hash h, h2;
	size_t got;
	int is_new = -1;

	(void)state;
	fx_open(&f);
	lama_sha256(d, C, &h);
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	lama_blob_write_group(w, bid);
	assert_int_equal(lama_blob_chunk_seal(ct, d, C, K_ENC, bid, 0, 0), 0);
	assert_int_equal(lama_blob_write_sealed(w, ct, C + LAMA_BLOB_CHUNK_OVERHEAD, 0), 0);
	assert_int_equal(lama_blob_chunk_seal(ct, d, 0, K_ENC, bid, 1, 1), 0);
	assert_int_equal(lama_blob_write_sealed(w, ct, LAMA_BLOB_CHUNK_OVERHEAD, 1), LAMA_EINVAL);
	assert_non_null(strstr(lama_errmsg(), "empty last"));
	/* not ended: no record can be written */
	assert_int_equal(lama_blob_write_end_sealed(w, &h, &is_new), LAMA_EINVAL);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 0);
	assert_int_equal(lama_store_has(f.st, &h), 0);
	/* the plain writer stores it, readable */
	assert_int_equal(put_plain(f.st, d, C, &h2, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(read_all(f.st, &h, &back, &got), 0);
	assert_int_equal(got, C);
	assert_memory_equal(back, d, C);
	free(back);
	fx_done(&f);

	/* no hash: refused, the writer freed (ASan sees a leak or a crash) */
	fx_open(&f);
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	lama_blob_write_group(w, bid);
	assert_int_equal(lama_blob_chunk_seal(ct, d, 5, K_ENC, bid, 0, 1), 0);
	assert_int_equal(lama_blob_write_sealed(w, ct, 5 + LAMA_BLOB_CHUNK_OVERHEAD, 1), 0);
	assert_int_equal(lama_blob_write_end_sealed(w, NULL, &is_new), LAMA_EINVAL);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 0);

	/* 100 bytes of another content stored under h: unreadable; the plain
	 * writer of h's content replaces it (record and chunks) */
	assert_int_equal(put_sealed(f.st, d + 7, 100, &h, 0, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(read_all(f.st, &h, &back, &got), LAMA_ECORRUPT);
	free(back);
	assert_int_equal(put_plain(f.st, d, C, &h2, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 1);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM blob"), 1);
	assert_int_equal(read_all(f.st, &h, &back, &got), 0);
	assert_int_equal(got, C);
	assert_memory_equal(back, d, C);
	free(back);
	/* a good record stays: the same content again is a duplicate */
	assert_int_equal(put_plain(f.st, d, C, &h2, &is_new), 0);
	assert_int_equal(is_new, 0);
	assert_int_equal(put_sealed(f.st, d, C, &h, 0, &is_new), 0);
	assert_int_equal(is_new, 0);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 1);
	fx_check_ok(&f);
	fx_done(&f);
	free(ct);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sealed_sizes),
		cmocka_unit_test(test_one_format),
		cmocka_unit_test(test_sealed_dedupe_abort_wrong),
		cmocka_unit_test(test_sealed_empty_last),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
