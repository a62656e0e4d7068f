/*
 * client: one connection to mmapiod and its round trips (see client.h).
 *
 * Nothing here raises SIGPIPE (conn_send never does), logs or
 * aborts because of what the daemon sent. Maps already made are left
 * alone when the connection dies and keep working in memory.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "area.h"
#include "asyncs.h"
#include "conn.h"
#include "errmap.h"
#include "errors.h"
#include "events.h"
#include "names.h"
#include "pbarena.h"
#include "proc.h"
#include "trust.h"
#include "vmem.h"
#include "wire.h"

/* ---- lifetime ---- */

void client_ref(mmapio_client *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void client_free(mmapio_client *c)
{
    conn_close(c->fd);
    proc_close(c->wake_fd);
    area_detach(&c->area);
    if (c->ring)
        vmem_unmap(c->ring, WRING_SIZE);
    while (c->old) {
        struct client_old *o = c->old;
        c->old = o->next;
        area_detach(&o->area);
        if (o->ring)
            vmem_unmap(o->ring, WRING_SIZE);
        free(o);
    }
    free(c->path);
    asyncs_fini(&c->asyncs);
    pthread_mutex_destroy(&c->lock);
    arena_fds_fini(&c->arena_fds);
    free(c->rxbuf);
    free(c);
}

void client_unref(mmapio_client *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        client_free(c);
}

void client_lock(mmapio_client *c)
{
    pthread_mutex_lock(&c->lock);
}

void client_unlock(mmapio_client *c)
{
    pthread_mutex_unlock(&c->lock);
}

static int client_new(mmapio_client **out)
{
    mmapio_client *c = calloc(1, sizeof(*c));
    if (!c)
        return MMAPIO_E_QUOTA;
    c->rxbuf = malloc(WIRE_DEFAULT_MAX_FRAME);
    if (!c->rxbuf || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->rxbuf);
        free(c);
        return MMAPIO_E_QUOTA;
    }
    atomic_init(&c->refs, 1);
    c->fd = -1;
    c->wake_fd = conn_wake_new();
    if (c->wake_fd < 0) {
        pthread_mutex_destroy(&c->lock);
        free(c->rxbuf);
        free(c);
        return MMAPIO_E_QUOTA;
    }
    c->next_id = 1;
    c->max_frame = WIRE_DEFAULT_MAX_FRAME;
    *out = c;
    return MMAPIO_OK;
}

/* ---- failure latch ---- */

/* Latches the connection as dead and returns err for the current call.
 * Shut down rather than closed: the fd number stays valid for a caller
 * polling mmapio_client_fd, and now reports POLLHUP. */
static int client_fail(mmapio_client *c, int err)
{
    if (!c->dead) {
        c->dead = MMAPIO_E_DISCONNECTED;
        c->news_down = true;
        conn_shutdown(c->fd);
    }
    return err;
}

/* ---- waiting ---- */

/* Waits until the connection can be read (or written: out): MMAPIO_OK,
 * or MMAPIO_E_IO when waiting itself fails. */
static int wait_conn(int conn, bool out)
{
    int r;
    while ((r = conn_wait(conn, out, -1, -1)) == -EINTR)
        ;
    return r < 0 ? MMAPIO_E_IO : MMAPIO_OK;
}

/* ---- sending ---- */

static uint64_t client_next_id(mmapio_client *c)
{
    uint64_t id = c->next_id++;
    if (c->next_id == 0)
        c->next_id = 1;
    return id;
}

/* Sends one request, packed by protobuf-c or, when req is NULL, the
 * bytes quick[0..quick_len) (wire.h); a full socket buffer is waited out. */
static int client_send_one(mmapio_client *c, const Mmapio__Request *req,
                           int pass_fd, const uint8_t *quick,
                           size_t quick_len)
{
    for (;;) {
        int r = req ? conn_send_msg(c->fd, &req->base, pass_fd, c->max_frame)
                    : conn_send(c->fd, quick, quick_len, -1, true);
        if (r == 0)
            return MMAPIO_OK;
        if (r == -EMSGSIZE)
            return MMAPIO_E_INVALID_ARGUMENT; /* too long; nothing sent */
        if (r == -EPERM && pass_fd >= 0)
            return MMAPIO_E_PERMISSION; /* the daemon refuses fds */
        if (r == -EBADF && pass_fd >= 0)
            return MMAPIO_E_INVALID_ARGUMENT; /* not an fd */
        if (r == -ENOMEM || r == -ENOBUFS)
            return MMAPIO_E_QUOTA;
        if (r != -EAGAIN)
            return client_fail(c, MMAPIO_E_DISCONNECTED);
        r = wait_conn(c->fd, true);
        if (r < 0)
            return r;
    }
}

/* Sends one request (as client_send_one), owning up first to notices
 * dropped since the last one (notice.h). */
static int client_send_as(mmapio_client *c, const Mmapio__Request *req,
                          int pass_fd, const uint8_t *quick, size_t quick_len)
{
    Mmapio__Request lreq;
    Mmapio__Notice n;
    if (client_take_lost_notice(c, &lreq, &n)) {
        int r = client_send_one(c, &lreq, -1, NULL, 0);
        if (r != MMAPIO_OK) {
            atomic_store_explicit(&c->notices_lost, true, memory_order_relaxed);
            return r;
        }
    }
    return client_send_one(c, req, pass_fd, quick, quick_len);
}

static int client_send(mmapio_client *c, const Mmapio__Request *req,
                       int pass_fd)
{
    return client_send_as(c, req, pass_fd, NULL, 0);
}

bool client_take_lost_notice(mmapio_client *c, Mmapio__Request *req,
                             Mmapio__Notice *n)
{
    if (!atomic_load_explicit(&c->notices_lost, memory_order_relaxed) ||
        !atomic_exchange_explicit(&c->notices_lost, false,
                                  memory_order_relaxed))
        return false;
    *n = (Mmapio__Notice)MMAPIO__NOTICE__INIT;
    *req = (Mmapio__Request)MMAPIO__REQUEST__INIT;
    n->handle = 0; /* the connection, not one handle */
    n->lost = true;
    req->op_case = MMAPIO__REQUEST__OP_NOTICE;
    req->notice = n;
    return true;
}

/* ---- events ---- */

/* Something for the next dispatch (lock held). Read by another thread's
 * request while a dispatch sleeps on the socket: wake it, or it would
 * sleep past what is already here. */
static void client_note(mmapio_client *c, unsigned n)
{
    if (n == 0)
        return;
    if (c->waiting && c->unreported == 0) {
        conn_wake_signal(c->wake_fd);
    }
    c->unreported += n;
}

/* Applies one event (lock held). Unknown kinds and invalid policies are
 * ignored: a newer daemon may send more than we know. */
static void client_apply_event(mmapio_client *c, const Mmapio__Event *ev)
{
    client_note(c, 1);
    switch (ev->kind) {
    case MMAPIO__EVENT_KIND__EVENT_RESIZED:
        /* Holders remap at mmapio_refresh; watchers hear of it as
         * METADATA. */
        events_push(&c->events, ev);
        break;
    case MMAPIO__EVENT_KIND__EVENT_POLICY:
        break; /* the policy itself is read from the control slot */
    case MMAPIO__EVENT_KIND__EVENT_MODIFIED:
    case MMAPIO__EVENT_KIND__EVENT_METADATA:
    case MMAPIO__EVENT_KIND__EVENT_REMOVED:
    case MMAPIO__EVENT_KIND__EVENT_OVERFLOW:
        events_push(&c->events, ev);
        break;
    case MMAPIO__EVENT_KIND__EVENT_SHUTDOWN:
        c->shutdown_seen = true;
        break;
    default:
        break;
    }
}

/* ---- receiving ---- */

enum { READ_NONE, READ_OTHER, READ_REPLY, READ_QUICK_OK };

/* One received datagram that carries a reply. */
struct incoming {
    Mmapio__ServerMessage *msg;
    struct pbarena *arena;   /* decoded in c->arena, or NULL: malloc'ed */
    int fds[CONN_MAX_HANDLES];
    size_t n_fds;
};

static void message_free(Mmapio__ServerMessage *msg, struct pbarena *arena)
{
    if (msg && arena)
        pbarena_free_unpacked(arena, &msg->base);
    else if (msg)
        mmapio__server_message__free_unpacked(msg, NULL);
}

static void incoming_drop(struct incoming *in)
{
    for (size_t i = 0; i < in->n_fds; i++)
        proc_close(in->fds[i]);
    in->n_fds = 0;
    message_free(in->msg, in->arena);
    in->msg = NULL;
}

/* An open's grant in the bytes wire_pack_grant writes: the message the
 * decoder would make of it, built in c->arena (just started; it fits, so
 * nothing spills and freeing it walks nothing). */
struct quick_grant_msg {
    Mmapio__ServerMessage sm;
    Mmapio__Reply reply;
    Mmapio__OpenReply open;
    Mmapio__FlushPolicy policy;
};

static bool quick_grant(mmapio_client *c, size_t n, struct incoming *in)
{
    _Static_assert(sizeof(struct quick_grant_msg) + 16 <=
                       sizeof(((mmapio_client *)0)->arena_room),
                   "the arena holds a grant");
    struct wire_grant g;
    uint64_t id;
    if (in->n_fds > 1 || !wire_is_grant(c->rxbuf, n, &id, &g))
        return false;
    struct quick_grant_msg *q =
        c->arena.alloc.alloc(c->arena.alloc.allocator_data, sizeof(*q));
    q->sm = (Mmapio__ServerMessage)MMAPIO__SERVER_MESSAGE__INIT;
    q->reply = (Mmapio__Reply)MMAPIO__REPLY__INIT;
    q->open = (Mmapio__OpenReply)MMAPIO__OPEN_REPLY__INIT;
    q->policy = (Mmapio__FlushPolicy)MMAPIO__FLUSH_POLICY__INIT;
    q->policy.kind = (Mmapio__FlushKind)g.policy_kind;
    q->policy.value = g.policy_value;
    q->open.handle = g.handle;
    q->open.map_id = g.map_id;
    q->open.size = g.size;
    q->open.policy = &q->policy;
    q->open.ctl_slot = g.ctl_slot;
    q->open.arena = g.arena;
    q->open.offset = g.offset;
    q->reply.id = id;
    q->reply.result_case = MMAPIO__REPLY__RESULT_OPEN;
    q->reply.open = &q->open;
    q->sm.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    q->sm.reply = &q->reply;
    in->msg = &q->sm;
    return true;
}

/* Maps a conn_recv failure to an error and latches the connection. */
static int recv_failed(mmapio_client *c, long r)
{
    if (r == -EMSGSIZE || r == -EBADMSG)
        return client_fail(c, MMAPIO_E_PROTOCOL);
    return client_fail(c, MMAPIO_E_DISCONNECTED);
}

/*
 * Reads at most one datagram (lock held): waiting for it when `wait` (the
 * socket blocks: mmapio_connect leaves it so), else not. Events are
 * applied here (READ_OTHER); a reply is handed back in *in (READ_REPLY).
 * READ_NONE: nothing waiting. Negative: fatal, latched. `scratch`: the
 * message is dropped before the lock is (a reply too), so it is decoded
 * without malloc, in c->arena. `quick_id` (0: none): a bare success
 * reply to that request, in the bytes protobuf-c packs it in (wire.h), is
 * READ_QUICK_OK, not decoded.
 */
static int client_read_one(mmapio_client *c, struct incoming *in, bool wait,
                           bool scratch, uint64_t quick_id)
{
    in->msg = NULL;
    in->arena = NULL;
    long n = conn_recv(c->fd, c->rxbuf, WIRE_DEFAULT_MAX_FRAME, in->fds,
                       CONN_MAX_HANDLES, &in->n_fds, wait);
    if (n == -EAGAIN)
        return READ_NONE;
    if (n < 0)
        return recv_failed(c, n);
    uint64_t got;
    if (quick_id && in->n_fds == 0 && wire_is_ok(c->rxbuf, (size_t)n, &got) &&
        got == quick_id)
        return READ_QUICK_OK;
    if (scratch) {
        in->arena = &c->arena;
        pbarena_init(&c->arena, c->arena_room, sizeof(c->arena_room));
        if (quick_grant(c, (size_t)n, in))
            return READ_REPLY;
    }
    in->msg = mmapio__server_message__unpack(
        in->arena ? &in->arena->alloc : NULL, (size_t)n, c->rxbuf);
    if (!in->msg) {
        incoming_drop(in);
        return client_fail(c, MMAPIO_E_PROTOCOL);
    }
    if (in->msg->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY &&
        in->msg->reply)
        return READ_REPLY;
    bool stray_fds = in->n_fds > 0;
    if (in->msg->body_case == MMAPIO__SERVER_MESSAGE__BODY_EVENT &&
        in->msg->event && !stray_fds)
        client_apply_event(c, in->msg->event);
    incoming_drop(in);
    return stray_fds ? client_fail(c, MMAPIO_E_PROTOCOL) : READ_OTHER;
}

/* The reply's error code as the API returns it. */
static int reply_error(const Mmapio__Reply *r)
{
    return errmap_valid(r->error) ? r->error : MMAPIO_E_PROTOCOL;
}

/* The fds a successful reply must carry: an open grants one (but see
 * reply_fits), so does a write ring; a hello may carry the control area (HelloReply.ctl_slots). */
static bool reply_fds_ok(Mmapio__Reply__ResultCase want, size_t n_fds)
{
    if (want == MMAPIO__REPLY__RESULT_OPEN ||
        want == MMAPIO__REPLY__RESULT_WRITE_RING)
        return n_fds == 1;
    if (want == MMAPIO__REPLY__RESULT_HELLO)
        return n_fds <= 1;
    return n_fds == 0;
}

/* A reply answers request `id`, carries the fds and result it should. */
static bool reply_fits(const Mmapio__Reply *r, uint64_t id,
                       Mmapio__Reply__ResultCase want, size_t n_fds)
{
    if (r->id != id)
        return false;
    if (r->error != 0)
        return n_fds == 0;
    if (want != MMAPIO__REPLY__RESULT__NOT_SET && r->result_case != want)
        return false;
    /* A grant of an arena whose fd we keep comes without (arenafds.h). */
    if (want == MMAPIO__REPLY__RESULT_OPEN && r->open && r->open->arena)
        return n_fds <= 1;
    return reply_fds_ok(want, n_fds);
}

/* A reply to a request sent by client_send_async_locked: its callback is
 * due (true), or nobody waits for it (false). Consumes *in when true. */
static bool client_take_async(mmapio_client *c, struct incoming *in)
{
    const Mmapio__Reply *r = in->msg->reply;
    if (in->n_fds > 0)
        return false; /* no async request is answered with an fd */
    int k = asyncs_complete(&c->asyncs, r->id,
                            r->error ? reply_error(r) : MMAPIO_OK, r->message);
    if (k == ASYNC_NONE)
        return false;
    incoming_drop(in);
    if (k == ASYNC_DUE)
        client_note(c, 1);
    return true;
}

/* Checks a reply against the request it answers; takes over *in. */
static int client_take_reply(mmapio_client *c, uint64_t id,
                             Mmapio__Reply__ResultCase want,
                             struct incoming *in, struct client_reply *rep)
{
    const Mmapio__Reply *r = in->msg->reply;

    if (!reply_fits(r, id, want, in->n_fds)) {
        incoming_drop(in);
        return error_set(client_fail(c, MMAPIO_E_PROTOCOL), NULL);
    }
    if (r->error != 0) {
        int err = error_set(reply_error(r), r->message);
        incoming_drop(in);
        return err;
    }
    rep->msg = in->msg;
    rep->arena = in->arena;
    rep->reply = in->msg->reply;
    rep->fd = in->n_fds ? in->fds[0] : -1;
    return MMAPIO_OK;
}

/* A reply of id 0 with an error: the daemon's word about the connection
 * itself (a client it refused, a request it could not decode), which
 * answers no request. */
static bool is_last_word(const struct incoming *in)
{
    const Mmapio__Reply *r = in->msg->reply;
    return in->msg->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY && r &&
           r->id == 0 && r->error != 0 && in->n_fds == 0;
}

/* Takes over *in (is_last_word): the connection is done, with its error. */
static int last_word(mmapio_client *c, struct incoming *in)
{
    int err = error_set(reply_error(in->msg->reply), in->msg->reply->message);
    incoming_drop(in);
    client_fail(c, err);
    return err;
}

/* The connection broke (err): a daemon that hung up on purpose may have
 * said why first, in a datagram still queued behind the error the kernel
 * reported (ECONNRESET when it closed with our request unread). Returns
 * its error or err, recorded. */
static int hear_last_word(mmapio_client *c, int err)
{
    for (int i = 0; i < 2; i++) {
        struct incoming in;
        in.msg = NULL;
        in.arena = NULL;
        long n = conn_recv(c->fd, c->rxbuf, WIRE_DEFAULT_MAX_FRAME, in.fds,
                           CONN_MAX_HANDLES, &in.n_fds, false);
        if (n == -ECONNRESET && i == 0)
            continue;
        if (n < 0)
            break;
        in.msg = mmapio__server_message__unpack(NULL, (size_t)n, c->rxbuf);
        if (in.msg && is_last_word(&in))
            return last_word(c, &in);
        incoming_drop(&in);
        break;
    }
    return error_set(err, NULL);
}

/* The reply to request id. `quick`: the caller wants only whether it
 * succeeded (rep then holds no message). */
static int client_wait_reply(mmapio_client *c, uint64_t id,
                             Mmapio__Reply__ResultCase want, bool quick,
                             struct client_reply *rep)
{
    for (;;) {
        struct incoming in;
        /* One blocking recv: only the lock's holder reads, and what it
         * reads meanwhile (events, async replies) is applied here. */
        int r = client_read_one(c, &in, true, c->scratch_reply,
                                quick ? id : 0);
        if (r == READ_QUICK_OK) {
            *rep = (struct client_reply){ .fd = -1 };
            return MMAPIO_OK;
        }
        if (r == READ_REPLY && in.msg->reply->id != id &&
            client_take_async(c, &in))
            continue;
        if (r == READ_REPLY && is_last_word(&in))
            return last_word(c, &in);
        if (r == READ_REPLY)
            return client_take_reply(c, id, want, &in, rep);
        if (r == MMAPIO_E_DISCONNECTED)
            return hear_last_word(c, r);
        if (r < 0)
            return error_set(r, NULL);
        /* Someone made the socket non-blocking: wait for it here. A
         * reply left unread would answer the next request: latch. */
        if (r == READ_NONE && (r = wait_conn(c->fd, false)) < 0)
            return error_set(client_fail(c, r), NULL);
    }
}

/* ---- round trips ---- */

/* An Open request packed by hand (wire.h) into buf: its length, or 0
 * when protobuf-c packs it (a path the hand does not take, a frame past
 * the daemon's limit). */
static size_t pack_open(const mmapio_client *c, const Mmapio__Request *req,
                        uint8_t *buf)
{
    const Mmapio__Open *op = req->open;
    /* A field the hand does not know yet (the protocol grew): protobuf-c. */
    if (mmapio__open__descriptor.n_fields != WIRE_QUICK_OPEN_FIELDS ||
        mmapio__flush_policy__descriptor.n_fields != WIRE_QUICK_POLICY_FIELDS ||
        mmapio__owner__descriptor.n_fields != 1 ||
        req->op_case != MMAPIO__REQUEST__OP_OPEN || !op || !op->path ||
        !op->policy || op->mode < 0 || op->policy->kind < 0)
        return 0;
    struct wire_open o = {
        .path = op->path, .path_len = strlen(op->path),
        .anonymous = op->anonymous, .create = op->create,
        .truncate = op->truncate, .exclusive = op->exclusive,
        .huge_pages = op->huge_pages, .has_owner = op->owner != NULL,
        .mode = (uint32_t)op->mode, .perm = op->perm,
        .owner_uid = op->owner ? op->owner->uid : 0,
        .policy_kind = (uint32_t)op->policy->kind, .size = op->size,
        .policy_value = op->policy->value,
    };
    size_t n = wire_pack_open(req->id, &o, buf);
    return n <= c->max_frame ? n : 0;
}

int client_call_locked(mmapio_client *c, Mmapio__Request *req,
                       Mmapio__Reply__ResultCase want,
                       struct client_reply *rep)
{
    return client_call_fd_locked(c, req, -1, want, rep);
}

int client_call_fd_locked(mmapio_client *c, Mmapio__Request *req,
                          int pass_fd, Mmapio__Reply__ResultCase want,
                          struct client_reply *rep)
{
    uint8_t quick[WIRE_QUICK_MAX];
    size_t quick_len = 0;
    if (c->dead)
        return error_set(c->dead, NULL);
    uint64_t id = client_next_id(c);
    if (req)
        req->id = id;
    else
        quick_len = wire_pack_ping(id, quick);
    uint8_t quick_open[WIRE_QUICK_OPEN_MAX];
    size_t open_len = req && pass_fd < 0 ? pack_open(c, req, quick_open) : 0;
    int r = open_len ? client_send_as(c, NULL, -1, quick_open, open_len)
                     : client_send_as(c, req, pass_fd, quick, quick_len);
    if (r == MMAPIO_E_DISCONNECTED)
        return hear_last_word(c, r);
    if (r != MMAPIO_OK)
        return error_set(r, NULL);
    return client_wait_reply(c, id, want, !req, rep);
}

int client_send_oneway_locked(mmapio_client *c, Mmapio__Request *req)
{
    if (c->dead)
        return error_set(c->dead, NULL);
    req->id = client_next_id(c);
    int r = client_send(c, req, -1);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

int client_send_async_locked(mmapio_client *c, Mmapio__Request *req,
                             mmapio_done_cb cb, void *user)
{
    if (c->dead)
        return error_set(c->dead, NULL);
    req->id = client_next_id(c);
    int r = asyncs_add(&c->asyncs, req->id, cb, user);
    if (r != MMAPIO_OK)
        return error_set(r, r == MMAPIO_E_BUSY
                                ? "too many asynchronous requests pending"
                                : NULL);
    r = client_send(c, req, -1);
    if (r != MMAPIO_OK) {
        asyncs_forget(&c->asyncs, req->id);
        return error_set(r, NULL);
    }
    return MMAPIO_OK;
}

struct async_op *client_take_done(mmapio_client *c)
{
    client_lock(c);
    struct async_op *list = asyncs_take_done(&c->asyncs);
    client_unlock(c);
    return list;
}

int client_call(mmapio_client *c, Mmapio__Request *req,
                Mmapio__Reply__ResultCase want, struct client_reply *rep)
{
    struct client_reply tmp;
    client_lock(c);
    c->scratch_reply = rep == NULL; /* freed before unlocking: c->arena */
    int r = client_call_locked(c, req, want, &tmp);
    c->scratch_reply = false;
    if (r == MMAPIO_OK && !rep)
        client_reply_free(&tmp);
    client_unlock(c);
    if (r == MMAPIO_OK && rep)
        *rep = tmp;
    return r;
}

void client_reply_free(struct client_reply *rep)
{
    proc_close(rep->fd);
    rep->fd = -1;
    message_free(rep->msg, rep->arena);
    rep->msg = NULL;
    rep->arena = NULL;
    rep->reply = NULL;
}

/* ---- connecting ---- */

int mmapio_default_socket_path(char *buf, size_t size)
{
    if (!buf || size == 0)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = conn_default_path(buf, size);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

static int client_hello_locked(mmapio_client *c)
{
    Mmapio__Hello hello = MMAPIO__HELLO__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    hello.protocol = WIRE_PROTOCOL;
    hello.client_name = (char *)proc_name();
    req.op_case = MMAPIO__REQUEST__OP_HELLO;
    req.hello = &hello;
    int r = client_call_locked(c, &req, MMAPIO__REPLY__RESULT_HELLO, &rep);
    if (r != MMAPIO_OK)
        return r;
    if (rep.reply->hello->max_frame > 0)
        c->max_frame = rep.reply->hello->max_frame;
    if (rep.reply->hello->uid_known)
        c->uid = rep.reply->hello->uid; /* the daemon's view of us, said */
    /* Half of what the daemon reads unanswered: room for round trips. */
    c->asyncs.max = rep.reply->hello->max_inflight / 2;
    if (c->asyncs.max == 0)
        c->asyncs.max = 1;
    r = area_attach(&c->area, rep.fd, rep.reply->hello->ctl_slots);
    rep.fd = -1;
    client_reply_free(&rep);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

static int client_hello(mmapio_client *c)
{
    client_lock(c);
    int r = client_hello_locked(c);
    client_unlock(c);
    return r;
}

/* Nothing is said, not even hello, to a daemon we may not trust. */
static int client_trust(mmapio_client *c, const char *path, char *why,
                        size_t size)
{
    int r = trust_socket(c->fd, path, why, size);
    if (r == MMAPIO_OK)
        c->uid = proc_uid(); /* what SO_PEERCRED told the daemon */
    return r;
}

/* Connects c to path and judges who listens there: MMAPIO_OK, or an error
 * with the reason in why[] (c->fd closed again). */
static int client_reach(mmapio_client *c, const char *path, char *why,
                        size_t size)
{
    char trust_why[ERROR_TEXT_MAX / 2];
    int r = conn_open(path, &c->fd, why, size);
    if (r == MMAPIO_OK &&
        (r = client_trust(c, path, trust_why, sizeof(trust_why))) != MMAPIO_OK) {
        conn_close(c->fd);
        c->fd = -1;
        if (strstr(trust_why, path))
            snprintf(why, size, "%s", trust_why);
        else /* the directory's name only: say which socket too */
            snprintf(why, size, "%s: %s", path, trust_why);
    }
    if (r == MMAPIO_OK && (!c->path || strcmp(c->path, path))) {
        char *p = strdup(path); /* for mmapio_reconnect */
        if (!p) {
            conn_close(c->fd);
            c->fd = -1;
            snprintf(why, size, "out of memory");
            return MMAPIO_E_QUOTA;
        }
        free(c->path);
        c->path = p;
    }
    return r;
}

/*
 * The default: $MMAPIO_SOCKET; else the per-user path when a daemon we
 * trust listens there, else the system service's socket. A failure names
 * every path tried and why each failed; its code is the first that says
 * more than "no daemon there" (a refusal of trust, EACCES), else
 * DISCONNECTED.
 */
static int client_reach_default(mmapio_client *c, char *why, size_t size)
{
    const char *env = proc_getenv("MMAPIO_SOCKET");
    char user[CONN_NAME_MAX + 1] = "";
    struct error_saved saved;
    char why_user[248], why_sys[248]; /* both fit in why[] */

    if (env && *env)
        return client_reach(c, env, why, size);
    int r = MMAPIO_E_INVALID_ARGUMENT;
    error_save(&saved); /* a connect that succeeds records no failure */
    if (mmapio_default_socket_path(user, sizeof(user)) != MMAPIO_OK) {
        error_restore(&saved);
        snprintf(why_user, sizeof(why_user),
                 "$XDG_RUNTIME_DIR/mmapio/mmapiod.sock: too long for a socket");
    } else
        r = client_reach(c, user, why_user, sizeof(why_user));
    if (r == MMAPIO_OK || !strcmp(user, conn_system_path)) {
        snprintf(why, size, "%s", why_user);
        return r;
    }
    int r2 = client_reach(c, conn_system_path, why_sys, sizeof(why_sys));
    if (r2 == MMAPIO_OK)
        return r2;
    snprintf(why, size, "tried %s; then %s", why_user, why_sys);
    return r != MMAPIO_E_DISCONNECTED ? r : r2;
}

int mmapio_connect(const char *socket_path, mmapio_client **out)
{
    char why[ERROR_TEXT_MAX];
    mmapio_client *c;

    if (!out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int r = client_new(&c);
    if (r != MMAPIO_OK)
        return error_set(r, NULL);
    r = socket_path ? client_reach(c, socket_path, why, sizeof(why))
                    : client_reach_default(c, why, sizeof(why));
    if (r != MMAPIO_OK) {
        client_unref(c);
        return error_set(r, why);
    }
    r = client_hello(c);
    if (r != MMAPIO_OK) {
        client_unref(c);
        return r;
    }
    *out = c;
    return MMAPIO_OK;
}

/* ---- a new connection after the daemon restarted ---- */

bool client_is_down_locked(mmapio_client *c)
{
    if (!c->dead && conn_hung_up(c->fd))
        client_fail(c, MMAPIO_E_DISCONNECTED);
    return c->dead != 0;
}

/* Keeps the old connection's area and ring mapped (the data path may
 * still read them) and clears c's. false without memory. */
static bool client_retire_old(mmapio_client *c)
{
    struct client_old *o = calloc(1, sizeof(*o));
    if (!o)
        return false;
    o->area = c->area;
    o->ring = atomic_exchange_explicit(&c->ring, NULL, memory_order_acq_rel);
    o->next = c->old;
    c->old = o;
    c->area = (struct area){ 0 };
    return true;
}

int client_rejoin_locked(mmapio_client *c)
{
    char why[ERROR_TEXT_MAX];
    int old_fd = c->fd;

    if (!c->path)
        return error_set(MMAPIO_E_DISCONNECTED, NULL);
    c->fd = -1;
    int r = client_reach(c, c->path, why, sizeof(why));
    if (r != MMAPIO_OK) {
        c->fd = old_fd;
        return error_set(r, why);
    }
    /* The new socket takes the old one's number (closing it) where the
     * system lets it (conn_take_over). */
    int fresh = c->fd;
    c->fd = old_fd;
    int fd = conn_take_over(old_fd, fresh);
    if (fd < 0) {
        conn_close(fresh);
        return error_set(MMAPIO_E_IO, "cannot keep the client's fd number");
    }
    c->fd = fd;
    c->unreported += (unsigned)asyncs_fail_all(&c->asyncs,
                                               MMAPIO_E_DISCONNECTED);
    if (!client_retire_old(c)) {
        c->dead = MMAPIO_E_DISCONNECTED;
        conn_shutdown(c->fd);
        return error_set(MMAPIO_E_QUOTA, NULL);
    }
    c->dead = 0;
    c->shutdown_seen = false;
    c->events = (struct events){ 0 };
    c->max_frame = WIRE_DEFAULT_MAX_FRAME;
    atomic_store_explicit(&c->notices_lost, false, memory_order_relaxed);
    atomic_store_explicit(&c->gone, false, memory_order_relaxed);
    r = client_hello_locked(c);
    if (r != MMAPIO_OK)
        client_fail(c, r);
    return r;
}

void mmapio_disconnect(mmapio_client *c)
{
    if (c)
        client_unref(c);
}

int mmapio_client_fd(const mmapio_client *c)
{
    return c ? c->fd : error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
}

/* ---- waiting for events (mmapio_client_dispatch) ---- */

/*
 * Reads every waiting datagram (lock held), applying events and async
 * replies: 0, or the latched error (every pending request failed then).
 * What it reads is left for the next dispatch (client_note).
 */
static int client_read_all_locked(mmapio_client *c)
{
    int err = c->dead;
    while (!err) {
        struct incoming in;
        int r = client_read_one(c, &in, false, true, 0);
        if (r == READ_NONE)
            break;
        if (r == READ_REPLY && client_take_async(c, &in))
            continue;
        if (r == READ_REPLY) { /* nobody asked: the daemon is confused */
            incoming_drop(&in);
            r = client_fail(c, MMAPIO_E_PROTOCOL);
        }
        if (r < 0)
            err = r;
    }
    if (err)
        c->unreported += (unsigned)asyncs_fail_all(&c->asyncs,
                                                   MMAPIO_E_DISCONNECTED);
    return err;
}

/*
 * Reads every waiting datagram (lock held). Returns the events handled
 * since the last dispatch, or the latched error when there are none.
 */
static int client_drain_locked(mmapio_client *c)
{
    int err = client_read_all_locked(c);
    unsigned n = c->unreported;
    c->unreported = 0;
    if (n > 0)
        return n > INT32_MAX ? INT32_MAX : (int)n;
    return err;
}

int client_drain(mmapio_client *c)
{
    client_lock(c);
    int r = client_drain_locked(c);
    c->waiting = r == 0;
    client_unlock(c);
    return r;
}

int client_await(mmapio_client *c, int timeout_ms)
{
    /* Unlocked: a request in another thread may read what would have
     * woken us; it then wakes us through wake_fd instead. */
    int n = conn_wait(c->fd, false, c->wake_fd, timeout_ms);
    client_lock(c);
    c->waiting = false;
    client_unlock(c);
    if (n < 0 && n != -EINTR)
        return MMAPIO_E_IO;
    return MMAPIO_OK;
}

/* ---- a long wait for one reply (client_call_long) ---- */

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int client_call_long(mmapio_client *c, Mmapio__Request *req, int give_up_ms)
{
    struct async_slot slot = {.result = 1}; /* > 0: no reply yet */
    int64_t deadline = give_up_ms < 0 ? -1 : client_now_ms() + give_up_ms;
    client_lock(c);
    if (c->dead) {
        int err = c->dead;
        client_unlock(c);
        return error_set(err, NULL);
    }
    req->id = client_next_id(c);
    int r = asyncs_add_direct(&c->asyncs, req->id, &slot);
    if (r == MMAPIO_OK && (r = client_send(c, req, -1)) != MMAPIO_OK)
        asyncs_forget(&c->asyncs, req->id);
    if (r != MMAPIO_OK) {
        client_unlock(c);
        return error_set(r, r == MMAPIO_E_BUSY
                                ? "too many asynchronous requests pending"
                                : NULL);
    }
    for (;;) {
        (void)client_read_all_locked(c); /* a death fails the slot too */
        if (slot.result <= 0)
            break;
        int slice = CLIENT_LONG_SLICE_MS;
        if (deadline >= 0) {
            int64_t left = deadline - client_now_ms();
            if (left <= 0) { /* the daemon is gone quiet: give up */
                asyncs_abandon(&c->asyncs, req->id);
                slot.result = MMAPIO_E_TIMED_OUT;
                snprintf(slot.message, sizeof(slot.message), "%s",
                         "no answer from the daemon in time (is it stuck?)");
                break;
            }
            slice = left < slice ? (int)left : slice;
        }
        client_unlock(c);
        /* Unlocked; not on wake_fd, which is a dispatch's. A round trip
         * of another thread may read our reply meanwhile: seen within
         * the slice. */
        (void)conn_wait(c->fd, false, -1, slice);
        client_lock(c);
    }
    client_unlock(c);
    if (slot.result == MMAPIO_OK)
        return MMAPIO_OK;
    return error_set(slot.result, slot.message[0] ? slot.message : NULL);
}

/* ---- simple requests ---- */

/* One send and one blocking recv of a few bytes packed and read by hand
 * (wire.h); any other answer (an error, an event first) is decoded. */
int mmapio_ping(mmapio_client *c)
{
    if (!c)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    return client_call(c, NULL, MMAPIO__REPLY__RESULT__NOT_SET, NULL);
}

static int client_delete(mmapio_client *c, const char *path, bool anonymous)
{
    Mmapio__Delete del = MMAPIO__DELETE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!c || !path || !*path)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!names_valid(path))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    del.path = (char *)path;
    del.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_DELETE_MAP;
    req.delete_map = &del;
    return client_call(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, NULL);
}

int mmapio_delete(mmapio_client *c, const char *path)
{
    return client_delete(c, path, false);
}

int mmapio_anon_delete(mmapio_client *c, const char *name)
{
    return client_delete(c, name, true);
}
