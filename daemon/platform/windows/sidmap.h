/*
 * sidmap (Windows only): the uid_t/gid_t that stands for a SID, one per
 * distinct SID for the daemon's life, so that comparing two ids compares
 * two whole SIDs.
 *
 * A SID of the machine's account domain (its local accounts and groups,
 * S-1-5-21-A-B-C-RID, the domain from LSA) keeps its RID as its id, so
 * that uids read as on the machine (1000, 1001, 513). Every other SID —
 * another domain's account, BUILTIN\Administrators, SYSTEM, a well-known
 * group — is numbered in order of first appearance from SIDMAP_FOREIGN
 * (0x80000000, 0x80000001, ...), as is an account-domain SID whose RID
 * reaches SIDMAP_FOREIGN (Windows hands out RIDs below 2^30, or 2^31 when
 * unlocked), so the two ranges never meet. When the account domain cannot
 * be learned every SID is numbered. The table holds at most `cap` SIDs;
 * past that a new SID has no id (SIDMAP_NONE). Implemented in
 * platform/windows/sidmap.c.
 */
#ifndef MMAPIOD_SIDMAP_H
#define MMAPIOD_SIDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <windows.h>

#define SIDMAP_FOREIGN 0x80000000u /* the first id of a numbered SID */
#define SIDMAP_NONE UINT32_MAX     /* no id: not a valid SID, or the table full */
#define SIDMAP_CAP 65536u          /* the daemon's table: distinct numbered SIDs */

struct sidmap;

/* A table whose account domain is `domain` (copied; NULL: none known)
 * holding at most `cap` (< 2^31 - 1) numbered SIDs, or NULL. */
struct sidmap *sidmap_new(PSID domain, uint32_t cap);
void sidmap_free(struct sidmap *m);

/* The id of `sid` in m (numbering it if new), or SIDMAP_NONE. */
uint32_t sidmap_id(struct sidmap *m, PSID sid);

/* The daemon's table (SIDMAP_CAP, the account domain asked of LSA), made
 * at the first call of either function; safe from any thread. */
uint32_t sid_id(PSID sid);

/* Makes the daemon's table if not yet made and writes its account
 * domain's SID as text into out ("" and false when it is not known). */
bool sid_domain(char *out, size_t size);

#endif
