/*
 * watchsys: the operating system's news of changes to open files (what is
 * done to a mapped file outside mmapio). One implementation per platform
 * (platform/<system>/watchsys.c, chosen by meson).
 *
 * A watch set is an fd that becomes readable when news is waiting, so the
 * event loop can wait on it; watchsys_read then hands each piece of news
 * to a callback. Errors are -errno.
 */
#ifndef MMAPIOD_WATCHSYS_H
#define MMAPIOD_WATCHSYS_H

/* What happened to a watched file (bits; one report may carry several). */
enum {
    WATCHSYS_MODIFIED = 1, /* contents or size */
    WATCHSYS_METADATA = 2, /* mode, owner, links, renamed or deleted */
    WATCHSYS_LOST = 4,     /* news was dropped (token -1): look again */
};

/* A new watch set, non-blocking and close-on-exec: its fd or -errno. */
int watchsys_open(void);
void watchsys_close(int set);

/* Watches the file open as fd: a token >= 0, or -errno. The same file
 * (inode) watched twice gives the same token. */
int watchsys_add(int set, int fd);
/* Stops the watch of `token` (for every fd that had it). */
void watchsys_remove(int set, int token);

typedef void (*watchsys_fn)(void *arg, int token, unsigned what);
/* Reads what news is waiting (a bounded amount, so the loop is not held)
 * and calls fn for each: the token and WATCHSYS_* bits, or token -1 with
 * WATCHSYS_LOST. Returns at once when nothing waits. */
void watchsys_read(int set, watchsys_fn fn, void *arg);

#endif
