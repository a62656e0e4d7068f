/*
 * quota: what each uid owns in the daemon, against max_mappings_per_uid and
 * max_bytes_per_uid. A mapping is charged to its owner (an anonymous
 * mapping's creator, a file's owner) by whoever makes it exist, until it
 * is freed (a file: until it leaves the registry); its bytes follow every
 * size set through quota_set_size. Past a limit the request fails with
 * MMAPIO_E_QUOTA and a log line says who and why.
 *
 * It also counts every charged mapping against max_mappings, the daemon's
 * fd budget for mappings, of which reserved_mappings are only for
 * mappings that root or a member of admin_group makes exist: a crowd of
 * ordinary uids cannot take the last ones.
 *
 * It observes the model: a retired file mapping and a freed mapping stop
 * counting by themselves.
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
    struct hmap uses;          /* uid -> what it owns */
    uint32_t max_mappings;     /* per uid */
    uint64_t max_bytes;        /* per uid */
    uint64_t total;            /* mappings charged, every uid */
    uint32_t max_total;        /* 0: no global count (quota_set_total) */
    uint32_t reserved;         /* of max_total, for admins only */
    struct mapping_hook hook;
};

/* 0 or -errno. */
int quota_init(struct quota *q, struct registry *r, uint32_t max_mappings,
               uint64_t max_bytes);
void quota_fini(struct quota *q);

/* Counts mappings against max_total too, reserved of them for admins. */
void quota_set_total(struct quota *q, uint32_t max_total, uint32_t reserved);

/* Starts counting m (and its size) against its owner; call once the owner
 * is known. MMAPIO_OK or MMAPIO_E_QUOTA (then nothing is counted). The
 * reserve is for admins; quota_charge_mapping takes an owner root as one,
 * quota_charge_mapping_by is told whether whoever makes m exist is one. */
int quota_charge_mapping(struct quota *q, struct mapping *m);
int quota_charge_mapping_by(struct quota *q, struct mapping *m, bool admin);

/* mapping_set_size with the owner's byte count moved along (and moved
 * back when the size cannot be set). MMAPIO_OK or a negative mmapio_err
 * with a reason in *why. */
int quota_set_size(struct quota *q, struct mapping *m, uint64_t size,
                   const char **why);

#endif
