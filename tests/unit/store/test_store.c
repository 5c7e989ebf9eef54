/* test_store.c: opening, objects, transactions, indexes, at-rest secrecy,
 * check and allocation failure of the encrypted archive (src/store). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "testutil.h"
#include "store_test.h"

static void get_ok(lama_store *st, const lama_hash *h, enum lama_store_kind want_kind,
		   const void *want, size_t n)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	enum lama_store_kind kind = 0;

	assert_int_equal(lama_store_get(st, h, &kind, &b), 0);
	assert_int_equal(kind, want_kind);
	assert_int_equal(b.len, n);
	if (n)
		assert_memory_equal(b.data, want, n);
	lama_buf_release(&b);
}

/* ---- open / create ---- */

static void test_open_create_reopen(void **state)
{
	struct fx f;
	struct stat sb;
	lama_hash h;
	lama_store *st = (lama_store *)&f; /* must be reset to NULL on failure */
	uint8_t bad[32];
	char p[4300];

	(void)state;
	fx_init(&f);
	/* missing without CREATE */
	assert_int_equal(lama_store_open(&st, f.path, K_ENC, K_IDX, 0), LAMA_ENOTFOUND);
	assert_null(st);
	assert_int_not_equal(access(f.path, F_OK), 0);

	fx_reopen(&f);
	assert_int_equal(stat(f.path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "hello", 5, &h, NULL), 0);
	/* the WAL and its index are the user's alone too */
	snprintf(p, sizeof(p), "%s-wal", f.path);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s-shm", f.path);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	lama_store_close(f.st);
	f.st = NULL;

	/* same keys: the data is there; without CREATE too */
	assert_int_equal(lama_store_open(&f.st, f.path, K_ENC, K_IDX, 0), 0);
	get_ok(f.st, &h, LAMA_KIND_CLOB, "hello", 5);
	lama_store_close(f.st);
	f.st = NULL;

	/* a wrong storage key or a wrong index key: EAUTH, file untouched */
	memcpy(bad, K_ENC, 32);
	bad[31] ^= 0x80;
	st = (lama_store *)&f;
	assert_int_equal(lama_store_open(&st, f.path, bad, K_IDX, 0), LAMA_EAUTH);
	assert_null(st);
	assert_int_equal(lama_store_open(&st, f.path, bad, K_IDX, LAMA_STORE_CREATE), LAMA_EAUTH);
	memcpy(bad, K_IDX, 32);
	bad[0] ^= 0x01;
	assert_int_equal(lama_store_open(&st, f.path, K_ENC, bad, 0), LAMA_EAUTH);
	assert_null(st);
	/* keys swapped */
	assert_int_equal(lama_store_open(&st, f.path, K_IDX, K_ENC, 0), LAMA_EAUTH);
	assert_int_equal(stat(f.path, &sb), 0);

	fx_reopen(&f);
	get_ok(f.st, &h, LAMA_KIND_CLOB, "hello", 5);
	fx_done(&f);
}

static void test_open_not_a_database(void **state)
{
	struct fx f;
	lama_store *st;
	int fd;

	(void)state;
	fx_init(&f);
	fd = open(f.path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not sqlite at all, not even close......", 48), 48);
	close(fd);
	assert_true(lama_store_open(&st, f.path, K_ENC, K_IDX, 0) < 0);
	assert_null(st);
	assert_int_equal(access(f.path, F_OK), 0); /* never deletes what it did not create */
	/* an empty file (a crash before the first commit) is finished with
	 * CREATE and refused without */
	assert_int_equal(truncate(f.path, 0), 0);
	assert_int_equal(lama_store_open(&st, f.path, K_ENC, K_IDX, 0), LAMA_ECORRUPT);
	assert_null(st);
	assert_int_equal(lama_store_open(&st, f.path, K_ENC, K_IDX, LAMA_STORE_CREATE), 0);
	assert_int_equal(lama_store_put(st, LAMA_KIND_CLOB, "x", 1, NULL, NULL), 0);
	lama_store_close(st);
	assert_int_equal(lama_store_open(&st, f.path, K_ENC, K_IDX, 0), 0);
	lama_store_close(st);
	/* a SQLite database that is not an archive, and an archive of a
	 * format version this code does not know */
	{
		sqlite3 *db;

		assert_int_equal(unlink(f.path), 0);
		assert_int_equal(sqlite3_open(f.path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		assert_int_equal(lama_store_open(&st, f.path, K_ENC, K_IDX, LAMA_STORE_CREATE),
				 LAMA_ECORRUPT);
		assert_int_equal(unlink(f.path), 0);
		fx_reopen(&f);
		fx_sql(&f, "UPDATE meta SET v = v + 1 WHERE k = 'schema'"); /* a newer format */
		lama_store_close(f.st);
		f.st = NULL;
		assert_int_equal(lama_store_open(&st, f.path, K_ENC, K_IDX, 0), LAMA_ECORRUPT);
		assert_null(st);
	}
	/* a directory that does not exist */
	snprintf(f.path, sizeof(f.path), "%s/no/such/dir/a.db", f.dir);
	assert_true(lama_store_open(&st, f.path, K_ENC, K_IDX, LAMA_STORE_CREATE) < 0);
	assert_null(st);
	fx_done(&f);
}

/* ---- objects ---- */

static void test_put_get_kinds(void **state)
{
	static const char *const texts[] = { "<div itemscope>object</div>", "<div>id</div>",
					     "plain text \xc3\xa9" };
	static const enum lama_store_kind kinds[] = { LAMA_KIND_OBJECT, LAMA_KIND_ID, LAMA_KIND_CLOB };
	struct fx f;
	lama_hash h[3], h2, want;
	int is_new;
	char big[5000];

	(void)state;
	fx_open(&f);
	for (int i = 0; i < 3; i++) {
		is_new = -1;
		assert_int_equal(lama_store_put(f.st, kinds[i], texts[i], strlen(texts[i]), &h[i],
						&is_new), 0);
		assert_int_equal(is_new, 1);
		lama_sha256(texts[i], strlen(texts[i]), &want);
		assert_true(lama_hash_eq(&h[i], &want));
	}
	for (int i = 0; i < 3; i++) {
		get_ok(f.st, &h[i], kinds[i], texts[i], strlen(texts[i]));
		assert_int_equal(lama_store_has(f.st, &h[i]), 1);
		/* duplicate: a check, not an error */
		is_new = -1;
		assert_int_equal(lama_store_put(f.st, kinds[i], texts[i], strlen(texts[i]), &h2,
						&is_new), 0);
		assert_int_equal(is_new, 0);
		assert_true(lama_hash_eq(&h[i], &h2));
	}
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM obj"), 3);

	/* empty, one byte, every length around the padding block */
	for (size_t n = 0; n < 300; n++) {
		memset(big, 'a' + (int)(n % 26), n);
		assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, big, n, &h2, NULL), 0);
		get_ok(f.st, &h2, LAMA_KIND_CLOB, big, n);
	}
	/* binary data with NULs, NULL hash and is_new allowed */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_OBJECT, big, sizeof(big), NULL, NULL), 0);
	lama_sha256(big, sizeof(big), &h2);
	get_ok(f.st, &h2, LAMA_KIND_OBJECT, big, sizeof(big));

	/* no such kind */
	assert_int_equal(lama_store_put(f.st, (enum lama_store_kind)0, "k", 1, NULL, NULL), LAMA_EINVAL);
	assert_int_equal(lama_store_put(f.st, (enum lama_store_kind)4, "k", 1, NULL, NULL), LAMA_EINVAL);

	/* put_hashed with the right hash */
	lama_sha256("hashed", 6, &h2);
	assert_int_equal(lama_store_put_hashed(f.st, LAMA_KIND_CLOB, "hashed", 6, &h2, &is_new), 0);
	assert_int_equal(is_new, 1);
	get_ok(f.st, &h2, LAMA_KIND_CLOB, "hashed", 6);

	/* get appends to what the buffer holds */
	{
		struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);

		assert_int_equal(lama_buf_addstr(&b, "pre:"), 0);
		assert_int_equal(lama_store_get(f.st, &h[2], NULL, &b), 0);
		assert_int_equal(b.len, 4 + strlen(texts[2]));
		assert_string_equal(b.data + 4, texts[2]);
		assert_memory_equal(b.data, "pre:", 4);
		lama_buf_release(&b);
	}
	fx_check_ok(&f);
	fx_done(&f);
}

static void test_get_unknown(void **state)
{
	struct fx f;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	lama_hash h;

	(void)state;
	fx_open(&f);
	lama_sha256("never stored", 12, &h);
	assert_int_equal(lama_store_get(f.st, &h, NULL, &b), LAMA_ENOTFOUND);
	assert_int_equal(b.len, 0);
	assert_int_equal(lama_store_has(f.st, &h), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "x", 1, NULL, NULL), 0);
	assert_int_equal(lama_store_get(f.st, &h, NULL, &b), LAMA_ENOTFOUND);
	assert_int_equal(lama_store_has(f.st, &h), 0);
	lama_buf_release(&b);
	fx_done(&f);
}

static void test_put_limits(void **state)
{
	struct fx f;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	size_t n = LAMA_STORE_OBJECT_MAX;
	char *big = malloc(n + 1);
	lama_hash h;

	(void)state;
	assert_non_null(big);
	memset(big, 'z', n + 1);
	fx_open(&f);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, big, n + 1, &h, NULL), LAMA_ELIMIT);
	/* the largest object fits a fresh LAMA_BUF_MAX buffer when read back */
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, big, n, &h, NULL), 0);
	assert_int_equal(lama_store_get(f.st, &h, NULL, &b), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, big, n);
	lama_buf_release(&b);
	/* a small caller ceiling: ELIMIT, buffer unchanged */
	{
		struct lama_buf small = LAMA_BUF_INIT(16);

		assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, big, 100, &h, NULL), 0);
		assert_int_equal(lama_store_get(f.st, &h, NULL, &small), LAMA_ELIMIT);
		assert_int_equal(small.len, 0);
		lama_buf_release(&small);
	}
	free(big);
	fx_done(&f);
}

/* ---- transactions ---- */

static void test_transactions(void **state)
{
	struct fx f;
	lama_hash a, b, c;
	int is_new;

	(void)state;
	fx_open(&f);
	lama_sha256("a", 1, &a);
	lama_sha256("b", 1, &b);
	lama_sha256("c", 1, &c);

	/* begin / put / rollback leaves nothing */
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "a", 1, NULL, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(lama_store_has(f.st, &a), 1); /* visible inside */
	lama_store_rollback(f.st);
	assert_int_equal(lama_store_has(f.st, &a), 0);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM obj"), 0);

	/* nested: only the outermost commit commits */
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "a", 1, NULL, NULL), 0);
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "b", 1, NULL, NULL), 0);
	assert_int_equal(lama_store_commit(f.st), 0);
	assert_true(sqlite3_get_autocommit(lama_store_db(f.st)) == 0); /* still open */
	assert_int_equal(lama_store_commit(f.st), 0);
	assert_true(sqlite3_get_autocommit(lama_store_db(f.st)) != 0);
	assert_int_equal(lama_store_has(f.st, &a), 1);
	assert_int_equal(lama_store_has(f.st, &b), 1);

	/* an inner rollback dooms the outer transaction */
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "c", 1, NULL, NULL), 0);
	assert_int_equal(lama_store_begin(f.st), 0);
	lama_store_rollback(f.st);
	assert_int_not_equal(lama_store_commit(f.st), 0);
	assert_int_equal(lama_store_has(f.st, &c), 0);
	assert_true(sqlite3_get_autocommit(lama_store_db(f.st)) != 0);

	/* the next transaction is not doomed by the last one */
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "c", 1, NULL, NULL), 0);
	assert_int_equal(lama_store_commit(f.st), 0);
	assert_int_equal(lama_store_has(f.st, &c), 1);

	/* unbalanced calls */
	assert_int_equal(lama_store_commit(f.st), LAMA_EINVAL);
	lama_store_rollback(f.st); /* harmless */

	/* close with an open transaction rolls it back */
	assert_int_equal(lama_store_begin(f.st), 0);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_CLOB, "d", 1, &a, NULL), 0);
	fx_reopen(&f);
	assert_int_equal(lama_store_has(f.st, &a), 0);
	assert_int_equal(lama_store_has(f.st, &b), 1);
	fx_check_ok(&f);
	fx_done(&f);
}

/* ---- reverse maps ---- */

struct seen {
	int n;
	char type[8][64];
	lama_hash src[8];
	int stop_at;
};

static int collect(void *ctx, const char *type, const lama_hash *src)
{
	struct seen *s = ctx;

	assert_true(s->n < 8);
	snprintf(s->type[s->n], sizeof(s->type[0]), "%s", type);
	s->src[s->n] = *src;
	s->n++;
	return s->stop_at && s->n == s->stop_at ? 42 : 0;
}

static int seen_has(const struct seen *s, const char *type, const lama_hash *src)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->type[i], type) == 0 && lama_hash_eq(&s->src[i], src))
			return 1;
	return 0;
}

/* A callback that writes to the store while refs is running. */
static int add_more(void *ctx, const char *type, const lama_hash *src)
{
	lama_store *st = ctx;

	(void)type;
	return lama_store_ref_add(st, src, "Back", src);
}

static void test_refs(void **state)
{
	struct fx f;
	lama_hash dst, dst2, s1, s2, s3, s4;
	struct seen s;
	char longtype[200];

	(void)state;
	fx_open(&f);
	lama_sha256("dst", 3, &dst);
	lama_sha256("dst2", 4, &dst2);
	lama_sha256("s1", 2, &s1);
	lama_sha256("s2", 2, &s2);
	lama_sha256("s3", 2, &s3);
	lama_sha256("s4", 2, &s4);

	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst, NULL, collect, &s), 0);
	assert_int_equal(s.n, 0);

	assert_int_equal(lama_store_ref_add(f.st, &dst, "ChatMessage", &s1), 0);
	assert_int_equal(lama_store_ref_add(f.st, &dst, "ChatMessage", &s2), 0);
	assert_int_equal(lama_store_ref_add(f.st, &dst, "Person", &s3), 0);
	assert_int_equal(lama_store_ref_add(f.st, &dst, "Topic", &s1), 0); /* same src, other type */
	assert_int_equal(lama_store_ref_add(f.st, &dst2, "Person", &s4), 0);
	/* idempotent */
	assert_int_equal(lama_store_ref_add(f.st, &dst, "ChatMessage", &s1), 0);
	assert_int_equal(lama_store_ref_add(f.st, &dst, "Person", &s3), 0);
	/* a repeated reference is a second row, listed once */
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM ref"), 7);

	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst, NULL, collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_true(seen_has(&s, "ChatMessage", &s1));
	assert_true(seen_has(&s, "ChatMessage", &s2));
	assert_true(seen_has(&s, "Person", &s3));
	assert_true(seen_has(&s, "Topic", &s1));

	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst, "ChatMessage", collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_true(seen_has(&s, "ChatMessage", &s1));
	assert_true(seen_has(&s, "ChatMessage", &s2));

	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst, "Person", collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "Person", &s3));

	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst, "Nobody", collect, &s), 0);
	assert_int_equal(s.n, 0);

	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst2, NULL, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "Person", &s4));

	/* a non-zero return stops and comes back */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(lama_store_refs(f.st, &dst, NULL, collect, &s), 42);
	assert_int_equal(s.n, 2);

	/* the callback may write */
	assert_int_equal(lama_store_refs(f.st, &dst, NULL, add_more, f.st), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &s1, "Back", collect, &s), 0);
	assert_int_equal(s.n, 1);

	/* bad type names */
	assert_int_equal(lama_store_ref_add(f.st, &dst, "", &s1), LAMA_EINVAL);
	memset(longtype, 'T', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = '\0';
	assert_int_equal(lama_store_ref_add(f.st, &dst, longtype, &s1), LAMA_EINVAL);
	longtype[128] = '\0';
	assert_int_equal(lama_store_ref_add(f.st, &dst, longtype, &s1), LAMA_EINVAL);
	longtype[127] = '\0'; /* 127 bytes: the longest */
	assert_int_equal(lama_store_ref_add(f.st, &dst2, longtype, &s1), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst2, longtype, collect, &s), 0);
	assert_int_equal(s.n, 1);

	/* a bounded read says when it left referrers out */
	{
		int trunc = -1;

		memset(&s, 0, sizeof(s));
		assert_int_equal(lama_store_refs_max(f.st, &dst, NULL, 3, collect, &s, &trunc), 0);
		assert_int_equal(s.n, 3);
		assert_int_equal(trunc, 1);
		memset(&s, 0, sizeof(s));
		assert_int_equal(lama_store_refs_max(f.st, &dst, NULL, 4, collect, &s, &trunc), 0);
		assert_int_equal(s.n, 4);
		assert_int_equal(trunc, 0);
		memset(&s, 0, sizeof(s));
		assert_int_equal(lama_store_refs_max(f.st, &dst, "ChatMessage", 1, collect, &s, &trunc), 0);
		assert_int_equal(s.n, 1);
		assert_int_equal(trunc, 1);
	}

	fx_reopen(&f);
	memset(&s, 0, sizeof(s));
	assert_int_equal(lama_store_refs(f.st, &dst, NULL, collect, &s), 0);
	assert_int_equal(s.n, 4);
	fx_check_ok(&f);
	fx_done(&f);
}

/* ---- heads ---- */

static void test_heads(void **state)
{
	struct fx f;
	lama_hash id, id2, hs[5], *got;
	size_t n;

	(void)state;
	fx_open(&f);
	lama_sha256("id", 2, &id);
	lama_sha256("id2", 3, &id2);
	for (int i = 0; i < 5; i++)
		lama_sha256(&i, sizeof(i), &hs[i]);

	got = (lama_hash *)&f;
	n = 99;
	assert_int_equal(lama_store_heads_get(f.st, &id, &got, &n), 0);
	assert_int_equal(n, 0);
	assert_null(got);

	assert_int_equal(lama_store_heads_set(f.st, &id, hs, 1), 0);
	assert_int_equal(lama_store_heads_get(f.st, &id, &got, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(got, hs, 32);
	lama_free(got);

	/* overwrite with more */
	assert_int_equal(lama_store_heads_set(f.st, &id, hs, 5), 0);
	assert_int_equal(lama_store_heads_get(f.st, &id, &got, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(got, hs, 5 * 32);
	lama_free(got);

	/* overwrite with fewer */
	assert_int_equal(lama_store_heads_set(f.st, &id, hs + 3, 2), 0);
	assert_int_equal(lama_store_heads_get(f.st, &id, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(got, hs + 3, 2 * 32);
	lama_free(got);

	/* another ID is separate; an empty list is allowed */
	assert_int_equal(lama_store_heads_set(f.st, &id2, NULL, 0), 0);
	assert_int_equal(lama_store_heads_get(f.st, &id2, &got, &n), 0);
	assert_int_equal(n, 0);
	lama_free(got);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM head"), 2);

	fx_reopen(&f);
	assert_int_equal(lama_store_heads_get(f.st, &id, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(got, hs + 3, 2 * 32);
	lama_free(got);
	fx_check_ok(&f);
	fx_done(&f);
}

/* ---- kv ---- */

static void test_kv(void **state)
{
	struct fx f;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	char name[300];
	uint8_t *big = malloc(LAMA_KV_MAX + 1);

	(void)state;
	assert_non_null(big);
	fx_open(&f);
	assert_int_equal(lama_store_kv_get(f.st, "keychain", &b), LAMA_ENOTFOUND);
	assert_int_equal(lama_store_kv_put(f.st, "keychain", "secret-1", 8), 0);
	assert_int_equal(lama_store_kv_put(f.st, "settings", "{}", 2), 0);
	assert_int_equal(lama_store_kv_get(f.st, "keychain", &b), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "secret-1", 8);
	lama_buf_truncate(&b, 0);

	/* overwrite */
	assert_int_equal(lama_store_kv_put(f.st, "keychain", "second value", 12), 0);
	assert_int_equal(lama_store_kv_get(f.st, "keychain", &b), 0);
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data, "second value", 12);
	lama_buf_truncate(&b, 0);
	assert_int_equal(fx_count(&f, "SELECT count(*) FROM kv"), 2);

	/* empty value */
	assert_int_equal(lama_store_kv_put(f.st, "empty", "", 0), 0);
	assert_int_equal(lama_store_kv_get(f.st, "empty", &b), 0);
	assert_int_equal(b.len, 0);

	/* delete; deleting the absent is fine */
	assert_int_equal(lama_store_kv_del(f.st, "keychain"), 0);
	assert_int_equal(lama_store_kv_get(f.st, "keychain", &b), LAMA_ENOTFOUND);
	assert_int_equal(lama_store_kv_del(f.st, "keychain"), 0);
	assert_int_equal(lama_store_kv_get(f.st, "settings", &b), 0);
	assert_int_equal(b.len, 2);
	lama_buf_truncate(&b, 0);

	/* the largest value, and one byte more */
	for (size_t i = 0; i <= LAMA_KV_MAX; i++)
		big[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(lama_store_kv_put(f.st, "big", big, LAMA_KV_MAX + 1), LAMA_ELIMIT);
	memset(name, 'n', 200);
	name[200] = '\0';
	assert_int_equal(lama_store_kv_put(f.st, name, big, LAMA_KV_MAX), 0);
	assert_int_equal(lama_store_kv_get(f.st, name, &b), 0);
	assert_int_equal(b.len, LAMA_KV_MAX);
	assert_memory_equal(b.data, big, LAMA_KV_MAX);
	lama_buf_truncate(&b, 0);
	/* names: empty or too long are refused */
	name[201] = '\0';
	name[200] = 'n';
	assert_int_equal(lama_store_kv_put(f.st, name, "x", 1), LAMA_EINVAL);
	assert_int_equal(lama_store_kv_put(f.st, "", "x", 1), LAMA_EINVAL);

	fx_reopen(&f);
	assert_int_equal(lama_store_kv_get(f.st, "settings", &b), 0);
	assert_int_equal(b.len, 2);
	fx_check_ok(&f);
	lama_buf_release(&b);
	free(big);
	fx_done(&f);
}

/* ---- check on a clean store ---- */

static void progress_cb(void *ctx, uint64_t done)
{
	uint64_t *last = ctx;

	assert_true(done >= *last);
	*last = done;
}

static void test_check_clean(void **state)
{
	struct fx f;
	struct lama_store_check rep;
	lama_blob_writer *w;
	lama_hash h, id;
	uint8_t buf[1000];
	uint64_t last = 0;

	(void)state;
	fx_open(&f);
	memset(&rep, 0xff, sizeof(rep));
	assert_int_equal(lama_store_check(f.st, &rep, NULL, NULL), 0);
	assert_int_equal(rep.objects + rep.blobs + rep.refs + rep.heads + rep.kv + rep.bad, 0);

	for (int i = 0; i < 7; i++) {
		snprintf((char *)buf, sizeof(buf), "object %d", i);
		assert_int_equal(lama_store_put(f.st, LAMA_KIND_OBJECT, buf, strlen((char *)buf), &h,
						NULL), 0);
	}
	for (int i = 0; i < 3; i++) {
		memset(buf, i, sizeof(buf));
		assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
		for (int j = 0; j < 300 * (i + 1); j++)
			assert_int_equal(lama_blob_write(w, buf, sizeof(buf)), 0);
		assert_int_equal(lama_blob_write_end(w, NULL, NULL), 0);
	}
	lama_sha256("id", 2, &id);
	assert_int_equal(lama_store_ref_add(f.st, &id, "A", &h), 0);
	assert_int_equal(lama_store_ref_add(f.st, &id, "B", &h), 0);
	assert_int_equal(lama_store_heads_set(f.st, &id, &h, 1), 0);
	assert_int_equal(lama_store_kv_put(f.st, "one", "1", 1), 0);
	assert_int_equal(lama_store_kv_put(f.st, "two", "2", 1), 0);
	assert_int_equal(lama_store_kv_put(f.st, "three", "3", 1), 0);

	assert_int_equal(lama_store_check(f.st, &rep, progress_cb, &last), 0);
	assert_int_equal(rep.objects, 7);
	assert_int_equal(rep.blobs, 3);
	assert_int_equal(rep.blob_bytes, 1000 * 300 * (1 + 2 + 3));
	assert_int_equal(rep.refs, 2);
	assert_int_equal(rep.heads, 1);
	assert_int_equal(rep.kv, 3);
	assert_int_equal(rep.bad, 0);
	assert_true(last > 0);
	fx_done(&f);
}

/* ---- at rest ---- */

struct needle {
	const uint8_t *p;
	size_t n;
	const char *what;
	int hits;
};

struct needles {
	struct needle v[256];
	int count;
};

static void add_needle(struct needles *ns, const void *p, size_t n, const char *what)
{
	assert_true(ns->count < 256);
	ns->v[ns->count].p = p;
	ns->v[ns->count].n = n;
	ns->v[ns->count].what = what;
	ns->count++;
}

static void look(const char *name, const uint8_t *p, size_t n, void *ctx)
{
	struct needles *ns = ctx;

	for (int i = 0; i < ns->count; i++) {
		if (memmem(p, n, ns->v[i].p, ns->v[i].n)) {
			print_error("found %s in %s\n", ns->v[i].what, name);
			ns->v[i].hits++;
		}
	}
}

static void scan_all(const char *dir, struct needles *ns)
{
	int hits = 0;

	for (int i = 0; i < ns->count; i++)
		ns->v[i].hits = 0;
	scan_dir(dir, look, ns);
	for (int i = 0; i < ns->count; i++)
		hits += ns->v[i].hits;
	assert_int_equal(hits, 0);
}

static void test_at_rest(void **state)
{
	static const char text[] =
		"Meet me at the old lighthouse at 6pm; bring the blue folder and the spare key. "
		"Kind regards, Ada Lovelace <ada@example.org>";
	struct fx f;
	struct needles ns;
	lama_hash th, bh, idh;
	char thex[65], bhex[65], kv_secret[] = "kv-secret-value-0123456789abcdef";
	lama_blob_writer *w;
	uint8_t *blob;
	size_t blen = 3 * LAMA_BLOB_CHUNK + 777;
	char p[4300];

	(void)state;
	blob = malloc(blen);
	assert_non_null(blob);
	for (size_t i = 0; i < blen; i++) /* recognisable, low-entropy text */
		blob[i] = (uint8_t)("The quick brown fox jumps over the lazy dog. "[i % 45]);

	fx_open(&f);
	assert_int_equal(lama_store_put(f.st, LAMA_KIND_OBJECT, text, strlen(text), &th, NULL), 0);
	assert_int_equal(lama_blob_write_begin(f.st, &w), 0);
	assert_int_equal(lama_blob_write(w, blob, blen), 0);
	assert_int_equal(lama_blob_write_end(w, &bh, NULL), 0);
	lama_sha256("an id", 5, &idh);
	assert_int_equal(lama_store_ref_add(f.st, &th, "SecretType", &idh), 0);
	assert_int_equal(lama_store_heads_set(f.st, &idh, &th, 1), 0);
	assert_int_equal(lama_store_kv_put(f.st, "kv-secret-name", kv_secret, strlen(kv_secret)), 0);
	lama_hash_hex(&th, thex);
	lama_hash_hex(&bh, bhex);

	memset(&ns, 0, sizeof(ns));
	add_needle(&ns, text, strlen(text), "the text");
	for (size_t off = 0; off + 16 <= strlen(text); off += 5)
		add_needle(&ns, text + off, 16, "a 16-byte window of the text");
	add_needle(&ns, blob, 16, "a 16-byte window of the BLOB");
	add_needle(&ns, blob + LAMA_BLOB_CHUNK + 3, 16, "a 16-byte window of the BLOB");
	add_needle(&ns, th.b, 32, "the text's raw SHA-256");
	add_needle(&ns, th.b, 8, "8 bytes of the text's raw SHA-256");
	add_needle(&ns, thex, 64, "the text's hex hash");
	add_needle(&ns, thex, 16, "16 chars of the text's hex hash");
	add_needle(&ns, bh.b, 32, "the BLOB's raw SHA-256");
	add_needle(&ns, bh.b, 8, "8 bytes of the BLOB's raw SHA-256");
	add_needle(&ns, bhex, 64, "the BLOB's hex hash");
	add_needle(&ns, idh.b, 32, "the ID hash");
	add_needle(&ns, "SecretType", 10, "a reverse-map type name");
	add_needle(&ns, "kv-secret-name", 14, "a record name");
	add_needle(&ns, kv_secret, 16, "a record value");
	add_needle(&ns, K_ENC, 32, "the storage key");
	add_needle(&ns, K_IDX, 32, "the index key");

	/* while open: the WAL and its index hold the fresh rows */
	snprintf(p, sizeof(p), "%s-wal", f.path);
	assert_int_equal(access(p, F_OK), 0);
	scan_all(f.dir, &ns);
	/* after close: everything checkpointed into the main file */
	lama_store_close(f.st);
	f.st = NULL;
	scan_all(f.dir, &ns);
	fx_reopen(&f);
	get_ok(f.st, &th, LAMA_KIND_OBJECT, text, strlen(text));
	free(blob);
	fx_done(&f);
}

/* ---- allocation failure ---- */

static void test_alloc_failure(void **state)
{
	struct fx f;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	lama_hash h, *heads;
	size_t n;
	int rc, ok = 0, is_new;
	char text[200];

	(void)state;
	fx_open(&f);
	for (int sticky = 0; sticky <= 1; sticky++) {
		for (unsigned long k = 1; k <= 12; k++) {
			snprintf(text, sizeof(text), "object %d %lu", sticky, k);
			lama_mem_fail_after(k, sticky);
			rc = lama_store_put(f.st, LAMA_KIND_OBJECT, text, strlen(text), &h, &is_new);
			lama_mem_fail_after(0, 0);
			if (rc) {
				assert_int_equal(rc, LAMA_ENOMEM);
				assert_int_equal(lama_store_has(f.st, &h), 0);
				assert_int_equal(lama_store_put(f.st, LAMA_KIND_OBJECT, text, strlen(text),
								&h, NULL), 0);
			} else {
				ok++;
			}
			lama_mem_fail_after(k, sticky);
			rc = lama_store_get(f.st, &h, NULL, &b);
			lama_mem_fail_after(0, 0);
			if (rc) {
				assert_int_equal(rc, LAMA_ENOMEM);
				assert_int_equal(b.len, 0);
			} else {
				assert_int_equal(b.len, strlen(text));
			}
			lama_buf_truncate(&b, 0);

			lama_mem_fail_after(k, sticky);
			rc = lama_store_kv_put(f.st, "k", text, strlen(text));
			if (!rc)
				rc = lama_store_kv_get(f.st, "k", &b);
			lama_mem_fail_after(0, 0);
			assert_true(rc == 0 || rc == LAMA_ENOMEM);
			lama_buf_truncate(&b, 0);

			lama_mem_fail_after(k, sticky);
			rc = lama_store_ref_add(f.st, &h, "T", &h);
			if (!rc)
				rc = lama_store_heads_set(f.st, &h, &h, 1);
			if (!rc) {
				rc = lama_store_heads_get(f.st, &h, &heads, &n);
				if (!rc)
					lama_free(heads);
			}
			lama_mem_fail_after(0, 0);
			assert_true(rc == 0 || rc == LAMA_ENOMEM);
		}
	}
	assert_true(ok > 0); /* the loop went past the last allocation */
	fx_check_ok(&f);
	lama_buf_release(&b);
	fx_done(&f);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void test_alloc_failure_open(void **state)
{
	struct fx f;
	lama_store *st;
	int rc;

	(void)state;
	fx_init(&f);
	for (int create = 1; create >= 0; create--) {
		for (unsigned long k = 1; k <= 30; k++) {
			lama_mem_fail_after(k, 1);
			rc = lama_store_open(&st, f.path, K_ENC, K_IDX, LAMA_STORE_CREATE);
			lama_mem_fail_after(0, 0);
			if (rc) {
				assert_int_equal(rc, LAMA_ENOMEM);
				assert_null(st);
				if (create) /* no file left: not the db, its WAL or shm */
					assert_int_equal(count_files(f.dir), 0);
			} else {
				lama_store_close(st);
				break;
			}
		}
		assert_int_equal(access(f.path, F_OK), 0);
	}
	tu_rmtree(f.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_create_reopen),
		cmocka_unit_test(test_open_not_a_database),
		cmocka_unit_test(test_put_get_kinds),
		cmocka_unit_test(test_get_unknown),
		cmocka_unit_test(test_put_limits),
		cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_heads),
		cmocka_unit_test(test_kv),
		cmocka_unit_test(test_check_clean),
		cmocka_unit_test(test_at_rest),
		cmocka_unit_test(test_alloc_failure),
		cmocka_unit_test(test_alloc_failure_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
