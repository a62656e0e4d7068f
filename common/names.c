/* names: the rule for names and paths, and escaping (see names.h). */
#include "names.h"

#include <stdint.h>
#include <string.h>

/* A control character: C0, DEL or C1. */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* The continuation bytes a lead byte announces, and the smallest code
 * point that needs that many (shorter forms are overlong); -1 for a byte
 * that cannot start a character. */
static int utf8_lead(unsigned char b, uint32_t *cp, uint32_t *min)
{
    if (b < 0x80) {
        *cp = b;
        *min = 0;
        return 0;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        *cp = b & 0x1F;
        *min = 0x80;
        return 1;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        *cp = b & 0x0F;
        *min = 0x800;
        return 2;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        *cp = b & 0x07;
        *min = 0x10000;
        return 3;
    }
    return -1; /* a continuation byte, C0/C1 (always overlong), F5..FF */
}

/* Length of the valid, non-control character at p (1..4), or 0. */
static size_t good_char(const unsigned char *p)
{
    uint32_t cp, min;
    int more = utf8_lead(p[0], &cp, &min);
    if (more < 0)
        return 0;
    for (int i = 1; i <= more; i++) {
        if ((p[i] & 0xC0) != 0x80) /* the NUL terminator stops here too */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
        is_control(cp))
        return 0;
    return (size_t)more + 1;
}

bool names_valid(const char *s)
{
    if (!s)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = good_char(p);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

char *names_escape(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;

    if (size == 0)
        return out;
    while (*p) {
        size_t n = good_char(p);
        size_t need = n ? n : 4;
        if (o + need >= size)
            break;
        if (n) {
            memcpy(out + o, p, n);
            p += n;
        } else {
            out[o] = '\\';
            out[o + 1] = 'x';
            out[o + 2] = hex[*p >> 4];
            out[o + 3] = hex[*p & 0x0F];
            p++;
        }
        o += need;
    }
    out[o] = '\0';
    return out;
}
