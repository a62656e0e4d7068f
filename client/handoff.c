/* handoff: a threshold flush handed to the daemon (see handoff.h). */
#include "handoff.h"

#include <errno.h>

#include "client.h"
#include "notice.h"

enum handoff_result handoff_flush(mmapio_client *c, uint64_t handle)
{
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;

    if (atomic_load_explicit(&c->gone, memory_order_relaxed))
        return HANDOFF_GONE;
    n.handle = handle;
    n.kind = MMAPIO__NOTICE_KIND__NOTICE_FLUSH;
    int r = notice_post(c, &n);
    return r == 0 ? HANDOFF_SENT : r == -EAGAIN ? HANDOFF_FULL : HANDOFF_GONE;
}
