/* object.h: ONE objects — recipes, the canonical microdata serialization,
 * ID objects, and parsing microdata back into objects.
 *
 * In memory an object is a jansson json_t in the convention of
 * shared/one-format/README.md: a JSON object with "$type$", a Set as
 * {"$set": [...]}, a Map as {"$map": [[k, v], ...]}, awkward numbers as
 * {"$number": "-0" | "NaN" | "Infinity" | "-Infinity"}. All numbers are
 * JSON reals (parse with LAMA_JSON_FLAGS), because ONE's numbers are
 * JavaScript doubles.
 *
 * The microdata is byte for byte what refinio's one.core produces, so the
 * SHA-256 of it (util/hash.h) is the object's ONE hash. The design is in
 * docs/object-format.md. */
#ifndef LAMA_OBJECT_H
#define LAMA_OBJECT_H

#include <stddef.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/hash.h"

/* Flags for json_loads() of objects: NUL allowed in strings, all numbers as
 * doubles (JavaScript semantics), nothing after the value. */
#define LAMA_JSON_FLAGS (JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

/* Ceilings for hostile input. */
#define LAMA_OBJECT_MAX_BYTES ((size_t)16 << 20) /* one object's microdata */
#define LAMA_OBJECT_MAX_DEPTH 64                 /* nesting of values */
#define LAMA_TYPE_MAX 128                        /* a type name, with NUL */

/* The kinds of reference an itemtype can hold. */
enum lama_ref_kind {
	LAMA_REF_OBJ,  /* referenceToObj: hash of an object */
	LAMA_REF_ID,   /* referenceToId: ID hash of a versioned object */
	LAMA_REF_CLOB, /* referenceToClob: hash of UTF-8 text */
	LAMA_REF_BLOB, /* referenceToBlob: hash of raw bytes */
};

/* --- Recipes --- */

/* A registry of recipes by type name. Opaque; not thread-safe for writes. */
typedef struct lama_recipes lama_recipes;

/* Creates an empty registry (*out owned by caller, free with
 * lama_recipes_free). */
int lama_recipes_new(lama_recipes **out);
void lama_recipes_free(lama_recipes *r);
/* Adds one recipe given as a Recipe object in the JSON convention (the
 * form of shared/one-format/recipes.json entries; crdtConfig may be a $map
 * or an array of pairs). Validates it; replaces a recipe of the same name.
 * Does not keep a reference to `recipe`. Also accepts the form
 * lama_object_parse gives for a Recipe (allowedTypes as an array, regexp as
 * its source string). Names and itemprops may not contain spaces, quotes or
 * markup characters; regexp flags may be i, m, s, u, d. inheritFrom
 * ("Type.itemprop[.itemprop]") is resolved when the rule is used, so order
 * of adding does not matter; an unresolvable one fails then (LAMA_EINVAL). */
int lama_recipes_add(lama_recipes *r, const json_t *recipe);
/* Adds every recipe of a JSON array. */
int lama_recipes_add_all(lama_recipes *r, const json_t *array);
/* Adds the recipes lama is built with: ONE's core recipes and the
 * one.models recipes lama uses (compiled into the binary). */
int lama_recipes_add_builtin(lama_recipes *r);
/* 1 if the type is known. */
int lama_recipes_has(const lama_recipes *r, const char *type);
/* 1 if the type has ID fields (so it is versioned), 0 if not, LAMA_ENOTFOUND
 * (with a message) if the type is unknown. */
int lama_recipes_is_versioned(const lama_recipes *r, const char *type);
/* The Recipe object for a type, in the JSON convention (a new reference the
 * caller must json_decref), or NULL if unknown. */
json_t *lama_recipes_get_json(const lama_recipes *r, const char *type);

/* The CRDT rule that merges concurrent values of one field (see
 * docs/object-format.md, "Versions and merges"). */
enum lama_crdt_rule {
	LAMA_CRDT_REGISTER, /* last writer wins: creation time, then hash */
	LAMA_CRDT_SET,      /* add/remove set: three-way against the common ancestor */
};
/* Calls fn(ctx, itemprop, rule, is_id) for each top-level rule of `type`,
 * in recipe order; stops and returns fn's value if it is non-zero.
 * LAMA_ENOTFOUND if the type is unknown. Sets (set item type, inherited
 * ones included) merge as LAMA_CRDT_SET, everything else as a register,
 * unless the recipe's crdtConfig has an entry for the field (key "itemprop"
 * or "itemprop#itemtype"): a value containing "Set" means LAMA_CRDT_SET,
 * any other value LAMA_CRDT_REGISTER. */
int lama_recipes_foreach_field(const lama_recipes *r, const char *type,
			       int (*fn)(void *ctx, const char *itemprop, enum lama_crdt_rule rule, int is_id),
			       void *ctx);

/* --- Serialization --- */

/* Appends the canonical microdata of obj (whose "$type$" names its recipe)
 * to out. On a rule violation returns LAMA_EINVAL with a message that starts
 * with one.core's error code, e.g. "O2M-RTYC2: Mandatory property ...".
 * Two lama-only codes: "LAMA-SET1" (a $set holds the same scalar twice) and
 * "LAMA-MAP1" (a $map holds a key twice): no JavaScript Set or Map can.
 * On any failure out is left as it was. */
int lama_object_microdata(const lama_recipes *r, const json_t *obj, struct lama_buf *out);
/* Appends the ID object's microdata (data-id-object="true", ID fields only).
 * LAMA_EINVAL if the type has no ID fields. */
int lama_object_id_microdata(const lama_recipes *r, const json_t *obj, struct lama_buf *out);
/* Serializes and hashes in one step; either output may be NULL. id_hash
 * must be NULL for a type without ID fields (else LAMA_EINVAL). */
int lama_object_hash(const lama_recipes *r, const json_t *obj, lama_hash *hash, lama_hash *id_hash);

/* Parses microdata (full or ID form) back into an object (*out is a new
 * reference). Strict: the input must be exactly the canonical microdata of
 * the object it describes, so that serializing *out gives the same bytes;
 * anything else is LAMA_EFORMAT with the byte offset in the message.
 * *is_id_object (if not NULL) tells which form it was. Never reads past n;
 * more than LAMA_OBJECT_MAX_BYTES or LAMA_OBJECT_MAX_DEPTH is LAMA_EFORMAT.
 * Where the text has lost information the result is one object of those it
 * could stand for: numbers are reals, a "null" number or stringifiable is
 * {"$number": "NaN"} (NaN and the infinities are all written "null"), and
 * stringifiable values come back as plain JSON (a Set as its sorted array).
 * The type of a reference is not checked against allowedTypes (one.core
 * does not either). */
int lama_object_parse(const lama_recipes *r, const char *md, size_t n, json_t **out,
		      int *is_id_object);
/* lama_object_parse without the final check of canonical form (serializing
 * the result again and comparing, about half the cost of a parse). Only
 * for bytes that were authenticated and hash-checked from lama's own store,
 * so written by lama's serializer; everything else (peers, files, fuzzers,
 * anything a user hands in) must use lama_object_parse. On canonical input
 * the result is the same as lama_object_parse's. On any other input it is
 * still memory-safe and bounded (LAMA_OBJECT_MAX_BYTES, _MAX_DEPTH, UTF-8
 * strings, well-formed references), but it may accept it and return an
 * object that does not serialize to those bytes, or not at all. */
int lama_object_parse_trusted(const lama_recipes *r, const char *md, size_t n, json_t **out,
			      int *is_id_object);

/* Reads the type name from the head of microdata (full or ID form) without
 * parsing the rest (for indexes); type must hold LAMA_TYPE_MAX bytes.
 * LAMA_EFORMAT if the head is not ONE's frame. */
int lama_object_peek_type(const char *md, size_t n, char type[LAMA_TYPE_MAX]);

/* Calls fn for every reference in obj (at any depth, collections included);
 * stops and returns fn's value if non-zero. itemprop is the rule that holds
 * the reference: the field itself, the collection or map for items, keys
 * and values in it, the inner field for references inside a nested object.
 * `target` is valid only during the call. Order: fields in recipe order,
 * items of arrays, bags and sets and entries of maps in the order of the
 * JSON value (not the sorted order of the microdata); a bag holding a
 * reference twice reports it twice. It walks the JSON value, it does not
 * serialize: obj is meant to have passed lama_object_microdata (full form).
 * Checked on the way are only the type, mandatory fields, the shapes of the
 * containers it passes and the references themselves (LAMA_EINVAL with the
 * serializer's message); other rule violations (a scalar of the wrong type,
 * an unknown property, a repeat in a set) go unnoticed. */
int lama_object_foreach_ref(const lama_recipes *r, const json_t *obj,
			    int (*fn)(void *ctx, const char *itemprop, enum lama_ref_kind kind,
				      const lama_hash *target),
			    void *ctx);

/* --- JSON as JavaScript writes it --- */

/* Appends JSON text of v as JavaScript's JSON.stringify would write the
 * value (number text, string escapes, key order: array-index keys first in
 * numeric order, then insertion order), keeping the $set/$map/$number
 * convention. For `lama object get` and tests. On failure out is unchanged. */
int lama_json_write(const json_t *v, struct lama_buf *out);
/* Appends the shortest JavaScript text for a double (Number#toString):
 * "1e+21", "5e-324", "0.000001", "-0" is written "0". NaN and infinities
 * are written "null" (as JSON.stringify does). */
int lama_jsnum_write(double d, struct lama_buf *out);

#endif
