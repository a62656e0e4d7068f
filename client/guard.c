/*
 * guard: the library's copying calls survive a mapping truncated under them.
 *
 * When another process truncates a file, touching a page past the new end
 * raises SIGBUS. Around its own copies (read_into, update_region) the
 * library marks the thread as "in a guarded copy" in a thread-local word,
 * two plain stores and a load, no system call. Its SIGBUS handler, seeing
 * that mark, puts a private zero page where the file's page was, notes the
 * fault and returns: the copy finishes, and the call reports
 * MMAPIO_E_IO instead of the process dying. The lost range reads as zeros
 * through that handle until mmapio_refresh, which maps a shared handle's
 * whole range afresh (a copy-on-write handle keeps its private view).
 *
 * The handler is installed once per process, at the first grant; a program
 * that installs its own SIGBUS handler later replaces it (and the guard).
 *
 * A SIGBUS anywhere else (a raw pointer from mmapio_as_ptr, or not ours at
 * all) goes to the handler that was installed before ours, or kills the
 * process as it would have without us.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { GUARD_OFF, GUARD_ON, GUARD_FAULTED };

/* Stand-in pages put in so far, in any mapping: a shared handle that sees
 * this move maps its whole range afresh at its next refresh. */
static atomic_uint stand_ins;

static __thread volatile sig_atomic_t guard
    __attribute__((tls_model("initial-exec")));
static struct sigaction previous;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    if (guard == GUARD_ON || guard == GUARD_FAULTED) {
        long page = sysconf(_SC_PAGESIZE);
        uintptr_t at = (uintptr_t)si->si_addr & ~((uintptr_t)page - 1);
        void *p = mmap((void *)at, (size_t)page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p != MAP_FAILED) {
            atomic_fetch_add_explicit(&stand_ins, 1, memory_order_relaxed);
            guard = GUARD_FAULTED;
            return; /* the faulting access runs again, on the zero page */
        }
    }
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

unsigned guard_stand_ins(void)
{
    return atomic_load_explicit(&stand_ins, memory_order_relaxed);
}

void guard_install(void)
{
    pthread_once(&installed, install);
}

int guard_copy(void *dst, const void *src, size_t len)
{
    guard = GUARD_ON;
    memcpy(dst, src, len);
    int faulted = guard == GUARD_FAULTED;
    guard = GUARD_OFF;
    return faulted ? MMAPIO_E_IO : MMAPIO_OK;
}
