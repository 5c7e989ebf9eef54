/* microdata.c: objects to ONE microdata, byte for byte as one.core's
 * convertObjToMicrodata / convertObjToIdMicrodata write it (rules in
 * docs/object-format.md), and the hashes of that text.
 *
 * Rule violations are reported with one.core's error code and message text
 * ("O2M-RTYC2: Mandatory property ..."), so that lama and ONE reject the
 * same objects for the same stated reason. */
#include <stdlib.h>
#include <string.h>

#include "object/internal.h"
#include "util/err.h"
#include "util/mem.h"

/* How much of an offending value an error message shows (lama_error keeps
 * about 500 bytes in all). */
#define SHOW_MAX 600

struct ser {
	const lama_recipes *r;
	int depth;
	pcre2_match_data *md; /* for regexps, kept for the whole object */
};

static int fields(struct ser *s, struct lama_buf *out, const struct lama__rule *rules, size_t n,
		  const json_t *obj, int id_only);

/* How one.core shows a value in a message; the text lives in *b. */
static const char *disp(const json_t *v, struct lama_buf *b)
{
	lama__value_display(v, b, SHOW_MAX);
	return b->data ? b->data : "";
}

static int rtyc1(const char *prop, const char *type, const json_t *v)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc = lama_error(LAMA_EINVAL, "O2M-RTYC1: Value for itemprop \"%s\" should be of type "
			    "\"%s\", Value: %s", prop, type, disp(v, &b));

	lama_buf_release(&b);
	return rc;
}

static int rtyc3(const char *prop, const struct lama__itemtype *t, const json_t *v)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc = lama_error(LAMA_EINVAL, "O2M-RTYC3: Property \"%s\" value \"%s\" does not match "
			    "RegExp \"%s\"", prop, disp(v, &b), t->re_source);

	lama_buf_release(&b);
	return rc;
}

static int rtyc4(const char *prop, const json_t *v)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc = lama_error(LAMA_EINVAL, "O2M-RTYC4: Value for hash-link itemprop \"%s\" should be "
			    "SHA-256 hash (lower case hex 64 characters), Value: %s", prop, disp(v, &b));

	lama_buf_release(&b);
	return rc;
}

static int cval4(const struct lama__rule *rule, const json_t *v)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc = lama_error(LAMA_EINVAL, "O2M-CVAL4: Property \"%s\" should be an array; Rule: %s;\n"
			    "Value: %s", rule->itemprop, rule->text, disp(v, &b));

	lama_buf_release(&b);
	return rc;
}

static int conv_error(const json_t *v)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc = lama_error(LAMA_EINVAL, "O2M-CONV: Parameter must be an object, value: %s",
			    disp(v, &b));

	lama_buf_release(&b);
	return rc;
}

/* The recipe of a top-level object (its "$type$"), or one.core's error. */
static int object_recipe(const lama_recipes *r, const json_t *obj, const struct lama__recipe **rec)
{
	const char *type;

	if (!json_is_object(obj) || lama__conv(obj))
		return conv_error(obj);
	type = json_string_value(json_object_get(obj, "$type$"));
	if (!(*rec = lama__recipe_find(r, type)))
		return lama_error(LAMA_EINVAL, "OR-GR1: Type \"%s\" not found in recipes",
				  type ? type : "undefined");
	return 0;
}


static int too_large(void)
{
	return lama_error(LAMA_EINVAL, "object microdata would exceed %zu bytes",
			  LAMA_OBJECT_MAX_BYTES);
}

/* Appends the strings of sv[0..n) with one capacity check: the tags are
 * where the serializer spends its calls (a printf format costs more than
 * the object's own text). */
struct span {
	const char *p;
	size_t n;
};

static int add_spans(struct lama_buf *out, const struct span *sv, size_t n)
{
	size_t i, total = 0;
	int rc;

	for (i = 0; i < n; i++)
		total += sv[i].n; /* names < LAMA_TYPE_MAX, hashes 64: no overflow */
	if ((rc = lama_buf_grow(out, total)))
		return rc;
	for (i = 0; i < n; i++) {
		memcpy(out->data + out->len, sv[i].p, sv[i].n);
		out->len += sv[i].n;
	}
	out->data[out->len] = '\0';
	return 0;
}

#define SPAN(lit) { lit, sizeof(lit) - 1 }

/* "<tag itemprop=\"prop\">", or "<tag>" without prop. */
static int open_tag(struct lama_buf *out, const char *tag, size_t taglen, const char *prop)
{
	struct span sv[5] = { SPAN("<"), { tag, taglen }, SPAN(" itemprop=\""), { prop, 0 },
			      SPAN("\">") };

	if (!prop) {
		sv[2] = (struct span)SPAN(">");
		return add_spans(out, sv, 3);
	}
	sv[3].n = strlen(prop);
	return add_spans(out, sv, 5);
}

/* Each item of a bag or set as its own "<li>...</li>", to sort them: all in
 * one scratch buffer, found again by offset. */
struct piece {
	const char *data;
	size_t off, len;
};

static int cmp_pieces(const void *pa, const void *pb)
{
	const struct piece *a = pa, *b = pb;

	return lama__utf16_cmp(a->data, a->len, b->data, b->len);
}

/* Scalars (and references) compare by their text: in a JS Set or as Map
 * keys they can occur only once, so a repeat means the JSON describes no
 * valid JS value. Containers are compared by identity in JS, so never. */
static int is_scalar(enum lama__kind k)
{
	return k != LAMA__MAP && k != LAMA__BAG && k != LAMA__ARRAY && k != LAMA__SET &&
	       k != LAMA__OBJECT;
}

static int value(struct ser *s, struct lama_buf *out, const struct lama__itemtype *t,
		 const char *prop, const struct lama__rule *rule, const json_t *v);

/* A list: array in order, bag and set sorted by each item's "<li>" HTML in
 * UTF-16 order, which is what one.core's Array#sort does. */
static int list(struct ser *s, struct lama_buf *out, const struct lama__itemtype *t,
		const char *prop, const struct lama__rule *rule, const json_t *items)
{
	struct lama_buf scratch = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	size_t i, n = json_array_size(items);
	struct piece *pieces = NULL;
	int rc;

	if (t->kind == LAMA__ARRAY) {
		if ((rc = open_tag(out, "ol", 2, prop)))
			return rc;
		for (i = 0; i < n; i++)
			if ((rc = lama_buf_add(out, "<li>", 4)) ||
			    (rc = value(s, out, t->item, NULL, rule, json_array_get(items, i))) ||
			    (rc = lama_buf_add(out, "</li>", 5)))
				return rc;
		return lama_buf_add(out, "</ol>", 5);
	}
	if ((rc = open_tag(out, "ul", 2, prop)))
		return rc;
	if (n == 0)
		return lama_buf_add(out, "</ul>", 5);
	pieces = lama_malloc(n * sizeof(*pieces));
	if (!pieces)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		pieces[i].off = scratch.len;
		if ((rc = lama_buf_add(&scratch, "<li>", 4)) ||
		    (rc = value(s, &scratch, t->item, NULL, rule, json_array_get(items, i))) ||
		    (rc = lama_buf_add(&scratch, "</li>", 5)))
			goto out;
		pieces[i].len = scratch.len - pieces[i].off;
	}
	for (i = 0; i < n; i++) /* the buffer moves no more */
		pieces[i].data = scratch.data + pieces[i].off;
	if (n > 1)
		qsort(pieces, n, sizeof(*pieces), cmp_pieces);
	if ((rc = lama_buf_grow(out, scratch.len + 5)))
		goto out;
	for (i = 0; i < n; i++) {
		if (t->kind == LAMA__SET && i > 0 && is_scalar(t->item->kind) &&
		    pieces[i].len == pieces[i - 1].len &&
		    !memcmp(pieces[i].data, pieces[i - 1].data, pieces[i].len)) {
			rc = lama_error(LAMA_EINVAL, "LAMA-SET1: Set for itemprop \"%s\" holds a value "
					"twice", rule->itemprop);
			goto out;
		}
		if ((rc = lama_buf_add(out, pieces[i].data, pieces[i].len)))
			goto out;
	}
	rc = lama_buf_add(out, "</ul>", 5);
out:
	lama_free(pieces);
	lama_buf_release(&scratch);
	return rc;
}

static int map(struct ser *s, struct lama_buf *out, const struct lama__itemtype *t,
	       const char *prop, const struct lama__rule *rule, const json_t *entries)
{
	size_t i, n = json_array_size(entries);
	struct piece *keys = NULL; /* each key's text in out, to find repeats */
	int rc;

	if ((rc = open_tag(out, "dl", 2, prop)))
		return rc;
	if (is_scalar(t->key->kind) && n > 1 &&
	    !(keys = lama_malloc(n * sizeof(*keys))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		const json_t *e = json_array_get(entries, i);

		if ((rc = lama_buf_add(out, "<dt>", 4)))
			goto out;
		if (keys)
			keys[i].off = out->len;
		if ((rc = value(s, out, t->key, NULL, rule, json_array_get(e, 0))))
			goto out;
		if (keys)
			keys[i].len = out->len - keys[i].off;
		if ((rc = lama_buf_add(out, "</dt><dd>", 9)) ||
		    (rc = value(s, out, t->value, NULL, rule, json_array_get(e, 1))) ||
		    (rc = lama_buf_add(out, "</dd>", 5)))
			goto out;
	}
	if (keys) { /* a JS Map holds each key once */
		for (i = 0; i < n; i++)
			keys[i].data = out->data + keys[i].off;
		qsort(keys, n, sizeof(*keys), cmp_pieces);
		for (i = 1; i < n; i++)
			if (keys[i].len == keys[i - 1].len &&
			    !memcmp(keys[i].data, keys[i - 1].data, keys[i].len)) {
				rc = lama_error(LAMA_EINVAL, "LAMA-MAP1: Map for itemprop \"%s\" holds "
						"a key twice", rule->itemprop);
				goto out;
			}
	}
	rc = lama_buf_add(out, "</dl>", 5);
out:
	lama_free(keys);
	return rc;
}

static int is_ref(enum lama__kind k)
{
	return k == LAMA__REF_OBJ || k == LAMA__REF_ID || k == LAMA__REF_CLOB || k == LAMA__REF_BLOB;
}

static struct span ref_type(enum lama__kind k)
{
	switch (k) {
	case LAMA__REF_OBJ: return (struct span)SPAN("obj");
	case LAMA__REF_ID: return (struct span)SPAN("id");
	case LAMA__REF_CLOB: return (struct span)SPAN("clob");
	default: return (struct span)SPAN("blob");
	}
}

static enum lama_ref_kind ref_kind(enum lama__kind k)
{
	switch (k) {
	case LAMA__REF_OBJ: return LAMA_REF_OBJ;
	case LAMA__REF_ID: return LAMA_REF_ID;
	case LAMA__REF_CLOB: return LAMA_REF_CLOB;
	default: return LAMA_REF_BLOB;
	}
}

/* One value of itemtype t. prop is the itemprop attribute to write (NULL
 * inside collections); rule is the enclosing rule, named in messages. */
static int value(struct ser *s, struct lama_buf *out, const struct lama__itemtype *t,
		 const char *prop, const struct lama__rule *rule, const json_t *v)
{
	const char *p = rule->itemprop;
	const json_t *a;
	double d;
	int rc;

	switch (t->kind) {
	case LAMA__STRING: {
		const char *str = json_string_value(v);
		size_t len = json_string_length(v);

		if (!str)
			return rtyc1(p, "string", v);
		if ((rc = lama__re_match(t, str, len, &s->md)) <= 0)
			return rc < 0 ? rc : rtyc3(p, t, v);
		if ((prop && (rc = open_tag(out, "span", 4, prop))) ||
		    (rc = lama__html_escape(str, len, out)))
			return rc;
		break;
	}
	case LAMA__INTEGER:
		if (!lama__num(v, &d) || !lama__is_integer(d))
			return rtyc1(p, "integer", v);
		if ((prop && (rc = open_tag(out, "span", 4, prop))) || (rc = lama_jsnum_write(d, out)))
			return rc;
		break;
	case LAMA__NUMBER:
		if (!lama__num(v, &d))
			return rtyc1(p, "number", v);
		if ((prop && (rc = open_tag(out, "span", 4, prop))) || (rc = lama_jsnum_write(d, out)))
			return rc;
		break;
	case LAMA__BOOLEAN:
		if (!json_is_boolean(v))
			return rtyc1(p, "boolean", v);
		if ((prop && (rc = open_tag(out, "span", 4, prop))) ||
		    (rc = json_is_true(v) ? lama_buf_add(out, "true", 4) : lama_buf_add(out, "false", 5)))
			return rc;
		break;
	case LAMA__STRINGIFIABLE: {
		struct lama_buf js = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);

		if (!(rc = lama__stringify_sorted(v, &js)) &&
		    !(prop && (rc = open_tag(out, "span", 4, prop))))
			rc = lama__html_escape(js.data ? js.data : "", js.len, out);
		lama_buf_release(&js);
		if (rc)
			return rc;
		break;
	}
	case LAMA__REF_OBJ:
	case LAMA__REF_ID:
	case LAMA__REF_CLOB:
	case LAMA__REF_BLOB: {
		struct span sv[7] = { SPAN("<a itemprop=\""), { prop, 0 }, SPAN("\" data-type=\""),
				      ref_type(t->kind), SPAN("\">"), { json_string_value(v), LAMA_HASH_HEX },
				      SPAN("</a>") };

		if (!json_is_string(v) || !lama__hash_from_hex(json_string_value(v),
							       json_string_length(v), NULL))
			return rtyc4(p, v);
		if (prop) {
			sv[1].n = strlen(prop);
			return add_spans(out, sv, 7);
		}
		sv[2] = (struct span)SPAN("<a data-type=\"");
		return add_spans(out, sv + 2, 5);
	}
	case LAMA__ARRAY:
	case LAMA__BAG:
	case LAMA__SET:
	case LAMA__MAP:
	case LAMA__OBJECT:
		if (++s->depth > LAMA_OBJECT_MAX_DEPTH)
			return lama_error(LAMA_EINVAL, "LAMA-DEPTH: value of \"%s\" nested deeper "
					  "than %d levels", p, LAMA_OBJECT_MAX_DEPTH);
		if (t->kind == LAMA__SET)
			rc = (a = lama__set_items(v)) ? list(s, out, t, prop, rule, a) : rtyc1(p, "set", v);
		else if (t->kind == LAMA__MAP)
			rc = (a = lama__map_entries(v)) ? map(s, out, t, prop, rule, a) : rtyc1(p, "map", v);
		else if (t->kind == LAMA__OBJECT)
			rc = !json_is_object(v) || lama__conv(v) ? rtyc1(p, "object", v)
			   : (rc = open_tag(out, "div", 3, prop)) ? rc
			   : (rc = fields(s, out, t->rules, t->nrules, v, 0)) ? rc
			   : lama_buf_add(out, "</div>", 6);
		else
			rc = json_is_array(v) ? list(s, out, t, prop, rule, v) : cval4(rule, v);
		s->depth--;
		return rc;
	}
	return prop ? lama_buf_add(out, "</span>", 7) : 0;
}

static int fields(struct ser *s, struct lama_buf *out, const struct lama__rule *rules, size_t n,
		  const json_t *obj, int id_only)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		const struct lama__rule *rule = &rules[i];
		const struct lama__itemtype *t;
		const json_t *v;

		if (id_only && !rule->is_id)
			continue;
		v = json_object_get(obj, rule->itemprop);
		if (!v || json_is_null(v)) {
			if (rule->optional)
				continue;
			return lama_error(LAMA_EINVAL, "O2M-RTYC2: Mandatory property \"%s\" missing; "
					  "Rule: %s", rule->itemprop, rule->text);
		}
		if ((rc = lama__rule_type(s->r, rule, &t)) ||
		    (rc = value(s, out, t, rule->itemprop, rule, v)))
			return rc;
	}
	return 0;
}

static int has_rule(const struct lama__recipe *rec, const char *key)
{
	size_t i;

	for (i = 0; i < rec->nrules; i++)
		if (!strcmp(rec->rules[i].itemprop, key))
			return 1;
	return 0;
}

/* O2M-COBJ2: every property needs a rule (top level only, as in one.core). */
static int unknown_props(const struct lama__recipe *rec, const json_t *obj)
{
	struct lama_buf names = LAMA_BUF_INIT(LAMA_BUF_MAX), shown = LAMA_BUF_INIT(LAMA_BUF_MAX);
	const char *k;
	json_t *v;
	int rc = 0;

	json_object_foreach((json_t *)obj, k, v) {
		if (!strcmp(k, "$type$") || !strcmp(k, "$versionHash$") || has_rule(rec, k))
			continue;
		if (names.len > SHOW_MAX)
			continue;
		lama_buf_addch(&names, names.len ? ',' : '[');
		lama__json_string(k, strlen(k), &names);
	}
	if (names.len) {
		lama__value_display(obj, &shown, SHOW_MAX);
		rc = lama_error(LAMA_EINVAL, "O2M-COBJ2: Unknown properties %s] in %s", names.data,
				shown.data ? shown.data : "");
	}
	lama_buf_release(&names);
	lama_buf_release(&shown);
	return rc;
}

int lama__serialize(const lama_recipes *r, const json_t *obj, int id_form, struct lama_buf *out)
{
	struct ser s = { r, 0, NULL };
	const struct lama__recipe *rec;
	size_t start = out->len, max = out->max;
	int had_data = out->data != NULL;
	int rc;

	if ((rc = object_recipe(r, obj, &rec)))
		return rc;
	if (id_form && !rec->versioned)
		return lama_error(LAMA_EINVAL, "Type \"%s\" has no ID properties, so it has no ID "
				  "object", rec->name);
	if (!id_form && (rc = unknown_props(rec, obj)))
		return rc;
	/* Written straight into out, cut back on failure; the ceiling is
	 * lowered for the while so that one object stops at its own limit. */
	if (max - start > LAMA_OBJECT_MAX_BYTES)
		out->max = start + LAMA_OBJECT_MAX_BYTES;
	{
		struct span sv[5] = { SPAN("<div"), SPAN(" data-id-object=\"true\""),
				      SPAN(" itemscope itemtype=\"//refin.io/"),
				      { rec->name, strlen(rec->name) }, SPAN("\">") };

		if (!id_form)
			sv[1].n = 0;
		rc = add_spans(out, sv, 5);
	}
	if (!rc && !(rc = fields(&s, out, rec->rules, rec->nrules, obj, id_form)))
		rc = lama_buf_add(out, "</div>", 6);
	out->max = max;
	if (rc) {
		if (had_data)
			lama_buf_truncate(out, start);
		else /* as it was: nothing allocated, so callers need not release */
			lama_buf_release(out);
		if (rc == LAMA_ELIMIT)
			rc = too_large();
	}
	pcre2_match_data_free(s.md);
	return rc;
}

int lama_object_microdata(const lama_recipes *r, const json_t *obj, struct lama_buf *out)
{
	return lama__serialize(r, obj, 0, out);
}

int lama_object_id_microdata(const lama_recipes *r, const json_t *obj, struct lama_buf *out)
{
	return lama__serialize(r, obj, 1, out);
}

int lama_object_hash(const lama_recipes *r, const json_t *obj, lama_hash *hash, lama_hash *id_hash)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	int rc = 0;

	if (hash) {
		if ((rc = lama__serialize(r, obj, 0, &b)))
			goto out;
		lama_sha256(b.data, b.len, hash);
		lama_buf_truncate(&b, 0);
	}
	if (id_hash) {
		if ((rc = lama__serialize(r, obj, 1, &b)))
			goto out;
		lama_sha256(b.data, b.len, id_hash);
	}
out:
	lama_buf_release(&b);
	return rc;
}

/* --- references --- */

/* The walk over the JSON value that lama_object_foreach_ref makes: the
 * serializer's walk without writing anything. It checks the shapes it
 * passes through (with the serializer's messages), not the scalars. */
struct walk {
	const lama_recipes *r;
	int depth;
	int (*fn)(void *ctx, const char *itemprop, enum lama_ref_kind kind,
		  const lama_hash *target);
	void *ctx;
};

static int walk_fields(struct walk *w, const struct lama__rule *rules, size_t n,
		       const json_t *obj);

static int walk_items(struct walk *w, const struct lama__itemtype *t,
		      const struct lama__rule *rule, const json_t *items);

static int walk_value(struct walk *w, const struct lama__itemtype *t,
		      const struct lama__rule *rule, const json_t *v)
{
	const char *p = rule->itemprop;
	const json_t *a;
	lama_hash h;
	int rc;

	if (is_ref(t->kind)) {
		if (!json_is_string(v) ||
		    !lama__hash_from_hex(json_string_value(v), json_string_length(v), &h))
			return rtyc4(p, v);
		return w->fn(w->ctx, p, ref_kind(t->kind), &h);
	}
	if (is_scalar(t->kind))
		return 0;
	if (++w->depth > LAMA_OBJECT_MAX_DEPTH)
		return lama_error(LAMA_EINVAL, "LAMA-DEPTH: value of \"%s\" nested deeper than %d "
				  "levels", p, LAMA_OBJECT_MAX_DEPTH);
	switch (t->kind) {
	case LAMA__SET:
		rc = (a = lama__set_items(v)) ? walk_items(w, t, rule, a) : rtyc1(p, "set", v);
		break;
	case LAMA__MAP:
		rc = (a = lama__map_entries(v)) ? walk_items(w, t, rule, a) : rtyc1(p, "map", v);
		break;
	case LAMA__OBJECT:
		rc = !json_is_object(v) || lama__conv(v) ? rtyc1(p, "object", v)
		   : walk_fields(w, t->rules, t->nrules, v);
		break;
	default: /* array, bag */
		rc = json_is_array(v) ? walk_items(w, t, rule, v) : cval4(rule, v);
		break;
	}
	w->depth--;
	return rc;
}

/* The items of a list, or the [key, value] entries of a map. */
static int walk_items(struct walk *w, const struct lama__itemtype *t,
		      const struct lama__rule *rule, const json_t *items)
{
	size_t i, n = json_array_size(items);
	int rc;

	for (i = 0; i < n; i++) {
		const json_t *e = json_array_get(items, i);

		if (t->kind != LAMA__MAP)
			rc = walk_value(w, t->item, rule, e);
		else if (!(rc = walk_value(w, t->key, rule, json_array_get(e, 0))))
			rc = walk_value(w, t->value, rule, json_array_get(e, 1));
		if (rc)
			return rc;
	}
	return 0;
}

static int walk_fields(struct walk *w, const struct lama__rule *rules, size_t n,
		       const json_t *obj)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		const struct lama__rule *rule = &rules[i];
		const struct lama__itemtype *t;
		const json_t *v = json_object_get(obj, rule->itemprop);

		if (!v || json_is_null(v)) {
			if (rule->optional)
				continue;
			return lama_error(LAMA_EINVAL, "O2M-RTYC2: Mandatory property \"%s\" missing; "
					  "Rule: %s", rule->itemprop, rule->text);
		}
		if ((rc = lama__rule_type(w->r, rule, &t)) || (rc = walk_value(w, t, rule, v)))
			return rc;
	}
	return 0;
}

int lama_object_foreach_ref(const lama_recipes *r, const json_t *obj,
			    int (*fn)(void *ctx, const char *itemprop, enum lama_ref_kind kind,
				      const lama_hash *target),
			    void *ctx)
{
	struct walk w = { r, 0, fn, ctx };
	const struct lama__recipe *rec;
	int rc;

	if ((rc = object_recipe(r, obj, &rec)))
		return rc;
	return walk_fields(&w, rec->rules, rec->nrules, obj);
}
