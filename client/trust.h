/*
 * trust: whether the daemon at the other end of a socket is one the
 * caller may hand its data to.
 *
 * A local user who can put a socket where a client will look (create
 * /tmp/mmapio-UID before its owner does, or write the directory of a
 * socket path) could serve the client mappings of their own and read
 * everything it writes. A connected socket is trusted only when
 *
 *   - its directory belongs to the caller, root or the service's user and
 *     nobody else may change its entries (common/sockdir.h), and
 *   - the process that listens on it (SO_PEERCRED of the connection) runs
 *     as root, as the caller (its effective uid), or as the service's
 *     user: the account named MMAPIO_SERVICE_USER, looked up when a peer
 *     or directory is neither root's nor the caller's, if it exists.
 *
 * Both hold for every path: the default ones, $MMAPIO_SOCKET and a path
 * the caller passes. The check runs after connect and before the hello,
 * so nothing is said to an untrusted peer. A leaf: no other file of the
 * library is called.
 */
#ifndef MMAPIO_CLIENT_TRUST_H
#define MMAPIO_CLIENT_TRUST_H

#include <stddef.h>

#define MMAPIO_SERVICE_USER "mmapio"

/* MMAPIO_OK, or MMAPIO_E_PERMISSION with a one-line reason (path and
 * what is wrong) in why. fd is connected to path. */
int trust_socket(int fd, const char *path, char *why, size_t why_size);

#endif
