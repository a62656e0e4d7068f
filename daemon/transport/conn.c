/* conn: framing, queues and lifetime of one client (see conn.h). */
#include "conn.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access.h"
#include "closer.h"
#include "config.h"
#include "evhold.h"
#include "log.h"
#include "ops.h"
#include "ringdrain.h"
#include "wire.h"

/*
 * One connection's turn: ONE request, then the others' (the read event is
 * level-triggered, so a connection with more waiting is called again on
 * the loop's next pass, round robin). One-way notices are cheap and
 * unanswered: a turn reads on through up to NOTICES_PER_TURN of them
 * while they took less than NOTICE_BUDGET_NS of the loop (one may walk
 * many watches). After a request it does not read again (for a client
 * waiting on its reply, an EAGAIN wasted) unless a notice run is open
 * (ops.h): then it reads on until the socket is empty, where the run
 * ends, or through one more request at most.
 */
#define NOTICES_PER_TURN 16
#define NOTICE_BUDGET_NS 100000
#define REQUESTS_PER_TURN 2

/* Held events (evhold.h). A reader is behind when this much it has not
 * read yet (SIOCOUTQ counts each frame's kernel size: a small event is
 * about 0.5-1.3 KiB of it, so 50-130 events): a watcher with that much
 * to read has time to spare; one that keeps up (a ring's consumer, at
 * most a ring's worth of events, a dozen or so, behind its producer) is
 * never held, so never waits for the daemon's next look, which would
 * stall a producer waiting for room. How soon, and at most how late,
 * the daemon looks again whether the reader caught up when no new event
 * comes: */
#define HELD_BEHIND_BYTES (64u << 10)
#define HELD_FIRST_MS 1
#define HELD_MAX_MS 1000   /* a reader that reads nothing: once a second */

/*
 * A run of notices ends only at a read that finds the socket empty
 * (ops_drained). A turn cut short (or reading stopped) with a run open may
 * have taken the last datagram: no readiness would then ever come for that
 * read. One peek, only then, says whether the socket is empty now; if not,
 * the level-triggered read event brings the connection back in its turn.
 */
static void check_drained(struct conn *c)
{
    if (c->s.notice_run == 0)
        return;
    char b;
    ssize_t n = recv(c->fd, &b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        ops_drained(&c->s);
}

/* Linux 6.16; the same number on every architecture that uses
 * asm-generic/socket.h. Elsewhere setsockopt says ENOPROTOOPT and the
 * closer thread does the work. */
#ifndef SO_PASSRIGHTS
#if defined(__alpha__) || defined(__mips__) || defined(__hppa__) || \
    defined(__sparc__)
#define SO_PASSRIGHTS (-1)
#else
#define SO_PASSRIGHTS 83
#endif
#endif

/* Does the kernel refuse fds on our sockets? -1 unknown, 0 no, 1 yes. */
static int kernel_refuses = -1;

struct frame {
    struct frame *next;
    int fd;          /* owned; -1 if none */
    bool track;      /* its fd counts while in flight (fds_sent) */
    bool is_event;
    size_t len;
    uint8_t data[];
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_hello_late(evutil_socket_t fd, short what, void *arg);
static const struct session_port port;

/* Doubly linked lists through the connection: its uid's, and the fd
 * budget's two. */
#define LIST_PUT(head, c, next, prev)                                        \
    do {                                                                     \
        (c)->prev = NULL;                                                    \
        (c)->next = (head);                                                  \
        if (head)                                                            \
            (head)->prev = (c);                                              \
        (head) = (c);                                                        \
    } while (0)
#define LIST_DROP(head, c, next, prev)                                       \
    do {                                                                     \
        if ((c)->prev)                                                       \
            (c)->prev->next = (c)->next;                                     \
        else                                                                 \
            (head) = (c)->next;                                              \
        if ((c)->next)                                                       \
            (c)->next->prev = (c)->prev;                                     \
        (c)->next = (c)->prev = NULL;                                        \
    } while (0)

/* Counts c among its uid's connections. 0 or -ENOMEM. */
static int join_uid(struct conn *c, uid_t uid)
{
    struct uid_use *e = uids_get(&c->ctx->uids, uid);
    if (!e)
        return -ENOMEM;
    c->use = e;
    e->conns++;
    LIST_PUT(e->list, c, uid_next, uid_prev);
    return 0;
}

static void leave_uid(struct conn *c)
{
    struct uid_use *e = c->use;
    if (!e)
        return;
    LIST_DROP(e->list, c, uid_next, uid_prev);
    e->conns--;
    c->use = NULL;
    uids_put(&c->ctx->uids, e);
}

/* The hello deadline: a common timeout, so 10,000 of them cost O(1) each. */
static int arm_hello(struct conn *c)
{
    if (!c->ctx->hello_tv)
        return 0;
    c->ev_hello = evtimer_new(c->ctx->base, on_hello_late, c);
    if (!c->ev_hello || evtimer_add(c->ev_hello, c->ctx->hello_tv) < 0)
        return -ENOMEM;
    return 0;
}

static void disarm_hello(struct conn *c)
{
    if (c->ev_hello)
        event_free(c->ev_hello);
    c->ev_hello = NULL;
}

/* SO_PASSRIGHTS off: a sender's SCM_RIGHTS fails with EPERM and no fd
 * ever reaches us. 0, or -errno (-ENOPROTOOPT: the kernel lacks it). */
static int refuse_fds(int fd)
{
    static int forced_off = -1;
    int off = 0;
    if (forced_off < 0)
        forced_off = getenv("MMAPIOD_NO_PASSRIGHTS") != NULL;
    if (forced_off || SO_PASSRIGHTS < 0)
        return -ENOPROTOOPT;
    if (setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &off, sizeof(off)) < 0)
        return -errno;
    return 0;
}

/*
 * mmapio_from_fd is the one request that carries an fd. The stray-fd
 * protection stays whole: a connection accepts fds only after its client
 * asked for it (FdOffer, answered after SO_PASSRIGHTS is back on for that
 * socket alone), and only until the first datagram that carries fds (or
 * the FromFd) is read; then it refuses them again. Of that datagram, one
 * fd on a FromFd request is taken (and validated, fromfd.c); any other fd
 * — more than one, on another request, or sent in the window by a client
 * that armed its own socket — goes to the closer thread exactly as on a
 * kernel without SO_PASSRIGHTS (closer.h), where the same bounds drop a
 * client that outruns it. A client can thus only ever send fds on its
 * own socket, one window per round trip it pays for, and never make the
 * loop close one.
 */
static void port_want_fd(struct session *s);
static bool port_gone(struct session *s);
static void disarm_fds(struct conn *c)
{
    c->s.fd_wanted = false;
    if (kernel_refuses == 1)
        (void)refuse_fds(c->fd);
}

void conn_refuse_fds_on(int listen_fd)
{
    int r = refuse_fds(listen_fd);
    kernel_refuses = r == 0;
    if (r == 0)
        log_debug("sockets refuse client fds (SO_PASSRIGHTS)");
    else
        log_info("no SO_PASSRIGHTS (%s): client fds are closed on a thread",
                 strerror(-r));
}

/* ---- fds held for clients: per connection, per uid, in all ---------- */

#define FDS_FIRST_MS 1
#define FDS_MAX_MS 64

/* A closed socket whose peer has not received every fd sent on it: kept
 * open (shut down) until it has, in its connection's place (max_clients,
 * its uid's connections: the socket and the first hello's fd are paid
 * for there) with its counted fds still counted (conn.h). */
struct fd_drain {
    struct fd_drain *next;
    int fd;
    uint32_t fds;             /* counted fds in flight */
    struct uid_use *use;      /* holds a connection's place of its uid */
};

/* A drain's socket is closed: its connection's place is given back. */
static void drain_free(struct conn_ctx *ctx, struct fd_drain *x)
{
    x->use->conns--;
    ctx->n_drains--;
    uids_put(&ctx->uids, x->use);
    free(x);
}

static uint64_t max_queued_fds(struct conn_ctx *ctx)
{
    struct rlimit rl;
    if (ctx->max_queued_fds)
        return ctx->max_queued_fds;
    /* The share of the fd budget config_fit_fds kept for them. */
    ctx->max_queued_fds = ctx->cfg->max_queued_fds_total;
    if (ctx->max_queued_fds)
        return ctx->max_queued_fds;
    ctx->max_queued_fds = 1024 / 4;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        ctx->max_queued_fds = rl.rlim_cur / 4;
    if (ctx->max_queued_fds < 64)
        ctx->max_queued_fds = 64;
    return ctx->max_queued_fds;
}

/* What all clients together may hold: the last sixteenth of
 * max_queued_fds_total is root's and admin_group's, so that an admin
 * (mmapioctl) is still read when other uids filled the rest. */
static uint64_t fds_shared(struct conn_ctx *ctx)
{
    uint64_t max = max_queued_fds(ctx);
    return max - max / 16;
}

static uint64_t fds_limit(const struct conn *c)
{
    return c->admin ? max_queued_fds(c->ctx) : fds_shared(c->ctx);
}

static void fds_arm(struct conn_ctx *ctx, uint32_t ms);
static void close_socket(int fd, uid_t uid);
static int64_t now_ns(void);

/* c on ctx->fd_flying while it has counted fds in flight. */
static void fl_update(struct conn *c)
{
    bool want = !c->closed && c->inflight > 0;
    if (want == c->fl_on)
        return;
    if (want)
        LIST_PUT(c->ctx->fd_flying, c, fl_next, fl_prev);
    else
        LIST_DROP(c->ctx->fd_flying, c, fl_next, fl_prev);
    c->fl_on = want;
}

static void fds_hold(struct conn_ctx *ctx, struct uid_use *u, uint32_t n)
{
    if (u)
        u->fds += n;
    ctx->queued_fds += n;
}

/* n fds of u's no longer held: stalled connections are looked at soon
 * when that takes u under its cap or everyone under the total. */
static void fds_release(struct conn_ctx *ctx, struct uid_use *u, uint32_t n)
{
    uint32_t cap = ctx->cfg->max_queued_fds_per_uid;
    uint64_t shared = fds_shared(ctx), max = max_queued_fds(ctx);
    bool was_capped = u && u->fds >= cap;
    bool was_full = ctx->queued_fds >= shared, was_out = ctx->queued_fds >= max;
    if (u)
        u->fds -= n <= u->fds ? n : u->fds;
    ctx->queued_fds -= n <= ctx->queued_fds ? n : ctx->queued_fds;
    if (ctx->n_stalled &&
        ((was_capped && u->fds < cap) ||
         (was_full && ctx->queued_fds < shared) ||
         (was_out && ctx->queued_fds < max)))
        fds_arm(ctx, 0);
}

/* Counts one more queued fd toward c. 0, or -EMFILE past
 * max_queued_fds_total (a safety net: a connection is read only under
 * it, and one request queues one fd at most). */
static int fds_queued(struct conn *c)
{
    struct conn_ctx *ctx = c->ctx;
    if (!c->use || ctx->queued_fds >= fds_limit(c))
        return -EMFILE;
    fds_hold(ctx, c->use, 1);
    c->n_out_fds++;
    return 0;
}

/* A queued fd left the queue: sent (in flight now, still held, when
 * `track`; the first hello's, not counted, else) or dropped. */
static void fds_dequeued(struct conn *c, bool sent, bool track)
{
    c->n_out_fds--;
    if (sent && track) {
        c->inflight++;
        fl_update(c);
        return;
    }
    c->hello_inflight |= sent;
    fds_release(c->ctx, c->use, 1);
}

/* An fd sent straight away: in flight, held (the first hello's: in
 * flight, not counted, as long as the connection lives). */
static void fds_sent(struct conn *c)
{
    if (c->fd_untracked) {
        c->hello_inflight = true;
        return;
    }
    fds_hold(c->ctx, c->use, 1);
    c->inflight++;
    fl_update(c);
}

/* Bytes sent on fd that its peer has not taken off yet (SIOCOUTQ: each
 * frame's kernel size); -1 when the kernel does not say. */
static int socket_unread(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCOUTQ, &n) < 0 || n < 0 ? -1 : n;
}

/* Bytes the peer sent on fd that we have not read yet (SIOCINQ); -1 when
 * the kernel does not say. */
static int socket_unread_in(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCINQ, &n) < 0 || n < 0 ? -1 : n;
}

/* Nothing left in c's send queue: the client received every fd sent. */
static bool sent_all_received(int fd)
{
    return socket_unread(fd) == 0;
}

static void reclaim(struct conn *c)
{
    if ((c->inflight == 0 && !c->hello_inflight) || c->fd < 0 ||
        !sent_all_received(c->fd))
        return;
    uint32_t n = c->inflight;
    c->inflight = 0;
    c->hello_inflight = false;
    fl_update(c);
    if (n)
        fds_release(c->ctx, c->use, n);
}

/* Pure: may c be read as far as fds go? A uid at its cap is not read at
 * all, so that it can never hold more than its share however many
 * connections it has; nobody is read while all of them together hold the
 * total (each request can add one fd: the total is a bound); a
 * connection is not read while it has its own share queued. Fds in
 * flight count toward the uid and the total only: a client that reads
 * its replies but leaves events unread for a while (the socket is then
 * seldom seen empty) is held back only once its uid's share is out. */
static bool fds_allow_reading(const struct conn *c)
{
    const struct config *cfg = c->ctx->cfg;
    if (c->use && c->use->fds >= cfg->max_queued_fds_per_uid)
        return false;
    return c->ctx->queued_fds < fds_limit(c) &&
           c->n_out_fds < cfg->max_queued_fds;
}

static void update_reading(struct conn *c);

/*
 * Looks again whether fds were received where that could let a stalled
 * connection be read: its own, and its uid's other connections' when the
 * uid is at its cap, and everyone's when all together hold the total;
 * then at every closed socket still draining, then at the stalled
 * connections. Each look is one ioctl: a pass looks at what stalled, and
 * at most at the uids that stalled (their cap bounds how many of their
 * connections hold fds), not at every client. Again in 1 ms while
 * something moved, backing off to FDS_MAX_MS while nothing does, stopped
 * when nothing is left to wait for.
 */
static void fds_pass(evutil_socket_t fd, short what, void *arg)
{
    struct conn_ctx *ctx = arg;
    const struct config *cfg = ctx->cfg;
    uint64_t before = ctx->queued_fds;
    uint32_t stalled = ctx->n_stalled;
    (void)fd;
    (void)what;
    ctx->fds_last_ns = now_ns();
    ctx->pass++;
    for (struct fd_drain **d = &ctx->drains; *d;) {
        struct fd_drain *x = *d;
        if (!sent_all_received(x->fd)) {
            d = &x->next;
            continue;
        }
        *d = x->next;
        close_socket(x->fd, x->use->uid);
        if (x->fds)
            fds_release(ctx, x->use, x->fds);
        drain_free(ctx, x);
    }
    if (ctx->queued_fds >= fds_shared(ctx)) {
        for (struct conn *c = ctx->fd_flying, *next; c; c = next) {
            next = c->fl_next; /* reclaim takes c off, never next */
            reclaim(c);
        }
    } else {
        for (struct conn *c = ctx->fd_stalled, *next; c; c = next) {
            next = c->st_next;
            reclaim(c);
            struct uid_use *u = c->use;
            if (!u || u->fds < cfg->max_queued_fds_per_uid || u->pass == ctx->pass)
                continue;
            u->pass = ctx->pass;
            for (struct conn *o = u->list; o; o = o->uid_next)
                if (o->inflight)
                    reclaim(o);
        }
    }
    for (struct conn *c = ctx->fd_stalled, *next; c; c = next) {
        next = c->st_next; /* update_reading may take c off, never next */
        update_reading(c);
    }
    if (!ctx->n_stalled && !ctx->drains)
        return;
    bool moved = ctx->queued_fds < before || ctx->n_stalled < stalled;
    uint32_t ms = moved ? FDS_FIRST_MS : ctx->fds_ms * 2;
    fds_arm(ctx, ms < FDS_MAX_MS ? ms : FDS_MAX_MS);
}

/* The pass in ms (0: as soon as may be), unless one is due sooner; at
 * most one a millisecond, however often releases ask. */
static void fds_arm(struct conn_ctx *ctx, uint32_t ms)
{
    if (!ctx->ev_fds &&
        !(ctx->ev_fds = evtimer_new(ctx->base, fds_pass, ctx)))
        return; /* out of memory: the next release or stall tries again */
    if (ms == 0 && now_ns() - ctx->fds_last_ns < 1000000)
        ms = 1;
    struct timeval tv = { ms / 1000, (suseconds_t)(ms % 1000) * 1000 };
    if (evtimer_pending(ctx->ev_fds, NULL) && ms >= ctx->fds_ms)
        return;
    ctx->fds_ms = ms ? ms : FDS_FIRST_MS;
    evtimer_add(ctx->ev_fds, &tv);
}

/* c is or is no longer stalled on the fd budget. */
static void set_fd_stalled(struct conn *c, bool stalled)
{
    struct conn_ctx *ctx = c->ctx;
    if (stalled == c->fd_stalled)
        return;
    c->fd_stalled = stalled;
    if (stalled) {
        LIST_PUT(ctx->fd_stalled, c, st_next, st_prev);
        ctx->n_stalled++;
        fds_arm(ctx, FDS_FIRST_MS);
    } else {
        LIST_DROP(ctx->fd_stalled, c, st_next, st_prev);
        ctx->n_stalled--;
    }
}

/* At the close of c: if its peer has not received every fd sent yet,
 * the socket stays, in the connection's place, until it has; what was
 * counted stays counted, and nothing is added (a close needs no read:
 * nothing may grow past the read checks here). */
static bool keep_draining(struct conn *c)
{
    reclaim(c);
    if ((c->inflight == 0 && !c->hello_inflight) || !c->use)
        return false;
    struct fd_drain *x = malloc(sizeof(*x));
    if (!x)
        return false;
    shutdown(c->fd, SHUT_RDWR); /* the client sees the end after them */
    *x = (struct fd_drain){ .next = c->ctx->drains, .fd = c->fd,
                            .fds = c->inflight, .use = c->use };
    c->use->conns++;             /* its uid's place, and max_clients' */
    c->ctx->n_drains++;
    c->inflight = 0;
    c->hello_inflight = false;
    c->ctx->drains = x;
    fds_arm(c->ctx, FDS_FIRST_MS);
    return true;
}

void conn_ctx_fini(struct conn_ctx *ctx)
{
    while (ctx->drains) {
        struct fd_drain *x = ctx->drains;
        ctx->drains = x->next;
        close(x->fd);
        drain_free(ctx, x);
    }
    if (ctx->ev_fds)
        event_free(ctx->ev_fds);
    ctx->ev_fds = NULL;
}

int conn_new(struct conn_ctx *ctx, int fd, struct conn **out)
{
    struct peer_cred cred;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->ctx = ctx;
    c->fd = fd;
    c->refs = 1;
    c->out_tail = &c->out;
    if (kernel_refuses != 0)
        (void)refuse_fds(fd); /* inherited from the listener where it works */
    int r = peer_identity(fd, &cred);
    c->ev_read = event_new(ctx->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(ctx->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (r == 0 && (r = join_uid(c, cred.uid)) == 0)
        r = arm_hello(c);
    c->admin = r == 0 && access_is_admin(&cred, ctx->cfg->has_admin_group,
                                         ctx->cfg->admin_gid);
    if (r < 0 || !c->ev_read || !c->ev_write || event_add(c->ev_read, NULL) < 0) {
        /* Not on the daemon's list yet: undo by hand, not conn_close. */
        if (c->ev_read)
            event_free(c->ev_read);
        if (c->ev_write)
            event_free(c->ev_write);
        disarm_hello(c);
        leave_uid(c);
        close(fd);
        free(c);
        return r < 0 ? r : -ENOMEM;
    }
    c->reading = true;
    session_start(&c->s, ctx->handlers, &port, &cred);
    *out = c;
    return 0;
}


struct conn *conn_ref(struct conn *c)
{
    c->refs++;
    return c;
}

/* len bytes left c's queue: the uid's count follows; a uid back under its
 * budget has all its connections read again; memory goes back later. */
static void unqueue(struct conn *c, size_t len)
{
    struct conn_ctx *ctx = c->ctx;
    uint64_t max = ctx->cfg->max_queued_bytes_per_uid;
    c->out_bytes -= len <= c->out_bytes ? len : c->out_bytes;
    ctx->freed += len;
    if (ctx->ev_trim && ctx->freed >= 1024 * 1024 &&
        !evtimer_pending(ctx->ev_trim, NULL)) {
        struct timeval soon = { 0, 200 * 1000 };
        evtimer_add(ctx->ev_trim, &soon);
    }
    if (!c->use)
        return;
    bool was_over = c->use->queued >= max;
    c->use->queued -= len <= c->use->queued ? len : c->use->queued;
    if (!was_over || c->use->queued >= max)
        return;
    for (struct conn *o = c->use->list; o; o = o->uid_next)
        if (o != c && !o->closed)
            update_reading(o);
}

static void free_frames(struct conn *c)
{
    while (c->out) {
        struct frame *f = c->out;
        c->out = f->next;
        unqueue(c, f->len);
        if (f->fd >= 0) {
            close(f->fd); /* our own: a file or memfd of a mapping */
            fds_dequeued(c, false, false);
        }
        free(f);
    }
    c->out_tail = &c->out;
    c->n_out = c->n_events = 0;
}

void conn_unref(struct conn *c)
{
    if (!c || --c->refs > 0)
        return;
    free_frames(c);
    free(c);
}

/* Closes a client's socket. Where fds are not refused, datagrams still
 * queued on it may carry fds, which the socket's last close would drop
 * (and close) on the closing thread: the closer closes it. */
static void close_socket(int fd, uid_t uid)
{
    if (kernel_refuses == 1) {
        close(fd);
        return;
    }
    shutdown(fd, SHUT_RDWR); /* the client sees the end now */
    closer_give(uid, fd);
}

void conn_refuse(int fd, uid_t uid, int code, const char *text)
{
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    Mmapio__ServerMessage sm = MMAPIO__SERVER_MESSAGE__INIT;
    uint8_t buf[512];
    r.id = 0; /* answers no request: the connection's end */
    r.error = code;
    r.message = (char *)text;
    sm.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    sm.reply = &r;
    size_t len = mmapio__server_message__get_packed_size(&sm);
    /* A fresh socket's buffer is empty: this never waits, and if it
     * cannot go at once the client sees the close alone. */
    if (len <= sizeof(buf)) {
        mmapio__server_message__pack(&sm, buf);
        (void)send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    close_socket(fd, uid);
}

void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    ringdrain_end(&c->s); /* its last writes reach watchers first */
    /* and the notices it may have dropped, or we leave unread (asked of
     * the socket only when it holds something they could be about) */
    ops_closing(&c->s, c->fd >= 0 && c->s.holders.first &&
                           socket_unread_in(c->fd) > 0);
    session_end(&c->s);
    disarm_hello(c);
    if (c->ev_read)
        event_free(c->ev_read);
    if (c->ev_write)
        event_free(c->ev_write);
    if (c->ev_held)
        event_free(c->ev_held);
    c->ev_read = c->ev_write = c->ev_held = NULL;
    free(c->held);
    c->held = NULL;
    free_frames(c);
    set_fd_stalled(c, false);
    bool kept = keep_draining(c); /* before leave_uid: counted to the uid */
    if (c->inflight) {
        fds_release(c->ctx, c->use, c->inflight);
        c->inflight = 0;
    }
    fl_update(c);
    leave_uid(c);
    if (!kept)
        close_socket(c->fd, c->s.cred.uid);
    c->fd = -1;
    log_debug("client %llu (pid %d) gone", (unsigned long long)c->s.id,
              (int)c->s.cred.pid);
    conn_unref(c);
}

/* Reading stops while the client has max_inflight requests unanswered or
 * replies unsent, or max_queued_bytes queued (its uid, across its
 * connections, max_queued_bytes_per_uid), so a client that does not read
 * cannot grow our queue. */
static void update_reading(struct conn *c)
{
    const struct config *cfg = c->ctx->cfg;
    bool want = !c->closed && !c->failed && !c->s.close_when_sent &&
                c->s.busy + (c->n_out - c->n_events) < cfg->max_inflight &&
                c->out_bytes < cfg->max_queued_bytes &&
                (!c->use || c->use->queued < cfg->max_queued_bytes_per_uid);
    if (want && !fds_allow_reading(c)) {
        reclaim(c); /* its client may have taken them meanwhile */
        want = fds_allow_reading(c);
        set_fd_stalled(c, !want);
    } else {
        set_fd_stalled(c, false);
    }
    if (want == c->reading)
        return;
    if (want) {
        event_add(c->ev_read, NULL);
        check_drained(c);
    } else
        event_del(c->ev_read);
    c->reading = want;
}

static int enqueue(struct conn *c, const uint8_t *buf, size_t len, int fd,
                   bool is_event)
{
    struct frame *f = malloc(sizeof(*f) + len);
    if (!f)
        return -ENOMEM;
    f->fd = -1;
    if (fd >= 0 && (f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        free(f);
        return -errno;
    }
    if (f->fd >= 0 && fds_queued(c) < 0) {
        static struct log_limit full;
        log_limited(&full, LOG_LVL_WARN, "client %llu (pid %d, uid %u): "
                    "closing: a reply's fd would go past max_queued_fds_total "
                    "(%llu fds wait in unread replies)",
                    (unsigned long long)c->s.id, (int)c->s.cred.pid,
                    (unsigned)c->s.cred.uid,
                    (unsigned long long)c->ctx->queued_fds);
        close(f->fd);
        free(f);
        return -EMFILE;
    }
    f->next = NULL;
    f->track = !c->fd_untracked;
    f->is_event = is_event;
    f->len = len;
    memcpy(f->data, buf, len);
    *c->out_tail = f;
    c->out_tail = &f->next;
    c->n_out++;
    c->n_events += is_event;
    c->out_bytes += len;
    if (c->use)
        c->use->queued += len;
    if (c->n_out == 1)
        event_add(c->ev_write, NULL);
    return 0;
}

/* Sends now if nothing is queued before it, else queues. */
/* Closing now could free holders a caller is walking (a broadcast): the
 * write callback closes it on the loop's next turn instead. */
void conn_close_later(struct conn *c)
{
    if (c->closed)
        return;
    c->failed = true;
    if (c->reading) {
        event_del(c->ev_read);
        c->reading = false;
    }
    event_active(c->ev_write, EV_WRITE, 1);
}

/* Why a send closes c. ETOOMANYREFS is the kernel's limit on fds sent
 * and not yet received, counted for the daemon's real uid against its
 * RLIMIT_NOFILE (without CAP_SYS_RESOURCE): clients that leave replies
 * unread hold them, and every reply with an fd then fails, for anyone. */
static void send_failed(struct conn *c, int r)
{
    static struct log_limit inflight;
    if (r == -ETOOMANYREFS)
        log_limited(&inflight, LOG_LVL_WARN, "client %llu (pid %d, uid %u): "
                    "closing: the kernel refuses to pass more fds "
                    "(ETOOMANYREFS: fds in flight to clients that do not "
                    "read their replies reached the fd limit)",
                    (unsigned long long)c->s.id, (int)c->s.cred.pid,
                    (unsigned)c->s.cred.uid);
    else
        log_debug("client %llu: send failed: %s", (unsigned long long)c->s.id,
                  strerror(-r));
}

static void send_frame(struct conn *c, const uint8_t *buf, size_t len,
                       int fd, bool is_event)
{
    int r = -EAGAIN;
    if (c->closed || c->failed)
        return;
    if (!c->out && (r = wire_send(c->fd, buf, len, fd)) == 0 && fd >= 0)
        fds_sent(c);
    if (r == -EAGAIN)
        r = enqueue(c, buf, len, fd, is_event);
    if (r < 0) {
        send_failed(c, r);
        conn_close_later(c);
        return;
    }
    if (!c->out && c->s.close_when_sent)
        conn_close_later(c);
}

static void send_message(struct conn *c, Mmapio__ServerMessage *sm, int fd,
                         bool is_event)
{
    uint8_t stack[1024];
    size_t len = mmapio__server_message__get_packed_size(sm);
    uint8_t *buf = len <= sizeof(stack) ? stack : malloc(len);
    if (!buf) {
        conn_close_later(c);
        return;
    }
    mmapio__server_message__pack(sm, buf);
    send_frame(c, buf, len, fd, is_event);
    if (buf != stack)
        free(buf);
}

/* A successful open's reply packed by hand (wire.h): its length, or 0
 * when it is anything else. */
static size_t quick_grant(const Mmapio__Reply *r, uint8_t *buf)
{
    const Mmapio__OpenReply *o = r->open;
    /* A field the hand does not know yet (the protocol grew): protobuf-c. */
    if (mmapio__open_reply__descriptor.n_fields != WIRE_QUICK_GRANT_FIELDS ||
        mmapio__flush_policy__descriptor.n_fields != WIRE_QUICK_POLICY_FIELDS ||
        r->error != 0 || (r->message && *r->message) ||
        r->result_case != MMAPIO__REPLY__RESULT_OPEN || !o || !o->policy ||
        o->file ||
        r->base.n_unknown_fields || o->base.n_unknown_fields ||
        o->policy->base.n_unknown_fields || o->policy->kind < 0)
        return 0;
    struct wire_grant g = {
        .handle = o->handle, .map_id = o->map_id, .size = o->size,
        .policy_kind = (uint32_t)o->policy->kind,
        .policy_value = o->policy->value, .ctl_slot = o->ctl_slot,
        .arena = o->arena, .offset = o->offset,
    };
    return wire_pack_grant(r->id, &g, buf);
}

static void send_held(struct conn *c);

static void send_reply(struct conn *c, Mmapio__Reply *reply, int fd)
{
    uint8_t buf[WIRE_QUICK_GRANT_MAX];
    size_t len;
    send_held(c); /* a reply overtakes no event */
    /* The first hello's fd is the connection's own, within max_clients. */
    if (fd >= 0 && reply->result_case == MMAPIO__REPLY__RESULT_HELLO &&
        !c->hello_fd_sent)
        c->hello_fd_sent = c->fd_untracked = true;
    if (fd < 0 && reply->error == 0 &&
        (!reply->message || !*reply->message) && reply->result_case == MMAPIO__REPLY__RESULT__NOT_SET &&
        reply->base.n_unknown_fields == 0) {
        /* A bare "done" (ping, close...): packed by hand (wire.h). */
        send_frame(c, buf, wire_pack_ok(reply->id, buf), -1, false);
    } else if ((len = quick_grant(reply, buf)) > 0) {
        send_frame(c, buf, len, fd, false);
    } else {
        Mmapio__ServerMessage sm = MMAPIO__SERVER_MESSAGE__INIT;
        sm.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
        sm.reply = reply;
        send_message(c, &sm, fd, false);
    }
    c->fd_untracked = false;
    if (!c->closed)
        update_reading(c);
}

static void send_event_now(struct conn *c, Mmapio__Event *ev)
{
    Mmapio__ServerMessage sm = MMAPIO__SERVER_MESSAGE__INIT;
    sm.body_case = MMAPIO__SERVER_MESSAGE__BODY_EVENT;
    sm.event = ev;
    send_message(c, &sm, -1, true);
}

static void on_held(evutil_socket_t fd, short what, void *arg);

/* The first look's delay. MMAPIOD_HELD_FIRST_MS (tests) puts it later,
 * so that only the socket's own wake-up (arm_held) sends what is held. */
static uint32_t held_first_ms(void)
{
    static long ms = -1;
    if (ms < 0) {
        const char *e = getenv("MMAPIOD_HELD_FIRST_MS");
        ms = e ? strtol(e, NULL, 10) : HELD_FIRST_MS;
        if (ms < 1 || ms > 3600000)
            ms = HELD_FIRST_MS;
    }
    return (uint32_t)ms;
}

static void send_event_counted(void *arg, Mmapio__Event *ev)
{
    struct conn *c = arg;
    if (c->closed || c->failed)
        return;
    if (c->n_events >= c->ctx->cfg->max_events) {
        c->overflowed = true;
        return;
    }
    send_event_now(c, ev);
}

/* What the client has not read yet: bytes queued here and unread in its
 * socket (SIOCOUTQ: what it has not yet taken off); behind past
 * HELD_BEHIND_BYTES, or with anything queued here. */
static uint64_t reader_lag(const struct conn *c)
{
    int unread = socket_unread(c->fd);
    return c->out_bytes + (uint64_t)(unread > 0 ? unread : 0);
}

static bool reader_behind(const struct conn *c, uint64_t *lag)
{
    *lag = reader_lag(c);
    return c->out || *lag >= HELD_BEHIND_BYTES;
}

static void send_held(struct conn *c)
{
    if (c->held && c->held->n)
        evhold_flush(c->held, send_event_counted, c);
}

static void arm_held(struct conn *c)
{
    struct timeval tv = { (time_t)(c->held_ms / 1000),
                          (suseconds_t)(c->held_ms % 1000) * 1000 };
    if (!c->ev_held)
        c->ev_held = evtimer_new(c->ctx->base, on_held, c);
    if (!c->ev_held || evtimer_add(c->ev_held, &tv) < 0) {
        send_held(c); /* no timer: no holding */
        return;
    }
    /* Also woken by the socket itself: writable again (the reader took
     * all but a quarter of its buffer, less than HELD_BEHIND_BYTES with
     * the default buffer) is caught up, however late the next look. */
    if (!c->out)
        event_add(c->ev_write, NULL);
}

/* No new event came since: caught up now? Else look again: soon while it
 * reads (its lag shrank), less and less often while it does not, so a
 * client that never reads costs an ioctl a second, not a busy loop. */
static void on_held(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    uint64_t lag;
    (void)fd;
    (void)what;
    if (c->closed || !c->held || !c->held->n)
        return;
    if (!reader_behind(c, &lag)) {
        send_held(c);
        return;
    }
    if (lag < c->held_lag)
        c->held_ms = HELD_FIRST_MS;
    else
        c->held_ms = c->held_ms * 2 > HELD_MAX_MS ? HELD_MAX_MS
                                                  : c->held_ms * 2;
    c->held_lag = lag;
    arm_held(c);
}

void conn_send_event(struct conn *c, Mmapio__Event *ev)
{
    if (c->closed || c->failed)
        return;
    if (ev->kind == MMAPIO__EVENT_KIND__EVENT_MODIFIED) {
        bool holding = c->held && c->held->n;
        uint64_t lag;
        bool behind = reader_behind(c, &lag);
        if (behind || holding) {
            if (!c->held)
                c->held = calloc(1, sizeof(*c->held));
            if (c->held && evhold_add(c->held, ev)) {
                if (!behind)
                    send_held(c);
                else if (!holding) {
                    c->held_ms = held_first_ms();
                    c->held_lag = lag;
                    arm_held(c);
                }
                return;
            }
        }
    }
    send_held(c); /* nothing overtakes what is held */
    send_event_counted(c, ev);
}

/* The session's way out. */
static void port_reply(struct session *s, Mmapio__Reply *r, int fd)
{
    send_reply(container_of(s, struct conn, s), r, fd);
}

static void port_event(struct session *s, Mmapio__Event *ev)
{
    conn_send_event(container_of(s, struct conn, s), ev);
}

static void port_busy_changed(struct session *s)
{
    struct conn *c = container_of(s, struct conn, s);
    if (!c->closed)
        update_reading(c);
}

static const struct session_port port = {
    .reply = port_reply,
    .event = port_event,
    .busy_changed = port_busy_changed,
    .want_fd = port_want_fd,
    .gone = port_gone,
};

/* The peer hung up and left nothing unread (a request or notice it sent
 * before exiting is served in its turn, as always): closed now, as the
 * loop would when it came to it. */
static bool port_gone(struct session *s)
{
    struct conn *c = container_of(s, struct conn, s);
    struct pollfd p = { .fd = c->fd, .events = POLLIN | POLLRDHUP };
    if (c->closed || poll(&p, 1, 0) != 1 ||
        !(p.revents & (POLLHUP | POLLRDHUP | POLLERR)) ||
        socket_unread_in(c->fd) != 0)
        return false;
    conn_close(c);
    return true;
}

static void port_want_fd(struct session *s)
{
    struct conn *c = container_of(s, struct conn, s);
    int on = 1;
    c->fds_ever = true;
    if (kernel_refuses == 1 && SO_PASSRIGHTS >= 0)
        (void)setsockopt(c->fd, SOL_SOCKET, SO_PASSRIGHTS, &on, sizeof(on));
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->failed) {
        conn_close(c);
        return;
    }
    while (c->out) {
        struct frame *f = c->out;
        int r = wire_send(c->fd, f->data, f->len, f->fd);
        if (r == -EAGAIN) {
            update_reading(c);
            return;
        }
        if (r < 0) {
            send_failed(c, r);
            conn_close(c);
            return;
        }
        c->out = f->next;
        if (!c->out)
            c->out_tail = &c->out;
        c->n_out--;
        c->n_events -= f->is_event;
        unqueue(c, f->len);
        if (f->fd >= 0) {
            close(f->fd);
            fds_dequeued(c, true, f->track);
        }
        free(f);
    }
    event_del(c->ev_write);
    if (c->s.close_when_sent) {
        conn_close(c);
        return;
    }
    uint64_t lag;
    if (c->held && c->held->n && !reader_behind(c, &lag))
        send_held(c); /* caught up (arm_held) */
    if (c->overflowed) {
        Mmapio__Event ev = MMAPIO__EVENT__INIT;
        ev.kind = MMAPIO__EVENT_KIND__EVENT_OVERFLOW;
        c->overflowed = false;
        send_event_now(c, &ev);
    }
    if (!c->closed)
        update_reading(c);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads and handles one datagram. 1: a one-way notice, 0: a request
 * (answered now or later), -1: the socket is empty, -2: closed. */
static int read_one(struct conn *c)
{
    struct conn_ctx *ctx = c->ctx;
    int fds[WIRE_RECV_FDS_MAX];
    size_t n_fds = 0;
    /* A socket that refused fds from its birth (inherited from the
     * listener) has none queued: the plain recv. */
    long n = kernel_refuses == 1 && !c->fds_ever
                 ? wire_recv_nofds(c->fd, ctx->rxbuf, ctx->cfg->max_frame)
                 : wire_recv_all(c->fd, ctx->rxbuf, ctx->cfg->max_frame, fds,
                                 &n_fds);
    /* No request carries fds but from_fd's (disarm_fds). Never closed
     * here: see closer.h. */
    bool armed = c->s.fd_wanted, had = n_fds > 0, one_way = false;
    int kept = -1;
    if (armed && n >= 0 && n_fds == 1) {
        kept = fds[0];
        n_fds = 0;
    }
    /* Lines a client can cause again by connecting again: one a second. */
    static struct log_limit fd_flood, closing;
    if (n_fds > 0 && closer_give_all(c->s.cred.uid, fds, n_fds) < 0 &&
        n >= 0) {
        log_limited(&fd_flood, LOG_LVL_WARN, "client %llu (pid %d): sends "
                    "fds faster than they can be closed; closing",
                    (unsigned long long)c->s.id, (int)c->s.cred.pid);
        n = -EPROTO;
    }
    if (n >= 0 && n_fds > WIRE_MAX_FDS)
        n = -EBADMSG;
    if (n == -EAGAIN) {
        ops_drained(&c->s);
        return -1;
    }
    if (n < 0) {
        if (n != -ECONNRESET && n != -EPROTO)
            log_limited(&closing, LOG_LVL_WARN, "client %llu (pid %d): %s; "
                        "closing", (unsigned long long)c->s.id,
                        (int)c->s.cred.pid,
                        n == -EMSGSIZE ? "datagram over the frame limit"
                                       : strerror((int)-n));
        conn_close(c);
        return -2;
    }
    if (kept >= 0)
        ops_handle_fd(&c->s, ctx->rxbuf, (size_t)n, kept);
    else
        one_way = ops_handle(&c->s, ctx->rxbuf, (size_t)n, n_fds > 0);
    if (armed && (had || !c->s.fd_wanted) && !c->closed)
        disarm_fds(c);
    if (c->ev_hello && c->s.hello_done)
        disarm_hello(c);
    return c->closed ? -2 : one_way;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int notices = 0, requests = 0;
    int64_t start = now_ns();

    conn_ref(c);
    while (c->reading) {
        /* Half its share in flight: were they received? A client that
         * reads its replies has, by its next request (one ioctl in
         * max_queued_fds / 2 fds sent, never a stall). */
        if (c->inflight * 2 >= c->ctx->cfg->max_queued_fds)
            reclaim(c);
        if (!fds_allow_reading(c)) { /* its uid reached its cap meanwhile */
            update_reading(c);
            break;
        }
        int r = read_one(c);
        if (r < 0)
            break;
        if (r == 1 ? ++notices >= NOTICES_PER_TURN ||
                         now_ns() - start > NOTICE_BUDGET_NS
                   : ++requests >= REQUESTS_PER_TURN || c->s.notice_run == 0)
            break; /* its turn is over */
    }
    if (c->reading && !c->closed)
        check_drained(c);
    conn_unref(c);
}

static void on_hello_late(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->closed || c->s.hello_done)
        return;
    log_debug("client %llu (pid %d, uid %u): no hello within %u ms; closing",
              (unsigned long long)c->s.id, (int)c->s.cred.pid,
              (unsigned)c->s.cred.uid, c->ctx->cfg->hello_timeout_ms);
    conn_close(c);
}
