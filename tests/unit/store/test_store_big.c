/* test_store_big.c: a 1 GiB BLOB streamed in and out of the archive in
 * 1 MiB pieces while the process's memory stays flat. Writes about 2 GiB
 * to disk (the WAL, then the database), so it is in the 'slow' suite.
 * argv[1], if given, is the folder for the temp dir (the build dir);
 * otherwise $TMPDIR or /tmp. LAMA_BIG_MIB overrides the size (MiB). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "testutil.h"
#include "store_test.h"

#define PIECE ((size_t)1 << 20)
#define RSS_BOUND_KIB (64 * 1024)

static const char *base_dir;
static char tmp_dir[4096]; /* removed by the teardown, even on failure */

/* ASan keeps freed memory in a quarantine (256 MiB by default) that shows
 * up as RSS growth though nothing is live: SQLite mallocs and frees a
 * buffer per chunk, and with the default the peak grows by ~300 MiB. Keep
 * it small here so the bound measures lama, not the sanitizer; the
 * environment's ASAN_OPTIONS still win. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=8:max_redzone=256";
}

static long status_kib(const char *field)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	size_t fl = strlen(field);
	long v = -1;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			v = strtol(line + fl + 1, NULL, 10);
	fclose(fp);
	assert_true(v >= 0);
	return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0), so the peak measured
 * is that of the test alone. */
static void reset_hwm(void)
{
	FILE *fp = fopen("/proc/self/clear_refs", "w");

	if (fp) {
		fputs("5", fp);
		fclose(fp);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_blob_1gib(void **state)
{
	struct fx f;
	size_t mib = 1024;
	uint64_t total, seed, off = 0;
	uint8_t *piece = malloc(PIECE), *back = malloc(PIECE + 17);
	lama_blob_writer *w;
	lama_blob_reader *r;
	lama_hash h;
	lama_sha256_ctx *sha;
	lama_hash want;
	uint64_t size;
	long rss0, hwm_w, hwm_r, rss1;
	double t0, t1, t2;
	const char *env = getenv("LAMA_BIG_MIB");
	int is_new;

	(void)state;
	if (env && atoi(env) > 0)
		mib = (size_t)atoi(env);
	total = (uint64_t)mib * PIECE;
	assert_non_null(piece);
	assert_non_null(back);
	if (base_dir)
		setenv("TMPDIR", base_dir, 1);
	fx_open(&f);
	snprintf(tmp_dir, sizeof(tmp_dir), "%s", f.dir);
	sha = lama_sha256_new();
	assert_non_null(sha);

	/* warm up: one small BLOB through, so first-use allocations (the
	 * statement cache, SQLite's page cache) are not counted */
	seed = 7;
	xs_fill(&seed, piece, PIECE);
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	assert_int_equal(lama_blob_write(w, piece, PIECE), 0);
	assert_int_equal(lama_blob_write_end(w, &h, NULL), 0);

	reset_hwm();
	rss0 = status_kib("VmRSS");
	t0 = now();
	seed = 0x9e3779b97f4a7c15ULL;
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	for (size_t i = 0; i < mib; i++) {
		xs_fill(&seed, piece, PIECE);
		lama_sha256_update(sha, piece, PIECE);
		assert_int_equal(lama_blob_write(w, piece, PIECE), 0);
	}
	assert_int_equal(lama_blob_write_end(w, &h, &is_new), 0);
	assert_int_equal(is_new, 1);
	lama_sha256_final(sha, &want);
	assert_true(lama_hash_eq(&h, &want));
	t1 = now();
	hwm_w = status_kib("VmHWM");

	/* read back in odd-sized pieces, comparing with regenerated data */
	seed = 0x9e3779b97f4a7c15ULL;
	assert_int_equal(lama_blob_open(f.st, &h, &r, &size), 0);
	assert_int_equal(size, total);
	{
		size_t have = 0, pos = 0, got;
		const size_t step = PIECE + 17;

		for (;;) {
			assert_int_equal(lama_blob_read(r, back, step, &got), 0);
			if (!got)
				break;
			for (size_t done = 0; done < got;) {
				size_t take;

				if (pos == have) {
					xs_fill(&seed, piece, PIECE);
					have = PIECE;
					pos = 0;
				}
				take = have - pos < got - done ? have - pos : got - done;
				if (memcmp(back + done, piece + pos, take) != 0)
					fail_msg("mismatch near byte %llu",
						 (unsigned long long)(off + done));
				pos += take;
				done += take;
			}
			off += got;
		}
	}
	lama_blob_close(r);
	assert_int_equal(off, total);
	t2 = now();
	hwm_r = status_kib("VmHWM");
	rss1 = status_kib("VmRSS");

	print_message("1 GiB test: %zu MiB written in %.1f s (%.0f MiB/s), read and compared in "
		      "%.1f s (%.0f MiB/s)\n", mib, t1 - t0, (double)mib / (t1 - t0), t2 - t1,
		      (double)mib / (t2 - t1));
	print_message("RSS before %ld KiB, peak while writing %ld KiB, peak overall %ld KiB, "
		      "after %ld KiB: growth %ld KiB (bound %d KiB)\n",
		      rss0, hwm_w, hwm_r, rss1, hwm_r - rss0, RSS_BOUND_KIB);
	assert_true(hwm_r - rss0 < RSS_BOUND_KIB);

	lama_store_close(f.st);
	f.st = NULL;
	free(piece);
	free(back);
}

static int teardown(void **state)
{
	(void)state;
	if (tmp_dir[0])
		tu_rmtree(tmp_dir);
	tmp_dir[0] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_blob_1gib, teardown),
	};

	if (argc > 1)
		base_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
