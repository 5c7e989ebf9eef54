/* search.h: full-text search over the user's messages, blind at rest.
 *
 * An SQLite FTS5 index in its own file (a cache: rebuildable from the
 * archive at any time) that holds no word of any message: the FTS5 table
 * is contentless and its tokenizer replaces every word, after the usual
 * folding (unicode61: case, diacritics, split on non-letters), by a keyed
 * hash under the token key, the same when indexing and when querying. So
 * words, "phrases", OR, -exclusions and bm25 ranking work while the file
 * holds only keyed token hashes, positions and row numbers. Each message
 * (id, topic, sender, time, text) is also kept sealed (XChaCha20-Poly1305
 * under the seal key, bound to its row) for snippets and deletions.
 * Prefix queries cannot work on hashed words and are not offered. What
 * the file still shows (counts, lengths, how often a hidden word occurs):
 * docs/search.md.
 *
 * The API is plain calls with bytes in and results out, no threads, no
 * sockets, so it runs the same in the main process or in an index worker
 * given the two keys. One lama_search is used by one thread at a time.
 * Returns 0 or a negative LAMA_E* code (util/err.h). */
#ifndef LAMA_SEARCH_H
#define LAMA_SEARCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "account/account.h"
#include "chat/chat.h"
#include "util/buf.h"
#include "util/hash.h"

#define LAMA_SEARCH_QUERY_MAX 1024   /* bytes of a query */
#define LAMA_SEARCH_TERMS_MAX 32     /* words and phrases of a query */
#define LAMA_SEARCH_LIMIT_MAX 1000   /* results of one query */
#define LAMA_SEARCH_TEXT_MAX (256u << 10) /* bytes of an indexed text */
#define LAMA_SEARCH_TOPIC_MAX 200    /* bytes of a topic id */
#define LAMA_SEARCH_SNIPPET_MAX 240  /* bytes of a snippet (before "…") */
#define LAMA_SEARCH_HL_MAX 16        /* highlighted ranges of a snippet */

typedef struct lama_search lama_search;

/* Opens (creating if missing, mode 0600, WAL) the index file at path with
 * the two 32-byte keys, which are copied into secure memory. A wrong key
 * is not detected: it finds nothing, and snippets fail to open. *out is
 * the caller's (lama_search_close). LAMA_EIO if SQLite fails, LAMA_ECORRUPT
 * for a file that is not an index of this version. */
int lama_search_open_at(const char *path, const uint8_t token_key[LAMA_KEY_BYTES],
			const uint8_t seal_key[LAMA_KEY_BYTES], lama_search **out);
/* The two keys of a session's index: subkeys 1 and 2 of context "lamasrch"
 * of the user's master key (what a worker is handed). Wipe them after. */
int lama_search_keys(lama_session *s, uint8_t token_key[LAMA_KEY_BYTES],
		     uint8_t seal_key[LAMA_KEY_BYTES]);
/* Opens the session's index, lama_session_dir(s)/search.db. */
int lama_search_open(lama_session *s, lama_search **out);
/* Closes the file and wipes the keys. NULL is fine. */
void lama_search_close(lama_search *x);

/* One message to index. */
struct lama_search_doc {
	lama_hash id;           /* the message id */
	const char *topic;      /* topic id, 1..LAMA_SEARCH_TOPIC_MAX bytes, NUL-terminated */
	lama_hash sender;
	double time;            /* ms since the epoch */
	const char *text;       /* UTF-8 (invalid sequences are indexed as separators) */
	size_t text_len;        /* <= LAMA_SEARCH_TEXT_MAX */
};

/* Indexes a message, replacing what was indexed under the same id (after an
 * edit). An empty text removes it. Durable when it returns 0. */
int lama_search_add(lama_search *x, const struct lama_search_doc *d);
/* Indexes n messages in one transaction: all or none. */
int lama_search_add_batch(lama_search *x, const struct lama_search_doc *d, size_t n);
/* Indexes a MESSAGE as lama_message_json and the IPC protocol write it
 * ({id, time, sender, text, deleted, ...}; docs/ipc.md) of topic `topic`:
 * replaced after an edit, removed when deleted or empty. What the main
 * process hands the index for a message sent, edited, deleted or received.
 * LAMA_EINVAL naming the member that is missing or malformed. */
int lama_search_add_message(lama_search *x, const char *topic, const json_t *m);
/* The document of such a MESSAGE (borrowing its strings): *removed 1
 * when it is deleted or its text empty (only d->id is then set). */
int lama_search_doc_of_message(const char *topic, const json_t *m, struct lama_search_doc *d,
				int *removed);
/* Forgets a message (deleted). 0 also when it was not indexed. */
int lama_search_remove(lama_search *x, const lama_hash *id);
/* Number of messages indexed. */
int lama_search_count(lama_search *x, uint64_t *n);

/* A query matching more messages than this ranks only the newest this many
 * of them (the rows indexed last): bm25 costs a lookup per match, and a
 * word in most messages would otherwise take ~100 ms over 100,000. */
#define LAMA_SEARCH_RANK_WINDOW 5000

struct lama_search_opts {
	const char *topic;      /* only this topic's messages; NULL: all */
	size_t limit;           /* 1..LAMA_SEARCH_LIMIT_MAX; 0: 20 */
	size_t rank_window;     /* 0: LAMA_SEARCH_RANK_WINDOW; at least limit */
};

/* One result, borrowed for the callback. */
struct lama_search_hit {
	lama_hash id;
	const char *topic;
	lama_hash sender;
	double time;
	double rank;            /* bm25: the lower the better (negative) */
	const char *snippet;    /* UTF-8 excerpt of the text around the words, NUL-terminated */
	size_t snippet_len;
	size_t nhl;             /* the query's words in the snippet: byte ranges */
	struct { uint32_t off, len; } hl[LAMA_SEARCH_HL_MAX];
};

/* Runs a query (q[0..n): UTF-8, no NUL, at most LAMA_SEARCH_QUERY_MAX
 * bytes) and calls fn for each hit, best first; a non-zero return of fn
 * stops and is passed back. Syntax (docs/search.md): words are all
 * required; "several words" is a phrase; -word or -"a phrase" excludes;
 * a OR b between two terms wants either. Punctuation inside a word
 * separates words as in the text; `*`, `:`, `^`, NEAR, AND, NOT and
 * parentheses have no special meaning (they are punctuation or words).
 * LAMA_EINVAL with a clear message for a query that is not UTF-8, holds
 * NUL, has an unterminated quote, a dangling OR, no word to look for, or
 * too many terms; LAMA_ELIMIT when too long. A sealed text that fails to
 * open is LAMA_ECRYPTO. Ranking: bm25 over the matching messages, or over
 * the newest rank_window of them when more match (docs/search.md). */
int lama_search_query(lama_search *x, const char *q, size_t n, const struct lama_search_opts *o,
		      int (*fn)(void *ctx, const struct lama_search_hit *h), void *ctx);

/* A hit as JSON, the shape of query:search's results without the names a
 * session adds (topic_title, sender_name): {id, topic, sender, time, rank,
 * snippet, highlights: [[offset, length], ...]} (offsets in bytes of the
 * UTF-8 snippet). New reference; NULL when out of memory. A snippet that is
 * not UTF-8 (a text indexed with bad bytes) becomes "" with no highlights. */
json_t *lama_search_hit_json(const struct lama_search_hit *h);

/* Runs a query (as lama_search_query) and makes the answer of
 * query:search and `lama search --json`: {query, results: [hit JSON with
 * topic_title and sender_name]}, the names looked up in the session.
 * *out a new reference. */
int lama_search_query_json(lama_session *s, lama_search *x, const char *q, size_t n,
			   const struct lama_search_opts *o, json_t **out);

/* The hits of lama_search_hit_json in `results` (an array) get their
 * names: topic_title and sender_name, looked up in the session (a person
 * unknown there shows 12 hex digits, a topic gone "?"). What the main
 * process adds to the index worker's answer. LAMA_EFORMAT for a hit
 * without a topic or sender. */
int lama_search_name_results(lama_session *s, json_t *results);

/* Long work reports here: done of total (total 0 when unknown); a non-zero
 * return stops the work, which returns that value. */
typedef int (*lama_search_progress)(void *ctx, uint64_t done, uint64_t total);

/* Brings the index up to date with the archive: re-indexes every topic whose
 * messages changed since it was last indexed (all, the first time), through
 * the chat API, and forgets topics that are gone. Built from the pieces
 * below (lama_search_topics, lama_search_plan, lama_search_batch_read,
 * lama_search_put_topic), which the index worker runs task by task. */
int lama_search_sync(lama_session *s, lama_search *x, lama_search_progress progress, void *pctx);
/* Forgets everything and indexes every message of every topic again. */
int lama_search_rebuild(lama_session *s, lama_search *x, lama_search_progress progress,
			void *pctx);
/* Forgets everything (the index is then not built). */
int lama_search_clear(lama_search *x);

/* --- A sync in pieces: the main process reads the archive, the index
 * (maybe in the index worker) writes. --- */

/* A topic as the archive shows it now: what tells whether its rows are up
 * to date. */
struct lama_search_topic {
	const char *id;         /* 1..LAMA_SEARCH_TOPIC_MAX bytes */
	uint64_t entries;       /* messages and edits (lama_topic.entries) */
	double last_time;       /* the newest entry's time */
};

/* Every topic of the session, newest activity first; *out is one block
 * (ids inside), to lama_free; *total (may be NULL) the sum of entries. */
int lama_search_topics(lama_session *s, struct lama_search_topic **out, size_t *n,
		       uint64_t *total);

#define LAMA_SEARCH_PLAN_SYNC 0    /* only what changed */
#define LAMA_SEARCH_PLAN_REBUILD 1 /* empty the index first: all stale */
#define LAMA_SEARCH_PLAN_AUTO 2    /* REBUILD when never built, else SYNC */

/* Plans a sync over the session's topics t[0..n): stale[i] is 1 for each
 * topic whose rows are not those of t[i] (entries and last time as last
 * stored), else 0; *nstale counts them. Forgets the rows and states of
 * topics not in t. Marks the index built when nothing is stale (else the
 * last lama_search_put_topic does, with LAMA_SEARCH_PUT_BUILT). */
int lama_search_plan(lama_search *x, const struct lama_search_topic *t, size_t n, int mode,
		     uint8_t *stale, size_t *nstale);

#define LAMA_SEARCH_PUT_FIRST 1u /* the topic's first batch: its old rows go */
#define LAMA_SEARCH_PUT_LAST 2u  /* its last: its state is stored */
#define LAMA_SEARCH_PUT_BUILT 4u /* the sync's last: the index is built */

/* One batch of a topic's messages, newest first, for lama_search_put_topic.
 * The rows of a topic are a block above all others in time order (the
 * ranking window counts on it): base and next say where the batch goes;
 * FIRST computes them, each document takes the row below next, and
 * they come back for the next batch. */
struct lama_search_put {
	struct lama_search_topic topic;
	unsigned flags;
	uint64_t base, next;    /* in and out (in ignored with FIRST) */
};

/* Indexes d[0..n) (each of p->topic; an empty text: skipped, deleted) in
 * one transaction, all or nothing: with FIRST the topic's rows are dropped
 * first, with LAST its state is stored, with BUILT the index marked built.
 * Idempotent: the same batch again gives the same rows. */
int lama_search_put_topic(lama_search *x, struct lama_search_put *p, const struct lama_search_doc *d,
			  size_t n);

#define LAMA_SEARCH_BATCH 500                    /* messages read per batch */
#define LAMA_SEARCH_BATCH_BYTES ((size_t)4 << 20) /* ...or this many bytes of text */

/* A batch of one topic's messages read from the archive, newest first,
 * copied (deleted ones as empty texts, so rows keep their places). Zero
 * it before the first read; lama_search_batch_release after. */
struct lama_search_batch {
	struct lama_search_doc *d;   /* d[0..n), texts in `text` */
	size_t n, cap;
	struct lama_buf text;
	char topic[LAMA_SEARCH_TOPIC_MAX + 1];
	lama_hash last;              /* the cursor: the oldest read so far */
	int started;
	int more;                    /* older messages remain */
	int stuck;                   /* older messages remain but cannot be
				      * reached (a run of entries that show no
				      * message, longer than one read passes
				      * over): the topic is left stale */
	size_t limit;                /* messages per read; 0: LAMA_SEARCH_BATCH */
};

/* Reads the next batch of t (from the newest at the first call). */
int lama_search_batch_read(lama_session *s, const struct lama_topic *t,
			   struct lama_search_batch *b);
void lama_search_batch_release(struct lama_search_batch *b);

/* 1 if a sync or rebuild completed since the index was created, else 0. */
int lama_search_is_built(lama_search *x);

#endif
