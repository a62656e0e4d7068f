/*
 * session: what the request handlers know of one client, and the context
 * they all share (struct handlers).
 *
 * A session is the client as the requests see it: its kernel-given
 * credentials, its name, its holders and watches, and the answers it is
 * owed later (flushes running on the workers). It knows nothing of sockets:
 * replies and events leave through the session_port that the transport
 * gives it, and the transport embeds the session in its connection. When
 * the session ends, everything it held is released and answers still owed
 * are forgotten (their work finishes, nobody is told).
 *
 * The handlers observe the model: a mapping's new size or policy is told
 * to every session holding it, but the one that caused it.
 */
#ifndef MMAPIOD_SESSION_H
#define MMAPIOD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "access.h"
#include "mapping.h"
#include "mmapio.pb-c.h"
#include "watch.h"

struct config;
struct copier;
struct opencache;
struct flushes;
struct pending;
struct quota;
struct registry;
struct session;

/* How a session's messages leave; implemented by the transport. */
struct session_port {
    /* A reply; `fd` is borrowed (-1: none). */
    void (*reply)(struct session *s, Mmapio__Reply *r, int fd);
    /* An event (may be dropped when the client does not keep up). */
    void (*event)(struct session *s, Mmapio__Event *ev);
    /* s->busy changed: answers owed later count as requests in flight. */
    void (*busy_changed)(struct session *s);
    /* s->fd_wanted was set: the next datagram may carry one fd
     * (mmapio_from_fd; the transport disarms after it, fromfd.h). */
    void (*want_fd)(struct session *s);
    /* Whether the client hung up with nothing left unread (its process
     * exited), looking now rather than when the loop comes to it; if so
     * the transport ends the session at once (its holders released) and
     * says true. NULL: never. */
    bool (*gone)(struct session *s);
};

/* What every handler works with. */
struct handlers {
    const struct config *cfg;
    int root_fd;               /* O_PATH directory fd of the data root */
    struct registry *reg;
    struct quota *quota;
    struct flushes *flushes;
    struct watches *watches;
    struct copier *copier;     /* mmapio_copy's threads (copy.h) */
    struct opencache *cache;   /* released files kept ready (opencache.h) */
    struct statefile *state;   /* anonymous mappings recorded (statefile.h) */
    /* ringdrain_settle_uid, wired by the daemon (ringdrain calls session:
     * no call back by name); NULL: no rings to settle. */
    bool (*settle_uid)(struct handlers *h, uid_t uid);
    struct session *sessions;  /* every live session */
    uint32_t n_sessions;
    uint64_t next_session_id;
    uint64_t walk;             /* numbers a walk of one session's holders
                                * (holder_group.mark) */
    time_t started;
    const char *config_file;   /* the daemon's config file; NULL: none */
    struct mapping_hook hook;
    uint64_t errors;           /* error replies sent */
    uint64_t sessions_total;   /* sessions since start */
};

struct session {
    struct handlers *h;
    const struct session_port *port;
    uint64_t id;
    struct peer_cred cred;
    char name[64];             /* as it said hello, odd bytes as \xNN */
    bool hello_done;
    bool close_when_sent;      /* a fatal error was replied: hang up */
    uint32_t busy;             /* requests to be answered later */
    uint32_t notice_run;       /* notices read since the socket was empty */
    bool fd_wanted;            /* FdOffer answered: one fd may come (fromfd.h) */
    struct holder_list holders;
    struct hmap arena_uses;    /* counted (hmap_count_*): arena and fd kind
                                * -> its holders here; the arena's fd goes
                                * with the first */
    struct watch_owner watches;
    struct pending *pending;   /* answers owed */
    struct wring *ring;        /* its write ring, or NULL (wring.h) */
    struct session *prev, *next;
};

/* 0 or -errno. */
int handlers_init(struct handlers *h, const struct config *cfg, int root_fd,
                  struct registry *reg, struct quota *q, struct flushes *fl,
                  struct watches *ws);

/* The watch service's way out (watch_send_fn) for watches of sessions. */
void session_watch_event(struct watch_owner *o, Mmapio__Event *ev);

void session_start(struct session *s, struct handlers *h,
                   const struct session_port *port,
                   const struct peer_cred *cred);
/* Releases every holder and watch; forgets answers owed. */
void session_end(struct session *s);

/* Replies: a result (fd borrowed), an error with a readable reason (odd
 * bytes in it escaped as \xNN, common/names.h), or a bare success. */
void session_reply(struct session *s, Mmapio__Reply *r, int fd);
void session_reply_err(struct session *s, uint64_t id, int err,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void session_reply_ok(struct session *s, uint64_t id);

/* A new holder of m for s, charged to s's uid (quota_hold). MMAPIO_OK or
 * MMAPIO_E_QUOTA. */
int session_add_holder(struct session *s, struct mapping *m, mmapio_mode mode,
                       struct holder **out);
/* Lets go of a holder. Pending data of a file is flushed when its last
 * holder goes, and when a writer's session died (it may have written just
 * before). A file nobody holds leaves the registry. */
void session_release_holder(struct holder *h, bool died);
/* Before refusing because m has other holders: the clients of up to
 * REAP_MAX of them (not `asking`), each asked once however often it holds
 * m, that hung up are ended now, so that a holder whose process just
 * exited is not counted. */
void session_reap_gone(struct mapping *m, const struct session *asking);
/* Makes s a holder of m in `mode` and replies to request `id` with the
 * grant and its fd, or with the reason it failed (`what` names the
 * mapping in it). Takes the caller's reference to m. A mapping carved from
 * an arena (arena.h) names the arena and its offset; the arena's fd, of
 * the kind `mode` needs (read-write, or read-only for the other modes),
 * goes only with the grant that makes s hold something of that arena in
 * that kind again: the client keeps one fd per arena and kind while it
 * holds a mapping there, and lets it go with its last (in the order of
 * its requests, so both sides always agree). */
void session_grant(struct session *s, uint64_t id, struct mapping *m,
                   mmapio_mode mode, const char *what);
/* The same with the fd to grant (taken; -1: a reopen of the mapping's,
 * mapping_grant_fd): a fresh open file description of m's file in `mode`. */
void session_grant_fd(struct session *s, uint64_t id, struct mapping *m,
                      mmapio_mode mode, int fd, const char *what);
/* Says in the log, at most every 10 s, that the daemon ran out of fds. */
void session_out_of_fds(const char *what);
/* s's holder of `handle`, or NULL. */
struct holder *session_find_holder(struct session *s, uint64_t handle);

/* Called when every flush of a session_flush ended: how many succeeded,
 * how many failed, and the first failure (-errno, 0 if none). */
typedef void (*session_flushed_fn)(struct session *s, uint64_t id,
                                   uint32_t ok, uint32_t failed, int error);
/* Flushes maps[0..n) (the array is the caller's) and calls done when all
 * ended, unless s ended meanwhile. MMAPIO_OK or MMAPIO_E_QUOTA (nothing
 * started). */
int session_flush(struct session *s, uint64_t id, struct mapping **maps,
                  size_t n, session_flushed_fn done);

#endif
