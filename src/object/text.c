/* text.c: the two text rules of the format: HTML escaping of content, and
 * JavaScript's string order (UTF-16 code units) for sorting. */
#include <stdint.h>
#include <string.h>

#include "object/internal.h"
#include "util/buf.h"

int lama__html_escape(const char *s, size_t n, struct lama_buf *out)
{
	size_t i, run = 0;
	int rc;

	/* most text has nothing to escape: three vector scans beat a byte loop */
	if (!memchr(s, '&', n) && !memchr(s, '<', n) && !memchr(s, '>', n))
		return lama_buf_add(out, s, n);
	for (i = 0; i < n; i++) {
		const char *rep;

		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		default: continue;
		}
		if ((rc = lama_buf_add(out, s + run, i - run)) || (rc = lama_buf_addstr(out, rep)))
			return rc;
		run = i + 1;
	}
	return lama_buf_add(out, s + run, n - run);
}

/* Decodes the code point at s (n > 0 bytes); an invalid sequence yields its
 * first byte, so comparison stays total on any input. */
static uint32_t decode(const unsigned char *s, size_t n)
{
	uint32_t c = s[0];
	size_t len, i;

	if (c < 0x80)
		return c;
	if ((c & 0xE0) == 0xC0) {
		len = 2;
		c &= 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3;
		c &= 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4;
		c &= 0x07;
	} else {
		return s[0];
	}
	if (len > n)
		return s[0];
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return s[0];
		c = (c << 6) | (s[i] & 0x3F);
	}
	return c;
}

/* The first UTF-16 code unit of c. Two code points with the same first unit
 * are both astral with one high surrogate, and then their low surrogates
 * order as the code points do. */
static uint32_t first_unit(uint32_t c)
{
	return c >= 0x10000 ? 0xD800 + ((c - 0x10000) >> 10) : c;
}

int lama__utf16_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	const unsigned char *ua = (const unsigned char *)a, *ub = (const unsigned char *)b;
	size_t i = 0, j, n = an < bn ? an : bn;
	uint32_t ca, cb, fa, fb;

	while (i < n && ua[i] == ub[i])
		i++;
	if (i == n)
		return an < bn ? -1 : an > bn;
	j = i;
	/* Byte order is code point order; it differs from UTF-16 order only
	 * between U+E000..U+FFFF and astral characters, so decode the code
	 * point that holds the first difference (the shared prefix puts both
	 * strings at the same lead byte). */
	while (i > 0 && (ua[i] & 0xC0) == 0x80)
		i--;
	ca = decode(ua + i, an - i);
	cb = decode(ub + i, bn - i);
	fa = first_unit(ca);
	fb = first_unit(cb);
	if (fa != fb)
		return fa < fb ? -1 : 1;
	if (ca != cb)
		return ca < cb ? -1 : 1;
	return ua[j] < ub[j] ? -1 : 1; /* broken UTF-8: fall back to bytes */
}

/* Lower-case hex digit values plus one; 0 for every other byte. */
static const unsigned char hex1[256] = {
	['0'] = 0 + 1, ['1'] = 1 + 1, ['2'] = 2 + 1, ['3'] = 3 + 1, ['4'] = 4 + 1,
	['5'] = 5 + 1, ['6'] = 6 + 1, ['7'] = 7 + 1, ['8'] = 8 + 1, ['9'] = 9 + 1,
	['a'] = 10 + 1, ['b'] = 11 + 1, ['c'] = 12 + 1, ['d'] = 13 + 1, ['e'] = 14 + 1,
	['f'] = 15 + 1,
};

int lama__hash_from_hex(const char *s, size_t n, lama_hash *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i;

	if (n != LAMA_HASH_HEX)
		return 0;
	for (i = 0; i < LAMA_HASH_BYTES; i++) {
		int hi = hex1[u[2 * i]] - 1, lo = hex1[u[2 * i + 1]] - 1;

		if (hi < 0 || lo < 0)
			return 0;
		if (out)
			out->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 1;
}
