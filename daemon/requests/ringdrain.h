/*
 * ringdrain: the daemon's side of a connection's write ring (the layout, the
 * writer's side and the trust argument are in common/wring.h).
 *
 * A session gets at most one ring, on its WriteRing request; the ring is
 * mapped here and its memfd goes to the client (the daemon keeps no fd).
 * It is WRING_SIZE (about 128 KiB) of shared memory whose pages exist
 * only once the client writes them (the daemon touches the first); one
 * per connection, charged to its uid against max_write_rings_per_uid
 * (quota_charge_ring) until the session ends: past it the request is
 * MMAPIO_E_QUOTA and the client tells its writes by notices.
 * A drain reads at most one ring's worth of cells, merges the ranges of
 * each mapping (overlapping or closer than WRING_MERGE_GAP bytes; past 32
 * ranges in a drain, into the nearest one) and tells the watchers
 * MODIFIED with each merged range (at most 256 per drain: the cells left
 * wait for the next), and MODIFIED without a range (an overflow event)
 * for mappings whose writers' ranges were dropped. Release cells release
 * holders; while the connection keeps asking, the ring is swept every
 * WRING_LAZY_MS (releases then wake nobody). It runs on a RING notice, before every other message of the
 * connection (so a CLOSE never overtakes writes made before it), when the
 * session ends, and every WRING_POLL_MS while it keeps finding work.
 */
#ifndef MMAPIOD_RINGDRAIN_H
#define MMAPIOD_RINGDRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mmapio.pb-c.h"
#include "wring.h"

struct handlers;
struct mapping;
struct session;

#define WRING_MERGE_GAP 4096u

/* Answers a WriteRing request: the ring's memfd, or an error. */
void ringdrain_request(struct session *s, uint64_t id);
/* Reads s's ring now if it has any (cheap when it is empty). A message
 * `q` about to be handled: a CLOSE of a holder whose writes may still sit
 * behind a cell being written gets an overflow event for its mapping. */
void ringdrain_kick(struct session *s, const Mmapio__Request *q);
/* Drains the rings of m's holders' sessions that have cells waiting, so
 * releases recorded there (wring.h) are done before m's holders are
 * counted (each session once, however often it holds m). `asking`'s own ring is not
 * (ops.c drained it before its request; what came since may release the
 * holder the request names). */
void ringdrain_settle(struct mapping *m, const struct session *asking);
/* Drains every ring that has cells waiting: before the admin requests
 * that count holders (mmapioctl ls, status, clients, stat). */
void ringdrain_settle_all(struct handlers *h);
/* Drains the rings of uid's sessions that have cells waiting, before a
 * refusal for the uid's budget: true when that released any holder. */
bool ringdrain_settle_uid(struct handlers *h, uid_t uid);
/* The session ends: a last drain (whatever it cannot read becomes an
 * overflow for every mapping s writes), then the ring is unmapped. */
void ringdrain_end(struct session *s);

#endif
