#include "util/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static unsigned long fail_countdown;
static int fail_sticky;

void lama_mem_fail_after(unsigned long n, int sticky)
{
	fail_countdown = n;
	fail_sticky = sticky;
}

static int should_fail(void)
{
	if (!fail_countdown)
		return 0;
	if (fail_countdown == 1) {
		if (!fail_sticky)
			fail_countdown = 0;
		return 1;
	}
	fail_countdown--;
	return 0;
}

void *lama_malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *lama_calloc(size_t count, size_t n)
{
	return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *lama_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *lama_strndup(const char *s, size_t n)
{
	char *d = lama_malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

char *lama_strdup(const char *s)
{
	return lama_strndup(s, strlen(s));
}

void lama_free(void *p)
{
	free(p);
}

int lama_grow(void *pv, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t c;
	void *p;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : first;
	if (c <= n || c > SIZE_MAX / size)
		return lama_error(LAMA_ENOMEM, "out of memory");
	/* through memcpy: pv is a T **, not a void ** */
	memcpy(&p, pv, sizeof(p));
	if (!(p = lama_realloc(p, c * size)))
		return lama_error(LAMA_ENOMEM, "out of memory");
	memcpy(pv, &p, sizeof(p));
	*cap = c;
	return 0;
}
