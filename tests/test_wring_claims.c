/*
 * test_wring_claims: the write ring's protocol (common/wring.h) on its
 * own, in private memory: threads push flat out while a consumer drains
 * as the daemon does (a cell counts once its seq is its position + 1).
 * Every push arrives exactly once, in its thread's order, or was reported
 * dropped (and its handle's lost bit set); a push after the consumer
 * armed the ring returns WAKE, once; an overflow after a drain knocks,
 * once per drain. Fenced (takes = WRING_TAKES_FENCED): each thread
 * extends its own cell by plain stores, the consumer takes cells, fences
 * (membarrier) and reads them, and every push is covered, at least once;
 * so is it when each thread knows its cell and extends it without
 * reading it back (wring_push_own, the library's way).
 */
#include <criterion/criterion.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "wring.h"

#define THREADS 4
#define PUSHES 400000L

static struct wring_hdr *ring;
static atomic_bool producers_done;

struct producer {
    uint64_t handle;
    long dropped, wakes, knocks;
};

static void *produce(void *p)
{
    struct producer *pr = p;
    for (long i = 1; i <= PUSHES; i++) {
        enum wring_push r = wring_push(ring, pr->handle, (uint64_t)i, 1, NULL);
        pr->dropped += r == WRING_DROPPED || r == WRING_KNOCK;
        pr->wakes += r == WRING_WAKE;
        pr->knocks += r == WRING_KNOCK || r == WRING_BIG;
    }
    return NULL;
}

/* What the consumer saw of each handle. */
static uint64_t last[THREADS + 1];
static long got[THREADS + 1];
static long out_of_order;

static long bad_handles;
static uint64_t head;
static long drains;

static void drain_once(void)
{
    uint64_t tail = atomic_load(&ring->tail);
    while (head != tail) {
        struct wring_cell *c = &ring->cells[head % WRING_CELLS];
        /* Taken as the daemon takes it: no writer extends it after. */
        uint64_t want = head + 1;
        if (!atomic_compare_exchange_strong(&c->seq, &want,
                                            (head + 1) | WRING_TAKEN))
            break;
        uint64_t h = c->handle, off = c->offset, len;
        if (!wring_len_of(head, c->len, &len) || h < 1 || h > THREADS ||
            len == 0) {
            bad_handles++;
        } else {
            out_of_order += off <= last[h];
            last[h] = off + len - 1;
            got[h] += (long)len;
        }
        head++;
    }
    atomic_store_explicit(&ring->head, head, memory_order_release);
    /* As the daemon does after each drain (it also clears lost[], which
     * this test reads at the end instead). */
    atomic_store_explicit(&ring->knock, 1, memory_order_release);
    drains++;
}

/* The consumer: drains until the producers are done, then once more. */
static void *consume(void *p)
{
    (void)p;
    while (!atomic_load(&producers_done))
        drain_once();
    drain_once();
    return NULL;
}

/* Pushes of offset i, length 1 (each continues its thread's last one):
 * with `takes`, consecutive pushes of one thread extend a cell. */
static void every_push_arrives(bool takes)
{
    ring = aligned_alloc(64, WRING_SIZE);
    cr_assert_not_null(ring);
    memset(ring, 0, WRING_SIZE);
    memset(last, 0, sizeof(last));
    memset(got, 0, sizeof(got));
    out_of_order = bad_handles = drains = 0;
    head = 0;
    atomic_store(&producers_done, false);
    atomic_store(&ring->takes, takes ? 1 : 0);
    pthread_t t[THREADS], ct;
    struct producer pr[THREADS];
    cr_assert_eq(pthread_create(&ct, NULL, consume, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        pr[i] = (struct producer){ .handle = (uint64_t)i + 1 };
        cr_assert_eq(pthread_create(&t[i], NULL, produce, &pr[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&producers_done, true);
    pthread_join(ct, NULL);

    long knocks = 0;
    cr_assert_eq(bad_handles, 0, "%ld cells of no producer", bad_handles);
    cr_assert_eq(atomic_load(&ring->tail), head, "cells left unpublished");
    cr_assert_eq(out_of_order, 0, "%ld cells out of their thread's order",
                 out_of_order);
    for (int i = 0; i < THREADS; i++) {
        uint64_t h = pr[i].handle;
        cr_assert_eq(got[h] + pr[i].dropped, PUSHES,
                     "handle %llu: %ld bytes arrived, %ld dropped, of %ld",
                     (unsigned long long)h, got[h], pr[i].dropped, PUSHES);
        if (pr[i].dropped) {
            uint32_t b = wring_lost_bit(h);
            cr_assert(atomic_load(&ring->lost[b / 64]) >> (b % 64) & 1,
                      "handle %llu dropped pushes, its lost bit is clear",
                      (unsigned long long)h);
        }
        cr_assert_eq(pr[i].wakes, 0, "a wake-up while nobody was armed");
        knocks += pr[i].knocks;
    }
    cr_assert_leq(knocks, drains, "%ld knocks for %ld drains", knocks, drains);

    /* Armed: the next push wakes, the one after does not. */
    atomic_store(&ring->armed, 1);
    cr_assert_eq(wring_push(ring, 1, 0, 1, NULL), WRING_WAKE);
    cr_assert_eq(wring_push(ring, 1, 0, 1, NULL), WRING_PUSHED);
    free(ring);
}

Test(wring_claims, every_push_arrives_once_in_order_or_is_reported_dropped)
{
    every_push_arrives(false);
}

Test(wring_claims, extended_cells_cover_every_push_once)
{
    every_push_arrives(true);
}

/* One writer: a push continuing the last cell extends it until the
 * consumer takes it; one that does not (another handle, a gap, a taken
 * cell) claims a new one; growing past WRING_KNOCK_BYTES knocks. */
Test(wring_claims, a_continuing_push_extends_the_last_cell_until_taken)
{
    struct wring_hdr *r = aligned_alloc(64, WRING_SIZE);
    cr_assert_not_null(r);
    memset(r, 0, WRING_SIZE);
    atomic_store(&r->takes, 1);
    cr_assert_eq(wring_push(r, 7, 0, 64, NULL), WRING_PUSHED);
    for (uint64_t i = 1; i < 100; i++)
        cr_assert_eq(wring_push(r, 7, i * 64, 64, NULL), WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 1, "continuing pushes claimed cells");
    cr_assert_eq(r->cells[0].offset, 0);
    cr_assert_eq(r->cells[0].len, 100 * 64);
    cr_assert_eq(wring_push(r, 8, 100 * 64, 64, NULL), WRING_PUSHED); /* handle */
    cr_assert_eq(wring_push(r, 8, 200 * 64, 64, NULL), WRING_PUSHED); /* gap */
    cr_assert_eq(atomic_load(&r->tail), 3);
    /* Taken: the next continuing push claims a cell of its own. */
    uint64_t want = 3;
    cr_assert(atomic_compare_exchange_strong(&r->cells[2].seq, &want,
                                             3 | WRING_TAKEN));
    cr_assert_eq(wring_push(r, 8, 201 * 64, 64, NULL), WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 4);
    cr_assert_eq(r->cells[2].len, 64, "a taken cell grew");
    /* A long append knocks once when its cell passes the mark. */
    atomic_store(&r->knock, 1);
    long knocks = 0;
    for (uint64_t o = 202 * 64; o < 202 * 64 + 2 * WRING_KNOCK_BYTES; o += 64)
        knocks += wring_push(r, 8, o, 64, NULL) == WRING_BIG;
    cr_assert_eq(knocks, 1);
    cr_assert_eq(atomic_load(&r->tail), 4);
    /* A daemon that does not take by CAS (takes = 0): no extension. */
    atomic_store(&r->takes, 0);
    cr_assert_eq(wring_push(r, 8, 202 * 64 + 2 * WRING_KNOCK_BYTES, 64, NULL),
                 WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 5);
    free(r);
}

/* One writer, the consumer's steps done by hand: an overflow knocks only
 * after a drain, once, and a wake-up owed (armed) goes first. */
Test(wring_claims, an_overflow_knocks_once_per_drain)
{
    struct wring_hdr *r = aligned_alloc(64, WRING_SIZE);
    cr_assert_not_null(r);
    memset(r, 0, WRING_SIZE);
    for (uint32_t i = 0; i < WRING_CELLS; i++)
        cr_assert_eq(wring_push(r, 7, i, 1, NULL), WRING_PUSHED);
    /* Never drained: nobody asked for a knock. */
    cr_assert_eq(wring_push(r, 7, 0, 1, NULL), WRING_DROPPED);

    for (int round = 0; round < 3; round++) {
        /* A drain: every cell read, the lost bits cleared, knock set. */
        atomic_store(&r->head, atomic_load(&r->tail));
        for (uint32_t i = 0; i < WRING_LOST_WORDS; i++)
            atomic_store(&r->lost[i], 0);
        atomic_store(&r->knock, 1);
        for (uint32_t i = 0; i < WRING_CELLS; i++)
            cr_assert_eq(wring_push(r, 7, i, 1, NULL), WRING_PUSHED,
                         "round %d: push %u with room", round, i);
        cr_assert_eq(atomic_load(&r->knock), 1, "a push with room knocked");
        cr_assert_eq(wring_push(r, 7, 0, 1, NULL), WRING_KNOCK,
                     "round %d: the first overflow", round);
        uint32_t b = wring_lost_bit(7);
        cr_assert(atomic_load(&r->lost[b / 64]) >> (b % 64) & 1);
        for (int i = 0; i < 100; i++)
            cr_assert_eq(wring_push(r, 7, 0, 1, NULL), WRING_DROPPED);
    }
    /* A knock whose notice found the socket full is put back: the next
     * overflow knocks again. */
    atomic_store(&r->knock, 1);
    cr_assert_eq(wring_push(r, 7, 0, 1, NULL), WRING_KNOCK);
    /* Armed and knock both set: the wake-up is taken, the knock stays. */
    atomic_store(&r->armed, 1);
    atomic_store(&r->knock, 1);
    cr_assert_eq(wring_push(r, 7, 0, 1, NULL), WRING_WAKE);
    cr_assert_eq(atomic_load(&r->knock), 1);
    free(r);
}

/* ---- fenced: plain extension by a cell's claimer ------------------------ */

#define FPUSHES 200000L
static uint8_t fcovered[THREADS + 1][FPUSHES + 1];
static long fdrains;
/* Cells whose length had another lap's (a late store, wring.h): their
 * holder was told that anything may have changed. */
static long flapped[THREADS + 1];

static bool fknown; /* producers keep their cell (wring_push_own) */

/* Each producer thread: offsets 1..FPUSHES of its handle, each one
 * continuing the last, with its own `mine` (or wring_own, which also
 * knows its cell); every 64th push first writes offset 1 again, a write
 * that does not continue, so cells are claimed often and the ring turns
 * laps while a producer may be stopped between its check and its store
 * (wring.h's lap in the length: without it a late store cut another
 * write's cell short, losing most of that thread's pushes). */
static void *fproduce(void *p)
{
    struct producer *pr = p;
    uint64_t mine = 0;
    struct wring_own own = { 0 };
    for (long i = 1; i <= FPUSHES; i++) {
        enum wring_push r;
        if (fknown) {
            if (i % 64 == 0) {
                r = wring_push_own(ring, &own, pr->handle, 1, 1);
                pr->dropped += r == WRING_DROPPED || r == WRING_KNOCK;
            }
            r = wring_push_own(ring, &own, pr->handle, (uint64_t)i, 1);
        } else {
            if (i % 64 == 0) {
                r = wring_push(ring, pr->handle, 1, 1, &mine);
                pr->dropped += r == WRING_DROPPED || r == WRING_KNOCK;
            }
            r = wring_push(ring, pr->handle, (uint64_t)i, 1, &mine);
        }
        pr->dropped += r == WRING_DROPPED || r == WRING_KNOCK;
    }
    return NULL;
}

/* As the daemon drains a fenced ring: take, fence, read. */
static void fdrain_once(void)
{
    uint64_t tail = atomic_load(&ring->tail), taken = head;
    while (taken != tail) {
        uint64_t want = taken + 1;
        if (!atomic_compare_exchange_strong(
                &ring->cells[taken % WRING_CELLS].seq, &want,
                (taken + 1) | WRING_TAKEN))
            break;
        taken++;
    }
    if (taken != head)
        cr_assert_eq(syscall(SYS_membarrier,
                             MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0), 0);
    for (; head != taken; head++) {
        struct wring_cell *c = &ring->cells[head % WRING_CELLS];
        uint64_t h = *(volatile uint64_t *)&c->handle;
        uint64_t off = *(volatile uint64_t *)&c->offset;
        uint64_t len;
        bool lap_ok = wring_len_of(head, *(volatile uint64_t *)&c->len, &len);
        if (h < 1 || h > THREADS || off < 1 ||
            (lap_ok && len > FPUSHES + 1 - off)) {
            bad_handles++;
            continue;
        }
        if (!lap_ok) {
            flapped[h]++;
            continue;
        }
        memset(&fcovered[h][off], 1, len);
    }
    atomic_store_explicit(&ring->head, head, memory_order_release);
    atomic_store_explicit(&ring->knock, 1, memory_order_release);
    fdrains++;
}

static void *fconsume(void *p)
{
    (void)p;
    while (!atomic_load(&producers_done))
        fdrain_once();
    fdrain_once();
    return NULL;
}

static void fenced_covers_every_push(bool known)
{
    fknown = known;
    /* In one process the private barrier stands for the daemon's global
     * one: both run a full barrier on every thread of ours running. */
    cr_assert_eq(syscall(SYS_membarrier,
                         MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0), 0);
    ring = aligned_alloc(64, WRING_SIZE);
    cr_assert_not_null(ring);
    memset(ring, 0, WRING_SIZE);
    memset(fcovered, 0, sizeof(fcovered));
    bad_handles = fdrains = 0;
    memset(flapped, 0, sizeof(flapped));
    head = 0;
    atomic_store(&producers_done, false);
    atomic_store(&ring->takes, WRING_TAKES_FENCED);
    pthread_t t[THREADS], ct;
    struct producer pr[THREADS];
    cr_assert_eq(pthread_create(&ct, NULL, fconsume, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        pr[i] = (struct producer){ .handle = (uint64_t)i + 1 };
        cr_assert_eq(pthread_create(&t[i], NULL, fproduce, &pr[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&producers_done, true);
    pthread_join(ct, NULL);

    cr_assert_eq(bad_handles, 0, "%ld cells of no producer", bad_handles);
    cr_assert_eq(atomic_load(&ring->tail), head, "cells left unpublished");
    for (int i = 0; i < THREADS; i++) {
        uint64_t h = pr[i].handle;
        long missing = 0;
        if (flapped[h]) /* told "anything may have changed" */
            continue;
        for (long o = 1; o <= FPUSHES; o++)
            missing += !fcovered[h][o];
        cr_assert_leq(missing, pr[i].dropped,
                      "handle %llu: %ld pushes covered by no cell, %ld "
                      "dropped", (unsigned long long)h, missing,
                      pr[i].dropped);
        if (missing) {
            uint32_t b = wring_lost_bit(h);
            cr_assert(atomic_load(&ring->lost[b / 64]) >> (b % 64) & 1,
                      "handle %llu dropped pushes, its lost bit is clear",
                      (unsigned long long)h);
        }
    }
    cr_log_info("%ld drains", fdrains);
    free(ring);
}

Test(wring_claims, fenced_own_extension_covers_every_push)
{
    for (int round = 0; round < 20; round++) /* a race: give it chances */
        fenced_covers_every_push(false);
}

/* The library's path: a thread that knows its cell extends it without
 * reading it back, racing the consumer's takes. */
Test(wring_claims, fenced_known_extension_covers_every_push)
{
    for (int round = 0; round < 20; round++) /* a race: give it chances */
        fenced_covers_every_push(true);
}

/* One thread extends only the cell it claimed; another's continuing push
 * claims its own; a taken cell is not extended. */
Test(wring_claims, fenced_only_the_claimer_extends)
{
    struct wring_hdr *r = aligned_alloc(64, WRING_SIZE);
    cr_assert_not_null(r);
    memset(r, 0, WRING_SIZE);
    atomic_store(&r->takes, WRING_TAKES_FENCED);
    uint64_t a = 0, b = 0;
    for (uint64_t i = 0; i < 100; i++)
        cr_assert_eq(wring_push(r, 7, i * 64, 64, &a), WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 1, "the claimer claimed cells");
    cr_assert_eq(r->cells[0].len, 100 * 64);
    cr_assert_eq(wring_push(r, 7, 100 * 64, 64, &b), WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 2, "another thread extended a cell");
    cr_assert_eq(wring_push(r, 7, 101 * 64, 64, &a), WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 3, "a cell not the last was grown");
    uint64_t want = 3;
    cr_assert(atomic_compare_exchange_strong(&r->cells[2].seq, &want,
                                             3 | WRING_TAKEN));
    cr_assert_eq(wring_push(r, 7, 102 * 64, 64, &a), WRING_PUSHED);
    cr_assert_eq(atomic_load(&r->tail), 4);
    cr_assert_eq(r->cells[2].len, 64, "a taken cell grew");
    free(r);
}

/* A writer stopped between its check and its store (wring.h): by the
 * time it stores, its cell was read and the slot claimed again a lap
 * later by another write. Its store carries its own lap, so the reader of
 * the new cell knows the length is not that write's. */
Test(wring_claims, a_late_store_into_a_reused_cell_is_known_by_its_lap)
{
    struct wring_hdr *r = aligned_alloc(64, WRING_SIZE);
    cr_assert_not_null(r);
    memset(r, 0, WRING_SIZE);
    atomic_store(&r->takes, WRING_TAKES_FENCED);
    struct wring_own late = { 0 };
    cr_assert_eq(wring_push_own(r, &late, 1, 0, 64), WRING_PUSHED);
    cr_assert_not_null(late.cell, "the writer knows its cell");
    struct wring_cell *c = late.cell;
    uint64_t l;
    cr_assert(wring_len_of(0, c->len, &l) && l == 64);
    /* Read, and the ring turned a whole lap: the slot's next claim. */
    atomic_store(&c->seq, 1 | WRING_TAKEN);
    atomic_store(&r->head, WRING_CELLS);
    atomic_store(&r->tail, WRING_CELLS);
    cr_assert_eq(wring_push(r, 2, 4096, 8, NULL), WRING_PUSHED);
    cr_assert_eq(atomic_load(&c->seq), WRING_CELLS + 1, "not the same slot");
    cr_assert(wring_len_of(WRING_CELLS, c->len, &l) && l == 8);
    /* The late writer's store, as wring_extend_known makes it. */
    __atomic_store_n(&c->len, wring_len_word(late.pos - 1, late.len + 64),
                     __ATOMIC_RELEASE);
    cr_assert_not(wring_len_of(WRING_CELLS, c->len, &l),
                  "a late store of the lap before taken for this write's");
    /* And the late writer itself does not take the cell for its own. */
    cr_assert_neq(wring_push_own(r, &late, 1, 64, 64), WRING_DROPPED);
    cr_assert_eq(atomic_load(&r->tail), WRING_CELLS + 2,
                 "the late write was not recorded in a cell of its own");
    free(r);
}
