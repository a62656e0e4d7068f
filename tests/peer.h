/*
 * peer: another process that holds mappings over its own connection and
 * does, one step at a time, what the test tells it to.
 *
 * Cross-process tests need a second holder whose every step the test can
 * check from outside: its pending counters after each write, the policy it
 * sees, and what the daemon does about its writes (flushes, watch events)
 * while it is still alive, or after it was killed. The peer is forked by
 * peer_start (hz_fork: it dies with the test), connects to hz.sock by
 * itself, and then serves commands through a shared page and two pipes.
 * A peer that does not answer within PEER_TIMEOUT_MS is a failed call.
 */
#ifndef MMAPIO_TESTS_PEER_H
#define MMAPIO_TESTS_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

#define PEER_TIMEOUT_MS 20000
#define PEER_MAPS 16

enum peer_op {
    PEER_OPEN = 1,      /* path, anonymous, mode -> idx */
    PEER_WRITE,         /* update_region(idx, off, len bytes of `byte`) */
    PEER_PTR_WRITE,     /* memset through mmapio_as_mut_ptr */
    PEER_SET_POLICY,    /* mmapio_set_flush_policy(idx, pol) */
    PEER_FLUSH,         /* mmapio_flush(idx) */
    PEER_RESIZE,        /* mmapio_resize(idx, len) */
    PEER_REFRESH,       /* mmapio_refresh(idx) */
    PEER_UNMAP,         /* mmapio_unmap(idx) */
    PEER_DELETE,        /* mmapio_delete / mmapio_anon_delete(path) */
    PEER_WRITE_MANY,    /* `count` update_region writes of len bytes,
                           offsets cycling through the mapping */
    PEER_QUERY,         /* nothing: just the state of idx in the result */
    PEER_EXIT,          /* unmap everything, disconnect, _exit(0) */
};

struct peer_cmd {
    int op;
    int idx;
    char path[128];
    bool anonymous;
    mmapio_mode mode;
    uint64_t off, len, count;
    int byte;
    mmapio_flush_policy pol;
};

struct peer_res {
    int rc;                 /* what the library call returned */
    int idx;                /* PEER_OPEN: the peer's index of the map */
    uint64_t pending;       /* mmapio_pending_bytes after the call */
    uint64_t len;           /* mmapio_len after the call */
    mmapio_flush_policy pol; /* mmapio_flush_policy_of after the call */
};

struct peer {
    pid_t pid;
    struct hz_chan down, up;
    struct peer_shm *shm;
};

/* Forks the peer and waits until it is connected: 0 or -errno. */
int peer_start(struct peer *p);
/* Runs one command: 0 with *res filled (res may be NULL), or -ETIMEDOUT /
 * -EPIPE when the peer did not answer. The library's result is res->rc. */
int peer_call(struct peer *p, const struct peer_cmd *cmd,
              struct peer_res *res);
/* peer_call in two halves, for a command that may have to wait for the
 * daemon while the test does something else: 0 or -errno. */
int peer_send(struct peer *p, const struct peer_cmd *cmd);
int peer_wait(struct peer *p, int timeout_ms, struct peer_res *res);
/* Tells the peer to leave and waits: its wait status, or -1. */
int peer_stop(struct peer *p);
/* SIGKILL and reap. */
void peer_kill(struct peer *p);

/* Shorthands; they return the library's result (or the transport error,
 * which is never a valid mmapio_err: <= -RAW_ERRNO_BASE). */
int peer_open(struct peer *p, const char *path, bool anonymous,
              mmapio_mode mode, int *idx);
int peer_write(struct peer *p, int idx, uint64_t off, uint64_t len, int byte,
               uint64_t *pending);
int peer_ptr_write(struct peer *p, int idx, uint64_t off, uint64_t len,
                   int byte);
int peer_policy(struct peer *p, int idx, mmapio_flush_policy *pol);

#endif
