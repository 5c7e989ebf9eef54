/* channel.c: ONE's channels (ChannelInfo over a sorted linked list of
 * LinkedListEntry -> CreationTime), their merge rule and the position
 * index. Design: docs/channels.md. */
#include "channel/channel.h"
#include "channel/channel_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "util/mem.h"

/* JavaScript's Date range: a timestamp outside it is not a time ONE could
 * have written, so a CreationTime carrying one is refused. */
#define TIME_LIMIT 8.64e15
/* A ceiling for every walk down a list: hashing makes loops impossible,
 * and this makes a walk end whatever the input. */
#define WALK_MAX ((uint64_t)1 << 32)

#define ROW_BYTES (8 + 3 * LAMA_HASH_BYTES)
#define STATE_BYTES (4 + 8 + 1 + 2 * LAMA_HASH_BYTES)
#define NAME_MAX_LEN 128

static _Thread_local uint64_t loads;

uint64_t channel__loads(void)
{
	return loads;
}

/* One entry as the list and the index know it. */
struct ent {
	double time;
	lama_hash ct, data, entry;
};

struct list {
	struct ent *v;
	size_t n, cap;
};

static int list_push(struct list *l, const struct ent *e)
{
	if (lama_grow(&l->v, &l->cap, l->n, sizeof(*l->v), 64))
		return LAMA_ENOMEM;
	l->v[l->n++] = *e;
	return 0;
}

static void list_release(struct list *l)
{
	lama_free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The list order: by timestamp, then by the CreationTime hash. */
static int key_cmp(double t1, const lama_hash *c1, double t2, const lama_hash *c2)
{
	int k;

	if (t1 < t2)
		return -1;
	if (t1 > t2)
		return 1;
	k = memcmp(c1->b, c2->b, LAMA_HASH_BYTES);
	return (k > 0) - (k < 0);
}

static int ent_cmp(const struct ent *x, const struct ent *y)
{
	return key_cmp(x->time, &x->ct, y->time, &y->ct);
}

static int time_ok(double t)
{
	return isfinite(t) && t >= -TIME_LIMIT && t <= TIME_LIMIT;
}

/* ---- objects ---- */

static int get_typed(lama_archive *a, const lama_hash *h, const char *type, json_t **out)
{
	const char *t;
	int rc;

	rc = lama_archive_get(a, h, out);
	if (rc)
		return rc;
	t = json_string_value(json_object_get(*out, "$type$"));
	if (!t || strcmp(t, type)) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(h, hex);
		rc = lama_error(LAMA_ECORRUPT, "object %s is a %.64s, not a %s", hex, t ? t : "?",
				type);
		json_decref(*out);
		*out = NULL;
		return rc;
	}
	return 0;
}

/* 1 if o has the reference field f (parsed into *h), 0 if not. */
static int field_hash(const json_t *o, const char *f, lama_hash *h)
{
	json_t *v = json_object_get(o, f);

	if (!v)
		return 0;
	if (!json_is_string(v) || lama_hash_parse(json_string_value(v), json_string_length(v), h))
		return lama_error(LAMA_ECORRUPT, "%s: field %s is not a hash",
				  json_string_value(json_object_get(o, "$type$")), f);
	return 1;
}

static int load_ct(lama_archive *a, const lama_hash *ct, double *time, lama_hash *data)
{
	char hex[LAMA_HASH_HEX + 1];
	json_t *o, *ts;
	int rc;

	rc = get_typed(a, ct, "CreationTime", &o);
	if (rc)
		return rc;
	ts = json_object_get(o, "timestamp");
	if (!json_is_number(ts) || !time_ok(json_number_value(ts))) {
		lama_hash_hex(ct, hex);
		rc = lama_error(LAMA_ECORRUPT, "CreationTime %s: timestamp is not a time", hex);
	} else {
		*time = json_number_value(ts) + 0.0; /* -0 is 0 */
		rc = field_hash(o, "data", data);
		if (rc == 0) {
			lama_hash_hex(ct, hex);
			rc = lama_error(LAMA_ECORRUPT, "CreationTime %s has no data", hex);
		}
		if (rc > 0)
			rc = 0;
	}
	json_decref(o);
	return rc;
}

/* Reads the entry e: its CreationTime, what it names, and *prev (if
 * *has_prev). */
static int load_entry(lama_archive *a, const lama_hash *e, struct ent *out, lama_hash *prev,
		      int *has_prev)
{
	json_t *o;
	int rc;

	loads++;
	rc = get_typed(a, e, "LinkedListEntry", &o);
	if (rc)
		return rc;
	rc = field_hash(o, "data", &out->ct);
	if (rc == 0) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(e, hex);
		rc = lama_error(LAMA_ECORRUPT, "LinkedListEntry %s has no data", hex);
	}
	if (rc > 0) {
		rc = field_hash(o, "previous", prev);
		if (rc >= 0) {
			*has_prev = rc;
			rc = 0;
		}
	}
	json_decref(o);
	if (!rc)
		rc = load_ct(a, &out->ct, &out->time, &out->data);
	out->entry = *e;
	return rc;
}

static int put_obj(lama_archive *a, json_t *o, lama_hash *h)
{
	struct lama_put_info info;
	int rc;

	if (!o)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = lama_archive_put(a, o, 1, &info);
	json_decref(o);
	if (!rc)
		*h = info.hash;
	return rc;
}

static int put_ct(lama_archive *a, double t, const lama_hash *data, lama_hash *ct)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(data, hex);
	return put_obj(a, json_pack("{s:s, s:f, s:s}", "$type$", "CreationTime", "timestamp", t,
				    "data", hex), ct);
}

/* A LinkedListEntry for ct on top of prev (NULL: the bottom). */
static int put_entry(lama_archive *a, const lama_hash *ct, const lama_hash *prev, lama_hash *e)
{
	char hex[LAMA_HASH_HEX + 1], phex[LAMA_HASH_HEX + 1];

	lama_hash_hex(ct, hex);
	if (!prev)
		return put_obj(a, json_pack("{s:s, s:s}", "$type$", "LinkedListEntry", "data", hex), e);
	lama_hash_hex(prev, phex);
	return put_obj(a, json_pack("{s:s, s:s, s:s}", "$type$", "LinkedListEntry", "data", hex,
				    "previous", phex), e);
}

/* The head of a ChannelInfo: 1 (in *h) or 0 for none. */
static int info_head(const json_t *info, lama_hash *h)
{
	const char *t = json_string_value(json_object_get(info, "$type$"));

	if (!t || strcmp(t, "ChannelInfo"))
		return lama_error(LAMA_EINVAL, "not a ChannelInfo");
	return field_hash(info, "head", h);
}

/* ---- walking a list ---- */

/* A cursor down one list, checking on the way that it is strictly
 * newest-first. */
struct cursor {
	int has;       /* e names an entry; 0 past the bottom */
	lama_hash e;
	int loaded;    /* cur, prev, has_prev are e's */
	struct ent cur;
	lama_hash prev;
	int has_prev;
	int moved;     /* an entry was taken: last is its key */
	struct ent last;
	uint64_t steps;
};

static void cur_start(struct cursor *c, int has, const lama_hash *e)
{
	memset(c, 0, sizeof(*c));
	c->has = has;
	if (has)
		c->e = *e;
}

static int cur_check(const struct cursor *c)
{
	if (c->moved && ent_cmp(&c->cur, &c->last) >= 0) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&c->cur.entry, hex);
		return lama_error(LAMA_ECORRUPT, "channel list out of order at entry %s", hex);
	}
	return 0;
}

static int cur_load(lama_archive *a, struct cursor *c)
{
	int rc;

	if (c->loaded)
		return 0;
	rc = load_entry(a, &c->e, &c->cur, &c->prev, &c->has_prev);
	if (rc)
		return rc;
	c->loaded = 1;
	return cur_check(c);
}

static int cur_next(struct cursor *c)
{
	c->moved = 1;
	c->last = c->cur;
	c->has = c->has_prev;
	c->e = c->prev;
	c->loaded = 0;
	if (++c->steps > WALK_MAX)
		return lama_error(LAMA_ELIMIT, "channel list longer than %llu entries",
				  (unsigned long long)WALK_MAX);
	return 0;
}

/* Rebuilds the entries of col (newest first) on top of the list headed by
 * tail (has_tail); *out is the new head. */
static int rebuild(lama_archive *a, struct list *col, int has_tail, const lama_hash *tail,
		   int *has_out, lama_hash *out)
{
	lama_hash h;
	int has = has_tail, rc = 0;

	if (has)
		h = *tail;
	for (size_t i = col->n; i-- > 0 && !rc;) {
		rc = put_entry(a, &col->v[i].ct, has ? &h : NULL, &h);
		col->v[i].entry = h;
		has = 1;
	}
	if (!rc) {
		*has_out = has;
		if (has)
			*out = h;
	}
	return rc;
}

/* The list of the union of the entries of two lists: walks both
 * newest-first to their common tail and rebuilds what is above it. */
static int merge2(lama_archive *a, int hx, const lama_hash *x, int hy, const lama_hash *y,
		  int *hout, lama_hash *out)
{
	struct cursor cx, cy, *tail = NULL;
	struct list col = { 0 };
	int rc = 0, took_x = 0, took_y = 0, shared = 0;

	cur_start(&cx, hx, x);
	cur_start(&cy, hy, y);
	while (!rc) {
		int k;

		if (!cx.has || !cy.has) {
			tail = cx.has ? &cx : &cy;
			break;
		}
		if (lama_hash_eq(&cx.e, &cy.e)) {
			tail = &cx;
			shared = 1;
			break;
		}
		if ((rc = cur_load(a, &cx)) || (rc = cur_load(a, &cy)))
			break;
		k = ent_cmp(&cx.cur, &cy.cur);
		rc = list_push(&col, k >= 0 ? &cx.cur : &cy.cur);
		if (!rc && k >= 0) {
			took_x = 1;
			rc = cur_next(&cx);
		}
		if (!rc && k <= 0) {
			took_y = 1;
			rc = cur_next(&cy);
		}
	}
	if (rc)
		goto out;
	if (shared && (!took_x || !took_y)) {
		/* one list holds the other: it is the union already */
		*hout = took_x ? hx : hy;
		if (*hout)
			*out = took_x ? *x : *y;
		goto out;
	}
	/* the tail must be older than everything above it (each side checks
	 * against what it gave; a shared entry is read once) */
	if (col.n && shared) {
		struct cursor *l = cy.loaded ? &cy : &cx, *o = l == &cx ? &cy : &cx;

		if ((rc = cur_load(a, l)))
			goto out;
		o->cur = l->cur;
		o->loaded = 1;
		if ((rc = cur_check(o)))
			goto out;
	} else if (col.n && tail->has && (rc = cur_load(a, tail))) {
		goto out;
	}
	rc = rebuild(a, &col, tail->has, &tail->e, hout, out);
out:
	list_release(&col);
	return rc;
}

/* The archive's merge rule for ChannelInfo: the list of the union of the
 * heads' entries. The lists are canonical, so folding pairwise gives the
 * same list whatever the order of the heads. */
static int channel_merge(void *ctx, lama_archive *a, json_t *const *heads, size_t n,
			 json_t **merged)
{
	lama_hash acc, h;
	int has, hh, rc;
	json_t *m;

	(void)ctx;
	*merged = NULL;
	rc = info_head(heads[0], &acc);
	if (rc < 0)
		return rc;
	has = rc;
	for (size_t i = 1; i < n; i++) {
		rc = info_head(heads[i], &h);
		if (rc < 0)
			return rc;
		hh = rc;
		rc = merge2(a, has, &acc, hh, &h, &has, &acc);
		if (rc)
			return rc;
	}
	m = json_deep_copy(heads[0]);
	if (!m)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (has) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&acc, hex);
		rc = json_object_set_new(m, "head", json_string(hex));
	} else {
		json_object_del(m, "head"); /* absent already is fine */
	}
	if (rc) {
		json_decref(m);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	*merged = m;
	return 0;
}

int lama_channel_init(lama_archive *a)
{
	int rc;

	if ((rc = lama_archive_set_merger(a, "ChannelInfo", channel_merge, NULL)))
		return rc;
	/* a list entry's neighbours are found forwards and through the
	 * position index, never backwards: two reverse-map rows per entry
	 * saved */
	return lama_archive_set_unindexed(a, "LinkedListEntry");
}

/* ---- channels ---- */

/* A ChannelInfo without head (*out a new reference). */
static int info_new(const char *id, const lama_hash *owner, json_t **out)
{
	size_t n = id ? strlen(id) : 0;
	json_t *o, *s;

	*out = NULL;
	if (n == 0 || n > LAMA_CHANNEL_ID_MAX)
		return lama_error(LAMA_EINVAL, "a channel id is 1..%d bytes", LAMA_CHANNEL_ID_MAX);
	/* jansson refuses text that is not UTF-8 */
	if (!(s = json_stringn(id, n)))
		return lama_error(LAMA_EINVAL, "a channel id must be UTF-8 text");
	o = json_pack("{s:s, s:o}", "$type$", "ChannelInfo", "id", s);
	if (o && owner) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(owner, hex);
		if (json_object_set_new(o, "owner", json_string(hex))) {
			json_decref(o);
			o = NULL;
		}
	}
	if (!o)
		return lama_error(LAMA_ENOMEM, "out of memory");
	*out = o;
	return 0;
}

int lama_channel_idhash(lama_archive *a, const char *id, const lama_hash *owner, lama_hash *chan)
{
	json_t *o;
	int rc;

	if ((rc = info_new(id, owner, &o)))
		return rc;
	rc = lama_object_hash(lama_archive_recipes(a), o, NULL, chan);
	json_decref(o);
	return rc;
}

int lama_channel_create(lama_archive *a, const char *id, const lama_hash *owner, lama_hash *chan)
{
	lama_hash idh, *heads = NULL;
	size_t n = 0;
	json_t *o;
	int rc;

	if ((rc = lama_channel_idhash(a, id, owner, &idh)))
		return rc;
	if (chan)
		*chan = idh;
	rc = lama_store_heads_get(lama_archive_store(a), &idh, &heads, &n);
	lama_free(heads);
	if (rc || n)
		return rc;
	if ((rc = info_new(id, owner, &o)))
		return rc;
	rc = lama_archive_put(a, o, 0, NULL);
	json_decref(o);
	return rc;
}

/* ---- the position index ---- */

struct state {
	int valid;
	uint64_t count;
	int has_head;
	lama_hash head; /* the indexed list */
	lama_hash info; /* the ChannelInfo it was read from */
};

/* A channel opened for one call: its current version and its index. */
struct chan {
	lama_hash id;
	char hex[LAMA_HASH_HEX + 1];
	lama_hash info;
	json_t *obj; /* the current ChannelInfo, when needed */
	struct state st;
	int top_ok;     /* top is the entry at st.count - 1 */
	struct ent top;
	struct lama_buf buf;
};

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int row_get(lama_archive *a, struct chan *c, uint64_t pos, struct ent *e)
{
	char name[NAME_MAX_LEN];
	const uint8_t *p;
	uint64_t bits;
	int rc;

	snprintf(name, sizeof(name), "ch/%s/%llu", c->hex, (unsigned long long)pos);
	lama_buf_truncate(&c->buf, 0);
	rc = lama_store_kv_get(lama_archive_store(a), name, &c->buf);
	if (rc == LAMA_ENOTFOUND)
		return lama_error(LAMA_ECORRUPT, "channel %s: index row %llu is missing", c->hex,
				  (unsigned long long)pos);
	if (rc)
		return rc;
	p = (const uint8_t *)c->buf.data;
	if (c->buf.len != ROW_BYTES)
		return lama_error(LAMA_ECORRUPT, "channel %s: bad index row %llu", c->hex,
				  (unsigned long long)pos);
	bits = get_u64(p);
	memcpy(&e->time, &bits, 8);
	if (!time_ok(e->time))
		return lama_error(LAMA_ECORRUPT, "channel %s: bad index row %llu", c->hex,
				  (unsigned long long)pos);
	memcpy(e->ct.b, p + 8, 32);
	memcpy(e->data.b, p + 40, 32);
	memcpy(e->entry.b, p + 72, 32);
	return 0;
}

static int row_put(lama_archive *a, struct chan *c, uint64_t pos, const struct ent *e)
{
	char name[NAME_MAX_LEN];
	uint8_t row[ROW_BYTES];
	uint64_t bits;

	snprintf(name, sizeof(name), "ch/%s/%llu", c->hex, (unsigned long long)pos);
	memcpy(&bits, &e->time, 8);
	put_u64(row, bits);
	memcpy(row + 8, e->ct.b, 32);
	memcpy(row + 40, e->data.b, 32);
	memcpy(row + 72, e->entry.b, 32);
	return lama_store_kv_put(lama_archive_store(a), name, row, sizeof(row));
}

static int row_del(lama_archive *a, struct chan *c, uint64_t pos)
{
	char name[NAME_MAX_LEN];

	snprintf(name, sizeof(name), "ch/%s/%llu", c->hex, (unsigned long long)pos);
	return lama_store_kv_del(lama_archive_store(a), name);
}

static int state_get(lama_archive *a, struct chan *c)
{
	char name[NAME_MAX_LEN];
	const uint8_t *p;
	int rc;

	memset(&c->st, 0, sizeof(c->st));
	snprintf(name, sizeof(name), "ch/%s/state", c->hex);
	lama_buf_truncate(&c->buf, 0);
	rc = lama_store_kv_get(lama_archive_store(a), name, &c->buf);
	if (rc == LAMA_ENOTFOUND)
		return 0; /* never indexed */
	if (rc)
		return rc;
	p = (const uint8_t *)c->buf.data;
	if (c->buf.len != STATE_BYTES || memcmp(p, "LCI1", 4) || p[12] > 1)
		return lama_error(LAMA_ECORRUPT, "channel %s: bad index state", c->hex);
	c->st.valid = 1;
	c->st.count = get_u64(p + 4);
	c->st.has_head = p[12];
	memcpy(c->st.head.b, p + 13, 32);
	memcpy(c->st.info.b, p + 45, 32);
	return 0;
}

static int state_put(lama_archive *a, struct chan *c)
{
	char name[NAME_MAX_LEN];
	uint8_t s[STATE_BYTES] = { 0 };

	snprintf(name, sizeof(name), "ch/%s/state", c->hex);
	memcpy(s, "LCI1", 4);
	put_u64(s + 4, c->st.count);
	s[12] = (uint8_t)c->st.has_head;
	if (c->st.has_head)
		memcpy(s + 13, c->st.head.b, 32);
	memcpy(s + 45, c->st.info.b, 32);
	c->st.valid = 1;
	return lama_store_kv_put(lama_archive_store(a), name, s, sizeof(s));
}

/* Brings the index from the list it holds to the list headed by hn (has):
 * walks the new list and the indexed one newest-first to their common
 * tail, whose position the index knows, and rewrites the positions above
 * it. */
static int index_sync(lama_archive *a, struct chan *c, int has, const lama_hash *hn)
{
	struct list col = { 0 };
	struct cursor x;
	struct ent row;
	uint64_t pb = c->st.valid ? c->st.count : 0, old = pb, base = 0, count;
	int rc = 0;

	cur_start(&x, has, hn);
	while (!rc) {
		int k;

		if (!x.has)
			break; /* nothing below: the new list is what was taken */
		if (pb == 0) {
			/* the index is exhausted: the rest is all new to it */
			while (!rc && x.has) {
				if (!(rc = cur_load(a, &x)) && !(rc = list_push(&col, &x.cur)))
					rc = cur_next(&x);
			}
			break;
		}
		if ((rc = row_get(a, c, pb - 1, &row)))
			break;
		if (lama_hash_eq(&x.e, &row.entry)) {
			base = pb;
			if (col.n && ent_cmp(&col.v[col.n - 1], &row) <= 0)
				rc = lama_error(LAMA_ECORRUPT, "channel %s: list out of order", c->hex);
			break;
		}
		if ((rc = cur_load(a, &x)))
			break;
		k = ent_cmp(&x.cur, &row);
		if (k >= 0 && !(rc = list_push(&col, &x.cur)))
			rc = cur_next(&x);
		if (k <= 0)
			pb--;
	}
	count = base + col.n;
	for (size_t i = 0; i < col.n && !rc; i++)
		rc = row_put(a, c, base + i, &col.v[col.n - 1 - i]);
	for (uint64_t p = count; p < old && !rc; p++)
		rc = row_del(a, c, p);
	if (!rc) {
		c->st.count = count;
		c->st.has_head = has;
		if (has)
			c->st.head = *hn;
		c->st.info = c->info;
		rc = state_put(a, c);
	}
	list_release(&col);
	return rc;
}

static void chan_release(struct chan *c)
{
	json_decref(c->obj);
	c->obj = NULL;
	lama_buf_release(&c->buf);
}

/* Opens a channel for one call: merges concurrent versions, brings the
 * index up to date; c->obj is the current ChannelInfo when need_obj.
 * Release with chan_release, also on failure. */
static int chan_open(lama_archive *a, const lama_hash *chan, struct chan *c, int need_obj)
{
	lama_store *st = lama_archive_store(a);
	lama_hash h;
	int rc, has;

	memset(c, 0, sizeof(*c));
	c->id = *chan;
	lama_hash_hex(chan, c->hex);
	c->buf = (struct lama_buf)LAMA_BUF_INIT(4096);
	rc = lama_archive_current(a, chan, &c->info);
	if (rc == LAMA_ENOTFOUND)
		return lama_error(LAMA_ENOTFOUND, "no channel %s", c->hex);
	if (rc || (rc = state_get(a, c)))
		return rc;
	if (c->st.valid && lama_hash_eq(&c->st.info, &c->info) && !need_obj)
		return 0;
	if ((rc = lama_archive_get(a, &c->info, &c->obj)))
		return rc;
	if ((rc = info_head(c->obj, &h)) == LAMA_EINVAL)
		return lama_error(LAMA_EINVAL, "%s is not a channel", c->hex);
	if (rc < 0)
		return rc;
	has = rc;
	if (c->st.valid && lama_hash_eq(&c->st.info, &c->info))
		return 0;
	if ((rc = lama_store_begin(st)))
		return rc;
	if (c->st.valid && c->st.has_head == has && (!has || lama_hash_eq(&h, &c->st.head))) {
		c->st.info = c->info; /* another version of the same list */
		rc = state_put(a, c);
	} else {
		rc = index_sync(a, c, has, &h);
	}
	if (rc) {
		lama_store_rollback(st);
		return rc;
	}
	return lama_store_commit(st);
}

static void ent_out(const struct ent *e, uint64_t pos, struct lama_chan_entry *o)
{
	o->pos = pos;
	o->time = e->time;
	o->ct = e->ct;
	o->data = e->data;
	o->entry = e->entry;
}

/* The number of entries ordered at or before (time, ct); ct NULL: every
 * entry at that time counts. */
static int rank(lama_archive *a, struct chan *c, double time, const lama_hash *ct,
		uint64_t *n)
{
	uint64_t lo = 0, hi = c->st.count;
	struct ent e;
	int rc;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int le;

		if ((rc = row_get(a, c, mid, &e)))
			return rc;
		le = ct ? key_cmp(e.time, &e.ct, time, ct) <= 0 : e.time <= time;
		if (le)
			lo = mid + 1;
		else
			hi = mid;
	}
	*n = lo;
	return 0;
}

/* The newest entry of a non-empty list, read once per call. */
static int top_get(lama_archive *a, struct chan *c, struct ent *top)
{
	int rc;

	if (!c->top_ok) {
		if ((rc = row_get(a, c, c->st.count - 1, &c->top)))
			return rc;
		c->top_ok = 1;
	}
	*top = c->top;
	return 0;
}

/* Puts e (its ct known, not yet in the list) into the list in order: on
 * top when it is the newest, else at its place, rebuilding the entries
 * above it. *pos is where it went; *moved is set when entries moved up. */
static int insert(lama_archive *a, struct chan *c, struct ent *e, uint64_t *pos, int *moved)
{
	struct list above = { 0 };
	uint64_t q = c->st.count;
	struct ent below;
	int rc = 0;

	if (q > 0) {
		if ((rc = top_get(a, c, &below)))
			return rc;
		if (ent_cmp(e, &below) < 0) {
			if ((rc = rank(a, c, e->time, &e->ct, &q)))
				return rc;
			if (q > 0)
				rc = row_get(a, c, q - 1, &below);
		}
	}
	for (uint64_t p = q; p < c->st.count && !rc; p++) {
		struct ent r;

		if (!(rc = row_get(a, c, p, &r)))
			rc = list_push(&above, &r);
	}
	if (!rc)
		rc = put_entry(a, &e->ct, q > 0 ? &below.entry : NULL, &e->entry);
	if (!rc)
		rc = row_put(a, c, q, e);
	for (size_t i = 0; i < above.n && !rc; i++) {
		const lama_hash *prev = i ? &above.v[i - 1].entry : &e->entry;

		if (!(rc = put_entry(a, &above.v[i].ct, prev, &above.v[i].entry)))
			rc = row_put(a, c, q + 1 + i, &above.v[i]);
	}
	if (!rc) {
		c->st.count++;
		c->st.has_head = 1;
		c->top = above.n ? above.v[above.n - 1] : *e;
		c->top_ok = 1;
		c->st.head = c->top.entry;
		*pos = q;
		if (above.n)
			*moved = 1;
	}
	list_release(&above);
	return rc;
}

/* 0 and the entry of ct (with its position) if the list has it, 1 if not. */
static int lookup(lama_archive *a, struct chan *c, double time, const lama_hash *ct,
		  struct ent *e, uint64_t *pos)
{
	uint64_t n;
	int rc;

	if ((rc = rank(a, c, time, ct, &n)))
		return rc;
	if (n == 0)
		return 1;
	if ((rc = row_get(a, c, n - 1, e)))
		return rc;
	if (!lama_hash_eq(&e->ct, ct))
		return 1;
	*pos = n - 1;
	return 0;
}

int lama_channel_append(lama_archive *a, const lama_hash *chan, const lama_hash *data,
			const double *times, size_t n, struct lama_chan_entry *out)
{
	lama_store *st = lama_archive_store(a);
	struct chan c;
	double last = 0;
	int rc, mid = 0, changed = 0;

	if (n && !data)
		return lama_error(LAMA_EINVAL, "nothing to append");
	for (size_t i = 0; times && i < n; i++)
		if (!time_ok(times[i]))
			return lama_error(LAMA_EINVAL, "entry %zu: a time must be finite, within "
					  "JavaScript's Date range", i);
	if ((rc = lama_store_begin(st)))
		return rc;
	if ((rc = chan_open(a, chan, &c, 1)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct ent e;
		uint64_t pos;
		int k;

		if ((k = lama_store_has(st, &data[i])) <= 0) {
			char hex[LAMA_HASH_HEX + 1];

			lama_hash_hex(&data[i], hex);
			rc = k < 0 ? k : lama_error(LAMA_ENOTFOUND, "entry %zu: no object %s", i, hex);
			goto fail;
		}
		if (times) {
			e.time = times[i] + 0.0;
		} else {
			/* strictly later than the one before, so that equal
			 * times never let the hash order put it first */
			e.time = lama_archive_now();
			if (i && e.time <= last)
				e.time = last + 1;
			last = e.time;
		}
		e.data = data[i];
		if ((rc = put_ct(a, e.time, &data[i], &e.ct)))
			goto fail;
		/* the usual case, newest of all, costs no lookup */
		k = 1;
		if (c.st.count) {
			struct ent top, have;

			if ((rc = top_get(a, &c, &top)))
				goto fail;
			if (ent_cmp(&e, &top) <= 0) {
				k = lookup(a, &c, e.time, &e.ct, &have, &pos);
				if (k < 0) {
					rc = k;
					goto fail;
				}
				if (k == 0)
					e = have; /* already in the list: one entry */
			}
		}
		if (k) {
			if ((rc = insert(a, &c, &e, &pos, &mid)))
				goto fail;
			changed = 1;
		}
		if (out)
			ent_out(&e, pos, &out[i]);
	}
	if (changed) {
		struct lama_put_info info;
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&c.st.head, hex);
		if (json_object_set_new(c.obj, "head", json_string(hex))) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto fail;
		}
		if ((rc = lama_archive_put(a, c.obj, 0, &info)))
			goto fail;
		c.info = c.st.info = info.hash;
		if ((rc = state_put(a, &c)))
			goto fail;
	}
	/* an entry put below others moved those appended before it */
	for (size_t i = 0; mid && out && i < n && !rc; i++) {
		struct ent e;
		uint64_t pos;

		rc = lookup(a, &c, out[i].time, &out[i].ct, &e, &pos);
		if (rc > 0)
			rc = lama_error(LAMA_ECORRUPT, "channel %s: an appended entry is lost", c.hex);
		else if (!rc)
			ent_out(&e, pos, &out[i]);
	}
	if (rc)
		goto fail;
	chan_release(&c);
	return lama_store_commit(st);
fail:
	chan_release(&c);
	lama_store_rollback(st);
	return rc;
}

int lama_channel_count(lama_archive *a, const lama_hash *chan, uint64_t *count, lama_hash *head)
{
	struct chan c;
	int rc;

	rc = chan_open(a, chan, &c, 0);
	if (!rc) {
		*count = c.st.count;
		if (head) {
			memset(head, 0, sizeof(*head));
			if (c.st.has_head)
				*head = c.st.head;
		}
	}
	chan_release(&c);
	return rc;
}

int lama_channel_read(lama_archive *a, const lama_hash *chan, uint64_t from, int dir,
		      struct lama_chan_entry *out, size_t max, size_t *got)
{
	struct chan c;
	int rc;

	*got = 0;
	if (dir == 0)
		return lama_error(LAMA_EINVAL, "a read goes to older (dir < 0) or newer entries");
	rc = chan_open(a, chan, &c, 0);
	for (uint64_t p = from; !rc && *got < max && p < c.st.count;) {
		struct ent e;

		if ((rc = row_get(a, &c, p, &e)))
			break;
		ent_out(&e, p, &out[(*got)++]);
		if (dir < 0) {
			if (p == 0)
				break;
			p--;
		} else {
			p++;
		}
	}
	chan_release(&c);
	if (rc)
		*got = 0;
	return rc;
}

int lama_channel_seek(lama_archive *a, const lama_hash *chan, double time, const lama_hash *ct,
		      uint64_t *pos)
{
	struct chan c;
	uint64_t n = 0;
	int rc;

	if (isnan(time))
		return lama_error(LAMA_EINVAL, "seek to a time that is not a number");
	rc = chan_open(a, chan, &c, 0);
	if (!rc)
		rc = rank(a, &c, time, ct, &n);
	if (!rc)
		*pos = n ? n - 1 : UINT64_MAX;
	chan_release(&c);
	return rc;
}

int lama_channel_find(lama_archive *a, const lama_hash *chan, const lama_hash *ct,
		      struct lama_chan_entry *out)
{
	struct chan c;
	struct ent e;
	uint64_t pos = 0;
	double time = 0;
	lama_hash data;
	int rc;

	rc = load_ct(a, ct, &time, &data);
	if (rc == LAMA_ECORRUPT) { /* not a CreationTime: no channel has it */
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(ct, hex);
		rc = lama_error(LAMA_ENOTFOUND, "%s is not a CreationTime of any channel", hex);
	}
	if (rc)
		return rc;
	rc = chan_open(a, chan, &c, 0);
	if (!rc)
		rc = lookup(a, &c, time, ct, &e, &pos);
	if (rc > 0)
		rc = lama_error(LAMA_ENOTFOUND, "channel %s has no such entry", c.hex);
	if (!rc)
		ent_out(&e, pos, out);
	chan_release(&c);
	return rc;
}
