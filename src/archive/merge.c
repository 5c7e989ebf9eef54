/* merge.c: deterministic merge of concurrent version heads.
 *
 * Registers: last writer wins, where "when a field was written" is the
 * creationTime of the version that last changed it on its branch (a merge
 * inherits the time of the value it kept); ties go to the larger value
 * text. That is a maximum over a total order, so any grouping and order of
 * merges picks the same value.
 * Sets: three-way against the newest common ancestor: an item stays if it
 * is new since the ancestor in any head, or if every head still has it; so
 * concurrent adds win over nothing, and a removal on any branch sticks.
 * Both look through merge nodes to the versions they merged (leaves()), so
 * the result depends on the versions known, not on earlier merges. */
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "archive/archive_int.h"
#include "util/err.h"
#include "util/mem.h"

struct entry {
	struct archive_node node;
	json_t *obj; /* the version's object */
};

struct field {
	const char *name; /* borrowed from the recipe */
	enum lama_crdt_rule rule;
	int is_id;
};

struct merger {
	lama_archive *a;
	struct entry *e; /* loaded nodes */
	size_t ne, cap;
	json_t *index;   /* hex -> position in e */
	json_t *memo;    /* "hex/field" -> field time */
	struct field *f;
	size_t nf, fcap;
	const char *type; /* of the object merged */
};

static void hex_of(const lama_hash *h, char out[LAMA_HASH_HEX + 1])
{
	lama_hash_hex(h, out);
}

/* Loads (once) a node and its object; returns its position or <0. */
static int load(struct merger *m, const lama_hash *h)
{
	char hex[LAMA_HASH_HEX + 1];
	json_t *pos;
	struct entry *e;
	int rc;

	hex_of(h, hex);
	pos = json_object_get(m->index, hex);
	if (pos)
		return (int)json_integer_value(pos);
	if (lama_grow(&m->e, &m->cap, m->ne, sizeof(*m->e), 16))
		return LAMA_ENOMEM;
	e = &m->e[m->ne];
	rc = archive__node_load(m->a, h, &e->node);
	if (rc)
		return rc;
	rc = lama_archive_get(m->a, &e->node.data, &e->obj);
	if (rc) {
		archive__node_release(&e->node);
		return rc;
	}
	if (json_object_set_new(m->index, hex, json_integer((json_int_t)m->ne))) {
		archive__node_release(&e->node);
		json_decref(e->obj);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	return (int)m->ne++;
}

static int values_equal(const json_t *x, const json_t *y)
{
	if (!x || !y)
		return x == y;
	return json_equal(x, y);
}

/* When was field f last written on the branch ending at node h? */
static int field_time(struct merger *m, const lama_hash *h, const char *f, double *t)
{
	char key[LAMA_HASH_HEX + 1 + LAMA_TYPE_MAX + 1];
	lama_hash cur = *h;
	json_t *memo;
	int i, rc;

	hex_of(h, key);
	strcat(key, "/");
	strncat(key, f, LAMA_TYPE_MAX - 1);
	memo = json_object_get(m->memo, key);
	if (memo) {
		*t = json_real_value(memo);
		return 0;
	}
	for (;;) {
		/* walk back along unchanged single-parent history without recursion */
		i = load(m, &cur);
		if (i < 0)
			return i;
		struct entry *e = &m->e[i];
		json_t *v = json_object_get(e->obj, f);

		if (e->node.kind == NODE_EDGE) {
			*t = e->node.time;
			break;
		}
		if (e->node.kind == NODE_CHANGE) {
			lama_hash prev;
			int pi;

			if (e->node.nparents == 0) {
				*t = e->node.time;
				break;
			}
			prev = e->node.parents[0];
			pi = load(m, &prev);
			if (pi < 0)
				return pi;
			e = &m->e[i]; /* load() may have moved the array */
			if (!values_equal(v, json_object_get(m->e[pi].obj, f))) {
				*t = e->node.time;
				break;
			}
			cur = prev;
			continue;
		}
		/* a merge: the time of the parent whose value it kept */
		double best = -1;
		size_t np = e->node.nparents;
		lama_hash *parents = lama_malloc(np * sizeof(lama_hash));

		if (!parents)
			return lama_error(LAMA_ENOMEM, "out of memory");
		memcpy(parents, e->node.parents, np * sizeof(lama_hash));
		double own = e->node.time;
		json_t *val = json_incref(v);

		for (size_t p = 0; p < np; p++) {
			int pi = load(m, &parents[p]);
			double pt;

			if (pi < 0) {
				rc = pi;
				goto merr;
			}
			if (!values_equal(val, json_object_get(m->e[pi].obj, f)))
				continue;
			rc = field_time(m, &parents[p], f, &pt);
			if (rc)
				goto merr;
			if (pt > best)
				best = pt;
		}
		*t = best < 0 ? own : best;
		lama_free(parents);
		json_decref(val);
		break;
merr:
		lama_free(parents);
		json_decref(val);
		return rc;
	}
	if (json_object_set_new(m->memo, key, json_real(*t)))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

/* Pushes the hex name of h onto a JSON array of names. */
static int push_hex(json_t *todo, const lama_hash *h)
{
	char hex[LAMA_HASH_HEX + 1];

	hex_of(h, hex);
	if (json_array_append_new(todo, json_string(hex)))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

/* Pops the last name of todo into *h. */
static int pop_hex(json_t *todo, lama_hash *h, char hex[LAMA_HASH_HEX + 1])
{
	size_t last = json_array_size(todo) - 1;
	const char *s = json_string_value(json_array_get(todo, last));
	int rc;

	rc = lama_hash_parse(s, s ? strlen(s) : 0, h);
	if (!rc)
		memcpy(hex, s, LAMA_HASH_HEX + 1);
	json_array_remove(todo, last);
	return rc;
}

/* Walks the history back from starts, depth first. Every node reached
 * goes into *seen (a JSON object hex -> true, the caller's). With `found`,
 * merge nodes are looked through and any other node is appended to found
 * and not walked past; without it, the walk goes back to the first
 * versions. */
static int walk(struct merger *m, const lama_hash *starts, size_t n, json_t *found,
		json_t **seen)
{
	json_t *todo = json_array();
	char hex[LAMA_HASH_HEX + 1];
	int rc = 0;

	*seen = json_object();
	if (!*seen || !todo) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++)
		rc = push_hex(todo, &starts[i]);
	while (!rc && json_array_size(todo)) {
		lama_hash cur;
		int i;

		rc = pop_hex(todo, &cur, hex);
		if (rc || json_object_get(*seen, hex))
			continue;
		if (json_object_set_new(*seen, hex, json_true())) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			break;
		}
		i = load(m, &cur);
		if (i < 0) {
			rc = i;
			break;
		}
		if (found && m->e[i].node.kind != NODE_MERGE) {
			rc = push_hex(found, &cur);
			continue;
		}
		for (size_t p = 0; p < m->e[i].node.nparents && !rc; p++)
			rc = push_hex(todo, &m->e[i].node.parents[p]);
	}
out:
	json_decref(todo);
	if (rc) {
		json_decref(*seen);
		*seen = NULL;
	}
	return rc;
}

/* All ancestors of h (itself included) as a JSON object hex -> true. */
static int ancestors(struct merger *m, const lama_hash *h, json_t **out)
{
	return walk(m, h, 1, NULL, out);
}

/* The versions a merge of `heads` combines: merge nodes stand for the
 * versions they merged, so each is replaced by its parents (recursively),
 * and a version that another one follows is dropped. The result depends
 * only on the versions known, not on how earlier merges grouped them, which
 * keeps merges independent of order and grouping even when a branch goes
 * on from a version that was merged before. *out (lama_free) gets the
 * leaves, *nout their number (at least 1). */
static int leaves(struct merger *m, const lama_hash *heads, size_t n, lama_hash **out,
		  size_t *nout)
{
	json_t *seen = NULL, *found = json_array(), *dominated = json_object();
	lama_hash *l = NULL;
	size_t nl = 0;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!found || !dominated) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	rc = walk(m, heads, n, found, &seen);
	/* drop every version that is a proper ancestor of another one */
	for (size_t i = 0; i < json_array_size(found) && !rc; i++) {
		const char *k;
		json_t *anc, *v;
		lama_hash h;

		rc = lama_hash_parse(json_string_value(json_array_get(found, i)), LAMA_HASH_HEX, &h);
		if (!rc)
			rc = ancestors(m, &h, &anc);
		if (rc)
			break;
		json_object_foreach(anc, k, v) {
			if (strcmp(k, json_string_value(json_array_get(found, i))) &&
			    json_object_set(dominated, k, json_true())) {
				rc = lama_error(LAMA_ENOMEM, "out of memory");
				break;
			}
		}
		json_decref(anc);
	}
	if (!rc) {
		l = lama_calloc(json_array_size(found), sizeof(lama_hash));
		if (!l)
			rc = lama_error(LAMA_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < json_array_size(found) && !rc; i++) {
		const char *s = json_string_value(json_array_get(found, i));

		if (!json_object_get(dominated, s))
			rc = lama_hash_parse(s, LAMA_HASH_HEX, &l[nl++]);
	}
	if (!rc && nl == 0) /* only a forged merge node of no nodes */
		rc = lama_error(LAMA_ECORRUPT, "a merge node without versions");
out:
	json_decref(seen);
	json_decref(found);
	json_decref(dominated);
	if (rc) {
		lama_free(l);
		return rc;
	}
	*out = l;
	*nout = nl;
	return 0;
}

/* The newest common ancestor of the heads (position in m->e), or -1 when
 * the histories share nothing. */
static int common_ancestor(struct merger *m, const lama_hash *heads, size_t n, int *base)
{
	json_t *common = NULL, *anc;
	const char *k;
	json_t *v;
	void *tmp;
	int rc = 0;
	double best_depth = -1;
	char best[LAMA_HASH_HEX + 1] = "";

	*base = -1;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = ancestors(m, &heads[i], &anc);
		if (rc)
			break;
		if (!common) {
			common = anc;
			continue;
		}
		json_object_foreach_safe(common, tmp, k, v) {
			if (!json_object_get(anc, k))
				json_object_del(common, k);
		}
		json_decref(anc);
	}
	if (!rc) {
		json_object_foreach(common, k, v) {
			lama_hash h;
			int i;

			if ((rc = lama_hash_parse(k, strlen(k), &h)))
				break;
			if ((i = load(m, &h)) < 0) {
				rc = i;
				break;
			}
			if (m->e[i].node.depth > best_depth ||
			    (m->e[i].node.depth == best_depth && strcmp(k, best) < 0)) {
				best_depth = m->e[i].node.depth;
				memcpy(best, k, sizeof(best));
				*base = i;
			}
		}
	}
	json_decref(common);
	return rc;
}

static int add_field(void *ctx, const char *itemprop, enum lama_crdt_rule rule, int is_id)
{
	struct merger *m = ctx;

	if (m->nf == m->fcap) {
		size_t cap = m->fcap ? 2 * m->fcap : 16;
		struct field *nf = lama_realloc(m->f, cap * sizeof(*nf));

		if (!nf)
			return lama_error(LAMA_ENOMEM, "out of memory");
		m->f = nf;
		m->fcap = cap;
	}
	const struct archive_rule *r = archive__rule(m->a, m->type, itemprop);

	m->f[m->nf].name = itemprop;
	m->f[m->nf].rule = r ? r->rule : rule;
	m->f[m->nf].is_id = is_id;
	m->nf++;
	return 0;
}

/* Canonical text of a value, for comparing and keying. */
static int value_text(const json_t *v, struct lama_buf *out)
{
	lama_buf_truncate(out, 0);
	return v ? lama_json_write(v, out) : 0;
}

static int merge_register(struct merger *m, const int *hi, size_t n, const lama_hash *heads,
			  const char *f, json_t **out)
{
	struct lama_buf best_text = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	struct lama_buf text = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	double best_t = -1;
	json_t *best = NULL;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		json_t *v = json_object_get(m->e[hi[i]].obj, f);
		double t;

		rc = field_time(m, &heads[i], f, &t);
		if (!rc)
			rc = value_text(v, &text);
		if (rc)
			break;
		if (i == 0 || t > best_t ||
		    (t == best_t && strcmp(text.data ? text.data : "", best_text.data ? best_text.data : "") > 0)) {
			best_t = t;
			best = v;
			lama_buf_truncate(&best_text, 0);
			rc = lama_buf_add(&best_text, text.data ? text.data : "", text.len);
		}
	}
	*out = rc ? NULL : json_incref(best);
	lama_buf_release(&best_text);
	lama_buf_release(&text);
	return rc;
}

/* Adds the items of a {"$set": [...]} value, or of a bag (an array), to
 * keys (text -> item). */
static int set_items(const json_t *v, json_t *keys, struct lama_buf *text)
{
	json_t *items = json_is_array(v) ? (json_t *)v : json_object_get(v, "$set"), *it;
	size_t i;
	int rc = 0;

	json_array_foreach(items, i, it) {
		if ((rc = value_text(it, text)))
			break;
		if (json_object_set(keys, text->data ? text->data : "", it))
			return lama_error(LAMA_ENOMEM, "out of memory");
	}
	return rc;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* *out: the items of `kept` (text -> item) as an array in the order of
 * their text. */
static int sort_by_text(json_t *kept, json_t **out)
{
	size_t n = json_object_size(kept), nk = 0;
	const char **keys = lama_calloc(n + 1, sizeof(char *));
	json_t *sorted = json_array(), *item;
	const char *k;
	int rc = 0;

	if (!keys || !sorted) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	json_object_foreach(kept, k, item)
		keys[nk++] = k;
	qsort(keys, nk, sizeof(char *), cmp_str);
	for (size_t j = 0; j < nk && !rc; j++)
		if (json_array_append(sorted, json_object_get(kept, keys[j])))
			rc = lama_error(LAMA_ENOMEM, "out of memory");
out:
	lama_free(keys);
	if (rc)
		json_decref(sorted);
	else
		*out = sorted;
	return rc;
}

static int merge_set(struct merger *m, const int *hi, size_t n, int base, const char *f,
		     json_t **out)
{
	struct lama_buf text = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	json_t *base_keys = json_object(), *result = json_array(), **head_keys;
	json_t *all = json_object(), *kept = json_object();
	int rc = 0, present = 0, bag = 0;
	const char *k;
	json_t *item;

	*out = NULL;
	head_keys = lama_calloc(n, sizeof(json_t *));
	if (!base_keys || !result || !all || !kept || !head_keys) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	if (base >= 0)
		rc = set_items(json_object_get(m->e[base].obj, f), base_keys, &text);
	for (size_t i = 0; i < n && !rc; i++) {
		json_t *v = json_object_get(m->e[hi[i]].obj, f);

		present |= v != NULL;
		bag |= json_is_array(v);
		head_keys[i] = json_object();
		if (!head_keys[i]) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			break;
		}
		rc = set_items(v, head_keys[i], &text);
		if (!rc)
			rc = set_items(v, all, &text);
	}
	if (rc || !present)
		goto out;
	json_object_foreach(all, k, item) {
		int in_all = 1;

		for (size_t i = 0; i < n; i++)
			in_all &= json_object_get(head_keys[i], k) != NULL;
		if ((!json_object_get(base_keys, k) || in_all) &&
		    (json_array_append(result, item) || json_object_set(kept, k, item))) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (bag) {
		/* a bag keeps no insertion order across devices: the canonical
		 * text of each item orders it, the same everywhere */
		rc = sort_by_text(kept, out);
		goto out;
	}
	*out = json_pack("{s:O}", "$set", result);
	if (!*out)
		rc = lama_error(LAMA_ENOMEM, "out of memory");
out:
	for (size_t i = 0; head_keys && i < n; i++)
		json_decref(head_keys[i]);
	lama_free(head_keys);
	json_decref(base_keys);
	json_decref(result);
	json_decref(all);
	json_decref(kept);
	lama_buf_release(&text);
	return rc;
}

static void merger_release(struct merger *m)
{
	for (size_t i = 0; i < m->ne; i++) {
		archive__node_release(&m->e[i].node);
		json_decref(m->e[i].obj);
	}
	lama_free(m->e);
	lama_free(m->f);
	json_decref(m->index);
	json_decref(m->memo);
}

int lama_archive_merge(lama_archive *a, const lama_hash *id, lama_hash *node_out)
{
	struct merger m = { .a = a };
	lama_hash *heads = NULL, *leaf = NULL;
	struct lama_put_info info;
	json_t *merged = NULL, *node = NULL, *nodes = NULL;
	int *hi = NULL, base = -1, rc, in_tx = 0;
	size_t n, nl = 0;
	double depth = 0, time = 0;
	const struct archive_rule *rule;
	const char *type;

	rc = lama_store_heads_get(a->st, id, &heads, &n);
	if (rc)
		return rc;
	if (n == 0) {
		char hex[LAMA_HASH_HEX + 1];

		lama_free(heads);
		hex_of(id, hex);
		return lama_error(LAMA_ENOTFOUND, "no versions of %s", hex);
	}
	if (n == 1) {
		if (node_out)
			*node_out = heads[0];
		lama_free(heads);
		return 0;
	}
	m.index = json_object();
	m.memo = json_object();
	nodes = json_array();
	if (!m.index || !m.memo || !nodes) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	/* the merge node names the heads and comes after all of them */
	for (size_t i = 0; i < n; i++) {
		int k = load(&m, &heads[i]);

		if (k < 0) {
			rc = k;
			goto out;
		}
		if (m.e[k].node.depth > depth)
			depth = m.e[k].node.depth;
		if (m.e[k].node.time > time)
			time = m.e[k].node.time;
		if ((rc = push_hex(nodes, &heads[i])))
			goto out;
	}
	type = archive__type(m.e[0].obj);
	if ((rule = archive__rule(a, type, NULL))) {
		/* the type merges by its own rule, from the heads alone */
		json_t **objs = lama_calloc(n, sizeof(json_t *));

		if (!objs) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			objs[i] = m.e[i].obj; /* heads were loaded first, in order */
		/* what the merger writes commits with the merge node */
		rc = lama_store_begin(a->st);
		if (!rc) {
			in_tx = 1;
			rc = rule->fn(rule->ctx, a, objs, n, &merged);
		}
		lama_free(objs);
		if (rc)
			goto fail;
		goto record;
	}
	/* its data merges the versions behind the heads */
	rc = leaves(&m, heads, n, &leaf, &nl);
	if (!rc) {
		hi = lama_calloc(nl, sizeof(int));
		if (!hi)
			rc = lama_error(LAMA_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nl && !rc; i++)
		if ((hi[i] = load(&m, &leaf[i])) < 0)
			rc = hi[i];
	if (rc)
		goto out;
	m.type = type;
	rc = lama_recipes_foreach_field(a->recipes, type, add_field, &m);
	if (!rc)
		rc = common_ancestor(&m, leaf, nl, &base);
	if (!rc) {
		merged = json_pack("{s:s}", "$type$", type);
		if (!merged)
			rc = lama_error(LAMA_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < m.nf && !rc; i++) {
		json_t *v = NULL;

		if (m.f[i].is_id)
			v = json_incref(json_object_get(m.e[hi[0]].obj, m.f[i].name));
		else if (m.f[i].rule == LAMA_CRDT_SET)
			rc = merge_set(&m, hi, nl, base, m.f[i].name, &v);
		else
			rc = merge_register(&m, hi, nl, leaf, m.f[i].name, &v);
		if (!rc && v && json_object_set_new(merged, m.f[i].name, v))
			rc = lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (rc)
		goto out;
record:
	if (!in_tx && (rc = lama_store_begin(a->st)))
		goto out;
	in_tx = 1;
	rc = archive__store(a, merged, &info);
	if (!rc && (!info.versioned || !lama_hash_eq(&info.id_hash, id)))
		rc = lama_error(LAMA_EINVAL, "a merge of %s gave an object of another ID", type);
	if (!rc) {
		char hex[LAMA_HASH_HEX + 1];

		hex_of(&info.hash, hex);
		node = json_pack("{s:s, s:{s:O}, s:s, s:f, s:f}", "$type$", "VersionNodeMerge",
				 "nodes", "$set", nodes, "data", hex, "depth", depth + 1,
				 "creationTime", time);
		rc = node ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (!rc)
		rc = archive__node_store(a, node, id, &info.node, NULL);
	if (!rc)
		rc = lama_store_heads_set(a->st, id, &info.node, 1);
fail:
	if (rc) {
		if (in_tx)
			lama_store_rollback(a->st);
		goto out;
	}
	rc = lama_store_commit(a->st);
	if (!rc && node_out)
		*node_out = info.node;
out:
	json_decref(merged);
	json_decref(node);
	json_decref(nodes);
	lama_free(hi);
	lama_free(leaf);
	lama_free(heads);
	merger_release(&m);
	return rc;
}
