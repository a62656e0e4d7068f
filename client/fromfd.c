/*
 * fromfd: a caller's own fd as a mapping (mmapio_from_fd) and copies
 * between files of the data root (mmapio_copy).
 *
 * The daemon's sockets refuse fds (SO_PASSRIGHTS off), so from_fd is two
 * round trips under the client's lock: FdOffer, after whose answer the
 * connection accepts one fd, then FromFd carrying it. On Windows
 * (conn_offer_first false) FromFd alone, its frame naming the handle's
 * value, which the daemon pulls from this process. The daemon decides
 * everything about the fd (kind, access, which mapping it becomes); the
 * caller keeps its fd.
 */
#include <stddef.h>

#include "client.h"
#include "conn.h"
#include "errors.h"
#include "map.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"

/* FdOffer where the connection needs it, then FromFd with fd (lock
 * held). */
static int ask(mmapio_client *c, int fd, mmapio_mode mode, const char *path,
               struct client_reply *rep)
{
    Mmapio__FdOffer offer = MMAPIO__FD_OFFER__INIT;
    Mmapio__FromFd ff = MMAPIO__FROM_FD__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply first;

    if (conn_offer_first) {
        req.op_case = MMAPIO__REQUEST__OP_FD_OFFER;
        req.fd_offer = &offer;
        int r = client_call_locked(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, &first);
        if (r != MMAPIO_OK)
            return r;
        client_reply_free(&first);
    }
    ff.mode = (Mmapio__Mode)mode;
    ff.path = (char *)path;
    req = (Mmapio__Request)MMAPIO__REQUEST__INIT;
    req.op_case = MMAPIO__REQUEST__OP_FROM_FD;
    req.from_fd = &ff;
    return client_call_fd_locked(c, &req, fd, MMAPIO__REPLY__RESULT_OPEN, rep);
}

int mmapio_from_fd(mmapio_client *c, int fd, mmapio_mode mode,
                   const char *path, mmapio_map **out)
{
    struct client_reply rep;
    mmapio_map *m;

    if (!c || fd < 0 || !out || (unsigned)mode > MMAPIO_MODE_COPY_ON_WRITE)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!path)
        path = "";
    int r = map_new(path, mode, &m);
    if (r != MMAPIO_OK)
        return error_set(r, NULL);
    client_lock(c);
    r = ask(c, fd, mode, path, &rep);
    if (r == MMAPIO_OK)
        r = map_take_grant(c, m, &rep);
    client_unlock(c);
    if (r != MMAPIO_OK) {
        map_free(m);
        return r;
    }
    *out = m;
    return MMAPIO_OK;
}

int mmapio_copy(mmapio_client *c, const char *src, const char *dst)
{
    Mmapio__Copy cp = MMAPIO__COPY__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!c || !src || !dst || !*src || !*dst)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    cp.src = (char *)src;
    cp.dst = (char *)dst;
    req.op_case = MMAPIO__REQUEST__OP_COPY;
    req.copy = &cp;
    return client_call(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, NULL);
}
