#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "util/err.h"
#include "util/mem.h"

int lama_buf_grow(struct lama_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return lama_error(LAMA_ELIMIT, "buffer limit of %zu bytes exceeded", b->max);
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
	p = lama_realloc(b->data, cap);
	if (!p)
		return lama_error(LAMA_ENOMEM, "out of memory");
	b->data = p;
	b->cap = cap;
	return 0;
}

int lama_buf_add(struct lama_buf *b, const void *p, size_t n)
{
	int rc = lama_buf_grow(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int lama_buf_addstr(struct lama_buf *b, const char *s)
{
	return lama_buf_add(b, s, strlen(s));
}

int lama_buf_addch(struct lama_buf *b, char c)
{
	return lama_buf_add(b, &c, 1);
}

int lama_buf_addf(struct lama_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return lama_error(LAMA_EINVAL, "bad format");
	rc = lama_buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void lama_buf_truncate(struct lama_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

char *lama_buf_detach(struct lama_buf *b, size_t *len)
{
	char *p = b->data;

	if (!p)
		p = lama_strdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void lama_buf_release(struct lama_buf *b)
{
	lama_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void lama_buf_release_wipe(struct lama_buf *b)
{
	if (b->data)
		sodium_memzero(b->data, b->cap);
	lama_buf_release(b);
}
