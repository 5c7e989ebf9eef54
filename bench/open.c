/* open.c: opening a large archive. lama_store_open and a first
 * lama_store_get on an archive of 1,000,000 objects, each in a fresh child
 * process (this program started again through /proc/self/exe), which
 * reports the time of open + get and its VmRSS afterwards. Baseline: a
 * fresh child that only does sqlite3_open_v2 and one SELECT of a stored
 * row by key on the same file.
 *
 * The archive is built once and kept in the cache folder (--cache, the
 * build folder's bench/cache), so reruns start at once. Children run in
 * alternation, ROUNDS of each; figures are medians (the first, coldest
 * round is reported apart).
 *
 * Lines: store.open.1m (ms, target < 50), store.open.1m.rss (MiB, target
 * < 10). */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common.h"
#include "crypto/crypto.h"
#include "object/object.h"
#include "store/store.h"
#include "util/err.h"

#define ROUNDS 7
#define BUILD_TX 50000
#define PROBE 123457 /* the object the first get reads */

extern char **environ;

/* Microdata of the i-th ChatMessage of the archive. */
static void message(const lama_recipes *rec, json_t *obj, size_t i, struct lama_buf *md)
{
	char text[160];

	snprintf(text, sizeof(text), "message %zu: see you at the station at %zu:%02zu, "
		 "I will bring the tickets", i, 8 + i % 12, i % 60);
	if (json_object_set_new(obj, "text", json_string(text)))
		bench_fail("out of memory");
	lama_buf_truncate(md, 0);
	bench_check(lama_object_microdata(rec, obj, md), "lama_object_microdata");
}

static json_t *message_template(void)
{
	json_t *o = json_pack("{s:s, s:s}", "$type$", "ChatMessage", "sender",
			      "5d3f0a6c1b2e4f7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d");

	if (!o)
		bench_fail("json_pack failed");
	return o;
}

/* Builds the archive at path unless a complete one is there ("path.done"
 * names its object count). */
static void build(const lama_recipes *rec, const char *path, size_t n)
{
	char tmp[4200], done[4200], want[64], have[64] = "";
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint8_t enc[32], idx[32];
	json_t *obj = message_template();
	lama_store *st;
	double t0 = bench_now();
	FILE *f;

	snprintf(done, sizeof(done), "%s.done", path);
	snprintf(want, sizeof(want), "%zu objects, format %d\n", n, LAMA_STORE_FORMAT);
	if ((f = fopen(done, "r"))) {
		if (!fgets(have, sizeof(have), f))
			have[0] = '\0';
		fclose(f);
	}
	if (strcmp(have, want) == 0 && access(path, R_OK) == 0) {
		json_decref(obj);
		return;
	}
	fprintf(stderr, "open: building an archive of %zu objects in %s (once)\n", n, path);
	snprintf(tmp, sizeof(tmp), "%s.building", path);
	unlink(done);
	unlink(path);
	unlink(tmp);
	bench_keys(enc, idx);
	bench_check(lama_store_open(&st, tmp, enc, idx, LAMA_STORE_CREATE), "lama_store_open");
	/* building only: a big page cache makes the big transactions fast */
	sqlite3_exec(lama_store_db(st), "PRAGMA cache_size=-262144", NULL, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		if (i % BUILD_TX == 0)
			bench_check(lama_store_begin(st), "begin");
		message(rec, obj, i, &md);
		bench_check(lama_store_put(st, LAMA_KIND_OBJECT, md.data, md.len, NULL, NULL),
			    "lama_store_put");
		if (i % BUILD_TX == BUILD_TX - 1 || i == n - 1) {
			bench_check(lama_store_commit(st), "commit");
			fprintf(stderr, "\ropen: %zu objects", i + 1);
		}
	}
	lama_store_close(st); /* checkpoints and removes the WAL */
	if (rename(tmp, path) != 0)
		bench_fail("rename %s: %s", tmp, strerror(errno));
	if (!(f = fopen(done, "w")) || fputs(want, f) < 0 || fclose(f) != 0)
		bench_fail("cannot write %s", done);
	fprintf(stderr, "\nopen: built in %.1f s\n", bench_now() - t0);
	lama_buf_release(&md);
	json_decref(obj);
}

/* --- the children --- */

static int child_lama(const char *path, const char *hexhash)
{
	struct lama_buf out = LAMA_BUF_INIT(LAMA_BUF_MAX);
	uint8_t enc[32], idx[32];
	long rss0 = bench_rss_kib();
	lama_store *st;
	lama_hash h;
	double t0, t1;

	bench_check(lama_crypto_init(), "crypto init");
	bench_check(lama_hash_parse(hexhash, strlen(hexhash), &h), "hash");
	bench_keys(enc, idx);
	t0 = bench_now();
	bench_check(lama_store_open(&st, path, enc, idx, 0), "lama_store_open");
	bench_check(lama_store_get(st, &h, NULL, &out), "lama_store_get");
	t1 = bench_now();
	printf("%.6f %ld %ld\n", (t1 - t0) * 1e3, rss0, bench_rss_kib());
	lama_buf_release(&out);
	lama_store_close(st);
	return 0;
}

static int child_sqlite(const char *path, const char *hexkey)
{
	uint8_t key[32], copy[4096];
	long rss0 = bench_rss_kib();
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	double t0, t1;
	int n;

	bench_check(lama_hex_decode(hexkey, strlen(hexkey), key, sizeof(key)), "key");
	t0 = bench_now();
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT val FROM obj WHERE key=?1", -1, &s, NULL) != SQLITE_OK)
		bench_fail("sqlite: %s", sqlite3_errmsg(db));
	sqlite3_bind_blob(s, 1, key, sizeof(key), SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW)
		bench_fail("sqlite: row not found");
	n = sqlite3_column_bytes(s, 0);
	memcpy(copy, sqlite3_column_blob(s, 0), (size_t)n < sizeof(copy) ? (size_t)n : sizeof(copy));
	t1 = bench_now();
	printf("%.6f %ld %ld\n", (t1 - t0) * 1e3, rss0, bench_rss_kib());
	sqlite3_finalize(s);
	sqlite3_close(db);
	return 0;
}

/* Runs this program as a child with args; reads its "ms rss0 rss1" line. */
static void run_child(const char *self, const char *mode, const char *path, const char *arg,
		      double *ms, double *rss0, double *rss1)
{
	char *argv[] = { (char *)self, "--child", (char *)mode, (char *)path, (char *)arg, NULL };
	posix_spawn_file_actions_t fa;
	int fds[2], status;
	char line[256];
	pid_t pid;
	FILE *f;
	long r0, r1;

	if (pipe(fds) != 0)
		bench_fail("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0)
		bench_fail("cannot start %s", self);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	f = fdopen(fds[0], "r");
	if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "%lf %ld %ld", ms, &r0, &r1) != 3)
		bench_fail("child %s gave no figures", mode);
	fclose(f);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_fail("child %s failed", mode);
	*rss0 = (double)r0 / 1024;
	*rss1 = (double)r1 / 1024;
}

/* Any stored row key, for the baseline's lookup (it has no index key). */
static void some_row_key(const char *path, char hex[65])
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT key FROM obj WHERE key >= x'80' LIMIT 1", -1, &s,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW || sqlite3_column_bytes(s, 0) != 32)
		bench_fail("sqlite: %s", sqlite3_errmsg(db));
	lama_hex_encode(sqlite3_column_blob(s, 0), 32, hex);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

int main(int argc, char **argv)
{
	const char *cache = bench_opt(argc, argv, "cache", "build-bench/bench/cache");
	size_t n = (size_t)strtoul(bench_opt(argc, argv, "open-objects", "1000000"), NULL, 10);
	char path[4096], self[4096], hash_hex[65], key_hex[65], extra[512];
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX);
	double lt[ROUNDS], lr[ROUNDS], lr0[ROUNDS], st[ROUNDS], sr[ROUNDS], sr0[ROUNDS];
	double lt_first, st_first;
	lama_recipes *rec;
	json_t *obj;
	lama_hash h;
	ssize_t len;

	if (argc == 5 && strcmp(argv[1], "--child") == 0)
		return strcmp(argv[2], "lama") == 0 ? child_lama(argv[3], argv[4])
						    : child_sqlite(argv[3], argv[4]);
	if (n <= PROBE)
		bench_fail("--open-objects must be above %d", PROBE);
	bench_check(lama_crypto_init(), "crypto init");
	bench_check(lama_recipes_new(&rec), "recipes");
	bench_check(lama_recipes_add_builtin(rec), "recipes");
	if (mkdir(cache, 0700) != 0 && errno != EEXIST)
		bench_fail("%s: %s", cache, strerror(errno));
	if ((size_t)snprintf(path, sizeof(path), "%s/archive-%zu.db", cache, n) >= sizeof(path))
		bench_fail("cache path too long");
	build(rec, path, n);

	obj = message_template();
	message(rec, obj, PROBE, &md);
	lama_sha256(md.data, md.len, &h);
	lama_hash_hex(&h, hash_hex);
	json_decref(obj);
	lama_buf_release(&md);
	some_row_key(path, key_hex);

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0 || (size_t)len >= sizeof(self) - 1)
		bench_fail("cannot find this program's path");
	self[len] = '\0';
	for (int i = 0; i < ROUNDS; i++) {
		run_child(self, "lama", path, hash_hex, &lt[i], &lr0[i], &lr[i]);
		run_child(self, "sqlite", path, key_hex, &st[i], &sr0[i], &sr[i]);
	}
	lt_first = lt[0];
	st_first = st[0];

	{
		double t = bench_median(lt, ROUNDS), b = bench_median(st, ROUNDS);
		double tmax = lt[ROUNDS - 1];

		snprintf(extra, sizeof(extra),
			 "\"target\": \"value < 50\", \"pass\": %s, \"objects\": %zu, "
			 "\"rounds\": %d, \"first_ms\": %.3g, \"max_ms\": %.3g, "
			 "\"baseline_first_ms\": %.3g, \"what\": \"lama_store_open + lama_store_get "
			 "in a fresh process\"",
			 bench_bool(t < 50), n, ROUNDS, lt_first, tmax, st_first);
		bench_emit("store.open.1m", "ms", t, "sqlite3_open_v2+select", b, extra);
	}
	{
		double r = bench_median(lr, ROUNDS), b = bench_median(sr, ROUNDS);
		double r0 = bench_median(lr0, ROUNDS), b0 = bench_median(sr0, ROUNDS);

		snprintf(extra, sizeof(extra),
			 "\"target\": \"value < 10\", \"pass\": %s, \"rss_at_start_mib\": %.3g, "
			 "\"baseline_rss_at_start_mib\": %.3g, \"what\": \"VmRSS after open + get\"",
			 bench_bool(lr[ROUNDS - 1] < 10), r0, b0);
		bench_emit("store.open.1m.rss", "MiB", r, "sqlite3_open_v2+select", b, extra);
	}
	lama_recipes_free(rec);
	return 0;
}
