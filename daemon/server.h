/*
 * server: the daemon as a whole. Owns the libevent loop, the listening
 * socket, the data root, the registry of mappings, the flush workers and the
 * list of connections; accepts clients (backing off when out of fds) and
 * shuts down cleanly on SIGTERM/SIGINT: stop accepting, flush every mapping,
 * remove the socket.
 */
#ifndef MMAPIOD_SERVER_H
#define MMAPIOD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "ctl.h"
#include "hmap.h"
#include "registry.h"
#include "sd.h"

struct event_base;
struct event;
struct flusher;
struct conn;

struct daemon {
    struct config cfg;
    struct event_base *base;
    int listen_fd;
    bool own_socket;           /* we created the socket file: remove it */
    int root_fd;               /* O_PATH directory fd of the data root */
    struct event *ev_listen, *ev_retry, *ev_term, *ev_int;
    struct registry reg;
    struct flusher *flusher;
    struct conn *conns;        /* every live connection */
    uint32_t n_conns;
    uint64_t next_conn_id;
    uint8_t *rxbuf;            /* one datagram, max_frame + 1 bytes */
    bool stopping;
    time_t started;
    struct ctl ctl;            /* the control area */
    int inotify_fd;            /* watch.c */
    struct event *ev_inotify;
    struct hmap wds;           /* inotify wd -> mapping */
    struct hmap watch_ids;     /* watch id -> watch */
    uint64_t next_watch;
    struct sd_state sd;
    struct hmap quotas;        /* quota.c: uid -> what it owns */
    struct {
        uint64_t flushes, flush_failures, errors, clients_total;
    } stats;
};

/*
 * Sets up everything from d->cfg: root, socket (refusing a live one,
 * replacing a stale one), loop, workers. On failure a one-line reason is in
 * err and a negative errno is returned.
 */
int server_init(struct daemon *d, char *err, size_t err_size);
/* Runs the loop until a stop signal; then flushes and cleans up. */
int server_run(struct daemon *d);
void server_fini(struct daemon *d);

#endif
