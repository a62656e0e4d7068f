/* sd: socket activation, notify and watchdog (see sd.h). */
#include "sd.h"

#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "fdstore.h"
#include "flushes.h"
#include "log.h"
#include "opencache.h"
#include "registry.h"
#include "session.h"

void sd_take_fds(int *listen_fd, struct fdstore *store)
{
    char **names = NULL;

    int n = sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names && names[i] ? names[i] : "";
        if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0 &&
            *listen_fd < 0) {
            *listen_fd = fd;
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        } else if (!fdstore_take(store, name, fd)) {
            log_warn("closing an unexpected fd from systemd (%s)", name);
            close(fd);
        }
    }
    if (n > 0)
        fdstore_restore(store);
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

static void send_status(struct sd_state *sd, const char *extra)
{
    char state[256];
    snprintf(state, sizeof(state),
             "%sSTATUS=%u clients, %" PRIu64 " anonymous and %" PRIu64
             " file mappings, %" PRIu64 " flushes",
             extra, sd->handlers->n_sessions, sd->reg->n_anon,
             sd->reg->n_file - sd->handlers->cache->n, /* held ones */
             sd->flushes->n_flushes);
    sd_notify(0, state);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sd_state *sd = arg;
    send_status(sd, sd->watchdog ? "WATCHDOG=1\n" : "");
}

void sd_started(struct sd_state *sd, struct event_base *base,
                struct fdstore *store)
{
    uint64_t usec = 0;
    if (!getenv("NOTIFY_SOCKET"))
        return;
    sd->watchdog = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
    uint64_t tick = sd->watchdog ? usec / 2 : 5000000;
    struct timeval tv = { (time_t)(tick / 1000000), (suseconds_t)(tick % 1000000) };
    sd->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, sd);
    if (sd->ev_tick)
        event_add(sd->ev_tick, &tv);
    fdstore_start(store);
    send_status(sd, "READY=1\n");
}

void sd_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: flushing mappings");
}

void sd_fini(struct sd_state *sd)
{
    if (sd->ev_tick)
        event_free(sd->ev_tick);
    sd->ev_tick = NULL;
}
