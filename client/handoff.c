/* handoff: a threshold flush handed to the daemon (see handoff.h). */
#include "handoff.h"

#include <errno.h>

#include "client.h"
#include "wire.h"

enum handoff_result handoff_flush(mmapio_client *c, uint64_t handle)
{
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    uint8_t buf[32];

    if (atomic_load_explicit(&c->gone, memory_order_relaxed))
        return HANDOFF_GONE;
    n.handle = handle;
    n.kind = MMAPIO__NOTICE_KIND__NOTICE_FLUSH;
    req.op_case = MMAPIO__REQUEST__OP_NOTICE;
    req.notice = &n;
    size_t size = mmapio__request__pack(&req, buf);
    int r = wire_send_nowait(c->fd, buf, size);
    if (r == 0)
        return HANDOFF_SENT;
    if (r == -EAGAIN)
        return HANDOFF_FULL;
    /* EPIPE, ECONNRESET, ...: as notice.c, send no more */
    atomic_store_explicit(&c->gone, true, memory_order_relaxed);
    return HANDOFF_GONE;
}
