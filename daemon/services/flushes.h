/*
 * flushes: every flush the daemon makes, and why. A client asks; a
 * mapping's last holder goes, or a writer's connection dies; the daemon
 * stops; or an EveryMillis timer finds the mapping dirty. The disk work
 * itself runs on the flusher's workers, never on the loop; whoever asked
 * hears the result through a callback on the loop.
 *
 * EveryMillis is the daemon's: a holder's first update_region after each
 * timed flush sends one DIRTY notice (the control slot's flush_gen tells
 * the library when to), which arms a one-shot timer of the mapping at the
 * policy's interval. Writes through raw pointers cannot be seen that way,
 * so while a holder has a writable pointer out the mapping is on one poll
 * list, served by a single timer: a poll asks cachestat(2) whether the
 * file has pages not on the disk (dirty or under writeback, however they
 * were written), or, where the kernel lacks it, whether the mtime moved.
 * A poll that finds the file clean doubles the mapping's wait, from the
 * policy's interval (at least 10 ms) up to 1 s (or the interval when
 * longer); a new writer resets it. Polls fall due on multiples of their
 * wait, so mappings at the same pace are looked at in one wake-up: an
 * idle daemon with N raw writers wakes about once a second and makes N
 * cachestat calls (each in proportion to the file's cached pages). A
 * mapping nobody writes and no pointer is out for is never looked at.
 *
 * The bound: a store through a raw pointer is in a flush submitted within
 * max(interval, 1 s) of it (plus the end of a timed flush of the mapping
 * that was running at the time); update_region's DIRTY notice is due at
 * the interval itself. The flush then waits its turn at the workers.
 *
 * EveryBytes and EveryWrites thresholds come as FLUSH notices (the
 * writer handed its flush over and goes on): flushes_request with no
 * callback, in the writer's uid's turn, joined to a flush already queued.
 *
 * Flushes are fair between uids (flusher.h): a requested flush takes the
 * requester's turn, a final or timed one the mapping owner's, and timed
 * flushes have a lane of their own. A mapping has at most one flush
 * queued: a request while one is queued and not started joins it (its
 * fdatasync covers everything written before), so repeating `flush --all`
 * cannot pile up work.
 *
 * A file is flushed when its last holder goes only if it may hold
 * something to write: a read-write holder was attached, or the daemon
 * sized it, since its last flush began (flushes_wrote). Read-only and
 * copy-on-write holders never dirty a file: their going costs no flush.
 *
 * Bounded: final flushes hold their mapping (and its fd) until done, so at
 * most `max_final` of them are queued or running. Past that, a final
 * flush is owed: it waits in order, holding nothing, while the open cache
 * keeps its mapping (or a holder does), and is queued when a final flush
 * ends. An owed mapping that goes before its turn (evicted from a cache
 * full of newer releases, a file nobody may cache) has its flush collapse
 * into one syncfs of its file system, which keeps no mapping: a syncfs
 * queued and not started covers every file of its file system written
 * before it, so each file system has at most one queued (and one per
 * worker running), each with one fd of its own (a dup of the file's;
 * without a spare fd, a sync() that needs none). Nothing written is left
 * unflushed; no number of releases can pin more than max_final mappings
 * beyond those the cache keeps. Requested flushes are bounded by their
 * requesters (max_inflight each), timed ones by the mappings that have a
 * timer (one each).
 *
 * It observes the model: a policy change re-arms or disarms the timer, a
 * size change marks the file written, and a freed mapping loses its timer
 * and counters.
 */
#ifndef MMAPIOD_FLUSHES_H
#define MMAPIOD_FLUSHES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mapping.h"

struct event_base;
struct flusher;
struct registry;

struct fs_flush;
struct flush_state;

struct flushes {
    struct event_base *base;
    struct flusher *flusher;
    struct mapping_hook hook;
    uint64_t n_flushes, n_failures; /* since start */
    uint64_t n_fs_flushes;          /* of those, syncfs for final flushes */
    uint32_t n_final, max_final;    /* final flushes queued or running */
    struct flush_state *owed_head, *owed_tail; /* final flushes waiting */
    struct fs_flush *fs;            /* syncfs jobs queued or running */
    /* Raw writers' polls: one list, one timer (see above). */
    struct flush_state *polled;
    struct event *poll_timer;
    uint64_t poll_due_ms;           /* when it fires; 0: not armed */
    bool no_cachestat;              /* polls fall back to the mtime */
};

/* Starts `threads` workers; at most max_final final flushes hold their
 * mapping at once. 0 or -errno. */
int flushes_init(struct flushes *fl, struct registry *r,
                 struct event_base *base, unsigned threads,
                 uint32_t max_final);
/* Runs every queued flush to its end (callbacks included), then stops the
 * workers. */
void flushes_fini(struct flushes *fl);

/* Called on the loop with the flush's result (0 or -errno). */
typedef void (*flushes_done_fn)(void *ctx, int result);

/* Flushes m in uid's turn (or joins its queued flush), then calls
 * done(ctx, result) (done may be NULL: nobody waits). MMAPIO_OK, or
 * MMAPIO_E_QUOTA when out of memory (done is then never called). */
int flushes_request(struct flushes *fl, struct mapping *m, uid_t uid,
                    flushes_done_fn done, void *ctx);
/* Flushes m with nobody waiting (last holder gone, writer died), if it
 * was written since its last flush began. */
void flushes_background(struct flushes *fl, struct mapping *m);
/* m may have data to flush: a read-write holder attached, or the daemon
 * set its size. */
void flushes_wrote(struct flushes *fl, struct mapping *m);
/* A DIRTY notice for m. */
void flushes_dirty(struct flushes *fl, struct mapping *m);
/* A holder started (+1) or stopped (-1) having a writable pointer out. */
void flushes_raw_writer(struct flushes *fl, struct mapping *m, int delta);

/* m's flushes so far, and when the last ended (CLOCK_REALTIME seconds,
 * 0: never). */
void flushes_counts(struct flushes *fl, struct mapping *m, uint64_t *n,
                    int64_t *last);

#endif
