/* fuzz_object.c: libFuzzer target for the serializer against the parser.
 *
 * Input: object JSON in lama's convention. Property: when lama serializes an
 * object (full or ID form), lama_object_parse accepts that microdata and
 * serializing the parsed object gives the same bytes; lama_object_foreach_ref
 * walks every object that serializes, and any other JSON gives it 0 or
 * LAMA_EINVAL. A failure means the writer produced text the strict reader
 * refuses, the two disagree, or the reference walk refused or crashed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "object/object.h"
#include "util/buf.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(lama_recipes *r, const json_t *obj, int id_form)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX), again = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *parsed = NULL;
	size_t refs = 0;
	int is_id = -1;

	if (id_form ? lama_object_id_microdata(r, obj, &md) : lama_object_microdata(r, obj, &md))
		return;
	/* what serializes, walks */
	if (!id_form && lama_object_foreach_ref(r, obj, count_ref, &refs)) {
		fprintf(stderr, "foreach_ref refused a valid object: %s\n%s\n", lama_errmsg(), md.data);
		abort();
	}
	if (lama_object_parse(r, md.data, md.len, &parsed, &is_id) || is_id != id_form) {
		fprintf(stderr, "parse refused our own microdata: %s\n%s\n", lama_errmsg(), md.data);
		abort();
	}
	if ((id_form ? lama_object_id_microdata(r, parsed, &again) : lama_object_microdata(r, parsed, &again)) ||
	    again.len != md.len || memcmp(again.data, md.data, md.len))
		abort();
	json_decref(parsed);
	lama_buf_release(&md);
	lama_buf_release(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lama_recipes *r = registry();
	json_t *obj = json_loadb((const char *)data, size, LAMA_JSON_FLAGS, NULL);
	size_t refs = 0;
	int rc;

	if (!obj)
		return 0;
	/* the reference walk takes any JSON: 0 or LAMA_EINVAL, never worse */
	rc = lama_object_foreach_ref(r, obj, count_ref, &refs);
	if (rc && rc != LAMA_EINVAL)
		abort();
	check(r, obj, 0);
	check(r, obj, 1);
	json_decref(obj);
	return 0;
}
