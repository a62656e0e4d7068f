/*
 * dispatch: mmapio_client_dispatch, where a program's own loop hands the
 * library its turn.
 *
 * It sits above the connection (client.c), which reads the events, and
 * the watchers (watch.c), whose callbacks it runs: every datagram waiting
 * is read, then the callbacks run without the connection's lock, then, if
 * nothing happened, it sleeps on the socket until the time runs out. An
 * event read meanwhile by a request in another thread wakes it. A dead
 * connection is reported once the events read before its death have been
 * delivered. Replies to asynchronous requests (mmapio_flush_async) run
 * their callbacks here too, after the watchers'; those of a connection
 * that died run with MMAPIO_E_DISCONNECTED.
 */
#include <stdint.h>

#include "client.h"
#include "errors.h"
#include "watch.h"

int mmapio_client_dispatch(mmapio_client *c, int timeout_ms)
{
    if (!c)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    int64_t deadline = timeout_ms < 0 ? -1 : client_now_ms() + timeout_ms;
    for (;;) {
        int r = client_drain(c);
        watch_deliver(c);
        asyncs_run(client_take_done(c));
        if (r != 0)
            return r > 0 ? r : error_set(r, NULL);
        int left = -1;
        if (deadline >= 0) {
            int64_t d = deadline - client_now_ms();
            if (d <= 0)
                return 0;
            left = d > INT32_MAX ? INT32_MAX : (int)d;
        }
        r = client_await(c, left);
        if (r != MMAPIO_OK)
            return error_set(r, NULL);
    }
}
