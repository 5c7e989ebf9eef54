#include "util/hash.h"

#include <string.h>

#include <pthread.h>

#include <openssl/evp.h>

#include "util/err.h"

struct lama_sha256_ctx {
	EVP_MD_CTX *md;
};

/* OpenSSL 3 looks the algorithm up on every EVP_sha256() use; fetching it
 * once saves that on every small object. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

/* One context per thread, reused: EVP_Digest would allocate and free one
 * per call, which shows on small objects. */
static _Thread_local EVP_MD_CTX *oneshot;

void lama_sha256(const void *data, size_t n, lama_hash *out)
{
	unsigned int len = LAMA_HASH_BYTES;

	if (!oneshot)
		oneshot = EVP_MD_CTX_new();
	if (oneshot && EVP_DigestInit_ex2(oneshot, sha256(), NULL) &&
	    EVP_DigestUpdate(oneshot, data, n) && EVP_DigestFinal_ex(oneshot, out->b, &len))
		return;
	EVP_Digest(data, n, out->b, &len, sha256(), NULL);
}

lama_sha256_ctx *lama_sha256_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md)
		return NULL;
	if (!EVP_DigestInit_ex(md, sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	/* The context is the EVP one; the wrapper type keeps OpenSSL out of
	 * every header. */
	return (lama_sha256_ctx *)md;
}

void lama_sha256_update(lama_sha256_ctx *c, const void *data, size_t n)
{
	EVP_DigestUpdate((EVP_MD_CTX *)c, data, n);
}

void lama_sha256_final(lama_sha256_ctx *c, lama_hash *out)
{
	unsigned int len = LAMA_HASH_BYTES;

	EVP_DigestFinal_ex((EVP_MD_CTX *)c, out->b, &len);
	EVP_MD_CTX_free((EVP_MD_CTX *)c);
}

void lama_sha256_abort(lama_sha256_ctx *c)
{
	EVP_MD_CTX_free((EVP_MD_CTX *)c);
}

static const char hexdig[] = "0123456789abcdef";

void lama_hex_encode(const void *in, size_t n, char *out)
{
	const uint8_t *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[p[i] >> 4];
		out[2 * i + 1] = hexdig[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void lama_hash_hex(const lama_hash *h, char out[LAMA_HASH_HEX + 1])
{
	lama_hex_encode(h->b, LAMA_HASH_BYTES, out);
}

static int hexval(char c, int lower_only)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (!lower_only && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int lama_hash_hex_valid(const char *s, size_t len)
{
	if (len != LAMA_HASH_HEX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (hexval(s[i], 1) < 0)
			return 0;
	return 1;
}

int lama_hash_parse(const char *hex, size_t len, lama_hash *out)
{
	if (!lama_hash_hex_valid(hex, len))
		return lama_error(LAMA_EINVAL, "not a hash (64 lower-case hex characters): %.*s",
				  (int)(len < 80 ? len : 80), hex);
	for (size_t i = 0; i < LAMA_HASH_BYTES; i++)
		out->b[i] = (uint8_t)(hexval(hex[2 * i], 1) << 4 | hexval(hex[2 * i + 1], 1));
	return 0;
}

int lama_hex_decode(const char *hex, size_t hexlen, void *out, size_t n)
{
	uint8_t *o = out;

	if (hexlen != 2 * n)
		return lama_error(LAMA_EINVAL, "hex string has %zu digits, expected %zu", hexlen, 2 * n);
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i], 0), lo = hexval(hex[2 * i + 1], 0);

		if (hi < 0 || lo < 0)
			return lama_error(LAMA_EINVAL, "not a hex string");
		o[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int lama_hash_eq(const lama_hash *a, const lama_hash *b)
{
	return memcmp(a->b, b->b, LAMA_HASH_BYTES) == 0;
}
