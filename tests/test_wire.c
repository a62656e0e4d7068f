/*
 * test_wire: the datagram and fd-passing layer (common/wire.c) on a
 * socketpair(AF_UNIX, SOCK_SEQPACKET): round trips, fds that arrive,
 * and every way a datagram is refused — with every fd it carried closed;
 * wire_recv_wait waits for a datagram; a request decoded in a pbarena
 * costs no malloc when it fits and frees what spilled when it does not.
 *
 * "Closed" is proven, not assumed: we send the write end of a pipe and
 * close our own copy; the read end reaches EOF only once the receiver's
 * copy is closed too.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmapio.pb-c.h"
#include "pbarena.h"
#include "wire.h"

static int sp[2] = { -1, -1 };

static void setup(void)
{
    signal(SIGPIPE, SIG_DFL); /* wire_send must not need SIG_IGN */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp),
                 0);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (sp[i] >= 0)
            close(sp[i]);
}

TestSuite(wire, .init = setup, .fini = teardown, .timeout = 20);

/* A pipe whose write end we will give away: returns the read end
 * (non-blocking), the write end in *w. */
static int pipe_pair(int *w)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    *w = p[1];
    return p[0];
}

/* true when every write end of the pipe is closed (read gives EOF). */
static bool pipe_at_eof(int rd)
{
    struct pollfd p = { .fd = rd, .events = POLLIN };
    if (poll(&p, 1, 2000) != 1)
        return false;
    char c;
    return read(rd, &c, 1) == 0;
}

/* Sends `n` fds in one datagram with raw sendmsg (wire_send passes one). */
static void send_fds(int sock, const void *buf, size_t len, const int *fds,
                     size_t n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    cr_assert_eq(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len,
                 "sendmsg: %s", strerror(errno));
}

Test(wire, roundtrip_request)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = (char *)"dir/data.bin";
    open.mode = MMAPIO__MODE__MODE_COPY_ON_WRITE;
    open.create = 1;
    open.size = 123456789012ull;
    req.id = 0xfeedfacecafeull;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;

    cr_assert_eq(wire_send_msg(sp[0], &req.base, -1,
                               WIRE_DEFAULT_MAX_FRAME), 0);
    uint8_t buf[512];
    int fds[WIRE_MAX_FDS];
    size_t n_fds = 99;
    long n = wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
    cr_assert_eq(n, (long)protobuf_c_message_get_packed_size(&req.base));
    cr_assert_eq(n_fds, 0);

    Mmapio__Request *got = mmapio__request__unpack(NULL, (size_t)n, buf);
    cr_assert_not_null(got);
    cr_assert_eq(got->id, 0xfeedfacecafeull);
    cr_assert_eq(got->op_case, MMAPIO__REQUEST__OP_OPEN);
    cr_assert_str_eq(got->open->path, "dir/data.bin");
    cr_assert_eq(got->open->mode, MMAPIO__MODE__MODE_COPY_ON_WRITE);
    cr_assert_eq(got->open->create, 1);
    cr_assert_eq(got->open->size, 123456789012ull);
    mmapio__request__free_unpacked(got, NULL);
}

Test(wire, datagram_boundaries_are_kept)
{
    cr_assert_eq(wire_send(sp[0], "abc", 3, -1), 0);
    cr_assert_eq(wire_send(sp[0], "defgh", 5, -1), 0);
    char buf[64];
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), 5);
    cr_assert_eq(memcmp(buf, "defgh", 5), 0);
}

Test(wire, fd_passing)
{
    int w, rd = pipe_pair(&w);
    cr_assert_eq(wire_send(sp[0], "x", 1, w), 0);
    /* The sender keeps its fd (borrowed). */
    cr_assert_neq(fcntl(w, F_GETFD), -1);
    close(w);

    char buf[16];
    int fds[WIRE_MAX_FDS] = { -1, -1, -1, -1 };
    size_t n_fds = 0;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), 1);
    cr_assert_eq(n_fds, 1);
    cr_assert_geq(fds[0], 0);
    /* close-on-exec from birth */
    cr_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    /* It is the same pipe: bytes written to it come out of our read end. */
    cr_assert_eq(write(fds[0], "hi", 2), 2);
    char got[2];
    cr_assert_eq(read(rd, got, 2), 2);
    cr_assert_eq(memcmp(got, "hi", 2), 0);

    wire_close_fds(fds, n_fds);
    cr_assert_eq(fds[0], -1, "wire_close_fds leaves -1 behind");
    cr_assert(pipe_at_eof(rd));
    close(rd);
}

Test(wire, too_large_datagram_closes_its_fd)
{
    char big[2000];
    memset(big, 'B', sizeof(big));
    int w, rd = pipe_pair(&w);
    cr_assert_eq(wire_send(sp[0], big, sizeof(big), w), 0);
    close(w);

    char buf[100];
    int fds[WIRE_MAX_FDS];
    size_t n_fds = 7;
    long n = wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
    cr_assert_eq(n, -EMSGSIZE);
    cr_assert_eq(n_fds, 0);
    cr_assert(pipe_at_eof(rd), "the fd of a refused datagram stays open");
    close(rd);
}

Test(wire, too_many_fds_all_closed)
{
    enum { N = WIRE_MAX_FDS + 1 };
    int rds[N], ws[N];
    for (int i = 0; i < N; i++)
        rds[i] = pipe_pair(&ws[i]);
    send_fds(sp[0], "m", 1, ws, N);
    for (int i = 0; i < N; i++)
        close(ws[i]);

    char buf[16];
    int fds[WIRE_MAX_FDS];
    size_t n_fds = 7;
    long n = wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
    cr_assert_eq(n, -EBADMSG);
    cr_assert_eq(n_fds, 0);
    for (int i = 0; i < N; i++) {
        cr_assert(pipe_at_eof(rds[i]), "fd %d of %d left open", i, N);
        close(rds[i]);
    }
}

Test(wire, more_fds_than_caller_accepts)
{
    int rds[2], ws[2];
    for (int i = 0; i < 2; i++)
        rds[i] = pipe_pair(&ws[i]);
    send_fds(sp[0], "m", 1, ws, 2);
    close(ws[0]);
    close(ws[1]);

    char buf[16];
    int fds[1];
    size_t n_fds = 7;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, 1, &n_fds),
                 -EBADMSG);
    cr_assert_eq(n_fds, 0);
    cr_assert(pipe_at_eof(rds[0]));
    cr_assert(pipe_at_eof(rds[1]));
    close(rds[0]);
    close(rds[1]);
}

Test(wire, empty_datagram_is_reset)
{
    cr_assert_eq(wire_send(sp[0], "", 0, -1), 0);
    char buf[16];
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), -ECONNRESET);
    cr_assert_eq(n_fds, 0);
}

Test(wire, empty_datagram_with_fd_closes_it)
{
    int w, rd = pipe_pair(&w);
    cr_assert_eq(wire_send(sp[0], "", 0, w), 0);
    close(w);
    char buf[16];
    int fds[WIRE_MAX_FDS];
    size_t n_fds = 7;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), -ECONNRESET);
    cr_assert_eq(n_fds, 0);
    cr_assert(pipe_at_eof(rd));
    close(rd);
}

Test(wire, nothing_waiting_is_eagain)
{
    char buf[16];
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), -EAGAIN);
}

Test(wire, peer_gone)
{
    close(sp[0]);
    sp[0] = -1;
    char buf[16];
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), -ECONNRESET);
    /* Sending to a closed peer is an error, not SIGPIPE (default action
     * restored in setup: a signal would kill this test). */
    cr_assert_eq(wire_send(sp[1], "x", 1, -1), -EPIPE);
}

Test(wire, send_msg_over_max_frame_sends_nothing)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    char path[300];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    open.path = path;
    req.id = 5;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;
    size_t packed = protobuf_c_message_get_packed_size(&req.base);

    cr_assert_eq(wire_send_msg(sp[0], &req.base, -1, packed - 1), -EMSGSIZE);
    char buf[1024];
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), -EAGAIN);
    /* Exactly at the limit it goes through. */
    cr_assert_eq(wire_send_msg(sp[0], &req.base, -1, packed), 0);
    cr_assert_eq(wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS,
                           &n_fds), (long)packed);
}

Test(wire, send_msg_larger_than_stack_buffer)
{
    /* wire_send_msg packs small messages on the stack, big ones on the
     * heap; both must produce the same bytes. */
    static char path[20000];
    memset(path, 'q', sizeof(path) - 1);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = path;
    req.id = 77;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;
    cr_assert_eq(wire_send_msg(sp[0], &req.base, -1,
                               WIRE_DEFAULT_MAX_FRAME), 0);
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME];
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    long n = wire_recv(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
    cr_assert_gt(n, 20000);
    Mmapio__Request *got = mmapio__request__unpack(NULL, (size_t)n, buf);
    cr_assert_not_null(got);
    cr_assert_eq(got->id, 77);
    cr_assert_eq(strlen(got->open->path), sizeof(path) - 1);
    cr_assert_eq(got->open->path[12345], 'q');
    mmapio__request__free_unpacked(got, NULL);
}

Test(wire, close_fds_skips_negative)
{
    int w, rd = pipe_pair(&w);
    int fds[3] = { -1, w, -1 };
    wire_close_fds(fds, 3);
    cr_assert_eq(fds[0], -1);
    cr_assert_eq(fds[1], -1);
    cr_assert_eq(fds[2], -1);
    cr_assert(pipe_at_eof(rd));
    close(rd);
}

Test(wire, recv_wait_waits_for_the_datagram)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        usleep(100 * 1000); /* the reader is blocked by now */
        _exit(wire_send(sp[0], "late", 4, -1) == 0 ? 0 : 1);
    }
    char buf[16];
    int fds[WIRE_MAX_FDS];
    size_t n_fds = 9;
    long n = wire_recv_wait(sp[1], buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
    cr_assert_eq(n, 4, "wire_recv_wait: %ld", n);
    cr_assert_eq(memcmp(buf, "late", 4), 0);
    cr_assert_eq(n_fds, 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Packs an Open request with a path of `len` bytes; returns its size. */
static size_t pack_open(uint8_t *buf, char *path, size_t len)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    memset(path, 'p', len);
    path[len] = '\0';
    o.path = path;
    req.id = 42;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &o;
    return mmapio__request__pack(&req, buf);
}

Test(wire, arena_decodes_without_malloc)
{
    static uint8_t buf[16384];
    static char path[8192];
    _Alignas(16) uint8_t room[1024];
    struct pbarena a;

    /* Fits: everything in the room, nothing spilled. */
    size_t len = pack_open(buf, path, 100);
    pbarena_init(&a, room, sizeof(room));
    Mmapio__Request *q = mmapio__request__unpack(&a.alloc, len, buf);
    cr_assert_not_null(q);
    cr_assert_eq(q->id, 42);
    cr_assert_str_eq(q->open->path, path);
    cr_assert_eq(a.spilled, 0, "%u pieces went to malloc", a.spilled);
    cr_assert((uint8_t *)q >= room && (uint8_t *)q < room + sizeof(room));
    pbarena_free_unpacked(&a, &q->base);

    /* Too big for the room: the path spills to malloc and is freed (ASan
     * and valgrind see a leak otherwise); the room is reused. */
    len = pack_open(buf, path, 5000);
    pbarena_init(&a, room, sizeof(room));
    q = mmapio__request__unpack(&a.alloc, len, buf);
    cr_assert_not_null(q);
    cr_assert_str_eq(q->open->path, path);
    cr_assert_geq(a.spilled, 1);
    cr_assert((uint8_t *)q >= room && (uint8_t *)q < room + sizeof(room));
    pbarena_free_unpacked(&a, &q->base);

    /* Cut short: NULL, whatever it had spilled freed. */
    pbarena_init(&a, room, sizeof(room));
    cr_assert_null(mmapio__request__unpack(&a.alloc, len - 3000, buf));
}
