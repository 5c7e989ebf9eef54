/* access.c: what a person may receive, against plain reads of the same
 * hashes, and the roots query in a large and in an empty archive.
 *
 * The archive holds --background unrelated messages (default 50,000) and,
 * for one person P: --grants Access grants (default 300; half to P, half
 * to a group P is in) of messages with a BLOB attachment (message,
 * descriptor, BLOB, the sender's ID object), and an IdAccess on an ID with
 * 50 versions.
 *
 * Lines:
 *  access.closure: hashes/s of lama_access_closure(P), against
 *    store.get of the same hashes (reading each object row and probing
 *    each BLOB: the least a closure must do); median of 5.
 *  access.roots: ms of lama_access_roots(P) in that archive, against the
 *    same grants in an archive without the background: the ratio shows
 *    whether the cost follows the grants (about 1) or the archive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "archive/archive.h"
#include "common.h"
#include "crypto/crypto.h"
#include "object/object.h"
#include "store/store.h"
#include "util/err.h"
#include "util/mem.h"

struct world {
	lama_store *st;
	lama_archive *a;
	lama_hash p;
};

static lama_hash put(lama_archive *a, json_t *obj, struct lama_put_info *info)
{
	struct lama_put_info mine;

	if (!info)
		info = &mine;
	if (!obj)
		bench_fail("out of memory");
	bench_check(lama_archive_put(a, obj, 0, info), "put");
	json_decref(obj);
	return info->hash;
}

static const char *hx(const lama_hash *h)
{
	static char buf[4][LAMA_HASH_HEX + 1];
	static int i;

	i = (i + 1) % 4;
	lama_hash_hex(h, buf[i]);
	return buf[i];
}

static void build(struct world *w, const lama_recipes *rec, const char *dir, const char *name,
		  size_t background, size_t grants)
{
	char path[4200], text[64];
	uint8_t enc[32], idx[32];
	struct lama_put_info info;
	lama_hash sender, g, b, d, m, doc;

	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	bench_keys(enc, idx);
	bench_check(lama_store_open(&w->st, path, enc, idx, LAMA_STORE_CREATE), "store open");
	bench_check(lama_archive_new(&w->a, w->st, rec), "archive");
	bench_check(lama_access_init(w->a), "access init");
	put(w->a, json_pack("{s:s, s:s}", "$type$", "Person", "email", "p@x"), &info);
	w->p = info.id_hash;
	put(w->a, json_pack("{s:s, s:s}", "$type$", "Person", "email", "sender@x"), &info);
	sender = info.id_hash;
	bench_check(lama_access_group_set(w->a, "friends", &w->p, 1, &g), "group");

	bench_check(lama_store_begin(w->st), "begin");
	for (size_t i = 0; i < background; i++) {
		snprintf(text, sizeof(text), "background %zu", i);
		put(w->a, json_pack("{s:s, s:s, s:s}", "$type$", "ChatMessage", "text", text,
				    "sender", hx(&sender)), NULL);
		if (i % 1000 == 999) {
			bench_check(lama_store_commit(w->st), "commit");
			bench_check(lama_store_begin(w->st), "begin");
		}
	}
	for (size_t i = 0; i < grants; i++) {
		lama_blob_writer *bw;

		snprintf(text, sizeof(text), "granted %zu", i);
		bench_check(lama_blob_write_begin(w->st, &bw), "blob");
		bench_check(lama_blob_write(bw, text, strlen(text)), "blob");
		bench_check(lama_blob_write_end(bw, &b, NULL), "blob");
		d = put(w->a, json_pack("{s:s, s:s, s:f, s:s, s:f, s:s}", "$type$", "BlobDescriptor",
					"data", hx(&b), "lastModified", 1.0, "name", "f",
					"size", (double)strlen(text), "type", "text/plain"), NULL);
		m = put(w->a, json_pack("{s:s, s:s, s:s, s:[s]}", "$type$", "ChatMessage", "text",
					text, "sender", hx(&sender), "attachments", hx(&d)), NULL);
		if (i % 2)
			bench_check(lama_access_grant(w->a, &m, NULL, 0, &g, 1, NULL), "grant");
		else
			bench_check(lama_access_grant(w->a, &m, &w->p, 1, NULL, 0, NULL), "grant");
	}
	for (int v = 0; v < 50; v++) {
		snprintf(text, sizeof(text), "version %d", v);
		put(w->a, json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", "doc@x", "name",
				    text), &info);
	}
	doc = info.id_hash;
	bench_check(lama_access_grant_id(w->a, &doc, &w->p, 1, NULL, 0, NULL), "grant id");
	bench_check(lama_store_commit(w->st), "commit");
}

static void world_free(struct world *w)
{
	lama_archive_free(w->a);
	lama_store_close(w->st);
}

struct hashes {
	lama_hash *h;
	int *blob;
	size_t n, cap;
};

static int collect(void *ctx, const lama_hash *h, enum lama_access_kind kind)
{
	struct hashes *c = ctx;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->h = realloc(c->h, c->cap * sizeof(lama_hash));
		c->blob = realloc(c->blob, c->cap * sizeof(int));
		if (!c->h || !c->blob)
			bench_fail("out of memory");
	}
	c->h[c->n] = *h;
	c->blob[c->n++] = kind == LAMA_ACCESS_BLOB;
	return 0;
}

static int count_root(void *ctx, const struct lama_access_root *r)
{
	(void)r;
	++*(size_t *)ctx;
	return 0;
}

static double roots_ms(struct world *w, size_t *nroots)
{
	double t[5];

	for (int k = 0; k < 5; k++) {
		double t0 = bench_now();

		*nroots = 0;
		bench_check(lama_access_roots(w->a, &w->p, count_root, nroots, NULL), "roots");
		t[k] = (bench_now() - t0) * 1000.0;
	}
	return bench_median(t, 5);
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	size_t background = (size_t)strtoul(bench_opt(argc, argv, "background", "50000"), NULL, 10);
	size_t grants = (size_t)strtoul(bench_opt(argc, argv, "grants", "300"), NULL, 10);
	struct world big, small;
	struct lama_buf buf = LAMA_BUF_INIT(LAMA_BUF_MAX);
	lama_recipes *rec;
	char dir[4096], extra[256];
	double tc[5], tg[5], rb, rs;
	size_t nb = 0, ns = 0;
	struct hashes c = { 0 };

	bench_check(lama_crypto_init(), "crypto init");
	bench_check(lama_recipes_new(&rec), "recipes");
	bench_check(lama_recipes_add_builtin(rec), "recipes");
	bench_mkdtemp(tmp, "access", dir, sizeof(dir));
	fprintf(stderr, "access: %zu background messages, %zu grants in %s\n", background, grants,
		dir);
	build(&big, rec, dir, "big", background, grants);
	build(&small, rec, dir, "small", 0, grants);

	for (int k = 0; k < 5; k++) {
		double t0;

		c.n = 0;
		t0 = bench_now();
		bench_check(lama_access_closure(big.a, &big.p, collect, &c, NULL), "closure");
		tc[k] = bench_now() - t0;
		t0 = bench_now();
		for (size_t i = 0; i < c.n; i++) {
			if (c.blob[i]) {
				if (lama_store_has(big.st, &c.h[i]) != 1)
					bench_fail("a BLOB went missing");
				continue;
			}
			lama_buf_truncate(&buf, 0);
			bench_check(lama_store_get(big.st, &c.h[i], NULL, &buf), "get");
		}
		tg[k] = bench_now() - t0;
	}
	double rc = (double)c.n / bench_median(tc, 5), rg = (double)c.n / bench_median(tg, 5);
	snprintf(extra, sizeof(extra), "\"closure\": %zu, \"background\": %zu", c.n, background);
	bench_emit("access.closure", "hashes/s", rc, "store.get", rg, extra);

	rb = roots_ms(&big, &nb);
	rs = roots_ms(&small, &ns);
	if (nb != ns)
		bench_fail("roots differ: %zu and %zu", nb, ns);
	snprintf(extra, sizeof(extra), "\"roots\": %zu, \"background\": %zu", nb, background);
	bench_emit("access.roots", "ms", rb, "access.roots.empty_archive", rs, extra);

	lama_buf_release(&buf);
	free(c.h);
	free(c.blob);
	world_free(&big);
	world_free(&small);
	lama_recipes_free(rec);
	bench_rmtree(dir);
	return 0;
}
