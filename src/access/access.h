/* access.h: who may receive which objects — ONE's Access, IdAccess and
 * Group objects, and the queries the sync code builds on.
 *
 * Access {object (ID), person, group} grants one object; IdAccess {id (ID),
 * person, group} grants every version of an ID; Group {name (ID), person}
 * names a set of persons. All three are versioned: a grant or a group
 * changes by a new version, and concurrent versions from several devices
 * merge with their person and group bags as add/remove sets (registered by
 * lama_access_init). Only the current version of a grant or group counts.
 *
 * A person P may receive the *roots* (each object of a current Access, and
 * each ID of a current IdAccess, that names P or a group whose current
 * version holds P) and their *closure*: for an ID root its ID object, its
 * version nodes and every version's object; for every object reached, what
 * it references, transitively (referenceToObj: the object; referenceToBlob
 * and referenceToClob: the BLOB or CLOB; referenceToId: the ID object
 * only, never its versions: those come only with an IdAccess). Roots are
 * found through reverse maps and closures walk references, so every query
 * costs what the grants and the closure hold, never what the archive holds.
 *
 * The archive does not record who wrote an object: a grant or a group is
 * honoured whoever wrote it. Sync must take Access, IdAccess and Group
 * objects only from the user's own instances (lama_access_is_rule_type).
 * Design and costs: docs/access.md. */
#ifndef LAMA_ACCESS_H
#define LAMA_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "archive/archive.h"

/* Persons plus groups one grant may name, members one group may hold. */
#define LAMA_ACCESS_MAX_NAMES 10000
/* Bytes of a group name (UTF-8, not empty). */
#define LAMA_ACCESS_GROUP_NAME_MAX 256
/* The IoM group of owner P (P's own devices and persons) is the Group named
 * this prefix followed by P's Person ID hash in hex. A group's name is its
 * whole identity, so it carries the owner: another user's IoM group is
 * another group. */
#define LAMA_ACCESS_IOM_PREFIX "IoM:"

/* Registers the merge rules (Access.person/group, IdAccess.person/group,
 * Group.person as add/remove sets) on the archive. Call once after
 * lama_archive_new, before any grant or group is merged or read. */
int lama_access_init(lama_archive *a);

/* 1 if objects of `type` decide access (Access, IdAccess, Group), else 0:
 * sync takes these only from the user's own instances. */
int lama_access_is_rule_type(const char *type);

/* --- Grants --- */

/* A grant as read and validated: an Access (is_id 0, target an object) or
 * an IdAccess (is_id 1, target an ID). persons and groups are distinct and
 * sorted (by hex), owned by the struct. */
struct lama_access_grant {
	int is_id;
	lama_hash target;
	lama_hash *persons, *groups;
	size_t npersons, ngroups;
};

/* Validates an Access or IdAccess object (from the archive, a peer, a
 * file) and fills *out (release with lama_access_grant_release, also after
 * a failure). LAMA_EINVAL with a message naming the field for anything
 * else than the recipe's shape (wrong type, a missing or unknown field, a
 * reference that is not 64 lower-case hex), LAMA_ELIMIT for more than
 * LAMA_ACCESS_MAX_NAMES names. Repeated names are kept once. */
int lama_access_grant_parse(const json_t *obj, struct lama_access_grant *out);
void lama_access_grant_release(struct lama_access_grant *g);

/* The current grant of an object (is_id 0) or an ID (is_id 1): its ID hash
 * (*grant_id, may be NULL) and, if out is not NULL, its content.
 * LAMA_ENOTFOUND if it was never granted. Merges concurrent versions. */
int lama_access_grant_get(lama_archive *a, const lama_hash *target, int is_id,
			  lama_hash *grant_id, struct lama_access_grant *out);

/* Grants an object (a stored object, else LAMA_ENOTFOUND / LAMA_EINVAL) to
 * persons and groups (Person and Group ID hashes; either list may be
 * empty): a new Access version holding the current one's names and these.
 * Nothing is written when nothing changes. *version (may be NULL) is the
 * current Access object's hash afterwards. */
int lama_access_grant(lama_archive *a, const lama_hash *object, const lama_hash *persons,
		      size_t np, const lama_hash *groups, size_t ng, lama_hash *version);
/* The same for every version of an ID (a stored ID object) with IdAccess. */
int lama_access_grant_id(lama_archive *a, const lama_hash *id, const lama_hash *persons,
			 size_t np, const lama_hash *groups, size_t ng, lama_hash *version);
/* A new version without these names. Revoking what was never granted
 * writes nothing and is not an error. */
int lama_access_revoke(lama_archive *a, const lama_hash *object, const lama_hash *persons,
		       size_t np, const lama_hash *groups, size_t ng);
int lama_access_revoke_id(lama_archive *a, const lama_hash *id, const lama_hash *persons,
			  size_t np, const lama_hash *groups, size_t ng);

/* --- Groups --- */

/* A group as read and validated; persons distinct and sorted, owned. */
struct lama_access_group {
	char name[LAMA_ACCESS_GROUP_NAME_MAX + 1];
	lama_hash *persons;
	size_t npersons;
};

/* Validates a Group object; as lama_access_grant_parse. Release with
 * lama_access_group_release (also after a failure). */
int lama_access_group_parse(const json_t *obj, struct lama_access_group *out);
void lama_access_group_release(struct lama_access_group *g);

/* The Group ID hash of a name (LAMA_EINVAL for an empty or overlong one). */
int lama_access_group_id(lama_archive *a, const char *name, lama_hash *id);
/* Sets the members of the group `name` to exactly persons[0..n) (a new
 * version, or the first); *id (may be NULL) is its ID hash. */
int lama_access_group_set(lama_archive *a, const char *name, const lama_hash *persons,
			  size_t n, lama_hash *id);
/* Adds or removes one member (a new version; none when nothing changes).
 * LAMA_ENOTFOUND if the group has no version. */
int lama_access_group_add(lama_archive *a, const lama_hash *group, const lama_hash *person);
int lama_access_group_remove(lama_archive *a, const lama_hash *group, const lama_hash *person);
/* The current version of a group. LAMA_ENOTFOUND if it has none. */
int lama_access_group_get(lama_archive *a, const lama_hash *group,
			  struct lama_access_group *out);

/* The ID hash of owner's IoM group (it need not exist). */
int lama_access_iom_id(lama_archive *a, const lama_hash *owner, lama_hash *id);
/* Creates owner's IoM group with owner as its only member unless it has a
 * version already; *id (may be NULL) is its ID hash. */
int lama_access_iom_ensure(lama_archive *a, const lama_hash *owner, lama_hash *id);

/* --- Queries --- */

/* What a query skipped. Nothing skipped is ever granted (fail closed). */
struct lama_access_stats {
	uint64_t read;      /* grant, group and closure objects read */
	uint64_t malformed; /* grants or groups that failed validation */
	uint64_t missing;   /* references to what is not stored, or not as the
			       kind the reference says */
	uint64_t lookups;   /* store lookups the closure walk made: at most one
			       per distinct hash, plus one when a hash named
			       wrongly first is later named rightly */
};

/* One root: an object of an Access, or an ID of an IdAccess. */
struct lama_access_root {
	lama_hash hash;
	int is_id;
};

/* Calls fn for each group whose current version holds person (each once,
 * no order). A non-zero return of fn stops and is passed back. stats may
 * be NULL. Cost: one read per Group version that ever named the person,
 * plus one current-version read per such group. */
int lama_access_groups_of(lama_archive *a, const lama_hash *person,
			  int (*fn)(void *ctx, const lama_hash *group), void *ctx,
			  struct lama_access_stats *stats);

/* Calls fn for each root person may receive (each once, no order). stats
 * may be NULL. Cost: the groups query, then one read per Access/IdAccess
 * version that ever named the person or one of those groups, plus one
 * current-version read per grant (which merges concurrent heads). */
int lama_access_roots(lama_archive *a, const lama_hash *person,
		      int (*fn)(void *ctx, const struct lama_access_root *root), void *ctx,
		      struct lama_access_stats *stats);

/* The kind of a hash in a closure. */
enum lama_access_kind {
	LAMA_ACCESS_OBJECT = 1, /* an object (version nodes included) */
	LAMA_ACCESS_ID,         /* an ID object */
	LAMA_ACCESS_BLOB,
	LAMA_ACCESS_CLOB,
};

typedef int (*lama_access_fn)(void *ctx, const lama_hash *h, enum lama_access_kind kind);

/* A closure walk: a visited set over any number of roots, so each hash is
 * reported once however many roots reach it. Opaque; free with
 * lama_access_walk_free. The archive is borrowed. */
typedef struct lama_access_walk lama_access_walk;
int lama_access_walk_new(lama_archive *a, lama_access_walk **out);
void lama_access_walk_free(lama_access_walk *w);
/* Calls fn(ctx, hash, kind) for each hash of root's closure not reported
 * by this walk before, the root first (if stored; a root that is not
 * stored, or not of its kind, counts as missing). Cost: one read per new
 * object, ID object or CLOB, one lookup per new BLOB, one reverse-map
 * lookup per ID root; memory: the visited set. A hash that a reference
 * names as another kind than it is (or that is not stored) is remembered
 * with the kind it has, unreported: later references to it cost no read,
 * except the first that names it rightly, which brings it. A non-zero return of fn
 * stops the walk and is passed back; the walk can go on with another
 * root, but this root's closure may then be reported only in part. */
int lama_access_walk_root(lama_access_walk *w, const struct lama_access_root *root,
			  lama_access_fn fn, void *ctx);
/* 1 if the walk has reported h (its kind in *kind, may be NULL), else 0. */
int lama_access_walk_has(const lama_access_walk *w, const lama_hash *h,
			 enum lama_access_kind *kind);
/* Hashes reported so far. */
size_t lama_access_walk_count(const lama_access_walk *w);
void lama_access_walk_stats(const lama_access_walk *w, struct lama_access_stats *out);

/* The closure of one root (a walk of its own; fn may be NULL to count):
 * what sync sends for one granted root. */
int lama_access_root_closure(lama_archive *a, const struct lama_access_root *root,
			     lama_access_fn fn, void *ctx, struct lama_access_stats *stats);
/* Every hash person may receive, each once: lama_access_roots, then a walk
 * over all roots. stats may be NULL. */
int lama_access_closure(lama_archive *a, const lama_hash *person, lama_access_fn fn,
			void *ctx, struct lama_access_stats *stats);
/* *yes = 1 if person may receive h. Computes the closure until h is found:
 * the cost of lama_access_closure when it is not. For many checks, build
 * one walk over the roots and ask lama_access_walk_has. */
int lama_access_may_receive(lama_archive *a, const lama_hash *person, const lama_hash *h,
			    int *yes);

#endif
