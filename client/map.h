/*
 * map: one mapping granted by the daemon and mapped in this process (the
 * public mmapio_map handle; see map.c).
 *
 * What the files above it (watch.c) may ask of a handle: its connection,
 * its holder on the wire, and the mapping it holds, as events name it.
 * They take no lock; mmapio_reconnect gives a handle new ones.
 */
#ifndef MMAPIO_CLIENT_MAP_H
#define MMAPIO_CLIENT_MAP_H

#include <stdint.h>
#include <stddef.h>

#include "mmapio.h"

mmapio_client *map_client_of(const mmapio_map *m);
/* MMAPIO_OK, or MMAPIO_E_NOT_FOUND (recorded) for a handle that
 * mmapio_reconnect left detached: its control calls go nowhere. */
int map_attached(const mmapio_map *m);
uint64_t map_handle_of(const mmapio_map *m);
uint64_t map_id_of(const mmapio_map *m);

/*
 * The data path of the files beside it (span, advice, atomics, stream):
 * the mapping as it stands now. map_view loads the length (acquire) and
 * then the base, so [base, base + *len) is always mapped (base NULL when
 * the length is 0). No lock, no system call.
 */
uint8_t *map_view(const mmapio_map *m, uint64_t *len);
/* The mapping's page size, fixed for the handle's life. */
size_t map_page_of(const mmapio_map *m);

/* For the other ways to a handle (fromfd.c): a new handle not yet granted
 * (MMAPIO_OK or E_QUOTA), the grant of an open reply taken into it (lock
 * held; see map.c), and freeing one that never was granted. */
struct client_reply;
int map_new(const char *path, mmapio_mode mode, mmapio_map **out);
int map_take_grant(mmapio_client *c, mmapio_map *m, struct client_reply *rep);
void map_free(mmapio_map *m);

/*
 * mmapio_reconnect, after client_rejoin_locked (lock held): every handle
 * of c is re-attached to its very object (Reattach; an anonymous one
 * offers its memfd), or detached for good (handle 0, a slot of nobody's,
 * memory untouched: its control calls get NOT_FOUND). *out (malloc'ed,
 * the caller frees) pairs each re-attached handle's old number with its
 * new one, for the watchers. MMAPIO_OK, or MMAPIO_E_DISCONNECTED when the
 * new daemon went away meanwhile.
 */
struct map_rejoined {
    uint64_t old_handle, new_handle, new_map_id;
};
int map_rejoin_all_locked(mmapio_client *c, struct map_rejoined **out,
                          size_t *n_out);

#endif
