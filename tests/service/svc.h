/*
 * svc: helpers of the service tests (mmapioctl, systemd units, socket
 * activation, notify and the fd store), on top of tests/harness.h.
 *
 * - svc_run: runs a program (optionally as another uid) with the given
 *   stdin, collecting its stdout, stderr and wait status, bounded in time.
 * - svc_json: runs python3 on a JSON document with a few lines of checks.
 * - svc_notify: plays systemd's side of NOTIFY_SOCKET: a datagram socket
 *   whose messages (and the fds riding on them) a thread collects in order.
 * - svc_fdstore: systemd's fd store, fed from those messages.
 * - svc_spawn: starts mmapiod with extra environment and with fds handed
 *   over at 3.. (LISTEN_FDS, LISTEN_PID of the child, LISTEN_FDNAMES).
 *
 * Every process started here is a hz_fork child: it dies with the test.
 */
#ifndef MMAPIO_TESTS_SVC_H
#define MMAPIO_TESTS_SVC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

#define SVC_MAX_MSG_FDS 16
#define SVC_STORE_MAX 64

/* ---- running programs ------------------------------------------------- */

/* Whom a child runs as. */
struct svc_as {
    uid_t uid;
    gid_t gid;
    const gid_t *groups; /* supplementary groups */
    size_t n_groups;
};
/* uid and gid 65534 (nobody, nogroup), no supplementary groups. */
extern const struct svc_as svc_nobody;

struct svc_out {
    int status;    /* wait status, or -1 when killed after the timeout */
    char *out;     /* NUL-terminated stdout */
    char *err;     /* NUL-terminated stderr */
};

/*
 * Runs argv (argv[0] found in PATH when it has no '/') with `in` on stdin
 * (NULL: empty), as `as` (NULL: as we are). Kills it after timeout_ms. 0,
 * or -errno when it could not be started (the child's exec failure shows
 * as exit status 127, failing to change credentials as 126).
 */
int svc_run(const char *const *argv, const char *in, const struct svc_as *as,
            int timeout_ms, struct svc_out *o);
void svc_out_free(struct svc_out *o);

/* true when `prog` is found in PATH and executable. */
bool svc_have(const char *prog);

/* The exit code of a wait status, or -1 when it did not exit normally. */
int svc_exit_code(int status);

/*
 * Runs `mmapioctl --socket SOCK ARGS...` (the binary $MMAPIOCTL, or `bin`
 * when not NULL; no --socket when sock is NULL), as `as` (NULL: as we
 * are). args is NULL-terminated.
 */
int svc_ctl(const char *bin, const char *sock, const struct svc_as *as,
            const char *const *args, struct svc_out *o);

/*
 * Checks a JSON document with python3: `checks` is Python run after
 * `import json, sys; d = json.loads(DOC); euid = geteuid()` (DOC must be
 * valid UTF-8); it should
 * `assert` what it means. 0 when python3 exited 0; else python's stderr (or the reason)
 * in *why (malloc'ed; free it).
 */
int svc_json(const char *doc, const char *checks, char **why);

/* Asserts svc_json, naming the document and the failed check. */
#define svc_assert_json(doc, checks)                                        \
    do {                                                                    \
        char *svc_why_ = NULL;                                              \
        const char *svc_doc_ = (doc);                                       \
        int svc_r_ = svc_json(svc_doc_, (checks), &svc_why_);               \
        cr_assert_eq(svc_r_, 0, "JSON check failed:\n%s\ndocument:\n%s",    \
                     svc_why_ ? svc_why_ : "?", svc_doc_);                  \
        free(svc_why_);                                                     \
    } while (0)

/* ---- systemd's side of NOTIFY_SOCKET --------------------------------- */

struct svc_msg {
    char *text;                 /* the datagram, NUL-terminated */
    int fds[SVC_MAX_MSG_FDS];   /* SCM_RIGHTS, owned by the sink */
    size_t n_fds;
    int64_t at_ms;              /* hz_now_ms() when received */
};

struct svc_notify {
    char path[256];
    int fd;
    int stop[2];
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct svc_msg *v;
    size_t n, cap;
};

/* Binds a datagram socket at path and starts collecting. 0 or -errno. */
int svc_notify_open(struct svc_notify *s, const char *path);
/* Stops collecting; closes every fd still held; unlinks the socket. */
void svc_notify_close(struct svc_notify *s);

/*
 * true when the message has a line equal to `key`, or, when `key` ends
 * in '=', a line starting with it.
 */
bool svc_msg_has(const char *text, const char *key);
/* The value of the line starting with key (which ends in '='), copied into
 * buf; NULL when there is none. */
const char *svc_msg_value(const char *text, const char *key, char *buf,
                          size_t size);

/*
 * Waits until a message at index >= from has every key of `keys`
 * (NULL-terminated); returns its index, or -1 after timeout_ms.
 */
long svc_notify_wait(struct svc_notify *s, size_t from,
                     const char *const *keys, int timeout_ms);
/*
 * Waits for a message with every key of `keys` while process pid lives:
 * its index; -1 after timeout_ms; -2 when pid exited first (its wait
 * status in *status; the process is reaped).
 */
long svc_notify_wait_alive(struct svc_notify *s, const char *const *keys,
                           pid_t pid, int timeout_ms, int *status);
/* A copy of message i: text malloc'ed (free it), fds borrowed from the sink
 * (valid until svc_notify_close). false when there is no message i. */
bool svc_notify_get(struct svc_notify *s, size_t i, struct svc_msg *out);
size_t svc_notify_count(struct svc_notify *s);

/* ---- systemd's fd store ----------------------------------------------- */

struct svc_fdstore {
    size_t n;
    char *names[SVC_STORE_MAX];
    int fds[SVC_STORE_MAX];     /* owned by the store */
};

/*
 * Applies messages [from, count) of the sink in order as systemd would:
 * FDSTORE=1 keeps the fds under FDNAME (default "stored"), replacing what
 * had that name; FDSTOREREMOVE=1 closes and forgets FDNAME. Returns the
 * index after the last message applied.
 */
size_t svc_fdstore_apply(struct svc_fdstore *st, struct svc_notify *s,
                         size_t from);
/* The fd stored under name, or -1. */
int svc_fdstore_get(const struct svc_fdstore *st, const char *name);
void svc_fdstore_clear(struct svc_fdstore *st);
/* The names joined by ':', in store order (static storage). */
const char *svc_fdstore_names(const struct svc_fdstore *st);

/* ---- starting mmapiod ------------------------------------------------- */

struct svc_spawn {
    const char *const *args;  /* argv[1..], NULL-terminated */
    const char *const *env;   /* "KEY=VALUE" to set, NULL-terminated; may be
                                 NULL. NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*
                                 are unset unless given here. */
    const int *fds;           /* handed over at 3..; borrowed */
    size_t n_fds;
    const char *fdnames;      /* LISTEN_FDNAMES, or NULL */
};

/* Forks and execs $MMAPIOD (under $MMAPIOD_WRAPPER when set, like
 * hz_spawn); with n_fds > 0 also LISTEN_FDS=n_fds and LISTEN_PID=the
 * child's pid. Returns the pid, or -errno. */
pid_t svc_spawn_daemon(const struct svc_spawn *sp);

/* A listening SOCK_SEQPACKET socket bound at path (mode 0666). fd or
 * -errno. */
int svc_listen_seqpacket(const char *path);

/* Reads up to size bytes of a file from offset 0 with pread: length or
 * -errno. */
long svc_pread_all(int fd, void *buf, size_t size);

/* Reads from fd (appending to buf of size, kept NUL-terminated, *len bytes
 * so far) until buf holds `needle` or timeout_ms passes or EOF. true when
 * found. */
bool svc_read_until(int fd, char *buf, size_t size, size_t *len,
                    const char *needle, int timeout_ms);

/* Milliseconds sleep. */
void svc_sleep_ms(int ms);

#endif
