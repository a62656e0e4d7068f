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

/*
 * The open round trip likewise: the Open request as the library sends it
 * (its flush policy always there) and the reply granting it. Each packer
 * writes protobuf-c's bytes (fields in number order, zeros left out) or
 * refuses (0: the caller packs with protobuf-c); each recogniser reads
 * the fields, packs them again and accepts only when that gives the very
 * bytes it read, so it takes nothing the decoder would read otherwise.
 * Paths by hand: ASCII without NUL, at most WIRE_QUICK_PATH bytes.
 *
 *   Request { id, open { path, anonymous, mode, create, truncate,
 *     exclusive, size, policy { kind, value }, perm, owner { uid }
 *     (has_owner), huge_pages } }
 *   ServerMessage { reply { id, open { handle, map_id, size,
 *     policy { kind, value }, ctl_slot, arena, offset } } }
 */
#define WIRE_QUICK_PATH 1024
/* Room for the packers (a little more than their longest result). */
#define WIRE_QUICK_OPEN_MAX (WIRE_QUICK_PATH + 128)
#define WIRE_QUICK_GRANT_MAX 128
/* The fields of Open and OpenReply the hand packs: a sender whose
 * protocol has more leaves the hand alone (the recognisers refuse what
 * they do not know anyway). */
#define WIRE_QUICK_OPEN_FIELDS 11
#define WIRE_QUICK_GRANT_FIELDS 8 /* the 8th, file, is never packed by hand:
                                    * a grant naming its file (the Windows
                                    * daemon's) goes through protobuf-c */
#define WIRE_QUICK_POLICY_FIELDS 2 /* FlushPolicy's; Owner's is 1 */

struct wire_open {
    const char *path;          /* path_len bytes, not NUL-terminated */
    size_t path_len;
    bool anonymous, create, truncate, exclusive, huge_pages, has_owner;
    uint32_t mode, perm, owner_uid, policy_kind;
    uint64_t size, policy_value;
};

struct wire_grant {
    uint64_t handle, map_id, size, policy_value, arena, offset;
    uint32_t policy_kind, ctl_slot;
};

size_t wire_pack_open(uint64_t id, const struct wire_open *o, uint8_t *buf);
bool wire_is_open(const uint8_t *buf, size_t len, uint64_t *id,
                  struct wire_open *o);
size_t wire_pack_grant(uint64_t id, const struct wire_grant *g, uint8_t *buf);
bool wire_is_grant(const uint8_t *buf, size_t len, uint64_t *id,
                   struct wire_grant *g);

#endif
