/*
 * test_evhold: MODIFIED events held for a reader that is behind
 * (daemon/transport/evhold.h), without a daemon.
 *   merging      touching ranges become one; apart ones stay apart up to
 *                EVHOLD_RANGES, then the nearest join.
 *   coverage     random ranges over many rounds: every byte added is in a
 *                range sent, and no more than EVHOLD_RANGES go per mapping.
 *   without range  supersedes the ranges of its mapping only.
 *   full         a new mapping past EVHOLD_MAPS is refused, h unchanged;
 *                other kinds are never held.
 *   order        mappings are sent in the order first held.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "evhold.h"

struct sent {
    int n;
    Mmapio__Event ev[64];
};

static void record(void *arg, Mmapio__Event *ev)
{
    struct sent *s = arg;
    cr_assert_lt(s->n, 64);
    s->ev[s->n++] = *ev;
}

static Mmapio__Event modified(uint64_t map, uint64_t off, uint64_t len)
{
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    ev.kind = MMAPIO__EVENT_KIND__EVENT_MODIFIED;
    ev.map_id = map;
    ev.size = 1 << 20;
    ev.has_range = true;
    ev.offset = off;
    ev.len = len;
    return ev;
}

static bool add(struct evhold *h, uint64_t map, uint64_t off, uint64_t len)
{
    Mmapio__Event ev = modified(map, off, len);
    return evhold_add(h, &ev);
}

/* The sent ranges of map, sorted by offset, into lo/hi; their count. */
static int ranges_of(const struct sent *s, uint64_t map, uint64_t *lo,
                     uint64_t *hi)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->ev[i].map_id != map || !s->ev[i].has_range)
            continue;
        uint64_t l = s->ev[i].offset, e = l + s->ev[i].len;
        int j = n++;
        while (j > 0 && lo[j - 1] > l) {
            lo[j] = lo[j - 1];
            hi[j] = hi[j - 1];
            j--;
        }
        lo[j] = l;
        hi[j] = e;
    }
    return n;
}

Test(evhold, touching_ranges_merge_apart_ones_stay)
{
    struct evhold h = { 0 };
    struct sent s = { 0 };
    cr_assert(add(&h, 7, 0, 64));
    cr_assert(add(&h, 7, 64, 64));    /* touches */
    cr_assert(add(&h, 7, 32, 16));    /* inside */
    cr_assert(add(&h, 7, 1000, 10));  /* apart */
    cr_assert(add(&h, 7, 5000, 10));  /* apart */
    evhold_flush(&h, record, &s);
    uint64_t lo[8], hi[8];
    cr_assert_eq(ranges_of(&s, 7, lo, hi), 3);
    cr_assert(lo[0] == 0 && hi[0] == 128);
    cr_assert(lo[1] == 1000 && hi[1] == 1010);
    cr_assert(lo[2] == 5000 && hi[2] == 5010);
    cr_assert_eq(h.n, 0, "flushed: nothing held");
}

Test(evhold, past_the_ranges_the_nearest_join)
{
    struct evhold h = { 0 };
    struct sent s = { 0 };
    for (uint64_t i = 0; i < EVHOLD_RANGES; i++)
        cr_assert(add(&h, 1, i * 10000, 1));
    cr_assert(add(&h, 1, 10100, 1)); /* nearest: the one at 10000 */
    evhold_flush(&h, record, &s);
    uint64_t lo[8], hi[8];
    cr_assert_eq(ranges_of(&s, 1, lo, hi), EVHOLD_RANGES);
    cr_assert(lo[1] == 10000 && hi[1] == 10101, "[%llu, %llu)",
              (unsigned long long)lo[1], (unsigned long long)hi[1]);
    cr_assert(lo[0] == 0 && hi[0] == 1);
}

Test(evhold, every_byte_added_is_sent)
{
    enum { SPAN = 4096 };
    srand(12345);
    for (int round = 0; round < 2000; round++) {
        struct evhold h = { 0 };
        struct sent s = { 0 };
        static bool want[3][SPAN];
        memset(want, 0, sizeof(want));
        int adds = 1 + rand() % 40;
        for (int i = 0; i < adds; i++) {
            uint64_t map = (uint64_t)(rand() % 3);
            uint64_t off = (uint64_t)(rand() % SPAN);
            uint64_t len = 1 + (uint64_t)(rand() % 64);
            if (off + len > SPAN)
                len = SPAN - off;
            cr_assert(add(&h, map, off, len));
            for (uint64_t b = off; b < off + len; b++)
                want[map][b] = true;
        }
        evhold_flush(&h, record, &s);
        for (uint64_t map = 0; map < 3; map++) {
            uint64_t lo[8], hi[8];
            int n = ranges_of(&s, map, lo, hi);
            cr_assert_leq(n, EVHOLD_RANGES);
            for (int i = 1; i < n; i++)
                cr_assert_lt(hi[i - 1], lo[i], "round %d: sent ranges "
                             "touch or overlap", round);
            for (uint64_t b = 0; b < SPAN; b++) {
                if (!want[map][b])
                    continue;
                bool in = false;
                for (int i = 0; i < n && !in; i++)
                    in = b >= lo[i] && b < hi[i];
                cr_assert(in, "round %d: byte %llu of map %llu added, "
                          "not sent", round, (unsigned long long)b,
                          (unsigned long long)map);
            }
        }
    }
}

Test(evhold, without_a_range_supersedes_its_mapping_only)
{
    struct evhold h = { 0 };
    struct sent s = { 0 };
    cr_assert(add(&h, 1, 0, 10));
    cr_assert(add(&h, 2, 0, 10));
    Mmapio__Event any = modified(1, 0, 0);
    any.has_range = false;
    cr_assert(evhold_add(&h, &any));
    cr_assert(add(&h, 1, 50, 10)); /* "anything" covers it already */
    evhold_flush(&h, record, &s);
    cr_assert_eq(s.n, 2);
    cr_assert(s.ev[0].map_id == 1 && !s.ev[0].has_range);
    cr_assert(s.ev[1].map_id == 2 && s.ev[1].has_range &&
              s.ev[1].offset == 0 && s.ev[1].len == 10);
}

Test(evhold, full_and_other_kinds_are_refused)
{
    struct evhold h = { 0 };
    for (uint64_t m = 0; m < EVHOLD_MAPS; m++)
        cr_assert(add(&h, m, 0, 1));
    cr_assert_not(add(&h, 99, 0, 1), "a mapping past EVHOLD_MAPS held");
    cr_assert(add(&h, 3, 100, 1), "a mapping held still merges");
    cr_assert_eq(h.n, EVHOLD_MAPS);
    Mmapio__Event ev = modified(0, 0, 1);
    ev.kind = MMAPIO__EVENT_KIND__EVENT_REMOVED;
    cr_assert_not(evhold_add(&h, &ev));
    ev = modified(0, UINT64_MAX - 1, 5); /* wraps: never held */
    cr_assert_not(evhold_add(&h, &ev));
    struct sent s = { 0 };
    evhold_flush(&h, record, &s);
    cr_assert_eq(s.n, EVHOLD_MAPS + 1); /* map 3 has two ranges */
    for (int i = 1; i < s.n; i++)
        cr_assert_leq(s.ev[i - 1].map_id, s.ev[i].map_id, "sent out of order");
}
