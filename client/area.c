/*
 * area: the library's view of the daemon's control area, and notices.
 *
 * The control area (common/ctlarea.h) is mapped read-only once per
 * connection. The data path reads a mapping's slot with plain atomic loads:
 * its current flush policy, whether anyone watches it, and the flush
 * generation. Only when those say the daemon must hear of a write does the
 * library send a one-way notice, a single non-blocking datagram: a WRITE on
 * a watched mapping, the first DIRTY after each timed flush of an
 * EveryMillis mapping, and once per handle that hands out a writable
 * pointer. When the socket buffer is full the writer waits up to a second
 * for the daemon; a notice still not sent then is dropped, the next one
 * says so (the daemon turns that into an overflow event), and a DIRTY or
 * RAW_WRITER notice is tried again by the next write.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wire.h"

#define AREA_MAX_SLOTS (1u << 24)
#define AREA_NOTICE_WAIT_MS 1000

int area_attach(mmapio_client *c, int fd, uint32_t slots)
{
    if (fd < 0 || slots == 0 || slots > AREA_MAX_SLOTS) {
        if (fd >= 0)
            close(fd);
        return MMAPIO_E_PROTOCOL;
    }
    size_t len = (size_t)slots * sizeof(struct ctl_slot);
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return MMAPIO_E_PROTOCOL;
    c->area = p;
    c->area_slots = slots;
    return MMAPIO_OK;
}

void area_detach(mmapio_client *c)
{
    if (c->area)
        munmap((void *)c->area, (size_t)c->area_slots * sizeof(struct ctl_slot));
    c->area = NULL;
    c->area_slots = 0;
}

const struct ctl_slot *area_slot(const mmapio_client *c, uint32_t slot)
{
    return slot < c->area_slots ? &c->area[slot] : NULL;
}

bool area_notice(mmapio_map *m, Mmapio__NoticeKind kind, uint64_t offset,
                 uint64_t len)
{
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    uint8_t buf[64];

    /* Nobody is listening any more: writes cost no syscall again. */
    if (atomic_load_explicit(&m->client->gone, memory_order_relaxed))
        return true;

    n.handle = m->handle;
    n.kind = kind;
    n.offset = offset;
    n.len = len;
    n.lost = atomic_exchange_explicit(&m->lost_notice, false,
                                      memory_order_relaxed);
    req.op_case = MMAPIO__REQUEST__OP_NOTICE;
    req.notice = &n;
    size_t size = mmapio__request__pack(&req, buf);
    int r = wire_send_nowait(m->client->fd, buf, size);
    if (r == -EAGAIN) {
        /* The daemon is behind: wait a little for it rather than lose the
         * notice (a writer that makes notices already pays a syscall). */
        struct pollfd pfd = { .fd = m->client->fd, .events = POLLOUT };
        if (poll(&pfd, 1, AREA_NOTICE_WAIT_MS) > 0)
            r = wire_send_nowait(m->client->fd, buf, size);
    }
    if (r == 0)
        return true;
    if (r != -EAGAIN) { /* the daemon is gone (EPIPE, ECONNRESET, ...) */
        atomic_store_explicit(&m->client->gone, true, memory_order_relaxed);
        return true;
    }
    atomic_store_explicit(&m->lost_notice, true, memory_order_relaxed);
    return false;
}
