/* blob.c: BLOB write and read throughput through the store, against a
 * plain file of the same size in the same scratch folder.
 *
 * lama: lama_blob_write_begin, 1 MiB lama_blob_write calls, _end (which
 * commits: WAL, synchronous=FULL); then lama_blob_open and 1 MiB
 * lama_blob_read calls to the end. Plain file: write() in 1 MiB pieces,
 * fsync, close; then read() in 1 MiB pieces. Both reads come from the page
 * cache (the data was just written). MB is 10^6 bytes.
 *
 * Lines: blob.write, blob.read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "crypto/crypto.h"
#include "store/store.h"

#define PIECE ((size_t)1 << 20)

static void fill(uint8_t *piece, size_t i)
{
	uint64_t v = i;

	memcpy(piece, &v, sizeof(v)); /* every MiB differs */
}

static double lama_write(lama_store *st, uint8_t *piece, size_t pieces, lama_hash *h)
{
	lama_blob_writer *w;
	double t0 = bench_now();
	int is_new;

	bench_check(lama_blob_write_begin(st, &w), "lama_blob_write_begin");
	for (size_t i = 0; i < pieces; i++) {
		fill(piece, i);
		bench_check(lama_blob_write(w, piece, PIECE), "lama_blob_write");
	}
	bench_check(lama_blob_write_end(w, h, &is_new), "lama_blob_write_end");
	return bench_now() - t0;
}

static double lama_read(lama_store *st, const lama_hash *h, uint8_t *buf, size_t pieces)
{
	lama_blob_reader *r;
	double t0 = bench_now();
	uint64_t size, total = 0;
	size_t got;

	bench_check(lama_blob_open(st, h, &r, &size), "lama_blob_open");
	do {
		bench_check(lama_blob_read(r, buf, PIECE, &got), "lama_blob_read");
		total += got;
	} while (got);
	lama_blob_close(r);
	if (total != (uint64_t)pieces * PIECE || size != total)
		bench_fail("blob read %llu bytes, expected %zu", (unsigned long long)total,
			   pieces * PIECE);
	return bench_now() - t0;
}

static double file_write(const char *path, uint8_t *piece, size_t pieces)
{
	double t0 = bench_now();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		bench_fail("%s: %s", path, strerror(errno));
	for (size_t i = 0; i < pieces; i++) {
		fill(piece, i);
		if (write(fd, piece, PIECE) != (ssize_t)PIECE)
			bench_fail("write %s: %s", path, strerror(errno));
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		bench_fail("fsync %s: %s", path, strerror(errno));
	return bench_now() - t0;
}

static double file_read(const char *path, uint8_t *buf, size_t pieces)
{
	double t0 = bench_now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t total = 0;
	ssize_t got;

	if (fd < 0)
		bench_fail("%s: %s", path, strerror(errno));
	while ((got = read(fd, buf, PIECE)) > 0)
		total += (uint64_t)got;
	if (got < 0)
		bench_fail("read %s: %s", path, strerror(errno));
	close(fd);
	if (total != (uint64_t)pieces * PIECE)
		bench_fail("file read %llu bytes", (unsigned long long)total);
	return bench_now() - t0;
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	size_t mib = (size_t)strtoul(bench_opt(argc, argv, "blob-mib", "256"), NULL, 10);
	char dir[4096], db[4200], plain[4200], extra[256];
	uint8_t enc[32], idx[32], *piece = malloc(PIECE), *buf = malloc(PIECE);
	double bytes = (double)mib * (double)PIECE, lw, fw, lr, fr;
	lama_store *st;
	lama_hash h;

	if (!piece || !buf)
		bench_fail("out of memory");
	if (mib < 1)
		bench_fail("--blob-mib must be at least 1");
	bench_check(lama_crypto_init(), "crypto init");
	lama_random(piece, PIECE);
	bench_mkdtemp(tmp, "blob", dir, sizeof(dir));
	snprintf(db, sizeof(db), "%s/archive.db", dir);
	snprintf(plain, sizeof(plain), "%s/plain.bin", dir);
	bench_keys(enc, idx);
	bench_check(lama_store_open(&st, db, enc, idx, LAMA_STORE_CREATE), "lama_store_open");
	fprintf(stderr, "blob: %zu MiB in %s\n", mib, dir);

	lw = lama_write(st, piece, mib, &h);
	fw = file_write(plain, piece, mib);
	lr = lama_read(st, &h, buf, mib);
	fr = file_read(plain, buf, mib);

	snprintf(extra, sizeof(extra), "\"bytes\": %.0f, \"piece_bytes\": %zu, \"fsync\": true",
		 bytes, PIECE);
	bench_emit("blob.write", "MB/s", bytes / lw / 1e6, "file.write+fsync", bytes / fw / 1e6,
		   extra);
	snprintf(extra, sizeof(extra), "\"bytes\": %.0f, \"piece_bytes\": %zu, \"cache\": \"warm\"",
		 bytes, PIECE);
	bench_emit("blob.read", "MB/s", bytes / lr / 1e6, "file.read", bytes / fr / 1e6, extra);

	lama_store_close(st);
	bench_rmtree(dir);
	free(piece);
	free(buf);
	return 0;
}
