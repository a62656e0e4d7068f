/*
 * test_reqmsg: the request checks and replies both daemons share
 * (daemon/requests/reqmsg.c): what an Open and a policy must be, and that
 * each reply packs to what a client unpacks.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "reqmsg.h"
#include "wire.h"

TestSuite(reqmsg, .timeout = 10);

Test(reqmsg, open_fields)
{
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
    cr_assert(reqmsg_open_valid(&o));
    o.mode = MMAPIO__MODE__MODE_COPY_ON_WRITE;
    o.perm = 0777;
    cr_assert(reqmsg_open_valid(&o));
    o.mode = (Mmapio__Mode)(MMAPIO__MODE__MODE_COPY_ON_WRITE + 1);
    cr_assert(!reqmsg_open_valid(&o), "mode past the last");
    o.mode = (Mmapio__Mode)-1;
    cr_assert(!reqmsg_open_valid(&o), "a negative mode");
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    o.perm = 01000;
    cr_assert(!reqmsg_open_valid(&o), "bits beyond 0777");
    o.perm = 0600;
    o.policy = &pol;
    pol.kind = MMAPIO__FLUSH_KIND__FLUSH_EVERY_MILLIS;
    pol.value = 0;
    cr_assert(!reqmsg_open_valid(&o), "every 0 ms");
    pol.value = 100;
    cr_assert(reqmsg_open_valid(&o));
}

Test(reqmsg, policy)
{
    Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
    mmapio_flush_policy p;
    cr_assert(!reqmsg_policy(NULL, &p), "a policy must be given");
    pol.kind = MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES;
    pol.value = 4096;
    cr_assert(reqmsg_policy(&pol, &p));
    cr_assert_eq(p.kind, MMAPIO_FLUSH_EVERY_BYTES);
    cr_assert_eq(p.value, 4096);
    pol.kind = (Mmapio__FlushKind)99;
    cr_assert(!reqmsg_policy(&pol, &p));
}

/* r packed and unpacked as a client would. */
static Mmapio__Reply *round_trip(const Mmapio__Reply *r)
{
    size_t n = mmapio__reply__get_packed_size(r);
    uint8_t *buf = malloc(n ? n : 1);
    cr_assert_not_null(buf);
    mmapio__reply__pack(r, buf);
    Mmapio__Reply *back = mmapio__reply__unpack(NULL, n, buf);
    free(buf);
    cr_assert_not_null(back);
    return back;
}

Test(reqmsg, replies)
{
    struct reqmsg b;
    mmapio_flush_policy every = { MMAPIO_FLUSH_EVERY_WRITES, 3 };

    Mmapio__Reply *r = round_trip(reqmsg_hello(&b, 1, 65536, 64, 256, 1024));
    cr_assert_eq(r->id, 1);
    cr_assert_eq(r->result_case, MMAPIO__REPLY__RESULT_HELLO);
    cr_assert_eq(r->hello->protocol, WIRE_PROTOCOL);
    cr_assert_str_eq(r->hello->server_version, MMAPIO_VERSION);
    cr_assert_eq(r->hello->max_frame, 65536);
    cr_assert_eq(r->hello->max_inflight, 64);
    cr_assert_eq(r->hello->max_events, 256);
    cr_assert_eq(r->hello->ctl_slots, 1024);
    mmapio__reply__free_unpacked(r, NULL);

    r = round_trip(reqmsg_open(&b, 2, 7, 8, 4096, 9, every));
    cr_assert_eq(r->result_case, MMAPIO__REPLY__RESULT_OPEN);
    cr_assert_eq(r->open->handle, 7);
    cr_assert_eq(r->open->map_id, 8);
    cr_assert_eq(r->open->size, 4096);
    cr_assert_eq(r->open->ctl_slot, 9);
    cr_assert_eq(r->open->arena, 0);
    cr_assert_eq(r->open->policy->kind, MMAPIO__FLUSH_KIND__FLUSH_EVERY_WRITES);
    cr_assert_eq(r->open->policy->value, 3);
    mmapio__reply__free_unpacked(r, NULL);

    r = round_trip(reqmsg_stat(&b, 3, 8192, 2, every));
    cr_assert_eq(r->result_case, MMAPIO__REPLY__RESULT_STAT);
    cr_assert_eq(r->stat->size, 8192);
    cr_assert_eq(r->stat->holders, 2);
    cr_assert_eq(r->stat->policy->value, 3);
    mmapio__reply__free_unpacked(r, NULL);

    r = round_trip(reqmsg_watch(&b, 4, 11, 12));
    cr_assert_eq(r->result_case, MMAPIO__REPLY__RESULT_WATCH);
    cr_assert_eq(r->watch->watch_id, 11);
    cr_assert_eq(r->watch->map_id, 12);
    mmapio__reply__free_unpacked(r, NULL);

    r = round_trip(reqmsg_flushed(&b, 5, 6, 1));
    cr_assert_eq(r->result_case, MMAPIO__REPLY__RESULT_FLUSHED);
    cr_assert_eq(r->flushed->flushed, 6);
    cr_assert_eq(r->flushed->failed, 1);
    mmapio__reply__free_unpacked(r, NULL);

    Mmapio__MapInfo info = MMAPIO__MAP_INFO__INIT;
    info.id = 13;
    r = round_trip(reqmsg_map(&b, 6, &info));
    cr_assert_eq(r->id, 6);
    cr_assert_eq(r->result_case, MMAPIO__REPLY__RESULT_MAP);
    cr_assert_eq(r->map->id, 13);
    mmapio__reply__free_unpacked(r, NULL);
}
