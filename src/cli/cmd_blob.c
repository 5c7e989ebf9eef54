/* cmd_blob.c: lama blob put FILE | blob get HASH. Streams: memory stays
 * flat for any size. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "util/err.h"

#define IO_CHUNK (256 << 10)

int cli_store_file(lama_session *s, const char *path, uint64_t max, const char *what,
		   lama_hash *h, uint64_t *size)
{
	static unsigned char buf[IO_CHUNK];
	lama_blob_writer *w;
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	struct stat st;
	uint64_t total = 0;
	ssize_t n;
	int rc;

	if (fd < 0)
		return lama_error(LAMA_EIO, "cannot open %.200s: %s", path, strerror(errno));
	if (fd > 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		return lama_error(LAMA_EINVAL, "%.200s is not a file", path);
	}
	if (fd > 0 && max && (uint64_t)st.st_size > max) {
		close(fd);
		return lama_error(LAMA_ELIMIT, "the %s is larger than %llu bytes", what,
				  (unsigned long long)max);
	}
	rc = lama_blob_write_begin(lama_session_store(s), &w);
	while (!rc) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = lama_error(LAMA_EIO, "cannot read %.200s: %s", path, strerror(errno));
			lama_blob_write_abort(w);
			break;
		}
		if (n == 0) {
			rc = lama_blob_write_end(w, h, NULL);
			break;
		}
		total += (uint64_t)n;
		if (max && total > max) /* stdin, or a file that grew while read */
			rc = lama_error(LAMA_ELIMIT, "the %s is larger than %llu bytes", what,
					(unsigned long long)max);
		else
			rc = lama_blob_write(w, buf, (size_t)n);
		if (rc)
			lama_blob_write_abort(w);
	}
	if (fd > 0)
		close(fd);
	if (!rc && size)
		*size = total;
	return rc;
}

static int blob_put(lama_session *s, const char *path)
{
	char hex[LAMA_HASH_HEX + 1];
	lama_hash h;
	int rc;

	rc = cli_store_file(s, path, 0, "file", &h, NULL);
	if (!rc) {
		lama_hash_hex(&h, hex);
		printf("%s\n", hex);
	}
	return rc;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return lama_error(LAMA_EIO, "cannot write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int blob_get(lama_session *s, const char *hash, const char *out)
{
	static unsigned char buf[IO_CHUNK];
	char tmp[LAMA_PATH_MAX + 16];
	lama_blob_reader *r;
	lama_hash h;
	size_t got;
	int fd = 1, rc;

	if ((rc = cli_hash_arg(hash, &h)))
		return rc;
	if ((rc = lama_blob_open(lama_session_store(s), &h, &r, NULL)))
		return rc;
	if (out) {
		/* write beside the target and rename at the end, so a corrupt
		 * BLOB never leaves a partial file under the requested name */
		if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", out) >= (int)sizeof(tmp)) {
			lama_blob_close(r);
			return lama_error(LAMA_ELIMIT, "output path too long");
		}
		/* a fresh private name: never another file, never a symlink */
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0) {
			lama_blob_close(r);
			return lama_error(LAMA_EIO, "cannot create %s: %s", tmp, strerror(errno));
		}
	}
	do {
		rc = lama_blob_read(r, buf, sizeof(buf), &got);
		if (!rc && got)
			rc = write_all(fd, buf, got);
	} while (!rc && got);
	lama_blob_close(r);
	if (out) {
		if (!rc && fsync(fd) != 0)
			rc = lama_error(LAMA_EIO, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		if (!rc && rename(tmp, out) != 0)
			rc = lama_error(LAMA_EIO, "cannot create %s: %s", out, strerror(errno));
		if (rc)
			unlink(tmp);
	}
	return rc;
}

int cmd_blob(int argc, char **argv)
{
	lama_session *s;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama blob put FILE           store a file (- for stdin), print its hash\n"
		     "       lama blob get HASH [-o FILE]  write the BLOB to stdout or FILE\n\n"
		     "A BLOB's hash is the SHA-256 of its bytes. Every byte read back is\n"
		     "authenticated and the whole is re-hashed; a damaged BLOB is an error.\n"
		     "With -o FILE the file appears only when all of it checked out; on\n"
		     "stdout the bytes before the damage have already gone out.");
		return EXIT_OK;
	}
	if (argc == 3 && !strcmp(argv[1], "put")) {
		if ((rc = cli_login(&s)))
			return cli_fail(rc);
		rc = blob_put(s, argv[2]);
	} else if ((argc == 3 || (argc == 5 && (!strcmp(argv[3], "-o") || !strcmp(argv[3], "--output")))) &&
		   !strcmp(argv[1], "get")) {
		if ((rc = cli_login(&s)))
			return cli_fail(rc);
		rc = blob_get(s, argv[2], argc == 5 ? argv[4] : NULL);
	} else {
		return cli_usage("usage: lama blob put FILE | lama blob get HASH [-o FILE]");
	}
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}
