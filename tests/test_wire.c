/*
 * test_wire: the datagram and fd-passing layer (common/wire.c) on a
 * socketpair(AF_UNIX, SOCK_SEQPACKET): round trips, fds that arrive,
 * and every way a datagram is refused — with every fd it carried closed;
 * wire_recv_wait waits for a datagram; a request decoded in a pbarena
 * costs no malloc when it fits and frees what spilled when it does not;
 * the ping and its reply packed by hand are protobuf-c's bytes, and what
 * their recognisers accept protobuf-c reads as the same message.
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

/* ---- the ping round trip by hand (wire_pack_ping, wire_is_ok...) ---- */

static const uint64_t quick_ids[] = {
    0, 1, 2, 127, 128, 300, 16383, 16384, 0xffffffffull, 0x100000000ull,
    (1ull << 56) - 1, 1ull << 56, (1ull << 63) - 1, 1ull << 63, UINT64_MAX,
};

/* Packs exactly what protobuf-c packs; recognised back for every id of
 * 63 bits (a longer one is left to the decoder). */
Test(wire, quick_ping_packs_as_protobuf)
{
    for (size_t i = 0; i < sizeof(quick_ids) / sizeof(quick_ids[0]); i++) {
        uint64_t id = quick_ids[i], got;
        Mmapio__Ping ping = MMAPIO__PING__INIT;
        Mmapio__Request req = MMAPIO__REQUEST__INIT;
        req.id = id;
        req.op_case = MMAPIO__REQUEST__OP_PING;
        req.ping = &ping;
        uint8_t pb[64], quick[WIRE_QUICK_MAX];
        size_t n = mmapio__request__pack(&req, pb);
        cr_assert_eq(wire_pack_ping(id, quick), n, "id %llu",
                     (unsigned long long)id);
        cr_assert_arr_eq(quick, pb, n);
        cr_assert_eq(wire_is_ping(pb, n, &got), id < (1ull << 63));
        if (id < (1ull << 63))
            cr_assert_eq(got, id);
        cr_assert_not(wire_is_ok(pb, n, &got));

        Mmapio__Reply r = MMAPIO__REPLY__INIT;
        Mmapio__ServerMessage sm = MMAPIO__SERVER_MESSAGE__INIT;
        r.id = id;
        sm.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
        sm.reply = &r;
        n = mmapio__server_message__pack(&sm, pb);
        cr_assert_eq(wire_pack_ok(id, quick), n);
        cr_assert_arr_eq(quick, pb, n);
        cr_assert_eq(wire_is_ok(pb, n, &got), id < (1ull << 63));
        if (id < (1ull << 63))
            cr_assert_eq(got, id);
        cr_assert_not(wire_is_ping(pb, n, &got));
    }
}

/* What the recognisers accept, protobuf-c decodes to the same message
 * with nothing else in it: every byte string of up to 4 bytes over an
 * alphabet of the bytes that matter, and random ones up to 14. */
static void check_quick(const uint8_t *b, size_t n)
{
    uint64_t id;
    if (wire_is_ping(b, n, &id)) {
        Mmapio__Request *q = mmapio__request__unpack(NULL, n, b);
        cr_assert_not_null(q);
        cr_assert_eq(q->op_case, MMAPIO__REQUEST__OP_PING);
        cr_assert_eq(q->id, id);
        cr_assert_eq(q->base.n_unknown_fields, 0);
        cr_assert_eq(q->ping->base.n_unknown_fields, 0);
        mmapio__request__free_unpacked(q, NULL);
    }
    if (wire_is_ok(b, n, &id)) {
        Mmapio__ServerMessage *m = mmapio__server_message__unpack(NULL, n, b);
        cr_assert_not_null(m);
        cr_assert_eq(m->body_case, MMAPIO__SERVER_MESSAGE__BODY_REPLY);
        const Mmapio__Reply *r = m->reply;
        cr_assert_eq(r->id, id);
        cr_assert(r->error == 0 && (!r->message || !*r->message) &&
                  r->result_case == MMAPIO__REPLY__RESULT__NOT_SET);
        cr_assert_eq(m->base.n_unknown_fields + r->base.n_unknown_fields, 0);
        mmapio__server_message__free_unpacked(m, NULL);
    }
}

Test(wire, quick_recognisers_accept_only_the_message)
{
    static const uint8_t alpha[] = { 0x00, 0x01, 0x02, 0x03, 0x08, 0x0a,
                                     0x10, 0x1a, 0x22, 0x7f, 0x80, 0x81, 0xff };
    const size_t k = sizeof(alpha);
    uint8_t b[16];
    size_t accepted = 0;
    for (size_t len = 0; len <= 4; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= k;
        for (size_t x = 0; x < total; x++) {
            size_t y = x;
            for (size_t i = 0; i < len; i++, y /= k)
                b[i] = alpha[y % k];
            uint64_t id;
            accepted += wire_is_ping(b, len, &id) + wire_is_ok(b, len, &id);
            check_quick(b, len);
        }
    }
    cr_assert_gt(accepted, 0);
    srand(12);
    for (int t = 0; t < 200000; t++) {
        size_t len = (size_t)(rand() % 15);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)(rand() % 4 ? alpha[rand() % (int)k] : rand());
        /* often a valid start, so the checks reach the id's varint */
        if (len > 0 && rand() % 2)
            b[0] = rand() % 2 ? 0x08 : 0x0a;
        check_quick(b, len);
    }
}

/* ---- the open round trip by hand (wire_pack_open, wire_is_grant...) ---- */

static void open_to_pb(uint64_t id, const struct wire_open *o, char *path,
                       Mmapio__Request *req, Mmapio__Open *op,
                       Mmapio__FlushPolicy *pol, Mmapio__Owner *own)
{
    mmapio__request__init(req);
    mmapio__open__init(op);
    mmapio__flush_policy__init(pol);
    mmapio__owner__init(own);
    memcpy(path, o->path, o->path_len);
    path[o->path_len] = 0;
    op->path = path;
    op->anonymous = o->anonymous;
    op->mode = (Mmapio__Mode)o->mode;
    op->create = o->create;
    op->truncate = o->truncate;
    op->exclusive = o->exclusive;
    op->size = o->size;
    pol->kind = (Mmapio__FlushKind)o->policy_kind;
    pol->value = o->policy_value;
    op->policy = pol;
    op->perm = o->perm;
    own->uid = o->owner_uid;
    op->owner = o->has_owner ? own : NULL;
    op->huge_pages = o->huge_pages;
    req->id = id;
    req->op_case = MMAPIO__REQUEST__OP_OPEN;
    req->open = op;
}

static void grant_to_pb(uint64_t id, const struct wire_grant *g,
                        Mmapio__ServerMessage *sm, Mmapio__Reply *r,
                        Mmapio__OpenReply *o, Mmapio__FlushPolicy *pol)
{
    mmapio__server_message__init(sm);
    mmapio__reply__init(r);
    mmapio__open_reply__init(o);
    mmapio__flush_policy__init(pol);
    o->handle = g->handle;
    o->map_id = g->map_id;
    o->size = g->size;
    pol->kind = (Mmapio__FlushKind)g->policy_kind;
    pol->value = g->policy_value;
    o->policy = pol;
    o->ctl_slot = g->ctl_slot;
    o->arena = g->arena;
    o->offset = g->offset;
    r->id = id;
    r->result_case = MMAPIO__REPLY__RESULT_OPEN;
    r->open = o;
    sm->body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    sm->reply = r;
}

static const uint64_t quick_values[] = { 0, 1, 127, 128, 65536, 0xffffffffull,
                                         1ull << 40, UINT64_MAX };

/* Packs what protobuf-c packs and reads it back, field by field, for
 * zeros, small and the largest values of each (the path up to
 * WIRE_QUICK_PATH bytes). */
Test(wire, quick_open_packs_as_protobuf)
{
    static char longest[WIRE_QUICK_PATH + 1];
    memset(longest, 'p', WIRE_QUICK_PATH);
    const char *paths[] = { "open.dat", "a", "d/e/f.bin", longest };
    const size_t nv = sizeof(quick_values) / sizeof(quick_values[0]);
    for (size_t k = 0; k < 4 * nv * 16; k++) {
        uint64_t v = quick_values[k % nv];
        unsigned bits = (unsigned)(k / nv) % 16;
        uint32_t v32 = (uint32_t)(v > UINT32_MAX ? UINT32_MAX : v);
        struct wire_open o = {
            .path = paths[k / (nv * 16)], .anonymous = bits & 1,
            .create = bits & 2, .truncate = bits & 4, .exclusive = bits & 8,
            .huge_pages = bits & 1, .has_owner = bits & 2,
            .mode = (uint32_t)(k % 3), .perm = v32, .owner_uid = v32,
            .policy_kind = (uint32_t)(v % 4), .size = v, .policy_value = v,
        };
        o.path_len = strlen(o.path);
        uint64_t id = quick_ids[k % (sizeof(quick_ids) / sizeof(quick_ids[0]))];
        if (id >= 1ull << 63)
            id >>= 1;
        char path[WIRE_QUICK_PATH + 1];
        Mmapio__Request req;
        Mmapio__Open op;
        Mmapio__FlushPolicy pol;
        Mmapio__Owner own;
        open_to_pb(id, &o, path, &req, &op, &pol, &own);
        static uint8_t pb[WIRE_QUICK_OPEN_MAX], quick[WIRE_QUICK_OPEN_MAX];
        size_t n = mmapio__request__get_packed_size(&req);
        cr_assert_leq(n, sizeof(pb));
        mmapio__request__pack(&req, pb);
        cr_assert_eq(wire_pack_open(id, &o, quick), n, "case %zu", k);
        cr_assert_arr_eq(quick, pb, n, "case %zu", k);
        uint64_t got_id;
        struct wire_open got;
        cr_assert(wire_is_open(pb, n, &got_id, &got), "case %zu", k);
        cr_assert_eq(got_id, id);
        cr_assert(got.path_len == o.path_len &&
                  memcmp(got.path, o.path, o.path_len) == 0);
        cr_assert(got.anonymous == o.anonymous && got.create == o.create &&
                  got.truncate == o.truncate && got.exclusive == o.exclusive &&
                  got.huge_pages == o.huge_pages &&
                  got.has_owner == o.has_owner && got.mode == o.mode &&
                  got.perm == o.perm && got.size == o.size &&
                  got.policy_kind == o.policy_kind &&
                  got.policy_value == o.policy_value &&
                  (!o.has_owner || got.owner_uid == o.owner_uid));
        struct wire_grant g;
        cr_assert_not(wire_is_grant(pb, n, &got_id, &g));

        struct wire_grant w = {
            .handle = v, .map_id = quick_values[(k + 1) % nv],
            .size = quick_values[(k + 2) % nv], .policy_kind = (uint32_t)(k % 4),
            .policy_value = quick_values[(k + 3) % nv], .ctl_slot = v32,
            .arena = bits & 1 ? v : 0, .offset = bits & 2 ? v : 0,
        };
        Mmapio__ServerMessage sm;
        Mmapio__Reply r;
        Mmapio__OpenReply orep;
        open_to_pb(id, &o, path, &req, &op, &pol, &own); /* pol reused below */
        grant_to_pb(id, &w, &sm, &r, &orep, &pol);
        n = mmapio__server_message__get_packed_size(&sm);
        cr_assert_leq(n, WIRE_QUICK_GRANT_MAX);
        mmapio__server_message__pack(&sm, pb);
        cr_assert_eq(wire_pack_grant(id, &w, quick), n, "case %zu", k);
        cr_assert_arr_eq(quick, pb, n, "case %zu", k);
        cr_assert(wire_is_grant(pb, n, &got_id, &g), "case %zu", k);
        cr_assert(got_id == id && memcmp(&g, &w, sizeof(g)) == 0);
        cr_assert_not(wire_is_open(pb, n, &got_id, &got));
    }
    /* Every field of today's protocol is one the hand packs. */
    cr_assert_eq(mmapio__open__descriptor.n_fields, WIRE_QUICK_OPEN_FIELDS);
    cr_assert_eq(mmapio__open_reply__descriptor.n_fields,
                 WIRE_QUICK_GRANT_FIELDS);
    cr_assert_eq(mmapio__flush_policy__descriptor.n_fields,
                 WIRE_QUICK_POLICY_FIELDS);
    cr_assert_eq(mmapio__owner__descriptor.n_fields, 1);
    /* Refused by the hand: protobuf-c packs these. */
    struct wire_open o = { .path = "caf\xc3\xa9", .path_len = 5 };
    uint8_t quick[WIRE_QUICK_OPEN_MAX];
    cr_assert_eq(wire_pack_open(1, &o, quick), 0);
    o.path = "a\0b";
    o.path_len = 3;
    cr_assert_eq(wire_pack_open(1, &o, quick), 0);
    o.path_len = 0;
    cr_assert_eq(wire_pack_open(1, &o, quick), 0);

    /* An Open whose path, policy or owner (messages or bytes) comes as a
     * number, and a grant whose policy does: refused, their bodies never
     * touched (clang's UBSan saw NULL + 0 there; the fuzzer's input is in
     * tests/fuzz-corpus/open-owner-as-number). */
    {
        static const uint8_t bad_open[][8] = {
            { 0x22, 0x02, 0x08, 0x05 },             /* path as a number */
            { 0x22, 0x05, 0x0a, 0x01, 'p', 0x40, 0x01 }, /* policy */
            { 0x22, 0x05, 0x0a, 0x01, 'p', 0x50, 0x01 }, /* owner */
        };
        static const size_t bad_len[] = { 4, 7, 7 };
        uint64_t bid;
        struct wire_open bo;
        for (size_t i = 0; i < 3; i++)
            cr_assert_not(wire_is_open(bad_open[i], bad_len[i], &bid, &bo),
                          "case %zu", i);
        static const uint8_t bad_grant[] = { 0x1a, 0x04, 0x2a, 0x02, 0x20,
                                             0x01 };
        struct wire_grant bg;
        cr_assert_not(wire_is_grant(bad_grant, sizeof(bad_grant), &bid, &bg));
    }

    /* A grant naming its file (the Windows daemon's) is no grant the
     * hand reads: the file would be lost. */
    Mmapio__FileIdentity fid = MMAPIO__FILE_IDENTITY__INIT;
    Mmapio__FlushPolicy fp = MMAPIO__FLUSH_POLICY__INIT;
    Mmapio__OpenReply fr = MMAPIO__OPEN_REPLY__INIT;
    Mmapio__Reply frr = MMAPIO__REPLY__INIT;
    Mmapio__ServerMessage fsm = MMAPIO__SERVER_MESSAGE__INIT;
    fid.dev = 7;
    fid.ino = 9;
    fr.handle = 3;
    fr.size = 4096;
    fr.policy = &fp;
    fr.file = &fid;
    frr.id = 5;
    frr.result_case = MMAPIO__REPLY__RESULT_OPEN;
    frr.open = &fr;
    fsm.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    fsm.reply = &frr;
    uint8_t fb[256];
    size_t fn = mmapio__server_message__get_packed_size(&fsm);
    cr_assert_leq(fn, sizeof(fb));
    mmapio__server_message__pack(&fsm, fb);
    uint64_t fid_id;
    struct wire_grant fg;
    cr_assert_not(wire_is_grant(fb, fn, &fid_id, &fg));
}

/* What wire_is_open and wire_is_grant accept, protobuf-c decodes to the
 * same fields with nothing unknown: valid messages mangled at random
 * (bytes changed, cut, inserted, lengths off by one). */
static void check_quick_open(const uint8_t *b, size_t n)
{
    uint64_t id;
    struct wire_open o;
    struct wire_grant g;
    if (wire_is_open(b, n, &id, &o)) {
        Mmapio__Request *q = mmapio__request__unpack(NULL, n, b);
        cr_assert_not_null(q);
        cr_assert_eq(q->op_case, MMAPIO__REQUEST__OP_OPEN);
        const Mmapio__Open *p = q->open;
        cr_assert(q->id == id && strlen(p->path) == o.path_len &&
                  memcmp(p->path, o.path, o.path_len) == 0 &&
                  p->anonymous == o.anonymous && (uint32_t)p->mode == o.mode &&
                  p->create == o.create && p->truncate == o.truncate &&
                  p->exclusive == o.exclusive && p->size == o.size &&
                  p->policy && (uint32_t)p->policy->kind == o.policy_kind &&
                  p->policy->value == o.policy_value && p->perm == o.perm &&
                  (p->owner != NULL) == o.has_owner &&
                  (!p->owner || p->owner->uid == o.owner_uid) &&
                  p->huge_pages == o.huge_pages);
        cr_assert_eq(q->base.n_unknown_fields + p->base.n_unknown_fields +
                         p->policy->base.n_unknown_fields +
                         (p->owner ? p->owner->base.n_unknown_fields : 0),
                     0);
        mmapio__request__free_unpacked(q, NULL);
    }
    if (wire_is_grant(b, n, &id, &g)) {
        Mmapio__ServerMessage *m = mmapio__server_message__unpack(NULL, n, b);
        cr_assert_not_null(m);
        cr_assert_eq(m->body_case, MMAPIO__SERVER_MESSAGE__BODY_REPLY);
        const Mmapio__Reply *r = m->reply;
        cr_assert(r->id == id && r->error == 0 &&
                  (!r->message || !*r->message) &&
                  r->result_case == MMAPIO__REPLY__RESULT_OPEN);
        const Mmapio__OpenReply *p = r->open;
        cr_assert(p->handle == g.handle && p->map_id == g.map_id &&
                  p->size == g.size && p->policy &&
                  (uint32_t)p->policy->kind == g.policy_kind &&
                  p->policy->value == g.policy_value &&
                  p->ctl_slot == g.ctl_slot && p->arena == g.arena &&
                  p->offset == g.offset);
        cr_assert_eq(m->base.n_unknown_fields + r->base.n_unknown_fields +
                         p->base.n_unknown_fields +
                         p->policy->base.n_unknown_fields,
                     0);
        mmapio__server_message__free_unpacked(m, NULL);
    }
}

Test(wire, quick_open_recognisers_accept_only_the_message)
{
    struct wire_open o = { .path = "dir/open.dat", .path_len = 12,
                           .mode = 1, .size = 65536, .has_owner = true,
                           .owner_uid = 1000, .policy_kind = 2,
                           .policy_value = 50, .create = true };
    struct wire_grant g = { .handle = 300, .map_id = 7, .size = 65536,
                            .policy_kind = 1, .policy_value = 20,
                            .ctl_slot = 3, .arena = 2, .offset = 4096 };
    uint8_t good[2][WIRE_QUICK_OPEN_MAX], b[WIRE_QUICK_OPEN_MAX + 8];
    size_t good_n[2] = { wire_pack_open(220, &o, good[0]),
                         wire_pack_grant(220, &g, good[1]) };
    size_t accepted = 0;
    srand(13);
    for (int t = 0; t < 200000; t++) {
        int which = t % 2;
        size_t n = good_n[which];
        memcpy(b, good[which], n);
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rand() % (n + 1);
            switch (rand() % 4) {
            case 0: if (at < n) b[at] = (uint8_t)rand(); break;
            case 1: if (at < n) b[at] ^= (uint8_t)(1u << (rand() % 8)); break;
            case 2: if (n > 0) n = at < n ? at : n - 1; break;
            default:
                if (n < WIRE_QUICK_OPEN_MAX) {
                    memmove(b + at + 1, b + at, n - at);
                    b[at] = (uint8_t)(rand() % 2 ? rand() : 0);
                    n++;
                }
            }
        }
        uint64_t id;
        struct wire_open oo;
        struct wire_grant gg;
        accepted += wire_is_open(b, n, &id, &oo) + wire_is_grant(b, n, &id, &gg);
        check_quick_open(b, n);
    }
    check_quick_open(good[0], good_n[0]);
    check_quick_open(good[1], good_n[1]);
    cr_assert_gt(accepted, 0); /* changed values are messages too */
}
