/*
 * winadmin (Windows): the admin requests mmapioctl asks (AdminStatus,
 * AdminList, AdminClients, AdminStat, AdminFlush, AdminPolicy,
 * AdminWatch) with Linux's meaning and access rules: an admin — a member
 * of Administrators, or the daemon's own account — sees and acts on
 * everything; anyone else only on their own mappings and connections.
 * What Windows cannot tell is 0 or empty (README, "Windows").
 */
#ifndef MMAPIOD_WINADMIN_H
#define MMAPIOD_WINADMIN_H

#include "winstate.h"

/* One of the Admin* requests of q. */
void winadmin_request(struct wsession *s, uint64_t id, const Mmapio__Request *q);
/* The sessions' list (clients are listed by it). */
void winadmin_session_add(struct winops *w, struct wsession *s);
void winadmin_session_remove(struct winops *w, struct wsession *s);
/* m's flush policy becomes p: the control area's slot, watchers told,
 * its timer re-armed or stopped (SetPolicy and AdminPolicy). */
void winadmin_set_policy(struct winops *w, struct wmap *m, mmapio_flush_policy p);

#endif
