/*
 * test_connect: the connection as the library's user sees it: the socket
 * path from $MMAPIO_SOCKET or the default, ping, a daemon that is not
 * there or goes away (errors, never SIGPIPE; mappings stay usable), one
 * client shared by several threads, round trips (one blocking recv each)
 * beside a dispatch sleeping on the socket and under a rain of signals;
 * a ping's system calls, counted under ptrace: one send and one recv.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(connect, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

Test(connect, explicit_path_and_ping)
{
    mmapio_client *c = hz_client();
    hz_assert_ok(mmapio_ping(c));
    cr_assert_geq(mmapio_client_fd(c), 0);
    mmapio_disconnect(c);
}

Test(connect, null_path_uses_env)
{
    mmapio_client *c = NULL;
    cr_assert_eq(setenv("MMAPIO_SOCKET", hz.sock, 1), 0);
    hz_assert_ok(mmapio_connect(NULL, &c));
    hz_assert_ok(mmapio_ping(c));
    mmapio_disconnect(c);

    /* the variable is really what is used */
    char bogus[300];
    snprintf(bogus, sizeof(bogus), "%s/elsewhere.sock", hz.dir);
    cr_assert_eq(setenv("MMAPIO_SOCKET", bogus, 1), 0);
    c = (mmapio_client *)0x1;
    int r = mmapio_connect(NULL, &c);
    cr_assert(r == MMAPIO_E_DISCONNECTED || r == MMAPIO_E_IO,
              "connect to a missing socket: %d (%s)", r, mmapio_strerror(r));
    cr_assert_eq(c, (mmapio_client *)0x1, "output written on failure");
}

Test(connect, no_daemon)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/nobody.sock", hz.dir);
    mmapio_client *c = (mmapio_client *)0x1;
    int r = mmapio_connect(path, &c);
    cr_assert(r == MMAPIO_E_DISCONNECTED || r == MMAPIO_E_IO, "got %d (%s)",
              r, mmapio_strerror(r));
    cr_assert_eq(c, (mmapio_client *)0x1);
}

Test(connect, default_socket_path)
{
    char buf[512];
    cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1), 0);
    hz_assert_ok(mmapio_default_socket_path(buf, sizeof(buf)));
    cr_assert_str_eq(buf, "/run/user/4242/mmapio/mmapiod.sock");

    cr_assert_eq(unsetenv("XDG_RUNTIME_DIR"), 0);
    hz_assert_ok(mmapio_default_socket_path(buf, sizeof(buf)));
    char want[64];
    if (getuid() == 0)
        snprintf(want, sizeof(want), "/run/mmapio/mmapiod.sock");
    else
        snprintf(want, sizeof(want), "/tmp/mmapio-%u/mmapiod.sock",
                 (unsigned)getuid());
    cr_assert_str_eq(buf, want);

    memset(buf, 'Z', sizeof(buf));
    hz_assert_ret(mmapio_default_socket_path(buf, 5),
                  MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(buf[5], 'Z', "wrote past the buffer");
}

Test(connect, null_is_safe)
{
    mmapio_disconnect(NULL);
    cr_assert_lt(mmapio_ping(NULL), 0);
    cr_assert_lt(mmapio_connect(hz.sock, NULL), 0);
    mmapio_unmap(NULL);
}

Test(connect, daemon_gone)
{
    /* SIGPIPE at its default action: a write to the dead daemon's socket
     * that is not MSG_NOSIGNAL would kill this test. */
    signal(SIGPIPE, SIG_DFL);
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "survivor", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "before", 6));

    int st = hz_stop(&hz);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    for (int i = 0; i < 3; i++)
        cr_assert_eq(mmapio_ping(c), MMAPIO_E_DISCONNECTED, "ping #%d", i);
    mmapio_map *m2 = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_open(c, "survivor", &m2), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_create_rw(c, "f", 4096, &m2), MMAPIO_E_DISCONNECTED);
    cr_assert_eq(m2, (mmapio_map *)0x1);

    /* the mapping already made is still ours */
    char buf[6];
    hz_assert_ok(mmapio_read_into(m, 0, buf, 6));
    cr_assert_eq(memcmp(buf, "before", 6), 0);
    hz_assert_ok(mmapio_update_region(m, 6, "after", 5));
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(m) + 6, "after", 5), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

struct pinger {
    mmapio_client *c;
    int fails;
};

static void *ping_loop(void *arg)
{
    struct pinger *p = arg;
    for (int i = 0; i < 300; i++)
        if (mmapio_ping(p->c) != MMAPIO_OK)
            p->fails++;
    return NULL;
}

Test(connect, one_client_many_threads)
{
    enum { T = 6 };
    mmapio_client *c = hz_client();
    pthread_t th[T];
    struct pinger p[T];
    for (int i = 0; i < T; i++) {
        p[i].c = c;
        p[i].fails = 0;
        cr_assert_eq(pthread_create(&th[i], NULL, ping_loop, &p[i]), 0);
    }
    /* and opens interleaved with the pings */
    for (int i = 0; i < 50; i++) {
        mmapio_map *m;
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
        cr_assert_str_eq(mmapio_path(m), name);
        mmapio_unmap(m);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(p[i].fails, 0, "thread %d: %d pings failed", i,
                     p[i].fails);
    }
    mmapio_disconnect(c);
}

struct dispatcher {
    mmapio_client *c;
    atomic_bool stop;
    int errors;
};

static void *dispatch_loop(void *arg)
{
    struct dispatcher *d = arg;
    while (!atomic_load(&d->stop))
        if (mmapio_client_dispatch(d->c, 20) < 0)
            d->errors++;
    return NULL;
}

static void on_alarm(int sig)
{
    (void)sig;
}

Test(connect, round_trips_beside_dispatch_and_signals)
{
    mmapio_client *c = hz_client();
    struct dispatcher d = { .c = c, .errors = 0 };
    atomic_init(&d.stop, false);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, dispatch_loop, &d), 0);

    /* No SA_RESTART: every signal that lands in a wait makes it EINTR. */
    struct sigaction sa = { .sa_handler = on_alarm };
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = { { 0, 200 }, { 0, 200 } };
    cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    for (int i = 0; i < 3000; i++) {
        int r = mmapio_ping(c);
        cr_assert_eq(r, MMAPIO_OK, "ping %d: %s", i, mmapio_last_error());
    }
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "rain", 4096, &m));
    mmapio_unmap(m);
    it = (struct itimerval){ { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &it, NULL);

    atomic_store(&d.stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(d.errors, 0, "dispatch failed %d times", d.errors);
    mmapio_disconnect(c);
}

Test(connect, many_clients)
{
    enum { N = 100 };
    mmapio_client *c[N];
    for (int i = 0; i < N; i++)
        c[i] = hz_client();
    for (int i = 0; i < N; i++)
        cr_assert_eq(mmapio_ping(c[i]), MMAPIO_OK, "client %d", i);
    for (int i = 0; i < N; i++)
        mmapio_disconnect(c[i]);
}

/* fds of this process that are open now, as a bit set (fd < 1024). */
static void open_fds(uint8_t set[1024])
{
    memset(set, 0, 1024);
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            set[fd] = 1;
}

Test(connect, library_fds_are_cloexec)
{
    static uint8_t before[1024], after[1024];
    open_fds(before);
    mmapio_client *c = hz_client();
    mmapio_map *m[4];
    hz_assert_ok(mmapio_create_rw(c, "f", 4096, &m[0]));
    hz_assert_ok(mmapio_open_ro(c, "f", &m[1]));
    hz_assert_ok(mmapio_open_cow(c, "f", &m[2]));
    hz_assert_ok(mmapio_anon_create(c, "a", 4096, &m[3]));
    open_fds(after);
    int n_new = 0;
    for (int fd = 0; fd < 1024; fd++) {
        if (!after[fd] || before[fd])
            continue;
        n_new++;
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC,
                  "fd %d made by the library is not close-on-exec", fd);
    }
    cr_assert_geq(n_new, 1, "the connection has no fd?");
    for (int i = 0; i < 4; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(c);
    /* and everything is given back */
    open_fds(after);
    for (int fd = 0; fd < 1024; fd++)
        cr_assert(!after[fd] || before[fd], "fd %d left open", fd);
}

/* A ping is one send and one blocking recv, nothing else (no poll, no
 * second recv): a child pings PINGS times between two SIGSTOPs while we
 * count its system calls under ptrace (PTRACE_GET_SYSCALL_INFO). */
enum { PINGS = 1000 };

/* The head of the kernel's struct ptrace_syscall_info (glibc 2.36 has
 * the request, not the struct); op 1 is a system call's entry. */
struct syscall_entry {
    uint8_t op;
    uint8_t pad[3];
    uint32_t arch;
    uint64_t ip, sp;
    uint64_t nr, args[6];
};
#define SYSCALL_INFO_ENTRY 1

/* Under valgrind (scripts/test's pass, which sets MMAPIOD_WRAPPER too)
 * its own system calls would be counted. */
static bool under_a_wrapper(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return getenv("MMAPIOD_WRAPPER") || (pre && strstr(pre, "vgpreload"));
}

static void __attribute__((noreturn)) pinger(void)
{
    mmapio_client *c = NULL;
    if (mmapio_connect(hz.sock, &c) != MMAPIO_OK || mmapio_ping(c))
        _exit(50);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
        _exit(51);
    raise(SIGSTOP);
    int bad = 0;
    for (int i = 0; i < PINGS; i++)
        bad |= mmapio_ping(c) != MMAPIO_OK;
    raise(SIGSTOP);
    _exit(bad ? 52 : 0);
}

Test(connect, ping_is_one_send_one_recv)
{
    if (under_a_wrapper())
        cr_skip_test("run under a wrapper (its system calls count too)");
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        pinger();
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 51)
        cr_skip_test("ptrace is not allowed here");
    cr_assert(WIFSTOPPED(st), "pinger: status 0x%x", (unsigned)st);
    cr_assert_eq(ptrace(PTRACE_SETOPTIONS, pid, NULL,
                        (void *)(long)PTRACE_O_TRACESYSGOOD), 0);
    long sends = 0, recvs = 0, others = 0, first_other = -1;
    for (;;) {
        cr_assert_eq(ptrace(PTRACE_SYSCALL, pid, NULL, NULL), 0);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP)
            break; /* the second stop: the pings are done */
        cr_assert(WIFSTOPPED(st) && WSTOPSIG(st) == (SIGTRAP | 0x80),
                  "pinger: status 0x%x", (unsigned)st);
        struct syscall_entry si;
        long n = ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof(si), &si);
        if (n < 0 && errno == EIO) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_skip_test("no PTRACE_GET_SYSCALL_INFO (Linux < 5.3)");
        }
        cr_assert_gt(n, 0);
        if (si.op != SYSCALL_INFO_ENTRY)
            continue;
        long nr = (long)si.nr;
        if (nr == SYS_sendto || nr == SYS_sendmsg)
            sends++;
        else if (nr == SYS_recvfrom || nr == SYS_recvmsg)
            recvs++;
        else if (others++ == 0)
            first_other = nr;
    }
    cr_assert_eq(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pinger: status 0x%x",
              (unsigned)st);
    cr_assert_eq(sends, PINGS, "%ld sends for %d pings", sends, PINGS);
    cr_assert_eq(recvs, PINGS, "%ld recvs for %d pings", recvs, PINGS);
    /* raise() on the way to the second stop: a few, not one a ping */
    cr_assert_lt(others, 8, "%ld other system calls (the first: %ld)", others,
                 first_other);
}

/* What the daemon's loop (its main thread, traced) asks of the kernel
 * while a child connects, runs `work` once untraced (warming up), then
 * again traced; each number in nrs[0..n) counts into counts[] (the last
 * slot counts the others, *first_other the first of them). Skips where
 * ptrace is not allowed. */
static void trace_daemon(int (*work)(mmapio_client *), const long *nrs,
                         size_t n, long *counts, long *first_other)
{
    int go[2], ready[2];
    cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        mmapio_client *c = NULL;
        char x = 0;
        if (mmapio_connect(hz.sock, &c) != MMAPIO_OK || work(c) ||
            write(ready[1], &x, 1) != 1 || read(go[0], &x, 1) != 1)
            _exit(50);
        _exit(work(c) ? 52 : 0);
    }
    char x;
    cr_assert_eq(read(ready[0], &x, 1), 1);
    pid_t d = hz.pid;
    if (ptrace(PTRACE_SEIZE, d, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_skip_test("ptrace is not allowed here");
    }
    int st;
    cr_assert_eq(ptrace(PTRACE_INTERRUPT, d, NULL, NULL), 0);
    cr_assert_eq(waitpid(d, &st, __WALL), d);
    cr_assert_eq(write(go[1], &x, 1), 1);
    memset(counts, 0, (n + 1) * sizeof(*counts));
    *first_other = -1;
    for (;;) {
        cr_assert_eq(ptrace(PTRACE_SYSCALL, d, NULL, NULL), 0);
        pid_t w = waitpid(-1, &st, __WALL);
        if (w == pid)
            break; /* the client is done */
        cr_assert_eq(w, d);
        if (!WIFSTOPPED(st) || WSTOPSIG(st) != (SIGTRAP | 0x80))
            continue; /* a group stop or a signal: not a system call */
        struct syscall_entry si;
        cr_assert_gt(ptrace(PTRACE_GET_SYSCALL_INFO, d, (void *)sizeof(si), &si),
                     0);
        if (si.op != SYSCALL_INFO_ENTRY)
            continue;
        size_t i = 0;
        while (i < n && nrs[i] != (long)si.nr)
            i++;
        if (i == n && counts[n] == 0)
            *first_other = (long)si.nr;
        counts[i]++;
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client: status 0x%x",
              (unsigned)st);
    cr_assert_eq(ptrace(PTRACE_INTERRUPT, d, NULL, NULL), 0);
    cr_assert_eq(waitpid(d, &st, __WALL), d);
    cr_assert_eq(ptrace(PTRACE_DETACH, d, NULL, NULL), 0);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    cr_assert(hz_alive(&hz), "the daemon died");
}

static int pings(mmapio_client *c)
{
    for (int i = 0; i < PINGS; i++)
        if (mmapio_ping(c) != MMAPIO_OK)
            return -1;
    return 0;
}

/* The daemon's side of it: while a client pings PINGS times, the loop's
 * thread reads each request once (no read that finds nothing) and sends
 * each reply once, with one epoll_wait a ping between (and a few to
 * spare: a timer may wake the loop). */
Test(connect, ping_costs_the_daemon_one_recv_one_send)
{
    if (under_a_wrapper())
        cr_skip_test("run under a wrapper (its system calls count too)");
    const long nrs[] = { SYS_sendto, SYS_sendmsg, SYS_recvfrom, SYS_recvmsg,
                         SYS_epoll_wait, SYS_epoll_pwait };
    long k[7], first_other;
    trace_daemon(pings, nrs, 6, k, &first_other);
    long sends = k[0] + k[1], recvs = k[2] + k[3], waits = k[4] + k[5];
    /* the client's hang-up may be read before we heard it exit */
    cr_assert(sends == PINGS, "%ld sends for %d pings", sends, PINGS);
    cr_assert(recvs >= PINGS && recvs <= PINGS + 1, "%ld recvs for %d pings",
              recvs, PINGS);
    cr_assert_leq(waits, PINGS + 10, "%ld epoll_waits for %d pings", waits,
                  PINGS);
    cr_assert_lt(k[6], 20, "%ld other system calls (the first: %ld)", k[6],
                 first_other);
}

enum { CYCLES = 500 };

static int open_cycles(mmapio_client *c)
{
    static bool made; /* the first (untraced) time */
    mmapio_map *m;
    if (!made && mmapio_create_rw(c, "cycle.dat", 65536, &m) == MMAPIO_OK)
        mmapio_unmap(m);
    made = true;
    for (int i = 0; i < CYCLES; i++) {
        if (mmapio_open_ro(c, "cycle.dat", &m) != MMAPIO_OK)
            return -1;
        (void)*(const volatile char *)mmapio_as_ptr(m);
        mmapio_unmap(m);
    }
    return 0;
}

/* An open_ro of a file the daemon keeps (open cache) and its unmap cost
 * the daemon's loop one read of the request, one open of the path as the
 * caller (the access check, and the file it is now) with one fstat, one
 * send of the reply with the fd and its close, and one epoll_wait: the
 * release rides in the write ring and asks for no fence (membarrier), as
 * no write can have grown it. Every max_queued_fds / 2 (8) fds sent, one
 * ioctl (SIOCOUTQ) says the client received them (conn.h). */
Test(connect, open_cycle_costs_the_daemon_six_system_calls)
{
    if (under_a_wrapper())
        cr_skip_test("run under a wrapper (its system calls count too)");
    const long nrs[] = { SYS_recvfrom, SYS_openat2, SYS_newfstatat,
                         SYS_sendmsg, SYS_close, SYS_epoll_wait,
                         SYS_membarrier, SYS_ioctl };
    long k[9], first_other;
    trace_daemon(open_cycles, nrs, 8, k, &first_other);
    /* the last reply's close may come after we heard the client exit */
    for (int i = 0; i < 5; i++)
        cr_assert(k[i] >= CYCLES - 1 && k[i] <= CYCLES + 2,
                  "system call %ld: %ld for %d cycles", nrs[i], k[i], CYCLES);
    cr_assert_leq(k[5], CYCLES + 10, "%ld epoll_waits for %d cycles", k[5],
                  CYCLES);
    cr_assert_eq(k[6], 0, "%ld membarriers for %d cycles", k[6], CYCLES);
    cr_assert_leq(k[7], CYCLES / 8 + 2, "%ld ioctls for %d cycles", k[7],
                  CYCLES);
    cr_assert_lt(k[8], 20, "%ld other system calls (the first: %ld)", k[8],
                 first_other);
}
