/* archive.c: objects, ID objects, version nodes and reverse maps. The
 * merge of concurrent heads is in merge.c. */
#include "archive/archive.h"
#include "archive/archive_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "util/err.h"
#include "util/mem.h"

int lama_archive_new(lama_archive **out, lama_store *st, const lama_recipes *r)
{
	lama_archive *a = lama_calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return lama_error(LAMA_ENOMEM, "out of memory");
	a->st = st;
	a->recipes = r;
	a->scratch = (struct lama_buf)LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	*out = a;
	return 0;
}

void lama_archive_free(lama_archive *a)
{
	if (!a)
		return;
	lama_buf_release_wipe(&a->scratch);
	lama_free(a);
}

lama_store *lama_archive_store(lama_archive *a)
{
	return a->st;
}

const lama_recipes *lama_archive_recipes(lama_archive *a)
{
	return a->recipes;
}

static struct archive_rule *rule_slot(lama_archive *a, const char *type, const char *field)
{
	for (size_t i = 0; i < a->nrules; i++) {
		struct archive_rule *r = &a->rules[i];

		if (!strcmp(r->type, type) &&
		    ((!field && !r->field) || (field && r->field && !strcmp(field, r->field))))
			return r;
	}
	if (a->nrules == LAMA_ARCHIVE_RULES)
		return NULL;
	return &a->rules[a->nrules++];
}

int lama_archive_set_merger(lama_archive *a, const char *type, lama_merge_fn fn, void *ctx)
{
	struct archive_rule *r;

	if (!type || !fn)
		return lama_error(LAMA_EINVAL, "a merger needs a type and a function");
	if (!(r = rule_slot(a, type, NULL)))
		return lama_error(LAMA_ELIMIT, "too many merge rules");
	*r = (struct archive_rule){ .type = type, .fn = fn, .ctx = ctx };
	return 0;
}

int lama_archive_set_rule(lama_archive *a, const char *type, const char *field,
			  enum lama_crdt_rule rule)
{
	struct archive_rule *r;

	if (!type || !field)
		return lama_error(LAMA_EINVAL, "a field rule needs a type and a field");
	if (!(r = rule_slot(a, type, field)))
		return lama_error(LAMA_ELIMIT, "too many merge rules");
	*r = (struct archive_rule){ .type = type, .field = field, .rule = rule };
	return 0;
}

int lama_archive_set_unindexed(lama_archive *a, const char *type)
{
	if (!type || !*type)
		return lama_error(LAMA_EINVAL, "an unindexed type needs a name");
	for (size_t i = 0; i < a->nunindexed; i++)
		if (!strcmp(a->unindexed[i], type))
			return 0;
	if (a->nunindexed == LAMA_ARCHIVE_RULES)
		return lama_error(LAMA_ELIMIT, "too many unindexed types");
	a->unindexed[a->nunindexed++] = type;
	return 0;
}

int lama_archive_is_unindexed(const lama_archive *a, const char *type)
{
	for (size_t i = 0; i < a->nunindexed; i++)
		if (!strcmp(a->unindexed[i], type))
			return 1;
	return 0;
}

const struct archive_rule *archive__rule(const lama_archive *a, const char *type,
					 const char *field)
{
	for (size_t i = 0; i < a->nrules; i++) {
		const struct archive_rule *r = &a->rules[i];

		if (!strcmp(r->type, type) &&
		    ((!field && !r->field) || (field && r->field && !strcmp(field, r->field))))
			return r;
	}
	return NULL;
}

double lama_archive_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

const char *archive__type(const json_t *obj)
{
	const char *t = json_string_value(json_object_get(obj, "$type$"));

	return t ? t : "";
}

struct ref_ctx {
	lama_store *st;
	const char *type;
	const lama_hash *src;
};

static int add_ref(void *ctx, const char *itemprop, enum lama_ref_kind kind, const lama_hash *target)
{
	struct ref_ctx *c = ctx;

	(void)itemprop;
	(void)kind;
	return lama_store_ref_add(c->st, target, c->type, c->src);
}

/* Stores an object (and its ID object) with reverse maps; no versioning. */
int archive__store(lama_archive *a, const json_t *obj, struct lama_put_info *info)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	struct ref_ctx rc_ctx;
	const char *type;
	int rc, v;

	memset(info, 0, sizeof(*info));
	if (!json_is_object(obj))
		return lama_error(LAMA_EINVAL, "an object must be a JSON object");
	type = archive__type(obj);
	v = lama_recipes_is_versioned(a->recipes, type);
	if (v < 0)
		return v;
	rc = lama_object_microdata(a->recipes, obj, &md);
	if (rc)
		goto out;
	rc = lama_store_begin(a->st);
	if (rc)
		goto out;
	rc = lama_store_put(a->st, LAMA_KIND_OBJECT, md.data, md.len, &info->hash, &info->is_new);
	if (!rc && v) {
		info->versioned = 1;
		lama_buf_truncate(&md, 0);
		rc = lama_object_id_microdata(a->recipes, obj, &md);
		if (!rc)
			rc = lama_store_put(a->st, LAMA_KIND_ID, md.data, md.len, &info->id_hash, NULL);
	}
	if (!rc && info->is_new && !lama_archive_is_unindexed(a, type)) {
		rc_ctx.st = a->st;
		rc_ctx.type = type;
		rc_ctx.src = &info->hash;
		rc = lama_object_foreach_ref(a->recipes, obj, add_ref, &rc_ctx);
	}
	if (rc) {
		lama_store_rollback(a->st);
		goto out;
	}
	rc = lama_store_commit(a->st);
out:
	lama_buf_release(&md);
	return rc;
}

int lama_archive_get(lama_archive *a, const lama_hash *h, json_t **out)
{
	/* reads reuse one buffer: no allocation per object */
	struct lama_buf *md = &a->scratch;
	enum lama_store_kind kind;
	int rc;

	*out = NULL;
	rc = lama_store_get(a->st, h, &kind, md);
	if (!rc && kind == LAMA_KIND_CLOB)
		rc = lama_error(LAMA_EINVAL, "that hash names a CLOB, not an object");
	if (!rc) {
		/* the bytes were authenticated and matched their hash, and only
		 * lama's serializer writes this store: no canonical-form check */
		rc = lama_object_parse_trusted(a->recipes, md->data, md->len, out, NULL);
		if (rc && rc != LAMA_ENOMEM) {
			/* the message is copied: lama_error writes where
			 * lama_errmsg points */
			char hex[LAMA_HASH_HEX + 1], why[200];

			snprintf(why, sizeof(why), "%s", lama_errmsg());
			lama_hash_hex(h, hex);
			rc = lama_error(LAMA_ECORRUPT, "object %s: stored microdata does not parse: %s",
					hex, why);
		}
	}
	/* no plaintext lingers; a buffer grown by a huge object is let go */
	if (md->cap > ((size_t)1 << 20))
		lama_buf_release_wipe(md);
	else if (md->data)
		sodium_memzero(md->data, md->cap);
	md->len = 0;
	return rc;
}

/* 1 if s[0..n) is UTF-8 as RFC 3629 has it: shortest forms only, no
 * surrogates, nothing above U+10FFFF. Allocates nothing, so that running
 * out of memory is not mistaken for bad text. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, min, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, min = 0x80, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, min = 0x800, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, min = 0x10000, cp = c & 0x07;
		else
			return 0;
		if (n - i - 1 < need)
			return 0;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

int lama_archive_put_clob(lama_archive *a, const char *text, size_t n, lama_hash *hash)
{
	if (!utf8_valid((const unsigned char *)text, n))
		return lama_error(LAMA_EINVAL, "a CLOB must be valid UTF-8 text");
	return lama_store_put(a->st, LAMA_KIND_CLOB, text, n, hash, NULL);
}

/* ---- version nodes ---- */

int archive__node_load(lama_archive *a, const lama_hash *h, struct archive_node *n)
{
	json_t *o, *v;
	const char *t;
	int rc;

	memset(n, 0, sizeof(*n));
	rc = lama_archive_get(a, h, &o);
	if (rc)
		return rc;
	n->hash = *h;
	t = archive__type(o);
	if (!strcmp(t, "VersionNodeEdge"))
		n->kind = NODE_EDGE;
	else if (!strcmp(t, "VersionNodeChange"))
		n->kind = NODE_CHANGE;
	else if (!strcmp(t, "VersionNodeMerge"))
		n->kind = NODE_MERGE;
	else {
		json_decref(o);
		return lama_error(LAMA_EINVAL, "not a version node");
	}
	n->depth = json_number_value(json_object_get(o, "depth"));
	n->time = json_number_value(json_object_get(o, "creationTime"));
	rc = lama_hash_parse(json_string_value(json_object_get(o, "data")),
			     json_string_length(json_object_get(o, "data")), &n->data);
	if (!rc && n->kind == NODE_CHANGE && (v = json_object_get(o, "prev"))) {
		n->nparents = 1;
		n->parents = lama_malloc(sizeof(lama_hash));
		rc = n->parents ? lama_hash_parse(json_string_value(v), json_string_length(v), n->parents)
				: lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (!rc && n->kind == NODE_MERGE) {
		json_t *set = json_object_get(json_object_get(o, "nodes"), "$set");
		size_t i;

		n->nparents = json_array_size(set);
		n->parents = lama_calloc(n->nparents, sizeof(lama_hash));
		if (!n->parents)
			rc = lama_error(LAMA_ENOMEM, "out of memory");
		json_array_foreach(set, i, v) {
			if (rc)
				break;
			rc = lama_hash_parse(json_string_value(v), json_string_length(v), &n->parents[i]);
		}
	}
	json_decref(o);
	if (rc)
		archive__node_release(n);
	return rc;
}

void archive__node_release(struct archive_node *n)
{
	lama_free(n->parents);
	n->parents = NULL;
	n->nparents = 0;
}

static json_t *hash_json(const lama_hash *h)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(h, hex);
	return json_string(hex);
}

/* Stores a version node object and indexes it under its ID. *known (may be
 * NULL) tells whether the node was already part of the ID's history: stored
 * and indexed under the ID. */
int archive__node_store(lama_archive *a, json_t *node, const lama_hash *id, lama_hash *out,
			int *known)
{
	struct lama_put_info info;
	int rc, k = 0;

	rc = archive__store(a, node, &info);
	if (!rc && !info.is_new) {
		/* one row looked up, not the ID's whole history */
		k = lama_store_ref_has(a->st, id, archive__type(node), &info.hash);
		if (k < 0)
			rc = k;
	}
	if (!rc && !k)
		rc = lama_store_ref_add(a->st, id, archive__type(node), &info.hash);
	if (!rc) {
		*out = info.hash;
		if (known)
			*known = k;
	}
	return rc;
}

int lama_archive_heads(lama_archive *a, const lama_hash *id, lama_hash **nodes, size_t *n)
{
	return lama_store_heads_get(a->st, id, nodes, n);
}

/* Replaces `prev` (if among the heads) with `node`, keeping the others. */
static int heads_advance(lama_archive *a, const lama_hash *id, const lama_hash *prev,
			 const lama_hash *node)
{
	lama_hash *heads, *next;
	size_t n, m = 0;
	int rc;

	rc = lama_store_heads_get(a->st, id, &heads, &n);
	if (rc)
		return rc;
	next = lama_calloc(n + 1, sizeof(lama_hash));
	if (!next) {
		lama_free(heads);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (lama_hash_eq(&heads[i], node))
			continue;
		if (prev && lama_hash_eq(&heads[i], prev))
			continue;
		next[m++] = heads[i];
	}
	next[m++] = *node;
	rc = lama_store_heads_set(a->st, id, next, m);
	lama_free(heads);
	lama_free(next);
	return rc;
}

/* Records obj as the version after node p (NULL: a first version). p has
 * been checked to belong to obj's ID. */
static int put_after(lama_archive *a, const json_t *obj, const struct archive_node *p,
		     double creation_time, struct lama_put_info *info)
{
	json_t *node = NULL;
	int rc, known = 0;

	rc = archive__store(a, obj, info);
	if (rc)
		return rc;
	if (!info->versioned)
		return lama_error(LAMA_EINVAL, "type %s has no ID fields, so it has no versions",
				  archive__type(obj));
	if (p)
		node = json_pack("{s:s, s:o, s:o, s:f, s:f}", "$type$", "VersionNodeChange",
				 "prev", hash_json(&p->hash), "data", hash_json(&info->hash),
				 "depth", p->depth + 1, "creationTime", creation_time);
	else
		node = json_pack("{s:s, s:o, s:f, s:f}", "$type$", "VersionNodeEdge",
				 "data", hash_json(&info->hash), "depth", 0.0,
				 "creationTime", creation_time);
	if (!node)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = archive__node_store(a, node, &info->id_hash, &info->node, &known);
	/* a version that arrives again is already in the history (a head, or
	 * behind one): the heads stay as they are */
	if (!rc && !known)
		rc = heads_advance(a, &info->id_hash, p ? &p->hash : NULL, &info->node);
	json_decref(node);
	return rc;
}

static int check_time(double *creation_time)
{
	if (!isfinite(*creation_time) || *creation_time < 0)
		return lama_error(LAMA_EINVAL, "a creation time must be a finite number >= 0");
	if (*creation_time == 0)
		*creation_time = lama_archive_now();
	return 0;
}

int lama_archive_put_version(lama_archive *a, const json_t *obj, const lama_hash *prev,
			     double creation_time, struct lama_put_info *info)
{
	struct lama_put_info mine;
	struct archive_node p = { 0 };
	json_t *pobj = NULL;
	lama_hash id, pid;
	int rc;

	if (!info)
		info = &mine;
	if ((rc = check_time(&creation_time)))
		return rc;
	rc = lama_store_begin(a->st);
	if (rc)
		return rc;
	if (prev) {
		/* a predecessor from elsewhere must be a version of the same ID */
		rc = lama_object_hash(a->recipes, obj, NULL, &id);
		if (!rc)
			rc = archive__node_load(a, prev, &p);
		if (!rc)
			rc = lama_archive_get(a, &p.data, &pobj);
		if (!rc)
			rc = lama_object_hash(a->recipes, pobj, NULL, &pid);
		if (!rc && !lama_hash_eq(&pid, &id))
			rc = lama_error(LAMA_EINVAL, "the previous version belongs to another ID");
	}
	if (!rc)
		rc = put_after(a, obj, prev ? &p : NULL, creation_time, info);
	json_decref(pobj);
	archive__node_release(&p);
	if (rc) {
		lama_store_rollback(a->st);
		return rc;
	}
	return lama_store_commit(a->st);
}

int lama_archive_put(lama_archive *a, const json_t *obj, double creation_time,
		     struct lama_put_info *info)
{
	struct lama_put_info mine;
	struct archive_node head = { 0 };
	lama_hash id, h, node;
	int rc, v, have_head = 0;

	if (!info)
		info = &mine;
	if ((rc = check_time(&creation_time)))
		return rc;
	v = lama_recipes_is_versioned(a->recipes, archive__type(obj));
	if (v < 0)
		return v;
	if (!v)
		return archive__store(a, obj, info);
	rc = lama_object_hash(a->recipes, obj, &h, &id);
	if (rc)
		return rc;
	rc = lama_store_begin(a->st);
	if (rc)
		return rc;
	rc = lama_archive_merge(a, &id, &node);
	if (rc == 0) {
		have_head = 1;
		rc = archive__node_load(a, &node, &head);
	} else if (rc == LAMA_ENOTFOUND) {
		rc = 0;
	}
	if (rc)
		goto fail;
	if (have_head && lama_hash_eq(&head.data, &h)) {
		/* the current version again: nothing changes */
		memset(info, 0, sizeof(*info));
		info->hash = h;
		info->versioned = 1;
		info->id_hash = id;
		info->node = node;
		archive__node_release(&head);
		return lama_store_commit(a->st);
	}
	/* the head is this ID's own: no need to check it as put_version does */
	rc = put_after(a, obj, have_head ? &head : NULL, creation_time, info);
	if (rc)
		goto fail;
	archive__node_release(&head);
	return lama_store_commit(a->st);
fail:
	archive__node_release(&head);
	lama_store_rollback(a->st);
	return rc;
}

int lama_archive_current(lama_archive *a, const lama_hash *id, lama_hash *obj)
{
	struct archive_node n;
	lama_hash node;
	int rc;

	rc = lama_archive_merge(a, id, &node);
	if (rc)
		return rc;
	rc = archive__node_load(a, &node, &n);
	if (rc)
		return rc;
	*obj = n.data;
	archive__node_release(&n);
	return 0;
}

int lama_archive_referrers(lama_archive *a, const lama_hash *target, const char *type,
			   int (*fn)(void *ctx, const char *type, const lama_hash *src),
			   void *ctx)
{
	return lama_store_refs(a->st, target, type, fn, ctx);
}

int lama_archive_referrers_max(lama_archive *a, const lama_hash *target, const char *type,
			       size_t max, int (*fn)(void *ctx, const char *type, const lama_hash *src),
			       void *ctx, int *truncated)
{
	return lama_store_refs_max(a->st, target, type, max, fn, ctx, truncated);
}
