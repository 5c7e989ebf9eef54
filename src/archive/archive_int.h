/* archive_int.h: what archive.c and merge.c share. */
#ifndef LAMA_ARCHIVE_INT_H
#define LAMA_ARCHIVE_INT_H

#include "archive/archive.h"

struct archive_rule {
	const char *type, *field; /* field NULL: a whole-type merger */
	lama_merge_fn fn;
	void *ctx;
	enum lama_crdt_rule rule;
};

struct lama_archive {
	lama_store *st;
	struct archive_rule rules[LAMA_ARCHIVE_RULES];
	size_t nrules;
	const char *unindexed[LAMA_ARCHIVE_RULES]; /* types without reverse maps */
	size_t nunindexed;
	const lama_recipes *recipes;
	struct lama_buf scratch; /* reused by reads; wiped after each */
};

enum node_kind { NODE_EDGE, NODE_CHANGE, NODE_MERGE };

/* A version node as read from the archive. */
struct archive_node {
	lama_hash hash;
	enum node_kind kind;
	lama_hash data;     /* the version's object */
	double depth, time; /* depth in the DAG, creationTime (ms) */
	lama_hash *parents; /* prev (change) or nodes (merge); owned */
	size_t nparents;
};

const char *archive__type(const json_t *obj);
/* The merger (field NULL) or field rule registered for a type, or NULL. */
const struct archive_rule *archive__rule(const lama_archive *a, const char *type,
					 const char *field);
/* Stores obj and its ID object with reverse maps (no version node). */
int archive__store(lama_archive *a, const json_t *obj, struct lama_put_info *info);
int archive__node_load(lama_archive *a, const lama_hash *h, struct archive_node *n);
void archive__node_release(struct archive_node *n);
/* Stores a version node object, indexed as a referrer of its ID; *known
 * (may be NULL) is 1 if it was stored and indexed before. */
int archive__node_store(lama_archive *a, json_t *node, const lama_hash *id, lama_hash *out,
			int *known);

#endif
