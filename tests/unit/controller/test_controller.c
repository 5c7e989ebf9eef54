/* The IPC controller without sockets: requests as a client writes them
 * (docs/ipc.md), through the dispatcher, onto a real account; replies
 * and pushes checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "controller/controller.h"
#include "models/models.h"
#include "util/err.h"
#include "util/mem.h"

static char home[4096];
static lama_session *s;
static lama_ipc *d;
static lama_controller *ctl;
static lama_state *st;
static json_t *pushes;   /* what the listener got: {channel, seq, payload} */
static int listener, me; /* two clients: their addresses name them */
static void *caller = &me;

/* The state manager's transport: the listener's pushes are kept. */
static int on_send(void *client, const char *text, size_t n)
{
	json_t *m = json_loadb(text, n, 0, NULL);

	assert_non_null(m);
	if (client == &listener)
		json_array_append(pushes, m);
	json_decref(m);
	return 0;
}

static void open_controller(lama_session *with)
{
	struct lama_controller_config cfg = { .home = home, .kdf = lama_kdf_min() };

	if (lama_ipc_new(&d) || lama_state_new(&st, on_send, 0, 0))
		fail_msg("setup: %s", lama_errmsg());
	cfg.state = st;
	if (lama_controller_new(&ctl, d, &cfg, with))
		fail_msg("setup: %s", lama_errmsg());
	pushes = json_array();
	assert_int_equal(lama_state_subscribe(st, &listener, NULL, 0, &(int){ 0 }), 0);
}

static void close_controller(void)
{
	lama_ipc_free(d);
	lama_controller_free(ctl); /* logs out */
	lama_state_free(st);
	json_decref(pushes);
}

static int setup(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();

	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto");
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	if (lama_account_register(home, "alice", "pw", 2, &p, &s) || lama_models_init(s))
		fail_msg("setup: %s", lama_errmsg());
	open_controller(s);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close_controller();
	tu_rmtree(home);
	return 0;
}

/* Sends one request line; returns the parsed reply (new reference). */
static json_t *call(const char *fmt, ...)
{
	char req[8192], *reply = NULL;
	size_t n = 0;
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	assert_int_equal(lama_ipc_handle(d, req, strlen(req), caller, &reply, &n), 0);
	assert_null(memchr(reply, '\n', n));
	r = json_loadb(reply, n, 0, NULL);
	lama_free(reply);
	assert_non_null(r);
	return r;
}

static const char *err_code(const json_t *r)
{
	return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

static void test_journey(void **state)
{
	json_t *r, *res;
	char topic[300], msg[65];

	(void)state;
	r = call("{\"id\":0,\"channel\":\"query:ping\"}");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "pong")));
	json_decref(r);
	r = call("{\"id\":1,\"channel\":\"query:getState\"}");
	res = json_object_get(r, "result");
	assert_true(json_is_true(json_object_get(json_object_get(res, "user"), "me")));
	assert_int_equal(json_integer_value(json_object_get(res, "contacts")), 0);
	json_decref(r);

	r = call("{\"id\":2,\"channel\":\"action:addContact\",\"payload\":{\"name\":\"Bob\",\"email\":\"bob@example.org\"}}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "name")), "Bob");
	json_decref(r);
	assert_int_equal(json_array_size(pushes), 1);
	r = call("{\"id\":3,\"channel\":\"action:addContact\",\"payload\":{\"name\":\"Bob\",\"email\":\"bob@example.org\"}}");
	assert_string_equal(err_code(r), "conflict");
	json_decref(r);

	r = call("{\"id\":\"c\",\"channel\":\"action:createConversation\",\"payload\":{\"with\":[\"Bob\"]}}");
	res = json_object_get(r, "result");
	assert_true(json_is_true(json_object_get(res, "new")));
	snprintf(topic, sizeof(topic), "%s", json_string_value(json_object_get(res, "id")));
	json_decref(r);
	assert_int_equal(json_array_size(pushes), 2);

	r = call("{\"id\":4,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"hi\"}}", topic);
	snprintf(msg, sizeof(msg), "%s", json_string_value(json_object_get(json_object_get(r, "result"), "id")));
	assert_int_equal(strlen(msg), 64);
	json_decref(r);
	{
		json_t *p = json_array_get(pushes, 2);

		assert_string_equal(json_string_value(json_object_get(p, "channel")), "update:messageReceived");
		assert_int_equal(json_integer_value(json_object_get(p, "seq")), 3);
		assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(p, "payload"), "message"), "id")), msg);
	}
	for (int i = 0; i < 12; i++)
		json_decref(call("{\"id\":5,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"m%d\"}}", topic, i));
	r = call("{\"id\":6,\"channel\":\"query:getMessages\",\"payload\":{\"topic\":\"%s\",\"limit\":5}}", topic);
	res = json_object_get(r, "result");
	assert_int_equal(json_array_size(json_object_get(res, "messages")), 5);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res, "messages"), 4), "text")), "m11");
	assert_true(json_is_true(json_object_get(res, "more")));
	{
		char before[65];
		json_t *r2;

		snprintf(before, sizeof(before), "%s", json_string_value(json_object_get(res, "before")));
		r2 = call("{\"id\":7,\"channel\":\"query:getMessages\",\"payload\":{\"topic\":\"%s\",\"limit\":100,\"before\":\"%s\"}}", topic, before);
		assert_int_equal(json_array_size(json_object_get(json_object_get(r2, "result"), "messages")), 8);
		assert_false(json_is_true(json_object_get(json_object_get(r2, "result"), "more")));
		json_decref(r2);
	}
	json_decref(r);

	r = call("{\"id\":8,\"channel\":\"query:getConversations\"}");
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "conversations")), 1);
	json_decref(r);
	r = call("{\"id\":9,\"channel\":\"query:getConversation\",\"payload\":{\"topic\":\"Bob\"}}");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "entries")), 13);
	json_decref(r);
	r = call("{\"id\":10,\"channel\":\"query:getContacts\"}");
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "contacts")), 1);
	json_decref(r);
	r = call("{\"id\":11,\"channel\":\"query:getContact\",\"payload\":{\"query\":\"bob@example.org\"}}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "name")), "Bob");
	json_decref(r);

	/* edit and delete by an id prefix; readers see the change pushed */
	{
		size_t had = json_array_size(pushes);
		json_t *p, *m;

		r = call("{\"id\":12,\"channel\":\"action:editMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%.12s\",\"text\":\"hi again\"}}", topic, msg);
		assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "id")), msg);
		json_decref(r);
		p = json_array_get(pushes, had);
		assert_string_equal(json_string_value(json_object_get(p, "channel")), "update:messageChanged");
		m = json_object_get(json_object_get(p, "payload"), "message");
		assert_string_equal(json_string_value(json_object_get(m, "text")), "hi again");
		assert_true(json_is_true(json_object_get(m, "edited")));
		r = call("{\"id\":13,\"channel\":\"action:deleteMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%s\"}}", topic, msg);
		assert_null(json_object_get(r, "error"));
		json_decref(r);
		m = json_object_get(json_object_get(json_array_get(pushes, had + 1), "payload"), "message");
		assert_true(json_is_true(json_object_get(m, "deleted")));
		r = call("{\"id\":14,\"channel\":\"action:editMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%064d\",\"text\":\"x\"}}", topic, 0);
		assert_string_equal(err_code(r), "not_found");
		json_decref(r);
	}
	/* search: what was sent is found at once, through the index */
	json_decref(call("{\"id\":150,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"the zebra crossing\"}}", topic));
	r = call("{\"id\":151,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra\"}}");
	{
		const json_t *hits = json_object_get(json_object_get(r, "result"), "results");

		assert_int_equal(json_array_size(hits), 1);
		assert_string_equal(json_string_value(json_object_get(json_array_get(hits, 0), "sender_name")), "alice");
	}
	json_decref(r);
	json_decref(call("{\"id\":152,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"a second zebra\"}}", topic));
	r = call("{\"id\":153,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra\",\"limit\":10}}");
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "results")), 2);
	json_decref(r);
	r = call("{\"id\":154,\"channel\":\"query:search\",\"payload\":{\"query\":\"\\\"unclosed\"}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":155,\"channel\":\"query:search\",\"payload\":{\"query\":\"zebra\",\"limit\":0}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);

	/* an old message deleted leaves the search at once; an old one edited
	 * is found by its new words at the next query */
	{
		char zid[65];

		r = call("{\"id\":160,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"the okapi secret\"}}", topic);
		snprintf(zid, sizeof(zid), "%s", json_string_value(json_object_get(json_object_get(r, "result"), "id")));
		json_decref(r);
		r = call("{\"id\":161,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"the gnu secret\"}}", topic);
		{
			char gid[65];

			snprintf(gid, sizeof(gid), "%s", json_string_value(json_object_get(json_object_get(r, "result"), "id")));
			json_decref(r);
			for (int i = 0; i < 60; i++)
				json_decref(call("{\"id\":162,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\",\"text\":\"filler %d\"}}", topic, i));
			json_decref(call("{\"id\":163,\"channel\":\"action:deleteMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%s\"}}", topic, zid));
			json_decref(call("{\"id\":164,\"channel\":\"action:editMessage\",\"payload\":{\"topic\":\"%s\",\"message\":\"%s\",\"text\":\"the wildebeest\"}}", topic, gid));
		}
		r = call("{\"id\":165,\"channel\":\"query:search\",\"payload\":{\"query\":\"secret\"}}");
		assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "results")), 0);
		json_decref(r);
		r = call("{\"id\":166,\"channel\":\"query:search\",\"payload\":{\"query\":\"wildebeest\"}}");
		assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "results")), 1);
		json_decref(r);
	}

	/* read: unread drops to 0 */
	r = call("{\"id\":15,\"channel\":\"action:markRead\",\"payload\":{\"topic\":\"%s\"}}", topic);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "unread")), 0);
	json_decref(r);
	r = call("{\"id\":16,\"channel\":\"query:getConversation\",\"payload\":{\"topic\":\"%s\"}}", topic);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "unread")), 0);
	json_decref(r);
}

static void test_errors(void **state)
{
	json_t *r;

	(void)state;
	r = call("{\"id\":1,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"nope\",\"text\":\"x\"}}");
	assert_string_equal(err_code(r), "not_found");
	json_decref(r);
	r = call("{\"id\":2,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\"}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":3,\"channel\":\"query:getMessages\",\"payload\":{\"topic\":\"Bob\",\"limit\":0}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":4,\"channel\":\"action:createConversation\",\"payload\":{\"with\":[]}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":5,\"channel\":\"action:createConversation\",\"payload\":{\"with\":[\"Nobody\"]}}");
	assert_string_equal(err_code(r), "not_found");
	json_decref(r);
	r = call("{\"id\":6,\"channel\":\"query:getMessages\",\"payload\":{\"topic\":\"Bob\",\"before\":\"%064d\"}}", 0);
	assert_string_equal(err_code(r), "not_found");
	json_decref(r);
	r = call("{\"id\":7,\"channel\":\"query:getState\",\"payload\":{\"x\":1}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	/* inline attachments: the shape, base64, the size */
	r = call("{\"id\":8,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"\",\"attachments\":[{\"name\":\"a.txt\",\"data\":\"not base64!\"}]}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":9,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"\",\"attachments\":[{\"name\":\"a.txt\",\"data\":\"aGk=\",\"extra\":1}]}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":10,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"\",\"attachments\":[\"a.txt\"]}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	{
		size_t big = (600u << 10) / 3 * 4; /* 600 KiB decoded: over the bound */
		char *req = malloc(big + 256);
		char *reply = NULL;
		size_t n = 0;
		json_t *rr;

		int at = snprintf(req, big + 256, "{\"id\":11,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"\",\"attachments\":[{\"name\":\"big\",\"data\":\"");
		memset(req + at, 'A', big);
		snprintf(req + at + big, 256, "\"}]}}");
		assert_int_equal(lama_ipc_handle(d, req, strlen(req), caller, &reply, &n), 0);
		rr = json_loadb(reply, n, 0, NULL);
		assert_string_equal(err_code(rr), "limit");
		json_decref(rr);
		lama_free(reply);
		free(req);
	}
	r = call("{\"id\":12,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"\",\"attachments\":[{\"name\":\"hi.txt\",\"type\":\"text/plain\",\"data\":\"aGkK\"}]}}");
	assert_null(json_object_get(r, "error"));
	json_decref(r);
	r = call("{\"id\":13,\"channel\":\"query:getMessages\",\"payload\":{\"topic\":\"Bob\",\"limit\":1}}");
	{
		const json_t *a = json_array_get(json_object_get(json_array_get(json_object_get(json_object_get(r, "result"), "messages"), 0), "attachments"), 0);

		assert_string_equal(json_string_value(json_object_get(a, "name")), "hi.txt");
		assert_int_equal(json_integer_value(json_object_get(a, "size")), 3);
	}
	json_decref(r);
}

static const char *res_str(const json_t *r, const char *key)
{
	return json_string_value(json_object_get(json_object_get(r, "result"), key));
}

static json_int_t res_int(const json_t *r, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(r, "result"), key));
}

static void test_settings(void **state)
{
	json_t *r, *set;

	(void)state;
	r = call("{\"id\":1,\"channel\":\"query:getState\"}");
	set = json_object_get(json_object_get(r, "result"), "settings");
	assert_string_equal(json_string_value(json_object_get(set, "theme")), "system");
	assert_int_equal(json_integer_value(json_object_get(set, "pageSize")), 50);
	json_decref(r);
	r = call("{\"id\":2,\"channel\":\"action:updateSettings\",\"payload\":{\"theme\":\"dark\",\"pageSize\":100}}");
	set = json_object_get(json_object_get(r, "result"), "settings");
	assert_string_equal(json_string_value(json_object_get(set, "theme")), "dark");
	assert_true(json_is_true(json_object_get(set, "notifications")));
	json_decref(r);
	{
		json_t *p = json_array_get(pushes, json_array_size(pushes) - 1);

		assert_string_equal(json_string_value(json_object_get(json_object_get(p, "payload"), "what")), "settings");
	}
	/* each bad request is refused whole: nothing of it is saved */
	r = call("{\"id\":3,\"channel\":\"action:updateSettings\",\"payload\":{\"theme\":\"light\",\"pageSize\":5}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":4,\"channel\":\"action:updateSettings\",\"payload\":{\"theme\":\"pink\"}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":5,\"channel\":\"action:updateSettings\",\"payload\":{\"colour\":\"red\"}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":6,\"channel\":\"action:updateSettings\",\"payload\":{\"notifications\":1}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":7,\"channel\":\"action:updateSettings\",\"payload\":{}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	/* kept in the archive: a new login sees them */
	r = call("{\"id\":8,\"channel\":\"action:logout\"}");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "locked")));
	json_decref(r);
	r = call("{\"id\":9,\"channel\":\"action:login\",\"payload\":{\"password\":\"pw\"}}");
	assert_null(json_object_get(r, "error"));
	json_decref(r);
	r = call("{\"id\":10,\"channel\":\"query:getState\"}");
	set = json_object_get(json_object_get(r, "result"), "settings");
	assert_string_equal(json_string_value(json_object_get(set, "theme")), "dark");
	assert_int_equal(json_integer_value(json_object_get(set, "pageSize")), 100);
	json_decref(r);
}

/* A reconnecting client gets what it missed, once, in order. */
static void test_catchup(void **state)
{
	json_t *r;
	char epoch[64];
	json_int_t seq;
	size_t before;

	(void)state;
	r = call("{\"id\":1,\"channel\":\"query:getState\"}");
	snprintf(epoch, sizeof(epoch), "%s", res_str(r, "epoch"));
	seq = res_int(r, "seq");
	assert_int_equal(strlen(epoch), LAMA_STATE_EPOCH_HEX);
	json_decref(r);
	for (int i = 0; i < 3; i++)
		json_decref(call("{\"id\":2,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"c%d\"}}", i));
	/* the listener reconnects: gone, then back from seq */
	lama_state_unsubscribe(st, &listener);
	json_array_clear(pushes);
	caller = &listener;
	r = call("{\"id\":3,\"channel\":\"action:subscribe\",\"payload\":{\"epoch\":\"%s\",\"since\":%lld}}",
		 epoch, (long long)seq);
	caller = &me;
	assert_false(json_is_true(json_object_get(json_object_get(r, "result"), "reset")));
	assert_int_equal(res_int(r, "seq"), seq + 3);
	json_decref(r);
	assert_int_equal(json_array_size(pushes), 3);
	for (int i = 0; i < 3; i++) {
		json_t *p = json_array_get(pushes, i);
		char want[8];

		snprintf(want, sizeof(want), "c%d", i);
		assert_int_equal(json_integer_value(json_object_get(p, "seq")), seq + 1 + i);
		assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(p, "payload"), "message"), "text")), want);
	}
	/* and then the live ones, nothing twice */
	json_decref(call("{\"id\":4,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"Bob\",\"text\":\"live\"}}"));
	assert_int_equal(json_array_size(pushes), 4);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(pushes, 3), "seq")), seq + 4);
	/* another run's epoch, or a seq from the future: reset, nothing sent */
	before = json_array_size(pushes);
	caller = &listener;
	r = call("{\"id\":5,\"channel\":\"action:subscribe\",\"payload\":{\"epoch\":\"%032d\",\"since\":1}}", 0);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "reset")));
	json_decref(r);
	r = call("{\"id\":6,\"channel\":\"action:subscribe\",\"payload\":{\"epoch\":\"%s\",\"since\":%lld}}",
		 epoch, (long long)seq + 99);
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "reset")));
	json_decref(r);
	r = call("{\"id\":7,\"channel\":\"action:subscribe\",\"payload\":{\"epoch\":\"%s\"}}", epoch);
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	caller = &me;
	assert_int_equal(json_array_size(pushes), before);
}

/* A folder with no user: only what needs none answers, until register;
 * logout locks again; a wrong password changes nothing. */
static void test_locked(void **state)
{
	char saved[sizeof(home)];
	json_t *r;

	(void)state;
	close_controller();
	memcpy(saved, home, sizeof(home));
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	open_controller(NULL);
	r = call("{\"id\":1,\"channel\":\"query:getState\"}");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "locked")));
	assert_int_equal(res_int(r, "users"), 0);
	json_decref(r);
	r = call("{\"id\":2,\"channel\":\"query:getContacts\"}");
	assert_string_equal(err_code(r), "unauthorized");
	json_decref(r);
	r = call("{\"id\":3,\"channel\":\"action:logout\"}");
	assert_string_equal(err_code(r), "unauthorized");
	json_decref(r);
	r = call("{\"id\":4,\"channel\":\"action:login\",\"payload\":{\"password\":\"pw\"}}");
	assert_string_equal(err_code(r), "not_found");
	json_decref(r);
	r = call("{\"id\":5,\"channel\":\"action:register\",\"payload\":{\"name\":\"carol\",\"password\":\"\"}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":6,\"channel\":\"action:register\",\"payload\":{\"name\":\"carol\",\"password\":\"secret\"}}");
	assert_null(json_object_get(r, "error"));
	assert_non_null(lama_controller_session(ctl));
	json_decref(r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(pushes, 0), "payload"), "what")), "session");
	r = call("{\"id\":7,\"channel\":\"action:register\",\"payload\":{\"name\":\"dave\",\"password\":\"secret\"}}");
	assert_string_equal(err_code(r), "conflict");
	json_decref(r);
	r = call("{\"id\":8,\"channel\":\"query:getContacts\"}");
	assert_null(json_object_get(r, "error"));
	json_decref(r);
	{
		/* after logout nothing of the user's can be replayed */
		char epoch[64];
		size_t had;

		r = call("{\"id\":90,\"channel\":\"query:getState\"}");
		snprintf(epoch, sizeof(epoch), "%s", res_str(r, "epoch"));
		json_decref(r);
		json_decref(call("{\"id\":9,\"channel\":\"action:logout\"}"));
		assert_null(lama_controller_session(ctl));
		had = json_array_size(pushes);
		lama_state_unsubscribe(st, &listener);
		caller = &listener;
		r = call("{\"id\":91,\"channel\":\"action:subscribe\",\"payload\":{\"epoch\":\"%s\",\"since\":0}}", epoch);
		caller = &me;
		assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "reset")));
		assert_string_not_equal(res_str(r, "epoch"), epoch);
		json_decref(r);
		assert_int_equal(json_array_size(pushes), had);
	}
	r = call("{\"id\":10,\"channel\":\"action:login\",\"payload\":{\"password\":\"wrong\"}}");
	assert_string_equal(err_code(r), "unauthorized");
	assert_null(lama_controller_session(ctl));
	json_decref(r);
	r = call("{\"id\":11,\"channel\":\"action:login\",\"payload\":{\"name\":\"carol\",\"password\":\"secret\"}}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(r, "result"), "user"), "name")), "carol");
	json_decref(r);
	r = call("{\"id\":12,\"channel\":\"query:getState\"}");
	assert_false(json_is_true(json_object_get(json_object_get(r, "result"), "locked")));
	json_decref(r);
	/* reset: the password and the word, else nothing happens; nor when
	 * another process holds the user */
	{
		lama_session *other;

		assert_int_equal(lama_account_login(home, "carol", "secret", 6, &other), 0);
		r = call("{\"id\":130,\"channel\":\"action:reset\",\"payload\":{\"password\":\"secret\",\"confirm\":\"erase\"}}");
		assert_non_null(json_object_get(r, "error"));
		assert_non_null(lama_controller_session(ctl));
		json_decref(r);
		lama_session_logout(other);
		r = call("{\"id\":131,\"channel\":\"query:getContacts\"}");
		assert_null(json_object_get(r, "error"));
		json_decref(r);
	}
	r = call("{\"id\":13,\"channel\":\"action:reset\",\"payload\":{\"password\":\"secret\",\"confirm\":\"yes\"}}");
	assert_string_equal(err_code(r), "invalid_payload");
	json_decref(r);
	r = call("{\"id\":14,\"channel\":\"action:reset\",\"payload\":{\"password\":\"nope\",\"confirm\":\"erase\"}}");
	assert_string_equal(err_code(r), "unauthorized");
	assert_non_null(lama_controller_session(ctl));
	json_decref(r);
	r = call("{\"id\":15,\"channel\":\"action:reset\",\"payload\":{\"password\":\"secret\",\"confirm\":\"erase\"}}");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "erased")));
	assert_null(lama_controller_session(ctl));
	json_decref(r);
	r = call("{\"id\":16,\"channel\":\"query:getState\"}");
	assert_int_equal(res_int(r, "users"), 0);
	json_decref(r);
	r = call("{\"id\":17,\"channel\":\"action:login\",\"payload\":{\"name\":\"carol\",\"password\":\"secret\"}}");
	assert_string_equal(err_code(r), "not_found");
	json_decref(r);
	close_controller();
	tu_rmtree(home);
	memcpy(home, saved, sizeof(home));
	open_controller(NULL); /* teardown's */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journey),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_catchup),
		cmocka_unit_test(test_locked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
