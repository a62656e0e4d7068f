/*
 * quickmsg: the ping round trip's messages by hand (see quickmsg.h).
 * Portable: no system call, shared by every platform's client and daemon.
 */

#include "quickmsg.h"

#define TAG_ID 0x08    /* field 1, varint: Request.id, Reply.id */
#define TAG_PING 0x1a  /* field 3, length-delimited: Request.ping */
#define TAG_REPLY 0x0a /* field 1, length-delimited: ServerMessage.reply */

static size_t put_varint(uint64_t v, uint8_t *buf)
{
    size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[n++] = (uint8_t)v;
    return n;
}

/* An id field as proto3 packs it (none for 0). */
static size_t put_id(uint64_t id, uint8_t *buf)
{
    if (id == 0)
        return 0;
    buf[0] = TAG_ID;
    return 1 + put_varint(id, buf + 1);
}

/* An id field as put_id writes it, at the start of buf[0..len): its
 * length (0: none there), or -1 if what is there is not that. Takes
 * shortest varints of at most 9 bytes (63 bits), never 0. */
static long get_id(const uint8_t *buf, size_t len, uint64_t *id)
{
    *id = 0;
    if (len == 0 || buf[0] != TAG_ID)
        return 0;
    uint64_t v = 0;
    for (size_t i = 1; i < len && i <= 9; i++) {
        v |= (uint64_t)(buf[i] & 0x7f) << (7 * (i - 1));
        if (buf[i] & 0x80)
            continue;
        if (buf[i] == 0) /* a trailing zero: not the shortest, or id 0 */
            return -1;
        *id = v;
        return (long)i + 1;
    }
    return -1;
}

size_t wire_pack_ping(uint64_t id, uint8_t *buf)
{
    size_t n = put_id(id, buf);
    buf[n++] = TAG_PING;
    buf[n++] = 0;
    return n;
}

bool wire_is_ping(const uint8_t *buf, size_t len, uint64_t *id)
{
    long n = get_id(buf, len, id);
    return n >= 0 && len == (size_t)n + 2 && buf[n] == TAG_PING &&
           buf[n + 1] == 0;
}

size_t wire_pack_ok(uint64_t id, uint8_t *buf)
{
    size_t n = put_id(id, buf + 2);
    buf[0] = TAG_REPLY;
    buf[1] = (uint8_t)n; /* at most 11 */
    return n + 2;
}

bool wire_is_ok(const uint8_t *buf, size_t len, uint64_t *id)
{
    if (len < 2 || buf[0] != TAG_REPLY || buf[1] != len - 2)
        return false;
    long n = get_id(buf + 2, len - 2, id);
    return n >= 0 && (size_t)n == len - 2;
}
