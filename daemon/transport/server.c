/* server: listener, signals, start-up and shutdown (see server.h). */
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "dirs.h"
#include "log.h"
#include "session.h"
#include "sockdir.h"
#include "uids.h"

/* Accepts per wake-up: a connect storm takes a few requests' worth of
 * each pass of the loop, and established clients keep their turns. */
#define ACCEPTS_PER_WAKEUP 16
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

/* Who may own the socket's directory: the daemon itself, or root. */
static bool trusted_owner(uid_t uid)
{
    return uid == 0 || uid == geteuid();
}

/*
 * Makes the socket's directory if missing (0700 unless root's daemon,
 * whose socket every user reaches), then refuses one that another uid
 * owns or may write: they could replace our socket with theirs
 * (common/sockdir.h). Socket activation never comes here: systemd made
 * the socket.
 */
static int socket_dir(const char *path, char *err, size_t err_size)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)], why[256];
    int r = sockdir_of(path, dir, sizeof(dir));

    if (r == 0 && strcmp(dir, ".") && strcmp(dir, "/"))
        r = dirs_mkdir_p(dir, geteuid() == 0 ? 0755 : 0700);
    if (r < 0) {
        snprintf(err, err_size, "cannot create %s: %s", dir, strerror(-r));
        return r;
    }
    r = sockdir_check(path, trusted_owner, why, sizeof(why));
    if (r < 0)
        snprintf(err, err_size, "refusing socket %s: %s", path, why);
    return r;
}

static int bind_socket(struct server *d, char *err, size_t err_size)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = d->cfg->socket_path;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, err_size, "socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int r = socket_dir(path, err, err_size);
    if (r < 0)
        return r;
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

/* One log line a second at most: an attacker's refusals must not flood. */
static void log_refusal(struct server *d, const struct peer_cred *who,
                        const char *why)
{
    log_limited(&d->refusals, LOG_LVL_WARN,
                "refusing a client (pid %d, uid %u): %s",
                who ? (int)who->pid : 0, who ? (unsigned)who->uid : 0, why);
}

/* NULL when the peer may have a connection, else why not (for the log);
 * msg gets the words for the client. */
static const char *admit(struct server *d, const struct peer_cred *who,
                         char *msg, size_t cap)
{
    const struct config *cfg = d->cfg;
    /* Closed sockets still draining fds keep their places (conn.h). */
    uint32_t n = d->handlers->n_sessions + d->conns.n_drains;
    if (n >= cfg->max_clients) {
        snprintf(msg, cap, "mmapiod is full: max_clients (%u) reached",
                 (unsigned)cfg->max_clients);
        return "max_clients reached";
    }
    if (access_is_admin(who, cfg->has_admin_group, cfg->admin_gid))
        return NULL;
    if (n >= cfg->max_clients - cfg->reserved_clients) {
        snprintf(msg, cap, "mmapiod is full: the last %u of max_clients (%u) "
                 "places are kept for root and admin_group",
                 (unsigned)cfg->reserved_clients, (unsigned)cfg->max_clients);
        return "the last reserved_clients places are for root and admin_group";
    }
    const struct uid_use *e = uids_find(&d->conns.uids, who->uid);
    if (e && e->conns >= cfg->max_clients_per_uid) {
        snprintf(msg, cap, "mmapiod is full for uid %u: max_clients_per_uid "
                 "(%u) reached", (unsigned)who->uid,
                 (unsigned)cfg->max_clients_per_uid);
        return "max_clients_per_uid reached";
    }
    return NULL;
}

/* Out of fds with peers waiting: give up the spare fd to take one and
 * close it at once, so that it sees EOF rather than waiting forever in
 * the backlog. false when there is no spare to give up. */
static bool shed_one(struct server *d)
{
    if (d->spare_fd < 0)
        return false;
    close(d->spare_fd);
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        log_refusal(d, NULL, "the daemon is out of fds");
        close(fd);
    }
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
}

static void take(struct server *d, int fd)
{
    struct peer_cred who;
    const char *why = NULL;
    char msg[160];
    if (peer_identity(fd, &who) < 0) {
        log_refusal(d, NULL, "no credentials");
        close(fd);
        return;
    }
    if ((why = admit(d, &who, msg, sizeof(msg)))) {
        log_refusal(d, &who, why);
        conn_refuse(fd, who.uid, MMAPIO_E_QUOTA, msg);
        return;
    }
    struct conn *c;
    if (conn_new(&d->conns, fd, &c) < 0)
        log_warn("cannot set up a client connection");
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct server *d = arg;

    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take(d, fd);
            continue;
        }
        if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS &&
            errno != ENOMEM)
            return;
        if ((errno == EMFILE || errno == ENFILE) && shed_one(d))
            continue;
        /* Out of memory or of the spare: load, not a bug; pause, retry. */
        struct timeval tv = { 0, 100 * 1000 };
        log_warn("accept: %s; pausing for 100 ms", strerror(errno));
        event_del(d->ev_listen);
        event_add(d->ev_retry, &tv);
        return;
    }
}

/* Reply queues come and go in large amounts: give the freed pages back. */
static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    struct server *d = arg;
    d->conns.freed = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
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
    struct timeval hello = { d->cfg->hello_timeout_ms / 1000,
                             d->cfg->hello_timeout_ms % 1000 * 1000 };
    d->conns = (struct conn_ctx){
        .cfg = d->cfg, .base = d->base, .handlers = d->handlers,
        .rxbuf = malloc(d->cfg->max_frame),
        .hello_tv = event_base_init_common_timeout(d->base, &hello),
    };
    uids_init(&d->conns.uids);
    conn_refuse_fds_on(d->listen_fd);
    d->ev_listen = event_new(d->base, d->listen_fd, EV_READ | EV_PERSIST, on_accept, d);
    d->ev_retry = evtimer_new(d->base, on_retry, d);
    d->ev_trim = d->conns.ev_trim = evtimer_new(d->base, on_trim, d);
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!d->conns.rxbuf || !d->conns.hello_tv || !d->ev_listen || !d->ev_retry ||
        !d->ev_trim || event_add(d->ev_listen, NULL)) {
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
    d->listen_fd = d->spare_fd = -1;
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
    struct event *evs[] = { d->ev_listen, d->ev_retry, d->ev_term, d->ev_int,
                            d->ev_trim };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    d->ev_listen = d->ev_retry = d->ev_term = d->ev_int = d->ev_trim = NULL;
    d->conns.ev_trim = NULL;
    conn_ctx_fini(&d->conns);
    uids_fini(&d->conns.uids);
    if (d->spare_fd >= 0)
        close(d->spare_fd);
    d->spare_fd = -1;
    free(d->conns.rxbuf);
    d->conns.rxbuf = NULL;
}
