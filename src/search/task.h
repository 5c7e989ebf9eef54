/* task.h: the index worker's task inputs and outputs, written and read
 * (docs/workers.md, "### index"). The main process writes a task here and
 * submits it to a worker of kind "index" (src/worker/ops_index.c reads it
 * there and runs src/search on the index file it names); results come
 * back through the readers below. Integers big-endian, a time (f64) as
 * its 64 bits.
 *
 * Every task but `close` starts with the index: bytes32 path (absolute,
 * 1..LAMA_PATH_MAX-1 bytes), token key[32], seal key[32] (lama_search_keys).
 * The buffers hold keys: release them with lama_buf_release_wipe. All
 * return 0 or a LAMA_E* code (LAMA_ELIMIT past a buffer's max). */
#ifndef LAMA_SEARCH_TASK_H
#define LAMA_SEARCH_TASK_H

#include "search/search.h"

#define LAMA_SEARCH_KEYS (2 * LAMA_KEY_BYTES) /* token key, then seal key */

/* The head of every task (b is appended to). */
int lama_search_task_head(struct lama_buf *b, const char *path,
			  const uint8_t keys[LAMA_SEARCH_KEYS]);

/* add: u32 count, then per item u8 what (1 index, 2 remove), id[32]; an
 * index item then sender[32], u64 time, u8 topic length, topic, bytes32
 * text (empty: removed). d[i].topic NULL is a removal. */
int lama_search_task_add(struct lama_buf *b, const char *path, const uint8_t keys[LAMA_SEARCH_KEYS],
			 const struct lama_search_doc *d, size_t n);

/* query: u32 limit, u32 rank window (0: default), u8 topic length (0:
 * all), topic, the query (the rest). Output: a JSON array of hits
 * (lama_search_hit_json). */
int lama_search_task_query(struct lama_buf *b, const char *path,
			   const uint8_t keys[LAMA_SEARCH_KEYS], const char *q, size_t n,
			   const struct lama_search_opts *o);

/* count: nothing more. Output: u64 messages, u8 built. */
int lama_search_task_count(struct lama_buf *b, const char *path,
			   const uint8_t keys[LAMA_SEARCH_KEYS]);
int lama_search_task_count_result(const void *out, size_t n, uint64_t *count, int *built);

/* Topics in one plan. A session with more has only its newest this many
 * indexed: the plan names them, and the index forgets the others. */
#define LAMA_SEARCH_PLAN_MAX 65536

/* plan: u8 mode (LAMA_SEARCH_PLAN_*), u32 count, per topic u8 id length,
 * id, u64 entries, u64 last time. Output: u32 n, n x u32 index of a stale
 * topic, ascending. */
int lama_search_task_plan(struct lama_buf *b, const char *path, const uint8_t keys[LAMA_SEARCH_KEYS],
			  int mode, const struct lama_search_topic *t, size_t n);
/* Reads a plan's output for n topics into stale[0..n) (0 or 1), checked. */
int lama_search_task_plan_result(const void *out, size_t len, size_t n, uint8_t *stale,
				 size_t *nstale);

/* put_topic: u8 flags (LAMA_SEARCH_PUT_*), u8 id length, id, u64 entries,
 * u64 last time, u64 base, u64 next, u32 count, per message id[32],
 * sender[32], u64 time, bytes32 text. Output: u64 base, u64 next. */
int lama_search_task_put(struct lama_buf *b, const char *path, const uint8_t keys[LAMA_SEARCH_KEYS],
			 const struct lama_search_put *p, const struct lama_search_doc *d, size_t n);
int lama_search_task_put_result(const void *out, size_t n, struct lama_search_put *p);

#endif
