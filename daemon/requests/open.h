/*
 * open: turning an Open request into a mapping the peer may hold.
 *
 * Files: the path is checked lexically, then opened beneath the data root
 * (openat2; for peers other than root a walk that also requires their
 * search permission on every directory passed, as the kernel would); the
 * file must be a regular file, and the peer's credentials
 * must allow the mode asked for by the file's owner, group and mode bits.
 * A file the peer creates is created with O_EXCL in a directory the peer may
 * write, handed to the peer's uid/gid when the daemon runs as root, and its
 * blocks are reserved. Anonymous mappings are memfds, owned by their creator
 * with mode 0600 unless another is asked for.
 */
#ifndef MMAPIOD_OPEN_H
#define MMAPIOD_OPEN_H

#include "mmapio.pb-c.h"

struct handlers;
struct mapping;
struct session;

/*
 * Finds or creates the mapping `req` names, checked against c's
 * credentials and its owner's budget. On success *out is a new reference.
 * Otherwise a negative mmapio_err, with a readable reason in *why.
 */
int open_mapping(struct handlers *h, struct session *c, const Mmapio__Open *req,
                 struct mapping **out, const char **why);
/* The same, and *grant: an fd to grant the caller (a fresh open file
 * description of the file in the mode asked, taken by the caller), or -1
 * when the mapping's own must be reopened (mapping_grant_fd). */
int open_mapping_fd(struct handlers *h, struct session *c,
                    const Mmapio__Open *req, struct mapping **out, int *grant,
                    const char **why);

#endif
