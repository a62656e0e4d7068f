/*
 * quota: what each uid makes the daemon hold, against max_mappings_per_uid
 * and max_bytes_per_uid.
 *
 * A mapping is charged to whoever holds it, never to a file's owner: each
 * distinct uid with a holder of a mapping is charged one mapping and the
 * mapping's bytes, once however many holders it has (quota_hold and
 * quota_unhold, called by the handlers as holders come and go). An
 * anonymous mapping is also charged to its creator for as long as it is
 * reachable by name (quota_charge_mapping), since it lives on without
 * holders; a file nobody holds is charged to nobody. Every charge is
 * released exactly: a uid's when its last holder goes, the creator's when
 * the name leaves the registry, whatever is left when the mapping is freed.
 *
 * Sizes: the uid that sets a size (creates, resizes, truncates) must have
 * room for it; the other uids charged for the mapping follow it without a
 * check (refusing a writer because some reader's budget is full would let
 * any reader freeze another user's mapping; a uid over its limit is only
 * refused new charges). A size change the daemon did not make — a file
 * grown by another process or by a holder's ftruncate, seen through
 * inotify or at the next request — is charged the same way, and its new
 * holes are reserved (fallocate); when the disk cannot hold them, or they
 * reach past max_bytes_per_uid, the file is truncated back, so no holder
 * is ever told a size whose pages could fault with SIGBUS. (An anonymous
 * mapping's size is the daemon's alone: see mapping_sync_size.) Past a
 * limit a request fails with MMAPIO_E_QUOTA and a log line says who and
 * why.
 *
 * It also counts every live mapping against max_mappings (the control
 * area's slots), of which reserved_mappings are only for mappings that
 * root or a member of admin_group makes exist: a crowd of ordinary uids
 * cannot take the last ones (quota_admit).
 *
 * Mappings that hold a daemon fd (all but the carved ones) are counted
 * apart as well, since carved mappings let max_mappings pass the fd
 * budget: daemon-wide against max_fd_mappings (reserved_fd_mappings kept
 * for admins, quota_admit), and per uid against max_fd_mappings_per_uid,
 * charged to holders exactly as max_mappings_per_uid is. So one uid
 * holding file mappings cannot take more than its share of the daemon's
 * fds, however many carved mappings it may hold. A mapping in the open
 * cache is counted in neither (its fds are budgeted apart).
 *
 * And each connection's write ring (requests/ringdrain.c: WRING_SIZE of
 * shared memory the daemon maps until the connection ends) against
 * max_write_rings_per_uid, so that many connections of one uid cannot
 * grow the daemon by a ring each (quota_charge_ring).
 */
#ifndef MMAPIOD_QUOTA_H
#define MMAPIOD_QUOTA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hmap.h"
#include "mapping.h"

struct registry;

struct quota {
    struct hmap uses;          /* uid -> what it is charged */
    uint32_t max_mappings;     /* per uid */
    uint64_t max_bytes;        /* per uid */
    uint64_t total;            /* live mappings admitted */
    uint32_t max_total;        /* 0: no daemon-wide count (quota_set_total) */
    uint32_t reserved;         /* of max_total, for admins only */
    uint32_t max_rings;        /* write rings per uid */
    uint32_t max_fd;           /* per uid: mappings holding a daemon fd */
    uint64_t fd_total;         /* admitted mappings holding a daemon fd */
    uint32_t max_fd_total;     /* 0: not counted (quota_set_fd_total) */
    uint32_t fd_reserved;      /* of max_fd_total, for admins only */
    char why[160];             /* the last refusal, naming the setting */
    struct mapping_hook hook;
};

/* 0 or -errno. */
int quota_init(struct quota *q, struct registry *r, uint32_t max_mappings,
               uint64_t max_bytes);
void quota_fini(struct quota *q);

/* Counts live mappings against max_total, `reserved` of them for admins. */
void quota_set_total(struct quota *q, uint32_t max_total, uint32_t reserved);

/* Counts mappings holding a daemon fd: per uid against `per_uid`
 * (UINT32_MAX until set), daemon-wide against max_total (`reserved` for
 * admins). */
void quota_set_fd_total(struct quota *q, uint32_t max_total, uint32_t reserved,
                        uint32_t per_uid);

/* Why the last MMAPIO_E_QUOTA of this service was given, in words that
 * name the setting ("" before any). Valid until the next refusal. */
const char *quota_why(const struct quota *q);

/* A new mapping m is about to exist (before it is registered): counted
 * until it is freed. `admin`: whoever makes it exist may take the reserve.
 * MMAPIO_OK or MMAPIO_E_QUOTA (not counted). */
int quota_admit(struct quota *q, struct mapping *m, bool admin);

/* m stops counting against max_total (it parked in the open cache, whose
 * fds are budgeted apart); quota_admit counts it again. */
void quota_unadmit(struct quota *q, struct mapping *m);

/* Charges an anonymous mapping's creator (m->owner) while its name lives.
 * MMAPIO_OK or MMAPIO_E_QUOTA (then nothing is charged). */
int quota_charge_mapping(struct quota *q, struct mapping *m);

/* A holder of `uid` takes m: the uid's first holder of m charges it one
 * mapping and m's bytes. MMAPIO_OK or MMAPIO_E_QUOTA (nothing charged). */
int quota_hold(struct quota *q, struct mapping *m, uid_t uid);
/* A holder of `uid` let go of m: its last releases the uid's charge. */
void quota_unhold(struct quota *q, struct mapping *m, uid_t uid);

/* A connection of `uid` gets a write ring: MMAPIO_OK, or MMAPIO_E_QUOTA
 * when the uid has max_rings already (nothing charged; logged). */
int quota_charge_ring(struct quota *q, uid_t uid);
/* That ring is gone (its connection ended). */
void quota_release_ring(struct quota *q, uid_t uid);
/* Write rings charged to uid now. */
uint32_t quota_rings(struct quota *q, uid_t uid);

/* mapping_set_size on behalf of `by`, which must have room for the new
 * size (and, when not yet charged for m, for one more mapping); everyone
 * charged for m follows, and nothing moves when the size cannot be set.
 * MMAPIO_OK or a negative mmapio_err with a reason in *why. */
int quota_set_size(struct quota *q, struct mapping *m, uint64_t size,
                   uid_t by, const char **why);

#endif
