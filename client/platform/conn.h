/*
 * conn: the library's connection to mmapiod — reaching it by name, one
 * frame out, one frame in with the handles it carries, waiting for it to
 * be readable — and the wake-up a waiting dispatch also watches. One
 * implementation per platform (client/platform/<system>/conn.c): on
 * Linux an AF_UNIX SOCK_SEQPACKET socket with SCM_RIGHTS (common/wire),
 * on Windows a message-mode named pipe whose frames carry handle values
 * already duplicated into this process (README, "Windows").
 *
 * A connection, a received handle and a wake-up are ints: an fd, or on
 * Windows a HANDLE (its values fit in 32 bits). Calls returning int or
 * long give 0 (or a length) or -errno unless they say otherwise.
 */
#ifndef MMAPIO_CONN_H
#define MMAPIO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

/* Handles accepted with one frame; more is -EBADMSG. */
#define CONN_MAX_HANDLES 4

/* Room for a default name: sun_path's size on Linux (a longer default is
 * refused as too long for a socket); Windows' default is short. */
#define CONN_NAME_MAX 108

/* The per-user default name (mmapio_default_socket_path): an MMAPIO_*
 * code. */
int conn_default_path(char *buf, size_t size);
/* The system service's name, tried after the per-user one. */
extern const char conn_system_path[];

/* Connects to path (blocking mode, so that a round trip waits in the
 * kernel): MMAPIO_OK with *out set, or an MMAPIO_* error with the path and
 * why in why[]. */
int conn_open(const char *path, int *out, char *why, size_t size);

/* Whether a connection takes a handle only after FdOffer was answered:
 * Linux's socket refuses fds until the daemon lets them in (FdOffer);
 * a Windows frame carries handle values at any time. */
extern const bool conn_offer_first;

/* Sends one frame carrying pass_fd when >= 0 (borrowed). Never raises
 * SIGPIPE. !wait: -EAGAIN rather than wait for room. */
int conn_send(int conn, const void *buf, size_t len, int pass_fd, bool wait);

/* Packs msg and sends it as one frame (waiting for room): -EMSGSIZE when
 * it is longer than max_frame (nothing sent), else as conn_send. */
int conn_send_msg(int conn, const ProtobufCMessage *msg, int pass_fd,
                  size_t max_frame);

/* Receives one frame into buf (cap bytes): its length (> 0), or -EAGAIN
 * (nothing waiting and !wait), -ECONNRESET (the peer is gone), -EMSGSIZE
 * (longer than cap), -EBADMSG (a broken frame, or more than max_fds
 * handles). Handles land in fds[] (*n_fds), the caller's to close;
 * none is left open on an error. */
long conn_recv(int conn, void *buf, size_t cap, int *fds, size_t max_fds,
               size_t *n_fds, bool wait);

/* Waits up to timeout_ms (< 0: no limit) until conn can be read (or
 * written: `out`), or wake (>= 0) was signalled (which clears it):
 * 1 ready, 0 timed out, -errno (-EINTR: a signal came first). */
int conn_wait(int conn, bool out, int wake, int timeout_ms);

/* Whether the peer hung up (never waits). */
bool conn_hung_up(int conn);

/* Ends both directions but keeps conn's number valid (it then reads as
 * hung up). */
void conn_shutdown(int conn);

/* After a reconnect: the number under which `fresh` now serves in old's
 * place (old closed): old's own where the system lets a handle take a
 * number (Linux: fresh is moved there), else fresh's (Windows). -errno
 * with nothing changed. */
int conn_take_over(int old, int fresh);

/* Closes a connection for good. */
void conn_close(int conn);

/* A wake-up for conn_wait: >= 0, or -errno. Signalled by another thread. */
int conn_wake_new(void);
void conn_wake_signal(int wake);

#endif
