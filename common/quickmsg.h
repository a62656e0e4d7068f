#ifndef MMAPIO_QUICKMSG_H
#define MMAPIO_QUICKMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The ping round trip's two messages, packed and recognised by hand (no
 * protobuf-c walk, no allocation). Each packer writes exactly the bytes
 * protobuf-c packs for the same message (test_wire checks it); each
 * recogniser accepts only those bytes (the shortest encoding, nothing
 * else in the datagram) and leaves anything else to the full decoder, so
 * it never accepts what the decoder would read otherwise.
 *
 *   Request { id, ping {} }              08 <id>  1a 00   (id 0: 1a 00)
 *   ServerMessage { reply { id } }       0a <n>  08 <id>  (id 0: 0a 00)
 */
#define WIRE_QUICK_MAX 14 /* the longest of them: a 10-byte id */

size_t wire_pack_ping(uint64_t id, uint8_t *buf);
bool wire_is_ping(const uint8_t *buf, size_t len, uint64_t *id);
size_t wire_pack_ok(uint64_t id, uint8_t *buf);
bool wire_is_ok(const uint8_t *buf, size_t len, uint64_t *id);

#endif
