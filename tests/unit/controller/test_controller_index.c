/* The controller with a real index worker ($LAMA_BIN under a real
 * manager on a real loop): the index built in the background at login
 * with progress updates, query:search answered late (partial while
 * building), a message sent a moment ago found, the worker killed, a
 * logout while a query waits (an error, never results, no progress
 * after), messages sent, edited and deleted during a build, the
 * controller freed with tasks in flight, and the in-process path
 * without an index pool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>

#include <uv.h>

#include "testutil.h"
#include "chat/chat.h"
#include "controller/controller.h"
#include "leute/leute.h"
#include "models/models.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/worker.h"

#define MESSAGES 3000

static char home[4096], topic[300], topic2[300];
static lama_session *s;
static lama_ipc *d;
static lama_controller *ctl;
static lama_state *st;
static lama_workers *w;
static uv_loop_t loop;
static json_t *pushes;  /* the listener's updates */
static json_t *replies; /* late replies to the caller */
static int listener, me;

static int on_send(void *client, const char *text, size_t n)
{
	json_t *m = json_loadb(text, n, 0, NULL);

	assert_non_null(m);
	json_array_append(client == &listener ? pushes : replies, m);
	json_decref(m);
	return 0;
}

static void on_wake(uv_timer_t *h)
{
	(void)h;
}

/* Runs the loop for ms, or until arr (if given) holds want items. */
static void run(unsigned ms, const json_t *arr, size_t want)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
	uv_timer_t t;

	uv_timer_init(&loop, &t);
	uv_timer_start(&t, on_wake, 5, 5);
	while (uv_hrtime() < end && (!arr || json_array_size(arr) < want))
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* The index's last progress update (done = total) has come. */
static int built(void)
{
	const json_t *p;
	size_t i;

	json_array_foreach(pushes, i, p) {
		const json_t *pl = json_object_get(p, "payload");

		if (!strcmp(json_string_value(json_object_get(p, "channel")), "update:progress") &&
		    !strcmp(json_string_value(json_object_get(pl, "task")), "index") &&
		    json_integer_value(json_object_get(pl, "done")) ==
			    json_integer_value(json_object_get(pl, "total")))
			return 1;
	}
	return 0;
}

/* A progress update short of the end (0 < done < total) has come. */
static int progress_mid(void)
{
	const json_t *p;
	size_t i;

	json_array_foreach(pushes, i, p) {
		const json_t *pl = json_object_get(p, "payload");
		json_int_t done = json_integer_value(json_object_get(pl, "done"));

		if (!strcmp(json_string_value(json_object_get(p, "channel")), "update:progress") &&
		    done > 0 && done < json_integer_value(json_object_get(pl, "total")))
			return 1;
	}
	return 0;
}

static size_t progress_count(void)
{
	const json_t *p;
	size_t i, k = 0;

	json_array_foreach(pushes, i, p)
		k += !strcmp(json_string_value(json_object_get(p, "channel")), "update:progress");
	return k;
}

/* A request; its immediate reply (new reference), or NULL when it is
 * answered later. */
static json_t *call(const char *fmt, ...)
{
	char req[8192], *reply = NULL;
	size_t n = 0;
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	assert_int_equal(lama_ipc_handle(d, req, strlen(req), &me, &reply, &n), 0);
	if (!reply)
		return NULL;
	r = json_loadb(reply, n, 0, NULL);
	lama_free(reply);
	assert_non_null(r);
	return r;
}

/* A search answered late: its reply (new reference). */
static json_t *search(const char *q, int limit)
{
	size_t before = json_array_size(replies);
	json_t *r = call("{\"id\":7,\"channel\":\"query:search\",\"payload\":{\"query\":\"%s\",\"limit\":%d}}",
			 q, limit);

	assert_null(r); /* through the worker: later */
	run(30000, replies, before + 1);
	assert_int_equal(json_array_size(replies), before + 1);
	r = json_incref(json_array_get(replies, before));
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
	return r;
}

static size_t nresults(const json_t *r)
{
	return json_array_size(json_object_get(json_object_get(r, "result"), "results"));
}

static int setup(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	struct lama_controller_config cfg = { .kdf = lama_kdf_min(), .send = on_send };
	struct lama_outgoing *m = calloc(MESSAGES, sizeof(*m));
	char (*texts)[64] = calloc(MESSAGES, 64);
	struct lama_person bob;
	struct lama_topic t;

	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto");
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	if (lama_account_register(home, "alice", "pw", 2, &p, &s) || lama_models_init(s) ||
	    lama_leute_add_contact(s, "Bob", NULL, 0, NULL, &bob) ||
	    lama_chat_create(s, NULL, &bob.person, 1, &t, NULL))
		fail_msg("setup: %s", lama_errmsg());
	for (int i = 0; i < MESSAGES; i++) {
		snprintf(texts[i], 64, "message number %d about zebra%d", i, i % 50);
		m[i].text = texts[i];
	}
	if (lama_chat_send(s, &t, m, MESSAGES, NULL))
		fail_msg("send: %s", lama_errmsg());
	snprintf(topic, sizeof(topic), "%s", t.id);
	lama_topic_release(&t);
	{
		/* a small topic, the newest: indexed last */
		struct lama_person carol;
		struct lama_outgoing one = { .text = "hello carol" };

		if (lama_leute_add_contact(s, "Carol", NULL, 0, NULL, &carol) ||
		    lama_chat_create(s, NULL, &carol.person, 1, &t, NULL) ||
		    lama_chat_send(s, &t, &one, 1, NULL))
			fail_msg("setup carol: %s", lama_errmsg());
		snprintf(topic2, sizeof(topic2), "%s", t.id);
		lama_topic_release(&t);
	}
	free(m);
	free(texts);
	assert_int_equal(uv_loop_init(&loop), 0);
	if (lama_ipc_new(&d) || lama_state_new(&st, on_send, 0, 0))
		fail_msg("setup: %s", lama_errmsg());
	cfg.home = home;
	cfg.state = st;
	cfg.loop = &loop;
	if (lama_controller_new(&ctl, d, &cfg, s))
		fail_msg("setup: %s", lama_errmsg());
	s = NULL;
	pushes = json_array();
	replies = json_array();
	assert_int_equal(lama_state_subscribe(st, &listener, NULL, 0, &(int){ 0 }), 0);
	return 0;
}

static void start_workers(const char *kind)
{
	struct lama_worker_pool pool = { kind, 1, 0, 0 };

	assert_int_equal(lama_workers_new(&w, &loop, getenv("LAMA_BIN"), &pool, 1), 0);
	lama_controller_set_workers(ctl, w);
}

static int teardown(void **state)
{
	(void)state;
	lama_controller_set_workers(ctl, NULL);
	lama_workers_close(w);
	w = NULL;
	lama_ipc_free(d);
	lama_controller_free(ctl);
	lama_state_free(st);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref(pushes);
	json_decref(replies);
	tu_rmtree(home);
	return 0;
}

static void test_index_worker(void **state)
{
	json_t *r;
	const json_t *res;
	char text[128];
	long pid;

	(void)state;
	start_workers("index"); /* logged in: the build starts now */
	r = search("zebra7", 1000);
	res = json_object_get(r, "result");
	assert_non_null(res);
	assert_true(json_is_true(json_object_get(res, "partial")));
	assert_true(nresults(r) < MESSAGES / 50);
	json_decref(r);
	for (int i = 0; i < 6000 && !built(); i++)
		run(10, NULL, 0);
	assert_true(built());
	assert_true(progress_count() >= 1);
	r = search("zebra7", 1000);
	assert_true(json_is_false(json_object_get(json_object_get(r, "result"), "partial")));
	assert_int_equal(nresults(r), MESSAGES / 50);
	res = json_array_get(json_object_get(json_object_get(r, "result"), "results"), 0);
	assert_string_equal(json_string_value(json_object_get(res, "topic_title")), "Bob");
	assert_string_equal(json_string_value(json_object_get(res, "sender_name")), "alice");
	json_decref(r);
	/* sent a moment ago: found */
	r = call("{\"id\":8,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"a quokka\"}}",
		 topic);
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	r = search("quokka", 10);
	assert_int_equal(nresults(r), 1);
	json_decref(r);
	/* a bad query: the worker's error, as the in-process one */
	r = search("\\\"open", 10);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "code")),
			    "invalid_payload");
	json_decref(r);
	/* the worker killed: search goes on */
	{
		json_t *stj = lama_workers_status(w);

		pid = (long)json_integer_value(json_object_get(json_array_get(stj, 0), "pid"));
		json_decref(stj);
	}
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	r = search("zebra7", 1000);
	assert_int_equal(nresults(r), MESSAGES / 50);
	json_decref(r);
	/* a client gone while its query waits: the answer is dropped */
	{
		size_t before = json_array_size(replies);

		assert_null(call("{\"id\":11,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra7\"}}"));
		lama_controller_forget(ctl, &me);
		run(500, NULL, 0);
		assert_int_equal(json_array_size(replies), before);
	}
	/* logout while a query waits: its reply is an error at once, and
	 * nothing more comes (no results, no progress) */
	snprintf(text, sizeof(text), "%zu", json_array_size(replies));
	assert_null(call("{\"id\":9,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra7\"}}"));
	r = call("{\"id\":10,\"channel\":\"action:logout\"}");
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
	assert_int_equal(json_array_size(replies), (size_t)atol(text) + 1);
	r = json_array_get(replies, json_array_size(replies) - 1);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
	assert_non_null(json_object_get(r, "error"));
	assert_null(json_object_get(r, "result"));
	json_array_clear(pushes);
	run(300, NULL, 0);
	assert_int_equal(json_array_size(replies), (size_t)atol(text) + 1);
	assert_int_equal(progress_count(), 0);
}

/* A login starts the build (the index was removed meanwhile); logging out
 * in the middle drops it */
static void test_logout_mid_build(void **state)
{
	json_t *r;
	char path[4300];

	(void)state;
	start_workers("index");
	r = call("{\"id\":1,\"channel\":\"action:logout\"}");
	json_decref(r);
	run(200, NULL, 0);
	snprintf(path, sizeof(path), "rm -f %s/users/*/search.db*", home);
	assert_int_equal(system(path), 0);
	r = call("{\"id\":2,\"channel\":\"action:login\",\"payload\":{\"password\":\"pw\"}}");
	json_decref(r);
	if (!r) /* a login through a crypto pool would be late: none here */
		fail_msg("login answered late");
	json_array_clear(pushes);
	/* mid-build: some batches in (a progress short of the total), not
	 * the end */
	for (int i = 0; i < 3000 && !progress_mid(); i++)
		run(1, NULL, 0);
	assert_true(progress_mid());
	assert_false(built());
	r = call("{\"id\":3,\"channel\":\"action:logout\"}");
	json_decref(r);
	json_array_clear(pushes);
	run(500, NULL, 0);
	assert_int_equal(progress_count(), 0);
	/* in again: built from where it stopped, right */
	r = call("{\"id\":4,\"channel\":\"action:login\",\"payload\":{\"password\":\"pw\"}}");
	json_decref(r);
	for (int i = 0; i < 6000 && !built(); i++)
		run(10, NULL, 0);
	assert_true(built());
	r = search("zebra7", 1000);
	assert_int_equal(nresults(r), MESSAGES / 50);
	json_decref(r);
}

/* A request answered at once: its result's id (into hex). */
static void act(char hex[65], const char *fmt, ...)
{
	char req[1024], *reply = NULL;
	size_t n = 0;
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	assert_int_equal(lama_ipc_handle(d, req, strlen(req), &me, &reply, &n), 0);
	assert_non_null(reply);
	r = json_loadb(reply, n, 0, NULL);
	lama_free(reply);
	assert_non_null(r);
	if (!json_string_value(json_object_get(json_object_get(r, "result"), "id")))
		fail_msg("%s: %s", req, json_dumps(r, 0));
	if (hex)
		snprintf(hex, 65, "%s", json_string_value(json_object_get(json_object_get(r, "result"), "id")));
	json_decref(r);
}

/* The results of a search are these messages, each once. */
static void expect_ids(const json_t *r, char (*ids)[65], size_t n)
{
	const json_t *res = json_object_get(json_object_get(r, "result"), "results"), *o;
	size_t i;

	assert_int_equal(json_array_size(res), n);
	json_array_foreach(res, i, o) {
		const char *id = json_string_value(json_object_get(o, "id"));
		size_t k, seen = 0;

		assert_non_null(id);
		for (k = 0; k < n; k++)
			seen += !strcmp(id, ids[k]);
		assert_int_equal(seen, 1);
		for (k = 0; k < i; k++)
			assert_string_not_equal(id, json_string_value(json_object_get(json_array_get(res, k), "id")));
	}
}

/* Messages sent to the newest topic (not yet indexed: it goes last, its
 * plan counted one message) while the build runs, more than its count
 * plus two, one edited, one deleted, two more to the big topic: the
 * build ends (final progress, not partial), each live message found
 * once, the edit's new text, never the deleted one */
static void test_build_grown(void **state)
{
	char ids[6][65], big[2][65], edited[1][65];
	char live[4][65];
	json_t *r;
	int i;

	(void)state;
	start_workers("index"); /* the plan is out: topic2 has 1 entry */
	for (i = 0; i < 6; i++)
		act(ids[i], "{\"id\":8,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"grown %d wombat\"}}",
		    topic2, i);
	for (i = 0; i < 2; i++)
		act(big[i], "{\"id\":8,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"late %d wombat\"}}",
		    topic, i);
	act(edited[0], "{\"id\":8,\"channel\":\"action:editMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%s\",\"text\":\"now a kangaroo\"}}",
	    topic2, ids[1]);
	act(NULL, "{\"id\":8,\"channel\":\"action:deleteMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%s\"}}",
	    topic2, ids[2]);
	assert_false(built()); /* all of it during the build */
	for (i = 0; i < 6000 && !built(); i++)
		run(10, NULL, 0);
	assert_true(built());
	r = search("wombat", 100);
	assert_true(json_is_false(json_object_get(json_object_get(r, "result"), "partial")));
	memcpy(live[0], ids[0], 65);
	memcpy(live[1], ids[3], 65);
	memcpy(live[2], ids[4], 65);
	memcpy(live[3], ids[5], 65);
	{
		char all[6][65];

		memcpy(all, live, sizeof(live));
		memcpy(all[4], big[0], 65);
		memcpy(all[5], big[1], 65);
		expect_ids(r, all, 6);
	}
	json_decref(r);
	r = search("kangaroo", 10);
	expect_ids(r, edited, 1);
	json_decref(r);
	r = search("carol", 10);
	assert_int_equal(nresults(r), 1);
	json_decref(r);
	r = search("zebra7", 1000);
	assert_int_equal(nresults(r), MESSAGES / 50);
	json_decref(r);
	/* the next login's sync finds nothing stale, and nothing twice */
	r = call("{\"id\":10,\"channel\":\"action:logout\"}");
	json_decref(r);
	r = call("{\"id\":2,\"channel\":\"action:login\",\"payload\":{\"password\":\"pw\"}}");
	json_decref(r);
	json_array_clear(pushes);
	r = search("wombat", 100);
	assert_int_equal(nresults(r), 6);
	json_decref(r);
}

/* The controller freed while the workers are attached, with a build and
 * a query in flight; the manager closed after: nothing of the freed
 * controller is touched (ASan) */
static int teardown_free_first(void **state)
{
	(void)state;
	lama_ipc_free(d);
	lama_controller_free(ctl);
	lama_workers_close(w);
	w = NULL;
	lama_state_free(st);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref(pushes);
	json_decref(replies);
	tu_rmtree(home);
	return 0;
}

static void test_free_attached(void **state)
{
	(void)state;
	start_workers("index");
	assert_null(call("{\"id\":9,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra7\"}}"));
	run(50, NULL, 0);
	assert_false(built()); /* the build runs on */
}

/* Tasks the index worker has done. */
static long worker_done(void)
{
	json_t *stj = lama_workers_status(w);
	long n = (long)json_integer_value(json_object_get(json_array_get(stj, 0), "done"));

	json_decref(stj);
	return n;
}

/* A topic the build cannot read to its end (its newest entries a run of
 * edits longer than one read passes over): the build ends, answers say
 * partial, and no build starts again, not even for a query, until
 * something changes; then one does */
static void test_stuck_topic(void **state)
{
	lama_session *ss = lama_controller_session(ctl);
	struct lama_outgoing one = { .text = "an okapi" };
	struct lama_person dave;
	struct lama_topic t;
	lama_hash id;
	long before;
	json_t *r;
	char text[32];

	(void)state;
	assert_int_equal(lama_leute_add_contact(ss, "Dave", NULL, 0, NULL, &dave), 0);
	assert_int_equal(lama_chat_create(ss, NULL, &dave.person, 1, &t, NULL), 0);
	assert_int_equal(lama_chat_send(ss, &t, &one, 1, &id), 0);
	for (int i = 0; i < 4100; i++) {
		snprintf(text, sizeof(text), "okapi edit %d", i);
		if (lama_chat_edit(ss, &t, &id, text))
			fail_msg("edit %d: %s", i, lama_errmsg());
	}
	lama_topic_release(&t);
	start_workers("index");
	for (int i = 0; i < 6000 && !built(); i++)
		run(10, NULL, 0);
	assert_true(built());
	/* no build again and again */
	before = worker_done();
	run(500, NULL, 0);
	assert_int_equal(worker_done(), before);
	r = search("zebra7", 1000);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "partial")));
	assert_int_equal(nresults(r), MESSAGES / 50);
	json_decref(r);
	run(300, NULL, 0);
	assert_int_equal(worker_done(), before + 1); /* the query alone */
	/* something new: the next query syncs again (and ends again) */
	json_decref(call("{\"id\":8,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"a quokka\"}}",
			 topic));
	json_array_clear(pushes);
	r = search("quokka", 10);
	assert_int_equal(nresults(r), 1);
	json_decref(r);
	for (int i = 0; i < 6000 && !built(); i++)
		run(10, NULL, 0);
	assert_true(built());
	before = worker_done();
	run(300, NULL, 0);
	assert_int_equal(worker_done(), before);
}

/* Without an index pool: searched in the process, answered at once */
static void test_in_process(void **state)
{
	json_t *r;

	(void)state;
	start_workers("sync");
	r = call("{\"id\":1,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra7\",\"limit\":1000}}");
	assert_non_null(r);
	assert_int_equal(nresults(r), MESSAGES / 50);
	assert_true(json_is_false(json_object_get(json_object_get(r, "result"), "partial")));
	json_decref(r);
	assert_int_equal(progress_count(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_index_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logout_mid_build, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_grown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_attached, setup, teardown_free_first),
		cmocka_unit_test_setup_teardown(test_stuck_topic, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
