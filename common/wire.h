/*
 * wire: one datagram in, one datagram out, on an AF_UNIX SOCK_SEQPACKET
 * socket, with file descriptors passed by SCM_RIGHTS.
 *
 * Shared by the daemon and the client library; this is the only place that
 * calls sendmsg/recvmsg. Every received fd is close-on-exec from birth.
 * Functions return 0 (or a length) on success and a negative errno.
 */
#ifndef MMAPIO_WIRE_H
#define MMAPIO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "quickmsg.h" /* wire_pack_ping and its kin */

#define WIRE_PROTOCOL 2 /* 2: OpenReply.arena and offset */
#define WIRE_DEFAULT_MAX_FRAME (64u * 1024u)
#define WIRE_MAX_FDS 4 /* fds accepted in one datagram before it is rejected */
#define WIRE_RECV_FDS_MAX 253 /* SCM_MAX_FD: the most one datagram carries */

/*
 * Sends one datagram with `pass_fd` attached when it is >= 0 (borrowed: the
 * caller still owns it). Never raises SIGPIPE. Returns 0, -EAGAIN when the
 * socket is non-blocking and full, or another -errno.
 */
int wire_send(int sock, const void *buf, size_t len, int pass_fd);

/* Like wire_send without an fd, but never waits: -EAGAIN when full. */
int wire_send_nowait(int sock, const void *buf, size_t len);

/*
 * Packs `msg` and sends it as one datagram (see wire_send).
 * -EMSGSIZE when the packed message exceeds `max_frame`.
 */
int wire_send_msg(int sock, const ProtobufCMessage *msg, int pass_fd,
                  size_t max_frame);

/*
 * Receives one datagram into buf (cap bytes). Returns its length (> 0), or:
 *   -EAGAIN      nothing waiting on a non-blocking socket
 *   -ECONNRESET  the peer is gone (or sent an empty datagram: the same to us)
 *   -EMSGSIZE    the datagram was larger than cap (its fds are closed)
 *   -EBADMSG     the control data was truncated (every fd received closed)
 * Received fds (at most max_fds; more is -EBADMSG) land in fds[], their
 * count in *n_fds; the caller owns them.
 */
long wire_recv(int sock, void *buf, size_t cap, int *fds, size_t max_fds,
               size_t *n_fds);

/* Like wire_recv, but on a blocking socket waits for a datagram (a
 * signal's EINTR is retried). On a non-blocking one it is wire_recv. */
long wire_recv_wait(int sock, void *buf, size_t cap, int *fds, size_t max_fds,
                    size_t *n_fds);

/*
 * Like wire_recv, but closes nothing: every fd that arrived (at most
 * WIRE_RECV_FDS_MAX, the size fds[] must have) is in fds[] and *n_fds,
 * also when it returns an error. For a caller that must not close a
 * peer's fds on its own thread (a close can block: SO_LINGER, FUSE).
 */
long wire_recv_all(int sock, void *buf, size_t cap, int *fds, size_t *n_fds);

/* wire_recv_all for a socket no fd can have reached (SO_PASSRIGHTS off
 * since before its peer could send): one recv(), no control buffer. */
long wire_recv_nofds(int sock, void *buf, size_t cap);

/* Closes fds[0..n) and sets each to -1. */
void wire_close_fds(int *fds, size_t n);

#endif
