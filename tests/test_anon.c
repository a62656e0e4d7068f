/*
 * test_anon: named anonymous mappings through the library on a real
 * daemon: create, open by name from another connection, lifetime until
 * mmapio_anon_delete (not until the last holder lets go), name rules.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(anon, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

Test(anon, create_write_read)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = NULL;
    hz_assert_ok(mmapio_anon_create(c, "a1", 8192, &m));
    cr_assert_not_null(m);
    cr_assert_eq(mmapio_len(m), 8192);
    cr_assert_not(mmapio_is_empty(m));
    cr_assert_str_eq(mmapio_path(m), "a1");
    cr_assert_eq(mmapio_mode_of(m), MMAPIO_MODE_READ_WRITE);
    cr_assert_eq(mmapio_flush_policy_of(m).kind, MMAPIO_FLUSH_NEVER);

    /* A fresh mapping is zero-filled. */
    const uint8_t *p = mmapio_as_ptr(m);
    cr_assert_not_null(p);
    for (size_t i = 0; i < 8192; i++)
        cr_assert_eq(p[i], 0, "byte %zu of a new mapping is %d", i, p[i]);

    uint8_t in[300], out[300];
    fill(in, sizeof(in), 3);
    hz_assert_ok(mmapio_update_region(m, 4000, in, sizeof(in)));
    memset(out, 0, sizeof(out));
    hz_assert_ok(mmapio_read_into(m, 4000, out, sizeof(out)));
    cr_assert_arr_eq(out, in, sizeof(in));
    /* The pointer views the same bytes. */
    cr_assert_arr_eq(p + 4000, in, sizeof(in));
    cr_assert_eq(mmapio_as_mut_ptr(m), (void *)p);
    hz_assert_ok(mmapio_flush(m));

    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c);
}

Test(anon, open_from_second_connection_shares_bytes)
{
    mmapio_client *c1 = hz_client(), *c2 = hz_client();
    mmapio_map *m1, *m2;
    hz_assert_ok(mmapio_anon_create(c1, "shared", 4096, &m1));
    hz_assert_ok(mmapio_anon_open(c2, "shared", &m2));
    cr_assert_eq(mmapio_len(m2), 4096);
    cr_assert_str_eq(mmapio_path(m2), "shared");
    /* two separate local mappings ... */
    cr_assert_neq(mmapio_as_ptr(m1), mmapio_as_ptr(m2));
    /* ... of the same bytes, both ways */
    hz_assert_ok(mmapio_update_region(m1, 10, "one", 3));
    char buf[3];
    hz_assert_ok(mmapio_read_into(m2, 10, buf, 3));
    cr_assert_eq(memcmp(buf, "one", 3), 0);
    hz_assert_ok(mmapio_update_region(m2, 4093, "two", 3));
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(m1) + 4093, "two", 3),
                 0);
    mmapio_unmap(m1);
    mmapio_unmap(m2);
    mmapio_disconnect(c1);
    mmapio_disconnect(c2);
}

Test(anon, create_existing_name_is_exists)
{
    mmapio_client *c1 = hz_client(), *c2 = hz_client();
    mmapio_map *m, *dup = (mmapio_map *)0x1;
    hz_assert_ok(mmapio_anon_create(c1, "dup", 4096, &m));
    hz_assert_ret(mmapio_anon_create(c1, "dup", 4096, &dup), MMAPIO_E_EXISTS);
    cr_assert_eq(dup, (mmapio_map *)0x1, "output written on failure");
    hz_assert_ret(mmapio_anon_create(c2, "dup", 100, &dup), MMAPIO_E_EXISTS);
    /* and the existing one was not touched */
    cr_assert_eq(mmapio_len(m), 4096);
    mmapio_unmap(m);
    /* still exists with no holder */
    hz_assert_ret(mmapio_anon_create(c2, "dup", 4096, &dup), MMAPIO_E_EXISTS);
    mmapio_disconnect(c1);
    mmapio_disconnect(c2);
}

Test(anon, open_missing_is_not_found)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_open(c, "nope", &m), MMAPIO_E_NOT_FOUND);
    cr_assert_eq(m, (mmapio_map *)0x1);
    hz_assert_ret(mmapio_anon_delete(c, "nope"), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c);
}

Test(anon, lives_until_deleted)
{
    uint8_t in[4096], out[4096];
    fill(in, sizeof(in), 42);

    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "keep", sizeof(in), &m));
    hz_assert_ok(mmapio_update_region(m, 0, in, sizeof(in)));
    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c); /* nobody holds it now */

    c = hz_client();
    hz_assert_ok(mmapio_anon_open(c, "keep", &m));
    cr_assert_eq(mmapio_len(m), sizeof(in));
    hz_assert_ok(mmapio_read_into(m, 0, out, sizeof(out)));
    cr_assert_arr_eq(out, in, sizeof(in), "bytes lost with the holders");
    mmapio_unmap(m);

    hz_assert_ok(mmapio_anon_delete(c, "keep"));
    hz_assert_ret(mmapio_anon_open(c, "keep", &m), MMAPIO_E_NOT_FOUND);
    /* The name is free again, for a new, zeroed mapping. */
    hz_assert_ok(mmapio_anon_create(c, "keep", 4096, &m));
    hz_assert_ok(mmapio_read_into(m, 0, out, 4096));
    for (size_t i = 0; i < 4096; i++)
        cr_assert_eq(out[i], 0, "old bytes visible in a new mapping");
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(anon, delete_while_held_keeps_holders_mapping)
{
    mmapio_client *c = hz_client();
    mmapio_map *m, *m2;
    hz_assert_ok(mmapio_anon_create(c, "gone", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "still here", 10));
    hz_assert_ok(mmapio_anon_delete(c, "gone"));
    hz_assert_ret(mmapio_anon_open(c, "gone", &m2), MMAPIO_E_NOT_FOUND);
    char buf[10];
    hz_assert_ok(mmapio_read_into(m, 0, buf, 10));
    cr_assert_eq(memcmp(buf, "still here", 10), 0);
    hz_assert_ok(mmapio_update_region(m, 100, "x", 1));
    /* A new mapping of that name is a different one. */
    hz_assert_ok(mmapio_anon_create(c, "gone", 4096, &m2));
    hz_assert_ok(mmapio_read_into(m2, 0, buf, 10));
    cr_assert_neq(memcmp(buf, "still here", 10), 0);
    mmapio_unmap(m);
    mmapio_unmap(m2);
    mmapio_disconnect(c);
}

Test(anon, names_and_files_are_separate)
{
    /* An anonymous name does not appear in (or come from) the root. */
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "lonely", 4096, &m));
    cr_assert_lt(hz_file_size(hz_path(&hz, "lonely")), 0);
    mmapio_map *f = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_rw(c, "lonely", &f), MMAPIO_E_NOT_FOUND);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(anon, invalid_names)
{
    static char longname[300];
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    const char *bad[] = { "", ".", "..", "a/b", "/abs", "../up" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = mmapio_anon_create(c, bad[i], 4096, &m);
        cr_assert_eq(r, MMAPIO_E_INVALID_ARGUMENT,
                     "anon_create(\"%s\") = %d (%s)", bad[i], r,
                     mmapio_strerror(r));
        cr_assert_eq(m, (mmapio_map *)0x1);
    }
    memset(longname, 'n', 256);
    hz_assert_ret(mmapio_anon_create(c, longname, 4096, &m),
                  MMAPIO_E_INVALID_ARGUMENT);
    longname[255] = '\0';
    hz_assert_ok(mmapio_anon_create(c, longname, 4096, &m));
    cr_assert_str_eq(mmapio_path(m), longname);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(anon, zero_size_refused)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    int r = mmapio_anon_create(c, "zero", 0, &m);
    cr_assert_lt(r, 0, "a 0-byte anonymous mapping was created");
    cr_assert_eq(m, (mmapio_map *)0x1);
    hz_assert_ret(mmapio_anon_open(c, "zero", &m), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c);
}

Test(anon, many_names)
{
    mmapio_client *c = hz_client();
    mmapio_map *m[64];
    char name[32];
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        cr_assert_eq(mmapio_anon_create(c, name, 4096, &m[i]), MMAPIO_OK,
                     "%s", name);
        hz_assert_ok(mmapio_update_region(m[i], 0, &i, sizeof(i)));
    }
    for (int i = 0; i < 64; i++) {
        int v = -1;
        hz_assert_ok(mmapio_read_into(m[i], 0, &v, sizeof(v)));
        cr_assert_eq(v, i, "mapping n%d holds %d", i, v);
        mmapio_unmap(m[i]);
    }
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        hz_assert_ok(mmapio_anon_delete(c, name));
    }
    mmapio_disconnect(c);
}
