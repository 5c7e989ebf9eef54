/* controller.c: one handler per channel. Each checks what the schema
 * cannot (ranges, hashes that must exist), calls the models and shapes
 * the answer with their JSON views. */
#include "controller/controller.h"

#include <string.h>

#include "chat/chat.h"
#include "leute/leute.h"
#include "util/err.h"
#include "util/mem.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 1000
#define WITH_MAX 255 /* participants named in createConversation */

struct lama_controller {
	lama_session *s;
	struct lama_controller_push push;
};

static int oom(void)
{
	return lama_error(LAMA_ENOMEM, "out of memory");
}

/* Sends an update, if anyone listens; takes payload. */
static void push(lama_controller *c, const char *channel, json_t *payload)
{
	if (payload && c->push.fn)
		c->push.fn(c->push.ctx, channel, payload);
	json_decref(payload);
}

static const char *str(const json_t *payload, const char *key)
{
	return json_string_value(json_object_get(payload, key));
}

/* ---- queries ---- */

/* A health check (and the cheapest round trip, for the benchmark). */
static int ping(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	(void)ctx;
	(void)call;
	*result = json_pack("{s:b}", "pong", 1);
	return *result ? 0 : oom();
}

struct counts {
	size_t n;
	uint64_t unread;
	json_t *arr; /* NULL: count only */
};

static int count_topic(void *ctx, const struct lama_topic *t)
{
	struct counts *k = ctx;

	k->n++;
	k->unread += t->unread;
	if (k->arr) {
		json_t *o = lama_topic_json(t);

		if (!o || json_array_append_new(k->arr, o))
			return oom();
	}
	return 0;
}

static int count_contact(void *ctx, const struct lama_person *p)
{
	struct counts *k = ctx;

	k->n++;
	if (k->arr) {
		json_t *o = lama_person_json(p);

		if (!o || json_array_append_new(k->arr, o))
			return oom();
	}
	return 0;
}

static int fill_contacts(lama_session *s, struct counts *k)
{
	return lama_leute_contacts(s, count_contact, k);
}

static int fill_topics(lama_session *s, struct counts *k)
{
	return lama_chat_topics(s, count_topic, k);
}

static int get_state(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	struct counts topics = { 0 }, contacts = { 0 };
	struct lama_person me;
	json_t *user;
	int rc;

	(void)call;
	if ((rc = lama_leute_me(c->s, &me)) || (rc = fill_topics(c->s, &topics)) ||
	    (rc = fill_contacts(c->s, &contacts)))
		return rc;
	user = lama_person_json(&me);
	*result = user ? json_pack("{s:o, s:I, s:I, s:I}", "user", user, "conversations",
				   (json_int_t)topics.n, "contacts", (json_int_t)contacts.n, "unread",
				   (json_int_t)topics.unread)
		       : NULL;
	return *result ? 0 : oom();
}

/* {key: [...]} of everything fill lists. */
static int listing(lama_controller *c, const char *key,
		   int (*fill)(lama_session *s, struct counts *k), json_t **result)
{
	struct counts k = { .arr = json_array() };
	int rc;

	if (!k.arr)
		return oom();
	if ((rc = fill(c->s, &k))) {
		json_decref(k.arr);
		return rc;
	}
	*result = json_pack("{s:o}", key, k.arr);
	return *result ? 0 : oom();
}

static int get_contacts(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	(void)call;
	return listing(ctx, "contacts", fill_contacts, result);
}

static int get_conversations(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	(void)call;
	return listing(ctx, "conversations", fill_topics, result);
}

static int get_conversation(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	struct lama_topic t;
	int rc;

	if ((rc = lama_chat_find(c->s, str(call->payload, "topic"), &t)))
		return rc;
	*result = lama_topic_json(&t);
	lama_topic_release(&t);
	return *result ? 0 : oom();
}

struct page {
	lama_controller *c;
	json_t *msgs;  /* newest first */
	json_t *names; /* sender hex -> name, looked up once per request */
};

static int add_message(void *ctx, const struct lama_message *m)
{
	struct page *p = ctx;
	char hex[LAMA_HASH_HEX + 1];
	const char *name;
	json_t *o;

	lama_hash_hex(&m->sender, hex);
	if (!p->names && !(p->names = json_object()))
		return oom();
	name = json_string_value(json_object_get(p->names, hex));
	if (!name) {
		struct lama_person who;

		if (lama_leute_get(p->c->s, &m->sender, &who) != 0) {
			lama_error_clear();
			who.name[0] = '\0';
		}
		if (json_object_set_new(p->names, hex, json_string(who.name)))
			return oom();
		name = json_string_value(json_object_get(p->names, hex));
	}
	o = lama_message_json(m, name);
	if (!o || json_array_append_new(p->msgs, o))
		return oom();
	return 0;
}

static int get_messages(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const json_t *lim = json_object_get(call->payload, "limit");
	const char *before = str(call->payload, "before");
	struct page p = { .c = c, .msgs = json_array() };
	json_int_t limit = lim ? json_integer_value(lim) : PAGE_DEFAULT;
	struct lama_topic t;
	lama_hash bid;
	json_t *chrono = NULL;
	int rc, more = 0;

	if (!p.msgs)
		return oom();
	if (limit < 1 || limit > PAGE_MAX) {
		json_decref(p.msgs);
		return lama_error(LAMA_EINVAL, "limit must be 1 to %d", PAGE_MAX);
	}
	if ((rc = lama_chat_find(c->s, str(call->payload, "topic"), &t))) {
		json_decref(p.msgs);
		return rc;
	}
	if (before && (rc = lama_chat_find_message(c->s, &t, before, 0, &bid)))
		goto out;
	rc = lama_chat_messages(c->s, &t, before ? &bid : NULL, (size_t)limit, add_message, &p, &more);
	if (rc)
		goto out;
	/* oldest first, as a conversation is shown; `before` pages back */
	chrono = json_array();
	for (size_t i = json_array_size(p.msgs); chrono && i-- > 0;)
		if (json_array_append(chrono, json_array_get(p.msgs, i)))
			break;
	if (!chrono || json_array_size(chrono) != json_array_size(p.msgs)) {
		json_decref(chrono);
		rc = oom();
		goto out;
	}
	*result = json_pack("{s:s, s:o, s:b, s:O}", "topic", t.id, "messages", chrono, "more", more,
			    "before", more && json_array_size(p.msgs)
					      ? json_object_get(json_array_get(p.msgs, json_array_size(p.msgs) - 1), "id")
					      : json_null());
	if (!*result)
		rc = oom();
out:
	json_decref(p.msgs);
	json_decref(p.names);
	lama_topic_release(&t);
	return rc;
}

/* ---- actions ---- */

static int send_message(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *reply = str(call->payload, "reply_to");
	struct lama_outgoing m = { .text = str(call->payload, "text") };
	struct lama_topic t;
	lama_hash id, rid;
	int rc;

	if ((rc = lama_chat_find(c->s, str(call->payload, "topic"), &t)))
		return rc;
	if (reply && (rc = lama_chat_find_message(c->s, &t, reply, 0, &rid)))
		goto out;
	m.reply_to = reply ? &rid : NULL;
	if ((rc = lama_chat_send(c->s, &t, &m, 1, &id)))
		goto out;
	/* durable now: answer, and tell every client */
	{
		struct page p = { .c = c, .msgs = json_array() };
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&id, hex);
		*result = json_pack("{s:s}", "id", hex);
		if (!*result || !p.msgs) {
			json_decref(p.msgs);
			rc = oom();
			goto out;
		}
		/* the message as readers see it: the newest of the topic */
		if (lama_chat_messages(c->s, &t, NULL, 1, add_message, &p, NULL) == 0 &&
		    json_array_size(p.msgs) == 1)
			push(c, "update:messageReceived",
			     json_pack("{s:s, s:O}", "topic", t.id, "message", json_array_get(p.msgs, 0)));
		json_decref(p.msgs);
		json_decref(p.names);
	}
out:
	lama_topic_release(&t);
	return rc;
}

static int create_conversation(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const json_t *with = json_object_get(call->payload, "with"), *w;
	struct lama_topic t = { 0 };
	lama_hash *people;
	size_t i, n = json_array_size(with);
	int rc = 0, is_new = 0;

	if (n == 0 || n > WITH_MAX)
		return lama_error(LAMA_EINVAL, "with names 1 to %d people", WITH_MAX);
	people = lama_calloc(n, sizeof(lama_hash));
	if (!people)
		return oom();
	json_array_foreach(with, i, w) {
		struct lama_person p;

		if (!json_is_string(w)) {
			rc = lama_error(LAMA_EINVAL, "with lists people by name, email or id");
			break;
		}
		if ((rc = lama_leute_find(c->s, json_string_value(w), &p)))
			break;
		people[i] = p.person;
	}
	if (!rc)
		rc = lama_chat_create(c->s, str(call->payload, "title"), people, n, &t, &is_new);
	lama_free(people);
	if (rc)
		return rc;
	*result = lama_topic_json(&t);
	if (*result && json_object_set_new(*result, "new", json_boolean(is_new))) {
		json_decref(*result);
		*result = NULL;
	}
	if (*result && is_new)
		push(c, "update:stateChanged", json_pack("{s:s, s:s}", "what", "conversations", "id", t.id));
	lama_topic_release(&t);
	return *result ? 0 : oom();
}

static int add_contact(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	struct lama_person p;
	int rc;

	rc = lama_leute_add_contact(c->s, str(call->payload, "name"), str(call->payload, "email"),
				    json_is_true(json_object_get(call->payload, "ai")),
				    str(call->payload, "model"), &p);
	if (rc)
		return rc;
	*result = lama_person_json(&p);
	if (!*result)
		return oom();
	push(c, "update:stateChanged", json_pack("{s:s, s:O}", "what", "contacts", "person",
						 json_object_get(*result, "person")));
	return 0;
}

/* ---- the table ---- */

static const struct channel {
	const char *name, *schema;
	lama_ipc_handler fn;
} channels[] = {
	{ "query:ping", "", ping },
	{ "query:getState", "", get_state },
	{ "query:getContacts", "", get_contacts },
	{ "query:getConversations", "", get_conversations },
	{ "query:getConversation", "topic:s", get_conversation },
	{ "query:getMessages", "topic:s,limit:i?,before:h?", get_messages },
	{ "action:sendMessage", "topic:s,text:s,reply_to:h?", send_message },
	{ "action:createConversation", "with:a,title:s?", create_conversation },
	{ "action:addContact", "name:s,email:s?,ai:b?,model:s?", add_contact },
};

int lama_controller_new(lama_controller **out, lama_ipc *d, lama_session *s,
			const struct lama_controller_push *pushes)
{
	lama_controller *c = lama_calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return oom();
	c->s = s;
	if (pushes)
		c->push = *pushes;
	for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++)
		if ((rc = lama_ipc_register(d, channels[i].name, channels[i].schema, channels[i].fn, c))) {
			lama_free(c);
			return rc;
		}
	*out = c;
	return 0;
}

void lama_controller_free(lama_controller *c)
{
	lama_free(c);
}
