/* jsjson.c: JSON written as JavaScript writes it.
 *
 * Two writers live here. lama_json_write is JSON.stringify over lama's JSON
 * convention ($set/$map/$number kept as they are). lama__stringify_sorted is
 * one.core's "stringifiable" form, which is part of the hashed format:
 * object keys sorted, a Set becomes an array and a Map an array of [key,
 * value] pairs, both sorted the way Array.prototype.sort sorts by default
 * (each element turned into a string with String(), compared in UTF-16
 * order, stable), and a RegExp becomes its source text. The rules were
 * derived from the vectors in shared/one-format. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "object/internal.h"
#include "util/err.h"
#include "util/mem.h"

/* JSON from outside may nest 2048 deep (jansson's own ceiling); the ONE
 * writers stop at the object limit, lama_json_write a little further since
 * it shows whatever a caller built. */
#define JSON_WRITE_MAX_DEPTH 1024

enum lama__conv lama__conv(const json_t *v)
{
	const char *key;

	if (!json_is_object(v) || json_object_size(v) != 1)
		return LAMA__CONV_NONE;
	key = json_object_iter_key(json_object_iter((json_t *)v));
	if (!strcmp(key, "$set"))
		return LAMA__CONV_SET;
	if (!strcmp(key, "$map"))
		return LAMA__CONV_MAP;
	if (!strcmp(key, "$number"))
		return LAMA__CONV_NUMBER;
	if (!strcmp(key, "$regexp"))
		return LAMA__CONV_REGEXP;
	return LAMA__CONV_NONE;
}

int lama__num(const json_t *v, double *d)
{
	const char *s;

	if (json_is_real(v)) {
		*d = json_real_value(v);
		return 1;
	}
	if (json_is_integer(v)) { /* built by C code rather than parsed */
		*d = (double)json_integer_value(v);
		return 1;
	}
	if (lama__conv(v) != LAMA__CONV_NUMBER)
		return 0;
	s = json_string_value(json_object_get(v, "$number"));
	if (!s)
		return 0;
	if (!strcmp(s, "-0"))
		*d = -0.0;
	else if (!strcmp(s, "NaN"))
		*d = NAN;
	else if (!strcmp(s, "Infinity"))
		*d = INFINITY;
	else if (!strcmp(s, "-Infinity"))
		*d = -INFINITY;
	else
		return 0;
	return 1;
}

const json_t *lama__set_items(const json_t *v)
{
	const json_t *a;

	if (lama__conv(v) != LAMA__CONV_SET)
		return NULL;
	a = json_object_get(v, "$set");
	return json_is_array(a) ? a : NULL;
}

const json_t *lama__map_entries(const json_t *v)
{
	const json_t *a, *e;
	size_t i;

	if (lama__conv(v) != LAMA__CONV_MAP)
		return NULL;
	a = json_object_get(v, "$map");
	if (!json_is_array(a))
		return NULL;
	json_array_foreach(a, i, e)
		if (!json_is_array(e) || json_array_size(e) != 2)
			return NULL;
	return a;
}

static const char *regexp_source(const json_t *v)
{
	const json_t *re = json_object_get(v, "$regexp");

	return json_string_value(json_object_get(re, "source"));
}

int lama__json_string(const char *s, size_t n, struct lama_buf *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	int rc;

	if ((rc = lama_buf_addch(out, '"')))
		return rc;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if ((rc = lama_buf_add(out, s + run, i - run)) || (rc = lama_buf_add(out, esc, elen)))
			return rc;
		run = i + 1;
	}
	if ((rc = lama_buf_add(out, s + run, n - run)))
		return rc;
	return lama_buf_addch(out, '"');
}

static int too_deep(void)
{
	return lama_error(LAMA_EINVAL, "value nested deeper than %d levels", LAMA_OBJECT_MAX_DEPTH);
}

static int malformed(const char *what)
{
	return lama_error(LAMA_EINVAL, "malformed %s wrapper", what);
}

/* --- String(x) of a converted value, the key JavaScript's sort uses --- */

struct sort_item {
	char *key;
	size_t keylen;
	size_t idx;
	const json_t *v; /* the element, or the [k, v] pair of a map */
};

static int cmp_items(const void *pa, const void *pb)
{
	const struct sort_item *a = pa, *b = pb;
	int c = lama__utf16_cmp(a->key, a->keylen, b->key, b->keylen);

	if (c)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx; /* stable, as JS's sort */
}

static int js_string(const json_t *v, struct lama_buf *out, int depth, int in_array);

/* Sorts a Set's items or a Map's [k, v] entries as JS would
 * sort the converted array; *items_out (owned by caller, free each key and
 * the array) holds the order. */
static int sort_converted(const json_t *arr, int depth, struct sort_item **items_out)
{
	size_t i, n = json_array_size(arr);
	struct sort_item *items;
	int rc = 0;

	*items_out = NULL;
	items = lama_calloc(n ? n : 1, sizeof(*items));
	if (!items)
		return lama_error(LAMA_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		struct lama_buf b = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
		const json_t *e = json_array_get(arr, i);

		/* for a Map e is the [k, v] pair, and String([k, v]) is
		 * String(k) + "," + String(v) (js_join does that) */
		rc = js_string(e, &b, depth + 1, 0);
		if (rc) {
			lama_buf_release(&b);
			goto fail;
		}
		items[i].key = lama_buf_detach(&b, &items[i].keylen);
		if (!items[i].key) {
			rc = lama_error(LAMA_ENOMEM, "out of memory");
			goto fail;
		}
		items[i].idx = i;
		items[i].v = e;
	}
	qsort(items, n, sizeof(*items), cmp_items);
	*items_out = items;
	return 0;
fail:
	for (i = 0; i < n; i++)
		lama_free(items[i].key);
	lama_free(items);
	return rc;
}

static void free_items(struct sort_item *items, size_t n)
{
	size_t i;

	if (!items)
		return;
	for (i = 0; i < n; i++)
		lama_free(items[i].key);
	lama_free(items);
}

/* Joins the elements of a converted array with ",", as Array#toString. */
static int js_join(const json_t *arr, int is_set, int is_map, struct lama_buf *out, int depth)
{
	struct sort_item *items = NULL;
	size_t i, n = json_array_size(arr);
	int rc = 0;

	if (is_set || is_map) {
		if ((rc = sort_converted(arr, depth, &items)))
			return rc;
	}
	for (i = 0; i < n && !rc; i++) {
		const json_t *e = items ? items[i].v : json_array_get(arr, i);

		if (i)
			rc = lama_buf_addch(out, ',');
		if (!rc)
			rc = js_string(e, out, depth + 1, 1);
	}
	free_items(items, n);
	return rc;
}

static int js_string(const json_t *v, struct lama_buf *out, int depth, int in_array)
{
	char num[32];
	double d;
	const json_t *a;

	if (depth > LAMA_OBJECT_MAX_DEPTH)
		return too_deep();
	if (json_is_null(v))
		return in_array ? 0 : lama_buf_addstr(out, "null");
	if (json_is_true(v))
		return lama_buf_addstr(out, "true");
	if (json_is_false(v))
		return lama_buf_addstr(out, "false");
	if (json_is_string(v))
		return lama_buf_add(out, json_string_value(v), json_string_length(v));
	if (lama__num(v, &d))
		return lama_buf_add(out, num, lama__jsnum_format(d, num));
	if (json_is_array(v))
		return js_join(v, 0, 0, out, depth);
	switch (lama__conv(v)) {
	case LAMA__CONV_SET:
		if (!(a = lama__set_items(v)))
			return malformed("$set");
		return js_join(a, 1, 0, out, depth);
	case LAMA__CONV_MAP:
		if (!(a = lama__map_entries(v)))
			return malformed("$map");
		return js_join(a, 0, 1, out, depth);
	case LAMA__CONV_REGEXP:
		if (!regexp_source(v))
			return malformed("$regexp");
		return lama_buf_addstr(out, regexp_source(v));
	case LAMA__CONV_NUMBER:
		return malformed("$number");
	default:
		return lama_buf_addstr(out, "[object Object]");
	}
}

/* --- one.core's sorted stringify --- */

struct key_ref {
	const char *key;
	size_t len;
};

static int cmp_keys(const void *pa, const void *pb)
{
	const struct key_ref *a = pa, *b = pb;

	return lama__utf16_cmp(a->key, a->len, b->key, b->len);
}

static int sorted(const json_t *v, struct lama_buf *out, int depth);

static int sorted_object(const json_t *v, struct lama_buf *out, int depth)
{
	size_t i = 0, n = json_object_size(v);
	struct key_ref *keys;
	const char *k;
	json_t *e;
	int rc = 0;

	keys = lama_calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return lama_error(LAMA_ENOMEM, "out of memory");
	json_object_foreach((json_t *)v, k, e) {
		keys[i].key = k;
		keys[i].len = json_object_iter_key_len(json_object_key_to_iter(k));
		i++;
	}
	qsort(keys, n, sizeof(*keys), cmp_keys);
	rc = lama_buf_addch(out, '{');
	for (i = 0; i < n && !rc; i++) {
		if (i)
			rc = lama_buf_addch(out, ',');
		if (!rc)
			rc = lama__json_string(keys[i].key, keys[i].len, out);
		if (!rc)
			rc = lama_buf_addch(out, ':');
		if (!rc)
			rc = sorted(json_object_getn(v, keys[i].key, keys[i].len), out, depth + 1);
	}
	if (!rc)
		rc = lama_buf_addch(out, '}');
	lama_free(keys);
	return rc;
}

static int sorted_array(const json_t *arr, int is_set, int is_map, struct lama_buf *out, int depth)
{
	struct sort_item *items = NULL;
	size_t i, n = json_array_size(arr);
	int rc = 0;

	if ((is_set || is_map) && (rc = sort_converted(arr, depth, &items)))
		return rc;
	rc = lama_buf_addch(out, '[');
	for (i = 0; i < n && !rc; i++) {
		const json_t *e = items ? items[i].v : json_array_get(arr, i);

		if (i)
			rc = lama_buf_addch(out, ',');
		if (!rc)
			rc = sorted(e, out, depth + 1);
	}
	if (!rc)
		rc = lama_buf_addch(out, ']');
	free_items(items, n);
	return rc;
}

static int sorted(const json_t *v, struct lama_buf *out, int depth)
{
	const json_t *a;
	double d;

	if (depth > LAMA_OBJECT_MAX_DEPTH)
		return too_deep();
	if (json_is_null(v))
		return lama_buf_addstr(out, "null");
	if (json_is_true(v))
		return lama_buf_addstr(out, "true");
	if (json_is_false(v))
		return lama_buf_addstr(out, "false");
	if (json_is_string(v))
		return lama__json_string(json_string_value(v), json_string_length(v), out);
	if (lama__num(v, &d))
		return lama_jsnum_write(d, out);
	if (json_is_array(v))
		return sorted_array(v, 0, 0, out, depth);
	switch (lama__conv(v)) {
	case LAMA__CONV_SET:
		if (!(a = lama__set_items(v)))
			return malformed("$set");
		return sorted_array(a, 1, 0, out, depth);
	case LAMA__CONV_MAP:
		if (!(a = lama__map_entries(v)))
			return malformed("$map");
		return sorted_array(a, 0, 1, out, depth);
	case LAMA__CONV_REGEXP:
		/* one.core writes a recipe's RegExp as its source text */
		if (!regexp_source(v))
			return malformed("$regexp");
		return lama__json_string(regexp_source(v), strlen(regexp_source(v)), out);
	case LAMA__CONV_NUMBER:
		return malformed("$number");
	default:
		return sorted_object(v, out, depth);
	}
}

int lama__stringify_sorted(const json_t *v, struct lama_buf *out)
{
	size_t len = out->len;
	int rc = sorted(v, out, 0);

	if (rc)
		lama_buf_truncate(out, len);
	return rc;
}

void lama__value_display(const json_t *v, struct lama_buf *out, size_t max)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	char num[32];
	double d;
	int rc;

	if (json_is_string(v))
		rc = lama_buf_add(&b, json_string_value(v), json_string_length(v));
	else if (lama__num(v, &d))
		rc = lama_buf_add(&b, num, lama__jsnum_format(d, num));
	else
		rc = sorted(v, &b, 0);
	if (rc || !b.data) {
		lama_buf_addstr(out, rc ? "(unprintable)" : "");
	} else if (b.len > max) {
		lama_buf_add(out, b.data, max);
		lama_buf_addstr(out, "...");
	} else {
		lama_buf_add(out, b.data, b.len);
	}
	lama_buf_release(&b);
}

/* --- JSON.stringify over the convention --- */

/* An array index key ("0", "17", up to 2^32 - 2), which JavaScript objects
 * list first, in numeric order. */
static int index_key(const char *k, size_t n, unsigned long long *val)
{
	unsigned long long x = 0;
	size_t i;

	if (n == 0 || n > 10 || (n > 1 && k[0] == '0'))
		return 0;
	for (i = 0; i < n; i++) {
		if (k[i] < '0' || k[i] > '9')
			return 0;
		x = x * 10 + (unsigned)(k[i] - '0');
	}
	if (x > 4294967294ULL)
		return 0;
	*val = x;
	return 1;
}

struct js_key {
	const char *key;
	size_t len;
	int is_index;
	unsigned long long index;
	size_t pos;
};

static int cmp_js_keys(const void *pa, const void *pb)
{
	const struct js_key *a = pa, *b = pb;

	if (a->is_index != b->is_index)
		return a->is_index ? -1 : 1;
	if (a->is_index && a->index != b->index)
		return a->index < b->index ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int write_js(const json_t *v, struct lama_buf *out, int depth)
{
	size_t i, n;
	int rc = 0;

	if (depth > JSON_WRITE_MAX_DEPTH)
		return lama_error(LAMA_EINVAL, "JSON nested deeper than %d levels", JSON_WRITE_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_NULL: return lama_buf_addstr(out, "null");
	case JSON_TRUE: return lama_buf_addstr(out, "true");
	case JSON_FALSE: return lama_buf_addstr(out, "false");
	case JSON_REAL: return lama_jsnum_write(json_real_value(v), out);
	case JSON_INTEGER: return lama_jsnum_write((double)json_integer_value(v), out);
	case JSON_STRING: return lama__json_string(json_string_value(v), json_string_length(v), out);
	case JSON_ARRAY:
		rc = lama_buf_addch(out, '[');
		for (i = 0, n = json_array_size(v); i < n && !rc; i++) {
			if (i)
				rc = lama_buf_addch(out, ',');
			if (!rc)
				rc = write_js(json_array_get(v, i), out, depth + 1);
		}
		return rc ? rc : lama_buf_addch(out, ']');
	case JSON_OBJECT: {
		struct js_key *keys;
		const char *k;
		json_t *e;

		n = json_object_size(v);
		keys = lama_calloc(n ? n : 1, sizeof(*keys));
		if (!keys)
			return lama_error(LAMA_ENOMEM, "out of memory");
		i = 0;
		json_object_foreach((json_t *)v, k, e) {
			keys[i].key = k;
			keys[i].len = json_object_iter_key_len(json_object_key_to_iter(k));
			keys[i].is_index = index_key(k, keys[i].len, &keys[i].index);
			keys[i].pos = i;
			i++;
		}
		qsort(keys, n, sizeof(*keys), cmp_js_keys);
		rc = lama_buf_addch(out, '{');
		for (i = 0; i < n && !rc; i++) {
			if (i)
				rc = lama_buf_addch(out, ',');
			if (!rc)
				rc = lama__json_string(keys[i].key, keys[i].len, out);
			if (!rc)
				rc = lama_buf_addch(out, ':');
			if (!rc)
				rc = write_js(json_object_getn(v, keys[i].key, keys[i].len), out, depth + 1);
		}
		lama_free(keys);
		return rc ? rc : lama_buf_addch(out, '}');
	}
	}
	return lama_error(LAMA_EINVAL, "unknown JSON value");
}

int lama_json_write(const json_t *v, struct lama_buf *out)
{
	size_t len = out->len;
	int rc = write_js(v, out, 0);

	if (rc)
		lama_buf_truncate(out, len);
	return rc;
}
