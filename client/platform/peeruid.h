/*
 * peeruid: the user at the other end of a connected local socket, as the
 * kernel recorded it at connect(). The library's one seam to the
 * operating system so far; one implementation per platform
 * (client/platform/<system>/peeruid.c, chosen by meson).
 */
#ifndef MMAPIO_PEERUID_H
#define MMAPIO_PEERUID_H

#include <sys/types.h>

/* *uid of the peer of the connected socket fd: 0 or -errno. */
int peer_uid(int fd, uid_t *uid);

#endif
