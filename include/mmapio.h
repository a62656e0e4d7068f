/*
 * libmmapio: the client library of mmapiod.
 *
 * A process connects to the daemon, asks it for a file-backed or a named
 * anonymous mapping, receives the file descriptor and maps it. From then on
 * reads and writes go straight to memory: the data-path calls
 * (mmapio_read_into, mmapio_update_region, the pointer accessors) take no
 * lock and make no system call, except the flush a policy asks for.
 *
 * Every call that can fail returns MMAPIO_OK (0) or a negative mmapio_err.
 * Outputs are written only on success. Destructors accept NULL.
 * A client may be used from several threads at once; one map handle may be
 * read and written from several threads, but resize/refresh/unmap of a
 * handle must not race with other calls on that same handle.
 */
#ifndef MMAPIO_H
#define MMAPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
} mmapio_err;

/* A short English text for every value, including unknown ones. */
const char *mmapio_strerror(int err);

typedef struct mmapio_client mmapio_client;   /* one connection to mmapiod */
typedef struct mmapio_map mmapio_map;         /* one mapping, mapped here */
typedef struct mmapio_watcher mmapio_watcher; /* one subscription */

typedef enum {
    MMAPIO_MODE_READ_ONLY,
    MMAPIO_MODE_READ_WRITE,
    MMAPIO_MODE_COPY_ON_WRITE
} mmapio_mode;

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
    MMAPIO_CHANGE_REMOVED
} mmapio_change_kind;

typedef struct {
    mmapio_change_kind kind;
    bool has_range; /* offset/len known */
    uint64_t offset, len;
} mmapio_change_event;

typedef void (*mmapio_watch_cb)(const mmapio_change_event *ev, void *user);

/* ---- connection ------------------------------------------------------- */

/*
 * socket_path NULL: $MMAPIO_SOCKET if set, else the daemon's default
 * ($XDG_RUNTIME_DIR/mmapio/mmapiod.sock, /run/mmapio/mmapiod.sock for root,
 * /tmp/mmapio-UID/mmapiod.sock otherwise).
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
 * meanwhile, so dispatch after requests too. */
int mmapio_client_fd(const mmapio_client *c);
/*
 * Waits up to timeout_ms (< 0: no limit) until events have arrived, reads
 * all that wait and applies them. Returns how many were handled, counting
 * those read by requests since the last dispatch (then it does not wait),
 * 0 when the time passed with none, or a negative error.
 */
int mmapio_client_dispatch(mmapio_client *c, int timeout_ms);
int mmapio_ping(mmapio_client *c);

/* Writes the default socket path into buf; MMAPIO_E_INVALID_ARGUMENT if
 * it does not fit. */
int mmapio_default_socket_path(char *buf, size_t size);

/* ---- opening ---------------------------------------------------------- */

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
} mmapio_options;

/* Fills *o with the defaults: read-write, open existing, policy NEVER. */
void mmapio_options_init(mmapio_options *o);
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
int mmapio_anon_delete(mmapio_client *c, const char *name);
int mmapio_delete(mmapio_client *c, const char *path);
/* Releases the handle on the daemon and frees it locally, whatever the
 * daemon says; MMAPIO_OK if already disconnected, and for NULL. */
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

/* ---- watching --------------------------------------------------------- */

int mmapio_watch(mmapio_map *m, mmapio_watch_cb cb, void *user,
                 mmapio_watcher **out);
void mmapio_unwatch(mmapio_watcher *w);

#ifdef __cplusplus
}
#endif

#endif /* MMAPIO_H */
