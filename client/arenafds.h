/*
 * arenafds: the fds of the daemon's arenas (shared memfds that small
 * anonymous mappings are carved from) this connection keeps, one per
 * arena and kind (read-write, or read-only for the other modes), however
 * many of its mappings live there. The daemon sends an arena's fd with the
 * grant that makes this connection hold something there again (see
 * proto OpenReply.arena); the table counts the handles using each and
 * closes the fd with the last, in the order of the requests that tell the
 * daemon, so both sides agree on which fds the client has. Guarded by the
 * client's lock.
 */
#ifndef MMAPIO_ARENAFDS_H
#define MMAPIO_ARENAFDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena_fd {
    uint64_t id;
    bool writable;
    int fd;
    uint32_t maps;          /* handles using it */
};

struct arena_fds {
    struct arena_fd *v;
    size_t n, cap;
};

/* One more handle in arena `id` of that kind; `fd` is the one the grant
 * carried (taken) or -1. *out: the fd to map (borrowed). MMAPIO_OK,
 * MMAPIO_E_PROTOCOL (no fd came and none is kept), MMAPIO_E_QUOTA. */
int arena_fds_take(struct arena_fds *t, uint64_t id, bool writable, int fd,
                   int *out);
/* A handle of arena `id` is gone: the last closes the fd. */
void arena_fds_put(struct arena_fds *t, uint64_t id, bool writable);
/* After a reconnect (map.c): `fd`, the new daemon's fd of the arena that
 * was `id` of the old connection's table `old`, takes over the number of
 * the old fd of that kind (dup3; the old entry forgets it), so that the
 * handles of the arena keep the fd number they map and remap with. The fd
 * to keep: the old number, or fd itself when there is none. */
int arena_fds_carry(struct arena_fds *old, uint64_t id, bool writable, int fd);
/* Every fd closed (the connection is gone). */
void arena_fds_fini(struct arena_fds *t);

#endif
