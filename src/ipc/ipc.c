/* ipc.c: parsing, checking and dispatching IPC messages (ipc.h,
 * docs/ipc.md).
 *
 * Requests are parsed by jansson with duplicate keys rejected (NUL in
 * strings, invalid UTF-8 and trailing bytes are rejected by jansson's
 * defaults). Replies are assembled by hand around the handler's result,
 * dumped by jansson into a lama_buf capped at LAMA_IPC_MESSAGE_MAX: that
 * keeps every byte of the reply in lama_malloc memory (so out-of-memory
 * tests reach it) and lets an error reply be made with nothing but one
 * buffer. */
#include "ipc/ipc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

/* Bytes of an error message in a reply; longer ones are cut (at a UTF-8
 * character boundary). */
#define IPC_ERRMSG_MAX 256
/* Bytes of a schema member name. */
#define IPC_KEY_MAX 64
/* Integer ids must survive a JavaScript number: |id| <= 2^53 - 1. */
#define IPC_ID_INT_MAX 9007199254740991LL

struct member {
	const char *key; /* into entry.names */
	char type;       /* one of "sinbhoa" */
	int optional;
};

struct entry {
	const char *channel;
	lama_ipc_handler fn;
	void *ctx;
	int any;               /* schema NULL: any object */
	char *names;           /* a copy of the schema, cut into keys */
	struct member *members;
	size_t nmembers;
};

/* A linear table: a few dozen channels, looked up once per request, cost
 * less to scan than to hash. */
struct lama_ipc {
	struct entry *entries;
	size_t n, cap;
};

int lama_ipc_new(lama_ipc **out)
{
	lama_ipc *d = lama_calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		return lama_error(LAMA_ENOMEM, "out of memory");
	*out = d;
	return 0;
}

void lama_ipc_free(lama_ipc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		lama_free(d->entries[i].names);
		lama_free(d->entries[i].members);
	}
	lama_free(d->entries);
	lama_free(d);
}

/* --- channel names ------------------------------------------------------ */

/* NAME: an ASCII letter, then letters, digits or '_'. */
static int valid_name(const char *s, size_t n)
{
	if (!n || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return 0;
	}
	return 1;
}

enum { CH_BAD, CH_ACTION, CH_QUERY, CH_UPDATE };

/* The kind of a channel name of n bytes, CH_BAD unless it is KIND:NAME in
 * at most LAMA_IPC_CHANNEL_MAX bytes. */
static int channel_kind(const char *s, size_t n)
{
	static const struct {
		const char *prefix;
		int kind;
	} kinds[] = { { "action:", CH_ACTION }, { "query:", CH_QUERY }, { "update:", CH_UPDATE } };

	if (n > LAMA_IPC_CHANNEL_MAX)
		return CH_BAD;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t p = strlen(kinds[i].prefix);

		if (n > p && !memcmp(s, kinds[i].prefix, p))
			return valid_name(s + p, n - p) ? kinds[i].kind : CH_BAD;
	}
	return CH_BAD;
}

/* --- schemas ------------------------------------------------------------- */

static int parse_schema(const char *schema, struct entry *e)
{
	size_t n = strlen(schema), count = 1;
	char *p;

	if (!n) /* "" : the payload must be empty */
		return 0;
	for (size_t i = 0; i < n; i++)
		count += schema[i] == ',';
	e->names = lama_strndup(schema, n);
	e->members = lama_calloc(count, sizeof(*e->members));
	if (!e->names || !e->members)
		return lama_error(LAMA_ENOMEM, "out of memory");
	p = e->names;
	for (size_t m = 0; m < count; m++) {
		char *end = strchr(p, ','), *colon;
		struct member *mb = &e->members[m];
		size_t len;

		if (end)
			*end = '\0';
		colon = strchr(p, ':');
		if (!colon)
			return lama_error(LAMA_EINVAL, "schema member %zu has no ':TYPE'", m + 1);
		*colon = '\0';
		if (!valid_name(p, strlen(p)) || strlen(p) > IPC_KEY_MAX)
			return lama_error(LAMA_EINVAL, "schema member %zu: bad name", m + 1);
		len = strlen(colon + 1);
		if (!((len == 1) || (len == 2 && colon[2] == '?')) || !colon[1] ||
		    !strchr("sinbhoa", colon[1]))
			return lama_error(LAMA_EINVAL, "schema member \"%s\": bad type", p);
		mb->key = p;
		mb->type = colon[1];
		mb->optional = len == 2;
		for (size_t k = 0; k < m; k++)
			if (!strcmp(e->members[k].key, p))
				return lama_error(LAMA_EINVAL, "schema names \"%s\" twice", p);
		p = end ? end + 1 : p + strlen(p);
	}
	e->nmembers = count;
	return 0;
}

int lama_ipc_register(lama_ipc *d, const char *channel, const char *schema,
		      lama_ipc_handler fn, void *ctx)
{
	struct entry e = { channel, fn, ctx, schema == NULL, NULL, NULL, 0 };
	int kind, rc;

	if (!channel || !fn)
		return lama_error(LAMA_EINVAL, "no channel or handler");
	kind = channel_kind(channel, strlen(channel));
	if (kind != CH_ACTION && kind != CH_QUERY)
		return lama_error(LAMA_EINVAL, "\"%.*s\" is not an action: or query: channel",
				  LAMA_IPC_CHANNEL_MAX, channel);
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->entries[i].channel, channel))
			return lama_error(LAMA_EEXIST, "%s already has a handler", channel);
	if (schema && (rc = parse_schema(schema, &e)))
		goto fail;
	if (lama_grow(&d->entries, &d->cap, d->n, sizeof(*d->entries), 16)) {
		rc = LAMA_ENOMEM;
		goto fail;
	}
	d->entries[d->n++] = e;
	return 0;
fail:
	lama_free(e.names);
	lama_free(e.members);
	return rc;
}

static const char *type_name(char t)
{
	switch (t) {
	case 's': return "a string";
	case 'i': return "an integer";
	case 'n': return "a number";
	case 'b': return "a boolean";
	case 'h': return "a hash (64 lower-case hex digits)";
	case 'o': return "an object";
	default: return "an array";
	}
}

static int is_hash(const json_t *v)
{
	const char *s;

	if (!json_is_string(v) || json_string_length(v) != 64)
		return 0;
	s = json_string_value(v);
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int type_ok(char t, const json_t *v)
{
	switch (t) {
	case 's': return json_is_string(v);
	case 'i': return json_is_integer(v);
	case 'n': return json_is_number(v);
	case 'b': return json_is_boolean(v);
	case 'h': return is_hash(v);
	case 'o': return json_is_object(v);
	default: return json_is_array(v);
	}
}

/* Names in messages are cut: a payload key may be long. */
#define KEYFMT "\"%.64s\"%s"
#define KEYARG(k) (k), strlen(k) > 64 ? "..." : ""

static int check_payload(const struct entry *e, const json_t *payload)
{
	const char *key;
	json_t *v;

	if (e->any)
		return 0;
	for (size_t i = 0; i < e->nmembers; i++) {
		const struct member *m = &e->members[i];

		v = json_object_get(payload, m->key);
		if (!v) {
			if (m->optional)
				continue;
			return lama_error(LAMA_EINVAL, "payload member \"%s\" is missing", m->key);
		}
		if (!type_ok(m->type, v))
			return lama_error(LAMA_EINVAL, "payload member \"%s\" must be %s", m->key,
					  type_name(m->type));
	}
	json_object_foreach((json_t *)payload, key, v) {
		size_t i;

		for (i = 0; i < e->nmembers && strcmp(e->members[i].key, key); i++)
			;
		if (i == e->nmembers)
			return lama_error(LAMA_EINVAL, "payload member " KEYFMT " is not expected",
					  KEYARG(key));
	}
	return 0;
}

/* --- encoding ------------------------------------------------------------ */

/* Appends s (n bytes of valid UTF-8) as a JSON string: quotes, backslashes
 * and control characters escaped, everything else as it is. */
static int add_string(struct lama_buf *b, const char *s, size_t n)
{
	int rc = lama_buf_addch(b, '"');

	for (size_t i = 0; !rc && i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };

			rc = lama_buf_add(b, esc, 2);
		} else if (c < 0x20) {
			rc = lama_buf_addf(b, "\\u%04x", c);
		} else {
			rc = lama_buf_addch(b, (char)c);
		}
	}
	return rc ? rc : lama_buf_addch(b, '"');
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Copies msg into out (IPC_ERRMSG_MAX + 4 bytes): valid UTF-8 (a bad byte
 * becomes '?'), cut with "..." when too long. Messages may quote input. */
static void clean_message(const char *msg, char *out)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t n = strlen(msg), o = 0;

	for (size_t i = 0; i < n;) {
		size_t l = utf8_len(s + i, n - i);

		if (o + (l ? l : 1) > IPC_ERRMSG_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (l) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		} else {
			out[o++] = '?';
			i++;
		}
	}
	out[o] = '\0';
}

/* The id as it goes into a reply; NULL for null. */
static int add_id(struct lama_buf *b, const json_t *id)
{
	if (json_is_string(id))
		return add_string(b, json_string_value(id), json_string_length(id));
	if (json_is_integer(id))
		return lama_buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
	return lama_buf_addstr(b, "null");
}

/* Builds {"id":ID,"error":{"code":CODE,"message":MSG}} into *reply. */
static int error_reply(const json_t *id, const char *code, const char *msg, char **reply,
		       size_t *reply_len)
{
	char clean[IPC_ERRMSG_MAX + 4];
	struct lama_buf b = LAMA_BUF_INIT(LAMA_IPC_MESSAGE_MAX);
	int rc;

	clean_message(msg, clean);
	if ((rc = lama_buf_addstr(&b, "{\"id\":")) || (rc = add_id(&b, id)) ||
	    (rc = lama_buf_addstr(&b, ",\"error\":{\"code\":")) ||
	    (rc = add_string(&b, code, strlen(code))) ||
	    (rc = lama_buf_addstr(&b, ",\"message\":")) ||
	    (rc = add_string(&b, clean, strlen(clean))) || (rc = lama_buf_addstr(&b, "}}"))) {
		lama_buf_release(&b);
		return rc;
	}
	*reply = lama_buf_detach(&b, reply_len);
	return *reply ? 0 : LAMA_ENOMEM;
}

/* json_dump_callback's sink: a capped lama_buf that remembers why it
 * stopped. */
struct sink {
	struct lama_buf *b;
	int rc;
};

static int sink_add(const char *p, size_t n, void *data)
{
	struct sink *s = data;

	if (!s->rc)
		s->rc = lama_buf_add(s->b, p, n);
	return s->rc ? -1 : 0;
}

/* Appends v compactly (JSON_COMPACT: no whitespace, so no newline; jansson
 * escapes control characters in strings). A failure inside jansson that the
 * sink did not see is its own allocation failing. */
static int add_json(struct lama_buf *b, const json_t *v)
{
	struct sink s = { b, 0 };

	if (json_dump_callback(v, sink_add, &s, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
		return 0;
	return s.rc ? s.rc : lama_error(LAMA_ENOMEM, "out of memory");
}

static const char *code_of(int rc)
{
	switch (rc) {
	case LAMA_ENOTFOUND: return LAMA_IPC_NOT_FOUND;
	case LAMA_EEXIST:
	case LAMA_EBUSY: return LAMA_IPC_CONFLICT;
	case LAMA_EAUTH: return LAMA_IPC_UNAUTHORIZED;
	case LAMA_ELIMIT: return LAMA_IPC_LIMIT;
	case LAMA_EINVAL:
	case LAMA_EFORMAT: return LAMA_IPC_INVALID_PAYLOAD;
	default: return LAMA_IPC_INTERNAL;
	}
}

/* Builds {"id":ID,"result":RESULT}; an error reply when it would be too
 * large or memory runs out. */
static int result_reply(const json_t *id, const json_t *result, char **reply,
			size_t *reply_len)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_IPC_MESSAGE_MAX);
	int rc;

	if ((rc = lama_buf_addstr(&b, "{\"id\":")) || (rc = add_id(&b, id)) ||
	    (rc = lama_buf_addstr(&b, ",\"result\":")) ||
	    (rc = result ? add_json(&b, result) : lama_buf_addstr(&b, "null")) ||
	    (rc = lama_buf_addch(&b, '}'))) {
		lama_buf_release(&b);
		if (rc == LAMA_ELIMIT)
			return error_reply(id, LAMA_IPC_TOO_LARGE,
					   "the reply would be over the message limit", reply,
					   reply_len);
		return error_reply(id, LAMA_IPC_INTERNAL, "out of memory", reply, reply_len);
	}
	*reply = lama_buf_detach(&b, reply_len);
	return *reply ? 0 : error_reply(id, LAMA_IPC_INTERNAL, "out of memory", reply, reply_len);
}

/* --- requests ------------------------------------------------------------ */

static const struct entry *lookup(const lama_ipc *d, const char *channel)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->entries[i].channel, channel))
			return &d->entries[i];
	return NULL;
}

static int valid_id(const json_t *id)
{
	if (json_is_string(id))
		return json_string_length(id) >= 1 && json_string_length(id) <= LAMA_IPC_ID_MAX;
	if (json_is_integer(id))
		return json_integer_value(id) >= -IPC_ID_INT_MAX &&
		       json_integer_value(id) <= IPC_ID_INT_MAX;
	return 0;
}

/* Checks the envelope of a parsed request. On failure *msg holds the
 * bad_request message (in buf) and *id the id, if it could be read. */
static int check_envelope(const json_t *req, const json_t **id, const char **channel,
			  char *buf, size_t size)
{
	const json_t *ch;
	const char *key;
	json_t *v;

	if (!json_is_object(req)) {
		snprintf(buf, size, "a request must be a JSON object");
		return -1;
	}
	v = json_object_get(req, "id");
	if (!v) {
		snprintf(buf, size, "the request has no \"id\"");
		return -1;
	}
	if (!valid_id(v)) {
		snprintf(buf, size,
			 "\"id\" must be a string of 1 to %d bytes or an integer of at most "
			 "2^53-1 in magnitude",
			 LAMA_IPC_ID_MAX);
		return -1;
	}
	*id = v;
	json_object_foreach((json_t *)req, key, v) {
		if (strcmp(key, "id") && strcmp(key, "channel") && strcmp(key, "payload")) {
			snprintf(buf, size, "unexpected member " KEYFMT " (only id, channel, payload)",
				 KEYARG(key));
			return -1;
		}
	}
	ch = json_object_get(req, "channel");
	if (!ch) {
		snprintf(buf, size, "the request has no \"channel\"");
		return -1;
	}
	if (!json_is_string(ch)) {
		snprintf(buf, size, "\"channel\" must be a string");
		return -1;
	}
	switch (channel_kind(json_string_value(ch), json_string_length(ch))) {
	case CH_ACTION:
	case CH_QUERY:
		break;
	case CH_UPDATE:
		snprintf(buf, size, "update: channels are pushed by the server, not requested");
		return -1;
	default:
		snprintf(buf, size,
			 "\"channel\" must be action:NAME or query:NAME (NAME a letter, then "
			 "letters, digits, '_'; at most %d bytes in all)",
			 LAMA_IPC_CHANNEL_MAX);
		return -1;
	}
	*channel = json_string_value(ch);
	v = json_object_get(req, "payload");
	if (v && !json_is_object(v)) {
		snprintf(buf, size, "\"payload\" must be an object");
		return -1;
	}
	return 0;
}

int lama_ipc_handle(lama_ipc *d, const char *text, size_t n, void *client, char **reply,
		    size_t *reply_len)
{
	char msg[IPC_ERRMSG_MAX + 4];
	const json_t *id = NULL;
	const char *channel = NULL;
	const struct entry *e;
	json_t *req = NULL, *payload, *empty = NULL, *result = NULL;
	json_error_t jerr;
	size_t dummy;
	int rc;

	*reply = NULL;
	if (!reply_len)
		reply_len = &dummy;
	if (n > LAMA_IPC_MESSAGE_MAX) {
		snprintf(msg, sizeof(msg), "the message has %zu bytes, more than %zu", n,
			 (size_t)LAMA_IPC_MESSAGE_MAX);
		return error_reply(NULL, LAMA_IPC_TOO_LARGE, msg, reply, reply_len);
	}
	/* JSON_DECODE_ANY: a scalar parses, so it gets the clearer message
	 * below. NUL in strings and trailing bytes are jansson's defaults. */
	req = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req) {
		/* jansson leaves the text empty when its own set-up fails */
		if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])
			return error_reply(NULL, LAMA_IPC_INTERNAL, "out of memory", reply,
					   reply_len);
		/* jansson quotes the request "near '...'": that text may be a
		 * password, and an error message must never carry one */
		{
			char *near = strstr(jerr.text, " near ");

			if (near)
				*near = '\0';
		}
		if (n == 0 || json_error_code(&jerr) == json_error_premature_end_of_input)
			snprintf(msg, sizeof(msg), "not JSON: %s", n ? jerr.text : "empty message");
		else
			snprintf(msg, sizeof(msg), "not JSON: %s (at byte %d)", jerr.text,
				 jerr.position);
		return error_reply(NULL, LAMA_IPC_BAD_REQUEST, msg, reply, reply_len);
	}
	if (check_envelope(req, &id, &channel, msg, sizeof(msg))) {
		rc = error_reply(id, LAMA_IPC_BAD_REQUEST, msg, reply, reply_len);
		goto out;
	}
	e = lookup(d, channel);
	if (!e) {
		snprintf(msg, sizeof(msg), "no handler for channel \"%s\"", channel);
		rc = error_reply(id, LAMA_IPC_UNKNOWN_CHANNEL, msg, reply, reply_len);
		goto out;
	}
	payload = json_object_get(req, "payload");
	if (!payload) {
		payload = empty = json_object();
		if (!payload) {
			rc = error_reply(id, LAMA_IPC_INTERNAL, "out of memory", reply, reply_len);
			goto out;
		}
	}
	if (check_payload(e, payload)) {
		rc = error_reply(id, LAMA_IPC_INVALID_PAYLOAD, lama_errmsg(), reply, reply_len);
		goto out;
	}
	{
		struct lama_ipc_call call = { channel, payload, id, client };

		lama_error_clear();
		rc = e->fn(e->ctx, &call, &result);
	}
	if (rc == LAMA_IPC_LATER) {
		/* the handler answers later, with lama_ipc_reply */
		json_decref(result);
		result = NULL;
		*reply = NULL;
		if (reply_len)
			*reply_len = 0;
		rc = 0;
		goto out;
	}
	rc = lama_ipc_reply(id, rc, result, reply, reply_len);
out:
	json_decref(result);
	json_decref(empty);
	json_decref(req);
	return rc;
}

int lama_ipc_reply(const json_t *id, int rc, const json_t *result, char **reply, size_t *reply_len)
{
	if (rc) {
		/* a handler that only passes a code up leaves no message */
		const char *m = lama_errmsg();

		if (!strcmp(m, "no error recorded"))
			m = lama_strerror(rc);
		return error_reply(id, code_of(rc), m, reply, reply_len);
	}
	return result_reply(id, result, reply, reply_len);
}

char *lama_ipc_push(const char *channel, uint64_t seq, const json_t *payload, size_t *len)
{
	char num[32];

	struct lama_buf b = LAMA_BUF_INIT(LAMA_IPC_MESSAGE_MAX);
	size_t dummy;
	char *out;

	if (!len)
		len = &dummy;
	if (!channel || channel_kind(channel, strlen(channel)) != CH_UPDATE ||
	    (payload && !json_is_object(payload)))
		return NULL;
	snprintf(num, sizeof(num), ",\"seq\":%llu", (unsigned long long)seq);
	if (lama_buf_addstr(&b, "{\"channel\":") || add_string(&b, channel, strlen(channel)) ||
	    (seq && lama_buf_addstr(&b, num)) || lama_buf_addstr(&b, ",\"payload\":") ||
	    (payload ? add_json(&b, payload) : lama_buf_addstr(&b, "{}")) ||
	    lama_buf_addch(&b, '}')) {
		lama_buf_release(&b);
		return NULL;
	}
	out = lama_buf_detach(&b, len);
	return out;
}
