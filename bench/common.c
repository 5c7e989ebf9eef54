/* common.c: timing, output and scratch folders for the benchmarks. */
#include "common.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long bench_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

const char *bench_opt(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] == '-' && strcmp(argv[i] + 2, name) == 0)
			return argv[i + 1];
	}
	return def;
}

int bench_flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] == '-' && strcmp(argv[i] + 2, name) == 0)
			return 1;
	}
	return 0;
}

void bench_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void bench_check(int rc, const char *what)
{
	if (rc)
		bench_fail("%s: %s (%s)", what, lama_errmsg(), lama_strerror(rc));
}

void bench_mkdtemp(const char *parent, const char *tag, char *out, size_t n)
{
	if ((size_t)snprintf(out, n, "%s/%s.XXXXXX", parent, tag) >= n)
		bench_fail("scratch path too long");
	if (!mkdtemp(out))
		bench_fail("cannot create a folder in %s: %s", parent, strerror(errno));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void bench_rmtree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void bench_keys(uint8_t enc[32], uint8_t index[32])
{
	for (int i = 0; i < 32; i++) {
		enc[i] = (uint8_t)(0x10 + i);
		index[i] = (uint8_t)(0xa0 + i);
	}
}

void bench_emit(const char *bench, const char *unit, double value, const char *baseline,
		double baseline_value, const char *extra)
{
	printf("{\"bench\": \"%s\", \"unit\": \"%s\", \"value\": %.6g, \"baseline\": \"%s\", ",
	       bench, unit, value, baseline);
	if (baseline_value > 0)
		printf("\"baseline_value\": %.6g, \"ratio\": %.4g", baseline_value,
		       value / baseline_value);
	else
		printf("\"baseline_value\": null, \"ratio\": null");
	if (extra && *extra)
		printf(", %s", extra);
	printf("}\n");
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char *bench_bool(int b)
{
	return b ? "true" : "false";
}
