/*
 * proc: what the library asks of its own process — closing and keeping
 * the handles (fds) it was given, telling which object one refers to,
 * the environment, the program's name and the user it runs as. One
 * implementation per platform (client/platform/<system>/proc.c).
 */
#ifndef MMAPIO_PROC_H
#define MMAPIO_PROC_H

#include <stdbool.h>
#include <stdint.h>

/* Which object a handle refers to (a file's device and inode). */
struct proc_object {
    uint64_t dev, ino;
};

/* Closes a handle received from the daemon (or the connection). */
void proc_close(int h);

/* Makes `at` refer to what `fresh` refers to (fresh stays open): 0 or
 * -errno (-ENOTSUP where handle values cannot be chosen). */
int proc_replace(int fresh, int at);

/* *obj for the object h refers to: 0 or -errno. */
int proc_identify(int h, struct proc_object *obj);

/* Makes reads and writes through h wait (clears O_NONBLOCK). */
void proc_make_blocking(int h);

/* An environment variable, ignored when the process runs with privileges
 * it was not started with (secure_getenv): NULL when unset. */
const char *proc_getenv(const char *name);

/* The program's short name, for the daemon's logs. */
const char *proc_name(void);

/* The user the daemon sees us as (the effective uid), or UINT32_MAX when
 * only the daemon can tell (Windows: its hello reply says). */
uint32_t proc_uid(void);

/* Registers this process, once, for the daemon's process-wide barrier
 * (Linux: membarrier's global expedited command), which lets the write
 * ring's extensions be plain stores (wring.h): true if registered. */
bool proc_fence_register(void);

#endif
