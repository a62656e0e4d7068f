/*
 * winwatch (Windows): watches of mappings and their events — MODIFIED
 * from writers' notices, POLICY, REMOVED (README, "Windows"). A watch
 * keeps its mapping's entry in the table, and the control area's slot
 * counts it so that writers announce their writes. A watched file's
 * folder is watched too (watchsys): another program's write, delete or
 * rename is told as MODIFIED, REMOVED or METADATA, as on Linux.
 */
#ifndef MMAPIOD_WINWATCH_H
#define MMAPIOD_WINWATCH_H

#include "winstate.h"

/* An event to every watcher of m. */
void winwatch_notify(struct winops *w, struct wmap *m, Mmapio__EventKind kind, bool range,
                     uint64_t off, uint64_t len);
/* The packed ServerMessage of an OVERFLOW event (no mapping: every
 * watch of the client may have missed events) into buf: its length, or
 * 0 if it does not fit. */
size_t winwatch_overflow(uint8_t *buf, size_t cap);
/* A writer's next writes to m go unannounced for ms (a WRITE notice's
 * hold_ms): once that time (at most 1 s) and a grace have passed with no
 * newer hold, m's watchers get MODIFIED without a range, as on Linux. */
void winwatch_hold(struct winops *w, struct wmap *m, uint32_t ms);
void winwatch_drop(struct winops *w, struct wwatch *x);
void winwatch_request(struct wsession *s, uint64_t id, const Mmapio__Watch *wa);
void winwatch_unwatch(struct wsession *s, uint64_t id, const Mmapio__Unwatch *u);
/* News of watched files changed outside the daemon (watchsys): started
 * with the daemon, stopped before it frees its table. */
void winwatch_start(struct winops *w);
void winwatch_stop(struct winops *w);

#endif
