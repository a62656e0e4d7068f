/*
 * fuzz_request: libFuzzer target over the daemon's handling of datagrams
 * from one client: decoding, validation and dispatch (ops_handle) on a real
 * connection of a real (in-process) daemon state, with a real data root.
 *
 * Input: a sequence of datagrams, each a 2-byte little-endian length and
 * that many bytes. The first input byte chooses whether a valid hello is
 * sent first (so deeper operations are reachable), whether datagrams
 * claim to carry fds, and whether the peer is root or uid/gid 65534 (the
 * session's credentials are the daemon's only idea of who is asking, so
 * overwriting them reaches what an ordinary user reaches: the user-space
 * path walk of resolve.c, the permission checks, the quotas). Replies are
 * drained and any fd in them closed; at the end the connection is closed,
 * anonymous mappings are deleted, the flushes the input caused are waited
 * for and the data root is emptied, so every input starts from the same
 * state.
 *
 * Speed: the daemon, its loop and its workers are made once; an input
 * costs a socketpair and its own requests. The data root is on tmpfs
 * (/dev/shm when there is one), where fdatasync costs nothing. An input
 * leaves no allocation behind (its flushes are waited for), so libFuzzer
 * never runs its costly leak check unless something really leaks.
 */
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "access.h"

#include "conn.h"
#include "daemon.h"
#include "ops.h"
#include "wire.h"

#define FUZZ_HELLO 1
#define FUZZ_FDS 2
#define FUZZ_NOBODY 4
#define NOBODY 65534

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon d;
static char top[64];           /* the socket and the data root */
static int pair[2];            /* [0] the daemon's end, [1] the client's */
static struct event *ev_wait;  /* bounds the wait for flushes */

static int remove_one(const char *path, const struct stat *st, int type,
                      struct FTW *ftw)
{
    if (ftw->level > 0)
        remove(path);
    return 0;
}

/* On tmpfs a directory's size counts its entries: the empty root's size
 * says when there is nothing to remove (one stat instead of a walk). */
static off_t empty_size = -1;

/* Empties the data root (depth first, no symlink followed). */
static void empty_root(void)
{
    struct stat st;
    if (empty_size >= 0 && stat(d.cfg.root, &st) == 0 && st.st_size == empty_size)
        return;
    nftw(d.cfg.root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void learn_empty_size(void)
{
    struct statfs fs;
    struct stat st;
    if (statfs(d.cfg.root, &fs) == 0 && fs.f_type == TMPFS_MAGIC &&
        stat(d.cfg.root, &st) == 0)
        empty_size = st.st_size;
}

static void remove_top(void)
{
    nftw(top, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    rmdir(top);
}

static void make_top(void)
{
    snprintf(top, sizeof(top), "/dev/shm/mmapio-fuzz-XXXXXX");
    if (mkdtemp(top))
        return;
    snprintf(top, sizeof(top), "/tmp/mmapio-fuzz-XXXXXX");
    if (!mkdtemp(top))
        abort();
}

static void on_wait(evutil_socket_t fd, short what, void *arg)
{
}

/* The whole daemon, assembled as mmapiod does, on a temporary data root
 * and socket; the fuzzer's connections are dups of the daemon's end of
 * one socketpair (pair[0]), whose other end the fuzzer drains. */
static void setup(void)
{
    char err[256];
    make_top();
    atexit(remove_top);
    if (config_defaults(&d.cfg) < 0)
        abort();
    snprintf(d.cfg.root, sizeof(d.cfg.root), "%s/root", top);
    snprintf(d.cfg.socket_path, sizeof(d.cfg.socket_path), "%s/sock", top);
    /* Writable by nobody too, so that its creates get past the root. */
    if (mkdir(d.cfg.root, 0777) < 0 || chmod(d.cfg.root, 0777) < 0)
        abort();
    learn_empty_size();
    d.cfg.max_map_size = 1 << 20; /* no input may fill the disk */
    d.cfg.max_mappings = 4096;
    d.cfg.flush_threads = 1;
    if (daemon_init(&d, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz setup failed: %s\n", err);
        abort();
    }
    ev_wait = evtimer_new(d.base, on_wait, NULL);
    if (!ev_wait ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0)
        abort();
}

/* Mapping objects alive: control slots in use. */
static uint32_t live_mappings(void)
{
    const struct ctl *c = &d.reg.env.ctl;
    return c->next_unused - c->n_free;
}

/* Runs the loop until every mapping the input made is freed (a flush on
 * a worker holds its mapping until the loop hears it ended), 100 ms at
 * most: then something else holds one, and the next input sees it. */
static void settle(void)
{
    static uint32_t stuck; /* held by something else: not waited for again */
    struct timeval tv = { 0, 100 * 1000 };
    event_base_loop(d.base, EVLOOP_NONBLOCK);
    if (live_mappings() <= stuck)
        return;
    evtimer_add(ev_wait, &tv);
    while (live_mappings() > stuck && evtimer_pending(ev_wait, NULL))
        event_base_loop(d.base, EVLOOP_ONCE);
    if (live_mappings() > stuck && !evtimer_pending(ev_wait, NULL))
        stuck = live_mappings();
    evtimer_del(ev_wait);
}

static void drain(int fd)
{
    uint8_t buf[70000];
    int fds[WIRE_MAX_FDS];
    size_t n;
    while (wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n) > 0)
        wire_close_fds(fds, n);
}

static void forget_anon(struct mapping *m, void *arg)
{
    if (m->kind == MAPPING_ANON)
        registry_remove(arg, m);
}

static void send_hello(struct conn *c)
{
    Mmapio__Hello h = MMAPIO__HELLO__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    uint8_t buf[64];
    h.protocol = WIRE_PROTOCOL;
    q.id = 1;
    q.op_case = MMAPIO__REQUEST__OP_HELLO;
    q.hello = &h;
    size_t n = mmapio__request__pack(&q, buf);
    ops_handle(&c->s, buf, n, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct conn *c;

    if (!ready++)
        setup();
    /* conn_close closes its fd: a dup, the pair stays (cheaper than a new
     * socketpair per input; the libevent event goes before the fd). */
    int fd = size < 1 ? -1 : fcntl(pair[0], F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return 0;
    uint8_t flags = data[0];
    data++, size--;
    if (conn_new(&d.server.conns, fd, &c) < 0)
        return 0;
    conn_ref(c);
    if (flags & FUZZ_NOBODY)
        c->s.cred = (struct peer_cred){ .pid = c->s.cred.pid, .uid = NOBODY,
                                        .gid = NOBODY };
    if (flags & FUZZ_HELLO)
        send_hello(c);
    drain(pair[1]);
    while (size >= 2 && !c->closed && !c->failed) {
        size_t len = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2, size -= 2;
        if (len > size)
            len = size;
        ops_handle(&c->s, data, len, (flags & FUZZ_FDS) && (len & 1));
        data += len, size -= len;
        /* Replies wait in the socket; read them once the daemon had to
         * queue (the socket is full), and at the end. */
        if (c->n_out > 0)
            drain(pair[1]);
        event_base_loop(d.base, EVLOOP_NONBLOCK);
    }
    conn_close(c);
    conn_unref(c);
    drain(pair[1]);
    registry_foreach(&d.reg, forget_anon, &d.reg);
    settle();
    empty_root();
    return 0;
}
