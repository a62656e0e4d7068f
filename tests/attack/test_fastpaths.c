/*
 * test_fastpaths: attacks on the newest shared code, each by uid 65534
 * against a real daemon, the victim (root) beside its own baseline.
 *
 *   clients entry  an attacker holding 32 files of 4000-byte paths: its
 *                  one AdminClients entry must still fit the 64 KiB frame
 *                  every client reads, so root's `mmapioctl clients` and
 *                  its connection keep working (they broke).
 *   paging         AdminList and AdminClients paged by hand with after_id
 *                  from 0, from a victim's id, past the end: ids rise,
 *                  pages fit a frame, nothing of another uid shows.
 *   log flood      400 requests past each of a uid's limits (mappings,
 *                  handles, write rings) and 400 connections closed for an
 *                  oversized datagram: one log line a second of each, not
 *                  one per refusal.
 *   copies         a burst of long copies by one uid: the victim's copy
 *                  is still taken up, never BUSY (one uid runs at most
 *                  half the copy workers).
 *   stuck closes   the attacker hands over, thousands of times, a FUSE
 *                  file whose server never answers its flush: the loop
 *                  keeps answering, and with the attacker's closer stuck
 *                  (its FdOffer BUSY) the victim's from_fd goes through
 *                  (closers are per uid).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "robust/robust.h"
#include "wire.h"
#include "wring.h"

#define ADMINVIEW_PAGE_MAX_TEST 1024 /* more than a page holds */

#define ATTACKER RB_NOBODY

static void init_bare(void)
{
    int r = rb_prepare_shared(&hz);
    if (r == -EPERM)
        cr_skip_test("needs root, to run an attacker as another uid");
    cr_assert_eq(r, 0, "cannot set up: %s", strerror(-r));
}

static void init(void)
{
    init_bare();
    int r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(fastpaths, .init = init, .fini = hz_teardown, .timeout = 120);

/* ---- an attacker that stays connected --------------------------------- */

/* A child as ATTACKER running fn, which writes 'k' to `ready` once its
 * state is set up and then waits to be killed; anything else it writes
 * is why it failed. */
struct holdout {
    pid_t pid;
    int ready;
};

typedef const char *(*holdout_fn)(mmapio_client *c);

static void holdout_start(struct holdout *h, holdout_fn fn)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    h->pid = hz_fork();
    cr_assert_geq(h->pid, 0);
    if (h->pid == 0) {
        close(p[0]);
        mmapio_client *c = NULL;
        const char *msg = NULL;
        if (rb_become(ATTACKER, ATTACKER) < 0)
            msg = "cannot become the attacker";
        else if (mmapio_connect(hz.sock, &c) != MMAPIO_OK)
            msg = "cannot connect";
        else
            msg = fn(c);
        if (msg)
            (void)!write(p[1], msg, strlen(msg));
        else
            (void)!write(p[1], "k", 1);
        for (;;)
            pause();
    }
    close(p[1]);
    h->ready = p[0];
    char buf[600] = "";
    long n = read(h->ready, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    if (strcmp(buf, "k"))
        kill(h->pid, SIGKILL);
    cr_assert_str_eq(buf, "k", "the attacker did not set up: %s",
                     buf[0] ? buf : "no report");
}

static void holdout_end(struct holdout *h)
{
    kill(h->pid, SIGKILL);
    hz_wait_child(h->pid, 10000);
    close(h->ready);
}

/* ---- AdminClients: one client's entry within a frame ------------------ */

#define LONG_DIRS 16  /* levels of LONG_COMP-byte names: a 4000-byte path */
#define LONG_COMP 250
#define LONG_FILES 32 /* ADMINVIEW_HELD_MAX: every one listed */

/* In the attacker: LONG_FILES files under "own/" whose paths are about
 * 4000 bytes each, all held read-only. */
static const char *hold_long_paths(mmapio_client *c)
{
    static char rel[4096];
    size_t n = (size_t)snprintf(rel, sizeof(rel), "own");
    if (chdir(hz_path(&hz, "own")) < 0)
        return rb_fail("chdir: %s", strerror(errno));
    for (int i = 0; i < LONG_DIRS; i++) {
        char comp[LONG_COMP + 1];
        memset(comp, 'a' + i, LONG_COMP);
        comp[LONG_COMP] = '\0';
        if (mkdir(comp, 0755) < 0 || chdir(comp) < 0)
            return rb_fail("mkdir: %s", strerror(errno));
        n += (size_t)snprintf(rel + n, sizeof(rel) - n, "/%s", comp);
    }
    for (int i = 0; i < LONG_FILES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%02d", i);
        int fd = open(name, O_CREAT | O_RDWR, 0644);
        if (fd < 0 || ftruncate(fd, 4096) < 0)
            return rb_fail("create %s: %s", name, strerror(errno));
        close(fd);
        snprintf(rel + n, sizeof(rel) - n, "/%s", name);
        mmapio_map *m;
        int r = mmapio_open_ro(c, rel, &m);
        if (r != MMAPIO_OK)
            return rb_fail("open %zu-byte path: %s", strlen(rel),
                           mmapio_strerror(r));
    }
    return NULL;
}

Test(fastpaths, clients_entry_fits_a_frame)
{
    char own[600];
    snprintf(own, sizeof(own), "%s", hz_path(&hz, "own"));
    cr_assert_eq(mkdir(own, 0755), 0);
    cr_assert_eq(chown(own, ATTACKER, ATTACKER), 0);

    mmapio_client *root = hz_client();
    mmapio_client_info *cl;
    size_t n;
    cr_assert_eq(mmapio_admin_clients(root, &cl, &n), MMAPIO_OK,
                 "baseline: %s", mmapio_last_error());
    mmapio_client_info_free(cl, n);

    struct holdout h;
    holdout_start(&h, hold_long_paths);
    int r = mmapio_admin_clients(root, &cl, &n);
    cr_expect_eq(r, MMAPIO_OK, "root's client list with the attacker "
                 "connected: %s (%s)", mmapio_strerror(r),
                 mmapio_last_error());
    bool seen = false;
    for (size_t i = 0; r == MMAPIO_OK && i < n; i++) {
        if (cl[i].uid != ATTACKER)
            continue;
        seen = true;
        cr_expect_eq(cl[i].held_total, LONG_FILES);
        cr_expect_gt(cl[i].n_held, 0, "some holdings are listed");
    }
    if (r == MMAPIO_OK)
        mmapio_client_info_free(cl, n);
    cr_expect(r != MMAPIO_OK || seen, "the attacker is listed");
    /* The admin's connection is still good for anything else. */
    mmapio_status *st = NULL;
    cr_expect_eq(mmapio_admin_status(root, &st), MMAPIO_OK, "%s",
                 mmapio_last_error());
    if (st)
        mmapio_status_free(st);
    holdout_end(&h);
    mmapio_disconnect(root);
    cr_assert(hz_alive(&hz));
}

/* ---- AdminList and AdminClients paged by hand ------------------------- */

#define PAGED_MAPS 400 /* of 250-byte names: several pages */
#define NO_MORE UINT64_MAX

/* One raw page after `after` (AdminList, or AdminClients when `clients`):
 * its ids in v (at most cap; *n), whether more follow, and the uid of
 * every entry that is not ATTACKER's (0: none). NULL or why not. */
static const char *raw_page(int fd, bool clients, uint64_t after, uint64_t *v,
                            size_t cap, size_t *n, bool *more, uint32_t *alien)
{
    static uint64_t next_id = 100;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__AdminList l = MMAPIO__ADMIN_LIST__INIT;
    Mmapio__AdminClients cq = MMAPIO__ADMIN_CLIENTS__INIT;
    q.id = ++next_id;
    if (clients) {
        cq.after_id = after;
        q.op_case = MMAPIO__REQUEST__OP_ADMIN_CLIENTS;
        q.admin_clients = &cq;
    } else {
        l.after_id = after;
        q.op_case = MMAPIO__REQUEST__OP_ADMIN_LIST;
        q.admin_list = &l;
    }
    if (raw_send(fd, &q, -1) < 0)
        return rb_fail("send: %s", strerror(errno));
    Mmapio__ServerMessage *m;
    int r = raw_recv(fd, 10000, &m, NULL);
    if (r < 0)
        return rb_fail("page after %llu: %s", (unsigned long long)after,
                       strerror(-r));
    size_t packed = mmapio__server_message__get_packed_size(m);
    const char *why = NULL;
    *n = 0;
    *alien = 0;
    if (m->reply->error)
        why = rb_fail("page after %llu: error %d %s",
                      (unsigned long long)after, m->reply->error,
                      m->reply->message);
    else if (packed > WIRE_DEFAULT_MAX_FRAME)
        why = rb_fail("a %zu-byte page", packed);
    else if (clients && m->reply->clients) {
        *more = m->reply->clients->more;
        for (size_t i = 0; i < m->reply->clients->n_clients && *n < cap; i++) {
            Mmapio__ClientInfo *ci = m->reply->clients->clients[i];
            if (ci->uid != ATTACKER)
                *alien = ci->uid ? ci->uid : UINT32_MAX;
            v[(*n)++] = ci->id;
        }
    } else if (!clients && m->reply->list) {
        *more = m->reply->list->more;
        for (size_t i = 0; i < m->reply->list->n_maps && *n < cap; i++) {
            Mmapio__MapInfo *mi = m->reply->list->maps[i];
            if (mi->owner != ATTACKER)
                *alien = mi->owner ? mi->owner : UINT32_MAX;
            v[(*n)++] = mi->id;
        }
    } else {
        why = rb_fail("a reply of another kind");
    }
    mmapio__server_message__free_unpacked(m, NULL);
    return why;
}

/* Pages from `after` to the end: ids strictly rising across pages, each
 * page within a frame, none of another uid; how many in *total. */
static const char *page_all(int fd, bool clients, uint64_t after,
                            size_t *total, size_t *pages)
{
    static uint64_t v[ADMINVIEW_PAGE_MAX_TEST];
    bool more = true;
    uint64_t last = after;
    *total = *pages = 0;
    while (more) {
        size_t n = 0;
        uint32_t alien = 0;
        const char *why = raw_page(fd, clients, last, v, ADMINVIEW_PAGE_MAX_TEST,
                                   &n, &more, &alien);
        if (why)
            return why;
        CHECK(alien == 0);
        CHECK(n > 0 || !more);
        for (size_t i = 0; i < n; i++) {
            CHECK(v[i] > last);
            last = v[i];
        }
        *total += n;
        CHECK(++*pages < 100);
    }
    return NULL;
}

/* In the attacker: PAGED_MAPS mappings of long names and one deleted but
 * held; every page of its own listing, from 0, from the victim's ids,
 * from past the end. arg: the victim's highest mapping id. */
static const char *page_own(mmapio_client *c, void *arg)
{
    uint64_t victim_id = *(uint64_t *)arg;
    char name[251];
    mmapio_map *m;
    for (int i = 0; i < PAGED_MAPS; i++) {
        memset(name, 'n', 250);
        snprintf(name + 240, 11, "%010d", i);
        EXPECT(mmapio_anon_create(c, name, 4096, &m), MMAPIO_OK);
    }
    EXPECT(mmapio_anon_create(c, "gone", 4096, &m), MMAPIO_OK);
    EXPECT(mmapio_anon_delete(c, "gone"), MMAPIO_OK);

    int fd = rb_raw_hello(hz.sock);
    CHECK(fd >= 0);
    size_t total, pages;
    const char *why = page_all(fd, false, 0, &total, &pages);
    if (why)
        return why;
    CHECK(total == PAGED_MAPS + 1); /* the deleted one too: still held */
    CHECK(pages > 1);
    /* From a victim's id: the same, nothing of the victim's. */
    if ((why = page_all(fd, false, victim_id, &total, &pages)))
        return why;
    CHECK(total == PAGED_MAPS + 1);
    /* Past the end, and at the very end of ids. */
    if ((why = page_all(fd, false, NO_MORE, &total, &pages)))
        return why;
    CHECK(total == 0 && pages == 1);
    if ((why = page_all(fd, false, NO_MORE - 1, &total, &pages)))
        return why;
    CHECK(total == 0);
    /* Clients: its two connections, never the victim's. */
    if ((why = page_all(fd, true, 0, &total, &pages)))
        return why;
    CHECK(total == 2);
    if ((why = page_all(fd, true, NO_MORE, &total, &pages)))
        return why;
    CHECK(total == 0);
    close(fd);
    return NULL;
}

Test(fastpaths, paging_shows_only_ones_own_in_order)
{
    /* The victim (root): mappings before the attacker's, one deleted but
     * held, and a connection of its own. */
    mmapio_client *v = hz_client();
    mmapio_map *m[3];
    cr_assert_eq(mmapio_anon_create(v, "victim-a", 4096, &m[0]), MMAPIO_OK);
    cr_assert_eq(mmapio_anon_create(v, "victim-gone", 4096, &m[1]), MMAPIO_OK);
    cr_assert_eq(mmapio_anon_delete(v, "victim-gone"), MMAPIO_OK);
    cr_assert_eq(mmapio_anon_create(v, "victim-b", 4096, &m[2]), MMAPIO_OK);
    mmapio_map_info *maps;
    size_t n;
    cr_assert_eq(mmapio_admin_list(v, &maps, &n), MMAPIO_OK);
    uint64_t top = 0;
    for (size_t i = 0; i < n; i++)
        top = maps[i].id > top ? maps[i].id : top;
    mmapio_map_info_free(maps, n);
    cr_assert_eq(n, 3, "the victim's baseline: its three");

    char why[600];
    cr_assert_eq(rb_run_as(hz.sock, ATTACKER, ATTACKER, page_own, &top, why,
                           sizeof(why)), 0, "%s", why);
    /* Root sees everyone's (the attacker's may still be going): its own
     * three are there as before. */
    cr_assert_eq(mmapio_admin_list(v, &maps, &n), MMAPIO_OK);
    size_t own = 0;
    for (size_t i = 0; i < n; i++)
        own += maps[i].owner == 0 && maps[i].id <= top;
    mmapio_map_info_free(maps, n);
    cr_assert_eq(own, 3, "the victim's own, as before");
    for (int i = 0; i < 3; i++)
        mmapio_unmap(m[i]);
    mmapio_disconnect(v);
    cr_assert(hz_alive(&hz));
}

/* ---- refusals cannot flood the log ------------------------------------ */

static void init_tight(void)
{
    init_bare();
    static char conf[300];
    snprintf(conf, sizeof(conf), "%s/tight.conf", hz.dir);
    const char *text = "max_write_rings_per_uid = 0\n"
                       "max_handles_per_client = 2\n"
                       "max_mappings_per_uid = 1\n";
    cr_assert_eq(hz_write_file(conf, text, strlen(text)), 0);
    int r = rb_start(&hz, (const char *[]){ "--config", conf, NULL });
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(log_flood, .init = init_tight, .fini = hz_teardown, .timeout = 120);

#define FLOOD 400

/* In the attacker: FLOOD requests past each of its limits, and FLOOD
 * connections closed for an oversized datagram. */
static const char *flood(mmapio_client *c, void *arg)
{
    (void)c;
    (void)arg;
    int fd = rb_raw_hello(hz.sock), gfd = -1;
    CHECK(fd >= 0);
    EXPECT(raw_open(fd, "mine", true, MMAPIO__MODE__MODE_READ_WRITE, true,
                    4096, &gfd), 0);
    if (gfd >= 0)
        close(gfd);
    gfd = -1;
    EXPECT(raw_open(fd, "mine", true, MMAPIO__MODE__MODE_READ_ONLY, false, 0,
                    &gfd), 0); /* its second handle: the last one */
    if (gfd >= 0)
        close(gfd);
    for (int i = 0; i < FLOOD; i++) {
        char name[32];
        snprintf(name, sizeof(name), "more%d", i);
        gfd = -1;
        EXPECT(raw_open(fd, name, true, MMAPIO__MODE__MODE_READ_WRITE, true,
                        4096, &gfd), MMAPIO_E_QUOTA);
        EXPECT(raw_open(fd, "mine", true, MMAPIO__MODE__MODE_READ_ONLY,
                        false, 0, &gfd), MMAPIO_E_QUOTA);
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        Mmapio__WriteRing wr = MMAPIO__WRITE_RING__INIT;
        q.id = 1000 + (uint64_t)i;
        q.op_case = MMAPIO__REQUEST__OP_WRITE_RING;
        q.write_ring = &wr;
        CHECK(raw_send(fd, &q, -1) == 0);
        Mmapio__ServerMessage *m;
        int rfd = -1;
        CHECK(raw_recv(fd, 10000, &m, &rfd) == 0);
        int err = m->reply->error;
        mmapio__server_message__free_unpacked(m, NULL);
        CHECK(err == MMAPIO_E_QUOTA && rfd < 0);
    }
    close(fd);
    static uint8_t big[WIRE_DEFAULT_MAX_FRAME + 512];
    for (int i = 0; i < FLOOD; i++) {
        int b = rb_raw_hello(hz.sock);
        CHECK(b >= 0);
        CHECK(raw_send_bytes(b, big, sizeof(big), -1) == 0);
        CHECK(raw_expect_refusal(b, 10000, NULL) == 1);
        close(b);
    }
    return NULL;
}

/* Lines of the daemon's log holding `what`. */
static int log_count(const char *what)
{
    size_t cap = 8u << 20;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    long n = hz_read_file(rb_log_path(&hz), buf, cap - 1);
    int count = 0;
    buf[n > 0 ? n : 0] = '\0';
    for (char *p = buf; (p = strstr(p, what)); p += strlen(what))
        count++;
    free(buf);
    return count;
}

Test(log_flood, refusals_log_a_line_a_second)
{
    char why[600];
    time_t t0 = time(NULL);
    cr_assert_eq(rb_run_as(hz.sock, ATTACKER, ATTACKER, flood, NULL, why,
                           sizeof(why)), 0, "%s", why);
    long secs = (long)(time(NULL) - t0) + 1; /* seconds the flood touched */
    static const char *const lines[] = {
        "uid 65534 refused:", "refused: max_handles_per_client",
        "refused a write ring", "frame limit",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        int n = log_count(lines[i]);
        cr_expect_geq(n, 1, "'%s' was never logged", lines[i]);
        cr_expect_leq(n, secs, "%d lines of '%s' for %d refusals in %ld "
                      "seconds", n, lines[i], FLOOD, secs);
    }
    cr_assert(hz_alive(&hz));
}

/* ---- the copier: one uid never takes every worker --------------------- */

#define COPY_SRC_BYTES (64u << 20) /* long enough to overlap the victim's */
#define COPY_BURST 8

/* In the attacker: COPY_BURST copies of own/src asked at once, then a
 * ping; its answer means every copy was taken up or refused. */
static const char *copy_burst(mmapio_client *c)
{
    (void)c;
    int fd = rb_raw_hello(hz.sock);
    CHECK(fd >= 0);
    static char dst[COPY_BURST][32];
    for (int i = 0; i < COPY_BURST; i++) {
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        Mmapio__Copy cp = MMAPIO__COPY__INIT;
        snprintf(dst[i], sizeof(dst[i]), "own/d%d", i);
        cp.src = "own/src";
        cp.dst = dst[i];
        q.id = 10 + (uint64_t)i;
        q.op_case = MMAPIO__REQUEST__OP_COPY;
        q.copy = &cp;
        CHECK(raw_send(fd, &q, -1) == 0);
    }
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    q.id = 99;
    q.op_case = MMAPIO__REQUEST__OP_PING;
    q.ping = &ping;
    CHECK(raw_send(fd, &q, -1) == 0);
    for (;;) {
        Mmapio__ServerMessage *m;
        int r = raw_recv(fd, 20000, &m, NULL);
        if (r < 0)
            return rb_fail("no answer to the ping: %s", strerror(-r));
        uint64_t id = m->reply->id;
        mmapio__server_message__free_unpacked(m, NULL);
        if (id == 99)
            break;
    }
    return NULL; /* the copies go on; the connection stays */
}

Test(fastpaths, one_uids_copies_leave_workers_for_others)
{
    char path[600];
    snprintf(path, sizeof(path), "%s", hz_path(&hz, "own"));
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(chown(path, ATTACKER, ATTACKER), 0);
    snprintf(path, sizeof(path), "%s", hz_path(&hz, "own/src"));
    int fd = open(path, O_CREAT | O_RDWR, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, COPY_SRC_BYTES), 0);
    cr_assert_eq(fchown(fd, ATTACKER, ATTACKER), 0);
    close(fd);
    cr_assert_eq(hz_write_file(hz_path(&hz, "vsrc"), "victim", 6), 0);

    /* The victim's baseline: its copy goes. */
    mmapio_client *v = hz_client();
    cr_assert_eq(mmapio_copy(v, "vsrc", "vdst0"), MMAPIO_OK, "baseline: %s",
                 mmapio_last_error());

    struct holdout h;
    holdout_start(&h, copy_burst);
    int r = mmapio_copy(v, "vsrc", "vdst1");
    cr_expect_eq(r, MMAPIO_OK, "the victim's copy beside the attacker's "
                 "burst: %s (%s)", mmapio_strerror(r), mmapio_last_error());
    holdout_end(&h);
    mmapio_disconnect(v);
    cr_assert(hz_alive(&hz));
}

/* ---- fds whose close never ends --------------------------------------- */

/*
 * stuckfs: a FUSE file system of one file, "f", whose close never ends
 * (FLUSH is never answered): what a user with fusermount can make. The
 * test mounts it (root may), the attacker gets an fd of f.
 */
struct stuckfs {
    int dev;
    char dir[300];
    pthread_t t;
};

static void fuse_reply(int dev, uint64_t unique, int err, const void *body,
                       size_t len)
{
    char buf[1024];
    struct fuse_out_header *h = (void *)buf;
    h->len = (uint32_t)(sizeof(*h) + (err ? 0 : len));
    h->error = -err;
    h->unique = unique;
    if (!err && len)
        memcpy(buf + sizeof(*h), body, len);
    (void)!write(dev, buf, h->len);
}

static void fuse_fill(struct fuse_attr *a, uint64_t ino)
{
    memset(a, 0, sizeof(*a));
    a->ino = ino;
    a->mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0644;
    a->nlink = 1;
    a->size = ino == FUSE_ROOT_ID ? 0 : 4096;
    a->blksize = 4096;
}

static void *stuckfs_serve(void *p)
{
    struct stuckfs *fs = p;
    static char buf[(1 << 20) + 4096];
    union {
        struct fuse_init_out init;
        struct fuse_entry_out entry;
        struct fuse_attr_out attr;
        struct fuse_open_out open;
    } o;
    for (;;) {
        ssize_t n = read(fs->dev, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < (ssize_t)sizeof(struct fuse_in_header))
            return NULL; /* aborted */
        struct fuse_in_header *in = (void *)buf;
        const void *arg = buf + sizeof(*in);
        memset(&o, 0, sizeof(o));
        switch (in->opcode) {
        case FUSE_INIT: {
            const struct fuse_init_in *ii = arg;
            o.init.major = FUSE_KERNEL_VERSION;
            o.init.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION
                               ? ii->minor : FUSE_KERNEL_MINOR_VERSION;
            o.init.max_readahead = ii->max_readahead;
            o.init.max_write = 65536;
            fuse_reply(fs->dev, in->unique, 0, &o.init, sizeof(o.init));
            break;
        }
        case FUSE_LOOKUP:
            if (strcmp(arg, "f")) {
                fuse_reply(fs->dev, in->unique, ENOENT, NULL, 0);
                break;
            }
            o.entry.nodeid = 2;
            o.entry.generation = 1;
            fuse_fill(&o.entry.attr, 2);
            fuse_reply(fs->dev, in->unique, 0, &o.entry, sizeof(o.entry));
            break;
        case FUSE_GETATTR:
            fuse_fill(&o.attr.attr, in->nodeid);
            fuse_reply(fs->dev, in->unique, 0, &o.attr, sizeof(o.attr));
            break;
        case FUSE_OPEN:
        case FUSE_OPENDIR:
            o.open.fh = 1;
            fuse_reply(fs->dev, in->unique, 0, &o.open, sizeof(o.open));
            break;
        case FUSE_FLUSH:
        case FUSE_INTERRUPT:
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
            break; /* FLUSH never answered: whoever closes waits */
        case FUSE_RELEASE:
        case FUSE_RELEASEDIR:
            fuse_reply(fs->dev, in->unique, 0, NULL, 0);
            break;
        default:
            fuse_reply(fs->dev, in->unique, ENOSYS, NULL, 0);
        }
    }
}

static int stuckfs_mount(struct stuckfs *fs, const char *dir)
{
    snprintf(fs->dir, sizeof(fs->dir), "%s", dir);
    fs->dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fs->dev < 0)
        return -errno;
    char opts[128];
    snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,"
             "allow_other", fs->dev);
    if (mount("stuckfs", dir, "fuse.stuckfs", MS_NOSUID | MS_NODEV, opts) < 0) {
        int e = errno;
        close(fs->dev);
        return -e;
    }
    if (pthread_create(&fs->t, NULL, stuckfs_serve, fs)) {
        umount2(dir, MNT_DETACH);
        close(fs->dev);
        return -EAGAIN;
    }
    return 0;
}

/* Ends every wait on it (the connection aborted), then unmounts. */
static void stuckfs_end(struct stuckfs *fs)
{
    struct stat st;
    char abort_path[128];
    if (stat(fs->dir, &st) == 0) {
        (void)mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
        snprintf(abort_path, sizeof(abort_path),
                 "/sys/fs/fuse/connections/%u/abort", minor(st.st_dev));
        hz_write_file(abort_path, "1", 1);
    }
    umount2(fs->dir, MNT_DETACH);
    pthread_join(fs->t, NULL);
    close(fs->dev);
}

#define STUCK_OFFERS 5000 /* past the closer's whole queue (4096) */

static int stuck_fd = -1;
static struct stuckfs *stuck_fs;

/* One FdOffer on raw connection fd: its reply's error, or 1 when the
 * daemon did not answer. */
static int fd_offer(int fd)
{
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__FdOffer offer = MMAPIO__FD_OFFER__INIT;
    q.id = 1;
    q.op_case = MMAPIO__REQUEST__OP_FD_OFFER;
    q.fd_offer = &offer;
    Mmapio__ServerMessage *m;
    if (raw_send(fd, &q, -1) < 0 || raw_recv(fd, 5000, &m, NULL) < 0)
        return 1;
    int err = m->reply->error;
    mmapio__server_message__free_unpacked(m, NULL);
    return err;
}

/* In the attacker: stuck_fd offered to FromFd STUCK_OFFERS times, each
 * refused (not a local file system) and handed to the closer, or the
 * offer itself refused. The raw connection, or -1. */
static int flood_stuck(void)
{
    close(stuck_fs->dev); /* the server's, not the attacker's */
    int fd = rb_raw_hello(hz.sock);
    if (fd < 0)
        return -1;
    for (int i = 0; i < STUCK_OFFERS; i++) {
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        Mmapio__ServerMessage *m;
        /* A daemon that stopped answering is the parent's to judge. */
        int err = fd_offer(fd);
        if (err == 1)
            break;
        if (err)
            continue; /* no window: nothing to send */
        Mmapio__FromFd ff = MMAPIO__FROM_FD__INIT;
        q.id = 2;
        q.op_case = MMAPIO__REQUEST__OP_FROM_FD;
        q.from_fd = &ff;
        ff.path = "";
        ff.mode = MMAPIO__MODE__MODE_READ_ONLY;
        if (raw_send(fd, &q, stuck_fd) < 0 || raw_recv(fd, 5000, &m, NULL) < 0)
            break;
        err = m->reply->error;
        mmapio__server_message__free_unpacked(m, NULL);
        if (err == 0)
            return -1; /* the FUSE file taken: not what is attacked */
    }
    return fd;
}

static const char *offer_stuck(mmapio_client *c)
{
    (void)c;
    CHECK(flood_stuck() >= 0);
    return NULL;
}

/* The flood, then the attacker's own FdOffer: BUSY, its closer stuck. */
static const char *offer_stuck_then_busy(mmapio_client *c)
{
    (void)c;
    int fd = flood_stuck();
    CHECK(fd >= 0);
    int err = fd_offer(fd);
    if (err != MMAPIO_E_BUSY)
        return rb_fail("the attacker's FdOffer after its flood: %d, "
                       "expected BUSY", err);
    return NULL;
}

/* stuckfs mounted under the test's directory, its file open as
 * stuck_fd (skips where FUSE cannot be had, or under valgrind). */
static void stuck_setup(struct stuckfs *fs)
{
    /* valgrind runs a blocking close() holding its one lock (close is not
     * among the calls it lets block): every thread of the daemon would
     * wait with the closer, as no thread does natively. */
    if (rb_wrapped())
        cr_skip_test("under valgrind a close() that blocks stops every thread");
    char mnt[300];
    snprintf(mnt, sizeof(mnt), "%s/stuck", hz.dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    int r = stuckfs_mount(fs, mnt);
    if (r < 0)
        cr_skip_test("cannot mount a FUSE file system: %s", strerror(-r));
    char f[320];
    snprintf(f, sizeof(f), "%s/f", mnt);
    stuck_fd = open(f, O_RDONLY);
    cr_assert_geq(stuck_fd, 0, "open %s: %s", f, strerror(errno));
    stuck_fs = fs;
}

Test(fastpaths, fds_that_never_close_do_not_stop_the_daemon)
{
    struct stuckfs fs;
    stuck_setup(&fs);
    int v = rb_raw_hello(hz.sock);
    cr_assert_geq(v, 0);
    cr_assert_eq(raw_ping(v, 5), 0, "the victim's baseline ping");

    struct holdout h;
    holdout_start(&h, offer_stuck);
    int ping = raw_ping(v, 6);
    /* Whatever waits on the file goes (the attacker's exit too, and our
     * own close): then judge, and tear down. */
    stuckfs_end(&fs);
    holdout_end(&h);
    close(stuck_fd);
    cr_expect_eq(ping, 0, "the victim's ping after the attacker's fds: %d",
                 ping);
    close(v);
    cr_assert(hz_alive(&hz));
}

/* Closers are per uid: with the attacker's stuck on the FUSE file (and
 * its own FdOffer BUSY), the victim's from_fd of its own file still goes
 * through, and its pings answer. With one closer for all, the victim's
 * FdOffer was BUSY too. */
Test(fastpaths, a_stuck_closer_holds_up_its_own_uid_alone)
{
    struct stuckfs fs;
    stuck_setup(&fs);
    char vf[320];
    snprintf(vf, sizeof(vf), "%s/victim.bin", hz.dir);
    int vfd = open(vf, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert_geq(vfd, 0);
    cr_assert_eq(pwrite(vfd, "victim", 6, 0), 6);
    cr_assert_eq(ftruncate(vfd, 4096), 0);
    mmapio_client *c = hz_client();
    int v = rb_raw_hello(hz.sock);
    cr_assert_geq(v, 0);
    cr_assert_eq(raw_ping(v, 5), 0, "the victim's baseline ping");

    struct holdout h;
    holdout_start(&h, offer_stuck_then_busy);
    mmapio_map *m = NULL;
    int got = mmapio_from_fd(c, vfd, MMAPIO_MODE_READ_ONLY, "victim", &m);
    bool same = got == MMAPIO_OK && !memcmp(mmapio_as_ptr(m), "victim", 6);
    if (got == MMAPIO_OK)
        (void)mmapio_unmap(m);
    int ping = raw_ping(v, 6);
    stuckfs_end(&fs);
    holdout_end(&h);
    close(stuck_fd);
    close(vfd);
    cr_expect_eq(got, MMAPIO_OK, "the victim's from_fd while the attacker's "
                 "closer is stuck: %d", got);
    cr_expect(got != MMAPIO_OK || same, "the victim's mapping shows its file");
    cr_expect_eq(ping, 0, "the victim's ping after the attacker's fds: %d",
                 ping);
    mmapio_disconnect(c);
    close(v);
    cr_assert(hz_alive(&hz));
}
