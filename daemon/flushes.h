/*
 * flushes: every flush the daemon makes, and why. A client asks (Flush); a
 * mapping's last holder goes, or a writer's connection dies; the daemon
 * stops; or an EveryMillis timer finds the mapping dirty. The disk work
 * itself runs on the flusher's workers, never on the loop.
 *
 * EveryMillis is the daemon's: a holder's first update_region after each
 * timed flush sends one DIRTY notice (the control slot's flush_gen tells
 * the library when to), which arms a one-shot timer. Writes through raw
 * pointers cannot be seen that way, so while a holder has a writable
 * pointer out, the timer polls the file's mtime, which the kernel bumps
 * when a clean page is first written through a mapping. A mapping nobody
 * writes arms no timer: an idle daemon does no periodic work.
 */
#ifndef MMAPIOD_FLUSHES_H
#define MMAPIOD_FLUSHES_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct daemon;
struct mapping;

/* Flushes m and answers request `id` on c. MMAPIO_OK or MMAPIO_E_QUOTA. */
int flushes_request(struct mapping *m, struct conn *c, uint64_t id);
/* Flushes maps[0..n) (the array is the caller's) and, when all are done,
 * calls reply(c, id, flushed, failed) unless c closed meanwhile.
 * MMAPIO_OK or MMAPIO_E_QUOTA (nothing was started). */
typedef void (*flushes_batch_fn)(struct conn *c, uint64_t id, uint32_t ok,
                                 uint32_t failed);
int flushes_batch(struct conn *c, uint64_t id, struct mapping **maps,
                  size_t n, flushes_batch_fn reply);

/* Flushes m with nobody waiting (last holder gone, writer died). */
void flushes_background(struct mapping *m);
/* A DIRTY notice for m. */
void flushes_dirty(struct mapping *m);
/* A holder started (+1) or stopped (-1) having a writable pointer out. */
void flushes_raw_writer(struct mapping *m, int delta);
/* m's policy changed: arm or disarm its timer. */
void flushes_policy_changed(struct mapping *m);
/* m is being freed. */
void flushes_forget(struct mapping *m);

#endif
