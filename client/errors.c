/*
 * errors: the English text of every mmapio_err, and the thread's last
 * failure (see errors.h). The table of texts lives once, in
 * common/errmap.c, shared with the daemon.
 */
#include "errors.h"

#include <string.h>

#include "errmap.h"

static __thread char last[ERROR_TEXT_MAX];

const char *mmapio_strerror(int err)
{
    return errmap_text(err);
}

const char *mmapio_last_error(void)
{
    return last;
}

/* A message cut short (by us, or by the daemon) must not end inside a
 * UTF-8 sequence: drop the incomplete last character. */
static void trim_partial_utf8(char *s, size_t len)
{
    size_t i = len, cont = 0;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && cont < 3) {
        i--;
        cont++;
    }
    if (i == 0 || ((unsigned char)s[i - 1] & 0x80) == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (cont < need)
        s[i - 1] = '\0';
}

int error_set(int err, const char *message)
{
    const char *text = message && *message ? message : errmap_text(err);
    size_t len = strlen(text);
    if (len >= sizeof(last))
        len = sizeof(last) - 1;
    memcpy(last, text, len);
    last[len] = '\0';
    trim_partial_utf8(last, len);
    return err;
}

void error_save(struct error_saved *s)
{
    memcpy(s->text, last, sizeof(s->text));
}

void error_restore(const struct error_saved *s)
{
    memcpy(last, s->text, sizeof(last));
}
