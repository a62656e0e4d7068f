/*
 * test_files: files and quotas (issue 10, rows 11, 12, 17 and 18), each
 * attack run against a real daemon and shown not to work.
 *
 * Row 11: an unprivileged uid that holds another user's world-readable
 * files is charged for them itself; the owner's own creates still pass
 * under a small quota, and the holder's charge is gone when it leaves.
 * Row 12: a read-write holder of another user's 0666 anonymous mapping
 * can neither shrink nor seal its memfd, and what it grows behind the
 * daemon's back is neither told to the owner nor kept (its memory is
 * punched away); the owner resizes and reopens it as before.
 * Row 17: deleting one hard link of a file that has another tells its
 * watchers METADATA, not REMOVED; deleting the last one tells REMOVED.
 * Row 18: on a full disk (a small tmpfs as the data root), a sparse file
 * is reserved or refused before a writable grant, and a file grown by
 * ftruncate on a granted fd is reserved or truncated back before any
 * holder hears of it: writers through the mapping never die of SIGBUS.
 *
 * The test runs as root (the victim); attackers are forked children
 * dropped to uid 65534.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust/robust.h"
#include "wire.h"

#define KIB 1024ull
#define MIB (1024 * KIB)
#define STEP_MS 20000

static void init(void)
{
    int r = rb_prepare_shared(&hz);
    if (r == -EPERM)
        cr_skip_test("needs root, to run an attacker as another uid");
    cr_assert_eq(r, 0, "cannot set up: %s", strerror(-r));
}

TestSuite(files, .init = init, .fini = hz_teardown, .timeout = 60);

static void start(const char *const *extra)
{
    int r = rb_start(&hz, extra);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s\n%s", strerror(-r),
                 rb_log_tail(&hz));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

/* ---- a child as another uid, in steps --------------------------------- */

/* A forked child: `up` says it reached a step, `down` lets it go on; it
 * writes why it failed to `report`. */
struct child {
    pid_t pid;
    int report;
    struct hz_chan down, up;
};

typedef const char *(*child_fn)(struct child *ch, void *arg);


/* In the child: tells the parent it reached a step, waits for its go. */
static const char *step(struct child *ch)
{
    if (hz_chan_send(&ch->up, 'k') < 0 || hz_chan_recv(&ch->down, STEP_MS) != 'g')
        return rb_fail("the parent did not let the child go on");
    return NULL;
}

/* Runs fn in a child as uid (0: stays root). */
static void child_start(struct child *ch, uid_t uid, child_fn fn, void *arg)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(hz_chan_open(&ch->down), 0);
    cr_assert_eq(hz_chan_open(&ch->up), 0);
    ch->pid = hz_fork();
    cr_assert_geq(ch->pid, 0);
    if (ch->pid == 0) {
        close(p[0]);
        hz_chan_keep_read(&ch->down);
        hz_chan_keep_write(&ch->up);
        const char *msg = NULL;
        if (uid && rb_become(uid, uid) < 0)
            msg = rb_fail("cannot become %u: %s", (unsigned)uid, strerror(errno));
        else
            msg = fn(ch, arg);
        if (msg)
            (void)!write(p[1], msg, strlen(msg));
        _exit(msg ? 1 : 0);
    }
    close(p[1]);
    ch->report = p[0];
    hz_chan_keep_write(&ch->down);
    hz_chan_keep_read(&ch->up);
}

static int child_end(struct child *ch, char *msg, size_t cap);

/* The parent waits for the child's next step; a child that failed before
 * it is reported with its reason. */
static void child_reached(struct child *ch)
{
    char msg[600];
    if (hz_chan_recv(&ch->up, STEP_MS) == 'k')
        return;
    int st = child_end(ch, msg, sizeof(msg));
    cr_assert_fail("the child did not reach its step: %s (status 0x%x)",
                   msg[0] ? msg : "no report", (unsigned)st);
}

static void child_go(struct child *ch)
{
    cr_assert_eq(hz_chan_send(&ch->down, 'g'), 0);
}

/* Waits for the child; its wait status. Its report goes to *msg. */
static int child_end(struct child *ch, char *msg, size_t cap)
{
    long n = 0, k;
    while (n < (long)cap - 1 &&
           (k = read(ch->report, msg + n, cap - 1 - (size_t)n)) > 0)
        n += k;
    msg[n > 0 ? n : 0] = '\0';
    close(ch->report);
    int st = hz_wait_child(ch->pid, STEP_MS);
    hz_chan_close(&ch->down);
    hz_chan_close(&ch->up);
    return st;
}

/* Waits for the child and asserts that it reported success. */
static void child_ok(struct child *ch)
{
    char msg[600];
    int st = child_end(ch, msg, sizeof(msg));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s (status 0x%x)",
              msg[0] ? msg : "no report", (unsigned)st);
}

/* ---- row 11: holders are charged, not the owner ----------------------- */

static void make_file(mmapio_client *c, const char *name, uint64_t size)
{
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, name, size, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "victim", 6));
    hz_assert_ok(mmapio_unmap(m));
}

/* Holds the victim's three 256 KiB files; a fourth (512 KiB) does not fit
 * in its own 1 MiB. */
static const char *hold_victims_files(struct child *ch, void *arg)
{
    mmapio_client *c;
    mmapio_map *f[3], *x;
    bool stay = arg != NULL;
    EXPECT(mmapio_connect(hz.sock, &c), MMAPIO_OK);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d.dat", i);
        EXPECT(mmapio_open_ro(c, name, &f[i]), MMAPIO_OK);
    }
    /* A second handle of the same uid on a mapping costs nothing more. */
    EXPECT(mmapio_open_ro(c, "f0.dat", &x), MMAPIO_OK);
    mmapio_unmap(x);
    /* The holder pays: 768 KiB held, 512 KiB more would pass its 1 MiB. */
    EXPECT(mmapio_open_ro(c, "big.dat", &x), MMAPIO_E_QUOTA);
    if (stay) {
        const char *r = step(ch);
        if (r)
            return r;
    }
    for (int i = 0; i < 3; i++)
        mmapio_unmap(f[i]);
    mmapio_disconnect(c);
    return NULL;
}

Test(files, holding_others_files_charges_the_holder)
{
    start((const char *[]){ "--max-mappings-per-uid", "4",
                            "--max-bytes-per-uid", "1048576", NULL });
    mmapio_client *c = hz_client();
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d.dat", i);
        make_file(c, name, 256 * KIB);
    }
    make_file(c, "big.dat", 512 * KIB);

    struct child a;
    child_start(&a, RB_NOBODY, hold_victims_files, "stay");
    child_reached(&a);
    /* While the attacker holds 768 KiB of the victim's files, the victim's
     * own creates fit in its 1 MiB and 4 mappings. */
    mmapio_map *g, *mine, *x;
    hz_assert_ok(mmapio_create_rw(c, "g.dat", 512 * KIB, &g));
    hz_assert_ok(mmapio_anon_create(c, "mine", 256 * KIB, &mine));
    hz_assert_ok(mmapio_open_ro(c, "f1.dat", &x)); /* 1 MiB exactly */
    /* Its own limit still holds. */
    mmapio_map *y = (mmapio_map *)0x1;
    hz_assert_ret(mmapio_anon_create(c, "over", 4096, &y), MMAPIO_E_QUOTA);
    cr_assert(rb_log_has(&hz, "max_bytes_per_uid", 5000));
    mmapio_unmap(x);
    child_go(&a);
    child_ok(&a);

    /* The attacker's charge left with it: a second one holds as much. */
    struct child b;
    child_start(&b, RB_NOBODY, hold_victims_files, NULL);
    child_ok(&b);
    mmapio_unmap(g);
    mmapio_unmap(mine);
    mmapio_disconnect(c);
}

/* One request on a raw connection; the reply's error (0: success), its
 * handle or watch id in *out, or a transport error (raw_is_errno). */
static int raw_call(int s, Mmapio__Request *q, uint64_t *out)
{
    Mmapio__ServerMessage *m;
    int fd = -1;
    if (raw_send(s, q, -1) < 0 || raw_recv(s, 5000, &m, &fd) < 0)
        return -RAW_ERRNO_BASE;
    if (fd >= 0)
        close(fd);
    Mmapio__Reply *r = m->reply;
    int err = r ? r->error : -RAW_ERRNO_BASE;
    if (r && out)
        *out = r->result_case == MMAPIO__REPLY__RESULT_OPEN ? r->open->handle
               : r->result_case == MMAPIO__REPLY__RESULT_WATCH
                   ? r->watch->watch_id : 0;
    mmapio__server_message__free_unpacked(m, NULL);
    return err;
}

/* Opens the victim's files one after another, watches each, and lets go
 * of the handle: the watches alone keep the mappings (and the daemon's
 * fds) alive. Reports how many it kept so. */
static const char *watch_then_close(struct child *ch, void *arg)
{
    int *kept = arg, s = raw_connect(hz.sock);
    if (s < 0 || raw_hello(s, WIRE_PROTOCOL) != 0)
        return rb_fail("cannot connect");
    for (*kept = 0; *kept < 10; ++*kept) {
        char name[32];
        uint64_t handle = 0, wid = 0;
        snprintf(name, sizeof(name), "w%d.dat", *kept);
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        Mmapio__Open o = MMAPIO__OPEN__INIT;
        o.path = name;
        o.mode = MMAPIO__MODE__MODE_READ_ONLY;
        q.id = 1;
        q.op_case = MMAPIO__REQUEST__OP_OPEN;
        q.open = &o;
        int r = raw_call(s, &q, &handle);
        if (r == MMAPIO_E_QUOTA)
            break;
        EXPECT(r, 0);
        Mmapio__Watch w = MMAPIO__WATCH__INIT;
        w.handle = handle;
        q.id = 2;
        q.op_case = MMAPIO__REQUEST__OP_WATCH;
        q.watch = &w;
        EXPECT(raw_call(s, &q, &wid), 0);
        Mmapio__Close c = MMAPIO__CLOSE__INIT;
        c.handle = handle;
        q.id = 3;
        q.op_case = MMAPIO__REQUEST__OP_CLOSE;
        q.close = &c;
        EXPECT(raw_call(s, &q, NULL), 0);
    }
    const char *r = step(ch);
    close(s);
    return r;
}

/* A watch keeps its mapping and the daemon's fd like a holder: it is
 * charged like one, so watching what it let go of does not take a uid
 * past max_mappings_per_uid. */
Test(files, watches_are_charged_like_holders)
{
    start((const char *[]){ "--max-mappings-per-uid", "4", NULL });
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%d.dat", i);
        const char *path = hz_path(&hz, name);
        cr_assert_eq(hz_write_file(path, "public", 6), 0);
        cr_assert_eq(chmod(path, 0644), 0);
    }
    int *kept = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(kept, MAP_FAILED);
    struct child a;
    child_start(&a, RB_NOBODY, watch_then_close, kept);
    child_reached(&a);
    cr_assert_leq(*kept, 4, "the attacker kept %d mappings alive with "
                  "watches past its 4", *kept);
    cr_assert(rb_log_has(&hz, "max_mappings_per_uid", 5000));
    child_go(&a);
    child_ok(&a);

    /* Its charge left with it: another uid's run keeps as many. */
    child_start(&a, RB_NOBODY, watch_then_close, kept);
    child_reached(&a);
    cr_assert_eq(*kept, 4);
    child_go(&a);
    child_ok(&a);
    munmap(kept, sizeof(int));
}

/* ---- row 12: anonymous mappings are sealed ---------------------------- */

#define SHARED_SIZE (64 * KIB)
#define GROWN_MAP (8 * MIB) /* what the attacker writes behind the daemon */

static const char *abuse_anon(struct child *ch, void *arg)
{
    (void)arg;
    int s = raw_connect(hz.sock), fd = -1;
    if (s < 0 || raw_hello(s, WIRE_PROTOCOL) != 0)
        return rb_fail("cannot connect");
    EXPECT(raw_open(s, "shared", true, MMAPIO__MODE__MODE_READ_WRITE, false, 0,
                    &fd), 0);
    if (fd < 0)
        return rb_fail("no fd granted");
    if (ftruncate(fd, 4096) == 0)
        return rb_fail("a holder shrank the owner's memfd");
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) == 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)
        return rb_fail("a holder sealed the owner's memfd");
    /* Growing behind the daemon's back, and filling what it grew. */
    uint8_t *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)(8ull << 30)) == 0) {
        p = mmap(NULL, GROWN_MAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return rb_fail("mmap: %s", strerror(errno));
        memset(p + SHARED_SIZE, 0xaa, GROWN_MAP - SHARED_SIZE);
    }
    const char *r = step(ch);
    if (r)
        return r;
    /* The owner's next request made the daemon look: nothing it did not
     * size is kept. */
    struct stat st;
    if (fstat(fd, &st) < 0)
        return rb_fail("fstat: %s", strerror(errno));
    if ((uint64_t)st.st_blocks * 512 > 2 * MIB)
        return rb_fail("the memfd still holds %llu bytes past the owner's %llu",
                    (unsigned long long)st.st_blocks * 512,
                    (unsigned long long)SHARED_SIZE);
    if (p != MAP_FAILED) {
        for (size_t i = 256 * KIB; i < GROWN_MAP; i += 4096)
            if (p[i] != 0)
                return rb_fail("byte %zu past the mapping survived", i);
        munmap(p, GROWN_MAP);
    }
    close(fd);
    close(s);
    return NULL;
}

Test(files, anon_holder_cannot_shrink_seal_or_grow_it)
{
    start((const char *[]){ "--max-bytes-per-uid", "4194304", NULL });
    mmapio_client *c = hz_client();
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = true;
    o.create = true;
    o.size = SHARED_SIZE;
    o.perm = 0666;
    mmapio_map *v, *more;
    hz_assert_ok(mmapio_open(c, "shared", &o, &v));
    hz_assert_ok(mmapio_update_region(v, 0, "owner", 5));

    struct child a;
    child_start(&a, RB_NOBODY, abuse_anon, NULL);
    child_reached(&a);
    /* The owner is told its own size, and charged for it alone. */
    hz_assert_ok(mmapio_refresh(v));
    cr_assert_eq(mmapio_len(v), SHARED_SIZE, "the owner now sees %llu bytes",
                 (unsigned long long)mmapio_len(v));
    hz_assert_ok(mmapio_anon_create(c, "more", 3 * MIB, &more));
    /* The owner grows it while the attacker holds it. */
    hz_assert_ok(mmapio_resize(v, 2 * SHARED_SIZE));
    hz_assert_ok(mmapio_update_region(v, 2 * SHARED_SIZE - 4, "tail", 4));
    child_go(&a);
    child_ok(&a);

    /* Alone again, the owner shrinks it and reopens it writable: once the
     * daemon has read the attacker's hang-up (its connection's end may
     * come after the owner's request). */
    int r;
    int64_t until = hz_now_ms() + 5000;
    while ((r = mmapio_resize(v, SHARED_SIZE / 2)) == MMAPIO_E_BUSY &&
           hz_now_ms() < until)
        usleep(2000);
    hz_assert_ok(r);
    cr_assert_eq(mmapio_len(v), SHARED_SIZE / 2);
    mmapio_map *v2;
    hz_assert_ok(mmapio_anon_open(c, "shared", &v2));
    cr_assert_eq(mmapio_len(v2), SHARED_SIZE / 2);
    char buf[5];
    hz_assert_ok(mmapio_read_into(v2, 0, buf, 5));
    cr_assert_eq(memcmp(buf, "owner", 5), 0);
    hz_assert_ok(mmapio_update_region(v2, 100, "x", 1));
    /* Grown again, the bytes past the old end read as zeros. */
    hz_assert_ok(mmapio_resize(v2, 2 * SHARED_SIZE));
    hz_assert_ok(mmapio_read_into(v2, 2 * SHARED_SIZE - 4, buf, 4));
    cr_assert_eq(memcmp(buf, "\0\0\0\0", 4), 0);
    mmapio_unmap(v2);
    mmapio_unmap(v);
    mmapio_unmap(more);
    mmapio_disconnect(c);
}

/* ---- row 17: REMOVED only with the last link -------------------------- */

struct rec {
    int n[3]; /* by mmapio_change_kind */
};

static void on_event(const mmapio_change_event *ev, void *user)
{
    struct rec *r = user;
    if ((unsigned)ev->kind < 3)
        r->n[ev->kind]++;
}

/* Dispatches both clients until `r` has an event of `kind` or `ms` passed. */
static void pump(mmapio_client *c1, mmapio_client *c2, struct rec *r,
                 mmapio_change_kind kind, int ms)
{
    int64_t end = hz_now_ms() + ms;
    while (hz_now_ms() < end && (!r || r->n[kind] == 0)) {
        cr_assert_geq(mmapio_client_dispatch(c1, 20), 0);
        cr_assert_geq(mmapio_client_dispatch(c2, 20), 0);
    }
}

Test(files, deleting_one_of_two_links_is_not_removed)
{
    start(NULL);
    static const char data[4096];
    cr_assert_eq(hz_write_file(hz_path(&hz, "a.dat"), data, sizeof(data)), 0);
    char other[300];
    snprintf(other, sizeof(other), "%s", hz_path(&hz, "b.dat"));
    cr_assert_eq(link(hz_path(&hz, "a.dat"), other), 0, "%s", strerror(errno));

    mmapio_client *c1 = hz_client(), *c2 = hz_client();
    mmapio_map *m1, *m2;
    mmapio_watcher *w1, *w2;
    struct rec r1 = { { 0 } }, r2 = { { 0 } };
    hz_assert_ok(mmapio_open_rw(c1, "a.dat", &m1));
    hz_assert_ok(mmapio_open_ro(c2, "b.dat", &m2));
    hz_assert_ok(mmapio_watch(m1, on_event, &r1, &w1));
    hz_assert_ok(mmapio_watch(m2, on_event, &r2, &w2));

    hz_assert_ok(mmapio_delete(c1, "a.dat"));
    pump(c1, c2, &r2, MMAPIO_CHANGE_METADATA, 5000);
    pump(c1, c2, NULL, 0, 300);
    cr_assert_eq(r1.n[MMAPIO_CHANGE_REMOVED], 0,
                 "REMOVED while b.dat still names the file");
    cr_assert_eq(r2.n[MMAPIO_CHANGE_REMOVED], 0,
                 "REMOVED while b.dat still names the file");
    cr_assert_geq(r2.n[MMAPIO_CHANGE_METADATA], 1, "no METADATA for the link");

    hz_assert_ok(mmapio_delete(c2, "b.dat"));
    pump(c1, c2, &r1, MMAPIO_CHANGE_REMOVED, 5000);
    pump(c1, c2, &r2, MMAPIO_CHANGE_REMOVED, 5000);
    cr_assert_eq(r1.n[MMAPIO_CHANGE_REMOVED], 1);
    cr_assert_eq(r2.n[MMAPIO_CHANGE_REMOVED], 1);
    mmapio_unwatch(w1);
    mmapio_unwatch(w2);
    mmapio_unmap(m1);
    mmapio_unmap(m2);
    mmapio_disconnect(c1);
    mmapio_disconnect(c2);
}

/* ---- row 18: holes reserved on a full disk ---------------------------- */

/* The data root is a small tmpfs of its own (skipped where it cannot be
 * mounted); unmounted (lazily: the daemon still has it open) at the end. */
static void init_tmpfs(void)
{
    init();
    if (mkdir(hz.root, 0755) < 0 && errno != EEXIST)
        cr_assert_fail("mkdir %s: %s", hz.root, strerror(errno));
    if (mount("mmapio-test", hz.root, "tmpfs", MS_NOSUID | MS_NODEV,
              "size=8m,mode=0755") < 0)
        cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
}

static void fini_tmpfs(void)
{
    umount2(hz.root, MNT_DETACH);
    hz_teardown();
}

TestSuite(full_disk, .init = init_tmpfs, .fini = fini_tmpfs, .timeout = 60);

/* Fills the data root's file system (root's own file filler.dat). */
static void fill_disk(void)
{
    static const char chunk[64 * 1024];
    int fd = open(hz_path(&hz, "filler.dat"), O_WRONLY | O_CREAT | O_APPEND,
                  0600);
    cr_assert_geq(fd, 0);
    while (write(fd, chunk, sizeof(chunk)) > 0)
        ;
    (void)!write(fd, chunk, 512); /* the last partial page */
    close(fd);
}

/* What write_all opens, and whether it waits for a go and refreshes. */
struct writer {
    const char *path;
    bool wait;
};

/* Opens a file read-write, refreshes at the parent's go when asked, and
 * writes every byte of the mapping through the pointer. Exit 2: refused. */
static const char *write_all(struct child *ch, void *arg)
{
    const struct writer *wr = arg;
    const char *path = wr->path;
    mmapio_client *c;
    mmapio_map *m;
    EXPECT(mmapio_connect(hz.sock, &c), MMAPIO_OK);
    int r = mmapio_open_rw(c, path, &m);
    if (r == MMAPIO_E_QUOTA)
        _exit(2);
    EXPECT(r, MMAPIO_OK);
    if (wr->wait) {
        const char *s = step(ch);
        if (s)
            return s;
        EXPECT(mmapio_refresh(m), MMAPIO_OK);
    }
    memset(mmapio_as_mut_ptr(m), 0x5a, (size_t)mmapio_len(m));
    mmapio_unmap(m);
    mmapio_disconnect(c);
    return NULL;
}

static void assert_not_sigbus(int st, const char *msg)
{
    cr_assert(!WIFSIGNALED(st), "the writer was killed by signal %d (%s)",
              WTERMSIG(st), strsignal(WTERMSIG(st)));
    cr_assert(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2),
              "writer: %s (status 0x%x)", msg[0] ? msg : "no report",
              (unsigned)st);
}

Test(full_disk, sparse_file_is_reserved_or_refused)
{
    start(NULL);
    int fd = open(hz_path(&hz, "sparse.dat"), O_RDWR | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 4 * MIB), 0);
    close(fd);
    fill_disk();

    struct child w;
    char msg[600];
    struct writer wr = { "sparse.dat", false };
    child_start(&w, 0, write_all, &wr);
    int st = child_end(&w, msg, sizeof(msg));
    assert_not_sigbus(st, msg);
    cr_assert_eq(WEXITSTATUS(st), 2, "granted on a full disk, and written");

    /* With room on the disk, the grant reserves the holes and writes pass. */
    cr_assert_eq(unlink(hz_path(&hz, "filler.dat")), 0);
    child_start(&w, 0, write_all, &wr);
    st = child_end(&w, msg, sizeof(msg));
    assert_not_sigbus(st, msg);
    cr_assert_eq(WEXITSTATUS(st), 0, "refused with room on the disk");
}

Test(full_disk, file_grown_on_a_granted_fd_is_reserved_or_undone)
{
    start(NULL);
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "grow.dat", 64 * KIB, &m));

    struct child w;
    char msg[600];
    struct writer wr = { "grow.dat", true };
    child_start(&w, 0, write_all, &wr);
    child_reached(&w);
    fill_disk();
    /* A read-write holder grows the file by ftruncate on its granted fd. */
    int s = raw_connect(hz.sock), fd = -1;
    cr_assert_geq(s, 0);
    cr_assert_eq(raw_hello(s, WIRE_PROTOCOL), 0);
    cr_assert_eq(raw_open(s, "grow.dat", false, MMAPIO__MODE__MODE_READ_WRITE,
                          false, 0, &fd), 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)(4 * MIB)), 0);
    bool undone = rb_log_has(&hz, "truncated back", 10000);
    /* The raw writer refreshes and writes all it is told it has. */
    child_go(&w);
    int st = child_end(&w, msg, sizeof(msg));
    assert_not_sigbus(st, msg);
    cr_assert(undone, "the daemon did not undo the growth; log:\n%s",
              rb_log_tail(&hz));
    cr_assert_eq(hz_file_size(hz_path(&hz, "grow.dat")), (long long)(64 * KIB));
    hz_assert_ok(mmapio_refresh(m));
    cr_assert_eq(mmapio_len(m), 64 * KIB);
    close(fd);
    close(s);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}
