/*
 * test_share: processes share bytes through the daemon. Each child opens
 * the mapping over its own connection (not through an inherited one), so
 * what is shared is what the daemon granted. Two processes see each
 * other's writes, on an anonymous mapping and on a file; N processes doing
 * M atomic increments each through mmapio_as_mut_ptr add up exactly.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(share, .init = hz_setup, .fini = hz_teardown, .timeout = 90);

static int open_by_name(mmapio_client *c, bool anonymous, const char *name,
                        mmapio_map **m)
{
    return anonymous ? mmapio_anon_open(c, name, m)
                     : mmapio_open_rw(c, name, m);
}

/*
 * Child side of the ping-pong: waits for the parent's bytes, checks them
 * (read_into and pointer), answers with its own. Exit 0 or the failed step.
 */
static void pingpong_child(bool anonymous, const char *name,
                           struct hz_chan *down, struct hz_chan *up)
{
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(10);
    if (open_by_name(c, anonymous, name, &m) != MMAPIO_OK)
        _exit(11);
    hz_chan_send(up, 'o');
    for (int round = 0; round < 20; round++) {
        if (hz_chan_recv(down, 20000) != 'p')
            _exit(12);
        uint64_t v;
        if (mmapio_read_into(m, 64, &v, sizeof(v)) != MMAPIO_OK)
            _exit(13);
        if (v != 1000u + (uint64_t)round)
            _exit(14); /* the parent's write is not visible */
        char msg[32];
        if (memcmp(mmapio_as_ptr(m), "from parent", 11) != 0)
            _exit(15);
        snprintf(msg, sizeof(msg), "from child %02d", round);
        if (mmapio_update_region(m, 2048, msg, strlen(msg)) != MMAPIO_OK)
            _exit(16);
        v = 5000u + (uint64_t)round;
        memcpy((char *)mmapio_as_mut_ptr(m) + 3000, &v, sizeof(v));
        hz_chan_send(up, 'c');
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
    _exit(0);
}

static void pingpong(bool anonymous)
{
    const char *name = anonymous ? "pp" : "pp.dat";
    mmapio_client *c = hz_client();
    mmapio_map *m;
    if (anonymous)
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
    else
        hz_assert_ok(mmapio_create_rw(c, name, 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "from parent", 11));

    struct hz_chan down, up;
    cr_assert_eq(hz_chan_open(&down), 0);
    cr_assert_eq(hz_chan_open(&up), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_read(&down);
        hz_chan_keep_write(&up);
        pingpong_child(anonymous, name, &down, &up);
    }
    hz_chan_keep_write(&down);
    hz_chan_keep_read(&up);
    cr_assert_eq(hz_chan_recv(&up, 20000), 'o', "child could not open");

    for (int round = 0; round < 20; round++) {
        uint64_t v = 1000u + (uint64_t)round;
        hz_assert_ok(mmapio_update_region(m, 64, &v, sizeof(v)));
        hz_chan_send(&down, 'p');
        cr_assert_eq(hz_chan_recv(&up, 20000), 'c', "child failed round %d",
                     round);
        char want[32], got[32];
        snprintf(want, sizeof(want), "from child %02d", round);
        hz_assert_ok(mmapio_read_into(m, 2048, got, strlen(want)));
        cr_assert_eq(memcmp(got, want, strlen(want)), 0,
                     "round %d: child's write not seen", round);
        uint64_t cv;
        memcpy(&cv, (const char *)mmapio_as_ptr(m) + 3000, sizeof(cv));
        cr_assert_eq(cv, 5000u + (uint64_t)round);
    }
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFEXITED(st), "child status 0x%x", (unsigned)st);
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed at step %d",
                 WEXITSTATUS(st));
    hz_chan_close(&down);
    hz_chan_close(&up);

    if (!anonymous) {
        /* and the file holds the last round */
        hz_assert_ok(mmapio_flush(m));
        char disk[4096];
        cr_assert_eq(hz_read_file(hz_path(&hz, name), disk, sizeof(disk)),
                     4096);
        cr_assert_eq(memcmp(disk + 2048, "from child 19", 13), 0);
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(share, anonymous_both_ways)
{
    pingpong(true);
}

Test(share, file_both_ways)
{
    pingpong(false);
}

enum { PROCS = 4, INCS = 200000 };

static void increment_child(bool anonymous, const char *name,
                            struct hz_chan *go)
{
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(10);
    if (open_by_name(c, anonymous, name, &m) != MMAPIO_OK)
        _exit(11);
    uint64_t *counter = (uint64_t *)mmapio_as_mut_ptr(m) + 1;
    (void)hz_chan_recv(go, 20000); /* start together: EOF is the signal */
    for (int i = 0; i < INCS; i++)
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    _exit(0);
}

static void counters_add_up(bool anonymous)
{
    const char *name = anonymous ? "counter" : "counter.dat";
    mmapio_client *c = hz_client();
    mmapio_map *m;
    if (anonymous)
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
    else
        hz_assert_ok(mmapio_create_rw(c, name, 4096, &m));
    uint64_t *counter = (uint64_t *)mmapio_as_mut_ptr(m) + 1;
    cr_assert_eq(*counter, 0);

    struct hz_chan go;
    cr_assert_eq(hz_chan_open(&go), 0);
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = hz_fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            close(go.wr);
            increment_child(anonymous, name, &go);
        }
    }
    /* the parent increments too */
    close(go.wr);
    go.wr = -1; /* EOF releases every child at once */
    for (int i = 0; i < INCS; i++)
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < PROCS; i++) {
        int st = hz_wait_child(pids[i], 60000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "incrementer %d: status 0x%x", i, (unsigned)st);
    }
    hz_chan_close(&go);
    uint64_t want = (uint64_t)(PROCS + 1) * INCS;
    cr_assert_eq(__atomic_load_n(counter, __ATOMIC_SEQ_CST), want,
                 "counter %llu, want %llu",
                 (unsigned long long)*counter, (unsigned long long)want);
    /* the neighbours of the counter were not touched */
    uint64_t before, after;
    hz_assert_ok(mmapio_read_into(m, 0, &before, 8));
    hz_assert_ok(mmapio_read_into(m, 16, &after, 8));
    cr_assert_eq(before, 0);
    cr_assert_eq(after, 0);
    /* and a new opener sees the total */
    mmapio_map *m2;
    cr_assert_eq(open_by_name(c, anonymous, name, &m2), MMAPIO_OK);
    uint64_t seen;
    hz_assert_ok(mmapio_read_into(m2, 8, &seen, 8));
    cr_assert_eq(seen, want);
    mmapio_unmap(m2);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(share, atomic_increments_anonymous)
{
    counters_add_up(true);
}

Test(share, atomic_increments_file)
{
    counters_add_up(false);
}
