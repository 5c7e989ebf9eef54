/* test_store_blob.c: BLOBs streamed in and out of the archive. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "store_test.h"

/* Writes data in pieces of `piece` bytes (0: all at once). */
static void blob_put(lama_store *st, const uint8_t *data, size_t n, size_t piece, lama_hash *h,
		     int *is_new)
{
	lama_blob_writer *w = NULL;

	assert_int_equal(lama_blob_write_begin(st, &w), 0);
	assert_non_null(w);
	if (!piece)
		piece = n ? n : 1;
	for (size_t off = 0; off < n; off += piece)
		assert_int_equal(lama_blob_write(w, data + off, n - off < piece ? n - off : piece), 0);
	assert_int_equal(lama_blob_write_end(w, h, is_new), 0);
}

/* Reads the BLOB back in pieces of `piece` bytes and compares. */
static void blob_expect(lama_store *st, const lama_hash *h, const uint8_t *data, size_t n,
			size_t piece)
{
	lama_blob_reader *r = NULL;
	uint64_t size = 12345;
	uint8_t *buf = malloc(piece);
	size_t off = 0, got;

	assert_non_null(buf);
	assert_int_equal(lama_blob_open(st, h, &r, &size), 0);
	assert_non_null(r);
	assert_int_equal(size, n);
	for (;;) {
		assert_int_equal(lama_blob_read(r, buf, piece, &got), 0);
		if (!got)
			break;
		assert_true(got <= piece);
		assert_true(off + got <= n);
		assert_memory_equal(buf, data + off, got);
		off += got;
	}
	assert_int_equal(off, n);
	/* reading past the end stays at the end */
	assert_int_equal(lama_blob_read(r, buf, piece, &got), 0);
	assert_int_equal(got, 0);
	lama_blob_close(r);
	free(buf);
}

static void test_blob_sizes(void **state)
{
	const size_t C = LAMA_BLOB_CHUNK;
	const size_t sizes[] = { 0, 1, 63, 64, C - 1, C, C + 1, 2 * C, 2 * C + 1, 5 * C + 4321,
				 (size_t)3 << 20 };
	const size_t pieces[] = { 0, 1, 7, 4096, 65537, C, C + 3 };
	size_t maxn = (size_t)3 << 20;
	uint8_t *data = malloc(maxn);
	uint64_t seed = 0x1234567;
	struct fx f;

	(void)state;
	assert_non_null(data);
	xs_fill(&seed, data, maxn);
	fx_open(&f);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		lama_hash h, want, h2;
		int is_new = -1;

		/* a byte distinguishes each size's content from a prefix of another */
		data[0] = (uint8_t)i;
		lama_sha256(data, n, &want);
		blob_put(f.st, data, n, pieces[i % 7], &h, &is_new);
		assert_true(lama_hash_eq(&h, &want));
		assert_int_equal(is_new, 1);
		assert_int_equal(lama_store_has(f.st, &h), 1);
		assert_int_equal(fx_count(&f, "SELECT count(*) FROM blob"), (int64_t)i + 1);

		/* a duplicate adds no rows */
		{
			int64_t chunks = fx_count(&f, "SELECT count(*) FROM chunk");

			blob_put(f.st, data, n, pieces[(i + 3) % 7], &h2, &is_new);
			assert_int_equal(is_new, 0);
			assert_true(lama_hash_eq(&h, &h2));
			assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), chunks);
			assert_int_equal(fx_count(&f, "SELECT count(*) FROM blob"), (int64_t)i + 1);
		}

		/* odd-sized reads */
		blob_expect(f.st, &h, data, n, 1 + (n > 100000 ? 99991 : 0));
		blob_expect(f.st, &h, data, n, 4093);
		blob_expect(f.st, &h, data, n, LAMA_BLOB_CHUNK + 1);
		blob_expect(f.st, &h, data, n, n + 10);
	}
	/* chunk counts: one per started chunk, at least one */
	{
		struct lama_store_check rep;

		assert_int_equal(lama_store_check(f.st, &rep, NULL, NULL), 0);
		assert_int_equal(rep.blobs, sizeof(sizes) / sizeof(sizes[0]));
	}
	fx_reopen(&f);
	data[0] = 4;
	{
		lama_hash h;

		lama_sha256(data, C - 1, &h);
		blob_expect(f.st, &h, data, C - 1, 1000);
	}
	fx_check_ok(&f);
	free(data);
	fx_done(&f);
}

static void test_blob_not_object(void **state)
{
	struct fx f;
	lama_hash h, ho;
	lama_blob_reader *r = (lama_blob_reader *)&f;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

	(void)state;
	fx_open(&f);
	blob_put(f.st, (const uint8_t *)"same bytes", 10, 0, &h, NULL);
	/* a BLOB is not an object; an object is not a BLOB */
	assert_int_equal(lama_store_get(f.st, &h, NULL, &b), LAMA_ENOTFOUND);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "other bytes", 11, &ho, NULL), 0);
	assert_int_equal(lama_blob_open(f.st, &ho, &r, NULL), LAMA_ENOTFOUND);
	assert_null(r);
	/* the same bytes can be both */
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "same bytes", 10, &ho, NULL), 0);
	assert_true(lama_hash_eq(&h, &ho));
	assert_int_equal(lama_store_get(f.st, &h, NULL, &b), 0);
	blob_expect(f.st, &h, (const uint8_t *)"same bytes", 10, 3);
	lama_buf_release(&b);
	fx_check_ok(&f);
	fx_done(&f);
}

static void test_blob_abort(void **state)
{
	struct fx f;
	lama_blob_writer *w;
	uint8_t buf[10000];
	lama_hash h;

	(void)state;
	fx_open(&f);
	memset(buf, 'q', sizeof(buf));
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(lama_blob_write(w, buf, sizeof(buf)), 0);
	lama_blob_write_abort(w);
	lama_blob_write_abort(NULL);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 0);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM blob"), 0);
	assert_true(sqlite3_get_autocommit(lama_store_db(f.st)) != 0);
	fx_check_ok(&f);

	/* the store works normally afterwards */
	blob_put(f.st, buf, sizeof(buf), 0, &h, NULL);
	blob_expect(f.st, &h, buf, sizeof(buf), 333);

	/* abort inside a caller's transaction: the caller's work is kept
	 * until the caller decides */
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "kept", 4, &h, NULL), 0);
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	assert_int_equal(lama_blob_write(w, buf, sizeof(buf)), 0);
	lama_blob_write_abort(w);
	assert_int_equal(lama_store_commit(f.st), 0);
	assert_int_equal(lama_store_has(f.st, &h), 1);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM blob"), 1);
	fx_check_ok(&f);

	/* closing the store with a BLOB half written keeps nothing */
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	assert_int_equal(lama_blob_write(w, buf, sizeof(buf)), 0);
	lama_blob_write_abort(w);
	fx_reopen(&f);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM blob"), 1);
	fx_check_ok(&f);
	fx_done(&f);
}

static void test_blob_in_transaction(void **state)
{
	struct fx f;
	lama_hash h, h2;

	(void)state;
	fx_open(&f);
	/* a BLOB inside a caller's transaction commits with it... */
	assert_int_equal(lama_store_begin(f.st), 0);
	blob_put(f.st, (const uint8_t *)"abc", 3, 1, &h, NULL);
	assert_int_equal(lama_store_commit(f.st), 0);
	blob_expect(f.st, &h, (const uint8_t *)"abc", 3, 2);
	/* ...and rolls back with it */
	assert_int_equal(lama_store_begin(f.st), 0);
	blob_put(f.st, (const uint8_t *)"defg", 4, 1, &h2, NULL);
	lama_store_rollback(f.st);
	assert_int_equal(lama_store_has(f.st, &h2), 0);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM chunk"), 1);
	fx_check_ok(&f);
	fx_done(&f);
}

static void test_blob_many_readers(void **state)
{
	struct fx f;
	lama_hash h[3];
	lama_blob_reader *r[3];
	uint8_t *data[3], buf[1000];
	size_t off[3] = { 0, 0, 0 }, got;
	size_t n = 2 * LAMA_BLOB_CHUNK + 99;
	int active = 3;

	(void)state;
	fx_open(&f);
	for (int i = 0; i < 3; i++) {
		uint64_t seed = 100 + (uint64_t)i;

		data[i] = malloc(n);
		assert_non_null(data[i]);
		xs_fill(&seed, data[i], n);
		blob_put(f.st, data[i], n, 5000, &h[i], NULL);
		assert_int_equal(lama_blob_open(f.st, &h[i], &r[i], NULL), 0);
	}
	/* interleaved reads, with writes in between */
	while (active) {
		active = 0;
		for (int i = 0; i < 3; i++) {
			if (!r[i])
				continue;
			assert_int_equal(lama_blob_read(r[i], buf, 777 + (size_t)i, &got), 0);
			if (!got) {
				assert_int_equal(off[i], n);
				lama_blob_close(r[i]);
				r[i] = NULL;
				continue;
			}
			assert_memory_equal(buf, data[i] + off[i], got);
			off[i] += got;
			active++;
		}
		if (off[0] % 50000 < 800)
			assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, &off[0], sizeof(off[0]),
							NULL, NULL), 0);
	}
	for (int i = 0; i < 3; i++)
		free(data[i]);
	fx_check_ok(&f);
	fx_done(&f);
}

static void test_blob_alloc_failure(void **state)
{
	struct fx f;
	uint8_t data[3000];
	int ok = 0;

	(void)state;
	fx_open(&f);
	for (int sticky = 0; sticky <= 1; sticky++) {
		for (unsigned long k = 1; k <= 15; k++) {
			lama_blob_writer *w = NULL;
			lama_blob_reader *r = NULL;
			lama_hash h, want;
			size_t got;
			int rc;

			memset(data, (int)k + 16 * sticky, sizeof(data));
			lama_sha256(data, sizeof(data), &want);
			lama_mem_fail_after(k, sticky);
			rc = lama_blob_write_begin(f.st, &w);
			if (!rc) {
				rc = lama_blob_write(w, data, sizeof(data));
				if (rc)
					lama_blob_write_abort(w);
				else
					rc = lama_blob_write_end(w, &h, NULL);
			} else {
				assert_null(w);
			}
			lama_mem_fail_after(0, 0);
			assert_true(rc == 0 || rc == LAMA_ENOMEM);
			assert_true(sqlite3_get_autocommit(lama_store_db(f.st)) != 0);
			if (rc) {
				assert_int_equal(lama_store_has(f.st, &want), 0);
				blob_put(f.st, data, sizeof(data), 0, &h, NULL);
			} else {
				ok++;
			}
			assert_true(lama_hash_eq(&h, &want));

			lama_mem_fail_after(k, sticky);
			rc = lama_blob_open(f.st, &h, &r, NULL);
			if (!rc) {
				do
					rc = lama_blob_read(r, data, 1000, &got);
				while (!rc && got);
				lama_blob_close(r);
			} else {
				assert_null(r);
			}
			lama_mem_fail_after(0, 0);
			assert_true(rc == 0 || rc == LAMA_ENOMEM);
		}
	}
	assert_true(ok > 0);
	fx_check_ok(&f);
	fx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_sizes),
		cmocka_unit_test(test_blob_not_object),
		cmocka_unit_test(test_blob_abort),
		cmocka_unit_test(test_blob_in_transaction),
		cmocka_unit_test(test_blob_many_readers),
		cmocka_unit_test(test_blob_alloc_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
