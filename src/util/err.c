#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_msg[512];

int lama_error(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	return code;
}

const char *lama_errmsg(void)
{
	return last_msg[0] ? last_msg : "no error recorded";
}

void lama_error_clear(void)
{
	last_msg[0] = '\0';
}

const char *lama_strerror(int code)
{
	switch (code) {
	case LAMA_OK: return "success";
	case LAMA_ENOMEM: return "out of memory";
	case LAMA_EINVAL: return "invalid input";
	case LAMA_ENOTFOUND: return "not found";
	case LAMA_ECORRUPT: return "corrupt data";
	case LAMA_ECRYPTO: return "authentication failed";
	case LAMA_EIO: return "I/O error";
	case LAMA_EFORMAT: return "malformed data";
	case LAMA_EAUTH: return "wrong password";
	case LAMA_EEXIST: return "already exists";
	case LAMA_ELIMIT: return "size limit exceeded";
	case LAMA_EBUSY: return "busy";
	case LAMA_ECANCELED: return "canceled";
	case LAMA_ETIMEDOUT: return "timed out";
	}
	return "unknown error";
}
