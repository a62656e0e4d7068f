/* benchkit: see benchkit.h. */
#include "benchkit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The daemons die() cleans up: set by bench_start_daemon. */
static struct hz_daemon *daemons_of_bench[4];

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    for (size_t i = 0; i < sizeof(daemons_of_bench) / sizeof(daemons_of_bench[0]); i++)
        if (daemons_of_bench[i])
            hz_cleanup(daemons_of_bench[i]);
    exit(1);
}

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_start_daemon(struct hz_daemon *d, const char *const *extra,
                        char *log, size_t log_size)
{
    if (!getenv("MMAPIOD") || !*getenv("MMAPIOD"))
        setenv("MMAPIOD", MMAPIOD_BUILD_PATH, 1);
    if (hz_init(d) < 0)
        die("mkdtemp: %s", strerror(errno));
    for (size_t i = 0; i < sizeof(daemons_of_bench) / sizeof(daemons_of_bench[0]); i++)
        if (!daemons_of_bench[i] || daemons_of_bench[i] == d) {
            daemons_of_bench[i] = d;
            break;
        }
    char own_log[300];
    if (!log) {
        log = own_log;
        log_size = sizeof(own_log);
    }
    snprintf(log, log_size, "%s/mmapiod.log", d->dir);
    int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *args[32] = { "--socket", d->sock, "--root", d->root };
    size_t n = 4;
    for (; extra && *extra; extra++) {
        if (n + 1 >= sizeof(args) / sizeof(args[0]))
            die("too many mmapiod arguments");
        args[n++] = *extra;
    }
    args[n] = NULL;
    pid_t pid = hz_spawn(args, -1, lfd);
    if (lfd >= 0)
        close(lfd);
    if (pid < 0)
        die("cannot start %s: %s", getenv("MMAPIOD"), strerror((int)-pid));
    int r = hz_wait_ready(d->sock, pid, HZ_READY_TIMEOUT_MS);
    if (r < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        die("mmapiod did not come up: %s (log: %s)", strerror(-r), log);
    }
    d->pid = pid;
}

void bench_print_load(const char *when, const char *if_unknown)
{
    char buf[128] = "";
    FILE *f = fopen("/proc/loadavg", "re");
    bool got = false;
    if (f) {
        got = fgets(buf, sizeof(buf), f) != NULL;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("load average %s: %s\n", when, got ? buf : if_unknown);
}

bool bench_parse_long(const char *s, long min, long max, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return !errno && !*end && *v >= min && *v <= max;
}

long bench_num(const char *s, long min, long max)
{
    long v;
    if (!bench_parse_long(s, min, max, &v)) {
        fprintf(stderr, "%s: bad number '%s'\n", bench_name, s);
        exit(2);
    }
    return v;
}

/* utime + stime of pid from /proc/PID/stat, in seconds (clock ticks). */
double proc_stat_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) */
    unsigned long ut, st;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU time of every thread of pid, in seconds: the sum of
 * /proc/PID/task/TID/schedstat (nanoseconds on a CPU), or utime + stime
 * from /proc/PID/stat (clock ticks) where schedstat is missing. */
double proc_cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    double total = 0;
    bool any = false;
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char sp[384];
        snprintf(sp, sizeof(sp), "%s/%s/schedstat", path, e->d_name);
        FILE *f = fopen(sp, "re");
        if (!f)
            continue;
        unsigned long long ns;
        if (fscanf(f, "%llu", &ns) == 1) {
            total += (double)ns / 1e9;
            any = true;
        }
        fclose(f);
    }
    if (dir)
        closedir(dir);
    return any ? total : proc_stat_cpu_s(pid);
}

