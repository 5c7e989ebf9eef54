/* jsnum.c: JavaScript's Number#toString for doubles.
 *
 * ONE writes numbers as JavaScript does, so hashes depend on the exact text.
 * ECMA-262 (Number::toString) asks for the fewest significant digits that
 * read back as the same double, then places the decimal point by the
 * exponent: plain notation for 1e-7 < |d| < 1e21, exponent form otherwise.
 * glibc's printf rounds exactly, so the shortest "%.*e" that round-trips
 * through strtod gives those digits. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object/internal.h"
#include "util/buf.h"

int lama__is_integer(double d)
{
	return isfinite(d) && trunc(d) == d;
}

/* Shortest digits of d > 0: digits[] without a point, returns the count;
 * *exp10 is the position of the decimal point (d = 0.DIGITS * 10^exp10). */
static int shortest_digits(double d, char digits[24], int *exp10)
{
	char tmp[40];
	int prec, k = 0;
	char *e, *p;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* tmp is "D[.DDD]e[+-]XX" */
	e = strchr(tmp, 'e');
	for (p = tmp; p < e; p++)
		if (*p >= '0' && *p <= '9')
			digits[k++] = *p;
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';
	*exp10 = atoi(e + 1) + 1;
	return k;
}

size_t lama__jsnum_format(double d, char out[32])
{
	char digits[24];
	int k, n, i;
	size_t len = 0;

	if (isnan(d)) {
		strcpy(out, "NaN");
		return 3;
	}
	if (isinf(d)) {
		strcpy(out, d < 0 ? "-Infinity" : "Infinity");
		return strlen(out);
	}
	if (d == 0) { /* also -0, which JavaScript writes as "0" */
		strcpy(out, "0");
		return 1;
	}
	if (d < 0) {
		out[len++] = '-';
		d = -d;
	}
	if (d < 9007199254740992.0 && trunc(d) == d) {
		/* below 2^53 every integer is exact, so its own digits are the
		 * shortest that read back (timestamps, counts: the common case) */
		uint64_t v = (uint64_t)d;
		char rev[20];

		k = 0;
		do {
			rev[k++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		while (k > 0)
			out[len++] = rev[--k];
		out[len] = '\0';
		return len;
	}
	k = shortest_digits(d, digits, &n);
	if (k <= n && n <= 21) {
		/* integer: digits then n-k zeros */
		memcpy(out + len, digits, (size_t)k);
		len += (size_t)k;
		for (i = 0; i < n - k; i++)
			out[len++] = '0';
	} else if (0 < n && n <= 21) {
		memcpy(out + len, digits, (size_t)n);
		len += (size_t)n;
		out[len++] = '.';
		memcpy(out + len, digits + n, (size_t)(k - n));
		len += (size_t)(k - n);
	} else if (-6 < n && n <= 0) {
		out[len++] = '0';
		out[len++] = '.';
		for (i = 0; i < -n; i++)
			out[len++] = '0';
		memcpy(out + len, digits, (size_t)k);
		len += (size_t)k;
	} else {
		out[len++] = digits[0];
		if (k > 1) {
			out[len++] = '.';
			memcpy(out + len, digits + 1, (size_t)(k - 1));
			len += (size_t)(k - 1);
		}
		len += (size_t)snprintf(out + len, 32 - len, "e%c%d", n - 1 < 0 ? '-' : '+',
					abs(n - 1));
	}
	out[len] = '\0';
	return len;
}

int lama_jsnum_write(double d, struct lama_buf *out)
{
	char tmp[32];
	size_t n;

	if (!isfinite(d))
		return lama_buf_add(out, "null", 4);
	n = lama__jsnum_format(d, tmp);
	return lama_buf_add(out, tmp, n);
}
