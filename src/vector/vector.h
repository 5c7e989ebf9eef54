/* vector.h: the vector index: message embeddings, encrypted at rest, with
 * exact top-k search by cosine similarity (design: docs/vector.md).
 *
 * One SQLite file (a cache, like search.db: rebuilt by embedding the
 * messages again) whose rows are a keyed tag of an item's id and the item
 * sealed (XChaCha20-Poly1305, bound to its tag): no id, topic, model name
 * or component is in the file in clear. Opening reads and opens every row
 * into memory, one contiguous array of normalized float32 vectors per
 * embedding model, so a query is a brute-force scan of exact dot products
 * with a bounded heap: no approximation, ~10 ms over 100,000 vectors of
 * 384 dimensions on one core (docs/benchmarks.md, "Vectors").
 *
 * An item is one message: its id (the message hash), its topic id, the
 * model that embedded it and the vector. One vector per id: putting an id
 * again replaces what was there (also under another model). Queries name a
 * model and see only that model's vectors.
 *
 * Plain calls, no threads, no sockets: it runs in the index worker
 * (src/worker/ops_vector.c) given the path and the key. One lama_vector is
 * used by one thread at a time. Returns 0 or a negative LAMA_E* code
 * (util/err.h); messages name no id, topic or component. */
#ifndef LAMA_VECTOR_H
#define LAMA_VECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "account/account.h"
#include "crypto/crypto.h"
#include "util/hash.h"

#define LAMA_VECTOR_DIM_MAX 4096       /* components of a vector */
#define LAMA_VECTOR_K_MAX 1000         /* results of a query */
#define LAMA_VECTOR_MODEL_MAX 64       /* bytes of a model name */
#define LAMA_VECTOR_MODELS_MAX 16      /* distinct models in one index */
#define LAMA_VECTOR_TOPIC_MAX 200      /* bytes of a topic id */
#define LAMA_VECTOR_COUNT_MAX 1000000  /* items in one index */
/* components held in all (8 GiB of float32 would be a bug, not an archive) */
#define LAMA_VECTOR_FLOATS_MAX ((uint64_t)512 << 20)
#define LAMA_VECTOR_BATCH_MAX 65536    /* items in one put_batch */

typedef struct lama_vector lama_vector;

/* Opens (creating if missing, mode 0600, WAL) the index at path with the
 * 32-byte key (copied into secure memory; subkeys for tags and seals are
 * derived from it), and loads every item into memory. *out is the
 * caller's (lama_vector_close). LAMA_ECRYPTO when the file was made under
 * another key ("made with another key") or a row fails to open (tampered,
 * or moved to another row); LAMA_ECORRUPT for a row that opens but is
 * malformed or in the wrong row, or a file that is not a vector index of
 * this version; LAMA_EIO when SQLite fails. The remedy for all three is
 * deleting the file and embedding again. */
int lama_vector_open_at(const char *path, const uint8_t key[LAMA_KEY_BYTES], lama_vector **out);
/* The key of a session's vector index: subkey 1 of context "lamavect" of
 * the user's master key (what the index worker is handed). Wipe it after. */
int lama_vector_key(lama_session *s, uint8_t key[LAMA_KEY_BYTES]);
/* Opens lama_session_dir(s)/vectors.db with lama_vector_key. */
int lama_vector_open(lama_session *s, lama_vector **out);
/* Closes the file, wipes the keys and the vectors in memory. NULL is fine. */
void lama_vector_close(lama_vector *v);

/* One item to put. Strings are NUL-terminated. */
struct lama_vector_item {
	lama_hash id;          /* the message id */
	const char *topic;     /* its topic id: 1..LAMA_VECTOR_TOPIC_MAX bytes */
	const char *model;     /* 1..LAMA_VECTOR_MODEL_MAX bytes, printable ASCII, no space */
	const float *vec;      /* dim components, finite, not all zero */
	uint32_t dim;          /* 1..LAMA_VECTOR_DIM_MAX; the same for every item of a model */
};

/* Puts an item, replacing the one with the same id. Durable when 0. */
int lama_vector_put(lama_vector *v, const struct lama_vector_item *it);
/* Puts n items (at most LAMA_VECTOR_BATCH_MAX) in one transaction: all or
 * none, in the file and in memory. A later item with the same id as an
 * earlier one replaces it. LAMA_EINVAL naming the item (by index) and the
 * rule it breaks; LAMA_ELIMIT past LAMA_VECTOR_COUNT_MAX items,
 * LAMA_VECTOR_FLOATS_MAX components or LAMA_VECTOR_MODELS_MAX models. */
int lama_vector_put_batch(lama_vector *v, const struct lama_vector_item *it, size_t n);
/* Forgets n ids (a deleted message; all in one transaction); *removed
 * (may be NULL) gets how many were there. */
int lama_vector_remove(lama_vector *v, const lama_hash *ids, size_t n, size_t *removed);
/* Several processes may hold the same file open (a pool of index
 * workers): each keeps its own copy in memory. Put, remove and query
 * first check SQLite's data_version and, when another connection has
 * committed since, read the rows and removals it wrote since (the whole
 * file, ~0.5 s for 100,000 x 384, when the removals needed were pruned or
 * the rows read one by one would pass a limit; docs/vector.md, "Several
 * workers"). Count and dim answer from memory:
 * call this first for an up-to-date answer. Errors as lama_vector_open_at;
 * on failure memory may hold part of what was read (count and dim show
 * it; put, remove and query refresh first and fail likewise) and the next
 * call reads again from where the last whole read ended. */
int lama_vector_refresh(lama_vector *v);
/* Items of `model`, or of all models when model is NULL. */
uint64_t lama_vector_count(lama_vector *v, const char *model);
/* The dimension of `model`'s vectors, 0 when it has none. */
uint32_t lama_vector_dim(lama_vector *v, const char *model);

/* One result. */
struct lama_vector_hit {
	lama_hash id;
	float score; /* cosine similarity, -1..1 (float32 rounding aside) */
};

/* The k (1..LAMA_VECTOR_K_MAX) items of `model` most similar to q[0..dim)
 * by cosine similarity, best first, ties by id (ascending bytes), into
 * hits (room for k); *n gets how many (fewer when fewer match). `topic`:
 * only that topic's items; NULL: all. Exact: every vector is scored.
 * An unknown model or topic finds nothing. LAMA_EINVAL for a k, dim or
 * model out of range, a dim other than the model's, a component that is
 * NaN or infinite, or a zero vector. */
int lama_vector_query(lama_vector *v, const char *model, const float *q, uint32_t dim, size_t k,
		      const char *topic, struct lama_vector_hit *hits, size_t *n);

#endif
