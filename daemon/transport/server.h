/*
 * server: the listener and the loop's edges. Takes its listening socket
 * from systemd or binds one (refusing a live one, replacing a stale one),
 * accepts clients and makes each a connection; stops on SIGTERM/SIGINT:
 * stops accepting, tells every client SHUTDOWN and closes them (their
 * final flushes are queued), removes the socket.
 *
 * Admission, decided at accept from the peer's kernel-given credentials:
 * past max_clients nobody, past max_clients - reserved_clients only root
 * and admin_group, and an ordinary uid at most max_clients_per_uid
 * connections; a refused peer is closed at once (it sees EOF) and a
 * rate-limited log line says why. Out of fds, accept still answers: a
 * spare fd is given up to take the waiting peer and close it, so a new
 * client gets EOF promptly instead of hanging in the backlog; only when
 * even that fails does the listener pause for 100 ms. Memory freed from
 * send queues goes back to the system (malloc_trim) shortly after.
 */
#ifndef MMAPIOD_SERVER_H
#define MMAPIOD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "log.h"
#include "sd.h"

struct config;
struct event;
struct event_base;
struct fdstore;
struct flushes;
struct handlers;
struct registry;

struct server {
    const struct config *cfg;
    struct event_base *base;
    struct registry *reg;      /* for systemd's STATUS */
    struct flushes *flushes;   /* for systemd's STATUS */
    struct fdstore *store;     /* takes the fds systemd hands back */
    struct handlers *handlers; /* every connection's session */
    int listen_fd;
    bool own_socket;           /* we created the socket file: remove it */
    struct event *ev_listen, *ev_retry, *ev_term, *ev_int, *ev_trim;
    int spare_fd;              /* given up to answer at the fd limit */
    struct log_limit refusals; /* refused connections, logged */
    struct conn_ctx conns;     /* what the connections share */
    bool stopping;
    struct sd_state sd;
};

/*
 * Signals first (whoever sees the socket may send SIGTERM and must get a
 * clean stop), then systemd's fds, then the socket and the accept loop.
 * The fields before listen_fd are the caller's to fill. On failure a
 * one-line reason is in err and a negative errno is returned.
 */
int server_init(struct server *srv, char *err, size_t err_size);
/* Runs the loop until a stop signal. */
int server_run(struct server *srv);
/* Stops listening, says SHUTDOWN to every client and closes it. */
void server_fini(struct server *srv);

#endif
