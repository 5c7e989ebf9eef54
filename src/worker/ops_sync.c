/* ops_sync.c: the "sync" worker's ops (docs/workers.md#sync): diff of two
 * sorted hash sets, hash_batch to check received objects; apply, which
 * checks a batch of received objects and stores it in one transaction,
 * and merge, over the user's archive (warchive.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "crypto/crypto.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"
#include "worker/frame.h"
#include "worker/ops.h"
#include "worker/warchive.h"

/* u32 count, count x hash[32], strictly ascending */
static int read_set(struct lama_rd *r, const uint8_t **set, uint32_t *count, const char *name)
{
	int rc = lama_rd_u32(r, count, "a count");

	if (rc)
		return rc;
	if (*count > r->left / LAMA_HASH_BYTES)
		return lama_error(LAMA_EINVAL, "diff: %u hashes of %s do not fit in %zu bytes",
				  *count, name, r->left);
	if ((rc = lama_rd_bytes(r, (size_t)*count * LAMA_HASH_BYTES, set, name)))
		return rc;
	for (uint32_t i = 1; i < *count; i++)
		if (memcmp(*set + (size_t)(i - 1) * LAMA_HASH_BYTES,
			   *set + (size_t)i * LAMA_HASH_BYTES, LAMA_HASH_BYTES) >= 0)
			return lama_error(LAMA_EINVAL, "diff: %s is not sorted strictly ascending (at %u)",
					  name, i);
	return 0;
}

/* One side's missing hashes: u32 count, then the hashes, appended. */
static int add_missing(struct lama_buf *out, const uint8_t *a, uint32_t na, const uint8_t *b,
		       uint32_t nb)
{
	size_t at = out->len;
	uint32_t i = 0, j = 0, k = 0;
	uint8_t cnt[4] = { 0 };
	int rc;

	if ((rc = lama_buf_add(out, cnt, 4)))
		return rc;
	while (i < na) {
		int c = j < nb ? memcmp(a + (size_t)i * 32, b + (size_t)j * 32, 32) : -1;

		if (c < 0) {
			if ((rc = lama_buf_add(out, a + (size_t)i * 32, 32)))
				return rc;
			k++;
			i++;
		} else if (c == 0) {
			i++;
			j++;
		} else {
			j++;
		}
	}
	cnt[0] = (uint8_t)(k >> 24), cnt[1] = (uint8_t)(k >> 16);
	cnt[2] = (uint8_t)(k >> 8), cnt[3] = (uint8_t)k;
	memcpy(out->data + at, cnt, 4);
	return 0;
}

/* set A, set B -> u32 n, the hashes of A not in B; u32 m, of B not in A */
static int op_diff(struct lama_rd *r, struct lama_buf *out)
{
	const uint8_t *a, *b;
	uint32_t na, nb;
	int rc;

	if ((rc = read_set(r, &a, &na, "set A")) || (rc = read_set(r, &b, &nb, "set B")) ||
	    (rc = lama_rd_end(r)))
		return rc;
	if ((rc = add_missing(out, a, na, b, nb)))
		return rc;
	return add_missing(out, b, nb, a, na);
}

/* u32 count, count x (u32 len, bytes) -> count x sha256[32] */
static int op_hash_batch(struct lama_rd *r, struct lama_buf *out)
{
	const uint8_t *p;
	uint32_t count, len;
	int rc;

	if ((rc = lama_rd_u32(r, &count, "the count")))
		return rc;
	if (count > LAMA_WORKER_BATCH_MAX || (size_t)count * 4 > r->left)
		return lama_error(LAMA_EINVAL, "hash_batch: %u items do not fit (at most %d)",
				  count, LAMA_WORKER_BATCH_MAX);
	if ((rc = lama_buf_grow(out, (size_t)count * LAMA_HASH_BYTES)))
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		lama_hash h;

		if ((rc = lama_rd_u32(r, &len, "a length")) ||
		    (rc = lama_rd_bytes(r, len, &p, "an object")))
			return rc;
		lama_sha256(p, len, &h);
		if ((rc = lama_buf_add(out, h.b, sizeof(h.b))))
			return rc;
	}
	return lama_rd_end(r);
}

/* ---- apply ---- */

enum { ITEM_OBJECT = 1, ITEM_ID = 2, ITEM_CLOB = 3 };
enum { NODE_NONE, NODE_EDGE, NODE_CHANGE, NODE_MERGE };
/* what apply found checking an item (the output's second byte per item) */
enum {
	CHECK_NONE = 0,       /* nothing to check beyond the rest */
	CHECK_SIG_OK = 1,     /* a Signature that verifies with a claimed key */
	CHECK_SIG_UNKNOWN = 2, /* a Signature not decided: more claimed keys than read */
	CHECK_MERGE_OK = 3,   /* a merge node that is the merge made here */
	CHECK_NOT_VERSION = 4, /* a version node not recorded here: an object only */
};

/* The main loop's writes wait for apply's transaction: a batch is bounded
 * so that it stays short. */
#define APPLY_ITEMS_MAX 4096
#define APPLY_BYTES_MAX ((size_t)8 << 20)
#define APPLY_WORK_MAX 16384 /* units per batch: an object loaded, a row read, a signature tried */
#define APPLY_REFS_MAX 256   /* Keys or Profiles of an issuer read from the archive */
#define APPLY_DESC_MAX 256   /* descriptions read per Profile */
#define MERGE_NODES_MAX 64   /* nodes a merge may name to be made here */
#define MERGES_MAX 256       /* merges made per batch */
#define MERGE_COST 2         /* units: a merge's data and the lookup of its node */
#define NAMED_COST 3         /* units: a named node and its data loaded, one lookup */
#define MADE_COST 8          /* units: a merge made, plus 2 per node merged */

struct item {
	uint32_t index; /* in the batch, for messages */
	uint8_t kind;
	uint8_t check; /* CHECK_* */
	lama_hash hash;
	const uint8_t *p;
	uint32_t n;
	json_t *obj;   /* kind ITEM_OBJECT */
	int versioned; /* its type has ID fields */
	int node;      /* NODE_* for version nodes */
	double depth;
	int was;       /* stored before the batch */
	int named;     /* the data of an edge or change of the batch */
	lama_hash issuer; /* of a Signature */
	uint8_t sig[LAMA_SIG_BYTES];
	char msg[LAMA_HASH_HEX + 1];
};

/* A signing key someone claims: the publicSignKey of a Keys object the
 * owner owns, or a SignKey of a Profile whose personId and owner are the
 * owner. more: not a key but a mark that the owner claims more keys than
 * were read. */
struct claimed {
	lama_hash owner;
	uint8_t pk[LAMA_SIGN_PK_BYTES];
	uint8_t more;
};

struct kvec {
	struct claimed *v;
	size_t n, cap;
};

struct apply {
	lama_session *s;
	lama_archive *a;
	const lama_recipes *rec;
	struct item *items;
	uint32_t count;
	struct item **by_hash; /* sorted by hash, to find an item */
	lama_hash *ids;        /* the IDs whose versions arrived */
	size_t nids;
	struct kvec bkeys;     /* the batch's claimed keys, by owner */
	size_t work;           /* of APPLY_WORK_MAX */
	size_t merges;         /* made, of MERGES_MAX */
};

static const char *type_of(const json_t *o)
{
	const char *t = json_string_value(json_object_get(o, "$type$"));

	return t ? t : "";
}

/* A hash held in a JSON string; 0 or -1. */
static int str_hash(const json_t *v, lama_hash *h)
{
	return json_is_string(v) && !lama_hash_parse(json_string_value(v), json_string_length(v), h)
		       ? 0
		       : -1;
}

/* A field holding a hash; 0 or -1. */
static int get_hash(const json_t *o, const char *field, lama_hash *h)
{
	return str_hash(json_object_get(o, field), h);
}

/* Exactly 2n lower-case hex digits (as trust writes keys and signatures). */
static int lc_hex(const json_t *v, uint8_t *out, size_t n)
{
	const char *s = json_string_value(v);

	if (!s || json_string_length(v) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	return lama_hex_decode(s, 2 * n, out, n) ? -1 : 0;
}

static int by_hash_cmp(const void *x, const void *y)
{
	const struct item *a = *(struct item *const *)x, *b = *(struct item *const *)y;

	return memcmp(a->hash.b, b->hash.b, sizeof(a->hash.b));
}

static struct item *find_item(struct apply *ap, const lama_hash *h)
{
	size_t lo = 0, hi = ap->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(ap->by_hash[mid]->hash.b, h->b, sizeof(h->b));

		if (!c)
			return ap->by_hash[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Object h from the batch (borrowed into *o with a reference taken) or the
 * archive. LAMA_ENOTFOUND if in neither. */
static int load_obj(struct apply *ap, const lama_hash *h, json_t **o)
{
	struct item *it = find_item(ap, h);

	if (it && it->obj) {
		*o = json_incref(it->obj);
		return 0;
	}
	return lama_archive_get(ap->a, h, o);
}

static int refuse(const struct item *it, int code, const char *why)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(&it->hash, hex);
	return lama_error(code, "apply: object %u (%.16s...) %s", it->index, hex, why);
}

/* -- signatures -- */

static int kvec_push(struct kvec *k, const struct claimed *c)
{
	if (lama_grow(&k->v, &k->cap, k->n, sizeof(*k->v), 16))
		return LAMA_ENOMEM;
	k->v[k->n++] = *c;
	return 0;
}

static int kvec_add(struct kvec *k, const lama_hash *owner, const json_t *key, int more)
{
	struct claimed c = { .owner = *owner, .more = (uint8_t)more };

	if (!more && lc_hex(key, c.pk, sizeof(c.pk)))
		return 0; /* a key lama cannot read is no key */
	return kvec_push(k, &c);
}

/* Adds the keys holder o claims for its owner to k (when want is NULL or
 * that owner): a Keys object's publicSignKey, a Profile's SignKeys if its
 * personId and owner are the same person. Objects that do not load are
 * no keys; < 0 only for errors that are not about the object (memory,
 * I/O). Loading a description costs work; past the budget, a `more`
 * mark stands for the keys not read. */
static int holder_keys(struct apply *ap, const json_t *o, const lama_hash *want, struct kvec *k)
{
	const json_t *desc;
	lama_hash owner, person;
	int rc;

	if (!strcmp(type_of(o), "Keys")) {
		if (get_hash(o, "owner", &owner) || (want && !lama_hash_eq(&owner, want)))
			return 0;
		return kvec_add(k, &owner, json_object_get(o, "publicSignKey"), 0);
	}
	if (strcmp(type_of(o), "Profile") || get_hash(o, "personId", &person) ||
	    get_hash(o, "owner", &owner) || !lama_hash_eq(&owner, &person) ||
	    (want && !lama_hash_eq(&owner, want)))
		return 0;
	desc = json_object_get(o, "personDescription");
	for (size_t j = 0; j < json_array_size(desc); j++) {
		json_t *d = NULL;
		lama_hash dh;

		if (j >= APPLY_DESC_MAX || ap->work >= APPLY_WORK_MAX)
			return kvec_add(k, &owner, NULL, 1);
		if (str_hash(json_array_get(desc, j), &dh))
			continue;
		ap->work++;
		rc = load_obj(ap, &dh, &d);
		if (rc == LAMA_ENOMEM || rc == LAMA_EIO)
			return rc;
		lama_error_clear();
		/* a description that does not load is no key */
		rc = !rc && !strcmp(type_of(d), "SignKey")
			     ? kvec_add(k, &owner, json_object_get(d, "key"), 0)
			     : 0;
		json_decref(d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int claimed_cmp(const void *x, const void *y)
{
	return memcmp(((const struct claimed *)x)->owner.b, ((const struct claimed *)y)->owner.b,
		      LAMA_HASH_BYTES);
}

/* The batch's key holders, indexed by owner once per batch. */
static int index_batch_keys(struct apply *ap)
{
	int rc;

	for (uint32_t i = 0; i < ap->count; i++)
		if (ap->items[i].obj && (rc = holder_keys(ap, ap->items[i].obj, NULL, &ap->bkeys)))
			return rc;
	if (ap->bkeys.n)
		qsort(ap->bkeys.v, ap->bkeys.n, sizeof(*ap->bkeys.v), claimed_cmp);
	return 0;
}

struct issuer_ctx {
	struct apply *ap;
	const lama_hash *issuer;
	struct kvec *k;
	size_t rows; /* referrers read */
};

/* A Keys or Profile referring to the issuer in the archive (the batch's
 * were indexed already). */
static int holder_ref(void *ctx, const char *type, const lama_hash *src)
{
	struct issuer_ctx *c = ctx;
	json_t *o = NULL;
	int rc;

	(void)type;
	c->rows++;
	if (find_item(c->ap, src))
		return 0;
	if (c->ap->work >= APPLY_WORK_MAX) {
		rc = kvec_add(c->k, c->issuer, NULL, 1);
		return rc < 0 ? rc : 1; /* stop */
	}
	c->ap->work++;
	rc = lama_archive_get(c->ap->a, src, &o);
	if (rc == LAMA_ENOMEM || rc == LAMA_EIO)
		return rc;
	lama_error_clear();
	/* what does not load is no key holder */
	rc = rc ? 0 : holder_keys(c->ap, o, c->issuer, c->k);
	json_decref(o);
	return rc;
}

/* Every key claimed for the issuer, in the batch or the archive, into k
 * (with a `more` mark when there are more than were read). */
static int issuer_keys(struct apply *ap, const lama_hash *issuer, struct kvec *k)
{
	const char *types[2] = { "Keys", "Profile" };
	struct issuer_ctx c = { ap, issuer, k, 0 };
	size_t lo = 0, hi = ap->bkeys.n;
	int rc;

	while (lo < hi) { /* the first of the issuer's */
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(ap->bkeys.v[mid].owner.b, issuer->b, LAMA_HASH_BYTES) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ap->bkeys.n && lama_hash_eq(&ap->bkeys.v[lo].owner, issuer); lo++)
		if ((rc = kvec_push(k, &ap->bkeys.v[lo])))
			return rc;
	for (int t = 0; t < 2; t++) {
		size_t room = APPLY_WORK_MAX - (ap->work < APPLY_WORK_MAX ? ap->work : APPLY_WORK_MAX);
		int truncated = 0;

		/* the rows are read (and opened) before holder_ref sees them:
		 * the budget bounds how many are asked for, and pays for them */
		if (room < 2)
			return kvec_add(k, issuer, NULL, 1);
		room /= 2;
		c.rows = 0;
		rc = lama_archive_referrers_max(ap->a, issuer, types[t],
						room < APPLY_REFS_MAX ? room : APPLY_REFS_MAX, holder_ref,
						&c, &truncated);
		if (rc < 0)
			return rc;
		ap->work += c.rows + (size_t)truncated;
		if (truncated && (rc = kvec_add(k, issuer, NULL, 1)))
			return rc;
	}
	return 0;
}

/* A Signature's fields; its check waits for the keys. */
static int read_signature(struct item *it)
{
	lama_hash data;

	if (get_hash(it->obj, "issuer", &it->issuer) || get_hash(it->obj, "data", &data))
		return refuse(it, LAMA_EINVAL, "is a Signature without a valid issuer or data");
	if (lc_hex(json_object_get(it->obj, "signature"), it->sig, sizeof(it->sig)))
		return refuse(it, LAMA_EINVAL, "is a Signature whose signature is not 128 lower-case hex digits");
	lama_hash_hex(&data, it->msg);
	return 0;
}

static int sig_cmp(const void *x, const void *y)
{
	const struct item *a = *(struct item *const *)x, *b = *(struct item *const *)y;
	int c = memcmp(a->issuer.b, b->issuer.b, LAMA_HASH_BYTES);

	return c ? c : (a->index > b->index) - (a->index < b->index);
}

/* One Signature against its issuer's claimed keys k. */
static int check_signature(struct apply *ap, struct item *it, const struct kvec *k)
{
	int keys = 0, more = 0;

	for (size_t i = 0; i < k->n; i++) {
		if (k->v[i].more) {
			more = 1;
			continue;
		}
		keys = 1;
		if (ap->work >= APPLY_WORK_MAX) {
			more = 1;
			break;
		}
		ap->work++;
		if (lama_verify(it->sig, it->msg, LAMA_HASH_HEX, k->v[i].pk) == 0) {
			it->check = CHECK_SIG_OK;
			return 0;
		}
	}
	/* keys not read or not tried: undecided, never a refusal (a flood of
	 * keys must not block genuine signatures) */
	if (more) {
		it->check = CHECK_SIG_UNKNOWN;
		return 0;
	}
	if (!keys)
		return refuse(it, LAMA_EINVAL, "is a Signature by an issuer with no claimed key (send their Keys or Profile first)");
	return refuse(it, LAMA_ECRYPTO, "is a Signature that verifies with no claimed key of its issuer");
}

/* Every Signature of the batch, issuer by issuer: each must verify with a
 * key claimed for its issuer (whether that key is trusted is decided where
 * trust is used: lama_trust_verify, chain_verify). */
static int check_signatures(struct apply *ap)
{
	struct item **sigs = NULL;
	struct kvec k = { 0 };
	size_t ns = 0;
	int rc = 0;

	for (uint32_t i = 0; i < ap->count; i++)
		if (ap->items[i].obj && !strcmp(type_of(ap->items[i].obj), "Signature")) {
			if ((rc = read_signature(&ap->items[i])))
				return rc;
			ns++;
		}
	if (!ns)
		return 0;
	if (!(sigs = lama_calloc(ns, sizeof(*sigs))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	ns = 0;
	for (uint32_t i = 0; i < ap->count; i++)
		if (ap->items[i].obj && !strcmp(type_of(ap->items[i].obj), "Signature"))
			sigs[ns++] = &ap->items[i];
	qsort(sigs, ns, sizeof(*sigs), sig_cmp);
	if ((rc = index_batch_keys(ap)))
		goto out;
	for (size_t i = 0; i < ns && !rc; i++) {
		if (!i || !lama_hash_eq(&sigs[i - 1]->issuer, &sigs[i]->issuer)) {
			k.n = 0;
			if ((rc = issuer_keys(ap, &sigs[i]->issuer, &k)))
				break;
		}
		rc = check_signature(ap, sigs[i], &k);
	}
out:
	lama_free(k.v);
	lama_free(sigs);
	return rc;
}

/* -- reading and checking the batch -- */

/* The framing, sizes, kinds, hashes and duplicates: all that needs no
 * archive, checked before it is opened. */
static int read_items(struct lama_rd *r, struct apply *ap)
{
	size_t bytes = 0;
	uint32_t count;
	int rc;

	if ((rc = lama_rd_u32(r, &count, "the count")))
		return rc;
	if (count > APPLY_ITEMS_MAX)
		return lama_error(LAMA_ELIMIT, "apply: %u objects (at most %d)", count,
				  APPLY_ITEMS_MAX);
	if ((size_t)count * (1 + LAMA_HASH_BYTES + 4) > r->left)
		return lama_error(LAMA_EINVAL, "apply: %u objects do not fit in %zu bytes", count,
				  r->left);
	ap->items = lama_calloc(count ? count : 1, sizeof(*ap->items));
	ap->by_hash = lama_calloc(count ? count : 1, sizeof(*ap->by_hash));
	ap->ids = lama_calloc(count ? count : 1, sizeof(*ap->ids));
	if (!ap->items || !ap->by_hash || !ap->ids)
		return lama_error(LAMA_ENOMEM, "out of memory");
	ap->count = count;
	for (uint32_t i = 0; i < count; i++) {
		struct item *it = &ap->items[i];
		const uint8_t *k, *h;

		it->index = i;
		if ((rc = lama_rd_bytes(r, 1, &k, "a kind")) ||
		    (rc = lama_rd_bytes(r, LAMA_HASH_BYTES, &h, "a hash")) ||
		    (rc = lama_rd_u32(r, &it->n, "a length")) ||
		    (rc = lama_rd_bytes(r, it->n, &it->p, "an object")))
			return rc;
		it->kind = *k;
		memcpy(it->hash.b, h, LAMA_HASH_BYTES);
		ap->by_hash[i] = it;
		bytes += it->n;
		/* a single object may be larger: it is sent alone */
		if (bytes > APPLY_BYTES_MAX && count > 1)
			return lama_error(LAMA_ELIMIT, "apply: more than %zu bytes of objects in a batch of %u",
					  APPLY_BYTES_MAX, count);
	}
	if ((rc = lama_rd_end(r)))
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		struct item *it = &ap->items[i];
		lama_hash hh;

		if (it->kind < ITEM_OBJECT || it->kind > ITEM_CLOB)
			return refuse(it, LAMA_EINVAL, "has an unknown kind (1 object, 2 ID object, 3 CLOB)");
		if (it->n > LAMA_STORE_OBJECT_MAX)
			return refuse(it, LAMA_ELIMIT, "is larger than an object may be");
		lama_sha256(it->p, it->n, &hh);
		if (!lama_hash_eq(&hh, &it->hash))
			return refuse(it, LAMA_EINVAL, "is not the SHA-256 of its bytes");
	}
	qsort(ap->by_hash, ap->count, sizeof(*ap->by_hash), by_hash_cmp);
	for (uint32_t i = 1; i < ap->count; i++)
		if (lama_hash_eq(&ap->by_hash[i - 1]->hash, &ap->by_hash[i]->hash)) {
			const struct item *a = ap->by_hash[i - 1], *b = ap->by_hash[i];

			return refuse(a->index > b->index ? a : b, LAMA_EINVAL, "is in the batch twice");
		}
	return 0;
}

static int node_kind(const char *type)
{
	if (!strcmp(type, "VersionNodeEdge"))
		return NODE_EDGE;
	if (!strcmp(type, "VersionNodeChange"))
		return NODE_CHANGE;
	if (!strcmp(type, "VersionNodeMerge"))
		return NODE_MERGE;
	return NODE_NONE;
}

/* What needs the recipes and reads the archive but writes nothing:
 * parsing, kinds, signatures. */
static int check_items(struct apply *ap)
{
	int rc;

	for (uint32_t i = 0; i < ap->count; i++) {
		struct item *it = &ap->items[i];
		int is_id = 0;

		if (it->kind == ITEM_CLOB) {
			/* an object's bytes sent as a CLOB would take its hash for
			 * good (the first kind stored stays): an object is sent as
			 * one */
			json_t *o = NULL;

			if (it->n < 4 || memcmp(it->p, "<div", 4))
				continue;
			rc = lama_object_parse(ap->rec, (const char *)it->p, it->n, &o, &is_id);
			json_decref(o);
			if (rc == LAMA_ENOMEM)
				return rc;
			lama_error_clear();
			if (!rc)
				return refuse(it, LAMA_EINVAL, is_id ? "is an ID object sent as a CLOB"
								    : "is an object sent as a CLOB");
			continue;
		}
		rc = lama_object_parse(ap->rec, (const char *)it->p, it->n, &it->obj, &is_id);
		if (rc == LAMA_ENOMEM)
			return rc;
		if (rc) {
			char why[200];

			snprintf(why, sizeof(why), "does not parse: %s", lama_errmsg());
			return refuse(it, LAMA_EINVAL, why);
		}
		if (is_id != (it->kind == ITEM_ID))
			return refuse(it, LAMA_EINVAL, is_id ? "is an ID object sent as an object"
							    : "is an object sent as an ID object");
		if (is_id) {
			json_decref(it->obj); /* nothing more to know from it */
			it->obj = NULL;
			continue;
		}
		it->versioned = lama_recipes_is_versioned(ap->rec, type_of(it->obj)) == 1;
		it->node = node_kind(type_of(it->obj));
		if (it->node) {
			it->depth = json_number_value(json_object_get(it->obj, "depth"));
			if (!isfinite(it->depth) || it->depth < 0 || it->depth > 1e15 ||
			    it->depth != floor(it->depth))
				return refuse(it, LAMA_EINVAL, "is a version node of impossible depth");
		}
	}
	/* versions an edge or change names are stored by recording it, as
	 * the archive stores them (reverse maps as the models set them) */
	for (uint32_t i = 0; i < ap->count; i++) {
		struct item *it = &ap->items[i], *d;
		lama_hash dh;

		if ((it->node == NODE_EDGE || it->node == NODE_CHANGE) &&
		    !get_hash(it->obj, "data", &dh) && (d = find_item(ap, &dh)) && d->versioned)
			d->named = 1;
	}
	return check_signatures(ap);
}

/* -- storing -- */

/* Refuses an item whose hash the archive holds as another kind (a CLOB
 * squatting an object's hash, or the reverse). *was: stored before. */
static int stored_kind(struct apply *ap, const struct item *it, const lama_hash *h,
		       enum lama_store_kind kind, int *was)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	enum lama_store_kind k = 0;
	int rc = lama_store_get(lama_session_store(ap->s), h, &k, &b);

	lama_buf_release(&b);
	if (was)
		*was = rc == 0;
	if (rc == LAMA_ENOTFOUND) {
		lama_error_clear();
		return 0;
	}
	if (rc)
		return rc;
	if (k != kind) {
		char why[120];
		static const char *names[] = { "", "an object", "an ID object", "a CLOB" };

		snprintf(why, sizeof(why), "%s is stored as %s, not as %s",
			 h == &it->hash ? "is a hash that" : "has an ID that", names[k], names[kind]);
		return refuse(it, LAMA_EINVAL, why);
	}
	return 0;
}

struct refctx {
	lama_store *st;
	const char *type;
	const lama_hash *src;
};

static int add_ref(void *ctx, const char *itemprop, enum lama_ref_kind kind, const lama_hash *target)
{
	struct refctx *c = ctx;

	(void)itemprop;
	(void)kind;
	return lama_store_ref_add(c->st, target, c->type, c->src);
}

/* A versioned object that no edge or change of the batch names (the data
 * of a merge, or no version at all): the object, its ID object and its
 * reverse maps, as the archive stores them. */
static int store_versioned(struct apply *ap, struct item *it)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	lama_store *st = lama_session_store(ap->s);
	struct refctx c = { st, type_of(it->obj), &it->hash };
	lama_hash idh;
	int rc, is_new = 0;

	rc = lama_store_put_hashed(st, LAMA_KIND_OBJECT, it->p, it->n, &it->hash, &is_new);
	if (!rc)
		rc = lama_object_id_microdata(ap->rec, it->obj, &md);
	if (!rc) {
		lama_sha256(md.data, md.len, &idh);
		rc = stored_kind(ap, it, &idh, LAMA_KIND_ID, NULL);
	}
	if (!rc)
		rc = lama_store_put_hashed(st, LAMA_KIND_ID, md.data, md.len, &idh, NULL);
	if (!rc && is_new && !lama_archive_is_unindexed(lama_session_archive(ap->s), c.type))
		rc = lama_object_foreach_ref(ap->rec, it->obj, add_ref, &c);
	lama_buf_release(&md);
	return rc;
}

static int store_item(struct apply *ap, struct item *it)
{
	struct lama_put_info info;
	lama_hash h;
	int rc;

	switch (it->kind) {
	case ITEM_CLOB:
		rc = lama_archive_put_clob(ap->a, (const char *)it->p, it->n, &h);
		if (rc == LAMA_EINVAL)
			return refuse(it, rc, "is a CLOB that is not UTF-8 text");
		return rc;
	case ITEM_ID:
		return lama_store_put_hashed(lama_session_store(ap->s), LAMA_KIND_ID, it->p, it->n,
					     &it->hash, NULL);
	default:
		if (it->versioned)
			return it->named ? 0 : store_versioned(ap, it);
		/* strict parsing gave the object these bytes serialize to */
		rc = lama_archive_put(ap->a, it->obj, 0, &info);
		if (!rc && !lama_hash_eq(&info.hash, &it->hash))
			rc = refuse(it, LAMA_EIO, "was stored under another hash");
		return rc;
	}
}

static int note_id(struct apply *ap, const lama_hash *id)
{
	for (size_t i = 0; i < ap->nids; i++)
		if (lama_hash_eq(&ap->ids[i], id))
			return 0;
	ap->ids[ap->nids++] = *id; /* at most one per item */
	return 0;
}

static int id_of(struct apply *ap, const json_t *obj, lama_hash *id)
{
	return lama_object_hash(ap->rec, obj, NULL, id);
}

/* 1 if version node n names the hash id itself (as its data, prev or one
 * of its nodes). Storing an object adds a reverse-map row for each
 * reference it holds, so such a node, sent by a peer, sits in the index
 * of the ID exactly like a recorded version; a recorded node never names
 * its ID (it names objects and nodes). */
static int names_id(const json_t *n, const lama_hash *id)
{
	const json_t *set = json_object_get(json_object_get(n, "nodes"), "$set"), *v;
	lama_hash h;
	size_t i;

	if ((!get_hash(n, "data", &h) && lama_hash_eq(&h, id)) ||
	    (!get_hash(n, "prev", &h) && lama_hash_eq(&h, id)))
		return 1;
	json_array_foreach(set, i, v)
		if (!str_hash(v, &h) && lama_hash_eq(&h, id))
			return 1;
	return 0;
}

/* 1 if node (object n) is a recorded version of ID id, 0 if not: a
 * referrer of the ID as its node type that does not name the ID itself
 * (names_id). One point lookup, whatever the length of the history. */
static int recorded(struct apply *ap, const json_t *n, const lama_hash *node, const lama_hash *id)
{
	if (!node_kind(type_of(n)) || names_id(n, id))
		return 0;
	return lama_store_ref_has(lama_session_store(ap->s), id, type_of(n), node);
}

/* The ID hash of a versioned object; refuses it when the archive holds
 * that hash as another kind (a CLOB or an object stored under it first
 * would stay, and the ID object with it would not read back). */
static int checked_id(struct apply *ap, const struct item *it, const json_t *data, lama_hash *id)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_OBJECT_MAX_BYTES);
	int rc = lama_object_id_microdata(ap->rec, data, &md);

	if (rc && rc != LAMA_ENOMEM) {
		char why[200];

		snprintf(why, sizeof(why), "is a version of an object without an ID: %s",
			 lama_errmsg());
		rc = refuse(it, LAMA_EINVAL, why);
	}
	if (!rc) {
		lama_sha256(md.data, md.len, id);
		rc = stored_kind(ap, it, id, LAMA_KIND_ID, NULL);
	}
	lama_buf_release(&md);
	return rc;
}

/* A node that is not recorded here is stored as an object only; the data
 * it names, if it came in the batch, as a versioned object of no version. */
static int not_version(struct apply *ap, struct item *it, const lama_hash *dh)
{
	struct item *d = find_item(ap, dh);

	it->check = CHECK_NOT_VERSION;
	if (d && d->named) {
		d->named = 0;
		return store_versioned(ap, d);
	}
	return 0;
}

/* An edge or change: the archive records the version after its
 * predecessor and must make the very node that arrived. A change after a
 * node that is not a recorded version of the ID (a merge other than the
 * one made here, check 4) is not recorded either: check 4. */
static int apply_change(struct apply *ap, struct item *it)
{
	struct lama_put_info info;
	json_t *data = NULL;
	lama_hash dh, prev, id;
	int has_prev = it->node == NODE_CHANGE && json_object_get(it->obj, "prev");
	int rc;

	if (get_hash(it->obj, "data", &dh) || (has_prev && get_hash(it->obj, "prev", &prev)))
		return refuse(it, LAMA_EINVAL, "is a version node without valid references");
	rc = load_obj(ap, &dh, &data);
	if (rc == LAMA_ENOTFOUND)
		return refuse(it, LAMA_EINVAL, "is a version of an object neither sent nor stored");
	if (!rc)
		rc = checked_id(ap, it, data, &id);
	if (!rc && has_prev) {
		json_t *pn = NULL;

		rc = load_obj(ap, &prev, &pn);
		if (rc && rc != LAMA_ENOMEM && rc != LAMA_EIO) {
			lama_error_clear();
			rc = 0; /* no predecessor: refused below, as the archive finds none */
		} else if (!rc && (rc = recorded(ap, pn, &prev, &id)) == 0) {
			json_decref(pn);
			json_decref(data);
			if ((rc = not_version(ap, it, &dh)))
				return rc;
			return note_id(ap, &id);
		}
		json_decref(pn);
		if (rc > 0)
			rc = 0;
	}
	if (rc < 0) {
		json_decref(data);
		return rc;
	}
	rc = lama_archive_put_version(ap->a, data, has_prev ? &prev : NULL,
				      json_number_value(json_object_get(it->obj, "creationTime")), &info);
	json_decref(data);
	if (rc == LAMA_ENOMEM || rc == LAMA_EIO || rc == LAMA_EBUSY)
		return rc;
	if (rc) {
		char why[200];

		snprintf(why, sizeof(why), "is a version that cannot be recorded: %s", lama_errmsg());
		return refuse(it, LAMA_EINVAL, why);
	}
	if (!lama_hash_eq(&info.node, &it->hash))
		return refuse(it, LAMA_EINVAL, "is a version node other than the one its fields make (depth or time)");
	return note_id(ap, &info.id_hash);
}

/* Node `node` is a version node whose data has ID id; *rec: it is a
 * recorded version here (recorded()). A recorded node is one of the ID by
 * the archive's own index: its data is loaded only when it is not. */
static int node_of_id(struct apply *ap, const lama_hash *node, const lama_hash *id, double *depth,
		      int *rec)
{
	json_t *n = NULL, *data = NULL;
	lama_hash dh, pid;
	int rc = load_obj(ap, node, &n);

	if (!rc && (!node_kind(type_of(n)) || get_hash(n, "data", &dh)))
		rc = lama_error(LAMA_EINVAL, "not a version node");
	if (!rc)
		*depth = json_number_value(json_object_get(n, "depth"));
	if (!rc && (*rec = recorded(ap, n, node, id)) < 0)
		rc = *rec;
	if (!rc && !*rec)
		rc = load_obj(ap, &dh, &data);
	if (!rc && !*rec)
		rc = id_of(ap, data, &pid);
	if (!rc && !*rec && !lama_hash_eq(&pid, id))
		rc = lama_error(LAMA_EINVAL, "a version of another ID");
	json_decref(n);
	json_decref(data);
	return rc;
}

static int has_hash(const lama_hash *v, size_t n, const lama_hash *h)
{
	for (size_t i = 0; i < n; i++)
		if (lama_hash_eq(&v[i], h))
			return 1;
	return 0;
}

static int spend(struct apply *ap, size_t units)
{
	if (ap->work + units > APPLY_WORK_MAX)
		return 0;
	ap->work += units;
	return 1;
}

/* A merge made elsewhere: its nodes must be versions of its data's ID, one
 * level below it. Merges are deterministic, so the merge of those nodes is
 * made here (lama_archive_merge over them alone) when every one of them is
 * a current head: it replaces them among the heads, and the node that
 * arrived is a version only if it is that very node (check 3). A merge
 * recorded here already is check 3 at once. Otherwise it stays an object
 * and nothing more (check 4), the heads untouched: a merge naming a node
 * not recorded here, or one behind the heads (merging a node with what
 * followed it would bring back what was removed since), or more than
 * MERGE_NODES_MAX nodes, or past the batch's budget or MERGES_MAX. */
static int apply_merge(struct apply *ap, struct item *it)
{
	lama_store *st = lama_session_store(ap->s);
	const json_t *set = json_object_get(json_object_get(it->obj, "nodes"), "$set"), *v;
	lama_hash dh, id, made, *heads = NULL, *next = NULL, *named = NULL;
	json_t *data = NULL;
	double max = -1, d = 0;
	size_t i, nh = 0, m = 0, nn = 0, ns = json_array_size(set);
	int rc, known, rec = 0, other = 0;

	if (get_hash(it->obj, "data", &dh) || ns < 2)
		return refuse(it, LAMA_EINVAL, "is a merge without valid references");
	if (!spend(ap, MERGE_COST))
		return not_version(ap, it, &dh);
	rc = load_obj(ap, &dh, &data);
	if (rc == LAMA_ENOTFOUND)
		return refuse(it, LAMA_EINVAL, "is a merge of an object neither sent nor stored");
	if (!rc)
		rc = checked_id(ap, it, data, &id);
	json_decref(data);
	if (rc)
		return rc;
	if ((rc = note_id(ap, &id)))
		return rc;
	known = recorded(ap, it->obj, &it->hash, &id);
	if (known) {
		if (known > 0)
			it->check = CHECK_MERGE_OK;
		return known < 0 ? known : 0;
	}
	if (ns > MERGE_NODES_MAX || !spend(ap, NAMED_COST * ns))
		return not_version(ap, it, &dh);
	if (!(named = lama_calloc(ns, sizeof(*named))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	json_array_foreach(set, i, v) {
		lama_hash ph;

		if (str_hash(v, &ph)) {
			rc = refuse(it, LAMA_EINVAL, "is a merge naming a node that is no hash");
			goto out;
		}
		rc = node_of_id(ap, &ph, &id, &d, &rec);
		if (rc == LAMA_ENOMEM || rc == LAMA_EIO)
			goto out;
		if (rc) {
			rc = refuse(it, LAMA_EINVAL, "is a merge of nodes that are not versions of its ID");
			goto out;
		}
		if (d > max)
			max = d;
		if (!rec)
			other = 1;
		if (!has_hash(named, nn, &ph)) /* nn <= MERGE_NODES_MAX */
			named[nn++] = ph;
	}
	if (it->depth != max + 1 || nn < 2) {
		rc = refuse(it, LAMA_EINVAL, nn < 2 ? "is a merge without valid references"
						   : "is a merge of impossible depth");
		goto out;
	}
	if ((rc = lama_store_heads_get(st, &id, &heads, &nh)))
		goto out;
	for (size_t k = 0; k < nn && !other; k++)
		other = !has_hash(heads, nh, &named[k]);
	if (other || ap->merges >= MERGES_MAX || !spend(ap, MADE_COST + 2 * nn)) {
		rc = not_version(ap, it, &dh);
		goto out;
	}
	/* the merge of exactly the named nodes, made here by the rules */
	ap->merges++;
	if ((rc = lama_store_heads_set(st, &id, named, nn)) ||
	    (rc = lama_archive_merge(ap->a, &id, &made)))
		goto out;
	it->check = lama_hash_eq(&made, &it->hash) ? CHECK_MERGE_OK : CHECK_NOT_VERSION;
	if (!(next = lama_calloc(nh + 1, sizeof(*next)))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < nh; k++)
		if (!has_hash(named, nn, &heads[k]) && !lama_hash_eq(&heads[k], &made))
			next[m++] = heads[k];
	next[m++] = made;
	rc = lama_store_heads_set(st, &id, next, m);
out:
	lama_free(named);
	lama_free(heads);
	lama_free(next);
	return rc;
}

static int node_cmp(const void *x, const void *y)
{
	const struct item *a = *(struct item *const *)x, *b = *(struct item *const *)y;

	if (a->depth != b->depth)
		return a->depth < b->depth ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* u32 n, n x (id[32], u32 nheads, nheads x node[32]) */
static int add_heads(struct lama_buf *out, lama_archive *a, const lama_hash *ids, size_t n)
{
	uint8_t b4[4];
	int rc;

	lama_put_u32(b4, (uint32_t)n);
	if ((rc = lama_buf_add(out, b4, 4)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		lama_hash *heads = NULL;
		size_t nh = 0;

		if ((rc = lama_archive_heads(a, &ids[i], &heads, &nh)))
			return rc;
		lama_put_u32(b4, (uint32_t)nh);
		rc = lama_buf_add(out, ids[i].b, LAMA_HASH_BYTES);
		if (!rc)
			rc = lama_buf_add(out, b4, 4);
		for (size_t k = 0; !rc && k < nh; k++)
			rc = lama_buf_add(out, heads[k].b, LAMA_HASH_BYTES);
		lama_free(heads);
		if (rc)
			return rc;
	}
	return 0;
}

/* Inside the transaction: what was stored before (as which kind), every
 * item, the version nodes by depth, then the merges. */
static int apply_all(struct apply *ap, struct item **nodes)
{
	size_t nn = 0;
	int rc;

	for (uint32_t i = 0; i < ap->count; i++) {
		struct item *it = &ap->items[i];

		if ((rc = stored_kind(ap, it, &it->hash, (enum lama_store_kind)it->kind, &it->was)))
			return rc;
	}
	for (uint32_t i = 0; i < ap->count; i++) {
		if ((rc = store_item(ap, &ap->items[i])))
			return rc;
		if (ap->items[i].node)
			nodes[nn++] = &ap->items[i];
	}
	qsort(nodes, nn, sizeof(*nodes), node_cmp);
	for (size_t i = 0; i < nn; i++)
		if ((rc = nodes[i]->node == NODE_MERGE ? apply_merge(ap, nodes[i])
						       : apply_change(ap, nodes[i])))
			return rc;
	/* concurrent versions merge by the models' rules, as in the main process */
	for (size_t i = 0; i < ap->nids; i++)
		if ((rc = lama_archive_merge(ap->a, &ap->ids[i], NULL)))
			return rc;
	return 0;
}

/* handle, u32 count, count x (u8 kind, hash[32], bytes32) ->
 * count x u8 (1 new, 0 known), count x u8 CHECK_*, then the heads of the
 * IDs that got versions */
static int op_apply(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_warchive_ref h;
	struct apply ap = { 0 };
	struct item **nodes = NULL;
	lama_store *st;
	int rc;

	/* the whole input is checked before the archive is opened */
	if ((rc = lama_warchive_read(r, &h)) || (rc = read_items(r, &ap)) ||
	    (rc = lama_warchive_open(&h, &ap.s)))
		goto out;
	ap.a = lama_session_archive(ap.s);
	ap.rec = lama_session_recipes(ap.s);
	st = lama_session_store(ap.s);
	if ((rc = check_items(&ap)))
		goto out;
	if (!(nodes = lama_calloc(ap.count ? ap.count : 1, sizeof(*nodes)))) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	/* one transaction: all or nothing, and nobody writes in between */
	if ((rc = lama_store_begin(st)))
		goto out;
	rc = apply_all(&ap, nodes);
	if (!rc)
		rc = lama_buf_grow(out, 2 * (size_t)ap.count);
	if (!rc) {
		for (uint32_t i = 0; i < ap.count; i++) {
			out->data[out->len + i] = !ap.items[i].was;
			out->data[out->len + ap.count + i] = ap.items[i].check;
		}
		out->len += 2 * (size_t)ap.count;
		rc = add_heads(out, ap.a, ap.ids, ap.nids);
	}
	if (rc) {
		lama_store_rollback(st);
		lama_buf_truncate(out, 0);
	} else if ((rc = lama_store_commit(st))) {
		lama_buf_truncate(out, 0);
	}
out:
	for (uint32_t i = 0; ap.items && i < ap.count; i++)
		json_decref(ap.items[i].obj);
	lama_free(ap.items);
	lama_free(ap.by_hash);
	lama_free(ap.ids);
	lama_free(ap.bkeys.v);
	lama_free(nodes);
	return rc;
}

/* handle, u32 count, count x id[32] -> the IDs' heads after merging, as
 * apply gives them */
static int op_merge(struct lama_rd *r, struct lama_buf *out)
{
	struct lama_warchive_ref h;
	const uint8_t *p;
	lama_session *s;
	lama_hash *ids = NULL;
	uint32_t count;
	int rc;

	if ((rc = lama_warchive_read(r, &h)) || (rc = lama_rd_u32(r, &count, "the count")))
		return rc;
	if (count > LAMA_WORKER_BATCH_MAX)
		return lama_error(LAMA_ELIMIT, "merge: %u IDs (at most %d)", count,
				  LAMA_WORKER_BATCH_MAX);
	if ((size_t)count * LAMA_HASH_BYTES != r->left)
		return lama_error(LAMA_EINVAL, "merge: %u IDs are not %zu bytes", count, r->left);
	if ((rc = lama_rd_bytes(r, (size_t)count * LAMA_HASH_BYTES, &p, "the IDs")) ||
	    (rc = lama_warchive_open(&h, &s)))
		return rc;
	if (!(ids = lama_calloc(count ? count : 1, sizeof(*ids))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	memcpy(ids, p, (size_t)count * LAMA_HASH_BYTES);
	/* all IDs or none: a failed merge leaves every one as it was */
	if ((rc = lama_store_begin(lama_session_store(s)))) {
		lama_free(ids);
		return rc;
	}
	for (uint32_t i = 0; !rc && i < count; i++) {
		lama_hash *heads = NULL;
		size_t nh = 0;

		/* no heads (no versions) or one: nothing to merge */
		rc = lama_store_heads_get(lama_session_store(s), &ids[i], &heads, &nh);
		lama_free(heads);
		if (!rc && nh > 1)
			rc = lama_archive_merge(lama_session_archive(s), &ids[i], NULL);
	}
	if (!rc)
		rc = add_heads(out, lama_session_archive(s), ids, count);
	if (rc) {
		lama_store_rollback(lama_session_store(s));
		lama_buf_truncate(out, 0);
	} else if ((rc = lama_store_commit(lama_session_store(s)))) {
		lama_buf_truncate(out, 0);
	}
	lama_free(ids);
	return rc;
}

int lama_worker_ops_sync(const char *op, const void *in, size_t n, struct lama_buf *out)
{
	struct lama_rd r = { in, n, op };

	if (!strcmp(op, "diff"))
		return op_diff(&r, out);
	if (!strcmp(op, "hash_batch"))
		return op_hash_batch(&r, out);
	if (!strcmp(op, "apply"))
		return op_apply(&r, out);
	if (!strcmp(op, "merge"))
		return op_merge(&r, out);
	return lama_error(LAMA_ENOTFOUND, "the sync worker has no op %s", op);
}
