/*
 * statefile: what the daemon must know to take an anonymous mapping back
 * from its holders after a restart without systemd's fd store.
 *
 * For every registered anonymous mapping a line records its name, the
 * identity of its memfd (device, inode), the offset in it and the stride
 * of its arena's slots (a carved mapping, model/arena.h; 0 and 0 for a
 * memfd of its own), owner, group, mode, policy, size and id; a deleted
 * one is kept as a tombstone (the last STATEFILE_TOMBSTONES), keyed by
 * memfd and offset and written before the deletion is answered, so it is
 * never taken back. A memfd of its own is also made 0400 at once (a live
 * one is 0600); a shared arena cannot be, and its tombstones are what
 * keeps a deleted slot dead. The file lives in RESOLVE_STATE_DIR
 * under the data root (0700, the daemon's; no client path reaches it,
 * resolve.h).
 *
 * It is a journal: each registration, policy, resize or deletion appends
 * one line (with a check, so a torn or foreign one is skipped) by one
 * write() from the hook, before the request is answered, so a kill loses
 * nothing. No fsync: the file must outlive the daemon, not the machine
 * (anonymous memfds die with the machine), and the page cache outlives
 * the daemon. Once it holds more than twice the live records (and
 * STATE_SLACK besides), the loop copies the live records, unformatted
 * (O(live), ~0.2 us each: so O(1) per change amortized, and a pause of
 * ~2 ms at 10,000 mappings), and the thread formats and writes them as a
 * new generation; what is appended meanwhile goes to the old journal and,
 * once the thread is done, after the copy, which is then renamed over it
 * (statefile.c: compact_maybe, compact_finish). An append that fails (a
 * full disk) empties the journal, header and all, so that a restart takes
 * nothing back rather than a mapping whose tombstone was lost; the next
 * compaction, tried at the next append that works, writes it whole again.
 *
 * At start the previous journal is replayed (per memfd and offset its
 * last record; per name its last live one) and rewritten: its live
 * records wait for their holders (statefile_adopt, statefile_adopt_arena)
 * until their name or memfd and offset is registered
 * anew (the fd store's restore, or a new mapping), which settles them.
 */
#ifndef MMAPIOD_STATEFILE_H
#define MMAPIOD_STATEFILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mapping.h"

#define STATEFILE_NAME "anon.state"
#define STATEFILE_TOMBSTONES 256

struct event_base;
struct quota;
struct registry;
struct state_copy;
struct state_rec;

struct statefile {
    struct registry *reg;
    struct quota *quota;
    int dir_fd;                 /* RESOLVE_STATE_DIR; -1: not recording */
    int fd;                     /* the journal, appended to; -1: none */
    size_t records;             /* lines in it */
    size_t retry_at;            /* no compaction before this many */
    bool failing;               /* the last append failed (logged once) */
    bool incomplete;            /* an append failed: emptied until the
                                 * next compaction writes it whole */
    struct state_rec *waiting;  /* live records of the last instance */
    size_t n_waiting;
    struct state_rec *tombs;    /* deleted, newest first */
    size_t n_tombs;
    size_t n_recorded;          /* registered mappings with a record */
    /* compaction: the thread writes a generation from a copy; what is
     * appended meanwhile goes to both journals (since) */
    pthread_t thread;
    bool thread_up, stop, compacting, job_done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct state_copy *job;     /* the copy handed over */
    size_t job_records;
    int job_fd;                 /* the written generation, or -errno */
    int old_fd;                 /* a replaced journal, for the thread to close */
    char *since;
    size_t since_len, since_cap, since_records;
    uint64_t compactions;       /* for tests, logs */
    struct mapping_hook hook;
};

/* Makes RESOLVE_STATE_DIR under root_fd's directory, reads the previous
 * file and starts recording. A state directory that cannot be made is
 * logged and nothing is recorded (the daemon serves on). 0 or -errno. */
int statefile_init(struct statefile *s, struct registry *r, struct quota *q,
                   struct event_base *base, int root_fd);
/* Stops recording: mappings that leave the registry after this are not
 * deletions. */
void statefile_fini(struct statefile *s);

/*
 * A holder offers fd as the anonymous mapping `name` the daemon lost,
 * claiming memfd identity dev/ino at `offset`. Taken back, registered
 * under the recorded owner, group, mode, policy and size, only if a live
 * record of that name has that identity, nothing registered uses it, and
 * fstat proves fd is that very memfd: same device and inode, owned by the
 * daemon's own uid (a memfd belongs to its creator), mode 0600 (not
 * deleted), sealed as the daemon seals, at least the recorded size. fd
 * stays the caller's. MMAPIO_OK (*out: a reference), or
 * MMAPIO_E_NOT_FOUND with *why. Not for a carved mapping (statefile_adopt_arena).
 */
int statefile_adopt(struct statefile *s, const char *name, int fd,
                    uint64_t dev, uint64_t ino, uint64_t offset,
                    struct mapping **out, const char **why);

/*
 * A holder offers fd as the arena (memfd identity dev/ino) that carved
 * mappings of the last instance lived in. Taken back only if live records
 * name that identity, nothing registered uses it, and fstat proves fd is
 * that very memfd (as statefile_adopt, at least as large as the slots
 * recorded): then it comes back as a retired arena (no new mapping is
 * carved from it; it closes with its last mapping) and every live record
 * of it, of its class and stride, is registered at its recorded slot
 * (*n_back of them); a deleted one has no live record. Access is the
 * caller's to check per mapping. fd stays the caller's. MMAPIO_OK,
 * MMAPIO_E_NOT_FOUND or MMAPIO_E_QUOTA with *why.
 */
int statefile_adopt_arena(struct statefile *s, int fd, uint64_t dev,
                          uint64_t ino, struct arenas *arenas,
                          size_t *n_back, const char **why);

#endif
