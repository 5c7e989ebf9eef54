/* test_ipc.c: the IPC protocol without sockets (ipc.h, docs/ipc.md).
 *
 * Each request goes through lama_ipc_handle; the reply is checked to be
 * one line of strict JSON with exactly the members the protocol names, and
 * against the expected id, code and (part of the) message or result. The
 * out-of-memory test fails every allocation in turn, lama's and jansson's
 * (json_set_alloc_funcs), and LSan catches leaks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "testutil.h"
#include "ipc/ipc.h"
#include "util/err.h"
#include "util/mem.h"

#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* --- handlers ------------------------------------------------------------ */

static int calls;

/* {"channel": CHANNEL, "payload": PAYLOAD, "client": CLIENT} */
static int h_echo(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	calls++;
	assert_ptr_equal(ctx, &calls);
	*result = json_pack("{s:s,s:O,s:s}", "channel", call->channel, "payload",
			    (json_t *)call->payload, "client", call->client ? (char *)call->client : "");
	return *result ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
}

static int h_null(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	calls++;
	return 0;
}

/* Fails with the code *ctx and a message; leaves a result behind that the
 * dispatcher must drop. */
static int h_fail(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	calls++;
	*result = json_string("dropped");
	return lama_error(*(int *)ctx, "handler failed with %d", *(int *)ctx);
}

/* Passes a code up without a message. */
static int h_silent(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	calls++;
	return *(int *)ctx;
}

/* A message with invalid UTF-8 and far over the reply's message limit. */
static int h_ugly(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	char junk[400];

	memset(junk, 'x', sizeof(junk) - 1);
	junk[0] = '\xff';
	junk[1] = '\n';
	junk[2] = '"';
	junk[sizeof(junk) - 1] = '\0';
	return lama_error(LAMA_EINVAL, "%s", junk);
}

/* A result of 2 MiB: over the message limit. */
static int h_huge(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	size_t n = (size_t)2 << 20;
	char *s = malloc(n);

	memset(s, 'a', n);
	*result = json_stringn(s, n);
	free(s);
	return 0;
}

/* Scalars, a string with a newline and a control character, non-ASCII. */
static int h_text(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	*result = json_pack("[s,i,f,b,n]", "a\nb\x01\"\\ \xc3\xa4", 42, 1.5, 1);
	return 0;
}

/* --- helpers ------------------------------------------------------------- */

static lama_ipc *fresh(void)
{
	lama_ipc *d;

	assert_int_equal(lama_ipc_new(&d), 0);
	assert_int_equal(lama_ipc_register(d, "action:echo", NULL, h_echo, &calls), 0);
	assert_int_equal(lama_ipc_register(d, "query:null", "", h_null, NULL), 0);
	assert_int_equal(lama_ipc_register(d, "action:typed",
					   "s:s,i:i,n:n,b:b,h:h,o:o,a:a,opt:s?", h_echo, &calls),
			 0);
	return d;
}

/* One reply: one line of strict JSON, the length right; returns it parsed. */
static json_t *check_reply(const char *r, size_t len)
{
	json_error_t e;
	json_t *j;

	assert_non_null(r);
	assert_int_equal(strlen(r), len);
	assert_null(memchr(r, '\n', len));
	assert_null(memchr(r, '\r', len));
	j = json_loadb(r, len, JSON_REJECT_DUPLICATES, &e);
	if (!j)
		fail_msg("reply is not JSON: %s: %s", e.text, r);
	assert_true(json_is_object(j));
	return j;
}

static json_t *request_n(lama_ipc *d, const char *text, size_t n)
{
	char *reply = NULL;
	size_t len = 0;
	json_t *j;

	assert_int_equal(lama_ipc_handle(d, text, n, "cl", &reply, &len), 0);
	j = check_reply(reply, len);
	lama_free(reply);
	return j;
}

static json_t *request(lama_ipc *d, const char *text)
{
	return request_n(d, text, strlen(text));
}

/* Asserts an error reply with the id (JSON text, "null" for none), code
 * and a message containing `part`. */
static void expect_error_n(lama_ipc *d, const char *text, size_t n, const char *id,
			   const char *code, const char *part)
{
	json_t *j = request_n(d, text, n), *want = json_loads(id, JSON_DECODE_ANY, NULL);
	json_t *err = json_object_get(j, "error");
	const char *msg;

	assert_non_null(want);
	if (json_object_size(j) != 2 || !err || !json_equal(json_object_get(j, "id"), want))
		fail_msg("for %.200s: want id %s, got %s", text, id, json_dumps(j, 0));
	assert_int_equal(json_object_size(err), 2);
	assert_string_equal(json_string_value(json_object_get(err, "code")), code);
	msg = json_string_value(json_object_get(err, "message"));
	assert_non_null(msg);
	if (!strstr(msg, part))
		fail_msg("for %.200s: message \"%s\" lacks \"%s\"", text, msg, part);
	json_decref(want);
	json_decref(j);
}

static void expect_error(lama_ipc *d, const char *text, const char *id, const char *code,
			 const char *part)
{
	expect_error_n(d, text, strlen(text), id, code, part);
}

/* Asserts {"id": ID, "result": RESULT} exactly. */
static void expect_result(lama_ipc *d, const char *text, const char *id, const char *result)
{
	json_t *j = request(d, text), *want;
	char buf[4096];

	snprintf(buf, sizeof(buf), "{\"id\":%s,\"result\":%s}", id, result);
	want = json_loads(buf, 0, NULL);
	assert_non_null(want);
	if (!json_equal(j, want)) {
		char *got = json_dumps(j, 0);

		fail_msg("for %s: want %s, got %s", text, buf, got);
	}
	json_decref(want);
	json_decref(j);
}

/* --- tests --------------------------------------------------------------- */

static void test_valid_ids(void **state)
{
	lama_ipc *d = fresh();
	char longid[LAMA_IPC_ID_MAX + 40];

	calls = 0;
	expect_result(d, "{\"id\":\"a1\",\"channel\":\"action:echo\",\"payload\":{\"x\":1}}",
		      "\"a1\"", "{\"channel\":\"action:echo\",\"payload\":{\"x\":1},\"client\":\"cl\"}");
	expect_result(d, "{\"id\":7,\"channel\":\"action:echo\"}", "7",
		      "{\"channel\":\"action:echo\",\"payload\":{},\"client\":\"cl\"}");
	expect_result(d, "{\"id\":-9007199254740991,\"channel\":\"action:echo\",\"payload\":{}}",
		      "-9007199254740991",
		      "{\"channel\":\"action:echo\",\"payload\":{},\"client\":\"cl\"}");
	expect_result(d, "{\"id\":0,\"channel\":\"action:echo\",\"payload\":{}}", "0",
		      "{\"channel\":\"action:echo\",\"payload\":{},\"client\":\"cl\"}");
	/* member order does not matter; whitespace around is fine */
	expect_result(d, " \t{\"payload\":{},\"channel\":\"action:echo\",\"id\":\"\\u00e4\\\"\"}\r\n",
		      "\"\xc3\xa4\\\"\"", "{\"channel\":\"action:echo\",\"payload\":{},\"client\":\"cl\"}");
	/* a string id of exactly LAMA_IPC_ID_MAX bytes */
	memset(longid, 'i', LAMA_IPC_ID_MAX);
	longid[LAMA_IPC_ID_MAX] = '\0';
	{
		char req[512], id[256];

		snprintf(req, sizeof(req), "{\"id\":\"%s\",\"channel\":\"query:null\"}", longid);
		snprintf(id, sizeof(id), "\"%s\"", longid);
		expect_result(d, req, id, "null");
	}
	assert_int_equal(calls, 6);
	lama_ipc_free(d);
}

static void test_malformed(void **state)
{
	lama_ipc *d = fresh();
	char big[LAMA_IPC_ID_MAX + 64], req[512];
	static const char nul_raw[] = "{\"id\":1,\"channel\":\"action:echo\",\"payload\":{\"a\":\"x\0y\"}}";
	static const char nul_after[] = "{\"id\":1,\"channel\":\"action:echo\"}\0";

	calls = 0;
	expect_error_n(d, "", 0, "null", LAMA_IPC_BAD_REQUEST, "empty");
	expect_error(d, "   \n", "null", LAMA_IPC_BAD_REQUEST, "not JSON");
	expect_error(d, "hello", "null", LAMA_IPC_BAD_REQUEST, "not JSON");
	expect_error(d, "{\"id\":1,\"channel\":\"action:echo\"", "null", LAMA_IPC_BAD_REQUEST,
		     "not JSON");
	expect_error(d, "[1,2]", "null", LAMA_IPC_BAD_REQUEST, "object");
	expect_error(d, "\"action:echo\"", "null", LAMA_IPC_BAD_REQUEST, "object");
	expect_error(d, "42", "null", LAMA_IPC_BAD_REQUEST, "object");
	expect_error(d, "null", "null", LAMA_IPC_BAD_REQUEST, "object");
	/* trailing garbage, a second message on the same line */
	expect_error(d, "{\"id\":1,\"channel\":\"action:echo\"} x", "null", LAMA_IPC_BAD_REQUEST,
		     "not JSON");
	expect_error(d, "{\"id\":1,\"channel\":\"action:echo\"}{\"id\":2,\"channel\":\"action:echo\"}",
		     "null", LAMA_IPC_BAD_REQUEST, "not JSON");
	/* duplicate keys, at the top and inside the payload */
	expect_error(d, "{\"id\":1,\"id\":2,\"channel\":\"action:echo\"}", "null",
		     LAMA_IPC_BAD_REQUEST, "duplicate");
	expect_error(d, "{\"id\":1,\"channel\":\"action:echo\",\"payload\":{\"a\":1,\"a\":1}}",
		     "null", LAMA_IPC_BAD_REQUEST, "duplicate");
	/* NUL: escaped, raw inside a string, raw after the message */
	expect_error(d, "{\"id\":1,\"channel\":\"action:echo\",\"payload\":{\"a\":\"x\\u0000\"}}",
		     "null", LAMA_IPC_BAD_REQUEST, "not JSON");
	expect_error(d, "{\"id\":\"a\\u0000b\",\"channel\":\"action:echo\"}", "null",
		     LAMA_IPC_BAD_REQUEST, "not JSON");
	expect_error_n(d, nul_raw, sizeof(nul_raw) - 1, "null", LAMA_IPC_BAD_REQUEST, "not JSON");
	expect_error_n(d, nul_after, sizeof(nul_after) - 1, "null", LAMA_IPC_BAD_REQUEST,
		       "not JSON");
	/* invalid UTF-8 */
	expect_error(d, "{\"id\":\"\xff\",\"channel\":\"action:echo\"}", "null",
		     LAMA_IPC_BAD_REQUEST, "not JSON");
	/* ids */
	expect_error(d, "{\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST, "no \"id\"");
	expect_error(d, "{\"id\":null,\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":\"\",\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":1.5,\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":1.0,\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":true,\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":[1],\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":{},\"channel\":\"action:echo\"}", "null", LAMA_IPC_BAD_REQUEST,
		     "\"id\" must be");
	expect_error(d, "{\"id\":9007199254740992,\"channel\":\"action:echo\"}", "null",
		     LAMA_IPC_BAD_REQUEST, "\"id\" must be");
	expect_error(d, "{\"id\":99999999999999999999999,\"channel\":\"action:echo\"}", "null",
		     LAMA_IPC_BAD_REQUEST, "not JSON");
	memset(big, 'i', LAMA_IPC_ID_MAX + 1);
	big[LAMA_IPC_ID_MAX + 1] = '\0';
	snprintf(req, sizeof(req), "{\"id\":\"%s\",\"channel\":\"action:echo\"}", big);
	expect_error(d, req, "null", LAMA_IPC_BAD_REQUEST, "\"id\" must be");
	/* members: extra, missing channel; the id is echoed from here on */
	expect_error(d, "{\"id\":\"x\",\"channel\":\"action:echo\",\"extra\":1}", "\"x\"",
		     LAMA_IPC_BAD_REQUEST, "\"extra\"");
	expect_error(d, "{\"id\":\"x\",\"payload\":{}}", "\"x\"", LAMA_IPC_BAD_REQUEST,
		     "no \"channel\"");
	/* channel grammar */
	expect_error(d, "{\"id\":3,\"channel\":5}", "3", LAMA_IPC_BAD_REQUEST, "must be a string");
	expect_error(d, "{\"id\":3,\"channel\":null}", "3", LAMA_IPC_BAD_REQUEST, "must be a string");
	{
		static const char *const bad[] = {
			"", "echo", "action:", "action", ":echo", "Action:echo", "action:9echo",
			"action:_echo", "action:ec ho", "action:ec-ho", "action:echo:x", "action::echo",
			"query:\xc3\xa4", "command:echo", " action:echo", "action:echo ",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(req, sizeof(req), "{\"id\":3,\"channel\":\"%s\"}", bad[i]);
			expect_error(d, req, "3", LAMA_IPC_BAD_REQUEST, "action:NAME or query:NAME");
		}
	}
	expect_error(d, "{\"id\":3,\"channel\":\"update:stateChanged\"}", "3", LAMA_IPC_BAD_REQUEST,
		     "pushed by the server");
	/* a channel of LAMA_IPC_CHANNEL_MAX bytes is fine (no handler), one more is not */
	memset(big, 'c', sizeof(big));
	snprintf(req, sizeof(req), "{\"id\":3,\"channel\":\"query:%.*s\"}", LAMA_IPC_CHANNEL_MAX - 6,
		 big);
	expect_error(d, req, "3", LAMA_IPC_UNKNOWN_CHANNEL, "no handler");
	snprintf(req, sizeof(req), "{\"id\":3,\"channel\":\"query:%.*s\"}", LAMA_IPC_CHANNEL_MAX - 5,
		 big);
	expect_error(d, req, "3", LAMA_IPC_BAD_REQUEST, "at most 64 bytes");
	/* payload not an object */
	{
		static const char *const bad[] = { "null", "[]", "\"x\"", "1", "true" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(req, sizeof(req),
				 "{\"id\":\"p\",\"channel\":\"action:echo\",\"payload\":%s}", bad[i]);
			expect_error(d, req, "\"p\"", LAMA_IPC_BAD_REQUEST,
				     "\"payload\" must be an object");
		}
	}
	assert_int_equal(calls, 0);
	lama_ipc_free(d);
}

static void test_too_large(void **state)
{
	lama_ipc *d = fresh();
	size_t n = LAMA_IPC_MESSAGE_MAX + 1;
	char *text = malloc(n + 1);
	const char *head = "{\"id\":1,\"channel\":\"action:echo\",\"payload\":{\"s\":\"";
	size_t hl = strlen(head);

	calls = 0;
	/* exactly the limit: handled */
	memset(text, 'a', n);
	memcpy(text, head, hl);
	memcpy(text + LAMA_IPC_MESSAGE_MAX - 3, "\"}}", 3);
	{
		json_t *j = request_n(d, text, LAMA_IPC_MESSAGE_MAX);

		/* the echo of 1 MiB is itself over the limit: too_large with the id */
		assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"),
								      "code")),
				    LAMA_IPC_TOO_LARGE);
		assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
		json_decref(j);
	}
	assert_int_equal(calls, 1);
	/* one byte more: refused unread, so no id */
	memcpy(text + LAMA_IPC_MESSAGE_MAX - 3, "a\"}}", 4);
	expect_error_n(d, text, n, "null", LAMA_IPC_TOO_LARGE, "more than");
	assert_int_equal(calls, 1);
	free(text);
	assert_int_equal(lama_ipc_register(d, "query:huge", NULL, h_huge, NULL), 0);
	expect_error(d, "{\"id\":\"h\",\"channel\":\"query:huge\"}", "\"h\"", LAMA_IPC_TOO_LARGE,
		     "reply");
	lama_ipc_free(d);
}

static void test_unknown_channel(void **state)
{
	lama_ipc *d = fresh();

	calls = 0;
	expect_error(d, "{\"id\":1,\"channel\":\"action:nope\"}", "1", LAMA_IPC_UNKNOWN_CHANNEL,
		     "\"action:nope\"");
	/* kinds are part of the name */
	expect_error(d, "{\"id\":1,\"channel\":\"query:echo\"}", "1", LAMA_IPC_UNKNOWN_CHANNEL,
		     "query:echo");
	expect_error(d, "{\"id\":1,\"channel\":\"action:Echo\"}", "1", LAMA_IPC_UNKNOWN_CHANNEL,
		     "action:Echo");
	assert_int_equal(calls, 0);
	lama_ipc_free(d);
}

#define TYPED "{\"s\":\"x\",\"i\":-3,\"n\":2.5,\"b\":false,\"h\":\"" HASH "\",\"o\":{},\"a\":[]"

static void test_schema(void **state)
{
	lama_ipc *d = fresh();
	char req[1024], want[1024];
	/* member, a bad value, the type in the message */
	static const char *const bad[][3] = {
		{ "s", "1", "a string" },         { "s", "null", "a string" },
		{ "i", "1.0", "an integer" },     { "i", "\"1\"", "an integer" },
		{ "n", "\"2\"", "a number" },     { "n", "true", "a number" },
		{ "b", "0", "a boolean" },        { "b", "null", "a boolean" },
		{ "o", "[]", "an object" },       { "a", "{}", "an array" },
		{ "h", "\"" HASH "0\"", "a hash" }, { "h", "\"" HASH "\"", NULL },
		{ "opt", "1", "a string" },       { "opt", "null", "a string" },
	};

	calls = 0;
	/* all members, then with the optional one */
	snprintf(req, sizeof(req), "{\"id\":1,\"channel\":\"action:typed\",\"payload\":%s}}", TYPED);
	snprintf(want, sizeof(want),
		 "{\"channel\":\"action:typed\",\"payload\":%s},\"client\":\"cl\"}", TYPED);
	expect_result(d, req, "1", want);
	snprintf(req, sizeof(req),
		 "{\"id\":1,\"channel\":\"action:typed\",\"payload\":%s,\"opt\":\"y\"}}", TYPED);
	snprintf(want, sizeof(want),
		 "{\"channel\":\"action:typed\",\"payload\":%s,\"opt\":\"y\"},\"client\":\"cl\"}",
		 TYPED);
	expect_result(d, req, "1", want);
	/* n takes integers too */
	snprintf(req, sizeof(req),
		 "{\"id\":1,\"channel\":\"action:typed\",\"payload\":{\"s\":\"\",\"i\":0,\"n\":7,"
		 "\"b\":true,\"h\":\"%s\",\"o\":{\"k\":[]},\"a\":[1,\"2\"]}}",
		 HASH);
	{
		json_t *j = request(d, req);

		assert_non_null(json_object_get(j, "result"));
		json_decref(j);
	}
	assert_int_equal(calls, 3);
	/* each member wrong in turn */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char payload[600], *p = payload;
		static const char *const keys[] = { "s", "i", "n", "b", "h", "o", "a", "opt" };
		static const char *const vals[] = {
			"\"x\"", "1", "1", "true", "\"" HASH "\"", "{}", "[]", "\"o\"",
		};
		char hbad[80];

		if (!bad[i][2]) { /* upper-case hex */
			snprintf(hbad, sizeof(hbad), "\"%s\"", HASH);
			for (char *c = hbad; *c; c++)
				if (*c >= 'a' && *c <= 'f')
					*c = (char)(*c - 'a' + 'A');
		}
		p += sprintf(p, "{");
		for (size_t k = 0; k < 8; k++)
			p += sprintf(p, "%s\"%s\":%s", k ? "," : "", keys[k],
				     !strcmp(keys[k], bad[i][0]) ? (bad[i][2] ? bad[i][1] : hbad)
								 : vals[k]);
		sprintf(p, "}");
		snprintf(req, sizeof(req), "{\"id\":1,\"channel\":\"action:typed\",\"payload\":%s}",
			 payload);
		snprintf(want, sizeof(want), "\"%s\" must be %s", bad[i][0],
			 bad[i][2] ? bad[i][2] : "a hash");
		expect_error(d, req, "1", LAMA_IPC_INVALID_PAYLOAD, want);
	}
	/* each required member missing in turn */
	{
		static const char *const keys[] = { "s", "i", "n", "b", "h", "o", "a" };

		for (size_t m = 0; m < 7; m++) {
			char payload[600], *p = payload;
			int first = 1;

			p += sprintf(p, "{");
			for (size_t k = 0; k < 7; k++) {
				if (k == m)
					continue;
				p += sprintf(p, "%s\"%s\":%s", first ? "" : ",", keys[k],
					     k == 0 ? "\"x\"" : k == 3 ? "true" : k == 4 ? "\"" HASH "\""
						 : k == 5 ? "{}" : k == 6 ? "[]" : "1");
				first = 0;
			}
			sprintf(p, "}");
			snprintf(req, sizeof(req),
				 "{\"id\":1,\"channel\":\"action:typed\",\"payload\":%s}", payload);
			snprintf(want, sizeof(want), "\"%s\" is missing", keys[m]);
			expect_error(d, req, "1", LAMA_IPC_INVALID_PAYLOAD, want);
		}
	}
	/* an extra member */
	snprintf(req, sizeof(req),
		 "{\"id\":1,\"channel\":\"action:typed\",\"payload\":%s,\"zz\":1}}", TYPED);
	expect_error(d, req, "1", LAMA_IPC_INVALID_PAYLOAD, "\"zz\" is not expected");
	/* "" takes only {} */
	expect_result(d, "{\"id\":1,\"channel\":\"query:null\",\"payload\":{}}", "1", "null");
	expect_error(d, "{\"id\":1,\"channel\":\"query:null\",\"payload\":{\"a\":1}}", "1",
		     LAMA_IPC_INVALID_PAYLOAD, "\"a\" is not expected");
	/* absent payload against a schema with required members */
	expect_error(d, "{\"id\":1,\"channel\":\"action:typed\"}", "1", LAMA_IPC_INVALID_PAYLOAD,
		     "\"s\" is missing");
	assert_int_equal(calls, 4);
	lama_ipc_free(d);
}

static void test_register(void **state)
{
	lama_ipc *d;
	static const char *const bad_schema[] = {
		",", "a", "a:", ":s", "a:x", "a:ss", "a:s??", "a:?", "a:s,", ",a:s", "a:s,,b:i",
		"a:s,a:i", "a b:s", "1a:s", "a:s;b:i", "a:S", "a:s ?", "a:s, b:i",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:s",
	};
	static const char *const bad_channel[] = {
		"update:stateChanged", "action:", "echo", "action:a b", "query:1", "Query:x",
		"action:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};

	assert_int_equal(lama_ipc_new(&d), 0);
	for (size_t i = 0; i < sizeof(bad_schema) / sizeof(bad_schema[0]); i++)
		if (lama_ipc_register(d, "action:x", bad_schema[i], h_null, NULL) != LAMA_EINVAL)
			fail_msg("schema \"%s\" was accepted", bad_schema[i]);
	for (size_t i = 0; i < sizeof(bad_channel) / sizeof(bad_channel[0]); i++)
		if (lama_ipc_register(d, bad_channel[i], NULL, h_null, NULL) != LAMA_EINVAL)
			fail_msg("channel \"%s\" was accepted", bad_channel[i]);
	assert_int_equal(lama_ipc_register(d, "action:x", NULL, NULL, NULL), LAMA_EINVAL);
	/* none of them registered anything */
	expect_error(d, "{\"id\":1,\"channel\":\"action:x\"}", "1", LAMA_IPC_UNKNOWN_CHANNEL, "");
	/* good schemas; a name of 64 bytes */
	assert_int_equal(lama_ipc_register(d, "action:x", "a:s?", h_null, NULL), 0);
	assert_int_equal(lama_ipc_register(d, "action:x", NULL, h_echo, &calls), LAMA_EEXIST);
	assert_int_equal(lama_ipc_register(d, "query:x", "A_1:h,b2:o?", h_null, NULL), 0);
	assert_int_equal(lama_ipc_register(d, "query:y",
					   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:s",
					   h_null, NULL),
			 0);
	/* the first handler stays */
	calls = 0;
	expect_result(d, "{\"id\":1,\"channel\":\"action:x\"}", "1", "null");
	assert_int_equal(calls, 1);
	/* many channels: the table grows */
	for (int i = 0; i < 100; i++) {
		static char names[100][16];

		snprintf(names[i], sizeof(names[i]), "query:c%d", i);
		assert_int_equal(lama_ipc_register(d, names[i], NULL, h_echo, &calls), 0);
	}
	expect_result(d, "{\"id\":1,\"channel\":\"query:c99\"}", "1",
		      "{\"channel\":\"query:c99\",\"payload\":{},\"client\":\"cl\"}");
	lama_ipc_free(d);
	lama_ipc_free(NULL);
}

static void test_error_mapping(void **state)
{
	static const struct {
		int rc;
		const char *code;
	} map[] = {
		{ LAMA_ENOTFOUND, LAMA_IPC_NOT_FOUND }, { LAMA_EEXIST, LAMA_IPC_CONFLICT },
		{ LAMA_EBUSY, LAMA_IPC_CONFLICT },      { LAMA_EAUTH, LAMA_IPC_UNAUTHORIZED },
		{ LAMA_ELIMIT, LAMA_IPC_LIMIT },        { LAMA_EINVAL, LAMA_IPC_INVALID_PAYLOAD },
		{ LAMA_EFORMAT, LAMA_IPC_INVALID_PAYLOAD }, { LAMA_ENOMEM, LAMA_IPC_INTERNAL },
		{ LAMA_ECORRUPT, LAMA_IPC_INTERNAL },   { LAMA_ECRYPTO, LAMA_IPC_INTERNAL },
		{ LAMA_EIO, LAMA_IPC_INTERNAL },        { -99, LAMA_IPC_INTERNAL },
		{ 5, LAMA_IPC_INTERNAL },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		lama_ipc *d;
		int code = map[i].rc;
		char msg[64];

		assert_int_equal(lama_ipc_new(&d), 0);
		assert_int_equal(lama_ipc_register(d, "action:fail", NULL, h_fail, &code), 0);
		assert_int_equal(lama_ipc_register(d, "action:silent", NULL, h_silent, &code), 0);
		snprintf(msg, sizeof(msg), "handler failed with %d", code);
		expect_error(d, "{\"id\":\"e\",\"channel\":\"action:fail\"}", "\"e\"", map[i].code, msg);
		/* no message recorded: the code's description, not a stale one */
		lama_error(LAMA_EIO, "stale message");
		expect_error(d, "{\"id\":\"e\",\"channel\":\"action:silent\"}", "\"e\"", map[i].code,
			     lama_strerror(code));
		lama_ipc_free(d);
	}
}

static void test_messages_and_results(void **state)
{
	lama_ipc *d = fresh();
	char *reply;
	size_t len;
	const char *req = "{\"id\":2,\"channel\":\"query:ugly\"}";
	json_t *j;
	const char *msg;

	assert_int_equal(lama_ipc_register(d, "query:ugly", NULL, h_ugly, NULL), 0);
	assert_int_equal(lama_ipc_register(d, "query:text", NULL, h_text, NULL), 0);
	/* a bad message is made valid, one line and bounded */
	j = request(d, req);
	msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	assert_non_null(msg);
	assert_true(strlen(msg) <= 260);
	assert_int_equal(msg[0], '?');
	assert_int_equal(msg[1], '\n');
	assert_int_equal(msg[2], '"');
	assert_non_null(strstr(msg, "xxx..."));
	json_decref(j);
	/* the result's text: compact, escaped, UTF-8 as it is */
	req = "{\"id\":2,\"channel\":\"query:text\"}";
	assert_int_equal(lama_ipc_handle(d, req, strlen(req), NULL, &reply, &len), 0);
	assert_string_equal(reply,
			    "{\"id\":2,\"result\":[\"a\\nb\\u0001\\\"\\\\ \xc3\xa4\",42,1.5,true,null]}");
	assert_int_equal(len, strlen(reply));
	lama_free(reply);
	/* an error reply's exact text */
	req = "{\"id\":\"q\\\"\",\"channel\":\"action:nope\"}";
	assert_int_equal(lama_ipc_handle(d, req, strlen(req), NULL, &reply, NULL), 0);
	assert_string_equal(reply, "{\"id\":\"q\\\"\",\"error\":{\"code\":\"unknown_channel\","
				   "\"message\":\"no handler for channel \\\"action:nope\\\"\"}}");
	lama_free(reply);
	lama_ipc_free(d);
}

static void test_push(void **state)
{
	json_t *p = json_pack("{s:s,s:i}", "text", "hi\n\xc3\xa4", "n", 3);
	size_t len = 0;
	char *s;

	s = lama_ipc_push("update:messageReceived", 7, p, &len);
	assert_non_null(s);
	assert_string_equal(s, "{\"channel\":\"update:messageReceived\",\"seq\":7,\"payload\":"
			       "{\"text\":\"hi\\n\xc3\xa4\",\"n\":3}}");
	assert_int_equal(len, strlen(s));
	lama_free(s);
	s = lama_ipc_push("update:stateChanged", 0, NULL, NULL);
	assert_string_equal(s, "{\"channel\":\"update:stateChanged\",\"payload\":{}}");
	lama_free(s);
	s = lama_ipc_push("update:stateChanged", 18446744073709551615ULL, NULL, NULL);
	assert_string_equal(s, "{\"channel\":\"update:stateChanged\",\"seq\":18446744073709551615,\"payload\":{}}");
	lama_free(s);
	/* only update: channels, only object payloads */
	assert_null(lama_ipc_push("action:login", 7, p, &len));
	assert_null(lama_ipc_push("update:", 7, p, &len));
	assert_null(lama_ipc_push("update:a b", 7, p, &len));
	assert_null(lama_ipc_push(NULL, 7, p, &len));
	{
		json_t *a = json_array();

		assert_null(lama_ipc_push("update:x", 7, a, &len));
		json_decref(a);
	}
	/* over the limit */
	{
		size_t n = LAMA_IPC_MESSAGE_MAX;
		char *big = malloc(n);
		json_t *b;

		memset(big, 'b', n);
		b = json_pack("{s:s%}", "s", big, n);
		assert_null(lama_ipc_push("update:x", 7, b, &len));
		json_decref(b);
		free(big);
	}
	json_decref(p);
}

/* --- out of memory ------------------------------------------------------- */

static void *j_malloc(size_t n)
{
	return lama_malloc(n);
}

static void j_free(void *p)
{
	lama_free(p);
}

static const char *const oom_reqs[] = {
	"{\"id\":\"a\",\"channel\":\"action:echo\",\"payload\":{\"x\":[1,2,{\"y\":\"z\"}]}}",
	"{\"id\":5,\"channel\":\"action:typed\",\"payload\":" TYPED "}}",
	"{\"id\":6,\"channel\":\"action:typed\",\"payload\":{\"s\":1}}",
	"{\"id\":7,\"channel\":\"query:null\"}",
	"{\"id\":8,\"channel\":\"action:nope\"}",
	"{\"id\":9,\"channel\":\"action:echo\",\"x\":1}",
	"[1,2,3]",
	"{\"id\":1,\"id\":1}",
};
#define NREQ (sizeof(oom_reqs) / sizeof(oom_reqs[0]))
#define CALM 30

/* One run: the dispatcher, the requests, a push. Replies go to out[]. */
static int oom_run(char **out, char **push)
{
	lama_ipc *d;
	int rc;

	rc = lama_ipc_new(&d);
	if (rc) {
		assert_int_equal(rc, LAMA_ENOMEM);
		assert_null(d);
		return rc;
	}
	if ((rc = lama_ipc_register(d, "action:echo", NULL, h_echo, &calls)) ||
	    (rc = lama_ipc_register(d, "query:null", "", h_null, NULL)) ||
	    (rc = lama_ipc_register(d, "action:typed", "s:s,i:i,n:n,b:b,h:h,o:o,a:a,opt:s?",
				    h_echo, &calls))) {
		assert_int_equal(rc, LAMA_ENOMEM);
		lama_ipc_free(d);
		return rc;
	}
	for (size_t i = 0; i < NREQ; i++) {
		size_t len;

		rc = lama_ipc_handle(d, oom_reqs[i], strlen(oom_reqs[i]), "cl", &out[i], &len);
		if (rc) {
			assert_int_equal(rc, LAMA_ENOMEM);
			assert_null(out[i]);
		} else {
			assert_int_equal(strlen(out[i]), len);
		}
	}
	{
		json_t *p = json_pack("{s:[i,s]}", "k", 1, "v");

		*push = p ? lama_ipc_push("update:x", 7, p, NULL) : NULL;
		json_decref(p);
	}
	lama_ipc_free(d);
	return 0;
}

/* Is r a well-formed reply: one line, an object with an id and exactly
 * one of result and error (code and message strings)? */
static void wellformed(const char *r)
{
	json_t *j = check_reply(r, strlen(r)), *err = json_object_get(j, "error");

	assert_int_equal(json_object_size(j), 2);
	assert_non_null(json_object_get(j, "id"));
	if (err) {
		assert_int_equal(json_object_size(err), 2);
		assert_non_null(json_string_value(json_object_get(err, "code")));
		assert_non_null(json_string_value(json_object_get(err, "message")));
	} else {
		assert_non_null(json_object_get(j, "result"));
	}
	json_decref(j);
}

/* Fails the k-th allocation, for each k until CALM runs in a row see no
 * failure. Strict (jansson on malloc): every reply is the one a run without
 * failures gives, or an internal error. With jansson's allocations failing
 * too only well-formedness is checked: jansson's lexer drops a byte when
 * growing its buffer fails and reports no error (lex_save ignores
 * strbuffer_append_byte's result), and reports a failed string allocation
 * as a syntax error, so a request may be read wrongly. */
static void oom_pass(int with_jansson)
{
	char *want[NREQ], *wpush, *got[NREQ], *gpush;
	int failures = 0;

	if (with_jansson)
		json_set_alloc_funcs(j_malloc, j_free);
	memset(want, 0, sizeof(want));
	assert_int_equal(oom_run(want, &wpush), 0);
	for (size_t i = 0; i < NREQ; i++)
		assert_non_null(want[i]);
	assert_non_null(wpush);
	for (int sticky = 0; sticky < 2; sticky++) {
		int calm = 0;

		for (unsigned long k = 1; calm < CALM && k < 5000; k++) {
			int same = 1;

			memset(got, 0, sizeof(got));
			gpush = NULL;
			lama_mem_fail_after(k, sticky);
			if (oom_run(got, &gpush))
				same = 0;
			lama_mem_fail_after(0, 0);
			for (size_t i = 0; i < NREQ; i++) {
				json_t *j;

				if (got[i] && !strcmp(got[i], want[i])) {
					lama_free(got[i]);
					continue;
				}
				same = 0;
				if (!got[i])
					continue;
				wellformed(got[i]);
				j = check_reply(got[i], strlen(got[i]));
				if (!with_jansson &&
				    strcmp(json_string_value(json_object_get(json_object_get(j, "error"),
									     "code")),
					   LAMA_IPC_INTERNAL))
					fail_msg("k=%lu sticky=%d request %zu: %s (want %s)", k, sticky,
						 i, got[i], want[i]);
				json_decref(j);
				lama_free(got[i]);
			}
			if (!gpush || strcmp(gpush, wpush))
				same = 0;
			if (gpush && !with_jansson)
				assert_string_equal(gpush, wpush);
			lama_free(gpush);
			calm = same ? calm + 1 : 0;
			failures += !same;
		}
		assert_int_equal(calm, CALM);
	}
	assert_true(failures > (with_jansson ? 100 : 20));
	for (size_t i = 0; i < NREQ; i++)
		lama_free(want[i]);
	lama_free(wpush);
	json_set_alloc_funcs(malloc, free);
}

static void test_oom(void **state)
{
	oom_pass(0);
}

static void test_oom_jansson(void **state)
{
	oom_pass(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),     cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_too_large),     cmocka_unit_test(test_unknown_channel),
		cmocka_unit_test(test_schema),        cmocka_unit_test(test_register),
		cmocka_unit_test(test_error_mapping), cmocka_unit_test(test_messages_and_results),
		cmocka_unit_test(test_push),          cmocka_unit_test(test_oom),
		cmocka_unit_test(test_oom_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
