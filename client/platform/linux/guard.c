/*
 * guard: the library's copying calls survive a mapping truncated under them.
 *
 * When another process truncates a file, touching a page past the new end
 * raises SIGBUS. Around its own copies (read_into, update_region) the
 * library records, in thread-local words, which mapping range it is
 * copying from or to and which handle it is: plain stores, no system
 * call. Its SIGBUS handler acts only on a BUS_ADRERR fault inside that
 * range: it puts a private zero page (with the handle's protection) where
 * the file's page was, lowers the handle's "poisoned from" offset to that
 * page and returns, so the copy finishes. That call, and every later copy
 * through the handle that reaches the poisoned offset, reports
 * MMAPIO_E_IO until mmapio_refresh maps the file afresh; copies below it
 * keep working, and nothing written to a stand-in page can be mistaken for
 * a write to the file.
 *
 * Any other SIGBUS (a raw pointer from mmapio_as_ptr, a fault in the
 * caller's own buffer, a hardware error, a SIGBUS sent by kill) goes to the
 * handler that was installed before ours, or kills the process as it would
 * have without us. The handler is installed once per process, at the
 * first grant; a program that installs its own SIGBUS handler later
 * replaces it (and with it the guard).
 */
#include "guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guarded {
    uintptr_t lo, hi;         /* the handle's whole mapping */
    int prot;
    _Atomic uint64_t *poisoned_from; /* NULL: not in a guarded copy */
};

static __thread struct guarded cur __attribute__((tls_model("initial-exec")));
static struct sigaction previous;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

static bool stand_in(const siginfo_t *si)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    if (!cur.poisoned_from || si->si_code != BUS_ADRERR || addr < cur.lo ||
        addr >= cur.hi)
        return false;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t at = addr & ~((uintptr_t)page - 1);
    void *p = mmap((void *)at, (size_t)page, cur.prot,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        return false;
    uint64_t off = at - cur.lo;
    uint64_t was = atomic_load_explicit(cur.poisoned_from, memory_order_relaxed);
    while (off < was &&
           !atomic_compare_exchange_weak_explicit(cur.poisoned_from, &was, off,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return true; /* the faulting access runs again, on the zero page */
}

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    if (stand_in(si))
        return;
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uctx);
        return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    /* As if we were never here: the default action on the re-fault. */
    signal(SIGBUS, SIG_DFL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous);
}

void guard_install(void)
{
    pthread_once(&installed, install);
}

static bool poisoned(_Atomic uint64_t *poisoned_from, uint64_t off, size_t n)
{
    return off + n > atomic_load_explicit(poisoned_from, memory_order_relaxed);
}

int guard_copy(_Atomic uint64_t *poisoned_from, bool writable, uint8_t *base,
               uint64_t len, uint64_t off, void *dst, const void *src,
               size_t n)
{
    if (poisoned(poisoned_from, off, n))
        return MMAPIO_E_IO;
    cur.lo = (uintptr_t)base;
    cur.hi = (uintptr_t)base + len;
    cur.prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    cur.poisoned_from = poisoned_from;
    /* The handler runs on this thread: keep the compiler from moving or
     * dropping these stores around the copy (no instruction is emitted). */
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(dst, src, n);
    atomic_signal_fence(memory_order_seq_cst);
    cur.poisoned_from = NULL;
    return poisoned(poisoned_from, off, n) ? MMAPIO_E_IO : MMAPIO_OK;
}
