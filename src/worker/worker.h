/* worker.h: worker processes and their manager (docs/workers.md).
 *
 * The main process moves compute-heavy work (Argon2id, batches of
 * signatures, sync diffs) into worker processes, so its loop never stalls.
 * The manager (lama_workers_*) runs on the main process's libuv loop: it
 * spawns `EXE worker KIND PARENT_PID` for each worker of each pool, talks to
 * each over a socketpair on the worker's fd 3 with length-prefixed frames,
 * routes a task to an idle worker of its kind (the one with the fewest
 * tasks done) or queues it with a bound, applies a time limit per task,
 * and restarts a worker that dies, with back-off. The worker side
 * (lama_worker_main) reads one task at a time, runs the op of its kind
 * and answers.
 *
 * Everything on the manager's side runs on the loop's thread and never
 * blocks on a worker; no function here is thread-safe. */
#ifndef LAMA_WORKER_H
#define LAMA_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/buf.h"

struct uv_loop_s; /* uv_loop_t, from <uv.h> */


/* Largest task input and result (the frame adds at most 46 bytes): the
 * ceiling of struct lama_buf, above any object lama accepts; BLOBs go
 * through in chunks. A length beyond it is a broken worker, not an
 * allocation of up to 4 GiB. */
#define LAMA_WORKER_PAYLOAD_MAX ((size_t)64 << 20)
#define LAMA_WORKER_OP_MAX 32       /* bytes of an op name */
#define LAMA_WORKER_KIND_MAX 32     /* bytes of a kind name */
#define LAMA_WORKERS_POOL_MAX 64    /* workers in one pool */
#define LAMA_WORKERS_QUEUE_DEFAULT 256
#define LAMA_WORKERS_QUEUE_BYTES ((size_t)256 << 20) /* queued input per pool */
#define LAMA_WORKERS_TIMEOUT_DEFAULT 60000 /* ms, per task */
#define LAMA_WORKERS_CANCEL_GRACE_MS 1000  /* a canceled task's worker may finish */
#define LAMA_WORKERS_CLOSE_GRACE_MS 2000   /* then SIGKILL */
#define LAMA_WORKERS_BACKOFF_MIN_MS 100
#define LAMA_WORKERS_BACKOFF_MAX_MS 5000
#define LAMA_WORKERS_HEALTHY_MS 60000      /* alive this long: back-off resets */
#define LAMA_WORKER_NICE 5 /* workers run this much below the main process */

/* --- The manager, in the main process --- */

typedef struct lama_workers lama_workers;

/* One pool: `size` workers of `kind` (0: the number of cores), at most
 * queue_max tasks waiting (0: LAMA_WORKERS_QUEUE_DEFAULT), a task's time
 * limit once it runs (0: LAMA_WORKERS_TIMEOUT_DEFAULT). */
struct lama_worker_pool {
	const char *kind;
	unsigned size;
	unsigned queue_max;
	unsigned timeout_ms;
};

/* A task may run twice: retried once when its worker dies under it. */
#define LAMA_WORKER_PW_MAX 1024 /* bytes of a password for the crypto kdf op */
#define LAMA_TASK_IDEMPOTENT 1u

/* Called exactly once per accepted task, on the loop: rc 0 with the
 * output (out[0..n), borrowed for the call), or a negative LAMA_E* code
 * with a one-line message (out NULL). May call any lama_workers_*
 * function but lama_workers_close. */
typedef void (*lama_task_done)(void *ctx, int rc, const char *msg, const void *out, size_t n);

/* Spawns every pool's workers on `loop` (a worker that cannot start is
 * retried with back-off; tasks wait for it in the queue). `exe` is the
 * lama binary (lama serve: "/proc/self/exe"); pools are copied, each of a
 * kind lama_worker_kind_known (LAMA_EINVAL otherwise). Ignores SIGPIPE
 * for the process. *out owned by the caller (lama_workers_close). */
int lama_workers_new(lama_workers **out, struct uv_loop_s *loop, const char *exe,
		     const struct lama_worker_pool *pools, size_t npools);

/* Queues a task: op `op` of a worker of `kind` on in[0..n) (copied).
 * timeout_ms 0: the pool's. *id (may be NULL) gets the task's id, for
 * lama_workers_cancel. Errors (done is then never called): LAMA_ENOTFOUND
 * for a kind without a pool, LAMA_EINVAL for a bad op name, LAMA_ELIMIT
 * for an input over LAMA_WORKER_PAYLOAD_MAX, LAMA_EBUSY when the pool's
 * queue is full (back-pressure: try later), LAMA_ECANCELED once closing. */
int lama_workers_submit(lama_workers *m, const char *kind, const char *op, const void *in,
			size_t n, unsigned flags, unsigned timeout_ms, lama_task_done done,
			void *ctx, uint64_t *id);

/* How long a worker of the `kind` pool must have lived for its back-off
 * to start again at LAMA_WORKERS_BACKOFF_MIN_MS when it dies (0: the
 * default, LAMA_WORKERS_HEALTHY_MS; tests set it shorter). Counts from
 * the next death on. LAMA_ENOTFOUND for a kind without a pool. (A setter,
 * not a field of struct lama_worker_pool: callers fill that struct by
 * position, and a new field would break their -Werror builds.) */
int lama_workers_set_healthy_ms(lama_workers *m, const char *kind, unsigned ms);

/* Replaces every worker of every pool: an idle one now, a busy one as soon
 * as it answers its task (it takes no other). What a worker keeps between
 * tasks (a cached archive or index, with its keys) goes with its process;
 * lama serve calls this at logout. Replacements start at once and are not
 * counted in `restarts`; queued tasks wait for them. NULL is fine. */
void lama_workers_recycle(lama_workers *m);

/* Cancels a task: its done gets LAMA_ECANCELED at once. A queued task is
 * dropped; a running one's worker is told, and killed and replaced if it
 * has not answered within LAMA_WORKERS_CANCEL_GRACE_MS. LAMA_ENOTFOUND
 * when the task is already done or unknown. */
int lama_workers_cancel(lama_workers *m, uint64_t id);

/* Health, for `lama workers` and query:getWorkers: a new array with one
 * object per worker {"kind", "pid" (null while none runs), "busy" (bool),
 * "done", "failed", "restarts", "queued" (the pool's)}; NULL on ENOMEM. */
json_t *lama_workers_status(lama_workers *m);

/* Fails every queued and running task (LAMA_ECANCELED), closes each
 * worker's socket (a worker exits at EOF), SIGKILLs those still there
 * after LAMA_WORKERS_CLOSE_GRACE_MS, reaps them and frees everything:
 * it runs the loop (UV_RUN_ONCE) until its own handles are closed, so
 * call it outside uv_run, before the loop's owner closes the loop. NULL
 * is fine. */
void lama_workers_close(lama_workers *m);

/* --- The worker side, in the child process --- */

/* One op: reads in[0..n), appends its result to out (whose max is
 * LAMA_WORKER_PAYLOAD_MAX); 0 or a LAMA_E* code set with lama_error. */
typedef int (*lama_worker_op)(const char *op, const void *in, size_t n, struct lama_buf *out);

/* 1 if `kind` is a worker kind this binary can run. */
int lama_worker_kind_known(const char *kind);

/* Serves frames on fd (a socket from the manager) until EOF: hello, then
 * one task at a time. Returns 0 at EOF, LAMA_EIO when the manager's side
 * breaks the frame rules or a read or write fails, LAMA_EINVAL for an
 * unknown kind. */
int lama_worker_main(const char *kind, int fd);

#endif
