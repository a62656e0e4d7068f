/* notice: one-way datagrams from the data path (see notice.h). */
#include "notice.h"

#include <errno.h>
#include <poll.h>

#include "client.h"
#include "wire.h"

#define NOTICE_WAIT_MS 1000

bool notice_send(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                 Mmapio__NoticeKind kind, uint64_t offset, uint64_t len)
{
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    uint8_t buf[64];

    /* Nobody is listening any more: writes cost no syscall again. */
    if (atomic_load_explicit(&c->gone, memory_order_relaxed))
        return true;

    n.handle = handle;
    n.kind = kind;
    n.offset = offset;
    n.len = len;
    n.lost = atomic_exchange_explicit(lost, false, memory_order_relaxed);
    req.op_case = MMAPIO__REQUEST__OP_NOTICE;
    req.notice = &n;
    size_t size = mmapio__request__pack(&req, buf);
    int r = wire_send_nowait(c->fd, buf, size);
    if (r == -EAGAIN) {
        /* The daemon is behind: wait a little for it rather than lose the
         * notice (a writer that makes notices already pays a syscall). */
        struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
        if (poll(&pfd, 1, NOTICE_WAIT_MS) > 0)
            r = wire_send_nowait(c->fd, buf, size);
    }
    if (r == 0)
        return true;
    if (r != -EAGAIN) { /* the daemon is gone (EPIPE, ECONNRESET, ...) */
        atomic_store_explicit(&c->gone, true, memory_order_relaxed);
        return true;
    }
    atomic_store_explicit(lost, true, memory_order_relaxed);
    return false;
}
