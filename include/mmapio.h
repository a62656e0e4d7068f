/*
 * libmmapio: the client library of mmapiod.
 *
 * A process connects to the daemon, asks it for a file-backed or a named
 * anonymous mapping, receives the file descriptor and maps it. From then on
 * reads and writes go straight to memory: the data-path calls
 * (mmapio_read_into, mmapio_update_region, the pointer accessors) take no
 * lock and make no system call, except the flush a policy asks for.
 *
 * Every call that can fail returns MMAPIO_OK (0) or a negative mmapio_err,
 * and leaves a text for it in mmapio_last_error. Outputs are written only
 * on success. Destructors accept NULL.
 * A client may be used from several threads at once; one map handle may be
 * read and written from several threads, but resize/refresh/unmap of a
 * handle must not race with other calls on that same handle.
 */
#ifndef MMAPIO_H
#define MMAPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMAPIO_VERSION "0.1.0"

typedef enum {
    MMAPIO_OK = 0,
    MMAPIO_E_IO = -1,
    MMAPIO_E_INVALID_MODE = -2,
    MMAPIO_E_OUT_OF_BOUNDS = -3,
    MMAPIO_E_FLUSH_FAILED = -4,
    MMAPIO_E_RESIZE_FAILED = -5,
    MMAPIO_E_ADVICE_FAILED = -6,
    MMAPIO_E_LOCK_FAILED = -7,
    MMAPIO_E_UNLOCK_FAILED = -8,
    MMAPIO_E_MISALIGNED = -9,
    MMAPIO_E_WATCH_FAILED = -10,
    MMAPIO_E_INVALID_ARGUMENT = -11,
    MMAPIO_E_NOT_FOUND = -12,
    MMAPIO_E_EXISTS = -13,
    MMAPIO_E_PERMISSION = -14,
    MMAPIO_E_BUSY = -15,
    MMAPIO_E_QUOTA = -16,
    MMAPIO_E_DISCONNECTED = -17,
    MMAPIO_E_PROTOCOL = -18,
    MMAPIO_E_TIMED_OUT = -19,
} mmapio_err;

/* A short English text for every value, including unknown ones. */
const char *mmapio_strerror(int err);
/*
 * The text of the last failure on the calling thread: the daemon's own
 * message when its refusal carried one (e.g. "no anonymous mapping 'x'"),
 * else mmapio_strerror's text of the error returned. "" when no call of
 * this thread has failed yet; never NULL. It stays until the next failure
 * (a successful call leaves it alone) and lives in thread-local storage:
 * copy it before another call of the library on the same thread.
 */
const char *mmapio_last_error(void);

typedef struct mmapio_client mmapio_client;   /* one connection to mmapiod */
typedef struct mmapio_map mmapio_map;         /* one mapping, mapped here */
typedef struct mmapio_watcher mmapio_watcher; /* one subscription */

typedef enum {
    MMAPIO_MODE_READ_ONLY,
    MMAPIO_MODE_READ_WRITE,
    MMAPIO_MODE_COPY_ON_WRITE
} mmapio_mode;

/*
 * Flush policies, the mapping's, obeyed by every holder. "Lost" below
 * means not on the disk if the machine stops; a writer that dies loses
 * nothing (the page cache keeps its writes, and the daemon flushes a dead
 * writer's mappings).
 *
 * NEVER, MANUAL: nothing is flushed for you but by mmapio_flush (and the
 *   daemon's flush when the last holder goes); everything since may be
 *   lost (the kernel's own writeback takes pages dirty for ~30 s).
 * ALWAYS: mmapio_update_region returns once its range is on the disk.
 * EVERY_BYTES(n), EVERY_WRITES(n): counted by each handle with no system
 *   call. The write that reaches n hands a flush of the whole mapping to
 *   the daemon's flush workers (one datagram that never waits) and
 *   returns at once; the handle's counter restarts at the hand-off. The
 *   daemon queues the flush in the writer's turn, or joins it to one
 *   already queued: on the disk milliseconds later on an idle machine.
 *   May be lost: a handle's writes below the threshold (fewer than n
 *   bytes or writes) and the handed-over flushes not yet done. If the
 *   daemon's socket is full (it is stopped or far behind), the counts
 *   stay (mmapio_pending_bytes shows them) and a write 1 ms or more later
 *   hands them over; if the daemon is gone, the writer flushes itself.
 *   An anonymous mapping has no disk: nothing is sent.
 * EVERY_MILLIS(ms): the daemon's timer. The first update_region after
 *   each timed flush tells it, and the flush comes ms later. Stores
 *   through mmapio_as_mut_ptr are found by the daemon's polls within
 *   max(ms, 1 s) of the store and flushed then. May be lost: the last ms
 *   (stores through pointers: max(ms, 1 s)), and the flush's own time.
 *
 * mmapio_flush and mmapio_flush_range are synchronous whatever the
 * policy: on the disk when they return. mmapio_flush restarts the
 * handle's counters; mmapio_flush_range takes off the byte count only
 * what it flushed, min(pending, len), as mmap-io does.
 */
typedef enum {
    MMAPIO_FLUSH_NEVER,
    MMAPIO_FLUSH_MANUAL,
    MMAPIO_FLUSH_ALWAYS,
    MMAPIO_FLUSH_EVERY_BYTES,
    MMAPIO_FLUSH_EVERY_WRITES,
    MMAPIO_FLUSH_EVERY_MILLIS
} mmapio_flush_kind;

typedef struct {
    mmapio_flush_kind kind;
    uint64_t value; /* bytes, writes or milliseconds; unused otherwise */
} mmapio_flush_policy;

typedef enum {
    MMAPIO_CHANGE_MODIFIED,
    MMAPIO_CHANGE_METADATA,
    MMAPIO_CHANGE_REMOVED,
    /* Every watcher of the connection, once: the daemon went away (no
     * more events until mmapio_reconnect), and then, after a
     * mmapio_reconnect that re-attached its mapping, RECONNECTED
     * ("anything may have changed meanwhile: read again"). */
    MMAPIO_CHANGE_DISCONNECTED,
    MMAPIO_CHANGE_RECONNECTED
} mmapio_change_kind;

typedef struct {
    mmapio_change_kind kind;
    bool has_range; /* offset/len known */
    uint64_t offset, len;
} mmapio_change_event;

typedef void (*mmapio_watch_cb)(const mmapio_change_event *ev, void *user);

/* ---- connection ------------------------------------------------------- */

/*
 * socket_path NULL: $MMAPIO_SOCKET if set; else the per-user path
 * (mmapio_default_socket_path) when a daemon listens there and may be
 * trusted; else the system service's /run/mmapio/mmapiod.sock. A failure
 * names in mmapio_last_error every path tried and why it failed (no such
 * socket, nobody listens, not a socket, permission denied, untrusted).
 *
 * Whatever the path, the socket must be trusted before anything is sent:
 * its directory must belong to the caller, root or the service's user
 * ("mmapio", if that account exists) and be writable by nobody else (a
 * sticky directory of root's, such as /tmp, will do), and the daemon
 * listening on it must run as root, as the caller or as the service's
 * user. Otherwise MMAPIO_E_PERMISSION, with the path and the reason in
 * mmapio_last_error: someone else may have put a socket where yours
 * should be.
 *
 * On Windows the path is a named pipe's name (\\.\pipe\NAME, else
 * MMAPIO_E_INVALID_ARGUMENT), by default \\.\pipe\mmapio, and the pipe's
 * owner must be the caller, the system, administrators or the service's
 * account (README, "Windows").
 */
int mmapio_connect(const char *socket_path, mmapio_client **out);
/*
 * Drops the caller's hold on c; c must not be used afterwards. Maps opened
 * from c stay valid and keep working (their requests included): the
 * connection closes when the last of them is unmapped.
 */
void mmapio_disconnect(mmapio_client *c);
/* The socket, to poll for POLLIN in the caller's own loop; then call
 * mmapio_client_dispatch(c, 0). Events may also be read by requests made
 * meanwhile, so dispatch after requests too. It also turns readable when
 * the daemon goes away. Its number stays the same across
 * mmapio_reconnect (not on Windows). On Windows it is the pipe's HANDLE,
 * which cannot be waited on for data: call mmapio_client_dispatch with a
 * timeout. */
int mmapio_client_fd(const mmapio_client *c);
/*
 * Waits up to timeout_ms (< 0: no limit) until events have arrived, reads
 * all that wait and applies them. Returns how many were handled, counting
 * those read by requests since the last dispatch (then it does not wait),
 * 0 when the time passed with none, or a negative error: once the daemon
 * went away, MMAPIO_E_DISCONNECTED, at every call until mmapio_reconnect
 * (its watchers first hear MMAPIO_CHANGE_DISCONNECTED, once).
 */
int mmapio_client_dispatch(mmapio_client *c, int timeout_ms);
int mmapio_ping(mmapio_client *c);
/*
 * After the daemon went away (every call needing it returns
 * MMAPIO_E_DISCONNECTED; maps keep working in memory): connects again to
 * the same socket, says hello, and re-attaches every handle of c to the
 * very same object in the new daemon, with access checked afresh as an
 * open in the handle's mode: a file by its path, only if the path still
 * leads to the same device and inode; an anonymous mapping by its name,
 * only if it is the same memfd. An anonymous mapping the new daemon lost
 * (it ran without systemd's fd store) comes back from its holders: the
 * handle offers its memfd, which the daemon takes only if it is the very
 * object its state file recorded as live under that name. Watches resume
 * (watchers hear MMAPIO_CHANGE_RECONNECTED), a read-write holder of a
 * file restores the flush policy it saw, and the daemon flushes again.
 *
 * A handle whose object did not survive (deleted, replaced by another
 * file of the same name, or no longer allowed) is left detached: its
 * memory stays mapped and usable, its next control call (resize, refresh,
 * set_flush_policy, watch, ...) returns MMAPIO_E_NOT_FOUND; never another
 * object of the same name. MMAPIO_OK once connected (also when some
 * handles stayed detached, and when c was connected all along: then
 * nothing is done); MMAPIO_E_DISCONNECTED while no daemon answers (try
 * again later), or the error that refused the connection. On Windows
 * the new pipe keeps a handle value of its own; a file mapping comes
 * back to its very file (volume serial and file index) keeping its
 * view, and an anonymous mapping stays detached (no state file).
 */
int mmapio_reconnect(mmapio_client *c);

/* Writes the per-user default socket path into buf (where mmapiod run by
 * this user listens: $XDG_RUNTIME_DIR/mmapio/mmapiod.sock, else
 * /run/mmapio/mmapiod.sock for root, else /tmp/mmapio-UID/mmapiod.sock);
 * MMAPIO_E_INVALID_ARGUMENT if it does not fit. */
int mmapio_default_socket_path(char *buf, size_t size);

/* ---- opening ---------------------------------------------------------- */

/*
 * Whose mapping an open may return (mmapio_options.owner). A name in a
 * shared namespace may have been taken by someone else first: an
 * anonymous name (any user may create `counter` with mode 0666 before
 * you do), or a file in a directory others may write. With
 * MMAPIO_OWNER_SELF (or MMAPIO_OWNER_UID and owner_uid) an existing
 * mapping owned by anyone else is refused with MMAPIO_E_PERMISSION, never
 * opened; one this very call creates is the caller's anyway. "Self" is
 * the uid the daemon knows the caller by: its effective uid when it
 * connected.
 */
typedef enum {
    MMAPIO_OWNER_ANY = 0,      /* whatever the access rules allow (default) */
    MMAPIO_OWNER_SELF,         /* only the caller's own */
    MMAPIO_OWNER_UID           /* only one that owner_uid owns */
} mmapio_owner;

/* When a new mapping's pages are first touched (mmapio_options.touch). */
typedef enum {
    MMAPIO_TOUCH_NEVER = 0,    /* when the program first touches them (default) */
    MMAPIO_TOUCH_EAGER,        /* all of them before the open returns */
    MMAPIO_TOUCH_LAZY          /* in the background after the open returns */
} mmapio_touch_hint;

typedef struct {
    mmapio_mode mode;          /* default READ_WRITE */
    bool anonymous;            /* path is an anonymous mapping's name */
    bool create;               /* create when missing */
    bool truncate;             /* set an existing one to `size` */
    bool exclusive;            /* MMAPIO_E_EXISTS when it exists */
    uint64_t size;             /* size when created or truncated */
    mmapio_flush_policy flush_policy; /* of a created mapping; default NEVER */
    uint32_t perm;             /* permission bits of a created one; 0: default
                                  (0644 files, 0600 anonymous) */
    mmapio_owner owner;        /* whose an existing one must be; default ANY */
    uint32_t owner_uid;        /* with MMAPIO_OWNER_UID */
    bool huge_pages;           /* back it with huge pages where the system
                                  can; never a failure by itself */
    mmapio_touch_hint touch;   /* default MMAPIO_TOUCH_NEVER */
} mmapio_options;

/* Fills *o with the defaults: read-write, open existing, policy NEVER. */
void mmapio_options_init(mmapio_options *o);
/* Names and paths must be valid UTF-8 without control characters (C0,
 * DEL, C1); others are MMAPIO_E_INVALID_ARGUMENT, before anything is sent.
 * The same holds for the names given to mmapio_delete, mmapio_anon_delete
 * and the admin calls. */
int mmapio_open(mmapio_client *c, const char *path, const mmapio_options *o,
                mmapio_map **out);

int mmapio_create_rw(mmapio_client *c, const char *path, uint64_t size,
                     mmapio_map **out);
int mmapio_open_ro(mmapio_client *c, const char *path, mmapio_map **out);
int mmapio_open_rw(mmapio_client *c, const char *path, mmapio_map **out);
int mmapio_open_cow(mmapio_client *c, const char *path, mmapio_map **out);
int mmapio_open_or_create(mmapio_client *c, const char *path,
                          uint64_t default_size, mmapio_map **out);
int mmapio_anon_create(mmapio_client *c, const char *name, uint64_t size,
                       mmapio_map **out);
int mmapio_anon_open(mmapio_client *c, const char *name, mmapio_map **out);
/*
 * The create-or-open of a name of one's own, in one request: opens the
 * caller's anonymous mapping `name` read-write, or creates it (`size`
 * bytes, mode 0600) when there is none. A mapping of that name that
 * belongs to another uid is MMAPIO_E_PERMISSION, never that mapping
 * (mmapio_options.owner = MMAPIO_OWNER_SELF).
 */
int mmapio_anon_open_or_create(mmapio_client *c, const char *name,
                               uint64_t size, mmapio_map **out);
int mmapio_anon_delete(mmapio_client *c, const char *name);
int mmapio_delete(mmapio_client *c, const char *path);
/* Releases the handle on the daemon and frees it locally. It does not
 * wait for the daemon: the mapping goes, then the release is sent one way,
 * never answered (the next call on the same connection finds the handle
 * released; another connection may see it held a moment longer).
 * MMAPIO_OK, also if already disconnected, and for NULL. */
int mmapio_unmap(mmapio_map *m);

/* ---- data ------------------------------------------------------------- */

int mmapio_read_into(mmapio_map *m, uint64_t offset, void *buf, size_t len);
int mmapio_update_region(mmapio_map *m, uint64_t offset, const void *data,
                         size_t len);
int mmapio_flush(mmapio_map *m);
int mmapio_flush_range(mmapio_map *m, uint64_t offset, uint64_t len);
int mmapio_resize(mmapio_map *m, uint64_t new_size);
int mmapio_refresh(mmapio_map *m);
uint64_t mmapio_len(const mmapio_map *m);
bool mmapio_is_empty(const mmapio_map *m);
const char *mmapio_path(const mmapio_map *m);
mmapio_mode mmapio_mode_of(const mmapio_map *m);
mmapio_flush_policy mmapio_flush_policy_of(const mmapio_map *m);
uint64_t mmapio_pending_bytes(const mmapio_map *m);
int mmapio_set_flush_policy(mmapio_map *m, mmapio_flush_policy p);
const void *mmapio_as_ptr(const mmapio_map *m);
void *mmapio_as_mut_ptr(mmapio_map *m);

/*
 * Flush policies as text, as mmapioctl and configuration files write
 * them: "never", "manual", "always", "every-bytes:N", "every-writes:N" or
 * "every-millis:N", N a decimal from 1 to 2^56-1, nothing else around.
 * parse: MMAPIO_E_INVALID_ARGUMENT for any other text (or NULL pointers).
 * format: writes the text of p into buf (the value is left out for the
 * kinds that have none); MMAPIO_E_INVALID_ARGUMENT for a policy that
 * mmapio_set_flush_policy would refuse, a NULL buf, or when the text and
 * its NUL do not fit in size bytes (MMAPIO_POLICY_TEXT_MAX always fits).
 * What format writes, parse reads back to the same policy (with value 0
 * for the kinds without one).
 */
#define MMAPIO_POLICY_TEXT_MAX 32
int mmapio_policy_parse(const char *text, mmapio_flush_policy *out);
int mmapio_policy_format(mmapio_flush_policy p, char *buf, size_t size);

/* ---- watching --------------------------------------------------------- */

/*
 * Writes through mmapio_update_region (and ranges given to
 * mmapio_notify_range) reach every watcher in any process as MODIFIED with
 * their range, possibly merged with neighbouring ranges. A writer records
 * each write in a ring shared with the daemon, with no system call (but one
 * wake-up per batch when the daemon sleeps) and never waiting for the
 * daemon or a watcher; when the ring is full, or a watcher does not keep
 * up with its events, the ranges dropped become one MODIFIED without a
 * range ("anything may have changed"): a change is never left untold.
 */
int mmapio_watch(mmapio_map *m, mmapio_watch_cb cb, void *user,
                 mmapio_watcher **out);
void mmapio_unwatch(mmapio_watcher *w);
/* Tells watchers of a change made through a pointer (mmapio_as_mut_ptr,
 * slices, atomics) to [offset, offset+len), as update_region would; an
 * EVERY_MILLIS mapping's timer also counts it as a write. Call it after
 * the stores. READ_ONLY → MMAPIO_E_INVALID_MODE; a range past the end →
 * MMAPIO_E_OUT_OF_BOUNDS; len 0, or a COPY_ON_WRITE handle (private
 * bytes): MMAPIO_OK, nothing told. */
int mmapio_notify_range(mmapio_map *m, uint64_t offset, uint64_t len);

/* ---- asking the daemon ------------------------------------------------ */

/*
 * What mmapioctl asks, for any program: the daemon's status, the mappings
 * it holds, its clients; flushing a mapping, or setting its policy for
 * every holder, by name. The daemon answers from the caller's credentials:
 * an ordinary user sees and acts on only the mappings they own and their
 * own connections; root and members of the daemon's admin group, on
 * everything; stat and watch by name need read access, as an open
 * read-only would. A refusal is the same everywhere: a mapping (or file)
 * that exists but is not the caller's to act on is MMAPIO_E_PERMISSION;
 * MMAPIO_E_NOT_FOUND means nothing by that name exists (or, for flush and
 * policy, nobody maps that file).
 *
 * Results are plain structs owned by the caller, each freed by one call
 * (NULL-safe) together with the strings it points to. Lists come whole:
 * the library pages through the daemon's replies itself, in order of id;
 * entries made or removed while the pages are read may or may not appear.
 * A path is relative to the daemon's data root; with `anonymous` it is an
 * anonymous mapping's name instead (mmapioctl's anon:NAME).
 */

typedef struct {
    char *name;               /* the key in mmapiod.conf, e.g. "max_frame" */
    uint64_t value;           /* in effect */
    char *what;               /* what it limits, in words ("" if not said) */
} mmapio_limit;

typedef struct {
    char *version;            /* the daemon's version, e.g. "0.1.0" */
    uint64_t uptime_s;        /* seconds since it started */
    uint32_t clients;         /* clients connected (the caller's own, or all) */
    uint64_t mappings;        /* mappings alive ... */
    uint64_t anonymous;       /*   ... of which anonymous */
    uint64_t files;           /*   ... of which files */
    uint64_t bytes_mapped;    /* their sizes, added up */
    bool all;                 /* the counts cover everyone (an admin asked);
                                 false: only the caller's own */
    /* Daemon-wide counters, given to admins only (0 when !all): */
    uint64_t flushes;         /* flushes done since the start */
    uint64_t flush_failures;  /* flushes that failed */
    uint64_t errors;          /* error replies sent */
    uint64_t clients_total;   /* connections accepted since the start */
    /* Where and how it runs (0, NULL or empty from an older daemon): */
    int32_t pid;              /* the daemon's process id */
    int64_t started;          /* unix seconds of its start */
    char *socket;             /* the socket it listens on */
    char *root;               /* its data root */
    char *config_file;        /* the file its settings came from; NULL:
                                 built-in defaults and options only */
    uint64_t rss_bytes;       /* its resident memory */
    uint64_t removed_held;    /* of `mappings`: deleted, still held */
    uint64_t carved;          /* of `anonymous`: small ones sharing memfds
                                 (arenas, see mmapiod(8)) */
    uint64_t arenas;          /* those shared memfds (0 when !all) */
    size_t n_limits;          /* every limit, by its configuration key */
    mmapio_limit *limits;
    uint32_t write_rings;     /* of `clients`, those with a write ring (each
                                 charged to its uid: max_write_rings_per_uid) */
} mmapio_status;

int mmapio_admin_status(mmapio_client *c, mmapio_status **out);
void mmapio_status_free(mmapio_status *s);

/* Huge pages as the daemon arranged them for a mapping. */
typedef enum {
    MMAPIO_HUGE_NONE = 0,      /* not asked for */
    MMAPIO_HUGE_TRANSPARENT,   /* asked: transparent huge pages advised
                                  (mmapio_is_hugepage_backed tells more) */
    MMAPIO_HUGE_HUGETLB        /* backed by the hugetlb pool */
} mmapio_huge_pages;

/* One mapping the daemon holds. */
typedef struct {
    uint64_t id;              /* unique while the daemon runs */
    char *name;               /* path under the root, or the anonymous name */
    bool anonymous;
    uint64_t size;            /* bytes */
    mmapio_flush_policy policy;
    uint32_t holders;         /* handles open on it, in every process */
    uint32_t rw_holders;      /*   ... of which READ_WRITE */
    uint32_t watchers;        /* watches on it */
    uint32_t owner;           /* uid of the owner */
    uint32_t perm;            /* permission bits, e.g. 0644 */
    uint64_t pending_bytes;   /* dirty bytes in the page cache (files; 0 when
                                 the kernel cannot tell, before Linux 6.5) */
    int64_t last_flush;       /* unix seconds of the last flush; 0: never */
    uint64_t flushes;         /* flushes of this mapping done by the daemon */
    bool removed;             /* deleted, still held by someone */
    mmapio_huge_pages huge_pages; /* what the daemon did for huge pages */
    bool pending_known;       /* pending_bytes is the kernel's count (false:
                                 anonymous, or the kernel cannot tell) */
    int64_t created;          /* unix seconds the daemon set it up (a file:
                                 first mapped since the daemon started);
                                 0: unknown */
    int32_t creator_pid;      /* the process whose open set it up; 0: unknown */
} mmapio_map_info;

/* Every mapping the caller may see, by id: *maps (NULL when *n is 0) and
 * *n; free with mmapio_map_info_free(*maps, *n). */
int mmapio_admin_list(mmapio_client *c, mmapio_map_info **maps, size_t *n);
void mmapio_map_info_free(mmapio_map_info *maps, size_t n);
/* One mapping in full, by name, for a caller who may read it (a file
 * nobody maps is shown with no holders); free with
 * mmapio_map_info_free(*out, 1). A deleted mapping has no name to ask by. */
int mmapio_admin_stat(mmapio_client *c, const char *path, bool anonymous,
                      mmapio_map_info **out);

/* One handle a client holds. */
typedef struct {
    uint64_t map_id;          /* mmapio_map_info.id of the mapping */
    char *name;
    mmapio_mode mode;
    bool anonymous;           /* name is an anonymous mapping's */
} mmapio_held_info;

/* One connection to the daemon. */
typedef struct {
    uint64_t id;              /* unique while the daemon runs */
    int32_t pid;              /* the peer's pid, uid and gid (SO_PEERCRED) */
    uint32_t uid;
    uint32_t gid;
    char *name;               /* the program's name, as it said hello */
    uint32_t watches;         /* watches it has open */
    uint32_t held_total;      /* handles it holds ... */
    size_t n_held;            /*   ... of which the daemon lists the first */
    mmapio_held_info *held;   /*   (up to 32, 16 KiB of names; NULL
                                   when n_held is 0) */
} mmapio_client_info;

/* Every client the caller may see (the caller's own connection included),
 * by id; free with mmapio_client_info_free(*clients, *n). */
int mmapio_admin_clients(mmapio_client *c, mmapio_client_info **clients,
                         size_t *n);
void mmapio_client_info_free(mmapio_client_info *clients, size_t n);

/* What a flush by name did. */
typedef struct {
    uint32_t flushed;         /* mappings written back to disk */
    uint32_t failed;          /* mappings whose flush failed (see the
                                 daemon's log for why) */
} mmapio_flush_report;

/*
 * Asks the daemon to flush a mapping it has (a file that someone maps, or
 * an anonymous mapping), or (_all) every file mapping the caller may see,
 * and waits until the data is on disk; a name the daemon has no mapping of
 * is MMAPIO_E_NOT_FOUND. Anonymous mappings have nothing to write back:
 * flushing one by name succeeds with 0 flushed. Failures of single flushes
 * are counted in report->failed, and the call still returns MMAPIO_OK;
 * report may be NULL.
 */
int mmapio_admin_flush(mmapio_client *c, const char *path, bool anonymous,
                       mmapio_flush_report *report);
int mmapio_admin_flush_all(mmapio_client *c, mmapio_flush_report *report);

/* Sets the flush policy of a mapping the daemon has, for every holder in
 * every process (as mmapio_set_flush_policy does through a handle); an
 * invalid policy is MMAPIO_E_INVALID_ARGUMENT, before anything is sent. */
int mmapio_admin_set_flush_policy(mmapio_client *c, const char *path,
                                  bool anonymous, mmapio_flush_policy p);

/* Watches a mapping by name without holding it: nothing changes for its
 * holders (a writer may still shrink it), the watch alone keeps it alive.
 * Needs read access, as an open read-only would. Events come as for
 * mmapio_watch, through mmapio_client_dispatch; end with mmapio_unwatch. */
int mmapio_admin_watch(mmapio_client *c, const char *path, bool anonymous,
                       mmapio_watch_cb cb, void *user, mmapio_watcher **out);

/* ---- the rest of mmap-io ---------------------------------------------- */

/* Utilities. align_up: the smallest multiple of alignment >= value
 * (alignment 0: value). */
size_t mmapio_page_size(void);
uint64_t mmapio_align_up(uint64_t value, uint64_t alignment);

/* Slices: bounds-checked pointers into the mapping. _mut on a READ_ONLY
 * handle is MMAPIO_E_INVALID_MODE. */
int mmapio_as_slice(const mmapio_map *m, uint64_t offset, uint64_t len,
                    const void **out);
int mmapio_as_slice_mut(mmapio_map *m, uint64_t offset, uint64_t len,
                        void **out);

/* Advice, prefetch and touching; offsets need not be page-aligned: whole
 * pages are covered. Failures are MMAPIO_E_ADVICE_FAILED. */
typedef enum {
    MMAPIO_ADVICE_NORMAL,
    MMAPIO_ADVICE_RANDOM,
    MMAPIO_ADVICE_SEQUENTIAL,
    MMAPIO_ADVICE_WILL_NEED,
    MMAPIO_ADVICE_DONT_NEED
} mmapio_advice;
int mmapio_advise(mmapio_map *m, uint64_t offset, uint64_t len,
                  mmapio_advice advice);
int mmapio_prefetch_range(mmapio_map *m, uint64_t offset, uint64_t len);
int mmapio_touch_pages(mmapio_map *m);
int mmapio_touch_pages_range(mmapio_map *m, uint64_t offset, uint64_t len);

/* Locking in RAM (mlock): MMAPIO_E_LOCK_FAILED / MMAPIO_E_UNLOCK_FAILED. */
int mmapio_lock(mmapio_map *m, uint64_t offset, uint64_t len);
int mmapio_unlock(mmapio_map *m, uint64_t offset, uint64_t len);
int mmapio_lock_all(mmapio_map *m);
int mmapio_unlock_all(mmapio_map *m);

#if !defined(__cplusplus) && defined(__STDC_VERSION__) && \
    __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_ATOMICS__)
/* Atomic views (C11 only): atomics inside the mapping, shared by every
 * process that maps it. offset 4- (u32) or 8- (u64) aligned, else
 * MMAPIO_E_MISALIGNED; on a READ_ONLY handle a view may only be loaded. */
int mmapio_atomic_u32(mmapio_map *m, uint64_t offset, _Atomic uint32_t **out);
int mmapio_atomic_u64(mmapio_map *m, uint64_t offset, _Atomic uint64_t **out);
int mmapio_atomic_u32_slice(mmapio_map *m, uint64_t offset, size_t count,
                            _Atomic uint32_t **out);
int mmapio_atomic_u64_slice(mmapio_map *m, uint64_t offset, size_t count,
                            _Atomic uint64_t **out);
#endif

/* Cross-process wait/wake on a u32 in the mapping (a futex on shared
 * memory). wait: MMAPIO_OK when woken or when the value is not `expected`,
 * MMAPIO_E_TIMED_OUT after timeout_ms (< 0: no limit). wake: how many it
 * woke, or a negative error. Any mode may wait and wake. On Windows
 * (no wait on an address across processes there) both go through the
 * daemon, a round trip each, even when nobody waits: a waiting thread
 * does not block the client's other threads, the daemon's deadline
 * decides, and at most 32 waits of one client may be parked
 * (MMAPIO_E_BUSY past them). */
int mmapio_wait_u32(mmapio_map *m, uint64_t offset, uint32_t expected,
                    int timeout_ms);
int mmapio_wake_u32(mmapio_map *m, uint64_t offset, int count);

/* Iteration. The iterator lives on the caller's stack; its fields are not
 * part of the contract. chunk_size 0 is MMAPIO_E_INVALID_ARGUMENT; the
 * last chunk may be shorter. */
typedef struct {
    const mmapio_map *map_;
    uint64_t pos_, step_;
} mmapio_iter;
int mmapio_chunks(const mmapio_map *m, uint64_t chunk_size, mmapio_iter *it);
int mmapio_pages(const mmapio_map *m, mmapio_iter *it);
bool mmapio_iter_next(mmapio_iter *it, uint64_t *offset, const void **chunk,
                      size_t *len);
typedef int (*mmapio_chunk_fn)(uint64_t offset, void *chunk, size_t len,
                               void *user);
/* READ_ONLY: MMAPIO_E_INVALID_MODE; a non-zero return of fn stops the walk
 * and is returned. */
int mmapio_chunks_mut(mmapio_map *m, uint64_t chunk_size, mmapio_chunk_fn fn,
                      void *user);

/* Segments: a window of a mapping, re-checked against the mapping's
 * length at every use; offsets relative to the segment; writes count
 * toward the flush policy like mmapio_update_region. */
typedef struct {
    mmapio_map *parent;
    uint64_t offset, len;
} mmapio_segment;
int mmapio_segment_init(mmapio_segment *s, mmapio_map *m, uint64_t offset,
                        uint64_t len);
int mmapio_segment_slice(const mmapio_segment *s, const void **out);
int mmapio_segment_slice_mut(mmapio_segment *s, void **out);
int mmapio_segment_read(const mmapio_segment *s, uint64_t offset, void *buf,
                        size_t len);
int mmapio_segment_write(mmapio_segment *s, uint64_t offset, const void *data,
                         size_t len);

/* stdio streams over a mapping: fread/fseek/ftell work; fclose frees the
 * stream, not the mapping. NULL with errno on failure. The writer writes
 * in place, never past the end (a write past it is short, errno ENOSPC),
 * READ_WRITE handles only. On Windows NULL with ENOSYS (no such streams
 * in its C runtime). */
FILE *mmapio_reader(mmapio_map *m);
FILE *mmapio_writer(mmapio_map *m);

/* Huge pages: 1 when the kernel backs the mapping with huge pages (as
 * /proc/self/smaps says), 0 when not, negative when it cannot tell. */
int mmapio_is_hugepage_backed(const mmapio_map *m);

/* A caller's own fd, registered by the daemon like an opened file
 * (policies, watches, other holders); the caller keeps its fd. A mode the
 * fd's access does not allow: MMAPIO_E_PERMISSION; an empty file with
 * READ_WRITE or COPY_ON_WRITE: MMAPIO_E_RESIZE_FAILED; not a regular file
 * or memfd: MMAPIO_E_INVALID_ARGUMENT. path is informational.
 * On Windows fd is a file HANDLE of the calling process, in an int:
 * (int)(intptr_t)hFile, or (int)_get_osfhandle(crt_fd) for a C runtime
 * descriptor (not the CRT descriptor itself). It must be a file of a
 * local disk (else MMAPIO_E_INVALID_ARGUMENT, as for a value naming no
 * handle) opened with FILE_READ_DATA and FILE_READ_ATTRIBUTES (GENERIC_READ),
 * and for READ_WRITE also FILE_WRITE_DATA (GENERIC_WRITE); an empty file
 * cannot be mapped READ_ONLY either (MMAPIO_E_INVALID_ARGUMENT). */
int mmapio_from_fd(mmapio_client *c, int fd, mmapio_mode mode,
                   const char *path, mmapio_map **out);
/* Like mmapio_unmap, but hands the caller the file's descriptor
 * (close-on-exec; read-only for READ_ONLY and COPY_ON_WRITE handles);
 * anonymous mappings: MMAPIO_E_INVALID_MODE. On Windows the library holds
 * no file handle: *fd_out is the grant's section HANDLE (map it with
 * MapViewOfFile; FILE_MAP_READ only for READ_ONLY and COPY_ON_WRITE, and it
 * cannot be widened), which mmapio_from_fd does not take. */
int mmapio_unmap_to_fd(mmapio_map *m, int *fd_out);

/* A copy of a file inside the data root: read access to src, create or
 * write access to dst; holders of dst see the new bytes, its watchers get
 * MODIFIED. */
int mmapio_copy(mmapio_client *c, const char *src, const char *dst);

/* Asynchronous flush by the daemon's workers; cb runs from
 * mmapio_client_dispatch with MMAPIO_OK or a negative error. */
typedef void (*mmapio_done_cb)(int result, void *user);
int mmapio_flush_async(mmapio_map *m, mmapio_done_cb cb, void *user);
int mmapio_flush_range_async(mmapio_map *m, uint64_t offset, uint64_t len,
                             mmapio_done_cb cb, void *user);

#ifdef __cplusplus
}
#endif

#endif /* MMAPIO_H */
