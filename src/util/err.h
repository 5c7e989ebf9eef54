/* err.h: lama's one error convention.
 *
 * Every function that can fail returns int: 0 (LAMA_OK) on success, a negative
 * LAMA_E* code on failure. The function that detects a failure records a
 * one-line, human-readable message with lama_error(), which also returns the
 * code, so the idiom is `return lama_error(LAMA_EINVAL, "bad thing: %s", x);`.
 * Callers that only pass a failure up return the code unchanged and leave the
 * message alone. Only main() and CLI commands print messages and exit.
 * Messages never contain secrets or user content beyond what is needed to
 * locate the problem (a property name, a hash). */
#ifndef LAMA_ERR_H
#define LAMA_ERR_H

enum lama_err {
	LAMA_OK = 0,
	LAMA_ENOMEM = -1,    /* out of memory */
	LAMA_EINVAL = -2,    /* bad argument or input that breaks the rules */
	LAMA_ENOTFOUND = -3, /* no such object, user, key */
	LAMA_ECORRUPT = -4,  /* stored data failed its check: tampered or damaged */
	LAMA_ECRYPTO = -5,   /* authentication or signature failed */
	LAMA_EIO = -6,       /* the OS or SQLite failed */
	LAMA_EFORMAT = -7,   /* not valid ONE microdata / JSON */
	LAMA_EAUTH = -8,     /* wrong password */
	LAMA_EEXIST = -9,    /* already exists */
	LAMA_ELIMIT = -10,   /* a size limit was exceeded */
	LAMA_EBUSY = -11,    /* held by another process */
	LAMA_ECANCELED = -12, /* a task canceled (or its manager closing) */
	LAMA_ETIMEDOUT = -13, /* a task over its time limit */
};

/* Records a message for `code` (printf-style) and returns `code`. */
int lama_error(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread; never NULL. Valid until the next
 * lama_error() on this thread. */
const char *lama_errmsg(void);

/* A fixed description of a code, e.g. "corrupt data". */
const char *lama_strerror(int code);

/* Forget the recorded message. */
void lama_error_clear(void);

#endif
