/* parse.c: ONE microdata back into an object.
 *
 * The recipe drives the parser: it knows which tag each rule must produce,
 * so there is no general HTML parsing and no guessing. Every read is
 * checked against the end of the input, nesting is bounded, and at the end
 * the object is serialized again and must give the input bytes exactly.
 * That last check is what makes "strict" cheap to trust: whatever the
 * parser let through (sort order, number text, JSON spacing), a
 * non-canonical input cannot produce identical bytes. The trusted entry
 * point skips only that check, for bytes lama wrote itself and has just
 * authenticated and matched against their hash; everything before it (the
 * bounds, the depth, the tags, UTF-8 in strings) runs on every input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object/internal.h"
#include "util/err.h"
#include "util/mem.h"

/* Longest number text accepted; canonical ones are at most 24 bytes. */
#define NUM_TEXT_MAX 32
/* Longest opening tag: "<span itemprop=\"...\">" with a name of at most
 * LAMA_TYPE_MAX - 1 bytes. */
#define TAG_MAX (LAMA_TYPE_MAX + 48)

struct parser {
	const lama_recipes *r;
	const char *base, *p, *end;
	int depth;
};

static int fail(const struct parser *ps, const char *what, const char *detail)
{
	return lama_error(LAMA_EFORMAT, "microdata: %s%s%s at byte %zu", what, detail ? " " : "",
			  detail ? detail : "", (size_t)(ps->p - ps->base));
}

/* Consumes s if the input continues with it. */
static int lit(struct parser *ps, const char *s, size_t n)
{
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, s, n))
		return 0;
	ps->p += n;
	return 1;
}

static int litz(struct parser *ps, const char *s)
{
	return lit(ps, s, strlen(s));
}

static int expect(struct parser *ps, const char *s)
{
	return litz(ps, s) ? 0 : fail(ps, "expected", s);
}

/* Text content up to the next '<', with &amp; &lt; &gt; decoded; any other
 * '&' or a raw '>' cannot come from the serializer. *s and *n point into
 * the input when there is nothing to decode (the common case), else into
 * dec. */
static int text(struct parser *ps, struct lama_buf *dec, const char **s, size_t *n)
{
	const char *start = ps->p, *run, *lt;
	size_t len;
	int rc;

	/* memchr runs a word or a vector at a time: find the end first, then
	 * look for anything to decode or refuse before it */
	lt = memchr(start, '<', (size_t)(ps->end - start));
	len = lt ? (size_t)(lt - start) : 0;
	if (lt && !memchr(start, '&', len) && !memchr(start, '>', len)) {
		ps->p = lt;
		*s = start;
		*n = len;
		return 0;
	}
	for (run = start;;) {
		if (ps->p == ps->end)
			return fail(ps, "text runs to the end of the input", NULL);
		if (*ps->p == '<')
			break;
		if (*ps->p == '>')
			return fail(ps, "unescaped '>' in text", NULL);
		if (*ps->p != '&') {
			ps->p++;
			continue;
		}
		if ((rc = lama_buf_add(dec, run, (size_t)(ps->p - run))))
			return rc;
		if (litz(ps, "&amp;"))
			rc = lama_buf_addch(dec, '&');
		else if (litz(ps, "&lt;"))
			rc = lama_buf_addch(dec, '<');
		else if (litz(ps, "&gt;"))
			rc = lama_buf_addch(dec, '>');
		else
			return fail(ps, "'&' that is not &amp; &lt; or &gt;", NULL);
		if (rc)
			return rc;
		run = ps->p;
	}
	if ((rc = lama_buf_add(dec, run, (size_t)(ps->p - run))))
		return rc;
	*s = dec->data;
	*n = dec->len;
	return 0;
}

static int number(struct parser *ps, const char *t, size_t n, enum lama__kind kind,
		  json_t **out)
{
	char buf[NUM_TEXT_MAX + 1], canon[32];
	size_t i, neg = n > 0 && t[0] == '-';
	char *endp;
	double d;

	if (kind == LAMA__NUMBER && n == 4 && !memcmp(t, "null", 4)) {
		/* NaN and the infinities are all written "null"; NaN stands in */
		*out = json_pack("{s:s}", "$number", "NaN");
		return *out ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (n == 0 || n > NUM_TEXT_MAX)
		return fail(ps, "bad number", NULL);
	/* An integer of at most 15 digits is exact in a double and written
	 * as its digits: canonical unless it has a leading zero or is "-0". */
	if (n - neg >= 1 && n - neg <= 15) {
		int64_t v = 0;

		for (i = neg; i < n && t[i] >= '0' && t[i] <= '9'; i++)
			v = v * 10 + (t[i] - '0');
		if (i == n) {
			if (t[neg] == '0' && (n - neg > 1 || neg))
				return fail(ps, "number not in JavaScript's form", NULL);
			*out = json_real(neg ? -(double)v : (double)v);
			return *out ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
		}
	}
	for (i = 0; i < n; i++)
		if (!strchr("0123456789+-.e", t[i]) || t[i] == '\0')
			return fail(ps, "bad number", NULL);
	memcpy(buf, t, n);
	buf[n] = '\0';
	d = strtod(buf, &endp);
	if (*endp || !isfinite(d))
		return fail(ps, "bad number", NULL);
	if (kind == LAMA__INTEGER && !lama__is_integer(d))
		return fail(ps, "not an integer", NULL);
	lama__jsnum_format(d, canon);
	if (strcmp(canon, buf))
		return fail(ps, "number not in JavaScript's form", buf);
	*out = json_real(d);
	return *out ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
}

static int scalar(struct parser *ps, const struct lama__itemtype *t, const char *s, size_t n,
		  json_t **out)
{
	json_error_t err;

	*out = NULL;
	switch (t->kind) {
	case LAMA__STRING:
		*out = json_stringn(s, n);
		return *out ? 0 : fail(ps, "string is not valid UTF-8", NULL);
	case LAMA__INTEGER:
	case LAMA__NUMBER:
		return number(ps, s, n, t->kind, out);
	case LAMA__BOOLEAN:
		if (n == 4 && !memcmp(s, "true", 4))
			*out = json_true();
		else if (n == 5 && !memcmp(s, "false", 5))
			*out = json_false();
		else
			return fail(ps, "bad boolean", NULL);
		return 0;
	default: /* stringifiable */
		*out = json_loadb(s, n, LAMA_JSON_FLAGS | JSON_DECODE_ANY, &err);
		if (!*out)
			return fail(ps, "bad JSON in stringifiable:", err.text);
		if (json_is_null(*out)) {
			/* a present "null" was a NaN or an infinity (JSON.stringify
			 * writes those so); null itself means absent */
			json_decref(*out);
			*out = json_pack("{s:s}", "$number", "NaN");
			return *out ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
		}
		return 0;
	}
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

static int is_ref(enum lama__kind k)
{
	return k == LAMA__REF_OBJ || k == LAMA__REF_ID || k == LAMA__REF_CLOB || k == LAMA__REF_BLOB;
}

static const char *tag_of(enum lama__kind k)
{
	switch (k) {
	case LAMA__REF_OBJ:
	case LAMA__REF_ID:
	case LAMA__REF_CLOB:
	case LAMA__REF_BLOB: return "a";
	case LAMA__ARRAY: return "ol";
	case LAMA__BAG:
	case LAMA__SET: return "ul";
	case LAMA__MAP: return "dl";
	case LAMA__OBJECT: return "div";
	default: return "span";
	}
}

/* 1 if a value of kind k has an opening tag: all but scalars inside
 * collections (prop NULL). */
static int has_tag(enum lama__kind k, const char *prop)
{
	return prop || strcmp(tag_of(k), "span");
}

/* The opening tag a value of kind k starts with ("<ol itemprop=\"x\">",
 * "<li>"-level "<ol>", "<a data-type=\"id\">"), as text: for messages. */
static void tag_text(char tag[TAG_MAX], enum lama__kind k, const char *prop)
{
	const char *name = tag_of(k);

	if (is_ref(k) && prop)
		snprintf(tag, TAG_MAX, "<a itemprop=\"%s\" data-type=\"%s\">", prop, ref_type(k));
	else if (is_ref(k))
		snprintf(tag, TAG_MAX, "<a data-type=\"%s\">", ref_type(k));
	else if (prop)
		snprintf(tag, TAG_MAX, "<%s itemprop=\"%s\">", name, prop);
	else
		snprintf(tag, TAG_MAX, "<%s>", name);
}

/* Moves *p past s[0..n) if the input at *p continues with it. */
static int eat(const char **p, const char *end, const char *s, size_t n)
{
	if ((size_t)(end - *p) < n || memcmp(*p, s, n))
		return 0;
	*p += n;
	return 1;
}

/* The length of the opening tag of a value of kind k (with prop, NULL
 * inside collections) if the input continues with it, else 0. Matched in
 * pieces rather than formatted and compared: this runs for every field. */
static size_t match_open(const struct parser *ps, enum lama__kind k, const char *prop)
{
	const char *p = ps->p, *name = tag_of(k), *rt;

	if (!eat(&p, ps->end, "<", 1) || !eat(&p, ps->end, name, strlen(name)))
		return 0;
	if (prop && (!eat(&p, ps->end, " itemprop=\"", 11) ||
		     !eat(&p, ps->end, prop, strlen(prop)) || !eat(&p, ps->end, "\"", 1)))
		return 0;
	if (is_ref(k) && (rt = ref_type(k)) &&
	    (!eat(&p, ps->end, " data-type=\"", 12) || !eat(&p, ps->end, rt, strlen(rt)) ||
	     !eat(&p, ps->end, "\"", 1)))
		return 0;
	if (!eat(&p, ps->end, ">", 1))
		return 0;
	return (size_t)(p - ps->p);
}

/* Consumes the opening tag, or fails naming it. */
static int expect_open(struct parser *ps, enum lama__kind k, const char *prop)
{
	char tag[TAG_MAX];
	size_t n = match_open(ps, k, prop);

	if (n) {
		ps->p += n;
		return 0;
	}
	tag_text(tag, k, prop);
	return fail(ps, "expected", tag);
}

static int fields(struct parser *ps, const struct lama__rule *rules, size_t n, json_t *obj,
		  int id_only);

static int value(struct parser *ps, const struct lama__itemtype *t, const char *prop,
		 const struct lama__rule *rule, json_t **out);

static int wrap(const char *key, json_t *payload, json_t **out)
{
	*out = json_object();
	if (!*out) {
		json_decref(payload);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	/* json_object_set_new releases payload even when it fails */
	if (json_object_set_new(*out, key, payload)) {
		json_decref(*out);
		*out = NULL;
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	return 0;
}

static int collection(struct parser *ps, const struct lama__itemtype *t,
		      const struct lama__rule *rule, json_t **out)
{
	json_t *arr = json_array(), *k = NULL, *v = NULL;
	int rc = 0;

	if (!arr)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (t->kind == LAMA__MAP) {
		while (!rc && litz(ps, "<dt>")) {
			if (!(rc = value(ps, t->key, NULL, rule, &k)) && !(rc = expect(ps, "</dt><dd>")) &&
			    !(rc = value(ps, t->value, NULL, rule, &v)) && !(rc = expect(ps, "</dd>"))) {
				json_t *pair = json_array();

				if (!pair || json_array_append(pair, k) || json_array_append(pair, v)) {
					json_decref(pair);
					rc = lama_error(LAMA_ENOMEM, "out of memory");
				} else if (json_array_append_new(arr, pair)) { /* releases pair */
					rc = lama_error(LAMA_ENOMEM, "out of memory");
				}
			}
			json_decref(k);
			json_decref(v);
			k = v = NULL;
		}
		if (!rc)
			rc = expect(ps, "</dl>");
	} else {
		while (!rc && litz(ps, "<li>")) {
			if (!(rc = value(ps, t->item, NULL, rule, &v)) && !(rc = expect(ps, "</li>")) &&
			    json_array_append(arr, v))
				rc = lama_error(LAMA_ENOMEM, "out of memory");
			json_decref(v);
			v = NULL;
		}
		if (!rc)
			rc = expect(ps, t->kind == LAMA__ARRAY ? "</ol>" : "</ul>");
	}
	if (rc) {
		json_decref(arr);
		return rc;
	}
	if (t->kind == LAMA__MAP)
		return wrap("$map", arr, out);
	if (t->kind == LAMA__SET)
		return wrap("$set", arr, out);
	*out = arr;
	return 0;
}

static int reference(struct parser *ps, json_t **out)
{
	int rc;

	if ((size_t)(ps->end - ps->p) < LAMA_HASH_HEX ||
	    !lama__hash_from_hex(ps->p, LAMA_HASH_HEX, NULL))
		return fail(ps, "expected a SHA-256 hash in lower-case hex", NULL);
	*out = json_stringn_nocheck(ps->p, LAMA_HASH_HEX); /* ASCII: checked above */
	if (!*out)
		return lama_error(LAMA_ENOMEM, "out of memory");
	ps->p += LAMA_HASH_HEX;
	if ((rc = expect(ps, "</a>"))) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

/* One value of itemtype t after its opening tag (which carried prop, NULL
 * inside collections). rule is the enclosing rule. */
static int value_body(struct parser *ps, const struct lama__itemtype *t, const char *prop,
		      const struct lama__rule *rule, json_t **out)
{
	int rc;

	*out = NULL;
	switch (t->kind) {
	case LAMA__REF_OBJ:
	case LAMA__REF_ID:
	case LAMA__REF_CLOB:
	case LAMA__REF_BLOB:
		return reference(ps, out);
	case LAMA__ARRAY:
	case LAMA__BAG:
	case LAMA__SET:
	case LAMA__MAP:
	case LAMA__OBJECT:
		if (++ps->depth > LAMA_OBJECT_MAX_DEPTH)
			return fail(ps, "nested too deep", NULL);
		if (t->kind != LAMA__OBJECT) {
			rc = collection(ps, t, rule, out);
		} else if (!(*out = json_object())) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
		} else if ((rc = fields(ps, t->rules, t->nrules, *out, 0)) ||
			   (rc = expect(ps, "</div>"))) {
			json_decref(*out);
			*out = NULL;
		}
		ps->depth--;
		return rc;
	default: {
		struct lama_buf dec = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
		const char *s = NULL;
		size_t n = 0;

		if (!(rc = text(ps, &dec, &s, &n)) && !(rc = scalar(ps, t, s, n, out)) && prop &&
		    (rc = expect(ps, "</span>"))) {
			json_decref(*out);
			*out = NULL;
		}
		lama_buf_release(&dec);
		return rc;
	}
	}
}

/* One value of itemtype t, with its opening tag carrying prop (NULL inside
 * collections). */
static int value(struct parser *ps, const struct lama__itemtype *t, const char *prop,
		 const struct lama__rule *rule, json_t **out)
{
	int rc;

	*out = NULL;
	if (has_tag(t->kind, prop) && (rc = expect_open(ps, t->kind, prop)))
		return rc;
	return value_body(ps, t, prop, rule, out);
}

static int fields(struct parser *ps, const struct lama__rule *rules, size_t n, json_t *obj,
		  int id_only)
{
	size_t i, len;
	int rc;

	for (i = 0; i < n; i++) {
		const struct lama__rule *rule = &rules[i];
		const struct lama__itemtype *t;
		json_t *v;

		if (id_only && !rule->is_id)
			continue;
		if ((rc = lama__rule_type(ps->r, rule, &t)))
			return rc;
		/* A rule's value is present exactly when its opening tag is
		 * next; itemprops are unique, so nothing else can start so. */
		if (!(len = match_open(ps, t->kind, rule->itemprop))) {
			if (rule->optional)
				continue;
			return fail(ps, "missing mandatory property", rule->itemprop);
		}
		ps->p += len;
		if ((rc = value_body(ps, t, rule->itemprop, rule, &v)))
			return rc;
		/* itemprops are checked UTF-8 (they came from JSON) */
		if (json_object_set_new_nocheck(obj, rule->itemprop, v))
			return lama_error(LAMA_ENOMEM, "out of memory");
	}
	return 0;
}

/* The frame up to the end of the opening tag; type gets the name. */
static int head(struct parser *ps, char type[LAMA_TYPE_MAX], int *is_id)
{
	size_t i;

	if ((size_t)(ps->end - ps->base) > LAMA_OBJECT_MAX_BYTES)
		return lama_error(LAMA_EFORMAT, "microdata larger than %zu bytes",
				  LAMA_OBJECT_MAX_BYTES);
	if (!litz(ps, "<div"))
		return fail(ps, "expected", "<div");
	*is_id = litz(ps, " data-id-object=\"true\"");
	if (!litz(ps, " itemscope itemtype=\"//refin.io/"))
		return fail(ps, "expected", "itemscope itemtype=\"//refin.io/");
	for (i = 0; ps->p + i < ps->end && ps->p[i] != '"'; i++) {
		unsigned char c = (unsigned char)ps->p[i];

		if (i + 1 >= LAMA_TYPE_MAX || c <= 0x20 || c == 0x7f || c == '\'' || c == '&' ||
		    c == '<' || c == '>')
			return fail(ps, "bad type name", NULL);
		type[i] = (char)c;
	}
	if (i == 0)
		return fail(ps, "empty type name", NULL);
	type[i] = '\0';
	ps->p += i;
	return expect(ps, "\">");
}

int lama_object_peek_type(const char *md, size_t n, char type[LAMA_TYPE_MAX])
{
	struct parser ps = { NULL, md, md, md + n, 0 };
	int is_id;

	return head(&ps, type, &is_id);
}

int lama__parse(const lama_recipes *r, const char *md, size_t n, json_t **out, int *is_id_out,
		int verify)
{
	struct parser ps = { r, md, md, md + n, 0 };
	struct lama_buf again = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	char type[LAMA_TYPE_MAX];
	const struct lama__recipe *rec;
	json_t *obj = NULL;
	int rc, is_id = 0;

	*out = NULL;
	if ((rc = head(&ps, type, &is_id)))
		return rc;
	if (!(rec = lama__recipe_find(r, type)))
		return fail(&ps, "unknown type", type);
	if (is_id && !rec->versioned)
		return fail(&ps, "ID object of a type without ID properties:", type);
	obj = json_object();
	if (!obj || json_object_set_new_nocheck(obj, "$type$", json_string(rec->name))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = fields(&ps, rec->rules, rec->nrules, obj, is_id)) || (rc = expect(&ps, "</div>")))
		goto out;
	if (ps.p != ps.end) {
		rc = fail(&ps, "trailing bytes after the object", NULL);
		goto out;
	}
	if (verify) {
		size_t i;

		if ((rc = lama__serialize(r, obj, is_id, &again))) {
			char why[400];

			snprintf(why, sizeof(why), "%s", lama_errmsg());
			if (rc != LAMA_ENOMEM)
				rc = lama_error(LAMA_EFORMAT, "microdata: describes no valid object: %s",
						why);
			goto out;
		}
		if (again.len != n || memcmp(md, again.data, n)) {
			for (i = 0; i < n && i < again.len && md[i] == again.data[i]; i++)
				;
			rc = lama_error(LAMA_EFORMAT, "microdata: not in canonical form at byte %zu", i);
			goto out;
		}
	}
	*out = obj;
	obj = NULL;
	if (is_id_out)
		*is_id_out = is_id;
out:
	json_decref(obj);
	lama_buf_release(&again);
	return rc;
}

int lama_object_parse(const lama_recipes *r, const char *md, size_t n, json_t **out,
		      int *is_id_object)
{
	return lama__parse(r, md, n, out, is_id_object, 1);
}

int lama_object_parse_trusted(const lama_recipes *r, const char *md, size_t n, json_t **out,
			      int *is_id_object)
{
	return lama__parse(r, md, n, out, is_id_object, 0);
}
