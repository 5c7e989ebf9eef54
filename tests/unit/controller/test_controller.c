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
static json_t *pushes;

static void on_push(void *ctx, const char *channel, const json_t *payload)
{
	(void)ctx;
	json_array_append_new(pushes, json_pack("{s:s, s:O}", "channel", channel, "payload", payload));
}

static int setup(void **state)
{
	struct lama_kdf_params p = lama_kdf_min();
	struct lama_controller_push push = { on_push, NULL };

	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto");
	snprintf(home, sizeof(home), "%s", tu_tmpdir());
	if (lama_account_register(home, "alice", "pw", 2, &p, &s) || lama_models_init(s) ||
	    lama_ipc_new(&d) || lama_controller_new(&ctl, d, s, &push))
		fail_msg("setup: %s", lama_errmsg());
	pushes = json_array();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lama_ipc_free(d);
	lama_controller_free(ctl);
	lama_session_logout(s);
	json_decref(pushes);
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
	assert_int_equal(lama_ipc_handle(d, req, strlen(req), NULL, &reply, &n), 0);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journey),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
