/* ops.h: the task sets of the worker kinds (private to src/worker; the
 * payload formats are in docs/workers.md). Each is a lama_worker_op that
 * checks its whole input before it uses it. */
#ifndef LAMA_WORKER_OPS_H
#define LAMA_WORKER_OPS_H

#include "worker/worker.h"

#define LAMA_WORKER_BATCH_MAX 65536 /* items in one batch */

int lama_worker_ops_crypto(const char *op, const void *in, size_t n, struct lama_buf *out);
int lama_worker_ops_sync(const char *op, const void *in, size_t n, struct lama_buf *out);
/* The index kind's vec_put, vec_remove, vec_query, vec_count, vec_close
 * (src/vector): keeps one index open between tasks. */
int lama_worker_ops_vector(const char *op, const void *in, size_t n, struct lama_buf *out);
/* What the index kind keeps between tasks, closed and its keys wiped: the
 * full-text index and the vector index (the `close` op, and at exit). */
void lama_worker_index_close(void);
void lama_worker_vector_close(void);
/* The user's full-text index (src/search): add, query, count, plan,
 * put_topic, close; keeps one index open between tasks. */
int lama_worker_ops_index(const char *op, const void *in, size_t n, struct lama_buf *out);
/* Only for tests: echo, pid, sleep, crash, garbage, hang; needs the fd to
 * write bad frames. */
int lama_worker_ops_test(const char *op, const void *in, size_t n, struct lama_buf *out);
extern int lama_worker_test_fd;

/* A reader over an input, for the formats: each call takes bytes or
 * fails with LAMA_EINVAL naming `what`. */
struct lama_rd {
	const uint8_t *p;
	size_t left;
	const char *op;
};
int lama_rd_u32(struct lama_rd *r, uint32_t *v, const char *what);
int lama_rd_u64(struct lama_rd *r, uint64_t *v, const char *what);
int lama_rd_u8(struct lama_rd *r, uint8_t *v, const char *what);
/* u32 count of a batch: LAMA_ELIMIT past LAMA_WORKER_BATCH_MAX, LAMA_EINVAL
 * when count items of at least min_item (>= 1) bytes cannot fit in what is
 * left, so nothing is allocated for a count the input cannot hold. */
int lama_rd_count(struct lama_rd *r, uint32_t *count, size_t min_item, const char *what);
/* u32 length, then a file's path: 1..LAMA_PATH_MAX-1 bytes, absolute,
 * without NUL (not NUL-terminated: *path points into the input). */
int lama_rd_path(struct lama_rd *r, const uint8_t **path, uint32_t *n);
int lama_rd_bytes(struct lama_rd *r, size_t n, const uint8_t **p, const char *what);
/* LAMA_EINVAL if bytes are left over. */
int lama_rd_end(struct lama_rd *r);

#endif
