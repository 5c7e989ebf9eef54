/* backup.c: lama backup and lama restore. The file is a 72-byte header,
 * then a secretstream of 64 KiB chunks whose plaintext is a record stream
 * (name, size, bytes) of exactly three files and an end mark
 * (docs/backup.md). */
#include "backup/backup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "backup/backup_int.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

/* the stream is crypto.h's (also the crypto worker's stream ops) */
#define STATE struct lama_stream
#define SS_HEADER LAMA_STREAM_HEADER_BYTES
#define TAG_FINAL LAMA_STREAM_TAG_FINAL
#define TAG_MESSAGE LAMA_STREAM_TAG_MESSAGE
#define CIPHER_CHUNK (LAMA_BACKUP_CHUNK + LAMA_BACKUP_ABYTES)
#define NAME_MAX_BYTES 32 /* of a record's name */
#define META_VERSION 1
#define STALE_AGE 60 /* seconds before an unheld leftover may be removed */
#define SNAPSHOT_STEP 64 /* pages copied per step, between progress calls */

/* The records, in the one order a backup holds them. */
enum { REC_META, REC_ACCOUNT, REC_ARCHIVE, REC_END };
static const char *const rec_names[REC_END] = { "lama-backup.json", "account.json", "archive.db" };

_Static_assert(LAMA_BACKUP_ABYTES == LAMA_STREAM_ABYTES, "ABYTES");
_Static_assert(LAMA_BACKUP_HEADER_BYTES == 48 + SS_HEADER, "header layout");

static void progress(const struct lama_backup_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->fn)
		p->fn(p->ctx, done, total);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n; i-- > 0;)
		v = (v << 8) | p[i];
	return v;
}

static int write_all(int fd, const void *p, size_t n, const char *what)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return lama_error(LAMA_EIO, "cannot write %s: %s", what,
					  w < 0 ? strerror(errno) : "disk full");
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads up to n bytes, fewer only at the end of the file. */
static int read_full(int fd, void *p, size_t n, size_t *got, const char *what)
{
	char *c = p;

	*got = 0;
	while (*got < n) {
		ssize_t r = read(fd, c + *got, n - *got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return lama_error(LAMA_EIO, "cannot read %s: %s", what, strerror(errno));
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

static void fsync_dir_of(const char *path)
{
	char dir[LAMA_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* ---- leftovers of a crash ---- */

/* Removes what a crashed backup or restore left in dir: entries named
 * prefix* (files, or with is_dir folders) that no running lama holds (a
 * backup holds an flock on its copy, a restore a shared one on its
 * folder's .lock) and that are over a minute old, so one just created and
 * not locked yet is left alone. Best effort: errors are ignored. */
static void sweep(const char *dir, const char *prefix, int is_dir)
{
	char path[LAMA_PATH_MAX], lock[LAMA_PATH_MAX + 8];
	time_t now = time(NULL);
	struct dirent *e;
	struct stat sb;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd;

		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path) ||
		    lstat(path, &sb) != 0 || (is_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) ||
		    now - sb.st_mtime < STALE_AGE)
			continue;
		snprintf(lock, sizeof(lock), "%s%s", path, is_dir ? "/.lock" : "");
		fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
			close(fd); /* in use */
			continue;
		}
		if (is_dir)
			lama_account_discard(path);
		else
			unlink(path);
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
}

/* ---- the encrypted stream, writing ---- */

struct writer {
	int fd;
	char tmp[LAMA_PATH_MAX]; /* the file being written, renamed at the end */
	const char *path;
	STATE *st;               /* secure memory: it holds the key */
	uint8_t header[LAMA_BACKUP_HEADER_BYTES];
	uint8_t *plain, *cipher;
	size_t fill;
	uint64_t chunks;
};

/* Encrypts the pending plaintext as one chunk; the first carries the
 * whole header as associated data, the last the FINAL tag. */
static int w_flush(struct writer *w, int final)
{
	size_t clen = w->fill + LAMA_STREAM_ABYTES;

	if (lama_stream_push(w->st, w->cipher, w->plain, w->fill,
			     w->chunks == 0 ? w->header : NULL, w->chunks == 0 ? sizeof(w->header) : 0,
			     final ? TAG_FINAL : TAG_MESSAGE) != 0)
		return lama_error(LAMA_ECRYPTO, "cannot encrypt the backup");
	w->chunks++;
	w->fill = 0;
	return write_all(w->fd, w->cipher, clen, w->tmp);
}

static int w_add(struct writer *w, const void *p, size_t n)
{
	const uint8_t *c = p;
	int rc;

	while (n > 0) {
		size_t k;

		/* a full chunk goes out only when more follows, so the last
		 * chunk, FINAL, is never empty unless the stream is */
		if (w->fill == LAMA_BACKUP_CHUNK && (rc = w_flush(w, 0)))
			return rc;
		k = LAMA_BACKUP_CHUNK - w->fill;
		if (k > n)
			k = n;
		memcpy(w->plain + w->fill, c, k);
		w->fill += k;
		c += k;
		n -= k;
	}
	return 0;
}

static int w_record(struct writer *w, const char *name, uint64_t size)
{
	uint8_t head[1 + NAME_MAX_BYTES + 8];
	size_t len = name ? strlen(name) : 0;

	head[0] = (uint8_t)len;
	if (!name)
		return w_add(w, head, 1); /* the end mark */
	memcpy(head + 1, name, len);
	put_le(head + 1 + len, size, 8);
	return w_add(w, head, 1 + len + 8);
}

/* Creates the temporary file beside path, derives the key and writes the
 * header. */
static int w_open(struct writer *w, const char *path, const char *pw, size_t pwlen,
		  const struct lama_kdf_params *kdf)
{
	uint8_t *key = NULL;
	int rc;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->path = path;
	if (!path || !*path)
		return lama_error(LAMA_EINVAL, "no backup file given");
	if (snprintf(w->tmp, sizeof(w->tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(w->tmp))
		return lama_error(LAMA_ELIMIT, "the backup file's path is too long");
	w->plain = lama_malloc(LAMA_BACKUP_CHUNK);
	w->cipher = lama_malloc(CIPHER_CHUNK);
	w->st = lama_secure_alloc(sizeof(*w->st));
	key = lama_secure_alloc(LAMA_KEY_BYTES);
	if (!w->plain || !w->cipher || !w->st || !key) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(w->header, LAMA_BACKUP_MAGIC, 8);
	put_le(w->header + 8, LAMA_BACKUP_VERSION, 4);
	put_le(w->header + 12, LAMA_BACKUP_CHUNK, 4);
	put_le(w->header + 16, kdf->opslimit, 8);
	put_le(w->header + 24, kdf->memlimit, 8);
	lama_random(w->header + 32, LAMA_SALT_BYTES);
	if ((rc = lama_pwhash(key, pw, pwlen, w->header + 32, kdf)))
		goto out;
	lama_stream_init_push(w->st, w->header + 48, key);
	w->fd = mkostemp(w->tmp, O_CLOEXEC); /* mode 0600 */
	if (w->fd < 0) {
		rc = lama_error(LAMA_EIO, "cannot create %s: %s", w->tmp, strerror(errno));
		w->tmp[0] = '\0';
		goto out;
	}
	rc = write_all(w->fd, w->header, sizeof(w->header), w->tmp);
out:
	lama_secure_free(key);
	return rc;
}

/* The end mark, the FINAL chunk, then the file takes its name. */
static int w_commit(struct writer *w)
{
	int rc;

	if ((rc = w_record(w, NULL, 0)) || (rc = w_flush(w, 1)))
		return rc;
	if (fsync(w->fd) != 0)
		return lama_error(LAMA_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
	close(w->fd);
	w->fd = -1;
	if (rename(w->tmp, w->path) != 0)
		return lama_error(LAMA_EIO, "cannot create %s: %s", w->path, strerror(errno));
	w->tmp[0] = '\0';
	fsync_dir_of(w->path);
	return 0;
}

/* Frees everything; removes the temporary file unless it was committed. */
static void w_release(struct writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp[0])
		unlink(w->tmp);
	lama_secure_free(w->st);
	if (w->plain)
		lama_wipe(w->plain, LAMA_BACKUP_CHUNK);
	lama_free(w->plain);
	lama_free(w->cipher);
	w->plain = w->cipher = NULL;
	w->st = NULL;
	w->fd = -1;
}

int lama_backup__write_raw(const char *path, const char *pw, size_t pwlen,
			   const struct lama_kdf_params *kdf, const void *plain, size_t n)
{
	struct writer w;
	int rc;

	rc = w_open(&w, path, pw, pwlen, kdf);
	if (!rc)
		rc = w_add(&w, plain, n);
	if (!rc)
		rc = w_flush(&w, 1);
	if (!rc && fsync(w.fd) != 0)
		rc = lama_error(LAMA_EIO, "cannot write %s", w.tmp);
	if (!rc && rename(w.tmp, path) != 0)
		rc = lama_error(LAMA_EIO, "cannot create %s: %s", path, strerror(errno));
	if (!rc)
		w.tmp[0] = '\0';
	w_release(&w);
	return rc;
}

/* ---- a consistent copy of the live database ---- */

static int db_fail(sqlite3 *db, const char *what)
{
	return lama_error(LAMA_EIO, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

/* Copies the database at src into the (empty) file dst through a
 * connection of its own, inside one read transaction: in WAL mode the
 * copy is the state of one commit while other connections, in this
 * process or another, keep writing. *size gets the copy's length. */
static int snapshot(const char *src, const char *dst, const struct lama_backup_progress *p,
		    uint64_t *size)
{
	sqlite3 *s = NULL, *d = NULL;
	sqlite3_backup *b = NULL;
	int rc = 0, step, tries = 0, in_tx = 0;
	struct stat sb;

	if (sqlite3_open_v2(src, &s, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		rc = db_fail(s, "cannot open the archive");
		goto out;
	}
	sqlite3_busy_timeout(s, 5000);
	if (sqlite3_exec(s, "BEGIN; SELECT count(*) FROM sqlite_master;", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		rc = db_fail(s, "cannot read the archive");
		goto out;
	}
	in_tx = 1;
	if (sqlite3_open_v2(dst, &d, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(d, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", NULL, NULL, NULL) !=
		    SQLITE_OK) {
		rc = db_fail(d, "cannot create the snapshot");
		goto out;
	}
	b = sqlite3_backup_init(d, "main", s, "main");
	if (!b) {
		rc = db_fail(d, "cannot copy the archive");
		goto out;
	}
	for (;;) {
		step = sqlite3_backup_step(b, SNAPSHOT_STEP);
		if ((step == SQLITE_BUSY || step == SQLITE_LOCKED) && tries++ < 500) {
			sqlite3_sleep(10);
			continue;
		}
		if (step != SQLITE_OK && step != SQLITE_DONE) {
			rc = lama_error(LAMA_EIO, "cannot copy the archive: %s", sqlite3_errstr(step));
			goto out;
		}
		/* page counts are ints in SQLite; both halves are bytes. Called
		 * inside the read transaction, the last time too. */
		{
			uint64_t pages = (uint64_t)sqlite3_backup_pagecount(b);
			uint64_t left = (uint64_t)sqlite3_backup_remaining(b);

			progress(p, (pages - left) * 4096, 2 * pages * 4096);
		}
		if (step == SQLITE_DONE)
			break;
	}
out:
	if (b && sqlite3_backup_finish(b) != SQLITE_OK && !rc)
		rc = db_fail(d, "cannot copy the archive");
	if (in_tx)
		sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
	sqlite3_close_v2(s);
	if (d && sqlite3_close(d) != SQLITE_OK && !rc)
		rc = db_fail(d, "cannot finish the snapshot");
	if (!rc) {
		if (stat(dst, &sb) != 0)
			rc = lama_error(LAMA_EIO, "cannot read the snapshot: %s", strerror(errno));
		else
			*size = (uint64_t)sb.st_size;
	}
	return rc;
}

/* ---- writing a backup ---- */

static int meta_text(const char *name, char **text)
{
	json_t *o = json_pack("{s:i, s:s, s:i}", "version", META_VERSION, "name", name,
			      "store_format", LAMA_STORE_FORMAT);

	*text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return *text ? 0 : lama_error(LAMA_ENOMEM, "out of memory");
}

/* Streams the snapshot file into the backup as the archive record. */
static int add_archive(struct writer *w, const char *snap, uint64_t size,
		       const struct lama_backup_progress *p)
{
	uint64_t done = 0;
	size_t got;
	int fd, rc;

	if ((rc = w_record(w, rec_names[REC_ARCHIVE], size)))
		return rc;
	fd = open(snap, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lama_error(LAMA_EIO, "cannot read the snapshot: %s", strerror(errno));
	while (done < size) {
		size_t want;

		/* straight into the chunk buffer: no copy */
		if (w->fill == LAMA_BACKUP_CHUNK && (rc = w_flush(w, 0)))
			break;
		want = LAMA_BACKUP_CHUNK - w->fill;
		if (want > size - done)
			want = (size_t)(size - done);
		if ((rc = read_full(fd, w->plain + w->fill, want, &got, "the snapshot")))
			break;
		if (got != want) {
			rc = lama_error(LAMA_EIO, "the snapshot changed while it was read");
			break;
		}
		w->fill += got;
		done += got;
		progress(p, size + done, 2 * size);
	}
	close(fd);
	return rc;
}

struct lama_backup_job {
	char dir[LAMA_PATH_MAX]; /* the user's folder */
	char *name;              /* their login name */
};

int lama_backup_prepare(lama_session *s, lama_backup_job **out)
{
	lama_backup_job *j = lama_calloc(1, sizeof(*j));
	int rc;

	*out = NULL;
	if (!j)
		return lama_error(LAMA_ENOMEM, "out of memory");
	snprintf(j->dir, sizeof(j->dir), "%s", lama_session_dir(s));
	if ((rc = lama_session_name(s, &j->name))) {
		lama_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

void lama_backup_job_free(lama_backup_job *j)
{
	if (!j)
		return;
	lama_free(j->name);
	lama_free(j);
}

int lama_backup_run(lama_backup_job *j, const char *path, const char *pw, size_t pwlen,
		    const struct lama_backup_progress *p)
{
	struct lama_buf record = LAMA_BUF_INIT(LAMA_BACKUP_SMALL_MAX);
	struct lama_kdf_params kdf;
	char snap[LAMA_PATH_MAX], db[LAMA_PATH_MAX], *meta = NULL;
	struct writer w;
	uint64_t size = 0;
	int rc, snap_fd = -1;

	memset(&w, 0, sizeof(w));
	w.fd = -1;
	snap[0] = '\0';
	if ((rc = lama_account_export(j->dir, j->name, pw, pwlen, &record, &kdf)))
		goto out;
	if ((rc = meta_text(j->name, &meta)))
		goto out;
	if (snprintf(db, sizeof(db), "%s/archive.db", j->dir) >= (int)sizeof(db) ||
	    snprintf(snap, sizeof(snap), "%s/.backup-XXXXXX", j->dir) >= (int)sizeof(snap)) {
		snap[0] = '\0';
		rc = lama_error(LAMA_ELIMIT, "path too long");
		goto out;
	}
	sweep(j->dir, ".backup-", 0);
	snap_fd = mkostemp(snap, O_CLOEXEC);
	if (snap_fd < 0) {
		rc = lama_error(LAMA_EIO, "cannot create a snapshot in %s: %s", j->dir, strerror(errno));
		snap[0] = '\0';
		goto out;
	}
	/* held until the copy is removed: a sweep leaves it alone */
	flock(snap_fd, LOCK_EX);
	if ((rc = snapshot(db, snap, p, &size)))
		goto out;
	if (size > LAMA_BACKUP_ARCHIVE_MAX) {
		rc = lama_error(LAMA_ELIMIT, "the archive is too large for a backup");
		goto out;
	}
	if ((rc = w_open(&w, path, pw, pwlen, &kdf)))
		goto out;
	rc = w_record(&w, rec_names[REC_META], strlen(meta));
	if (!rc)
		rc = w_add(&w, meta, strlen(meta));
	if (!rc)
		rc = w_record(&w, rec_names[REC_ACCOUNT], record.len);
	if (!rc)
		rc = w_add(&w, record.data, record.len);
	if (!rc)
		rc = add_archive(&w, snap, size, p);
	if (!rc)
		rc = w_commit(&w);
out:
	w_release(&w);
	if (snap[0])
		unlink(snap);
	if (snap_fd >= 0)
		close(snap_fd);
	lama_buf_release(&record);
	free(meta); /* jansson's */
	return rc;
}

int lama_backup_write(lama_session *s, const char *path, const char *pw, size_t pwlen,
		      const struct lama_backup_progress *p)
{
	lama_backup_job *j;
	int rc;

	if ((rc = lama_backup_prepare(s, &j)))
		return rc;
	rc = lama_backup_run(j, path, pw, pwlen, p);
	lama_backup_job_free(j);
	return rc;
}

/* ---- reading a backup ---- */

enum phase { P_LEN, P_NAME, P_SIZE, P_DATA, P_DONE };

struct reader {
	const char *dir;      /* the staged user folder */
	enum phase phase;
	int rec;              /* the record expected next */
	uint8_t namelen;
	char name[NAME_MAX_BYTES + 1];
	size_t got;           /* bytes of the name or size read so far */
	uint8_t sizebuf[8];
	uint64_t left;        /* bytes of the current record still to come */
	struct lama_buf small; /* the meta or account record */
	int out;              /* archive.db being written */
	char *user;           /* from the meta record */
};

/* A name fit to be a file name in one folder; anything else is refused
 * before it is compared, so the message can say why. */
static int check_rec_name(const char *n, size_t len)
{
	if (len == 0)
		return lama_error(LAMA_ECORRUPT, "the backup holds a file without a name");
	for (size_t i = 0; i < len; i++)
		if (n[i] == '/' || (unsigned char)n[i] < 0x21 || (unsigned char)n[i] > 0x7e)
			return lama_error(LAMA_ECORRUPT, "the backup holds a file name that is not allowed");
	if (n[0] == '.' )
		return lama_error(LAMA_ECORRUPT, "the backup holds a file name that is not allowed");
	return 0;
}

static int small_file(const char *dir, const char *name, const void *data, size_t n)
{
	char path[LAMA_PATH_MAX];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return lama_error(LAMA_EIO, "cannot create %s: %s", path, strerror(errno));
	rc = write_all(fd, data, n, path);
	if (!rc && fsync(fd) != 0)
		rc = lama_error(LAMA_EIO, "cannot write %s: %s", path, strerror(errno));
	close(fd);
	return rc;
}

static int meta_parse(struct reader *r)
{
	json_t *o = json_loadb(r->small.data, r->small.len, JSON_REJECT_DUPLICATES, NULL);
	const char *name = json_string_value(json_object_get(o, "name"));
	int rc = 0;

	if (!o || !json_is_object(o) || !name)
		rc = lama_error(LAMA_ECORRUPT, "the backup's description is damaged");
	else if (json_integer_value(json_object_get(o, "version")) != META_VERSION ||
		 json_integer_value(json_object_get(o, "store_format")) > LAMA_STORE_FORMAT)
		rc = lama_error(LAMA_EFORMAT, "the backup was made by a newer lama");
	else if (!(r->user = lama_strdup(name)))
		rc = lama_error(LAMA_ENOMEM, "out of memory");
	json_decref(o);
	return rc;
}

/* A record is complete. */
static int rec_end(struct reader *r)
{
	int rc = 0;

	switch (r->rec) {
	case REC_META:
		rc = meta_parse(r);
		break;
	case REC_ACCOUNT:
		rc = small_file(r->dir, rec_names[REC_ACCOUNT], r->small.data, r->small.len);
		break;
	case REC_ARCHIVE:
		if (fsync(r->out) != 0)
			rc = lama_error(LAMA_EIO, "cannot write the archive: %s", strerror(errno));
		close(r->out);
		r->out = -1;
		break;
	}
	lama_buf_release_wipe(&r->small);
	r->rec++;
	r->phase = P_LEN;
	return rc;
}

/* A record's header is complete: check it and get ready for its bytes. */
static int rec_begin(struct reader *r)
{
	uint64_t max = r->rec == REC_ARCHIVE ? LAMA_BACKUP_ARCHIVE_MAX : LAMA_BACKUP_SMALL_MAX;
	char path[LAMA_PATH_MAX];

	r->left = get_le(r->sizebuf, 8);
	if (r->left > max)
		return lama_error(LAMA_ELIMIT, "the backup's %s is too large (%llu bytes)",
				  rec_names[r->rec], (unsigned long long)r->left);
	r->phase = P_DATA;
	if (r->rec == REC_ARCHIVE) {
		snprintf(path, sizeof(path), "%s/%s", r->dir, rec_names[REC_ARCHIVE]);
		r->out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (r->out < 0)
			return lama_error(LAMA_EIO, "cannot create %s: %s", path, strerror(errno));
	}
	if (r->left == 0)
		return rec_end(r);
	return 0;
}

/* Takes the next n bytes of the decrypted record stream. */
static int feed(struct reader *r, const uint8_t *p, size_t n)
{
	int rc;

	while (n > 0) {
		switch (r->phase) {
		case P_LEN:
			r->namelen = *p++;
			n--;
			r->got = 0;
			if (r->namelen == 0) {
				if (r->rec != REC_END)
					return lama_error(LAMA_ECORRUPT, "the backup ends before its %s",
							  rec_names[r->rec]);
				r->phase = P_DONE;
			} else if (r->rec == REC_END) {
				return lama_error(LAMA_ECORRUPT, "the backup holds more files than lama writes");
			} else if (r->namelen > NAME_MAX_BYTES) {
				return lama_error(LAMA_ELIMIT, "a file name in the backup is too long");
			} else {
				r->phase = P_NAME;
			}
			break;
		case P_NAME:
			r->name[r->got++] = (char)*p++;
			n--;
			if (r->got < r->namelen)
				break;
			r->name[r->got] = '\0';
			if ((rc = check_rec_name(r->name, r->namelen)))
				return rc;
			if (strcmp(r->name, rec_names[r->rec]) != 0)
				return lama_error(LAMA_ECORRUPT, "the backup holds %s where %s belongs",
						  r->name, rec_names[r->rec]);
			r->got = 0;
			r->phase = P_SIZE;
			break;
		case P_SIZE:
			r->sizebuf[r->got++] = *p++;
			n--;
			if (r->got == 8 && (rc = rec_begin(r)))
				return rc;
			break;
		case P_DATA: {
			size_t k = r->left < n ? (size_t)r->left : n;

			if (r->rec == REC_ARCHIVE)
				rc = write_all(r->out, p, k, "the archive");
			else
				rc = lama_buf_add(&r->small, p, k);
			if (rc)
				return rc;
			p += k;
			n -= k;
			r->left -= k;
			if (r->left == 0 && (rc = rec_end(r)))
				return rc;
			break;
		}
		case P_DONE:
			return lama_error(LAMA_ECORRUPT, "the backup holds bytes after its end");
		}
	}
	return 0;
}

/* Decrypts the whole file into the staged folder. */
static int read_backup(int fd, const char *path, struct reader *r, const char *pw, size_t pwlen,
		       const struct lama_backup_progress *p)
{
	uint8_t header[LAMA_BACKUP_HEADER_BYTES], *key = NULL, *plain = NULL, *cipher = NULL;
	uint8_t extra;
	struct lama_kdf_params kdf;
	uint8_t tag = 0;
	uint64_t total = 0, done = 0, chunk = 0;
	struct stat sb;
	STATE *st = NULL;
	size_t got;
	int rc;

	if (fstat(fd, &sb) == 0)
		total = (uint64_t)sb.st_size;
	if ((rc = read_full(fd, header, sizeof(header), &got, path)))
		return rc;
	if (got < sizeof(header) || memcmp(header, LAMA_BACKUP_MAGIC, 8) != 0)
		return lama_error(LAMA_EFORMAT, "%s is not a lama backup file", path);
	if (get_le(header + 8, 4) != LAMA_BACKUP_VERSION)
		return lama_error(LAMA_EFORMAT, "%s is a backup of format %u; this lama reads format %d",
				  path, (unsigned)get_le(header + 8, 4), LAMA_BACKUP_VERSION);
	if (get_le(header + 12, 4) != LAMA_BACKUP_CHUNK)
		return lama_error(LAMA_EFORMAT, "%s: unsupported chunk size", path);
	kdf.opslimit = get_le(header + 16, 8);
	kdf.memlimit = get_le(header + 24, 8);
	/* an edited header must not make the KDF run for hours */
	if (kdf.opslimit > LAMA_KDF_OPSLIMIT_MAX || kdf.memlimit > LAMA_KDF_MEMLIMIT_MAX)
		return lama_error(LAMA_ECORRUPT, "%s: the Argon2id cost in its header is out of bounds",
				  path);
	done = sizeof(header);
	key = lama_secure_alloc(LAMA_KEY_BYTES);
	st = lama_secure_alloc(sizeof(*st));
	plain = lama_malloc(LAMA_BACKUP_CHUNK);
	cipher = lama_malloc(CIPHER_CHUNK);
	if (!key || !st || !plain || !cipher) {
		rc = lama_error(LAMA_ENOMEM, "out of memory");
		goto out;
	}
	rc = lama_pwhash(key, pw, pwlen, header + 32, &kdf);
	if (rc == LAMA_EINVAL)
		rc = lama_error(LAMA_ECORRUPT, "%s: the Argon2id cost in its header is out of bounds",
				path);
	if (rc)
		goto out;
	if (lama_stream_init_pull(st, header + 48, key) != 0) {
		rc = lama_error(LAMA_ECORRUPT, "%s: the backup's header is damaged", path);
		goto out;
	}
	while (tag != TAG_FINAL) {
		if ((rc = read_full(fd, cipher, CIPHER_CHUNK, &got, path)))
			goto out;
		if (got < LAMA_BACKUP_ABYTES) {
			rc = lama_error(LAMA_ECORRUPT, "%s is cut short", path);
			goto out;
		}
		if (lama_stream_pull(st, plain, &tag, cipher, got, chunk == 0 ? header : NULL,
				     chunk == 0 ? sizeof(header) : 0) != 0) {
			rc = chunk == 0 ? lama_error(LAMA_EAUTH, "wrong password, or %s is damaged", path)
					: lama_error(LAMA_ECORRUPT, "%s is damaged (near byte %llu)", path,
						     (unsigned long long)done);
			goto out;
		}
		if (tag != TAG_FINAL && (tag != TAG_MESSAGE || got < CIPHER_CHUNK)) {
			rc = lama_error(LAMA_ECORRUPT, "%s is cut short", path);
			goto out;
		}
		chunk++;
		done += got;
		if ((rc = feed(r, plain, got - LAMA_STREAM_ABYTES)))
			goto out;
		progress(p, done, total > done ? total : done);
	}
	if ((rc = read_full(fd, &extra, 1, &got, path)))
		goto out;
	if (got != 0)
		rc = lama_error(LAMA_ECORRUPT, "%s has bytes after its end", path);
	else if (r->phase != P_DONE)
		rc = lama_error(LAMA_ECORRUPT, "%s is cut short", path);
out:
	lama_secure_free(key);
	lama_secure_free(st);
	if (plain)
		lama_wipe(plain, LAMA_BACKUP_CHUNK);
	lama_free(plain);
	lama_free(cipher);
	return rc;
}

int lama_backup_restore(const char *home, const char *path, const char *pw, size_t pwlen,
			char **name_out, const struct lama_backup_progress *p)
{
	struct reader r;
	char dir[LAMA_PATH_MAX], users[LAMA_PATH_MAX], lock[LAMA_PATH_MAX + 8];
	int fd, rc, staged = 0, lock_fd = -1, had_home = access(home, F_OK) == 0;

	if (name_out)
		*name_out = NULL;
	memset(&r, 0, sizeof(r));
	r.out = -1;
	r.small.max = LAMA_BACKUP_SMALL_MAX;
	users[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lama_error(errno == ENOENT ? LAMA_ENOTFOUND : LAMA_EIO, "cannot read %s: %s",
				  path, strerror(errno));
	if (snprintf(users, sizeof(users), "%s/users", home) >= (int)sizeof(users)) {
		rc = lama_error(LAMA_ELIMIT, "data folder path is too long");
		goto out;
	}
	sweep(users, ".restore-", 1);
	if ((rc = lama_account_stage(home, dir, sizeof(dir))))
		goto out;
	staged = 1;
	/* shared, like a session's: held until the end, so a sweep by
	 * another restore leaves this folder alone */
	if (snprintf(lock, sizeof(lock), "%s/.lock", dir) < (int)sizeof(lock) &&
	    (lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		flock(lock_fd, LOCK_SH);
	r.dir = dir;
	if ((rc = read_backup(fd, path, &r, pw, pwlen, p)))
		goto out;
	if ((rc = lama_account_adopt(home, dir, r.user, pw, pwlen))) {
		if (rc == LAMA_ECORRUPT) {
			char m[400];

			snprintf(m, sizeof(m), "%s", lama_errmsg());
			lama_error(rc, "the account in %s cannot be opened: %s", path, m);
		}
		goto out;
	}
	staged = 0;
	if (name_out) {
		*name_out = r.user;
		r.user = NULL;
	}
out:
	close(fd);
	if (r.out >= 0)
		close(r.out);
	if (staged)
		lama_account_discard(dir);
	if (lock_fd >= 0)
		close(lock_fd);
	if (rc && !had_home && users[0]) {
		/* a refused restore into a new folder leaves no empty folder
		 * (rmdir removes nothing that is not empty) */
		rmdir(users);
		rmdir(home);
	}
	lama_buf_release_wipe(&r.small);
	lama_free(r.user);
	return rc;
}
