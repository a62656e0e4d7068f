/*
 * quota: what each uid owns in the daemon, against max_mappings_per_uid and
 * max_bytes_per_uid. A mapping is charged to its owner (an anonymous
 * mapping's creator, a file's owner) from the moment it exists until it is
 * freed; its bytes follow every resize. Past a limit the request fails with
 * MMAPIO_E_QUOTA and a log line says who and why.
 */
#ifndef MMAPIOD_QUOTA_H
#define MMAPIOD_QUOTA_H

#include <stdint.h>
#include <sys/types.h>

struct daemon;

/* Charges uid with `mappings` more mappings and `bytes` more bytes (either
 * may be 0). MMAPIO_OK, or MMAPIO_E_QUOTA with nothing charged. */
int quota_charge(struct daemon *d, uid_t uid, uint32_t mappings, uint64_t bytes);
/* Gives back what quota_charge took. */
void quota_release(struct daemon *d, uid_t uid, uint32_t mappings, uint64_t bytes);
void quota_fini(struct daemon *d);

#endif
