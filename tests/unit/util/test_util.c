#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

static void test_buf_grows_and_caps(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(10);

	(void)state;
	assert_int_equal(lama_buf_addstr(&b, "hello"), 0);
	assert_int_equal(lama_buf_addf(&b, "%d", 1234), 0);
	assert_string_equal(b.data, "hello1234");
	assert_int_equal(lama_buf_addstr(&b, "xx"), LAMA_ELIMIT);
	assert_string_equal(b.data, "hello1234"); /* unchanged on failure */
	assert_int_equal(lama_buf_addch(&b, '!'), 0);
	assert_int_equal(b.len, 10);
	lama_buf_release(&b);
	assert_null(b.data);
}

static void test_buf_enomem_leaves_contents(void **state)
{
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	char big[200];

	(void)state;
	memset(big, 'a', sizeof(big));
	assert_int_equal(lama_buf_addstr(&b, "x"), 0);
	lama_mem_fail_after(1, 0);
	assert_int_equal(lama_buf_add(&b, big, sizeof(big)), LAMA_ENOMEM);
	assert_string_equal(b.data, "x");
	assert_int_equal(lama_buf_add(&b, big, sizeof(big)), 0);
	assert_int_equal(b.len, 201);
	lama_buf_release(&b);
}

static void test_grow(void **state)
{
	struct pair { uint64_t a, b; } *v = NULL;
	size_t cap = 0, n = 0;
	size_t huge = SIZE_MAX / 8;

	(void)state;
	for (uint64_t i = 0; i < 1000; i++) {
		assert_int_equal(lama_grow(&v, &cap, n, sizeof(*v), 4), 0);
		assert_true(n < cap);
		v[n++] = (struct pair){ i, ~i };
	}
	assert_int_equal(cap, 1024); /* 4, doubled until 1000 fit */
	for (uint64_t i = 0; i < 1000; i++)
		assert_true(v[i].a == i && v[i].b == ~i);
	/* an allocation failure leaves the array and its room as they were */
	cap = n;
	lama_mem_fail_after(1, 0);
	assert_int_equal(lama_grow(&v, &cap, n, sizeof(*v), 4), LAMA_ENOMEM);
	assert_int_equal(cap, 1000);
	assert_true(v[999].a == 999);
	/* room whose size would overflow is refused before any allocation */
	assert_int_equal(lama_grow(&v, &huge, huge, sizeof(*v), 4), LAMA_ENOMEM);
	assert_int_equal(huge, SIZE_MAX / 8);
	/* no growth while there is room */
	assert_int_equal(lama_grow(&v, &cap, 10, sizeof(*v), 4), 0);
	assert_int_equal(cap, 1000);
	lama_free(v);
}

static void test_sha256_known(void **state)
{
	lama_hash h, h2;
	char hex[65];
	lama_sha256_ctx *c;

	(void)state;
	lama_sha256("abc", 3, &h);
	lama_hash_hex(&h, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	c = lama_sha256_new();
	assert_non_null(c);
	lama_sha256_update(c, "a", 1);
	lama_sha256_update(c, "bc", 2);
	lama_sha256_final(c, &h2);
	assert_true(lama_hash_eq(&h, &h2));
	assert_int_equal(lama_hash_parse(hex, 64, &h2), 0);
	assert_true(lama_hash_eq(&h, &h2));
}

static void test_hash_parse_rejects(void **state)
{
	lama_hash h;

	(void)state;
	assert_int_equal(lama_hash_parse("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", 64, &h), LAMA_EINVAL);
	assert_int_equal(lama_hash_parse("ba78", 4, &h), LAMA_EINVAL);
	assert_int_equal(lama_hash_parse("za7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 64, &h), LAMA_EINVAL);
	assert_non_null(strstr(lama_errmsg(), "not a hash"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_grows_and_caps),
		cmocka_unit_test(test_buf_enomem_leaves_contents),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_sha256_known),
		cmocka_unit_test(test_hash_parse_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
