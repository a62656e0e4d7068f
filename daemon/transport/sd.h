/*
 * sd: the daemon under systemd, as far as the transport is concerned.
 * Every call is safe without systemd (it then does nothing).
 *
 * - Socket activation: a SOCK_SEQPACKET listening socket passed in
 *   LISTEN_FDS is served instead of creating one; the other passed fds
 *   go to the fd store (services/fdstore.h), which keeps anonymous
 *   mappings across restarts.
 * - Notify: READY=1 when serving, STATUS= with live counts, WATCHDOG=1 from
 *   a loop timer at half the watchdog interval (so a stuck loop is caught),
 *   STOPPING=1 on the way out.
 */
#ifndef MMAPIOD_SD_H
#define MMAPIOD_SD_H

#include <stdbool.h>
#include <stddef.h>

struct event;
struct event_base;
struct fdstore;
struct flushes;
struct handlers;
struct registry;

struct sd_state {
    /* what STATUS= counts; the caller's to fill */
    const struct handlers *handlers;
    const struct registry *reg;
    const struct flushes *flushes;
    bool watchdog;
    struct event *ev_tick; /* WATCHDOG=1 and STATUS= */
};

/* Takes what systemd passed: the listening socket (*listen_fd, left -1
 * when none) and the fd store's fds (then restored). */
void sd_take_fds(int *listen_fd, struct fdstore *store);
/* After start-up: READY=1, the watchdog timer, the fd store. */
void sd_started(struct sd_state *sd, struct event_base *base,
                struct fdstore *store);
void sd_stopping(void);
void sd_fini(struct sd_state *sd);

#endif
