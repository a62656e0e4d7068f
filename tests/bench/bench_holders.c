/*
 * bench_holders: what a request that counts a mapping's holders costs the
 * daemon's loop when one uid holds that mapping very many times (its own
 * anonymous mapping, opened PER times on each of SESSIONS connections).
 * A refused shrink (ring settle, then the look for holders that hung up,
 * session_reap_gone), a stat (the settle alone), a granted grow and a
 * policy change (each holding session told once), each the best of 50
 * round trips, beside a ping on the same connection (the floor). With
 * --watch each of those connections also watches the mapping PER times,
 * and a write notice (then a ping: notices have no reply) is timed too.
 *
 *   build/tests/bench/bench_holders [--sessions N] [--per N] [--watch]
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/benchkit.h"
#include "wire.h"

const char bench_name[] = "bench_holders";

#define BASE (UINT64_C(2) << 20) /* the mapping's size at first */

static void send_req(int fd, const Mmapio__Request *q)
{
    if (raw_send(fd, q, -1) < 0)
        die("send failed");
}

static char last_msg[256]; /* the last reply's message */

/* The next reply's error; *handle the grant's, when it is one. */
static int recv_reply(int fd, uint64_t *handle)
{
    Mmapio__ServerMessage *rep;
    int gfd = -1;
    if (raw_recv(fd, 20000, &rep, &gfd) < 0)
        die("no reply");
    int err = rep->reply->error;
    snprintf(last_msg, sizeof(last_msg), "%s",
             rep->reply->message ? rep->reply->message : "");
    if (handle && rep->reply->result_case == MMAPIO__REPLY__RESULT_OPEN)
        *handle = rep->reply->open->handle;
    mmapio__server_message__free_unpacked(rep, NULL);
    if (gfd >= 0)
        close(gfd);
    return err;
}

/* n watches of `handle`, 32 in flight. */
static void watch_many(int fd, uint64_t handle, long n)
{
    Mmapio__Watch w = MMAPIO__WATCH__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    w.handle = handle;
    q.op_case = MMAPIO__REQUEST__OP_WATCH;
    q.watch = &w;
    for (long done = 0; done < n;) {
        long batch = n - done < 32 ? n - done : 32;
        for (long i = 0; i < batch; i++) {
            q.id = (uint64_t)(done + i) + 10;
            send_req(fd, &q);
        }
        for (long i = 0; i < batch; i++)
            if (recv_reply(fd, NULL))
                die("watch %ld refused", done + i);
        done += batch;
    }
}

/* n opens of anonymous `name`, 32 in flight; the last grant's handle. */
static uint64_t open_many(int fd, const char *name, long n, int mode)
{
    uint64_t handle = 0;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    o.path = (char *)name;
    o.anonymous = true;
    o.mode = mode;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &o;
    for (long done = 0; done < n;) {
        long batch = n - done < 32 ? n - done : 32;
        for (long i = 0; i < batch; i++) {
            q.id = (uint64_t)(done + i) + 10;
            send_req(fd, &q);
        }
        for (long i = 0; i < batch; i++)
            if (recv_reply(fd, &handle))
                die("open %ld refused", done + i);
        done += batch;
    }
    return handle;
}

/* Best round trip of q over 50, in microseconds; its error in *err.
 * vary (NULL: none) changes q before round i; `must` (NULL: any error
 * is the caller's to judge) names a request every round of which must
 * be granted. */
static double best_us(int fd, Mmapio__Request *q,
                      void (*vary)(Mmapio__Request *q, int i), int *err,
                      const char *must)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < 50; i++) {
        if (vary)
            vary(q, i);
        int64_t t = now_ns();
        send_req(fd, q);
        *err = recv_reply(fd, NULL);
        t = now_ns() - t;
        if (must && *err)
            die("%s %d refused (%d: %s)", must, i, *err, last_msg);
        best = t < best ? t : best;
    }
    return (double)best / 1e3;
}

/* A larger size each round: every grow granted. */
static void grow_more(Mmapio__Request *q, int i)
{
    q->resize->size = BASE + 4096 * (uint64_t)(i + 1);
}

/* Between two kinds: every round a change. */
static void flip_policy(Mmapio__Request *q, int i)
{
    q->set_policy->policy->kind = i % 2 ? MMAPIO__FLUSH_KIND__FLUSH_NEVER
                                        : MMAPIO__FLUSH_KIND__FLUSH_MANUAL;
}

static int connect_hello(const char *sock)
{
    int fd = raw_connect(sock);
    if (fd < 0 || raw_hello(fd, WIRE_PROTOCOL) != 0)
        die("cannot connect");
    return fd;
}

int main(int argc, char **argv)
{
    long sessions = 64, per = 4000;
    bool watch = false;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--watch"))
            watch = true, i--;
        else if (i + 1 == argc)
            die("usage: %s [--sessions N] [--per N] [--watch]", argv[0]);
        else if (!strcmp(argv[i], "--sessions"))
            sessions = bench_num(argv[i + 1], 1, 200);
        else if (!strcmp(argv[i], "--per"))
            per = bench_num(argv[i + 1], 1, 4000);
        else
            die("usage: %s [--sessions N] [--per N] [--watch]", argv[0]);
    }
    struct hz_daemon d;
    bench_start_daemon(&d, NULL, NULL, 0);
    int a = connect_hello(d.sock);
    int fd = -1;
    /* Past arena_max (1 MiB): its own memfd, free to grow. */
    if (raw_open(a, "many", true, MMAPIO__MODE__MODE_READ_WRITE, true, BASE,
                 &fd) != 0)
        die("cannot create the mapping");
    if (fd >= 0)
        close(fd);
    uint64_t h = open_many(a, "many", 1, MMAPIO__MODE__MODE_READ_WRITE);
    for (long s = 0; s < sessions; s++) {
        int c = connect_hello(d.sock);
        uint64_t ch = open_many(c, "many", per, MMAPIO__MODE__MODE_READ_ONLY);
        if (watch)
            watch_many(c, ch, per);
    }

    int err;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__Resize rs = MMAPIO__RESIZE__INIT;
    rs.handle = h;
    rs.size = 2048;
    q.id = 1;
    q.op_case = MMAPIO__REQUEST__OP_RESIZE;
    q.resize = &rs;
    double shrink = best_us(a, &q, NULL, &err, NULL);
    if (err != MMAPIO_E_BUSY)
        die("the shrink was not refused (%d)", err);
    Mmapio__Stat st = MMAPIO__STAT__INIT;
    st.handle = h;
    q.op_case = MMAPIO__REQUEST__OP_STAT;
    q.stat = &st;
    double stat = best_us(a, &q, NULL, &err, NULL);

    /* Grows, then policy changes: each round granted. */
    q.op_case = MMAPIO__REQUEST__OP_RESIZE;
    q.resize = &rs; /* the op is a union: stat's took its place */
    double grow = best_us(a, &q, grow_more, &err, "grow");
    Mmapio__SetPolicy sp = MMAPIO__SET_POLICY__INIT;
    Mmapio__FlushPolicy fp = MMAPIO__FLUSH_POLICY__INIT;
    sp.handle = h;
    sp.policy = &fp;
    q.op_case = MMAPIO__REQUEST__OP_SET_POLICY;
    q.set_policy = &sp;
    double policy = best_us(a, &q, flip_policy, &err, "set_policy");

    Mmapio__Ping pg = MMAPIO__PING__INIT;
    q.op_case = MMAPIO__REQUEST__OP_PING;
    q.ping = &pg;
    double ping = best_us(a, &q, NULL, &err, NULL);

    /* A write notice, then a ping (its reply says the notice was read). */
    double notice = 0;
    if (watch) {
        Mmapio__Notice nt = MMAPIO__NOTICE__INIT;
        Mmapio__Request nq = MMAPIO__REQUEST__INIT;
        nt.handle = h;
        nt.kind = MMAPIO__NOTICE_KIND__NOTICE_WRITE;
        nt.len = 8;
        nq.op_case = MMAPIO__REQUEST__OP_NOTICE;
        nq.notice = &nt;
        int64_t best = INT64_MAX;
        for (int i = 0; i < 50; i++) {
            int64_t t = now_ns();
            send_req(a, &nq);
            send_req(a, &q);
            err = recv_reply(a, NULL);
            t = now_ns() - t;
            best = t < best ? t : best;
        }
        notice = (double)best / 1e3;
    }
    bench_print_load("at the end", "load average: unknown");
    printf("%ld holders of one mapping: refused shrink %.1f us, stat %.1f "
           "us, grow %.1f us, set_policy %.1f us; ping (floor) %.1f us\n",
           sessions * per + 2, shrink, stat, grow, policy, ping);
    if (watch)
        printf("%ld watches of it: write notice + ping %.1f us\n",
               sessions * per, notice);
    hz_stop(&d);
    return 0;
}
