/*
 * escape: what mmapioctl prints of a name, a path or a message, made safe.
 *
 * Whatever a daemon sends (an older one let any bytes but '/' into names)
 * reaches a terminal only as text that cannot move the cursor, forge a row
 * or send escape sequences, and reaches a JSON reader only as valid UTF-8.
 * A character is "good" when it is valid UTF-8 and not a control (C0, DEL,
 * C1). Tables get their escaping from libsmartcols (\xNN for anything it
 * cannot print); these cover the rest.
 */
#ifndef MMAPIOCTL_ESCAPE_H
#define MMAPIOCTL_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Length (1..4) of the good character at p, else 0. */
size_t esc_good_char(const unsigned char *p);

/* s for a terminal: good characters as they are, every other byte as
 * \xNN. NULL: "". malloc'd; NULL without memory. */
char *esc_text(const char *s);

/* s as valid UTF-8 for a JSON cell of libsmartcols (which escapes C0 and
 * quotes itself): a byte that is not UTF-8, and a C1 control (which some
 * terminals obey), become U+FFFD. malloc'd; NULL without memory. */
char *esc_utf8(const char *s);

/* s as a JSON string, quotes included: C0 and DEL as \u00NN, a C1
 * control and a byte that is not UTF-8 as \ufffd (as esc_utf8). */
void esc_json_put(FILE *f, const char *s);

#endif
