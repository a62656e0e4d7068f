/*
 * fromfd: mmapio_from_fd on the daemon's side. A client first sends
 * FdOffer (no fd): the connection then accepts one fd (session.fd_wanted,
 * the transport's want_fd), and the FromFd that follows carries it. The
 * fd is validated like any input and becomes the registered mapping of
 * its file when the file is under the data root, else a private mapping
 * of this client alone (fromfd.c says how).
 */
#ifndef MMAPIOD_FROMFD_H
#define MMAPIOD_FROMFD_H

#include <stdint.h>

#include "mmapio.pb-c.h"

struct session;

/* Arms the session for one fd and answers with a bare success. */
void fromfd_offer(struct session *s, uint64_t id);

/* Answers a FromFd whose datagram carried fd (-1: none; else consumed:
 * kept by a mapping or handed to the closer thread). Disarms the session. */
void fromfd_open(struct session *s, uint64_t id, const Mmapio__FromFd *q,
                 int fd);

#endif
