/*
 * atomics: C11 atomic views into a mapping, and cross-process wait/wake on
 * a 32-bit word of it.
 *
 * A view is a pointer into the mapping itself, so every process that maps
 * the same file or anonymous mapping shares the word: lock-free atomics on
 * MAP_SHARED memory are coherent across processes. Offsets must be aligned
 * to the word (MMAPIO_E_MISALIGNED; the mapping's base is page-aligned),
 * and the range must lie within the current length. Taking a view makes no
 * system call (the first view of a READ_WRITE handle announces a raw
 * writer once, as mmapio_as_mut_ptr does). A READ_ONLY handle gets its
 * view too, but the page is mapped without PROT_WRITE: only atomic loads
 * may be made through it (a store or read-modify-write faults).
 *
 * Wait and wake are the platform's futex (platform/futex.h) where it
 * reaches across processes (futex_shared): on Linux FUTEX_WAIT_BITSET /
 * FUTEX_WAKE on the word, without FUTEX_PRIVATE_FLAG: the kernel keys a
 * shared mapping's futex by the page behind it, so a waiter in one
 * process is woken from another. Wait sleeps against one absolute
 * CLOCK_MONOTONIC deadline, so a signal (EINTR) is retried for the time
 * that remains, never longer. Elsewhere (Windows) the daemon keeps the
 * waiters: Wait and Wake requests (proto, daemon winwait.c). The Wait is
 * answered when woken, when the word differs as the daemon reads it, or
 * at the daemon's deadline, which decides; the connection's lock is not
 * held meanwhile (client_call_long), and the library gives up by itself
 * only WAIT_GRACE_MS after that deadline (a daemon gone quiet).
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "client.h"
#include "errors.h"
#include "futex.h"
#include "map.h"

/* A pointer to `count` aligned words of `size` bytes at offset of m now. */
static int atomics_view(mmapio_map *m, uint64_t offset, size_t count,
                        size_t size, void **out)
{
    uint64_t total;

    if (!m || !out || count == 0)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (offset % size != 0)
        return error_set(MMAPIO_E_MISALIGNED, NULL);
    uint8_t *base = map_view(m, &total);
    if (count > UINT64_MAX / size || offset > total ||
        count * size > total - offset)
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    if (mmapio_mode_of(m) == MMAPIO_MODE_READ_WRITE)
        (void)mmapio_as_mut_ptr(m); /* the RAW_WRITER notice, once */
    *out = base + offset;
    return MMAPIO_OK;
}

int mmapio_atomic_u32(mmapio_map *m, uint64_t offset, _Atomic uint32_t **out)
{
    return atomics_view(m, offset, 1, sizeof(uint32_t), (void **)out);
}

int mmapio_atomic_u64(mmapio_map *m, uint64_t offset, _Atomic uint64_t **out)
{
    return atomics_view(m, offset, 1, sizeof(uint64_t), (void **)out);
}

int mmapio_atomic_u32_slice(mmapio_map *m, uint64_t offset, size_t count,
                            _Atomic uint32_t **out)
{
    return atomics_view(m, offset, count, sizeof(uint32_t), (void **)out);
}

int mmapio_atomic_u64_slice(mmapio_map *m, uint64_t offset, size_t count,
                            _Atomic uint64_t **out)
{
    return atomics_view(m, offset, count, sizeof(uint64_t), (void **)out);
}

/* ---- wait and wake ---- */

/* The word at offset, for a futex: aligned and in bounds, any mode. */
static int atomics_word(mmapio_map *m, uint64_t offset, _Atomic uint32_t **w)
{
    uint64_t total;

    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (offset % sizeof(uint32_t) != 0)
        return error_set(MMAPIO_E_MISALIGNED, NULL);
    uint8_t *base = map_view(m, &total);
    if (offset > total || total - offset < sizeof(uint32_t))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    *w = (_Atomic uint32_t *)(void *)(base + offset);
    return MMAPIO_OK;
}

/* now + ms on CLOCK_MONOTONIC. */
static struct timespec atomics_deadline(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* How long past its own deadline the library waits for the daemon's
 * answer to a Wait before it says TIMED_OUT itself. */
#define WAIT_GRACE_MS 5000

/* The handle's holder and the word on the wire, for Wait and Wake. */
static int atomics_remote(mmapio_map *m, uint64_t *handle)
{
    if (map_attached(m) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    *handle = map_handle_of(m);
    return MMAPIO_OK;
}

static int wait_remote(mmapio_map *m, uint64_t offset, uint32_t expected,
                       int timeout_ms)
{
    Mmapio__Wait wt = MMAPIO__WAIT__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    int r = atomics_remote(m, &wt.handle);
    if (r != MMAPIO_OK)
        return r;
    wt.offset = offset;
    wt.expected = expected;
    wt.timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
    req.op_case = MMAPIO__REQUEST__OP_WAIT;
    req.wait = &wt;
    int give_up = timeout_ms < 0 ? -1
                  : timeout_ms > INT_MAX - WAIT_GRACE_MS ? INT_MAX
                                                         : timeout_ms + WAIT_GRACE_MS;
    return client_call_long(map_client_of(m), &req, give_up);
}

static int wake_remote(mmapio_map *m, uint64_t offset, int count)
{
    Mmapio__Wake wk = MMAPIO__WAKE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;
    int r = atomics_remote(m, &wk.handle);
    if (r != MMAPIO_OK)
        return r;
    wk.offset = offset;
    wk.count = (uint32_t)count;
    req.op_case = MMAPIO__REQUEST__OP_WAKE;
    req.wake = &wk;
    /* The caller's store before the daemon's read of the word. */
    atomic_thread_fence(memory_order_seq_cst);
    r = client_call(map_client_of(m), &req, MMAPIO__REPLY__RESULT_WOKE, &rep);
    if (r != MMAPIO_OK)
        return r;
    uint32_t n = rep.reply->woke->woken;
    client_reply_free(&rep);
    return n > INT_MAX ? INT_MAX : (int)n;
}

/*
 * MMAPIO_OK when the word is not `expected` (EAGAIN: it changed before we
 * slept) or when a wake reached us (0, even if the value came back to
 * `expected`); MMAPIO_E_TIMED_OUT at the deadline; EINTR sleeps again.
 */
int mmapio_wait_u32(mmapio_map *m, uint64_t offset, uint32_t expected,
                    int timeout_ms)
{
    _Atomic uint32_t *w;
    struct timespec deadline;

    int r = atomics_word(m, offset, &w);
    if (r != MMAPIO_OK)
        return r;
    if (!futex_shared)
        return wait_remote(m, offset, expected, timeout_ms);
    if (timeout_ms >= 0)
        deadline = atomics_deadline(timeout_ms);
    for (;;) {
        if (atomic_load_explicit(w, memory_order_acquire) != expected)
            return MMAPIO_OK;
        r = futex_wait(w, expected, timeout_ms >= 0 ? &deadline : NULL);
        if (r == 0 || r == -EAGAIN)
            return MMAPIO_OK;
        if (r == -ETIMEDOUT)
            return error_set(MMAPIO_E_TIMED_OUT, NULL);
        if (r == -ENOTSUP)
            return error_set(MMAPIO_E_INVALID_ARGUMENT, FUTEX_UNSUPPORTED);
        if (r != -EINTR)
            return error_set(MMAPIO_E_IO, NULL);
    }
}

int mmapio_wake_u32(mmapio_map *m, uint64_t offset, int count)
{
    _Atomic uint32_t *w;

    if (count <= 0)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = atomics_word(m, offset, &w);
    if (r != MMAPIO_OK)
        return r;
    if (!futex_shared)
        return wake_remote(m, offset, count);
    long n = futex_wake(w, count);
    if (n == -ENOTSUP)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, FUTEX_UNSUPPORTED);
    if (n < 0)
        return error_set(MMAPIO_E_IO, NULL);
    return n > INT_MAX ? INT_MAX : (int)n;
}
