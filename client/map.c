/*
 * map: one mapping granted by the daemon and mapped in this process.
 *
 * The handle owns the fd it was granted (kept for remapping), the local
 * mapping, and the per-handle flush counters. A small anonymous mapping
 * carved from one of the daemon's arenas instead borrows the arena's fd
 * that the connection keeps (arenafds.h) and maps its range of it. The
 * data path (read_into, update_region, the pointer and length accessors)
 * takes no lock and makes no system call, except what the mapping's flush
 * policy asks for: the msync of ALWAYS, and the one datagram that hands an
 * EveryBytes or EveryWrites threshold to the daemon (handoff.h); the
 * counters are relaxed C11 atomics so that several threads may write one
 * handle at once. Writes through raw pointers are not counted.
 *
 * A remap never pulls memory out from under a pointer handed out earlier:
 * growing tries mremap in place, and when that fails maps afresh and keeps
 * the old mapping on a retired list until mmapio_unmap. Shrinking (the
 * daemon allows it only to the sole holder) trims in place.
 *
 * Every failure of a public call here records its text (errors.h) where it
 * arises; failures of round trips were recorded by client.c.
 */
#include "map.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "area.h"
#include "client.h"
#include "errmap.h"
#include "errors.h"
#include "guard.h"
#include "handoff.h"
#include "hints.h"
#include "names.h"
#include "notice.h"
#include "policy.h"
#include "proc.h"
#include "vmem.h"

/* An old mapping left in place after a moving remap. */
struct map_region {
    void *base;
    size_t len;
    struct map_region *next;
};

struct mmapio_map {
    mmapio_client *client;          /* holds a reference */
    struct mmapio_map *prev, *next; /* in client->maps, under client->lock */
    /* This holder on the wire, and the mapping as events name it: new
     * ones after mmapio_reconnect (0: detached), so read atomically. */
    _Atomic uint64_t handle;
    _Atomic uint64_t map_id;
    int fd;                         /* owned, close-on-exec; an arena's: borrowed */
    uint64_t arena;                 /* carved from this arena (0: none) */
    uint64_t offset;                /* where the mapping starts in fd */
    mmapio_mode mode;
    bool anonymous;                 /* a name, no file behind it */
    char *path;                     /* as the caller passed it */
    /* Which file, as the daemon named it (OpenReply.file: Windows, where
     * a section handle cannot tell); file_known false elsewhere. */
    struct proc_object file;
    bool file_known;
    size_t page;
    /* Data path state: read without a lock. A remap stores base before
     * len (release), so a reader that loads len (acquire) then base never
     * sees a length larger than the mapping behind the base. */
    _Atomic(uint8_t *) base;
    _Atomic uint64_t len;
    /* policy, flush_gen, watchers; another connection's after a
     * reconnect (the old area stays mapped while c lives) */
    const struct ctl_slot *_Atomic slot;
    _Atomic uint32_t told_gen;      /* flush_gen when we last said DIRTY */
    atomic_bool told_raw;           /* RAW_WRITER notice sent */
    atomic_bool lost_notice;        /* a notice could not be sent */
    struct notice_pace pace;        /* of WRITE notices (notice.h) */
    /* Bytes written since the last flush: pending_bytes, which any
     * thread adds to and flushes take, plus what the handle's counting
     * thread (the first to write under NEVER or EVERY_MILLIS) added to
     * own_bytes by a plain load and store, less what flushes took of it
     * (own_taken, moved forward by CAS): that thread's writes make no
     * locked instruction, whose full barrier would make each write wait
     * for its own stores. */
    _Atomic uint64_t pending_bytes;
    _Atomic uintptr_t own_thread;   /* the counting thread (0: none yet) */
    _Atomic uint64_t own_bytes;     /* stored by own_thread only */
    _Atomic uint64_t own_taken;     /* of own_bytes, taken by flushes */
    _Atomic uint64_t pending_writes;
    /* A hand-off found the socket full: none tried before then
     * (CLOCK_MONOTONIC ns; 0: none waiting). */
    _Atomic uint64_t handoff_retry_ns;
    struct map_region *retired;
    /* guard.c put zero pages in the map from this offset on (UINT64_MAX:
     * none): copies reaching it fail until a refresh remaps. */
    _Atomic uint64_t poisoned_from;
};

mmapio_client *map_client_of(const mmapio_map *m)
{
    return m->client;
}

uint64_t map_handle_of(const mmapio_map *m)
{
    return atomic_load_explicit(&m->handle, memory_order_relaxed);
}

uint64_t map_id_of(const mmapio_map *m)
{
    return atomic_load_explicit(&m->map_id, memory_order_relaxed);
}

int map_attached(const mmapio_map *m)
{
    if (map_handle_of(m) != 0)
        return MMAPIO_OK;
    return error_set(MMAPIO_E_NOT_FOUND, "the mapping did not come back when "
                     "the client reconnected (deleted, replaced or no "
                     "longer allowed)");
}

static const struct ctl_slot *map_slot(const mmapio_map *m)
{
    return atomic_load_explicit(&m->slot, memory_order_acquire);
}

/* ---- helpers ---- */

/* [offset, offset+len) lies within [0, total), without overflow. */
static bool in_bounds(uint64_t offset, uint64_t len, uint64_t total)
{
    return offset <= total && len <= total - offset;
}

static bool fits_size_t(uint64_t v)
{
    return (uint64_t)(size_t)v == v;
}

static uint64_t map_len(const mmapio_map *m)
{
    return atomic_load_explicit(&m->len, memory_order_acquire);
}

static uint8_t *map_base(const mmapio_map *m)
{
    return atomic_load_explicit(&m->base, memory_order_relaxed);
}

/* For the data path beside this file (map.h): length, then base. */
uint8_t *map_view(const mmapio_map *m, uint64_t *len)
{
    *len = map_len(m);
    return map_base(m);
}

size_t map_page_of(const mmapio_map *m)
{
    return m->page;
}

/* Publishes a mapping: base first, then len with release (see above). */
static void map_publish(mmapio_map *m, uint8_t *base, uint64_t len)
{
    atomic_store_explicit(&m->base, base, memory_order_relaxed);
    atomic_store_explicit(&m->len, len, memory_order_release);
}

static unsigned map_vmode(mmapio_mode mode)
{
    if (mode == MMAPIO_MODE_READ_ONLY)
        return 0;
    return VMEM_WRITE | (mode == MMAPIO_MODE_COPY_ON_WRITE ? VMEM_PRIVATE : 0);
}

/* The mapping's `size` bytes of fd mapped; NULL with errno set on failure. */
static void *map_mmap(const mmapio_map *m, uint64_t size)
{
    if (!fits_size_t(size)) {
        errno = ENOMEM;
        return NULL;
    }
    return vmem_map(NULL, m->fd, m->offset, (size_t)size, map_vmode(m->mode));
}

/* ---- flush policy, as the client applies it ---- */

/* The mapping's current policy, as the daemon keeps it in the slot. */
static mmapio_flush_policy map_policy(const mmapio_map *m)
{
    return ctl_unpack_policy(atomic_load_explicit(&map_slot(m)->policy,
                                                  memory_order_relaxed));
}

static bool map_notice(mmapio_map *m, Mmapio__NoticeKind kind,
                       uint64_t offset, uint64_t len)
{
    return notice_send(m->client, map_handle_of(m), &m->lost_notice, kind, offset,
                       len);
}

/* Tells the daemon what it must know of a write, if anything: the range
 * when the mapping is watched, else that an EveryMillis mapping became
 * dirty since its last timed flush. */
static void map_tell_write(mmapio_map *m, mmapio_flush_kind kind,
                           uint64_t offset, uint64_t len)
{
    const struct ctl_slot *s = map_slot(m);
    bool watched = atomic_load_explicit(&s->watchers, memory_order_relaxed) > 0;

    if (!watched && kind != MMAPIO_FLUSH_EVERY_MILLIS)
        return;
    uint32_t gen = atomic_load_explicit(&s->flush_gen, memory_order_relaxed);
    bool told = atomic_load_explicit(&m->told_gen, memory_order_relaxed) == gen;
    bool sent = true;
    if (watched)
        sent = notice_range(m->client,
                            atomic_load_explicit(&m->handle, memory_order_relaxed),
                            &m->lost_notice, &m->pace, offset, len);
    /* A paced WRITE that did not leave now still owes the timed flusher
     * its DIRTY, once per flush. */
    if (!told && (!watched || !sent))
        sent = map_notice(m, MMAPIO__NOTICE_KIND__NOTICE_DIRTY, 0, 0);
    /* Only a notice that left says "told": else the next write tries again. */
    if (!told && sent)
        atomic_store_explicit(&m->told_gen, gen, memory_order_relaxed);
}

/* map_tell_write's common ways, inline: nothing to tell (nobody watches,
 * and the policy is not EVERY_MILLIS), or a write continuing the cell
 * this thread holds in the ring, the timed flusher told of this period
 * already. false: map_tell_write. */
static inline bool map_told_fast(mmapio_map *m, mmapio_flush_kind kind,
                                 uint64_t offset, uint64_t len)
{
    const struct ctl_slot *s = map_slot(m);
    if (atomic_load_explicit(&s->watchers, memory_order_relaxed) == 0)
        return kind != MMAPIO_FLUSH_EVERY_MILLIS;
    return atomic_load_explicit(&m->told_gen, memory_order_relaxed) ==
               atomic_load_explicit(&s->flush_gen, memory_order_relaxed) &&
           notice_range_fast(m->client,
                             atomic_load_explicit(&m->handle,
                                                  memory_order_relaxed),
                             offset, len);
}

/* A waited flush of [offset, offset+len), widened to whole pages. */
static int map_sync(const mmapio_map *m, uint64_t offset, uint64_t len)
{
    uint8_t *base = map_base(m);
    uint64_t start = offset & ~(uint64_t)(m->page - 1);

    if (len == 0 || !base)
        return MMAPIO_OK;
    if (vmem_flush(base + start, (size_t)(offset + len - start), true) != 0)
        return error_set(MMAPIO_E_FLUSH_FAILED, NULL);
    return MMAPIO_OK;
}

/* ---- the byte counter (see struct mmapio_map) ---- */

static _Thread_local __attribute__((tls_model("initial-exec"))) char this_thread;

/* Counts len bytes written: the counting thread without a locked
 * instruction, any other with one. */
static void map_count(mmapio_map *m, uint64_t len)
{
    uintptr_t me = (uintptr_t)&this_thread;
    uintptr_t who = atomic_load_explicit(&m->own_thread, memory_order_relaxed);
    if (who == me ||
        (who == 0 && atomic_compare_exchange_strong_explicit(
                         &m->own_thread, &who, me, memory_order_relaxed,
                         memory_order_relaxed))) {
        atomic_store_explicit(&m->own_bytes,
                              atomic_load_explicit(&m->own_bytes,
                                                   memory_order_relaxed) + len,
                              memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&m->pending_bytes, len, memory_order_relaxed);
}

/* Takes at most max of the counting thread's bytes off the counter. */
static uint64_t map_take_own(mmapio_map *m, uint64_t max)
{
    uint64_t taken = atomic_load_explicit(&m->own_taken, memory_order_relaxed);
    uint64_t take;
    do {
        uint64_t own = atomic_load_explicit(&m->own_bytes,
                                            memory_order_relaxed);
        take = own - taken < max ? own - taken : max;
    } while (!atomic_compare_exchange_weak_explicit(
        &m->own_taken, &taken, taken + take, memory_order_release,
        memory_order_relaxed));
    return take;
}

static uint64_t map_pending(const mmapio_map *m)
{
    /* own_taken first (acquire): own_bytes is at least that by then. */
    uint64_t taken = atomic_load_explicit(&m->own_taken, memory_order_acquire);
    uint64_t own = atomic_load_explicit(&m->own_bytes, memory_order_relaxed);
    return atomic_load_explicit(&m->pending_bytes, memory_order_relaxed) +
           (own > taken ? own - taken : 0);
}

/* A waited flush of the whole mapping for `taken` pending bytes already
 * taken off the counter; they are given back if the flush fails. */
static int map_flush_taken(mmapio_map *m, uint64_t taken)
{
    int r = map_sync(m, 0, map_len(m));
    if (r != MMAPIO_OK)
        atomic_fetch_add_explicit(&m->pending_bytes, taken,
                                  memory_order_relaxed);
    return r;
}

/*
 * mmapio_flush: takes both counters, then flushes the whole mapping:
 * writes that land after the reset are counted again, writes before it
 * are covered by the msync. On failure the bytes taken are given back.
 */
static int map_flush_all(mmapio_map *m)
{
    uint64_t bytes = atomic_exchange_explicit(&m->pending_bytes, 0,
                                              memory_order_relaxed);
    bytes += map_take_own(m, UINT64_MAX);
    atomic_store_explicit(&m->pending_writes, 0, memory_order_relaxed);
    int r = map_sync(m, 0, map_len(m));
    if (r != MMAPIO_OK)
        atomic_fetch_add_explicit(&m->pending_bytes, bytes,
                                  memory_order_relaxed);
    return r;
}

/* mmapio_flush_range: as mmap-io, takes off the byte counter only what
 * it flushed, min(pending, len), so one page flushed does not re-arm the
 * whole EveryBytes threshold. The write count is left alone. */
static int map_flush_part(mmapio_map *m, uint64_t offset, uint64_t len)
{
    uint64_t cur = atomic_load_explicit(&m->pending_bytes,
                                        memory_order_relaxed);
    uint64_t take;
    do
        take = cur < len ? cur : len;
    while (!atomic_compare_exchange_weak_explicit(
        &m->pending_bytes, &cur, cur - take, memory_order_relaxed,
        memory_order_relaxed));
    take += map_take_own(m, len - take);
    int r = map_sync(m, offset, len);
    if (r != MMAPIO_OK)
        atomic_fetch_add_explicit(&m->pending_bytes, take,
                                  memory_order_relaxed);
    return r;
}

/* After a hand-off found the socket full: not again before this long. */
#define HANDOFF_RETRY_NS UINT64_C(1000000)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A threshold crossed, but the last hand-off found the socket full and
 * its retry is not due yet: the write only counts. */
static bool map_handoff_waits(mmapio_map *m)
{
    uint64_t at = atomic_load_explicit(&m->handoff_retry_ns,
                                       memory_order_relaxed);
    return at && now_ns() < at;
}

/*
 * A threshold crossed, with `bytes` and `writes` taken off the counters
 * (the counters restart at the hand-off): the flush goes to the daemon's
 * workers and the writer goes on. An anonymous mapping has no disk:
 * nothing to hand over. When the socket is full (the daemon stopped or
 * far behind) the counts are given back, so the threshold stays crossed
 * and the first write after HANDOFF_RETRY_NS tries again: no knock on a
 * full socket per write, and nothing forgotten. When the daemon is gone
 * nobody else will flush: the writer msyncs, as before hand-offs.
 */
static int map_hand_off(mmapio_map *m, uint64_t bytes, uint64_t writes)
{
    if (m->anonymous)
        return MMAPIO_OK;
    switch (handoff_flush(m->client, map_handle_of(m))) {
    case HANDOFF_SENT: /* the whole mapping: the thread's count too */
        atomic_store_explicit(&m->handoff_retry_ns, 0, memory_order_relaxed);
        map_take_own(m, UINT64_MAX);
        return MMAPIO_OK;
    case HANDOFF_GONE:
        return map_flush_taken(m, bytes + map_take_own(m, UINT64_MAX));
    default:
        atomic_store_explicit(&m->handoff_retry_ns, now_ns() + HANDOFF_RETRY_NS,
                              memory_order_relaxed);
        atomic_fetch_add_explicit(&m->pending_bytes, bytes,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&m->pending_writes, writes,
                                  memory_order_relaxed);
        return MMAPIO_OK;
    }
}

/* EVERY_BYTES(n): the writer that takes the counter at >= n hands the
 * flush over; writers racing with it see the counter restarted. */
static int map_count_bytes(mmapio_map *m, uint64_t len, uint64_t n)
{
    uint64_t cur = atomic_fetch_add_explicit(&m->pending_bytes, len,
                                             memory_order_relaxed) + len;
    if (cur < n || map_handoff_waits(m))
        return MMAPIO_OK;
    while (cur >= n) {
        if (atomic_compare_exchange_weak_explicit(&m->pending_bytes, &cur, 0,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return map_hand_off(m, cur, 0);
    }
    return MMAPIO_OK;
}

/* EVERY_WRITES(n): the writer that takes the write count at >= n hands
 * the flush over, and takes the pending bytes with it. */
static int map_count_writes(mmapio_map *m, uint64_t len, uint64_t n)
{
    atomic_fetch_add_explicit(&m->pending_bytes, len, memory_order_relaxed);
    uint64_t w = atomic_fetch_add_explicit(&m->pending_writes, 1,
                                           memory_order_relaxed) + 1;
    if (w < n || map_handoff_waits(m))
        return MMAPIO_OK;
    while (w >= n) {
        if (atomic_compare_exchange_weak_explicit(&m->pending_writes, &w, 0,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return map_hand_off(m, atomic_exchange_explicit(
                &m->pending_bytes, 0, memory_order_relaxed), w);
    }
    return MMAPIO_OK;
}

/* What the policy asks after a write through update_region (READ_WRITE).
 * EVERY_MILLIS is the daemon's timer; here it only counts. */
static int map_after_write(mmapio_map *m, uint64_t offset, uint64_t len)
{
    mmapio_flush_policy p = map_policy(m);
    uint64_t n = p.value;

    if (!map_told_fast(m, p.kind, offset, len))
        map_tell_write(m, p.kind, offset, len);
    switch (p.kind) {
    case MMAPIO_FLUSH_ALWAYS:
        return map_sync(m, offset, len);
    case MMAPIO_FLUSH_EVERY_BYTES:
        return map_count_bytes(m, len, n);
    case MMAPIO_FLUSH_EVERY_WRITES:
        return map_count_writes(m, len, n);
    default:
        map_count(m, len);
        return MMAPIO_OK;
    }
}

/* ---- data path ---- */

/* A copy to or from the mapping that survives a truncation (guard.h). */
static int map_copy(mmapio_map *m, uint8_t *base, uint64_t off, void *dst,
                    const void *src, size_t n)
{
    int r = guard_copy(&m->poisoned_from, m->mode != MMAPIO_MODE_READ_ONLY, base,
                       map_len(m), off, dst, src, n);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

int mmapio_read_into(mmapio_map *m, uint64_t offset, void *buf, size_t len)
{
    if (!m || (!buf && len > 0))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!in_bounds(offset, len, map_len(m)))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    if (len == 0)
        return MMAPIO_OK;
    uint8_t *base = map_base(m);
    return map_copy(m, base, offset, buf, base + offset, len);
}

int mmapio_update_region(mmapio_map *m, uint64_t offset, const void *data,
                         size_t len)
{
    if (!m || (!data && len > 0))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (m->mode == MMAPIO_MODE_READ_ONLY)
        return error_set(MMAPIO_E_INVALID_MODE, NULL);
    if (!in_bounds(offset, len, map_len(m)))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    if (len == 0)
        return MMAPIO_OK;
    uint8_t *base = map_base(m);
    int r = map_copy(m, base, offset, base + offset, data, len);
    if (r != MMAPIO_OK)
        return r;
    if (m->mode != MMAPIO_MODE_READ_WRITE)
        return MMAPIO_OK; /* copy-on-write: private, nothing to flush */
    return map_after_write(m, offset, len);
}

/* A write made through a pointer, told like update_region's: watchers
 * get the range, an EveryMillis mapping is marked dirty. No system call
 * unless the daemon sleeps (notice.h). */
int mmapio_notify_range(mmapio_map *m, uint64_t offset, uint64_t len)
{
    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (m->mode == MMAPIO_MODE_READ_ONLY)
        return error_set(MMAPIO_E_INVALID_MODE, NULL);
    if (!in_bounds(offset, len, map_len(m)))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    if (len == 0 || m->mode != MMAPIO_MODE_READ_WRITE)
        return MMAPIO_OK; /* copy-on-write: nobody else sees it */
    map_tell_write(m, map_policy(m).kind, offset, len);
    return MMAPIO_OK;
}

int mmapio_flush(mmapio_map *m)
{
    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (m->mode != MMAPIO_MODE_READ_WRITE)
        return MMAPIO_OK;
    return map_flush_all(m);
}

int mmapio_flush_range(mmapio_map *m, uint64_t offset, uint64_t len)
{
    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!in_bounds(offset, len, map_len(m)))
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    if (m->mode != MMAPIO_MODE_READ_WRITE || len == 0)
        return MMAPIO_OK;
    return map_flush_part(m, offset, len);
}

uint64_t mmapio_len(const mmapio_map *m)
{
    return m ? map_len(m) : 0;
}

bool mmapio_is_empty(const mmapio_map *m)
{
    return mmapio_len(m) == 0;
}

const char *mmapio_path(const mmapio_map *m)
{
    return m ? m->path : NULL;
}

mmapio_mode mmapio_mode_of(const mmapio_map *m)
{
    return m ? m->mode : MMAPIO_MODE_READ_ONLY;
}

mmapio_flush_policy mmapio_flush_policy_of(const mmapio_map *m)
{
    mmapio_flush_policy never = { MMAPIO_FLUSH_NEVER, 0 };
    return m ? map_policy(m) : never;
}

uint64_t mmapio_pending_bytes(const mmapio_map *m)
{
    return m ? map_pending(m) : 0;
}

const void *mmapio_as_ptr(const mmapio_map *m)
{
    return m ? map_base(m) : NULL;
}

/* The first writable pointer of a read-write handle is announced once, so
 * that the daemon's EveryMillis timer also covers writes it cannot see. */
void *mmapio_as_mut_ptr(mmapio_map *m)
{
    if (!m || m->mode == MMAPIO_MODE_READ_ONLY)
        return NULL;
    if (m->mode == MMAPIO_MODE_READ_WRITE &&
        !atomic_load_explicit(&m->told_raw, memory_order_relaxed) &&
        !atomic_exchange_explicit(&m->told_raw, true, memory_order_relaxed) &&
        !map_notice(m, MMAPIO__NOTICE_KIND__NOTICE_RAW_WRITER, 0, 0))
        atomic_store_explicit(&m->told_raw, false, memory_order_relaxed);
    return map_base(m);
}

/* ---- remapping ---- */

/* Keeps an old mapping alive until unmap; returns false without memory. */
static bool map_retire(mmapio_map *m, uint8_t *base, uint64_t len)
{
    struct map_region *r = malloc(sizeof(*r));
    if (!r)
        return false;
    r->base = base;
    r->len = (size_t)len;
    r->next = m->retired;
    m->retired = r;
    return true;
}

/*
 * Growing when the address space after the mapping is taken: a fresh
 * mapping, the old one retired. A copy-on-write handle copies its old
 * bytes over, or it would lose its private writes.
 */
static int map_grow_moved(mmapio_map *m, uint8_t *old_base, uint64_t old,
                          uint64_t size)
{
    uint8_t *p = map_mmap(m, size);
    if (!p)
        return MMAPIO_E_RESIZE_FAILED;
    if (!map_retire(m, old_base, old)) {
        vmem_unmap(p, (size_t)size);
        return MMAPIO_E_RESIZE_FAILED;
    }
    if (m->mode == MMAPIO_MODE_COPY_ON_WRITE)
        memcpy(p, old_base, (size_t)old);
    map_publish(m, p, size);
    return MMAPIO_OK;
}

static int map_grow(mmapio_map *m, uint64_t old, uint64_t size)
{
    uint8_t *base = map_base(m);
    if (vmem_resize(base, (size_t)old, (size_t)size) == 0) {
        map_publish(m, base, size);
        return MMAPIO_OK;
    }
    return map_grow_moved(m, base, old, size);
}

/* Shrinking in place; the length shrinks first so no reader goes past. */
static int map_shrink(mmapio_map *m, uint64_t old, uint64_t size)
{
    uint8_t *base = map_base(m);
    atomic_store_explicit(&m->len, size, memory_order_release);
    if (vmem_resize(base, (size_t)old, (size_t)size) != 0) {
        atomic_store_explicit(&m->len, old, memory_order_release);
        return MMAPIO_E_RESIZE_FAILED;
    }
    return MMAPIO_OK;
}

/* Size 0: nothing may be mapped. */
static void map_drop(mmapio_map *m, uint64_t old)
{
    uint8_t *base = map_base(m);
    map_publish(m, NULL, 0);
    vmem_unmap(base, (size_t)old);
}

/* After a truncation the SIGBUS guard put private zero pages in this
 * mapping: map the file over the whole range again (a copy-on-write
 * handle's private changes go with them), then lift the poison. */
static int map_replace_stand_ins(mmapio_map *m)
{
    uint8_t *base = map_base(m);
    if (atomic_load_explicit(&m->poisoned_from, memory_order_relaxed) == UINT64_MAX)
        return MMAPIO_OK;
    if (base && !vmem_map(base, m->fd, m->offset, (size_t)map_len(m),
                          map_vmode(m->mode)))
        return MMAPIO_E_RESIZE_FAILED;
    atomic_store_explicit(&m->poisoned_from, UINT64_MAX, memory_order_relaxed);
    return MMAPIO_OK;
}

/* Brings the local mapping to `size`, the size the daemon reported. */
static int map_remap(mmapio_map *m, uint64_t size)
{
    uint64_t old = map_len(m);

    if (!fits_size_t(size))
        return MMAPIO_E_RESIZE_FAILED;
    if (size == old)
        return map_replace_stand_ins(m);
    if (size == 0) {
        map_drop(m, old);
        atomic_store_explicit(&m->poisoned_from, UINT64_MAX, memory_order_relaxed);
        return MMAPIO_OK;
    }
    if (old == 0) {
        uint8_t *p = map_mmap(m, size);
        if (!p)
            return MMAPIO_E_RESIZE_FAILED;
        map_publish(m, p, size);
        return MMAPIO_OK;
    }
    int r = size < old ? map_shrink(m, old, size) : map_grow(m, old, size);
    return r ? r : map_replace_stand_ins(m);
}

/* map_remap for a public call: a failure records its text. */
static int map_remap_now(mmapio_map *m, uint64_t size)
{
    int r = map_remap(m, size);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

/* ---- handle lifetime ---- */

void map_free(mmapio_map *m)
{
    uint8_t *base = map_base(m);
    if (base)
        vmem_unmap(base, (size_t)map_len(m));
    while (m->retired) {
        struct map_region *r = m->retired;
        m->retired = r->next;
        vmem_unmap(r->base, r->len);
        free(r);
    }
    if (m->fd >= 0 && !m->arena)
        proc_close(m->fd);
    notice_pace_fini(&m->pace);
    free(m->path);
    free(m);
}

int map_new(const char *path, mmapio_mode mode, mmapio_map **out)
{
    mmapio_map *m = calloc(1, sizeof(*m));
    if (!m)
        return MMAPIO_E_QUOTA;
    m->path = strdup(path);
    if (!m->path) {
        free(m);
        return MMAPIO_E_QUOTA;
    }
    m->fd = -1;
    m->mode = mode;
    notice_pace_init(&m->pace);
    atomic_init(&m->poisoned_from, UINT64_MAX);
    m->page = vmem_page();
    *out = m;
    return MMAPIO_OK;
}

/* Puts m on c's list of handles and takes a reference on c (lock held). */
static void map_link(mmapio_client *c, mmapio_map *m)
{
    client_ref(c);
    m->client = c;
    m->prev = NULL;
    m->next = c->maps;
    if (c->maps)
        c->maps->prev = m;
    c->maps = m;
}

/* Takes m off the list (lock held); the reference is the caller's. */
static void map_unlink(mmapio_client *c, mmapio_map *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        c->maps = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
}

/*
 * Tells the daemon this holder is gone (lock held). `wait`: as a round
 * trip; else one way: recorded in the write ring when the daemon reads
 * releases there (no system call, wring.h), else Close.no_reply, never
 * answered. Requests on one connection are served in order after the
 * ring's cells, so whatever this connection asks next finds the holder
 * released; a one-way release's errors are not reported.
 */
static int map_release_locked(mmapio_client *c, uint64_t handle, bool wait)
{
    Mmapio__Close cl = MMAPIO__CLOSE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    cl.handle = handle;
    cl.no_reply = !wait;
    req.op_case = MMAPIO__REQUEST__OP_CLOSE;
    req.close = &cl;
    if (!wait && !c->dead && notice_release_locked(c, handle))
        return MMAPIO_OK;
    if (!wait)
        return client_send_oneway_locked(c, &req);
    int r = client_call_locked(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, &rep);
    if (r == MMAPIO_OK)
        client_reply_free(&rep);
    return r;
}

/* The holder goes (lock held): an arena's fd is let go first, in the
 * order of the requests, as the daemon counts it (arenafds.h). */
static int map_let_go_locked(mmapio_client *c, mmapio_map *m, bool wait)
{
    if (m->arena) {
        arena_fds_put(&c->arena_fds, m->arena, m->mode == MMAPIO_MODE_READ_WRITE);
        m->arena = 0;
        m->fd = -1;
    }
    return map_release_locked(c, map_handle_of(m), wait);
}

/* The grant's fd: its own, or its arena's kept by the connection. */
static int map_take_fd(mmapio_client *c, mmapio_map *m,
                       const Mmapio__OpenReply *g, int fd)
{
    m->offset = g->offset;
    m->file_known = g->file && !m->anonymous && !g->arena;
    if (m->file_known)
        m->file = (struct proc_object){ g->file->dev, g->file->ino };
    if (!g->arena) {
        m->fd = fd;
        return fd >= 0 ? MMAPIO_OK : MMAPIO_E_PROTOCOL;
    }
    int r = arena_fds_take(&c->arena_fds, g->arena,
                           m->mode == MMAPIO_MODE_READ_WRITE, fd, &m->fd);
    if (r == MMAPIO_OK)
        m->arena = g->arena;
    return r;
}

/*
 * Takes the grant of an open reply into m: fd, ids, policy, the local
 * mapping (lock held, so no event for this mapping can be read before m
 * is on the client's list). If mapping fails, the holder is released.
 */
int map_take_grant(mmapio_client *c, mmapio_map *m,
                   struct client_reply *rep)
{
    const Mmapio__OpenReply *g = rep->reply->open;
    uint64_t size = g->size;

    const struct ctl_slot *slot = area_slot(&c->area, g->ctl_slot);
    atomic_store_explicit(&m->handle, g->handle, memory_order_relaxed);
    atomic_store_explicit(&m->map_id, g->map_id, memory_order_relaxed);
    int r = map_take_fd(c, m, g, rep->fd);
    rep->fd = -1;
    client_reply_free(rep);
    if (r == MMAPIO_OK && !slot)
        r = MMAPIO_E_PROTOCOL;
    if (r != MMAPIO_OK) {
        map_let_go_locked(c, m, true);
        return error_set(r, NULL);
    }
    /* Unlike any flush_gen: the first write says DIRTY when it must. */
    atomic_store_explicit(&m->told_gen,
                          atomic_load(&slot->flush_gen) - 1,
                          memory_order_relaxed);
    atomic_store_explicit(&m->slot, slot, memory_order_release);
    if (size > 0) {
        uint8_t *base = map_mmap(m, size);
        if (!base) {
            int err = errmap_from_errno(errno);
            map_let_go_locked(c, m, true);
            return error_set(err, NULL);
        }
        map_publish(m, base, size);
    }
    guard_install();
    map_link(c, m);
    notice_ring_attach_locked(c); /* once per connection: writes, releases */
    return MMAPIO_OK;
}

/* ---- opening ---- */

void mmapio_options_init(mmapio_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->mode = MMAPIO_MODE_READ_WRITE;
    o->flush_policy.kind = MMAPIO_FLUSH_NEVER;
}

static int open_check(const char *path, const mmapio_options *o)
{
    if (!*path || (unsigned)o->mode > MMAPIO_MODE_COPY_ON_WRITE ||
        (unsigned)o->owner > MMAPIO_OWNER_UID ||
        (unsigned)o->touch > MMAPIO_TOUCH_LAZY ||
        !policy_valid(o->flush_policy))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!names_valid(path))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    if ((o->create || o->truncate) && o->size == 0)
        return error_set(MMAPIO_E_RESIZE_FAILED, NULL);
    return MMAPIO_OK;
}

/* The wire modes have the values of mmapio_mode; the owner asked for
 * goes as a uid, ours as the daemon knows it for SELF. */
static void open_to_wire(const mmapio_client *c, const char *path,
                         const mmapio_options *o, Mmapio__Open *op,
                         Mmapio__FlushPolicy *pol, Mmapio__Owner *owner)
{
    mmapio__open__init(op);
    op->path = (char *)path;
    op->anonymous = o->anonymous;
    op->mode = (Mmapio__Mode)o->mode;
    op->create = o->create;
    op->truncate = o->truncate;
    op->exclusive = o->exclusive;
    op->size = o->size;
    op->perm = o->perm;
    op->huge_pages = o->huge_pages;
    policy_to_wire(o->flush_policy, pol);
    op->policy = pol;
    mmapio__owner__init(owner);
    owner->uid = o->owner == MMAPIO_OWNER_SELF ? (uint32_t)c->uid : o->owner_uid;
    op->owner = o->owner == MMAPIO_OWNER_ANY ? NULL : owner;
}

int mmapio_open(mmapio_client *c, const char *path, const mmapio_options *o,
                mmapio_map **out)
{
    Mmapio__Open op;
    Mmapio__FlushPolicy pol;
    Mmapio__Owner owner;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;
    mmapio_map *m;

    if (!c || !path || !o || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = open_check(path, o);
    if (r != MMAPIO_OK)
        return r;
    r = map_new(path, o->mode, &m);
    if (r != MMAPIO_OK)
        return error_set(r, NULL);
    m->anonymous = o->anonymous;
    open_to_wire(c, path, o, &op, &pol, &owner);
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &op;
    client_lock(c);
    /* map_take_grant frees the reply before it unlocks: c->arena. */
    c->scratch_reply = true;
    r = client_call_locked(c, &req, MMAPIO__REPLY__RESULT_OPEN, &rep);
    c->scratch_reply = false;
    if (r == MMAPIO_OK)
        r = map_take_grant(c, m, &rep);
    client_unlock(c);
    if (r != MMAPIO_OK) {
        map_free(m);
        return r;
    }
    /* Unlocked: an eager touch of a large mapping may take a while. */
    hints_apply(map_base(m), (size_t)map_len(m), o->huge_pages, o->touch);
    *out = m;
    return MMAPIO_OK;
}

static int open_simple(mmapio_client *c, const char *path, mmapio_mode mode,
                       mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.mode = mode;
    return mmapio_open(c, path, &o, out);
}

int mmapio_create_rw(mmapio_client *c, const char *path, uint64_t size,
                     mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.create = true;
    o.truncate = true;
    o.size = size;
    return mmapio_open(c, path, &o, out);
}

int mmapio_open_ro(mmapio_client *c, const char *path, mmapio_map **out)
{
    return open_simple(c, path, MMAPIO_MODE_READ_ONLY, out);
}

int mmapio_open_rw(mmapio_client *c, const char *path, mmapio_map **out)
{
    return open_simple(c, path, MMAPIO_MODE_READ_WRITE, out);
}

int mmapio_open_cow(mmapio_client *c, const char *path, mmapio_map **out)
{
    return open_simple(c, path, MMAPIO_MODE_COPY_ON_WRITE, out);
}

int mmapio_open_or_create(mmapio_client *c, const char *path,
                          uint64_t default_size, mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.create = true;
    o.size = default_size;
    return mmapio_open(c, path, &o, out);
}

int mmapio_anon_create(mmapio_client *c, const char *name, uint64_t size,
                       mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.exclusive = true;
    o.size = size;
    return mmapio_open(c, name, &o, out);
}

int mmapio_anon_open(mmapio_client *c, const char *name, mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    return mmapio_open(c, name, &o, out);
}

int mmapio_anon_open_or_create(mmapio_client *c, const char *name,
                               uint64_t size, mmapio_map **out)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.size = size;
    o.owner = MMAPIO_OWNER_SELF;
    return mmapio_open(c, name, &o, out);
}

/*
 * Releases the holder on the daemon without waiting for it, then
 * everything local. A client already disconnected is not an error: the
 * daemon released this holder with the connection.
 */
static int map_close(mmapio_map *m)
{
    mmapio_client *c = m->client;
    struct error_saved before;
    error_save(&before);
    uint64_t handle = map_handle_of(m);
    client_lock(c);
    map_unlink(c, m);
    client_unlock(c);
    /* Unmapped before the daemon hears of it: once the holder is gone, a
     * shrink may go ahead, which must not fault a mapping still here. */
    uint64_t arena = m->arena;
    bool writable = m->mode == MMAPIO_MODE_READ_WRITE;
    map_free(m);
    client_lock(c);
    if (arena) /* with the release, as the daemon counts it */
        arena_fds_put(&c->arena_fds, arena, writable);
    int r = handle ? map_release_locked(c, handle, false) : MMAPIO_OK;
    client_unlock(c);
    client_unref(c);
    if (r != MMAPIO_E_DISCONNECTED)
        return r;
    error_restore(&before); /* not a failure of this call */
    return MMAPIO_OK;
}

int mmapio_unmap(mmapio_map *m)
{
    return m ? map_close(m) : MMAPIO_OK;
}

/*
 * The handle's own fd is the grant: read-only for READ_ONLY and
 * COPY_ON_WRITE (the daemon never hands those a writable one), a fresh
 * open file description of the file for READ_WRITE; on Windows the
 * grant's section handle, as the daemon gave it. It leaves with the
 * caller instead of being closed; the holder is released as by unmap.
 * An anonymous mapping's memfd stays the daemon's to give.
 */
int mmapio_unmap_to_fd(mmapio_map *m, int *fd_out)
{
    if (!m || !fd_out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (m->anonymous)
        return error_set(MMAPIO_E_INVALID_MODE,
                         "an anonymous mapping has no file to hand over");
    int fd = m->fd;
    m->fd = -1;
    /* Granted non-blocking (the daemon never waits on a lease); the
     * caller gets an ordinary descriptor. */
    proc_make_blocking(fd);
    int r = map_close(m);
    if (r != MMAPIO_OK) {
        proc_close(fd);
        return r;
    }
    *fd_out = fd;
    return MMAPIO_OK;
}

int mmapio_is_hugepage_backed(const mmapio_map *m)
{
    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    const uint8_t *base = map_base(m);
    if (!base)
        return error_set(MMAPIO_E_NOT_FOUND, "nothing is mapped (size 0)");
    int r = hints_huge_backed(base);
    return r >= 0 ? r : error_set(r, NULL);
}

/* ---- requests about a handle ---- */

int mmapio_resize(mmapio_map *m, uint64_t new_size)
{
    Mmapio__Resize rs = MMAPIO__RESIZE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (m->mode != MMAPIO_MODE_READ_WRITE)
        return error_set(MMAPIO_E_INVALID_MODE, NULL);
    if (new_size == 0 || !fits_size_t(new_size))
        return error_set(MMAPIO_E_RESIZE_FAILED, NULL);
    if (map_attached(m) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    rs.handle = map_handle_of(m);
    rs.size = new_size;
    req.op_case = MMAPIO__REQUEST__OP_RESIZE;
    req.resize = &rs;
    int r = client_call(m->client, &req, MMAPIO__REPLY__RESULT__NOT_SET, NULL);
    if (r != MMAPIO_OK)
        return r;
    return map_remap_now(m, new_size);
}

/* Takes the size from the daemon (the policy is always current: it is read
 * from the control slot). */
int mmapio_refresh(mmapio_map *m)
{
    Mmapio__Stat st = MMAPIO__STAT__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;
    uint64_t size = 0;

    if (!m)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (map_attached(m) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    st.handle = map_handle_of(m);
    req.op_case = MMAPIO__REQUEST__OP_STAT;
    req.stat = &st;
    client_lock(m->client);
    int r = client_call_locked(m->client, &req, MMAPIO__REPLY__RESULT_STAT,
                               &rep);
    if (r == MMAPIO_OK) {
        size = rep.reply->stat->size;
        client_reply_free(&rep);
    }
    client_unlock(m->client);
    if (r != MMAPIO_OK)
        return r;
    return map_remap_now(m, size);
}

int mmapio_set_flush_policy(mmapio_map *m, mmapio_flush_policy p)
{
    Mmapio__SetPolicy sp = MMAPIO__SET_POLICY__INIT;
    Mmapio__FlushPolicy pol;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!m || !policy_valid(p))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (m->mode != MMAPIO_MODE_READ_WRITE)
        return error_set(MMAPIO_E_INVALID_MODE, NULL);
    if (map_attached(m) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    policy_to_wire(p, &pol);
    sp.handle = map_handle_of(m);
    sp.policy = &pol;
    req.op_case = MMAPIO__REQUEST__OP_SET_POLICY;
    req.set_policy = &sp;
    /* The daemon writes the new policy into the slot before it answers. */
    return client_call(m->client, &req, MMAPIO__REPLY__RESULT__NOT_SET, NULL);
}

/* ---- after a reconnect ---- */

/* A handle whose object did not come back: no slot of any daemon (its
 * policy reads NEVER, nobody watches), handle 0, which no daemon knows. */
static const struct ctl_slot detached_slot;

static void map_detach(mmapio_map *m)
{
    atomic_store_explicit(&m->slot, &detached_slot, memory_order_release);
    atomic_store_explicit(&m->handle, 0, memory_order_relaxed);
    atomic_store_explicit(&m->map_id, 0, memory_order_relaxed);
}

/* Reattach (lock held): an anonymous handle offers its memfd (`offer`,
 * or -1) with it (FdOffer first), so a daemon that lost the mapping may
 * take it back; a carved one offers its arena's, once per arena. */
static int map_ask_reattach(mmapio_client *c, mmapio_map *m,
                            const struct proc_object *st, int offer_fd,
                            struct client_reply *rep)
{
    Mmapio__Reattach ra = MMAPIO__REATTACH__INIT;
    Mmapio__FdOffer offer = MMAPIO__FD_OFFER__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (offer_fd >= 0) {
        struct client_reply first;
        req.op_case = MMAPIO__REQUEST__OP_FD_OFFER;
        req.fd_offer = &offer;
        int r = client_call_locked(c, &req, MMAPIO__REPLY__RESULT__NOT_SET,
                                   &first);
        if (r != MMAPIO_OK)
            return r;
        client_reply_free(&first);
        req = (Mmapio__Request)MMAPIO__REQUEST__INIT;
    }
    ra.path = m->path;
    ra.anonymous = m->anonymous;
    ra.mode = (Mmapio__Mode)m->mode;
    ra.dev = st->dev;
    ra.ino = st->ino;
    ra.offset = m->offset;
    ra.carved = m->arena != 0;
    req.op_case = MMAPIO__REQUEST__OP_REATTACH;
    req.reattach = &ra;
    return client_call_fd_locked(c, &req, offer_fd,
                                 MMAPIO__REPLY__RESULT_OPEN, rep);
}

/* A read-write holder of a file brings back the policy it saw: the new
 * daemon starts every file at NEVER (any read-write holder may set it). */
static void map_restore_policy(mmapio_client *c, mmapio_map *m,
                               mmapio_flush_policy was)
{
    Mmapio__SetPolicy sp = MMAPIO__SET_POLICY__INIT;
    Mmapio__FlushPolicy pol;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;
    mmapio_flush_policy now = map_policy(m);

    if (m->anonymous || m->mode != MMAPIO_MODE_READ_WRITE ||
        (now.kind == was.kind && now.value == was.value) || !policy_valid(was))
        return;
    policy_to_wire(was, &pol);
    sp.handle = map_handle_of(m);
    sp.policy = &pol;
    req.op_case = MMAPIO__REQUEST__OP_SET_POLICY;
    req.set_policy = &sp;
    if (client_call_locked(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, &rep) ==
        MMAPIO_OK)
        client_reply_free(&rep);
}

/* What a reconnect carries over for carved handles: the old
 * connection's arena fds (keyed by the old daemon's ids) and the old
 * arenas whose fd was offered already. */
struct map_rejoin {
    struct arena_fds old;
    uint64_t *offered;
    size_t n_offered, cap_offered;
};

/* Whether old arena `id`'s fd is yet to be offered; then it counts as
 * offered (a client holding 10,000 mappings of it offers it once). */
static bool map_first_offer(struct map_rejoin *j, uint64_t id)
{
    for (size_t i = 0; i < j->n_offered; i++)
        if (j->offered[i] == id)
            return false;
    if (j->n_offered == j->cap_offered) {
        size_t nc = j->cap_offered ? 2 * j->cap_offered : 8;
        uint64_t *p = realloc(j->offered, nc * sizeof(*p));
        if (!p)
            return true; /* offered again: costs an fd, not a mapping */
        j->offered = p;
        j->cap_offered = nc;
    }
    j->offered[j->n_offered++] = id;
    return true;
}

/* Whether fd is the object st describes. */
static bool map_same_object(int fd, const struct proc_object *st)
{
    struct proc_object now;
    return fd >= 0 && proc_identify(fd, &now) == 0 && now.dev == st->dev &&
           now.ino == st->ino;
}

/* The grant of a re-attached handle takes the place of its fd (lock
 * held): a file or memfd of its own takes the old fd's number (remaps use
 * m->fd unlocked); a carved one's arena joins the new connection's table
 * under the new daemon's id, on the old fd's number too. MMAPIO_OK, or an
 * error and the grant's fd closed (the holder is the caller's to let go:
 * *counted says whether the table counts it). */
static int map_take_back(mmapio_client *c, mmapio_map *m, struct map_rejoin *j,
                         const struct proc_object *st, const Mmapio__OpenReply *g,
                         int fd, bool *counted)
{
    *counted = false;
    if (!m->arena && m->file_known) {
        /* A section (Windows): the daemon compared the file; so do we, by
         * the identity it names. The old section handle, of that very
         * file, stays good after its daemon went (and a handle's value
         * cannot be chosen): it and its view are kept, the grant closed. */
        bool same = !g->arena && g->file && g->file->dev == st->dev &&
                    g->file->ino == st->ino && fd >= 0;
        proc_close(fd);
        return same ? MMAPIO_OK : MMAPIO_E_NOT_FOUND;
    }
    if (!m->arena) {
        /* The daemon compared; so do we, before the fd replaces ours. */
        int r = g->arena || !map_same_object(fd, st) ||
                proc_replace(fd, m->fd) < 0 ? MMAPIO_E_NOT_FOUND : MMAPIO_OK;
        proc_close(fd);
        return r;
    }
    bool writable = m->mode == MMAPIO_MODE_READ_WRITE;
    if (!g->arena || g->offset != m->offset ||
        (fd >= 0 && !map_same_object(fd, st))) {
        proc_close(fd);
        return MMAPIO_E_NOT_FOUND;
    }
    if (fd >= 0)
        fd = arena_fds_carry(&j->old, m->arena, writable, fd);
    int use;
    if (arena_fds_take(&c->arena_fds, g->arena, writable, fd, &use) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    *counted = true;
    if (!map_same_object(use, st))
        return MMAPIO_E_NOT_FOUND;
    m->arena = g->arena;
    m->fd = use;
    return MMAPIO_OK;
}

/* One handle (lock held): MMAPIO_OK re-attached, MMAPIO_E_DISCONNECTED
 * the new daemon went too, any other error: detached for good. */
static int map_rejoin_one(mmapio_client *c, mmapio_map *m, struct map_rejoin *j)
{
    struct proc_object st;
    struct client_reply rep;

    if (map_handle_of(m) == 0 || m->fd < 0)
        return MMAPIO_E_NOT_FOUND;
    if (m->file_known)
        st = m->file; /* a section: the daemon's word for its file */
    else if (proc_identify(m->fd, &st) < 0)
        return MMAPIO_E_NOT_FOUND;
    mmapio_flush_policy was = map_policy(m);
    int offer = !m->anonymous ? -1
        : !m->arena || map_first_offer(j, m->arena) ? m->fd : -1;
    int r = map_ask_reattach(c, m, &st, offer, &rep);
    if (r != MMAPIO_OK)
        return r;
    const Mmapio__OpenReply *g = rep.reply->open;
    const struct ctl_slot *slot = area_slot(&c->area, g->ctl_slot);
    bool counted;
    int fd = rep.fd;
    rep.fd = -1;
    r = map_take_back(c, m, j, &st, g, fd, &counted);
    if (r == MMAPIO_OK && !slot)
        r = MMAPIO_E_NOT_FOUND;
    if (r != MMAPIO_OK) {
        uint64_t h = g->handle;
        client_reply_free(&rep);
        if (counted) /* with the release, as the daemon counts it */
            arena_fds_put(&c->arena_fds, g->arena,
                          m->mode == MMAPIO_MODE_READ_WRITE);
        map_release_locked(c, h, true);
        return MMAPIO_E_NOT_FOUND;
    }
    atomic_store_explicit(&m->handle, g->handle, memory_order_relaxed);
    atomic_store_explicit(&m->map_id, g->map_id, memory_order_relaxed);
    atomic_store_explicit(&m->told_gen, atomic_load(&slot->flush_gen) - 1,
                          memory_order_relaxed);
    atomic_store_explicit(&m->slot, slot, memory_order_release);
    client_reply_free(&rep);
    map_restore_policy(c, m, was);
    if (m->mode == MMAPIO_MODE_READ_WRITE) {
        notice_ring_attach_locked(c);
        /* A pointer handed out earlier is still out: say so again. */
        if (atomic_load_explicit(&m->told_raw, memory_order_relaxed))
            map_notice(m, MMAPIO__NOTICE_KIND__NOTICE_RAW_WRITER, 0, 0);
        /* Writes made while nobody listened: watchers and the timed
         * flusher hear of the whole mapping. */
        uint64_t len = map_len(m);
        if (len > 0)
            map_tell_write(m, map_policy(m).kind, 0, len);
    }
    return MMAPIO_OK;
}

/* A handle that did not come back is detached; a carved one lets go of
 * the old connection's arena fd (closed with the old table: its id is
 * still the old daemon's, as a handle takes the new one only once back). */
static void map_detach_carved(mmapio_map *m)
{
    if (m->arena) {
        m->arena = 0;
        m->fd = -1;
    }
    map_detach(m);
}

int map_rejoin_all_locked(mmapio_client *c, struct map_rejoined **out,
                          size_t *n_out)
{
    size_t n = 0, cap = 0;
    struct map_rejoined *v = NULL;
    /* The old connection's arena fds are dead with it: the new daemon
     * names its arenas afresh, and counts from none. */
    struct map_rejoin j = { .old = c->arena_fds };

    c->arena_fds = (struct arena_fds){ 0 };
    *out = NULL;
    *n_out = 0;
    for (mmapio_map *m = c->maps; m; m = m->next) {
        uint64_t old = map_handle_of(m);
        int r = map_rejoin_one(c, m, &j);
        if (r == MMAPIO_E_DISCONNECTED) {
            /* Carved handles not yet back have only the old table, which
             * goes: they stay detached (the others may try again). */
            for (; m; m = m->next)
                if (m->arena)
                    map_detach_carved(m);
            arena_fds_fini(&j.old);
            free(j.offered);
            free(v);
            return r;
        }
        if (r != MMAPIO_OK) {
            map_detach_carved(m);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            struct map_rejoined *p = realloc(v, nc * sizeof(*p));
            if (!p)
                continue; /* its watchers stay quiet; the handle works */
            v = p;
            cap = nc;
        }
        v[n++] = (struct map_rejoined){ old, map_handle_of(m), map_id_of(m) };
    }
    arena_fds_fini(&j.old);
    free(j.offered);
    *out = v;
    *n_out = n;
    return MMAPIO_OK;
}
