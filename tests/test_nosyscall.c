/*
 * test_nosyscall: the data path makes no system call.
 *
 * A forked child opens its mappings, then installs a seccomp filter that
 * kills the process on any system call but exit/exit_group, then runs
 * 100,000 rounds of mmapio_update_region / mmapio_read_into /
 * mmapio_as_ptr / mmapio_as_mut_ptr / mmapio_len on policy-NEVER maps
 * (read-write file, anonymous, read-only, copy-on-write; in-bounds calls
 * and refused ones), and leaves with exit_group(0). A second child does
 * the same for the rest of mmap-io's data path: slices, atomic views,
 * iterators, segments, and the stdio reader and writer (whose streams and
 * stdio buffers are made before the filter: stdio's own buffering may
 * allocate). A single system call
 * anywhere in those functions traps (SIGSYS) and the parent reports its
 * number. A control child proves the filter is really in force.
 *
 * It runs under AddressSanitizer too, unskipped: ASan's interceptors make
 * no system call on this path; only __asan_handle_no_return does, which is
 * why nothing after the filter calls a noreturn function (see leave()).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <stdatomic.h>
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

TestSuite(nosyscall, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

enum { ROUNDS = 100000, LEN = 16384 };

/*
 * Where the child reports the system call that broke the rule: a page
 * shared with the parent, written by the SIGSYS handler, which then leaves
 * with exit_group (allowed) before anything else can run.
 */
static volatile long *report;

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    report[0] = si->si_syscall;
    report[1] = (long)(uintptr_t)si->si_call_addr;
    syscall(SYS_exit_group, 99);
}

/* Allows exit and exit_group; any other system call traps (SIGSYS, see
 * on_sigsys) or, with `kill`, kills the whole process. */
static int forbid_syscalls(bool kill)
{
    struct sock_filter f[] = {
#ifdef NATIVE_ARCH
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 1, 0),
        BPF_STMT(BPF_RET | BPF_K,
                 kill ? SECCOMP_RET_KILL_PROCESS : SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    if (!kill) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigfillset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0)
            return -errno;
    }
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

/*
 * exit_group, deliberately not declared _Noreturn: under AddressSanitizer
 * a call to a noreturn function is preceded by __asan_handle_no_return,
 * which itself makes a system call (sigaltstack).
 */
static void leave(int code)
{
    syscall(SYS_exit_group, code);
}

/* Exit codes of the child: 0 fine; 1..49 a check failed; 50+ setup. */
static int data_path_child(void)
{
    mmapio_client *c;
    mmapio_map *rw, *anon, *ro, *cow;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(50);
    if (mmapio_create_rw(c, "ns.dat", LEN, &rw) != MMAPIO_OK)
        _exit(51);
    if (mmapio_anon_create(c, "ns", LEN, &anon) != MMAPIO_OK)
        _exit(52);
    if (mmapio_open_ro(c, "ns.dat", &ro) != MMAPIO_OK)
        _exit(53);
    if (mmapio_open_cow(c, "ns.dat", &cow) != MMAPIO_OK)
        _exit(54);
    if (mmapio_flush_policy_of(rw).kind != MMAPIO_FLUSH_NEVER ||
        mmapio_flush_policy_of(anon).kind != MMAPIO_FLUSH_NEVER)
        _exit(55);
    /* Handing out a writable pointer may be announced to the daemon once
     * per handle; that is the control path, so it happens before. */
    void *ptrs[] = { mmapio_as_mut_ptr(rw), mmapio_as_mut_ptr(anon),
                     mmapio_as_mut_ptr(cow) };
    if (forbid_syscalls(false) < 0)
        _exit(56);

    /* From here on: no system call, so no _exit, no printf. */
    mmapio_map *w[] = { rw, anon, cow };
    uint8_t buf[256], back[256];
    uint64_t sum = 0;
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t off = ((uint64_t)i * 97) % (LEN - sizeof(buf));
        memset(buf, (uint8_t)i, sizeof(buf));
        for (int k = 0; k < 3; k++) {
            if (mmapio_update_region(w[k], off, buf, sizeof(buf)) != 0)
                return 1 + k;
            if (mmapio_read_into(w[k], off, back, sizeof(back)) != 0)
                return 4 + k;
            if (memcmp(back, buf, sizeof(buf)) != 0)
                return 7 + k;
            if (mmapio_len(w[k]) != LEN)
                return 10 + k;
            const uint8_t *p = mmapio_as_ptr(w[k]);
            if (p[off] != (uint8_t)i || ptrs[k] != (const void *)p ||
                mmapio_as_mut_ptr(w[k]) != (const void *)p)
                return 13 + k;
            /* refused calls are on the data path too */
            if (mmapio_update_region(w[k], LEN, buf, 1) !=
                MMAPIO_E_OUT_OF_BOUNDS)
                return 16 + k;
            if (mmapio_read_into(w[k], LEN - 1, back, 2) !=
                MMAPIO_E_OUT_OF_BOUNDS)
                return 19 + k;
        }
        /* the read-only handle sees the shared writes, refuses its own */
        if (mmapio_read_into(ro, off, back, sizeof(back)) != 0 ||
            memcmp(back, buf, sizeof(buf)) != 0)
            return 22;
        if (mmapio_update_region(ro, off, buf, 1) != MMAPIO_E_INVALID_MODE)
            return 23;
        if (mmapio_as_mut_ptr(ro) != NULL || mmapio_len(ro) != LEN)
            return 24;
        sum += ((const uint8_t *)mmapio_as_ptr(ro))[off];
    }
    if (sum == 0)
        return 25;
    return 0;
}

Test(nosyscall, data_path)
{
    report = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq((void *)report, MAP_FAILED);
    report[0] = -1;
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        leave(data_path_child());
        _exit(120); /* not reached */
    }
    int st = hz_wait_child(pid, 50000);
    cr_assert_neq(st, -1, "child hung");
    cr_assert_eq(report[0], -1,
                 "the data path made system call %ld (from %#lx)", report[0],
                 (unsigned long)report[1]);
    cr_assert(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS),
              "the data path made a system call (child killed by SIGSYS)");
    cr_assert(WIFEXITED(st), "child killed by signal %d", WTERMSIG(st));
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed check %d%s",
                 WEXITSTATUS(st),
                 WEXITSTATUS(st) >= 50 ? " (setup)" : "");
}

/* ---- the rest of mmap-io's data path ---- */

static int count_chunk(uint64_t off, void *chunk, size_t len, void *user)
{
    (void)off;
    ((uint8_t *)chunk)[0] = (uint8_t)len;
    *(uint64_t *)user += len;
    return 0;
}

/* One round over slices, atomics, iterators and segments: 0 or a check. */
static int rest_round(mmapio_map *rw, mmapio_map *ro, int i)
{
    const void *cs;
    void *ms;
    _Atomic uint64_t *a64;
    _Atomic uint32_t *a32;
    mmapio_iter it;
    mmapio_segment seg;
    uint64_t off, total = 0;
    const void *chunk;
    size_t len;
    uint8_t b[64], back[64];

    if (mmapio_as_slice(rw, 100, 64, &cs) != 0 ||
        mmapio_as_slice_mut(rw, 100, 64, &ms) != 0 || cs != ms)
        return 30;
    if (mmapio_as_slice(rw, LEN, 1, &cs) != MMAPIO_E_OUT_OF_BOUNDS ||
        mmapio_as_slice_mut(ro, 0, 1, &ms) != MMAPIO_E_INVALID_MODE)
        return 31;
    if (mmapio_atomic_u64(rw, 8, &a64) != 0 ||
        mmapio_atomic_u32_slice(rw, 16, 4, &a32) != 0)
        return 32;
    atomic_fetch_add(a64, 1);
    atomic_fetch_add(&a32[i % 4], 1);
    if (mmapio_atomic_u32(rw, 2, &a32) != MMAPIO_E_MISALIGNED ||
        mmapio_atomic_u64(ro, LEN, &a64) != MMAPIO_E_OUT_OF_BOUNDS)
        return 33;
    if (mmapio_chunks(ro, 1000, &it) != 0)
        return 34;
    while (mmapio_iter_next(&it, &off, &chunk, &len))
        total += len;
    if (total != LEN || mmapio_pages(rw, &it) != 0 ||
        !mmapio_iter_next(&it, &off, &chunk, &len))
        return 35;
    total = 0;
    if (mmapio_chunks_mut(rw, 4096, count_chunk, &total) != 0 || total != LEN)
        return 36;
    memset(b, (uint8_t)i, sizeof(b));
    if (mmapio_segment_init(&seg, rw, 1024, 1024) != 0 ||
        mmapio_segment_write(&seg, 10, b, sizeof(b)) != 0 ||
        mmapio_segment_read(&seg, 10, back, sizeof(back)) != 0 ||
        memcmp(b, back, sizeof(b)) != 0)
        return 37;
    if (mmapio_segment_write(&seg, 1000, b, sizeof(b)) !=
        MMAPIO_E_OUT_OF_BOUNDS)
        return 38;
    return 0;
}

/* A read and a write through the streams, at a place chosen by fseek. */
static int rest_streams(FILE *r, FILE *w, int i)
{
    uint8_t b[32], back[32];

    memset(b, (uint8_t)(i + 1), sizeof(b));
    if (fseek(w, 2048 + i % 64, SEEK_SET) != 0 ||
        fwrite(b, 1, sizeof(b), w) != sizeof(b) || fflush(w) != 0)
        return 40;
    if (fseek(r, 2048 + i % 64, SEEK_SET) != 0 ||
        fread(back, 1, sizeof(back), r) != sizeof(back) ||
        memcmp(b, back, sizeof(b)) != 0)
        return 41;
    if (fseek(r, -1, SEEK_END) != 0 || ftell(r) != LEN - 1)
        return 42;
    return 0;
}

static int rest_child(void)
{
    mmapio_client *c;
    mmapio_map *rw, *ro;
    uint8_t warm[8];
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(50);
    if (mmapio_create_rw(c, "ns.dat", LEN, &rw) != MMAPIO_OK ||
        mmapio_open_ro(c, "ns.dat", &ro) != MMAPIO_OK)
        _exit(51);
    FILE *r = mmapio_reader(ro), *w = mmapio_writer(rw);
    if (!r || !w)
        _exit(52);
    /* stdio allocates its buffers at the first use; the RAW_WRITER
     * notice goes out at the first writable view: both before. */
    if (fread(warm, 1, sizeof(warm), r) != sizeof(warm) ||
        fwrite(warm, 1, sizeof(warm), w) != sizeof(warm) || fflush(w) != 0 ||
        fread(warm, 1, sizeof(warm), w) != sizeof(warm) ||
        !mmapio_as_mut_ptr(rw))
        _exit(53);
    if (forbid_syscalls(false) < 0)
        _exit(56);

    /* From here on: no system call, so no _exit, no printf. */
    for (int i = 0; i < ROUNDS / 10; i++) {
        int e = rest_round(rw, ro, i);
        if (e == 0)
            e = rest_streams(r, w, i);
        if (e != 0)
            return e;
    }
    return 0;
}

static void run_child(int (*body)(void))
{
    report = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq((void *)report, MAP_FAILED);
    report[0] = -1;
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        leave(body());
        _exit(120); /* not reached */
    }
    int st = hz_wait_child(pid, 50000);
    cr_assert_neq(st, -1, "child hung");
    cr_assert_eq(report[0], -1,
                 "the data path made system call %ld (from %#lx)", report[0],
                 (unsigned long)report[1]);
    cr_assert(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS),
              "the data path made a system call (child killed by SIGSYS)");
    cr_assert(WIFEXITED(st), "child killed by signal %d", WTERMSIG(st));
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed check %d%s",
                 WEXITSTATUS(st),
                 WEXITSTATUS(st) >= 50 ? " (setup)" : "");
}

Test(nosyscall, data_path_rest)
{
    run_child(rest_child);
}

Test(nosyscall, filter_is_in_force)
{
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (forbid_syscalls(true) < 0)
            _exit(56);
        syscall(SYS_getppid); /* must kill us */
        leave(0);
        _exit(0);
    }
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
              "a system call under the filter did not kill (status 0x%x)",
              (unsigned)st);
}
