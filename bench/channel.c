/* channel.c: channel merges and reads (src/channel) against baselines
 * measured in the same run.
 *
 * channel.merge.10k, channel.merge.big: two versions of a channel that
 * diverged by --div entries each (10,000) on top of a common list of
 * <base> entries
 * (10,000, and --base or $LAMA_BENCH_CHANNEL_BASE: 200,000 by default,
 * as a million takes ~8 minutes to build here) are merged by
 * lama_archive_merge (the ChannelInfo merge rule); the two sides
 * interleave in time, so every entry above the common list is rebuilt.
 * Baseline: appending the same 2 x div entries to a fresh channel in
 * batches of 1,000. channel.merge.scale compares the two merges: both
 * read the same entries (entries_read), and the time grows far less than
 * the length (length_ratio), only as each read gets dearer in a larger
 * file (baseline_scale shows that for appends).
 * channel.index.10k, .big: the index update that follows (lama_channel_count
 * after the merge), against the same baseline.
 *
 * channel.page.first: the first page of 25, newest first (count + read),
 * of a channel of --page-entries (100,000), median of 200; baseline: 25
 * lama_store_kv_get of the same index rows. channel.page.scan: every
 * entry, newest first, in pages of 25; baseline: lama_store_kv_get of
 * every row. channel.append: entries/s of batched appends while building
 * that channel; baseline: the same number of lama_archive_put of an
 * unversioned object of the same size as a CreationTime, twice, plus one
 * kv row each (what an entry is), in the same batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "channel/channel.h"
#include "channel/channel_int.h"
#include "common.h"
#include "crypto/crypto.h"
#include "object/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/mem.h"

#define BATCH 1000

struct ctx {
	char dir[4096];
	lama_recipes *rec;
	int nopen;
};

static void open_archive(struct ctx *c, lama_store **st, lama_archive **a)
{
	char path[4300];
	uint8_t enc[32], idx[32];

	snprintf(path, sizeof(path), "%s/archive%d.db", c->dir, c->nopen++);
	bench_keys(enc, idx);
	bench_check(lama_store_open(st, path, enc, idx, LAMA_STORE_CREATE), "lama_store_open");
	bench_check(lama_archive_new(a, *st, c->rec), "lama_archive_new");
	bench_check(lama_channel_init(*a), "lama_channel_init");
}

static void close_archive(lama_store *st, lama_archive *a)
{
	lama_archive_free(a);
	lama_store_close(st);
}

static lama_hash put_msg(lama_archive *a, const char *text)
{
	struct lama_put_info info;
	json_t *o = json_pack("{s:s, s:s}", "$type$", "PersonName", "name", text);

	if (!o)
		bench_fail("out of memory");
	bench_check(lama_archive_put(a, o, 0, &info), "put message");
	json_decref(o);
	return info.hash;
}

static lama_hash mkchan(lama_archive *a, const char *id)
{
	lama_hash chan;

	bench_check(lama_channel_create(a, id, NULL, &chan), "lama_channel_create");
	return chan;
}

/* Appends n entries naming `data` at times t0, t0 + step, ... in batches. */
static void fill(lama_archive *a, const lama_hash *chan, const lama_hash *data, size_t n,
		 double t0, double step)
{
	lama_hash *d = malloc(BATCH * sizeof(*d));
	double *t = malloc(BATCH * sizeof(*t));

	if (!d || !t)
		bench_fail("out of memory");
	for (size_t i = 0; i < BATCH; i++)
		d[i] = *data;
	for (size_t i = 0; i < n; i += BATCH) {
		size_t k = n - i < BATCH ? n - i : BATCH;

		for (size_t j = 0; j < k; j++)
			t[j] = t0 + (double)(i + j) * step;
		bench_check(lama_channel_append(a, chan, d, t, k, NULL), "lama_channel_append");
		if (n >= 100000 && (i / BATCH) % 100 == 99)
			fprintf(stderr, "  %zu of %zu\n", i + k, n);
	}
	free(d);
	free(t);
}

static lama_hash one_head(lama_archive *a, const lama_hash *chan)
{
	lama_hash *heads, h;
	size_t n;

	bench_check(lama_archive_heads(a, chan, &heads, &n), "heads");
	if (n != 1)
		bench_fail("expected one head, got %zu", n);
	h = heads[0];
	lama_free(heads);
	return h;
}

static void hexof(const lama_hash *h, char out[LAMA_HASH_HEX + 1])
{
	lama_hash_hex(h, out);
}

/* Another device's version: n entries at t0, t0 + step, ... (all newer
 * than the list of version node v0) on top of that list, written object by
 * object, recorded as a version after v0. */
static void branch(lama_archive *a, const lama_hash *v0, const lama_hash *data, size_t n,
		   double t0, double step)
{
	lama_store *st = lama_archive_store(a);
	struct lama_put_info info;
	json_t *node, *obj;
	lama_hash cur, head;
	char hex[LAMA_HASH_HEX + 1], dhex[LAMA_HASH_HEX + 1], phex[LAMA_HASH_HEX + 1];
	int has;

	bench_check(lama_archive_get(a, v0, &node), "get node");
	bench_check(lama_hash_parse(json_string_value(json_object_get(node, "data")), 64, &cur),
		    "node data");
	json_decref(node);
	bench_check(lama_archive_get(a, &cur, &obj), "get ChannelInfo");
	has = json_object_get(obj, "head") != NULL;
	if (has)
		bench_check(lama_hash_parse(json_string_value(json_object_get(obj, "head")), 64, &head),
			    "head");
	hexof(data, dhex);
	bench_check(lama_store_begin(st), "begin");
	for (size_t i = 0; i < n; i++) {
		json_t *ct = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp",
				       t0 + (double)i * step, "data", dhex), *le;

		bench_check(lama_archive_put(a, ct, 1, &info), "put CreationTime");
		json_decref(ct);
		hexof(&info.hash, hex);
		if (has) {
			hexof(&head, phex);
			le = json_pack("{s:s, s:s, s:s}", "$type$", "LinkedListEntry", "data", hex,
				       "previous", phex);
		} else {
			le = json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", hex);
		}
		bench_check(lama_archive_put(a, le, 1, &info), "put LinkedListEntry");
		json_decref(le);
		head = info.hash;
		has = 1;
	}
	hexof(&head, hex);
	json_object_set_new(obj, "head", json_string(hex));
	bench_check(lama_archive_put_version(a, obj, v0, 0, NULL), "put_version");
	bench_check(lama_store_commit(st), "commit");
	json_decref(obj);
}

struct merge_result {
	double merge, index, baseline; /* seconds */
	uint64_t reads;                /* list entries the merge read */
};

static void merge_run(struct ctx *c, size_t base, size_t div, struct merge_result *r)
{
	lama_store *st;
	lama_archive *a;
	lama_hash chan, chan2, m1, m2, v0, node;
	uint64_t count;
	double t0;

	open_archive(c, &st, &a);
	chan = mkchan(a, "merge");
	m1 = put_msg(a, "base and side A");
	m2 = put_msg(a, "side B");
	fprintf(stderr, "channel.merge: base of %zu entries\n", base);
	fill(a, &chan, &m1, base, 1e12, 1);
	v0 = one_head(a, &chan);
	/* side A through the module, side B by hand, interleaved in time */
	fill(a, &chan, &m1, div, 1e12 + (double)base, 2);
	branch(a, &v0, &m2, div, 1e12 + (double)base + 1, 2);
	r->reads = channel__loads();
	t0 = bench_now();
	bench_check(lama_archive_merge(a, &chan, &node), "lama_archive_merge");
	r->merge = bench_now() - t0;
	r->reads = channel__loads() - r->reads;
	t0 = bench_now();
	bench_check(lama_channel_count(a, &chan, &count, NULL), "lama_channel_count");
	r->index = bench_now() - t0;
	if (count != base + 2 * div)
		bench_fail("merged channel has %llu entries, not %zu", (unsigned long long)count,
			   base + 2 * div);
	/* baseline: the same 2 x div entries appended fresh */
	chan2 = mkchan(a, "fresh");
	m1 = put_msg(a, "fresh");
	t0 = bench_now();
	fill(a, &chan2, &m1, 2 * div, 1e12 + (double)base, 1);
	r->baseline = bench_now() - t0;
	close_archive(st, a);
}

static void page_run(struct ctx *c, size_t n)
{
	lama_store *st;
	lama_archive *a;
	lama_hash chan, m;
	struct lama_chan_entry page[25];
	struct lama_buf buf = LAMA_BUF_INIT(4096);
	char hex[LAMA_HASH_HEX + 1], name[128];
	double t0, t_app, t_base, first[200], raw[200], scan, rscan;
	uint64_t count;
	size_t got, total;

	open_archive(c, &st, &a);
	chan = mkchan(a, "page");
	m = put_msg(a, "page");
	fprintf(stderr, "channel.page: %zu entries\n", n);
	/* appends against their baseline (two small objects and a kv row per
	 * entry), batch by batch, alternating which goes first, so both see
	 * the same database growth */
	{
		char mhex[LAMA_HASH_HEX + 1];
		uint8_t row[104] = { 0 };

		hexof(&m, mhex);
		t_app = t_base = 0;
		for (size_t i = 0; i < n; i += BATCH) {
			size_t k = n - i < BATCH ? n - i : BATCH;

			for (int side = 0; side < 2; side++) {
				int chan_side = (side + (int)(i / BATCH)) % 2 == 0;

				t0 = bench_now();
				if (chan_side) {
					fill(a, &chan, &m, k, 1e12 + (double)i, 1);
					t_app += bench_now() - t0;
					continue;
				}
				bench_check(lama_store_begin(st), "begin");
				for (size_t j = i; j < i + k; j++) {
					json_t *o = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime",
							      "timestamp", 2e12 + (double)j, "data", mhex);
					json_t *o2 = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime",
							       "timestamp", 3e12 + (double)j, "data", mhex);

					bench_check(lama_archive_put(a, o, 1, NULL), "put");
					bench_check(lama_archive_put(a, o2, 1, NULL), "put");
					json_decref(o);
					json_decref(o2);
					snprintf(name, sizeof(name), "bench/%zu", j);
					bench_check(lama_store_kv_put(st, name, row, sizeof(row)), "kv put");
				}
				bench_check(lama_store_commit(st), "commit");
				t_base += bench_now() - t0;
			}
		}
	}
	bench_emit("channel.append", "entries/s", (double)n / t_app,
		   "2 x lama_archive_put + lama_store_kv_put per entry", (double)n / t_base,
		   "\"batch\": 1000");
	hexof(&chan, hex);
	bench_check(lama_channel_count(a, &chan, &count, NULL), "count"); /* index fresh */
	for (int r = 0; r < 200; r++) {
		t0 = bench_now();
		bench_check(lama_channel_count(a, &chan, &count, NULL), "count");
		bench_check(lama_channel_read(a, &chan, count - 1, -1, page, 25, &got), "read");
		first[r] = bench_now() - t0;
		if (got != 25)
			bench_fail("first page has %zu entries", got);
		t0 = bench_now();
		for (uint64_t p = count - 1; p + 25 > count; p--) {
			snprintf(name, sizeof(name), "ch/%s/%llu", hex, (unsigned long long)p);
			lama_buf_truncate(&buf, 0);
			bench_check(lama_store_kv_get(st, name, &buf), "kv get");
		}
		raw[r] = bench_now() - t0;
	}
	{
		char extra[96];

		snprintf(extra, sizeof(extra), "\"entries\": %zu, \"page\": 25", n);
		bench_emit("channel.page.first", "ms", bench_median(first, 200) * 1e3,
			   "25 x lama_store_kv_get", bench_median(raw, 200) * 1e3, extra);
	}
	/* full scans, newest first, alternating */
	total = 0;
	t0 = bench_now();
	for (uint64_t left = count; left > 0;) {
		bench_check(lama_channel_read(a, &chan, left - 1, -1, page, 25, &got), "read");
		total += got;
		left -= got;
	}
	scan = bench_now() - t0;
	if (total != count)
		bench_fail("scan read %zu of %llu", total, (unsigned long long)count);
	t0 = bench_now();
	for (uint64_t p = count; p-- > 0;) {
		snprintf(name, sizeof(name), "ch/%s/%llu", hex, (unsigned long long)p);
		lama_buf_truncate(&buf, 0);
		bench_check(lama_store_kv_get(st, name, &buf), "kv get");
	}
	rscan = bench_now() - t0;
	{
		char extra[96];

		snprintf(extra, sizeof(extra), "\"entries\": %zu, \"page\": 25", n);
		bench_emit("channel.page.scan", "entries/s", (double)count / scan,
			   "lama_store_kv_get per row", (double)count / rscan, extra);
	}
	lama_buf_release(&buf);
	close_archive(st, a);
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	/* bench/run passes no options: the environment can shrink the base */
	const char *envbase = getenv("LAMA_BENCH_CHANNEL_BASE");
	size_t big = strtoul(bench_opt(argc, argv, "base", envbase ? envbase : "200000"), NULL, 10);
	size_t div = strtoul(bench_opt(argc, argv, "div", "10000"), NULL, 10);
	size_t pn = strtoul(bench_opt(argc, argv, "page-entries", "100000"), NULL, 10);
	const char *only = bench_opt(argc, argv, "only", NULL);
	struct merge_result small, large;
	struct ctx c = { 0 };
	char extra[256];

	if (big < 1 || div < 1 || pn < 25)
		bench_fail("--base and --div must be at least 1, --page-entries at least 25");
	bench_check(lama_crypto_init(), "crypto init");
	bench_check(lama_recipes_new(&c.rec), "recipes");
	bench_check(lama_recipes_add_builtin(c.rec), "recipes");
	bench_mkdtemp(tmp, "channel", c.dir, sizeof(c.dir));

	if (!only || !strcmp(only, "page"))
		page_run(&c, pn);
	if (!only || !strcmp(only, "merge")) {
		merge_run(&c, 10000, div, &small);
		snprintf(extra, sizeof(extra), "\"base\": 10000, \"diverged\": %zu, \"entries_read\": %llu",
			 div, (unsigned long long)small.reads);
		bench_emit("channel.merge.10k", "ms", small.merge * 1e3,
			   "append the same entries to a fresh channel", small.baseline * 1e3, extra);
		bench_emit("channel.index.10k", "ms", small.index * 1e3,
			   "append the same entries to a fresh channel", small.baseline * 1e3, extra);
		merge_run(&c, big, div, &large);
		snprintf(extra, sizeof(extra), "\"base\": %zu, \"diverged\": %zu, \"entries_read\": %llu",
			 big, div, (unsigned long long)large.reads);
		bench_emit("channel.merge.big", "ms",
			   large.merge * 1e3, "append the same entries to a fresh channel",
			   large.baseline * 1e3, extra);
		bench_emit("channel.index.big", "ms",
			   large.index * 1e3, "append the same entries to a fresh channel",
			   large.baseline * 1e3, extra);
		/* proportional to the difference: both merges read the same
		 * entries; the time per read still grows as the file outgrows
		 * the page cache (the baseline shows by how much), far less than
		 * the length does */
		snprintf(extra, sizeof(extra),
			 "\"base\": %zu, \"diverged\": %zu, \"length_ratio\": %.3g, "
			 "\"baseline_scale\": %.3g, \"entries_read\": [%llu, %llu], "
			 "\"target\": \"the same entries read on both bases\", \"pass\": %s",
			 big, div, (double)(big + 2 * div) / (double)(10000 + 2 * div),
			 large.baseline / small.baseline, (unsigned long long)small.reads,
			 (unsigned long long)large.reads,
			 bench_bool(small.reads == large.reads));
		bench_emit("channel.merge.scale", "ms", large.merge * 1e3,
			   "the same merge on a base of 10,000", small.merge * 1e3, extra);
	}
	bench_rmtree(c.dir);
	lama_recipes_free(c.rec);
	return 0;
}
