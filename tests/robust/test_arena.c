/*
 * test_arena: small anonymous mappings carved out of shared memfds
 * (daemon/model/arena.h).
 *
 * What is shown, against a real daemon:
 *  - isolation: an arena holds one access class (owner, group, mode); a
 *    process of another uid that takes every arena fd its library keeps
 *    and reads all the data in them (SEEK_DATA over the whole memfd) never
 *    finds another class's bytes, and what it writes anywhere in them
 *    never reaches another class's mapping; a read-only grant's fd cannot
 *    be mapped, mprotected or reopened writable;
 *  - freed space is never handed out again: a new mapping never sits where
 *    an old one did (offsets read from /proc/self/maps), and an old
 *    holder's writes there never show up in a new mapping; an arena that
 *    handed out all its slots is retired; arenas close with their last
 *    mapping;
 *  - resize in place (also past arena_max) and delete;
 *  - a process holding 10,000 small mappings uses O(1) fds, and so does the
 *    daemon; the daemon holds 100,000 (skipped under valgrind).
 * The fd store across a restart is in tests/service/test_restart.c.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "robust.h"

#define OTHER_UID 65533
#define MAX_MAP (UINT64_C(1) << 30) /* --max-map-size: the slot stride */

static void start(const char *const *extra)
{
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
    r = rb_start(&hz, extra);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
}

static void start_default(void)
{
    start((const char *const[]){ "--max-map-size", "1073741824", NULL });
}

TestSuite(arena, .fini = hz_teardown, .timeout = 120);

/* ---- where a mapping lives -------------------------------------------- */

/* The arena memfds among this process's fds: up to cap of them. */
static int arena_fds(int *out, int cap)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)) && n < cap) {
        char link[300], target[256];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
            continue;
        target[len] = '\0';
        if (strstr(target, "memfd:mmapio-arena"))
            out[n++] = atoi(e->d_name);
    }
    if (dir)
        closedir(dir);
    return n;
}

/* The memfd inode and file offset behind address p (/proc/self/maps);
 * false when p starts no mapping of an arena. */
static bool where(const void *p, unsigned long *ino, uint64_t *offset)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    bool found = false;
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long start, end, inode;
        unsigned long long off;
        char perms[8], dev[16];
        if (sscanf(line, "%lx-%lx %7s %llx %15s %lu", &start, &end, perms,
                   &off, dev, &inode) == 6 &&
            start == (unsigned long)p && strstr(line, "mmapio-arena")) {
            *ino = inode;
            *offset = off;
            found = true;
            break;
        }
    }
    if (f)
        fclose(f);
    return found;
}

/* What pid's fds lead to, for a failure message (static storage). */
static const char *fd_links(pid_t pid)
{
    static char out[4096];
    char dir_path[64];
    size_t used = 0;
    snprintf(dir_path, sizeof(dir_path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(dir_path);
    struct dirent *e;
    out[0] = '\0';
    while (dir && (e = readdir(dir)) && used + 300 < sizeof(out)) {
        char link[340], target[256];
        snprintf(link, sizeof(link), "%s/%s", dir_path, e->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
            continue;
        target[len] = '\0';
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s ", target);
    }
    if (dir)
        closedir(dir);
    return out;
}

/* Whether `needle` lies anywhere in the data of fd (every range that
 * SEEK_DATA finds, up to the memfd's size). */
static bool fd_holds(int fd, const char *needle)
{
    static char buf[1 << 16];
    size_t nl = strlen(needle);
    off_t pos = 0;
    for (;;) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0)
            return false;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        for (off_t at = data; at < hole;) {
            size_t want = (size_t)(hole - at) < sizeof(buf) ? (size_t)(hole - at)
                                                            : sizeof(buf);
            ssize_t got = pread(fd, buf, want, at);
            if (got <= 0)
                break;
            for (ssize_t i = 0; i + (ssize_t)nl <= got; i++)
                if (!memcmp(buf + i, needle, nl))
                    return true;
            at += got > (ssize_t)nl ? got - (ssize_t)nl : got;
        }
        pos = hole;
    }
}

/* ---- isolation -------------------------------------------------------- */

static const char SECRET[] = "root-0600-secret";
static const char PUBLIC[] = "root-0644-public";

/* As another uid: opens root's 0644 mapping read-only, creates one of its
 * own, then goes through every arena fd it was given. */
static const char *snoop(mmapio_client *c, void *arg)
{
    /* What came with the fork is root's, not the library's: gone. */
    const int *inherited = arg;
    for (int i = 1; i <= inherited[0]; i++)
        close(inherited[i]);
    /* Its own /proc/self/fd stays readable after the change of uid. */
    prctl(PR_SET_DUMPABLE, 1);
    mmapio_map *pub, *mine;
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.mode = MMAPIO_MODE_READ_ONLY;
    EXPECT(mmapio_open(c, "public", &o, &pub), MMAPIO_OK);
    CHECK(!memcmp(mmapio_as_ptr(pub), PUBLIC, sizeof(PUBLIC)));
    /* Root's 0600 one is refused, read-only or not. */
    EXPECT(mmapio_open(c, "secret", &o, &mine), MMAPIO_E_PERMISSION);
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = 4096;
    EXPECT(mmapio_open(c, "nobodys", &o, &mine), MMAPIO_OK);
    int fds[16];
    int n = arena_fds(fds, 16);
    /* root's 0644 arena read-only, its own read-write */
    if (n != 2)
        return rb_fail("%d arena fds, not 2", n);
    int ro = -1;
    for (int i = 0; i < n; i++) {
        int acc = fcntl(fds[i], F_GETFL) & O_ACCMODE;
        /* Nothing of root's 0600 class in any of them. */
        CHECK(!fd_holds(fds[i], SECRET));
        if (acc == O_RDONLY)
            ro = fds[i];
        else
            /* Scribbles over the first 64 slots of its own arena. */
            for (int k = 0; k < 64; k++)
                CHECK(pwrite(fds[i], "scribble", 8, (off_t)(k * MAX_MAP)) == 8);
    }
    CHECK(ro >= 0);
    CHECK(fd_holds(ro, PUBLIC));
    /* The read-only grant stays read-only: no writable shared map of the
     * fd, no mprotect of the handle's own, no reopen through /proc. */
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    CHECK(p == MAP_FAILED && errno == EACCES);
    CHECK(mprotect((void *)mmapio_as_ptr(pub), 4096, PROT_READ | PROT_WRITE) < 0);
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", ro);
    CHECK(open(proc, O_RDWR) < 0 && errno == EACCES);
    CHECK(pwrite(ro, "x", 1, 0) < 0);
    EXPECT(mmapio_update_region(pub, 0, "x", 1), MMAPIO_E_INVALID_MODE);
    mmapio_unmap(mine);
    mmapio_unmap(pub);
    return NULL;
}

Test(arena, another_class_is_out_of_reach)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run a child as another uid");
    start_default();
    mmapio_client *c = hz_client();
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = 4096;
    o.perm = 0600;
    mmapio_map *secret, *pub;
    hz_assert_ok(mmapio_open(c, "secret", &o, &secret));
    hz_assert_ok(mmapio_update_region(secret, 0, SECRET, sizeof(SECRET)));
    o.perm = 0644;
    hz_assert_ok(mmapio_open(c, "public", &o, &pub));
    hz_assert_ok(mmapio_update_region(pub, 0, PUBLIC, sizeof(PUBLIC)));
    /* Two classes, two arenas. */
    unsigned long ino_s, ino_p;
    uint64_t off_s, off_p;
    cr_assert(where(mmapio_as_ptr(secret), &ino_s, &off_s));
    cr_assert(where(mmapio_as_ptr(pub), &ino_p, &off_p));
    cr_assert_neq(ino_s, ino_p, "a 0600 and a 0644 mapping share an arena");

    char why[600];
    int inherited[17];
    inherited[0] = arena_fds(inherited + 1, 16);
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, snoop, inherited,
                           why, sizeof(why)), 0, "as nobody: %s", why);
    /* Its scribbles reached none of root's mappings. */
    cr_assert(!memcmp(mmapio_as_ptr(secret), SECRET, sizeof(SECRET)));
    cr_assert(!memcmp(mmapio_as_ptr(pub), PUBLIC, sizeof(PUBLIC)));
    int fds[16];
    int n = arena_fds(fds, 16);
    for (int i = 0; i < n; i++)
        cr_assert(!fd_holds(fds[i], "scribble"), "another uid's bytes in ours");
    /* mmapioctl status: three carved mappings in three arenas (root's 0600
     * and 0644, nobody's 0600). */
    mmapio_status *st;
    hz_assert_ok(mmapio_admin_status(c, &st));
    cr_expect_eq(st->carved, 3, "carved: %llu", (unsigned long long)st->carved);
    cr_expect_eq(st->arenas, 3, "arenas: %llu", (unsigned long long)st->arenas);
    mmapio_status_free(st);
    mmapio_unmap(pub);
    mmapio_unmap(secret);
    mmapio_disconnect(c);
}

/* ---- freed space ------------------------------------------------------ */

Test(arena, freed_space_is_never_handed_out_again)
{
    /* 8 slots an arena: retirement comes quickly. */
    start((const char *const[]){ "--max-map-size", "1073741824",
                                 "--arena-slots", "8", NULL });
    mmapio_client *c = hz_client();
    int base_fds = hz_fd_count(hz.pid);
    enum { N = 40 };
    unsigned long inos[N];
    uint64_t offs[N];
    mmapio_map *old;
    /* An old holder keeps a mapping that is deleted under it. */
    hz_assert_ok(mmapio_anon_create(c, "old", 4096, &old));
    hz_assert_ok(mmapio_update_region(old, 0, "old bytes", 9));
    cr_assert(where(mmapio_as_ptr(old), &inos[0], &offs[0]));
    hz_assert_ok(mmapio_anon_delete(c, "old"));
    for (int i = 1; i < N; i++) {
        mmapio_map *m;
        char name[16];
        snprintf(name, sizeof(name), "m%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
        cr_assert(where(mmapio_as_ptr(m), &inos[i], &offs[i]));
        for (int j = 0; j < i; j++)
            cr_assert(inos[j] != inos[i] || offs[j] != offs[i],
                      "mapping %d sits where mapping %d did", i, j);
        /* The old holder writes on; the new mapping never sees it. */
        hz_assert_ok(mmapio_update_region(old, 0, "old write", 9));
        const uint8_t *p = mmapio_as_ptr(m);
        for (size_t k = 0; k < 4096; k++)
            cr_assert_eq(p[k], 0, "byte %zu of new mapping %d is not zero", k, i);
        hz_assert_ok(mmapio_unmap(m));
        hz_assert_ok(mmapio_anon_delete(c, name));
    }
    /* 40 slots from 8-slot arenas: five arenas at least. */
    int arenas = 0;
    for (int i = 0; i < N; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= inos[j] == inos[i];
        arenas += !seen;
    }
    cr_assert_geq(arenas, 5, "%d arenas for %d mappings of 8 slots", arenas, N);
    /* The old mapping is still the old holder's. */
    cr_assert(!memcmp(mmapio_as_ptr(old), "old write", 9));
    hz_assert_ok(mmapio_unmap(old));
    /* Every arena closed with its last mapping (the one more fd is the
     * connection's write ring, made with its first writable mapping). */
    int fds = hz_fd_count_settle(hz.pid, base_fds + 1, 2000);
    cr_assert_leq(fds, base_fds + 1, "daemon fds %d, %d before", fds, base_fds);
    /* ... and this client kept none. */
    int mine[16];
    cr_assert_eq(arena_fds(mine, 16), 0);
    mmapio_disconnect(c);
}

/* A process that held an arena's fd writes where a freed mapping was: no
 * mapping made later shows it. */
Test(arena, writes_to_freed_space_never_surface)
{
    start_default();
    mmapio_client *c = hz_client();
    mmapio_map *keep, *gone;
    hz_assert_ok(mmapio_anon_create(c, "keep", 4096, &keep)); /* keeps the fd */
    hz_assert_ok(mmapio_anon_create(c, "gone", 4096, &gone));
    unsigned long ino;
    uint64_t off;
    cr_assert(where(mmapio_as_ptr(gone), &ino, &off));
    hz_assert_ok(mmapio_unmap(gone));
    hz_assert_ok(mmapio_anon_delete(c, "gone"));
    int fds[4];
    cr_assert_eq(arena_fds(fds, 4), 1);
    /* Freed: punched, its memory returned. */
    cr_assert_lt(lseek(fds[0], (off_t)off, SEEK_DATA) == (off_t)off ? 0 : -1, 0,
                 "freed slot still holds data");
    uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
                      (off_t)off);
    cr_assert_neq(p, MAP_FAILED);
    for (int i = 0; i < 50; i++) {
        mmapio_map *m;
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        memcpy(p, "stale!", 6);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
        cr_assert_eq(memcmp(mmapio_as_ptr(m), "stale!", 6) == 0, false,
                     "the freed slot came back as mapping %d", i);
        unsigned long ino2;
        uint64_t off2;
        cr_assert(where(mmapio_as_ptr(m), &ino2, &off2));
        cr_assert(ino2 != ino || off2 != off);
        hz_assert_ok(mmapio_unmap(m));
    }
    munmap(p, 4096);
    mmapio_unmap(keep);
    mmapio_disconnect(c);
}

/* ---- resize, delete, watch ------------------------------------------- */

struct seen {
    int n;
    bool covered;   /* a MODIFIED covering [100, 104) came */
};

static void on_change(const mmapio_change_event *ev, void *user)
{
    struct seen *s = user;
    s->n++;
    if (ev->kind == MMAPIO_CHANGE_MODIFIED &&
        (!ev->has_range || (ev->offset <= 100 && ev->offset + ev->len >= 104)))
        s->covered = true;
}

Test(arena, resize_in_place_and_delete)
{
    start_default();
    mmapio_client *c = hz_client(), *c2 = hz_client();
    mmapio_map *m, *m2;
    hz_assert_ok(mmapio_anon_create(c, "grow", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "head", 4));
    unsigned long ino, ino2;
    uint64_t off, off2;
    cr_assert(where(mmapio_as_ptr(m), &ino, &off));
    /* Past arena_max (1 MiB): still in its slot. */
    hz_assert_ok(mmapio_resize(m, 3u << 20));
    hz_assert_ok(mmapio_update_region(m, (3u << 20) - 4, "tail", 4));
    hz_assert_ok(mmapio_anon_open(c2, "grow", &m2));
    cr_assert_eq(mmapio_len(m2), 3u << 20);
    cr_assert(where(mmapio_as_ptr(m2), &ino2, &off2));
    cr_assert_eq(ino2, ino);
    cr_assert_eq(off2, off);
    cr_assert(!memcmp((const char *)mmapio_as_ptr(m2) + (3u << 20) - 4, "tail", 4));
    cr_assert(!memcmp(mmapio_as_ptr(m2), "head", 4));
    /* Shrinking needs the sole holder; growing again shows zeros. */
    hz_assert_ret(mmapio_resize(m, 4096), MMAPIO_E_BUSY);
    hz_assert_ok(mmapio_unmap(m2));
    hz_assert_ok(mmapio_ping(c2)); /* the release (one way) was read */
    hz_assert_ok(mmapio_resize(m, 4096));
    hz_assert_ok(mmapio_resize(m, 8192));
    const uint8_t *p = mmapio_as_ptr(m);
    cr_assert(!memcmp(p, "head", 4));
    for (size_t k = 4096; k < 8192; k++)
        cr_assert_eq(p[k], 0, "byte %zu came back after a shrink", k);
    /* Never past max_map_size, the slot. */
    hz_assert_ret(mmapio_resize(m, MAX_MAP + 4096), MMAPIO_E_RESIZE_FAILED);
    /* A watcher hears of writes at the mapping's own offsets. */
    hz_assert_ok(mmapio_anon_open(c2, "grow", &m2));
    mmapio_watcher *w;
    struct seen seen = { 0 };
    hz_assert_ok(mmapio_watch(m2, on_change, &seen, &w));
    hz_assert_ok(mmapio_update_region(m, 100, "abcd", 4));
    for (int i = 0; i < 50 && !seen.covered; i++)
        cr_assert_geq(mmapio_client_dispatch(c2, 100), 0);
    cr_assert(seen.covered, "no MODIFIED covering [100, 104) (%d events)", seen.n);
    mmapio_unwatch(w);
    hz_assert_ok(mmapio_unmap(m2));
    hz_assert_ok(mmapio_anon_delete(c, "grow"));
    hz_assert_ret(mmapio_anon_open(c2, "grow", &m2), MMAPIO_E_NOT_FOUND);
    hz_assert_ok(mmapio_update_region(m, 100, "held", 4));
    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c2);
    mmapio_disconnect(c);
}

/* With a small arena_stride a carved mapping grows in place up to it, and
 * past it is refused with its reason. */
Test(arena, growth_stops_at_the_stride)
{
    start((const char *const[]){ "--arena-stride", "65536", NULL });
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "small", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "kept", 4));
    hz_assert_ok(mmapio_resize(m, 65536));
    hz_assert_ret(mmapio_resize(m, 65536 + 4096), MMAPIO_E_RESIZE_FAILED);
    cr_assert_not_null(strstr(mmapio_last_error(), "arena_stride"), "%s",
                       mmapio_last_error());
    cr_assert_eq(mmapio_len(m), 65536);
    cr_assert(!memcmp(mmapio_as_ptr(m), "kept", 4));
    /* Made larger than the stride: a memfd of its own, grows freely. */
    mmapio_map *big;
    hz_assert_ok(mmapio_anon_create(c, "big", 65536 + 4096, &big));
    hz_assert_ok(mmapio_resize(big, 1u << 20));
    unsigned long ino;
    uint64_t off;
    cr_assert(!where(mmapio_as_ptr(big), &ino, &off));
    mmapio_unmap(big);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- many ------------------------------------------------------------- */

Test(arena, ten_thousand_mappings_cost_a_process_one_fd)
{
    start((const char *const[]){ "--max-mappings", "30000",
                                 "--max-mappings-per-uid", "30000",
                                 "--max-handles-per-client", "20000", NULL });
    mmapio_client *c = hz_client();
    /* Under valgrind a thousand make the point in reasonable time. */
    const int N = rb_wrapped() ? 1000 : 10000;
    mmapio_map **v = calloc((size_t)N, sizeof(*v));
    cr_assert_not_null(v);
    /* Counted from the first: the arena's fd and the connection's write
     * ring come with it. */
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &v[i]));
    }
    hz_assert_ok(mmapio_ping(c));
    int mine0 = hz_fd_count(getpid());
    int daemon0 = hz_fd_count(hz.pid);
    for (int i = 10; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &v[i]));
    }
    for (int i = 0; i < N; i++)
        *(int *)mmapio_as_mut_ptr(v[i]) = i;
    int mine = hz_fd_count(getpid());
    /* Settled: a reply's fd may still be on its way out. */
    int daemon = hz_fd_count_settle(hz.pid, daemon0, 2000);
    cr_assert_leq(mine - mine0, 0, "%d mappings took %d more fds here", N,
                  mine - mine0);
    cr_assert_leq(daemon - daemon0, 0, "%d mappings took %d more daemon fds", N,
                  daemon - daemon0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(*(const int *)mmapio_as_ptr(v[i]), i);
        hz_assert_ok(mmapio_unmap(v[i]));
    }
    int arenas[4];
    cr_assert_eq(arena_fds(arenas, 4), 0, "the arena fd outlived the mappings");
    free(v);
    mmapio_disconnect(c);
}

Test(arena, the_daemon_holds_a_hundred_thousand)
{
    if (rb_wrapped())
        cr_skip_test("100,000 round trips under valgrind take too long");
    start((const char *const[]){ "--max-mappings", "120000",
                                 "--max-mappings-per-uid", "120000", NULL });
    mmapio_client *c = hz_client();
    enum { N = 100000 };
    int daemon0 = 0;
    static char before[4096];
    for (int i = 0; i < N; i++) {
        if (i == 10) { /* the arena and the write ring came by now */
            hz_assert_ok(mmapio_ping(c));
            daemon0 = hz_fd_count(hz.pid);
            snprintf(before, sizeof(before), "%s", fd_links(hz.pid));
        }
        char name[16];
        mmapio_map *m;
        snprintf(name, sizeof(name), "h%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
        *(int *)mmapio_as_mut_ptr(m) = i;
        hz_assert_ok(mmapio_unmap(m));
    }
    /* Settled: a reply's fd may still be on its way out. */
    int daemon = hz_fd_count_settle(hz.pid, daemon0, 2000);
    cr_assert_leq(daemon - daemon0, 0, "%d mappings took %d more daemon fds "
                  "(before: %s; after: %s)", N, daemon - daemon0, before,
                  fd_links(hz.pid));
    for (int i = 0; i < N; i += 9973) {
        char name[16];
        mmapio_map *m;
        snprintf(name, sizeof(name), "h%d", i);
        hz_assert_ok(mmapio_anon_open(c, name, &m));
        cr_assert_eq(*(const int *)mmapio_as_ptr(m), i);
        hz_assert_ok(mmapio_unmap(m));
    }
    mmapio_disconnect(c);
}
