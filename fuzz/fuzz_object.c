/* fuzz_object.c: libFuzzer target for the serializer against the parser.
 *
 * Input: object JSON in lama's convention. Property: when lama serializes an
 * object (full or ID form), lama_object_parse accepts that microdata and
 * serializing the parsed object gives the same bytes. A failure means the
 * writer produced text the strict reader refuses, or the two disagree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "object/object.h"
#include "util/buf.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lama_recipes *registry(void)
{
	static lama_recipes *r;
	char path[4096];
	const char *dir;
	json_t *all;

	if (r)
		return r;
	if (lama_recipes_new(&r) || lama_recipes_add_builtin(r))
		abort();
	dir = getenv("LAMA_ONE_FORMAT");
	snprintf(path, sizeof(path), "%s/recipes.json", dir ? dir : "../shared/one-format");
	all = json_load_file(path, LAMA_JSON_FLAGS, NULL);
	if (all) {
		if (lama_recipes_add_all(r, all))
			abort();
		json_decref(all);
	}
	return r;
}

static void check(lama_recipes *r, const json_t *obj, int id_form)
{
	struct lama_buf md = LAMA_BUF_INIT(LAMA_BUF_MAX), again = LAMA_BUF_INIT(LAMA_BUF_MAX);
	json_t *parsed = NULL;
	int is_id = -1;

	if (id_form ? lama_object_id_microdata(r, obj, &md) : lama_object_microdata(r, obj, &md))
		return;
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

	if (!obj)
		return 0;
	check(r, obj, 0);
	check(r, obj, 1);
	json_decref(obj);
	return 0;
}
