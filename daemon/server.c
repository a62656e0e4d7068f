/* server: loop, listener, signals, start-up and shutdown (see server.h). */
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

#include "conn.h"
#include "flusher.h"
#include "log.h"
#include "quota.h"
#include "watch.h"

#define ACCEPTS_PER_WAKEUP 64
#define LISTEN_BACKLOG 1024

/* mkdir -p: creates missing parents with `mode`. 0 or -errno. */
static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = saved;
        if (!saved)
            return 0;
    }
}

static int open_root(struct daemon *d, char *err, size_t err_size)
{
    int r = mkdir_p(d->cfg.root, geteuid() == 0 ? 0755 : 0700);
    if (r == 0 && access(d->cfg.root, W_OK | X_OK) < 0)
        r = -errno;
    if (r == 0 && (d->root_fd = open(d->cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        r = -errno;
    if (r < 0)
        snprintf(err, err_size, "data root %s is not usable: %s", d->cfg.root,
                 strerror(-r));
    return r;
}

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

static int bind_socket(struct daemon *d, char *err, size_t err_size)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = d->cfg.socket_path;
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
        int r = mkdir_p(dir, geteuid() == 0 ? 0755 : 0700);
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
    struct daemon *d = arg;
    event_add(d->ev_listen, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct daemon *d = arg;

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
        if (d->n_conns >= d->cfg.max_clients) {
            log_warn("refusing a client: max_clients (%u) reached", d->cfg.max_clients);
            close(fd);
            continue;
        }
        struct conn *c;
        if (conn_new(d, fd, &c) < 0)
            log_warn("cannot set up a client connection");
        else
            d->stats.clients_total++;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    log_info("signal %d: stopping", (int)sig);
    sd_stopping(d);
    d->stopping = true;
    event_base_loopbreak(d->base);
}

static int setup_loop(struct daemon *d, char *err, size_t err_size)
{
    d->rxbuf = malloc(d->cfg.max_frame);
    if (!d->rxbuf)
        goto nomem;
    d->ev_listen = event_new(d->base, d->listen_fd, EV_READ | EV_PERSIST, on_accept, d);
    d->ev_retry = evtimer_new(d->base, on_retry, d);
    if (!d->ev_listen || !d->ev_retry || event_add(d->ev_listen, NULL))
        goto nomem;
    int r = flusher_new(d->base, d->cfg.flush_threads, &d->flusher);
    if (r < 0) {
        snprintf(err, err_size, "cannot start flush workers: %s", strerror(-r));
        return r;
    }
    r = watch_init(d);
    if (r < 0) {
        snprintf(err, err_size, "cannot set up inotify: %s", strerror(-r));
        return r;
    }
    return 0;
nomem:
    snprintf(err, err_size, "cannot set up the event loop");
    return -ENOMEM;
}

/* Signal handlers exist before the socket does: whoever sees the socket
 * may send SIGTERM, and must get a clean stop. */
static int setup_signals(struct daemon *d, char *err, size_t err_size)
{
    d->base = event_base_new();
    if (!d->base)
        goto fail;
    d->ev_term = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->ev_int = evsignal_new(d->base, SIGINT, on_signal, d);
    if (!d->ev_term || !d->ev_int || event_add(d->ev_term, NULL) ||
        event_add(d->ev_int, NULL))
        goto fail;
    return 0;
fail:
    snprintf(err, err_size, "cannot set up the event loop");
    return -ENOMEM;
}

/* Every mapping is an fd: take all the fds the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)!setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int server_init(struct daemon *d, char *err, size_t err_size)
{
    d->listen_fd = -1;
    d->root_fd = -1;
    d->inotify_fd = -1;
    d->sd.meta_fd = -1;
    d->started = time(NULL);
    registry_init(&d->reg);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    int r = ctl_init(&d->ctl, d->cfg.max_mappings);
    if (r < 0) {
        snprintf(err, err_size, "cannot create the control area: %s", strerror(-r));
        return r;
    }
    r = setup_signals(d, err, err_size);
    if (r == 0)
        r = open_root(d, err, err_size);
    if (r == 0)
        r = sd_take_fds(d, err, err_size);
    if (r == 0 && d->listen_fd < 0)
        r = bind_socket(d, err, err_size);
    if (r == 0)
        r = setup_loop(d, err, err_size);
    return r;
}

int server_run(struct daemon *d)
{
    if (d->own_socket)
        log_info("listening on %s, data root %s", d->cfg.socket_path, d->cfg.root);
    else
        log_info("serving the socket systemd passed, data root %s", d->cfg.root);
    sd_started(d);
    event_base_dispatch(d->base);
    return 0;
}

void server_fini(struct daemon *d)
{
    if (d->ev_listen)
        event_del(d->ev_listen);
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    if (d->own_socket)
        unlink(d->cfg.socket_path);
    Mmapio__Event bye = MMAPIO__EVENT__INIT;
    bye.kind = MMAPIO__EVENT_KIND__EVENT_SHUTDOWN;
    for (struct conn *c = d->conns; c; c = c->next)
        conn_send_event(c, &bye); /* best effort: a full socket drops it */
    while (d->conns)
        conn_close(d->conns); /* queues the final flush of each file */
    flusher_free(d->flusher); /* runs every queued flush to its end */
    sd_fini(d);
    registry_fini(&d->reg);
    watch_fini(d);
    quota_fini(d);
    ctl_fini(&d->ctl);
    struct event *evs[] = { d->ev_listen, d->ev_retry, d->ev_term, d->ev_int };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    if (d->base)
        event_base_free(d->base);
    if (d->root_fd >= 0)
        close(d->root_fd);
    free(d->rxbuf);
}
