/*
 * test_release: mmapio_unmap's lazy release (common/wring.h).
 *
 * Right after a request the daemon has promised to sweep the connection's
 * ring, so an unmap then sends nothing (a seccomp filter that traps every
 * send shows it). Yet the holder is released in the daemon in bounded
 * time: by the sweep when the client goes idle right after unmapping, by
 * the knock of a release made after the promise ran out, when the client
 * exits, and at once for anyone who counts the holders (another client's
 * shrink or truncate is never refused because of a holder already let go;
 * nor a uid's next open for its budget). A hostile client's release cells
 * release its own holders only.
 * Where no request may read the rings first, the release is seen in the
 * daemon's fd count (the memfd of a deleted anonymous mapping).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>

#include "harness.h"
#include "wire.h"
#include "wring.h"

TestSuite(release, .init = hz_setup, .fini = hz_teardown, .timeout = 120);

#define SIZE 8192
/* How long a release may take to reach the daemon before the test calls
 * it lost: far above the sweep's WRING_LAZY_MS, for a loaded machine. */
#define BOUND_MS 10000

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Holders of path as the daemon knows them, or -1. */
static int holders(mmapio_client *c, const char *path)
{
    mmapio_map_info *i;
    if (mmapio_admin_stat(c, path, false, &i) != MMAPIO_OK)
        return -1;
    int n = (int)i->holders;
    mmapio_map_info_free(i, 1);
    return n;
}

/* Waits until the daemon counts `want` holders of path; the last count. */
static int holders_settle(mmapio_client *c, const char *path, int want)
{
    int n = -1;
    for (int t = 0; t < BOUND_MS / 10; t++) {
        if ((n = holders(c, path)) == want)
            break;
        sleep_ms(10);
    }
    return n;
}

static void make_file(const char *path)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    cr_assert_eq(mmapio_create_rw(c, path, SIZE, &m), MMAPIO_OK);
    memset(mmapio_as_mut_ptr(m), 'r', SIZE);
    cr_assert_eq(mmapio_unmap(m), MMAPIO_OK);
    mmapio_disconnect(c);
}

/* ---- an unmap right after a request sends nothing ---------------------- */

static volatile long trapped;

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    trapped = si->si_syscall;
    syscall(SYS_exit_group, 99);
}

/* Every way of sending on a socket traps; the rest is allowed. */
static int forbid_sends(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendmsg, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendto, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendmmsg, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
    if (sigaction(SIGSYS, &sa, NULL) < 0 ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -1;
    return 0;
}

/* A child: opens, asks something (the daemon's promise), unmaps with
 * sends forbidden. 0 when the unmap sent nothing. */
static int quiet_unmap_child(void)
{
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(NULL, &c) || mmapio_open_ro(c, "q.dat", &m))
        return 1;
    if (mmapio_ping(c) || forbid_sends() < 0)
        return 2;
    return mmapio_unmap(m) == MMAPIO_OK ? 0 : 3;
}

Test(release, unmap_after_a_request_sends_nothing)
{
    make_file("q.dat");
    /* The promise lasts WRING_LAZY_MS at least: a child descheduled for
     * longer between its ping and its unmap knocks, rightly; so a few
     * tries, of which one quiet unmap shows the path. */
    int status = -1;
    for (int i = 0; i < 20 && status != 0; i++) {
        pid_t pid = hz_fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            _exit(quiet_unmap_child());
        status = hz_wait_child(pid, 30000);
        cr_assert(WIFEXITED(status), "child died: status %#x", status);
        cr_assert(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 99,
                  "child failed: %d", WEXITSTATUS(status));
    }
    cr_assert_eq(status, 0, "every unmap sent a datagram");
    /* And those releases all reached the daemon (the children are gone). */
    mmapio_client *c = hz_client();
    cr_assert_eq(holders_settle(c, "q.dat", 0), 0);
    mmapio_disconnect(c);
}

/* ---- released in bounded time ------------------------------------------ */

/* A deleted anonymous mapping that only `m` holds: the daemon keeps its
 * memfd until that holder goes, so the daemon's fd count shows the
 * release without a request (any request would read the rings first).
 * Returns the count while it is held. */
static int held_memfd(mmapio_client *c, mmapio_map **m)
{
    cr_assert_eq(mmapio_anon_create(c, "gone", 4096, m), MMAPIO_OK);
    cr_assert_eq(mmapio_anon_delete(c, "gone"), MMAPIO_OK);
    cr_assert_eq(mmapio_ping(c), MMAPIO_OK);
    return hz_fd_count(hz.pid);
}

Test(release, idle_client_release_is_swept)
{
    mmapio_client *a = hz_client();
    mmapio_map *m;
    int held = held_memfd(a, &m);
    cr_assert_eq(mmapio_ping(a), MMAPIO_OK);
    cr_assert_eq(mmapio_unmap(m), MMAPIO_OK);
    /* a says nothing more: the sweep alone can release it. */
    int n = hz_fd_count_settle(hz.pid, held - 1, BOUND_MS);
    cr_assert_leq(n, held - 1, "a released holder stayed in the daemon "
                  "(%d fds, %d while held)", n, held);
    mmapio_disconnect(a);
}

Test(release, release_after_a_quiet_spell_knocks)
{
    mmapio_client *a = hz_client();
    mmapio_map *m;
    int held = held_memfd(a, &m);
    sleep_ms(300); /* a's requests are long past: no promise stands */
    cr_assert_eq(mmapio_unmap(m), MMAPIO_OK);
    int n = hz_fd_count_settle(hz.pid, held - 1, BOUND_MS);
    cr_assert_leq(n, held - 1, "a release after a quiet spell was not "
                  "heard (%d fds, %d while held)", n, held);
    mmapio_disconnect(a);
}

Test(release, exiting_client_leaves_no_holder)
{
    make_file("x.dat");
    for (int how = 0; how < 2; how++) {
        pid_t pid = hz_fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            mmapio_client *c;
            mmapio_map *m[8];
            if (mmapio_connect(NULL, &c))
                _exit(1);
            for (int i = 0; i < 8; i++)
                if (mmapio_open_ro(c, "x.dat", &m[i]))
                    _exit(2);
            if (mmapio_ping(c))
                _exit(3);
            for (int i = 0; i < 8; i++)
                mmapio_unmap(m[i]);
            if (how)
                mmapio_disconnect(c);
            _exit(0);
        }
        int status = hz_wait_child(pid, 30000);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child: status %#x", status);
        mmapio_client *b = hz_client();
        cr_assert_eq(holders_settle(b, "x.dat", 0), 0);
        mmapio_disconnect(b);
    }
    cr_assert(hz_alive(&hz));
}

/* ---- at once for whoever counts holders -------------------------------- */

Test(release, another_client_may_shrink_at_once)
{
    make_file("s.dat");
    mmapio_client *a = hz_client(), *b = hz_client();
    mmapio_map *ma, *mb;
    cr_assert_eq(mmapio_open_rw(b, "s.dat", &mb), MMAPIO_OK);
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(mmapio_open_ro(a, "s.dat", &ma), MMAPIO_OK);
        cr_assert_eq(mmapio_ping(a), MMAPIO_OK);
        cr_assert_eq(mmapio_unmap(ma), MMAPIO_OK);
        /* b's shrink counts holders: a's release must be done by then. */
        int r = mmapio_resize(mb, SIZE / 2);
        cr_assert_eq(r, MMAPIO_OK, "cycle %d: shrink: %s (%s)", i,
                     mmapio_strerror(r), mmapio_last_error());
        cr_assert_eq(mmapio_resize(mb, SIZE), MMAPIO_OK);
    }
    cr_assert_eq(mmapio_unmap(mb), MMAPIO_OK);
    mmapio_disconnect(b);
    mmapio_disconnect(a);
}

/* The same with more holders than the daemon has sessions (a holds the
 * file three times): the rings are then settled by session, not by
 * holder (ringdrain_settle), and a's releases are still done first. */
Test(release, another_client_holding_many_times_may_shrink_at_once)
{
    make_file("sm.dat");
    mmapio_client *a = hz_client(), *b = hz_client();
    mmapio_map *ma[3], *mb;
    cr_assert_eq(mmapio_open_rw(b, "sm.dat", &mb), MMAPIO_OK);
    for (int i = 0; i < 50; i++) {
        for (int k = 0; k < 3; k++)
            cr_assert_eq(mmapio_open_ro(a, "sm.dat", &ma[k]), MMAPIO_OK);
        cr_assert_eq(mmapio_ping(a), MMAPIO_OK);
        for (int k = 0; k < 3; k++)
            cr_assert_eq(mmapio_unmap(ma[k]), MMAPIO_OK);
        int r = mmapio_resize(mb, SIZE / 2);
        cr_assert_eq(r, MMAPIO_OK, "cycle %d: shrink: %s (%s)", i,
                     mmapio_strerror(r), mmapio_last_error());
        cr_assert_eq(mmapio_resize(mb, SIZE), MMAPIO_OK);
    }
    cr_assert_eq(mmapio_unmap(mb), MMAPIO_OK);
    mmapio_disconnect(b);
    mmapio_disconnect(a);
}

Test(release, another_client_may_truncate_at_once)
{
    make_file("t.dat");
    mmapio_client *a = hz_client(), *b = hz_client();
    mmapio_options o;
    mmapio_options_init(&o);
    o.truncate = true;
    o.size = 4096;
    for (int i = 0; i < 50; i++) {
        mmapio_map *ma, *mb;
        cr_assert_eq(mmapio_open_ro(a, "t.dat", &ma), MMAPIO_OK);
        cr_assert_eq(mmapio_ping(a), MMAPIO_OK);
        cr_assert_eq(mmapio_unmap(ma), MMAPIO_OK);
        o.size = 4096u * (uint64_t)(1 + i % 3);
        int r = mmapio_open(b, "t.dat", &o, &mb);
        cr_assert_eq(r, MMAPIO_OK, "cycle %d: truncate: %s (%s)", i,
                     mmapio_strerror(r), mmapio_last_error());
        cr_assert_eq(mmapio_unmap(mb), MMAPIO_OK);
    }
    mmapio_disconnect(b);
    mmapio_disconnect(a);
}

/* ---- a hostile ring ------------------------------------------------------ */

/* One request on a raw connection, its reply: the error (0: fine), and
 * with `handle` the open's handle. */
static int raw_call(int fd, Mmapio__Request *req, uint64_t id, uint64_t *handle)
{
    req->id = id;
    cr_assert_eq(raw_send(fd, req, -1), 0);
    Mmapio__ServerMessage *sm;
    int gfd = -1;
    cr_assert_eq(raw_recv(fd, 5000, &sm, &gfd), 0);
    cr_assert(sm->reply, "no reply");
    int err = sm->reply->error;
    if (handle && sm->reply->open)
        *handle = sm->reply->open->handle;
    mmapio__server_message__free_unpacked(sm, NULL);
    if (gfd >= 0)
        close(gfd);
    return err;
}

Test(release, hostile_ring_releases_only_its_own)
{
    make_file("v.dat");
    mmapio_client *vc = hz_client(), *b = hz_client();
    mmapio_map *vm;
    cr_assert_eq(mmapio_open_ro(vc, "v.dat", &vm), MMAPIO_OK);

    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_hello(fd, WIRE_PROTOCOL), 0);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = "v.dat";
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &o;
    uint64_t mine = 0;
    cr_assert_eq(raw_call(fd, &req, 2, &mine), 0);
    Mmapio__WriteRing wr = MMAPIO__WRITE_RING__INIT;
    req.op_case = MMAPIO__REQUEST__OP_WRITE_RING;
    req.write_ring = &wr;
    req.id = 3;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *sm;
    int rfd = -1;
    cr_assert_eq(raw_recv(fd, 5000, &sm, &rfd), 0);
    cr_assert(sm->reply->error == 0 && sm->reply->write_ring &&
              sm->reply->write_ring->releases && rfd >= 0, "no ring");
    mmapio__server_message__free_unpacked(sm, NULL);
    struct wring_hdr *r = mmap(NULL, WRING_SIZE, PROT_READ | PROT_WRITE,
                               MAP_SHARED, rfd, 0);
    cr_assert_neq(r, MAP_FAILED);
    close(rfd);
    cr_assert_eq(holders(b, "v.dat"), 2);

    /* Releases of every handle there is, its own among them, and of
     * some that never were; each twice. */
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t h = 0; h < mine + 64; h++)
            while (wring_release(r, h) == WRING_DROPPED) {
                Mmapio__Ping ping = MMAPIO__PING__INIT;
                req.op_case = MMAPIO__REQUEST__OP_PING;
                req.ping = &ping;
                cr_assert_eq(raw_call(fd, &req, 4, NULL), 0);
            }
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    cr_assert_eq(raw_call(fd, &req, 5, NULL), 0); /* the ring is read first */

    /* Its own holder went; the victim's stayed, and still works. */
    cr_assert_eq(holders(b, "v.dat"), 1);
    cr_assert_eq(((const volatile char *)mmapio_as_ptr(vm))[0], 'r');
    cr_assert_eq(mmapio_unmap(vm), MMAPIO_OK);
    cr_assert_eq(holders(b, "v.dat"), 0);
    munmap(r, WRING_SIZE);
    close(fd);
    mmapio_disconnect(b);
    mmapio_disconnect(vc);
    cr_assert(hz_alive(&hz));
}

/* ---- a uid's budget is not held by releases recorded in a ring --------- */

#define BUDGET 4

/* The daemon with room for BUDGET mappings per uid. */
static void setup_budget(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(hz_init(&hz), 0);
    char n[16];
    snprintf(n, sizeof(n), "%d", BUDGET);
    const char *args[] = { "--socket", hz.sock, "--root", hz.root,
                           "--max-mappings-per-uid", n, NULL };
    pid_t pid = hz_spawn(args, -1, -1);
    cr_assert_geq(pid, 0);
    cr_assert_eq(hz_wait_ready(hz.sock, pid, 10000), 0);
    hz.pid = pid;
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(release_budget, .init = setup_budget, .fini = hz_teardown,
          .timeout = 120);

Test(release_budget, another_connection_gets_the_budget_back_at_once)
{
    char name[BUDGET][16];
    for (int i = 0; i < BUDGET; i++) {
        snprintf(name[i], sizeof(name[i]), "b%d.dat", i);
        make_file(name[i]);
    }
    make_file("extra.dat");
    mmapio_client *a = hz_client(), *b = hz_client();
    mmapio_map *m[BUDGET], *x;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < BUDGET; i++)
            cr_assert_eq(mmapio_open_ro(a, name[i], &m[i]), MMAPIO_OK);
        cr_assert_eq(mmapio_ping(a), MMAPIO_OK);
        for (int i = 0; i < BUDGET; i++)
            cr_assert_eq(mmapio_unmap(m[i]), MMAPIO_OK);
        /* a's releases may sit in its ring: b's open of a fifth mapping
         * must not find the uid's budget still spent on them. */
        int r = mmapio_open_ro(b, "extra.dat", &x);
        cr_assert_eq(r, MMAPIO_OK, "round %d: %s (%s)", round,
                     mmapio_strerror(r), mmapio_last_error());
        cr_assert_eq(mmapio_unmap(x), MMAPIO_OK);
        cr_assert_eq(mmapio_ping(b), MMAPIO_OK); /* b's release is read */
    }
    mmapio_disconnect(b);
    mmapio_disconnect(a);
}
