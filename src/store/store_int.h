/* store_int.h: what the store's own files share; not for other modules. */
#ifndef LAMA_STORE_INT_H
#define LAMA_STORE_INT_H

#include <sodium.h>
#include <sqlite3.h>

#include "store/store.h"

enum stmt_id {
	S_OBJ_GET, S_OBJ_PUT, S_BLOB_GET, S_BLOB_PUT, S_CHUNK_PUT, S_CHUNK_GET,
	S_CHUNK_DEL, S_REF_PUT, S_REF_ALL, S_REF_TYPE, S_HEAD_GET, S_HEAD_PUT,
	S_KV_GET, S_KV_PUT, S_KV_DEL, S_REF_HAS, S_DATA_VERSION, S_COUNT
};

struct keys {
	uint8_t enc[32];
	uint8_t index[32];
};

struct lama_store {
	sqlite3 *db;
	struct keys *keys; /* secure memory */
	sqlite3_stmt *stmt[S_COUNT];
	int tx_depth;
	int tx_failed; /* an inner failure: the outermost commit rolls back */
	uint64_t ref_seq; /* next reverse-map sequence number (see index.c) */
};

struct lama_blob_writer {
	lama_store *st;
	lama_sha256_ctx *sha;
	uint8_t bid[16];
	uint64_t size, idx;
	uint8_t *chunk; /* pending plaintext, LAMA_BLOB_CHUNK bytes */
	size_t fill;
	uint8_t *sealed; /* LAMA_BLOB_CHUNK + LAMA_AEAD_OVERHEAD */
	int savepoint; /* began inside a caller's transaction: abort undoes only this BLOB */
	int err;       /* a write failed: the BLOB can only be aborted */
	int mode;      /* 0 nothing yet, 1 plaintext (lama_blob_write), 2 sealed chunks */
	int ended;     /* sealed: the last chunk was handed in */
};

struct lama_blob_reader {
	lama_store *st;
	lama_hash hash;
	lama_sha256_ctx *sha;
	uint8_t bid[16];
	uint64_t size, nchunks, idx, delivered;
	uint8_t *chunk;
	size_t fill, pos;
	int err; /* a read failed: every later read fails the same way */
};

struct blob_meta {
	lama_hash hash;
	uint64_t size, nchunks;
	uint8_t bid[16];
};

/* Records a SQLite failure as a lama error; returns the code. */
int store__dberr(lama_store *st, const char *what);
/* A cached statement, reset and unbound. */
sqlite3_stmt *store__stmt(lama_store *st, enum stmt_id id);
/* Index name: a keyed PRF of domain || data under the index key. */
void store__name(const lama_store *st, char domain, const void *data, size_t n, uint8_t out[32]);
/* Seals pt (padded to PAD_BLOCK if pad) with ad = domain || name; *out is
 * allocated (lama_free), *outlen its size. */
int store__seal(const lama_store *st, const char *domain, const uint8_t *name, size_t namelen,
		const void *pt, size_t n, int pad, uint8_t **out, size_t *outlen);
/* Opens a sealed value, appending the plaintext to out; LAMA_ECORRUPT with
 * `what` in the message if it does not authenticate. */
int store__unseal(const lama_store *st, const char *domain, const uint8_t *name, size_t namelen,
		  const void *ct, size_t n, int pad, struct lama_buf *out, const char *what);
/* 1 if a row with this key exists for the statement, 0 if not, <0 error. */
int store__exists(lama_store *st, enum stmt_id id, const uint8_t key[32]);
/* Opens an obj row and checks it against expect (NULL: against its key);
 * appends the content to out; *found gets the content hash. */
int store__obj_open(lama_store *st, const uint8_t key[32], const void *ct, size_t ctlen,
		    const lama_hash *expect, enum lama_store_kind *kind, struct lama_buf *out,
		    lama_hash *found);
/* Reads and checks a BLOB's record. */
int store__blob_meta(lama_store *st, const lama_hash *hash, struct blob_meta *m);
/* Opens one ref row and checks that it is the row its keys say it is;
 * type gets the referrer's type, src its hash. */
int store__ref_open(lama_store *st, const uint8_t dst[32], const void *tag, const void *src,
		    const void *ct, size_t ctlen, char type[128], lama_hash *h);

#endif
