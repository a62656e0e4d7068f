/* conn on Linux: an AF_UNIX SOCK_SEQPACKET socket, fds by SCM_RIGHTS
 * (common/wire), and an eventfd as the wake-up. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "errmap.h"
#include "mmapio.h"
#include "proc.h"
#include "wire.h"

const bool conn_offer_first = true; /* fds pass only once the daemon let them in */
const char conn_system_path[] = "/run/mmapio/mmapiod.sock";

int conn_default_path(char *buf, size_t size)
{
    const char *xdg = proc_getenv("XDG_RUNTIME_DIR");
    int n;

    if (xdg && *xdg)
        n = snprintf(buf, size, "%s/mmapio/mmapiod.sock", xdg);
    else if (geteuid() == 0)
        n = snprintf(buf, size, "%s", conn_system_path);
    else
        n = snprintf(buf, size, "/tmp/mmapio-%u/mmapiod.sock",
                     (unsigned)geteuid());
    if (n < 0 || (size_t)n >= size)
        return MMAPIO_E_INVALID_ARGUMENT;
    return MMAPIO_OK;
}

/* Fills addr for path: 0, or -1 when it is empty or too long. */
static int socket_address(const char *path, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(addr->sun_path))
        return -1;
    memcpy(addr->sun_path, path, strlen(path));
    return 0;
}

/* connect() errors: a daemon that is not there is DISCONNECTED. */
static int connect_error(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ECONNREFUSED:
    case ECONNRESET:
    case EPROTOTYPE:
    case EAGAIN:
        return MMAPIO_E_DISCONNECTED;
    default:
        return errmap_from_errno(e);
    }
}

/* Why connect() to path failed, in plain words. */
static const char *connect_why(const char *path, int e)
{
    struct stat st;
    switch (e) {
    case ENOENT:
        return "no such socket (is mmapiod running?)";
    case ENOTDIR:
        return "a directory on its way is not a directory";
    case EACCES:
        return "permission denied (no search access to its directory, or no "
               "write access to the socket)";
    case EPROTOTYPE:
        return "a socket of another type, not mmapiod's";
    case EAGAIN:
        return "mmapiod's queue of new connections is full";
    case ECONNREFUSED:
        if (stat(path, &st) < 0 || S_ISSOCK(st.st_mode))
            return "nobody listens (mmapiod stopped?)";
        return S_ISDIR(st.st_mode) ? "a directory, not a socket" : "not a socket";
    default:
        return strerror(e);
    }
}

/* Connects (blocking, so a full backlog is waited out). The socket stays
 * blocking: a round trip is one send and one recv, which wait in the
 * kernel; whatever must not wait (notices, dispatch) says MSG_DONTWAIT.
 * An AF_UNIX connect interrupted by a signal has not connected, so it is
 * simply tried again. */
int conn_open(const char *path, int *out, char *why, size_t size)
{
    struct sockaddr_un addr;
    int r, fd;

    if (socket_address(path, &addr) < 0) {
        snprintf(why, size, "socket path '%.*s%s': empty or longer than %zu bytes",
                 64, path, strlen(path) > 64 ? "..." : "",
                 sizeof(addr.sun_path) - 1);
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, size, "socket: %s", strerror(errno));
        return errmap_from_errno(errno);
    }
    do {
        r = connect(fd, (const struct sockaddr *)&addr, sizeof(addr));
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno == EISCONN)
        r = 0;
    if (r < 0) {
        int e = errno;
        close(fd);
        snprintf(why, size, "%s: %s", path, connect_why(path, e));
        return connect_error(e);
    }
    *out = fd;
    return MMAPIO_OK;
}

int conn_send(int conn, const void *buf, size_t len, int pass_fd, bool wait)
{
    if (!wait)
        return wire_send_nowait(conn, buf, len);
    return wire_send(conn, buf, len, pass_fd);
}

int conn_send_msg(int conn, const ProtobufCMessage *msg, int pass_fd,
                  size_t max_frame)
{
    return wire_send_msg(conn, msg, pass_fd, max_frame);
}

long conn_recv(int conn, void *buf, size_t cap, int *fds, size_t max_fds,
               size_t *n_fds, bool wait)
{
    return (wait ? wire_recv_wait : wire_recv)(conn, buf, cap, fds, max_fds,
                                               n_fds);
}

int conn_wait(int conn, bool out, int wake, int timeout_ms)
{
    struct pollfd p[2] = { { .fd = conn, .events = out ? POLLOUT : POLLIN },
                           { .fd = wake, .events = POLLIN } };
    int n = poll(p, wake >= 0 ? 2 : 1, timeout_ms);
    if (n < 0)
        return -errno;
    if (n > 0 && wake >= 0 && (p[1].revents & POLLIN)) {
        uint64_t drained;
        (void)!read(wake, &drained, sizeof(drained));
    }
    return n > 0;
}

bool conn_hung_up(int conn)
{
    struct pollfd p = { .fd = conn, .events = POLLIN };
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

void conn_shutdown(int conn)
{
    shutdown(conn, SHUT_RDWR);
}

int conn_take_over(int old, int fresh)
{
    if (dup3(fresh, old, O_CLOEXEC) < 0)
        return -errno;
    close(fresh);
    return old;
}

void conn_close(int conn)
{
    if (conn >= 0)
        close(conn);
}

int conn_wake_new(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

void conn_wake_signal(int wake)
{
    uint64_t one = 1;
    (void)!write(wake, &one, sizeof(one));
}
