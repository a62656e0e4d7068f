/*
 * harness: a real mmapiod for integration tests.
 *
 * Each test gets a fresh temporary directory (mkdtemp under /tmp) holding
 * the daemon's socket (DIR/mmapiod.sock) and data root (DIR/root); the
 * daemon is the binary named by $MMAPIOD (default: the build tree's
 * daemon/mmapiod beside tests/), started as a child of the test
 * process and waited for (bounded) until its socket accepts a connection.
 * The harness also speaks the wire protocol directly (the "raw client"), so
 * hostile-peer tests can send what the library never would.
 *
 * Criterion fixtures: hz_setup/hz_teardown start and stop the daemon of the
 * global `hz`; hz_teardown fails the test (abort) when the daemon died or
 * did not exit 0 on SIGTERM, so every integration test also checks that the
 * daemon survived it. Children forked by tests must leave with _exit().
 */
#ifndef MMAPIO_TESTS_HARNESS_H
#define MMAPIO_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mmapio.h"
#include "mmapio.pb-c.h"

#define HZ_READY_TIMEOUT_MS 10000
#define HZ_STOP_TIMEOUT_MS 10000

struct hz_daemon {
    char dir[128];  /* the temporary directory */
    char sock[256]; /* dir/mmapiod.sock */
    char root[256]; /* dir/root */
    pid_t pid;      /* -1 when not running */
};

/* The daemon of the current test, set up by hz_setup. */
extern struct hz_daemon hz;

/* ---- daemon process --------------------------------------------------- */

/* $env if set, else `rel` beside this test program (build/tests/) when
 * it exists there; NULL otherwise. For the daemon: ("MMAPIOD",
 * "../daemon/mmapiod"). */
const char *hz_build_file(const char *env, const char *rel);

/* Creates a fresh temporary dir and fills in the paths; starts nothing. */
int hz_init(struct hz_daemon *d);

/*
 * Starts mmapiod with argv[1..] = args (NULL-terminated list), its stdout
 * and stderr going to out_fd/err_fd when >= 0 (else inherited). Every other
 * fd of ours is closed in the child. Returns the pid, or -errno.
 */
pid_t hz_spawn(const char *const *args, int out_fd, int err_fd);

/* Starts mmapiod on d->sock and d->root and waits until it accepts. */
int hz_start(struct hz_daemon *d);

/* Waits until `sock` accepts a connection: 0, -ETIMEDOUT, or -ECHILD when
 * pid exited meanwhile (pid <= 0: don't watch a process). */
int hz_wait_ready(const char *sock, pid_t pid, int timeout_ms);

/* Waits for pid to exit: 0 with *status set, or -ETIMEDOUT. */
int hz_wait_exit(pid_t pid, int timeout_ms, int *status);

/* fork() whose child is SIGKILLed when the test process dies, so that a
 * test that times out leaves no process behind. */
pid_t hz_fork(void);

/* Waits for a child; kills it (SIGKILL) if it outlives timeout_ms. Returns
 * its wait status, or -1 after a kill. */
int hz_wait_child(pid_t pid, int timeout_ms);

/* Waits up to 5 s until pid is stopped (SIGSTOP): 0, or -ETIMEDOUT. */
int hz_wait_stopped(pid_t pid);

/* SIGTERM, then wait (SIGKILL after HZ_STOP_TIMEOUT_MS). Returns the wait
 * status, or -1 when the daemon was not running. */
int hz_stop(struct hz_daemon *d);

/* true while d's daemon process exists and has not exited. */
bool hz_alive(struct hz_daemon *d);

/* Kills a running daemon and removes the temporary directory. */
void hz_cleanup(struct hz_daemon *d);

/* rm -rf path (does not follow symlinks). 0 or -errno. */
int hz_rm_rf(const char *path);

/* Number of open fds of pid (entries of /proc/PID/fd), or -errno. */
int hz_fd_count(pid_t pid);

/* Polls hz_fd_count until it is <= want or timeout_ms passes; returns the
 * last count seen. */
int hz_fd_count_settle(pid_t pid, int want, int timeout_ms);

/*
 * The daemon's fd count at rest, for leak checks: first one library client
 * and one raw client come and go (so state the daemon creates lazily on
 * first use is counted), then the count must hold still for 200 ms.
 */
int hz_fd_baseline(struct hz_daemon *d);

/* ---- files under the data root -------------------------------------- */

/* d->root + "/" + rel into buf (static storage if buf is NULL). */
const char *hz_path(const struct hz_daemon *d, const char *rel);

/* Context switches (voluntary and not) of every thread of pid so far: how
 * often it was woken. -errno when pid has no /proc entry. */
long hz_switches(pid_t pid);

/* True when the daemons run under $MMAPIOD_WRAPPER (the suite's valgrind
 * pass): many times slower, so loads scale down. */
bool hz_wrapped(void);

/* Its voluntary switches alone: how often its threads slept and were
 * woken, what a loaded machine's preemptions do not add to. */
long hz_wakeups(pid_t pid);

/* Reads a whole file with read(2) (up to cap bytes): length or -errno. */
long hz_read_file(const char *path, void *buf, size_t cap);

/* Creates (truncates) a file with the given bytes: 0 or -errno. */
int hz_write_file(const char *path, const void *buf, size_t len);

/* Size of a file, or -errno. */
long long hz_file_size(const char *path);

/* ---- fixtures and helpers on `hz` ----------------------------------- */

void hz_setup(void);    /* hz_init + hz_start + setenv MMAPIO_SOCKET */
void hz_teardown(void); /* daemon must be alive and exit 0 on SIGTERM */

/* Connects to hz (asserting success). */
mmapio_client *hz_client(void);

/* Small pipe-based rendezvous between a test and its forked children. */
struct hz_chan {
    int rd, wr;
};
int hz_chan_open(struct hz_chan *ch);
void hz_chan_close(struct hz_chan *ch);
int hz_chan_send(struct hz_chan *ch, char byte);
/* After a fork each side keeps only its end, so that the other side's
 * death is seen at once (EOF) instead of after a timeout. */
void hz_chan_keep_read(struct hz_chan *ch);
void hz_chan_keep_write(struct hz_chan *ch);
/* Returns the byte received, -ETIMEDOUT, or -EPIPE at EOF. */
int hz_chan_recv(struct hz_chan *ch, int timeout_ms);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t hz_now_ms(void);

/* Watch events counted by kind: hz_count_event is a mmapio_watch_cb whose
 * user is a struct hz_events. */
struct hz_events {
    int n[8]; /* by mmapio_change_kind */
};
void hz_count_event(const mmapio_change_event *ev, void *user);
/* Dispatches c until *count reaches want or timeout_ms passed. */
void hz_pump(mmapio_client *c, const int *count, int want, int timeout_ms);

/* ---- raw protocol client ---------------------------------------------- */

/* Connected SOCK_SEQPACKET fd (close-on-exec), or -errno. */
int raw_connect(const char *sock);

/* Sends one datagram (pass_fd >= 0 rides along; borrowed). 0 or -errno. */
int raw_send_bytes(int fd, const void *buf, size_t len, int pass_fd);

/* Packs and sends a Request. 0 or -errno. */
int raw_send(int fd, const Mmapio__Request *req, int pass_fd);

/*
 * Receives the next Reply (events are skipped and freed). Returns 0 and
 * *out (free with mmapio__server_message__free_unpacked(*out, NULL)), and
 * the fd that came with it in *fd_out (or -1; may be NULL: then closed);
 * -ETIMEDOUT; -ECONNRESET when the daemon closed the connection;
 * -EBADMSG when the daemon sent something that does not decode.
 */
int raw_recv(int fd, int timeout_ms, Mmapio__ServerMessage **out,
             int *fd_out);

/* Hello with the given protocol; returns the reply's error (0 = accepted)
 * or a negative errno from the transport (distinguish with raw_is_errno). */
int raw_hello(int fd, uint32_t protocol);

/* Ping with the given id; returns the reply's error, or transport -errno. */
int raw_ping(int fd, uint64_t id);

/*
 * Open request (mode: MMAPIO__MODE__*). Returns the reply's error (0 =
 * granted) or a transport error (raw_is_errno); on a grant the fd that
 * came with the reply is stored in *fd_out (or -1 if none came).
 */
int raw_open(int fd, const char *path, bool anonymous, int mode,
             bool create, uint64_t size, int *fd_out);

/* Hello, keeping the fd that rides on the reply (the control area). */
int raw_hello_fd(int fd, int *fd_out);

/*
 * After something hostile was sent: waits until the daemon answered with
 * an error reply or closed the connection. Returns 1 for "closed", 0 for
 * "error reply" (its code in *err when err != NULL), -ETIMEDOUT when it
 * did neither, -EPROTO when it replied success, -EBADMSG when its answer
 * did not decode.
 */
int raw_expect_refusal(int fd, int timeout_ms, int *err);

/* Assert that a call returns `want`, naming both codes when it does not. */
#define hz_assert_ret(expr, want)                                     \
    do {                                                              \
        int hz_r_ = (expr), hz_w_ = (want);                           \
        cr_assert_eq(hz_r_, hz_w_,                                    \
                     "%s\n  returned %d (%s), expected %d (%s)", #expr, \
                     hz_r_, mmapio_strerror(hz_r_), hz_w_,            \
                     mmapio_strerror(hz_w_));                         \
    } while (0)
#define hz_assert_ok(expr) hz_assert_ret(expr, MMAPIO_OK)

/* Transport errors are offset so they never collide with MMAPIO_E_*. */
#define RAW_ERRNO_BASE 1000
static inline bool raw_is_errno(int r) { return r <= -RAW_ERRNO_BASE; }

#endif
