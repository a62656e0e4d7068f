/*
 * flushes: every flush the daemon makes, and why. A client asks; a
 * mapping's last holder goes, or a writer's connection dies; the daemon
 * stops; or an EveryMillis timer finds the mapping dirty. The disk work
 * itself runs on the flusher's workers, never on the loop; whoever asked
 * hears the result through a callback on the loop.
 *
 * EveryMillis is the daemon's: a holder's first update_region after each
 * timed flush sends one DIRTY notice (the control slot's flush_gen tells
 * the library when to), which arms a one-shot timer. Writes through raw
 * pointers cannot be seen that way, so while a holder has a writable
 * pointer out, the timer polls the file's mtime, which the kernel bumps
 * when a clean page is first written through a mapping. A mapping nobody
 * writes arms no timer: an idle daemon does no periodic work.
 *
 * It observes the model: a policy change re-arms or disarms the timer, and
 * a freed mapping loses its timer and counters.
 */
#ifndef MMAPIOD_FLUSHES_H
#define MMAPIOD_FLUSHES_H

#include <stdint.h>

#include "mapping.h"

struct event_base;
struct flusher;
struct registry;

struct flushes {
    struct event_base *base;
    struct flusher *flusher;
    struct mapping_hook hook;
    uint64_t n_flushes, n_failures; /* since start */
};

/* Starts `threads` workers. 0 or -errno. */
int flushes_init(struct flushes *fl, struct registry *r,
                 struct event_base *base, unsigned threads);
/* Runs every queued flush to its end (callbacks included), then stops the
 * workers. */
void flushes_fini(struct flushes *fl);

/* Called on the loop with the flush's result (0 or -errno). */
typedef void (*flushes_done_fn)(void *ctx, int result);

/* Flushes m, then calls done(ctx, result). MMAPIO_OK, or MMAPIO_E_QUOTA
 * when out of memory (done is then never called). */
int flushes_request(struct flushes *fl, struct mapping *m,
                    flushes_done_fn done, void *ctx);
/* Flushes m with nobody waiting (last holder gone, writer died). */
void flushes_background(struct flushes *fl, struct mapping *m);
/* A DIRTY notice for m. */
void flushes_dirty(struct flushes *fl, struct mapping *m);
/* A holder started (+1) or stopped (-1) having a writable pointer out. */
void flushes_raw_writer(struct flushes *fl, struct mapping *m, int delta);

/* m's flushes so far, and when the last ended (CLOCK_REALTIME seconds,
 * 0: never). */
void flushes_counts(struct flushes *fl, struct mapping *m, uint64_t *n,
                    int64_t *last);

#endif
