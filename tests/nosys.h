/*
 * nosys: run a stretch of code in a forked child where any system call is
 * caught, as test_nosyscall.c does, for tests that must show a path makes
 * no system call (or that it does make one).
 *
 * nosys_run forks; the child runs `setup` (any system calls allowed: open
 * mappings, connect), then installs a seccomp filter under which every
 * system call but exit/exit_group traps with SIGSYS; the handler writes
 * the call's number into a page shared with the parent and leaves. Then
 * the child runs `body`, whose return value becomes the exit code. Nothing
 * in `body` may call printf, _exit or any noreturn function (see
 * test_nosyscall.c: under ASan those make system calls).
 */
#ifndef MMAPIO_TESTS_NOSYS_H
#define MMAPIO_TESTS_NOSYS_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#if defined(__x86_64__)
#define NOSYS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NOSYS_ARCH AUDIT_ARCH_AARCH64
#endif

struct nosys_result {
    int status;       /* the child's wait status, -1 if it hung */
    long syscall_nr;  /* the trapped call, -1 if none */
};

static volatile long *nosys_report;

static void nosys_on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    nosys_report[0] = si->si_syscall;
    syscall(SYS_exit_group, 99);
}

static int nosys_forbid(void)
{
    struct sock_filter f[] = {
#ifdef NOSYS_ARCH
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NOSYS_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = nosys_on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0)
        return -errno;
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof(f) / sizeof(f[0])),
        .filter = f,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}

/* setup returns 0 or an exit code (>= 50 by convention); body returns the
 * child's exit code (0: fine). */
static inline struct nosys_result nosys_run(int (*setup)(void *), int (*body)(void *),
                                            void *arg, int timeout_ms)
{
    struct nosys_result res = { -1, -1 };
    nosys_report = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (nosys_report == MAP_FAILED)
        return res;
    nosys_report[0] = -1;
    pid_t pid = hz_fork();
    if (pid < 0)
        return res;
    if (pid == 0) {
        int r = setup(arg);
        if (r)
            _exit(r);
        if (nosys_forbid() < 0)
            _exit(49);
        r = body(arg);
        syscall(SYS_exit_group, r);
        _exit(120); /* not reached */
    }
    res.status = hz_wait_child(pid, timeout_ms);
    res.syscall_nr = nosys_report[0];
    munmap((void *)nosys_report, 4096);
    return res;
}

#endif
