/*
 * benchkit: the scaffolding the programs in tests/bench share: dying with
 * the program's name (and the daemon cleaned up), CHECK of an mmapio call,
 * the clock, medians, starting the bench's own mmapiod, the load average
 * line and number options. Each program defines bench_name.
 */
#ifndef MMAPIO_BENCHKIT_H
#define MMAPIO_BENCHKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* The program's name, the prefix of its error messages (defined by it). */
extern const char bench_name[];

/* "<bench_name>: <message>" on stderr, the daemon (if started) cleaned up,
 * exit 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Dies unless expr (an mmapio call) returns MMAPIO_OK. */
#define CHECK(expr)                                                        \
    do {                                                                   \
        int r_ = (expr);                                                   \
        if (r_ != MMAPIO_OK)                                               \
            die("%s: %s", #expr, mmapio_strerror(r_));                     \
    } while (0)

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t now_ns(void);

/* qsort's comparison of doubles. */
int cmp_double(const void *a, const void *b);

/* The median of v[0..n), which it sorts. */
double median(double *v, int n);

/*
 * Starts mmapiod ($MMAPIOD, else MMAPIOD_BUILD_PATH) on a fresh temporary
 * directory into *d, with --socket and --root and then extra (NULL-ended,
 * may be NULL), its output in <dir>/mmapiod.log (whose path goes to log
 * when not NULL); dies if it does not come up. die() cleans up *d from then
 * (up to four daemons a program).
 */
void bench_start_daemon(struct hz_daemon *d, const char *const *extra,
                        char *log, size_t log_size);

/* "load average <when>: <the first line of /proc/loadavg>", or if_unknown
 * in its place. */
void bench_print_load(const char *when, const char *if_unknown);

/* s as a whole base-10 number in [min, max] into *v; false if it is not. */
bool bench_parse_long(const char *s, long min, long max, long *v);

/* s as bench_parse_long reads it, else "<bench_name>: bad number 's'" and
 * exit 2. */
long bench_num(const char *s, long min, long max);

/* utime + stime of pid from /proc/PID/stat, in seconds (clock ticks). */
double proc_stat_cpu_s(pid_t pid);

/* CPU time of every thread of pid, in seconds (schedstat, else stat). */
double proc_cpu_s(pid_t pid);


#endif
