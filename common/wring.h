/*
 * wring: the write ring, how a writer tells the daemon what it changed in
 * a watched mapping without a system call per write.
 *
 * One ring per connection that holds a mapping read-write (charged to its
 * uid against max_write_rings_per_uid; a connection refused one tells its
 * writes by notices, client/notice.h): a sealed memfd
 * (size fixed, so no client can make the daemon fault on it) that the
 * daemon creates on a WriteRing request and maps, and the client maps
 * read-write. A write on a watched mapping claims a cell (a CAS on tail,
 * no lock: any thread of the process may write), fills in (handle, offset,
 * len) and publishes it by storing the cell's seq = position + 1
 * (release). Nothing else happens on the writer's path, unless the daemon
 * said it sleeps (armed = 1): the one writer that takes `armed` back to 0
 * sends a one-way RING notice without waiting (MSG_DONTWAIT; if the socket
 * is full it puts `armed` back, and the daemon drains the ring anyway when
 * it reads that connection). So the daemon is woken at most once per
 * batch, and a stopped or busy daemon never blocks a writer.
 *
 * The daemon drains a ring when woken, then again every WRING_POLL_MS
 * while it keeps finding cells (doubling up to WRING_POLL_MAX_MS while
 * the ring overflows or a cell stays half written, so a writer outrunning
 * it, or one that never finishes a cell, costs little); only a drain that finds the ring empty
 * arms it again (store armed, full fence, look at tail and lost once more:
 * a write claimed meanwhile is seen either by the daemon or by its writer,
 * who then sees armed). It merges each drain's ranges per mapping and tells
 * watchers MODIFIED with the merged ranges.
 *
 * A write that continues the last cell (same handle, offset where the
 * cell ends) extends it instead, unless the daemon took it already
 * (wring_extend; only when the daemon set `takes`): a writer appending
 * sequentially fills one cell per drain, however fast, and its watchers
 * get exact ranges. Such a cell growing past WRING_KNOCK_BYTES knocks as
 * an overflow does, so watchers hear of a long append a batch at a time.
 *
 * Extending by a CAS costs a locked instruction a write. When the daemon
 * set takes = WRING_TAKES_FENCED it puts a membarrier(2)
 * (GLOBAL_EXPEDITED) between taking cells and reading them, and a process
 * that registered for it (the library does, mapping the ring) extends
 * the cell its thread claimed last with plain stores (wring_extend_own):
 * store len, then look at seq again; the daemon CASes seq, membarrier,
 * then reads len. The barrier orders the writer's two accesses as a
 * fence would, so either the daemon reads the new len or the writer sees
 * the cell taken and claims a new one for its range (told twice, never
 * missed). Only the thread that claimed a cell extends it then (others
 * claim their own), so writers never race on len; so the thread knows
 * what its cell holds, and the library's writers keep it (wring_own,
 * wring_push_own): a write continuing it stores the new length and
 * checks seq before and after, reading nothing else of the ring but
 * tail (still its cell?) and knock_at (the library does this inline in
 * update_region: client/notice.h, notice_range_fast). While the daemon is
 * busy it leaves the last cell untaken (live): it reads how far it grew
 * and tells that much, and sets knock_at to that length plus
 * WRING_KNOCK_BYTES; it takes the cell (and fences) once it stopped
 * growing, or is no longer the last, before it sleeps. So a sequential
 * writer costs the daemon no barrier while it writes.
 *
 * Ring full: the writer does not wait. It sets its handle's bit in `lost`
 * (a bitmap hashed by handle) and the write is not in the ring; the daemon
 * clears the bitmap on each drain and tells the watchers of every mapping
 * whose holder's bit was set MODIFIED without a range (and not the ranges
 * of that drain too: "anything" covers them). So every written byte is
 * covered by a range or by "anything may have changed". The first writer
 * to overflow after a drain knocks: the daemon sets `knock` at the end of
 * each drain, and the writer that takes it back to 0 on an overflow sends
 * one RING notice (MSG_DONTWAIT, as for `armed`), so a writer outrunning
 * the ring has it drained at once, not at the next poll (which backs off
 * to WRING_POLL_MAX_MS). At most one knock per drain: a writer flat out
 * makes one system call per ring it fills, none per write.
 *
 * Releases (mmapio_unmap), when the daemon's WriteRingReply said
 * `releases`: a cell (handle, WRING_RELEASE, 0) releases that holder, in
 * ring order after the writes before it. While `lazy` is 1 the daemon
 * promises to drain the ring within WRING_LAZY_MS without being told:
 * it sets lazy at each request of the connection and clears it at the
 * first sweep that found no request since. A release seen with lazy set
 * wakes nobody; else it takes `armed` as a write does. The daemon clears
 * lazy, then (full fence) looks at tail; the releaser claims its cell (a
 * full barrier), then looks at lazy: one of them sees the other. The
 * daemon also drains rings before anything that counts a mapping's
 * holders, and at the connection's end: a released holder is gone by the
 * time anyone can tell, at most WRING_LAZY_MS after the release.
 *
 * Trust: the client may write anything anywhere in its ring. The daemon
 * keeps its own head, reads tail and each cell once (after taking it by a
 * CAS of its seq, its only store to a cell; a seq it cannot take is a
 * cell not yet published), validates every value
 * (a tail more than a ring ahead is an overflow of every mapping the
 * client writes; a handle must be the connection's own read-write holder;
 * a range is clipped to the mapping's size), reads at most one ring of
 * cells per drain, and stops at a cell not yet published (it looks again
 * at the next poll). A client can so only lie about mappings
 * it may write anyway, and only stall its own ring.
 */
#ifndef MMAPIO_WRING_H
#define MMAPIO_WRING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WRING_CELLS 4096u           /* a power of two */
#define WRING_LOST_WORDS 16u        /* 1024 bits of "ranges dropped" */
#define WRING_POLL_MS 1             /* the daemon's next look while busy */
#define WRING_POLL_MAX_MS 8         /* ... while it overflows or sticks */
#define WRING_LAZY_MS 20            /* the daemon's sweep while lazy is 1 */
#define WRING_RELEASE UINT64_MAX    /* a cell's offset: release the handle */
#define WRING_BUSY (UINT64_C(1) << 63)   /* seq: a writer extends the cell */
#define WRING_TAKEN (UINT64_C(1) << 62)  /* seq: the daemon read the cell */
#define WRING_KNOCK_BYTES (256u << 10)   /* an extended cell this long knocks */
#define WRING_TAKES_FENCED 2u       /* takes: ... and fences before reading */

struct wring_cell {
    _Atomic uint64_t seq;           /* position + 1 once published */
    uint64_t handle;                /* the connection's holder */
    uint64_t offset, len;
};

struct wring_hdr {
    _Alignas(64) _Atomic uint64_t tail;  /* next position to claim (writers) */
    _Alignas(64) _Atomic uint64_t head;  /* positions below were read (daemon) */
    _Atomic uint32_t armed;              /* 1: the daemon waits for a notice */
    _Atomic uint32_t lazy;               /* 1: the daemon drains soon anyway */
    _Atomic uint32_t knock;              /* 1: an overflow wakes the daemon */
    _Atomic uint32_t takes;              /* 1: the daemon takes cells by CAS;
                                            2: and fences (membarrier) */
    _Atomic uint64_t knock_at;           /* fenced: the live cell's length
                                            that knocks (set by the daemon) */
    _Alignas(64) _Atomic uint64_t lost[WRING_LOST_WORDS];
    _Alignas(64) struct wring_cell cells[WRING_CELLS];
};

#define WRING_SIZE sizeof(struct wring_hdr)

/*
 * A cell's len word: the length in its low WRING_LEN_BITS bits, and above
 * them the lap of the cell's position (position / WRING_CELLS, 16 bits).
 * A writer stores a length only into the cell it claimed, but a thread
 * stopped between its check of seq and its store (preempted, its vCPU
 * descheduled) may store after the daemon read the cell and the slot was
 * claimed again, laps later, by another write: that store carries the old
 * lap. A reader who finds a lap not the cell's knows the length is not
 * that write's, and takes the cell for "anything may have changed" for
 * its holder (the late writer's own write is recorded again: it sees the
 * cell taken). A length past WRING_LEN_MAX is never recorded: such a
 * write sets its lost bit.
 */
#define WRING_LEN_BITS 48
#define WRING_LEN_MAX ((UINT64_C(1) << WRING_LEN_BITS) - 1)

static inline uint64_t wring_lap(uint64_t pos)
{
    return (pos / WRING_CELLS) & 0xFFFF;
}

static inline uint64_t wring_len_word(uint64_t pos, uint64_t len)
{
    return wring_lap(pos) << WRING_LEN_BITS | (len & WRING_LEN_MAX);
}

/* The length in a len word of the cell at `pos`; false when its lap is
 * not that cell's (a late store of an earlier lap's writer). */
static inline bool wring_len_of(uint64_t pos, uint64_t word, uint64_t *len)
{
    *len = word & WRING_LEN_MAX;
    return word >> WRING_LEN_BITS == wring_lap(pos);
}

static inline uint32_t wring_lost_bit(uint64_t handle)
{
    return (uint32_t)((handle * UINT64_C(0x9E3779B97F4A7C15)) >> 54); /* 0..1023 */
}

enum wring_push { WRING_PUSHED, WRING_WAKE, WRING_DROPPED, WRING_KNOCK,
                  WRING_BIG };

/*
 * A ring looks full when the tail we hold is stale: other writers claimed
 * cells and the daemon read past it since (pos - head wraps). Reloads the
 * tail; true when it moved, so the caller looks again.
 */
static inline bool wring_tail_moved(struct wring_hdr *r, uint64_t *pos)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t == *pos)
        return false;
    *pos = t;
    return true;
}

/*
 * Extends cell `last` (tail - 1) by [offset, offset+len) if it is a
 * published write of `handle` ending at `offset` that the daemon has not
 * taken: a CAS of its seq from last + 1 to last + 1 | WRING_BUSY makes it
 * ours (the daemon takes a cell by a CAS from last + 1 too, so one of the
 * two wins), then len grows and seq goes back (release). *big: the cell
 * now spans WRING_KNOCK_BYTES or more.
 */
static inline bool wring_extend(struct wring_hdr *r, uint64_t last,
                                uint64_t handle, uint64_t offset,
                                uint64_t len, bool *big)
{
    struct wring_cell *c = &r->cells[last % WRING_CELLS];
    uint64_t s = last + 1, l;
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != s ||
        __atomic_load_n(&c->handle, __ATOMIC_RELAXED) != handle ||
        !wring_len_of(last, __atomic_load_n(&c->len, __ATOMIC_RELAXED), &l) ||
        __atomic_load_n(&c->offset, __ATOMIC_RELAXED) + l != offset)
        return false;
    if (!atomic_compare_exchange_strong(&c->seq, &s, (last + 1) | WRING_BUSY))
        return false;
    /* Ours: looked at again, another thread may have extended it. */
    uint64_t o = __atomic_load_n(&c->offset, __ATOMIC_RELAXED);
    bool fits = wring_len_of(last, __atomic_load_n(&c->len, __ATOMIC_RELAXED),
                             &l) &&
                __atomic_load_n(&c->handle, __ATOMIC_RELAXED) == handle &&
                o != WRING_RELEASE && o + l == offset &&
                len <= WRING_LEN_MAX - l && len <= UINT64_MAX - o - l;
    if (fits) {
        __atomic_store_n(&c->len, wring_len_word(last, l + len),
                         __ATOMIC_RELAXED);
        *big = l < WRING_KNOCK_BYTES && l + len >= WRING_KNOCK_BYTES;
    }
    atomic_store_explicit(&c->seq, last + 1, memory_order_release);
    return fits;
}

/*
 * Extends cell `last`, which this thread claimed, by plain stores (only
 * with takes = WRING_TAKES_FENCED and the process registered for the
 * daemon's membarrier; see above): true when the daemon will read the new
 * length; false when the cell is not a continuation, or was taken before
 * or meanwhile (then the write needs a cell of its own).
 */
static inline bool wring_extend_own(struct wring_hdr *r, uint64_t last,
                                    uint64_t handle, uint64_t offset,
                                    uint64_t len, bool *big)
{
    struct wring_cell *c = &r->cells[last % WRING_CELLS];
    uint64_t s = last + 1;
    if (atomic_load_explicit(&c->seq, memory_order_relaxed) != s)
        return false;
    uint64_t o = __atomic_load_n(&c->offset, __ATOMIC_RELAXED), l;
    if (!wring_len_of(last, __atomic_load_n(&c->len, __ATOMIC_RELAXED), &l) ||
        __atomic_load_n(&c->handle, __ATOMIC_RELAXED) != handle ||
        o == WRING_RELEASE || o + l != offset || len > WRING_LEN_MAX - l ||
        len > UINT64_MAX - o - l)
        return false;
    /* Release: the write's data before its length. */
    __atomic_store_n(&c->len, wring_len_word(last, l + len), __ATOMIC_RELEASE);
    /* The daemon's membarrier is the fence between these two. */
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->seq, memory_order_relaxed) != s)
        return false;
    uint64_t mark = atomic_load_explicit(&r->knock_at, memory_order_relaxed);
    *big = (l < WRING_KNOCK_BYTES && l + len >= WRING_KNOCK_BYTES) ||
           (l < mark && l + len >= mark);
    return true;
}

/*
 * wring_extend_own for a writer that knows its cell: `pos` is the cell's
 * position + 1 (its seq), `l` its length, both as this thread left them
 * (only the claimer extends a fenced cell, so they cannot have changed
 * but by the daemon taking it). The same stores and checks, without
 * reading back what the cell holds: the write path of a thread appending
 * to the cell it claimed, with nothing else changed in the ring.
 */
static inline bool wring_extend_known(struct wring_hdr *r,
                                      struct wring_cell *c, uint64_t pos,
                                      uint64_t l, uint64_t len, bool *big)
{
    if (atomic_load_explicit(&r->tail, memory_order_relaxed) != pos ||
        atomic_load_explicit(&c->seq, memory_order_relaxed) != pos ||
        len > WRING_LEN_MAX - l)
        return false;
    __atomic_store_n(&c->len, wring_len_word(pos - 1, l + len),
                     __ATOMIC_RELEASE);
    atomic_signal_fence(memory_order_seq_cst); /* the daemon's membarrier */
    if (atomic_load_explicit(&c->seq, memory_order_relaxed) != pos)
        return false;
    uint64_t mark = atomic_load_explicit(&r->knock_at, memory_order_relaxed);
    *big = (l < WRING_KNOCK_BYTES && l + len >= WRING_KNOCK_BYTES) ||
           (l < mark && l + len >= mark);
    return true;
}

/*
 * The writer's side: records a write of [offset, offset+len) by holder
 * `handle`. WRING_WAKE: recorded, and the caller must send the RING
 * notice; WRING_DROPPED: the ring was full, the handle's lost bit is set
 * (and the caller sends the notice only if it gets WRING_WAKE later).
 * `mine` (NULL: none) is this thread's position + 1 of the last cell it
 * claimed in this ring, when it may extend that cell by plain stores
 * (wring_extend_own); a claim updates it.
 */
static inline enum wring_push wring_push(struct wring_hdr *r, uint64_t handle,
                                         uint64_t offset, uint64_t len,
                                         uint64_t *mine)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    bool room, big = false;
    uint32_t takes = pos ? atomic_load_explicit(&r->takes,
                                                memory_order_relaxed) : 0;
    /* A cell the daemon has not taken is one it will read (it sees tail
     * != head before it sleeps): extending it needs no wake-up. */
    if (mine && *mine == pos && takes == WRING_TAKES_FENCED &&
        wring_extend_own(r, pos - 1, handle, offset, len, &big)) {
        if (big && atomic_load_explicit(&r->knock, memory_order_relaxed) &&
            atomic_exchange(&r->knock, 0))
            return WRING_BIG;
        return WRING_PUSHED;
    }
    /* Each way out passes a full barrier (a CAS, or the fetch_or) after
     * the write's data and before `armed` is read: the other half of the
     * daemon's store armed; fence; look at tail and lost. An extended cell
     * is one the daemon has not read yet (it will, seeing tail != head).
     * With `mine`, only a cell's claimer extends it. */
    if (!mine && takes &&
        wring_extend(r, pos - 1, handle, offset, len, &big)) {
        if (atomic_load(&r->armed) && atomic_exchange(&r->armed, 0))
            return WRING_WAKE;
        if (big && atomic_load_explicit(&r->knock, memory_order_relaxed) &&
            atomic_exchange(&r->knock, 0))
            return WRING_BIG;
        return WRING_PUSHED;
    }
    for (;;) {
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        room = pos - head < WRING_CELLS && len <= WRING_LEN_MAX;
        if (!room && len <= WRING_LEN_MAX && wring_tail_moved(r, &pos))
            continue;
        if (!room) {
            uint32_t b = wring_lost_bit(handle);
            atomic_fetch_or(&r->lost[b / 64], UINT64_C(1) << (b % 64));
            break;
        }
        if (atomic_compare_exchange_weak(&r->tail, &pos, pos + 1))
            break;
    }
    if (room) {
        struct wring_cell *c = &r->cells[pos % WRING_CELLS];
        if (mine)
            *mine = pos + 1;
        c->handle = handle;
        c->offset = offset;
        c->len = wring_len_word(pos, len);
        atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    }
    /* A cell claimed but not yet published when the daemon wakes makes it
     * look again a little later: it never waits for it. */
    if (atomic_load(&r->armed) && atomic_exchange(&r->armed, 0))
        return WRING_WAKE;
    if (room)
        return WRING_PUSHED;
    if (atomic_load_explicit(&r->knock, memory_order_relaxed) &&
        atomic_exchange(&r->knock, 0))
        return WRING_KNOCK;
    return WRING_DROPPED;
}

/* A writer thread's own cell in one fenced ring: wring_push's `mine`,
 * and while that cell is a write of the thread's, what it holds (cell
 * NULL: not known), so the next write continuing it reads nothing back. */
struct wring_own {
    uint64_t pos;                  /* `mine`: its position + 1; 0: none */
    struct wring_cell *cell;
    uint64_t handle, end, len;
};

/* After wring_push with &o->pos recorded [.., end) of handle (not
 * dropped): what the thread's cell holds, when it is that write. */
static inline void wring_own_learn(struct wring_hdr *r, struct wring_own *o,
                                   uint64_t handle, uint64_t end)
{
    o->cell = NULL;
    if (o->pos == 0)
        return;
    struct wring_cell *c = &r->cells[(o->pos - 1) % WRING_CELLS];
    uint64_t off = __atomic_load_n(&c->offset, __ATOMIC_RELAXED), l;
    if (!wring_len_of(o->pos - 1, __atomic_load_n(&c->len, __ATOMIC_RELAXED),
                      &l) ||
        atomic_load_explicit(&c->seq, memory_order_relaxed) != o->pos ||
        __atomic_load_n(&c->handle, __ATOMIC_RELAXED) != handle ||
        off == WRING_RELEASE || l > UINT64_MAX - off || off + l != end)
        return;
    o->cell = c;
    o->handle = handle;
    o->end = end;
    o->len = l;
}

/* wring_push_own's way when the write does not continue the known cell,
 * or the cell changed: wring_push, then what the cell holds now. Kept
 * out of line, so the common way stays short. */
static __attribute__((noinline)) enum wring_push
wring_push_own_slow(struct wring_hdr *r, struct wring_own *o, uint64_t handle,
                    uint64_t offset, uint64_t len)
{
    enum wring_push got = wring_push(r, handle, offset, len, &o->pos);
    if (got == WRING_DROPPED || got == WRING_KNOCK ||
        len > UINT64_MAX - offset)
        o->cell = NULL;
    else
        wring_own_learn(r, o, handle, offset + len);
    return got;
}

/*
 * wring_push for a thread with its wring_own, in a fenced ring whose
 * daemon fences (takes = WRING_TAKES_FENCED, the process registered): a
 * write continuing the cell the thread knows is extended there
 * (wring_extend_known), anything else goes through wring_push, and the
 * thread learns its cell again.
 */
static inline enum wring_push wring_push_own(struct wring_hdr *r,
                                             struct wring_own *o,
                                             uint64_t handle, uint64_t offset,
                                             uint64_t len)
{
    bool big;
    if (o->cell && o->handle == handle && o->end == offset &&
        len <= UINT64_MAX - offset &&
        wring_extend_known(r, o->cell, o->pos, o->len, len, &big)) {
        o->end += len;
        o->len += len;
        if (big && atomic_load_explicit(&r->knock, memory_order_relaxed) &&
            atomic_exchange(&r->knock, 0))
            return WRING_BIG;
        return WRING_PUSHED;
    }
    return wring_push_own_slow(r, o, handle, offset, len);
}

/*
 * Records the release of holder `handle`. WRING_PUSHED: recorded, the
 * daemon reads it in time; WRING_WAKE: recorded, the caller must send the
 * RING notice; WRING_DROPPED: the ring is full, nothing was recorded (the
 * caller releases another way).
 */
static inline enum wring_push wring_release(struct wring_hdr *r,
                                            uint64_t handle)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (pos - head >= WRING_CELLS && !wring_tail_moved(r, &pos))
            return WRING_DROPPED;
        if (pos - head >= WRING_CELLS)
            continue;
        if (atomic_compare_exchange_weak(&r->tail, &pos, pos + 1))
            break;
    }
    struct wring_cell *c = &r->cells[pos % WRING_CELLS];
    c->handle = handle;
    c->offset = WRING_RELEASE;
    c->len = wring_len_word(pos, 0);
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    if (atomic_load(&r->lazy))
        return WRING_PUSHED;
    if (atomic_load(&r->armed) && atomic_exchange(&r->armed, 0))
        return WRING_WAKE;
    return WRING_PUSHED;
}

#endif
