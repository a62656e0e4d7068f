/*
 * winstate (Windows): the Windows daemon's state — the mappings' table
 * (an entry per anonymous name or file, with its holders, watchers,
 * policy and control-area slot), per-uid budgets, sessions — and the
 * replies to a session. Shared by winops (the requests), winflush
 * (flushes and policies) and winwatch (watches); runs on the loop.
 */
#ifndef MMAPIOD_WINSTATE_H
#define MMAPIOD_WINSTATE_H

#include <stdbool.h>
#include <stdint.h>
#include <windows.h>

#include "beneath.h"
#include "ctlarea.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "peercred.h"
#include "winport.h"

#define CTL_SLOTS 65536u

/* What the client may do with a grant's section handle. SECTION_QUERY
 * lets it learn the size; a read-only or copy-on-write grant has no
 * FILE_MAP_WRITE and the section's DACL refuses it to any duplicate. */
#define GRANT_RW (SECTION_QUERY | FILE_MAP_READ | FILE_MAP_WRITE)
#define GRANT_RO (SECTION_QUERY | FILE_MAP_READ)

struct wmap {
    struct wmap *next;
    uint64_t id;
    bool anonymous;
    bool named;           /* still found by its name (not deleted) */
    char *name;           /* the anonymous name, or the path it was opened by */
    HANDLE section;       /* anonymous: the section, read-write */
    HANDLE file;          /* files: the first opener's handle */
    HANDLE wfile;         /* files: a writer's handle, for the daemon's own flushes */
    PTP_TIMER timer;      /* EVERY_MILLIS: the next timed flush */
    PTP_TIMER hold;       /* a writer's hold ends (winwatch_hold) */
    struct wtimer *tctx;  /* both timers' context (map_timer) */
    bool armed, flushing, dirty_again;
    bool dirty;           /* a writer's notice since the last policy flush */
    uint64_t vol, index;  /* files: which file */
    uint64_t size;
    uint32_t owner, group; /* anonymous: its creator's; files: charged to the first opener */
    uint32_t perm;        /* anonymous: permission bits, as on Linux */
    unsigned holders;
    unsigned watchers;    /* watches keep the entry too */
    uint32_t slot;
    mmapio_flush_policy policy;
    int64_t created;      /* unix seconds the entry was made */
    int32_t creator_pid;  /* the process whose open made it; 0: unknown */
    bool tracked;         /* files: watched by watchsys as `wtoken` */
    int wtoken;
    bool removed;         /* REMOVED was told */
    bool private_map;     /* files: a caller's handle outside the root (winfromfd):
                           * found by no path or identity, listed nowhere */
    uint64_t flushes;     /* flushes of it finished (winflush_count) */
    int64_t last_flush;   /* unix seconds the last one finished; 0: never */
    unsigned waits;       /* waits parked on its words (winwait) */
    const uint8_t *wview; /* the daemon's read-only view, for waits (winwait) */
    uint64_t wview_len;
};

/* A timer's context: the mapping by id, which the loop looks up again. */
struct wtimer {
    struct winops *w;
    uint64_t map_id;
};

struct wholder {
    struct wholder *next;
    uint64_t handle;
    struct wmap *m;
    mmapio_mode mode;
};

/* A client's watch of a mapping: its events (MODIFIED from writers'
 * notices, POLICY, REMOVED) go to that client. */
struct wwatch {
    struct wwatch *next;
    uint64_t id;
    struct wsession *s;
    struct wmap *m;
};

struct uidq {
    struct uidq *next;
    uint32_t uid;
    uint64_t bytes;
    uint32_t maps;
    uint32_t clients; /* sessions past hello */
};

struct winops {
    struct winops_config cfg;
    struct winops_port port;
    struct wmap *maps;
    uint32_t n_maps;
    uint64_t next_id;
    struct uidq *uids;
    struct wwatch *watches; /* every client's */
    uint64_t next_watch;
    HANDLE ctl;                 /* the control area, read-write */
    struct ctl_slot *slots;
    uint32_t *free_slots, n_free;
    struct wsession *sessions;  /* every connection's (winadmin lists them) */
    uint32_t n_sessions;
    uint64_t sessions_total;    /* connections since start; a session's id */
    uint64_t errors;            /* error replies sent */
    uint64_t flushes, flush_failures; /* finished since start (winflush_count) */
    int64_t started;            /* unix seconds */
    struct wlanes *lanes;       /* flushes waiting and running (winflush) */
    uint32_t fromfd_running;    /* from_fd checks on worker threads (winfromfd) */
    struct wopens *opens;       /* file opens waiting and running (winopen) */
    int watchsys;               /* news of files changed outside (winwatch) */
    HANDLE watchsys_wait;
    struct wwaiter *waiters;    /* parked waits, oldest first (winwait) */
    uint32_t n_waiters;
    uint64_t next_waiter;
    /* Called by map_maybe_free for an entry with waits or a wait's view
     * (winwait_map_gone), before it is freed. */
    void (*map_gone)(struct winops *w, struct wmap *m);
};

struct wsession {
    struct winops *w;
    void *conn;
    HANDLE pipe;
    bool hello_done;
    struct peer_cred cred;
    struct wholder *holders;
    uint32_t n_holders;
    uint64_t next_handle;
    uint32_t flushes; /* on worker threads (from_fd's checks too) */
    bool fromfd_busy; /* its from_fd's checks are under way (one at a time) */
    uint32_t opens;   /* file opens waiting or on worker threads (winopen) */
    HANDLE token;     /* its impersonation token, for workers (winopen) */
    uint32_t n_watches;
    uint32_t waits;   /* its waits parked (winwait) */
    bool gone;        /* the connection ended; freed after its flushes and opens */
    struct wsession *next; /* in winops.sessions while connected */
    uint64_t id;
    char name[64];    /* what it calls itself at hello, escaped */
};

/* Replies: a packed ServerMessage with at most one handle (duplicated
 * into the client with `access`); a failure to queue closes the
 * connection. */
void send_reply(struct wsession *s, Mmapio__Reply *r, HANDLE h, DWORD access);
void reply_ok(struct wsession *s, uint64_t id);
void reply_err(struct wsession *s, uint64_t id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A new holder of m and the OpenReply with `section` duplicated into the
 * client; `section` stays the caller's. */
void grant(struct wsession *s, uint64_t id, struct wmap *m, mmapio_mode mode,
           HANDLE section);
/* -errno from the seams and the walk, as a public error code, and in words. */
int public_err(int e);
const char *errno_text(int e);

/* The table. */
struct uidq *uidq_of(struct winops *w, uint32_t uid, bool make);
struct wmap *find_anon(struct winops *w, const char *name);
struct wmap *find_file(struct winops *w, uint64_t vol, uint64_t index);
struct wmap *find_id(struct winops *w, uint64_t id);
struct wmap *map_new(struct winops *w, uint32_t uid, bool anonymous, uint64_t size,
                     const char *name, int *err, const char **why);
void map_maybe_free(struct winops *w, struct wmap *m);
/* A thread-pool timer of m calling fn(ctx) with m's wtimer (kept with m,
 * freed with it), or NULL. */
PTP_TIMER map_timer(struct winops *w, struct wmap *m, PTP_TIMER_CALLBACK fn);
/* In a timer's callback, on a pool thread: fn(a copy of t) on the loop,
 * which looks the mapping up again by id (it may be gone by then). */
void wtimer_post(const struct wtimer *t, void (*fn)(void *));
/* A due time `ms` from now, for SetThreadpoolTimer. */
FILETIME due_in_ms(uint64_t ms);
/* s's holder `handle`, or NULL after replying NOT_FOUND to request id. */
struct wholder *find_holder(struct wsession *s, uint64_t id, uint64_t handle);
/* The uid of a file's owner (sidmap.h, as a client's), or SIDMAP_NONE
 * (UINT32_MAX) when it cannot be read or numbered. */
uint32_t file_owner(HANDLE f);
/* An anonymous mapping's permission bits allow this caller `mode`, as on Linux. */
bool anon_allows(const struct wsession *s, const struct wmap *m, mmapio_mode mode);
/* beneath_open as the client (its token decides every access). */
HANDLE open_as_caller(struct wsession *s, const char *path, ACCESS_MASK access,
                      enum beneath_how how, bool *created, int *err);

/* A copy of the client's impersonation token (taken at the first call,
 * on the loop), for a worker; the caller closes it. NULL when it cannot
 * be had. */
HANDLE caller_token(struct wsession *s);
/* On a worker: beneath_open as `token`'s client (set on this thread for
 * the walk only). */
HANDLE beneath_as(HANDLE token, HANDLE root, const char *path, ACCESS_MASK access,
                  enum beneath_how how, bool *created, int *err);

#endif
