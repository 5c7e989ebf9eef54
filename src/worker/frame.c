/* frame.c: encoding and checking the manager <-> worker frame (frame.h). */
#include <string.h>

#include "util/err.h"
#include "worker/frame.h"

int lama_frame_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > LAMA_WORKER_OP_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

size_t lama_frame_head(uint8_t *head, unsigned type, uint64_t id, const char *op,
		       size_t oplen, size_t n)
{
	lama_put_u32(head, (uint32_t)(LAMA_FRAME_HEAD + oplen + n));
	head[4] = (uint8_t)type;
	head[5] = (uint8_t)oplen;
	lama_put_u64(head + 6, id);
	if (oplen)
		memcpy(head + 14, op, oplen);
	return 14 + oplen;
}

int lama_frame_parse(const uint8_t *body, size_t len, struct lama_frame *f)
{
	if (len < LAMA_FRAME_HEAD || len > LAMA_FRAME_LEN_MAX)
		return lama_error(LAMA_EFORMAT, "a frame of %zu bytes (at least %d, at most %zu)",
				  len, LAMA_FRAME_HEAD, (size_t)LAMA_FRAME_LEN_MAX);
	f->type = body[0];
	f->oplen = body[1];
	f->id = lama_get_u64(body + 2);
	if (f->type < LAMA_FRAME_HELLO || f->type > LAMA_FRAME_CANCEL)
		return lama_error(LAMA_EFORMAT, "a frame of unknown type %u", f->type);
	if (f->oplen > LAMA_WORKER_OP_MAX || LAMA_FRAME_HEAD + f->oplen > len)
		return lama_error(LAMA_EFORMAT, "a frame whose op length %zu does not fit", f->oplen);
	f->op = (const char *)body + LAMA_FRAME_HEAD;
	if ((f->type == LAMA_FRAME_TASK || f->type == LAMA_FRAME_HELLO) &&
	    !lama_frame_name_ok(f->op, f->oplen))
		return lama_error(LAMA_EFORMAT, "a frame whose op is not a name");
	if (f->type != LAMA_FRAME_TASK && f->type != LAMA_FRAME_HELLO && f->oplen)
		return lama_error(LAMA_EFORMAT, "a frame of type %u with an op", f->type);
	f->payload = body + LAMA_FRAME_HEAD + f->oplen;
	f->n = len - LAMA_FRAME_HEAD - f->oplen;
	return 0;
}
