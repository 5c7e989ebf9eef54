/* warchive.c: the archive a worker keeps open between tasks
 * (warchive.h). */
#include "worker/warchive.h"

#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "crypto/crypto.h"
#include "models/models.h"
#include "util/err.h"
#include "util/mem.h"
#include "worker/frame.h"

static struct {
	lama_session *s;
	char dir[LAMA_PATH_MAX];
	uint8_t *keys; /* secure memory, LAMA_WORKER_KEYS_BYTES */
	dev_t dev;
	ino_t ino;
} cache;

int lama_warchive_handle(lama_session *s, struct lama_buf *in)
{
	const char *dir = lama_session_dir(s);
	uint8_t *keys = lama_secure_alloc(LAMA_WORKER_KEYS_BYTES), len[4];
	size_t n = strlen(dir);
	int rc;

	if (!keys)
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	lama_put_u32(len, (uint32_t)n);
	rc = lama_account_worker_keys(s, keys);
	if (!rc)
		rc = lama_buf_add(in, len, 4);
	if (!rc)
		rc = lama_buf_add(in, dir, n);
	if (!rc)
		rc = lama_buf_add(in, keys, LAMA_WORKER_KEYS_BYTES);
	lama_secure_free(keys);
	return rc;
}

void lama_warchive_close(void)
{
	lama_session_logout(cache.s);
	lama_secure_free(cache.keys);
	memset(&cache, 0, sizeof(cache));
}

/* The database file's identity, to notice it was replaced or removed. */
static int file_id(lama_session *s, dev_t *dev, ino_t *ino)
{
	const char *path = sqlite3_db_filename(lama_store_db(lama_session_store(s)), "main");
	struct stat sb;

	if (!path || stat(path, &sb) != 0)
		return -1;
	*dev = sb.st_dev;
	*ino = sb.st_ino;
	return 0;
}

static int still_good(const char *dir, size_t dlen, const uint8_t *keys)
{
	dev_t dev;
	ino_t ino;

	if (!cache.s || strlen(cache.dir) != dlen || memcmp(cache.dir, dir, dlen))
		return 0;
	/* constant time: how much of a wrong key matched shows nowhere */
	if (lama_memcmp_ct(cache.keys, keys, LAMA_WORKER_KEYS_BYTES))
		return 0;
	return !file_id(cache.s, &dev, &ino) && dev == cache.dev && ino == cache.ino;
}

int lama_warchive_read(struct lama_rd *r, struct lama_warchive_ref *h)
{
	int rc;

	memset(h, 0, sizeof(*h));
	h->op = r->op;
	if ((rc = lama_rd_u32(r, &h->dlen, "the user folder's length")))
		return rc;
	if (h->dlen == 0 || h->dlen >= LAMA_PATH_MAX)
		return lama_error(LAMA_EINVAL, "%s: a user folder of %u bytes (1 to %d)", r->op,
				  h->dlen, LAMA_PATH_MAX - 1);
	if ((rc = lama_rd_bytes(r, h->dlen, &h->dir, "the user folder")) ||
	    (rc = lama_rd_bytes(r, LAMA_WORKER_KEYS_BYTES, &h->keys, "the archive keys")))
		return rc;
	if (memchr(h->dir, '\0', h->dlen))
		return lama_error(LAMA_EINVAL, "%s: a NUL byte in the user folder", r->op);
	return 0;
}

int lama_warchive_open(const struct lama_warchive_ref *h, lama_session **s)
{
	int rc;

	*s = NULL;
	if (still_good((const char *)h->dir, h->dlen, h->keys)) {
		*s = cache.s;
		return 0;
	}
	lama_warchive_close();
	if (!(cache.keys = lama_secure_alloc(LAMA_WORKER_KEYS_BYTES)))
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	memcpy(cache.keys, h->keys, LAMA_WORKER_KEYS_BYTES);
	memcpy(cache.dir, h->dir, h->dlen);
	cache.dir[h->dlen] = '\0';
	rc = lama_account_worker_open(cache.dir, cache.keys, &cache.s);
	if (!rc)
		rc = lama_models_rules(cache.s);
	if (!rc && file_id(cache.s, &cache.dev, &cache.ino))
		rc = lama_error(LAMA_EIO, "%s: cannot stat the archive", h->op);
	if (rc) {
		lama_warchive_close();
		return rc;
	}
	*s = cache.s;
	return 0;
}

int lama_warchive_get(struct lama_rd *r, lama_session **s)
{
	struct lama_warchive_ref h;
	int rc;

	*s = NULL;
	if ((rc = lama_warchive_read(r, &h)))
		return rc;
	return lama_warchive_open(&h, s);
}
