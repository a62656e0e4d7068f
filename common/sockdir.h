/*
 * sockdir: whether the directory a socket lives in can be trusted.
 *
 * Whoever may write a socket's directory may put a socket of their own in
 * its place, or create the directory first (/tmp/mmapio-UID) and listen
 * there: a client would then hand its data to them, and the daemon would
 * find its path taken. So both sides judge the directory before use: the
 * daemon before it binds its socket (transport/server.c), the library
 * when it connects (client/client.c). One rule, here:
 *
 *   - the directory belongs to a uid the caller trusts (the daemon: itself
 *     or root; a client: itself, root or the service's user), and
 *   - nobody else can change its entries: no group or other write bit,
 *     except on a directory of root's with the sticky bit (such as /tmp),
 *     where only an entry's owner may remove or rename it;
 *   - if the last component is a symbolic link, the link must belong to a
 *     trusted uid too (whoever owns it may point it elsewhere), and its
 *     target is judged as above.
 *
 * The peer's credentials are the client's second check (client.c): a
 * trusted directory says who could have put the socket there, SO_PEERCRED
 * says who listens on it.
 */
#ifndef MMAPIO_COMMON_SOCKDIR_H
#define MMAPIO_COMMON_SOCKDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Decides whether uid may own a trusted directory. */
typedef bool (*sockdir_trust_fn)(uid_t uid);

/*
 * Judges the directory of socket_path (the part before its last '/'; "."
 * when there is none). 0 when trusted; -EPERM when not, with a one-line
 * reason in why (directory, owner and what is wrong); another -errno when
 * the directory cannot be looked at (-ENOENT: it does not exist), with
 * the reason in why too.
 */
int sockdir_check(const char *socket_path, sockdir_trust_fn trusted,
                  char *why, size_t why_size);

/* The directory part of socket_path into buf, as sockdir_check sees it.
 * 0, or -ENAMETOOLONG when it does not fit. */
int sockdir_of(const char *socket_path, char *buf, size_t size);

#endif
