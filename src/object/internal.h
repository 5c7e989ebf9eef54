/* internal.h: what the files of src/object share and nobody else sees
 * (libuv's uv__ habit: public names lama_*, module-private names lama__*). */
#ifndef LAMA_OBJECT_INTERNAL_H
#define LAMA_OBJECT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "object/object.h"

/* --- Recipes (recipe.c) --- */

enum lama__kind {
	LAMA__STRING,
	LAMA__INTEGER,
	LAMA__NUMBER,
	LAMA__BOOLEAN,
	LAMA__STRINGIFIABLE,
	LAMA__REF_OBJ,
	LAMA__REF_ID,
	LAMA__REF_CLOB,
	LAMA__REF_BLOB,
	LAMA__MAP,
	LAMA__BAG,
	LAMA__ARRAY,
	LAMA__SET,
	LAMA__OBJECT,
};

struct lama__rule;

/* A compiled itemtype. Owned by its rule; children owned by the parent. */
struct lama__itemtype {
	enum lama__kind kind;
	pcre2_code *re;          /* string: compiled regexp, or NULL */
	pcre2_general_context *gctx; /* borrowed from the registry, for re */
	pcre2_match_context *mctx;   /* borrowed: match limits for re */
	char *re_source;         /* string: the regexp as written, for messages */
	struct lama__itemtype *key, *value; /* map */
	struct lama__itemtype *item;        /* bag, array, set */
	struct lama__rule *rules;           /* object */
	size_t nrules;
};

struct lama__rule {
	char *itemprop;
	int optional;
	int is_id;
	struct lama__itemtype *type; /* NULL when inherited */
	char *inherit;               /* "Type.itemprop[.itemprop...]" or NULL */
	char *text;                  /* the rule in sorted JSON, for messages */
};

struct lama__recipe {
	char *name;
	struct lama__rule *rules;
	size_t nrules;
	int versioned; /* has at least one isId rule */
	json_t *json;  /* the Recipe object, crdtConfig normalized to a $map */
};

/* Borrowed pointer into the registry, or NULL. */
const struct lama__recipe *lama__recipe_find(const lama_recipes *r, const char *name);
/* The itemtype of a rule, following inheritFrom (bounded); *out borrowed. */
int lama__rule_type(const lama_recipes *r, const struct lama__rule *rule,
		    const struct lama__itemtype **out);
/* "string", "referenceToObj", ... as recipes spell them. */
const char *lama__kind_name(enum lama__kind k);
/* 1 if value matches the itemtype's regexp (or there is none), 0 if not,
 * LAMA_EINVAL (with a message) if the matcher gave up. *md is match data
 * kept between calls (one allocation per serialization, not per string):
 * NULL at first, created here, freed by the caller with
 * pcre2_match_data_free. */
int lama__re_match(const struct lama__itemtype *t, const char *s, size_t n,
		   pcre2_match_data **md);

/* The builtin recipes, generated from recipes/builtin.json at build time. */
extern const unsigned char lama__builtin_recipes[];
extern const size_t lama__builtin_recipes_len;

/* --- The $set / $map / $number / $regexp convention (jsjson.c) --- */

enum lama__conv {
	LAMA__CONV_NONE,   /* not a wrapper (or not an object at all) */
	LAMA__CONV_SET,    /* {"$set": [...]} */
	LAMA__CONV_MAP,    /* {"$map": [[k, v], ...]} */
	LAMA__CONV_NUMBER, /* {"$number": "-0" | "NaN" | "Infinity" | "-Infinity"} */
	LAMA__CONV_REGEXP, /* {"$regexp": {"source": ..., "flags": ...}} */
};
/* Which wrapper v is: an object with exactly that one key. The payload is
 * not checked here. */
enum lama__conv lama__conv(const json_t *v);
/* 1 and *d set if v is a number: a JSON number or a well-formed $number. */
int lama__num(const json_t *v, double *d);
/* A well-formed $map: the payload array of [key, value] pairs, else NULL. */
const json_t *lama__map_entries(const json_t *v);
/* A $set's payload array, else NULL. */
const json_t *lama__set_items(const json_t *v);

/* Appends one.core's sorted "stringifiable" JSON of v: object keys sorted in
 * UTF-16 order, Sets and Maps as arrays sorted by JavaScript's default sort,
 * RegExps as their source string. Nesting deeper than LAMA_OBJECT_MAX_DEPTH
 * is LAMA_EINVAL. */
int lama__stringify_sorted(const json_t *v, struct lama_buf *out);
/* Appends a JSON string literal as JSON.stringify writes it. */
int lama__json_string(const char *s, size_t n, struct lama_buf *out);
/* Appends how one.core shows a value in an error message: strings raw,
 * everything else as sorted JSON; cut at about `max` bytes. */
void lama__value_display(const json_t *v, struct lama_buf *out, size_t max);

/* --- Numbers (jsnum.c) --- */

/* Number#toString into out (NUL-terminated, at most 31 chars): "NaN",
 * "Infinity", "-Infinity", "0" for -0. Returns the length. */
size_t lama__jsnum_format(double d, char out[32]);
/* Number.isInteger(d). */
int lama__is_integer(double d);

/* --- Text (text.c) --- */

/* Appends s with & < > as &amp; &lt; &gt; (nothing else is escaped). */
int lama__html_escape(const char *s, size_t n, struct lama_buf *out);
/* Compares two UTF-8 strings in UTF-16 code-unit order (JavaScript's default
 * sort order); <0, 0, >0. Invalid bytes compare by their value. */
int lama__utf16_cmp(const char *a, size_t an, const char *b, size_t bn);
/* 1 if s[0..n) is a hash in lower-case hex (exactly LAMA_HASH_HEX
 * characters), decoded into *out unless out is NULL; 0 if not (then *out is
 * undefined). One table look-up per character: this is on every put and get. */
int lama__hash_from_hex(const char *s, size_t n, lama_hash *out);

/* --- Microdata (microdata.c, parse.c) --- */

/* Serializes obj (full form, or ID form if id_form), appending to out;
 * on failure out keeps its old length. */
int lama__serialize(const lama_recipes *r, const json_t *obj, int id_form, struct lama_buf *out);

/* Parses microdata; checks canonical form by re-serializing if `verify`
 * (lama_object_parse), trusts the bytes to be canonical if not
 * (lama_object_parse_trusted). Memory-safe on any input either way. */
int lama__parse(const lama_recipes *r, const char *md, size_t n, json_t **out, int *is_id,
		int verify);

#endif
