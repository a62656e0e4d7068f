/*
 * notice: one-way datagrams from the data path to the daemon.
 *
 * Only when the control area says the daemon must hear of a write does
 * the library send a notice: a WRITE on a watched mapping, the first DIRTY
 * after each timed flush of an EveryMillis mapping, and once per handle
 * that hands out a writable pointer. A notice is a single non-blocking
 * datagram, sent without the connection's lock: it never waits for a
 * reply, never reads the socket, and never waits for room in it.
 *
 * A connection with a write ring (below; every one whose daemon grants
 * it) sends no WRITE notices: its writes go to the ring. Without one,
 * WRITE notices are paced per handle (struct notice_pace), so that a
 * watcher, whoever it is, cannot make a writer pay a system call per
 * update_region: up to NOTICE_BURST notices go out exactly in each
 * NOTICE_WINDOW_MS; the one that reaches the limit says "hold", and the
 * handle's writes of the next NOTICE_HOLD_MS send nothing. The daemon
 * arms a timer for the hold's end (plus a grace) when it reads the hold,
 * so the MODIFIED without a range it then tells watchers comes after
 * every held write: no change goes unannounced, only its range.
 */
#ifndef MMAPIO_CLIENT_NOTICE_H
#define MMAPIO_CLIENT_NOTICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "wring.h"

#define NOTICE_BURST 32
#define NOTICE_WINDOW_MS 5
#define NOTICE_HOLD_MS 5
#define NOTICE_RETRY_MS 1   /* after a notice found the socket full */

/*
 * Every notice leaves through here: one datagram that never waits. 0 when
 * sent, -EAGAIN when the socket is full; any other failure means the
 * daemon is gone: c->gone is set (writes then cost no system call again)
 * and -EPIPE returned.
 */
int notice_post(mmapio_client *c, const Mmapio__Notice *n);

/*
 * Sends a notice about holder `handle` of c. When the socket buffer is
 * full the notice is dropped at once and *lost set, so the next notice of
 * the handle says so (the daemon turns that into an overflow event).
 * Returns false when it was dropped (a DIRTY or RAW_WRITER notice is then
 * tried again by the next write); true when sent, or when the daemon is
 * gone (writes then cost no system call again).
 */
bool notice_send(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                 Mmapio__NoticeKind kind, uint64_t offset, uint64_t len);

/*
 * A dropped notice also sets c->notices_lost: the connection's next notice
 * or request first owns up to it with a notice of handle 0 ("some of my
 * notices were lost"), which the daemon turns into an overflow event for
 * the watchers of every mapping the connection holds read-write. So a
 * burst of single writes to many mappings while the daemon is stopped is
 * reported as soon as the writer sends anything again. (A writer that
 * never calls the library again: the daemon, reading its hang-up after a
 * run of notices long enough to have filled its socket, treats them as
 * lost alike.) The notice is client_take_lost_notice's (client.h).
 */

/* The pacing of one handle's WRITE notices. */
struct notice_pace {
    pthread_mutex_t lock;     /* a handle may be written from many threads */
    uint64_t window_ns;       /* start of the current window */
    uint32_t sent;            /* notices sent in it */
    uint64_t hold_until_ns;   /* writes unannounced until then */
    uint64_t retry_ns;        /* the socket was full: not before then */
};

void notice_pace_init(struct notice_pace *p);
void notice_pace_fini(struct notice_pace *p);

/* Tells the daemon of a write of [offset, offset+len) on a watched
 * mapping, paced by p (see above). Never waits. true when a notice with
 * its range left now. */
bool notice_write(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                  struct notice_pace *p, uint64_t offset, uint64_t len);

/*
 * The write ring (common/wring.h) replaces WRITE notices once the
 * connection has one: notice_ring_attach_locked asks the daemon for it
 * (lock held; once per connection, at its first grant; a daemon that
 * refuses, e.g. past max_write_rings_per_uid, leaves the paced notices
 * above in use for the connection's life), and
 * notice_range records a write in the ring, with no system call but the
 * wake-up of a daemon that sleeps. notice_range returns true when the
 * daemon will hear of the write (its range, or that ranges were dropped).
 */
void notice_ring_attach_locked(mmapio_client *c);
/* Records the release of holder `handle` in the ring (lock held), when
 * the daemon reads releases there: no system call unless the daemon
 * sleeps without having promised a look (wring.h). false: not recorded
 * (no ring, an older daemon, the ring full); release it another way. */
bool notice_release_locked(mmapio_client *c, uint64_t handle);
bool notice_range(mmapio_client *c, uint64_t handle, atomic_bool *lost,
                  struct notice_pace *p, uint64_t offset, uint64_t len);

/* A cell of c's ring r grew past where the daemon asked to be knocked:
 * the writer that takes `knock` back to 0 sends the RING notice. */
void notice_knock(mmapio_client *c, struct wring_hdr *r);

/* This thread's own cell in the ring it last wrote (wring.h's wring_own),
 * and which ring: c->ring at c->ring_epoch. */
struct notice_own {
    const struct wring_hdr *ring;
    uint64_t epoch;
    struct wring_own w;
};
extern _Thread_local __attribute__((tls_model("initial-exec")))
struct notice_own notice_own;

/* notice_range's common way, inline (the data path's every write when a
 * thread appends): a write of holder `handle` continuing the cell this
 * thread claimed last in c's fenced ring extends it there
 * (wring_extend_known). false: anything else, for notice_range. */
static inline bool notice_range_fast(mmapio_client *c, uint64_t handle,
                                     uint64_t offset, uint64_t len)
{
    struct notice_own *o = &notice_own;
    bool big;
    if (!o->w.cell || o->w.end != offset || o->w.handle != handle ||
        o->ring != atomic_load_explicit(&c->ring, memory_order_relaxed) ||
        o->epoch != c->ring_epoch || len > UINT64_MAX - offset ||
        !wring_extend_known((struct wring_hdr *)o->ring, o->w.cell, o->w.pos,
                            o->w.len, len, &big))
        return false;
    o->w.end += len;
    o->w.len += len;
    if (big)
        notice_knock(c, (struct wring_hdr *)o->ring);
    return true;
}

#endif
