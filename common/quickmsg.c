/*
 * quickmsg: the ping's and the open's round trips by hand (see quickmsg.h).
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

/* ---- open and its grant ---- */

#include <string.h>

/* A varint field (none for 0). */
static size_t put_uint(uint8_t field, uint64_t v, uint8_t *buf)
{
    if (v == 0)
        return 0;
    buf[0] = (uint8_t)(field << 3);
    return 1 + put_varint(v, buf + 1);
}

/* A length-delimited field around body[0..n), which lies at or after
 * buf + 11 (moved down into place). The packers build each body 11 bytes
 * past where its field goes, so they write a little past their result. */
static size_t put_bytes(uint8_t field, const uint8_t *body, size_t n,
                        uint8_t *buf)
{
    buf[0] = (uint8_t)(field << 3 | 2);
    size_t h = 1 + put_varint(n, buf + 1);
    memmove(buf + h, body, n);
    return h + n;
}

static size_t put_policy(uint8_t field, uint32_t kind, uint64_t value,
                         uint8_t *buf)
{
    uint8_t *body = buf + 11;
    size_t n = put_uint(1, kind, body);
    n += put_uint(2, value, body + n);
    return put_bytes(field, body, n, buf);
}

/* Reads a varint at *p (at most 10 bytes, before end). */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < 10 && *p < end; i++) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* The next field at *p: its number and wire type, and its value (a
 * varint) or its body (*body, *n; length-delimited). Other wire types:
 * false. */
static bool get_field(const uint8_t **p, const uint8_t *end, uint32_t *field,
                      uint64_t *v, const uint8_t **body, size_t *n)
{
    uint64_t tag;
    *body = NULL;
    *n = 0;
    if (!get_varint(p, end, &tag) || tag > UINT32_MAX)
        return false;
    *field = (uint32_t)(tag >> 3);
    if ((tag & 7) == 0)
        return get_varint(p, end, v);
    if ((tag & 7) != 2 || !get_varint(p, end, v) ||
        *v > (uint64_t)(end - *p))
        return false;
    *body = *p;
    *n = (size_t)*v;
    *p += *n;
    return true;
}

static bool get_policy(const uint8_t *p, size_t len, uint32_t *kind,
                       uint64_t *value)
{
    if (!p) /* the field came as a number, not a message */
        return false;
    const uint8_t *end = p + len, *body;
    uint32_t f;
    uint64_t v;
    size_t n;
    while (p < end) {
        if (!get_field(&p, end, &f, &v, &body, &n))
            return false;
        if (f == 1 && v <= INT32_MAX)
            *kind = (uint32_t)v;
        else if (f == 2)
            *value = v;
        else
            return false;
    }
    return true;
}

/* A path the hand packs: ASCII, no NUL, not empty, not too long. */
static bool quick_path(const char *path, size_t len)
{
    if (len == 0 || len > WIRE_QUICK_PATH)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)path[i] - 1u >= 0x7fu)
            return false;
    return true;
}

size_t wire_pack_open(uint64_t id, const struct wire_open *o, uint8_t *buf)
{
    if (!quick_path(o->path, o->path_len) || o->mode > INT32_MAX ||
        o->policy_kind > INT32_MAX)
        return 0;
    size_t n = put_id(id, buf);
    uint8_t *body = buf + n + 11, *q = body;
    q[0] = 0x0a; /* path */
    size_t h = 1 + put_varint(o->path_len, q + 1);
    memcpy(q + h, o->path, o->path_len);
    q += h + o->path_len;
    q += put_uint(2, o->anonymous, q);
    q += put_uint(3, o->mode, q);
    q += put_uint(4, o->create, q);
    q += put_uint(5, o->truncate, q);
    q += put_uint(6, o->exclusive, q);
    q += put_uint(7, o->size, q);
    q += put_policy(8, o->policy_kind, o->policy_value, q);
    q += put_uint(9, o->perm, q);
    if (o->has_owner) {
        uint8_t *ob = q + 11;
        q += put_bytes(10, ob, put_uint(1, o->owner_uid, ob), q);
    }
    q += put_uint(11, o->huge_pages, q);
    return n + put_bytes(4, body, (size_t)(q - body), buf + n);
}

static bool get_open(const uint8_t *p, size_t len, struct wire_open *o)
{
    const uint8_t *end = p + len, *body;
    uint32_t f;
    uint64_t v;
    size_t n;
    memset(o, 0, sizeof(*o));
    while (p < end) {
        if (!get_field(&p, end, &f, &v, &body, &n))
            return false;
        switch (f) {
        case 1:
            if (!body) /* a number, not bytes */
                return false;
            o->path = (const char *)body;
            o->path_len = n;
            break;
        case 2: o->anonymous = v != 0; break;
        case 3: if (v > INT32_MAX) return false; o->mode = (uint32_t)v; break;
        case 4: o->create = v != 0; break;
        case 5: o->truncate = v != 0; break;
        case 6: o->exclusive = v != 0; break;
        case 7: o->size = v; break;
        case 8:
            if (!get_policy(body, n, &o->policy_kind, &o->policy_value))
                return false;
            break;
        case 9: if (v > UINT32_MAX) return false; o->perm = (uint32_t)v; break;
        case 10: {
            if (!body)
                return false;
            const uint8_t *e = body + n, *b2;
            uint32_t f2;
            size_t n2;
            o->has_owner = true;
            while (body < e) {
                if (!get_field(&body, e, &f2, &v, &b2, &n2) || f2 != 1 ||
                    v > UINT32_MAX)
                    return false;
                o->owner_uid = (uint32_t)v;
            }
            break;
        }
        case 11: o->huge_pages = v != 0; break;
        default: return false;
        }
    }
    return o->path != NULL;
}

/* [p, end): an id (field 1) and one message, field `want`, and nothing
 * else: the message's body in *body (NULL: none came). */
static bool get_id_and(const uint8_t *p, const uint8_t *end, uint32_t want,
                       uint64_t *id, const uint8_t **body, size_t *n)
{
    uint32_t f;
    uint64_t v;
    const uint8_t *b;
    size_t bn;
    *id = 0;
    *body = NULL;
    *n = 0;
    while (p < end) {
        if (!get_field(&p, end, &f, &v, &b, &bn))
            return false;
        if (f == 1) {
            *id = v;
        } else if (f == want) {
            *body = b;
            *n = bn;
        } else {
            return false;
        }
    }
    return true;
}

bool wire_is_open(const uint8_t *buf, size_t len, uint64_t *id,
                  struct wire_open *o)
{
    const uint8_t *body;
    size_t n;
    uint8_t again[WIRE_QUICK_OPEN_MAX];
    *id = 0;
    return len <= sizeof(again) &&
           get_id_and(buf, buf + len, 4, id, &body, &n) && body &&
           get_open(body, n, o) && wire_pack_open(*id, o, again) == len &&
           memcmp(again, buf, len) == 0;
}

size_t wire_pack_grant(uint64_t id, const struct wire_grant *g, uint8_t *buf)
{
    if (g->policy_kind > INT32_MAX)
        return 0;
    /* ServerMessage { reply (1) { id, open (5) { ... } } } */
    uint8_t *reply = buf + 11, *og = reply + 11 + 11, *q = og;
    q += put_uint(1, g->handle, q);
    q += put_uint(2, g->map_id, q);
    q += put_uint(3, g->size, q);
    q += put_policy(4, g->policy_kind, g->policy_value, q);
    q += put_uint(5, g->ctl_slot, q);
    q += put_uint(6, g->arena, q);
    q += put_uint(7, g->offset, q);
    size_t n = put_id(id, reply);
    n += put_bytes(5, og, (size_t)(q - og), reply + n);
    return put_bytes(1, reply, n, buf);
}

static bool get_grant(const uint8_t *p, size_t len, struct wire_grant *g)
{
    const uint8_t *end = p + len, *body;
    uint32_t f;
    uint64_t v;
    size_t n;
    while (p < end) {
        if (!get_field(&p, end, &f, &v, &body, &n))
            return false;
        switch (f) {
        case 1: g->handle = v; break;
        case 2: g->map_id = v; break;
        case 3: g->size = v; break;
        case 4:
            if (!get_policy(body, n, &g->policy_kind, &g->policy_value))
                return false;
            break;
        case 5: if (v > UINT32_MAX) return false; g->ctl_slot = (uint32_t)v; break;
        case 6: g->arena = v; break;
        case 7: g->offset = v; break;
        default: return false;
        }
    }
    return true;
}

bool wire_is_grant(const uint8_t *buf, size_t len, uint64_t *id,
                   struct wire_grant *g)
{
    const uint8_t *p = buf, *body, *rb = NULL;
    uint32_t f;
    uint64_t v;
    size_t n, rn = 0;
    uint8_t again[WIRE_QUICK_GRANT_MAX];
    *id = 0;
    memset(g, 0, sizeof(*g));
    /* The server message: its reply (field 1) alone; in it, the id and
     * the open's grant (field 5). */
    if (len > sizeof(again) || !get_field(&p, buf + len, &f, &v, &rb, &rn) ||
        f != 1 || !rb || p != buf + len)
        return false;
    return get_id_and(rb, rb + rn, 5, id, &body, &n) && body &&
           get_grant(body, n, g) &&
           wire_pack_grant(*id, g, again) == len &&
           memcmp(again, buf, len) == 0;
}
