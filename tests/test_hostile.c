/*
 * test_hostile: a peer that does not follow the protocol. Random and
 * mutated datagrams, a 1 MiB datagram, empty datagrams, datagrams carrying
 * fds nobody asked for, requests before the handshake, a wrong protocol
 * version: each gets an error reply or a closed connection, stray fds are
 * closed by the daemon at once, and the daemon keeps serving everyone else
 * (the teardown also checks that it still exits 0 on SIGTERM).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

TestSuite(hostile, .init = hz_setup, .fini = hz_teardown, .timeout = 90);

static int hello_conn(void)
{
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
    int r = raw_hello(fd, WIRE_PROTOCOL);
    cr_assert_eq(r, 0, "hello refused: %d", r);
    return fd;
}

/* The daemon is alive and a fresh library client is served. */
static void expect_serving(void)
{
    cr_assert(hz_alive(&hz), "the daemon died");
    mmapio_client *c = hz_client();
    hz_assert_ok(mmapio_ping(c));
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_create(c, "after", 4096, &m));
    mmapio_unmap(m);
    hz_assert_ok(mmapio_anon_delete(c, "after"));
    mmapio_disconnect(c);
}

/* true once every write end of the pipe is closed (read end at EOF). */
static bool pipe_eof_within(int rd, int timeout_ms)
{
    struct pollfd p = { .fd = rd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    char c;
    return read(rd, &c, 1) == 0;
}

Test(hostile, handshake_reply)
{
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Hello hello = MMAPIO__HELLO__INIT;
    hello.protocol = WIRE_PROTOCOL;
    hello.client_name = (char *)"hostile";
    req.id = 0xabcdef;
    req.op_case = MMAPIO__REQUEST__OP_HELLO;
    req.hello = &hello;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *m;
    cr_assert_eq(raw_recv(fd, 5000, &m, NULL), 0);
    cr_assert_eq(m->reply->id, 0xabcdef, "id not echoed");
    cr_assert_eq(m->reply->error, 0);
    cr_assert_eq(m->reply->result_case, MMAPIO__REPLY__RESULT_HELLO);
    cr_assert_eq(m->reply->hello->protocol, WIRE_PROTOCOL);
    cr_assert_geq(m->reply->hello->max_frame, 1024);
    cr_assert_gt(strlen(m->reply->hello->server_version), 0);
    mmapio__server_message__free_unpacked(m, NULL);

    /* pipelined requests: every id answered */
    for (uint64_t id = 100; id < 110; id++) {
        Mmapio__Request p = MMAPIO__REQUEST__INIT;
        Mmapio__Ping ping = MMAPIO__PING__INIT;
        p.id = id;
        p.op_case = MMAPIO__REQUEST__OP_PING;
        p.ping = &ping;
        cr_assert_eq(raw_send(fd, &p, -1), 0);
    }
    unsigned seen = 0;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(raw_recv(fd, 5000, &m, NULL), 0);
        cr_assert_eq(m->reply->error, 0);
        cr_assert(m->reply->id >= 100 && m->reply->id < 110);
        seen |= 1u << (m->reply->id - 100);
        mmapio__server_message__free_unpacked(m, NULL);
    }
    cr_assert_eq(seen, 0x3ff);
    close(fd);
}

Test(hostile, request_before_hello)
{
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.id = 7;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *m;
    int r = raw_recv(fd, 5000, &m, NULL);
    cr_assert_eq(r, 0, "no error reply to a request before hello (%s)",
                 strerror(-r));
    cr_assert_lt(m->reply->error, 0);
    cr_assert_eq(m->reply->id, 7);
    cr_assert_gt(strlen(m->reply->message), 0, "no readable message");
    mmapio__server_message__free_unpacked(m, NULL);
    cr_assert_eq(raw_recv(fd, 5000, &m, NULL), -ECONNRESET,
                 "connection not closed after a request before hello");
    close(fd);
    expect_serving();
}

/* The daemon answers a ping in protobuf-c's own bytes without decoding
 * it (wire.h); a ping in any other bytes is decoded as before: the same
 * answers, and an unknown field is still refused. */
Test(hostile, pings_beside_the_quick_form)
{
    static const struct {
        uint8_t b[8];
        size_t len;
        uint64_t id;
        int error;
    } pings[] = {
        { { 0x08, 0x05, 0x1a, 0x00 }, 4, 5, 0 },            /* the quick form */
        { { 0x08, 0x86, 0x00, 0x1a, 0x00 }, 5, 6, 0 },      /* long varint */
        { { 0x1a, 0x00, 0x08, 0x07 }, 4, 7, 0 },            /* id last */
        { { 0x08, 0x09, 0x08, 0x08, 0x1a, 0x00 }, 6, 8, 0 }, /* id twice */
        { { 0x08, 0x0a, 0x1a, 0x02, 0x20, 0x01 }, 6, 10, MMAPIO_E_PROTOCOL },
        { { 0x08, 0x0b, 0x1a, 0x00, 0xf8, 0x06, 0x01 }, 7, 11,
          MMAPIO_E_PROTOCOL },                               /* unknown field */
        { { 0x1a, 0x00 }, 2, 0, 0 },                          /* id 0 */
    };
    int fd = hello_conn();
    for (size_t i = 0; i < sizeof(pings) / sizeof(pings[0]); i++) {
        cr_assert_eq(raw_send_bytes(fd, pings[i].b, pings[i].len, -1), 0);
        Mmapio__ServerMessage *m;
        int r = raw_recv(fd, 5000, &m, NULL);
        cr_assert_eq(r, 0, "ping #%zu: %s", i, strerror(-r));
        cr_assert_eq(m->reply->id, pings[i].id, "ping #%zu", i);
        cr_assert_eq(m->reply->error, pings[i].error, "ping #%zu", i);
        mmapio__server_message__free_unpacked(m, NULL);
    }
    cr_assert_eq(raw_ping(fd, 12), 0);
    close(fd);
    expect_serving();
}

/* An Open in protobuf-c's bytes is read by hand, any other bytes of it
 * by the decoder (wire.h): the same answers either way, a grant with its
 * fd or the same refusal, and an unknown field still refused. */
Test(hostile, opens_beside_the_quick_form)
{
    mmapio_client *c;
    mmapio_map *m;
    cr_assert_eq(mmapio_connect(hz.sock, &c), MMAPIO_OK);
    cr_assert_eq(mmapio_create_rw(c, "q.dat", 65536, &m), MMAPIO_OK);
    mmapio_unmap(m);
    mmapio_disconnect(c);
    uint8_t quick[2][WIRE_QUICK_OPEN_MAX];
    struct wire_open q = { .path = "q.dat", .path_len = 5 };
    size_t quick_n[2];
    quick_n[0] = wire_pack_open(20, &q, quick[0]);
    q.path = "none.dat";
    q.path_len = 8;
    quick_n[1] = wire_pack_open(21, &q, quick[1]);
    static const struct {
        uint8_t b[24];
        size_t len;
        uint64_t id;
        int error;
    } opens[] = {
        /* policy before path */
        { { 0x08, 22, 0x22, 9, 0x42, 0, 0x0a, 5, 'q', '.', 'd', 'a', 't' },
          13, 22, 0 },
        /* anonymous = false said aloud */
        { { 0x08, 23, 0x22, 11, 0x0a, 5, 'q', '.', 'd', 'a', 't', 0x10, 0,
            0x42, 0 }, 15, 23, 0 },
        /* no policy at all */
        { { 0x08, 24, 0x22, 7, 0x0a, 5, 'q', '.', 'd', 'a', 't' }, 11, 24, 0 },
        { { 0x08, 25, 0x22, 12, 0x42, 0, 0x0a, 8, 'n', 'o', 'n', 'e', '.',
            'd', 'a', 't' }, 16, 25, MMAPIO_E_NOT_FOUND },
        /* an unknown field (15) in the open */
        { { 0x08, 26, 0x22, 11, 0x0a, 5, 'q', '.', 'd', 'a', 't', 0x42, 0,
            0x78, 1 }, 15, 26, MMAPIO_E_PROTOCOL },
    };
    int fd = hello_conn();
    for (size_t i = 0; i < 2 + sizeof(opens) / sizeof(opens[0]); i++) {
        const uint8_t *b = i < 2 ? quick[i] : opens[i - 2].b;
        size_t len = i < 2 ? quick_n[i] : opens[i - 2].len;
        uint64_t id = i < 2 ? 20 + i : opens[i - 2].id;
        int error = i == 1 ? MMAPIO_E_NOT_FOUND : i < 2 ? 0 : opens[i - 2].error;
        cr_assert_eq(raw_send_bytes(fd, b, len, -1), 0);
        Mmapio__ServerMessage *r;
        int got_fd = -1;
        cr_assert_eq(raw_recv(fd, 5000, &r, &got_fd), 0, "open #%zu", i);
        cr_assert_eq(r->reply->id, id, "open #%zu", i);
        cr_assert_eq(r->reply->error, error, "open #%zu", i);
        if (!error) {
            cr_assert_eq(r->reply->result_case, MMAPIO__REPLY__RESULT_OPEN);
            cr_assert_eq(r->reply->open->size, 65536, "open #%zu", i);
            cr_assert_geq(got_fd, 0, "open #%zu: no fd", i);
        } else {
            cr_assert_lt(got_fd, 0, "open #%zu: an fd with a refusal", i);
        }
        if (got_fd >= 0)
            close(got_fd);
        mmapio__server_message__free_unpacked(r, NULL);
    }
    close(fd);
    expect_serving();
}

Test(hostile, wrong_protocol_version)
{
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    int r = raw_hello(fd, WIRE_PROTOCOL + 1000);
    cr_assert(r < 0 && !raw_is_errno(r), "hello with protocol %d: %d",
              WIRE_PROTOCOL + 1000, r);
    Mmapio__ServerMessage *m;
    cr_assert_eq(raw_recv(fd, 5000, &m, NULL), -ECONNRESET);
    close(fd);
    expect_serving();
}

Test(hostile, second_hello_does_not_break)
{
    int fd = hello_conn();
    int r = raw_hello(fd, WIRE_PROTOCOL);
    cr_assert(!raw_is_errno(r) || r == -RAW_ERRNO_BASE - ECONNRESET);
    close(fd);
    expect_serving();
}

Test(hostile, malformed_protobuf)
{
    static const uint8_t junk[][8] = {
        { 0xff, 0xff, 0xff, 0xff },       /* bad tag/varint */
        { 0x22, 0x7f, 0x01 },             /* open: length past the end */
        { 0x08, 0x80, 0x80, 0x80, 0x80 }, /* truncated varint */
        { 0x0b },                         /* start group */
        { 0x22, 0x02, 0x0a, 0x05 },       /* open.path: length past end */
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        int fd = hello_conn();
        size_t len = 8;
        while (len > 1 && junk[i][len - 1] == 0)
            len--;
        cr_assert_eq(raw_send_bytes(fd, junk[i], len, -1), 0);
        int err = 0;
        int r = raw_expect_refusal(fd, 5000, &err);
        cr_assert(r == 1 || (r == 0 && err == MMAPIO_E_PROTOCOL),
                  "junk #%zu: result %d, error %d", i, r, err);
        close(fd);
    }
    expect_serving();
}

Test(hostile, request_without_op)
{
    int fd = hello_conn();
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    req.id = 99;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    int err = 0;
    int r = raw_expect_refusal(fd, 5000, &err);
    cr_assert(r == 1 || r == 0, "no refusal of an empty request: %d", r);
    /* an unknown field is still no op */
    static const uint8_t unknown[] = { 0x08, 0x05, 0xf8, 0x06, 0x01 };
    if (r == 0) {
        cr_assert_eq(raw_send_bytes(fd, unknown, sizeof(unknown), -1), 0);
        r = raw_expect_refusal(fd, 5000, &err);
        cr_assert(r == 1 || r == 0, "no refusal of an unknown field: %d", r);
    }
    close(fd);
    expect_serving();
}

Test(hostile, error_replies_carry_code_and_message)
{
    int fd = hello_conn();
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = (char *)"../escape";
    open.create = 1;
    open.size = 4096;
    open.mode = MMAPIO__MODE__MODE_READ_WRITE;
    req.id = 31337;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    Mmapio__ServerMessage *m;
    int got_fd = -1;
    cr_assert_eq(raw_recv(fd, 5000, &m, &got_fd), 0);
    cr_assert_eq(got_fd, -1, "an fd came with an error reply");
    cr_assert_eq(m->reply->id, 31337);
    cr_assert_eq(m->reply->error, MMAPIO_E_PERMISSION);
    cr_assert_gt(strlen(m->reply->message), 0);
    mmapio__server_message__free_unpacked(m, NULL);
    /* the connection is still usable after an ordinary error */
    cr_assert_eq(raw_ping(fd, 2), 0);
    close(fd);
}

Test(hostile, unknown_handles)
{
    int fd = hello_conn();
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Close cl = MMAPIO__CLOSE__INIT;
    Mmapio__Resize rs = MMAPIO__RESIZE__INIT;
    Mmapio__Flush fl = MMAPIO__FLUSH__INIT;
    Mmapio__Stat stt = MMAPIO__STAT__INIT;
    cl.handle = rs.handle = fl.handle = stt.handle = 0xdeadbeef;
    rs.size = 1;
    Mmapio__ServerMessage *m;
    for (int op = 0; op < 4; op++) {
        req.id = 500 + (uint64_t)op;
        switch (op) {
        case 0:
            req.op_case = MMAPIO__REQUEST__OP_CLOSE;
            req.close = &cl;
            break;
        case 1:
            req.op_case = MMAPIO__REQUEST__OP_RESIZE;
            req.resize = &rs;
            break;
        case 2:
            req.op_case = MMAPIO__REQUEST__OP_FLUSH;
            req.flush = &fl;
            break;
        default:
            req.op_case = MMAPIO__REQUEST__OP_STAT;
            req.stat = &stt;
            break;
        }
        cr_assert_eq(raw_send(fd, &req, -1), 0);
        int r = raw_recv(fd, 5000, &m, NULL);
        if (r == -ECONNRESET)
            break; /* closing on nonsense is allowed */
        cr_assert_eq(r, 0);
        cr_assert_lt(m->reply->error, 0, "op %d on a handle never given",
                     op);
        cr_assert_eq(m->reply->id, 500 + (uint64_t)op);
        mmapio__server_message__free_unpacked(m, NULL);
    }
    close(fd);
    expect_serving();
}

/* xorshift: reproducible randomness */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/*
 * Random bytes that happen to decode as a well-formed request are kept only
 * for ops that must be answered and cannot make the daemon allocate: an
 * Open or Resize could ask for a mapping of any size (a legitimate request,
 * not a hostile one), and one-way ops (notices) get no reply by design.
 */
static bool acceptable(const uint8_t *buf, size_t len)
{
    Mmapio__Request *r = mmapio__request__unpack(NULL, len, buf);
    if (!r)
        return true;
    bool ok;
    switch (r->op_case) {
    case MMAPIO__REQUEST__OP__NOT_SET:
    case MMAPIO__REQUEST__OP_HELLO:
    case MMAPIO__REQUEST__OP_PING:
    case MMAPIO__REQUEST__OP_CLOSE:
    case MMAPIO__REQUEST__OP_FLUSH:
    case MMAPIO__REQUEST__OP_STAT:
    case MMAPIO__REQUEST__OP_DELETE_MAP:
    case MMAPIO__REQUEST__OP_SET_POLICY:
        ok = true;
        break;
    default:
        ok = false;
        break;
    }
    mmapio__request__free_unpacked(r, NULL);
    return ok;
}

static void send_random(int *fd, const uint8_t *buf, size_t len)
{
    int r = raw_send_bytes(*fd, buf, len, -1);
    if (r == 0)
        r = raw_expect_refusal(*fd, 5000, NULL);
    cr_assert_neq(r, -ETIMEDOUT,
                  "a %zu-byte datagram got neither reply nor close", len);
    if (r != 0 && r != -EPROTO) {
        /* closed (or unusable): carry on with a new connection */
        close(*fd);
        *fd = hello_conn();
    }
}

Test(hostile, random_datagrams)
{
    uint8_t buf[512];
    int fd = hello_conn();
    int sent = 0;
    while (sent < 300) {
        size_t len = 1 + rnd() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rnd();
        if (!acceptable(buf, len))
            continue;
        send_random(&fd, buf, len);
        sent++;
    }
    close(fd);
    expect_serving();
}

Test(hostile, mutated_requests)
{
    /* Valid requests with random bytes flipped: closer to the decoder's
     * edge cases than pure noise. */
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Flush fl = MMAPIO__FLUSH__INIT;
    Mmapio__SetPolicy sp = MMAPIO__SET_POLICY__INIT;
    Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
    Mmapio__Delete del = MMAPIO__DELETE__INIT;
    uint8_t base[3][128], buf[128];
    size_t base_len[3];

    req.id = 12345678;
    fl.handle = 3;
    fl.offset = 100;
    fl.len = 4096;
    req.op_case = MMAPIO__REQUEST__OP_FLUSH;
    req.flush = &fl;
    base_len[0] = mmapio__request__pack(&req, base[0]);
    pol.kind = MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES;
    pol.value = 1000;
    sp.handle = 4;
    sp.policy = &pol;
    req.op_case = MMAPIO__REQUEST__OP_SET_POLICY;
    req.set_policy = &sp;
    base_len[1] = mmapio__request__pack(&req, base[1]);
    del.path = (char *)"no-such-file";
    req.op_case = MMAPIO__REQUEST__OP_DELETE_MAP;
    req.delete_map = &del;
    base_len[2] = mmapio__request__pack(&req, base[2]);

    int fd = hello_conn();
    int sent = 0;
    while (sent < 300) {
        int k = (int)(rnd() % 3);
        size_t len = base_len[k];
        memcpy(buf, base[k], len);
        int flips = 1 + (int)(rnd() % 4);
        for (int i = 0; i < flips; i++)
            buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
        if (rnd() % 4 == 0)
            len = 1 + rnd() % len; /* and sometimes cut short */
        if (!acceptable(buf, len))
            continue;
        send_random(&fd, buf, len);
        sent++;
    }
    close(fd);
    expect_serving();
}

Test(hostile, oversized_datagrams)
{
    /* Just over the daemon's frame limit: the kernel delivers it. */
    static uint8_t big[1 << 20];
    memset(big, 0x08, sizeof(big));
    int fd = hello_conn();
    size_t over = WIRE_DEFAULT_MAX_FRAME + 1024;
    int r = raw_send_bytes(fd, big, over, -1);
    cr_assert_eq(r, 0, "send of %zu bytes: %s", over, strerror(-r));
    r = raw_expect_refusal(fd, 5000, NULL);
    cr_assert(r == 0 || r == 1, "oversized datagram: %d", r);
    close(fd);

    /* 1 MiB: the kernel may refuse it, or the daemon must */
    fd = hello_conn();
    int sz = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    r = raw_send_bytes(fd, big, sizeof(big), -1);
    if (r == 0) {
        r = raw_expect_refusal(fd, 5000, NULL);
        cr_assert(r == 0 || r == 1, "1 MiB datagram: %d", r);
    } else {
        cr_assert(r == -EMSGSIZE || r == -ENOBUFS || r == -ENOMEM,
                  "send: %s", strerror(-r));
    }
    close(fd);
    expect_serving();
}

Test(hostile, empty_datagrams)
{
    for (int i = 0; i < 20; i++) {
        int fd = hello_conn();
        cr_assert_eq(raw_send_bytes(fd, "", 0, -1), 0);
        int r = raw_expect_refusal(fd, 5000, NULL);
        cr_assert(r == 0 || r == 1, "empty datagram: %d", r);
        close(fd);
    }
    /* and before the handshake */
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_send_bytes(fd, "", 0, -1), 0);
    int r = raw_expect_refusal(fd, 5000, NULL);
    cr_assert(r == 0 || r == 1, "empty datagram before hello: %d", r);
    close(fd);
    expect_serving();
}

/* Sends `req` (or, when NULL, raw bytes) with the write end of a fresh
 * pipe, drops our copy, and checks the daemon closed its copy. */
static void stray_fd(int fd, const Mmapio__Request *req, const char *what)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    int r = req ? raw_send(fd, req, p[1])
                : raw_send_bytes(fd, "\x01", 1, p[1]);
    close(p[1]);
    if (r == -EPERM) { /* SO_PASSRIGHTS: the kernel refused it for the daemon */
        close(p[0]);
        return;
    }
    cr_assert_eq(r, 0);
    int err = 0;
    r = raw_expect_refusal(fd, 5000, &err);
    cr_assert(r == 0 || r == 1, "%s with a stray fd was accepted (%d)", what,
              r);
    cr_assert(pipe_eof_within(p[0], 5000),
              "the daemon kept the stray fd sent with %s", what);
    close(p[0]);
}

Test(hostile, stray_fds_are_closed)
{
    int base = hz_fd_baseline(&hz);
    cr_assert_gt(base, 0);

    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.id = 5;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    for (int i = 0; i < 20; i++) {
        int fd = hello_conn();
        stray_fd(fd, &req, "a ping");
        close(fd);
    }
    /* on the handshake itself */
    Mmapio__Request hreq = MMAPIO__REQUEST__INIT;
    Mmapio__Hello hello = MMAPIO__HELLO__INIT;
    hello.protocol = WIRE_PROTOCOL;
    hreq.id = 1;
    hreq.op_case = MMAPIO__REQUEST__OP_HELLO;
    hreq.hello = &hello;
    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    stray_fd(fd, &hreq, "the hello");
    close(fd);
    /* with junk */
    fd = hello_conn();
    stray_fd(fd, NULL, "junk");
    close(fd);

    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base, "daemon fds: %d before, %d after", base, now);
    expect_serving();
}

Test(hostile, too_many_fds_all_closed)
{
    enum { N = WIRE_MAX_FDS + 3 };
    int base = hz_fd_baseline(&hz);
    int fd = hello_conn();
    int rds[N], ws[N];
    for (int i = 0; i < N; i++) {
        int p[2];
        cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        rds[i] = p[0];
        ws[i] = p[1];
    }
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.id = 6;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    uint8_t body[64];
    size_t len = mmapio__request__pack(&req, body);

    union {
        char buf[CMSG_SPACE(sizeof(int) * N)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { .iov_base = body, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * N);
    memcpy(CMSG_DATA(c), ws, sizeof(ws));
    ssize_t sent = sendmsg(fd, &mh, MSG_NOSIGNAL);
    cr_assert(sent == (ssize_t)len || (sent < 0 && errno == EPERM),
              "sendmsg: %s", strerror(errno));
    for (int i = 0; i < N; i++)
        close(ws[i]);
    if (sent < 0) { /* SO_PASSRIGHTS: the kernel refused them for us */
        cr_assert_eq(raw_ping(fd, 7), 0);
        for (int i = 0; i < N; i++)
            close(rds[i]);
        close(fd);
        expect_serving();
        return;
    }

    int r = raw_expect_refusal(fd, 5000, NULL);
    cr_assert(r == 0 || r == 1, "ping with %d fds accepted: %d", N, r);
    for (int i = 0; i < N; i++) {
        cr_assert(pipe_eof_within(rds[i], 5000), "fd %d of %d kept", i, N);
        close(rds[i]);
    }
    close(fd);
    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base, "daemon fds: %d before, %d after", base, now);
    expect_serving();
}

Test(hostile, many_connections_come_and_go)
{
    int base = hz_fd_baseline(&hz);
    int fds[200];
    for (int i = 0; i < 200; i++) {
        fds[i] = raw_connect(hz.sock);
        cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(-fds[i]));
    }
    /* half of them say hello, none says goodbye */
    for (int i = 0; i < 200; i += 2)
        cr_assert_eq(raw_hello(fds[i], WIRE_PROTOCOL), 0);
    for (int i = 0; i < 200; i++)
        close(fds[i]);
    int now = hz_fd_count_settle(hz.pid, base, 5000);
    cr_assert_leq(now, base, "daemon fds: %d before, %d after", base, now);
    expect_serving();
}

Test(hostile, silent_client_does_not_block_others)
{
    /* A client that connects and never reads nor writes, and one that
     * sends requests but never reads the replies. */
    int idle = raw_connect(hz.sock);
    cr_assert_geq(idle, 0);
    int deaf = hello_conn();
    fcntl(deaf, F_SETFL, fcntl(deaf, F_GETFL) | O_NONBLOCK);
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Ping ping = MMAPIO__PING__INIT;
    req.op_case = MMAPIO__REQUEST__OP_PING;
    req.ping = &ping;
    for (int i = 0; i < 5000; i++) {
        req.id = (uint64_t)i;
        if (raw_send(deaf, &req, -1) < 0)
            break; /* our queue is full or the daemon dropped us */
    }
    int64_t t0 = hz_now_ms();
    expect_serving();
    cr_assert_lt(hz_now_ms() - t0, 5000, "others were starved");
    close(idle);
    close(deaf);
}
