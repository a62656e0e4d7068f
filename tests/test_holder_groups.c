/*
 * holder_groups: a session that holds (or watches) one mapping thousands
 * of times is one entry among the mapping's holders (watchers) for the
 * daemon's walks: it hears each resize, policy change and write exactly
 * once, holders are counted right as they go, and a session whose last
 * holder (watch) of the mapping went hears nothing more of it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

TestSuite(holder_groups, .init = hz_setup, .fini = hz_teardown,
          .timeout = 120);

#define MANY 1500

static int connect_hello(void)
{
    int fd = raw_connect(hz.sock);
    cr_assert(fd >= 0);
    hz_assert_ok(raw_hello(fd, WIRE_PROTOCOL));
    return fd;
}

/* Sends n requests like q (ids from 100), 32 in flight, and keeps each
 * reply's handle (open) or watch id (watch) in out[] when out is given. */
static void call_many(int fd, Mmapio__Request *q, long n, uint64_t *out)
{
    for (long done = 0; done < n;) {
        long batch = n - done < 32 ? n - done : 32;
        for (long i = 0; i < batch; i++) {
            q->id = (uint64_t)(done + i) + 100;
            cr_assert_eq(raw_send(fd, q, -1), 0);
        }
        for (long i = 0; i < batch; i++) {
            Mmapio__ServerMessage *m;
            cr_assert_eq(raw_recv(fd, 20000, &m, NULL), 0);
            Mmapio__Reply *r = m->reply;
            cr_assert_eq(r->error, 0, "request %ld (op %d): error %d %s",
                         done + i, (int)q->op_case, r->error,
                         r->message ? r->message : "");
            if (out && r->result_case == MMAPIO__REPLY__RESULT_OPEN)
                out[done + i] = r->open->handle;
            if (out && r->result_case == MMAPIO__REPLY__RESULT_WATCH)
                out[done + i] = r->watch->watch_id;
            mmapio__server_message__free_unpacked(m, NULL);
        }
        done += batch;
    }
}

/* n holders of anonymous "g" on fd in `mode`; their handles in out[]. */
static void hold_many(int fd, long n, Mmapio__Mode mode, uint64_t *out)
{
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    o.path = (char *)"g";
    o.anonymous = true;
    o.mode = mode;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    call_many(fd, &q, n, out);
}

static void close_many(int fd, const uint64_t *handles, long n)
{
    for (long i = 0; i < n; i++) {
        Mmapio__Close c = MMAPIO__CLOSE__INIT;
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        c.handle = handles[i];
        q.op_case = MMAPIO__REQUEST__OP_CLOSE;
        q.close = &c;
        call_many(fd, &q, 1, NULL);
    }
}

static void watch_many(int fd, uint64_t handle, long n, uint64_t *ids)
{
    Mmapio__Watch w = MMAPIO__WATCH__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    w.handle = handle;
    q.op_case = MMAPIO__REQUEST__OP_WATCH;
    q.watch = &w;
    call_many(fd, &q, n, ids);
}

static void unwatch_many(int fd, const uint64_t *ids, long n)
{
    for (long i = 0; i < n; i++) {
        Mmapio__Unwatch u = MMAPIO__UNWATCH__INIT;
        Mmapio__Request q = MMAPIO__REQUEST__INIT;
        u.watch_id = ids[i];
        q.op_case = MMAPIO__REQUEST__OP_UNWATCH;
        q.unwatch = &u;
        call_many(fd, &q, 1, NULL);
    }
}

/* Events of `kind` that reach fd before the answer to a ping sent now
 * (a reply overtakes no event: all the events of changes already answered
 * come first). */
static int events_before_pong(int fd, Mmapio__EventKind kind)
{
    static uint8_t buf[WIRE_DEFAULT_MAX_FRAME * 4];
    Mmapio__Ping pg = MMAPIO__PING__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    q.id = 7777;
    q.op_case = MMAPIO__REQUEST__OP_PING;
    q.ping = &pg;
    cr_assert_eq(raw_send(fd, &q, -1), 0);
    int n = 0;
    int64_t end = hz_now_ms() + 20000;
    for (;;) {
        cr_assert(hz_now_ms() < end, "no pong");
        int fds[WIRE_MAX_FDS];
        size_t n_fds = 0;
        long len = wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
        wire_close_fds(fds, n_fds);
        if (len == -EAGAIN) {
            usleep(1000);
            continue;
        }
        cr_assert(len >= 0, "recv: %ld", len);
        Mmapio__ServerMessage *m =
            mmapio__server_message__unpack(NULL, (size_t)len, buf);
        cr_assert(m);
        bool pong = m->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY &&
                    m->reply->id == 7777;
        n += m->body_case == MMAPIO__SERVER_MESSAGE__BODY_EVENT &&
             m->event->kind == kind;
        mmapio__server_message__free_unpacked(m, NULL);
        if (pong)
            return n;
    }
}

static void resize(int fd, uint64_t handle, uint64_t size)
{
    Mmapio__Resize rs = MMAPIO__RESIZE__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    rs.handle = handle;
    rs.size = size;
    q.op_case = MMAPIO__REQUEST__OP_RESIZE;
    q.resize = &rs;
    call_many(fd, &q, 1, NULL);
}

static void set_policy(int fd, uint64_t handle, Mmapio__FlushKind kind)
{
    Mmapio__SetPolicy sp = MMAPIO__SET_POLICY__INIT;
    Mmapio__FlushPolicy fp = MMAPIO__FLUSH_POLICY__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    fp.kind = kind;
    sp.handle = handle;
    sp.policy = &fp;
    q.op_case = MMAPIO__REQUEST__OP_SET_POLICY;
    q.set_policy = &sp;
    call_many(fd, &q, 1, NULL);
}

static uint32_t holders_of(int fd, uint64_t handle)
{
    Mmapio__Stat st = MMAPIO__STAT__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__ServerMessage *m;
    st.handle = handle;
    q.id = 5;
    q.op_case = MMAPIO__REQUEST__OP_STAT;
    q.stat = &st;
    cr_assert_eq(raw_send(fd, &q, -1), 0);
    cr_assert_eq(raw_recv(fd, 20000, &m, NULL), 0);
    cr_assert_eq(m->reply->error, 0);
    uint32_t n = m->reply->stat->holders;
    mmapio__server_message__free_unpacked(m, NULL);
    return n;
}

/* b creates "g" and holds it once (read-write); its handle. */
static uint64_t create_g(int b)
{
    int fd = -1;
    hz_assert_ok(raw_open(b, "g", true, MMAPIO__MODE__MODE_READ_WRITE, true,
                          4096, &fd));
    if (fd >= 0)
        close(fd);
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    uint64_t h = 0;
    o.path = (char *)"g";
    o.anonymous = true;
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    call_many(b, &q, 1, &h);
    return h;
}

Test(holder_groups, one_event_per_session_however_often_it_holds)
{
    int a = connect_hello(), b = connect_hello(), c = connect_hello();
    uint64_t bh = create_g(b);
    uint32_t base = holders_of(b, bh); /* the creator's open, and bh */
    uint64_t *ah = calloc(MANY, sizeof(*ah));
    uint64_t *ch = calloc(700, sizeof(*ch));
    cr_assert(ah && ch);
    hold_many(a, MANY, MMAPIO__MODE__MODE_READ_WRITE, ah);
    hold_many(c, 700, MMAPIO__MODE__MODE_READ_ONLY, ch);
    cr_assert_eq(holders_of(b, bh), base + MANY + 700);

    resize(b, bh, 8192);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_RESIZED), 1);
    cr_assert_eq(events_before_pong(c, MMAPIO__EVENT_KIND__EVENT_RESIZED), 1);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_RESIZED), 0,
                 "the one that asked is not told");
    set_policy(b, bh, MMAPIO__FLUSH_KIND__FLUSH_MANUAL);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_POLICY), 1);
    cr_assert_eq(events_before_pong(c, MMAPIO__EVENT_KIND__EVENT_POLICY), 1);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_POLICY), 0);

    /* a asks, holding it MANY times: b and c hear it once each. */
    resize(a, ah[MANY / 2], 12288);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_RESIZED), 0);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_RESIZED), 1);
    cr_assert_eq(events_before_pong(c, MMAPIO__EVENT_KIND__EVENT_RESIZED), 1);

    /* All but one of a's go: a still holds it, and hears it once. */
    close_many(a, ah, MANY - 1);
    cr_assert_eq(holders_of(b, bh), base + 1 + 700);
    set_policy(b, bh, MMAPIO__FLUSH_KIND__FLUSH_NEVER);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_POLICY), 1);

    /* a's last goes: a hears no more of it; c does. */
    close_many(a, ah + MANY - 1, 1);
    cr_assert_eq(holders_of(b, bh), base + 700);
    resize(b, bh, 16384);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_RESIZED), 0);
    cr_assert_eq(events_before_pong(c, MMAPIO__EVENT_KIND__EVENT_RESIZED), 1);

    /* a holds it again: heard again, once. */
    hold_many(a, 3, MMAPIO__MODE__MODE_READ_ONLY, ah);
    set_policy(b, bh, MMAPIO__FLUSH_KIND__FLUSH_MANUAL);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_POLICY), 1);

    /* c hangs up holding 700: all of them go; then a's. */
    close(c);
    for (int i = 0; i < 200 && holders_of(b, bh) != base + 3; i++)
        usleep(10 * 1000);
    cr_assert_eq(holders_of(b, bh), base + 3);
    close_many(a, ah, 3);
    cr_assert_eq(holders_of(b, bh), base);
    resize(b, bh, 20480);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_RESIZED), 0);
    free(ah);
    free(ch);
    close(a);
    close(b);
}

/* A write notice on a mapping a session watches MANY times: that session
 * hears it once; once all its watches went, not at all. */
Test(holder_groups, one_modified_per_session_however_often_it_watches)
{
    int a = connect_hello(), b = connect_hello();
    uint64_t bh = create_g(b);
    uint64_t ah = 0, *ids = calloc(MANY, sizeof(*ids));
    cr_assert(ids);
    hold_many(a, 1, MMAPIO__MODE__MODE_READ_ONLY, &ah);
    watch_many(a, ah, MANY, ids);

    Mmapio__Notice nt = MMAPIO__NOTICE__INIT;
    Mmapio__Request nq = MMAPIO__REQUEST__INIT;
    nt.handle = bh;
    nt.kind = MMAPIO__NOTICE_KIND__NOTICE_WRITE;
    nt.len = 8;
    nq.op_case = MMAPIO__REQUEST__OP_NOTICE;
    nq.notice = &nt;

    cr_assert_eq(raw_send(b, &nq, -1), 0);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 0);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 1);

    unwatch_many(a, ids, MANY - 1);
    cr_assert_eq(raw_send(b, &nq, -1), 0);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 0);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 1);

    unwatch_many(a, ids + MANY - 1, 1);
    cr_assert_eq(raw_send(b, &nq, -1), 0);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 0);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 0,
                 "a watches it no more");

    /* Watching again: heard again, once. */
    watch_many(a, ah, 2, ids);
    cr_assert_eq(raw_send(b, &nq, -1), 0);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 0);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_MODIFIED), 1);
    free(ids);
    close(a);
    close(b);
}

/* A client that holds a mapping read-write MANY times says it dropped
 * notices of all its holders: each watcher hears "anything may have
 * changed" of that mapping once, not once per holder. */
Test(holder_groups, lost_notices_told_once_per_mapping)
{
    int a = connect_hello(), b = connect_hello();
    uint64_t bh = create_g(b);
    uint64_t ah = 0, wid = 0;
    hold_many(a, 1, MMAPIO__MODE__MODE_READ_ONLY, &ah);
    watch_many(a, ah, 1, &wid);
    hold_many(b, MANY, MMAPIO__MODE__MODE_READ_WRITE, NULL);

    Mmapio__Notice nt = MMAPIO__NOTICE__INIT;
    Mmapio__Request nq = MMAPIO__REQUEST__INIT;
    nt.handle = 0;
    nt.lost = true;
    nq.op_case = MMAPIO__REQUEST__OP_NOTICE;
    nq.notice = &nt;
    cr_assert_eq(raw_send(b, &nq, -1), 0);
    cr_assert_eq(events_before_pong(b, MMAPIO__EVENT_KIND__EVENT_OVERFLOW), 0);
    cr_assert_eq(events_before_pong(a, MMAPIO__EVENT_KIND__EVENT_OVERFLOW), 1);
    (void)bh;
    close(a);
    close(b);
}
