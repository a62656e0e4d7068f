/*
 * test_reconnect: the daemon is killed (SIGKILL) under its clients and
 * started again by hand, without systemd's fd store (issue 15).
 *
 * A client notices without a control call (its fd turns readable,
 * dispatch returns DISCONNECTED at every call, each watcher hears
 * DISCONNECTED once); mmapio_reconnect re-attaches its file and
 * anonymous handles to the very same objects, with bytes (also those
 * written during the outage), owner, mode, policy and watches back; the
 * anonymous mapping comes back from its holder's memfd, as the daemon's
 * state file recorded it. A forged memfd of the same name (the daemon's
 * uid or another's) is refused, a deleted mapping stays deleted, a file
 * replaced by another of the same name leaves its handle detached (its
 * control calls NOT_FOUND, its memory usable). And a producer/consumer
 * pair on an anonymous ring loses no byte across the kill and restart.
 * The state file is a journal: a mapping made or resized just before the
 * kill comes back, a torn or garbage tail is skipped, and create/delete
 * churn keeps it bounded (compaction) without losing records.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust.h"

#define SIZE 65536
#define WAIT_MS 10000

static void init(void)
{
    signal(SIGPIPE, SIG_DFL);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
    alarm(100);
}

static void fini(void)
{
    alarm(0);
    hz_teardown();
}

TestSuite(reconnect, .init = init, .fini = fini, .timeout = 110);

/* ---- helpers ------------------------------------------------------- */

static void state_path(char *path, size_t size)
{
    snprintf(path, size, "%s/.mmapiod/anon.state", hz.root);
}

static long state_size(void)
{
    char path[400];
    struct stat st;
    state_path(path, sizeof(path));
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Appends bytes to the state file as a kill mid-write or a stray writer
 * would leave them (with the daemon down). */
static void state_append(const void *bytes, size_t n)
{
    char path[400];
    state_path(path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

/* The state file's line for `name` of `kind` ("live", "deleted"): its
 * fields (memfd identity, and offset in it when `offset`), once the
 * daemon wrote it (polled). */
static bool state_line_at(const char *kind, const char *name, uint64_t *dev,
                          uint64_t *ino, uint64_t *offset)
{
    char path[400], line[600], tail[300];
    state_path(path, sizeof(path));
    snprintf(tail, sizeof(tail), " %s\n", name);
    int64_t end = hz_now_ms() + WAIT_MS;
    do {
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f)) {
            size_t n = strlen(line), t = strlen(tail);
            if (strncmp(line, kind, strlen(kind)) || line[strlen(kind)] != ' ' ||
                n < t || strcmp(line + n - t, tail))
                continue;
            uint64_t id, off = 0;
            if (dev && ino)
                sscanf(line + strlen(kind), " %" SCNu64 " %" SCNu64 " %" SCNu64
                       " %" SCNu64, &id, dev, ino, &off);
            if (offset)
                *offset = off;
            fclose(f);
            return true;
        }
        if (f)
            fclose(f);
        usleep(5000);
    } while (hz_now_ms() < end);
    return false;
}

static bool state_line(const char *kind, const char *name, uint64_t *dev,
                       uint64_t *ino)
{
    return state_line_at(kind, name, dev, ino, NULL);
}

static void kill9(void)
{
    pid_t pid = hz.pid;
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int st;
    cr_assert_eq(hz_wait_exit(pid, WAIT_MS, &st), 0);
    hz.pid = -1;
}

static void restart(void)
{
    int r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up again: %s\n%s", strerror(-r),
                 rb_log_tail(&hz));
}

/* Dispatches until a negative return (at most `rounds`): that return. */
static int dispatch_until_error(mmapio_client *c, int rounds)
{
    int r = 0;
    for (int i = 0; i < rounds && r >= 0; i++)
        r = mmapio_client_dispatch(c, 100);
    return r;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

/* ---- the tests ----------------------------------------------------- */

Test(reconnect, files_and_anonymous_mappings_come_back_after_kill_9)
{
    static uint8_t want_f[SIZE], want_a[8192];
    fill(want_f, sizeof(want_f), 1);
    fill(want_a, sizeof(want_a), 2);
    mmapio_client *c = hz_client();
    int cfd = mmapio_client_fd(c);

    mmapio_map *f, *a;
    mmapio_flush_policy every4k = { MMAPIO_FLUSH_EVERY_BYTES, 4096 };
    mmapio_flush_policy every100 = { MMAPIO_FLUSH_EVERY_MILLIS, 100 };
    hz_assert_ok(mmapio_create_rw(c, "f.dat", SIZE, &f));
    hz_assert_ok(mmapio_set_flush_policy(f, every4k));
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = sizeof(want_a);
    o.perm = 0640;
    o.flush_policy = every100;
    hz_assert_ok(mmapio_open(c, "a", &o, &a));
    hz_assert_ok(mmapio_update_region(f, 0, want_f, sizeof(want_f)));
    hz_assert_ok(mmapio_update_region(a, 0, want_a, sizeof(want_a)));
    struct hz_events rf = { { 0 } }, ra = { { 0 } };
    mmapio_watcher *wf, *wa;
    hz_assert_ok(mmapio_watch(f, hz_count_event, &rf, &wf));
    hz_assert_ok(mmapio_watch(a, hz_count_event, &ra, &wa));
    struct hz_events rn = { { 0 } }; /* by name, holding nothing */
    mmapio_watcher *wn;
    hz_assert_ok(mmapio_admin_watch(c, "f.dat", false, hz_count_event, &rn,
                                    &wn));
    cr_assert(state_line("live", "a", NULL, NULL), "'a' never recorded");
    hz_assert_ok(mmapio_reconnect(c)); /* connected: nothing to do */
    hz_assert_ok(mmapio_ping(c));

    kill9();

    /* Noticed without a control call. */
    struct pollfd p = { .fd = cfd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "client fd not readable");
    hz_assert_ret(dispatch_until_error(c, 5), MMAPIO_E_DISCONNECTED);
    cr_assert_eq(rf.n[MMAPIO_CHANGE_DISCONNECTED], 1);
    cr_assert_eq(ra.n[MMAPIO_CHANGE_DISCONNECTED], 1);
    cr_assert_eq(rn.n[MMAPIO_CHANGE_DISCONNECTED], 1);
    hz_assert_ret(mmapio_client_dispatch(c, 0), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_client_dispatch(c, 0), MMAPIO_E_DISCONNECTED);
    cr_assert_eq(ra.n[MMAPIO_CHANGE_DISCONNECTED], 1, "told twice");
    hz_assert_ret(mmapio_ping(c), MMAPIO_E_DISCONNECTED);
    hz_assert_ret(mmapio_refresh(a), MMAPIO_E_DISCONNECTED);
    /* Nobody there yet. */
    hz_assert_ret(mmapio_reconnect(c), MMAPIO_E_DISCONNECTED);

    /* Written while no daemon runs. */
    memcpy(want_f + 100, "outage", 6);
    memcpy(want_a + 200, "outage", 6);
    hz_assert_ok(mmapio_update_region(f, 100, "outage", 6));
    hz_assert_ok(mmapio_update_region(a, 200, "outage", 6));

    restart();
    hz_assert_ok(mmapio_reconnect(c));
    cr_assert_eq(mmapio_client_fd(c), cfd, "the fd number changed");
    hz_assert_ok(mmapio_ping(c));
    hz_assert_ok(mmapio_refresh(f));
    hz_assert_ok(mmapio_refresh(a));
    cr_assert_eq(mmapio_len(f), SIZE);
    cr_assert_eq(mmapio_len(a), sizeof(want_a));
    /* Policies: the file's from its read-write holder, the anonymous
     * mapping's from the state file. */
    mmapio_flush_policy pf = mmapio_flush_policy_of(f);
    mmapio_flush_policy pa = mmapio_flush_policy_of(a);
    cr_assert(pf.kind == every4k.kind && pf.value == every4k.value,
              "file policy %d:%" PRIu64, pf.kind, pf.value);
    cr_assert(pa.kind == every100.kind && pa.value == every100.value,
              "anonymous policy %d:%" PRIu64, pa.kind, pa.value);
    mmapio_map_info *info;
    hz_assert_ok(mmapio_admin_stat(c, "a", true, &info));
    cr_assert_eq(info->owner, geteuid());
    cr_assert_eq(info->perm, 0640, "perm %o", info->perm);
    cr_assert_eq(info->size, sizeof(want_a));
    cr_assert_eq(info->policy.kind, every100.kind);
    cr_assert_eq(info->holders, 1);
    mmapio_map_info_free(info, 1);

    /* Another client finds the same bytes under the same names. */
    mmapio_client *c2 = hz_client();
    mmapio_map *a2, *f2;
    hz_assert_ok(mmapio_anon_open(c2, "a", &a2));
    cr_assert_arr_eq(mmapio_as_ptr(a2), want_a, sizeof(want_a));
    hz_assert_ok(mmapio_open_rw(c2, "f.dat", &f2));
    cr_assert_arr_eq(mmapio_as_ptr(f2), want_f, sizeof(want_f));

    /* Watches resume: RECONNECTED first, then the new writes. */
    hz_pump(c, &ra.n[MMAPIO_CHANGE_RECONNECTED], 1, WAIT_MS);
    cr_assert_eq(ra.n[MMAPIO_CHANGE_RECONNECTED], 1);
    cr_assert_eq(rf.n[MMAPIO_CHANGE_RECONNECTED], 1);
    cr_assert_eq(rn.n[MMAPIO_CHANGE_RECONNECTED], 1);
    int ma = ra.n[MMAPIO_CHANGE_MODIFIED], mf = rf.n[MMAPIO_CHANGE_MODIFIED];
    int mn = rn.n[MMAPIO_CHANGE_MODIFIED];
    hz_assert_ok(mmapio_update_region(a2, 10, "x", 1));
    hz_assert_ok(mmapio_update_region(f2, 10, "y", 1));
    hz_pump(c, &ra.n[MMAPIO_CHANGE_MODIFIED], ma + 1, WAIT_MS);
    hz_pump(c, &rf.n[MMAPIO_CHANGE_MODIFIED], mf + 1, WAIT_MS);
    hz_pump(c, &rn.n[MMAPIO_CHANGE_MODIFIED], mn + 1, WAIT_MS);
    cr_assert_gt(ra.n[MMAPIO_CHANGE_MODIFIED], ma, "no event on 'a'");
    cr_assert_gt(rf.n[MMAPIO_CHANGE_MODIFIED], mf, "no event on f.dat");
    cr_assert_gt(rn.n[MMAPIO_CHANGE_MODIFIED], mn, "no event by name");
    cr_assert_eq(((const uint8_t *)mmapio_as_ptr(a))[10], 'x');

    /* The daemon flushes again: every-bytes on the file. */
    hz_assert_ok(mmapio_flush(f));
    uint8_t disk[16];
    cr_assert_eq(hz_read_file(hz_path(&hz, "f.dat"), disk, sizeof(disk)),
                 (long)sizeof(disk));

    mmapio_unwatch(wf);
    mmapio_unwatch(wa);
    mmapio_unwatch(wn);
    mmapio_unmap(f2);
    mmapio_unmap(a2);
    mmapio_disconnect(c2);
    mmapio_unmap(f);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}

Test(reconnect, a_file_replaced_meanwhile_is_not_found)
{
    mmapio_client *c = hz_client();
    mmapio_map *g;
    hz_assert_ok(mmapio_create_rw(c, "g.dat", 4096, &g));
    hz_assert_ok(mmapio_update_region(g, 0, "old file", 8));
    kill9();
    /* Another file of the same name. */
    cr_assert_eq(unlink(hz_path(&hz, "g.dat")), 0);
    cr_assert_eq(hz_write_file(hz_path(&hz, "g.dat"), "new file", 8), 0);
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ret(mmapio_refresh(g), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_resize(g, 8192), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_set_flush_policy(
                      g, (mmapio_flush_policy){ MMAPIO_FLUSH_ALWAYS, 0 }),
                  MMAPIO_E_NOT_FOUND);
    struct hz_events ev = { { 0 } };
    mmapio_watcher *w = (mmapio_watcher *)0x1;
    hz_assert_ret(mmapio_watch(g, hz_count_event, &ev, &w), MMAPIO_E_NOT_FOUND);
    cr_assert_eq(w, (mmapio_watcher *)0x1);
    cr_assert(strstr(mmapio_last_error(), "did not come back"), "%s",
              mmapio_last_error());
    hz_assert_ok(mmapio_flush(g)); /* its memory, msynced as ever */
    /* Its memory is the old file's, and usable. */
    cr_assert_arr_eq(mmapio_as_ptr(g), "old file", 8);
    hz_assert_ok(mmapio_update_region(g, 0, "OLD", 3));
    /* The name leads to the new one. */
    mmapio_map *g2;
    hz_assert_ok(mmapio_open_ro(c, "g.dat", &g2));
    cr_assert_arr_eq(mmapio_as_ptr(g2), "new file", 8);
    mmapio_unmap(g2);
    hz_assert_ok(mmapio_unmap(g));
    mmapio_disconnect(c);
}

Test(reconnect, a_deleted_mapping_is_not_resurrected)
{
    mmapio_client *c = hz_client(), *c2 = hz_client();
    mmapio_map *d;
    hz_assert_ok(mmapio_anon_create(c, "d", 4096, &d));
    hz_assert_ok(mmapio_update_region(d, 0, "doomed", 6));
    cr_assert(state_line("live", "d", NULL, NULL));
    hz_assert_ok(mmapio_anon_delete(c2, "d"));
    cr_assert(state_line("deleted", "d", NULL, NULL), "deletion not recorded");
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ret(mmapio_refresh(d), MMAPIO_E_NOT_FOUND);
    mmapio_map *again = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_open(c, "d", &again), MMAPIO_E_NOT_FOUND);
    cr_assert_arr_eq(mmapio_as_ptr(d), "doomed", 6);
    /* A second restart does not bring it back either. */
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ret(mmapio_anon_open(c, "d", &again), MMAPIO_E_NOT_FOUND);

    /* Deleted, and the daemon killed before its state file may say so:
     * the memfd itself carries the deletion. */
    mmapio_map *e;
    hz_assert_ok(mmapio_anon_create(c, "e", 4096, &e));
    cr_assert(state_line("live", "e", NULL, NULL));
    mmapio_client *c3 = hz_client();
    hz_assert_ok(mmapio_anon_delete(c3, "e"));
    mmapio_disconnect(c3);
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ret(mmapio_refresh(e), MMAPIO_E_NOT_FOUND);
    hz_assert_ret(mmapio_anon_open(c, "e", &again), MMAPIO_E_NOT_FOUND);
    mmapio_unmap(e);
    mmapio_unmap(d);
    mmapio_disconnect(c2);
    mmapio_disconnect(c);
}

/* ---- forged memfds, over the raw protocol --------------------------- */

/* One Reattach (carrying fd when >= 0; then an FdOffer goes first): the
 * reply's error (0: granted), or -RAW_ERRNO_BASE. */
static int raw_reattach_carved(int sock, const char *path, bool anonymous,
                               int mode, uint64_t dev, uint64_t ino,
                               uint64_t offset, bool carved, int fd)
{
    Mmapio__FdOffer offer = MMAPIO__FD_OFFER__INIT;
    Mmapio__Reattach ra = MMAPIO__REATTACH__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__ServerMessage *msg;
    int err, granted = -1;
    if (fd >= 0) {
        req.id = 7;
        req.op_case = MMAPIO__REQUEST__OP_FD_OFFER;
        req.fd_offer = &offer;
        if (raw_send(sock, &req, -1) < 0 ||
            raw_recv(sock, WAIT_MS, &msg, NULL) < 0)
            return -RAW_ERRNO_BASE;
        err = msg->reply->error;
        mmapio__server_message__free_unpacked(msg, NULL);
        if (err)
            return err;
        req = (Mmapio__Request)MMAPIO__REQUEST__INIT;
    }
    req.id = 8;
    ra.path = (char *)path;
    ra.anonymous = anonymous;
    ra.mode = (Mmapio__Mode)mode;
    ra.dev = dev;
    ra.ino = ino;
    ra.offset = offset;
    ra.carved = carved;
    req.op_case = MMAPIO__REQUEST__OP_REATTACH;
    req.reattach = &ra;
    if (raw_send(sock, &req, fd) < 0 ||
        raw_recv(sock, WAIT_MS, &msg, &granted) < 0)
        return -RAW_ERRNO_BASE;
    err = msg->reply->error;
    mmapio__server_message__free_unpacked(msg, NULL);
    if (granted >= 0)
        close(granted);
    return err;
}

static int raw_reattach_as(int sock, const char *path, bool anonymous,
                           int mode, uint64_t dev, uint64_t ino,
                           uint64_t offset, int fd)
{
    return raw_reattach_carved(sock, path, anonymous, mode, dev, ino, offset,
                               false, fd);
}

/* A read-write Reattach of anonymous `name` claiming dev/ino, with fd. */
static int raw_reattach(int sock, const char *name, uint64_t dev,
                        uint64_t ino, int fd)
{
    return raw_reattach_as(sock, name, true, MMAPIO__MODE__MODE_READ_WRITE,
                           dev, ino, 0, fd);
}

/* Without an fd, claiming no identity (dev/ino 0). */
static int raw_reattach_plain(int sock, const char *path, bool anonymous,
                              int mode, uint64_t offset)
{
    return raw_reattach_as(sock, path, anonymous, mode, 0, 0, offset, -1);
}

/* A memfd made to look like the daemon's: its name, its seals, bytes. */
static int forge(const char *name, size_t size)
{
    char label[64];
    snprintf(label, sizeof(label), "mmapio:%s", name);
    int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
        pwrite(fd, "forged", 6, 0) != 6 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
        return -1;
    return fd;
}

struct forgery {
    const char *sock;
    uint64_t dev, ino; /* the recorded identity */
};

/* As another uid: both ways of lying are refused. */
static const char *forge_as_other(mmapio_client *c, void *arg)
{
    struct forgery *fg = arg;
    int fd = forge("x", 4096);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    int s = rb_raw_hello(fg->sock);
    CHECK(s >= 0);
    EXPECT(raw_reattach(s, "x", (uint64_t)st.st_dev, (uint64_t)st.st_ino, fd),
           MMAPIO_E_NOT_FOUND);
    close(s);
    s = rb_raw_hello(fg->sock);
    CHECK(s >= 0);
    EXPECT(raw_reattach(s, "x", fg->dev, fg->ino, fd), MMAPIO_E_NOT_FOUND);
    close(s);
    close(fd);
    return NULL;
}

Test(reconnect, a_forged_memfd_is_refused)
{
    cr_assert_eq(rb_share(&hz), 0);
    mmapio_client *c = hz_client();
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = 4096;
    o.perm = 0666; /* anyone may open it: only identity keeps them out */
    mmapio_map *x;
    hz_assert_ok(mmapio_open(c, "x", &o, &x));
    hz_assert_ok(mmapio_update_region(x, 0, "genuine", 7));
    uint64_t dev = 0, ino = 0;
    cr_assert(state_line("live", "x", &dev, &ino));
    kill9();
    restart();

    /* The daemon's own uid (root here), a memfd of its own. */
    int fd = forge("x", 4096);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    int s = rb_raw_hello(hz.sock);
    cr_assert_geq(s, 0);
    hz_assert_ret(raw_reattach(s, "x", (uint64_t)st.st_dev,
                               (uint64_t)st.st_ino, fd), MMAPIO_E_NOT_FOUND);
    close(s);
    s = rb_raw_hello(hz.sock);
    cr_assert_geq(s, 0);
    hz_assert_ret(raw_reattach(s, "x", dev, ino, fd), MMAPIO_E_NOT_FOUND);
    close(s);
    close(fd);
    /* Another uid. */
    if (geteuid() == 0) {
        struct forgery fg = { hz.sock, dev, ino };
        char why[512];
        cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY, forge_as_other,
                               &fg, why, sizeof(why)), 0, "%s", why);
    }
    /* None of that registered anything. */
    mmapio_client *c3 = hz_client();
    mmapio_map *none = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_open(c3, "x", &none), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c3);

    /* The genuine holder brings it back, with its own bytes. */
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(x));
    mmapio_client *c2 = hz_client();
    mmapio_map *x2;
    hz_assert_ok(mmapio_anon_open(c2, "x", &x2));
    cr_assert_arr_eq(mmapio_as_ptr(x2), "genuine", 7);
    mmapio_unmap(x2);
    mmapio_disconnect(c2);
    mmapio_unmap(x);
    mmapio_disconnect(c);
}

/* ---- the "done when": a producer and a consumer ------------ */

#define RING_SLOTS 1024
#define ITEMS 400000

struct ring {
    _Atomic uint64_t head, tail; /* items written, items read */
    uint64_t slot[RING_SLOTS];
};

/* Where a side stands with the daemon. */
struct side {
    mmapio_client *c;
    bool down;        /* its dispatch said DISCONNECTED */
    bool back;        /* mmapio_reconnect succeeded after that */
};

/* Never waits: notices the death through dispatch, then tries to
 * reconnect (the daemon may not be back yet). 0, or 1 on a failure. */
static int keep_up(struct side *sd)
{
    if (!sd->down) {
        sd->down = mmapio_client_dispatch(sd->c, 0) == MMAPIO_E_DISCONNECTED;
        return 0;
    }
    if (sd->back)
        return 0;
    int r = mmapio_reconnect(sd->c);
    sd->back = r == MMAPIO_OK;
    return r == MMAPIO_OK || r == MMAPIO_E_DISCONNECTED ? 0 : 1;
}

/* Until it is back (bounded). */
static int get_back(struct side *sd)
{
    int64_t end = hz_now_ms() + 30000;
    while (!sd->back && hz_now_ms() < end) {
        if (keep_up(sd))
            return 1;
        usleep(1000);
    }
    return sd->back ? 0 : 1;
}

static uint64_t item(uint64_t i)
{
    return i * 2654435761u + 1;
}

/*
 * Writes ITEMS items: the first quarter with the daemon up, then says
 * 'k' (kill it), writes up to half, waits until it noticed the death,
 * writes up to three quarters with no daemon, says 'r' (restart it) and
 * writes the rest, reconnecting on the way.
 */
static int producer(struct hz_chan *ch)
{
    struct side sd = { 0 };
    mmapio_map *m;
    if (mmapio_connect(hz.sock, &sd.c) || mmapio_anon_open(sd.c, "ring", &m))
        return 10;
    struct ring *r = mmapio_as_mut_ptr(m);
    for (uint64_t i = 0; i < ITEMS; i++) {
        while (atomic_load(&r->head) - atomic_load(&r->tail) == RING_SLOTS) {
            if (keep_up(&sd))
                return 11;
            usleep(50);
        }
        r->slot[i % RING_SLOTS] = item(i);
        atomic_store(&r->head, i + 1);
        if (i + 1 == ITEMS / 4)
            hz_chan_send(ch, 'k');
        if (i + 1 == ITEMS / 2) {
            int64_t end = hz_now_ms() + 30000;
            while (!sd.down && hz_now_ms() < end)
                sd.down = mmapio_client_dispatch(sd.c, 100) ==
                          MMAPIO_E_DISCONNECTED;
            if (!sd.down)
                return 12;
        }
        if (i + 1 == 3 * (ITEMS / 4))
            hz_chan_send(ch, 'r');
        if ((i & 1023) == 0 && i > ITEMS / 2 && keep_up(&sd))
            return 13;
    }
    if (get_back(&sd))
        return 14;
    return mmapio_refresh(m) == MMAPIO_OK ? 0 : 15;
}

/* Reads ITEMS items in order, each as written; reconnects on the way. */
static int consumer(void)
{
    struct side sd = { 0 };
    mmapio_map *m;
    if (mmapio_connect(hz.sock, &sd.c) || mmapio_anon_open(sd.c, "ring", &m))
        return 20;
    struct ring *r = mmapio_as_mut_ptr(m);
    for (uint64_t i = 0; i < ITEMS; i++) {
        while (atomic_load(&r->head) == i) {
            if (keep_up(&sd))
                return 21;
            usleep(50);
        }
        if (r->slot[i % RING_SLOTS] != item(i))
            return 22; /* lost or overwritten */
        atomic_store(&r->tail, i + 1);
    }
    if (get_back(&sd))
        return 23;
    return mmapio_refresh(m) == MMAPIO_OK ? 0 : 24;
}

Test(reconnect, a_producer_and_consumer_lose_nothing_across_kill_9)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "ring", sizeof(struct ring), &m));
    cr_assert(state_line("live", "ring", NULL, NULL));
    struct hz_chan ch;
    cr_assert_eq(hz_chan_open(&ch), 0);
    pid_t prod = hz_fork();
    cr_assert_geq(prod, 0);
    if (prod == 0) {
        hz_chan_keep_write(&ch);
        _exit(producer(&ch));
    }
    hz_chan_keep_read(&ch);
    pid_t cons = hz_fork();
    cr_assert_geq(cons, 0);
    if (cons == 0)
        _exit(consumer());
    /* Only the two children hold the ring from here on. */
    hz_assert_ok(mmapio_unmap(m));
    mmapio_disconnect(c);

    cr_assert_eq(hz_chan_recv(&ch, 30000), 'k', "the producer never got going");
    kill9();
    /* The pair goes on in memory meanwhile. */
    cr_assert_eq(hz_chan_recv(&ch, 30000), 'r', "the producer stopped");
    restart();

    int st = hz_wait_child(prod, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer: status 0x%x",
              (unsigned)st);
    st = hz_wait_child(cons, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "consumer: status 0x%x",
              (unsigned)st);
    hz_chan_close(&ch);

    /* The ring lives on in the new daemon, every item through. */
    c = hz_client();
    hz_assert_ok(mmapio_anon_open(c, "ring", &m));
    const struct ring *r = mmapio_as_ptr(m);
    cr_assert_eq(atomic_load(&r->head), ITEMS);
    cr_assert_eq(atomic_load(&r->tail), ITEMS);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- the state file is the daemon's alone --------------------------- */

static const char *read_through_link(mmapio_client *c, void *arg)
{
    mmapio_map *m = (mmapio_map *)0x1;
    EXPECT(mmapio_open_ro(c, "link", &m), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_open_ro(c, ".mmapiod/anon.state", &m), MMAPIO_E_PERMISSION);
    EXPECT(mmapio_delete(c, ".mmapiod/anon.state"), MMAPIO_E_PERMISSION);
    CHECK(m == (mmapio_map *)0x1);
    return NULL;
}

Test(reconnect, the_state_file_is_out_of_clients_reach)
{
    mmapio_client *c = hz_client();
    mmapio_map *m = (mmapio_map *)0x1;
    hz_assert_ok(mmapio_anon_create(c, "s", 4096, &m));
    cr_assert(state_line("live", "s", NULL, NULL));
    mmapio_map *n = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_open_ro(c, ".mmapiod/anon.state", &n),
                  MMAPIO_E_PERMISSION);
    hz_assert_ret(mmapio_create_rw(c, ".mmapiod/anon.state", 4096, &n),
                  MMAPIO_E_PERMISSION);
    hz_assert_ret(mmapio_delete(c, ".mmapiod/anon.state"), MMAPIO_E_PERMISSION);
    cr_assert_eq(n, (mmapio_map *)0x1);
    struct stat st;
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/.mmapiod", hz.root);
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
    if (geteuid() == 0) {
        cr_assert_eq(rb_share(&hz), 0);
        cr_assert_eq(symlink(".mmapiod/anon.state", hz_path(&hz, "link")), 0);
        char why[512];
        cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY,
                               read_through_link, NULL, why, sizeof(why)),
                     0, "%s", why);
    }
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- access is checked afresh --------------------------------------- */

/* As RB_NOBODY: holds p.dat read-only, says 'o'; after 'g' reconnects and
 * finds its handle detached (the file is 0600 now), its memory intact. */
static int hold_then_lose(struct hz_chan *to_test, struct hz_chan *from_test)
{
    mmapio_client *c;
    mmapio_map *m;
    if (rb_become(RB_NOBODY, RB_NOBODY) < 0)
        return 30;
    if (mmapio_connect(hz.sock, &c) || mmapio_open_ro(c, "p.dat", &m))
        return 31;
    hz_chan_send(to_test, 'o');
    if (hz_chan_recv(from_test, 30000) != 'g')
        return 32;
    int64_t end = hz_now_ms() + 30000;
    int r;
    while ((r = mmapio_reconnect(c)) == MMAPIO_E_DISCONNECTED &&
           hz_now_ms() < end)
        usleep(10000);
    if (r != MMAPIO_OK)
        return 33;
    if (mmapio_refresh(m) != MMAPIO_E_NOT_FOUND)
        return 34;
    if (memcmp(mmapio_as_ptr(m), "public", 6))
        return 35;
    mmapio_map *again;
    if (mmapio_open_ro(c, "p.dat", &again) != MMAPIO_E_PERMISSION)
        return 36;
    return 0;
}

Test(reconnect, access_is_checked_afresh)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another uid");
    cr_assert_eq(rb_share(&hz), 0);
    cr_assert_eq(hz_write_file(hz_path(&hz, "p.dat"), "public", 6), 0);
    cr_assert_eq(chmod(hz_path(&hz, "p.dat"), 0644), 0);
    struct hz_chan up, down;
    cr_assert_eq(hz_chan_open(&up), 0);
    cr_assert_eq(hz_chan_open(&down), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(&up);
        hz_chan_keep_read(&down);
        _exit(hold_then_lose(&up, &down));
    }
    hz_chan_keep_read(&up);
    hz_chan_keep_write(&down);
    cr_assert_eq(hz_chan_recv(&up, 30000), 'o', "the holder never opened");
    kill9();
    cr_assert_eq(chmod(hz_path(&hz, "p.dat"), 0600), 0);
    restart();
    hz_chan_send(&down, 'g');
    int st = hz_wait_child(pid, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "holder: status 0x%x",
              (unsigned)st);
    hz_chan_close(&up);
    hz_chan_close(&down);
}

/* ---- the daemon checks every field of a Reattach ---------------------- */

Test(reconnect, reattach_fields_are_checked)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "r.dat", 4096, &m));
    int s = rb_raw_hello(hz.sock);
    cr_assert_geq(s, 0);
    hz_assert_ret(raw_reattach_plain(s, "r.dat", false, 7, 0),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(raw_reattach_plain(s, "r.dat", false, 0, 4096),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(raw_reattach_plain(s, "../r.dat", false, 0, 0),
                  MMAPIO_E_PERMISSION);
    hz_assert_ret(raw_reattach_plain(s, ".mmapiod/anon.state", false, 0, 0),
                  MMAPIO_E_PERMISSION);
    hz_assert_ret(raw_reattach_plain(s, "a/b", true, 0, 0),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(raw_reattach_plain(s, "", true, 0, 0),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(raw_reattach_plain(s, "bad\x01name", true, 0, 0),
                  MMAPIO_E_INVALID_ARGUMENT);
    /* dev/ino 0: no object has them. */
    hz_assert_ret(raw_reattach_plain(s, "r.dat", false, 0, 0),
                  MMAPIO_E_NOT_FOUND);
    hz_assert_ret(raw_reattach_plain(s, "nothing", true, 0, 0),
                  MMAPIO_E_NOT_FOUND);
    /* A file's Reattach may not carry an fd; an anonymous one's must be a
     * memfd of the daemon's naming, or it is not looked at. */
    int fd = open(hz_path(&hz, "r.dat"), O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    int s2 = rb_raw_hello(hz.sock);
    cr_assert_geq(s2, 0);
    hz_assert_ret(raw_reattach_as(s2, "r.dat", false,
                                  MMAPIO__MODE__MODE_READ_WRITE, st.st_dev,
                                  st.st_ino, 0, fd),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(raw_reattach(s2, "r", st.st_dev, st.st_ino, fd),
                  MMAPIO_E_NOT_FOUND);
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    hz_assert_ret(raw_reattach(s2, "r", 0, 0, p[0]), MMAPIO_E_NOT_FOUND);
    close(p[0]);
    close(p[1]);
    close(fd);
    close(s2);
    close(s);
    /* The daemon is fine, and made nothing. */
    hz_assert_ok(mmapio_ping(c));
    mmapio_map *none = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_open(c, "r", &none), MMAPIO_E_NOT_FOUND);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- the journal (issue 15 follow-up) ------------------------------- */

/* Each change is in the state file before its reply: nothing made just
 * before a kill is lost. */
Test(reconnect, a_mapping_made_or_resized_just_before_kill_9_comes_back)
{
    mmapio_client *c = hz_client();
    mmapio_map *warm, *late, *grown;
    hz_assert_ok(mmapio_anon_create(c, "warm", 4096, &warm));
    hz_assert_ok(mmapio_anon_create(c, "grown", 4096, &grown));
    hz_assert_ok(mmapio_anon_create(c, "late", 4096, &late));
    hz_assert_ok(mmapio_update_region(late, 0, "late", 4));
    hz_assert_ok(mmapio_resize(grown, 3 * 4096));
    hz_assert_ok(mmapio_update_region(grown, 2 * 4096, "grown", 5));
    kill9(); /* at once: no wait for any file */
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(late));
    hz_assert_ok(mmapio_refresh(grown));
    cr_assert_eq(mmapio_len(grown), 3 * 4096, "size %zu", (size_t)mmapio_len(grown));
    mmapio_client *c2 = hz_client();
    mmapio_map *l2, *g2;
    hz_assert_ok(mmapio_anon_open(c2, "late", &l2));
    cr_assert_arr_eq(mmapio_as_ptr(l2), "late", 4);
    hz_assert_ok(mmapio_anon_open(c2, "grown", &g2));
    cr_assert_eq(mmapio_len(g2), 3 * 4096);
    cr_assert_arr_eq((const char *)mmapio_as_ptr(g2) + 2 * 4096, "grown", 5);
    mmapio_map_info *info;
    hz_assert_ok(mmapio_admin_stat(c2, "grown", true, &info));
    cr_assert_eq(info->size, 3 * 4096);
    mmapio_map_info_free(info, 1);
    mmapio_unmap(l2);
    mmapio_unmap(g2);
    mmapio_disconnect(c2);
    mmapio_unmap(warm);
    mmapio_unmap(late);
    mmapio_unmap(grown);
    mmapio_disconnect(c);
}

/* A torn last line (a kill mid-write) and garbage are skipped; what came
 * before comes back, and the journal serves on after them. */
Test(reconnect, a_torn_or_garbage_journal_tail_is_survived)
{
    mmapio_client *c = hz_client();
    mmapio_map *g1, *g3;
    hz_assert_ok(mmapio_anon_create(c, "g1", 4096, &g1));
    hz_assert_ok(mmapio_update_region(g1, 0, "g1", 2));
    uint64_t dev = 0, ino = 0;
    cr_assert(state_line("live", "g1", &dev, &ino));
    kill9();
    char forged[200];
    /* A record of g1 with a wrong check, claiming another size. */
    int n = snprintf(forged, sizeof(forged),
                     "live 1 %" PRIu64 " %" PRIu64 " 0 0 0 600 0 0 1 00000000 g1\n",
                     dev, ino);
    state_append(forged, (size_t)n);
    static const char junk[] = "\x00\xff\x01 not a record\n\n"
                               "live 1 2 3\n"
                               "deleted 1 2 3 4 5 6 7 8 9 10 zzzzzzzz g1\n"
                               "live 7 8 9 0 0 0 600 0 0 4096 1234";
    state_append(junk, sizeof(junk) - 1); /* torn: no newline */
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(g1));
    cr_assert_eq(mmapio_len(g1), 4096);
    mmapio_client *c2 = hz_client();
    mmapio_map *o;
    hz_assert_ok(mmapio_anon_open(c2, "g1", &o));
    cr_assert_arr_eq(mmapio_as_ptr(o), "g1", 2);
    mmapio_unmap(o);
    mmapio_disconnect(c2);

    /* Records after the restart are read too. */
    hz_assert_ok(mmapio_anon_create(c, "g3", 4096, &g3));
    hz_assert_ok(mmapio_update_region(g3, 0, "g3", 2));
    kill9();
    state_append("\xde\xad", 2);
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(g1));
    hz_assert_ok(mmapio_refresh(g3));
    c2 = hz_client();
    hz_assert_ok(mmapio_anon_open(c2, "g3", &o));
    cr_assert_arr_eq(mmapio_as_ptr(o), "g3", 2);
    mmapio_unmap(o);
    mmapio_disconnect(c2);
    mmapio_unmap(g1);
    mmapio_unmap(g3);
    mmapio_disconnect(c);
}

/* Create/delete churn: the journal is rewritten (its size stays bounded),
 * and the records survive the rewrites. */
Test(reconnect, the_journal_is_compacted_under_churn_and_keeps_its_records)
{
    enum { CYCLES = 20000 };
    /* A record is ~60 bytes, ~85 for a carved mapping (its offset and
     * stride are long numbers). Compaction starts past twice the live
     * records (2, and 256 tombstones) and the slack, ~770 records; while
     * the thread writes a generation at most that generation and the
     * slack again are appended before the loop waits for it, however
     * loaded the machine: ~1,300 records, ~110 KB. Unbounded, 40,000
     * records would take ~3.4 MB (1.4 MB was seen under load before the
     * loop waited). */
    const long bound = 250000;
    mmapio_client *c = hz_client();
    mmapio_map *keep, *m;
    hz_assert_ok(mmapio_anon_create(c, "keep", 4096, &keep));
    hz_assert_ok(mmapio_update_region(keep, 0, "keep", 4));
    long most = 0;
    for (int i = 0; i < CYCLES; i++) {
        hz_assert_ok(mmapio_anon_create(c, "churn", 4096, &m));
        hz_assert_ok(mmapio_unmap(m));
        hz_assert_ok(mmapio_anon_delete(c, "churn"));
        if (i == CYCLES / 2)
            hz_assert_ok(mmapio_resize(keep, 2 * 4096));
        if (i % 100 == 0) {
            long size = state_size();
            most = size > most ? size : most;
        }
    }
    hz_assert_ok(mmapio_anon_create(c, "last", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "last", 4));
    long size = state_size();
    most = size > most ? size : most;
    cr_assert_lt(most, bound, "the journal grew to %ld bytes", most);
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(keep));
    hz_assert_ok(mmapio_refresh(m));
    cr_assert_eq(mmapio_len(keep), 2 * 4096);
    mmapio_client *c2 = hz_client();
    mmapio_map *k2, *l2, *again = NULL;
    hz_assert_ok(mmapio_anon_open(c2, "keep", &k2));
    cr_assert_arr_eq(mmapio_as_ptr(k2), "keep", 4);
    cr_assert_eq(mmapio_len(k2), 2 * 4096);
    hz_assert_ok(mmapio_anon_open(c2, "last", &l2));
    cr_assert_arr_eq(mmapio_as_ptr(l2), "last", 4);
    hz_assert_ret(mmapio_anon_open(c2, "churn", &again), MMAPIO_E_NOT_FOUND);
    cr_assert_lt(state_size(), bound);
    mmapio_unmap(k2);
    mmapio_unmap(l2);
    mmapio_disconnect(c2);
    mmapio_unmap(keep);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/* ---- carved mappings (arenas, model/arena.h) ------------------------ */

/* Lines of the daemon's log (all its runs) that contain needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(rb_log_path(&hz), "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* This process's open fds, and of them the arenas' memfds. */
static int fds_here(int *arenas)
{
    int n = 0;
    *arenas = 0;
    for (int fd = 0; fd < 4096; fd++) {
        char proc[64], at[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(proc, at, sizeof(at) - 1);
        if (k < 0)
            continue;
        at[k] = '\0';
        n++;
        *arenas += !strncmp(at, "/memfd:mmapio-arena", 19);
    }
    return n;
}

/* This process's fd of the arena with that identity (-1: none). */
static int arena_fd_here(uint64_t dev, uint64_t ino)
{
    for (int fd = 0; fd < 4096; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_dev == dev &&
            (uint64_t)st.st_ino == ino)
            return fd;
    }
    return -1;
}

static mmapio_map *carve(mmapio_client *c, const char *name, uint32_t perm,
                         const char *bytes)
{
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = 4096;
    o.perm = perm;
    mmapio_map *m;
    hz_assert_ok(mmapio_open(c, name, &o, &m));
    hz_assert_ok(mmapio_update_region(m, 0, bytes, strlen(bytes)));
    return m;
}

static void expect_carved(mmapio_client *c, uint64_t carved, uint64_t arenas)
{
    mmapio_status *st;
    hz_assert_ok(mmapio_admin_status(c, &st));
    cr_assert_eq(st->carved, carved, "%" PRIu64 " carved", st->carved);
    cr_assert_eq(st->arenas, arenas, "%" PRIu64 " arenas", st->arenas);
    mmapio_status_free(st);
}

Test(reconnect, carved_mappings_of_two_classes_come_back_as_the_same_memory)
{
    mmapio_client *c = hz_client();
    const char *names[4] = { "p1", "p2", "q1", "q2" };
    mmapio_map *m[4];
    const uint8_t *base[4];
    for (int i = 0; i < 4; i++) {
        m[i] = carve(c, names[i], i < 2 ? 0600 : 0640, names[i]);
        base[i] = mmapio_as_ptr(m[i]);
    }
    expect_carved(c, 4, 2);
    int arenas, fds = fds_here(&arenas);
    cr_assert_eq(arenas, 2, "%d arena fds", arenas);
    for (int i = 0; i < 4; i++)
        cr_assert(state_line("live", names[i], NULL, NULL));
    int offered = log_count("offered an arena fd");
    kill9();
    hz_assert_ok(mmapio_update_region(m[3], 2, "-outage", 7));
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    /* One fd offered per arena, each bringing back its class. */
    cr_assert_eq(log_count("offered an arena fd") - offered, 2);
    cr_assert_eq(log_count(": 2 mappings taken back"), 2);
    for (int i = 0; i < 4; i++) {
        hz_assert_ok(mmapio_refresh(m[i]));
        cr_assert_eq(mmapio_as_ptr(m[i]), base[i], "%s remapped", names[i]);
    }
    int arenas_after, fds_after = fds_here(&arenas_after);
    cr_assert_eq(arenas_after, 2, "%d arena fds", arenas_after);
    cr_assert_eq(fds_after, fds, "%d fds, %d before", fds_after, fds);
    expect_carved(c, 4, 2);

    mmapio_client *c2 = hz_client();
    for (int i = 0; i < 4; i++) {
        mmapio_map *o;
        hz_assert_ok(mmapio_anon_open(c2, names[i], &o));
        cr_assert_arr_eq(mmapio_as_ptr(o), names[i], 2);
        if (i == 3)
            cr_assert_arr_eq((const char *)mmapio_as_ptr(o) + 2, "-outage", 7);
        mmapio_map_info *info;
        hz_assert_ok(mmapio_admin_stat(c2, names[i], true, &info));
        cr_assert_eq(info->perm, i < 2 ? 0600u : 0640u);
        cr_assert_eq(info->holders, 2);
        mmapio_map_info_free(info, 1);
        /* The same memory: what the new holder writes, the old one sees. */
        hz_assert_ok(mmapio_update_region(o, 100, "new", 3));
        cr_assert_arr_eq(base[i] + 100, "new", 3);
        mmapio_unmap(o);
    }
    mmapio_disconnect(c2);
    for (int i = 0; i < 4; i++)
        hz_assert_ok(mmapio_unmap(m[i]));
    fds_here(&arenas);
    cr_assert_eq(arenas, 0, "arena fds kept after the last unmap");
    mmapio_disconnect(c);
}

Test(reconnect, a_deleted_carved_mapping_stays_deleted_its_neighbours_come_back)
{
    mmapio_client *c = hz_client(), *c2 = hz_client();
    mmapio_map *n1 = carve(c, "n1", 0600, "one");
    mmapio_map *n2 = carve(c, "n2", 0600, "two");
    mmapio_map *n3 = carve(c, "n3", 0600, "three");
    uint64_t dev, ino, off;
    cr_assert(state_line_at("live", "n2", &dev, &ino, &off));
    cr_assert_neq(off, 0, "n2 is not carved at an offset");
    /* Killed right after the deletion is answered: the journal has it. */
    hz_assert_ok(mmapio_anon_delete(c2, "n2"));
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(n1));
    hz_assert_ok(mmapio_refresh(n3));
    hz_assert_ret(mmapio_refresh(n2), MMAPIO_E_NOT_FOUND);
    cr_assert_arr_eq(mmapio_as_ptr(n2), "two", 3); /* its memory stays */
    mmapio_client *c3 = hz_client();
    mmapio_map *o, *again = NULL;
    hz_assert_ret(mmapio_anon_open(c3, "n2", &again), MMAPIO_E_NOT_FOUND);
    hz_assert_ok(mmapio_anon_open(c3, "n3", &o));
    cr_assert_arr_eq(mmapio_as_ptr(o), "three", 5);
    mmapio_unmap(o);
    /* Nor by its very identity and offset, with the arena's fd. */
    int s = rb_raw_hello(hz.sock);
    cr_assert_geq(s, 0);
    hz_assert_ret(raw_reattach_carved(s, "n2", true, MMAPIO__MODE__MODE_READ_WRITE,
                                      dev, ino, off, true,
                                      arena_fd_here(dev, ino)),
                  MMAPIO_E_NOT_FOUND);
    close(s);
    mmapio_disconnect(c3);
    /* A second restart does not bring it back either. */
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(n1));
    c3 = hz_client();
    hz_assert_ret(mmapio_anon_open(c3, "n2", &again), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c3);
    mmapio_unmap(n1);
    mmapio_unmap(n2);
    mmapio_unmap(n3);
    mmapio_disconnect(c2);
    mmapio_disconnect(c);
}

/* The journal cannot take the tombstone (here: a file size limit, as a
 * full disk would): the daemon empties it rather than keep a "live" record
 * the deletion did not cancel, so nothing comes back, least of all the
 * deleted mapping. */
Test(reconnect, a_deletion_the_journal_cannot_take_resurrects_nothing)
{
    mmapio_client *c = hz_client(), *c2 = hz_client();
    mmapio_map *f1 = carve(c, "f1", 0600, "one");
    mmapio_map *f2 = carve(c, "f2", 0600, "two");
    cr_assert(state_line_at("live", "f2", NULL, NULL, NULL));
    long size = state_size();
    cr_assert_gt(size, 0);
    struct rlimit lim = { (rlim_t)size, (rlim_t)size };
    cr_assert_eq(prlimit(hz.pid, RLIMIT_FSIZE, &lim, NULL), 0, "prlimit: %s",
                 strerror(errno));
    hz_assert_ok(mmapio_anon_delete(c2, "f2"));
    cr_assert_eq(state_size(), 0, "the journal kept its records");
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ret(mmapio_refresh(f2), MMAPIO_E_NOT_FOUND);
    cr_assert_arr_eq(mmapio_as_ptr(f2), "two", 3); /* its memory stays */
    mmapio_client *c3 = hz_client();
    mmapio_map *again = NULL;
    hz_assert_ret(mmapio_anon_open(c3, "f2", &again), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c3);
    mmapio_unmap(f1);
    mmapio_unmap(f2);
    mmapio_disconnect(c2);
    mmapio_disconnect(c);
}

/* A memfd named like an arena, sealed like one, of the caller's uid. */
static int forge_arena(size_t size)
{
    int fd = memfd_create("mmapio-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
        pwrite(fd, "forged", 6, 0) != 6 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return -1;
    return fd;
}

struct arena_forgery {
    const char *sock;
    uint64_t dev, ino, offset; /* ca's recorded identity */
};

/* ca, claimed with a forged arena: its own identity, or ca's. */
static int claim_forged(const struct arena_forgery *fg, int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    int s = rb_raw_hello(fg->sock);
    if (s < 0)
        return -1;
    int a = raw_reattach_carved(s, "ca", true, MMAPIO__MODE__MODE_READ_WRITE,
                                (uint64_t)st.st_dev, (uint64_t)st.st_ino,
                                fg->offset, true, fd);
    close(s);
    s = rb_raw_hello(fg->sock);
    if (s < 0)
        return -1;
    int b = raw_reattach_carved(s, "ca", true, MMAPIO__MODE__MODE_READ_WRITE,
                                fg->dev, fg->ino, fg->offset, true, fd);
    close(s);
    return a == MMAPIO_E_NOT_FOUND && b == MMAPIO_E_NOT_FOUND ? 0 : -1;
}

static const char *forge_arena_as_other(mmapio_client *c, void *arg)
{
    (void)c;
    int fd = forge_arena(1 << 30);
    CHECK(fd >= 0);
    EXPECT(claim_forged(arg, fd), 0);
    close(fd);
    return NULL;
}

Test(reconnect, a_forged_or_smuggled_arena_memfd_is_refused)
{
    cr_assert_eq(rb_share(&hz), 0);
    mmapio_client *c = hz_client();
    mmapio_map *ca = carve(c, "ca", 0666, "genuine a");
    mmapio_map *cb = carve(c, "cb", 0644, "genuine b");
    struct arena_forgery fg = { hz.sock, 0, 0, 0 };
    uint64_t bdev, bino, boff;
    cr_assert(state_line_at("live", "ca", &fg.dev, &fg.ino, &fg.offset));
    cr_assert(state_line_at("live", "cb", &bdev, &bino, &boff));
    cr_assert(fg.dev != bdev || fg.ino != bino, "one arena for two classes");
    kill9();
    restart();

    /* The daemon's own uid (root here), a memfd of its own. */
    int fd = forge_arena(1 << 30);
    cr_assert_geq(fd, 0);
    cr_assert_eq(claim_forged(&fg, fd), 0, "a forged arena was taken");
    close(fd);
    /* Another uid. */
    if (geteuid() == 0) {
        char why[512];
        cr_assert_eq(rb_run_as(hz.sock, RB_NOBODY, RB_NOBODY,
                               forge_arena_as_other, &fg, why, sizeof(why)),
                     0, "%s", why);
    }
    /* Another class's genuine arena (the holder of cb has it), for ca:
     * under its own identity or under ca's. */
    int bfd = arena_fd_here(bdev, bino);
    cr_assert_geq(bfd, 0);
    int s = rb_raw_hello(hz.sock);
    cr_assert_geq(s, 0);
    hz_assert_ret(raw_reattach_carved(s, "ca", true, MMAPIO__MODE__MODE_READ_WRITE,
                                      fg.dev, fg.ino, fg.offset, true, bfd),
                  MMAPIO_E_NOT_FOUND);
    close(s);
    s = rb_raw_hello(hz.sock);
    cr_assert_geq(s, 0);
    hz_assert_ret(raw_reattach_carved(s, "ca", true, MMAPIO__MODE__MODE_READ_WRITE,
                                      bdev, bino, fg.offset, true, bfd),
                  MMAPIO_E_NOT_FOUND);
    close(s);
    mmapio_client *c3 = hz_client();
    mmapio_map *none = NULL;
    hz_assert_ret(mmapio_anon_open(c3, "ca", &none), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c3);

    /* The genuine holder brings both back, with their own bytes. */
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(ca));
    hz_assert_ok(mmapio_refresh(cb));
    mmapio_client *c2 = hz_client();
    mmapio_map *a2, *b2;
    hz_assert_ok(mmapio_anon_open(c2, "ca", &a2));
    cr_assert_arr_eq(mmapio_as_ptr(a2), "genuine a", 9);
    hz_assert_ok(mmapio_anon_open(c2, "cb", &b2));
    cr_assert_arr_eq(mmapio_as_ptr(b2), "genuine b", 9);
    mmapio_unmap(a2);
    mmapio_unmap(b2);
    mmapio_disconnect(c2);
    mmapio_unmap(ca);
    mmapio_unmap(cb);
    mmapio_disconnect(c);
}

/* A client holding 1,000 carved mappings offers one fd per arena. */
Test(reconnect, a_thousand_carved_mappings_come_back_for_one_fd)
{
    enum { N = 1000 };
    static mmapio_map *m[N];
    mmapio_client *c = hz_client();
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        m[i] = carve(c, name, 0600, name);
    }
    expect_carved(c, N, 1);
    int arenas, fds = fds_here(&arenas);
    cr_assert_eq(arenas, 1);
    cr_assert(state_line("live", "k999", NULL, NULL));
    int offered = log_count("offered an arena fd");
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    cr_assert_eq(log_count("offered an arena fd") - offered, 1,
                 "not one fd offered for one arena");
    cr_assert_eq(log_count(": 1000 mappings taken back"), 1);
    int arenas_after, fds_after = fds_here(&arenas_after);
    cr_assert_eq(arenas_after, 1);
    cr_assert_eq(fds_after, fds);
    expect_carved(c, N, 1);
    for (int i = 0; i < N; i += 97) {
        snprintf(name, sizeof(name), "k%d", i);
        hz_assert_ok(mmapio_refresh(m[i]));
        cr_assert_arr_eq(mmapio_as_ptr(m[i]), name, strlen(name));
    }
    for (int i = 0; i < N; i++)
        hz_assert_ok(mmapio_unmap(m[i]));
    mmapio_disconnect(c);
}

/* Without arenas (--arena-max 0), each mapping's own memfd comes back, and
 * a deleted one stays deleted. */
Test(reconnect, whole_memfds_come_back_without_arenas)
{
    static const char *const no_arenas[] = { "--arena-max", "0", NULL };
    kill9();
    cr_assert_eq(rb_start(&hz, no_arenas), 0);
    mmapio_client *c = hz_client(), *c2 = hz_client();
    mmapio_map *w = carve(c, "w", 0640, "whole");
    mmapio_map *v = carve(c, "v", 0600, "doomed");
    expect_carved(c, 0, 0);
    hz_assert_ok(mmapio_anon_delete(c2, "v"));
    kill9();
    cr_assert_eq(rb_start(&hz, no_arenas), 0);
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(w));
    hz_assert_ret(mmapio_refresh(v), MMAPIO_E_NOT_FOUND);
    mmapio_client *c3 = hz_client();
    mmapio_map *o, *again = NULL;
    hz_assert_ok(mmapio_anon_open(c3, "w", &o));
    cr_assert_arr_eq(mmapio_as_ptr(o), "whole", 5);
    hz_assert_ret(mmapio_anon_open(c3, "v", &again), MMAPIO_E_NOT_FOUND);
    mmapio_unmap(o);
    mmapio_disconnect(c3);
    mmapio_unmap(w);
    mmapio_unmap(v);
    mmapio_disconnect(c2);
    mmapio_disconnect(c);
}

/* Read-write and read-only handles of one arena: two fds kept (one per
 * kind), both carried over to the new daemon's arena on their numbers.
 * (The read-only handle, opened last, re-attaches first: the arena comes
 * back from a read-only fd.) */
Test(reconnect, read_write_and_read_only_handles_of_an_arena_come_back)
{
    mmapio_client *c = hz_client();
    mmapio_map *rw = carve(c, "r1", 0644, "shared");
    mmapio_map *rw2 = carve(c, "r2", 0644, "second");
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.mode = MMAPIO_MODE_READ_ONLY;
    mmapio_map *ro;
    hz_assert_ok(mmapio_open(c, "r1", &o, &ro));
    int arenas, fds = fds_here(&arenas);
    cr_assert_eq(arenas, 2, "%d arena fds", arenas);
    const uint8_t *ro_base = mmapio_as_ptr(ro);
    cr_assert(state_line("live", "r2", NULL, NULL));
    kill9();
    restart();
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(rw));
    hz_assert_ok(mmapio_refresh(rw2));
    hz_assert_ok(mmapio_refresh(ro));
    cr_assert_eq(mmapio_as_ptr(ro), ro_base);
    int arenas_after, fds_after = fds_here(&arenas_after);
    cr_assert_eq(arenas_after, 2, "%d arena fds", arenas_after);
    cr_assert_eq(fds_after, fds);
    hz_assert_ok(mmapio_update_region(rw, 0, "SHARED", 6));
    cr_assert_arr_eq(ro_base, "SHARED", 6);
    /* The counts agree with the daemon's: the last handle of a kind
     * closes its fd, and a new grant of that kind brings one again. */
    hz_assert_ok(mmapio_unmap(ro));
    fds_here(&arenas);
    cr_assert_eq(arenas, 1);
    hz_assert_ok(mmapio_open(c, "r2", &o, &ro));
    cr_assert_arr_eq(mmapio_as_ptr(ro), "second", 6);
    fds_here(&arenas);
    cr_assert_eq(arenas, 2);
    mmapio_unmap(ro);
    mmapio_unmap(rw);
    mmapio_unmap(rw2);
    mmapio_disconnect(c);
}
