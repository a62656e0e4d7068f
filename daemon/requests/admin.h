/*
 * admin: the questions mmapioctl asks, over the same protocol: status,
 * the list of mappings, the list of clients, flush and policy by name,
 * one mapping in full (stat) and a watch by name that holds no handle.
 *
 * Who may ask what is decided here from the peer's credentials: an
 * ordinary user sees and changes only mappings they own (a file's owner,
 * an anonymous mapping's creator) and their own connections; root and
 * members of the configured admin group see and change everything.
 * stat and watch need read access, as an open read-only would. Refused:
 * PERMISSION when the thing exists, NOT_FOUND only when it does not.
 * Long lists come a page at a time, each reply well under a frame.
 */
#ifndef MMAPIOD_ADMIN_H
#define MMAPIOD_ADMIN_H

#include <stdint.h>

#include "mmapio.pb-c.h"

struct session;

void admin_status(struct session *c, uint64_t id);
void admin_list(struct session *c, uint64_t id, const Mmapio__AdminList *q);
void admin_clients(struct session *c, uint64_t id, const Mmapio__AdminClients *q);
void admin_flush(struct session *c, uint64_t id, const Mmapio__AdminFlush *q);
void admin_policy(struct session *c, uint64_t id, const Mmapio__AdminPolicy *q);
void admin_stat(struct session *c, uint64_t id, const Mmapio__AdminStat *q);
void admin_watch(struct session *c, uint64_t id, const Mmapio__AdminWatch *q);

#endif
