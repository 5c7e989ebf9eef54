/* fuzz_common.h: what both fuzz targets share: the recipe registry (the
 * builtin recipes, plus the test recipes of recipes.json from
 * $LAMA_ONE_FORMAT, default ../shared/one-format, when present) and a
 * reference counter. Included by exactly one .c per fuzz binary. */
#ifndef LAMA_FUZZ_COMMON_H
#define LAMA_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "object/object.h"

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

static int count_ref(void *ctx, const char *itemprop, enum lama_ref_kind kind, const lama_hash *h)
{
	(void)itemprop;
	(void)kind;
	(void)h;
	++*(size_t *)ctx;
	return 0;
}

#endif
