/* server: listener, signals, start-up and shutdown (see server.h). */
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "dirs.h"
#include "log.h"
#include "session.h"

#define ACCEPTS_PER_WAKEUP 64
#define LISTEN_BACKLOG 1024

/* Is a daemon answering on this path? */
static bool socket_alive(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
                 errno == EAGAIN; /* backlog full: alive, just busy */
    close(fd);
    return alive;
}

static int bind_socket(struct server *d, char *err, size_t err_size)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = d->cfg->socket_path;
    char dir[sizeof(sa.sun_path)];

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, err_size, "socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    memcpy(dir, path, strlen(path) + 1);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int r = dirs_mkdir_p(dir, geteuid() == 0 ? 0755 : 0700);
        if (r < 0) {
            snprintf(err, err_size, "cannot create %s: %s", dir, strerror(-r));
            return r;
        }
    }
    d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->listen_fd < 0)
        goto fail;
    if (bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno != EADDRINUSE)
            goto fail;
        if (socket_alive(&sa)) {
            snprintf(err, err_size, "another mmapiod is listening on %s", path);
            return -EADDRINUSE;
        }
        log_info("replacing stale socket %s", path);
        if (unlink(path) < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            goto fail;
    }
    d->own_socket = true;
    /* Anyone may connect: every request is judged by the peer's credentials. */
    if (chmod(path, 0666) < 0 || listen(d->listen_fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return 0;
fail:
    snprintf(err, err_size, "socket %s: %s", path, strerror(errno));
    return -errno;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct server *d = arg;
    event_add(d->ev_listen, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct server *d = arg;

    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of fds is load, not a bug: pause, then try again. */
                struct timeval tv = { 0, 100 * 1000 };
                log_warn("accept: %s; pausing for 100 ms", strerror(errno));
                event_del(d->ev_listen);
                event_add(d->ev_retry, &tv);
            }
            return;
        }
        if (d->handlers->n_sessions >= d->cfg->max_clients) {
            log_warn("refusing a client: max_clients (%u) reached", d->cfg->max_clients);
            close(fd);
            continue;
        }
        struct conn *c;
        if (conn_new(&d->conns, fd, &c) < 0)
            log_warn("cannot set up a client connection");
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *d = arg;
    log_info("signal %d: stopping", (int)sig);
    sd_stopping();
    d->stopping = true;
    event_base_loopbreak(d->base);
}

static int setup_accept(struct server *d, char *err, size_t err_size)
{
    d->conns = (struct conn_ctx){
        .cfg = d->cfg, .base = d->base, .handlers = d->handlers,
        .rxbuf = malloc(d->cfg->max_frame),
    };
    conn_refuse_fds_on(d->listen_fd);
    d->ev_listen = event_new(d->base, d->listen_fd, EV_READ | EV_PERSIST, on_accept, d);
    d->ev_retry = evtimer_new(d->base, on_retry, d);
    if (!d->conns.rxbuf || !d->ev_listen || !d->ev_retry || event_add(d->ev_listen, NULL)) {
        snprintf(err, err_size, "cannot set up the event loop");
        return -ENOMEM;
    }
    return 0;
}

/* Signal handlers exist before the socket does: whoever sees the socket
 * may send SIGTERM, and must get a clean stop. */
static int setup_signals(struct server *d, char *err, size_t err_size)
{
    d->ev_term = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->ev_int = evsignal_new(d->base, SIGINT, on_signal, d);
    if (!d->ev_term || !d->ev_int || event_add(d->ev_term, NULL) ||
        event_add(d->ev_int, NULL)) {
        snprintf(err, err_size, "cannot set up the event loop");
        return -ENOMEM;
    }
    return 0;
}

int server_init(struct server *d, char *err, size_t err_size)
{
    d->listen_fd = -1;
    int r = setup_signals(d, err, err_size);
    if (r == 0)
        sd_take_fds(&d->listen_fd, d->store);
    if (r == 0 && d->listen_fd < 0)
        r = bind_socket(d, err, err_size);
    if (r == 0)
        r = setup_accept(d, err, err_size);
    return r;
}

int server_run(struct server *d)
{
    if (d->own_socket)
        log_info("listening on %s, data root %s", d->cfg->socket_path, d->cfg->root);
    else
        log_info("serving the socket systemd passed, data root %s", d->cfg->root);
    d->sd.handlers = d->handlers;
    d->sd.reg = d->reg;
    d->sd.flushes = d->flushes;
    sd_started(&d->sd, d->base, d->store);
    event_base_dispatch(d->base);
    return 0;
}

void server_fini(struct server *d)
{
    if (d->ev_listen)
        event_del(d->ev_listen);
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    d->listen_fd = -1;
    if (d->own_socket)
        unlink(d->cfg->socket_path);
    d->own_socket = false;
    Mmapio__Event bye = MMAPIO__EVENT__INIT;
    bye.kind = MMAPIO__EVENT_KIND__EVENT_SHUTDOWN;
    struct handlers *h = d->handlers;
    for (struct session *s = h ? h->sessions : NULL; s; s = s->next) /* best effort */
        conn_send_event(container_of(s, struct conn, s), &bye);
    while (h && h->sessions) /* queues the final flush of each file */
        conn_close(container_of(h->sessions, struct conn, s));
    sd_fini(&d->sd);
    struct event *evs[] = { d->ev_listen, d->ev_retry, d->ev_term, d->ev_int };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    d->ev_listen = d->ev_retry = d->ev_term = d->ev_int = NULL;
    free(d->conns.rxbuf);
    d->conns.rxbuf = NULL;
}
