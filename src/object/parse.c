/* parse.c: ONE microdata back into an object.
 *
 * The recipe drives the parser: it knows which tag each rule must produce,
 * so there is no general HTML parsing and no guessing. Every read is
 * checked against the end of the input, nesting is bounded, and at the end
 * the object is serialized again and must give the input bytes exactly.
 * That last check is what makes "strict" cheap to trust: whatever the
 * parser let through (sort order, number text, JSON spacing), a
 * non-canonical input cannot produce identical bytes. */
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
	lama__ref_fn ref_fn;
	void *ctx;
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

static int peek(const struct parser *ps, const char *s, size_t n)
{
	return (size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, s, n);
}

/* Text content up to the next '<', with &amp; &lt; &gt; decoded; any other
 * '&' or a raw '>' cannot come from the serializer. */
static int text(struct parser *ps, struct lama_buf *out)
{
	const char *run = ps->p;
	int rc;

	for (;;) {
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
		if ((rc = lama_buf_add(out, run, (size_t)(ps->p - run))))
			return rc;
		if (litz(ps, "&amp;"))
			rc = lama_buf_addch(out, '&');
		else if (litz(ps, "&lt;"))
			rc = lama_buf_addch(out, '<');
		else if (litz(ps, "&gt;"))
			rc = lama_buf_addch(out, '>');
		else
			return fail(ps, "'&' that is not &amp; &lt; or &gt;", NULL);
		if (rc)
			return rc;
		run = ps->p;
	}
	return lama_buf_add(out, run, (size_t)(ps->p - run));
}

static int number(struct parser *ps, const struct lama_buf *t, enum lama__kind kind, json_t **out)
{
	char buf[NUM_TEXT_MAX + 1], canon[32];
	size_t i;
	char *endp;
	double d;

	if (kind == LAMA__NUMBER && t->len == 4 && !memcmp(t->data, "null", 4)) {
		/* NaN and the infinities are all written "null"; NaN stands in */
		*out = json_pack("{s:s}", "$number", "NaN");
		return *out ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
	}
	if (t->len == 0 || t->len > NUM_TEXT_MAX)
		return fail(ps, "bad number", NULL);
	for (i = 0; i < t->len; i++)
		if (!strchr("0123456789+-.e", t->data[i]) || t->data[i] == '\0')
			return fail(ps, "bad number", NULL);
	memcpy(buf, t->data, t->len);
	buf[t->len] = '\0';
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

static int scalar(struct parser *ps, const struct lama__itemtype *t, const struct lama_buf *txt,
		  json_t **out)
{
	const char *s = txt->data ? txt->data : "";
	json_error_t err;

	*out = NULL;
	switch (t->kind) {
	case LAMA__STRING:
		*out = json_stringn(s, txt->len);
		return *out ? 0 : fail(ps, "string is not valid UTF-8", NULL);
	case LAMA__INTEGER:
	case LAMA__NUMBER:
		return number(ps, txt, t->kind, out);
	case LAMA__BOOLEAN:
		if (txt->len == 4 && !memcmp(s, "true", 4))
			*out = json_true();
		else if (txt->len == 5 && !memcmp(s, "false", 5))
			*out = json_false();
		else
			return fail(ps, "bad boolean", NULL);
		return 0;
	default: /* stringifiable */
		*out = json_loadb(s, txt->len, LAMA_JSON_FLAGS | JSON_DECODE_ANY, &err);
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

static enum lama_ref_kind ref_kind(enum lama__kind k)
{
	switch (k) {
	case LAMA__REF_OBJ: return LAMA_REF_OBJ;
	case LAMA__REF_ID: return LAMA_REF_ID;
	case LAMA__REF_CLOB: return LAMA_REF_CLOB;
	default: return LAMA_REF_BLOB;
	}
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

/* The opening tag a value of kind k starts with ("<ol itemprop=\"x\">",
 * "<li>"-level "<ol>", "<a data-type=\"id\">"); scalars inside collections
 * have none (empty string). */
static void open_tag(char tag[TAG_MAX], enum lama__kind k, const char *prop)
{
	const char *name = tag_of(k);

	if (!strcmp(name, "a") && prop)
		snprintf(tag, TAG_MAX, "<a itemprop=\"%s\" data-type=\"%s\">", prop, ref_type(k));
	else if (!strcmp(name, "a"))
		snprintf(tag, TAG_MAX, "<a data-type=\"%s\">", ref_type(k));
	else if (prop)
		snprintf(tag, TAG_MAX, "<%s itemprop=\"%s\">", name, prop);
	else if (!strcmp(name, "span"))
		tag[0] = '\0';
	else
		snprintf(tag, TAG_MAX, "<%s>", name);
}

static int fields(struct parser *ps, const struct lama__rule *rules, size_t n, json_t *obj,
		  int id_only);

static int value(struct parser *ps, const struct lama__itemtype *t, const char *prop,
		 const struct lama__rule *rule, json_t **out);

static int wrap(const char *key, json_t *payload, json_t **out)
{
	*out = json_object();
	if (!*out || json_object_set_new(*out, key, payload)) {
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
				json_t *pair = json_pack("[OO]", k, v);

				if (!pair || json_array_append_new(arr, pair))
					rc = lama_error(LAMA_ENOMEM, "out of memory");
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

static int reference(struct parser *ps, const struct lama__itemtype *t,
		     const struct lama__rule *rule, json_t **out)
{
	lama_hash h;
	int rc;

	/* validate first: lama_hash_parse's message would read the text as a
	 * C string, past the end of an unterminated input */
	if ((size_t)(ps->end - ps->p) < LAMA_HASH_HEX || !lama_hash_hex_valid(ps->p, LAMA_HASH_HEX) ||
	    lama_hash_parse(ps->p, LAMA_HASH_HEX, &h))
		return fail(ps, "expected a SHA-256 hash in lower-case hex", NULL);
	if (ps->ref_fn && (rc = ps->ref_fn(ps->ctx, rule->itemprop, ref_kind(t->kind), &h)))
		return rc; /* the caller's value, passed up unchanged */
	*out = json_stringn(ps->p, LAMA_HASH_HEX);
	if (!*out)
		return lama_error(LAMA_ENOMEM, "out of memory");
	ps->p += LAMA_HASH_HEX;
	if ((rc = expect(ps, "</a>"))) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

/* One value of itemtype t, with its opening tag carrying prop (NULL inside
 * collections). rule is the enclosing rule, for references' itemprop. */
static int value(struct parser *ps, const struct lama__itemtype *t, const char *prop,
		 const struct lama__rule *rule, json_t **out)
{
	char tag[TAG_MAX];
	int rc;

	*out = NULL;
	open_tag(tag, t->kind, prop);
	if ((rc = expect(ps, tag)))
		return rc;
	switch (t->kind) {
	case LAMA__REF_OBJ:
	case LAMA__REF_ID:
	case LAMA__REF_CLOB:
	case LAMA__REF_BLOB:
		return reference(ps, t, rule, out);
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
		struct lama_buf txt = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);

		if (!(rc = text(ps, &txt)) && !(rc = scalar(ps, t, &txt, out)) && prop &&
		    (rc = expect(ps, "</span>"))) {
			json_decref(*out);
			*out = NULL;
		}
		lama_buf_release(&txt);
		return rc;
	}
	}
}

static int fields(struct parser *ps, const struct lama__rule *rules, size_t n, json_t *obj,
		  int id_only)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		const struct lama__rule *rule = &rules[i];
		const struct lama__itemtype *t;
		char tag[TAG_MAX];
		json_t *v;

		if (id_only && !rule->is_id)
			continue;
		if ((rc = lama__rule_type(ps->r, rule, &t)))
			return rc;
		/* A rule's value is present exactly when its opening tag is
		 * next; itemprops are unique, so nothing else can start so. */
		open_tag(tag, t->kind, rule->itemprop);
		if (!peek(ps, tag, strlen(tag))) {
			if (rule->optional)
				continue;
			return fail(ps, "missing mandatory property", rule->itemprop);
		}
		if ((rc = value(ps, t, rule->itemprop, rule, &v)))
			return rc;
		if (json_object_set_new(obj, rule->itemprop, v))
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

		if (i + 1 >= LAMA_TYPE_MAX || c <= 0x20 || c == 0x7f || strchr("'&<>", c))
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
	struct parser ps = { NULL, md, md, md + n, 0, NULL, NULL };
	int is_id;

	return head(&ps, type, &is_id);
}

int lama__parse(const lama_recipes *r, const char *md, size_t n, json_t **out, int *is_id_out,
		lama__ref_fn ref_fn, void *ctx, int verify)
{
	struct parser ps = { r, md, md, md + n, 0, ref_fn, ctx };
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
	if (!obj || json_object_set_new(obj, "$type$", json_string(type))) {
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
		for (i = 0; i < n && i < again.len && md[i] == again.data[i]; i++)
			;
		if (i != n || again.len != n) {
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
	return lama__parse(r, md, n, out, is_id_object, NULL, NULL, 1);
}
