/* search.c: the blind search index against a plain FTS5 table.
 *
 * --messages (100,000) synthetic messages of 6 to 30 words drawn from a
 * Zipf-distributed vocabulary of 20,000 made-up words (deterministic) are
 * indexed in batches of 1,000, alternately by lama_search_add_batch (token
 * hashing, sealing, a contentless FTS5 table, WAL) and into a plain FTS5
 * table with the text stored in clear (unicode61 remove_diacritics 2, the
 * same pragmas), each in its own file:
 *   search.index      messages/s, baseline fts5.plain.insert
 * Then --queries (400) queries of five kinds (a common word, a rare word,
 * two words, a phrase, an OR with an exclusion), limit 20, with snippets
 * (lama decrypts and highlights; the plain table with lama's plan reads
 * the 20 texts, the one ranking all calls FTS5's snippet()), the side that
 * goes first rotating:
 *   search.query.p50 / search.query.p99   ms (target: under 20 ms), against
 *       the plain table queried with lama's plan (bm25 over the newest
 *       LAMA_SEARCH_RANK_WINDOW matches): the cost of blindness alone
 *   search.query.p99.vs_full_rank         the same lama figure against the
 *       plain table ranking every match (FTS5's ORDER BY rank)
 * and the size of the files:
 *   search.size       bytes per message, baseline the plain table's.
 *
 * Then through `lama serve` (the binary beside this program) and its index
 * worker, on a data folder of --serve-messages (20,000) such messages in
 * four conversations, never indexed, so the server builds the index in the
 * background as it starts (`--only index` or `--only serve` runs one part):
 *   search.serve.ping.p99.building   ms: query:ping round trips, one
 *       every 2 ms, while the initial build runs (and a query:search four
 *       times a second to see whether it is over), against up to 3,000
 *       pings at the same pace once it is over
 *   search.serve.ping.max.building   ms: the worst of them, the same
 *   search.serve.build               messages/s of that build (from the
 *       server's start until a query answers "partial": false), against
 *       lama_search_rebuild in one process on the same folder
 *   search.serve.query.p50 / p99     ms: query:search through the server
 *       and the index worker, against lama_search_query_json in one
 *       process on the same index (the cost of the worker's round trip) */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat/chat.h"
#include "common.h"
#include "crypto/crypto.h"
#include "leute/leute.h"
#include "models/models.h"
#include "search/search.h"
#include "util/err.h"

extern char **environ;

#define BATCH 1000
#define VOCAB 20000

static char words[VOCAB][16];
static double *cdf;

static void make_words(void)
{
	static const char *syl[] = { "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "va", "de",
				     "qu", "zo", "fe", "gi", "ha", "ju", "bo", "xi", "wa", "ly" };
	double sum = 0;

	for (int i = 0; i < VOCAB; i++) {
		int v = i;

		words[i][0] = 0;
		/* a unique word per number: its digits in base 20 as syllables */
		do {
			strcat(words[i], syl[v % 20]);
			v /= 20;
		} while (v);
		strcat(words[i], "n");
	}
	cdf = malloc(VOCAB * sizeof(*cdf));
	if (!cdf)
		bench_fail("out of memory");
	for (int i = 0; i < VOCAB; i++)
		cdf[i] = (sum += 1.0 / (i + 1));
	for (int i = 0; i < VOCAB; i++)
		cdf[i] /= sum;
}

static uint64_t seed = 0x5eed;

static uint64_t rnd64(void)
{
	seed ^= seed >> 12;
	seed ^= seed << 25;
	seed ^= seed >> 27;
	return seed * 0x2545F4914F6CDD1DULL;
}

static int zipf(void)
{
	double u = (double)(rnd64() >> 11) / 9007199254740992.0;
	int lo = 0, hi = VOCAB - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void make_text(char *out, size_t n)
{
	int k = 6 + (int)(rnd64() % 25);
	size_t len = 0;

	out[0] = 0;
	for (int i = 0; i < k && len + 20 < n; i++)
		len += (size_t)snprintf(out + len, n - len, "%s%s", i ? " " : "", words[zipf()]);
}

static sqlite3 *plain;

static void plain_exec(const char *sql)
{
	if (sqlite3_exec(plain, sql, NULL, NULL, NULL) != SQLITE_OK)
		bench_fail("plain fts5: %s", sqlite3_errmsg(plain));
}

static int count_hit(void *ctx, const struct lama_search_hit *h)
{
	(*(size_t *)ctx)++;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i = (size_t)ceil(p * (double)n) - 1;

	qsort(v, n, sizeof(*v), cmp);
	return v[i < n ? i : n - 1];
}

static long long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	long long n = 0;

	if (f) {
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		fclose(f);
	}
	return n;
}

/* ---- through lama serve and its index worker ---- */

#define PASSWORD "pw"
#define PING_MS 2        /* a ping every 2 ms while measuring */
#define IDLE_PINGS 3000  /* at most this many once the build is over */

static pid_t server;

static void kill_server(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = 0;
	}
}

static int sock_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	double until = bench_now() + 20;

	if (strlen(path) >= sizeof(a.sun_path))
		bench_fail("socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	while (bench_now() < until) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(2000);
	}
	bench_fail("cannot connect to %s", path);
}

static char rbuf[4 << 20];
static size_t rhave;

/* Sends line and returns its reply line (pushes skipped), valid until
 * the next call. */
static const char *rpc(int fd, const char *line)
{
	static char reply[sizeof(rbuf)];
	size_t n = strlen(line);

	while (n > 0) {
		ssize_t w = write(fd, line, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			bench_fail("write: %s", strerror(errno));
		line += w;
		n -= (size_t)w;
	}
	for (;;) {
		char *nl;
		ssize_t r;

		while ((nl = memchr(rbuf, '\n', rhave))) {
			size_t len = (size_t)(nl - rbuf);
			int is_reply = !strncmp(rbuf, "{\"id\":", 6);

			if (is_reply) {
				memcpy(reply, rbuf, len);
				reply[len] = '\0';
			}
			memmove(rbuf, nl + 1, rhave - len - 1);
			rhave -= len + 1;
			if (is_reply) {
				if (strstr(reply, "\"error\""))
					bench_fail("error reply: %.300s", reply);
				return reply;
			}
		}
		if (rhave == sizeof(rbuf))
			bench_fail("reply too long");
		r = read(fd, rbuf + rhave, sizeof(rbuf) - rhave);
		if (r <= 0)
			bench_fail("read: %s", r ? strerror(errno) : "closed");
		rhave += (size_t)r;
	}
}

/* The five kinds of queries of the first part, for query i. */
static void make_query(size_t i, char *q, size_t n)
{
	const char *a = words[zipf()], *c = words[zipf()];
	const char *rare = words[1000 + rnd64() % (VOCAB - 1000)], *common = words[rnd64() % 20];

	switch (i % 5) {
	case 0: snprintf(q, n, "%s", common); break;
	case 1: snprintf(q, n, "%s", rare); break;
	case 2: snprintf(q, n, "%s %s", a, c); break;
	case 3: snprintf(q, n, "\"%s %s\"", common, a); break;
	default: snprintf(q, n, "%s OR %s -%s", a, rare, c); break;
	}
}

static char *search_line(const char *q)
{
	json_t *j = json_pack("{s:i, s:s, s:{s:s, s:i}}", "id", 1, "channel", "query:search",
			      "payload", "query", q, "limit", 20);
	char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	char *out = line ? malloc(strlen(line) + 2) : NULL;

	if (!out)
		bench_fail("out of memory");
	sprintf(out, "%s\n", line);
	free(line);
	json_decref(j);
	return out;
}

static void bench_serve(const char *tmp, size_t total, size_t nq)
{
	char dir[4096], sock[4200], lama[4200], self[4096], extra[256];
	struct lama_kdf_params kdf = lama_kdf_min();
	static char texts[BATCH][400];
	struct lama_outgoing out[BATCH];
	struct lama_topic t[4];
	lama_session *s;
	lama_search *x;
	double t0, t_build, t_rebuild, *busy, *idle, *qs, *qh;
	size_t nbusy = 0, nidle, cap = 1 << 20;
	char **queries;
	ssize_t n;
	int fd, status;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		bench_fail("cannot find this program");
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(lama, sizeof(lama), "%s/../src/cli/lama", self);
	if (access(lama, X_OK))
		bench_fail("no lama binary at %s", lama);
	setenv("LAMA_PASSWORD", PASSWORD, 1);
	setenv("LAMA_KDF", "min", 1);
	atexit(kill_server);

	/* a user with four conversations of total messages in all, never indexed */
	bench_mkdtemp(tmp, "search-serve", dir, sizeof(dir));
	bench_check(lama_account_register(dir, "bench", PASSWORD, strlen(PASSWORD), &kdf, &s),
		    "register");
	bench_check(lama_models_init(s), "models");
	for (int i = 0; i < 4; i++) {
		struct lama_person peer;
		char name[16];

		snprintf(name, sizeof(name), "Peer %d", i);
		bench_check(lama_leute_add_contact(s, name, NULL, 0, NULL, &peer), "contact");
		bench_check(lama_chat_create(s, NULL, &peer.person, 1, &t[i], NULL), "topic");
	}
	for (size_t done = 0, b = 0; done < total; done += BATCH, b++) {
		size_t k = total - done < BATCH ? total - done : BATCH;

		for (size_t i = 0; i < k; i++) {
			make_text(texts[i], sizeof(texts[i]));
			out[i] = (struct lama_outgoing){ .text = texts[i] };
		}
		bench_check(lama_chat_send(s, &t[b % 4], out, k, NULL), "send");
	}
	for (int i = 0; i < 4; i++)
		lama_topic_release(&t[i]);
	lama_session_logout(s);
	fprintf(stderr, "search: %zu messages in a data folder; lama serve builds the index\n", total);

	/* the build in the background: pings, and a query every 20 of them
	 * until it says the index is whole */
	busy = malloc(cap * sizeof(*busy));
	idle = malloc(cap * sizeof(*idle));
	qs = malloc(nq * sizeof(*qs));
	qh = malloc(nq * sizeof(*qh));
	queries = malloc(nq * sizeof(*queries));
	if (!busy || !idle || !qs || !qh || !queries)
		bench_fail("out of memory");
	{
		char *argv[] = { lama, "--home", dir, "serve", NULL };
		posix_spawn_file_actions_t fa;
		char *probe = search_line(words[0]);
		double probed = 0;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		t0 = bench_now();
		if (posix_spawn(&server, lama, &fa, NULL, argv, environ) != 0)
			bench_fail("cannot start %s", lama);
		posix_spawn_file_actions_destroy(&fa);
		snprintf(sock, sizeof(sock), "%s/lama.sock", dir);
		fd = sock_connect(sock);
		for (;;) {
			double a = bench_now(), left;

			rpc(fd, "{\"id\":1,\"channel\":\"query:ping\"}\n");
			if (nbusy < cap)
				busy[nbusy++] = (bench_now() - a) * 1000;
			/* one ping every PING_MS, as a client polling would: a
			 * stall shows in as many pings as it lasts */
			if ((left = a + PING_MS / 1000.0 - bench_now()) > 0)
				usleep((useconds_t)(left * 1e6));
			/* a query four times a second: is the index whole? */
			if (bench_now() - probed > 0.25) {
				probed = bench_now();
				if (strstr(rpc(fd, probe), "\"partial\":false"))
					break;
			}
			if (bench_now() - t0 > 600)
				bench_fail("the index was not built in 10 minutes");
		}
		t_build = bench_now() - t0;
		free(probe);
	}
	nidle = nbusy < IDLE_PINGS ? nbusy : IDLE_PINGS;
	for (size_t i = 0; i < nidle; i++) {
		double a = bench_now(), left;

		rpc(fd, "{\"id\":1,\"channel\":\"query:ping\"}\n");
		idle[i] = (bench_now() - a) * 1000;
		if ((left = a + PING_MS / 1000.0 - bench_now()) > 0)
			usleep((useconds_t)(left * 1e6));
	}
	for (size_t i = 0; i < nq; i++) {
		char q[200];
		double a;

		make_query(i, q, sizeof(q));
		queries[i] = search_line(q);
		a = bench_now();
		rpc(fd, queries[i]);
		qs[i] = (bench_now() - a) * 1000;
	}
	close(fd);
	kill(server, SIGTERM);
	if (waitpid(server, &status, 0) != server || !WIFEXITED(status) || WEXITSTATUS(status))
		bench_fail("lama serve did not exit cleanly");
	server = 0;

	/* the same in one process: the queries, and a rebuild */
	bench_check(lama_account_login(dir, NULL, PASSWORD, strlen(PASSWORD), &s), "login");
	bench_check(lama_models_init(s), "models");
	bench_check(lama_search_open(s, &x), "open the index");
	for (size_t i = 0; i < nq; i++) {
		json_t *j = json_loads(queries[i], 0, NULL), *r = NULL;
		const char *q = json_string_value(json_object_get(json_object_get(j, "payload"), "query"));
		struct lama_search_opts o = { .limit = 20 };
		double a = bench_now();

		bench_check(lama_search_query_json(s, x, q, strlen(q), &o, &r), "query");
		qh[i] = (bench_now() - a) * 1000;
		json_decref(r);
		json_decref(j);
		free(queries[i]);
	}
	t0 = bench_now();
	bench_check(lama_search_rebuild(s, x, NULL, NULL), "rebuild");
	t_rebuild = bench_now() - t0;
	lama_search_close(x);
	lama_session_logout(s);

	snprintf(extra, sizeof(extra), "\"messages\": %zu, \"pings\": %zu, \"target\": \"value < 100\", \"pass\": %s",
		 total, nbusy, bench_bool(pct(busy, nbusy, 0.99) < 100));
	bench_emit("search.serve.ping.p99.building", "ms", pct(busy, nbusy, 0.99),
		   "search.serve.ping.p99.idle", pct(idle, nidle, 0.99), extra);
	snprintf(extra, sizeof(extra), "\"messages\": %zu, \"pings\": %zu, \"idle_pings\": %zu",
		 total, nbusy, nidle);
	bench_emit("search.serve.ping.max.building", "ms", pct(busy, nbusy, 1.0),
		   "search.serve.ping.max.idle", pct(idle, nidle, 1.0), extra);
	snprintf(extra, sizeof(extra), "\"messages\": %zu", total);
	bench_emit("search.serve.build", "messages/s", (double)total / t_build,
		   "search.inprocess.rebuild", (double)total / t_rebuild, extra);
	snprintf(extra, sizeof(extra), "\"messages\": %zu, \"queries\": %zu, \"limit\": 20", total, nq);
	bench_emit("search.serve.query.p50", "ms", pct(qs, nq, 0.5), "search.inprocess.query.p50",
		   pct(qh, nq, 0.5), extra);
	bench_emit("search.serve.query.p99", "ms", pct(qs, nq, 0.99), "search.inprocess.query.p99",
		   pct(qh, nq, 0.99), extra);
	free(busy);
	free(idle);
	free(qs);
	free(qh);
	free(queries);
	bench_rmtree(dir);
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	size_t total = (size_t)atol(bench_opt(argc, argv, "messages", "100000"));
	size_t nq = (size_t)atol(bench_opt(argc, argv, "queries", "400"));
	size_t serve_total = (size_t)atol(bench_opt(argc, argv, "serve-messages", "20000"));
	const char *only = bench_opt(argc, argv, "only", "");
	char dir[4096], path[4200], ppath[4200], extra[256];
	static char texts[BATCH][400];
	struct lama_search_doc docs[BATCH];
	uint8_t tk[32], sk[32];
	double t_lama = 0, t_plain = 0, t0;
	double *ql, *qp, *qf;
	size_t full_hits = 0;
	sqlite3_stmt *full;
	size_t lama_hits = 0, plain_hits = 0;
	sqlite3_stmt *ins, *sel;
	lama_search *x;

	if (total < BATCH)
		total = BATCH;
	if (nq < 10)
		nq = 10;
	bench_check(lama_crypto_init(), "crypto init");
	make_words();
	if (!strcmp(only, "serve")) {
		bench_serve(tmp, serve_total < BATCH ? BATCH : serve_total, nq);
		free(cdf);
		return 0;
	}
	bench_mkdtemp(tmp, "search", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/search.db", dir);
	snprintf(ppath, sizeof(ppath), "%s/plain.db", dir);
	lama_random(tk, 32);
	lama_random(sk, 32);
	bench_check(lama_search_open_at(path, tk, sk, &x), "open");
	if (sqlite3_open(ppath, &plain) != SQLITE_OK)
		bench_fail("cannot open %s", ppath);
	plain_exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;"
		   "CREATE VIRTUAL TABLE fts USING fts5(body, tokenize='unicode61 remove_diacritics 2')");
	if (sqlite3_prepare_v2(plain, "INSERT INTO fts(rowid, body) VALUES(?1, ?2)", -1, &ins, NULL))
		bench_fail("prepare: %s", sqlite3_errmsg(plain));

	/* indexing, batch by batch, the side that goes first alternating */
	for (size_t done = 0, b = 0; done < total; done += BATCH, b++) {
		size_t n = total - done < BATCH ? total - done : BATCH;

		for (size_t i = 0; i < n; i++) {
			make_text(texts[i], sizeof(texts[i]));
			memset(&docs[i], 0, sizeof(docs[i]));
			memcpy(docs[i].id.b, &(uint64_t){ done + i }, 8);
			docs[i].topic = (done + i) % 7 ? "topic-a" : "topic-b";
			docs[i].time = 1.7e12 + (double)(done + i);
			docs[i].text = texts[i];
			docs[i].text_len = strlen(texts[i]);
		}
		for (int side = 0; side < 2; side++) {
			if ((side + (int)b) % 2 == 0) {
				t0 = bench_now();
				bench_check(lama_search_add_batch(x, docs, n), "add batch");
				t_lama += bench_now() - t0;
			} else {
				t0 = bench_now();
				plain_exec("BEGIN");
				for (size_t i = 0; i < n; i++) {
					sqlite3_bind_int64(ins, 1, (sqlite3_int64)(done + i + 1));
					sqlite3_bind_text(ins, 2, texts[i], -1, SQLITE_STATIC);
					if (sqlite3_step(ins) != SQLITE_DONE)
						bench_fail("insert: %s", sqlite3_errmsg(plain));
					sqlite3_reset(ins);
				}
				plain_exec("COMMIT");
				t_plain += bench_now() - t0;
			}
		}
		if ((b + 1) % 20 == 0)
			fprintf(stderr, "search: %zu of %zu messages indexed\n", done + n, total);
	}
	sqlite3_finalize(ins);
	snprintf(extra, sizeof(extra), "\"messages\": %zu, \"batch\": %d", total, BATCH);
	bench_emit("search.index", "messages/s", (double)total / t_lama, "fts5.plain.insert",
		   (double)total / t_plain, extra);

	/* queries */
	if (sqlite3_prepare_v2(plain, "SELECT rowid, snippet(fts, 0, '[', ']', '...', 24) FROM fts "
				      "WHERE fts MATCH ?1 ORDER BY rank LIMIT 20", -1, &full, NULL))
		bench_fail("prepare: %s", sqlite3_errmsg(plain));
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
			 "SELECT s.rowid, c.c0 FROM"
			 " (SELECT rowid, score FROM (SELECT rowid, bm25(fts) AS score FROM fts"
			 "  WHERE fts MATCH ?1 ORDER BY rowid DESC LIMIT %d) ORDER BY score LIMIT 20) s"
			 " JOIN fts_content c ON c.id = s.rowid ORDER BY s.score",
			 LAMA_SEARCH_RANK_WINDOW);
		if (sqlite3_prepare_v2(plain, sql, -1, &sel, NULL))
			bench_fail("prepare: %s", sqlite3_errmsg(plain));
	}
	ql = malloc(nq * sizeof(*ql));
	qp = malloc(nq * sizeof(*qp));
	qf = malloc(nq * sizeof(*qf));
	if (!ql || !qp || !qf)
		bench_fail("out of memory");
	for (size_t i = 0; i < nq; i++) {
		char q[200], pq[240];
		const char *a = words[zipf()], *c = words[zipf()];
		const char *rare = words[1000 + rnd64() % (VOCAB - 1000)], *common = words[rnd64() % 20];

		switch (i % 5) {
		case 0:
			snprintf(q, sizeof(q), "%s", common);
			snprintf(pq, sizeof(pq), "\"%s\"", common);
			break;
		case 1:
			snprintf(q, sizeof(q), "%s", rare);
			snprintf(pq, sizeof(pq), "\"%s\"", rare);
			break;
		case 2:
			snprintf(q, sizeof(q), "%s %s", a, c);
			snprintf(pq, sizeof(pq), "\"%s\" AND \"%s\"", a, c);
			break;
		case 3:
			snprintf(q, sizeof(q), "\"%s %s\"", common, a);
			snprintf(pq, sizeof(pq), "\"%s %s\"", common, a);
			break;
		default:
			snprintf(q, sizeof(q), "%s OR %s -%s", a, rare, c);
			snprintf(pq, sizeof(pq), "(\"%s\" OR \"%s\") NOT \"%s\"", a, rare, c);
			break;
		}
		for (int side = 0; side < 3; side++) {
			int which = (side + (int)i) % 3;

			if (which == 2) {
				t0 = bench_now();
				sqlite3_bind_text(full, 1, pq, -1, SQLITE_STATIC);
				while (sqlite3_step(full) == SQLITE_ROW)
					full_hits++;
				sqlite3_reset(full);
				qf[i] = (bench_now() - t0) * 1000;
			} else if (which == 0) {
				struct lama_search_opts o = { .limit = 20 };

				t0 = bench_now();
				bench_check(lama_search_query(x, q, strlen(q), &o, count_hit, &lama_hits), "query");
				ql[i] = (bench_now() - t0) * 1000;
			} else {
				t0 = bench_now();
				sqlite3_bind_text(sel, 1, pq, -1, SQLITE_STATIC);
				while (sqlite3_step(sel) == SQLITE_ROW)
					plain_hits++;
				sqlite3_reset(sel);
				qp[i] = (bench_now() - t0) * 1000;
			}
		}
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(full);
	if (getenv("BENCH_SEARCH_KINDS"))
		for (size_t i = 0; i < nq; i++)
			fprintf(stderr, "kind %zu lama %.2f plain %.2f full %.2f\n", i % 5, ql[i], qp[i], qf[i]);
	if (lama_hits != plain_hits || lama_hits != full_hits)
		bench_fail("the indexes disagree: %zu hits against %zu and %zu", lama_hits, plain_hits,
			   full_hits);
	{
		double p50 = pct(ql, nq, 0.5), b50 = pct(qp, nq, 0.5);
		double p99 = pct(ql, nq, 0.99), b99 = pct(qp, nq, 0.99);

		snprintf(extra, sizeof(extra), "\"messages\": %zu, \"queries\": %zu, \"limit\": 20, "
			 "\"target\": \"value < 20\", \"pass\": %s", total, nq, bench_bool(p50 < 20));
		bench_emit("search.query.p50", "ms", p50, "fts5.plain.same_plan.p50", b50, extra);
		snprintf(extra, sizeof(extra), "\"messages\": %zu, \"queries\": %zu, \"limit\": 20, "
			 "\"target\": \"value < 20\", \"pass\": %s", total, nq, bench_bool(p99 < 20));
		bench_emit("search.query.p99", "ms", p99, "fts5.plain.same_plan.p99", b99, extra);
		snprintf(extra, sizeof(extra), "\"messages\": %zu, \"queries\": %zu, \"limit\": 20",
			 total, nq);
		bench_emit("search.query.p99.vs_full_rank", "ms", p99, "fts5.plain.full_rank.p99",
			   pct(qf, nq, 0.99), extra);
	}
	lama_search_close(x);
	plain_exec("PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(plain);
	snprintf(extra, sizeof(extra), "\"messages\": %zu", total);
	bench_emit("search.size", "bytes/message", (double)file_size(path) / (double)total,
		   "fts5.plain.size", (double)file_size(ppath) / (double)total, extra);
	free(ql);
	free(qp);
	free(qf);
	bench_rmtree(dir);
	if (strcmp(only, "index"))
		bench_serve(tmp, serve_total < BATCH ? BATCH : serve_total, nq);
	free(cdf);
	return 0;
}
