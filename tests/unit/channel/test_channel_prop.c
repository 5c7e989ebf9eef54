/* test_channel_prop.c: property test of channel merges across devices.
 *
 * Each iteration takes 2-5 writers (devices of one owner), each with its
 * OWN archive (a separate store file). They append random entries (times
 * drawn from a small range, so ties and out-of-order appends are common;
 * some entries are appended again, on the same or another device; some
 * batches take the current time). Between appends, versions travel: a
 * random head of one archive is copied with everything it reaches into
 * another and recorded there as a concurrent version, sometimes twice,
 * and merged at once, read at once, or left to pile up with others so
 * that later merges fold several heads. At the end every archive sends
 * its current version to every other in a random order, twice, with
 * merges at random points. Then all archives must name the same head, and
 * the list (walked by hand, and read through the index in both
 * directions, sought and found) must be exactly the model: the sorted set
 * of (time, CreationTime) of every entry appended anywhere.
 *
 * LAMA_TEST_SEED=n picks the first seed, LAMA_TEST_ITER=n the number of
 * iterations; a failure prints the seed that reproduces it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "channel_test.h"

#define WRITERS 5
#define MODEL_MAX 512

static uint64_t cur_seed;
static int in_iter;

struct world {
	struct afx *f;
	int k;              /* writers this iteration */
	lama_hash chan;
	char id[32];
	struct mentry model[MODEL_MAX];
	char text[MODEL_MAX][24]; /* what each model entry's data says */
	size_t nm;
	int nmsg;
	uint64_t s;
};

static void append_some(struct world *w, int i)
{
	lama_archive *a = w->f->a[i];
	size_t n = 1 + rnd(&w->s, 4);
	lama_hash data[4];
	double times[4];
	struct lama_chan_entry out[4];
	char text[4][24];
	int now = rnd(&w->s, 8) == 0;

	assert_int_equal(lama_store_begin(w->f->st[i]), 0); /* one commit for the messages */
	for (size_t j = 0; j < n; j++) {
		if (w->nm && rnd(&w->s, 5) == 0) {
			/* an entry appended before (here or elsewhere) again */
			size_t r = rnd(&w->s, (unsigned)w->nm);

			memcpy(text[j], w->text[r], sizeof(text[j]));
			times[j] = w->model[r].time;
		} else {
			snprintf(text[j], sizeof(text[j]), "m%d", w->nmsg++);
			times[j] = (double)rnd(&w->s, 40) * 10;
		}
		data[j] = chx_msg(a, text[j]);
	}
	assert_int_equal(lama_store_commit(w->f->st[i]), 0);
	if (lama_channel_append(a, &w->chan, data, now ? NULL : times, n, out))
		fail_msg("append: %s", lama_errmsg());
	for (size_t j = 0; j < n; j++) {
		lama_hash ct = chx_ct(a, out[j].time, &data[j]);

		assert_true(lama_hash_eq(&ct, &out[j].ct));
		assert_true(lama_hash_eq(&out[j].data, &data[j]));
		if (!now)
			assert_true(out[j].time == times[j]);
		assert_true(w->nm < MODEL_MAX);
		w->model[w->nm] = (struct mentry){ out[j].time, ct, data[j] };
		memcpy(w->text[w->nm], text[j], sizeof(text[j]));
		w->nm++;
	}
}

/* Sends one of src's heads (or its current version) to dst. */
static void exchange(struct world *w, int src, int dst, int current)
{
	lama_archive *as = w->f->a[src], *ad = w->f->a[dst];
	lama_hash info;
	double ctime = 1 + rnd(&w->s, 1000000);

	if (current) {
		assert_int_equal(lama_archive_current(as, &w->chan, &info), 0);
	} else {
		lama_hash *heads;
		size_t nh;
		json_t *node;

		assert_int_equal(lama_archive_heads(as, &w->chan, &heads, &nh), 0);
		assert_true(nh >= 1);
		assert_int_equal(lama_archive_get(as, &heads[rnd(&w->s, (unsigned)nh)], &node), 0);
		info = jhash(node, "data");
		json_decref(node);
		lama_free(heads);
	}
	chx_send(as, ad, &info, ctime);
	if (rnd(&w->s, 3) == 0)
		chx_send(as, ad, &info, rnd(&w->s, 2) ? ctime : ctime + 1); /* again */
	switch (rnd(&w->s, 4)) {
	case 0:
		assert_int_equal(lama_archive_merge(ad, &w->chan, NULL), 0);
		break;
	case 1: {
		uint64_t count;

		if (lama_channel_count(ad, &w->chan, &count, NULL))
			fail_msg("count: %s", lama_errmsg());
		break;
	}
	default:
		break; /* heads pile up: a later merge folds them */
	}
}

static void one_iteration(struct afx *f, int it, uint64_t seed)
{
	struct world *w = calloc(1, sizeof(*w));
	lama_hash owner = chx_owner(), head0, head;
	int steps, order[WRITERS * WRITERS], no = 0;

	assert_non_null(w);
	w->f = f;
	w->s = seed;
	w->k = 2 + (int)rnd(&w->s, WRITERS - 1);
	snprintf(w->id, sizeof(w->id), "prop-%d", it);
	for (int i = 0; i < w->k; i++)
		assert_int_equal(lama_channel_create(f->a[i], w->id, &owner, &w->chan), 0);
	steps = 10 + (int)rnd(&w->s, 30);
	for (int s = 0; s < steps; s++) {
		unsigned r = rnd(&w->s, 20);
		int i = (int)rnd(&w->s, (unsigned)w->k), j = (i + 1 + (int)rnd(&w->s, (unsigned)w->k - 1)) % w->k;

		if (r < 10)
			append_some(w, i);
		else if (r < 18)
			exchange(w, j, i, 0);
		else
			chx_check(f->a[i], &w->chan, NULL, 0, 1 + rnd(&w->s, 7));
	}
	/* everyone tells everyone, in a random order, twice */
	for (int round = 0; round < 2; round++) {
		no = 0;
		for (int i = 0; i < w->k; i++)
			for (int j = 0; j < w->k; j++)
				if (i != j)
					order[no++] = i * WRITERS + j;
		for (int x = no - 1; x > 0; x--) {
			int y = (int)rnd(&w->s, (unsigned)x + 1), t = order[x];

			order[x] = order[y];
			order[y] = t;
		}
		for (int x = 0; x < no; x++)
			/* the first round sends what each knows, the second any head */
			exchange(w, order[x] / WRITERS, order[x] % WRITERS, round == 0 || rnd(&w->s, 2));
	}
	w->nm = model_norm(w->model, w->nm);
	for (int i = 0; i < w->k; i++) {
		/* reading merges what piled up */
		chx_check(f->a[i], &w->chan, w->model, w->nm, 1 + rnd(&w->s, 9));
		assert_int_equal(nheads(f->a[i], &w->chan), 1);
		assert_int_equal(chx_head(f->a[i], &w->chan, &head), w->nm > 0);
		if (i == 0)
			head0 = head;
		else if (w->nm && !lama_hash_eq(&head, &head0))
			fail_msg("archive %d names another head than archive 0", i);
	}
	free(w);
}

static void test_prop(void **state)
{
	struct afx f;
	const char *e = getenv("LAMA_TEST_SEED"), *ni = getenv("LAMA_TEST_ITER");
	uint64_t seed0 = e ? strtoull(e, NULL, 0) : 0xc4a77e15ULL;
	int iters = ni ? atoi(ni) : 200;

	(void)state;
	afx_open(&f);
	while (f.n < WRITERS)
		afx_add(&f);
	for (int i = 0; i < f.n; i++)
		assert_int_equal(lama_channel_init(f.a[i]), 0);
	for (int it = 0; it < iters; it++) {
		cur_seed = seed0 + (uint64_t)it * 0x9E3779B97F4A7C15ULL;
		if (!cur_seed)
			cur_seed = 1;
		in_iter = 1;
		one_iteration(&f, it, cur_seed);
		in_iter = 0;
	}
	for (int i = 0; i < f.n; i++)
		store_ok(f.st[i], NULL);
	afx_done(&f);
}

static int teardown(void **state)
{
	(void)state;
	if (in_iter)
		fprintf(stderr, "failed with seed: LAMA_TEST_SEED=%llu LAMA_TEST_ITER=1\n",
			(unsigned long long)cur_seed);
	in_iter = 0;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_prop, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
