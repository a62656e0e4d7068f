/*
 * names: what a mapping's name or path may contain, and how odd bytes are
 * shown.
 *
 * Names and paths that clients send (anonymous names, paths beneath the
 * data root) must be valid UTF-8 — shortest form, no surrogates, nothing
 * past U+10FFFF — without control characters: C0 (U+0000..U+001F), DEL
 * (U+007F) and C1 (U+0080..U+009F). A name that passes cannot move a
 * terminal's cursor, forge a line of a listing or a log, or send escape
 * sequences to whoever reads it. The daemon refuses any other name
 * (base/resolve.c), and the library refuses it before sending, so that
 * the caller gets MMAPIO_E_INVALID_ARGUMENT without a round trip; both
 * ask names_valid, so the rule exists once.
 *
 * names_escape turns any text into text that passes the same rule, for
 * what must be shown whatever it holds (the name a client gives itself,
 * a message that quotes a refused name). Pure functions: no system call,
 * no allocation.
 */
#ifndef MMAPIO_COMMON_NAMES_H
#define MMAPIO_COMMON_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* true when s (NUL-terminated) is valid UTF-8 without control
 * characters; false for NULL. The empty string is valid here: whether a
 * name may be empty is the caller's rule. */
bool names_valid(const char *s);

/* What to say when a name fails names_valid. */
#define NAMES_REFUSED "name or path is not valid UTF-8 or has control characters"

/*
 * Copies s into out (size > 0, always NUL-terminated): valid characters
 * as they are, every byte of an invalid sequence and of a control
 * character as the four characters \xNN (lower-case hex). Text that does
 * not fit is cut between characters, never inside one or inside an
 * escape. NULL s gives "". Returns out.
 */
char *names_escape(const char *s, char *out, size_t size);

#endif
