/*
 * test_bounds: every data call checks its range before touching memory.
 * An out-of-range call is MMAPIO_E_OUT_OF_BOUNDS and changes nothing (no
 * partial write, no partial read into the caller's buffer); zero-length
 * calls at any offset up to the length succeed; offsets near 2^64 do not
 * wrap around.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"

TestSuite(bounds, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

enum { LEN = 4096 };
static mmapio_client *c;
static uint8_t pattern[LEN];

static mmapio_map *open_map(bool anonymous)
{
    mmapio_map *m;
    c = hz_client();
    if (anonymous)
        hz_assert_ok(mmapio_anon_create(c, "b", LEN, &m));
    else
        hz_assert_ok(mmapio_create_rw(c, "b.dat", LEN, &m));
    for (size_t i = 0; i < LEN; i++)
        pattern[i] = (uint8_t)(i * 31 + 7);
    hz_assert_ok(mmapio_update_region(m, 0, pattern, LEN));
    return m;
}

static void expect_unchanged(const mmapio_map *m)
{
    cr_assert_arr_eq(mmapio_as_ptr(m), pattern, LEN,
                     "a refused write changed the mapping");
}

static void writes_refused(mmapio_map *m)
{
    static const uint8_t junk[64] = { 0xEE };
    const struct {
        uint64_t off;
        size_t len;
    } bad[] = {
        { LEN - 10, 11 },  /* one byte past the end */
        { LEN - 1, 64 },
        { LEN, 1 },
        { LEN + 1, 0 },    /* zero length, but past the end */
        { 1u << 30, 1 },
        { UINT64_MAX, 1 },
        { UINT64_MAX - 5, 10 }, /* offset + len wraps */
        { 1, SIZE_MAX },        /* len alone wraps */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = mmapio_update_region(m, bad[i].off, junk, bad[i].len);
        cr_assert_eq(r, MMAPIO_E_OUT_OF_BOUNDS,
                     "update_region(%llu, %zu) = %d",
                     (unsigned long long)bad[i].off, bad[i].len, r);
        expect_unchanged(m);
    }
}

static void reads_refused(mmapio_map *m)
{
    const struct {
        uint64_t off;
        size_t len;
    } bad[] = {
        { LEN - 10, 11 }, { LEN, 1 }, { LEN + 1, 0 }, { UINT64_MAX, 1 },
        { UINT64_MAX - 5, 10 },
    };
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(buf, 0x5A, sizeof(buf));
        int r = mmapio_read_into(m, bad[i].off, buf, bad[i].len);
        cr_assert_eq(r, MMAPIO_E_OUT_OF_BOUNDS, "read_into(%llu, %zu) = %d",
                     (unsigned long long)bad[i].off, bad[i].len, r);
        for (size_t j = 0; j < sizeof(buf); j++)
            cr_assert_eq(buf[j], 0x5A, "refused read wrote the buffer");
    }
}

Test(bounds, file_writes_refused_without_partial_write)
{
    mmapio_map *m = open_map(false);
    writes_refused(m);
    /* nothing reached the file either */
    static uint8_t disk[LEN];
    hz_assert_ok(mmapio_flush(m));
    cr_assert_eq(hz_read_file(hz_path(&hz, "b.dat"), disk, LEN), LEN);
    cr_assert_arr_eq(disk, pattern, LEN);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(bounds, anon_writes_refused_without_partial_write)
{
    mmapio_map *m = open_map(true);
    writes_refused(m);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(bounds, reads_refused)
{
    mmapio_map *m = open_map(false);
    reads_refused(m);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(bounds, edges_allowed)
{
    mmapio_map *m = open_map(false);
    uint8_t buf[16];
    /* last bytes exactly */
    hz_assert_ok(mmapio_update_region(m, LEN - 10, "0123456789", 10));
    hz_assert_ok(mmapio_read_into(m, LEN - 10, buf, 10));
    cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
    /* zero length at 0, in the middle and at the very end */
    memcpy(pattern + LEN - 10, "0123456789", 10);
    hz_assert_ok(mmapio_update_region(m, 0, "Z", 0));
    hz_assert_ok(mmapio_update_region(m, 100, "Z", 0));
    hz_assert_ok(mmapio_update_region(m, LEN, "Z", 0));
    hz_assert_ok(mmapio_read_into(m, LEN, buf, 0));
    expect_unchanged(m);
    /* the whole mapping in one call */
    static uint8_t all[LEN];
    hz_assert_ok(mmapio_read_into(m, 0, all, LEN));
    cr_assert_arr_eq(all, pattern, LEN);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(bounds, flush_range)
{
    mmapio_map *m = open_map(false);
    hz_assert_ok(mmapio_flush_range(m, 0, LEN));
    hz_assert_ok(mmapio_flush_range(m, 100, 200));
    hz_assert_ok(mmapio_flush_range(m, LEN, 0));
    hz_assert_ret(mmapio_flush_range(m, 0, LEN + 1), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_flush_range(m, LEN + 1, 0), MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_flush_range(m, 1, UINT64_MAX),
                  MMAPIO_E_OUT_OF_BOUNDS);
    hz_assert_ret(mmapio_flush_range(m, UINT64_MAX, 2),
                  MMAPIO_E_OUT_OF_BOUNDS);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(bounds, read_only_write_is_mode_error_and_unchanged)
{
    mmapio_map *rw = open_map(false), *ro;
    hz_assert_ok(mmapio_open_ro(c, "b.dat", &ro));
    int r = mmapio_update_region(ro, 0, "x", 1);
    cr_assert_eq(r, MMAPIO_E_INVALID_MODE);
    expect_unchanged(rw);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
    mmapio_disconnect(c);
}

Test(bounds, null_arguments_are_errors)
{
    mmapio_map *m = open_map(false);
    cr_assert_lt(mmapio_read_into(NULL, 0, pattern, 1), 0);
    cr_assert_lt(mmapio_update_region(NULL, 0, "x", 1), 0);
    cr_assert_lt(mmapio_read_into(m, 0, NULL, 1), 0);
    cr_assert_lt(mmapio_update_region(m, 0, NULL, 1), 0);
    cr_assert_lt(mmapio_flush(NULL), 0);
    expect_unchanged(m);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
