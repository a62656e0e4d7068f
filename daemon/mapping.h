/*
 * mapping: one file under the data root or one named anonymous (memfd)
 * mapping, shared by every client that opens it, and its holders.
 *
 * The daemon keeps one read-write fd per mapping (when it can); grants hand
 * out that fd for read-write holders and a fresh read-only reopen of it for
 * read-only and copy-on-write holders, so no holder can upgrade itself with
 * mprotect. A mapping is reference counted: the registry, each flush job and
 * each holder keep it alive; the fd closes with the last reference.
 */
#ifndef MMAPIOD_MAPPING_H
#define MMAPIOD_MAPPING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hmap.h"
#include "mmapio.h"

struct conn;
struct ctl;
struct daemon;
struct event;
struct watch;

enum map_kind { MAPPING_FILE, MAPPING_ANON };

struct holder {
    uint64_t handle;            /* the wire's name for this holder */
    mmapio_mode mode;
    bool raw_writer;            /* has a writable pointer out */
    struct mapping *map;
    struct conn *conn;
    struct holder *map_prev, *map_next;   /* the mapping's holders */
    struct holder *conn_prev, *conn_next; /* the connection's holders */
    struct hnode node;                    /* registry: handle -> holder */
};

struct mapping {
    uint64_t id;
    unsigned refs;
    enum map_kind kind;
    char *name;                 /* path relative to the root, or anon name */
    int fd;
    bool fd_writable;
    uint64_t size;
    dev_t dev;                  /* files: identity in the registry */
    ino_t ino;
    uid_t owner;                /* anonymous: creator; files: from fstat */
    gid_t group;
    mode_t perm;
    mmapio_flush_policy policy;
    struct holder *holders;
    uint32_t n_holders;
    bool registered;            /* reachable by name in the registry */
    bool removed;               /* deleted/unlinked while held */
    bool charged;               /* counted against owner's quota */
    uint64_t charged_bytes;     /* bytes counted against it */
    struct hnode key_node;      /* registry: name or dev/ino -> mapping */
    struct hnode id_node;       /* registry: id -> mapping */

    struct daemon *d;
    struct ctl *ctl;            /* the control area holding our slot */
    uint32_t slot;
    /* watches (watch.c) */
    struct watch *watches;
    uint32_t n_watches;
    int wd;                     /* inotify watch of a file, or -1 */
    struct hnode wd_node;       /* watch.c: wd -> mapping */
    /* timed flushing (tflush.c) */
    struct event *timer;
    bool dirty;                 /* a holder said it wrote since the last flush */
    bool flushing;              /* a timed flush is running */
    uint32_t raw_writers;       /* holders with a writable pointer out */
    int64_t flushed_mtime_ns;   /* mtime seen when the last timed flush began */
    /* counters for the admin */
    uint64_t flushes, flush_failures;
    int64_t last_flush;         /* CLOCK_REALTIME seconds, 0: never */
};

/* A new mapping owning `fd` (consumed, also on failure) and a slot of the
 * control area. NULL when out of memory or slots. */
struct mapping *mapping_new(struct daemon *d, enum map_kind kind,
                            const char *name, int fd, bool fd_writable);

/* Starts counting m (and its size) against its owner's quota; call once
 * the owner is known. MMAPIO_OK or MMAPIO_E_QUOTA. */
int mapping_charge(struct mapping *m);

/* A file mapping nobody holds or watches leaves the registry (and stops
 * counting against its owner); a flush still running keeps the object
 * alive until it ends. The caller holds a reference. */
void mapping_retire_if_unused(struct mapping *m);

/* Stops counting m against its owner's quota. */
void mapping_uncharge(struct mapping *m);

/* Sets the policy, in the mapping and in its control slot. */
void mapping_set_policy(struct mapping *m, mmapio_flush_policy p);
struct mapping *mapping_ref(struct mapping *m);
void mapping_unref(struct mapping *m);

/*
 * The fd to send to a holder of `mode`. For read-write it is the mapping's
 * own fd (*owned = false: borrow); otherwise a new read-only fd (*owned =
 * true: the caller closes it). MMAPIO_OK or a negative mmapio_err.
 */
int mapping_grant_fd(struct mapping *m, mmapio_mode mode, int *fd, bool *owned);

/* Sets the size: ftruncate, and for files fallocate of any growth so that
 * writes through a mapping cannot SIGBUS on a full disk. MMAPIO_OK, or
 * MMAPIO_E_RESIZE_FAILED / MMAPIO_E_QUOTA with errno's reason in *why. */
int mapping_set_size(struct mapping *m, uint64_t size, const char **why);

/* Re-reads the size of a file mapping (another process may have truncated
 * it); returns m->size. */
uint64_t mapping_sync_size(struct mapping *m);

void mapping_attach(struct mapping *m, struct holder *h);
void mapping_detach(struct mapping *m, struct holder *h);

#endif
