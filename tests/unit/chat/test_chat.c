/* Topics and messages over a real account: one-to-one, group and AI
 * topics, paging across several participants' logs, attachments, replies,
 * edits and deletions, read positions, and hostile entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "access/access.h"
#include "channel/channel.h"
#include "chat/chat.h"
#include "leute/leute.h"
#include "models/models.h"
#include "util/err.h"
#include "util/mem.h"

static char home[4096];
static lama_session *s;
static struct lama_person bob, carol, helper;

static int setup(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();

	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto init");
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	if (lama_account_register(home, "alice", "pw", 2, &p, &s) || lama_models_init(s))
		fail_msg("setup: %s", lama_errmsg());
	if (lama_leute_add_contact(s, "Bob", "bob@example.org", 0, NULL, &bob) ||
	    lama_leute_add_contact(s, "Carol", NULL, 0, NULL, &carol) ||
	    lama_leute_add_contact(s, "Helper", NULL, 1, "tiny", &helper))
		fail_msg("contacts: %s", lama_errmsg());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lama_session_logout(s);
	s = NULL;
	tu_rmtree(home);
	return 0;
}

/* ---- collecting a page ---- */

struct got {
	size_t n;
	lama_hash id[256];
	lama_hash sender[256];
	char text[256][64];
	int edited[256], deleted[256], reply[256];
	lama_hash reply_to[256];
	size_t nattach[256];
	char attach_name[256][32];
	uint64_t attach_size[256];
	lama_hash attach_blob[256];
	double time[256];
};

static int collect(void *ctx, const struct lama_message *m)
{
	struct got *g = ctx;

	assert_true(g->n < 256);
	g->id[g->n] = m->id;
	g->sender[g->n] = m->sender;
	g->time[g->n] = m->time;
	snprintf(g->text[g->n], sizeof(g->text[0]), "%.*s", (int)m->text_len, m->text);
	g->edited[g->n] = m->edited;
	g->deleted[g->n] = m->deleted;
	g->reply[g->n] = m->has_reply_to;
	if (m->has_reply_to)
		g->reply_to[g->n] = m->reply_to;
	g->nattach[g->n] = m->nattach;
	if (m->nattach) {
		snprintf(g->attach_name[g->n], sizeof(g->attach_name[0]), "%s", m->attach[0].name);
		g->attach_size[g->n] = m->attach[0].size;
		g->attach_blob[g->n] = m->attach[0].blob;
	}
	g->n++;
	return 0;
}

static void page(const struct lama_topic *t, const lama_hash *before, size_t limit, struct got *g,
		 int *more)
{
	memset(g, 0, sizeof(*g));
	if (lama_chat_messages(s, t, before, limit, collect, g, more))
		fail_msg("messages: %s", lama_errmsg());
}

static void send_text(const struct lama_topic *t, const char *text, lama_hash *id)
{
	struct lama_outgoing m = { .text = text };

	if (lama_chat_send(s, t, &m, 1, id))
		fail_msg("send: %s", lama_errmsg());
}

/* Writes a message into `who`'s own log of the topic, as their device
 * would have (and sync would bring it). */
static void their_message(const struct lama_topic *t, const lama_hash *who, const lama_hash *sender,
			  const char *text, double time, lama_hash *ct)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_chan_entry e;
	struct lama_put_info info;
	lama_hash chan;
	char hex[LAMA_HASH_HEX + 1];
	json_t *m;

	lama_hash_hex(sender, hex);
	m = json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", text, "sender", hex);
	assert_int_equal(lama_archive_put(a, m, 0, &info), 0);
	json_decref(m);
	assert_int_equal(lama_channel_create(a, t->id, who, &chan), 0);
	assert_int_equal(lama_channel_append(a, &chan, &info.hash, &time, 1, &e), 0);
	if (ct)
		*ct = e.ct;
}

/* ---- tests ---- */

static void test_create(void **state)
{
	struct lama_topic t, again, g, ai;
	lama_hash two[2] = { bob.person, carol.person }, dup[2] = { bob.person, bob.person };
	int is_new;

	(void)state;
	assert_int_equal(lama_chat_create(s, NULL, &bob.person, 1, &t, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_string_equal(t.title, "Bob");
	assert_int_equal(t.npeople, 2);
	assert_non_null(strstr(t.id, "<->"));
	assert_int_equal(t.is_ai, 0);
	/* the one-to-one topic exists once */
	assert_int_equal(lama_chat_create(s, "Other title", &bob.person, 1, &again, &is_new), 0);
	assert_int_equal(is_new, 0);
	assert_string_equal(again.id, t.id);
	assert_true(lama_hash_eq(&again.topic, &t.topic));
	/* a group topic gets a fresh id every time */
	assert_int_equal(lama_chat_create(s, "Team", two, 2, &g, &is_new), 0);
	assert_int_equal(is_new, 1);
	assert_int_equal(g.npeople, 3);
	assert_null(strstr(g.id, "<->"));
	assert_int_equal(lama_chat_create(s, NULL, &helper.person, 1, &ai, NULL), 0);
	assert_int_equal(ai.is_ai, 1);
	/* refused */
	assert_int_equal(lama_chat_create(s, NULL, lama_session_person(s), 1, NULL, NULL), LAMA_EINVAL);
	assert_int_equal(lama_chat_create(s, NULL, dup, 2, NULL, NULL), LAMA_EINVAL);
	assert_int_equal(lama_chat_create(s, NULL, two, 0, NULL, NULL), LAMA_EINVAL);
	assert_int_equal(lama_chat_create(s, "", two, 2, NULL, NULL), LAMA_EINVAL);
	{
		lama_hash nobody;

		memset(&nobody, 7, sizeof(nobody));
		assert_int_equal(lama_chat_create(s, NULL, &nobody, 1, NULL, NULL), LAMA_ENOTFOUND);
	}
	/* finding */
	{
		struct lama_topic f;
		char prefix[8];

		assert_int_equal(lama_chat_find(s, "Team", &f), 0);
		assert_string_equal(f.id, g.id);
		lama_topic_release(&f);
		snprintf(prefix, sizeof(prefix), "%.6s", g.id);
		assert_int_equal(lama_chat_find(s, prefix, &f), 0);
		assert_string_equal(f.id, g.id);
		lama_topic_release(&f);
		assert_int_equal(lama_chat_find(s, "nothing like it", &f), LAMA_ENOTFOUND);
		/* one-to-one ids share the user's prefix; handles tell them apart */
		assert_int_equal(strlen(t.handle), 12);
		assert_string_not_equal(t.handle, ai.handle);
		snprintf(prefix, sizeof(prefix), "%.6s", t.handle);
		assert_int_equal(lama_chat_find(s, prefix, &f), 0);
		assert_string_equal(f.id, t.id);
		lama_topic_release(&f);
	}
	lama_topic_release(&t);
	lama_topic_release(&again);
	lama_topic_release(&g);
	lama_topic_release(&ai);
}

static void test_send_and_page(void **state)
{
	struct lama_topic t;
	lama_hash ids[120];
	struct got g;
	int more;
	char text[32];

	(void)state;
	assert_int_equal(lama_chat_create(s, "paging", (lama_hash[]){ bob.person, carol.person }, 2, &t, NULL), 0);
	for (int i = 0; i < 120; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		send_text(&t, text, &ids[i]);
	}
	/* the same text twice is still two messages */
	send_text(&t, "m119", NULL);
	page(&t, NULL, 25, &g, &more);
	assert_int_equal(g.n, 25);
	assert_int_equal(more, 1);
	assert_string_equal(g.text[0], "m119");
	assert_string_equal(g.text[1], "m119");
	assert_true(lama_hash_eq(&g.id[1], &ids[119]));
	/* page back through everything, each message once, in order */
	{
		lama_hash cursor = g.id[g.n - 1];
		int expect = 96; /* the first page ended at ids[96] */

		for (;;) {
			page(&t, &cursor, 25, &g, &more);
			for (size_t i = 0; i < g.n; i++) {
				expect--;
				assert_true(lama_hash_eq(&g.id[i], &ids[expect]));
			}
			if (!more)
				break;
			cursor = g.id[g.n - 1];
		}
		assert_int_equal(expect, 0);
	}
	assert_true(lama_hash_eq(lama_session_person(s), &g.sender[0]));
	/* a batch is atomic: an unstored attachment fails all of it */
	{
		struct lama_attachment bad = { .name = "x.txt", .type = "text/plain", .size = 1 };
		struct lama_outgoing m[3] = { { .text = "ok1" }, { .text = "bad", .attach = &bad, .nattach = 1 },
					      { .text = "ok2" } };
		struct lama_topic again;

		memset(&bad.blob, 9, sizeof(bad.blob));
		assert_int_equal(lama_chat_send(s, &t, m, 3, NULL), LAMA_ENOTFOUND);
		assert_int_equal(lama_chat_find(s, t.id, &again), 0);
		assert_int_equal(again.entries, 121);
		lama_topic_release(&again);
		m[0].text = "";
		assert_int_equal(lama_chat_send(s, &t, m, 1, NULL), LAMA_EINVAL);
	}
	lama_topic_release(&t);
}

static void test_rich(void **state)
{
	struct lama_topic t;
	lama_blob_writer *w;
	lama_hash blob, first, second, id;
	struct got g;
	char prefix[LAMA_HASH_HEX + 1];

	(void)state;
	assert_int_equal(lama_chat_create(s, NULL, &bob.person, 1, &t, NULL), 0);
	assert_int_equal(lama_blob_write_begin(lama_session_store(s), &w), 0);
	assert_int_equal(lama_blob_write(w, "hello file", 10), 0);
	assert_int_equal(lama_blob_write_end(w, &blob, NULL), 0);
	{
		struct lama_attachment a = { .blob = blob, .name = "note.txt", .type = "text/plain",
					     .size = 10, .mtime = 1000 };
		struct lama_outgoing m = { .text = "see attached", .attach = &a, .nattach = 1 };

		assert_int_equal(lama_chat_send(s, &t, &m, 1, &first), 0);
	}
	{
		struct lama_outgoing m = { .text = "a reply", .reply_to = &first };

		assert_int_equal(lama_chat_send(s, &t, &m, 1, &second), 0);
	}
	page(&t, NULL, 10, &g, NULL);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.text[0], "a reply");
	assert_int_equal(g.reply[0], 1);
	assert_true(lama_hash_eq(&g.reply_to[0], &first));
	assert_int_equal(g.nattach[1], 1);
	assert_string_equal(g.attach_name[1], "note.txt");
	assert_int_equal(g.attach_size[1], 10);
	assert_true(lama_hash_eq(&g.attach_blob[1], &blob));
	/* edits and deletions are new entries; reading applies the newest */
	assert_int_equal(lama_chat_edit(s, &t, &first, "see the file"), 0);
	assert_int_equal(lama_chat_edit(s, &t, &first, "see the file, please"), 0);
	assert_int_equal(lama_chat_edit(s, &t, &second, NULL), 0);
	page(&t, NULL, 10, &g, NULL);
	assert_int_equal(g.n, 2); /* edits are not messages */
	assert_string_equal(g.text[1], "see the file, please");
	assert_int_equal(g.edited[1], 1);
	assert_int_equal(g.nattach[1], 1);
	assert_int_equal(g.deleted[0], 1);
	assert_string_equal(g.text[0], "");
	/* finding by prefix */
	lama_hash_hex(&first, prefix);
	prefix[10] = '\0';
	assert_int_equal(lama_chat_find_message(s, &t, prefix, 100, &id), 0);
	assert_true(lama_hash_eq(&id, &first));
	assert_int_equal(lama_chat_find_message(s, &t, "abc", 100, &id), LAMA_EINVAL);
	/* Bob's message cannot be edited by us */
	{
		lama_hash theirs;

		their_message(&t, &bob.person, &bob.person, "bob here", lama_archive_now(), &theirs);
		assert_int_equal(lama_chat_edit(s, &t, &theirs, "hijacked"), LAMA_ENOTFOUND);
	}
	/* a reply to nothing */
	{
		lama_hash nothing;
		struct lama_outgoing m = { .text = "?", .reply_to = &nothing };

		memset(&nothing, 3, sizeof(nothing));
		assert_int_equal(lama_chat_send(s, &t, &m, 1, NULL), LAMA_ENOTFOUND);
	}
	lama_topic_release(&t);
}

/* Several participants' logs merge into one order; a log's foreign
 * messages and forged edits are not shown. */
static void test_participants(void **state)
{
	struct lama_topic t;
	lama_hash mine[10], bobs[10], spoof, forged_ct;
	struct got g;
	double base = lama_archive_now() - 100000;
	int more;

	(void)state;
	assert_int_equal(lama_chat_create(s, "three", (lama_hash[]){ bob.person, carol.person }, 2, &t, NULL), 0);
	/* Bob's messages at base + 0, 2, 4...; ours after them all */
	for (int i = 0; i < 10; i++) {
		char text[16];

		snprintf(text, sizeof(text), "bob%d", i);
		their_message(&t, &bob.person, &bob.person, text, base + 2 * i, &bobs[i]);
	}
	for (int i = 0; i < 10; i++)
		send_text(&t, "mine", &mine[i]);
	/* Carol's log holds a message claiming to be Bob's: not shown */
	their_message(&t, &carol.person, &bob.person, "spoofed", base + 3, &spoof);
	page(&t, NULL, 15, &g, &more);
	assert_int_equal(g.n, 15);
	assert_int_equal(more, 1);
	assert_true(lama_hash_eq(&g.id[0], &mine[9]));
	assert_true(lama_hash_eq(&g.id[10], &bobs[9]));
	{
		lama_hash cursor = g.id[14];

		page(&t, &cursor, 15, &g, &more);
	}
	assert_int_equal(g.n, 5);
	assert_int_equal(more, 0);
	for (size_t i = 0; i < g.n; i++) {
		assert_false(lama_hash_eq(&g.id[i], &spoof));
		assert_true(lama_hash_eq(&g.sender[i], &bob.person));
	}
	/* an edit of Bob's message by Carol, and one by "Bob" that is not in
	 * Bob's log, change nothing */
	{
		lama_archive *a = lama_session_archive(s);
		struct lama_put_info info;
		lama_hash chan;
		char tgt[LAMA_HASH_HEX + 1], who[LAMA_HASH_HEX + 1];
		double now = lama_archive_now();
		json_t *e;

		lama_hash_hex(&bobs[0], tgt);
		lama_hash_hex(&bob.person, who);
		e = json_pack("{s:s, s:s, s:s, s:f, s:s}", "$type$", "LamaChatEdit", "target", tgt,
			      "sender", who, "time", now, "text", "forged");
		assert_int_equal(lama_archive_put(a, e, 0, &info), 0);
		json_decref(e);
		assert_int_equal(lama_channel_idhash(a, t.id, &carol.person, &chan), 0);
		assert_int_equal(lama_channel_append(a, &chan, &info.hash, &now, 1, NULL), 0);
		(void)forged_ct;
	}
	{
		lama_hash cursor = g.id[3];

		page(&t, &cursor, 1, &g, NULL);
	}
	assert_true(lama_hash_eq(&g.id[0], &bobs[0]));
	assert_string_equal(g.text[0], "bob0");
	assert_int_equal(g.edited[0], 0);
	lama_topic_release(&t);
}

static void test_read_positions(void **state)
{
	struct lama_topic t, again;
	lama_hash bobs[5];
	double base = lama_archive_now() - 50000;

	(void)state;
	assert_int_equal(lama_chat_create(s, NULL, &carol.person, 1, &t, NULL), 0);
	for (int i = 0; i < 5; i++)
		their_message(&t, &carol.person, &carol.person, "hi", base + i, &bobs[i]);
	assert_int_equal(lama_chat_find(s, t.id, &again), 0);
	assert_int_equal(again.unread, 5);
	lama_topic_release(&again);
	assert_int_equal(lama_chat_mark_read(s, &t, &bobs[2]), 0);
	assert_int_equal(lama_chat_find(s, t.id, &again), 0);
	assert_int_equal(again.unread, 2);
	lama_topic_release(&again);
	/* an older position written later (another device) does not win */
	assert_int_equal(lama_chat_mark_read(s, &t, &bobs[1]), 0);
	{
		lama_archive *a = lama_session_archive(s);
		char who[LAMA_HASH_HEX + 1], e4[LAMA_HASH_HEX + 1];
		struct lama_put_info base_info, x;
		json_t *o;

		/* two devices: one read up to 4, concurrently with the position above */
		lama_hash_hex(lama_session_person(s), who);
		lama_hash_hex(&bobs[4], e4);
		o = json_pack("{s:s, s:s, s:s, s:f, s:s}", "$type$", "LamaReadPosition", "topic", t.id,
			      "person", who, "time", base + 4, "entry", e4);
		assert_int_equal(lama_object_hash(lama_session_recipes(s), o, NULL, &base_info.id_hash), 0);
		{
			lama_hash *heads;
			size_t n;

			assert_int_equal(lama_archive_heads(a, &base_info.id_hash, &heads, &n), 0);
			assert_int_equal(n, 1);
			assert_int_equal(lama_archive_put_version(a, o, &heads[0], 1, &x), 0);
			lama_free(heads);
		}
		json_decref(o);
	}
	assert_int_equal(lama_chat_find(s, t.id, &again), 0);
	assert_int_equal(again.unread, 0);
	lama_topic_release(&again);
	lama_topic_release(&t);
}

/* Two devices each created a topic: the registry keeps both. */
static void test_registry_merge(void **state)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_topic t;
	lama_hash *heads;
	size_t n;
	json_t *reg;
	lama_hash id, cur;

	(void)state;
	reg = json_pack("{s:s, s:s, s:{s:[]}}", "$type$", "TopicAppRegistry", "id", "TopicAppRegistry",
			"topics", "$map");
	assert_int_equal(lama_object_hash(lama_session_recipes(s), reg, NULL, &id), 0);
	json_decref(reg);
	assert_int_equal(lama_archive_current(a, &id, &cur), 0);
	assert_int_equal(lama_archive_get(a, &cur, &reg), 0);
	assert_int_equal(lama_archive_heads(a, &id, &heads, &n), 0);
	/* the other device's version: a topic this one has never seen */
	json_array_append_new(json_object_get(json_object_get(reg, "topics"), "$map"),
			      json_pack("[ss]", "zz-other-device",
					"0000000000000000000000000000000000000000000000000000000000000001"));
	assert_int_equal(lama_archive_put_version(a, reg, &heads[0], 1, NULL), 0);
	lama_free(heads);
	json_decref(reg);
	/* and this device creates one concurrently */
	assert_int_equal(lama_chat_create(s, "concurrent", (lama_hash[]){ bob.person, helper.person }, 2, &t, NULL), 0);
	assert_int_equal(lama_archive_current(a, &id, &cur), 0);
	assert_int_equal(lama_archive_get(a, &cur, &reg), 0);
	{
		char *text = json_dumps(reg, 0);

		assert_non_null(strstr(text, "zz-other-device"));
		assert_non_null(strstr(text, t.id));
		free(text);
	}
	json_decref(reg);
	lama_topic_release(&t);
}

/* Sharing: the participants may receive a topic's messages, with their
 * attachments; someone outside the topic may not. */
static void test_access(void **state)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_topic t;
	struct lama_person dave;
	lama_blob_writer *w;
	lama_hash blob, msg, data;
	json_t *ct = NULL;
	int yes;

	(void)state;
	assert_int_equal(lama_leute_add_contact(s, "Dave", NULL, 0, NULL, &dave), 0);
	assert_int_equal(lama_chat_create(s, "shared", (lama_hash[]){ bob.person, carol.person }, 2, &t, NULL), 0);
	assert_int_equal(lama_blob_write_begin(lama_session_store(s), &w), 0);
	assert_int_equal(lama_blob_write(w, "shared bytes", 12), 0);
	assert_int_equal(lama_blob_write_end(w, &blob, NULL), 0);
	{
		struct lama_attachment at = { .blob = blob, .name = "s.bin", .type = "", .size = 12 };
		struct lama_outgoing m = { .text = "for the team", .attach = &at, .nattach = 1 };

		assert_int_equal(lama_chat_send(s, &t, &m, 1, &msg), 0);
	}
	assert_int_equal(lama_archive_get(a, &msg, &ct), 0);
	assert_int_equal(lama_hash_parse(json_string_value(json_object_get(ct, "data")), 64, &data), 0);
	json_decref(ct);
	const lama_hash *items[] = { &msg, &data, &blob, &t.topic };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(lama_access_may_receive(a, &bob.person, items[i], &yes), 0);
		assert_int_equal(yes, 1);
		assert_int_equal(lama_access_may_receive(a, &carol.person, items[i], &yes), 0);
		assert_int_equal(yes, 1);
		assert_int_equal(lama_access_may_receive(a, &dave.person, items[i], &yes), 0);
		assert_int_equal(yes, 0);
	}
	lama_topic_release(&t);
}

/* ---- what peers could send (review findings) ---- */

static int count_msgs(void *ctx, const struct lama_message *m)
{
	(void)m;
	++*(size_t *)ctx;
	return 0;
}

/* A participant's log that is broken (a timestamp no clock gives) hides
 * only itself: the topic is listed, found and readable. */
static void test_broken_log(void **state)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_topic t, f;
	struct lama_put_info info;
	lama_hash chan;
	char h[LAMA_HASH_HEX + 1], who[LAMA_HASH_HEX + 1];
	json_t *o;
	size_t n = 0;

	(void)state;
	assert_int_equal(lama_chat_create(s, "broken", (lama_hash[]){ bob.person, carol.person }, 2, &t, NULL), 0);
	send_text(&t, "still readable", NULL);
	lama_hash_hex(&bob.person, who);
	o = json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", "x", "sender", who);
	assert_int_equal(lama_archive_put(a, o, 0, &info), 0);
	json_decref(o);
	lama_hash_hex(&info.hash, h);
	o = json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", 1e300, "data", h);
	assert_int_equal(lama_archive_put(a, o, 0, &info), 0);
	json_decref(o);
	lama_hash_hex(&info.hash, h);
	o = json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", h);
	assert_int_equal(lama_archive_put(a, o, 0, &info), 0);
	json_decref(o);
	lama_hash_hex(&info.hash, h);
	o = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "ChannelInfo", "id", t.id, "owner", who, "head", h);
	assert_int_equal(lama_archive_put(a, o, 0, &info), 0);
	json_decref(o);
	assert_int_equal(lama_channel_idhash(a, t.id, &bob.person, &chan), 0);
	assert_true(lama_hash_eq(&chan, &info.id_hash));

	assert_int_equal(lama_chat_find(s, t.id, &f), 0);
	assert_int_equal(f.entries, 1);
	lama_topic_release(&f);
	assert_int_equal(lama_chat_messages(s, &t, NULL, 10, count_msgs, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(lama_chat_mark_read(s, &t, NULL), 0);
	lama_topic_release(&t);
}

/* A bag may name a participant twice: still one log, read once. */
static void test_duplicate_participant(void **state)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_topic t, f;
	char gname[300], me[LAMA_HASH_HEX + 1], b[LAMA_HASH_HEX + 1];
	json_t *g;
	size_t n = 0;

	(void)state;
	assert_int_equal(lama_chat_create(s, NULL, &bob.person, 1, &t, NULL), 0);
	their_message(&t, &bob.person, &bob.person, "once", lama_archive_now() - 10, NULL);
	snprintf(gname, sizeof(gname), "topic:%s", t.id);
	lama_hash_hex(lama_session_person(s), me);
	lama_hash_hex(&bob.person, b);
	g = json_pack("{s:s, s:s, s:[s,s,s]}", "$type$", "Group", "name", gname, "person", me, b, b);
	assert_int_equal(lama_archive_put(a, g, 0, NULL), 0);
	json_decref(g);
	assert_int_equal(lama_chat_find(s, t.id, &f), 0);
	assert_int_equal(f.npeople, 2);
	assert_int_equal(lama_chat_messages(s, &f, NULL, 100, count_msgs, &n, NULL), 0);
	{
		struct got g2;

		page(&f, NULL, 100, &g2, NULL);
		for (size_t i = 1; i < g2.n; i++)
			assert_false(lama_hash_eq(&g2.id[i - 1], &g2.id[i]));
	}
	lama_topic_release(&f);
	lama_topic_release(&t);
}

/* Marking read covers edits too, so nothing stays unread. */
static void test_unread_after_edit(void **state)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_topic t, f;
	lama_hash m, chan;
	struct lama_put_info info;
	char tgt[LAMA_HASH_HEX + 1], who[LAMA_HASH_HEX + 1];
	double now;
	json_t *e;

	(void)state;
	assert_int_equal(lama_chat_create(s, "edits", (lama_hash[]){ bob.person, helper.person }, 2, &t, NULL), 0);
	their_message(&t, &bob.person, &bob.person, "typo", lama_archive_now() - 1000, &m);
	assert_int_equal(lama_chat_mark_read(s, &t, NULL), 0);
	/* Bob edits his message in his own log */
	now = lama_archive_now();
	lama_hash_hex(&m, tgt);
	lama_hash_hex(&bob.person, who);
	e = json_pack("{s:s, s:s, s:s, s:f, s:s}", "$type$", "LamaChatEdit", "target", tgt, "sender",
		      who, "time", now, "text", "fixed");
	assert_int_equal(lama_archive_put(a, e, 0, &info), 0);
	json_decref(e);
	assert_int_equal(lama_channel_idhash(a, t.id, &bob.person, &chan), 0);
	assert_int_equal(lama_channel_append(a, &chan, &info.hash, &now, 1, NULL), 0);
	assert_int_equal(lama_chat_find(s, t.id, &f), 0);
	assert_int_equal(f.unread, 1);
	lama_topic_release(&f);
	assert_int_equal(lama_chat_mark_read(s, &t, NULL), 0);
	assert_int_equal(lama_chat_find(s, t.id, &f), 0);
	assert_int_equal(f.unread, 0);
	lama_topic_release(&f);
	{
		struct got g;

		page(&t, NULL, 1, &g, NULL);
		assert_string_equal(g.text[0], "fixed");
	}
	lama_topic_release(&t);
}

/* A log that changes while it is read (sync inserting an older entry)
 * neither hides nor repeats a message. */
struct inserting {
	struct lama_topic *t;
	size_t n;
	lama_hash seen[64];
	double oldest;
};

static int insert_midway(void *ctx, const struct lama_message *m)
{
	struct inserting *x = ctx;

	assert_true(x->n < 64);
	for (size_t i = 0; i < x->n; i++)
		assert_false(lama_hash_eq(&x->seen[i], &m->id));
	x->seen[x->n++] = m->id;
	if (x->n == 3)
		their_message(x->t, &carol.person, &carol.person, "late arrival", x->oldest - 5, NULL);
	return 0;
}

static void test_paging_while_changing(void **state)
{
	struct lama_topic t;
	struct inserting x = { 0 };
	double base = lama_archive_now() - 100000;

	(void)state;
	assert_int_equal(lama_chat_create(s, NULL, &carol.person, 1, &t, NULL), 0);
	for (int i = 0; i < 40; i++)
		their_message(&t, &carol.person, &carol.person, "c", base + 100 + i, NULL);
	x.t = &t;
	x.oldest = base + 100;
	/* the topic already holds the 5 messages of test_read_positions */
	assert_int_equal(lama_chat_messages(s, &t, NULL, 1000, insert_midway, &x, NULL), 0);
	assert_int_equal(x.n, 40 + 5 + 1);
	lama_topic_release(&t);
}

/* `more` means messages, not merely entries that show nothing. */
static void test_more_means_messages(void **state)
{
	struct lama_topic t;
	int more = -1;
	size_t n = 0;

	(void)state;
	assert_int_equal(lama_chat_create(s, "more", (lama_hash[]){ bob.person, carol.person }, 2, &t, NULL), 0);
	/* the oldest entry: Carol's log claiming Bob wrote it (never shown) */
	their_message(&t, &carol.person, &bob.person, "spoof", lama_archive_now() - 5000, NULL);
	send_text(&t, "one", NULL);
	send_text(&t, "two", NULL);
	assert_int_equal(lama_chat_messages(s, &t, NULL, 2, count_msgs, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_int_equal(more, 0);
	lama_topic_release(&t);
}

/* Message ids from another topic are not this topic's. */
static void test_foreign_ids(void **state)
{
	struct lama_topic t1, t2;
	lama_hash m1, id;
	char hex[LAMA_HASH_HEX + 1];

	(void)state;
	assert_int_equal(lama_chat_create(s, "first", (lama_hash[]){ bob.person, carol.person }, 2, &t1, NULL), 0);
	assert_int_equal(lama_chat_create(s, "second", (lama_hash[]){ bob.person, carol.person }, 2, &t2, NULL), 0);
	send_text(&t1, "in the first", &m1);
	lama_hash_hex(&m1, hex);
	assert_int_equal(lama_chat_find_message(s, &t1, hex, 10, &id), 0);
	assert_int_equal(lama_chat_find_message(s, &t2, hex, 10, &id), LAMA_ENOTFOUND);
	assert_int_equal(lama_chat_mark_read(s, &t2, &m1), LAMA_ENOTFOUND);
	{
		struct lama_outgoing m = { .text = "re", .reply_to = &m1 };

		assert_int_equal(lama_chat_send(s, &t2, &m, 1, NULL), LAMA_ENOTFOUND);
		assert_int_equal(lama_chat_send(s, &t1, &m, 1, NULL), 0);
	}
	assert_int_equal(lama_chat_create(s, "\xff\xfe", (lama_hash[]){ bob.person, carol.person }, 2, NULL, NULL),
			 LAMA_EINVAL);
	lama_topic_release(&t1);
	lama_topic_release(&t2);
}

static int count_topics(void *ctx, const struct lama_topic *t)
{
	(void)t;
	++*(int *)ctx;
	return 0;
}

static void test_topics_list(void **state)
{
	int n = 0;

	(void)state;
	/* the registry entry of the previous test points nowhere: it is left
	 * out, and every real topic is listed */
	assert_int_equal(lama_chat_topics(s, count_topics, &n), 0);
	assert_int_equal(n, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_send_and_page),
		cmocka_unit_test(test_rich),
		cmocka_unit_test(test_participants),
		cmocka_unit_test(test_read_positions),
		cmocka_unit_test(test_registry_merge),
		cmocka_unit_test(test_topics_list),
		cmocka_unit_test(test_access),
		cmocka_unit_test(test_broken_log),
		cmocka_unit_test(test_duplicate_participant),
		cmocka_unit_test(test_unread_after_edit),
		cmocka_unit_test(test_paging_while_changing),
		cmocka_unit_test(test_more_means_messages),
		cmocka_unit_test(test_foreign_ids),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
