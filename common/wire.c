/*
 * wire: datagram and fd passing on SOCK_SEQPACKET (see wire.h).
 *
 * The recvmsg side is written for a hostile peer: the control buffer is
 * aligned and sized for every fd a datagram can carry (so the kernel never
 * drops one), and any truncation or fd beyond the caller's limit closes
 * every fd that did arrive (wire_recv) or hands them all back to be closed
 * where it is safe to (wire_recv_all).
 */

#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One send() (no fd, so no message header), restarted after signals. */
static int send_plain(int sock, const void *buf, size_t len, int flags)
{
    for (;;) {
        if (send(sock, buf, len, MSG_NOSIGNAL | flags) >= 0)
            return 0;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

void wire_close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

int wire_send(int sock, const void *buf, size_t len, int pass_fd)
{
    if (pass_fd < 0)
        return send_plain(sock, buf, len, 0);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    for (;;) {
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int wire_send_nowait(int sock, const void *buf, size_t len)
{
    return send_plain(sock, buf, len, MSG_DONTWAIT);
}

int wire_send_msg(int sock, const ProtobufCMessage *msg, int pass_fd,
                  size_t max_frame)
{
    uint8_t stack[4096];
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > max_frame)
        return -EMSGSIZE;
    uint8_t *buf = len <= sizeof(stack) ? stack : malloc(len);
    if (!buf)
        return -ENOMEM;
    protobuf_c_message_pack(msg, buf);
    int r = wire_send(sock, buf, len, pass_fd);
    if (buf != stack)
        free(buf);
    return r;
}

/* Collects every SCM_RIGHTS fd (at most WIRE_RECV_FDS_MAX fit the control
 * buffer, which is all one datagram can carry). */
static void take_fds(struct msghdr *mh, int *fds, size_t *n_fds)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *p = CMSG_DATA(c);
        for (size_t i = 0; i < n && *n_fds < WIRE_RECV_FDS_MAX; i++)
            memcpy(&fds[(*n_fds)++], p + i * sizeof(int), sizeof(int));
    }
}

static long recv_all(int sock, void *buf, size_t cap, int *fds, size_t *n_fds,
                     int flags)
{
    /* Room for SCM_MAX_FD fds: the kernel never truncates, so it never
     * drops (and closes, on this thread) an fd a peer sent. */
    union {
        char buf[CMSG_SPACE(sizeof(int) * WIRE_RECV_FDS_MAX)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n;

    *n_fds = 0;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;

    take_fds(&mh, fds, n_fds);
    if (mh.msg_flags & MSG_CTRUNC)
        return -EBADMSG;
    if (mh.msg_flags & MSG_TRUNC)
        return -EMSGSIZE;
    if (n == 0)
        return -ECONNRESET;
    return n;
}

long wire_recv_all(int sock, void *buf, size_t cap, int *fds, size_t *n_fds)
{
    return recv_all(sock, buf, cap, fds, n_fds, MSG_DONTWAIT);
}

long wire_recv_nofds(int sock, void *buf, size_t cap)
{
    ssize_t n;
    do /* MSG_TRUNC: the datagram's whole length, however much fit */
        n = recv(sock, buf, cap, MSG_DONTWAIT | MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if ((size_t)n > cap)
        return -EMSGSIZE;
    return n == 0 ? -ECONNRESET : n;
}

static long recv_some(int sock, void *buf, size_t cap, int *fds,
                      size_t max_fds, size_t *n_fds, int flags)
{
    int all[WIRE_RECV_FDS_MAX];
    size_t n_all;
    long n = recv_all(sock, buf, cap, all, &n_all, flags);

    *n_fds = 0;
    if (n >= 0 && n_all > max_fds)
        n = -EBADMSG;
    if (n < 0) {
        wire_close_fds(all, n_all);
        return n;
    }
    memcpy(fds, all, n_all * sizeof(int));
    *n_fds = n_all;
    return n;
}

long wire_recv(int sock, void *buf, size_t cap, int *fds, size_t max_fds,
               size_t *n_fds)
{
    return recv_some(sock, buf, cap, fds, max_fds, n_fds, MSG_DONTWAIT);
}

long wire_recv_wait(int sock, void *buf, size_t cap, int *fds, size_t max_fds,
                    size_t *n_fds)
{
    return recv_some(sock, buf, cap, fds, max_fds, n_fds, 0);
}

