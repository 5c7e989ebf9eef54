/* testutil.h: what the cmocka unit tests share. Include after cmocka's
 * prerequisites (stdarg.h, stddef.h, setjmp.h, stdint.h). */
#ifndef LAMA_TESTUTIL_H
#define LAMA_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Path of a file in the ONE vector folder (LAMA_ONE_FORMAT); static buffer. */
static inline const char *tu_one_format(const char *name)
{
	static char path[4096];
	const char *dir = getenv("LAMA_ONE_FORMAT");

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "../shared/one-format", name);
	return path;
}

/* A fresh empty directory under $TMPDIR (or /tmp); static buffer. The test
 * removes it with tu_rmtree. */
static inline const char *tu_tmpdir(void)
{
	static char path[4096];
	const char *t = getenv("TMPDIR");

	snprintf(path, sizeof(path), "%s/lama-test-XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		abort();
	}
	return path;
}

static inline void tu_rmtree(const char *path)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
}

/* Deterministic randomness for property tests: xorshift64*. */
static inline uint64_t rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static inline unsigned rnd(uint64_t *s, unsigned n)
{
	return (unsigned)(rnd_next(s) % n);
}

#endif
