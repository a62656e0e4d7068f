/* notice: one-way datagrams from the data path (see notice.h). */
#include "notice.h"

#include <errno.h>
#include <time.h>

#include "client.h"
#include "conn.h"
#include "errors.h"
#include "proc.h"
#include "vmem.h"

#define MS_NS UINT64_C(1000000)

static void own_up_now(mmapio_client *c);

static bool send_notice(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                        Mmapio__NoticeKind kind, uint64_t offset,
                        uint64_t len, uint32_t hold_ms)
{
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;

    /* Nobody is listening any more: writes cost no syscall again. */
    if (atomic_load_explicit(&c->gone, memory_order_relaxed))
        return true;

    n.handle = handle;
    n.kind = kind;
    n.offset = offset;
    n.len = len;
    n.hold_ms = hold_ms;
    n.lost = atomic_exchange_explicit(lost, false, memory_order_relaxed);
    /* Never waits for room: the daemon may be busy or stopped, and a
     * writer must not wait for it. */
    own_up_now(c);
    if (notice_post(c, &n) != -EAGAIN)
        return true; /* sent, or nobody listens any more */
    atomic_store_explicit(lost, true, memory_order_relaxed);
    atomic_store_explicit(&c->notices_lost, true, memory_order_relaxed);
    return false;
}

/* From the data path: owns up without waiting, or leaves it for later. */
static void own_up_now(mmapio_client *c)
{
    Mmapio__Notice n;
    Mmapio__Request req;
    if (!client_take_lost_notice(c, &req, &n))
        return;
    if (notice_post(c, &n) == -EAGAIN)
        atomic_store_explicit(&c->notices_lost, true, memory_order_relaxed);
}

int notice_post(mmapio_client *c, const Mmapio__Notice *n)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    uint8_t buf[64];
    req.op_case = MMAPIO__REQUEST__OP_NOTICE;
    req.notice = (Mmapio__Notice *)n;
    int r = conn_send(c->fd, buf, mmapio__request__pack(&req, buf), -1, false);
    if (r == 0 || r == -EAGAIN)
        return r;
    /* EPIPE, ECONNRESET, ...: the daemon is gone */
    atomic_store_explicit(&c->gone, true, memory_order_relaxed);
    return -EPIPE;
}

bool notice_send(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                 Mmapio__NoticeKind kind, uint64_t offset, uint64_t len)
{
    return send_notice(c, handle, lost, kind, offset, len, 0);
}

void notice_pace_init(struct notice_pace *p)
{
    *p = (struct notice_pace){ .window_ns = 0 };
    pthread_mutex_init(&p->lock, NULL);
}

void notice_pace_fini(struct notice_pace *p)
{
    pthread_mutex_destroy(&p->lock);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* With p->lock held: sends the write's range, saying "hold" when it is
 * the window's last exact notice. true if sent. */
static bool send_paced(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                       struct notice_pace *p, uint64_t now, uint64_t offset,
                       uint64_t len)
{
    if (now - p->window_ns >= NOTICE_WINDOW_MS * MS_NS) {
        p->window_ns = now;
        p->sent = 0;
    }
    bool hold = p->sent + 1 >= NOTICE_BURST;
    if (!send_notice(c, handle, lost, MMAPIO__NOTICE_KIND__NOTICE_WRITE,
                     offset, len, hold ? NOTICE_HOLD_MS : 0)) {
        /* Dropped and flagged lost: the daemon tells watchers of an
         * overflow when the next notice arrives. Do not knock again for
         * a while: each knock on a full socket is a system call. */
        p->retry_ns = now + NOTICE_RETRY_MS * MS_NS;
        return false;
    }
    p->sent++;
    if (hold) {
        p->hold_until_ns = now + NOTICE_HOLD_MS * MS_NS;
        p->window_ns = p->hold_until_ns;
        p->sent = 0;
    }
    return true;
}

bool notice_write(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                  struct notice_pace *p, uint64_t offset, uint64_t len)
{
    uint64_t now = now_ns();
    bool sent = false;
    pthread_mutex_lock(&p->lock);
    if (now < p->retry_ns)
        atomic_store_explicit(lost, true, memory_order_relaxed);
    else if (now >= p->hold_until_ns)
        sent = send_paced(c, handle, lost, p, now, offset, len);
    /* else: held. The daemon's MODIFIED without a range, due after the
     * hold (and after every write made in it), covers this write. */
    pthread_mutex_unlock(&p->lock);
    return sent;
}

/* Rings mapped in this process, numbered: a thread's own cell is of one. */
static atomic_uint_fast64_t ring_epochs;

_Thread_local __attribute__((tls_model("initial-exec")))
struct notice_own notice_own;

void notice_ring_attach_locked(mmapio_client *c)
{
    Mmapio__WriteRing wr = MMAPIO__WRITE_RING__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    struct error_saved saved;

    if (c->ring_asked)
        return;
    c->ring_asked = true;
    req.op_case = MMAPIO__REQUEST__OP_WRITE_RING;
    req.write_ring = &wr;
    error_save(&saved);
    if (client_call_locked(c, &req, MMAPIO__REPLY__RESULT_WRITE_RING, &rep) !=
        MMAPIO_OK) {
        /* An older daemon, or the uid has max_write_rings_per_uid (the
         * daemon logs it): this connection tells writes by notices, and
         * the open that asked still succeeds, its error text untouched. */
        error_restore(&saved);
        return;
    }
    bool fits = rep.reply->write_ring->cells == WRING_CELLS;
    c->ring_releases = rep.reply->write_ring->releases;
    void *p = fits ? vmem_map(NULL, rep.fd, 0, WRING_SIZE, VMEM_WRITE) : NULL;
    client_reply_free(&rep);
    if (!p)
        return;
    struct wring_hdr *r = p;
    /* (wring_push also looks at takes in the ring it writes.) */
    c->ring_fenced = atomic_load(&r->takes) == WRING_TAKES_FENCED &&
                     proc_fence_register();
    c->ring_epoch = atomic_fetch_add(&ring_epochs, 1) + 1;
    atomic_store_explicit(&c->ring, r, memory_order_release);
}

/* Wakes the daemon for c's ring (the caller took `flag`, the ring's armed
 * or knock, to 0): one RING notice that never waits. A full socket puts
 * the flag back: the daemon reads that socket later, and the ring with
 * it, and the next writer wakes it again. */
static void ring_wake(mmapio_client *c, _Atomic uint32_t *flag)
{
    if (atomic_load_explicit(&c->gone, memory_order_relaxed))
        return;
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    n.kind = MMAPIO__NOTICE_KIND__NOTICE_RING;
    if (notice_post(c, &n) == -EAGAIN)
        atomic_store_explicit(flag, 1, memory_order_relaxed);
}

bool notice_release_locked(mmapio_client *c, uint64_t handle)
{
    struct wring_hdr *r = atomic_load_explicit(&c->ring, memory_order_relaxed);
    if (!r || !c->ring_releases)
        return false;
    enum wring_push p = wring_release(r, handle);
    if (p == WRING_DROPPED)
        return false;
    if (p == WRING_WAKE)
        ring_wake(c, &r->armed);
    return true;
}

bool notice_range(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                  struct notice_pace *p, uint64_t offset, uint64_t len)
{
    struct wring_hdr *r = atomic_load_explicit(&c->ring, memory_order_acquire);
    if (!r)
        return notice_write(c, handle, lost, p, offset, len);
    enum wring_push got;
    if (c->ring_fenced) {
        struct notice_own *own = &notice_own;
        if (own->ring != r || own->epoch != c->ring_epoch) {
            own->ring = r;
            own->epoch = c->ring_epoch;
            own->w = (struct wring_own){ 0 };
        }
        got = wring_push_own(r, &own->w, handle, offset, len);
    } else {
        got = wring_push(r, handle, offset, len, NULL);
    }
    if (got == WRING_PUSHED || got == WRING_DROPPED)
        return true;
    ring_wake(c, got == WRING_WAKE ? &r->armed : &r->knock);
    return true;
}

void notice_knock(mmapio_client *c, struct wring_hdr *r)
{
    if (atomic_load_explicit(&r->knock, memory_order_relaxed) &&
        atomic_exchange(&r->knock, 0))
        ring_wake(c, &r->knock);
}

