/*
 * sd: the daemon under systemd. Every call is safe without systemd (it then
 * does nothing), so the rest of the daemon calls them unconditionally.
 *
 * - Socket activation: a SOCK_SEQPACKET listening socket passed in
 *   LISTEN_FDS is served instead of creating one.
 * - Notify: READY=1 when serving, STATUS= with live counts, WATCHDOG=1 from
 *   a loop timer at half the watchdog interval (so a stuck loop is caught),
 *   STOPPING=1 on the way out.
 * - File-descriptor store: every anonymous mapping's memfd is stored as
 *   "anon-ID", beside "anon-meta", a memfd holding an append-only log of
 *   what each ID is (name, owner, group, mode, policy) and which IDs were
 *   deleted. On the next start the stored fds come back in LISTEN_FDS with
 *   LISTEN_FDNAMES; the log is replayed and the mappings are registered
 *   under their names again, contents intact, then re-stored afresh.
 *   When the log holds more than twice the live records it is rewritten
 *   into a new memfd ("anon-meta.GEN", stored before the old one goes; on
 *   restore the highest generation wins).
 */
#ifndef MMAPIOD_SD_H
#define MMAPIOD_SD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct event;
struct mapping;

struct sd_state {
    int meta_fd;          /* the store's meta log, -1 when not storing */
    uint64_t meta_off;
    uint64_t meta_gen;    /* stored as "anon-meta" (0) or "anon-meta.GEN" */
    uint64_t meta_records;
    bool compacting;
    bool watchdog;
    struct event *ev_tick; /* WATCHDOG=1 and STATUS= */
};

/* Takes what systemd passed: the listening socket (d->listen_fd, or -1)
 * and stored anonymous mappings (registered). 0 or -errno with err set. */
int sd_take_fds(struct daemon *d, char *err, size_t err_size);
/* After start-up: READY=1, the watchdog timer, the store's meta log. */
void sd_started(struct daemon *d);
void sd_stopping(struct daemon *d);
/* The fd store follows the anonymous mappings. */
void sd_anon_created(struct daemon *d, struct mapping *m);
void sd_anon_deleted(struct daemon *d, struct mapping *m);
void sd_anon_changed(struct daemon *d, struct mapping *m);
void sd_fini(struct daemon *d);

#endif
