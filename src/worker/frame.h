/* frame.h: the frame between the manager and a worker (private to
 * src/worker; the byte layout is in docs/workers.md).
 *
 *   u32 len (big-endian): bytes after these four, 10 + oplen + payload
 *   u8  type   (enum lama_frame_type)
 *   u8  oplen  (0..LAMA_WORKER_OP_MAX)
 *   u64 id     (big-endian)
 *   op[oplen]  ([a-z0-9_], only in task and hello frames)
 *   payload[len - 10 - oplen] */
#ifndef LAMA_WORKER_FRAME_H
#define LAMA_WORKER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "worker/worker.h"

enum lama_frame_type {
	LAMA_FRAME_HELLO = 1,  /* worker -> manager, first: op = kind, payload u32 pid, u8 version */
	LAMA_FRAME_TASK = 2,   /* manager -> worker */
	LAMA_FRAME_RESULT = 3, /* worker -> manager: payload = output */
	LAMA_FRAME_ERROR = 4,  /* worker -> manager: i32 code, then the message */
	LAMA_FRAME_CANCEL = 5, /* manager -> worker: no op, no payload */
};

#define LAMA_FRAME_VERSION 1
#define LAMA_FRAME_HEAD 10 /* type, oplen, id */
#define LAMA_FRAME_LEN_MAX (LAMA_FRAME_HEAD + LAMA_WORKER_OP_MAX + LAMA_WORKER_PAYLOAD_MAX)
#define LAMA_FRAME_MSG_MAX 256 /* bytes of an error message */

struct lama_frame {
	unsigned type;
	uint64_t id;
	const char *op; /* not NUL-terminated */
	size_t oplen;
	const uint8_t *payload;
	size_t n;
};

static inline void lama_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t lama_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void lama_put_u64(uint8_t *p, uint64_t v)
{
	lama_put_u32(p, (uint32_t)(v >> 32));
	lama_put_u32(p + 4, (uint32_t)v);
}

static inline uint64_t lama_get_u64(const uint8_t *p)
{
	return (uint64_t)lama_get_u32(p) << 32 | lama_get_u32(p + 4);
}

/* 1 if s[0..n) is a valid op or kind name: 1..32 bytes of [a-z0-9_]. */
int lama_frame_name_ok(const char *s, size_t n);

/* Writes the 4 + 10 + oplen bytes before the payload into head (room for
 * 4 + LAMA_FRAME_HEAD + LAMA_WORKER_OP_MAX) and returns their count. The
 * caller checked oplen and n. */
size_t lama_frame_head(uint8_t *head, unsigned type, uint64_t id, const char *op,
		       size_t oplen, size_t n);

/* Parses the body of one frame (the len bytes after the length): 0, or
 * LAMA_EFORMAT with a message naming what is wrong (a type unknown, an
 * oplen over the limit or beyond the body, an op that is not a name). */
int lama_frame_parse(const uint8_t *body, size_t len, struct lama_frame *f);

#endif
