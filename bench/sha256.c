/* sha256.c: lama_sha256 throughput against `openssl speed -evp sha256`,
 * run as a child process in the same run.
 *
 * lama hashes a 64 MiB buffer in blocks of 16 KiB (openssl speed's block
 * size here) and of 1 MiB, one lama_sha256 call per block, for about a
 * second per size, split in two halves around the openssl run so that both
 * see the same machine. MB is 10^6 bytes, as openssl prints it.
 *
 * Lines: sha256.16k, sha256.1m. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "util/hash.h"

#define BUF_BYTES ((size_t)64 << 20)

static volatile uint8_t sink;

/* Hashes buf in blocks of `block` bytes for at least `seconds`; returns
 * bytes per second. */
static double lama_rate(const uint8_t *buf, size_t block, double seconds)
{
	double t0 = bench_now(), t;
	size_t bytes = 0;
	lama_hash h;

	do {
		for (size_t off = 0; off + block <= BUF_BYTES; off += block) {
			lama_sha256(buf + off, block, &h);
			sink ^= h.b[0];
		}
		bytes += BUF_BYTES / block * block;
		t = bench_now() - t0;
	} while (t < seconds);
	return (double)bytes / t;
}

/* Runs openssl speed for one block size; bytes per second, or 0 if it
 * could not be run or read. openssl prints "sha256  1719782.97k" in
 * thousands of bytes per second. */
static double openssl_rate(size_t block)
{
	char cmd[160], line[512];
	double rate = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "openssl speed -evp sha256 -bytes %zu -seconds 2 2>/dev/null",
		 block);
	p = popen(cmd, "r");
	if (!p)
		return 0;
	while (fgets(line, sizeof(line), p)) {
		char name[64];
		double k;

		if (sscanf(line, "%63s %lfk", name, &k) == 2 &&
		    (strcmp(name, "sha256") == 0 || strcmp(name, "SHA256") == 0))
			rate = k * 1000;
	}
	if (pclose(p) != 0)
		return 0;
	return rate;
}

int main(int argc, char **argv)
{
	static const size_t blocks[] = { (size_t)16 << 10, (size_t)1 << 20 };
	static const char *const names[] = { "sha256.16k", "sha256.1m" };
	uint8_t *buf = malloc(BUF_BYTES);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)argc;
	(void)argv;
	if (!buf)
		bench_fail("out of memory");
	for (size_t i = 0; i < BUF_BYTES; i += 8) { /* splitmix-ish filler */
		x += 0x9e3779b97f4a7c15ull;
		memcpy(buf + i, &x, 8);
	}
	for (size_t i = 0; i < 2; i++) {
		double a, b, o, lama;
		char extra[256];

		a = lama_rate(buf, blocks[i], 0.5);
		o = openssl_rate(blocks[i]);
		b = lama_rate(buf, blocks[i], 0.5);
		lama = (a + b) / 2 / 1e6;
		o /= 1e6;
		snprintf(extra, sizeof(extra),
			 "\"target\": \"ratio >= 0.9\", \"pass\": %s, \"block_bytes\": %zu",
			 o > 0 ? bench_bool(lama / o >= 0.9) : "null", blocks[i]);
		if (o <= 0)
			fprintf(stderr, "sha256: could not run `openssl speed`\n");
		bench_emit(names[i], "MB/s", lama, "openssl speed -evp sha256", o, extra);
	}
	free(buf);
	return 0;
}
