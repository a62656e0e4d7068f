/*
 * uids: what the transport holds for each uid across its connections — how
 * many connections, how many reply bytes and fds queued toward them — and
 * the list of those connections, so that a uid that falls back under its
 * queued-bytes or queued-fds budget can have every one of them read again. An entry
 * exists while the uid has a connection; counts never go below zero.
 */
#ifndef MMAPIOD_UIDS_H
#define MMAPIOD_UIDS_H

#include <stdint.h>
#include <sys/types.h>

#include "hmap.h"

struct conn;

struct uid_use {
    struct hnode node;
    uid_t uid;
    uint32_t conns;            /* connections open */
    uint64_t queued;           /* bytes queued toward them */
    uint32_t fds;              /* fds held for them: queued, in flight */
    uint32_t pass;             /* the fd pass that last looked at them */
    struct conn *list;         /* linked through conn->uid_next */
};

struct uids {
    struct hmap map;
};

void uids_init(struct uids *u);
/* Frees every entry (their connections must be gone). */
void uids_fini(struct uids *u);

/* uid's entry, or NULL. */
struct uid_use *uids_find(const struct uids *u, uid_t uid);
/* uid's entry, created empty if needed; NULL when out of memory. */
struct uid_use *uids_get(struct uids *u, uid_t uid);
/* Frees e once it has no connection left. */
void uids_put(struct uids *u, struct uid_use *e);

#endif
