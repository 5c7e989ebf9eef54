/* fuzz_microdata.c: libFuzzer target for lama_object_parse and
 * lama_object_parse_trusted.
 *
 * Properties: whatever the strict parser accepts is canonical, so
 * serializing the parsed object gives back exactly the input bytes, and
 * the trusted parser gives an equal object for it; any input to the trusted
 * parser gives an object or an error, nothing worse. Anything else (a
 * crash, a sanitizer report, a leak, a differing re-serialization or
 * object) is a bug.
 *
 * Registry: the builtin recipes, plus the test recipes of recipes.json from
 * $LAMA_ONE_FORMAT (default ../shared/one-format) when present, so the seed
 * corpus of TestAllTypes objects reaches every item type. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "object/object.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lama_recipes *r = registry();
	struct lama_buf b = LAMA_BUF_INIT(LAMA_BUF_MAX);
	char type[LAMA_TYPE_MAX];
	json_t *obj = NULL, *trusted = NULL;
	int is_id = 0, t_is_id = -1, rc, trc;
	size_t refs = 0;

	(void)lama_object_peek_type((const char *)data, size, type);
	/* any input: the trusted parser may accept what is not canonical, but
	 * must not crash, leak or read outside the input */
	trc = lama_object_parse_trusted(r, (const char *)data, size, &trusted, &t_is_id);
	if (trc ? trusted != NULL : trusted == NULL)
		abort();
	if (lama_object_parse(r, (const char *)data, size, &obj, &is_id)) {
		json_decref(trusted);
		return 0;
	}
	/* canonical input: both parsers give the same object */
	if (trc || t_is_id != is_id || !json_equal(obj, trusted))
		abort();
	json_decref(trusted);
	rc = is_id ? lama_object_id_microdata(r, obj, &b) : lama_object_microdata(r, obj, &b);
	if (rc || b.len != size || memcmp(b.data, data, size))
		abort();
	/* a full object must also walk: its references are all well formed */
	if (!is_id && lama_object_foreach_ref(r, obj, count_ref, &refs))
		abort();
	lama_buf_release(&b);
	json_decref(obj);
	return 0;
}
