/* archive.h: ONE's storage semantics over the encrypted store — objects
 * checked against their recipes, ID objects, versions as a DAG of version
 * nodes with deterministic merges, reverse maps, CLOBs.
 *
 * A type with ID fields is versioned. Storing such an object also stores
 * its ID object and records a version node: VersionNodeEdge for a first
 * version, VersionNodeChange after a predecessor, VersionNodeMerge when
 * concurrent heads are merged. The heads of an ID are the nodes nothing
 * follows yet. Merging is per field, by the recipe's CRDT rule, and gives
 * the same object whatever the order and grouping of merges
 * (docs/object-format.md, "Versions and merges"). */
#ifndef LAMA_ARCHIVE_H
#define LAMA_ARCHIVE_H

#include <jansson.h>

#include "object/object.h"
#include "store/store.h"

typedef struct lama_archive lama_archive;

/* Wraps an open store and a recipe registry; both are borrowed and must
 * outlive the archive. Free with lama_archive_free. */
int lama_archive_new(lama_archive **out, lama_store *st, const lama_recipes *r);
void lama_archive_free(lama_archive *a);
lama_store *lama_archive_store(lama_archive *a);
const lama_recipes *lama_archive_recipes(lama_archive *a);

struct lama_put_info {
	lama_hash hash;    /* the object */
	int is_new;        /* 0 if it was stored before */
	int versioned;     /* the type has ID fields; then: */
	lama_hash id_hash; /* its ID hash */
	lama_hash node;    /* the version node now naming this version */
};

/* Milliseconds since the epoch, as ONE's creationTime. */
double lama_archive_now(void);

/* Stores obj (validated against its recipe) with reverse-map entries for
 * every reference it holds. A versioned object becomes the next version
 * after the current head (the heads are merged first if there are
 * several); putting the current version again changes nothing.
 * creation_time (ms) 0 means now; a negative or non-finite one is
 * LAMA_EINVAL. One transaction. info may be NULL. */
int lama_archive_put(lama_archive *a, const json_t *obj, double creation_time,
		     struct lama_put_info *info);
/* Records obj as a version that follows version node `prev` (NULL: a first
 * version), leaving every other head in place: this is how concurrent
 * versions from other devices arrive. A version already known (the same
 * obj, prev and creation_time make the same node) changes nothing, even
 * after it was merged. creation_time as for lama_archive_put. */
int lama_archive_put_version(lama_archive *a, const json_t *obj, const lama_hash *prev,
			     double creation_time, struct lama_put_info *info);
/* Stores UTF-8 text as a CLOB (LAMA_EINVAL if not valid UTF-8). */
int lama_archive_put_clob(lama_archive *a, const char *text, size_t n, lama_hash *hash);

/* Reads an object or ID object back (*out a new reference). Every read is
 * decrypted, re-hashed and parsed strictly. */
int lama_archive_get(lama_archive *a, const lama_hash *h, json_t **out);

/* The version heads of an ID (*nodes allocated, lama_free). */
int lama_archive_heads(lama_archive *a, const lama_hash *id, lama_hash **nodes, size_t *n);
/* Merges all heads of an ID into one (a no-op with one head); *node (may be
 * NULL) is the single head afterwards. */
int lama_archive_merge(lama_archive *a, const lama_hash *id, lama_hash *node);
/* The current version's object hash: the data of the single head, merging
 * first if needed. LAMA_ENOTFOUND for an ID without versions. */
int lama_archive_current(lama_archive *a, const lama_hash *id, lama_hash *obj);

/* --- Merge rules the models add --- */

/* A type whose concurrent versions merge by its own rule instead of field
 * by field (ChannelInfo: the linked-list merge of channel logs). fn gets
 * the objects of the n >= 2 heads and returns the merged object (*merged,
 * a new reference, of the same ID). It must give the same object for any
 * order and grouping of merges. The archive then records the merge node.
 * Up to LAMA_ARCHIVE_RULES mergers and field rules in all; a second
 * registration for a type replaces the first. */
#define LAMA_ARCHIVE_RULES 32
typedef int (*lama_merge_fn)(void *ctx, lama_archive *a, json_t *const *heads, size_t n,
			     json_t **merged);
int lama_archive_set_merger(lama_archive *a, const char *type, lama_merge_fn fn, void *ctx);
/* Overrides the CRDT rule of one field of a type: LAMA_CRDT_SET on a bag
 * (an array) merges it as an add/remove set of distinct items, in the
 * order of their canonical JSON text (Profile's descriptions, Leute's
 * contacts: concurrent additions from two devices both stay). type and
 * field are borrowed and must outlive the archive. */
int lama_archive_set_rule(lama_archive *a, const char *type, const char *field,
			  enum lama_crdt_rule rule);

/* Records no reverse-map rows for the references objects of `type` hold
 * (ONE's Instance lists the types it keeps reverse maps for; lama keeps
 * them for all but these). For types whose references nobody asks about
 * backwards and that would pay dearly for them: a Leute version names
 * every contact, a channel's LinkedListEntry its neighbours. Version
 * nodes stay referrers of their ID. type is borrowed and must outlive the
 * archive; up to LAMA_ARCHIVE_RULES types. */
int lama_archive_set_unindexed(lama_archive *a, const char *type);
/* 1 if type was set unindexed, else 0: for code that stores objects
 * beside the archive's own puts (the sync worker's apply). */
int lama_archive_is_unindexed(const lama_archive *a, const char *type);

/* Who refers to `target` (an object, ID, CLOB or BLOB hash): fn is called
 * for each referrer of type `type` (NULL: any). The version nodes of an ID
 * are found as referrers of the ID hash. */
int lama_archive_referrers(lama_archive *a, const lama_hash *target, const char *type,
			   int (*fn)(void *ctx, const char *type, const lama_hash *src),
			   void *ctx);
/* The same, reading at most `max` referrers (0: all); *truncated (may be
 * NULL) says whether there were more (see lama_store_refs_max). */
int lama_archive_referrers_max(lama_archive *a, const lama_hash *target, const char *type,
			       size_t max, int (*fn)(void *ctx, const char *type, const lama_hash *src),
			       void *ctx, int *truncated);

#endif
