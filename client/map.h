/*
 * map: one mapping granted by the daemon and mapped in this process (the
 * public mmapio_map handle; see map.c).
 *
 * What the files above it (watch.c) may ask of a handle: its connection,
 * its holder on the wire, and the mapping it holds, as events name it.
 * These never change for the handle's life and take no lock.
 */
#ifndef MMAPIO_CLIENT_MAP_H
#define MMAPIO_CLIENT_MAP_H

#include <stdint.h>

#include "mmapio.h"

mmapio_client *map_client_of(const mmapio_map *m);
uint64_t map_handle_of(const mmapio_map *m);
uint64_t map_id_of(const mmapio_map *m);

#endif
