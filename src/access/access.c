/* access.c: grants, groups, and who may receive what (access.h). */
#include "access/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/err.h"
#include "util/mem.h"

/* ---- small containers: a hash list and a hash set ---- */

struct hlist {
	lama_hash *v;
	size_t n, cap;
};

static int hlist_add(struct hlist *l, const lama_hash *h)
{
	if (lama_grow(&l->v, &l->cap, l->n, sizeof(*l->v), 16))
		return LAMA_ENOMEM;
	l->v[l->n++] = *h;
	return 0;
}

static void hlist_release(struct hlist *l)
{
	lama_free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Open addressing; SHA-256 bytes are uniform, so the first eight are the
 * slot. A slot's val is never 0 once used. */
struct hslot {
	lama_hash h;
	uint8_t val;
};

struct hset {
	struct hslot *s;
	size_t cap, n; /* cap a power of two, n <= cap / 2 */
};

static size_t hset_pos(const struct hset *t, const lama_hash *h)
{
	uint64_t x;

	memcpy(&x, h->b, sizeof(x));
	return (size_t)x & (t->cap - 1);
}

static struct hslot *hset_find(const struct hset *t, const lama_hash *h)
{
	if (!t->cap)
		return NULL;
	for (size_t i = hset_pos(t, h);; i = (i + 1) & (t->cap - 1)) {
		struct hslot *s = &t->s[i];

		if (!s->val)
			return NULL;
		if (!memcmp(s->h.b, h->b, LAMA_HASH_BYTES))
			return s;
	}
}

/* Adds h with val (non-zero) unless present; *slot is its slot either way,
 * *added (may be NULL) says which. */
static int hset_add(struct hset *t, const lama_hash *h, uint8_t val, struct hslot **slot,
		    int *added)
{
	struct hslot *s;

	if ((s = hset_find(t, h))) {
		if (slot)
			*slot = s;
		if (added)
			*added = 0;
		return 0;
	}
	if (2 * (t->n + 1) > t->cap) {
		struct hset g = { .cap = t->cap ? 2 * t->cap : 64 };

		g.s = lama_calloc(g.cap, sizeof(struct hslot));
		if (!g.s)
			return lama_error(LAMA_ENOMEM, "out of memory");
		for (size_t i = 0; i < t->cap; i++) {
			if (!t->s[i].val)
				continue;
			size_t j = hset_pos(&g, &t->s[i].h);

			while (g.s[j].val)
				j = (j + 1) & (g.cap - 1);
			g.s[j] = t->s[i];
		}
		g.n = t->n;
		lama_free(t->s);
		*t = g;
	}
	size_t i = hset_pos(t, h);

	while (t->s[i].val)
		i = (i + 1) & (t->cap - 1);
	t->s[i].h = *h;
	t->s[i].val = val;
	t->n++;
	if (slot)
		*slot = &t->s[i];
	if (added)
		*added = 1;
	return 0;
}

static void hset_release(struct hset *t)
{
	lama_free(t->s);
	memset(t, 0, sizeof(*t));
}

static int hash_cmp(const void *x, const void *y)
{
	return memcmp(x, y, LAMA_HASH_BYTES);
}

/* Sorts and drops repeats. Byte order of hashes is the order of their hex,
 * so of their canonical JSON text: the order the set rule keeps bags in. */
static size_t sort_unique(lama_hash *v, size_t n)
{
	size_t m = 0;

	if (!n)
		return 0;
	qsort(v, n, sizeof(lama_hash), hash_cmp);
	for (size_t i = 1; i < n; i++)
		if (memcmp(&v[i], &v[m], LAMA_HASH_BYTES))
			v[++m] = v[i];
	return m + 1;
}

static int sorted_has(const lama_hash *v, size_t n, const lama_hash *h)
{
	return n && bsearch(h, v, n, sizeof(lama_hash), hash_cmp) != NULL;
}

/* ---- init ---- */

int lama_access_init(lama_archive *a)
{
	static const char *const rules[][2] = {
		{ "Access", "person" },   { "Access", "group" }, { "IdAccess", "person" },
		{ "IdAccess", "group" },  { "Group", "person" },
	};
	int rc;

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if ((rc = lama_archive_set_rule(a, rules[i][0], rules[i][1], LAMA_CRDT_SET)))
			return rc;
	return 0;
}

int lama_access_is_rule_type(const char *type)
{
	return type && (!strcmp(type, "Access") || !strcmp(type, "IdAccess") ||
			!strcmp(type, "Group"));
}

/* ---- validation ---- */

static int parse_ref(const json_t *v, const char *type, const char *field, lama_hash *out)
{
	if (!json_is_string(v) || !lama_hash_hex_valid(json_string_value(v), json_string_length(v)))
		return lama_error(LAMA_EINVAL, "%s.%s: a reference must be 64 lower-case hex digits",
				  type, field);
	return lama_hash_parse(json_string_value(v), json_string_length(v), out);
}

/* Reads the bag obj[field] into a sorted, distinct array (*out owned by
 * the caller, NULL when empty). *budget is what may still be named. */
static int parse_bag(const json_t *obj, const char *type, const char *field, lama_hash **out,
		     size_t *n, size_t *budget)
{
	const json_t *bag = json_object_get(obj, field), *it;
	size_t i, m;
	int rc;

	*out = NULL;
	*n = 0;
	if (!json_is_array(bag))
		return lama_error(LAMA_EINVAL, "%s.%s: must be a bag (an array) of references", type,
				  field);
	m = json_array_size(bag);
	if (m > *budget)
		return lama_error(LAMA_ELIMIT, "%s: more than %d persons and groups", type,
				  LAMA_ACCESS_MAX_NAMES);
	*budget -= m;
	if (!m)
		return 0;
	if (!(*out = lama_calloc(m, sizeof(lama_hash))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	json_array_foreach(bag, i, it)
		if ((rc = parse_ref(it, type, field, &(*out)[i])))
			return rc;
	*n = sort_unique(*out, m);
	return 0;
}

/* LAMA_EINVAL unless every key of obj is one of the allowed ones. */
static int only_keys(const json_t *obj, const char *type, const char *const *allowed)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		size_t i;

		for (i = 0; allowed[i] && strcmp(allowed[i], k); i++)
			;
		if (!allowed[i])
			return lama_error(LAMA_EINVAL, "%s: unknown field '%.64s'", type, k);
	}
	return 0;
}

static const char *type_of(const json_t *obj)
{
	return json_string_value(json_object_get(obj, "$type$"));
}

int lama_access_grant_parse(const json_t *obj, struct lama_access_grant *out)
{
	static const char *const acc[] = { "$type$", "object", "person", "group", NULL };
	static const char *const idacc[] = { "$type$", "id", "person", "group", NULL };
	size_t budget = LAMA_ACCESS_MAX_NAMES;
	const char *t;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(obj))
		return lama_error(LAMA_EINVAL, "a grant must be a JSON object");
	t = type_of(obj);
	if (!t || (strcmp(t, "Access") && strcmp(t, "IdAccess")))
		return lama_error(LAMA_EINVAL, "a grant must be of type Access or IdAccess");
	out->is_id = !strcmp(t, "IdAccess");
	rc = only_keys(obj, t, out->is_id ? idacc : acc);
	if (!rc)
		rc = parse_ref(json_object_get(obj, out->is_id ? "id" : "object"), t,
			       out->is_id ? "id" : "object", &out->target);
	if (!rc)
		rc = parse_bag(obj, t, "person", &out->persons, &out->npersons, &budget);
	if (!rc)
		rc = parse_bag(obj, t, "group", &out->groups, &out->ngroups, &budget);
	return rc;
}

void lama_access_grant_release(struct lama_access_grant *g)
{
	lama_free(g->persons);
	lama_free(g->groups);
	g->persons = g->groups = NULL;
	g->npersons = g->ngroups = 0;
}

static int check_name(const char *name, size_t n)
{
	if (!n || n > LAMA_ACCESS_GROUP_NAME_MAX || memchr(name, 0, n))
		return lama_error(LAMA_EINVAL, "a group name is 1 to %d bytes without NUL",
				  LAMA_ACCESS_GROUP_NAME_MAX);
	return 0;
}

int lama_access_group_parse(const json_t *obj, struct lama_access_group *out)
{
	static const char *const keys[] = { "$type$", "name", "person", NULL };
	size_t budget = LAMA_ACCESS_MAX_NAMES;
	const json_t *name;
	const char *t;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(obj))
		return lama_error(LAMA_EINVAL, "a group must be a JSON object");
	t = type_of(obj);
	if (!t || strcmp(t, "Group"))
		return lama_error(LAMA_EINVAL, "a group must be of type Group");
	if ((rc = only_keys(obj, t, keys)))
		return rc;
	name = json_object_get(obj, "name");
	if (!json_is_string(name))
		return lama_error(LAMA_EINVAL, "Group.name: must be a string");
	if ((rc = check_name(json_string_value(name), json_string_length(name))))
		return rc;
	memcpy(out->name, json_string_value(name), json_string_length(name));
	return parse_bag(obj, t, "person", &out->persons, &out->npersons, &budget);
}

void lama_access_group_release(struct lama_access_group *g)
{
	lama_free(g->persons);
	g->persons = NULL;
	g->npersons = 0;
}

/* ---- building objects ---- */

static json_t *hex_array(const lama_hash *v, size_t n)
{
	json_t *arr = json_array();
	char hex[LAMA_HASH_HEX + 1];

	for (size_t i = 0; arr && i < n; i++) {
		lama_hash_hex(&v[i], hex);
		if (json_array_append_new(arr, json_string(hex))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* An Access or IdAccess with these (sorted, distinct) names. */
static json_t *grant_json(int is_id, const lama_hash *target, const lama_hash *p, size_t np,
			  const lama_hash *g, size_t ng)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(target, hex);
	return json_pack("{s:s, s:s, s:o*, s:o*}", "$type$", is_id ? "IdAccess" : "Access",
			 is_id ? "id" : "object", hex, "person", hex_array(p, np), "group",
			 hex_array(g, ng));
}

static json_t *group_json(const char *name, const lama_hash *p, size_t np)
{
	return json_pack("{s:s, s:s, s:o*}", "$type$", "Group", "name", name, "person",
			 hex_array(p, np));
}

/* The ID hash of an object built by grant_json or group_json (obj
 * consumed; NULL means it could not be built). */
static int id_of(lama_archive *a, json_t *obj, lama_hash *id)
{
	int rc;

	if (!obj)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = lama_object_hash(lama_archive_recipes(a), obj, NULL, id);
	json_decref(obj);
	return rc;
}

/* ---- reading current versions ---- */

/* The current version of id, parsed (as a grant if grant != NULL, else
 * as a group). *cur (may be NULL) is its hash. */
static int read_current(lama_archive *a, const lama_hash *id, lama_hash *cur,
			struct lama_access_grant *grant, struct lama_access_group *group)
{
	json_t *obj = NULL;
	lama_hash h;
	int rc;

	rc = lama_archive_current(a, id, &h);
	if (!rc)
		rc = lama_archive_get(a, &h, &obj);
	if (!rc)
		rc = grant ? lama_access_grant_parse(obj, grant) : lama_access_group_parse(obj, group);
	if (!rc && cur)
		*cur = h;
	json_decref(obj);
	return rc;
}

int lama_access_grant_get(lama_archive *a, const lama_hash *target, int is_id,
			  lama_hash *grant_id, struct lama_access_grant *out)
{
	struct lama_access_grant mine;
	lama_hash id;
	int rc;

	rc = id_of(a, grant_json(is_id, target, NULL, 0, NULL, 0), &id);
	if (!rc && grant_id)
		*grant_id = id;
	if (rc || !out)
		return rc;
	rc = read_current(a, &id, NULL, out, NULL);
	if (rc == LAMA_ENOTFOUND) {
		/* no version: nothing granted yet */
		memset(&mine, 0, sizeof(mine));
		*out = mine;
	}
	return rc;
}

/* ---- grants ---- */

/* Merges the sorted, distinct list cur[0..n) with add[0..na) (add) or
 * without it (remove); *out owned by the caller. */
static int edit_list(const lama_hash *cur, size_t n, const lama_hash *edit, size_t ne, int add,
		     lama_hash **out, size_t *nout)
{
	lama_hash *v = lama_calloc(n + (add ? ne : 0) + 1, sizeof(lama_hash));
	size_t m = 0;

	if (!v)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		int drop = 0;

		for (size_t j = 0; !add && j < ne && !drop; j++)
			drop = lama_hash_eq(&cur[i], &edit[j]);
		if (!drop)
			v[m++] = cur[i];
	}
	for (size_t j = 0; add && j < ne; j++)
		v[m++] = edit[j];
	*nout = sort_unique(v, m);
	*out = v;
	return 0;
}

/* Checks that target is stored as `want` (an object or an ID object). */
static int check_target(lama_archive *a, const lama_hash *target, enum lama_store_kind want)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	enum lama_store_kind k;
	char hex[LAMA_HASH_HEX + 1];
	int rc;

	rc = lama_store_get(lama_archive_store(a), target, &k, &b);
	if (b.data)
		lama_wipe(b.data, b.cap);
	lama_buf_release(&b);
	if (rc)
		return rc;
	lama_hash_hex(target, hex);
	if (k != want)
		return lama_error(LAMA_EINVAL, "%s is not %s", hex,
				  want == LAMA_KIND_ID ? "an ID object" : "an object");
	return 0;
}

static int grant_edit(lama_archive *a, int is_id, const lama_hash *target, const lama_hash *p,
		      size_t np, const lama_hash *g, size_t ng, int add, lama_hash *version)
{
	struct lama_access_grant cur = { 0 };
	struct lama_put_info info;
	lama_hash id, *pv = NULL, *gv = NULL;
	size_t npv = 0, ngv = 0;
	json_t *obj = NULL;
	int rc, have;

	if ((np && !p) || (ng && !g))
		return lama_error(LAMA_EINVAL, "a list of names without its array");
	if (np + ng > LAMA_ACCESS_MAX_NAMES)
		return lama_error(LAMA_ELIMIT, "more than %d persons and groups",
				  LAMA_ACCESS_MAX_NAMES);
	if (add && (rc = check_target(a, target, is_id ? LAMA_KIND_ID : LAMA_KIND_OBJECT)))
		return rc;
	/* read, edit and write in one transaction: no other writer in between */
	if ((rc = lama_store_begin(lama_archive_store(a))))
		return rc;
	rc = lama_access_grant_get(a, target, is_id, &id, &cur);
	if (rc == LAMA_EINVAL || rc == LAMA_ELIMIT) {
		/* a malformed current version grants nothing: edit from empty,
		 * so that the next version replaces it */
		lama_access_grant_release(&cur);
		rc = 0;
	}
	have = rc == 0;
	if (rc == LAMA_ENOTFOUND)
		rc = 0;
	if (rc || (!add && !have))
		goto out;
	rc = edit_list(cur.persons, cur.npersons, p, np, add, &pv, &npv);
	if (!rc)
		rc = edit_list(cur.groups, cur.ngroups, g, ng, add, &gv, &ngv);
	if (!rc && npv + ngv > LAMA_ACCESS_MAX_NAMES)
		rc = lama_error(LAMA_ELIMIT, "a grant may name at most %d persons and groups",
				LAMA_ACCESS_MAX_NAMES);
	if (rc)
		goto out;
	if (!(obj = grant_json(is_id, target, pv, npv, gv, ngv))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	rc = lama_archive_put(a, obj, 0, &info);
	if (!rc && version)
		*version = info.hash;
out:
	if (rc)
		lama_store_rollback(lama_archive_store(a));
	else
		rc = lama_store_commit(lama_archive_store(a));
	json_decref(obj);
	lama_free(pv);
	lama_free(gv);
	lama_access_grant_release(&cur);
	return rc;
}

int lama_access_grant(lama_archive *a, const lama_hash *object, const lama_hash *persons,
		      size_t np, const lama_hash *groups, size_t ng, lama_hash *version)
{
	return grant_edit(a, 0, object, persons, np, groups, ng, 1, version);
}

int lama_access_grant_id(lama_archive *a, const lama_hash *id, const lama_hash *persons,
			 size_t np, const lama_hash *groups, size_t ng, lama_hash *version)
{
	return grant_edit(a, 1, id, persons, np, groups, ng, 1, version);
}

int lama_access_revoke(lama_archive *a, const lama_hash *object, const lama_hash *persons,
		       size_t np, const lama_hash *groups, size_t ng)
{
	return grant_edit(a, 0, object, persons, np, groups, ng, 0, NULL);
}

int lama_access_revoke_id(lama_archive *a, const lama_hash *id, const lama_hash *persons,
			  size_t np, const lama_hash *groups, size_t ng)
{
	return grant_edit(a, 1, id, persons, np, groups, ng, 0, NULL);
}

/* ---- groups ---- */

int lama_access_group_id(lama_archive *a, const char *name, lama_hash *id)
{
	int rc;

	if (!name)
		return lama_error(LAMA_EINVAL, "a group needs a name");
	if ((rc = check_name(name, strlen(name))))
		return rc;
	return id_of(a, group_json(name, NULL, 0), id);
}

static int group_put(lama_archive *a, const char *name, const lama_hash *p, size_t n,
		     lama_hash *id)
{
	struct lama_put_info info;
	lama_hash *v = NULL;
	json_t *obj;
	int rc;

	if ((rc = check_name(name, strlen(name))))
		return rc;
	if (n > LAMA_ACCESS_MAX_NAMES)
		return lama_error(LAMA_ELIMIT, "a group may hold at most %d persons",
				  LAMA_ACCESS_MAX_NAMES);
	if (n && !(v = lama_calloc(n, sizeof(lama_hash))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (n)
		memcpy(v, p, n * sizeof(lama_hash));
	n = sort_unique(v, n);
	obj = group_json(name, v, n);
	lama_free(v);
	if (!obj)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = lama_archive_put(a, obj, 0, &info);
	json_decref(obj);
	if (!rc && id)
		*id = info.id_hash;
	return rc;
}

int lama_access_group_set(lama_archive *a, const char *name, const lama_hash *persons,
			  size_t n, lama_hash *id)
{
	if (!name)
		return lama_error(LAMA_EINVAL, "a group needs a name");
	if (n && !persons)
		return lama_error(LAMA_EINVAL, "a list of persons without its array");
	return group_put(a, name, persons, n, id);
}

int lama_access_group_get(lama_archive *a, const lama_hash *group,
			  struct lama_access_group *out)
{
	return read_current(a, group, NULL, NULL, out);
}

static int group_edit(lama_archive *a, const lama_hash *group, const lama_hash *person, int add)
{
	struct lama_access_group cur = { 0 };
	lama_hash *v = NULL;
	size_t n = 0;
	int rc;

	if ((rc = lama_store_begin(lama_archive_store(a))))
		return rc;
	rc = lama_access_group_get(a, group, &cur);
	if (!rc)
		rc = edit_list(cur.persons, cur.npersons, person, 1, add, &v, &n);
	if (!rc)
		rc = group_put(a, cur.name, v, n, NULL);
	if (rc)
		lama_store_rollback(lama_archive_store(a));
	else
		rc = lama_store_commit(lama_archive_store(a));
	lama_free(v);
	lama_access_group_release(&cur);
	return rc;
}

int lama_access_group_add(lama_archive *a, const lama_hash *group, const lama_hash *person)
{
	return group_edit(a, group, person, 1);
}

int lama_access_group_remove(lama_archive *a, const lama_hash *group, const lama_hash *person)
{
	return group_edit(a, group, person, 0);
}

static void iom_name(const lama_hash *owner, char name[sizeof(LAMA_ACCESS_IOM_PREFIX) + LAMA_HASH_HEX])
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(owner, hex);
	snprintf(name, sizeof(LAMA_ACCESS_IOM_PREFIX) + LAMA_HASH_HEX, "%s%s",
		 LAMA_ACCESS_IOM_PREFIX, hex);
}

int lama_access_iom_id(lama_archive *a, const lama_hash *owner, lama_hash *id)
{
	char name[sizeof(LAMA_ACCESS_IOM_PREFIX) + LAMA_HASH_HEX];

	iom_name(owner, name);
	return lama_access_group_id(a, name, id);
}

int lama_access_iom_ensure(lama_archive *a, const lama_hash *owner, lama_hash *id)
{
	char name[sizeof(LAMA_ACCESS_IOM_PREFIX) + LAMA_HASH_HEX];
	lama_hash gid, *heads = NULL;
	size_t n = 0;
	int rc;

	iom_name(owner, name);
	if ((rc = lama_access_group_id(a, name, &gid)))
		return rc;
	if ((rc = lama_store_begin(lama_archive_store(a))))
		return rc;
	rc = lama_archive_heads(a, &gid, &heads, &n);
	if (!rc && n == 0)
		rc = group_put(a, name, owner, 1, NULL);
	lama_free(heads);
	if (rc) {
		lama_store_rollback(lama_archive_store(a));
		return rc;
	}
	if ((rc = lama_store_commit(lama_archive_store(a))))
		return rc;
	if (id)
		*id = gid;
	return 0;
}

/* ---- roots ---- */

static int collect(void *ctx, const char *type, const lama_hash *src)
{
	(void)type;
	return hlist_add(ctx, src);
}

/* Reads the candidate version h (found in a reverse map) and the current
 * version of its ID, once per ID (seen). On success *cur holds the current
 * version parsed and *fresh is 1; *fresh is 0 when the ID was seen
 * already or nothing usable was found (counted in stats). */
static int current_of(lama_archive *a, const lama_hash *h, int is_grant, struct hset *seen,
		      struct lama_access_grant *grant, struct lama_access_group *group,
		      struct lama_access_stats *st, lama_hash *idp, int *fresh)
{
	json_t *obj = NULL;
	lama_hash id, cur;
	int rc, added = 0;

	*fresh = 0;
	rc = lama_archive_get(a, h, &obj);
	if (rc == LAMA_ENOTFOUND) {
		st->missing++;
		return 0;
	}
	if (rc)
		return rc;
	st->read++;
	/* validate before hashing: the ID comes from what passed */
	rc = is_grant ? lama_access_grant_parse(obj, grant) : lama_access_group_parse(obj, group);
	if (!rc)
		rc = lama_object_hash(lama_archive_recipes(a), obj, NULL, &id);
	json_decref(obj);
	if (is_grant)
		lama_access_grant_release(grant);
	else
		lama_access_group_release(group);
	if (rc == LAMA_EINVAL || rc == LAMA_ELIMIT) {
		/* an old version may be malformed; the current one decides */
		st->malformed++;
		return 0;
	}
	if (rc)
		return rc;
	if ((rc = hset_add(seen, &id, 1, NULL, &added)) || !added)
		return rc;
	rc = read_current(a, &id, &cur, is_grant ? grant : NULL, is_grant ? NULL : group);
	st->read++;
	if (rc == LAMA_EINVAL || rc == LAMA_ELIMIT) {
		/* fail closed: a malformed current version grants nothing */
		st->malformed++;
		rc = 0;
	} else if (rc == LAMA_ENOTFOUND) {
		st->missing++;
		rc = 0;
	} else if (!rc) {
		*fresh = 1;
		*idp = id;
	}
	if (!*fresh) {
		if (is_grant)
			lama_access_grant_release(grant);
		else
			lama_access_group_release(group);
	}
	return rc;
}

/* The IDs of the groups whose current version holds person, into *out. */
static int groups_of(lama_archive *a, const lama_hash *person, struct hlist *out,
		     struct lama_access_stats *st)
{
	struct hlist cand = { 0 };
	struct hset seen = { 0 };
	struct lama_access_group g = { 0 };
	int rc, fresh;

	rc = lama_archive_referrers(a, person, "Group", collect, &cand);
	for (size_t i = 0; i < cand.n && !rc; i++) {
		lama_hash id;

		rc = current_of(a, &cand.v[i], 0, &seen, NULL, &g, st, &id, &fresh);
		if (rc || !fresh)
			continue;
		if (sorted_has(g.persons, g.npersons, person))
			rc = hlist_add(out, &id);
		lama_access_group_release(&g);
	}
	hlist_release(&cand);
	hset_release(&seen);
	return rc;
}

int lama_access_groups_of(lama_archive *a, const lama_hash *person,
			  int (*fn)(void *ctx, const lama_hash *group), void *ctx,
			  struct lama_access_stats *stats)
{
	struct lama_access_stats mine = { 0 };
	struct hlist groups = { 0 };
	int rc;

	rc = groups_of(a, person, &groups, &mine);
	for (size_t i = 0; i < groups.n && !rc; i++)
		rc = fn(ctx, &groups.v[i]);
	hlist_release(&groups);
	if (stats)
		*stats = mine;
	return rc;
}

/* The roots of person into *out (each once). */
static int roots_of(lama_archive *a, const lama_hash *person, struct hlist *out_h,
		    struct hlist *out_id, struct lama_access_stats *st)
{
	static const char *const types[] = { "Access", "IdAccess" };
	struct hlist groups = { 0 }, cand = { 0 };
	struct hset gset = { 0 }, seen = { 0 };
	struct lama_access_grant g = { 0 };
	int rc, fresh;

	rc = groups_of(a, person, &groups, st);
	for (size_t i = 0; i < groups.n && !rc; i++)
		rc = hset_add(&gset, &groups.v[i], 1, NULL, NULL);
	/* every grant version that ever named the person or one of its
	 * groups; collected first, since reading current versions may merge
	 * and so write the reverse maps */
	for (size_t t = 0; t < 2 && !rc; t++) {
		rc = lama_archive_referrers(a, person, types[t], collect, &cand);
		for (size_t i = 0; i < groups.n && !rc; i++)
			rc = lama_archive_referrers(a, &groups.v[i], types[t], collect, &cand);
	}
	for (size_t i = 0; i < cand.n && !rc; i++) {
		lama_hash id;
		int named;

		rc = current_of(a, &cand.v[i], 1, &seen, &g, NULL, st, &id, &fresh);
		if (rc || !fresh)
			continue;
		named = sorted_has(g.persons, g.npersons, person);
		for (size_t j = 0; j < g.ngroups && !named; j++)
			named = hset_find(&gset, &g.groups[j]) != NULL;
		if (named)
			rc = hlist_add(g.is_id ? out_id : out_h, &g.target);
		lama_access_grant_release(&g);
	}
	hlist_release(&groups);
	hlist_release(&cand);
	hset_release(&gset);
	hset_release(&seen);
	return rc;
}

int lama_access_roots(lama_archive *a, const lama_hash *person,
		      int (*fn)(void *ctx, const struct lama_access_root *root), void *ctx,
		      struct lama_access_stats *stats)
{
	struct lama_access_stats mine = { 0 };
	struct hlist objs = { 0 }, ids = { 0 };
	struct lama_access_root r;
	int rc;

	rc = roots_of(a, person, &objs, &ids, &mine);
	for (size_t i = 0; i < objs.n && !rc; i++) {
		r = (struct lama_access_root){ .hash = objs.v[i], .is_id = 0 };
		rc = fn(ctx, &r);
	}
	for (size_t i = 0; i < ids.n && !rc; i++) {
		r = (struct lama_access_root){ .hash = ids.v[i], .is_id = 1 };
		rc = fn(ctx, &r);
	}
	hlist_release(&objs);
	hlist_release(&ids);
	if (stats)
		*stats = mine;
	return rc;
}

/* ---- closure walks ---- */

#define KIND_MASK 0x0f
#define EXPANDED 0x10 /* an ID whose version nodes were pushed */
#define ID_ROOT 0x20  /* on the stack: an ID to expand with its versions */
/* In the set, not reported: what a hash resolved to (its kind, 0 when not
 * stored) when a reference named it as another kind. Later references
 * compare kinds without reading it again; one of the right kind brings it. */
#define WRONG_KIND 0x40

struct pending {
	lama_hash h;
	uint8_t want; /* the kind the reference says, maybe | ID_ROOT */
};

struct lama_access_walk {
	lama_archive *a;
	struct hset seen; /* val: kind | EXPANDED, or kind | WRONG_KIND */
	size_t count;
	int stopped;
	struct lama_access_stats st;
	struct lama_buf buf; /* what the last read gave; wiped after use */
	struct pending *stack;
	size_t n, cap;
};

int lama_access_walk_new(lama_archive *a, lama_access_walk **out)
{
	lama_access_walk *w = lama_calloc(1, sizeof(*w));

	*out = NULL;
	if (!w)
		return lama_error(LAMA_ENOMEM, "out of memory");
	w->a = a;
	w->buf = (struct lama_buf)LAMA_BUF_INIT(LAMA_BUF_MAX);
	*out = w;
	return 0;
}

void lama_access_walk_free(lama_access_walk *w)
{
	if (!w)
		return;
	hset_release(&w->seen);
	lama_buf_release_wipe(&w->buf);
	lama_free(w->stack);
	lama_free(w);
}

static int push(lama_access_walk *w, const lama_hash *h, uint8_t want)
{
	if (lama_grow(&w->stack, &w->cap, w->n, sizeof(*w->stack), 64))
		return LAMA_ENOMEM;
	w->stack[w->n].h = *h;
	w->stack[w->n].want = want;
	w->n++;
	return 0;
}

static int push_ref(void *ctx, const char *itemprop, enum lama_ref_kind kind,
		    const lama_hash *target)
{
	static const uint8_t want[] = {
		[LAMA_REF_OBJ] = LAMA_ACCESS_OBJECT,
		[LAMA_REF_ID] = LAMA_ACCESS_ID,
		[LAMA_REF_CLOB] = LAMA_ACCESS_CLOB,
		[LAMA_REF_BLOB] = LAMA_ACCESS_BLOB,
	};

	(void)itemprop;
	return push(ctx, target, want[kind]);
}

static int push_node(void *ctx, const char *type, const lama_hash *src)
{
	(void)type;
	return push(ctx, src, LAMA_ACCESS_OBJECT);
}

/* The version nodes of an ID; each names its version's object. */
static int expand(lama_access_walk *w, const lama_hash *id)
{
	static const char *const nodes[] = { "VersionNodeEdge", "VersionNodeChange",
					     "VersionNodeMerge" };
	int rc = 0;

	for (size_t i = 0; i < 3 && !rc; i++)
		rc = lama_archive_referrers(w->a, id, nodes[i], push_node, w);
	return rc;
}

static void buf_wipe(struct lama_buf *b)
{
	if (b->cap > ((size_t)1 << 20))
		lama_buf_release_wipe(b);
	else if (b->data)
		lama_wipe(b->data, b->cap);
	b->len = 0;
}

/* What h is in the store: *kind 0 if not stored. An object, ID object or
 * CLOB is left in w->buf. */
static int resolve(lama_access_walk *w, const lama_hash *h, int *kind)
{
	lama_store *st = lama_archive_store(w->a);
	enum lama_store_kind k;
	int rc;

	*kind = 0;
	rc = lama_store_get(st, h, &k, &w->buf);
	if (rc == LAMA_ENOTFOUND) {
		/* not an object row: a BLOB, or nothing */
		lama_error_clear();
		rc = lama_store_has(st, h);
		if (rc < 0)
			return rc;
		*kind = rc ? LAMA_ACCESS_BLOB : 0;
		return 0;
	}
	if (rc)
		return rc;
	*kind = k == LAMA_KIND_OBJECT ? LAMA_ACCESS_OBJECT
		: k == LAMA_KIND_ID ? LAMA_ACCESS_ID
		: LAMA_ACCESS_CLOB;
	return 0;
}

/* Pushes the references of the object in w->buf. */
static int push_refs(lama_access_walk *w)
{
	const lama_recipes *r = lama_archive_recipes(w->a);
	json_t *obj = NULL;
	int rc;

	/* authenticated and hash-checked bytes of lama's own store */
	rc = lama_object_parse_trusted(r, w->buf.data, w->buf.len, &obj, NULL);
	if (!rc)
		rc = lama_object_foreach_ref(r, obj, push_ref, w);
	json_decref(obj);
	return rc;
}

int lama_access_walk_root(lama_access_walk *w, const struct lama_access_root *root,
			  lama_access_fn fn, void *ctx)
{
	int rc;

	if (w->stopped)
		return lama_error(LAMA_EINVAL, "this access walk was stopped");
	w->n = 0;
	rc = push(w, &root->hash, root->is_id ? (LAMA_ACCESS_ID | ID_ROOT) : LAMA_ACCESS_OBJECT);
	while (!rc && w->n) {
		struct pending p = w->stack[--w->n];
		uint8_t want = p.want & KIND_MASK;
		struct hslot *s = hset_find(&w->seen, &p.h);
		int kind;

		if (s && (s->val & WRONG_KIND) && (s->val & KIND_MASK) != want) {
			/* known not to be what this reference says: fail
			 * closed without reading it again */
			w->st.missing++;
			continue;
		}
		if (s && !(s->val & WRONG_KIND)) {
			if ((s->val & KIND_MASK) != want)
				w->st.missing++; /* reported as what it is, not this */
			/* known; an ID root still brings its versions once */
			if ((p.want & ID_ROOT) && (s->val & KIND_MASK) == LAMA_ACCESS_ID &&
			    !(s->val & EXPANDED)) {
				s->val |= EXPANDED;
				rc = expand(w, &p.h);
			}
			continue;
		}
		/* new, or named wrongly before and rightly now: read it */
		w->st.lookups++;
		rc = resolve(w, &p.h, &kind);
		if (rc)
			break;
		if (kind != want) {
			/* not stored, or not what the reference says: fail
			 * closed, and remember its kind, not as reported, since
			 * another reference may name it rightly */
			w->st.missing++;
			buf_wipe(&w->buf);
			rc = hset_add(&w->seen, &p.h, (uint8_t)(kind | WRONG_KIND), NULL, NULL);
			if (rc)
				break;
			continue;
		}
		w->st.read++;
		if (s) /* resolve does not touch the set: s is still its slot */
			s->val = (uint8_t)(kind | ((p.want & ID_ROOT) ? EXPANDED : 0));
		else
			rc = hset_add(&w->seen, &p.h,
				      (uint8_t)(kind | ((p.want & ID_ROOT) ? EXPANDED : 0)), NULL, NULL);
		if (rc)
			break;
		w->count++;
		if (fn && (rc = fn(ctx, &p.h, (enum lama_access_kind)kind))) {
			w->stopped = 1;
			break;
		}
		/* an ID object is a leaf: what its fields name comes with its
		 * versions, which only an IdAccess grants */
		if (kind == LAMA_ACCESS_OBJECT)
			rc = push_refs(w);
		if (!rc && (p.want & ID_ROOT))
			rc = expand(w, &p.h);
		buf_wipe(&w->buf);
	}
	buf_wipe(&w->buf);
	w->n = 0;
	return rc;
}

int lama_access_walk_has(const lama_access_walk *w, const lama_hash *h,
			 enum lama_access_kind *kind)
{
	struct hslot *s = hset_find(&w->seen, h);

	if (s && (s->val & WRONG_KIND))
		s = NULL; /* resolved, never reported */
	if (s && kind)
		*kind = (enum lama_access_kind)(s->val & KIND_MASK);
	return s != NULL;
}

size_t lama_access_walk_count(const lama_access_walk *w)
{
	return w->count;
}

void lama_access_walk_stats(const lama_access_walk *w, struct lama_access_stats *out)
{
	*out = w->st;
}

static void stats_add(struct lama_access_stats *to, const struct lama_access_stats *from)
{
	to->read += from->read;
	to->malformed += from->malformed;
	to->missing += from->missing;
	to->lookups += from->lookups;
}

int lama_access_root_closure(lama_archive *a, const struct lama_access_root *root,
			     lama_access_fn fn, void *ctx, struct lama_access_stats *stats)
{
	lama_access_walk *w;
	int rc;

	if ((rc = lama_access_walk_new(a, &w)))
		return rc;
	rc = lama_access_walk_root(w, root, fn, ctx);
	if (stats)
		*stats = w->st;
	lama_access_walk_free(w);
	return rc;
}

int lama_access_closure(lama_archive *a, const lama_hash *person, lama_access_fn fn,
			void *ctx, struct lama_access_stats *stats)
{
	struct lama_access_stats mine = { 0 };
	struct hlist objs = { 0 }, ids = { 0 };
	lama_access_walk *w = NULL;
	int rc;

	rc = roots_of(a, person, &objs, &ids, &mine);
	if (!rc)
		rc = lama_access_walk_new(a, &w);
	for (size_t i = 0; i < objs.n + ids.n && !rc; i++) {
		struct lama_access_root r = {
			.hash = i < objs.n ? objs.v[i] : ids.v[i - objs.n],
			.is_id = i >= objs.n,
		};

		rc = lama_access_walk_root(w, &r, fn, ctx);
	}
	if (w)
		stats_add(&mine, &w->st);
	lama_access_walk_free(w);
	hlist_release(&objs);
	hlist_release(&ids);
	if (stats)
		*stats = mine;
	return rc;
}

struct find_ctx {
	const lama_hash *h;
};

static int find_hash(void *ctx, const lama_hash *h, enum lama_access_kind kind)
{
	struct find_ctx *f = ctx;

	(void)kind;
	return lama_hash_eq(h, f->h);
}

int lama_access_may_receive(lama_archive *a, const lama_hash *person, const lama_hash *h,
			    int *yes)
{
	struct find_ctx f = { h };
	int rc;

	*yes = 0;
	rc = lama_access_closure(a, person, find_hash, &f, NULL);
	if (rc == 1) {
		/* the search ended at h */
		*yes = 1;
		rc = 0;
	}
	return rc;
}
