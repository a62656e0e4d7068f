/*
 * flushes: mmapio_flush_async and mmapio_flush_range_async, a flush done
 * by the daemon's workers while the caller goes on.
 *
 * The Flush request leaves at once and the call returns; the daemon
 * flushes off its event loop and replies when the data is on the disk,
 * and the reply, matched by its id (client.h, asyncs.h), makes the
 * callback due: it runs from mmapio_client_dispatch of the map's client,
 * with MMAPIO_OK or the flush's error. A read-only or copy-on-write
 * handle, or an anonymous mapping, has nothing to flush: the daemon says
 * so at once and the callback still runs, with MMAPIO_OK. If the
 * connection dies first, the callback runs with MMAPIO_E_DISCONNECTED.
 */
#include "client.h"
#include "errors.h"
#include "map.h"

static int flush_async(mmapio_map *m, uint64_t offset, uint64_t len,
                       mmapio_done_cb cb, void *user)
{
    Mmapio__Flush fl = MMAPIO__FLUSH__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    mmapio_client *c = map_client_of(m);

    if (map_attached(m) != MMAPIO_OK)
        return MMAPIO_E_NOT_FOUND;
    fl.handle = map_handle_of(m);
    fl.offset = offset;
    fl.len = len;
    req.op_case = MMAPIO__REQUEST__OP_FLUSH;
    req.flush = &fl;
    client_lock(c);
    int r = client_send_async_locked(c, &req, cb, user);
    client_unlock(c);
    return r;
}

int mmapio_flush_async(mmapio_map *m, mmapio_done_cb cb, void *user)
{
    if (!m || !cb)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    return flush_async(m, 0, mmapio_len(m), cb, user);
}

int mmapio_flush_range_async(mmapio_map *m, uint64_t offset, uint64_t len,
                             mmapio_done_cb cb, void *user)
{
    if (!m || !cb)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    uint64_t size = mmapio_len(m);
    if (offset > size || len > size - offset)
        return error_set(MMAPIO_E_OUT_OF_BOUNDS, NULL);
    return flush_async(m, offset, len, cb, user);
}
