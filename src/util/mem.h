/* mem.h: the one allocator entry point.
 *
 * All of lama's own heap memory goes through these, so tests can make the
 * n-th allocation fail (lama_mem_fail_after) and prove that every error path
 * releases what it took. Libraries (SQLite, jansson) use their own. */
#ifndef LAMA_MEM_H
#define LAMA_MEM_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup; NULL on failure (or injected failure). */
void *lama_malloc(size_t n);
void *lama_calloc(size_t count, size_t n);
void *lama_realloc(void *p, size_t n);
char *lama_strdup(const char *s);
char *lama_strndup(const char *s, size_t n);
void lama_free(void *p);

/* Room for one more element in an array that grows by doubling: `pv` is
 * the address of the array pointer (T **), holding n elements of `size`
 * bytes in room for *cap. When n == *cap the array is reallocated to twice
 * the room (`first` elements the first time) and *cap updated. 0, or
 * LAMA_ENOMEM (message set) with the array and *cap unchanged. */
int lama_grow(void *pv, size_t *cap, size_t n, size_t size, size_t first);

/* Tests only: the n-th allocation from now fails (1 = the next one), and
 * every one after it while `sticky`; n = 0 turns injection off. */
void lama_mem_fail_after(unsigned long n, int sticky);

#endif
