/* archive_model.h: what a merge of concurrent TestAllTypes versions must
 * give, computed independently of src/archive/merge.c:
 *   registers: the value of the latest writer of the field, where a branch
 *     writes a field when a version on it holds a value different from the
 *     version before; by creation time, a tie going to the larger value
 *     text (JSON as JavaScript writes it, "" for an absent field); no
 *     writer: the base value;
 *   sets: an item is present iff it is in no base and in some branch's
 *     last version, or in the base and in every branch's last version.
 * Include after archive_test.h. */
#ifndef LAMA_ARCHIVE_MODEL_H
#define LAMA_ARCHIVE_MODEL_H

#define BRANCH_MAX 4

/* One branch after the common base: versions in order, each after the
 * one before (the first after the base). */
struct branch {
	int n;
	json_t *obj[BRANCH_MAX]; /* borrowed */
	double time[BRANCH_MAX];
};

static const char *const tat_registers[] = {
	"str", "strRe", "int", "num", "bool", "strf", "refObj", "refId", "refClob", "refBlob",
	"map", "intKeyMap", "bag", "intBag", "arr", "obj", "arrObj", "mapOfBag",
};
static const char *const tat_sets[] = { "set", "setOfArr" };

static inline int model_same(const json_t *x, const json_t *y)
{
	char *a = jtext(x), *b = jtext(y);
	int same = !strcmp(a, b);

	free(a);
	free(b);
	return same;
}

/* 1 if the $set value v holds an item with JSON text t. */
static inline int model_has(const json_t *v, const char *t)
{
	json_t *items = json_object_get(v, "$set"), *it;
	size_t i;

	json_array_foreach(items, i, it) {
		char *s = jtext(it);
		int eq = !strcmp(s, t);

		free(s);
		if (eq)
			return 1;
	}
	return 0;
}

/* The expected merge (a new object). */
static inline json_t *model_merge(const json_t *base, double t0, const struct branch *b, int k)
{
	json_t *out = json_pack("{s:O, s:O, s:O}", "$type$", json_object_get(base, "$type$"), "id",
				json_object_get(base, "id"), "version", json_object_get(base, "version"));

	assert_non_null(out);
	for (size_t f = 0; f < sizeof(tat_registers) / sizeof(tat_registers[0]); f++) {
		const char *name = tat_registers[f];
		json_t *best = json_object_get(base, name);
		double best_t = t0;
		char *best_text = jtext(best);

		for (int i = 0; i < k; i++) {
			const json_t *prev = base;
			double t = t0;
			json_t *v;
			char *text;

			for (int j = 0; j < b[i].n; j++) {
				if (!model_same(json_object_get(prev, name), json_object_get(b[i].obj[j], name)))
					t = b[i].time[j];
				prev = b[i].obj[j];
			}
			v = json_object_get(prev, name);
			text = jtext(v);
			if (t > best_t || (t == best_t && strcmp(text, best_text) > 0)) {
				best = v;
				best_t = t;
				free(best_text);
				best_text = text;
			} else {
				free(text);
			}
		}
		if (best)
			json_object_set(out, name, best);
		free(best_text);
	}
	for (size_t f = 0; f < sizeof(tat_sets) / sizeof(tat_sets[0]); f++) {
		const char *name = tat_sets[f];
		json_t *bv = json_object_get(base, name), *items = json_array(), *seen = json_object();
		int present = 0;

		for (int i = 0; i < k; i++) {
			json_t *v = json_object_get(b[i].obj[b[i].n - 1], name), *it;
			size_t j;

			present |= v != NULL;
			json_array_foreach(json_object_get(v, "$set"), j, it) {
				char *t = jtext(it);
				int keep;

				if (json_object_get(seen, t)) {
					free(t);
					continue;
				}
				json_object_set_new(seen, t, json_true());
				keep = !model_has(bv, t);
				if (!keep) {
					keep = 1;
					for (int m = 0; m < k; m++)
						keep &= model_has(json_object_get(b[m].obj[b[m].n - 1], name), t);
				}
				if (keep)
					json_array_append(items, it);
				free(t);
			}
		}
		if (present)
			json_object_set_new(out, name, json_pack("{s:O}", "$set", items));
		json_decref(items);
		json_decref(seen);
	}
	return out;
}

#endif
