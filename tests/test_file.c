/*
 * test_file: file-backed mappings under the daemon's data root: what is
 * written and flushed is in the file (checked with plain read(2)),
 * create_rw truncates, the open variants and their errors, delete.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

TestSuite(file, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed ^ (i * 13 + (i >> 8)));
}

Test(file, written_and_flushed_is_on_disk)
{
    enum { SIZE = 64 * 1024 };
    static uint8_t in[SIZE], disk[SIZE + 16];
    fill(in, SIZE, 9);

    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "data.bin", SIZE, &m));
    cr_assert_eq(mmapio_len(m), SIZE);
    cr_assert_str_eq(mmapio_path(m), "data.bin");
    cr_assert_eq(hz_file_size(hz_path(&hz, "data.bin")), SIZE);

    hz_assert_ok(mmapio_update_region(m, 0, in, SIZE / 2));
    /* the second half through the pointer */
    memcpy((uint8_t *)mmapio_as_mut_ptr(m) + SIZE / 2, in + SIZE / 2,
           SIZE / 2);
    hz_assert_ok(mmapio_flush(m));

    long n = hz_read_file(hz_path(&hz, "data.bin"), disk, sizeof(disk));
    cr_assert_eq(n, SIZE);
    cr_assert_arr_eq(disk, in, SIZE, "file contents differ from the writes");

    /* flush_range of a part works the same way */
    hz_assert_ok(mmapio_update_region(m, 1000, "RANGE", 5));
    hz_assert_ok(mmapio_flush_range(m, 0, 4096));
    cr_assert_eq(hz_read_file(hz_path(&hz, "data.bin"), disk, 2000), 2000);
    cr_assert_eq(memcmp(disk + 1000, "RANGE", 5), 0);

    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c);
}

Test(file, bytes_survive_unmap_and_reopen)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "persist", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 4000, "persisted!", 10));
    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c);

    /* Released by its last holder: the bytes are in the file. */
    char all[4096];
    cr_assert_eq(hz_read_file(hz_path(&hz, "persist"), all, sizeof(all)),
                 4096);
    cr_assert_eq(memcmp(all + 4000, "persisted!", 10), 0);

    c = hz_client();
    hz_assert_ok(mmapio_open_rw(c, "persist", &m));
    cr_assert_eq(mmapio_len(m), 4096);
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(m) + 4000, "persisted!",
                        10), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(file, existing_file_is_read)
{
    uint8_t in[10000], out[10000];
    fill(in, sizeof(in), 77);
    cr_assert_eq(hz_write_file(hz_path(&hz, "given.dat"), in, sizeof(in)), 0);

    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_open_ro(c, "given.dat", &m));
    cr_assert_eq(mmapio_len(m), sizeof(in));
    cr_assert_eq(mmapio_mode_of(m), MMAPIO_MODE_READ_ONLY);
    hz_assert_ok(mmapio_read_into(m, 0, out, sizeof(out)));
    cr_assert_arr_eq(out, in, sizeof(in));
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(file, create_rw_truncates)
{
    uint8_t in[8192];
    memset(in, 0xAB, sizeof(in));
    cr_assert_eq(hz_write_file(hz_path(&hz, "t.dat"), in, sizeof(in)), 0);

    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "t.dat", 100, &m));
    cr_assert_eq(mmapio_len(m), 100);
    cr_assert_eq(hz_file_size(hz_path(&hz, "t.dat")), 100);
    const uint8_t *p = mmapio_as_ptr(m);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(p[i], 0, "byte %d survived create_rw's truncation", i);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(file, create_rw_size_zero)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_create_rw(c, "zero", 0, &m), MMAPIO_E_RESIZE_FAILED);
    cr_assert_eq(m, (mmapio_map *)0x1);
    mmapio_disconnect(c);
}

Test(file, missing_is_not_found)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_ro(c, "missing", &m), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_open_rw(c, "missing", &m), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_open_cow(c, "missing", &m), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_open_rw(c, "nodir/missing", &m), MMAPIO_E_NOT_FOUND);
    cr_assert_eq(m, (mmapio_map *)0x1);
    /* and nothing was created by trying */
    cr_assert_eq(hz_file_size(hz_path(&hz, "missing")), -ENOENT);
    hz_assert_ret(mmapio_delete(c, "missing"), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c);
}

Test(file, open_or_create)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_open_or_create(c, "ooc", 5000, &m));
    cr_assert_eq(mmapio_len(m), 5000);
    cr_assert_eq(hz_file_size(hz_path(&hz, "ooc")), 5000);
    hz_assert_ok(mmapio_update_region(m, 0, "kept", 4));
    mmapio_unmap(m);

    /* existing: its size and bytes are kept, default_size ignored */
    hz_assert_ok(mmapio_open_or_create(c, "ooc", 100, &m));
    cr_assert_eq(mmapio_len(m), 5000);
    cr_assert_eq(memcmp(mmapio_as_ptr(m), "kept", 4), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(file, subdirectory_paths)
{
    cr_assert_eq(mkdir(hz_path(&hz, "sub"), 0755), 0);
    cr_assert_eq(mkdir(hz_path(&hz, "sub/deeper"), 0755), 0);
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "sub/deeper/f.bin", 4096, &m));
    cr_assert_str_eq(mmapio_path(m), "sub/deeper/f.bin");
    hz_assert_ok(mmapio_update_region(m, 0, "deep", 4));
    hz_assert_ok(mmapio_flush(m));
    char buf[4];
    cr_assert_eq(hz_read_file(hz_path(&hz, "sub/deeper/f.bin"), buf, 4), 4);
    cr_assert_eq(memcmp(buf, "deep", 4), 0);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(file, directory_is_not_a_mapping)
{
    cr_assert_eq(mkdir(hz_path(&hz, "adir"), 0755), 0);
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    int r = mmapio_open_rw(c, "adir", &m);
    cr_assert_lt(r, 0, "a directory was mapped");
    cr_assert_eq(m, (mmapio_map *)0x1);
    r = mmapio_create_rw(c, "adir", 4096, &m);
    cr_assert_lt(r, 0, "create_rw over a directory succeeded");
    mmapio_disconnect(c);
}

Test(file, two_handles_one_process_share)
{
    mmapio_client *c = hz_client();
    mmapio_map *a, *b;
    hz_assert_ok(mmapio_create_rw(c, "two", 4096, &a));
    hz_assert_ok(mmapio_open_rw(c, "two", &b));
    hz_assert_ok(mmapio_update_region(a, 50, "via a", 5));
    char buf[5];
    hz_assert_ok(mmapio_read_into(b, 50, buf, 5));
    cr_assert_eq(memcmp(buf, "via a", 5), 0);
    mmapio_unmap(a);
    /* b is unaffected by a's unmap */
    hz_assert_ok(mmapio_update_region(b, 60, "via b", 5));
    hz_assert_ok(mmapio_read_into(b, 50, buf, 5));
    cr_assert_eq(memcmp(buf, "via a", 5), 0);
    mmapio_unmap(b);
    mmapio_disconnect(c);
}

Test(file, delete_unlinks)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "doomed", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "alive", 5));
    hz_assert_ok(mmapio_delete(c, "doomed"));
    cr_assert_eq(hz_file_size(hz_path(&hz, "doomed")), -ENOENT);
    /* a holder keeps its mapping */
    char buf[5];
    hz_assert_ok(mmapio_read_into(m, 0, buf, 5));
    cr_assert_eq(memcmp(buf, "alive", 5), 0);
    mmapio_map *m2 = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_rw(c, "doomed", &m2), MMAPIO_E_NOT_FOUND);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(file, options_builder)
{
    mmapio_client *c = hz_client();
    mmapio_options o;
    mmapio_options_init(&o);
    cr_assert_eq(o.mode, MMAPIO_MODE_READ_WRITE);
    cr_assert_not(o.create);
    cr_assert_eq(o.flush_policy.kind, MMAPIO_FLUSH_NEVER);

    mmapio_map *m = (mmapio_map *)0x1;
    /* open existing only, by default */
    hz_assert_ret(mmapio_open(c, "built", &o, &m), MMAPIO_E_NOT_FOUND);
    o.create = true;
    o.size = 12345;
    hz_assert_ok(mmapio_open(c, "built", &o, &m));
    cr_assert_eq(mmapio_len(m), 12345);
    mmapio_unmap(m);
    /* exclusive create of an existing one */
    o.exclusive = true;
    m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open(c, "built", &o, &m), MMAPIO_E_EXISTS);
    cr_assert_eq(m, (mmapio_map *)0x1);
    /* read-only through options */
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_READ_ONLY;
    hz_assert_ok(mmapio_open(c, "built", &o, &m));
    cr_assert_eq(mmapio_mode_of(m), MMAPIO_MODE_READ_ONLY);
    cr_assert_null(mmapio_as_mut_ptr(m));
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
