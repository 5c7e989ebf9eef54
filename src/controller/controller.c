/* controller.c: one handler per channel. Each checks what the schema
 * cannot (ranges, hashes that must exist), calls the models and shapes
 * the answer with their JSON views. */
#include "controller/controller.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "backup/backup.h"
#include "chat/chat.h"
#include "leute/leute.h"
#include "models/models.h"
#include "search/search.h"
#include "search/task.h"
#include "worker/worker.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 1000
#define WITH_MAX 255 /* participants named in createConversation */
#define SCAN_MAX 10000 /* newest messages searched for an id prefix */

struct lama_controller;

/* One registered channel: the dispatcher calls guard with its slot. */
struct slot {
	struct lama_controller *c;
	const struct channel *ch;
};

struct lama_controller {
	lama_session *s; /* NULL: locked */
	char home[LAMA_PATH_MAX];
	char user[LAMA_NAME_MAX + 1]; /* the session's user name, "" when unnamed (the only one) */
	struct lama_kdf_params kdf;
	lama_state *st;
	struct slot *slots;
	struct uv_loop_s *loop;
	int (*send)(void *client, const char *text, size_t n);
	struct job *job; /* the backup or restore running off the loop, or NULL */
	int stopping;    /* lama_controller_stop: no new job */
	lama_search *search; /* the session's index, opened at the first search */
	int search_stale;    /* a change it missed: sync before the next query */
	lama_workers *workers; /* borrowed; NULL: none */
	/* the index in the index worker, when there is an index pool */
	int ix_pool;             /* the manager has one */
	int ix;                  /* this session's index is there (keys below) */
	int ix_stale;            /* a change it missed: sync again */
	int ix_stuck;            /* the last sync skipped a topic it could not
				  * read: no new one until something changes */
	uint64_t ix_changes;     /* changes handed to the index so far */
	int64_t ix_seen;         /* the archive's data version when the last
				  * sync started (lama_store_data_version) */
	int ix_seen_ok;
	char ix_path[LAMA_PATH_MAX];
	uint8_t *ix_keys;        /* secure memory: token and seal keys */
	struct ixtask *ix_tasks; /* pending, canceled when the session ends */
	struct ixbuild *ix_build; /* the sync running, or NULL */
	struct pending_login *login; /* a login waiting for its key, or NULL */
	int freeing;                 /* lama_controller_free: no new task */
};

static int oom(void)
{
	return lama_error(LAMA_ENOMEM, "out of memory");
}

/* Publishes an update (the change is durable); takes payload. An update
 * that cannot be made is lost to live clients only: the state is in the
 * archive, and a client that resubscribes is told to reset. */
static void push(lama_controller *c, const char *channel, json_t *payload)
{
	if (!payload)
		lama_state_lost(c->st); /* clients see the seq jump */
	else if (lama_state_publish(c->st, channel, payload) != 0)
		lama_error_clear();
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

/* ---- settings: a sealed record in the user's archive ---- */

#define SETTINGS_RECORD "settings"

/* Every setting: its name, its type, what it may be, its default. */
static const struct setting {
	const char *name;
	json_type type;
	const char *const *values; /* strings: the allowed ones */
	json_int_t min, max;       /* integers */
	const char *dflt;          /* JSON text */
} settings[] = {
	{ "theme", JSON_STRING, (const char *const[]){ "system", "light", "dark", NULL }, 0, 0, "\"system\"" },
	{ "notifications", JSON_TRUE, NULL, 0, 0, "true" },
	{ "sendOnEnter", JSON_TRUE, NULL, 0, 0, "true" },
	{ "pageSize", JSON_INTEGER, NULL, 10, 1000, "50" },
	{ "workers", JSON_INTEGER, NULL, 0, 64, "0" }, /* worker pool size, 0: one per core */
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (!strcmp(settings[i].name, name))
			return &settings[i];
	return NULL;
}

static int setting_check(const struct setting *k, const json_t *v)
{
	if (k->type == JSON_TRUE) {
		if (!json_is_boolean(v))
			return lama_error(LAMA_EINVAL, "setting %s must be true or false", k->name);
	} else if (k->type == JSON_INTEGER) {
		if (!json_is_integer(v) || json_integer_value(v) < k->min ||
		    json_integer_value(v) > k->max)
			return lama_error(LAMA_EINVAL, "setting %s must be an integer from %lld to %lld",
					  k->name, (long long)k->min, (long long)k->max);
	} else {
		const char *x = json_string_value(v);
		size_t i = 0;

		for (; x && k->values[i]; i++)
			if (!strcmp(x, k->values[i]))
				break;
		if (!x || !k->values[i])
			return lama_error(LAMA_EINVAL, "setting %s has no such value", k->name);
	}
	return 0;
}

/* The user's settings, defaults filled in. What the record holds is
 * checked like a request: a bad or unknown value falls back to the
 * default, so an old or damaged record never breaks getState. */
static int settings_load(lama_controller *c, json_t **out)
{
	struct lama_buf b = LAMA_BUF_INIT(64 << 10);
	json_t *saved = NULL, *o = json_object();
	int rc = 0;

	*out = NULL;
	if (!o)
		return oom();
	rc = lama_store_kv_get(lama_session_store(c->s), SETTINGS_RECORD, &b);
	if (rc == 0)
		saved = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
	else if (rc == LAMA_ENOTFOUND)
		lama_error_clear(), rc = 0;
	lama_buf_release(&b);
	for (size_t i = 0; !rc && i < NSETTINGS; i++) {
		json_t *v = json_object_get(saved, settings[i].name);

		if (!v || setting_check(&settings[i], v) != 0) {
			lama_error_clear();
			v = json_loads(settings[i].dflt, JSON_DECODE_ANY, NULL);
		} else {
			json_incref(v);
		}
		if (!v || json_object_set_new(o, settings[i].name, v))
			rc = oom();
	}
	json_decref(saved);
	if (rc)
		json_decref(o);
	else
		*out = o;
	return rc;
}

/* ---- queries ---- */

static int get_state(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	struct counts topics = { 0 }, contacts = { 0 };
	struct lama_person me;
	json_t *user, *set;
	size_t users = 0;
	int rc;

	(void)call;
	if (!c->s) {
		if ((rc = lama_account_count(c->home, &users)))
			return rc;
		*result = json_pack("{s:b, s:I, s:s, s:I}", "locked", 1, "users", (json_int_t)users,
				    "epoch", lama_state_epoch(c->st), "seq",
				    (json_int_t)lama_state_seq(c->st));
		return *result ? 0 : oom();
	}
	if ((rc = lama_leute_me(c->s, &me)) || (rc = fill_topics(c->s, &topics)) ||
	    (rc = fill_contacts(c->s, &contacts)) || (rc = settings_load(c, &set)))
		return rc;
	user = lama_person_json(&me);
	*result = user ? json_pack("{s:b, s:o, s:I, s:I, s:I, s:o, s:s, s:I}", "locked", 0, "user",
				   user, "conversations", (json_int_t)topics.n, "contacts",
				   (json_int_t)contacts.n, "unread", (json_int_t)topics.unread,
				   "settings", set, "epoch", lama_state_epoch(c->st), "seq",
				   (json_int_t)lama_state_seq(c->st))
		       : NULL;
	if (!user)
		json_decref(set);
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
	if (before && (rc = lama_chat_find_message(c->s, &t, before, SCAN_MAX, &bid)))
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

static void ix_message(lama_controller *c, const char *topic, const json_t *view);
static void ix_remove(lama_controller *c, const lama_hash *id);
static void ix_start(lama_controller *c);

/* Message id as readers see it now (its newest version), or NULL when it
 * is not among the topic's newest messages: a message just sent or edited
 * is the newest, or close to it, unless a peer's clock runs ahead. */
static json_t *message_view(lama_controller *c, const struct lama_topic *t, const lama_hash *id)
{
	static const size_t windows[] = { 1, 50 };
	char hex[LAMA_HASH_HEX + 1];
	json_t *found = NULL;

	lama_hash_hex(id, hex);
	for (size_t w = 0; !found && w < sizeof(windows) / sizeof(windows[0]); w++) {
		struct page p = { .c = c, .msgs = json_array() };
		const json_t *m;
		size_t i;

		if (p.msgs && lama_chat_messages(c->s, t, NULL, windows[w], add_message, &p, NULL) == 0)
			json_array_foreach(p.msgs, i, m)
				if (!found && !strcmp(json_string_value(json_object_get(m, "id")), hex))
					found = json_incref((json_t *)m);
		lama_error_clear();
		json_decref(p.msgs);
		json_decref(p.names);
	}
	return found;
}

/* The update for a message sent or changed: the message, or only its id.
 * `index`: hand it to the index too (not for a deletion, which left the
 * index already by id). */
static json_t *message_update(lama_controller *c, const struct lama_topic *t, const lama_hash *id,
			      int index)
{
	json_t *view = message_view(c, t, id);
	char hex[LAMA_HASH_HEX + 1];

	/* the index is a cache: what it misses (a failure, a message too old
	 * to show here) is mended by a sync before the next query */
	if (index && c->ix)
		ix_message(c, t->id, view);
	else if (index && c->search && (!view || lama_search_add_message(c->search, t->id, view) != 0)) {
		lama_error_clear();
		c->search_stale = 1;
	}
	if (view)
		return json_pack("{s:s, s:o}", "topic", t->id, "message", view);
	lama_hash_hex(id, hex);
	return json_pack("{s:s, s:s}", "topic", t->id, "id", hex);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

/* Attachments sent inline: {name, type?, data (base64)} each, decoded and
 * stored as BLOBs. Bounded so a request stays under the message size. */
#define INLINE_MAX ((size_t)512 << 10) /* decoded bytes of all of them */

static int store_inline(lama_controller *c, const json_t *list, struct lama_attachment *att,
			size_t *n)
{
	const json_t *a;
	size_t i, total = 0;
	uint8_t *buf = NULL;
	int rc = 0;

	*n = json_array_size(list);
	if (*n > LAMA_CHAT_ATTACH_MAX)
		return lama_error(LAMA_EINVAL, "at most %d attachments", LAMA_CHAT_ATTACH_MAX);
	if (*n && !(buf = lama_malloc(INLINE_MAX)))
		return oom();
	json_array_foreach(list, i, a) {
		const char *name = str(a, "name"), *type = str(a, "type"), *data = str(a, "data");
		const json_t *d = json_object_get(a, "data");
		lama_blob_writer *w;
		size_t len = 0;

		if (!json_is_object(a) || !name || !*name || !data ||
		    (json_object_get(a, "type") && !type) ||
		    json_object_size(a) != 2u + (json_object_get(a, "type") != NULL)) {
			rc = lama_error(LAMA_EINVAL, "an attachment is {name, type?, data}: data in base64");
			break;
		}
		if (sodium_base642bin(buf, INLINE_MAX - total, data, json_string_length(d), NULL, &len,
				      NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
			rc = json_string_length(d) / 4 * 3 > INLINE_MAX - total
				     ? lama_error(LAMA_ELIMIT, "inline attachments are at most %zu KiB in all",
						  INLINE_MAX >> 10)
				     : lama_error(LAMA_EINVAL, "attachment %s: data is not base64", name);
			break;
		}
		total += len;
		if ((rc = lama_blob_write_begin(lama_session_store(c->s), &w)))
			break;
		if ((rc = lama_blob_write(w, buf, len))) {
			lama_blob_write_abort(w);
			break;
		}
		if ((rc = lama_blob_write_end(w, &att[i].blob, NULL))) /* frees w */
			break;
		att[i].name = name;
		att[i].type = type ? type : "";
		att[i].size = len;
		att[i].mtime = now_ms();
	}
	lama_free(buf);
	return rc;
}

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
	if (reply && (rc = lama_chat_find_message(c->s, &t, reply, SCAN_MAX, &rid)))
		goto out;
	m.reply_to = reply ? &rid : NULL;
	{
		struct lama_attachment att[LAMA_CHAT_ATTACH_MAX];

		if ((rc = store_inline(c, json_object_get(call->payload, "attachments"), att, &m.nattach)))
			goto out;
		m.attach = att;
		if ((rc = lama_chat_send(c->s, &t, &m, 1, &id)))
			goto out;
	}
	/* durable now: answer, and tell every client */
	{
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&id, hex);
		if (!(*result = json_pack("{s:s}", "id", hex))) {
			rc = oom();
			goto out;
		}
		push(c, "update:messageReceived", message_update(c, &t, &id, 1));
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

static int change_message(void *ctx, const struct lama_ipc_call *call, json_t **result, int del)
{
	lama_controller *c = ctx;
	struct lama_topic t;
	lama_hash id;
	int rc;

	if ((rc = lama_chat_find(c->s, str(call->payload, "topic"), &t)))
		return rc;
	if ((rc = lama_chat_find_message(c->s, &t, str(call->payload, "message"), SCAN_MAX, &id)) ||
	    (rc = lama_chat_edit(c->s, &t, &id, del ? NULL : str(call->payload, "text"))))
		goto out;
	/* a deleted message leaves the index at once, however old it is */
	if (del && c->ix)
		ix_remove(c, &id);
	else if (del && c->search && lama_search_remove(c->search, &id) != 0) {
		lama_error_clear();
		c->search_stale = 1;
	}
	{
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&id, hex);
		*result = json_pack("{s:s}", "id", hex);
	}
	if (!*result) {
		rc = oom();
		goto out;
	}
	push(c, "update:messageChanged", message_update(c, &t, &id, !del));
out:
	lama_topic_release(&t);
	return rc;
}

static int edit_message(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	return change_message(ctx, call, result, 0);
}

static int delete_message(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	return change_message(ctx, call, result, 1);
}

static int mark_read(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *upto = str(call->payload, "message");
	struct lama_topic t;
	lama_hash id;
	int rc;

	if ((rc = lama_chat_find(c->s, str(call->payload, "topic"), &t)))
		return rc;
	if (upto && (rc = lama_chat_find_message(c->s, &t, upto, SCAN_MAX, &id)))
		goto out;
	if ((rc = lama_chat_mark_read(c->s, &t, upto ? &id : NULL)))
		goto out;
	lama_topic_release(&t);
	if ((rc = lama_chat_find(c->s, str(call->payload, "topic"), &t)))
		return rc;
	*result = json_pack("{s:s, s:I}", "topic", t.id, "unread", (json_int_t)t.unread);
	if (!*result)
		rc = oom();
	else
		push(c, "update:stateChanged", json_pack("{s:s, s:s, s:I}", "what", "read", "id", t.id,
							 "unread", (json_int_t)t.unread));
out:
	lama_topic_release(&t);
	return rc;
}

static int get_contact(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	struct lama_person p;
	int rc;

	if ((rc = lama_leute_find(c->s, str(call->payload, "query"), &p)))
		return rc;
	*result = lama_person_json(&p);
	return *result ? 0 : oom();
}

/* ---- workers ---- */

static int get_workers(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	json_t *list = c->workers ? lama_workers_status(c->workers) : json_array();

	(void)call;
	*result = list ? json_pack("{s:o}", "workers", list) : NULL;
	return *result ? 0 : oom();
}

/* The manager has a pool of this kind. */
static int has_pool(lama_workers *w, const char *kind)
{
	json_t *st = w ? lama_workers_status(w) : NULL;
	const json_t *o;
	size_t i;
	int found = 0;

	json_array_foreach(st, i, o)
		if (!strcmp(json_string_value(json_object_get(o, "kind")) ?: "", kind))
			found = 1;
	json_decref(st);
	return found;
}

static void ix_end(lama_controller *c, int close);
static void login_cancel(lama_controller *c);

void lama_controller_set_workers(lama_controller *c, struct lama_workers *w)
{
	if (!c)
		return;
	/* nothing of c may stay with a manager it no longer knows: its
	 * tasks are canceled while that manager is still c->workers */
	if (c->workers && c->workers != w) {
		login_cancel(c);
		ix_end(c, 0);
	}
	c->workers = w;
	c->ix_pool = has_pool(w, "index");
	/* started logged in: the index catches up in the background */
	if (c->s && c->ix_pool)
		ix_start(c);
}

long long lama_controller_setting(lama_controller *c, const char *name, long long dflt)
{
	json_t *set = NULL;
	long long v = dflt;

	if (c->s && settings_load(c, &set) == 0 && json_is_integer(json_object_get(set, name)))
		v = json_integer_value(json_object_get(set, name));
	lama_error_clear();
	json_decref(set);
	return v;
}

/* ---- search (src/search) ----
 *
 * With an index pool (lama serve), the session's index lives in the index
 * worker: every task carries the file's path and the keys, and a worker
 * replaced after a crash just opens the file again. The main process
 * feeds it: at login a sync in the background (the topics' summaries to
 * `plan`, then each stale topic's messages read here in batches of
 * IX_BATCH, one batch per `put_topic` task, one task in flight,
 * so the loop reads at most one batch per turn), live changes as `add`
 * tasks, queries as `query` tasks answered late. The pool has one worker:
 * SQLite has one writer anyway, and one worker runs the tasks in the
 * order they were submitted, so a query sees every change submitted
 * before it. Without an index pool (the controller alone, in unit tests)
 * the index is opened here and synced before the first query. */

#define SEARCH_DEFAULT 20
#define IX_PROGRESS_MS 250 /* at most four progress updates a second */
/* messages read per loop turn during a sync: reading them (decrypting,
 * merging the channels) is the loop's part, ~20 us each in a release
 * build, so a turn stays near 5 ms; the worker indexes them after */
#define IX_BATCH 200

static void reply_late(lama_controller *c, void **client, const json_t *id, int rc,
		       const json_t *result);

enum { IX_ADD, IX_QUERY, IX_PLAN, IX_PUT, IX_CLOSE };

/* A task given to the index worker, until its done callback. */
struct ixtask {
	struct ixtask *next;
	lama_controller *c;
	int kind;
	uint64_t id;     /* the manager's, for cancel */
	void *client;    /* a query's: whom to answer (NULL once gone) */
	json_t *rid;     /* the request's id */
	json_t *query;   /* the query as asked, for the answer */
	int partial;     /* the index was still being built */
};

/* The background sync: topics planned, then put batch by batch. */
struct ixbuild {
	struct lama_search_topic *t; /* the session's topics, newest first */
	size_t n;
	uint8_t *stale;
	size_t cur;                 /* t[cur] is being put (they go oldest first) */
	size_t last;                /* the newest stale topic: its last batch marks built */
	int in_topic;               /* topic and put hold t[cur] */
	struct lama_topic topic;
	struct lama_search_put put;
	struct lama_search_batch b;
	uint64_t done, total, shown_at;
	int work;                   /* something to index: progress is shown */
	int skipped;                /* a topic could not be read (left stale) */
	uint64_t changes;           /* c->ix_changes when it started */
};

static uint64_t mono_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void ix_progress(lama_controller *c, int last)
{
	struct ixbuild *x = c->ix_build;
	uint64_t now = mono_ms();

	/* nothing to index (all up to date): no updates at all */
	if (!x->work || (!last && now - x->shown_at < IX_PROGRESS_MS))
		return;
	x->shown_at = now;
	/* topics grown since the plan may put more than it counted */
	push(c, "update:progress", json_pack("{s:s, s:I, s:I}", "task", "index", "done",
					     (json_int_t)(last || x->done > x->total ? x->total : x->done),
					     "total",
					     (json_int_t)x->total));
}

static void ix_build_free(lama_controller *c)
{
	struct ixbuild *x = c->ix_build;

	if (!x)
		return;
	c->ix_build = NULL;
	lama_topic_release(&x->topic);
	lama_search_batch_release(&x->b);
	lama_free(x->t);
	lama_free(x->stale);
	lama_free(x);
}

static void ix_task_free(lama_controller *c, struct ixtask *t)
{
	for (struct ixtask **p = &c->ix_tasks; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	json_decref(t->rid);
	json_decref(t->query);
	lama_free(t);
}

static void ix_done(void *ctx, int rc, const char *msg, const void *out, size_t n);

/* Submits op with input b (wiped and released here: it holds the keys).
 * *task (may be NULL) is the task's record, owned by the list. */
static int ix_submit(lama_controller *c, int kind, const char *op, struct lama_buf *b,
		     struct ixtask **task)
{
	struct ixtask *t = NULL;
	int rc;

	if (task)
		*task = NULL;
	if (!c->workers || c->freeing) {
		lama_buf_release_wipe(b);
		return lama_error(LAMA_ECANCELED, "the workers are shutting down");
	}
	if (!(t = lama_calloc(1, sizeof(*t)))) {
		lama_buf_release_wipe(b);
		return oom();
	}
	t->c = c;
	t->kind = kind;
	/* every index op is idempotent: a batch put again gives the same rows */
	rc = lama_workers_submit(c->workers, "index", op, b->data ? b->data : "", b->len,
				 LAMA_TASK_IDEMPOTENT, 0, ix_done, t, &t->id);
	lama_buf_release_wipe(b);
	if (rc) {
		lama_free(t);
		return rc;
	}
	t->next = c->ix_tasks;
	c->ix_tasks = t;
	if (task)
		*task = t;
	return 0;
}

/* The sync is over (rc 0: the index is the archive's); what went wrong
 * marks it stale for the next query. */
static void ix_build_end(lama_controller *c, int rc)
{
	struct ixbuild *x = c->ix_build;
	int again;

	if (!rc)
		ix_progress(c, 1); /* whole: done = total */
	/* a topic it could not read stays stale, but reading it again at
	 * once would fail again: the next sync waits for a change */
	if (x && x->skipped) {
		c->ix_stale = 1;
		c->ix_stuck = x->changes == c->ix_changes;
	}
	ix_build_free(c);
	if (rc && rc != LAMA_ECANCELED)
		c->ix_stale = 1;
	lama_error_clear();
	/* a change missed while it ran: once more (a failure waits for a query) */
	again = !rc && c->ix_stale && !c->ix_stuck;
	if (again)
		ix_start(c);
}

/* Puts the next batch: the next of the current topic, or the first of
 * the next stale one; the sync ends after the last. */
static void ix_next_batch(lama_controller *c)
{
	struct ixbuild *x = c->ix_build;
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	int rc;

	for (;;) {
		while (!x->in_topic) {
			while (x->cur > 0 && !x->stale[x->cur - 1])
				x->cur--;
			if (x->cur == 0) {
				ix_build_end(c, 0);
				return;
			}
			x->cur--;
			lama_topic_release(&x->topic);
			memset(&x->topic, 0, sizeof(x->topic));
			if (lama_chat_find(c->s, x->t[x->cur].id, &x->topic)) {
				/* gone meanwhile: the next sync forgets it */
				x->skipped = 1;
				lama_error_clear();
				continue;
			}
			lama_search_batch_release(&x->b);
			x->b.limit = IX_BATCH;
			/* the topic as it is now: its block of rows holds what
			 * came since the plan too, and its state is what is read */
			x->put = (struct lama_search_put){ .topic = x->t[x->cur],
							   .flags = LAMA_SEARCH_PUT_FIRST };
			x->put.topic.entries = x->topic.entries;
			x->put.topic.last_time = x->topic.last_time;
			x->in_topic = 1;
		}
		if ((rc = lama_search_batch_read(c->s, &x->topic, &x->b)))
			goto fail;
		if (!x->b.stuck)
			break;
		/* its older messages cannot be reached: left stale (no LAST) */
		x->skipped = 1;
		x->in_topic = 0;
	}
	if (!x->b.more)
		x->put.flags |= LAMA_SEARCH_PUT_LAST | (x->cur == x->last ? LAMA_SEARCH_PUT_BUILT : 0);
	if ((rc = lama_search_task_put(&b, c->ix_path, c->ix_keys, &x->put, x->b.d, x->b.n)) ||
	    (rc = ix_submit(c, IX_PUT, "put_topic", &b, NULL)))
		goto fail;
	return;
fail:
	lama_buf_release_wipe(&b);
	ix_build_end(c, rc);
}

static void ix_plan_done(lama_controller *c, const void *out, size_t n)
{
	struct ixbuild *x = c->ix_build;
	size_t nstale;
	int rc = lama_search_task_plan_result(out, n, x->n, x->stale, &nstale);

	if (rc) {
		ix_build_end(c, rc);
		return;
	}
	x->last = x->n;
	for (size_t i = 0; i < x->n; i++) {
		if (x->stale[i] && x->last == x->n)
			x->last = i;
		if (!x->stale[i])
			x->done += x->t[i].entries;
	}
	x->cur = x->n; /* the least recently active first: the newest get the highest rows */
	x->changes = c->ix_changes;
	x->work = nstale > 0;
	ix_progress(c, 0);
	ix_next_batch(c);
}

static void ix_put_done(lama_controller *c, const void *out, size_t n)
{
	struct ixbuild *x = c->ix_build;
	int rc = lama_search_task_put_result(out, n, &x->put);

	if (rc) {
		ix_build_end(c, rc);
		return;
	}
	x->done += x->b.n;
	if (x->put.flags & LAMA_SEARCH_PUT_LAST)
		x->in_topic = 0;
	x->put.flags = 0;
	ix_progress(c, 0);
	ix_next_batch(c);
}

/* A query answered by the index worker: the names added here. */
static void ix_query_done(lama_controller *c, struct ixtask *t, int rc, const char *msg,
			  const void *out, size_t n)
{
	json_t *results = NULL, *answer = NULL;

	if (rc == LAMA_ECANCELED)
		lama_error(rc, "search: canceled (the session ended, or the server is stopping)");
	else if (rc)
		lama_error(rc, "%s", msg ? msg : lama_strerror(rc));
	else if (!c->s)
		rc = lama_error(LAMA_ECANCELED, "the session ended");
	else if (!(results = json_loadb(out, n, JSON_REJECT_DUPLICATES, NULL)) ||
		 !json_is_array(results))
		rc = lama_error(LAMA_EIO, "the index worker's answer is malformed");
	else if ((rc = lama_search_name_results(c->s, results)) == LAMA_EFORMAT)
		/* the worker's fault, not the request's: internal, not invalid_payload */
		rc = lama_error(LAMA_EIO, "the index worker's answer is malformed");
	else if (!rc &&
		 !(answer = json_pack("{s:O, s:O, s:b}", "query", t->query, "results", results,
				      "partial", t->partial || c->ix_stale)))
		rc = oom();
	reply_late(c, &t->client, t->rid, rc, answer);
	json_decref(results);
	json_decref(answer);
}

static void ix_done(void *ctx, int rc, const char *msg, const void *out, size_t n)
{
	struct ixtask *t = ctx;
	lama_controller *c = t->c;
	int kind = t->kind;

	if (kind == IX_QUERY)
		ix_query_done(c, t, rc, msg, out, n);
	ix_task_free(c, t);
	if (kind == IX_ADD && rc && rc != LAMA_ECANCELED)
		c->ix_stale = 1; /* the next query syncs */
	if ((kind == IX_PLAN || kind == IX_PUT) && c->ix_build) {
		if (rc)
			ix_build_end(c, rc);
		else if (kind == IX_PLAN)
			ix_plan_done(c, out, n);
		else
			ix_put_done(c, out, n);
	}
	lama_error_clear();
}

/* The index worker serves this session from now on; 0 when it cannot
 * (no index pool, or the keys cannot be made): in-process then. */
static int ix_open(lama_controller *c)
{
	if (c->ix)
		return 1;
	if (!c->s || !c->workers || !c->ix_pool || !c->send)
		return 0;
	if (snprintf(c->ix_path, sizeof(c->ix_path), "%s/search.db", lama_session_dir(c->s)) >=
	    (int)sizeof(c->ix_path))
		return 0;
	if (!(c->ix_keys = lama_secure_alloc(LAMA_SEARCH_KEYS)))
		return 0;
	if (lama_search_keys(c->s, c->ix_keys, c->ix_keys + LAMA_KEY_BYTES)) {
		lama_secure_free(c->ix_keys);
		c->ix_keys = NULL;
		lama_error_clear();
		return 0;
	}
	c->ix = 1;
	return 1;
}

/* The session's topics for a plan. More than a plan holds: the newest
 * LAMA_SEARCH_PLAN_MAX are indexed, the older ones left out (and
 * forgotten by the index), docs/search.md. */
static int ix_topics(lama_controller *c, struct ixbuild *x)
{
	int rc = lama_search_topics(c->s, &x->t, &x->n, &x->total);

	if (rc || x->n <= LAMA_SEARCH_PLAN_MAX)
		return rc;
	x->n = LAMA_SEARCH_PLAN_MAX;
	x->total = 0;
	for (size_t i = 0; i < x->n; i++)
		x->total += x->t[i].entries;
	return 0;
}

/* Starts a sync in the background (again, after one that is running). */
static void ix_start(lama_controller *c)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct ixbuild *x;
	int rc;

	if (!ix_open(c))
		return;
	c->ix_stale = 1; /* until a sync has run through */
	if (c->ix_build)
		return; /* ix_build_end starts the next */
	if (!(x = lama_calloc(1, sizeof(*x)))) {
		lama_error_clear();
		return;
	}
	c->ix_build = x;
	c->ix_stale = 0;
	/* what others write from now on (the CLI directly, a sync worker's
	 * apply) changes the version: the next query syncs again */
	c->ix_seen_ok = !lama_store_data_version(lama_session_store(c->s), &c->ix_seen);
	x->shown_at = mono_ms();
	if ((rc = ix_topics(c, x)) || !(x->stale = lama_calloc(x->n + 1, 1)) ||
	    /* a sync, not a rebuild, also when the index is not built: the
	     * topics a sync cut short (a logout, a restart) left finished stay */
	    (rc = lama_search_task_plan(&b, c->ix_path, c->ix_keys, LAMA_SEARCH_PLAN_SYNC, x->t, x->n)) ||
	    (rc = ix_submit(c, IX_PLAN, "plan", &b, NULL))) {
		lama_buf_release_wipe(&b);
		ix_build_end(c, rc ? rc : LAMA_ENOMEM);
	}
}

/* A change for the index: one `add` task (a failure: sync again). */
static void ix_add(lama_controller *c, const struct lama_search_doc *d)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);

	/* something new: a topic a sync could not read may read now */
	c->ix_changes++;
	c->ix_stuck = 0;
	if (lama_search_task_add(&b, c->ix_path, c->ix_keys, d, 1) ||
	    ix_submit(c, IX_ADD, "add", &b, NULL)) {
		lama_buf_release_wipe(&b);
		c->ix_stale = 1;
		lama_error_clear();
	}
}

static void ix_message(lama_controller *c, const char *topic, const json_t *view)
{
	struct lama_search_doc d;
	int removed;

	if (!view || lama_search_doc_of_message(topic, view, &d, &removed)) {
		c->ix_stale = 1; /* not found among the newest: a sync mends it */
		c->ix_changes++;
		c->ix_stuck = 0;
		lama_error_clear();
		return;
	}
	if (removed)
		d.topic = NULL;
	ix_add(c, &d);
}

static void ix_remove(lama_controller *c, const lama_hash *id)
{
	struct lama_search_doc d = { .id = *id };

	ix_add(c, &d);
}

/* The session ends, or the manager goes: its tasks are canceled with
 * c->workers, the manager that holds them (a query's client is told),
 * with close the worker closes the index, the keys are wiped. */
static void ix_end(lama_controller *c, int close)
{
	struct lama_buf b = LAMA_BUF_INIT(0);

	ix_build_free(c);
	while (c->ix_tasks) {
		struct ixtask *t = c->ix_tasks;

		/* done runs at once (LAMA_ECANCELED) and takes t off the list;
		 * a task is on the list only while c->workers holds it */
		if (!c->workers || lama_workers_cancel(c->workers, t->id)) {
			reply_late(c, &t->client, t->rid,
				   lama_error(LAMA_ECANCELED, "the session ended"), NULL);
			ix_task_free(c, t);
		}
	}
	/* the worker forgets the index and wipes its keys (a failure leaves
	 * them there until the next task names another index); not when c
	 * goes: the task would outlive it */
	if (close && c->ix && c->workers && !c->freeing) {
		ix_submit(c, IX_CLOSE, "close", &b, NULL);
	}
	lama_error_clear();
	lama_secure_free(c->ix_keys);
	c->ix_keys = NULL;
	c->ix = 0;
	c->ix_stale = 0;
	c->ix_stuck = 0;
}

static int search_here(lama_controller *c, const struct lama_ipc_call *call, const char *topic,
		       size_t limit, json_t **result)
{
	const json_t *q = json_object_get(call->payload, "query");
	struct lama_search_opts o = { .topic = topic, .limit = limit };
	int rc;

	/* first use in this session: open, and bring the index up to the
	 * archive (everything when it was never built); after that what is
	 * sent or edited here is indexed as it happens */
	if (!c->search) {
		if ((rc = lama_search_open(c->s, &c->search)) == 0)
			rc = lama_search_is_built(c->search) ? lama_search_sync(c->s, c->search, NULL, NULL)
							     : lama_search_rebuild(c->s, c->search, NULL, NULL);
		if (rc) {
			lama_search_close(c->search);
			c->search = NULL;
			return rc;
		}
		c->search_stale = 0;
	} else if (c->search_stale) {
		if ((rc = lama_search_sync(c->s, c->search, NULL, NULL)))
			return rc;
		c->search_stale = 0;
	}
	if ((rc = lama_search_query_json(c->s, c->search, json_string_value(q), json_string_length(q),
					 &o, result)))
		return rc;
	if (json_object_set_new(*result, "partial", json_false())) {
		json_decref(*result);
		*result = NULL;
		return oom();
	}
	return 0;
}

/* 1 if another process committed to the archive since the last sync
 * started: its messages (written by the CLI directly, or received by a
 * sync worker) may be missing from the index. ix_seen then follows the
 * version read, so the same writes start one sync, not one per query. */
static int ix_written_elsewhere(lama_controller *c)
{
	int64_t v;

	if (lama_store_data_version(lama_session_store(c->s), &v)) {
		lama_error_clear();
		return 0;
	}
	if (c->ix_seen_ok && v == c->ix_seen)
		return 0;
	c->ix_seen = v;
	c->ix_seen_ok = 1;
	return 1;
}

static int search(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const json_t *q = json_object_get(call->payload, "query");
	const json_t *lim = json_object_get(call->payload, "limit");
	const char *topic = str(call->payload, "topic");
	json_int_t limit = lim ? json_integer_value(lim) : SEARCH_DEFAULT;
	struct lama_search_opts o = { .limit = (size_t)limit };
	struct lama_buf b = LAMA_BUF_INIT(LAMA_WORKER_PAYLOAD_MAX);
	struct lama_topic t = { 0 };
	struct ixtask *task;
	int rc;

	if (limit < 1 || limit > LAMA_SEARCH_LIMIT_MAX)
		return lama_error(LAMA_EINVAL, "limit must be 1 to %d", (int)LAMA_SEARCH_LIMIT_MAX);
	if (json_string_length(q) > LAMA_SEARCH_QUERY_MAX)
		return lama_error(LAMA_ELIMIT, "search: a query has at most %d bytes",
				  LAMA_SEARCH_QUERY_MAX);
	if (topic && (rc = lama_chat_find(c->s, topic, &t)))
		return rc;
	if (!ix_open(c)) {
		rc = search_here(c, call, topic ? t.id : NULL, (size_t)limit, result);
		goto out;
	}
	/* behind the archive (a failed change, a failed sync, or messages
	 * another process wrote): sync again, and answer with what is there
	 * meanwhile */
	if (ix_written_elsewhere(c)) {
		c->ix_stale = 1;
		c->ix_stuck = 0;
	}
	if (c->ix_stale && !c->ix_build && !c->ix_stuck)
		ix_start(c);
	o.topic = topic ? t.id : NULL;
	if ((rc = lama_search_task_query(&b, c->ix_path, c->ix_keys, json_string_value(q),
					 json_string_length(q), &o)) ||
	    (rc = ix_submit(c, IX_QUERY, "query", &b, &task))) {
		lama_buf_release_wipe(&b);
		goto out;
	}
	task->rid = json_deep_copy(call->id);
	task->query = json_incref((json_t *)q);
	task->partial = c->ix_build != NULL || c->ix_stale;
	if (!task->rid) {
		/* no client yet: its done (now) answers nobody; this does */
		lama_workers_cancel(c->workers, task->id); /* frees task */
		rc = oom();
		goto out;
	}
	task->client = call->client;
	rc = LAMA_IPC_LATER;
out:
	lama_topic_release(&t);
	return rc;
}

/* The session ends: what belongs to it goes (the index's keys wiped,
 * every worker replaced once idle: what one keeps between tasks, such as
 * an open archive or index with its keys, ends with its process). */
static void session_end(lama_controller *c)
{
	ix_end(c, 1);
	if (!c->stopping)
		lama_workers_recycle(c->workers);
	lama_search_close(c->search);
	c->search = NULL;
	c->search_stale = 0;
	lama_session_logout(c->s);
	c->s = NULL;
}

/* ---- the session ---- */

static int need_locked(lama_controller *c)
{
	if (c->s)
		return lama_error(LAMA_EEXIST, "a user is logged in: log out first");
	return 0;
}

/* The session is in; every client hears it. */
static int logged_in(lama_controller *c, lama_session *s, json_t **result)
{
	struct lama_person me;
	json_t *user;
	int rc;

	if ((rc = lama_models_init(s)) || (rc = lama_leute_me(s, &me))) {
		lama_session_logout(s);
		return rc;
	}
	if (!(user = lama_person_json(&me))) {
		lama_session_logout(s);
		return oom();
	}
	c->s = s;
	ix_start(c); /* the index catches up in the background */
	*result = json_pack("{s:O}", "user", user);
	push(c, "update:stateChanged", json_pack("{s:s, s:b, s:o}", "what", "session", "locked", 0,
						 "user", user));
	return *result ? 0 : oom();
}

/* The request's password, wiped in place once the handler is done with
 * it (the transports wipe their own buffers). */
static void wipe_password(const struct lama_ipc_call *call)
{
	const json_t *p = json_object_get(call->payload, "password");

	if (json_is_string(p))
		sodium_memzero((char *)json_string_value(p), json_string_length(p));
}

static int password_of(const struct lama_ipc_call *call, const char **pw, size_t *len)
{
	const json_t *p = json_object_get(call->payload, "password");

	*pw = json_string_value(p);
	*len = json_string_length(p);
	if (*len == 0)
		return lama_error(LAMA_EINVAL, "the password is empty");
	return 0;
}

/* Answers a request that was left for later (LAMA_IPC_LATER): rc and
 * result as for a handler, the message from lama_error. A client gone
 * meanwhile (*client NULL) gets nothing; *client is NULL after. */
static void reply_late(lama_controller *c, void **client, const json_t *id, int rc,
		       const json_t *result)
{
	char *reply = NULL;
	size_t len = 0;

	if (*client && lama_ipc_reply(id, rc, result, &reply, &len) == 0)
		c->send(*client, reply, len);
	lama_free(reply);
	lama_error_clear();
	*client = NULL;
}

/* A login or register whose Argon2id runs on a crypto worker: the loop
 * goes on answering meanwhile (0.5 s at the default cost). */
struct pending_login {
	lama_controller *c;
	void *client; /* NULL once gone */
	json_t *id;
	char name[LAMA_NAME_MAX + 1]; /* "" when none was given */
	int reg;                      /* a register: with this salt and cost */
	uint64_t task;                /* the kdf task, for cancel */
	uint8_t salt[LAMA_SALT_BYTES];
	struct lama_kdf_params kdf;
};

static void login_done(void *ctx, int rc, const char *msg, const void *key, size_t n)
{
	struct pending_login *pl = ctx;
	lama_controller *c = pl->c;
	const char *name = *pl->name ? pl->name : NULL;
	json_t *result = NULL;
	lama_session *s = NULL;

	c->login = NULL;
	if (rc)
		lama_error(rc, "%s", msg ? msg : lama_strerror(rc));
	else if (n != LAMA_KEY_BYTES)
		rc = lama_error(LAMA_EFORMAT, "the crypto worker answered %zu bytes for a key", n);
	else if (c->s)
		rc = lama_error(LAMA_EEXIST, "a user is logged in: log out first");
	else if (!(rc = pl->reg ? lama_account_register_key(c->home, name, pl->salt, &pl->kdf, key, &s)
				: lama_account_login_key(c->home, name, key, &s)))
		rc = logged_in(c, s, &result);
	if (!rc)
		snprintf(c->user, sizeof(c->user), "%s", pl->name);
	reply_late(c, &pl->client, pl->id, rc, result);
	json_decref(result);
	json_decref(pl->id);
	lama_free(pl);
}

/* A crypto worker runs now (not one that is being restarted). */
static int crypto_alive(lama_controller *c)
{
	json_t *st = lama_workers_status(c->workers);
	const json_t *w;
	size_t i;
	int alive = 0;

	json_array_foreach(st, i, w) {
		const char *kind = json_string_value(json_object_get(w, "kind"));

		if (kind && !strcmp(kind, "crypto") && json_is_integer(json_object_get(w, "pid")))
			alive = 1;
	}
	json_decref(st);
	return alive;
}

/* Starts the login on a crypto worker: LAMA_IPC_LATER, or an error; with
 * *here set when no worker could take it (do it on the loop then). */
static int login_async(lama_controller *c, const struct lama_ipc_call *call, const char *pw,
		       size_t len, int reg, int *here)
{
	const char *name = str(call->payload, "name");
	struct lama_kdf_params p;
	uint8_t salt[LAMA_SALT_BYTES], *in;
	struct pending_login *pl;
	size_t n = 16 + LAMA_SALT_BYTES + len;
	int rc;

	/* the kdf op takes passwords up to LAMA_WORKER_PW_MAX, and a task for
	 * a pool with no live worker could wait without end: on the loop */
	if (len > LAMA_WORKER_PW_MAX || !crypto_alive(c)) {
		*here = 1;
		return 0;
	}
	if (reg) {
		/* a fresh salt for the new user, at the server's cost */
		lama_random(salt, sizeof(salt));
		p = c->kdf;
	} else if ((rc = lama_account_kdf_input(c->home, name, salt, &p))) {
		return rc;
	}
	if (!(pl = lama_calloc(1, sizeof(*pl))) || !(in = lama_secure_alloc(n))) {
		lama_free(pl);
		return oom();
	}
	/* the kdf op's input (docs/workers.md): u64 opslimit, u64 memlimit,
	 * salt, password */
	for (int i = 0; i < 8; i++) {
		in[i] = (uint8_t)(p.opslimit >> (56 - 8 * i));
		in[8 + i] = (uint8_t)(p.memlimit >> (56 - 8 * i));
	}
	memcpy(in + 16, salt, LAMA_SALT_BYTES);
	memcpy(in + 16 + LAMA_SALT_BYTES, pw, len);
	pl->c = c;
	pl->reg = reg;
	memcpy(pl->salt, salt, sizeof(salt));
	pl->kdf = p;
	pl->client = call->client;
	pl->id = json_deep_copy(call->id);
	snprintf(pl->name, sizeof(pl->name), "%s", name ? name : "");
	rc = pl->id ? lama_workers_submit(c->workers, "crypto", "kdf", in, n, LAMA_TASK_IDEMPOTENT, 0,
					  login_done, pl, &pl->task)
		    : oom();
	lama_secure_free(in);
	/* a full queue, no crypto pool, a closing manager */
	*here = rc == LAMA_EBUSY || rc == LAMA_ENOTFOUND || rc == LAMA_ECANCELED;
	if (rc) {
		json_decref(pl->id);
		lama_free(pl);
		return rc;
	}
	c->login = pl;
	return LAMA_IPC_LATER;
}

static int login(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *pw;
	size_t len;
	lama_session *s;
	int rc;

	if (c->workers && c->send && !need_locked(c) && !password_of(call, &pw, &len)) {
		int here = 0;

		rc = login_async(c, call, pw, len, 0, &here);
		if (!here) {
			wipe_password(call);
			return rc;
		}
		lama_error_clear(); /* no worker could take it: here, on the loop */
	}

	if ((rc = need_locked(c)) || (rc = password_of(call, &pw, &len)) ||
	    (rc = lama_account_login(c->home, str(call->payload, "name"), pw, len, &s))) {
		wipe_password(call);
		return rc;
	}
	wipe_password(call);
	snprintf(c->user, sizeof(c->user), "%s", str(call->payload, "name") ? str(call->payload, "name") : "");
	return logged_in(c, s, result);
}

static int do_register(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *pw, *name = str(call->payload, "name");
	size_t len;
	lama_session *s;
	int rc;

	if ((rc = need_locked(c)) || (rc = password_of(call, &pw, &len))) {
		wipe_password(call);
		return rc;
	}
	if (c->workers && c->send) {
		int here = 0;

		rc = login_async(c, call, pw, len, 1, &here);
		if (!here) {
			wipe_password(call);
			return rc;
		}
		lama_error_clear(); /* no worker could take it: here, on the loop */
	}
	rc = lama_account_register(c->home, name, pw, len, &c->kdf, &s);
	wipe_password(call);
	if (rc)
		return rc;
	snprintf(c->user, sizeof(c->user), "%s", name);
	return logged_in(c, s, result);
}

static int logout(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;

	(void)call;
	session_end(c); /* wipes the keys */
	*result = json_pack("{s:b}", "locked", 1);
	push(c, "update:stateChanged", json_pack("{s:s, s:b}", "what", "session", "locked", 1));
	/* the log held the user's updates: a client without the password
	 * must not replay them */
	lama_state_reset(c->st);
	return *result ? 0 : oom();
}

/* Erases the logged-in user and all their data: the password again, and
 * the word "erase", so no stray request can do it. */
static int reset(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *pw, *name = *c->user ? c->user : NULL;
	lama_session *check = NULL;
	size_t len;
	int rc;

	if (c->job)
		return lama_error(LAMA_EBUSY, "a backup is running: reset after it");
	if (strcmp(str(call->payload, "confirm"), "erase") != 0)
		return lama_error(LAMA_EINVAL, "confirm must be \"erase\": this removes the user and all their data");
	if ((rc = password_of(call, &pw, &len)) ||
	    (rc = lama_account_login(c->home, name, pw, len, &check))) {
		wipe_password(call);
		return rc;
	}
	/* every session's lock on the user must go before the erase; if the
	 * erase fails (another process uses the user), the user is logged in
	 * again, so a failed reset changes nothing */
	lama_session_logout(check);
	check = NULL;
	session_end(c);
	rc = lama_account_erase(c->home, name, pw, len);
	if (rc) {
		int saved = rc;
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", lama_errmsg());
		if (lama_account_login(c->home, name, pw, len, &check) == 0 &&
		    lama_models_init(check) == 0) {
			c->s = check;
			ix_start(c);
		} else {
			lama_session_logout(check);
			push(c, "update:stateChanged", json_pack("{s:s, s:b}", "what", "session", "locked", 1));
			lama_state_reset(c->st);
		}
		wipe_password(call);
		return lama_error(saved, "%s", msg);
	}
	wipe_password(call);
	push(c, "update:stateChanged", json_pack("{s:s, s:b, s:b}", "what", "session", "locked", 1,
						 "erased", 1));
	lama_state_reset(c->st);
	c->user[0] = '\0';
	*result = json_pack("{s:b, s:b}", "erased", 1, "locked", 1);
	return *result ? 0 : oom();
}

static int update_settings(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *key;
	json_t *cur, *v;
	char *text;
	int rc;

	if (json_object_size(call->payload) == 0)
		return lama_error(LAMA_EINVAL, "name at least one setting");
	json_object_foreach((json_t *)call->payload, key, v) {
		const struct setting *k = setting_find(key);

		if (!k)
			return lama_error(LAMA_EINVAL, "there is no setting %s", key);
		if ((rc = setting_check(k, v)))
			return rc;
	}
	if ((rc = settings_load(c, &cur)))
		return rc;
	if (json_object_update(cur, (json_t *)call->payload) ||
	    !(text = json_dumps(cur, JSON_COMPACT | JSON_SORT_KEYS))) {
		json_decref(cur);
		return oom();
	}
	rc = lama_store_kv_put(lama_session_store(c->s), SETTINGS_RECORD, text, strlen(text));
	free(text); /* jansson's allocator */
	if (rc) {
		json_decref(cur);
		return rc;
	}
	*result = json_pack("{s:O}", "settings", cur);
	push(c, "update:stateChanged", json_pack("{s:s, s:o}", "what", "settings", "settings", cur));
	return *result ? 0 : oom();
}

/* ---- updates: subscribing, and catching up ---- */

static int subscribe(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	const char *epoch = str(call->payload, "epoch");
	const json_t *since = json_object_get(call->payload, "since");
	int rc, reset = 0;

	if (!epoch != !since)
		return lama_error(LAMA_EINVAL, "epoch and since come together");
	if (since && json_integer_value(since) < 0)
		return lama_error(LAMA_EINVAL, "since must not be negative");
	/* the missed updates go out now, before this reply */
	rc = lama_state_subscribe(c->st, call->client, epoch,
				  since ? (uint64_t)json_integer_value(since) : 0, &reset);
	if (rc)
		return rc;
	*result = json_pack("{s:s, s:I, s:b}", "epoch", lama_state_epoch(c->st), "seq",
			    (json_int_t)lama_state_seq(c->st), "reset", reset);
	return *result ? 0 : oom();
}

static int unsubscribe(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;

	lama_state_unsubscribe(c->st, call->client);
	*result = json_object();
	return *result ? 0 : oom();
}

/* ---- backup and restore: long work on a libuv worker thread ---- */

/* One backup or restore at a time. The loop thread owns everything here
 * but `rc`, `msg` and `name`, which the worker writes before after_job
 * runs on the loop. */
struct job {
	uv_work_t work;
	lama_controller *c;
	int restore;
	void *client;       /* whom to answer; NULL once it is gone */
	json_t *id;         /* the request's id */
	char path[LAMA_PATH_MAX];
	char *pw;           /* secure memory */
	size_t pwlen;
	lama_backup_job *backup;
	int rc;
	char msg[256];      /* the worker's error message (errors are per thread) */
	char *name;         /* the restored user */
	/* progress: the thread stores, the loop publishes (update:progress) */
	uv_async_t async;
	_Atomic uint64_t done, total;
	uint64_t shown, shown_at; /* last published done, and when (ms) */
};

/* On the work's thread: note how far it is, wake the loop. */
static void job_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct job *j = ctx;

	j->done = done;
	j->total = total;
	uv_async_send(&j->async);
}

/* On the loop: at most four updates a second, and the last one. */
static void job_wake(uv_async_t *a)
{
	struct job *j = a->data;
	uint64_t done = j->done, total = j->total, now = uv_now(j->c->loop);

	if (done == j->shown || (now - j->shown_at < 250 && done != total))
		return;
	j->shown = done;
	j->shown_at = now;
	push(j->c, "update:progress",
	     json_pack("{s:s, s:s, s:I, s:I}", "task", j->restore ? "restore" : "backup", "path",
		       j->path, "done", (json_int_t)done, "total", (json_int_t)total));
}

static void run_job(uv_work_t *w)
{
	struct job *j = w->data;
	struct lama_backup_progress p = { job_progress, j };

	if (j->restore)
		j->rc = lama_backup_restore(j->c->home, j->path, j->pw, j->pwlen, &j->name, &p);
	else
		j->rc = lama_backup_run(j->backup, j->path, j->pw, j->pwlen, &p);
	if (j->rc)
		snprintf(j->msg, sizeof(j->msg), "%s", lama_errmsg());
	sodium_memzero(j->pw, j->pwlen);
}

static void free_job(struct job *j)
{
	lama_secure_free(j->pw);
	lama_backup_job_free(j->backup);
	json_decref(j->id);
	lama_free(j->name);
	lama_free(j);
}

/* The job is over once its wake-up handle is closed: drain waits for it. */
static void job_closed(uv_handle_t *h)
{
	struct job *j = h->data;

	j->c->job = NULL;
	free_job(j);
}

static void after_job(uv_work_t *w, int status)
{
	struct job *j = w->data;
	lama_controller *c = j->c;
	json_t *result = NULL;
	int rc = j->rc;

	job_wake(&j->async); /* the last progress, before the answer */
	if (status != 0 && !rc)
		rc = lama_error(LAMA_EIO, "the work was cancelled");
	else if (rc)
		lama_error(rc, "%s", j->msg);
	if (!rc) {
		result = j->restore ? json_pack("{s:s, s:s?}", "path", j->path, "name", j->name)
				    : json_pack("{s:s}", "path", j->path);
		if (!result)
			rc = oom();
		else if (j->restore)
			push(c, "update:stateChanged", json_pack("{s:s, s:s?}", "what", "restored",
								 "name", j->name));
	}
	reply_late(c, &j->client, j->id, rc, result);
	json_decref(result);
	uv_close((uv_handle_t *)&j->async, job_closed);
}

/* Starts a backup or a restore; the reply comes when it is done. */
static int start_job(lama_controller *c, const struct lama_ipc_call *call, int restore)
{
	const char *path = str(call->payload, "path"), *pw;
	struct job *j;
	size_t len;
	int rc;

	if (!c->loop || !c->send)
		return lama_error(LAMA_EINVAL, "this server cannot run long work");
	if (c->stopping)
		return lama_error(LAMA_EBUSY, "the server is stopping");
	if (c->job)
		return lama_error(LAMA_EBUSY, "a %s is running: one at a time",
				  c->job->restore ? "restore" : "backup");
	if (path[0] != '/' || strlen(path) >= LAMA_PATH_MAX)
		return lama_error(LAMA_EINVAL, "path must be absolute (the server's folder is not the client's)");
	if ((rc = password_of(call, &pw, &len)))
		return rc;
	if (!restore && !json_is_true(json_object_get(call->payload, "replace")) &&
	    access(path, F_OK) == 0)
		return lama_error(LAMA_EEXIST, "%s exists: say replace: true to overwrite it", path);
	if (!(j = lama_calloc(1, sizeof(*j))) || !(j->pw = lama_secure_alloc(len + 1))) {
		lama_free(j);
		return oom();
	}
	j->c = c;
	j->restore = restore;
	j->client = call->client;
	j->id = json_deep_copy(call->id);
	memcpy(j->path, path, strlen(path) + 1);
	memcpy(j->pw, pw, len);
	j->pwlen = len;
	j->work.data = j;
	j->async.data = j;
	if (!j->id)
		rc = oom();
	else if (!restore)
		rc = lama_backup_prepare(c->s, &j->backup); /* reads the session: here */
	if (!rc && uv_async_init(c->loop, &j->async, job_wake) != 0)
		rc = lama_error(LAMA_EIO, "cannot start the work");
	if (rc) {
		free_job(j);
		return rc;
	}
	if (uv_queue_work(c->loop, &j->work, run_job, after_job) != 0) {
		j->c->job = j; /* job_closed clears it */
		uv_close((uv_handle_t *)&j->async, job_closed);
		return lama_error(LAMA_EIO, "cannot start the work");
	}
	c->job = j;
	return LAMA_IPC_LATER;
}

static int backup(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	int rc = start_job(ctx, call, 0);

	(void)result;
	wipe_password(call);
	return rc;
}

static int restore(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	lama_controller *c = ctx;
	int rc;

	(void)result;
	rc = need_locked(c);
	if (!rc)
		rc = start_job(c, call, 1);
	wipe_password(call);
	return rc;
}

void lama_controller_stop(lama_controller *c)
{
	struct job *j = c ? c->job : NULL;

	if (!c)
		return;
	c->stopping = 1;
	if (c->login && c->login->client)
		reply_late(c, &c->login->client, c->login->id,
			   lama_error(LAMA_EBUSY, "the server is stopping: log in again when it is back"),
			   NULL);
	/* its client's connection closes with the server: it gets its reply
	 * now (the work itself completes before the process exits) */
	if (j && j->client) {
		reply_late(c, &j->client, j->id,
			   lama_error(LAMA_EBUSY, "the server is stopping: the %s goes on to the end before it exits (%s)",
				      j->restore ? "restore" : "backup", j->path),
			   NULL);
	}
}

void lama_controller_forget(lama_controller *c, void *client)
{
	if (c && c->login && c->login->client == client)
		c->login->client = NULL;
	if (c && c->job && c->job->client == client)
		c->job->client = NULL;
	for (struct ixtask *t = c ? c->ix_tasks : NULL; t; t = t->next)
		if (t->client == client)
			t->client = NULL; /* its answer is dropped */
}

int lama_controller_busy(const lama_controller *c)
{
	return c && c->job;
}

void lama_controller_drain(lama_controller *c)
{
	while (c && c->job)
		uv_run(c->loop, UV_RUN_ONCE);
}

/* ---- the table ---- */

static const struct channel {
	const char *name, *schema;
	lama_ipc_handler fn;
	int locked_ok; /* answers without a session */
} channels[] = {
	{ "query:ping", "", ping, 1 },
	{ "query:getState", "", get_state, 1 },
	{ "query:getContacts", "", get_contacts, 0 },
	{ "query:getConversations", "", get_conversations, 0 },
	{ "query:getConversation", "topic:s", get_conversation, 0 },
	{ "query:getContact", "query:s", get_contact, 0 },
	{ "query:getMessages", "topic:s,limit:i?,before:s?", get_messages, 0 },
	{ "query:search", "query:s,topic:s?,limit:i?", search, 0 },
	{ "query:getWorkers", "", get_workers, 1 },
	{ "action:register", "name:s,password:s", do_register, 1 },
	{ "action:login", "name:s?,password:s", login, 1 },
	{ "action:logout", "", logout, 0 },
	{ "action:updateSettings", NULL, update_settings, 0 },
	{ "action:reset", "password:s,confirm:s", reset, 0 },
	{ "action:backup", "path:s,password:s,replace:b?", backup, 0 },
	{ "action:restore", "path:s,password:s", restore, 1 },
	{ "action:subscribe", "epoch:s?,since:i?", subscribe, 1 },
	{ "action:unsubscribe", "", unsubscribe, 1 },
	{ "action:sendMessage", "topic:s,text:s,reply_to:s?,attachments:a?", send_message, 0 },
	{ "action:editMessage", "topic:s,message:s,text:s", edit_message, 0 },
	{ "action:deleteMessage", "topic:s,message:s", delete_message, 0 },
	{ "action:markRead", "topic:s,message:s?", mark_read, 0 },
	{ "action:createConversation", "with:a,title:s?", create_conversation, 0 },
	{ "action:addContact", "name:s,email:s?,ai:b?,model:s?", add_contact, 0 },
};
#define NCHANNELS (sizeof(channels) / sizeof(channels[0]))

/* Every request passes here: the locked check is in one place. */
static int guard(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	struct slot *k = ctx;

	if (!k->c->s && !k->ch->locked_ok)
		return lama_error(LAMA_EAUTH, "locked: log in first (action:login)");
	if (k->c->login && (k->ch->fn == login || k->ch->fn == do_register || k->ch->fn == restore))
		return lama_error(LAMA_EBUSY, "a login is in progress");
	/* a restore writes the folder's users: no login or register meanwhile */
	if (k->c->job && k->c->job->restore && k->ch->fn != get_state && k->ch->fn != ping &&
	    k->ch->fn != subscribe && k->ch->fn != unsubscribe)
		return lama_error(LAMA_EBUSY, "a restore is running");
	return k->ch->fn(k->c, call, result);
}

int lama_controller_new(lama_controller **out, lama_ipc *d, const struct lama_controller_config *cfg,
			lama_session *s)
{
	lama_controller *c = lama_calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c || !(c->slots = lama_calloc(NCHANNELS, sizeof(*c->slots)))) {
		lama_free(c);
		lama_session_logout(s);
		return oom();
	}
	if (!cfg->state || !cfg->home || strlen(cfg->home) >= sizeof(c->home)) {
		lama_controller_free(c);
		lama_session_logout(s);
		return lama_error(LAMA_EINVAL, "the controller needs a data folder and a state manager");
	}
	c->s = s;
	strcpy(c->home, cfg->home);
	c->kdf = cfg->kdf;
	c->loop = cfg->loop;
	c->send = cfg->send;
	snprintf(c->user, sizeof(c->user), "%s", cfg->user ? cfg->user : "");
	c->st = cfg->state;
	for (size_t i = 0; i < NCHANNELS; i++) {
		c->slots[i] = (struct slot){ c, &channels[i] };
		if ((rc = lama_ipc_register(d, channels[i].name, channels[i].schema, guard,
					    &c->slots[i]))) {
			lama_controller_free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

/* A login waiting for its key is canceled (its client told): its task
 * must not outlive c or c->workers. */
static void login_cancel(lama_controller *c)
{
	if (c->login && c->workers)
		lama_workers_cancel(c->workers, c->login->task); /* login_done runs now */
	lama_error_clear();
}

void lama_controller_free(lama_controller *c)
{
	if (!c)
		return;
	lama_controller_drain(c);
	/* nothing of c stays with the manager: its tasks canceled there */
	c->freeing = 1;
	login_cancel(c);
	session_end(c);
	lama_free(c->slots);
	lama_free(c);
}

lama_session *lama_controller_session(const lama_controller *c)
{
	return c->s;
}
