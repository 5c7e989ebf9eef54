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

static int too_large(void)
{
	return lama_error(LAMA_EINVAL, "object microdata would exceed %zu bytes",
			  LAMA_OBJECT_MAX_BYTES);
}

/* Each item of a bag or set as its own "<li>...</li>", to sort them. */
struct piece {
	char *data;
	size_t len;
};

static int cmp_pieces(const void *pa, const void *pb)
{
	const struct piece *a = pa, *b = pb;

	return lama__utf16_cmp(a->data, a->len, b->data, b->len);
}

static void free_pieces(struct piece *p, size_t n)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < n; i++)
		lama_free(p[i].data);
	lama_free(p);
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

static int open_tag(struct lama_buf *out, const char *tag, const char *prop)
{
	return prop ? lama_buf_addf(out, "<%s itemprop=\"%s\">", tag, prop)
		    : lama_buf_addf(out, "<%s>", tag);
}

/* A list: array in order, bag and set sorted by each item's "<li>" HTML in
 * UTF-16 order, which is what one.core's Array#sort does. */
static int list(struct ser *s, struct lama_buf *out, const struct lama__itemtype *t,
		const char *prop, const struct lama__rule *rule, const json_t *items)
{
	size_t i, n = json_array_size(items);
	struct piece *pieces = NULL;
	int rc;

	if ((rc = open_tag(out, t->kind == LAMA__ARRAY ? "ol" : "ul", prop)))
		return rc;
	if (t->kind == LAMA__ARRAY) {
		for (i = 0; i < n; i++)
			if ((rc = lama_buf_addstr(out, "<li>")) ||
			    (rc = value(s, out, t->item, NULL, rule, json_array_get(items, i))) ||
			    (rc = lama_buf_addstr(out, "</li>")))
				return rc;
		return lama_buf_addstr(out, "</ol>");
	}
	pieces = lama_calloc(n ? n : 1, sizeof(*pieces));
	if (!pieces)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		struct lama_buf b = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);

		if ((rc = lama_buf_addstr(&b, "<li>")) ||
		    (rc = value(s, &b, t->item, NULL, rule, json_array_get(items, i))) ||
		    (rc = lama_buf_addstr(&b, "</li>"))) {
			lama_buf_release(&b);
			goto out;
		}
		pieces[i].data = lama_buf_detach(&b, &pieces[i].len);
		if (!pieces[i].data) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto out;
		}
	}
	qsort(pieces, n, sizeof(*pieces), cmp_pieces);
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
	rc = lama_buf_addstr(out, "</ul>");
out:
	free_pieces(pieces, n);
	return rc;
}

static int map(struct ser *s, struct lama_buf *out, const struct lama__itemtype *t,
	       const char *prop, const struct lama__rule *rule, const json_t *entries)
{
	size_t i, n = json_array_size(entries);
	struct piece *keys = NULL;
	int rc;

	if ((rc = open_tag(out, "dl", prop)))
		return rc;
	if (is_scalar(t->key->kind) && n > 1 &&
	    !(keys = lama_calloc(n, sizeof(*keys))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		const json_t *e = json_array_get(entries, i);
		size_t kstart;

		if ((rc = lama_buf_addstr(out, "<dt>")))
			goto out;
		kstart = out->len;
		if ((rc = value(s, out, t->key, NULL, rule, json_array_get(e, 0))))
			goto out;
		if (keys && !(keys[i].data = lama_strndup(out->data + kstart, out->len - kstart))) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto out;
		}
		if (keys)
			keys[i].len = out->len - kstart;
		if ((rc = lama_buf_addstr(out, "</dt><dd>")) ||
		    (rc = value(s, out, t->value, NULL, rule, json_array_get(e, 1))) ||
		    (rc = lama_buf_addstr(out, "</dd>")))
			goto out;
	}
	if (keys) { /* a JS Map holds each key once */
		qsort(keys, n, sizeof(*keys), cmp_pieces);
		for (i = 1; i < n; i++)
			if (keys[i].len == keys[i - 1].len &&
			    !memcmp(keys[i].data, keys[i - 1].data, keys[i].len)) {
				rc = lama_error(LAMA_EINVAL, "LAMA-MAP1: Map for itemprop \"%s\" holds "
						"a key twice", rule->itemprop);
				goto out;
			}
	}
	rc = lama_buf_addstr(out, "</dl>");
out:
	free_pieces(keys, n);
	return rc;
}

static const char *ref_type(enum lama__kind k)
{
	switch (k) {
	case LAMA__REF_OBJ: return "obj";
	case LAMA__REF_ID: return "id";
	case LAMA__REF_CLOB: return "clob";
	default: return "blob";
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
		if ((rc = lama__re_match(t, str, len)) <= 0)
			return rc < 0 ? rc : rtyc3(p, t, v);
		if ((prop && (rc = open_tag(out, "span", prop))) ||
		    (rc = lama__html_escape(str, len, out)))
			return rc;
		break;
	}
	case LAMA__INTEGER:
		if (!lama__num(v, &d) || !lama__is_integer(d))
			return rtyc1(p, "integer", v);
		if ((prop && (rc = open_tag(out, "span", prop))) || (rc = lama_jsnum_write(d, out)))
			return rc;
		break;
	case LAMA__NUMBER:
		if (!lama__num(v, &d))
			return rtyc1(p, "number", v);
		if ((prop && (rc = open_tag(out, "span", prop))) || (rc = lama_jsnum_write(d, out)))
			return rc;
		break;
	case LAMA__BOOLEAN:
		if (!json_is_boolean(v))
			return rtyc1(p, "boolean", v);
		if ((prop && (rc = open_tag(out, "span", prop))) ||
		    (rc = lama_buf_addstr(out, json_is_true(v) ? "true" : "false")))
			return rc;
		break;
	case LAMA__STRINGIFIABLE: {
		struct lama_buf js = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);

		if (!(rc = lama__stringify_sorted(v, &js)) && !(prop && (rc = open_tag(out, "span", prop))))
			rc = lama__html_escape(js.data ? js.data : "", js.len, out);
		lama_buf_release(&js);
		if (rc)
			return rc;
		break;
	}
	case LAMA__REF_OBJ:
	case LAMA__REF_ID:
	case LAMA__REF_CLOB:
	case LAMA__REF_BLOB:
		if (!json_is_string(v) || !lama_hash_hex_valid(json_string_value(v), json_string_length(v)))
			return rtyc4(p, v);
		if (prop)
			rc = lama_buf_addf(out, "<a itemprop=\"%s\" data-type=\"%s\">%s</a>", prop,
					   ref_type(t->kind), json_string_value(v));
		else
			rc = lama_buf_addf(out, "<a data-type=\"%s\">%s</a>", ref_type(t->kind),
					   json_string_value(v));
		return rc;
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
			   : (rc = open_tag(out, "div", prop)) ? rc
			   : (rc = fields(s, out, t->rules, t->nrules, v, 0)) ? rc
			   : lama_buf_addstr(out, "</div>");
		else
			rc = json_is_array(v) ? list(s, out, t, prop, rule, v) : cval4(rule, v);
		s->depth--;
		return rc;
	}
	return prop ? lama_buf_addstr(out, "</span>") : 0;
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
	struct lama_buf md = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	struct ser s = { r, 0 };
	const struct lama__recipe *rec;
	const char *type;
	int rc;

	if (!json_is_object(obj) || lama__conv(obj))
		return conv_error(obj);
	type = json_string_value(json_object_get(obj, "$type$"));
	if (!(rec = lama__recipe_find(r, type)))
		return lama_error(LAMA_EINVAL, "OR-GR1: Type \"%s\" not found in recipes",
				  type ? type : "undefined");
	if (id_form && !rec->versioned)
		return lama_error(LAMA_EINVAL, "Type \"%s\" has no ID properties, so it has no ID "
				  "object", rec->name);
	if (!id_form && (rc = unknown_props(rec, obj)))
		return rc;
	if (!(rc = lama_buf_addf(&md, "<div%s itemscope itemtype=\"//refin.io/%s\">",
				 id_form ? " data-id-object=\"true\"" : "", rec->name)) &&
	    !(rc = fields(&s, &md, rec->rules, rec->nrules, obj, id_form)) &&
	    !(rc = lama_buf_addstr(&md, "</div>")))
		rc = lama_buf_add(out, md.data, md.len);
	if (rc == LAMA_ELIMIT)
		rc = too_large();
	lama_buf_release(&md);
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

/* References are found by parsing the object's own microdata: the parser
 * meets them in document order, which is the promised order (bags and sets
 * sorted), and the walk over itemtypes exists only once. */
int lama_object_foreach_ref(const lama_recipes *r, const json_t *obj,
			    int (*fn)(void *ctx, const char *itemprop, enum lama_ref_kind kind,
				      const lama_hash *target),
			    void *ctx)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *parsed = NULL;
	int rc;

	if (!(rc = lama__serialize(r, obj, 0, &b)))
		rc = lama__parse(r, b.data, b.len, &parsed, NULL, fn, ctx, 0);
	json_decref(parsed);
	lama_buf_release(&b);
	return rc;
}
