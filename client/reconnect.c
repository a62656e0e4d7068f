/*
 * reconnect: mmapio_reconnect, after the daemon restarted. On top of the
 * connection (client.c: a new socket on the same fd number, hello, a new
 * control area), the handles (map.c: each re-attached to its very object,
 * or detached) and the watchers (watch.c: watching again), all under the
 * connection's lock, so no other request of c runs in between.
 */
#include <stdlib.h>

#include "client.h"
#include "errors.h"
#include "map.h"
#include "watch.h"

int mmapio_reconnect(mmapio_client *c)
{
    struct map_rejoined *pairs = NULL;
    size_t n = 0;

    if (!c)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    client_lock(c);
    if (!client_is_down_locked(c)) {
        client_unlock(c);
        return MMAPIO_OK; /* connected all along */
    }
    int r = client_rejoin_locked(c);
    if (r == MMAPIO_OK)
        r = map_rejoin_all_locked(c, &pairs, &n);
    if (r == MMAPIO_OK)
        r = watch_rejoin_locked(c, pairs, n);
    client_unlock(c);
    free(pairs);
    return r;
}
