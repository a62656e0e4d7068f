/*
 * bench_reconnect: what mmapio_reconnect costs after a kill -9 and a
 * restart by hand (issue 15), beside its floor measured in the same run.
 *
 * A client holds FILES files (half read-write) and ANON anonymous
 * mappings. Each round kills the daemon (SIGKILL), starts it again on the
 * same socket and root, and times mmapio_reconnect, which re-attaches
 * every handle (the anonymous ones come back from the client's memfds,
 * as no fd store runs). The floor, in the same round on a daemon just
 * restarted the same way: a new client opening the same files afresh
 * (each the daemon's first open of it) and creating as many anonymous
 * mappings (mmapio_open_* / mmapio_anon_create: a round trip, fd passing
 * and mmap each). Medians of the rounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchkit.h"

const char bench_name[] = "bench_reconnect";

static struct hz_daemon d;
static long n_files = 1000, n_anon = 100, rounds = 7;

/* Polls the daemon's state file until it records `want` live mappings. */
static void await_recorded(long want)
{
    char path[400], line[600];
    snprintf(path, sizeof(path), "%s/.mmapiod/anon.state", d.root);
    int64_t end = now_ns() + 10 * INT64_C(1000000000);
    while (now_ns() < end) {
        long live = 0;
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f))
            live += !strncmp(line, "live ", 5);
        if (f)
            fclose(f);
        if (live >= want)
            return;
        usleep(2000);
    }
    die("the state file never recorded %ld anonymous mappings", want);
}

static char log_path[512];

/* SIGKILL, then the same daemon again, its output added to the log. */
static void kill_and_restart(void)
{
    int st;
    if (kill(d.pid, SIGKILL) < 0 || hz_wait_exit(d.pid, 10000, &st) < 0)
        die("cannot kill mmapiod");
    d.pid = -1;
    int log = open(log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    const char *args[] = { "--socket", d.sock, "--root", d.root, NULL };
    pid_t pid = hz_spawn(args, log, log);
    if (log >= 0)
        close(log);
    if (pid < 0)
        die("cannot start mmapiod again");
    d.pid = pid; /* die() cleans it up */
    if (hz_wait_ready(d.sock, pid, HZ_READY_TIMEOUT_MS) < 0)
        die("mmapiod did not come back");
}

/* Opens the files, half of them read-write, into m[0..n_files). */
static void open_files(mmapio_client *c, mmapio_map **m)
{
    char name[64];
    for (long i = 0; i < n_files; i++) {
        snprintf(name, sizeof(name), "f%ld", i);
        CHECK((i & 1 ? mmapio_open_rw : mmapio_open_ro)(c, name, &m[i]));
    }
}

/* The floor: a new client's first opens of the files, and as many new
 * anonymous mappings; all dropped again (untimed). Milliseconds. */
static double floor_round(long n)
{
    mmapio_client *c2;
    mmapio_map **fresh = calloc((size_t)n, sizeof(*fresh));
    char name[64];
    if (!fresh)
        die("out of memory");
    CHECK(mmapio_connect(d.sock, &c2));
    int64_t t0 = now_ns();
    open_files(c2, fresh);
    for (long i = 0; i < n_anon; i++) {
        snprintf(name, sizeof(name), "b%ld", i);
        CHECK(mmapio_anon_create(c2, name, 4096, &fresh[n_files + i]));
    }
    double ms = (double)(now_ns() - t0) / 1e6;
    for (long i = 0; i < n; i++)
        CHECK(mmapio_unmap(fresh[i]));
    for (long i = 0; i < n_anon; i++) {
        snprintf(name, sizeof(name), "b%ld", i);
        CHECK(mmapio_anon_delete(c2, name));
    }
    mmapio_disconnect(c2);
    free(fresh);
    return ms;
}

static void usage(void)
{
    printf("usage: bench_reconnect [--files N] [--anon N] [--rounds N]\n"
           "  kill -9 and restart of mmapiod under a client holding N files\n"
           "  (default 1000) and N anonymous mappings (default 100):\n"
           "  mmapio_reconnect against opening them all afresh\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (!strcmp(argv[i], "--files") && i + 1 < argc)
            n_files = bench_num(argv[++i], 1, 100000);
        else if (!strcmp(argv[i], "--anon") && i + 1 < argc)
            n_anon = bench_num(argv[++i], 0, 100000);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = bench_num(argv[++i], 1, 1000);
        else {
            usage();
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    bench_start_daemon(&d, NULL, log_path, sizeof(log_path));
    mmapio_client *c;
    CHECK(mmapio_connect(d.sock, &c));
    long n = n_files + n_anon;
    mmapio_map **m = calloc((size_t)n, sizeof(*m));
    if (!m)
        die("out of memory");
    char name[64];
    for (long i = 0; i < n_files; i++) {
        snprintf(name, sizeof(name), "f%ld", i);
        CHECK(mmapio_create_rw(c, name, 4096, &m[i]));
        CHECK(mmapio_unmap(m[i]));
    }
    for (long i = 0; i < n_anon; i++) {
        snprintf(name, sizeof(name), "a%ld", i);
        CHECK(mmapio_anon_create(c, name, 4096, &m[n_files + i]));
        CHECK(mmapio_unmap(m[n_files + i]));
    }
    open_files(c, m);
    for (long i = 0; i < n_anon; i++) {
        snprintf(name, sizeof(name), "a%ld", i);
        CHECK(mmapio_anon_open(c, name, &m[n_files + i]));
    }
    await_recorded(n_anon);

    double *re = calloc((size_t)rounds, sizeof(double));
    double *fl = calloc((size_t)rounds, sizeof(double));
    if (!re || !fl)
        die("out of memory");
    bench_print_load("before", "unknown");
    for (long r = 0; r < rounds; r++) {
        kill_and_restart();
        fl[r] = floor_round(n);
        kill_and_restart(); /* nothing registered again */
        int64_t t0 = now_ns();
        CHECK(mmapio_reconnect(c));
        re[r] = (double)(now_ns() - t0) / 1e6;
        for (long i = 0; i < n; i++)
            CHECK(mmapio_refresh(m[i])); /* every one came back */
        await_recorded(n_anon);
    }
    bench_print_load("after", "unknown");
    double mr = median(re, (int)rounds), mf = median(fl, (int)rounds);
    printf("mmapio_reconnect of %ld files and %ld anonymous mappings after "
           "kill -9: %.2f ms (median of %ld)\n", n_files, n_anon, mr, rounds);
    printf("  floor, a new client's first opens of the %ld files and %ld "
           "anonymous creations: %.2f ms\n", n_files, n_anon, mf);
    printf("  ratio: %.2f\n", mr / mf);
    for (long i = 0; i < n; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(c);
    free(m);
    free(re);
    free(fl);
    hz_cleanup(&d);
    return 0;
}
