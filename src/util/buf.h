/* buf.h: a growable byte buffer with a hard ceiling (curl's dynbuf, git's
 * strbuf). Data is always NUL-terminated so text can be used directly.
 *
 *   struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
 *   if (lama_buf_add(&b, p, n)) goto out;
 *   ... b.data, b.len ...
 *   out: lama_buf_release(&b);
 *
 * On failure (LAMA_ENOMEM, or LAMA_ELIMIT when `max` would be passed) the
 * contents are left as they were before the call. */
#ifndef LAMA_BUF_H
#define LAMA_BUF_H

#include <stddef.h>

struct lama_buf {
	char *data;  /* owned; NULL until the first add */
	size_t len;  /* bytes used, not counting the terminating NUL */
	size_t cap;  /* bytes allocated */
	size_t max;  /* ceiling for len */
};

/* Default ceiling: 64 MiB, far above any single object lama accepts. */
#define LAMA_BUF_MAX ((size_t)64 << 20)
#define LAMA_BUF_INIT(maxlen) { NULL, 0, 0, (maxlen) }

int lama_buf_add(struct lama_buf *b, const void *p, size_t n);
int lama_buf_addstr(struct lama_buf *b, const char *s);
int lama_buf_addch(struct lama_buf *b, char c);
int lama_buf_addf(struct lama_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes without changing len. */
int lama_buf_grow(struct lama_buf *b, size_t n);
/* Shortens to len (<= current len). */
void lama_buf_truncate(struct lama_buf *b, size_t len);
/* Hands the data to the caller (free with lama_free); the buffer is reset.
 * Returns an empty string, not NULL, for an empty buffer, or NULL on ENOMEM. */
char *lama_buf_detach(struct lama_buf *b, size_t *len);
/* Frees the data and resets; keeps max. Wipes the bytes first if `wipe`. */
void lama_buf_release(struct lama_buf *b);
void lama_buf_release_wipe(struct lama_buf *b);

#endif
