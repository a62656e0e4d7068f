/*
 * test_resize: growing is seen by other holders (other processes) after
 * mmapio_refresh; shrinking while another handle holds the mapping is
 * refused with MMAPIO_E_BUSY (never a silent SIGBUS for the other holder)
 * and allowed again once that holder is gone.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

TestSuite(resize, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

Test(resize, grow_same_handle)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "g.dat", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 4090, "keepme", 6));
    hz_assert_ok(mmapio_resize(m, 3 * 4096 + 100));
    cr_assert_eq(mmapio_len(m), 3 * 4096 + 100);
    cr_assert_eq(hz_file_size(hz_path(&hz, "g.dat")), 3 * 4096 + 100);
    const uint8_t *p = mmapio_as_ptr(m);
    cr_assert_eq(memcmp(p + 4090, "keepme", 6), 0, "old bytes lost");
    for (size_t i = 4096; i < 3 * 4096 + 100; i++)
        cr_assert_eq(p[i], 0, "grown byte %zu is %d", i, p[i]);
    /* the new end is usable, one past it is not */
    hz_assert_ok(mmapio_update_region(m, 3 * 4096 + 99, "E", 1));
    hz_assert_ret(mmapio_update_region(m, 3 * 4096 + 100, "E", 1),
                  MMAPIO_E_OUT_OF_BOUNDS);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(resize, zero_size_refused)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "z.dat", 4096, &m));
    cr_assert_lt(mmapio_resize(m, 0), 0);
    cr_assert_eq(mmapio_len(m), 4096);
    cr_assert_eq(hz_file_size(hz_path(&hz, "z.dat")), 4096);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

/*
 * The child: opens `name`, reports in, and on each command from the parent:
 *   'r' refresh and check the new length and the bytes written at 10000
 *   'w' write "child" at 15000 (after a refresh)
 *   'q' unmap and leave.
 * Exit status: 0 all checks passed, else the number of the failed check.
 */
static void child(bool anonymous, const char *name, struct hz_chan *down,
                  struct hz_chan *up)
{
    mmapio_client *c;
    mmapio_map *m;
    if (mmapio_connect(NULL, &c) != MMAPIO_OK)
        _exit(10);
    int r = anonymous ? mmapio_anon_open(c, name, &m)
                      : mmapio_open_rw(c, name, &m);
    if (r != MMAPIO_OK)
        _exit(11);
    if (mmapio_len(m) != 4096)
        _exit(12);
    hz_chan_send(up, 'k');
    for (;;) {
        int cmd = hz_chan_recv(down, 20000);
        if (cmd == 'r') {
            if (mmapio_refresh(m) != MMAPIO_OK)
                _exit(20);
            if (mmapio_len(m) != 16384)
                _exit(21);
            char buf[6];
            if (mmapio_read_into(m, 10000, buf, 6) != MMAPIO_OK ||
                memcmp(buf, "parent", 6) != 0)
                _exit(22);
            if (memcmp((const char *)mmapio_as_ptr(m) + 10000, "parent", 6))
                _exit(23);
        } else if (cmd == 'w') {
            if (mmapio_update_region(m, 15000, "child", 5) != MMAPIO_OK)
                _exit(30);
        } else if (cmd == 'q') {
            mmapio_unmap(m);
            mmapio_disconnect(c);
            _exit(0);
        } else {
            _exit(40);
        }
        hz_chan_send(up, 'k');
    }
}

static void grow_seen_by_other_process(bool anonymous)
{
    const char *name = anonymous ? "grow-anon" : "grow.dat";
    mmapio_client *c = hz_client();
    mmapio_map *m;
    if (anonymous)
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
    else
        hz_assert_ok(mmapio_create_rw(c, name, 4096, &m));

    struct hz_chan down, up;
    cr_assert_eq(hz_chan_open(&down), 0);
    cr_assert_eq(hz_chan_open(&up), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_read(&down);
        hz_chan_keep_write(&up);
        child(anonymous, name, &down, &up);
    }
    hz_chan_keep_write(&down);
    hz_chan_keep_read(&up);
    cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "child did not open");

    hz_assert_ok(mmapio_resize(m, 16384));
    cr_assert_eq(mmapio_len(m), 16384);
    hz_assert_ok(mmapio_update_region(m, 10000, "parent", 6));
    hz_chan_send(&down, 'r');
    cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "child failed to refresh");
    hz_chan_send(&down, 'w');
    cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "child failed to write");
    char buf[5];
    hz_assert_ok(mmapio_read_into(m, 15000, buf, 5));
    cr_assert_eq(memcmp(buf, "child", 5), 0,
                 "the child's write past the old end is not seen");
    hz_chan_send(&down, 'q');
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFEXITED(st), "child died: status 0x%x", (unsigned)st);
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed check %d",
                 WEXITSTATUS(st));
    hz_chan_close(&down);
    hz_chan_close(&up);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(resize, grow_seen_by_other_process_file)
{
    grow_seen_by_other_process(false);
}

Test(resize, grow_seen_by_other_process_anon)
{
    grow_seen_by_other_process(true);
}

Test(resize, shrink_busy_with_other_handle_same_process)
{
    mmapio_client *c = hz_client();
    mmapio_map *a, *b;
    hz_assert_ok(mmapio_create_rw(c, "s.dat", 8192, &a));
    hz_assert_ok(mmapio_open_ro(c, "s.dat", &b));
    hz_assert_ok(mmapio_update_region(a, 8000, "tail", 4));

    hz_assert_ret(mmapio_resize(a, 4096), MMAPIO_E_BUSY);
    cr_assert_eq(mmapio_len(a), 8192);
    cr_assert_eq(hz_file_size(hz_path(&hz, "s.dat")), 8192);
    /* the other holder can still read its whole range */
    char buf[4];
    hz_assert_ok(mmapio_read_into(b, 8000, buf, 4));
    cr_assert_eq(memcmp(buf, "tail", 4), 0);

    /* once it is alone, shrinking works */
    mmapio_unmap(b);
    hz_assert_ok(mmapio_resize(a, 4096));
    cr_assert_eq(mmapio_len(a), 4096);
    cr_assert_eq(hz_file_size(hz_path(&hz, "s.dat")), 4096);
    mmapio_unmap(a);
    mmapio_disconnect(c);
}

Test(resize, shrink_busy_with_holder_in_other_process)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "sp.dat", 4096, &m));

    struct hz_chan down, up;
    cr_assert_eq(hz_chan_open(&down), 0);
    cr_assert_eq(hz_chan_open(&up), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_read(&down);
        hz_chan_keep_write(&up);
        mmapio_client *cc;
        mmapio_map *mm;
        if (mmapio_connect(NULL, &cc) || mmapio_open_rw(cc, "sp.dat", &mm))
            _exit(1);
        hz_chan_send(&up, 'k');
        hz_chan_recv(&down, 20000);
        /* the whole original range must still be there */
        volatile const uint8_t *p = mmapio_as_ptr(mm);
        uint8_t sum = 0;
        for (size_t i = 0; i < 4096; i++)
            sum = (uint8_t)(sum + p[i]);
        (void)sum;
        _exit(0); /* dies holding it: the daemon must release it */
    }
    hz_chan_keep_write(&down);
    hz_chan_keep_read(&up);
    cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "child did not open");
    hz_assert_ret(mmapio_resize(m, 2048), MMAPIO_E_BUSY);
    cr_assert_eq(mmapio_len(m), 4096);
    hz_chan_send(&down, 'g');
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "holder crashed (SIGBUS?) or failed: status 0x%x",
              (unsigned)st);

    /* its holder is gone (exited without unmapping): shrinking is allowed
     * once the daemon has noticed */
    int r;
    int64_t end = hz_now_ms() + 5000;
    while ((r = mmapio_resize(m, 2048)) == MMAPIO_E_BUSY &&
           hz_now_ms() < end)
        usleep(10000);
    cr_assert_eq(r, MMAPIO_OK, "shrink after the other holder died: %s",
                 mmapio_strerror(r));
    cr_assert_eq(mmapio_len(m), 2048);
    hz_chan_close(&down);
    hz_chan_close(&up);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(resize, grow_while_others_hold_then_they_refresh)
{
    /* Growing never needs the others' consent, and a refresh of a handle
     * whose size did not change is a harmless no-op. */
    mmapio_client *c = hz_client();
    mmapio_map *a, *b;
    hz_assert_ok(mmapio_create_rw(c, "gg.dat", 4096, &a));
    hz_assert_ok(mmapio_open_rw(c, "gg.dat", &b));
    hz_assert_ok(mmapio_refresh(b));
    cr_assert_eq(mmapio_len(b), 4096);
    hz_assert_ok(mmapio_resize(a, 65536));
    hz_assert_ok(mmapio_refresh(b));
    cr_assert_eq(mmapio_len(b), 65536);
    hz_assert_ok(mmapio_update_region(b, 65530, "bottom", 6));
    cr_assert_eq(memcmp((const char *)mmapio_as_ptr(a) + 65530, "bottom", 6),
                 0);
    mmapio_unmap(a);
    mmapio_unmap(b);
    mmapio_disconnect(c);
}

/* Waits until process pid is stopped (state T in /proc). */
static void wait_stopped(pid_t pid)
{
    cr_assert_eq(hz_wait_stopped(pid), 0, "mmapiod did not stop");
}

/* The next RESIZED event on a raw connection within timeout_ms: its size,
 * or -1. */
static int64_t next_resized(int fd, int timeout_ms)
{
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME];
    int64_t end = hz_now_ms() + timeout_ms;
    while (hz_now_ms() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)(end - hz_now_ms())) <= 0)
            break;
        int fds[WIRE_MAX_FDS];
        size_t n_fds = 0;
        long n = wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
        wire_close_fds(fds, n_fds);
        if (n < 0)
            break;
        Mmapio__ServerMessage *m =
            mmapio__server_message__unpack(NULL, (size_t)n, buf);
        if (!m)
            break;
        int64_t size = -1;
        if (m->body_case == MMAPIO__SERVER_MESSAGE__BODY_EVENT &&
            m->event->kind == MMAPIO__EVENT_KIND__EVENT_RESIZED)
            size = (int64_t)m->event->size;
        mmapio__server_message__free_unpacked(m, NULL);
        if (size >= 0)
            return size;
    }
    return -1;
}

/* A file grown outside the daemon, first noticed by another client's
 * open (its charge and reserve read the size the kernel has): the
 * holders are told, as when inotify or a request of theirs notices it. */
Test(resize, grown_outside_and_noticed_by_an_open_is_announced)
{
    const char *path = hz_path(&hz, "out.dat");
    cr_assert_eq(hz_write_file(path, "x", 1), 0);
    cr_assert_eq(truncate(path, 4096), 0);
    int a = raw_connect(hz.sock), b = raw_connect(hz.sock), fd = -1;
    cr_assert(a >= 0 && b >= 0);
    hz_assert_ok(raw_hello(a, WIRE_PROTOCOL));
    hz_assert_ok(raw_hello(b, WIRE_PROTOCOL));
    hz_assert_ok(raw_open(a, "out.dat", false, MMAPIO__MODE__MODE_READ_WRITE,
                          false, 0, &fd));
    close(fd);

    /* b's open is read before inotify's news of the growth. */
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    wait_stopped(hz.pid);
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    o.path = (char *)"out.dat";
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    q.id = 7;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    cr_assert_eq(raw_send(b, &q, -1), 0);
    usleep(20 * 1000);
    cr_assert_eq(truncate(path, 8192), 0);
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);

    Mmapio__ServerMessage *m;
    cr_assert_eq(raw_recv(b, 5000, &m, &fd), 0);
    cr_assert_eq(m->reply->error, 0);
    cr_assert_eq(m->reply->open->size, 8192);
    mmapio__server_message__free_unpacked(m, NULL);
    close(fd);
    cr_assert_eq(next_resized(a, 2000), 8192,
                 "the holder was never told the file grew");
    close(a);
    close(b);
}

/* A raw connection (the library's calls would wait for their replies)
 * holding `path` read-write: the socket, and the holder's handle. */
static int raw_holder(const char *path, uint64_t *handle)
{
    int a = raw_connect(hz.sock), fd = -1;
    cr_assert_geq(a, 0);
    hz_assert_ok(raw_hello(a, WIRE_PROTOCOL));
    Mmapio__ServerMessage *rep;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    o.path = (char *)path;
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    q.id = 1;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    cr_assert_eq(raw_send(a, &q, -1), 0);
    cr_assert_eq(raw_recv(a, 5000, &rep, &fd), 0);
    cr_assert_eq(rep->reply->error, 0);
    *handle = rep->reply->open->handle;
    mmapio__server_message__free_unpacked(rep, NULL);
    close(fd);
    return a;
}

/* Sends a Resize of handle to size (id 2) on raw connection a. */
static void raw_resize_send(int a, uint64_t handle, uint64_t size)
{
    Mmapio__Resize rs = MMAPIO__RESIZE__INIT;
    Mmapio__Request rq = MMAPIO__REQUEST__INIT;
    rs.handle = handle;
    rs.size = size;
    rq.id = 2;
    rq.op_case = MMAPIO__REQUEST__OP_RESIZE;
    rq.resize = &rs;
    cr_assert_eq(raw_send(a, &rq, -1), 0);
}

/*
 * A holder whose process exits just before another holder's shrink is
 * not counted, even when the daemon has not yet come to its hang-up: the
 * shrink is read first (the daemon is stopped while it is sent and the
 * holder dies, so the loop finds the request ahead of the hang-up), and
 * the daemon looks at the other holders' sockets before refusing.
 */
Test(resize, shrink_right_after_the_other_holder_exits)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "gone.dat", 4096, &m));
    struct hz_chan up;
    cr_assert_eq(hz_chan_open(&up), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(&up);
        mmapio_client *cc;
        mmapio_map *mm;
        if (mmapio_connect(NULL, &cc) || mmapio_open_rw(cc, "gone.dat", &mm))
            _exit(1);
        hz_chan_send(&up, 'k');
        pause(); /* until killed, holding it */
        _exit(0);
    }
    hz_chan_keep_read(&up);
    cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "child did not open");

    /* The shrink request, raw, on a connection of this process's own
     * that holds the file too (the library's would wait for its reply). */
    uint64_t handle;
    int a = raw_holder("gone.dat", &handle);
    Mmapio__ServerMessage *rep;
    mmapio_unmap(m); /* the raw connection and the child: two holders */
    hz_assert_ok(mmapio_ping(c)); /* the release is read */

    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    wait_stopped(hz.pid);
    raw_resize_send(a, handle, 2048);
    usleep(20 * 1000);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int st = hz_wait_child(pid, 20000);
    cr_assert(WIFSIGNALED(st), "holder status 0x%x", (unsigned)st);
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);

    cr_assert_eq(raw_recv(a, 5000, &rep, NULL), 0);
    cr_assert_eq(rep->reply->error, 0, "shrink right after the other "
                 "holder exited: error %d (%s)", rep->reply->error,
                 rep->reply->message ? rep->reply->message : "");
    mmapio__server_message__free_unpacked(rep, NULL);
    struct stat sb;
    char path[512];
    snprintf(path, sizeof(path), "%s/gone.dat", hz.root);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_size, 2048);
    close(a);
    hz_chan_close(&up);
    mmapio_disconnect(c);
}

/*
 * The client whose truncate is being served is never taken for gone,
 * even when it hung up (shut its writing side) right after sending it:
 * it gets its answer (BUSY: it holds the file itself), and the daemon
 * lives on (under ASan a use after free, were it ended mid-request).
 */
Test(resize, a_truncating_client_that_hung_up_is_answered)
{
    int a = raw_connect(hz.sock), fd = -1;
    cr_assert_geq(a, 0);
    hz_assert_ok(raw_hello(a, WIRE_PROTOCOL));
    hz_assert_ok(raw_open(a, "hup.dat", false, MMAPIO__MODE__MODE_READ_WRITE,
                          true, 4096, &fd));
    close(fd);
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    o.path = (char *)"hup.dat";
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    o.create = true;
    o.truncate = true;
    o.size = 2048;
    q.id = 9;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    wait_stopped(hz.pid);
    cr_assert_eq(raw_send(a, &q, -1), 0);
    cr_assert_eq(shutdown(a, SHUT_WR), 0);
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);
    Mmapio__ServerMessage *rep;
    cr_assert_eq(raw_recv(a, 5000, &rep, &fd), 0, "no answer");
    cr_assert_eq(rep->reply->error, MMAPIO_E_BUSY, "error %d",
                 rep->reply->error);
    mmapio__server_message__free_unpacked(rep, NULL);
    close(a);
    mmapio_client *c = hz_client();
    hz_assert_ok(mmapio_ping(c));
    mmapio_disconnect(c);
}

/*
 * Many holders exit at once, each mid-write (cells left in its ring),
 * holding the file three times and watching it, while the daemon is
 * stopped; the shrink that comes first ends from inside the request
 * those that left nothing unread (their rings drained, watchers told,
 * holders released, the walk over the file's holders restarted after
 * each). Those whose last wake-up notice is still unread are served in
 * their turn, so the shrink may be refused once; the daemon lives on
 * (under ASan: no use after free) and grants it once they are.
 */
#define EXITERS 24
#define EXITERS_WRAPPED 8 /* under valgrind: 24 flat out starve all */
Test(resize, shrink_after_many_writing_watching_holders_exit)
{
    mmapio_client *c = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_create_rw(c, "many.dat", 65536, &m));
    struct hz_chan up;
    cr_assert_eq(hz_chan_open(&up), 0);
    const int exiters = hz_wrapped() ? EXITERS_WRAPPED : EXITERS;
    pid_t pids[EXITERS];
    for (int i = 0; i < exiters; i++) {
        pids[i] = hz_fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0) {
            hz_chan_keep_write(&up);
            mmapio_client *cc;
            mmapio_map *mm[3];
            mmapio_watcher *w;
            if (mmapio_connect(NULL, &cc))
                _exit(1);
            for (int k = 0; k < 3; k++)
                if (mmapio_open_rw(cc, "many.dat", &mm[k]))
                    _exit(2);
            if (mmapio_watch(mm[0], hz_count_event, NULL, &w))
                _exit(3);
            uint8_t rec[64] = { (uint8_t)i };
            hz_chan_send(&up, 'k');
            for (uint64_t n = 0;; n++) /* until killed */
                (void)mmapio_update_region(mm[n % 3], (n % 1000) * 64, rec,
                                           sizeof(rec));
        }
    }
    hz_chan_keep_read(&up);
    for (int i = 0; i < exiters; i++)
        cr_assert_eq(hz_chan_recv(&up, 20000), 'k', "child did not open");

    /* The shrink, raw, on a connection holding the file too. */
    uint64_t handle;
    int a = raw_holder("many.dat", &handle);
    Mmapio__ServerMessage *rep;
    mmapio_unmap(m);
    hz_assert_ok(mmapio_ping(c));

    cr_assert_eq(kill(hz.pid, SIGSTOP), 0);
    wait_stopped(hz.pid);
    raw_resize_send(a, handle, 4096);
    usleep(20 * 1000);
    for (int i = 0; i < exiters; i++)
        cr_assert_eq(kill(pids[i], SIGKILL), 0);
    for (int i = 0; i < exiters; i++)
        cr_assert(WIFSIGNALED(hz_wait_child(pids[i], 20000)));
    cr_assert_eq(kill(hz.pid, SIGCONT), 0);

    int err = -1;
    for (int tries = 0; err != 0 && tries < 1000; tries++) {
        if (tries > 0) {
            usleep(10 * 1000);
            raw_resize_send(a, handle, 4096);
        }
        cr_assert_eq(raw_recv(a, 20000, &rep, NULL), 0, "no answer");
        err = rep->reply->error;
        cr_assert(err == 0 || err == MMAPIO_E_BUSY, "shrink: error %d (%s)",
                  err, rep->reply->message ? rep->reply->message : "");
        mmapio__server_message__free_unpacked(rep, NULL);
    }
    cr_assert_eq(err, 0, "the shrink stays refused");
    close(a);
    hz_chan_close(&up);
    hz_assert_ok(mmapio_ping(c));
    mmapio_disconnect(c);
}
