/*
 * test_neighbours: bad neighbours do not starve the other clients.
 *
 * At the same time: a client that sends requests and never reads its
 * socket (it fills its queues until its own sends block: the daemon must
 * stop reading from it rather than queue without bound), clients that
 * connect and send nothing, that say hello and stall, that send half a
 * request (a truncated datagram) and stall, and two that flood pings as
 * fast as they can without waiting for the replies. Meanwhile an ordinary
 * library client's pings, opens and stats each complete promptly (the
 * slowest under a second: generous, this is about starvation, not speed),
 * the daemon's resident memory stays within a bound, and afterwards every
 * flooder and the deaf client get every reply, in order: nothing lost.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "robust.h"
#include "wire.h"

TestSuite(neighbours, .init = hz_setup, .fini = hz_teardown, .timeout = 90);

#define ROUNDS 200      /* at least, and for at least FLOOD_MS */
#define FLOOD_MS 1000
#define MAX_LATENCY_MS 1000
#define RSS_SLACK_KIB (32 * 1024)
#define FLOOD_MIN 5000
#define DEAF_CAP 200000 /* sends that never block: the daemon reads on */
#define SILENT 50

/* Receives one reply without waiting: 1 with its id, 0 if none waits,
 * or -errno. Events are skipped. Thread-safe. */
static int recv_reply_now(int fd, uint64_t *id)
{
    static __thread uint8_t buf[WIRE_DEFAULT_MAX_FRAME];
    for (;;) {
        int fds[WIRE_MAX_FDS];
        size_t n_fds = 0;
        long n = wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n_fds);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        wire_close_fds(fds, n_fds);
        Mmapio__ServerMessage *m =
            mmapio__server_message__unpack(NULL, (size_t)n, buf);
        if (!m)
            return -EBADMSG;
        bool reply = m->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY;
        if (reply) {
            *id = m->reply->id;
            if (m->reply->error)
                *id = UINT64_MAX;
        }
        mmapio__server_message__free_unpacked(m, NULL);
        if (reply)
            return 1;
    }
}

static void set_nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- flooders ---------------------------------------------------------- */

struct flood {
    int fd;
    atomic_bool *stop;
    uint64_t sent, got;
    char err[128];
};

static void *flood_thread(void *arg)
{
    struct flood *f = arg;
    for (;;) {
        bool sending = f->sent < FLOOD_MIN || !atomic_load(f->stop);
        if (!sending && f->got == f->sent)
            return NULL;
        struct pollfd p = { .fd = f->fd,
                            .events = POLLIN | (sending ? POLLOUT : 0) };
        int r = poll(&p, 1, 5000);
        if (r == 0) {
            snprintf(f->err, sizeof(f->err), "no progress for 5 s (%llu "
                     "sent, %llu answered)", (unsigned long long)f->sent,
                     (unsigned long long)f->got);
            return NULL;
        }
        if (r < 0 && errno == EINTR)
            continue;
        while (sending && f->sent < f->got + 100000) {
            r = rb_send_ping(f->fd, f->sent);
            if (r == -EAGAIN)
                break;
            if (r < 0) {
                snprintf(f->err, sizeof(f->err), "send: %s", strerror(-r));
                return NULL;
            }
            f->sent++;
        }
        uint64_t id;
        while ((r = recv_reply_now(f->fd, &id)) == 1) {
            if (id != f->got) {
                snprintf(f->err, sizeof(f->err), "reply %llu has id %llu",
                         (unsigned long long)f->got,
                         (unsigned long long)id);
                return NULL;
            }
            f->got++;
        }
        if (r < 0) {
            snprintf(f->err, sizeof(f->err), "receive: %s", strerror(-r));
            return NULL;
        }
    }
}

/* ---- the measured client --------------------------------------------- */

struct lat {
    int64_t max_ms;
    const char *max_op;
};

static void timed(struct lat *l, const char *op, int r, int64_t t0)
{
    int64_t ms = hz_now_ms() - t0;
    cr_assert_eq(r, MMAPIO_OK, "%s during the flood: %s", op,
                 mmapio_strerror(r));
    if (ms > l->max_ms) {
        l->max_ms = ms;
        l->max_op = op;
    }
}

/* Half of a valid Open request's bytes. */
static size_t half_request(uint8_t *buf, size_t cap)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = (char *)"n.dat";
    open.mode = MMAPIO__MODE__MODE_READ_WRITE;
    req.id = 5;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;
    size_t len = mmapio__request__get_packed_size(&req);
    cr_assert_leq(len, cap);
    mmapio__request__pack(&req, buf);
    return len / 2;
}

Test(neighbours, bad_neighbours_do_not_starve_others)
{
    mmapio_client *c = hz_client();
    mmapio_map *held, *m;
    hz_assert_ok(mmapio_create_rw(c, "n.dat", 65536, &held));
    hz_assert_ok(mmapio_ping(c));
    usleep(100000);
    long rss0 = rb_rss_kib(hz.pid);
    cr_assert_gt(rss0, 0);

    /* Silent, stalled after hello, stalled after half a request. */
    int silent[SILENT];
    for (int i = 0; i < SILENT; i++) {
        silent[i] = raw_connect(hz.sock);
        cr_assert_geq(silent[i], 0);
    }
    int stalled = rb_raw_hello(hz.sock), half = rb_raw_hello(hz.sock);
    cr_assert_geq(stalled, 0);
    cr_assert_geq(half, 0);
    uint8_t hbuf[256];
    size_t hlen = half_request(hbuf, sizeof(hbuf));
    cr_assert_eq(raw_send_bytes(half, hbuf, hlen, -1), 0);

    /* Deaf: sends until its own socket is full, never reads. */
    int deaf = rb_raw_hello(hz.sock);
    cr_assert_geq(deaf, 0);
    set_nonblocking(deaf);
    uint64_t deaf_sent = 0;
    for (;;) {
        int r = rb_send_ping(deaf, deaf_sent);
        if (r == -EAGAIN) {
            /* let the daemon take what it will, then try once more */
            usleep(50000);
            if ((r = rb_send_ping(deaf, deaf_sent)) == -EAGAIN)
                break;
        }
        cr_assert_eq(r, 0, "deaf client's send: %s", strerror(-r));
        deaf_sent++;
        cr_assert_lt(deaf_sent, DEAF_CAP, "the daemon took %d requests from "
                     "a client that reads no replies: its queue for it has "
                     "no bound", DEAF_CAP);
    }

    /* Two flooders. */
    atomic_bool stop = false;
    struct flood fl[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        fl[i] = (struct flood){ .fd = rb_raw_hello(hz.sock), .stop = &stop };
        cr_assert_geq(fl[i].fd, 0);
        set_nonblocking(fl[i].fd);
        cr_assert_eq(pthread_create(&th[i], NULL, flood_thread, &fl[i]), 0);
    }
    usleep(50000);

    /* The ordinary client, meanwhile. */
    struct lat lat = { 0, "none" };
    int64_t start = hz_now_ms();
    int rounds = 0;
    for (; rounds < ROUNDS || hz_now_ms() - start < FLOOD_MS; rounds++) {
        int64_t t0 = hz_now_ms();
        timed(&lat, "ping", mmapio_ping(c), t0);
        t0 = hz_now_ms();
        int r = mmapio_open_ro(c, "n.dat", &m);
        timed(&lat, "open", r, t0);
        mmapio_unmap(m);
        t0 = hz_now_ms();
        timed(&lat, "stat", mmapio_refresh(held), t0);
    }
    int64_t took = hz_now_ms() - start;
    long rss1 = rb_rss_kib(hz.pid);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);

    cr_log_info("neighbours: %d rounds in %lld ms, slowest %s %lld ms; "
                "flooders %llu + %llu pings; deaf sent %llu; VmRSS %ld -> "
                "%ld KiB", rounds, (long long)took, lat.max_op,
                (long long)lat.max_ms, (unsigned long long)fl[0].got,
                (unsigned long long)fl[1].got,
                (unsigned long long)deaf_sent, rss0, rss1);
    cr_assert_lt(lat.max_ms, MAX_LATENCY_MS, "slowest %s took %lld ms among "
                 "bad neighbours", lat.max_op, (long long)lat.max_ms);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(fl[i].err[0], '\0', "flooder %d: %s", i, fl[i].err);
        cr_assert_geq(fl[i].got, FLOOD_MIN);
        cr_assert_eq(fl[i].got, fl[i].sent);
    }
    if (rb_rss_meaningful())
        cr_assert_lt(rss1 - rss0, RSS_SLACK_KIB,
                     "daemon VmRSS grew from %ld to %ld KiB", rss0, rss1);

    /* The deaf client reads at last: every reply, in order. */
    uint64_t got = 0;
    int64_t end = hz_now_ms() + 10000;
    while (got < deaf_sent && hz_now_ms() < end) {
        struct pollfd p = { .fd = deaf, .events = POLLIN };
        poll(&p, 1, 100);
        uint64_t id;
        int r;
        while ((r = recv_reply_now(deaf, &id)) == 1) {
            cr_assert_eq(id, got, "deaf client's reply %llu has id %llu",
                         (unsigned long long)got, (unsigned long long)id);
            got++;
        }
        cr_assert_geq(r, 0, "deaf client: %s", strerror(-r));
    }
    cr_assert_eq(got, deaf_sent, "the deaf client got %llu of %llu replies",
                 (unsigned long long)got, (unsigned long long)deaf_sent);
    cr_assert_eq(rb_send_ping(deaf, got), 0);
    uint64_t id = 0;
    for (int i = 0; i < 100 && recv_reply_now(deaf, &id) == 0; i++)
        usleep(10000);
    cr_assert_eq(id, got, "the deaf client's connection is not served");

    /* The half request got an error (not a crash, not a hang). */
    int err = 0;
    cr_assert_eq(raw_expect_refusal(half, 5000, &err), 0);
    cr_assert_eq(err, MMAPIO_E_PROTOCOL, "half a request: %d", err);

    hz_assert_ok(mmapio_ping(c));
    for (int i = 0; i < SILENT; i++)
        close(silent[i]);
    close(stalled);
    close(half);
    close(deaf);
    close(fl[0].fd);
    close(fl[1].fd);
    mmapio_unmap(held);
    mmapio_disconnect(c);
}
