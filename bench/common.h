/* common.h: what every benchmark in bench/ shares.
 *
 * A benchmark is a small program that prints one JSON object per line on
 * stdout (the BRIEF's convention) and its progress and errors on stderr:
 *
 *   {"bench": NAME, "unit": UNIT, "value": X, "baseline": NAME,
 *    "baseline_value": Y, "ratio": X/Y, ...extra members}
 *
 * The baseline is always measured in the same run, in the same process or
 * in a child started by it. Benchmarks exit 0 when they ran, whether or not
 * a target was met ("pass" says that), and 1 when they could not run.
 * Meaning of every line: docs/benchmarks.md. */
#ifndef LAMA_BENCH_COMMON_H
#define LAMA_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on the monotonic clock. */
double bench_now(void);

/* This process's resident set (VmRSS in /proc/self/status) in KiB, or -1. */
long bench_rss_kib(void);

/* Value of option `--name VALUE` in argv, or def. */
const char *bench_opt(int argc, char **argv, const char *name, const char *def);
/* 1 if the flag `--name` is in argv. */
int bench_flag(int argc, char **argv, const char *name);

/* Creates a fresh folder <parent>/<tag>.XXXXXX; path written to out[n].
 * Exits on failure. */
void bench_mkdtemp(const char *parent, const char *tag, char *out, size_t n);
/* Removes a folder and everything in it (errors ignored). */
void bench_rmtree(const char *dir);

/* Prints rc's message on stderr and exits 1 when rc is not 0. */
void bench_check(int rc, const char *what);
/* Prints a message on stderr and exits 1. */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The fixed storage and index keys every benchmark archive uses. */
void bench_keys(uint8_t enc[32], uint8_t index[32]);

/* Prints one result line. A baseline_value <= 0 (not measured) prints
 * null for it and for the ratio. `extra` is further JSON members without a
 * leading comma (e.g. "\"target\": \"ratio >= 0.5\", \"pass\": true"), or
 * NULL. The line is flushed at once. */
void bench_emit(const char *bench, const char *unit, double value, const char *baseline,
		double baseline_value, const char *extra);

/* Median of n values (sorts v in place). */
double bench_median(double *v, size_t n);

/* A JSON boolean. */
const char *bench_bool(int b);

#endif
