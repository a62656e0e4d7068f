/*
 * test_limits: the daemon's limits, set by flags and by a config file.
 *
 * Each test starts its own daemon with small limits and goes past one:
 * max_clients (the extra connection is told MMAPIO_E_QUOTA and "mmapiod is
 * full", then closed; the others keep working, a place freed is taken
 * again), max_clients_per_uid and reserved_clients (the same, with their
 * own words, while another uid still gets in), max_mappings_per_uid and max_bytes_per_uid
 * (MMAPIO_E_QUOTA with nothing created, resized or left on disk; another
 * uid is not charged for root's use), max_fd_mappings_per_uid (a uid's
 * file mappings stop at its share of the daemon's fds, with the setting
 * named, while its carved anonymous ones go on past it and another uid
 * still opens files; by default one uid holds more carved mappings than
 * the whole fd budget) and reserved_fd_mappings, max_write_rings_per_uid (the
 * library's writes then go by notices, every one still told to watchers;
 * a closed connection's ring is given back), max_handles_per_client (per
 * connection), max_frame (a bigger datagram closes that connection only;
 * the library, told the limit at hello, refuses locally). Every refusal
 * leaves a log line naming the limit. Flags override the config file; a
 * bad limit stops the daemon at start with a one-line reason.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust.h"
#include "wire.h"

static void init(void)
{
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    r = rb_share(&hz);
    cr_assert_eq(r, 0, "chmod: %s", strerror(-r));
}

TestSuite(limits, .init = init, .fini = hz_teardown, .timeout = 60);

static void start(const char *const *extra)
{
    int r = rb_start(&hz, extra);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s\n%s", strerror(-r),
                 rb_log_tail(&hz));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

/* Writes the config file DIR/mmapiod.conf; returns its path. */
static const char *config(const char *text)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/mmapiod.conf", hz.dir);
    cr_assert_eq(hz_write_file(path, text, strlen(text)), 0);
    return path;
}

static void expect_logged(const char *why)
{
    cr_assert(rb_log_has(&hz, why, 5000),
              "no log line mentions %s; the log ends with:\n%s", why,
              rb_log_tail(&hz));
}

/* Connects, retrying for up to 2 s while refused: a connection the daemon
 * has not yet seen closed may still take a place. */
static mmapio_client *connect_retry(void)
{
    mmapio_client *c = NULL;
    int64_t end = hz_now_ms() + 2000;
    int r;
    while ((r = mmapio_connect(hz.sock, &c)) != MMAPIO_OK &&
           hz_now_ms() < end)
        usleep(20000);
    cr_assert_eq(r, MMAPIO_OK, "connect: %s", mmapio_strerror(r));
    return c;
}

/* ---- max_clients ------------------------------------------------------ */

Test(limits, max_clients_closes_the_extra_connection)
{
    /* The file says 2, the flag 3: the flag wins. */
    const char *conf = config("# test\nmax_clients = 2\n");
    start((const char *[]){ "--config", conf, "--max-clients", "3", NULL });

    mmapio_client *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = connect_retry();
    /* The three admitted clients are served. */
    for (int i = 0; i < 3; i++) {
        mmapio_map *m;
        char name[16];
        snprintf(name, sizeof(name), "a%d", i);
        hz_assert_ok(mmapio_ping(c[i]));
        hz_assert_ok(mmapio_anon_create(c[i], name, 4096, &m));
        hz_assert_ok(mmapio_unmap(m));
    }
    usleep(100000);
    int base = hz_fd_count(hz.pid);

    for (int k = 0; k < 5; k++) {
        mmapio_client *x = NULL;
        int r = mmapio_connect(hz.sock, &x);
        if (r == MMAPIO_OK)
            mmapio_disconnect(x);
        cr_assert_eq(r, MMAPIO_E_QUOTA,
                     "connection #%d past max_clients=3: %d (%s)", 4 + k, r,
                     mmapio_last_error());
        cr_assert_str_eq(mmapio_last_error(),
                         "mmapiod is full: max_clients (3) reached");
        /* The same for a raw peer: accepted by the kernel, then closed. */
        int fd = raw_connect(hz.sock);
        cr_assert_geq(fd, 0);
        r = raw_hello(fd, WIRE_PROTOCOL);
        cr_assert(raw_is_errno(r), "raw hello past max_clients: %d", r);
        close(fd);
    }
    expect_logged("max_clients");

    /* The three admitted clients are served as before. */
    for (int i = 0; i < 3; i++) {
        mmapio_map *m;
        char name[16];
        snprintf(name, sizeof(name), "a%d", i);
        hz_assert_ok(mmapio_ping(c[i]));
        hz_assert_ok(mmapio_anon_open(c[i], name, &m));
        hz_assert_ok(mmapio_unmap(m));
    }
    /* Refused connections left nothing open behind. */
    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base, "daemon fds: %d with 3 clients, %d after the "
                  "refusals", base, now);

    /* A place freed is taken again. */
    mmapio_disconnect(c[0]);
    c[0] = connect_retry();
    hz_assert_ok(mmapio_ping(c[0]));
    for (int i = 0; i < 3; i++)
        mmapio_disconnect(c[i]);
}

/* ---- max_clients_per_uid, reserved_clients ---------------------------- */

/* As nobody, already connected once (c): the second connection is
 * admitted, the third is told why not. */
static const char *per_uid_full(mmapio_client *c, void *arg)
{
    mmapio_client *second, *third = NULL;
    char want[128];
    snprintf(want, sizeof(want), "mmapiod is full for uid %u: "
             "max_clients_per_uid (2) reached", (unsigned)RB_NOBODY);
    EXPECT(mmapio_ping(c), MMAPIO_OK);
    EXPECT(mmapio_connect(hz.sock, &second), MMAPIO_OK);
    int r = mmapio_connect(hz.sock, &third);
    if (r == MMAPIO_OK)
        mmapio_disconnect(third);
    EXPECT(r, MMAPIO_E_QUOTA);
    if (strcmp(mmapio_last_error(), want))
        return rb_fail("past max_clients_per_uid: \"%s\"", mmapio_last_error());
    EXPECT(mmapio_ping(second), MMAPIO_OK);
    mmapio_disconnect(second);
    return NULL;
}

/* As nobody, while root's clients leave only the reserved places. */
static const char *reserved_full(mmapio_client *c, void *arg)
{
    mmapio_client *x = NULL;
    int r = mmapio_connect(hz.sock, &x);
    if (r == MMAPIO_OK)
        mmapio_disconnect(x);
    EXPECT(r, MMAPIO_E_QUOTA);
    if (strcmp(mmapio_last_error(), "mmapiod is full: the last 2 of "
               "max_clients (6) places are kept for root and admin_group"))
        return rb_fail("in the reserve: \"%s\"", mmapio_last_error());
    return NULL;
}

Test(limits, past_the_per_uid_and_reserved_limits_a_reason)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to connect as another uid");
    start((const char *[]){ "--max-clients", "6", "--max-clients-per-uid", "2",
                            "--reserved-clients", "2", NULL });
    char why[512];
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, per_uid_full, NULL,
                           why, sizeof(why)), 0, "%s", why);
    expect_logged("max_clients_per_uid");

    /* Root is not held to the per-uid share: 3 of its own, and one place
     * left outside the reserve, which nobody's first connection takes. */
    mmapio_client *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = connect_retry();
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, reserved_full, NULL,
                           why, sizeof(why)), 0, "%s", why);
    /* Root still gets a reserved place. */
    mmapio_client *r = connect_retry();
    hz_assert_ok(mmapio_ping(r));
    mmapio_disconnect(r);
    for (int i = 0; i < 3; i++)
        mmapio_disconnect(c[i]);
}

/* ---- max_mappings_per_uid --------------------------------------------- */

static int child_anon_create(const char *name)
{
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        mmapio_client *c;
        mmapio_map *m;
        if (rb_become(RB_NOBODY, RB_NOBODY) < 0)
            _exit(100);
        int r = mmapio_connect(hz.sock, &c);
        if (r == MMAPIO_OK)
            r = mmapio_anon_create(c, name, 4096, &m);
        _exit(-r);
    }
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFEXITED(st), "child: status 0x%x", (unsigned)st);
    cr_assert_neq(WEXITSTATUS(st), 100, "cannot become uid %d", RB_NOBODY);
    return -WEXITSTATUS(st);
}

Test(limits, max_mappings_per_uid)
{
    start((const char *[]){ "--config",
                            config("max_mappings_per_uid = 2\n"), NULL });
    mmapio_client *c = hz_client();
    mmapio_map *a, *b, *x;
    hz_assert_ok(mmapio_anon_create(c, "a", 4096, &a));
    hz_assert_ok(mmapio_anon_create(c, "b", 4096, &b));

    x = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_create(c, "c", 4096, &x), MMAPIO_E_QUOTA);
    cr_assert_eq(x, (mmapio_map *)0x1, "output written on failure");
    hz_assert_ret(mmapio_anon_open(c, "c", &x), MMAPIO_E_NOT_FOUND);
    /* A file is a mapping too; refusing it leaves no file behind. */
    hz_assert_ret(mmapio_open_or_create(c, "f.dat", 4096, &x),
                  MMAPIO_E_QUOTA);
    cr_assert_eq(hz_file_size(hz_path(&hz, "f.dat")), -ENOENT,
                 "a refused create left f.dat on disk (size %lld)",
                 hz_file_size(hz_path(&hz, "f.dat")));
    expect_logged("max_mappings_per_uid");

    /* More handles on a mapping that exists are not more mappings. */
    hz_assert_ok(mmapio_anon_open(c, "a", &x));
    hz_assert_ok(mmapio_unmap(x));
    /* The quota is root's alone: another uid creates freely. */
    hz_assert_ret(child_anon_create("nobodys"), MMAPIO_OK);

    /* Deleted and unmapped, a mapping stops counting. */
    hz_assert_ok(mmapio_anon_delete(c, "a"));
    hz_assert_ok(mmapio_unmap(a));
    hz_assert_ok(mmapio_anon_create(c, "c", 4096, &x));
    hz_assert_ret(mmapio_anon_create(c, "d", 4096, &a), MMAPIO_E_QUOTA);
    mmapio_unmap(x);
    mmapio_unmap(b);
    mmapio_disconnect(c);
}

/* ---- max_fd_mappings ------------------------------------------------ */

/* A number the daemon logged at start ("KEY N"), or -1. */
static long logged_number(const char *key)
{
    cr_assert(rb_log_has(&hz, key, 5000), "no %s in the log:\n%s", key,
              rb_log_tail(&hz));
    FILE *f = fopen(rb_log_path(&hz), "re");
    char line[1024];
    long v = -1;
    size_t n = strlen(key);
    while (f && v < 0 && fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, key);
        if (at && at[n] == ' ')
            v = strtol(at + n + 1, NULL, 10);
    }
    if (f)
        fclose(f);
    return v;
}

/* Creates *(int *)arg carved 4 KiB anonymous mappings and lets go of each
 * handle: they live on by name, charged to this uid, with no fd. */
static const char *many_carved(mmapio_client *c, void *arg)
{
    int n = *(int *)arg;
    char name[32];
    for (int i = 0; i < n; i++) {
        mmapio_map *m;
        snprintf(name, sizeof(name), "small-%d", i);
        EXPECT(mmapio_anon_create(c, name, 4096, &m), MMAPIO_OK);
        EXPECT(mmapio_unmap(m), MMAPIO_OK);
    }
    /* Still all there. */
    mmapio_map *m;
    snprintf(name, sizeof(name), "small-%d", n - 1);
    EXPECT(mmapio_anon_open(c, name, &m), MMAPIO_OK);
    EXPECT(mmapio_unmap(m), MMAPIO_OK);
    return NULL;
}

Test(limits, carved_mappings_pass_the_fd_budget_by_default)
{
    /* The defaults, here; a small fd budget under valgrind, to be quick. */
    int n = rb_wrapped() ? 300 : 12000;
    start(rb_wrapped() ? (const char *[]){ "--max-fd-mappings", "64", NULL }
                       : NULL);
    long fd_total = logged_number("max_fd_mappings");
    long max_mappings = logged_number("max_mappings");
    cr_assert_gt(fd_total, 0);
    cr_assert_lt(fd_total, n, "the fd budget (%ld) is not below %d: the "
                 "test shows nothing", fd_total, n);
    cr_assert_eq(max_mappings, 131072, "max_mappings %ld with arenas on",
                 max_mappings);
    char why[512];
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, many_carved, &n,
                           why, sizeof(why)), 0, "as nobody: %s", why);
}

struct files {
    int held;            /* files this uid opens and holds (< 64) */
    const char *refused; /* then one more is refused, saying this */
};

/* Opens f0.dat.. read-only and holds them; with `refused`, the next one
 * is refused with that reason, while carved mappings still come and a
 * large anonymous one (its own memfd) does not. */
static const char *hold_files(mmapio_client *c, void *arg)
{
    const struct files *f = arg;
    mmapio_map *m[64], *x;
    char name[32];
    for (int i = 0; i < f->held; i++) {
        snprintf(name, sizeof(name), "f%d.dat", i);
        EXPECT(mmapio_open_ro(c, name, &m[i]), MMAPIO_OK);
    }
    if (f->refused) {
        snprintf(name, sizeof(name), "f%d.dat", f->held);
        EXPECT(mmapio_open_ro(c, name, &x), MMAPIO_E_QUOTA);
        if (!strstr(mmapio_last_error(), f->refused))
            return rb_fail("past the fd quota: \"%s\"", mmapio_last_error());
        /* Anonymous ones need no fd: still more than the fd quota. */
        for (int i = 0; i < 2 * f->held; i++) {
            snprintf(name, sizeof(name), "anon-%d", i);
            EXPECT(mmapio_anon_create(c, name, 4096, &x), MMAPIO_OK);
            EXPECT(mmapio_unmap(x), MMAPIO_OK);
        }
        /* A huge-page or large one holds an fd of its own: refused. */
        EXPECT(mmapio_anon_create(c, "big", 4u << 20, &x), MMAPIO_E_QUOTA);
        /* Letting go of one file makes room for another. */
        EXPECT(mmapio_unmap(m[0]), MMAPIO_OK);
        EXPECT(mmapio_open_ro(c, "f63.dat", &m[0]), MMAPIO_OK);
    }
    for (int i = 0; i < f->held; i++)
        EXPECT(mmapio_unmap(m[i]), MMAPIO_OK);
    return NULL;
}

Test(limits, max_fd_mappings_per_uid)
{
    /* 64 fd mappings in all: 16 a uid, 4 kept for admins. */
    start((const char *[]){ "--max-fd-mappings", "64", "--open-cache", "0",
                            NULL });
    cr_assert_eq(logged_number("max_fd_mappings"), 64);
    expect_logged("max_fd_mappings 64 (16 per uid, 4 kept for admins)");
    for (int i = 0; i < 64; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d.dat", i);
        cr_assert_eq(hz_write_file(hz_path(&hz, name), "x", 1), 0);
    }
    char why[512];
    struct files full = { 16, "over max_fd_mappings_per_uid (16 mappings "
                                  "holding a daemon fd" };
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, hold_files, &full,
                           why, sizeof(why)), 0, "as nobody: %s", why);
    expect_logged("max_fd_mappings_per_uid (16");
    /* Its quota is its own: another uid opens files too. */
    struct files other = { 16, NULL };
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY - 1, RB_NOBODY - 1, hold_files,
                           &other, why, sizeof(why)), 0, "as %d: %s",
                 RB_NOBODY - 1, why);
}

Test(limits, reserved_fd_mappings)
{
    /* 64 fd mappings in all, the last 4 for admins; no per-uid share. */
    start((const char *[]){ "--max-fd-mappings", "64",
                            "--max-fd-mappings-per-uid", "64",
                            "--open-cache", "0", NULL });
    for (int i = 0; i < 64; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d.dat", i);
        cr_assert_eq(hz_write_file(hz_path(&hz, name), "x", 1), 0);
    }
    /* Root holds 4 files meanwhile (f60..f63), which leaves nobody 56:
     * the last 4 stay unused, for admins. */
    mmapio_client *c = hz_client();
    mmapio_map *m[4];
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d.dat", 60 + i);
        hz_assert_ok(mmapio_open_ro(c, name, &m[i]));
    }
    char why[512];
    struct files full = { 56, "over the daemon's max_fd_mappings less "
                              "reserved_fd_mappings (64, 4 kept for admins)" };
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, hold_files, &full,
                           why, sizeof(why)), 0, "as nobody: %s", why);
    expect_logged("reserved_fd_mappings (64, 4 kept for admins)");
    for (int i = 0; i < 4; i++)
        hz_assert_ok(mmapio_unmap(m[i]));
    mmapio_disconnect(c);
}

/* ---- max_bytes_per_uid ------------------------------------------------ */

#define KIB 1024ull

Test(limits, max_bytes_per_uid)
{
    start((const char *[]){ "--max-bytes-per-uid", "1048576", NULL });
    mmapio_client *c = hz_client();
    mmapio_map *a, *x = (mmapio_map *)0x1;
    hz_assert_ok(mmapio_anon_create(c, "a", 512 * KIB, &a));
    hz_assert_ok(mmapio_update_region(a, 0, "kept", 4));

    /* Creating past the quota: refused, nothing made. */
    hz_assert_ret(mmapio_anon_create(c, "b", 768 * KIB, &x), MMAPIO_E_QUOTA);
    hz_assert_ret(mmapio_anon_open(c, "b", &x), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_create_rw(c, "f.dat", 768 * KIB, &x),
                  MMAPIO_E_QUOTA);
    cr_assert_eq(hz_file_size(hz_path(&hz, "f.dat")), -ENOENT,
                 "a refused create left f.dat on disk");
    cr_assert_eq(x, (mmapio_map *)0x1);
    expect_logged("max_bytes_per_uid");

    /* Growing past it: refused, the size unchanged everywhere. */
    hz_assert_ret(mmapio_resize(a, 2048 * KIB), MMAPIO_E_QUOTA);
    cr_assert_eq(mmapio_len(a), 512 * KIB);
    char buf[4];
    hz_assert_ok(mmapio_read_into(a, 0, buf, 4));
    cr_assert_eq(memcmp(buf, "kept", 4), 0);
    hz_assert_ok(mmapio_refresh(a));
    cr_assert_eq(mmapio_len(a), 512 * KIB, "the daemon's size changed to %llu",
                 (unsigned long long)mmapio_len(a));

    /* Exactly the quota is allowed, one page more is not. */
    hz_assert_ok(mmapio_resize(a, 1024 * KIB));
    hz_assert_ret(mmapio_anon_create(c, "tiny", 4096, &x), MMAPIO_E_QUOTA);

    /* Shrinking gives the bytes back. */
    hz_assert_ok(mmapio_resize(a, 256 * KIB));
    mmapio_map *b, *f;
    hz_assert_ok(mmapio_anon_create(c, "b", 512 * KIB, &b));
    hz_assert_ok(mmapio_create_rw(c, "f.dat", 128 * KIB, &f));
    /* A file grown past the quota keeps its size on disk. */
    hz_assert_ret(mmapio_resize(f, 512 * KIB), MMAPIO_E_QUOTA);
    cr_assert_eq(hz_file_size(hz_path(&hz, "f.dat")), (long long)(128 * KIB));
    cr_assert_eq(mmapio_len(f), 128 * KIB);
    hz_assert_ok(mmapio_resize(f, 256 * KIB)); /* 256 + 512 + 256 */
    cr_assert_eq(hz_file_size(hz_path(&hz, "f.dat")), (long long)(256 * KIB));

    /* Deleted and unmapped, the bytes are free again. */
    mmapio_unmap(f);
    hz_assert_ok(mmapio_delete(c, "f.dat"));
    hz_assert_ok(mmapio_anon_delete(c, "b"));
    hz_assert_ok(mmapio_unmap(b));
    hz_assert_ok(mmapio_anon_create(c, "c", 768 * KIB, &x));
    mmapio_unmap(x);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}

/* ---- max_write_rings_per_uid ------------------------------------------ */

#define RING_MAP (64 * KIB)
#define RING_RECS (RING_MAP / 64)

/* Write rings the daemon keeps for the clients c's status counts. */
static uint32_t rings_now(mmapio_client *c)
{
    mmapio_status *s;
    hz_assert_ok(mmapio_admin_status(c, &s));
    uint32_t n = s->write_rings;
    mmapio_status_free(s);
    return n;
}

/* Polls c's count until it is `want` (a closed connection is released
 * when the daemon reads its hangup, after the close returned). */
static uint32_t rings_become(mmapio_client *c, uint32_t want)
{
    int64_t end = hz_now_ms() + 10000;
    uint32_t n;
    while ((n = rings_now(c)) != want && hz_now_ms() < end)
        usleep(10000);
    return n;
}

/* A connection whose first read-write grant (anon `name`) asks for a ring. */
static mmapio_client *ring_writer(const char *name, mmapio_map **m)
{
    mmapio_client *c = hz_client();
    hz_assert_ok(mmapio_anon_open_or_create(c, name, RING_MAP, m));
    return c;
}

/* What a watcher saw of each 64-byte record (its first 8 bytes). */
struct seen {
    const uint8_t *base;
    uint64_t v[RING_RECS];
    long ranged, rangeless;
};

static void see_recs(struct seen *s, uint64_t first, uint64_t last)
{
    for (uint64_t i = first; i <= last && i < RING_RECS; i++)
        s->v[i] = __atomic_load_n((const uint64_t *)(s->base + i * 64),
                                  __ATOMIC_ACQUIRE);
}

static void on_rec_change(const mmapio_change_event *ev, void *user)
{
    struct seen *s = user;
    if (ev->kind != MMAPIO_CHANGE_MODIFIED)
        return;
    if (!ev->has_range) {
        s->rangeless++;
        see_recs(s, 0, RING_RECS - 1);
    } else if (ev->len) {
        s->ranged++;
        see_recs(s, ev->offset / 64, (ev->offset + ev->len - 1) / 64);
    }
}

/* Records whose last write no event has covered yet. */
static uint64_t recs_missed(const struct seen *s)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < RING_RECS; i++)
        n += s->v[i] != __atomic_load_n((const uint64_t *)(s->base + i * 64),
                                        __ATOMIC_ACQUIRE);
    return n;
}

/* As uid nobody: its own connection gets a ring though root's are used up. */
static const char *nobody_gets_a_ring(mmapio_client *c, void *arg)
{
    mmapio_map *m;
    mmapio_status *s;
    (void)arg;
    EXPECT(mmapio_anon_create(c, "nobodys_ring", RING_MAP, &m), MMAPIO_OK);
    EXPECT(mmapio_update_region(m, 0, "n", 1), MMAPIO_OK);
    EXPECT(mmapio_admin_status(c, &s), MMAPIO_OK);
    uint32_t n = s->write_rings;
    mmapio_status_free(s);
    if (n != 1)
        return rb_fail("nobody's write_rings: %u, expected 1", n);
    mmapio_unmap(m);
    return NULL;
}

Test(limits, max_write_rings_per_uid)
{
    start((const char *[]){ "--config",
                            config("max_write_rings_per_uid = 2\n"), NULL });
    mmapio_client *adm = hz_client(), *w[4];
    mmapio_map *m[4];
    cr_assert_eq(rings_now(adm), 0);
    w[0] = ring_writer("r0", &m[0]);
    w[1] = ring_writer("r1", &m[1]);
    cr_assert_eq(rings_now(adm), 2, "two writing connections, two rings");

    /* A third connection of root's: its request is QUOTA with a reason ... */
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_hello(fd, WIRE_PROTOCOL), 0);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__WriteRing wr = MMAPIO__WRITE_RING__INIT;
    req.id = 7;
    req.op_case = MMAPIO__REQUEST__OP_WRITE_RING;
    req.write_ring = &wr;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *sm;
    int rfd = -1;
    cr_assert_eq(raw_recv(fd, 5000, &sm, &rfd), 0);
    cr_assert_eq(sm->reply->error, MMAPIO_E_QUOTA, "WriteRing past the limit: %d",
                 sm->reply->error);
    cr_assert_eq(rfd, -1, "a refused ring came with an fd");
    cr_assert(strstr(sm->reply->message, "max_write_rings_per_uid"),
              "the reason: \"%s\"", sm->reply->message);
    mmapio__server_message__free_unpacked(sm, NULL);
    close(fd);
    expect_logged("max_write_rings_per_uid");

    /* ... and through the library, the open works and its writes go by
     * notices, paced (ranges, then MODIFIED without a range once it
     * writes faster than they may go): a watcher misses none of them. */
    w[2] = ring_writer("r2", &m[2]);
    cr_assert_eq(rings_now(adm), 2, "a third ring past the limit");
    mmapio_client *wc = hz_client();
    mmapio_map *wm;
    mmapio_watcher *wt;
    struct seen *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    mmapio_options o;
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_READ_ONLY; /* asks for no ring */
    o.anonymous = true;
    hz_assert_ok(mmapio_open(wc, "r2", &o, &wm));
    s->base = mmapio_as_ptr(wm);
    hz_assert_ok(mmapio_watch(wm, on_rec_change, s, &wt));
    uint8_t rec[64];
    memset(rec, 'x', sizeof(rec));
    for (uint64_t seq = 1; seq <= 20000; seq++) {
        memcpy(rec, &seq, sizeof(seq));
        hz_assert_ok(mmapio_update_region(m[2], seq * 7 % RING_RECS * 64, rec,
                                          sizeof(rec)));
    }
    int64_t end = hz_now_ms() + 10000;
    uint64_t left;
    while ((left = recs_missed(s)) > 0 && hz_now_ms() < end)
        cr_assert_geq(mmapio_client_dispatch(wc, 50), 0);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered",
                 (unsigned long long)left);
    cr_assert_gt(s->ranged + s->rangeless, 0);

    /* Another uid is not charged for root's rings. */
    char why[256];
    cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, nobody_gets_a_ring,
                           NULL, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rings_become(adm, 2), 2, "nobody's ring outlived it");

    /* A connection closed gives its ring back: the next one gets it. */
    mmapio_unmap(m[0]);
    mmapio_disconnect(w[0]);
    cr_assert_eq(rings_become(adm, 1), 1, "a closed connection's ring stayed "
                 "charged");
    w[3] = ring_writer("r3", &m[3]);
    cr_assert_eq(rings_now(adm), 2, "the ring given back was not granted again");

    mmapio_unwatch(wt);
    mmapio_unmap(wm);
    mmapio_disconnect(wc);
    free(s);
    for (int i = 1; i < 4; i++) {
        mmapio_unmap(m[i]);
        mmapio_disconnect(w[i]);
    }
    cr_assert_eq(rings_become(adm, 0), 0);
    mmapio_disconnect(adm);
}

/*
 * A connection without a ring tells its writes by notices, and drops the
 * ones its full socket refuses (it never waits). A writer that dropped
 * some and then exits, without a call that would own up to them, leaves
 * the daemon only what fit in its socket: the watchers must still hear
 * of every write. Here the daemon is stopped while the writer writes a
 * record at a time, a notice each (never so fast that the library holds
 * them back and the daemon's MODIFIED after the hold covers the rest),
 * well past what its socket holds, then exits.
 */
#define DROP_WRITES 600
Test(limits, a_ringless_writer_that_dropped_notices_and_exited)
{
    start((const char *[]){ "--config",
                            config("max_write_rings_per_uid = 0\n"), NULL });
    mmapio_client *c = hz_client(), *wc = hz_client();
    mmapio_map *m, *wm;
    mmapio_watcher *wt;
    hz_assert_ok(mmapio_anon_create(c, "dropped", RING_MAP, &m));
    struct seen *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    mmapio_options o;
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_READ_ONLY;
    o.anonymous = true;
    hz_assert_ok(mmapio_open(wc, "dropped", &o, &wm));
    s->base = mmapio_as_ptr(wm);
    hz_assert_ok(mmapio_watch(wm, on_rec_change, s, &wt));

    struct hz_chan up, go;
    cr_assert_eq(hz_chan_open(&up), 0);
    cr_assert_eq(hz_chan_open(&go), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(&up);
        hz_chan_keep_read(&go);
        mmapio_client *cc;
        mmapio_map *mm;
        if (mmapio_connect(NULL, &cc) || mmapio_anon_open(cc, "dropped", &mm))
            _exit(1);
        hz_chan_send(&up, 'k');
        if (hz_chan_recv(&go, 20000) != 'g')
            _exit(2);
        uint8_t rec[64];
        memset(rec, 'd', sizeof(rec));
        for (uint64_t seq = 1; seq <= DROP_WRITES; seq++) {
            memcpy(rec, &seq, sizeof(seq));
            if (mmapio_update_region(mm, seq % RING_RECS * 64, rec,
                                     sizeof(rec)))
                _exit(3);
            if (seq % 16 == 0)
                usleep(6000); /* under NOTICE_BURST a NOTICE_WINDOW_MS */
        }
        _exit(0); /* no unmap, no disconnect: nothing owns up */
    }
    hz_chan_keep_read(&up);
    hz_chan_keep_write(&go);
    cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "the writer did not open");
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    cr_assert_eq(hz_wait_stopped(hz.pid), 0, "mmapiod did not stop");
    hz_chan_send(&go, 'g');
    int st = hz_wait_child(pid, 60000);
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status 0x%x",
              (unsigned)st);

    int64_t end = hz_now_ms() + 5000;
    uint64_t left;
    while ((left = recs_missed(s)) > 0 && hz_now_ms() < end)
        cr_assert_geq(mmapio_client_dispatch(wc, 50), 0);
    cr_assert_eq(left, 0, "%llu records whose last write no event covered "
                 "(%ld events with a range, %ld without)",
                 (unsigned long long)left, s->ranged, s->rangeless);

    mmapio_unwatch(wt);
    mmapio_unmap(wm);
    mmapio_unmap(m);
    mmapio_disconnect(wc);
    mmapio_disconnect(c);
    hz_chan_close(&up);
    hz_chan_close(&go);
    free(s);
}

/* ---- max_handles_per_client ------------------------------------------- */

Test(limits, max_handles_per_client)
{
    start((const char *[]){ "--max-handles-per-client", "2", NULL });
    mmapio_client *c = hz_client(), *c2 = hz_client();
    mmapio_map *m1, *m2, *x;
    hz_assert_ok(mmapio_anon_create(c, "a", 4096, &m1));
    hz_assert_ok(mmapio_anon_open(c, "a", &m2));
    hz_assert_ret(mmapio_anon_open(c, "a", &x), MMAPIO_E_QUOTA);
    hz_assert_ret(mmapio_create_rw(c, "f.dat", 4096, &x), MMAPIO_E_QUOTA);
    expect_logged("max_handles_per_client");
    hz_assert_ok(mmapio_ping(c));

    /* Per connection: another client of the same uid is not charged. */
    mmapio_map *y1, *y2;
    hz_assert_ok(mmapio_anon_open(c2, "a", &y1));
    hz_assert_ok(mmapio_open_or_create(c2, "f.dat", 4096, &y2));

    /* A handle given back is a place free again. */
    hz_assert_ok(mmapio_unmap(m2));
    hz_assert_ok(mmapio_open_rw(c, "f.dat", &m2));
    hz_assert_ret(mmapio_anon_open(c, "a", &x), MMAPIO_E_QUOTA);
    mmapio_unmap(m1);
    mmapio_unmap(m2);
    mmapio_unmap(y1);
    mmapio_unmap(y2);
    mmapio_disconnect(c);
    mmapio_disconnect(c2);
}

/* ---- max_frame -------------------------------------------------------- */

/* A valid Open request whose path is `len` bytes of 'p'. */
static int send_open_of_len(int fd, size_t len)
{
    char *path = malloc(len + 1);
    cr_assert_not_null(path);
    memset(path, 'p', len);
    path[len] = '\0';
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = path;
    open.mode = MMAPIO__MODE__MODE_READ_ONLY;
    req.id = 9;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;
    int r = raw_send(fd, &req, -1);
    free(path);
    return r;
}

Test(limits, max_frame)
{
    start((const char *[]){ "--max-frame", "1024", NULL });
    int big = rb_raw_hello(hz.sock), fit = rb_raw_hello(hz.sock);
    int other = rb_raw_hello(hz.sock);
    cr_assert_geq(big, 0);
    cr_assert_geq(fit, 0);
    cr_assert_geq(other, 0);
    mmapio_client *c = hz_client();

    /* Just under the limit: answered (with an error: no such path). */
    cr_assert_eq(send_open_of_len(fit, 900), 0);
    cr_assert_eq(raw_expect_refusal(fit, 5000, NULL), 0,
                 "a 900-byte path in a 1024-byte frame limit was not "
                 "answered");
    cr_assert_eq(raw_ping(fit, 2), 0);

    /* Over it: that connection is closed... */
    cr_assert_eq(send_open_of_len(big, 2000), 0);
    cr_assert_eq(raw_expect_refusal(big, 5000, NULL), 1,
                 "a 2000-byte datagram past max_frame=1024 did not close "
                 "the connection");
    expect_logged("frame limit");
    /* ... and nobody else's. */
    cr_assert_eq(raw_ping(other, 3), 0);
    cr_assert_eq(raw_ping(fit, 4), 0);
    hz_assert_ok(mmapio_ping(c));

    /* The library learnt the limit at hello: a request too big for it is
     * refused before it is sent, and the connection stays usable. */
    char path[1500];
    memset(path, 'q', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    mmapio_map *m;
    hz_assert_ret(mmapio_open_ro(c, path, &m), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ok(mmapio_ping(c));
    hz_assert_ok(mmapio_anon_create(c, "still", 4096, &m));
    mmapio_unmap(m);
    mmapio_disconnect(c);
    close(big);
    close(fit);
    close(other);
}

/* ---- bad limits ------------------------------------------------------- */

/* Runs mmapiod with args; it must exit non-zero at once, its stderr
 * naming `why`. */
static void expect_start_refused(const char *const *extra, const char *why)
{
    const char *args[16];
    size_t n = 0;
    args[n++] = "--socket";
    args[n++] = hz.sock;
    args[n++] = "--root";
    args[n++] = hz.root;
    for (; *extra; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    char err_path[300];
    snprintf(err_path, sizeof(err_path), "%s/refused.err", hz.dir);
    FILE *f = fopen(err_path, "w+e");
    cr_assert_not_null(f);
    pid_t pid = hz_spawn(args, -1, fileno(f));
    cr_assert_gt(pid, 0);
    int st = 0;
    int r = hz_wait_exit(pid, 10000, &st);
    if (r < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    char text[1024] = "";
    rewind(f);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    cr_assert_eq(r, 0, "mmapiod with a bad %s kept running", why);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0,
              "mmapiod with a bad %s: status 0x%x", why, (unsigned)st);
    cr_assert_not_null(strstr(text, why), "stderr does not name %s: %s", why,
                       text);
}

Test(limits, bad_limits_stop_the_daemon_at_start)
{
    expect_start_refused((const char *[]){ "--max-clients", "0", NULL },
                         "max-clients");
    expect_start_refused((const char *[]){ "--max-frame", "100", NULL },
                         "max-frame");
    expect_start_refused((const char *[]){ "--max-bytes-per-uid", "lots",
                                           NULL },
                         "max-bytes-per-uid");
    expect_start_refused((const char *[]){ "--config",
                                           config("max_inflight = 0\n"),
                                           NULL },
                         "max_inflight");
    expect_start_refused((const char *[]){ "--config",
                                           config("max_clientz = 5\n"),
                                           NULL },
                         "max_clientz");
    cr_assert_eq(access(hz.sock, F_OK), -1, "a refused daemon left a socket");
}
