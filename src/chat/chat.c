/* chat.c: topics, messages, edits and read positions over channels. */
#include "chat/chat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/access.h"
#include "channel/channel.h"
#include "leute/leute.h"
#include "util/err.h"
#include "util/mem.h"

#define REGISTRY_ID "TopicAppRegistry"
#define GROUP_PREFIX "topic:"

/* ---- small helpers ---- */

static json_t *hex_json(const lama_hash *h)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(h, hex);
	return json_string(hex);
}

/* A hash from a JSON string field; LAMA_ECORRUPT naming `what` if absent
 * or malformed (objects may come from peers). */
static int field_hash(const json_t *obj, const char *field, const char *what, lama_hash *h)
{
	const char *s = json_string_value(json_object_get(obj, field));

	if (!s || lama_hash_parse(s, strlen(s), h))
		return lama_error(LAMA_ECORRUPT, "%s without a valid %s", what, field);
	return 0;
}

static int oom(void)
{
	return lama_error(LAMA_ENOMEM, "out of memory");
}

static const char *type_of(const json_t *obj)
{
	const char *t = json_string_value(json_object_get(obj, "$type$"));

	return t ? t : "";
}

/* Milliseconds with microsecond precision: two sends in the same
 * millisecond still get distinct times, so equal texts stay two messages. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000) / 1000.0;
}

static int cmp_hash(const void *x, const void *y)
{
	return memcmp(x, y, sizeof(lama_hash));
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Errors that make one participant's log unavailable (a peer sent it
 * broken, or part of it has not arrived) rather than failing the topic. */
static int unavailable(int rc)
{
	return rc == LAMA_ECORRUPT || rc == LAMA_ENOTFOUND || rc == LAMA_EFORMAT ||
	       rc == LAMA_EINVAL;
}

/* ---- merge rules ---- */

/* TopicAppRegistry: the union of the maps; for an id two devices mapped
 * differently the larger Topic hash (a maximum: order does not matter). */
static int merge_registry(void *ctx, lama_archive *a, json_t *const *heads, size_t n,
			  json_t **merged)
{
	json_t *all = json_object(), *pairs = json_array(), *e, *out;
	const char *k;
	size_t i, j;

	(void)ctx;
	(void)a;
	if (!all || !pairs)
		goto fail;
	for (i = 0; i < n; i++) {
		json_t *m = json_object_get(json_object_get(heads[i], "topics"), "$map");

		json_array_foreach(m, j, e) {
			const char *key = json_string_value(json_array_get(e, 0));
			const char *val = json_string_value(json_array_get(e, 1));
			const char *old;

			if (!key || !val)
				continue;
			old = json_string_value(json_object_get(all, key));
			if ((!old || strcmp(val, old) > 0) && json_object_set_new(all, key, json_string(val)))
				goto fail;
		}
	}
	/* canonical order: by topic id */
	{
		size_t nk = json_object_size(all), c = 0;
		const char **keys = lama_calloc(nk + 1, sizeof(char *));

		if (!keys)
			goto fail;
		json_object_foreach(all, k, e)
			keys[c++] = k;
		qsort(keys, c, sizeof(char *), cmp_str);
		for (i = 0; i < c; i++)
			if (json_array_append_new(pairs, json_pack("[sO]", keys[i], json_object_get(all, keys[i])))) {
				lama_free(keys);
				goto fail;
			}
		lama_free(keys);
	}
	out = json_pack("{s:s, s:s, s:{s:O}}", "$type$", REGISTRY_ID, "id", REGISTRY_ID, "topics",
			"$map", pairs);
	if (!out)
		goto fail;
	json_decref(all);
	json_decref(pairs);
	*merged = out;
	return 0;
fail:
	json_decref(all);
	json_decref(pairs);
	return oom();
}

/* LamaReadPosition: the further position wins (time, then entry), so a
 * device that read less never moves another one's marker back. */
static int merge_read_position(void *ctx, lama_archive *a, json_t *const *heads, size_t n,
			       json_t **merged)
{
	const json_t *best = NULL;

	(void)ctx;
	(void)a;
	for (size_t i = 0; i < n; i++) {
		const json_t *h = heads[i];
		double t = json_number_value(json_object_get(h, "time"));
		const char *e = json_string_value(json_object_get(h, "entry"));

		if (!best) {
			best = h;
			continue;
		}
		double bt = json_number_value(json_object_get(best, "time"));
		const char *be = json_string_value(json_object_get(best, "entry"));

		if (t > bt || (t == bt && strcmp(e ? e : "", be ? be : "") > 0))
			best = h;
	}
	*merged = json_deep_copy(best);
	return *merged ? 0 : oom();
}

int lama_chat_init(lama_session *s)
{
	lama_archive *a = lama_session_archive(s);
	int rc;

	if ((rc = lama_channel_init(a)))
		return rc;
	if ((rc = lama_archive_set_merger(a, REGISTRY_ID, merge_registry, NULL)))
		return rc;
	return lama_archive_set_merger(a, "LamaReadPosition", merge_read_position, NULL);
}

/* ---- the registry of topics ---- */

static int registry_idhash(lama_session *s, lama_hash *id)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:[]}}", "$type$", REGISTRY_ID, "id", REGISTRY_ID,
			      "topics", "$map");
	int rc;

	if (!o)
		return oom();
	rc = lama_object_hash(lama_session_recipes(s), o, NULL, id);
	json_decref(o);
	return rc;
}

/* The current registry object, or a new empty one (*out a new reference). */
static int registry_get(lama_session *s, json_t **out)
{
	lama_archive *a = lama_session_archive(s);
	lama_hash id, cur;
	int rc;

	*out = NULL;
	if ((rc = registry_idhash(s, &id)))
		return rc;
	rc = lama_archive_current(a, &id, &cur);
	if (rc == LAMA_ENOTFOUND) {
		*out = json_pack("{s:s, s:s, s:{s:[]}}", "$type$", REGISTRY_ID, "id", REGISTRY_ID,
				 "topics", "$map");
		return *out ? 0 : oom();
	}
	if (!rc)
		rc = lama_archive_get(a, &cur, out);
	if (!rc && (!json_is_array(json_object_get(json_object_get(*out, "topics"), "$map")))) {
		json_decref(*out);
		*out = NULL;
		rc = lama_error(LAMA_ECORRUPT, "the topic registry is malformed");
	}
	return rc;
}

/* The Topic hash the registry maps id to; LAMA_ENOTFOUND if none. */
static int registry_lookup(const json_t *reg, const char *id, lama_hash *topic)
{
	const json_t *m = json_object_get(json_object_get(reg, "topics"), "$map"), *e;
	size_t i;

	json_array_foreach(m, i, e) {
		const char *k = json_string_value(json_array_get(e, 0));
		const char *v = json_string_value(json_array_get(e, 1));

		if (k && !strcmp(k, id)) {
			if (!v || lama_hash_parse(v, strlen(v), topic))
				return lama_error(LAMA_ECORRUPT, "the topic registry is malformed");
			return 0;
		}
	}
	return lama_error(LAMA_ENOTFOUND, "no topic %.80s", id);
}

/* ---- topics ---- */

void lama_topic_release(struct lama_topic *t)
{
	if (!t)
		return;
	lama_free(t->people);
	t->people = NULL;
	t->npeople = 0;
}

static int group_idhash(lama_session *s, const char *topic_id, lama_hash *id)
{
	char name[sizeof(GROUP_PREFIX) + LAMA_TOPIC_ID_MAX];
	json_t *g;
	int rc;

	snprintf(name, sizeof(name), GROUP_PREFIX "%s", topic_id);
	g = json_pack("{s:s, s:s, s:[]}", "$type$", "Group", "name", name, "person");
	if (!g)
		return oom();
	rc = lama_object_hash(lama_session_recipes(s), g, NULL, id);
	json_decref(g);
	return rc;
}

/* The participants: the current Group version (sorted, distinct). */
static int load_people(lama_session *s, struct lama_topic *t)
{
	lama_archive *a = lama_session_archive(s);
	json_t *g = NULL, *p, *e;
	lama_hash cur;
	size_t i;
	int rc;

	rc = lama_archive_current(a, &t->group, &cur);
	if (!rc)
		rc = lama_archive_get(a, &cur, &g);
	if (rc)
		return rc;
	p = json_object_get(g, "person");
	if (!json_is_array(p) || json_array_size(p) > LAMA_TOPIC_PEOPLE_MAX) {
		json_decref(g);
		return lama_error(LAMA_ECORRUPT, "the participants of topic %.80s are malformed", t->id);
	}
	t->people = lama_calloc(json_array_size(p) + 1, sizeof(lama_hash));
	if (!t->people) {
		json_decref(g);
		return oom();
	}
	json_array_foreach(p, i, e) {
		const char *h = json_string_value(e);

		if (!h || lama_hash_parse(h, strlen(h), &t->people[t->npeople])) {
			json_decref(g);
			return lama_error(LAMA_ECORRUPT, "a participant of topic %.80s is malformed", t->id);
		}
		t->npeople++;
	}
	json_decref(g);
	qsort(t->people, t->npeople, sizeof(lama_hash), cmp_hash);
	/* a bag may name someone twice; a participant is one log */
	{
		size_t k = 0;

		for (size_t j = 0; j < t->npeople; j++)
			if (k == 0 || !lama_hash_eq(&t->people[k - 1], &t->people[j]))
				t->people[k++] = t->people[j];
		t->npeople = k;
	}
	return 0;
}

/* The read position of `person` in the topic: (time, entry), or time -1. */
static int read_position(lama_session *s, const char *topic_id, const lama_hash *person,
			 double *time, lama_hash *entry)
{
	lama_archive *a = lama_session_archive(s);
	json_t *o, *cur_obj = NULL;
	lama_hash id, cur;
	int rc;

	*time = -1;
	o = json_pack("{s:s, s:s, s:o, s:f}", "$type$", "LamaReadPosition", "topic", topic_id,
		      "person", hex_json(person), "time", 0.0);
	if (!o)
		return oom();
	rc = lama_object_hash(lama_session_recipes(s), o, NULL, &id);
	json_decref(o);
	if (rc)
		return rc;
	rc = lama_archive_current(a, &id, &cur);
	if (rc == LAMA_ENOTFOUND)
		return 0;
	if (!rc)
		rc = lama_archive_get(a, &cur, &cur_obj);
	if (rc)
		return rc;
	*time = json_number_value(json_object_get(cur_obj, "time"));
	if (field_hash(cur_obj, "entry", "a read position", entry))
		memset(entry, 0, sizeof(*entry));
	json_decref(cur_obj);
	if (!isfinite(*time))
		*time = -1;
	return 0;
}

/* Counts, last activity and unread entries over every participant's
 * channel, from the channel index (no message is read). */
static int load_stats(lama_session *s, struct lama_topic *t)
{
	lama_archive *a = lama_session_archive(s);
	const lama_hash *me = lama_session_person(s);
	double rtime;
	lama_hash rentry;
	int rc;

	if ((rc = read_position(s, t->id, me, &rtime, &rentry)))
		return rc;
	for (size_t i = 0; i < t->npeople; i++) {
		struct lama_chan_entry e;
		lama_hash chan, *heads = NULL;
		uint64_t count, pos;
		size_t nh = 0, got;

		if ((rc = lama_channel_idhash(a, t->id, &t->people[i], &chan)))
			return rc;
		if ((rc = lama_archive_heads(a, &chan, &heads, &nh)))
			return rc;
		lama_free(heads);
		if (nh == 0)
			continue; /* that participant's log has not arrived yet */
		rc = lama_channel_count(a, &chan, &count, NULL);
		if (unavailable(rc))
			continue; /* a broken log from a peer hides only itself */
		if (rc)
			return rc;
		if (count == 0)
			continue;
		t->entries += count;
		if ((rc = lama_channel_read(a, &chan, count - 1, -1, &e, 1, &got)))
			return rc;
		if (got && e.time > t->last_time)
			t->last_time = e.time;
		if (lama_hash_eq(&t->people[i], me))
			continue;
		if (rtime < 0) {
			t->unread += count;
			continue;
		}
		if ((rc = lama_channel_seek(a, &chan, rtime, &rentry, &pos)))
			return rc;
		t->unread += pos == UINT64_MAX ? count : count - (pos + 1);
	}
	return 0;
}

/* Fills *t from a Topic object hash. */
/* Fills what the Topic object itself says: id, handle, title. Cheap: one
 * read, for finding a topic among many. */
static int topic_head(lama_session *s, const lama_hash *topic, struct lama_topic *t)
{
	lama_archive *a = lama_session_archive(s);
	json_t *o = NULL;
	const char *id, *name;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = lama_archive_get(a, topic, &o);
	if (rc)
		return rc;
	id = json_string_value(json_object_get(o, "id"));
	name = json_string_value(json_object_get(o, "name"));
	if (strcmp(type_of(o), "Topic") || !id || !*id || strlen(id) > LAMA_TOPIC_ID_MAX ||
	    (name && strlen(name) > LAMA_TOPIC_TITLE_MAX)) {
		json_decref(o);
		return lama_error(LAMA_ECORRUPT, "a malformed topic");
	}
	snprintf(t->id, sizeof(t->id), "%s", id);
	{
		char hex[LAMA_HASH_HEX + 1];
		lama_hash h;

		lama_sha256(t->id, strlen(t->id), &h);
		lama_hash_hex(&h, hex);
		memcpy(t->handle, hex, sizeof(t->handle) - 1);
		t->handle[sizeof(t->handle) - 1] = '\0';
	}
	snprintf(t->title, sizeof(t->title), "%s", name ? name : "");
	json_decref(o);
	t->topic = *topic;
	return 0;
}

/* The rest: participants, whether one is an assistant, the counts. */
static int topic_fill(lama_session *s, struct lama_topic *t)
{
	int rc;

	rc = group_idhash(s, t->id, &t->group);
	if (!rc)
		rc = load_people(s, t);
	for (size_t i = 0; i < t->npeople && !rc; i++) {
		struct lama_person p;

		/* the user is never the assistant (a third of a listing's time) */
		if (lama_hash_eq(&t->people[i], lama_session_person(s)))
			continue;
		if (lama_leute_get(s, &t->people[i], &p) == 0 && p.is_ai)
			t->is_ai = 1;
	}
	if (!rc)
		rc = load_stats(s, t);
	if (rc)
		lama_topic_release(t);
	return rc;
}

/* Fills *t from a Topic object hash. */
static int topic_load(lama_session *s, const lama_hash *topic, struct lama_topic *t)
{
	int rc = topic_head(s, topic, t);

	return rc ? rc : topic_fill(s, t);
}

/* Who receives what of a new topic (docs/access.md): the participants'
 * group gets the user's log (every version), the Topic and the group
 * itself; the user's own devices (the IoM group) get the topic registry. */
static int share_topic(lama_session *s, const lama_hash *chan, const lama_hash *topic,
		       const char *gname)
{
	lama_archive *a = lama_session_archive(s);
	lama_hash group, iom, reg;
	int rc;

	if ((rc = lama_access_group_id(a, gname, &group)))
		return rc;
	if ((rc = lama_access_grant_id(a, chan, NULL, 0, &group, 1, NULL)) ||
	    (rc = lama_access_grant(a, topic, NULL, 0, &group, 1, NULL)) ||
	    (rc = lama_access_grant_id(a, &group, NULL, 0, &group, 1, NULL)))
		return rc;
	if ((rc = lama_access_iom_id(a, lama_session_person(s), &iom)) ||
	    (rc = registry_idhash(s, &reg)))
		return rc;
	return lama_access_grant_id(a, &reg, NULL, 0, &iom, 1, NULL);
}

static int hexcmp_hash(const lama_hash *x, const lama_hash *y)
{
	return memcmp(x, y, sizeof(*x));
}

int lama_chat_create(lama_session *s, const char *title, const lama_hash *with, size_t n,
		     struct lama_topic *out, int *is_new)
{
	lama_archive *a = lama_session_archive(s);
	const lama_hash *me = lama_session_person(s);
	char id[LAMA_TOPIC_ID_MAX + 1], dflt[LAMA_TOPIC_TITLE_MAX + 1] = "Group";
	char gname[sizeof(GROUP_PREFIX) + LAMA_TOPIC_ID_MAX];
	lama_hash *people = NULL, existing, chan;
	json_t *reg = NULL, *group = NULL, *topic = NULL, *plist = NULL;
	struct lama_put_info info;
	int rc, dummy;

	if (!is_new)
		is_new = &dummy;
	*is_new = 0;
	if (n == 0 || n >= LAMA_TOPIC_PEOPLE_MAX)
		return lama_error(LAMA_EINVAL, "a topic needs 1 to %d other participants",
				  LAMA_TOPIC_PEOPLE_MAX - 1);
	if (title && (!*title || strlen(title) > LAMA_TOPIC_TITLE_MAX))
		return lama_error(LAMA_EINVAL, "a title is 1 to %d bytes", LAMA_TOPIC_TITLE_MAX);
	if (title) {
		json_t *ok = json_string(title);

		json_decref(ok);
		if (!ok)
			return lama_error(LAMA_EINVAL, "a title must be valid UTF-8");
	}
	people = lama_calloc(n + 1, sizeof(lama_hash));
	if (!people)
		return oom();
	for (size_t i = 0; i < n; i++) {
		struct lama_person p;

		if (lama_hash_eq(&with[i], me)) {
			rc = lama_error(LAMA_EINVAL, "you are in every topic you create; name the others");
			goto out;
		}
		if ((rc = lama_leute_get(s, &with[i], &p)))
			goto out;
		if (n == 1)
			snprintf(dflt, sizeof(dflt), "%s", p.name);
		people[i] = with[i];
	}
	people[n] = *me;
	qsort(people, n + 1, sizeof(lama_hash), cmp_hash);
	for (size_t i = 1; i <= n; i++)
		if (!hexcmp_hash(&people[i - 1], &people[i])) {
			rc = lama_error(LAMA_EINVAL, "a participant is named twice");
			goto out;
		}
	if (n == 1) {
		char x[LAMA_HASH_HEX + 1], y[LAMA_HASH_HEX + 1];

		lama_hash_hex(&people[0], x);
		lama_hash_hex(&people[1], y);
		snprintf(id, sizeof(id), "%s<->%s", x, y);
	} else {
		uint8_t rnd[16];

		lama_random(rnd, sizeof(rnd));
		lama_hex_encode(rnd, sizeof(rnd), id);
	}
	if ((rc = lama_store_begin(lama_session_store(s))))
		goto out;
	if ((rc = registry_get(s, &reg)))
		goto fail;
	rc = registry_lookup(reg, id, &existing);
	if (rc == 0) { /* the one-to-one topic exists */
		if ((rc = lama_store_commit(lama_session_store(s))))
			goto out;
		rc = out ? topic_load(s, &existing, out) : 0;
		goto out;
	}
	if (rc != LAMA_ENOTFOUND)
		goto fail;
	plist = json_array();
	if (!plist) {
		rc = oom();
		goto fail;
	}
	for (size_t i = 0; i <= n; i++)
		if (json_array_append_new(plist, hex_json(&people[i]))) {
			rc = oom();
			goto fail;
		}
	snprintf(gname, sizeof(gname), GROUP_PREFIX "%s", id);
	group = json_pack("{s:s, s:s, s:O}", "$type$", "Group", "name", gname, "person", plist);
	if (!group) {
		rc = oom();
		goto fail;
	}
	if ((rc = lama_archive_put(a, group, 0, NULL)))
		goto fail;
	if ((rc = lama_channel_create(a, id, me, &chan)))
		goto fail;
	topic = json_pack("{s:s, s:s, s:s, s:o}", "$type$", "Topic", "name", title ? title : dflt,
			  "id", id, "channel", hex_json(&chan));
	if (!topic) {
		rc = oom();
		goto fail;
	}
	if ((rc = lama_archive_put(a, topic, 0, &info)))
		goto fail;
	if (json_array_append_new(json_object_get(json_object_get(reg, "topics"), "$map"),
				  json_pack("[so]", id, hex_json(&info.hash)))) {
		rc = oom();
		goto fail;
	}
	if ((rc = lama_archive_put(a, reg, 0, NULL)))
		goto fail;
	if ((rc = share_topic(s, &chan, &info.hash, gname)))
		goto fail;
	if ((rc = lama_store_commit(lama_session_store(s))))
		goto out;
	*is_new = 1;
	rc = out ? topic_load(s, &info.hash, out) : 0;
	goto out;
fail:
	lama_store_rollback(lama_session_store(s));
out:
	json_decref(reg);
	json_decref(group);
	json_decref(topic);
	json_decref(plist);
	lama_free(people);
	return rc;
}

struct topic_list {
	struct lama_topic *t;
	size_t n;
};

static int by_activity(const void *x, const void *y)
{
	const struct lama_topic *a = x, *b = y;

	if (a->last_time != b->last_time)
		return a->last_time < b->last_time ? 1 : -1;
	return strcmp(a->id, b->id);
}

/* Every topic of the registry (*l to free with list_free): fully loaded
 * and sorted by activity, or with `heads_only` just what the Topic
 * objects say, in registry order. */
static int list_load(lama_session *s, struct topic_list *l, int heads_only)
{
	json_t *reg = NULL, *m, *e;
	size_t i;
	int rc;

	memset(l, 0, sizeof(*l));
	if ((rc = registry_get(s, &reg)))
		return rc;
	m = json_object_get(json_object_get(reg, "topics"), "$map");
	l->t = lama_calloc(json_array_size(m) + 1, sizeof(*l->t));
	if (!l->t) {
		json_decref(reg);
		return oom();
	}
	json_array_foreach(m, i, e) {
		const char *v = json_string_value(json_array_get(e, 1));
		lama_hash h;

		if (!v || lama_hash_parse(v, strlen(v), &h)) {
			rc = lama_error(LAMA_ECORRUPT, "the topic registry is malformed");
			break;
		}
		rc = heads_only ? topic_head(s, &h, &l->t[l->n]) : topic_load(s, &h, &l->t[l->n]);
		if (unavailable(rc)) {
			/* a topic whose objects have not arrived yet, or that a peer
			 * sent broken, is left out rather than hiding every other one */
			rc = 0;
			continue;
		}
		if (rc)
			break;
		l->n++;
	}
	json_decref(reg);
	if (!rc && !heads_only)
		qsort(l->t, l->n, sizeof(*l->t), by_activity);
	return rc;
}

static void list_free(struct topic_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		lama_topic_release(&l->t[i]);
	lama_free(l->t);
}

int lama_chat_topics(lama_session *s, int (*fn)(void *ctx, const struct lama_topic *t),
		     void *ctx)
{
	struct topic_list l;
	int rc;

	rc = list_load(s, &l, 0);
	for (size_t i = 0; i < l.n && !rc; i++)
		rc = fn(ctx, &l.t[i]);
	list_free(&l);
	return rc;
}

int lama_chat_find(lama_session *s, const char *query, struct lama_topic *out)
{
	struct topic_list l;
	size_t qlen = strlen(query), hits = 0, pick = 0;
	char names[300] = "";
	int rc;

	memset(out, 0, sizeof(*out));
	if (!qlen)
		return lama_error(LAMA_EINVAL, "name a topic by its id, an id prefix or its title");
	/* match on what the Topic objects say; load the rest of the one found */
	if ((rc = list_load(s, &l, 1))) {
		list_free(&l);
		return rc;
	}
	/* an exact id wins; then id prefixes and titles */
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.t[i].id, query)) {
			hits = 1;
			pick = i;
			goto found;
		}
	for (size_t i = 0; i < l.n; i++) {
		if ((qlen >= 4 && (!strncmp(l.t[i].id, query, qlen) ||
				   (qlen <= 12 && !strncmp(l.t[i].handle, query, qlen)))) ||
		    !strcmp(l.t[i].title, query)) {
			if (hits++ == 0)
				pick = i;
			if (strlen(names) < 200)
				snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s (%.40s)",
					 hits > 1 ? ", " : "", l.t[i].handle, l.t[i].title);
		}
	}
found:
	if (hits == 0)
		rc = lama_error(LAMA_ENOTFOUND, "no topic matches \"%.80s\"", query);
	else if (hits > 1)
		rc = lama_error(LAMA_EINVAL, "\"%.80s\" matches several topics: %s", query, names);
	else if (!(rc = topic_fill(s, &l.t[pick])))
		*out = l.t[pick]; /* its people move to *out; list_free skips them */
	if (!rc)
		l.t[pick] = (struct lama_topic){ 0 };
	list_free(&l);
	return rc;
}

/* 1 if ct is an entry of one of the topic's logs, else 0 (or an error). */
static int topic_has(lama_session *s, const struct lama_topic *t, const lama_hash *ct)
{
	lama_archive *a = lama_session_archive(s);

	for (size_t i = 0; i < t->npeople; i++) {
		struct lama_chan_entry e;
		lama_hash chan;
		int rc;

		if ((rc = lama_channel_idhash(a, t->id, &t->people[i], &chan)))
			return rc;
		rc = lama_channel_find(a, &chan, ct, &e);
		if (rc == 0)
			return 1;
		if (!unavailable(rc))
			return rc;
	}
	return 0;
}

/* ---- sending ---- */

/* The user's log in a topic, created (and shared with the participants)
 * when the topic arrived from elsewhere and has none of ours yet. */
static int my_channel(lama_session *s, const struct lama_topic *t, lama_hash *chan)
{
	lama_archive *a = lama_session_archive(s);
	lama_hash *heads = NULL;
	size_t n = 0;
	int rc;

	if ((rc = lama_channel_idhash(a, t->id, lama_session_person(s), chan)) ||
	    (rc = lama_archive_heads(a, chan, &heads, &n)))
		return rc;
	lama_free(heads);
	if (n)
		return 0;
	if ((rc = lama_channel_create(a, t->id, lama_session_person(s), chan)))
		return rc;
	return lama_access_grant_id(a, chan, NULL, 0, &t->group, 1, NULL);
}

static int check_text(const char *text, size_t max)
{
	size_t n = strlen(text);

	if (n > max)
		return lama_error(LAMA_ELIMIT, "a message is at most %zu bytes of text", max);
	return 0;
}

/* Stores a BlobDescriptor for each attachment into arr (hex hashes). */
static int put_attachments(lama_session *s, const struct lama_attachment *att, size_t n,
			   json_t *arr)
{
	lama_archive *a = lama_session_archive(s);

	if (n > LAMA_CHAT_ATTACH_MAX)
		return lama_error(LAMA_ELIMIT, "at most %d attachments per message", LAMA_CHAT_ATTACH_MAX);
	for (size_t i = 0; i < n; i++) {
		struct lama_put_info info;
		json_t *d;
		int rc;

		if (!att[i].name || !*att[i].name || strlen(att[i].name) > LAMA_CHAT_NAME_MAX ||
		    !att[i].type || strlen(att[i].type) > LAMA_CHAT_NAME_MAX)
			return lama_error(LAMA_EINVAL, "an attachment needs a name and a type of at most %d bytes",
					  LAMA_CHAT_NAME_MAX);
		if (!isfinite(att[i].mtime) || att[i].mtime < 0 || att[i].size > (1ull << 53))
			return lama_error(LAMA_EINVAL, "an attachment's size or time is out of range");
		rc = lama_store_has(lama_session_store(s), &att[i].blob);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return lama_error(LAMA_ENOTFOUND, "attachment %.80s is not stored", att[i].name);
		d = json_pack("{s:s, s:o, s:f, s:s, s:f, s:s}", "$type$", "BlobDescriptor", "data",
			      hex_json(&att[i].blob), "lastModified", att[i].mtime, "name", att[i].name,
			      "size", (double)att[i].size, "type", att[i].type);
		if (!d)
			return lama_error(LAMA_EINVAL, "an attachment's name or type is not valid UTF-8");
		rc = lama_archive_put(a, d, 0, &info);
		json_decref(d);
		if (rc)
			return rc;
		if (json_array_append_new(arr, hex_json(&info.hash)))
			return oom();
	}
	return 0;
}

/* Stores one outgoing message; *data is what goes into the channel. */
static int put_message(lama_session *s, const struct lama_outgoing *m, lama_hash *data)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_put_info info;
	json_t *msg = NULL, *att = json_array();
	int rc;

	if (!att)
		return oom();
	if (!m->text)
		rc = lama_error(LAMA_EINVAL, "a message needs a text");
	else if ((rc = check_text(m->text, LAMA_CHAT_TEXT_MAX)))
		;
	else if (!*m->text && !m->nattach)
		rc = lama_error(LAMA_EINVAL, "an empty message: give a text or an attachment");
	else
		rc = put_attachments(s, m->attach, m->nattach, att);
	if (rc)
		goto out;
	msg = json_pack("{s:s, s:s, s:o}", "$type$", "ChatMessage", "text", m->text, "sender",
			hex_json(lama_session_person(s)));
	if (!msg) {
		rc = lama_error(LAMA_EINVAL, "a message's text must be valid UTF-8");
		goto out;
	}
	if (json_array_size(att) && json_object_set(msg, "attachments", att)) {
		rc = oom();
		goto out;
	}
	if ((rc = lama_archive_put(a, msg, 0, &info)))
		goto out;
	*data = info.hash;
	if (m->reply_to) {
		json_t *r;

		rc = lama_store_has(lama_session_store(s), m->reply_to);
		if (rc == 0)
			rc = lama_error(LAMA_ENOTFOUND, "no message to reply to");
		if (rc < 0)
			goto out;
		r = json_pack("{s:s, s:o, s:o}", "$type$", "LamaChatReply", "message",
			      hex_json(&info.hash), "replyTo", hex_json(m->reply_to));
		rc = r ? lama_archive_put(a, r, 0, &info) : oom();
		json_decref(r);
		if (!rc)
			*data = info.hash;
	}
out:
	json_decref(msg);
	json_decref(att);
	return rc;
}

int lama_chat_send(lama_session *s, const struct lama_topic *t, const struct lama_outgoing *m,
		   size_t n, lama_hash *ids)
{
	lama_store *st = lama_session_store(s);
	struct lama_chan_entry *e = NULL;
	lama_hash chan, *data = NULL;
	double *times = NULL, now;
	int rc;

	if (n == 0)
		return 0;
	data = lama_calloc(n, sizeof(*data));
	times = lama_calloc(n, sizeof(*times));
	e = lama_calloc(n, sizeof(*e));
	if (!data || !times || !e) {
		rc = oom();
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!m[i].reply_to)
			continue;
		rc = topic_has(s, t, m[i].reply_to);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			rc = lama_error(LAMA_ENOTFOUND, "no message to reply to in this topic");
			goto out;
		}
	}
	if ((rc = lama_store_begin(st)))
		goto out;
	rc = my_channel(s, t, &chan);
	now = now_ms();
	for (size_t i = 0; i < n && !rc; i++) {
		rc = put_message(s, &m[i], &data[i]);
		times[i] = now + (double)i / 1000.0; /* a batch keeps its order */
	}
	if (!rc)
		rc = lama_channel_append(lama_session_archive(s), &chan, data, times, n, e);
	if (rc) {
		lama_store_rollback(st);
		goto out;
	}
	if ((rc = lama_store_commit(st)))
		goto out;
	for (size_t i = 0; ids && i < n; i++)
		ids[i] = e[i].ct;
out:
	lama_free(data);
	lama_free(times);
	lama_free(e);
	return rc;
}

/* The CreationTime of a message: its time and the object it names. */
static int load_ct(lama_session *s, const lama_hash *ct, double *time, lama_hash *data)
{
	json_t *o = NULL;
	int rc;

	rc = lama_archive_get(lama_session_archive(s), ct, &o);
	if (rc)
		return rc;
	*time = json_number_value(json_object_get(o, "timestamp"));
	if (strcmp(type_of(o), "CreationTime") || !isfinite(*time))
		rc = lama_error(LAMA_EINVAL, "not a message id");
	else
		rc = field_hash(o, "data", "a CreationTime", data);
	json_decref(o);
	return rc;
}

int lama_chat_edit(lama_session *s, const struct lama_topic *t, const lama_hash *msg,
		   const char *text)
{
	lama_archive *a = lama_session_archive(s);
	lama_store *st = lama_session_store(s);
	struct lama_chan_entry e;
	struct lama_put_info info;
	lama_hash chan;
	json_t *edit = NULL;
	double now = now_ms();
	int rc;

	if (text && (rc = check_text(text, LAMA_CHAT_TEXT_MAX)))
		return rc;
	if ((rc = lama_channel_idhash(a, t->id, lama_session_person(s), &chan)))
		return rc;
	/* only a message in the user's own log can be edited by the user */
	rc = lama_channel_find(a, &chan, msg, &e);
	if (rc == LAMA_ENOTFOUND)
		return lama_error(LAMA_ENOTFOUND, "no message of yours with that id in this topic");
	if (rc)
		return rc;
	edit = json_pack("{s:s, s:o, s:o, s:f}", "$type$", "LamaChatEdit", "target", hex_json(msg),
			 "sender", hex_json(lama_session_person(s)), "time", now);
	if (!edit)
		return oom();
	if (text) {
		json_t *tx = json_string(text);

		if (!tx || json_object_set_new(edit, "text", tx)) {
			json_decref(edit);
			return lama_error(LAMA_EINVAL, "a message's text must be valid UTF-8");
		}
	} else if (json_object_set_new(edit, "deleted", json_true())) {
		json_decref(edit);
		return oom();
	}
	if ((rc = lama_store_begin(st))) {
		json_decref(edit);
		return rc;
	}
	rc = lama_archive_put(a, edit, 0, &info);
	if (!rc)
		rc = lama_channel_append(a, &chan, &info.hash, &now, 1, NULL);
	json_decref(edit);
	if (rc) {
		lama_store_rollback(st);
		return rc;
	}
	return lama_store_commit(st);
}

/* ---- reading ---- */

#define PAGE 32
#define SKIP_MAX 4096   /* entries passed over (edits, junk) per read */
#define PROBE_MAX 256   /* entries looked at to tell whether more remain */
#define EDITS_MAX 1024  /* edits of one message considered */

/* One participant's channel while merging the logs newest-first. Pages
 * are fetched by key (below the last entry taken), not by position, so an
 * entry inserted meanwhile (sync, another process) shifts nothing. */
struct source {
	lama_hash owner, chan;
	int has_last;      /* entries at or above `last` are done */
	double last_time;
	lama_hash last_ct;
	int exhausted;
	struct lama_chan_entry buf[PAGE];
	size_t nbuf, ibuf;
};

static int source_fill(lama_session *s, struct source *src)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_chan_entry e;
	uint64_t count, pos;
	size_t got = 0;
	int rc;

	src->nbuf = src->ibuf = 0;
	if ((rc = lama_channel_count(a, &src->chan, &count, NULL)))
		return rc;
	pos = count ? count - 1 : UINT64_MAX;
	if (count && src->has_last) {
		if ((rc = lama_channel_seek(a, &src->chan, src->last_time, &src->last_ct, &pos)))
			return rc;
		if (pos != UINT64_MAX) {
			if ((rc = lama_channel_read(a, &src->chan, pos, -1, &e, 1, &got)))
				return rc;
			if (got && lama_hash_eq(&e.ct, &src->last_ct))
				pos = pos == 0 ? UINT64_MAX : pos - 1;
		}
	}
	if (pos == UINT64_MAX) {
		src->exhausted = 1;
		return 0;
	}
	if ((rc = lama_channel_read(a, &src->chan, pos, -1, src->buf, PAGE, &got)))
		return rc;
	src->nbuf = got;
	src->exhausted = got == 0;
	return 0;
}

/* The current entry of a source, fetching a page when needed; NULL at the
 * end, or when the log turned out unavailable (it is then left out). */
static int source_peek(lama_session *s, struct source *src, struct lama_chan_entry **e)
{
	int rc;

	*e = NULL;
	if (src->ibuf == src->nbuf) {
		if (src->exhausted)
			return 0;
		rc = source_fill(s, src);
		if (unavailable(rc)) {
			src->exhausted = 1;
			src->nbuf = src->ibuf = 0;
			return 0;
		}
		if (rc || src->nbuf == 0)
			return rc;
	}
	*e = &src->buf[src->ibuf];
	return 0;
}

static void source_take(struct source *src)
{
	src->last_time = src->buf[src->ibuf].time;
	src->last_ct = src->buf[src->ibuf].ct;
	src->has_last = 1;
	src->ibuf++;
}

/* (time, id) order, newest first. */
static int newer(const struct lama_chan_entry *x, const struct lama_chan_entry *y)
{
	if (x->time != y->time)
		return x->time > y->time;
	return memcmp(&x->ct, &y->ct, sizeof(lama_hash)) > 0;
}

struct edit_pick {
	lama_session *s;
	const lama_hash *target, *sender;
	lama_hash chan;   /* the sender's channel in this topic */
	json_t *best;     /* the newest valid edit */
	double best_time;
	lama_hash best_hash;
};

static int find_ct_in_chan(void *ctx, const char *type, const lama_hash *src)
{
	struct edit_pick *p = ctx;
	struct lama_chan_entry e;
	int rc;

	(void)type;
	rc = lama_channel_find(lama_session_archive(p->s), &p->chan, src, &e);
	if (rc == 0)
		return 1;
	return unavailable(rc) ? 0 : rc;
}

/* An edit counts only if its sender wrote it into their own log. */
static int consider_edit(void *ctx, const char *type, const lama_hash *src)
{
	struct edit_pick *p = ctx;
	json_t *o = NULL, *att;
	lama_hash target, sender;
	double t;
	int rc;

	(void)type;
	rc = lama_archive_get(lama_session_archive(p->s), src, &o);
	if (rc)
		return unavailable(rc) ? 0 : rc; /* unreadable: as if absent */
	t = json_number_value(json_object_get(o, "time"));
	att = json_object_get(o, "attachments");
	if (strcmp(type_of(o), "LamaChatEdit") || field_hash(o, "target", "an edit", &target) ||
	    field_hash(o, "sender", "an edit", &sender) || !lama_hash_eq(&target, p->target) ||
	    !lama_hash_eq(&sender, p->sender) || !isfinite(t) || (att && !json_is_array(att)) ||
	    (json_object_get(o, "text") && !json_is_string(json_object_get(o, "text"))))
		goto skip;
	if (p->best && (t < p->best_time ||
			(t == p->best_time && memcmp(src, &p->best_hash, sizeof(*src)) < 0)))
		goto skip;
	rc = lama_archive_referrers_max(lama_session_archive(p->s), src, "CreationTime", 16,
					find_ct_in_chan, p, NULL);
	if (rc < 0) {
		json_decref(o);
		return rc;
	}
	if (rc == 1) {
		json_decref(p->best);
		p->best = o;
		p->best_time = t;
		p->best_hash = *src;
		return 0;
	}
skip:
	json_decref(o);
	return 0;
}

/* Reads an attachment list (hex hashes of BlobDescriptors) into att;
 * the descriptor objects are kept alive in hold. Malformed ones from a
 * peer are left out. */
static int load_attachments(lama_session *s, const json_t *arr, struct lama_attachment *att,
			    size_t *n, json_t *hold)
{
	const json_t *e;
	size_t i;

	*n = 0;
	json_array_foreach(arr, i, e) {
		const char *h = json_string_value(e);
		const char *name, *mime;
		lama_hash dh;
		json_t *d = NULL;
		double size, mtime;
		int rc;

		if (*n == LAMA_CHAT_ATTACH_MAX)
			break;
		if (!h || lama_hash_parse(h, strlen(h), &dh))
			continue;
		rc = lama_archive_get(lama_session_archive(s), &dh, &d);
		if (rc && !unavailable(rc))
			return rc;
		if (rc)
			continue;
		name = json_string_value(json_object_get(d, "name"));
		mime = json_string_value(json_object_get(d, "type"));
		size = json_number_value(json_object_get(d, "size"));
		mtime = json_number_value(json_object_get(d, "lastModified"));
		if (strcmp(type_of(d), "BlobDescriptor") || !name || !mime || !isfinite(size) ||
		    size < 0 || size > 9007199254740992.0 || !isfinite(mtime) ||
		    field_hash(d, "data", "an attachment", &att[*n].blob)) {
			json_decref(d);
			continue;
		}
		if (json_array_append_new(hold, d)) /* takes d, even when it fails */
			return oom();
		att[*n].name = name;
		att[*n].type = mime;
		att[*n].size = (uint64_t)size;
		att[*n].mtime = mtime;
		(*n)++;
	}
	return 0;
}

/* Turns one entry of `owner`'s log into a message for fn; *shown is 1 if
 * it was one (edits, foreign and broken objects are not). */
static int emit(lama_session *s, const struct source *src, const struct lama_chan_entry *e,
		int (*fn)(void *ctx, const struct lama_message *m), void *ctx, int *shown)
{
	lama_archive *a = lama_session_archive(s);
	struct lama_attachment att[LAMA_CHAT_ATTACH_MAX];
	struct lama_message m = { 0 };
	struct edit_pick pick = { .s = s };
	json_t *obj = NULL, *msg = NULL, *hold = json_array(), *text;
	lama_hash mh;
	int rc;

	*shown = 0;
	if (!hold)
		return oom();
	if ((rc = lama_archive_get(a, &e->data, &obj)))
		goto out;
	if (!strcmp(type_of(obj), "ChatMessage")) {
		msg = json_incref(obj);
	} else if (!strcmp(type_of(obj), "LamaChatReply")) {
		if (field_hash(obj, "message", "a reply", &mh) ||
		    field_hash(obj, "replyTo", "a reply", &m.reply_to) ||
		    (rc = lama_archive_get(a, &mh, &msg)))
			goto out; /* a broken reply is not shown */
		m.has_reply_to = 1;
		if (strcmp(type_of(msg), "ChatMessage"))
			goto out;
	} else {
		goto out;
	}
	/* a log holds only its owner's messages */
	if (field_hash(msg, "sender", "a message", &m.sender) || !lama_hash_eq(&m.sender, &src->owner))
		goto out;
	text = json_object_get(msg, "text");
	if (!json_is_string(text))
		goto out;
	m.id = e->ct;
	m.time = e->time;
	m.text = json_string_value(text);
	m.text_len = json_string_length(text);
	if ((rc = load_attachments(s, json_object_get(msg, "attachments"), att, &m.nattach, hold)))
		goto out;
	m.attach = att;
	/* the newest edit by the sender, from the sender's own log */
	pick.target = &e->ct;
	pick.sender = &m.sender;
	pick.chan = src->chan;
	rc = lama_archive_referrers_max(a, &e->ct, "LamaChatEdit", EDITS_MAX, consider_edit, &pick,
					NULL);
	if (rc)
		goto out;
	if (pick.best) {
		json_t *et = json_object_get(pick.best, "text");
		json_t *ea = json_object_get(pick.best, "attachments");

		m.edited = 1;
		m.edit_time = pick.best_time;
		if (json_is_true(json_object_get(pick.best, "deleted"))) {
			m.deleted = 1;
			m.text = "";
			m.text_len = 0;
			m.nattach = 0;
		} else {
			if (et) {
				m.text = json_string_value(et);
				m.text_len = json_string_length(et);
			}
			if (ea && (rc = load_attachments(s, ea, att, &m.nattach, hold)))
				goto out;
		}
	}
	*shown = 1;
	rc = fn(ctx, &m);
out:
	if (unavailable(rc) && !*shown)
		rc = 0; /* an entry whose objects are missing or broken is not shown */
	json_decref(pick.best);
	json_decref(obj);
	json_decref(msg);
	json_decref(hold);
	return rc;
}

/* The participants' logs as sources; a log that has not arrived or is
 * unavailable is left out. *out to lama_free. */
static int sources_open(lama_session *s, const struct lama_topic *t, const lama_hash *before,
			double btime, struct source **out, size_t *n)
{
	lama_archive *a = lama_session_archive(s);
	struct source *src;
	int rc = 0;

	*n = 0;
	src = *out = lama_calloc(t->npeople + 1, sizeof(*src));
	if (!src)
		return oom();
	for (size_t i = 0; i < t->npeople; i++) {
		struct source *x = &src[*n];
		lama_hash *heads = NULL;
		size_t nh = 0;

		x->owner = t->people[i];
		if ((rc = lama_channel_idhash(a, t->id, &x->owner, &x->chan)) ||
		    (rc = lama_archive_heads(a, &x->chan, &heads, &nh)))
			return rc;
		lama_free(heads);
		if (nh == 0)
			continue;
		if (before) {
			x->has_last = 1;
			x->last_time = btime;
			x->last_ct = *before;
		}
		(*n)++;
	}
	return 0;
}

static int probe(void *ctx, const struct lama_message *m)
{
	(void)ctx;
	(void)m;
	return 1;
}

/* The newest entry over all sources, or NULL. */
static int pick_newest(lama_session *s, struct source *src, size_t n, size_t *bi,
		       struct lama_chan_entry **best)
{
	struct lama_chan_entry *e;
	int rc;

	*best = NULL;
	for (size_t i = 0; i < n; i++) {
		if ((rc = source_peek(s, &src[i], &e)))
			return rc;
		if (e && (!*best || newer(e, *best))) {
			*best = e;
			*bi = i;
		}
	}
	return 0;
}

int lama_chat_messages(lama_session *s, const struct lama_topic *t, const lama_hash *before,
		       size_t limit, int (*fn)(void *ctx, const struct lama_message *m),
		       void *ctx, int *more)
{
	struct source *src = NULL;
	struct lama_chan_entry *best;
	size_t nsrc = 0, shown_n = 0, skipped = 0, bi = 0;
	double btime = 0;
	lama_hash bdata;
	int rc = 0, shown;

	if (more)
		*more = 0;
	if (before && (rc = load_ct(s, before, &btime, &bdata)))
		return rc;
	if ((rc = sources_open(s, t, before, btime, &src, &nsrc)))
		goto out;
	while (shown_n < limit) {
		if ((rc = pick_newest(s, src, nsrc, &bi, &best)) || !best)
			goto out;
		if ((rc = emit(s, &src[bi], best, fn, ctx, &shown)))
			goto out;
		source_take(&src[bi]);
		shown_n += (size_t)shown;
		/* entries that show nothing (edits, junk from a peer) are
		 * passed over, but not without end */
		if (!shown && ++skipped > SKIP_MAX) {
			if (more)
				*more = 1;
			goto out;
		}
	}
	/* more: is there an older message (not merely an entry)? */
	for (size_t k = 0; more && k < PROBE_MAX; k++) {
		if ((rc = pick_newest(s, src, nsrc, &bi, &best)) || !best)
			break;
		rc = emit(s, &src[bi], best, probe, NULL, &shown);
		if (rc < 0)
			break;
		source_take(&src[bi]);
		if (shown) {
			*more = 1;
			rc = 0;
			break;
		}
		if (k + 1 == PROBE_MAX)
			*more = 1; /* undecided: say so, the next page will tell */
	}
out:
	lama_free(src);
	return rc;
}

struct prefix_find {
	const char *prefix;
	size_t len, hits;
	lama_hash id;
};

static int match_prefix(void *ctx, const struct lama_message *m)
{
	struct prefix_find *f = ctx;
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(&m->id, hex);
	if (!strncmp(hex, f->prefix, f->len)) {
		f->hits++;
		f->id = m->id;
	}
	return 0;
}

int lama_chat_find_message(lama_session *s, const struct lama_topic *t, const char *prefix,
			   size_t scan, lama_hash *id)
{
	struct prefix_find f = { .prefix = prefix, .len = strlen(prefix) };
	int rc;

	if (f.len == LAMA_HASH_HEX && !lama_hash_parse(prefix, f.len, id)) {
		rc = topic_has(s, t, id);
		if (rc < 0)
			return rc;
		return rc ? 0 : lama_error(LAMA_ENOTFOUND, "no message %.64s in this topic", prefix);
	}
	if (f.len < 8 || f.len > LAMA_HASH_HEX || strspn(prefix, "0123456789abcdef") != f.len)
		return lama_error(LAMA_EINVAL, "a message id is 8 to 64 lower-case hex digits");
	rc = lama_chat_messages(s, t, NULL, scan, match_prefix, &f, NULL);
	if (rc)
		return rc;
	if (f.hits == 0)
		return lama_error(LAMA_ENOTFOUND, "no message %.64s among the newest %zu", prefix, scan);
	if (f.hits > 1)
		return lama_error(LAMA_EINVAL, "message id %.64s is ambiguous: give more digits", prefix);
	*id = f.id;
	return 0;
}

int lama_chat_mark_read(lama_session *s, const struct lama_topic *t, const lama_hash *msg)
{
	lama_hash newest, data;
	double time;
	json_t *o;
	int rc;

	if (!msg) {
		/* the newest entry of any log, edits included, so that nothing
		 * already there stays unread */
		struct source *src = NULL;
		struct lama_chan_entry *best = NULL;
		size_t n = 0, bi = 0;

		rc = sources_open(s, t, NULL, 0, &src, &n);
		if (!rc)
			rc = pick_newest(s, src, n, &bi, &best);
		if (!rc && best)
			newest = best->ct;
		lama_free(src);
		if (rc)
			return rc;
		if (!best)
			return 0; /* nothing to read */
		msg = &newest;
	} else {
		rc = topic_has(s, t, msg);
		if (rc <= 0)
			return rc < 0 ? rc : lama_error(LAMA_ENOTFOUND, "no such message in this topic");
	}
	if ((rc = load_ct(s, msg, &time, &data)))
		return rc;
	o = json_pack("{s:s, s:s, s:o, s:f, s:o}", "$type$", "LamaReadPosition", "topic", t->id,
		      "person", hex_json(lama_session_person(s)), "time", time, "entry", hex_json(msg));
	if (!o)
		return oom();
	rc = lama_archive_put(lama_session_archive(s), o, 0, NULL);
	json_decref(o);
	return rc;
}

/* ---- JSON, as the CLI's --json and the IPC protocol show them ---- */

json_t *lama_topic_json(const struct lama_topic *t)
{
	json_t *people = json_array();

	for (size_t i = 0; people && i < t->npeople; i++)
		if (json_array_append_new(people, hex_json(&t->people[i]))) {
			json_decref(people);
			return NULL;
		}
	if (!people)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:I, s:I, s:f}", "id", t->id, "handle",
			 t->handle, "title", t->title, "topic", hex_json(&t->topic), "group",
			 hex_json(&t->group), "participants", people, "ai", t->is_ai, "entries",
			 (json_int_t)t->entries, "unread", (json_int_t)t->unread, "last_time",
			 t->last_time);
}

json_t *lama_message_json(const struct lama_message *m, const char *sender_name)
{
	json_t *att = json_array(), *o;

	if (!att)
		return NULL;
	for (size_t i = 0; i < m->nattach; i++) {
		json_t *a = json_pack("{s:s, s:s, s:I, s:o}", "name", m->attach[i].name, "type",
				      m->attach[i].type, "size", (json_int_t)m->attach[i].size, "blob",
				      hex_json(&m->attach[i].blob));

		if (!a || json_array_append_new(att, a)) {
			json_decref(att);
			return NULL;
		}
	}
	o = json_pack("{s:o, s:f, s:o, s:s, s:s%, s:b, s:b, s:o}", "id", hex_json(&m->id), "time",
		      m->time, "sender", hex_json(&m->sender), "sender_name",
		      sender_name ? sender_name : "", "text", m->text, m->text_len, "edited", m->edited,
		      "deleted", m->deleted, "attachments", att);
	if (o && m->has_reply_to && json_object_set_new(o, "reply_to", hex_json(&m->reply_to))) {
		json_decref(o);
		return NULL;
	}
	return o;
}
