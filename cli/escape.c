/* escape: names and messages made safe for a terminal and for JSON. */
#include "escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The code point of the valid UTF-8 sequence at p and its length, or 0. */
static size_t utf8_char(const unsigned char *p, uint32_t *out)
{
    uint32_t cp = p[0], min = 0;
    int more = 0;
    if (cp < 0x80) {
        *out = cp;
        return 1;
    }
    if (cp >= 0xC2 && cp <= 0xDF) { more = 1; cp &= 0x1F; min = 0x80; }
    else if (cp >= 0xE0 && cp <= 0xEF) { more = 2; cp &= 0x0F; min = 0x800; }
    else if (cp >= 0xF0 && cp <= 0xF4) { more = 3; cp &= 0x07; min = 0x10000; }
    else return 0;
    for (int i = 1; i <= more; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *out = cp;
    return (size_t)more + 1;
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

size_t esc_good_char(const unsigned char *p)
{
    uint32_t cp;
    size_t n = *p ? utf8_char(p, &cp) : 0;
    return n && !is_control(cp) ? n : 0;
}

char *esc_text(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char *out = malloc(strlen((const char *)p) * 4 + 1), *o = out;
    if (!out)
        return NULL;
    while (*p) {
        size_t n = esc_good_char(p);
        if (n) {
            memcpy(o, p, n);
            o += n;
            p += n;
        } else {
            static const char hex[] = "0123456789abcdef";
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p++ & 15];
        }
    }
    *o = '\0';
    return out;
}

char *esc_utf8(const char *s)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char *out = malloc(strlen((const char *)p) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    while (*p) {
        uint32_t cp;
        size_t n = utf8_char(p, &cp);
        if (n && !(cp >= 0x80 && cp <= 0x9F)) {
            memcpy(o, p, n);
            o += n;
        } else {
            memcpy(o, fffd, 3);
            o += 3;
            n = n ? n : 1;
        }
        p += n;
    }
    *o = '\0';
    return out;
}

void esc_json_put(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    fputc('"', f);
    while (*p) {
        uint32_t cp;
        size_t n = utf8_char(p, &cp);
        if (!n) {
            fputs("\\ufffd", f); /* a byte that is not UTF-8 */
            n = 1;
        } else if (cp >= 0x80 && cp <= 0x9F) {
            fputs("\\ufffd", f); /* a C1 control: as esc_utf8 */
        } else if (is_control(cp)) {
            fprintf(f, "\\u%04x", (unsigned)cp);
        } else if (cp == '"' || cp == '\\') {
            fprintf(f, "\\%c", (int)cp);
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
    }
    fputc('"', f);
}
