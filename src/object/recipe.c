/* recipe.c: the recipe registry. A recipe is checked and compiled once when
 * it is added (itemtypes into a tree, regexps into PCRE2 code), so that
 * serializing and parsing only walk the tree. inheritFrom is resolved when a
 * rule is used, so recipes may be added in any order and a replaced base
 * recipe takes effect everywhere. */
#include <stdlib.h>
#include <string.h>

#include "object/internal.h"
#include "util/err.h"
#include "util/mem.h"

/* PCRE2 keeps going on catastrophic patterns far longer than a message
 * handler should; recipes are trusted, strings are not. */
#define RE_MATCH_LIMIT 1000000
#define RE_DEPTH_LIMIT 10000
/* Hops through inheritFrom before we call it a cycle. */
#define INHERIT_MAX_HOPS 16

struct lama_recipes {
	struct lama__recipe **v; /* sorted by name */
	size_t n, cap;
	pcre2_general_context *gctx;
	pcre2_compile_context *cctx;
	pcre2_match_context *mctx;
};

/* PCRE2 allocates through lama's allocator too, so fault injection and the
 * leak checks cover it. */
static void *re_malloc(size_t n, void *ctx)
{
	(void)ctx;
	return lama_malloc(n);
}

static void re_free(void *p, void *ctx)
{
	(void)ctx;
	lama_free(p);
}

static const char *const kind_names[] = {
	[LAMA__STRING] = "string",
	[LAMA__INTEGER] = "integer",
	[LAMA__NUMBER] = "number",
	[LAMA__BOOLEAN] = "boolean",
	[LAMA__STRINGIFIABLE] = "stringifiable",
	[LAMA__REF_OBJ] = "referenceToObj",
	[LAMA__REF_ID] = "referenceToId",
	[LAMA__REF_CLOB] = "referenceToClob",
	[LAMA__REF_BLOB] = "referenceToBlob",
	[LAMA__MAP] = "map",
	[LAMA__BAG] = "bag",
	[LAMA__ARRAY] = "array",
	[LAMA__SET] = "set",
	[LAMA__OBJECT] = "object",
};

const char *lama__kind_name(enum lama__kind k)
{
	return kind_names[k];
}

/* --- freeing --- */

static void free_rules(struct lama__rule *rules, size_t n);

static void free_itemtype(struct lama__itemtype *t)
{
	if (!t)
		return;
	pcre2_code_free(t->re);
	lama_free(t->re_source);
	free_itemtype(t->key);
	free_itemtype(t->value);
	free_itemtype(t->item);
	free_rules(t->rules, t->nrules);
	lama_free(t);
}

static void free_rules(struct lama__rule *rules, size_t n)
{
	size_t i;

	if (!rules)
		return;
	for (i = 0; i < n; i++) {
		lama_free(rules[i].itemprop);
		free_itemtype(rules[i].type);
		lama_free(rules[i].inherit);
		lama_free(rules[i].text);
	}
	lama_free(rules);
}

static void free_recipe(struct lama__recipe *rec)
{
	if (!rec)
		return;
	lama_free(rec->name);
	free_rules(rec->rules, rec->nrules);
	json_decref(rec->json);
	lama_free(rec);
}

/* --- registry --- */

int lama_recipes_new(lama_recipes **out)
{
	lama_recipes *r;

	*out = NULL;
	r = lama_calloc(1, sizeof(*r));
	if (!r)
		return lama_error(LAMA_ENOMEM, "out of memory");
	r->gctx = pcre2_general_context_create(re_malloc, re_free, NULL);
	if (r->gctx)
		r->cctx = pcre2_compile_context_create(r->gctx);
	if (r->gctx)
		r->mctx = pcre2_match_context_create(r->gctx);
	if (!r->gctx || !r->cctx || !r->mctx) {
		lama_recipes_free(r);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	pcre2_set_match_limit(r->mctx, RE_MATCH_LIMIT);
	pcre2_set_depth_limit(r->mctx, RE_DEPTH_LIMIT);
	*out = r;
	return 0;
}

void lama_recipes_free(lama_recipes *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++)
		free_recipe(r->v[i]);
	lama_free(r->v);
	pcre2_match_context_free(r->mctx);
	pcre2_compile_context_free(r->cctx);
	pcre2_general_context_free(r->gctx);
	lama_free(r);
}

/* Index of name, or where it would go (*found 0). */
static size_t find_pos(const lama_recipes *r, const char *name, int *found)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->v[mid]->name, name);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

const struct lama__recipe *lama__recipe_find(const lama_recipes *r, const char *name)
{
	int found;
	size_t i;

	if (!r || !name)
		return NULL;
	i = find_pos(r, name, &found);
	return found ? r->v[i] : NULL;
}

int lama_recipes_has(const lama_recipes *r, const char *type)
{
	return lama__recipe_find(r, type) != NULL;
}

int lama_recipes_is_versioned(const lama_recipes *r, const char *type)
{
	const struct lama__recipe *rec = lama__recipe_find(r, type);

	if (!rec)
		return lama_error(LAMA_ENOTFOUND, "OR-GR1: Type \"%s\" not found in recipes",
				  type ? type : "undefined");
	return rec->versioned;
}

json_t *lama_recipes_get_json(const lama_recipes *r, const char *type)
{
	const struct lama__recipe *rec = lama__recipe_find(r, type);

	return rec ? json_deep_copy(rec->json) : NULL;
}

/* --- compiling a recipe --- */

struct compile {
	lama_recipes *r;
	const char *recipe; /* name, for messages */
};

/* Names go into attributes unescaped (itemtype="//refin.io/NAME",
 * itemprop="NAME"), so they must not be able to end or break the tag. */
static int valid_name(const json_t *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)json_string_value(s);
	size_t i, n = json_string_length(s);

	if (!p || n == 0 || n >= max)
		return 0;
	for (i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] == 0x7f || strchr("\"'&<>", p[i]))
			return 0;
	return 1;
}

static int bad(const struct compile *c, const char *what, const char *detail)
{
	return lama_error(LAMA_EINVAL, "recipe \"%s\": %s%s%s", c->recipe, what,
			  detail ? ": " : "", detail ? detail : "");
}

static int compile_rules(struct compile *c, const json_t *arr, int depth, struct lama__rule **out,
			 size_t *nout);

static int compile_regexp(struct compile *c, const json_t *re, struct lama__itemtype *t)
{
	uint32_t opts = PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS |
			PCRE2_MATCH_UNSET_BACKREF; /* the ECMAScript-like set */
	const char *src, *flags = "";
	size_t srclen;
	int errcode;
	PCRE2_SIZE erroff;

	if (json_is_string(re)) { /* as a Recipe object parsed from microdata has it */
		src = json_string_value(re);
		srclen = json_string_length(re);
	} else if (lama__conv(re) == LAMA__CONV_REGEXP) {
		const json_t *body = json_object_get(re, "$regexp");
		const json_t *s = json_object_get(body, "source"), *f = json_object_get(body, "flags");

		if (!json_is_string(s) || (f && !json_is_string(f)))
			return bad(c, "malformed regexp", NULL);
		src = json_string_value(s);
		srclen = json_string_length(s);
		if (f)
			flags = json_string_value(f);
	} else {
		return bad(c, "regexp must be a $regexp or a string", NULL);
	}
	for (; *flags; flags++) {
		switch (*flags) {
		case 'i': opts |= PCRE2_CASELESS; break;
		case 'm': opts |= PCRE2_MULTILINE; break;
		case 's': opts |= PCRE2_DOTALL; break;
		case 'u': case 'd': break; /* no effect on test() over UTF-8 text */
		default: return bad(c, "unsupported regexp flag (only i, m, s, u, d)", NULL);
		}
	}
	t->re_source = lama_strndup(src, srclen);
	if (!t->re_source)
		return lama_error(LAMA_ENOMEM, "out of memory");
	t->gctx = c->r->gctx;
	t->mctx = c->r->mctx;
	t->re = pcre2_compile((PCRE2_SPTR)src, srclen, opts, &errcode, &erroff, c->r->cctx);
	if (!t->re) {
		PCRE2_UCHAR msg[120];

		if (errcode == PCRE2_ERROR_HEAP_FAILED || errcode == PCRE2_ERROR_NOMEMORY)
			return lama_error(LAMA_ENOMEM, "out of memory");
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		return lama_error(LAMA_EINVAL, "recipe \"%s\": regexp /%s/ at %zu: %s", c->recipe,
				  t->re_source, (size_t)erroff, (const char *)msg);
	}
	return 0;
}

static int check_allowed_types(struct compile *c, const json_t *at)
{
	const json_t *a, *e;
	size_t i;

	if (!at)
		return 0;
	a = json_is_array(at) ? at : lama__set_items(at);
	if (!a)
		return bad(c, "allowedTypes must be a $set or an array", NULL);
	json_array_foreach(a, i, e)
		if (!json_is_string(e))
			return bad(c, "allowedTypes must hold type names", NULL);
	return 0;
}

static int compile_itemtype(struct compile *c, const json_t *j, int depth,
			    struct lama__itemtype **out)
{
	struct lama__itemtype *t;
	const char *type;
	int rc = 0;
	size_t k;

	*out = NULL;
	if (depth > LAMA_OBJECT_MAX_DEPTH)
		return bad(c, "itemtypes nested too deep", NULL);
	if (!json_is_object(j) || !(type = json_string_value(json_object_get(j, "type"))))
		return bad(c, "an itemtype must be an object with a \"type\"", NULL);
	for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
		if (!strcmp(type, kind_names[k]))
			break;
	if (k == sizeof(kind_names) / sizeof(kind_names[0]))
		return bad(c, "unknown itemtype", type);
	t = lama_calloc(1, sizeof(*t));
	if (!t)
		return lama_error(LAMA_ENOMEM, "out of memory");
	t->kind = (enum lama__kind)k;
	switch (t->kind) {
	case LAMA__STRING:
		if (json_object_get(j, "regexp"))
			rc = compile_regexp(c, json_object_get(j, "regexp"), t);
		break;
	case LAMA__REF_OBJ:
	case LAMA__REF_ID:
		rc = check_allowed_types(c, json_object_get(j, "allowedTypes"));
		break;
	case LAMA__MAP:
		rc = compile_itemtype(c, json_object_get(j, "key"), depth + 1, &t->key);
		if (!rc)
			rc = compile_itemtype(c, json_object_get(j, "value"), depth + 1, &t->value);
		break;
	case LAMA__BAG:
	case LAMA__ARRAY:
	case LAMA__SET:
		rc = compile_itemtype(c, json_object_get(j, "item"), depth + 1, &t->item);
		break;
	case LAMA__OBJECT:
		rc = compile_rules(c, json_object_get(j, "rules"), depth + 1, &t->rules, &t->nrules);
		break;
	default:
		break;
	}
	if (rc) {
		free_itemtype(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* inheritFrom "Type.itemprop[.itemprop...]": checked for shape here,
 * resolved on use. */
static int valid_inherit(const json_t *s)
{
	const char *p = json_string_value(s);
	size_t n = json_string_length(s), i;
	const char *dot;

	if (!p || n == 0 || strlen(p) != n || !(dot = strchr(p, '.')) || dot == p ||
	    (size_t)(dot - p) >= LAMA_TYPE_MAX)
		return 0;
	for (i = 1; i < n; i++)
		if (p[i] == '.' && (p[i - 1] == '.' || i == n - 1))
			return 0;
	return 1;
}

static int compile_rule(struct compile *c, const json_t *j, int depth, struct lama__rule *rule)
{
	const json_t *prop = json_object_get(j, "itemprop");
	const json_t *opt = json_object_get(j, "optional"), *isid = json_object_get(j, "isId");
	const json_t *it = json_object_get(j, "itemtype"), *inh = json_object_get(j, "inheritFrom");
	struct lama_buf text = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	int rc;

	if (!json_is_object(j))
		return bad(c, "a rule must be an object", NULL);
	if (!valid_name(prop, LAMA_TYPE_MAX) || !strcmp(json_string_value(prop), "$type$") ||
	    !strcmp(json_string_value(prop), "$versionHash$"))
		return bad(c, "a rule needs a valid itemprop", json_string_value(prop));
	if ((opt && !json_is_boolean(opt)) || (isid && !json_is_boolean(isid)))
		return bad(c, "optional and isId must be booleans", json_string_value(prop));
	if (it && inh)
		return bad(c, "a rule has either itemtype or inheritFrom", json_string_value(prop));
	if (inh && !valid_inherit(inh))
		return bad(c, "inheritFrom must be \"Type.itemprop\"", json_string_value(prop));
	rule->itemprop = lama_strdup(json_string_value(prop));
	if (!rule->itemprop)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rule->optional = json_is_true(opt);
	rule->is_id = json_is_true(isid);
	if (inh) {
		if (!(rule->inherit = lama_strdup(json_string_value(inh))))
			return lama_error(LAMA_ENOMEM, "out of memory");
	} else if (it) {
		if ((rc = compile_itemtype(c, it, depth, &rule->type)))
			return rc;
	} else { /* no itemtype means string */
		if (!(rule->type = lama_calloc(1, sizeof(*rule->type))))
			return lama_error(LAMA_ENOMEM, "out of memory");
		rule->type->kind = LAMA__STRING;
	}
	if ((rc = lama__stringify_sorted(j, &text))) {
		lama_buf_release(&text);
		return rc;
	}
	rule->text = lama_buf_detach(&text, NULL);
	return rule->text ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
}

static int compile_rules(struct compile *c, const json_t *arr, int depth, struct lama__rule **out,
			 size_t *nout)
{
	size_t i, k, n;
	struct lama__rule *rules;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!json_is_array(arr))
		return bad(c, "rules must be an array", NULL);
	n = json_array_size(arr);
	rules = lama_calloc(n ? n : 1, sizeof(*rules));
	if (!rules)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (i = 0; i < n && !rc; i++) {
		rc = compile_rule(c, json_array_get(arr, i), depth, &rules[i]);
		for (k = 0; k < i && !rc; k++)
			if (!strcmp(rules[k].itemprop, rules[i].itemprop))
				rc = bad(c, "itemprop appears twice", rules[i].itemprop);
	}
	if (rc) {
		free_rules(rules, n);
		return rc;
	}
	*out = rules;
	*nout = n;
	return 0;
}

/* crdtConfig as a $map of string pairs; an array of pairs (the form of
 * recipes.json) becomes a $map. Returns a new reference or NULL. */
static int normalize_crdt(struct compile *c, const json_t *cfg, json_t **out)
{
	const json_t *entries, *e;
	size_t i;

	*out = NULL;
	entries = json_is_array(cfg) ? cfg : lama__map_entries(cfg);
	if (!entries)
		return bad(c, "crdtConfig must be a $map or an array of pairs", NULL);
	json_array_foreach(entries, i, e)
		if (!json_is_array(e) || json_array_size(e) != 2 ||
		    !json_is_string(json_array_get(e, 0)) || !json_is_string(json_array_get(e, 1)))
			return bad(c, "crdtConfig entries must be [string, string]", NULL);
	*out = json_pack("{s:O}", "$map", entries);
	return *out ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
}

int lama_recipes_add(lama_recipes *r, const json_t *j)
{
	struct compile c = { r, "?" };
	struct lama__recipe *rec = NULL;
	const json_t *name, *type, *cfg;
	json_t *crdt = NULL;
	size_t i, pos;
	int rc, found;

	if (!json_is_object(j))
		return lama_error(LAMA_EINVAL, "a recipe must be a JSON object");
	type = json_object_get(j, "$type$");
	if (type && (!json_is_string(type) || strcmp(json_string_value(type), "Recipe")))
		return lama_error(LAMA_EINVAL, "a recipe must have $type$ \"Recipe\"");
	name = json_object_get(j, "name");
	if (!valid_name(name, LAMA_TYPE_MAX))
		return lama_error(LAMA_EINVAL, "a recipe needs a valid name (1 to %d characters, no "
				  "spaces, quotes or markup)", LAMA_TYPE_MAX - 1);
	c.recipe = json_string_value(name);
	if ((cfg = json_object_get(j, "crdtConfig")) && !json_is_null(cfg) &&
	    (rc = normalize_crdt(&c, cfg, &crdt)))
		return rc;

	rc = LAMA_ENOMEM;
	rec = lama_calloc(1, sizeof(*rec));
	if (!rec || !(rec->name = lama_strdup(c.recipe)) || !(rec->json = json_deep_copy(j)) ||
	    json_object_set_new(rec->json, "$type$", json_string("Recipe")) ||
	    (crdt && json_object_set(rec->json, "crdtConfig", crdt))) {
		lama_error(LAMA_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = compile_rules(&c, json_object_get(j, "rule"), 0, &rec->rules, &rec->nrules)))
		goto fail;
	for (i = 0; i < rec->nrules; i++)
		rec->versioned |= rec->rules[i].is_id;

	pos = find_pos(r, rec->name, &found);
	if (found) {
		free_recipe(r->v[pos]);
		r->v[pos] = rec;
	} else {
		if (lama_grow(&r->v, &r->cap, r->n, sizeof(*r->v), 64)) {
			rc = LAMA_ENOMEM;
			goto fail;
		}
		memmove(r->v + pos + 1, r->v + pos, (r->n - pos) * sizeof(*r->v));
		r->v[pos] = rec;
		r->n++;
	}
	json_decref(crdt);
	return 0;
fail:
	json_decref(crdt);
	free_recipe(rec);
	return rc;
}

int lama_recipes_add_all(lama_recipes *r, const json_t *array)
{
	const json_t *e;
	size_t i;
	int rc;

	if (!json_is_array(array))
		return lama_error(LAMA_EINVAL, "recipes must be a JSON array");
	json_array_foreach(array, i, e)
		if ((rc = lama_recipes_add(r, e)))
			return rc;
	return 0;
}

int lama_recipes_add_builtin(lama_recipes *r)
{
	json_error_t err;
	json_t *all;
	int rc;

	all = json_loadb((const char *)lama__builtin_recipes, lama__builtin_recipes_len,
			 LAMA_JSON_FLAGS, &err);
	if (!all) /* only out of memory: the text was checked at build time */
		return lama_error(LAMA_ENOMEM, "builtin recipes: %s", err.text);
	rc = lama_recipes_add_all(r, all);
	json_decref(all);
	return rc;
}

/* --- using rules --- */

static int resolve(const lama_recipes *r, const struct lama__rule *rule, int hops,
		   const struct lama__itemtype **out)
{
	char type[LAMA_TYPE_MAX];
	const struct lama__recipe *rec;
	const struct lama__rule *rules, *found = NULL;
	size_t nrules, i;
	const char *p, *dot;
	int rc;

	if (rule->type) {
		*out = rule->type;
		return 0;
	}
	if (hops > INHERIT_MAX_HOPS)
		return lama_error(LAMA_EINVAL, "inheritFrom \"%s\": too many hops (a cycle?)",
				  rule->inherit);
	dot = strchr(rule->inherit, '.');
	memcpy(type, rule->inherit, (size_t)(dot - rule->inherit));
	type[dot - rule->inherit] = '\0';
	if (!(rec = lama__recipe_find(r, type)))
		return lama_error(LAMA_EINVAL, "inheritFrom \"%s\": OR-GR1: Type \"%s\" not found in "
				  "recipes", rule->inherit, type);
	rules = rec->rules;
	nrules = rec->nrules;
	for (p = dot + 1;;) {
		size_t len;
		const struct lama__itemtype *t;

		dot = strchr(p, '.');
		len = dot ? (size_t)(dot - p) : strlen(p);
		found = NULL;
		for (i = 0; i < nrules && !found; i++)
			if (strlen(rules[i].itemprop) == len && !memcmp(rules[i].itemprop, p, len))
				found = &rules[i];
		if (!found)
			return lama_error(LAMA_EINVAL, "inheritFrom \"%s\": no such rule",
					  rule->inherit);
		if (!dot)
			return resolve(r, found, hops + 1, out);
		if ((rc = resolve(r, found, hops + 1, &t)))
			return rc;
		if (t->kind != LAMA__OBJECT)
			return lama_error(LAMA_EINVAL, "inheritFrom \"%s\": not an object",
					  rule->inherit);
		rules = t->rules;
		nrules = t->nrules;
		p = dot + 1;
	}
}

int lama__rule_type(const lama_recipes *r, const struct lama__rule *rule,
		    const struct lama__itemtype **out)
{
	return resolve(r, rule, 0, out);
}

int lama__re_match(const struct lama__itemtype *t, const char *s, size_t n,
		   pcre2_match_data **md)
{
	int rc;

	if (!t->re)
		return 1;
	/* test() needs no captures: one pair fits every pattern (a pattern with
	 * more groups returns 0, "ovector too small", which is still a match) */
	if (!*md && !(*md = pcre2_match_data_create(1, t->gctx)))
		return lama_error(LAMA_ENOMEM, "out of memory");
	/* JavaScript's RegExp#test: an unanchored search */
	rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, 0, 0, *md, t->mctx);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc == PCRE2_ERROR_NOMEMORY)
		return lama_error(LAMA_ENOMEM, "out of memory");
	return lama_error(LAMA_EINVAL, "regexp /%s/ could not be evaluated (PCRE2 error %d)",
			  t->re_source, rc);
}

/* A crdtConfig key names a field as "itemprop" or "itemprop#itemtype". The
 * value names an algorithm; lama knows two kinds, sets and registers. */
static enum lama_crdt_rule crdt_rule(const struct lama__recipe *rec, const char *itemprop,
				     enum lama_crdt_rule dflt)
{
	const json_t *entries = lama__map_entries(json_object_get(rec->json, "crdtConfig")), *e;
	size_t i, plen = strlen(itemprop);

	json_array_foreach(entries, i, e) {
		const char *k = json_string_value(json_array_get(e, 0));
		const char *v = json_string_value(json_array_get(e, 1));

		if (!k || !v || strncmp(k, itemprop, plen) || (k[plen] != '\0' && k[plen] != '#'))
			continue;
		return strstr(v, "Set") ? LAMA_CRDT_SET : LAMA_CRDT_REGISTER;
	}
	return dflt;
}

int lama_recipes_foreach_field(const lama_recipes *r, const char *type,
			       int (*fn)(void *ctx, const char *itemprop, enum lama_crdt_rule rule, int is_id),
			       void *ctx)
{
	const struct lama__recipe *rec = lama__recipe_find(r, type);
	size_t i;
	int rc;

	if (!rec)
		return lama_error(LAMA_ENOTFOUND, "OR-GR1: Type \"%s\" not found in recipes",
				  type ? type : "undefined");
	for (i = 0; i < rec->nrules; i++) {
		const struct lama__rule *rule = &rec->rules[i];
		const struct lama__itemtype *t;

		if ((rc = lama__rule_type(r, rule, &t)))
			return rc;
		rc = fn(ctx, rule->itemprop,
			crdt_rule(rec, rule->itemprop,
				  t->kind == LAMA__SET ? LAMA_CRDT_SET : LAMA_CRDT_REGISTER),
			rule->is_id);
		if (rc)
			return rc;
	}
	return 0;
}
