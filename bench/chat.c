/* chat.c: sending messages to a topic and paging through it.
 *
 * chat.append: lama_chat_send in batches of 1,000 (one transaction and
 * one channel version per batch), against lama_archive_put of the same
 * objects an append stores (the ChatMessage, its CreationTime and its
 * LinkedListEntry, chained as the channel chains them), in the same
 * batches, alternating, in the same archive. The difference is what the
 * models add: validation, the channel's position index and version.
 * chat.append.vs_message compares with putting the ChatMessage alone.
 *
 * chat.page.first / chat.page.scan: a topic of --messages (100,000) is
 * read newest-first, the first page of 25 (median of 50 cold starts:
 * each opens the topic anew) and all of it in pages of 100 following the
 * cursor, against lama_archive_get of the same message objects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"
#include "chat/chat.h"
#include "common.h"
#include "crypto/crypto.h"
#include "leute/leute.h"
#include "models/models.h"
#include "util/err.h"

#define BATCH 1000

static lama_session *s;

static void put_same_objects(size_t from, size_t n, lama_hash *prev, int *have_prev,
			     double base_time)
{
	lama_archive *a = lama_session_archive(s);
	char sender[LAMA_HASH_HEX + 1], h[LAMA_HASH_HEX + 1], p[LAMA_HASH_HEX + 1];
	struct lama_put_info info;

	lama_hash_hex(lama_session_person(s), sender);
	bench_check(lama_store_begin(lama_session_store(s)), "begin");
	for (size_t i = from; i < from + n; i++) {
		char text[96];
		json_t *o;

		snprintf(text, sizeof(text), "raw message %zu: the quick brown fox jumps over", i);
		o = json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", text, "sender", sender);
		bench_check(lama_archive_put(a, o, 0, &info), "put message");
		json_decref(o);
		lama_hash_hex(&info.hash, h);
		o = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp",
			      base_time + (double)i / 1000.0, "data", h);
		bench_check(lama_archive_put(a, o, 0, &info), "put creation time");
		json_decref(o);
		lama_hash_hex(&info.hash, h);
		o = json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", h);
		if (*have_prev) {
			lama_hash_hex(prev, p);
			json_object_set_new(o, "previous", json_string(p));
		}
		bench_check(lama_archive_put(a, o, 0, &info), "put list entry");
		json_decref(o);
		*prev = info.hash;
		*have_prev = 1;
	}
	bench_check(lama_store_commit(lama_session_store(s)), "commit");
}

static void put_messages_only(size_t from, size_t n)
{
	lama_archive *a = lama_session_archive(s);
	char sender[LAMA_HASH_HEX + 1];

	lama_hash_hex(lama_session_person(s), sender);
	bench_check(lama_store_begin(lama_session_store(s)), "begin");
	for (size_t i = from; i < from + n; i++) {
		char text[96];
		json_t *o;

		snprintf(text, sizeof(text), "lone message %zu: the quick brown fox jumps over", i);
		o = json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", text, "sender", sender);
		bench_check(lama_archive_put(a, o, 0, NULL), "put message");
		json_decref(o);
	}
	bench_check(lama_store_commit(lama_session_store(s)), "commit");
}

static void send_batch(const struct lama_topic *t, size_t from, size_t n, const char *what)
{
	static struct lama_outgoing m[BATCH];
	static char text[BATCH][96];

	for (size_t i = 0; i < n; i++) {
		snprintf(text[i], sizeof(text[i]), "%s message %zu: the quick brown fox jumps over", what,
			 from + i);
		m[i] = (struct lama_outgoing){ .text = text[i] };
	}
	bench_check(lama_chat_send(s, t, m, n, NULL), "lama_chat_send");
}

struct scan {
	size_t n;
	lama_hash last;
	lama_hash *ids; /* optional: collects the message ids */
	size_t cap;
};

static int count(void *ctx, const struct lama_message *m)
{
	struct scan *c = ctx;

	if (c->ids && c->n < c->cap)
		c->ids[c->n] = m->id;
	c->n++;
	c->last = m->id;
	return 0;
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	size_t total = (size_t)atol(bench_opt(argc, argv, "messages", "100000"));
	size_t rounds = (size_t)atol(bench_opt(argc, argv, "append-batches", "20"));
	struct lama_kdf_params kdf = lama_kdf_min();
	struct lama_person peer;
	struct lama_topic t;
	double t_send = 0, t_same = 0, t_msg = 0, t0;
	lama_hash prev, *first = NULL;
	int have_prev = 0;
	char dir[4096], extra[256];

	bench_check(lama_crypto_init(), "crypto init");
	bench_mkdtemp(tmp, "chat", dir, sizeof(dir));
	bench_check(lama_account_register(dir, "bench", "pw", 2, &kdf, &s), "register");
	bench_check(lama_models_init(s), "models init");
	bench_check(lama_leute_add_contact(s, "Peer", NULL, 0, NULL, &peer), "contact");
	bench_check(lama_chat_create(s, NULL, &peer.person, 1, &t, NULL), "topic");

	/* append: three sides in turn, each batch on a different side first */
	for (size_t b = 0; b < rounds; b++) {
		for (int side = 0; side < 3; side++) {
			int which = (side + (int)b) % 3;

			t0 = bench_now();
			if (which == 0)
				send_batch(&t, b * BATCH, BATCH, "sent");
			else if (which == 1)
				put_same_objects(b * BATCH, BATCH, &prev, &have_prev, lama_archive_now());
			else
				put_messages_only(b * BATCH, BATCH);
			t0 = bench_now() - t0;
			*(which == 0 ? &t_send : which == 1 ? &t_same : &t_msg) += t0;
		}
	}
	{
		double n = (double)(rounds * BATCH);
		double v = n / t_send, same = n / t_same, msg = n / t_msg;

		snprintf(extra, sizeof(extra), "\"batch\": %d, \"target\": \"ratio >= 0.5\", \"pass\": %s",
			 BATCH, bench_bool(v / same >= 0.5));
		bench_emit("chat.append", "messages/s", v, "archive.put.same_objects", same, extra);
		snprintf(extra, sizeof(extra), "\"batch\": %d", BATCH);
		bench_emit("chat.append.vs_message", "messages/s", v, "archive.put.message_only", msg, extra);
	}

	/* fill the topic up to `total` messages */
	for (size_t done = rounds * BATCH; done < total; done += BATCH) {
		size_t n = total - done < BATCH ? total - done : BATCH;

		send_batch(&t, done, n, "fill");
		if ((done / BATCH) % 20 == 0)
			fprintf(stderr, "chat: %zu of %zu messages\n", done + n, total);
	}
	lama_topic_release(&t);

	/* first page, cold: the topic found anew each time */
	{
		double v[50], b[50];
		struct scan c = { 0 };
		lama_hash ids[25];

		for (int i = 0; i < 50; i++) {
			struct lama_topic tt;

			c = (struct scan){ .ids = ids, .cap = 25 };
			t0 = bench_now();
			bench_check(lama_chat_find(s, "Peer", &tt), "find topic");
			bench_check(lama_chat_messages(s, &tt, NULL, 25, count, &c, NULL), "first page");
			v[i] = (bench_now() - t0) * 1e3;
			lama_topic_release(&tt);
			if (c.n != 25)
				bench_fail("first page: %zu messages", c.n);
			/* baseline: the 25 CreationTime objects, read plainly */
			t0 = bench_now();
			for (int k = 0; k < 25; k++) {
				json_t *o;

				bench_check(lama_archive_get(lama_session_archive(s), &ids[k], &o), "get");
				json_decref(o);
			}
			b[i] = (bench_now() - t0) * 1e3;
		}
		snprintf(extra, sizeof(extra), "\"messages\": %zu, \"page\": 25, \"target\": \"< 5 ms\", \"pass\": %s",
			 total, bench_bool(bench_median(v, 50) < 5));
		bench_emit("chat.page.first", "ms", bench_median(v, 50), "archive.get.25", bench_median(b, 50), extra);
	}
	/* full scan newest-first in pages of 100 */
	{
		struct lama_topic tt;
		struct scan c = { 0 };
		size_t seen = 0;
		int more = 1;
		double scan_s, base_s;

		first = calloc(total, sizeof(*first));
		if (!first)
			bench_fail("out of memory");
		bench_check(lama_chat_find(s, "Peer", &tt), "find topic");
		t0 = bench_now();
		while (more) {
			c = (struct scan){ .ids = first + seen, .cap = total - seen };
			bench_check(lama_chat_messages(s, &tt, seen ? &first[seen - 1] : NULL, 100, count, &c,
						       &more), "page");
			seen += c.n;
			if (c.n == 0)
				break;
		}
		scan_s = bench_now() - t0;
		lama_topic_release(&tt);
		if (seen != total)
			bench_fail("scan saw %zu of %zu messages", seen, total);
		t0 = bench_now();
		for (size_t i = 0; i < total; i++) {
			json_t *o;

			bench_check(lama_archive_get(lama_session_archive(s), &first[i], &o), "get");
			json_decref(o);
		}
		base_s = bench_now() - t0;
		snprintf(extra, sizeof(extra), "\"messages\": %zu, \"page\": 100", total);
		bench_emit("chat.page.scan", "messages/s", (double)total / scan_s,
			   "archive.get.creation_times", (double)total / base_s, extra);
	}
	free(first);
	lama_session_logout(s);
	bench_rmtree(dir);
	return 0;
}
