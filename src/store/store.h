/* store.h: the encrypted, content-addressed archive on SQLite.
 *
 * One SQLite database (WAL) per user archive. Everything in it is sealed
 * with XChaCha20-Poly1305 under the storage key; rows are found by a keyed
 * PRF (SipHash) of the content hash under the index key, so someone
 * holding the disk can neither read content nor confirm that a known
 * object or file is stored. Every read decrypts, then re-hashes: a mismatch is LAMA_ECORRUPT,
 * never garbage. This layer knows bytes and hashes; ONE semantics (recipes,
 * versions, reverse maps) live in archive/archive.h on top of it.
 * Design: docs/storage.md. */
#ifndef LAMA_STORE_H
#define LAMA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/hash.h"

typedef struct lama_store lama_store;

/* The database format this lama writes and reads; an archive of another
 * format is refused with a clear error. 2: reverse maps keyed by sequence;
 * 3: SipHash index names. */
#define LAMA_STORE_FORMAT 3

/* What a stored row holds. */
enum lama_store_kind {
	LAMA_KIND_OBJECT = 1, /* microdata of an object */
	LAMA_KIND_ID = 2,     /* microdata of an ID object */
	LAMA_KIND_CLOB = 3,   /* UTF-8 text */
};

#define LAMA_STORE_CREATE 1 /* create the database if it does not exist */

/* Opens the archive at `path` with the storage key and index key (32 bytes
 * each, derived from the user's master key; copied into secure memory).
 * LAMA_EAUTH if the keys do not open this archive, LAMA_ENOTFOUND if it does
 * not exist and LAMA_STORE_CREATE is not given. Caller frees with
 * lama_store_close. Opening costs the same for an empty or a huge archive. */
int lama_store_open(lama_store **out, const char *path, const uint8_t enc_key[32],
		    const uint8_t index_key[32], int flags);
/* Closes, wipes the keys; any open transaction is rolled back. */
void lama_store_close(lama_store *st);

/* Groups writes into one atomic, durable commit. Nested begin/commit pairs
 * are counted; only the outermost commits. Without them every write is its
 * own transaction. Once commit returns 0 the data survives a crash. */
int lama_store_begin(lama_store *st);
int lama_store_commit(lama_store *st);
void lama_store_rollback(lama_store *st);

/* Largest object, ID object or CLOB: a little under LAMA_BUF_MAX, so that
 * with its padding it always reads back into a LAMA_BUF_MAX buffer. */
#define LAMA_STORE_OBJECT_MAX (LAMA_BUF_MAX - 128)

/* Stores `data` under its SHA-256 (returned in *hash, which may be NULL).
 * A duplicate is a check, not an error: *is_new (if not NULL) says which;
 * the stored kind stays the one first stored. LAMA_ELIMIT above
 * LAMA_STORE_OBJECT_MAX. */
int lama_store_put(lama_store *st, enum lama_store_kind kind, const void *data, size_t n,
		   lama_hash *hash, int *is_new);
/* Like lama_store_put when the caller already knows the hash (computed from
 * the same bytes); it is trusted, so only pass hashes you computed. */
int lama_store_put_hashed(lama_store *st, enum lama_store_kind kind, const void *data,
			  size_t n, const lama_hash *hash, int *is_new);
/* Appends the bytes stored under `hash` to out and sets *kind (may be NULL).
 * LAMA_ENOTFOUND or LAMA_ECORRUPT. */
int lama_store_get(lama_store *st, const lama_hash *hash, enum lama_store_kind *kind,
		   struct lama_buf *out);
/* 1 if stored (BLOB or not), 0 if not, negative on error. */
int lama_store_has(lama_store *st, const lama_hash *hash);

/* A number that changes whenever another connection (another process:
 * the CLI, a worker) committed to the archive since this one's last look;
 * its own commits do not change it (SQLite's data_version). What lama
 * serve asks to notice writes it did not make itself. */
int lama_store_data_version(lama_store *st, int64_t *v);

/* --- BLOBs: any size, streamed with constant memory --- */

/* Chunk size: BLOBs are sealed in pieces of this many bytes. */
#define LAMA_BLOB_CHUNK ((size_t)128 << 10)

typedef struct lama_blob_writer lama_blob_writer;
typedef struct lama_blob_reader lama_blob_reader;

/* Starts a BLOB; its hash is known only at the end. The writer holds the
 * store's write transaction until _end or _abort (one writer at a time per
 * store). Inside a caller's lama_store_begin the BLOB commits with the
 * caller's transaction, and _abort undoes only the BLOB. After a failed
 * lama_blob_write the writer can only be aborted (_end fails too). */
int lama_blob_write_begin(lama_store *st, lama_blob_writer **out);
int lama_blob_write(lama_blob_writer *w, const void *data, size_t n);
/* Commits and frees the writer; *hash is the SHA-256 of all bytes written.
 * *is_new is 0 when that BLOB was stored already (the new chunks are
 * dropped), unless the stored record has another size or chunk count (it
 * cannot be read): then it is replaced. On failure nothing is stored and
 * the writer is freed. */
int lama_blob_write_end(lama_blob_writer *w, lama_hash *hash, int *is_new);
void lama_blob_write_abort(lama_blob_writer *w);

/* Chunks sealed elsewhere (the crypto worker's blob_seal op): instead of
 * lama_blob_write, the caller seals each chunk with lama_blob_chunk_seal
 * under the storage key, the writer's group id (lama_blob_write_group)
 * and the chunk's index (0, 1, ... in the order they are stored), and
 * hands them in order. Every chunk but the last holds LAMA_BLOB_CHUNK
 * bytes of plaintext, the last one 1..LAMA_BLOB_CHUNK and last = 1; an
 * empty BLOB is one empty last chunk, and only it (a BLOB of whole chunks
 * ends with a full one: an empty last chunk after it is LAMA_EINVAL, as
 * the reader counts ceil(size / LAMA_BLOB_CHUNK) chunks). The writer checks lengths and order
 * (LAMA_EINVAL; it cannot decrypt what it is handed, so a chunk sealed
 * under another key, group or index is found by the reader, as
 * LAMA_ECORRUPT). A writer takes either lama_blob_write or sealed chunks,
 * not both (LAMA_EINVAL). */
void lama_blob_write_group(const lama_blob_writer *w, uint8_t bid[16]);
int lama_blob_write_sealed(lama_blob_writer *w, const void *sealed, size_t n, int last);
/* Commits like lama_blob_write_end, under `hash`: the SHA-256 of the
 * plaintext, which the caller computed (the writer never sees it). A wrong
 * hash stores a BLOB that fails to read (the reader compares the whole
 * hash), and if a BLOB of that hash exists the new chunks are dropped: only
 * pass hashes you computed (a later plain write of the content replaces
 * such a record when its size differs, not when only its bytes do).
 * LAMA_EINVAL before the last chunk, or for a NULL hash; on any failure
 * the writer is aborted and freed. */
int lama_blob_write_end_sealed(lama_blob_writer *w, const lama_hash *hash, int *is_new);

/* One BLOB chunk in the store's format (docs/storage.md#blobs), without a
 * store: the store's writer and reader use these, and so do the crypto
 * worker's blob_seal/blob_open ops. key: the storage key; bid: the BLOB's
 * chunk-group id; idx: the chunk's index; last: 1 for the BLOB's final
 * chunk. The nonce is random; the associated data binds the chunk to its
 * group, index and end. Seal: n <= LAMA_BLOB_CHUNK (LAMA_ELIMIT), out
 * holds n + LAMA_BLOB_CHUNK_OVERHEAD. Open: out holds n -
 * LAMA_BLOB_CHUNK_OVERHEAD (zeros on failure); LAMA_ECRYPTO if anything
 * was altered, the chunk was sealed for another place, or n is out of
 * range. */
#define LAMA_BLOB_CHUNK_OVERHEAD 40 /* nonce 24 + tag 16 */
#define LAMA_BLOB_GROUP_BYTES 16
int lama_blob_chunk_seal(uint8_t *out, const void *pt, size_t n, const uint8_t key[32],
			 const uint8_t bid[LAMA_BLOB_GROUP_BYTES], uint64_t idx, int last);
int lama_blob_chunk_open(uint8_t *out, const uint8_t *ct, size_t n, const uint8_t key[32],
			 const uint8_t bid[LAMA_BLOB_GROUP_BYTES], uint64_t idx, int last);

/* Opens a stored BLOB for reading; *size (may be NULL) is its length. */
int lama_blob_open(lama_store *st, const lama_hash *hash, lama_blob_reader **out,
		   uint64_t *size);
/* Reads up to n bytes; *got is 0 at the end. Each chunk is authenticated
 * before use, and the SHA-256 of all bytes is checked against the name
 * before any byte of the last chunk is handed out, so a reader that got
 * `size` bytes without error read the BLOB. After an error every later
 * read fails the same way. */
int lama_blob_read(lama_blob_reader *r, void *buf, size_t n, size_t *got);
void lama_blob_close(lama_blob_reader *r);

/* --- Indexes the archive layer keeps (all sealed like the content) --- */

/* Reverse map: records that object `src` of type `src_type` refers to
 * `dst` (an object, ID, CLOB or BLOB hash). Idempotent. The type name is
 * 1..127 bytes (LAMA_EINVAL otherwise). */
int lama_store_ref_add(lama_store *st, const lama_hash *dst, const char *src_type,
		       const lama_hash *src);
/* Calls fn for every recorded referrer of dst, of type src_type (NULL: any
 * type), in no particular order; stops on a non-zero return and passes it
 * back. */
int lama_store_refs(lama_store *st, const lama_hash *dst, const char *src_type,
		    int (*fn)(void *ctx, const char *src_type, const lama_hash *src),
		    void *ctx);
/* The same, reading at most `max` referrers (0: all); *truncated (may be
 * NULL) is set when more were recorded. Referrers can come from peers, so
 * code that must not be swamped by a flood of them reads a bounded number
 * and decides what a truncated answer means (a revocation check must fail
 * closed). */
int lama_store_refs_max(lama_store *st, const lama_hash *dst, const char *src_type, size_t max,
			int (*fn)(void *ctx, const char *src_type, const lama_hash *src),
			void *ctx, int *truncated);

/* 1 if src of type src_type is recorded as a referrer of dst, 0 if not:
 * one row looked up and opened, whatever the number of dst's referrers. */
int lama_store_ref_has(lama_store *st, const lama_hash *dst, const char *src_type,
		       const lama_hash *src);

/* Version heads of an ID: the version nodes no other node follows.
 * *heads is allocated (lama_free), *n may be 0 when the ID is unknown. */
int lama_store_heads_get(lama_store *st, const lama_hash *id, lama_hash **heads, size_t *n);
int lama_store_heads_set(lama_store *st, const lama_hash *id, const lama_hash *heads, size_t n);

/* Small named records (the keychain, settings): sealed, bound to their
 * name. get appends to out; LAMA_ENOTFOUND if absent. put: LAMA_EINVAL
 * for an empty name or one longer than LAMA_KV_NAME_MAX, LAMA_ELIMIT for
 * a value over LAMA_KV_MAX. del of an absent name is not an error. */
#define LAMA_KV_MAX ((size_t)1 << 20)
#define LAMA_KV_NAME_MAX 200
int lama_store_kv_put(lama_store *st, const char *name, const void *data, size_t n);
int lama_store_kv_get(lama_store *st, const char *name, struct lama_buf *out);
int lama_store_kv_del(lama_store *st, const char *name);

/* --- Verification --- */

struct lama_store_check {
	uint64_t objects, blobs, blob_bytes, refs, heads, kv; /* rows verified */
	uint64_t bad;       /* rows that failed */
	char first_bad[160]; /* description of the first failure */
};
/* Decrypts and re-hashes every row, reads every BLOB through. Calls
 * progress(ctx, done) now and then (may be NULL). Returns 0 if all is
 * well, LAMA_ECORRUPT if anything failed (details in *report). */
int lama_store_check(lama_store *st, struct lama_store_check *report,
		     void (*progress)(void *ctx, uint64_t done), void *ctx);

/* The SQLite handle, for benchmarks that compare raw SQLite on the same
 * database settings. */
struct sqlite3 *lama_store_db(lama_store *st);

#endif
