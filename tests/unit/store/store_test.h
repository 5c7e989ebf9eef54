/* store_test.h: fixtures the store tests share: a fresh archive in a temp
 * dir, raw-SQL tampering helpers, and a whole-directory scanner. Include
 * after cmocka.h and testutil.h. */
#ifndef LAMA_STORE_TEST_H
#define LAMA_STORE_TEST_H

#include <dirent.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

static const uint8_t K_ENC[32] __attribute__((unused)) = {
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x10,
	0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x20,
};
static const uint8_t K_IDX[32] __attribute__((unused)) = {
	0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xa0,
	0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xb0,
};

struct fx {
	char dir[4096];
	char path[4200];
	lama_store *st;
};

/* flip(blob, offset): the blob with one bit of byte `offset` inverted (a
 * negative offset counts from the end), so tests can damage a stored value
 * with plain SQL: UPDATE obj SET val = flip(val, 30). */
static inline void sql_flip(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const uint8_t *p = sqlite3_value_blob(argv[0]);
	int n = sqlite3_value_bytes(argv[0]);
	int off = sqlite3_value_int(argv[1]);
	uint8_t *q;

	(void)argc;
	if (off < 0)
		off += n;
	if (!p || off < 0 || off >= n) {
		sqlite3_result_error(ctx, "flip: offset out of range", -1);
		return;
	}
	q = sqlite3_malloc(n);
	if (!q) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	memcpy(q, p, (size_t)n);
	q[off] ^= 0x01;
	sqlite3_result_blob(ctx, q, n, sqlite3_free);
}

static inline void fx_register(struct fx *f)
{
	assert_int_equal(sqlite3_create_function(lama_store_db(f->st), "flip", 2, SQLITE_UTF8, NULL,
						 sql_flip, NULL, NULL), SQLITE_OK);
}

static inline void fx_init(struct fx *f)
{
	assert_int_equal(lama_crypto_init(), 0);
	snprintf(f->dir, sizeof(f->dir), "%s", tu_tmpdir());
	snprintf(f->path, sizeof(f->path), "%s/archive.db", f->dir);
	f->st = NULL;
}

static inline void fx_reopen(struct fx *f)
{
	if (f->st)
		lama_store_close(f->st);
	f->st = NULL;
	assert_int_equal(lama_store_open(&f->st, f->path, K_ENC, K_IDX, LAMA_STORE_CREATE), 0);
	assert_non_null(f->st);
	fx_register(f);
}

static inline void fx_open(struct fx *f)
{
	fx_init(f);
	fx_reopen(f);
}

static inline void fx_done(struct fx *f)
{
	lama_store_close(f->st);
	f->st = NULL;
	tu_rmtree(f->dir);
}

/* Runs SQL on the store's own connection; asserts it worked. */
static inline void fx_sql(struct fx *f, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(lama_store_db(f->st), sql, NULL, NULL, &err);

	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
	sqlite3_free(err);
	/* Every statement a test runs must have touched something. */
	assert_true(sqlite3_changes(lama_store_db(f->st)) > 0 ||
		    strncmp(sql, "CREATE", 6) == 0 || strncmp(sql, "DROP", 4) == 0);
}

static inline int64_t fx_count(struct fx *f, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(lama_store_db(f->st), sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* A clean store passes check; a damaged one is reported with bad > 0. */
static inline void fx_check_ok(struct fx *f)
{
	struct lama_store_check rep;
	int rc = lama_store_check(f->st, &rep, NULL, NULL);

	if (rc != 0 || rep.bad != 0)
		fail_msg("check: rc %d, bad %llu: %s", rc, (unsigned long long)rep.bad, rep.first_bad);
}

static inline void fx_check_bad(struct fx *f)
{
	struct lama_store_check rep;

	assert_int_equal(lama_store_check(f->st, &rep, NULL, NULL), LAMA_ECORRUPT);
	assert_true(rep.bad > 0);
	assert_true(rep.first_bad[0] != '\0');
}

/* Deterministic, cheap data: xorshift64*. */
static inline uint64_t xs_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static inline void xs_fill(uint64_t *s, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n >= 8) {
		uint64_t v = xs_next(s);

		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = xs_next(s);

		memcpy(p, &v, n);
	}
}

/* Calls fn on the contents of every regular file in dir. */
static inline void scan_dir(const char *dir, void (*fn)(const char *name, const uint8_t *p, size_t n, void *ctx),
		     void *ctx)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int files = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[8192];
		FILE *fp;
		struct stat sb;
		uint8_t *buf;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		buf = malloc((size_t)sb.st_size + 1);
		assert_non_null(buf);
		fp = fopen(path, "rb");
		assert_non_null(fp);
		assert_int_equal(fread(buf, 1, (size_t)sb.st_size, fp), (size_t)sb.st_size);
		fclose(fp);
		fn(e->d_name, buf, (size_t)sb.st_size, ctx);
		free(buf);
		files++;
	}
	closedir(d);
	assert_true(files > 0);
}

#endif
