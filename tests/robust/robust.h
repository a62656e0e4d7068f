/*
 * robust: what the robustness tests (issue 5) add to tests/harness.h.
 *
 * A daemon started with extra options (limits) whose stderr goes to a log
 * file in its temporary directory, so a test can check that a refusal was
 * logged with its reason; the daemon's resident memory; a second uid for
 * permission tests; and raw protocol calls the harness does not have
 * (receiving events as well as replies, sending without waiting).
 *
 * Nothing here asserts: every function returns a status, so the soak
 * program (soak.c, no criterion) can use it too.
 */
#ifndef MMAPIO_TESTS_ROBUST_H
#define MMAPIO_TESTS_ROBUST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* The unprivileged uid and gid the permission tests drop to. */
#define RB_NOBODY 65534

/* Path of d's daemon log (d->dir/mmapiod.log) in static storage. */
const char *rb_log_path(const struct hz_daemon *d);

/*
 * Starts mmapiod on d->sock and d->root with `extra` options after them
 * (NULL-terminated, may be NULL), its stderr appended to rb_log_path(d),
 * and waits until it accepts. d must be hz_init'ed and not running. The
 * socket file may exist already (a dead daemon's): the new daemon must
 * replace it. 0 or -errno.
 */
int rb_start(struct hz_daemon *d, const char *const *extra);

/* true once the log contains `needle` (polled up to timeout_ms). */
bool rb_log_has(const struct hz_daemon *d, const char *needle,
                int timeout_ms);

/* Last lines of the log (up to cap bytes), for failure messages. */
const char *rb_log_tail(const struct hz_daemon *d);

/* VmRSS of pid in KiB (/proc/PID/status), or -errno. */
long rb_rss_kib(pid_t pid);

/* true when the daemon runs under $MMAPIOD_WRAPPER (valgrind): memory
 * figures and speed are then the wrapper's, not the daemon's. */
bool rb_wrapped(void);

/* false when the daemon's VmRSS says little of its own use: under a
 * wrapper, or built with AddressSanitizer (as this program is, in the same
 * build), whose quarantine keeps freed memory resident. */
bool rb_rss_meaningful(void);

/* Lets another uid reach d's socket and data root: the temporary
 * directory (0700 from mkdtemp) becomes 0755. 0 or -errno. */
int rb_share(const struct hz_daemon *d);

/* An attack test's start: SIGPIPE ignored, d's directory made (hz_init)
 * and shared (rb_share). 0, -EPERM when not root (no other uid to run),
 * or -errno. */
int rb_prepare_shared(struct hz_daemon *d);

/* In a forked child: become uid/gid RB_NOBODY with no supplementary
 * groups (or `uid`/`gid`). 0 or -errno. */
int rb_become(uid_t uid, gid_t gid);

/* ---- work done as another uid ---------------------------------------- */

/* What a child reports to its test: NULL (all well), or why not, made
 * with rb_fail (one static buffer per process: a child reports once). */
__attribute__((format(printf, 1, 2)))
const char *rb_fail(const char *fmt, ...);

/* In a child: `expr` must return `want` / `cond` must hold, else the
 * enclosing function returns the reason. */
#define EXPECT(expr, want)                                                 \
    do {                                                                   \
        int e_r_ = (expr), e_w_ = (want);                                  \
        if (e_r_ != e_w_)                                                  \
            return rb_fail("line %d: %s returned %d (%s), expected %d "    \
                           "(%s)", __LINE__, #expr, e_r_,                  \
                           mmapio_strerror(e_r_), e_w_,                    \
                           mmapio_strerror(e_w_));                         \
    } while (0)
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond))                                                       \
            return rb_fail("line %d: %s is false", __LINE__, #cond);       \
    } while (0)

typedef const char *(*rb_as_fn)(mmapio_client *c, void *arg);

/*
 * Runs fn(c, arg) in a forked child that became uid:gid and connected to
 * `sock` (c is fn's; the child exits when fn returns). 0 when it reported
 * success; otherwise -1 with its reason (or its exit status) in why.
 */
int rb_run_as(const char *sock, uid_t uid, gid_t gid, rb_as_fn fn, void *arg,
              char *why, size_t cap);

/* ---- raw protocol -------------------------------------------------- */

/* A connected raw client that said hello (or -errno / -RAW_ERRNO_BASE..). */
int rb_raw_hello(const char *sock);

/* Receives the next message, reply or event (raw_recv returns replies
 * only). 0 with *out set, or -errno as raw_recv. */
int rb_recv_any(int fd, int timeout_ms, Mmapio__ServerMessage **out);

/* Sends a ping with `id`, without waiting. 0 or -errno (-EAGAIN when the
 * socket is non-blocking and full). */
int rb_send_ping(int fd, uint64_t id);

#endif
